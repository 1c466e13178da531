//! Overlay snapshots: `snapshots/<n>/fs` (+ `work` for a container's rw layer), `n` a small
//! integer so a long lowerdir list still fits the one page mount(2) accepts. Layer snapshots are
//! keyed by chain id, so images that share a layer chain share the directories; container
//! snapshots are keyed by the engine's key. Each directory carries `meta.json`; one is made under
//! `snapshots/tmp-*` and renamed into place only when complete, and `open` removes the rest.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::{atomic_write_json, fsync_dir, read_json, unique_name};
use crate::error::{ImageError, IoContext};

const META: &str = "meta.json";
/// Linux's `OVL_MAX_STACK`: the most lower layers one overlay mount takes.
pub(crate) const OVERLAY_MAX_STACK: usize = 500;
/// mount(2) copies its option string into one page.
const PAGE_SIZE: usize = 4096;

/// Whether this kernel's overlayfs takes `lowerdir+` (Linux 6.8 and later), so that the
/// layers need not fit into one option string.
pub(crate) fn kernel_has_lowerdir_plus() -> bool {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (6, 8)
}
const TEMP_PREFIX: &str = "tmp-";

/// What a snapshot directory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SnapshotKind {
    /// an unpacked image layer, read-only, named by its chain id
    Layer,
    /// a container's rw layer, named by the engine's key
    Container,
}

/// `snapshots/<n>/meta.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SnapshotMeta {
    pub kind: SnapshotKind,
    /// chain id (layers) or key (containers)
    pub name: String,
    /// the snapshot below this one
    pub parent: Option<u64>,
    /// bytes of file content (layers)
    #[serde(default)]
    pub size: u64,
}

/// A mount to apply at a container's rootfs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// `overlay`
    pub fstype: String,
    /// `overlay`
    pub source: String,
    /// `lowerdir=a:b:c` (top-most first), `upperdir=..`, `workdir=..`
    pub options: Vec<String>,
}

/// The index of every snapshot directory.
#[derive(Debug)]
pub(crate) struct Snapshots {
    dir: PathBuf,
    by_number: BTreeMap<u64, SnapshotMeta>,
    /// Ready `tmp-*` directories with `fs/` and `work/` for containers' rw layers, made off
    /// the create path ([`Snapshots::make_spare`]); `open` removes any left from before.
    spares: Vec<PathBuf>,
}

/// Trees of at most this many files and directories are made durable one by one.
const FSYNC_EACH_UP_TO: usize = 64;

/// Makes the tree at `root` durable. A small tree is fsynced entry by entry (files, then
/// directories bottom up): that waits for its own data only, where `syncfs` waits for all
/// that any process left unwritten on the filesystem (300 MB of another's writes made a
/// syncfs take 180 ms). A larger tree gets `syncfs`: one journal commit for all its files.
fn sync_tree(root: &Path) -> Result<(), ImageError> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let mut entries = vec![root.to_path_buf()];
    let mut next = 0;
    while next < entries.len() && entries.len() <= FSYNC_EACH_UP_TO {
        let dir = entries[next].clone();
        next += 1;
        if !fs::symlink_metadata(&dir).ctx("stat", &dir)?.is_dir() {
            continue;
        }
        for e in fs::read_dir(&dir).ctx("read", &dir)? {
            let e = e.ctx("read", &dir)?;
            let kind = e.file_type().ctx("stat", &e.path())?;
            if kind.is_dir() || kind.is_file() {
                entries.push(e.path());
            }
        }
    }
    if entries.len() > FSYNC_EACH_UP_TO {
        let dir = fs::File::open(root).ctx("open", root)?;
        return nix::unistd::syncfs(dir.as_raw_fd())
            .map_err(|e| ImageError::io("syncfs", root, e.into()));
    }
    // Breadth first: the reverse has every entry before the directory holding it.
    for path in entries.iter().rev() {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .and_then(|f| f.sync_all())
            .ctx("fsync", path)?;
    }
    Ok(())
}

