//! The import: a tar stream unpacked under an open (staging) directory.
//!
//! Names are checked before anything is made: an absolute name or one with a `..`
//! component is refused (the whole import fails, and the caller drops the staging
//! directory). Parents are opened one component at a time with `O_NOFOLLOW |
//! O_DIRECTORY`, so a symlink the archive made earlier is never passed through (`a/link`
//! then `a/link/x`: refused); the last component is created with `O_EXCL`/`O_NOFOLLOW`,
//! `mkdirat`, `symlinkat`, `mknodat`, `linkat` (which links a symlink itself), and its
//! owner and times set with `AT_SYMLINK_NOFOLLOW`.
//!
//! Bounds: every byte read from the (decompressed) stream counts against `limit`, so a
//! small compressed archive cannot fill more than the caller allows; what the tar reader
//! reads between two entries (long names, PAX records, which it holds in memory) is
//! bounded by [`MAX_HEADERS`]; the holes of sparse entries, which the tar reader hands
//! out as zeros without reading them, count against `limit` times [`HOLE_RATIO`].

use std::cell::Cell;
use std::ffi::CString;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::rc::Rc;

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use tar::EntryType;

use super::{proc_path, PAX_XATTR};
use crate::open_dir;

/// The most the tar reader may read between two entries (Go's archive/tar refuses special
/// files over 1 MiB; see berth-image's tarbound.rs).
pub const MAX_HEADERS: u64 = 1 << 20;
/// How many bytes of holes an import may expand per byte of its limit.
pub const HOLE_RATIO: u64 = 64;
/// The write buffer, and the granule in which zeros of a sparse entry become holes.
const BUF: usize = 1 << 20;
const HOLE_GRANULE: usize = 4096;
/// How many deferred directories keep their descriptor open until the end; the times of
/// the rest are set through a walk from the root again (a tree of many thousands of
/// directories must not run into the descriptor limit).
const KEPT_DIRS: usize = 256;

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The archive cannot be read, or holds an entry berth refuses.
    #[error("{0}")]
    Invalid(String),
    /// The archive expands past what the caller allows.
    #[error("the archive expands past {limit} bytes, the space free on the volume's filesystem")]
    TooLarge { limit: u64 },
    /// Making an entry failed (the path is the archive's, relative to the volume).
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// The counts the reader shares with the unpacker.
#[derive(Debug, Clone, Copy, Default)]
struct Meter {
    /// Bytes read from the stream, and the most it may give.
    total: u64,
    limit: u64,
    /// Bytes read since the tar reader was asked for the next entry, and the most it may
    /// read then; `None` while an entry's content is read.
    between: Option<(u64, u64)>,
    /// Which bound was hit, for the error.
    exceeded: Option<Exceeded>,
}

#[derive(Debug, Clone, Copy)]
enum Exceeded {
    Total,
    Headers,
}

struct Metered<R> {
    inner: R,
    meter: Rc<Cell<Meter>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut m = self.meter.get();
        m.total += n as u64;
        if m.total > m.limit {
            m.exceeded = Some(Exceeded::Total);
        }
        if let Some((used, most)) = m.between {
            m.between = Some((used + n as u64, most));
            if used + n as u64 > most {
                m.exceeded = Some(Exceeded::Headers);
            }
        }
        self.meter.set(m);
        if m.exceeded.is_some() {
            return Err(io::Error::other("import bound exceeded"));
        }
        Ok(n)
    }
}

