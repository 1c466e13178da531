//! The e2e harness: a real `berthd` on a temporary root and socket, a busybox image made
//! from Debian's `busybox-static`, and helpers to run the real `docker` CLI and `berth`
//! against it. Several daemons can run side by side.
//!
//! Tests need root (namespaces, overlayfs, cgroups): [`require_root`] fails, not skips.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod api;
pub mod net;
pub mod registry;

/// Panics unless running as root: privileged tests must fail, not skip, when they cannot run.
pub fn require_root() {
    // SAFETY-free: geteuid via std is not available; read /proc instead.
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1).map(String::from))
        .unwrap_or_default();
    assert_eq!(
        uid, "0",
        "berth's e2e tests need root (they run containers)"
    );
}

/// Polls `done` until it holds, failing the test after 30 s with `what`: tests wait on
/// conditions, never on a fixed sleep.
pub fn wait_for(what: &str, done: impl FnMut() -> bool) {
    wait_for_within(what, Duration::from_secs(30), done)
}

/// [`wait_for`] with a deadline of its own (for what is slow under emulation).
pub fn wait_for_within(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The directory holding the built binaries (`target/debug`).
pub fn bin_dir() -> PathBuf {
    if let Ok(d) = std::env::var("BERTH_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test binary path");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// A `berthd` on its own root, exec-root and socket; stopped (with its containers) on drop.
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    child: Option<std::process::Child>,
    /// Extra berthd arguments (see [`Daemon::start_with_args`]), kept for [`Daemon::spawn`].
    args: Vec<String>,
    /// A command berthd runs under (see [`Daemon::start_wrapped`]).
    wrapper: Vec<String>,
}

impl Daemon {
    /// Starts berthd and waits until it answers.
    pub fn start() -> Daemon {
        Daemon::start_with_args(&[])
    }

    /// Like [`Daemon::start`], with extra berthd arguments (e.g. `["--runtime", "libcontainer"]`),
    /// also used when [`Daemon::spawn`] restarts it.
    pub fn start_with_args(args: &[&str]) -> Daemon {
        Daemon::start_wrapped(&[], args)
    }

    /// A berthd with a default bridge of its own (a name and a `/24` no other test daemon
    /// of this run has), for the tests of networking; the bridge and its table go on drop.
    /// Test daemons otherwise run with `--bridge none`: side by side, they would all share
    /// (and contend for) `berth0`.
    pub fn with_bridge(args: &[&str]) -> Daemon {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::process::id() % 100;
        let name = format!("be{p}n{n}");
        let bip = format!("10.{}.{}.1/24", 150 + p, n % 250);
        let mut all = vec!["--bridge", &name, "--bip", &bip];
        all.extend_from_slice(args);
        Daemon::start_with_args(&all)
    }

    /// Sets berthd's argument `flag` to `value` for its next [`Daemon::spawn`].
    pub fn set_arg(&mut self, flag: &str, value: &str) {
        match self.args.iter().position(|a| a == flag) {
            Some(i) => self.args[i + 1] = value.to_string(),
            None => self.args.extend([flag.to_string(), value.to_string()]),
        }
    }

    /// The default bridge of this daemon (`--bridge`), if it has one.
    pub fn bridge(&self) -> Option<&str> {
        let i = self.args.iter().position(|a| a == "--bridge")?;
        Some(self.args[i + 1].as_str()).filter(|b| *b != "none")
    }

    /// Like [`Daemon::start_with_args`], with berthd run as the last argument of `wrapper`
    /// (e.g. a shell that opens a descriptor and then execs it).
    pub fn start_wrapped(wrapper: &[&str], args: &[&str]) -> Daemon {
        require_root();
        // Deliberately long: shim sockets below it exceed the 108 bytes of a unix socket
        // address, which berth must handle.
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-a-long-directory-name-")
            .tempdir()
            .expect("tempdir");
        let socket = dir.path().join("berth.sock");
        let mut d = Daemon {
            dir,
            socket,
            child: None,
            args: args.iter().map(|a| a.to_string()).collect(),
            wrapper: wrapper.iter().map(|a| a.to_string()).collect(),
        };
        if !d.args.iter().any(|a| a == "--bridge") {
            d.args.extend(["--bridge".to_string(), "none".to_string()]);
        }
        // The socket redirect attaches programs to the host's cgroup root that outlive a
        // killed daemon: only the tests of it turn it on (and take it off after them).
        if !d.args.iter().any(|a| a == "--socket-redirect") {
            d.args
                .extend(["--socket-redirect".to_string(), "false".to_string()]);
        }
        d.spawn();
        d
    }

    /// berthd's `--root`.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// berthd's `--exec-root`.
    pub fn exec_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// `unix://<socket>`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// (Re)starts the berthd process over the same directories.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("berthd.log"))
            .expect("log file");
        let berthd = bin_dir().join("berthd");
        let mut command = match self.wrapper.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(&berthd);
                c
            }
            None => Command::new(&berthd),
        };
        let child = command
            .arg("--root")
            .arg(self.root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("-H")
            .arg(self.host())
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn berthd (did you build it? cargo build --workspace --bins)");
        self.child = Some(child);
        // A deadline, not a wait: generous for the v2 tier's emulated guest on a busy host
        // (a restart over a store with leftovers took over 20 s there once).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                let out = self.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
                if out.status.success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "berthd did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills berthd with SIGKILL (its containers keep running).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// berthd's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("berthd.log")).unwrap_or_default()
    }

    /// Runs the real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_API_VERSION")
            .stdin(Stdio::null())
            .output()
            .expect("run docker")
    }

    /// Exit code, stdout and stderr of a docker command.
    pub fn outcome(&self, args: &[&str]) -> (i32, String, String) {
        let o = self.docker(args);
        (
            o.status.code().unwrap_or(-1),
            text(&o.stdout),
            text(&o.stderr),
        )
    }

    /// stdout of a docker command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.outcome(args);
        assert_eq!(code, 0, "docker {args:?}: {err}");
        out
    }

    /// Runs the berth CLI against this daemon.
    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(bin_dir().join("berth"))
            .args(args)
            .env("BERTH_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .stdin(Stdio::null())
            .output()
            .expect("run berth")
    }

    /// stdout of a berth command that must succeed.
    pub fn berth_ok(&self, args: &[&str]) -> String {
        let out = self.berth(args);
        assert!(
            out.status.success(),
            "berth {args:?}: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// `docker events` between `since` and `until` (as the CLI takes them) passing every one
    /// of `filters`, one `format` line an event; must succeed.
    pub fn events(&self, since: &str, until: &str, filters: &[&str], format: &str) -> String {
        let mut args = vec!["events", "--since", since, "--until", until];
        for f in filters {
            args.extend(["--filter", f]);
        }
        args.extend(["--format", format]);
        self.ok(&args)
    }

    /// Exit code, stdout and stderr of a command of `which` CLI (`"docker"` or `"berth"`).
    pub fn cli(&self, which: &str, args: &[&str]) -> (i32, String, String) {
        let out = if which == "docker" {
            self.docker(args)
        } else {
            self.berth(args)
        };
        (
            out.status.code().unwrap_or(-1),
            text(&out.stdout),
            text(&out.stderr),
        )
    }

    /// [`Daemon::cli`] with `input` on the command's stdin and its stdout as bytes.
    pub fn cli_with_input(
        &self,
        which: &str,
        args: &[&str],
        input: &[u8],
    ) -> (i32, Vec<u8>, String) {
        let out = if which == "docker" {
            self.docker_with_input(args, input)
        } else {
            self.berth_with_input(args, input)
        };
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            text(&out.stderr),
        )
    }

    /// Makes `busybox:latest` in this daemon by importing a rootfs from busybox-static.
    pub fn busybox(&self) {
        let tar = busybox_rootfs_tar(self.dir.path());
        let out = self.docker(&["import", tar.to_str().expect("utf8"), "busybox:latest"]);
        assert!(out.status.success(), "import: {}", text(&out.stderr));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            let ids = self.docker(&["ps", "-aq"]);
            for id in text(&ids.stdout).lines() {
                let _ = self.docker(&["rm", "-f", id]);
            }
        }
        self.kill9();
        // Anything still alive (a test killed berthd mid-way): kill the containers so their
        // shims clean up.
        if let Ok(entries) = std::fs::read_dir(self.exec_root().join("containers")) {
            let mut killed = Vec::new();
            for e in entries.flatten() {
                if let Ok(pid) = std::fs::read_to_string(e.path().join("pid")) {
                    if let Ok(pid) = pid.trim().parse::<i32>() {
                        let _ = Command::new("kill")
                            .arg("-9")
                            .arg(pid.to_string())
                            .stderr(Stdio::null())
                            .status();
                        killed.push(pid);
                    }
                }
            }
            // Their shims clean up once the processes are gone.
            let deadline = Instant::now() + Duration::from_secs(10);
            while killed
                .iter()
                .any(|p| Path::new(&format!("/proc/{p}")).exists())
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        // Its default bridge and its user-defined networks' bridges (their records).
        let mut bridges: Vec<String> = self.bridge().map(String::from).into_iter().collect();
        if let Ok(entries) = std::fs::read_dir(self.root().join("networks")) {
            for e in entries.flatten() {
                let rec: serde_json::Value = std::fs::read(e.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                if let Some(b) = rec["bridge"].as_str() {
                    bridges.push(b.to_string());
                }
            }
        }
        for bridge in &bridges {
            let _ = Command::new("ip")
                .args(["link", "del", bridge])
                .stderr(Stdio::null())
                .status();
            let _ = Command::new("nft")
                .args(["delete", "table", "inet", &format!("berth-{bridge}")])
                .stderr(Stdio::null())
                .status();
            // berth's accepts beside another firewall (network/src/coexist.rs), if any.
            for chain in ["DOCKER-USER", "FORWARD"] {
                let rules = Command::new("iptables")
                    .args(["-w", "-S", chain])
                    .stderr(Stdio::null())
                    .output()
                    .map(|o| text(&o.stdout))
                    .unwrap_or_default();
                for rule in rules.lines().filter(|l| {
                    l.contains(&format!("berth:{bridge} "))
                        || l.ends_with(&format!("berth:{bridge}"))
                }) {
                    let Some(spec) = rule.strip_prefix(&format!("-A {chain} ")) else {
                        continue;
                    };
                    let _ = Command::new("sh")
                        .args(["-c", &format!("iptables -w -D {chain} {spec}")])
                        .stderr(Stdio::null())
                        .status();
                }
            }
        }
    }
}

/// Output bytes as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

/// A rootfs tar: Debian's static busybox with its applets, /etc/passwd and /etc/group.
/// A copy of [`busybox_rootfs_tar`] at `dir/name`, without the entries named in `drop`, with
/// what `extra` appends (device nodes, links, a probe binary).
pub fn busybox_tar_with(
    dir: &Path,
    name: &str,
    drop: &[&str],
    extra: impl FnOnce(&mut tar::Builder<std::fs::File>),
) -> PathBuf {
    let base = busybox_rootfs_tar(dir);
    let path = dir.join(name);
    let mut input = tar::Archive::new(std::fs::File::open(&base).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(&path).unwrap());
    for e in input.entries().unwrap() {
        let mut e = e.unwrap();
        let entry = e.path().unwrap().to_path_buf();
        if drop.contains(&entry.to_string_lossy().trim_end_matches('/')) {
            continue;
        }
        let mut h = e.header().clone();
        if h.entry_type() == tar::EntryType::Symlink {
            let target = e.link_name().unwrap().unwrap().to_path_buf();
            out.append_link(&mut h, &entry, &target).unwrap();
        } else {
            out.append_data(&mut h, &entry, &mut e).unwrap();
        }
    }
    extra(&mut out);
    out.finish().unwrap();
    path
}

pub fn busybox_rootfs_tar(dir: &Path) -> PathBuf {
    let path = dir.join("busybox-rootfs.tar");
    if path.exists() {
        return path;
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("busybox-static is not installed (apt-get install busybox-static)");
    let list = Command::new(&busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let file = std::fs::File::create(&path).expect("create tar");
    let mut b = tar::Builder::new(file);
    let dir_entry = |b: &mut tar::Builder<std::fs::File>, name: &str, mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, std::io::empty()).expect("dir");
    };
    for d in [
        "bin", "etc", "tmp", "root", "home", "var", "proc", "sys", "dev",
    ] {
        dir_entry(&mut b, d, if d == "tmp" { 0o1777 } else { 0o755 });
    }
    let mut h = tar::Header::new_gnu();
    let bytes = std::fs::read(&busybox).expect("read busybox");
    h.set_size(bytes.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "bin/busybox", bytes.as_slice())
        .expect("busybox");
    for applet in text(&list.stdout).lines() {
        if applet.is_empty() || applet == "busybox" {
            continue;
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(1_700_000_000);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("applet");
    }
    let files: [(&str, &str); 2] = [
        (
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        ("etc/group", "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n"),
    ];
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, name, content.as_bytes())
            .expect("file");
    }
    b.finish().expect("finish tar");
    path
}

impl Daemon {
    /// berthd's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("berthd runs").id()
    }

    /// Runs a docker command with `input` on its stdin.
    pub fn docker_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = Command::new("docker");
        cmd.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_API_VERSION");
        with_input(cmd, input)
    }

    /// Runs a berth command with `input` on its stdin.
    pub fn berth_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        let mut cmd = Command::new(bin_dir().join("berth"));
        cmd.args(args)
            .env("BERTH_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"));
        with_input(cmd, input)
    }

    /// Runs `command` (a shell line) on a terminal of its own, with `docker` and `berth`
    /// pointed at this daemon.
    pub fn terminal(&self, command: &str) -> Terminal {
        Terminal::spawn(
            command,
            &[
                ("DOCKER_HOST", self.host()),
                (
                    "DOCKER_CONFIG",
                    self.dir.path().join("docker-config").display().to_string(),
                ),
                ("BERTH_HOST", self.host()),
                (
                    "PATH",
                    format!(
                        "{}:{}",
                        bin_dir().display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                ),
            ],
        )
    }
}

