//! `docker cp`: `HEAD`, `GET` and `PUT /containers/{id}/archive` (moby's
//! `daemon/archive_unix.go`). The filesystem work is in `crate::archive`; this file opens the
//! container's filesystem, holds the container's `op` lock meanwhile (as Docker holds its
//! container lock, until a `GET`'s archive is read to its end or its client goes away: a
//! stopped container is not started while its rw layer is mounted for the copy), and
//! emits Docker's events (`archive-path` for a `GET`, `extract-to-dir` for a `PUT`).
//!
//! The filesystem: a running or paused container's is its init's root
//! (`/proc/<init>/root`, its own mount namespace with its bind mounts); a created, exited
//! or restarting one's is its overlay and bind mounts, mounted in a private mount namespace
//! for the copy only ([`berth_runtime::ContainerFs`]).

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::PathBuf;
use std::sync::Arc;

use berth_api::archive::PathStat;
use berth_runtime::ContainerFs;

use crate::archive::{self, paths, unpack};
use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::Engine;

/// How `PUT /containers/{id}/archive` extracts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtractOptions {
    /// `noOverwriteDirNonDir`: a directory and a non-directory never replace each other.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID` (`docker cp -a`): with a container user (`Config.User`), everything
    /// extracted is owned by that user; without one, by the tar's owners (as always).
    pub copy_uid_gid: bool,
}

/// The tar of a `GET`, in chunks as it is made; an `Err` ends it early.
pub type ArchiveStream = tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>;

/// How much of a rejected upload is read (and dropped) before the error is answered: a
/// client that still uploads sees the answer instead of a broken pipe.
const DRAIN_LIMIT: u64 = 1 << 30;

/// How much is read (and dropped) after a tar's end marker once its extraction succeeded.
const TRAILER_LIMIT: u64 = 1 << 20;

/// A lookup's failure as Docker answers it: 404 with its text for a missing path (`path`
/// and `name` as the client gave them), Go's `lstat` wording otherwise.
fn lookup_error(e: std::io::Error, abs: &[u8], path: &str, name: &str) -> EngineError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => EngineError::NotFound(format!(
            "Could not find the file {path} in container {name}"
        )),
        Some(n) => EngineError::Invalid(format!(
            "lstat {}: {}",
            paths::show(abs),
            nix::errno::Errno::from_raw(n).desc().to_lowercase()
        )),
        None => EngineError::Invalid(format!("lstat {}: {e}", paths::show(abs))),
    }
}

fn joined<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    r.unwrap_or_else(|e| Err(EngineError::Internal(format!("copy task: {e}"))))
}

