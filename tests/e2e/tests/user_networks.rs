//! User-defined networks, end to end through the docker CLI and berth: `network create`
//! (subnet, gateway, ip-range, internal, enable_icc, labels), containers on them with
//! `--network`, `--ip`, `--network-alias`, `--mac-address`, several networks at once,
//! `network connect`/`disconnect` on running containers, isolation between networks,
//! `network rm`/`prune`, `--network container:X`, and a berthd kill -9 and restart. Only
//! addresses on this machine are used: each test's subnets are its own
//! (`10.<150+pid%100>.<200+k>.0/24`), apart from the daemons' bridges' (`.0..`).

use std::process::Command;

use berth_e2e::net::{link_exists, pong_server as server, reaches, table_exists};
use berth_e2e::{text, wait_for, Daemon, Remote};

/// A /24 of this test run's own, for the `k`th network.
fn subnet(k: u8) -> (String, String) {
    let p = 150 + std::process::id() % 100;
    (
        format!("10.{p}.{}.0/24", 200 + k),
        format!("10.{p}.{}", 200 + k),
    )
}

fn inspect(d: &Daemon, name: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// Whether the container `name` reaches `ip:80` (an exec in it).
fn exec_reaches(d: &Daemon, name: &str, ip: &str) -> bool {
    let (code, out, _) = d.outcome(&[
        "exec",
        name,
        "sh",
        "-c",
        &format!("nc -w 2 {ip} 80 </dev/null"),
    ]);
    code == 0 && out.contains("pong")
}

#[test]
fn user_networks_connect_their_containers_and_isolate_them_from_each_other() {
    let d = Daemon::start();
    d.busybox();
    let (front, f) = subnet(0);
    let (back, _) = subnet(1);
    let front_id = d
        .ok(&[
            "network",
            "create",
            "--subnet",
            &front,
            "--gateway",
            &format!("{f}.254"),
            "--ip-range",
            &format!("{f}.128/25"),
            "--label",
            "app=emr",
            "front",
        ])
        .trim()
        .to_string();
    assert_eq!(front_id.len(), 64, "{front_id}");
    d.ok(&["network", "create", "--subnet", &back, "back"]);
    let (code, _, err) = d.outcome(&["network", "create", "front"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("network with name front already exists"),
        "{err}"
    );
    // A subnet overlapping another network's is refused, naming it.
    let (code, _, err) = d.outcome(&[
        "network",
        "create",
        "--subnet",
        &format!("{f}.64/26"),
        "overlap",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("overlaps network front"), "{err}");
    assert_eq!(
        inspect(
            &d,
            "front",
            "{{.Driver}} {{(index .IPAM.Config 0).Subnet}} {{(index .IPAM.Config 0).Gateway}} \
             {{(index .IPAM.Config 0).IPRange}} {{.Labels.app}}"
        ),
        format!("bridge {front} {f}.254 {f}.128/25 emr")
    );
    let ls = d.ok(&[
        "network",
        "ls",
        "--filter",
        "type=custom",
        "--format",
        "{{.Name}}",
    ]);
    let mut names: Vec<&str> = ls.lines().collect();
    names.sort();
    assert_eq!(names, ["back", "front"]);

    // A server with an address and a MAC of its choosing, an alias; clients on the same
    // network reach it, clients on another do not.
    server(
        &d,
        "web",
        &[
            "--network",
            "front",
            "--ip",
            &format!("{f}.10"),
            "--network-alias",
            "www",
            "--mac-address",
            "02:42:00:00:be:ef",
        ],
    );
    let ip = format!("{f}.10");
    assert_eq!(
        inspect(
            &d,
            "web",
            "{{.NetworkSettings.Networks.front.IPAddress}} \
             {{.NetworkSettings.Networks.front.MacAddress}} \
             {{.NetworkSettings.Networks.front.Gateway}} \
             {{.NetworkSettings.Networks.front.Aliases}} \
             {{.NetworkSettings.Networks.front.NetworkID}}"
        ),
        format!("{ip} 02:42:00:00:be:ef {f}.254 [www] {front_id}")
    );
    // No router advertisement is taken, in the container or on the bridge (a neighbour
    // with NET_RAW would become their IPv6 router: CVE-2020-13401).
    let ra = d.ok(&[
        "exec",
        "web",
        "cat",
        "/proc/sys/net/ipv6/conf/all/accept_ra",
        "/proc/sys/net/ipv6/conf/default/accept_ra",
        "/proc/sys/net/ipv6/conf/eth0/accept_ra",
    ]);
    assert_eq!(ra, "0\n0\n0\n");
    let bridge_ra = std::fs::read_to_string(format!(
        "/proc/sys/net/ipv6/conf/br-{}/accept_ra",
        &front_id[..12]
    ))
    .unwrap();
    assert_eq!(bridge_ra.trim(), "0");
    let inside = d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip route",
    ]);
    assert!(inside.contains(&format!("inet {ip}/24")), "{inside}");
    assert!(inside.contains(&format!("default via {f}.254")), "{inside}");
    // Addresses handed out come from the ip-range.
    let other = d.ok(&[
        "run",
        "--rm",
        "--network",
        "front",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
        "show",
        "eth0",
    ]);
    let last: u8 = other
        .split(&format!("inet {f}."))
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("{other}"));
    assert!(last >= 128, "{other}");
    assert!(reaches(&d, "front", &ip), "same network");
    assert!(!reaches(&d, "back", &ip), "another network");
    // The host reaches it (as Docker's host reaches its containers).
    let mut answer = String::new();
    std::io::Read::read_to_string(
        &mut std::net::TcpStream::connect((ip.as_str(), 80)).expect("the host connects"),
        &mut answer,
    )
    .unwrap();
    assert_eq!(answer, "pong\n");
    // --ip outside the subnet, or taken: Docker's words.
    let (code, _, err) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--ip",
        "10.1.2.3",
        "busybox",
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no configured subnet or ip-range contain the IP address 10.1.2.3"),
        "{err}"
    );
    let (code, _, err) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "front",
        "--ip",
        &ip,
        "busybox",
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("Address already in use"), "{err}");
    // --ip and aliases on the default networks: Docker's refusal.
    let (code, _, err) = d.outcome(&["run", "--rm", "--network-alias", "x", "busybox", "true"]);
    assert_ne!(code, 0, "{err}");

    // A running client on `back` connected to `front` gets eth1 there and reaches the
    // server; disconnected, it does not any more.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "back",
        "busybox",
        "sleep",
        "600",
    ]);
    assert!(!exec_reaches(&d, "client", &ip));
    d.ok(&["network", "connect", "--alias", "cli", "front", "client"]);
    let eth1 = d.ok(&["exec", "client", "ip", "-4", "-o", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("inet {f}.")), "{eth1}");
    assert!(exec_reaches(&d, "client", &ip), "connected");
    let members = inspect(&d, "front", "{{range .Containers}}{{.Name}} {{end}}");
    let mut members: Vec<&str> = members.split_whitespace().collect();
    members.sort();
    assert_eq!(members, ["client", "web"]);
    let (code, _, err) = d.outcome(&["network", "connect", "front", "client"]);
    assert_ne!(code, 0);
    assert!(err.contains("already exists in network front"), "{err}");
    d.ok(&["network", "disconnect", "front", "client"]);
    assert!(!exec_reaches(&d, "client", &ip), "disconnected");
    let (code, _, _) = d.outcome(&["exec", "client", "ip", "link", "show", "eth1"]);
    assert_ne!(code, 0, "eth1 is gone");

    // Several networks at create: eth0 on the first (the default route), eth1 on the next.
    let two = d.ok(&[
        "run",
        "--rm",
        "--network",
        "back",
        "--network",
        "front",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0; ip -4 -o addr show eth1; ip route | grep default",
    ]);
    let (_, b) = subnet(1);
    assert!(
        two.contains(&format!("eth0    inet {b}.")) || two.contains(&format!("inet {b}.")),
        "{two}"
    );
    assert!(two.contains(&format!("inet {f}.")), "{two}");
    assert!(
        two.contains(&format!("default via {b}.1 dev eth0")),
        "{two}"
    );

    // `network rm` of a network in use: Docker's conflict; after the container, it goes
    // with its bridge and rules.
    let (code, _, err) = d.outcome(&["network", "rm", "front"]);
    assert_ne!(code, 0);
    assert!(err.contains("has active endpoints"), "{err}");
    let bridge = format!("br-{}", &front_id[..12]);
    assert!(link_exists(&bridge));
    assert!(table_exists(&format!("berth-{bridge}")));
    d.ok(&["rm", "-f", "web", "client"]);
    d.ok(&["network", "rm", "front"]);
    assert!(!link_exists(&bridge), "the bridge goes with its network");
    assert!(!table_exists(&format!("berth-{bridge}")), "and its rules");
    let (code, _, err) = d.outcome(&["network", "inspect", "front"]);
    assert_ne!(code, 0);
    assert!(err.contains("network front not found"), "{err}");
    let (code, _, err) = d.outcome(&["network", "rm", "none"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("pre-defined network and cannot be removed"),
        "{err}"
    );
}

