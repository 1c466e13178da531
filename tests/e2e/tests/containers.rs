//! Container flags and verbs through the real docker CLI.

use berth_e2e::{text, wait_for, Daemon};

fn run(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut full = vec!["run", "--rm"];
    full.extend_from_slice(args);
    let out = d.docker(&full);
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[test]
fn process_flags_reach_the_container() {
    let d = Daemon::start();
    d.busybox();
    let (code, out, err) = run(
        &d,
        &[
            "-e",
            "A=1",
            "-w",
            "/tmp",
            "--hostname",
            "h1",
            "busybox",
            "sh",
            "-c",
            "echo $A $(pwd) $(hostname) $HOSTNAME",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "1 /tmp h1 h1\n"), "{err}");

    let envf = d.dir.path().join("env");
    std::fs::write(&envf, "# comment\nB=two\n").unwrap();
    let (_, out, err) = run(
        &d,
        &[
            "--env-file",
            envf.to_str().unwrap(),
            "busybox",
            "sh",
            "-c",
            "echo $B",
        ],
    );
    assert_eq!(out, "two\n", "{err}");

    let (_, out, err) = run(&d, &["-u", "nobody", "busybox", "id"]);
    assert!(
        out.starts_with("uid=65534(nobody) gid=65534(nogroup)"),
        "{out} {err}"
    );
    let (_, out, _) = run(&d, &["-u", "1000:1000", "busybox", "id", "-u"]);
    assert_eq!(out, "1000\n");
    let (code, _, err) = run(&d, &["-u", "nosuch", "busybox", "true"]);
    assert_ne!(code, 0);
    assert!(err.contains("unable to find user nosuch"), "{err}");

    let (_, out, _) = run(
        &d,
        &["--entrypoint", "echo", "busybox", "from", "entrypoint"],
    );
    assert_eq!(out, "from entrypoint\n");
    // `--help` after the image belongs to the container, not to docker.
    let (_, out, _) = run(&d, &["busybox", "echo", "--help"]);
    assert_eq!(out, "--help\n");

    let (_, out, _) = run(&d, &["-l", "a=b", "busybox", "true"]);
    assert_eq!(out, "");
    let (_, out, _) = run(
        &d,
        &[
            "--ulimit",
            "nofile=512:1024",
            "busybox",
            "sh",
            "-c",
            "ulimit -n; ulimit -Hn",
        ],
    );
    assert_eq!(out, "512\n1024\n");
    let (code, _, err) = run(&d, &["--ulimit", "nofile=2048:1024", "busybox", "true"]);
    assert_eq!(code, 125, "{err}");
    assert!(err.contains("soft limit"), "{err}");
}

#[test]
fn isolation_and_limits_are_dockers() {
    let d = Daemon::start();
    d.busybox();
    // Read-only root.
    let (code, _, err) = run(&d, &["--read-only", "busybox", "touch", "/x"]);
    assert_ne!(code, 0);
    assert!(err.contains("Read-only file system"), "{err}");
    let (code, _, _) = run(&d, &["busybox", "touch", "/x"]);
    assert_eq!(code, 0);

    // Networks: none has only lo; host sees the host's interfaces.
    let (_, out, _) = run(
        &d,
        &["--network", "none", "busybox", "ls", "/sys/class/net"],
    );
    assert_eq!(out.split_whitespace().collect::<Vec<_>>(), ["lo"]);
    let host_ifaces = std::fs::read_dir("/sys/class/net").unwrap().count();
    let (_, out, _) = run(
        &d,
        &["--network", "host", "busybox", "ls", "/sys/class/net"],
    );
    assert_eq!(out.split_whitespace().count(), host_ifaces);

    // Capabilities: Docker's default set, --cap-drop ALL, --cap-add, --privileged.
    let cap = |extra: &[&str]| {
        let mut a: Vec<&str> = extra.to_vec();
        a.extend_from_slice(&["busybox", "sh", "-c", "grep CapEff /proc/self/status"]);
        run(&d, &a)
            .1
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(cap(&[]), "00000000a80425fb");
    assert_eq!(cap(&["--cap-drop", "ALL"]), "0000000000000000");
    assert_eq!(cap(&["--cap-add", "SYS_ADMIN"]), "00000000a82425fb");
    let own = std::fs::read_to_string("/proc/self/status").unwrap();
    let own_bnd = own
        .lines()
        .find(|l| l.starts_with("CapBnd"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(
        cap(&["--privileged"]),
        own_bnd,
        "--privileged grants what berthd holds"
    );

    // Seccomp: unshare and mount are refused by default, allowed with SYS_ADMIN.
    let (code, _, _) = run(&d, &["busybox", "unshare", "-m", "true"]);
    assert_ne!(code, 0);
    let (code, _, err) = run(
        &d,
        &["--cap-add", "SYS_ADMIN", "busybox", "unshare", "-m", "true"],
    );
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&d, &["busybox", "grep", "Seccomp:", "/proc/self/status"]);
    assert!(out.contains('2'), "{out}");
    let (_, out, _) = run(
        &d,
        &[
            "--security-opt",
            "seccomp=unconfined",
            "busybox",
            "grep",
            "Seccomp:",
            "/proc/self/status",
        ],
    );
    assert!(out.contains('0'), "{out}");
    let (_, out, _) = run(
        &d,
        &[
            "--security-opt",
            "no-new-privileges",
            "busybox",
            "grep",
            "NoNewPrivs",
            "/proc/self/status",
        ],
    );
    assert!(out.contains('1'), "{out}");

    // Masked and read-only paths.
    let (_, out, _) = run(&d, &["busybox", "cat", "/proc/keys"]);
    assert_eq!(out, "");
    let (code, _, _) = run(
        &d,
        &[
            "busybox",
            "sh",
            "-c",
            "echo 1 > /proc/sys/kernel/domainname",
        ],
    );
    assert_ne!(code, 0);

    // cgroup limits (v1 or v2, read from inside).
    let (_, out, err) = run(&d, &["-m", "64m", "--pids-limit", "32", "--cpus", "0.5", "busybox", "sh", "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max 2>/dev/null; \
         cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; \
         cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu.max 2>/dev/null"]);
    let vals: Vec<&str> = out.split_whitespace().collect();
    assert!(vals.contains(&"67108864"), "memory: {out} {err}");
    assert!(vals.contains(&"32"), "pids: {out}");
    assert!(vals.contains(&"50000"), "cpu: {out}");

    // --init runs the command under an init process (tini) as pid 1.
    let (code, out, err) = run(
        &d,
        &[
            "--init",
            "busybox",
            "sh",
            "-c",
            "cat /proc/1/cmdline | tr '\\0' ' '",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("/sbin/docker-init"), "{out}");
}

#[test]
fn lifecycle_verbs_behave_like_dockers() {
    let d = Daemon::start();
    d.busybox();
    let ok = |args: &[&str]| {
        let o = d.docker(args);
        assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
        text(&o.stdout)
    };
    // create + start, stop signal and timeout, kill -s, restart.
    ok(&[
        "create",
        "--name",
        "c1",
        "--stop-signal",
        "USR1",
        "--stop-timeout",
        "1",
        "busybox",
        "sh",
        "-c",
        "trap 'echo got usr1; exit 5' USR1; echo trapped; while true; do sleep 0.1; done",
    ]);
    let ps = ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert_eq!(ps.trim(), "Created");
    ok(&["start", "c1"]);
    // The trap is set before the stop signal comes.
    wait_for("the trap", || ok(&["logs", "c1"]) == "trapped\n");
    ok(&["stop", "c1"]);
    assert_eq!(ok(&["logs", "c1"]), "trapped\ngot usr1\n");
    assert_eq!(
        ok(&["inspect", "-f", "{{.State.ExitCode}}", "c1"]).trim(),
        "5"
    );
    let ps = ok(&["ps", "-a", "--format", "{{.Status}}"]);
    assert!(ps.starts_with("Exited (5) "), "{ps}");
    // stop of a stopped container is fine (304 upstream).
    ok(&["stop", "c1"]);
    let finished = ok(&["inspect", "-f", "{{.State.FinishedAt}}", "c1"]);
    assert!(!finished.starts_with("0001-"), "{finished}");
    ok(&["restart", "c1"]);
    // Running again, it keeps the time its last run ended, as Docker's does.
    assert_eq!(
        ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.FinishedAt}}",
            "c1"
        ]),
        format!("true {finished}")
    );
    ok(&["kill", "-s", "USR1", "c1"]);
    assert_eq!(ok(&["wait", "c1"]).trim(), "5");

    // logs --tail, -t, --since. Separate pipes: lines on different streams are ordered
    // only when spaced in time (Docker has the same race).
    ok(&[
        "run",
        "-d",
        "--name",
        "lg",
        "busybox",
        "sh",
        "-c",
        "echo a; sleep 0.1; echo b >&2; sleep 0.1; echo c",
    ]);
    assert_eq!(ok(&["wait", "lg"]).trim(), "0");
    let o = d.docker(&["logs", "--tail", "2", "lg"]);
    assert_eq!(
        (text(&o.stdout).as_str(), text(&o.stderr).as_str()),
        ("c\n", "b\n")
    );
    let o = d.docker(&["logs", "-t", "--tail", "1", "lg"]);
    let line = text(&o.stdout);
    let (ts, rest) = line.split_once(' ').unwrap();
    assert_eq!(rest, "c\n");
    assert!(
        ts.ends_with('Z') && ts.len() == 30,
        "RFC 3339 with nanoseconds: {ts}"
    );
    assert_eq!(ok(&["logs", "--since", "1h", "lg"]), "a\nc\n");
    assert_eq!(ok(&["logs", "--until", "2000-01-01T00:00:00Z", "lg"]), "");
    ok(&["rm", "lg"]);

    // bind mounts show in inspect and reach the container, read-only when asked.
    let host_dir = d.dir.path().join("shared");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from host").unwrap();
    let bind = format!("{}:/data:ro", host_dir.display());
    ok(&[
        "create", "--name", "mnt", "-v", &bind, "busybox", "cat", "/data/f",
    ]);
    assert_eq!(
        ok(&[
            "inspect",
            "-f",
            "{{range .Mounts}}{{.Type}} {{.Destination}} {{.RW}}{{end}}",
            "mnt"
        ])
        .trim(),
        "bind /data false"
    );
    ok(&["start", "mnt"]);
    assert_eq!(ok(&["wait", "mnt"]).trim(), "0");
    assert_eq!(ok(&["logs", "mnt"]), "from host");
    ok(&["rm", "mnt"]);

    // rename, and the old name is free again.
    ok(&["rename", "c1", "c2"]);
    assert_eq!(ok(&["ps", "-a", "--format", "{{.Names}}"]).trim(), "c2");

    // rm refuses a running container without -f.
    ok(&[
        "run", "-d", "--name", "r1", "-l", "team=a", "busybox", "sleep", "100",
    ]);
    let o = d.docker(&["rm", "r1"]);
    assert!(
        text(&o.stderr).contains("You cannot remove a running container"),
        "{}",
        text(&o.stderr)
    );
    // top, pause, unpause.
    assert!(ok(&["top", "r1"]).contains("sleep 100"));
    ok(&["pause", "r1"]);
    assert!(ok(&["ps", "--format", "{{.Status}}"]).contains("(Paused)"));
    ok(&["unpause", "r1"]);
    // ps filters.
    assert_eq!(
        ok(&["ps", "-q", "--filter", "label=team=a"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(&["ps", "-aq", "--filter", "status=exited"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(&["ps", "-aq", "--filter", "exited=5"]).lines().count(),
        1
    );
    assert_eq!(ok(&["ps", "-aq", "--filter", "name=r1"]).lines().count(), 1);
    assert_eq!(
        ok(&["ps", "-aq", "--filter", "ancestor=busybox"])
            .lines()
            .count(),
        2
    );
    assert_eq!(ok(&["ps", "-aq", "-n", "1"]).lines().count(), 1);
    let o = d.docker(&["ps", "--filter", "bogus=1"]);
    assert!(
        text(&o.stderr).contains("invalid filter 'bogus'"),
        "{}",
        text(&o.stderr)
    );
    ok(&["rm", "-f", "r1"]);
    // rm -f of a running container: its exit is recorded while the record goes away, which
    // is no error.
    for _ in 0..5 {
        let id = ok(&["run", "-d", "busybox", "sleep", "60"]);
        ok(&["rm", "-f", id.trim()]);
    }
    let log = d.log();
    assert!(!log.contains("ERROR"), "{log}");
    // prune removes stopped containers.
    let pruned = ok(&["container", "prune", "-f"]);
    assert!(pruned.contains("Deleted Containers"), "{pruned}");
    assert_eq!(ok(&["ps", "-aq"]), "");
    // rm -f of an unknown container prints the error but exits 0 (the CLI's rule).
    let o = d.docker(&["rm", "-f", "nosuch"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
}

/// `docker run -t`: the container has a terminal from its own devpts (stdio, controlling
/// terminal, /dev/console), its output arrives raw (CRLF, no stream framing), and the log
/// keeps it.
#[test]
fn tty_gives_the_container_a_terminal() {
    let d = Daemon::start();
    d.busybox();
    let (code, out, err) = run(
        &d,
        &[
            "-t",
            "busybox",
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo tty-ok; exit 3",
        ],
    );
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "/dev/pts/0\r\ntty-ok\r\n");
    let out = d.docker(&["run", "-d", "-t", "--name", "t1", "busybox", "tty"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d.docker(&["wait", "t1"]);
    assert_eq!(text(&out.stdout).trim(), "0");
    let out = d.docker(&["logs", "t1"]);
    assert_eq!(text(&out.stdout), "/dev/pts/0\r\n");
}

/// `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` are readable by a non-root user, as
/// Docker's (0644).
#[test]
fn etc_files_are_readable_by_a_non_root_user() {
    let d = Daemon::start();
    d.busybox();
    let (code, out, err) = run(
        &d,
        &[
            "-u",
            "nobody",
            "--hostname",
            "etcbox",
            "busybox",
            "sh",
            "-c",
            "cat /etc/hostname && grep -c localhost /etc/hosts && cat /etc/resolv.conf >/dev/null \
             && stat -c %a /etc/hosts /etc/resolv.conf /etc/hostname",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, "etcbox\n2\n644\n644\n644\n");
}

/// `--network none` (and the default of a berthd without a bridge, `--bridge none`, as the
/// test daemons run) gives a namespace of its own
/// with lo up and 127.0.0.1, as Docker does: a server in the container reaches itself on
/// localhost. Several runs: the first may start cold, the next through a warm shim with a
/// namespace berthd made ahead.
#[test]
fn network_none_has_loopback_up_and_a_namespace_of_its_own() {
    let d = Daemon::start();
    d.busybox();
    let host = std::fs::read_link("/proc/self/ns/net").unwrap();
    for network in ["none", "none", "none", "default"] {
        let (code, out, err) = run(
            &d,
            &[
                "--network",
                network,
                "busybox",
                "sh",
                "-c",
                // The client reads its message from a file, not a pipe: busybox nc ends at
                // the server's EOF (the server's stdin is /dev/null) if that comes before
                // a pipe's writer has written, and a file is always ready first.
                "ip -o -4 addr show lo; readlink /proc/self/ns/net; \
                 echo hi > /tmp/msg; nc -l -p 8080 > /tmp/got & \
                 until nc -w 2 127.0.0.1 8080 < /tmp/msg 2>/dev/null; do sleep 0.02; done; \
                 wait; echo got=$(cat /tmp/got)",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].contains("inet 127.0.0.1/8"), "{out}");
        assert_ne!(lines[1], host.to_string_lossy(), "{out}");
        assert_eq!(lines[2], "got=hi", "{out}");
    }
}

/// `--dns`, `--dns-search` and `--dns-option` replace the host's lines in the container's
/// resolv.conf (they were refused, or --dns-search ignored, before).
#[test]
fn dns_flags_reach_resolv_conf() {
    let d = Daemon::start();
    d.busybox();
    let o = d.docker(&[
        "run",
        "--rm",
        "--dns",
        "192.0.2.1",
        "--dns-search",
        "example.org",
        "--dns-search",
        "ward.example",
        "--dns-option",
        "ndots:2",
        "busybox",
        "cat",
        "/etc/resolv.conf",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let conf = text(&o.stdout);
    let lines: Vec<&str> = conf.lines().collect();
    assert!(lines.contains(&"nameserver 192.0.2.1"), "{conf}");
    assert!(lines.contains(&"search example.org ward.example"), "{conf}");
    assert!(lines.contains(&"options ndots:2"), "{conf}");
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("nameserver")).count(),
        1,
        "{conf}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("search") || l.starts_with("domain"))
            .count(),
        1,
        "{conf}"
    );
}
