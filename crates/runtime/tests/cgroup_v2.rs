//! Privileged tests: real containers of berth's own runtime on a cgroup v2 layout, end to
//! end through `start()` and the real `berth-shim`: clone3 with `CLONE_INTO_CGROUP`, the
//! private cgroup namespace, the cgroup2 mount at `/sys/fs/cgroup`, the device filter,
//! freeze/thaw and exec into the cgroup. On a pure v2 host (scripts/v2vm.sh boots one) the
//! layout is the host's, with its controllers; on a hybrid host it is the cgroup2 mount at
//! `/sys/fs/cgroup/unified`, without controllers but a real v2 hierarchy (cgroup.procs,
//! cgroup.freeze, cgroup.kill, cgroup.events, eBPF device programs). No v1 hierarchy is used
//! with this layout. They need root and FAIL without it.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_runtime::cgroups::{Cgroup, Layout};
use berth_runtime::{
    read_exit, start, ContainerSpec, ErrorKind, ExecRequest, ExitStatus, Resources, RuntimeError,
    ShimClient,
};

mod common;
use common::require_root;

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

/// The v2 layout the tests run on (see the top).
fn layout() -> Layout {
    common::v2_layout()
}

/// Its mount point.
fn root() -> PathBuf {
    common::v2_root(&layout())
}

/// Whether the layout has the controllers (a pure v2 host), or none (a hybrid's mount).
fn has_controllers() -> bool {
    matches!(layout(), Layout::V2 { controllers, .. } if !controllers.is_empty())
}

const APPLETS: &[&str] = &[
    "sh", "echo", "true", "cat", "sleep", "grep", "touch", "mkdir", "mknod", "readlink", "ls",
    "sort", "tr",
];

/// A container under test on the v2 layout: a busybox tree, a bundle and a log path in one
/// tempdir.
struct Fixture {
    dir: tempfile::TempDir,
    spec: ContainerSpec,
}

impl Fixture {
    fn new(args: &[&str]) -> Fixture {
        require_root();
        let layout = layout();
        let dir = tempfile::Builder::new().prefix("brv2").tempdir().unwrap();
        let tree = common::busybox_tree(
            dir.path(),
            APPLETS,
            "root:x:0:0:root:/root:/bin/sh\n",
            "root:x:0:\n",
        );
        let id = format!(
            "v{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let mut spec = common::spec(dir.path(), &tree, &id, "/berth-v2test", args);
        spec.cgroup_layout = Some(layout);
        Fixture { dir, spec }
    }

    fn tree(&self) -> PathBuf {
        self.dir.path().join("tree")
    }

    fn bundle(&self) -> &Path {
        &self.spec.bundle
    }

    fn start(&self) -> Result<i32, RuntimeError> {
        start(&self.spec, Path::new(SHIM)).map(|s| s.pid)
    }

    fn client(&self) -> ShimClient {
        ShimClient::connect(self.bundle()).unwrap()
    }

    fn wait(&self) -> ExitStatus {
        match ShimClient::connect(self.bundle()) {
            Ok(mut c) => c.wait().expect("wait"),
            Err(_) => read_exit(self.bundle()).expect("exit.json"),
        }
    }

    fn kill_and_wait(&self) {
        self.client().signal(libc::SIGKILL).unwrap();
        assert_eq!(self.wait().exit_code, 137);
        self.assert_cleaned_up();
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.spec.log.path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (v["stream"] == "stdout").then(|| v["log"].as_str().unwrap().to_string())
            })
            .collect()
    }

    /// Waits for `done` on the container's stdout; returns the whole stdout.
    fn output_until_done(&self) -> String {
        wait_until(|| self.stdout().contains("done\n"));
        self.stdout()
    }

    /// The container's directory in the cgroup2 hierarchy.
    fn v2_dir(&self) -> PathBuf {
        root().join(self.spec.cgroup_path.trim_start_matches('/'))
    }

    fn host_procs(&self) -> Vec<i32> {
        read(&self.v2_dir().join("cgroup.procs"))
            .lines()
            .map(|l| l.parse().unwrap())
            .collect()
    }

    /// Nothing left once the container has exited: no v2 directory, none in any other
    /// hierarchy (this layout never makes one), no rootfs mount, no socket; an exit record.
    fn assert_cleaned_up(&self) {
        let dir = self.v2_dir();
        assert!(!dir.exists(), "stray cgroup {dir:?}");
        for dir in common::all_cgroup_dirs(&self.spec.cgroup_path) {
            assert!(!dir.exists(), "stray cgroup {dir:?}");
        }
        let rootfs = self.bundle().join("rootfs");
        let mountinfo = read(Path::new("/proc/self/mountinfo"));
        assert!(
            !mountinfo.contains(rootfs.to_str().unwrap()),
            "stray mount at {rootfs:?}"
        );
        assert!(!self.bundle().join("shim.sock").exists());
        assert!(read_exit(self.bundle()).is_some());
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Best effort so that a failing test does not leave a container running.
        common::kill_and_unmount(&self.spec.bundle);
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn wait_until(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(10), "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The value of `key` in a `cgroup.events` file.
fn event(dir: &Path, key: &str) -> String {
    read(&dir.join("cgroup.events"))
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")).map(str::to_string))
        .unwrap_or_else(|| panic!("no {key} in {}/cgroup.events", dir.display()))
}

/// The lines after `marker` up to the next line starting with `--`.
fn section<'a>(out: &'a str, marker: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| *l != marker)
        .skip(1)
        .take_while(|l| !l.starts_with("--"))
        .collect()
}

