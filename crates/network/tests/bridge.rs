//! The default bridge for real, as root: a bridge and a table of the test's own, a namespace
//! made the way containers get theirs, a TCP connection from inside it to the gateway.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;

use berth_network::netlink::Netlink;
use berth_network::netns::Sandbox;
use berth_network::{nft, Bridge, BridgeConfig};

/// Removes the test's bridge and table however the test ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Netlink::new().unwrap().delete_link(&self.0);
        let _ = nft::delete_table(&nft::table_name(&self.0));
    }
}

fn config(tag: u8) -> BridgeConfig {
    let n = std::process::id() % 200;
    let mut cfg = BridgeConfig::new(&format!("bnt{n}x{tag}"));
    cfg.bip = Some((Ipv4Addr::new(10, 231, (n as u8) + tag, 1), 24));
    cfg
}

fn nft_list(table: &str) -> String {
    let out = std::process::Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_namespace_on_the_bridge_reaches_the_gateway_and_leaves_nothing_when_detached() {
    let cfg = config(0);
    let _cleanup = Cleanup(cfg.name.clone());
    let bridge = Bridge::setup(&cfg).expect("bridge");
    assert_eq!(
        bridge.gateway,
        Ipv4Addr::new(10, 231, cfg.bip.unwrap().0.octets()[2], 1)
    );
    let rules = nft_list(&bridge.table);
    assert!(
        rules.contains(&format!(
            "ip saddr {} oifname != \"{}\" masquerade",
            bridge.subnet, cfg.name
        )),
        "{rules}"
    );
    let host = Netlink::new().unwrap();
    assert!(host.link_index(&cfg.name).unwrap().is_some());

    let sandbox = Sandbox::new().expect("namespace");
    let ep = bridge
        .attach(
            "0123456789abcdef",
            &sandbox,
            &berth_network::Attach {
                route4: true,
                route6: true,
                ..Default::default()
            },
        )
        .expect("attach");
    assert_eq!(ep.host_veth, "veth0123456789a");
    assert_eq!(
        ep.ip,
        bridge.subnet.host(2),
        "the first address after the gateway"
    );
    assert_eq!(&ep.mac[..2], &[0x02, 0x42]);
    assert!(host.link_index(&ep.host_veth).unwrap().is_some());

    let listener = TcpListener::bind((bridge.gateway, 0)).unwrap();
    let to = listener.local_addr().unwrap();
    let ns = sandbox.fd().try_clone_to_owned().unwrap();
    let client = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let mut s = TcpStream::connect(to).expect("connect from the namespace");
        s.write_all(b"hello").unwrap();
    });
    let (mut conn, peer) = listener.accept().unwrap();
    let mut got = String::new();
    conn.read_to_string(&mut got).unwrap();
    client.join().unwrap();
    assert_eq!(got, "hello");
    assert_eq!(peer.ip(), IpAddr::V4(ep.ip), "from the container's address");

    assert!(bridge.detach(&ep).is_empty());
    assert!(
        host.link_index(&ep.host_veth).unwrap().is_none(),
        "veth gone"
    );
    assert_eq!(bridge.leased(), 0, "address released");
}

#[test]
fn setting_up_again_adopts_the_bridge_and_a_different_bip_is_refused() {
    let cfg = config(1);
    let _cleanup = Cleanup(cfg.name.clone());
    let first = Bridge::setup(&cfg).expect("bridge");
    let again = Bridge::setup(&cfg).expect("again");
    assert_eq!((first.subnet, first.gateway), (again.subnet, again.gateway));
    let mut chosen = cfg.clone();
    chosen.bip = None;
    assert_eq!(
        Bridge::setup(&chosen).expect("adopted").gateway,
        first.gateway
    );
    let mut other = cfg.clone();
    other.bip = Some((Ipv4Addr::new(10, 232, 0, 1), 24));
    let err = Bridge::setup(&other).err().expect("refused").to_string();
    assert!(err.contains("not the --bip 10.232.0.1/24"), "{err}");
}

#[test]
fn a_bad_bridge_name_is_refused() {
    let err = Bridge::setup(&BridgeConfig::new("much-too-long-name0"))
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("invalid bridge name"), "{err}");
}

#[test]
fn an_interface_that_is_not_a_bridge_is_never_adopted() {
    let err = Bridge::setup(&BridgeConfig::new("lo"))
        .err()
        .expect("refused")
        .to_string();
    assert_eq!(
        err,
        "lo exists and is not a bridge: choose another --bridge name"
    );
}

