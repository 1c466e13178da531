//! The `berth` CLI against berthd: the everyday verbs of docker_cli.rs, each compared with
//! what the real docker CLI prints (stdout and exit status) against the same daemon
//! wherever that output is deterministic.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use berth_e2e::api::{curl_bytes, frame, STDOUT};
use berth_e2e::{bin_dir, busybox_rootfs_tar, text, wait_for, Daemon};

/// What a script sees of a command: stdout and exit status.
fn seen(o: &Output) -> (String, Option<i32>) {
    (text(&o.stdout), o.status.code())
}

/// Runs `args` through berth and docker; their stdout and exit status must agree. Returns
/// berth's stdout.
fn same(d: &Daemon, args: &[&str]) -> String {
    let b = d.berth(args);
    let k = d.docker(args);
    assert_eq!(
        seen(&b),
        seen(&k),
        "berth {args:?} differs from docker (left berth, right docker)\nberth stderr: {}\ndocker stderr: {}",
        text(&b.stderr),
        text(&k.stderr)
    );
    text(&b.stdout)
}

/// [`same`], and stderr agrees too (docker's name in it read as berth's).
fn same_with_stderr(d: &Daemon, args: &[&str]) -> String {
    let b = d.berth(args);
    let k = d.docker(args);
    assert_eq!(
        (seen(&b), text(&b.stderr)),
        (seen(&k), text(&k.stderr).replace("docker", "berth")),
        "berth {args:?} differs from docker (left berth, right docker)"
    );
    text(&b.stdout)
}

/// [`same`] up to the order of lines: docker lists an image's tags in Go map order (random).
fn same_sorted(d: &Daemon, args: &[&str]) -> Vec<String> {
    let b = d.berth(args);
    let k = d.docker(args);
    assert_eq!(
        (sorted_lines(&text(&b.stdout)), b.status.code()),
        (sorted_lines(&text(&k.stdout)), k.status.code()),
        "berth {args:?} differs from docker (left berth, right docker)"
    );
    sorted_lines(&text(&b.stdout))
}