#[test]
fn init_is_in_its_v2_cgroup_behind_a_private_namespace_and_a_read_only_cgroup2_mount() {
    let script = "sleep 100 & echo \"--bg $!\"; \
                  echo --cgroup; cat /proc/self/cgroup; \
                  echo --ns; readlink /proc/self/ns/cgroup; \
                  echo --mount; grep ' /sys/fs/cgroup ' /proc/self/mountinfo; \
                  echo --write; \
                  touch /sys/fs/cgroup/x 2>&1 || echo touch-failed; \
                  mkdir /sys/fs/cgroup/sub 2>&1 || echo mkdir-failed; \
                  echo 1 2>&1 > /sys/fs/cgroup/cgroup.freeze || echo freeze-failed; \
                  echo --procs; cat /sys/fs/cgroup/cgroup.procs; \
                  echo --files; ls /sys/fs/cgroup; \
                  echo done; wait";
    let f = Fixture::new(&["sh", "-c", script]);
    let pid = f.start().unwrap();
    let out = f.output_until_done();

    // On the host: the init (and its child) are in the container's v2 cgroup, and only there.
    let procs = f.host_procs();
    assert!(procs.contains(&pid), "{procs:?} lacks the init {pid}");
    assert_eq!(procs.len(), 2, "{procs:?}");
    let host_view = read(Path::new(&format!("/proc/{pid}/cgroup")));
    assert!(
        host_view
            .lines()
            .any(|l| l == format!("0::{}", f.spec.cgroup_path)),
        "{host_view}"
    );
    assert_eq!(f.client().pids().unwrap().len(), 2);

    // Inside: its own cgroup namespace, rooted at the container's cgroup.
    let own: Vec<&str> = section(&out, "--cgroup");
    assert!(own.contains(&"0::/"), "{out}");
    let ns = section(&out, "--ns");
    let host_ns = std::fs::read_link("/proc/self/ns/cgroup").unwrap();
    assert_ne!(ns, [host_ns.to_str().unwrap()], "{out}");
    let init_ns = std::fs::read_link(format!("/proc/{pid}/ns/cgroup")).unwrap();
    assert_eq!(ns, [init_ns.to_str().unwrap()], "{out}");

    // `/sys/fs/cgroup` is a cgroup2 mount of the namespace's root, read-only per mount.
    let mount = section(&out, "--mount");
    assert_eq!(mount.len(), 1, "{out}");
    let (head, tail) = mount[0].split_once(" - ").unwrap();
    let head: Vec<&str> = head.split(' ').collect();
    assert_eq!(head[3], "/", "{out}");
    assert_eq!(head[4], "/sys/fs/cgroup", "{out}");
    let options: Vec<&str> = head[5].split(',').collect();
    for option in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(options.contains(&option), "{option} missing: {out}");
    }
    assert!(tail.starts_with("cgroup2 "), "{out}");

    // Nothing can be written there.
    let write = section(&out, "--write").join("\n");
    for what in ["touch-failed", "mkdir-failed", "freeze-failed"] {
        assert!(write.contains(what), "{what}: {out}");
    }
    assert!(write.contains("Read-only file system"), "{out}");
    assert!(!f.v2_dir().join("sub").exists());
    assert_eq!(event(&f.v2_dir(), "frozen"), "0");

    // The container's processes, in its pid namespace: the init (1), the sleep and the cat.
    let bg: i32 = out
        .lines()
        .find_map(|l| l.strip_prefix("--bg "))
        .unwrap()
        .parse()
        .unwrap();
    let inside: Vec<i32> = section(&out, "--procs")
        .iter()
        .map(|l| l.parse().unwrap())
        .collect();
    assert_eq!(inside.len(), 3, "{out}");
    assert!(inside.contains(&1) && inside.contains(&bg), "{out}");
    // The container's own directory, with its core files, and the controllers' files when
    // the hierarchy has them.
    let files = section(&out, "--files");
    for file in [
        "cgroup.procs",
        "cgroup.events",
        "cgroup.freeze",
        "cgroup.kill",
    ] {
        assert!(files.contains(&file), "{file}: {out}");
    }
    for file in ["memory.max", "pids.max", "cpu.max"] {
        assert_eq!(files.contains(&file), has_controllers(), "{file}: {out}");
    }

    f.kill_and_wait();
}

