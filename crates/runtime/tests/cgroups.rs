//! berth's cgroup manager against this host's real cgroups, whatever their layout: the tests
//! detect it and assert what is right for it. On a v1 or hybrid host, the v1 hierarchies, and
//! the hybrid's cgroup2 mount (`/sys/fs/cgroup/unified`, no controllers) standing in for v2
//! for what works without controllers (freeze, kill, the eBPF device filter); on a pure v2
//! host (scripts/v2vm.sh boots one), the v2 hierarchy with its controllers. Needs root and
//! FAILS without it. Every test works under its own `/berth-test-<pid>-<n>` parent and
//! removes it.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use berth_runtime::cgroups::{Cgroup, Layout, UNIFIED};
use berth_runtime::{ErrorKind, Resources, RuntimeError};

mod common;

fn host_layout() -> Layout {
    common::require_root();
    common::host_layout()
}

/// A real cgroup2 hierarchy: this host's own on pure v2, a hybrid's cgroup2 mount (as a v2
/// layout without controllers) otherwise.
fn unified_layout() -> Layout {
    common::require_root();
    common::v2_layout()
}

/// A test's own parent cgroup, removed (with whatever is left in it) on drop.
struct TestParent {
    name: String,
}

impl TestParent {
    fn new() -> TestParent {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        TestParent {
            name: format!("/berth-test-{}-{n}", std::process::id()),
        }
    }

    /// The cgroup path of a container under this parent.
    fn path(&self, container: &str) -> String {
        format!("{}/{container}", self.name)
    }

    /// This parent's directory in every hierarchy.
    fn dirs(&self) -> Vec<PathBuf> {
        common::all_cgroup_dirs(&self.name)
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        fn clean(dir: &Path) {
            if let Ok(entries) = std::fs::read_dir(dir) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        clean(&entry.path());
                    }
                }
            }
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.parse::<i32>().ok()) {
                // SAFETY: kill has no memory-safety preconditions; the pid is in a test cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
            for _ in 0..100 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for dir in self.dirs() {
            clean(&dir);
        }
    }
}

