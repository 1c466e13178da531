//! `cp` through the docker CLI and berth: both directions, files and directories, on
//! running, created and exited containers (bind mounts included), `-a`, `-L`, `-` (tars on
//! stdin and stdout), Docker's rules and messages for trailing slashes and missing parents,
//! read-only targets, kernel filesystems, events, the ingest bound, and above all that a
//! copy never leaves the container's root: symlinks to `/` and `..`, a container that swaps
//! a directory for a symlink to `/` in a loop while copies go on, and hand-made tars with
//! `..` names and link tricks. A marker planted on the host at the path an escape would
//! reach is never read nor written.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_e2e::api::now;
use berth_e2e::{wait_for, Daemon};

const TOOLS: [&str; 2] = ["docker", "berth"];

/// `cp` that must succeed.
fn cp(d: &Daemon, which: &str, args: &[&str]) {
    let mut all = vec!["cp"];
    all.extend_from_slice(args);
    let (code, _, err) = d.cli(which, &all);
    assert_eq!(code, 0, "{which} {all:?}: {err}");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// A file in the container, read with `exec`.
fn cat(d: &Daemon, container: &str, path: &str) -> String {
    d.ok(&["exec", container, "cat", path])
}

/// The names and contents of a tar's regular files, and its other names.
fn tar_entries(bytes: &[u8]) -> Vec<(String, String)> {
    let mut a = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in a.entries().expect("a tar") {
        let mut e = e.expect("an entry");
        let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let mut content = String::new();
        if e.header().entry_type() == tar::EntryType::Regular {
            std::io::Read::read_to_string(&mut e, &mut content).unwrap();
        }
        out.push((name, content));
    }
    out
}

/// A local directory tree to copy: `tree/a`, `tree/sub/b`, `tree/link -> a`.
fn make_tree(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::write(tree.join("a"), "file a\n").unwrap();
    std::fs::write(tree.join("sub/b"), "file b\n").unwrap();
    std::os::unix::fs::symlink("a", tree.join("link")).unwrap();
    tree
}

#[test]
fn cp_copies_files_and_directories_both_ways_on_running_and_stopped_containers() {
    let d = Daemon::start();
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let tree = make_tree(work.path());
    let vol = work.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::write(vol.join("on-host"), "from the host\n").unwrap();
    let bind = format!("{}:/vol", s(&vol));
    d.ok(&[
        "run", "-d", "--name", "running", "-v", &bind, "busybox", "sleep", "600",
    ]);
    d.ok(&[
        "create",
        "--name",
        "created",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /tmp/in/a /tmp/in/sub/b /tmp/one",
    ]);
    d.ok(&[
        "run",
        "--name",
        "exited",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "echo made inside > /made",
    ]);
    for which in TOOLS {
        for c in ["running", "created", "exited"] {
            let tag = format!("{which} {c}");
            // In: a directory to a new name, a file into a directory, a file into a bind.
            cp(&d, which, &[s(&tree), &format!("{c}:/tmp/in")]);
            cp(&d, which, &[s(&tree.join("a")), &format!("{c}:/tmp/one")]);
            cp(
                &d,
                which,
                &[s(&tree.join("sub/b")), &format!("{c}:/vol/{which}-{c}")],
            );
            assert_eq!(
                std::fs::read_to_string(vol.join(format!("{which}-{c}"))).unwrap(),
                "file b\n",
                "{tag}: through the bind mount"
            );
            // Out: a directory, a file, a file in the bind.
            let out = work.path().join(format!("out-{which}-{c}"));
            std::fs::create_dir(&out).unwrap();
            cp(&d, which, &[&format!("{c}:/tmp/in"), s(&out.join("copy"))]);
            assert_eq!(
                std::fs::read_to_string(out.join("copy/sub/b")).unwrap(),
                "file b\n",
                "{tag}"
            );
            assert_eq!(
                std::fs::read_link(out.join("copy/link")).unwrap(),
                Path::new("a"),
                "{tag}"
            );
            cp(&d, which, &[&format!("{c}:/tmp/one"), s(&out)]);
            assert_eq!(
                std::fs::read_to_string(out.join("one")).unwrap(),
                "file a\n"
            );
            cp(&d, which, &[&format!("{c}:/vol/on-host"), s(&out)]);
            assert_eq!(
                std::fs::read_to_string(out.join("on-host")).unwrap(),
                "from the host\n",
                "{tag}: the bind mount is seen"
            );
        }
    }
    assert_eq!(cat(&d, "running", "/tmp/in/sub/b"), "file b\n");
    // A paused container is copied from and into as a running one.
    d.ok(&["pause", "running"]);
    let paused = work.path().join("paused");
    cp(&d, "docker", &["running:/tmp/one", s(&paused)]);
    cp(&d, "berth", &[s(&paused), "running:/tmp/from-paused"]);
    d.ok(&["unpause", "running"]);
    assert_eq!(cat(&d, "running", "/tmp/from-paused"), "file a\n");
    let out = work.path().join("made");
    cp(&d, "berth", &["exited:/made", s(&out)]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "made inside\n");
    // What was copied into the created container is there when it starts.
    d.ok(&["start", "-a", "created"]);
    let logs = d.ok(&["logs", "created"]);
    assert_eq!(logs, "file a\nfile b\nfile a\n");
    // A stopped container's view is gone after the copy: the rw layer is not mounted on
    // the host, and the container starts as usual.
    d.ok(&["start", "exited"]);
    wait_for("exited to exit again", || {
        d.ok(&["inspect", "-f", "{{.State.Running}}", "exited"])
            .trim()
            == "false"
    });
}

#[test]
fn cp_follows_dockers_rules_for_trailing_slashes_and_missing_parents() {
    let d = Daemon::start();
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let tree = make_tree(work.path());
    d.ok(&["run", "-d", "--name", "ctr", "busybox", "sleep", "600"]);
    d.ok(&[
        "exec",
        "ctr",
        "sh",
        "-c",
        "mkdir -p /exist /data && echo d > /data/x && ln -s /data /datalink",
    ]);
    let missing_local = work.path().join("nope/x");
    let refusals: Vec<(Vec<String>, String)> = vec![
        (
            vec![s(&tree.join("a")).into(), "ctr:/nonexist/dir/".into()],
            "no such directory".into(),
        ),
        (
            vec![s(&tree.join("a")).into(), "ctr:/nonexist/x".into()],
            "Error response from daemon: Could not find the file /nonexist in container ctr".into(),
        ),
        (
            vec!["ctr:/nonexist".into(), s(work.path()).into()],
            "Error response from daemon: Could not find the file /nonexist in container ctr".into(),
        ),
        (
            vec!["ctr:/etc/passwd".into(), s(&missing_local).into()],
            format!(
                "invalid output path: directory {:?} does not exist",
                s(&work.path().join("nope"))
            ),
        ),
        (
            vec!["ctr:/etc/passwd/".into(), s(work.path()).into()],
            "Error response from daemon: lstat /etc/passwd/: not a directory".into(),
        ),
        (
            vec![s(&tree).into(), "ctr:/etc/passwd".into()],
            "cannot copy directory".into(),
        ),
        (
            vec!["-".into(), "ctr:/etc/passwd".into()],
            r#"destination "ctr:/etc/passwd" must be a directory"#.into(),
        ),
        (
            vec![s(&work.path().join("absent")).into(), "ctr:/tmp".into()],
            format!(
                "lstat {}: no such file or directory",
                s(&work.path().join("absent"))
            ),
        ),
        (
            vec!["ctr:/etc/passwd".into(), "ctr:/x".into()],
            "copying between containers is not supported".into(),
        ),
        (
            vec!["a".into(), "b".into()],
            "must specify at least one container source".into(),
        ),
        (
            vec!["nosuch:/etc".into(), s(work.path()).into()],
            "Error response from daemon: No such container: nosuch".into(),
        ),
    ];
    for which in TOOLS {
        for (args, want) in &refusals {
            let mut all = vec!["cp"];
            all.extend(args.iter().map(String::as_str));
            let (code, _, err) = d.cli(which, &all);
            assert_eq!(code, 1, "{which} {all:?}: {err}");
            // docker's own log lines (level=error) may come before the message.
            assert_eq!(err.lines().last().unwrap_or(""), want, "{which} {all:?}");
        }
    }
    // Where things land: a new name, into a directory, `dir/.` (the content), `dir/` for a
    // missing one, a symlink to a directory (its target), and back out the same ways.
    for which in TOOLS {
        d.ok(&[
            "exec",
            "ctr",
            "sh",
            "-c",
            "rm -rf /exist/* /new /newdir /data/a",
        ]);
        cp(&d, which, &[s(&tree.join("a")), "ctr:/new"]);
        cp(&d, which, &[s(&tree), "ctr:/exist"]);
        cp(&d, which, &[&format!("{}/.", s(&tree)), "ctr:/exist"]);
        cp(&d, which, &[&format!("{}/", s(&tree)), "ctr:/newdir/"]);
        cp(&d, which, &[s(&tree.join("a")), "ctr:/datalink"]);
        let ls = |dir: &str| {
            d.ok(&["exec", "ctr", "ls", dir])
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(cat(&d, "ctr", "/new"), "file a\n", "{which}");
        assert_eq!(
            ls("/exist"),
            "a link sub tree",
            "{which}: the directory, then its content"
        );
        assert_eq!(ls("/exist/tree"), "a link sub", "{which}");
        assert_eq!(ls("/newdir"), "a link sub", "{which}: dir/ to a new name");
        assert_eq!(
            cat(&d, "ctr", "/data/a"),
            "file a\n",
            "{which}: through the symlink"
        );
        let out = work.path().join(format!("out-{which}"));
        std::fs::create_dir(&out).unwrap();
        cp(&d, which, &["ctr:/data/.", s(&out.join("content"))]);
        cp(&d, which, &["ctr:/datalink", s(&out)]);
        cp(
            &d,
            which,
            &["-L", "ctr:/datalink", s(&out.join("followed"))],
        );
        assert_eq!(
            std::fs::read_to_string(out.join("content/x")).unwrap(),
            "d\n"
        );
        assert!(std::fs::symlink_metadata(out.join("datalink"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read_to_string(out.join("followed/x")).unwrap(),
            "d\n"
        );
    }
}

#[test]
fn cp_archive_mode_owns_files_by_the_container_user() {
    let d = Daemon::start();
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("owned");
    std::fs::write(&f, "x").unwrap();
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "as-daemon",
        "-u",
        "daemon",
        "busybox",
        "sleep",
        "600",
    ]);
    d.ok(&["run", "-d", "--name", "as-root", "busybox", "sleep", "600"]);
    for which in TOOLS {
        cp(
            &d,
            which,
            &[s(&f), &format!("as-daemon:/tmp/plain-{which}")],
        );
        cp(
            &d,
            which,
            &["-a", s(&f), &format!("as-daemon:/tmp/archived-{which}")],
        );
        cp(
            &d,
            which,
            &["-a", s(&f), &format!("as-root:/tmp/archived-{which}")],
        );
        let owners = |c: &str, p: &str| {
            d.ok(&["exec", c, "stat", "-c", "%u:%g", p])
                .trim()
                .to_string()
        };
        // Docker: the tar's owners, unless -a and the container has a user.
        assert_eq!(
            owners("as-daemon", &format!("/tmp/plain-{which}")),
            "1234:5678",
            "{which}"
        );
        assert_eq!(
            owners("as-daemon", &format!("/tmp/archived-{which}")),
            "1:1",
            "{which}"
        );
        assert_eq!(
            owners("as-root", &format!("/tmp/archived-{which}")),
            "1234:5678",
            "{which}"
        );
        // Out: the files belong to who runs the CLI (root here), whatever the container's.
        let out = work.path().join(format!("out-{which}"));
        cp(
            &d,
            which,
            &["-a", &format!("as-daemon:/tmp/archived-{which}"), s(&out)],
        );
        let m = std::fs::metadata(&out).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, 0), "{which}");
    }
}

