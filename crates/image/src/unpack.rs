//! Layer unpacking: decompression by magic bytes, a root-relative tar extraction that never
//! writes outside its root, and Docker whiteouts converted to overlayfs form.
//!
//! Safety rule (ARCHITECTURE.md §8): every entry name is cleaned to plain components, `..` and
//! absolute names are rejected, and each parent directory is `lstat`ed on the way down: a
//! symlink among the parents is rejected instead of followed, so nothing can be written through
//! a link planted by an earlier entry. Files are created with `O_EXCL | O_NOFOLLOW` after the old
//! entry is removed. The tar crate's own `unpack_in` is not used (it skips `..` silently).
//! Layers are unpacked into an empty directory, so links in lower layers are never traversed.
//!
//! Everything done by path happens right after that entry's parents were checked. The one
//! thing deferred, directory times (set last, since creating children changes them), is
//! applied through directory fds opened one component at a time with `O_NOFOLLOW`, because a
//! later entry may have replaced a parent with a symlink by then.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;

use crate::budget::{Bounded, Budget};
use crate::error::{clip, ImageError, IoContext};
use crate::merged::MAX_DEPTH;

const WHITEOUT_PREFIX: &str = ".wh.";
const WHITEOUT_OPAQUE: &str = ".wh..wh..opq";
const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// How a layer blob or an archive is compressed, told by its first bytes: the formats
/// Docker's `DetectCompression` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// The media type of a layer with this compression (OCI's, where OCI has one).
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => "application/vnd.oci.image.layer.v1.tar",
            Compression::Gzip => "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Zstd => "application/vnd.oci.image.layer.v1.tar+zstd",
            // OCI names none; `docker load` tells the compression by the bytes anyway.
            Compression::Bzip2 => "application/vnd.oci.image.layer.v1.tar+bzip2",
            Compression::Xz => "application/vnd.oci.image.layer.v1.tar+xz",
        }
    }
}

/// Look at the first bytes without consuming them.
pub(crate) fn detect_compression(reader: &mut dyn BufRead) -> Result<Compression, ImageError> {
    let head = reader
        .fill_buf()
        .map_err(|e| ImageError::InvalidArgument(format!("read input: {e}")))?;
    Ok(if head.starts_with(&[0x1f, 0x8b, 0x08]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if head.starts_with(b"BZh") {
        Compression::Bzip2
    } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else {
        Compression::None
    })
}

/// A reader of the uncompressed stream, whatever the input's compression (plain, gzip,
/// bzip2, xz, zstd: Docker's `DecompressStream`), charged to `budget` as it is read: no
/// decompression in berth is unbounded.
pub fn decompress<'a>(
    reader: impl Read + 'a,
    budget: &'a Budget,
) -> Result<(Compression, Box<dyn Read + 'a>), ImageError> {
    let mut buffered = BufReader::with_capacity(256 * 1024, reader);
    let compression = detect_compression(&mut buffered)?;
    let out: Box<dyn Read + 'a> = match compression {
        Compression::None => Box::new(Bounded::new(buffered, budget)),
        Compression::Gzip => Box::new(Bounded::new(
            flate2::bufread::MultiGzDecoder::new(buffered),
            budget,
        )),
        Compression::Bzip2 => Box::new(Bounded::new(
            bzip2::bufread::MultiBzDecoder::new(buffered),
            budget,
        )),
        Compression::Xz => Box::new(Bounded::new(
            liblzma::bufread::XzDecoder::new_multi_decoder(buffered),
            budget,
        )),
        Compression::Zstd => Box::new(Bounded::new(
            zstd::stream::read::Decoder::with_buffer(buffered)
                .map_err(|e| ImageError::InvalidArgument(format!("zstd: {e}")))?,
            budget,
        )),
    };
    Ok((compression, out))
}

fn escape(entry: impl Into<String>) -> ImageError {
    ImageError::PathEscape {
        entry: entry.into(),
    }
}

fn too_deep(entry: &str) -> ImageError {
    bad_entry(
        entry,
        &format!("more than {MAX_DEPTH} nested directories (berth's limit)"),
    )
}

fn bad_entry(entry: &str, why: &str) -> ImageError {
    ImageError::InvalidArgument(format!("layer entry {}: {why}", clip(entry)))
}