/// Runs `program args` as a child that moved itself into `cgroup` with `join_self` between
/// fork and exec, as the container init does.
fn spawn_in(cgroup: &Cgroup, program: &str, args: &[&str]) -> Child {
    let cgroup = cgroup.clone();
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: join_self only opens, writes and closes files (no allocation on success), all
    // async-signal-safe, so it may run in the forked child of this multi-threaded process.
    unsafe { command.pre_exec(move || cgroup.join_self()) };
    command.spawn().expect("spawn a child into the cgroup")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

/// The directory of `controller` (on v2 the one directory).
fn dir_of(cgroup: &Cgroup, controller: &str) -> PathBuf {
    cgroup
        .dirs()
        .iter()
        .find(|(c, _)| c == controller || c == UNIFIED)
        .map(|(_, d)| d.clone())
        .unwrap_or_else(|| panic!("no {controller} dir in {:?}", cgroup.dirs()))
}

/// The mount of `controller`'s hierarchy (on v2 the one hierarchy's).
fn mount_of(layout: &Layout, controller: &str) -> PathBuf {
    match layout {
        Layout::V1 { controllers, .. } => controllers[controller].clone(),
        Layout::V2 { root, .. } => root.clone(),
    }
}

#[test]
fn detect_reads_this_hosts_layout() {
    let layout = host_layout();
    let mountinfo = read(Path::new("/proc/self/mountinfo"));
    let v1 = mountinfo.lines().any(|l| l.contains(" - cgroup "));
    assert_eq!(layout.is_v2(), !v1, "{layout:?}\n{mountinfo}");
    let (controllers, named, unified) = match &layout {
        Layout::V1 {
            controllers,
            named,
            unified,
        } => (controllers, named, unified),
        Layout::V2 { root, controllers } => {
            assert_eq!(root, Path::new("/sys/fs/cgroup"));
            let available = read(&root.join("cgroup.controllers"));
            assert_eq!(controllers.join(" "), available);
            for c in ["cpu", "io", "memory", "pids"] {
                assert!(controllers.iter().any(|x| x == c), "{c} in {controllers:?}");
            }
            return;
        }
    };
    for c in [
        "memory", "cpu", "cpuacct", "cpuset", "pids", "freezer", "blkio", "devices",
    ] {
        assert_eq!(
            controllers.get(c),
            Some(&Path::new("/sys/fs/cgroup").join(c)),
            "{c}"
        );
    }
    assert_eq!(
        named.get("name=systemd"),
        Some(&PathBuf::from("/sys/fs/cgroup/systemd"))
    );
    // A hybrid's cgroup2 mount, when there is one (systemd's place for it).
    let cgroup2 = mountinfo.lines().any(|l| l.contains(" - cgroup2 "));
    assert_eq!(
        unified.as_deref(),
        cgroup2.then_some(Path::new("/sys/fs/cgroup/unified"))
    );
}

/// v2: one directory with Docker's mapping of the limits (runc's conversions), the
/// controllers enabled down to it.
fn assert_v2_limits(cgroup: &Cgroup, layout: &Layout, parent: &TestParent) {
    let names: Vec<&str> = cgroup.dirs().iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(names, [UNIFIED]);
    let dir = dir_of(cgroup, UNIFIED);
    assert_eq!(read(&dir.join("memory.max")), "67108864");
    assert_eq!(read(&dir.join("memory.swap.max")), "67108864");
    // runc's conversion of 512 shares.
    assert_eq!(read(&dir.join("cpu.weight")), "59");
    assert_eq!(read(&dir.join("cpu.max")), "50000 100000");
    assert_eq!(read(&dir.join("pids.max")), "50");
    let root = mount_of(layout, "memory");
    for enabled in [root.clone(), root.join(&parent.name[1..])] {
        let control = read(&enabled.join("cgroup.subtree_control"));
        for c in ["cpu", "io", "memory", "pids"] {
            assert!(
                control.split(' ').any(|x| x == c),
                "{c} not enabled in {}: {control}",
                enabled.display()
            );
        }
    }
}

#[test]
fn create_makes_only_the_needed_dirs_with_the_limits_and_remove_clears_them() {
    let layout = host_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let resources = Resources {
        memory: Some(64 << 20),
        memory_swap: Some(128 << 20),
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: None,
        cpuset_mems: None,
        pids_limit: Some(50),
        ..Default::default()
    };
    let cgroup = Cgroup::create(&layout, &path, &resources, false).unwrap();
    let names = if layout.is_v2() {
        assert_v2_limits(&cgroup, &layout, &parent);
        vec![UNIFIED]
    } else {
        let mut names: Vec<&str> = cgroup.dirs().iter().map(|(c, _)| c.as_str()).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["blkio", "cpu", "cpuacct", "devices", "freezer", "memory", "pids"]
        );
        let rel = path.trim_start_matches('/');
        for absent in ["cpuset", "systemd", "unified"] {
            let dir = Path::new("/sys/fs/cgroup").join(absent).join(rel);
            assert!(!dir.exists(), "{} should not exist", dir.display());
        }
        let memory = dir_of(&cgroup, "memory");
        assert_eq!(read(&memory.join("memory.limit_in_bytes")), "67108864");
        assert_eq!(
            read(&memory.join("memory.memsw.limit_in_bytes")),
            "134217728"
        );
        let cpu = dir_of(&cgroup, "cpu");
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&dir_of(&cgroup, "pids").join("pids.max")), "50");
        let devices = read(&dir_of(&cgroup, "devices").join("devices.list"));
        let mut lines: Vec<&str> = devices.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "b *:* m",
                "c *:* m",
                "c 136:* rwm",
                "c 1:3 rwm",
                "c 1:5 rwm",
                "c 1:7 rwm",
                "c 1:8 rwm",
                "c 1:9 rwm",
                "c 5:0 rwm",
                "c 5:1 rwm",
                "c 5:2 rwm",
            ]
        );
        names
    };
    let reopened = Cgroup::open(&layout, &path);
    let mut found: Vec<&str> = reopened.dirs().iter().map(|(c, _)| c.as_str()).collect();
    found.sort_unstable();
    assert_eq!(found, names);

    assert!(cgroup.remove());
    for (_, dir) in cgroup.dirs() {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    // The shared parent stays.
    assert!(mount_of(&layout, "memory").join(&parent.name[1..]).is_dir());
    assert!(Cgroup::open(&layout, &path).dirs().is_empty());
    assert!(cgroup.remove(), "removing again finds nothing to remove");
}