/// A `Write` that hands each buffer to the stream of a `GET`.
struct ChannelWriter(tokio::sync::mpsc::Sender<std::io::Result<Vec<u8>>>);

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(buf.to_vec()))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Engine {
    /// `HEAD /containers/{id}/archive`: what the path is.
    pub async fn archive_stat(self: &Arc<Self>, name: &str, path: &str) -> Result<PathStat> {
        let c = self.get(name)?;
        let _op = c.op.lock().await;
        let fs = self.container_fs(&c).await?;
        let (name, path) = (name.to_string(), path.to_string());
        joined(
            tokio::task::spawn_blocking(move || {
                let abs = paths::absolute(path.as_bytes());
                archive::find(fs.root(), &abs)
                    .map(|f| f.stat)
                    .map_err(|e| lookup_error(e, &abs, &path, &name))
            })
            .await,
        )
    }

    /// `GET /containers/{id}/archive`: what the path is, and its tar as it is made. The
    /// container stays locked until the stream ends or is dropped.
    pub async fn archive_get(
        self: &Arc<Self>,
        name: &str,
        path: &str,
    ) -> Result<(PathStat, ArchiveStream)> {
        let c = self.get(name)?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<Result<PathStat>>();
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let engine = self.clone();
        let locked = c.clone();
        let (name_s, path) = (name.to_string(), path.to_string());
        tokio::spawn(async move {
            let _op = locked.op.lock().await;
            let fs = match engine.container_fs(&locked).await {
                Ok(fs) => fs,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = tokio::task::spawn_blocking(move || {
                let abs = paths::absolute(path.as_bytes());
                let found = match archive::find(fs.root(), &abs) {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = ready_tx.send(Err(lookup_error(e, &abs, &path, &name_s)));
                        return;
                    }
                };
                if ready_tx.send(Ok(found.stat.clone())).is_err() {
                    return;
                }
                if let Err(e) = archive::pack::pack(found, ChannelWriter(tx.clone())) {
                    tracing::debug!(path = %path, "archive ended early: {e}");
                    let _ = tx.blocking_send(Err(e));
                }
            })
            .await;
        });
        let stat = ready_rx
            .await
            .map_err(|_| EngineError::Internal("the archive task ended".into()))??;
        self.emit_container(&c, "archive-path", &[]);
        Ok((stat, rx))
    }

    /// `PUT /containers/{id}/archive`: extracts the tar `body` (plain or compressed) into
    /// the directory `path`. On failure, what is left of `body` is read (up to 1 GiB).
    pub async fn archive_put(
        self: &Arc<Self>,
        name: &str,
        path: &str,
        opts: ExtractOptions,
        mut body: Box<dyn Read + Send>,
    ) -> Result<()> {
        let c = match self.get(name) {
            Ok(c) => c,
            Err(e) => {
                drain_off_thread(body).await;
                return Err(e);
            }
        };
        let _op = c.op.lock().await;
        let fs = self.container_fs(&c).await;
        let (readonly_rootfs, user) = {
            let rec = c.record();
            (rec.host_config.readonly_rootfs, rec.config.user.clone())
        };
        let limits = self.images.ingest_limits();
        let (name_s, path) = (name.to_string(), path.to_string());
        joined(
            tokio::task::spawn_blocking(move || {
                let r = fs.and_then(|fs| {
                    let target = Target {
                        fs: &fs,
                        path: &path,
                        name: &name_s,
                        readonly_rootfs,
                        user: &user,
                    };
                    target.extract(opts, limits, &mut body)
                });
                // The tar reader stops at the archive's end marker; what follows (the
                // second zero block, padding) is read too, as Go's server discards an
                // unread body: answered while the client still writes, its upload fails
                // with a broken pipe instead of getting the answer.
                let left = if r.is_ok() {
                    TRAILER_LIMIT
                } else {
                    DRAIN_LIMIT
                };
                let _ = std::io::copy(&mut body.take(left), &mut std::io::sink());
                r
            })
            .await,
        )?;
        self.emit_container(&c, "extract-to-dir", &[]);
        Ok(())
    }

    /// The container's filesystem for a copy (see the module's comment). The caller holds
    /// `c.op`.
    async fn container_fs(self: &Arc<Self>, c: &Arc<Container>) -> Result<ContainerFs> {
        match c.state().status {
            Status::Running | Status::Paused => {
                let runtime = self.runtime.clone();
                let bundle = self.cfg.bundle_dir(&c.id);
                let id = c.id.clone();
                joined(
                    tokio::task::spawn_blocking(move || {
                        runtime
                            .filesystem(&bundle)
                            .map_err(|source| EngineError::Runtime {
                                context: format!("cannot open the filesystem of container {id}"),
                                source,
                            })
                    })
                    .await,
                )
            }
            Status::Removing => Err(EngineError::Conflict(format!(
                "container {} is marked for removal",
                c.id
            ))),
            Status::Created | Status::Restarting | Status::Exited | Status::Dead => {
                let engine = self.clone();
                let c = c.clone();
                joined(tokio::task::spawn_blocking(move || engine.mount_stopped(&c)).await)
            }
        }
    }

    /// A stopped container's overlay and bind mounts, mounted for a copy. Blocking.
    fn mount_stopped(&self, c: &Container) -> Result<ContainerFs> {
        let rec = c.record().clone();
        let rootfs = self.snapshot_mounts(&c.id, &rec.image_id)?;
        // The /etc files of its last start, then its -v binds: a start's order.
        let dir = self.cfg.container_dir(&c.id);
        let mut binds: Vec<berth_runtime::ContainerMount> = [
            ("hostname", "/etc/hostname"),
            ("hosts", "/etc/hosts"),
            ("resolv.conf", "/etc/resolv.conf"),
        ]
        .into_iter()
        .filter(|(file, _)| dir.join(file).is_file())
        .map(|(file, dest)| berth_runtime::ContainerMount {
            source: dir.join(file),
            destination: dest.to_string(),
            ..Default::default()
        })
        .collect();
        let user = self.runtime_mounts(&rec)?;
        binds.retain(|b| !user.iter().any(|u| u.destination == b.destination));
        binds.extend(user);
        let mountpoint: PathBuf = self.cfg.bundle_dir(&c.id).join("rootfs");
        std::fs::create_dir_all(&mountpoint)
            .map_err(|e| EngineError::io("create", &mountpoint, e))?;
        let view = ContainerFs::of_stopped(&rootfs, &binds, &mountpoint).map_err(|source| {
            EngineError::Runtime {
                context: format!("cannot mount the filesystem of container {}", c.id),
                source,
            }
        });
        // A volume of mount options that runtime_mounts mounted for the view is held by the
        // view's own namespace now: on the host it goes again unless a running container
        // uses it.
        self.release_volumes(&rec.id, &crate::mounts::optioned_volume_names(&rec));
        view
    }
}

