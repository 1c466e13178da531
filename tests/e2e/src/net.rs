//! Helpers of the network tests: a container answering `pong` on port 80, whether another
//! reaches it, and what is left on the host.

use std::process::Command;

use crate::Daemon;

/// A server on port 80 of a new container (`args` before the image) answering `pong` to
/// each connection.
pub fn pong_server(d: &Daemon, name: &str, args: &[&str]) {
    let mut all = vec!["run", "-d", "--name", name];
    all.extend_from_slice(args);
    all.extend(["busybox", "nc", "-ll", "-p", "80", "-e", "echo", "pong"]);
    d.ok(&all);
}

/// Whether a new container on `network` reaches `ip:80` and gets `pong` (nc gives up
/// after 2 s).
pub fn reaches(d: &Daemon, network: &str, ip: &str) -> bool {
    let (code, out, _) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &format!("nc -w 2 {ip} 80 </dev/null"),
    ]);
    code == 0 && out.contains("pong")
}

/// Whether the host has an interface of that name.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new(&format!("/sys/class/net/{name}")).exists()
}

/// Whether the host has the nftables table `inet <table>`.
pub fn table_exists(table: &str) -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", table])
        .output()
        .expect("nft")
        .status
        .success()
}

/// The kernel's tracked UDP flows (/proc/net/nf_conntrack) answered from `ip`:`sport` (the
/// reply tuple's source), of either family (IPv6 addresses are printed in full there).
pub fn udp_flows_from(ip: std::net::IpAddr, sport: u16) -> Vec<String> {
    std::fs::read_to_string("/proc/net/nf_conntrack")
        .expect("/proc/net/nf_conntrack (CONFIG_NF_CONNTRACK_PROCFS)")
        .lines()
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let nth = |key: &str, n: usize| {
                f.iter()
                    .filter_map(|w| w.strip_prefix(key))
                    .nth(n)
                    .map(str::to_string)
            };
            f.get(2) == Some(&"udp")
                && nth("src=", 1).and_then(|s| s.parse::<std::net::IpAddr>().ok()) == Some(ip)
                && nth("sport=", 1) == Some(sport.to_string())
        })
        .map(str::to_string)
        .collect()
}

/// Sends one UDP datagram from the host to `to`.
pub fn send_udp(to: std::net::SocketAddr) {
    let socket = std::net::UdpSocket::bind(if to.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" })
        .expect("a UDP socket");
    socket.send_to(b"log line", to).expect("sending a datagram");
}
