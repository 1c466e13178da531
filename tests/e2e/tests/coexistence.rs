//! berth beside other firewalls: Docker's (the iptables `FORWARD` policy `DROP` with a
//! `DOCKER-USER` chain, as dockerd leaves them, loaded by hand) and firewalld's (the real
//! firewalld, Debian's package, run for the test). A test binary of its own: each changes
//! the host's firewall, which no other test may see; its tests take turns.

use std::process::{Command, Stdio};
use std::sync::Mutex;

use berth_e2e::{text, wait_for, Daemon, Remote};

/// One firewall change at a time.
static HOST_FIREWALL: Mutex<()> = Mutex::new(());

fn iptables(args: &[&str]) -> (bool, String) {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("iptables (Debian's iptables package) is needed for this test");
    (out.status.success(), text(&out.stdout))
}

/// Docker's shape of the filter table's FORWARD chain, put back as it was on drop.
struct DockerFirewall {
    policy: String,
    made_chain: bool,
}

impl DockerFirewall {
    fn load() -> DockerFirewall {
        let (_, rules) = iptables(&["-S", "FORWARD"]);
        let policy = rules
            .lines()
            .find_map(|l| l.strip_prefix("-P FORWARD "))
            .unwrap_or("ACCEPT")
            .to_string();
        let made_chain = iptables(&["-N", "DOCKER-USER"]).0;
        if made_chain {
            assert!(iptables(&["-A", "DOCKER-USER", "-j", "RETURN"]).0);
            assert!(iptables(&["-I", "FORWARD", "1", "-j", "DOCKER-USER"]).0);
        }
        assert!(iptables(&["-P", "FORWARD", "DROP"]).0);
        DockerFirewall { policy, made_chain }
    }
}

impl Drop for DockerFirewall {
    fn drop(&mut self) {
        iptables(&["-P", "FORWARD", &self.policy]);
        if self.made_chain {
            iptables(&["-D", "FORWARD", "-j", "DOCKER-USER"]);
            iptables(&["-F", "DOCKER-USER"]);
            iptables(&["-X", "DOCKER-USER"]);
        }
    }
}

#[test]
fn containers_reach_out_and_each_other_under_docker_s_forward_drop_policy() {
    let _turn = HOST_FIREWALL.lock().unwrap_or_else(|p| p.into_inner());
    let firewall = DockerFirewall::load();
    let d = Daemon::with_bridge(&[]);
    let bridge = d.bridge().unwrap().to_string();
    d.busybox();
    // berth's accepts went into DOCKER-USER, marked; FORWARD's own rules were not touched.
    let (_, user) = iptables(&["-S", "DOCKER-USER"]);
    assert!(user.contains(&format!("-i {bridge}")), "{user}");
    assert!(user.contains(&format!("berth:{bridge}")), "{user}");
    let (_, forward) = iptables(&["-S", "FORWARD"]);
    assert!(forward.contains("-P FORWARD DROP"), "{forward}");
    assert!(!forward.contains(&bridge), "{forward}");
    // Out, masqueraded, to a remote host.
    let octet = 200 + (std::process::id() % 50) as u8;
    let remote = Remote::new("c", octet);
    let mut listener = remote.listen(9000);
    let (code, _, err) = d.outcome(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("echo through-the-drop | nc -w 5 10.98.{octet}.2 9000"),
    ]);
    assert_eq!(code, 0, "{err}");
    drop(listener.stdin.take());
    let out = listener.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "through-the-drop\n");
    // Container to container over the bridge (through FORWARD with br_netfilter loaded).
    d.ok(&[
        "run", "-d", "--name", "srv", "busybox", "nc", "-ll", "-p", "7000", "-e", "echo", "hi",
    ]);
    let ip = d.ok(&["inspect", "-f", "{{.NetworkSettings.IPAddress}}", "srv"]);
    let mut got = String::new();
    wait_for("a container to answer another", || {
        let (_, out, _) = d.outcome(&[
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            &format!("echo q | nc -w 3 {} 7000", ip.trim()),
        ]);
        got = out;
        got.contains("hi")
    });
    // berthd started again adds nothing twice.
    // A user-defined network's bridge is named `br-...` as Docker's are: its own traffic
    // is accepted before berth's RETURN for Docker's bridges sends it to Docker's drop.
    let p = 150 + std::process::id() % 100;
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.{p}.230.0/24"),
        "coex",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "usrv",
        "--network",
        "coex",
        "busybox",
        "nc",
        "-ll",
        "-p",
        "7000",
        "-e",
        "echo",
        "hi",
    ]);
    let mut got = String::new();
    wait_for(
        "a container to answer another on a user-defined network",
        || {
            let (_, out, _) = d.outcome(&[
                "run",
                "--rm",
                "--network",
                "coex",
                "busybox",
                "sh",
                "-c",
                "echo q | nc -w 3 usrv 7000",
            ]);
            got = out;
            got.contains("hi")
        },
    );
    d.ok(&["rm", "-f", "usrv"]);
    d.ok(&["network", "rm", "coex"]);
    let mut d = d;
    d.kill9();
    d.spawn();
    let (_, user) = iptables(&["-S", "DOCKER-USER"]);
    assert_eq!(
        user.matches(&format!("berth:{bridge}")).count(),
        5,
        "each rule once: {user}"
    );
    // The bridge's own traffic first, then traffic to Docker's own bridges left to
    // Docker's rules (the RETURNs), then the accepts.
    let mut lines = user.lines().skip(1);
    let first = lines.next().unwrap_or("");
    assert!(
        first.contains(&format!("-i {bridge} -o {bridge}")) && first.contains("-j ACCEPT"),
        "{user}"
    );
    let second = lines.next().unwrap_or("");
    assert!(
        second.contains("-o docker+") && second.contains("-j RETURN"),
        "{user}"
    );
    assert!(
        !user.contains("berth:br-"),
        "the network's accepts went with it: {user}"
    );
    drop(d);
    drop(firewall);
}

