//! The ingest path of images whose layers arrive one by one (a pull): each layer is
//! streamed once (kept as its blob, hashed, decompressed, hashed again and unpacked into a
//! staging directory), several at a time from several threads, and nothing becomes part
//! of the store until [`LayerIngest::commit`], after every digest matched.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Mutex;

use super::{bad_input, check_digest, short, ImageStore, Names, Pins, Tee};
use crate::budget::Budget;
use crate::content::HashingReader;
use crate::error::{ImageError, IoContext};
use crate::unpack::{decompress, unpack_layer};

/// One layer ready for [`LayerIngest::commit`].
#[derive(Debug)]
pub struct StagedLayer {
    /// `sha256:` of the blob as it came (compressed or not).
    pub blob: String,
    pub media_type: String,
    pub blob_size: u64,
    pub diff_id: String,
    /// Unpacked into this staging directory (`None`: the store has the layer already).
    staged: Option<PathBuf>,
    /// Bytes of file content.
    size: u64,
}

/// An ingest in progress: what it fetched is kept from garbage collection, and what it
/// staged is removed when it is dropped uncommitted. Its layers share one budget: the
/// store's ingest limits bound the whole image.
pub struct LayerIngest<'a> {
    store: &'a ImageStore,
    budget: Budget,
    pins: Mutex<Pins<'a>>,
    /// Staging directories not yet committed.
    staging: Mutex<Vec<PathBuf>>,
    /// Layers come one at a time: each has its tar hashed on a thread of its own.
    one_at_a_time: bool,
    committed: bool,
}

impl ImageStore {
    /// Start ingesting one image's layers; refused at once when the filesystem is at its
    /// reserve.
    pub fn begin_ingest(&self) -> Result<LayerIngest<'_>, ImageError> {
        Ok(LayerIngest {
            store: self,
            budget: Budget::new(&self.root, self.limits)?,
            pins: Mutex::new(self.new_pins()),
            staging: Mutex::new(Vec::new()),
            one_at_a_time: false,
            committed: false,
        })
    }

    /// The image a pull would make from `config` already exists (by its id).
    pub fn has_image(&self, id: &str) -> bool {
        self.lock().images.contains_key(id)
    }

    /// The raw bytes of a blob the store holds (a config or manifest), if any.
    pub fn blob_bytes(&self, digest: &str) -> Option<Vec<u8>> {
        self.content.read(digest).ok()
    }
}

impl<'a> LayerIngest<'a> {
    /// Says that layers will come one at a time (a pull with one layer to fetch): each
    /// then spreads its work over one more thread.
    pub fn one_at_a_time(&mut self) {
        self.one_at_a_time = true;
    }

    fn pin(&self, key: String) {
        self.pins.lock().unwrap_or_else(|e| e.into_inner()).pin(key);
    }

    /// The layer is in the store already (its snapshot for `chain_id` and its blob): it
    /// needs no download. Pins both, so that a concurrent removal leaves them.
    pub fn present(
        &self,
        chain_id: &str,
        blob: &str,
        diff_id: &str,
        media_type: &str,
    ) -> Option<StagedLayer> {
        self.pin(format!("chain:{chain_id}"));
        self.pin(format!("blob:{blob}"));
        let st = self.store.lock();
        let n = st.snapshots.layer(chain_id)?;
        if !self.store.content.exists(blob) {
            return None;
        }
        Some(StagedLayer {
            blob: blob.to_string(),
            media_type: media_type.to_string(),
            blob_size: self.store.content.size(blob),
            diff_id: diff_id.to_string(),
            staged: None,
            size: st.snapshots.get(n).map_or(0, |m| m.size),
        })
    }

