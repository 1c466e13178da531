//! The build context: the tar the client sent, kept as one file and indexed in memory.
//!
//! Nothing of the context is ever extracted on the host: COPY reads the entries it needs
//! from the file and hands them, renamed, to the engine's extraction into the step's
//! container (which keeps every entry inside the container's root). The tar is decompressed
//! (plain, gzip, bzip2, xz, zstd) and written under the ingest budget, so a bomb or an
//! endless upload stops at berthd's limits.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_image::{decompress, BoundedTar, Budget, ImageError};
use sha2::{Digest, Sha256};
use tar::EntryType;

/// The most entries a context may hold.
const MAX_ENTRIES: usize = 1 << 20;

/// The most bytes the index's names (paths, link targets) may take: a tar of long names
/// compresses a thousandfold, and the index is in memory (a path takes 1 MiB, each entry
/// one, up to the ingest budget of tens of GiB).
const MAX_NAMES: u64 = 512 << 20;

/// What a context entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A hard link to an earlier entry (`link` names it).
    HardLink,
}

/// One entry of the context.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Clean, relative, `/`-separated, no leading `./` (the root is "").
    pub path: String,
    pub kind: EntryKind,
    pub mode: u32,
    pub mtime: u64,
    pub size: u64,
    /// Where the content starts in the context file.
    offset: u64,
    /// The content's SHA-256, taken as it arrived (a file's; zeros for the others).
    hash: [u8; 32],
    /// A symlink's target or a hard link's first path.
    pub link: String,
}

/// The context of one build. A clone shares the stored file and has its own index (a build
/// drops its ignored build files from its own).
#[derive(Clone)]
pub struct Context {
    file: Arc<File>,
    entries: BTreeMap<String, Entry>,
}

/// A context problem, said to the client.
#[derive(Debug)]
pub struct ContextError(pub String);

impl std::fmt::Display for ContextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<ImageError> for ContextError {
    fn from(e: ImageError) -> Self {
        ContextError(format!("the build context: {e}"))
    }
}

fn io_err(what: &str, e: io::Error) -> ContextError {
    ContextError(format!("the build context: {what}: {e}"))
}

impl Context {
    /// Reads the client's tar from `input` into `file` (a new file of the build's own
    /// directory), charged to `budget`, and indexes it, in one pass: each file's content is
    /// hashed as it goes by on its way to the file (COPY's cache keys never read it again).
    pub fn ingest(input: impl Read, file: File, budget: &Budget) -> Result<Context, ContextError> {
        Self::ingest_bounded(input, file, budget, MAX_NAMES)
    }

    /// [`Context::ingest`] with the index's names bounded by `max_names` bytes.
    fn ingest_bounded(
        input: impl Read,
        file: File,
        budget: &Budget,
        max_names: u64,
    ) -> Result<Context, ContextError> {
        let (_, plain) = decompress(input, budget)?;
        let mut tee = Tee {
            inner: plain,
            out: io::BufWriter::with_capacity(256 << 10, file),
            budget,
            failed: None,
        };
        let indexed = Self::index(&mut tee, max_names);
        // What follows the archive's end (its padding) is read, not kept: the client's
        // upload ends cleanly, within the budget.
        let rest = io::copy(&mut tee.inner, &mut io::sink());
        if let Some(e) = tee.failed.take() {
            return Err(e);
        }
        let entries = indexed?;
        if let Err(e) = rest {
            return Err(budget.or(ImageError::InvalidArchive(e.to_string())).into());
        }
        let file = tee
            .out
            .into_inner()
            .map_err(|e| io_err("store", e.into_error()))?;
        // Every file's content lies inside what was stored (a lying header whose size runs
        // past the end is refused here, not met by a reader later).
        let stored = file.metadata().map_err(|e| io_err("read", e))?.len();
        if let Some(e) = entries
            .values()
            .find(|e| e.kind == EntryKind::File && e.offset.saturating_add(e.size) > stored)
        {
            return Err(ContextError(format!(
                "the build context: entry {:?} is cut short ({} bytes announced)",
                e.path, e.size
            )));
        }
        Ok(Context {
            file: Arc::new(file),
            entries,
        })
    }

    /// The bytes the context's file holds.
    pub fn stored_size(&self) -> u64 {
        self.file.metadata().map(|m| m.len()).unwrap_or(0)
    }

