//! Socket-level redirect of published ports for clients on the host (Cilium's "socket LB").
//!
//! berth publishes a container port with nftables DNAT. For a client on the host itself
//! (`127.0.0.1:P`, `[::1]:P`, the host's own addresses) that path costs throughput: NAT in
//! LOCAL_OUT re-routes every locally generated packet. Here, cgroup `connect4`/`connect6` eBPF
//! programs on the cgroup2 root rewrite the destination of a host process's TCP `connect()`
//! from the published address to the container's, before the kernel routes anything: the
//! connection is then an ordinary one to the container, with no NAT at all. The nftables rules
//! stay as they are: this is only an accelerator, and every connection it does not rewrite
//! (UDP, remote clients, no BPF on this kernel, a redirect not yet inserted) takes the NAT path
//! as before.
//!
//! Design:
//! - one BPF hash map per family: key `{daddr (4 or 16 bytes, network order), dport (network
//!   order, padded to 4 bytes)}` -> value `{container address, port, deadline}`, filled with
//!   [`SockRedirect::insert`] (no deadline) or [`SockRedirect::insert_until`]. The deadline is
//!   an instant of the kernel's `CLOCK_BOOTTIME` ([`clock_ns`], the programs'
//!   `bpf_ktime_get_boot_ns`, Linux 5.8; 0: none), after which the programs pass the entry
//!   by: an entry its owner no longer renews lapses by itself, whoever is alive. Boot time
//!   counts a suspended machine's sleep too, so a lease is never stretched by one. An IPv4
//!   entry is mirrored into the IPv6 map as its v4-mapped form (`::ffff:127.0.0.1`), so a
//!   dual-stack socket connecting to a mapped address is redirected too;
//! - only TCP: the programs leave every socket that is not `SOCK_STREAM`/`IPPROTO_TCP` alone
//!   (UDP and SCTP stay on the NAT path; an MPTCP socket's TCP subflow is redirected, and its
//!   `getpeername()` shows the container's address);
//! - only sockets of the host's network namespace (the one that called [`SockRedirect::open`]):
//!   the programs compare `bpf_get_netns_cookie` with the host's cookie, an immediate in the
//!   code. A container's own sockets (its own namespace) are never redirected: isolation
//!   between networks depends on their traffic crossing the host's forward rules;
//! - the programs are attached to the cgroup2 root as BPF links (the modern form of
//!   `BPF_F_ALLOW_MULTI`: systemd's and anyone else's programs keep running) and always allow
//!   the call;
//! - `getpeername4/6` programs (when the kernel has BPF_MAP_TYPE_SK_STORAGE with BTF, >= 5.8)
//!   keep the rewrite invisible to the client: at connect the original address is stored in
//!   the socket's local storage, and `getpeername()` shows it again while the socket's real
//!   peer is the container address it was sent to. Without them, a redirected client's
//!   `getpeername()` shows the container's address ([`SockRedirect::hides_rewrite`]).
//!   `getsockname()` shows the local address the route to the container chose (the bridge's
//!   gateway address), where the NAT path showed `127.0.0.1`;
//! - links and maps are pinned under `/sys/fs/bpf/berth/` (bpffs is mounted there when absent,
//!   as systemd does). A berthd restarted after SIGKILL finds them through [`SockRedirect::open`]
//!   and reuses them instead of attaching a second copy; a program whose code differs from the
//!   current one (an upgrade) is replaced in place on its link (BPF_LINK_UPDATE, atomic for the
//!   hook). The program's name carries a hash of its code (`berth_c4_1a2b3c`).
//!
//! What stays behind when berthd dies: the pinned links (so the programs stay attached) and
//! maps with their entries. That is the point: containers (and their nftables rules) outlive
//! berthd, and so do their redirects (those without a deadline; the others lapse when
//! it comes). An entry for a container that died meanwhile sends the
//! client to an address nobody answers on, as the stale DNAT rule would; the restarted berthd
//! resyncs with [`SockRedirect::entries`]/[`SockRedirect::clear`]. [`SockRedirect::teardown`]
//! detaches and unpins everything. If bpffs is unmounted, the pins and with them the links go
//! away, which detaches the programs: nothing is left attached that nobody can find.
//!
//! Limits: TCP only; the host's own namespace only; exact (address, port) entries: a port
//! published on every address needs one entry per host address the caller wants accelerated
//! (loopback and the host's addresses); a client that bound its socket to a loopback source
//! before connecting is redirected too and then needs the NAT table's masquerade, as on the
//! DNAT path; one owner at a time (berthd): concurrent [`SockRedirect::open`]s of the same
//! directory are not coordinated.

use std::fs;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::linux::bpf::{self, Insn, MapSpec};

/// Where berthd pins its links and maps.
pub const PIN_DIR: &str = "/sys/fs/bpf/berth";

/// The bpf filesystem's usual mount point.
const BPFFS: &str = "/sys/fs/bpf";

