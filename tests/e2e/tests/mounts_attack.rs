//! Attacks on the mounts feature (issue 15): each test states what Docker does and fails
//! while berth deviates in a way that loses data, ignores what was asked, or mounts the
//! wrong content.

use berth_e2e::{busybox_tar_with, text, Daemon};

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
