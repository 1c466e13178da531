//! Container networks: the default bridge (`berth0`), veth pairs into the containers'
//! network namespaces, IPv4 and IPv6 address management, and berth's nftables table.
//! Called by the engine only.
//!
//! A container's network namespace comes from [`netns::Pool`] (made ahead); [`Bridge::attach`]
//! puts a veth pair between it and the bridge (the peer made straight inside, named `eth0`,
//! with Docker's MAC), gives it an address and the default route; [`Bridge::detach`] undoes
//! it, collecting every error and going on. Links, addresses and routes go through netlink
//! ([`netlink`]); rules through `nft` ([`nft`]), only when a bridge is set up.
//!
//! [`dns`] is the embedded DNS server of user-defined networks: 127.0.0.11:53 inside each
//! container's namespace, served from berthd's event loop.

pub mod coexist;
pub mod conntrack;
pub mod dns;
pub mod firewalld;
pub mod guard;
pub mod ipam;
pub mod netlink;
pub mod netns;
pub mod nft;
pub mod ports;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Mutex;

use ipam::{Subnet, Subnet6};
use netlink::Netlink;

/// The default bridge's name.
pub const DEFAULT_BRIDGE: &str = "berth0";

/// The container's end of its veth pair.
pub const CONTAINER_IFNAME: &str = "eth0";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request berth cannot meet as asked (bad configuration, no address left).
    #[error("{0}")]
    Invalid(String),
    /// The kernel or `nft` refused.
    #[error("{what}: {source}")]
    System {
        what: String,
        source: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn sys(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::System { what, source }
}

/// How the default bridge is made: berthd's `--bridge` and `--bip`.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    pub name: String,
    /// The bridge's own address and prefix (`--bip 10.5.0.1/24`); chosen when `None`.
    pub bip: Option<(Ipv4Addr, u8)>,
    /// IPv6 (`network create --ipv6`): the bridge's IPv6 address (the containers' gateway)
    /// and the subnet's prefix. `None`: IPv4 only.
    pub v6: Option<(Ipv6Addr, u8)>,
    /// `--ip-range` of the IPv6 subnet.
    pub ip_range6: Option<Subnet6>,
    /// Where a subnet is chosen from when there is no `bip` (Docker's default pools).
    pub candidates: Vec<Subnet>,
    /// Addresses are handed out from this part of the subnet only (`--ip-range`); `--ip`
    /// may name any address of the subnet.
    pub ip_range: Option<Subnet>,
    /// No way out and no way in from outside (`network create --internal`): no masquerade,
    /// no default route in the containers, forwarding to and from the bridge dropped.
    pub internal: bool,
    /// Containers on the bridge may reach each other (`enable_icc`; on by default). Off,
    /// each port is isolated: they reach the gateway only.
    pub icc: bool,
    /// Five characters in the names of the host ends of its veth pairs, so that a
    /// container on several bridges has a distinct pair on each (`None`: the default
    /// bridge's `veth<id>` names).
    pub veth_tag: Option<String>,
}

impl BridgeConfig {
    pub fn new(name: &str) -> BridgeConfig {
        BridgeConfig {
            name: name.into(),
            bip: None,
            v6: None,
            ip_range6: None,
            candidates: ipam::default_candidates(),
            ip_range: None,
            internal: false,
            icc: true,
            veth_tag: None,
        }
    }
}

/// A container's IPv6 address on a bridge with IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint6 {
    pub ip: Ipv6Addr,
    pub prefix: u8,
    pub gateway: Ipv6Addr,
}

/// A container's place on a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Its IPv6 address, on a bridge with IPv6.
    pub v6: Option<Endpoint6>,
    pub mac: [u8; 6],
    /// The host's end of the veth pair, its name and index (0 until it is made). The index
    /// names this pair only: a teardown that comes late never removes the pair of the
    /// container's next run, which has the same name.
    pub host_veth: String,
    pub host_index: u32,
}