/// Most entries per family (no memory is taken ahead: `BPF_F_NO_PREALLOC`).
pub const MAX_ENTRIES: u32 = 65536;

/// Bumped when the programs' meaning changes without their code changing.
const LAYOUT_VERSION: u32 = 2;

const V4_MAP: MapSpec = MapSpec {
    map_type: bpf::MAP_TYPE_HASH,
    key_size: 8,
    value_size: 16,
    max_entries: MAX_ENTRIES,
    flags: bpf::F_NO_PREALLOC,
};
const V6_MAP: MapSpec = MapSpec {
    map_type: bpf::MAP_TYPE_HASH,
    key_size: 20,
    value_size: 32,
    max_entries: MAX_ENTRIES,
    flags: bpf::F_NO_PREALLOC,
};
/// Where the deadline (a u64) sits in a value: after the address and port word (and, for
/// IPv6, 4 bytes of padding that keep it 8-aligned).
const DEADLINE4: i16 = 8;
const DEADLINE6: i16 = 24;

/// Per-socket storage: `{original addr[16], original port u32, container addr[16], port u32}`.
const PEER_MAP: MapSpec = MapSpec {
    map_type: bpf::MAP_TYPE_SK_STORAGE,
    key_size: 4,
    value_size: 40,
    max_entries: 0,
    flags: bpf::F_NO_PREALLOC,
};

/// The redirect table: open with [`SockRedirect::open`].
#[derive(Debug)]
pub struct SockRedirect {
    dir: PathBuf,
    v4: OwnedFd,
    v6: OwnedFd,
    hides_rewrite: bool,
}

/// One of the four hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    Connect4,
    Connect6,
    Peer4,
    Peer6,
}

impl Hook {
    fn tag(self) -> &'static str {
        match self {
            Hook::Connect4 => "c4",
            Hook::Connect6 => "c6",
            Hook::Peer4 => "p4",
            Hook::Peer6 => "p6",
        }
    }
    fn attach_type(self) -> u32 {
        match self {
            Hook::Connect4 => bpf::CGROUP_INET4_CONNECT,
            Hook::Connect6 => bpf::CGROUP_INET6_CONNECT,
            Hook::Peer4 => bpf::CGROUP_INET4_GETPEERNAME,
            Hook::Peer6 => bpf::CGROUP_INET6_GETPEERNAME,
        }
    }
    fn link_file(self) -> String {
        format!("{}_link", self.tag())
    }
    const ALL: [Hook; 4] = [Hook::Connect4, Hook::Connect6, Hook::Peer4, Hook::Peer6];
}

/// The error of a step, naming it.
fn step(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    let what = what.to_string();
    move |e| io::Error::new(e.kind(), format!("socket redirect: {what}: {e}"))
}

impl SockRedirect {
    /// Opens the redirect of this host: pins in [`PIN_DIR`] (bpffs mounted at `/sys/fs/bpf` if
    /// absent), programs on the root of the cgroup2 hierarchy found in `/proc/self/mountinfo`,
    /// redirecting sockets of the caller's network namespace. Reuses what an earlier berthd
    /// pinned (entries included); replaces programs whose code differs.
    pub fn open() -> io::Result<SockRedirect> {
        SockRedirect::open_at(Path::new(PIN_DIR), &cgroup2_root()?)
    }

    /// [`SockRedirect::open`] with its pin directory (in a bpf filesystem; one at
    /// `/sys/fs/bpf` is mounted if absent) and the cgroup2 directory to attach to.
    pub fn open_at(dir: &Path, cgroup: &Path) -> io::Result<SockRedirect> {
        ensure_bpffs(dir)?;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(step(format_args!("create {}", dir.display())))?;
        let cgroup_dir = fs::File::open(cgroup)
            .map_err(step(format_args!("open cgroup {}", cgroup.display())))?;
        let cgroup_id = cgroup_dir.metadata()?.ino();
        let probe = std::os::unix::net::UnixDatagram::unbound()?;
        let cookie = bpf::netns_cookie(probe.as_fd()).map_err(step("netns cookie"))?;

        let (v4, fresh4) = open_map(dir, "v4_map", V4_MAP, None)?;
        let (v6, fresh6) = open_map(dir, "v6_map", V6_MAP, None)?;
        // Per-socket storage needs BTF; without it (old kernel) the getpeername hooks are left
        // out and a redirected client sees the container as its peer.
        let peer = match peer_btf() {
            Ok(btf) => open_map(dir, "peer_map", PEER_MAP, Some(btf.as_fd())).ok(),
            Err(_) => None,
        };
        let maps_fresh = fresh4 || fresh6 || peer.as_ref().is_some_and(|p| p.1);
        let peer = peer.map(|p| p.0);
        let mut hooks = vec![Hook::Connect4, Hook::Connect6];
        if peer.is_some() {
            hooks.extend([Hook::Peer4, Hook::Peer6]);
        }
        let mut hides_rewrite = peer.is_some();
        for hook in hooks {
            let maps = Maps {
                v4: &v4,
                v6: &v6,
                peer: peer.as_ref(),
            };
            let insns = program(hook, cookie, &maps);
            let name = format!("berth_{}_{:06x}", hook.tag(), code_hash(&insns) & 0xff_ffff);
            let result = attach(dir, hook, &insns, &name, &cgroup_dir, cgroup_id, maps_fresh);
            match result {
                Ok(()) => {}
                // getpeername hooks are a nicety (kernel >= 5.8): without them, connects are
                // still redirected.
                Err(_) if matches!(hook, Hook::Peer4 | Hook::Peer6) => {
                    hides_rewrite = false;
                    remove_link(dir, hook)?;
                }
                Err(e) => return Err(e),
            }
        }
        if !hides_rewrite {
            for hook in [Hook::Peer4, Hook::Peer6] {
                remove_link(dir, hook)?;
            }
        }
        Ok(SockRedirect {
            dir: dir.to_path_buf(),
            v4,
            v6,
            hides_rewrite,
        })
    }

