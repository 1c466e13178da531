//! A container's persisted record: `config.json` (what was asked) and `state.json` (what
//! happened), both under `<root>/containers/<id>/`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use berth_api::container::{Config, HostConfig};

/// The lifecycle status; the API's booleans are derived from it at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Created, never started.
    #[default]
    Created,
    /// The init process runs.
    Running,
    /// Frozen by `pause`.
    Paused,
    /// Being restarted by its restart policy.
    Restarting,
    /// Being removed.
    Removing,
    /// The init process has exited.
    Exited,
    /// Removal failed half-way.
    Dead,
}

impl Status {
    /// Docker's `State.Status` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a process is alive (running or frozen).
    pub fn is_active(self) -> bool {
        matches!(self, Status::Running | Status::Paused | Status::Restarting)
    }

    /// `start` is allowed.
    pub fn can_start(self) -> bool {
        matches!(self, Status::Created | Status::Exited)
    }

    /// `rm` without force is allowed.
    pub fn can_remove(self) -> bool {
        !self.is_active()
    }
}

/// What was asked at create time (`config.json`); changes only by `rename`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Without the leading `/`.
    pub name: String,
    pub created: DateTime<Utc>,
    /// The image as the client named it.
    pub image_ref: String,
    /// `sha256:<hex>`.
    pub image_id: String,
    /// Merged with the image's config.
    pub config: Config,
    pub host_config: HostConfig,
    /// The executable and its arguments (entrypoint + cmd).
    pub path: String,
    pub args: Vec<String>,
    /// The rootfs mounts the image store prepared for this container.
    pub rootfs: Vec<berth_runtime::Mount>,
    /// The networks it is on, by name (`--network`, `network connect`; changed by
    /// `network connect` and `disconnect` too).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub endpoints: std::collections::BTreeMap<String, crate::network::EndpointConfig>,
    /// What it mounts, as its create planned it (mounts.rs); `None` in a record from before
    /// berth had volumes, whose `-v` binds are read from `host_config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Vec<berth_volume::mountspec::MountSpec>>,
}

/// What happened (`state.json`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerState {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub restart_count: i64,
    /// Set by stop/kill so that a restart policy does not bring the container back.
    #[serde(default)]
    pub has_been_manually_stopped: bool,
    /// Its place on each of its networks while it runs, by network name (released at the
    /// exit).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub networks: std::collections::BTreeMap<String, crate::network::EndpointState>,
}

/// Docker's zero time, shown for "never".
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// RFC 3339 with nanoseconds, as Docker prints times.
pub fn format_time(t: Option<DateTime<Utc>>) -> String {
    match t {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => ZERO_TIME.to_string(),
    }
}