    /// One layer from `input` in a single pass: the bytes are kept as the blob (whose
    /// digest must be `blob`), decompressed (bounded by the store's ingest limits), hashed
    /// (must be `diff_id`) and unpacked into a staging directory. Unpacking is skipped when
    /// the store already has the layer's snapshot (`chain_id`). Safe to call from several
    /// threads at once.
    ///
    /// The blob's side (its hash and its file) runs on a thread of its own beside the
    /// decompression and unpacking; with [`LayerIngest::one_at_a_time`], the tar is hashed
    /// on a third thread too. Layers taken in together keep the cores busy without it.
    pub fn layer(
        &self,
        input: &mut (dyn Read + Send),
        blob: &str,
        diff_id: &str,
        chain_id: &str,
        media_type: &str,
    ) -> Result<StagedLayer, ImageError> {
        self.pin(format!("chain:{chain_id}"));
        self.pin(format!("blob:{blob}"));
        let what = format!("layer {}", short(blob));
        let budget = &self.budget;
        let unpack = self.store.lock().snapshots.layer(chain_id).is_none();
        let tmp = if unpack {
            let tmp = self.store.lock().snapshots.temp_dir()?;
            self.staging
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(tmp.clone());
            Some(tmp)
        } else {
            None
        };
        let mut ingest = self.store.content.begin()?;
        let ingest_path = ingest.path().to_path_buf();
        let (pieces, received) = std::sync::mpsc::sync_channel(PIECES_AHEAD);
        let (spent, reuse) = std::sync::mpsc::channel();
        let (read, (rest, write_error)) = std::thread::scope(|s| {
            let copy = &mut ingest;
            let blob_side = s.spawn(move || {
                let mut tee = Tee {
                    inner: input,
                    copy,
                    budget,
                    write_error: None,
                };
                let rest = pass_on(&mut tee, &pieces, &reuse);
                (rest, tee.write_error.take())
            });
            let read = (|| {
                let reader = Pieces {
                    received,
                    current: Vec::new(),
                    at: 0,
                    spent,
                };
                let (_, tar) = decompress(reader, budget)?;
                let mut hashing = match self.one_at_a_time {
                    true => TarHash::Aside(HashAside::new(s, tar)),
                    false => TarHash::Inline(HashingReader::new(tar)),
                };
                let size = match &tmp {
                    Some(tmp) => unpack_layer(&mut hashing, &tmp.join("fs"), budget)?.size,
                    None => 0,
                };
                let actual = hashing.finish().map_err(|e| budget.or(bad_input(e)))?;
                Ok::<_, ImageError>((actual, size))
            })();
            // The reader is gone: the blob's side reads on to the end of the blob (what
            // follows the compressed stream is part of it) without passing it on.
            let done = blob_side
                .join()
                .unwrap_or_else(|_| (Err(io::Error::other("the blob's thread panicked")), None));
            (read, done)
        });
        if let Some(e) = write_error {
            return Err(ImageError::io("write", &ingest_path, e));
        }
        // A blob that is not the one announced is reported as such, whatever else failed
        // while reading it.
        if rest.is_ok() && ingest.digest() != blob {
            return Err(ImageError::DigestMismatch {
                what,
                expected: blob.to_string(),
                actual: ingest.digest(),
            });
        }
        let (actual, size) = read?;
        rest.map_err(|e| budget.or(bad_input(e)))?;
        check_digest(&format!("{what} (uncompressed)"), diff_id, &actual)?;
        let blob_size = ingest.size();
        self.store.content.commit(ingest, Some(blob), &what)?;
        let size = match (&tmp, size) {
            (Some(_), s) => s,
            (None, _) => {
                let st = self.store.lock();
                st.snapshots
                    .layer(chain_id)
                    .and_then(|n| st.snapshots.get(n))
                    .map_or(0, |m| m.size)
            }
        };
        Ok(StagedLayer {
            blob: blob.to_string(),
            media_type: media_type.to_string(),
            blob_size,
            diff_id: diff_id.to_string(),
            staged: tmp,
            size,
        })
    }

    /// Make the image: `config_bytes` (whose `diff_ids` must be the layers' in order),
    /// the staged layers as snapshots, then the image record (the commit point) and its
    /// names. `manifest` is the raw manifest the image came by, kept so that a push sends
    /// the very same bytes (and digest). Returns the image id.
    pub fn commit(
        mut self,
        config_bytes: &[u8],
        layers: Vec<StagedLayer>,
        manifest: Option<&[u8]>,
        tags: &[String],
        digests: &[String],
    ) -> Result<String, ImageError> {
        let config = super::parse_config(config_bytes)?;
        if config.rootfs.diff_ids.len() != layers.len()
            || config
                .rootfs
                .diff_ids
                .iter()
                .zip(&layers)
                .any(|(d, l)| *d != l.diff_id)
        {
            return Err(ImageError::InvalidArchive(
                "the image config's diff_ids are not its layers".to_string(),
            ));
        }
        self.store.lock().snapshots.check_stackable(layers.len())?;
        let manifest_digest = match manifest {
            Some(bytes) => {
                let d = crate::content::digest_of(bytes);
                self.pin(format!("blob:{d}"));
                self.store.content.put(bytes)?;
                Some(d)
            }
            None => None,
        };
        let store = self.store;
        let mut pins = self.pins.lock().unwrap_or_else(|e| e.into_inner());
        let inputs: Vec<super::LayerSource> = layers
            .into_iter()
            .map(|l| super::LayerSource::Staged {
                blob: l.blob,
                media_type: l.media_type,
                blob_size: l.blob_size,
                dir: l.staged,
                size: l.size,
            })
            .collect();
        let budget = Budget::new(&store.root, store.limits)?;
        let id = store.commit_image_from(
            config_bytes,
            &inputs,
            Names {
                tags,
                digests,
                cache_key: None,
            },
            manifest_digest,
            &mut pins,
            &budget,
        )?;
        drop(pins);
        // The staging directories became snapshots (or were removed as duplicates).
        self.staging
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.committed = true;
        Ok(id)
    }
}

