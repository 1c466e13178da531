//! Interactive containers: piped stdin (`-i`), terminals (`-it`) driven through a real
//! pseudo-terminal, resize, detach and attach, through the docker CLI and berth.

use berth_e2e::api::{curl, curl_bytes, frame, upgrade, STDOUT};
use berth_e2e::{text, wait_for, Daemon};

/// The unix sockets process `pid` holds, as their `/proc/PID/fd` links (`socket:[N]`).
fn sockets_of(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|l| l.to_string_lossy().into_owned())
                .filter(|l| l.starts_with("socket:["))
                .collect()
        })
        .unwrap_or_default()
}

/// The peers of the unix sockets `mine` that berthd holds: berthd's ends of a client's
/// connections (`ss` pairs each unix socket with its peer's inode). Watching these, not a
/// count of berthd's descriptors, which the spare shim and network namespace berthd makes
/// after a start change at any time.
fn berthd_ends(d: &Daemon, mine: &[String]) -> Vec<String> {
    let out = std::process::Command::new("ss")
        .arg("-xnH")
        .output()
        .unwrap();
    let table = text(&out.stdout);
    let theirs = sockets_of(d.pid());
    table
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.len() >= 8 && mine.contains(&format!("socket:[{}]", f[5])))
        .map(|f| format!("socket:[{}]", f[7]))
        .filter(|peer| theirs.contains(peer))
        .collect()
}

/// How many of `ends` berthd still holds.
fn held(d: &Daemon, ends: &[String]) -> usize {
    let theirs = sockets_of(d.pid());
    ends.iter().filter(|e| theirs.contains(e)).count()
}

/// Our own socket `s`, as its fd link.
fn socket_link(s: &std::os::unix::net::UnixStream) -> String {
    use std::os::fd::AsRawFd;
    std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd()))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// `printf 'a\nb\n' | docker run -i busybox wc -l` prints 2; stdin EOF ends `cat`; without
/// a terminal stdout and stderr stay apart; the log has every line once.
#[test]
fn piped_stdin_reaches_the_container_and_its_eof_ends_it() {
    let d = Daemon::start();
    d.busybox();
    for cli in ["docker", "berth"] {
        let run = |args: &[&str], input: &[u8]| {
            if cli == "docker" {
                d.docker_with_input(args, input)
            } else {
                d.berth_with_input(args, input)
            }
        };
        let out = run(&["run", "-i", "--rm", "busybox", "wc", "-l"], b"a\nb\n");
        assert_eq!(
            text(&out.stdout).trim(),
            "2",
            "{cli}: {}",
            text(&out.stderr)
        );
        assert!(out.status.success());
        let out = run(&["run", "-i", "--rm", "busybox", "cat"], b"hi\n");
        assert_eq!(text(&out.stdout), "hi\n", "{cli}: {}", text(&out.stderr));
        let name = format!("apart-{cli}");
        let out = run(
            &[
                "run",
                "-i",
                "--name",
                &name,
                "busybox",
                "sh",
                "-c",
                "cat; echo to-stderr >&2; exit 3",
            ],
            b"l1\nl2\n",
        );
        assert_eq!(out.status.code(), Some(3), "{cli}");
        assert_eq!(text(&out.stdout), "l1\nl2\n", "{cli}");
        assert_eq!(text(&out.stderr), "to-stderr\n", "{cli}");
        let logs = d.docker(&["logs", &name]);
        assert_eq!(text(&logs.stdout), "l1\nl2\n");
        assert_eq!(text(&logs.stderr), "to-stderr\n");
    }
    // Without -i the container's stdin is empty, whatever the client has.
    let out = d.docker_with_input(&["run", "--rm", "busybox", "wc", "-c"], b"ignored\n");
    assert_eq!(text(&out.stdout).trim(), "0");
}

