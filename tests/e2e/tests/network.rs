//! The default bridge, end to end through the docker CLI and berth: addresses, container to
//! container and host to container over the bridge, egress masqueraded to a "remote host"
//! (a namespace of the test's own with a veth to the host), and nothing left behind after a
//! berthd kill -9 and restart, `rm -f`, or a failed start. Every daemon has a bridge and a
//! /24 of its own (`Daemon::with_bridge`); only addresses on this machine are used.

use std::process::Command;

use berth_e2e::net::{send_udp, udp_flows_from};
use berth_e2e::{text, wait_for, Daemon, Remote};

fn inspect(d: &Daemon, name: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// `GET /` from a new busybox container to `ip:port`: its exit code, answer and errors.
fn get_from_container(d: &Daemon, ip: &str, port: u16) -> (i32, String, String) {
    d.outcome(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port}"),
    ])
}

/// A busybox image with a page for httpd at /www.
fn web_image(d: &Daemon) {
    d.busybox();
    // No `build` yet: commit a container that made the page.
    d.ok(&[
        "run",
        "--name",
        "pagemaker",
        "busybox",
        "sh",
        "-c",
        "mkdir /www && echo page-from-berth > /www/index.html",
    ]);
    d.ok(&["commit", "pagemaker", "web:1"]);
    d.ok(&["rm", "pagemaker"]);
}

fn links_named(prefix: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect()
}

#[test]
fn the_default_bridge_gives_addresses_and_connects_containers_and_the_host() {
    let d = Daemon::with_bridge(&[]);
    let bridge = d.bridge().unwrap().to_string();
    web_image(&d);
    let id = d
        .ok(&[
            "run", "-d", "--name", "web", "web:1", "httpd", "-f", "-p", "80", "-h", "/www",
        ])
        .trim()
        .to_string();
    let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    let gateway = inspect(&d, "web", "{{.NetworkSettings.Gateway}}");
    let octets: Vec<u8> = ip.split('.').map(|o| o.parse().unwrap()).collect();
    assert_eq!(octets[0], 10, "{ip}");
    assert_eq!(gateway, format!("10.{}.{}.1", octets[1], octets[2]));
    assert_eq!(
        inspect(&d, "web", "{{.NetworkSettings.MacAddress}}"),
        format!(
            "02:42:0a:{:02x}:{:02x}:{:02x}",
            octets[1], octets[2], octets[3]
        ),
        "Docker's MAC scheme"
    );
    assert_eq!(
        inspect(&d, "web", "{{.NetworkSettings.Networks.bridge.IPAddress}} {{.NetworkSettings.Networks.bridge.IPPrefixLen}}"),
        format!("{ip} 24")
    );
    // The container's own view: eth0 with the address and Docker's MAC, the default route
    // through the bridge, its name in /etc/hosts.
    let inside = d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        "cat /sys/class/net/eth0/address; ip -4 -o addr show eth0; ip route; tail -1 /etc/hosts",
    ]);
    let lines: Vec<&str> = inside.lines().collect();
    assert_eq!(
        lines[0],
        inspect(&d, "web", "{{.NetworkSettings.MacAddress}}")
    );
    assert!(lines[1].contains(&format!("inet {ip}/24")), "{inside}");
    assert!(
        inside.contains(&format!("default via {gateway} dev eth0")),
        "{inside}"
    );
    assert_eq!(
        *lines.last().unwrap(),
        format!("{ip}\t{}", &id[..12]),
        "{inside}"
    );

    // Container to container, over the bridge.
    let (code, out, err) = get_from_container(&d, &ip, 80);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("page-from-berth\n"), "{out}");
    // The host to the container.
    assert_eq!(get(&ip, 80), "page-from-berth");
    // Through berth's own CLI too.
    assert_eq!(
        d.berth_ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "web"])
            .trim(),
        ip
    );
    // The host's end of the pair is on the bridge while it runs; gone after rm -f.
    let veth = format!("veth{}", &id[..11]);
    let master = std::fs::read_link(format!("/sys/class/net/{veth}/master")).unwrap();
    assert!(master.ends_with(&bridge), "{master:?}");
    d.ok(&["rm", "-f", "web"]);
    wait_for("the veth to go", || links_named(&veth).is_empty());
}

#[test]
fn egress_to_a_remote_host_is_masqueraded_as_the_host() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let octet = (std::process::id() % 100) as u8;
    let remote = Remote::new("m", octet);
    let mut listener = remote.listen(9000);
    let target = format!("10.98.{octet}.2");
    // The container connects, says hello and holds the connection while the test looks.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "busybox",
        "sh",
        "-c",
        &format!("(echo hello-remote; sleep 60) | nc {target} 9000"),
    ]);
    let ip = inspect(&d, "client", "{{.NetworkSettings.IPAddress}}");
    let mut seen = String::new();
    wait_for("the connection at the remote host", || {
        seen = remote.tcp("established");
        !seen.trim().is_empty()
    });
    // The peer the remote host sees is the host's address on its link, not the container's
    // (`ss` shows nc's IPv4-mapped IPv6 socket: `[::ffff:a.b.c.d]:port`).
    let peer = seen.split_whitespace().last().unwrap_or("").to_string();
    let host_side = format!("10.98.{octet}.1");
    assert!(
        peer.trim_start_matches("[::ffff:")
            .starts_with(&format!("{host_side}]:"))
            || peer.starts_with(&format!("{host_side}:")),
        "not masqueraded as the host: {seen}"
    );
    assert!(!seen.contains(&ip), "{seen}");
    d.ok(&["rm", "-f", "client"]);
    drop(listener.stdin.take());
    let out = listener.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "hello-remote\n");
}

