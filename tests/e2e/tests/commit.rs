//! A container's filesystem through the real docker CLI and berth: `diff` (adds, changes,
//! deletions, a whiteout of an image file, an opaque directory, never the runtime's mount
//! points), `export` (the whole tree, streamed, with Docker's mount points), `commit` (an
//! image that runs at once, with Docker's history entry, author and comment), their events
//! and refusals.

use std::collections::BTreeMap;
use std::io::Read;

use berth_e2e::api::{curl_json, now};
use berth_e2e::{busybox_tar_with, text, wait_for, Daemon};

/// What the container of these tests does to its image: a new file, a changed one, a deleted
/// one, and a directory of the image removed and made again (overlay makes it opaque).
const CHANGES: &str = "echo hi > /new && echo more >> /etc/passwd && rm /etc/group && \
                       rm -rf /opq && mkdir /opq && echo n > /opq/new";

/// Docker's diff of that container: sorted, each parent of a change once.
const DIFF: &str = "C /etc\nD /etc/group\nC /etc/passwd\nA /new\nC /opq\nA /opq/new\nD /opq/old\n";

/// busybox plus `/opq/old`, as `base:1`.
fn base_image(d: &Daemon) {
    let tar = busybox_tar_with(d.dir.path(), "base.tar", &[], |b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, "opq/", std::io::empty()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(4);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, "opq/old", &b"old\n"[..]).unwrap();
    });
    d.ok(&["import", tar.to_str().unwrap(), "base:1"]);
}

/// Every entry of a tar: name -> (mode, content).
fn entries(tar_bytes: &[u8]) -> BTreeMap<String, (u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(tar_bytes);
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, (mode, data));
    }
    out
}

#[test]
fn diff_lists_what_the_container_changed_and_not_its_mount_points() {
    let d = Daemon::start();
    base_image(&d);
    // A container created and never started has changed nothing.
    d.ok(&["create", "--name", "fresh", "base:1", "true"]);
    assert_eq!(d.ok(&["diff", "fresh"]), "");
    // The image has no /etc/hosts, /etc/hostname, /etc/resolv.conf: the runtime makes them
    // in the rw layer, and Docker never lists them.
    d.ok(&["run", "--name", "changed", "base:1", "sh", "-c", CHANGES]);
    assert_eq!(d.ok(&["diff", "changed"]), DIFF);
    assert_eq!(d.ok(&["container", "diff", "changed"]), DIFF);
    assert_eq!(d.berth_ok(&["diff", "changed"]), DIFF);
    assert_eq!(d.berth_ok(&["container", "diff", "changed"]), DIFF);
    // A running container: its changes show as they happen.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "base:1",
        "sh",
        "-c",
        "touch /live; exec sleep 300",
    ]);
    wait_for("the running container's file in its diff", || {
        d.ok(&["diff", "live"]).lines().any(|l| l == "A /live")
    });
    let (code, _, err) = d.outcome(&["diff", "nosuch"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: No such container: nosuch"
    );
}

