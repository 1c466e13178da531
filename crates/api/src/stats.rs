//! `GET /containers/{id}/stats`: one sample of a container's resource counters, in the
//! shape dockerd 20.10–28 writes (`types.StatsJSON`: snake_case keys, Go's `omitempty`
//! rules, members in Go's declaration order). Every type also decodes what a daemon sends,
//! for the CLI.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// Docker's zero time: `read` and `preread` of a sample that has none.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn zero_time() -> String {
    ZERO_TIME.to_string()
}

/// One sample (`StatsResponse`). A stopped container's sample has only `id` and `name`
/// besides zero values, as Docker's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    /// When this sample was read (RFC 3339 with nanoseconds; [`ZERO_TIME`] for none).
    pub read: String,
    /// When the previous sample was read ([`ZERO_TIME`] for none).
    pub preread: String,
    pub pids_stats: PidsStats,
    pub blkio_stats: BlkioStats,
    /// Windows only; always 0 on Linux.
    pub num_procs: u32,
    /// Windows only; always empty on Linux.
    pub storage_stats: StorageStats,
    pub cpu_stats: CpuStats,
    /// `cpu_stats` of the previous sample (zero for the first one).
    pub precpu_stats: CpuStats,
    pub memory_stats: MemoryStats,
    /// The container's name with Docker's leading `/`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Per interface; absent when the container has no interface but `lo` (`--network
    /// none`) or uses the host's (`--network host`), as in Docker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networks: Option<BTreeMap<String, NetworkStats>>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            read: zero_time(),
            preread: zero_time(),
            pids_stats: PidsStats::default(),
            blkio_stats: BlkioStats::default(),
            num_procs: 0,
            storage_stats: StorageStats::default(),
            cpu_stats: CpuStats::default(),
            precpu_stats: CpuStats::default(),
            memory_stats: MemoryStats::default(),
            name: String::new(),
            id: String::new(),
            networks: None,
        }
    }
}

/// `pids_stats`: both members left out when zero (no limit is 0 on cgroup v1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PidsStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// `blkio_stats`: every list is written, `null` when there is none (cgroup v2 fills only
/// `io_service_bytes_recursive`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioStats {
    pub io_service_bytes_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_serviced_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_queue_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_service_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_wait_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_merged_recursive: Option<Vec<BlkioStatEntry>>,
    pub io_time_recursive: Option<Vec<BlkioStatEntry>>,
    pub sectors_recursive: Option<Vec<BlkioStatEntry>>,
}

/// One block-device counter.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioStatEntry {
    pub major: u64,
    pub minor: u64,
    /// `Read`, `Write`, ... on cgroup v1; `read`, `write` on v2.
    pub op: String,
    pub value: u64,
}

/// `storage_stats` (Windows only): every member left out when zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub read_count_normalized: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub read_size_bytes: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub write_count_normalized: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub write_size_bytes: u64,
}

/// `cpu_stats` and `precpu_stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuStats {
    pub cpu_usage: CpuUsage,
    /// The host's CPU time since boot, nanoseconds (`/proc/stat`).
    #[serde(skip_serializing_if = "is_zero")]
    pub system_cpu_usage: u64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub online_cpus: u32,
    pub throttling_data: ThrottlingData,
}

/// `cpu_usage`, nanoseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuUsage {
    pub total_usage: u64,
    /// Per CPU (cgroup v1 only); left out when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percpu_usage: Option<Vec<u64>>,
    pub usage_in_kernelmode: u64,
    pub usage_in_usermode: u64,
}

/// `throttling_data`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ThrottlingData {
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_time: u64,
}

/// `memory_stats`: every member left out when zero or empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryStats {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    /// cgroup v1 only.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_usage: u64,
    /// `memory.stat` (v1 and v2 keys differ), keys sorted as Go writes a map.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "is_zero")]
    pub failcnt: u64,
    /// The container's limit, or the host's memory when it has none.
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// One interface's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkStats {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_sample_is_written_as_dockers() {
        let s = Stats {
            name: "/web".into(),
            id: "abc".into(),
            ..Stats::default()
        };
        let zero_cpu = r#"{"cpu_usage":{"total_usage":0,"usage_in_kernelmode":0,"usage_in_usermode":0},"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}}"#;
        let blkio = [
            "io_service_bytes_recursive",
            "io_serviced_recursive",
            "io_queue_recursive",
            "io_service_time_recursive",
            "io_wait_time_recursive",
            "io_merged_recursive",
            "io_time_recursive",
            "sectors_recursive",
        ]
        .map(|k| format!("\"{k}\":null"))
        .join(",");
        let want = format!(
            r#"{{"read":"0001-01-01T00:00:00Z","preread":"0001-01-01T00:00:00Z","pids_stats":{{}},"blkio_stats":{{{blkio}}},"num_procs":0,"storage_stats":{{}},"cpu_stats":{zero_cpu},"precpu_stats":{zero_cpu},"memory_stats":{{}},"name":"/web","id":"abc"}}"#
        );
        assert_eq!(serde_json::to_string(&s).unwrap(), want);
    }

    #[test]
    fn dockers_sample_decodes() {
        let text = r#"{"read":"2026-01-01T00:00:01.5Z","preread":"2026-01-01T00:00:00.5Z",
            "pids_stats":{"current":1},"blkio_stats":{"io_service_bytes_recursive":[]},
            "num_procs":0,"storage_stats":{},
            "cpu_stats":{"cpu_usage":{"total_usage":120,"percpu_usage":[60,60],
              "usage_in_kernelmode":1,"usage_in_usermode":2},"system_cpu_usage":1000,
              "online_cpus":2,"throttling_data":{"periods":0,"throttled_periods":0,"throttled_time":0}},
            "precpu_stats":{"cpu_usage":{"total_usage":100},"throttling_data":{}},
            "memory_stats":{"usage":327680,"max_usage":4087808,"stats":{"total_inactive_file":0},
              "limit":25276510208},"name":"/web","id":"4dfd",
            "networks":{"eth0":{"rx_bytes":1586,"tx_bytes":653}},"os_type":"linux"}"#;
        let s: Stats = serde_json::from_str(text).unwrap();
        assert_eq!(s.cpu_stats.cpu_usage.percpu_usage, Some(vec![60, 60]));
        assert_eq!(s.precpu_stats.cpu_usage.total_usage, 100);
        assert_eq!(s.memory_stats.limit, 25_276_510_208);
        assert_eq!(s.networks.unwrap()["eth0"].tx_bytes, 653);
        assert_eq!(s.blkio_stats.io_service_bytes_recursive, Some(Vec::new()));
        assert_eq!(s.blkio_stats.io_serviced_recursive, None);
    }
}
