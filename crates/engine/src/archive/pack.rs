//! `GET /containers/{id}/archive`: a tar of a path in the container, named as Docker names
//! it (moby's `TarResourceRebaseOpts` + `Tarballer`): a directory's entries start with the
//! path's last element (`dir/`, `dir/a`), or `./` for a path ending in `/.`, or `/` for the
//! root; a file (or symlink, device...) is one entry named by its last element. Directories
//! are listed sorted, depth first, as Go's `filepath.WalkDir` does; a file with several
//! links is archived once and then as hard links; only `security.capability` of the
//! extended attributes is kept (Docker's `ReadSecurityXattrToTarHeader`); sockets are left
//! out.
//!
//! The walk holds a descriptor per directory level and opens each name with `O_NOFOLLOW`
//! relative to it; a regular file is opened `O_PATH` first and reopened for reading only
//! once it is known to be one (a FIFO or device swapped in is never opened). What changes
//! while it is walked is archived as it was seen: a file that shrank is padded with zeros to
//! the size in its header, one that grew is cut there.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};

use nix::sys::stat::{FileStat, SFlag};

use super::{kernel_filesystem, kind, lstat_at, names, open_child, reopen_dir, stat_fd, Found};

/// The deepest directory nesting archived (one open descriptor per level).
const MAX_DEPTH: usize = 512;
/// A tar header's name and link name fields.
const NAME_FIELD: usize = 100;

/// Writes the tar of `found` (from [`super::find`]) to `out`.
pub(crate) fn pack(found: Found, out: impl Write) -> io::Result<()> {
    let mut w = Packer {
        tar: tar::Builder::new(io::BufWriter::with_capacity(256 * 1024, out)),
        links: HashMap::new(),
    };
    if kind(&found.st) == SFlag::S_IFDIR {
        // Docker's rebase of "." to the last element ("/" to nothing).
        let prefix: Vec<u8> = if found.base == b"/" {
            Vec::new()
        } else {
            found.base.clone()
        };
        let dir = reopen_dir(found.fd.as_fd())?;
        let mut root_name = prefix.clone();
        root_name.push(b'/');
        w.entry(&root_name, &found.st, Object::Dir)?;
        if kernel_filesystem(dir.as_fd())?.is_none() {
            w.walk(dir, prefix)?;
        }
    } else {
        w.object(found.fd, found.st, &found.base)?;
    }
    w.tar.finish()?;
    w.tar.into_inner()?.flush()
}

/// What an entry carries besides its header.
enum Object<'a> {
    Dir,
    /// a regular file's content (a reopened descriptor) and its capability xattr
    File(std::fs::File, Option<Vec<u8>>),
    Symlink(&'a [u8]),
    /// a hard link to the entry of this name
    HardLink(&'a [u8]),
    Node,
}

struct Packer<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, ino) of files with several links -> the name they were first archived as
    links: HashMap<(u64, u64), Vec<u8>>,
}

