//! `GET /events` through the real docker CLI and berth: Docker's container and image events
//! with their attributes, replayed with `--since`/`--until` (also after berthd was killed
//! and started again), filtered, streamed live, and Docker's error for a bad filter.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use berth_e2e::api::now;
use berth_e2e::{busybox_rootfs_tar, text, wait_for, Daemon};
use serde_json::Value;

/// The events between `since` and `until` passing `filters`, as docker prints them in JSON.
fn replay(d: &Daemon, since: &str, until: &str, filters: &[&str]) -> Vec<Value> {
    d.events(since, until, filters, "{{json .}}")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn actions(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .collect()
}

/// The actions of one actor, keeping only those named in `of` (other workers' events,
/// attach for example, may come between).
fn actions_of(events: &[Value], id: &str, of: &[&str]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["Actor"]["ID"] == id)
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .filter(|a| of.contains(&a.as_str()))
        .collect()
}

#[test]
fn a_containers_life_is_replayed_with_dockers_events_and_attributes() {
    let d = Daemon::start();
    d.busybox();
    let since = now();
    let o = d.docker(&[
        "run",
        "--name",
        "ev1",
        "--label",
        "team=blue",
        "busybox",
        "sh",
        "-c",
        "exit 3",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o.stderr));
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", "ev1"])
        .trim()
        .to_string();
    d.ok(&["rm", "ev1"]);
    let until = now();

    let events = replay(&d, &since, &until, &[]);
    assert_eq!(
        actions_of(&events, &id, &["create", "start", "die", "destroy"]),
        ["create", "start", "die", "destroy"],
        "{events:#?}"
    );
    for e in events.iter().filter(|e| e["Actor"]["ID"] == id.as_str()) {
        assert_eq!(e["Type"], "container");
        assert_eq!(e["scope"], "local");
        // The legacy fields Docker still sends below API 1.52.
        assert_eq!(e["status"], e["Action"]);
        assert_eq!(e["id"], id.as_str());
        assert_eq!(e["from"], "busybox");
        let attrs = &e["Actor"]["Attributes"];
        assert_eq!(attrs["name"], "ev1");
        assert_eq!(attrs["image"], "busybox");
        assert_eq!(attrs["team"], "blue");
        let (time, nanos) = (e["time"].as_i64().unwrap(), e["timeNano"].as_i64().unwrap());
        assert_eq!(time, nanos / 1_000_000_000);
    }
    let die = events
        .iter()
        .find(|e| e["Actor"]["ID"] == id.as_str() && e["Action"] == "die")
        .unwrap();
    assert_eq!(die["Actor"]["Attributes"]["exitCode"], "3");
    assert!(die["Actor"]["Attributes"]["execDuration"].is_string());

    // docker's line format, the same from berth.
    let args = [
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=ev1",
    ];
    let lines = d.ok(&args);
    let create = lines.lines().next().unwrap();
    let (time, rest) = create.split_once(' ').unwrap();
    assert_eq!(
        rest,
        format!("container create {id} (image=busybox, name=ev1, team=blue)")
    );
    assert!(
        time.len() >= 30
            && time.as_bytes()[19] == b'.'
            && time[20..29].bytes().all(|b| b.is_ascii_digit()),
        "{time}"
    );
    let berth = d.berth(&args);
    assert!(berth.status.success(), "{}", text(&berth.stderr));
    assert_eq!(text(&berth.stdout), lines);
    let berth = d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{json .}}",
    ]);
    let docker_json = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{json .}}",
    ]);
    assert_eq!(text(&berth.stdout), docker_json);
    let berth = d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=die",
        "--format",
        "{{.Status}} {{.ID}} {{.From}} {{.Actor.Attributes.exitCode}}",
    ]);
    assert_eq!(text(&berth.stdout), format!("die {id} busybox 3\n"));
}

