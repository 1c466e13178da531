//! Counters for `docker stats`, read straight from a container's cgroup files (v1 and v2):
//! a dozen small reads of in-memory kernel files per sample, no shim round trip.

use std::fs;

use super::{key_value, key_values, read_u64, Cgroup};

/// Counters for `docker stats`, as the kernel files give them. `None`: the file is missing
/// (controller not mounted or not enabled) or, for limits, there is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Memory in use, bytes (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_usage: Option<u64>,
    /// The highest usage seen, bytes (v1 `memory.max_usage_in_bytes`; v2 has no such
    /// counter on every kernel, and Docker leaves it out there).
    pub memory_max_usage: Option<u64>,
    /// How often the limit was hit (v1 `memory.failcnt`; v2 `oom` of `memory.events`, the
    /// counter Docker reports in its place).
    pub memory_failcnt: Option<u64>,
    /// Memory limit, bytes; `None` when unlimited.
    pub memory_limit: Option<u64>,
    /// Page cache, bytes (v1 `total_cache`, v2 `file` of `memory.stat`).
    pub memory_cache: Option<u64>,
    /// Every `key value` line of `memory.stat`, in the file's order (v1 and v2 differ).
    pub memory_stat: Vec<(String, u64)>,
    /// CPU time used, nanoseconds (v1 `cpuacct.usage`, v2 `usage_usec` of `cpu.stat`).
    pub cpu_usage_ns: Option<u64>,
    /// CPU time per cpu, nanoseconds (v1 `cpuacct.usage_percpu`; v2 has none).
    pub per_cpu_usage_ns: Option<Vec<u64>>,
    /// CPU time in user mode, nanoseconds (v1 `user` of `cpuacct.stat`, v2 `user_usec`).
    pub cpu_user_ns: Option<u64>,
    /// CPU time in kernel mode, nanoseconds (v1 `system` of `cpuacct.stat`, v2 `system_usec`).
    pub cpu_system_ns: Option<u64>,
    /// CFS bandwidth throttling (`cpu.stat`).
    pub cpu_throttling: Option<Throttling>,
    /// Number of tasks (`pids.current`).
    pub pids_current: Option<u64>,
    /// `pids.max`; `None` when unlimited.
    pub pids_limit: Option<u64>,
    /// Bytes moved per device and operation: v1
    /// `blkio.throttle.io_service_bytes_recursive` (operations `Read`, `Write`, `Sync`,
    /// `Async`, `Discard`, `Total`), v2 `rbytes`/`wbytes` of `io.stat` as `read`/`write`.
    pub io_service_bytes: Option<Vec<IoEntry>>,
    /// Operations per device and kind: v1 `blkio.throttle.io_serviced_recursive`, v2
    /// `rios`/`wios` of `io.stat` as `read`/`write`.
    pub io_serviced: Option<Vec<IoEntry>>,
}

/// CFS bandwidth throttling counters of `cpu.stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Throttling {
    /// `nr_periods`: enforcement periods that elapsed.
    pub periods: u64,
    /// `nr_throttled`: periods in which the cgroup was throttled.
    pub throttled_periods: u64,
    /// Time throttled, nanoseconds (v1 `throttled_time`, v2 `throttled_usec`).
    pub throttled_ns: u64,
}

/// One block-device counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoEntry {
    /// Device major number.
    pub major: u64,
    /// Device minor number.
    pub minor: u64,
    /// The operation, spelled as the kernel file (v1) or Docker (v2) spells it.
    pub op: String,
    /// The counter.
    pub value: u64,
}

/// `cpuacct.stat` counts in USER_HZ ticks, which Linux fixes at 100 a second on every
/// architecture (containerd and Docker use the same constant).
const NS_PER_USER_HZ_TICK: u64 = 10_000_000;