fn firewall_cmd(args: &[&str]) -> (bool, String) {
    let out = Command::new("firewall-cmd")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("firewall-cmd (Debian's firewalld package) is needed for this test");
    (out.status.success(), text(&out.stdout))
}

/// firewalld running (and the system bus it needs, when there is none), stopped on drop:
/// its own table goes with it (`CleanupOnExit`), and berth's zone file when the test made
/// it.
struct Firewalld {
    firewalld: std::process::Child,
    bus: Option<std::process::Child>,
    zone_file: std::path::PathBuf,
    zone_file_was_there: bool,
}

impl Firewalld {
    fn start() -> Firewalld {
        let zone_file = std::path::PathBuf::from("/etc/firewalld/zones/berth.xml");
        let zone_file_was_there = zone_file.exists();
        let socket = std::path::Path::new("/run/dbus/system_bus_socket");
        let bus = (!socket.exists()).then(|| {
            std::fs::create_dir_all("/run/dbus").unwrap();
            let child = Command::new("dbus-daemon")
                .args(["--system", "--nofork", "--nopidfile"])
                .spawn()
                .expect("dbus-daemon (Debian's dbus package, a firewalld dependency)");
            wait_for("the system bus", || socket.exists());
            child
        });
        assert!(
            !firewall_cmd(&["--state"]).0,
            "firewalld is already running: this test starts and stops its own"
        );
        let firewalld = Command::new("firewalld")
            .args(["--nofork", "--nopid"])
            .stdout(Stdio::null())
            .spawn()
            .expect("firewalld (Debian's firewalld package)");
        wait_for("firewalld to run", || firewall_cmd(&["--state"]).0);
        Firewalld {
            firewalld,
            bus,
            zone_file,
            zone_file_was_there,
        }
    }
}

impl Drop for Firewalld {
    fn drop(&mut self) {
        // SIGTERM: firewalld takes its rules away as it ends.
        let _ = Command::new("kill")
            .arg(self.firewalld.id().to_string())
            .status();
        let _ = self.firewalld.wait();
        if let Some(bus) = &mut self.bus {
            let _ = bus.kill();
            let _ = bus.wait();
            let _ = std::fs::remove_file("/run/dbus/system_bus_socket");
        }
        if !self.zone_file_was_there {
            let _ = std::fs::remove_file(&self.zone_file);
            let _ = std::fs::remove_file(self.zone_file.with_extension("xml.old"));
        }
    }
}

/// firewalld's interfaces of berth's zone: (running, permanent).
fn zone_interfaces() -> (String, String) {
    let running = firewall_cmd(&["--zone=berth", "--list-interfaces"]).1;
    let permanent = firewall_cmd(&["--permanent", "--zone=berth", "--list-interfaces"]).1;
    (running, permanent)
}