#[test]
fn child_joins_and_is_listed_frozen_thawed_counted_and_killed() {
    let layout = host_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let resources = Resources {
        memory: Some(256 << 20),
        pids_limit: Some(20),
        ..Resources::default()
    };
    let cgroup = Cgroup::create(&layout, &path, &resources, false).unwrap();
    assert_eq!(cgroup.v2_dir().is_some(), layout.is_v2());
    let mut child = spawn_in(&cgroup, "sleep", &["100"]);
    let pid = child.id() as i32;

    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    if layout.is_v2() {
        assert_eq!(own, format!("0::{path}"));
    } else {
        for controller in [
            "memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "devices",
        ] {
            let line = own
                .lines()
                .find(|l| l.split(':').nth(1) == Some(controller))
                .unwrap();
            assert!(line.ends_with(&format!(":{path}")), "{line}");
        }
    }
    assert_eq!(cgroup.pids().unwrap(), [pid]);

    let frozen = || {
        if layout.is_v2() {
            let events = read(&dir_of(&cgroup, UNIFIED).join("cgroup.events"));
            events.lines().any(|l| l == "frozen 1")
        } else {
            read(&dir_of(&cgroup, "freezer").join("freezer.state")) == "FROZEN"
        }
    };
    cgroup.freeze().unwrap();
    assert!(frozen());
    cgroup.thaw().unwrap();
    assert!(!frozen());

    let stats = cgroup.stats();
    assert!(stats.memory_usage.is_some(), "{stats:?}");
    assert_eq!(stats.memory_limit, Some(256 << 20));
    assert!(stats.memory_cache.is_some());
    assert!(stats.cpu_usage_ns.is_some_and(|n| n > 0), "{stats:?}");
    // v2 has no per-cpu counter.
    assert_eq!(
        stats.per_cpu_usage_ns.is_some_and(|v| !v.is_empty()),
        !layout.is_v2()
    );
    assert_eq!(stats.pids_current, Some(1));
    assert_eq!(stats.pids_limit, Some(20));
    assert!(!cgroup.oom_killed());

    // Frozen: kill_all must thaw for the kill to land.
    cgroup.freeze().unwrap();
    assert!(cgroup.kill_all(Duration::from_secs(5)));
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(cgroup.pids().unwrap().is_empty());
    assert!(cgroup.remove());
}

#[test]
fn unlimited_stats_read_as_none() {
    let layout = host_layout();
    let parent = TestParent::new();
    let cgroup = Cgroup::create(&layout, &parent.path("c"), &Resources::default(), true).unwrap();
    let stats = cgroup.stats();
    assert_eq!(stats.memory_limit, None);
    assert_eq!(stats.pids_limit, None);
    assert_eq!(stats.pids_current, Some(0));
    assert!(cgroup.remove());
}