#[test]
fn cp_streams_tars_on_stdin_and_stdout() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ctr",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /d/sub && echo hi > /d/sub/f && sleep 600",
    ]);
    wait_for("the container's files", || {
        d.docker(&["exec", "ctr", "test", "-f", "/d/sub/f"])
            .status
            .success()
    });
    d.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o640);
    b.append_data(&mut h, "streamed/file", &b"input\n"[..])
        .unwrap();
    let input = b.into_inner().unwrap();
    for which in TOOLS {
        for c in ["ctr", "stopped"] {
            let (code, out, err) = d.cli_with_input(which, &["cp", &format!("{c}:/d/"), "-"], b"");
            if c == "stopped" {
                assert_eq!(code, 1, "{which}: {err}");
                assert!(
                    err.contains("Could not find the file /d/"),
                    "{which}: {err}"
                );
            } else {
                assert_eq!(code, 0, "{which}: {err}");
                assert_eq!(
                    tar_entries(&out),
                    [
                        ("d/".to_string(), String::new()),
                        ("d/sub/".to_string(), String::new()),
                        ("d/sub/f".to_string(), "hi\n".to_string())
                    ],
                    "{which}"
                );
            }
            let (code, _, err) =
                d.cli_with_input(which, &["cp", "-", &format!("{c}:/tmp")], &input);
            assert_eq!(code, 0, "{which} {c}: {err}");
            let (code, out, err) =
                d.cli_with_input(which, &["cp", &format!("{c}:/tmp/streamed/file"), "-"], b"");
            assert_eq!(code, 0, "{which} {c}: {err}");
            assert_eq!(
                tar_entries(&out),
                [("file".to_string(), "input\n".to_string())]
            );
        }
    }
}

