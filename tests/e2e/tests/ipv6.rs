//! IPv6 on user-defined networks, end to end through the docker CLI: `network create
//! --ipv6` (given and chosen subnets, gateway, overlap), containers' IPv6 addresses
//! (`--ip6`, in turn), their routes, the embedded DNS's AAAA and PTR answers, isolation
//! between networks and `--internal` over IPv6, ports published on IPv6 (`[::1]`, the
//! host's own IPv6 address, `-p [::1]:Q:80`), a berthd kill -9 and restart, and nothing
//! left after `rm` and `network rm`. Only addresses on this machine: each test's subnets
//! are its own (`fd00:be:<pid%100>:<k>::/64`, `10.<150+pid%100>.<220+k>.0/24`); this
//! host's own fd00::/64 is never one of them.

use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use berth_e2e::net::{
    link_exists, pong_server as server, reaches, send_udp, table_exists, udp_flows_from,
};
use berth_e2e::{wait_for, Daemon};

/// The `k`th network's IPv4 and IPv6 subnets and their prefixes (`10.a.b`, `fd00:be:p:k`).
fn subnets(k: u8) -> (String, String, String, String) {
    let p = std::process::id() % 100;
    let v4 = format!("10.{}.{}", 150 + p, 220 + k);
    let v6 = format!("fd00:be:{p}:{k}");
    (format!("{v4}.0/24"), format!("{v6}::/64"), v4, v6)
}

fn inspect(d: &Daemon, what: &[&str], format: &str) -> String {
    let mut args = vec!["inspect", "-f", format];
    args.extend_from_slice(what);
    d.ok(&args).trim().to_string()
}

