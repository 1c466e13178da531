//! The boundary between the engine and process isolation.
//!
//! [`ShimRuntime`] is the real thing: one `berth-shim` per container, driven through
//! `berth-runtime`. Tests of the engine alone can use another implementation.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use berth_runtime::{ContainerSpec, RuntimeError};

/// How a container's init process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExitInfo {
    /// The exit code, or 128 + signal.
    pub exit_code: i64,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// When the shim saw it exit (RFC 3339), if known.
    pub finished_at: Option<String>,
}

/// A boxed future, so that the trait stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What the engine needs from a container runtime. Blocking methods are called from
/// `spawn_blocking`; none of them may be called with an engine lock held.
pub trait Runtime: Send + Sync + 'static {
    /// Creates and starts the container; returns the init pid. The error's text is the
    /// runtime's, in the OCI wording the docker CLI maps to exit codes; its kind decides the
    /// HTTP status (daemon/src/error.rs). `netns`, when given, is the network namespace the
    /// container joins (made and wired by the engine, crate::network).
    fn start(
        &self,
        spec: &ContainerSpec,
        netns: Option<std::os::fd::OwnedFd>,
    ) -> Result<i64, RuntimeError>;
    /// Resolves when the container has exited and its shim has cleaned up; `None` when the
    /// shim went away without leaving an exit status.
    fn wait(&self, bundle: &Path) -> BoxFuture<Option<ExitInfo>>;
    /// Sends a signal to the init process.
    fn signal(&self, bundle: &Path, signal: i32) -> Result<(), RuntimeError>;
    /// Freezes the container.
    fn pause(&self, bundle: &Path) -> Result<(), RuntimeError>;
    /// Thaws the container.
    fn resume(&self, bundle: &Path) -> Result<(), RuntimeError>;
    /// Host pids of every process in the container.
    fn pids(&self, bundle: &Path) -> Result<Vec<i32>, RuntimeError>;
    /// Whether a shim serves this bundle.
    fn alive(&self, bundle: &Path) -> bool;
    /// The exit status a shim left behind, if any.
    fn exit_status(&self, bundle: &Path) -> Option<ExitInfo>;
    /// Gets the next start ready ahead of need (berth's own runtime: a warm shim). Blocking,
    /// called off the latency path; failures only cost the next start its head start.
    fn prewarm(&self) {}
    /// Streams the main process's output from now on, with its stdin when asked and open.
    fn attach(
        &self,
        bundle: &Path,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<berth_runtime::Attachment, RuntimeError> {
        let _ = (bundle, stdin, stdout, stderr);
        Err(RuntimeError::Shim("this runtime cannot attach".into()))
    }
    /// Sets the size of the main process's terminal.
    fn resize(&self, bundle: &Path, height: u16, width: u16) -> Result<(), RuntimeError> {
        let _ = (bundle, height, width);
        Err(RuntimeError::Shim("this runtime cannot resize".into()))
    }
    /// Lets go of the main process's stdin (its EOF once no client holds it).
    fn close_stdin(&self, bundle: &Path) -> Result<(), RuntimeError> {
        let _ = bundle;
        Err(RuntimeError::Shim("this runtime cannot close stdin".into()))
    }
    /// Starts a process in the running container (stdio: stdin, stdout, stderr without a
    /// terminal); returns once it runs. Blocking.
    fn exec(
        &self,
        bundle: &Path,
        req: &berth_runtime::ExecRequest,
        stdio: Option<[std::os::fd::BorrowedFd<'_>; 3]>,
    ) -> Result<berth_runtime::ExecSession, RuntimeError> {
        let _ = (bundle, req, stdio);
        Err(RuntimeError::Shim("this runtime cannot exec".into()))
    }
    /// The running container's filesystem as its init sees it (`docker cp`). Blocking.
    fn filesystem(&self, bundle: &Path) -> Result<berth_runtime::ContainerFs, RuntimeError> {
        let _ = bundle;
        Err(RuntimeError::Shim(
            "this runtime cannot open a container's filesystem".into(),
        ))
    }
    /// The exec'd processes the container's shim keeps.
    fn execs(&self, bundle: &Path) -> Result<Vec<berth_runtime::ExecRecord>, RuntimeError> {
        let _ = bundle;
        Ok(Vec::new())
    }
    /// Resolves with the exit code of the exec `id` the container's shim keeps, once it has
    /// ended (an exec an earlier berthd started); an error when the shim does not keep it or
    /// the container ends first.
    fn exec_wait(&self, bundle: &Path, id: &str) -> BoxFuture<Result<i64, RuntimeError>> {
        let _ = (bundle, id);
        Box::pin(async {
            Err(RuntimeError::Shim(
                "this runtime cannot wait for an exec".into(),
            ))
        })
    }
    /// Writes the limits `resources` sets to the running container's cgroup
    /// ([`berth_runtime::cgroups::Cgroup::update`]). Blocking.
    fn update(
        &self,
        bundle: &Path,
        resources: &berth_runtime::Resources,
    ) -> Result<(), RuntimeError> {
        let _ = (bundle, resources);
        Err(RuntimeError::Shim(
            "this runtime cannot update a running container".into(),
        ))
    }
}

/// The real runtime: `berth-shim` processes.
#[derive(Debug, Clone)]
pub struct ShimRuntime {
    shim_binary: PathBuf,
}

impl ShimRuntime {
    /// Uses the shim binary at `shim_binary`.
    pub fn new(shim_binary: impl Into<PathBuf>) -> Self {
        ShimRuntime {
            shim_binary: shim_binary.into(),
        }
    }
}

/// A shim client's failure as the runtime's typed error, naming the container.
fn shim_error(e: std::io::Error, bundle: &Path) -> RuntimeError {
    let id = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    berth_runtime::shim::runtime_error(e, &id)
}

/// Like [`shim_error`], for an operation an older shim lacks (protocol 1: attach, resize,
/// close_stdin, execs; 2: update): such a shim (started by an older berthd, still running its
/// container) answers "unknown variant"; say what to do.
fn newer_op_error(e: std::io::Error, bundle: &Path, what: &str) -> RuntimeError {
    match shim_error(e, bundle) {
        old if old.to_string().contains("unknown variant") => {
            let id = bundle
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            // The handshake says which version it speaks (a shim without it is 1).
            let version = berth_runtime::shim::ShimClient::connect(bundle)
                .and_then(|mut c| c.hello())
                .unwrap_or(1);
            RuntimeError::Shim(format!(
                "container {id} runs under a shim of an older berth (protocol {version}), \
                 which cannot {what}; restart the container to use this berth's shim"
            ))
        }
        other => other,
    }
}

fn exit_info(e: berth_runtime::shim::ExitStatus) -> ExitInfo {
    ExitInfo {
        exit_code: e.exit_code as i64,
        oom_killed: e.oom_killed,
        finished_at: Some(e.finished_at),
    }
}

impl Runtime for ShimRuntime {
    fn prewarm(&self) {
        if let Err(e) = berth_runtime::warm_up(&self.shim_binary) {
            tracing::debug!("starting a warm shim: {e}");
        }
    }

    fn start(
        &self,
        spec: &ContainerSpec,
        netns: Option<std::os::fd::OwnedFd>,
    ) -> Result<i64, RuntimeError> {
        berth_runtime::start_in(spec, &self.shim_binary, netns).map(|s| s.pid as i64)
    }

    fn wait(&self, bundle: &Path) -> BoxFuture<Option<ExitInfo>> {
        let bundle = bundle.to_path_buf();
        Box::pin(async move {
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
            let addr = berth_runtime::shim::SocketAddress::of(&bundle);
            let stream = match &addr {
                Ok(a) => tokio::net::UnixStream::connect(a.path()).await,
                Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
            };
            if let Ok(mut stream) = stream {
                let req = serde_json::to_string(&berth_runtime::shim::ShimRequest::Wait)
                    .expect("request serialises");
                if stream
                    .write_all(format!("{req}\n").as_bytes())
                    .await
                    .is_ok()
                {
                    let mut line = String::new();
                    let mut reader = BufReader::new(stream);
                    if reader.read_line(&mut line).await.is_ok() {
                        if let Ok(berth_runtime::shim::ShimResponse::Exit(e)) =
                            serde_json::from_str(line.trim())
                        {
                            return Some(exit_info(e));
                        }
                    }
                }
            }
            // The shim is gone (or went away mid-wait): it writes exit.json before it
            // answers waiters, so that file is the record.
            berth_runtime::shim::read_exit(&bundle).map(exit_info)
        })
    }

    fn signal(&self, bundle: &Path, signal: i32) -> Result<(), RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.signal(signal))
            .map_err(|e| shim_error(e, bundle))
    }

    fn pause(&self, bundle: &Path) -> Result<(), RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.pause())
            .map_err(|e| shim_error(e, bundle))
    }

    fn resume(&self, bundle: &Path) -> Result<(), RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.resume())
            .map_err(|e| shim_error(e, bundle))
    }

    fn pids(&self, bundle: &Path) -> Result<Vec<i32>, RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.pids())
            .map_err(|e| shim_error(e, bundle))
    }

    fn alive(&self, bundle: &Path) -> bool {
        berth_runtime::shim::shim_alive(bundle)
    }

    fn exit_status(&self, bundle: &Path) -> Option<ExitInfo> {
        berth_runtime::shim::read_exit(bundle).map(exit_info)
    }

    fn attach(
        &self,
        bundle: &Path,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<berth_runtime::Attachment, RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.attach(stdin, stdout, stderr))
            .map_err(|e| newer_op_error(e, bundle, "attach"))
    }

    fn resize(&self, bundle: &Path, height: u16, width: u16) -> Result<(), RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.resize(height, width))
            .map_err(|e| newer_op_error(e, bundle, "resize a terminal"))
    }

    fn close_stdin(&self, bundle: &Path) -> Result<(), RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.close_stdin())
            .map_err(|e| newer_op_error(e, bundle, "close stdin"))
    }

    fn exec(
        &self,
        bundle: &Path,
        req: &berth_runtime::ExecRequest,
        stdio: Option<[std::os::fd::BorrowedFd<'_>; 3]>,
    ) -> Result<berth_runtime::ExecSession, RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.exec(req, stdio))
            .map_err(|e| shim_error(e, bundle))
    }

    fn filesystem(&self, bundle: &Path) -> Result<berth_runtime::ContainerFs, RuntimeError> {
        berth_runtime::ContainerFs::of_running(bundle)
    }

    fn execs(&self, bundle: &Path) -> Result<Vec<berth_runtime::ExecRecord>, RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.execs())
            .map_err(|e| newer_op_error(e, bundle, "keep exec records"))
    }

    fn exec_wait(&self, bundle: &Path, id: &str) -> BoxFuture<Result<i64, RuntimeError>> {
        let bundle = bundle.to_path_buf();
        let id = id.to_string();
        Box::pin(async move {
            use berth_runtime::shim::{ShimRequest, ShimResponse};
            use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
            let io_error = |e: std::io::Error| shim_error(e, &bundle);
            let addr = berth_runtime::shim::SocketAddress::of(&bundle).map_err(io_error)?;
            let mut stream = tokio::net::UnixStream::connect(addr.path())
                .await
                .map_err(io_error)?;
            let req = serde_json::to_string(&ShimRequest::ExecWait { id: id.clone() })
                .expect("request serialises");
            stream
                .write_all(format!("{req}\n").as_bytes())
                .await
                .map_err(io_error)?;
            let mut line = String::new();
            BufReader::new(stream)
                .read_line(&mut line)
                .await
                .map_err(io_error)?;
            match serde_json::from_str(line.trim()) {
                Ok(ShimResponse::Exit(e)) => Ok(e.exit_code as i64),
                // A shim of protocol 3 or older: its exec records, looked at every second.
                Ok(ShimResponse::Error { message, .. }) if message.contains("unknown variant") => {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        let b = bundle.clone();
                        let records = tokio::task::spawn_blocking(move || {
                            berth_runtime::shim::ShimClient::connect(&b).and_then(|mut c| c.execs())
                        })
                        .await
                        .map_err(|e| RuntimeError::Shim(e.to_string()))?
                        .map_err(io_error)?;
                        match records.iter().find(|r| r.request.id == id) {
                            Some(r) => {
                                if let Some(code) = r.exit_code {
                                    return Ok(code as i64);
                                }
                            }
                            None => {
                                return Err(RuntimeError::Shim(format!(
                                    "the shim no longer keeps exec {id}"
                                )))
                            }
                        }
                    }
                }
                Ok(ShimResponse::Error { message, kind }) => {
                    Err(RuntimeError::from_report(message, kind.as_deref()))
                }
                _ => Err(RuntimeError::Shim(format!(
                    "unexpected answer to exec_wait: {line:?}"
                ))),
            }
        })
    }

    fn update(
        &self,
        bundle: &Path,
        resources: &berth_runtime::Resources,
    ) -> Result<(), RuntimeError> {
        berth_runtime::shim::ShimClient::connect(bundle)
            .and_then(|mut c| c.update(resources))
            .map_err(|e| newer_op_error(e, bundle, "update its limits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};

    /// A shim of protocol 1 (before attach): it answers every request it does not know
    /// with serde's "unknown variant" error, as berth's version-1 shims do.
    fn old_shim(bundle: &Path, answers: usize) -> std::thread::JoinHandle<()> {
        let listener = std::os::unix::net::UnixListener::bind(bundle.join("shim.sock")).unwrap();
        std::thread::spawn(move || {
            for _ in 0..answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&conn).read_line(&mut line).unwrap();
                let op: serde_json::Value = serde_json::from_str(&line).unwrap();
                let answer = serde_json::json!({"error": {
                    "message": format!(
                        "invalid request: unknown variant `{}`, expected one of `state`, \
                         `signal`, `wait`, `pause`, `resume`, `pids`, `exec`",
                        op["op"].as_str().unwrap()
                    ),
                    "kind": "invalid_argument"}});
                writeln!(conn, "{answer}").unwrap();
            }
        })
    }

    #[test]
    fn a_shim_of_an_older_berth_is_named_and_the_remedy_given() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("c0ffee");
        std::fs::create_dir(&bundle).unwrap();
        let server = old_shim(&bundle, 5);
        let mut client = berth_runtime::shim::ShimClient::connect(&bundle).unwrap();
        assert_eq!(client.hello().unwrap(), 1);
        let rt = ShimRuntime::new("/nonexistent/berth-shim");
        let e = rt.attach(&bundle, true, true, true).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("container c0ffee runs under a shim of an older berth (protocol 1)")
                && text.contains("cannot attach")
                && text.contains("restart the container"),
            "{text}"
        );
        assert_eq!(e.kind(), berth_runtime::ErrorKind::Unavailable);
        let e = rt.resize(&bundle, 10, 10).unwrap_err();
        assert!(e.to_string().contains("cannot resize a terminal"), "{e}");
        server.join().unwrap();
    }

    /// A shim of protocol 2 or 3 keeps exec records but has no `exec_wait`: the exit of a
    /// kept exec is found in its `execs`, asked again until it shows.
    #[tokio::test]
    async fn exec_wait_on_a_shim_without_it_follows_its_exec_records() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("c0ffee");
        std::fs::create_dir(&bundle).unwrap();
        let listener = std::os::unix::net::UnixListener::bind(bundle.join("shim.sock")).unwrap();
        let server = std::thread::spawn(move || {
            for exit in [None, None, Some(9)] {
                let (mut conn, _) = listener.accept().unwrap();
                let mut line = String::new();
                BufReader::new(&conn).read_line(&mut line).unwrap();
                let op: serde_json::Value = serde_json::from_str(&line).unwrap();
                let answer = match op["op"].as_str().unwrap() {
                    "execs" => serde_json::json!({"execs": [
                        {"request": {"id": "e1", "args": ["sleep", "1"]}, "pid": 7,
                         "exit_code": exit}]}),
                    other => serde_json::json!({"error": {
                        "message": format!("invalid request: unknown variant `{other}`"),
                        "kind": "invalid_argument"}}),
                };
                writeln!(conn, "{answer}").unwrap();
            }
        });
        let rt = ShimRuntime::new("/nonexistent/berth-shim");
        let code = tokio::time::timeout(
            std::time::Duration::from_secs(20),
            rt.exec_wait(&bundle, "e1"),
        )
        .await
        .expect("answered")
        .unwrap();
        assert_eq!(code, 9);
        server.join().unwrap();
    }
}