#[test]
fn after_a_kill_9_and_restart_the_address_is_kept_and_removal_leaves_nothing() {
    let mut d = Daemon::with_bridge(&[]);
    web_image(&d);
    let id = d
        .ok(&[
            "run", "-d", "--name", "web", "web:1", "httpd", "-f", "-p", "80", "-h", "/www",
        ])
        .trim()
        .to_string();
    let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    d.kill9();
    d.spawn();
    assert_eq!(inspect(&d, "web", "{{.NetworkSettings.IPAddress}}"), ip);
    assert_eq!(
        get(&ip, 80),
        "page-from-berth",
        "still served after the restart"
    );
    // The restarted berthd knows the address is taken: a new container gets another.
    let other = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ip -4 -o addr show eth0",
    ]);
    assert!(other.contains("inet 10."), "{other}");
    assert!(!other.contains(&format!("inet {ip}/")), "{other}");
    // A failed start (no such command) leaves no pair behind.
    let (code, _, _) = d.outcome(&["run", "--name", "broken", "busybox", "nosuchcommand"]);
    assert_eq!(code, 127);
    let broken = inspect(&d, "broken", "{{.Id}}");
    assert!(links_named(&format!("veth{}", &broken[..11])).is_empty());
    assert_eq!(inspect(&d, "broken", "{{.NetworkSettings.IPAddress}}"), "");
    d.ok(&["rm", "-f", "web", "broken"]);
    wait_for("the veth to go", || {
        links_named(&format!("veth{}", &id[..11])).is_empty()
    });
    // The bridge and the rules stay (a daemon's, as docker0 stays); no veth of this
    // daemon's is left on it.
    let bridge = d.bridge().unwrap();
    let ports = std::fs::read_dir(format!("/sys/class/net/{bridge}/brif"))
        .unwrap()
        .count();
    assert_eq!(ports, 0, "ports left on {bridge}");
    let table = Command::new("nft")
        .args(["list", "table", "inet", &format!("berth-{bridge}")])
        .output()
        .unwrap();
    assert!(table.status.success(), "the table stays with the bridge");
}

#[test]
fn network_bridge_is_refused_when_berthd_has_no_bridge() {
    let d = Daemon::start();
    d.busybox();
    let (code, _, err) = d.outcome(&["run", "--rm", "--network", "bridge", "busybox", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("network bridge not found"), "{err}");
}

/// A restart makes a pair of the same name at once; the exit's teardown, which runs off the
/// exit's path, removes the old pair by its index and never the new one.
#[test]
fn a_restarted_container_keeps_its_network() {
    let d = Daemon::with_bridge(&[]);
    web_image(&d);
    d.ok(&[
        "run", "-d", "--name", "web", "web:1", "httpd", "-f", "-p", "80", "-h", "/www",
    ]);
    for round in 0..3 {
        d.ok(&["restart", "-t", "0", "web"]);
        let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
        assert!(!ip.is_empty(), "round {round}");
        let mut got = String::new();
        wait_for("the page after a restart", || {
            got = get(&ip, 80);
            got == "page-from-berth"
        });
        // The old pair goes (by the teardown or with its namespace), the new one stays.
        wait_for("one port on the bridge", || {
            std::fs::read_dir(format!("/sys/class/net/{}/brif", d.bridge().unwrap()))
                .unwrap()
                .count()
                == 1
        });
        assert_eq!(get(&ip, 80), "page-from-berth", "round {round}");
    }
}

/// A host port no other test of this run asks for.
fn free_port() -> u16 {
    static N: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    loop {
        let port = 21000 + (std::process::id() % 300) as u16 * 60 + n;
        if std::net::TcpListener::bind(("0.0.0.0", port)).is_ok() {
            return port;
        }
    }
}

/// An IPv4 address of this host that is not loopback nor a bridge of berth's tests.
fn host_address() -> String {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    text(&out.stdout)
        .lines()
        .filter(|l| {
            let dev = l.split_whitespace().nth(1).unwrap_or("");
            !dev.starts_with("be") && !dev.starts_with("berth") && !dev.starts_with("bre")
        })
        .find_map(|l| {
            let cidr = l.split_whitespace().nth(3)?;
            Some(cidr.split('/').next()?.to_string())
        })
        .expect("this host has no global IPv4 address to test published ports through")
}

fn get(ip: &str, port: u16) -> String {
    let out = Command::new("busybox")
        .args([
            "sh",
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} {port}"),
        ])
        .output()
        .expect("busybox");
    text(&out.stdout).lines().last().unwrap_or("").to_string()
}

