//! `docker stats`: samples of a container's counters in Docker's shape, read straight from
//! its cgroup files and `/proc` by berthd (no shim round trip). A sample costs about twenty
//! reads of small in-memory kernel files, so callers take it on an async worker.
//!
//! The mapping is dockerd's (`daemon/stats_unix.go` over containerd's cgroup readers): on
//! cgroup v1 `memory_stats.stats` carries v1's keys (`total_inactive_file`, ...) and every
//! `blkio_stats` list is written; on v2 the v2 keys (`inactive_file`, ...), only
//! `io_service_bytes_recursive` (from `io.stat`, ops `read`/`write`), no `percpu_usage` and
//! no `max_usage`; a limit above the host's memory (or none) reads as the host's memory; an
//! unlimited `pids.max` is left out on v1 and is `u64::MAX` on v2. A container that does not
//! run gets Docker's zero sample (only `id` and `name`).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::{Arc, OnceLock};

use berth_api::stats::{
    BlkioStatEntry, BlkioStats, CpuStats, CpuUsage, MemoryStats, NetworkStats, PidsStats, Stats,
    ThrottlingData,
};
use berth_runtime::cgroups::{self, Cgroup, Layout};

use crate::container::Container;
use crate::error::Result;
use crate::record::{format_time, Status};
use crate::Engine;

/// The `memory.stat` keys dockerd reports on cgroup v1 (0 when the kernel has no such line).
const V1_MEMORY_KEYS: &[&str] = &[
    "cache",
    "rss",
    "rss_huge",
    "mapped_file",
    "dirty",
    "writeback",
    "pgpgin",
    "pgpgout",
    "pgfault",
    "pgmajfault",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "hierarchical_memory_limit",
    "hierarchical_memsw_limit",
    "total_cache",
    "total_rss",
    "total_rss_huge",
    "total_mapped_file",
    "total_dirty",
    "total_writeback",
    "total_pgpgin",
    "total_pgpgout",
    "total_pgfault",
    "total_pgmajfault",
    "total_inactive_anon",
    "total_active_anon",
    "total_inactive_file",
    "total_active_file",
    "total_unevictable",
];

/// The `memory.stat` keys dockerd reports on cgroup v2.
const V2_MEMORY_KEYS: &[&str] = &[
    "anon",
    "file",
    "kernel_stack",
    "slab",
    "sock",
    "shmem",
    "file_mapped",
    "file_dirty",
    "file_writeback",
    "anon_thp",
    "inactive_anon",
    "active_anon",
    "inactive_file",
    "active_file",
    "unevictable",
    "slab_reclaimable",
    "slab_unreclaimable",
    "pgfault",
    "pgmajfault",
    "workingset_refault",
    "workingset_activate",
    "workingset_nodereclaim",
    "pgrefill",
    "pgscan",
    "pgsteal",
    "pgactivate",
    "pgdeactivate",
    "pglazyfree",
    "pglazyfreed",
    "thp_fault_alloc",
    "thp_collapse_alloc",
];

/// `/proc/stat` counts in USER_HZ ticks: 100 a second on Linux (dockerd's constant too).
const NS_PER_TICK: u64 = 10_000_000;

/// Successive samples of one container: each carries the previous one's `read` and
/// `cpu_stats` as `preread` and `precpu_stats`, as Docker's stream does.
pub struct StatsReader {
    container: Arc<Container>,
    layout: Option<Layout>,
    previous: Option<(String, CpuStats)>,
}

impl Engine {
    /// `GET /containers/{id}/stats`: a reader of the container's counters (404 for an unknown
    /// container).
    pub fn stats(&self, name_or_id: &str) -> Result<StatsReader> {
        let container = self.get(name_or_id)?;
        let layout = self
            .cfg
            .cgroup_layout
            .clone()
            .or_else(|| Layout::detect().ok());
        Ok(StatsReader {
            container,
            layout,
            previous: None,
        })
    }
}

impl StatsReader {
    /// Whether samples carry counters: the container runs (paused counts, restarting does
    /// not, as in Docker).
    pub fn running(&self) -> bool {
        matches!(
            self.container.state().status,
            Status::Running | Status::Paused
        )
    }

    /// Whether the container was removed: a stream ends then, as Docker's does.
    pub fn removed(&self) -> bool {
        self.container.lifecycle.borrow().removed
    }

