//! Containers mounting volumes (issue 15): named and anonymous volumes, the image's
//! `VOLUME`s, Docker's copy-up, `--volumes-from`, `--tmpfs` and `--mount`, through the real
//! docker CLI and berth's against a test berthd; what happens to the data when containers
//! and berthd go; and a volume's users as the container records say.

use std::os::unix::fs::MetadataExt;

use berth_e2e::{busybox_tar_with, text, Daemon};

/// `dbimg`: busybox with `/var/lib/db` owned by 999:998 (mode 0750) holding `seed` (999,
/// 0640), and `VOLUME /var/lib/db`, as a database image has.
fn db_image(d: &Daemon) {
    let tar = busybox_tar_with(d.dir.path(), "db.tar", &[], |b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o750);
        h.set_uid(999);
        h.set_gid(998);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, "var/lib/db", std::io::empty())
            .unwrap();
        let seed = b"seeded\n";
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o640);
        h.set_uid(999);
        h.set_gid(999);
        h.set_size(seed.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, "var/lib/db/seed", &seed[..]).unwrap();
    });
    let o = d.docker(&[
        "import",
        "--change",
        "VOLUME /var/lib/db",
        tar.to_str().unwrap(),
        "dbimg",
    ]);
    assert!(o.status.success(), "import: {}", text(&o.stderr));
}

fn volumes(d: &Daemon) -> Vec<String> {
    let mut v: Vec<String> = d
        .ok(&["volume", "ls", "-q"])
        .lines()
        .map(String::from)
        .collect();
    v.sort();
    v
}

fn fails(d: &Daemon, which: &str, args: &[&str]) -> String {
    let (code, out, err) = d.cli(which, args);
    assert_ne!(code, 0, "{which} {args:?} succeeded: {out}");
    err
}

#[test]
fn a_named_volume_is_filled_from_the_image_and_outlives_containers_and_berthd() {
    let mut d = Daemon::start();
    db_image(&d);
    // Copy-up: the image's files, owners and modes, into the new volume.
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "pgdata:/var/lib/db",
        "dbimg",
        "sh",
        "-c",
        "stat -c '%u:%g %a' /var/lib/db /var/lib/db/seed; cat /var/lib/db/seed; \
         echo written >> /var/lib/db/seed",
    ]);
    assert_eq!(out, "999:998 750\n999:999 640\nseeded\n");
    // `-v NAME:` over the image's VOLUME: no anonymous volume beside it, and --rm keeps
    // the named one.
    assert_eq!(volumes(&d), ["pgdata"]);
    let data = d.root().join("volumes/pgdata/_data");
    let m = std::fs::metadata(&data).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (999, 998, 0o750));

    // berthd killed and started again: the data is there, and a volume with content is
    // not copied into again.
    d.kill9();
    d.spawn();
    let out = d.berth_ok(&["run", "--rm", "-v", "pgdata:/d", "dbimg", "cat", "/d/seed"]);
    assert_eq!(out, "seeded\nwritten\n");

    // nocopy: a new volume stays empty.
    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "empty:/var/lib/db:nocopy",
        "dbimg",
        "ls",
        "-A",
        "/var/lib/db",
    ]);
    assert_eq!(out, "");
    let out = d.ok(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,src=empty2,dst=/var/lib/db,volume-nocopy",
        "dbimg",
        "ls",
        "-A",
        "/var/lib/db",
    ]);
    assert_eq!(out, "");
}