#[test]
fn filters_select_by_type_container_event_label_and_image() {
    let d = Daemon::start();
    d.busybox();
    let since = now();
    let a = d.ok(&[
        "create", "--name", "fa", "--label", "team=a", "busybox", "true",
    ]);
    let b = d.ok(&[
        "create", "--name", "fb", "--label", "team=b", "busybox", "true",
    ]);
    let (a, b) = (a.trim(), b.trim());
    d.ok(&["tag", "busybox", "evtag:1"]);
    d.ok(&["rm", "fa", "fb"]);
    let until = now();

    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["Actor"]["ID"].as_str().unwrap().to_string())
            .collect()
    };
    let all = replay(&d, &since, &until, &[]);
    assert_eq!(
        actions(&all),
        ["create", "create", "tag", "destroy", "destroy"],
        "{all:#?}"
    );
    let images = replay(&d, &since, &until, &["type=image"]);
    assert_eq!(actions(&images), ["tag"]);
    assert_eq!(images[0]["Actor"]["Attributes"]["name"], "evtag:1");
    let containers = replay(&d, &since, &until, &["type=container"]);
    assert_eq!(containers.len(), 4);
    // Names and id prefixes, values of one key OR-ed.
    assert_eq!(ids(&replay(&d, &since, &until, &["container=fa"])), [a, a]);
    assert_eq!(ids(&replay(&d, &since, &until, &["container=fb"])), [b, b]);
    let by_id = format!("container={}", &a[..12]);
    assert_eq!(ids(&replay(&d, &since, &until, &[&by_id])), [a, a]);
    assert_eq!(ids(&replay(&d, &since, &until, &["container=f"])).len(), 4);
    assert_eq!(
        ids(&replay(
            &d,
            &since,
            &until,
            &["container=fa", "container=fb"]
        ))
        .len(),
        4
    );
    assert_eq!(
        actions(&replay(&d, &since, &until, &["event=create"])),
        ["create", "create"]
    );
    assert_eq!(ids(&replay(&d, &since, &until, &["label=team=b"])), [b, b]);
    assert_eq!(ids(&replay(&d, &since, &until, &["label=team"])).len(), 4);
    // A container's events by its image, an image's by its name; without the tag too.
    assert_eq!(replay(&d, &since, &until, &["image=busybox"]).len(), 4);
    assert_eq!(
        actions(&replay(&d, &since, &until, &["image=evtag"])),
        ["tag"]
    );
    // Keys AND-ed.
    let one = replay(
        &d,
        &since,
        &until,
        &["type=container", "event=destroy", "label=team=a"],
    );
    assert_eq!(ids(&one), [a]);
}

/// `docker events` (or `berth events`) running in the background, its lines on a channel.
struct Stream {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Stream {
    fn start(d: &Daemon, berth: bool, args: &[&str]) -> Stream {
        let mut c = if berth {
            let mut c = Command::new(berth_e2e::bin_dir().join("berth"));
            c.env("BERTH_HOST", d.host());
            c
        } else {
            let mut c = Command::new("docker");
            c.env("DOCKER_HOST", d.host())
                .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
            c
        };
        let mut child = c
            .arg("events")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Stream { child, lines }
    }