/// A tar that does not read: the tar reader's (or the decompressor's) cause, never a path
/// of the store.
fn bad_tar(e: io::Error) -> ImageError {
    ImageError::InvalidArgument(format!("invalid layer tar: {}", clip(&e.to_string())))
}

/// Linux's limits on one name and on a whole path (`NAME_MAX`, `PATH_MAX`).
const NAME_MAX: usize = 255;
const PATH_MAX: usize = 4096;

/// Plain components only: `None` for absolute names and any `..`.
pub(crate) fn clean_relative(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Whether a relative symlink target, read from `parent`, stays inside the root.
/// Absolute targets are resolved against the container's root at run time (Docker accepts
/// them too), so only relative ones can climb out.
fn symlink_target_stays_inside(parent: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return true;
    }
    let mut depth: i64 = parent.components().count() as i64;
    for c in target.components() {
        match c {
            Component::ParentDir => depth -= 1,
            Component::Normal(_) => depth += 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    true
}

/// An overlay whiteout: a 0:0 character device.
fn is_whiteout(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    m.file_type().is_char_device() && m.rdev() == 0
}

/// Make sure every directory of `rel` under `root` exists and is a real directory (never a
/// symlink), creating missing ones with mode 0755 like Docker does.
/// One object made in the store, charged to `budget` (a 413 once it trips).
fn charge_object(budget: &Budget) -> Result<(), ImageError> {
    budget.charge_object().map_err(|e| budget.or(bad_tar(e)))
}

// `MAX_DEPTH` (merged.rs): the most directories an entry's path (or a hard link's target)
// may nest. Each parent is checked from the root, so the work for one entry grows with the
// square of its depth: a few KiB of gzip naming 200 files 1,900 directories deep kept berthd
// busy for 20 s. No real image comes near this. (The walks of a container's layers stop at
// the same depth.)

fn ensure_dirs(
    root: &Path,
    rel: &Path,
    entry: &str,
    create: Option<&Budget>,
) -> Result<(), ImageError> {
    if rel.components().count() > MAX_DEPTH {
        return Err(too_deep(entry));
    }
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.file_type().is_symlink() => return Err(escape(entry)),
            Ok(m) if m.is_dir() => {}
            // A whiteout made earlier in this layer, now a directory again.
            Ok(m) if create.is_some() && is_whiteout(&m) => {
                fs::remove_file(&cur).ctx("remove", &cur)?;
                fs::create_dir(&cur).ctx("create", &cur)?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)).ctx("chmod", &cur)?;
            }
            Ok(_) => return Err(bad_entry(entry, "a parent is not a directory")),
            // A hard link's target: the input's fault, said without the store's path.
            Err(e) if e.kind() == io::ErrorKind::NotFound && create.is_none() => {
                return Err(bad_entry(entry, "hard link to a missing file"))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(budget) = create {
                    charge_object(budget)?;
                }
                fs::create_dir(&cur).ctx("create", &cur)?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755)).ctx("chmod", &cur)?;
            }
            Err(e) => return Err(ImageError::io("stat", &cur, e)),
        }
    }
    Ok(())
}

/// Remove whatever is at `path` (not following links), unless `keep_dir` and it is a directory.
fn remove_existing(path: &Path, keep_dir: bool) -> Result<bool, ImageError> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            if keep_dir {
                return Ok(true);
            }
            fs::remove_dir_all(path).ctx("remove", path)?;
        }
        Ok(_) => fs::remove_file(path).ctx("remove", path)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(ImageError::io("stat", path, e)),
    }
    Ok(false)
}

fn mknod(path: &Path, kind: SFlag, mode: u32, major: u32, minor: u32) -> Result<(), ImageError> {
    nix::sys::stat::mknod(
        path,
        kind,
        Mode::from_bits_truncate(mode),
        libc::makedev(major, minor),
    )
    .map_err(|e| ImageError::io("mknod", path, e.into()))
}

fn set_mtime(path: &Path, mtime: u64) -> Result<(), ImageError> {
    let t = TimeSpec::new(mtime as i64, 0);
    nix::sys::stat::utimensat(None, path, &t, &t, UtimensatFlags::NoFollowSymlink)
        .map_err(|e| ImageError::io("set times on", path, e.into()))
}

/// A directory opened by [`open_dir_beneath`]; closed on drop.
struct DirFd(RawFd);