#[test]
fn read_only_volumes_refuse_writes_and_inspect_shows_dockers_mounts() {
    let d = Daemon::start();
    db_image(&d);
    d.ok(&["volume", "create", "shared"]);
    for which in ["docker", "berth"] {
        let err = fails(
            &d,
            which,
            &[
                "run",
                "--rm",
                "-v",
                "shared:/s:ro",
                "dbimg",
                "touch",
                "/s/f",
            ],
        );
        assert!(err.contains("Read-only file system"), "{which}: {err}");
        let err = fails(
            &d,
            which,
            &[
                "run",
                "--rm",
                "--mount",
                "type=volume,src=shared,dst=/s,readonly",
                "dbimg",
                "touch",
                "/s/f",
            ],
        );
        assert!(err.contains("Read-only file system"), "{which}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(d.root().join("volumes/shared/_data"))
            .unwrap()
            .count(),
        0
    );

    let host = d.dir.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    let c = d
        .ok(&[
            "create",
            "-v",
            "shared:/s",
            "-v",
            &format!("{}:/h:ro", host.display()),
            "--tmpfs",
            "/t:size=1m",
            "dbimg",
            "true",
        ])
        .trim()
        .to_string();
    let mounts = d.ok(&["inspect", "-f", "{{json .Mounts}}", &c]);
    let mounts: serde_json::Value = serde_json::from_str(&mounts).unwrap();
    let by_dest = |dest: &str| {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap_or_else(|| panic!("no mount at {dest}: {mounts}"))
            .clone()
    };
    let s = by_dest("/s");
    assert_eq!(s["Type"], "volume");
    assert_eq!(s["Name"], "shared");
    assert_eq!(s["Driver"], "local");
    assert_eq!(
        s["Mode"], "z",
        "Docker's mode for a local volume given none"
    );
    assert_eq!(s["RW"], true);
    assert_eq!(s["Propagation"], "");
    assert_eq!(
        s["Source"],
        d.root().join("volumes/shared/_data").display().to_string()
    );
    let h = by_dest("/h");
    assert_eq!(h["Type"], "bind");
    assert_eq!(h["Source"], host.display().to_string());
    assert_eq!(
        (h["Mode"].as_str(), h["RW"].as_bool()),
        (Some("ro"), Some(false))
    );
    assert_eq!(h["Propagation"], "rprivate");
    // The image's VOLUME: an anonymous volume, named by 64 hex characters.
    let anon = by_dest("/var/lib/db");
    assert_eq!(anon["Type"], "volume");
    assert_eq!(anon["Name"].as_str().unwrap().len(), 64);
    // A --tmpfs mount is not in Docker's Mounts of inspect (HostConfig.Tmpfs has it).
    assert_eq!(mounts.as_array().unwrap().len(), 3, "{mounts}");
    let c = d
        .ok(&["create", "--mount", "type=tmpfs,dst=/t", "dbimg", "true"])
        .trim()
        .to_string();
    let t = d.ok(&["inspect", "-f", "{{json (index .Mounts 0)}}", &c]);
    let t: serde_json::Value = serde_json::from_str(&t).unwrap();
    assert_eq!(
        (
            t["Type"].as_str(),
            t["Destination"].as_str(),
            t["Source"].as_str()
        ),
        (Some("tmpfs"), Some("/t"), Some(""))
    );
}

#[test]
fn anonymous_volumes_go_with_rm_v_and_run_rm_and_named_ones_stay() {
    let d = Daemon::start();
    db_image(&d);
    // --rm: the image's VOLUME and a -v /path go with the container; the named one stays.
    d.ok(&[
        "run", "--rm", "-v", "/scratch", "-v", "keep:/k", "dbimg", "true",
    ]);
    assert_eq!(volumes(&d), ["keep"]);
    // rm without -v keeps the anonymous volume (dangling now); rm -v removes it.
    let c = d.ok(&["create", "dbimg", "true"]).trim().to_string();
    let anon: Vec<String> = volumes(&d).into_iter().filter(|v| v != "keep").collect();
    assert_eq!(anon.len(), 1);
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{.Labels}}", &anon[0]])
            .trim(),
        "map[com.docker.volume.anonymous:]"
    );
    d.ok(&["rm", &c]);
    assert_eq!(volumes(&d).len(), 2, "rm without -v keeps it");
    d.ok(&["volume", "rm", &anon[0]]);
    let c = d.ok(&["create", "dbimg", "true"]).trim().to_string();
    assert_eq!(volumes(&d).len(), 2);
    d.berth_ok(&["rm", "-v", &c]);
    assert_eq!(volumes(&d), ["keep"]);
    // `ps --filter volume=` by name and by destination.
    let c = d
        .ok(&["create", "--name", "user", "-v", "keep:/k", "dbimg", "true"])
        .trim()
        .to_string();
    for f in ["volume=keep", "volume=/k"] {
        assert_eq!(
            d.ok(&["ps", "-aq", "--no-trunc", "--filter", f]).trim(),
            c,
            "{f}"
        );
    }
    assert_eq!(d.ok(&["ps", "-aq", "--filter", "volume=other"]).trim(), "");
}

