//! berth-runtime: Linux isolation and the per-container shim (`berth-shim`).
//!
//! Owns: turning a [`ContainerSpec`] into a running, isolated container with Docker's defaults
//! (capabilities, seccomp, masked paths, device rules, mounts, namespaces, cgroup limits), the
//! shim process that holds it (json-file log, reaping, exit record, pause/resume/signal), and
//! the shim socket protocol ([`shim`]). Does not own: images, networks, volumes, container
//! records — the engine prepares those and passes paths.
//!
//! Flow: the engine creates `<bundle>` and calls [`start`], which writes `<bundle>/spec.json`
//! and hands the bundle to a warm shim made ahead ([`warm_up`]) or runs `berth-shim start
//! <bundle>`. The shim forks a detached child that mounts the rootfs, resolves the user inside
//! the image, creates the container with berth's own runtime (the `linux` module: clone3 into
//! the namespaces, mounts, pivot_root, capabilities, seccomp; an implementation detail, never
//! in this API) and reports the init pid (or the shim is killed, with the container it was
//! creating, when no report comes within [`SHIM_START_TIMEOUT`]). `berth-shim-libcontainer`
//! does the same through youki's libcontainer from an OCI `config.json`: the reference the
//! differential tests compare against (`berthd --runtime libcontainer`). [`start`] returns [`Started`]; the engine
//! then talks to the shim with [`shim::ShimClient`] (or its own async client speaking the
//! documented wire format). The shim outlives berthd: after a daemon restart, reconnect with
//! `ShimClient::connect`, or read [`shim::read_exit`] if the container ended meanwhile.
//!
//! Files in `<bundle>` (`/run/berth/containers/<id>`):
//! - `spec.json`: the [`ContainerSpec`] (enums in serde's external form: `"seccomp": "default"`
//!   | `"unconfined"` | `{"profile": "<docker json>"}`; `"network": "none"` | `"host"` |
//!   `{"path": "/run/berth/netns/<id>"}`),
//! - with the libcontainer backend only: `config.json`, the OCI spec derived from it, and
//!   `lc/`, libcontainer's state,
//! - `rootfs/`: the root filesystem, mounted only in the shim's own mount namespace: an empty
//!   directory on the host (root reaches the mounted one through
//!   `/proc/<shim pid>/root<bundle>/rootfs`), gone when the shim exits or dies,
//! - `pid`: the init's host pid; `shim.sock`: the shim protocol ([`shim`]); `shim.log`: the
//!   shim's own errors; `exit.json`: the [`ExitStatus`], written before `shim.sock` goes away.
//!
//! For `docker cp`, [`ContainerFs`] opens a container's filesystem (a running one's through its
//! init, a stopped one's mounted in a private mount namespace) and [`openat2`] resolves paths
//! below it (module `fsview`).
//!
//! No `shim.sock` answer and no `exit.json` means the shim died (killed with SIGKILL, host
//! reboot): reconcile such a container as dead.
//!
//! Performance notes: Docker's default seccomp filter is compiled once per capability set and
//! cached as BPF in `/run/berth/seccomp` (`BERTH_SECCOMP_CACHE` overrides;
//! `BERTH_SECCOMP_LIBCONTAINER=1` in the shim's environment makes libcontainer compile it per
//! container instead, the reference path); cgroups are removed with plain rmdirs at exit; a
//! warm shim is made ahead of the next start ([`warm_up`]; the engine makes the network
//! namespaces ahead, berth-network, and hands one to [`start_in`]).
//! `BERTH_SHIM_TIMING=1` makes the shim (and the init) log phase timings to `shim.log`.
//!
//! [`sockredirect`] sends the host's own TCP connects to published ports straight to the
//! container (cgroup connect eBPF programs, raw `bpf(2)`), so they skip the NAT path.
//!
//! All of berth's `unsafe` code lives in this crate; each block carries a `// SAFETY:` note.

