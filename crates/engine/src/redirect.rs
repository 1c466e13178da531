//! Host clients of published TCP ports connect straight to the container: the kernel's socket
//! redirect ([`berth_runtime::sockredirect`], cgroup connect4/connect6 programs) beside the
//! nftables DNAT. A connection from a program on the host to `127.0.0.1:P` or to one of the
//! host's own addresses then needs no NAT at all: the DNAT path re-routes every packet a
//! host program sends (0.90-0.97x a direct connection's throughput measured here;
//! redirected, the connection is a direct one). Everything else keeps the DNAT path: remote
//! clients, UDP and SCTP, containers' own connections (the programs act in the host's
//! namespace only, so isolation between networks is untouched), a kernel without cgroup
//! BPF, ports beyond [`MAX_PORTS`] of one container, addresses beyond [`MAX_ADDRESSES`],
//! `::1` (a client bound there before connecting could not leave `lo`), 127.0.0.2 and the
//! like, and the addresses of berth's own bridges.
//!
//! What a redirected connection looks like: the client's `getpeername()` still shows the
//! address it asked for; its `getsockname()`, and the source address the container sees, is
//! the bridge's (the route to the container chooses it). Through the DNAT path a client of
//! a host address came from that address; Docker's default userland proxy, too, shows the
//! container the bridge's address.
//!
//! An entry names an exact (address, port). 127.0.0.1 is the host's whatever happens: its
//! entries hold as long as the container's ports are published. The host's other addresses
//! can move away (a keepalived VIP failing over, DHCP), and then their entries must go with
//! them, or the host's own clients of that address would reach a container instead of the
//! machine that now holds it (the DNAT path checks the address on every packet). So:
//! - the entries of those addresses are made and taken away as the addresses come and go:
//!   a thread of berthd follows the kernel's events of addresses, links and routes
//!   (rtnetlink) and lists the addresses again at each: those of global scope on the
//!   host's links but berth's bridges that have their route in the local table, which is
//!   what the DNAT rule's `fib daddr type local` asks (an IPv6 address in duplicate
//!   address detection, or kept on a link that is down, has none). When the list changed,
//!   the entries follow it;
//! - they carry a deadline (the lease after the listing they were set from; 90 s by
//!   default, `berthd --socket-redirect-lease`), renewed by that thread every third of it:
//!   if berthd is killed, or cannot list the addresses, an address that moves meanwhile is
//!   redirected no longer than that, after which the programs pass its entries by and the
//!   DNAT path serves, as it does for every address when the kernel has no cgroup BPF.
//!   The clock is the kernel's boot time: a machine suspended meanwhile does not stretch
//!   it.
//!
//! A container's entries go before its nftables elements and its address at unpublish. berthd
//! starts with the map cleared and puts back the entries of the containers it finds running
//! (reclaim): entries of containers that ended while it was down do not stay. The programs
//! stay attached when berthd stops (running containers keep their 127.0.0.1 redirects, as
//! their DNAT); `berthd --socket-redirect false` takes them away, as removing
//! `/sys/fs/bpf/berth*` does.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use berth_network::ports::{PortMap, Proto, Target};
use berth_runtime::sockredirect::{clock_ns, SockRedirect};

/// The most published TCP ports of one container that get entries: a thousand-port range
/// keeps its start fast on the DNAT path alone.
pub(crate) const MAX_PORTS: usize = 64;

/// The most host addresses (besides 127.0.0.1) whose published ports get entries; the
/// others' take the DNAT path.
pub(crate) const MAX_ADDRESSES: usize = 16;

/// How long the entry of a host address holds unless renewed (`berthd
/// --socket-redirect-lease`).
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(90);

