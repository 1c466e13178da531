//! Differential tests: the same container configuration runs once through berth's own runtime
//! (`Backend::Berth`) and once through libcontainer (`Backend::Libcontainer`, the reference), on
//! the same busybox tree, and what the container observes must match: capabilities and seccomp
//! state, the mount table, `/dev`, the device cgroup, cgroup limits (read inside and from the
//! host), hostname, rlimits, ids, environment and the verdicts of a syscall probe.
//!
//! Outputs are normalised (container id, tempdir name, mount ids, device numbers and times
//! removed) and compared section by section. Known, deliberate differences are listed in
//! [`KNOWN_DIFFERENCES`]; they are canonicalised away before the comparison and printed (to the
//! unfiltered stderr) whenever they occur. Anything else that differs fails the test with a line
//! diff. They need root and FAIL without it.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_runtime::{
    read_exit, start, Backend, ContainerMount, ContainerSpec, ExitStatus, Network, Resources,
    Rlimit, Seccomp, ShimClient,
};

mod common;
use common::require_root;

const SHIM: &str = env!("CARGO_BIN_EXE_berth-shim");

/// The deliberate differences between the backends that the comparison tolerates. Each is
/// printed when it occurs.
const KNOWN_DIFFERENCES: &[&str] = &[
    "cgroup-mounts-readonly: on cgroup v1 berth mounts the /sys/fs/cgroup tmpfs `ro` and each \
     hierarchy bind `ro,nosuid,nodev,noexec` (as Docker/runc do); libcontainer mounts them rw",
    "no-systemd-cgroup: berth creates no name=systemd cgroup and does not mount that hierarchy \
     in the container (libcontainer binds the host's whole systemd tree there), so \
     /sys/fs/cgroup/systemd, the systemd line of /proc/self/cgroup and the host's systemd cgroup \
     differ",
    "no-unneeded-cgroups: berth creates no cpuset cgroup without a cpuset limit, and then does \
     not mount the cpuset hierarchy in the container (it would show the host's whole tree); \
     on v2 it does not enable cpuset for the container then (no cpuset.cpus file)",
    "no-tun-rule: libcontainer adds `c 10:200 rwm` (/dev/net/tun) to the device cgroup; berth \
     keeps Docker's list (shared/reference/docker-runtime-defaults.md), which has no tun",
    "privileged-dev-dir-modes: with --privileged berth creates /dev subdirectories of the \
     host's devices (cpu, net, input, ...) 0755 as runc does; libcontainer makes them 0777",
    "dev-core-name: on a kernel with /proc/kcore berth links /dev/core to it, as runc does; \
     libcontainer names the link /dev/kcore (shim.rs checks berth's link)",
    "v2-controllers: on cgroup v2 berth enables in a container's parents only the controllers \
     it uses (cpu, io, memory, pids; cpuset with a cpuset limit), libcontainer every one the \
     root has (hugetlb, rdma, misc too), so cgroup.controllers differs",
    "late-syscalls: Docker's profile allows syscalls that libseccomp before 2.6 cannot name \
     (statmount, listmount, mseal, ...); berth adds them by number on the native architecture, \
     libcontainer skips them, so they are denied there (EPERM)",
];

/// Probe lines of syscalls that libseccomp before 2.6 cannot name (late-syscalls).
const LATE_PROBES: &[&str] = &["statmount=", "listmount=", "mseal="];

const APPLETS: &[&str] = &[
    "sh", "echo", "true", "cat", "sleep", "id", "hostname", "ls", "grep", "sort", "env", "wc",
    "mkdir", "touch", "pwd",
];

/// What every container runs: sections of observations, each opened by `== name`, then it
/// sleeps so that the test can read the host side of its cgroups.
const SCRIPT: &str = r#"
s() { echo "== $1"; }
s status
grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters|SigBlk|SigIgn):' /proc/self/status 2>&1
s mountinfo
cat /proc/self/mountinfo 2>&1
s dev
ls -lnd /dev /dev/pts /dev/shm /dev/mqueue 2>&1
ls -ln /dev /dev/pts /dev/shm /dev/mqueue 2>&1
s devices
cat /sys/fs/cgroup/devices/devices.list 2>&1
s device-open
[ -e /dev/myfuse ] && { (exec 3<>/dev/myfuse) 2>&1 && echo "/dev/myfuse opened"; }
s cgroup-inside
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
  files="memory.max memory.swap.max pids.max cpu.max cpu.weight cpuset.cpus cgroup.controllers"
else
  files="memory/memory.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us cpu/cpu.cfs_period_us cpu/cpu.shares cpuset/cpuset.cpus"
fi
for f in $files; do
  echo "$f=$(cat /sys/fs/cgroup/$f 2>&1)"
done
s proc-cgroup
cat /proc/self/cgroup 2>&1
s hostname
hostname 2>&1
s limits
cat /proc/self/limits 2>&1
s id
id 2>&1
s env
env | sort
s misc
echo "umask=$(umask) pwd=$(pwd) oom_score_adj=$(cat /proc/self/oom_score_adj)"
ls /proc/self/fd 2>&1
s net
ls /sys/class/net 2>&1
echo "proc-net-dev-lines=$(wc -l < /proc/net/dev)"
s write
mkdir /tmp/probe-dir 2>&1; echo "mkdir rc=$?"
touch /probe-file 2>&1; echo "touch rc=$?"
s data
ls /data 2>&1
cat /data/file 2>&1
touch /data/new 2>&1; echo "touch-data rc=$?"
s probe
/probe 2>&1
s end
exec sleep 1000
"#;

