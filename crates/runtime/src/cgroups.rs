//! berth's own cgroup manager: creates a container's cgroup with Docker's limits, moves the
//! container init into it, and serves pause/resume, process listing, kill, OOM detection,
//! stats and removal.
//!
//! The host's [`Layout`] is detected once (berthd start) and travels to every shim in the
//! container spec. [`Cgroup::create`] makes only the directories a container needs (cgroup v1:
//! one per needed hierarchy; v2: one directory, with the controllers enabled in its parents)
//! and writes the limits, removing everything it made when the kernel refuses one. The
//! container init then calls [`Cgroup::join_self`] right after clone; the shim later calls
//! [`Cgroup::freeze`], [`Cgroup::kill_all`], [`Cgroup::remove`], ... on the same value (or on
//! [`Cgroup::open`] after a restart).
//!
//! Device rules follow Docker's defaults ([`crate::defaults`]): on v1 as `devices.deny` and
//! `devices.allow` lines, on v2 as a hand-assembled eBPF `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program ([`attach_device_filter`]).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::spec::Resources;
use crate::RuntimeError;

mod stats;
pub use stats::{IoEntry, Stats, Throttling};

/// How long [`Cgroup::freeze`] and [`Cgroup::thaw`] wait for the kernel.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest single sleep while polling a cgroup file.
const MAX_POLL_SLEEP: Duration = Duration::from_millis(1);

/// The host's cgroup layout, detected once (berthd start) and passed to every shim in the
/// container spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Layout {
    /// cgroup v1 hierarchies.
    V1 {
        /// Controller name -> mount point (`memory` -> `/sys/fs/cgroup/memory`); both names of
        /// a co-mounted `cpu,cpuacct` hierarchy map to the same mount.
        controllers: BTreeMap<String, PathBuf>,
        /// Named hierarchies, keyed as in `/proc/self/cgroup` (`name=systemd`) -> mount point.
        named: BTreeMap<String, PathBuf>,
        /// A cgroup2 mount alongside (hybrid), if any.
        unified: Option<PathBuf>,
    },
    /// cgroup v2 only.
    V2 {
        /// The mount point.
        root: PathBuf,
        /// The controllers available in the root (`cgroup.controllers`).
        controllers: Vec<String>,
    },
}

/// Mount options of a v1 cgroup superblock that are not controller names.
const V1_NON_CONTROLLER_OPTIONS: &[&str] = &[
    "rw",
    "ro",
    "noprefix",
    "clone_children",
    "cpuset_v2_mode",
    "favordynmods",
    "xattr",
    "none",
    "all",
];

impl Layout {
    /// Reads `/proc/self/mountinfo` once. Error if no cgroup filesystem is mounted.
    pub fn detect() -> io::Result<Layout> {
        let path = "/proc/self/mountinfo";
        let text = fs::read_to_string(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        Layout::from_mountinfo(&text)
    }

    /// Parses mountinfo text. Any v1 controller hierarchy makes the layout [`Layout::V1`] (with
    /// a cgroup2 mount as `unified`); otherwise a cgroup2 mount makes it [`Layout::V2`], whose
    /// controllers are read from `<mount>/cgroup.controllers` (none if unreadable). Of several
    /// mounts of one hierarchy, the first that shows its root (`/`) wins.
    pub fn from_mountinfo(text: &str) -> io::Result<Layout> {
        let mut controllers = BTreeMap::new();
        let mut named = BTreeMap::new();
        let mut unified = BTreeMap::new();
        for mount in text.lines().filter_map(MountInfoLine::parse) {
            match mount.fstype {
                "cgroup" => {
                    for option in mount.super_options.split(',') {
                        if option.starts_with("name=") {
                            keep_best(&mut named, option, &mount);
                        } else if !option.is_empty()
                            && !option.starts_with("release_agent=")
                            && !V1_NON_CONTROLLER_OPTIONS.contains(&option)
                        {
                            keep_best(&mut controllers, option, &mount);
                        }
                    }
                }
                "cgroup2" => keep_best(&mut unified, "", &mount),
                _ => {}
            }
        }
        let strip = |m: BTreeMap<String, (PathBuf, bool)>| -> BTreeMap<String, PathBuf> {
            m.into_iter().map(|(k, (path, _))| (k, path)).collect()
        };
        let unified = unified.remove("").map(|(path, _)| path);
        if !controllers.is_empty() || (!named.is_empty() && unified.is_none()) {
            return Ok(Layout::V1 {
                controllers: strip(controllers),
                named: strip(named),
                unified,
            });
        }
        let Some(root) = unified else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "no cgroup filesystem is mounted (/proc/self/mountinfo)",
            ));
        };
        let controllers = fs::read_to_string(root.join("cgroup.controllers"))
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        Ok(Layout::V2 { root, controllers })
    }

    /// Whether this is a pure cgroup v2 host.
    pub fn is_v2(&self) -> bool {
        matches!(self, Layout::V2 { .. })
    }
}

/// Records `mount` for `key` unless a mount showing the hierarchy's root is already there.
fn keep_best(map: &mut BTreeMap<String, (PathBuf, bool)>, key: &str, mount: &MountInfoLine) {
    let shows_root = mount.root == "/";
    match map.get(key) {
        Some((_, true)) => {}
        Some((_, false)) if !shows_root => {}
        _ => {
            map.insert(key.to_string(), (mount.mount_point.clone(), shows_root));
        }
    }
}

/// The fields of one `/proc/self/mountinfo` line that matter here.
struct MountInfoLine<'a> {
    root: String,
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

impl<'a> MountInfoLine<'a> {
    /// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
    fn parse(line: &'a str) -> Option<MountInfoLine<'a>> {
        let (head, tail) = line.split_once(" - ")?;
        let mut head = head.split(' ');
        let root = head.nth(3)?;
        let mount_point = head.next()?;
        let mut tail = tail.split(' ');
        let fstype = tail.next()?;
        let _source = tail.next()?;
        let super_options = tail.next().unwrap_or("");
        Some(MountInfoLine {
            root: unescape_mountinfo(root),
            mount_point: PathBuf::from(unescape_mountinfo(mount_point)),
            fstype,
            super_options,
        })
    }
}

/// Undoes the kernel's octal escapes in mountinfo paths (`\040` for a space).
pub fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Three octal digits that make a byte (the kernel writes \ooo up to \377).
        let octal = bytes.get(i + 1..i + 4).filter(|d| {
            bytes[i] == b'\\' && d[0] <= b'3' && d.iter().all(|c| (b'0'..=b'7').contains(c))
        });
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What [`Cgroup::mount_views`] returns: (name inside the container's `/sys/fs/cgroup`, host
/// directory to bind read-only) per v1 hierarchy, and (symlink name, target name) pairs.
pub type MountViews = (Vec<(String, PathBuf)>, Vec<(String, String)>);

/// A container's cgroup: the directories it has in each hierarchy.
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
    /// The absolute cgroup path, e.g. `/berth/<id>`.
    path: String,
    /// (controller, or `unified` on v2; directory). A co-mounted hierarchy appears once per
    /// controller name, with the same directory.
    dirs: Vec<(String, PathBuf)>,
    /// The files [`Cgroup::join_self`] writes `0` to, built beforehand so that joining does
    /// not allocate.
    join_files: Vec<CString>,
}

/// The name [`Cgroup::dirs`] uses for the one directory of a v2 cgroup.
pub const UNIFIED: &str = "unified";

/// The v1 hierarchies every container gets: memory and cpu limits and stats, pids for the
/// process list and limit, freezer for pause, blkio stats, devices for Docker's device rules.
const V1_ALWAYS: &[&str] = &[
    "memory", "cpu", "cpuacct", "pids", "freezer", "blkio", "devices",
];

/// The v2 controllers every container gets (the same roles as [`V1_ALWAYS`]).
const V2_ALWAYS: &[&str] = &["cpu", "io", "memory", "pids"];

impl Cgroup {
    /// Creates the container's cgroup at `path` (absolute cgroup path like `/berth/<id>`;
    /// parents are created as needed) with only the controllers that are needed, and writes the
    /// limits (Docker's mapping). A write the kernel refuses fails with
    /// [`RuntimeError::InvalidSpec`] naming the value and file, after removing every directory
    /// this call created. A leftover directory at `path` is removed first (so that no old
    /// limit survives) if no process is in it, else the call fails with
    /// [`RuntimeError::Conflict`].
    ///
    /// v1: memory, cpu, cpuacct, pids, freezer, blkio and devices always, cpuset only with
    /// `cpuset_cpus` or `cpuset_mems` (its parents get `cpuset.cpus`/`cpuset.mems` copied down when empty);
    /// named hierarchies and a hybrid's cgroup2 mount are left alone; hierarchies the host
    /// lacks are skipped with their limits (Docker warns and discards those). v2: one
    /// directory; `+cpu +io +memory +pids` (and `+cpuset`) enabled in its parents where
    /// available, and the device rules attached as an eBPF program.
    pub fn create(
        layout: &Layout,
        path: &str,
        resources: &Resources,
        privileged: bool,
    ) -> Result<Cgroup, RuntimeError> {
        let rel = relative_path(path)?;
        let mut created = Vec::new();
        let result = match layout {
            Layout::V1 { controllers, .. } => {
                create_v1(controllers, &rel, resources, privileged, &mut created)
            }
            Layout::V2 { root, controllers } => {
                create_v2(root, controllers, &rel, resources, privileged, &mut created)
            }
        };
        match result {
            Ok(dirs) => Ok(Cgroup::new(layout.clone(), path, dirs)),
            Err(e) => {
                for dir in created.iter().rev() {
                    let _ = fs::remove_dir(dir);
                }
                Err(e)
            }
        }
    }

    /// The cgroup [`Cgroup::create`] would make at `path`, with its directories, without
    /// making anything: for a caller that makes it ([`Cgroup::make`]) while other work runs.
    pub fn plan(
        layout: &Layout,
        path: &str,
        resources: &Resources,
    ) -> Result<Cgroup, RuntimeError> {
        let rel = relative_path(path)?;
        let dirs = match layout {
            Layout::V1 { controllers, .. } => v1_dirs(controllers, &rel, resources),
            Layout::V2 { root, .. } => vec![(UNIFIED.to_string(), root.join(&rel))],
        };
        Ok(Cgroup::new(layout.clone(), path, dirs))
    }

