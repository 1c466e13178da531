//! The container init between the clone and `execve` (the steps are listed in the module
//! documentation of [`super`]). It runs in a copy of the single-threaded shim, so it may
//! allocate; it never returns.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use super::{exec, mounts, sys, CgroupViews, Plan, ProcessPlan, Stdio};
use crate::cgroups::Cgroup;

pub(super) struct Context<'a> {
    pub plan: &'a Plan,
    pub cgroup: &'a Cgroup,
    pub views: &'a CgroupViews,
    pub stdio: &'a Stdio,
    pub go: OwnedFd,
    /// The clone placed it in its (v2) cgroup already (`CLONE_INTO_CGROUP`).
    pub in_cgroup: bool,
    /// Where to send the terminal's master (`Plan::terminal`).
    pub console: Option<std::os::unix::net::UnixStream>,
}

/// Runs the init's steps; on failure writes the reason to the status pipe and exits 1.
/// `status` is close-on-exec: a successful `execve` closes it.
pub(super) fn run(ctx: Context<'_>, status: OwnedFd) -> ! {
    match steps(ctx) {
        Ok(never) => match never {},
        Err(message) => {
            sys::write_fd(status.as_raw_fd(), message.as_bytes());
            sys::exit(1)
        }
    }
}

pub(super) enum Never {}

fn steps(ctx: Context<'_>) -> Result<Never, String> {
    let plan = ctx.plan;
    // Nothing in the container may open this process's /proc entries (its exe is the shim's
    // binary) until execve resets the flag.
    sys::prctl(libc::PR_SET_DUMPABLE, 0).map_err(|e| format!("set non-dumpable: {e}"))?;
    // A container whose shim died cannot be managed (no exit record, no log): it dies too,
    // now or later. A shim that died before this line closed the go pipe: see below.
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong)
        .map_err(|e| format!("set parent death signal: {e}"))?;
    sys::reset_signals();
    sys::umask(0);
    for (fd, target) in [
        (&ctx.stdio.stdin, 0),
        (&ctx.stdio.stdout, 1),
        (&ctx.stdio.stderr, 2),
    ] {
        nix::unistd::dup2(fd.as_raw_fd(), target).map_err(|e| format!("dup2: {}", e.desc()))?;
    }
    if let Some(path) = &plan.netns {
        let ns = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("join network namespace {}: {}", path.display(), e.desc()))?;
    }
    if let Some(ns) = &plan.netns_fd {
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("join the network namespace made ahead: {}", e.desc()))?;
    }
    // Docker's, for every namespace it makes (`--network none` too): lo up, 127.0.0.1, and
    // its sysctls (unprivileged ping); a namespace made ahead has them already.
    if plan.loopback_up {
        sys::loopback_up().map_err(|e| format!("bring up lo: {e}"))?;
        super::netns_defaults().map_err(|e| format!("network namespace sysctls: {e}"))?;
    }
    for (ns, kind) in &plan.join {
        nix::sched::setns(ns, *kind)
            .map_err(|e| format!("join the other container's namespace: {}", e.desc()))?;
    }
    // Before the mounts: a cgroup2 mount's root is its mounter's cgroup namespace root. Only on
    // v2 (Docker's rule), where the clone placed this process in its cgroup already.
    if plan.cgroupns {
        if !ctx.in_cgroup {
            return Err("a private cgroup namespace needs the clone into the cgroup (v2)".into());
        }
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
            .map_err(|e| format!("unshare cgroup namespace: {}", e.desc()))?;
    }
    if let Some(adj) = plan.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| format!("set oom_score_adj to {adj}: {e}"))?;
    }
    let (go, in_cgroup, cgroup) = (ctx.go, ctx.in_cgroup, ctx.cgroup);
    let mut go = Some(go);
    let mut cgroup_ready = || {
        // The shim's go: the cgroup is made (on v1 the shim makes it while this process
        // mounts /proc, /dev and /sys).
        let mut byte = [0u8; 1];
        let go = go.take().expect("called once");
        if std::fs::File::from(go).read(&mut byte).unwrap_or(0) != 1 {
            return Err("the shim did not start the container".to_string());
        }
        super::mark("init go");
        // v1: by the host's paths (before pivot_root). v2: not again; a move into the cgroup
        // it is in would still take the kernel's attach lock and wait for an RCU grace period
        // (8-12 ms measured here).
        if !in_cgroup {
            cgroup
                .join_self()
                .map_err(|e| format!("join the container's cgroup: {e}"))?;
        }
        super::mark("init joined cgroup");
        Ok(())
    };
    mounts::setup(
        &plan.rootfs,
        &plan.mounts,
        ctx.views,
        &plan.devices,
        &mut cgroup_ready,
    )?;
    super::mark("init mounts done");
    nix::unistd::chdir(&plan.rootfs).map_err(|e| format!("chdir to the root: {}", e.desc()))?;
    sys::pivot_here().map_err(|e| format!("pivot_root: {e}"))?;
    super::mark("init pivoted");
    // runc's order: after pivot_root (the container's /proc, in its namespaces), before
    // /proc/sys turns read-only.
    for (path, value) in &plan.sysctls {
        std::fs::write(path.to_str().unwrap_or_default(), value).map_err(|e| {
            let key = path.to_string_lossy();
            let key = key.trim_start_matches("/proc/sys/").replace('/', ".");
            format!("write sysctl {key}={value}: {e}")
        })?;
    }
    mounts::finish_root(&plan.masked, &plan.readonly, plan.readonly_rootfs)?;
    super::mark("init masked");
    if let Some(name) = &plan.hostname {
        nix::unistd::sethostname(name.to_str().unwrap_or_default())
            .map_err(|e| format!("sethostname: {}", e.desc()))?;
    }
    if let Some(sock) = &ctx.console {
        // From the container's own devpts, after pivot_root; also its /dev/console.
        let master = exec::open_terminal()?;
        let (rows, cols) = plan.console_size;
        if rows > 0 && cols > 0 {
            crate::set_window_size(master.as_fd(), rows, cols)
                .map_err(|e| format!("set the terminal's size: {e}"))?;
        }
        mounts::bind_console(&master)?;
        exec::send_fd(sock, master.as_raw_fd()).map_err(|e| format!("send the terminal: {e}"))?;
    }
    run_process(&plan.process)
}