/// Tries syscalls that Docker's seccomp profile or the capability set decide, with harmless or
/// bogus arguments, and prints `name=errno` (0: it succeeded).
const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
#include <sys/wait.h>

static void report(const char *name, long r, int close_fd)
{
    int e = errno;
    printf("%s=%d\n", name, r < 0 ? e : 0);
    if (r >= 0 && close_fd)
        close((int)r);
    errno = 0;
}

int main(void)
{
    struct timespec ts = {0, 0};
    long r;
    setvbuf(stdout, NULL, _IOLBF, 0);
    errno = 0;
    report("mount", syscall(SYS_mount, "none", "/nonexistent", "bogusfs", 0UL, NULL), 0);
    report("umount2", syscall(SYS_umount2, "/nonexistent", 0), 0);
    report("keyctl", syscall(SYS_keyctl, 0xdead, 0, 0, 0, 0), 0);
    report("add_key", syscall(SYS_add_key, "user", "", NULL, 0, 0), 0);
    report("request_key", syscall(SYS_request_key, "user", "berth-diff-nokey", NULL, 0), 0);
    report("ptrace", syscall(SYS_ptrace, 0xdead, 0, 0, 0), 0);
    report("personality_query", syscall(SYS_personality, 0xffffffffUL), 0);
    report("clone3", syscall(435, NULL, 0), 0);
    r = syscall(SYS_clone, SIGCHLD | CLONE_NEWUTS, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    report("clone_newuts", r, 0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    r = syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (r == 0)
        _exit(0);
    report("clone_plain", r, 0);
    if (r > 0)
        waitpid((pid_t)r, NULL, 0);
    report("socket_vsock", syscall(SYS_socket, 40, 1, 0), 1);
    report("socket_inet", syscall(SYS_socket, 2, 1, 0), 1);
    report("socket_netlink_audit", syscall(SYS_socket, 16, 3, 9), 1);
    report("bpf", syscall(SYS_bpf, -1, NULL, 0), 0);
    report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0), 0);
    report("kexec_load", syscall(SYS_kexec_load, 0UL, 1000UL, NULL, 0xdead0000UL), 0);
    report("init_module", syscall(SYS_init_module, NULL, 0UL, ""), 0);
    report("delete_module", syscall(SYS_delete_module, "berth_diff_nomod", 0), 0);
    report("acct", syscall(SYS_acct, "/nonexistent/acct"), 0);
    report("swapon", syscall(SYS_swapon, "/nonexistent", 0), 0);
    report("reboot", syscall(SYS_reboot, 0xdead, 0xbeef, 0, NULL), 0);
    report("setns", syscall(SYS_setns, -1, 0), 0);
    report("chroot", syscall(SYS_chroot, "/nonexistent"), 0);
    report("syslog_size", syscall(SYS_syslog, 10, NULL, 0), 0);
    report("quotactl", syscall(SYS_quotactl, 0xdead, NULL, 0, NULL), 0);
    report("userfaultfd", syscall(SYS_userfaultfd, 0), 1);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, -1, NULL, 0), 0);
    report("io_uring_setup", syscall(425, 0, NULL), 1);
    report("fchmodat2", syscall(452, -100, "/nonexistent", 0, 0), 0);
    report("statmount", syscall(457, NULL, NULL, 0, 0), 0);
    report("listmount", syscall(458, NULL, NULL, 0, 0), 0);
    report("mseal", syscall(462, 0, 0, 0), 0);
    report("fsopen", syscall(430, "bogusfs", 0), 1);
    report("clock_settime", syscall(SYS_clock_settime, -1, &ts), 0);
    report("iopl", syscall(SYS_iopl, 5), 0);
    report("pivot_root", syscall(SYS_pivot_root, "/nonexistent", "/nonexistent"), 0);
    report("unshare_newuts", syscall(SYS_unshare, CLONE_NEWUTS), 0);
    report("unshare_newns", syscall(SYS_unshare, CLONE_NEWNS), 0);
    report("unshare_newuser", syscall(SYS_unshare, CLONE_NEWUSER), 0);
    return 0;
}
"#;

/// The probe, built once per test process with `gcc -static`.
fn probe_binary() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let src = dir.join(format!("differential-probe.{}.c", std::process::id()));
        let tmp = dir.join(format!("differential-probe.{}", std::process::id()));
        let bin = dir.join("differential-probe");
        std::fs::write(&src, PROBE_C).unwrap();
        let out = Command::new("gcc")
            .args(["-static", "-O", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("gcc is needed for the syscall probe");
        assert!(out.status.success(), "{out:?}");
        let _ = std::fs::remove_file(&src);
        // Built afresh on every run (the source may change), renamed so that concurrent test
        // processes never see a half-written binary.
        std::fs::rename(&tmp, &bin).unwrap();
        bin
    })
}

