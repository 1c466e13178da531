//! Directories made ahead of need, so that `create` renames instead of creating: a
//! container's record directory under `<root>/containers`, its bundle (with `rootfs/`) under
//! `<exec-root>/containers`, and (in the image store) its rw layer. On ext4 a mkdir costs
//! ~0.25 ms here, six of them were on the path of every `docker run`; a rename costs a tenth.
//! Spares are `.spare-*` directories; `Engine::open` removes any left from before. The same
//! task has the runtime get its next start ready (a warm shim, `berth_runtime::warm_up`).

use crate::Engine;
use std::path::PathBuf;

/// Spares kept ready of each kind.
const SPARES: usize = 2;

/// The name prefix of a spare directory.
pub(crate) const PREFIX: &str = ".spare-";

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Engine {
    /// A ready (record dir, bundle dir) pair, if one is waiting.
    pub(crate) fn take_spare_dirs(&self) -> Option<(PathBuf, PathBuf)> {
        self.spares.lock().expect("spares lock").pop()
    }

    /// Tops the spares up, off the latency path (a blocking task).
    pub(crate) fn refill_spares(&self) {
        let spares = self.spares.clone();
        let images = self.images.clone();
        let (root, exec_root) = (self.cfg.root.clone(), self.cfg.exec_root.clone());
        // The libcontainer backend's shim is another binary, never warm.
        let runtime =
            (self.cfg.backend == berth_runtime::Backend::Berth).then(|| self.runtime.clone());
        let net = self.net.clone();
        let work = move || {
            if let Err(e) = net.pool.refill() {
                tracing::debug!("making a network namespace ahead: {e}");
            }
            if let Some(runtime) = &runtime {
                runtime.prewarm();
            }
            let have = spares.lock().expect("spares lock").len();
            for _ in have..SPARES {
                let name = unique();
                let record = root.join("containers").join(&name);
                let bundle = exec_root.join("containers").join(&name);
                // The record directory comes with the /etc files start writes in place.
                let made = std::fs::create_dir(&record)
                    .and_then(|_| {
                        ["hostname", "hosts", "resolv.conf"]
                            .iter()
                            .try_for_each(|f| std::fs::write(record.join(f), b""))
                    })
                    .and_then(|_| std::fs::create_dir_all(bundle.join("rootfs")))
                    // And the bundle with the files the runtime and the shim write in place.
                    .and_then(|_| {
                        use std::os::unix::fs::OpenOptionsExt;
                        ["spec.json", "shim.log"].iter().try_for_each(|f| {
                            std::fs::OpenOptions::new()
                                .write(true)
                                .create_new(true)
                                .mode(0o600)
                                .open(bundle.join(f))
                                .map(drop)
                        })
                    });
                match made {
                    Ok(()) => spares.lock().expect("spares lock").push((record, bundle)),
                    Err(e) => {
                        tracing::debug!("making spare directories: {e}");
                        let _ = std::fs::remove_dir_all(&record);
                        let _ = std::fs::remove_dir_all(&bundle);
                        break;
                    }
                }
            }
            if let Err(e) = images.make_spares(SPARES) {
                tracing::debug!("making spare rw layers: {e}");
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(work)),
            Err(_) => work(),
        }
    }

    /// Removes spares a previous berthd left (at start-up, before any is made).
    pub(crate) fn remove_old_spares(&self) {
        for base in [
            self.cfg.root.join("containers"),
            self.cfg.exec_root.join("containers"),
        ] {
            let Ok(entries) = std::fs::read_dir(&base) else {
                continue;
            };
            for e in entries.flatten() {
                if e.file_name().to_string_lossy().starts_with(PREFIX) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
    }
}