    /// The entries of the tar `tee` reads (and stores), each file's content hashed.
    fn index<R: Read>(
        tee: &mut Tee<'_, R>,
        max_names: u64,
    ) -> Result<BTreeMap<String, Entry>, ContextError> {
        let mut entries = BTreeMap::new();
        let mut names = 0u64;
        let mut tar = BoundedTar::new(tee);
        {
            for entry in tar.entries().map_err(|e| io_err("read", e))? {
                let mut entry = entry.map_err(|e| io_err("read", e))?;
                let header = entry.header();
                let raw = entry.path_bytes();
                // Two names that differ only in bytes that are not UTF-8 must not become
                // one entry: refused by name.
                let Ok(name) = std::str::from_utf8(&raw) else {
                    return Err(ContextError(format!(
                        "the build context: entry {:?} is not UTF-8; berth's builder takes \
                         UTF-8 names only",
                        String::from_utf8_lossy(&raw)
                    )));
                };
                let Some(path) = clean(name) else {
                    return Err(ContextError(format!(
                        "the build context: entry {:?} leads outside the context",
                        String::from_utf8_lossy(&raw)
                    )));
                };
                let kind = match header.entry_type() {
                    EntryType::Regular | EntryType::Continuous => EntryKind::File,
                    // Its stored bytes are not its content: refused by name.
                    EntryType::GNUSparse => {
                        return Err(ContextError(format!(
                            "the build context: entry {path:?} is a sparse file, which \
                             berth's builder does not take"
                        )))
                    }
                    EntryType::Directory => EntryKind::Dir,
                    EntryType::Symlink => EntryKind::Symlink,
                    EntryType::Link => EntryKind::HardLink,
                    // Devices and FIFOs in a context are not copied (Docker skips them).
                    _ => continue,
                };
                let link = entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default();
                let link = if kind == EntryKind::HardLink {
                    clean(&link).unwrap_or_default()
                } else {
                    link
                };
                // The path is held twice (the key, the entry's).
                names += 2 * path.len() as u64 + link.len() as u64;
                if names > max_names {
                    return Err(ContextError(format!(
                        "the build context's names take more than {} MiB",
                        max_names >> 20
                    )));
                }
                if entries.len() >= MAX_ENTRIES {
                    return Err(ContextError(format!(
                        "the build context has more than {MAX_ENTRIES} entries"
                    )));
                }
                let mode = header.mode().unwrap_or(0o644) & 0o7777;
                let mtime = header.mtime().unwrap_or(0);
                let offset = entry.raw_file_position();
                let (size, hash) = if kind == EntryKind::File {
                    let mut h = Sha256::new();
                    let n = io::copy(&mut entry, &mut HashWriter(&mut h))
                        .map_err(|e| io_err("read", e))?;
                    if n != entry.size() {
                        return Err(ContextError(format!(
                            "the build context: entry {path:?} is cut short ({} bytes \
                             announced)",
                            entry.size()
                        )));
                    }
                    (n, h.finalize().into())
                } else {
                    (0, [0; 32])
                };
                let e = Entry {
                    mode,
                    mtime,
                    size,
                    offset,
                    hash,
                    path: path.clone(),
                    kind,
                    link,
                };
                entries.insert(path, e);
            }
        }
        Ok(entries)
    }

    /// Drops the Dockerfile and `.dockerignore` from what COPY sees when the context's
    /// `.dockerignore` excludes them, as Docker's daemon does (the client sent them anyway,
    /// to be read; the docker CLI lists a Dockerfile from outside the context, which it
    /// adds as `.dockerfile.<hex>`, there too).
    pub fn drop_ignored_build_files(&mut self, dockerfile: &str) {
        let Some(e) = self.entries.get(".dockerignore") else {
            return;
        };
        let Ok(content) = self.read(e, 1 << 20) else {
            return;
        };
        let patterns = berth_api::dockerignore::read_patterns(&content);
        let Ok(matcher) = berth_api::dockerignore::Matcher::new(&patterns) else {
            return;
        };
        for path in [
            clean(dockerfile).unwrap_or_default(),
            ".dockerignore".to_string(),
        ] {
            if !path.is_empty() && matcher.matches_legacy(&path) {
                self.entries.remove(&path);
            }
        }
    }

