//! Host clients of published TCP ports connect straight to the container: the kernel's socket
//! redirect ([`berth_runtime::sockredirect`], cgroup connect4/connect6 programs) beside the
//! nftables DNAT. A connection from a program on the host to a published port (127.0.0.1, the
//! host's own addresses) then needs no NAT at all: the DNAT path re-routes every packet a
//! host program sends (0.91-0.93x a direct connection's throughput measured here; redirected,
//! the connection is a direct one). Everything else keeps the DNAT path: remote clients, UDP
//! and SCTP, containers' own connections (the programs act in the host's namespace only, so
//! isolation between networks is untouched), a kernel without cgroup BPF, and ports beyond
//! [`MAX_PORTS`] of one container.
//!
//! The entries are exact (address, port) pairs: a port published on every address gets one
//! per host address (loopback's 127.0.0.1 and every global one; not `::1`, whose packets may
//! not leave `lo` when a client bound its socket there first, nor link-local ones). The
//! host's addresses are read at publish time and again by the 30 s check: entries follow an
//! address added or removed within that time, and an address that is no longer the host's is
//! no longer redirected after it. A container's entries go before its nftables elements and
//! its address at unpublish, so no entry outlives the address it points to.
//!
//! berthd starts with the map cleared and puts back the entries of the containers it finds
//! running (reclaim), so entries of containers that ended while it was down do not stay.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;

use berth_network::ports::{PortMap, Proto, Target};
use berth_runtime::sockredirect::SockRedirect;

/// The most published TCP ports of one container that get entries (each is one per host
/// address): a thousand-port range keeps its start fast on the DNAT path alone.
pub(crate) const MAX_PORTS: usize = 64;

/// Where a berthd pins its programs and map: `/sys/fs/bpf/berth` for the default root, a
/// directory of its own for another (`berth-` and 12 hex digits of its path's SHA-256), so
/// that daemons side by side (tests) never clear each other's entries.
pub(crate) fn pin_dir(root: &std::path::Path) -> std::path::PathBuf {
    let base = std::path::Path::new(berth_runtime::sockredirect::PIN_DIR);
    if root == std::path::Path::new("/var/lib/berth") {
        return base.to_path_buf();
    }
    let hash = crate::network::hex_id(&root.to_string_lossy());
    base.with_file_name(format!("berth-{}", &hash[..12]))
}

/// What was inserted for one endpoint's ports.
struct Published {
    to: Target,
    maps: Vec<PortMap>,
    keys: Vec<SocketAddr>,
}

pub(crate) struct Redirects {
    bpf: Option<SockRedirect>,
    /// By (container id, network id).
    published: Mutex<HashMap<(String, String), Published>>,
    /// The host addresses the entries were made for.
    addresses: Mutex<Vec<IpAddr>>,
}

