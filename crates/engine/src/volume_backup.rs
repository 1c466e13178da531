//! berth's own backup and restore of a named volume (issue 15): `GET
//! /volumes/{name}/export` and `POST /volumes/{name}/import`, Docker having neither.
//!
//! Consistency is the engine's: the store (berth-volume's archive/) copies a tree (and
//! refuses a volume of mount options, whose content is not in it), the engine decides
//! whether it may, from the container records (mounts.rs).
//! - An export is refused (409, naming the containers) while a running container mounts
//!   the volume read-write: what it copies could be torn. A paused container is frozen and
//!   one mounting it read-only cannot write, so neither stands in the way. With `pause`,
//!   the running writers are paused for the copy and a [`PauseGuard`] thaws them when it
//!   is dropped: at the end, on a failure, and when the client goes away mid-stream (the
//!   response body dropped, the copy's next write fails, the copy returns).
//! - An import is refused (409) while a container with a live process (running, paused,
//!   restarting) mounts the volume, read-only or not: it would keep the old content
//!   mounted and see none of the new. A stopped container is no obstacle; it mounts the
//!   new content at its next start. Into a volume with content only with `force`.
//! - A start is kept out for the whole copy by a busy marker ([`Copying`]): an export or
//!   import marks the volume before its check and until its copy ends, however it ends; a
//!   start marks the volumes it mounts ([`Starting`]) until its status says it runs. Each
//!   refuses (409) what the other marked first: a start mounting a volume being exported
//!   read-write, or one being imported at all; an export of a volume a start will mount
//!   read-write, an import of one a start will mount.
//! - Pauses are counted per container ([`PauseHolds`]): a writer paused for one export is
//!   held by every export of its volumes that comes meanwhile (`pause` asked or not: it is
//!   frozen already), and thawed when the last of them ends.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex, PoisonError};

pub use berth_volume::archive::Compression;

use crate::error::{EngineError, Result};
use crate::mounts::volume_mounts;
use crate::record::Status;
use crate::Engine;

/// What a volume is being copied for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backup {
    Export,
    Import,
}

impl Backup {
    fn as_str(self) -> &'static str {
        match self {
            Backup::Export => "exported",
            Backup::Import => "imported",
        }
    }

    /// Whether a start mounting the volume (read-write or not) must wait for the copy: an
    /// export is torn by a writer only; an import would leave any user on the old content.
    fn keeps_out(self, readwrite: bool) -> bool {
        self == Backup::Import || readwrite
    }
}

/// The volumes being copied and those a start in flight mounts (the engine's
/// `volume_busy`); one entry per operation and mount, so two exports of one volume mark it
/// twice and the first to end leaves the other's mark.
#[derive(Debug, Default)]
pub(crate) struct Busy {
    copies: Vec<(String, Backup)>,
    /// (volume, mounted read-write), per start in flight.
    starts: Vec<(String, bool)>,
}

type SharedBusy = Arc<Mutex<Busy>>;

fn lock(busy: &SharedBusy) -> std::sync::MutexGuard<'_, Busy> {
    busy.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A volume marked as being copied (exported or imported); dropped, the mark goes.
pub(crate) struct Copying {
    busy: SharedBusy,
    entry: (String, Backup),
}

impl Drop for Copying {
    fn drop(&mut self) {
        let mut busy = lock(&self.busy);
        if let Some(i) = busy.copies.iter().position(|c| *c == self.entry) {
            busy.copies.swap_remove(i);
        }
    }
}

/// The volumes a start in flight mounts; dropped (the start has run or failed), the marks
/// go.
pub(crate) struct Starting {
    busy: SharedBusy,
    entries: Vec<(String, bool)>,
}

impl Drop for Starting {
    fn drop(&mut self) {
        let mut busy = lock(&self.busy);
        for entry in &self.entries {
            if let Some(i) = busy.starts.iter().position(|s| s == entry) {
                busy.starts.swap_remove(i);
            }
        }
    }
}

/// The marks an export holds for its copy: the volume's, and the containers it paused
/// (thawed when it is dropped, in the background: a drop cannot wait). The volume's mark
/// goes after the pauses are released: once it is gone, so are this export's holds.
pub struct PauseGuard {
    engine: Arc<Engine>,
    ids: Vec<String>,
    runtime: tokio::runtime::Handle,
    /// `None` only once dropped.
    copying: Option<Copying>,
}

impl PauseGuard {
    /// The containers it holds paused.
    pub fn paused(&self) -> &[String] {
        &self.ids
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        let copying = self.copying.take();
        if self.ids.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.ids);
        let engine = self.engine.clone();
        self.runtime.spawn(async move {
            let _copying = copying;
            // Held while thawing: an export that comes meanwhile finds the container
            // either still held (and holds it) or thawed (and pauses it again).
            let mut holds = engine.export_pauses.lock().await;
            for id in ids {
                if !holds.release(&id) {
                    continue;
                }
                match engine.unpause(&id).await {
                    Ok(()) => tracing::debug!(container = %id, "unpaused after a volume export"),
                    // Exited, removed or thawed by someone else meanwhile.
                    Err(
                        EngineError::NotPaused(_)
                        | EngineError::NoSuchContainer(_)
                        | EngineError::NotRunning(_),
                    ) => {}
                    Err(e) => tracing::warn!(container = %id, "unpause after a volume export: {e}"),
                }
            }
        });
    }
}

