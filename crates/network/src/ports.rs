//! Published ports: a host port reserved by a socket berthd holds (bound, never listening:
//! another program's bind of the port fails, and nothing is ever accepted on it), and a
//! DNAT in berth's table that sends the port's traffic to the container. No process per
//! port: the kernel forwards.

use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }

    pub fn parse(s: &str) -> Option<Proto> {
        match s {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            _ => None,
        }
    }
}

/// One published port, as reserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortMap {
    pub proto: Proto,
    /// `0.0.0.0`: every address of the host.
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub container_port: u16,
}

/// One port to publish, as asked: a host port, a range to pick one from, or any (`0..=0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub proto: Proto,
    pub container_port: u16,
    pub host_ip: Ipv4Addr,
    pub host_ports: (u16, u16),
}

/// Reserves a host port for each request, in order; `holder` names who has a port berth
/// knows is taken (another container). Nothing is held when it fails.
pub fn reserve(
    requests: &[Request],
    holder: &dyn Fn(Proto, Ipv4Addr, u16) -> Option<String>,
) -> Result<(Vec<PortMap>, Vec<OwnedFd>)> {
    let mut maps = Vec::with_capacity(requests.len());
    let mut held = Vec::with_capacity(requests.len());
    for r in requests {
        let (from, to) = r.host_ports;
        let mut last_err = None;
        let mut got = None;
        for port in from..=to {
            if port != 0 {
                if let Some(who) = holder(r.proto, r.host_ip, port) {
                    last_err = Some(Error::Invalid(format!(
                        "Bind for {}:{port} failed: port is already allocated (by {who})",
                        r.host_ip
                    )));
                    continue;
                }
            }
            match bind(r.proto, r.host_ip, port) {
                Ok(fd) => {
                    got = Some(fd);
                    break;
                }
                Err(e) => {
                    let who = if e.raw_os_error() == Some(libc::EADDRINUSE) && port != 0 {
                        process_holding(r.proto, port)
                            .map(|p| format!(" (held by {p})"))
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    let e = e
                        .raw_os_error()
                        .map(|n| nix::errno::Errno::from_raw(n).desc().to_string())
                        .unwrap_or_else(|| e.to_string());
                    last_err = Some(Error::Invalid(format!(
                        "failed to bind host port {}:{port}/{}: {e}{who}",
                        r.host_ip,
                        r.proto.as_str()
                    )));
                }
            }
        }
        let Some(fd) = got else {
            return Err(last_err
                .unwrap_or_else(|| Error::Invalid(format!("no free host port in {from}-{to}"))));
        };
        let host_port = bound_port(&fd).map_err(|e| Error::System {
            what: "reading a reserved port".into(),
            source: e,
        })?;
        maps.push(PortMap {
            proto: r.proto,
            host_ip: r.host_ip,
            host_port,
            container_port: r.container_port,
        });
        held.push(fd);
    }
    Ok((maps, held))
}

/// A socket bound to `ip:port` (0: any free port), close-on-exec, not listening.
pub fn bind(proto: Proto, ip: Ipv4Addr, port: u16) -> io::Result<OwnedFd> {
    let kind = match proto {
        Proto::Tcp => SockType::Stream,
        Proto::Udp => SockType::Datagram,
    };
    let fd = socket::socket(AddressFamily::Inet, kind, SockFlag::SOCK_CLOEXEC, None)?;
    socket::bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(ip, port)),
    )?;
    Ok(fd)
}

