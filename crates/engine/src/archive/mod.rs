//! `docker cp`'s filesystem side: stat, tar and untar inside a container's root.
//!
//! Everything happens below one directory descriptor, the container's root
//! ([`berth_runtime::ContainerFs`]). A path from the API is looked up with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from that root: an absolute symlink,
//! a `..` or a symlink the container swaps in while berthd works resolves inside the root,
//! never on the host (the CVE-2018-15664 class). Below the path, the walk ([`pack`]) and the
//! extraction ([`unpack`]) go by descriptors and single names: a directory is entered with
//! `O_NOFOLLOW`, a file is created with `O_CREAT | O_EXCL | O_NOFOLLOW`, ownership and modes
//! are set on descriptors or with `AT_SYMLINK_NOFOLLOW`, and the parent of each extracted
//! entry is resolved again inside the root. No path string is ever handed to a call that
//! resolves it from berthd's own root.
//!
//! A running container's kernel filesystems (`/proc`, `/sys`, its cgroup and devpts
//! mounts...) are not part of its files: berthd, which has every privilege, never reads
//! from or writes into them for a copy. A directory on one shows as empty (as the image's
//! empty mount point does in Docker, whose copy never sees these mounts), anything else on
//! one is not found, and copying into one is refused.

pub(crate) mod pack;
pub(crate) mod paths;
pub(crate) mod unpack;

use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use berth_api::archive::{go_file_mode, PathStat};
use berth_runtime::{openat2, Resolve};
use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, SFlag};

/// The most symlinks one path may pass through (moby's `FollowSymlinkInScope`).
const MAX_LINKS: usize = 255;

/// Opens `path` (absolute or relative, inside the root) with `flags`; symlinks on the way
/// are followed inside the root, magic links refused.
pub(crate) fn open_in_root(root: BorrowedFd<'_>, path: &[u8], flags: i32) -> io::Result<OwnedFd> {
    openat2(
        root,
        OsStr::from_bytes(path),
        flags,
        0,
        Resolve::IN_ROOT | Resolve::NO_MAGICLINKS,
    )
}

/// Opens the single name `name` in `dir` without following it if it is a symlink.
pub(crate) fn open_child(dir: BorrowedFd<'_>, name: &[u8], flags: i32) -> io::Result<OwnedFd> {
    openat2(
        dir,
        OsStr::from_bytes(name),
        flags | libc::O_NOFOLLOW,
        0,
        Resolve::BENEATH | Resolve::NO_SYMLINKS | Resolve::NO_MAGICLINKS,
    )
}

/// `fstat` of a descriptor (an `O_PATH` one too).
pub(crate) fn stat_fd(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    Ok(nix::sys::stat::fstat(fd.as_raw_fd())?)
}

/// `lstat` of `name` in `dir`.
pub(crate) fn lstat_at(dir: BorrowedFd<'_>, name: &[u8]) -> io::Result<FileStat> {
    Ok(nix::sys::stat::fstatat(
        Some(dir.as_raw_fd()),
        OsStr::from_bytes(name),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )?)
}

/// `.` of a directory opened `O_PATH`, opened for reading.
pub(crate) fn reopen_dir(dir: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    berth_runtime::openat2(
        dir,
        OsStr::new("."),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        berth_runtime::Resolve::BENEATH,
    )
}

/// The names in a directory, sorted (Go's `os.ReadDir` order).
pub(crate) fn names(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let fd = reopen_dir(dir)?;
    let mut d = nix::dir::Dir::from_fd(fd.into_raw_fd())?;
    let mut out = Vec::new();
    for e in d.iter() {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            out.push(n.to_vec());
        }
    }
    out.sort();
    Ok(out)
}

/// The file type bits of a stat.
pub(crate) fn kind(st: &FileStat) -> SFlag {
    SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT)
}