    /// The entry at `path` (clean, relative).
    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    /// The content of a file entry (a hard link's target's), at most `limit` bytes.
    pub fn read(&self, e: &Entry, limit: u64) -> io::Result<Vec<u8>> {
        let e = self.resolve_hard_link(e);
        if e.size > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is larger than {limit} bytes", e.path),
            ));
        }
        let mut buf = vec![0; e.size as usize];
        self.file.read_exact_at(&mut buf, e.offset)?;
        Ok(buf)
    }

    /// Copies a file entry's content to `out`.
    pub fn copy_to(&self, e: &Entry, out: &mut dyn Write) -> io::Result<()> {
        let e = self.resolve_hard_link(e);
        let mut left = e.size;
        let mut pos = e.offset;
        let mut buf = vec![0u8; (64 << 10).min(left.max(1) as usize)];
        while left > 0 {
            let n = (buf.len() as u64).min(left) as usize;
            self.file.read_exact_at(&mut buf[..n], pos)?;
            out.write_all(&buf[..n])?;
            left -= n as u64;
            pos += n as u64;
        }
        Ok(())
    }

    /// The size of a file entry's content (a hard link's target's).
    pub fn size_of(&self, e: &Entry) -> u64 {
        self.resolve_hard_link(e).size
    }

    /// A reader of a file entry's content (for ADD's extraction of an archive).
    pub fn open(&self, e: &Entry) -> io::Result<impl Read + Send + 'static> {
        let e = self.resolve_hard_link(e);
        let mut f = (*self.file).try_clone()?;
        f.seek(SeekFrom::Start(e.offset))?;
        Ok(io::BufReader::new(f).take(e.size))
    }

    /// Whether a file entry is an archive ADD extracts: a tar, plain or compressed (gzip,
    /// bzip2, xz, zstd), as Docker tells it (by content, not name). What the check
    /// decompresses is charged to `budget`.
    pub fn is_archive(&self, e: &Entry, budget: &Budget) -> bool {
        if !matches!(e.kind, EntryKind::File | EntryKind::HardLink) {
            return false;
        }
        let Ok(reader) = self.open(e) else {
            return false;
        };
        let Ok((_, mut plain)) = decompress(reader, budget) else {
            return false;
        };
        let mut block = [0u8; 512];
        if plain.read_exact(&mut block).is_err() {
            return false;
        }
        // A ustar/GNU magic, or an old tar whose header checksum holds.
        let magic = &block[257..262] == b"ustar";
        let stored = std::str::from_utf8(&block[148..156]).ok().and_then(|s| {
            u32::from_str_radix(s.trim_matches(|c: char| c == '\0' || c == ' '), 8).ok()
        });
        let sum: u32 = block
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    *b as u32
                }
            })
            .sum();
        magic || (stored == Some(sum) && block[0] != 0)
    }

    fn resolve_hard_link<'a>(&'a self, e: &'a Entry) -> &'a Entry {
        if e.kind == EntryKind::HardLink {
            if let Some(t) = self.entries.get(&e.link) {
                return t;
            }
        }
        e
    }

    /// The entries at and below `path` ("" for the whole context), in path order.
    pub fn subtree<'a>(&'a self, path: &str) -> Box<dyn Iterator<Item = &'a Entry> + 'a> {
        if path.is_empty() {
            return Box::new(self.entries.values());
        }
        // `a/...` sorts between `a/` and `a0` ('0' follows '/').
        let (lo, hi) = (format!("{path}/"), format!("{path}0"));
        Box::new(
            self.entries
                .get(path)
                .into_iter()
                .chain(self.entries.range(lo..hi).map(|(_, e)| e)),
        )
    }

    /// Every entry, in path order.
    pub fn all(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// A digest of what COPY would copy from these entries (paths relative to `base`, kinds,
    /// modes, link targets and content; not times): the cache key of a COPY.
    pub fn digest<'a>(
        &self,
        base: &str,
        entries: impl Iterator<Item = &'a Entry>,
    ) -> io::Result<String> {
        let mut h = Sha256::new();
        for e in entries {
            let rel = e.path.strip_prefix(base).unwrap_or(&e.path);
            h.update(format!("{rel}\0{:?}\0{:o}\0{}\0", e.kind, e.mode, e.link).as_bytes());
            if e.kind != EntryKind::Dir && e.kind != EntryKind::Symlink {
                // Fixed-size fields: one entry's content can never read as another's header.
                let content = self.resolve_hard_link(e);
                h.update(content.size.to_le_bytes());
                h.update(content.hash);
            }
        }
        Ok(format!("{:x}", h.finalize()))
    }
}

/// The contexts berthd keeps after their builds, by the key `berth build` gave them (a
/// digest of what its walk of the directory found: names, kinds, modes, sizes, inode
/// numbers, change times), so a rebuild of an unchanged directory sends nothing.
///
/// A key is the client's claim that the content is the same: any client of the socket
/// may already do anything, and `berth build` gives no key while a file changed within
/// the last seconds (a change inside one timestamp tick would not show in the stat). Only
/// the index lives in memory: the files under `<root>/build/contexts/` are removed when a
/// context is dropped, and at berthd's start.
pub struct ContextCache {
    dir: PathBuf,
    kept: Mutex<VecDeque<(String, Context)>>,
}

