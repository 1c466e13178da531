//! The `berth-shim` process: `berth-shim start <bundle>`, or `berth-shim warm` (made ahead,
//! handed the bundle on stdin: `crate::warm`).
//!
//! The process forks at once. The child detaches (setsid, stdio to /dev/null and
//! `<bundle>/shim.log`), mounts the rootfs in a mount namespace of its own, creates and starts
//! the container (berth's own runtime, `crate::linux`; libcontainer in
//! `berth-shim-libcontainer`; the container init is the child's own child), binds `shim.sock`,
//! writes `pid`, reports `{"pid":N}` or `{"error":..,"kind":..}` on a pipe and then serves
//! until the container exits. The parent prints `{"shim_pid":N}` (the detached child, a
//! process group leader) at once, then the report, to stdout and exits 0 (pid) or 1 (error),
//! so the caller sees EOF as soon as the container runs, and can kill the child if the report
//! never comes.
//!
//! The serving loop is single-threaded `poll(2)` over: a signalfd for SIGCHLD, the container's
//! stdout and stderr pipes (written to the json-file log), the listening socket and the
//! connected clients. On the init's exit it drains both pipes to EOF, tears down (the cgroups;
//! the rootfs mount goes with the shim's mount namespace), writes `exit.json`, answers every
//! waiter, removes `shim.sock` and exits.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{ForkResult, Pid};
use serde::{Deserialize, Serialize};

use super::{exit_path, socket_path, ExitStatus, ShimRequest, ShimResponse};
use crate::cgroups::{Cgroup, Layout};
use crate::error::RuntimeError;
use crate::linux;
use crate::logfile::{timestamp_now, LogWriter, Stream};
use crate::oci;
use crate::rootfs::{self, Root};
use crate::spec::{Backend, ContainerSpec, NamespaceMode, Network, Seccomp};
use crate::{defaults, seccomp_bpf, user, write_atomic};

/// What the shim reports to its caller on stdout (one JSON line).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Report {
    /// The detached shim process (printed on a line of its own before the report), so that a
    /// caller that gives up waiting can kill it and its process group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shim_pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

/// Entry point of the `berth-shim` binary; returns the process exit code.
pub(crate) fn main(args: &[String], reference: Option<CreateReference>) -> i32 {
    match args {
        [cmd, bundle] if cmd == "start" => start_command(Path::new(bundle), reference),
        [cmd, _placeholder] if cmd == "warm" => warm_command(reference),
        [cmd, rest @ ..] if cmd == "exec" => exec_command(rest),
        _ => {
            eprintln!("{USAGE}");
            2
        }
    }
}