    /// Whether a redirected client's `getpeername()` shows the address it connected to (the
    /// getpeername hooks are attached), rather than the container's.
    pub fn hides_rewrite(&self) -> bool {
        self.hides_rewrite
    }

    /// The pin directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Redirects TCP connects of the host to `from` to `to` (replacing an entry for `from`).
    /// Both of one family, neither with port 0.
    pub fn insert(&self, from: SocketAddr, to: SocketAddr) -> io::Result<()> {
        self.insert_until(from, to, None)
    }

    /// [`SockRedirect::insert`] of an entry the programs pass by once [`clock_ns`] is past
    /// `until` (none: never).
    pub fn insert_until(
        &self,
        from: SocketAddr,
        to: SocketAddr,
        until: Option<u64>,
    ) -> io::Result<()> {
        let until = until.map_or(0, |u| u.max(1));
        if from.port() == 0 || to.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket redirect {from} -> {to}: port 0"),
            ));
        }
        match (from, to) {
            (SocketAddr::V4(f), SocketAddr::V4(t)) => {
                bpf::map_update(self.v4.as_fd(), &key4(f), &value4(t, until))
                    .map_err(step(format_args!("insert {from} -> {to}")))?;
                let mirror = value6(mapped(t), until);
                bpf::map_update(self.v6.as_fd(), &key6(mapped(f)), &mirror).map_err(|e| {
                    // All or nothing: an IPv4 entry without its mirror would be one the
                    // caller does not know it holds.
                    let _ = bpf::map_delete(self.v4.as_fd(), &key4(f));
                    step(format_args!("insert {from} -> {to} (v4-mapped)"))(e)
                })
            }
            (SocketAddr::V6(f), SocketAddr::V6(t)) => {
                bpf::map_update(self.v6.as_fd(), &key6(f), &value6(t, until))
                    .map_err(step(format_args!("insert {from} -> {to}")))
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("socket redirect {from} -> {to}: the addresses are of two families"),
            )),
        }
    }

    /// Removes the redirect of `from`; false if there was none.
    pub fn remove(&self, from: SocketAddr) -> io::Result<bool> {
        let err = step(format!("remove {from}"));
        match from {
            SocketAddr::V4(f) => {
                let a = bpf::map_delete(self.v4.as_fd(), &key4(f)).map_err(err)?;
                let b = bpf::map_delete(self.v6.as_fd(), &key6(mapped(f)))
                    .map_err(step(format_args!("remove {from} (v4-mapped)")))?;
                Ok(a || b)
            }
            SocketAddr::V6(f) => bpf::map_delete(self.v6.as_fd(), &key6(f)).map_err(err),
        }
    }

    /// Where connects to `from` go, if there is an entry (lapsed or not).
    pub fn get(&self, from: SocketAddr) -> io::Result<Option<SocketAddr>> {
        Ok(self.get_until(from)?.map(|(to, _)| to))
    }

    /// The entry of `from`: where connects go, and its deadline if it has one.
    pub fn get_until(&self, from: SocketAddr) -> io::Result<Option<(SocketAddr, Option<u64>)>> {
        let err = step(format!("look up {from}"));
        let until = |v: &[u8], at: i16| {
            let at = at as usize;
            let d = u64::from_ne_bytes(v[at..at + 8].try_into().expect("8 bytes"));
            (d != 0).then_some(d)
        };
        Ok(match from {
            SocketAddr::V4(f) => {
                let mut v = [0u8; V4_MAP.value_size as usize];
                bpf::map_lookup(self.v4.as_fd(), &key4(f), &mut v)
                    .map_err(err)?
                    .then(|| (SocketAddr::V4(parse4(&v)), until(&v, DEADLINE4)))
            }
            SocketAddr::V6(f) => {
                let mut v = [0u8; V6_MAP.value_size as usize];
                bpf::map_lookup(self.v6.as_fd(), &key6(f), &mut v)
                    .map_err(err)?
                    .then(|| (SocketAddr::V6(parse6(&v)), until(&v, DEADLINE6)))
            }
        })
    }

    /// Every redirect `(from, to)` (IPv4 entries once, not their v4-mapped mirrors).
    pub fn entries(&self) -> io::Result<Vec<(SocketAddr, SocketAddr)>> {
        let mut out = Vec::new();
        let limit = MAX_ENTRIES as usize + 1;
        for key in bpf::map_keys(self.v4.as_fd(), 8, limit).map_err(step("list IPv4 entries"))? {
            let from = SocketAddr::V4(parse4(&key));
            if let Some(to) = self.get(from)? {
                out.push((from, to));
            }
        }
        for key in bpf::map_keys(self.v6.as_fd(), 20, limit).map_err(step("list IPv6 entries"))? {
            let from = parse6(&key);
            if from.ip().to_ipv4_mapped().is_some() {
                continue;
            }
            let from = SocketAddr::V6(from);
            if let Some(to) = self.get(from)? {
                out.push((from, to));
            }
        }
        Ok(out)
    }

    /// Removes every redirect (the v4-mapped mirrors included).
    pub fn clear(&self) -> io::Result<()> {
        let limit = MAX_ENTRIES as usize + 1;
        for (map, size) in [(&self.v4, 8), (&self.v6, 20)] {
            // Deleting while walking can restart the walk; collect first, then delete.
            let keys = bpf::map_keys(map.as_fd(), size, limit).map_err(step("list entries"))?;
            for key in keys {
                bpf::map_delete(map.as_fd(), &key).map_err(step("clear"))?;
            }
        }
        Ok(())
    }

    /// Detaches the programs and unpins everything (the directory included).
    pub fn teardown(self) -> io::Result<()> {
        let dir = self.dir.clone();
        drop(self);
        SockRedirect::teardown_at(&dir)
    }

    /// Detaches and unpins what is pinned in `dir` without opening it (nothing there is fine).
    pub fn teardown_at(dir: &Path) -> io::Result<()> {
        for hook in Hook::ALL {
            remove_link(dir, hook)?;
        }
        for map in ["v4_map", "v6_map", "peer_map"] {
            remove_pin(&dir.join(map))?;
        }
        match fs::remove_dir(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(step(format_args!("remove {}", dir.display()))(e))
            }
            _ => Ok(()),
        }
    }

    /// The ids of the programs attached directly to the cgroup `cgroup` for the connect hook of
    /// IPv4 (`v6` false) or IPv6, whoever attached them (BPF_PROG_QUERY).
    pub fn attached_connect_programs(cgroup: &Path, v6: bool) -> io::Result<Vec<u32>> {
        let dir = fs::File::open(cgroup)?;
        let hook = if v6 { Hook::Connect6 } else { Hook::Connect4 };
        bpf::prog_query(dir.as_fd(), hook.attach_type()).map_err(step("query"))
    }

    /// The names of the programs with these ids (those still loaded).
    pub fn program_names(ids: &[u32]) -> Vec<String> {
        ids.iter()
            .filter_map(|&id| bpf::prog_by_id(id).ok())
            .filter_map(|fd| bpf::prog_info(fd.as_fd()).ok())
            .map(|info| info.name)
            .collect()
    }
}