/// A container under test: a busybox tree (with the probe), a bundle and a log path in one
/// tempdir.
struct Fixture {
    dir: tempfile::TempDir,
    spec: ContainerSpec,
}

impl Fixture {
    fn new(config: &str, backend: Backend) -> Fixture {
        require_root();
        let dir = tempfile::Builder::new().prefix("brd").tempdir().unwrap();
        let tree = common::busybox_tree(dir.path(), APPLETS, common::PASSWD, common::GROUP);
        std::fs::copy(probe_binary(), tree.join("probe")).unwrap();
        let tag = match backend {
            Backend::Berth => "b",
            Backend::Libcontainer => "l",
        };
        let id = format!("d{}-{config}-{tag}", std::process::id());
        let mut spec = common::spec(dir.path(), &tree, &id, "/berth-test", &["sh", "-c", SCRIPT]);
        spec.backend = backend;
        Fixture { dir, spec }
    }

    fn bundle(&self) -> &Path {
        &self.spec.bundle
    }

    fn wait(&self) -> ExitStatus {
        match ShimClient::connect(self.bundle()) {
            Ok(mut c) => c.wait().expect("wait"),
            Err(_) => read_exit(self.bundle()).expect("exit.json"),
        }
    }

    fn logs(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(&self.spec.log.path)
            .unwrap_or_default()
            .lines()
            // Read while the shim writes: a last line may be partial (a later read has it).
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                (
                    v["log"].as_str().unwrap().to_string(),
                    v["stream"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    fn stream(&self, name: &str) -> String {
        self.logs()
            .into_iter()
            .filter(|(_, s)| s == name)
            .map(|(l, _)| l)
            .collect()
    }

    /// The container's directory in `controller`'s hierarchy (v2: its one directory).
    fn cgroup(&self, controller: &str) -> PathBuf {
        common::cgroup_dir(controller, &self.spec.cgroup_path)
    }

    /// No cgroup, no mount, no socket left once the container has exited.
    fn assert_cleaned_up(&self) {
        for dir in common::all_cgroup_dirs(&self.spec.cgroup_path) {
            assert!(
                !dir.exists(),
                "{:?}: stray cgroup {dir:?}",
                self.spec.backend
            );
        }
        let rootfs = self.bundle().join("rootfs");
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(
            !mountinfo.contains(rootfs.to_str().unwrap()),
            "{:?}: stray mount at {rootfs:?}",
            self.spec.backend
        );
        assert!(!self.bundle().join("shim.sock").exists());
        assert!(read_exit(self.bundle()).is_some());
    }

    /// Runs the script, reads the host side of the cgroups while it sleeps, kills it and
    /// returns the normalised observations.
    fn observe(&self) -> Observation {
        if let Err(e) = start(&self.spec, Path::new(SHIM)) {
            return Observation {
                sections: vec![("start-error".into(), vec![e.to_string()])],
            };
        }
        let begin = Instant::now();
        while !self.stream("stdout").contains("== end\n") && read_exit(self.bundle()).is_none() {
            assert!(
                begin.elapsed() < Duration::from_secs(30),
                "{:?}: the script did not finish: {:?}",
                self.spec.backend,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let host = self.host_sections();
        if let Ok(mut c) = ShimClient::connect(self.bundle()) {
            let _ = c.signal(libc::SIGKILL);
        }
        let status = self.wait();
        self.assert_cleaned_up();
        let mut obs = Observation::parse(&self.normalise(&self.stream("stdout")));
        obs.sections.extend(host);
        obs.sections.push((
            "stderr".into(),
            lines(&self.normalise(&self.stream("stderr"))),
        ));
        obs.sections.push((
            "exit".into(),
            vec![format!(
                "code={} oom={}",
                status.exit_code, status.oom_killed
            )],
        ));
        obs
    }

    /// The container's cgroups as the host sees them.
    fn host_sections(&self) -> Vec<(String, Vec<String>)> {
        if common::host_layout().is_v2() {
            return self.host_sections_v2();
        }
        let mut controllers: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        controllers.sort();
        let present = controllers
            .iter()
            .map(|c| {
                let state = if self.cgroup(c).exists() {
                    "present"
                } else {
                    "absent"
                };
                format!("{c} {state}")
            })
            .collect();
        let read = |c: &str, file: &str| match std::fs::read_to_string(self.cgroup(c).join(file)) {
            Ok(v) => v.trim().to_string(),
            Err(e) => format!("<{}>", e.kind()),
        };
        let limits = [
            ("memory", "memory.limit_in_bytes"),
            ("pids", "pids.max"),
            ("cpu", "cpu.cfs_quota_us"),
            ("cpu", "cpu.cfs_period_us"),
            ("cpu", "cpu.shares"),
            ("cpuset", "cpuset.cpus"),
        ]
        .iter()
        .map(|(c, f)| format!("{c}/{f}={}", read(c, f)))
        .collect();
        let mut devices = lines(&read("devices", "devices.list"));
        devices.sort();
        vec![
            ("host-cgroups".into(), present),
            ("host-limits".into(), limits),
            ("host-devices".into(), devices),
        ]
    }

    /// [`Fixture::host_sections`] on v2: one directory, its limits and enabled controllers;
    /// the device rules are an eBPF program (the probe and `dev` sections see their effect).
    fn host_sections_v2(&self) -> Vec<(String, Vec<String>)> {
        let dir = self.cgroup("unified");
        let state = if dir.is_dir() { "present" } else { "absent" };
        let read = |file: &str| match std::fs::read_to_string(dir.join(file)) {
            Ok(v) => v.trim().to_string(),
            Err(e) => format!("<{}>", e.kind()),
        };
        let limits = [
            "memory.max",
            "memory.swap.max",
            "pids.max",
            "cpu.max",
            "cpu.weight",
            "cpuset.cpus",
            "cgroup.controllers",
        ]
        .iter()
        .map(|f| format!("{f}={}", read(f)))
        .collect();
        vec![
            ("host-cgroups".into(), vec![format!("unified {state}")]),
            ("host-limits".into(), limits),
        ]
    }

    /// Replaces what differs between any two containers by construction: the id and the
    /// tempdir's name.
    fn normalise(&self, text: &str) -> String {
        let tmp = self.dir.path().file_name().unwrap().to_string_lossy();
        text.replace(&self.spec.id, "<id>")
            .replace(tmp.as_ref(), "<tmp>")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // Best effort so that a failing test does not leave a container running.
        common::kill_and_unmount(&self.spec.bundle);
    }
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_string).collect()
}

/// The sections one container printed (normalised) plus the host-side ones.
#[derive(Clone)]
struct Observation {
    sections: Vec<(String, Vec<String>)>,
}

impl Observation {
    fn parse(stdout: &str) -> Observation {
        let mut sections: Vec<(String, Vec<String>)> = vec![("preamble".into(), Vec::new())];
        for line in stdout.lines() {
            if let Some(name) = line.strip_prefix("== ") {
                sections.push((name.to_string(), Vec::new()));
            } else {
                sections.last_mut().unwrap().1.push(line.to_string());
            }
        }
        for (name, body) in &mut sections {
            match name.as_str() {
                "mountinfo" => {
                    *body = body.iter().map(|l| mountinfo_line(l)).collect();
                    sort_cgroup_hierarchies(body);
                }
                "dev" => *body = body.iter().map(|l| ls_line(l)).collect(),
                "devices" => body.sort(),
                _ => {}
            }
        }
        Observation { sections }
    }

    fn section(&self, name: &str) -> &[String] {
        self.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.as_slice())
            .unwrap_or_else(|| panic!("no section {name:?} in {}", self.render()))
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for (name, body) in &self.sections {
            out += &format!("== {name}\n");
            for l in body {
                out += &format!("{l}\n");
            }
        }
        out
    }

    /// The observation with the known differences canonicalised (applied to both backends).
    fn canonical(&self, allow: &Allow) -> Observation {
        let mut sections = self.sections.clone();
        for (name, body) in &mut sections {
            body.retain(|line| !allow.dropped(name, line));
            for line in body.iter_mut() {
                *line = allow.canonical(name, line);
            }
        }
        Observation { sections }
    }

    /// Checks a line that must be present (sanity checks with known values).
    fn expect(&self, backend: &str, section: &str, line: &str) {
        let body = self.section(section);
        assert!(
            body.iter().any(|l| l == line),
            "{backend}: section {section} lacks {line:?}:\n{}",
            body.join("\n")
        );
    }

    fn value(&self, section: &str, prefix: &str) -> String {
        self.section(section)
            .iter()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in section {section}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// One mountinfo line without mount ids, device numbers and peer group numbers:
/// `mountpoint fstype mount-options super-options root=.. source=.. [propagation]`.
fn mountinfo_line(line: &str) -> String {
    let fields: Vec<&str> = line.split(' ').collect();
    let Some(dash) = fields.iter().position(|f| *f == "-") else {
        return line.to_string();
    };
    if fields.len() < dash + 4 || dash < 6 {
        return line.to_string();
    }
    let propagation: Vec<&str> = fields[6..dash]
        .iter()
        .map(|f| f.split(':').next().unwrap())
        .collect();
    let mut out = format!(
        "{} {} {} {} root={} source={}",
        fields[4],
        fields[dash + 1],
        fields[5],
        fields[dash + 3],
        fields[3],
        fields[dash + 2]
    );
    if !propagation.is_empty() {
        out += &format!(" [{}]", propagation.join(","));
    }
    out
}

/// A `/dev` subdirectory listed by `ls -ln /dev` that a privileged container gets for the
/// host's device nodes (`cpu`, `net`, `input`, ...): not one every container has.
fn is_host_device_dir(line: &str) -> bool {
    let name = line.rsplit(' ').next().unwrap_or("");
    !name.starts_with('/') && !matches!(name, "mqueue" | "pts" | "shm")
}

/// Sorts the mounts of the v1 hierarchies (`/sys/fs/cgroup/<name>`) among themselves, in
/// place: libcontainer mounts them in the host's mountinfo order, which changes when a
/// hierarchy is unmounted and mounted again, and berth in its own order. Which hierarchies
/// are mounted, where and how is compared; their order is not.
fn sort_cgroup_hierarchies(body: &mut [String]) {
    let at: Vec<usize> = (0..body.len())
        .filter(|&i| body[i].starts_with("/sys/fs/cgroup/"))
        .collect();
    let mut lines: Vec<String> = at.iter().map(|&i| body[i].clone()).collect();
    lines.sort();
    for (i, line) in at.into_iter().zip(lines) {
        body[i] = line;
    }
}

/// One `ls -ln` line of busybox without the time: `mode links uid gid size-or-major,minor name`.
fn ls_line(line: &str) -> String {
    let t: Vec<&str> = line.split_whitespace().collect();
    let is_mode = t
        .first()
        .is_some_and(|m| m.len() == 10 && m.starts_with(['-', 'd', 'l', 'c', 'b', 'p', 's']));
    if !is_mode || t.len() < 8 {
        return line.to_string();
    }
    let (size, date_at) = if t[0].starts_with(['c', 'b']) && t[4].ends_with(',') {
        (format!("{}{}", t[4], t[5]), 6)
    } else {
        (t[4].to_string(), 5)
    };
    if t.len() < date_at + 4 {
        return line.to_string();
    }
    format!(
        "{} {} {} {} {} {}",
        t[0],
        t[1],
        t[2],
        t[3],
        size,
        t[date_at + 3..].join(" ")
    )
}

/// Which of [`KNOWN_DIFFERENCES`] apply to a configuration.
struct Allow {
    /// No cpuset limit: berth need not create a cpuset cgroup.
    no_cpuset: bool,
}

impl Allow {
    /// Lines that only one backend has, by a known difference.
    fn dropped(&self, section: &str, line: &str) -> bool {
        let hierarchy_mount = |h: &str| {
            line.starts_with(&format!("/sys/fs/cgroup/{h} "))
                || line == format!("/sys/fs/cgroup/{h}")
        };
        match section {
            // no-systemd-cgroup, no-unneeded-cgroups
            "mountinfo" => {
                hierarchy_mount("systemd") || (self.no_cpuset && hierarchy_mount("cpuset"))
            }
            // no-tun-rule
            "devices" | "host-devices" => line == "c 10:200 rwm",
            // dev-core-name
            "dev" => line.ends_with("core -> /proc/kcore"),
            _ => false,
        }
    }

    fn canonical(&self, section: &str, line: &str) -> String {
        match section {
            // privileged-dev-dir-modes
            "dev" if line.starts_with('d') && is_host_device_dir(line) => {
                let rest = line.split_once(' ').map_or("", |(_, r)| r);
                format!("d<mode-allowed> {rest}")
            }
            // v2-controllers
            "host-limits" | "cgroup-inside" if line.starts_with("cgroup.controllers=") => {
                "cgroup.controllers=<allowed-any>".to_string()
            }
            "mountinfo" => self.canonical_mount(line),
            // late-syscalls
            "probe" if LATE_PROBES.iter().any(|p| line.starts_with(p)) => {
                let name = line.split('=').next().unwrap_or("");
                format!("{name}=<late-syscall>")
            }
            "proc-cgroup" => {
                let mut parts: Vec<&str> = line.splitn(3, ':').collect();
                let any = parts.get(1).is_some_and(|c| {
                    c.contains("name=systemd") || (self.no_cpuset && *c == "cpuset")
                });
                if any && parts.len() == 3 {
                    parts[2] = "<allowed-any>";
                }
                parts.join(":")
            }
            "host-cgroups" => {
                if line.starts_with("systemd ") || (self.no_cpuset && line.starts_with("cpuset ")) {
                    let c = line.split(' ').next().unwrap();
                    format!("{c} <allowed-any>")
                } else {
                    line.to_string()
                }
            }
            // (v1 `cpuset/cpuset.cpus`, v2 `cpuset.cpus`: the file exists when cpuset is enabled)
            "host-limits" | "cgroup-inside" if self.no_cpuset && line.starts_with("cpuset") => {
                let k = line.split('=').next().unwrap();
                format!("{k}=<allowed-any>")
            }
            _ => line.to_string(),
        }
    }

    fn canonical_mount(&self, line: &str) -> String {
        let mut f: Vec<String> = line.split(' ').map(str::to_string).collect();
        if f.len() < 6 || !(f[0] == "/sys/fs/cgroup" || f[0].starts_with("/sys/fs/cgroup/")) {
            return line.to_string();
        }
        // cgroup-mounts-readonly
        let opts: Vec<&str> = f[2]
            .split(',')
            .filter(|o| !matches!(*o, "ro" | "rw" | "nosuid" | "nodev" | "noexec"))
            .collect();
        f[2] = format!("<ro/rw,nosuid,nodev,noexec-allowed>{}", opts.join(","));
        if f[1] == "tmpfs" {
            // The tmpfs remounted read-only is read-only in its super options too.
            f[3] =
                f[3].replacen("ro,", "<ro/rw-allowed>,", 1)
                    .replacen("rw,", "<ro/rw-allowed>,", 1);
        }
        // no-systemd-cgroup, no-unneeded-cgroups
        if f[0] == "/sys/fs/cgroup/systemd" || (self.no_cpuset && f[0] == "/sys/fs/cgroup/cpuset") {
            f[4] = "root=<allowed-any>".into();
        }
        f.join(" ")
    }
}

/// A line diff (longest common subsequence): `-` only in berth, `+` only in libcontainer.
fn line_diff(a: &[String], b: &[String]) -> String {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out += &format!("  + libcontainer: {}\n", b[j]);
            j += 1;
        } else {
            out += &format!("  - berth:        {}\n", a[i]);
            i += 1;
        }
    }
    out
}

/// Section-by-section differences; empty when the observations match.
fn differences(berth: &Observation, lc: &Observation) -> String {
    let mut names: Vec<&String> = berth.sections.iter().map(|(n, _)| n).collect();
    for (n, _) in &lc.sections {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    let empty = Vec::new();
    let body = |o: &Observation, name: &str| -> Vec<String> {
        o.sections
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b.clone())
            .unwrap_or_else(|| empty.clone())
    };
    let mut out = String::new();
    for name in names {
        let (a, b) = (body(berth, name), body(lc, name));
        if a == b {
            continue;
        }
        let same_set = a.iter().collect::<BTreeSet<_>>() == b.iter().collect::<BTreeSet<_>>()
            && a.len() == b.len();
        let what = if same_set {
            " (same lines, different ORDER)"
        } else {
            ""
        };
        out += &format!("section {name}{what}:\n{}", line_diff(&a, &b));
    }
    out
}

/// Prints to the process's stderr, past the test harness's capture, so that allowed
/// differences show in every test run.
fn note(text: &str) {
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Runs `configure`d containers through both backends and asserts that they observe the same
/// (modulo [`KNOWN_DIFFERENCES`]). Returns the observations (berth, libcontainer) for the
/// caller's sanity checks.
fn differential(config: &str, configure: impl Fn(&mut Fixture)) -> (Observation, Observation) {
    // The reference compiles every filter itself, with libseccomp's defaults (a linear
    // program), instead of loading the program berth compiled (a binary tree): the verdicts
    // are compared between two independent compilations. Only berth-shim-libcontainer reads
    // it, so setting it for the whole process is harmless.
    static INDEPENDENT: OnceLock<()> = OnceLock::new();
    INDEPENDENT.get_or_init(|| std::env::set_var("BERTH_SECCOMP_LIBCONTAINER", "1"));
    let run = |backend| {
        let mut f = Fixture::new(config, backend);
        configure(&mut f);
        let allow = Allow {
            no_cpuset: f.spec.resources.cpuset_cpus.is_none(),
        };
        (f.observe(), allow)
    };
    let (berth, allow) = run(Backend::Berth);
    let (lc, _) = run(Backend::Libcontainer);
    let raw = differences(&berth, &lc);
    let canonical = differences(&berth.canonical(&allow), &lc.canonical(&allow));
    if !raw.is_empty() && raw != canonical {
        // One line per run: the sections the allowed differences touched (the list is in
        // KNOWN_DIFFERENCES; the full raw diff shows in a failure's report).
        let touched: Vec<&str> = raw
            .lines()
            .filter_map(|l| l.strip_prefix("section "))
            .map(|l| l.trim_end_matches(':'))
            .collect();
        let names: Vec<&str> = KNOWN_DIFFERENCES
            .iter()
            .filter_map(|d| d.split(':').next())
            .collect();
        note(&format!(
            "differential [{config}]: known differences ({}) allowed in: {}\n",
            names.join(", "),
            touched.join(", ")
        ));
    }
    assert!(
        canonical.is_empty(),
        "differential [{config}]: berth and libcontainer differ\n{canonical}\n\
         ---- berth ----\n{}\n---- libcontainer ----\n{}",
        berth.render(),
        lc.render()
    );
    for (name, o) in [("berth", &berth), ("libcontainer", &lc)] {
        assert!(
            o.sections.iter().all(|(n, _)| n != "start-error"),
            "[{config}] {name} failed to start: {}",
            o.render()
        );
        o.expect(name, "exit", "code=137 oom=false");
        assert!(
            o.section("preamble").is_empty(),
            "[{config}] {name}: output before the first section: {:?}",
            o.section("preamble")
        );
    }
    (berth, lc)
}

/// Runs the sanity check on both observations.
fn both(obs: &(Observation, Observation), check: impl Fn(&str, &Observation)) {
    check("berth", &obs.0);
    check("libcontainer", &obs.1);
}

fn own_cap_bounding() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let hex = s
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .unwrap()
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

#[test]
fn default_config() {
    let obs = differential("default", |_| {});
    both(&obs, |b, o| {
        o.expect(b, "status", "CapEff:\t00000000a80425fb");
        o.expect(b, "status", "CapBnd:\t00000000a80425fb");
        o.expect(b, "status", "Seccomp:\t2");
        o.expect(b, "status", "NoNewPrivs:\t0");
        o.expect(b, "probe", "clone3=38");
        // Docker's current profile (moby/profiles 0.2.3) denies io_uring.
        o.expect(b, "probe", "io_uring_setup=1");
        o.expect(b, "hostname", "box");
        o.expect(b, "net", "lo");
        o.expect(b, "write", "mkdir rc=0");
    });
}

/// Docker's current profile allows the newer syscalls; berth allows them even where its
/// libseccomp cannot name them (the probe gets the kernel's answer, never the filter's EPERM).
#[test]
fn newer_syscalls_are_allowed_by_the_default_profile() {
    let (berth, _) = differential("late", |_| {});
    for name in ["fchmodat2", "statmount", "listmount", "mseal"] {
        let errno = berth.value("probe", &format!("{name}="));
        assert_ne!(errno, "1", "{name} was denied by berth's filter");
    }
}

#[test]
fn privileged() {
    let obs = differential("privileged", |f| f.spec.privileged = true);
    both(&obs, |b, o| {
        o.expect(b, "status", "Seccomp:\t0");
        o.expect(
            b,
            "status",
            &format!("CapEff:\t{:016x}", own_cap_bounding()),
        );
        // v1: the devices cgroup allows all; v2 has no list (the probe sees the effect).
        if !common::host_layout().is_v2() {
            o.expect(b, "devices", "a *:* rwm");
        }
        o.expect(b, "probe", "clone3=22");
    });
}

#[test]
fn user_nobody_by_name() {
    let obs = differential("nobody", |f| f.spec.process.user = "nobody".into());
    both(&obs, |b, o| {
        o.expect(
            b,
            "id",
            "uid=65534(nobody) gid=65534(nogroup) groups=50(staff)",
        );
        o.expect(b, "status", "CapEff:\t0000000000000000");
        o.expect(b, "status", "CapBnd:\t00000000a80425fb");
    });
}

#[test]
fn user_numeric_without_passwd_entry() {
    let obs = differential("uid1000", |f| f.spec.process.user = "1000:1000".into());
    both(&obs, |b, o| {
        assert!(
            o.section("id")[0].starts_with("uid=1000 gid=1000"),
            "{b}: {:?}",
            o.section("id")
        );
    });
}

#[test]
fn readonly_rootfs() {
    let obs = differential("readonly", |f| f.spec.readonly_rootfs = true);
    both(&obs, |b, o| {
        o.expect(b, "write", "touch rc=1");
        o.expect(b, "write", "mkdir rc=1");
    });
}

#[test]
fn cap_drop_all() {
    let obs = differential("capdropall", |f| f.spec.cap_drop = vec!["ALL".into()]);
    both(&obs, |b, o| {
        o.expect(b, "status", "CapEff:\t0000000000000000");
        o.expect(b, "status", "CapBnd:\t0000000000000000");
        o.expect(b, "status", "Seccomp:\t2");
    });
}

#[test]
fn cap_add_sys_admin() {
    let obs = differential("sysadmin", |f| f.spec.cap_add = vec!["SYS_ADMIN".into()]);
    both(&obs, |b, o| {
        o.expect(b, "status", "CapEff:\t00000000a82425fb");
        o.expect(b, "probe", "clone3=22");
        o.expect(b, "probe", "unshare_newns=0");
    });
}

#[test]
fn seccomp_unconfined() {
    let obs = differential("unconfined", |f| f.spec.seccomp = Seccomp::Unconfined);
    both(&obs, |b, o| {
        o.expect(b, "status", "Seccomp:\t0");
        o.expect(b, "probe", "clone3=22");
        assert_ne!(o.value("probe", "io_uring_setup="), "1", "{b}");
    });
}

#[test]
fn no_new_privileges() {
    let obs = differential("nnp", |f| f.spec.process.no_new_privileges = true);
    both(&obs, |b, o| {
        o.expect(b, "status", "NoNewPrivs:\t1");
        o.expect(b, "status", "Seccomp:\t2");
    });
}

#[test]
fn resource_limits() {
    let obs = differential("resources", |f| {
        f.spec.resources = Resources {
            memory: Some(64 << 20),
            pids_limit: Some(32),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            ..Default::default()
        };
    });
    let lines: &[&str] = if common::host_layout().is_v2() {
        &[
            "memory.max=67108864",
            "pids.max=32",
            "cpu.max=50000 100000",
            "cpu.weight=59",
            "cpuset.cpus=0",
        ]
    } else {
        &[
            "memory/memory.limit_in_bytes=67108864",
            "pids/pids.max=32",
            "cpu/cpu.cfs_quota_us=50000",
            "cpu/cpu.cfs_period_us=100000",
            "cpu/cpu.shares=512",
            "cpuset/cpuset.cpus=0",
        ]
    };
    both(&obs, |b, o| {
        for section in ["host-limits", "cgroup-inside"] {
            for line in lines {
                o.expect(b, section, line);
            }
        }
    });
}

#[test]
fn rlimits_hostname_and_additional_gids() {
    let obs = differential("rlimits", |f| {
        f.spec.process.rlimits = vec![
            Rlimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048,
            },
            Rlimit {
                name: "nproc".into(),
                soft: 100,
                hard: 200,
            },
        ];
        f.spec.hostname = "diffhost".into();
        f.spec.process.additional_gids = vec![50];
    });
    both(&obs, |b, o| {
        assert_eq!(
            o.value("limits", "Max open files"),
            "1024 2048 files",
            "{b}"
        );
        assert_eq!(
            o.value("limits", "Max processes"),
            "100 200 processes",
            "{b}"
        );
        o.expect(b, "hostname", "diffhost");
        o.expect(b, "id", "uid=0(root) gid=0(root) groups=50(staff)");
    });
}

#[test]
fn cap_add_all_drop_net_raw() {
    let obs = differential("capaddall", |f| {
        f.spec.cap_add = vec!["ALL".into()];
        f.spec.cap_drop = vec!["NET_RAW".into()];
    });
    let want = format!("CapEff:\t{:016x}", own_cap_bounding() & !(1 << 13));
    both(&obs, |b, o| o.expect(b, "status", &want));
}

#[test]
fn readonly_bind_mount_and_custom_seccomp_profile() {
    let obs = differential("bindprofile", |f| {
        let data = f.dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("file"), "payload\n").unwrap();
        f.spec.mounts = vec![ContainerMount {
            source: data,
            destination: "/data".into(),
            readonly: true,
            ..Default::default()
        }];
        f.spec.seccomp = Seccomp::Profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]}"#
                .into(),
        );
    });
    both(&obs, |b, o| {
        o.expect(b, "data", "file");
        o.expect(b, "data", "payload");
        o.expect(b, "data", "touch-data rc=1");
        o.expect(b, "write", "mkdir rc=1");
        o.expect(
            b,
            "write",
            "mkdir: can't create directory '/tmp/probe-dir': Operation not permitted",
        );
        o.expect(b, "status", "Seccomp:\t2");
    });
}