#[test]
fn published_ports_reach_the_container_through_the_host_s_addresses_in_the_kernel() {
    let d = Daemon::with_bridge(&[]);
    web_image(&d);
    let (any, local) = (free_port(), free_port());
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-p",
            &format!("{any}:80"),
            "-p",
            &format!("127.0.0.1:{local}:80"),
            "-p",
            "80",
            "web:1",
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/www",
        ])
        .trim()
        .to_string();
    // `docker port`, ps's PORTS and inspect, as docker shows them.
    let port_lines = d.ok(&["port", "web"]);
    let random: u16 = port_lines
        .lines()
        .filter_map(|l| l.strip_prefix("80/tcp -> 0.0.0.0:"))
        .filter_map(|p| p.parse().ok())
        .find(|p| *p != any)
        .unwrap_or_else(|| panic!("no random port: {port_lines}"));
    assert!(
        port_lines.contains(&format!("80/tcp -> 0.0.0.0:{any}")),
        "{port_lines}"
    );
    assert!(
        port_lines.contains(&format!("80/tcp -> 127.0.0.1:{local}")),
        "{port_lines}"
    );
    let ps = d.ok(&["ps", "--format", "{{.Ports}}"]);
    for want in [
        format!("0.0.0.0:{any}->80/tcp"),
        format!("127.0.0.1:{local}->80/tcp"),
        format!("0.0.0.0:{random}->80/tcp"),
    ] {
        assert!(ps.contains(&want), "{want} in {ps}");
    }
    assert_eq!(
        inspect(
            &d,
            "web",
            "{{(index (index .NetworkSettings.Ports \"80/tcp\") 0).HostPort}}"
        ),
        any.to_string()
    );
    assert!(inspect(&d, "web", "{{json .HostConfig.PortBindings}}").contains(&any.to_string()));
    // From the host: its own address, and 127.0.0.1 (route_localnet on the bridge only).
    let host = host_address();
    assert_eq!(get(&host, any), "page-from-berth");
    assert_eq!(get("127.0.0.1", any), "page-from-berth");
    assert_eq!(get("127.0.0.1", local), "page-from-berth");
    assert_eq!(get("127.0.0.1", random), "page-from-berth");
    // No process per port: berthd's children are the shims, nothing else listens.
    let procs = Command::new("ps").args(["-eo", "comm"]).output().unwrap();
    assert!(
        !text(&procs.stdout).contains("proxy"),
        "a proxy process runs"
    );
    // Hairpin: from a container, and from the container itself, through the host address.
    let (code, out, err) = get_from_container(&d, &host, any);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("page-from-berth\n"), "{out}");
    let own = d.ok(&[
        "exec",
        "web",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {any}"),
    ]);
    assert!(own.ends_with("page-from-berth\n"), "its own port: {own}");
    // The 127.0.0.1 binding is the host's only: not on the host's other addresses, and so
    // not for containers.
    let (_, out, _) = d.outcome(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {host} {local}; true"),
    ]);
    assert!(!out.contains("page-from-berth"), "{out}");
    // The ports are held: another program cannot take them.
    assert!(std::net::TcpListener::bind(("0.0.0.0", any)).is_err());
    // Removed with the container: the port is free and the rule gone.
    d.ok(&["rm", "-f", "web"]);
    let table = format!("berth-{}", d.bridge().unwrap());
    let rules = Command::new("nft")
        .args(["list", "table", "inet", &table])
        .output()
        .unwrap();
    assert!(
        !text(&rules.stdout).contains(&format!("{any} :")),
        "{}",
        text(&rules.stdout)
    );
    wait_for("the port to be free", || {
        std::net::TcpListener::bind(("0.0.0.0", any)).is_ok()
    });
    let _ = id;
}