fn bound_port(fd: &OwnedFd) -> io::Result<u16> {
    let addr: SockaddrIn = socket::getsockname(fd.as_raw_fd())?;
    Ok(addr.port())
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

/// The `nft` lines that add (or delete) the elements of `maps` for the container at `ip`:
/// one statement per map, whatever the number of ports. A port published on every host
/// address as itself (`-p 8080:8080`) goes to the `same` map, consecutive ones as one
/// interval (1000 ports of a range are one element); the others one element each.
pub fn elements(table: &str, ip: Ipv4Addr, maps: &[PortMap], add: bool) -> String {
    let verb = if add { "add" } else { "delete" };
    by_map(ip, maps, add)
        .iter()
        .map(|(map, elements)| {
            format!(
                "{verb} element inet {table} {map} {{ {} }}\n",
                elements.join(", ")
            )
        })
        .collect()
}

/// The same elements as [`elements`], one statement each (an interval as it was added), for
/// removing what is left one by one when a transaction of them all failed.
pub fn each_element(table: &str, ip: Ipv4Addr, maps: &[PortMap], add: bool) -> Vec<String> {
    let verb = if add { "add" } else { "delete" };
    by_map(ip, maps, add)
        .iter()
        .flat_map(|(map, elements)| {
            elements
                .iter()
                .map(move |e| format!("{verb} element inet {table} {map} {{ {e} }}\n"))
        })
        .collect()
}

/// The elements of `maps` by the map they go to.
fn by_map(
    ip: Ipv4Addr,
    maps: &[PortMap],
    add: bool,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut by_map: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut same: std::collections::BTreeMap<&str, Vec<u16>> = Default::default();
    for m in maps {
        let proto = m.proto.as_str();
        if m.host_ip.is_unspecified() && m.host_port == m.container_port {
            same.entry(proto).or_default().push(m.host_port);
            continue;
        }
        let (map, key) = if m.host_ip.is_unspecified() {
            (format!("{proto}4"), m.host_port.to_string())
        } else {
            (
                format!("{proto}4ip"),
                format!("{} . {}", m.host_ip, m.host_port),
            )
        };
        let element = if add {
            format!("{key} : {ip} . {}", m.container_port)
        } else {
            key
        };
        by_map.entry(map).or_default().push(element);
    }
    for (proto, mut ports) in same {
        ports.sort_unstable();
        ports.dedup();
        let mut runs: Vec<(u16, u16)> = Vec::new();
        for p in ports {
            match runs.last_mut() {
                Some((_, end)) if u32::from(*end) + 1 == u32::from(p) => *end = p,
                _ => runs.push((p, p)),
            }
        }
        let elements = by_map.entry(format!("{proto}4same")).or_default();
        for (a, b) in runs {
            let key = if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            };
            elements.push(if add { format!("{key} : {ip}") } else { key });
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
                host_ip: Ipv4Addr::LOCALHOST,
                host_ports: (0, 0),
            }],
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
                host_ip: Ipv4Addr::LOCALHOST,
                host_ports: (port, port),
            }],
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
                host_ip: Ipv4Addr::LOCALHOST,
                host_ports: (busy, busy),
            }],
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
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_ports: (port, port),
            }],
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
                host_ip: Ipv4Addr::UNSPECIFIED,
                host_port: 8080,
                container_port: 80,
            },
            PortMap {
                proto: Proto::Udp,
                host_ip: Ipv4Addr::LOCALHOST,
                host_port: 5353,
                container_port: 53,
            },
        ];
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(
            elements("berth", ip, &maps, true),
            "add element inet berth tcp4 { 8080 : 10.0.0.2 . 80 }\n\
             add element inet berth udp4ip { 127.0.0.1 . 5353 : 10.0.0.2 . 53 }\n"
        );
        let mut many = maps.to_vec();
        many[1].proto = Proto::Tcp;
        many[1].host_ip = Ipv4Addr::UNSPECIFIED;
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
                host_ip: Ipv4Addr::UNSPECIFIED,
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
            each_element("berth", ip, &range, false),
            [
                "delete element inet berth tcp4same { 20000-20999 }\n",
                "delete element inet berth tcp4same { 30000 }\n"
            ],
            "one by one, each interval as it was added"
        );
        assert_eq!(
            elements("berth", ip, &maps, false),
            "delete element inet berth tcp4 { 8080 }\n\
             delete element inet berth udp4ip { 127.0.0.1 . 5353 }\n"
        );
    }
}
