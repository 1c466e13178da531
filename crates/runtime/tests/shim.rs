//! Privileged tests: real containers through `start()` and the real `berth-shim` binary, on a
//! busybox rootfs. They need root and FAIL without it.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_runtime::{
    read_exit, shim_alive, start, ContainerMount, ContainerSpec, ExecRequest, ExitStatus, Mount,
    Network, Resources, RuntimeError, Seccomp, ShimClient,
};

mod common;
use common::require_root;

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

const APPLETS: &[&str] = &[
    "sh", "echo", "true", "cat", "sleep", "id", "hostname", "ls", "mount", "unshare", "grep",
    "touch", "printf", "pwd", "tty", "stat", "mkdir", "wc", "stty", "yes", "head",
];

/// A container under test: a busybox tree, a bundle and a log path in one tempdir.
struct Fixture {
    dir: tempfile::TempDir,
    spec: ContainerSpec,
}

impl Fixture {
    fn new(args: &[&str]) -> Fixture {
        require_root();
        let dir = tempfile::Builder::new().prefix("brt").tempdir().unwrap();
        let tree = common::busybox_tree(dir.path(), APPLETS, common::PASSWD, common::GROUP);
        let id = format!(
            "t{}-{}",
            std::process::id(),
            dir.path().file_name().unwrap().to_string_lossy()
        );
        let spec = common::spec(dir.path(), &tree, &id, "/berth-test", args);
        Fixture { dir, spec }
    }

    fn bundle(&self) -> &Path {
        &self.spec.bundle
    }

    /// The rootfs as an overlay over the busybox tree; returns the upper directory.
    fn use_overlay(&mut self) -> PathBuf {
        let upper = self.dir.path().join("upper");
        let work = self.dir.path().join("work");
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        self.spec.rootfs = vec![Mount {
            fstype: "overlay".into(),
            source: "overlay".into(),
            options: vec![
                format!("lowerdir={}", self.dir.path().join("tree").display()),
                format!("upperdir={}", upper.display()),
                format!("workdir={}", work.display()),
            ],
        }];
        upper
    }

    /// Compiles `source` (C) statically into the tree as `/<name>` (gcc is a test dependency).
    fn build_static(&self, name: &str, source: &str) {
        let src = self.dir.path().join(format!("{name}.c"));
        std::fs::write(&src, source).unwrap();
        let out = Command::new("gcc")
            .args(["-static", "-O", "-o"])
            .arg(self.dir.path().join("tree").join(name))
            .arg(&src)
            .output()
            .expect("gcc is needed for the test's probe");
        assert!(out.status.success(), "{out:?}");
    }

    fn start(&self) -> Result<i32, RuntimeError> {
        start(&self.spec, Path::new(SHIM)).map(|s| s.pid)
    }

    /// SIGKILLs the init and waits for the exit.
    fn kill(&self) -> ExitStatus {
        ShimClient::connect(self.bundle())
            .expect("connect to the shim")
            .signal(libc::SIGKILL)
            .expect("signal");
        self.wait()
    }

    fn wait(&self) -> ExitStatus {
        match ShimClient::connect(self.bundle()) {
            Ok(mut c) => c.wait().expect("wait"),
            Err(_) => read_exit(self.bundle()).expect("exit.json"),
        }
    }

    /// Starts, waits, checks teardown; returns the exit code and the log records.
    fn run(&self) -> (i32, Vec<(String, String)>) {
        self.start().expect("start");
        let status = self.wait();
        self.assert_cleaned_up();
        (status.exit_code, self.logs())
    }

    fn stdout(&self) -> String {
        self.logs()
            .into_iter()
            .filter(|(_, s)| s == "stdout")
            .map(|(l, _)| l)
            .collect()
    }

    fn logs(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.spec.log.path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["log"].as_str().unwrap().to_string(),
                    v["stream"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// The container's directory in `controller`'s hierarchy (v2: its one directory).
    fn cgroup(&self, controller: &str) -> PathBuf {
        common::cgroup_dir(controller, &self.spec.cgroup_path)
    }

    /// No cgroup, no mount, no socket left once the container has exited.
    fn assert_cleaned_up(&self) {
        for dir in common::all_cgroup_dirs(&self.spec.cgroup_path) {
            assert!(!dir.exists(), "stray cgroup {dir:?}");
        }
        assert!(!self.bundle().join("lc").join(&self.spec.id).exists());
        let rootfs = self.bundle().join("rootfs");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
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

/// Polls `cond` until it holds. A minute: under the v2 tier's emulated kernel on a loaded
/// host, a shell loop writing 1 MiB took more than the 10 s this used to allow.
fn wait_until(mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(60), "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The parent pid of `pid` (field 4 of /proc/<pid>/stat, counted after the command name).
fn parent_of(pid: i32) -> i32 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .unwrap()
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap()
}

fn own_cap_bounding() -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim()
        .to_string()
}

#[test]
fn echo_output_reaches_the_json_log() {
    let f = Fixture::new(&["sh", "-c", "echo hi; echo oops >&2; printf partial"]);
    let (code, logs) = f.run();
    assert_eq!(code, 0);
    let mut stdout: Vec<_> = logs.iter().filter(|(_, s)| s == "stdout").collect();
    stdout.sort();
    assert_eq!(
        logs.iter().filter(|(_, s)| s == "stdout").count(),
        2,
        "{logs:?}"
    );
    assert!(logs.contains(&("hi\n".into(), "stdout".into())));
    assert!(logs.contains(&("partial".into(), "stdout".into())));
    assert!(logs.contains(&("oops\n".into(), "stderr".into())));
    let raw = std::fs::read_to_string(&f.spec.log.path).unwrap();
    let first: serde_json::Value = serde_json::from_str(raw.lines().next().unwrap()).unwrap();
    let time = first["time"].as_str().unwrap();
    assert!(time.ends_with('Z') && time.len() == 30, "{time}");
    assert!(f.bundle().join("pid").exists());
}

#[test]
fn many_lines_are_all_logged() {
    let f = Fixture::new(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 5000 ]; do echo line$i; i=$((i+1)); done",
    ]);
    let (code, logs) = f.run();
    assert_eq!(code, 0);
    assert_eq!(logs.len(), 5000);
    assert_eq!(logs[4999].0, "line4999\n");
}

#[test]
fn exit_code_is_reported_and_recorded() {
    let f = Fixture::new(&["sh", "-c", "exit 3"]);
    let (code, _) = f.run();
    assert_eq!(code, 3);
    let rec = read_exit(f.bundle()).unwrap();
    assert_eq!(rec.exit_code, 3);
    assert!(!rec.oom_killed);
    assert!(rec.finished_at.ends_with('Z'));
}

#[test]
fn sigkill_gives_137_and_state_reports_the_pid() {
    let f = Fixture::new(&["sleep", "100"]);
    let pid = f.start().unwrap();
    let mut c = ShimClient::connect(f.bundle()).unwrap();
    let state = c.state().unwrap();
    assert_eq!(state.pid, pid);
    assert_eq!(state.status, "running");
    assert!(shim_alive(f.bundle()));
    assert_eq!(f.kill().exit_code, 137);
    f.assert_cleaned_up();
    assert!(!shim_alive(f.bundle()));
}

#[test]
fn sigterm_handled_by_the_container_gives_143() {
    let f = Fixture::new(&[
        "sh",
        "-c",
        "trap 'exit 143' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    f.start().unwrap();
    wait_until(|| f.stdout().contains("ready"));
    // Two waiters: both get the exit.
    let waiter = {
        let bundle = f.bundle().to_path_buf();
        std::thread::spawn(move || ShimClient::connect(&bundle).unwrap().wait().unwrap())
    };
    ShimClient::connect(f.bundle())
        .unwrap()
        .signal(libc::SIGTERM)
        .unwrap();
    assert_eq!(f.wait().exit_code, 143);
    assert_eq!(waiter.join().unwrap().exit_code, 143);
    f.assert_cleaned_up();
}

#[test]
fn pause_resume_and_pids() {
    let f = Fixture::new(&["sh", "-c", "sleep 100 & sleep 100"]);
    let pid = f.start().unwrap();
    let client = || ShimClient::connect(f.bundle()).unwrap();
    wait_until(|| client().pids().unwrap().len() >= 2);
    let pids = client().pids().unwrap();
    assert!(pids.contains(&pid), "{pids:?} lacks {pid}");
    client().pause().unwrap();
    assert_eq!(client().state().unwrap().status, "paused");
    if common::host_layout().is_v2() {
        let events = std::fs::read_to_string(f.cgroup("freezer").join("cgroup.events")).unwrap();
        assert!(events.lines().any(|l| l == "frozen 1"), "{events}");
    } else {
        let freezer = std::fs::read_to_string(f.cgroup("freezer").join("freezer.state")).unwrap();
        assert_eq!(freezer.trim(), "FROZEN");
    }
    // The shim's refusal comes back typed: a conflict (409), not a 500.
    let again = berth_runtime::shim::runtime_error(client().pause().unwrap_err(), "c");
    assert_eq!(again.kind(), berth_runtime::ErrorKind::Conflict, "{again}");
    assert!(again.to_string().contains("is already paused"), "{again}");
    client().resume().unwrap();
    assert_eq!(client().state().unwrap().status, "running");
    // SIGKILL on a paused container still ends it.
    client().pause().unwrap();
    client().signal(libc::SIGKILL).unwrap();
    assert_eq!(f.wait().exit_code, 137);
    f.assert_cleaned_up();
}

#[test]
fn user_by_name_gets_its_groups_and_home() {
    let mut f = Fixture::new(&["sh", "-c", "id; echo $HOME"]);
    f.spec.process.user = "nobody".into();
    let (code, _) = f.run();
    assert_eq!(code, 0);
    let out = f.stdout();
    assert!(
        out.contains("uid=65534(nobody) gid=65534(nogroup)"),
        "{out}"
    );
    assert!(out.contains("50(staff)"), "{out}");
    assert!(out.contains("/home/nobody"), "{out}");
}

#[test]
fn user_uid_gid_without_passwd_entry() {
    let mut f = Fixture::new(&["id"]);
    f.spec.process.user = "1000:1000".into();
    f.run();
    assert!(
        f.stdout().starts_with("uid=1000 gid=1000"),
        "{}",
        f.stdout()
    );
}

#[test]
fn missing_user_fails_with_dockers_text_and_leaves_nothing() {
    let mut f = Fixture::new(&["id"]);
    f.spec.process.user = "nosuch".into();
    let err = f.start().unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find user nosuch: no matching entries in passwd file"
    );
    assert_eq!(err.kind(), berth_runtime::ErrorKind::InvalidArgument);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(f.bundle().join("rootfs").to_str().unwrap()));
    assert!(!f.bundle().join("shim.sock").exists());
}

/// Regression: an image whose /etc/passwd is a FIFO hung start() forever (and a device node
/// such as 1:5 was read by the shim, on the host, until memory ran out). Now start() fails
/// at once, naming the file, and leaves nothing behind.
#[test]
fn passwd_or_group_that_is_not_a_regular_file_fails_start_at_once() {
    let cases: [(&str, libc::mode_t, libc::dev_t, &str); 3] = [
        ("etc/passwd", libc::S_IFIFO, 0, "/etc/passwd"),
        (
            "etc/passwd",
            libc::S_IFCHR,
            libc::makedev(1, 5),
            "/etc/passwd",
        ),
        (
            "etc/group",
            libc::S_IFCHR,
            libc::makedev(1, 5),
            "/etc/group",
        ),
    ];
    for (file, kind, dev, name) in cases {
        let f = Fixture::new(&["true"]);
        let path = f.dir.path().join("tree").join(file);
        std::fs::remove_file(&path).unwrap();
        let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: mknod reads a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mknod(c.as_ptr(), kind | 0o644, dev) }, 0);
        let (tx, rx) = std::sync::mpsc::channel();
        let spec = f.spec.clone();
        std::thread::spawn(move || {
            let _ = tx.send(start(&spec, Path::new(SHIM)));
        });
        let err = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("start() hung on a special file in the image")
            .unwrap_err();
        let what = if kind == libc::S_IFIFO {
            "a fifo"
        } else {
            "a character device"
        };
        assert_eq!(
            err.to_string(),
            format!(
                "unable to read {name} of the container's root filesystem: \
                 {what}, not a regular file"
            )
        );
        assert_eq!(err.kind(), berth_runtime::ErrorKind::InvalidArgument);
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mountinfo.contains(f.bundle().join("rootfs").to_str().unwrap()));
        assert!(!f.bundle().join("shim.sock").exists());
        assert!(!f.cgroup("memory").exists());
    }
}