/// Now on the clock of the entries' deadlines, in nanoseconds: the kernel's
/// `CLOCK_BOOTTIME` (the programs' `bpf_ktime_get_boot_ns`), whatever time namespace the
/// caller is in (its offset, from `/proc/self/timens_offsets`, is taken away).
pub fn clock_ns() -> u64 {
    static OFFSET: std::sync::OnceLock<i128> = std::sync::OnceLock::new();
    let offset = *OFFSET.get_or_init(|| {
        fs::read_to_string("/proc/self/timens_offsets")
            .ok()
            .and_then(|text| boottime_offset(&text))
            .unwrap_or(0)
    });
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into `ts`, which outlives the call;
    // CLOCK_BOOTTIME exists on every kernel this runs on (2.6.39 on).
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    let ns = i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec) - offset;
    ns.clamp(0, i128::from(u64::MAX)) as u64
}

/// The `boottime` line of `/proc/self/timens_offsets` (`boottime <secs> <nanosecs>`), in
/// nanoseconds.
fn boottime_offset(text: &str) -> Option<i128> {
    text.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        if words.next()? != "boottime" {
            return None;
        }
        let secs: i128 = words.next()?.parse().ok()?;
        let nanos: i128 = words.next()?.parse().ok()?;
        Some(secs * 1_000_000_000 + nanos)
    })
}

/// The mount point of the cgroup2 hierarchy (the unified one of a hybrid host).
pub fn cgroup2_root() -> io::Result<PathBuf> {
    match crate::cgroups::Layout::detect()? {
        crate::cgroups::Layout::V2 { root, .. } => Ok(root),
        crate::cgroups::Layout::V1 {
            unified: Some(root),
            ..
        } => Ok(root),
        crate::cgroups::Layout::V1 { unified: None, .. } => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "socket redirect: no cgroup2 hierarchy is mounted",
        )),
    }
}