/// What the host gets from `to` (empty when it does not connect within 3 s).
fn host_asks(to: SocketAddr) -> String {
    let Ok(mut s) = TcpStream::connect_timeout(&to, Duration::from_secs(3)) else {
        return String::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut got = String::new();
    let _ = std::io::Read::read_to_string(&mut s, &mut got);
    got
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").args(["-c", cmd]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A global IPv6 address of the host that is none of berth's (this host's eth0 has
/// fd00::2).
fn host_ipv6() -> Ipv6Addr {
    let out = sh("ip -6 -o addr show scope global");
    out.lines()
        .filter(|l| {
            let dev = l.split_whitespace().nth(1).unwrap_or("");
            !dev.starts_with("br-") && !dev.starts_with("be") && !dev.starts_with("berth")
        })
        .find_map(|l| {
            let addr = l.split_whitespace().nth(3)?.split('/').next()?;
            addr.parse().ok()
        })
        .unwrap_or_else(|| panic!("this test needs a global IPv6 address on the host: {out}"))
}

#[test]
fn ipv6_networks_give_addresses_names_and_isolation_and_leave_nothing() {
    let d = Daemon::start();
    d.busybox();
    let (a4, a6, _, a) = subnets(1);
    let (b4, b6, _, b) = subnets(2);
    let (i4, i6, _, _) = subnets(3);
    let id = d
        .ok(&[
            "network", "create", "--ipv6", "--subnet", &a4, "--subnet", &a6, "v6a",
        ])
        .trim()
        .to_string();
    assert_eq!(
        inspect(
            &d,
            &["v6a"],
            "{{.EnableIPv6}} {{range .IPAM.Config}}{{.Subnet}}={{.Gateway}} {{end}}"
        ),
        format!("true {a4}={}.1 {a6}={a}::1", a4.trim_end_matches(".0/24"))
    );
    // With a gateway of its own; an overlapping IPv6 subnet is refused naming the network;
    // an IPv6 subnet without --ipv6 is refused, not ignored.
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &b4,
        "--subnet",
        &b6,
        "--gateway",
        &format!("{b}::fe"),
        "v6b",
    ]);
    assert_eq!(
        inspect(&d, &["v6b"], "{{(index .IPAM.Config 1).Gateway}}"),
        format!("{b}::fe")
    );
    let (code, _, err) = d.outcome(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("{a}:8000::/65"),
        "dup",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("overlaps network v6a"), "{err}");
    let (code, _, err) = d.outcome(&["network", "create", "--subnet", &format!("{a}::/64"), "no6"]);
    assert_ne!(code, 0);
    assert!(err.contains("--ipv6"), "{err}");
    // --ipv6 alone: a /64 of the daemon's own ULA /48.
    d.ok(&["network", "create", "--ipv6", "auto6"]);
    let auto = inspect(&d, &["auto6"], "{{(index .IPAM.Config 1).Subnet}}");
    assert!(auto.starts_with("fd") && auto.ends_with("::/64"), "{auto}");
    d.ok(&["network", "rm", "auto6"]);
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--internal",
        "--subnet",
        &i4,
        "--subnet",
        &i6,
        "v6i",
    ]);

    // The bridge has the gateway, without duplicate address detection; forwarding is on.
    let bridge = format!("br-{}", &id[..12]);
    let addr = sh(&format!("ip -6 -o addr show dev {bridge}"));
    assert!(addr.contains(&format!("inet6 {a}::1/64")), "{addr}");
    assert!(addr.contains("nodad"), "{addr}");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/forwarding")
            .unwrap()
            .trim(),
        "1"
    );

    // A server with an IPv6 address of its choosing; clients get theirs in turn.
    server(
        &d,
        "web",
        &["--network", "v6a", "--ip6", &format!("{a}::10")],
    );
    assert_eq!(
        inspect(
            &d,
            &["web"],
            "{{.NetworkSettings.Networks.v6a.GlobalIPv6Address}} \
             {{.NetworkSettings.Networks.v6a.GlobalIPv6PrefixLen}} \
             {{.NetworkSettings.Networks.v6a.IPv6Gateway}} \
             {{.NetworkSettings.Networks.v6a.IPAMConfig.IPv6Address}}"
        ),
        format!("{a}::10 64 {a}::1 {a}::10")
    );
    let inside = d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "ip -6 -o addr show eth0 scope global; ip -6 route; cat /etc/hosts",
    ]);
    assert!(inside.contains(&format!("inet6 {a}::10/64")), "{inside}");
    assert!(!inside.contains("tentative"), "{inside}");
    assert!(
        inside.contains(&format!("default via {a}::1 dev eth0")),
        "{inside}"
    );
    assert!(
        inside.contains(&format!("{a}::10\t")),
        "/etc/hosts: {inside}"
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "v6a",
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(
        inspect(
            &d,
            &["client"],
            "{{.NetworkSettings.Networks.v6a.GlobalIPv6Address}}"
        ),
        format!("{a}::2"),
        "the first free after the gateway"
    );
    let members = inspect(
        &d,
        &["v6a"],
        "{{range .Containers}}{{.Name}}={{.IPv6Address}} {{end}}",
    );
    assert!(members.contains(&format!("web={a}::10/64")), "{members}");
    assert!(members.contains(&format!("client={a}::2/64")), "{members}");

    // Over IPv6: a container on the network reaches it; the host too.
    let (code, out, _) = d.outcome(&[
        "exec",
        "client",
        "sh",
        "-c",
        &format!("nc -w 2 {a}::10 80 </dev/null"),
    ]);
    assert_eq!((code, out.trim()), (0, "pong"));
    let web6: Ipv6Addr = format!("{a}::10").parse().unwrap();
    assert_eq!(host_asks(SocketAddr::new(web6.into(), 80)), "pong\n");
    // By name: AAAA (and A) from the embedded DNS, PTR of the IPv6 address.
    let (code, out, err) = d.outcome(&["exec", "client", "nslookup", "-type=aaaa", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{a}::10")), "{out}");
    let (code, out, err) = d.outcome(&["exec", "client", "nslookup", "web"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{a}::10")), "both families: {out}");
    assert!(
        out.contains(&a4.replace(".0/24", ".")),
        "both families: {out}"
    );
    let (code, out, err) = d.outcome(&["exec", "client", "nslookup", &format!("{a}::10")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("web.v6a"), "PTR: {out}");

    // Isolation over IPv6 (the forward chains' rules, by interface): from another IPv6
    // network (a default route through its gateway) not reached; from the internal one,
    // which has no IPv6 default route, not even with one added by hand.
    assert!(reaches(&d, "v6a", &format!("{a}::10")), "same network");
    assert!(!reaches(&d, "v6b", &format!("{a}::10")), "another network");
    let routes = d.ok(&[
        "run",
        "--rm",
        "--network",
        "v6i",
        "busybox",
        "ip",
        "-6",
        "route",
    ]);
    assert!(!routes.contains("default"), "{routes}");
    assert!(
        routes.contains(&i6.replace("::/64", "::/64 dev eth0")),
        "{routes}"
    );
    let (i_gw, _) = i6.split_once("::/").unwrap();
    let (code, out, _) = d.outcome(&[
        "run",
        "--rm",
        "--cap-add",
        "NET_ADMIN",
        "--network",
        "v6i",
        "busybox",
        "sh",
        "-c",
        &format!(
            "ip -6 route add default via {i_gw}::1 && echo routed && nc -w 2 {a}::10 80 </dev/null"
        ),
    ]);
    assert!(out.contains("routed"), "{out}");
    assert!(
        code != 0 && !out.contains("pong"),
        "an internal network: {out}"
    );
    // Connected while running: the next interface gets the address asked for.
    d.ok(&[
        "network",
        "connect",
        "--ip6",
        &format!("{b}::77"),
        "v6b",
        "client",
    ]);
    assert_eq!(
        inspect(
            &d,
            &["client"],
            "{{.NetworkSettings.Networks.v6b.GlobalIPv6Address}}"
        ),
        format!("{b}::77")
    );
    let eth1 = d.ok(&["exec", "client", "ip", "-6", "-o", "addr", "show", "eth1"]);
    assert!(eth1.contains(&format!("inet6 {b}::77/64")), "{eth1}");
    // --ip6 outside the subnet, taken, or on a network without IPv6: refused.
    let run_ip6 = |network: &str, ip6: &str| {
        d.outcome(&[
            "run",
            "--rm",
            "--network",
            network,
            "--ip6",
            ip6,
            "busybox",
            "true",
        ])
    };
    let (code, _, err) = run_ip6("v6a", &format!("{b}::5"));
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "no configured subnet or ip-range contain the IP address {b}::5"
        )),
        "{err}"
    );
    let (code, _, err) = run_ip6("v6a", &format!("{a}::10"));
    assert_ne!(code, 0);
    assert!(err.contains("Address already in use"), "{err}");
    let (p4, _, _, _) = subnets(4);
    d.ok(&["network", "create", "--subnet", &p4, "plain"]);
    let (code, _, err) = run_ip6("plain", &format!("{a}::5"));
    assert_ne!(code, 0);
    assert!(err.contains("network plain has no IPv6"), "{err}");
    // A network without IPv6 gives no IPv6 address (as before).
    let plain = d.ok(&[
        "run",
        "--rm",
        "--network",
        "plain",
        "busybox",
        "ip",
        "-6",
        "-o",
        "addr",
        "show",
        "scope",
        "global",
    ]);
    assert_eq!(plain.trim(), "", "{plain}");

    // Gone with the containers and the networks: addresses, routes, rules.
    d.ok(&["rm", "-f", "web", "client"]);
    let veths = sh(&format!("ls /sys/class/net/{bridge}/brif"));
    wait_for("the pairs to go", || {
        veths.split_whitespace().all(|v| !link_exists(v))
    });
    let bridges: Vec<String> = ["v6a", "v6b", "v6i"]
        .iter()
        .map(|n| {
            format!(
                "br-{}",
                &inspect(&d, &["--type", "network", n], "{{.Id}}")[..12]
            )
        })
        .collect();
    d.ok(&["network", "rm", "v6a", "v6b", "v6i", "plain"]);
    for bridge in &bridges {
        assert!(!link_exists(bridge), "{bridge}");
        assert!(
            !table_exists(&format!("berth-{bridge}")),
            "{bridge}'s rules"
        );
    }
    let left = sh("ip -6 addr; ip -6 route show table all");
    for prefix in [a.as_str(), b.as_str(), i_gw] {
        assert!(!left.contains(&format!("{prefix}:")), "{prefix}: {left}");
    }
}

#[test]
fn ports_are_published_on_ipv6_too_and_survive_a_berthd_kill_9() {
    let mut d = Daemon::start();
    d.busybox();
    let (n4, n6, _, n) = subnets(5);
    let id = d
        .ok(&[
            "network", "create", "--ipv6", "--subnet", &n4, "--subnet", &n6, "pub6",
        ])
        .trim()
        .to_string();
    let table = format!("berth-br-{}", &id[..12]);
    // Any free host port, on both families (the same port).
    server(&d, "web", &["--network", "pub6", "-p", "80"]);
    let port: u16 = inspect(
        &d,
        &["web"],
        "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
    )
    .parse()
    .unwrap();
    let shown = d.ok(&["port", "web", "80"]);
    assert!(shown.contains(&format!("0.0.0.0:{port}")), "{shown}");
    assert!(shown.contains(&format!("[::]:{port}")), "{shown}");
    let ps = d.ok(&["ps", "--format", "{{.Ports}}", "--filter", "name=web"]);
    assert!(
        ps.contains(&format!("0.0.0.0:{port}->80/tcp, [::]:{port}->80/tcp")),
        "{ps}"
    );
    let lo6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), port);
    let own6 = SocketAddr::new(host_ipv6().into(), port);
    let lo4 = SocketAddr::new([127, 0, 0, 1].into(), port);
    assert_eq!(host_asks(lo6), "pong\n", "[::1]:{port}");
    assert_eq!(host_asks(own6), "pong\n", "{own6}");
    assert_eq!(host_asks(lo4), "pong\n", "{lo4}");
    // The host port is held on IPv6 too: another program cannot take it silently.
    let taken = std::net::TcpListener::bind(("::", port)).unwrap_err();
    assert_eq!(taken.raw_os_error(), Some(libc::EADDRINUSE), "{taken}");
    // Published on [::1] only (`-p [::1]::80`).
    server(&d, "who", &["--network", "pub6", "-p", "[::1]::80"]);
    let only_lo: u16 = inspect(
        &d,
        &["who"],
        "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}",
    )
    .parse()
    .unwrap();
    assert_eq!(
        inspect(
            &d,
            &["who"],
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostIp}}"
        ),
        "::1"
    );
    let lo_only = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), only_lo);
    assert_eq!(host_asks(lo_only), "pong\n", "[::1]:{only_lo}");
    assert_eq!(
        host_asks(SocketAddr::new(host_ipv6().into(), only_lo)),
        "",
        "published on [::1] only"
    );
    // On a network without IPv6, an IPv6 host address is refused, saying why.
    let (p4, _, _, _) = subnets(6);
    d.ok(&["network", "create", "--subnet", &p4, "plain"]);
    let (code, _, err) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "plain",
        "-p",
        "[::1]::80",
        "busybox",
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("the container has no IPv6 address"), "{err}");

    // After a berthd kill -9: the lease and the ports are back.
    d.kill9();
    d.spawn();
    assert!(table_exists(&table));
    assert_eq!(host_asks(lo6), "pong\n", "[::1]:{port} after the restart");
    assert_eq!(host_asks(own6), "pong\n", "{own6} after the restart");
    let web6 = inspect(
        &d,
        &["web"],
        "{{.NetworkSettings.Networks.pub6.GlobalIPv6Address}}",
    );
    assert_eq!(web6, format!("{n}::2"));
    let (code, _, err) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        "pub6",
        "--ip6",
        &web6,
        "busybox",
        "true",
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("Address already in use"), "{err}");
    assert!(
        std::net::TcpListener::bind(("::", port)).is_err(),
        "held again"
    );

    // The exit releases them: the port, the address, the rules' elements.
    d.ok(&["rm", "-f", "web", "who"]);
    wait_for("the port to be free", || {
        std::net::TcpListener::bind(("::", port)).is_ok()
    });
    let rules = sh(&format!("nft list table inet {table}"));
    assert!(!rules.contains(&format!("{n}::2 . 80")), "{rules}");
    assert!(!rules.contains(&format!("{n}::3 . 80")), "{rules}");
    d.ok(&[
        "run",
        "--rm",
        "--network",
        "pub6",
        "--ip6",
        &web6,
        "busybox",
        "true",
    ]);
    d.ok(&["network", "rm", "pub6", "plain"]);
    assert!(!table_exists(&table));
    let left = sh("ip -6 addr; ip -6 route show table all");
    assert!(!left.contains(&format!("{n}:")), "{left}");
}