#[test]
fn export_streams_the_whole_filesystem_with_dockers_mount_points() {
    let d = Daemon::start();
    base_image(&d);
    d.ok(&["run", "--name", "changed", "base:1", "sh", "-c", CHANGES]);
    let since = chrono::Utc::now().timestamp() - 1;
    // To stdout (a pipe), to a file with -o, through berth.
    let piped = d.docker(&["export", "changed"]);
    assert!(piped.status.success(), "{}", text(&piped.stderr));
    let file = d.dir.path().join("c.tar");
    d.ok(&["export", "-o", file.to_str().unwrap(), "changed"]);
    let from_file = std::fs::read(&file).unwrap();
    let berth_file = d.dir.path().join("c-berth.tar");
    d.berth_ok(&[
        "container",
        "export",
        "-o",
        berth_file.to_str().unwrap(),
        "changed",
    ]);
    for bytes in [piped.stdout, from_file, std::fs::read(&berth_file).unwrap()] {
        let files = entries(&bytes);
        assert_eq!(files["new"].1, b"hi\n");
        assert!(text(&files["etc/passwd"].1).ends_with("more\n"));
        assert!(
            !files.contains_key("etc/group"),
            "a deleted file is not exported"
        );
        assert_eq!(files["opq/new"].1, b"n\n");
        assert!(
            !files.contains_key("opq/old"),
            "the opaque directory hides the image's"
        );
        assert!(
            files.contains_key("bin/busybox"),
            "the image's files are exported"
        );
        // The mount points and the `/.dockerenv` marker, as Docker's export shows its init
        // layer's.
        for f in [
            ".dockerenv",
            "etc/hosts",
            "etc/hostname",
            "etc/resolv.conf",
            "dev/console",
        ] {
            assert_eq!(files[f], (0o755, Vec::new()), "{f}");
        }
        for dir in ["proc/", "sys/", "dev/", "dev/pts/", "dev/shm/"] {
            assert!(files.contains_key(dir), "{dir}");
        }
    }
    // The init layer is never the container's change (Docker's diff does not list it).
    assert!(!d.ok(&["diff", "changed"]).contains("dockerenv"));
    let exported = d.events(
        &since.to_string(),
        &now(),
        &["event=export"],
        "{{.Actor.Attributes.name}}",
    );
    assert_eq!(exported, "changed\nchanged\nchanged\n");

    // A running container, read while it runs; what is mounted into it (a bind) is not its
    // filesystem, as with Docker.
    let host_dir = d.dir.path().join("bound");
    std::fs::create_dir_all(&host_dir).unwrap();
    std::fs::write(host_dir.join("on-the-host"), "x").unwrap();
    let bind = format!("{}:/mnt/bound", host_dir.display());
    d.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "-v",
        &bind,
        "base:1",
        "sh",
        "-c",
        "echo running > /live; exec sleep 300",
    ]);
    wait_for("the running container's file in its export", || {
        entries(&d.docker(&["export", "live"]).stdout)
            .get("live")
            .is_some_and(|f| f.1 == b"running\n")
    });
    let files = entries(&d.docker(&["export", "live"]).stdout);
    assert!(files.contains_key("mnt/bound/"), "the mount point is");
    assert!(
        !files.contains_key("mnt/bound/on-the-host"),
        "the bind's content is not"
    );

    // Never onto a terminal.
    for cli in ["docker", "berth"] {
        let mut t = d.terminal(&format!("{cli} export changed"));
        t.expect("cowardly refusing to save to a terminal. Use the -o flag or redirect");
        assert_ne!(t.finish(), 0, "{cli}");
    }
    let (code, _, err) = d.outcome(&["export", "nosuch"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: No such container: nosuch"
    );
}

/// The entries of an image's top layer, read from `docker save`.
fn top_layer_entries(d: &Daemon, image: &str) -> Vec<String> {
    let saved = d.docker(&["save", image]);
    assert!(saved.status.success(), "{}", text(&saved.stderr));
    let outer = entries(&saved.stdout);
    let manifest: serde_json::Value = serde_json::from_slice(&outer["manifest.json"].1).unwrap();
    let layers = manifest[0]["Layers"].as_array().unwrap();
    let top = layers.last().unwrap().as_str().unwrap();
    entries(&outer[top].1).into_keys().collect()
}