/// The kernel filesystems a copy never reads from or writes into, with their names.
const KERNEL_FILESYSTEMS: &[(i64, &str)] = &[
    (0x9fa0, "proc"),
    (0x6265_6572, "sysfs"),
    (0x0027_e0eb, "cgroup"),
    (0x6367_7270, "cgroup2"),
    (0x1cd1, "devpts"),
    (0x1980_2202, "mqueue"),
    (0x7363_6673, "securityfs"),
    (0x6462_6720, "debugfs"),
    (0x7472_6163, "tracefs"),
    (0xcafe_4a11, "bpf"),
    (0x6165_676c, "pstore"),
    (0xde5e_81e4, "efivarfs"),
    (0x6265_6570, "configfs"),
    (0x6573_5543, "fusectl"),
    (0x4249_4e4d, "binfmt_misc"),
    (0x6e73_6673, "nsfs"),
    (0xf97c_ff8c, "selinuxfs"),
    (0x4341_5d53, "smackfs"),
];

/// The name of the kernel filesystem `fd` is on, if it is on one.
pub(crate) fn kernel_filesystem(fd: BorrowedFd<'_>) -> io::Result<Option<&'static str>> {
    let t = nix::sys::statfs::fstatfs(fd)?.filesystem_type().0 as i64;
    Ok(KERNEL_FILESYSTEMS
        .iter()
        .find(|(magic, _)| *magic == t)
        .map(|(_, name)| *name))
}

/// A path as `docker cp` found it: its descriptor (`O_PATH`; a symlink itself unless the
/// path asserted a directory), its stat and the header's [`PathStat`].
pub(crate) struct Found {
    pub fd: OwnedFd,
    pub st: FileStat,
    pub stat: PathStat,
    /// Go's `filepath.Base` of the absolute path: what the archive's entries start with.
    pub base: Vec<u8>,
}

/// Looks up `abs` ([`paths::absolute`] of the API's path) as Docker's `Lstat` does: symlinks
/// before the last element are followed (inside the root), the last one only when the path
/// ends in `/` or `/.`. Anything on a kernel filesystem but a directory is not found.
pub(crate) fn find(root: BorrowedFd<'_>, abs: &[u8]) -> io::Result<Found> {
    let mut flags = libc::O_PATH;
    if !paths::asserts_directory(abs) {
        flags |= libc::O_NOFOLLOW;
    }
    let fd = open_in_root(root, abs, flags)?;
    let st = stat_fd(fd.as_fd())?;
    let k = kind(&st);
    if k != SFlag::S_IFDIR && k != SFlag::S_IFLNK && kernel_filesystem(fd.as_fd())?.is_some() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    let link_target = if k == SFlag::S_IFLNK {
        String::from_utf8_lossy(&follow_in_scope(root, abs, false)?).into_owned()
    } else {
        String::new()
    };
    let base = paths::base(abs).to_vec();
    let stat = PathStat {
        name: String::from_utf8_lossy(&base).into_owned(),
        size: st.st_size,
        mode: go_file_mode(st.st_mode),
        mtime: go_time(st.st_mtime, st.st_mtime_nsec),
        link_target,
    };
    Ok(Found { fd, st, stat, base })
}

/// A time as Go's `time.Time` marshals to JSON (RFC 3339, nanoseconds without trailing
/// zeros), in UTC.
pub(crate) fn go_time(secs: i64, nanos: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp(secs, nanos.clamp(0, 999_999_999) as u32) else {
        return "0001-01-01T00:00:00Z".into();
    };
    let date = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos <= 0 {
        return format!("{date}Z");
    }
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    format!("{date}.{}Z", frac.trim_end_matches('0'))
}

/// Resolves every symlink of `path` inside the root, as moby's `FollowSymlinkInScope`
/// (`strict: false`: a missing element is taken as it is, the rest appended) or Go's
/// `filepath.EvalSymlinks` under a chroot (`strict`: a missing element is `ENOENT`).
/// Returns a clean absolute path. The answer is only a string: whatever uses it resolves
/// it inside the root again, so a symlink swapped meanwhile cannot lead out.
pub(crate) fn follow_in_scope(
    root: BorrowedFd<'_>,
    path: &[u8],
    strict: bool,
) -> io::Result<Vec<u8>> {
    let mut todo: std::collections::VecDeque<Vec<u8>> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut done: Vec<Vec<u8>> = Vec::new();
    let mut links = 0;
    // Once an element is missing (not strict), the rest is taken as it is.
    let mut missing = false;
    while let Some(c) = todo.pop_front() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        if missing {
            done.push(c);
            continue;
        }
        let parent = open_in_root(
            root,
            &paths::join(b"/", &done),
            libc::O_PATH | libc::O_DIRECTORY,
        );
        let st = match parent.and_then(|p| lstat_at(p.as_fd(), &c)) {
            Ok(st) => st,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !strict => {
                missing = true;
                done.push(c);
                continue;
            }
            Err(e) => return Err(e),
        };
        if kind(&st) != SFlag::S_IFLNK {
            done.push(c);
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        let parent = open_in_root(
            root,
            &paths::join(b"/", &done),
            libc::O_PATH | libc::O_DIRECTORY,
        )?;
        let target = nix::fcntl::readlinkat(Some(parent.as_raw_fd()), OsStr::from_bytes(&c))?;
        let target = target.as_bytes();
        if target.starts_with(b"/") {
            done.clear();
        }
        for part in target.rsplit(|b| *b == b'/').filter(|p| !p.is_empty()) {
            todo.push_front(part.to_vec());
        }
    }
    Ok(paths::join(b"/", &done))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn root_of(dir: &std::path::Path) -> berth_runtime::ContainerFs {
        berth_runtime::ContainerFs::of_directory(dir).unwrap()
    }

    #[test]
    fn go_times_trim_their_nanoseconds() {
        assert_eq!(go_time(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(go_time(1, 120_000_000), "1970-01-01T00:00:01.12Z");
        assert_eq!(go_time(1, 5), "1970-01-01T00:00:01.000000005Z");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        symlink("/", r.join("escape")).unwrap();
        symlink("usr/bin", r.join("bin")).unwrap();
        symlink("../../../../etc", r.join("usr/up")).unwrap();
        symlink("loop2", r.join("loop1")).unwrap();
        symlink("loop1", r.join("loop2")).unwrap();
        let fs = root_of(r);
        let f = |p: &str, strict| {
            follow_in_scope(fs.root(), p.as_bytes(), strict).map(|v| String::from_utf8(v).unwrap())
        };
        assert_eq!(f("/escape", false).unwrap(), "/");
        assert_eq!(f("/escape/etc/shadow", false).unwrap(), "/etc/shadow");
        assert_eq!(f("/bin/sh", false).unwrap(), "/usr/bin/sh");
        assert_eq!(f("/usr/up", false).unwrap(), "/etc");
        assert_eq!(f("/nope/x", false).unwrap(), "/nope/x");
        assert_eq!(
            f("/nope/x", true).unwrap_err().raw_os_error(),
            Some(libc::ENOENT)
        );
        assert_eq!(
            f("/loop1", false).unwrap_err().raw_os_error(),
            Some(libc::ELOOP)
        );
    }

    #[test]
    fn find_keeps_the_last_symlink_unless_a_directory_is_asserted() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("d")).unwrap();
        std::fs::write(r.join("d/f"), "x").unwrap();
        symlink("/d", r.join("l")).unwrap();
        let fs = root_of(r);
        let found = find(fs.root(), b"/l").unwrap();
        assert!(found.stat.is_symlink());
        assert_eq!(found.stat.link_target, "/d");
        assert_eq!(found.stat.name, "l");
        let found = find(fs.root(), b"/l/").unwrap();
        assert!(found.stat.is_dir());
        assert_eq!(found.stat.name, "l");
        let found = find(fs.root(), b"/l/.").unwrap();
        assert_eq!(found.stat.name, ".");
        assert_eq!(
            find(fs.root(), b"/d/f/")
                .err()
                .and_then(|e| e.raw_os_error()),
            Some(libc::ENOTDIR)
        );
        assert_eq!(find(fs.root(), b"/").unwrap().stat.name, "/");
    }
}
