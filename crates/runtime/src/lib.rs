//! berth-runtime: Linux isolation and the per-container shim (`berth-shim`).
//!
//! Owns: turning a [`ContainerSpec`] into a running, isolated container with Docker's defaults
//! (capabilities, seccomp, masked paths, device rules, mounts, namespaces, cgroup limits), the
//! shim process that holds it (json-file log, reaping, exit record, pause/resume/signal), and
//! the shim socket protocol ([`shim`]). Does not own: images, networks, volumes, container
//! records — the engine prepares those and passes paths.
//!
//! Flow: the engine creates `<bundle>` and calls [`start`], which writes `<bundle>/spec.json`
//! and runs `berth-shim start <bundle>`. The shim forks a detached child that mounts the
//! rootfs, resolves the user inside the image, writes the OCI `config.json`, creates and starts
//! the container through libcontainer (an implementation detail, never in this API), and
//! reports the init pid. [`start`] returns [`Started`]; the engine then talks to the shim with
//! [`shim::ShimClient`] (or its own async client speaking the documented wire format). The
//! shim outlives berthd: after a daemon restart, reconnect with `ShimClient::connect`, or read
//! [`shim::read_exit`] if the container ended meanwhile.
//!
//! Files in `<bundle>` (`/run/berth/containers/<id>`):
//! - `spec.json`: the [`ContainerSpec`] (enums in serde's external form: `"seccomp": "default"`
//!   | `"unconfined"` | `{"profile": "<docker json>"}`; `"network": "none"` | `"host"` |
//!   `{"path": "/run/berth/netns/<id>"}`),
//! - `config.json`: the OCI spec derived from it; `lc/`: libcontainer's state,
//! - `rootfs/`: the mounted root filesystem (unmounted when the container exits),
//! - `pid`: the init's host pid; `shim.sock`: the shim protocol ([`shim`]); `shim.log`: the
//!   shim's own errors; `exit.json`: the [`ExitStatus`], written before `shim.sock` goes away.
//!
//! No `shim.sock` answer and no `exit.json` means the shim died (killed with SIGKILL, host
//! reboot): reconcile such a container as dead.
//!
//! Performance notes: Docker's default seccomp filter is compiled once per capability set and
//! cached as BPF in `/run/berth/seccomp` (`BERTH_SECCOMP_CACHE` overrides;
//! `BERTH_SECCOMP_LIBCONTAINER=1` in the shim's environment makes libcontainer compile it per
//! container instead, the reference path); cgroups are removed with plain rmdirs at exit.
//! `BERTH_SHIM_TIMING=1` makes the shim log its phase timings to `shim.log`.
//!
//! All of berth's `unsafe` code lives in this crate; each block carries a `// SAFETY:` note.

pub mod defaults;
mod error;
mod logfile;
mod oci;
mod rootfs;
mod seccomp_bpf;
pub mod shim;
mod spec;
mod user;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub use error::{ErrorKind, RuntimeError};
pub use shim::{
    read_exit, shim_alive, ExitStatus, ShimClient, ShimRequest, ShimResponse, ShimState,
};
pub use spec::{
    BindMount, ContainerSpec, LogConfig, Mount, Network, Process, Resources, Rlimit, Seccomp,
};

/// The running container, as reported by its shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Host pid of the container's init process.
    pub pid: i32,
}

/// Starts the container: writes `<bundle>/spec.json` atomically and runs
/// `<shim_binary> start <bundle>`, which returns once the container runs (or failed to).
///
/// Blocking; call it from a plain thread (`spawn_blocking`), never expecting it to fork from a
/// tokio worker — it only spawns the shim binary (fork+exec), which is safe anywhere.
pub fn start(spec: &ContainerSpec, shim_binary: &Path) -> Result<Started, RuntimeError> {
    if shim_alive(&spec.bundle) {
        return Err(RuntimeError::Conflict(format!(
            "container {} is already running",
            spec.id
        )));
    }
    // A previous run's record must not be mistaken for this one's.
    for stale in [shim::exit_path(&spec.bundle), spec.bundle.join("pid")] {
        match std::fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::io(&stale, e))
            }
            _ => {}
        }
    }
    let spec_path = spec.bundle.join("spec.json");
    // Compact and not forced to disk: the spec is read once, by the shim we start now.
    let text = serde_json::to_vec(spec).expect("spec serialises");
    replace(&spec_path, &text).map_err(|e| RuntimeError::io(&spec_path, e))?;
    let output = Command::new(shim_binary)
        .arg("start")
        .arg(&spec.bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| RuntimeError::io(shim_binary, e))?;
    let report: Option<shim::server::Report> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| serde_json::from_str(l).ok());
    match report {
        Some(shim::server::Report { pid: Some(pid), .. }) => Ok(Started { pid }),
        Some(shim::server::Report {
            error: Some(message),
            kind,
            ..
        }) => Err(RuntimeError::from_report(message, kind.as_deref())),
        _ => Err(RuntimeError::Shim(format!(
            "no report from {} ({}): {}",
            shim_binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))),
    }
}

/// Entry point of the `berth-shim` binary (not for library users).
#[doc(hidden)]
pub fn shim_main(args: &[String]) -> i32 {
    shim::server::main(args)
}

/// Writes `data` to `path` atomically: a temporary file beside it, fsync, rename.
/// Replaces `path` atomically (temp file, rename) without forcing it to disk: for files in
/// the bundle that only live processes read.
pub(crate) fn replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
