//! `-v SRC:DST:MODE` through the docker CLI: Docker's mode grammar, read-only that holds,
//! unknown modes refused before anything is mounted (they used to mount read-write), and
//! `rslave` propagation that really brings the host's later mounts into the container.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_e2e::{text, wait_for, Daemon};

fn sh(cmd: &str) {
    let o = Command::new("sh").args(["-c", cmd]).output().unwrap();
    assert!(o.status.success(), "{cmd}: {}", text(&o.stderr));
}

/// Unmounts (lazily) what a test mounted on the host, whatever happens.
struct HostMounts(Vec<PathBuf>);

impl Drop for HostMounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

#[test]
fn unknown_modes_are_refused_and_nothing_is_written() {
    let d = Daemon::start();
    d.busybox();
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    for mode in ["RO", "readonly", "r0", "badmode", "ro,rw", "rw,"] {
        let v = format!("{}:/x:{mode}", src.display());
        let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "touch", "/x/f"]);
        assert_eq!(o.status.code(), Some(125), "-v {v}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains(&format!("invalid mode: {mode}")),
            "-v {v}: {}",
            text(&o.stderr)
        );
        assert!(!src.join("f").exists(), "-v {v} wrote through");
    }
    let root = format!("{}:/", src.display());
    let o = d.docker(&["run", "--rm", "-v", &root, "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        text(&o.stderr).contains("destination can't be '/'"),
        "{}",
        text(&o.stderr)
    );
    let o = d.docker(&["ps", "-aq"]);
    assert_eq!(text(&o.stdout), "", "refused runs left containers");
}

#[test]
fn read_only_holds_and_dockers_no_op_modes_mount_read_write() {
    let d = Daemon::start();
    d.busybox();
    let src = d.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let v = format!("{}:/x:ro,Z", src.display());
    let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "touch", "/x/f"]);
    assert_ne!(o.status.code(), Some(0), "ro bind was writable");
    assert!(
        text(&o.stderr).contains("Read-only file system"),
        "{}",
        text(&o.stderr)
    );
    assert!(!src.join("f").exists());
    for mode in ["rw", "z", "cached", "delegated,rw"] {
        let v = format!("{}:/x:{mode}", src.display());
        let file = format!("/x/{}", mode.replace(',', "-"));
        let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "touch", &file]);
        assert!(o.status.success(), "-v {v}: {}", text(&o.stderr));
        assert!(src.join(mode.replace(',', "-")).exists(), "-v {v}");
    }
    // A missing host directory is created, as Docker does for -v.
    let missing = d.dir.path().join("made/by/berth");
    let v = format!("{}:/x", missing.display());
    let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "touch", "/x/f"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(missing.join("f").exists());
}

/// `:ro` holds below the source too: a mount under it (`-v /:/host:ro` brings the host's
/// /run, /proc, /dev/shm...) is read-only in the container, as in Docker since v25. It used
/// to stay writable (only the top mount was remounted read-only).
#[test]
fn read_only_is_recursive() {
    for runtime in ["berth", "libcontainer"] {
        let d = Daemon::start_with_args(&["--runtime", runtime]);
        d.busybox();
        let src = d.dir.path().join("rro-src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        let mut mounts = HostMounts(Vec::new());
        sh(&format!(
            "mount -t tmpfs rro-test {}",
            src.join("sub").display()
        ));
        mounts.0.push(src.join("sub"));
        let v = format!("{}:/x:ro", src.display());
        let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "touch", "/x/sub/f"]);
        assert_ne!(
            o.status.code(),
            Some(0),
            "{runtime}: the mount below a ro bind was writable"
        );
        assert!(
            text(&o.stderr).contains("Read-only file system"),
            "{runtime}: {}",
            text(&o.stderr)
        );
        assert!(!src.join("sub/f").exists(), "{runtime}: wrote through");
        read_only_depth_as_asked(&d, runtime, &src);
    }
}