/// Makes sure `dir` lies in a bpf filesystem, mounting one at `/sys/fs/bpf` when `dir` is
/// below it and nothing is mounted there.
fn ensure_bpffs(dir: &Path) -> io::Result<()> {
    let text = fs::read_to_string("/proc/self/mountinfo")?;
    let in_bpffs = text.lines().any(|line| {
        let Some((head, tail)) = line.split_once(" - ") else {
            return false;
        };
        let mount_point = head
            .split(' ')
            .nth(4)
            .map(crate::cgroups::unescape_mountinfo);
        tail.split(' ').next() == Some("bpf")
            && mount_point.is_some_and(|m| dir.starts_with(Path::new(&m)))
    });
    if in_bpffs {
        return Ok(());
    }
    if !dir.starts_with(BPFFS) {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "socket redirect: {} is not in a bpf filesystem",
                dir.display()
            ),
        ));
    }
    fs::create_dir_all(BPFFS).map_err(step(format_args!("create {BPFFS}")))?;
    bpf::mount_bpffs(Path::new(BPFFS)).map_err(step(format_args!("mount bpffs on {BPFFS}")))
}

/// Opens the map pinned at `dir/name` when it has `spec`, or creates and pins a new one
/// (replacing a pin of another shape). The flag says whether it is new.
fn open_map(
    dir: &Path,
    name: &str,
    spec: MapSpec,
    btf: Option<std::os::fd::BorrowedFd<'_>>,
) -> io::Result<(OwnedFd, bool)> {
    let path = dir.join(name);
    if let Some(fd) = bpf::obj_get(&path).map_err(step(format_args!("open pinned {name}")))? {
        if bpf::map_info(fd.as_fd()).ok() == Some(spec) {
            return Ok((fd, false));
        }
        remove_pin(&path)?;
    }
    let fd = bpf::map_create(spec, &format!("berth_{name}"), btf.map(|b| (b, 1, 2)))
        .map_err(step(format_args!("create map {name}")))?;
    bpf::obj_pin(fd.as_fd(), &path).map_err(step(format_args!("pin map {name}")))?;
    Ok((fd, true))
}

/// Makes the link of `hook` in `dir` run `insns`: reuses a pinned link whose program has
/// `name` (unless `reload`), replaces its program otherwise, or creates and pins a link.
fn attach(
    dir: &Path,
    hook: Hook,
    insns: &[Insn],
    name: &str,
    cgroup: &fs::File,
    cgroup_id: u64,
    reload: bool,
) -> io::Result<()> {
    let path = dir.join(hook.link_file());
    let what = hook.tag();
    if let Some(link) =
        bpf::obj_get(&path).map_err(step(format_args!("open pinned {what} link")))?
    {
        let info = bpf::link_info(link.as_fd()).map_err(step(format_args!("{what} link info")))?;
        if info.cgroup_id == cgroup_id && info.attach_type == hook.attach_type() {
            let current = bpf::prog_by_id(info.prog_id)
                .and_then(|p| bpf::prog_info(p.as_fd()))
                .map(|p| p.name)
                .ok();
            if !reload && current.as_deref() == Some(name) {
                return Ok(());
            }
            let prog = bpf::prog_load(insns, name, hook.attach_type())
                .map_err(step(format_args!("load {what} program")))?;
            return bpf::link_update(link.as_fd(), prog.as_fd())
                .map_err(step(format_args!("replace {what} program")));
        }
        // A link of another cgroup or hook under our name: not ours to keep.
        let _ = bpf::link_detach(link.as_fd());
        remove_pin(&path)?;
    }
    let prog = bpf::prog_load(insns, name, hook.attach_type())
        .map_err(step(format_args!("load {what} program")))?;
    let link = bpf::link_create(prog.as_fd(), cgroup.as_fd(), hook.attach_type())
        .map_err(step(format_args!("attach {what} program")))?;
    bpf::obj_pin(link.as_fd(), &path).map_err(step(format_args!("pin {what} link")))
}

/// Detaches and unpins the link of `hook` in `dir`, if any.
fn remove_link(dir: &Path, hook: Hook) -> io::Result<()> {
    let path = dir.join(hook.link_file());
    if let Some(link) =
        bpf::obj_get(&path).map_err(step(format_args!("open {}", path.display())))?
    {
        bpf::link_detach(link.as_fd()).map_err(step(format_args!("detach {}", hook.tag())))?;
    }
    remove_pin(&path)
}

fn remove_pin(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            Err(step(format_args!("unpin {}", path.display()))(e))
        }
        _ => Ok(()),
    }
}

/// A port as the programs see it: `user_port` loads the network-order u16 into a register,
/// which is stored as a native u32.
fn port_word(port: u16) -> [u8; 4] {
    u32::from(u16::from_ne_bytes(port.to_be_bytes())).to_ne_bytes()
}