#[test]
fn device_filter_denies_nodes_outside_the_allow_list_unless_privileged() {
    let script = "echo x > /dev/null && echo null-ok; \
                  (exec 3<>/loop-control) 2>&1 && echo loop-opened; \
                  (exec 3</loop0) 2>&1 && echo loop0-opened; \
                  mknod /tmp/n c 10 237 && echo mknod-ok; \
                  (exec 3<>/tmp/n) 2>&1 && echo new-node-opened; \
                  echo done";
    for privileged in [false, true] {
        let mut f = Fixture::new(&["sh", "-c", script]);
        f.spec.privileged = privileged;
        for (name, kind, major, minor) in [
            ("loop-control", libc::S_IFCHR, 10, 237),
            // Not 254:0 (vda): this host refuses it even to root outside any cgroup.
            ("loop0", libc::S_IFBLK, 7, 0),
        ] {
            let path = std::ffi::CString::new(f.tree().join(name).to_str().unwrap()).unwrap();
            let dev = libc::makedev(major, minor);
            // SAFETY: mknod reads a valid NUL-terminated path.
            assert_eq!(unsafe { libc::mknod(path.as_ptr(), kind | 0o600, dev) }, 0);
        }
        f.start().unwrap();
        let out = f.output_until_done();
        assert_eq!(f.wait().exit_code, 0, "{out}");
        f.assert_cleaned_up();
        assert!(out.starts_with("null-ok\n"), "{out}");
        assert!(out.contains("mknod-ok\n"), "{out}");
        if privileged {
            for what in ["loop-opened", "loop0-opened", "new-node-opened"] {
                assert!(out.contains(what), "{what}: {out}");
            }
            assert!(!out.contains("Operation not permitted"), "{out}");
        } else {
            for what in ["loop-opened", "loop0-opened", "new-node-opened"] {
                assert!(!out.contains(what), "{what}: {out}");
            }
            for node in ["/loop-control", "/loop0", "/tmp/n"] {
                assert!(
                    out.lines().any(|l| l.starts_with("sh: can't ")
                        && l.ends_with(&format!(" {node}: Operation not permitted"))),
                    "{node}: {out}"
                );
            }
        }
    }
}