#[test]
fn exec_not_found_and_not_executable_have_dockers_text() {
    let f = Fixture::new(&["nosuch"]);
    let err = f.start().unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"exec: "nosuch": executable file not found in $PATH"#),
        "{err}"
    );
    assert_eq!(err.kind(), berth_runtime::ErrorKind::InvalidArgument);
    assert!(!f.cgroup("memory").exists());
    let f = Fixture::new(&["/etc/passwd"]);
    let err = f.start().unwrap_err();
    assert!(err.to_string().contains("permission denied"), "{err}");
    let f = Fixture::new(&["/x"]);
    let err = f.start().unwrap_err();
    assert!(
        err.to_string().contains("no such file or directory"),
        "{err}"
    );
}

#[test]
fn hostname_and_env() {
    let mut f = Fixture::new(&["sh", "-c", "hostname; echo $HOSTNAME $FOO $PATH"]);
    f.spec.process.env = vec!["FOO=bar".into()];
    f.run();
    assert_eq!(
        f.stdout(),
        "box\nbox bar /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[test]
fn default_capabilities_and_seccomp_are_dockers() {
    let f = Fixture::new(&[
        "grep",
        "-E",
        "^(CapEff|CapBnd|CapInh|CapAmb|Seccomp|NoNewPrivs):",
        "/proc/self/status",
    ]);
    f.run();
    let out = f.stdout();
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapBnd:\t00000000a80425fb"), "{out}");
    assert!(out.contains("CapInh:\t0000000000000000"), "{out}");
    assert!(out.contains("CapAmb:\t0000000000000000"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");
}

#[test]
fn unshare_and_mount_fail_by_default_and_work_with_sys_admin() {
    let script = "unshare -m true && echo unshare-ok; mount -t tmpfs t /mnt && echo mount-ok; true";
    let f = Fixture::new(&["sh", "-c", script]);
    f.run();
    assert_eq!(f.stdout(), "");
    let mut f = Fixture::new(&["sh", "-c", script]);
    f.spec.cap_add = vec!["sys_admin".into()];
    f.run();
    assert_eq!(f.stdout(), "unshare-ok\nmount-ok\n");
}

/// clone3 must fail with ENOSYS (38) so libc falls back to clone; with CAP_SYS_ADMIN it is
/// allowed (EINVAL for the bogus arguments). Uses a static probe built with gcc.
#[test]
fn clone3_gets_enosys_by_default() {
    let f = Fixture::new(&["/probe"]);
    f.build_static(
        "probe",
        "#include <stdio.h>\n#include <errno.h>\n#include <unistd.h>\n#include <sys/syscall.h>\n\
         int main(void){long r=syscall(435,0,0);printf(\"%d\\n\",r<0?errno:0);return 0;}\n",
    );
    f.run();
    assert_eq!(f.stdout(), "38\n");
    let mut f2 = Fixture::new(&["/probe"]);
    std::fs::copy(
        f.dir.path().join("tree/probe"),
        f2.dir.path().join("tree/probe"),
    )
    .unwrap();
    f2.spec.cap_add = vec!["SYS_ADMIN".into()];
    f2.run();
    assert_eq!(f2.stdout(), "22\n");
    let mut f3 = Fixture::new(&["/probe"]);
    std::fs::copy(
        f.dir.path().join("tree/probe"),
        f3.dir.path().join("tree/probe"),
    )
    .unwrap();
    f3.spec.seccomp = Seccomp::Unconfined;
    f3.run();
    assert_eq!(f3.stdout(), "22\n");
}

/// runc's /dev/core: a link to /proc/kcore when the kernel has one (CONFIG_PROC_KCORE).
#[test]
fn dev_core_links_to_kcore_when_the_kernel_has_it() {
    let f = Fixture::new(&["sh", "-c", "ls -l /dev/core 2>/dev/null || echo none"]);
    f.run();
    let out = f.stdout();
    if Path::new("/proc/kcore").exists() {
        assert!(
            out.trim_end().ends_with("/dev/core -> /proc/kcore"),
            "{out}"
        );
    } else {
        assert_eq!(out, "none\n");
    }
}

#[test]
fn masked_and_readonly_proc_paths() {
    let f = Fixture::new(&[
        "sh",
        "-c",
        "cat /proc/keys; echo end; echo 1 > /proc/sys/kernel/domainname || echo ro",
    ]);
    f.run();
    assert_eq!(f.stdout(), "end\nro\n");
}

#[test]
fn memory_and_pids_limits_are_on_the_host_cgroup() {
    let mut f = Fixture::new(&["sleep", "100"]);
    f.spec.resources = Resources {
        memory: Some(64 << 20),
        pids_limit: Some(32),
        cpu_shares: Some(512),
        ..Default::default()
    };
    f.start().unwrap();
    let read = |c: &str, file: &str| {
        std::fs::read_to_string(f.cgroup(c).join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("pids", "pids.max"), "32");
    if common::host_layout().is_v2() {
        assert_eq!(read("memory", "memory.max"), "67108864");
        // runc's conversion of 512 shares.
        assert_eq!(read("cpu", "cpu.weight"), "59");
        // The device rules are an eBPF program there (cgroup_v2.rs probes them).
    } else {
        assert_eq!(read("memory", "memory.limit_in_bytes"), "67108864");
        assert_eq!(read("cpu", "cpu.shares"), "512");
        let devices = read("devices", "devices.list");
        assert!(!devices.contains("a *:* rwm"), "{devices}");
        assert!(devices.contains("c 1:3 rwm"), "{devices}");
    }
    assert_eq!(f.kill().exit_code, 137);
    f.assert_cleaned_up();
}

#[test]
fn oom_kill_is_reported() {
    let mut f = Fixture::new(&["sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"]);
    f.spec.resources.memory = Some(32 << 20);
    f.spec.resources.memory_swap = Some(32 << 20);
    f.start().unwrap();
    let status = f.wait();
    assert_eq!(status.exit_code, 137);
    assert!(status.oom_killed);
    f.assert_cleaned_up();
}

#[test]
fn readonly_rootfs_rejects_writes() {
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "touch /x && echo wrote; touch /tmp/y && echo wrote",
    ]);
    f.spec.readonly_rootfs = true;
    f.run();
    assert_eq!(f.stdout(), "");
}

#[test]
fn network_none_has_only_lo_and_bind_mounts_work() {
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "ls /sys/class/net; cat /etc/hostname /sys/class/net/lo/flags",
    ]);
    let hostname = f.dir.path().join("hostname");
    std::fs::write(&hostname, "box\n").unwrap();
    std::fs::write(f.dir.path().join("tree/etc/hostname"), "").unwrap();
    f.spec.mounts = vec![ContainerMount {
        source: hostname,
        destination: "/etc/hostname".into(),
        readonly: true,
        ..Default::default()
    }];
    f.spec.network = Network::None;
    f.run();
    // lo is up (IFF_UP | IFF_LOOPBACK), as Docker has it.
    assert_eq!(f.stdout(), "lo\nbox\n0x9\n");
}

#[test]
fn privileged_gets_the_shims_capabilities() {
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "grep -E '^(CapEff|Seccomp):' /proc/self/status; ls /dev/loop-control; \
         grep -q ' /sys sysfs rw' /proc/mounts && echo sys-rw",
    ]);
    f.spec.privileged = true;
    f.run();
    let out = f.stdout();
    let want = format!("CapEff:\t{}", own_cap_bounding());
    assert!(out.contains(&want), "{out} lacks {want}");
    assert!(out.contains("Seccomp:\t0"), "{out}");
    assert!(out.contains("/dev/loop-control\n"), "{out}");
    assert!(out.contains("sys-rw\n"), "{out}");
}