pub mod cgroups;
pub mod defaults;
mod error;
pub mod fsview;
mod linux;
mod logfile;
mod oci;
mod rootfs;
mod seccomp_bpf;
pub mod shim;
pub mod sockredirect;
mod spec;
mod user;
mod warm;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use error::{ErrorKind, RuntimeError};
pub use fsview::{openat2, ContainerFs, Resolve};
pub use shim::{
    read_exit, shim_alive, Attachment, ExecRecord, ExecRequest, ExecSession, ExitStatus,
    ShimClient, ShimRequest, ShimResponse, ShimState, PROTOCOL_VERSION,
};
pub use spec::{
    Backend, ContainerMount, ContainerSpec, DeviceNode, DeviceRule, LogConfig, Mount, MountKind,
    NamespaceMode, Namespaces, Network, Process, Propagation, ReadOnlyDepth, Resources, Rlimit,
    Seccomp, Shm, StdioSpec, TmpfsOptions, DEFAULT_SHM_SIZE,
};
pub use warm::{cool_down, warm_pids, warm_up};

/// Sets the size of the terminal whose master (or slave) is `fd` (TIOCSWINSZ).
pub fn set_window_size(
    fd: std::os::fd::BorrowedFd<'_>,
    height: u16,
    width: u16,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ws = libc::winsize {
        ws_row: height,
        ws_col: width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one `winsize` from the pointer, which is valid for the call;
    // the descriptor is borrowed, so it stays open meanwhile.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the peer of the socket `fd` has closed it entirely (POLLHUP), as opposed to only
/// having shut down its writing side (a client's half-close).
pub fn peer_hung_up(fd: std::os::fd::BorrowedFd<'_>) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
        && fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR))
}

/// How many bytes written to the stream socket `fd` its peer has not read yet (SIOCOUTQ: for
/// a unix socket, what still sits in the peer's receive queue).
pub fn unread_by_peer(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut n: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int through the pointer, which is valid for the
    // call; the descriptor is borrowed, so it stays open meanwhile.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCOUTQ, &mut n) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(n.max(0) as usize)
}

/// Whether `name` in the directory `dir` is the root of a mount (a bind-mounted file or
/// directory, a volume, a kernel filesystem), not following a final symlink. Unlinking one
/// from outside the container's mount namespace would succeed and silently detach the mount
/// in the container, so callers that replace entries refuse these (EBUSY), as Docker's
/// extraction inside the container's namespace does.
pub fn is_mount_root(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &std::ffi::OsStr,
) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let name = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: `libc::statx` is plain integers: all zeroes is a valid value.
    let mut st: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: statx only writes one `statx` struct, which lives across the call; `name` is
    // a NUL-terminated string that outlives it; the directory descriptor is borrowed.
    let rc = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW | libc::AT_NO_AUTOMOUNT,
            0,
            &mut st,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let flag = libc::STATX_ATTR_MOUNT_ROOT as u64;
    if st.stx_attributes_mask & flag == 0 {
        // Linux before 5.8: refuse rather than detach a mount unknowingly.
        return Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "this kernel does not tell mount points (statx's STATX_ATTR_MOUNT_ROOT needs Linux 5.8)",
        ));
    }
    Ok(st.stx_attributes & flag != 0)
}

/// Puts `fd` in non-blocking mode (for a stdin descriptor an async writer drives).
pub fn set_nonblocking(fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    use std::os::fd::AsRawFd;
    let flags = fcntl(fd.as_raw_fd(), FcntlArg::F_GETFL)?;
    fcntl(
        fd.as_raw_fd(),
        FcntlArg::F_SETFL(OFlag::from_bits_retain(flags) | OFlag::O_NONBLOCK),
    )?;
    Ok(())
}

/// The running container, as reported by its shim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Started {
    /// Host pid of the container's init process.
    pub pid: i32,
}

