//! The real docker CLI against berthd: the everyday verbs, as a user scripts them.

use berth_e2e::{text, wait_for, Daemon};

#[test]
fn docker_cli_runs_containers_end_to_end() {
    let d = Daemon::start();
    d.busybox();

    let images = d.docker(&["images"]);
    assert!(images.status.success(), "{}", text(&images.stderr));
    assert!(
        text(&images.stdout).contains("busybox"),
        "{}",
        text(&images.stdout)
    );

    // run --rm prints the output and exits 0.
    let out = d.docker(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!(
        text(&out.stdout),
        "hi\n",
        "stderr: {}\n{}",
        text(&out.stderr),
        d.log()
    );
    assert_eq!(out.status.code(), Some(0));

    // the container's exit code becomes docker's.
    let out = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // 127 for a command that does not exist, 126 for one that cannot be executed.
    let out = d.docker(&["run", "--rm", "busybox", "nosuchcmd"]);
    assert_eq!(out.status.code(), Some(127), "{}", text(&out.stderr));
    let out = d.docker(&["run", "--rm", "busybox", "/etc"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out.stderr));

    // --rm removed every one of them.
    let ps = d.docker(&["ps", "-aq"]);
    assert_eq!(text(&ps.stdout), "", "{}", text(&ps.stderr));

    // run -d, ps, logs, logs -f, stop, rm.
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two >&2; while true; do sleep 0.1; done",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    let ps = d.docker(&["ps", "--format", "{{.Names}} {{.Status}}"]);
    let ps = text(&ps.stdout);
    assert!(ps.starts_with("ticker Up"), "{ps}");
    wait_for("ticker's two lines", || {
        let logs = d.docker(&["logs", "ticker"]);
        !text(&logs.stdout).is_empty() && !text(&logs.stderr).is_empty()
    });
    let logs = d.docker(&["logs", "ticker"]);
    assert_eq!(text(&logs.stdout), "one\n");
    assert_eq!(text(&logs.stderr), "two\n");
    let inspect = d.docker(&[
        "inspect",
        "--format",
        "{{.State.Running}} {{.Name}}",
        "ticker",
    ]);
    assert_eq!(text(&inspect.stdout).trim(), "true /ticker");

    // logs -f follows until the container stops.
    let mut follow = std::process::Command::new("docker")
        .args(["logs", "-f", "ticker"])
        .env("DOCKER_HOST", d.host())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Following: the first line has come through.
    let mut out = std::io::BufReader::new(follow.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert_eq!(first, "one\n");
    let stop = d.docker(&["stop", "-t", "1", "ticker"]);
    assert!(stop.status.success(), "{}", text(&stop.stderr));
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(follow.wait().unwrap().success());
    assert_eq!(rest, "", "logs -f printed more after the first line");
    let inspect = d.docker(&["inspect", "--format", "{{.State.Status}}", "ticker"]);
    assert_eq!(text(&inspect.stdout).trim(), "exited");
    let rm = d.docker(&["rm", "ticker"]);
    assert!(rm.status.success(), "{}", text(&rm.stderr));

    // save, rmi, load.
    let archive = d.dir.path().join("busybox.tar");
    let save = d.docker(&["save", "-o", archive.to_str().unwrap(), "busybox"]);
    assert!(save.status.success(), "{}", text(&save.stderr));
    let rmi = d.docker(&["rmi", "busybox"]);
    assert!(rmi.status.success(), "{}", text(&rmi.stderr));
    let images = d.docker(&["images", "-q"]);
    assert_eq!(text(&images.stdout), "");
    let load = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(load.status.success(), "{}", text(&load.stderr));
    assert!(
        text(&load.stdout).contains("Loaded image: busybox:latest"),
        "{}",
        text(&load.stdout)
    );
    let out = d.docker(&["run", "--rm", "busybox", "echo", "again"]);
    assert_eq!(text(&out.stdout), "again\n", "{}", text(&out.stderr));
}

#[test]
fn errors_use_dockers_wording() {
    let d = Daemon::start();
    d.busybox();
    let out = d.docker(&["inspect", "--type", "container", "nosuch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("No such container: nosuch"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&["create", "--name", "web", "busybox", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = d.docker(&["create", "--name", "web", "busybox", "true"]);
    assert!(
        text(&out.stderr)
            .contains("Conflict. The container name \"/web\" is already in use by container"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&["create", "--name", "bad name", "busybox", "true"]);
    assert!(
        text(&out.stderr).contains("Invalid container name (bad name)"),
        "{}",
        text(&out.stderr)
    );
    let out = d.docker(&["rmi", "busybox"]);
    assert!(
        text(&out.stderr).contains("conflict: unable to remove repository reference \"busybox\""),
        "{}",
        text(&out.stderr)
    );
}

/// Regression: the attach follower opened the log by path after the exit, racing the
/// auto-remove that renames the container's directory away; some `run --rm` printed nothing.
#[test]
fn run_rm_never_loses_output() {
    let d = Daemon::start();
    d.busybox();
    for i in 0..40 {
        let word = format!("word{i}");
        let out = d.docker(&["run", "--rm", "busybox", "echo", &word]);
        assert_eq!(
            text(&out.stdout),
            format!("{word}\n"),
            "round {i}: {}",
            text(&out.stderr)
        );
    }
}
