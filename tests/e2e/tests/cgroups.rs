//! cgroups through the real docker CLI, on whatever layout this host has (v1, hybrid or pure
//! v2; scripts/v2vm.sh runs this file on a pure v2 kernel): limits read from inside and from
//! the host, the init's cgroup, pause, OOM, the device rules and the cgroup namespace. Each
//! assertion is the one right for the detected layout. (exec into a container is tested in
//! the runtime tier: berthd has no exec endpoint yet.)

use std::path::{Path, PathBuf};

use berth_e2e::{text, wait_for_within, Daemon};

/// Whether this host is pure cgroup v2 (no v1 hierarchy mounted).
fn pure_v2() -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(" - cgroup"),
        "no cgroup filesystem is mounted"
    );
    !mountinfo.lines().any(|l| l.contains(" - cgroup "))
}

/// The host directory of container `id`'s cgroup for `controller` (v2: the one directory).
fn host_dir(id: &str, controller: &str) -> PathBuf {
    let base = Path::new("/sys/fs/cgroup");
    let base = if pure_v2() {
        base.to_path_buf()
    } else {
        base.join(controller)
    };
    base.join("berth").join(id)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// Waits until container `id` has written `done`; returns its output.
fn wait_for_done(d: &Daemon, id: &str) -> String {
    let mut out = String::new();
    wait_for_within(
        &format!("'done' from {id}"),
        std::time::Duration::from_secs(60),
        || {
            out = d.ok(&["logs", id]);
            out.contains("done\n")
        },
    );
    out
}

/// Starts a detached container; returns its full id.
fn run_detached(d: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["run", "-d"];
    full.extend_from_slice(args);
    d.ok(&full).trim().to_string()
}

#[test]
fn limits_show_inside_and_on_the_host() {
    let d = Daemon::start();
    d.busybox();
    let v2 = pure_v2();
    let files: &[(&str, &str, &str)] = if v2 {
        // runc's conversions of Docker's v1 values.
        &[
            ("", "memory.max", "67108864"),
            ("", "memory.swap.max", "33554432"),
            ("", "pids.max", "32"),
            ("", "cpu.max", "50000 100000"),
            ("", "cpu.weight", "59"),
        ]
    } else {
        &[
            ("memory", "memory.limit_in_bytes", "67108864"),
            ("memory", "memory.memsw.limit_in_bytes", "100663296"),
            ("pids", "pids.max", "32"),
            ("cpu", "cpu.cfs_quota_us", "50000"),
            ("cpu", "cpu.shares", "512"),
        ]
    };
    // Inside: the container reads its own files, then stays for the host side.
    let mut script = String::new();
    for (c, file, _) in files {
        let path = Path::new("/sys/fs/cgroup").join(c).join(file);
        script += &format!("echo \"{file}=$(cat {})\"; ", path.display());
    }
    script += "echo done; exec sleep 100";
    let id = run_detached(
        &d,
        &[
            "-m",
            "64m",
            "--memory-swap",
            "96m",
            "--pids-limit",
            "32",
            "--cpus",
            "0.5",
            "--cpu-shares",
            "512",
            "busybox",
            "sh",
            "-c",
            &script,
        ],
    );
    let inside = wait_for_done(&d, &id);
    for (c, file, value) in files {
        assert!(
            inside.lines().any(|l| l == format!("{file}={value}")),
            "inside {file}: {inside}"
        );
        assert_eq!(read(&host_dir(&id, c).join(file)), *value, "host {file}");
    }
    d.ok(&["rm", "-f", &id]);
    for c in ["memory", "pids", "cpu"] {
        assert!(!host_dir(&id, c).exists(), "{c} left behind");
    }
}

#[test]
fn the_init_is_born_in_its_cgroup_and_pause_freezes_it() {
    let d = Daemon::start();
    d.busybox();
    let v2 = pure_v2();
    let id = run_detached(
        &d,
        &[
            "busybox",
            "sh",
            "-c",
            "cat /proc/self/cgroup; echo done; exec sleep 100",
        ],
    );
    let inside = wait_for_done(&d, &id);
    let pid = d.ok(&["inspect", "-f", "{{.State.Pid}}", &id]);
    let pid = pid.trim();

    // The init is in the container's cgroup from birth (v2: clone3 CLONE_INTO_CGROUP), and
    // sees it as its root on v2 (a private cgroup namespace).
    let host_view = read(Path::new(&format!("/proc/{pid}/cgroup")));
    if v2 {
        assert_eq!(host_view, format!("0::/berth/{id}"));
        assert_eq!(inside, "0::/\ndone\n");
    } else {
        let own = format!(":memory:/berth/{id}");
        assert!(host_view.lines().any(|l| l.ends_with(&own)), "{host_view}");
        assert!(inside.contains(&format!("{own}\n")), "{inside}");
    }

    d.ok(&["pause", &id]);
    if v2 {
        let events = read(&host_dir(&id, "").join("cgroup.events"));
        assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    } else {
        assert_eq!(
            read(&host_dir(&id, "freezer").join("freezer.state")),
            "FROZEN"
        );
    }
    d.ok(&["unpause", &id]);
    if v2 {
        let events = read(&host_dir(&id, "").join("cgroup.events"));
        assert!(events.lines().any(|l| l == "frozen 0"), "{events}");
    } else {
        assert_eq!(
            read(&host_dir(&id, "freezer").join("freezer.state")),
            "THAWED"
        );
    }
    d.ok(&["rm", "-f", &id]);
}

#[test]
fn memory_limit_ends_in_an_oom_kill() {
    let d = Daemon::start();
    d.busybox();
    let o = d.docker(&[
        "run",
        "--name",
        "oom",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", text(&o.stderr));
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.OOMKilled}}", "oom"])
            .trim(),
        "true"
    );
}

