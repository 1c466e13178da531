//! berth's own container runtime: turning a prepared [`Plan`] into a running container init,
//! without libcontainer.
//!
//! The shim (single-threaded) computes everything up front — the user, the capability mask, the
//! compiled seccomp program, the mount plan, the device list, the environment — and then clones
//! the init straight into its namespaces ([`spawn`]). The init ([`init`]) only makes syscalls:
//!
//! 1. non-dumpable (so no container process can open `/proc/<pid>/exe`, the shim's binary, until
//!    `execve`: the CVE-2019-5736 class), parent-death signal, default signal state, stdio;
//! 2. the network namespace of a path, and a private cgroup namespace on v2 (where the clone
//!    placed it in its cgroup already, `CLONE_INTO_CGROUP`);
//! 3. `oom_score_adj`; the root: Docker's mounts, the bind mounts, device nodes and `/dev`
//!    links, every target resolved inside the root with `openat2(RESOLVE_IN_ROOT)` and mounted
//!    through its `/proc/self/fd` path (the CVE-2021-30465 class); `/proc` and `/sys` only on
//!    real directories. Right before the cgroup views it waits for the shim's go: on v1 the
//!    shim makes the cgroup after the clone, while the init mounts `/proc`, `/dev` and `/sys`
//!    (0.3-0.6 ms saved, A/B), and the init then joins it itself (`0` into each `tasks` file,
//!    which skips the RCU grace period that a write of another pid into `cgroup.procs` waits
//!    for); then `pivot_root` and the old root detached; masked and read-only paths; the
//!    read-only root;
//! 4. hostname, rlimits, working directory;
//! 5. seccomp while it still holds CAP_SYS_ADMIN (runc's order) unless `no_new_privs`; the
//!    bounding set, the user and groups, the final capability sets (inheritable and ambient
//!    empty); with `no_new_privs` the flag and then the filter, last;
//! 6. every descriptor but 0-2 is close-on-exec; `execve`.
//!
//! Any failure is written as text to the exec-status pipe (close-on-exec: a successful `execve`
//! closes it, so EOF means "running") and the init exits.

pub(crate) mod bpf;
mod exec;
mod init;
pub(crate) mod mounts;
pub(crate) mod sys;

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::cgroups::Cgroup;
use crate::error::RuntimeError;

pub(crate) use exec::{exec, ExecStarted};
pub(crate) use mounts::{plan_mounts, shared_sources, MountStep};
pub(crate) use sys::trim_clean_file_mappings;

/// Refuses, before anything is created, what the kernel would refuse in the init with an
/// unclear error: a hard rlimit above the shim's own when it cannot raise it (no
/// CAP_SYS_RESOURCE), or above the kernel's `fs.nr_open` for nofile.
pub(crate) fn check_rlimits(rlimits: &[(String, u32, u64, u64)]) -> Result<(), RuntimeError> {
    const CAP_SYS_RESOURCE: u32 = 24;
    let can_raise = crate::defaults::host_capabilities()
        .iter()
        .any(|c| crate::defaults::capability_number(c) == Some(CAP_SYS_RESOURCE));
    for (name, resource, _, hard) in rlimits {
        if *resource == libc::RLIMIT_NOFILE {
            let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok());
            if let Some(max) = nr_open.filter(|max| hard > max) {
                return Err(RuntimeError::InvalidSpec(format!(
                    "error setting rlimit type {name}: {hard} is above the kernel's maximum \
                     (fs.nr_open = {max})"
                )));
            }
        }
        let (_, own_hard) = sys::get_rlimit(*resource).map_err(|e| RuntimeError::Io {
            path: PathBuf::from("getrlimit"),
            message: e.to_string(),
        })?;
        if *hard > own_hard && !can_raise {
            return Err(RuntimeError::InvalidSpec(format!(
                "error setting rlimit type {name}: the hard limit {hard} is above berthd's \
                 ({own_hard}), and raising it needs CAP_SYS_RESOURCE, which berthd does not hold"
            )));
        }
    }
    Ok(())
}

/// The container's `/sys/fs/cgroup` on cgroup v1: `(name, host directory)` to bind read-only
/// and `(link, target)` symlinks for co-mounted hierarchies
/// ([`crate::cgroups::Cgroup::mount_views`]).
pub(crate) type CgroupViews = (Vec<(String, PathBuf)>, Vec<(String, String)>);

