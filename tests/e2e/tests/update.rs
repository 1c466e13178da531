//! `docker update` / `berth update` through the real CLIs, on whatever cgroup layout this
//! host has (v1, hybrid or pure v2; scripts/test-v2.sh runs this file on a pure v2 kernel):
//! limits of a running container change at once (read inside the container and on the
//! host), a stopped container keeps them for its next start, the restart policy of a live
//! container changes, and the refusals are Docker's.

use std::path::{Path, PathBuf};

use berth_e2e::api::{curl_json, now};
use berth_e2e::{text, wait_for, Daemon};

/// Whether this host is pure cgroup v2 (no v1 hierarchy mounted).
fn pure_v2() -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mountinfo.contains(" - cgroup"),
        "no cgroup filesystem is mounted"
    );
    !mountinfo.lines().any(|l| l.contains(" - cgroup "))
}

/// (controller directory, file) of each limit, as the container and the host see it.
struct Files {
    memory: (&'static str, &'static str),
    pids: (&'static str, &'static str),
    cpu: (&'static str, &'static str),
}

fn files() -> Files {
    if pure_v2() {
        Files {
            memory: ("", "memory.max"),
            pids: ("", "pids.max"),
            cpu: ("", "cpu.max"),
        }
    } else {
        Files {
            memory: ("memory", "memory.limit_in_bytes"),
            pids: ("pids", "pids.max"),
            cpu: ("cpu", "cpu.cfs_quota_us"),
        }
    }
}

/// The host file of container `id`'s limit `(controller, file)`.
fn host_file(id: &str, (controller, file): (&str, &str)) -> PathBuf {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join("berth")
        .join(id)
        .join(file)
}

fn inside(controller: &str, file: &str) -> String {
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(file)
        .display()
        .to_string()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// What the container reads in its own `/sys/fs/cgroup` (through exec).
fn read_inside(d: &Daemon, name: &str, (controller, file): (&str, &str)) -> String {
    d.ok(&["exec", name, "cat", &inside(controller, file)])
        .trim()
        .to_string()
}

#[test]
fn a_running_containers_limits_change_at_once() {
    let d = Daemon::start();
    d.busybox();
    let f = files();
    let id = d
        .ok(&[
            "run",
            "-d",
            "--name",
            "web",
            "-m",
            "64m",
            "--pids-limit",
            "32",
            "busybox",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    // Docker's default swap limit: as much again as the memory limit.
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.HostConfig.MemorySwap}}", "web"])
            .trim(),
        "134217728"
    );
    let since = chrono::Utc::now().timestamp() - 1;
    assert_eq!(
        d.ok(&[
            "update",
            "-m",
            "96m",
            "--pids-limit",
            "50",
            "--cpus",
            "0.5",
            "--cpuset-cpus",
            "0",
            "web",
        ]),
        "web\n"
    );
    let (memory, cpu) = if pure_v2() {
        ("100663296", "50000 100000")
    } else {
        ("100663296", "50000")
    };
    assert_eq!(read_inside(&d, "web", f.memory), memory);
    assert_eq!(read(&host_file(&id, f.memory)), memory);
    assert_eq!(read_inside(&d, "web", f.pids), "50");
    assert_eq!(read(&host_file(&id, f.pids)), "50");
    assert_eq!(read(&host_file(&id, f.cpu)), cpu);
    // The cpuset holds the init and what is started in the container afterwards.
    let init_cpus = d.ok(&["exec", "web", "grep", "Cpus_allowed_list", "/proc/1/status"]);
    assert_eq!(
        init_cpus.split_whitespace().last(),
        Some("0"),
        "{init_cpus}"
    );
    let exec_cpus = d.ok(&[
        "exec",
        "web",
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert_eq!(
        exec_cpus.split_whitespace().last(),
        Some("0"),
        "{exec_cpus}"
    );
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.PidsLimit}} \
             {{.HostConfig.NanoCpus}} {{.HostConfig.CpusetCpus}}",
            "web",
        ])
        .trim(),
        "100663296 134217728 50 500000000 0"
    );
    // berth's CLI, and a paused container: -1 means no pids limit.
    d.ok(&["pause", "web"]);
    assert_eq!(
        d.berth_ok(&["container", "update", "--pids-limit", "-1", "web"]),
        "web\n"
    );
    assert_eq!(read(&host_file(&id, f.pids)), "max");
    d.ok(&["unpause", "web"]);
    assert_eq!(read_inside(&d, "web", f.pids), "max");
    let updates = d.events(
        &since.to_string(),
        &now(),
        &["event=update"],
        "{{.Actor.Attributes.name}}",
    );
    assert_eq!(updates, "web\nweb\n");
    d.ok(&["rm", "-f", "web"]);
    let cpuset = Path::new("/sys/fs/cgroup/cpuset/berth").join(&id);
    assert!(!cpuset.exists(), "the cpuset the update made is removed");
}

#[test]
fn a_stopped_container_keeps_its_update_for_the_next_start() {
    let d = Daemon::start();
    d.busybox();
    let f = files();
    let script = format!(
        "cat {} {}",
        inside(f.memory.0, f.memory.1),
        inside(f.pids.0, f.pids.1)
    );
    d.ok(&["create", "--name", "later", "busybox", "sh", "-c", &script]);
    // No memory limit yet, so no swap limit either: Docker wants both at once.
    assert_eq!(
        d.ok(&[
            "update",
            "-m",
            "32m",
            "--memory-swap",
            "64m",
            "--pids-limit",
            "20",
            "later"
        ]),
        "later\n"
    );
    assert_eq!(d.ok(&["start", "-a", "later"]), "33554432\n20\n");
    d.berth_ok(&["update", "-m", "48m", "later"]);
    assert_eq!(d.ok(&["start", "-a", "later"]), "50331648\n20\n");
}