#[test]
fn a_port_in_use_is_refused_with_its_holder_and_nothing_is_left() {
    let d = Daemon::with_bridge(&[]);
    web_image(&d);
    // A port held by this process, taken by the kernel in one step (a port found free and
    // bound after could be taken in between by a parallel test's daemon).
    let _server = std::net::TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let taken = _server.local_addr().unwrap().port();
    let (code, _, err) = d.outcome(&[
        "run",
        "-d",
        "--name",
        "late",
        "-p",
        &format!("{taken}:80"),
        "web:1",
        "httpd",
        "-f",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("0.0.0.0:{taken}/tcp: Address already in use")),
        "{err}"
    );
    assert!(
        err.contains(&format!("(pid {})", std::process::id())),
        "names the holder: {err}"
    );
    let late = inspect(&d, "late", "{{.Id}}");
    assert!(
        links_named(&format!("veth{}", &late[..11])).is_empty(),
        "no veth left"
    );
    assert_eq!(inspect(&d, "late", "{{.State.Status}}"), "created");
    // Two containers asking for one port: Docker's words, and the holder.
    let port = free_port();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "first",
        "-p",
        &format!("{port}:80"),
        "web:1",
        "httpd",
        "-f",
    ]);
    let (code, _, err) = d.outcome(&[
        "run",
        "-d",
        "--name",
        "second",
        "-p",
        &format!("{port}:80"),
        "web:1",
        "httpd",
        "-f",
    ]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "Bind for 0.0.0.0:{port} failed: port is already allocated (by first)"
        )),
        "{err}"
    );
    // The second one's address went back: a third container gets one and runs.
    d.ok(&["rm", "-f", "first"]);
    d.ok(&["start", "second"]);
    assert_eq!(inspect(&d, "second", "{{.State.Status}}"), "running");
    // Bad specs and impossible ones are refused at create.
    for (args, want) in [
        (vec!["-p", "99999:80"], "invalid"),
        (
            vec!["--network", "none", "-p", "8080:80"],
            "conflicting options",
        ),
        (vec!["-p", "8080:80/dccp"], "invalid proto: dccp"),
    ] {
        let mut all = vec!["create"];
        all.extend(args.iter().copied());
        all.extend(["busybox", "true"]);
        let (code, _, err) = d.outcome(&all);
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn publish_all_and_udp_and_a_restart_of_berthd() {
    let mut d = Daemon::with_bridge(&[]);
    d.busybox();
    let udp = free_port();
    let same = free_port();
    // Debian's busybox nc has neither -u nor -k: the UDP port is checked by its
    // reservation and its rule, the TCP one end to end (`nc -ll -e` serves many). `same`
    // is published as itself (the `same` map's intervals).
    d.ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--expose",
        "7000",
        "-P",
        "-p",
        &format!("127.0.0.1:{udp}:5353/udp"),
        "-p",
        &format!("{same}:{same}"),
        "busybox",
        "sh",
        "-c",
        &format!("nc -ll -p {same} -e echo same-answer & exec nc -ll -p 7000 -e echo tcp-answer"),
    ]);
    let port_lines = d.ok(&["port", "srv", "7000/tcp"]);
    let p7000: u16 = port_lines
        .lines()
        .next()
        .and_then(|l| l.rsplit(':').next())
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("-P gave 7000 no port: {port_lines}"));
    assert_eq!(
        d.ok(&["port", "srv", "5353/udp"]).trim(),
        format!("127.0.0.1:{udp}")
    );
    let ask = |port: u16| {
        let out = Command::new("busybox")
            .args(["sh", "-c", &format!("echo q | nc -w 3 127.0.0.1 {port}")])
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let mut got = String::new();
    wait_for("the -P port to answer", || {
        got = ask(p7000);
        got.contains("tcp-answer")
    });
    // The UDP port is held (a UDP bind of it fails) and its rule is in the table.
    assert!(
        std::net::UdpSocket::bind(("127.0.0.1", udp)).is_err(),
        "udp port held"
    );
    let table = format!("berth-{}", d.bridge().unwrap());
    let rules = || {
        let out = Command::new("nft")
            .args(["list", "table", "inet", &table])
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert!(
        rules().contains(&format!("127.0.0.1 . {udp} :")),
        "{}",
        rules()
    );
    wait_for("the port published as itself to answer", || {
        ask(same).contains("same-answer")
    });
    // berthd killed and started again: the rules and the reservations come back.
    d.kill9();
    d.spawn();
    wait_for("the -P port to answer after the restart", || {
        ask(p7000).contains("tcp-answer")
    });
    wait_for("the port published as itself after the restart", || {
        ask(same).contains("same-answer")
    });
    assert!(
        std::net::TcpListener::bind(("0.0.0.0", p7000)).is_err(),
        "held again"
    );
    assert!(
        rules().contains(&format!("127.0.0.1 . {udp} :")),
        "{}",
        rules()
    );
    d.ok(&["rm", "-f", "srv"]);
    wait_for("the port to be free", || {
        std::net::TcpListener::bind(("0.0.0.0", p7000)).is_ok()
    });
    assert!(!rules().contains(&format!("{udp} :")), "{}", rules());
}

/// A neighbour that routes the containers' subnet through this host reaches a container's
/// published port (through the host's address) and nothing else of it: forwarding into
/// the bridge is allowed for DNAT and answers only.
#[test]
fn a_neighbour_reaches_published_ports_only() {
    let d = Daemon::with_bridge(&[]);
    web_image(&d);
    let published = free_port();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        &format!("{published}:80"),
        "web:1",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    let ip = inspect(&d, "web", "{{.NetworkSettings.IPAddress}}");
    let gateway = inspect(&d, "web", "{{.NetworkSettings.Gateway}}");
    let octet = 100 + (std::process::id() % 100) as u8;
    let remote = Remote::new("n", octet);
    let host_side = format!("10.98.{octet}.1");
    let subnet = format!("{}.0/24", gateway.rsplit_once('.').unwrap().0);
    let ok = Command::new("ip")
        .args([
            "netns",
            "exec",
            &remote.name,
            "ip",
            "route",
            "add",
            &subnet,
            "via",
            &host_side,
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let from_remote = |target: &str, port: u16| {
        let out = Command::new("ip")
            .args(["netns", "exec", &remote.name, "busybox", "sh", "-c"])
            .arg(format!(
                "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target} {port}"
            ))
            .output()
            .unwrap();
        text(&out.stdout)
    };
    assert!(
        from_remote(&host_side, published).ends_with("page-from-berth\n"),
        "the published port through the host's address"
    );
    assert!(
        !from_remote(&ip, 80).contains("page-from-berth"),
        "the container's own address from outside: refused"
    );
}

#[test]
fn network_ls_and_inspect_show_the_built_in_networks() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let names = d.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert_eq!(
        names,
        "bridge bridge local\nhost host local\nnone null local\n"
    );
    d.ok(&["run", "-d", "--name", "member", "busybox", "sleep", "60"]);
    let ip = inspect(&d, "member", "{{.NetworkSettings.IPAddress}}");
    let net = d.ok(&[
        "network", "inspect", "bridge", "--format",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}} {{(index .IPAM.Config 0).Gateway}} {{index .Options \"com.docker.network.bridge.name\"}}",
    ]);
    let gateway = inspect(&d, "member", "{{.NetworkSettings.Gateway}}");
    assert_eq!(
        net.trim(),
        format!("member {ip}/24 {gateway} {}", d.bridge().unwrap())
    );
    // The container's NetworkID is the bridge's.
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "bridge"]);
    assert_eq!(
        inspect(
            &d,
            "member",
            "{{.NetworkSettings.Networks.bridge.NetworkID}}"
        ),
        id.trim()
    );
    let none = d.ok(&["network", "inspect", "-f", "{{.Id}}", "none"]);
    assert_eq!(
        d.ok(&["network", "ls", "-q", "--filter", "driver=null"])
            .trim(),
        &none.trim()[..12]
    );
    let (code, _, err) = d.outcome(&["network", "inspect", "nosuch"]);
    assert_ne!(code, 0);
    assert!(err.contains("network nosuch not found"), "{err}");
    let (code, _, err) = d.outcome(&["network", "ls", "--filter", "bogus=1"]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");
}

/// berth's `port`, `network ls`, `network inspect` and `run -P` print what docker's do.
#[test]
fn berth_s_network_commands_match_docker_s() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let port = free_port();
    d.berth_ok(&[
        "run",
        "-d",
        "--name",
        "srv",
        "-P",
        "--expose",
        "7000",
        "-p",
        &format!("127.0.0.1:{port}:80"),
        "busybox",
        "sleep",
        "60",
    ]);
    for args in [
        vec!["port", "srv"],
        vec!["port", "srv", "80"],
        vec!["port", "srv", "7000/tcp"],
        vec!["network", "ls"],
        vec!["network", "ls", "-q", "--no-trunc"],
        vec![
            "network",
            "ls",
            "--filter",
            "name=bri",
            "--format",
            "{{.Name}}",
        ],
        vec![
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "bridge",
            "none",
        ],
        vec!["ps", "--format", "{{.Ports}}"],
    ] {
        let (dc, dout, derr) = d.cli("docker", &args);
        let (bc, bout, berr) = d.cli("berth", &args);
        assert_eq!(
            (bc, bout),
            (dc, dout),
            "{args:?}: docker said {derr}, berth {berr}"
        );
    }
    let (dc, _, derr) = d.cli("docker", &["port", "srv", "9999"]);
    let (bc, _, berr) = d.cli("berth", &["port", "srv", "9999"]);
    assert_eq!((bc, berr.trim()), (dc, derr.trim()));
    assert!(
        d.ok(&["port", "srv", "7000"]).starts_with("0.0.0.0:"),
        "-P published 7000"
    );
}

