//! Exec instances: `docker exec`'s create, start, inspect and resize.
//!
//! An exec is created (a record here), then started once: berthd makes its stdio (pipes, or
//! the terminal's master that the shim sends back) and asks the container's shim to run the
//! process; the shim keeps the process's state and exit under the exec's id, so that a new
//! berthd finds it after a restart ([`Engine::restore_execs`]). Records live in memory and
//! go with their container, as Docker's do.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};

use berth_api::exec::{ExecCreateRequest, ExecInspect, ExecProcessConfig};

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::Engine;

/// How many ended execs a container keeps for inspect (the oldest go first), as its shim
/// keeps 256: a client creating execs in a loop cannot grow berthd without bound.
const ENDED_KEPT: usize = 256;

/// How many execs a container keeps that have not ended (created or running). Beyond it
/// the oldest never started go (and the oldest ended, beyond [`ENDED_KEPT`]); only running
/// ones refuse a new exec.
const LIVE_LIMIT: usize = 1024;

/// The largest exec berthd sends its shim (command, environment, user, working directory
/// as the shim's request line): an exec over it is refused at create, with the bound named.
/// Well below the shim's own [`berth_runtime::shim::MAX_REQUEST`].
pub const EXEC_REQUEST_MAX: usize = 1 << 20;