/// Starts the container in a network namespace of its own (an empty one the init makes;
/// `--network host` joins the host's): [`start_in`] without a namespace given.
pub fn start(spec: &ContainerSpec, shim_binary: &Path) -> Result<Started, RuntimeError> {
    start_in(spec, shim_binary, None)
}

/// Starts the container: writes `<bundle>/spec.json` (in place) and hands the bundle to a warm
/// shim of berth's own runtime ([`warm_up`]), or else runs `<shim_binary> start <bundle>`;
/// returns once the container runs (or failed to). `netns`, when given for a spec of
/// [`Network::None`], is the network namespace the container joins (the engine's, made
/// ahead and wired to a bridge): passed to a warm shim by SCM_RIGHTS, or to a cold one as
/// this process's `/proc/<pid>/fd/<n>`, held open until the shim has reported.
///
/// Blocking; call it from a plain thread (`spawn_blocking`), never expecting it to fork from a
/// tokio worker — it only spawns the shim binary (fork+exec), which is safe anywhere.
pub fn start_in(
    spec: &ContainerSpec,
    shim_binary: &Path,
    netns: Option<std::os::fd::OwnedFd>,
) -> Result<Started, RuntimeError> {
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
    let mut spec = prepare(spec)?;
    let netns = netns.filter(|_| spec.network == Network::None);
    let shim_binary = match spec.backend {
        Backend::Berth => shim_binary.to_path_buf(),
        Backend::Libcontainer => shim_binary.with_file_name("berth-shim-libcontainer"),
    };
    let shim_binary = shim_binary.as_path();
    let spec_path = spec.bundle.join("spec.json");
    // Compact, written in place (no shim of this bundle runs, checked above; the engine's
    // spare bundles come with the file, so no inode is made) and not forced to disk: the
    // spec is read once, by the shim we start now.
    let write_spec = |spec: &ContainerSpec| {
        let text = serde_json::to_vec(spec).expect("spec serialises");
        write_in_place(&spec_path, &text).map_err(|e| RuntimeError::io(&spec_path, e))
    };
    write_spec(&spec)?;
    let timeout = start_timeout();
    let deadline = Instant::now() + timeout;
    if spec.backend == Backend::Berth {
        if let Some(warm) = warm::hand_over(shim_binary, &spec.bundle, netns.as_ref()) {
            return start_warm(&spec, shim_binary, warm, timeout, deadline);
        }
    }
    // A cold shim opens the namespace by its path in this process (the descriptor stays
    // open here until the shim has reported).
    if let Some(ns) = &netns {
        use std::os::fd::AsRawFd;
        spec.network =
            Network::Path(format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd()).into());
        write_spec(&spec)?;
    }
    let spec = &spec;
    let mut child = Command::new(shim_binary)
        .arg("start")
        .arg(&spec.bundle)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RuntimeError::io(shim_binary, e))?;
    let lines = read_lines(child.stdout.take().expect("piped stdout"));
    let errors = read_all(child.stderr.take().expect("piped stderr"));
    // The shim prints `{"shim_pid":N}` (its detached child) first, then the report.
    let mut shim_pid = None;
    let report = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => match serde_json::from_str::<shim::server::Report>(&line) {
                Ok(r) if r.pid.is_some() || r.error.is_some() => break Some(r),
                Ok(r) => shim_pid = r.shim_pid.or(shim_pid),
                Err(_) => {}
            },
            Err(mpsc::RecvTimeoutError::Disconnected) => break None,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // A line that arrived just now still counts for finding the child to kill.
                for line in lines.try_iter() {
                    if let Ok(r) = serde_json::from_str::<shim::server::Report>(&line) {
                        shim_pid = r.shim_pid.or(shim_pid);
                    }
                }
                abort_start(spec, Some(&mut child), shim_pid);
                return Err(RuntimeError::Shim(format!(
                    "{} did not report within {timeout:?}; killed it and the container \
                     it was creating (see {})",
                    shim_binary.display(),
                    spec.bundle.join("shim.log").display()
                )));
            }
        }
    };
    // The shim exits right after its report (or at once without one): its stdout closes
    // then, and the reap below finds it gone at once. Never wait forever.
    let reap_deadline = deadline.max(Instant::now() + Duration::from_secs(1));
    while lines
        .recv_timeout(reap_deadline.saturating_duration_since(Instant::now()))
        .is_ok()
    {}
    let status = wait_for_exit(&mut child, reap_deadline);
    match report {
        Some(shim::server::Report { pid: Some(pid), .. }) => Ok(Started { pid }),
        Some(shim::server::Report {
            error: Some(message),
            kind,
            ..
        }) => Err(RuntimeError::from_report(message, kind.as_deref())),
        _ => {
            let stderr = errors
                .recv_timeout(Duration::from_secs(1))
                .unwrap_or_default();
            Err(RuntimeError::Shim(format!(
                "no report from {} ({}): {}",
                shim_binary.display(),
                status.map_or_else(|| "still running, killed".to_string(), |s| s.to_string()),
                String::from_utf8_lossy(&stderr).trim()
            )))
        }
    }
}