fn word_port(word: &[u8]) -> u16 {
    let w = u32::from_ne_bytes(word.try_into().expect("4 bytes"));
    u16::from_be_bytes((w as u16).to_ne_bytes())
}

fn key4(a: SocketAddrV4) -> [u8; 8] {
    let mut k = [0u8; 8];
    k[..4].copy_from_slice(&a.ip().octets());
    k[4..].copy_from_slice(&port_word(a.port()));
    k
}

fn key6(a: SocketAddrV6) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(&a.ip().octets());
    k[16..].copy_from_slice(&port_word(a.port()));
    k
}

/// A value: the key's layout of `to`, then the deadline.
fn value4(to: SocketAddrV4, until: u64) -> [u8; V4_MAP.value_size as usize] {
    let mut v = [0u8; V4_MAP.value_size as usize];
    v[..8].copy_from_slice(&key4(to));
    v[DEADLINE4 as usize..].copy_from_slice(&until.to_ne_bytes());
    v
}

fn value6(to: SocketAddrV6, until: u64) -> [u8; V6_MAP.value_size as usize] {
    let mut v = [0u8; V6_MAP.value_size as usize];
    v[..20].copy_from_slice(&key6(to));
    v[DEADLINE6 as usize..].copy_from_slice(&until.to_ne_bytes());
    v
}

fn parse4(k: &[u8]) -> SocketAddrV4 {
    let ip: [u8; 4] = k[..4].try_into().expect("4 bytes");
    SocketAddrV4::new(Ipv4Addr::from(ip), word_port(&k[4..8]))
}

fn parse6(k: &[u8]) -> SocketAddrV6 {
    let ip: [u8; 16] = k[..16].try_into().expect("16 bytes");
    SocketAddrV6::new(Ipv6Addr::from(ip), word_port(&k[16..20]), 0, 0)
}

fn mapped(a: SocketAddrV4) -> SocketAddrV6 {
    SocketAddrV6::new(a.ip().to_ipv6_mapped(), a.port(), 0, 0)
}

/// BTF for the per-socket storage map, which the kernel requires: `[1] int`, `[2] int[10]`.
fn peer_btf() -> io::Result<OwnedFd> {
    let mut types = Vec::new();
    let mut put = |v: u32| types.extend_from_slice(&v.to_ne_bytes());
    // [1] INT "int": name_off 1, kind INT (1) << 24, size 4; signed (1 << 24), 32 bits.
    put(1);
    put(1 << 24);
    put(4);
    put((1 << 24) | 32);
    // [2] ARRAY: no name, kind ARRAY (3) << 24, size 0; element [1], index [1], 10 elements.
    put(0);
    put(3 << 24);
    put(0);
    put(1);
    put(1);
    put(10);
    let strings = b"\0int\0";
    let mut blob = Vec::new();
    blob.extend_from_slice(&0xeb9fu16.to_ne_bytes());
    blob.push(1); // version
    blob.push(0); // flags
    for v in [
        24u32,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        blob.extend_from_slice(&v.to_ne_bytes());
    }
    blob.extend_from_slice(&types);
    blob.extend_from_slice(strings);
    bpf::btf_load(&blob).map_err(step("load BTF"))
}

/// FNV-1a of the program's bytes (map references zeroed: they are descriptors of this
/// process) and the layout version: stable across processes and builds.
fn code_hash(insns: &[Insn]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: u8| {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    };
    LAYOUT_VERSION.to_le_bytes().into_iter().for_each(&mut eat);
    for insn in insns {
        let mut insn = *insn;
        if insn.code == LD_IMM64 && insn.src == PSEUDO_MAP_FD {
            insn.imm = 0;
        }
        insn.to_bytes().into_iter().for_each(&mut eat);
    }
    h
}

struct Maps<'a> {
    v4: &'a OwnedFd,
    v6: &'a OwnedFd,
    peer: Option<&'a OwnedFd>,
}

// eBPF opcodes.
const LD_IMM64: u8 = 0x18;
const PSEUDO_MAP_FD: u8 = 1;
const LDX_W: u8 = 0x61;
const LDX_DW: u8 = 0x79;
const STX_W: u8 = 0x63;
const MOV64_X: u8 = 0xbf;
const MOV64_K: u8 = 0xb7;
const ADD64_K: u8 = 0x07;
const JEQ_K: u8 = 0x15;
const JNE_K: u8 = 0x55;
const JNE_X: u8 = 0x5d;
const JGT_X: u8 = 0x2d;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

// Helpers.
const MAP_LOOKUP_ELEM: i32 = 1;
const KTIME_GET_BOOT_NS: i32 = 125;
const SK_STORAGE_GET: i32 = 107;
const GET_NETNS_COOKIE: i32 = 122;
const SK_STORAGE_GET_F_CREATE: i32 = 1;

// struct bpf_sock_addr offsets.
const USER_IP4: i16 = 4;
const USER_IP6: i16 = 8;
const USER_PORT: i16 = 24;
const TYPE: i16 = 32;
const PROTOCOL: i16 = 36;
const SK: i16 = 64;