impl Snapshots {
    /// Load the index; remove temp dirs and dirs without metadata (half-made snapshots).
    pub fn open(dir: PathBuf) -> Result<Snapshots, ImageError> {
        fs::create_dir_all(&dir).ctx("create", &dir)?;
        let mut by_number = BTreeMap::new();
        for entry in fs::read_dir(&dir).ctx("read", &dir)? {
            let entry = entry.ctx("read", &dir)?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = name
                .parse::<u64>()
                .ok()
                .filter(|_| path.join(META).is_file())
                .and_then(|n| {
                    read_json::<SnapshotMeta>(&path.join(META))
                        .ok()
                        .map(|m| (n, m))
                });
            match meta {
                Some((n, m)) => {
                    by_number.insert(n, m);
                }
                None => {
                    tracing::info!(path = %path.display(), "removing half-made snapshot");
                    fs::remove_dir_all(&path).ctx("remove", &path)?;
                }
            }
        }
        Ok(Snapshots {
            dir,
            by_number,
            spares: Vec::new(),
        })
    }

    pub fn path(&self, n: u64) -> PathBuf {
        self.dir.join(n.to_string())
    }

    pub fn get(&self, n: u64) -> Option<&SnapshotMeta> {
        self.by_number.get(&n)
    }

    fn find(&self, kind: SnapshotKind, name: &str) -> Option<u64> {
        self.by_number
            .iter()
            .find(|(_, m)| m.kind == kind && m.name == name)
            .map(|(n, _)| *n)
    }

    pub fn layer(&self, chain_id: &str) -> Option<u64> {
        self.find(SnapshotKind::Layer, chain_id)
    }

    pub fn container(&self, key: &str) -> Option<u64> {
        self.find(SnapshotKind::Container, key)
    }

    /// A fresh `snapshots/tmp-*` directory with an empty `fs/`.
    pub fn temp_dir(&self) -> Result<PathBuf, ImageError> {
        let tmp = self.dir.join(unique_name(TEMP_PREFIX));
        let fs_dir = tmp.join("fs");
        fs::create_dir_all(&fs_dir).ctx("create", &fs_dir)?;
        Ok(tmp)
    }

    /// A `tmp-*` directory with `fs/` and `work/` for a container's rw layer: a spare when
    /// there is one, else made now.
    pub fn container_temp_dir(&mut self) -> Result<PathBuf, ImageError> {
        if let Some(spare) = self.spares.pop() {
            return Ok(spare);
        }
        let tmp = self.temp_dir()?;
        let work = tmp.join("work");
        fs::create_dir(&work).ctx("create", &work)?;
        Ok(tmp)
    }

    /// The directory in which [`Snapshots::make_spare`] works (no lock needed).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes one spare directory below `dir` (called without the store's lock held).
    pub fn make_spare(dir: &Path) -> Result<PathBuf, ImageError> {
        let tmp = dir.join(unique_name(TEMP_PREFIX));
        for sub in ["fs", "work"] {
            let p = tmp.join(sub);
            fs::create_dir_all(&p).ctx("create", &p)?;
        }
        Ok(tmp)
    }

    /// Adds spares made by [`Snapshots::make_spare`].
    pub fn add_spares(&mut self, spares: Vec<PathBuf>) {
        self.spares.extend(spares);
    }

    /// How many spares are ready.
    pub fn spare_count(&self) -> usize {
        self.spares.len()
    }

    /// Give a finished temp dir its number.
    pub fn commit(&mut self, tmp: &Path, meta: SnapshotMeta) -> Result<u64, ImageError> {
        let n = self.by_number.keys().next_back().map_or(1, |n| n + 1);
        // The unpacked files reach the disk before the snapshot becomes visible: a crash
        // must not leave a committed layer with truncated files.
        if meta.kind == SnapshotKind::Layer {
            sync_tree(tmp)?;
        }
        let dest = self.path(n);
        if meta.kind == SnapshotKind::Layer {
            atomic_write_json(&tmp.join(META), &meta)?;
            fs::rename(tmp, &dest).ctx("rename", &dest)?;
            fsync_dir(&self.dir)?;
        } else {
            // A container's empty rw layer is not forced to disk: the engine makes it again
            // at start if a crash lost it (what a container writes there is not forced to disk
            // either). The directory's rename still makes it appear whole or not at all:
            // `open` drops a directory whose meta.json is missing or does not parse.
            let bytes = serde_json::to_vec(&meta).map_err(|source| ImageError::Json {
                path: tmp.join(META),
                source,
            })?;
            fs::write(tmp.join(META), bytes).ctx("write", &tmp.join(META))?;
            fs::rename(tmp, &dest).ctx("rename", &dest)?;
        }
        self.by_number.insert(n, meta);
        Ok(n)
    }