    /// The next sample: the counters when the container runs, else Docker's zero sample.
    pub fn sample(&mut self) -> Stats {
        let counters = if self.running() {
            self.read_counters()
        } else {
            None
        };
        let mut stats = counters.unwrap_or_default();
        stats.id = self.container.id.clone();
        stats.name = format!("/{}", self.container.name());
        if let Some((read, cpu)) = self.previous.take() {
            stats.preread = read;
            stats.precpu_stats = cpu;
        }
        self.previous = Some((stats.read.clone(), stats.cpu_stats.clone()));
        stats
    }

    /// The counters of a running container; `None` when its cgroup is gone (it just ended).
    fn read_counters(&self) -> Option<Stats> {
        let layout = self.layout.as_ref()?;
        let cgroup = Cgroup::open(layout, &crate::spec::cgroup_path(&self.container.id));
        if cgroup.dirs().is_empty() {
            return None;
        }
        let host_network = self.container.record().host_config.network_mode == "host";
        let pid = self.container.state().pid;
        let raw = cgroup.stats();
        let read = format_time(Some(chrono::Utc::now()));
        let (system_cpu_usage, online_cpus) = system_cpu();
        let mut stats = docker_stats(&raw, layout.is_v2(), machine_memory());
        stats.read = read;
        stats.cpu_stats.system_cpu_usage = system_cpu_usage;
        stats.cpu_stats.online_cpus = online_cpus;
        // The host's interfaces are not the container's (Docker reports none for host).
        if !host_network && pid > 0 {
            stats.networks = interfaces(pid);
        }
        Some(stats)
    }
}

/// The cgroup counters in Docker's shape (without times, host CPU and networks).
fn docker_stats(raw: &cgroups::Stats, v2: bool, machine_memory: u64) -> Stats {
    let keys = if v2 { V2_MEMORY_KEYS } else { V1_MEMORY_KEYS };
    let stat = |key: &str| {
        raw.memory_stat
            .iter()
            .find(|(k, _)| k == key)
            .map_or(0, |(_, v)| *v)
    };
    let memory_stats = match raw.memory_usage {
        None => MemoryStats::default(),
        Some(usage) => {
            let limit = raw.memory_limit.unwrap_or(u64::MAX);
            MemoryStats {
                usage,
                max_usage: if v2 {
                    0
                } else {
                    raw.memory_max_usage.unwrap_or(0)
                },
                stats: Some(keys.iter().map(|k| (k.to_string(), stat(k))).collect()),
                failcnt: raw.memory_failcnt.unwrap_or(0),
                limit: if machine_memory > 0 {
                    limit.min(machine_memory)
                } else {
                    limit
                },
            }
        }
    };
    let throttling = raw.cpu_throttling.unwrap_or_default();
    let cpu_stats = CpuStats {
        cpu_usage: CpuUsage {
            total_usage: raw.cpu_usage_ns.unwrap_or(0),
            percpu_usage: raw.per_cpu_usage_ns.clone().filter(|v| !v.is_empty()),
            usage_in_kernelmode: raw.cpu_system_ns.unwrap_or(0),
            usage_in_usermode: raw.cpu_user_ns.unwrap_or(0),
        },
        system_cpu_usage: 0,
        online_cpus: 0,
        throttling_data: ThrottlingData {
            periods: throttling.periods,
            throttled_periods: throttling.throttled_periods,
            throttled_time: throttling.throttled_ns,
        },
    };
    let pids_stats = PidsStats {
        current: raw.pids_current.unwrap_or(0),
        // containerd reads an unlimited `pids.max` as 0 on v1 and as u64::MAX on v2.
        limit: match raw.pids_limit {
            Some(limit) => limit,
            None if v2 && raw.pids_current.is_some() => u64::MAX,
            None => 0,
        },
    };
    Stats {
        pids_stats,
        blkio_stats: blkio_stats(raw, v2),
        cpu_stats,
        memory_stats,
        ..Stats::default()
    }
}