/// Where a berthd pins its programs and map: `/sys/fs/bpf/berth` for the default root, a
/// directory of its own for another (`berth-` and 12 hex digits of the SHA-256 of its
/// canonical path: however `--root` is spelt), so that daemons side by side (tests) never
/// clear each other's entries.
pub(crate) fn pin_dir(root: &Path) -> PathBuf {
    let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let base = Path::new(berth_runtime::sockredirect::PIN_DIR);
    if root == Path::new("/var/lib/berth") {
        return base.to_path_buf();
    }
    let hash = crate::network::hex_id(&root.to_string_lossy());
    base.with_file_name(format!("berth-{}", &hash[..12]))
}

pub(crate) struct Redirects {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    bpf: SockRedirect,
    lease: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The host's addresses whose published ports have entries (127.0.0.1 aside).
    hosts: Vec<IpAddr>,
    /// When `hosts` was last listed ([`clock_ns`]): an entry of one holds until then and a
    /// lease, not longer, so that a listing that keeps failing lets them lapse.
    listed_at: u64,
    /// When every entry of `hosts` was last set again.
    renewed_at: u64,
    /// Entries refused at the last renewal (a full map): said in the log when it changes.
    refused: usize,
    /// By (container id, network id).
    endpoints: HashMap<(String, String), Endpoint>,
}

/// The published TCP ports of one endpoint that get entries, and the keys in the map.
#[derive(Default)]
struct Endpoint {
    /// (host address asked for, host port, container address and port).
    ports: Vec<(IpAddr, u16, SocketAddr)>,
    keys: Vec<SocketAddr>,
}

impl Redirects {
    /// Attaches (or finds again) the programs pinned in `dir` and clears their map, and
    /// starts following the host's addresses. When that fails, what is pinned there goes
    /// (an earlier berthd's entries must not stay with nobody to keep them) and the DNAT
    /// path serves alone: said in the log.
    pub(crate) fn open(dir: &Path, lease: Duration) -> Redirects {
        let opened = berth_runtime::sockredirect::cgroup2_root()
            .and_then(|cgroup| SockRedirect::open_at(dir, &cgroup))
            .and_then(|r| r.clear().map(|_| r));
        let bpf = match opened {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    "published ports without the socket redirect ({e}): host clients go \
                     through NAT"
                );
                take_away(dir);
                return Redirects { inner: None };
            }
        };
        let inner = Arc::new(Inner {
            bpf,
            // (The command line keeps it within 3 s and an hour.)
            lease: lease.clamp(Duration::from_secs(1), Duration::from_secs(86400)),
            state: Mutex::default(),
        });
        // Under berthd's own network namespace: the caller's thread is in it.
        let weak = Arc::downgrade(&inner);
        let spawned = std::thread::Builder::new()
            .name("redirect-hosts".into())
            .spawn(move || follow_addresses(weak));
        if let Err(e) = spawned {
            tracing::warn!(
                "the socket redirect serves 127.0.0.1 only (following the host's addresses: {e})"
            );
        }
        Redirects { inner: Some(inner) }
    }

    /// Off (`berthd --socket-redirect false`): every published port on the DNAT path. What
    /// an earlier berthd of this root pinned in `dir` goes.
    pub(crate) fn off(dir: Option<&Path>) -> Redirects {
        if let Some(dir) = dir {
            take_away(dir);
        }
        Redirects { inner: None }
    }

    /// Inserts the entries of an endpoint's published TCP ports, once its DNAT is in
    /// place: on 127.0.0.1 and the host's addresses, as published. A key is recorded before
    /// it is inserted, so that [`Redirects::remove`] takes whatever of it went in.
    pub(crate) fn add(&self, id: &str, network: &str, to: Target, maps: &[PortMap]) {
        let Some(inner) = &self.inner else { return };
        let ports: Vec<(IpAddr, u16, SocketAddr)> = maps
            .iter()
            .filter(|m| m.proto == Proto::Tcp)
            .filter_map(|m| {
                let container = match m.host_ip {
                    IpAddr::V4(_) => IpAddr::V4(to.ip),
                    IpAddr::V6(_) => IpAddr::V6(to.ip6?),
                };
                Some((
                    m.host_ip,
                    m.host_port,
                    SocketAddr::new(container, m.container_port),
                ))
            })
            .take(MAX_PORTS)
            .collect();
        let mut state = inner.state();
        let until = inner.until(state.listed_at);
        let State {
            hosts, endpoints, ..
        } = &mut *state;
        let ep = endpoints
            .entry((id.to_string(), network.to_string()))
            .or_default();
        let mut refused = Refused::default();
        for &(host_ip, host_port, to) in &ports {
            for (from, leased) in entries(host_ip, host_port, hosts) {
                ep.keys.push(from);
                refused.note(
                    from,
                    inner.bpf.insert_until(from, to, leased.then_some(until)),
                );
            }
        }
        ep.ports.extend(ports);
        if let Some((n, first)) = refused.first {
            // Full (or refused): those stay on the DNAT path.
            tracing::warn!(
                container = id,
                "socket redirect: {n} of its entries refused, those ports take the DNAT path \
                 ({first})"
            );
        }
    }

    /// Takes an endpoint's entries out (before its DNAT and its address go).
    pub(crate) fn remove(&self, id: &str, network: &str) {
        let Some(inner) = &self.inner else { return };
        let gone = inner
            .state()
            .endpoints
            .remove(&(id.to_string(), network.to_string()));
        for key in gone.map(|ep| ep.keys).unwrap_or_default() {
            inner.remove(id, key);
        }
    }
}