#[test]
fn internal_networks_have_no_way_out_and_icc_off_isolates_containers() {
    let d = Daemon::start();
    d.busybox();
    let (inner, i) = subnet(2);
    let (quiet, q) = subnet(3);
    d.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &inner,
        "inner",
    ]);
    d.ok(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.enable_icc=false",
        "--subnet",
        &quiet,
        "quiet",
    ]);
    assert_eq!(inspect(&d, "inner", "{{.Internal}}"), "true");

    // Internal: containers reach each other, have no default route, and nothing outside.
    server(
        &d,
        "db",
        &["--network", "inner", "--ip", &format!("{i}.10")],
    );
    assert!(reaches(&d, "inner", &format!("{i}.10")));
    let routes = d.ok(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(!routes.contains("default"), "{routes}");
    let octet = (std::process::id() % 100) as u8;
    let remote = Remote::new("i", octet);
    let mut listener = remote.listen(9000);
    let (code, _, _) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "busybox",
        "sh",
        "-c",
        &format!("echo hi | nc -w 2 10.98.{octet}.2 9000"),
    ]);
    assert_ne!(code, 0, "an internal network has no way out");
    let _ = listener.kill();
    let _ = listener.wait();
    // The embedded DNS forwards nothing for a container with no way out: its queries
    // would carry data out of the internal network (a resolver the container could reach
    // itself, on the host's address on the bridge, counts what it gets: nothing).
    let seen = fake_upstream(&format!("{i}.1"));
    let (code, out, err) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "--dns",
        &format!("{i}.1"),
        "busybox",
        "nslookup",
        "secret.outside.example",
    ]);
    assert_ne!(code, 0, "{out}{err}");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "forwarded from inside"
    );
    // Ports are not published on an internal network: refused, not ignored.
    let (code, _, err) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "inner",
        "-p",
        "80",
        "busybox",
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("internal network inner"), "{err}");

    // enable_icc=false: two containers on the network do not reach each other, each
    // reaches the host's address on the bridge.
    server(
        &d,
        "iso",
        &["--network", "quiet", "--ip", &format!("{q}.10")],
    );
    assert!(!reaches(&d, "quiet", &format!("{q}.10")), "icc off");
    // Nor routed through the host: a neighbour with NET_ADMIN routing to it via the
    // gateway gets nothing delivered (its pings counted where they would arrive).
    let echos = |d: &Daemon| -> u64 {
        let snmp = d.ok(&["exec", "iso", "cat", "/proc/net/snmp"]);
        let icmp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Icmp:")).collect();
        let names: Vec<&str> = icmp[0].split_whitespace().collect();
        let values: Vec<&str> = icmp[1].split_whitespace().collect();
        let at = names.iter().position(|n| *n == "InEchos").unwrap();
        values[at].parse().unwrap()
    };
    let before = echos(&d);
    d.outcome(&[
        "run",
        "--rm",
        "--network",
        "quiet",
        "--cap-add",
        "NET_ADMIN",
        "busybox",
        "sh",
        "-c",
        &format!("ip route add {q}.10/32 via {q}.1 && ping -c 3 -W 1 {q}.10"),
    ]);
    assert_eq!(
        echos(&d),
        before,
        "pings routed around the isolation arrived"
    );
    let host = d.ok(&[
        "run",
        "--rm",
        "--network",
        "quiet",
        "busybox",
        "sh",
        "-c",
        &format!("ping -c 1 -W 2 {q}.1 >/dev/null && echo gateway-ok"),
    ]);
    assert!(host.contains("gateway-ok"), "{host}");
    d.ok(&["rm", "-f", "db", "iso"]);
    d.ok(&["network", "rm", "inner", "quiet"]);
}

