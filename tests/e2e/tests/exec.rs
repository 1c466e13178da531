//! `exec` through the docker CLI and berth: output, exit codes, stdin, terminals, users,
//! the container's privileges, Docker's refusals, inspect (also after a berthd restart) and
//! clients that go away.

use berth_e2e::api;
use berth_e2e::{text, wait_for, wait_for_within, Daemon};

#[test]
fn exec_runs_in_the_container_with_dockers_exit_codes() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "-e",
        "FROM_RUN=1",
        "busybox",
        "sleep",
        "600",
    ]);
    for which in ["docker", "berth"] {
        let run = |args: &[&str]| d.cli(which, args);
        assert_eq!(
            run(&["exec", "c1", "echo", "hi"]),
            (0, "hi\n".into(), "".into()),
            "{which}"
        );
        assert_eq!(run(&["exec", "c1", "sh", "-c", "exit 3"]).0, 3, "{which}");
        let (code, out, err) = run(&["exec", "c1", "sh", "-c", "echo out; echo err >&2"]);
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "out\n", "err\n"),
            "{which}"
        );
        // As Docker's, the error comes in the stream (on stdout), the code from inspect.
        let (code, out, err) = run(&["exec", "c1", "nosuch"]);
        assert_eq!(code, 127, "{which}: {err}");
        assert!(out.contains("executable file not found"), "{which}: {out}");
        let (code, _, err) = run(&["exec", "c1", "/etc/passwd"]);
        assert_eq!(code, 126, "{which}: {err}");
        // The container's environment plus -e; -w; -u resolved in the container's passwd.
        let (_, out, _) = run(&[
            "exec",
            "-e",
            "EXTRA=2",
            "-w",
            "/tmp",
            "c1",
            "sh",
            "-c",
            "echo $FROM_RUN $EXTRA $(pwd)",
        ]);
        assert_eq!(out, "1 2 /tmp\n", "{which}");
        // A name alone (not set where the client runs) unsets it, as Docker's does.
        let (code, out, err) = run(&["exec", "-e", "FROM_RUN", "c1", "env"]);
        assert_eq!(code, 0, "{which}: {err}");
        assert!(
            out.lines().all(|l| !l.starts_with("FROM_RUN")),
            "{which}: {out}"
        );
        let (_, out, _) = run(&["exec", "-u", "nobody", "c1", "id", "-u"]);
        assert_eq!(out, "65534\n", "{which}");
        let input = if which == "docker" {
            d.docker_with_input(&["exec", "-i", "c1", "wc", "-l"], b"a\nb\nc\n")
        } else {
            d.berth_with_input(&["exec", "-i", "c1", "wc", "-l"], b"a\nb\nc\n")
        };
        assert_eq!(text(&input.stdout).trim(), "3", "{which}");
        // -d: runs on after the command returns.
        assert_eq!(
            run(&[
                "exec",
                "-d",
                "c1",
                "sh",
                "-c",
                &format!("echo {which} > /tmp/detached; sleep 600")
            ])
            .0,
            0
        );
        wait_for("the detached exec", || {
            run(&["exec", "c1", "cat", "/tmp/detached"]).1 == format!("{which}\n")
        });
    }
    // ExecIDs lists the live ones (the two detached sleeps).
    let ids = d.ok(&["inspect", "-f", "{{len .ExecIDs}}", "c1"]);
    assert_eq!(ids.trim(), "2");
}

/// An exec gets the container's capabilities, seccomp filter, namespaces and cgroup.
#[test]
fn exec_has_the_containers_privileges() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "nocaps",
        "--cap-drop",
        "ALL",
        "busybox",
        "sleep",
        "600",
    ]);
    let caps = |pid: &str| {
        d.ok(&[
            "exec",
            "nocaps",
            "grep",
            "-E",
            "^(CapEff|CapBnd|Seccomp):",
            &format!("/proc/{pid}/status"),
        ])
    };
    let init = caps("1");
    assert_eq!(caps("self"), init);
    assert!(init.contains("CapEff:\t0000000000000000"), "{init}");
    assert!(init.contains("Seccomp:\t2"), "{init}");
    // --privileged gives the exec every capability berthd has, not the container.
    let privileged = d.ok(&[
        "exec",
        "--privileged",
        "nocaps",
        "grep",
        "^CapEff:",
        "/proc/self/status",
    ]);
    assert_ne!(privileged.trim(), "CapEff:\t0000000000000000");
    // Same pid namespace (the init is 1) and cgroup.
    assert_eq!(
        d.ok(&["exec", "nocaps", "cat", "/proc/self/cgroup"]),
        d.ok(&["exec", "nocaps", "cat", "/proc/1/cgroup"])
    );
}