impl Drop for DirFd {
    fn drop(&mut self) {
        let _ = nix::unistd::close(self.0);
    }
}

/// Open `rel` (plain components) under `root` as a directory without following a symlink at
/// any component: each one is opened `O_NOFOLLOW | O_DIRECTORY` relative to the directory
/// before it. `None` when a component is gone or no longer a directory: a later entry of the
/// layer replaced it (with a symlink, a file or a whiteout).
fn open_dir_beneath(root: &Path, rel: &Path) -> Result<Option<DirFd>, ImageError> {
    let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir = DirFd(
        nix::fcntl::open(root, flags, Mode::empty())
            .map_err(|e| ImageError::io("open", root, e.into()))?,
    );
    for c in rel.components() {
        let Component::Normal(name) = c else {
            return Err(escape(rel.display().to_string()));
        };
        match nix::fcntl::openat(Some(dir.0), name, flags | OFlag::O_NOFOLLOW, Mode::empty()) {
            Ok(fd) => dir = DirFd(fd),
            Err(Errno::ELOOP | Errno::ENOTDIR | Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(ImageError::io("open", &root.join(rel), e.into())),
        }
    }
    Ok(Some(dir))
}

/// Set a directory's times through a fd from [`open_dir_beneath`], never by path.
fn set_dir_mtime(root: &Path, rel: &Path, mtime: u64) -> Result<(), ImageError> {
    let Some(dir) = open_dir_beneath(root, rel)? else {
        return Ok(()); // replaced later in the layer: its times are not ours to set
    };
    let t = TimeSpec::new(mtime as i64, 0);
    nix::sys::stat::futimens(dir.0, &t, &t)
        .map_err(|e| ImageError::io("set times on", &root.join(rel), e.into()))
}

/// What one unpack produced.
#[derive(Debug, Default)]
pub(crate) struct UnpackStats {
    /// the layer's size as Docker's `DiffSize` (see `snapshot::disk_usage`)
    pub size: u64,
}

/// Unpack an uncompressed layer tar into `root` (an empty directory), charging the file
/// content written to `budget`. A tar that does not read is a 400 with the reader's cause.
pub(crate) fn unpack_layer(
    reader: impl Read,
    root: &Path,
    budget: &Budget,
) -> Result<UnpackStats, ImageError> {
    let mut archive = crate::BoundedTar::new(reader);
    // One record per directory, however often the layer names it.
    let mut dir_times: std::collections::HashMap<PathBuf, u64> = Default::default();
    let entries = archive.entries().map_err(|e| budget.or(bad_tar(e)))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| budget.or(bad_tar(e)))?;
        match unpack_entry(&mut entry, root, budget) {
            Ok(Some((rel, mtime))) => {
                dir_times.insert(rel, mtime);
            }
            Ok(None) => {}
            Err(e) => return Err(budget.or(e)),
        }
    }
    // Directory mtimes last: creating their children changed them. The last entry for a
    // directory wins (setting a child's times leaves its parent's alone, so order is free).
    for (rel, mtime) in &dir_times {
        set_dir_mtime(root, rel, *mtime)?;
    }
    // Measured on what was written, as Docker measures a layer: a file the tar names twice
    // counts once, a symlink by its target's length.
    Ok(UnpackStats {
        size: crate::snapshot::disk_usage(root),
    })
}

/// Copies a regular file's content from the tar into `file`: a read error is the input's
/// (400), a write error the store's; every chunk is charged to `budget` first.
fn copy_content(
    entry: &mut impl Read,
    file: &mut fs::File,
    dest: &Path,
    budget: &Budget,
) -> Result<(), ImageError> {
    use std::io::Write;
    let mut buf = vec![0u8; 128 * 1024];
    let (mut size, mut written_back) = (0u64, 0u64);
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => {
                if size > written_back {
                    crate::content::start_writeback(file, written_back, size - written_back);
                }
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(budget.or(bad_tar(e))),
        };
        budget
            .charge_written(n as u64)
            .map_err(|e| budget.or(bad_tar(e)))?;
        file.write_all(&buf[..n]).ctx("write", dest)?;
        size += n as u64;
        if size - written_back >= crate::content::WRITEBACK_EVERY {
            crate::content::start_writeback(file, written_back, size - written_back);
            written_back = size;
        }
    }
}

