//! `start()` gives up on a shim that never reports, and leaves nothing running.
//!
//! A test binary of its own: it sets `BERTH_SHIM_START_TIMEOUT_MS` (read by `start()`) and
//! `BERTH_SHIM_TEST_HANG` (inherited by the shim, which then hangs with the container created)
//! for the whole process, which must not reach the containers of other tests. Needs root and
//! FAILS without it.

use std::os::unix::fs::symlink;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use berth_runtime::{start, ErrorKind};

mod common;
use common::require_root;

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

/// Pids of every process whose command line mentions `needle` (the shim, its detached child
/// and libcontainer's processes, which are forks of it that never exec'd).
fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z');
        if !zombie && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

#[test]
fn start_times_out_and_kills_the_shim_and_the_container() {
    hang_case(false);
}

/// The same with a warm shim (`warm_up`): no launcher to kill, only the detached shim, by the
/// pid it gave when it was made.
#[test]
fn start_times_out_and_kills_a_warm_shim_and_the_container() {
    hang_case(true);
}

fn hang_case(warm: bool) {
    require_root();
    let dir = tempfile::Builder::new().prefix("brd").tempdir().unwrap();
    let tree = common::busybox_tree(
        dir.path(),
        &["sleep"],
        "root:x:0:0:root:/root:/bin/sh\n",
        "",
    );
    let id = format!(
        "d{}-{}",
        std::process::id(),
        if warm { "warm" } else { "cold" }
    );
    let spec = common::spec(dir.path(), &tree, &id, "/berth-test", &["sleep", "100"]);
    let bundle = spec.bundle.clone();
    let timeout = Duration::from_secs(3);
    std::env::set_var(
        berth_runtime::SHIM_START_TIMEOUT_ENV,
        timeout.as_millis().to_string(),
    );
    std::env::set_var("BERTH_SHIM_TEST_HANG", "1");
    // A path of its own: warm shims are kept per binary path.
    let shim = dir.path().join("berth-shim");
    symlink(SHIM, &shim).unwrap();
    if warm {
        berth_runtime::warm_up(&shim).unwrap();
        assert_eq!(berth_runtime::warm_pids().len(), 1);
    }

    // Watch the container's pids cgroup while start() runs: the hang must come with a live
    // container init, so that its killing is part of what is tested.
    let procs = common::cgroup_dir("pids", &spec.cgroup_path).join("cgroup.procs");
    let done = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (done, seen) = (done.clone(), seen.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let n = std::fs::read_to_string(&procs)
                    .map(|t| t.lines().count())
                    .unwrap_or(0);
                seen.fetch_max(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    {
        let (spec, shim) = (spec.clone(), shim.clone());
        std::thread::spawn(move || {
            let _ = tx.send(start(&spec, &shim));
        });
    }
    let result = rx
        .recv_timeout(timeout + Duration::from_secs(15))
        .expect("start() did not return: it has no deadline");
    let elapsed = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();

    let err = result.expect_err("a hanging shim cannot have started the container");
    assert!(err.to_string().contains("did not report within"), "{err}");
    assert_eq!(err.to_string().contains("(warm, pid"), warm, "{err}");
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(elapsed >= timeout, "gave up early: {elapsed:?}");
    assert!(elapsed < timeout + Duration::from_secs(8), "{elapsed:?}");
    assert!(
        seen.load(Ordering::Relaxed) >= 1,
        "the shim hung before the container init existed"
    );
    // Nothing left: no process, cgroup, state, socket or mount.
    let needle = bundle.to_string_lossy().into_owned();
    let mut left = processes_mentioning(&needle);
    let t = Instant::now();
    while !left.is_empty() && t.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
        left = processes_mentioning(&needle);
    }
    assert!(left.is_empty(), "still running: {left:?}");
    for cg in common::all_cgroup_dirs(&spec.cgroup_path) {
        assert!(!cg.exists(), "stray cgroup {cg:?}");
    }
    assert!(!bundle.join("lc").join(&id).exists());
    assert!(!bundle.join("shim.sock").exists());
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mountinfo.contains(bundle.join("rootfs").to_str().unwrap()),
        "stray rootfs mount"
    );
}