#[test]
fn device_rules_allow_dockers_list_only() {
    let d = Daemon::start();
    d.busybox();
    // A node outside Docker's allow list, made inside (CAP_MKNOD is in the default set): the
    // device rules (v1 devices.deny, v2 an eBPF program) refuse to open it.
    let script = "mknod /loop-control c 10 237 && echo made; \
                  (exec 3<>/loop-control) 2>/dev/null && echo opened || echo denied; \
                  (exec 3<>/dev/null) && echo null-ok";
    let out = d.ok(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert_eq!(out, "made\ndenied\nnull-ok\n");
    // Privileged: every device (the loop driver must be loaded on this host).
    let out = d.ok(&["run", "--rm", "--privileged", "busybox", "sh", "-c", script]);
    assert_eq!(out, "made\nopened\nnull-ok\n");
}

#[test]
fn cgroup_namespace_is_dockers_default_for_the_layout() {
    let d = Daemon::start();
    d.busybox();
    // Docker's default: private on v2, the host's on v1.
    let out = d.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/cgroup; cat /proc/self/cgroup",
    ]);
    let host_ns = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    let host_ns = host_ns.to_str().unwrap();
    let first = out.lines().next().unwrap_or("");
    let (default, other) = if pure_v2() {
        assert_ne!(first, host_ns, "{out}");
        assert!(out.ends_with("\n0::/\n"), "{out}");
        ("private", "host")
    } else {
        assert_eq!(first, host_ns, "{out}");
        assert!(out.contains(":memory:/berth/"), "{out}");
        ("host", "private")
    };
    // --cgroupns: the default mode is accepted; the other is refused, never ignored.
    let asked = d.ok(&[
        "run",
        "--rm",
        "--cgroupns",
        default,
        "busybox",
        "readlink",
        "/proc/self/ns/cgroup",
    ]);
    assert_eq!(asked.trim() == host_ns, default == "host", "{asked}");
    let o = d.docker(&["run", "--rm", "--cgroupns", other, "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(&format!(
            "cgroup namespace mode \"{other}\" is not supported by berth"
        )),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(
        d.ok(&["ps", "-aq"]),
        "",
        "nothing is left of the refused run"
    );
}
