//! A read-only merged view of overlay layer directories, as a container sees its root: the
//! top-most entry of a name wins, a whiteout (a 0:0 character device) hides the name in the
//! layers below, an opaque directory (`trusted.overlay.opaque=y`) hides their whole
//! directory, and a non-directory hides a directory below it.
//!
//! Everything is reached through directory descriptors, one component at a time, never by a
//! path through the layers: a running container can swap any directory of its rw layer for a
//! symlink at any moment, and a walk by path would then follow it out of the layer (onto the
//! host). Each name is opened or `lstat`ed as `/proc/self/fd/<dir>/<name>` with
//! `O_NOFOLLOW`: the magic link is the directory itself, and the last component is never
//! followed. A name that changed between `lstat` and `open` is taken as gone.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The attribute overlayfs marks an opaque directory with.
pub(crate) const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// Attributes of overlay features this view does not follow (renamed directories, metadata
/// only copy-ups); the store's layers never have them, and its mounts do not enable them.
const UNFOLLOWED_XATTRS: [&str; 2] = ["trusted.overlay.redirect", "trusted.overlay.metacopy"];

/// The most directories a path may nest: in a layer berth unpacks (unpack.rs), and in the
/// walks of a container's layers (a deeper commit could not be unpacked; it also bounds a
/// walk's stack and open directories).
pub(crate) const MAX_DEPTH: usize = 256;

/// The error for a tree deeper than [`MAX_DEPTH`].
pub(crate) fn too_deep(shown: &Path) -> io::Error {
    io::Error::other(format!(
        "{}: more than {MAX_DEPTH} nested directories (berth's limit)",
        shown.display()
    ))
}

/// `/proc/self/fd/<dir>/<name>`: `name` in the directory `dir` is, whatever path it had.
pub(crate) fn at(dir: &File, name: &OsStr) -> PathBuf {
    Path::new("/proc/self/fd")
        .join(dir.as_raw_fd().to_string())
        .join(name)
}