/// Without `--bip`, berthd's `--default-address-pool` (Docker's flag) is where the bridge's
/// subnet comes from: the first subnet of the pool's size no route overlaps.
#[test]
fn the_bridge_s_subnet_comes_from_the_default_address_pool() {
    let n = std::process::id() % 50;
    let name = format!("bp{n}");
    let pool = format!("base=10.{}.0.0/16,size=24", 100 + n);
    let d = Daemon::start_with_args(&["--bridge", &name, "--default-address-pool", &pool]);
    d.busybox();
    let out = d.ok(&[
        "run", "--rm", "busybox", "ip", "-4", "-o", "addr", "show", "eth0",
    ]);
    assert!(
        out.contains(&format!("inet 10.{}.0.2/24", 100 + n)),
        "{out}"
    );
    let net = d.ok(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Subnet}}",
        "bridge",
    ]);
    assert_eq!(net.trim(), format!("10.{}.0.0/24", 100 + n));
    // A pool that cannot be is refused at start, with its words.
    let bad = Command::new(berth_e2e::bin_dir().join("berthd"))
        .args(["--default-address-pool", "base=10.0.0.0/8,size=30"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("more than 65536 subnets of /30"),
        "{}",
        text(&bad.stderr)
    );
}

/// Whether this host's kernel makes SCTP sockets (the `sctp` module; this CI machine's own
/// kernel has none, the v2 tier's Debian kernel has it).
fn kernel_has_sctp() -> bool {
    Command::new("python3")
        .args([
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)",
        ])
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap()
        .success()
}

