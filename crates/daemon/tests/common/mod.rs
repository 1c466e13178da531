//! What the daemon's integration tests share: a runtime fake and berthd's state over a
//! temporary root that holds a one-file `busybox:latest`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_daemon::AppState;
use berth_engine::{Engine, EngineConfig, ExitInfo, Runtime};
use berth_runtime::RuntimeError;

/// Containers "run" by exiting at once; `sh -c 'exit N'` exits with N.
///
/// As the shim does, a start that holds its output for a client attaching (`hold_output`)
/// reports no exit before that client attached: otherwise an auto-remove could take the
/// bundle, and the output with it, before the attach read it.
#[derive(Default)]
pub struct FakeRuntime {
    started: Mutex<Vec<String>>,
    held: Mutex<HashMap<PathBuf, Arc<tokio::sync::Notify>>>,
}

impl Runtime for FakeRuntime {
    fn start(
        &self,
        spec: &berth_runtime::ContainerSpec,
        _netns: Option<std::os::fd::OwnedFd>,
    ) -> Result<i64, RuntimeError> {
        if spec.process.args[0] == "nosuch" {
            return Err(RuntimeError::Exec(
                "exec: \"nosuch\": executable file not found in $PATH".into(),
            ));
        }
        if spec.process.args[0] == "breaks" {
            return Err(RuntimeError::Start("cgroup: boom".into()));
        }
        self.started
            .lock()
            .unwrap()
            .push(spec.process.args.join(" "));
        let code = spec
            .process
            .args
            .last()
            .and_then(|a| a.strip_prefix("exit "))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        std::fs::write(spec.bundle.join("code"), format!("{code}")).unwrap();
        if spec.stdio.hold_output {
            self.held
                .lock()
                .unwrap()
                .insert(spec.bundle.clone(), Arc::default());
        }
        // One line of output, in the json-file format the shim writes.
        let line = serde_json::json!({"log": format!("{}\n", spec.process.args.join(" ")),
            "stream": "stdout", "time": "2026-11-23T00:00:00.000000001Z"});
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log.path)
            .unwrap();
        writeln!(log, "{line}").unwrap();
        // What an attach gets: the same line, framed as the shim frames it.
        std::fs::write(
            spec.bundle.join("output"),
            format!("{}\n", spec.process.args.join(" ")),
        )
        .unwrap();
        Ok(4242)
    }
    fn attach(
        &self,
        bundle: &Path,
        _stdin: bool,
        stdout: bool,
        _stderr: bool,
    ) -> Result<berth_engine::Attachment, RuntimeError> {
        use std::io::Write;
        let (mut ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let output = std::fs::read(bundle.join("output")).unwrap_or_default();
        // The first attach lets the exit be reported (a permit if no one waits yet).
        if let Some(held) = self.held.lock().unwrap().remove(bundle) {
            held.notify_one();
        }
        if stdout {
            ours.write_all(&berth_api::stream::frame(
                berth_api::stream::StreamKind::Stdout,
                &output,
            ))
            .unwrap();
        }
        Ok(berth_engine::Attachment {
            stream: theirs,
            rest: Vec::new(),
            stdin: None,
            tty: false,
        })
    }
    fn wait(&self, bundle: &Path) -> berth_engine::BoxFuture<Option<ExitInfo>> {
        let code = std::fs::read_to_string(bundle.join("code")).ok();
        // `sh -c forever` runs until the test ends.
        let output = std::fs::read_to_string(bundle.join("output")).unwrap_or_default();
        if output.trim_end().ends_with("forever") {
            return Box::pin(std::future::pending());
        }
        let held = self.held.lock().unwrap().get(bundle).cloned();
        Box::pin(async move {
            if let Some(held) = held {
                // As the shim: no longer than its limit for a client that never attaches.
                let _ =
                    tokio::time::timeout(std::time::Duration::from_secs(10), held.notified()).await;
            }
            Some(ExitInfo {
                exit_code: code?.parse().ok()?,
                oom_killed: false,
                finished_at: None,
            })
        })
    }
    fn signal(&self, _: &Path, _: i32) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn pause(&self, _: &Path) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn resume(&self, _: &Path) -> Result<(), RuntimeError> {
        Ok(())
    }
    fn pids(&self, _: &Path) -> Result<Vec<i32>, RuntimeError> {
        Ok(vec![])
    }
    fn alive(&self, _: &Path) -> bool {
        false
    }
    fn exit_status(&self, _: &Path) -> Option<ExitInfo> {
        None
    }
    /// `racing`: the shim's answer when the container's init exited meanwhile; anything
    /// else: a shim that cannot be reached (and is not alive).
    fn exec(
        &self,
        bundle: &Path,
        req: &berth_runtime::ExecRequest,
        _: Option<[std::os::fd::BorrowedFd<'_>; 3]>,
    ) -> Result<berth_runtime::ExecSession, RuntimeError> {
        let id = bundle.file_name().unwrap().to_string_lossy();
        if req.args[0] == "racing" {
            return Err(RuntimeError::Conflict(format!(
                "container {id} is not running"
            )));
        }
        Err(RuntimeError::Shim(format!(
            "container {id}: connection refused"
        )))
    }
}

/// berthd's state over `dir` (`dir/root`, `dir/run`) with a [`FakeRuntime`]: an existing
/// root is restored, a new one gets a busybox image (labelled `from=image`).
pub async fn state_in(dir: &Path) -> AppState {
    let images = Arc::new(berth_image::ImageStore::open(dir.join("root/image")).unwrap());
    // A one-file image is enough: the fake runtime never looks inside.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    tar.append_data(&mut h, "hello", &b"hi"[..]).unwrap();
    let bytes = tar.into_inner().unwrap();
    let opts = berth_image::ImportOptions {
        reference: Some("busybox:latest".into()),
        changes: vec![r#"LABEL from=image"#.into()],
        ..Default::default()
    };
    if images.resolve("busybox").is_err() {
        images.import(&mut &bytes[..], &opts).unwrap();
    }
    let cfg = EngineConfig::new(dir.join("root"), dir.join("run"));
    let engine = Engine::open(cfg, images, Arc::new(FakeRuntime::default()))
        .await
        .unwrap();
    AppState {
        contexts: Arc::new(berth_build::ContextCache::new(&dir.join("root"))),
        engine,
        shim_binary: "/nonexistent/berth-shim".into(),
        detach_keys: berth_api::stream::DEFAULT_DETACH_KEYS.to_vec(),
        registry: Arc::new(berth_registry::Registry::new(Default::default())),
    }
}