#[test]
fn volumes_from_shares_another_containers_volumes_read_only_when_asked() {
    let d = Daemon::start();
    db_image(&d);
    d.ok(&[
        "run",
        "--name",
        "data",
        "dbimg",
        "sh",
        "-c",
        "echo one > /var/lib/db/f",
    ]);
    for which in ["docker", "berth"] {
        let out = d.cli(
            which,
            &[
                "run",
                "--rm",
                "--volumes-from",
                "data",
                "dbimg",
                "cat",
                "/var/lib/db/f",
            ],
        );
        assert_eq!((out.0, out.1.as_str()), (0, "one\n"), "{which}: {}", out.2);
        let err = fails(
            &d,
            which,
            &[
                "run",
                "--rm",
                "--volumes-from",
                "data:ro",
                "dbimg",
                "touch",
                "/var/lib/db/g",
            ],
        );
        assert!(err.contains("Read-only file system"), "{which}: {err}");
        let err = fails(
            &d,
            which,
            &["run", "--rm", "--volumes-from", "nosuch", "dbimg", "true"],
        );
        assert!(err.contains("No such container: nosuch"), "{which}: {err}");
    }
    // The --rm containers took no volume of their own and removed none of data's.
    assert_eq!(volumes(&d).len(), 1);
}

#[test]
fn tmpfs_size_and_mode_are_enforced() {
    let d = Daemon::start();
    d.busybox();
    for (which, args) in [
        ("docker", vec!["--tmpfs", "/t:size=1m,mode=1770"]),
        (
            "berth",
            vec!["--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770"],
        ),
    ] {
        let mut run = vec!["run", "--rm"];
        run.extend(args);
        run.extend([
            "busybox",
            "sh",
            "-c",
            "stat -c %a /t; grep ' /t ' /proc/mounts; \
             dd if=/dev/zero of=/t/f bs=1024 count=2048 2>&1 | grep -c 'No space left'",
        ]);
        let (code, out, err) = d.cli(which, &run);
        assert_eq!(code, 0, "{which}: {err}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "1770", "{which}: {out}");
        assert!(
            lines[1].contains("nosuid,nodev,noexec") && lines[1].contains("size=1024k"),
            "{which}: {out}"
        );
        assert_eq!(
            lines[2], "1",
            "{which}: a 2 MiB write fills a 1 MiB tmpfs: {out}"
        );
    }
    // Options tmpfs does not know are refused before anything runs.
    for which in ["docker", "berth"] {
        let err = fails(
            &d,
            which,
            &["run", "--rm", "--tmpfs", "/t:bogus", "busybox", "true"],
        );
        assert!(
            err.contains("invalid tmpfs option \"bogus\""),
            "{which}: {err}"
        );
    }
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

#[test]
fn binds_by_v_make_a_missing_source_and_by_mount_refuse_it() {
    let d = Daemon::start();
    d.busybox();
    let made = d.dir.path().join("made/by/v");
    let v = format!("{}:/m", made.display());
    d.ok(&["run", "--rm", "-v", &v, "busybox", "touch", "/m/f"]);
    assert!(made.join("f").exists());
    let missing = d.dir.path().join("missing");
    let m = format!("type=bind,src={},dst=/m", missing.display());
    for which in ["docker", "berth"] {
        let err = fails(
            &d,
            which,
            &["run", "--rm", "--mount", &m, "busybox", "true"],
        );
        assert!(
            err.contains(&format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                missing.display()
            )),
            "{which}: {err}"
        );
    }
    assert!(!missing.exists());
}

/// CVE-2021-30465's class: a container that shares a volume swaps a directory of it for a
/// symlink to a host path; a later container's mount inside that volume lands inside its
/// own root, never on the host path. The symlink names `/etc`, which the host and the
/// container both have.
#[test]
fn a_symlink_swapped_into_a_shared_volume_cannot_redirect_a_mount_to_the_host() {
    let d = Daemon::start();
    d.busybox();
    let marker = format!("berth-escape-{}", std::process::id());
    let on_host = std::path::Path::new("/etc").join(&marker);
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/v",
        "busybox",
        "ln",
        "-s",
        "/etc",
        "/v/escape",
    ]);
    let write = format!("echo pwned > /data/escape/{marker}");
    d.ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/data",
        "-v",
        "other:/data/escape",
        "busybox",
        "sh",
        "-c",
        &write,
    ]);
    let escaped = on_host.exists();
    let _ = std::fs::remove_file(&on_host);
    assert!(!escaped, "the mount went to the host's /etc");
    // It went to the volume, mounted on the container's own /etc.
    let other = d.root().join("volumes/other/_data").join(&marker);
    assert_eq!(std::fs::read_to_string(other).unwrap(), "pwned\n");
    // The link is unchanged in the shared volume.
    let shared = d.root().join("volumes/shared/_data");
    assert_eq!(
        std::fs::read_link(shared.join("escape")).unwrap(),
        std::path::Path::new("/etc")
    );
}