impl Inner {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The deadline of an entry of an address listed at `listed_at`.
    fn until(&self, listed_at: u64) -> u64 {
        listed_at.saturating_add(self.lease.as_nanos().min(u128::from(u64::MAX)) as u64)
    }

    fn remove(&self, id: &str, key: SocketAddr) {
        if let Err(e) = self.bpf.remove(key) {
            tracing::error!(container = id, "socket redirect of {key} left: {e}");
        }
    }

    /// Takes the listing of the host's addresses made at `at` ([`clock_ns`]; at most
    /// [`MAX_ADDRESSES`] of them, the first ones): when the addresses changed, the entries of
    /// those gone are taken out and the new ones' put in; when they changed or a third of
    /// the lease went by since the last renewal, every entry of an address is set again with
    /// a new deadline. Under the lock [`Redirects::add`] takes, so that an endpoint being
    /// added meanwhile gets the same addresses.
    fn refresh(&self, mut now: Vec<IpAddr>, at: u64) {
        let total = now.len();
        now.truncate(MAX_ADDRESSES);
        let mut state = self.state();
        state.listed_at = at;
        let changed = state.hosts != now;
        if changed && total > MAX_ADDRESSES {
            tracing::warn!(
                "the host has {total} addresses: published ports on the first \
                 {MAX_ADDRESSES} (primary ones first) get the socket redirect, the others the \
                 DNAT path"
            );
        }
        let due = at.saturating_sub(state.renewed_at) >= (self.lease / 3).as_nanos() as u64;
        if !changed && !due {
            return;
        }
        let until = self.until(at);
        let mut refused = Refused::default();
        for ((id, _), ep) in state.endpoints.iter_mut() {
            ep.keys.retain(|key| {
                let kept = key.ip() == IpAddr::V4(Ipv4Addr::LOCALHOST) || now.contains(&key.ip());
                if !kept {
                    self.remove(id, *key);
                }
                kept
            });
            for &(host_ip, host_port, to) in &ep.ports {
                for (from, leased) in entries(host_ip, host_port, &now) {
                    if !leased {
                        continue;
                    }
                    if !ep.keys.contains(&from) {
                        ep.keys.push(from);
                    }
                    refused.note(from, self.bpf.insert_until(from, to, Some(until)));
                }
            }
        }
        let n = refused.first.as_ref().map_or(0, |f| f.0);
        if n != state.refused {
            match &refused.first {
                Some((n, first)) => tracing::warn!(
                    "socket redirect: {n} entries of the host's addresses refused, those \
                     ports take the DNAT path ({first})"
                ),
                None => tracing::info!("socket redirect: every entry is in again"),
            }
        }
        state.refused = n;
        state.hosts = now;
        state.renewed_at = at;
    }
}