/// Removes host files a test planted at `/`, also when it fails.
struct HostFiles(Vec<PathBuf>);

impl Drop for HostFiles {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[test]
fn cp_stays_inside_the_container_through_symlinks_to_the_root() {
    let d = Daemon::start();
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let name = format!("berth-cp-escape-{}", std::process::id());
    let host = HostFiles(vec![PathBuf::from(format!("/{name}"))]);
    std::fs::write(&host.0[0], "HOST\n").unwrap();
    let f = work.path().join(&name);
    std::fs::write(&f, "copied in\n").unwrap();
    let setup = format!(
        "echo container > /{name} && mkdir -p /tmp/deep/er && ln -s / /tmp/escape && \
         ln -s ../../../../../../.. /tmp/deep/er/up && ln -s /etc/passwd /tmp/abs && sleep 600"
    );
    d.ok(&["run", "-d", "--name", "ctr", "busybox", "sh", "-c", &setup]);
    wait_for("the symlinks", || {
        d.docker(&["exec", "ctr", "test", "-L", "/tmp/abs"])
            .status
            .success()
    });
    for state in ["running", "stopped"] {
        if state == "stopped" {
            d.ok(&["stop", "-t", "0", "ctr"]);
        }
        for which in TOOLS {
            for via in ["/tmp/escape", "/tmp/deep/er/up"] {
                let tag = format!("{which} {state} {via}");
                let (code, out, err) = d.cli(which, &["cp", &format!("ctr:{via}/{name}"), "-"]);
                assert_eq!(code, 0, "{tag}: {err}");
                assert_eq!(
                    tar_entries(out.as_bytes()),
                    [(name.clone(), "container\n".to_string())],
                    "{tag}: the container's file, never the host's"
                );
                cp(&d, which, &[s(&f), &format!("ctr:{via}/")]);
                assert_eq!(
                    std::fs::read_to_string(&host.0[0]).unwrap(),
                    "HOST\n",
                    "{tag}"
                );
                let (code, out, _) = d.cli(which, &["cp", &format!("ctr:/{name}"), "-"]);
                assert_eq!(code, 0);
                assert_eq!(tar_entries(out.as_bytes())[0].1, "copied in\n", "{tag}");
                // Put the container's marker back for the next round.
                let mut b = tar::Builder::new(Vec::new());
                let mut h = tar::Header::new_gnu();
                h.set_size(10);
                h.set_mode(0o644);
                b.append_data(&mut h, &name, &b"container\n"[..]).unwrap();
                let (code, _, err) =
                    d.cli_with_input(which, &["cp", "-", "ctr:/"], &b.into_inner().unwrap());
                assert_eq!(code, 0, "{err}");
            }
            // An absolute symlink is archived as what it is, and -L reads its target in the
            // container.
            let (_, out, _) = d.cli(which, &["cp", "-L", "ctr:/tmp/abs", "-"]);
            assert!(
                tar_entries(out.as_bytes())[0].1.starts_with("root:x:0:0"),
                "{which}"
            );
        }
    }
}

/// The CVE-2018-15664 race: the container swaps a directory and a symlink to `/` as fast
/// as it can while files are copied into and out of that directory.
#[test]
fn cp_never_escapes_while_the_container_swaps_a_symlink_in() {
    let d = Daemon::start();
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let read = format!("berth-cp-race-{}", std::process::id());
    let put = format!("berth-cp-race-put-{}", std::process::id());
    let host = HostFiles(vec![
        PathBuf::from(format!("/{read}")),
        PathBuf::from(format!("/{put}")),
    ]);
    std::fs::write(&host.0[0], "HOST\n").unwrap();
    let before = std::fs::metadata(&host.0[0]).unwrap();
    let local = work.path().join(&put);
    std::fs::write(&local, "put by cp\n").unwrap();
    let swap = format!(
        "mkdir -p /tmp/r/dir && echo container-dir > /tmp/r/dir/{read} && \
         echo container-root > /{read} && cd /tmp/r && \
         while true; do mv dir dir.tmp; ln -s / dir; rm dir; mv dir.tmp dir; done"
    );
    d.ok(&["run", "-d", "--name", "race", "busybox", "sh", "-c", &swap]);
    wait_for("the swap loop", || {
        d.docker(&["exec", "race", "test", "-f", &format!("/{read}")])
            .status
            .success()
    });
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for which in TOOLS {
        for _ in 0..60 {
            let (_, _, _) = d.cli(which, &["cp", s(&local), "race:/tmp/r/dir/"]);
            let (code, out, _) = d.cli(which, &["cp", &format!("race:/tmp/r/dir/{read}"), "-"]);
            let outcome = if code == 0 {
                tar_entries(out.as_bytes())
                    .first()
                    .map(|e| e.1.clone())
                    .unwrap_or_default()
            } else {
                "failed".to_string()
            };
            *seen.entry(outcome).or_default() += 1;
        }
    }
    assert!(
        seen.keys()
            .all(|k| ["container-dir\n", "container-root\n", "failed"].contains(&k.as_str())),
        "a copy read something else than the container's files: {seen:?}"
    );
    assert!(
        seen.keys().any(|k| k != "container-dir\n"),
        "the swap never raced a copy: {seen:?}"
    );
    assert!(
        seen.keys().any(|k| k != "failed"),
        "no copy ever got through: {seen:?}"
    );
    let after = std::fs::metadata(&host.0[0]).unwrap();
    assert_eq!(std::fs::read_to_string(&host.0[0]).unwrap(), "HOST\n");
    assert_eq!(
        (after.ino(), after.mtime(), after.mtime_nsec()),
        (before.ino(), before.mtime(), before.mtime_nsec())
    );
    assert!(!host.0[1].exists(), "a copy wrote to the host's /{put}");
    // What the copies wrote went to the container: its directory, or its root.
    let found = d.ok(&[
        "exec",
        "race",
        "sh",
        "-c",
        &format!("cat /{put} /tmp/r/dir/{put} /tmp/r/dir.tmp/{put} 2>/dev/null; true"),
    ]);
    assert!(found.contains("put by cp"), "{found}");
}

/// A tar whose entries are written with these raw names (no normalisation).
fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        let raw = &mut h.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        let content: &[u8] = if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            let l = &mut h.as_old_mut().linkname;
            l[..data.len()].copy_from_slice(data.as_bytes());
            &[]
        } else {
            data.as_bytes()
        };
        h.set_size(content.len() as u64);
        h.set_cksum();
        b.append(&h, content).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn cp_of_a_crafted_tar_writes_nothing_outside_the_container() {
    let d = Daemon::start();
    d.busybox();
    let pid = std::process::id();
    let names: Vec<String> = ["dotdot", "deep", "abs", "link", "hard"]
        .iter()
        .map(|n| format!("berth-cp-evil-{n}-{pid}"))
        .collect();
    let host = HostFiles(
        names
            .iter()
            .map(|n| PathBuf::from(format!("/{n}")))
            .collect(),
    );
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ctr",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /tmp/dst && sleep 600",
    ]);
    d.ok(&["create", "--name", "stopped", "busybox", "true"]);
    let dotdot = format!("../../../../{}", names[0]);
    let deep = format!("a/../../../{}", names[1]);
    let cases: Vec<(Vec<u8>, String)> = vec![
        (
            raw_tar(&[
                ("ok-before", tar::EntryType::Regular, "x"),
                (&dotdot, tar::EntryType::Regular, "evil"),
            ]),
            format!("\"../../../../{}\" is outside of \"/tmp/dst\"", names[0]),
        ),
        (
            raw_tar(&[(&deep, tar::EntryType::Regular, "evil")]),
            format!("\"../../{}\" is outside of \"/tmp/dst\"", names[1]),
        ),
        (
            raw_tar(&[("up", tar::EntryType::Symlink, "../../..")]),
            "invalid symlink \"/tmp/dst/up\" -> \"../../..\"".to_string(),
        ),
        (
            raw_tar(&[("h", tar::EntryType::Link, &format!("../../../{}", names[4]))]),
            format!(
                "invalid hardlink \"/{}\" -> \"../../../{}\"",
                names[4], names[4]
            ),
        ),
    ];
    for which in TOOLS {
        for c in ["ctr", "stopped"] {
            if c == "stopped" {
                // The stopped container's destination exists too.
                let (code, _, err) = d.cli_with_input(
                    which,
                    &["cp", "-", "stopped:/tmp"],
                    &raw_tar(&[("dst/", tar::EntryType::Directory, "")]),
                );
                assert_eq!(code, 0, "{err}");
            }
            for (tar, want) in &cases {
                let (code, _, err) =
                    d.cli_with_input(which, &["cp", "-", &format!("{c}:/tmp/dst")], tar);
                assert_eq!(code, 1, "{which} {c}: {err}");
                assert_eq!(
                    err.trim(),
                    format!("Error response from daemon: {want}"),
                    "{which} {c}"
                );
            }
            // Absolute names and absolute symlinks land inside the container: a symlink to
            // `/` planted by the tar, then written through, is the container's `/`.
            let tricks = raw_tar(&[
                (
                    &format!("/{}", names[2]),
                    tar::EntryType::Regular,
                    "abs name\n",
                ),
                ("root", tar::EntryType::Symlink, "/"),
                (
                    &format!("root/{}", names[3]),
                    tar::EntryType::Regular,
                    "through a link\n",
                ),
            ]);
            let (code, _, err) =
                d.cli_with_input(which, &["cp", "-", &format!("{c}:/tmp/dst")], &tricks);
            assert_eq!(code, 0, "{which} {c}: {err}");
            let (_, out, _) = d.cli(which, &["cp", &format!("{c}:/tmp/dst/{}", names[2]), "-"]);
            assert_eq!(tar_entries(out.as_bytes())[0].1, "abs name\n");
            let (_, out, _) = d.cli(which, &["cp", &format!("{c}:/{}", names[3]), "-"]);
            assert_eq!(
                tar_entries(out.as_bytes())[0].1,
                "through a link\n",
                "{which} {c}"
            );
        }
    }
    for p in &host.0 {
        assert!(!p.exists(), "{} was written on the host", p.display());
    }
}

