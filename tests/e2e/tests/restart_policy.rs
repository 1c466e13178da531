//! Restart policies through the docker CLI and berth, with Docker's semantics: which exits
//! restart, `RestartCount`, the `restarting` status, the backoff, a user stop or kill, and
//! berthd's start-up after it was killed. Every wait polls `inspect` against a deadline.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use berth_e2e::api::curl_json;
use berth_e2e::{text, Daemon};
use chrono::{DateTime, Utc};

/// What `inspect` says about a container.
#[derive(Debug, Clone, PartialEq)]
struct State {
    status: String,
    restart_count: i64,
    exit_code: i64,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    running: bool,
    restarting: bool,
}

fn ok(out: &Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

fn state(d: &Daemon, name: &str) -> State {
    let out = d.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}} {{.State.StartedAt}} \
         {{.State.FinishedAt}} {{.State.Running}} {{.State.Restarting}}",
        name,
    ]);
    let line = ok(&out, "inspect");
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(f.len(), 7, "{line}");
    let time = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    };
    State {
        status: f[0].to_string(),
        restart_count: f[1].parse().unwrap(),
        exit_code: f[2].parse().unwrap(),
        started_at: time(f[3]),
        finished_at: time(f[4]),
        running: f[5] == "true",
        restarting: f[6] == "true",
    }
}