/// Inserts refused: how many, and the first one's error.
#[derive(Default)]
struct Refused {
    first: Option<(usize, String)>,
}

impl Refused {
    fn note(&mut self, from: SocketAddr, result: std::io::Result<()>) {
        if let Err(e) = result {
            match &mut self.first {
                Some((n, _)) => *n += 1,
                None => self.first = Some((1, format!("{from}: {e}"))),
            }
        }
    }
}

/// The keys of a port published on `host_ip:host_port`, with whether each is leased (one of
/// the host's `hosts`) or holds for good (127.0.0.1).
fn entries(host_ip: IpAddr, host_port: u16, hosts: &[IpAddr]) -> Vec<(SocketAddr, bool)> {
    let mut out = Vec::new();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    if host_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || host_ip == loopback {
        out.push((SocketAddr::new(loopback, host_port), false));
    }
    for &h in hosts {
        let any = host_ip.is_unspecified() && h.is_ipv4() == host_ip.is_ipv4();
        if any || host_ip == h {
            out.push((SocketAddr::new(h, host_port), true));
        }
    }
    out
}

/// The thread that keeps the entries of the host's addresses: set again at every change of
/// the host's addresses and every third of the lease, until the redirect is dropped.
fn follow_addresses(weak: Weak<Inner>) {
    let lease = match weak.upgrade() {
        Some(inner) => inner.lease,
        None => return,
    };
    let setup = berth_network::netlink::AddressEvents::new()
        .and_then(|events| berth_network::netlink::Netlink::new().map(|netlink| (events, netlink)));
    let (events, netlink) = match setup {
        Ok(both) => both,
        Err(e) => {
            tracing::warn!(
                "the socket redirect serves 127.0.0.1 only (following the host's addresses: {e})"
            );
            return;
        }
    };
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let at = clock_ns();
        match netlink.local_addresses(berth_network::guard::GROUP) {
            Ok(now) => inner.refresh(now, at),
            // Kept as they are; they lapse unless a later listing renews them.
            Err(e) => tracing::warn!("listing the host's addresses for the socket redirect: {e}"),
        }
        drop(inner);
        if let Err(e) = events.wait(lease / 3) {
            tracing::warn!("following the host's addresses: {e}");
            std::thread::sleep(lease / 3);
        }
    }
}

/// Takes away what is pinned in `dir` (the programs detach with their links).
fn take_away(dir: &Path) {
    if dir.exists() {
        if let Err(e) = SockRedirect::teardown_at(dir) {
            tracing::error!("taking away the socket redirect in {}: {e}", dir.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn entries_follow_the_published_address() {
        let hosts = [ip("192.0.2.2"), ip("198.51.100.7"), ip("fd00::2")];
        let keys = |host_ip: &str| -> Vec<(String, bool)> {
            entries(ip(host_ip), 80, &hosts)
                .into_iter()
                .map(|(a, l)| (a.to_string(), l))
                .collect()
        };
        let s = |a: &str, l| (a.to_string(), l);
        assert_eq!(
            keys("0.0.0.0"),
            [
                s("127.0.0.1:80", false),
                s("192.0.2.2:80", true),
                s("198.51.100.7:80", true)
            ]
        );
        assert_eq!(keys("127.0.0.1"), [s("127.0.0.1:80", false)]);
        assert_eq!(keys("198.51.100.7"), [s("198.51.100.7:80", true)]);
        assert_eq!(keys("::"), [s("[fd00::2]:80", true)]);
        assert_eq!(keys("fd00::2"), [s("[fd00::2]:80", true)]);
        // An address not (or no longer) the host's: none.
        assert!(keys("203.0.113.1").is_empty());
        assert!(keys("::1").is_empty());
    }
}