    /// Makes a [`Cgroup::plan`]ned cgroup, as [`Cgroup::create`] does (same errors, and the
    /// same directories: both come from the same layout, path and resources).
    pub fn make(&self, resources: &Resources, privileged: bool) -> Result<(), RuntimeError> {
        let made = Cgroup::create(&self.layout, &self.path, resources, privileged)?;
        debug_assert_eq!(made.dirs, self.dirs);
        Ok(())
    }

    /// Changes the limits of a live container (`docker update`): writes each limit that
    /// `changes` sets (`None` leaves one alone), in an order the kernel accepts. A cpuset
    /// limit on a cgroup that has no cpuset yet (v1: it is made only with a cpuset limit; v2:
    /// the controller is enabled only then) gets one first: on v1 its directory is made and
    /// every process of the container moved into it, and it joins the directories this value
    /// removes and the files an exec'd process joins. For v2 the swap limit is computed from
    /// `changes.memory`, or the current `memory.max` when that is unset; the CFS quota and
    /// period are written together (`cpu.max`), so give both.
    pub fn update(&mut self, changes: &Resources) -> Result<(), RuntimeError> {
        if needs_cpuset(changes) {
            self.ensure_cpuset()?;
        }
        let plan = match &self.layout {
            Layout::V1 { .. } => {
                let memsw = self
                    .dir_of("memory")
                    .and_then(|d| read_i64(&d.join("memory.memsw.limit_in_bytes")));
                v1_update_plan(changes, memsw)
            }
            Layout::V2 { .. } => {
                let memory = changes.memory.or_else(|| {
                    self.dir_of(UNIFIED)
                        .and_then(|d| read_i64(&d.join("memory.max")))
                });
                v2_update_plan(changes, memory)?
            }
        };
        apply_limits(&plan, |controller| self.dir_of(controller))
    }

    /// Gives the cgroup a cpuset (see [`Cgroup::update`]) when it has none.
    fn ensure_cpuset(&mut self) -> Result<(), RuntimeError> {
        let rel = relative_path(&self.path)?;
        match &self.layout {
            Layout::V2 { root, .. } => enable_controllers(root, &rel, &["cpuset"]),
            Layout::V1 { controllers, .. } => {
                if self.dirs.iter().any(|(name, _)| name == "cpuset") {
                    return Ok(());
                }
                let Some(mount) = controllers.get("cpuset").cloned() else {
                    return Ok(()); // no cpuset hierarchy: the limit is dropped, as Docker does
                };
                let mut created = Vec::new();
                let made = make_dirs(&mount, &rel, &mut created)
                    .and_then(|()| populate_cpuset(&mount, &rel));
                if let Err(e) = made {
                    for dir in created.iter().rev() {
                        let _ = fs::remove_dir(dir);
                    }
                    return Err(e);
                }
                let dir = mount.join(&rel);
                let mut dirs = self.dirs.clone();
                dirs.push(("cpuset".to_string(), dir.clone()));
                *self = Cgroup::new(self.layout.clone(), &self.path, dirs);
                self.adopt_processes(&dir)
                    .map_err(|e| RuntimeError::io(dir.join("cgroup.procs"), e))
            }
        }
    }

    /// Moves every process of the container into the v1 hierarchy directory `dir`, again
    /// while new ones appear (a fork between listing and moving).
    fn adopt_processes(&self, dir: &Path) -> io::Result<()> {
        let procs = dir.join("cgroup.procs");
        for _ in 0..16 {
            let inside: BTreeSet<i32> = read_procs(&procs)?.into_iter().collect();
            let missing: Vec<i32> = self
                .pids()?
                .into_iter()
                .filter(|p| !inside.contains(p))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            for pid in missing {
                match write_value(&procs, &pid.to_string()) {
                    Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {} // it exited
                    r => r?,
                }
            }
        }
        Err(io::Error::other(
            "the container keeps starting processes faster than they can be moved",
        ))
    }

    /// Re-opens an existing container cgroup (after the shim restarts, for abort cleanup)
    /// without creating anything: every controller directory at `path` that exists (on v1 in
    /// any controller hierarchy, not only the ones [`Cgroup::create`] uses). An invalid path
    /// gives a cgroup without directories.
    pub fn open(layout: &Layout, path: &str) -> Cgroup {
        let Ok(rel) = relative_path(path) else {
            return Cgroup::new(layout.clone(), path, Vec::new());
        };
        let dirs = match layout {
            Layout::V1 { controllers, .. } => controllers
                .iter()
                .map(|(name, mount)| (name.clone(), mount.join(&rel)))
                .filter(|(_, dir)| dir.is_dir())
                .collect(),
            Layout::V2 { root, .. } => {
                let dir = root.join(&rel);
                if dir.is_dir() {
                    vec![(UNIFIED.to_string(), dir)]
                } else {
                    Vec::new()
                }
            }
        };
        Cgroup::new(layout.clone(), path, dirs)
    }

    fn new(layout: Layout, path: &str, dirs: Vec<(String, PathBuf)>) -> Cgroup {
        // v1: `tasks` moves only the calling thread, which is the whole process for the
        // single-threaded init, and skips the cgroup_threadgroup_rwsem writer switch (an RCU
        // grace period, 5-15 ms measured here) that the first `cgroup.procs` write after a
        // quiet spell pays. v2 has no `tasks` file.
        let file = if layout.is_v2() {
            "cgroup.procs"
        } else {
            "tasks"
        };
        let join_files = unique_dirs(&dirs)
            .into_iter()
            .filter_map(|dir| CString::new(dir.join(file).as_os_str().as_bytes()).ok())
            .collect();
        Cgroup {
            layout,
            path: path.to_string(),
            dirs,
            join_files,
        }
    }

    /// The absolute cgroup path this cgroup was created or opened with.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The layout it lives in.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// (controller, or [`UNIFIED`] on v2; directory) of every directory it has; a co-mounted
    /// v1 hierarchy appears once per controller name.
    pub fn dirs(&self) -> &[(String, PathBuf)] {
        &self.dirs
    }

