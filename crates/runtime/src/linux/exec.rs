//! Starting a process in a running container: the primitive `docker exec` is built on.
//!
//! The shim points its own `pid_for_children` at the container's pid namespace, clones (on
//! cgroup v2 straight into the container's cgroup), and points it back at once, so the new
//! process is born inside the container's pid namespace without a second fork. The process
//! then joins the cgroup (v1), the ipc, uts, network and (v2) cgroup namespaces and last the
//! mount namespace (which also makes the container's root its root), optionally takes a
//! terminal from the container's own devpts, and runs the same tail as the init
//! ([`super::init::run_process`]): rlimits, cwd, seccomp, capabilities, user, `execve`.
//!
//! It is non-dumpable from birth (inherited from the shim) until `execve`, so a container
//! process cannot open its `/proc/<pid>/exe` — the shim's binary — in between.

use std::fs::File;
use std::io::{IoSlice, IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

use nix::sched::CloneFlags;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::init::{run_process, Never};
use super::{sys, ProcessPlan, Stdio};
use crate::cgroups::Cgroup;
use crate::error::RuntimeError;

/// A started exec'd process.
pub(crate) struct ExecStarted {
    /// Its host pid (a child of the shim).
    pub pid: i32,
    /// With a terminal: the pty master (the process has the slave as stdio and controlling
    /// terminal).
    pub master: Option<OwnedFd>,
}

/// Starts `process` inside the container whose init is `init_pid`. `stdio` is used unless
/// `tty`. Returns once the process has called `execve` (or with its error, Docker's texts for
/// "not found" and "permission denied").
pub(crate) fn exec(
    init_pid: i32,
    cgroup: &Cgroup,
    cgroupns: bool,
    process: &ProcessPlan,
    tty: bool,
    stdio: Option<Stdio>,
) -> Result<ExecStarted, RuntimeError> {
    let err = |what: &str, e: std::io::Error| RuntimeError::Start(format!("exec: {what}: {e}"));
    let ns = |name: &str| {
        File::open(format!("/proc/{init_pid}/ns/{name}"))
            .map_err(|e| err(&format!("open the container's {name} namespace"), e))
    };
    let mut joins = vec![
        (ns("ipc")?, CloneFlags::CLONE_NEWIPC),
        (ns("uts")?, CloneFlags::CLONE_NEWUTS),
        (ns("net")?, CloneFlags::CLONE_NEWNET),
    ];
    if cgroupns {
        joins.push((ns("cgroup")?, CloneFlags::CLONE_NEWCGROUP));
    }
    // Last: it changes the root (and /proc, /sys) to the container's.
    joins.push((ns("mnt")?, CloneFlags::CLONE_NEWNS));
    // Entering a mount namespace makes the root whatever is mounted on the namespace's root
    // mount: the container's root only when the shim's own root was the host's (pivot_root
    // or switch_root at boot). Under a shim started in a chroot it would be the host's tree,
    // so the process takes the init's root itself (nsenter --root).
    let root = File::open(format!("/proc/{init_pid}/root"))
        .map_err(|e| err("open the container's root", e))?;
    let pidns = ns("pid")?;
    let own_pidns =
        File::open("/proc/self/ns/pid").map_err(|e| err("open own pid namespace", e))?;
    let (status_r, status_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| err("pipe", e.into()))?;
    let pty = if tty {
        let (a, b) = UnixStream::pair().map_err(|e| err("socketpair", e))?;
        Some((a, b))
    } else {
        None
    };
    let cgroup_fd = cgroup.v2_dir();
    nix::sched::setns(&pidns, CloneFlags::CLONE_NEWPID)
        .map_err(|e| err("enter the container's pid namespace", e.into()))?;
    let cloned = sys::clone_init(0, cgroup_fd.as_ref().map(|f| f.as_raw_fd()));
    // Back at once, whatever happened: later containers' inits must not be born in there.
    let back = nix::sched::setns(&own_pidns, CloneFlags::CLONE_NEWPID);
    let pid = match cloned {
        Ok(0) => {
            drop(status_r);
            let status = status_w.as_raw_fd();
            let in_cgroup = cgroup_fd.is_some();
            let pty = pty.map(|p| p.1);
            let message = match child(cgroup, in_cgroup, &joins, &root, process, pty, stdio) {
                Ok(never) => match never {},
                Err(m) => m,
            };
            sys::write_fd(status, message.as_bytes());
            sys::exit(1)
        }
        Ok(pid) => pid,
        Err(e) => return Err(err("clone", e)),
    };
    if let Err(e) = back {
        // Cannot happen for a process returning to its own namespace; never go on if it did.
        eprintln!("return to the shim's pid namespace: {e}");
        std::process::abort();
    }
    drop(status_w);
    let kill = |e: RuntimeError| {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        e
    };
    let master = match pty {
        Some((ours, theirs)) => {
            drop(theirs);
            Some(receive_fd(&ours).map_err(|e| kill(err("receive the terminal", e)))?)
        }
        None => None,
    };
    let mut message = String::new();
    let _ = File::from(status_r).read_to_string(&mut message);
    if !message.is_empty() {
        // The process exited after writing its error: reap it here, it is nobody's exec.
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        let is_exec = message.starts_with("exec: ")
            && (message.ends_with("no such file or directory")
                || message.ends_with("permission denied")
                || message.contains("executable file not found"));
        return Err(if is_exec {
            RuntimeError::Exec(message)
        } else {
            RuntimeError::Start(message)
        });
    }
    Ok(ExecStarted { pid, master })
}

fn child(
    cgroup: &Cgroup,
    in_cgroup: bool,
    joins: &[(File, CloneFlags)],
    root: &File,
    process: &ProcessPlan,
    pty: Option<UnixStream>,
    stdio: Option<Stdio>,
) -> Result<Never, String> {
    sys::reset_signals();
    sys::umask(0);
    if let Some(stdio) = &stdio {
        for (fd, target) in [(&stdio.stdin, 0), (&stdio.stdout, 1), (&stdio.stderr, 2)] {
            nix::unistd::dup2(fd.as_raw_fd(), target).map_err(|e| format!("dup2: {}", e.desc()))?;
        }
    }
    // Through the host's /sys/fs/cgroup: before the mount namespace changes. Not when the
    // clone placed it (v2): a move into its own cgroup waits for an RCU grace period.
    if !in_cgroup {
        cgroup
            .join_self()
            .map_err(|e| format!("join the container's cgroup: {e}"))?;
    }
    for (file, kind) in joins {
        nix::sched::setns(file, *kind)
            .map_err(|e| format!("join the container's {kind:?} namespace: {}", e.desc()))?;
    }
    nix::unistd::fchdir(root.as_raw_fd())
        .and_then(|()| nix::unistd::chroot("."))
        .map_err(|e| format!("enter the container's root: {}", e.desc()))?;
    if let Some(sock) = pty {
        let master = open_terminal()?;
        send_fd(&sock, master.as_raw_fd()).map_err(|e| format!("send the terminal: {e}"))?;
    }
    run_process(process)
}

/// Opens a pty pair in the container's own devpts (its `/dev/ptmx`), makes the slave this
/// process's controlling terminal and stdio in a new session; returns the master.
pub(super) fn open_terminal() -> Result<OwnedFd, String> {
    let master = nix::fcntl::open(
        "/dev/ptmx",
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| format!("open /dev/ptmx: {}", e.desc()))?;
    // SAFETY: `master` was just returned by open and is owned only here.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads an int; TIOCGPTPEER takes open flags and returns a new fd
    // (the slave, opened through the master, so no path lookup can be redirected).
    let slave = unsafe {
        if libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) != 0 {
            return Err(format!("unlock pty: {}", std::io::Error::last_os_error()));
        }
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY,
        )
    };
    if slave < 0 {
        return Err(format!(
            "open pty slave: {}",
            std::io::Error::last_os_error()
        ));
    }
    nix::unistd::setsid().map_err(|e| format!("setsid: {}", e.desc()))?;
    // SAFETY: TIOCSCTTY with an integer argument on a live terminal fd.
    if unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) } != 0 {
        return Err(format!(
            "set controlling terminal: {}",
            std::io::Error::last_os_error()
        ));
    }
    for target in 0..3 {
        nix::unistd::dup2(slave, target).map_err(|e| format!("dup2: {}", e.desc()))?;
    }
    if slave > 2 {
        let _ = nix::unistd::close(slave);
    }
    Ok(master)
}

/// Sends one descriptor with a one-byte message.
pub(crate) fn send_fd(sock: &UnixStream, fd: RawFd) -> std::io::Result<()> {
    let fds = [fd];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(b"t")],
        &cmsg,
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Receives one descriptor sent by [`send_fd`].
pub(crate) fn receive_fd(sock: &UnixStream) -> std::io::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        sock.as_fd().as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us.
                return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "no descriptor received",
    ))
}