#[test]
fn cp_refuses_read_only_targets_and_kernel_filesystems() {
    let d = Daemon::start();
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("f");
    std::fs::write(&f, "x").unwrap();
    let rw = work.path().join("rw");
    let ro = work.path().join("ro");
    std::fs::create_dir(&rw).unwrap();
    std::fs::create_dir(&ro).unwrap();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ctr",
        "--read-only",
        "-v",
        &format!("{}:/rw", s(&rw)),
        "-v",
        &format!("{}:/ro:ro", s(&ro)),
        "busybox",
        "sleep",
        "600",
    ]);
    for state in ["running", "stopped"] {
        if state == "stopped" {
            d.ok(&["stop", "-t", "0", "ctr"]);
        }
        for which in TOOLS {
            let refuse = |dest: &str, want: &str| {
                let (code, _, err) = d.cli(which, &["cp", s(&f), dest]);
                assert_eq!(code, 1, "{which} {state} {dest}: {err}");
                assert_eq!(
                    err.trim(),
                    format!("Error response from daemon: {want}"),
                    "{which} {state}"
                );
            };
            refuse("ctr:/tmp/", "container rootfs is marked read-only");
            refuse("ctr:/ro/", "mounted volume is marked read-only");
            cp(&d, which, &[s(&f), &format!("ctr:/rw/{which}-{state}")]);
            assert!(rw.join(format!("{which}-{state}")).is_file());
            assert!(std::fs::read_dir(&ro).unwrap().next().is_none());
        }
    }
    // A running container's kernel filesystems are not its files: nothing is read from or
    // written into them.
    d.ok(&["run", "-d", "--name", "kfs", "busybox", "sleep", "600"]);
    for which in TOOLS {
        let (code, _, err) = d.cli(which, &["cp", "kfs:/proc/self/environ", "-"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("Could not find the file /proc/self/environ in container kfs"),
            "{err}"
        );
        let (code, out, err) = d.cli(which, &["cp", "kfs:/proc", "-"]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            tar_entries(out.as_bytes()).len(),
            1,
            "/proc shows as an empty directory"
        );
        let (code, _, err) = d.cli(which, &["cp", s(&f), "kfs:/sys/"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("cannot copy into /sys: it is the container's sysfs filesystem"),
            "{err}"
        );
    }
}

#[test]
fn cp_never_replaces_a_mount_point_of_the_container() {
    // berthd copies from outside the container's mount namespace, where unlinking the
    // container's mount point succeeds and silently detaches the mount: a read-only bind of
    // a file became a writable file of the container's own. Docker's extraction, inside
    // the namespace, gets EBUSY; so does berth's now.
    let d = Daemon::start();
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("cfg");
    std::fs::write(&cfg, "host\n").unwrap();
    let vol = work.path().join("vol");
    std::fs::create_dir(&vol).unwrap();
    std::fs::set_permissions(&vol, std::fs::Permissions::from_mode(0o755)).unwrap();
    d.ok(&[
        "run",
        "-d",
        "--name",
        "ctr",
        "-v",
        &format!("{}:/etc/cfg:ro", s(&cfg)),
        "-v",
        &format!("{}:/data", s(&vol)),
        "busybox",
        "sleep",
        "600",
    ]);
    let new = work.path().join("new");
    std::fs::write(&new, "new\n").unwrap();
    for which in TOOLS {
        let (code, _, err) = d.cli(which, &["cp", s(&new), "ctr:/etc/cfg"]);
        assert_eq!(code, 1, "{which}: {err}");
        assert_eq!(
            err.trim(),
            "Error response from daemon: unlinkat /etc/cfg: device or resource busy",
            "{which}"
        );
    }
    let out = d.ok(&[
        "exec",
        "ctr",
        "sh",
        "-c",
        "cat /etc/cfg; grep -c ' /etc/cfg ' /proc/mounts; (echo x >> /etc/cfg) 2>/dev/null || echo refused",
    ]);
    assert_eq!(
        out, "host\n1\nrefused\n",
        "the bind is still there, read-only"
    );
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "host\n");
    // A directory of the archive merges into the volume: its files land on the host, and
    // the mount's root keeps its own mode and owner (the host's directory).
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::write(src.join("data/f"), "inside\n").unwrap();
    std::fs::set_permissions(src.join("data"), std::fs::Permissions::from_mode(0o700)).unwrap();
    cp(&d, "docker", &[&format!("{}/.", s(&src)), "ctr:/"]);
    assert_eq!(std::fs::read_to_string(vol.join("f")).unwrap(), "inside\n");
    assert_eq!(std::fs::metadata(&vol).unwrap().mode() & 0o7777, 0o755);
}