#[test]
fn init_is_bound_read_only_and_runs_the_command() {
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "echo cmd $$; echo x > /sbin/docker-init || echo ro",
    ]);
    // A shell script stands in for tini: it reports its pid and first argument, drops "--"
    // and execs the command.
    let init = f.dir.path().join("init.sh");
    std::fs::write(&init, "#!/bin/sh\necho init $$ $1\nshift\nexec \"$@\"\n").unwrap();
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    f.spec.init = Some(init);
    let (code, _) = f.run();
    assert_eq!(code, 0, "{:?}", f.logs());
    assert_eq!(f.stdout(), "init 1 --\ncmd 1\nro\n");
}

#[test]
fn rlimits_and_cpu_limits_apply() {
    let mut f = Fixture::new(&["sh", "-c", "ulimit -n; ulimit -Hn; sleep 100"]);
    f.spec.process.rlimits = vec![berth_runtime::Rlimit {
        name: "nofile".into(),
        soft: 100,
        hard: 200,
    }];
    f.spec.resources = Resources {
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        cpuset_cpus: Some("0".into()),
        ..Default::default()
    };
    f.start().unwrap();
    wait_until(|| f.stdout().lines().count() == 2);
    assert_eq!(f.stdout(), "100\n200\n");
    let read = |c: &str, file: &str| {
        std::fs::read_to_string(f.cgroup(c).join(file))
            .unwrap()
            .trim()
            .to_string()
    };
    if common::host_layout().is_v2() {
        assert_eq!(read("cpu", "cpu.max"), "50000 100000");
    } else {
        assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
        assert_eq!(read("cpu", "cpu.cfs_period_us"), "100000");
    }
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    assert_eq!(f.kill().exit_code, 137);
    f.assert_cleaned_up();
}

#[test]
fn container_survives_the_death_of_its_starter() {
    let f = Fixture::new(&["sh", "-c", "echo early; sleep 1; echo late"]);
    std::fs::write(
        f.bundle().join("spec.json"),
        serde_json::to_vec(&berth_runtime::prepare(&f.spec).unwrap()).unwrap(),
    )
    .unwrap();
    // A stand-in berthd: starts the shim, then is SIGKILLed with its whole process group.
    let mut starter = Command::new("sh")
        .arg("-c")
        .arg(format!("{SHIM} start {}; sleep 100", f.bundle().display()))
        .stdout(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // `{"shim_pid":N}` first, then the report.
    let mut out = std::io::BufReader::new(starter.stdout.as_mut().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.starts_with("{\"shim_pid\":"), "{line}");
    line.clear();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert!(line.contains("\"pid\""), "{line}");
    // SAFETY: kill of a process group we created.
    unsafe { libc::kill(-(starter.id() as i32), libc::SIGKILL) };
    starter.wait().unwrap();
    assert!(shim_alive(f.bundle()));
    let status = ShimClient::connect(f.bundle()).unwrap().wait().unwrap();
    assert_eq!(status.exit_code, 0);
    assert_eq!(f.stdout(), "early\nlate\n");
    f.assert_cleaned_up();
}

use std::os::unix::process::CommandExt;

/// Prints start()+wait() for `true` next to `runc run` of a `runc spec` bundle on the same
/// tree (interleaved rounds). `BERTH_TEST_SHIM` points at another shim build (e.g. release);
/// `BERTH_TIMING_ROUNDS` sets the number of rounds (default 5).
#[test]
fn timing_of_start_and_wait_for_true() {
    let shim = std::env::var("BERTH_TEST_SHIM").unwrap_or_else(|_| SHIM.to_string());
    let rounds: usize = std::env::var("BERTH_TIMING_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(5);
    let runc = Fixture::new(&["true"]);
    let runc_bundle = runc.dir.path().join("runc");
    std::fs::create_dir(&runc_bundle).unwrap();
    let st = Command::new("runc")
        .args(["spec", "-b"])
        .arg(&runc_bundle)
        .status()
        .expect("runc");
    assert!(st.success());
    let cfg_path = runc_bundle.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cfg_path).unwrap()).unwrap();
    cfg["process"]["terminal"] = false.into();
    cfg["process"]["args"] = serde_json::json!(["true"]);
    cfg["root"]["path"] = runc
        .dir
        .path()
        .join("tree")
        .to_string_lossy()
        .into_owned()
        .into();
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let f = Fixture::new(&["true"]);
        let t = Instant::now();
        start(&f.spec, Path::new(&shim)).unwrap();
        let code = f.wait().exit_code;
        ours.push(t.elapsed());
        assert_eq!(code, 0);
        if std::env::var_os("BERTH_SHIM_TIMING").is_some() {
            let log = std::fs::read_to_string(f.bundle().join("shim.log")).unwrap_or_default();
            eprint!("{log}");
        }
        let t = Instant::now();
        let st = Command::new("runc")
            .args(["run", "-b"])
            .arg(&runc_bundle)
            .arg(format!("brt-runc-{}-{round}", std::process::id()))
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        theirs.push(t.elapsed());
        assert!(st.success());
    }
    ours.sort();
    theirs.sort();
    eprintln!(
        "start()+wait() for `true`: min {:?} median {:?}; runc run (runc spec): min {:?} median {:?}",
        ours[0],
        ours[rounds / 2],
        theirs[0],
        theirs[rounds / 2]
    );
}

#[test]
fn workload_gets_clean_signal_state_and_only_stdio_fds() {
    let f = Fixture::new(&[
        "sh",
        "-c",
        "grep -E '^Sig(Ign|Blk):' /proc/self/status; ls /proc/self/fd",
    ]);
    f.run();
    assert_eq!(
        f.stdout(),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n0\n1\n2\n3\n"
    );
}

#[test]
fn missing_working_directory_is_created() {
    let mut f = Fixture::new(&["pwd"]);
    f.spec.process.cwd = "/work/dir".into();
    let (code, _) = f.run();
    assert_eq!(code, 0);
    assert_eq!(f.stdout(), "/work/dir\n");
}