/// The rest of [`start`] with a warm shim ([`warm`]), which has the bundle now.
fn start_warm(
    spec: &ContainerSpec,
    shim_binary: &Path,
    mut warm: warm::Warm,
    timeout: Duration,
    deadline: Instant,
) -> Result<Started, RuntimeError> {
    let line = warm.report(deadline);
    let failed = |what: String| {
        abort_start(spec, None, Some(warm.pid));
        Err(RuntimeError::Shim(format!(
            "{} (warm, pid {}) {what}; killed it and the container it was creating (see {})",
            shim_binary.display(),
            warm.pid,
            spec.bundle.join("shim.log").display()
        )))
    };
    match line {
        Ok(Some(line)) => match serde_json::from_str::<shim::server::Report>(&line) {
            Ok(shim::server::Report { pid: Some(pid), .. }) => Ok(Started { pid }),
            Ok(shim::server::Report {
                error: Some(message),
                kind,
                ..
            }) => Err(RuntimeError::from_report(message, kind.as_deref())),
            _ => failed(format!("reported {line:?}")),
        },
        // EOF: the shim is gone (only it held the pipe; its init dies with it), and its pid
        // may name another process already: clean up without signalling it.
        Ok(None) => {
            abort_start(spec, None, None);
            Err(RuntimeError::Shim(format!(
                "{} (warm, pid {}) exited before reporting (see {})",
                shim_binary.display(),
                warm.pid,
                spec.bundle.join("shim.log").display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
            failed(format!("did not report within {timeout:?}"))
        }
        Err(e) => failed(format!("could not be read: {e}")),
    }
}

/// Marks every descriptor above stderr close-on-exec: for berthd at start-up, so that what
/// launched it (a shell's pipes, a CI step's output) is not inherited by the shims it starts,
/// which live as long as their containers and would hold those pipes open.
pub fn close_inherited_descriptors() -> std::io::Result<()> {
    linux::sys::cloexec_from(3)
}

/// The spec as the shim needs it: for berth's own runtime, with the compiled seccomp program
/// ([`ContainerSpec::seccomp_filter`]). [`start`] calls it; callers that run `berth-shim start`
/// themselves (tests) must too.
pub fn prepare(spec: &ContainerSpec) -> Result<ContainerSpec, RuntimeError> {
    let mut spec = spec.clone();
    if spec.backend == Backend::Berth {
        spec.seccomp_filter = seccomp_filter(&spec)?;
    }
    Ok(spec)
}

/// The compiled seccomp program the container's init loads, compiled here (in the caller, at
/// most once per profile and capability set) so that the shim needs no libseccomp.
fn seccomp_filter(spec: &ContainerSpec) -> Result<Option<std::path::PathBuf>, RuntimeError> {
    if spec.privileged || spec.seccomp == Seccomp::Unconfined {
        return Ok(None);
    }
    let caps = defaults::resolve_capabilities(&spec.cap_add, &spec.cap_drop, spec.privileged)?;
    let setting = serde_json::to_string(&spec.seccomp).expect("seccomp setting serialises");
    let memo_key = format!("{}|{}", caps.join(","), setting);
    seccomp_bpf::filter_file(
        &memo_key,
        || {
            oci::seccomp_section(spec, &caps)
                .map(|s| s.expect("a filter applies: neither privileged nor unconfined"))
        },
        &spec.bundle,
    )
    .map(Some)
}

/// How long [`start`] waits for the shim's report by default.
pub const SHIM_START_TIMEOUT: Duration = Duration::from_secs(60);

/// Environment variable read by [`start`]: its deadline in milliseconds instead of
/// [`SHIM_START_TIMEOUT`] (for tests).
pub const SHIM_START_TIMEOUT_ENV: &str = "BERTH_SHIM_START_TIMEOUT_MS";

fn start_timeout() -> Duration {
    std::env::var(SHIM_START_TIMEOUT_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map_or(SHIM_START_TIMEOUT, Duration::from_millis)
}

/// The lines of `out`, sent as they arrive; the channel closes at EOF.
fn read_lines(out: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Up to 64 KiB of `out`, sent at EOF.
fn read_all(out: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.take(64 * 1024).read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

/// Reaps `child`, killing it at `deadline`; `None` when it had to be killed.
fn wait_for_exit(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            // Reached after the shim's stdout closed: it is exiting, so poll finely.
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_micros(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Undoes a start that ran out of time, leaving nothing running: the shim's detached child
/// and its process group (libcontainer's helper processes), the shim itself, every process
/// already in the container's cgroup (the container init, which has its own session), then
/// the cgroups, libcontainer's state, the socket, the pid file and the rootfs mount.
fn abort_start(spec: &ContainerSpec, child: Option<&mut Child>, shim_pid: Option<i32>) {
    if let Some(pid) = shim_pid.filter(|p| *p > 1) {
        // SAFETY: kill has no memory-safety preconditions. The detached child made itself a
        // process group leader (setsid) first thing; until then it is a single process.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    if let Some(child) = child {
        let _ = child.kill();
        let _ = child.wait();
    }
    if let Some(cgroup) = shim::server::existing_cgroup(spec) {
        cgroup.kill_all(Duration::from_secs(5));
        cgroup.remove();
    }
    let _ = std::fs::remove_dir_all(spec.bundle.join("lc").join(&spec.id));
    let _ = std::fs::remove_file(shim::socket_path(&spec.bundle));
    let _ = std::fs::remove_file(spec.bundle.join("pid"));
    // A no-op for shims that mount it in their own mount namespace; kept for any other.
    let _ = rootfs::unmount_rootfs(&spec.bundle.join("rootfs"));
}

/// Entry point of the `berth-shim` binary (not for library users): berth's own runtime only,
/// so that the binary links neither libcontainer nor libseccomp.
#[doc(hidden)]
pub fn shim_main(args: &[String]) -> i32 {
    shim::server::main(args, None)
}

/// Entry point of the `berth-shim-libcontainer` binary (not for library users): both
/// backends, libcontainer as the reference.
#[doc(hidden)]
pub fn shim_main_libcontainer(args: &[String]) -> i32 {
    let _ = tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::ERROR)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .try_init();
    shim::server::main(args, Some(shim::reference_create()))
}

/// Writes `data` to `path` atomically: a temporary file beside it, fsync, rename.
/// Replaces `path` atomically (temp file, rename) without forcing it to disk: for files in
/// the bundle that only live processes read.
pub(crate) fn replace(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// Truncates and writes `path` (0600, never through a symlink): for files no reader can see
/// half-written.
fn write_in_place(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?
        .write_all(data)
}

pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
