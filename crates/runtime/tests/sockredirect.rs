//! Privileged tests of the socket redirect (`berth_runtime::sockredirect`) on the real kernel:
//! a listener in a throwaway network namespace behind a veth (10.251.x.2, fd51:b0f:x::2), and
//! host connects to `127.0.0.1:P` / `[::1]:P` that reach it through the cgroup connect
//! programs alone (no nftables rule). The programs go on the host's cgroup2 root, so the
//! steps run in one test function, with pins in a directory of their own; a guard tears
//! everything down (programs, pins, namespace) even when a step fails. Every port is the
//! kernel's choice and stays bound by the test, so nothing else on the host is redirected.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use berth_runtime::sockredirect::{cgroup2_root, clock_ns, SockRedirect};

mod common;

/// Tears down the pins and the namespace when dropped (also on a failed assertion).
struct Guard {
    pins: PathBuf,
    netns: String,
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = SockRedirect::teardown_at(&self.pins);
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `f` on a thread that joined the network namespace `netns` (sockets made there stay in
/// it).
fn in_netns<T: Send + 'static>(netns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("netns thread")
}

/// The connection waiting on `listener`, if one arrives within two seconds.
fn accepted(listener: &TcpListener) -> Option<TcpStream> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    let n = poll(&mut fds, PollTimeout::from(2000u16)).expect("poll");
    (n > 0).then(|| listener.accept().expect("accept").0)
}

/// Whether a connection is already waiting on `listener` (no wait: used after another
/// listener got the connection, so a stray one would be there already).
fn pending(listener: &TcpListener) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::ZERO).expect("poll") > 0
}

/// Connects to `to` and checks which of `target` (must get it) and `other` (must not) the
/// connection reached, with a byte each way.
fn connect_reaches(to: SocketAddr, target: &TcpListener, other: &TcpListener) -> TcpStream {
    let mut client = TcpStream::connect_timeout(&to, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connect {to}: {e}"));
    let mut server = accepted(target).unwrap_or_else(|| {
        panic!(
            "connect to {to} did not reach {} (other listener has it: {})",
            target.local_addr().unwrap(),
            pending(other)
        )
    });
    assert!(
        !pending(other),
        "connect to {to} also reached the other listener"
    );
    client.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    server.read_exact(&mut b).unwrap();
    server.write_all(b"y").unwrap();
    client.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"y");
    client
}

fn our_programs(cgroup: &Path, v6: bool) -> Vec<u32> {
    let ids = SockRedirect::attached_connect_programs(cgroup, v6).expect("query");
    ids.into_iter()
        .filter(|&id| {
            SockRedirect::program_names(&[id])
                .first()
                .is_some_and(|n| n.starts_with(if v6 { "berth_c6_" } else { "berth_c4_" }))
        })
        .collect()
}

