//! The export: a depth-first walk of an open directory, writing a GNU/PAX tar.
//!
//! Every entry is stat'ed with `AT_SYMLINK_NOFOLLOW`, every directory and file opened with
//! `O_NOFOLLOW` relative to its parent's descriptor and checked again with `fstat` once
//! open: an entry swapped meanwhile (a file for a symlink, a directory for a FIFO) is
//! passed over, never followed. Names in a directory are sorted, so one tree always gives
//! the same archive.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, SeekFrom, Stat};
use rustix::io::Errno;
use tar::{EntryType, Header};

use super::{proc_path, PAX_XATTR};

/// The size of the read buffer for file content.
const BUF: usize = 1 << 20;
/// How many sparse extents a GNU header holds, and an extension block.
const HEADER_EXTENTS: usize = 4;
const EXT_EXTENTS: usize = 21;

/// One directory being walked: its descriptor, its path in the archive (with a trailing
/// `/`, empty for the root) and its entries' names, sorted.
struct Level {
    fd: OwnedFd,
    prefix: Vec<u8>,
    names: Vec<CString>,
    next: usize,
}

/// Writes the tree under the open directory `root` to `out` as a tar archive (the root
/// itself as `./`, so its owner, mode and attributes travel too).
pub fn write_tree(root: OwnedFd, out: &mut dyn Write) -> io::Result<()> {
    let mut w = TarWriter::new(out);
    let st = rustix::fs::fstat(&root)?;
    w.directory(b"./", &root, &st)?;
    let names = sorted_names(&root)?;
    let mut stack = vec![Level {
        fd: root,
        prefix: Vec::new(),
        names,
        next: 0,
    }];
    while let Some(level) = stack.last_mut() {
        let Some(name) = level.names.get(level.next).cloned() else {
            stack.pop();
            continue;
        };
        level.next += 1;
        let mut path = level.prefix.clone();
        path.extend_from_slice(name.to_bytes());
        if let Some(dir) = w.entry(&level.fd, &name, &path)? {
            let names = sorted_names(&dir)?;
            path.push(b'/');
            stack.push(Level {
                fd: dir,
                prefix: path,
                names,
                next: 0,
            });
        }
    }
    // The end of the archive: two zero blocks.
    w.out.write_all(&[0; 1024])
}

/// The names in `dir` but `.` and `..`, sorted.
fn sorted_names(dir: &OwnedFd) -> io::Result<Vec<CString>> {
    let mut out = Vec::new();
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            out.push(name.to_owned());
        }
    }
    out.sort();
    Ok(out)
}

pub(super) struct TarWriter<'a> {
    out: &'a mut dyn Write,
    /// The first path of each inode with more than one link: the later ones are hard links
    /// to it.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
}

/// PAX records for one entry.
type Pax = Vec<(String, Vec<u8>)>;

impl<'a> TarWriter<'a> {
    pub(super) fn new(out: &'a mut dyn Write) -> Self {
        TarWriter {
            out,
            links: HashMap::new(),
            buf: vec![0; BUF],
        }
    }

