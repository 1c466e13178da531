//! `ImageStore`: refs, image metadata, and the operations the daemon calls.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::archive::{self, Extracted, SaveImage};
use crate::budget::{Budget, IngestLimits};
use crate::changes::apply_change;
use crate::config::{ContainerConfig, History, ImageConfig, RootFs};
use crate::content::{atomic_write_json, digest_hex, digest_of, read_json, ContentStore};
use crate::diff::{self, Change, ChangeList, LayerTar};
use crate::error::{ImageError, IoContext};
use crate::reference::{self, is_full_hex_id, is_lower_hex};
use crate::snapshot::{disk_usage, Mount, SnapshotKind, SnapshotMeta, Snapshots};
use crate::tarfs::TarWriter;
use crate::types::{
    CacheRecord, CommitOptions, DeleteItem, HistoryItem, ImageRecord, ImportOptions, LabelFilter,
    LayerSharing, LoadedImage, PruneReport,
};
use crate::unpack::{decompress, detect_compression, unpack_layer};

mod ingest;
mod source;
pub use ingest::{chain_ids, LayerIngest, StagedLayer};
pub use source::{ImageSource, SourceLayer};

/// One layer of an image, as `images/<hex>.json` records it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerRecord {
    diff_id: String,
    chain_id: String,
    /// the blob as received (compressed or not)
    blob: String,
    media_type: String,
    blob_size: u64,
    /// bytes of file content
    size: u64,
}

/// `images/<hex>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageMeta {
    id: String,
    layers: Vec<LayerRecord>,
    /// Made by a build step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    built: Option<Built>,
    /// The digest of the raw manifest it was pulled by (kept in the content store), so
    /// that a push sends the same bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest: Option<String>,
}

/// What a new image is known by: its tags and digests, and a build step's cache key.
#[derive(Default)]
struct Names<'a> {
    tags: &'a [String],
    digests: &'a [String],
    cache_key: Option<&'a str>,
}

/// What a build recorded of an image one of its steps made.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Built {
    /// The step's cache key.
    key: String,
    /// Build cache only (an intermediate step's image, until a build returns it as its
    /// result): not listed by `images`, not an `image prune`'s.
    intermediate: bool,
}

#[derive(Debug, Clone)]
struct ImageEntry {
    meta: ImageMeta,
    config: ImageConfig,
}

/// `refs.json`: every name, in familiar form.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Refs {
    /// `busybox:latest` -> image id
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// `busybox@sha256:...` -> image id
    #[serde(default)]
    digests: BTreeMap<String, String>,
    /// image id -> RFC 3339 time of its last tag
    #[serde(default)]
    last_tag_time: BTreeMap<String, String>,
}

impl Refs {
    fn of(&self, id: &str) -> Vec<String> {
        self.tags
            .iter()
            .chain(self.digests.iter())
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

struct State {
    refs: Refs,
    images: BTreeMap<String, ImageEntry>,
    snapshots: Snapshots,
}

/// How a reference matched.
enum Matched {
    /// by id, id prefix or digest of the config
    Id,
    /// by a `name:tag` or `name@digest` key of refs.json
    Name(String),
}

/// A layer blob about to become part of an image.
#[derive(Clone)]
struct LayerInput {
    blob: String,
    media_type: String,
    blob_size: u64,
    /// the snapshot was just unpacked from this very blob (import): skip re-checking
    verified: bool,
}

/// Where a layer of a new image comes from.
enum LayerSource {
    /// A blob in the content store, unpacked unless the snapshot exists.
    Blob(LayerInput),
    /// Unpacked already (a pull's staging directory; `None`: the snapshot exists), its
    /// digests checked.
    Staged {
        blob: String,
        media_type: String,
        blob_size: u64,
        dir: Option<PathBuf>,
        size: u64,
    },
}

/// Content and snapshots an unfinished operation relies on: garbage collection leaves them.
struct Pins<'a> {
    store: &'a ImageStore,
    keys: Vec<String>,
}

impl Pins<'_> {
    fn pin(&mut self, key: String) {
        *self.store.pins().entry(key.clone()).or_default() += 1;
        self.keys.push(key);
    }
}

impl Drop for Pins<'_> {
    fn drop(&mut self) {
        let mut pins = self.store.pins();
        for k in &self.keys {
            if let Some(c) = pins.get_mut(k) {
                *c -= 1;
                if *c == 0 {
                    pins.remove(k);
                }
            }
        }
    }
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The image store: content, names, metadata and snapshots under one root.
///
/// Safe to share between threads; a mutex guards the in-memory index, and slow work
/// (unpacking, hashing, writing archives) runs outside it.
pub struct ImageStore {
    root: PathBuf,
    content: ContentStore,
    state: Mutex<State>,
    /// lock order: `state` before `pins`
    pins: Mutex<HashMap<String, usize>>,
    limits: IngestLimits,
    /// The shared init layer (initlayer.rs).
    init_dir: PathBuf,
}

/// The digest of a tar without entries (its two zero blocks): Docker's `layer.IsEmpty`.
const EMPTY_LAYER_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

fn unix_seconds(rfc3339: Option<&str>) -> i64 {
    rfc3339
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
        .map_or(0, |t| t.timestamp())
}

fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

