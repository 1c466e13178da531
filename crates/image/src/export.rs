//! `docker export`: a container's whole filesystem as one tar, streamed as it is read.
//!
//! The tree is the merged view of the container's layers ([`crate::merged`]): its rw layer,
//! the init layer (the mount points, as Docker's export shows them), then the image's layers;
//! whiteouts and opaque directories are applied, never written. Names come in the order of a
//! depth-first walk with each directory's entries sorted, as Docker's `filepath.Walk` gives
//! them. A mount point file the runtime made in the rw layer (`/etc/hosts` of an image
//! without one) is written as the init layer has it, as Docker's export shows it. What is
//! mounted into a running container (volumes, binds, `/proc`) is not part of
//! its layers and so not exported, as with Docker. Memory stays bounded by the depth of the
//! tree and the width of its directories: nothing is collected.

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::merged::{lstat_at, open_dir_at, too_deep, Layers, MergedDir, MAX_DEPTH};
use crate::tarfs::TarWriter;

/// Writes the merged tree of `layers` (top first; `init` is the init layer's index) to
/// `out` as a tar.
pub(crate) fn write(
    layers: &[PathBuf],
    init: Option<usize>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let layers = Layers::open(layers, init)?;
    let root = layers.root()?;
    let mut tar = TarWriter::new(out);
    dir(&layers, init, &root, Path::new(""), &mut tar)?;
    tar.finish()?.flush()
}

fn dir(
    layers: &Layers,
    init: Option<usize>,
    here: &MergedDir,
    rel: &Path,
    tar: &mut TarWriter<&mut dyn Write>,
) -> io::Result<()> {
    for (name, entry) in here.entries(layers)? {
        let path = rel.join(&name);
        let holder = here.holder(entry.part);
        // A mount point file the runtime made in the rw layer is shown as the init layer
        // has it (Docker's: empty, 0755), as Docker's export shows its init layer's.
        let from_init = match init {
            Some(i) if here.layer_of(entry.part) < i && entry.meta.is_file() => {
                init_file(layers, i, &path)?
            }
            _ => None,
        };
        match &from_init {
            Some((dir, meta)) => tar.append(&path, dir, &name, meta)?,
            None => tar.append(&path, holder, &name, &entry.meta)?,
        }
        if entry.meta.is_dir() {
            let shown = Path::new("/").join(&path);
            if path.components().count() >= MAX_DEPTH {
                return Err(too_deep(&shown));
            }
            if let Some(sub) = here.child(OsStr::new(&name), &shown)? {
                dir(layers, init, &sub, &path, tar)?;
            }
        }
    }
    Ok(())
}

/// The init layer's own copy of the mount point file `rel` (its directory and `lstat`), when
/// `rel` is one.
fn init_file(layers: &Layers, init: usize, rel: &Path) -> io::Result<Option<(File, Metadata)>> {
    if !crate::initlayer::is_mount_point(rel, false) {
        return Ok(None);
    }
    let mut dir = layers.layer_root(init).try_clone()?;
    for c in rel.parent().unwrap_or(Path::new("")).components() {
        match open_dir_at(&dir, c.as_os_str())? {
            Some(d) => dir = d,
            None => return Ok(None),
        }
    }
    let Some(name) = rel.file_name() else {
        return Ok(None);
    };
    Ok(lstat_at(&dir, name)?
        .filter(|m| m.is_file())
        .map(|m| (dir, m)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn the_export_is_the_merged_tree_with_the_init_layer() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        let init = crate::initlayer::ensure(&tmp.path().join("store")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("etc/hosts"), "the image's").unwrap();
        fs::write(lower.join("etc/gone"), "x").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/new"), "new").unwrap();
        // The runtime's mount point in the rw layer (an image without one would have it).
        fs::write(upper.join("etc/hostname"), "").unwrap();
        nix::sys::stat::mknod(
            &upper.join("etc/gone"),
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
        let mut out = Vec::new();
        write(&[upper, init, lower], Some(1), &mut out).unwrap();
        let mut archive = tar::Archive::new(out.as_slice());
        let mut names = Vec::new();
        for e in archive.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            if name == "etc/hostname" {
                assert_eq!(
                    e.header().mode().unwrap(),
                    0o755,
                    "as the init layer has it"
                );
            }
            if name == "etc/hosts" {
                let mut s = String::new();
                std::io::Read::read_to_string(&mut e, &mut s).unwrap();
                assert_eq!(s, "", "the init layer's mount point hides the image's file");
            }
            names.push(name);
        }
        assert_eq!(
            names,
            [
                ".dockerenv",
                "dev/",
                "dev/console",
                "dev/pts/",
                "dev/shm/",
                "etc/",
                "etc/hostname",
                "etc/hosts",
                "etc/new",
                "etc/resolv.conf",
                "proc/",
                "sys/",
            ]
        );
    }
}
