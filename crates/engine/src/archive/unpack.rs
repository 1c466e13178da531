//! `PUT /containers/{id}/archive`: extracts a tar into a directory of the container, with
//! the rules of Docker's `archive.Unpack`: names are cleaned and joined below the
//! destination (a leading `/` is ignored; one that climbs out is refused: `"../x" is
//! outside of "/dest"`), missing parents are made (0755, root), an existing entry is
//! replaced unless both are directories (merged), and with `noOverwriteDirNonDir` a
//! directory and a non-directory never replace each other. Ownership is the tar's, or the
//! container user's with `copyUIDGID`; a relative symlink or a hard link that points above
//! the destination is refused (Docker's breakout checks); directory times are set last.
//!
//! How it stays inside the root: each entry's parent directory is resolved inside the root
//! (`RESOLVE_IN_ROOT`, so a symlinked parent such as `/bin -> usr/bin` works as it does in
//! Docker) and checked not to be a kernel filesystem; the entry itself is made by name in
//! that descriptor (`mkdirat`, `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`, `symlinkat`,
//! `mknodat`, `linkat` without following), and its owner, mode, attributes and times are
//! set on a descriptor of what was made or with `AT_SYMLINK_NOFOLLOW`. Whatever the
//! container swaps meanwhile, nothing is written outside its root and no existing file is
//! opened for writing (it is removed and made anew, as Docker does). Everything made and
//! every byte written is charged to the operation's [`Budget`].

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use berth_image::{Budget, ImageError};
use berth_runtime::{openat2, Resolve};
use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags};

use super::paths::{self, quote, show};
use super::{kernel_filesystem, kind, lstat_at, names, open_child, open_in_root, stat_fd};
use crate::error::EngineError;

/// How an archive is extracted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// Docker's `noOverwriteDirNonDir`.
    pub no_overwrite_dir_non_dir: bool,
    /// Every entry's owner instead of the tar's (`copyUIDGID` with a container user).
    pub owner: Option<(u32, u32)>,
}

/// The deepest an entry may nest below the destination, and the deepest a replaced
/// directory is removed: each level costs a lookup from the root.
const MAX_DEPTH: usize = 256;

/// Extracts the tar `input` into `dest` (a clean absolute path inside the root, every
/// symlink resolved: the destination directory).
pub(crate) fn unpack(
    root: BorrowedFd<'_>,
    dest: &[u8],
    input: impl Read,
    opts: &Options,
    budget: &Budget,
) -> Result<(), EngineError> {
    let mut u = Unpacker {
        root,
        dest,
        opts,
        budget,
        parent: None,
        dirs: Default::default(),
    };
    u.run(input).map_err(
        |e| match budget.or(ImageError::InvalidArgument(String::new())) {
            ImageError::TooLarge(m) => EngineError::Image(ImageError::TooLarge(m)),
            _ => e,
        },
    )
}

struct Unpacker<'a> {
    root: BorrowedFd<'a>,
    dest: &'a [u8],
    opts: &'a Options,
    budget: &'a Budget,
    /// The parent directory resolved last: the next entry is most often in it too.
    parent: Option<(Vec<u8>, OwnedFd)>,
    /// Directories whose times are set at the end: (parent, name) -> mtime, one record per
    /// directory however often the archive names it.
    dirs: std::collections::HashMap<(Vec<u8>, Vec<u8>), u64>,
}

fn bad_tar(e: io::Error) -> EngineError {
    EngineError::Invalid(format!("invalid tar archive: {e}"))
}

/// An errno as Go writes it (`no such file or directory`).
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let d = Errno::from_raw(n).desc();
            let mut c = d.chars();
            match c.next() {
                Some(f) => f.to_lowercase().chain(c).collect(),
                None => d.to_string(),
            }
        }
        None => e.to_string(),
    }
}