    /// The directory of `controller` (any name on v2: there is one directory).
    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|(name, _)| name == controller || name == UNIFIED)
            .map(|(_, dir)| dir.as_path())
    }

    /// Moves the calling process into every directory of the cgroup: `0` to `tasks` on v1 (a
    /// single-threaded caller, e.g. the container init right after clone), to `cgroup.procs`
    /// on v2. Allocates only to report an error, which names the file.
    pub fn join_self(&self) -> io::Result<()> {
        for file in &self.join_files {
            // SAFETY: `file` is a NUL-terminated path that lives as long as `self`.
            let fd = unsafe { libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io_error_at(file, io::Error::last_os_error()));
            }
            // SAFETY: `fd` is the descriptor just opened; the buffer is one static byte.
            let written = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
            let error = (written != 1).then(io::Error::last_os_error);
            // SAFETY: `fd` is owned here and closed once.
            unsafe { libc::close(fd) };
            if let Some(e) = error {
                return Err(io_error_at(file, e));
            }
        }
        Ok(())
    }

    /// v2 only: an `O_PATH | O_DIRECTORY` descriptor of the container's directory, for
    /// `clone3(CLONE_INTO_CGROUP)`. `None` on v1 or when the directory cannot be opened.
    pub fn v2_dir(&self) -> Option<OwnedFd> {
        if !self.layout.is_v2() {
            return None;
        }
        let dir = self.dir_of(UNIFIED)?;
        open_dir(dir, libc::O_PATH).ok()
    }

    /// Freezes every process: v1 `freezer.state` `FROZEN` until it reads back `FROZEN`, v2
    /// `cgroup.freeze` 1 until `cgroup.events` says `frozen 1`. Gives up (and thaws) after
    /// 5 s.
    pub fn freeze(&self) -> Result<(), String> {
        let result = self.set_frozen(true);
        if result.is_err() {
            let _ = self.set_frozen(false);
        }
        result
    }

    /// Thaws every process (the reverse of [`Cgroup::freeze`]).
    pub fn thaw(&self) -> Result<(), String> {
        self.set_frozen(false)
    }

    fn set_frozen(&self, frozen: bool) -> Result<(), String> {
        let deadline = Instant::now() + FREEZE_TIMEOUT;
        if self.layout.is_v2() {
            let dir = self
                .dir_of(UNIFIED)
                .ok_or_else(|| format!("cgroup {} does not exist", self.path))?;
            let file = dir.join("cgroup.freeze");
            write_value(&file, if frozen { "1" } else { "0" })
                .map_err(|e| format!("{}: {}", file.display(), errno_text(&e)))?;
            let events = dir.join("cgroup.events");
            wait_for_event(&events, "frozen", u64::from(frozen), deadline).map_err(|e| {
                let what = if frozen { "freeze" } else { "thaw" };
                format!("cannot {what} cgroup {}: {e}", self.path)
            })
        } else {
            let dir = self
                .dir_of("freezer")
                .ok_or_else(|| format!("cgroup {} has no freezer", self.path))?;
            set_freezer_state(&dir.join("freezer.state"), frozen, deadline)
                .map_err(|e| format!("cgroup {}: {e}", self.path))
        }
    }

    /// Host pids of every process in the cgroup (v1: the pids hierarchy, else freezer; v2:
    /// also those in cgroups the container made below its own, as a privileged container
    /// may, e.g. docker-in-docker's `/sys/fs/cgroup/init`).
    pub fn pids(&self) -> io::Result<Vec<i32>> {
        let dir = ["pids", "freezer", UNIFIED]
            .iter()
            .find_map(|c| self.dir_of(c))
            .or_else(|| self.dirs.first().map(|(_, d)| d.as_path()))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("cgroup {} does not exist", self.path),
                )
            })?;
        let mut pids = read_procs(&dir.join("cgroup.procs"))?;
        if self.layout.is_v2() {
            for sub in subtree(dir).iter().skip(1) {
                // A child removed meanwhile has no processes left.
                pids.extend(read_procs(&sub.join("cgroup.procs")).unwrap_or_default());
            }
        }
        Ok(pids)
    }

    /// SIGKILLs every process until the cgroup is empty or `limit` has passed; false if some
    /// remain. v2 uses `cgroup.kill` when the kernel has it (else it kills what it finds in
    /// the cgroups below too); v1 thaws a frozen freezer (a frozen task cannot die there).
    pub fn kill_all(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        if let (true, Some(dir)) = (self.layout.is_v2(), self.dir_of(UNIFIED)) {
            if write_value(&dir.join("cgroup.kill"), "1").is_ok() {
                return wait_for_event(&dir.join("cgroup.events"), "populated", 0, deadline)
                    .is_ok();
            }
        }
        let dirs = unique_dirs(&self.dirs);
        let mut pause = Duration::from_micros(100);
        let mut thawed = false;
        loop {
            let mut pids: Vec<i32> = dirs
                .iter()
                .flat_map(|d| {
                    if self.layout.is_v2() {
                        subtree(d)
                    } else {
                        vec![d.to_path_buf()]
                    }
                })
                .filter_map(|d| read_procs(&d.join("cgroup.procs")).ok())
                .flatten()
                .filter(|p| *p > 0)
                .collect();
            pids.sort_unstable();
            pids.dedup();
            if pids.is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            for pid in pids {
                // SAFETY: kill has no memory-safety preconditions; the pid was just listed in
                // this container's cgroup, which nothing else uses.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            if !thawed {
                // After the kill, so that no thawed task runs its own code first.
                thawed = true;
                let _ = self.thaw_for_kill();
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
    }

    fn thaw_for_kill(&self) -> io::Result<()> {
        if let (false, Some(dir)) = (self.layout.is_v2(), self.dir_of("freezer")) {
            let state = dir.join("freezer.state");
            if fs::read_to_string(&state)?.trim() != "THAWED" {
                write_value(&state, "THAWED")?;
            }
        } else if let Some(dir) = self.dir_of(UNIFIED) {
            write_value(&dir.join("cgroup.freeze"), "0")?;
        }
        Ok(())
    }

    /// Whether the memory cgroup saw an OOM kill (`oom_kill N` in v1 `memory.oom_control` or
    /// v2 `memory.events`).
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = self.dir_of("memory") else {
            return false;
        };
        let file = if self.layout.is_v2() {
            "memory.events"
        } else {
            "memory.oom_control"
        };
        read_key(&dir.join(file), "oom_kill").is_some_and(|n| n > 0)
    }

    /// Removes every directory of the cgroup with one `rmdir` each, no retries (call it once
    /// the container's processes are reaped); on v2 first the cgroups the container made below
    /// its own (deepest first), which would otherwise keep it busy. Never removes the parents
    /// (`/berth`). A missing directory counts as removed. False if one stays; each failure is
    /// printed to stderr (the shim's log). [`Cgroup::try_remove`] returns them instead.
    pub fn remove(&self) -> bool {
        match self.try_remove() {
            Ok(()) => true,
            Err(errors) => {
                for error in errors {
                    eprintln!("{error}");
                }
                false
            }
        }
    }

    /// [`Cgroup::remove`], listing each directory that stays, with the reason.
    pub fn try_remove(&self) -> Result<(), Vec<String>> {
        // Deepest first: a privileged container (read-write cgroup mounts) may have made
        // cgroups below its own, on v1 as on v2.
        let dirs: Vec<PathBuf> = unique_dirs(&self.dirs)
            .into_iter()
            .flat_map(|dir| subtree(dir).into_iter().rev())
            .collect();
        let errors: Vec<String> = dirs
            .iter()
            .filter_map(|dir| match fs::remove_dir(dir) {
                Ok(()) => None,
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => Some(format!(
                    "cannot remove cgroup {}: {}",
                    dir.display(),
                    errno_text(&e)
                )),
            })
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// What the container's `/sys/fs/cgroup` shows on v1 (Docker/runc shape): (name inside
    /// `/sys/fs/cgroup`, host directory to bind read-only) per v1 hierarchy, and the symlinks
    /// a co-mount needs (`cpu` -> `cpu,cpuacct`). The name is the mount's directory name; the
    /// directory is the container's own where it has one, else the caller's (from
    /// `proc_self_cgroup`, the text of `/proc/self/cgroup`); a hierarchy the caller is not
    /// listed in is left out. Empty on v2.
    pub fn mount_views(&self, proc_self_cgroup: &str) -> MountViews {
        let Layout::V1 {
            controllers, named, ..
        } = &self.layout
        else {
            return (Vec::new(), Vec::new());
        };
        let mut hierarchies: BTreeMap<&Path, Vec<&str>> = BTreeMap::new();
        for (key, mount) in controllers.iter().chain(named) {
            hierarchies.entry(mount).or_default().push(key);
        }
        let own: Vec<(Vec<&str>, &str)> = proc_self_cgroup
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(3, ':');
                let (_, keys, path) = (parts.next()?, parts.next()?, parts.next()?);
                Some((keys.split(',').collect(), path))
            })
            .collect();
        let names: BTreeSet<String> = hierarchies
            .keys()
            .filter_map(|m| m.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        let mut views = Vec::new();
        let mut links = Vec::new();
        for (mount, keys) in &hierarchies {
            let Some(name) = mount.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                continue;
            };
            let container_dir = keys
                .iter()
                .find_map(|k| self.dirs.iter().find(|(c, _)| c == k))
                .map(|(_, dir)| dir.clone());
            let caller_dir = || {
                own.iter()
                    .find(|(own_keys, _)| own_keys.iter().any(|k| keys.contains(k)))
                    .map(|(_, path)| mount.join(path.trim_start_matches('/')))
            };
            let Some(dir) = container_dir.or_else(caller_dir) else {
                continue;
            };
            for key in keys {
                let link = key.strip_prefix("name=").unwrap_or(key);
                if link != name && !names.contains(link) {
                    links.push((link.to_string(), name.clone()));
                }
            }
            views.push((name, dir));
        }
        links.sort();
        links.dedup();
        (views, links)
    }
}

/// `dir` and every directory below it, each parent before its children (v2: the cgroups a
/// container made inside its own). Unreadable or vanished directories add nothing.
fn subtree(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    let mut next = 0;
    while next < all.len() {
        if let Ok(entries) = fs::read_dir(&all[next]) {
            let children: Vec<PathBuf> = entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .collect();
            all.extend(children);
        }
        next += 1;
    }
    all
}

/// `/berth/x` -> `berth/x`; rejects relative paths, `/`, `.` and `..`.
fn relative_path(path: &str) -> Result<PathBuf, RuntimeError> {
    let invalid = || RuntimeError::InvalidSpec(format!("invalid cgroup path {path:?}"));
    let rel = path.strip_prefix('/').ok_or_else(invalid)?;
    let rel = Path::new(rel);
    let normal = rel.components().all(|c| matches!(c, Component::Normal(_)));
    if !normal || rel.as_os_str().is_empty() {
        return Err(invalid());
    }
    Ok(rel.to_path_buf())
}

/// The distinct directories, in order (a co-mount lists one directory under two names).
fn unique_dirs(dirs: &[(String, PathBuf)]) -> Vec<&Path> {
    let mut seen = Vec::new();
    for (_, dir) in dirs {
        if !seen.contains(&dir.as_path()) {
            seen.push(dir.as_path());
        }
    }
    seen
}

fn create_v1(
    mounts: &BTreeMap<String, PathBuf>,
    rel: &Path,
    resources: &Resources,
    privileged: bool,
    created: &mut Vec<PathBuf>,
) -> Result<Vec<(String, PathBuf)>, RuntimeError> {
    let dirs = v1_dirs(mounts, rel, resources);
    clear_leftovers(&unique_dirs(&dirs), false)?;
    let mut made = Vec::new();
    for (name, _) in &dirs {
        let mount = &mounts[name];
        if made.contains(&mount) {
            continue;
        }
        made.push(mount);
        make_dirs(mount, rel, created)?;
        if name == "cpuset" {
            populate_cpuset(mount, rel)?;
        }
    }
    apply_limits(&v1_plan(resources, privileged), |controller| {
        dirs.iter()
            .find(|(name, _)| name == controller)
            .map(|(_, dir)| dir.as_path())
    })?;
    Ok(dirs)
}

/// (controller, directory) of a v1 container cgroup at `rel`: the controllers every container
/// gets, and cpuset with a cpuset limit, of those the host has.
fn v1_dirs(
    mounts: &BTreeMap<String, PathBuf>,
    rel: &Path,
    resources: &Resources,
) -> Vec<(String, PathBuf)> {
    let mut needed: Vec<&str> = V1_ALWAYS.to_vec();
    if needs_cpuset(resources) {
        needed.push("cpuset");
    }
    needed
        .iter()
        .filter_map(|c| mounts.get(*c).map(|m| (c.to_string(), m.join(rel))))
        .collect()
}

fn create_v2(
    root: &Path,
    available: &[String],
    rel: &Path,
    resources: &Resources,
    privileged: bool,
    created: &mut Vec<PathBuf>,
) -> Result<Vec<(String, PathBuf)>, RuntimeError> {
    let plan = v2_plan(resources)?;
    let dir = root.join(rel);
    clear_leftovers(&[dir.as_path()], true)?;
    make_dirs(root, rel, created)?;
    enable_controllers(root, rel, &v2_controllers(resources, available))?;
    apply_limits(&plan, |_| Some(dir.as_path()))?;
    let fd = open_dir(&dir, libc::O_RDONLY).map_err(|e| RuntimeError::io(&dir, e))?;
    attach_device_filter(fd.as_fd(), privileged, &resources.devices)?;
    Ok(vec![(UNIFIED.to_string(), dir)])
}

/// The v2 controllers a container's directory needs, of those the host has.
fn v2_controllers<'a>(resources: &Resources, available: &'a [String]) -> Vec<&'a str> {
    available
        .iter()
        .map(String::as_str)
        .filter(|c| V2_ALWAYS.contains(c) || (*c == "cpuset" && needs_cpuset(resources)))
        .collect()
}

