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
                default_route: true,
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
