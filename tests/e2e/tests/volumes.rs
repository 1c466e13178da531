//! Named volumes: the volume store and the `volume` verbs end to end, through the real
//! docker CLI and berth's against a test berthd, with a volume's users taken from the
//! container records (mounting itself is mounts.rs's).

use berth_e2e::api::now;
use berth_e2e::Daemon;

/// Runs `args` through both CLIs and asserts the same exit code and stdout.
fn same_in_both(d: &Daemon, args: &[&str]) -> String {
    let (dc, dout, derr) = d.cli("docker", args);
    let (bc, bout, berr) = d.cli("berth", args);
    assert_eq!(
        (bc, &bout),
        (dc, &dout),
        "{args:?}: docker said {derr}, berth {berr}"
    );
    dout
}

/// Runs a failing `args` through both CLIs: the same exit code and stderr, returned.
fn same_error_in_both(d: &Daemon, args: &[&str]) -> String {
    let (dc, _, derr) = d.cli("docker", args);
    let (bc, _, berr) = d.cli("berth", args);
    assert_ne!(dc, 0, "{args:?} succeeded");
    assert_eq!((bc, berr.trim()), (dc, derr.trim()), "{args:?}");
    derr
}

fn names(d: &Daemon) -> Vec<String> {
    d.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn volume_create_ls_and_inspect_through_both_clis() {
    let d = Daemon::start();
    assert_eq!(
        d.ok(&["volume", "create", "web-data", "--label", "app=web"])
            .trim(),
        "web-data"
    );
    assert_eq!(
        d.berth_ok(&["volume", "create", "--label", "app=db", "--label", "tier", "db-data"])
            .trim(),
        "db-data"
    );
    // Without a name: Docker's 64 hex characters.
    let anon = d.ok(&["volume", "create"]).trim().to_string();
    assert_eq!(anon.len(), 64, "{anon}");
    assert!(anon.bytes().all(|b| b.is_ascii_hexdigit()), "{anon}");
    // The same name again: the same volume, printed again.
    assert_eq!(
        d.berth_ok(&["volume", "create", "web-data"]).trim(),
        "web-data"
    );

    let table = same_in_both(&d, &["volume", "ls"]);
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("DRIVER    VOLUME NAME"));
    assert_eq!(lines.count(), 3, "{table}");
    assert!(table.contains("local     web-data\n"), "{table}");
    assert_eq!(same_in_both(&d, &["volume", "ls", "-q"]).lines().count(), 3);
    for filter in [
        "name=data",
        "label=app",
        "label=app=db",
        "label=tier",
        "driver=local",
        "dangling=true",
        "dangling=false",
    ] {
        same_in_both(&d, &["volume", "ls", "-q", "--filter", filter]);
    }
    assert_eq!(
        same_in_both(&d, &["volume", "ls", "-q", "--filter", "label=app=db"]),
        "db-data\n"
    );
    assert_eq!(
        same_in_both(&d, &["volume", "ls", "-q", "--filter", "name=data"]),
        "db-data\nweb-data\n"
    );
    assert_eq!(
        same_in_both(&d, &["volume", "ls", "-q", "--filter", "dangling=false"]),
        ""
    );
    let json = same_in_both(
        &d,
        &["volume", "ls", "--format", "json", "--filter", "name=web"],
    );
    let row: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(row["Labels"], "app=web");
    // Labels only where there is one: docker joins several in its map's random order.
    same_in_both(
        &d,
        &[
            "volume",
            "ls",
            "--filter",
            "name=web",
            "--format",
            "table {{.Name}}\t{{.Driver}}\t{{.Scope}}\t{{.Labels}}",
        ],
    );
    same_in_both(
        &d,
        &[
            "volume",
            "ls",
            "--format",
            "table {{.Name}}\t{{.Driver}}\t{{.Scope}}",
        ],
    );
    same_in_both(
        &d,
        &["volume", "ls", "--format", "{{.Name}} {{.Mountpoint}}"],
    );
    let e = same_error_in_both(&d, &["volume", "ls", "--filter", "bogus=1"]);
    assert!(e.contains("invalid filter 'bogus'"), "{e}");

    let out = same_in_both(&d, &["volume", "inspect", "db-data", "web-data"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let db = &v[0];
    assert_eq!(db["Name"], "db-data");
    assert_eq!(db["Driver"], "local");
    assert_eq!(db["Scope"], "local");
    assert_eq!(db["Labels"], serde_json::json!({"app": "db", "tier": ""}));
    assert_eq!(db["Options"], serde_json::Value::Null);
    let mountpoint = d.root().join("volumes/db-data/_data");
    assert_eq!(db["Mountpoint"], mountpoint.to_str().unwrap());
    assert!(mountpoint.is_dir());
    let created = chrono::DateTime::parse_from_rfc3339(db["CreatedAt"].as_str().unwrap()).unwrap();
    let age = chrono::Utc::now().signed_duration_since(created);
    assert!(
        age.num_seconds() < 600 && age.num_seconds() >= -1,
        "{created}"
    );
    assert_eq!(
        same_in_both(
            &d,
            &[
                "volume",
                "inspect",
                "-f",
                "{{.Name}} {{.Driver}} {{.Labels.app}}",
                "db-data"
            ]
        ),
        "db-data local db\n"
    );
    let e = same_error_in_both(&d, &["volume", "inspect", "nope"]);
    assert!(e.contains("get nope: no such volume"), "{e}");
}

#[test]
fn volume_rm_and_prune_as_docker() {
    let d = Daemon::start();
    let since = chrono::Utc::now().timestamp() - 1;
    for which in ["docker", "berth"] {
        let run = |args: &[&str]| {
            let (code, out, err) = d.cli(which, args);
            assert_eq!(code, 0, "{which} {args:?}: {err}");
            out
        };
        run(&["volume", "create", "named1"]);
        run(&["volume", "create", "named2", "--label", "keep=yes"]);
        let anon = run(&[
            "volume",
            "create",
            "--label",
            "com.docker.volume.anonymous=",
        ]);
        let anon = anon.trim().to_string();
        std::fs::write(
            d.root().join(format!("volumes/{anon}/_data/file")),
            vec![7u8; 2048],
        )
        .unwrap();
        // Docker 23+: only anonymous volumes without -a.
        assert_eq!(
            run(&["volume", "prune", "-f"]),
            format!("Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 2.048kB\n"),
            "{which}"
        );
        assert!(!d.root().join(format!("volumes/{anon}")).exists());
        assert_eq!(names(&d), ["named1", "named2"], "{which}");
        assert_eq!(
            run(&["volume", "prune", "-f"]),
            "Total reclaimed space: 0B\n",
            "{which}"
        );
        assert_eq!(
            run(&["volume", "prune", "-af", "--filter", "label!=keep=yes"]),
            "Deleted Volumes:\nnamed1\n\nTotal reclaimed space: 0B\n",
            "{which}"
        );
        assert_eq!(run(&["volume", "rm", "named2"]), "named2\n", "{which}");
        assert!(names(&d).is_empty(), "{which}");
    }
    d.ok(&["volume", "create", "v1"]);
    d.ok(&["volume", "create", "v2"]);
    let (dc, dout, derr) = d.cli("docker", &["volume", "rm", "v1", "missing"]);
    let (bc, bout, berr) = d.cli("berth", &["volume", "rm", "v2", "missing"]);
    assert_eq!(
        (dc, dout.as_str(), derr.trim()),
        (
            1,
            "v1\n",
            "Error response from daemon: get missing: no such volume"
        )
    );
    assert_eq!((bc, bout.as_str(), berr.trim()), (dc, "v2\n", derr.trim()));
    // -f: a missing volume is no error.
    assert_eq!(
        same_in_both(&d, &["volume", "rm", "-f", "missing"]),
        "missing\n"
    );
    assert!(names(&d).is_empty());
    let e = same_error_in_both(&d, &["volume", "prune", "-f", "--filter", "name=x"]);
    assert!(e.contains("invalid filter 'name'"), "{e}");
    // Docker's events: create and destroy of the volume, by name, and a prune per prune.
    let events = d.events(
        &since.to_string(),
        &now(),
        &["type=volume", "volume=v1"],
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}",
    );
    assert_eq!(events, "create v1 local\ndestroy v1 local\n");
    let prunes = d.events(
        &since.to_string(),
        &now(),
        &["type=volume", "event=prune"],
        "{{.Action}}",
    );
    assert_eq!(prunes.lines().count(), 6, "{prunes}");
}

#[test]
fn bad_volume_requests_are_refused_in_dockers_words() {
    let d = Daemon::start();
    let e = same_error_in_both(&d, &["volume", "create", "a/b"]);
    assert_eq!(
        e.trim(),
        "Error response from daemon: create a/b: \"a/b\" includes invalid characters for a \
         local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended \
         to pass a host directory, use absolute path"
    );
    same_error_in_both(&d, &["volume", "create", ".."]);
    same_error_in_both(&d, &["volume", "create", &"x".repeat(256)]);
    let e = same_error_in_both(&d, &["volume", "create", "-d", "nfs", "x1"]);
    assert_eq!(
        e.trim(),
        "Error response from daemon: error looking up volume plugin nfs: plugin \"nfs\" not found"
    );
    let e = same_error_in_both(
        &d,
        &[
            "volume",
            "create",
            "-o",
            "type=nfs",
            "-o",
            "device=:/export",
            "x1",
        ],
    );
    assert_eq!(
        e.trim(),
        "Error response from daemon: volume option type=nfs is not supported by berth yet (it \
         mounts tmpfs and binds): refused rather than ignored"
    );
    assert!(names(&d).is_empty());
    assert!(!d.root().join("volumes/x1").exists());
}

/// A volume's users come from the container records: `rm` of a volume a container (running
/// or not) mounts is Docker's 409 naming it, `-f` too; prune and `dangling` agree; and a
/// berthd killed and started again still sees the user.
#[test]
fn a_volume_in_use_is_kept_across_a_berthd_restart() {
    let mut d = Daemon::start();
    d.busybox();
    let c = d
        .ok(&[
            "create", "--name", "user", "-v", "inuse:/d", "busybox", "true",
        ])
        .trim()
        .to_string();
    d.ok(&["volume", "create", "free"]);
    let check = |d: &Daemon| {
        for which in ["docker", "berth"] {
            for args in [
                &["volume", "rm", "inuse"][..],
                &["volume", "rm", "-f", "inuse"],
            ] {
                let (code, _, err) = d.cli(which, args);
                assert_eq!(code, 1, "{which} {args:?}");
                assert_eq!(
                    err.trim(),
                    format!("Error response from daemon: remove inuse: volume is in use - [{c}]"),
                    "{which} {args:?}"
                );
            }
        }
        assert_eq!(
            d.ok(&["volume", "ls", "-q", "--filter", "dangling=false"]),
            "inuse\n"
        );
        assert_eq!(
            d.ok(&["volume", "ls", "-q", "--filter", "dangling=true"]),
            "free\n"
        );
    };
    check(&d);
    d.kill9();
    d.spawn();
    check(&d);
    let pruned = d.ok(&["volume", "prune", "-af"]);
    assert!(
        pruned.contains("free") && !pruned.contains("inuse"),
        "{pruned}"
    );
    assert_eq!(names(&d), ["inuse"]);
    d.ok(&["rm", &c]);
    assert_eq!(d.ok(&["volume", "rm", "inuse"]), "inuse\n");
    assert!(names(&d).is_empty());
}

#[test]
fn a_volume_survives_a_berthd_kill_9_and_restart() {
    let mut d = Daemon::start();
    d.ok(&["volume", "create", "--label", "a=b", "precious"]);
    let data = d.root().join("volumes/precious/_data");
    std::fs::write(data.join("record"), b"patient data").unwrap();
    let before = d.ok(&["volume", "inspect", "precious"]);
    // A create that died half-way leaves a hidden staging directory: never listed, and
    // cleared by the next start.
    let staging = d.root().join("volumes/.tmp-crashed");
    std::fs::create_dir_all(staging.join("_data")).unwrap();
    d.kill9();
    d.spawn();
    assert_eq!(d.ok(&["volume", "inspect", "precious"]), before);
    assert_eq!(std::fs::read(data.join("record")).unwrap(), b"patient data");
    assert_eq!(names(&d), ["precious"]);
    assert!(!staging.exists());
}
