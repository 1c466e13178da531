//! Start-up: read every record back, reconnect to live shims, reconcile the rest.
//!
//! `/var/lib/berth` holds intent, `/run/berth` holds fact: a container runs if and only if
//! its shim answers, whatever `state.json` says. A record that says `Running` without a
//! shim gets the exit status the shim left behind, or 255 when there is none (the machine
//! rebooted, or the shim was killed).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::record::{ContainerRecord, ContainerState, Status};
use crate::restart::Policy;
use crate::runtime::Runtime;
use crate::{Engine, EngineConfig};

impl Engine {
    /// Opens the engine over `cfg.root`, restoring every container.
    pub async fn open(
        cfg: EngineConfig,
        images: Arc<berth_image::ImageStore>,
        runtime: Arc<dyn Runtime>,
    ) -> Result<Arc<Engine>> {
        let dir = cfg.root.join("containers");
        std::fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?;
        std::fs::create_dir_all(cfg.exec_root.join("containers"))
            .map_err(|e| EngineError::io("create", &cfg.exec_root, e))?;
        let cfg_root = cfg.root.clone();
        let net = {
            let bridge = cfg.bridge.clone();
            let root = cfg.root.clone();
            let redirect = cfg.socket_redirect.then_some(cfg.socket_redirect_lease);
            tokio::task::spawn_blocking(move || {
                crate::network::Networks::open(bridge.as_ref(), &root, redirect)
            })
            .await
            .map_err(|e| EngineError::Invalid(format!("setting up networks: {e}")))?
        };
        let volumes = berth_volume::Store::open(cfg.root.join("volumes"))?;
        let engine = Arc::new(Engine {
            volumes,
            volume_use: Default::default(),
            volume_prune: Default::default(),
            volume_busy: Default::default(),
            export_pauses: Default::default(),
            net: Arc::new(net),
            started_at: chrono::Utc::now(),
            cfg,
            images,
            runtime,
            containers: RwLock::new(HashMap::new()),
            execs: Default::default(),
            spares: Default::default(),
            events: crate::events::EventLog::open(
                crate::events::file_path(&cfg_root),
                crate::events::Bounds::default(),
            ),
        });
        engine.net.init_dns(Arc::downgrade(&engine));
        engine.remove_old_spares();
        let entries = std::fs::read_dir(&dir).map_err(|e| EngineError::io("read", &dir, e))?;
        let mut loaded = Vec::new();
        // The mounts of removals that were to take their anonymous volumes along: done once
        // every record is loaded, so that a volume another container uses is kept.
        let mut volumes_to_remove = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().to_string();
            if file_name.starts_with(super::spares::PREFIX) {
                continue;
            }
            if let Some(id) = file_name.strip_prefix(".removing-") {
                // A removal that berthd did not finish: finish it.
                if path.join(super::remove::REMOVE_VOLUMES).exists() {
                    let rec: Option<ContainerRecord> = std::fs::read(path.join("config.json"))
                        .ok()
                        .and_then(|b| serde_json::from_slice(&b).ok());
                    if let Some(rec) = rec {
                        volumes_to_remove.push(crate::mounts::of_record(&rec));
                    }
                }
                let _ = engine.images.remove_snapshot(id);
                let _ = std::fs::remove_dir_all(&path);
                let _ = std::fs::remove_dir_all(engine.cfg.bundle_dir(id));
                continue;
            }
            let rec: Option<ContainerRecord> = std::fs::read(path.join("config.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let Some(rec) = rec else {
                // A create that died before its record was written: nothing refers to it.
                tracing::warn!("removing half-created container dir {}", path.display());
                let _ = engine.images.remove_snapshot(&file_name);
                let _ = std::fs::remove_dir_all(&path);
                continue;
            };
            let state: ContainerState = std::fs::read(path.join("state.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_default();
            loaded.push(Arc::new(Container::new(rec, state)));
        }
        {
            let mut map = engine.containers.write().expect("containers lock");
            for c in &loaded {
                map.insert(c.id.clone(), c.clone());
            }
        }
        for mounts in volumes_to_remove {
            engine.remove_anonymous_volumes(&mounts);
        }
        let mut to_start = Vec::new();
        for c in loaded {
            let bundle = engine.cfg.bundle_dir(&c.id);
            let recorded = c.state().status;
            if engine.runtime.alive(&bundle) {
                // The shim is the fact; `Running` is not forced to disk and may be missing
                // (or a crash came between a restart's start and its state write).
                if !matches!(recorded, Status::Running | Status::Paused) {
                    c.set_state(|s| s.status = Status::Running);
                }
                engine.restore_execs(&c);
                engine.reclaim_network(&c.id, &c.state());
                engine.monitor(c);
                continue;
            }
            // A restart that was waiting for its backoff: its exit was recorded and its
            // policy had decided; only the timer was lost. It happens now (even the last
            // one on-failure allowed, which Docker's restore would drop).
            let pending = recorded == Status::Restarting;
            if pending {
                c.set_state(|s| s.status = Status::Exited);
            } else if recorded.is_active() {
                let exit = engine.runtime.exit_status(&bundle);
                engine.record_exit(&c, exit, false).await;
            }
            let st = c.state();
            let policy = Policy::of(&c.record().host_config);
            if pending
                || st.status == Status::Exited
                    && policy.restart_at_startup(
                        st.started_at.is_some(),
                        st.exit_code,
                        st.has_been_manually_stopped,
                        st.restart_count,
                    )
            {
                to_start.push(c);
            } else if st.status != Status::Removing && c.record().host_config.auto_remove {
                // Docker removes every --rm container that does not run at restore.
                engine.remove_container(&c, true).await;
            }
        }
        engine.start_restored(to_start);
        engine.net.watch_other_firewalls();
        engine.refill_spares();
        Ok(engine)
    }

    /// Starts again, one after the other off the start-up path, the containers whose restart
    /// policy asks for it after berthd was down (a crash, an upgrade, a reboot). Docker's
    /// restore starts them as a user start: `RestartCount` 0, backoff afresh.
    fn start_restored(self: &Arc<Self>, containers: Vec<Arc<Container>>) {
        if containers.is_empty() {
            return;
        }
        // In creation order, as a user would have started them.
        let mut containers = containers;
        containers.sort_by_key(|c| c.record().created);
        let engine = self.clone();
        tokio::spawn(async move {
            for c in containers {
                let _op = c.op.lock().await;
                // `rm` or `start` may have come first.
                if c.state().status != Status::Exited || engine.get(&c.id).is_err() {
                    continue;
                }
                match engine.start_locked(&c).await {
                    Ok(()) => {
                        tracing::info!(container = %c.id, "started again by its restart policy")
                    }
                    Err(e) => {
                        tracing::warn!(container = %c.id, "starting again by its restart policy: {e}")
                    }
                }
            }
        });
    }
}
