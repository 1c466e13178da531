//! Docker's copy-up: a new, empty volume mounted at a path where the image has a directory
//! is first filled with that directory's content, ownership, modes, times and extended
//! attributes included, so that a database image's initial files are there.
//!
//! The tree is read from the container's layers on the host ([`crate::merged`], as `docker
//! export` reads it), never from its root filesystem, which is mounted only inside its
//! shim's mount namespace. Every file is created relative to a descriptor of its directory in
//! the volume, with `O_EXCL` and without following a symlink: a named volume may already be
//! mounted into a running container, which must not be able to steer a write out of the
//! volume by swapping a directory for a symlink while the copy runs.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::fcntl::AtFlags;
use nix::sys::stat::{Mode, SFlag};
use nix::sys::time::TimeSpec;

use crate::merged::{
    open_dir_at, open_file_at, read_link_at, too_deep, Layers, MergedDir, MAX_DEPTH,
};

/// Extended attributes that belong to overlayfs's bookkeeping, never to the file.
const OVERLAY_XATTR_PREFIX: &str = "trusted.overlay.";

/// Copies the directory `path` (absolute, inside the container) of the merged view of
/// `layers` (top first; `init` is the init layer's index) into the directory `dest`. Returns
/// whether anything was copied: not when `dest` is not empty, or when the view has no
/// directory at `path` (its symlinks followed inside the image's root, as Docker's).
pub(crate) fn copy(
    layers: &[PathBuf],
    init: Option<usize>,
    path: &str,
    dest: &Path,
) -> io::Result<bool> {
    let out = open_dir(dest)?;
    if std::fs::read_dir(crate::merged::at(&out, OsStr::new(".")))?
        .next()
        .is_some()
    {
        return Ok(false);
    }
    let layers = Layers::open(layers, init)?;
    let Some((here, shown)) = resolve_in_scope(&layers, path)? else {
        return Ok(false);
    };
    if shown.components().count() > MAX_DEPTH {
        return Err(too_deep(&shown));
    }
    let mut copier = Copier {
        layers: &layers,
        links: HashMap::new(),
    };
    copier.dir(&here, &out, &shown, shown.components().count())?;
    // The volume's root takes the directory's owner and mode, as Docker's copy-up.
    let top = here.holder(0);
    let meta = top.metadata()?;
    copy_xattrs(top, &out)?;
    nix::unistd::fchown(
        out.as_raw_fd(),
        Some(meta.uid().into()),
        Some(meta.gid().into()),
    )?;
    out.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    set_times(&out, None, &meta)?;
    Ok(true)
}

/// The most symlinks a resolution follows (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// `path`'s directory in the merged view, its symlinks followed inside the image's root
/// (an absolute target from that root, `..` never above it), as Docker resolves a mount's
/// destination both to mount on it and to copy up (`GetResourcePath`, symlinks followed in
/// scope); the mount itself is resolved the same way (`RESOLVE_IN_ROOT`). `None` when it
/// leads to nothing or to a non-directory. The prefix already walked has no symlink, so a
/// target joined to it and cleaned lexically is what the kernel would resolve.
fn resolve_in_scope(layers: &Layers, path: &str) -> io::Result<Option<(MergedDir, PathBuf)>> {
    let mut path = clean_abs(Path::new(path));
    let mut hops = 0;
    'restart: loop {
        let names: Vec<std::ffi::OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                _ => None,
            })
            .collect();
        let mut here = layers.root()?;
        let mut shown = PathBuf::from("/");
        for (i, name) in names.iter().enumerate() {
            let Some(e) = here.lookup(name, layers)? else {
                return Ok(None);
            };
            if e.meta.file_type().is_symlink() {
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Ok(None);
                }
                let target = read_link_at(here.holder(e.part), name)?;
                let rest: PathBuf = names[i + 1..].iter().collect();
                path = clean_abs(&shown.join(target).join(rest));
                continue 'restart;
            }
            if !e.meta.is_dir() {
                return Ok(None);
            }
            shown.push(name);
            match here.child(name, &shown)? {
                Some(sub) => here = sub,
                None => return Ok(None),
            }
        }
        return Ok(Some((here, shown)));
    }
}

