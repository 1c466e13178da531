//! Bounds on one ingest (a `load` or an `import`): how many bytes it may decompress and write,
//! and how much free space it must leave on the store's filesystem.
//!
//! A 93 MB gzip of zeros unpacks to 20 GiB: nothing about the input's size bounds what it
//! becomes. Every decompressed stream and every byte written into the store is charged to
//! the operation's [`Budget`]; the first charge over the allowance trips it, the operation
//! stops with [`ImageError::TooLarge`] (HTTP 413) and removes what it wrote.
//!
//! The allowance is the smaller of the configured `max_size` and the free space above the
//! reserve when the operation starts; while writing, the free space is also looked at again
//! (every [`RECHECK_BYTES`]), since other writers share the filesystem.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use crate::error::ImageError;

/// Free space is looked at again after this many bytes written.
const RECHECK_BYTES: u64 = 16 << 20;
/// The default reserve: 10 % of the filesystem, at most this.
const DEFAULT_RESERVE_CAP: u64 = 2 << 30;

/// What one `load` or `import` may use. berthd sets it from `--max-ingest-size` and
/// `--ingest-reserve`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestLimits {
    /// The most bytes one operation may write into the store (its archive as stored plus
    /// the layers it unpacks), and the most it may decompress. `None`: only the reserve
    /// bounds it.
    pub max_size: Option<u64>,
    /// Free space to keep on the store's filesystem. `None`: 10 % of the filesystem or
    /// 2 GiB, whichever is less.
    pub reserve: Option<u64>,
}

/// What one file, directory, link or node costs on disk besides its content, charged as
/// written: an empty directory takes a block, so a tar of names (or one deep name, whose
/// parents are made) would otherwise fill the disk uncharged.
pub(crate) const OBJECT_BYTES: u64 = 4096;

/// What the filesystem holding `path` has.
struct Usage {
    /// Free and total bytes, as an unprivileged writer sees them (root's reserved blocks do
    /// not count as free).
    space: (u64, u64),
    /// Free and total inodes (0 total: it has no fixed number, as btrfs).
    inodes: (u64, u64),
}

fn usage(path: &Path) -> Result<Usage, ImageError> {
    let st =
        nix::sys::statvfs::statvfs(path).map_err(|e| ImageError::io("statvfs", path, e.into()))?;
    let frsize = st.fragment_size() as u64;
    Ok(Usage {
        space: (
            st.blocks_available() as u64 * frsize,
            st.blocks() as u64 * frsize,
        ),
        inodes: (st.files_available() as u64, st.files() as u64),
    })
}