// Registers.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R6: u8 = 6;
const R7: u8 = 7;
const R8: u8 = 8;
const FP: u8 = 10;

/// A straight-line program with forward jumps to two labels: `Out` (return 1) and `Rewrite`.
#[derive(Default)]
struct Asm {
    insns: Vec<Insn>,
    fixups: Vec<(usize, Label)>,
    rewrite: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Label {
    Out,
    Rewrite,
}

impl Asm {
    fn op(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            dst,
            src,
            off,
            imm,
        });
    }
    fn mov(&mut self, dst: u8, src: u8) {
        self.op(MOV64_X, dst, src, 0, 0);
    }
    fn mov_imm(&mut self, dst: u8, imm: i32) {
        self.op(MOV64_K, dst, 0, 0, imm);
    }
    fn load(&mut self, dst: u8, base: u8, off: i16) {
        self.op(LDX_W, dst, base, off, 0);
    }
    fn store(&mut self, base: u8, off: i16, src: u8) {
        self.op(STX_W, base, src, off, 0);
    }
    /// Copies `words` u32s from `src_base+src_off` to `dst_base+dst_off` through r1.
    fn copy(&mut self, dst_base: u8, dst_off: i16, src_base: u8, src_off: i16, words: i16) {
        for i in 0..words {
            self.load(R1, src_base, src_off + 4 * i);
            self.store(dst_base, dst_off + 4 * i, R1);
        }
    }
    fn imm64(&mut self, dst: u8, src: u8, value: u64) {
        self.op(LD_IMM64, dst, src, 0, value as u32 as i32);
        self.op(0, 0, 0, 0, (value >> 32) as u32 as i32);
    }
    fn map(&mut self, dst: u8, map: &OwnedFd) {
        use std::os::fd::AsRawFd;
        self.op(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map.as_raw_fd());
        self.op(0, 0, 0, 0, 0);
    }
    fn call(&mut self, helper: i32) {
        self.op(CALL, 0, 0, 0, helper);
    }
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, to: Label) {
        self.fixups.push((self.insns.len(), to));
        self.op(code, dst, src, 0, imm);
    }
    fn rewrite_here(&mut self) {
        self.rewrite = Some(self.insns.len());
    }
    /// Appends `out: r0 = 1; exit` and resolves the jumps.
    fn finish(mut self) -> Vec<Insn> {
        let out = self.insns.len();
        self.mov_imm(R0, 1);
        self.op(EXIT, 0, 0, 0, 0);
        for (at, label) in self.fixups {
            let target = match label {
                Label::Out => out,
                Label::Rewrite => self.rewrite.expect("rewrite label placed"),
            };
            self.insns[at].off = (target - at - 1) as i16;
        }
        self.insns
    }
}