/// A lexical clean of `p` as an absolute path: `..` never goes above `/`.
fn clean_abs(p: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

fn open_dir(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

struct Copier<'a> {
    layers: &'a Layers,
    /// (device, inode) of a multiply linked file already copied -> its directory in the
    /// volume and its name there.
    links: HashMap<(u64, u64), (File, std::ffi::OsString)>,
}

impl Copier<'_> {
    fn dir(&mut self, here: &MergedDir, out: &File, shown: &Path, depth: usize) -> io::Result<()> {
        for (name, entry) in here.entries(self.layers)? {
            let holder = here.holder(entry.part);
            let meta = &entry.meta;
            let ft = meta.file_type();
            let child_shown = shown.join(&name);
            if ft.is_dir() {
                if depth + 1 > MAX_DEPTH {
                    return Err(too_deep(&child_shown));
                }
                let Some(sub) = here.child(&name, &child_shown)? else {
                    continue;
                };
                nix::sys::stat::mkdirat(Some(out.as_raw_fd()), name.as_os_str(), Mode::S_IRWXU)?;
                let Some(sub_out) = open_dir_at(out, &name)? else {
                    return Err(swapped(&child_shown));
                };
                self.dir(&sub, &sub_out, &child_shown, depth + 1)?;
                // The child's top part is the directory itself, opened already.
                copy_xattrs(sub.holder(0), &sub_out)?;
                own(&sub_out, meta)?;
                set_times(&sub_out, None, meta)?;
            } else if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                if meta.nlink() > 1 {
                    if let Some((dir, first)) = self.links.get(&key) {
                        nix::unistd::linkat(
                            Some(dir.as_raw_fd()),
                            first.as_os_str(),
                            Some(out.as_raw_fd()),
                            name.as_os_str(),
                            AtFlags::empty(),
                        )?;
                        continue;
                    }
                }
                let Some(mut src) = open_file_at(holder, &name, meta)? else {
                    continue;
                };
                let mut dst = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(crate::merged::at(out, &name))?;
                io::copy(&mut src, &mut dst)?;
                // Owner and mode first: a chown clears `security.capability`.
                own(&dst, meta)?;
                copy_xattrs(&src, &dst)?;
                set_times(&dst, None, meta)?;
                if meta.nlink() > 1 {
                    self.links.insert(key, (out.try_clone()?, name.clone()));
                }
            } else if ft.is_symlink() {
                let target = read_link_at(holder, &name)?;
                nix::unistd::symlinkat(
                    target.as_os_str(),
                    Some(out.as_raw_fd()),
                    name.as_os_str(),
                )?;
                nix::unistd::fchownat(
                    Some(out.as_raw_fd()),
                    name.as_os_str(),
                    Some(meta.uid().into()),
                    Some(meta.gid().into()),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )?;
                set_times(out, Some(&name), meta)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                let kind = if ft.is_char_device() {
                    SFlag::S_IFCHR
                } else if ft.is_block_device() {
                    SFlag::S_IFBLK
                } else {
                    SFlag::S_IFIFO
                };
                nix::sys::stat::mknodat(
                    Some(out.as_raw_fd()),
                    name.as_os_str(),
                    kind,
                    Mode::S_IRUSR | Mode::S_IWUSR,
                    meta.rdev(),
                )?;
                // Through a descriptor of the node just made (never a path a swap could
                // redirect); O_PATH opens a FIFO or device without touching it.
                let node = OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(crate::merged::at(out, &name))?;
                let via = crate::merged::at(&node, OsStr::new(""));
                let via = via.to_string_lossy().trim_end_matches('/').to_string();
                std::os::unix::fs::chown(&via, Some(meta.uid()), Some(meta.gid()))?;
                std::fs::set_permissions(
                    &via,
                    std::fs::Permissions::from_mode(meta.mode() & 0o7777),
                )?;
                set_times(out, Some(&name), meta)?;
            }
            // Sockets are left out, as Docker's archiver leaves them out.
        }
        Ok(())
    }
}

