//! Published ports: a host port reserved by a socket berthd holds (bound, never listening:
//! another program's bind of the port fails, and nothing is ever accepted on it), and a
//! DNAT in berth's table that sends the port's traffic to the container. No process per
//! port: the kernel forwards.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, sockopt, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

/// Every protocol a port is published for, by name (the nftables maps are per protocol).
pub const PROTOS: [&str; 3] = ["tcp", "udp", "sctp"];

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// One published port, as reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMap {
    pub proto: Proto,
    /// `0.0.0.0` (`::`): every IPv4 (IPv6) address of the host.
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
}

/// One port to publish, as asked: a host port, a range to pick one from, or any (`0..=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub proto: Proto,
    pub container_port: u16,
    /// `None` (no `HostIp`): every address of the host, of both families when the
    /// container has an IPv6 address (Docker's `-p 8080:80`), else IPv4's.
    pub host_ip: Option<IpAddr>,
    pub host_ports: (u16, u16),
}

/// `1.2.3.4:80`, `[::1]:80` (Go's `JoinHostPort`, which Docker's messages use).
pub fn host_port(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

/// Whether two bindings of one port collide: of the same family, and the same address or
/// one of them every address.
pub fn collide(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4() && (a == b || a.is_unspecified() || b.is_unspecified())
}

/// Tries of a free port for a request of any port (`0`) published on both families: the
/// kernel's choice for IPv4 may be taken for IPv6.
const ANY_PORT_TRIES: usize = 16;

/// Reserves a host port for each request, in order; `v6`: the container has an IPv6
/// address there (a request of every address is then reserved on both families, on the
/// same port). `holder` names who has a port berth knows is taken (another container).
/// Nothing is held when it fails.
pub fn reserve(
    requests: &[Request],
    v6: bool,
    holder: &dyn Fn(Proto, IpAddr, u16) -> Option<String>,
) -> Result<(Vec<PortMap>, Vec<OwnedFd>)> {
    let mut maps = Vec::with_capacity(requests.len());
    let mut held = Vec::with_capacity(requests.len());
    for r in requests {
        let addrs: Vec<IpAddr> = match r.host_ip {
            Some(IpAddr::V6(ip)) if !v6 => {
                return Err(Error::Invalid(format!(
                    "cannot publish on the IPv6 address {ip}: the container has no IPv6 \
                     address on the network its ports are published on (network create \
                     --ipv6)"
                )))
            }
            Some(ip) => vec![ip],
            None if v6 => vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()],
            None => vec![Ipv4Addr::UNSPECIFIED.into()],
        };
        let (from, to) = r.host_ports;
        let tries: Vec<u16> = if (from, to) == (0, 0) {
            vec![0; if addrs.len() > 1 { ANY_PORT_TRIES } else { 1 }]
        } else {
            (from..=to).collect()
        };
        let mut last_err = None;
        let mut got = None;
        for port in tries {
            match reserve_one(r.proto, &addrs, port, holder) {
                Ok(bound) => {
                    got = Some(bound);
                    break;
                }
                Err(e) => last_err = Some(e),
            }
        }
        let Some((host_port, fds)) = got else {
            return Err(last_err
                .unwrap_or_else(|| Error::Invalid(format!("no free host port in {from}-{to}"))));
        };
        for ip in addrs {
            maps.push(PortMap {
                proto: r.proto,
                host_ip: ip,
                host_port,
                container_port: r.container_port,
            });
        }
        held.extend(fds);
    }
    Ok((maps, held))
}