impl ImageStore {
    /// Open (creating) the store at `root` (`<berth root>/image`). Removes what a crash left:
    /// `ingest/`, half-made snapshots, blobs and layers no image refers to.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore, ImageError> {
        ImageStore::open_with(root, IngestLimits::default())
    }

    /// [`ImageStore::open`] with the bounds every `load` and `import` keeps to.
    pub fn open_with(
        root: impl Into<PathBuf>,
        limits: IngestLimits,
    ) -> Result<ImageStore, ImageError> {
        let root = root.into();
        fs::create_dir_all(&root).ctx("create", &root)?;
        let content = ContentStore::open(&root)?;
        let images_dir = root.join("images");
        fs::create_dir_all(&images_dir).ctx("create", &images_dir)?;
        let snapshots = Snapshots::open(root.join("snapshots"))?;
        let mut images = BTreeMap::new();
        for entry in fs::read_dir(&images_dir).ctx("read", &images_dir)? {
            let path = entry.ctx("read", &images_dir)?.path();
            if path.extension().is_none_or(|e| e != "json") {
                let _ = fs::remove_file(&path); // an interrupted atomic write
                continue;
            }
            let meta: ImageMeta = read_json(&path)?;
            let config = content
                .read(&meta.id)
                .and_then(|b| parse_config(&b))
                .map_err(|e| {
                    tracing::warn!(image = %meta.id, "dropping image with unreadable config: {e}");
                    e
                });
            let complete = meta
                .layers
                .iter()
                .all(|l| snapshots.layer(&l.chain_id).is_some());
            match config {
                Ok(config) if complete => {
                    images.insert(meta.id.clone(), ImageEntry { meta, config });
                }
                _ => fs::remove_file(&path).ctx("remove", &path)?,
            }
        }
        let refs_path = root.join("refs.json");
        let mut refs: Refs = if refs_path.exists() {
            read_json(&refs_path)?
        } else {
            Refs::default()
        };
        refs.tags.retain(|_, id| images.contains_key(id));
        refs.digests.retain(|_, id| images.contains_key(id));
        refs.last_tag_time.retain(|id, _| images.contains_key(id));
        crate::initlayer::remove_leftovers(&root);
        let init_dir = crate::initlayer::ensure(&root)?;
        let store = ImageStore {
            init_dir,
            root,
            content,
            state: Mutex::new(State {
                refs,
                images,
                snapshots,
            }),
            pins: Mutex::new(HashMap::new()),
            limits,
        };
        {
            let mut st = store.lock();
            store.save_refs(&st)?;
            store.gc(&mut st)?;
        }
        Ok(store)
    }

    /// The bounds of one `load` or `import`.
    pub fn ingest_limits(&self) -> IngestLimits {
        self.limits
    }

    fn budget(&self) -> Result<Budget, ImageError> {
        Budget::new(&self.root, self.limits)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pins(&self) -> MutexGuard<'_, HashMap<String, usize>> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_pins(&self) -> Pins<'_> {
        Pins {
            store: self,
            keys: Vec::new(),
        }
    }

    fn save_refs(&self, st: &State) -> Result<(), ImageError> {
        atomic_write_json(&self.root.join("refs.json"), &st.refs)
    }

    fn image_meta_path(&self, id: &str) -> Result<PathBuf, ImageError> {
        Ok(self
            .root
            .join("images")
            .join(format!("{}.json", digest_hex(id)?)))
    }

    /// Find an image by any spelling Docker accepts.
    pub fn resolve(&self, reference: &str) -> Result<ImageRecord, ImageError> {
        let st = self.lock();
        let (id, _) = resolve_in(&st, reference)?;
        Ok(record(&st, &id))
    }

    /// The empty image a build's `FROM scratch` starts from: no layer, no config, this
    /// machine's platform. Always the same id; build cache, never listed.
    pub fn scratch(&self) -> Result<String, ImageError> {
        let config = ImageConfig {
            architecture: archive::host_architecture().to_string(),
            os: "linux".to_string(),
            rootfs: RootFs {
                r#type: "layers".to_string(),
                diff_ids: Vec::new(),
            },
            ..ImageConfig::default()
        };
        let bytes = serde_json::to_vec(&config).expect("image config serializes");
        let budget = self.budget()?;
        let mut pins = self.new_pins();
        self.commit_image(
            &bytes,
            &[],
            Names {
                cache_key: Some("scratch"),
                ..Names::default()
            },
            &mut pins,
            &budget,
        )
    }

    /// The build cache: every build step's image no build returned, oldest first, each with
    /// the bytes of its own layer that no ordinary image holds (0 for a step that added no
    /// layer, or whose layer an image holds: `shared`).
    pub fn build_cache(&self) -> Vec<CacheRecord> {
        let st = self.lock();
        let held: HashSet<&str> = st
            .images
            .values()
            .filter(|e| !is_build_cache(e))
            .flat_map(|e| e.meta.layers.iter().map(|l| l.chain_id.as_str()))
            .collect();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut cache: Vec<(&String, &ImageEntry)> = st
            .images
            .iter()
            .filter(|(_, e)| is_build_cache(e))
            .collect();
        cache.sort_by_key(|(id, e)| (unix_seconds(e.config.created.as_deref()), id.as_str()));
        cache
            .into_iter()
            .map(|(id, e)| {
                let top = e.meta.layers.last();
                let shared = top.is_some_and(|l| held.contains(l.chain_id.as_str()));
                let own = top
                    .filter(|l| !shared && seen.insert(l.chain_id.as_str()))
                    .map_or(0, |l| l.size);
                CacheRecord {
                    id: id.clone(),
                    size: own,
                    shared,
                    created: unix_seconds(e.config.created.as_deref()),
                    description: e
                        .config
                        .history
                        .last()
                        .map(|h| h.created_by.clone())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// `builder prune`: removes the build cache records `remove` picks (not those a
    /// container uses). Returns the ids removed and the bytes reclaimed.
    pub fn prune_build_cache(
        &self,
        remove: &[String],
        in_use: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Vec<String>, u64), ImageError> {
        let mut st = self.lock();
        let mut removed = Vec::new();
        let mut reclaimed = 0;
        let mut items = Vec::new();
        for id in remove {
            let is_cache = st.images.get(id).is_some_and(is_build_cache);
            if !is_cache || in_use(id).is_some() {
                continue;
            }
            reclaimed += self.delete_image(&mut st, id, true, in_use, &mut items)?;
            removed.push(id.clone());
        }
        Ok((removed, reclaimed))
    }

    /// The image a build step with cache key `key` made, if it is still here.
    pub fn cached(&self, key: &str) -> Option<String> {
        let st = self.lock();
        st.images
            .iter()
            .find(|(_, e)| e.meta.built.as_ref().is_some_and(|b| b.key == key))
            .map(|(id, _)| id.clone())
    }

    /// Makes a build step's image a build's result: listed, and an image like any other
    /// (its cache key kept, so later builds still find it).
    pub fn keep_built(&self, id: &str) -> Result<(), ImageError> {
        let mut st = self.lock();
        let (id, _) = resolve_in(&st, id)?;
        self.keep_built_in(&mut st, &id)
    }

    fn keep_built_in(&self, st: &mut State, id: &str) -> Result<(), ImageError> {
        let Some(entry) = st.images.get_mut(id) else {
            return Ok(());
        };
        if !entry.meta.built.as_ref().is_some_and(|b| b.intermediate) {
            return Ok(());
        }
        let mut meta = entry.meta.clone();
        if let Some(b) = meta.built.as_mut() {
            b.intermediate = false;
        }
        atomic_write_json(&self.image_meta_path(id)?, &meta)?;
        entry.meta = meta;
        Ok(())
    }

    /// Every image, newest first (build cache excepted).
    pub fn list(&self) -> Vec<ImageRecord> {
        let st = self.lock();
        let mut out: Vec<ImageRecord> = st
            .images
            .iter()
            .filter(|(_, e)| !is_build_cache(e))
            .map(|(id, _)| record(&st, id))
            .collect();
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        out
    }

    /// The layers' bytes for `system df`: each layer once over all images, and per image
    /// the part it shares with another (Docker counts a layer shared when more than one
    /// image refers to its chain id).
    pub fn layer_sharing(&self) -> LayerSharing {
        let st = self.lock();
        let mut refs: HashMap<&str, (u64, usize)> = HashMap::new();
        for entry in st.images.values() {
            for l in &entry.meta.layers {
                refs.entry(l.chain_id.as_str()).or_insert((l.size, 0)).1 += 1;
            }
        }
        let shared_size = st
            .images
            .iter()
            .map(|(id, entry)| {
                let shared = entry
                    .meta
                    .layers
                    .iter()
                    .filter(|l| refs[l.chain_id.as_str()].1 > 1)
                    .map(|l| l.size)
                    .sum();
                (id.clone(), shared)
            })
            .collect();
        LayerSharing {
            layers_size: refs.values().map(|(size, _)| size).sum(),
            shared_size,
        }
    }

    /// Tag an image: `repo` may arrive fully qualified (`docker.io/library/busybox`); it is
    /// stored in familiar form. An empty `tag` means `latest` (or the tag written in `repo`).
    pub fn tag(&self, source: &str, repo: &str, tag: &str) -> Result<(), ImageError> {
        let mut r = reference::parse(repo)?;
        if r.digest.is_some() {
            return Err(ImageError::InvalidArgument(format!(
                "refusing to create a tag with a digest reference: {repo}"
            )));
        }
        if !tag.is_empty() {
            if !reference::valid_tag(tag) {
                return Err(ImageError::InvalidArgument(format!(
                    "invalid tag format: {tag:?}"
                )));
            }
            r.tag = Some(tag.to_string());
        }
        let mut st = self.lock();
        let (id, _) = resolve_in(&st, source)?;
        self.keep_built_in(&mut st, &id)?;
        st.refs.tags.insert(r.familiar_tagged(), id.clone());
        st.refs.last_tag_time.insert(id, now_rfc3339());
        self.save_refs(&st)
    }

    /// `docker rmi`. See the crate docs for the exact Docker semantics kept.
    pub fn remove(
        &self,
        reference: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<DeleteItem>, ImageError> {
        let mut st = self.lock();
        let (id, matched) = resolve_in(&st, reference)?;
        let mut items = Vec::new();
        let refs = st.refs.of(&id);
        match matched {
            Matched::Name(key) => {
                if !force && is_single_reference(&refs) {
                    if let Some(container) = in_use(&id) {
                        return Err(ImageError::Conflict(format!(
                            "conflict: unable to remove repository reference \"{reference}\" (must force) - container {} is using its referenced image {}",
                            short(&container),
                            short(&id)
                        )));
                    }
                }
                untag(&mut st, &key, &mut items);
                // Only digest references of the same repository left: they go too (Docker).
                let remaining = st.refs.of(&id);
                let repo = repo_of(&key);
                if !remaining.is_empty()
                    && remaining
                        .iter()
                        .all(|r| st.refs.digests.contains_key(r) && repo_of(r) == repo)
                {
                    for r in remaining {
                        untag(&mut st, &r, &mut items);
                    }
                }
                if !st.refs.of(&id).is_empty() {
                    self.save_refs(&st)?;
                    return Ok(items);
                }
                // The last name is gone: the image goes too, as with Docker.
                self.delete_image(&mut st, &id, true, in_use, &mut items)?;
            }
            Matched::Id => {
                if is_single_reference(&refs) {
                    if !force {
                        if let Some(container) = in_use(&id) {
                            return Err(used_by_container(&id, &container));
                        }
                    }
                    for r in refs {
                        untag(&mut st, &r, &mut items);
                    }
                }
                self.delete_image(&mut st, &id, force, in_use, &mut items)?;
            }
        }
        Ok(items)
    }

    /// Docker's `imageDeleteHelper`: soft conflicts (other names, containers) unless `force`.
    fn delete_image(
        &self,
        st: &mut State,
        id: &str,
        force: bool,
        in_use: &dyn Fn(&str) -> Option<String>,
        items: &mut Vec<DeleteItem>,
    ) -> Result<u64, ImageError> {
        if !force {
            if !st.refs.of(id).is_empty() {
                self.save_refs(st)?;
                return Err(ImageError::Conflict(format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                    short(id)
                )));
            }
            if let Some(container) = in_use(id) {
                self.save_refs(st)?;
                return Err(used_by_container(id, &container));
            }
        }
        for r in st.refs.of(id) {
            untag(st, &r, items);
        }
        st.refs.last_tag_time.remove(id);
        self.save_refs(st)?;
        let meta_path = self.image_meta_path(id)?;
        fs::remove_file(&meta_path).ctx("remove", &meta_path)?;
        st.images.remove(id);
        items.push(DeleteItem::Deleted(id.to_string()));
        let removed = self.gc(st)?;
        let mut reclaimed = 0;
        for (chain_id, size) in removed {
            items.push(DeleteItem::Deleted(chain_id));
            reclaimed += size;
        }
        Ok(reclaimed)
    }

    /// Remove layer snapshots and blobs no image (or pinned operation) needs.
    fn gc(&self, st: &mut State) -> Result<Vec<(String, u64)>, ImageError> {
        let pins = self.pins();
        let keep: HashSet<String> = st
            .images
            .values()
            .flat_map(|e| e.meta.layers.iter().map(|l| l.chain_id.clone()))
            .collect();
        let removed = st
            .snapshots
            .gc_layers(&keep, &|chain| pins.contains_key(&format!("chain:{chain}")))?;
        let mut blobs: HashSet<&str> = HashSet::new();
        for e in st.images.values() {
            blobs.insert(&e.meta.id);
            blobs.extend(e.meta.manifest.as_deref());
            blobs.extend(e.meta.layers.iter().map(|l| l.blob.as_str()));
        }
        for digest in self.content.list()? {
            if !blobs.contains(digest.as_str()) && !pins.contains_key(&format!("blob:{digest}")) {
                self.content.delete(&digest)?;
            }
        }
        Ok(removed)
    }

    /// `docker image prune`: dangling images (or, with `all`, every image) that no container
    /// uses and that pass the label filters.
    pub fn prune(
        &self,
        all: bool,
        in_use: &dyn Fn(&str) -> Option<String>,
        label_filters: &[LabelFilter],
    ) -> Result<PruneReport, ImageError> {
        let mut st = self.lock();
        let candidates: Vec<String> = st
            .images
            .iter()
            .filter(|(id, e)| {
                (all || st.refs.of(id).is_empty())
                    && !is_build_cache(e)
                    && in_use(id).is_none()
                    && label_filters.iter().all(|f| f.accepts(&e.config))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut report = PruneReport::default();
        for id in candidates {
            report.space_reclaimed +=
                self.delete_image(&mut st, &id, true, in_use, &mut report.deleted)?;
        }
        Ok(report)
    }

    /// `docker history`, newest first.
    pub fn history(&self, reference: &str) -> Result<Vec<HistoryItem>, ImageError> {
        let st = self.lock();
        let (id, _) = resolve_in(&st, reference)?;
        let entry = &st.images[&id];
        let mut sizes = entry.meta.layers.iter().map(|l| l.size as i64);
        let mut items: Vec<HistoryItem> = entry
            .config
            .history
            .iter()
            .map(|h| HistoryItem {
                id: "<missing>".to_string(),
                created: unix_seconds(h.created.as_deref()),
                created_by: h.created_by.clone(),
                tags: Vec::new(),
                size: if h.empty_layer {
                    0
                } else {
                    sizes.next().unwrap_or(0)
                },
                comment: h.comment.clone(),
            })
            .collect();
        // Layers the history does not describe (hand-made configs) still get a row each.
        for size in sizes {
            items.push(HistoryItem {
                id: "<missing>".to_string(),
                created: unix_seconds(entry.config.created.as_deref()),
                created_by: String::new(),
                tags: Vec::new(),
                size,
                comment: String::new(),
            });
        }
        items.reverse();
        if let Some(top) = items.first_mut() {
            top.id = id.clone();
            top.tags = record(&st, &id).repo_tags;
        }
        Ok(items)
    }

    /// `docker import`: a root filesystem tar (plain, gzip or zstd) becomes a one-layer image.
    /// Returns the image id.
    pub fn import(
        &self,
        rootfs_tar: &mut dyn Read,
        opts: &ImportOptions,
    ) -> Result<String, ImageError> {
        let tag = match &opts.reference {
            Some(r) => {
                let r = reference::parse(r)?;
                if r.digest.is_some() {
                    return Err(ImageError::InvalidArgument(
                        "import reference cannot contain a digest".to_string(),
                    ));
                }
                Some(r.familiar_tagged())
            }
            None => None,
        };
        let mut container_config = ContainerConfig::default();
        for change in &opts.changes {
            apply_change(&mut container_config, change)?;
        }
        let (os, architecture, variant) = parse_platform(opts.platform.as_deref())?;

        let budget = self.budget()?;
        let mut pins = self.new_pins();
        let (layer, diff_id) = self.unpack_import(rootfs_tar, &mut pins, &budget)?;
        let created = now_rfc3339();
        let comment = if opts.message.is_empty() {
            "Imported from -".to_string()
        } else {
            opts.message.clone()
        };
        let config = ImageConfig {
            architecture,
            os,
            variant,
            created: Some(created.clone()),
            comment: comment.clone(),
            config: container_config,
            rootfs: RootFs {
                r#type: "layers".to_string(),
                diff_ids: vec![diff_id],
            },
            history: vec![History {
                created: Some(created),
                comment,
                ..History::default()
            }],
            ..ImageConfig::default()
        };
        let config_bytes = serde_json::to_vec(&config).expect("image config serializes");
        let result = self.commit_image(
            &config_bytes,
            &[layer],
            Names {
                tags: tag.as_slice(),
                ..Names::default()
            },
            &mut pins,
            &budget,
        );
        drop(pins);
        if result.is_err() {
            let _ = self.gc(&mut self.lock());
        }
        result
    }

    /// Unpack an import stream into a layer snapshot in one pass, keeping the input as it
    /// came (compressed or not) as the layer's blob: disk use is the input plus one unpacked
    /// copy, never a second, uncompressed one. Returns the layer and its diff id.
    fn unpack_import(
        &self,
        input: &mut dyn Read,
        pins: &mut Pins<'_>,
        budget: &Budget,
    ) -> Result<(LayerInput, String), ImageError> {
        let tmp = self.lock().snapshots.temp_dir()?;
        let unpacked = (|| {
            let mut ingest = self.content.begin()?;
            let ingest_path = ingest.path().to_path_buf();
            let mut tee = Tee {
                inner: input,
                copy: &mut ingest,
                budget,
                write_error: None,
            };
            let read = (|| {
                let (compression, tar) = decompress(&mut tee, budget)?;
                let mut hashing = crate::content::HashingReader::new(tar);
                let stats = unpack_layer(&mut hashing, &tmp.join("fs"), budget)?;
                let (diff_id, _) = hashing.finish().map_err(|e| budget.or(bad_input(e)))?;
                Ok((compression, diff_id, stats.size))
            })();
            // What follows the compressed stream is part of the input, and of the blob.
            let rest = io::copy(&mut tee, &mut io::sink());
            if let Some(e) = tee.write_error.take() {
                return Err(ImageError::io("write", &ingest_path, e));
            }
            let (compression, diff_id, size) = read?;
            rest.map_err(|e| budget.or(bad_input(e)))?;
            let blob = ingest.digest();
            let blob_size = ingest.size();
            // Pin before the blob is visible, so no concurrent gc takes it.
            pins.pin(format!("blob:{blob}"));
            pins.pin(format!("chain:{diff_id}"));
            self.content.commit(ingest, Some(&blob), "import layer")?;
            let layer = LayerInput {
                blob,
                media_type: compression.oci_media_type().to_string(),
                blob_size,
                verified: true,
            };
            Ok((layer, diff_id, size))
        })();
        let (layer, diff_id, size) = match unpacked {
            Ok(v) => v,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let mut st = self.lock();
        if st.snapshots.layer(&diff_id).is_some() {
            fs::remove_dir_all(&tmp).ctx("remove", &tmp)?;
        } else {
            st.snapshots.commit(
                &tmp,
                SnapshotMeta {
                    kind: SnapshotKind::Layer,
                    name: diff_id.clone(),
                    parent: None,
                    size,
                },
            )?;
        }
        Ok((layer, diff_id))
    }

    /// Load `docker save` and OCI layout archives.
    pub fn load(&self, archive: &mut dyn Read) -> Result<Vec<LoadedImage>, ImageError> {
        let budget = self.budget()?;
        let extracted = Extracted::new(archive, &self.content, &budget)?;
        let images = extracted.images()?;
        let mut pins = self.new_pins();
        let mut loaded = Vec::new();
        let result = (|| {
            for image in images {
                // Before anything is unpacked: an image the overlay mount cannot stack is
                // refused here, not at its first `run`.
                self.lock().snapshots.check_stackable(image.layers.len())?;
                let mut inputs = Vec::new();
                for layer in &image.layers {
                    pins.pin(format!("blob:{}", layer.digest));
                    archive::adopt(&self.content, layer)?;
                    let mut blob = io::BufReader::new(self.content.open_blob(&layer.digest)?);
                    let compression = detect_compression(&mut blob)?;
                    inputs.push(LayerInput {
                        blob: layer.digest.clone(),
                        media_type: compression.oci_media_type().to_string(),
                        blob_size: self.content.size(&layer.digest),
                        verified: false,
                    });
                }
                let tags: Vec<String> = image.tags.iter().map(|t| t.familiar_tagged()).collect();
                let digests: Vec<String> = match &image.manifest_digest {
                    Some(d) => image
                        .tags
                        .iter()
                        .map(|t| format!("{}@{d}", t.familiar_name()))
                        .collect(),
                    None => Vec::new(),
                };
                let id = self.commit_image(
                    &image.config,
                    &inputs,
                    Names {
                        tags: &tags,
                        digests: &digests,
                        cache_key: None,
                    },
                    &mut pins,
                    &budget,
                )?;
                loaded.push(LoadedImage { id, tags });
            }
            Ok(())
        })();
        drop(pins);
        drop(extracted);
        if let Err(e) = result {
            // Nothing half-made stays: layers and blobs of the failed image go.
            let _ = self.gc(&mut self.lock());
            return Err(e);
        }
        Ok(loaded)
    }

    /// Store the config, make sure every layer snapshot exists, then write the image metadata
    /// (the commit point) and the tags.
    fn commit_image(
        &self,
        config_bytes: &[u8],
        layers: &[LayerInput],
        names: Names<'_>,
        pins: &mut Pins<'_>,
        budget: &Budget,
    ) -> Result<String, ImageError> {
        let sources: Vec<LayerSource> = layers.iter().cloned().map(LayerSource::Blob).collect();
        self.commit_image_from(config_bytes, &sources, names, None, pins, budget)
    }

    /// [`ImageStore::commit_image`] of layers from any [`LayerSource`], recording the
    /// manifest an image was pulled by.
    fn commit_image_from(
        &self,
        config_bytes: &[u8],
        layers: &[LayerSource],
        names: Names<'_>,
        manifest: Option<String>,
        pins: &mut Pins<'_>,
        budget: &Budget,
    ) -> Result<String, ImageError> {
        let config = parse_config(config_bytes)?;
        if config.rootfs.diff_ids.len() != layers.len() {
            return Err(ImageError::InvalidArchive(format!(
                "image config lists {} layers, the archive has {}",
                config.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        let id = digest_of(config_bytes);
        pins.pin(format!("blob:{id}"));
        self.content.put(config_bytes)?;
        let mut parent = None;
        let mut records = Vec::new();
        let chains = chain_ids(&config.rootfs.diff_ids);
        for (i, ((layer, diff_id), chain)) in layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .zip(chains)
            .enumerate()
        {
            let what = format!("layer {} of image {}", i + 1, short(&id));
            let (n, size, blob, media_type, blob_size) = match layer {
                LayerSource::Blob(layer) => {
                    let (n, size) =
                        self.ensure_layer(parent, &chain, diff_id, layer, &what, pins, budget)?;
                    (n, size, &layer.blob, &layer.media_type, layer.blob_size)
                }
                LayerSource::Staged {
                    blob,
                    media_type,
                    blob_size,
                    dir,
                    size,
                } => {
                    let n = self.adopt_layer(parent, &chain, dir.as_deref(), *size, pins)?;
                    (n, *size, blob, media_type, *blob_size)
                }
            };
            parent = Some(n);
            records.push(LayerRecord {
                diff_id: diff_id.clone(),
                chain_id: chain.clone(),
                blob: blob.clone(),
                media_type: media_type.clone(),
                blob_size,
                size,
            });
        }
        let mut st = self.lock();
        if !st.images.contains_key(&id) {
            let meta = ImageMeta {
                id: id.clone(),
                layers: records,
                built: names.cache_key.map(|key| Built {
                    key: key.to_string(),
                    intermediate: true,
                }),
                manifest,
            };
            atomic_write_json(&self.image_meta_path(&id)?, &meta)?;
            st.images.insert(id.clone(), ImageEntry { meta, config });
        }
        for d in names.digests {
            st.refs.digests.insert(d.clone(), id.clone());
        }
        for t in names.tags {
            st.refs.tags.insert(t.clone(), id.clone());
        }
        if !names.tags.is_empty() {
            st.refs.last_tag_time.insert(id.clone(), now_rfc3339());
        }
        if !names.tags.is_empty() || !names.digests.is_empty() {
            self.save_refs(&st)?;
        }
        Ok(id)
    }

    /// The snapshot for `chain` from a directory unpacked already (`None`: it must exist).
    /// Returns its number.
    fn adopt_layer(
        &self,
        parent: Option<u64>,
        chain: &str,
        dir: Option<&Path>,
        size: u64,
        pins: &mut Pins<'_>,
    ) -> Result<u64, ImageError> {
        pins.pin(format!("chain:{chain}"));
        let mut st = self.lock();
        if let Some(n) = st.snapshots.layer(chain) {
            if let Some(dir) = dir {
                fs::remove_dir_all(dir).ctx("remove", dir)?;
            }
            return Ok(n);
        }
        let Some(dir) = dir else {
            return Err(ImageError::InvalidArchive(format!(
                "layer {} went missing while the image was made",
                short(chain)
            )));
        };
        st.snapshots.commit(
            dir,
            SnapshotMeta {
                kind: SnapshotKind::Layer,
                name: chain.to_string(),
                parent,
                size,
            },
        )
    }

    /// The snapshot for `chain` (unpacking `layer` when it does not exist yet), checking that
    /// the blob's uncompressed digest is `diff_id`. Returns its number and size.
    #[allow(clippy::too_many_arguments)]
    fn ensure_layer(
        &self,
        parent: Option<u64>,
        chain: &str,
        diff_id: &str,
        layer: &LayerInput,
        what: &str,
        pins: &mut Pins<'_>,
        budget: &Budget,
    ) -> Result<(u64, u64), ImageError> {
        pins.pin(format!("chain:{chain}"));
        let existing = {
            let st = self.lock();
            st.snapshots
                .layer(chain)
                .map(|n| (n, st.snapshots.get(n).map_or(0, |m| m.size)))
        };
        if let Some(found) = existing {
            if !layer.verified {
                let (_, tar) = decompress(self.content.open_blob(&layer.blob)?, budget)?;
                let (actual, _) = crate::content::HashingReader::new(tar)
                    .finish()
                    .map_err(|e| budget.or(bad_input(e)))?;
                check_digest(what, diff_id, &actual)?;
            }
            return Ok(found);
        }
        let tmp = self.lock().snapshots.temp_dir()?;
        let unpacked = (|| {
            let (_, tar) = decompress(self.content.open_blob(&layer.blob)?, budget)?;
            let mut hashing = crate::content::HashingReader::new(tar);
            let stats = unpack_layer(&mut hashing, &tmp.join("fs"), budget)?;
            let (actual, _) = hashing.finish().map_err(|e| budget.or(bad_input(e)))?;
            check_digest(what, diff_id, &actual)?;
            Ok(stats.size)
        })();
        let size = match unpacked {
            Ok(size) => size,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let mut st = self.lock();
        if let Some(n) = st.snapshots.layer(chain) {
            // Someone unpacked the same layer meanwhile.
            fs::remove_dir_all(&tmp).ctx("remove", &tmp)?;
            return Ok((n, size));
        }
        let n = st.snapshots.commit(
            &tmp,
            SnapshotMeta {
                kind: SnapshotKind::Layer,
                name: chain.to_string(),
                parent,
                size,
            },
        )?;
        Ok((n, size))
    }

    /// Write one tar holding the named images, in the layout docker >= 25 writes (OCI layout
    /// plus `manifest.json`), which `docker load` of every version accepts. A repository name
    /// without a tag saves all its tags, as `docker save busybox` does. Returns the ids of
    /// the images written, in the archive's order.
    pub fn save(
        &self,
        references: &[String],
        out: &mut dyn Write,
    ) -> Result<Vec<String>, ImageError> {
        let mut pins = self.new_pins();
        let mut images: Vec<SaveImage> = Vec::new();
        {
            let st = self.lock();
            for reference in references {
                for (id, tag) in save_targets(&st, reference)? {
                    let entry = &st.images[&id];
                    let index = match images.iter().position(|i| i.config_digest == id) {
                        Some(i) => i,
                        None => {
                            pins.pin(format!("blob:{id}"));
                            for l in &entry.meta.layers {
                                pins.pin(format!("blob:{}", l.blob));
                            }
                            images.push(SaveImage {
                                config_digest: id.clone(),
                                layers: entry
                                    .meta
                                    .layers
                                    .iter()
                                    .map(|l| (l.blob.clone(), l.media_type.clone(), l.blob_size))
                                    .collect(),
                                tags: Vec::new(),
                            });
                            images.len() - 1
                        }
                    };
                    if let Some(key) = tag {
                        let r = reference::parse(&key)?;
                        let tag = r.tag.clone().unwrap_or_else(|| "latest".to_string());
                        let full = format!("{}:{tag}", r.full_name());
                        if !images[index].tags.iter().any(|t| t.0 == key) {
                            images[index].tags.push((key, full, tag));
                        }
                    }
                }
            }
        }
        archive::write_save(&self.content, &images, out)?;
        Ok(images.into_iter().map(|i| i.config_digest).collect())
    }

    /// A container's rw layer on top of the image's layers. Returns the one overlay mount to
    /// apply at the rootfs. Calling it again for an existing key returns the same mounts.
    pub fn prepare_snapshot(&self, key: &str, image_id: &str) -> Result<Vec<Mount>, ImageError> {
        if key.is_empty() {
            return Err(ImageError::InvalidArgument(
                "empty snapshot key".to_string(),
            ));
        }
        let mut st = self.lock();
        let (id, _) = resolve_in(&st, image_id)?;
        let parent = match st.images[&id].meta.layers.last() {
            Some(l) => Some(st.snapshots.layer(&l.chain_id).ok_or_else(|| {
                ImageError::InvalidArgument(format!(
                    "layer {} of image {id} is missing",
                    l.chain_id
                ))
            })?),
            None => None,
        };
        if let Some(n) = st.snapshots.container(key) {
            if st.snapshots.get(n).and_then(|m| m.parent) != parent {
                return Err(ImageError::Conflict(format!(
                    "snapshot {key} already exists on another image"
                )));
            }
            return Ok(st.snapshots.mounts(n));
        }
        let tmp = st.snapshots.container_temp_dir()?;
        let made = (|| {
            // `empty` is the lower layer of an image without layers only.
            if parent.is_none() {
                let p = tmp.join("empty");
                fs::create_dir(&p).ctx("create", &p)?;
            }
            st.snapshots.commit(
                &tmp,
                SnapshotMeta {
                    kind: SnapshotKind::Container,
                    name: key.to_string(),
                    parent,
                    size: 0,
                },
            )
        })();
        match made {
            Ok(n) => Ok(st.snapshots.mounts(n)),
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                Err(e)
            }
        }
    }

    /// Remove a container's rw layer (and layers only it still held). Idempotent.
    pub fn remove_snapshot(&self, key: &str) -> Result<(), ImageError> {
        let mut st = self.lock();
        if let Some(n) = st.snapshots.container(key) {
            st.snapshots.remove(n)?;
            self.gc(&mut st)?;
        }
        Ok(())
    }

    /// Makes ready directories for containers' rw layers until `count` are waiting, so that
    /// [`ImageStore::prepare_snapshot`] only renames one (three mkdirs, ~0.75 ms on this ext4,
    /// leave the create path). Call it off the latency path; the directories are made without
    /// the store's lock.
    pub fn make_spares(&self, count: usize) -> Result<(), ImageError> {
        let (dir, have) = {
            let st = self.lock();
            (st.snapshots.dir().to_path_buf(), st.snapshots.spare_count())
        };
        let mut made = Vec::new();
        for _ in have..count {
            made.push(crate::snapshot::Snapshots::make_spare(&dir)?);
        }
        self.lock().snapshots.add_spares(made);
        Ok(())
    }

    /// Removes a container's snapshot from the store at once (one rename; no layer can
    /// become unused by it, so no collection runs) and returns its directory, now outside the
    /// store, for the caller to delete when it likes. `None` when there was none.
    pub fn detach_snapshot(&self, key: &str) -> Result<Option<std::path::PathBuf>, ImageError> {
        let mut st = self.lock();
        match st.snapshots.container(key) {
            Some(n) => st.snapshots.detach(n),
            None => Ok(None),
        }
    }

    /// Bytes in a container's rw layer (`docker ps -s`); 0 when there is none.
    pub fn snapshot_usage(&self, key: &str) -> u64 {
        let dir = {
            let st = self.lock();
            match st.snapshots.container(key) {
                Some(n) => st.snapshots.path(n).join("fs"),
                None => return 0,
            }
        };
        disk_usage(&dir)
    }

    /// A container's rw layer and the layers below it, top first: the init layer (index 0),
    /// then the image's.
    fn container_layers(&self, key: &str) -> Result<(PathBuf, Vec<PathBuf>), ImageError> {
        let st = self.lock();
        let n = st
            .snapshots
            .container(key)
            .ok_or_else(|| ImageError::SnapshotNotFound {
                key: key.to_string(),
            })?;
        let upper = st.snapshots.path(n).join("fs");
        let mut below = vec![self.init_dir.clone()];
        if let Some(parent) = st.snapshots.get(n).and_then(|m| m.parent) {
            below.extend(
                st.snapshots
                    .chain(parent)
                    .into_iter()
                    .map(|l| st.snapshots.path(l).join("fs")),
            );
        }
        Ok((upper, below))
    }

    /// `docker diff`: what the container changed, sorted by path (diff.rs has Docker's rules).
    pub fn container_changes(&self, key: &str) -> Result<Vec<Change>, ImageError> {
        let (upper, below) = self.container_layers(key)?;
        let mut list = ChangeList::default();
        diff::walk(&upper, &below, Some(0), &mut list).map_err(|e| read_error(key, e))?;
        let mut changes = list.0;
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    /// Docker's copy-up ([`crate::copyup`]): fills the empty directory `dest` (a new
    /// volume's) with the container's directory `path` as its layers have it. Returns
    /// whether anything was copied.
    pub fn copy_up(&self, key: &str, path: &str, dest: &Path) -> Result<bool, ImageError> {
        let (upper, below) = self.container_layers(key)?;
        let layers: Vec<PathBuf> = std::iter::once(upper).chain(below).collect();
        crate::copyup::copy(&layers, Some(1), path, dest).map_err(|e| read_error(key, e))
    }

    /// `docker export`: the container's whole filesystem as a tar, written to `out` as it is
    /// read (export.rs).
    pub fn export_container(&self, key: &str, out: &mut dyn Write) -> Result<(), ImageError> {
        let (upper, below) = self.container_layers(key)?;
        let layers: Vec<PathBuf> = std::iter::once(upper).chain(below).collect();
        crate::export::write(&layers, Some(1), out).map_err(|e| read_error(key, e))
    }

    /// `docker commit`: the container's changes as a new layer (an uncompressed tar with AUFS
    /// whiteouts, as Docker's) on its image, with the config and history entry Docker
    /// writes. Returns the new image's id. Runs on an ingest budget like `import`.
    pub fn commit_container(&self, key: &str, opts: &CommitOptions) -> Result<String, ImageError> {
        self.commit_child(Some(key), opts)
    }

    /// A child of `opts.image_id` with no new layer: its config and a history entry marked
    /// `empty_layer` (a build's ENV, CMD, LABEL... step, without a container).
    pub fn commit_metadata(&self, opts: &CommitOptions) -> Result<String, ImageError> {
        self.commit_child(None, opts)
    }

    /// A child image of `opts.image_id`, with the changes of container `key` as its layer
    /// (none when nothing changed, or without a container).
    fn commit_child(&self, key: Option<&str>, opts: &CommitOptions) -> Result<String, ImageError> {
        let tag = match &opts.reference {
            Some(r) => {
                let r = reference::parse(r)?;
                if r.digest.is_some() {
                    return Err(ImageError::InvalidArgument(
                        "cannot import digest reference".to_string(),
                    ));
                }
                Some(r.familiar_tagged())
            }
            None => None,
        };
        let mut config = opts.config.clone();
        for change in &opts.changes {
            apply_change(&mut config, change)?;
        }
        let parent = {
            let st = self.lock();
            let (id, _) = resolve_in(&st, &opts.image_id)?;
            st.snapshots
                .check_stackable(st.images[&id].meta.layers.len() + 1)?;
            st.images[&id].clone()
        };
        let budget = self.budget()?;
        let mut pins = self.new_pins();
        for l in &parent.meta.layers {
            pins.pin(format!("blob:{}", l.blob));
        }
        let result = (|| {
            let (diff_id, layer) = match key {
                Some(key) => self.write_commit_layer(key, &budget, &mut pins)?,
                None => (EMPTY_LAYER_DIFF_ID.to_string(), None),
            };
            let mut layers: Vec<LayerInput> = parent
                .meta
                .layers
                .iter()
                .map(|l| LayerInput {
                    blob: l.blob.clone(),
                    media_type: l.media_type.clone(),
                    blob_size: l.blob_size,
                    verified: true,
                })
                .collect();
            let empty_layer = layer.is_none();
            layers.extend(layer);
            let config = commit_config(&parent.config, config, opts, &diff_id, empty_layer);
            let bytes = serde_json::to_vec(&config).expect("image config serializes");
            self.commit_image(
                &bytes,
                &layers,
                Names {
                    tags: tag.as_slice(),
                    digests: &[],
                    cache_key: opts.cache_key.as_deref(),
                },
                &mut pins,
                &budget,
            )
        })();
        drop(pins);
        if result.is_err() {
            let _ = self.gc(&mut self.lock());
        }
        result
    }

    /// Writes the container's changes as an uncompressed layer tar into the content store.
    /// Returns its diff id and the layer, or no layer when nothing changed (the empty tar,
    /// Docker's empty layer: no layer is added).
    fn write_commit_layer(
        &self,
        key: &str,
        budget: &Budget,
        pins: &mut Pins<'_>,
    ) -> Result<(String, Option<LayerInput>), ImageError> {
        let (upper, below) = self.container_layers(key)?;
        let mut ingest = self.content.begin()?;
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        let written = (|| {
            let out = io::BufWriter::with_capacity(
                256 << 10,
                Charged {
                    inner: &mut ingest,
                    budget,
                },
            );
            let mut sink = LayerTar {
                tar: TarWriter::new(out),
                now,
            };
            diff::walk(&upper, &below, Some(0), &mut sink)?;
            sink.tar.finish()?.flush()
        })();
        written.map_err(|e| budget.or(read_error(key, e)))?;
        let diff_id = ingest.digest();
        if diff_id == EMPTY_LAYER_DIFF_ID {
            return Ok((diff_id, None));
        }
        let blob_size = ingest.size();
        // Pinned before the blob is visible, so that no concurrent collection takes it.
        pins.pin(format!("blob:{diff_id}"));
        self.content.commit(ingest, None, "commit layer")?;
        let layer = LayerInput {
            blob: diff_id.clone(),
            media_type: crate::unpack::Compression::None
                .oci_media_type()
                .to_string(),
            blob_size,
            verified: false,
        };
        Ok((diff_id, Some(layer)))
    }
}

/// The new image's config, as Docker's `NewChildImage` writes it: the parent's platform,
/// root filesystem and history, plus the layer and a history entry whose `created_by` is the
/// container's `Cmd` joined by spaces; the comment goes into the history entry only.
fn commit_config(
    parent: &ImageConfig,
    config: ContainerConfig,
    opts: &CommitOptions,
    diff_id: &str,
    empty_layer: bool,
) -> ImageConfig {
    let created = now_rfc3339();
    let mut rootfs = parent.rootfs.clone();
    rootfs.r#type = "layers".to_string();
    if !empty_layer {
        rootfs.diff_ids.push(diff_id.to_string());
    }
    let mut history = parent.history.clone();
    history.push(History {
        created: Some(created.clone()),
        created_by: opts
            .container_config
            .cmd
            .as_deref()
            .unwrap_or_default()
            .join(" "),
        author: opts.author.clone(),
        comment: opts.comment.clone(),
        empty_layer,
        ..History::default()
    });
    let mut extra = serde_json::Map::new();
    for key in ["os.version", "os.features"] {
        if let Some(v) = parent.extra.get(key) {
            extra.insert(key.to_string(), v.clone());
        }
    }
    ImageConfig {
        architecture: parent.architecture.clone(),
        os: parent.os.clone(),
        variant: parent.variant.clone(),
        created: Some(created),
        author: opts.author.clone(),
        comment: String::new(),
        docker_version: String::new(),
        container: opts.container_id.clone(),
        config,
        container_config: Some(opts.container_config.clone()),
        rootfs,
        history,
        extra,
    }
}

/// A failure to read a container's layers: the I/O error with what was being read.
fn read_error(key: &str, e: io::Error) -> ImageError {
    ImageError::Io {
        context: format!("read the filesystem of container {key}: {e}"),
        source: e,
    }
}

/// A writer that charges every byte to a budget before it writes it.
struct Charged<'a, W> {
    inner: W,
    budget: &'a Budget,
}

impl<W: Write> Write for Charged<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.budget.charge_written(buf.len() as u64)?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that copies everything it reads into an ingest file, charging it to a budget. A
/// failed write is kept apart (`write_error`): it is the store's failure, not the input's.
struct Tee<'a, R> {
    inner: R,
    copy: &'a mut crate::content::Ingest,
    budget: &'a Budget,
    write_error: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.budget.charge_written(n as u64)?;
        if let Err(e) = self.copy.write_all(&buf[..n]) {
            let message = e.to_string();
            self.write_error = Some(e);
            return Err(io::Error::other(message));
        }
        Ok(n)
    }
}

/// Input that does not read (a truncated or corrupt stream): the reader's cause, a 400.
fn bad_input(e: io::Error) -> ImageError {
    ImageError::InvalidArgument(format!(
        "invalid layer data: {}",
        crate::error::clip(&e.to_string())
    ))
}

fn parse_config(bytes: &[u8]) -> Result<ImageConfig, ImageError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::InvalidArchive(format!("image config does not parse: {e}")))
}

fn check_digest(what: &str, expected: &str, actual: &str) -> Result<(), ImageError> {
    if expected == actual {
        return Ok(());
    }
    Err(ImageError::DigestMismatch {
        what: what.to_string(),
        expected: expected.to_string(),
        actual: actual.to_string(),
    })
}

fn used_by_container(id: &str, container: &str) -> ImageError {
    ImageError::Conflict(format!(
        "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
        short(id),
        short(container)
    ))
}

fn untag(st: &mut State, key: &str, items: &mut Vec<DeleteItem>) {
    if st.refs.tags.remove(key).is_some() || st.refs.digests.remove(key).is_some() {
        items.push(DeleteItem::Untagged(key.to_string()));
    }
}

/// `busybox` of `busybox:latest` / `busybox@sha256:..` / `localhost:5000/x:1`.
fn repo_of(key: &str) -> &str {
    if let Some((repo, _)) = key.split_once('@') {
        return repo;
    }
    match key.rfind(':') {
        Some(i) if !key[i..].contains('/') => &key[..i],
        _ => key,
    }
}

/// Docker's `isSingleReference`: all names in one repository, at most one of them a tag.
fn is_single_reference(refs: &[String]) -> bool {
    let mut repos: HashSet<&str> = HashSet::new();
    let mut tags = 0;
    for r in refs {
        repos.insert(repo_of(r));
        if !r.contains('@') {
            tags += 1;
        }
    }
    repos.len() <= 1 && tags <= 1
}

/// Look a reference up: full id, `sha256:` id, name, name@digest, then a unique id prefix.
fn resolve_in(st: &State, reference: &str) -> Result<(String, Matched), ImageError> {
    let not_found = || ImageError::not_found(reference);
    if let Some(hex) = reference.strip_prefix("sha256:") {
        return by_id_prefix(st, hex)
            .map(|id| (id, Matched::Id))
            .ok_or_else(not_found);
    }
    if is_full_hex_id(reference) {
        let id = format!("sha256:{reference}");
        return match st.images.contains_key(&id) {
            true => Ok((id, Matched::Id)),
            false => Err(not_found()),
        };
    }
    let parsed = match reference::parse(reference) {
        Ok(r) => r,
        Err(e) => {
            return match is_lower_hex(reference) {
                true => by_id_prefix(st, reference)
                    .map(|id| (id, Matched::Id))
                    .ok_or_else(not_found),
                false => Err(e),
            };
        }
    };
    let key = match &parsed.digest {
        Some(d) => format!("{}@{d}", parsed.familiar_name()),
        None => parsed.familiar_tagged(),
    };
    let by_name = match &parsed.digest {
        Some(_) => st.refs.digests.get(&key),
        None => st.refs.tags.get(&key),
    };
    if let Some(id) = by_name {
        return Ok((id.clone(), Matched::Name(key)));
    }
    if is_lower_hex(reference) {
        if let Some(id) = by_id_prefix(st, reference) {
            return Ok((id, Matched::Id));
        }
    }
    Err(not_found())
}

/// The one image whose id starts with `prefix`; none when absent or ambiguous (Docker says
/// `No such image` for both).
fn by_id_prefix(st: &State, prefix: &str) -> Option<String> {
    if !is_lower_hex(prefix) {
        return None;
    }
    let mut found = st.images.keys().filter(|id| {
        id.strip_prefix("sha256:")
            .is_some_and(|h| h.starts_with(prefix))
    });
    match (found.next(), found.next()) {
        (Some(id), None) => Some(id.clone()),
        _ => None,
    }
}

/// The images (and tags) a `save` reference names.
fn save_targets(st: &State, reference: &str) -> Result<Vec<(String, Option<String>)>, ImageError> {
    if let Ok(r) = reference::parse(reference) {
        if r.tag.is_none() && r.digest.is_none() {
            let repo = r.familiar_name();
            let all: Vec<(String, Option<String>)> = st
                .refs
                .tags
                .iter()
                .filter(|(k, _)| repo_of(k) == repo)
                .map(|(k, id)| (id.clone(), Some(k.clone())))
                .collect();
            if !all.is_empty() {
                return Ok(all);
            }
        }
    }
    let (id, matched) = resolve_in(st, reference)?;
    Ok(vec![(
        id,
        match matched {
            Matched::Name(key) if !key.contains('@') => Some(key),
            _ => None,
        },
    )])
}

/// A build step's image that no build returned: build cache.
fn is_build_cache(e: &ImageEntry) -> bool {
    e.meta.built.as_ref().is_some_and(|b| b.intermediate)
}

fn record(st: &State, id: &str) -> ImageRecord {
    let entry = &st.images[id];
    let mut repo_tags: Vec<String> = st
        .refs
        .tags
        .iter()
        .filter(|(_, v)| *v == id)
        .map(|(k, _)| k.clone())
        .collect();
    repo_tags.sort();
    let repo_digests: Vec<String> = st
        .refs
        .digests
        .iter()
        .filter(|(_, v)| *v == id)
        .map(|(k, _)| k.clone())
        .collect();
    ImageRecord {
        id: id.to_string(),
        repo_tags,
        repo_digests,
        config: entry.config.clone(),
        size: entry.meta.layers.iter().map(|l| l.size).sum(),
        created: unix_seconds(entry.config.created.as_deref()),
        last_tag_time: st.refs.last_tag_time.get(id).cloned(),
        parent: String::new(),
    }
}

/// `os/arch[/variant]`, defaulting to this host.
fn parse_platform(platform: Option<&str>) -> Result<(String, String, Option<String>), ImageError> {
    let host = archive::host_architecture().to_string();
    let Some(p) = platform.filter(|p| !p.is_empty()) else {
        return Ok(("linux".to_string(), host, None));
    };
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [os] => Ok((os.to_string(), host, None)),
        [os, arch] => Ok((os.to_string(), arch.to_string(), None)),
        [os, arch, variant] => Ok((os.to_string(), arch.to_string(), Some(variant.to_string()))),
        _ => Err(ImageError::InvalidArgument(format!(
            "invalid platform {p:?}: expected os/arch[/variant]"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<ImageStore>();
    }

    #[test]
    fn single_reference_follows_docker() {
        let s =
            |v: &[&str]| is_single_reference(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(s(&["busybox:latest"]));
        assert!(s(&[]));
        assert!(!s(&["busybox:latest", "busybox:1"]));
        assert!(!s(&["busybox:latest", "localhost:5000/busybox:latest"]));
        assert!(s(&["busybox:latest", "busybox@sha256:aa"]));
    }

    #[test]
    fn repo_of_handles_ports_and_digests() {
        assert_eq!(repo_of("localhost:5000/x:1"), "localhost:5000/x");
        assert_eq!(repo_of("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(repo_of("busybox@sha256:ab"), "busybox");
    }

    #[test]
    fn platform_parses() {
        assert_eq!(
            parse_platform(Some("linux/arm64/v8")).unwrap(),
            ("linux".into(), "arm64".into(), Some("v8".into()))
        );
        assert!(parse_platform(Some("a/b/c/d")).is_err());
    }
}