/// `lstat` of `name` in `dir`; `None` when it does not exist.
pub(crate) fn lstat_at(dir: &File, name: &OsStr) -> io::Result<Option<Metadata>> {
    match fs::symlink_metadata(at(dir, name)) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the directory `name` in `dir` (never through a symlink); `None` when it is gone or
/// no longer a directory.
pub(crate) fn open_dir_at(dir: &File, name: &OsStr) -> io::Result<Option<File>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(at(dir, name));
    match opened {
        Ok(f) => Ok(Some(f)),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Opens the regular file `name` in `dir` for reading, if it is still the file `expected`
/// describes (same device and inode): `None` when it was replaced or removed meanwhile. Never
/// follows a symlink and never blocks on a FIFO swapped in.
pub(crate) fn open_file_at(
    dir: &File,
    name: &OsStr,
    expected: &Metadata,
) -> io::Result<Option<File>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(at(dir, name));
    let file = match opened {
        Ok(f) => f,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ELOOP | libc::ENXIO)
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let m = file.metadata()?;
    if !m.is_file() || m.dev() != expected.dev() || m.ino() != expected.ino() {
        return Ok(None);
    }
    Ok(Some(file))
}

/// The target of the symlink `name` in `dir`.
pub(crate) fn read_link_at(dir: &File, name: &OsStr) -> io::Result<PathBuf> {
    fs::read_link(at(dir, name))
}

/// An extended attribute of `name` in `dir` (not of what a symlink points to).
pub(crate) fn xattr_at(dir: &File, name: &OsStr, attr: &str) -> io::Result<Option<Vec<u8>>> {
    match xattr::get(at(dir, name), attr) {
        Ok(v) => Ok(v),
        // A filesystem without xattrs, or a name gone meanwhile: no attribute.
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::ENOENT)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An overlay whiteout: a character device 0:0.
pub(crate) fn is_whiteout(m: &Metadata) -> bool {
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Whether the open directory `dir` is opaque: what lies below it in lower layers is hidden.
pub(crate) fn is_opaque(dir: &File) -> io::Result<bool> {
    Ok(xattr_at(dir, OsStr::new("."), OPAQUE_XATTR)?.is_some_and(|v| v == b"y"))
}

/// Refuses a directory that uses an overlay feature the view does not follow: a walk of it
/// would show a tree the container does not see.
pub(crate) fn check_followed(dir: &File, shown: &Path) -> io::Result<()> {
    for attr in UNFOLLOWED_XATTRS {
        if xattr_at(dir, OsStr::new("."), attr)?.is_some() {
            return Err(io::Error::other(format!(
                "{} uses the overlay feature {attr}, which berth does not read",
                shown.display()
            )));
        }
    }
    Ok(())
}

/// The layers of one view, top first, each its root directory opened once.
pub(crate) struct Layers {
    roots: Vec<File>,
    /// Index of a layer whose directories never hide a lower directory's metadata (the
    /// shared init layer: its `/etc` is a mount point's parent, not the image's `/etc`).
    transparent_dirs: Option<usize>,
}

impl Layers {
    /// Opens each layer's root directory (top first). `transparent_dirs`: see the field.
    pub fn open(dirs: &[PathBuf], transparent_dirs: Option<usize>) -> io::Result<Layers> {
        let mut roots = Vec::with_capacity(dirs.len());
        for d in dirs {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
                .open(d)
                .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", d.display())))?;
            roots.push(f);
        }
        Ok(Layers {
            roots,
            transparent_dirs,
        })
    }

    /// Layer `layer`'s own root directory.
    pub fn layer_root(&self, layer: usize) -> &File {
        &self.roots[layer]
    }

    /// The root directory of the merged view.
    pub fn root(&self) -> io::Result<MergedDir> {
        let mut parts = Vec::new();
        for (i, root) in self.roots.iter().enumerate() {
            let dup = root.try_clone()?;
            let opaque = is_opaque(&dup)?;
            parts.push((i, dup));
            if opaque {
                break;
            }
        }
        Ok(MergedDir { parts })
    }
}

/// One entry of a merged directory: the top-most occurrence of its name.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Index (into [`MergedDir`]'s parts) of the directory that holds it.
    pub part: usize,
    /// Its metadata (`lstat`). For a directory under a transparent layer's, the metadata of
    /// the directory below.
    pub meta: Metadata,
}

/// One directory of the merged view: the directories of the layers that make it, top first.
pub(crate) struct MergedDir {
    parts: Vec<(usize, File)>,
}

impl MergedDir {
    /// The directory of part `part`, for reading an entry's content.
    pub fn holder(&self, part: usize) -> &File {
        &self.parts[part].1
    }

    /// The layer (index into [`Layers`]) part `part` belongs to.
    pub fn layer_of(&self, part: usize) -> usize {
        self.parts[part].0
    }

    /// The top-most visible occurrence of `name`, or `None` (absent or whited out).
    pub fn lookup(&self, name: &OsStr, layers: &Layers) -> io::Result<Option<Entry>> {
        let mut found: Option<Entry> = None;
        for (p, (layer, dir)) in self.parts.iter().enumerate() {
            let Some(meta) = lstat_at(dir, name)? else {
                continue;
            };
            if is_whiteout(&meta) {
                break;
            }
            match &mut found {
                None => {
                    let see_through = meta.is_dir() && layers.transparent_dirs == Some(*layer);
                    found = Some(Entry { part: p, meta });
                    if !see_through {
                        break;
                    }
                }
                Some(entry) => {
                    // Below a transparent layer's directory: a directory lends its metadata.
                    if meta.is_dir() {
                        entry.meta = meta;
                    }
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Every visible entry, by name.
    pub fn entries(&self, layers: &Layers) -> io::Result<BTreeMap<OsString, Entry>> {
        let mut names: BTreeMap<OsString, ()> = BTreeMap::new();
        for (_, dir) in &self.parts {
            for e in fs::read_dir(at(dir, OsStr::new(".")))? {
                names.insert(e?.file_name(), ());
            }
        }
        let mut out = BTreeMap::new();
        for name in names.into_keys() {
            if let Some(entry) = self.lookup(&name, layers)? {
                out.insert(name, entry);
            }
        }
        Ok(out)
    }

    /// The merged directory `name`, when the view has a directory there.
    pub fn child(&self, name: &OsStr, shown: &Path) -> io::Result<Option<MergedDir>> {
        let mut parts = Vec::new();
        for (layer, dir) in &self.parts {
            let Some(meta) = lstat_at(dir, name)? else {
                continue;
            };
            if is_whiteout(&meta) || !meta.is_dir() {
                break;
            }
            let Some(sub) = open_dir_at(dir, name)? else {
                break;
            };
            check_followed(&sub, shown)?;
            let opaque = is_opaque(&sub)?;
            parts.push((*layer, sub));
            if opaque {
                break;
            }
        }
        Ok((!parts.is_empty()).then_some(MergedDir { parts }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn names(dir: &MergedDir, layers: &Layers) -> Vec<String> {
        dir.entries(layers)
            .unwrap()
            .keys()
            .map(|k| k.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn whiteouts_and_opaque_directories_hide_the_layers_below() {
        if !nix::unistd::geteuid().is_root() {
            panic!("this test needs root (mknod of whiteouts)");
        }
        let tmp = tempfile::tempdir().unwrap();
        let (top, low) = (tmp.path().join("top"), tmp.path().join("low"));
        for d in ["a", "b", "c"] {
            fs::create_dir_all(low.join(d)).unwrap();
            fs::write(low.join(d).join("old"), "x").unwrap();
        }
        fs::write(low.join("gone"), "x").unwrap();
        fs::create_dir_all(top.join("a")).unwrap();
        fs::write(top.join("a/new"), "y").unwrap();
        fs::create_dir_all(top.join("b")).unwrap();
        xattr::set(top.join("b"), OPAQUE_XATTR, b"y").unwrap();
        fs::write(top.join("b/new"), "y").unwrap();
        whiteout(&top.join("gone"));
        fs::write(top.join("c"), "now a file").unwrap();
        let layers = Layers::open(&[top, low], None).unwrap();
        let root = layers.root().unwrap();
        assert_eq!(names(&root, &layers), ["a", "b", "c"]);
        let shown = Path::new("/");
        let a = root.child(OsStr::new("a"), shown).unwrap().unwrap();
        assert_eq!(names(&a, &layers), ["new", "old"]);
        let b = root.child(OsStr::new("b"), shown).unwrap().unwrap();
        assert_eq!(names(&b, &layers), ["new"]);
        assert!(root.child(OsStr::new("c"), shown).unwrap().is_none());
        assert!(root
            .lookup(OsStr::new("c"), &layers)
            .unwrap()
            .unwrap()
            .meta
            .is_file());
    }

    #[test]
    fn a_transparent_layer_lends_no_metadata_to_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let (init, low) = (tmp.path().join("init"), tmp.path().join("low"));
        fs::create_dir_all(init.join("etc")).unwrap();
        fs::write(init.join("etc/hosts"), "").unwrap();
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::write(low.join("etc/hosts"), "image's").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(low.join("etc"), fs::Permissions::from_mode(0o700)).unwrap();
        let layers = Layers::open(&[init, low], Some(0)).unwrap();
        let root = layers.root().unwrap();
        let etc = root.lookup(OsStr::new("etc"), &layers).unwrap().unwrap();
        assert_eq!(etc.meta.mode() & 0o7777, 0o700);
        let etc_dir = root
            .child(OsStr::new("etc"), Path::new("/etc"))
            .unwrap()
            .unwrap();
        let hosts = etc_dir
            .lookup(OsStr::new("hosts"), &layers)
            .unwrap()
            .unwrap();
        assert_eq!(
            hosts.meta.len(),
            0,
            "the init layer's file hides the image's"
        );
    }
}