#[test]
fn a_commit_is_an_image_that_runs_at_once_with_dockers_history() {
    let d = Daemon::start();
    d.busybox();
    let since = chrono::Utc::now().timestamp() - 1;
    d.ok(&[
        "run",
        "--name",
        "src",
        "busybox",
        "sh",
        "-c",
        "echo committed-content > /x",
    ]);
    let id = d
        .ok(&[
            "commit",
            "-c",
            r#"CMD ["cat","/x"]"#,
            "-c",
            "ENV FROM_COMMIT=1",
            "-m",
            "the message",
            "-a",
            "Jane Doe <jane@example.com>",
            "src",
            "berthtest/committed:1",
        ])
        .trim()
        .to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    assert_eq!(
        d.ok(&["run", "--rm", "berthtest/committed:1"]),
        "committed-content\n"
    );
    assert_eq!(
        d.ok(&[
            "run",
            "--rm",
            "berthtest/committed:1",
            "sh",
            "-c",
            "echo $FROM_COMMIT"
        ]),
        "1\n"
    );
    let history = d.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "berthtest/committed:1",
    ]);
    assert_eq!(
        history.lines().next().unwrap(),
        "sh -c echo committed-content > /x|the message"
    );
    assert_eq!(history.lines().count(), 2, "{history}");
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}}|{{.Author}}|{{.Comment}}|{{json .Config.Cmd}}",
            "berthtest/committed:1",
        ])
        .trim(),
        format!("{id}|Jane Doe <jane@example.com>|the message|[\"cat\",\"/x\"]")
    );
    // The layer holds the container's change only: not the runtime's mount points.
    assert_eq!(top_layer_entries(&d, "berthtest/committed:1"), ["x"]);
    let committed = d.events(
        &since.to_string(),
        &now(),
        &["event=commit"],
        "{{.Actor.Attributes.comment}}|{{.Actor.Attributes.imageID}}|{{.Actor.Attributes.imageRef}}",
    );
    assert_eq!(
        committed,
        format!("the message|{id}|berthtest/committed:1\n")
    );
    let image_events = d.events(
        &since.to_string(),
        &now(),
        &["type=image"],
        "{{.Action}} {{.Actor.Attributes.name}}",
    );
    assert!(
        image_events.contains(&format!("create {id}\ntag berthtest/committed:1\n")),
        "{image_events}"
    );

    // A running container is paused for the commit (Docker's events), unless asked not to;
    // berth's CLI commits the same way, untagged.
    d.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo live > /y; exec sleep 300",
    ]);
    wait_for("the running container's file", || {
        d.ok(&["diff", "live"]).lines().any(|l| l == "A /y")
    });
    let before = chrono::Utc::now().timestamp() - 1;
    let untagged = d.berth_ok(&["commit", "live"]).trim().to_string();
    assert!(untagged.starts_with("sha256:"), "{untagged}");
    assert_eq!(d.ok(&["run", "--rm", &untagged, "cat", "/y"]), "live\n");
    let nopause = d.berth_ok(&["container", "commit", "--pause=false", "live", "nopause"]);
    assert!(nopause.starts_with("sha256:"), "{nopause}");
    let actions = d.events(
        &before.to_string(),
        &now(),
        &[
            "container=live",
            "event=pause",
            "event=commit",
            "event=unpause",
        ],
        "{{.Action}}",
    );
    assert_eq!(actions, "pause\ncommit\nunpause\ncommit\n");
    assert_eq!(
        d.ok(&["inspect", "-f", "{{.State.Status}}", "live"]).trim(),
        "running"
    );

    // Refusals: a removed container, a change commit does not take.
    d.ok(&["rm", "src"]);
    let (code, _, err) = d.outcome(&["commit", "src"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: No such container: src"
    );
    let (code, body) = curl_json(&d, "POST", "/v1.44/commit?container=src&repo=x&tag=1", None);
    assert_eq!(code, 404);
    assert_eq!(body["message"], "No such container: src");
    let out = d.berth(&["commit", "src", "x:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr).trim(),
        "Error response from daemon: No such container: src"
    );
    let (code, _, err) = d.outcome(&["commit", "-c", "RUN echo no", "live"]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: RUN is not a valid change command"
    );
    assert_eq!(
        d.ok(&["images", "-q", "x"]),
        "",
        "a refused commit tags nothing"
    );
}