impl Drop for LayerIngest<'_> {
    fn drop(&mut self) {
        let staging = std::mem::take(&mut *self.staging.lock().unwrap_or_else(|e| e.into_inner()));
        for dir in staging {
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir).ctx("remove", &dir);
            }
        }
        if !self.committed {
            // Unpin, then take back the blobs this ingest stored for nothing.
            let pins = std::mem::replace(
                &mut *self.pins.lock().unwrap_or_else(|e| e.into_inner()),
                self.store.new_pins(),
            );
            drop(pins);
            let _ = self.store.gc(&mut self.store.lock());
        }
    }
}

/// Pieces of a blob read ahead of its decompression.
const PIECES_AHEAD: usize = 16;
/// The size of one piece.
const PIECE: usize = 128 * 1024;

/// Reads `tee` (the blob, kept and hashed as it is read) to its end, passing each piece on
/// to the decompressing thread while it takes them. Returns how the reading ended; a
/// failure is passed on too, so that the decompression sees it where the bytes stop.
fn pass_on(
    tee: &mut impl Read,
    pieces: &std::sync::mpsc::SyncSender<io::Result<Vec<u8>>>,
    reuse: &std::sync::mpsc::Receiver<Vec<u8>>,
) -> io::Result<()> {
    let mut passing = true;
    let mut scratch = Vec::new();
    loop {
        let mut buf = match passing {
            true => reuse.try_recv().unwrap_or_default(),
            false => std::mem::take(&mut scratch),
        };
        buf.resize(PIECE, 0);
        let n = match tee.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if passing {
                    let _ = pieces.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
                return Err(e);
            }
        };
        buf.truncate(n);
        if passing {
            passing = pieces.send(Ok(buf)).is_ok();
        } else {
            scratch = buf;
        }
    }
}

/// The decompressing side's view of the pieces; each read piece goes back for reuse.
struct Pieces {
    received: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
    spent: std::sync::mpsc::Sender<Vec<u8>>,
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.received.recv() {
                Ok(Ok(piece)) => {
                    let old = std::mem::replace(&mut self.current, piece);
                    self.at = 0;
                    if old.capacity() > 0 {
                        let _ = self.spent.send(old);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The decompressed stream, hashed as it is read.
enum TarHash<'scope, R> {
    Inline(HashingReader<R>),
    Aside(HashAside<'scope, R>),
}

impl<R: Read> TarHash<'_, R> {
    /// Reads the rest (tar leaves trailing zero blocks unread); the digest of it all.
    fn finish(self) -> io::Result<String> {
        match self {
            TarHash::Inline(h) => h.finish().map(|(d, _)| d),
            TarHash::Aside(h) => h.finish(),
        }
    }
}

impl<R: Read> Read for TarHash<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            TarHash::Inline(h) => h.read(buf),
            TarHash::Aside(h) => h.read(buf),
        }
    }
}

/// A reader whose bytes are hashed (SHA-256) on a thread of its own, in pieces.
struct HashAside<'scope, R> {
    inner: R,
    piece: Vec<u8>,
    to: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    reuse: std::sync::mpsc::Receiver<Vec<u8>>,
    hasher: std::thread::ScopedJoinHandle<'scope, String>,
}

impl<'scope, R: Read> HashAside<'scope, R> {
    fn new<'env>(s: &'scope std::thread::Scope<'scope, 'env>, inner: R) -> Self {
        let (to, pieces) = std::sync::mpsc::sync_channel::<Vec<u8>>(PIECES_AHEAD);
        let (spent, reuse) = std::sync::mpsc::channel();
        let hasher = s.spawn(move || {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            for piece in pieces {
                h.update(&piece);
                let _ = spent.send(piece);
            }
            format!("sha256:{}", hex::encode(h.finalize()))
        });
        HashAside {
            inner,
            piece: Vec::with_capacity(PIECE),
            to: Some(to),
            reuse,
            hasher,
        }
    }

    fn pass(&mut self) {
        let mut next = self.reuse.try_recv().unwrap_or_default();
        next.clear();
        next.reserve(PIECE);
        let full = std::mem::replace(&mut self.piece, next);
        if let Some(to) = &self.to {
            // (It ends only when this side is done with it.)
            let _ = to.send(full);
        }
    }

    /// Reads the rest (tar leaves trailing zero blocks unread); the digest of it all.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        self.pass();
        drop(self.to.take());
        self.hasher
            .join()
            .map_err(|_| io::Error::other("the hashing thread panicked"))
    }
}

impl<R: Read> Read for HashAside<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.piece.extend_from_slice(&buf[..n]);
        if self.piece.len() >= PIECE {
            self.pass();
        }
        Ok(n)
    }
}

/// The chain ids of a stack of layers (`diff_ids` bottom first): the first is its diff id,
/// each next one `sha256` of `"<parent chain> <diff id>"`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let chain = match out.last() {
            None => d.clone(),
            Some(c) => crate::content::digest_of(format!("{c} {d}").as_bytes()),
        };
        out.push(chain);
    }
    out
}
