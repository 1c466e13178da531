//! berth's container engine: container records and their lifecycle.
//!
//! The engine owns every container's record (`config.json`, `state.json` under
//! `<root>/containers/<id>/`), its name, and the transitions between statuses. It turns a
//! Docker create request into a record (merging the image's config), a record into a
//! runtime spec, and runtime events back into state. It does not speak HTTP (that is
//! `berth-daemon`) and does not isolate processes (that is `berth-runtime`, behind the
//! [`Runtime`] trait, whose real implementation drives one `berth-shim` per container).
//!
//! Flow of `docker run`: [`Engine::create`] -> [`Engine::start`] (spawns the shim, then a
//! monitor task that awaits the exit) -> exit recorded, waiters woken, then the restart
//! policy (`restart.rs`: `restarting`, a timer, the same start path) or auto-remove.
//! After a restart of berthd, [`Engine::open`] reads the records back and reconnects to
//! live shims; containers that exited meanwhile get the exit code their shim left behind.
//!
//! `docker cp` ([`Engine::archive_stat`], [`Engine::archive_get`], [`Engine::archive_put`])
//! stats, tars and untars inside a container's root (`archive/`), never leaving it.
//!
//! `system df` (disk_usage.rs) adds up the images' layers, the rw layers and the volumes.
//!
//! Volumes (volumes.rs) are `berth-volume`'s store under `<root>/volumes`, shaped here as
//! Docker's API; containers do not mount them yet.
//!
//! Each lifecycle operation lives in its own file under `container/`; each emits Docker's
//! events into the engine's [`EventLog`] (events.rs), which image operations (images.rs)
//! feed too.

mod archive;
mod binds;
mod build_cache;
mod container;
mod disk_usage;
mod error;
mod events;
mod exec;
mod fsutil;
mod human;
mod images;
mod isolation;
mod mounts;
mod names;
mod network;
mod networks;
mod ports;
mod record;
mod redirect;
mod restart;
mod runtime;
mod spec;
mod unapplied;
mod volume_backup;
mod volumes;

pub use berth_network::ipam::{parse_cidr, parse_pool, pool_candidates, Subnet};
pub use berth_network::BridgeConfig;
pub use berth_runtime::cgroups::Layout as CgroupLayout;
pub use berth_runtime::{close_inherited_descriptors, Backend};
pub use berth_runtime::{
    peer_hung_up, set_nonblocking, set_window_size, unread_by_peer, Attachment,
};
pub use build_cache::{default_build_cache_max, BuildPrune};
pub use container::attach::{AttachFuture, AttachOptions, Attached};
pub use container::commit::CommitRequest;
pub use container::copy::{ArchiveStream, ExtractOptions};
pub use container::list::ListOptions;
pub use container::logs::{LogChunk, LogOptions};
pub use container::stats::{machine_memory, StatsReader};
pub use container::wait::WaitCondition;
pub use container::wait::WaitOutcome;
pub use container::Container;
pub use disk_usage::{DiskUsage, DiskUsageTypes, ImageUsage};
pub use error::{EngineError, ErrorKind, Result};
pub use events::{EventFilter, EventLog};
pub use exec::{discard as discard_terminal, Exec, ExecIo};
pub use human::human_duration;
pub use images::familiar_tagged;
pub use network::{EndpointConfig, EndpointState, NetworkRecord};
pub use networks::CreateNetwork;
pub use record::{ContainerRecord, ContainerState, Status};
pub use runtime::{BoxFuture, ExitInfo, Runtime, ShimRuntime};
pub use volume_backup::{Compression, PauseGuard};
pub use volumes::CreateVolume;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use berth_image::ImageStore;

/// Where the engine keeps things and which helpers it runs.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `--root`, e.g. `/var/lib/berth`: records, logs, images.
    pub root: PathBuf,
    /// `--exec-root`, e.g. `/run/berth`: shim bundles, sockets.
    pub exec_root: PathBuf,
    /// A static tini-like binary for `--init`, if one was found.
    pub init_binary: Option<PathBuf>,
    /// Default json-file bound: `max-size` in bytes (Docker has none; berth bounds logs).
    pub log_max_size: u64,
    /// Default json-file bound: number of files kept.
    pub log_max_files: u32,
    /// The implementation the shims create containers with (`berthd --runtime`).
    pub backend: berth_runtime::Backend,
    /// The host's cgroup layout, detected once at start-up and handed to every shim.
    pub cgroup_layout: Option<berth_runtime::cgroups::Layout>,
    /// The default bridge (`berthd --bridge`, `--bip`); `None`: no bridge, the default
    /// network is a namespace of the container's own (`--bridge none`).
    pub bridge: Option<berth_network::BridgeConfig>,
    /// The socket redirect of published ports for host clients (`redirect.rs`, `berthd
    /// --socket-redirect`); off: host clients take the DNAT path as remote ones.
    pub socket_redirect: bool,
    /// How long the socket redirect of a host address (not 127.0.0.1) holds unless berthd
    /// renews it (`berthd --socket-redirect-lease`; redirect.rs).
    pub socket_redirect_lease: std::time::Duration,
    /// The most bytes the build cache keeps (`berthd --build-cache-max`): after each build
    /// the oldest records go until the rest fit. `None`: no bound.
    pub build_cache_max: Option<u64>,
}