/// Binds `port` (`0`: the kernel's choice, then the same on the other addresses) on each
/// of `addrs`: the port and its sockets, or the first error (nothing held).
fn reserve_one(
    proto: Proto,
    addrs: &[IpAddr],
    mut port: u16,
    holder: &dyn Fn(Proto, IpAddr, u16) -> Option<String>,
) -> Result<(u16, Vec<OwnedFd>)> {
    let mut fds = Vec::with_capacity(addrs.len());
    for &ip in addrs {
        if port != 0 {
            if let Some(who) = holder(proto, ip, port) {
                return Err(Error::Invalid(format!(
                    "Bind for {} failed: port is already allocated (by {who})",
                    host_port(ip, port)
                )));
            }
        }
        match bind(proto, ip, port) {
            Ok(fd) => {
                if port == 0 {
                    port = bound_port(&fd).map_err(|e| Error::System {
                        what: "reading a reserved port".into(),
                        source: e,
                    })?;
                }
                fds.push(fd);
            }
            Err(e) => {
                let who = if e.raw_os_error() == Some(libc::EADDRINUSE) && port != 0 {
                    process_holding(proto, port)
                        .map(|p| format!(" (held by {p})"))
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                let e = e
                    .raw_os_error()
                    .map(|n| nix::errno::Errno::from_raw(n).desc().to_string())
                    .unwrap_or_else(|| e.to_string());
                return Err(Error::Invalid(format!(
                    "failed to bind host port {}/{}: {e}{who}",
                    host_port(ip, port),
                    proto.as_str()
                )));
            }
        }
    }
    Ok((port, fds))
}

/// A socket bound to `ip:port` (0: any free port), close-on-exec, not listening. An IPv6
/// one is IPv6 only: `::` holds the port of every IPv6 address, never IPv4's.
pub fn bind(proto: Proto, ip: IpAddr, port: u16) -> io::Result<OwnedFd> {
    let kind = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
        Proto::Sctp => return bind_sctp(ip, port),
    };
    let family = if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket::socket(family, kind, SockFlag::SOCK_CLOEXEC, None)?;
    if ip.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrStorage::from(SocketAddr::new(ip, port)),
    )?;
    Ok(fd)
}

/// An SCTP socket (one-to-one style) bound to `ip:port`, as [`bind`]. A kernel without
/// SCTP (`CONFIG_IP_SCTP` unset, or the `sctp` module absent) refuses to make one: the port
/// is then refused by name, never published without its reservation.
fn bind_sctp(ip: IpAddr, port: u16) -> io::Result<OwnedFd> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if ip.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(
        domain,
        Type::STREAM,
        Some(Protocol::from(libc::IPPROTO_SCTP)),
    )
    .map_err(|e| match e.raw_os_error() {
        Some(libc::EPROTONOSUPPORT) | Some(libc::ESOCKTNOSUPPORT) => io::Error::new(
            io::ErrorKind::Unsupported,
            "this host's kernel has no SCTP (the sctp module, CONFIG_IP_SCTP)",
        ),
        _ => e,
    })?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&SocketAddr::new(ip, port).into())?;
    Ok(socket.into())
}

fn bound_port(fd: &OwnedFd) -> io::Result<u16> {
    let addr: SockaddrStorage = socket::getsockname(fd.as_raw_fd())?;
    addr.as_sockaddr_in()
        .map(|a| a.port())
        .or_else(|| addr.as_sockaddr_in6().map(|a| a.port()))
        .ok_or_else(|| io::Error::other("a reserved port's socket has no IP address"))
}

/// `name (pid N)` of a process with a socket on the port, read from /proc (best effort).
fn process_holding(proto: Proto, port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in [
        format!("/proc/net/{}", proto.as_str()),
        format!("/proc/net/{}6", proto.as_str()),
    ] {
        let Ok(text) = std::fs::read_to_string(&table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) {
                if let Some(inode) = f.get(9) {
                    inodes.push(format!("socket:[{inode}]"));
                }
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = proc_entry.file_name();
        let Some(pid) = pid
            .to_str()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    let name =
                        std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
                    return Some(format!("{} (pid {pid})", name.trim()));
                }
            }
        }
    }
    None
}

/// Where a container's published ports go: its IPv4 address, and its IPv6 one when it has
/// one (the ports published on IPv6 addresses go there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
}

