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
use crate::record::{ContainerRecord, ContainerState};
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
        let engine = Arc::new(Engine {
            cfg,
            images,
            runtime,
            containers: RwLock::new(HashMap::new()),
            spares: Default::default(),
        });
        engine.remove_old_spares();
        let entries = std::fs::read_dir(&dir).map_err(|e| EngineError::io("read", &dir, e))?;
        let mut loaded = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let file_name = entry.file_name().to_string_lossy().to_string();
            if file_name.starts_with(super::spares::PREFIX) {
                continue;
            }
            if let Some(id) = file_name.strip_prefix(".removing-") {
                // A removal that berthd did not finish: finish it.
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
        for c in loaded {
            let bundle = engine.cfg.bundle_dir(&c.id);
            let recorded_active = c.state().status.is_active();
            if engine.runtime.alive(&bundle) {
                // The shim is the fact; `Running` is not forced to disk and may be missing.
                if !recorded_active {
                    c.set_state(|s| s.status = crate::record::Status::Running);
                }
                engine.monitor(c);
            } else if recorded_active {
                let exit = engine.runtime.exit_status(&bundle);
                engine.record_exit(&c, exit).await;
            } else if c.record().host_config.auto_remove {
                // Docker removes every --rm container that does not run at restore.
                engine.remove_container(&c).await;
            }
        }
        engine.refill_spares();
        Ok(engine)
    }
}