/// `docker run -it`: type a command and see its output, the terminal's size at start and
/// after a resize (SIGWINCH on the client's terminal), detach with ctrl-p ctrl-q (the
/// container keeps running), `docker attach` gets it back, and the client's terminal
/// settings are restored.
#[test]
fn run_it_types_resizes_detaches_and_reattaches() {
    let d = Daemon::start();
    d.busybox();
    let dir = tempfile::tempdir().unwrap();
    let p = |f: &str| dir.path().join(f).display().to_string();
    let mut t = d.terminal(&format!(
        "stty rows 33 cols 77; tty > {}; stty -g > {}; docker run -it --name it1 busybox sh; \
         echo rc=$?; stty -g > {}; sleep 600",
        p("tty"),
        p("before"),
        p("after")
    ));
    t.expect("/ # ");
    t.send(b"echo hello-$((40+2))\r");
    t.expect("hello-42");
    t.send(b"stty size\r");
    t.expect("33 77");
    // The client's terminal changes size: the docker CLI gets SIGWINCH and resizes.
    let pts = std::fs::read_to_string(p("tty")).unwrap();
    let status = std::process::Command::new("stty")
        .args(["-F", pts.trim(), "rows", "50", "cols", "100"])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("the container's terminal to follow the resize", || {
        t.send(b"stty size\r");
        t.shows_within("50 100", std::time::Duration::from_millis(500))
    });
    // Detach: the client ends with 0, the container runs on.
    t.send(b"\x10\x11");
    t.expect("rc=0");
    wait_for("the settings file", || {
        std::fs::metadata(p("after")).is_ok_and(|m| m.len() > 0)
    });
    assert_eq!(
        std::fs::read_to_string(p("before")).unwrap(),
        std::fs::read_to_string(p("after")).unwrap(),
        "the client's terminal settings are restored"
    );
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "it1"]).trim(),
        "true"
    );
    drop(t);
    let mut t = d.terminal("docker attach it1; echo rc=$?; sleep 600");
    t.send(b"echo back-$((1+2))\r");
    t.expect("back-3");
    t.send(b"exit 4\r");
    t.expect("rc=4");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.ExitCode}}", "it1"])
            .trim(),
        "4"
    );
    // Everything the terminal showed went to the log once, as stdout.
    let logs = d.docker(&["logs", "it1"]);
    let shown = text(&logs.stdout);
    // (The echo of what was typed shows `$((40+2))`, the output `42`.)
    assert_eq!(shown.matches("hello-42").count(), 1, "{shown}");
    assert_eq!(shown.matches("back-3").count(), 1, "{shown}");
}

/// Bad input: an unknown detach sequence gets Docker's message; resize of a container
/// without a terminal is refused; a client that goes away mid-attach leaves the container
/// running and no descriptor behind in berthd.
#[test]
fn attach_refuses_bad_input_and_survives_a_vanishing_client() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "-i", "--name", "cat1", "busybox", "cat"]);
    // The docker CLI reports only the status of a refused upgrade; the body has Docker's words.
    let (code, _, err) = d.outcome(&["attach", "--detach-keys", "ctrl-1", "cat1"]);
    assert_ne!(code, 0);
    assert!(err.contains("received 400"), "{err}");
    let post = |path: &str| curl(&d, "POST", path, None);
    let (code, reply) = post("/containers/cat1/attach?stream=1&stdout=1&detachKeys=ctrl-1");
    assert_eq!(code, 400, "{reply}");
    assert!(
        reply.contains("Invalid detach keys (ctrl-1) provided"),
        "{reply}"
    );
    // The docker CLI resizes only terminals; the API refuses the others.
    let (code, reply) = post("/containers/cat1/resize?h=10&w=10");
    assert_eq!(code, 400, "{reply}");
    assert!(reply.contains("not created with -t"), "{reply}");
    let mut ends = Vec::new();
    for _ in 0..5 {
        // A client that attaches and is killed mid-stream.
        let mut child = std::process::Command::new("docker")
            .args(["attach", "--no-stdin", "cat1"])
            .env("DOCKER_HOST", d.host())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut end = Vec::new();
        wait_for("the attach to be served", || {
            end = berthd_ends(&d, &sockets_of(child.id()));
            !end.is_empty()
        });
        ends.extend(end);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    wait_for("berthd to let go of the killed clients", || {
        held(&d, &ends) == 0
    });
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "cat1"])
            .trim(),
        "true"
    );
}

/// `create -it` then `start -ai` through a terminal; `run` proxies a signal to the container
/// (no terminal); `attach?logs=1&stream=0` returns the log so far and ends at once.
#[test]
fn start_ai_sig_proxy_and_logs_only_attach() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["create", "-it", "--name", "later", "busybox", "sh"]);
    let mut t = d.terminal("docker start -ai later; echo rc=$?; sleep 600");
    t.expect("# ");
    t.send(b"echo started-$((3*3))\r");
    t.expect("started-9");
    t.send(b"exit 6\r");
    t.expect("rc=6");
    drop(t);
    // sig-proxy: SIGTERM to the client reaches the container's process.
    let mut child = std::process::Command::new("docker")
        .args([
            "run",
            "--name",
            "trapper",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 0' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .env("DOCKER_HOST", d.host())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use std::io::BufRead;
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "got-term\n");
    assert!(child.wait().unwrap().success());
    // logs=1, stream=0: the log so far, then the end (not a wait for the exit).
    d.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 600",
    ]);
    wait_for("the first line", || d.ok(&["logs", "chatty"]) == "one\n");
    let (code, out) = curl_bytes(
        &d,
        "POST",
        "/containers/chatty/attach?logs=1&stream=0&stdout=1",
        None,
    );
    assert_eq!(code, 200, "{}", text(&out));
    assert_eq!(out, frame(STDOUT, b"one\n"));
}