/// Polls `inspect` until `done` holds; panics with the last state after `within`.
fn wait_for(d: &Daemon, name: &str, within: Duration, done: impl Fn(&State) -> bool) -> State {
    let deadline = Instant::now() + within;
    loop {
        let s = state(d, name);
        if done(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: condition not reached in {within:?}; last state {s:?}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn run(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    ok(&d.docker(&all), &format!("run {args:?}"))
}

/// A docker command that must finish within `within` (a hung `rm -f` fails the test).
fn docker_within(d: &Daemon, args: &[&str], within: Duration) -> Output {
    let mut child = Command::new("docker")
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker");
    let deadline = Instant::now() + within;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker {args:?} did not finish in {within:?}\n{}", d.log());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

const LONG: Duration = Duration::from_secs(30);

#[test]
fn on_failure_restarts_up_to_its_limit_and_a_user_start_resets_the_count() {
    let d = Daemon::start();
    d.busybox();
    run(
        &d,
        &[
            "--name",
            "fail",
            "--restart",
            "on-failure:2",
            "busybox",
            "sh",
            "-c",
            "echo run; exit 3",
        ],
    );
    // `exited` comes only once no restart is due: at every earlier exit the status turns
    // `restarting` in the same step.
    let s = wait_for(&d, "fail", LONG, |s| s.status == "exited");
    assert_eq!((s.restart_count, s.exit_code), (2, 3), "{s:?}");
    assert!(!s.running && !s.restarting, "{s:?}");
    let logs = d.docker(&["logs", "fail"]);
    assert_eq!(text(&logs.stdout), "run\nrun\nrun\n", "the log is kept");

    // A user start counts from 0 again: three more runs, RestartCount 2 (not 4).
    let before = s.started_at;
    ok(&d.docker(&["start", "fail"]), "start");
    let s = wait_for(&d, "fail", LONG, |s| {
        s.status == "exited" && s.started_at > before && s.restart_count == 2
    });
    assert_eq!(s.exit_code, 3);
    assert_eq!(text(&d.docker(&["logs", "fail"]).stdout).lines().count(), 6);

    // So does `docker restart` (Docker's containerRestart starts with a fresh restart
    // manager): three more runs, where a count kept at 2 would allow only one.
    let before = s.started_at;
    ok(&d.docker(&["restart", "fail"]), "restart");
    let s = wait_for(&d, "fail", LONG, |s| {
        s.status == "exited" && s.started_at > before && s.restart_count == 2
    });
    assert_eq!(s.exit_code, 3);
    assert_eq!(text(&d.docker(&["logs", "fail"]).stdout).lines().count(), 9);

    // A clean exit is no failure.
    run(
        &d,
        &[
            "--name",
            "fine",
            "--restart",
            "on-failure",
            "busybox",
            "true",
        ],
    );
    let s = wait_for(&d, "fine", LONG, |s| s.status == "exited");
    assert_eq!((s.restart_count, s.exit_code), (0, 0), "{s:?}");
}

#[test]
fn always_restarts_after_a_clean_exit_and_rm_f_ends_the_loop() {
    let d = Daemon::start();
    d.busybox();
    run(
        &d,
        &[
            "--name",
            "loop",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "echo up; exit 0",
        ],
    );
    let s = wait_for(&d, "loop", LONG, |s| s.restart_count >= 3);
    assert_eq!(s.exit_code, 0, "{s:?}");
    let logs = text(&d.docker(&["logs", "loop"]).stdout);
    assert!(logs.lines().filter(|l| *l == "up").count() >= 3, "{logs}");
    // Listed by `ps` without -a while it restarts, as Docker does.
    let ps = ok(&d.docker(&["ps", "--format", "{{.Names}}"]), "ps");
    assert_eq!(ps, "loop");

    // rm without -f refuses; rm -f works whether it runs or waits for its restart.
    let rm = d.docker(&["rm", "loop"]);
    assert!(!rm.status.success());
    let rm = docker_within(&d, &["rm", "-f", "loop"], LONG);
    assert!(rm.status.success(), "{}", text(&rm.stderr));
    let ps = ok(&d.docker(&["ps", "-aq"]), "ps -a");
    assert_eq!(ps, "", "nothing left");
}

/// The status while the restart waits is `restarting` in inspect (Running and Restarting
/// true, as Docker's) and in ps; the waits double: the restart after the n-th exit starts
/// at least 100 ms * 2^(n-1) after it. (Only lower bounds: how long a start takes on a
/// loaded machine comes on top.)
#[test]
fn restarts_back_off_and_show_as_restarting() {
    let d = Daemon::start();
    d.busybox();
    run(
        &d,
        &[
            "--name",
            "crash",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ],
    );
    // Samples taken while restarting: (RestartCount, StartedAt of that run, FinishedAt).
    let mut samples: Vec<State> = Vec::new();
    let deadline = Instant::now() + LONG;
    while samples.last().is_none_or(|s| s.restart_count < 5) {
        assert!(Instant::now() < deadline, "{samples:?}\n{}", d.log());
        let s = state(&d, "crash");
        if s.status == "restarting"
            && samples
                .last()
                .is_none_or(|l| l.restart_count < s.restart_count)
        {
            assert!(s.running && s.restarting, "{s:?}");
            assert_eq!(s.exit_code, 1);
            samples.push(s);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut checked = Vec::new();
    for pair in samples.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.restart_count != a.restart_count + 1 {
            continue;
        }
        // Run a+1 started (b.started_at) after the wait that followed exit a.
        let gap = (b.started_at - a.finished_at).to_std().unwrap();
        let wait = Duration::from_millis(100 << (a.restart_count - 1));
        assert!(
            gap >= wait,
            "restart {} came after {gap:?} < {wait:?}",
            a.restart_count
        );
        checked.push(a.restart_count);
    }
    // The later waits (400 ms, 800 ms) are what a fixed short wait would miss.
    assert!(
        checked.iter().any(|n| *n >= 3),
        "too few consecutive samples: {samples:?}"
    );

    // At RestartCount 5 it waits 1.6 s: ps says so.
    let ps = ok(
        &d.docker(&[
            "ps",
            "--filter",
            "status=restarting",
            "--format",
            "{{.Status}}",
        ]),
        "ps",
    );
    assert!(ps.starts_with("Restarting (1) "), "{ps}");
    let ps = ok(&d.berth(&["ps", "--format", "{{.Status}}"]), "berth ps");
    assert!(ps.starts_with("Restarting (1) "), "{ps}");
}

/// `stop` and `kill` by the user end an `always` container for good: it is `exited` as soon
/// as it stopped (a restart would show as `restarting` at that very moment), whether it ran
/// or waited for its backoff; a later wait never brings it back.
#[test]
fn a_user_stop_or_kill_prevents_the_restart() {
    let d = Daemon::start();
    d.busybox();
    for name in ["stopped", "killed", "unless"] {
        let policy = if name == "unless" {
            "unless-stopped"
        } else {
            "always"
        };
        run(
            &d,
            &[
                "--name",
                name,
                "--restart",
                policy,
                "busybox",
                "sleep",
                "1000",
            ],
        );
    }
    ok(&d.docker(&["stop", "-t", "1", "stopped"]), "stop");
    let s = state(&d, "stopped");
    assert_eq!((s.status.as_str(), s.restart_count), ("exited", 0), "{s:?}");
    ok(&d.docker(&["stop", "-t", "1", "unless"]), "stop");
    let s = state(&d, "unless");
    assert_eq!((s.status.as_str(), s.restart_count), ("exited", 0), "{s:?}");
    ok(&d.docker(&["kill", "killed"]), "kill");
    let s = wait_for(&d, "killed", LONG, |s| s.status != "running");
    assert_eq!(
        (s.status.as_str(), s.restart_count, s.exit_code),
        ("exited", 0, 137),
        "{s:?}"
    );

    // During the backoff: two crash loops, each caught waiting 1.6 s (RestartCount 5).
    for name in ["stop-looping", "kill-looping"] {
        run(
            &d,
            &[
                "--name",
                name,
                "--restart",
                "always",
                "busybox",
                "sh",
                "-c",
                "exit 1",
            ],
        );
    }
    let waiting = |s: &State| s.status == "restarting" && s.restart_count >= 5;
    let caught = wait_for(&d, "stop-looping", LONG, waiting);
    ok(
        &d.docker(&["stop", "stop-looping"]),
        "stop while restarting",
    );
    let s = state(&d, "stop-looping");
    assert_eq!(s.status, "exited", "{s:?}");
    assert_eq!(s.restart_count, caught.restart_count);
    let caught_kill = wait_for(&d, "kill-looping", LONG, waiting);
    ok(
        &d.docker(&["kill", "kill-looping"]),
        "kill while restarting",
    );
    let s = state(&d, "kill-looping");
    assert_eq!(s.status, "exited", "{s:?}");

    // A clock: a new crash loop reaches RestartCount n + 1 after waits of
    // 100 ms * (2^n - 1), longer than the 100 ms * 2^(n-1) a restart cancelled at count n
    // had left (3.1 s against 1.6 s at n = 5).
    let n = caught.restart_count.max(caught_kill.restart_count);
    run(
        &d,
        &[
            "--name",
            "clock",
            "--restart",
            "always",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ],
    );
    wait_for(&d, "clock", LONG, |s| s.restart_count > n);
    for (name, count) in [
        ("stop-looping", caught.restart_count),
        ("kill-looping", caught_kill.restart_count),
        ("stopped", 0),
        ("killed", 0),
        ("unless", 0),
    ] {
        let s = state(&d, name);
        assert_eq!(
            (s.status.as_str(), s.restart_count),
            ("exited", count),
            "{name}: {s:?}"
        );
    }

    // A user start clears the stop: the policy applies again.
    ok(&d.docker(&["start", "stop-looping"]), "start");
    wait_for(&d, "stop-looping", LONG, |s| {
        s.status == "restarting" && s.restart_count >= 1
    });
}

/// After berthd was killed: `always` containers and unless-stopped ones the user had not
/// stopped are started again; an unless-stopped container the user stopped stays stopped.
/// (An `always` container the user stopped comes back too: Docker documents that.)
#[test]
fn berthd_start_up_restarts_what_the_policies_ask_for() {
    let mut d = Daemon::start();
    d.busybox();
    // Created in this order; berthd starts them again in creation order, so once the last
    // is up, every decision has been applied.
    let names = [
        "user-stopped-unless",
        "user-stopped-always",
        "crashed-on-failure",
        "crashed-unless",
        "crashed-always",
    ];
    for name in names {
        let policy = match name {
            n if n.ends_with("unless") => "unless-stopped",
            n if n.ends_with("on-failure") => "on-failure:3",
            _ => "always",
        };
        run(
            &d,
            &[
                "--name",
                name,
                "--restart",
                policy,
                "busybox",
                "sleep",
                "1000",
            ],
        );
    }
    for name in ["user-stopped-unless", "user-stopped-always"] {
        ok(&d.docker(&["stop", "-t", "1", name]), "stop");
    }
    let before: Vec<State> = names.iter().map(|n| state(&d, n)).collect();
    let pids: Vec<String> = names[2..]
        .iter()
        .map(|n| {
            ok(
                &d.docker(&["inspect", "--format", "{{.State.Pid}}", n]),
                "pid",
            )
        })
        .collect();

    d.kill9();
    // The containers end while berthd is away.
    for pid in &pids {
        let status = Command::new("kill").args(["-9", pid]).status().unwrap();
        assert!(status.success(), "kill -9 {pid}");
    }
    let deadline = Instant::now() + LONG;
    while pids
        .iter()
        .any(|p| std::path::Path::new(&format!("/proc/{p}")).exists())
    {
        assert!(Instant::now() < deadline, "the containers did not die");
        std::thread::sleep(Duration::from_millis(10));
    }
    d.spawn();

    let restarted = |i: usize| {
        let was = before[i].started_at;
        wait_for(&d, names[i], LONG, move |s| {
            s.status == "running" && s.started_at > was
        })
    };
    // The last one first: by then berthd has gone through all of them.
    restarted(4);
    restarted(3);
    restarted(2);
    restarted(1);
    let s = state(&d, "user-stopped-unless");
    assert_eq!(s.status, "exited", "{s:?}");
    assert_eq!(s.started_at, before[0].started_at, "started again: {s:?}");
}

/// A bogus policy and a policy with --rm are refused, by the CLIs and by the API, with
/// Docker's messages, and leave nothing behind.
#[test]
fn bogus_policies_and_rm_with_a_policy_are_refused() {
    let d = Daemon::start();
    d.busybox();
    let unknown = "invalid restart policy: unknown policy 'bogus'; use one of 'no', 'always', \
                   'on-failure', or 'unless-stopped'";
    for out in [
        d.docker(&["run", "-d", "--restart", "bogus", "busybox", "true"]),
        d.berth(&["run", "-d", "--restart", "bogus", "busybox", "true"]),
    ] {
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains(unknown), "{}", text(&out.stderr));
    }
    for out in [
        d.docker(&["run", "--rm", "--restart", "always", "busybox", "true"]),
        d.berth(&["run", "--rm", "--restart", "always", "busybox", "true"]),
    ] {
        assert!(!out.status.success());
        let err = text(&out.stderr);
        assert!(
            err.contains("conflicting options: cannot specify both --restart and --rm"),
            "{err}"
        );
    }
    // The daemon's own checks, for clients that do not check first.
    for (host_config, message) in [
        (r#"{"RestartPolicy":{"Name":"bogus"}}"#, unknown),
        (
            r#"{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}"#,
            "can't create 'AutoRemove' container with restart policy",
        ),
        (
            r#"{"RestartPolicy":{"Name":"on-failure","MaximumRetryCount":-1}}"#,
            "invalid restart policy: maximum retry count cannot be negative",
        ),
        (
            r#"{"RestartPolicy":{"Name":"always","MaximumRetryCount":2}}"#,
            "invalid restart policy: maximum retry count can only be used with 'on-failure'",
        ),
    ] {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{host_config}}}"#);
        let (code, v) = curl_json(&d, "POST", "/v1.44/containers/create", Some(&body));
        assert_eq!(code, 400, "{host_config}: {v}");
        assert_eq!(v["message"], message, "{host_config}");
    }
    let ps = ok(&d.docker(&["ps", "-aq"]), "ps -a");
    assert_eq!(ps, "", "nothing left");
}

/// A restart that was waiting for its backoff when berthd died is not lost: `state.json`
/// says `restarting`, and berthd's start-up starts the container again, even when it was
/// the last restart `on-failure:5` allowed (RestartCount 5 already counts it).
#[test]
fn a_restart_pending_when_berthd_died_happens_at_start_up() {
    let mut d = Daemon::start();
    d.busybox();
    run(
        &d,
        &[
            "--name",
            "last",
            "--restart",
            "on-failure:5",
            "busybox",
            "sh",
            "-c",
            "exit 1",
        ],
    );
    // The fifth restart waits 1.6 s: time enough to kill berthd in it.
    let caught = wait_for(&d, "last", LONG, |s| {
        s.status == "restarting" && s.restart_count == 5
    });
    d.kill9();
    d.spawn();
    wait_for(&d, "last", LONG, |s| s.started_at > caught.started_at);
}