#[test]
fn memory_limit_ends_in_an_oom_kill_that_is_reported() {
    let layout = host_layout();
    let parent = TestParent::new();
    let resources = Resources {
        memory: Some(8 << 20),
        memory_swap: Some(8 << 20),
        ..Resources::default()
    };
    let cgroup = Cgroup::create(&layout, &parent.path("oom"), &resources, false).unwrap();
    // dd fills a 64 MiB buffer from /dev/zero.
    let mut child = spawn_in(
        &cgroup,
        "dd",
        &["if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
    );
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(cgroup.oom_killed());
    assert!(cgroup.remove());
}

fn assert_refused(layout: &Layout, resources: Resources, expected: &[&str]) {
    let parent = TestParent::new();
    let err = Cgroup::create(layout, &parent.path("c"), &resources, false).unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidSpec(_)), "{err:?}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    let text = err.to_string();
    for part in expected {
        assert!(text.contains(part), "{part:?} in {text:?}");
    }
    for dir in parent.dirs() {
        assert!(!dir.exists(), "{} left behind after {text}", dir.display());
    }
}

#[test]
fn refused_limits_fail_naming_file_and_value_and_leave_nothing_behind() {
    let layout = host_layout();
    assert_refused(
        &layout,
        Resources {
            cpuset_cpus: Some("99".into()),
            ..Resources::default()
        },
        &["cannot set cpuset cpus to 99 (", "/c/cpuset.cpus): "],
    );
    assert_refused(
        &layout,
        Resources {
            cpuset_mems: Some("99".into()),
            ..Resources::default()
        },
        &["cannot set cpuset mems to 99 (", "/c/cpuset.mems): "],
    );
    assert_refused(
        &layout,
        Resources {
            memory: Some(64 << 20),
            memory_swap: Some(32 << 20),
            ..Resources::default()
        },
        &[
            "cannot set memory+swap limit to 33554432",
            if layout.is_v2() {
                // v2 has swap alone (memory.swap.max): berth refuses before writing.
                "it must be at least the memory limit (67108864)"
            } else {
                "memory.memsw.limit_in_bytes"
            },
        ],
    );
    let quota: &[&str] = if layout.is_v2() {
        &[
            "cannot set cpu quota and period to 500 100000 (",
            "/c/cpu.max): ",
        ]
    } else {
        &["cannot set cpu quota to 500 (", "/c/cpu.cfs_quota_us): "]
    };
    assert_refused(
        &layout,
        Resources {
            cpu_quota: Some(500),
            ..Resources::default()
        },
        quota,
    );
}

#[test]
fn invalid_paths_are_rejected() {
    let layout = host_layout();
    for path in ["", "/", "relative/x", "/a/../b"] {
        let err = Cgroup::create(&layout, path, &Resources::default(), false).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{path:?}");
    }
}

#[test]
fn cpuset_is_populated_down_from_the_root_so_a_task_can_join() {
    let layout = host_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let resources = Resources {
        cpuset_cpus: Some("0".into()),
        ..Resources::default()
    };
    let cgroup = Cgroup::create(&layout, &path, &resources, false).unwrap();
    let mount = mount_of(&layout, "cpuset");
    let parent_dir = mount.join(&parent.name[1..]);
    let dir = dir_of(&cgroup, "cpuset");
    assert_eq!(read(&dir.join("cpuset.cpus")), "0");
    if layout.is_v2() {
        // v2 inherits the parent's cpus and mems: the controller is enabled down to it.
        for enabled in [&mount, &parent_dir] {
            let control = read(&enabled.join("cgroup.subtree_control"));
            assert!(control.split(' ').any(|c| c == "cpuset"), "{control}");
        }
        assert_eq!(
            read(&dir.join("cpuset.mems.effective")),
            read(&mount.join("cpuset.mems.effective"))
        );
    } else {
        // v1 starts a cpuset empty (no task may join): berth copies the values down.
        assert_eq!(
            read(&parent_dir.join("cpuset.cpus")),
            read(&mount.join("cpuset.cpus"))
        );
        assert_eq!(
            read(&parent_dir.join("cpuset.mems")),
            read(&mount.join("cpuset.mems"))
        );
        assert_eq!(
            read(&dir.join("cpuset.mems")),
            read(&mount.join("cpuset.mems"))
        );
    }

    let mut child = spawn_in(&cgroup, "sleep", &["100"]);
    let status = read(Path::new(&format!("/proc/{}/status", child.id())));
    assert!(
        status.lines().any(|l| l == "Cpus_allowed_list:\t0"),
        "{status}"
    );
    assert!(cgroup.kill_all(Duration::from_secs(5)));
    child.wait().unwrap();
    assert!(cgroup.remove());
}