fn with_input(mut cmd: Command, input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

/// A command on a pseudo-terminal (util-linux `script` makes it and copies our input to it):
/// the test types into it and reads what the terminal shows.
pub struct Terminal {
    child: std::process::Child,
    input: Option<std::process::ChildStdin>,
    output: std::sync::mpsc::Receiver<Vec<u8>>,
    /// Everything the terminal showed so far.
    pub seen: Vec<u8>,
    /// Where the next `expect` starts looking.
    mark: usize,
}

impl Terminal {
    fn spawn(command: &str, env: &[(&str, String)]) -> Terminal {
        use std::io::Read;
        let mut child = Command::new("script")
            .args(["-qfec", command, "/dev/null"])
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("util-linux script");
        let mut out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = out.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Terminal {
            input: child.stdin.take(),
            child,
            output: rx,
            seen: Vec::new(),
            mark: 0,
        }
    }

    /// Types `bytes`.
    pub fn send(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let input = self.input.as_mut().expect("input open");
        input.write_all(bytes).expect("type into the terminal");
        input.flush().expect("flush");
    }

    /// Waits (30 s at most) until the terminal shows `pattern` after the previous match;
    /// returns what it showed up to the end of it.
    pub fn expect(&mut self, pattern: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        let pat = pattern.as_bytes();
        loop {
            if let Some(at) = self.seen[self.mark..]
                .windows(pat.len())
                .position(|w| w == pat)
            {
                let end = self.mark + at + pat.len();
                let upto = String::from_utf8_lossy(&self.seen[self.mark..end]).into_owned();
                self.mark = end;
                return upto;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.output.recv_timeout(left) {
                Ok(bytes) => self.seen.extend_from_slice(&bytes),
                Err(_) => panic!(
                    "the terminal never showed {pattern:?}; it showed:\n{}",
                    String::from_utf8_lossy(&self.seen)
                ),
            }
        }
    }

    /// Whether the terminal shows `pattern` (after the previous match) within `within`.
    pub fn shows_within(&mut self, pattern: &str, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let pat = pattern.as_bytes();
        loop {
            if let Some(at) = self.seen[self.mark..]
                .windows(pat.len())
                .position(|w| w == pat)
            {
                self.mark += at + pat.len();
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Ok(bytes) = self.output.recv_timeout(left) {
                self.seen.extend_from_slice(&bytes);
            }
        }
    }

    /// Waits for the command to end (30 s at most) and returns its exit code.
    pub fn finish(mut self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the terminal's command did not end"
            );
            if let Ok(bytes) = self.output.recv_timeout(Duration::from_millis(50)) {
                self.seen.extend_from_slice(&bytes);
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        self.input = None;
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A "remote host": a namespace with a veth to the host, addresses on a /30 of its own (in
/// 10.98.0.0/16, the third byte the test's; the test daemons' bridges are in
/// 10.150-249.0.0) and no
/// route to the containers' subnet, so that only a masqueraded connection can be answered.
pub struct Remote {
    pub name: String,
}

impl Remote {
    pub fn new(tag: &str, subnet_octet: u8) -> Remote {
        let name = format!("bre{}{tag}", std::process::id() % 10000);
        let sh = |cmd: String| {
            let ok = Command::new("sh").args(["-ec", &cmd]).status().unwrap();
            assert!(ok.success(), "{cmd}");
        };
        sh(format!(
            "ip netns add {name}; ip link add {name}h type veth peer name eth9 netns {name}; \
             ip addr add 10.98.{subnet_octet}.1/30 dev {name}h; ip link set {name}h up; \
             ip netns exec {name} ip addr add 10.98.{subnet_octet}.2/30 dev eth9; \
             ip netns exec {name} ip link set eth9 up; ip netns exec {name} ip link set lo up"
        ));
        Remote { name }
    }

    /// busybox `nc -l -p PORT` in the remote namespace, once it listens: what a client sends
    /// is its stdout. Its stdin is held open (at EOF busybox nc closes the connection at
    /// once); drop it to let nc end.
    pub fn listen(&self, port: u16) -> std::process::Child {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, "busybox", "nc", "-l", "-p"])
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .spawn()
            .expect("ip netns exec");
        wait_for("the remote host to listen", || {
            self.tcp("listening").contains(&format!(":{port}"))
        });
        child
    }

    /// `ss` in the remote namespace: TCP sockets in `state`, "local peer" a line.
    pub fn tcp(&self, state: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name, "ss", "-Htn", "state", state])
            .output()
            .unwrap();
        text(&out.stdout)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &format!("{}h", self.name)])
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}