    /// Remove snapshot `n` (its directory first: the index follows the disk).
    pub fn remove(&mut self, n: u64) -> Result<(), ImageError> {
        let path = self.path(n);
        // Drop the metadata first so a crash mid-removal leaves a dir `open` cleans up.
        let meta = path.join(META);
        if meta.exists() {
            fs::remove_file(&meta).ctx("remove", &meta)?;
        }
        if path.exists() {
            fs::remove_dir_all(&path).ctx("remove", &path)?;
        }
        self.by_number.remove(&n);
        Ok(())
    }

    /// Takes snapshot `n` out of the index with one rename to a `tmp-*` name (which `open`
    /// removes after a crash) and returns that directory for the caller to delete later, off
    /// its latency path.
    pub fn detach(&mut self, n: u64) -> Result<Option<PathBuf>, ImageError> {
        let path = self.path(n);
        self.by_number.remove(&n);
        let trash = self.dir.join(unique_name(TEMP_PREFIX));
        match fs::rename(&path, &trash) {
            Ok(()) => Ok(Some(trash)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::io("rename", &path, e)),
        }
    }

    /// `n`, its parent, its parent's parent, ...
    pub fn chain(&self, n: u64) -> Vec<u64> {
        let mut out = vec![n];
        let mut cur = self.by_number.get(&n).and_then(|m| m.parent);
        while let Some(p) = cur {
            out.push(p);
            cur = self.by_number.get(&p).and_then(|m| m.parent);
        }
        out
    }

    /// Whether a container on an image of `layers` layers can be mounted here. Linux stacks
    /// at most [`OVERLAY_MAX_STACK`] lower layers. Kernels since 6.8 take each one as its own
    /// `lowerdir+` parameter (the runtime uses that); older ones need the whole option string
    /// (`lowerdir=a:b:..,upperdir=..,workdir=..`) in one page, which bounds the layers by the
    /// length of their paths.
    pub fn check_stackable(&self, layers: usize) -> Result<(), ImageError> {
        self.check_stackable_on(layers, kernel_has_lowerdir_plus())
    }

    fn check_stackable_on(&self, layers: usize, lowerdir_plus: bool) -> Result<(), ImageError> {
        if layers > OVERLAY_MAX_STACK {
            return Err(ImageError::InvalidArgument(format!(
                "image has {layers} layers: the overlay filesystem stacks at most {OVERLAY_MAX_STACK}"
            )));
        }
        if lowerdir_plus {
            return Ok(());
        }
        let len = self.option_string_len(layers);
        if len >= PAGE_SIZE {
            return Err(ImageError::InvalidArgument(format!(
                "image has {layers} layers: more than this kernel's overlay mount can take (its options would be {len} bytes, over the {PAGE_SIZE}-byte page of mount(2); Linux 6.8 and later lift this)"
            )));
        }
        Ok(())
    }

    /// The length of the overlay options of a container on `layers` layers, with snapshot
    /// numbers as long as the next ones will be.
    fn option_string_len(&self, layers: usize) -> usize {
        let next = self.by_number.keys().next_back().copied().unwrap_or(0);
        let digits = (next + layers as u64 + 1000).to_string().len();
        let dir = self.dir.as_os_str().len() + 1 + digits;
        let lowers = layers.max(1) * (dir + "/fs".len() + 1) - 1;
        "lowerdir=".len()
            + lowers
            + ",upperdir=".len()
            + dir
            + "/fs".len()
            + ",workdir=".len()
            + dir
            + "/work".len()
    }

    /// The overlay mount for container snapshot `n`.
    pub fn mounts(&self, n: u64) -> Vec<Mount> {
        let dir = self.path(n);
        let lowers: Vec<String> = match self.by_number.get(&n).and_then(|m| m.parent) {
            Some(parent) => self
                .chain(parent)
                .into_iter()
                .map(|l| self.path(l).join("fs").display().to_string())
                .collect(),
            // overlayfs needs a lower layer; an image without layers gets an empty one.
            None => vec![dir.join("empty").display().to_string()],
        };
        vec![Mount {
            fstype: "overlay".to_string(),
            source: "overlay".to_string(),
            options: vec![
                format!("lowerdir={}", lowers.join(":")),
                format!("upperdir={}", dir.join("fs").display()),
                format!("workdir={}", dir.join("work").display()),
            ],
        }]
    }