#[test]
fn bad_mount_specs_get_dockers_words_and_create_nothing() {
    let d = Daemon::start();
    d.busybox();
    for (args, want) in [
        (
            vec!["-v", "bad/name:/x"],
            "includes invalid characters for a local volume name",
        ),
        (vec!["-v", "vol:/x:bogus"], "invalid mode: bogus"),
        (
            vec!["-v", "vol:/x:rslave"],
            "field BindOptions must not be specified",
        ),
        (
            vec!["-v", "vol:/x", "-v", "vol2:/x"],
            "Duplicate mount point: /x",
        ),
        (
            vec!["--mount", "type=volume,dst=/x,volume-driver=nfs"],
            "plugin \"nfs\" not found",
        ),
        (
            vec![
                "--mount",
                "type=volume,src=vol,dst=/x,volume-opt=type=nfs,volume-opt=device=:/x",
            ],
            "type=nfs is not supported by berth yet",
        ),
    ] {
        let mut run = vec!["run", "--rm"];
        run.extend(args.iter().copied());
        run.extend(["busybox", "true"]);
        for which in ["docker", "berth"] {
            let err = fails(&d, which, &run);
            assert!(err.contains(want), "{which} {args:?}: {err}");
        }
    }
    assert!(volumes(&d).is_empty(), "a refused run made volumes");
    assert_eq!(d.ok(&["ps", "-aq"]), "");
}