/// `ip route` and `ip -6 route` of a container: its default routes, one a line.
fn default_routes(d: &Daemon, network_args: &[&str]) -> String {
    let mut args = vec!["run", "--rm"];
    args.extend_from_slice(network_args);
    args.extend(["busybox", "sh", "-c", "ip route; ip -6 route"]);
    d.ok(&args)
        .lines()
        .filter(|l| l.starts_with("default"))
        .map(|l| {
            format!(
                "{}\n",
                l.split_whitespace().take(5).collect::<Vec<_>>().join(" ")
            )
        })
        .collect()
}

#[test]
fn each_family_s_default_route_comes_from_the_first_network_that_can_give_it() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let (s4a, _, a4, _) = subnets(6);
    let (s4b, s6b, b4, b6) = subnets(7);
    let (s4c, _, _, _) = subnets(8);
    d.ok(&["network", "create", "--subnet", &s4a, "rv4"]);
    d.ok(&[
        "network", "create", "--ipv6", "--subnet", &s4b, "--subnet", &s6b, "rv6",
    ]);
    d.ok(&["network", "create", "--internal", "--subnet", &s4c, "rint"]);
    // IPv4 from the first network, IPv6 from the first with IPv6 (Docker's gateway per
    // family): an IPv4-only first network no longer leaves the container without IPv6 out.
    assert_eq!(
        default_routes(&d, &["--network", "rv4", "--network", "rv6"]),
        format!("default via {a4}.1 dev eth0\ndefault via {b6}::1 dev eth1\n")
    );
    // An internal first network gives none: the next one gives both.
    assert_eq!(
        default_routes(&d, &["--network", "rint", "--network", "rv6"]),
        format!("default via {b4}.1 dev eth1\ndefault via {b6}::1 dev eth1\n")
    );
    assert_eq!(default_routes(&d, &["--network", "rint"]), "");
    // A running container with none gets them from the network it is connected to; one
    // that has them keeps its own.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "rc",
        "--network",
        "rint",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&["network", "connect", "rv6", "rc"]);
    let routes = d.ok(&["exec", "rc", "sh", "-c", "ip route; ip -6 route"]);
    assert!(
        routes.contains(&format!("default via {b4}.1 dev eth1")),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("default via {b6}::1 dev eth1")),
        "{routes}"
    );
    d.ok(&["network", "connect", "rv4", "rc"]);
    let routes = d.ok(&["exec", "rc", "sh", "-c", "ip route"]);
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    d.ok(&["rm", "-f", "rc"]);
}