/// A bridge with IPv6 (`fd00:bd:<pid%100>:<k>::/64`, never the host's fd00::/64 nor the
/// e2e tests' fd00:be:…).
fn config6(tag: u8) -> BridgeConfig {
    let mut cfg = config(tag);
    let p = std::process::id() % 100;
    let gateway: std::net::Ipv6Addr = format!("fd00:bd:{p}:{tag}::1").parse().unwrap();
    cfg.v6 = Some((gateway, 64));
    cfg
}

/// A server in the namespace of `sandbox` on `[::]:port` (and 0.0.0.0: a dual-stack
/// socket) answering `pong` to `accepts` connections.
fn serve_in(sandbox: &Sandbox, port: u16, accepts: usize) -> std::thread::JoinHandle<()> {
    let ns = sandbox.fd().try_clone_to_owned().unwrap();
    let (ready, wait) = std::sync::mpsc::channel();
    let server = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let listener = TcpListener::bind(("::", port)).unwrap();
        ready.send(()).unwrap();
        for _ in 0..accepts {
            let (mut conn, _) = listener.accept().unwrap();
            conn.write_all(b"pong").unwrap();
        }
    });
    wait.recv().unwrap();
    server
}

fn ask(to: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&to, std::time::Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect to {to}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let mut got = String::new();
    s.read_to_string(&mut got).unwrap();
    got
}