#[test]
fn networks_survive_a_berthd_kill_9_and_prune_removes_the_unused() {
    let mut d = Daemon::start();
    d.busybox();
    let (keep, k) = subnet(4);
    let (spare, _) = subnet(5);
    let id = d
        .ok(&["network", "create", "--subnet", &keep, "keep"])
        .trim()
        .to_string();
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &spare,
        "--label",
        "tier=test",
        "spare",
    ]);
    server(
        &d,
        "web",
        &["--network", "keep", "--ip", &format!("{k}.10")],
    );
    d.kill9();
    d.spawn();
    // The network, the container's endpoint and the rules are back.
    assert_eq!(
        inspect(&d, "web", "{{.NetworkSettings.Networks.keep.IPAddress}}"),
        format!("{k}.10")
    );
    assert!(reaches(&d, "keep", &format!("{k}.10")));
    assert!(table_exists(&format!("berth-br-{}", &id[..12])));
    // Its address stays taken.
    let (code, _, err) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "keep",
        "--ip",
        &format!("{k}.10"),
        "busybox",
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("Address already in use"), "{err}");
    // `--network container:web` shares web's namespace (its address).
    let shared = d.ok(&[
        "run",
        "--rm",
        "--network",
        "container:web",
        "busybox",
        "ip",
        "-4",
        "-o",
        "addr",
    ]);
    assert!(shared.contains(&format!("inet {k}.10/24")), "{shared}");
    // Prune: the network no container is on goes; the one in use stays.
    let out = d.ok(&["network", "prune", "-f"]);
    assert!(out.contains("spare"), "{out}");
    assert!(!out.contains("keep"), "{out}");
    let ls = d.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(ls.lines().any(|l| l == "keep"), "{ls}");
    assert!(!ls.lines().any(|l| l == "spare"), "{ls}");
    d.ok(&["rm", "-f", "web"]);
    let veths: Vec<String> = std::fs::read_dir(format!("/sys/class/net/br-{}/brif", &id[..12]))
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default();
    wait_for("the pairs to go", || veths.iter().all(|v| !link_exists(v)));
    d.ok(&["network", "rm", "keep"]);
    assert!(!link_exists(&format!("br-{}", &id[..12])));
}