/// Creation order of execs (for dropping the oldest ended ones).
static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One exec instance.
pub struct Exec {
    pub id: String,
    seq: u64,
    pub container_id: String,
    pub config: ExecCreateRequest,
    state: Mutex<ExecState>,
    /// Becomes true when the process has exited (and `exit_code` is set).
    done: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct ExecState {
    started: bool,
    running: bool,
    pid: i64,
    exit_code: Option<i64>,
    /// The terminal's master (`Tty`), kept for resize while the process runs.
    master: Option<OwnedFd>,
}

/// The started process's stdio as berthd holds it.
pub struct ExecIo {
    /// Its stdin: the pipe's write end, or a copy of the terminal's master (`AttachStdin`).
    pub stdin: Option<OwnedFd>,
    /// Its stdout pipe's read end, or the terminal's master.
    pub stdout: Option<OwnedFd>,
    /// Its stderr pipe's read end (none with a terminal).
    pub stderr: Option<OwnedFd>,
    pub tty: bool,
    /// Turns true when the process has exited and its exit code is recorded.
    pub exited: tokio::sync::watch::Receiver<bool>,
}

impl Exec {
    fn new(id: String, container_id: String, config: ExecCreateRequest) -> Arc<Exec> {
        let (done, _) = tokio::sync::watch::channel(false);
        Arc::new(Exec {
            id,
            seq: SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            container_id,
            config,
            state: Mutex::new(ExecState::default()),
            done,
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ExecState> {
        self.state.lock().expect("exec lock")
    }

    /// Records the exit (once) and wakes whoever waits for it.
    fn exited(&self, code: i64) {
        {
            let mut s = self.state();
            s.running = false;
            s.exit_code.get_or_insert(code);
            s.master = None;
        }
        self.done.send_replace(true);
    }

    /// The shim's request for this exec.
    fn shim_request(&self, detach: bool) -> berth_runtime::ExecRequest {
        let cfg = &self.config;
        berth_runtime::ExecRequest {
            id: self.id.clone(),
            args: cfg.cmd.clone().unwrap_or_default(),
            env: cfg.env.clone().unwrap_or_default(),
            cwd: cfg.working_dir.clone(),
            user: cfg.user.clone(),
            tty: cfg.tty,
            privileged: cfg.privileged,
            detach,
        }
    }

    /// Created or running: what a container's `ExecIDs` lists (as Docker's).
    fn live(&self) -> bool {
        let s = self.state();
        s.exit_code.is_none()
    }
}

/// The exec's exit from its shim connection (the answer that follows `exec_started`).
async fn exec_exit(
    stream: std::os::unix::net::UnixStream,
    mut line: Vec<u8>,
) -> std::io::Result<berth_runtime::ExitStatus> {
    use tokio::io::AsyncReadExt;
    stream.set_nonblocking(true)?;
    let mut stream = tokio::net::UnixStream::from_std(stream)?;
    let mut chunk = [0u8; 1024];
    // One short line; a shim that sends more than this without a newline is broken.
    while !line.contains(&b'\n') && line.len() < 64 * 1024 {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        line.extend_from_slice(&chunk[..n]);
    }
    berth_runtime::shim::exec_exit(&line)
}

/// Reads and throws away the output of an exec's terminal nobody reads (detached, or its
/// client gone) until the process has exited or the terminal hangs up: else the process
/// blocks once the terminal's buffer is full.
pub async fn discard(master: OwnedFd, mut exited: tokio::sync::watch::Receiver<bool>) {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsRawFd;
    use tokio::io::AsyncReadExt;
    // Non-blocking, as the reader wants (a flag of the file, shared with the resize copy,
    // which only takes ioctls).
    if fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).is_err() {
        return;
    }
    let Ok(mut reader) = tokio::net::unix::pipe::Receiver::from_owned_fd_unchecked(master) else {
        return;
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            // EOF, or EIO once no process holds the terminal.
            n = reader.read(&mut buf) => if !matches!(n, Ok(n) if n > 0) {
                return;
            },
            _ = exited.wait_for(|done| *done) => return,
        }
    }
}

/// Docker's refusal of an exec into a container that is not running.
fn not_running(c: &Container) -> Option<EngineError> {
    match c.state().status {
        Status::Running => None,
        Status::Paused => Some(EngineError::Conflict(format!(
            "container {} is paused, unpause the container before exec",
            c.id
        ))),
        Status::Restarting => Some(EngineError::Conflict(format!(
            "container {} is restarting, wait until the container is running",
            c.id
        ))),
        _ => Some(EngineError::Conflict(format!(
            "container {} is not running",
            c.id
        ))),
    }
}

impl Engine {
    /// `POST /containers/{id}/exec`: records the exec; 409 unless the container runs.
    pub fn exec_create(&self, name_or_id: &str, config: ExecCreateRequest) -> Result<String> {
        let c = self.get(name_or_id)?;
        if let Some(e) = not_running(&c) {
            return Err(e);
        }
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(EngineError::Invalid("No exec command specified".into()));
        }
        for e in config.env.iter().flatten() {
            if e.is_empty() || e.starts_with('=') {
                return Err(EngineError::Invalid(format!(
                    "invalid environment variable: {e}"
                )));
            }
        }
        let id = crate::container::create::new_id();
        let action = format!(
            "exec_create: {}",
            config.cmd.clone().unwrap_or_default().join(" ")
        );
        let exec = Exec::new(id.clone(), c.id.clone(), config);
        // What the shim will be sent (its largest possible form): refused now, not at start.
        let size = serde_json::to_vec(&berth_runtime::shim::ShimRequest::Exec(
            exec.shim_request(true),
        ))
        .map_or(usize::MAX, |v| v.len());
        if size > EXEC_REQUEST_MAX {
            return Err(EngineError::Invalid(format!(
                "exec config too large: its command, environment, user and working directory \
                 take {size} bytes, the limit is {EXEC_REQUEST_MAX}"
            )));
        }
        {
            let mut execs = self.execs.lock().expect("execs lock");
            let mut ended: Vec<(u64, String)> = Vec::new();
            let mut unstarted: Vec<(u64, String)> = Vec::new();
            let mut running = 0;
            for e in execs.values().filter(|e| e.container_id == c.id) {
                let s = e.state();
                if s.exit_code.is_some() {
                    ended.push((e.seq, e.id.clone()));
                } else if s.started {
                    running += 1;
                } else {
                    unstarted.push((e.seq, e.id.clone()));
                }
            }
            if running >= LIVE_LIMIT {
                return Err(EngineError::Conflict(format!(
                    "container {} has {running} execs running, berth's limit per container: \
                     wait for some to end",
                    c.id
                )));
            }
            // The oldest never-started ones make room (a client that creates execs and
            // never starts them cannot grow berthd), then the oldest ended ones.
            unstarted.sort();
            let excess = (running + unstarted.len()).saturating_sub(LIVE_LIMIT - 1);
            ended.sort();
            let ended_excess = ended.len().saturating_sub(ENDED_KEPT - 1);
            for (_, old) in unstarted
                .into_iter()
                .take(excess)
                .chain(ended.into_iter().take(ended_excess))
            {
                execs.remove(&old);
            }
            execs.insert(id.clone(), exec);
        }
        self.emit_container(&c, &action, &[("execID", id.clone())]);
        Ok(id)
    }