#[test]
fn an_ipv6_bridge_gives_addresses_routes_and_publishes_on_loopback_too() {
    use berth_network::ports::{self, Proto, Request, Target};
    use std::net::{Ipv6Addr, SocketAddr};

    let cfg = config6(2);
    let _cleanup = Cleanup(cfg.name.clone());
    let bridge = Bridge::setup(&cfg).expect("bridge");
    let net6 = bridge.v6.expect("IPv6");
    assert_eq!(net6.gateway, cfg.v6.unwrap().0);
    let host = Netlink::new().unwrap();
    let index = host.link_index(&cfg.name).unwrap().unwrap();
    assert!(host
        .addresses(index)
        .unwrap()
        .contains(&(IpAddr::V6(net6.gateway), 64)));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/forwarding")
            .unwrap()
            .trim(),
        "1"
    );
    // Set up again: the address is adopted.
    Bridge::setup(&cfg).expect("again");

    let sandbox = Sandbox::new().expect("namespace");
    let ep = bridge
        .attach(
            "fedcba9876543210",
            &sandbox,
            &berth_network::Attach {
                route4: true,
                route6: true,
                ..Default::default()
            },
        )
        .expect("attach");
    let v6 = ep.v6.expect("an IPv6 address");
    assert_eq!(v6.ip, net6.subnet.host(2), "the first after the gateway");
    assert_eq!((v6.prefix, v6.gateway), (64, net6.gateway));
    assert_eq!(bridge.leased6(), 1);
    // In the namespace: the address, not tentative (no duplicate address detection),
    // and the default route through the gateway.
    let ns = sandbox.fd().try_clone_to_owned().unwrap();
    let (addrs, routes) = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        (
            std::fs::read_to_string("/proc/thread-self/net/if_inet6").unwrap(),
            std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap(),
        )
    })
    .join()
    .unwrap();
    let hex = |ip: std::net::Ipv6Addr| {
        ip.octets()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    // if_inet6: address, index, prefix, scope, flags (IFA_F_NODAD 0x02, no 0x40 tentative).
    let line = addrs
        .lines()
        .find(|l| l.starts_with(&hex(v6.ip)))
        .unwrap_or_else(|| panic!("{addrs}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!((f[2], f[5]), ("40", "eth0"), "{line}");
    let flags = u8::from_str_radix(f[4], 16).unwrap();
    assert_eq!(flags & 0x42, 0x02, "nodad, not tentative: {line}");
    // ipv6_route: destination ::/0 with the gateway as next hop.
    assert!(
        routes.lines().any(|l| l.starts_with(&format!(
            "{} 00 {} 00 {}",
            hex(std::net::Ipv6Addr::UNSPECIFIED),
            hex(std::net::Ipv6Addr::UNSPECIFIED),
            hex(net6.gateway)
        ))),
        "{routes}"
    );

    // The host reaches the container over IPv6, and a port published on every address
    // through the host's IPv6 loopback.
    let server = serve_in(&sandbox, 80, 3);
    assert_eq!(ask(SocketAddr::new(IpAddr::V6(v6.ip), 80)), "pong");
    let (maps, _held) = ports::reserve(
        &[
            Request {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: None,
                host_ports: (0, 0),
            },
            Request {
                proto: Proto::Tcp,
                container_port: 80,
                host_ip: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
                host_ports: (0, 0),
            },
        ],
        true,
        &|_, _, _| None,
    )
    .expect("reserve");
    assert_eq!(maps.len(), 3, "{maps:?}");
    let to = Target {
        ip: ep.ip,
        ip6: Some(v6.ip),
    };
    bridge.publish(to, &maps).expect("publish");
    let rules = nft_list(&bridge.table);
    assert!(rules.contains(&format!("{} . 80", v6.ip)), "{rules}");
    for m in maps.iter().filter(|m| m.host_ip.is_ipv6()) {
        assert_eq!(
            ask(SocketAddr::new(Ipv6Addr::LOCALHOST.into(), m.host_port)),
            "pong"
        );
    }
    server.join().unwrap();
    // UDP the same way: a datagram to [::1] reaches the container and the answer comes
    // back from [::1].
    let ns = sandbox.fd().try_clone_to_owned().unwrap();
    let (ready, wait) = std::sync::mpsc::channel();
    let echo = std::thread::spawn(move || {
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let socket = std::net::UdpSocket::bind(("::", 53)).unwrap();
        socket
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        ready.send(()).unwrap();
        let mut buf = [0u8; 64];
        let (n, from) = socket.recv_from(&mut buf).unwrap();
        socket.send_to(&buf[..n], from).unwrap();
        from
    });
    wait.recv().unwrap();
    let (umaps, _uheld) = ports::reserve(
        &[Request {
            proto: Proto::Udp,
            container_port: 53,
            host_ip: None,
            host_ports: (0, 0),
        }],
        true,
        &|_, _, _| None,
    )
    .expect("reserve udp");
    bridge.publish(to, &umaps).expect("publish udp");
    let client = std::net::UdpSocket::bind(("::1", 0)).unwrap();
    client
        .set_read_timeout(Some(std::time::Duration::from_secs(3)))
        .unwrap();
    let port = umaps[1].host_port;
    client.send_to(b"ping6", ("::1", port)).unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = client.recv_from(&mut buf).expect("an answer over [::1]");
    assert_eq!(&buf[..n], b"ping6");
    assert_eq!(from, SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port));
    let seen = echo.join().unwrap();
    assert_eq!(
        seen.ip(),
        IpAddr::V6(net6.gateway),
        "the container sees the gateway"
    );
    bridge.unpublish(to, &umaps).expect("unpublish udp");
    bridge.unpublish(to, &maps).expect("unpublish");
    let rules = nft_list(&bridge.table);
    assert!(!rules.contains(&format!("{} . 80", v6.ip)), "{rules}");

    assert!(bridge.detach(&ep).is_empty());
    assert_eq!((bridge.leased(), bridge.leased6()), (0, 0));
    // --ip6 on a bridge without IPv6: refused, naming it.
    let plain = config(3);
    let _c = Cleanup(plain.name.clone());
    let v4 = Bridge::setup(&plain).expect("bridge");
    let err = v4
        .attach(
            "fedcba9876543211",
            &Sandbox::new().unwrap(),
            &berth_network::Attach {
                ip6: Some(v6.ip),
                ..Default::default()
            },
        )
        .expect_err("refused")
        .to_string();
    assert!(err.contains("has no IPv6"), "{err}");
    assert_eq!(v4.leased(), 0, "nothing held");
}

#[test]
fn unpublish_after_an_element_went_removes_the_rest_in_one_transaction() {
    use berth_network::ports::{PortMap, Proto, Target};
    let cfg = config(5);
    let _cleanup = Cleanup(cfg.name.clone());
    let bridge = Bridge::setup(&cfg).expect("bridge");
    let (net, _) = cfg.bip.unwrap();
    let o = net.octets();
    let to = Target {
        ip: Ipv4Addr::new(o[0], o[1], o[2], 9),
        ip6: None,
    };
    let map = |host_port, container_port| PortMap {
        proto: Proto::Tcp,
        host_ip: Ipv4Addr::UNSPECIFIED.into(),
        host_port,
        container_port,
    };
    // Two ports as themselves (an interval of `tcp4same`), one to another port (`tcp4`).
    let maps = [map(41000, 41000), map(41001, 41001), map(41010, 80)];
    bridge.publish(to, &maps).expect("publish");
    assert!(nft_list(&bridge.table).contains(&to.ip.to_string()));
    // One element gone already: the whole deletion aborts, the fallback takes the rest.
    nft::apply(&format!(
        "delete element inet {} tcp4 {{ 41010 }}\n",
        bridge.table
    ))
    .expect("delete one element by hand");
    bridge.unpublish(to, &maps).expect("unpublish");
    let rules = nft_list(&bridge.table);
    assert!(!rules.contains(&to.ip.to_string()), "{rules}");
}