/// Unpack one entry; returns a directory (relative to `root`) whose mtime must be set at the
/// end.
fn unpack_entry<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    root: &Path,
    budget: &Budget,
) -> Result<Option<(PathBuf, u64)>, ImageError> {
    let raw = entry.path().map_err(bad_tar)?.into_owned();
    let name = raw.display().to_string();
    let rel = clean_relative(&raw).ok_or_else(|| escape(&name))?;
    // Said here, with the name cut short: the kernel's ENAMETOOLONG would name the store's
    // path, and an 8 MiB PAX name would make an 8 MiB error.
    if rel.as_os_str().len() > PATH_MAX || rel.components().any(|c| c.as_os_str().len() > NAME_MAX)
    {
        return Err(bad_entry(&name, "name too long"));
    }
    if rel.components().count() > MAX_DEPTH {
        return Err(too_deep(&name));
    }
    let Some(file_name) = rel.file_name().map(OsStr::to_os_string) else {
        return Ok(None); // "./": the root itself, which the snapshot owns
    };
    let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
    let header = entry.header().clone();
    let kind = header.entry_type();
    let fname = file_name.as_bytes();

    // Docker whiteouts become overlayfs whiteouts.
    if fname == WHITEOUT_OPAQUE.as_bytes() {
        ensure_dirs(root, &parent_rel, &name, Some(budget))?;
        let dir = root.join(&parent_rel);
        xattr::set(&dir, OVERLAY_OPAQUE_XATTR, b"y").ctx("set opaque xattr on", &dir)?;
        return Ok(None);
    }
    if let Some(hidden) = fname.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if hidden.starts_with(WHITEOUT_PREFIX.as_bytes()) {
            return Ok(None); // aufs metadata (.wh..wh.plnk etc.): meaningless here
        }
        // `.wh...` would remove the directory above (the root's parent at the top);
        // `.wh..` and `.wh.` the directory the whiteout is in.
        if hidden == b".." || hidden.contains(&b'/') {
            return Err(escape(&name));
        }
        if hidden.is_empty() || hidden == b"." {
            return Err(bad_entry(&name, "whiteout names no file"));
        }
        ensure_dirs(root, &parent_rel, &name, Some(budget))?;
        let target = root.join(&parent_rel).join(OsStr::from_bytes(hidden));
        remove_existing(&target, false)?;
        charge_object(budget)?;
        mknod(&target, SFlag::S_IFCHR, 0, 0, 0)?;
        std::os::unix::fs::lchown(&target, Some(0), Some(0)).ctx("chown", &target)?;
        return Ok(None);
    }

    ensure_dirs(root, &parent_rel, &name, Some(budget))?;
    let dest = root.join(&rel);
    let mode = header.mode().unwrap_or(0o644) & 0o7777;
    let mtime = header.mtime().unwrap_or(0);
    match kind {
        tar::EntryType::Directory => {
            if !remove_existing(&dest, true)? {
                charge_object(budget)?;
                fs::create_dir(&dest).ctx("create", &dest)?;
            }
        }
        tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
            remove_existing(&dest, false)?;
            charge_object(budget)?;
            let mut f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .custom_flags(libc::O_NOFOLLOW)
                .mode(0o600)
                .open(&dest)
                .ctx("create", &dest)?;
            copy_content(entry, &mut f, &dest, budget)?;
        }
        tar::EntryType::Symlink => {
            let target = link_name(&header, &name)?;
            if !symlink_target_stays_inside(&parent_rel, &target) {
                return Err(escape(format!("{name} -> {}", target.display())));
            }
            remove_existing(&dest, false)?;
            charge_object(budget)?;
            std::os::unix::fs::symlink(&target, &dest).ctx("symlink", &dest)?;
        }
        tar::EntryType::Link => {
            let target = link_name(&header, &name)?;
            let target_rel = clean_relative(&target)
                .filter(|t| t.file_name().is_some())
                .ok_or_else(|| escape(format!("{name} => {}", target.display())))?;
            let source_parent = target_rel.parent().unwrap_or(Path::new(""));
            ensure_dirs(root, source_parent, &name, None)?;
            let source = root.join(&target_rel);
            let meta = match fs::symlink_metadata(&source) {
                Ok(m) => m,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(bad_entry(&name, "hard link to a missing file"))
                }
                Err(e) => return Err(ImageError::io("stat", &source, e)),
            };
            if meta.is_dir() {
                return Err(bad_entry(&name, "hard link to a directory"));
            }
            if source != dest {
                remove_existing(&dest, false)?;
                charge_object(budget)?;
                // linkat(2) without AT_SYMLINK_FOLLOW: a link to a symlink links the symlink.
                match fs::hard_link(&source, &dest) {
                    Err(e) if e.raw_os_error() == Some(libc::EMLINK) => {
                        return Err(bad_entry(&name, "too many hard links to one file"))
                    }
                    r => r.ctx("link", &dest)?,
                }
            }
            return Ok(None); // shares the inode and so its metadata
        }
        tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
            remove_existing(&dest, false)?;
            let major = header.device_major().ok().flatten().unwrap_or(0);
            let minor = header.device_minor().ok().flatten().unwrap_or(0);
            let sflag = match kind {
                tar::EntryType::Char => SFlag::S_IFCHR,
                tar::EntryType::Block => SFlag::S_IFBLK,
                _ => SFlag::S_IFIFO,
            };
            charge_object(budget)?;
            mknod(&dest, sflag, mode, major, minor)?;
        }
        other => {
            tracing::debug!(entry = %name, kind = ?other, "skipping unsupported tar entry type");
            return Ok(None);
        }
    }
    apply_metadata(entry, &header, &dest, mode)?;
    if kind == tar::EntryType::Directory {
        return Ok(Some((rel, mtime)));
    }
    set_mtime(&dest, mtime)?;
    Ok(None)
}