#[test]
fn the_restart_policy_of_a_live_container_changes() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "svc",
        "busybox",
        "sh",
        "-c",
        "while [ ! -f /stop ]; do sleep 0.1; done; exit 3",
    ]);
    d.ok(&["update", "--restart", "on-failure:5", "svc"]);
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}",
            "svc",
        ])
        .trim(),
        "on-failure:5"
    );
    // Its next exit is a failure, which the new policy restarts.
    d.ok(&["exec", "svc", "touch", "/stop"]);
    wait_for("a restart by the updated policy", || {
        d.ok(&["inspect", "-f", "{{.RestartCount}}", "svc"])
            .trim()
            .parse::<i64>()
            .unwrap_or(0)
            >= 1
    });
    d.ok(&["rm", "-f", "svc"]);
}

#[test]
fn refusals_are_dockers_and_change_nothing() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run", "-d", "--name", "web", "-m", "64m", "busybox", "sleep", "300",
    ]);
    d.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "gone-after",
        "busybox",
        "sleep",
        "300",
    ]);
    let cases: &[(&[&str], &str)] = &[
        (
            &["update", "-m", "4m", "web"],
            "Error response from daemon: Minimum memory limit allowed is 6MB",
        ),
        (
            &["update", "-m", "64m", "--memory-swap", "32m", "web"],
            "Error response from daemon: Minimum memoryswap limit should be larger than memory \
             limit, see usage",
        ),
        (
            &["update", "-m", "512m", "web"],
            "Memory limit should be smaller than already set memoryswap limit, update the \
             memoryswap at the same time",
        ),
        (
            &["update", "--restart", "always", "gone-after"],
            "Restart policy cannot be updated because AutoRemove is enabled for the container",
        ),
        (
            &["update", "--restart", "sometimes", "web"],
            "Error response from daemon: invalid restart policy: unknown policy 'sometimes'",
        ),
        (
            &["update", "--blkio-weight", "300", "web"],
            "Error response from daemon: --blkio-weight (BlkioWeight) cannot be updated by \
             berth yet: refused rather than ignored (value: 300)",
        ),
        (
            &["update", "--cpuset-cpus", "4096", "web"],
            "Error response from daemon: Requested CPUs are not available - requested 4096",
        ),
        (
            &["update", "--cpus", "0.5", "--cpu-quota", "50000", "web"],
            "Error response from daemon: Conflicting options: Nano CPUs and CPU Quota cannot \
             both be set",
        ),
        (
            &["update", "-m", "64m", "nosuch"],
            "Error response from daemon: No such container: nosuch",
        ),
        (
            &["update", "web"],
            "you must provide one or more flags when using this command",
        ),
    ];
    for (args, message) in cases {
        let (code, out, err) = d.outcome(args);
        assert_eq!(code, 1, "docker {args:?}: {out}{err}");
        assert!(err.contains(message), "docker {args:?}: {err}");
        let b = d.berth(args);
        assert_eq!(b.status.code(), Some(1), "berth {args:?}");
        assert!(
            text(&b.stderr).contains(message),
            "berth {args:?}: {}",
            text(&b.stderr)
        );
    }
    // Through the API: Docker's answer, a field berth does not change refused by name (as
    // is another spelling of one it does), and the statuses.
    assert_eq!(
        curl_json(
            &d,
            "POST",
            "/v1.44/containers/web/update",
            Some(r#"{"PidsLimit":40}"#)
        ),
        (200, serde_json::json!({"Warnings": null}))
    );
    for (body, message) in [
        (
            r#"{"KernelMemory":1048576}"#,
            "--kernel-memory (KernelMemory) cannot be updated by berth yet: refused rather \
             than ignored (value: 1048576)",
        ),
        (
            r#"{"memory":1048576}"#,
            "memory is Memory spelt differently (Docker matches JSON keys case-insensitively): \
             refused rather than guessed",
        ),
    ] {
        let (code, answer) = curl_json(&d, "POST", "/v1.44/containers/web/update", Some(body));
        assert_eq!(code, 400, "{body}");
        assert_eq!(answer["message"], message, "{body}");
    }
    let (code, _) = curl_json(&d, "POST", "/v1.44/containers/nosuch/update", Some("{}"));
    assert_eq!(code, 404);
    let (code, _) = curl_json(
        &d,
        "POST",
        "/v1.44/containers/web/update",
        Some(r#"{"Memory":536870912}"#),
    );
    assert_eq!(code, 409, "a conflict with the container's settings");
    assert_eq!(
        d.ok(&[
            "inspect",
            "-f",
            "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}} {{.HostConfig.RestartPolicy.Name}} \
             {{.HostConfig.PidsLimit}}",
            "web",
        ])
        .trim(),
        "67108864 134217728 no 40"
    );
}

#[test]
fn the_reference_runtime_updates_a_running_container_too() {
    let d = Daemon::start_with_args(&["--runtime", "libcontainer"]);
    d.busybox();
    let f = files();
    let id = d
        .ok(&["run", "-d", "-m", "64m", "busybox", "sleep", "300"])
        .trim()
        .to_string();
    d.ok(&["update", "-m", "80m", "--pids-limit", "40", &id]);
    assert_eq!(read(&host_file(&id, f.memory)), "83886080");
    assert_eq!(read(&host_file(&id, f.pids)), "40");
    d.ok(&["rm", "-f", &id]);
}