/// `exec -it` through a real terminal, docker's and berth's: input, the size at start and
/// the exit code.
#[test]
fn exec_it_gives_a_terminal() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "t1", "busybox", "sleep", "600"]);
    for which in ["docker", "berth"] {
        let mut t = d.terminal(&format!(
            "stty rows 21 cols 61; {which} exec -it t1 sh; echo rc=$?; sleep 600"
        ));
        t.expect("# ");
        t.send(b"tty; stty size\r");
        t.expect("/dev/pts/");
        t.expect("21 61");
        t.send(b"exit 5\r");
        t.expect("rc=5");
    }
}

/// An `exec -it` the client detaches from (ctrl-p ctrl-q) runs on: its terminal is read and
/// thrown away, as Docker's, instead of filling up and blocking the process. So is the
/// terminal of an exec attached to none of its output.
#[test]
fn an_exec_terminal_nobody_reads_does_not_block_the_process() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "t2", "busybox", "sleep", "600"]);
    for which in ["docker", "berth"] {
        let done = format!("/tmp/{which}-done");
        let mut t = d.terminal(&format!(
            "{which} exec -it t2 sh -c 'sleep 2; yes | head -c 2000000; touch {done}'; \
             echo rc=$?; sleep 600"
        ));
        wait_for("the exec to start", || {
            d.ok(&["top", "t2"]).contains("sleep 2")
        });
        t.send(b"\x10\x11");
        // (docker's CLI says "read escape sequence" and exits 1 after an exec's detach.)
        t.expect("rc=");
        drop(t);
        wait_for("the detached exec to finish its output", || {
            d.outcome(&["exec", "t2", "test", "-e", &done]).0 == 0
        });
    }
    let created = api::curl(
        &d,
        "POST",
        "/containers/t2/exec",
        Some(r#"{"Cmd":["sh","-c","yes | head -c 2000000; touch /tmp/none-done"],"Tty":true}"#),
    )
    .1;
    let id: serde_json::Value = serde_json::from_str(&created).unwrap();
    let id = id["Id"].as_str().unwrap().to_string();
    let (status, _) = api::curl(
        &d,
        "POST",
        &format!("/exec/{id}/start"),
        Some(r#"{"Detach":false,"Tty":true}"#),
    );
    assert!(status < 300, "{status}");
    wait_for("the unattached exec to finish its output", || {
        d.outcome(&["exec", "t2", "test", "-e", "/tmp/none-done"]).0 == 0
    });
}

/// Docker's refusals; inspect's fields; an exec's record after berthd is killed and started
/// again; clients killed mid-exec leave no descriptor behind and the container running.
#[test]
fn exec_refusals_inspect_restart_and_vanishing_clients() {
    let mut d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "r1", "busybox", "sleep", "600"]);
    d.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let (code, _, err) = d.outcome(&["exec", "stopped", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("is not running"), "{err}");
    d.ok(&["pause", "r1"]);
    let (_, _, err) = d.outcome(&["exec", "r1", "true"]);
    assert!(
        err.contains("is paused, unpause the container before exec"),
        "{err}"
    );
    d.ok(&["unpause", "r1"]);
    // Through the API: create, start detached, inspect.
    let curl = |d: &Daemon, method: &str, path: &str, body: &str| {
        api::curl(d, method, path, (!body.is_empty()).then_some(body)).1
    };
    let created = curl(
        &d,
        "POST",
        "/containers/r1/exec",
        r#"{"Cmd":["sh","-c","exit 7"],"AttachStdout":true}"#,
    );
    let id: serde_json::Value = serde_json::from_str(&created).unwrap();
    let id = id["Id"].as_str().unwrap().to_string();
    let bad = curl(
        &d,
        "POST",
        "/containers/r1/exec",
        r#"{"Cmd":["true"],"Bogus":1}"#,
    );
    assert!(bad.contains("unknown field `Bogus`"), "{bad}");
    let empty_cmd = curl(&d, "POST", "/containers/r1/exec", r#"{"Cmd":[]}"#);
    assert!(
        empty_cmd.contains("No exec command specified"),
        "{empty_cmd}"
    );
    curl(
        &d,
        "POST",
        &format!("/exec/{id}/start"),
        r#"{"Detach":true}"#,
    );
    let inspect = |d: &Daemon, id: &str| -> serde_json::Value {
        serde_json::from_str(&curl(d, "GET", &format!("/exec/{id}/json"), "")).unwrap()
    };
    wait_for("the exec to end", || inspect(&d, &id)["Running"] == false);
    let i = inspect(&d, &id);
    assert_eq!(i["ExitCode"], 7, "{i}");
    assert_eq!(i["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(
        i["ProcessConfig"]["arguments"],
        serde_json::json!(["-c", "exit 7"])
    );
    assert!(i["Pid"].as_i64().unwrap() > 0);
    // Docker's exec events, with the command in the action and the exit code.
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let events = d.ok(&[
        "events", "--since", "1", "--until", &until, "--filter", "container=r1", "--format",
        "{{.Action}}|{{index .Actor.Attributes \"execID\"}}|{{index .Actor.Attributes \"exitCode\"}}",
    ]);
    for want in [
        format!("exec_create: sh -c exit 7|{id}|"),
        format!("exec_start: sh -c exit 7|{id}|"),
        format!("exec_die|{id}|7"),
    ] {
        assert!(events.lines().any(|l| l == want), "{want} in:\n{events}");
    }
    let again = curl(
        &d,
        "POST",
        &format!("/exec/{id}/start"),
        r#"{"Detach":true}"#,
    );
    assert!(again.contains("has already run"), "{again}");
    let missing = curl(&d, "GET", "/exec/nosuch/json", "");
    assert!(
        missing.contains("No such exec instance: nosuch"),
        "{missing}"
    );
    // A long one, then berthd is killed and started again: both records are back.
    d.ok(&["exec", "-d", "r1", "sleep", "600"]);
    let live = d
        .ok(&["inspect", "-f", "{{index .ExecIDs 0}}", "r1"])
        .trim()
        .to_string();
    d.kill9();
    d.spawn();
    assert_eq!(inspect(&d, &id)["ExitCode"], 7);
    let l = inspect(&d, &live);
    assert_eq!(l["Running"], true, "{l}");
    assert_eq!(l["ProcessConfig"]["entrypoint"], "sleep");
    // Clients killed mid-exec: berthd and the shim keep no descriptor of theirs, and the
    // process, whose output has nowhere to go, ends (SIGPIPE) instead of lingering.
    let shim = std::fs::read_to_string(
        d.exec_root()
            .join("containers")
            .join(d.ok(&["inspect", "-f", "{{.Id}}", "r1"]).trim())
            .join("pid"),
    )
    .unwrap();
    let shim_pid = std::process::Command::new("ps")
        .args(["-o", "ppid=", "-p", shim.trim()])
        .output()
        .unwrap();
    let shim_pid = text(&shim_pid.stdout).trim().to_string();
    let fds = |pid: &str| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    let (berthd_before, shim_before) = (fds(&d.pid().to_string()), fds(&shim_pid));
    for _ in 0..5 {
        let mut child = std::process::Command::new("docker")
            .args([
                "exec",
                "r1",
                "sh",
                "-c",
                "echo started; while echo tick; do sleep 0.1; done",
            ])
            .env("DOCKER_HOST", d.host())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        use std::io::BufRead;
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "started\n");
        drop(child.stdout.take());
        child.kill().unwrap();
        child.wait().unwrap();
    }
    wait_for("the exec'd loops to end", || {
        !d.ok(&["top", "r1"]).contains("tick")
    });
    wait_for("berthd's descriptors to settle", || {
        fds(&d.pid().to_string()) <= berthd_before
    });
    wait_for("the shim's descriptors to settle", || {
        fds(&shim_pid) <= shim_before
    });
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "r1"]).trim(),
        "true"
    );
}

