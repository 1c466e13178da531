//! Host clients of published TCP ports on 127.0.0.1 connect straight to the container: the
//! kernel's socket redirect ([`berth_runtime::sockredirect`], cgroup connect4/connect6
//! programs) beside the nftables DNAT. A connection from a program on the host to
//! `127.0.0.1:P` then needs no NAT at all: the DNAT path re-routes every packet a host
//! program sends (0.91-0.97x a direct connection's throughput measured here; redirected, the
//! connection is a direct one). Everything else keeps the DNAT path: remote clients, UDP and
//! SCTP, containers' own connections (the programs act in the host's namespace only, so
//! isolation between networks is untouched), a kernel without cgroup BPF, and ports beyond
//! [`MAX_PORTS`] of one container.
//!
//! Only 127.0.0.1 (and its v4-mapped form): an entry names an exact (address, port), and
//! 127.0.0.1 is the host's whatever happens. An entry for one of the host's other addresses
//! would outlive that address when it moved away (a keepalived VIP failing over, DHCP) until
//! berthd noticed, and for good while berthd is down, sending the host's own clients of that
//! address to a container instead of the machine that now holds it; the DNAT path checks
//! the address on every packet. `::1` stays on the DNAT path too (a client bound there
//! before connecting could not leave `lo`).
//!
//! A container's entries go before its nftables elements and its address at unpublish. berthd
//! starts with the map cleared and puts back the entries of the containers it finds running
//! (reclaim): entries of containers that ended while it was down do not stay. The programs
//! stay attached when berthd stops (running containers keep their redirects, as their DNAT);
//! `berthd --socket-redirect false` takes them away, as removing `/sys/fs/bpf/berth*` does.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_network::ports::{PortMap, Proto, Target};
use berth_runtime::sockredirect::SockRedirect;

/// The most published TCP ports of one container that get an entry: a thousand-port range
/// keeps its start fast on the DNAT path alone.
pub(crate) const MAX_PORTS: usize = 64;

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
    bpf: Option<SockRedirect>,
    /// The keys inserted, by (container id, network id).
    published: Mutex<HashMap<(String, String), Vec<SocketAddr>>>,
}

impl Redirects {
    /// Attaches (or finds again) the programs pinned in `dir` and clears their map. When
    /// that fails, what is pinned there goes (an earlier berthd's entries must not stay
    /// with nobody to keep them) and the DNAT path serves alone: said in the log.
    pub(crate) fn open(dir: &Path) -> Redirects {
        let opened = berth_runtime::sockredirect::cgroup2_root()
            .and_then(|cgroup| SockRedirect::open_at(dir, &cgroup))
            .and_then(|r| r.clear().map(|_| r));
        let bpf = match opened {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(
                    "published ports without the socket redirect ({e}): host clients go \
                     through NAT"
                );
                take_away(dir);
                None
            }
        };
        Redirects {
            bpf,
            published: Mutex::default(),
        }
    }

    /// Off (`berthd --socket-redirect false`): every published port on the DNAT path. What
    /// an earlier berthd of this root pinned in `dir` goes.
    pub(crate) fn off(dir: Option<&Path>) -> Redirects {
        if let Some(dir) = dir {
            take_away(dir);
        }
        Redirects {
            bpf: None,
            published: Mutex::default(),
        }
    }

    fn published(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Vec<SocketAddr>>> {
        self.published.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Inserts the entries of an endpoint's ports published on 127.0.0.1 (or every
    /// address), once its DNAT is in place. A key is recorded before it is inserted, so that
    /// [`Redirects::remove`] takes whatever of it went in.
    pub(crate) fn add(&self, id: &str, network: &str, to: Target, maps: &[PortMap]) {
        let Some(bpf) = &self.bpf else { return };
        let mut published = self.published();
        let keys = published
            .entry((id.to_string(), network.to_string()))
            .or_default();
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let ports = maps
            .iter()
            .filter(|m| m.proto == Proto::Tcp)
            .filter(|m| m.host_ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || m.host_ip == loopback)
            .take(MAX_PORTS);
        for m in ports {
            let key = SocketAddr::new(loopback, m.host_port);
            keys.push(key);
            if let Err(e) = bpf.insert(key, SocketAddr::new(IpAddr::V4(to.ip), m.container_port)) {
                // Full (or refused): this one stays on the DNAT path.
                tracing::warn!(container = id, "socket redirect of {key}: {e}");
            }
        }
    }

    /// Takes an endpoint's entries out (before its DNAT and its address go).
    pub(crate) fn remove(&self, id: &str, network: &str) {
        let Some(bpf) = &self.bpf else { return };
        let gone = self
            .published()
            .remove(&(id.to_string(), network.to_string()));
        for key in gone.unwrap_or_default() {
            if let Err(e) = bpf.remove(key) {
                tracing::error!(container = id, "socket redirect of {key} left: {e}");
            }
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