/// The counter the container writes to its `/tmp/count`, read through the init's root.
fn counter(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/root/tmp/count")).unwrap_or_default()
}

fn count(pid: i32) -> u64 {
    counter(pid).trim().parse().unwrap_or(0)
}

#[test]
fn pause_freezes_and_resume_thaws_through_cgroup_freeze_and_sigkill_ends_a_paused_one() {
    let f = Fixture::new(&[
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; done",
    ]);
    let pid = f.start().unwrap();
    let dir = f.v2_dir();
    wait_until(|| count(pid) > 100);
    assert_eq!(event(&dir, "frozen"), "0");

    f.client().pause().unwrap();
    assert_eq!(f.client().state().unwrap().status, "paused");
    assert_eq!(read(&dir.join("cgroup.freeze")).trim(), "1");
    assert_eq!(event(&dir, "frozen"), "1");
    let frozen = counter(pid);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(pid), frozen, "the counter moved while frozen");
    assert!(f.client().pause().is_err());

    f.client().resume().unwrap();
    assert_eq!(f.client().state().unwrap().status, "running");
    assert_eq!(event(&dir, "frozen"), "0");
    assert_eq!(read(&dir.join("cgroup.freeze")).trim(), "0");
    let at_resume = frozen.trim().parse().unwrap_or(0);
    wait_until(|| count(pid) > at_resume + 100);

    // SIGKILL while paused.
    f.client().pause().unwrap();
    assert_eq!(event(&dir, "frozen"), "1");
    f.kill_and_wait();
}

#[test]
fn exec_runs_in_the_containers_cgroup_and_cgroup_namespace() {
    let f = Fixture::new(&["sleep", "60"]);
    let init = f.start().unwrap();
    let script = "cat /proc/self/cgroup; \
                  [ \"$(readlink /proc/self/ns/cgroup)\" = \"$(readlink /proc/1/ns/cgroup)\" ] \
                    && echo same-cgroupns; \
                  cat /sys/fs/cgroup/cgroup.procs | sort -n | tr '\\n' ' '; echo; \
                  sleep 0.3; echo done";
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (mut err_r, err_w) = std::io::pipe().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let req = ExecRequest {
        args: ["sh", "-c", script].map(String::from).to_vec(),
        ..Default::default()
    };
    let session = f
        .client()
        .exec(&req, Some([null.as_fd(), out_w.as_fd(), err_w.as_fd()]))
        .unwrap();
    drop((out_w, err_w));
    // Born in the container's cgroup (clone3 into it), while it runs.
    let exec_pid = session.pid;
    let procs = f.host_procs();
    assert!(procs.contains(&exec_pid), "{procs:?} lacks {exec_pid}");
    assert!(procs.contains(&init), "{procs:?} lacks {init}");
    let host_view = read(Path::new(&format!("/proc/{exec_pid}/cgroup")));
    assert!(
        host_view
            .lines()
            .any(|l| l == format!("0::{}", f.spec.cgroup_path)),
        "{host_view}"
    );
    assert_eq!(
        std::fs::read_link(format!("/proc/{exec_pid}/ns/cgroup")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/ns/cgroup")).unwrap()
    );
    let status = session.wait().unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    out_r.read_to_string(&mut out).unwrap();
    err_r.read_to_string(&mut err).unwrap();
    assert_eq!(status.exit_code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l == "0::/"), "{out}");
    assert!(out.contains("same-cgroupns\n"), "{out}");
    assert!(out.ends_with("done\n"), "{out}");
    // Reaped: only the init is left.
    assert_eq!(f.host_procs(), [init]);
    f.kill_and_wait();
}