impl EngineConfig {
    /// Default paths under `root` and `exec_root`.
    pub fn new(root: impl Into<PathBuf>, exec_root: impl Into<PathBuf>) -> Self {
        EngineConfig {
            root: root.into(),
            exec_root: exec_root.into(),
            init_binary: None,
            log_max_size: 20 * 1024 * 1024,
            log_max_files: 5,
            backend: berth_runtime::Backend::default(),
            cgroup_layout: None,
            bridge: None,
            socket_redirect: false,
            socket_redirect_lease: redirect::DEFAULT_LEASE,
            build_cache_max: None,
        }
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    pub(crate) fn bundle_dir(&self, id: &str) -> PathBuf {
        self.exec_root.join("containers").join(id)
    }
}

/// The engine: every container, the image store and the runtime.
pub struct Engine {
    pub(crate) cfg: EngineConfig,
    pub(crate) images: Arc<ImageStore>,
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) containers: RwLock<HashMap<String, Arc<Container>>>,
    /// Ready (record dir, bundle dir) pairs (container/spares.rs).
    pub(crate) spares: Arc<std::sync::Mutex<Vec<(PathBuf, PathBuf)>>>,
    /// What `GET /events` replays and streams (events.rs).
    pub(crate) events: EventLog,
    /// Exec instances by id (exec.rs).
    pub(crate) execs: std::sync::Mutex<HashMap<String, Arc<exec::Exec>>>,
    /// The default bridge and the namespaces made ahead (network.rs).
    pub(crate) net: Arc<network::Networks>,
    /// When the engine opened (the built-in networks' `Created`).
    pub(crate) started_at: chrono::DateTime<chrono::Utc>,
    /// The named volumes, `<root>/volumes` (volumes.rs).
    pub(crate) volumes: berth_volume::Store,
    /// Held while a volume's users are decided and acted on: by a container's create from
    /// taking its volumes to writing its record, and by `volume rm`/`prune` from looking up
    /// a volume's users to removing it (mounts.rs). Taken before the store's own lock.
    pub(crate) volume_use: std::sync::Mutex<()>,
    /// Held by a volume prune: a second one meanwhile is refused (volumes.rs).
    pub(crate) volume_prune: std::sync::Mutex<()>,
    /// The volumes being exported or imported, and those starts in flight mount: each
    /// keeps the other out (volume_backup.rs).
    pub(crate) volume_busy: Arc<std::sync::Mutex<volume_backup::Busy>>,
    /// The containers paused for exports, counted (volume_backup.rs); a tokio lock, held
    /// across a pause or an unpause.
    pub(crate) export_pauses: tokio::sync::Mutex<volume_backup::PauseHolds>,
}

impl Engine {
    /// The configuration the engine runs with.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// The image store.
    pub fn images(&self) -> &Arc<ImageStore> {
        &self.images
    }

    /// Finds a container by full id, name (with or without `/`) or unique id prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let key = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        let map = self.containers.read().expect("containers lock");
        if let Some(c) = map.get(key) {
            return Ok(c.clone());
        }
        if let Some(c) = map.values().find(|c| c.name() == key) {
            return Ok(c.clone());
        }
        if !key.is_empty() {
            let mut found = map.values().filter(|c| c.id.starts_with(key));
            if let (Some(c), None) = (found.next(), found.next()) {
                return Ok(c.clone());
            }
        }
        Err(EngineError::NoSuchContainer(name_or_id.to_string()))
    }

    /// Every container, in no particular order.
    pub fn all(&self) -> Vec<Arc<Container>> {
        self.containers
            .read()
            .expect("containers lock")
            .values()
            .cloned()
            .collect()
    }

    /// The id of a container that uses `image_id`, if any (for `rmi`).
    pub fn container_using_image(&self, image_id: &str) -> Option<String> {
        self.all()
            .into_iter()
            .find(|c| c.record().image_id == image_id)
            .map(|c| c.id.clone())
    }
}