/// More long-running execs than berthd has blocking threads (256): each exec's exit is
/// awaited without holding one, so berthd still starts, execs and stops.
#[test]
fn many_long_execs_leave_berthd_responsive() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "many", "busybox", "sleep", "600"]);
    let curl = |path: &str, body: &str| api::curl(&d, "POST", path, Some(body)).1;
    for _ in 0..300 {
        let created = curl("/containers/many/exec", r#"{"Cmd":["sleep","600"]}"#);
        let id: serde_json::Value = serde_json::from_str(&created).expect(&created);
        let id = id["Id"].as_str().unwrap().to_string();
        let started = curl(&format!("/exec/{id}/start"), r#"{"Detach":true}"#);
        assert!(started.is_empty(), "{started}");
    }
    // Each command must finish (a hung berthd never answers).
    let within = |args: &[&str]| {
        let mut child = std::process::Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", d.host())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_within(
            &format!("docker {args:?} to finish (berthd answers)"),
            std::time::Duration::from_secs(60),
            || child.try_wait().unwrap().is_some(),
        );
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "docker {args:?}: {out:?}");
        text(&out.stdout)
    };
    assert_eq!(within(&["exec", "many", "echo", "still"]), "still\n");
    assert_eq!(
        within(&["run", "--rm", "busybox", "echo", "fine"]),
        "fine\n"
    );
    within(&["rm", "-f", "many"]);
}