/// Fails with Conflict if a process is in one of `dirs`, else removes those that exist: a
/// container's cgroup left from an earlier run, whose limits must not survive. `nested` (v2):
/// with the cgroups that run made below its own, deepest first.
fn clear_leftovers(dirs: &[&Path], nested: bool) -> Result<(), RuntimeError> {
    let existing: Vec<PathBuf> = dirs
        .iter()
        .filter(|d| d.is_dir())
        .flat_map(|d| {
            if nested {
                subtree(d).into_iter().rev().collect()
            } else {
                vec![d.to_path_buf()]
            }
        })
        .collect();
    for dir in &existing {
        let procs = dir.join("cgroup.procs");
        let pids = read_procs(&procs).map_err(|e| RuntimeError::io(&procs, e))?;
        if let Some(pid) = pids.first() {
            return Err(RuntimeError::Conflict(format!(
                "cgroup {} is in use by process {pid}",
                dir.display()
            )));
        }
    }
    for dir in &existing {
        fs::remove_dir(dir).map_err(|e| {
            RuntimeError::Conflict(format!(
                "cgroup {} already exists and cannot be removed: {}",
                dir.display(),
                errno_text(&e)
            ))
        })?;
    }
    Ok(())
}

/// Creates `base/rel` and its missing parents, appending each directory it made to
/// `created`. Retries when a parent vanishes meanwhile (another create rolling back).
fn make_dirs(base: &Path, rel: &Path, created: &mut Vec<PathBuf>) -> Result<(), RuntimeError> {
    let mut attempts = 0;
    'again: loop {
        let mut dir = base.to_path_buf();
        for part in rel.components() {
            dir.push(part);
            match fs::create_dir(&dir) {
                Ok(()) => created.push(dir.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => {
                    attempts += 1;
                    continue 'again;
                }
                Err(e) => return Err(RuntimeError::io(&dir, e)),
            }
        }
        return Ok(());
    }
}

/// v1 cpuset: a task can only join a cpuset whose `cpuset.cpus` and `cpuset.mems` are set,
/// and new directories start empty (unless `cgroup.clone_children`): copy them down from
/// the mount to `rel`, wherever empty.
fn populate_cpuset(mount: &Path, rel: &Path) -> Result<(), RuntimeError> {
    let mut parent = mount.to_path_buf();
    for part in rel.components() {
        let dir = parent.join(part);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(file);
            let current = fs::read_to_string(&own).map_err(|e| RuntimeError::io(&own, e))?;
            if current.trim().is_empty() {
                let from = parent.join(file);
                let value = fs::read_to_string(&from).map_err(|e| RuntimeError::io(&from, e))?;
                write_value(&own, value.trim()).map_err(|e| RuntimeError::io(&own, e))?;
            }
        }
        parent = dir;
    }
    Ok(())
}

/// v2: enables `controllers` (where listed in each level's `cgroup.controllers`) in the
/// `cgroup.subtree_control` of `root` and of every parent of `root/rel`.
fn enable_controllers(root: &Path, rel: &Path, controllers: &[&str]) -> Result<(), RuntimeError> {
    let mut level = root.to_path_buf();
    let parents = rel.components().count().saturating_sub(1);
    for part in std::iter::once(None).chain(rel.components().take(parents).map(Some)) {
        if let Some(part) = part {
            level.push(part);
        }
        let read = |file: &str| {
            let path = level.join(file);
            fs::read_to_string(&path).map_err(|e| RuntimeError::io(&path, e))
        };
        let available = read("cgroup.controllers")?;
        let enabled = read("cgroup.subtree_control")?;
        let missing: Vec<String> = controllers
            .iter()
            .filter(|c| available.split_whitespace().any(|a| a == **c))
            .filter(|c| !enabled.split_whitespace().any(|a| a == **c))
            .map(|c| format!("+{c}"))
            .collect();
        if missing.is_empty() {
            continue;
        }
        let file = level.join("cgroup.subtree_control");
        let value = missing.join(" ");
        write_value(&file, &value).map_err(|e| RuntimeError::Io {
            message: format!("cannot enable controllers {value}: {}", errno_text(&e)),
            path: file,
        })?;
    }
    Ok(())
}

/// One write of the limits plan.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LimitWrite {
    /// v1 controller whose directory holds `file` (ignored on v2: one directory).
    controller: &'static str,
    file: &'static str,
    value: String,
    /// What it sets, for the error message.
    what: &'static str,
    /// Skipped when the file does not exist (swap accounting off).
    optional: bool,
}

impl LimitWrite {
    fn new(controller: &'static str, file: &'static str, value: impl ToString) -> Self {
        let what = match file {
            "memory.limit_in_bytes" | "memory.max" => "memory limit",
            "memory.memsw.limit_in_bytes" => "memory+swap limit",
            "memory.swap.max" => "swap limit",
            "cpu.shares" => "cpu shares",
            "cpu.weight" => "cpu weight",
            "cpu.cfs_period_us" => "cpu period",
            "cpu.cfs_quota_us" => "cpu quota",
            "cpu.max" => "cpu quota and period",
            "cpuset.cpus" => "cpuset cpus",
            "cpuset.mems" => "cpuset mems",
            "pids.max" => "pids limit",
            _ => "device rule",
        };
        LimitWrite {
            controller,
            file,
            value: value.to_string(),
            what,
            optional: matches!(file, "memory.memsw.limit_in_bytes" | "memory.swap.max"),
        }
    }
}

fn cpuset_cpus(resources: &Resources) -> Option<&str> {
    resources
        .cpuset_cpus
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

fn cpuset_mems(resources: &Resources) -> Option<&str> {
    resources
        .cpuset_mems
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
}

/// A cpuset directory only with a cpuset limit (CPUs or memory nodes).
fn needs_cpuset(resources: &Resources) -> bool {
    cpuset_cpus(resources).is_some() || cpuset_mems(resources).is_some()
}

/// Docker's v1 mapping. 0 means "not set" for memory, swap, shares, quota and period, as in
/// Docker; a negative quota means unlimited; a pids limit of 0 or less means `max`.
fn v1_plan(resources: &Resources, privileged: bool) -> Vec<LimitWrite> {
    let mut plan = Vec::new();
    if let Some(memory) = resources.memory.filter(|m| *m > 0) {
        plan.push(LimitWrite::new("memory", "memory.limit_in_bytes", memory));
    }
    // After the memory limit: the kernel refuses memory+swap below it.
    if let Some(swap) = resources.memory_swap.filter(|s| *s != 0) {
        let swap = if swap < 0 { -1 } else { swap };
        plan.push(LimitWrite::new(
            "memory",
            "memory.memsw.limit_in_bytes",
            swap,
        ));
    }
    if let Some(shares) = resources.cpu_shares.filter(|s| *s > 0) {
        plan.push(LimitWrite::new("cpu", "cpu.shares", shares));
    }
    // Period first: the kernel checks the quota against it.
    if let Some(period) = resources.cpu_period.filter(|p| *p > 0) {
        plan.push(LimitWrite::new("cpu", "cpu.cfs_period_us", period));
    }
    if let Some(quota) = resources.cpu_quota.filter(|q| *q != 0) {
        plan.push(LimitWrite::new("cpu", "cpu.cfs_quota_us", quota.max(-1)));
    }
    if let Some(cpus) = cpuset_cpus(resources) {
        plan.push(LimitWrite::new("cpuset", "cpuset.cpus", cpus));
    }
    if let Some(mems) = cpuset_mems(resources) {
        plan.push(LimitWrite::new("cpuset", "cpuset.mems", mems));
    }
    if let Some(pids) = resources.pids_limit {
        plan.push(LimitWrite::new("pids", "pids.max", pids_max(pids)));
    }
    for rule in docker_device_rules(privileged, &resources.devices) {
        let file = if rule.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        plan.push(LimitWrite::new("devices", file, rule.v1_line()));
    }
    plan
}

/// Docker's v2 mapping (runc's conversions from the v1 values Docker keeps in its API).
fn v2_plan(resources: &Resources) -> Result<Vec<LimitWrite>, RuntimeError> {
    let mut plan = Vec::new();
    let memory = resources.memory.filter(|m| *m > 0);
    if let Some(memory) = memory {
        plan.push(LimitWrite::new("memory", "memory.max", memory));
    }
    match (resources.memory_swap.filter(|s| *s != 0), memory) {
        (None, _) => {}
        (Some(swap), _) if swap < 0 => {
            plan.push(LimitWrite::new("memory", "memory.swap.max", "max"));
        }
        (Some(swap), None) => {
            return Err(RuntimeError::InvalidSpec(format!(
                "cannot set memory+swap limit to {swap}: it needs a memory limit"
            )))
        }
        (Some(swap), Some(memory)) if swap < memory => {
            return Err(RuntimeError::InvalidSpec(format!(
                "cannot set memory+swap limit to {swap}: it must be at least the memory limit \
                 ({memory})"
            )))
        }
        (Some(swap), Some(memory)) => {
            plan.push(LimitWrite::new("memory", "memory.swap.max", swap - memory));
        }
    }
    if let Some(shares) = resources.cpu_shares.filter(|s| *s > 0) {
        plan.push(LimitWrite::new("cpu", "cpu.weight", cpu_weight(shares)));
    }
    let quota = resources.cpu_quota.filter(|q| *q != 0);
    let period = resources.cpu_period.filter(|p| *p > 0);
    if quota.is_some() || period.is_some() {
        let quota = quota
            .filter(|q| *q > 0)
            .map_or("max".to_string(), |q| q.to_string());
        let period = period.unwrap_or(100_000);
        plan.push(LimitWrite::new(
            "cpu",
            "cpu.max",
            format!("{quota} {period}"),
        ));
    }
    if let Some(cpus) = cpuset_cpus(resources) {
        plan.push(LimitWrite::new("cpuset", "cpuset.cpus", cpus));
    }
    if let Some(mems) = cpuset_mems(resources) {
        plan.push(LimitWrite::new("cpuset", "cpuset.mems", mems));
    }
    if let Some(pids) = resources.pids_limit {
        plan.push(LimitWrite::new("pids", "pids.max", pids_max(pids)));
    }
    Ok(plan)
}

/// The v1 writes of an update (only what `changes` sets). Memory and memory+swap go in the
/// order the kernel takes: the memory limit may not pass the memory+swap limit, so when it
/// grows beyond the current one (`memsw`, `None` without swap accounting), memory+swap first.
fn v1_update_plan(changes: &Resources, memsw: Option<i64>) -> Vec<LimitWrite> {
    let memory = changes
        .memory
        .filter(|m| *m > 0)
        .map(|m| LimitWrite::new("memory", "memory.limit_in_bytes", m));
    let swap = changes.memory_swap.filter(|s| *s != 0).map(|s| {
        LimitWrite::new(
            "memory",
            "memory.memsw.limit_in_bytes",
            if s < 0 { -1 } else { s },
        )
    });
    let swap_first = match (changes.memory, memsw) {
        (Some(m), Some(current)) => current >= 0 && m > current,
        _ => false,
    };
    let mut plan: Vec<LimitWrite> = if swap_first {
        swap.into_iter().chain(memory).collect()
    } else {
        memory.into_iter().chain(swap).collect()
    };
    let rest = Resources {
        memory: None,
        memory_swap: None,
        devices: Vec::new(),
        ..changes.clone()
    };
    plan.extend(
        v1_plan(&rest, false)
            .into_iter()
            .filter(|w| !w.file.starts_with("devices.")),
    );
    plan
}

/// The v2 writes of an update (only what `changes` sets); `memory` is the memory limit the
/// swap limit is computed from.
fn v2_update_plan(
    changes: &Resources,
    memory: Option<i64>,
) -> Result<Vec<LimitWrite>, RuntimeError> {
    let mut plan = Vec::new();
    if let Some(m) = changes.memory.filter(|m| *m > 0) {
        plan.push(LimitWrite::new("memory", "memory.max", m));
    }
    if let Some(swap) = changes.memory_swap.filter(|s| *s != 0) {
        let with_memory = Resources {
            memory,
            memory_swap: Some(swap),
            ..Resources::default()
        };
        plan.extend(
            v2_plan(&with_memory)?
                .into_iter()
                .filter(|w| w.file == "memory.swap.max"),
        );
    }
    let rest = Resources {
        memory: None,
        memory_swap: None,
        ..changes.clone()
    };
    plan.extend(v2_plan(&rest)?);
    Ok(plan)
}

fn pids_max(limit: i64) -> String {
    if limit > 0 {
        limit.to_string()
    } else {
        "max".to_string()
    }
}

/// cpu.shares (2..=262144) -> cpu.weight (1..=10000), as runc converts since 1.3 (and
/// libcontainer 0.7): a quadratic in log2(shares) through the minimum, Docker's default
/// (1024 -> 100, the kernel's default weight) and the maximum. The linear map it replaced
/// gave 1024 -> 39, so a `--cpu-shares` container had less than an unlimited one.
fn cpu_weight(shares: u64) -> u64 {
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    // At most 10^4 here, so the cast cannot truncate.
    10f64.powf(exponent).ceil() as u64
}

/// Writes the plan, each file in the directory `dir_of` gives for its controller (none: the
/// hierarchy is not mounted and the limit is dropped, as Docker does without kernel support).
fn apply_limits<'a>(
    plan: &[LimitWrite],
    dir_of: impl Fn(&str) -> Option<&'a Path>,
) -> Result<(), RuntimeError> {
    for write in plan {
        let Some(dir) = dir_of(write.controller) else {
            continue;
        };
        let file = dir.join(write.file);
        if write.optional && !file.exists() {
            continue;
        }
        write_value(&file, &write.value).map_err(|e| {
            RuntimeError::InvalidSpec(format!(
                "cannot set {} to {} ({}): {}",
                write.what,
                write.value,
                file.display(),
                errno_text(&e)
            ))
        })?;
    }
    Ok(())
}