/// Reads (and drops) what is left of an upload, off the async threads.
async fn drain_off_thread(mut body: Box<dyn Read + Send>) {
    let _ = tokio::task::spawn_blocking(move || {
        let _ = std::io::copy(&mut (&mut body).take(DRAIN_LIMIT), &mut std::io::sink());
    })
    .await;
}

/// Where a `PUT` extracts.
struct Target<'a> {
    fs: &'a ContainerFs,
    /// the API's `path`, as given
    path: &'a str,
    /// the container, as named in the request
    name: &'a str,
    readonly_rootfs: bool,
    /// `Config.User`
    user: &'a str,
}

impl Target<'_> {
    /// Docker's checks, then the extraction.
    fn extract(
        &self,
        opts: ExtractOptions,
        limits: berth_image::IngestLimits,
        body: &mut dyn Read,
    ) -> Result<()> {
        let root = self.fs.root();
        // Every symlink resolved, the last one too: a symlink to a directory is a
        // directory to extract into (Docker's EvalSymlinks under its chroot).
        let joined = paths::clean(format!("/{}", self.path).as_bytes());
        let lookup = |e: std::io::Error| lookup_error(e, &joined, self.path, self.name);
        let dest = archive::follow_in_scope(root, &joined, true).map_err(lookup)?;
        let dir = archive::open_in_root(root, &dest, libc::O_PATH).map_err(lookup)?;
        let st = archive::stat_fd(dir.as_fd()).map_err(lookup)?;
        if archive::kind(&st) != nix::sys::stat::SFlag::S_IFDIR {
            return Err(EngineError::Invalid(
                "extraction point is not a directory".into(),
            ));
        }
        if let Some(fs) = archive::kernel_filesystem(dir.as_fd()).map_err(lookup)? {
            return Err(EngineError::Invalid(format!(
                "cannot copy into {}: it is the container's {fs} filesystem",
                paths::show(&dest)
            )));
        }
        // Docker's checkWritablePath: the rootfs by the container's setting, a mount by
        // its own flags.
        let root_st = archive::stat_fd(root).map_err(lookup)?;
        if st.st_dev == root_st.st_dev {
            if self.readonly_rootfs {
                return Err(EngineError::Invalid(
                    "container rootfs is marked read-only".into(),
                ));
            }
        } else if nix::sys::statvfs::fstatvfs(dir.as_fd())
            .map_err(|e| lookup(e.into()))?
            .flags()
            .contains(nix::sys::statvfs::FsFlags::ST_RDONLY)
        {
            return Err(EngineError::Invalid(
                "mounted volume is marked read-only".into(),
            ));
        }
        let owner = if opts.copy_uid_gid && !self.user.is_empty() {
            Some(
                self.fs
                    .user_ids(self.user)
                    .map_err(|e| EngineError::Invalid(e.to_string()))?,
            )
        } else {
            None
        };
        // Charged against the destination's filesystem.
        let on = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()));
        let budget = berth_image::Budget::for_archive(&on, limits)?;
        let (_, input) = berth_image::decompress(body, &budget)?;
        let options = unpack::Options {
            no_overwrite_dir_non_dir: opts.no_overwrite_dir_non_dir,
            owner,
        };
        unpack::unpack(root, &dest, input, &options, &budget)
    }
}