/// `GET /exec/{id}/json` through curl.
fn exec_inspect(d: &Daemon, id: &str) -> serde_json::Value {
    let sock = d.host().trim_start_matches("unix://").to_string();
    let out = std::process::Command::new("curl")
        .args(["-s", "--unix-socket", &sock])
        .arg(format!("http://berth/exec/{id}/json"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The one exec a container lists in `ExecIDs` (its only live one).
fn only_exec(d: &Daemon, container: &str) -> String {
    let ids = d.ok(&["inspect", "-f", "{{json .ExecIDs}}", container]);
    let ids: Vec<String> = serde_json::from_str(ids.trim()).unwrap_or_default();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

/// The shim of a running container: the parent of its init.
fn shim_of(d: &Daemon, container: &str) -> String {
    let init = d.ok(&["inspect", "-f", "{{.State.Pid}}", container]);
    let out = std::process::Command::new("ps")
        .args(["-o", "ppid=", "-p", init.trim()])
        .output()
        .unwrap();
    text(&out.stdout).trim().to_string()
}

#[test]
fn a_detached_exec_that_ends_after_a_berthd_restart_shows_its_exit() {
    let mut d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "w1", "busybox", "sleep", "600"]);
    d.ok(&[
        "exec",
        "-d",
        "w1",
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; exit 7",
    ]);
    let id = only_exec(&d, "w1");
    assert_eq!(exec_inspect(&d, &id)["Running"], true);
    d.kill9();
    d.spawn();
    let i = exec_inspect(&d, &id);
    assert_eq!(i["Running"], true, "{i}");
    let pid = i["Pid"].as_i64().unwrap();
    assert!(pid > 0, "{i}");
    // It ends now, awaited by no task of the berthd that started it.
    d.ok(&["exec", "w1", "touch", "/tmp/go"]);
    wait_for("the exec to show its end", || {
        exec_inspect(&d, &id)["Running"] == false
    });
    let i = exec_inspect(&d, &id);
    assert_eq!(i["ExitCode"], 7, "{i}");
    assert_eq!(i["Pid"], pid, "{i}");
    let ids = d.ok(&["inspect", "-f", "{{json .ExecIDs}}", "w1"]);
    assert_eq!(ids.trim(), "null", "an ended exec is not listed");
    d.ok(&["rm", "-f", "w1"]);
}

#[test]
fn a_detached_exec_with_a_terminal_is_not_blocked_by_its_output() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "t1", "busybox", "sleep", "600"]);
    // The pty masters the shim and berthd hold.
    let shim = shim_of(&d, "t1");
    let berthd = d.pid().to_string();
    let terminals = || {
        [&shim, &berthd]
            .iter()
            .flat_map(|pid| std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap())
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|l| l.to_string_lossy().contains("ptmx"))
            .count()
    };
    assert_eq!(terminals(), 0);
    d.ok(&[
        "exec",
        "-dt",
        "t1",
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; \
         yes | head -c 1000000; echo done > /tmp/done",
    ]);
    let id = only_exec(&d, "t1");
    d.ok(&["exec", "t1", "touch", "/tmp/go"]);
    wait_for("the detached exec to end", || {
        exec_inspect(&d, &id)["Running"] == false
    });
    let i = exec_inspect(&d, &id);
    assert_eq!(i["ExitCode"], 0, "{i}");
    assert_eq!(d.ok(&["exec", "t1", "cat", "/tmp/done"]), "done\n");
    assert_eq!(terminals(), 0, "the terminal is closed with the exec");
    d.ok(&["rm", "-f", "t1"]);
}