/// Writes `value` to an existing cgroup file in one write (never creates it).
fn write_value(path: &Path, value: &str) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .write_all(value.as_bytes())
}

fn read_procs(path: &Path) -> io::Result<Vec<i32>> {
    Ok(fs::read_to_string(path)?
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect())
}

/// A number file; `max` (no limit) and anything unparsable give `None`.
fn read_u64(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// A signed number file (a v1 limit: `-1` or a huge number means none); `max` gives `None`.
fn read_i64(path: &Path) -> Option<i64> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    text.parse::<i64>()
        .ok()
        .or_else(|| text.parse::<u64>().ok().map(|_| i64::MAX))
}

/// The value of `key` in a `key value` per line file (`memory.stat`, `cgroup.events`).
fn read_key(path: &Path, key: &str) -> Option<u64> {
    key_value(&fs::read_to_string(path).ok()?, key)
}

/// The value of `key` in `key value` lines.
fn key_value(text: &str, key: &str) -> Option<u64> {
    key_values(text).find_map(|(k, v)| (k == key).then_some(v))
}

/// `key value` lines (`memory.stat`, `cpu.stat`, `memory.events`, `cgroup.events`); other
/// lines are skipped.
fn key_values(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|line| {
        let (k, v) = line.split_once(' ')?;
        Some((k, v.trim().parse().ok()?))
    })
}

/// The OS error text without Rust's `(os error N)` suffix, lowercase like Go's
/// (`invalid argument`).
fn errno_text(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => {
            let text = nix::errno::Errno::from_raw(n).desc();
            let mut chars = text.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_lowercase().chain(chars).collect()
            })
        }
        None => e.to_string(),
    }
}

fn io_error_at(file: &CString, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{}: {}", file.to_string_lossy(), errno_text(&e)),
    )
}

