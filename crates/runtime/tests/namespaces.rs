//! Privileged tests of berth's own runtime for Docker's isolation knobs: host and shared
//! pid/ipc/uts namespaces, `/dev/shm` (`--shm-size`, `--ipc`), sysctls with Docker's
//! unprivileged ping, and host devices with their device cgroup rules. Real containers
//! through `start()` and the real `berth-shim`; they need root and FAIL without it.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_runtime::{
    read_exit, start, ContainerSpec, DeviceNode, DeviceRule, ExecRequest, ExitStatus,
    NamespaceMode, Network, ShimClient, Shm,
};

mod common;

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "ping", "df", "readlink", "hostname", "sleep", "ls", "head", "ps", "test",
    "touch",
];

struct Fixture {
    dir: tempfile::TempDir,
    spec: ContainerSpec,
}

impl Fixture {
    fn new(args: &[&str]) -> Fixture {
        common::require_root();
        let dir = tempfile::Builder::new().prefix("brn").tempdir().unwrap();
        let tree = common::busybox_tree(dir.path(), APPLETS, common::PASSWD, common::GROUP);
        let id = format!(
            "n{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let spec = common::spec(dir.path(), &tree, &id, "/berth-test", args);
        Fixture { dir, spec }
    }

    fn start(&self) -> i32 {
        start(&self.spec, Path::new(SHIM)).expect("start").pid
    }

    fn wait(&self) -> ExitStatus {
        match ShimClient::connect(&self.spec.bundle) {
            Ok(mut c) => c.wait().expect("wait"),
            Err(_) => read_exit(&self.spec.bundle).expect("exit.json"),
        }
    }

    /// Starts, waits; returns the exit code and stdout and stderr together.
    fn run(&self) -> (i32, String) {
        self.start();
        let status = self.wait();
        (status.exit_code, self.output())
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.spec.log.path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                v["log"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        common::kill_and_unmount(&self.spec.bundle);
    }
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn link(path: &str) -> String {
    std::fs::read_link(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Builds the ICMP echo probe (`tests/e2e/probes/icmp_echo.c`) statically into the tree as
/// `/icmp-echo` (gcc is a test dependency).
fn build_icmp_probe(f: &Fixture) {
    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/e2e/probes/icmp_echo.c"
    );
    let out = std::process::Command::new("gcc")
        .args(["-static", "-O", "-o"])
        .arg(f.dir.path().join("tree/icmp-echo"))
        .arg(src)
        .output()
        .expect("gcc is needed for the test's probe");
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn ping_works_without_net_raw_in_a_new_network_namespace() {
    // busybox's ping needs a raw socket (refused without NET_RAW); the probe pings over an
    // ICMP datagram socket, as iputils' ping does then, which ping_group_range allows.
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ping_group_range /proc/sys/net/ipv4/ip_unprivileged_port_start; \
         ping -c1 -W2 127.0.0.1 >/dev/null 2>&1 || echo no raw socket; /icmp-echo",
    ]);
    build_icmp_probe(&f);
    f.spec.network = Network::None;
    f.spec.cap_drop = vec!["NET_RAW".into()];
    let (code, out) = f.run();
    assert_eq!(
        (code, out.as_str()),
        (0, "0\t2147483647\n0\nno raw socket\npong\n")
    );
}

#[test]
fn sysctls_are_written_in_the_containers_namespaces_and_a_users_ping_range_wins() {
    let mut f = Fixture::new(&[
        "cat",
        "/proc/sys/net/ipv4/ip_forward",
        "/proc/sys/kernel/shmmax",
        "/proc/sys/net/ipv4/ping_group_range",
    ]);
    f.spec.sysctls = [
        ("net.ipv4.ip_forward", "1"),
        ("kernel.shmmax", "123456"),
        ("net.ipv4.ping_group_range", "1 1"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let host_shmmax = std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let (code, out) = f.run();
    assert_eq!((code, out.as_str()), (0, "1\n123456\n1\t1\n"));
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax
    );
}

#[test]
fn a_sysctl_that_is_not_a_plain_name_is_refused() {
    let mut f = Fixture::new(&["sh"]);
    f.spec.sysctls = [("net.ipv4/../../kernel/x".to_string(), "1".to_string())].into();
    let err = start(&f.spec, Path::new(SHIM)).unwrap_err();
    assert!(err.to_string().contains("is not allowed"), "{err}");
}

#[test]
fn shm_size_is_honoured_and_ipc_none_has_no_shm() {
    let mut f = Fixture::new(&["df", "-k", "/dev/shm"]);
    f.spec.shm = Shm::Tmpfs(128 << 20);
    let (code, out) = f.run();
    assert_eq!(code, 0, "{out}");
    let line = out.lines().nth(1).unwrap_or_default().to_string();
    let blocks: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(blocks.get(1), Some(&"131072"), "{out}");

    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "test -e /dev/shm && echo present || echo absent",
    ]);
    f.spec.shm = Shm::None;
    assert_eq!(f.run(), (0, "absent\n".into()));
}

#[test]
fn host_pid_and_uts_namespaces_are_the_hosts_and_the_hostname_is_left_alone() {
    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    // The background sleep outlives the init: with the host's pid namespace nothing else
    // ends it, so the shim must (runc does the same).
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/uts; hostname; sleep 1000 & echo $!",
    ]);
    f.spec.namespaces.pid = NamespaceMode::Host;
    f.spec.namespaces.uts = NamespaceMode::Host;
    let (code, out) = f.run();
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], link("/proc/self/ns/pid"));
    assert_eq!(lines[1], link("/proc/self/ns/uts"));
    assert_eq!(format!("{}\n", lines[2]), host_hostname);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        host_hostname,
        "the host's hostname changed"
    );
    let sleep: i32 = lines[3].parse().unwrap();
    wait_until("the orphaned sleep to die", || {
        std::fs::read_to_string(format!("/proc/{sleep}/stat"))
            .map_or(true, |s| s.contains(") Z ") || !s.contains("(sleep)"))
    });
}