    /// The next line (failing the test after 30 s).
    fn next(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("an event line within 30 s")
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_live_stream_receives_events_that_happen_after_it_started() {
    let d = Daemon::start();
    d.busybox();
    for (berth, name) in [(false, "live-docker"), (true, "live-berth")] {
        // Replayed from `since` or live: the create line comes either way, and once it has
        // arrived the subscription is certainly in place.
        let filter = format!("container={name}");
        let stream = Stream::start(
            &d,
            berth,
            &[
                "--since",
                &now(),
                "--filter",
                &filter,
                "--format",
                "{{.Action}} {{.Actor.Attributes.name}}",
            ],
        );
        d.ok(&["create", "--name", name, "busybox", "sh", "-c", "exit 5"]);
        assert_eq!(stream.next(), format!("create {name}"));
        // Everything from here on happens after the stream started.
        d.ok(&["start", name]);
        assert_eq!(stream.next(), format!("start {name}"));
        assert_eq!(stream.next(), format!("die {name}"));
        d.ok(&["rename", name, &format!("{name}-2")]);
        assert_eq!(stream.next(), format!("rename {name}-2"));
        d.ok(&["rm", &format!("{name}-2")]);
        assert_eq!(stream.next(), format!("destroy {name}-2"));
    }
}

#[test]
fn until_in_the_future_streams_until_then_and_ends() {
    let d = Daemon::start();
    d.busybox();
    let since = now();
    d.ok(&["create", "--name", "soon", "busybox", "true"]);
    let until = (chrono::Utc::now() + chrono::Duration::seconds(2))
        .timestamp()
        .to_string();
    let mut child = Command::new("docker")
        .args([
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--format",
            "{{.Action}}",
        ])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut done = None;
    wait_for("docker events to end at --until", || {
        done = child.try_wait().unwrap();
        done.is_some()
    });
    assert!(done.unwrap().success());
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert_eq!(out, "create\n");
}

#[test]
fn events_are_replayed_with_since_and_until_after_a_restart_of_berthd() {
    let mut d = Daemon::start();
    d.busybox();
    let since = now();
    // No attach: the container's events are exactly these four.
    let id = d
        .ok(&["create", "--name", "before", "busybox", "true"])
        .trim()
        .to_string();
    d.ok(&["start", "before"]);
    assert_eq!(d.ok(&["wait", "before"]).trim(), "0");
    d.ok(&["rm", "before"]);
    let until = now();
    let expected = ["create", "start", "die", "destroy"];
    let before = replay(&d, &since, &until, &[]);
    assert_eq!(actions_of(&before, &id, &expected), expected);

    // SIGKILL: nothing is flushed on the way out.
    d.kill9();
    d.spawn();
    let after = replay(&d, &since, &until, &[]);
    assert_eq!(after, before, "the same events, to the nanosecond");
    let berth = d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=before",
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(
        text(&berth.stdout),
        "create\nstart\ndie\ndestroy\n",
        "{}",
        text(&berth.stderr)
    );
    // A relative --since reaches them too; --until bounds the replay.
    let relative = d.ok(&[
        "events",
        "--since",
        "10m",
        "--until",
        &until,
        "--format",
        "{{.Action}}",
    ]);
    assert!(
        relative.contains("create\nstart\ndie\ndestroy\n"),
        "{relative}"
    );
    let none = d.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &since,
        "--format",
        "{{.Action}}",
    ]);
    assert_eq!(none, "");
}

#[test]
fn image_events_come_from_tag_rmi_import_save_and_load() {
    let d = Daemon::start();
    d.busybox();
    let busybox = d
        .ok(&["inspect", "-f", "{{.Id}}", "busybox"])
        .trim()
        .to_string();
    let since = now();
    d.ok(&["tag", "busybox", "evimg:1"]);
    d.ok(&["rmi", "evimg:1"]);
    let tar = busybox_rootfs_tar(d.dir.path());
    let imported = d.ok(&[
        "import",
        "--change",
        "LABEL tier=gold",
        tar.to_str().unwrap(),
        "evdel:1",
    ]);
    let imported = imported.trim();
    let saved = d.dir.path().join("saved.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "evdel:1"]);
    d.ok(&["rmi", "evdel:1"]);
    d.ok(&["load", "-i", saved.to_str().unwrap()]);
    let until = now();

    let events = replay(&d, &since, &until, &["type=image"]);
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["Action"].as_str().unwrap().to_string(),
                e["Actor"]["ID"].as_str().unwrap().to_string(),
                e["Actor"]["Attributes"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect();
    let s = |a: &str, id: &str, n: &str| (a.to_string(), id.to_string(), n.to_string());
    assert_eq!(
        summary,
        [
            s("tag", &busybox, "evimg:1"),
            s("untag", &busybox, &busybox),
            s("tag", imported, "evdel:1"),
            s("import", imported, imported),
            s("save", imported, imported),
            s("untag", imported, imported),
            s("delete", imported, imported),
            s("load", imported, imported),
        ],
        "{events:#?}"
    );
    for e in &events {
        assert_eq!(e["status"], e["Action"]);
        assert_eq!(e["id"], e["Actor"]["ID"]);
        assert!(e.get("from").is_none());
    }
    // The image's labels, while it exists (a delete has none).
    let label = |action: &str| {
        events
            .iter()
            .find(|e| e["Action"] == action && e["Actor"]["ID"] == imported)
            .map(|e| e["Actor"]["Attributes"]["tier"].clone())
            .unwrap()
    };
    assert_eq!(label("import"), "gold");
    assert_eq!(label("untag"), "gold");
    assert_eq!(label("delete"), Value::Null);
}

#[test]
fn an_oom_kill_is_reported_before_the_exit() {
    let d = Daemon::start();
    d.busybox();
    let since = now();
    let o = d.docker(&[
        "run",
        "--name",
        "oom",
        "-m",
        "16m",
        "--memory-swap",
        "16m",
        "busybox",
        "sh",
        "-c",
        "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done",
    ]);
    assert_eq!(o.status.code(), Some(137), "{}", text(&o.stderr));
    let events = replay(&d, &since, &now(), &["container=oom"]);
    let tail: Vec<String> = actions(&events).into_iter().rev().take(2).collect();
    assert_eq!(tail, ["die", "oom"], "{events:#?}");
    assert_eq!(
        events.last().unwrap()["Actor"]["Attributes"]["exitCode"],
        "137"
    );
}

#[test]
fn stop_kill_pause_and_restart_have_dockers_events() {
    let d = Daemon::start();
    d.busybox();
    let since = now();
    d.ok(&["run", "-d", "--name", "svc", "busybox", "sleep", "1000"]);
    d.ok(&["pause", "svc"]);
    d.ok(&["unpause", "svc"]);
    d.ok(&["restart", "-t", "0", "svc"]);
    d.ok(&["kill", "-s", "USR1", "svc"]);
    d.ok(&["stop", "-t", "0", "svc"]);
    let events = replay(&d, &since, &now(), &["container=svc"]);
    let got: Vec<String> = events
        .iter()
        .map(|e| {
            let a = &e["Actor"]["Attributes"];
            match e["Action"].as_str().unwrap() {
                "kill" => format!("kill {}", a["signal"].as_str().unwrap()),
                other => other.to_string(),
            }
        })
        .filter(|a| a != "attach")
        .collect();
    // stop: the stop signal, the exit, then `stop`; restart: a stop, then start, restart.
    assert_eq!(
        got,
        [
            "create", "start", "pause", "unpause", "kill 15", "kill 9", "die", "stop", "start",
            "restart", "kill 10", "kill 15", "kill 9", "die", "stop",
        ],
        "{events:#?}"
    );
}

#[test]
fn bad_filters_and_times_get_dockers_errors() {
    let d = Daemon::start();
    let (code, _, err) = d.outcome(&["events", "--filter", "bogus=x", "--until", "0s"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: invalid filter 'bogus'"
    );
    let berth = d.berth(&["events", "--filter", "bogus=x", "--until", "0s"]);
    assert_eq!(berth.status.code(), Some(1));
    assert_eq!(
        text(&berth.stderr).trim(),
        "Error response from daemon: invalid filter 'bogus'"
    );
    let (code, _, err) = d.outcome(&["events", "--since", "20", "--until", "10"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: `since` time (20) cannot be after `until` time (10)"
    );
    let berth = d.berth(&["events", "--format", "{{.Action"]);
    assert_eq!(berth.status.code(), Some(64));
    assert!(text(&berth.stderr).starts_with("Error parsing format: "));
}