/// Unpacks the tar stream `input` under the open directory `root` (whose own metadata the
/// archive's `./` entry sets). At most `limit` bytes are read from `input`.
pub fn read_tree(input: impl Read, root: &OwnedFd, limit: u64) -> Result<(), ImportError> {
    let meter = Rc::new(Cell::new(Meter {
        limit,
        ..Meter::default()
    }));
    let read_error = |e: io::Error, meter: &Rc<Cell<Meter>>| match meter.get().exceeded {
        Some(Exceeded::Total) => ImportError::TooLarge { limit },
        Some(Exceeded::Headers) => ImportError::Invalid(format!(
            "reading the archive: an entry's headers (long name, long link or PAX records) \
             exceed {} MiB",
            MAX_HEADERS >> 20
        )),
        None => ImportError::Invalid(format!("reading the archive: {e}")),
    };
    let mut archive = tar::Archive::new(Metered {
        inner: input,
        meter: meter.clone(),
    });
    let mut unpacker = Unpacker {
        root,
        chain: Vec::new(),
        deferred: Vec::new(),
        kept: 0,
        buf: vec![0; BUF],
        holes_left: limit.saturating_mul(HOLE_RATIO),
    };
    let mut entries = archive.entries().map_err(|e| read_error(e, &meter))?;
    let mut last_size = 0u64;
    loop {
        set_between(&meter, Some(last_size.div_ceil(512) * 512 + MAX_HEADERS));
        let next = entries.next();
        set_between(&meter, None);
        let Some(entry) = next else { break };
        let mut entry = entry.map_err(|e| read_error(e, &meter))?;
        last_size = entry.header().entry_size().unwrap_or(0);
        unpacker.entry(&mut entry).map_err(|e| match e {
            // A read of the content failed: the stream's fault, or a bound.
            ImportError::Io {
                op: "read", source, ..
            } => read_error(source, &meter),
            e => e,
        })?;
    }
    unpacker.finish()
}

fn set_between(meter: &Rc<Cell<Meter>>, most: Option<u64>) {
    let mut m = meter.get();
    m.between = most.map(|most| (0, most));
    meter.set(m);
}

/// An entry's name as its components, or why it is refused.
fn components(raw: &[u8]) -> Result<Vec<CString>, String> {
    if raw.starts_with(b"/") {
        return Err("an absolute path is refused".into());
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("a `..` component is refused".into()),
            c => out.push(CString::new(c).map_err(|_| "a NUL in the name".to_string())?),
        }
    }
    Ok(out)
}

/// What one entry says besides its type and name.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timespec,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// A directory whose mtime is set at the end: its path, and its descriptor for the first
/// [`KEPT_DIRS`] of them.
struct Deferred {
    comps: Vec<CString>,
    fd: Option<OwnedFd>,
    mtime: Timespec,
}

struct Unpacker<'a> {
    root: &'a OwnedFd,
    /// The directories of the last entry's parent, open, from the root down: entries come
    /// in tree order, so most share it.
    chain: Vec<(CString, OwnedFd)>,
    /// Directories whose mtime is set at the end (their entries change it meanwhile).
    deferred: Vec<Deferred>,
    /// How many of them hold their descriptor.
    kept: usize,
    buf: Vec<u8>,
    /// The bytes of holes sparse entries may still expand to.
    holes_left: u64,
}

fn io_err<'a>(op: &'static str, path: &'a str) -> impl FnOnce(Errno) -> ImportError + 'a {
    move |e| ImportError::Io {
        op,
        path: path.to_string(),
        source: e.into(),
    }
}