/// The depth of a read-only bind, as API 1.44 lets a client choose it: `bind-recursive=
/// writable` (ReadOnlyNonRecursive) leaves the mounts below writable, `=readonly`
/// (ReadOnlyForceRecursive) makes them read-only or fails; a client older than 1.44 gets
/// Docker's old non-recursive read-only, and its ReadOnlyForceRecursive is refused.
fn read_only_depth_as_asked(d: &Daemon, runtime: &str, src: &Path) {
    let mount = |depth: &str| {
        format!(
            "type=bind,src={},dst=/x,readonly,bind-propagation=rprivate,bind-recursive={depth}",
            src.display()
        )
    };
    // Writes /x/sub/<name>, then /x/<name> (which must fail: the top is read-only).
    let script = |name: &str| format!("touch /x/sub/{name} && ! touch /x/{name} 2>/dev/null");
    let docker = |version: Option<&str>, args: &[&str]| {
        let mut c = Command::new("docker");
        c.args(args)
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
        match version {
            Some(v) => c.env("DOCKER_API_VERSION", v),
            None => c.env_remove("DOCKER_API_VERSION"),
        };
        c.output().unwrap()
    };
    let m = mount("writable");
    let s = script("nonrec");
    let o = docker(
        None,
        &["run", "--rm", "--mount", &m, "busybox", "sh", "-c", &s],
    );
    assert!(
        o.status.success(),
        "{runtime}: writable: {}",
        text(&o.stderr)
    );
    assert!(src.join("sub/nonrec").exists(), "{runtime}");
    let m = mount("readonly");
    let o = docker(
        None,
        &[
            "run",
            "--rm",
            "--mount",
            &m,
            "busybox",
            "touch",
            "/x/sub/forced",
        ],
    );
    assert_ne!(
        o.status.code(),
        Some(0),
        "{runtime}: forced rro was writable below"
    );
    assert!(!src.join("sub/forced").exists(), "{runtime}");
    // An API 1.43 client: `-v :ro` is read-only on its top mount only.
    let v = format!("{}:/x:ro", src.display());
    let s = script("old");
    let o = docker(
        Some("1.43"),
        &["run", "--rm", "-v", &v, "busybox", "sh", "-c", &s],
    );
    assert!(
        o.status.success(),
        "{runtime}: 1.43 -v ro: {}",
        text(&o.stderr)
    );
    assert!(src.join("sub/old").exists(), "{runtime}");
    // The docker CLI refuses that itself; an SDK sending it gets Docker's 400.
    let body = serde_json::json!({"Image": "busybox", "HostConfig": {"Mounts": [{
        "Type": "bind", "Source": src, "Target": "/x", "ReadOnly": true,
        "BindOptions": {"ReadOnlyForceRecursive": true}}]}});
    let (code, out) = berth_e2e::api::curl(
        d,
        "POST",
        "/v1.43/containers/create",
        Some(&body.to_string()),
    );
    assert_eq!(code, 400, "{runtime}: {out}");
    assert!(
        out.contains("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"),
        "{out}"
    );
}

/// A container polls for `/x/go`, then reports whether `/x/sub/seen` exists.
fn watcher(d: &Daemon, name: &str, src: &Path, mode: &str) {
    let v = format!("{}:/x:{mode}", src.display());
    let o = d.docker(&[
        "run",
        "-d",
        "--name",
        name,
        "-v",
        &v,
        "busybox",
        "sh",
        "-c",
        "while [ ! -e /x/go ]; do sleep 0.02; done; \
         if [ -e /x/sub/seen ]; then echo seen; else echo unseen; fi",
    ]);
    assert!(o.status.success(), "{name}: {}", text(&o.stderr));
}