/// A container's `nc` to the remote host: what the remote host got.
fn reach_out(d: &Daemon, remote: &Remote, octet: u8, network: &str, word: &str) -> String {
    let mut listener = remote.listen(9000);
    let (_, _, _) = d.outcome(&[
        "run",
        "--rm",
        "--network",
        network,
        "busybox",
        "sh",
        "-c",
        &format!("echo {word} | nc -w 3 10.98.{octet}.2 9000"),
    ]);
    let _ = listener.kill();
    let out = listener.wait_with_output().unwrap();
    text(&out.stdout)
}

#[test]
fn containers_reach_out_and_each_other_with_firewalld_running() {
    let _turn = HOST_FIREWALL.lock().unwrap_or_else(|p| p.into_inner());
    let _firewalld = Firewalld::start();
    // firewalld's forward chain rejects what comes from an interface of no zone that
    // forwards (Debian's default zone, public, forwards nothing).
    let forward = Command::new("nft")
        .args(["list", "chain", "inet", "firewalld", "filter_FORWARD"])
        .output()
        .unwrap();
    let forward = text(&forward.stdout);
    assert!(forward.contains("reject"), "{forward}");
    let mut d = Daemon::with_bridge(&[]);
    let bridge = d.bridge().unwrap().to_string();
    d.busybox();
    let (running, permanent) = zone_interfaces();
    assert!(running.split_whitespace().any(|i| i == bridge), "{running}");
    assert!(
        permanent.split_whitespace().any(|i| i == bridge),
        "{permanent}"
    );
    let octet = 200 + (std::process::id() % 50) as u8;
    let remote = Remote::new("f", octet);
    assert_eq!(reach_out(&d, &remote, octet, "bridge", "out"), "out\n");
    // The test can fail: out of berth's zone (by hand), the bridge's egress is rejected.
    assert!(firewall_cmd(&["--zone=berth", &format!("--remove-interface={bridge}")]).0);
    assert_eq!(reach_out(&d, &remote, octet, "bridge", "blocked"), "");
    // berthd puts it back when it starts (here after a kill -9).
    d.kill9();
    d.spawn();
    assert!(zone_interfaces().0.split_whitespace().any(|i| i == bridge));
    assert_eq!(reach_out(&d, &remote, octet, "bridge", "back"), "back\n");
    // A user-defined network: its bridge too, container to container by name (through
    // firewalld's forward chain: br_netfilter is loaded), out, and a published port from
    // the remote host.
    let p = 150 + std::process::id() % 100;
    d.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("10.{p}.231.0/24"),
        "fwd",
    ]);
    let id = d.ok(&["network", "inspect", "-f", "{{.Id}}", "fwd"]);
    let user_bridge = format!("br-{}", &id.trim()[..12]);
    assert!(zone_interfaces()
        .0
        .split_whitespace()
        .any(|i| i == user_bridge));
    // The zone survives firewalld's reload (it is in the permanent configuration).
    assert!(firewall_cmd(&["--reload"]).0);
    assert!(zone_interfaces()
        .0
        .split_whitespace()
        .any(|i| i == user_bridge));
    // A port of the kernel's choice, free now.
    let published = std::net::TcpListener::bind("0.0.0.0:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "fsrv",
        "--network",
        "fwd",
        "-p",
        &format!("{published}:7000"),
        "busybox",
        "nc",
        "-ll",
        "-p",
        "7000",
        "-e",
        "echo",
        "hi",
    ]);
    let mut got = String::new();
    wait_for(
        "a container to answer another with firewalld running",
        || {
            let (_, out, _) = d.outcome(&[
                "run",
                "--rm",
                "--network",
                "fwd",
                "busybox",
                "sh",
                "-c",
                "echo q | nc -w 3 fsrv 7000",
            ]);
            got = out;
            got.contains("hi")
        },
    );
    assert_eq!(
        reach_out(&d, &remote, octet, "fwd", "user-net-out"),
        "user-net-out\n"
    );
    let from_remote = Command::new("ip")
        .args(["netns", "exec", &remote.name, "busybox", "nc", "-w", "3"])
        .arg(format!("10.98.{octet}.1"))
        .arg(published.to_string())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(text(&from_remote.stdout), "hi\n");
    // Removed with its network, from the running and the permanent configuration.
    d.ok(&["rm", "-f", "fsrv"]);
    d.ok(&["network", "rm", "fwd"]);
    let (running, permanent) = zone_interfaces();
    assert!(
        !running.split_whitespace().any(|i| i == user_bridge),
        "{running}"
    );
    assert!(
        !permanent.split_whitespace().any(|i| i == user_bridge),
        "{permanent}"
    );
    drop(d);
}
