//! Container wire types: create request, inspect, list summary, wait.

use std::collections::HashMap;

use serde::{Deserialize, Deserializer, Serialize};

type Extra = serde_json::Map<String, serde_json::Value>;

/// `Cmd`, `Entrypoint` and `Shell` arrive as an array, or (old clients) a single string.
pub(crate) fn string_or_vec<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => None,
        Some(OneOrMany::One(s)) => Some(vec![s]),
        Some(OneOrMany::Many(v)) => Some(v),
    })
}

/// A container's portable configuration (`Config` in create and inspect).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Config {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<HashMap<String, serde_json::Value>>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "string_or_vec")]
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub args_escaped: bool,
    pub image: String,
    pub volumes: Option<HashMap<String, serde_json::Value>>,
    pub working_dir: String,
    #[serde(deserialize_with = "string_or_vec")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub network_disabled: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    pub on_build: Option<Vec<String>>,
    pub labels: Option<HashMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        deserialize_with = "string_or_vec"
    )]
    pub shell: Option<Vec<String>>,
    /// Fields berth does not interpret, kept so that inspect returns them.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `--ulimit name=soft:hard`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// `--restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: i64,
}

/// `--log-driver` / `--log-opt`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: HashMap<String, String>,
}

/// A port binding: `{"HostIp":"","HostPort":"8080"}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
/// Unknown fields (a key in another case: Go matches names case-insensitively) are refused.
#[serde(deny_unknown_fields)]
pub struct PortBinding {
    #[serde(rename = "HostIp", default)]
    pub host_ip: String,
    #[serde(rename = "HostPort", default)]
    pub host_port: String,
}

/// One `--device`: a host device (or a directory of them) made in the container, with the
/// device cgroup permissions (`rwm` letters) it gets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    pub cgroup_permissions: String,
}

/// Host-dependent configuration (`HostConfig`), including resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    pub binds: Option<Vec<String>>,
    pub log_config: LogConfig,
    pub network_mode: String,
    pub port_bindings: Option<HashMap<String, Option<Vec<PortBinding>>>>,
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub cap_add: Option<Vec<String>>,
    pub cap_drop: Option<Vec<String>>,
    pub dns: Option<Vec<String>>,
    pub extra_hosts: Option<Vec<String>>,
    pub group_add: Option<Vec<String>>,
    pub oom_score_adj: i64,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    pub security_opt: Option<Vec<String>>,
    pub shm_size: i64,
    pub masked_paths: Option<Vec<String>>,
    pub readonly_paths: Option<Vec<String>>,
    pub init: Option<bool>,
    pub memory: i64,
    pub memory_swap: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub pids_limit: Option<i64>,
    pub ulimits: Option<Vec<Ulimit>>,
    /// `--pid`: `""` (private), `host` or `container:<name|id>`.
    pub pid_mode: String,
    /// `--ipc`: `""`/`private`, `shareable`, `none`, `host` or `container:<name|id>`.
    pub ipc_mode: String,
    /// `--uts`: `""` (private) or `host`.
    #[serde(rename = "UTSMode")]
    pub uts_mode: String,
    /// `--sysctl`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysctls: Option<HashMap<String, String>>,
    /// `--device`.
    pub devices: Option<Vec<DeviceMapping>>,
    /// `--device-cgroup-rule`.
    pub device_cgroup_rules: Option<Vec<String>>,
    /// Fields berth does not interpret, kept so that inspect returns them.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `NetworkingConfig` of a create request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<HashMap<String, serde_json::Value>>,
    /// Other keys: docker-py sends `{"<network>": null}` here (Docker ignores it); the
    /// engine takes zero values only and refuses the rest by name.
    #[serde(flatten)]
    pub extra: HashMap<String, serde_json::Value>,
}

/// `POST /containers/create`: a [`Config`] with `HostConfig` and `NetworkingConfig` beside
/// its fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CreateRequest {
    #[serde(flatten)]
    pub config: Config,
    #[serde(rename = "HostConfig", default)]
    pub host_config: Option<HostConfig>,
    #[serde(rename = "NetworkingConfig", default)]
    pub networking_config: Option<NetworkingConfig>,
    /// Not on the wire: set for a client older than API 1.44, whose read-only binds are
    /// read-only on their own mount only (Docker keeps that behaviour for them).
    #[serde(skip)]
    pub readonly_binds_non_recursive: bool,
}

/// `201 {"Id": "...", "Warnings": []}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateResponse {
    pub id: String,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// `State` in container inspect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct State {
    pub status: String,
    pub running: bool,
    pub paused: bool,
    pub restarting: bool,
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    pub dead: bool,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
}

/// One entry of `Mounts` in inspect and list.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountPoint {
    #[serde(rename = "Type")]
    pub kind: String,
    pub name: Option<String>,
    pub source: String,
    pub destination: String,
    pub driver: Option<String>,
    pub mode: String,
    #[serde(rename = "RW")]
    pub rw: bool,
    pub propagation: String,
}

/// `NetworkSettings` in inspect (berth keeps the legacy top-level fields Docker still sends).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkSettings {
    pub bridge: String,
    #[serde(rename = "SandboxID")]
    pub sandbox_id: String,
    pub sandbox_key: String,
    pub ports: HashMap<String, Option<Vec<PortBinding>>>,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: i64,
    pub mac_address: String,
    pub networks: HashMap<String, serde_json::Value>,
}

/// `GraphDriver` in inspect.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GraphDriver {
    pub name: String,
    pub data: HashMap<String, String>,
}