impl<W: Write> Packer<W> {
    /// Archives everything below `dir`, whose entries are named `prefix/...`.
    fn walk(&mut self, dir: OwnedFd, prefix: Vec<u8>) -> io::Result<()> {
        // (directory, its entries' prefix, the names left in it, reversed)
        let mut stack: Vec<(OwnedFd, Vec<u8>, Vec<Vec<u8>>)> = Vec::new();
        let mut first = names(dir.as_fd())?;
        first.reverse();
        stack.push((dir, prefix, first));
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(());
            };
            let Some(name) = top.2.pop() else {
                stack.pop();
                continue;
            };
            let mut full = top.1.clone();
            full.push(b'/');
            full.extend_from_slice(&name);
            let Some(sub) = self.child(top.0.as_fd(), &name, &full)? else {
                continue;
            };
            if stack.len() >= MAX_DEPTH {
                return Err(io::Error::other(format!(
                    "{}: more than {MAX_DEPTH} nested directories",
                    String::from_utf8_lossy(&full)
                )));
            }
            let mut sub_names = match names(sub.as_fd()) {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(path = %String::from_utf8_lossy(&full), "archive: skipping the directory's content: {e}");
                    continue;
                }
            };
            sub_names.reverse();
            stack.push((sub, full, sub_names));
        }
    }

    /// Archives `name` in `dir` as `full`; returns the directory to descend into, if it is
    /// one (and not a kernel filesystem's). A name gone meanwhile is skipped.
    fn child(
        &mut self,
        dir: BorrowedFd<'_>,
        name: &[u8],
        full: &[u8],
    ) -> io::Result<Option<OwnedFd>> {
        let skip = |e: io::Error| {
            tracing::debug!(path = %String::from_utf8_lossy(full), "archive: skipped: {e}");
            Ok(None)
        };
        let st = match lstat_at(dir, name) {
            Ok(st) => st,
            Err(e) => return skip(e),
        };
        match kind(&st) {
            SFlag::S_IFDIR => {
                let fd = match open_child(dir, name, libc::O_PATH | libc::O_DIRECTORY) {
                    Ok(fd) => fd,
                    Err(e) => return skip(e),
                };
                let st = stat_fd(fd.as_fd())?;
                let mut dir_name = full.to_vec();
                dir_name.push(b'/');
                self.entry(&dir_name, &st, Object::Dir)?;
                if kernel_filesystem(fd.as_fd())?.is_some() {
                    return Ok(None);
                }
                Ok(Some(fd))
            }
            SFlag::S_IFLNK => {
                match nix::fcntl::readlinkat(Some(dir.as_raw_fd()), OsStr::from_bytes(name)) {
                    Ok(target) => self.entry(full, &st, Object::Symlink(target.as_bytes()))?,
                    Err(e) => return skip(e.into()),
                }
                Ok(None)
            }
            SFlag::S_IFSOCK => Ok(None),
            SFlag::S_IFREG => {
                let fd = match open_child(dir, name, libc::O_PATH) {
                    Ok(fd) => fd,
                    Err(e) => return skip(e),
                };
                let st = stat_fd(fd.as_fd())?;
                self.object(fd, st, full)?;
                Ok(None)
            }
            _ => {
                self.entry(full, &st, Object::Node)?;
                Ok(None)
            }
        }
    }

    /// Archives a non-directory from its `O_PATH` descriptor.
    fn object(&mut self, fd: OwnedFd, st: FileStat, name: &[u8]) -> io::Result<()> {
        match kind(&st) {
            SFlag::S_IFREG => {
                if kernel_filesystem(fd.as_fd())?.is_some() {
                    return Ok(());
                }
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = self.links.get(&key).cloned() {
                        return self.entry(name, &st, Object::HardLink(&first));
                    }
                    self.links.insert(key, name.to_vec());
                }
                let file = reopen_file(fd.as_fd(), &st)?;
                let caps = capability(&file);
                self.entry(name, &st, Object::File(file, caps))
            }
            SFlag::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(fd.as_raw_fd()), OsStr::new(""))?;
                self.entry(name, &st, Object::Symlink(target.as_bytes()))
            }
            SFlag::S_IFSOCK => Ok(()),
            SFlag::S_IFDIR => self.entry(name, &st, Object::Dir),
            _ => self.entry(name, &st, Object::Node),
        }
    }

    /// Writes one entry.
    fn entry(&mut self, name: &[u8], st: &FileStat, object: Object<'_>) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_mode(st.st_mode & 0o7777);
        h.set_uid(u64::from(st.st_uid));
        h.set_gid(u64::from(st.st_gid));
        h.set_mtime(st.st_mtime.max(0) as u64);
        h.set_size(0);
        let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
        if name.len() > NAME_FIELD {
            pax.push(("path", name.to_vec()));
        }
        let mut link: &[u8] = &[];
        let mut content: Option<std::fs::File> = None;
        match object {
            Object::Dir => h.set_entry_type(tar::EntryType::Directory),
            Object::File(file, caps) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(st.st_size.max(0) as u64);
                if let Some(caps) = caps {
                    pax.push(("SCHILY.xattr.security.capability", caps));
                }
                content = Some(file);
            }
            Object::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                link = target;
            }
            Object::HardLink(first) => {
                h.set_entry_type(tar::EntryType::Link);
                link = first;
            }
            Object::Node => {
                let (t, dev) = match kind(st) {
                    SFlag::S_IFCHR => (tar::EntryType::Char, true),
                    SFlag::S_IFBLK => (tar::EntryType::Block, true),
                    _ => (tar::EntryType::Fifo, false),
                };
                h.set_entry_type(t);
                if dev {
                    h.set_device_major(libc::major(st.st_rdev))?;
                    h.set_device_minor(libc::minor(st.st_rdev))?;
                }
            }
        }
        if link.len() > NAME_FIELD {
            pax.push(("linkpath", link.to_vec()));
        }
        if !pax.is_empty() {
            self.tar
                .append_pax_extensions(pax.iter().map(|(k, v)| (*k, v.as_slice())))?;
        }
        let fields = h.as_old_mut();
        let n = name.len().min(NAME_FIELD);
        fields.name[..n].copy_from_slice(&name[..n]);
        let l = link.len().min(NAME_FIELD);
        fields.linkname[..l].copy_from_slice(&link[..l]);
        h.set_cksum();
        match content {
            Some(file) => {
                let size = h.entry_size()?;
                self.tar.append(&h, Exact::new(file, size, name))
            }
            None => self.tar.append(&h, io::empty()),
        }
    }
}

