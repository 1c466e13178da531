//! The container description the engine hands to [`crate::start`]. It is written to
//! `<bundle>/spec.json` and read back by the shim; the OCI runtime spec is derived from it inside
//! the shim (after the rootfs is mounted, because user resolution reads the image's
//! `/etc/passwd`).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Everything needed to create and run one container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ContainerSpec {
    /// Container id (also the libcontainer id inside the bundle's private state root).
    pub id: String,
    /// `/run/berth/containers/<id>`: exists, created by the engine. The shim keeps `spec.json`,
    /// `config.json`, `rootfs/`, `shim.sock`, `shim.log`, `pid` and `exit.json` here.
    pub bundle: PathBuf,
    /// Mounted in order at `<bundle>/rootfs` (e.g. one overlay mount). Empty: `<bundle>/rootfs`
    /// is used as it is.
    pub rootfs: Vec<Mount>,
    /// Mount the root filesystem read-only (`--read-only`).
    pub readonly_rootfs: bool,
    /// The container's main process.
    pub process: Process,
    /// UTS hostname.
    pub hostname: String,
    /// Mounts over the root: binds (volumes, host directories, and the engine's
    /// `/etc/hostname`, `/etc/hosts`, `/etc/resolv.conf`) and tmpfs, in order.
    pub mounts: Vec<ContainerMount>,
    /// `--cap-add` entries: names with or without `CAP_`, any case, or `ALL`.
    pub cap_add: Vec<String>,
    /// `--cap-drop` entries, same syntax as `cap_add`.
    pub cap_drop: Vec<String>,
    /// `--privileged`: every capability the shim holds, no seccomp, no masked or read-only
    /// paths, `/sys` read-write, all devices allowed.
    pub privileged: bool,
    /// Seccomp filter (ignored when privileged).
    pub seccomp: Seccomp,
    /// Network namespace.
    pub network: Network,
    /// cgroup limits.
    pub resources: Resources,
    /// Absolute cgroup path, e.g. `/berth/<id>`.
    pub cgroup_path: String,
    /// Host path of a tini-like init (`--init`): bound read-only at `/sbin/docker-init` and run
    /// as `["/sbin/docker-init", "--", args...]`.
    pub init: Option<PathBuf>,
    /// Where and how the shim writes the json-file log.
    pub log: LogConfig,
    /// Which implementation creates the container.
    pub backend: Backend,
    /// `exit.json` need not be forced to disk (`--rm`: the record is removed at the exit, and
    /// at restore after a crash).
    pub volatile_exit: bool,
    /// Set by [`crate::start`] for berth's own runtime: the file of the compiled seccomp
    /// program for this container's setting and capabilities (the shim only loads it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp_filter: Option<PathBuf>,
    /// The host's cgroup layout, detected once by the caller
    /// ([`crate::cgroups::Layout::detect`]); `None`: the shim detects it.
    pub cgroup_layout: Option<crate::cgroups::Layout>,
    /// `--pid`, `--ipc`, `--uts`: which namespaces are the container's own.
    pub namespaces: Namespaces,
    /// The container's `/dev/shm` (`--shm-size`, and what `--ipc` implies).
    pub shm: Shm,
    /// `--sysctl`, written in `/proc/sys` after Docker's defaults for a new network namespace
    /// (so a user's `net.ipv4.ping_group_range` wins). Checked by the engine against Docker's
    /// allow-list; the runtime refuses a key that is not a plain dotted name.
    pub sysctls: std::collections::BTreeMap<String, String>,
    /// `--device`: host device nodes made in the container (their cgroup rules are in
    /// [`Resources::devices`]).
    pub devices: Vec<DeviceNode>,
    /// The main process's standard input and the attached clients (`-i`, attach before
    /// start, the terminal's first size).
    pub stdio: StdioSpec,
}

/// How the shim serves the main process's input and output to attached clients.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct StdioSpec {
    /// `-i` (`OpenStdin`): the init's stdin is a pipe whose write end the shim holds (and
    /// hands to attached clients) until `close_stdin`; otherwise `/dev/null`. With
    /// [`Process::terminal`] the terminal is the stdin and this only lets clients write to it.
    pub open_stdin: bool,
    /// A client attached before the start (`docker run`, `start -a`): the shim reads no output
    /// until the first `attach` arrives (at most a few seconds), so the client misses none.
    pub hold_output: bool,
    /// The terminal's first size (`ConsoleSize`: rows, columns); 0 keeps the kernel's.
    pub console_height: u16,
    /// See `console_height`.
    pub console_width: u16,
}