/// `volume create -o`: a tmpfs volume is one instance shared by its running users and
/// mounted only while one runs; a bind volume writes through to its device, and removing the
/// volume never deletes what the device holds.
#[test]
fn local_driver_options_mount_tmpfs_and_bind_volumes() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m,uid=1000",
        "tv",
    ]);
    let device = d.dir.path().join("device");
    std::fs::create_dir(&device).unwrap();
    std::fs::write(device.join("kept"), "host data\n").unwrap();
    let dev = format!("device={}", device.display());
    d.berth_ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        &dev,
        "-o",
        "o=bind",
        "bv",
    ]);
    assert_eq!(
        d.ok(&["volume", "inspect", "-f", "{{json .Options}}", "bv"])
            .trim(),
        format!(
            "{{\"device\":\"{}\",\"o\":\"bind\",\"type\":\"none\"}}",
            device.display()
        )
    );
    let a = d
        .ok(&[
            "run",
            "-d",
            "-v",
            "tv:/t",
            "busybox",
            "sh",
            "-c",
            "echo shared > /t/f; sleep 600",
        ])
        .trim()
        .to_string();
    berth_e2e::wait_for("the first user's write", || {
        d.outcome(&["run", "--rm", "-v", "tv:/t", "busybox", "cat", "/t/f"])
            .1
            == "shared\n"
    });
    let out = d.ok(&[
        "run", "--rm", "-v", "tv:/t", "busybox", "stat", "-c", "%u", "/t",
    ]);
    assert_eq!(out, "1000\n", "o=uid=1000 applied");
    let data = d.root().join("volumes/tv/_data");
    let mounts = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        mounts().contains(&format!(" {} ", data.display())),
        "mounted while a user runs"
    );
    // In use: not removed, and nothing deleted.
    let (code, _, err) = d.outcome(&["volume", "rm", "tv"]);
    assert_eq!(code, 1, "{err}");
    d.ok(&["rm", "-f", &a]);
    assert!(
        !mounts().contains(&format!(" {} ", data.display())),
        "unmounted after the last"
    );
    assert_eq!(d.ok(&["volume", "rm", "tv"]), "tv\n");

    let out = d.ok(&[
        "run",
        "--rm",
        "-v",
        "bv:/b",
        "busybox",
        "sh",
        "-c",
        "cat /b/kept; echo new > /b/new",
    ]);
    assert_eq!(out, "host data\n");
    assert_eq!(
        std::fs::read_to_string(device.join("new")).unwrap(),
        "new\n"
    );
    // Its content is the device's: no export or import of the placeholder.
    for args in [
        &["volume", "export", "-o", "/dev/null", "bv"][..],
        &["volume", "import", "bv", "/dev/null"],
    ] {
        let err = fails(&d, "berth", args);
        assert!(
            err.contains("export and import work on plain volumes"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(d.ok(&["volume", "rm", "bv"]), "bv\n");
    // --mount volume-opt makes a volume of options too.
    let out = d.berth_ok(&[
        "run", "--rm", "--mount",
        "type=volume,src=mv,dst=/m,volume-opt=type=tmpfs,volume-opt=device=tmpfs,volume-opt=o=size=2m",
        "busybox", "sh", "-c", "grep ' /m ' /proc/mounts",
    ]);
    assert!(out.contains("tmpfs") && out.contains("size=2048k"), "{out}");
    assert_eq!(d.ok(&["volume", "rm", "mv"]), "mv\n");
    assert!(
        device.join("kept").exists() && device.join("new").exists(),
        "the device's data stays"
    );

    for (opts, want) in [
        (
            &["-o", "type=nfs", "-o", "device=:/x"][..],
            "type=nfs is not supported by berth yet",
        ),
        (
            &["-o", "type=tmpfs"][..],
            "missing required option: \"device\"",
        ),
        (
            &["-o", "size=1g"][..],
            "quota size requested but no quota support",
        ),
        (&["-o", "bogus=1"][..], "invalid option: \"bogus\""),
    ] {
        let mut args = vec!["volume", "create"];
        args.extend(opts);
        args.push("refused");
        for which in ["docker", "berth"] {
            let err = fails(&d, which, &args);
            assert!(err.contains(want), "{which} {opts:?}: {err}");
        }
    }
    assert!(volumes(&d).is_empty());
}

/// A removal with `-v` that berthd did not finish (killed between renaming the record away
/// and removing the volumes) is finished at the next start, anonymous volumes included;
/// one without `-v` keeps them.
#[test]
fn an_unfinished_rm_v_takes_its_anonymous_volumes_at_the_next_start() {
    let mut d = Daemon::start();
    db_image(&d);
    let with_v = d.ok(&["create", "dbimg", "true"]).trim().to_string();
    let without = d.ok(&["create", "dbimg", "true"]).trim().to_string();
    let anon_of = |id: &str| {
        d.ok(&["inspect", "-f", "{{(index .Mounts 0).Name}}", id])
            .trim()
            .to_string()
    };
    let (gone, kept) = (anon_of(&with_v), anon_of(&without));
    d.kill9();
    // What remove_container leaves when it is killed right after its rename.
    let containers = d.root().join("containers");
    for (id, marked) in [(&with_v, true), (&without, false)] {
        let dir = containers.join(id);
        if marked {
            std::fs::write(dir.join("remove-volumes"), "").unwrap();
        }
        std::fs::rename(&dir, containers.join(format!(".removing-{id}"))).unwrap();
    }
    d.spawn();
    assert_eq!(d.ok(&["ps", "-aq"]), "");
    assert_eq!(volumes(&d), [kept], "{gone} was to go with its container");
}

// The attacker's pass (stop 27): each test states what Docker does; each failed before its fix.

/// `--mount type=volume,dst=/x,volume-label=k=v` without a source makes an anonymous volume
/// that carries the labels asked for and Docker's anonymous label (moby's
/// `VolumesService.Create` appends `com.docker.volume.anonymous` to the request's labels).
/// berth dropped the request's labels: a `volume prune --filter label!=keep` that was meant
/// to spare the volume removes it.
#[test]
fn an_anonymous_volume_keeps_the_labels_its_mount_asked_for() {
    let d = Daemon::start();
    d.busybox();
    let c = d
        .ok(&[
            "create",
            "--mount",
            "type=volume,dst=/x,volume-label=keep=yes",
            "busybox",
            "true",
        ])
        .trim()
        .to_string();
    let name = d
        .ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", &c])
        .trim()
        .to_string();
    assert_eq!(name.len(), 64, "an anonymous volume: {name}");
    let labels = d.ok(&["volume", "inspect", "-f", "{{json .Labels}}", &name]);
    assert!(
        labels.contains("\"keep\":\"yes\"") && labels.contains("com.docker.volume.anonymous"),
        "labels: {labels}"
    );
    d.ok(&["rm", &c]);
    d.ok(&["volume", "prune", "-f", "--filter", "label!=keep"]);
    assert_eq!(volumes(&d), [name], "the labelled volume was pruned");
}

/// Docker reserves the name before it touches any volume: a create refused for a name in
/// use leaves an existing, empty named volume empty. berth took the volumes (copy-up
/// included) before it checked the name, so the refused create filled the volume with the
/// image's directory; a later `-v vol:/x:nocopy` or a database that initialises an empty
/// directory finds foreign files there.
#[test]
fn a_create_refused_for_its_name_leaves_an_existing_volume_empty() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["volume", "create", "empty"]);
    d.ok(&["create", "--name", "taken", "busybox", "true"]);
    for which in ["docker", "berth"] {
        let err = fails(
            &d,
            which,
            &[
                "create",
                "--name",
                "taken",
                "-v",
                "empty:/etc",
                "busybox",
                "true",
            ],
        );
        assert!(err.contains("is already in use"), "{which}: {err}");
        let data = d.root().join("volumes/empty/_data");
        let left: Vec<String> = std::fs::read_dir(&data)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.is_empty(),
            "{which}: a refused create copied into the volume: {left:?}"
        );
    }
}