#[test]
fn oom_score_adj_applies_to_the_container_not_the_shim() {
    let mut f = Fixture::new(&["sh", "-c", "cat /proc/self/oom_score_adj; sleep 100"]);
    f.spec.process.oom_score_adj = Some(500);
    let pid = f.start().unwrap();
    wait_until(|| !f.stdout().is_empty());
    assert_eq!(f.stdout(), "500\n");
    let ppid = parent_of(pid);
    let shim_adj = std::fs::read_to_string(format!("/proc/{ppid}/oom_score_adj")).unwrap();
    assert_eq!(shim_adj.trim(), "0");
    assert_eq!(f.kill().exit_code, 137);
}

#[test]
fn network_path_joins_an_existing_namespace() {
    let name = format!("brt-{}", std::process::id());
    let ip = |args: &[&str]| {
        let st = Command::new("ip").args(args).status().unwrap();
        assert!(st.success(), "ip {args:?}");
    };
    /// Deletes the namespace even when the test fails half-way.
    struct Netns(String);
    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    ip(&["netns", "add", &name]);
    let _netns = Netns(name.clone());
    ip(&[
        "-n", &name, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    let mut f = Fixture::new(&["ls", "/sys/class/net"]);
    f.spec.network = Network::Path(PathBuf::from("/run/netns").join(&name));
    f.run();
    assert_eq!(f.stdout(), "d0\nd1\nlo\n");
}

#[test]
fn starting_twice_is_a_conflict_and_a_restart_clears_the_old_record() {
    let f = Fixture::new(&["sleep", "100"]);
    f.start().unwrap();
    let err = f.start().unwrap_err();
    assert_eq!(err.kind(), berth_runtime::ErrorKind::Conflict);
    assert_eq!(f.kill().exit_code, 137);
    // Same bundle again (a restart): the old exit record is gone while it runs.
    f.start().unwrap();
    assert!(read_exit(f.bundle()).is_none());
    assert_eq!(f.kill().exit_code, 137);
    f.assert_cleaned_up();
}

/// Regression: the default profile's masked `clone` rule must allow plain fork (no namespace
/// flags) and deny namespace creation.
#[test]
fn fork_works_and_clone_newns_is_denied_under_default_seccomp() {
    let f = Fixture::new(&["/probe"]);
    f.build_static(
        "probe",
        "#define _GNU_SOURCE\n#include <stdio.h>\n#include <errno.h>\n#include <unistd.h>\n\
         #include <sched.h>\n#include <signal.h>\n#include <sys/syscall.h>\n#include <sys/wait.h>\n\
         int main(void){long r=syscall(SYS_clone,SIGCHLD,0,0,0,0);if(r==0)_exit(0);\
         printf(\"clone %d\\n\",r<0?errno:0);if(r>0)waitpid(r,0,0);\
         r=syscall(SYS_clone,SIGCHLD|CLONE_NEWUTS,0,0,0,0);if(r==0)_exit(0);\
         printf(\"newuts %d\\n\",r<0?errno:0);if(r>0)waitpid(r,0,0);\
         pid_t p=fork();if(p==0)_exit(0);printf(\"fork %d\\n\",p<0?errno:0);return 0;}\n",
    );
    f.run();
    assert_eq!(f.stdout(), "clone 0\nnewuts 1\nfork 0\n");
}

#[test]
fn non_root_user_has_no_effective_caps_but_the_filter_and_bounding_set() {
    let mut f = Fixture::new(&[
        "grep",
        "-E",
        "^(CapEff|CapPrm|CapBnd|Seccomp):",
        "/proc/self/status",
    ]);
    f.spec.process.user = "nobody".into();
    f.run();
    assert_eq!(
        f.stdout(),
        "CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\nCapBnd:\t00000000a80425fb\nSeccomp:\t2\n"
    );
}

/// The precompiled default filter and libcontainer's own loading of the same profile (given as
/// a custom profile) must behave the same.
#[test]
fn precompiled_default_filter_matches_the_libcontainer_path() {
    let script = "grep -E '^(CapEff|CapBnd|CapPrm|Seccomp):' /proc/self/status; \
                  unshare -m true 2>/dev/null && echo unshare-ok; echo done";
    let mut outputs = Vec::new();
    for seccomp in [
        Seccomp::Default,
        Seccomp::Profile(berth_runtime::defaults::DEFAULT_SECCOMP_PROFILE.to_string()),
    ] {
        for cap_add in [vec![], vec!["SYS_ADMIN".to_string()]] {
            let mut f = Fixture::new(&["sh", "-c", script]);
            f.spec.seccomp = seccomp.clone();
            f.spec.cap_add = cap_add;
            f.run();
            outputs.push(f.stdout());
        }
    }
    assert_eq!(outputs[0], outputs[2]);
    assert_eq!(outputs[1], outputs[3]);
    assert!(outputs[0].contains("CapBnd:\t00000000a80425fb"));
    assert!(!outputs[0].contains("unshare-ok"));
    assert!(outputs[1].contains("unshare-ok"));
}

#[test]
fn overlay_rootfs_writes_go_to_the_upper_dir_and_is_unmounted() {
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "echo data > /new; cat /etc/group | grep -c staff",
    ]);
    let upper = f.use_overlay();
    let (code, _) = f.run();
    assert_eq!(code, 0, "{:?}", f.logs());
    assert_eq!(f.stdout(), "1\n");
    assert_eq!(
        std::fs::read_to_string(upper.join("new")).unwrap(),
        "data\n"
    );
    assert!(!f.dir.path().join("tree/new").exists());
}

/// Pids of the processes whose mount table has a mount at `path`.
fn processes_with_mount_at(path: &Path) -> Vec<i32> {
    let needle = format!(" {} ", path.display());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
                .is_ok_and(|m| m.contains(&needle))
        })
        .collect()
}

/// Regression: the rootfs was mounted in the host's mount namespace (host users could reach
/// its setuid files and device nodes under `<bundle>/rootfs`, and a SIGKILLed shim leaked the
/// mount). It lives in the shim's own mount namespace now and dies with it.
#[test]
fn rootfs_mount_is_invisible_on_the_host_and_dies_with_the_shim() {
    let mut f = Fixture::new(&["sleep", "100"]);
    f.use_overlay();
    let rootfs = f.bundle().join("rootfs");
    let pid = f.start().unwrap();
    let host = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !host.contains(&format!(" {} ", rootfs.display())),
        "the rootfs is mounted in the host's namespace"
    );
    assert!(std::fs::read_dir(&rootfs).unwrap().next().is_none());
    let shim = parent_of(pid);
    assert_eq!(processes_with_mount_at(&rootfs), vec![shim]);
    // SAFETY: kill of the container's shim, our test's own process tree.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    wait_until(|| !Path::new(&format!("/proc/{shim}/mountinfo")).exists());
    assert!(processes_with_mount_at(&rootfs).is_empty());
    // The orphaned container (its own mount namespace) is the engine's to reap; do it here.
    // SAFETY: kill of the container init started above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    for dir in common::all_cgroup_dirs(&f.spec.cgroup_path) {
        if dir.join("cgroup.procs").exists() {
            wait_until(|| {
                std::fs::read_to_string(dir.join("cgroup.procs")).is_ok_and(|p| p.is_empty())
            });
            let _ = std::fs::remove_dir(&dir);
        }
    }
    assert!(processes_with_mount_at(&rootfs).is_empty());
}

#[test]
fn cap_drop_all_and_no_new_privileges_keep_the_filter() {
    let status = "^(CapEff|CapBnd|Seccomp|NoNewPrivs):";
    let mut f = Fixture::new(&["grep", "-E", status, "/proc/self/status"]);
    f.spec.cap_drop = vec!["ALL".into()];
    f.run();
    assert_eq!(
        f.stdout(),
        "CapEff:\t0000000000000000\nCapBnd:\t0000000000000000\nNoNewPrivs:\t0\nSeccomp:\t2\n"
    );
    let mut f = Fixture::new(&["grep", "-E", status, "/proc/self/status"]);
    f.spec.process.no_new_privileges = true;
    f.run();
    assert_eq!(
        f.stdout(),
        "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t1\nSeccomp:\t2\n"
    );
}