#[test]
fn cp_emits_dockers_events_and_is_bounded_by_the_ingest_limit() {
    let d = Daemon::start_with_args(&["--max-ingest-size", "8m"]);
    d.busybox();
    let work = tempfile::tempdir().unwrap();
    let small = work.path().join("small");
    std::fs::write(&small, "x").unwrap();
    let big = work.path().join("big");
    std::fs::write(&big, vec![b'b'; 12 << 20]).unwrap();
    d.ok(&["run", "-d", "--name", "ev", "busybox", "sleep", "600"]);
    let since = now();
    cp(&d, "docker", &[s(&small), "ev:/tmp/"]);
    cp(
        &d,
        "berth",
        &["ev:/tmp/small", s(&work.path().join("back"))],
    );
    let (code, _, _) = d.cli("docker", &["cp", "ev:/etc", "-"]);
    assert_eq!(code, 0);
    let events = d.events(
        &since,
        &now(),
        &["container=ev"],
        "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.image}}",
    );
    let copies: Vec<&str> = events
        .lines()
        .filter(|l| l.starts_with("archive-path") || l.starts_with("extract-to-dir"))
        .collect();
    assert_eq!(
        copies,
        [
            "extract-to-dir ev busybox",
            "archive-path ev busybox",
            "archive-path ev busybox"
        ],
        "{events}"
    );
    for which in TOOLS {
        let (code, _, err) = d.cli(which, &["cp", s(&big), "ev:/tmp/"]);
        assert_eq!(code, 1, "{which}: {err}");
        assert!(
            err.contains("archive too large") && err.contains("--max-ingest-size"),
            "{which}: {err}"
        );
    }
}