/// The `nft` lines that add (or delete) the elements of `maps` for the container at `to`:
/// one statement per map, whatever the number of ports. A port published on every host
/// address as itself (`-p 8080:8080`) goes to the `same` map, consecutive ones as one
/// interval (1000 ports of a range are one element); the others one element each. The
/// maps of a port on IPv6 host addresses are the `…6` ones, to the container's IPv6
/// address.
pub fn elements(table: &str, to: Target, maps: &[PortMap], add: bool) -> String {
    let verb = if add { "add" } else { "delete" };
    by_map(to, maps, add)
        .iter()
        .map(|(map, elements)| {
            format!(
                "{verb} element inet {table} {map} {{ {} }}\n",
                elements.join(", ")
            )
        })
        .collect()
}

/// The statements that delete the elements of `maps` whichever of them are still there, as
/// one transaction (for when [`elements`]' deletion failed: an element already gone aborts
/// it): every element added first, a no-op for one there with the same value, then all
/// deleted. An element there with another value (another container's) makes nft refuse
/// the whole, and nothing changes.
pub fn delete_present(table: &str, to: Target, maps: &[PortMap]) -> String {
    elements(table, to, maps, true) + &elements(table, to, maps, false)
}

/// The elements of `maps` by the map they go to. A port on IPv6 addresses for a container
/// without an IPv6 address has none (never reserved so: [`reserve`] refuses it).
fn by_map(
    to: Target,
    maps: &[PortMap],
    add: bool,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut by_map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut same: std::collections::BTreeMap<(&str, char), Vec<u16>> = Default::default();
    for m in maps {
        let proto = m.proto.as_str();
        let (family, ip) = match m.host_ip {
            IpAddr::V4(_) => ('4', IpAddr::V4(to.ip)),
            IpAddr::V6(_) => match to.ip6 {
                Some(ip6) => ('6', IpAddr::V6(ip6)),
                None => continue,
            },
        };
        if m.host_ip.is_unspecified() && m.host_port == m.container_port {
            same.entry((proto, family)).or_default().push(m.host_port);
            continue;
        }
        let (map, key) = if m.host_ip.is_unspecified() {
            (format!("{proto}{family}"), m.host_port.to_string())
        } else {
            (
                format!("{proto}{family}ip"),
                format!("{} . {}", m.host_ip, m.host_port),
            )
        };
        if family == '6' {
            by_map
                .entry(format!("{map}k"))
                .or_default()
                .push(key.clone());
        }
        let element = if add {
            format!("{key} : {ip} . {}", m.container_port)
        } else {
            key
        };
        by_map.entry(map).or_default().push(element);
    }
    for ((proto, family), mut ports) in same {
        let ip = if family == '4' {
            IpAddr::V4(to.ip)
        } else {
            IpAddr::V6(to.ip6.unwrap_or(Ipv6Addr::UNSPECIFIED))
        };
        ports.sort_unstable();
        ports.dedup();
        let mut runs: Vec<(u16, u16)> = Vec::new();
        for p in ports {
            match runs.last_mut() {
                Some((_, end)) if u32::from(*end) + 1 == u32::from(p) => *end = p,
                _ => runs.push((p, p)),
            }
        }
        let map = format!("{proto}{family}same");
        for (a, b) in runs {
            let key = if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            };
            if family == '6' {
                by_map
                    .entry(format!("{map}k"))
                    .or_default()
                    .push(key.clone());
            }
            let element = if add { format!("{key} : {ip}") } else { key };
            by_map.entry(map.clone()).or_default().push(element);
        }
    }
    by_map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_is_reserved_and_a_second_bind_of_it_fails() {
        let (maps, held) = reserve(
            &[Request {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_ports: (0, 0),
            }],
            false,
            &|_, _, _| None,
        )
        .unwrap();
        assert_eq!(held.len(), 1);
        let port = maps[0].host_port;
        assert_ne!(port, 0, "a free port was chosen");
        let err = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE));
        // Asked for by number while held (bound, not listening: no process is named).
        let again = reserve(
            &[Request {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_ports: (port, port),
            }],
            false,
            &|_, _, _| None,
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            again,
            format!("failed to bind host port 127.0.0.1:{port}/tcp: Address already in use")
        );
        // A server listening on a port: the error names it.
        let server = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let busy = server.local_addr().unwrap().port();
        let named = reserve(
            &[Request {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_ports: (busy, busy),
            }],
            false,
            &|_, _, _| None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            named.contains(&format!("(pid {}))", std::process::id())),
            "names the process: {named}"
        );
        let mine = reserve(
            &[Request {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: None,
                host_ports: (port, port),
            }],
            false,
            &|_, _, p| (p == port).then(|| "web".to_string()),
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            mine,
            format!("Bind for 0.0.0.0:{port} failed: port is already allocated (by web)")
        );
    }

    #[test]
    fn elements_go_to_the_any_address_map_or_the_per_address_one() {
        let maps = [
            PortMap {
                proto: Proto::Tcp,
                host_ip: Ipv4Addr::UNSPECIFIED.into(),
                host_port: 8080,
                container_port: 80,
            },
            PortMap {
                proto: Proto::Udp,
                host_ip: Ipv4Addr::LOCALHOST.into(),
                host_port: 5353,
                container_port: 53,
            },
        ];
        let ip = Target {
            ip: Ipv4Addr::new(10, 0, 0, 2),
            ip6: None,
        };
        assert_eq!(
            elements("berth", ip, &maps, true),
            "add element inet berth tcp4 { 8080 : 10.0.0.2 . 80 }\n\
             add element inet berth udp4ip { 127.0.0.1 . 5353 : 10.0.0.2 . 53 }\n"
        );
        let mut many = maps.to_vec();
        many[1].proto = Proto::Tcp;
        many[1].host_ip = Ipv4Addr::UNSPECIFIED.into();
        assert_eq!(
            elements("berth", ip, &many, true),
            "add element inet berth tcp4 { 8080 : 10.0.0.2 . 80, 5353 : 10.0.0.2 . 53 }\n",
            "one statement per map"
        );
        // Ports published as themselves: intervals of the `same` map.
        let range: Vec<PortMap> = (20000..21000)
            .chain([30000])
            .map(|p| PortMap {
                proto: Proto::Tcp,
                host_ip: Ipv4Addr::UNSPECIFIED.into(),
                host_port: p,
                container_port: p,
            })
            .collect();
        assert_eq!(
            elements("berth", ip, &range, true),
            "add element inet berth tcp4same { 20000-20999 : 10.0.0.2, 30000 : 10.0.0.2 }\n"
        );
        assert_eq!(
            elements("berth", ip, &range, false),
            "delete element inet berth tcp4same { 20000-20999, 30000 }\n"
        );
        assert_eq!(
            delete_present("berth", ip, &range),
            "add element inet berth tcp4same { 20000-20999 : 10.0.0.2, 30000 : 10.0.0.2 }\n\
             delete element inet berth tcp4same { 20000-20999, 30000 }\n",
            "one transaction: added (no-op where there) then deleted, intervals as added"
        );
        assert_eq!(
            elements("berth", ip, &maps, false),
            "delete element inet berth tcp4 { 8080 }\n\
             delete element inet berth udp4ip { 127.0.0.1 . 5353 }\n"
        );
    }

    #[test]
    fn every_address_is_both_families_on_one_port_when_the_container_has_ipv6() {
        let any = Request {
            proto: Proto::Tcp,
            container_port: 80,
            host_ip: None,
            host_ports: (0, 0),
        };
        let (maps, held) = reserve(&[any], true, &|_, _, _| None).unwrap();
        assert_eq!(held.len(), 2);
        assert_eq!(maps.len(), 2);
        let port = maps[0].host_port;
        assert_eq!(maps[0].host_ip, IpAddr::from(Ipv4Addr::UNSPECIFIED));
        assert_eq!(maps[1].host_ip, IpAddr::from(Ipv6Addr::UNSPECIFIED));
        assert_eq!(maps[1].host_port, port, "the same port on both families");
        // Held on both: another program's bind of either fails.
        for ip in [
            IpAddr::from(Ipv4Addr::LOCALHOST),
            Ipv6Addr::LOCALHOST.into(),
        ] {
            let err = std::net::TcpListener::bind((ip, port)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EADDRINUSE), "{ip}");
        }
        // Without IPv6: IPv4 only.
        let (maps, held) = reserve(&[any], false, &|_, _, _| None).unwrap();
        assert_eq!((maps.len(), held.len()), (1, 1));
        assert!(maps[0].host_ip.is_ipv4());
        // An IPv6 address asked for a container without one: refused, saying why.
        let v6 = Request {
            host_ip: Some(Ipv6Addr::LOCALHOST.into()),
            ..any
        };
        let err = reserve(&[v6], false, &|_, _, _| None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("the container has no IPv6 address"), "{err}");
        // Another container's `::` collides with a v6 binding only; messages bracket it.
        let busy = reserve(
            &[Request {
                host_ports: (port, port),
                ..v6
            }],
            true,
            &|_, ip, p| (ip.is_ipv6() && p == port).then(|| "web".to_string()),
        )
        .err()
        .unwrap()
        .to_string();
        assert_eq!(
            busy,
            format!("Bind for [::1]:{port} failed: port is already allocated (by web)")
        );
        assert!(collide(
            Ipv6Addr::UNSPECIFIED.into(),
            Ipv6Addr::LOCALHOST.into()
        ));
        assert!(!collide(
            Ipv4Addr::UNSPECIFIED.into(),
            Ipv6Addr::LOCALHOST.into()
        ));
        assert!(!collide(
            Ipv4Addr::LOCALHOST.into(),
            Ipv4Addr::new(10, 0, 0, 1).into()
        ));
        assert!(collide(
            Ipv4Addr::LOCALHOST.into(),
            Ipv4Addr::LOCALHOST.into()
        ));
    }

    #[test]
    fn ports_on_ipv6_addresses_go_to_the_6_maps_and_the_container_s_ipv6_address() {
        let to = Target {
            ip: Ipv4Addr::new(10, 0, 0, 2),
            ip6: Some("fd00:be:1::2".parse().unwrap()),
        };
        let map = |ip: IpAddr, host_port, container_port| PortMap {
            proto: Proto::Tcp,
            host_ip: ip,
            host_port,
            container_port,
        };
        let maps = [
            map(Ipv4Addr::UNSPECIFIED.into(), 8080, 80),
            map(Ipv6Addr::UNSPECIFIED.into(), 8080, 80),
            map(Ipv6Addr::UNSPECIFIED.into(), 9000, 9000),
            map(Ipv6Addr::LOCALHOST.into(), 8081, 81),
        ];
        assert_eq!(
            elements("berth-b", to, &maps, true),
            "add element inet berth-b tcp4 { 8080 : 10.0.0.2 . 80 }\n\
             add element inet berth-b tcp6 { 8080 : fd00:be:1::2 . 80 }\n\
             add element inet berth-b tcp6ip { ::1 . 8081 : fd00:be:1::2 . 81 }\n\
             add element inet berth-b tcp6ipk { ::1 . 8081 }\n\
             add element inet berth-b tcp6k { 8080 }\n\
             add element inet berth-b tcp6same { 9000 : fd00:be:1::2 }\n\
             add element inet berth-b tcp6samek { 9000 }\n"
        );
        assert_eq!(
            elements("berth-b", to, &maps, false),
            "delete element inet berth-b tcp4 { 8080 }\n\
             delete element inet berth-b tcp6 { 8080 }\n\
             delete element inet berth-b tcp6ip { ::1 . 8081 }\n\
             delete element inet berth-b tcp6ipk { ::1 . 8081 }\n\
             delete element inet berth-b tcp6k { 8080 }\n\
             delete element inet berth-b tcp6same { 9000 }\n\
             delete element inet berth-b tcp6samek { 9000 }\n"
        );
        // No IPv6 address: no IPv6 element.
        let v4 = Target { ip6: None, ..to };
        assert_eq!(
            elements("berth-b", v4, &maps[..2], true),
            "add element inet berth-b tcp4 { 8080 : 10.0.0.2 . 80 }\n"
        );
    }
}