/// The namespaces Docker lets a container share (`--pid`, `--ipc`, `--uts`); the network
/// namespace is [`Network`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Namespaces {
    /// `--pid`.
    pub pid: NamespaceMode,
    /// `--ipc` (`/dev/shm` goes with it: [`ContainerSpec::shm`]).
    pub ipc: NamespaceMode,
    /// `--uts` (`Host`: the container keeps the host's hostname; it is never set).
    pub uts: NamespaceMode,
}

/// Whose namespace of one kind a container is in.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NamespaceMode {
    /// A new one of its own (Docker's default).
    #[default]
    Private,
    /// The host's (the shim's).
    Host,
    /// The one of this process, another container's init (`container:X`), joined through
    /// `/proc/<pid>/ns/<kind>`.
    Process(i32),
}

/// Docker's default `/dev/shm` size: 64 MiB.
pub const DEFAULT_SHM_SIZE: u64 = 64 << 20;

/// What the container gets at `/dev/shm`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Shm {
    /// A tmpfs of its own of this many bytes (`--shm-size`; Docker's default 64 MiB).
    Tmpfs(u64),
    /// Nothing (`--ipc none`).
    None,
    /// The host's `/dev/shm` (`--ipc host`).
    Host,
    /// The `/dev/shm` of this process, another container's init (`--ipc container:X`).
    Process(i32),
}

impl Default for Shm {
    fn default() -> Shm {
        Shm::Tmpfs(DEFAULT_SHM_SIZE)
    }
}

/// A host device node made in the container (`--device`), with the host's numbers, mode
/// and owner.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DeviceNode {
    /// Absolute path inside the container, e.g. `/dev/mynull`.
    pub path: String,
    /// `c` (character) or `b` (block).
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    /// Permission bits (`0o666`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// One device cgroup rule that allows access (`--device`'s permissions,
/// `--device-cgroup-rule`), after Docker's defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct DeviceRule {
    /// `a` (every device), `c` or `b`.
    pub kind: char,
    /// `None`: any.
    pub major: Option<i64>,
    /// `None`: any.
    pub minor: Option<i64>,
    /// Letters of `rwm`.
    pub access: String,
}

/// The implementation that creates and runs the container inside the shim.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    /// berth's own runtime ([`crate::linux`]): the default.
    #[default]
    Berth,
    /// libcontainer (youki), kept as the reference the differential tests compare against.
    Libcontainer,
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "berth" => Ok(Backend::Berth),
            "libcontainer" => Ok(Backend::Libcontainer),
            other => Err(format!(
                "unknown runtime {other:?} (expected \"berth\" or \"libcontainer\")"
            )),
        }
    }
}

/// One filesystem mount of the root filesystem, in containerd's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Mount {
    /// `overlay`, `bind`, `tmpfs`, ...
    pub fstype: String,
    /// Mount source (`overlay`, or a directory for `bind`).
    pub source: String,
    /// Flags (`ro`, `rbind`, `nosuid`, ...) and data (`lowerdir=...`, ...).
    pub options: Vec<String>,
}