    /// Writes the entry `name` of `dir` at `path`; returns a directory to walk into.
    pub(super) fn entry(
        &mut self,
        dir: &OwnedFd,
        name: &CString,
        path: &[u8],
    ) -> io::Result<Option<OwnedFd>> {
        let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed since the directory was read.
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let fd = match open(dir, name, OFlags::DIRECTORY) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let st = rustix::fs::fstat(&fd)?;
                let mut dir_path = path.to_vec();
                dir_path.push(b'/');
                self.directory(&dir_path, &fd, &st)?;
                Ok(Some(fd))
            }
            FileType::RegularFile => {
                self.regular(dir, name, path, &st)?;
                Ok(None)
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(dir, name, Vec::new()) {
                    Ok(t) => t.into_bytes(),
                    Err(Errno::NOENT | Errno::INVAL) => return Ok(None),
                    Err(e) => return Err(e.into()),
                };
                let mut h = header(&st, EntryType::Symlink);
                let mut pax = pax_times(&st);
                xattrs(&XattrSource::Path(proc_path(dir, name)), &mut pax)?;
                self.emit(&mut h, path, Some(&target), pax)?;
                Ok(None)
            }
            kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                if self.link_to_first(&st, path)? {
                    return Ok(None);
                }
                let entry_type = match kind {
                    FileType::CharacterDevice => EntryType::Char,
                    FileType::BlockDevice => EntryType::Block,
                    _ => EntryType::Fifo,
                };
                let mut h = header(&st, entry_type);
                if kind != FileType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
                }
                let mut pax = pax_times(&st);
                xattrs(&XattrSource::Path(proc_path(dir, name)), &mut pax)?;
                self.emit(&mut h, path, None, pax)?;
                self.remember_first(&st, path);
                Ok(None)
            }
            // A socket is no content (GNU tar: "socket ignored"); it goes with its server.
            _ => {
                tracing::debug!(
                    "export: {} passed over (a socket)",
                    String::from_utf8_lossy(path)
                );
                Ok(None)
            }
        }
    }

    /// The regular file `name` of `dir`, stat'ed as `st`: a hard link to its inode's first
    /// path when that was written, else its content. One swapped or removed since `st`
    /// was taken is passed over.
    pub(super) fn regular(
        &mut self,
        dir: &OwnedFd,
        name: &CString,
        path: &[u8],
        st: &Stat,
    ) -> io::Result<()> {
        if self.link_to_first(st, path)? {
            return Ok(());
        }
        // O_NONBLOCK: a FIFO swapped in meanwhile does not hang the open.
        let fd = match open(dir, name, OFlags::NONBLOCK | OFlags::NOCTTY) {
            Ok(fd) => fd,
            Err(Errno::NOENT | Errno::LOOP | Errno::NXIO) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let st = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(());
        }
        self.file(path, &fd, &st)?;
        self.remember_first(&st, path);
        Ok(())
    }

    /// Writes `path` as a hard link when an earlier entry of `st`'s inode was written;
    /// whether it did.
    fn link_to_first(&mut self, st: &Stat, path: &[u8]) -> io::Result<bool> {
        if st.st_nlink < 2 {
            return Ok(false);
        }
        let Some(first) = self.links.get(&(st.st_dev, st.st_ino)).cloned() else {
            return Ok(false);
        };
        let mut h = header(st, EntryType::Link);
        self.emit(&mut h, path, Some(&first), pax_times(st))?;
        Ok(true)
    }

    /// Remembers `path`, just written, as the first of `st`'s inode when it has other
    /// links. Only once written: a first path passed over (removed or swapped between its
    /// stat and its open) must not become the target of the later links, which the
    /// import would refuse as not in the archive.
    fn remember_first(&mut self, st: &Stat, path: &[u8]) {
        if st.st_nlink >= 2 {
            self.links
                .entry((st.st_dev, st.st_ino))
                .or_insert_with(|| path.to_vec());
        }
    }

    fn directory(&mut self, path: &[u8], fd: &OwnedFd, st: &Stat) -> io::Result<()> {
        let mut h = header(st, EntryType::Directory);
        let mut pax = pax_times(st);
        xattrs(&XattrSource::Fd(fd), &mut pax)?;
        self.emit(&mut h, path, None, pax)
    }

    /// A regular file: its content, sparse when it has holes.
    fn file(&mut self, path: &[u8], fd: &OwnedFd, st: &Stat) -> io::Result<()> {
        let mut pax = pax_times(st);
        xattrs(&XattrSource::Fd(fd), &mut pax)?;
        let size = u64::try_from(st.st_size).unwrap_or(0);
        if let Some(extents) = data_extents(fd, st)? {
            return self.sparse(path, fd, st, size, &extents, pax);
        }
        let mut h = header(st, EntryType::Regular);
        h.set_size(size);
        self.emit(&mut h, path, None, pax)?;
        self.content(fd, 0, size)?;
        self.pad(size)
    }

    /// A GNU sparse entry: the extents in the header (four) and extension blocks (21
    /// each), then the extents' data back to back.
    fn sparse(
        &mut self,
        path: &[u8],
        fd: &OwnedFd,
        st: &Stat,
        size: u64,
        extents: &[(u64, u64)],
        pax: Pax,
    ) -> io::Result<()> {
        let mut list = extents.to_vec();
        // A file ending in a hole ends with an empty extent at its size (GNU tar's).
        if list.last().is_none_or(|&(off, len)| off + len < size) {
            list.push((size, 0));
        }
        let stored: u64 = extents.iter().map(|e| e.1).sum();
        let mut h = header(st, EntryType::GNUSparse);
        h.set_size(stored);
        let (first, rest) = list.split_at(list.len().min(HEADER_EXTENTS));
        {
            let gnu = h.as_gnu_mut().expect("a GNU header");
            for (slot, &(off, len)) in gnu.sparse.iter_mut().zip(first) {
                slot.offset = numeric(off);
                slot.numbytes = numeric(len);
            }
            gnu.realsize = numeric(size);
            gnu.isextended = [u8::from(!rest.is_empty())];
        }
        self.emit(&mut h, path, None, pax)?;
        let chunks: Vec<&[(u64, u64)]> = rest.chunks(EXT_EXTENTS).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut ext = tar::GnuExtSparseHeader::new();
            for (slot, &(off, len)) in ext.sparse.iter_mut().zip(chunk.iter()) {
                slot.offset = numeric(off);
                slot.numbytes = numeric(len);
            }
            ext.isextended = [u8::from(i + 1 < chunks.len())];
            self.out.write_all(ext.as_bytes())?;
        }
        for &(off, len) in extents {
            self.content(fd, off, len)?;
        }
        self.pad(stored)
    }

    /// `len` bytes of `fd` from `offset`; what the file lost since its stat (it shrank) is
    /// written as zeros, so the archive keeps the size its header says.
    fn content(&mut self, fd: &OwnedFd, mut offset: u64, len: u64) -> io::Result<()> {
        let mut left = len;
        while left > 0 {
            let want = usize::try_from(left.min(BUF as u64)).unwrap_or(BUF);
            let n = match rustix::io::pread(fd, &mut self.buf[..want], offset) {
                Ok(0) => break,
                Ok(n) => n,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            };
            self.out.write_all(&self.buf[..n])?;
            offset += n as u64;
            left -= n as u64;
        }
        if left > 0 {
            self.buf[..BUF.min(left as usize)].fill(0);
            while left > 0 {
                let n = BUF.min(left as usize);
                self.out.write_all(&self.buf[..n])?;
                left -= n as u64;
            }
        }
        Ok(())
    }

    /// Zeros to the end of the block after `len` bytes of content.
    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rest = (512 - len % 512) % 512;
        self.out.write_all(&[0; 512][..rest as usize])
    }

    /// Writes `h` for `path` (and `link`), with a PAX header first when there are records
    /// or the names do not fit the header.
    fn emit(
        &mut self,
        h: &mut Header,
        path: &[u8],
        link: Option<&[u8]>,
        mut pax: Pax,
    ) -> io::Result<()> {
        let old = h.as_old_mut();
        if !set_name(&mut old.name, path) {
            pax.push(("path".into(), path.to_vec()));
        }
        if let Some(link) = link {
            if !set_name(&mut old.linkname, link) {
                pax.push(("linkpath".into(), link.to_vec()));
            }
        }
        if !pax.is_empty() {
            let body = pax_body(&pax);
            let mut x = Header::new_ustar();
            x.set_entry_type(EntryType::XHeader);
            set_name(&mut x.as_old_mut().name, b"././@PaxHeader");
            x.set_mode(0o644);
            x.set_size(body.len() as u64);
            x.set_cksum();
            self.out.write_all(x.as_bytes())?;
            self.out.write_all(&body)?;
            self.pad(body.len() as u64)?;
        }
        h.set_cksum();
        self.out.write_all(h.as_bytes())
    }
}