impl Cgroup {
    /// Counters for `docker stats`; missing files give `None` fields. Reads only small
    /// in-memory kernel files (cheap enough for an async worker thread).
    pub fn stats(&self) -> Stats {
        let text = |controller: &str, file: &str| {
            self.dir_of(controller)
                .and_then(|d| fs::read_to_string(d.join(file)).ok())
        };
        let number = |controller: &str, file: &str| {
            self.dir_of(controller)
                .and_then(|d| read_u64(&d.join(file)))
        };
        let memory_stat: Vec<(String, u64)> = text("memory", "memory.stat")
            .map(|t| key_values(&t).map(|(k, v)| (k.to_string(), v)).collect())
            .unwrap_or_default();
        let stat = |key: &str| memory_stat.iter().find(|(k, _)| k == key).map(|(_, v)| *v);
        let cpu_stat = text("cpu", "cpu.stat");
        let cpu = |key: &str| cpu_stat.as_deref().and_then(|t| key_value(t, key));
        let throttling = |time_key: &str, scale: u64| {
            cpu_stat.as_ref().map(|_| Throttling {
                periods: cpu("nr_periods").unwrap_or(0),
                throttled_periods: cpu("nr_throttled").unwrap_or(0),
                throttled_ns: cpu(time_key).unwrap_or(0).saturating_mul(scale),
            })
        };
        let pids_current = number("pids", "pids.current");
        let pids_limit = number("pids", "pids.max");
        if self.layout.is_v2() {
            let io = text("io", "io.stat").map(|t| v2_io(&t));
            let usec = |key: &str| cpu(key).map(|u| u.saturating_mul(1000));
            return Stats {
                memory_usage: number("memory", "memory.current"),
                memory_max_usage: None,
                memory_failcnt: text("memory", "memory.events").and_then(|t| key_value(&t, "oom")),
                memory_limit: number("memory", "memory.max"),
                memory_cache: stat("file"),
                cpu_usage_ns: usec("usage_usec"),
                per_cpu_usage_ns: None,
                cpu_user_ns: usec("user_usec"),
                cpu_system_ns: usec("system_usec"),
                cpu_throttling: throttling("throttled_usec", 1000),
                pids_current,
                pids_limit,
                io_service_bytes: io.as_ref().map(|(bytes, _)| bytes.clone()),
                io_serviced: io.map(|(_, ops)| ops),
                memory_stat,
            };
        }
        let cpuacct = text("cpuacct", "cpuacct.stat");
        let ticks = |key: &str| {
            cpuacct
                .as_deref()
                .and_then(|t| key_value(t, key))
                .map(|v| v.saturating_mul(NS_PER_USER_HZ_TICK))
        };
        let blkio = |file: &str| {
            let dir = self.dir_of("blkio")?;
            let text = fs::read_to_string(dir.join(format!("{file}_recursive")))
                .or_else(|_| fs::read_to_string(dir.join(file)))
                .ok()?;
            Some(v1_blkio(&text))
        };
        Stats {
            memory_usage: number("memory", "memory.usage_in_bytes"),
            memory_max_usage: number("memory", "memory.max_usage_in_bytes"),
            memory_failcnt: number("memory", "memory.failcnt"),
            // v1 reports "no limit" as the largest page-aligned i64.
            memory_limit: number("memory", "memory.limit_in_bytes").filter(|l| *l < 1 << 62),
            memory_cache: stat("total_cache").or_else(|| stat("cache")),
            cpu_usage_ns: number("cpuacct", "cpuacct.usage"),
            per_cpu_usage_ns: text("cpuacct", "cpuacct.usage_percpu")
                .and_then(|t| t.split_whitespace().map(|n| n.parse().ok()).collect()),
            cpu_user_ns: ticks("user"),
            cpu_system_ns: ticks("system"),
            cpu_throttling: throttling("throttled_time", 1),
            pids_current,
            pids_limit,
            io_service_bytes: blkio("blkio.throttle.io_service_bytes"),
            io_serviced: blkio("blkio.throttle.io_serviced"),
            memory_stat,
        }
    }
}

/// `MAJ:MIN`.
fn device(field: &str) -> Option<(u64, u64)> {
    let (major, minor) = field.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// v1 blkio lines `MAJ:MIN Op value`; the closing `Total N` line is left out, as
/// containerd does.
fn v1_blkio(text: &str) -> Vec<IoEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (major, minor) = device(fields.next()?)?;
            let op = fields.next()?.to_string();
            let value = fields.next()?.parse().ok()?;
            Some(IoEntry {
                major,
                minor,
                op,
                value,
            })
        })
        .collect()
}