/// How a container is connected to a bridge.
#[derive(Debug, Clone, Default)]
pub struct Attach {
    /// The interface's name in the container (`eth0` for its first network).
    pub ifname: String,
    /// The address asked for (`--ip`); the next free one when `None`.
    pub ip: Option<Ipv4Addr>,
    /// The IPv6 address asked for (`--ip6`); the next free one when `None` (on a bridge
    /// with IPv6).
    pub ip6: Option<Ipv6Addr>,
    /// The MAC asked for (`--mac-address`); Docker's `02:42` + address when `None`.
    pub mac: Option<[u8; 6]>,
    /// The container's IPv4 default route goes through this bridge (never an internal
    /// one's).
    pub route4: bool,
    /// The container's IPv6 default route goes through this bridge (never an internal
    /// one's; only a bridge with IPv6).
    pub route6: bool,
}

/// A bridge's IPv6 subnet and its own address there (the containers' gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net6 {
    pub subnet: Subnet6,
    pub gateway: Ipv6Addr,
}

/// A bridge network that is set up: the link with its address, the rules, the leases.
pub struct Bridge {
    pub name: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// Its IPv6 subnet and gateway, if it has IPv6.
    pub v6: Option<Net6>,
    pub table: String,
    pub internal: bool,
    icc: bool,
    veth_tag: Option<String>,
    index: u32,
    host: Netlink,
    /// A socket of its own for removing pairs: a removal waits for the kernel's grace
    /// period, and starts must not queue behind it on `host`'s lock.
    slow: Netlink,
    pool: Mutex<ipam::Pool>,
    pool6: Option<Mutex<ipam::Pool6>>,
}

/// The host end of a container's veth pair: `veth` and 11 characters of its id (an
/// interface name has 15 at most), so it is found again after a crash; on a bridge with a
/// tag (a user-defined network), `vn`, 8 characters of the id and 5 of the tag: never the
/// name of a pair on the default bridge.
pub fn host_veth_name(container_id: &str, tag: Option<&str>) -> String {
    match tag {
        None => format!("veth{}", &container_id[..container_id.len().min(11)]),
        Some(tag) => format!(
            "vn{}{}",
            &container_id[..container_id.len().min(8)],
            &tag[..tag.len().min(5)]
        ),
    }
}

/// The subnets of the host's IPv6 routes (a new network's IPv6 subnet must overlap none).
pub fn host_subnets6() -> Result<Vec<Subnet6>> {
    let host = Netlink::new().map_err(sys("netlink"))?;
    Ok(host
        .routes(true)
        .map_err(sys("listing routes"))?
        .into_iter()
        .filter_map(|r| match r.destination {
            IpAddr::V6(ip) => Some(Subnet6::of(ip, r.prefix)),
            IpAddr::V4(_) => None,
        })
        .collect())
}

/// The subnets of the host's IPv4 routes (a new network's subnet must overlap none).
pub fn host_subnets() -> Result<Vec<Subnet>> {
    let host = Netlink::new().map_err(sys("netlink"))?;
    Ok(host
        .routes(false)
        .map_err(sys("listing routes"))?
        .into_iter()
        .filter_map(|r| match r.destination {
            IpAddr::V4(ip) => Some(Subnet::of(ip, r.prefix)),
            IpAddr::V6(_) => None,
        })
        .collect())
}

fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// The IPv6 side of a bridge's set-up: IPv6 on for the bridge, its address (`want`: the
/// gateway and the prefix; added without duplicate address detection, kept when there),
/// and forwarding on for IPv6 as Docker turns it on (`all` and `default`).
fn setup_v6(host: &Netlink, index: u32, cfg: &BridgeConfig, want: (Ipv6Addr, u8)) -> Result<Net6> {
    let (gateway, prefix) = want;
    if prefix > 128 {
        return Err(Error::Invalid(format!("invalid IPv6 prefix /{prefix}")));
    }
    let subnet = Subnet6::of(gateway, prefix);
    if let Some(range) = cfg.ip_range6 {
        if !(subnet.contains(range.addr) && range.prefix >= subnet.prefix) {
            return Err(Error::Invalid(format!(
                "the ip-range {range} is not in the subnet {subnet}"
            )));
        }
    }
    let conf = format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", cfg.name);
    std::fs::write(&conf, "0").map_err(sys(format!(
        "turning IPv6 on for {} (is IPv6 disabled in this kernel?)",
        cfg.name
    )))?;
    // Link-local addresses are the kernel's; another global one is not berth's to hand out.
    let have: Vec<(Ipv6Addr, u8)> = host
        .addresses(index)
        .map_err(sys(format!("addresses of {}", cfg.name)))?
        .into_iter()
        .filter_map(|(ip, p)| match ip {
            IpAddr::V6(ip) if (ip.segments()[0] & 0xffc0) != 0xfe80 => Some((ip, p)),
            _ => None,
        })
        .collect();
    match have.iter().find(|&&h| h != want) {
        Some(other) => {
            return Err(Error::Invalid(format!(
                "bridge {} has the IPv6 address {}/{}, not {gateway}/{prefix}: remove the \
                 bridge (ip link del {})",
                cfg.name, other.0, other.1, cfg.name
            )))
        }
        None if have.is_empty() => host
            .add_address(index, IpAddr::V6(gateway), prefix)
            .map_err(sys(format!("giving {} its IPv6 address", cfg.name)))?,
        None => {}
    }
    // Docker's: forwarding for every interface (`all` sets `default` too; both checked).
    // With forwarding on, an interface with accept_ra=1 takes no router advertisement
    // any more (ARCHITECTURE.md); the guard keeps the host from routing between its other
    // interfaces (guard.rs).
    guard::forward(true).map_err(sys("turning on IPv6 forwarding"))?;
    Ok(Net6 { subnet, gateway })
}

