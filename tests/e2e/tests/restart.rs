//! The process model: killing berthd never stops a container or loses a log line.

use berth_e2e::{text, wait_for, Daemon};

#[test]
fn containers_survive_kill_9_of_berthd() {
    let mut d = Daemon::start();
    d.busybox();
    // A counter that prints one line every 50 ms, and a container that exits while
    // berthd is down.
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "counter",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 100000 ]; do echo line$i; i=$((i+1)); sleep 0.05; done",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "short",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 7",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let short = text(&out.stdout).trim().to_string();

    d.kill9();
    // "short" exits while berthd is down: its shim records the exit.
    let exit_file = d
        .exec_root()
        .join("containers")
        .join(&short)
        .join("exit.json");
    wait_for("short's exit while berthd is down", || exit_file.exists());
    d.spawn();

    let ps = d.docker(&["ps", "--format", "{{.Names}}"]);
    assert_eq!(text(&ps.stdout).trim(), "counter", "{}", text(&ps.stderr));
    let st = d.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.ExitCode}}",
        "short",
    ]);
    assert_eq!(text(&st.stdout).trim(), "exited 7");

    // logs -f after the restart continues; no line is missing or repeated.
    let mut follow = std::process::Command::new("docker")
        .args(["logs", "-f", "counter"])
        .env("DOCKER_HOST", d.host())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Following, past the lines written before the restart.
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut followed = String::new();
    while followed.lines().count() <= 20 {
        let n = std::io::BufRead::read_line(&mut out, &mut followed).unwrap();
        assert!(n > 0, "logs -f ended early: {followed:?}");
    }
    let wait = std::process::Command::new("docker")
        .args(["wait", "counter"])
        .env("DOCKER_HOST", d.host())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stop = d.docker(&["stop", "-t", "0", "counter"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let waited = wait.wait_with_output().unwrap();
    assert_eq!(text(&waited.stdout).trim(), "137");
    std::io::Read::read_to_string(&mut out, &mut followed).unwrap();
    assert!(follow.wait().unwrap().success());
    let lines: Vec<&str> = followed.lines().collect();
    assert!(lines.len() > 20, "too few lines: {}", lines.len());
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("line{i}"), "log lost or reordered a line");
    }
    let rm = d.docker(&["rm", "counter", "short"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
}

/// After berthd died: a `--rm` container that does not run is removed at restore (Docker
/// does the same), a running one is kept; a kept container whose rw layer directory was
/// lost (it is not forced to disk at create) gets an empty one again at start.
#[test]
fn restore_removes_stopped_rm_containers_and_remakes_a_lost_rw_layer() {
    let mut d = Daemon::start();
    d.busybox();
    for args in [
        &["create", "--rm", "--name", "rm-created", "busybox", "true"][..],
        &[
            "run",
            "-d",
            "--rm",
            "--name",
            "rm-running",
            "busybox",
            "sleep",
            "30",
        ][..],
        &[
            "create",
            "--name",
            "kept",
            "busybox",
            "sh",
            "-c",
            "ls /lost-marker; echo ran",
        ][..],
    ] {
        let out = d.docker(args);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    // A crash that lost the kept container's rw layer directory (snapshot index and all).
    let id = text(&d.docker(&["inspect", "--format", "{{.Id}}", "kept"]).stdout);
    let upper = text(
        &d.docker(&[
            "inspect",
            "--format",
            "{{.GraphDriver.Data.UpperDir}}",
            "kept",
        ])
        .stdout,
    );
    let snapshot = std::path::Path::new(upper.trim())
        .parent()
        .unwrap()
        .to_path_buf();
    d.kill9();
    std::fs::remove_dir_all(&snapshot).unwrap();
    d.spawn();
    let ps = d.docker(&["ps", "-a", "--format", "{{.Names}}"]);
    let mut names: Vec<String> = text(&ps.stdout).lines().map(String::from).collect();
    names.sort();
    assert_eq!(names, ["kept", "rm-running"], "{}", text(&ps.stderr));
    let out = d.docker(&["start", "-a", id.trim()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("ran"), "{}", text(&out.stdout));
    let _ = d.docker(&["rm", "-f", "rm-running"]);
}

/// A descriptor berthd inherited (a launching shell's pipe, a CI step's output) does not go
/// on to its shims: once berthd is gone, the pipe's reader sees EOF although containers
/// still run. (Held by every shim, it kept `berthd ... | tee` from ever ending.)
#[test]
fn descriptors_berthd_inherits_stay_out_of_its_shims() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    // The reader first (non-blocking), so that the shell's open for writing does not block.
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let mut d = Daemon::start_wrapped(
        &[
            "sh",
            "-c",
            "exec 7>\"$0\"; exec \"$@\"",
            fifo.to_str().unwrap(),
        ],
        &[],
    );
    d.busybox();
    let o = d.docker(&["run", "-d", "busybox", "sleep", "60"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let id = text(&o.stdout).trim().to_string();
    d.kill9();
    // EOF (a read of 0) once no writer is left; EAGAIN while one still holds it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut buf = [0u8; 16];
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "a process still holds berthd's inherited descriptor (the shim?)"
                );
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    // The container still runs, without berthd.
    let pid =
        std::fs::read_to_string(d.exec_root().join("containers").join(&id).join("pid")).unwrap();
    assert!(std::path::Path::new(&format!("/proc/{}", pid.trim())).exists());
    d.spawn();
    let o = d.docker(&["rm", "-f", &id]);
    assert!(o.status.success(), "{}", text(&o.stderr));
}

/// A berthd killed while it spawned a shim leaves its lock on the root held for a moment:
/// between fork and exec the child still has the (close-on-exec) descriptor. Under load an
/// immediate restart (systemd's, or berthd after a crash) was refused as "in use by another
/// berthd"; it now waits up to 2 s for the lock. Here the test holds the lock, as such a
/// child would, until the new berthd runs and a little longer.
#[test]
fn berthd_restarted_at_once_waits_for_a_lock_its_predecessor_left() {
    let mut d = Daemon::start();
    d.kill9();
    let root = std::fs::File::open(d.root()).unwrap();
    root.try_lock().expect("the killed berthd's lock is free");
    let marker = d.root().display().to_string();
    let releaser = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !berthd_runs_on(&marker) {
            assert!(std::time::Instant::now() < deadline, "berthd never ran");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        // The child's exec, slow on a loaded machine.
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(root);
    });
    d.spawn();
    releaser.join().unwrap();
    assert!(d.log().contains("released late"), "{}", d.log());
}

/// Whether a berthd process with `root` on its command line exists.
fn berthd_runs_on(root: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline);
        cmdline.contains("berthd") && cmdline.contains(root)
    })
}