#[test]
fn rslave_brings_the_hosts_later_mounts_in_and_rprivate_does_not() {
    let d = Daemon::start();
    d.busybox();
    let src = d.dir.path().join("shared-src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let mut mounts = HostMounts(Vec::new());
    // A shared mount, as `/` is on a systemd host: slave propagation needs a peer.
    sh(&format!(
        "mount --bind {0} {0} && mount --make-shared {0}",
        src.display()
    ));
    mounts.0.push(src.clone());
    watcher(&d, "slave", &src, "rslave");
    watcher(&d, "private", &src, "ro");
    // Both run (their bind is in place) before the host mounts under the source.
    for name in ["slave", "private"] {
        let o = d.docker(&["inspect", "-f", "{{.State.Running}}", name]);
        assert_eq!(text(&o.stdout).trim(), "true", "{name} is not running");
    }
    let sub = src.join("sub");
    sh(&format!(
        "mount -t tmpfs berth-e2e-prop {0} && touch {0}/seen",
        sub.display()
    ));
    mounts.0.push(sub.clone());
    std::fs::write(src.join("go"), "").unwrap();
    for (name, want) in [("slave", "seen"), ("private", "unseen")] {
        let o = d.docker(&["wait", name]);
        assert_eq!(text(&o.stdout).trim(), "0", "{name}: {}", text(&o.stderr));
        let o = d.docker(&["logs", name]);
        assert_eq!(text(&o.stdout).trim(), want, "{name}");
    }
}

#[test]
fn slave_propagation_from_a_private_mount_is_refused() {
    let d = Daemon::start();
    d.busybox();
    let src = d.dir.path().join("private-src");
    std::fs::create_dir_all(&src).unwrap();
    let mut mounts = HostMounts(Vec::new());
    sh(&format!(
        "mount --bind {0} {0} && mount --make-private {0}",
        src.display()
    ));
    mounts.0.push(src.clone());
    let v = format!("{}:/x:rslave", src.display());
    let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("is not a shared or slave mount"),
        "{}",
        text(&o.stderr)
    );
    // `shared` needs a shared mount (a slave one would not do either), by -v and --mount.
    for how in [
        vec!["-v".to_string(), format!("{}:/x:rshared", src.display())],
        vec![
            "--mount".to_string(),
            format!(
                "type=bind,src={},dst=/x,bind-propagation=shared",
                src.display()
            ),
        ],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(how.iter().map(String::as_str));
        args.extend(["busybox", "true"]);
        let o = d.docker(&args);
        assert_eq!(o.status.code(), Some(125), "{how:?}");
        let want = format!(
            "path {0} is mounted on {0} but it is not a shared mount",
            src.display()
        );
        assert!(text(&o.stderr).contains(&want), "{}", text(&o.stderr));
    }
    assert_eq!(text(&d.docker(&["ps", "-q"]).stdout), "");
}

/// `rshared`: a mount the container makes under the bind appears on the host, and one the
/// host makes appears in the container (Docker's `-v SRC:DST:rshared`, e.g. for a
/// container that mounts storage for others). It used to be refused: the container's bind
/// was a slave copy. `shared` without `r` does the same for the source's own mount.
#[test]
fn rshared_carries_mounts_both_ways_between_host_and_container() {
    let d = Daemon::start();
    d.busybox();
    let src = d.dir.path().join("rshared-src");
    for sub in ["made-inside", "made-outside", "plain"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
    }
    let mut mounts = HostMounts(Vec::new());
    sh(&format!(
        "mount --bind {0} {0} && mount --make-shared {0}",
        src.display()
    ));
    mounts.0.push(src.clone());
    mounts.0.push(src.join("made-inside"));
    mounts.0.push(src.join("made-outside"));
    for mode in ["rshared", "shared"] {
        let name = format!("mounter-{mode}");
        let v = format!("{}:/x:{mode}", src.display());
        // The container mounts a tmpfs under the bind, then waits for the host's mount.
        let o = d.docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--cap-add",
            "SYS_ADMIN",
            "-v",
            &v,
            "busybox",
            "sh",
            "-c",
            "mount -t tmpfs inside /x/made-inside && echo hi > /x/made-inside/f && \
             while [ ! -e /x/made-outside/g ]; do sleep 0.02; done; cat /x/made-outside/g",
        ]);
        assert!(o.status.success(), "{mode}: {}", text(&o.stderr));
        let inside = src.join("made-inside/f");
        wait_for("the container's mount to reach the host", || {
            inside.exists()
        });
        assert_eq!(std::fs::read_to_string(&inside).unwrap(), "hi\n", "{mode}");
        sh(&format!(
            "mount -t tmpfs outside {0} && echo {mode} > {0}/g",
            src.join("made-outside").display()
        ));
        let o = d.docker(&["wait", &name]);
        assert_eq!(text(&o.stdout).trim(), "0", "{mode}: {}", text(&o.stderr));
        let o = d.docker(&["logs", &name]);
        assert_eq!(
            text(&o.stdout).trim(),
            mode,
            "{mode}: the host's mount is unseen"
        );
        let o = d.docker(&["inspect", "-f", "{{(index .Mounts 0).Propagation}}", &name]);
        assert_eq!(text(&o.stdout).trim(), mode);
        // The mounts stay on the host after the container ends, as in Docker.
        sh(&format!(
            "umount {0}/made-inside && umount {0}/made-outside",
            src.display()
        ));
        d.docker(&["rm", &name]);
    }
    // A default (rprivate) bind keeps the container's mounts to itself.
    let v = format!("{}:/x", src.display());
    let o = d.docker(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "-v",
        &v,
        "busybox",
        "sh",
        "-c",
        "mount -t tmpfs inside /x/plain && touch /x/plain/f",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        !src.join("plain/f").exists(),
        "an rprivate bind's mount reached the host"
    );
}