#[test]
fn berth_s_network_verbs_work_like_docker_s() {
    let d = Daemon::start();
    d.busybox();
    let (net, n) = subnet(6);
    let id = d.berth_ok(&["network", "create", "--subnet", &net, "bnet"]);
    assert_eq!(id.trim().len(), 64, "{id}");
    server(&d, "web", &["--network", "bnet"]);
    d.berth_ok(&["run", "-d", "--name", "cli", "busybox", "sleep", "600"]);
    d.berth_ok(&[
        "network",
        "connect",
        "--ip",
        &format!("{n}.77"),
        "bnet",
        "cli",
    ]);
    assert_eq!(
        inspect(&d, "cli", "{{.NetworkSettings.Networks.bnet.IPAddress}}"),
        format!("{n}.77")
    );
    d.berth_ok(&["network", "disconnect", "bnet", "cli"]);
    let out = d.berth(&["network", "rm", "bnet"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("has active endpoints"),
        "{}",
        text(&out.stderr)
    );
    d.ok(&["rm", "-f", "web", "cli"]);
    assert_eq!(d.berth_ok(&["network", "rm", "bnet"]).trim(), "bnet");
}

/// A resolver on the host at `ip:53` (a network's gateway: the containers reach it as they
/// would a resolver out there): `outside.example` is 192.0.2.77 (a documentation address,
/// never contacted), every other name NXDOMAIN. Counts the queries it gets; runs until the
/// test ends.
fn fake_upstream(ip: &str) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
    let socket = std::net::UdpSocket::bind((ip, 53)).expect("bind the fake upstream");
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((n, peer)) = socket.recv_from(&mut buf) {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let q = &buf[..n];
            // The question: labels from byte 12 to a zero, then type and class.
            let mut end = 12;
            let mut labels = Vec::new();
            while end < q.len() && q[end] != 0 {
                let len = q[end] as usize;
                labels.push(String::from_utf8_lossy(&q[end + 1..end + 1 + len]).to_lowercase());
                end += 1 + len;
            }
            let question = &q[12..end + 5];
            let qtype = u16::from_be_bytes([q[end + 1], q[end + 2]]);
            let known = labels.join(".") == "outside.example";
            let mut answer = q[..2].to_vec();
            answer.extend_from_slice(if known { &[0x81, 0x80] } else { &[0x81, 0x83] });
            let count = u8::from(known && qtype == 1);
            answer.extend_from_slice(&[0, 1, 0, count, 0, 0, 0, 0]);
            answer.extend_from_slice(question);
            if count == 1 {
                answer
                    .extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 77]);
            }
            let _ = socket.send_to(&answer, peer);
        }
    });
    count
}