/// The containers paused for exports, each with the number of exports holding it (the
/// engine's `export_pauses`): the last to end thaws it.
#[derive(Debug, Default)]
pub(crate) struct PauseHolds(std::collections::HashMap<String, usize>);

impl PauseHolds {
    /// Holds `id` again if an export holds it paused already; false when it is not held.
    fn hold_again(&mut self, id: &str) -> bool {
        match self.0.get_mut(id) {
            Some(n) => {
                *n += 1;
                true
            }
            None => false,
        }
    }

    /// Records the first hold of `id`, just paused.
    fn hold_first(&mut self, id: &str) {
        self.0.insert(id.to_string(), 1);
    }

    /// Drops one hold of `id`; true when it was the last (the container is to be thawed).
    fn release(&mut self, id: &str) -> bool {
        match self.0.get_mut(id) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.0.remove(id);
                true
            }
            None => false,
        }
    }
}

/// A container using a volume, as the export and import checks see it.
struct User {
    id: String,
    name: String,
    status: Status,
    writes: bool,
}

fn names(users: &[&User]) -> String {
    users
        .iter()
        .map(|u| format!("{} ({})", &u.id[..12.min(u.id.len())], u.name))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Engine {
    /// Marks volume `name` as being copied, unless a start in flight mounts it in a way
    /// the copy must keep out (409). Taken before the copy's check of the volume's users:
    /// a start that marked first is refused here; one that comes after is refused by its
    /// own check ([`Engine::volume_start_marks`]) until the mark is dropped.
    fn mark_copying(&self, name: &str, copy: Backup) -> Result<Copying> {
        let mut busy = lock(&self.volume_busy);
        if busy
            .starts
            .iter()
            .any(|(v, rw)| v == name && copy.keeps_out(*rw))
        {
            return Err(EngineError::Conflict(format!(
                "volume {name} is mounted by a container being started: it cannot be {} \
                 now; try again when the start ends",
                copy.as_str()
            )));
        }
        let entry = (name.to_string(), copy);
        busy.copies.push(entry.clone());
        Ok(Copying {
            busy: self.volume_busy.clone(),
            entry,
        })
    }

    /// At a start of `rec`: refuses (409) when a volume it mounts is being exported (and
    /// it mounts it read-write) or imported; else marks its volumes as mounted by a start
    /// in flight until the returned guard is dropped, once the status says it runs (an
    /// export or import after that sees it as a user).
    pub(crate) fn volume_start_marks(
        &self,
        rec: &crate::record::ContainerRecord,
    ) -> Result<Starting> {
        let entries: Vec<(String, bool)> = volume_mounts(rec)
            .map(|m| (m.source.clone(), !m.readonly))
            .collect();
        let mut busy = lock(&self.volume_busy);
        for (name, rw) in &entries {
            if let Some((_, copy)) = busy
                .copies
                .iter()
                .find(|(v, copy)| v == name && copy.keeps_out(*rw))
            {
                return Err(EngineError::Conflict(format!(
                    "volume {name} is being {}: the container cannot start with it now; \
                     try again when that ends",
                    copy.as_str()
                )));
            }
        }
        busy.starts.extend(entries.iter().cloned());
        Ok(Starting {
            busy: self.volume_busy.clone(),
            entries,
        })
    }

    /// The containers whose records mount volume `name`, with their status and whether
    /// any of their mounts of it is read-write. The caller holds [`Engine::volume_use`].
    fn volume_users_detail(&self, name: &str) -> Vec<User> {
        self.volume_users(name)
            .into_iter()
            .filter_map(|id| {
                let c = self.get(&id).ok()?;
                let writes = volume_mounts(&c.record()).any(|m| m.source == name && !m.readonly);
                Some(User {
                    name: c.name(),
                    status: c.state().status,
                    writes,
                    id,
                })
            })
            .collect()
    }

    /// Before `GET /volumes/{name}/export` streams: the volume must exist, and no running
    /// container may be writing to it, unless `pause`: then those are paused until the
    /// returned guard is dropped. A writer paused for another export is held paused by
    /// this one too.
    pub async fn volume_export_prepare(
        self: &Arc<Self>,
        name: &str,
        pause: bool,
    ) -> Result<PauseGuard> {
        // Refused before the stream starts (after, a refusal could only cut it short);
        // the store refuses it too.
        self.volumes.get(name)?.check_plain()?;
        let copying = self.mark_copying(name, Backup::Export)?;
        // Locked before the users are read and until the pauses: no export thaws a writer
        // in between (one seen paused for an export stays so until held here).
        let mut holds = self.export_pauses.lock().await;
        let users = {
            let _use = self
                .volume_use
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.volume_users_detail(name)
        };
        let writers: Vec<&User> = users
            .iter()
            .filter(|u| u.writes && matches!(u.status, Status::Running | Status::Restarting))
            .collect();
        let mut guard = PauseGuard {
            engine: self.clone(),
            ids: Vec::new(),
            runtime: tokio::runtime::Handle::current(),
            copying: Some(copying),
        };
        for u in users
            .iter()
            .filter(|u| u.writes && u.status == Status::Paused)
        {
            if holds.hold_again(&u.id) {
                guard.ids.push(u.id.clone());
            }
        }
        if writers.is_empty() {
            return Ok(guard);
        }
        if !pause {
            return Err(EngineError::Conflict(format!(
                "volume {name} is in use read-write by running container(s) {}: export \
                 refused, the copy could be torn (pause them for the copy with --pause, or \
                 stop them)",
                names(&writers)
            )));
        }
        let restarting: Vec<&User> = writers
            .iter()
            .copied()
            .filter(|u| u.status == Status::Restarting)
            .collect();
        if !restarting.is_empty() {
            return Err(EngineError::Conflict(format!(
                "volume {name} is in use read-write by restarting container(s) {}: they \
                 cannot be paused, export refused",
                names(&restarting)
            )));
        }
        for w in writers {
            match self.pause(&w.id).await {
                Ok(()) => {
                    holds.hold_first(&w.id);
                    guard.ids.push(w.id.clone());
                }
                // Stopped, or paused by someone else, since the check: not writing.
                Err(EngineError::NotRunning(_)) => {}
                Err(EngineError::Conflict(m)) if m.contains("already paused") => {}
                // The guard thaws those paused so far.
                Err(e) => return Err(e),
            }
        }
        Ok(guard)
    }

    /// `GET /volumes/{name}/export` (blocking): the volume's content as a tar archive to
    /// `out`. The caller holds the [`PauseGuard`] of [`Engine::volume_export_prepare`]
    /// until this returns.
    pub fn volume_export(
        &self,
        name: &str,
        out: &mut dyn Write,
        compression: Compression,
    ) -> Result<()> {
        Ok(self.volumes.export(name, out, compression)?)
    }

    /// Whether an import into `name` may start: it exists, no start in flight mounts it,
    /// and no container with a live process does. The returned mark keeps starts out
    /// until it is dropped.
    fn volume_import_check(&self, name: &str) -> Result<Copying> {
        // Refused before the body is read; the store refuses it too.
        self.volumes.get(name)?.check_plain()?;
        let copying = self.mark_copying(name, Backup::Import)?;
        let _use = self
            .volume_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.no_live_users(name)?;
        Ok(copying)
    }

    /// Refuses when a container with a live process mounts volume `name`. The caller holds
    /// [`Engine::volume_use`].
    fn no_live_users(&self, name: &str) -> Result<()> {
        let users = self.volume_users_detail(name);
        let live: Vec<&User> = users
            .iter()
            .filter(|u| {
                matches!(
                    u.status,
                    Status::Running | Status::Paused | Status::Restarting
                )
            })
            .collect();
        if live.is_empty() {
            return Ok(());
        }
        Err(EngineError::Conflict(format!(
            "volume {name} is mounted by running container(s) {}: import refused (stop them \
             first; they would keep the old content mounted)",
            names(&live)
        )))
    }

    /// `POST /volumes/{name}/import` (blocking): the tar stream `input` (plain, gzip or
    /// zstd) becomes the volume's content, whole or not at all. Refused into a volume with
    /// content unless `force`, and while a running container mounts it (checked again
    /// right before the content is swapped in).
    pub fn volume_import(&self, name: &str, input: impl Read, force: bool) -> Result<()> {
        let _copying = self.volume_import_check(name)?;
        let staged = self.volumes.import(name, input, force)?;
        let _use = self
            .volume_use
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.no_live_users(name)?;
        staged.commit(force)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_paused_for_two_exports_is_thawed_by_the_last_to_end() {
        let mut holds = PauseHolds::default();
        assert!(
            !holds.hold_again("writer"),
            "not held: the first export pauses it"
        );
        holds.hold_first("writer");
        assert!(
            holds.hold_again("writer"),
            "held: the second export holds it too"
        );
        assert!(
            !holds.release("writer"),
            "the first to end leaves it paused"
        );
        assert!(holds.release("writer"), "the last to end thaws it");
        assert!(!holds.release("writer"), "no hold left");
        assert!(
            !holds.hold_again("writer"),
            "a later export pauses it again"
        );
    }

    #[test]
    fn users_are_named_by_short_id_and_name() {
        let u = User {
            id: "0123456789abcdef".into(),
            name: "writer".into(),
            status: Status::Running,
            writes: true,
        };
        assert_eq!(names(&[&u]), "0123456789ab (writer)");
    }
}