/// v2 `io.stat` lines `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. ...`: (bytes, operations),
/// each as a `read` and a `write` entry per device (Docker's lowercase names on v2).
fn v2_io(text: &str) -> (Vec<IoEntry>, Vec<IoEntry>) {
    let mut bytes = Vec::new();
    let mut ops = Vec::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some((major, minor)) = fields.next().and_then(device) else {
            continue;
        };
        let counters: Vec<(&str, &str)> = fields.filter_map(|f| f.split_once('=')).collect();
        let value = |key: &str| {
            counters
                .iter()
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        let entry = |op: &str, value: u64| IoEntry {
            major,
            minor,
            op: op.to_string(),
            value,
        };
        bytes.push(entry("read", value("rbytes")));
        bytes.push(entry("write", value("wbytes")));
        ops.push(entry("read", value("rios")));
        ops.push(entry("write", value("wios")));
    }
    (bytes, ops)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::Layout;
    use std::collections::BTreeMap;

    #[test]
    fn v2_files_map_to_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("memory.current"), "4096\n").unwrap();
        fs::write(dir.join("memory.max"), "max\n").unwrap();
        fs::write(
            dir.join("memory.stat"),
            "anon 100\nfile 8192\ninactive_file 50\n",
        )
        .unwrap();
        fs::write(
            dir.join("cpu.stat"),
            "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 4\nnr_throttled 2\nthrottled_usec 7\n",
        )
        .unwrap();
        fs::write(dir.join("pids.current"), "3\n").unwrap();
        fs::write(dir.join("pids.max"), "max\n").unwrap();
        fs::write(dir.join("memory.events"), "low 0\noom 1\noom_kill 2\n").unwrap();
        fs::write(
            dir.join("io.stat"),
            "8:0 rbytes=4096 wbytes=512 rios=2 wios=1 dbytes=0 dios=0\n",
        )
        .unwrap();
        let layout = Layout::V2 {
            root: tmp.path().to_path_buf(),
            controllers: Vec::new(),
        };
        let s = Cgroup::open(&layout, "/c").stats();
        assert_eq!(s.memory_usage, Some(4096));
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.memory_cache, Some(8192));
        assert_eq!(s.memory_failcnt, Some(1));
        assert_eq!(s.memory_max_usage, None);
        assert_eq!(s.memory_stat.len(), 3);
        assert_eq!(s.cpu_usage_ns, Some(1_500_000));
        assert_eq!(s.cpu_user_ns, Some(1_000_000));
        assert_eq!(s.cpu_system_ns, Some(500_000));
        assert_eq!(
            s.cpu_throttling,
            Some(Throttling {
                periods: 4,
                throttled_periods: 2,
                throttled_ns: 7000
            })
        );
        assert_eq!(s.per_cpu_usage_ns, None);
        assert_eq!((s.pids_current, s.pids_limit), (Some(3), None));
        let bytes = s.io_service_bytes.unwrap();
        assert_eq!(
            bytes
                .iter()
                .map(|e| (e.major, e.minor, e.op.as_str(), e.value))
                .collect::<Vec<_>>(),
            [(8, 0, "read", 4096), (8, 0, "write", 512)]
        );
        assert_eq!(s.io_serviced.unwrap()[0].value, 2);
        fs::write(dir.join("pids.max"), "10\n").unwrap();
        assert_eq!(Cgroup::open(&layout, "/c").stats().pids_limit, Some(10));
    }

    #[test]
    fn v1_files_map_to_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let mut controllers = BTreeMap::new();
        for c in ["memory", "cpu", "cpuacct", "pids", "blkio"] {
            let mount = tmp.path().join(c);
            fs::create_dir_all(mount.join("c")).unwrap();
            controllers.insert(c.to_string(), mount);
        }
        let at = |c: &str, f: &str| tmp.path().join(c).join("c").join(f);
        fs::write(at("memory", "memory.usage_in_bytes"), "8192\n").unwrap();
        fs::write(at("memory", "memory.max_usage_in_bytes"), "9000\n").unwrap();
        fs::write(at("memory", "memory.failcnt"), "0\n").unwrap();
        fs::write(
            at("memory", "memory.limit_in_bytes"),
            "9223372036854771712\n",
        )
        .unwrap();
        fs::write(
            at("memory", "memory.stat"),
            "cache 10\ntotal_cache 20\ntotal_inactive_file 5\n",
        )
        .unwrap();
        fs::write(at("cpuacct", "cpuacct.usage"), "123456\n").unwrap();
        fs::write(at("cpuacct", "cpuacct.usage_percpu"), "100000 23456 \n").unwrap();
        fs::write(at("cpuacct", "cpuacct.stat"), "user 3\nsystem 1\n").unwrap();
        fs::write(
            at("cpu", "cpu.stat"),
            "nr_periods 5\nnr_throttled 1\nthrottled_time 99\n",
        )
        .unwrap();
        fs::write(at("pids", "pids.current"), "2\n").unwrap();
        fs::write(at("pids", "pids.max"), "max\n").unwrap();
        fs::write(
            at("blkio", "blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 0\n8:0 Total 4096\nTotal 4096\n",
        )
        .unwrap();
        // No recursive file: the plain one is read.
        fs::write(at("blkio", "blkio.throttle.io_serviced"), "Total 0\n").unwrap();
        let layout = Layout::V1 {
            controllers,
            named: BTreeMap::new(),
            unified: None,
        };
        let s = Cgroup::open(&layout, "/c").stats();
        assert_eq!(s.memory_usage, Some(8192));
        assert_eq!(s.memory_max_usage, Some(9000));
        assert_eq!(s.memory_failcnt, Some(0));
        assert_eq!(s.memory_limit, None);
        assert_eq!(s.memory_cache, Some(20));
        assert_eq!(s.cpu_usage_ns, Some(123_456));
        assert_eq!(s.per_cpu_usage_ns, Some(vec![100_000, 23_456]));
        assert_eq!(s.cpu_user_ns, Some(30_000_000));
        assert_eq!(s.cpu_system_ns, Some(10_000_000));
        assert_eq!(s.cpu_throttling.unwrap().throttled_ns, 99);
        assert_eq!((s.pids_current, s.pids_limit), (Some(2), None));
        let ops: Vec<(&str, u64)> = s
            .io_service_bytes
            .as_ref()
            .unwrap()
            .iter()
            .map(|e| (e.op.as_str(), e.value))
            .collect();
        assert_eq!(ops, [("Read", 4096), ("Write", 0), ("Total", 4096)]);
        assert_eq!(s.io_serviced, Some(Vec::new()));
    }

    #[test]
    fn a_cgroup_without_directories_has_no_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::V2 {
            root: tmp.path().to_path_buf(),
            controllers: Vec::new(),
        };
        let s = Cgroup::open(&layout, "/gone").stats();
        assert_eq!(s, Stats::default());
    }
}