/// The same session through berth's own CLI: `run -it` with `--detach-keys`, `attach` back
/// (berth's CLI spots the keys itself, as docker's does, and exits 0 without waiting).
#[test]
fn berth_run_it_detaches_with_its_keys_and_attach_takes_it_back() {
    let d = Daemon::start();
    d.busybox();
    let mut t = d.terminal(
        "stty rows 24 cols 70; berth run -it --detach-keys ctrl-x,x --name b1 busybox sh; \
         echo rc=$?; sleep 600",
    );
    t.expect("# ");
    t.send(b"stty size; echo typed-$((5+5))\r");
    t.expect("24 70");
    t.expect("typed-10");
    // ctrl-p ctrl-q is not the sequence here: it reaches the shell (and does nothing).
    t.send(b"\x10\x11\x18x");
    t.expect("rc=0");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Running}}", "b1"]).trim(),
        "true"
    );
    drop(t);
    let mut t = d.terminal("berth attach b1; echo rc=$?; sleep 600");
    t.send(b"echo again-$((6+6))\r");
    t.expect("again-12");
    t.send(b"exit 9\r");
    t.expect("rc=9");
    let out = d.berth(&["run", "-i", "--detach-keys", "ctrl-1", "busybox", "true"]);
    assert_eq!(out.status.code(), Some(125));
    let err = text(&out.stderr);
    assert!(
        err.contains("Invalid detach keys (ctrl-1) provided"),
        "{err}"
    );
    // -it without a terminal on stdin: docker's refusal, before anything is created.
    let before = d.ok(&["ps", "-aq"]);
    for cli in ["docker", "berth"] {
        let out = if cli == "docker" {
            d.docker(&["run", "-it", "busybox", "true"])
        } else {
            d.berth(&["run", "-it", "busybox", "true"])
        };
        assert_eq!(out.status.code(), Some(1), "{cli}");
        assert!(
            text(&out.stderr).contains("the input device is not a TTY"),
            "{cli}"
        );
    }
    assert_eq!(d.ok(&["ps", "-aq"]), before);
}

/// Clients that attach to a container that is not running wait for its start; those that
/// leave meanwhile let go of their connection at once (berthd used to hold each until the
/// next start, one descriptor per client), while one that only half-closed still gets the
/// output when the container starts.
#[test]
fn clients_that_stop_waiting_for_a_start_are_let_go() {
    use std::io::Read;
    let d = Daemon::start();
    d.busybox();
    d.ok(&["create", "--name", "later", "busybox", "echo", "started"]);
    let hijack = || {
        upgrade(
            &d,
            "/containers/later/attach?stream=1&stdout=1&stderr=1",
            "",
        )
    };
    let mut ends = Vec::new();
    for _ in 0..20 {
        let s = hijack();
        let end = berthd_ends(&d, &[socket_link(&s)]);
        assert_eq!(end.len(), 1, "berthd holds the client's connection");
        ends.extend(end);
    }
    wait_for("berthd to let go of the clients that left", || {
        held(&d, &ends) == 0
    });
    let mut stays = hijack();
    stays.shutdown(std::net::Shutdown::Write).unwrap();
    d.ok(&["start", "later"]);
    let mut out = Vec::new();
    stays.read_to_end(&mut out).unwrap();
    assert_eq!(out, frame(STDOUT, b"started\n"));
}

