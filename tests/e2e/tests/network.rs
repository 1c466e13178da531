//! The default bridge, end to end through the docker CLI and berth: addresses, container to
//! container and host to container over the bridge, egress masqueraded to a "remote host"
//! (a namespace of the test's own with a veth to the host), and nothing left behind after a
//! berthd kill -9 and restart, `rm -f`, or a failed start. Every daemon has a bridge and a
//! /24 of its own (`Daemon::with_bridge`); only addresses on this machine are used.

use std::process::{Command, Stdio};

use berth_e2e::{text, wait_for, Daemon};

fn inspect(d: &Daemon, name: &str, format: &str) -> String {
    d.ok(&["inspect", "-f", format, name]).trim().to_string()
}

/// The host's busybox `nc` (Debian's nc is not always there): a request to `ip:port`, the
/// last line of the answer.
fn http_get(ip: &str) -> String {
    let out = Command::new("busybox")
        .args([
            "sh",
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 80"),
        ])
        .output()
        .expect("busybox");
    text(&out.stdout).lines().last().unwrap_or("").to_string()
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
    let (code, out, err) = d.outcome(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {ip} 80"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with("page-from-berth\n"), "{out}");
    // The host to the container.
    assert_eq!(http_get(&ip), "page-from-berth");
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

/// A "remote host": a namespace with a veth to the host, addresses on a /30 of its own (in
/// 10.98.0.0/24; the test daemons' bridges are in 10.150-249.0.0) and no
/// route to the containers' subnet, so that only a masqueraded connection can be answered.
struct Remote {
    name: String,
}

impl Remote {
    fn new(tag: &str, subnet_octet: u8) -> Remote {
        let name = format!("bre{}{tag}", std::process::id() % 10000);
        let sh = |cmd: String| {
            let ok = Command::new("sh").args(["-ec", &cmd]).status().unwrap();
            assert!(ok.success(), "{cmd}");
        };
        sh(format!(
            "ip netns add {name}; ip link add {name}h type veth peer name eth9 netns {name}; \
             ip addr add 10.98.0.{}/30 dev {name}h; ip link set {name}h up; \
             ip netns exec {name} ip addr add 10.98.0.{}/30 dev eth9; \
             ip netns exec {name} ip link set eth9 up; ip netns exec {name} ip link set lo up",
            subnet_octet + 1,
            subnet_octet + 2
        ));
        Remote { name }
    }

    /// `ss` in the remote namespace: TCP sockets in `state`, "local peer" a line.
    fn tcp(&self, state: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "ss", "-Htn", "state", state])
            .output()
            .unwrap();
        text(&out.stdout)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}h", self.name)])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn egress_to_a_remote_host_is_masqueraded_as_the_host() {
    let d = Daemon::with_bridge(&[]);
    d.busybox();
    let octet = (std::process::id() % 60) as u8 * 4;
    let remote = Remote::new("m", octet);
    let mut listener = Command::new("ip")
        .args([
            "netns",
            "exec",
            &remote.name,
            "busybox",
            "nc",
            "-l",
            "-p",
            "9000",
        ])
        .stdout(Stdio::piped())
        // Held open: at EOF on its stdin busybox nc would close the connection at once.
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the remote host to listen", || {
        remote.tcp("listening").contains(":9000")
    });
    let target = format!("10.98.0.{}", octet + 2);
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
    let host_side = format!("10.98.0.{}", octet + 1);
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
        http_get(&ip),
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
            got = http_get(&ip);
            got == "page-from-berth"
        });
        // The old pair goes (by the teardown or with its namespace), the new one stays.
        wait_for("one port on the bridge", || {
            std::fs::read_dir(format!("/sys/class/net/{}/brif", d.bridge().unwrap()))
                .unwrap()
                .count()
                == 1
        });
        assert_eq!(http_get(&ip), "page-from-berth", "round {round}");
    }
}
