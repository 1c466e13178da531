//! `docker export`: a container's whole filesystem as one tar, streamed as it is read.
//!
//! The tree is the merged view of the container's layers ([`crate::merged`]): its rw layer,
//! the init layer (the mount points, as Docker's export shows them), then the image's layers;
//! whiteouts and opaque directories are applied, never written. Names come in the order of a
//! depth-first walk with each directory's entries sorted, as Docker's `filepath.Walk` gives
//! them. What is mounted into a running container (volumes, binds, `/proc`) is not part of
//! its layers and so not exported, as with Docker. Memory stays bounded by the depth of the
//! tree and the width of its directories: nothing is collected.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::merged::{Layers, MergedDir};
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
    dir(&layers, &root, Path::new(""), &mut tar)?;
    tar.finish()?.flush()
}

fn dir(
    layers: &Layers,
    here: &MergedDir,
    rel: &Path,
    tar: &mut TarWriter<&mut dyn Write>,
) -> io::Result<()> {
    for (name, entry) in here.entries(layers)? {
        let path = rel.join(&name);
        let holder = here.holder(entry.part);
        tar.append(&path, holder, &name, &entry.meta)?;
        if entry.meta.is_dir() {
            let shown = Path::new("/").join(&path);
            if let Some(sub) = here.child(OsStr::new(&name), &shown)? {
                dir(layers, &sub, &path, tar)?;
            }
        }
    }
    Ok(())
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