#[test]
fn connects_from_the_host_are_redirected_and_nothing_else() {
    common::require_root();
    let pid = std::process::id();
    let x = pid % 250 + 1;
    let netns = format!("brtbpf{pid}");
    let guard = Guard {
        pins: PathBuf::from(format!("/sys/fs/bpf/berth-test-{pid}")),
        netns: netns.clone(),
    };
    let (host_veth, ns_veth) = (format!("vbh{pid}"), format!("vbn{pid}"));
    let (host4, ns4) = (format!("10.251.{x}.1"), format!("10.251.{x}.2"));
    let (host6, ns6) = (format!("fd51:b0f:{x:x}::1"), format!("fd51:b0f:{x:x}::2"));
    ip(&["netns", "add", &netns]);
    ip(&[
        "link", "add", &host_veth, "type", "veth", "peer", "name", &ns_veth, "netns", &netns,
    ]);
    ip(&["addr", "add", &format!("{host4}/30"), "dev", &host_veth]);
    ip(&[
        "addr",
        "add",
        &format!("{host6}/64"),
        "dev",
        &host_veth,
        "nodad",
    ]);
    ip(&["link", "set", &host_veth, "up"]);
    let (ns4_cidr, ns6_cidr) = (format!("{ns4}/30"), format!("{ns6}/64"));
    let n = netns.as_str();
    ip(&["-n", n, "addr", "add", &ns4_cidr, "dev", &ns_veth]);
    ip(&["-n", n, "addr", "add", &ns6_cidr, "dev", &ns_veth, "nodad"]);
    ip(&["-n", n, "link", "set", &ns_veth, "up"]);
    ip(&["-n", n, "link", "set", "lo", "up"]);

    // The container side: listeners on the namespace's addresses.
    let (ns4_addr, ns6_addr): (SocketAddr, SocketAddr) = (
        format!("{ns4}:0").parse().unwrap(),
        format!("[{ns6}]:0").parse().unwrap(),
    );
    let (target4, target6) = in_netns(&netns, move || {
        (
            TcpListener::bind(ns4_addr).expect("bind ns v4"),
            TcpListener::bind(ns6_addr).expect("bind ns v6"),
        )
    });
    let (to4, to6) = (target4.local_addr().unwrap(), target6.local_addr().unwrap());
    // The published ports: held by the test on the host's loopback, so a connect that is not
    // redirected lands on these.
    let holder4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let holder6 = TcpListener::bind("[::1]:0").unwrap();
    let (from4, from6) = (holder4.local_addr().unwrap(), holder6.local_addr().unwrap());

    // Before any redirect: the host's own listener answers.
    connect_reaches(from4, &holder4, &target4);

    let cgroup = cgroup2_root().unwrap();
    let before4 = our_programs(&cgroup, false);
    let before6 = our_programs(&cgroup, true);
    let redirect = SockRedirect::open_at(&guard.pins, &cgroup).expect("open");
    assert!(redirect.entries().unwrap().is_empty());
    assert!(
        redirect.hides_rewrite(),
        "the getpeername programs are missing (kernel >= 5.8 has them)"
    );
    let after4 = our_programs(&cgroup, false);
    assert_eq!(
        after4.len(),
        before4.len() + 1,
        "one connect4 program attached"
    );
    assert_eq!(our_programs(&cgroup, true).len(), before6.len() + 1);

    // IPv4: the host's connect to 127.0.0.1:P reaches the namespace's listener.
    redirect.insert(from4, to4).unwrap();
    assert_eq!(redirect.get(from4).unwrap(), Some(to4));
    let client = connect_reaches(from4, &target4, &holder4);
    if redirect.hides_rewrite() {
        assert_eq!(
            client.peer_addr().unwrap(),
            from4,
            "getpeername shows the published address"
        );
    } else {
        assert_eq!(client.peer_addr().unwrap(), to4);
    }
    // Every TCP connect is redirected, not only the first.
    connect_reaches(from4, &target4, &holder4);
    // A dual-stack socket connecting to the v4-mapped address too.
    let mapped: SocketAddr = format!("[::ffff:127.0.0.1]:{}", from4.port())
        .parse()
        .unwrap();
    let client = connect_reaches(mapped, &target4, &holder4);
    if redirect.hides_rewrite() {
        assert_eq!(client.peer_addr().unwrap(), mapped);
    }

    // UDP is left alone: a connected UDP socket keeps its destination.
    let udp_holder = UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp_from = udp_holder.local_addr().unwrap();
    redirect.insert(udp_from, to4).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.connect(udp_from).unwrap();
    assert_eq!(udp.peer_addr().unwrap(), udp_from);
    udp.send(b"u").unwrap();
    udp_holder
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut b = [0u8; 1];
    assert_eq!(
        udp_holder.recv(&mut b).unwrap(),
        1,
        "UDP datagram reached 127.0.0.1"
    );
    assert!(redirect.remove(udp_from).unwrap());

    // Another network namespace's own 127.0.0.1:P is not redirected, though its connect goes
    // through the same cgroup programs (and the target listener lives in that namespace).
    let other = in_netns(&netns, move || {
        let local = TcpListener::bind(from4).expect("bind 127.0.0.1:P in the namespace");
        let mut c = TcpStream::connect_timeout(&from4, Duration::from_secs(3)).expect("connect");
        c.write_all(b"z").unwrap();
        (local, c.peer_addr().unwrap())
    });
    let (ns_local, peer) = other;
    assert_eq!(peer, from4);
    assert!(
        accepted(&ns_local).is_some(),
        "the namespace's own listener got it"
    );
    assert!(!pending(&target4), "a container's connect was redirected");

    // IPv6.
    redirect.insert(from6, to6).unwrap();
    let client = connect_reaches(from6, &target6, &holder6);
    if redirect.hides_rewrite() {
        assert_eq!(client.peer_addr().unwrap(), from6);
    }

    // An entry with a deadline redirects until then; past it, the programs pass it by (the
    // NAT path, here the host's own listener, answers) though it is still in the map.
    let minute = Some(clock_ns() + 60_000_000_000);
    redirect.insert_until(from4, to4, minute).unwrap();
    assert_eq!(redirect.get_until(from4).unwrap(), Some((to4, minute)));
    connect_reaches(from4, &target4, &holder4);
    connect_reaches(mapped, &target4, &holder4);
    let past = Some(clock_ns() - 1);
    redirect.insert_until(from4, to4, past).unwrap();
    redirect.insert_until(from6, to6, past).unwrap();
    assert_eq!(redirect.get_until(from6).unwrap(), Some((to6, past)));
    connect_reaches(from4, &holder4, &target4);
    connect_reaches(mapped, &holder4, &target4);
    connect_reaches(from6, &holder6, &target6);
    // Renewed, it redirects again.
    redirect.insert(from4, to4).unwrap();
    redirect.insert(from6, to6).unwrap();
    assert_eq!(redirect.get_until(from4).unwrap(), Some((to4, None)));
    connect_reaches(from4, &target4, &holder4);
    connect_reaches(from6, &target6, &holder6);

    let mut entries = redirect.entries().unwrap();
    entries.sort();
    let mut want = vec![(from4, to4), (from6, to6)];
    want.sort();
    assert_eq!(entries, want);

    // Families must match; port 0 is refused.
    assert!(redirect.insert(from4, to6).is_err());
    assert!(redirect
        .insert(from4, "10.0.0.1:0".parse().unwrap())
        .is_err());

    // A restarted berthd (the handle dropped, as by SIGKILL) finds the pins, the entries and
    // the one attachment.
    drop(redirect);
    connect_reaches(from4, &target4, &holder4);
    let redirect = SockRedirect::open_at(&guard.pins, &cgroup).expect("reopen");
    assert_eq!(
        our_programs(&cgroup, false),
        after4,
        "reopen attached a second copy"
    );
    assert_eq!(redirect.entries().unwrap().len(), 2);

    // Opened from another namespace the code differs (its cookie): the program is replaced on
    // the same link, and then redirects that namespace's sockets, not the host's.
    let pins = guard.pins.clone();
    let cg = cgroup.clone();
    let ns_client = in_netns(&netns, move || {
        let r = SockRedirect::open_at(&pins, &cg).expect("open from the namespace");
        drop(r);
        // Inside the namespace, 127.0.0.1:P now goes to the target (same namespace).
        TcpStream::connect_timeout(&from4, Duration::from_secs(3))
            .map(|c| c.peer_addr().is_ok())
            .is_ok()
    });
    let replaced = our_programs(&cgroup, false);
    assert_eq!(
        replaced.len(),
        after4.len(),
        "replacement attached a second copy"
    );
    assert_ne!(replaced, after4, "the program was not replaced");
    assert!(ns_client);
    assert!(
        accepted(&target4).is_some(),
        "the namespace's connect was redirected"
    );
    connect_reaches(from4, &holder4, &target4);
    // And back from the host.
    let redirect = {
        drop(redirect);
        SockRedirect::open_at(&guard.pins, &cgroup).expect("reopen from the host")
    };
    assert_eq!(our_programs(&cgroup, false).len(), after4.len());
    connect_reaches(from4, &target4, &holder4);

    // remove() takes the redirect away; clear() all of them.
    assert!(redirect.remove(from4).unwrap());
    assert!(!redirect.remove(from4).unwrap());
    connect_reaches(from4, &holder4, &target4);
    connect_reaches(from6, &target6, &holder6);
    redirect.clear().unwrap();
    assert!(redirect.entries().unwrap().is_empty());
    connect_reaches(from6, &holder6, &target6);

    // teardown detaches and unpins everything.
    redirect.insert(from4, to4).unwrap();
    redirect.teardown().unwrap();
    assert_eq!(our_programs(&cgroup, false), before4);
    assert_eq!(our_programs(&cgroup, true), before6);
    assert!(!guard.pins.exists());
    connect_reaches(from4, &holder4, &target4);
    drop(guard);
}