/// A failed filesystem call on a path of the container, as Go words it (`mkdir /x: not a
/// directory`): 400 when the archive or the container's files caused it, 500 otherwise.
fn fs_err(op: &str, path: &[u8], e: impl Into<io::Error>) -> EngineError {
    let e = e.into();
    let text = format!("{op} {}: {}", show(path), errno_text(&e));
    match e.raw_os_error() {
        Some(
            libc::ENOENT
            | libc::ENOTDIR
            | libc::EISDIR
            | libc::EEXIST
            | libc::ELOOP
            | libc::ENAMETOOLONG
            | libc::EXDEV
            | libc::EMLINK
            | libc::EROFS
            | libc::EBUSY
            | libc::ENOTEMPTY
            | libc::EINVAL,
        ) => EngineError::Invalid(text),
        _ => EngineError::Internal(text),
    }
}

fn times(mtime: u64) -> TimeSpec {
    TimeSpec::new(mtime.min(i64::MAX as u64) as i64, 0)
}

impl Unpacker<'_> {
    fn run(&mut self, input: impl Read) -> Result<(), EngineError> {
        let mut archive = berth_image::BoundedTar::new(input);
        for entry in archive.entries().map_err(bad_tar)? {
            let mut entry = entry.map_err(bad_tar)?;
            self.entry(&mut entry)?;
        }
        // Directory times last: making their children changed them. A directory replaced
        // meanwhile is left alone.
        for ((parent, name), mtime) in std::mem::take(&mut self.dirs) {
            if let Ok(p) = open_in_root(self.root, &parent, libc::O_PATH | libc::O_DIRECTORY) {
                let t = times(mtime);
                let _ = nix::sys::stat::utimensat(
                    Some(p.as_raw_fd()),
                    OsStr::from_bytes(&name),
                    &t,
                    &t,
                    UtimensatFlags::NoFollowSymlink,
                );
            }
        }
        Ok(())
    }

    fn charge(&self) -> Result<(), EngineError> {
        self.budget
            .charge_object()
            .map_err(|e| EngineError::Internal(e.to_string()))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), EngineError> {
        let header = entry.header().clone();
        let kind_of = header.entry_type();
        if kind_of.is_pax_global_extensions() {
            return Ok(());
        }
        let name = entry.path_bytes().into_owned();
        let comps = paths::entry_components(&name).ok_or_else(|| {
            EngineError::Invalid(format!(
                "{} is outside of {}",
                quote(&paths::clean(&name)),
                quote(self.dest)
            ))
        })?;
        if comps.len() > MAX_DEPTH {
            return Err(EngineError::Invalid(format!(
                "{}: more than {MAX_DEPTH} nested directories (berth's limit)",
                quote(&name)
            )));
        }
        let is_dir = kind_of == tar::EntryType::Directory;
        let Some((base, parents)) = comps.split_last() else {
            // "." is the destination itself, a directory.
            if is_dir {
                return Ok(());
            }
            return Err(EngineError::Invalid(format!(
                "cannot overwrite directory {} with non-directory {}",
                quote(self.dest),
                quote(self.dest)
            )));
        };
        let parent_path = paths::join(self.dest, parents);
        let full = paths::join(self.dest, &comps);
        let parent = self.parent_dir(&parent_path)?;
        let existing = match lstat_at(parent.as_fd(), base) {
            Ok(st) => Some(st),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => None,
            Err(e) => return Err(fs_err("lstat", &full, e)),
        };
        let mut merge = false;
        let mut mount_root = false;
        if let Some(st) = existing {
            let existing_dir = kind(&st) == SFlag::S_IFDIR;
            if self.opts.no_overwrite_dir_non_dir && existing_dir && !is_dir {
                return Err(EngineError::Invalid(format!(
                    "cannot overwrite directory {} with non-directory {}",
                    quote(&full),
                    quote(self.dest)
                )));
            }
            if self.opts.no_overwrite_dir_non_dir && !existing_dir && is_dir {
                return Err(EngineError::Invalid(format!(
                    "cannot overwrite non-directory {} with directory {}",
                    quote(&full),
                    quote(self.dest)
                )));
            }
            merge = existing_dir && is_dir;
            // A mount point of the container (a bind-mounted file, a volume, /proc...):
            // replacing it from here would detach the mount in the container, and its
            // owner and mode are the host's or the kernel's. Docker's extraction, inside
            // the container's namespace, gets EBUSY; a directory merges into it untouched.
            mount_root = match berth_runtime::is_mount_root(parent.as_fd(), OsStr::from_bytes(base))
            {
                Ok(m) => m,
                // Gone meanwhile (the container deleted it): nothing to replace.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => false,
                Err(e) => return Err(fs_err("statx", &full, e)),
            };
            if mount_root && !merge {
                return Err(fs_err("unlinkat", &full, Errno::EBUSY));
            }
            if !merge {
                self.remove(parent.as_fd(), base, existing_dir, &full)?;
            }
        }
        // An empty numeric field reads as 0, as Go's tar reader has it (hand-made tars
        // leave them so).
        let (uid, gid) = self.opts.owner.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0o644) & 0o7777);
        let mtime = header.mtime().unwrap_or(0);
        let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        let p = parent.as_raw_fd();
        let at = OsStr::from_bytes(base);
        match kind_of {
            tar::EntryType::Directory => {
                if mount_root {
                    return Ok(());
                }
                if !merge {
                    self.charge()?;
                    nix::sys::stat::mkdirat(Some(p), at, Mode::from_bits_truncate(0o700))
                        .map_err(|e| fs_err("mkdir", &full, e))?;
                }
                let fd = open_child(parent.as_fd(), base, libc::O_RDONLY | libc::O_DIRECTORY)
                    .map_err(|e| fs_err("open", &full, e))?;
                nix::unistd::fchown(fd.as_raw_fd(), owner.0, owner.1)
                    .map_err(|e| fs_err("lchown", &full, e))?;
                let file = std::fs::File::from(fd);
                set_xattrs(entry, &file, &full)?;
                nix::sys::stat::fchmod(file.as_raw_fd(), mode)
                    .map_err(|e| fs_err("chmod", &full, e))?;
                self.dirs.insert((parent_path, base.clone()), mtime);
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.charge()?;
                let fd = openat2(
                    parent.as_fd(),
                    at,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                    Resolve::BENEATH | Resolve::NO_SYMLINKS,
                )
                .map_err(|e| fs_err("open", &full, e))?;
                let mut file = std::fs::File::from(fd);
                self.copy_content(entry, &mut file, &full)?;
                nix::unistd::fchown(file.as_raw_fd(), owner.0, owner.1)
                    .map_err(|e| fs_err("lchown", &full, e))?;
                set_xattrs(entry, &file, &full)?;
                nix::sys::stat::fchmod(file.as_raw_fd(), mode)
                    .map_err(|e| fs_err("chmod", &full, e))?;
                let t = times(mtime);
                nix::sys::stat::futimens(file.as_raw_fd(), &t, &t)
                    .map_err(|e| fs_err("chtimes", &full, e))?;
            }
            tar::EntryType::Symlink => {
                let link = link_name(entry, &name)?;
                // Docker's check: the target, read from the link's directory, stays below
                // the destination (an absolute target is read below it too).
                let mut from = paths::join(self.dest, parents);
                from.push(b'/');
                from.extend_from_slice(&link);
                if !paths::is_within(&paths::clean(&from), self.dest) {
                    return Err(EngineError::Invalid(format!(
                        "invalid symlink {} -> {}",
                        quote(&full),
                        quote(&link)
                    )));
                }
                self.charge()?;
                nix::unistd::symlinkat(OsStr::from_bytes(&link), Some(p), at)
                    .map_err(|e| fs_err("symlink", &full, e))?;
                nix::unistd::fchownat(Some(p), at, owner.0, owner.1, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(|e| fs_err("lchown", &full, e))?;
                let t = times(mtime);
                nix::sys::stat::utimensat(Some(p), at, &t, &t, UtimensatFlags::NoFollowSymlink)
                    .map_err(|e| fs_err("chtimes", &full, e))?;
            }
            tar::EntryType::Link => {
                let link = link_name(entry, &name)?;
                let target = paths::clean(&paths::join(self.dest, std::slice::from_ref(&link)));
                if !paths::is_within(&target, self.dest) || target == self.dest {
                    return Err(EngineError::Invalid(format!(
                        "invalid hardlink {} -> {}",
                        quote(&target),
                        quote(&link)
                    )));
                }
                let (tdir, tname) = match target.iter().rposition(|b| *b == b'/') {
                    Some(i) => (&target[..i.max(1)], &target[i + 1..]),
                    None => (b"/".as_slice(), target.as_slice()),
                };
                let tparent = open_in_root(self.root, tdir, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|e| fs_err("link", &target, e))?;
                self.charge()?;
                nix::unistd::linkat(
                    Some(tparent.as_raw_fd()),
                    OsStr::from_bytes(tname),
                    Some(p),
                    at,
                    AtFlags::empty(),
                )
                .map_err(|e| fs_err(&format!("link {}", show(&target)), &full, e))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let (sflag, dev) = match kind_of {
                    tar::EntryType::Char => (SFlag::S_IFCHR, true),
                    tar::EntryType::Block => (SFlag::S_IFBLK, true),
                    _ => (SFlag::S_IFIFO, false),
                };
                let rdev = if dev {
                    libc::makedev(
                        header.device_major().ok().flatten().unwrap_or(0),
                        header.device_minor().ok().flatten().unwrap_or(0),
                    )
                } else {
                    0
                };
                self.charge()?;
                nix::sys::stat::mknodat(Some(p), at, sflag, Mode::from_bits_truncate(0o600), rdev)
                    .map_err(|e| fs_err("mknod", &full, e))?;
                let fd = open_child(parent.as_fd(), base, libc::O_PATH)
                    .map_err(|e| fs_err("open", &full, e))?;
                let st = stat_fd(fd.as_fd()).map_err(|e| fs_err("lstat", &full, e))?;
                if kind(&st) != sflag {
                    return Err(EngineError::Invalid(format!(
                        "{}: replaced while being made",
                        show(&full)
                    )));
                }
                // The node itself, through its descriptor: never by a name that could have
                // become a symlink meanwhile.
                let by_fd = format!("/proc/self/fd/{}", fd.as_raw_fd());
                nix::unistd::fchownat(None, by_fd.as_str(), owner.0, owner.1, AtFlags::empty())
                    .map_err(|e| fs_err("lchown", &full, e))?;
                nix::sys::stat::fchmodat(
                    None,
                    by_fd.as_str(),
                    mode,
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(|e| fs_err("chmod", &full, e))?;
                let t = times(mtime);
                nix::sys::stat::utimensat(
                    None,
                    by_fd.as_str(),
                    &t,
                    &t,
                    UtimensatFlags::FollowSymlink,
                )
                .map_err(|e| fs_err("chtimes", &full, e))?;
            }
            other => {
                return Err(EngineError::Invalid(format!(
                    "unhandled tar header type {}",
                    other.as_byte()
                )))
            }
        }
        Ok(())
    }

    /// The parent directory at `path` (clean, absolute), made if missing (0755, as
    /// Docker's implied directories); never a kernel filesystem.
    fn parent_dir(&mut self, path: &[u8]) -> Result<OwnedFd, EngineError> {
        if let Some((cached, fd)) = &self.parent {
            if cached == path {
                return fd.try_clone().map_err(|e| fs_err("dup", path, e));
            }
        }
        let fd = match open_in_root(self.root, path, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => self.make_dirs(path)?,
            Err(e) => return Err(fs_err("mkdir", path, e)),
        };
        if let Some(fs) = kernel_filesystem(fd.as_fd()).map_err(|e| fs_err("statfs", path, e))? {
            return Err(EngineError::Invalid(format!(
                "cannot copy into {}: it is the container's {fs} filesystem",
                show(path)
            )));
        }
        self.parent = Some((
            path.to_vec(),
            fd.try_clone().map_err(|e| fs_err("dup", path, e))?,
        ));
        Ok(fd)
    }

    /// `mkdir -p` of `path` inside the root, one element at a time.
    fn make_dirs(&mut self, path: &[u8]) -> Result<OwnedFd, EngineError> {
        let comps: Vec<Vec<u8>> = path
            .split(|b| *b == b'/')
            .filter(|c| !c.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        for i in 1..=comps.len() {
            let prefix = paths::join(b"/", &comps[..i]);
            match open_in_root(self.root, &prefix, libc::O_PATH | libc::O_DIRECTORY) {
                Ok(_) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                Err(e) => return Err(fs_err("mkdir", &prefix, e)),
            }
            let above = paths::join(b"/", &comps[..i - 1]);
            let dir = open_in_root(self.root, &above, libc::O_PATH | libc::O_DIRECTORY)
                .map_err(|e| fs_err("mkdir", &prefix, e))?;
            if kernel_filesystem(dir.as_fd())
                .map_err(|e| fs_err("statfs", &above, e))?
                .is_some()
            {
                return Err(EngineError::Invalid(format!(
                    "cannot copy into {}: it is a kernel filesystem of the container",
                    show(&above)
                )));
            }
            self.charge()?;
            match nix::sys::stat::mkdirat(
                Some(dir.as_raw_fd()),
                OsStr::from_bytes(&comps[i - 1]),
                Mode::from_bits_truncate(0o755),
            ) {
                Ok(()) | Err(Errno::EEXIST) => {}
                Err(e) => return Err(fs_err("mkdir", &prefix, e)),
            }
            // 0755 whatever berthd's umask.
            let made = open_child(
                dir.as_fd(),
                &comps[i - 1],
                libc::O_RDONLY | libc::O_DIRECTORY,
            )
            .map_err(|e| fs_err("mkdir", &prefix, e))?;
            nix::sys::stat::fchmod(made.as_raw_fd(), Mode::from_bits_truncate(0o755))
                .map_err(|e| fs_err("chmod", &prefix, e))?;
        }
        open_in_root(self.root, path, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|e| fs_err("mkdir", path, e))
    }

    /// Removes `name` in `dir` (a directory with everything in it), never following a
    /// symlink.
    fn remove(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        is_dir: bool,
        full: &[u8],
    ) -> Result<(), EngineError> {
        // A cached parent below what goes away would name a removed directory.
        if self
            .parent
            .as_ref()
            .is_some_and(|(p, _)| paths::is_within(p, full))
        {
            self.parent = None;
        }
        if is_dir {
            remove_all(dir, name, 0).map_err(|e| fs_err("unlinkat", full, e))
        } else {
            match nix::unistd::unlinkat(
                Some(dir.as_raw_fd()),
                OsStr::from_bytes(name),
                UnlinkatFlags::NoRemoveDir,
            ) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(fs_err("unlinkat", full, e)),
            }
        }
    }

    /// Copies a regular file's content, charging every chunk first.
    fn copy_content(
        &self,
        entry: &mut impl Read,
        file: &mut std::fs::File,
        full: &[u8],
    ) -> Result<(), EngineError> {
        let mut buf = vec![0u8; 128 * 1024];
        loop {
            let n = match entry.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(bad_tar(e)),
            };
            self.budget
                .charge_written(n as u64)
                .map_err(|e| EngineError::Internal(e.to_string()))?;
            file.write_all(&buf[..n])
                .map_err(|e| fs_err("write", full, e))?;
        }
    }
}