impl Bridge {
    /// Makes the bridge (or adopts the one there, with its address), gives it its address,
    /// turns on forwarding and writes the rules. Idempotent: berthd runs it at every start.
    pub fn setup(cfg: &BridgeConfig) -> Result<Bridge> {
        if !is_valid_ifname(&cfg.name) {
            return Err(Error::Invalid(format!(
                "invalid bridge name {:?}: 1 to 15 letters, digits, '-', '_' or '.'",
                cfg.name
            )));
        }
        let host = Netlink::new().map_err(sys("netlink"))?;
        let index = match host.link_index(&cfg.name).map_err(sys("netlink"))? {
            // An interface of that name that is not a bridge (`--bridge eth0`) is never
            // adopted: berth would give its addresses out and turn on route_localnet.
            Some(_)
                if !std::path::Path::new(&format!("/sys/class/net/{}/bridge", cfg.name))
                    .exists() =>
            {
                return Err(Error::Invalid(format!(
                    "{} exists and is not a bridge: choose another --bridge name",
                    cfg.name
                )))
            }
            Some(i) => i,
            None => {
                // A MAC of its own (02:42 and the gateway's address once known would do;
                // the name's bytes keep it stable across restarts before that).
                let mut mac = [0x02, 0x42, 0, 0, 0, 0];
                for (i, b) in cfg.name.bytes().enumerate() {
                    mac[2 + i % 4] ^= b;
                }
                match host.add_bridge(&cfg.name, mac) {
                    Ok(()) => {}
                    Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
                    Err(e) => return Err(sys(format!("creating bridge {}", cfg.name))(e)),
                }
                host.link_index(&cfg.name)
                    .map_err(sys("netlink"))?
                    .ok_or_else(|| Error::Invalid(format!("bridge {} vanished", cfg.name)))?
            }
        };
        let have = host
            .addresses(index)
            .map_err(sys(format!("addresses of {}", cfg.name)))?
            .into_iter()
            .find_map(|(ip, prefix)| match ip {
                IpAddr::V4(ip) => Some((ip, prefix)),
                IpAddr::V6(_) => None,
            });
        let (gateway, prefix) = match (have, cfg.bip) {
            (Some(have), Some(want)) if have != want => {
                return Err(Error::Invalid(format!(
                    "bridge {} has the address {}/{}, not the --bip {}/{}: remove the bridge \
                     (ip link del {}) or change --bip",
                    cfg.name, have.0, have.1, want.0, want.1, cfg.name
                )))
            }
            (Some(have), _) => have,
            (None, want) => {
                let (gateway, prefix) = match want {
                    Some(bip) => bip,
                    None => {
                        let taken = host_subnets()?;
                        let subnet = ipam::choose(&cfg.candidates, &taken).ok_or_else(|| {
                            Error::Invalid(
                                "no subnet of the default address pools is free of the \
                                 host's routes: set berthd's --bip"
                                    .into(),
                            )
                        })?;
                        (subnet.host(1), subnet.prefix)
                    }
                };
                // In berth's group before it has an address: whoever lists the host's
                // addresses at its appearance (the socket redirect's) sees it is a bridge's.
                host.set_group(index, guard::GROUP)
                    .map_err(sys(format!("setting the group of {}", cfg.name)))?;
                host.add_address(index, IpAddr::V4(gateway), prefix)
                    .map_err(sys(format!("giving {} its address", cfg.name)))?;
                (gateway, prefix)
            }
        };
        // No router advertisement from a container reaches the host's routing: a bridge of
        // berth's never takes one (the host's `default.accept_ra=2`, common with forwarding
        // on, would let a container become the host's IPv6 default router). Gone with IPv6
        // off in the kernel, which is fine.
        for (key, value) in [("accept_ra", "0"), ("autoconf", "0")] {
            let path = format!("/proc/sys/net/ipv6/conf/{}/{key}", cfg.name);
            match std::fs::write(&path, value) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(sys(format!("setting {key} of {}", cfg.name))(e))
                }
                _ => {}
            }
        }
        host.set_up(index)
            .map_err(sys(format!("setting {} up", cfg.name)))?;
        // The interface group that the forwarding guard lets through (guard.rs).
        host.set_group(index, guard::GROUP)
            .map_err(sys(format!("setting the group of {}", cfg.name)))?;
        guard::forward(false).map_err(sys("turning on IPv4 forwarding (net.ipv4.ip_forward)"))?;
        // Ports published on 127.0.0.1 are DNATed to a container through the bridge; the
        // kernel drops loopback-sourced packets on any other interface unless this is on,
        // and it is on for berth's bridges only (never an internal one: nothing is
        // published there).
        let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", cfg.name);
        std::fs::write(&localnet, if cfg.internal { "0" } else { "1" })
            .map_err(sys(format!("setting route_localnet for {}", cfg.name)))?;
        let subnet = Subnet::of(gateway, prefix);
        if let Some(range) = cfg.ip_range {
            if !(subnet.contains(range.addr) && range.prefix >= subnet.prefix) {
                return Err(Error::Invalid(format!(
                    "the ip-range {range} is not in the subnet {subnet}"
                )));
            }
        }
        let v6 = match cfg.v6 {
            Some(want) => Some(setup_v6(&host, index, cfg, want)?),
            None => None,
        };
        let table = nft::table_name(&cfg.name);
        let rules = nft::bridge_rules(
            &table,
            &cfg.name,
            subnet,
            v6.map(|n| (n.subnet, n.gateway)),
            cfg.internal,
            cfg.icc,
        );
        nft::apply(&rules).map_err(sys(format!("the rules of {}", cfg.name)))?;
        match coexist::open_forward(&cfg.name) {
            Ok(Some(chain)) => tracing::info!(
                "another firewall's FORWARD chain drops: berth's accepts for {} are in \
                 iptables' {chain}",
                cfg.name
            ),
            Ok(None) => {}
            // The bridge works for the host's own traffic; forwarded traffic may not.
            Err(e) => tracing::warn!("{e}: containers on {} may not reach out", cfg.name),
        }
        match firewalld::open(&cfg.name) {
            Ok(firewalld::Placed::Added) => tracing::info!(
                "firewalld is running: bridge {} is in its zone {}",
                cfg.name,
                firewalld::ZONE
            ),
            Ok(firewalld::Placed::NoTable) if firewalld::process_runs() => tracing::warn!(
                "firewalld runs with its iptables backend: berth cannot put bridge {} in a \
                 zone, and containers on it may not reach out (FirewallBackend=nftables in \
                 /etc/firewalld/firewalld.conf, or put it in a zone by hand)",
                cfg.name
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("{e}: containers on {} may not reach out", cfg.name),
        }
        let mut pool = ipam::Pool::new(subnet, gateway);
        pool.set_range(cfg.ip_range);
        let pool6 = v6.map(|n| {
            let mut pool = ipam::Pool6::new(n.subnet, n.gateway);
            pool.range = cfg.ip_range6;
            Mutex::new(pool)
        });
        Ok(Bridge {
            name: cfg.name.clone(),
            subnet,
            gateway,
            v6,
            pool6,
            table,
            internal: cfg.internal,
            icc: cfg.icc,
            veth_tag: cfg.veth_tag.clone(),
            index,
            slow: Netlink::new().map_err(sys("netlink"))?,
            host,
            pool: Mutex::new(pool),
        })
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, ipam::Pool> {
        self.pool.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn pool6(&self) -> Option<std::sync::MutexGuard<'_, ipam::Pool6>> {
        self.pool6
            .as_ref()
            .map(|p| p.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes back the address of a container that ran before berthd restarted.
    pub fn reclaim(&self, ip: Ipv4Addr) -> bool {
        self.pool().claim(ip)
    }

    /// Takes back the IPv6 address of a container that ran before berthd restarted.
    pub fn reclaim6(&self, ip: Ipv6Addr) -> bool {
        self.pool6().is_some_and(|mut p| p.claim(ip))
    }

    /// The IPv6 address of an attach: the one asked for or the next free one; none on a
    /// bridge without IPv6 (where asking for one is refused).
    fn lease6(&self, asked: Option<Ipv6Addr>) -> Result<Option<Endpoint6>> {
        let (Some(net), Some(mut pool)) = (self.v6, self.pool6()) else {
            return match asked {
                Some(ip) => Err(Error::Invalid(format!(
                    "cannot use the IPv6 address {ip} (--ip6): network {} has no IPv6 \
                     (network create --ipv6)",
                    self.name
                ))),
                None => Ok(None),
            };
        };
        let ip = match asked {
            Some(ip) if !net.subnet.contains(ip) => {
                return Err(Error::Invalid(format!(
                    "no configured subnet or ip-range contain the IP address {ip}"
                )))
            }
            Some(ip) => {
                if !pool.claim(ip) {
                    return Err(Error::Invalid(format!(
                        "Address already in use: {ip} on {}",
                        self.name
                    )));
                }
                ip
            }
            None => pool.allocate().ok_or_else(|| {
                Error::Invalid(format!(
                    "no IPv6 address left in {} ({})",
                    self.name, net.subnet
                ))
            })?,
        };
        Ok(Some(Endpoint6 {
            ip,
            prefix: net.subnet.prefix,
            gateway: net.gateway,
        }))
    }

    /// Connects the namespace of `sandbox` to the bridge: a veth pair, an address (the one
    /// asked for or the next free one), the default route through the bridge when asked.
    /// Nothing is left when it fails.
    pub fn attach(
        &self,
        container_id: &str,
        sandbox: &netns::Sandbox,
        how: &Attach,
    ) -> Result<Endpoint> {
        let ip = match how.ip {
            Some(ip) if !self.subnet.contains(ip) => {
                return Err(Error::Invalid(format!(
                    "no configured subnet or ip-range contain the IP address {ip}"
                )))
            }
            Some(ip) => {
                if !self.pool().claim(ip) {
                    return Err(Error::Invalid(format!(
                        "Address already in use: {ip} on {}",
                        self.name
                    )));
                }
                ip
            }
            None => self.pool().allocate().ok_or_else(|| {
                Error::Invalid(format!(
                    "no IPv4 address left in {} ({})",
                    self.name, self.subnet
                ))
            })?,
        };
        let v6 = match self.lease6(how.ip6) {
            Ok(v6) => v6,
            Err(e) => {
                self.pool().release(ip);
                return Err(e);
            }
        };
        let mut ep = Endpoint {
            ip,
            prefix: self.subnet.prefix,
            gateway: self.gateway,
            v6,
            mac: how.mac.unwrap_or_else(|| ipam::mac_of(ip)),
            host_veth: host_veth_name(container_id, self.veth_tag.as_deref()),
            host_index: 0,
        };
        match self.connect(&mut ep, sandbox, how) {
            Ok(()) => Ok(ep),
            Err(e) => {
                // By name: this start made it, and no other run of the container is on.
                if let Err(left) = self.host.delete_link(&ep.host_veth) {
                    tracing::warn!(container = container_id, "undoing a failed attach: {left}");
                }
                self.release(&ep);
                Err(e)
            }
        }
    }

    fn connect(&self, ep: &mut Endpoint, sandbox: &netns::Sandbox, how: &Attach) -> Result<()> {
        let ifname = if how.ifname.is_empty() {
            CONTAINER_IFNAME
        } else {
            &how.ifname
        };
        let add = || {
            self.host
                .add_veth(&ep.host_veth, self.index, ifname, ep.mac, sandbox.fd())
        };
        match add() {
            // A pair left by a run before a crash (its namespace still held): replace it.
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                let _ = self.host.delete_link(&ep.host_veth);
                add()
            }
            r => r,
        }
        .map_err(sys(format!("creating the veth pair {}", ep.host_veth)))?;
        ep.host_index = self
            .host
            .link_index(&ep.host_veth)
            .map_err(sys("netlink"))?
            .unwrap_or(0);
        // Hairpin: a container reaching its own published port through a host address
        // gets its packets back through the port they came in by. With `br_netfilter`
        // loaded (Docker loads it) the bridge handles them as bridged from that port and
        // drops them unless the port may send back (as Docker sets it without its proxy).
        std::fs::write(
            format!("/sys/class/net/{}/brport/hairpin_mode", ep.host_veth),
            "1",
        )
        .map_err(sys(format!("hairpin mode on {}", ep.host_veth)))?;
        // enable_icc=false: an isolated port reaches the bridge (the gateway, the host) and
        // no other isolated port, in the bridge itself (with or without br_netfilter).
        if !self.icc {
            std::fs::write(
                format!("/sys/class/net/{}/brport/isolated", ep.host_veth),
                "1",
            )
            .map_err(sys(format!("isolating {}", ep.host_veth)))?;
        }
        let inside = &sandbox.netlink;
        let index = inside
            .link_index(ifname)
            .map_err(sys("netlink"))?
            .ok_or_else(|| Error::Invalid(format!("{ifname} is missing in the container")))?;
        inside
            .add_address(index, IpAddr::V4(ep.ip), ep.prefix)
            .map_err(sys("the container's address"))?;
        if let Some(v6) = ep.v6 {
            inside
                .add_address(index, IpAddr::V6(v6.ip), v6.prefix)
                .map_err(sys("the container's IPv6 address"))?;
        }
        inside
            .set_up(index)
            .map_err(sys(format!("setting {ifname} up")))?;
        if how.route4 && !self.internal {
            inside
                .add_default_route(IpAddr::V4(ep.gateway), None)
                .map_err(sys("the container's default route"))?;
        }
        if let Some(v6) = ep.v6.filter(|_| how.route6 && !self.internal) {
            inside
                .add_default_route(IpAddr::V6(v6.gateway), Some(index))
                .map_err(sys("the container's IPv6 default route"))?;
        }
        Ok(())
    }

    /// Undoes [`Bridge::attach`]: removes the pair ([`Bridge::remove_pair`]) and releases
    /// the addresses. Goes on after an error; returns them all.
    pub fn detach(&self, ep: &Endpoint) -> Vec<String> {
        let errors = self.remove_pair(ep);
        self.release(ep);
        errors
    }

    /// Removes the host's end of the pair by its index (the container's end goes with it;
    /// both also go by themselves with the container's namespace), if the link at that
    /// index still has the pair's name: an index recorded before a reboot may name another
    /// interface now. Slow (the kernel waits for a grace period): callers may run it late,
    /// as the index names this pair only, never the next run's pair of the same name.
    pub fn remove_pair(&self, ep: &Endpoint) -> Vec<String> {
        let mut errors = Vec::new();
        if ep.host_index == 0 {
            return errors;
        }
        match self.slow.link_name(ep.host_index) {
            Ok(Some(name)) if name == ep.host_veth => {
                if let Err(e) = self.slow.delete_link_index(ep.host_index) {
                    errors.push(format!("removing {}: {e}", ep.host_veth));
                }
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("looking up {}: {e}", ep.host_veth)),
        }
        errors
    }

    /// Returns the endpoint's addresses to the pools.
    pub fn release(&self, ep: &Endpoint) {
        self.pool().release(ep.ip);
        if let (Some(v6), Some(mut pool)) = (ep.v6, self.pool6()) {
            pool.release(v6.ip);
        }
    }

    /// Sends the ports in `maps` to the container at `to` (one `nft` transaction).
    pub fn publish(&self, to: ports::Target, maps: &[ports::PortMap]) -> Result<()> {
        if maps.is_empty() {
            return Ok(());
        }
        nft::apply(&ports::elements(&self.table, to, maps, true)).map_err(sys("publishing ports"))
    }

    /// Stops sending the ports in `maps` to the container at `to`: in one transaction, or,
    /// when that fails (an element already gone aborts it), in one transaction that adds
    /// each element before deleting them all ([`ports::delete_present`]), so that no
    /// element is left to send a port to whoever gets the address next, and a failure
    /// leaves the maps as they were.
    pub fn unpublish(&self, to: ports::Target, maps: &[ports::PortMap]) -> Result<()> {
        if maps.is_empty() {
            return Ok(());
        }
        let unpublished = self.unpublish_elements(to, maps);
        forget_flows(to, maps);
        unpublished
    }

    fn unpublish_elements(&self, to: ports::Target, maps: &[ports::PortMap]) -> Result<()> {
        if nft::apply(&ports::elements(&self.table, to, maps, false)).is_ok() {
            return Ok(());
        }
        match nft::apply(&ports::delete_present(&self.table, to, maps)) {
            Ok(()) => Ok(()),
            Err(e) => {
                // The table or a map gone already: the kernel's ENOENT, or nft's own words.
                let e = e.to_string();
                if e.contains("No such file or directory") || e.contains("does not exist") {
                    Ok(())
                } else {
                    Err(Error::Invalid(format!("unpublishing ports: {e}")))
                }
            }
        }
    }

    /// Addresses leased now.
    pub fn leased(&self) -> usize {
        self.pool().leased()
    }

    /// IPv6 addresses leased now.
    pub fn leased6(&self) -> usize {
        self.pool6().map_or(0, |p| p.leased())
    }

    /// Removes the network from the host: its rules (the table), the bridge (the host ends
    /// of pairs still on it go with it) and berth's accepts in another firewall's chain.
    /// Goes on after an error; returns them all.
    pub fn remove(&self) -> Vec<String> {
        let mut errors = Vec::new();
        if let Err(e) = nft::delete_table(&self.table) {
            errors.push(format!("removing the rules of {}: {e}", self.name));
        }
        match self.host.link_name(self.index) {
            Ok(Some(name)) if name == self.name => {
                if let Err(e) = self.host.delete_link_index(self.index) {
                    errors.push(format!("removing bridge {}: {e}", self.name));
                }
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("looking up bridge {}: {e}", self.name)),
        }
        if let Err(e) = coexist::close_forward(&self.name) {
            errors.push(e);
        }
        if let Err(e) = firewalld::close(&self.name) {
            errors.push(e);
        }
        errors
    }
}

/// Once its ports are unpublished, the flows of a container's UDP and SCTP ports are
/// forgotten (conntrack.rs): their next packets take the rules as they are now. A failure is
/// logged: the flows then end by their timeout (30 s without traffic).
fn forget_flows(to: ports::Target, maps: &[ports::PortMap]) {
    let mut done = std::collections::BTreeSet::new();
    for m in maps {
        let proto = match m.proto {
            ports::Proto::Tcp => continue,
            ports::Proto::Udp => libc::IPPROTO_UDP as u8,
            ports::Proto::Sctp => libc::IPPROTO_SCTP as u8,
        };
        let ip = match m.host_ip {
            IpAddr::V4(_) => IpAddr::V4(to.ip),
            IpAddr::V6(_) => match to.ip6 {
                Some(ip6) => IpAddr::V6(ip6),
                None => continue,
            },
        };
        if !done.insert((proto, ip, m.container_port)) {
            continue;
        }
        if let Err(e) = conntrack::forget(proto, ip, m.container_port) {
            tracing::warn!(
                "forgetting the tracked flows of {}/{}: {e}",
                ports::host_port(ip, m.container_port),
                m.proto.as_str()
            );
        }
    }
}
