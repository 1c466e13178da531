//! What the privileged runtime tests share: root, a busybox tree, a container spec over it,
//! and the best-effort cleanup after a test that failed with its container still running.
#![allow(dead_code)] // each test file uses what it needs

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_runtime::cgroups::Layout;
use berth_runtime::{ContainerSpec, LogConfig, Mount, Process, ShimClient};

/// Fails (never skips) without root: these tests create containers.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "these tests need root (they create containers)");
}

/// `/etc/passwd` with root and nobody (home `/home/nobody`), and the `/etc/group` to go with
/// it (nobody is also in `staff`, gid 50).
pub const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n";
pub const GROUP: &str = "root:x:0:\nstaff:x:50:nobody\nnogroup:x:65534:\n";

/// A busybox root at `<dir>/tree`: the usual top directories, `/bin/busybox` with `applets`
/// linked to it, and `passwd` and `group` in `/etc`.
pub fn busybox_tree(dir: &Path, applets: &[&str], passwd: &str, group: &str) -> PathBuf {
    let tree = dir.join("tree");
    for d in [
        "bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "mnt",
        "root",
        "home/nobody",
    ] {
        std::fs::create_dir_all(tree.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", tree.join("bin/busybox")).unwrap();
    for applet in applets {
        symlink("busybox", tree.join("bin").join(applet)).unwrap();
    }
    std::fs::write(tree.join("etc/passwd"), passwd).unwrap();
    std::fs::write(tree.join("etc/group"), group).unwrap();
    tree
}

/// Container `id` running `args` on `tree` (bound as its root), with its bundle at `<dir>/b`
/// (made here), its log at `<dir>/c-json.log`, hostname `box` and cgroup `<cgroup_parent>/<id>`.
pub fn spec(
    dir: &Path,
    tree: &Path,
    id: &str,
    cgroup_parent: &str,
    args: &[&str],
) -> ContainerSpec {
    let bundle = dir.join("b");
    std::fs::create_dir(&bundle).unwrap();
    ContainerSpec {
        id: id.to_string(),
        bundle,
        rootfs: vec![Mount {
            fstype: "bind".into(),
            source: tree.to_string_lossy().into_owned(),
            options: vec!["rbind".into()],
        }],
        process: Process {
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        },
        hostname: "box".into(),
        cgroup_path: format!("{cgroup_parent}/{id}"),
        log: LogConfig {
            path: dir.join("c-json.log"),
            max_size: None,
            max_files: 1,
        },
        ..Default::default()
    }
}

/// Best effort, for a test that failed: kills the container of `bundle` if its shim still
/// answers, and unmounts a rootfs left mounted on the host.
pub fn kill_and_unmount(bundle: &Path) {
    if let Ok(mut c) = ShimClient::connect(bundle) {
        let _ = c.signal(libc::SIGKILL);
        let _ = c.wait();
    }
    let _ = Command::new("umount")
        .arg("-l")
        .arg(bundle.join("rootfs"))
        .stderr(std::process::Stdio::null())
        .status();
}

/// This host's cgroup layout, as berthd detects it: v1 (with a hybrid's cgroup2 mount) or
/// pure v2. The tests assert what is right for it, on either.
pub fn host_layout() -> Layout {
    Layout::detect().expect("cgroups are mounted")
}

/// The directory of cgroup `path` (`/berth-test/<id>`) in `controller`'s hierarchy: on v1
/// the controller's mount, on v2 the one directory whatever the controller.
pub fn cgroup_dir(controller: &str, path: &str) -> PathBuf {
    let rel = path.trim_start_matches('/');
    match host_layout() {
        Layout::V1 { controllers, .. } => controllers
            .get(controller)
            .cloned()
            .unwrap_or_else(|| Path::new("/sys/fs/cgroup").join(controller))
            .join(rel),
        Layout::V2 { root, .. } => root.join(rel),
    }
}

/// Every directory cgroup `path` could have on this host, one per hierarchy (v1 controllers,
/// named hierarchies and a hybrid's cgroup2 mount; v2 its one directory): none may be left
/// after a container's teardown.
pub fn all_cgroup_dirs(path: &str) -> Vec<PathBuf> {
    let rel = path.trim_start_matches('/');
    match host_layout() {
        Layout::V1 {
            controllers,
            named,
            unified,
        } => controllers
            .values()
            .chain(named.values())
            .chain(unified.iter())
            .map(|m| m.join(rel))
            .collect(),
        Layout::V2 { root, .. } => vec![root.join(rel)],
    }
}

/// A real cgroup2 hierarchy to run berth's v2 code on: a pure v2 host's own layout (with its
/// controllers), or a hybrid host's cgroup2 mount as a v2 layout without controllers. Fails
/// (never skips) on a host with neither.
pub fn v2_layout() -> Layout {
    match host_layout() {
        layout @ Layout::V2 { .. } => layout,
        Layout::V1 {
            unified: Some(root),
            ..
        } => Layout::V2 {
            root,
            controllers: Vec::new(),
        },
        Layout::V1 { unified: None, .. } => {
            panic!("this host has no cgroup2 hierarchy: the v2 tests cannot run")
        }
    }
}

/// The mount point of a v2 layout.
pub fn v2_root(layout: &Layout) -> PathBuf {
    match layout {
        Layout::V2 { root, .. } => root.clone(),
        Layout::V1 { .. } => panic!("a v2 layout expected, got {layout:?}"),
    }
}