/// Failures the host-side check cannot see (a missing ELF interpreter, a script without a
/// shebang) still fail start() with the execve error, and leave nothing behind.
#[test]
fn execve_failures_after_the_check_fail_start() {
    let f = Fixture::new(&["/dyn"]);
    std::fs::copy("/bin/true", f.dir.path().join("tree/dyn")).unwrap();
    let err = f.start().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"exec: "/dyn": no such file or directory"#
    );
    assert_eq!(err.kind(), berth_runtime::ErrorKind::InvalidArgument);
    for c in ["memory", "pids"] {
        assert!(!f.cgroup(c).exists());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(f.bundle().join("rootfs").to_str().unwrap()));
    assert!(!f.bundle().join("shim.sock").exists());

    let f = Fixture::new(&["/script"]);
    std::fs::write(f.dir.path().join("tree/script"), "echo hi\n").unwrap();
    std::fs::set_permissions(
        f.dir.path().join("tree/script"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let err = f.start().unwrap_err();
    assert_eq!(err.to_string(), r#"exec: "/script": exec format error"#);
}

/// Runs `req` in the fixture's running container with pipes as stdio; returns the exit code,
/// stdout and stderr, or the error of the start.
fn exec_in(f: &Fixture, req: &ExecRequest) -> Result<(i32, String, String), String> {
    use std::io::Read;
    use std::os::fd::AsFd;
    let (mut out_r, out_w) = std::io::pipe().unwrap();
    let (mut err_r, err_w) = std::io::pipe().unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let mut client = ShimClient::connect(f.bundle()).map_err(|e| e.to_string())?;
    let session = client
        .exec(req, Some([null.as_fd(), out_w.as_fd(), err_w.as_fd()]))
        .map_err(|e| e.to_string())?;
    drop((out_w, err_w));
    let status = session.wait().map_err(|e| e.to_string())?;
    let (mut out, mut err) = (String::new(), String::new());
    out_r.read_to_string(&mut out).unwrap();
    err_r.read_to_string(&mut err).unwrap();
    Ok((status.exit_code, out, err))
}

fn exec_req(args: &[&str]) -> ExecRequest {
    ExecRequest {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn exec_joins_the_containers_namespaces_cgroup_and_privileges() {
    let f = Fixture::new(&["sleep", "60"]);
    let pid = f.start().unwrap();
    let script = "for n in ipc mnt net pid uts; do \
                    [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] || echo differs $n; \
                  done; hostname; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
                  grep -E '^0::|:memory:' /proc/self/cgroup; ls /proc/self/fd; unshare -m true 2>/dev/null && echo unshare-ok; \
                  echo $PATH; exit 3";
    let (code, out, err) = exec_in(&f, &exec_req(&["sh", "-c", script])).unwrap();
    assert_eq!(code, 3, "{out}{err}");
    assert!(!out.contains("differs"), "{out}");
    assert!(out.starts_with("box\n"), "{out}");
    assert!(
        out.contains(
            "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\n"
        ),
        "{out}"
    );
    // v2: the container's cgroup namespace, rooted at its cgroup.
    let own_cgroup = if common::host_layout().is_v2() {
        "0::/\n".to_string()
    } else {
        format!(":memory:{}\n", f.spec.cgroup_path)
    };
    assert!(out.contains(&own_cgroup), "{out}");
    // Only stdio (and ls's own directory handle) in the process.
    assert!(out.contains("\n0\n1\n2\n3\n"), "{out}");
    assert!(!out.contains("unshare-ok"));
    assert!(out.contains("/usr/local/sbin:/usr/local/bin"), "{out}");
    // The exec'd process was in the container's cgroup while it ran, and the shim reaped it.
    let procs = std::fs::read_to_string(f.cgroup("pids").join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), pid.to_string());
    assert_eq!(f.kill().exit_code, 137);
    f.assert_cleaned_up();
}

#[test]
fn exec_user_environment_directory_and_privileged() {
    let mut f = Fixture::new(&["sleep", "60"]);
    f.spec.process.env = vec!["KEEP=1".into(), "FOO=old".into()];
    f.start().unwrap();
    let req = ExecRequest {
        user: "nobody".into(),
        env: vec!["FOO=new".into()],
        cwd: "/tmp".into(),
        ..exec_req(&["sh", "-c", "id; pwd; echo $KEEP $FOO $HOME"])
    };
    let (code, out, _) = exec_in(&f, &req).unwrap();
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "uid=65534(nobody) gid=65534(nogroup) groups=50(staff)\n/tmp\n1 new /home/nobody\n"
    );
    let req = ExecRequest {
        privileged: true,
        ..exec_req(&["grep", "^CapEff:", "/proc/self/status"])
    };
    let (_, out, _) = exec_in(&f, &req).unwrap();
    assert_eq!(out, format!("CapEff:\t{}\n", own_cap_bounding()));
}

/// berthd (and so the shim) started in a chroot: entering the container's mount namespace
/// alone would put an exec'd process at the namespace's root mount, the host's whole tree.
/// The test runs itself again in a private mount namespace, chrooted into a bind of `/`.
#[test]
fn exec_from_a_chrooted_shim_lands_in_the_containers_root() {
    const INNER: &str = "BERTH_TEST_CHROOTED_SHIM";
    if std::env::var_os(INNER).is_none() {
        require_root();
        let jail = tempfile::Builder::new().prefix("brj").tempdir().unwrap();
        let out = Command::new("unshare")
            .args(["-m", "sh", "-c"])
            .arg(
                "mount --make-rprivate / && mount --rbind / \"$1\" && \
                 exec chroot \"$1\" \"$2\" --exact \"$3\" --test-threads=1",
            )
            .arg("sh")
            .arg(jail.path())
            .arg(std::env::current_exe().unwrap())
            .arg("exec_from_a_chrooted_shim_lands_in_the_containers_root")
            .env(INNER, "1")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(text.contains("test result: ok. 1 passed"), "{text}");
        return;
    }
    let f = Fixture::new(&["sleep", "60"]);
    std::fs::write(f.dir.path().join("tree/marker"), "in the container\n").unwrap();
    f.start().unwrap();
    let script = "cat /marker; [ -e /proc/self/ns ] || echo no-proc; \
                  for n in mnt pid; do \
                    [ \"$(readlink /proc/self/ns/$n)\" = \"$(readlink /proc/1/ns/$n)\" ] || echo differs $n; \
                  done; pwd";
    let (code, out, err) = exec_in(&f, &exec_req(&["sh", "-c", script])).unwrap();
    assert_eq!((code, out.as_str()), (0, "in the container\n/\n"), "{err}");
    assert_eq!(f.kill().exit_code, 137);
}

#[test]
fn exec_errors_have_dockers_texts_and_leave_no_process() {
    let f = Fixture::new(&["sleep", "60"]);
    f.start().unwrap();
    let e = exec_in(&f, &exec_req(&["nosuch"])).unwrap_err();
    assert_eq!(e, r#"exec: "nosuch": executable file not found in $PATH"#);
    let e = exec_in(&f, &exec_req(&["/etc/passwd"])).unwrap_err();
    assert_eq!(e, r#"exec: "/etc/passwd": permission denied"#);
    let e = exec_in(&f, &exec_req(&["/nonexistent"])).unwrap_err();
    assert!(e.ends_with("no such file or directory"), "{e}");
    let e = exec_in(
        &f,
        &ExecRequest {
            user: "ghost".into(),
            ..exec_req(&["true"])
        },
    )
    .unwrap_err();
    assert_eq!(
        e,
        "unable to find user ghost: no matching entries in passwd file"
    );
    let mut c = ShimClient::connect(f.bundle()).unwrap();
    assert_eq!(c.pids().unwrap().len(), 1);
    ShimClient::connect(f.bundle()).unwrap().pause().unwrap();
    let e = exec_in(&f, &exec_req(&["true"])).unwrap_err();
    assert!(e.contains("is paused"), "{e}");
    ShimClient::connect(f.bundle()).unwrap().resume().unwrap();
    assert_eq!(exec_in(&f, &exec_req(&["true"])).unwrap().0, 0);
}

#[test]
fn exec_with_a_terminal_gets_a_pty_from_the_containers_devpts() {
    use std::io::Read;
    let f = Fixture::new(&["sleep", "60"]);
    f.start().unwrap();
    let req = ExecRequest {
        tty: true,
        ..exec_req(&[
            "sh",
            "-c",
            "tty; [ -t 0 ] && [ -t 1 ] && echo both-tty; ls -1 /dev/pts",
        ])
    };
    let session = ShimClient::connect(f.bundle())
        .unwrap()
        .exec(&req, None)
        .unwrap();
    let master = std::fs::File::from(session.master.as_ref().unwrap().try_clone().unwrap());
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    // EIO ends the stream once the process has exited and the slave is closed.
    while let Ok(n) = (&master).read(&mut buf) {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    assert_eq!(session.wait().unwrap().exit_code, 0);
    let out = String::from_utf8_lossy(&out).replace('\r', "");
    assert!(out.starts_with("/dev/pts/0\nboth-tty\n"), "{out}");
    // The pty belongs to the container's devpts instance, not the host's.
    let host_pts = std::fs::read_dir("/dev/pts").unwrap().count();
    assert!(
        out.contains("0\nptmx"),
        "{out} (host has {host_pts} entries)"
    );
}

/// CVE-2019-5736 class: while processes are exec'd into the container, a tight C loop inside
/// opens `/proc/<pid>/exe` of the next pids the container's pid namespace will hand out (the
/// exec'd processes are born there) and reports any that is not busybox. It must never reach
/// the shim's binary (the exec'd process is non-dumpable until execve), and the binary stays
/// byte for byte the same. (With the shim left dumpable the watcher catches it at once.)
#[test]
fn exec_never_exposes_the_shims_binary_to_the_container() {
    let f = Fixture::new(&["/watch"]);
    f.build_static(
        "watch",
        r#"#include <stdio.h>
#include <fcntl.h>
#include <unistd.h>
#include <string.h>
#include <sys/stat.h>
int main(void) {
    struct stat self; stat("/proc/self/exe", &self);
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("watching\n");
    for (;;) {
        for (int pid = 2; pid < 400; pid++) {
            char path[64]; snprintf(path, sizeof path, "/proc/%d/exe", pid);
            int fd = open(path, O_RDONLY);
            if (fd < 0) continue;
            struct stat st;
            if (fstat(fd, &st) == 0 && (st.st_ino != self.st_ino || st.st_dev != self.st_dev)) {
                // What the descriptor holds (the process may be gone by now).
                char link[256] = {0}, fdpath[64];
                snprintf(fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
                readlink(fdpath, link, sizeof link - 1);
                int w = open(path, O_WRONLY);
                printf("OPENED %s %s%s\n", path, link, w >= 0 ? " WROTE" : "");
                if (w >= 0) close(w);
            }
            close(fd);
        }
    }
}
"#,
    );
    f.start().unwrap();
    wait_until(|| f.stdout().contains("watching"));
    let before = std::fs::read(SHIM).unwrap();
    for _ in 0..60 {
        // `sleep` stays a while after its execve: only the shim's code before it matters.
        exec_in(&f, &exec_req(&["true"])).unwrap();
    }
    ShimClient::connect(f.bundle())
        .unwrap()
        .signal(libc::SIGKILL)
        .unwrap();
    f.wait();
    let out = f.stdout();
    // Processes that already run busybox are the watcher's own kind; anything else it could
    // open would be the shim's binary.
    let opened: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("OPENED") && !l.contains("busybox"))
        .collect();
    assert!(opened.is_empty(), "{opened:?}");
    assert_eq!(std::fs::read(SHIM).unwrap(), before);
}

/// `-t`: the init gets a pty from the container's own devpts as stdio, controlling terminal
/// and /dev/console; the shim logs the master's output as stdout.
#[test]
fn terminal_init_gets_a_pty_and_its_output_is_logged() {
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "tty; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo all-tty; ls -1 /dev/pts; \
         [ \"$(stat -c %t,%T /dev/console)\" = \"$(stat -c %t,%T /dev/pts/0)\" ] && echo console-ok; \
         echo to-stderr >&2",
    ]);
    f.spec.process.terminal = true;
    let (code, logs) = f.run();
    assert_eq!(code, 0, "{logs:?}");
    assert!(logs.iter().all(|(_, s)| s == "stdout"), "{logs:?}");
    let out = f.stdout().replace('\r', "");
    assert!(
        out.starts_with("/dev/pts/0\nall-tty\n0\nptmx\nconsole-ok\n"),
        "{out}"
    );
    assert!(out.contains("to-stderr\n"), "{out}");
}

/// A privileged container can make cgroups below its own (read-write cgroup mounts, as
/// docker-in-docker does); they go with it.
#[test]
fn cgroups_a_privileged_container_made_below_its_own_are_removed() {
    // v2: the container's own cgroup is its /sys/fs/cgroup (a private cgroup namespace).
    let script = if common::host_layout().is_v2() {
        "mkdir /sys/fs/cgroup/inner /sys/fs/cgroup/inner/deeper && echo made"
    } else {
        "mkdir /sys/fs/cgroup/memory/inner /sys/fs/cgroup/memory/inner/deeper \
         /sys/fs/cgroup/pids/inner && echo made"
    };
    let mut f = Fixture::new(&["sh", "-c", script]);
    f.spec.privileged = true;
    let (code, _) = f.run();
    assert_eq!(code, 0);
    assert_eq!(f.stdout(), "made\n");
    // run() checked that no cgroup directory of the container is left.
    assert!(!f.cgroup("memory").join("inner").exists());
}

/// A shim binary path of this test's own: warm shims are kept per binary path, and the tests
/// of this file run at once, each taking whatever warm shim its path has.
fn own_shim_path(f: &Fixture) -> PathBuf {
    let path = f.dir.path().join("berth-shim");
    symlink(SHIM, &path).unwrap();
    path
}

/// Whether `pid` is a live process (not gone, not a zombie waiting for its reaper).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The warm-shim tests, one at a time: they share the pool of network namespaces.
static WARM_TESTS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn warm_test() -> std::sync::MutexGuard<'static, ()> {
    WARM_TESTS.lock().unwrap_or_else(|p| p.into_inner())
}

/// A network namespace as the engine hands one over: made by a thread that unshares into
/// it, with `lo` up (`ip`, run from that thread, is in it too).
fn netns_with_lo() -> std::os::fd::OwnedFd {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success());
        std::os::fd::OwnedFd::from(std::fs::File::open("/proc/thread-self/ns/net").unwrap())
    })
    .join()
    .unwrap()
}