#[test]
fn large_exec_configs_run_and_too_large_ones_are_refused_at_create() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "l1", "busybox", "sleep", "600"]);
    let dir = tempfile::tempdir().unwrap();
    let env_file = |name: &str, vars: usize| {
        let path = dir.path().join(name);
        let lines: Vec<String> = (0..vars)
            .map(|i| format!("BIG{i}={}", "x".repeat(60_000)))
            .collect();
        std::fs::write(&path, lines.join("\n")).unwrap();
        path.to_string_lossy().into_owned()
    };
    // 180 KB of environment (lines under the 64 KiB docker's env-file reader takes): over
    // the 64 KiB that used to be dropped on the way to the shim.
    let some = env_file("some", 3);
    let (code, out, err) = d.outcome(&[
        "exec",
        "--env-file",
        &some,
        "l1",
        "sh",
        "-c",
        "echo ${#BIG0} ${#BIG2}",
    ]);
    assert_eq!((code, out.as_str()), (0, "60000 60000\n"), "{err}");
    // 1.2 MB: refused at create with the bound, nothing started.
    let too_much = env_file("too-much", 20);
    let (code, out, err) = d.outcome(&["exec", "--env-file", &too_much, "l1", "true"]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("exec config too large") && err.contains("the limit is 1048576"),
        "{err}"
    );
    let ids = d.ok(&["inspect", "-f", "{{json .ExecIDs}}", "l1"]);
    assert_eq!(ids.trim(), "null");
    d.ok(&["rm", "-f", "l1"]);
}

#[test]
fn exec_as_another_user_keeps_group_add_and_an_explicit_home() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "u1",
        "--group-add",
        "1234",
        "-e",
        "HOME=/x",
        "busybox",
        "sleep",
        "600",
    ]);
    for which in ["docker", "berth"] {
        let (code, out, err) = d.cli(which, &["exec", "-u", "nobody", "u1", "id"]);
        assert_eq!(code, 0, "{which}: {err}");
        assert!(
            out.contains("groups=") && out.contains("1234"),
            "{which}: {out}"
        );
        assert!(out.starts_with("uid=65534(nobody)"), "{which}: {out}");
        let (_, out, _) = d.cli(
            which,
            &["exec", "-u", "nobody", "u1", "sh", "-c", "echo $HOME"],
        );
        assert_eq!(out, "/x\n", "{which}");
        // The exec's own HOME still wins.
        let (_, out, _) = d.cli(
            which,
            &[
                "exec",
                "-u",
                "nobody",
                "-e",
                "HOME=/y",
                "u1",
                "sh",
                "-c",
                "echo $HOME",
            ],
        );
        assert_eq!(out, "/y\n", "{which}");
    }
    // Without -e HOME the user's passwd entry gives it, as before.
    d.ok(&["run", "-d", "--name", "u2", "busybox", "sleep", "600"]);
    assert_eq!(
        d.ok(&["exec", "-u", "nobody", "u2", "sh", "-c", "echo $HOME"]),
        "/nonexistent\n"
    );
    d.ok(&["rm", "-f", "u1", "u2"]);
}