/// `nslookup name` in container `c`: its exit code and output.
fn nslookup(d: &Daemon, c: &str, name: &str) -> (i32, String) {
    let (code, out, err) = d.outcome(&["exec", c, "nslookup", name]);
    (code, out + &err)
}

#[test]
fn containers_resolve_each_other_by_name_at_127_0_0_11() {
    let mut d = Daemon::start();
    d.busybox();
    let (net, n) = subnet(7);
    let (other, _) = subnet(8);
    d.ok(&["network", "create", "--subnet", &net, "dnsnet"]);
    d.ok(&["network", "create", "--subnet", &other, "elsewhere"]);
    let upstream = format!("{n}.1");
    fake_upstream(&upstream);
    let dns = ["--dns", upstream.as_str()];
    server(
        &d,
        "db",
        &[
            &["--network", "dnsnet", "--network-alias", "database"][..],
            &dns[..],
        ]
        .concat(),
    );
    server(
        &d,
        "db2",
        &[
            &["--network", "dnsnet", "--network-alias", "database"][..],
            &dns[..],
        ]
        .concat(),
    );
    // A DNS server of the container's own binds port 53 on every address.
    server(
        &d,
        "client",
        &[&["--network", "dnsnet"][..], &dns[..]].concat(),
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "stranger",
        "--network",
        "elsewhere",
        "--dns",
        &upstream,
        "busybox",
        "sleep",
        "600",
    ]);
    let ip = |c: &str| inspect(&d, c, "{{.NetworkSettings.Networks.dnsnet.IPAddress}}");
    let (db, db2) = (ip("db"), ip("db2"));
    let id = inspect(&d, "db", "{{.Id}}");

    let resolv = d.ok(&["exec", "client", "cat", "/etc/resolv.conf"]);
    assert!(resolv.starts_with("nameserver 127.0.0.11\n"), "{resolv}");
    assert!(resolv.contains("options ndots:0"), "{resolv}");
    assert_eq!(resolv.matches("nameserver").count(), 1, "{resolv}");
    for name in ["db", "DB", "db.dnsnet", &id[..12]] {
        let (code, out) = nslookup(&d, "client", name);
        assert_eq!(code, 0, "{name}: {out}");
        assert!(
            out.contains(&format!("Address: {db}")) || out.contains(&format!("Address 1: {db}")),
            "{name}: {out}"
        );
    }
    // An alias held by two containers: both addresses.
    let (code, out) = nslookup(&d, "client", "database");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&db) && out.contains(&db2), "{out}");
    // Other names go to the container's --dns server.
    let (code, out) = nslookup(&d, "client", "outside.example");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("192.0.2.77"), "{out}");
    // A container on another network does not see them (forwarded, NXDOMAIN).
    let (code, out) = nslookup(&d, "stranger", "db");
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains(&db), "{out}");
    // The container's own server on port 53 answers on it.
    let own = d.ok(&["exec", "client", "sh", "-c", "nc -ll -p 53 -e echo own-53 & for i in 1 2 3 4 5 6 7 8 9 10; do nc -w 1 127.0.0.1 53 </dev/null && break; done"]);
    assert!(own.contains("own-53"), "{own}");
    // By name, connected: the server reached by its name.
    let (code, out, _) = d.outcome(&["exec", "client", "sh", "-c", "nc -w 2 db 80 </dev/null"]);
    assert_eq!((code, out.trim()), (0, "pong"));

    // After a berthd kill -9, the running containers' DNS is served again.
    d.kill9();
    d.spawn();
    let (code, out) = nslookup(&d, "client", "db");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&db), "{out}");
    // A container gone is a name gone.
    d.ok(&["rm", "-f", "db2"]);
    let (_, out) = nslookup(&d, "client", "database");
    assert!(out.contains(&db) && !out.contains(&db2), "{out}");
    d.ok(&["rm", "-f", "db", "client", "stranger"]);
    d.ok(&["network", "rm", "dnsnet", "elsewhere"]);
}