/// The inode that names a namespace (`net:[<inode>]`).
fn ns_inode(fd: &std::os::fd::OwnedFd) -> String {
    use std::os::unix::fs::MetadataExt;
    let ino = std::fs::File::from(fd.try_clone().unwrap())
        .metadata()
        .unwrap()
        .ino();
    format!("net:[{ino}]")
}

/// A warm shim (made ahead by `warm_up`) starts the container: it is the shim that serves
/// the bundle, its command line names the bundle, and the container runs and is torn down as
/// with a cold start. Its network namespace is the one handed over, with lo up.
#[test]
fn a_warm_shim_starts_the_container_and_shows_its_bundle() {
    let _serial = warm_test();
    let f = Fixture::new(&[
        "sh",
        "-c",
        "echo warm; cat /sys/class/net/lo/flags; ls /sys/class/net; sleep 0.3",
    ]);
    let shim = own_shim_path(&f);
    berth_runtime::warm_up(&shim).unwrap();
    // Once per binary path: a second call keeps the one there.
    berth_runtime::warm_up(&shim).unwrap();
    let warm: Vec<i32> = berth_runtime::warm_pids()
        .into_iter()
        .filter(|p| cmdline(*p).contains(shim.to_str().unwrap()))
        .collect();
    assert_eq!(warm.len(), 1, "{warm:?}");
    let pid = warm[0];
    assert!(running(pid));
    assert!(cmdline(pid).contains(" warm "), "{}", cmdline(pid));
    let ns = netns_with_lo();
    let given = ns_inode(&ns);
    berth_runtime::start_in(&f.spec, &shim, Some(ns)).expect("start through the warm shim");
    let line = cmdline(pid);
    assert!(
        line.contains(&format!("start {}", f.bundle().display())),
        "{line:?}"
    );
    assert!(
        !berth_runtime::warm_pids().contains(&pid),
        "still in the pool"
    );
    // The shim serving the socket is the warm one: it answers, and the pid file is its child's.
    let init = std::fs::read_to_string(f.bundle().join("pid")).unwrap();
    assert_eq!(parent_of(init.trim().parse().unwrap()), pid);
    let netns = std::fs::read_link(format!("/proc/{}/ns/net", init.trim())).unwrap();
    assert_eq!(netns.to_str().unwrap(), given, "the namespace handed over");
    let status = f.wait();
    assert_eq!(status.exit_code, 0);
    f.assert_cleaned_up();
    assert_eq!(f.stdout(), "warm\n0x9\nlo\n");
    wait_until(|| !running(pid));
}

/// A cold shim (no warm one waiting) joins the namespace handed over too, by this process's
/// `/proc/<pid>/fd/<n>`.
#[test]
fn a_cold_shim_joins_the_namespace_handed_over() {
    let _serial = warm_test();
    let f = Fixture::new(&["sh", "-c", "cat /sys/class/net/lo/flags"]);
    let shim = own_shim_path(&f);
    berth_runtime::cool_down(&shim);
    let ns = netns_with_lo();
    let given = ns_inode(&ns);
    let started = berth_runtime::start_in(&f.spec, &shim, Some(ns)).expect("cold start");
    let netns = std::fs::read_link(format!("/proc/{}/ns/net", started.pid));
    // The init may have ended already; when it has not, it is in the given namespace.
    if let Ok(netns) = netns {
        assert_eq!(netns.to_str().unwrap(), given);
    }
    assert_eq!(f.wait().exit_code, 0);
    assert_eq!(
        f.stdout(),
        "0x9\n",
        "lo up: the namespace handed over, not a new one"
    );
}

/// A warm shim reports a failed start as a cold one does, with the same text, and leaves
/// nothing behind.
#[test]
fn a_warm_shim_reports_start_errors() {
    let _serial = warm_test();
    let mut f = Fixture::new(&["id"]);
    f.spec.process.user = "nosuch".into();
    let shim = own_shim_path(&f);
    berth_runtime::warm_up(&shim).unwrap();
    let err = start(&f.spec, &shim).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find user nosuch: no matching entries in passwd file"
    );
    assert_eq!(err.kind(), berth_runtime::ErrorKind::InvalidArgument);
    assert!(!f.bundle().join("shim.sock").exists());
    for dir in common::all_cgroup_dirs(&f.spec.cgroup_path) {
        assert!(!dir.exists(), "stray cgroup {dir:?}");
    }
}

