//! `DELETE /containers/{id}`.

use std::sync::Arc;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::Engine;

impl Engine {
    /// Removes a container; with `force`, kills it first; with `volumes` (`rm -v`), its
    /// anonymous volumes too.
    pub async fn remove(
        self: &Arc<Self>,
        name_or_id: &str,
        force: bool,
        volumes: bool,
    ) -> Result<()> {
        let c = self.get(name_or_id)?;
        {
            let _op = c.op.lock().await;
            let status = c.state().status;
            if status == Status::Removing {
                return Err(EngineError::Conflict(format!(
                    "removal of container {} is already in progress",
                    c.id
                )));
            }
            if status.is_active() {
                if !force {
                    return Err(EngineError::RemoveRunning(c.id.clone()));
                }
                // No restart by policy from here on (a pending one wakes and gives up).
                c.restart_manager().cancel();
                let mut exits = c.lifecycle.subscribe();
                let seen = exits.borrow().exits;
                // Read after `seen`: an exit not yet in the state is one `exits` will report.
                let status = c.state().status;
                if matches!(status, Status::Running | Status::Paused) {
                    if status == Status::Paused {
                        let _ = self.runtime_call(&c, "unpause", |rt, b| rt.resume(b)).await;
                    }
                    let _ = self
                        .runtime_call(&c, "kill", |rt, b| rt.signal(b, libc::SIGKILL))
                        .await;
                    let _ = exits.wait_for(|l| l.exits > seen || l.removed).await;
                }
            }
            // Under the operation lock: a `start` waiting for it now finds `Removing`.
            c.set_state(|s| s.status = Status::Removing);
        }
        self.remove_container(&c, volumes).await;
        Ok(())
    }

    /// Tears a stopped container down, then wakes `removed` waiters. The record directory
    /// is first renamed to a `.removing-<id>` name (atomic: from then on a restart of
    /// berthd finishes the removal instead of restoring the container), the snapshot is
    /// removed, waiters are woken, and only then are the files deleted, off the path of
    /// `docker run --rm`. Every step is attempted; failures are logged (idempotent). With
    /// `volumes`, its anonymous volumes no other container uses go too (`rm -v`, `--rm`).
    pub(crate) async fn remove_container(self: &Arc<Self>, c: &Arc<Container>, volumes: bool) {
        {
            let _op = c.op.lock().await;
            // An auto-remove that lost the race with a `restart`: the container runs again.
            if c.state().status.is_active() {
                return;
            }
            c.set_state(|s| s.status = Status::Removing);
            let mut map = self.containers.write().expect("containers lock");
            if map.remove(&c.id).is_none() {
                return;
            }
        }
        let images = self.images.clone();
        let dir = self.cfg.container_dir(&c.id);
        let trash = removing_dir(&self.cfg, &c.id);
        let bundle = self.cfg.bundle_dir(&c.id);
        let id = c.id.clone();
        let anonymous = volumes && crate::mounts::volume_mounts(&c.record()).any(|m| m.anonymous);
        // Two renames on the waiters' path; the deleting happens after they are answered.
        let snapshot = tokio::task::spawn_blocking(move || {
            if anonymous {
                // A crash after the rename below leaves the `.removing-` directory: this
                // says restore to remove the anonymous volumes too.
                if let Err(e) = std::fs::File::create(dir.join(REMOVE_VOLUMES)) {
                    tracing::warn!(container = %id, "marking its volumes for removal: {e}");
                }
            }
            if let Err(e) = std::fs::rename(&dir, &trash) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(container = %id, "renaming {}: {e}", dir.display());
                }
            }
            images.detach_snapshot(&id).unwrap_or_else(|e| {
                tracing::warn!(container = %id, "removing snapshot: {e}");
                None
            })
        })
        .await
        .ok()
        .flatten();
        self.emit_container(c, "destroy", &[]);
        if volumes {
            // After the record left the map: this container is no longer a user.
            let mounts = crate::mounts::of_record(&c.record());
            let engine = self.clone();
            let _ =
                tokio::task::spawn_blocking(move || engine.remove_anonymous_volumes(&mounts)).await;
        }
        c.lifecycle.send_modify(|l| l.removed = true);
        self.drop_pending_attach(c);
        self.forget_execs(&c.id);
        let trash = removing_dir(&self.cfg, &c.id);
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || {
            for d in [Some(&trash), Some(&bundle), snapshot.as_ref()]
                .into_iter()
                .flatten()
            {
                if let Err(e) = std::fs::remove_dir_all(d) {
                    if e.kind() != std::io::ErrorKind::NotFound {
                        tracing::warn!(container = %id, "removing {}: {e}", d.display());
                    }
                }
            }
        });
    }
}

/// In a record directory being removed: its anonymous volumes go too (`rm -v`, `--rm`).
pub(crate) const REMOVE_VOLUMES: &str = "remove-volumes";

/// Where a container's record goes while it is being deleted.
pub(crate) fn removing_dir(cfg: &crate::EngineConfig, id: &str) -> std::path::PathBuf {
    cfg.root.join("containers").join(format!(".removing-{id}"))
}