fn blkio_stats(raw: &cgroups::Stats, v2: bool) -> BlkioStats {
    let entries = |list: &Vec<cgroups::IoEntry>| -> Vec<BlkioStatEntry> {
        list.iter()
            .map(|e| BlkioStatEntry {
                major: e.major,
                minor: e.minor,
                op: e.op.clone(),
                value: e.value,
            })
            .collect()
    };
    if v2 {
        // Only the bytes, and `null` rather than `[]` when `io.stat` lists no device.
        return BlkioStats {
            io_service_bytes_recursive: raw
                .io_service_bytes
                .as_ref()
                .map(entries)
                .filter(|e| !e.is_empty()),
            ..BlkioStats::default()
        };
    }
    if raw.io_service_bytes.is_none() && raw.io_serviced.is_none() {
        return BlkioStats::default();
    }
    // v1: every list is written (`[]` for the ones kernels without CFQ do not keep).
    let list =
        |l: &Option<Vec<cgroups::IoEntry>>| Some(l.as_ref().map(entries).unwrap_or_default());
    BlkioStats {
        io_service_bytes_recursive: list(&raw.io_service_bytes),
        io_serviced_recursive: list(&raw.io_serviced),
        io_queue_recursive: Some(Vec::new()),
        io_service_time_recursive: Some(Vec::new()),
        io_wait_time_recursive: Some(Vec::new()),
        io_merged_recursive: Some(Vec::new()),
        io_time_recursive: Some(Vec::new()),
        sectors_recursive: Some(Vec::new()),
    }
}

/// The host's memory (`MemTotal`, bytes; 0 when unreadable), read once: Docker caps the
/// reported limit there, and `/info` shows it.
pub fn machine_memory() -> u64 {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|t| mem_total(&t))
            .unwrap_or(0)
    })
}

fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The host's CPU time since boot (nanoseconds: the first seven fields of the `cpu` line of
/// `/proc/stat`, as dockerd sums them) and the number of online CPUs (`cpuN` lines); zeros
/// when unreadable. Only the leading `cpu` lines are read.
fn system_cpu() -> (u64, u32) {
    let Ok(file) = std::fs::File::open("/proc/stat") else {
        return (0, 0);
    };
    system_cpu_from(std::io::BufReader::with_capacity(1024, file))
}

fn system_cpu_from(reader: impl BufRead) -> (u64, u32) {
    let (mut total, mut cpus) = (0, 0);
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let Some(rest) = line.strip_prefix("cpu") else {
            break;
        };
        if let Some(fields) = rest.strip_prefix(' ') {
            let ticks: u64 = fields
                .split_whitespace()
                .take(7)
                .filter_map(|f| f.parse::<u64>().ok())
                .sum();
            total = ticks.saturating_mul(NS_PER_TICK);
        } else if rest.starts_with(|c: char| c.is_ascii_digit()) {
            cpus += 1;
        }
    }
    (total, cpus)
}

/// The container's interfaces but `lo` (`/proc/<init>/net/dev` shows its network
/// namespace); `None` when it has no other, as Docker leaves `networks` out for
/// `--network none`.
fn interfaces(pid: i64) -> Option<BTreeMap<String, NetworkStats>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    let map = net_dev(&text);
    (!map.is_empty()).then_some(map)
}