    /// An exec by id: Docker's 404 text.
    pub fn exec_get(&self, id: &str) -> Result<Arc<Exec>> {
        self.execs
            .lock()
            .expect("execs lock")
            .get(id)
            .cloned()
            .ok_or_else(|| EngineError::NotFound(format!("No such exec instance: {id}")))
    }

    /// `POST /exec/{id}/start`: runs the process (once). With `detach` its stdio is
    /// `/dev/null`; otherwise the returned descriptors are the caller's to bridge.
    pub async fn exec_start(
        self: &Arc<Self>,
        id: &str,
        detach: bool,
        console_size: Option<[u64; 2]>,
    ) -> Result<ExecIo> {
        let exec = self.exec_get(id)?;
        let c = self.get(&exec.container_id)?;
        {
            let mut s = exec.state();
            if s.started {
                return Err(EngineError::Conflict(if s.running {
                    format!("Error: Exec command {id} is already running")
                } else {
                    format!("Error: Exec command {id} has already run")
                }));
            }
            if let Some(e) = not_running(&c) {
                return Err(e);
            }
            s.started = true;
        }
        let cfg = &exec.config;
        let tty = cfg.tty;
        let req = exec.shim_request(detach);
        let io_err = |e: std::io::Error| EngineError::Internal(format!("exec stdio: {e}"));
        // Without a terminal: a pipe per attached stream, /dev/null for the others.
        let mut ours: [Option<OwnedFd>; 3] = [None, None, None];
        let mut theirs: Vec<OwnedFd> = Vec::new();
        if !tty {
            let wants = [
                cfg.attach_stdin && !detach,
                cfg.attach_stdout && !detach,
                cfg.attach_stderr && !detach,
            ];
            for (i, want) in wants.into_iter().enumerate() {
                if want {
                    let (r, w) = std::io::pipe().map_err(io_err)?;
                    let (mine, child): (OwnedFd, OwnedFd) = if i == 0 {
                        (w.into(), r.into())
                    } else {
                        (r.into(), w.into())
                    };
                    ours[i] = Some(mine);
                    theirs.push(child);
                } else {
                    let null = std::fs::OpenOptions::new()
                        .read(i == 0)
                        .write(i != 0)
                        .open("/dev/null")
                        .map_err(io_err)?;
                    theirs.push(null.into());
                }
            }
        }
        let runtime = self.runtime.clone();
        let bundle = self.cfg.bundle_dir(&c.id);
        let bundle_then = bundle.clone();
        let started = tokio::task::spawn_blocking(move || {
            let stdio = (theirs.len() == 3)
                .then(|| [theirs[0].as_fd(), theirs[1].as_fd(), theirs[2].as_fd()]);
            runtime.exec(&bundle, &req, stdio)
        })
        .await
        .map_err(|e| EngineError::Internal(format!("exec: {e}")))?;
        let mut session = match started {
            Ok(s) => s,
            Err(source) => {
                // Docker's codes for a command that cannot run: 126/127, kept for inspect.
                let text = source.to_string();
                // The container exited meanwhile (the shim says so, or is gone): Docker's
                // conflict, not a command that cannot run. Ended as Docker's failed start.
                let conflict = match &source {
                    berth_runtime::RuntimeError::Conflict(m) => Some(m.clone()),
                    e if e.kind() == berth_runtime::ErrorKind::Unavailable
                        && !self.runtime.alive(&bundle_then) =>
                    {
                        Some(format!("container {} is not running", c.id))
                    }
                    _ => None,
                };
                if let Some(message) = conflict {
                    exec.exited(126);
                    return Err(EngineError::Conflict(message));
                }
                let code = if text.contains("not found") || text.contains("no such file") {
                    127
                } else {
                    126
                };
                exec.exited(code);
                // Docker's words: the user is resolved by the daemon, the rest by the runtime.
                let message = match &source {
                    berth_runtime::RuntimeError::UserNotFound(_)
                    | berth_runtime::RuntimeError::GroupNotFound(_) => text,
                    _ => format!(
                        "OCI runtime exec failed: exec failed: unable to start container \
                         process: {text}: unknown"
                    ),
                };
                return Err(EngineError::Start { message, source });
            }
        };
        let master = session.master.take();
        // Detached with a terminal, or attached to none of its output: nobody reads it. A
        // shim of protocol 4 discards a detached one's output; berthd does the rest (and
        // for an older shim), until the process exits.
        let unread = detach || !(cfg.attach_stdout || cfg.attach_stderr);
        if unread && !session.discarding {
            if let Some(copy) = master.as_ref().and_then(|m| m.try_clone().ok()) {
                tokio::spawn(discard(copy, exec.done.subscribe()));
            }
        }
        self.emit_container(
            &c,
            &format!(
                "exec_start: {}",
                cfg.cmd.clone().unwrap_or_default().join(" ")
            ),
            &[("execID", exec.id.clone())],
        );
        {
            let mut s = exec.state();
            s.running = true;
            s.pid = session.pid as i64;
            if let Some(m) = &master {
                if let Some([h, w]) = console_size.filter(|[h, w]| *h > 0 && *w > 0) {
                    let clamp = |n: u64| n.min(u16::MAX as u64) as u16;
                    let _ = berth_runtime::set_window_size(m.as_fd(), clamp(h), clamp(w));
                }
                s.master = m.try_clone().ok();
            }
        }
        // The exit, whoever listens: the shim answers on the exec's connection. Awaited,
        // not waited for on a blocking thread: a process may run for days, and as many
        // such execs as the blocking pool has threads would leave none for anything else.
        let waiter = exec.clone();
        let engine = self.clone();
        let (stream, rest) = session.into_parts();
        tokio::spawn(async move {
            // A process that did not end before its container's init is killed with it.
            let code = exec_exit(stream, rest)
                .await
                .map(|s| s.exit_code as i64)
                .unwrap_or(137);
            waiter.exited(code);
            engine.emit_container(
                &c,
                "exec_die",
                &[
                    ("execID", waiter.id.clone()),
                    ("exitCode", code.to_string()),
                ],
            );
        });
        let exited = exec.done.subscribe();
        let io = if let Some(master) = master {
            let stdin = if cfg.attach_stdin && !detach {
                master.try_clone().ok()
            } else {
                None
            };
            let attached = (cfg.attach_stdout || cfg.attach_stderr) && !detach;
            ExecIo {
                stdin,
                stdout: attached.then_some(master),
                stderr: None,
                tty: true,
                exited,
            }
        } else {
            let [stdin, stdout, stderr] = ours;
            ExecIo {
                stdin,
                stdout,
                stderr,
                tty: false,
                exited,
            }
        };
        Ok(io)
    }

