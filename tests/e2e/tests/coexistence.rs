//! berth beside Docker's firewall: the iptables `FORWARD` policy `DROP` with a
//! `DOCKER-USER` chain, as dockerd leaves them, loaded by hand. A test binary of its own:
//! it changes the host's `FORWARD` policy, which no other test may see.

use std::process::{Command, Stdio};

use berth_e2e::{text, wait_for, Daemon, Remote};

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