#[test]
fn host_ipc_shares_the_hosts_namespace_and_dev_shm() {
    let name = format!("berth-test-{}", std::process::id());
    std::fs::write(format!("/dev/shm/{name}"), "from the host\n").unwrap();
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        &format!("readlink /proc/self/ns/ipc; cat /dev/shm/{name}"),
    ]);
    f.spec.namespaces.ipc = NamespaceMode::Host;
    f.spec.shm = Shm::Host;
    let (code, out) = f.run();
    let _ = std::fs::remove_file(format!("/dev/shm/{name}"));
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("{}\nfrom the host\n", link("/proc/self/ns/ipc"))
    );
}

#[test]
fn container_pid_and_ipc_join_another_container_and_share_its_dev_shm() {
    let donor = Fixture::new(&["sh", "-c", "echo shared > /dev/shm/f; exec sleep 1000"]);
    let donor_pid = donor.start();
    wait_until("the donor's /dev/shm/f", || {
        Path::new(&format!("/proc/{donor_pid}/root/dev/shm/f")).exists()
    });
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc; cat /dev/shm/f /proc/1/comm",
    ]);
    f.spec.namespaces.pid = NamespaceMode::Process(donor_pid);
    f.spec.namespaces.ipc = NamespaceMode::Process(donor_pid);
    f.spec.shm = Shm::Process(donor_pid);
    let (code, out) = f.run();
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!(
            "{}\n{}\nshared\nsleep\n",
            link(&format!("/proc/{donor_pid}/ns/pid")),
            link(&format!("/proc/{donor_pid}/ns/ipc"))
        )
    );
    // The donor runs on, untouched.
    assert!(Path::new(&format!("/proc/{donor_pid}")).exists());
    ShimClient::connect(&donor.spec.bundle)
        .unwrap()
        .signal(libc::SIGKILL)
        .unwrap();
    assert_eq!(donor.wait().exit_code, 137);
}

fn tun(path: &str) -> DeviceNode {
    DeviceNode {
        path: path.into(),
        kind: 'c',
        major: 10,
        minor: 200,
        mode: 0o600,
        uid: 0,
        gid: 0,
    }
}

#[test]
fn devices_are_made_and_only_their_rules_open_them() {
    // /dev/net/tun (10:200) is not among Docker's default devices.
    let open = "for d in /dev/net/tun /opt/tun; do \
                (exec 3<>$d) 2>/dev/null && echo $d opened || echo $d denied; done; \
                ls -l /dev/net/tun | head -c 10; echo";
    let mut f = Fixture::new(&["sh", "-c", open]);
    f.spec.devices = vec![tun("/dev/net/tun"), tun("/opt/tun")];
    f.spec.resources.devices = vec![DeviceRule {
        kind: 'c',
        major: Some(10),
        minor: Some(200),
        access: "rw".into(),
    }];
    assert_eq!(
        f.run(),
        (
            0,
            "/dev/net/tun opened\n/opt/tun opened\ncrw-------\n".into()
        )
    );
    // The nodes without a rule: made, but the device cgroup refuses them.
    let mut f = Fixture::new(&["sh", "-c", open]);
    f.spec.devices = vec![tun("/dev/net/tun"), tun("/opt/tun")];
    assert_eq!(
        f.run(),
        (
            0,
            "/dev/net/tun denied\n/opt/tun denied\ncrw-------\n".into()
        )
    );
}

/// Runs `sh -c script` in the running container of `f` (stdio: pipes); returns its exit code
/// and stdout.
fn exec_sh(f: &Fixture, script: &str) -> (i32, String) {
    use std::io::Read;
    use std::os::fd::AsFd;
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let req = ExecRequest {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..Default::default()
    };
    let session = ShimClient::connect(&f.spec.bundle)
        .unwrap()
        .exec(&req, Some([null.as_fd(), out_w.as_fd(), null.as_fd()]))
        .unwrap();
    drop(out_w);
    let status = session.wait().unwrap();
    let mut out = String::new();
    out_r.read_to_string(&mut out).unwrap();
    (status.exit_code, out)
}

#[test]
fn exec_joins_host_and_shared_namespaces_as_the_init_has_them() {
    let donor = Fixture::new(&["sh", "-c", "echo shared > /dev/shm/f; exec sleep 1000"]);
    let donor_pid = donor.start();
    wait_until("the donor's /dev/shm/f", || {
        Path::new(&format!("/proc/{donor_pid}/root/dev/shm/f")).exists()
    });
    let mut f = Fixture::new(&["sleep", "1000"]);
    f.spec.namespaces.pid = NamespaceMode::Host;
    f.spec.namespaces.uts = NamespaceMode::Host;
    f.spec.namespaces.ipc = NamespaceMode::Process(donor_pid);
    f.spec.shm = Shm::Process(donor_pid);
    f.start();
    let (code, out) = exec_sh(
        &f,
        "readlink /proc/self/ns/pid; readlink /proc/self/ns/uts; readlink /proc/self/ns/ipc; \
         cat /dev/shm/f",
    );
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!(
            "{}\n{}\n{}\nshared\n",
            link("/proc/self/ns/pid"),
            link("/proc/self/ns/uts"),
            link(&format!("/proc/{donor_pid}/ns/ipc"))
        )
    );
    for c in [&f, &donor] {
        ShimClient::connect(&c.spec.bundle)
            .unwrap()
            .signal(libc::SIGKILL)
            .unwrap();
        assert_eq!(c.wait().exit_code, 137);
    }
}