/// `1.5 GiB`, `300 MiB`, `12 KiB`, `17 B`.
pub(crate) fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The charges of one operation (a `load`, an `import`, a pull, or a `docker cp` into a
/// container). Shared by the threads that work for it.
pub struct Budget {
    /// what is being written, for the messages: `image` or `archive`
    subject: &'static str,
    /// a path on the filesystem written to, for statvfs
    fs: PathBuf,
    reserve: u64,
    max_size: Option<u64>,
    /// the most this operation may write or decompress
    allowance: u64,
    written: AtomicU64,
    decompressed: AtomicU64,
    since_check: AtomicU64,
    /// the most files, directories, links and nodes this operation may make, and how many
    /// it made: the inodes above the reserve (10 % of the filesystem's)
    objects_allowance: u64,
    objects: AtomicU64,
    /// why it tripped, once it did
    tripped: Mutex<Option<String>>,
}

impl Budget {
    /// The budget for one operation on the store at `fs`, refused at once when the
    /// filesystem is already at its reserve.
    pub(crate) fn new(fs: &Path, limits: IngestLimits) -> Result<Budget, ImageError> {
        Budget::of("image", fs, limits)
    }

    /// The budget for extracting one archive into the filesystem at `fs` (a path on it,
    /// such as `/proc/self/fd/N` of the destination directory): the same limits as an
    /// image's ingest, said of an archive.
    pub fn for_archive(fs: &Path, limits: IngestLimits) -> Result<Budget, ImageError> {
        Budget::of("archive", fs, limits)
    }

    fn of(subject: &'static str, fs: &Path, limits: IngestLimits) -> Result<Budget, ImageError> {
        let Usage {
            space: (free, total),
            inodes: (free_inodes, total_inodes),
        } = usage(fs)?;
        let objects_allowance = if total_inodes == 0 {
            u64::MAX
        } else {
            free_inodes.saturating_sub(total_inodes / 10)
        };
        let reserve = limits
            .reserve
            .unwrap_or_else(|| (total / 10).min(DEFAULT_RESERVE_CAP));
        let budget = Budget {
            subject,
            fs: fs.to_path_buf(),
            reserve,
            max_size: limits.max_size,
            allowance: free
                .saturating_sub(reserve)
                .min(limits.max_size.unwrap_or(u64::MAX)),
            written: AtomicU64::new(0),
            decompressed: AtomicU64::new(0),
            since_check: AtomicU64::new(0),
            objects_allowance,
            objects: AtomicU64::new(0),
            tripped: Mutex::new(None),
        };
        if objects_allowance == 0 {
            return Err(ImageError::TooLarge(budget.no_inodes()));
        }
        if free <= reserve {
            return Err(ImageError::TooLarge(budget.no_space(free)));
        }
        Ok(budget)
    }

    /// A budget that only counts (tests of code that needs one).
    #[cfg(test)]
    pub fn unlimited() -> Budget {
        Budget {
            subject: "image",
            fs: PathBuf::from("/"),
            reserve: 0,
            max_size: None,
            allowance: u64::MAX,
            written: AtomicU64::new(0),
            decompressed: AtomicU64::new(0),
            since_check: AtomicU64::new(0),
            objects_allowance: u64::MAX,
            objects: AtomicU64::new(0),
            tripped: Mutex::new(None),
        }
    }

    fn no_inodes(&self) -> String {
        format!(
            "not enough free inodes for the {}: berthd keeps 10 % of the filesystem's inodes \
             free for the host",
            self.subject
        )
    }

    /// One file, directory, link or node made: an inode (bounded by the free ones above
    /// the reserve) and `OBJECT_BYTES` (4 KiB) written.
    pub fn charge_object(&self) -> io::Result<()> {
        let made = self.objects.fetch_add(1, Relaxed) + 1;
        if made > self.objects_allowance {
            return Err(self.trip(format!(
                "{} too large: it makes more than {} files and directories, the free inodes \
                 above the 10 % berthd keeps free for the host",
                self.subject, self.objects_allowance
            )));
        }
        self.charge_written(OBJECT_BYTES)
    }

    fn no_space(&self, free: u64) -> String {
        format!(
            "not enough disk space for the {}: {} free, and berthd keeps {} free for the host (--ingest-reserve)",
            self.subject,
            human(free),
            human(self.reserve)
        )
    }

    fn over(&self, what: &str) -> String {
        match self.max_size {
            Some(max) if max <= self.allowance => format!(
                "{} too large: it {what} more than {} (the limit of berthd --max-ingest-size)",
                self.subject,
                human(max)
            ),
            _ => format!(
                "{} too large: it {what} more than the {} free above the {} berthd keeps free for the host (--ingest-reserve)",
                self.subject,
                human(self.allowance),
                human(self.reserve)
            ),
        }
    }

    fn trip(&self, message: String) -> io::Error {
        let mut tripped = self.tripped.lock().unwrap_or_else(|e| e.into_inner());
        let message = tripped.get_or_insert(message).clone();
        io::Error::other(message)
    }

    /// Charges `n` bytes about to be written into the store.
    pub fn charge_written(&self, n: u64) -> io::Result<()> {
        let written = self.written.fetch_add(n, Relaxed) + n;
        if written > self.allowance {
            return Err(self.trip(self.over("unpacks to")));
        }
        // (Threads that charge at once may both look at the filesystem: no harm.)
        let since = self.since_check.fetch_add(n, Relaxed) + n;
        if since < RECHECK_BYTES {
            return Ok(());
        }
        self.since_check.store(0, Relaxed);
        match usage(&self.fs) {
            Ok(Usage {
                space: (free, _), ..
            }) if free.saturating_sub(n) <= self.reserve => Err(self.trip(self.no_space(free))),
            _ => Ok(()),
        }
    }

    /// Charges `n` bytes coming out of a decompressor.
    pub fn charge_decompressed(&self, n: u64) -> io::Result<()> {
        let total = self.decompressed.fetch_add(n, Relaxed) + n;
        if total > self.allowance {
            return Err(self.trip(self.over("decompresses to")));
        }
        Ok(())
    }

    /// The error to return: [`ImageError::TooLarge`] when the budget tripped (whatever error
    /// the tripping caused on its way up through a decompressor or the tar reader), else
    /// `other`.
    pub fn or(&self, other: ImageError) -> ImageError {
        match self
            .tripped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(m) => ImageError::TooLarge(m.clone()),
            None => other,
        }
    }

    /// Bytes written so far.
    #[cfg(test)]
    pub fn written(&self) -> u64 {
        self.written.load(Relaxed)
    }
}