/// `GET /containers/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Inspect {
    pub id: String,
    pub created: String,
    pub path: String,
    pub args: Vec<String>,
    pub state: State,
    pub image: String,
    pub resolv_conf_path: String,
    pub hostname_path: String,
    pub hosts_path: String,
    pub log_path: String,
    pub name: String,
    pub restart_count: i64,
    pub driver: String,
    pub platform: String,
    pub mount_label: String,
    pub process_label: String,
    pub app_armor_profile: String,
    #[serde(rename = "ExecIDs")]
    pub exec_ids: Option<Vec<String>>,
    pub host_config: HostConfig,
    pub graph_driver: GraphDriver,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    pub mounts: Vec<MountPoint>,
    pub config: Config,
    pub network_settings: NetworkSettings,
}

/// A published or exposed port in the list summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(rename = "PrivatePort")]
    pub private_port: u16,
    #[serde(rename = "PublicPort", skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub kind: String,
}

/// `HostConfig` as shown in the list summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryHostConfig {
    pub network_mode: String,
}

/// `NetworkSettings` as shown in the list summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryNetworkSettings {
    pub networks: HashMap<String, serde_json::Value>,
}

/// One element of `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Summary {
    pub id: String,
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    pub created: i64,
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_rw: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_root_fs: Option<i64>,
    pub labels: HashMap<String, String>,
    pub state: String,
    pub status: String,
    pub host_config: SummaryHostConfig,
    pub network_settings: SummaryNetworkSettings,
    pub mounts: Vec<MountPoint>,
}

/// The error member of a wait response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitError {
    #[serde(rename = "Message")]
    pub message: String,
}

/// `POST /containers/{id}/wait` body: `{"StatusCode":0,"Error":null}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WaitResponse {
    #[serde(rename = "StatusCode")]
    pub status_code: i64,
    #[serde(rename = "Error", default)]
    pub error: Option<WaitError>,
}

/// `GET /containers/{id}/top`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TopResponse {
    pub titles: Vec<String>,
    pub processes: Vec<Vec<String>>,
}

/// `POST /containers/prune`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PruneResponse {
    pub containers_deleted: Option<Vec<String>>,
    pub space_reclaimed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_from_docker_cli_parses_and_keeps_unknown_fields() {
        let body = r#"{"Hostname":"","User":"","AttachStdout":true,"Tty":false,"Env":null,
            "Cmd":["echo","hi"],"Image":"busybox","Volumes":{},"WorkingDir":"","Entrypoint":null,
            "OnBuild":null,"Labels":{},"FutureField":7,
            "HostConfig":{"Binds":null,"NetworkMode":"default","AutoRemove":true,"ConsoleSize":[0,0],
              "Memory":0,"PidsLimit":0,"Ulimits":[],"GwPriority":0},
            "NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null}}}}"#;
        let req: CreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.config.cmd, Some(vec!["echo".into(), "hi".into()]));
        assert_eq!(req.config.image, "busybox");
        assert_eq!(req.config.extra["FutureField"], 7);
        let hc = req.host_config.unwrap();
        assert!(hc.auto_remove);
        assert_eq!(hc.extra["ConsoleSize"], serde_json::json!([0, 0]));
        let back = serde_json::to_value(&hc).unwrap();
        assert_eq!(back["NetworkMode"], "default");
        assert_eq!(back["ConsoleSize"], serde_json::json!([0, 0]));
    }

    #[test]
    fn entrypoint_may_be_a_string() {
        let c: Config = serde_json::from_str(r#"{"Entrypoint":"/bin/sh"}"#).unwrap();
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".to_string()]));
    }

    #[test]
    fn wait_response_has_dockers_shape() {
        let w = WaitResponse {
            status_code: 3,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&w).unwrap(),
            r#"{"StatusCode":3,"Error":null}"#
        );
    }
}

/// One line of `GET /containers/{id}/changes` (`FilesystemChange`): `Kind` 0 modified, 1
/// added, 2 deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct FilesystemChange {
    pub path: String,
    pub kind: u8,
}

/// `POST /commit` answers `201 {"Id": "sha256:..."}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdResponse {
    #[serde(rename = "Id")]
    pub id: String,
}

/// `POST /containers/{id}/update`: the resources (Docker's `Resources`) and the restart
/// policy. The fields berth applies are typed; every other one the client sends (the docker
/// CLI sends the whole `Resources` struct, mostly zeros) is kept in `extra`, for the engine
/// to refuse unless it holds its zero value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UpdateConfig {
    /// `--memory`, bytes; 0: unchanged.
    pub memory: i64,
    /// `--memory-swap`, memory plus swap, bytes; -1 unlimited; 0: unchanged.
    pub memory_swap: i64,
    /// `--cpus`, in billionths of a CPU; 0: unchanged.
    pub nano_cpus: i64,
    /// `--cpu-shares`; 0: unchanged.
    pub cpu_shares: i64,
    /// `--cpu-period`, microseconds; 0: unchanged.
    pub cpu_period: i64,
    /// `--cpu-quota`, microseconds; 0: unchanged.
    pub cpu_quota: i64,
    /// `--cpuset-cpus`; empty: unchanged.
    pub cpuset_cpus: String,
    /// `--cpuset-mems`; empty: unchanged.
    pub cpuset_mems: String,
    /// `--pids-limit`; 0 or less: unlimited; absent: unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// `--restart`; an empty name leaves the policy alone.
    pub restart_policy: RestartPolicy,
    /// The other fields of Docker's `Resources`.
    #[serde(flatten)]
    pub extra: Extra,
}

/// The answer to an update: Docker writes `{"Warnings":null}` when there are none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateResponse {
    pub warnings: Option<Vec<String>>,
}