#[test]
fn cpuset_mems_alone_gets_a_cpuset_cgroup_with_the_nodes() {
    let layout = host_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let resources = Resources {
        cpuset_mems: Some("0".into()),
        ..Resources::default()
    };
    let cgroup = Cgroup::create(&layout, &path, &resources, false).unwrap();
    let dir = dir_of(&cgroup, "cpuset");
    assert_eq!(read(&dir.join("cpuset.mems")), "0");
    // v1: copied from the parent; v2: inherited (the file itself stays empty).
    let cpus = if layout.is_v2() {
        "cpuset.cpus.effective"
    } else {
        "cpuset.cpus"
    };
    assert!(!read(&dir.join(cpus)).is_empty());
    assert!(cgroup.remove());
}

#[test]
fn a_leftover_cgroup_is_replaced_when_empty_and_a_conflict_when_in_use() {
    let layout = host_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let limited = Resources {
        pids_limit: Some(5),
        ..Resources::default()
    };
    let first = Cgroup::create(&layout, &path, &limited, false).unwrap();
    // Not removed: a leftover. The new one must not keep the old limit.
    let second = Cgroup::create(&layout, &path, &Resources::default(), false).unwrap();
    assert_eq!(read(&dir_of(&second, "pids").join("pids.max")), "max");
    assert_eq!(first.dirs(), second.dirs());

    let mut child = spawn_in(&second, "sleep", &["100"]);
    let err = Cgroup::create(&layout, &path, &Resources::default(), false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("in use by process {}", child.id())),
        "{err}"
    );
    // The conflict changed nothing.
    assert_eq!(second.pids().unwrap(), [child.id() as i32]);
    assert!(second.kill_all(Duration::from_secs(5)));
    child.wait().unwrap();
    assert!(second.remove());
}

#[test]
fn join_self_error_names_the_file() {
    let layout = host_layout();
    let parent = TestParent::new();
    let cgroup =
        Cgroup::create(&layout, &parent.path("gone"), &Resources::default(), false).unwrap();
    assert!(cgroup.remove());
    // The directories are gone, so this process is not moved anywhere.
    let err = cgroup.join_self().unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&parent.path("gone")), "{text}");
    // v1 joins through `tasks`, v2 through `cgroup.procs`.
    let file = if layout.is_v2() {
        "/cgroup.procs"
    } else {
        "/tasks"
    };
    assert!(
        text.contains(&format!("{file}: no such file or directory")),
        "{text}"
    );
}