/// `rm -rf` of `name` in `dir` by descriptors.
fn remove_all(dir: BorrowedFd<'_>, name: &[u8], depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let fd = open_child(dir, name, libc::O_RDONLY | libc::O_DIRECTORY)?;
    for child in names(fd.as_fd())? {
        // Never into (or out of) a mount below: see `Unpacker::entry`.
        match berth_runtime::is_mount_root(fd.as_fd(), OsStr::from_bytes(&child)) {
            Ok(true) => return Err(io::Error::from_raw_os_error(libc::EBUSY)),
            Ok(false) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        }
        match nix::unistd::unlinkat(
            Some(fd.as_raw_fd()),
            OsStr::from_bytes(&child),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(Errno::EISDIR) => remove_all(fd.as_fd(), &child, depth + 1)?,
            Err(e) => return Err(e.into()),
        }
    }
    match nix::unistd::unlinkat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        UnlinkatFlags::RemoveDir,
    ) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, name: &[u8]) -> Result<Vec<u8>, EngineError> {
    entry
        .link_name_bytes()
        .map(|l| l.into_owned())
        .filter(|l| !l.is_empty())
        .ok_or_else(|| EngineError::Invalid(format!("{}: a link without a target", quote(name))))
}

/// The entry's `SCHILY.xattr.*` PAX records, set on the file just made (`trusted.overlay.*`
/// never: it would steer the overlay). A filesystem that refuses a namespace is skipped.
fn set_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    file: &std::fs::File,
    full: &[u8],
) -> Result<(), EngineError> {
    use xattr::FileExt;
    let Ok(Some(pax)) = entry.pax_extensions() else {
        return Ok(());
    };
    for ext in pax.flatten() {
        let Ok(key) = ext.key() else { continue };
        let Some(attr) = key.strip_prefix("SCHILY.xattr.") else {
            continue;
        };
        if attr.starts_with("trusted.overlay.") {
            continue;
        }
        match file.set_xattr(attr, ext.value_bytes()) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTSUP) | Some(libc::EPERM)) => {
                tracing::warn!(path = %show(full), attr, "ignoring xattr: {e}");
            }
            Err(e) => return Err(fs_err("lsetxattr", full, e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, MetadataExt};
    use std::path::Path;

    /// A tar of raw entries: (name, type, content or link target).
    fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(0o640);
            h.set_uid(1234);
            h.set_gid(5678);
            h.set_mtime(1_000_000);
            let raw = &mut h.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            let content: &[u8] = match kind {
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let l = &mut h.as_old_mut().linkname;
                    l[..data.len()].copy_from_slice(data.as_bytes());
                    &[]
                }
                _ => data.as_bytes(),
            };
            h.set_size(content.len() as u64);
            h.set_cksum();
            b.append(&h, content).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn extract(root: &Path, dest: &str, tar: &[u8], opts: &Options) -> Result<(), EngineError> {
        let fs = berth_runtime::ContainerFs::of_directory(root).unwrap();
        let budget = Budget::for_archive(root, Default::default()).unwrap();
        unpack(fs.root(), dest.as_bytes(), tar, opts, &budget)
    }

    use tar::EntryType::{Directory as D, Link as H, Regular as F, Symlink as S};

    #[test]
    fn files_dirs_and_links_land_with_the_tars_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("dst")).unwrap();
        let t = tar_of(&[
            ("d/", D, ""),
            ("d/f", F, "hello"),
            ("d/l", S, "/etc/passwd"),
            ("d/h", H, "d/f"),
            ("implied/deep/x", F, "x"),
        ]);
        extract(r, "/dst", &t, &Options::default()).unwrap();
        let f = std::fs::symlink_metadata(r.join("dst/d/f")).unwrap();
        assert_eq!(std::fs::read_to_string(r.join("dst/d/f")).unwrap(), "hello");
        assert_eq!((f.uid(), f.gid(), f.mode() & 0o7777), (1234, 5678, 0o640));
        assert_eq!(f.mtime(), 1_000_000);
        assert_eq!(f.nlink(), 2);
        assert_eq!(
            std::fs::read_link(r.join("dst/d/l")).unwrap(),
            Path::new("/etc/passwd")
        );
        let d = std::fs::metadata(r.join("dst/d")).unwrap();
        assert_eq!((d.mtime(), d.mode() & 0o7777), (1_000_000, 0o640));
        let implied = std::fs::metadata(r.join("dst/implied/deep")).unwrap();
        assert_eq!((implied.uid(), implied.mode() & 0o7777), (0, 0o755));
    }

    #[test]
    fn names_that_climb_out_are_refused_and_write_nothing_outside() {
        let outer = tempfile::tempdir().unwrap();
        let r = outer.path().join("root");
        std::fs::create_dir_all(r.join("dst")).unwrap();
        for (entries, want) in [
            (
                vec![("../../x", F, "x")],
                r#""../../x" is outside of "/dst""#,
            ),
            (
                vec![("a/../../x", F, "x")],
                r#""../x" is outside of "/dst""#,
            ),
            (vec![("..", D, "")], r#"".." is outside of "/dst""#),
            (
                vec![("l", S, "../../../x")],
                r#"invalid symlink "/dst/l" -> "../../../x""#,
            ),
            (
                vec![("h", H, "../../x")],
                r#"invalid hardlink "/x" -> "../../x""#,
            ),
        ] {
            let e = extract(&r, "/dst", &tar_of(&entries), &Options::default()).unwrap_err();
            assert_eq!(e.to_string(), want);
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        }
        assert_eq!(std::fs::read_dir(outer.path()).unwrap().count(), 1);
        assert_eq!(std::fs::read_dir(&r).unwrap().count(), 1);
    }

    /// A symlink in the tar (or already in the container) that points at `/` or out of the
    /// root is followed inside the root, never on the host.
    #[test]
    fn symlinked_parents_resolve_inside_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let r = outer.path().join("root");
        std::fs::create_dir_all(r.join("dst")).unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("/", r.join("dst/planted")).unwrap();
        symlink("../../../../../..", r.join("dst/up")).unwrap();
        let host_marker = outer.path().join("marker");
        std::fs::write(&host_marker, "host").unwrap();
        let t = tar_of(&[
            ("planted/marker", F, "via planted"),
            ("up/uptoo", F, "via up"),
            ("abs", S, "/"),
            ("abs/viatar", F, "via tar link"),
        ]);
        extract(&r, "/dst", &t, &Options::default()).unwrap();
        assert_eq!(std::fs::read_to_string(&host_marker).unwrap(), "host");
        assert_eq!(
            std::fs::read_to_string(r.join("marker")).unwrap(),
            "via planted"
        );
        assert_eq!(std::fs::read_to_string(r.join("uptoo")).unwrap(), "via up");
        assert_eq!(
            std::fs::read_to_string(r.join("viatar")).unwrap(),
            "via tar link"
        );
        extract(
            &r,
            "/",
            &tar_of(&[("bin/tool", F, "t")]),
            &Options::default(),
        )
        .unwrap();
        assert!(r.join("usr/bin/tool").is_file());
        assert!(std::fs::symlink_metadata(r.join("bin"))
            .unwrap()
            .file_type()
            .is_symlink());
        let entries: Vec<_> = std::fs::read_dir(outer.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(entries.len(), 2, "{entries:?}");
    }

    #[test]
    fn existing_entries_are_replaced_or_refused_as_dockers() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("dst/adir/sub")).unwrap();
        std::fs::write(r.join("dst/adir/sub/f"), "x").unwrap();
        std::fs::write(r.join("dst/afile"), "old").unwrap();
        let strict = Options {
            no_overwrite_dir_non_dir: true,
            owner: None,
        };
        let e = extract(r, "/dst", &tar_of(&[("adir", F, "x")]), &strict).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"cannot overwrite directory "/dst/adir" with non-directory "/dst""#
        );
        let e = extract(r, "/dst", &tar_of(&[("afile/", D, "")]), &strict).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"cannot overwrite non-directory "/dst/afile" with directory "/dst""#
        );
        extract(r, "/dst", &tar_of(&[("afile", F, "new")]), &strict).unwrap();
        assert_eq!(std::fs::read_to_string(r.join("dst/afile")).unwrap(), "new");
        // Without the flag a file replaces a directory, and the other way round.
        let loose = Options::default();
        extract(r, "/dst", &tar_of(&[("adir", F, "file now")]), &loose).unwrap();
        assert_eq!(
            std::fs::read_to_string(r.join("dst/adir")).unwrap(),
            "file now"
        );
        let e = extract(r, "/dst", &tar_of(&[(".", F, "x")]), &loose).unwrap_err();
        assert!(
            e.to_string().starts_with("cannot overwrite directory"),
            "{e}"
        );
        assert!(r.join("dst").is_dir());
    }

    #[test]
    fn copy_uid_gid_owns_everything_by_the_container_user() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir(r.join("dst")).unwrap();
        let opts = Options {
            no_overwrite_dir_non_dir: true,
            owner: Some((42, 43)),
        };
        extract(r, "/dst", &tar_of(&[("d/", D, ""), ("d/f", F, "x")]), &opts).unwrap();
        for p in ["dst/d", "dst/d/f"] {
            let m = std::fs::metadata(r.join(p)).unwrap();
            assert_eq!((m.uid(), m.gid()), (42, 43), "{p}");
        }
    }

    #[test]
    fn an_archive_over_the_limit_is_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let fs = berth_runtime::ContainerFs::of_directory(r).unwrap();
        let limits = berth_image::IngestLimits {
            max_size: Some(64 * 1024),
            reserve: Some(0),
        };
        let budget = Budget::for_archive(r, limits).unwrap();
        let big = "x".repeat(200 * 1024);
        let e = unpack(
            fs.root(),
            b"/",
            &tar_of(&[("big", F, &big)])[..],
            &Options::default(),
            &budget,
        )
        .unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::TooLarge);
        assert!(e.to_string().starts_with("archive too large"), "{e}");
    }

    #[test]
    fn a_long_name_over_a_mebibyte_is_refused_before_it_is_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "a".repeat(2 << 20), &b"x"[..])
            .unwrap();
        let e = extract(r, "/", &b.into_inner().unwrap(), &Options::default()).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        assert!(e.to_string().contains("exceed 1 MiB"), "{e}");
        assert_eq!(std::fs::read_dir(r).unwrap().count(), 0);
    }

    #[test]
    fn a_mount_point_is_never_replaced_and_a_directory_merges_into_it_untouched() {
        use nix::mount::{mount, umount, MsFlags};
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("cfg"), "host").unwrap();
        std::fs::create_dir(host.path().join("vol")).unwrap();
        std::fs::create_dir(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/cfg"), "").unwrap();
        std::fs::create_dir(r.join("vol")).unwrap();
        let bind = |src: &Path, dst: &Path| {
            mount(Some(src), dst, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        };
        bind(&host.path().join("cfg"), &r.join("etc/cfg"));
        bind(&host.path().join("vol"), &r.join("vol"));
        let mode_before = std::fs::metadata(host.path().join("vol")).unwrap().mode();
        let file = extract(
            r,
            "/etc",
            &tar_of(&[("cfg", F, "new")]),
            &Options::default(),
        );
        let dir_over = extract(r, "/", &tar_of(&[("vol", F, "x")]), &Options::default());
        let merged = extract(
            r,
            "/",
            &tar_of(&[("vol/", D, ""), ("vol/f", F, "in the volume")]),
            &Options::default(),
        );
        let cfg = std::fs::read_to_string(r.join("etc/cfg")).unwrap();
        let still_mounted = std::fs::read_to_string(host.path().join("vol/f"));
        let mode_after = std::fs::metadata(host.path().join("vol")).unwrap().mode();
        umount(&r.join("etc/cfg")).unwrap();
        umount(&r.join("vol")).unwrap();
        let e = file.unwrap_err();
        assert_eq!(e.to_string(), "unlinkat /etc/cfg: device or resource busy");
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        assert_eq!(cfg, "host");
        assert!(dir_over
            .unwrap_err()
            .to_string()
            .contains("device or resource busy"));
        merged.unwrap();
        assert_eq!(still_mounted.unwrap(), "in the volume");
        assert_eq!(mode_before, mode_after, "the mount's root keeps its mode");
    }
}
