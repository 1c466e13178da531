//! `/version`, `/info` and `/system/df`.

use serde::{Deserialize, Serialize};

/// One component in `/version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Component {
    pub name: String,
    pub version: String,
    pub details: serde_json::Value,
}

/// The platform name in `/version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Platform {
    pub name: String,
}

/// `GET /version`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Version {
    pub platform: Platform,
    pub components: Vec<Component>,
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub build_time: String,
}

/// `GET /info` (the fields berth fills; Docker's clients tolerate the rest missing).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Info {
    #[serde(rename = "ID")]
    pub id: String,
    pub containers: i64,
    pub containers_running: i64,
    pub containers_paused: i64,
    pub containers_stopped: i64,
    pub images: i64,
    pub driver: String,
    pub driver_status: Vec<[String; 2]>,
    pub memory_limit: bool,
    pub swap_limit: bool,
    pub cpu_cfs_period: bool,
    pub cpu_cfs_quota: bool,
    pub pids_limit: bool,
    pub logging_driver: String,
    pub cgroup_driver: String,
    pub cgroup_version: String,
    pub kernel_version: String,
    pub operating_system: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    pub architecture: String,
    #[serde(rename = "NCPU")]
    pub ncpu: i64,
    pub mem_total: i64,
    pub docker_root_dir: String,
    pub name: String,
    pub labels: Vec<String>,
    pub server_version: String,
    pub default_runtime: String,
    pub runtimes: serde_json::Value,
    pub swarm: serde_json::Value,
    pub security_options: Vec<String>,
    pub warnings: Option<Vec<String>>,
    pub plugins: serde_json::Value,
    pub registry_config: serde_json::Value,
}

/// `GET /system/df` (API 1.24-1.51's shape). A section not asked for (`type`) is `null`, as
/// Docker's nil slices; one asked for is a list, empty when there is nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DiskUsage {
    /// Every image layer once (0 when images were not asked for).
    pub layers_size: i64,
    /// The image list with `Containers` and `SharedSize` filled.
    pub images: Option<Vec<crate::image::Summary>>,
    /// Every container, with `SizeRw` and `SizeRootFs`.
    pub containers: Option<Vec<crate::container::Summary>>,
    /// Every volume, with `UsageData` (`Size`, `RefCount`).
    pub volumes: Option<Vec<serde_json::Value>>,
    /// Build cache records (berth has no builder: always empty when asked for).
    pub build_cache: Option<Vec<serde_json::Value>>,
}