/// One device node to create in the container's `/dev`.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    /// Absolute path in the container, e.g. `/dev/null` or `/dev/net/tun`.
    pub path: String,
    /// `S_IFCHR` or `S_IFBLK`.
    pub kind: libc::mode_t,
    pub major: u64,
    pub minor: u64,
    pub mode: libc::mode_t,
    pub uid: u32,
    pub gid: u32,
}

/// Docker's default device nodes (`/dev/null` ... `/dev/tty`).
pub(crate) fn default_devices() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(name, major, minor)| Device {
        path: format!("/dev/{name}"),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

/// The host's device nodes under /dev (`--privileged`: Docker gives the container all of
/// them), skipping what runc skips: pts, shm, fd, mqueue, container tooling directories and
/// the console.
pub(crate) fn host_devices() -> Vec<Device> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut devices = Vec::new();
    let mut dirs = vec![PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                if !matches!(
                    name.to_str(),
                    Some("pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev")
                ) {
                    dirs.push(entry.path());
                }
                continue;
            }
            let kind = if ft.is_char_device() {
                libc::S_IFCHR
            } else if ft.is_block_device() {
                libc::S_IFBLK
            } else {
                continue;
            };
            // The console is the container's own; ptmx is always the link to pts/ptmx.
            if name == "console" || (name == "ptmx" && dir == Path::new("/dev")) {
                continue;
            }
            let rdev = meta.rdev();
            devices.push(Device {
                path: entry.path().to_string_lossy().into_owned(),
                kind,
                major: libc::major(rdev) as u64,
                minor: libc::minor(rdev) as u64,
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            });
        }
    }
    devices
}

/// The spec's `--device` nodes, in the runtime's terms.
pub(crate) fn spec_devices(spec: &crate::spec::ContainerSpec) -> Vec<Device> {
    spec.devices
        .iter()
        .map(|d| Device {
            path: d.path.clone(),
            kind: if d.kind == 'b' {
                libc::S_IFBLK
            } else {
                libc::S_IFCHR
            },
            major: d.major,
            minor: d.minor,
            mode: d.mode & 0o7777,
            uid: d.uid,
            gid: d.gid,
        })
        .collect()
}

/// The `--sysctl` writes: `/proc/sys/<key with dots as slashes>` and the value. A key must be
/// a plain dotted name (letters, digits, `_` and `-` between the dots), so that it names a
/// file below `/proc/sys` and nothing else.
pub(crate) fn sysctl_writes(
    sysctls: &std::collections::BTreeMap<String, String>,
) -> Result<Vec<(CString, String)>, RuntimeError> {
    sysctls
        .iter()
        .map(|(key, value)| {
            let plain = key.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
            if !plain {
                return Err(RuntimeError::InvalidSpec(format!(
                    "sysctl '{key}' is not allowed"
                )));
            }
            let path = CString::new(format!("/proc/sys/{}", key.replace('.', "/")))
                .expect("checked characters");
            Ok((path, value.clone()))
        })
        .collect()
}