/// A decompressed stream, charged to a budget as it is read.
pub(crate) struct Bounded<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<'b, R> Bounded<'b, R> {
    pub fn new(inner: R, budget: &'b Budget) -> Self {
        Bounded { inner, budget }
    }
}

impl<R: Read> Read for Bounded<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.charge_decompressed(n as u64)?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max: u64) -> Budget {
        let dir = std::env::temp_dir();
        Budget::new(
            &dir,
            IngestLimits {
                max_size: Some(max),
                reserve: Some(0),
            },
        )
        .unwrap()
    }

    #[test]
    fn writes_over_the_max_size_trip_it_and_name_the_flag() {
        let b = budget(1000);
        b.charge_written(600).unwrap();
        let e = b.charge_written(600).unwrap_err();
        assert!(e.to_string().contains("--max-ingest-size"), "{e}");
        let e = b.or(ImageError::InvalidArgument("tar said so".into()));
        assert!(matches!(e, ImageError::TooLarge(_)), "{e:?}");
        assert_eq!(e.kind(), crate::ErrorKind::TooLarge);
        assert_eq!(b.written(), 1200);
    }

    #[test]
    fn every_object_costs_a_block() {
        let b = budget(10 * OBJECT_BYTES);
        for _ in 0..10 {
            b.charge_object().unwrap();
        }
        let e = b.charge_object().unwrap_err();
        assert!(e.to_string().contains("--max-ingest-size"), "{e}");
    }

    #[test]
    fn objects_are_bounded_by_the_free_inodes() {
        let b = budget(u64::MAX);
        let (free, total) = usage(&std::env::temp_dir()).unwrap().inodes;
        assert!(
            total > 0,
            "the test needs a filesystem with a fixed number of inodes"
        );
        assert_eq!(b.objects_allowance, free.saturating_sub(total / 10));
        let small = Budget {
            objects_allowance: 3,
            ..budget(u64::MAX)
        };
        for _ in 0..3 {
            small.charge_object().unwrap();
        }
        let e = small.charge_object().unwrap_err();
        assert!(e.to_string().contains("more than 3 files"), "{e}");
    }

    #[test]
    fn a_decompressed_stream_is_bounded() {
        let b = budget(10_000);
        let zeros = std::io::repeat(0).take(1 << 20);
        let mut out = Vec::new();
        let e = Bounded::new(zeros, &b).read_to_end(&mut out).unwrap_err();
        assert!(e.to_string().contains("decompresses to more than"), "{e}");
        assert!(out.len() <= 10_000, "{}", out.len());
    }

    #[test]
    fn a_reserve_above_the_free_space_refuses_at_once() {
        let e = Budget::new(
            &std::env::temp_dir(),
            IngestLimits {
                max_size: None,
                reserve: Some(u64::MAX),
            },
        )
        .err()
        .unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::TooLarge);
        assert!(e.to_string().contains("--ingest-reserve"), "{e}");
    }

    #[test]
    fn an_untripped_budget_passes_other_errors_through() {
        let b = budget(1000);
        b.charge_written(10).unwrap();
        let e = b.or(ImageError::InvalidArgument("bad".into()));
        assert_eq!(e.to_string(), "bad");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human(17), "17 B");
        assert_eq!(human(2 << 30), "2.0 GiB");
        assert_eq!(human(1536 << 10), "1.5 MiB");
    }
}