/// cgroups.rs enables only the controllers the layout has (none here) and then writes the
/// limit files, so a limit without its controller is an error naming the file, not skipped.
/// (Under a parent of its own: on a pure v2 host other tests enable controllers in theirs.)
#[test]
fn limits_without_the_controllers_fail_the_start_and_leave_nothing() {
    let mut f = Fixture::new(&["true"]);
    f.spec.cgroup_layout = Some(Layout::V2 {
        root: root(),
        controllers: vec![],
    });
    f.spec.cgroup_path = format!("/berth-v2test-none/{}", f.spec.id);
    f.spec.resources = Resources {
        memory: Some(64 << 20),
        ..Resources::default()
    };
    let err = f.start().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("cannot set memory limit to 67108864 (")
            && text.contains(&format!("{}/memory.max", f.spec.cgroup_path))
            && text.ends_with("no such file or directory"),
        "{text}"
    );
    assert!(!f.v2_dir().exists());
    assert!(!f.bundle().join("shim.sock").exists());
    let mountinfo = read(Path::new("/proc/self/mountinfo"));
    assert!(!mountinfo.contains(f.bundle().join("rootfs").to_str().unwrap()));
}

#[test]
fn privileged_container_may_nest_cgroups_and_teardown_removes_them() {
    // What docker-in-docker's entrypoint does on v2: move itself into a child cgroup.
    let script = "mkdir -p /sys/fs/cgroup/init/deeper; \
                  echo $$ > /sys/fs/cgroup/init/cgroup.procs; \
                  sleep 100 & \
                  echo $! > /sys/fs/cgroup/init/deeper/cgroup.procs; \
                  grep ^0:: /proc/self/cgroup /proc/$!/cgroup; echo done; wait";
    let mut f = Fixture::new(&["sh", "-c", script]);
    f.spec.privileged = true;
    let pid = f.start().unwrap();
    let out = f.output_until_done();
    assert!(out.contains("/proc/self/cgroup:0::/init\n"), "{out}");
    assert!(out.contains("/cgroup:0::/init/deeper\n"), "{out}");
    assert!(f.v2_dir().join("init/deeper").is_dir());
    // Every process of the container, in whichever of its cgroups it is.
    let mut pids = f.client().pids().unwrap();
    pids.sort_unstable();
    assert_eq!(pids.len(), 2, "{pids:?}");
    assert!(pids.contains(&pid), "{pids:?}");
    f.client().pause().unwrap();
    assert_eq!(event(&f.v2_dir().join("init"), "frozen"), "1");
    f.client().resume().unwrap();
    f.kill_and_wait();
}

#[test]
fn a_leftover_cgroup_with_nested_ones_is_cleared_on_create_unless_in_use() {
    require_root();
    let layout = layout();
    let path = format!("/berth-v2test/leftover-{}", std::process::id());
    let dir = root().join(path.trim_start_matches('/'));
    std::fs::create_dir_all(dir.join("init/deeper")).unwrap();
    let cgroup = Cgroup::create(&layout, &path, &Resources::default(), false).unwrap();
    assert!(dir.is_dir() && !dir.join("init").exists());

    // A process in a nested cgroup makes it a conflict, and nothing is removed.
    std::fs::create_dir(dir.join("init")).unwrap();
    let mut child = Command::new("sleep").arg("100").spawn().unwrap();
    std::fs::write(dir.join("init/cgroup.procs"), child.id().to_string()).unwrap();
    let err = Cgroup::create(&layout, &path, &Resources::default(), false).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string()
            .contains(&format!("init is in use by process {}", child.id())),
        "{err}"
    );
    assert_eq!(cgroup.pids().unwrap(), [child.id() as i32]);
    assert!(cgroup.kill_all(Duration::from_secs(5)));
    child.wait().unwrap();
    assert!(cgroup.remove());
    assert!(!dir.exists());
}