/// A warm shim that died while waiting costs nothing but its head start: the start notices
/// (the command cannot be written) and starts a cold shim.
#[test]
fn a_dead_warm_shim_falls_back_to_a_cold_start() {
    let _serial = warm_test();
    let f = Fixture::new(&["echo", "cold"]);
    let shim = own_shim_path(&f);
    berth_runtime::warm_up(&shim).unwrap();
    let pid = berth_runtime::warm_pids()
        .into_iter()
        .find(|p| cmdline(*p).contains(shim.to_str().unwrap()))
        .unwrap();
    // SAFETY: kill has no memory-safety preconditions; `pid` is this test's warm shim.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    wait_until(|| !running(pid));
    let (code, _) = f.run();
    assert_eq!(code, 0);
    assert_eq!(f.stdout(), "cold\n");
}

/// Let go (berthd's end of its stdin closes, as when berthd dies), a warm shim exits.
#[test]
fn a_warm_shim_exits_when_let_go() {
    let _serial = warm_test();
    let f = Fixture::new(&["true"]);
    let shim = own_shim_path(&f);
    berth_runtime::warm_up(&shim).unwrap();
    let pids: Vec<i32> = berth_runtime::warm_pids();
    let pid = *pids
        .iter()
        .find(|p| cmdline(**p).contains(shim.to_str().unwrap()))
        .unwrap();
    berth_runtime::cool_down(&shim);
    wait_until(|| !running(pid));
    assert!(!berth_runtime::warm_pids().contains(&pid));
}

/// A warm shim whose binary was replaced on disk since (an upgrade) is let go, not handed a
/// bundle: the start is cold, with the new binary, and the old warm shim exits.
#[test]
fn a_warm_shim_of_a_replaced_binary_is_not_used() {
    let _serial = warm_test();
    let f = Fixture::new(&["sh", "-c", "echo new; sleep 0.5"]);
    let shim = f.dir.path().join("berth-shim");
    std::fs::copy(SHIM, &shim).unwrap();
    berth_runtime::warm_up(&shim).unwrap();
    let old = berth_runtime::warm_pids()
        .into_iter()
        .find(|p| cmdline(*p).contains(shim.to_str().unwrap()))
        .unwrap();
    // An upgrade: a new file renamed over the old one.
    let new = f.dir.path().join("berth-shim.new");
    std::fs::copy(SHIM, &new).unwrap();
    std::fs::rename(&new, &shim).unwrap();
    start(&f.spec, &shim).expect("a cold start");
    // Another shim runs it, and the old one went away while it runs.
    let init: i32 = std::fs::read_to_string(f.bundle().join("pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_ne!(parent_of(init), old);
    wait_until(|| !running(old));
    assert!(running(init));
    assert_eq!(f.wait().exit_code, 0);
    f.assert_cleaned_up();
    assert_eq!(f.stdout(), "new\n");
    wait_until(|| !running(old));
    assert!(!berth_runtime::warm_pids().contains(&old));
}

/// Reads Docker frames from an attachment until `want` appears in the stream's text (or the
/// shim closes the connection); returns (stream, bytes) frames seen so far appended to `seen`.
fn read_frames_until(
    conn: &mut std::os::unix::net::UnixStream,
    buf: &mut Vec<u8>,
    seen: &mut Vec<(u8, Vec<u8>)>,
    want: &str,
) -> bool {
    use std::io::Read;
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    loop {
        while buf.len() >= 8 {
            let len = u32::from_be_bytes(buf[4..8].try_into().unwrap()) as usize;
            if buf.len() < 8 + len {
                break;
            }
            seen.push((buf[0], buf[8..8 + len].to_vec()));
            buf.drain(..8 + len);
        }
        let text: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
        if !want.is_empty() && String::from_utf8_lossy(&text).contains(want) {
            return true;
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("reading the attachment: {e}; seen {seen:?}"),
        }
    }
}

/// `-i`: stdin is a pipe the attached client writes through the descriptor it was handed;
/// output reaches it live (a prompt without its newline at once) in stdout/stderr frames,
/// and the log still gets whole lines, once. close_stdin gives the process its EOF.
#[test]
fn attach_streams_output_live_and_hands_over_stdin() {
    use std::io::Write;
    let mut f = Fixture::new(&[
        "sh",
        "-c",
        "printf prompt; read x; echo got:$x; echo to-stderr >&2; wc -l",
    ]);
    f.spec.stdio.open_stdin = true;
    f.spec.stdio.hold_output = true;
    f.start().unwrap();
    let mut client = ShimClient::connect(f.bundle()).unwrap();
    assert_eq!(client.hello().unwrap(), berth_runtime::PROTOCOL_VERSION);
    let att = ShimClient::connect(f.bundle())
        .unwrap()
        .attach(true, true, true)
        .unwrap();
    assert!(!att.tty);
    let mut conn = att.stream;
    let mut buf = att.rest;
    let mut seen = Vec::new();
    // The prompt has no newline: it arrives anyway (and was held for this attach).
    assert!(read_frames_until(&mut conn, &mut buf, &mut seen, "prompt"));
    let mut stdin = std::fs::File::from(att.stdin.expect("the stdin descriptor"));
    stdin.write_all(b"hello\n").unwrap();
    assert!(read_frames_until(
        &mut conn,
        &mut buf,
        &mut seen,
        "got:hello\n"
    ));
    stdin.write_all(b"a\nb\n").unwrap();
    drop(stdin);
    // The shim still holds the pipe: wc sees EOF only after close_stdin.
    ShimClient::connect(f.bundle())
        .unwrap()
        .close_stdin()
        .unwrap();
    assert!(!read_frames_until(&mut conn, &mut buf, &mut seen, ""));
    assert_eq!(f.wait().exit_code, 0);
    let stdout: Vec<u8> = seen
        .iter()
        .filter(|(k, _)| *k == 1)
        .flat_map(|(_, b)| b.clone())
        .collect();
    assert_eq!(String::from_utf8_lossy(&stdout), "promptgot:hello\n2\n");
    assert!(seen.contains(&(2, b"to-stderr\n".to_vec())), "{seen:?}");
    assert_eq!(
        f.logs(),
        vec![
            ("promptgot:hello\n".to_string(), "stdout".to_string()),
            ("to-stderr\n".to_string(), "stderr".to_string()),
            ("2\n".to_string(), "stdout".to_string()),
        ]
    );
    f.assert_cleaned_up();
}

/// `-it`: the attached client writes to the terminal's master; the first size comes from
/// the spec, `resize` changes it; a container without a terminal refuses `resize`.
#[test]
fn attach_with_a_terminal_takes_input_and_resizes() {
    use std::io::Write;
    let mut f = Fixture::new(&["sh", "-c", "stty size; read x; echo got:$x; stty size"]);
    f.spec.process.terminal = true;
    f.spec.stdio.open_stdin = true;
    f.spec.stdio.hold_output = true;
    f.spec.stdio.console_height = 30;
    f.spec.stdio.console_width = 100;
    f.start().unwrap();
    let att = ShimClient::connect(f.bundle())
        .unwrap()
        .attach(true, true, true)
        .unwrap();
    assert!(att.tty);
    let (mut conn, mut buf, mut seen) = (att.stream, att.rest, Vec::new());
    assert!(read_frames_until(&mut conn, &mut buf, &mut seen, "30 100"));
    ShimClient::connect(f.bundle())
        .unwrap()
        .resize(40, 120)
        .unwrap();
    let mut master = std::fs::File::from(att.stdin.expect("the terminal's master"));
    master.write_all(b"hi\n").unwrap();
    assert!(read_frames_until(&mut conn, &mut buf, &mut seen, "40 120"));
    assert!(seen.iter().all(|(k, _)| *k == 1), "{seen:?}");
    let text: Vec<u8> = seen.iter().flat_map(|(_, b)| b.clone()).collect();
    assert!(String::from_utf8_lossy(&text).contains("got:hi"));
    assert_eq!(f.wait().exit_code, 0);

    let g = Fixture::new(&["sleep", "60"]);
    g.start().unwrap();
    let err = ShimClient::connect(g.bundle())
        .unwrap()
        .resize(10, 10)
        .unwrap_err();
    assert!(err.to_string().contains("not created with -t"), "{err}");
    g.kill();
}

/// Bytes the process `pid` has written so far (`wchar` of /proc/<pid>/io).
fn written_by(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/io"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("wchar: "))
        .unwrap()
        .parse()
        .unwrap()
}

/// The state letter of `pid` (field 3 of /proc/<pid>/stat: `T` when stopped).
fn process_state(pid: i32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit(')').next().unwrap();
    after.trim_start().chars().next().unwrap()
}

/// An attached client that goes away in the same round of the serving loop as new output is
/// dropped while the output is fanned out; the clients after it in the shim's list must keep
/// their own events. (They used to take the dropped client's: an exec's connection, waiting
/// for its exit, was read in blocking mode and the shim hung there, deaf to `kill`.)
#[test]
fn a_client_dropped_while_output_is_fanned_out_leaves_the_shim_serving() {
    use std::io::Write;
    use std::os::fd::AsFd;
    let mut f = Fixture::new(&["sh", "-c", "while read x; do echo $x; done"]);
    f.spec.stdio.open_stdin = true;
    let init = f.start().unwrap();
    let shim = parent_of(init);
    let att = ShimClient::connect(f.bundle())
        .unwrap()
        .attach(true, true, true)
        .unwrap();
    let mut stdin = std::fs::File::from(att.stdin.expect("the stdin descriptor"));
    // An exec after the attach: its connection follows the attached one in the shim's list.
    let null = std::fs::File::open("/dev/null").unwrap();
    let session = ShimClient::connect(f.bundle())
        .unwrap()
        .exec(
            &exec_req(&["sleep", "60"]),
            Some([null.as_fd(), null.as_fd(), null.as_fd()]),
        )
        .unwrap();
    // The shim sees both at once when it resumes: the attached client gone, output ready.
    let stopped = nix::unistd::Pid::from_raw(shim);
    nix::sys::signal::kill(stopped, nix::sys::signal::SIGSTOP).unwrap();
    wait_until(|| process_state(shim) == 'T');
    drop(att.stream);
    let before = written_by(init);
    stdin.write_all(b"line\n").unwrap();
    wait_until(|| written_by(init) > before);
    nix::sys::signal::kill(stopped, nix::sys::signal::SIGCONT).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let bundle = f.bundle().to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(ShimClient::connect(&bundle).and_then(|mut c| c.state()));
    });
    let state = rx.recv_timeout(Duration::from_secs(10));
    assert!(
        matches!(&state, Ok(Ok(s)) if s.status == "running"),
        "the shim does not answer: {state:?}"
    );
    // The exec's exit still reaches its connection.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(session.pid),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    assert_eq!(session.wait().unwrap().exit_code, 137);
    drop(stdin);
    f.kill();
    f.assert_cleaned_up();
}