/// The image has `/data -> /srv/data` (a symlink) and `/srv/data/seed`. Docker resolves the
/// destination in the container's root (`GetResourcePath`, symlinks followed in scope)
/// both to mount and to copy up: `-v vol:/data` shows `seed`. berth mounted on the link's
/// target (RESOLVE_IN_ROOT) but copied nothing (the copy-up does not follow a symlink), so
/// the container found an empty directory where the image has content.
#[test]
fn copy_up_follows_a_symlink_in_the_destination_as_docker() {
    let d = Daemon::start();
    let tar = busybox_tar_with(d.dir.path(), "linked.tar", &[], |b| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "srv/data", std::io::empty()).unwrap();
        let seed = b"seeded\n";
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(seed.len() as u64);
        b.append_data(&mut h, "srv/data/seed", &seed[..]).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_mode(0o777);
        h.set_size(0);
        b.append_link(&mut h, "data", "/srv/data").unwrap();
    });
    let o = d.docker(&["import", tar.to_str().unwrap(), "linked"]);
    assert!(o.status.success(), "import: {}", text(&o.stderr));
    let out = d.cli(
        "docker",
        &[
            "run",
            "--rm",
            "-v",
            "vol:/data",
            "linked",
            "cat",
            "/data/seed",
        ],
    );
    assert_eq!((out.0, out.1.as_str()), (0, "seeded\n"), "{}", out.2);
}

/// `--volumes-from A` takes the volumes A mounts; it never makes one. moby's
/// `registerMountPoints` gets each (`volumes.Get`, by reference) and fails when it is
/// gone. berth's `take_volumes` calls the store's `create` for every volume mount, those
/// from `--volumes-from` included, so a volume that went away between B's plan (A's record
/// read before the volume lock is taken) and B's taking of volumes, as when `rm -v A` or
/// `volume rm` wins that race, is re-made empty and B runs on an empty directory where A's
/// data was. Here the volume is gone before B's create (the race's outcome, made
/// deterministic): B must be refused.
#[test]
fn volumes_from_never_mounts_a_re_made_empty_volume() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "run",
        "--name",
        "src",
        "-v",
        "/data",
        "busybox",
        "sh",
        "-c",
        "echo kept > /data/f",
    ]);
    let vol = d
        .ok(&["inspect", "-f", "{{range .Mounts}}{{.Name}}{{end}}", "src"])
        .trim()
        .to_string();
    let dir = d.root().join("volumes").join(&vol);
    std::fs::rename(&dir, d.root().join("volumes").join(".trash-lost")).unwrap();
    let out = d.cli(
        "docker",
        &[
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "ls",
            "-A",
            "/data",
        ],
    );
    assert_ne!(
        out.0,
        0,
        "B ran on a re-made empty volume (ls: {:?}); exists again: {}",
        out.1,
        dir.exists()
    );
}

/// `ps --filter volume=` matches a mount's destination, a volume's name, or a bind's host
/// path (moby's `volumesByName` keys a mount without a name by its `Source`). berth did not
/// match a bind's host path: "which containers use /srv/records?" answered none, and the
/// directory looked unused.
#[test]
fn ps_filter_volume_matches_a_binds_host_path() {
    let d = Daemon::start();
    d.busybox();
    let host = d.dir.path().join("records");
    std::fs::create_dir_all(&host).unwrap();
    let spec = format!("{}:/r", host.display());
    let c = d
        .ok(&["create", "-v", &spec, "busybox", "true"])
        .trim()
        .to_string();
    let filter = format!("volume={}", host.display());
    assert_eq!(
        d.ok(&["ps", "-aq", "--no-trunc", "--filter", &filter])
            .trim(),
        c
    );
}

