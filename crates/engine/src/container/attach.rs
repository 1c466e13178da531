//! Attach: a client's live connection to the main process's output (and stdin), served by
//! the container's shim ([`berth_runtime::Attachment`]); `resize` of its terminal.
//!
//! To a running container the shim is asked at once; a paused or restarting one is refused
//! (409, Docker's words). A client that attaches to a container that is not running
//! (`docker run` and `start -a` attach before they start) waits for its next start: the
//! start asks the shim to hold the output until the first attach, so nothing the process
//! writes at once is missed.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::Engine;

/// Which of the main process's streams a client takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A connected attach.
#[derive(Debug)]
pub struct Attached {
    /// The shim's stream of output frames and what came with its answer.
    pub output: berth_runtime::Attachment,
    /// The container was made with `StdinOnce`: the client's stdin EOF closes the
    /// container's (call [`Engine::close_stdin`]).
    pub stdin_once: bool,
}

/// A client waiting for the container's next start.
pub(crate) struct Pending {
    opts: AttachOptions,
    tx: oneshot::Sender<Result<Attached>>,
}

/// The future of an attach: ready at once for a running container, at its next start else.
pub type AttachFuture = crate::BoxFuture<Result<Attached>>;

impl Engine {
    /// Validates the attach now (404 for an unknown container) and returns the future of
    /// the connection.
    pub fn attach(self: &Arc<Self>, name_or_id: &str, opts: AttachOptions) -> Result<AttachFuture> {
        let c = self.get(name_or_id)?;
        let status = c.state().status;
        // Docker's 409s, naming the container as the client did.
        match status {
            crate::Status::Paused => {
                return Err(EngineError::Conflict(format!(
                    "container {name_or_id} is paused, unpause the container before attach"
                )))
            }
            crate::Status::Restarting => {
                return Err(EngineError::Conflict(format!(
                    "container {name_or_id} is restarting, wait until the container is running"
                )))
            }
            _ => {}
        }
        if status.is_active() {
            let engine = self.clone();
            return Ok(Box::pin(
                async move { engine.connect_attach(&c, opts).await },
            ));
        }
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = c.pending_attach.lock().expect("attach lock");
            // Clients that gave up waiting leave no trace: a container that never starts
            // does not collect them.
            pending.retain(|p| !p.tx.is_closed());
            pending.push(Pending { opts, tx });
        }
        let id = c.id.clone();
        Ok(Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                Err(EngineError::Conflict(format!(
                    "container {id} did not start (or was removed) while a client was attached"
                )))
            })
        }))
    }

    /// Asks the shim of a running container for the stream.
    async fn connect_attach(
        self: &Arc<Self>,
        c: &Arc<Container>,
        opts: AttachOptions,
    ) -> Result<Attached> {
        let runtime = self.runtime.clone();
        let bundle = self.cfg.bundle_dir(&c.id);
        let stdin_once = c.record().config.stdin_once;
        let output = tokio::task::spawn_blocking(move || {
            runtime.attach(&bundle, opts.stdin, opts.stdout, opts.stderr)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("attach: {e}")))?
        .map_err(|source| EngineError::Runtime {
            context: format!("attach to container {}", c.id),
            source,
        })?;
        self.emit_container(c, "attach", &[]);
        Ok(Attached { output, stdin_once })
    }

    /// Whether a client waits for this container's start (the start then holds the output).
    pub(crate) fn attach_waiting(&self, c: &Container) -> bool {
        let mut pending = c.pending_attach.lock().expect("attach lock");
        pending.retain(|p| !p.tx.is_closed());
        !pending.is_empty()
    }

    /// After a start: connects every waiting client (in the order they came, in a task of
    /// their own: the caller holds the container's operation lock). On a failed start they
    /// get the error (and their streams end).
    pub(crate) fn answer_pending_attach(
        self: &Arc<Self>,
        c: &Arc<Container>,
        started: std::result::Result<(), String>,
    ) {
        let pending = std::mem::take(&mut *c.pending_attach.lock().expect("attach lock"));
        if pending.is_empty() {
            return;
        }
        let (engine, c) = (self.clone(), c.clone());
        tokio::spawn(async move {
            for p in pending {
                let result = match &started {
                    Ok(()) => engine.connect_attach(&c, p.opts).await,
                    Err(message) => Err(EngineError::Conflict(message.clone())),
                };
                let _ = p.tx.send(result);
            }
        });
    }

    /// Drops the clients waiting for a container that is being removed.
    pub(crate) fn drop_pending_attach(&self, c: &Container) {
        c.pending_attach.lock().expect("attach lock").clear();
    }

    /// Lets go of the container's stdin (`StdinOnce` after the client's EOF).
    pub async fn close_stdin(self: &Arc<Self>, id: &str) -> Result<()> {
        let c = self.get(id)?;
        let bundle = self.bundle_of(&c);
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.close_stdin(&bundle))
            .await
            .map_err(|e| EngineError::Internal(format!("close stdin: {e}")))?
            .map_err(|source| EngineError::Runtime {
                context: format!("close the stdin of container {}", c.id),
                source,
            })
    }

    /// `POST /containers/{id}/resize`: the main process's terminal.
    pub async fn resize(self: &Arc<Self>, name_or_id: &str, height: u16, width: u16) -> Result<()> {
        let c = self.get(name_or_id)?;
        if !c.state().status.is_active() {
            return Err(EngineError::Conflict(format!(
                "container {} is not running",
                c.id
            )));
        }
        if !c.record().config.tty {
            return Err(EngineError::Invalid(format!(
                "container {} has no terminal to resize (it was not created with -t)",
                c.id
            )));
        }
        let bundle = self.bundle_of(&c);
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.resize(&bundle, height, width))
            .await
            .map_err(|e| EngineError::Internal(format!("resize: {e}")))?
            .map_err(|source| EngineError::Runtime {
                context: format!("resize the terminal of container {}", c.id),
                source,
            })?;
        self.emit_container(
            &c,
            "resize",
            &[("height", height.to_string()), ("width", width.to_string())],
        );
        Ok(())
    }

    fn bundle_of(&self, c: &Container) -> PathBuf {
        self.cfg.bundle_dir(&c.id)
    }
}
