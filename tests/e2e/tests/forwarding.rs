//! berthd turns IPv4 forwarding on for its bridges; when it was off, the host must not
//! become a router between its other interfaces (two LANs of a hospital server). Its own
//! test binary: it turns the host's forwarding off first, as a fresh machine has it, which
//! the other tests' daemons must not see happen.

use std::process::Command;

use berth_e2e::{wait_for, Daemon, Remote};

const MARKER: &str = "/run/berth-turned-on-ip_forward";

fn ping(from: &Remote, ip: &str) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", &from.name, "busybox", "ping", "-c", "1", "-W", "1", ip,
        ])
        .output()
        .unwrap()
        .status
        .success()
}

fn guard_table() -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", "berth-guard"])
        .output()
        .unwrap()
        .status
        .success()
}

#[test]
fn berth_turning_forwarding_on_does_not_make_the_host_a_router() {
    // The host as a fresh machine has it: no forwarding, no marker, no guard.
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "0").unwrap();
    let _ = std::fs::remove_file(MARKER);
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", "berth-guard"])
        .output();
    // Two LANs on the host, each routing through it.
    let octet = 20 + (std::process::id() % 100) as u8;
    let (a, b) = (Remote::new("fa", octet), Remote::new("fb", octet + 120));
    for (lan, o) in [(&a, octet), (&b, octet + 120)] {
        let ok = Command::new("ip")
            .args([
                "netns", "exec", &lan.name, "ip", "route", "add", "default", "via",
            ])
            .arg(format!("10.98.{o}.1"))
            .status()
            .unwrap();
        assert!(ok.success());
    }
    let b_ip = format!("10.98.{}.2", octet + 120);

    let mut d = Daemon::with_bridge(&[]);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
            .unwrap()
            .trim(),
        "1"
    );
    assert!(std::path::Path::new(MARKER).exists());
    assert!(guard_table());
    assert!(!ping(&a, &b_ip), "the host routes between its LANs");
    // berth's own containers are forwarded (masqueraded out to the LAN).
    d.busybox();
    d.ok(&[
        "run", "--rm", "busybox", "ping", "-c", "1", "-W", "2", &b_ip,
    ]);
    // Without the guard the host would route: the check above can fail.
    assert!(Command::new("nft")
        .args(["delete", "table", "inet", "berth-guard"])
        .status()
        .unwrap()
        .success());
    wait_for("the LANs to reach each other without the guard", || {
        ping(&a, &b_ip)
    });
    // berthd writes it again when it starts.
    d.kill9();
    d.spawn();
    assert!(guard_table());
    assert!(!ping(&a, &b_ip), "the guard is back after a restart");
}