#[test]
fn host_network() {
    let obs = differential("hostnet", |f| f.spec.network = Network::Host);
    let host_lines = std::fs::read_to_string("/proc/net/dev")
        .unwrap()
        .lines()
        .count();
    both(&obs, |b, o| {
        o.expect(b, "hostname", "box");
        o.expect(b, "net", &format!("proc-net-dev-lines={host_lines}"));
    });
}

#[test]
fn device_shm_size_and_sysctls() {
    let obs = differential("devices", |f| {
        // /dev/fuse (10:229): neither backend allows it by default.
        f.spec.devices = vec![berth_runtime::DeviceNode {
            path: "/dev/myfuse".into(),
            kind: 'c',
            major: 10,
            minor: 229,
            mode: 0o600,
            uid: 0,
            gid: 0,
        }];
        f.spec.resources.devices = vec![berth_runtime::DeviceRule {
            kind: 'c',
            major: Some(10),
            minor: Some(229),
            access: "rwm".into(),
        }];
        f.spec.shm = berth_runtime::Shm::Tmpfs(32 << 20);
        f.spec.sysctls = [("net.ipv4.ip_forward".to_string(), "1".to_string())].into();
    });
    both(&obs, |b, o| {
        // v1 lists the rule; v2 has no list: the open shows it (EPERM from the device
        // cgroup; ENODEV without a fuse driver, or success, when allowed).
        if !common::host_layout().is_v2() {
            o.expect(b, "devices", "c 10:229 rwm");
        }
        let open = o.section("device-open").join("\n");
        assert!(
            open.contains("opened") || open.contains("No such device"),
            "{b}: {open}"
        );
        assert!(
            o.section("dev").iter().any(|l| l.contains("myfuse")),
            "{b}: {:?}",
            o.section("dev")
        );
        assert!(
            o.section("mountinfo")
                .iter()
                .any(|l| l.contains("/dev/shm") && l.contains("size=32768k")),
            "{b}: {:?}",
            o.section("mountinfo")
        );
    });
}