    /// `GET /exec/{id}/json`.
    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspect> {
        let exec = self.exec_get(id)?;
        let cfg = &exec.config;
        let s = exec.state();
        let mut args = cfg.cmd.clone().unwrap_or_default();
        let entrypoint = if args.is_empty() {
            String::new()
        } else {
            args.remove(0)
        };
        Ok(ExecInspect {
            can_remove: false,
            container_id: exec.container_id.clone(),
            detach_keys: cfg.detach_keys.clone(),
            exit_code: s.exit_code,
            id: exec.id.clone(),
            open_stderr: cfg.attach_stderr,
            open_stdin: cfg.attach_stdin,
            open_stdout: cfg.attach_stdout,
            process_config: ExecProcessConfig {
                arguments: args,
                entrypoint,
                privileged: cfg.privileged,
                tty: cfg.tty,
                user: cfg.user.clone(),
            },
            running: s.running,
            pid: s.pid,
        })
    }

    /// `POST /exec/{id}/resize`: the exec's terminal.
    pub fn exec_resize(&self, id: &str, height: u16, width: u16) -> Result<()> {
        let exec = self.exec_get(id)?;
        let s = exec.state();
        if !exec.config.tty {
            return Err(EngineError::Invalid(format!(
                "exec {id} has no terminal to resize (it was not created with -t)"
            )));
        }
        let Some(master) = &s.master else {
            return Err(EngineError::Conflict(format!("exec {id} is not running")));
        };
        berth_runtime::set_window_size(master.as_fd(), height, width)
            .map_err(|e| EngineError::Internal(format!("resize exec {id}: {e}")))
    }