/// The container's main process.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Process {
    /// Command and arguments; `args[0]` is looked up in the container's `PATH`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries. `PATH` gets Docker's default when absent; `HOME` comes from the
    /// image's passwd entry when absent; `HOSTNAME` from [`ContainerSpec::hostname`].
    pub env: Vec<String>,
    /// Working directory; `/` when empty.
    pub cwd: String,
    /// docker `-u` syntax: `""`, `name`, `uid`, `uid:gid`, `name:group`, `uid:groupname`.
    pub user: String,
    /// `--ulimit` entries; rlimits not listed are inherited from the shim.
    pub rlimits: Vec<Rlimit>,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--oom-score-adj`.
    pub oom_score_adj: Option<i32>,
    /// `--group-add` gids, added to the supplementary groups from the image's `/etc/group`.
    pub additional_gids: Vec<u32>,
    /// `-t`: the process gets a terminal from the container's own devpts (also bound at
    /// `/dev/console`); the shim holds the master and logs its output as stdout. berth's
    /// runtime only (libcontainer runs the process without one).
    pub terminal: bool,
}

/// One resource limit.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Rlimit {
    /// Docker's name: `nofile`, `nproc`, `core`, ... (without the `RLIMIT_` prefix).
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// A mount over the container's root: a bind of a host path (a volume's directory is one)
/// or a new tmpfs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ContainerMount {
    /// What is mounted.
    pub kind: MountKind,
    /// A bind's host path (file or directory), resolved in the shim's mount namespace (the
    /// host's) and mounted through a descriptor of what it named; unused for tmpfs.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mount read-only (a bind: recursively, every mount below its source too).
    pub readonly: bool,
    /// How mount events under the bind propagate into the container (Docker's default:
    /// `rprivate`).
    pub propagation: Propagation,
    /// A bind of the source mount alone, without the mounts below it
    /// (`bind-nonrecursive`).
    pub nonrecursive: bool,
    /// A read-only bind: whether the mounts below its source are read-only too.
    pub readonly_depth: ReadOnlyDepth,
    /// tmpfs: the mount flags (`noexec`, `nosuid`, `nodev`, their opposites, `ro`) and the
    /// filesystem's data (`size=...`, `mode=...`, `nr_inodes=...`, `uid=`, `gid=`), as
    /// `--tmpfs` takes them. Checked by the engine; the runtime refuses what it does not know.
    pub options: Vec<String>,
}

/// How far a read-only bind is read-only.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadOnlyDepth {
    /// Every mount below the source too (mount_setattr, Linux 5.12), the bind's own mount
    /// alone on an older kernel (Docker's default).
    #[default]
    Recursive,
    /// The bind's own mount alone.
    NonRecursive,
    /// Every mount below the source too, or the start fails.
    Force,
}

/// What a [`ContainerMount`] mounts.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MountKind {
    /// A bind of `source`.
    #[default]
    Bind,
    /// A new tmpfs (`--tmpfs`, `--mount type=tmpfs`).
    Tmpfs,
}

/// A bind mount's propagation, as Docker's `-v` modes name it. A `shared` bind is a copy of
/// the source's mount taken in the host's mount namespace (the shim's is a slave of it), so
/// it joins the source's peer group and the container's mounts under it reach the host.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    /// `private`: this mount only.
    Private,
    /// `rprivate`, the default: the mount and every mount below it.
    #[default]
    RPrivate,
    /// `slave`: mounts made on the host under the source appear in the container.
    Slave,
    /// `rslave`: the same, recursively.
    RSlave,
    /// `shared`: mounts made on either side under the source appear on the other (the
    /// source's mount must be shared on the host).
    Shared,
    /// `rshared`: the same, recursively.
    RShared,
}

impl Propagation {
    /// Docker's name of the mode (`rprivate`, `slave`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::RPrivate => "rprivate",
            Propagation::Slave => "slave",
            Propagation::RSlave => "rslave",
            Propagation::Shared => "shared",
            Propagation::RShared => "rshared",
        }
    }
}

/// Seccomp setting (`--security-opt seccomp=...`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Seccomp {
    /// Docker's default profile, filtered by the container's capabilities.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile in Docker's JSON format (the text of the file).
    Profile(String),
}

/// Network namespace setting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A new, empty network namespace (only `lo`).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// Join the namespace at this path (e.g. `/run/berth/netns/<id>`).
    Path(PathBuf),
}

/// cgroup limits, in Docker's units.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct Resources {
    /// `--memory`, bytes.
    pub memory: Option<i64>,
    /// `--memory-swap`: memory plus swap, bytes; -1 unlimited. Ignored when the kernel has no
    /// swap accounting (Docker warns and discards it too).
    pub memory_swap: Option<i64>,
    /// `--cpu-shares`.
    pub cpu_shares: Option<u64>,
    /// `--cpu-quota`, microseconds.
    pub cpu_quota: Option<i64>,
    /// `--cpu-period`, microseconds.
    pub cpu_period: Option<u64>,
    /// `--cpuset-cpus`, e.g. `0-1`.
    pub cpuset_cpus: Option<String>,
    /// `--cpuset-mems`: the memory (NUMA) nodes, e.g. `0`.
    pub cpuset_mems: Option<String>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// Device cgroup rules allowed after Docker's defaults (`--device`,
    /// `--device-cgroup-rule`).
    pub devices: Vec<DeviceRule>,
}

/// json-file log settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct LogConfig {
    /// The log file, e.g. `/var/lib/berth/containers/<id>/<id>-json.log`.
    pub path: PathBuf,
    /// Rotate when the file reaches this many bytes (`max-size`); `None`: never rotate.
    pub max_size: Option<u64>,
    /// Number of files kept including the current one (`max-file`); rotated files are
    /// `path.1` .. `path.(max_files-1)`. 0 or 1: the file is truncated instead.
    pub max_files: u32,
}

/// A tmpfs mount's options, merged as Docker merges them (`MergeTmpfsOptions`): Docker's
/// defaults `noexec,nosuid,nodev` first, then the mount's own, a later flag overriding an
/// earlier one of its kind (`exec` after `noexec`) and a later `key=value` its key's
/// earlier value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsOptions {
    /// `MS_*` flags.
    pub flags: u64,
    /// The filesystem's data (`size=65536k,mode=1777`), without the flags.
    pub data: String,
}

/// The mount flags a tmpfs option may set or clear: (name, flag, set).
const TMPFS_FLAGS: &[(&str, u64, bool)] = &[
    ("ro", libc::MS_RDONLY, true),
    ("rw", libc::MS_RDONLY, false),
    ("noexec", libc::MS_NOEXEC, true),
    ("exec", libc::MS_NOEXEC, false),
    ("nosuid", libc::MS_NOSUID, true),
    ("suid", libc::MS_NOSUID, false),
    ("nodev", libc::MS_NODEV, true),
    ("dev", libc::MS_NODEV, false),
    ("sync", libc::MS_SYNCHRONOUS, true),
    ("async", libc::MS_SYNCHRONOUS, false),
    ("dirsync", libc::MS_DIRSYNC, true),
    ("noatime", libc::MS_NOATIME, true),
    ("atime", libc::MS_NOATIME, false),
    ("nodiratime", libc::MS_NODIRATIME, true),
    ("diratime", libc::MS_NODIRATIME, false),
    ("relatime", libc::MS_RELATIME, true),
    ("norelatime", libc::MS_RELATIME, false),
    ("strictatime", libc::MS_STRICTATIME, true),
    ("nostrictatime", libc::MS_STRICTATIME, false),
];

/// The data keys tmpfs takes (tmpfs(5)).
const TMPFS_KEYS: &[&str] = &[
    "size",
    "nr_blocks",
    "nr_inodes",
    "mode",
    "uid",
    "gid",
    "huge",
    "mpol",
];

impl TmpfsOptions {
    /// Merges Docker's defaults and `options`; an option tmpfs does not know, or a
    /// propagation that a new tmpfs cannot have (`shared`), is refused by name.
    pub fn parse(options: &[String]) -> Result<TmpfsOptions, String> {
        let mut flags = libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV;
        let mut data: Vec<(String, String)> = Vec::new();
        for opt in options.iter().flat_map(|o| o.split(',')) {
            // Docker's `MergeTmpfsOptions` passes `defaults` over: its own defaults stay.
            if opt.is_empty() || opt == "defaults" {
                continue;
            }
            if let Some((key, value)) = opt.split_once('=') {
                if !TMPFS_KEYS.contains(&key) || value.is_empty() {
                    return Err(format!("invalid tmpfs option {opt:?}"));
                }
                data.retain(|(k, _)| k != key);
                data.push((key.to_string(), value.to_string()));
                continue;
            }
            match TMPFS_FLAGS.iter().find(|(name, _, _)| *name == opt) {
                Some((_, flag, true)) => flags |= flag,
                Some((_, flag, false)) => flags &= !flag,
                // A new tmpfs has no peers: every propagation but shared is the same.
                None if matches!(opt, "private" | "rprivate" | "slave" | "rslave") => {}
                None => return Err(format!("invalid tmpfs option {opt:?}")),
            }
        }
        let data = data
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        Ok(TmpfsOptions { flags, data })
    }
}

#[cfg(test)]
mod tmpfs_tests {
    use super::*;

    fn opts(s: &[&str]) -> Result<TmpfsOptions, String> {
        TmpfsOptions::parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn dockers_defaults_then_the_mounts_own_options() {
        let o = opts(&[]).unwrap();
        assert_eq!(o.flags, libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV);
        assert_eq!(o.data, "");
        let o = opts(&["exec,size=1m", "mode=1700,size=2m", "ro"]).unwrap();
        assert_eq!(
            o.flags,
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RDONLY,
            "exec clears noexec"
        );
        assert_eq!(o.data, "mode=1700,size=2m", "the last size wins");
        assert!(opts(&["rprivate"]).is_ok());
    }

    /// Docker's `MergeTmpfsOptions` passes `defaults` over (`--tmpfs /run:defaults,size=1m`
    /// is accepted, its defaults `noexec,nosuid,nodev` kept); berth refused it.
    #[test]
    fn defaults_is_passed_over_as_docker() {
        let o = opts(&["defaults,size=1m"]).unwrap();
        assert_eq!(o.flags, libc::MS_NOEXEC | libc::MS_NOSUID | libc::MS_NODEV);
        assert_eq!(o.data, "size=1m");
    }

    #[test]
    fn unknown_options_are_refused_by_name() {
        for bad in ["shared", "rshared", "bogus", "size=", "lowerdir=/x", "bind"] {
            assert_eq!(
                opts(&[bad]).unwrap_err(),
                format!("invalid tmpfs option {bad:?}"),
                "{bad}"
            );
        }
    }
}