#[test]
fn host_pid_uts_and_ipc() {
    let host_name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let obs = differential("hostns", |f| {
        f.spec.namespaces.pid = berth_runtime::NamespaceMode::Host;
        f.spec.namespaces.uts = berth_runtime::NamespaceMode::Host;
        f.spec.namespaces.ipc = berth_runtime::NamespaceMode::Host;
        f.spec.shm = berth_runtime::Shm::Host;
    });
    both(&obs, |b, o| {
        o.expect(b, "hostname", host_name.trim());
    });
}

/// The mount order of the v1 hierarchies follows the host's mountinfo, which a remount
/// changes (seen: `cpuset` unmounted and mounted again came last): the comparison must not
/// depend on it.
#[test]
fn cgroup_hierarchy_mounts_compare_in_any_order() {
    let mount = |id: u32, name: &str| {
        format!(
            "{id} 1 0:{id} / /sys/fs/cgroup/{name} ro,nosuid,nodev,noexec,relatime - cgroup \
             cgroup rw,{name}"
        )
    };
    let proc_line = "20 1 0:5 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw";
    let observe = |names: &[&str]| {
        let mut text = format!("== mountinfo\n{proc_line}\n");
        for (i, name) in names.iter().enumerate() {
            text += &format!("{}\n", mount(30 + i as u32, name));
        }
        text += "21 1 0:6 / /dev tmpfs rw - tmpfs tmpfs rw\n";
        Observation::parse(&text)
    };
    let usual = observe(&["cpu", "cpuset", "memory"]);
    let remounted = observe(&["cpu", "memory", "cpuset"]);
    assert_eq!(differences(&usual, &remounted), "");
    // What is mounted still counts, and so does the order of the other mounts.
    let fewer = observe(&["cpu", "memory"]);
    assert!(differences(&usual, &fewer).contains("cpuset"));
    let mut moved = usual.clone();
    moved.sections[1].1.swap(0, 4);
    assert!(!differences(&usual, &moved).is_empty());
}