    /// Remove layer snapshots no image needs (`keep` chain ids) and no other snapshot sits on,
    /// skipping pinned chain ids. Returns the removed chain ids and their sizes.
    pub fn gc_layers(
        &mut self,
        keep: &HashSet<String>,
        pinned: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<(String, u64)>, ImageError> {
        let mut removed = Vec::new();
        loop {
            let parents: HashSet<u64> = self.by_number.values().filter_map(|m| m.parent).collect();
            let victims: Vec<u64> = self
                .by_number
                .iter()
                .filter(|(n, m)| {
                    m.kind == SnapshotKind::Layer
                        && !keep.contains(&m.name)
                        && !pinned(&m.name)
                        && !parents.contains(n)
                })
                .map(|(n, _)| *n)
                .collect();
            if victims.is_empty() {
                return Ok(removed);
            }
            // Top-most first, as Docker lists removed layers.
            for n in victims.into_iter().rev() {
                let meta = self.by_number[&n].clone();
                self.remove(n)?;
                removed.push((meta.name, meta.size));
            }
        }
    }
}

/// Bytes in a directory tree as Docker's `directory.Size` counts them (a layer's `DiffSize`,
/// a container's `SizeRw`): every entry but a directory by its own size (a symlink's is its
/// target's length; never followed), an inode seen before (a hard link) not again.
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut seen = HashSet::new();
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else { continue };
            if m.is_dir() {
                stack.push(entry.path());
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_and_large_trees_are_synced_whatever_they_hold() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small");
        fs::create_dir_all(small.join("fs/a/b")).unwrap();
        fs::write(small.join("fs/a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink("/nonexistent", small.join("fs/dangling")).unwrap();
        std::os::unix::fs::symlink("a", small.join("fs/to-dir")).unwrap();
        nix::unistd::mkfifo(&small.join("fs/fifo"), nix::sys::stat::Mode::S_IRUSR).unwrap();
        fs::write(small.join("fs/unreadable"), b"y").unwrap();
        fs::set_permissions(
            small.join("fs/unreadable"),
            std::os::unix::fs::PermissionsExt::from_mode(0o000),
        )
        .unwrap();
        sync_tree(&small).unwrap();
        let large = dir.path().join("large");
        fs::create_dir_all(&large).unwrap();
        for i in 0..=FSYNC_EACH_UP_TO {
            fs::write(large.join(format!("f{i}")), b"z").unwrap();
        }
        sync_tree(&large).unwrap();
    }

    #[test]
    fn the_option_string_length_is_what_mounts_gives() {
        let tmp = tempfile::tempdir().unwrap();
        let mut snaps = Snapshots::open(tmp.path().join("snapshots")).unwrap();
        let mut parent = None;
        for i in 0..3 {
            let t = snaps.temp_dir().unwrap();
            let meta = SnapshotMeta {
                kind: SnapshotKind::Layer,
                name: format!("chain{i}"),
                parent,
                size: 0,
            };
            parent = Some(snaps.commit(&t, meta).unwrap());
        }
        let t = snaps.container_temp_dir().unwrap();
        let meta = SnapshotMeta {
            kind: SnapshotKind::Container,
            name: "c".into(),
            parent,
            size: 0,
        };
        let n = snaps.commit(&t, meta).unwrap();
        let actual = snaps.mounts(n)[0].options.join(",").len();
        // The estimate takes snapshot numbers of 4 digits (next + layers + 1000), these are 1.
        let estimate = snaps.option_string_len(3);
        assert_eq!(estimate, actual + 3 * 4 + 3);
    }

    #[test]
    fn without_lowerdir_plus_layers_must_fit_one_page() {
        let tmp = tempfile::tempdir().unwrap();
        let snaps = Snapshots::open(tmp.path().join("snapshots")).unwrap();
        snaps.check_stackable_on(10, false).unwrap();
        let per_layer = snaps.option_string_len(2) - snaps.option_string_len(1);
        let too_many = PAGE_SIZE / per_layer + 1;
        let e = snaps.check_stackable_on(too_many, false).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("image has {too_many} layers")),
            "{msg}"
        );
        assert!(msg.contains("Linux 6.8"), "{msg}");
        // With lowerdir+ the kernel's stack depth is the only limit.
        snaps.check_stackable_on(too_many, true).unwrap();
        snaps.check_stackable_on(OVERLAY_MAX_STACK, true).unwrap();
        let e = snaps
            .check_stackable_on(OVERLAY_MAX_STACK + 1, true)
            .unwrap_err();
        assert!(e.to_string().contains("stacks at most 500"), "{e}");
    }
}