/// The docker CLI 28's report of a copy (cli/command/container/cp.go): with stdout on a
/// terminal (or `--quiet=false`) the line "Successfully copied <size> to <destination>" on
/// stderr; nothing with `-q`, without a terminal, or with `-` as the destination (with `-`
/// as the source: the line, with the 0B its count never sees).
/// berth prints the same bytes, read here from the docker CLI itself.
#[test]
fn cp_reports_the_copy_as_the_docker_cli_does() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["run", "-d", "--name", "ctr", "busybox", "sleep", "600"]);
    let tree = make_tree(d.dir.path());
    let out = d.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let a = s(&tree.join("a")).to_string();
    let out_a = s(&out.join("a")).to_string();
    let out_tree = s(&out.join("tree")).to_string();
    let mut input = tar::Builder::new(Vec::new());
    input
        .append_path_with_name(tree.join("a"), "streamed")
        .unwrap();
    let input = input.into_inner().unwrap();
    let cases: Vec<(Vec<&str>, &[u8])> = vec![
        (vec!["cp", "--quiet=false", &a, "ctr:/tmp/a"], b""),
        (vec!["cp", "--quiet=false", s(&tree), "ctr:/tmp/tree"], b""),
        (vec!["cp", "--quiet=false", "ctr:/tmp/a", &out_a], b""),
        (vec!["cp", "--quiet=false", "ctr:/tmp/tree", &out_tree], b""),
        (vec!["cp", "--quiet=false", "-", "ctr:/tmp"], &input),
        (vec!["cp", "--quiet=false", "ctr:/tmp/a", "-"], b""),
        (vec!["cp", &a, "ctr:/tmp/b"], b""),
        (vec!["cp", "-q", "ctr:/tmp/a", &out_a], b""),
    ];
    for (args, stdin) in &cases {
        let (code, _, docker_err) = d.cli_with_input("docker", args, stdin);
        assert_eq!(code, 0, "docker {args:?}: {docker_err}");
        let (code, _, berth_err) = d.cli_with_input("berth", args, stdin);
        assert_eq!(code, 0, "berth {args:?}: {berth_err}");
        assert_eq!(berth_err, docker_err, "{args:?}");
        let summary = args[1] == "--quiet=false" && args[3] != "-";
        assert_eq!(
            docker_err.starts_with("Successfully copied "),
            summary,
            "{args:?}: {docker_err}"
        );
    }
    let (_, _, err) = d.cli_with_input("berth", &cases[0].0, b"");
    assert_eq!(err, "Successfully copied 2.05kB to ctr:/tmp/a\n");

    // On a terminal the line alone: docker 28's progress display looks for a terminal
    // behind its wrapped stderr and never finds one.
    let mut t = d.terminal(&format!(
        "docker cp {a} ctr:/tmp/t; echo =; berth cp {a} ctr:/tmp/t; echo =; \
         docker cp ctr:/tmp/t {out_a}; echo =; berth cp ctr:/tmp/t {out_a}; echo ="
    ));
    let shown: Vec<String> = (0..4).map(|_| t.expect("=\r\n")).collect();
    assert_eq!(t.finish(), 0);
    for (docker, berth, to) in [
        (&shown[0], &shown[1], "ctr:/tmp/t"),
        (&shown[2], &shown[3], out_a.as_str()),
    ] {
        assert_eq!(berth, docker);
        assert_eq!(
            docker.trim_start_matches("\r\n"),
            format!("Successfully copied 2.05kB to {to}\r\n=\r\n")
        );
    }
}
