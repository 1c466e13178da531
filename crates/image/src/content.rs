//! The content store (`blobs/sha256/<hex>`, raw bytes, named by their digest) and the small
//! atomic-write helpers every state file uses: temp file, fsync, rename, fsync the directory.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{ImageError, IoContext};

/// `sha256:<hex>` of `bytes`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The hex part of `sha256:<hex>`, checked.
pub(crate) fn digest_hex(digest: &str) -> Result<&str, ImageError> {
    match digest.strip_prefix("sha256:") {
        Some(h) if crate::reference::is_full_hex_id(h) => Ok(h),
        _ => Err(ImageError::InvalidArgument(format!(
            "unsupported digest {digest:?} (only sha256 is supported)"
        ))),
    }
}

/// A name no other writer in this process or another one picks.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Bytes written to a file between two [`start_writeback`] calls.
pub(crate) const WRITEBACK_EVERY: u64 = 8 << 20;

/// Starts the kernel writing `file`'s bytes in `[offset, offset + len)` to disk now, so
/// that the fsync or syncfs that makes them durable later finds them on their way. Only
/// advice: a failure changes nothing. (`POSIX_FADV_DONTNEED` starts the writeback of the
/// range's dirty pages and leaves them cached; nix offers no `sync_file_range`.)
pub(crate) fn start_writeback(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let _ = nix::fcntl::posix_fadvise(
        file.as_raw_fd(),
        offset as libc::off_t,
        len as libc::off_t,
        nix::fcntl::PosixFadviseAdvice::POSIX_FADV_DONTNEED,
    );
}

/// fsync a directory so a rename inside it is durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), ImageError> {
    File::open(dir).and_then(|d| d.sync_all()).ctx("fsync", dir)
}

/// Write `bytes` to `path` atomically: temp file, fsync, rename, fsync the directory.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(unique_name(".tmp-"));
    let result = (|| {
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        fs::rename(&tmp, path).ctx("rename", path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fsync_dir(dir)
}

/// Serialize `value` as pretty JSON and write it atomically.
pub(crate) fn atomic_write_json<T: serde::Serialize>(
    path: &Path,
    value: &T,
) -> Result<(), ImageError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| ImageError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    atomic_write(path, &bytes)
}

/// Read and parse a JSON file.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, ImageError> {
    let bytes = fs::read(path).ctx("read", path)?;
    serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// A reader that hashes and counts what passes through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// Read the rest (tar leaves trailing zero blocks unread), then return digest and size.
    pub fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        ))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A file being written into `ingest/`, hashed on the way; committed into `blobs/`, or
/// removed when dropped uncommitted (a failed or aborted ingest leaves nothing behind).
pub(crate) struct Ingest {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    size: u64,
    /// Bytes whose writeback was started.
    written_back: u64,
    committed: bool,
}

impl Drop for Ingest {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Ingest {
    /// The file under `ingest/`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// `sha256:<hex>` of what was written so far.
    pub fn digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }
}

impl Write for Ingest {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        if self.size - self.written_back >= WRITEBACK_EVERY {
            start_writeback(&self.file, self.written_back, self.size - self.written_back);
            self.written_back = self.size;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// `blobs/sha256/<hex>` plus `ingest/`.
#[derive(Debug, Clone)]
pub(crate) struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    pub fn open(root: &Path) -> Result<ContentStore, ImageError> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).ctx("create", &blobs)?;
        // Whatever is in ingest/ was cut short by a crash: nothing refers to it.
        if ingest.exists() {
            fs::remove_dir_all(&ingest).ctx("remove", &ingest)?;
        }
        fs::create_dir_all(&ingest).ctx("create", &ingest)?;
        Ok(ContentStore { blobs, ingest })
    }

    pub fn ingest_dir(&self) -> &Path {
        &self.ingest
    }

    pub fn path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs.join(digest_hex(digest)?))
    }

    pub fn exists(&self, digest: &str) -> bool {
        self.path(digest).map(|p| p.is_file()).unwrap_or(false)
    }

    pub fn size(&self, digest: &str) -> u64 {
        self.path(digest)
            .and_then(|p| fs::metadata(&p).ctx("stat", &p))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    pub fn read(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let p = self.path(digest)?;
        fs::read(&p).ctx("read", &p)
    }

    pub fn open_blob(&self, digest: &str) -> Result<File, ImageError> {
        let p = self.path(digest)?;
        File::open(&p).ctx("open", &p)
    }

    /// Start writing a blob into `ingest/`.
    pub fn begin(&self) -> Result<Ingest, ImageError> {
        let path = self.ingest.join(unique_name("blob-"));
        let file = File::create(&path).ctx("create", &path)?;
        Ok(Ingest {
            path,
            file,
            hasher: Sha256::new(),
            size: 0,
            written_back: 0,
            committed: false,
        })
    }

    /// Verify and move an ingest into `blobs/`. Returns the digest. On error the ingest file
    /// is removed (by the ingest's drop).
    pub fn commit(
        &self,
        mut ingest: Ingest,
        expected: Option<&str>,
        what: &str,
    ) -> Result<String, ImageError> {
        let digest = ingest.digest();
        if let Some(expected) = expected {
            if expected != digest {
                return Err(ImageError::DigestMismatch {
                    what: what.to_string(),
                    expected: expected.to_string(),
                    actual: digest,
                });
            }
        }
        ingest.file.sync_all().ctx("fsync", &ingest.path)?;
        let dest = self.path(&digest)?;
        fs::rename(&ingest.path, &dest).ctx("rename", &dest)?;
        ingest.committed = true;
        fsync_dir(&self.blobs)?;
        Ok(digest)
    }

    /// Store a small blob held in memory.
    pub fn put(&self, bytes: &[u8]) -> Result<String, ImageError> {
        let digest = digest_of(bytes);
        if !self.exists(&digest) {
            let mut ingest = self.begin()?;
            ingest.write_all(bytes).ctx("write", &ingest.path.clone())?;
            self.commit(ingest, Some(&digest), "blob")?;
        }
        Ok(digest)
    }

    /// Move a file already hashed to `digest` and fsynced (same filesystem) into `blobs/`.
    /// A second copy of the same content is simply left behind for its owner to remove.
    pub fn adopt(&self, path: &Path, digest: &str) -> Result<(), ImageError> {
        if self.exists(digest) {
            return Ok(());
        }
        let dest = self.path(digest)?;
        fs::rename(path, &dest).ctx("rename", &dest)?;
        fsync_dir(&self.blobs)
    }

    pub fn delete(&self, digest: &str) -> Result<(), ImageError> {
        let p = self.path(digest)?;
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(ImageError::io("remove", &p, e)),
            _ => Ok(()),
        }
    }

    /// Every stored digest.
    pub fn list(&self) -> Result<Vec<String>, ImageError> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.blobs).ctx("read", &self.blobs)? {
            let entry = entry.ctx("read", &self.blobs)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if crate::reference::is_full_hex_id(&name) {
                out.push(format!("sha256:{name}"));
            } else {
                // A temp file from an interrupted write.
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(out)
    }
}