/// The program of `hook`. Connect (`ctx` in r6):
///
/// ```text
/// if ctx->type != SOCK_STREAM || ctx->protocol != IPPROTO_TCP: return 1
/// if bpf_get_netns_cookie(ctx) != HOST_COOKIE: return 1
/// key = {ctx->user_ip, ctx->user_port} (stack); to = lookup(map, &key); if !to: return 1
/// if to->deadline && bpf_ktime_get_boot_ns() > to->deadline: return 1
/// [peer map] s = bpf_sk_storage_get(peer, ctx->sk, NULL, F_CREATE); if s: s = {key, *to}
/// ctx->user_ip, ctx->user_port = *to; return 1
/// ```
///
/// Getpeername: `s = bpf_sk_storage_get(peer, ctx->sk, NULL, 0)`; if `s` and the socket's
/// real peer is the container address stored in `s`, show the stored original; return 1.
fn program(hook: Hook, cookie: u64, maps: &Maps<'_>) -> Vec<Insn> {
    let v6 = matches!(hook, Hook::Connect6 | Hook::Peer6);
    // Address words and where they sit in the context.
    let (ip_words, ctx_ip) = if v6 { (4, USER_IP6) } else { (1, USER_IP4) };
    let mut a = Asm::default();
    a.mov(R6, R1);
    match hook {
        Hook::Connect4 | Hook::Connect6 => {
            let key_len = 4 * (ip_words + 1);
            // The key at fp-24 (v6, 20 bytes) or fp-8 (v4, 8 bytes).
            let key = if v6 { -24 } else { -8 };
            a.load(R1, R6, TYPE);
            a.jump(JNE_K, R1, 0, libc::SOCK_STREAM, Label::Out);
            a.load(R1, R6, PROTOCOL);
            a.jump(JNE_K, R1, 0, libc::IPPROTO_TCP, Label::Out);
            a.mov(R1, R6);
            a.call(GET_NETNS_COOKIE);
            a.imm64(R1, 0, cookie);
            a.jump(JNE_X, R0, R1, 0, Label::Out);
            a.copy(FP, key, R6, ctx_ip, ip_words);
            a.copy(FP, key + 4 * ip_words, R6, USER_PORT, 1);
            a.map(R1, if v6 { maps.v6 } else { maps.v4 });
            a.mov(R2, FP);
            a.op(ADD64_K, R2, 0, 0, i32::from(key));
            a.call(MAP_LOOKUP_ELEM);
            a.jump(JEQ_K, R0, 0, 0, Label::Out);
            a.mov(R7, R0);
            // A lapsed entry is passed by (r8 is kept across calls).
            a.op(LDX_DW, R8, R7, if v6 { DEADLINE6 } else { DEADLINE4 }, 0);
            a.op(JEQ_K, R8, 0, 2, 0);
            a.call(KTIME_GET_BOOT_NS);
            a.jump(JGT_X, R0, R8, 0, Label::Out);
            debug_assert_eq!(key_len, if v6 { 20 } else { 8 });
            if let Some(peer) = maps.peer {
                a.map(R1, peer);
                a.op(LDX_DW, R2, R6, SK, 0);
                a.mov_imm(R3, 0);
                a.mov_imm(R4, SK_STORAGE_GET_F_CREATE);
                a.call(SK_STORAGE_GET);
                a.jump(JEQ_K, R0, 0, 0, Label::Rewrite);
                a.copy(R0, 0, FP, key, ip_words);
                a.copy(R0, 16, FP, key + 4 * ip_words, 1);
                a.copy(R0, 20, R7, 0, ip_words);
                a.copy(R0, 36, R7, 4 * ip_words, 1);
            }
            a.rewrite_here();
            a.copy(R6, ctx_ip, R7, 0, ip_words);
            a.copy(R6, USER_PORT, R7, 4 * ip_words, 1);
        }
        Hook::Peer4 | Hook::Peer6 => {
            let peer = maps.peer.expect("getpeername programs need the peer map");
            a.map(R1, peer);
            a.op(LDX_DW, R2, R6, SK, 0);
            a.mov_imm(R3, 0);
            a.mov_imm(R4, 0);
            a.call(SK_STORAGE_GET);
            a.jump(JEQ_K, R0, 0, 0, Label::Out);
            // The real peer must be the stored container address.
            for i in 0..ip_words {
                a.load(R1, R0, 20 + 4 * i);
                a.load(R2, R6, ctx_ip + 4 * i);
                a.jump(JNE_X, R1, R2, 0, Label::Out);
            }
            a.load(R1, R0, 36);
            a.load(R2, R6, USER_PORT);
            a.jump(JNE_X, R1, R2, 0, Label::Out);
            a.rewrite_here();
            a.copy(R6, ctx_ip, R0, 0, ip_words);
            a.copy(R6, USER_PORT, R0, 16, 1);
        }
    }
    a.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boottime_offset_of_a_time_namespace() {
        let text = "monotonic 7 0\nboottime -3 500000000\n";
        assert_eq!(boottime_offset(text), Some(-2_500_000_000));
        assert_eq!(boottime_offset("monotonic 0 0\n"), None);
    }

    #[test]
    fn keys_hold_network_order_ports() {
        let a: SocketAddrV4 = "127.0.0.1:8080".parse().unwrap();
        let k = key4(a);
        assert_eq!(&k[..4], &[127, 0, 0, 1]);
        // The port's two bytes in network order come first in memory on little endian.
        #[cfg(target_endian = "little")]
        assert_eq!(&k[4..], &[0x1f, 0x90, 0, 0]);
        assert_eq!(parse4(&k), a);
        let b: SocketAddrV6 = "[fd00::1]:443".parse().unwrap();
        assert_eq!(parse6(&key6(b)), b);
    }

    #[test]
    fn code_hash_ignores_map_descriptors_not_the_cookie() {
        let f1 = std::fs::File::open("/dev/null").unwrap();
        let f2 = std::fs::File::open("/dev/null").unwrap();
        let (a, b): (OwnedFd, OwnedFd) = (f1.into(), f2.into());
        let m1 = Maps {
            v4: &a,
            v6: &a,
            peer: None,
        };
        let m2 = Maps {
            v4: &b,
            v6: &b,
            peer: None,
        };
        let h = |m: &Maps<'_>, c| code_hash(&program(Hook::Connect4, c, m));
        assert_eq!(h(&m1, 7), h(&m2, 7));
        assert_ne!(h(&m1, 7), h(&m1, 8));
    }

    #[test]
    fn jumps_land_inside_the_program() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd: OwnedFd = f.into();
        let maps = Maps {
            v4: &fd,
            v6: &fd,
            peer: Some(&fd),
        };
        for hook in Hook::ALL {
            let p = program(hook, 1, &maps);
            assert_eq!(p.last().unwrap().code, EXIT);
            for (i, insn) in p.iter().enumerate() {
                if matches!(insn.code, JEQ_K | JNE_K | JNE_X | JGT_X) {
                    let target = i as i64 + 1 + i64::from(insn.off);
                    assert!(target > i as i64 && (target as usize) < p.len());
                }
            }
        }
    }
}