#[test]
fn a_removed_container_s_ipv6_udp_flows_are_forgotten_and_no_other() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let (s4, s6, _, _) = subnets(9);
    d.ok(&[
        "network", "create", "--ipv6", "--subnet", &s4, "--subnet", &s6, "u6",
    ]);
    let base = 30000 + (std::process::id() % 500) as u16 * 4;
    let mut ips = Vec::new();
    for (name, port) in [("u6a", base), ("u6b", base + 1)] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "--network",
            "u6",
            "-p",
            &format!("{port}:5140/udp"),
            "busybox",
            "sleep",
            "600",
        ]);
        ips.push(
            inspect(
                &d,
                &[name],
                "{{.NetworkSettings.Networks.u6.GlobalIPv6Address}}",
            )
            .parse::<std::net::IpAddr>()
            .unwrap(),
        );
    }
    let host = std::net::IpAddr::V6(host_ipv6());
    for (ip, port) in [(ips[0], base), (ips[1], base + 1)] {
        wait_for("a sender's IPv6 flow to its container", || {
            send_udp(SocketAddr::new(host, port));
            !udp_flows_from(ip, 5140).is_empty()
        });
    }
    // The kernel's IPv6 address filter is inverted (it dumps the other flows): this held
    // only because berth checks each flow itself.
    d.ok(&["rm", "-f", "u6a"]);
    let left = udp_flows_from(ips[0], 5140);
    assert!(left.is_empty(), "{left:?}");
    assert!(
        !udp_flows_from(ips[1], 5140).is_empty(),
        "the other container's flow went too"
    );
}