/// How many contexts are kept, the biggest kept, and the most kept in all.
const KEPT: usize = 4;
const MAX_KEPT: u64 = 512 << 20;
const MAX_KEPT_TOTAL: u64 = 1 << 30;

impl ContextCache {
    /// The cache of berthd's `root`, empty: what a previous berthd left is removed.
    pub fn new(root: &Path) -> ContextCache {
        let dir = root.join("build").join("contexts");
        let _ = std::fs::remove_dir_all(&dir);
        ContextCache {
            dir,
            kept: Mutex::new(VecDeque::new()),
        }
    }

    /// Drops every kept context (`builder prune`).
    pub fn clear(&self) {
        let mut kept = self.kept.lock().expect("contexts lock");
        for (k, _) in kept.drain(..) {
            let _ = std::fs::remove_file(self.dir.join(format!("{k}.tar")));
        }
    }

    /// Whether `key` has the form of a key (64 lowercase hex digits).
    pub fn valid_key(key: &str) -> bool {
        key.len() == 64
            && key
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// The context kept under `key`, if any (made the most recently used).
    pub fn get(&self, key: &str) -> Option<Context> {
        let mut kept = self.kept.lock().expect("contexts lock");
        let i = kept.iter().position(|(k, _)| k == key)?;
        let entry = kept.remove(i)?;
        let ctx = entry.1.clone();
        kept.push_front(entry);
        Some(ctx)
    }

    /// Keeps `ctx`, stored at `stored`, under `key`: the file is linked into the cache's
    /// directory (the build's own directory goes when the build ends). Too big a context is
    /// not kept; the least recently used go past the bounds.
    pub fn put(&self, key: &str, ctx: &Context, stored: &Path) {
        let size = ctx.stored_size();
        if !Self::valid_key(key) || size > MAX_KEPT {
            return;
        }
        let path = self.dir.join(format!("{key}.tar"));
        let _ = std::fs::remove_file(&path);
        let linked =
            std::fs::create_dir_all(&self.dir).and_then(|()| std::fs::hard_link(stored, &path));
        if let Err(e) = linked {
            tracing::warn!("keep a build context: {e}");
            return;
        }
        let mut kept = self.kept.lock().expect("contexts lock");
        kept.retain(|(k, _)| k != key);
        kept.push_front((key.to_string(), ctx.clone()));
        let mut total = 0;
        let mut n = 0;
        while let Some((k, c)) = kept.get(n) {
            let size = c.stored_size();
            if n >= KEPT || total + size > MAX_KEPT_TOTAL {
                let _ = std::fs::remove_file(self.dir.join(format!("{k}.tar")));
                kept.remove(n);
            } else {
                total += size;
                n += 1;
            }
        }
    }
}

/// The decompressed upload on its way to the context file: what is read is written and
/// charged to the budget (the first failure kept for the caller, whose tar reader would
/// only see a cut archive).
struct Tee<'a, R> {
    inner: R,
    out: io::BufWriter<File>,
    budget: &'a Budget,
    failed: Option<ContextError>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let err = self.budget.or(ImageError::InvalidArchive(e.to_string()));
                self.failed.get_or_insert(err.into());
                return Err(io::Error::other("the upload failed"));
            }
        };
        let stored = self
            .budget
            .charge_written(n as u64)
            .and_then(|()| self.out.write_all(&buf[..n]));
        if let Err(e) = stored {
            self.failed.get_or_insert(io_err("store", e));
            return Err(io::Error::other("the upload failed"));
        }
        Ok(n)
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A context path, cleaned: `./a//b/` is `a/b`, `.` is ""; `None` when it climbs out
/// (`..` above the root) — an absolute path is taken relative to the context, as Docker
/// takes COPY sources.
pub fn clean(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// A path in a container, cleaned as Go's `path.Clean` of an absolute path: `..` at the
/// root stays at the root (`/../x` is `/x`). Relative, without the leading `/` ("" is the
/// root).
pub fn clean_in_root(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_stay_at_the_root() {
        assert_eq!(clean_in_root("/../../x"), "x");
        assert_eq!(clean_in_root("/a/../../b/./c/"), "b/c");
        assert_eq!(clean_in_root("/.."), "");
        assert_eq!(clean_in_root("/"), "");
    }

    fn context_of(files: &[(&str, &[u8])]) -> Context {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            tar.append_data(&mut h, path, *data).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let dir = std::env::temp_dir().join(format!(
            "berth-ctx-test-{}-{}",
            std::process::id(),
            files.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let file = tempfile_in(&dir);
        let budget = Budget::for_archive(&dir, Default::default()).unwrap();
        let ctx = Context::ingest(bytes.as_slice(), file, &budget).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        ctx
    }

    fn tempfile_in(dir: &std::path::Path) -> File {
        File::options()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(dir.join("context.tar"))
            .unwrap()
    }

    /// One file whose content spells a second entry's header hashes apart from the two
    /// files: each entry's length goes in before its content.
    #[test]
    fn copy_digests_do_not_run_entries_together() {
        let two = context_of(&[("d/g", b"foo"), ("d/h", b"bar")]);
        let one = context_of(&[("d/g", b"fooh\x00File\x00644\x00\x00bar")]);
        let d2 = two.digest("d/", two.subtree("d")).unwrap();
        let d1 = one.digest("d/", one.subtree("d")).unwrap();
        assert_ne!(d1, d2);
        // And the same content is the same digest.
        let again = context_of(&[("d/g", b"foo"), ("d/h", b"bar")]);
        assert_eq!(again.digest("d/", again.subtree("d")).unwrap(), d2);
    }

    fn ingest_bytes(bytes: &[u8], name: &str) -> Result<Context, ContextError> {
        let dir = std::env::temp_dir().join(format!("berth-ctx-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = tempfile_in(&dir);
        let budget = Budget::for_archive(&dir, Default::default()).unwrap();
        let ctx = Context::ingest(bytes, file, &budget);
        let _ = std::fs::remove_dir_all(&dir);
        ctx
    }

    /// One pass: the content read back from the stored file is what was hashed, a cut
    /// archive is refused, and what follows the archive's end is read and dropped.
    #[test]
    fn ingest_stores_hashes_and_refuses_cut_archives() {
        let mut tar = tar::Builder::new(Vec::new());
        let data = vec![7u8; 100_000];
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o600);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, "dir/big", data.as_slice()).unwrap();
        let mut bytes = tar.into_inner().unwrap();
        let whole = bytes.clone();
        bytes.extend_from_slice(&[0u8; 4096]);
        let ctx = ingest_bytes(&bytes, "padded").unwrap();
        let e = ctx.get("dir/big").unwrap();
        assert_eq!(ctx.read(e, 1 << 20).unwrap(), data);
        assert_eq!(e.hash, <[u8; 32]>::from(Sha256::digest(&data)));
        // Cut inside the file's content.
        let cut = &whole[..50_000];
        let err = ingest_bytes(cut, "cut")
            .err()
            .expect("a cut archive is refused");
        assert!(err.0.contains("build context"), "{}", err.0);
    }

    /// Long names are bounded in all: the index lives in memory.
    #[test]
    fn the_indexs_names_are_bounded() {
        let mut tar = tar::Builder::new(Vec::new());
        for i in 0..40 {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(0);
            let name = format!("{i}/{}", "n".repeat(100 << 10));
            tar.append_data(&mut h, name, std::io::empty()).unwrap();
        }
        let bytes = tar.into_inner().unwrap();
        let dir = std::env::temp_dir().join(format!("berth-ctx-names-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let budget = Budget::for_archive(&dir, Default::default()).unwrap();
        let ingest =
            |max| Context::ingest_bounded(bytes.as_slice(), tempfile_in(&dir), &budget, max);
        let err = ingest(4 << 20).err().expect("refused");
        assert!(err.0.contains("names take more than 4 MiB"), "{}", err.0);
        assert_eq!(ingest(16 << 20).unwrap().all().count(), 40);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sparse_entries_are_refused_by_name() {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(EntryType::GNUSparse);
        h.set_path("s").unwrap();
        h.set_size(0);
        h.as_gnu_mut().unwrap().set_real_size(0);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 1024]);
        let err = ingest_bytes(&bytes, "sparse").err().expect("refused");
        assert!(err.0.contains("sparse"), "{}", err.0);
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean("./a//b/").as_deref(), Some("a/b"));
        assert_eq!(clean(".").as_deref(), Some(""));
        assert_eq!(clean("/x/../y").as_deref(), Some("y"));
        assert_eq!(clean("../x"), None);
        assert_eq!(clean("a/../../x"), None);
    }
}