fn device_probe(cgroup: &Cgroup, scratch: &Path) -> String {
    let node = scratch.join("null-node");
    let script = format!(
        "exec 3</dev/null && echo null-ok; \
         (exec 4</dev/loop-control) 2>/dev/null && echo loop-ok || echo loop-denied; \
         mknod {} c 1 3 && echo mknod-ok",
        node.display()
    );
    let child = spawn_in(cgroup, "/bin/sh", &["-c", &script]);
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn device_rules_allow_docker_defaults_and_privileged_allows_all() {
    let layout = host_layout();
    let parent = TestParent::new();
    let scratch = tempfile::tempdir().unwrap();

    let plain =
        Cgroup::create(&layout, &parent.path("plain"), &Resources::default(), false).unwrap();
    let out = device_probe(&plain, scratch.path());
    assert_eq!(out, "null-ok\nloop-denied\nmknod-ok\n");
    assert!(plain.remove());

    std::fs::remove_file(scratch.path().join("null-node")).unwrap();
    let privileged =
        Cgroup::create(&layout, &parent.path("priv"), &Resources::default(), true).unwrap();
    if !layout.is_v2() {
        let list = read(&dir_of(&privileged, "devices").join("devices.list"));
        assert_eq!(list, "a *:* rwm");
    }
    let out = device_probe(&privileged, scratch.path());
    assert_eq!(out, "null-ok\nloop-ok\nmknod-ok\n");
    assert!(privileged.remove());
}

#[test]
fn mount_views_bind_own_dirs_and_the_callers_elsewhere() {
    let layout = host_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let cgroup = Cgroup::create(&layout, &path, &Resources::default(), false).unwrap();
    let own = read(Path::new("/proc/self/cgroup"));
    let (views, links) = cgroup.mount_views(&own);
    if layout.is_v2() {
        // The container mounts a cgroup2 of its own namespace instead: no views.
        assert!(views.is_empty() && links.is_empty(), "{views:?} {links:?}");
        assert!(cgroup.remove());
        return;
    }
    let names: Vec<&str> = views.iter().map(|(n, _)| n.as_str()).collect();
    for name in [
        "blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "memory", "pids", "systemd",
    ] {
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    assert!(!names.contains(&"unified"));
    // cpu and cpuacct are separate mounts on this host: nothing to link.
    assert!(links.is_empty(), "{links:?}");
    let view = |name: &str| views.iter().find(|(n, _)| n == name).unwrap().1.clone();
    assert_eq!(view("memory"), dir_of(&cgroup, "memory"));
    let caller_cpuset = own
        .lines()
        .map(|l| l.splitn(3, ':').collect::<Vec<_>>())
        .find(|parts| parts[1] == "cpuset")
        .map(|parts| parts[2])
        .unwrap();
    assert_eq!(
        view("cpuset"),
        Path::new("/sys/fs/cgroup/cpuset").join(caller_cpuset.trim_start_matches('/'))
    );
    assert!(cgroup.remove());
}

#[test]
fn v2_child_is_frozen_thawed_and_killed_with_cgroup_kill() {
    let layout = unified_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let cgroup = Cgroup::create(&layout, &path, &Resources::default(), false).unwrap();
    let dir = dir_of(&cgroup, "unified");
    assert!(cgroup.v2_dir().is_some());

    let mut child = spawn_in(&cgroup, "sleep", &["100"]);
    let pid = child.id() as i32;
    let own = read(Path::new(&format!("/proc/{pid}/cgroup")));
    assert!(own.lines().any(|l| l == format!("0::{path}")), "{own}");
    assert_eq!(cgroup.pids().unwrap(), [pid]);

    cgroup.freeze().unwrap();
    assert!(read(&dir.join("cgroup.events")).contains("frozen 1"));
    let state = read(Path::new(&format!("/proc/{pid}/stat")));
    assert!(state
        .rsplit(')')
        .next()
        .unwrap()
        .trim_start()
        .starts_with('S'));
    cgroup.thaw().unwrap();
    assert!(read(&dir.join("cgroup.events")).contains("frozen 0"));

    cgroup.freeze().unwrap();
    assert!(cgroup.kill_all(Duration::from_secs(5)));
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(cgroup.pids().unwrap().is_empty());
    assert!(cgroup.remove());
    assert!(!dir.exists());
}

#[test]
fn v2_device_filter_allows_docker_defaults_and_denies_the_rest() {
    let layout = unified_layout();
    let parent = TestParent::new();
    let scratch = tempfile::tempdir().unwrap();
    // This host's v1 devices cgroup allows everything: any denial comes from the filter.
    let plain =
        Cgroup::create(&layout, &parent.path("plain"), &Resources::default(), false).unwrap();
    assert_eq!(
        device_probe(&plain, scratch.path()),
        "null-ok\nloop-denied\nmknod-ok\n"
    );
    assert!(plain.remove());

    std::fs::remove_file(scratch.path().join("null-node")).unwrap();
    let privileged =
        Cgroup::create(&layout, &parent.path("priv"), &Resources::default(), true).unwrap();
    assert_eq!(
        device_probe(&privileged, scratch.path()),
        "null-ok\nloop-ok\nmknod-ok\n"
    );
    assert!(privileged.remove());
}

#[test]
fn v2_block_device_is_denied_by_the_filter() {
    let layout = unified_layout();
    let parent = TestParent::new();
    let cgroup = Cgroup::create(&layout, &parent.path("c"), &Resources::default(), false).unwrap();
    // Any block device of this machine (a disk, or loop0 in the v2 guest).
    let block = std::fs::read_dir("/sys/class/block")
        .unwrap()
        .flatten()
        .map(|e| Path::new("/dev").join(e.file_name()))
        .find(|p| p.exists())
        .expect("a block device node in /dev");
    let script = format!("(exec 3<{}) || echo block-denied", block.display());
    let child = spawn_in(&cgroup, "/bin/sh", &["-c", &script]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "block-denied\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Operation not permitted"));
    assert!(cgroup.remove());
}

#[test]
fn update_changes_a_live_cgroups_limits_and_adds_a_cpuset_with_its_processes() {
    let layout = host_layout();
    let parent = TestParent::new();
    let path = parent.path("c1");
    let created = Resources {
        memory: Some(64 << 20),
        memory_swap: Some(128 << 20),
        pids_limit: Some(20),
        ..Resources::default()
    };
    let mut cgroup = Cgroup::create(&layout, &path, &created, false).unwrap();
    let mut child = spawn_in(&cgroup, "sleep", &["100"]);
    let pid = child.id() as i32;
    // Memory grows past the old memory+swap limit (v1 writes memory+swap first), pids go
    // unlimited, and a cpuset appears.
    let changes = Resources {
        memory: Some(200 << 20),
        memory_swap: Some(400 << 20),
        pids_limit: Some(0),
        cpuset_cpus: Some("0".into()),
        ..Resources::default()
    };
    cgroup.update(&changes).unwrap();
    let memory = dir_of(&cgroup, "memory");
    let pids = dir_of(&cgroup, "pids");
    let cpuset = dir_of(&cgroup, "cpuset");
    assert_eq!(read(&pids.join("pids.max")), "max");
    assert_eq!(read(&cpuset.join("cpuset.cpus")), "0");
    if layout.is_v2() {
        assert_eq!(read(&memory.join("memory.max")), "209715200");
    } else {
        assert_eq!(read(&memory.join("memory.limit_in_bytes")), "209715200");
        let memsw = memory.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            assert_eq!(read(&memsw), "419430400");
        }
        // The running process was moved into the new cpuset directory.
        let procs = read(&cpuset.join("cgroup.procs"));
        assert!(procs.lines().any(|l| l == pid.to_string()), "{procs}");
    }
    let allowed = read(Path::new(&format!("/proc/{pid}/status")));
    assert!(
        allowed.lines().any(|l| l == "Cpus_allowed_list:\t0"),
        "{allowed}"
    );
    // Lower again: memory first this time.
    let lower = Resources {
        memory: Some(32 << 20),
        memory_swap: Some(48 << 20),
        ..Resources::default()
    };
    cgroup.update(&lower).unwrap();
    let limit = if layout.is_v2() {
        "memory.max"
    } else {
        "memory.limit_in_bytes"
    };
    assert_eq!(read(&memory.join(limit)), "33554432");
    assert!(cgroup.kill_all(Duration::from_secs(5)));
    let _ = child.wait();
    assert!(cgroup.remove());
    for dir in parent.dirs() {
        let leftover = dir.join("c1");
        assert!(!leftover.exists(), "{} left behind", leftover.display());
    }
}