fn link_name(header: &tar::Header, entry: &str) -> Result<PathBuf, ImageError> {
    header
        .link_name()
        .ok()
        .flatten()
        .map(|l| l.into_owned())
        .ok_or_else(|| bad_entry(entry, "link without a target"))
}

/// Ownership, then mode (chown clears set-id bits), then xattrs from PAX `SCHILY.xattr.*`.
fn apply_metadata<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    header: &tar::Header,
    dest: &Path,
    mode: u32,
) -> Result<(), ImageError> {
    let uid = header.uid().unwrap_or(0) as u32;
    let gid = header.gid().unwrap_or(0) as u32;
    std::os::unix::fs::lchown(dest, Some(uid), Some(gid)).ctx("chown", dest)?;
    let is_symlink = header.entry_type() == tar::EntryType::Symlink;
    if !is_symlink {
        fs::set_permissions(dest, fs::Permissions::from_mode(mode)).ctx("chmod", dest)?;
    }
    let Ok(Some(pax)) = entry.pax_extensions() else {
        return Ok(());
    };
    for ext in pax.flatten() {
        let Ok(key) = ext.key() else { continue };
        let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
            continue;
        };
        // Overlay's own attributes come only from our whiteout conversion: a layer that sets
        // trusted.overlay.redirect/metacopy itself could steer the overlay mount.
        if attr.starts_with("trusted.overlay.") || (is_symlink && attr.starts_with("user.")) {
            continue;
        }
        match xattr::set(dest, attr, ext.value_bytes()) {
            Ok(()) => {}
            // Docker ignores these too: not every filesystem supports every namespace.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
                tracing::warn!(path = %dest.display(), attr, "ignoring xattr: {e}");
            }
            Err(e) => return Err(ImageError::io("set xattr on", dest, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_relative_rejects_parent_and_absolute() {
        assert_eq!(
            clean_relative(Path::new("./a/b")),
            Some(PathBuf::from("a/b"))
        );
        assert_eq!(clean_relative(Path::new("a/../b")), None);
        assert_eq!(clean_relative(Path::new("/etc/passwd")), None);
        assert_eq!(clean_relative(Path::new("./")), Some(PathBuf::new()));
    }

    #[test]
    fn relative_symlinks_may_not_climb_out() {
        assert!(symlink_target_stays_inside(
            Path::new("bin"),
            Path::new("busybox")
        ));
        assert!(symlink_target_stays_inside(
            Path::new("usr/bin"),
            Path::new("../../bin/x")
        ));
        assert!(!symlink_target_stays_inside(
            Path::new("usr/bin"),
            Path::new("../../../x")
        ));
        assert!(!symlink_target_stays_inside(Path::new(""), Path::new("..")));
        assert!(symlink_target_stays_inside(
            Path::new(""),
            Path::new("/etc/passwd")
        ));
    }

    /// A tar of empty regular files and directories (names ending in `/`), names written raw.
    fn tar_of(names: &[&str]) -> Vec<u8> {
        tar_with_mtimes(&names.iter().map(|n| (*n, 0)).collect::<Vec<_>>())
    }

    fn tar_with_mtimes(entries: &[(&str, u64)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, mtime) in entries {
            let mut h = tar::Header::new_gnu();
            let dir = name.ends_with('/');
            h.set_entry_type(if dir {
                tar::EntryType::Directory
            } else {
                tar::EntryType::Regular
            });
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            h.set_mode(if dir { 0o755 } else { 0o644 });
            h.set_size(0);
            h.set_mtime(*mtime);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    /// A hard link to nothing is the input's fault: a 400 naming the entry, not the store's
    /// path (it used to say `hard link to missing /var/lib/berth/image/snapshots/tmp-...`).
    #[test]
    fn hard_links_to_missing_files_are_refused_without_the_stores_path() {
        for target in ["missing", "nodir/missing"] {
            let tmp = tempfile::tempdir().unwrap();
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Link);
            h.set_size(0);
            b.append_link(&mut h, "hl", target).unwrap();
            let tar = b.into_inner().unwrap();
            let e = unpack_layer(&tar[..], tmp.path(), &Budget::unlimited()).unwrap_err();
            assert!(matches!(e, ImageError::InvalidArgument(_)), "{e:?}");
            let text = e.to_string();
            assert_eq!(text, "layer entry hl: hard link to a missing file");
        }
    }

    #[test]
    fn whiteouts_naming_no_file_are_rejected_and_remove_nothing() {
        for (whiteout, escapes) in [
            (".wh...", true),
            ("a/.wh...", true),
            (".wh..", false),
            ("a/.wh..", false),
            (".wh.", false),
            ("a/.wh.", false),
        ] {
            let tmp = tempfile::tempdir().unwrap();
            let parent = tmp.path().join("parent");
            let root = parent.join("root");
            fs::create_dir_all(&root).unwrap();
            fs::write(parent.join("sibling"), b"s").unwrap();
            let tar = tar_of(&["a/", "a/keep", "top", whiteout]);
            let e = unpack_layer(&tar[..], &root, &Budget::unlimited()).unwrap_err();
            assert_eq!(
                e.kind(),
                crate::ErrorKind::InvalidArgument,
                "{whiteout}: {e}"
            );
            assert!(e.to_string().contains(whiteout), "{e}");
            assert_eq!(
                e.to_string().ends_with("path escapes the layer root"),
                escapes,
                "{e}"
            );
            assert!(parent.join("sibling").is_file(), "{whiteout}");
            assert!(root.join("a/keep").is_file(), "{whiteout}");
            assert!(root.join("top").is_file(), "{whiteout}");
        }
    }

    #[test]
    fn the_last_entry_for_a_directory_sets_its_times() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let tar = tar_with_mtimes(&[
            ("d/", 1_000),
            ("d/sub/", 3_000),
            ("d/f", 5_000),
            ("d/", 2_000),
            ("d/sub/", 4_000),
        ]);
        unpack_layer(&tar[..], tmp.path(), &Budget::unlimited()).unwrap();
        let mtime = |p: &str| fs::symlink_metadata(tmp.path().join(p)).unwrap().mtime();
        assert_eq!(
            (mtime("d"), mtime("d/sub"), mtime("d/f")),
            (2_000, 4_000, 5_000)
        );
    }

    #[test]
    fn compression_is_told_by_magic_bytes() {
        let mut plain: &[u8] = b"hello";
        assert_eq!(detect_compression(&mut plain).unwrap(), Compression::None);
        let mut gz: &[u8] = &[0x1f, 0x8b, 8, 0];
        assert_eq!(detect_compression(&mut gz).unwrap(), Compression::Gzip);
        let mut zst: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 0];
        assert_eq!(detect_compression(&mut zst).unwrap(), Compression::Zstd);
        let mut bz: &[u8] = b"BZh91AY";
        assert_eq!(detect_compression(&mut bz).unwrap(), Compression::Bzip2);
        let mut xz: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0, 0];
        assert_eq!(detect_compression(&mut xz).unwrap(), Compression::Xz);
    }
}