/// A client that sends more input than a process that never reads its stdin takes, then
/// goes away, is let go (attach and exec): berthd used to keep its connection, the bridge
/// and the stdin descriptor until the process printed something or ended.
#[test]
fn clients_gone_while_their_input_is_stuck_are_let_go() {
    use std::io::Write;
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run", "-d", "-i", "--name", "deaf", "busybox", "sleep", "600",
    ]);
    let hijack = |path: &str, body: &str| upgrade(&d, path, body);
    // More than a pipe holds: the bridge's write into the process's stdin waits for good.
    let stuff = |mut s: std::os::unix::net::UnixStream| {
        s.set_nonblocking(true).unwrap();
        let chunk = vec![b'x'; 64 * 1024];
        let mut sent = 0;
        while sent < 512 * 1024 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        assert!(sent > 64 * 1024, "only {sent} bytes taken");
    };
    let mut ends = Vec::new();
    for _ in 0..5 {
        let s = hijack(
            "/containers/deaf/attach?stream=1&stdin=1&stdout=1&stderr=1",
            "",
        );
        let end = berthd_ends(&d, &[socket_link(&s)]);
        assert_eq!(end.len(), 1, "berthd holds the client's connection");
        ends.extend(end);
        stuff(s);
    }
    wait_for("berthd to let go of the attached clients", || {
        held(&d, &ends) == 0
    });
    let api = |path: &str, body: &str| curl(&d, "POST", path, Some(body)).1;
    let mut ends = Vec::new();
    for _ in 0..5 {
        let created = api(
            "/containers/deaf/exec",
            r#"{"Cmd":["sleep","600"],"AttachStdin":true,"AttachStdout":true}"#,
        );
        let id: serde_json::Value = serde_json::from_str(&created).expect(&created);
        let id = id["Id"].as_str().unwrap().to_string();
        let s = hijack(&format!("/exec/{id}/start"), r#"{"Detach":false}"#);
        ends.extend(berthd_ends(&d, &[socket_link(&s)]));
        stuff(s);
    }
    // (What stays is each running exec's connection to the shim, its exit comes on.)
    assert_eq!(ends.len(), 5, "berthd holds each exec client's connection");
    wait_for("berthd to let go of the exec clients", || {
        held(&d, &ends) == 0
    });
}

/// Attach to a paused or a restarting container is refused: the API answers Docker's 409
/// (naming the container as the client did), and both CLIs print the docker CLI's words
/// and exit non-zero. berthd used to attach to a paused container (the stream hung until
/// it was unpaused) and made a restarting one's client wait for its next start.
#[test]
fn attach_to_a_paused_or_restarting_container_is_refused() {
    let d = Daemon::start();
    d.busybox();
    let sock = d.host().trim_start_matches("unix://").to_string();
    // A refused attach answers at once; one that is let through streams until `-m`.
    let post = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["-s", "-m", "5", "-w", "\n%{http_code}", "--unix-socket"])
            .args([&sock, "-X", "POST"])
            .arg(format!("http://berth{path}"))
            .output()
            .unwrap();
        text(&out.stdout)
    };
    let refused = |name: &str, cli_words: &str, api_words: &str| {
        let (code, _, err) = d.outcome(&["attach", name]);
        assert_ne!(code, 0, "docker attach {name}");
        assert!(err.contains(cli_words), "docker: {err}");
        let out = d.berth(&["attach", name]);
        assert_ne!(out.status.code(), Some(0), "berth attach {name}");
        assert!(
            text(&out.stderr).contains(cli_words),
            "berth: {}",
            text(&out.stderr)
        );
        let reply = post(&format!("/containers/{name}/attach?stream=1&stdout=1"));
        assert!(reply.ends_with("\n409"), "{reply}");
        assert!(reply.contains(api_words), "{reply}");
    };

    d.ok(&["run", "-d", "-i", "--name", "frozen", "busybox", "cat"]);
    d.ok(&["pause", "frozen"]);
    refused(
        "frozen",
        "You cannot attach to a paused container, unpause it first",
        "container frozen is paused, unpause the container before attach",
    );
    d.ok(&["unpause", "frozen"]);
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "frozen"])
            .trim(),
        "running"
    );

    // After the fifth exit the wait before the next start is at least 1.6 s.
    d.ok(&[
        "run",
        "-d",
        "--restart",
        "always",
        "--name",
        "crashy",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]);
    wait_for("crashy to restart a fifth time", || {
        let s = d.ok(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.RestartCount}}",
            "crashy",
        ]);
        let mut f = s.split_whitespace();
        f.next() == Some("restarting") && f.next().and_then(|n| n.parse::<u32>().ok()) >= Some(5)
    });
    refused(
        "crashy",
        "You cannot attach to a restarting container, wait until it is running",
        "container crashy is restarting, wait until the container is running",
    );
    d.ok(&["rm", "-f", "crashy", "frozen"]);
}
