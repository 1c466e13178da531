//! What an image or a container may not do.

use berth_e2e::{busybox_tar_with, text, Daemon};

/// A device node shipped in a layer is extracted (as Docker does), but the device cgroup
/// keeps it unusable: `/dev/mem` (c 1:1) under another name must not open.
#[test]
fn device_nodes_in_layers_are_created_but_not_usable() {
    let d = Daemon::start();
    let with_dev = busybox_tar_with(d.dir.path(), "with-dev.tar", &[], |out| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_device_major(1).unwrap();
        h.set_device_minor(1).unwrap();
        h.set_mode(0o666);
        h.set_size(0);
        out.append_data(&mut h, "sneaky-mem", std::io::empty())
            .unwrap();
    });
    let o = d.docker(&["import", with_dev.to_str().unwrap(), "devimg:1"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = d.docker(&["run", "--rm", "devimg:1", "ls", "-l", "/sneaky-mem"]);
    assert!(
        text(&o.stdout).starts_with('c'),
        "the node exists: {}",
        text(&o.stdout)
    );
    let o = d.docker(&["run", "--rm", "devimg:1", "head", "-c", "1", "/sneaky-mem"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        text(&o.stderr).contains("Operation not permitted"),
        "{}",
        text(&o.stderr)
    );
}

/// No host file descriptor reaches the container.
#[test]
fn only_stdio_is_open_in_the_container() {
    let d = Daemon::start();
    d.busybox();
    let o = d.docker(&["run", "--rm", "busybox", "ls", "/proc/self/fd"]);
    let mut fds: Vec<String> = text(&o.stdout)
        .split_whitespace()
        .map(String::from)
        .collect();
    fds.sort();
    // 0, 1, 2 and the descriptor `ls` itself opened for the directory.
    assert_eq!(fds.len(), 4, "{fds:?}");
    assert_eq!(&fds[..3], ["0", "1", "2"]);
}

/// Regression: the state directories were 0755, so any host user could run a setuid
/// binary from a container's layer, open device nodes from images, and read records
/// holding containers' environments.
#[test]
fn state_is_private_to_root() {
    use std::os::unix::fs::PermissionsExt;
    let d = Daemon::start();
    d.busybox();
    let out = d.docker(&[
        "create",
        "--name",
        "secretive",
        "-e",
        "SECRET=hunter2",
        "busybox",
        "true",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    for dir in [d.root(), d.exec_root()] {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", dir.display());
    }
    let config = d.root().join("containers").join(&id).join("config.json");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A non-root user cannot reach the record.
    let as_nobody = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "cat"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!as_nobody.status.success());
    assert!(!text(&as_nobody.stdout).contains("hunter2"));
}

/// Two daemons on one root would delete each other's in-progress work.
#[test]
fn a_second_daemon_on_the_same_root_is_refused() {
    let d = Daemon::start();
    let other_socket = d.dir.path().join("other.sock");
    let out = std::process::Command::new(berth_e2e::bin_dir().join("berthd"))
        .arg("--root")
        .arg(d.root())
        .arg("--exec-root")
        .arg(d.exec_root())
        .arg("-H")
        .arg(format!("unix://{}", other_socket.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is in use by another berthd"),
        "{}",
        text(&out.stderr)
    );
    // The first one still serves.
    assert!(d.docker(&["version"]).status.success());
}