/// A Python SCTP one-liner: `serve PORT` answers each association with `sctp-pong`; `ask
/// ADDR PORT` prints what it gets. busybox has no SCTP: Python runs in the container's
/// network namespace (nsenter) and in the remote host's.
const SCTP_PY: &str = r#"
import socket, sys
if sys.argv[1] == "serve":
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)
    s.bind(("0.0.0.0", int(sys.argv[2]))); s.listen(8)
    print("listening", flush=True)
    while True:
        c, _ = s.accept(); c.sendall(b"sctp-pong"); c.close()
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132); s.settimeout(5)
    s.connect((sys.argv[2], int(sys.argv[3]))); print(s.recv(100).decode())
"#;

#[test]
fn sctp_ports_are_published_where_the_kernel_has_sctp_and_refused_by_name_elsewhere() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let port = free_port();
    // The v2 tier's kernel has SCTP: there the published path must run, not the refusal.
    if std::env::var_os("BERTH_TEST_SCTP").is_some() {
        assert!(
            kernel_has_sctp(),
            "BERTH_TEST_SCTP is set but this kernel makes no SCTP socket"
        );
    }
    if !kernel_has_sctp() {
        // Refused at start, naming the protocol and the reason; nothing left running.
        d.ok(&[
            "create",
            "--name",
            "sc",
            "-p",
            &format!("{port}:9/sctp"),
            "busybox",
            "sleep",
            "60",
        ]);
        let (code, _, err) = d.outcome(&["start", "sc"]);
        assert_ne!(code, 0);
        assert!(err.contains("/sctp") && err.contains("no SCTP"), "{err}");
        assert_eq!(inspect(&d, "sc", "{{.State.Status}}"), "created");
        return;
    }
    d.ok(&[
        "run",
        "-d",
        "--name",
        "sc",
        "-p",
        &format!("{port}:9/sctp"),
        "busybox",
        "sleep",
        "600",
    ]);
    assert_eq!(
        d.ok(&["port", "sc"]).trim(),
        format!("9/sctp -> 0.0.0.0:{port}")
    );
    let pid = inspect(&d, "sc", "{{.State.Pid}}");
    let mut server = Killed(
        Command::new("nsenter")
            .arg(format!("--net=/proc/{pid}/ns/net"))
            .args(["python3", "-c", SCTP_PY, "serve", "9"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.0.stdout.as_mut().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line, "listening\n");
    // The host port is held: the host cannot bind it for SCTP.
    let taken = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import errno, socket\n\
                 try:\n    socket.socket(socket.AF_INET, socket.SOCK_STREAM, 132)\
                 .bind(('0.0.0.0', {port}))\n\
                 except OSError as e:\n    print(errno.errorcode[e.errno])"
            ),
        ])
        .output()
        .unwrap();
    assert_eq!(
        text(&taken.stdout),
        "EADDRINUSE\n",
        "the published sctp port was free"
    );
    // Its element in the sctp map, to the container.
    let table = format!("berth-{}", d.bridge().unwrap());
    let sctp_map = || {
        let out = Command::new("nft")
            .args(["list", "map", "inet", &table, "sctp4"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    let ip = inspect(&d, "sc", "{{.NetworkSettings.IPAddress}}");
    assert!(
        sctp_map().contains(&format!("{port} : {ip} . 9")),
        "{}",
        sctp_map()
    );
    // From a remote host, through the host's address on its link.
    let octet = 150 + (std::process::id() % 50) as u8;
    let remote = Remote::new("s", octet);
    let asked = Command::new("ip")
        .args([
            "netns",
            "exec",
            &remote.name,
            "python3",
            "-c",
            SCTP_PY,
            "ask",
        ])
        .arg(format!("10.98.{octet}.1"))
        .arg(port.to_string())
        .output()
        .unwrap();
    assert_eq!(
        text(&asked.stdout),
        "sctp-pong\n",
        "{}",
        text(&asked.stderr)
    );
    drop(server);
    // Unpublished with its container: the map is empty again.
    d.ok(&["rm", "-f", "sc"]);
    assert!(!sctp_map().contains(&port.to_string()), "{}", sctp_map());
}

/// A child process killed when dropped (a test that fails midway leaves none behind).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_removed_container_s_udp_flows_are_forgotten_and_no_other() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let (port1, port2) = (free_port(), free_port());
    let mut ips = Vec::new();
    for (name, port) in [("udp1", port1), ("udp2", port2)] {
        d.ok(&[
            "run",
            "-d",
            "--name",
            name,
            "-p",
            &format!("{port}:5140/udp"),
            "busybox",
            "sleep",
            "600",
        ]);
        ips.push(
            inspect(&d, name, "{{.NetworkSettings.IPAddress}}")
                .parse::<std::net::IpAddr>()
                .unwrap(),
        );
    }
    // Senders that keep sending (syslog clients): each flow is translated to its container.
    let host: std::net::IpAddr = host_address().parse().unwrap();
    for (ip, port) in [(ips[0], port1), (ips[1], port2)] {
        wait_for("a sender's flow to its container", || {
            send_udp(std::net::SocketAddr::new(host, port));
            !udp_flows_from(ip, 5140).is_empty()
        });
    }
    // Gone with the container: its next datagram is a new flow, to whoever publishes the
    // port next (without this, the kernel kept it for as long as the sender sends). The
    // other container's flow stays.
    d.ok(&["rm", "-f", "udp1"]);
    let left = udp_flows_from(ips[0], 5140);
    assert!(left.is_empty(), "{left:?}");
    assert!(
        !udp_flows_from(ips[1], 5140).is_empty(),
        "the other container's flow went too"
    );
}

/// A host client's view of a connection: its own address, its peer, and what it got
/// (`refused` when nothing answers).
fn host_client(ip: &str, port: u16) -> String {
    let out = Command::new("python3")
        .args([
            "-c",
            "import socket, sys\n\
             try:\n    s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)\n\
             except OSError:\n    print('refused'); sys.exit(0)\n\
             print(s.getsockname()[0], '%s:%d' % s.getpeername()[:2], s.recv(100).decode().strip())",
            ip,
            &port.to_string(),
        ])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}

/// The pin directory of a test daemon's socket redirect, removed on drop (after the
/// daemon, declared before it): its programs detach with the last reference.
struct Pins(std::path::PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where a test daemon pins its redirect, as berthd names it: from the canonical path of
/// its root.
fn pin_dir_of(d: &Daemon) -> std::path::PathBuf {
    use sha2::Digest;
    let root = std::fs::canonicalize(d.root()).unwrap();
    let h = sha2::Sha256::digest(root.to_string_lossy().as_bytes());
    let hex: String = h.iter().map(|b| format!("{b:02x}")).collect();
    format!("/sys/fs/bpf/berth-{}", &hex[..12]).into()
}

#[test]
fn host_clients_of_published_tcp_ports_are_redirected_to_the_container_without_nat() {
    let mut pins = Pins(std::path::PathBuf::new());
    let mut d = Daemon::with_bridge(&["--socket-redirect", "true"]);
    pins.0 = pin_dir_of(&d);
    assert!(
        pins.0.join("v4_map").exists(),
        "no pinned map in {}",
        pins.0.display()
    );
    d.busybox();
    let (any, local) = (free_port(), free_port());
    // On a network of its own, where an address can be asked for (the newcomer's below).
    let p = 150 + std::process::id() % 100;
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.{p}.232.0/24"),
        "rnet",
    ]);
    let ip = format!("10.{p}.232.9");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "rnet",
        "--ip",
        &ip,
        "-p",
        &format!("{any}:80"),
        "-p",
        &format!("127.0.0.1:{local}:80"),
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "echo",
        "pong",
    ]);
    let gateway = format!("10.{p}.232.1");
    // Through 127.0.0.1 and the host's other addresses: the client's own address is the
    // bridge's (a direct connection to the container; through the DNAT it would be the
    // address it asked for), its peer still that address (the getpeername hook). A port
    // published on 127.0.0.1 only is not redirected for the host's address.
    let host = host_address();
    for (ip, port, own) in [
        ("127.0.0.1", local, gateway.as_str()),
        ("127.0.0.1", any, gateway.as_str()),
        (host.as_str(), any, gateway.as_str()),
    ] {
        let mut got = String::new();
        wait_for("the published port to answer", || {
            got = host_client(ip, port);
            got.ends_with("pong")
        });
        assert_eq!(got, format!("{own} {ip}:{port} pong"), "{ip}:{port}");
    }
    // After a kill -9 and a restart, the entries are back (the map was cleared, the
    // running container's ports put in again).
    d.kill9();
    d.spawn();
    let mut got = String::new();
    wait_for("the published port after a restart", || {
        got = host_client("127.0.0.1", local);
        got.ends_with("pong")
    });
    assert_eq!(got, format!("{gateway} 127.0.0.1:{local} pong"));
    // Turned off, what the earlier berthd pinned goes: the DNAT path (the client's own
    // address 127.0.0.1), and on again.
    d.kill9();
    d.set_arg("--socket-redirect", "false");
    d.spawn();
    assert!(!pins.0.exists(), "{} is left", pins.0.display());
    wait_for("the published port through the DNAT", || {
        got = host_client("127.0.0.1", local);
        got.ends_with("pong")
    });
    assert_eq!(got, format!("127.0.0.1 127.0.0.1:{local} pong"));
    d.kill9();
    d.set_arg("--socket-redirect", "true");
    d.spawn();
    assert_eq!(
        host_client("127.0.0.1", local),
        format!("{gateway} 127.0.0.1:{local} pong")
    );
    // Gone with the container: a newcomer on the same address does not get the port.
    d.ok(&["rm", "-f", "web"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "next",
        "--network",
        "rnet",
        "--ip",
        &ip,
        "busybox",
        "nc",
        "-ll",
        "-p",
        "80",
        "-e",
        "echo",
        "wrong",
    ]);
    wait_for("the newcomer to listen", || {
        let (_, out, _) = d.outcome(&["exec", "next", "sh", "-c", "echo q | nc -w 2 127.0.0.1 80"]);
        out.contains("wrong")
    });
    assert_eq!(host_client("127.0.0.1", local), "refused");
    assert_eq!(host_client("127.0.0.1", any), "refused");
    drop(d);
}