/// Reopens a regular file held `O_PATH` for reading, through `/proc/self/fd` (the same
/// inode; checked).
fn reopen_file(fd: BorrowedFd<'_>, st: &FileStat) -> io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))?;
    let meta = file.metadata()?;
    if (meta.dev(), meta.ino()) != (st.st_dev, st.st_ino) || !meta.is_file() {
        return Err(io::Error::other("file changed while being opened"));
    }
    Ok(file)
}

/// `security.capability` of a file, as Docker archives it: a v3 capability (with a root
/// uid) is written as v2.
fn capability(file: &std::fs::File) -> Option<Vec<u8>> {
    use xattr::FileExt;
    let mut caps = file.get_xattr("security.capability").ok().flatten()?;
    const V2_SIZE: usize = 20;
    const REVISION_3: u8 = 0x03;
    if caps.len() > V2_SIZE && caps[3] == REVISION_3 {
        caps[3] = 0x02;
        caps.truncate(V2_SIZE);
    }
    Some(caps)
}

/// Exactly `size` bytes of a file that may change meanwhile: zeros after an early end (or
/// a read error), nothing past `size`.
struct Exact<'a> {
    file: std::fs::File,
    left: u64,
    short: bool,
    name: &'a [u8],
}

impl<'a> Exact<'a> {
    fn new(file: std::fs::File, size: u64, name: &'a [u8]) -> Self {
        Exact {
            file,
            left: size,
            short: false,
            name,
        }
    }
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = loop {
            if self.short {
                break 0;
            }
            match self.file.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(path = %String::from_utf8_lossy(self.name), "archive: reading failed, padding with zeros: {e}");
                    break 0;
                }
            }
        };
        let n = if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn names_of(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, String)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                let raw = e.path_bytes().into_owned();
                let link = e
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                (String::from_utf8(raw).unwrap(), h.entry_type(), link)
            })
            .collect()
    }

    fn tar_of(root: &std::path::Path, path: &str) -> Vec<u8> {
        let fs = berth_runtime::ContainerFs::of_directory(root).unwrap();
        let abs = super::super::paths::absolute(path.as_bytes());
        let found = super::super::find(fs.root(), &abs).unwrap();
        let mut out = Vec::new();
        pack(found, &mut out).unwrap();
        out
    }

    #[test]
    fn entries_are_named_as_dockers() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("d/sub")).unwrap();
        std::fs::write(r.join("d/b"), "b").unwrap();
        std::fs::write(r.join("d/.hidden"), "h").unwrap();
        std::fs::write(r.join("d/sub/x"), "xx").unwrap();
        std::fs::hard_link(r.join("d/b"), r.join("d/c")).unwrap();
        symlink("/etc/passwd", r.join("d/l")).unwrap();
        let got: Vec<String> = names_of(&tar_of(r, "/d"))
            .into_iter()
            .map(|(n, t, l)| format!("{n} {t:?} {l}"))
            .collect();
        assert_eq!(
            got,
            [
                "d/ Directory ",
                "d/.hidden Regular ",
                "d/b Regular ",
                "d/c Link d/b",
                "d/l Symlink /etc/passwd",
                "d/sub/ Directory ",
                "d/sub/x Regular ",
            ]
        );
        let dot: Vec<String> = names_of(&tar_of(r, "/d/."))
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        assert_eq!(dot[..3], ["./", "./.hidden", "./b"]);
        let file: Vec<String> = names_of(&tar_of(r, "/d/sub/x"))
            .into_iter()
            .map(|(n, _, _)| n)
            .collect();
        assert_eq!(file, ["x"]);
        let link = names_of(&tar_of(r, "/d/l"));
        assert_eq!(link[0].1, tar::EntryType::Symlink);
    }

    #[test]
    fn long_names_travel_in_pax_records() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        let long = "n".repeat(150);
        std::fs::create_dir(r.join("d")).unwrap();
        std::fs::write(r.join("d").join(&long), "x").unwrap();
        symlink("t".repeat(120), r.join("d/s")).unwrap();
        let got = names_of(&tar_of(r, "/d"));
        assert_eq!(got[1].0, format!("d/{long}"));
        assert_eq!(got[2].2, "t".repeat(120));
    }
}