impl Redirects {
    /// Attaches (or finds again) the programs pinned in `dir` and clears their map.
    /// Without cgroup BPF the DNAT path serves alone: said once in the log.
    pub(crate) fn open(dir: &std::path::Path) -> Redirects {
        let opened = berth_runtime::sockredirect::cgroup2_root()
            .and_then(|cgroup| SockRedirect::open_at(dir, &cgroup))
            .and_then(|r| r.clear().map(|_| r));
        let bpf = match opened {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::info!(
                    "published ports without the socket redirect ({e}): host clients go \
                     through NAT"
                );
                None
            }
        };
        Redirects {
            bpf,
            published: Mutex::default(),
            addresses: Mutex::new(host_addresses()),
        }
    }

    /// Off (`berthd --socket-redirect false`): every published port on the DNAT path. What
    /// an earlier berthd of this root pinned in `dir` goes (its entries would still send
    /// host clients on, and outlive the addresses they name).
    pub(crate) fn off(dir: Option<&std::path::Path>) -> Redirects {
        if let Some(dir) = dir.filter(|d| d.exists()) {
            if let Err(e) = SockRedirect::teardown_at(dir) {
                tracing::warn!("taking away the socket redirect in {}: {e}", dir.display());
            }
        }
        Redirects {
            bpf: None,
            published: Mutex::default(),
            addresses: Mutex::default(),
        }
    }

    fn published(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Published>> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts the entries of an endpoint's published ports (after its DNAT is in place).
    pub(crate) fn add(&self, id: &str, network: &str, to: Target, maps: &[PortMap]) {
        let Some(bpf) = &self.bpf else { return };
        let maps: Vec<PortMap> = maps
            .iter()
            .filter(|m| m.proto == Proto::Tcp)
            .take(MAX_PORTS)
            .copied()
            .collect();
        if maps.is_empty() {
            return;
        }
        let addresses = self
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let keys = insert(bpf, to, &maps, &addresses);
        self.published().insert(
            (id.to_string(), network.to_string()),
            Published { to, maps, keys },
        );
    }

    /// Takes an endpoint's entries out (before its DNAT and its address go).
    pub(crate) fn remove(&self, id: &str, network: &str) {
        let Some(bpf) = &self.bpf else { return };
        let gone = self
            .published()
            .remove(&(id.to_string(), network.to_string()));
        if let Some(p) = gone {
            for key in p.keys {
                if let Err(e) = bpf.remove(key) {
                    tracing::warn!(container = id, "socket redirect of {key}: {e}");
                }
            }
        }
    }

    /// Follows the host's addresses (the 30 s check): when they changed, every endpoint's
    /// entries are made again for the new ones.
    pub(crate) fn refresh(&self) {
        let Some(bpf) = &self.bpf else { return };
        let now = host_addresses();
        {
            let mut known = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
            if *known == now {
                return;
            }
            *known = now.clone();
        }
        for p in self.published().values_mut() {
            for key in p.keys.drain(..) {
                let _ = bpf.remove(key);
            }
            p.keys = insert(bpf, p.to, &p.maps, &now);
        }
    }
}

/// The host's addresses a redirect entry is made for: 127.0.0.1 and the global ones, but
/// the gateways on berth's own bridges (one a network: a host of many networks would fill
/// the map with entries no client uses).
fn host_addresses() -> Vec<IpAddr> {
    let listed = berth_network::netlink::Netlink::new().and_then(|n| {
        let bridges = n.links_in_group(berth_network::guard::GROUP)?;
        n.addresses_except(&bridges)
    });
    let mut out: Vec<IpAddr> = match listed {
        Ok(all) => all
            .into_iter()
            .filter(|ip| match ip {
                IpAddr::V4(a) => !a.is_loopback() || *a == std::net::Ipv4Addr::LOCALHOST,
                IpAddr::V6(a) => {
                    !a.is_loopback() && !a.is_unicast_link_local() && !a.is_multicast()
                }
            })
            .collect(),
        Err(e) => {
            tracing::warn!("listing the host's addresses for the socket redirect: {e}");
            vec![std::net::Ipv4Addr::LOCALHOST.into()]
        }
    };
    out.sort();
    out.dedup();
    out
}

/// Inserts the entries of `maps` (to `to`) for `addresses`: the keys inserted.
fn insert(
    bpf: &SockRedirect,
    to: Target,
    maps: &[PortMap],
    addresses: &[IpAddr],
) -> Vec<SocketAddr> {
    let mut keys = Vec::new();
    for m in maps {
        let target = match (m.host_ip, to.ip6) {
            (IpAddr::V4(_), _) => IpAddr::V4(to.ip),
            (IpAddr::V6(_), Some(ip6)) => IpAddr::V6(ip6),
            (IpAddr::V6(_), None) => continue,
        };
        let dest = SocketAddr::new(target, m.container_port);
        let from: Vec<IpAddr> = if m.host_ip.is_unspecified() {
            addresses
                .iter()
                .filter(|a| a.is_ipv4() == m.host_ip.is_ipv4())
                .copied()
                .collect()
        } else if addresses.contains(&m.host_ip) {
            vec![m.host_ip]
        } else {
            Vec::new()
        };
        for ip in from {
            let key = SocketAddr::new(ip, m.host_port);
            match bpf.insert(key, dest) {
                Ok(()) => keys.push(key),
                // Full (or refused): this one stays on the DNAT path.
                Err(e) => tracing::debug!("socket redirect of {key}: {e}"),
            }
        }
    }
    keys
}
