//! One container in memory, and the lifecycle operations on it (one file each).

pub mod attach;
pub mod commit;
pub mod copy;
pub mod create;
pub mod diff;
pub mod export;
pub mod inspect;
pub mod list;
pub mod logs;
pub mod misc;
pub mod remove;
pub mod restore;
mod spares;
pub mod start;
pub mod stats;
pub mod stop;
pub mod update;
pub mod wait;

use std::sync::{Mutex, RwLock, RwLockReadGuard};

use crate::error::Result;
use crate::fsutil::write_json;
use crate::record::{ContainerRecord, ContainerState};
use crate::EngineConfig;

/// What waiters watch: a counter of exits and whether the container is gone.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Incremented at every exit.
    pub exits: u64,
    /// The last exit code.
    pub exit_code: i64,
    /// Set once the container has been removed.
    pub removed: bool,
}

/// A container: its record, its state, and the channel its waiters listen on.
pub struct Container {
    /// The full 64-hex id.
    pub id: String,
    record: RwLock<ContainerRecord>,
    state: Mutex<ContainerState>,
    pub(crate) lifecycle: tokio::sync::watch::Sender<Lifecycle>,
    /// Serialises start/stop/kill/rm/pause on this container.
    pub(crate) op: tokio::sync::Mutex<()>,
    /// Clients attached before a start (`docker run`, `start -a`): served at the next start.
    pub(crate) pending_attach: Mutex<Vec<attach::Pending>>,
    /// Backoff and cancel of its restart policy (lock order: `state`, then this).
    restart: Mutex<crate::restart::Manager>,
}

impl Container {
    pub(crate) fn new(record: ContainerRecord, state: ContainerState) -> Self {
        let (tx, _) = tokio::sync::watch::channel(Lifecycle {
            exit_code: state.exit_code,
            ..Default::default()
        });
        Container {
            id: record.id.clone(),
            record: RwLock::new(record),
            state: Mutex::new(state),
            lifecycle: tx,
            op: tokio::sync::Mutex::new(()),
            pending_attach: Mutex::new(Vec::new()),
            restart: Mutex::new(Default::default()),
        }
    }

    /// Locks the restart manager (after `state` when both are held).
    pub(crate) fn restart_manager(&self) -> std::sync::MutexGuard<'_, crate::restart::Manager> {
        self.restart.lock().expect("restart lock")
    }

    /// The name without the leading `/`.
    pub fn name(&self) -> String {
        self.record().name.clone()
    }

    /// The record (read lock; do not hold across `.await`).
    pub fn record(&self) -> RwLockReadGuard<'_, ContainerRecord> {
        self.record.read().expect("record lock")
    }

    /// A copy of the current state.
    pub fn state(&self) -> ContainerState {
        self.state.lock().expect("state lock").clone()
    }

    /// Changes the state and persists it atomically; `durable` also forces it to disk
    /// (see `fsutil` for which facts need that).
    pub(crate) fn update_state(
        &self,
        cfg: &EngineConfig,
        durable: bool,
        f: impl FnOnce(&mut ContainerState),
    ) -> Result<ContainerState> {
        let mut st = self.state.lock().expect("state lock");
        f(&mut st);
        let snapshot = st.clone();
        let path = cfg.container_dir(&self.id).join("state.json");
        if durable {
            write_json(&path, &snapshot)?;
        } else {
            let bytes = serde_json::to_vec(&snapshot)
                .map_err(|e| crate::error::EngineError::Internal(e.to_string()))?;
            crate::fsutil::replace(&path, &bytes)?;
        }
        Ok(snapshot)
    }

    /// Changes the state in memory only; follow with [`Container::persist_state`].
    pub(crate) fn set_state(&self, f: impl FnOnce(&mut ContainerState)) {
        f(&mut self.state.lock().expect("state lock"));
    }

    /// Writes the current state durably (whatever it is by the time the lock is taken, so
    /// a late write never puts back an older state).
    pub(crate) fn persist_state(&self, cfg: &EngineConfig) -> Result<()> {
        let st = self.state.lock().expect("state lock");
        write_json(&cfg.container_dir(&self.id).join("state.json"), &*st)
    }

    /// Changes the record and persists it atomically.
    pub(crate) fn update_record(
        &self,
        cfg: &EngineConfig,
        f: impl FnOnce(&mut ContainerRecord),
    ) -> Result<()> {
        let mut rec = self.record.write().expect("record lock");
        f(&mut rec);
        write_json(&cfg.container_dir(&self.id).join("config.json"), &*rec)
    }
}

impl crate::Engine {
    /// The container's root filesystem (its rw layer over its image's layers, the layer made
    /// again if a crash lost it) as the runtime mounts it.
    pub(crate) fn snapshot_mounts(
        &self,
        id: &str,
        image_id: &str,
    ) -> Result<Vec<berth_runtime::Mount>> {
        Ok(self
            .images
            .prepare_snapshot(id, image_id)?
            .into_iter()
            .map(|m| berth_runtime::Mount {
                fstype: m.fstype,
                source: m.source,
                options: m.options,
            })
            .collect())
    }
}