/// `name` or `linkname` set to `value` when it fits (a truncated copy otherwise, the PAX
/// record carrying the whole); whether it fit.
fn set_name(field: &mut [u8; 100], value: &[u8]) -> bool {
    field.fill(0);
    let n = value.len().min(field.len());
    field[..n].copy_from_slice(&value[..n]);
    value.len() <= field.len()
}

/// A GNU header for `st` as an entry of type `kind` (no size, no name yet).
fn header(st: &Stat, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(u64::try_from(st.st_mtime).unwrap_or(0));
    h.set_size(0);
    h
}

/// The PAX mtime to the nanosecond (the header has whole seconds only).
fn pax_times(st: &Stat) -> Pax {
    let nsec = st.st_mtime_nsec;
    if nsec == 0 || st.st_mtime < 0 {
        return Vec::new();
    }
    vec![(
        "mtime".into(),
        format!("{}.{:09}", st.st_mtime, nsec).into_bytes(),
    )]
}

/// Where an entry's extended attributes are read.
enum XattrSource<'a> {
    /// A file or directory, open.
    Fd(&'a OwnedFd),
    /// An entry not opened (a symlink, a device, a FIFO: opening one of the last two may
    /// block or act), by its `/proc/self/fd` path, read with the `l*` calls: a symlink's
    /// own attributes, never its target's.
    Path(PathBuf),
}