/// `/proc/net/dev`: two header lines, then `name: rx(bytes packets errs drop fifo frame
/// compressed multicast) tx(bytes packets errs drop ...)`.
fn net_dev(text: &str) -> BTreeMap<String, NetworkStats> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, counters) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let n: Vec<u64> = counters
                .split_whitespace()
                .map(|f| f.parse().unwrap_or(0))
                .collect();
            if n.len() < 12 {
                return None;
            }
            Some((
                name.to_string(),
                NetworkStats {
                    rx_bytes: n[0],
                    rx_packets: n[1],
                    rx_errors: n[2],
                    rx_dropped: n[3],
                    tx_bytes: n[8],
                    tx_packets: n[9],
                    tx_errors: n[10],
                    tx_dropped: n[11],
                },
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_v1() -> cgroups::Stats {
        cgroups::Stats {
            memory_usage: Some(100 << 20),
            memory_max_usage: Some(120 << 20),
            memory_failcnt: Some(0),
            memory_limit: None,
            memory_stat: vec![
                ("total_inactive_file".into(), 4 << 20),
                ("cache".into(), 8 << 20),
                ("swap".into(), 0),
            ],
            cpu_usage_ns: Some(5_000),
            per_cpu_usage_ns: Some(vec![3_000, 2_000]),
            cpu_user_ns: Some(10_000_000),
            cpu_system_ns: Some(0),
            pids_current: Some(2),
            pids_limit: None,
            io_service_bytes: Some(vec![cgroups::IoEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 4096,
            }]),
            io_serviced: Some(Vec::new()),
            ..Default::default()
        }
    }

    #[test]
    fn v1_counters_map_as_dockerd_maps_them() {
        let s = docker_stats(&raw_v1(), false, 1 << 30);
        let m = &s.memory_stats;
        assert_eq!((m.usage, m.max_usage), (100 << 20, 120 << 20));
        // No limit: the host's memory.
        assert_eq!(m.limit, 1 << 30);
        let keys = m.stats.as_ref().unwrap();
        assert_eq!(keys.len(), V1_MEMORY_KEYS.len());
        assert_eq!(keys["total_inactive_file"], 4 << 20);
        assert_eq!(keys["rss"], 0);
        assert!(!keys.contains_key("swap"));
        assert_eq!(s.cpu_stats.cpu_usage.percpu_usage, Some(vec![3_000, 2_000]));
        assert_eq!(s.cpu_stats.cpu_usage.usage_in_usermode, 10_000_000);
        assert_eq!(
            s.pids_stats,
            PidsStats {
                current: 2,
                limit: 0
            }
        );
        let b = &s.blkio_stats;
        assert_eq!(b.io_service_bytes_recursive.as_ref().unwrap()[0].op, "Read");
        assert_eq!(b.sectors_recursive, Some(Vec::new()));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains(r#""pids_stats":{"current":2}"#), "{json}");
    }

    #[test]
    fn v2_counters_map_as_dockerd_maps_them() {
        let raw = cgroups::Stats {
            memory_usage: Some(64 << 20),
            memory_max_usage: Some(1),
            memory_limit: Some(256 << 20),
            memory_stat: vec![("inactive_file".into(), 1 << 20)],
            per_cpu_usage_ns: None,
            pids_current: Some(1),
            pids_limit: None,
            io_service_bytes: Some(Vec::new()),
            io_serviced: Some(Vec::new()),
            ..Default::default()
        };
        let s = docker_stats(&raw, true, 1 << 40);
        assert_eq!(s.memory_stats.limit, 256 << 20);
        assert_eq!(s.memory_stats.max_usage, 0);
        assert_eq!(
            s.memory_stats.stats.as_ref().unwrap()["inactive_file"],
            1 << 20
        );
        assert_eq!(
            s.memory_stats.stats.as_ref().unwrap().len(),
            V2_MEMORY_KEYS.len()
        );
        assert_eq!(s.pids_stats.limit, u64::MAX);
        assert_eq!(s.blkio_stats, BlkioStats::default());
        assert_eq!(s.cpu_stats.cpu_usage.percpu_usage, None);
    }

    #[test]
    fn a_limit_above_the_host_reads_as_the_host() {
        let mut raw = raw_v1();
        raw.memory_limit = Some(1 << 40);
        assert_eq!(
            docker_stats(&raw, false, 1 << 30).memory_stats.limit,
            1 << 30
        );
        assert_eq!(
            docker_stats(&raw, false, 0).memory_stats.limit,
            1 << 40,
            "an unreadable MemTotal caps nothing"
        );
    }

    #[test]
    fn proc_stat_sums_seven_fields_and_counts_cpus() {
        let text = "cpu  10 1 5 100 2 0 1 7 0 0\ncpu0 5 0 2 50 1 0 1 0 0 0\ncpu1 5 1 3 50 1 0 0 0 0 0\nintr 1 2 3\ncpu9 1\n";
        assert_eq!(system_cpu_from(text.as_bytes()), (119 * NS_PER_TICK, 2));
    }

    #[test]
    fn meminfo_total_in_bytes() {
        assert_eq!(
            mem_total("MemTotal:        8000000 kB\nMemFree: 1 kB\n"),
            Some(8_000_000 * 1024)
        );
    }

    #[test]
    fn net_dev_leaves_out_lo() {
        let text = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  eth0:    1586      20    1    2    0     0          0         0      653       7    3    4    0     0       0          0\n";
        let map = net_dev(text);
        assert_eq!(map.keys().collect::<Vec<_>>(), ["eth0"]);
        let e = map["eth0"];
        assert_eq!(
            (e.rx_bytes, e.rx_packets, e.rx_errors, e.rx_dropped),
            (1586, 20, 1, 2)
        );
        assert_eq!(
            (e.tx_bytes, e.tx_packets, e.tx_errors, e.tx_dropped),
            (653, 7, 3, 4)
        );
    }
}