    /// The ids of a container's execs that have not ended (`ExecIDs` of inspect).
    pub fn exec_ids(&self, container_id: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .execs
            .lock()
            .expect("execs lock")
            .values()
            .filter(|e| e.container_id == container_id && e.live())
            .map(|e| e.id.clone())
            .collect();
        ids.sort();
        ids
    }

    /// Forgets a container's execs (at its removal).
    pub(crate) fn forget_execs(&self, container_id: &str) {
        self.execs
            .lock()
            .expect("execs lock")
            .retain(|_, e| e.container_id != container_id);
    }

    /// Forgets the execs of a container's previous run (at its start or exit): they ended.
    pub(crate) fn end_execs(&self, container_id: &str) {
        let list: Vec<Arc<Exec>> = self
            .execs
            .lock()
            .expect("execs lock")
            .values()
            .filter(|e| e.container_id == container_id)
            .cloned()
            .collect();
        for e in list {
            let started = e.state().started;
            if started && e.live() {
                e.exited(137);
            }
        }
    }

    /// After a berthd restart: the records of a running container's execs, from its shim;
    /// a task per exec still running awaits its exit (the shim's `exec_wait`), as the
    /// berthd that started it did.
    pub(crate) fn restore_execs(self: &Arc<Self>, c: &Arc<Container>) {
        let bundle = self.cfg.bundle_dir(&c.id);
        let records = match self.runtime.execs(&bundle) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(container = %c.id, "exec records: {e}");
                return;
            }
        };
        let mut execs = self.execs.lock().expect("execs lock");
        let mut running = Vec::new();
        for r in records {
            let req = r.request;
            let exec = Exec::new(
                req.id.clone(),
                c.id.clone(),
                ExecCreateRequest {
                    cmd: Some(req.args.clone()),
                    env: (!req.env.is_empty()).then(|| req.env.clone()),
                    user: req.user.clone(),
                    working_dir: req.cwd.clone(),
                    tty: req.tty,
                    privileged: req.privileged,
                    ..Default::default()
                },
            );
            {
                let mut s = exec.state();
                s.started = true;
                s.pid = r.pid as i64;
                s.running = r.exit_code.is_none();
                s.exit_code = r.exit_code.map(i64::from);
            }
            if r.exit_code.is_some() {
                exec.done.send_replace(true);
            } else {
                running.push(exec.clone());
            }
            execs.insert(req.id, exec);
        }
        drop(execs);
        for exec in running {
            let engine = self.clone();
            let c = c.clone();
            let bundle = bundle.clone();
            tokio::spawn(async move {
                match engine.runtime.exec_wait(&bundle, &exec.id).await {
                    Ok(code) => {
                        exec.exited(code);
                        engine.emit_container(
                            &c,
                            "exec_die",
                            &[("execID", exec.id.clone()), ("exitCode", code.to_string())],
                        );
                    }
                    // The container ended first: its exit ends its execs (`end_execs`).
                    Err(e) => tracing::debug!(exec = %exec.id, "exec wait: {e}"),
                }
            });
        }
    }
}