/// Opens a directory with `O_DIRECTORY | O_CLOEXEC | flags`.
fn open_dir(dir: &Path, flags: libc::c_int) -> io::Result<OwnedFd> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// v1 freezer: writes the state and reads it back until the kernel reports it (a cgroup can
/// stay `FREEZING` while tasks fork; writing `FROZEN` again retries them).
fn set_freezer_state(file: &Path, frozen: bool, deadline: Instant) -> Result<(), String> {
    let want = if frozen { "FROZEN" } else { "THAWED" };
    let fail = |e: io::Error| format!("{}: {}", file.display(), errno_text(&e));
    let mut pause = Duration::from_micros(50);
    let mut polls = 0u32;
    loop {
        if polls.is_multiple_of(16) {
            write_value(file, want).map_err(fail)?;
        }
        polls += 1;
        let state = fs::read_to_string(file).map_err(fail)?;
        if state.trim() == want {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "freezer still {} after {FREEZE_TIMEOUT:?} (wanted {want})",
                state.trim()
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(MAX_POLL_SLEEP);
    }
}

/// Waits until `key` reads `want` in a v2 `cgroup.events` file, sleeping in poll(2) for
/// its change notification (POLLPRI); error at `deadline`.
fn wait_for_event(events: &Path, key: &str, want: u64, deadline: Instant) -> Result<(), String> {
    let fail = |e: io::Error| format!("{}: {}", events.display(), errno_text(&e));
    let mut file = File::open(events).map_err(fail)?;
    let mut text = String::new();
    loop {
        text.clear();
        file.seek(SeekFrom::Start(0)).map_err(fail)?;
        file.read_to_string(&mut text).map_err(fail)?;
        if key_value(&text, key) == Some(want) {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("{key} is not {want} after the time limit"));
        }
        // Capped so that a missed notification costs at most 100 ms.
        let timeout = left.min(Duration::from_millis(100)).as_millis() as u16;
        let mut fds = [nix::poll::PollFd::new(
            file.as_fd(),
            nix::poll::PollFlags::POLLPRI,
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(timeout)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("poll {}: {}", events.display(), e.desc())),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Device rules

/// One device cgroup rule, in Docker's (OCI's) terms.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DeviceRule {
    allow: bool,
    /// `a` (all devices), `c` or `b`.
    kind: char,
    /// `None`: any.
    major: Option<i64>,
    minor: Option<i64>,
    /// Letters of `rwm`.
    access: String,
}

/// [`crate::defaults::device_rules`], typed, then the container's own allow rules
/// (`--device`, `--device-cgroup-rule`; Docker ignores them when privileged: all is allowed).
fn docker_device_rules(privileged: bool, extra: &[crate::spec::DeviceRule]) -> Vec<DeviceRule> {
    let rules = crate::defaults::device_rules(privileged);
    let extra = extra.iter().filter(|_| !privileged).map(|r| DeviceRule {
        allow: true,
        kind: r.kind,
        major: r.major,
        minor: r.minor,
        access: r.access.clone(),
    });
    rules
        .as_array()
        .into_iter()
        .flatten()
        .map(|rule| DeviceRule {
            allow: rule["allow"].as_bool().unwrap_or(false),
            kind: rule["type"]
                .as_str()
                .and_then(|t| t.chars().next())
                .unwrap_or('a'),
            major: rule["major"].as_i64(),
            minor: rule["minor"].as_i64(),
            access: rule["access"].as_str().unwrap_or("rwm").to_string(),
        })
        .chain(extra)
        .collect()
}

impl DeviceRule {
    /// The v1 `devices.allow`/`devices.deny` line: `c 1:3 rwm`, `c *:* m`, or `a` for every
    /// device.
    fn v1_line(&self) -> String {
        if self.kind == 'a' {
            return "a".to_string();
        }
        let number = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
        format!(
            "{} {}:{} {}",
            self.kind,
            number(self.major),
            number(self.minor),
            self.access
        )
    }

    /// The access bits of `struct bpf_cgroup_dev_ctx` this rule covers.
    fn access_mask(&self) -> i32 {
        self.access
            .chars()
            .map(|c| match c {
                'm' => BPF_DEVCG_ACC_MKNOD,
                'r' => BPF_DEVCG_ACC_READ,
                'w' => BPF_DEVCG_ACC_WRITE,
                _ => 0,
            })
            .fold(0, |a, b| a | b)
    }

    /// A rule about every device and every access: it resets what came before.
    fn covers_everything(&self) -> bool {
        self.kind == 'a' && self.major.is_none() && self.minor.is_none() && self.access_mask() == 7
    }
}

const BPF_DEVCG_ACC_MKNOD: i32 = 1;
const BPF_DEVCG_ACC_READ: i32 = 2;
const BPF_DEVCG_ACC_WRITE: i32 = 4;
const BPF_DEVCG_DEV_BLOCK: i32 = 1;
const BPF_DEVCG_DEV_CHAR: i32 = 2;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BpfInsn {
    code: u8,
    /// dst_reg in the low nibble and src_reg in the high one (little endian bitfields).
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
const BPF_LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const BPF_ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const BPF_ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const BPF_ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const BPF_ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const BPF_JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const BPF_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

impl BpfInsn {
    fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
        #[cfg(target_endian = "little")]
        let regs = dst | (src << 4);
        #[cfg(target_endian = "big")]
        let regs = (dst << 4) | src;
        BpfInsn {
            code,
            regs,
            off,
            imm,
        }
    }
}

/// The device filter for `rules`, evaluated as the v1 device cgroup does for Docker's lists:
/// the last rule covering every device sets the default, the later rules of the other
/// verdict are its exceptions. Returns 1 to allow, 0 to deny.
///
/// Registers: r2 device type, r3 access bits, r4 major, r5 minor (from the
/// `struct bpf_cgroup_dev_ctx` in r1); r1 is scratch afterwards.
fn device_filter_program(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    let start = rules.iter().rposition(DeviceRule::covers_everything);
    let default_allow = start.is_some_and(|i| rules[i].allow);
    let exceptions = rules[start.map_or(0, |i| i + 1)..]
        .iter()
        .filter(|r| r.allow != default_allow);
    let mut program = vec![
        BpfInsn::new(BPF_LDX_MEM_W, 2, 1, 0, 0),
        BpfInsn::new(BPF_ALU32_AND_K, 2, 0, 0, 0xffff),
        BpfInsn::new(BPF_LDX_MEM_W, 3, 1, 0, 0),
        BpfInsn::new(BPF_ALU32_RSH_K, 3, 0, 0, 16),
        BpfInsn::new(BPF_LDX_MEM_W, 4, 1, 4, 0),
        BpfInsn::new(BPF_LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in exceptions {
        // Each test jumps past the block (to the next rule) when the request does not match;
        // `skip` marks those jumps until the block's length is known.
        let mut block: Vec<(BpfInsn, bool)> = Vec::new();
        let kind = match rule.kind {
            'c' => Some(BPF_DEVCG_DEV_CHAR),
            'b' => Some(BPF_DEVCG_DEV_BLOCK),
            _ => None,
        };
        if let Some(kind) = kind {
            block.push((BpfInsn::new(BPF_JMP32_JNE_K, 2, 0, 0, kind), true));
        }
        let mask = rule.access_mask();
        if mask != 7 {
            // Requested bits outside the rule's access: no match.
            block.push((BpfInsn::new(BPF_ALU32_MOV_X, 1, 3, 0, 0), false));
            block.push((BpfInsn::new(BPF_ALU32_AND_K, 1, 0, 0, !mask & 7), false));
            block.push((BpfInsn::new(BPF_JMP32_JNE_K, 1, 0, 0, 0), true));
        }
        if let Some(major) = rule.major {
            block.push((BpfInsn::new(BPF_JMP32_JNE_K, 4, 0, 0, major as i32), true));
        }
        if let Some(minor) = rule.minor {
            block.push((BpfInsn::new(BPF_JMP32_JNE_K, 5, 0, 0, minor as i32), true));
        }
        block.push((
            BpfInsn::new(BPF_ALU64_MOV_K, 0, 0, 0, i32::from(rule.allow)),
            false,
        ));
        block.push((BpfInsn::new(BPF_EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut insn, skip)) in block.into_iter().enumerate() {
            if skip {
                insn.off = (len - i - 1) as i16;
            }
            program.push(insn);
        }
    }
    program.push(BpfInsn::new(
        BPF_ALU64_MOV_K,
        0,
        0,
        0,
        i32::from(default_allow),
    ));
    program.push(BpfInsn::new(BPF_EXIT, 0, 0, 0, 0));
    program
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD (the kernel zero-fills the rest).
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// The head of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Attaches Docker's device rules to the cgroup v2 directory `dir_fd` (opened read-only, not
/// `O_PATH`) as a `BPF_PROG_TYPE_CGROUP_DEVICE` program (`BPF_F_ALLOW_MULTI`: programs of the
/// parents still apply), with the container's own allow rules (`extra`) after Docker's.
/// Privileged containers get none: no program allows everything.
pub fn attach_device_filter(
    dir_fd: BorrowedFd<'_>,
    privileged: bool,
    extra: &[crate::spec::DeviceRule],
) -> Result<(), RuntimeError> {
    if privileged {
        return Ok(());
    }
    let program = device_filter_program(&docker_device_rules(false, extra));
    let fail = |e: io::Error| {
        let fd = dir_fd.as_raw_fd();
        let path = fs::read_link(format!("/proc/self/fd/{fd}"))
            .unwrap_or_else(|_| PathBuf::from(format!("fd {fd}")));
        RuntimeError::Io {
            path,
            message: format!("cannot attach the device filter: {e}"),
        }
    };
    let prog = load_program(&program).map_err(fail)?;
    let attr = ProgAttachAttr {
        target_fd: dir_fd.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a valid BPF_PROG_ATTACH attribute of the size passed, alive for the
    // call; both descriptors are open.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attr as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if ret < 0 {
        return Err(fail(io::Error::last_os_error()));
    }
    // The attachment holds its own reference to the program: `prog` can close.
    Ok(())
}

/// Loads a device filter; on failure, loads it again with the verifier's log for the error.
fn load_program(program: &[BpfInsn]) -> io::Result<OwnedFd> {
    let load = |log: &mut [u8]| -> io::Result<OwnedFd> {
        let license = b"Apache\0";
        let mut prog_name = [0u8; 16];
        prog_name[..13].copy_from_slice(b"berth_devices");
        let attr = ProgLoadAttr {
            prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: program.len() as u32,
            insns: program.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: log.as_mut_ptr() as u64,
            kern_version: 0,
            prog_flags: 0,
            prog_name,
            prog_ifindex: 0,
            expected_attach_type: BPF_CGROUP_DEVICE,
        };
        // SAFETY: `attr` is a valid BPF_PROG_LOAD attribute of the size passed; the
        // instructions, license and log buffer it points to outlive the call, and the log
        // size is the buffer's.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_LOAD,
                &attr as *const ProgLoadAttr,
                std::mem::size_of::<ProgLoadAttr>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
    };
    load(&mut []).or_else(|e| {
        let mut log = vec![0u8; 16 * 1024];
        match load(&mut log) {
            Ok(fd) => Ok(fd),
            Err(_) => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                let log = String::from_utf8_lossy(&log[..end]);
                let detail = log.trim().lines().last().unwrap_or("");
                Err(io::Error::new(
                    e.kind(),
                    format!("bpf prog load: {}: {detail}", errno_text(&e)),
                ))
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_bytes_only() {
        assert_eq!(unescape_mountinfo("a\\040b"), "a b");
        assert_eq!(unescape_mountinfo("end\\134"), "end\\");
        // Not a byte (over \377), too short, or not octal: kept as written.
        assert_eq!(unescape_mountinfo("x\\400"), "x\\400");
        assert_eq!(unescape_mountinfo("x\\04"), "x\\04");
        assert_eq!(unescape_mountinfo("x\\089"), "x\\089");
    }

    const V1_MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
31 23 0:28 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw - cgroup cgroup rw,cpuset,clone_children
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/net_cls,net_prio rw - cgroup cgroup rw,net_cls,net_prio
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
";

    #[test]
    fn v1_mountinfo_maps_each_controller_and_co_mount_to_its_mount() {
        let layout = Layout::from_mountinfo(V1_MOUNTINFO).unwrap();
        let Layout::V1 {
            controllers,
            named,
            unified,
        } = &layout
        else {
            panic!("not v1: {layout:?}");
        };
        let mount = |c: &str| controllers.get(c).map(|p| p.to_str().unwrap());
        assert_eq!(mount("cpu"), Some("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(mount("cpuacct"), Some("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(mount("cpuset"), Some("/sys/fs/cgroup/cpuset"));
        assert_eq!(mount("net_prio"), Some("/sys/fs/cgroup/net_cls,net_prio"));
        let names: Vec<&str> = controllers.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["cpu", "cpuacct", "cpuset", "memory", "net_cls", "net_prio"]
        );
        assert_eq!(
            named.get("name=systemd"),
            Some(&PathBuf::from("/sys/fs/cgroup/systemd"))
        );
        assert_eq!(*unified, None);
        assert!(!layout.is_v2());
    }

    #[test]
    fn hybrid_mountinfo_keeps_the_cgroup2_mount_as_unified() {
        let text = format!(
            "{V1_MOUNTINFO}41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw,nsdelegate\n"
        );
        let Layout::V1 { unified, .. } = Layout::from_mountinfo(&text).unwrap() else {
            panic!("hybrid is v1");
        };
        assert_eq!(unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
    }

    #[test]
    fn v2_mountinfo_reads_the_root_controllers() {
        let root = tempfile::tempdir().unwrap();
        fs::write(
            root.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        let text = format!(
            "22 1 8:1 / / rw - ext4 /dev/vda rw\n30 23 0:26 / {} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n",
            root.path().display()
        );
        let layout = Layout::from_mountinfo(&text).unwrap();
        assert!(layout.is_v2());
        assert_eq!(
            layout,
            Layout::V2 {
                root: root.path().to_path_buf(),
                controllers: ["cpuset", "cpu", "io", "memory", "pids"]
                    .map(String::from)
                    .to_vec(),
            }
        );
        let json = serde_json::to_string(&layout).unwrap();
        assert_eq!(serde_json::from_str::<Layout>(&json).unwrap(), layout);
    }

    #[test]
    fn mount_of_the_hierarchy_root_wins_over_a_bind_of_a_subdirectory() {
        let text = "\
50 23 0:32 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
51 23 0:32 / /host\\040cgroups/memory rw - cgroup cgroup rw,memory
52 23 0:32 /x /elsewhere rw - cgroup cgroup rw,memory
";
        let Layout::V1 { controllers, .. } = Layout::from_mountinfo(text).unwrap() else {
            panic!("v1");
        };
        assert_eq!(controllers["memory"], PathBuf::from("/host cgroups/memory"));
    }

    #[test]
    fn mountinfo_without_cgroups_is_an_error() {
        let err = Layout::from_mountinfo("22 1 8:1 / / rw - ext4 /dev/vda rw\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    fn plan_lines(plan: &[LimitWrite]) -> Vec<String> {
        plan.iter()
            .map(|w| format!("{}/{}={}", w.controller, w.file, w.value))
            .collect()
    }

    #[test]
    fn v1_plan_orders_limit_before_swap_and_period_before_quota() {
        let resources = Resources {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_shares: Some(512),
            cpu_quota: Some(50_000),
            cpu_period: Some(100_000),
            cpuset_cpus: Some("0".into()),
            cpuset_mems: Some("0".into()),
            pids_limit: Some(0),
            ..Default::default()
        };
        let plan = v1_plan(&resources, true);
        assert_eq!(
            plan_lines(&plan),
            [
                "memory/memory.limit_in_bytes=67108864",
                "memory/memory.memsw.limit_in_bytes=134217728",
                "cpu/cpu.shares=512",
                "cpu/cpu.cfs_period_us=100000",
                "cpu/cpu.cfs_quota_us=50000",
                "cpuset/cpuset.cpus=0",
                "cpuset/cpuset.mems=0",
                "pids/pids.max=max",
                "devices/devices.allow=a",
            ]
        );
        assert!(plan[1].optional && !plan[0].optional);
    }

    #[test]
    fn v1_plan_writes_docker_device_rules_deny_all_first() {
        let plan = v1_plan(&Resources::default(), false);
        let lines = plan_lines(&plan);
        assert_eq!(lines[0], "devices/devices.deny=a");
        for expected in [
            "devices/devices.allow=c *:* m",
            "devices/devices.allow=b *:* m",
            "devices/devices.allow=c 1:3 rwm",
            "devices/devices.allow=c 5:2 rwm",
            "devices/devices.allow=c 136:* rwm",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "{expected} in {lines:?}"
            );
        }
        assert!(lines.iter().all(|l| l.starts_with("devices/")));
    }

    #[test]
    fn unset_and_unlimited_values_follow_docker() {
        let resources = Resources {
            memory: Some(0),
            memory_swap: Some(-1),
            cpu_quota: Some(-1),
            pids_limit: Some(-1),
            cpuset_cpus: Some(" ".into()),
            cpuset_mems: Some("".into()),
            ..Resources::default()
        };
        let v1: Vec<String> = plan_lines(&v1_plan(&resources, true));
        assert_eq!(
            v1,
            [
                "memory/memory.memsw.limit_in_bytes=-1",
                "cpu/cpu.cfs_quota_us=-1",
                "pids/pids.max=max",
                "devices/devices.allow=a",
            ]
        );
        let v2 = plan_lines(&v2_plan(&resources).unwrap());
        assert_eq!(
            v2,
            [
                "memory/memory.swap.max=max",
                "cpu/cpu.max=max 100000",
                "pids/pids.max=max",
            ]
        );
    }

    #[test]
    fn v1_update_writes_only_what_changes_with_memory_in_the_kernels_order() {
        let grow = Resources {
            memory: Some(300),
            memory_swap: Some(600),
            ..Resources::default()
        };
        assert_eq!(
            plan_lines(&v1_update_plan(&grow, Some(200))),
            [
                "memory/memory.memsw.limit_in_bytes=600",
                "memory/memory.limit_in_bytes=300"
            ]
        );
        let shrink = Resources {
            memory: Some(100),
            memory_swap: Some(150),
            ..Resources::default()
        };
        assert_eq!(
            plan_lines(&v1_update_plan(&shrink, Some(200))),
            [
                "memory/memory.limit_in_bytes=100",
                "memory/memory.memsw.limit_in_bytes=150"
            ]
        );
        let others = Resources {
            pids_limit: Some(0),
            cpu_shares: Some(512),
            cpuset_cpus: Some("0".into()),
            ..Resources::default()
        };
        assert_eq!(
            plan_lines(&v1_update_plan(&others, None)),
            [
                "cpu/cpu.shares=512",
                "cpuset/cpuset.cpus=0",
                "pids/pids.max=max"
            ]
        );
    }

    #[test]
    fn v2_update_computes_swap_from_the_memory_limit() {
        let swap_only = Resources {
            memory_swap: Some(300),
            ..Resources::default()
        };
        assert_eq!(
            plan_lines(&v2_update_plan(&swap_only, Some(100)).unwrap()),
            ["memory/memory.swap.max=200"]
        );
        assert!(v2_update_plan(&swap_only, None).is_err());
        let both = Resources {
            memory: Some(100),
            memory_swap: Some(-1),
            pids_limit: Some(50),
            ..Resources::default()
        };
        assert_eq!(
            plan_lines(&v2_update_plan(&both, Some(100)).unwrap()),
            [
                "memory/memory.max=100",
                "memory/memory.swap.max=max",
                "pids/pids.max=50"
            ]
        );
    }

    #[test]
    fn v2_plan_converts_swap_shares_and_quota() {
        let resources = Resources {
            memory: Some(100),
            memory_swap: Some(300),
            cpu_shares: Some(1024),
            cpu_quota: Some(25_000),
            cpu_period: None,
            cpuset_cpus: Some("0-1".into()),
            cpuset_mems: None,
            pids_limit: Some(20),
            ..Default::default()
        };
        assert_eq!(
            plan_lines(&v2_plan(&resources).unwrap()),
            [
                "memory/memory.max=100",
                "memory/memory.swap.max=200",
                "cpu/cpu.weight=100",
                "cpu/cpu.max=25000 100000",
                "cpuset/cpuset.cpus=0-1",
                "pids/pids.max=20",
            ]
        );
        let period_only = Resources {
            cpu_period: Some(50_000),
            ..Resources::default()
        };
        assert_eq!(
            plan_lines(&v2_plan(&period_only).unwrap()),
            ["cpu/cpu.max=max 50000"]
        );
    }

    #[test]
    fn v2_swap_below_memory_or_without_memory_is_invalid() {
        for (memory, swap) in [(Some(200), 100), (None, 100)] {
            let resources = Resources {
                memory,
                memory_swap: Some(swap),
                ..Resources::default()
            };
            let err = v2_plan(&resources).unwrap_err();
            assert!(matches!(err, RuntimeError::InvalidSpec(_)), "{err}");
            assert!(
                err.to_string().contains("memory+swap limit to 100"),
                "{err}"
            );
        }
    }

    #[test]
    fn cpu_weight_matches_runc_conversion() {
        assert_eq!(cpu_weight(2), 1);
        assert_eq!(cpu_weight(1), 1);
        assert_eq!(cpu_weight(1024), 100);
        assert_eq!(cpu_weight(512), 59);
        assert_eq!(cpu_weight(2048), 174);
        assert_eq!(cpu_weight(3), 2);
        assert_eq!(cpu_weight(262_144), 10_000);
        assert_eq!(cpu_weight(1 << 40), 10_000);
    }

    #[test]
    fn relative_path_rejects_escapes() {
        assert_eq!(relative_path("/berth/abc").unwrap(), Path::new("berth/abc"));
        for bad in ["", "/", "berth/x", "/berth/../x", "/./x", "/berth/x/.."] {
            assert!(relative_path(bad).is_err(), "{bad:?}");
        }
    }

    /// A fake cgroup2 tree: each directory with the given controllers available, the files
    /// of a container directory present and empty.
    fn fake_v2_tree(root: &Path, files: &[&str]) {
        let leaf = root.join("berth/c1");
        fs::create_dir_all(&leaf).unwrap();
        for dir in [root.to_path_buf(), root.join("berth"), leaf.clone()] {
            fs::write(
                dir.join("cgroup.controllers"),
                "cpuset cpu io memory pids hugetlb",
            )
            .unwrap();
            fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        }
        fs::write(root.join("cgroup.subtree_control"), "memory").unwrap();
        for file in files {
            fs::write(leaf.join(file), "").unwrap();
        }
    }

    #[test]
    fn v2_enables_needed_controllers_in_every_parent_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        fake_v2_tree(root, &[]);
        let available: Vec<String> = ["cpuset", "cpu", "io", "memory", "pids", "hugetlb"]
            .map(String::from)
            .to_vec();
        let controllers = v2_controllers(&Resources::default(), &available);
        assert_eq!(controllers, ["cpu", "io", "memory", "pids"]);
        enable_controllers(root, Path::new("berth/c1"), &controllers).unwrap();
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        // The root had memory already: only the rest are written.
        assert_eq!(read("cgroup.subtree_control"), "+cpu +io +pids");
        assert_eq!(
            read("berth/cgroup.subtree_control"),
            "+cpu +io +memory +pids"
        );
        assert_eq!(read("berth/c1/cgroup.subtree_control"), "");
        let with_cpuset = Resources {
            cpuset_cpus: Some("0".into()),
            ..Resources::default()
        };
        assert!(v2_controllers(&with_cpuset, &available).contains(&"cpuset"));
        let with_mems = Resources {
            cpuset_mems: Some("0".into()),
            ..Resources::default()
        };
        assert!(v2_controllers(&with_mems, &available).contains(&"cpuset"));
        assert_eq!(
            v2_controllers(&Resources::default(), &["memory".to_string()]),
            ["memory"]
        );
    }

    #[test]
    fn v2_limits_are_written_to_the_one_dir_and_missing_swap_file_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        fake_v2_tree(
            tmp.path(),
            &["memory.max", "cpu.weight", "cpu.max", "pids.max"],
        );
        let dir = tmp.path().join("berth/c1");
        let resources = Resources {
            memory: Some(1 << 30),
            memory_swap: Some(2 << 30),
            cpu_shares: Some(512),
            cpu_quota: Some(150_000),
            cpu_period: Some(100_000),
            pids_limit: Some(100),
            ..Resources::default()
        };
        apply_limits(&v2_plan(&resources).unwrap(), |_| Some(dir.as_path())).unwrap();
        let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
        assert_eq!(read("memory.max"), "1073741824");
        assert_eq!(read("cpu.weight"), "59");
        assert_eq!(read("cpu.max"), "150000 100000");
        assert_eq!(read("pids.max"), "100");
        assert!(!dir.join("memory.swap.max").exists());
    }

    #[test]
    fn a_missing_required_file_fails_naming_value_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let resources = Resources {
            pids_limit: Some(7),
            ..Resources::default()
        };
        let err = apply_limits(&v2_plan(&resources).unwrap(), |_| Some(tmp.path())).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, RuntimeError::InvalidSpec(_)));
        assert!(text.starts_with("cannot set pids limit to 7 ("), "{text}");
        assert!(
            text.contains("pids.max): no such file or directory"),
            "{text}"
        );
    }

    /// The counters themselves are `stats`'s tests.
    #[test]
    fn oom_kills_and_the_v2_dir_are_read_from_the_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("memory.events"), "low 0\noom 1\noom_kill 2\n").unwrap();
        let layout = Layout::V2 {
            root: tmp.path().to_path_buf(),
            controllers: Vec::new(),
        };
        let cgroup = Cgroup::open(&layout, "/c");
        assert!(cgroup.oom_killed());
        assert!(cgroup.v2_dir().is_some());
        assert_eq!(Cgroup::open(&layout, "/nothere").dirs(), []);
        fs::write(dir.join("memory.events"), "low 0\noom 1\noom_kill 0\n").unwrap();
        assert!(!cgroup.oom_killed());
    }

    #[test]
    fn v2_pids_include_nested_cgroups_and_removal_goes_deepest_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        fs::create_dir_all(dir.join("init/deeper")).unwrap();
        fs::create_dir_all(dir.join("other")).unwrap();
        fs::write(dir.join("cgroup.procs"), "7\n").unwrap();
        fs::write(dir.join("init/cgroup.procs"), "8\n9\n").unwrap();
        fs::write(dir.join("init/deeper/cgroup.procs"), "10\n").unwrap();
        let layout = Layout::V2 {
            root: tmp.path().to_path_buf(),
            controllers: Vec::new(),
        };
        let mut pids = Cgroup::open(&layout, "/c").pids().unwrap();
        pids.sort_unstable();
        assert_eq!(pids, [7, 8, 9, 10]);
        let order: Vec<PathBuf> = subtree(&dir).into_iter().rev().collect();
        let rank = |p: &str| order.iter().position(|d| d == &dir.join(p)).unwrap();
        assert!(rank("init/deeper") < rank("init") && rank("init") < rank(""));
        assert!(rank("other") < rank(""));
        assert_eq!(order.len(), 4);
    }

    fn co_mounted_layout() -> Layout {
        let mut controllers = BTreeMap::new();
        for (c, m) in [
            ("cpu", "cpu,cpuacct"),
            ("cpuacct", "cpu,cpuacct"),
            ("memory", "memory"),
            ("net_cls", "net_cls"),
            ("devices", "devices"),
        ] {
            controllers.insert(c.to_string(), Path::new("/sys/fs/cgroup").join(m));
        }
        let mut named = BTreeMap::new();
        named.insert(
            "name=systemd".to_string(),
            PathBuf::from("/sys/fs/cgroup/systemd"),
        );
        Layout::V1 {
            controllers,
            named,
            unified: Some(PathBuf::from("/sys/fs/cgroup/unified")),
        }
    }

    #[test]
    fn mount_views_show_own_dirs_else_the_callers_and_link_co_mounts() {
        let layout = co_mounted_layout();
        let cgroup = Cgroup::new(
            layout,
            "/berth/c1",
            vec![
                ("cpu".into(), "/sys/fs/cgroup/cpu,cpuacct/berth/c1".into()),
                (
                    "cpuacct".into(),
                    "/sys/fs/cgroup/cpu,cpuacct/berth/c1".into(),
                ),
                ("memory".into(), "/sys/fs/cgroup/memory/berth/c1".into()),
            ],
        );
        let own =
            "12:net_cls:/shim\n5:cpu,cpuacct:/\n4:memory:/m\n1:name=systemd:/sys.slice\n0::/x\n";
        let (views, links) = cgroup.mount_views(own);
        let views: Vec<(&str, &str)> = views
            .iter()
            .map(|(n, d)| (n.as_str(), d.to_str().unwrap()))
            .collect();
        assert_eq!(
            views,
            [
                ("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/berth/c1"),
                ("memory", "/sys/fs/cgroup/memory/berth/c1"),
                ("net_cls", "/sys/fs/cgroup/net_cls/shim"),
                ("systemd", "/sys/fs/cgroup/systemd/sys.slice"),
            ]
        );
        assert_eq!(
            links,
            [
                ("cpu".to_string(), "cpu,cpuacct".to_string()),
                ("cpuacct".to_string(), "cpu,cpuacct".to_string()),
            ]
        );
        let v2 = Cgroup::new(
            Layout::V2 {
                root: "/sys/fs/cgroup".into(),
                controllers: Vec::new(),
            },
            "/c",
            Vec::new(),
        );
        assert_eq!(v2.mount_views(own), (Vec::new(), Vec::new()));
    }

    #[test]
    fn join_files_are_one_per_distinct_dir() {
        let cgroup = Cgroup::new(
            co_mounted_layout(),
            "/b/c",
            vec![
                ("cpu".into(), "/x/cpu,cpuacct/b/c".into()),
                ("cpuacct".into(), "/x/cpu,cpuacct/b/c".into()),
                ("memory".into(), "/x/memory/b/c".into()),
            ],
        );
        let files: Vec<&str> = cgroup
            .join_files
            .iter()
            .map(|f| f.to_str().unwrap())
            .collect();
        assert_eq!(files, ["/x/cpu,cpuacct/b/c/tasks", "/x/memory/b/c/tasks"]);
    }

    /// Runs a device filter the way the kernel would, for the instructions it emits.
    fn run_filter(program: &[BpfInsn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [(access << 16 | kind) as u32, major, minor];
        let mut regs = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let insn = program[pc];
            let (dst, src) = ((insn.regs & 0xf) as usize, (insn.regs >> 4) as usize);
            pc += 1;
            match insn.code {
                BPF_LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    regs[dst] = u64::from(ctx[insn.off as usize / 4]);
                }
                BPF_ALU32_AND_K => regs[dst] = u64::from(regs[dst] as u32 & insn.imm as u32),
                BPF_ALU32_RSH_K => regs[dst] = u64::from((regs[dst] as u32) >> insn.imm),
                BPF_ALU32_MOV_X => regs[dst] = u64::from(regs[src] as u32),
                BPF_ALU64_MOV_K => regs[dst] = insn.imm as i64 as u64,
                BPF_JMP32_JNE_K => {
                    if regs[dst] as u32 != insn.imm as u32 {
                        pc += insn.off as usize;
                    }
                }
                BPF_EXIT => return regs[0],
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn device_filter_allows_docker_defaults_and_denies_the_rest() {
        let program = device_filter_program(&docker_device_rules(false, &[]));
        let (c, b) = (BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK);
        let (m, r, w) = (BPF_DEVCG_ACC_MKNOD, BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE);
        let cases = [
            (c, r | w, 1, 3, 1),    // /dev/null
            (c, r, 1, 9, 1),        // /dev/urandom
            (c, r | w, 5, 2, 1),    // /dev/ptmx
            (c, r | w, 136, 7, 1),  // /dev/pts/7
            (c, m, 10, 237, 1),     // mknod of anything
            (b, m, 254, 0, 1),      // mknod of a block device
            (c, r | w, 10, 237, 0), // /dev/loop-control
            (b, r, 254, 0, 0),      // /dev/vda
            (c, r | w, 1, 1, 0),    // /dev/mem
            (b, r | w, 1, 3, 0),    // block device 1:3 is not /dev/null
            (c, r | m, 10, 200, 0), // mknod plus read of /dev/net/tun
            (c, r | w, 4, 0, 0),    // /dev/tty0
        ];
        for (kind, access, major, minor, verdict) in cases {
            assert_eq!(
                run_filter(&program, kind, access, major, minor),
                verdict,
                "type {kind} access {access} {major}:{minor}"
            );
        }
        let privileged = device_filter_program(&docker_device_rules(true, &[]));
        assert_eq!(privileged.len(), 8);
        assert_eq!(run_filter(&privileged, b, r | w, 254, 0), 1);
    }

    #[test]
    fn container_device_rules_come_after_dockers() {
        let rule = |kind, major, minor, access: &str| crate::spec::DeviceRule {
            kind,
            major,
            minor,
            access: access.into(),
        };
        // --device /dev/loop-control (rw) and --device-cgroup-rule 'b 254:* r'.
        let extra = [
            rule('c', Some(10), Some(237), "rw"),
            rule('b', Some(254), None, "r"),
        ];
        let program = device_filter_program(&docker_device_rules(false, &extra));
        let (c, b) = (BPF_DEVCG_DEV_CHAR, BPF_DEVCG_DEV_BLOCK);
        let (r, w) = (BPF_DEVCG_ACC_READ, BPF_DEVCG_ACC_WRITE);
        for (kind, access, major, minor, verdict) in [
            (c, r | w, 10, 237, 1),
            (c, r | w, 10, 238, 0),
            (b, r, 254, 3, 1),
            (b, r | w, 254, 3, 0),
            (c, r | w, 1, 3, 1),
            (c, r | w, 1, 1, 0),
        ] {
            assert_eq!(
                run_filter(&program, kind, access, major, minor),
                verdict,
                "type {kind} access {access} {major}:{minor}"
            );
        }
        let lines: Vec<String> = docker_device_rules(false, &extra)
            .iter()
            .map(DeviceRule::v1_line)
            .collect();
        assert_eq!(lines[lines.len() - 2..], ["c 10:237 rw", "b 254:* r"]);
        // Privileged: everything is allowed, the container's rules add nothing.
        assert_eq!(docker_device_rules(true, &extra).len(), 1);
    }

    #[test]
    fn device_rules_print_as_v1_lines() {
        let lines: Vec<String> = docker_device_rules(false, &[])
            .iter()
            .map(DeviceRule::v1_line)
            .collect();
        assert_eq!(lines[0], "a");
        assert_eq!(lines[1], "c *:* m");
        assert_eq!(lines.last().unwrap(), "c 136:* rwm");
        assert_eq!(docker_device_rules(true, &[])[0].v1_line(), "a");
    }

    #[test]
    fn errno_text_is_lowercase_without_the_code() {
        assert_eq!(
            errno_text(&io::Error::from_raw_os_error(libc::EINVAL)),
            "invalid argument"
        );
    }
}