/// The libcontainer backend cannot join the source's peer group: refused, never mounted
/// as a slave.
#[test]
fn libcontainer_refuses_shared_propagation() {
    let d = Daemon::start_with_args(&["--runtime", "libcontainer"]);
    d.busybox();
    let src = d.dir.path().join("lc-src");
    std::fs::create_dir_all(&src).unwrap();
    let mut mounts = HostMounts(Vec::new());
    sh(&format!(
        "mount --bind {0} {0} && mount --make-shared {0}",
        src.display()
    ));
    mounts.0.push(src.clone());
    let v = format!("{}:/x:rshared", src.display());
    let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("not supported by the libcontainer runtime"),
        "{}",
        text(&o.stderr)
    );
}

/// What berth mounts itself, or the user mounts, inside a shared bind would join the host's
/// peer group and stay on the host (an attacker's pass found an `--init` binary redirected
/// into one by a symlink arriving on the host as a writable bind of tini, and a `:ro` bind
/// nested in one arriving writable). A mount on a shared mount is refused; a shared bind
/// where berth mounts (/proc, /sys, /dev) is refused; no mount reaches the host.
#[test]
fn nothing_is_mounted_into_a_shared_bind() {
    let d = Daemon::start();
    d.busybox();
    let src = d.dir.path().join("shared-nest");
    std::fs::create_dir_all(src.join("app")).unwrap();
    let rofile = d.dir.path().join("rofile");
    std::fs::create_dir_all(&rofile).unwrap();
    let mut mounts = HostMounts(Vec::new());
    sh(&format!(
        "mount --bind {0} {0} && mount --make-shared {0}",
        src.display()
    ));
    mounts.0.push(src.clone());
    let host_mounts_under = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("{}/", src.display())))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    // A read-only bind nested in the shared one.
    let shared = format!("{}:/data:rshared", src.display());
    let nested = format!("{}:/data/ro:ro", rofile.display());
    let o = d.docker(&[
        "run", "--rm", "-v", &shared, "-v", &nested, "busybox", "true",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("mount destination /data/ro is on a shared mount"),
        "{}",
        text(&o.stderr)
    );
    // --init redirected into the shared bind by the image's /sbin symlink.
    let ctx = d.dir.path().join("sbin-link");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN rm -rf /sbin && mkdir -p /app && ln -s /app /sbin\n",
    )
    .unwrap();
    let o = Command::new("docker")
        .args(["build", "-t", "sbinlink"])
        .arg(&ctx)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_BUILDKIT", "0")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let app = format!("{}/app:/app:rshared", src.display());
    let o = d.docker(&["run", "--rm", "--init", "-v", &app, "sbinlink", "true"]);
    assert_ne!(o.status.code(), Some(0), "--init went into the shared bind");
    assert!(
        text(&o.stderr).contains("a shared mount"),
        "{}",
        text(&o.stderr)
    );
    // Where berth mounts itself.
    for dest in ["/sys/firmware", "/dev/shm", "/proc/acpi"] {
        let v = format!("{}:{dest}:rshared", src.display());
        let o = d.docker(&["run", "--rm", "-v", &v, "busybox", "true"]);
        assert_ne!(o.status.code(), Some(0), "{dest}");
    }
    assert_eq!(host_mounts_under(), Vec::<String>::new());
    assert!(!src.join("app/docker-init").exists());
}