/// An attached client that reads slowly, but a little at a time, holds the end of the
/// container (its exit record, the waiters' answers) back by one deadline at most: the
/// shim gives the clients what is left for a few seconds in all, not per bit of progress.
#[test]
fn a_slow_attached_client_delays_the_exit_by_a_bounded_time() {
    use std::io::Read;
    let f = Fixture::new(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 40000 ]; do echo 0123456789012345678901234567890123456789; \
         i=$((i+1)); done; sleep 600",
    ]);
    let init = f.start().unwrap();
    let att = ShimClient::connect(f.bundle())
        .unwrap()
        .attach(false, true, true)
        .unwrap();
    // More than the shim keeps for one client (1 MiB): the output is held back.
    wait_until(|| written_by(init) > 1 << 20);
    let mut conn = att.stream;
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 128 * 1024];
        let mut total = 0;
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
            std::thread::sleep(Duration::from_secs(4));
        }
    });
    let killed = Instant::now();
    assert_eq!(f.kill().exit_code, 137);
    // The output waits up to 5 s to drain, the clients up to 5 s more.
    assert!(
        killed.elapsed() < Duration::from_secs(15),
        "the exit took {:?}",
        killed.elapsed()
    );
    assert!(reader.join().unwrap() > 0);
    f.assert_cleaned_up();
}

/// CPU time (user + system, in clock ticks) the process `pid` has used so far.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // utime and stime: fields 14 and 15 of stat, 12 and 13 after the command name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// A shim out of descriptors leaves the waiting connections in the listener's backlog
/// without spinning (the listener stays readable), and serves them once it has some again.
#[test]
fn a_shim_out_of_descriptors_waits_without_spinning() {
    let f = Fixture::new(&["sleep", "600"]);
    let init = f.start().unwrap();
    let shim = parent_of(init);
    let open = || {
        std::fs::read_dir(format!("/proc/{shim}/fd"))
            .unwrap()
            .count() as u64
    };
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit reads no new limit (null) and writes the current one into `limit`.
    let got = unsafe { libc::prlimit(shim, libc::RLIMIT_NOFILE, std::ptr::null(), &mut limit) };
    assert_eq!(got, 0);
    let low = libc::rlimit {
        rlim_cur: open() + 4,
        rlim_max: limit.rlim_max,
    };
    // SAFETY: as above, with a valid new limit to set.
    let set = unsafe { libc::prlimit(shim, libc::RLIMIT_NOFILE, &low, std::ptr::null_mut()) };
    assert_eq!(set, 0);
    let addr = f.bundle().join("shim.sock");
    let conns: Vec<_> = (0..16)
        .map(|_| std::os::unix::net::UnixStream::connect(&addr).unwrap())
        .collect();
    wait_until(|| open() >= low.rlim_cur);
    let before = cpu_ticks(shim);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(shim) - before;
    assert!(used < 20, "the shim used {used} ticks in a second");
    drop(conns);
    // SAFETY: as above: the shim's limit back.
    let back = unsafe { libc::prlimit(shim, libc::RLIMIT_NOFILE, &limit, std::ptr::null_mut()) };
    assert_eq!(back, 0);
    assert_eq!(
        ShimClient::connect(f.bundle())
            .unwrap()
            .state()
            .unwrap()
            .status,
        "running"
    );
    f.kill();
    f.assert_cleaned_up();
}

/// The pty masters (`ptmx`) a process holds.
fn terminals_of(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
        .filter(|l| l.to_string_lossy().contains("ptmx"))
        .count()
}

/// A detached exec with a terminal nobody reads: the shim reads and discards its output (it
/// would block once the terminal is full) and closes the terminal at its exit. A client
/// other than the exec's own connection (a new berthd) awaits its exit with `exec_wait`.
#[test]
fn a_detached_terminal_is_drained_and_exec_wait_gets_its_exit() {
    let f = Fixture::new(&["sleep", "60"]);
    let init = f.start().unwrap();
    let shim = parent_of(init);
    let req = ExecRequest {
        id: "e1".into(),
        tty: true,
        detach: true,
        ..exec_req(&["sh", "-c", "sleep 0.2; yes | head -c 1000000; exit 5"])
    };
    let session = ShimClient::connect(f.bundle())
        .unwrap()
        .exec(&req, None)
        .unwrap();
    assert!(session.discarding);
    // (The copy sent to the client is closed just after the answer.)
    wait_until(|| terminals_of(shim) == 1);
    // The client goes away (as berthd at a restart), with its copy of the master.
    drop(session);
    let status = ShimClient::connect(f.bundle())
        .unwrap()
        .exec_wait("e1")
        .unwrap();
    assert_eq!(status.exit_code, 5);
    assert_eq!(
        terminals_of(shim),
        0,
        "the terminal is closed with the exec"
    );
    // Ended: answered at once; an exec the shim does not keep is an error.
    let mut c = ShimClient::connect(f.bundle()).unwrap();
    assert_eq!(c.exec_wait("e1").unwrap().exit_code, 5);
    let e = ShimClient::connect(f.bundle())
        .unwrap()
        .exec_wait("nosuch")
        .unwrap_err();
    assert!(e.to_string().contains("no exec nosuch"), "{e}");
    // An attached exec's terminal is the client's to read: not drained.
    let req = ExecRequest {
        tty: true,
        ..exec_req(&["sleep", "60"])
    };
    let session = ShimClient::connect(f.bundle())
        .unwrap()
        .exec(&req, None)
        .unwrap();
    assert!(!session.discarding);
    wait_until(|| terminals_of(shim) == 0);
    f.kill();
    f.assert_cleaned_up();
}

/// A request line over the shim's bound is answered with an error naming it, not dropped
/// (berthd read a dropped connection as an exec that cannot run: 126).
#[test]
fn an_oversized_request_gets_an_error() {
    use std::io::{Read, Write};
    let f = Fixture::new(&["sleep", "60"]);
    f.start().unwrap();
    let addr = berth_runtime::shim::SocketAddress::of(f.bundle()).unwrap();
    let mut stream = std::os::unix::net::UnixStream::connect(addr.path()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let big = berth_runtime::shim::MAX_REQUEST + 64 * 1024;
    let feeder = std::thread::spawn(move || {
        let _ = writer.write_all(&vec![b'x'; big]);
    });
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    feeder.join().unwrap();
    assert!(
        answer.contains("request of over 2097152 bytes refused"),
        "{answer}"
    );
    // The shim serves on.
    assert_eq!(
        ShimClient::connect(f.bundle())
            .unwrap()
            .state()
            .unwrap()
            .status,
        "running"
    );
    f.kill();
}