/// [`same`] for output that mentions times ("Up 1 second"): a second apart, the two CLIs
/// may straddle a tick, so a few tries are allowed.
fn same_eventually(d: &Daemon, args: &[&str]) -> String {
    for _ in 0..5 {
        let b = d.berth(args);
        let k = d.docker(args);
        if seen(&b) == seen(&k) {
            return text(&b.stdout);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    same(d, args)
}

/// The header line of a table `args` prints, which must be docker's. Column widths follow
/// the rows ("2 seconds ago"), so a few tries are allowed. Returns berth's whole output.
fn same_header(d: &Daemon, args: &[&str]) -> String {
    let header = |o: &Output| text(&o.stdout).lines().next().map(String::from);
    for _ in 0..5 {
        let b = d.berth(args);
        let k = d.docker(args);
        if b.status.success() && header(&b) == header(&k) {
            return text(&b.stdout);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let b = d.berth(args);
    let k = d.docker(args);
    assert_eq!(
        header(&b),
        header(&k),
        "{args:?} header (left berth, right docker)"
    );
    ok(&b, "table")
}

/// The first line of stderr, docker's name read as berth's.
fn first_err_line(o: &Output) -> String {
    text(&o.stderr)
        .lines()
        .next()
        .unwrap_or("")
        .replace("docker", "berth")
}

/// berth with `BERTH_HOST` set to `env_host` (or unset).
fn berth_env(env_host: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(bin_dir().join("berth"));
    c.args(args).stdin(Stdio::null()).env_remove("BERTH_HOST");
    if let Some(h) = env_host {
        c.env("BERTH_HOST", h);
    }
    c.output().expect("run berth")
}

fn ok(o: &Output, what: &str) -> String {
    assert!(
        o.status.success(),
        "{what}: exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(String::from).collect();
    v.sort();
    v
}

fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[test]
fn berth_version_info_and_hosts() {
    let d = Daemon::start();
    let v = ok(&d.berth(&["version"]), "berth version");
    assert!(v.contains("Client:") && v.contains("Server:"), "{v}");
    let i = ok(&d.berth(&["info"]), "berth info");
    assert!(i.contains("Server:"), "{i}");

    // the API version scripts ask for, by docker's Go field names.
    let api = same(&d, &["version", "--format", "{{.Server.APIVersion}}"]);
    assert!(api.trim().starts_with("1."), "{api}");
    same(&d, &["version", "--format", "{{.Client.APIVersion}}"]);
    same(&d, &["version", "--format", "{{json .Server.Platform}}"]);
    same(
        &d,
        &[
            "info",
            "--format",
            "{{.Containers}} {{.Images}} {{.OSType}}",
        ],
    );

    // -H and BERTH_HOST both reach the daemon; -H wins over the environment.
    let host = d.host();
    ok(&berth_env(None, &["-H", &host, "ps", "-q"]), "berth -H");
    ok(
        &berth_env(None, &["--host", &host, "ps", "-q"]),
        "berth --host",
    );
    ok(&berth_env(Some(&host), &["ps", "-q"]), "BERTH_HOST");
    ok(
        &berth_env(Some("unix:///nonexistent.sock"), &["-H", &host, "ps", "-q"]),
        "-H over BERTH_HOST",
    );
    let down = berth_env(Some("unix:///nonexistent.sock"), &["ps"]);
    assert_eq!(down.status.code(), Some(1), "{}", text(&down.stderr));

    // like docker, -H is a global flag only: after the subcommand it is an unknown flag.
    let b = d.berth(&["ps", "-H", &host]);
    let k = d.docker(&["ps", "-H", &host]);
    assert_eq!(b.status.code(), Some(125));
    assert_eq!(b.status.code(), k.status.code());
    assert_eq!(first_err_line(&b), first_err_line(&k));
    assert_eq!(first_err_line(&b), "unknown shorthand flag: 'H' in -H");

    // command-line errors: docker's wording and statuses (125 flags, 1 arguments).
    for args in [
        &["ps", "--bogus"][..],
        &["ps", "-n", "x"],
        &["rm"],
        &["logs"],
        &["tag", "a"],
        &["rename", "a"],
        &["ps", "x"],
        &["nosuchcommand"],
        &["run", "--bogus", "busybox"],
    ] {
        let b = d.berth(args);
        let k = d.docker(args);
        assert_eq!(
            b.status.code(),
            k.status.code(),
            "{args:?}: {}",
            text(&b.stderr)
        );
        let (bl, kl) = (first_err_line(&b), first_err_line(&k));
        if args == ["ps", "-n", "x"] {
            // the reason after the flag is Go's strconv text in docker.
            assert!(
                bl.starts_with("invalid argument \"x\" for \"-n, --last\" flag: "),
                "{bl}"
            );
        } else {
            assert_eq!(bl, kl, "{args:?}");
        }
    }
}

#[test]
fn berth_matches_docker_end_to_end() {
    let d = Daemon::start();
    d.busybox();

    // images: the table header, ids, templates.
    let b = same_header(&d, &["images"]);
    assert!(b.contains("busybox"), "{b}");
    same(&d, &["images", "-q"]);
    same(&d, &["images", "--no-trunc", "-q"]);
    same(&d, &["images", "busybox", "-q"]);
    same(
        &d,
        &[
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
        ],
    );
    same(
        &d,
        &["images", "--format", "table {{.Repository}}\t{{.Tag}}"],
    );
    same(
        &d,
        &[
            "images",
            "--filter",
            "reference=busy*",
            "--format",
            "{{.ID}}",
        ],
    );
    same_eventually(&d, &["images", "--format", "json"]);

    // run: output and exit statuses 0, 3, 127, 126, 125.
    assert_eq!(same(&d, &["run", "--rm", "busybox", "echo", "hi"]), "hi\n");
    let out = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(seen(&out), ("out\n".into(), Some(3)));
    assert_eq!(text(&out.stderr), "err\n");
    same(&d, &["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    same_with_stderr(&d, &["run", "--rm", "busybox", "nosuchcmd"]);
    same_with_stderr(&d, &["run", "--rm", "busybox", "/etc"]);
    let b = d.berth(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(b.status.code(), Some(127));
    let b = d.berth(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(b.status.code(), Some(126));
    // docker would pull; berth has no registry, so the pull/create error differs in text.
    let b = d.berth(&["run", "--rm", "nosuchimage"]);
    let k = d.docker(&["run", "--rm", "nosuchimage"]);
    assert_eq!(b.status.code(), Some(125), "{}", text(&b.stderr));
    assert_eq!(b.status.code(), k.status.code());
    assert_eq!(
        first_err_line(&b),
        "Unable to find image 'nosuchimage:latest' locally"
    );
    let b = d.berth(&["run", "--rm", "--bogus", "busybox"]);
    assert_eq!(b.status.code(), Some(125));
    assert_eq!(first_err_line(&b), "unknown flag: --bogus");
    // every --rm container is gone.
    assert_eq!(same(&d, &["ps", "-aq"]), "");

    // run -d, ps and its filters and templates.
    let out = d.berth(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "-l",
        "k=v",
        "busybox",
        "sh",
        "-c",
        "echo one; sleep 0.1; echo two >&2; sleep 0.1; echo three; while true; do sleep 0.1; done",
    ]);
    let id = ok(&out, "run -d").trim().to_string();
    assert!(is_full_id(&id), "{id}");
    let out = d.berth(&["run", "--name", "three", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let created = ok(
        &d.berth(&["create", "--name", "fresh", "busybox", "true"]),
        "create",
    );
    assert!(is_full_id(created.trim()), "{created}");

    let b = same_header(&d, &["ps"]);
    assert!(b.starts_with("CONTAINER ID   IMAGE "), "{b}");
    same_header(&d, &["ps", "-a", "-s"]);
    same_header(&d, &["images", "--digests"]);
    assert_eq!(same(&d, &["ps", "-q"]), format!("{}\n", &id[..12]));
    assert_eq!(same(&d, &["ps", "--no-trunc", "-q"]), format!("{id}\n"));
    assert_eq!(sorted_lines(&same(&d, &["ps", "-aq"])).len(), 3);
    same(
        &d,
        &[
            "ps",
            "-a",
            "--format",
            "{{.ID}} {{.Names}} {{.Image}} {{.Command}}",
        ],
    );
    same(&d, &["ps", "-a", "--format", "table {{.ID}}\t{{.Image}}"]);
    same(
        &d,
        &[
            "ps",
            "-a",
            "--format",
            "{{.Names}} {{.Label \"k\"}} {{.Labels}} {{.State}}",
        ],
    );
    let names = same_eventually(&d, &["ps", "--format", "{{.Names}} {{.Status}}"]);
    assert!(names.starts_with("ticker Up"), "{names}");
    same_eventually(&d, &["ps", "-a", "--format", "{{.Status}}"]);
    same_eventually(&d, &["ps", "-a", "--format", "json"]);
    assert_eq!(
        same(
            &d,
            &[
                "ps",
                "-a",
                "--filter",
                "name=ticker",
                "--format",
                "{{.Names}}"
            ]
        ),
        "ticker\n"
    );
    assert_eq!(
        same(
            &d,
            &[
                "ps",
                "-a",
                "--filter",
                "label=k=v",
                "--format",
                "{{.Names}}"
            ]
        ),
        "ticker\n"
    );
    assert_eq!(
        same(
            &d,
            &["ps", "-a", "--filter", "exited=3", "--format", "{{.Names}}"]
        ),
        "three\n"
    );
    assert_eq!(
        same(
            &d,
            &[
                "ps",
                "-a",
                "--filter",
                "status=created",
                "--format",
                "{{.Names}}"
            ]
        ),
        "fresh\n"
    );
    same(&d, &["ps", "--filter", "status=exited", "-q"]);
    same(&d, &["ps", "-l", "--format", "{{.Names}}"]);
    same(&d, &["ps", "-n", "2", "-q"]);
    // -q wins over a custom format, with docker's warning.
    let b = d.berth(&["ps", "-q", "--format", "{{.Names}}"]);
    let k = d.docker(&["ps", "-q", "--format", "{{.Names}}"]);
    assert_eq!(seen(&b), seen(&k));
    assert_eq!(text(&b.stderr), text(&k.stderr));

    // inspect templates scripts use.
    assert_eq!(
        same(
            &d,
            &[
                "inspect",
                "--format",
                "{{.State.Running}} {{.Name}}",
                "ticker"
            ]
        ),
        "true /ticker\n"
    );
    assert_eq!(
        same(
            &d,
            &[
                "inspect",
                "--format",
                "{{index .Config.Labels \"k\"}}",
                "ticker"
            ]
        ),
        "v\n"
    );
    same(&d, &["inspect", "--format", "{{json .Config}}", "ticker"]);
    same(
        &d,
        &[
            "inspect",
            "--format",
            "{{.State.Running}}",
            "ticker",
            "three",
        ],
    );
    same(
        &d,
        &["container", "inspect", "-f", "{{.State.ExitCode}}", "three"],
    );
    same(&d, &["inspect", "-f", "{{.Id}}", "busybox"]);
    same_with_stderr(&d, &["inspect", "nosuch"]);
    same_with_stderr(&d, &["inspect", "--type", "container", "nosuch"]);
    same_with_stderr(&d, &["image", "inspect", "nosuch"]);

    // logs, and --tail counts lines of both streams together.
    wait_for("ticker's three lines", || {
        let b = d.berth(&["logs", "ticker"]);
        text(&b.stdout) == "one\nthree\n" && text(&b.stderr) == "two\n"
    });
    let b = d.berth(&["logs", "ticker"]);
    assert_eq!(text(&b.stdout), "one\nthree\n");
    assert_eq!(text(&b.stderr), "two\n");
    same_with_stderr(&d, &["logs", "ticker"]);
    let b = d.berth(&["logs", "--tail", "2", "ticker"]);
    assert_eq!(text(&b.stdout), "three\n");
    assert_eq!(text(&b.stderr), "two\n");
    same_with_stderr(&d, &["logs", "--tail", "2", "ticker"]);
    same_with_stderr(&d, &["logs", "-n", "1", "ticker"]);
    same_with_stderr(&d, &["logs", "nosuch"]);

    // top: docker's header.
    let b = same_header(&d, &["top", "ticker"]);
    assert!(b.contains("sh -c echo one"), "{b}");

    // wait prints the exit status.
    assert_eq!(same(&d, &["wait", "three"]), "3\n");
    same_with_stderr(&d, &["wait", "nosuch"]);

    // stop and rm print the names they were given.
    assert_eq!(
        ok(&d.berth(&["stop", "-t", "1", "ticker"]), "stop"),
        "ticker\n"
    );
    assert_eq!(
        same(&d, &["inspect", "-f", "{{.State.Status}}", "ticker"]),
        "exited\n"
    );
    assert_eq!(ok(&d.berth(&["rm", "ticker"]), "rm"), "ticker\n");
    ok(
        &d.docker(&["create", "--name", "ticker", "busybox", "true"]),
        "create",
    );
    assert_eq!(ok(&d.docker(&["rm", "ticker"]), "docker rm"), "ticker\n");
    same_with_stderr(&d, &["rm", "nosuch"]);
    same_with_stderr(&d, &["rm", "-f", "nosuch"]);

    // container prune: the stopped ones, then nothing.
    let three = ok(&d.berth(&["inspect", "-f", "{{.Id}}", "three"]), "id")
        .trim()
        .to_string();
    let fresh = created.trim().to_string();
    let out = ok(&d.berth(&["container", "prune", "-f"]), "container prune");
    let mut lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"Deleted Containers:"), "{out}");
    assert_eq!(lines.last(), Some(&"Total reclaimed space: 0B"), "{out}");
    lines.retain(|l| is_full_id(l));
    lines.sort();
    let mut want = vec![three.as_str(), fresh.as_str()];
    want.sort();
    assert_eq!(lines, want, "{out}");
    assert_eq!(
        same(&d, &["container", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );

    // tag, rmi.
    assert_eq!(ok(&d.berth(&["tag", "busybox", "bb:1"]), "tag"), "");
    assert_eq!(
        same_sorted(&d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        ["bb:1", "busybox:latest"]
    );
    // one id line per tag, as docker.
    assert_eq!(same(&d, &["images", "-q"]).lines().count(), 2);
    assert_eq!(ok(&d.berth(&["rmi", "bb:1"]), "rmi"), "Untagged: bb:1\n");
    ok(&d.docker(&["tag", "busybox", "bb:1"]), "docker tag");
    assert_eq!(
        ok(&d.docker(&["rmi", "bb:1"]), "docker rmi"),
        "Untagged: bb:1\n"
    );
    same_with_stderr(&d, &["rmi", "nosuch"]);
    same_with_stderr(&d, &["tag", "nosuch", "x"]);

    // history.
    same(&d, &["history", "-q", "busybox"]);
    same(&d, &["history", "--no-trunc", "-q", "busybox"]);
    same(
        &d,
        &[
            "history",
            "--format",
            "{{.ID}} {{.Size}} {{.Comment}}",
            "busybox",
        ],
    );
    same_header(&d, &["history", "busybox"]);

    // import with a change and a message; both CLIs send the same request.
    let tar = busybox_rootfs_tar(d.dir.path());
    let tar = tar.to_str().expect("utf8");
    let out = ok(
        &d.berth(&["import", "-c", "CMD [\"sh\"]", "-m", "msg", tar, "imp:b"]),
        "import",
    );
    assert!(
        out.starts_with("sha256:") && is_full_id(out.trim().trim_start_matches("sha256:")),
        "{out}"
    );
    ok(
        &d.docker(&["import", "-c", "CMD [\"sh\"]", "-m", "msg", tar, "imp:d"]),
        "docker import",
    );
    let f = "{{json .Config.Cmd}}|{{.Comment}}|{{.Os}}";
    let b = same(&d, &["inspect", "-f", f, "imp:b"]);
    assert_eq!(b, "[\"sh\"]|msg|linux\n");
    assert_eq!(same(&d, &["inspect", "-f", f, "imp:d"]), b);
    assert_eq!(
        same(&d, &["history", "--format", "{{.Comment}}", "imp:b"]),
        "msg\n"
    );
    // CMD ["sh"] with no stdin: a shell that exits at once.
    assert_eq!(same(&d, &["run", "--rm", "imp:b"]), "");

    // image prune: re-importing over imp:b leaves the old one dangling.
    let old = same(&d, &["images", "--no-trunc", "-q", "imp:b"])
        .trim()
        .to_string();
    // Image ids include the creation time, in seconds: the re-import must be a new second.
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let imported_in = second();
    wait_for("the next second", || second() > imported_in);
    ok(&d.berth(&["import", tar, "imp:b"]), "re-import");
    assert_eq!(
        same(&d, &["images", "-f", "dangling=true", "--no-trunc", "-q"]),
        format!("{old}\n")
    );
    let out = ok(&d.berth(&["image", "prune", "-f"]), "image prune");
    // the layer is busybox's too, so nothing is reclaimed.
    assert_eq!(
        out,
        format!("Deleted Images:\ndeleted: {old}\n\nTotal reclaimed space: 0B\n")
    );
    assert_eq!(
        same(&d, &["image", "prune", "-f"]),
        "Total reclaimed space: 0B\n"
    );

    // save (to a file and to stdout, byte for byte docker's), rmi, load.
    let dir = d.dir.path();
    let (b_tar, k_tar) = (dir.join("berth.tar"), dir.join("docker.tar"));
    ok(
        &d.berth(&["save", "-o", b_tar.to_str().unwrap(), "busybox"]),
        "save",
    );
    ok(
        &d.docker(&["save", "-o", k_tar.to_str().unwrap(), "busybox"]),
        "docker save",
    );
    let saved = std::fs::read(&b_tar).unwrap();
    assert_eq!(
        saved,
        std::fs::read(&k_tar).unwrap(),
        "save archives differ"
    );
    let piped = d.berth(&["save", "busybox"]);
    ok(&piped, "save to stdout");
    assert_eq!(piped.stdout, saved);
    ok(&d.berth(&["rmi", "imp:b", "imp:d"]), "rmi imports");
    let out = ok(&d.berth(&["rmi", "busybox"]), "rmi busybox");
    assert!(
        out.starts_with("Untagged: busybox:latest\nDeleted: sha256:"),
        "{out}"
    );
    assert_eq!(same(&d, &["images", "-q"]), "");
    let out = d.berth(&["load", "-i", b_tar.to_str().unwrap()]);
    assert_eq!(ok(&out, "load"), "Loaded image: busybox:latest\n");
    let out = Command::new(bin_dir().join("berth"))
        .args(["load", "-q"])
        .env("BERTH_HOST", d.host())
        .stdin(std::fs::File::open(&k_tar).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        ok(&out, "load from stdin"),
        "Loaded image: busybox:latest\n"
    );
    same_with_stderr(&d, &["load", "-i", "/nonexistent.tar"]);
    assert_eq!(
        same(&d, &["run", "--rm", "busybox", "echo", "again"]),
        "again\n"
    );
}

/// Regression: `tail` was applied after the stdout/stderr filter, so `tail=2&stdout=1` gave
/// the last two *stdout* lines. dockerd tails the whole log first and filters streams while
/// writing (moby's `httputils.WriteLogStream`), returning only the stdout lines among the
/// last two. The docker and berth CLIs always ask for both streams; API clients saw it.
#[test]
fn logs_tail_counts_both_streams_before_filtering() {
    let d = Daemon::start();
    d.busybox();
    let out = d.berth(&[
        "run",
        "--name",
        "lines",
        "busybox",
        "sh",
        "-c",
        "echo o1; sleep 0.1; echo o2; sleep 0.1; echo e1 >&2",
    ]);
    ok(&out, "run");
    let (_, body) = curl_bytes(
        &d,
        "GET",
        "/v1.44/containers/lines/logs?stdout=1&tail=2",
        None,
    );
    // Multiplexed frames. The last two lines overall are o2 (stdout) and e1 (stderr): only
    // o2 is wanted.
    assert_eq!(body, frame(STDOUT, b"o2\n"), "{body:?}");
}