/// Docker's settings for a network namespace of the container's own (moby `WithCommonOptions`),
/// written by a thread or process inside it: ICMP echo sockets for every group (`ping`
/// without NET_RAW) and every port bindable without NET_BIND_SERVICE.
pub(crate) fn netns_defaults() -> std::io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ping_group_range", "0 2147483647")?;
    std::fs::write("/proc/sys/net/ipv4/ip_unprivileged_port_start", "0")?;
    // No router advertisement taken (CVE-2020-13401, as Docker); none with IPv6 off.
    for conf in ["all", "default"] {
        match std::fs::write(format!("/proc/sys/net/ipv6/conf/{conf}/accept_ra"), "0") {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// The process to run and its privileges: the container's main process, or one started in
/// it later ([`exec`]).
#[derive(Debug, Clone)]
pub(crate) struct ProcessPlan {
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    /// The `PATH` of `env`, for looking up `args[0]`.
    pub path_env: String,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// Bounding, permitted and effective capability sets.
    pub caps: u64,
    /// The highest capability number the kernel knows (`/proc/sys/kernel/cap_last_cap`).
    pub last_cap: u32,
    pub seccomp: Option<std::rc::Rc<Vec<u8>>>,
    pub no_new_privs: bool,
    /// `(resource, soft, hard)`.
    pub rlimits: Vec<(u32, u64, u64)>,
}

/// Everything the init needs, computed by the shim before the clone.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The mounted root filesystem (in the shim's mount namespace).
    pub rootfs: PathBuf,
    pub process: ProcessPlan,
    pub hostname: Option<CString>,
    pub oom_score_adj: Option<i32>,
    /// `CLONE_NEW*` flags of the namespaces to create.
    pub clone_flags: u64,
    /// Namespaces (ipc, uts) of another container to join (`--ipc container:X`), before the
    /// mounts (the mqueue mount is the ipc namespace's).
    pub join: Vec<(File, nix::sched::CloneFlags)>,
    /// The pid namespace of another container (`--pid container:X`): the clone is made in it.
    pub pidns: Option<File>,
    /// A network namespace to join.
    pub netns: Option<PathBuf>,
    /// A network namespace to join (made ahead by berthd, `crate::netns`).
    pub netns_fd: Option<OwnedFd>,
    /// Bring up `lo` in the network namespace the clone makes.
    pub loopback_up: bool,
    /// Unshare a cgroup namespace after joining the cgroup (Docker's rule on v2).
    pub cgroupns: bool,
    pub mounts: Vec<MountStep>,
    pub devices: Vec<Device>,
    /// `--sysctl`: `(/proc/sys path, value)`, written after `pivot_root`, before `/proc/sys`
    /// turns read-only.
    pub sysctls: Vec<(CString, String)>,
    pub masked: Vec<CString>,
    pub readonly: Vec<CString>,
    pub readonly_rootfs: bool,
    /// Give the init a terminal (`-t`); its master comes back to the shim.
    pub terminal: bool,
    /// The terminal's first size (rows, columns), set before the process runs; 0: the
    /// kernel's default.
    pub console_size: (u16, u16),
}

/// A cloned init waiting for the go.
pub(crate) struct Spawned {
    pub pid: i32,
    go: File,
    status: File,
    /// Where the init sends its terminal's master (`Plan::terminal`).
    console: Option<std::os::unix::net::UnixStream>,
}

/// The descriptors that become the init's stdin, stdout and stderr.
pub(crate) struct Stdio {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
}

/// Clones the init into its namespaces (and on v2 into its cgroup); it prepares the root and
/// then waits for [`Spawned::start`].
pub(crate) fn spawn(plan: &Plan, cgroup: &Cgroup, stdio: Stdio) -> Result<Spawned, RuntimeError> {
    let pipe = |what: &str| {
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| RuntimeError::Io {
            path: PathBuf::from(what),
            message: e.desc().to_string(),
        })
    };
    let (go_r, go_w) = pipe("go pipe")?;
    let (status_r, status_w) = pipe("exec status pipe")?;
    let cgroup_fd = cgroup.v2_dir();
    // v2: the clone places the init in its cgroup, and its private cgroup namespace depends
    // on that; without the directory there is no container.
    if cgroup.layout().is_v2() && cgroup_fd.is_none() {
        return Err(RuntimeError::Start(format!(
            "open the container's cgroup {} for the clone",
            cgroup.path()
        )));
    }
    let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let views = container_views(cgroup.mount_views(&proc_cgroup), cgroup, &proc_cgroup);
    let console = if plan.terminal {
        let pair = std::os::unix::net::UnixStream::pair()
            .map_err(|e| RuntimeError::io("console socketpair", e))?;
        Some(pair)
    } else {
        None
    };
    let own_pidns = match &plan.pidns {
        Some(theirs) => {
            let own = File::open("/proc/self/ns/pid")
                .map_err(|e| RuntimeError::io("/proc/self/ns/pid", e))?;
            nix::sched::setns(theirs, nix::sched::CloneFlags::CLONE_NEWPID).map_err(|e| {
                RuntimeError::Start(format!(
                    "join the pid namespace of the other container: {}",
                    e.desc()
                ))
            })?;
            Some(own)
        }
        None => None,
    };
    let cloned = sys::clone_init(plan.clone_flags, cgroup_fd.as_ref().map(|f| f.as_raw_fd()));
    // Back at once in the shim, whatever happened (the child keeps its own copy of the
    // setting): its later clones (execs, other containers of a warm shim) must not be born
    // in the other container. Cannot fail for a return to its own namespace; never go on
    // if it did.
    let in_shim = !matches!(cloned, Ok(0));
    if let (Some(own), true) = (&own_pidns, in_shim) {
        if nix::sched::setns(own, nix::sched::CloneFlags::CLONE_NEWPID).is_err() {
            eprintln!("return to the shim's pid namespace failed");
            std::process::abort();
        }
    }
    let pid = cloned.map_err(|e| RuntimeError::Start(format!("clone: {e}")))?;
    if pid == 0 {
        // The init: never returns.
        drop(go_w);
        drop(status_r);
        let ctx = init::Context {
            plan,
            cgroup,
            views: &views,
            stdio: &stdio,
            go: go_r,
            in_cgroup: cgroup_fd.is_some(),
            console: console.map(|(_, theirs)| theirs),
        };
        init::run(ctx, status_w)
    }
    drop(go_r);
    drop(status_w);
    Ok(Spawned {
        pid,
        go: File::from(go_w),
        status: File::from(status_r),
        console: console.map(|(ours, _)| ours),
    })
}