const USAGE: &str = "usage: berth-shim start <bundle>
       berth-shim warm <placeholder>   (berthd's: reads `start <bundle>` from stdin)
       berth-shim exec [-t] [-u USER] [-e KEY=VALUE]... [-w DIR] [--privileged] <bundle> [--] CMD [ARG...]";

/// `berth-shim exec`: a client of the exec primitive (the shim of `<bundle>` starts the
/// process). Without `-t` the process gets this command's stdin, stdout and stderr; with `-t`
/// this command relays between its stdin/stdout and the pty. Exits with the process's code,
/// 126/127 when it could not be started (Docker's mapping), 125 on other errors.
fn exec_command(args: &[String]) -> i32 {
    let mut req = super::ExecRequest::default();
    let mut it = args.iter();
    let mut bundle = None;
    while let Some(a) = it.next() {
        match a.as_str() {
            "-t" => req.tty = true,
            "--privileged" => req.privileged = true,
            "-u" | "-e" | "-w" => {
                let Some(v) = it.next() else {
                    eprintln!("{a} needs a value\n{USAGE}");
                    return 125;
                };
                match a.as_str() {
                    "-u" => req.user = v.clone(),
                    "-e" => req.env.push(v.clone()),
                    _ => req.cwd = v.clone(),
                }
            }
            "--" if bundle.is_some() => break,
            _ if bundle.is_none() => bundle = Some(PathBuf::from(a)),
            _ => {
                req.args.push(a.clone());
                break;
            }
        }
    }
    req.args.extend(it.cloned());
    let Some(bundle) = bundle.filter(|_| !req.args.is_empty()) else {
        eprintln!("{USAGE}");
        return 125;
    };
    let session = super::ShimClient::connect(&bundle).and_then(|mut c| {
        // SAFETY: 0, 1 and 2 stay open for the whole life of this process.
        let std_fd = |fd| unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let stdio = (!req.tty).then(|| [std_fd(0), std_fd(1), std_fd(2)]);
        c.exec(&req, stdio)
    });
    let session = match session {
        Ok(s) => s,
        Err(e) => {
            let text = e.to_string();
            eprintln!("berth-shim exec: {text}");
            return if text.contains("executable file not found")
                || text.contains("no such file or directory")
            {
                127
            } else if text.contains("permission denied") {
                126
            } else {
                125
            };
        }
    };
    if let Some(master) = &session.master {
        relay_terminal(master);
    }
    match session.wait() {
        Ok(status) => status.exit_code,
        Err(e) => {
            eprintln!("berth-shim exec: {e}");
            125
        }
    }
}

/// Copies stdin to the pty master and the master to stdout until the terminal closes.
fn relay_terminal(master: &OwnedFd) {
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: master.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfd structs.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = io::stdout().write_all(&buf[..n]);
                    let _ = io::stdout().flush();
                }
                // EIO: every slave descriptor is closed (the process exited).
                _ => return,
            }
        }
        if fds[1].revents != 0 {
            match nix::unistd::read(0, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(master, &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
    }
}

fn start_command(bundle: &Path, reference: Option<CreateReference>) -> i32 {
    let (read_end, write_end) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => return print_report(&error_report(&format!("pipe: {e}"), "internal")),
    };
    // SAFETY: the shim is single-threaded here (nothing has spawned a thread yet), so the
    // child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Err(e) => print_report(&error_report(&format!("fork: {e}"), "internal")),
        Ok(ForkResult::Parent { child }) => {
            drop(write_end);
            // Only for libcontainer, which joins through cgroup.procs; berth's runtime joins
            // through v1 `tasks` and must not trigger the wait (it blocks every fork).
            if reference.is_some() {
                prime_cgroup_attach();
            }
            let early = Report {
                shim_pid: Some(child.as_raw()),
                ..Default::default()
            };
            let _ = print_report(&early);
            // One line; reading to EOF would also wait for every process that inherited the
            // pipe (the container init holds it until its execve closes it).
            let mut text = String::new();
            let _ =
                io::BufRead::read_line(&mut io::BufReader::new(File::from(read_end)), &mut text);
            let report = serde_json::from_str::<Report>(&text).unwrap_or_else(|_| {
                error_report(
                    &format!(
                        "shim exited before reporting (see {})",
                        bundle.join("shim.log").display()
                    ),
                    "internal",
                )
            });
            print_report(&report)
        }
        Ok(ForkResult::Child) => {
            drop(read_end);
            let code = child_main(bundle, File::from(write_end), reference, None);
            // SAFETY: _exit ends the process without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

/// `berth-shim warm <placeholder>`: a shim started ahead of need (`crate::warm`). Like
/// `start`, the process forks at once and the parent prints `{"shim_pid":N}`; then it exits,
/// and the detached child waits for one line on stdin, `start <bundle>`, and goes on as
/// `start`'s child does, reporting on stdout. At EOF on stdin (berthd let it go, or died), it
/// exits. The placeholder argument is the room its command line is rewritten into, so that
/// it shows the bundle once it has one.
fn warm_command(reference: Option<CreateReference>) -> i32 {
    // SAFETY: the shim is single-threaded here (nothing has spawned a thread yet), so the
    // child may run arbitrary code after fork.
    match unsafe { nix::unistd::fork() } {
        Err(e) => print_report(&error_report(&format!("fork: {e}"), "internal")),
        Ok(ForkResult::Parent { child }) => {
            let early = Report {
                shim_pid: Some(child.as_raw()),
                ..Default::default()
            };
            let _ = print_report(&early);
            0
        }
        Ok(ForkResult::Child) => {
            let code = warm_child(reference);
            // SAFETY: _exit ends the process without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
    }
}

fn warm_child(reference: Option<CreateReference>) -> i32 {
    // Out of berthd's process group and session now: no signal meant for it reaches here.
    if let Err(e) = nix::unistd::setsid() {
        eprintln!("warm shim: setsid: {e}");
        return 1;
    }
    // The report goes to stdout, as a dup: `detach` puts the log on fd 1.
    let report = match io::stdout().as_fd().try_clone_to_owned() {
        Ok(fd) => File::from(fd),
        Err(e) => {
            eprintln!("warm shim: dup stdout: {e}");
            return 1;
        }
    };
    // One message on the seqpacket socket that is stdin, perhaps with a network namespace.
    let (line, netns) = match receive_command() {
        Ok(Some(c)) => c,
        // EOF: let go unused.
        Ok(None) => return 0,
        Err(e) => {
            eprintln!("warm shim: reading the command: {e}");
            return 1;
        }
    };
    let line = line.strip_suffix(b"\n").unwrap_or(&line);
    let Some(bundle) = line.strip_prefix(b"start ") else {
        let _ = send_report(
            &mut { report },
            &error_report("warm shim: expected `start <bundle>`", "internal"),
        );
        return 1;
    };
    let bundle = PathBuf::from(std::ffi::OsStr::from_bytes(bundle));
    let argv0 = std::env::args_os().next().unwrap_or_default();
    // Cosmetic (ps, and tests that find a bundle's processes): a failure changes nothing.
    let _ = linux::sys::set_cmdline(&[argv0.as_bytes(), b"start", bundle.as_os_str().as_bytes()]);
    child_main(&bundle, report, reference, netns)
}

/// The warm shim's command from fd 0 (berthd's `crate::warm::hand_over`): the text and the
/// descriptor that came with it; `None` at EOF.
fn receive_command() -> nix::Result<Option<(Vec<u8>, Option<OwnedFd>)>> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::FromRawFd;
    let mut buf = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    loop {
        let mut iov = [io::IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(0, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => other?,
        };
        let mut netns = None;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmRights(fds) = c {
                for fd in fds {
                    // SAFETY: the kernel just installed this descriptor for this process.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    netns.get_or_insert(fd);
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return Ok(None);
        }
        return Ok(Some((buf[..n].to_vec(), netns)));
    }
}

fn error_report(message: &str, kind: &str) -> Report {
    Report {
        error: Some(message.to_string()),
        kind: Some(kind.to_string()),
        ..Default::default()
    }
}

fn print_report(report: &Report) -> i32 {
    let line = serde_json::to_string(report).expect("report serialises");
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    if report.pid.is_some() {
        0
    } else {
        1
    }
}

/// The detached shim from its start on: creates the container (joining `netns`, a network
/// namespace berthd made ahead, for `--network none`), reports, serves.
fn child_main(
    bundle: &Path,
    mut report: File,
    reference: Option<CreateReference>,
    netns: Option<OwnedFd>,
) -> i32 {
    // Non-dumpable, and so is every process forked from here until its execve: a container
    // process can never open the /proc entries (exe: this binary) of the container's init or
    // of an exec'd process while they still run the shim's code (the CVE-2019-5736 class).
    if let Err(e) = nix::sys::prctl::set_dumpable(false) {
        let _ = send_report(
            &mut report,
            &error_report(&format!("set non-dumpable: {e}"), "internal"),
        );
        return 1;
    }
    if let Err(e) = detach(bundle) {
        let _ = send_report(&mut report, &error_report(&e, "internal"));
        return 1;
    }
    let started = Instant::now();
    let timing = std::env::var_os("BERTH_SHIM_TIMING").is_some();
    let mut shim = match Shim::create(bundle, timing, reference, netns) {
        Ok(shim) => shim,
        Err(e) => {
            eprintln!("start failed: {e}");
            let _ = send_report(&mut report, &error_report(&e.to_string(), e.kind_name()));
            return 1;
        }
    };
    let ok = Report {
        pid: Some(shim.pid.as_raw()),
        ..Default::default()
    };
    let _ = send_report(&mut report, &ok);
    drop(report);
    if timing {
        eprintln!("timing: reported after {:?}", started.elapsed());
    }
    shim.serve();
    if timing {
        eprintln!("timing: done after {:?}", started.elapsed());
    }
    0
}

fn send_report(out: &mut File, report: &Report) -> io::Result<()> {
    let mut line = serde_json::to_vec(report).map_err(io::Error::other)?;
    line.push(b'\n');
    out.write_all(&line)
}

/// Starts the kernel's wait for the first cgroup attach while the child is still busy.
///
/// The first write of a pid into `cgroup.procs` after a quiet spell blocks for an RCU grace
/// period (the kernel switches `cgroup_threadgroup_rwsem` to its writer mode; 8-16 ms
/// measured here, at random), and libcontainer's create pays it when it joins the
/// container's cgroups. This process only waits for the child's report, so it takes that
/// lock first by moving itself into the cgroup it is already in (a no-op migration): the
/// grace period then runs in parallel with the child's rootfs mount and namespace set-up,
/// and libcontainer's write finds the lock in writer mode already, or waits only for the
/// rest. Nothing changes if the write fails (no cgroup filesystem, v2 with a read-only
/// root): it is an optimisation only.
pub fn prime_cgroup_attach() {
    let Ok(own) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    for line in own.lines() {
        // "4:memory:/a/b" on v1, "0::/a/b" on v2.
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let mount = match controllers {
            "" => "/sys/fs/cgroup/unified".to_string(),
            c if c.starts_with("name=") => continue,
            c => format!("/sys/fs/cgroup/{}", c.split(',').next().unwrap_or(c)),
        };
        let procs = format!("{mount}{path}/cgroup.procs");
        if std::fs::write(&procs, b"0").is_ok() {
            return;
        }
    }
}

/// setsid, stdin from /dev/null, stdout+stderr to `<bundle>/shim.log`: the caller's pipes are
/// closed so it sees EOF, and no terminal signal reaches the shim.
fn detach(bundle: &Path) -> Result<(), String> {
    // A warm shim is a session leader already (and setsid would fail there).
    if nix::unistd::getsid(None).ok() != Some(nix::unistd::getpid()) {
        nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    }
    let null = File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    let log_path = bundle.join("shim.log");
    let log = File::options()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    for (src, dst) in [
        (null.as_raw_fd(), 0),
        (log.as_raw_fd(), 1),
        (log.as_raw_fd(), 2),
    ] {
        nix::unistd::dup2(src, dst).map_err(|e| format!("dup2: {e}"))?;
    }
    Ok(())
}

/// Moves the shim into a mount namespace of its own, a copy of the host's whose mounts are
/// all slaves: the rootfs mounted next is invisible on the host (no host user reaches its
/// setuid files and device nodes under `<bundle>/rootfs`) and goes away with the shim, even
/// when it is SIGKILLed, instead of leaking. Slave rather than private: the host's unmounts
/// still propagate in, so the shim never keeps a filesystem the host let go of busy. The
/// container's mount namespace is cloned from this one by libcontainer.
fn private_mount_namespace() -> Result<(), RuntimeError> {
    let err = |what: &str, e: nix::errno::Errno| RuntimeError::Io {
        path: PathBuf::from("/"),
        message: format!("{what}: {}", e.desc()),
    };
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| err("unshare mount namespace", e))?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .map_err(|e| err("make mounts slaves", e))
}

/// Test hook (tests/start_deadline.rs): a start that never finishes, with the container
/// running (in its cgroup). Never set outside that test.
pub(crate) fn test_hang() {
    if std::env::var_os("BERTH_SHIM_TEST_HANG").is_some() {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
}

/// Creates and starts the container with berth's own runtime ([`crate::linux`]).
#[allow(clippy::too_many_arguments)]
fn create_own(
    bundle: &Path,
    spec: &ContainerSpec,
    rootfs_dir: &Path,
    user: &user::ExecUser,
    caps: &[String],
    env: Vec<String>,
    path_env: String,
    stdio: linux::Stdio,
    netns_fd: Option<OwnedFd>,
    shared: Vec<Option<OwnedFd>>,
    phase: &dyn Fn(&str),
) -> Result<(Held, Pid), RuntimeError> {
    // Compiled by the caller (`crate::start`): the shim only reads the program.
    let filtered = !(spec.privileged || spec.seccomp == Seccomp::Unconfined);
    let seccomp = match (filtered, &spec.seccomp_filter) {
        (false, _) => None,
        (true, Some(path)) => Some(seccomp_bpf::read_filter(path)?),
        (true, None) => {
            return Err(RuntimeError::Seccomp(
                "no compiled filter was given (start containers through berth_runtime::start)"
                    .to_string(),
            ))
        }
    };
    phase("seccomp filter ready");
    let layout = match &spec.cgroup_layout {
        Some(l) => l.clone(),
        None => Layout::detect().map_err(|e| RuntimeError::io("/proc/self/mountinfo", e))?,
    };
    let cstrings = |v: &[String], what: &str| {
        v.iter()
            .map(|a| {
                CString::new(a.as_bytes())
                    .map_err(|_| RuntimeError::InvalidSpec(format!("{what} contains a NUL byte")))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let mut clone_flags = libc::CLONE_NEWNS as u64;
    let ns = &spec.namespaces;
    let mut join = Vec::new();
    let mut pidns = None;
    for (mode, flag, kind) in [
        (ns.pid, libc::CLONE_NEWPID, "pid"),
        (ns.ipc, libc::CLONE_NEWIPC, "ipc"),
        (ns.uts, libc::CLONE_NEWUTS, "uts"),
    ] {
        match mode {
            NamespaceMode::Private => clone_flags |= flag as u64,
            NamespaceMode::Host => {}
            NamespaceMode::Process(pid) => {
                let path = format!("/proc/{pid}/ns/{kind}");
                let file = File::open(&path).map_err(|e| {
                    RuntimeError::Start(format!(
                        "join the {kind} namespace of process {pid} (another container): {e}"
                    ))
                })?;
                if flag == libc::CLONE_NEWPID {
                    // Joined by the clone itself (a pid namespace is entered by children).
                    pidns = Some(file);
                } else {
                    join.push((file, nix::sched::CloneFlags::from_bits_retain(flag)));
                }
            }
        }
    }
    let mut netns = None;
    let mut loopback_up = false;
    // A namespace made ahead (lo up already) only stands in for a new one.
    let netns_fd = netns_fd.filter(|_| spec.network == Network::None);
    match &spec.network {
        Network::None if netns_fd.is_some() => {}
        Network::None => {
            clone_flags |= libc::CLONE_NEWNET as u64;
            loopback_up = true;
        }
        Network::Host => {}
        Network::Path(p) => netns = Some(p.clone()),
    }
    let existing = |paths: Vec<&'static str>| {
        paths
            .into_iter()
            .filter(|p| rootfs::host_path_exists(p))
            .map(|p| CString::new(p).expect("static path"))
            .collect::<Vec<_>>()
    };
    let plan = linux::Plan {
        rootfs: rootfs_dir.to_path_buf(),
        process: linux::ProcessPlan {
            args: cstrings(&oci::process_args(spec), "the command")?,
            env: cstrings(&env, "the environment")?,
            path_env,
            cwd: if spec.process.cwd.is_empty() {
                "/".to_string()
            } else {
                spec.process.cwd.clone()
            },
            uid: user.uid,
            gid: user.gid,
            groups: user.additional_gids.clone(),
            caps: seccomp_bpf::cap_mask(caps),
            last_cap: linux::last_cap(),
            seccomp: seccomp.map(Rc::new),
            no_new_privs: spec.process.no_new_privileges,
            rlimits: oci::checked_rlimits(spec)?
                .into_iter()
                .map(|(_, resource, soft, hard)| (resource, soft, hard))
                .collect(),
        },
        // Only in a UTS namespace of its own: with `--uts host` it would rename the host.
        hostname: (!spec.hostname.is_empty() && ns.uts == NamespaceMode::Private)
            .then(|| CString::new(spec.hostname.as_bytes()))
            .transpose()
            .map_err(|_| RuntimeError::InvalidSpec("hostname contains a NUL byte".into()))?,
        oom_score_adj: spec.process.oom_score_adj,
        clone_flags,
        join,
        pidns,
        netns,
        netns_fd,
        loopback_up,
        cgroupns: layout.is_v2(),
        mounts: linux::plan_mounts(spec, layout.is_v2(), shared),
        devices: {
            let mut devices = if spec.privileged {
                linux::host_devices()
            } else {
                linux::default_devices()
            };
            devices.extend(linux::spec_devices(spec));
            devices
        },
        sysctls: linux::sysctl_writes(&spec.sysctls)?,
        masked: if spec.privileged {
            Vec::new()
        } else {
            existing(defaults::masked_paths())
        },
        readonly: if spec.privileged {
            Vec::new()
        } else {
            existing(defaults::readonly_paths())
        },
        readonly_rootfs: spec.readonly_rootfs,
        terminal: spec.process.terminal,
        console_size: (spec.stdio.console_height, spec.stdio.console_width),
    };
    // v2: the clone places the init in its cgroup (CLONE_INTO_CGROUP), which must exist
    // first. v1: the init joins it itself after its mounts, so it is made meanwhile, here
    // (0.4 ms of mkdirs and limit writes, in parallel with 0.6 ms of mounts).
    let early = layout.is_v2();
    let cgroup = if early {
        Cgroup::create(&layout, &spec.cgroup_path, &spec.resources, spec.privileged)?
    } else {
        Cgroup::plan(&layout, &spec.cgroup_path, &spec.resources)?
    };
    phase(if early {
        "cgroup created"
    } else {
        "cgroup planned"
    });
    let spawned = match linux::spawn(&plan, &cgroup, stdio) {
        Ok(s) => s,
        Err(e) => {
            if early {
                let _ = cgroup.remove();
            }
            return Err(e);
        }
    };
    let pid = Pid::from_raw(spawned.pid);
    let undo = |e: RuntimeError| -> RuntimeError {
        // The init is pid 1 of its namespace: killing it ends everything it started.
        let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
        let _ = waitpid(pid, None);
        let _ = cgroup.remove();
        e
    };
    if !early {
        // On failure it removed what it made; the init never joined (it waits for the go).
        if let Err(e) = cgroup.make(&spec.resources, spec.privileged) {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            return Err(e);
        }
        phase("cgroup made");
    }
    let pid_path = bundle.join("pid");
    crate::replace(&pid_path, spawned.pid.to_string().as_bytes())
        .map_err(|e| undo(RuntimeError::io(&pid_path, e)))?;
    phase("spawned");
    let namespaces = ["mnt", "ipc"]
        .iter()
        .filter_map(|ns| File::open(format!("/proc/{}/ns/{ns}", spawned.pid)).ok())
        .collect();
    let master = spawned.start().map_err(undo)?;
    test_hang();
    Ok((
        Held::Own(Box::new(OwnContainer {
            master,
            cgroup,
            cgroupns: plan.cgroupns,
            process: plan.process,
            _namespaces: namespaces,
        })),
        pid,
    ))
}

struct Client {
    stream: UnixStream,
    buf: Vec<u8>,
    waiting: bool,
    /// Descriptors that came with the request (an exec's stdio).
    fds: Vec<OwnedFd>,
    /// The exec'd process this client waits for.
    exec_pid: Option<i32>,
    /// An attached client: the output it gets.
    feed: Option<Feed>,
    /// What the last poll reported for this connection. Kept with the client, not by its
    /// index: handling the output or an exit drops clients, which moves others in the list.
    revents: i16,
}

/// What an attached client is sent: the streams it asked for, framed as Docker frames them.
struct Feed {
    stdout: bool,
    stderr: bool,
    /// Framed output not yet taken by the client's socket.
    pending: Vec<u8>,
}

/// An attached client with this much unsent output holds the container's output back (the
/// pipes are not read) until it catches up.
const FEED_BACKLOG: usize = 1 << 20;

/// How long output waits for the client that attached before the start (`hold_output`).
const HOLD_LIMIT: Duration = Duration::from_secs(10);

/// What the shim holds of the container, by implementation.
pub(crate) enum Held {
    /// berth's own runtime: the container's cgroup and what an exec needs.
    Own(Box<OwnContainer>),
    /// The reference implementation's container (libcontainer: state in `<bundle>/lc`).
    Reference(Box<dyn ReferenceContainer>),
}

/// The reference implementation's container, as the serving loop drives it.
pub(crate) trait ReferenceContainer {
    fn pause(&mut self) -> Result<(), String>;
    fn resume(&mut self) -> Result<(), String>;
    /// Kills what is left and removes its cgroups and state.
    fn delete(&mut self) -> Result<(), String>;
}

/// Creates and starts a container with the reference implementation (given only by the
/// `berth-shim-libcontainer` binary).
pub(crate) type CreateReference = fn(
    &Path,
    &ContainerSpec,
    &user::ExecUser,
    &[String],
    Option<serde_json::Value>,
    linux::Stdio,
    &dyn Fn(&str),
) -> Result<(Held, Pid), RuntimeError>;

/// The container as berth's own runtime holds it.
pub(crate) struct OwnContainer {
    /// The init's terminal (`-t`), until the serving loop takes it as its stdout.
    master: Option<OwnedFd>,
    cgroup: Cgroup,
    /// The main process's plan: the template of every exec'd process.
    process: linux::ProcessPlan,
    cgroupns: bool,
    /// The container's mount and IPC namespaces, held until this process exits: the init's
    /// exit then does not tear them down (every mount, then an RCU grace period) before the
    /// kernel tells this process it exited; the shim's own exit does, after the waiters
    /// have their answer.
    _namespaces: Vec<File>,
}

struct Shim {
    bundle: PathBuf,
    spec: ContainerSpec,
    held: Held,
    pid: Pid,
    paused: bool,
    log: LogWriter,
    pipes: [Option<File>; 2],
    listener: UnixListener,
    signals: Option<SignalFd>,
    clients: Vec<Client>,
    exit: Option<i32>,
    /// When to drop the code pages requests faulted in (see `poll_once`).
    trim_at: Option<Instant>,
    /// Out of descriptors at the last accept: the listener is not polled until then (it
    /// stays readable while connections wait, and the loop would spin).
    accept_paused: Option<Instant>,
    /// The write end of the init's stdin pipe (`-i`), until `close_stdin`.
    stdin: Option<OwnedFd>,
    /// The init has a terminal: `pipes[0]` is its master.
    tty: bool,
    /// Output is not read until this moment or the first attach (`hold_output`).
    holding: Option<Instant>,
    /// The exec'd processes started with an id, oldest first (at most [`EXECS_KEPT`]).
    execs: std::collections::VecDeque<super::ExecRecord>,
    /// The terminals of detached execs, whose output is read and discarded.
    discards: Vec<Discard>,
}

/// A detached exec's terminal (`docker exec -dt`): nobody reads it, so the shim does and
/// throws the bytes away; else the process blocks once the terminal's buffer is full.
/// Closed at the process's exit (or the terminal's hang-up).
struct Discard {
    master: OwnedFd,
    pid: i32,
}

impl Discard {
    /// Reads what there is, at most 256 KiB a call (poll says when there is more: a
    /// process that writes as fast as this reads must not keep the shim from its other
    /// work); false once the terminal is gone (EOF, EIO after the last process holding it
    /// closed it).
    fn drain(&self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..16 {
            match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
                Ok(0) => return false,
                Ok(_) => {}
                Err(nix::errno::Errno::EAGAIN) => return true,
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => return false,
            }
        }
        true
    }
}

/// How many exec records a shim keeps (the oldest ended ones make room).
const EXECS_KEPT: usize = 256;

impl Shim {
    /// Everything up to a running container; on failure nothing is left behind.
    fn create(
        bundle: &Path,
        timing: bool,
        reference: Option<CreateReference>,
        netns: Option<OwnedFd>,
    ) -> Result<Shim, RuntimeError> {
        let spec_path = bundle.join("spec.json");
        let text = std::fs::read(&spec_path).map_err(|e| RuntimeError::io(&spec_path, e))?;
        let spec: ContainerSpec = serde_json::from_slice(&text)
            .map_err(|e| RuntimeError::InvalidSpec(format!("{}: {e}", spec_path.display())))?;
        let rootfs_dir = rootfs::rootfs_dir(bundle)?;
        // Taken in the host's mount namespace, while the shim is still in it.
        let shared = match spec.backend {
            Backend::Berth => linux::shared_sources(&spec).map_err(RuntimeError::Start)?,
            Backend::Libcontainer => Vec::new(),
        };
        private_mount_namespace()?;
        rootfs::mount_rootfs(&spec.rootfs, &rootfs_dir)?;
        let mounted = !spec.rootfs.is_empty();
        match Self::create_mounted(bundle, spec, &rootfs_dir, timing, reference, netns, shared) {
            Ok(shim) => Ok(shim),
            Err(e) => {
                if mounted {
                    let _ = rootfs::unmount_rootfs(&rootfs_dir);
                }
                Err(e)
            }
        }
    }

    fn create_mounted(
        bundle: &Path,
        spec: ContainerSpec,
        rootfs_dir: &Path,
        timing: bool,
        reference: Option<CreateReference>,
        netns: Option<OwnedFd>,
        shared: Vec<Option<OwnedFd>>,
    ) -> Result<Shim, RuntimeError> {
        let t0 = Instant::now();
        if timing {
            linux::enable_timing(t0);
        }
        let phase = |name: &str| {
            if timing {
                eprintln!("timing: {name} at {:?}", t0.elapsed());
            }
        };
        let root = Root::open(rootfs_dir).map_err(|e| RuntimeError::io(rootfs_dir, e))?;
        let read = |p: &str| {
            root.read_to_string(p).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    // The image's fault (a FIFO, a device, a huge file): say which file.
                    RuntimeError::InvalidSpec(format!(
                        "unable to read {p} of the container's root filesystem: {e}"
                    ))
                } else {
                    RuntimeError::io(rootfs_dir.join(p.trim_start_matches('/')), e)
                }
            })
        };
        let passwd = read("/etc/passwd")?;
        let group = read("/etc/group")?;
        let user = user::resolve(
            &spec.process.user,
            passwd.as_deref(),
            group.as_deref(),
            &spec.process.additional_gids,
        )?;
        let caps = defaults::resolve_capabilities(&spec.cap_add, &spec.cap_drop, spec.privileged)?;
        linux::check_rlimits(&oci::checked_rlimits(&spec)?)?;
        // /proc and /sys are mounted only on real directories: say so before anything is made.
        for dir in ["/proc", "/sys"] {
            match root.open_no_symlinks(dir, libc::O_PATH | libc::O_DIRECTORY) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(RuntimeError::InvalidSpec(format!(
                        "mount destination {dir} must be a real directory, not a symlink or a \
                         file (the image's {dir} is not)"
                    )))
                }
                _ => {}
            }
        }
        if spec.process.args.is_empty() {
            return Err(RuntimeError::InvalidSpec(
                "no command specified".to_string(),
            ));
        }
        let cwd = if spec.process.cwd.is_empty() {
            "/"
        } else {
            spec.process.cwd.as_str()
        };
        // runc creates a missing working directory; so does berth, inside the root.
        if !rootfs::under_bind(cwd, &spec.mounts) {
            root.mkdir_all(cwd)
                .map_err(|e| RuntimeError::io(rootfs_dir.join(cwd.trim_start_matches('/')), e))?;
        }
        let env = oci::process_env(&spec, &user.home);
        let path_env = env
            .iter()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or("")
            .to_string();
        if spec.init.is_none() {
            rootfs::check_executable(&root, &spec.process.args[0], &path_env, cwd, &spec.mounts)?;
        }
        drop(root);
        // The OCI section only for libcontainer: berth's runtime loads the program that
        // `crate::start` compiled (converting Docker's profile here would cost every start).
        let section = match spec.backend {
            Backend::Libcontainer => oci::seccomp_section(&spec, &caps)?,
            Backend::Berth => None,
        };
        phase("checked");
        let log = LogWriter::open(&spec.log).map_err(|e| RuntimeError::io(&spec.log.path, e))?;
        let listener = bind_socket(bundle)?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let null = File::open("/dev/null").map_err(|e| RuntimeError::io("/dev/null", e))?;
        // `-i`: a pipe the shim holds the write end of (a terminal is its own stdin).
        let (stdin_r, stdin_w) = if spec.stdio.open_stdin && !spec.process.terminal {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (OwnedFd::from(null), None)
        };
        let stdio = linux::Stdio {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        };
        let created = match spec.backend {
            Backend::Berth => create_own(
                bundle, &spec, rootfs_dir, &user, &caps, env, path_env, stdio, netns, shared,
                &phase,
            ),
            Backend::Libcontainer => match reference {
                Some(create) => create(bundle, &spec, &user, &caps, section, stdio, &phase),
                None => Err(RuntimeError::Start(
                    "this berth-shim runs berth's own runtime only (the libcontainer backend \
                     is berth-shim-libcontainer)"
                        .to_string(),
                )),
            },
        };
        let (held, pid) = match created {
            Ok(c) => c,
            Err(e) => {
                let _ = std::fs::remove_file(socket_path(bundle));
                let _ = std::fs::remove_file(bundle.join("pid"));
                return Err(e);
            }
        };
        phase("started");
        for fd in [&out_r, &err_r] {
            set_nonblocking(fd.as_raw_fd());
        }
        // With a terminal, the container's output is the pty's (Docker logs it as stdout);
        // the stdout pipe only reports EOF at the init's execve.
        let mut held = held;
        let mut tty = false;
        let stdout = match &mut held {
            Held::Own(own) => match own.master.take() {
                Some(master) => {
                    set_nonblocking(master.as_raw_fd());
                    drop(out_r);
                    tty = true;
                    File::from(master)
                }
                None => File::from(out_r),
            },
            Held::Reference(_) => File::from(out_r),
        };
        let holding = spec.stdio.hold_output.then(|| Instant::now() + HOLD_LIMIT);
        Ok(Shim {
            bundle: bundle.to_path_buf(),
            spec,
            held,
            pid,
            paused: false,
            log,
            pipes: [Some(stdout), Some(File::from(err_r))],
            listener,
            signals: None,
            clients: Vec::new(),
            exit: None,
            trim_at: None,
            accept_paused: None,
            stdin: stdin_w,
            tty,
            holding,
            execs: Default::default(),
            discards: Vec::new(),
        })
    }

    fn serve(&mut self) {
        // SIGCHLD through a signalfd, blocked only now so the container never inherits the
        // blocked mask. A child that exited before this is caught by the reap below.
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        if let Err(e) = mask.thread_block() {
            eprintln!("block SIGCHLD: {e}");
        }
        match SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC) {
            Ok(fd) => self.signals = Some(fd),
            Err(e) => eprintln!("signalfd: {e}"),
        }
        self.reap();
        // Most of the binary ran only to start the container: let those pages go (and again
        // after each burst of requests, see poll_once). Not at once: a short-lived container
        // exits within milliseconds, and its exit must not wait behind a read of the maps.
        self.trim_at = Some(Instant::now() + Duration::from_millis(100));
        let mut drain_deadline: Option<Instant> = None;
        loop {
            if self.holding.is_some_and(|until| Instant::now() >= until) {
                self.holding = None;
            }
            if self.exit.is_some() && self.holding.is_none() {
                if self.pipes.iter().all(Option::is_none) {
                    linux::mark("output drained");
                    break;
                }
                let deadline =
                    *drain_deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(5));
                if Instant::now() >= deadline {
                    // Something outside the container holds the pipes open: stop waiting.
                    self.close_pipe(Stream::Stdout);
                    self.close_pipe(Stream::Stderr);
                    break;
                }
            }
            self.poll_once(drain_deadline);
        }
        self.finish();
    }

    fn poll_once(&mut self, deadline: Option<Instant>) {
        const SIG: usize = 0;
        const LISTEN: usize = 1;
        const OUT: usize = 2;
        const ERR: usize = 3;
        let pollfd = |fd: RawFd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // Output waits while held for the first attach, or while a client lags behind.
        let read_output = self.holding.is_none()
            && !self.clients.iter().any(|c| {
                c.feed
                    .as_ref()
                    .is_some_and(|f| f.pending.len() >= FEED_BACKLOG)
            });
        let pipe_fd = |p: &Option<File>| match p {
            Some(f) if read_output => f.as_raw_fd(),
            _ => -1,
        };
        if self
            .accept_paused
            .is_some_and(|until| Instant::now() >= until)
        {
            self.accept_paused = None;
        }
        let listen_fd = match self.accept_paused {
            Some(_) => -1,
            None => self.listener.as_raw_fd(),
        };
        let mut fds = vec![
            pollfd(self.signals.as_ref().map_or(-1, |s| s.as_raw_fd())),
            pollfd(listen_fd),
            pollfd(pipe_fd(&self.pipes[0])),
            pollfd(pipe_fd(&self.pipes[1])),
        ];
        fds.extend(self.clients.iter().map(|c| {
            let mut p = pollfd(c.stream.as_raw_fd());
            if c.feed.as_ref().is_some_and(|f| !f.pending.is_empty()) {
                p.events |= libc::POLLOUT;
            }
            p
        }));
        let discards_at = fds.len();
        fds.extend(self.discards.iter().map(|d| pollfd(d.master.as_raw_fd())));
        let mut timeout = match (deadline, &self.signals) {
            (Some(d), _) => d.saturating_duration_since(Instant::now()).as_millis() as i32 + 1,
            // Without a signalfd, poll for exits every 100 ms.
            (None, None) => 100,
            (None, Some(_)) => -1,
        };
        for at in [self.trim_at, self.holding, self.accept_paused]
            .into_iter()
            .flatten()
        {
            let left = at.saturating_duration_since(Instant::now()).as_millis() as i32 + 1;
            timeout = if timeout < 0 { left } else { timeout.min(left) };
        }
        // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                eprintln!("poll: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        for (client, p) in self.clients.iter_mut().zip(&fds[4..discards_at]) {
            client.revents = p.revents;
        }
        // Detached execs' terminals: read and thrown away (before the exits, which close
        // them); the list is only changed below.
        let mut ready_discards = fds[discards_at..].iter().map(|p| p.revents != 0);
        self.discards
            .retain(|d| !ready_discards.next().unwrap_or(false) || d.drain());
        let ready = |i: usize| fds[i].revents != 0;
        // Requests fault code pages back in (64 KiB at a time); once they stop for a while,
        // let those pages go again, so an idle shim stays small.
        if ready(LISTEN) || (4..discards_at).any(ready) {
            self.trim_at = Some(Instant::now() + Duration::from_millis(200));
        } else if self.trim_at.is_some_and(|at| Instant::now() >= at) {
            self.trim_at = None;
            linux::trim_clean_file_mappings();
        }
        // Pipes first: output written before the exit is logged before the exit is handled.
        if ready(OUT) {
            self.read_pipe(Stream::Stdout);
        }
        if ready(ERR) {
            self.read_pipe(Stream::Stderr);
        }
        if ready(SIG) || self.signals.is_none() {
            if let Some(sfd) = &mut self.signals {
                while let Ok(Some(_)) = sfd.read_signal() {}
            }
            self.reap();
        }
        // Clients, from the back so that removal is safe: each with its own events (the
        // output and the exits above may have dropped some and moved others).
        for i in (0..self.clients.len()).rev() {
            let events = std::mem::take(&mut self.clients[i].revents);
            if events & libc::POLLOUT != 0 && !self.flush_feed(i) {
                self.clients.swap_remove(i);
                continue;
            }
            if events & !libc::POLLOUT != 0 {
                self.read_client(i);
            }
        }
        if ready(LISTEN) {
            self.accept();
        }
    }

    fn reap(&mut self) {
        loop {
            let (pid, code) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, code),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (pid, 128 + sig as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            // (A pid is reused only after its reaping: the running record is the one.)
            if let Some(rec) = self
                .execs
                .iter_mut()
                .find(|e| e.pid == pid.as_raw() && e.exit_code.is_none())
            {
                rec.exit_code = Some(code);
            }
            if pid == self.pid {
                linux::mark("init reaped");
                self.exit = Some(code);
                continue;
            }
            // A detached exec's terminal: what is left is read, then it is closed.
            self.discards.retain(|d| {
                if d.pid == pid.as_raw() {
                    d.drain();
                    return false;
                }
                true
            });
            // Its own connection and any `exec_wait` of it.
            let status = ExitStatus {
                exit_code: code,
                oom_killed: false,
                finished_at: timestamp_now(),
            };
            while let Some(i) = self
                .clients
                .iter()
                .position(|c| c.exec_pid == Some(pid.as_raw()))
            {
                let mut client = self.clients.swap_remove(i);
                respond(&mut client.stream, &ShimResponse::Exit(status.clone()));
            }
        }
    }

    fn read_pipe(&mut self, stream: Stream) {
        let idx = stream as usize;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let Some(pipe) = self.pipes[idx].as_mut() else {
                return;
            };
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.close_pipe(stream);
                    return;
                }
                Ok(n) => {
                    if let Err(e) = self.log.write(stream, &buf[..n]) {
                        eprintln!("log write: {e}");
                    }
                    self.fan_out(stream, &buf[..n]);
                    if n < buf.len() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A terminal's master reads EIO once every slave is closed: its EOF.
                Err(e) if e.raw_os_error() == Some(libc::EIO) => {
                    self.close_pipe(stream);
                    return;
                }
                Err(e) => {
                    eprintln!("read {stream:?}: {e}");
                    self.close_pipe(stream);
                    return;
                }
            }
        }
    }

    fn close_pipe(&mut self, stream: Stream) {
        if let Some(mut pipe) = self.pipes[stream as usize].take() {
            // Whatever is still buffered in the pipe belongs to the log.
            let mut buf = [0u8; 64 * 1024];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let _ = self.log.write(stream, &buf[..n]);
                self.fan_out(stream, &buf[..n]);
            }
            if let Err(e) = self.log.finish(stream) {
                eprintln!("log write: {e}");
            }
        }
        if self.pipes.iter().all(Option::is_none) {
            self.end_feeds();
        }
    }

    /// Frames `data` for every attached client that asked for `stream` and sends what the
    /// sockets take now; the rest waits for POLLOUT. A client whose socket broke is dropped.
    fn fan_out(&mut self, stream: Stream, data: &[u8]) {
        let kind: u8 = match stream {
            Stream::Stdout => 1,
            Stream::Stderr => 2,
        };
        for i in (0..self.clients.len()).rev() {
            let Some(feed) = self.clients[i].feed.as_mut() else {
                continue;
            };
            if !(if kind == 1 { feed.stdout } else { feed.stderr }) {
                continue;
            }
            for piece in data.chunks(u32::MAX as usize) {
                feed.pending.extend_from_slice(&[kind, 0, 0, 0]);
                feed.pending
                    .extend_from_slice(&(piece.len() as u32).to_be_bytes());
                feed.pending.extend_from_slice(piece);
            }
            if !self.flush_feed(i) {
                self.clients.swap_remove(i);
            }
        }
    }

    /// Writes what client `i`'s socket takes without blocking; false when it broke.
    fn flush_feed(&mut self, i: usize) -> bool {
        let client = &mut self.clients[i];
        let Some(feed) = client.feed.as_mut() else {
            return true;
        };
        let mut sent = 0;
        while sent < feed.pending.len() {
            match (&client.stream).write(&feed.pending[sent..]) {
                Ok(0) => return false,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        feed.pending.drain(..sent);
        true
    }

    /// The output has ended: every attached client gets what is left (within one deadline
    /// for all, however slowly each reads: a blocking write with a timeout would start
    /// that timeout again at each bit of progress) and its connection closed, which tells
    /// it the stream is over.
    fn end_feeds(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut ending: Vec<(UnixStream, Vec<u8>)> = Vec::new();
        let mut i = 0;
        while i < self.clients.len() {
            let Some(feed) = self.clients[i].feed.take() else {
                i += 1;
                continue;
            };
            let client = self.clients.swap_remove(i);
            let _ = client.stream.set_nonblocking(true);
            ending.push((client.stream, feed.pending));
        }
        loop {
            // Attached clients' connections are non-blocking: write what each takes now.
            ending.retain_mut(|(stream, pending)| {
                let mut sent = 0;
                let broken = loop {
                    if sent == pending.len() {
                        break false;
                    }
                    match (&*stream).write(&pending[sent..]) {
                        Ok(0) => break true,
                        Ok(n) => sent += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break false,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(_) => break true,
                    }
                };
                pending.drain(..sent);
                let keep = !broken && !pending.is_empty();
                if !keep {
                    let _ = stream.shutdown(std::net::Shutdown::Both);
                }
                keep
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if ending.is_empty() || left.is_zero() {
                break;
            }
            let mut fds: Vec<libc::pollfd> = ending
                .iter()
                .map(|(stream, _)| libc::pollfd {
                    fd: stream.as_raw_fd(),
                    events: libc::POLLOUT,
                    revents: 0,
                })
                .collect();
            let timeout = left.as_millis().min(i32::MAX as u128) as i32 + 1;
            // SAFETY: `fds` is a valid, exclusively borrowed array of `fds.len()` pollfds.
            unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        }
        for (stream, _) in ending {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(true);
                    self.clients.push(Client {
                        stream,
                        buf: Vec::new(),
                        waiting: false,
                        fds: Vec::new(),
                        exec_pid: None,
                        feed: None,
                        revents: 0,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE)) => {
                    // The connection waits in the backlog until a descriptor is free.
                    self.accept_paused = Some(Instant::now() + Duration::from_millis(100));
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Reads from client `i`; answers (and drops) it once a full request line arrived.
    fn read_client(&mut self, i: usize) {
        let mut buf = [0u8; 64 * 1024];
        let client = &mut self.clients[i];
        // Where this read's bytes start: only they are looked through for the newline (a
        // request of 2 MiB read 4 KiB at a time and scanned whole each time took seconds
        // under emulation).
        let from = client.buf.len();
        match super::recv_with_fds(&client.stream, &mut buf, &mut client.fds, 3) {
            Ok(0) => {
                self.clients.swap_remove(i);
                return;
            }
            Ok(n) if !client.waiting => client.buf.extend_from_slice(&buf[..n]),
            Ok(_) => return,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(_) => {
                self.clients.swap_remove(i);
                return;
            }
        }
        let Some(nl) = client.buf[from..]
            .iter()
            .position(|b| *b == b'\n')
            .map(|p| from + p)
        else {
            if client.buf.len() > super::MAX_REQUEST {
                // Said, not dropped: the client would read a closed connection as a crash.
                let mut client = self.clients.swap_remove(i);
                let e = RuntimeError::InvalidSpec(format!(
                    "request of over {} bytes refused (the shim's limit)",
                    super::MAX_REQUEST
                ));
                respond(&mut client.stream, &ShimResponse::error(&e));
            }
            return;
        };
        let request = serde_json::from_slice::<ShimRequest>(&client.buf[..nl]);
        let response = match request {
            Ok(ShimRequest::Wait) => {
                self.clients[i].waiting = true;
                return;
            }
            Ok(ShimRequest::Attach {
                stdin,
                stdout,
                stderr,
            }) => match self.attach(i, stdin, stdout, stderr) {
                Ok(()) => return,
                Err(e) => ShimResponse::error(&e),
            },
            Ok(ShimRequest::ExecWait { id }) => {
                match self.execs.iter().find(|e| e.request.id == id) {
                    Some(rec) => match rec.exit_code {
                        Some(code) => ShimResponse::Exit(ExitStatus {
                            exit_code: code,
                            oom_killed: false,
                            finished_at: timestamp_now(),
                        }),
                        None => {
                            // Answered by `reap` (or `finish`) as the exec's own connection.
                            let pid = rec.pid;
                            let client = &mut self.clients[i];
                            client.waiting = true;
                            client.exec_pid = Some(pid);
                            return;
                        }
                    },
                    None => ShimResponse::error(&RuntimeError::InvalidSpec(format!(
                        "no exec {id} is kept by the shim of container {}",
                        self.spec.id
                    ))),
                }
            }
            Ok(ShimRequest::Exec(req)) => {
                let fds = std::mem::take(&mut self.clients[i].fds);
                match self.exec(&req, fds) {
                    Ok(started) => {
                        if !req.id.is_empty() {
                            self.keep_exec(&req, started.pid);
                        }
                        // Detached with a terminal: the shim reads it (a copy; the master
                        // itself still goes to the client, for resize).
                        let discard = match (&started.master, req.tty && req.detach) {
                            (Some(m), true) => m.try_clone().ok().map(|master| {
                                set_nonblocking(master.as_raw_fd());
                                Discard {
                                    master,
                                    pid: started.pid,
                                }
                            }),
                            _ => None,
                        };
                        let discarding = discard.is_some();
                        self.discards.extend(discard);
                        let client = &mut self.clients[i];
                        client.waiting = true;
                        client.exec_pid = Some(started.pid);
                        let line = ShimResponse::ExecStarted {
                            pid: started.pid,
                            discarding,
                        };
                        respond_with_fd(&mut client.stream, &line, started.master);
                        // Back to non-blocking: the loop reads it again (a hang-up).
                        let _ = client.stream.set_nonblocking(true);
                        return;
                    }
                    Err(e) => ShimResponse::error(&e),
                }
            }
            Ok(req) => self.handle(req),
            Err(e) => {
                ShimResponse::error(&RuntimeError::InvalidSpec(format!("invalid request: {e}")))
            }
        };
        let mut client = self.clients.swap_remove(i);
        respond(&mut client.stream, &response);
    }

    /// Keeps an exec's record; beyond [`EXECS_KEPT`] the oldest ended one goes (or the oldest).
    fn keep_exec(&mut self, req: &super::ExecRequest, pid: i32) {
        if self.execs.len() >= EXECS_KEPT {
            match self.execs.iter().position(|e| e.exit_code.is_some()) {
                Some(i) => {
                    self.execs.remove(i);
                }
                None => {
                    self.execs.pop_front();
                }
            }
        }
        // What `exec inspect` shows of it (ProcessConfig), not the environment, and the
        // arguments within 64 KiB: 256 records of requests up to 1 MiB each would keep
        // up to 256 MiB in the shim and in every `execs` answer.
        let mut request = super::ExecRequest {
            env: Vec::new(),
            args: Vec::new(),
            ..req.clone()
        };
        let mut room = 64 * 1024;
        for a in &req.args {
            if a.len() > room {
                break;
            }
            room -= a.len();
            request.args.push(a.clone());
        }
        self.execs.push_back(super::ExecRecord {
            request,
            pid,
            exit_code: None,
        });
    }

    /// Makes client `i` an attached one: answers with the stdin descriptor, then feeds it.
    fn attach(
        &mut self,
        i: usize,
        stdin: bool,
        stdout: bool,
        stderr: bool,
    ) -> Result<(), RuntimeError> {
        if self.pipes.iter().all(Option::is_none) {
            return Err(self.not_running());
        }
        // As Docker: stdin only for a container made with an open stdin (`-i`).
        let input = match (stdin, self.tty, &self.stdin) {
            (false, _, _) => None,
            (true, true, _) if self.spec.stdio.open_stdin => self.pipes[0]
                .as_ref()
                .map(|m| m.as_fd().try_clone_to_owned()),
            (true, false, Some(w)) => Some(w.try_clone()),
            _ => None,
        }
        .transpose()
        .map_err(|e| RuntimeError::Start(format!("stdin: {e}")))?;
        let answer = ShimResponse::Attached {
            tty: self.tty,
            stdin: input.is_some(),
        };
        let client = &mut self.clients[i];
        respond_with_fd(&mut client.stream, &answer, input);
        let _ = client.stream.set_nonblocking(true);
        client.waiting = true;
        client.feed = Some(Feed {
            stdout,
            // A terminal's output is all stdout.
            stderr: stderr && !self.tty,
            pending: Vec::new(),
        });
        self.holding = None;
        Ok(())
    }

    /// Starts a process in the container (berth's own runtime only).
    fn exec(
        &mut self,
        req: &super::ExecRequest,
        fds: Vec<OwnedFd>,
    ) -> Result<linux::ExecStarted, RuntimeError> {
        if self.exit.is_some() {
            return Err(RuntimeError::Conflict(format!(
                "container {} is not running",
                self.spec.id
            )));
        }
        if self.paused {
            return Err(RuntimeError::Conflict(format!(
                "container {} is paused, unpause the container before exec",
                self.spec.id
            )));
        }
        let Held::Own(own) = &self.held else {
            return Err(RuntimeError::Start(
                "exec needs berth's own runtime (this container runs on libcontainer)".into(),
            ));
        };
        if req.args.is_empty() {
            return Err(RuntimeError::InvalidSpec("no command specified".into()));
        }
        let stdio = if req.tty {
            None
        } else {
            let mut fds = fds.into_iter();
            match (fds.next(), fds.next(), fds.next()) {
                (Some(stdin), Some(stdout), Some(stderr)) => Some(linux::Stdio {
                    stdin,
                    stdout,
                    stderr,
                }),
                _ => {
                    return Err(RuntimeError::InvalidSpec(
                        "exec without a terminal needs three descriptors (stdin, stdout, \
                         stderr)"
                            .into(),
                    ))
                }
            }
        };
        let process = exec_process(&own.process, &self.spec.process, req, self.pid.as_raw())
            .map_err(|e| self.or_not_running(e))?;
        linux::exec(
            self.pid.as_raw(),
            &own.cgroup,
            own.cgroupns,
            &process,
            req.tty,
            stdio,
        )
        .map_err(|e| self.or_not_running(e))
    }

    /// An exec that failed because the init exited meanwhile (its namespaces or root are
    /// gone) is Docker's "not running" conflict, not a command that cannot run.
    fn or_not_running(&self, e: RuntimeError) -> RuntimeError {
        if init_gone(self.pid.as_raw()) {
            self.not_running()
        } else {
            e
        }
    }

    fn handle(&mut self, req: ShimRequest) -> ShimResponse {
        let result = match req {
            ShimRequest::State => {
                return ShimResponse::State {
                    pid: self.pid.as_raw(),
                    status: self.status().to_string(),
                }
            }
            ShimRequest::Signal { signal } => self.signal(signal),
            ShimRequest::Pause => self.pause(),
            ShimRequest::Resume => self.resume(),
            ShimRequest::Update { resources } => self.update(&resources),
            ShimRequest::Pids => {
                let pids = match &self.held {
                    Held::Own(own) => own.cgroup.pids(),
                    Held::Reference(_) => {
                        existing_cgroup(&self.spec).map_or_else(|| Ok(Vec::new()), |c| c.pids())
                    }
                };
                return match pids {
                    Ok(pids) => ShimResponse::Pids(pids),
                    Err(e) => ShimResponse::error(&RuntimeError::Start(format!("list pids: {e}"))),
                };
            }
            ShimRequest::Hello { .. } => {
                return ShimResponse::Hello {
                    version: super::PROTOCOL_VERSION,
                }
            }
            ShimRequest::Resize { height, width } => self.resize(height, width),
            ShimRequest::CloseStdin => {
                self.stdin = None;
                Ok(())
            }
            ShimRequest::Execs => return ShimResponse::Execs(self.execs.iter().cloned().collect()),
            ShimRequest::Wait
            | ShimRequest::Exec(_)
            | ShimRequest::ExecWait { .. }
            | ShimRequest::Attach { .. } => {
                unreachable!("wait, exec, exec_wait and attach are handled by read_client")
            }
        };
        match result {
            Ok(()) => ShimResponse::Ok,
            Err(e) => ShimResponse::error(&e),
        }
    }

    fn status(&self) -> &'static str {
        match (self.exit, self.paused) {
            (Some(_), _) => "stopped",
            (None, true) => "paused",
            (None, false) => "running",
        }
    }

    fn resize(&mut self, height: u16, width: u16) -> Result<(), RuntimeError> {
        if !self.tty {
            return Err(RuntimeError::InvalidSpec(format!(
                "container {} has no terminal to resize (it was not created with -t)",
                self.spec.id
            )));
        }
        let Some(master) = &self.pipes[0] else {
            return Err(self.not_running());
        };
        crate::set_window_size(master.as_fd(), height, width)
            .map_err(|e| RuntimeError::Start(format!("resize: {e}")))
    }

    fn not_running(&self) -> RuntimeError {
        RuntimeError::Conflict(format!("container {} is not running", self.spec.id))
    }

    fn signal(&mut self, signal: i32) -> Result<(), RuntimeError> {
        if self.exit.is_some() {
            return Err(self.not_running());
        }
        // SAFETY: kill has no memory-safety preconditions; the pid is our own unreaped child,
        // so it cannot have been recycled.
        if unsafe { libc::kill(self.pid.as_raw(), signal) } != 0 {
            return Err(RuntimeError::Start(format!(
                "kill: {}",
                io::Error::last_os_error()
            )));
        }
        // A frozen process cannot die: thaw after SIGKILL so the kill takes effect.
        if signal == libc::SIGKILL && self.paused {
            let _ = self.resume();
        }
        Ok(())
    }

    /// `docker update` of a running (or paused) container: the shim owns the cgroup, so a
    /// directory the update adds (a v1 cpuset) is removed at teardown and joined by execs.
    fn update(&mut self, resources: &crate::spec::Resources) -> Result<(), RuntimeError> {
        if self.exit.is_some() {
            return Err(self.not_running());
        }
        match &mut self.held {
            Held::Own(own) => own.cgroup.update(resources),
            Held::Reference(_) => match existing_cgroup(&self.spec) {
                Some(mut cgroup) => cgroup.update(resources),
                None => Err(RuntimeError::Start(format!(
                    "container {} has no cgroup to update",
                    self.spec.id
                ))),
            },
        }
    }

    fn pause(&mut self) -> Result<(), RuntimeError> {
        if self.exit.is_some() {
            return Err(self.not_running());
        }
        if self.paused {
            return Err(RuntimeError::Conflict(format!(
                "container {} is already paused",
                self.spec.id
            )));
        }
        match &mut self.held {
            Held::Own(own) => own.cgroup.freeze(),
            Held::Reference(c) => c.pause(),
        }
        .map_err(RuntimeError::Start)?;
        self.paused = true;
        Ok(())
    }

    fn resume(&mut self) -> Result<(), RuntimeError> {
        if !self.paused {
            return Err(RuntimeError::Conflict(format!(
                "container {} is not paused",
                self.spec.id
            )));
        }
        match &mut self.held {
            Held::Own(own) => own.cgroup.thaw(),
            Held::Reference(c) => c.resume(),
        }
        .map_err(RuntimeError::Start)?;
        self.paused = false;
        Ok(())
    }

    /// Teardown, exit record, answers, socket removal.
    fn finish(&mut self) {
        let exit_code = self.exit.unwrap_or(255);
        let t0 = Instant::now();
        let oom_killed = match &mut self.held {
            Held::Own(own) => {
                let oom = own.cgroup.oom_killed();
                if self.spec.namespaces.pid != NamespaceMode::Private {
                    // Not the init of a pid namespace of its own: what it started lives on
                    // after it (runc kills the cgroup's processes too).
                    own.cgroup.kill_all(Duration::from_secs(10));
                }
                // The init is reaped, so the kernel has released every task: one rmdir each.
                // (It prints what stays to shim.log.)
                own.cgroup.remove();
                oom
            }
            Held::Reference(container) => {
                let cgroup = existing_cgroup(&self.spec);
                if self.spec.namespaces.pid != NamespaceMode::Private {
                    if let Some(c) = &cgroup {
                        c.kill_all(Duration::from_secs(10));
                    }
                }
                let oom = cgroup.as_ref().is_some_and(|c| c.oom_killed());
                // Own cleanup first: the container's cgroups are empty once the pid
                // namespace's init is reaped, so a few rmdirs do what libcontainer's delete()
                // does after rebuilding its cgroup manager (~2 ms). delete() is the fallback.
                let state_dir = self.bundle.join("lc").join(&self.spec.id);
                if !(cgroup.is_some_and(|c| c.remove())
                    && std::fs::remove_dir_all(&state_dir).is_ok())
                {
                    if let Err(e) = container.delete() {
                        eprintln!("delete: {e}");
                    }
                }
                oom
            }
        };
        // The rootfs is not unmounted here: it lives only in this process's mount namespace,
        // which the kernel tears down when the shim exits, after the exit record and the
        // answers. Unmounting the overlay here synced the upper filesystem (an ext4 journal
        // commit) and waited for an RCU grace period on the exit path: 5-50 ms measured.
        if std::env::var_os("BERTH_SHIM_TIMING").is_some() {
            eprintln!("timing: teardown took {:?}", t0.elapsed());
        }
        let status = ExitStatus {
            exit_code,
            oom_killed,
            finished_at: timestamp_now(),
        };
        let record = serde_json::to_vec(&status).expect("json");
        let written = if self.spec.volatile_exit {
            crate::replace(&exit_path(&self.bundle), &record)
        } else {
            write_atomic(&exit_path(&self.bundle), &record)
        };
        if let Err(e) = written {
            eprintln!("exit.json: {e}");
        }
        linux::mark("exit.json written");
        let answer = ShimResponse::Exit(status);
        self.end_feeds();
        // No new client can find the socket after this; the ones already queued are answered.
        let _ = std::fs::remove_file(socket_path(&self.bundle));
        self.accept();
        let deadline = Instant::now() + Duration::from_millis(200);
        let not_running = ShimResponse::error(&self.not_running());
        for client in &mut self.clients {
            if !client.waiting {
                let _ = client.stream.set_nonblocking(false);
                let _ = client.stream.set_read_timeout(Some(
                    deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(1)),
                ));
                let req = read_request(&mut client.stream, &mut client.buf);
                let resp = match req {
                    Some(ShimRequest::Wait) => answer.clone(),
                    Some(ShimRequest::State) => ShimResponse::State {
                        pid: self.pid.as_raw(),
                        status: "stopped".into(),
                    },
                    Some(_) => not_running.clone(),
                    None => continue,
                };
                respond(&mut client.stream, &resp);
            } else if client.exec_pid.is_some() {
                // Not reaped before the init (it cannot outlive the pid namespace): no code.
                let gone = ShimResponse::error(&RuntimeError::Conflict(format!(
                    "container {} exited",
                    self.spec.id
                )));
                respond(&mut client.stream, &gone);
            } else {
                respond(&mut client.stream, &answer);
            }
        }
        self.clients.clear();
        linux::mark("waiters answered");
    }
}

/// The plan of an exec'd process: the container's main process with the request's command,
/// environment (added to the container's), working directory, user (resolved in the
/// container's own `/etc/passwd` and `/etc/group`) and capabilities.
fn exec_process(
    main: &linux::ProcessPlan,
    spec: &crate::spec::Process,
    req: &super::ExecRequest,
    init_pid: i32,
) -> Result<linux::ProcessPlan, RuntimeError> {
    let cstring = |s: &str| {
        CString::new(s).map_err(|_| RuntimeError::InvalidSpec(format!("{s:?} contains a NUL byte")))
    };
    let mut p = main.clone();
    p.args = req
        .args
        .iter()
        .map(|a| cstring(a))
        .collect::<Result<_, _>>()?;
    let key = |e: &[u8]| e.split(|b| *b == b'=').next().unwrap_or(e).to_vec();
    for entry in &req.env {
        let k = key(entry.as_bytes());
        p.env.retain(|e| key(e.as_bytes()) != k);
        // As Docker's: a name without `=` unsets that variable.
        if entry.contains('=') {
            p.env.push(cstring(entry)?);
        }
    }
    if let Some(path) = p
        .env
        .iter()
        .find_map(|e| e.to_str().ok().and_then(|e| e.strip_prefix("PATH=")))
    {
        p.path_env = path.to_string();
    }
    if !req.cwd.is_empty() {
        p.cwd = req.cwd.clone();
    }
    if !req.user.is_empty() {
        let root_path = PathBuf::from(format!("/proc/{init_pid}/root"));
        let root = Root::open(&root_path).map_err(|e| RuntimeError::io(&root_path, e))?;
        let read = |f: &str| {
            root.read_to_string(f).map_err(|e| {
                RuntimeError::InvalidSpec(format!("unable to read {f} of the container: {e}"))
            })
        };
        // The container's `--group-add` gids too, as Docker gives them to every exec.
        let user = user::resolve(
            &req.user,
            read("/etc/passwd")?.as_deref(),
            read("/etc/group")?.as_deref(),
            &spec.additional_gids,
        )?;
        p.uid = user.uid;
        p.gid = user.gid;
        p.groups = user.additional_gids;
        // `HOME` from the user's passwd entry only when neither the exec nor the container
        // sets it (the init's own `HOME` may have come from its user's entry).
        let sets_home = |env: &[String]| env.iter().any(|e| e.starts_with("HOME="));
        if !sets_home(&req.env) && !sets_home(&spec.env) {
            p.env.retain(|e| !e.as_bytes().starts_with(b"HOME="));
            p.env.push(cstring(&format!("HOME={}", user.home))?);
        }
    }
    if req.privileged {
        p.caps = defaults::host_capabilities()
            .into_iter()
            .filter_map(defaults::capability_number)
            .fold(0, |m, bit| m | (1u64 << bit));
    }
    Ok(p)
}

/// The init has exited (a zombie not yet reaped) or is gone.
fn init_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold any.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_none_or(|state| matches!(state, 'Z' | 'X')),
        Err(_) => true,
    }
}

/// Like [`respond`], with `fd` attached to the line (SCM_RIGHTS) when given.
fn respond_with_fd(stream: &mut UnixStream, response: &ShimResponse, fd: Option<OwnedFd>) {
    let Some(fd) = fd else {
        return respond(stream, response);
    };
    use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
    let mut line = serde_json::to_vec(response).expect("json");
    line.push(b'\n');
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let fds = [fd.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let _ = sendmsg::<()>(
        stream.as_raw_fd(),
        &[io::IoSlice::new(&line)],
        &cmsg,
        MsgFlags::empty(),
        None,
    );
}

/// Reads one request line in blocking mode (used only while shutting down).
fn read_request(stream: &mut UnixStream, buf: &mut Vec<u8>) -> Option<ShimRequest> {
    let mut chunk = [0u8; 1024];
    while !buf.contains(&b'\n') {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let nl = buf.iter().position(|b| *b == b'\n')?;
    serde_json::from_slice(&buf[..nl]).ok()
}

fn respond(stream: &mut UnixStream, response: &ShimResponse) {
    let mut line = serde_json::to_vec(response).expect("json");
    line.push(b'\n');
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&line);
}

fn bind_socket(bundle: &Path) -> Result<UnixListener, RuntimeError> {
    let path = socket_path(bundle);
    let _ = std::fs::remove_file(&path);
    let addr = super::SocketAddress::of(bundle).map_err(|e| RuntimeError::io(bundle, e))?;
    let listener = UnixListener::bind(addr.path()).map_err(|e| RuntimeError::io(&path, e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| RuntimeError::io(&path, e))?;
    Ok(listener)
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| RuntimeError::Io {
        path: PathBuf::from("pipe"),
        message: e.desc().to_string(),
    })
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on an fd we own; F_GETFL/F_SETFL have no memory-safety preconditions.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
    }
}

/// The container's cgroup as it exists now (nothing is created), in the layout the spec
/// carries (or detected when it carries none): for aborted starts and the libcontainer
/// backend, which do not hold a [`Cgroup`] of their own. `None` without a cgroup filesystem.
pub(crate) fn existing_cgroup(spec: &ContainerSpec) -> Option<Cgroup> {
    let layout = match &spec.cgroup_layout {
        Some(l) => l.clone(),
        None => Layout::detect().ok()?,
    };
    Some(Cgroup::open(&layout, &spec.cgroup_path))
}