/// Bad network requests: refused with a message naming what is wrong, nothing made, and a
/// bridge of the host's never adopted (nor removed).
#[test]
fn bad_network_requests_are_refused_and_host_bridges_left_alone() {
    use berth_e2e::api::request;
    let d = Daemon::start();
    let (net, n) = subnet(9);
    let post =
        |body: serde_json::Value| request(&d, "POST", "/networks/create", Some(&body.to_string()));
    for (body, says) in [
        (
            serde_json::json!({"Name": "x1", "Internal": "true"}),
            "Internal must be true or false",
        ),
        (
            serde_json::json!({"Name": "x1", "EnableIPv4": false}),
            "EnableIPv4",
        ),
        (
            serde_json::json!({"Name": "x1", "IPAM": {"Config": {"Subnet": net}}}),
            "IPAM.Config must be a list",
        ),
        (
            serde_json::json!({"Name": "x1", "Labels": ["a=b"]}),
            "Labels must be an object",
        ),
        (
            serde_json::json!({"Name": "x1", "IPAM": {"Config": [{"Subnet": format!("{n}.77/24")}]}}),
            "it should be",
        ),
        (
            serde_json::json!({"Name": "x1", "IPAM": {"Config": [{"Subnet": "0.0.0.0/0"}]}}),
            "/8 to /30",
        ),
        (
            serde_json::json!({"Name": "x1", "IPAM": {"Config": [{"Subnet": net, "Gateway": format!("{n}.0")}]}}),
            "not a host address",
        ),
        (
            serde_json::json!({"Name": "x1", "Options": {"com.docker.network.bridge.name": "all"}}),
            "invalid bridge name",
        ),
    ] {
        let (status, answer) = post(body.clone());
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(answer.contains(says), "{body}: {answer}");
    }
    // A bridge that is there already (the host's) is refused, and stays.
    let host_bridge = format!("hb{}", std::process::id() % 100_000);
    assert!(Command::new("ip")
        .args(["link", "add", &host_bridge, "type", "bridge"])
        .status()
        .unwrap()
        .success());
    let (code, _, err) = d.outcome(&[
        "network",
        "create",
        "-o",
        &format!("com.docker.network.bridge.name={host_bridge}"),
        "adopt",
    ]);
    let stays = link_exists(&host_bridge);
    let _ = Command::new("ip")
        .args(["link", "del", &host_bridge])
        .status();
    assert_ne!(code, 0);
    assert!(err.contains("exists already"), "{err}");
    assert!(stays, "the host's bridge was removed");
    // ConfigFrom as inspect shows it (zero) is taken.
    let (status, answer) = post(
        serde_json::json!({"Name": "zero", "ConfigFrom": {"Network": ""},
        "IPAM": {"Config": [{"Subnet": net}]}}),
    );
    assert_eq!(status, 201, "{answer}");
    // An endpoint setting in the wrong place is refused, not dropped.
    d.busybox();
    d.ok(&["run", "-d", "--name", "ep", "busybox", "sleep", "600"]);
    let (status, answer) = request(
        &d,
        "POST",
        "/networks/zero/connect",
        Some(&serde_json::json!({"Container": "ep", "EndpointConfig": {"IPAddress": format!("{n}.99")}}).to_string()),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = request(
        &d,
        "POST",
        "/networks/zero/connect",
        Some(
            &serde_json::json!({"Container": "ep", "EndpointConfig": {"Aliases": "db"}})
                .to_string(),
        ),
    );
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = request(
        &d,
        "POST",
        "/networks/zero/disconnect",
        Some(&serde_json::json!({"Container": "ep", "Later": true}).to_string()),
    );
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("Later is not supported"), "{answer}");
    d.ok(&["rm", "-f", "ep"]);
    d.ok(&["network", "rm", "zero"]);
}