/// The v1 hierarchies the container sees under `/sys/fs/cgroup`: only those it has a cgroup
/// of its own in (a hierarchy berth does not need, such as name=systemd or cpuset without a
/// cpuset limit, would otherwise show the host's whole tree there), in the host's mount order
/// (the hierarchy ids of `/proc/self/cgroup`), as runc mounts them.
fn container_views(views: CgroupViews, cgroup: &Cgroup, proc_cgroup: &str) -> CgroupViews {
    let (mut dirs, links) = views;
    dirs.retain(|(_, host)| cgroup.dirs().iter().any(|(_, d)| d == host));
    let id_of = |name: &str| {
        proc_cgroup
            .lines()
            .find_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (id, keys) = (parts.next()?, parts.next()?);
                keys.split(',')
                    .any(|k| k.strip_prefix("name=").unwrap_or(k) == name || keys == name)
                    .then(|| id.parse::<u32>().ok())
                    .flatten()
            })
            .unwrap_or(u32::MAX)
    };
    dirs.sort_by_key(|(name, _)| id_of(name));
    let links = links
        .into_iter()
        .filter(|(_, target)| dirs.iter().any(|(name, _)| name == target))
        .collect();
    (dirs, links)
}

impl Spawned {
    /// Lets the init run the workload and waits for its `execve`: `Ok` (with the terminal's
    /// master when the plan asked for one) when it happened, the init's own error text
    /// otherwise (the caller kills and reaps it).
    pub(crate) fn start(mut self) -> Result<Option<OwnedFd>, RuntimeError> {
        // A failed write means the init is gone already; its status says why.
        let _ = self.go.write_all(b"g");
        drop(self.go);
        // The init sends the master after the go, once it has pivoted; nothing comes when it
        // failed first (its status says why).
        let wanted = self.console.is_some();
        let master = self
            .console
            .take()
            .and_then(|sock| exec::receive_fd(&sock).ok());
        let mut message = String::new();
        let _ = self.status.read_to_string(&mut message);
        if message.is_empty() {
            return match (wanted, master) {
                (true, None) => Err(RuntimeError::Start(
                    "the container's terminal did not reach the shim".into(),
                )),
                (_, master) => Ok(master),
            };
        }
        if message.starts_with("exec: ")
            && (message.ends_with("no such file or directory")
                || message.ends_with("permission denied")
                || message.contains("executable file not found"))
        {
            Err(RuntimeError::Exec(message))
        } else {
            Err(RuntimeError::Start(message))
        }
    }
}

/// `/proc/sys/kernel/cap_last_cap`, or 40 (CAP_CHECKPOINT_RESTORE) when unreadable.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// `BERTH_SHIM_TIMING`: the shim's log (a close-on-exec copy of its stderr) and its zero time,
/// for the init's phase marks ([`mark`]); unset otherwise. Set by the shim before the clone,
/// so the init has it too.
static TIMING: std::sync::OnceLock<(OwnedFd, std::time::Instant)> = std::sync::OnceLock::new();

/// Turns on the init's phase marks, as `timing: <name> at <time since t0>` lines in the
/// shim's log (its stderr); the shim writes its own phases the same way.
pub(crate) fn enable_timing(t0: std::time::Instant) {
    use std::os::fd::AsFd;
    if let Ok(log) = std::io::stderr().as_fd().try_clone_to_owned() {
        let _ = TIMING.set((log, t0));
    }
}

/// A phase mark (see [`enable_timing`]); nothing when timing is off.
pub(crate) fn mark(name: &str) {
    if let Some((log, t0)) = TIMING.get() {
        let line = format!("timing: {name} at {:?}\n", t0.elapsed());
        let _ = nix::unistd::write(log, line.as_bytes());
    }
}