/// The common tail of the init and of an exec'd process, from the rlimits to `execve`:
/// rlimits, working directory, seccomp (before the capability drop unless `no_new_privs`,
/// runc's order), the bounding set, user and groups, the final capabilities (inheritable and
/// ambient empty), `no_new_privs` and the filter last when asked, then `execve` with every
/// other descriptor closed. Returns only the reason it failed.
pub(super) fn run_process(p: &ProcessPlan) -> Result<Never, String> {
    for &(resource, soft, hard) in &p.rlimits {
        sys::set_rlimit(resource, soft, hard)
            .map_err(|e| format!("error setting rlimit type {resource}: {e}"))?;
    }
    // As root, before the user changes: a directory only the user can enter is retried below.
    let cwd_done = nix::unistd::chdir(p.cwd.as_str()).is_ok();
    let seccomp_early = p.seccomp.as_ref().filter(|_| !p.no_new_privs);
    if let Some(bpf) = seccomp_early {
        // While CAP_SYS_ADMIN is still held, so no_new_privs is not needed.
        sys::seccomp_load(bpf).map_err(|e| format!("load seccomp filter: {e}"))?;
    }
    for cap in 0..=p.last_cap {
        if p.caps & (1u64 << cap) == 0 {
            match sys::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong) {
                Ok(()) => {}
                // Above what this kernel knows.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(format!("drop capability {cap} from the bounding set: {e}")),
            }
        }
    }
    sys::prctl(libc::PR_SET_KEEPCAPS, 1).map_err(|e| format!("keep capabilities: {e}"))?;
    sys::set_ids(p.uid, p.gid, &p.groups)
        .map_err(|e| format!("set user {}:{}: {e}", p.uid, p.gid))?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0).map_err(|e| format!("keep capabilities: {e}"))?;
    sys::capset(p.caps, p.caps).map_err(|e| format!("set capabilities: {e}"))?;
    sys::prctl(
        libc::PR_CAP_AMBIENT,
        libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
    )
    .map_err(|e| format!("clear ambient capabilities: {e}"))?;
    if !cwd_done {
        nix::unistd::chdir(p.cwd.as_str())
            .map_err(|e| format!("chdir to cwd ({:?}): {}", p.cwd, e.desc().to_lowercase()))?;
    }
    if p.no_new_privs {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1).map_err(|e| format!("set no_new_privs: {e}"))?;
        if let Some(bpf) = &p.seccomp {
            sys::seccomp_load(bpf).map_err(|e| format!("load seccomp filter: {e}"))?;
        }
    }
    sys::umask(0o022);
    let Some(path) = lookup_path(&p.args[0], &p.path_env) else {
        return Err(format!(
            "exec: {:?}: executable file not found in $PATH",
            p.args[0].to_string_lossy()
        ));
    };
    super::mark("execve");
    sys::cloexec_from(3).map_err(|e| format!("close descriptors: {e}"))?;
    let err = sys::execve(&path, &p.args, &p.env);
    // runc's wording; the docker CLI maps these texts to exit codes 127 / 126.
    let text = nix::errno::Errno::from_raw(err.raw_os_error().unwrap_or(0))
        .desc()
        .to_lowercase();
    Err(format!("exec: {:?}: {text}", p.args[0].to_string_lossy()))
}

/// Resolves a command like Go's `exec.LookPath` in the container: names with a slash are
/// taken as they are, others are searched in `PATH` (an empty entry is the working
/// directory) for an executable regular file.
fn lookup_path(name: &CString, path: &str) -> Option<CString> {
    let name_str = name.to_str().ok()?;
    if name_str.contains('/') {
        return Some(name.clone());
    }
    path.split(':').find_map(|dir| {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = format!("{dir}/{name_str}");
        let meta = std::fs::metadata(&candidate).ok()?;
        let candidate = CString::new(candidate).ok()?;
        (meta.is_file() && sys::executable(&candidate)).then_some(candidate)
    })
}