/// `--volumes-from` copies the other container's mount points without their `Mode`
/// (moby's `registerMountPoints` builds each copy without it): inspect shows `"Mode": ""`.
/// berth showed the source container's mode (`z`, or `ro`), while `RW` says the mode
/// actually in effect for this container.
#[test]
fn volumes_from_mounts_show_dockers_empty_mode() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&[
        "create",
        "--name",
        "src",
        "-v",
        "named:/n:ro",
        "busybox",
        "true",
    ]);
    let c = d
        .ok(&["create", "--volumes-from", "src", "busybox", "true"])
        .trim()
        .to_string();
    let out = d.ok(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Name}} [{{.Mode}}] {{.RW}}{{end}}",
        &c,
    ]);
    assert_eq!(out.trim(), "named [] false");
}

/// A `run --rm` whose start fails (its command is not there) is removed with its anonymous
/// volumes, as Docker's `containerStart` does for `AutoRemove` (`RemoveVolume: true`).
#[test]
fn a_run_rm_that_fails_to_start_leaves_no_anonymous_volume() {
    let d = Daemon::start();
    d.busybox();
    for which in ["docker", "berth"] {
        let err = fails(
            &d,
            which,
            &["run", "--rm", "-v", "/scratch", "busybox", "/nonexistent"],
        );
        assert!(err.contains("no such file or directory"), "{which}: {err}");
        berth_e2e::wait_for("the container to go", || {
            d.ok(&["ps", "-aq"]).trim().is_empty()
        });
        assert_eq!(
            volumes(&d),
            Vec::<String>::new(),
            "{which}: the anonymous volume stayed"
        );
    }
}

/// Docker logs a `volume mount` event for each volume at every start (moby's
/// `setupMounts`: attributes driver, container, destination, read/write, propagation) and
/// `volume unmount` when the container stops; tools that track which container touched a
/// volume (backup agents, audit) watch them. berth logged none.
#[test]
fn a_start_logs_dockers_volume_mount_event() {
    let d = Daemon::start();
    d.busybox();
    let since = chrono::Utc::now().timestamp() - 1;
    d.ok(&[
        "run",
        "--name",
        "user",
        "-v",
        "data:/x:ro",
        "busybox",
        "true",
    ]);
    let id = d
        .ok(&["inspect", "-f", "{{.Id}}", "user"])
        .trim()
        .to_string();
    let events = d.events(
        &since.to_string(),
        &berth_e2e::api::now(),
        &["type=volume", "event=mount"],
        "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.container}} \
         {{.Actor.Attributes.destination}} {{index .Actor.Attributes \"read/write\"}}",
    );
    assert_eq!(events, format!("mount data {id} /x false\n"));
}

/// runc's `checkProcMount`: a mount inside /proc (which would cover the masked paths) is
/// refused at create, by both CLIs; the files lxcfs replaces may be covered.
#[test]
fn mounts_inside_proc_are_refused_as_runc_refuses_them() {
    let d = berth_e2e::Daemon::start();
    d.busybox();
    for dest in ["/proc", "/proc/sys", "/proc/self/x"] {
        for args in [
            vec!["-v".to_string(), format!("vol:{dest}")],
            vec!["--tmpfs".into(), dest.into()],
        ] {
            for which in ["docker", "berth"] {
                let mut run = vec!["run", "--rm"];
                run.extend(args.iter().map(String::as_str));
                run.extend(["busybox", "true"]);
                let (code, _, err) = d.cli(which, &run);
                assert_ne!(code, 0, "{which} {args:?}");
                assert!(
                    err.contains(&format!(
                        "\"{dest}\" cannot be mounted because it is inside /proc"
                    )),
                    "{which} {args:?}: {err}"
                );
            }
        }
    }
    let src = d.dir.path().join("uptime");
    std::fs::write(&src, "1.00 2.00\n").unwrap();
    let v = format!("{}:/proc/uptime:ro", src.display());
    assert_eq!(
        d.ok(&["run", "--rm", "-v", &v, "busybox", "cat", "/proc/uptime"]),
        "1.00 2.00\n"
    );
    assert_eq!(d.ok(&["volume", "ls", "-q"]), "");
}