fn swapped(shown: &Path) -> io::Error {
    io::Error::other(format!(
        "{}: the volume changed while the image's content was copied into it",
        shown.display()
    ))
}

/// Owner, then mode (a chown clears the set-id bits).
fn own(f: &File, meta: &Metadata) -> io::Result<()> {
    nix::unistd::fchown(
        f.as_raw_fd(),
        Some(meta.uid().into()),
        Some(meta.gid().into()),
    )?;
    f.set_permissions(std::fs::Permissions::from_mode(meta.mode() & 0o7777))
}

/// Access and modification times of `f` itself, or of `name` in the directory `f` (a
/// symlink's own).
fn set_times(f: &File, name: Option<&OsStr>, meta: &Metadata) -> io::Result<()> {
    let atime = TimeSpec::new(meta.atime(), meta.atime_nsec());
    let mtime = TimeSpec::new(meta.mtime(), meta.mtime_nsec());
    match name {
        None => nix::sys::stat::futimens(f.as_raw_fd(), &atime, &mtime)?,
        Some(name) => nix::sys::stat::utimensat(
            Some(f.as_raw_fd()),
            name,
            &atime,
            &mtime,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )?,
    }
    Ok(())
}

/// Every extended attribute of `src` but overlayfs's own, onto `dst`. A file system
/// without them has none to copy.
fn copy_xattrs(src: &File, dst: &File) -> io::Result<()> {
    use xattr::FileExt;
    let names = match src.list_xattr() {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for name in names {
        if name.to_string_lossy().starts_with(OVERLAY_XATTR_PREFIX) {
            continue;
        }
        if let Some(value) = src.get_xattr(&name)? {
            dst.set_xattr(&name, &value)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::MetadataExt;

    /// The destination's symlinks are followed inside the image's root (Docker's
    /// `GetResourcePath`): an absolute target from the image's root, a `..` never above it,
    /// a loop gives nothing.
    #[test]
    fn a_symlinked_destination_is_followed_inside_the_image() {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        fs::create_dir_all(lower.join("srv/data")).unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        fs::write(lower.join("srv/data/seed"), "seeded").unwrap();
        fs::write(lower.join("etc/img"), "image's etc").unwrap();
        std::os::unix::fs::symlink("/srv/data", lower.join("data")).unwrap();
        std::os::unix::fs::symlink("../srv", lower.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", lower.join("srv/escape")).unwrap();
        std::os::unix::fs::symlink("loop", lower.join("loop")).unwrap();
        let upper = tmp.path().join("upper");
        fs::create_dir_all(&upper).unwrap();
        let layers = [upper, lower];
        for (path, file, want) in [
            ("/data", "seed", "seeded"),
            ("/etc/up/data", "seed", "seeded"),
            ("/srv/escape", "img", "image's etc"),
        ] {
            let vol = tempfile::tempdir().unwrap();
            assert!(copy(&layers, None, path, vol.path()).unwrap(), "{path}");
            assert_eq!(
                fs::read_to_string(vol.path().join(file)).unwrap(),
                want,
                "{path}"
            );
        }
        let vol = tempfile::tempdir().unwrap();
        assert!(!copy(&layers, None, "/loop", vol.path()).unwrap());
        assert!(!copy(&layers, None, "/data/seed", vol.path()).unwrap());
    }

    /// A file capability (`security.capability`, e.g. `setcap cap_net_bind_service+ep`) of a
    /// file in the image must survive copy-up, as it survives unpacking and Docker's copy-up
    /// (continuity's `copyFileInfo` chowns first, then `copyXAttrs`). A chown clears the
    /// attribute, so the attributes must be written after the owner.
    #[test]
    fn a_file_capability_survives_copy_up() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        fs::create_dir_all(lower.join("srv/app")).unwrap();
        let bin = lower.join("srv/app/server");
        fs::write(&bin, "#!/bin/sh\n").unwrap();
        std::os::unix::fs::chown(&bin, Some(1000), Some(1000)).unwrap();
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        // VFS_CAP_REVISION_2 with the effective flag; permitted = cap_net_bind_service (10).
        let mut cap = Vec::new();
        for word in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
            cap.extend_from_slice(&word.to_le_bytes());
        }
        xattr::set(&bin, "security.capability", &cap).unwrap();
        assert_eq!(
            xattr::get(&bin, "security.capability").unwrap().as_deref(),
            Some(&cap[..])
        );
        let upper = tmp.path().join("upper");
        fs::create_dir_all(&upper).unwrap();
        let vol = tmp.path().join("vol");
        fs::create_dir(&vol).unwrap();
        assert!(copy(&[upper, lower], None, "/srv/app", &vol).unwrap());
        let m = fs::metadata(vol.join("server")).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o7777), (1000, 0o755));
        assert_eq!(
            xattr::get(vol.join("server"), "security.capability")
                .unwrap()
                .as_deref(),
            Some(&cap[..]),
            "the file capability was lost in copy-up"
        );
    }

    #[test]
    fn the_images_directory_is_copied_with_owners_modes_links_and_whiteouts() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        fs::create_dir_all(lower.join("var/lib/db/sub")).unwrap();
        fs::create_dir_all(&upper).unwrap();
        fs::write(lower.join("var/lib/db/a"), "alpha").unwrap();
        fs::hard_link(lower.join("var/lib/db/a"), lower.join("var/lib/db/sub/a2")).unwrap();
        fs::write(lower.join("var/lib/db/gone"), "x").unwrap();
        std::os::unix::fs::symlink("../a", lower.join("var/lib/db/sub/link")).unwrap();
        nix::unistd::mkfifo(&lower.join("var/lib/db/fifo"), Mode::S_IRWXU).unwrap();
        std::os::unix::fs::chown(lower.join("var/lib/db"), Some(999), Some(998)).unwrap();
        fs::set_permissions(lower.join("var/lib/db"), fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::chown(lower.join("var/lib/db/a"), Some(999), Some(999)).unwrap();
        fs::set_permissions(
            lower.join("var/lib/db/a"),
            fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        // The rw layer removed one file.
        fs::create_dir_all(upper.join("var/lib/db")).unwrap();
        std::os::unix::fs::chown(upper.join("var/lib/db"), Some(999), Some(998)).unwrap();
        fs::set_permissions(upper.join("var/lib/db"), fs::Permissions::from_mode(0o750)).unwrap();
        nix::sys::stat::mknod(
            &upper.join("var/lib/db/gone"),
            SFlag::S_IFCHR,
            Mode::empty(),
            0,
        )
        .unwrap();
        let vol = tmp.path().join("vol");
        fs::create_dir(&vol).unwrap();
        let layers = [upper.clone(), lower.clone()];
        assert!(copy(&layers, None, "/var/lib/db", &vol).unwrap());
        let m = fs::metadata(&vol).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (999, 998, 0o750));
        assert_eq!(fs::read_to_string(vol.join("a")).unwrap(), "alpha");
        let a = fs::metadata(vol.join("a")).unwrap();
        assert_eq!((a.uid(), a.mode() & 0o7777), (999, 0o640));
        let a2 = fs::metadata(vol.join("sub/a2")).unwrap();
        assert_eq!(a.ino(), a2.ino(), "a hard link stays one");
        assert_eq!(
            fs::read_link(vol.join("sub/link")).unwrap(),
            Path::new("../a")
        );
        assert!(fs::symlink_metadata(vol.join("fifo"))
            .unwrap()
            .file_type()
            .is_fifo());
        assert!(!vol.join("gone").exists(), "a whiteout hides the file");
        // A volume with content is not copied into again; a missing path copies nothing.
        assert!(!copy(&layers, None, "/var/lib/db", &vol).unwrap());
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        assert!(!copy(&layers, None, "/nowhere", &empty).unwrap());
        assert!(!copy(&layers, None, "/var/lib/db/a", &empty).unwrap());
        assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
    }
}