impl XattrSource<'_> {
    fn list_len(&self) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::flistxattr_query(fd),
            XattrSource::Path(p) => rustix::fs::llistxattr_query(p),
        }
    }

    fn list(&self, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            XattrSource::Path(p) => rustix::fs::llistxattr(p, buf),
        }
    }

    fn value_len(&self, name: &str) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
            XattrSource::Path(p) => rustix::fs::lgetxattr_query(p, name),
        }
    }

    fn value(&self, name: &str, buf: &mut [u8]) -> rustix::io::Result<usize> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
            XattrSource::Path(p) => rustix::fs::lgetxattr(p, name, buf),
        }
    }
}

/// The extended attributes of an entry, as PAX records. One removed since its directory
/// was read has none.
fn xattrs(src: &XattrSource<'_>, pax: &mut Pax) -> io::Result<()> {
    let len = match src.list_len() {
        Ok(0) | Err(Errno::NOTSUP | Errno::NOENT) => return Ok(()),
        Ok(n) => n,
        Err(e) => return Err(e.into()),
    };
    let mut list = vec![0u8; len + 256];
    let len = src.list(&mut list[..])?;
    for name in list[..len].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let value = match get_xattr(src, &name) {
            Ok(v) => v,
            // Removed since the list was read.
            Err(Errno::NODATA) => continue,
            Err(e) => return Err(e.into()),
        };
        pax.push((format!("{PAX_XATTR}{name}"), value));
    }
    Ok(())
}

fn get_xattr(src: &XattrSource<'_>, name: &str) -> rustix::io::Result<Vec<u8>> {
    loop {
        let len = src.value_len(name)?;
        let mut value = vec![0u8; len];
        match src.value(name, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(value);
            }
            // Grew between the two calls.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The PAX extended header's body: `"<len> <key>=<value>\n"` records, `<len>` counting
/// itself.
fn pax_body(records: &Pax) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in records {
        let rest = key.len() + value.len() + 3;
        let mut len = rest + rest.to_string().len();
        if len.to_string().len() > rest.to_string().len() {
            len += 1;
        }
        out.extend_from_slice(format!("{len} {key}=").as_bytes());
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out
}

/// A 12-byte numeric field: octal when it fits, else GNU's base-256.
fn numeric(v: u64) -> [u8; 12] {
    let mut field = [0u8; 12];
    if v < 0o77777777777 {
        let s = format!("{v:011o}");
        field[..11].copy_from_slice(s.as_bytes());
    } else {
        field[0] = 0x80;
        field[4..].copy_from_slice(&v.to_be_bytes());
    }
    field
}

/// `name` in `dir`, read-only, never through a symlink.
fn open(dir: impl AsFd, name: &CString, extra: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name.as_c_str(),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | extra,
        Mode::empty(),
    )
}

/// The data extents of a file with holes (`SEEK_DATA`/`SEEK_HOLE`), or `None` when it
/// has none to speak of (or the filesystem cannot say): then it is written whole. Extents
/// but the last are whole 512-byte blocks, as a GNU sparse entry needs; a filesystem
/// reporting otherwise gets the whole file.
pub(super) fn data_extents(fd: &OwnedFd, st: &Stat) -> io::Result<Option<Vec<(u64, u64)>>> {
    let size = u64::try_from(st.st_size).unwrap_or(0);
    let allocated = u64::try_from(st.st_blocks).unwrap_or(0).saturating_mul(512);
    if size == 0 || allocated >= size {
        return Ok(None);
    }
    let mut extents = Vec::new();
    let mut offset = 0;
    while offset < size {
        let data = match rustix::fs::seek(fd, SeekFrom::Data(offset)) {
            Ok(d) => d,
            // No data past `offset`: the rest is a hole.
            Err(Errno::NXIO) => break,
            Err(Errno::INVAL | Errno::NOTSUP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if data >= size {
            break;
        }
        let hole = match rustix::fs::seek(fd, SeekFrom::Hole(data)) {
            Ok(h) => h.min(size),
            Err(Errno::NXIO) => size,
            Err(e) => return Err(e.into()),
        };
        extents.push((data, hole - data));
        offset = hole;
    }
    let (last, rest) = match extents.split_last() {
        Some(split) => split,
        None => return Ok(Some(extents)),
    };
    if rest.iter().any(|&(_, len)| len % 512 != 0) {
        return Ok(None);
    }
    if rest.is_empty() && *last == (0, size) {
        return Ok(None);
    }
    Ok(Some(extents))
}