fn ip_ok(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
}

#[test]
fn a_host_address_that_moves_away_is_not_redirected_to_the_container() {
    let pid = std::process::id();
    let p = 150 + pid % 100;
    let octet = 200 + (pid % 50) as u8;
    let elsewhere = Remote::new("v", octet);
    let (netns, veth, peer) = (
        elsewhere.name.clone(),
        format!("{}h", elsewhere.name),
        "eth9",
    );
    // The address: on the host's end of the veth, then moved to the remote host's loopback
    // (routed there through the veth).
    let moving = format!("10.{p}.234.5");
    let (near, far) = (format!("10.98.{octet}.1"), format!("10.98.{octet}.2"));
    let host_cidr = format!("{moving}/32");
    let to_remote = || {
        ip_ok(&["addr", "del", &host_cidr, "dev", &veth]);
        ip_ok(&["-n", &netns, "addr", "add", &host_cidr, "dev", "lo"]);
        ip_ok(&["route", "add", &host_cidr, "via", &far]);
    };
    let back_home = || {
        ip_ok(&["route", "del", &host_cidr]);
        ip_ok(&["-n", &netns, "addr", "del", &host_cidr, "dev", "lo"]);
        ip_ok(&["addr", "add", &host_cidr, "dev", &veth]);
    };
    ip_ok(&["addr", "add", &host_cidr, "dev", &veth]);

    let mut pins = Pins(std::path::PathBuf::new());
    // A lease far longer than the test: while berthd runs, the entries follow the address
    // at once, not by lapsing.
    let mut d = Daemon::with_bridge(&[
        "--socket-redirect",
        "true",
        "--socket-redirect-lease",
        "3600",
    ]);
    pins.0 = pin_dir_of(&d);
    d.busybox();
    let port = free_port();
    let _server = Killed(
        Command::new("ip")
            .args(["netns", "exec", &netns, "busybox", "nc", "-ll", "-p"])
            .arg(port.to_string())
            .args(["-e", "echo", "remote"])
            .spawn()
            .unwrap(),
    );
    berth_e2e::net::pong_server(&d, "web", &["-p", &format!("{port}:80")]);
    let gateway = d.ok(&["inspect", "-f", "{{.NetworkSettings.Gateway}}", "web"]);
    let gateway = gateway.trim();
    let redirected = format!("{gateway} {moving}:{port} pong");
    let remote = format!("{near} {moving}:{port} remote");
    let mut got = String::new();
    let mut reaches = |want: &str| {
        wait_for(want, || {
            got = host_client(&moving, port);
            got == want
        })
    };
    // On the host: redirected to the container (the client's own address the bridge's).
    reaches(&redirected);
    // IPv6 too: an address of the host's, a container on a network with IPv6.
    let (q, v6) = (pid % 0xffff, format!("fd5e:{:x}:233::5", pid % 0xffff));
    ip_ok(&["addr", "add", &format!("{v6}/128"), "dev", &veth, "nodad"]);
    d.ok(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        &format!("10.{p}.235.0/24"),
        "--subnet",
        &format!("fd5e:{q:x}:235::/64"),
        "mv6",
    ]);
    let port6 = free_port();
    let published = format!("{port6}:80");
    berth_e2e::net::pong_server(&d, "web6", &["--network", "mv6", "-p", &published]);
    let gateway6 = d.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPv6Gateway}}{{end}}",
        "web6",
    ]);
    let want6 = format!("{} {v6}:{port6} pong", gateway6.trim());
    let mut got6 = String::new();
    wait_for(&want6, || {
        got6 = host_client(&v6, port6);
        got6 == want6
    });
    // An address the host holds but the kernel does not treat as its own, as the DNAT
    // rule's `fib daddr type local` does not: one whose duplicate address detection failed
    // (the remote host has it already). Never redirected.
    let taken = format!("fd5e:{q:x}:236::7");
    ip_ok(&[
        "-n",
        &netns,
        "addr",
        "add",
        &format!("{taken}/64"),
        "dev",
        peer,
        "nodad",
    ]);
    ip_ok(&["addr", "add", &format!("{taken}/64"), "dev", &veth]);
    wait_for("duplicate address detection to fail", || {
        let out = Command::new("ip")
            .args(["-6", "addr", "show", "dev", &veth])
            .output()
            .unwrap();
        text(&out.stdout).contains("dadfailed")
    });
    // Moved away with berthd running: the remote host answers (berthd has seen the
    // failed address's events by then: they came first), and back, the container again,
    // redirected.
    to_remote();
    reaches(&remote);
    let got = host_client(&taken, port6);
    assert!(!got.ends_with("pong"), "{taken}: {got}");
    d.ok(&["rm", "-f", "web6"]);
    back_home();
    reaches(&redirected);
    // With berthd killed, nothing renews the entry: once its lease is over (3 s here), the
    // address that moved away reaches the remote host.
    d.kill9();
    d.set_arg("--socket-redirect-lease", "3");
    d.spawn();
    reaches(&redirected);
    d.kill9();
    to_remote();
    reaches(&remote);
    back_home();
    d.spawn();
    reaches(&redirected);
    d.ok(&["rm", "-f", "web"]);
    drop(d);
    drop(elsewhere);
}