impl Unpacker<'_> {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ImportError> {
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let refused = |why: String| ImportError::Invalid(format!("entry {shown}: {why}"));
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        let comps = components(&raw).map_err(refused)?;
        let meta = self.meta(entry).map_err(|e| ImportError::Io {
            op: "read",
            path: shown.clone(),
            source: e,
        })?;
        let Some((name, parents)) = comps.split_last() else {
            // `./`: the root itself.
            if !kind.is_dir() {
                return Err(refused("the volume's root must be a directory".into()));
            }
            let root = self.root.try_clone().map_err(|e| ImportError::Io {
                op: "open",
                path: shown.clone(),
                source: e,
            })?;
            apply_fd(&root, &meta, &shown)?;
            self.defer(Vec::new(), root, meta.mtime);
            return Ok(());
        };
        let parent = self.parent(parents, &shown)?;
        let parent = parent.try_clone_to_owned().map_err(|e| ImportError::Io {
            op: "open",
            path: shown.clone(),
            source: e,
        })?;
        match kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, name.as_c_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EXIST) if is_dir(&parent, name) => {}
                    Err(Errno::EXIST) => {
                        self.replace(&parent, name, &comps, &shown)?;
                        rustix::fs::mkdirat(&parent, name.as_c_str(), Mode::from_raw_mode(0o700))
                            .map_err(io_err("mkdir", &shown))?;
                    }
                    Err(e) => return Err(io_err("mkdir", &shown)(e)),
                }
                let fd = open_dir(&parent, name).map_err(io_err("open", &shown))?;
                apply_fd(&fd, &meta, &shown)?;
                self.defer(comps.clone(), fd, meta.mtime);
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let sparse = kind.is_gnu_sparse();
                let real_size = match entry.header().as_gnu() {
                    Some(gnu) if sparse => gnu.real_size().map_err(|e| ImportError::Io {
                        op: "read",
                        path: shown.clone(),
                        source: e,
                    })?,
                    _ => entry.size(),
                };
                if sparse {
                    // The header's size is what the archive stores; the entry's, after
                    // the tar reader read the sparse map, the file's.
                    let stored = entry.header().entry_size().map_err(|e| ImportError::Io {
                        op: "read",
                        path: shown.clone(),
                        source: e,
                    })?;
                    let holes = real_size.saturating_sub(stored);
                    if holes > self.holes_left {
                        return Err(refused(format!(
                            "its holes ({holes} bytes) exceed {HOLE_RATIO} times the space free"
                        )));
                    }
                    self.holes_left -= holes;
                }
                let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW;
                let fd = self.create(&parent, name, &comps, &shown, |d, n| {
                    rustix::fs::openat(d, n, flags | OFlags::CLOEXEC, Mode::from_raw_mode(0o600))
                })?;
                self.content(entry, &fd, sparse, real_size, &shown)?;
                apply_fd(&fd, &meta, &shown)?;
                set_times_fd(&fd, meta.mtime, &shown)?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("a symlink without a target".into()))?
                    .into_owned();
                let target = CString::new(target)
                    .map_err(|_| refused("a NUL in the symlink's target".into()))?;
                self.create(&parent, name, &comps, &shown, |d, n| {
                    rustix::fs::symlinkat(target.as_c_str(), d, n)
                })?;
                apply_at(&parent, name, &meta, false, &shown)?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| refused("a hard link without a target".into()))?
                    .into_owned();
                let target = components(&target)
                    .map_err(|why| refused(format!("its link target: {why}")))?;
                let Some((tname, tparents)) = target.split_last() else {
                    return Err(refused("a hard link to the volume's root".into()));
                };
                let tdir = walk(self.root, tparents)
                    .map_err(|e| refused(format!("its link target is not in the archive ({e})")))?;
                self.create(&parent, name, &comps, &shown, |d, n| {
                    rustix::fs::linkat(&tdir, tname.as_c_str(), d, n, AtFlags::empty())
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let header = entry.header();
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let dev = rustix::fs::makedev(major, minor);
                let mode = Mode::from_raw_mode(meta.mode & 0o777);
                self.create(&parent, name, &comps, &shown, |d, n| {
                    rustix::fs::mknodat(d, n, file_type, mode, dev)
                })?;
                apply_at(&parent, name, &meta, true, &shown)?;
            }
            other => {
                return Err(refused(format!(
                    "its type {other:?} is not one a volume holds"
                )))
            }
        }
        Ok(())
    }

    /// The entry's metadata: header fields, PAX mtime and xattrs.
    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>) -> io::Result<Meta> {
        let h = entry.header();
        let mode = h.mode()?;
        // An empty numeric field (the tar crate's builder leaves unset ones so) is zero, as
        // GNU tar reads it.
        let uid = u32::try_from(h.uid().unwrap_or(0))
            .map_err(|_| io::Error::other("uid out of range"))?;
        let gid = u32::try_from(h.gid().unwrap_or(0))
            .map_err(|_| io::Error::other("gid out of range"))?;
        let mut mtime = Timespec {
            tv_sec: i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        let mut xattrs = Vec::new();
        if let Some(pax) = entry.pax_extensions()? {
            for record in pax {
                let record = record?;
                let Ok(key) = record.key() else { continue };
                if let Some(name) = key.strip_prefix(PAX_XATTR) {
                    xattrs.push((name.to_string(), record.value_bytes().to_vec()));
                } else if key == "mtime" {
                    if let Some(t) = record.value().ok().and_then(parse_pax_time) {
                        mtime = t;
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// The open parent directory `parents` (made when missing, as tar does), through the
    /// chain of the last entry.
    fn parent(&mut self, parents: &[CString], shown: &str) -> Result<BorrowedFd<'_>, ImportError> {
        let same = self
            .chain
            .iter()
            .zip(parents)
            .take_while(|((a, _), b)| a == *b)
            .count();
        self.chain.truncate(same);
        for name in &parents[same..] {
            let dir = match self.chain.last() {
                Some((_, fd)) => fd.as_fd(),
                None => self.root.as_fd(),
            };
            let fd = match open_dir(dir, name) {
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(dir, name.as_c_str(), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(io_err("mkdir", shown)(e)),
                    }
                    open_dir(dir, name)
                }
                other => other,
            };
            let fd = fd.map_err(|e| match e {
                Errno::NOTDIR | Errno::LOOP => ImportError::Invalid(format!(
                    "entry {shown}: its path passes through a symlink or a non-directory"
                )),
                e => io_err("open", shown)(e),
            })?;
            self.chain.push((name.clone(), fd));
        }
        Ok(match self.chain.last() {
            Some((_, fd)) => fd.as_fd(),
            None => self.root.as_fd(),
        })
    }

    /// Makes an entry with `make`; one already there (a later entry of the same name,
    /// tar's last-wins) is removed first.
    fn create<T>(
        &mut self,
        parent: &OwnedFd,
        name: &CString,
        comps: &[CString],
        shown: &str,
        make: impl Fn(BorrowedFd<'_>, &std::ffi::CStr) -> rustix::io::Result<T>,
    ) -> Result<T, ImportError> {
        match make(parent.as_fd(), name.as_c_str()) {
            Err(Errno::EXIST) => {
                self.replace(parent, name, comps, shown)?;
                make(parent.as_fd(), name.as_c_str()).map_err(io_err("create", shown))
            }
            other => other.map_err(io_err("create", shown)),
        }
    }

    /// Removes what is at `name` (an empty directory, or anything else), forgetting it
    /// from the chain.
    fn replace(
        &mut self,
        parent: &OwnedFd,
        name: &CString,
        comps: &[CString],
        shown: &str,
    ) -> Result<(), ImportError> {
        if self.chain.len() >= comps.len() && self.chain.iter().zip(comps).all(|((a, _), b)| a == b)
        {
            self.chain.truncate(comps.len() - 1);
        }
        let flags = if is_dir(parent, name) {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(parent, name.as_c_str(), flags).map_err(io_err("replace", shown))
    }

    /// Copies the entry's content into `fd`; for a sparse entry, zeros (its holes, read
    /// as zeros) become holes again, whole granules of them.
    fn content<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        fd: &OwnedFd,
        sparse: bool,
        real_size: u64,
        shown: &str,
    ) -> Result<(), ImportError> {
        let mut offset = 0u64;
        loop {
            let n = read_full(entry, &mut self.buf).map_err(|e| ImportError::Io {
                op: "read",
                path: shown.to_string(),
                source: e,
            })?;
            if n == 0 {
                break;
            }
            let data = &self.buf[..n];
            if sparse {
                for granule in data.chunks(HOLE_GRANULE) {
                    if !granule.iter().all(|&b| b == 0) {
                        write_all_at(fd, granule, offset).map_err(io_err("write", shown))?;
                    }
                    offset += granule.len() as u64;
                }
            } else {
                write_all_at(fd, data, offset).map_err(io_err("write", shown))?;
                offset += n as u64;
            }
        }
        if sparse || offset != real_size {
            rustix::fs::ftruncate(fd, real_size).map_err(io_err("truncate", shown))?;
        }
        Ok(())
    }

    /// Remembers directory `comps` (open as `fd`) for [`Unpacker::finish`], keeping the
    /// descriptor while fewer than [`KEPT_DIRS`] are kept.
    fn defer(&mut self, comps: Vec<CString>, fd: OwnedFd, mtime: Timespec) {
        let fd = (self.kept < KEPT_DIRS).then_some(fd);
        self.kept += usize::from(fd.is_some());
        self.deferred.push(Deferred { comps, fd, mtime });
    }

    /// Sets the deferred directories' times, deepest last made first: through the
    /// descriptor kept, else a walk from the root.
    fn finish(mut self) -> Result<(), ImportError> {
        self.chain.clear();
        for Deferred { comps, fd, mtime } in self.deferred.into_iter().rev() {
            let shown = comps
                .iter()
                .map(|c| c.to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            let fd = match fd {
                Some(fd) => fd,
                None => match walk(self.root, &comps) {
                    Ok(fd) => fd,
                    // A later entry of the same name replaced it (tar's last-wins): it has
                    // no time to set, as with a descriptor kept (which sets the time of the
                    // directory removed).
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                    Err(e) => return Err(io_err("open", &shown)(e)),
                },
            };
            set_times_fd(&fd, mtime, &shown)?;
        }
        Ok(())
    }
}

/// Reads until `buf` is full or the entry ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn write_all_at(fd: &OwnedFd, mut data: &[u8], mut offset: u64) -> rustix::io::Result<()> {
    while !data.is_empty() {
        match rustix::io::pwrite(fd, data, offset) {
            Ok(0) => return Err(Errno::NOSPC),
            Ok(n) => {
                data = &data[n..];
                offset += n as u64;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// PAX's `mtime`: seconds, optionally with a fraction.
fn parse_pax_time(s: &str) -> Option<Timespec> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let tv_nsec = if digits.is_empty() {
        0
    } else {
        format!("{digits:0<9}").parse().ok()?
    };
    if tv_sec < 0 {
        return Some(Timespec { tv_sec, tv_nsec: 0 });
    }
    Some(Timespec { tv_sec, tv_nsec })
}

fn is_dir(dir: impl AsFd, name: &CString) -> bool {
    rustix::fs::statat(dir, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
}

/// The directory `comps` under `root`, never through a symlink.
fn walk(root: &OwnedFd, comps: &[CString]) -> rustix::io::Result<OwnedFd> {
    let mut fd = root.try_clone().map_err(|_| Errno::MFILE)?;
    for c in comps {
        fd = open_dir(&fd, c)?;
    }
    Ok(fd)
}

/// Owner, mode and xattrs of an open file or directory: the owner first (a chown clears
/// the set-id bits and `security.capability`), then the mode, then the attributes.
fn apply_fd(fd: &OwnedFd, meta: &Meta, shown: &str) -> Result<(), ImportError> {
    rustix::fs::fchown(
        fd,
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
    )
    .map_err(io_err("chown", shown))?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(meta.mode & 0o7777))
        .map_err(io_err("chmod", shown))?;
    for (name, value) in &meta.xattrs {
        rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()).map_err(|e| {
            ImportError::Io {
                op: "setxattr",
                path: format!("{shown} ({name})"),
                source: e.into(),
            }
        })?;
    }
    Ok(())
}

/// Owner (never through the symlink), mode (not for a symlink), xattrs and times of an
/// entry not opened: a symlink, a device, a FIFO.
fn apply_at(
    dir: &OwnedFd,
    name: &CString,
    meta: &Meta,
    chmod: bool,
    shown: &str,
) -> Result<(), ImportError> {
    rustix::fs::chownat(
        dir,
        name.as_c_str(),
        Some(Uid::from_raw(meta.uid)),
        Some(Gid::from_raw(meta.gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io_err("chown", shown))?;
    if chmod {
        // Made just now by this import in its staging directory, where no one else
        // writes: the name is the node made (chmodat has no no-follow flag on Linux).
        rustix::fs::chmodat(
            dir,
            name.as_c_str(),
            Mode::from_raw_mode(meta.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(io_err("chmod", shown))?;
    }
    if !meta.xattrs.is_empty() {
        let path = proc_path(dir, name);
        for (key, value) in &meta.xattrs {
            rustix::fs::lsetxattr(&path, key.as_str(), value, XattrFlags::empty())
                .map_err(io_err("setxattr", shown))?;
        }
    }
    let times = Timestamps {
        last_access: meta.mtime,
        last_modification: meta.mtime,
    };
    rustix::fs::utimensat(dir, name.as_c_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(io_err("utimes", shown))
}

fn set_times_fd(fd: &OwnedFd, mtime: Timespec, shown: &str) -> Result<(), ImportError> {
    let times = Timestamps {
        last_access: mtime,
        last_modification: mtime,
    };
    rustix::fs::futimens(fd, &times).map_err(io_err("utimes", shown))
}
