//! `/containers/{id}/exec` and `/exec/{id}/...` wire types.

use serde::{Deserialize, Serialize};

/// `POST /containers/{id}/exec` body (Docker's `ExecConfig`). Unknown fields are refused:
/// an exec option berth does not know is never silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct ExecCreateRequest {
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// `[height, width]` of the terminal at start.
    pub console_size: Option<[u64; 2]>,
    pub detach_keys: String,
    pub tty: bool,
    pub env: Option<Vec<String>>,
    #[serde(deserialize_with = "crate::container::string_or_vec")]
    pub cmd: Option<Vec<String>>,
    pub privileged: bool,
    pub user: String,
    pub working_dir: String,
    /// Sent by the docker CLI; the daemon decides on detaching at start, as Docker's does.
    pub detach: bool,
    /// The legacy `Container` field (docker-py sends it): the path names the container; the
    /// daemon refuses a body that names another one.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub container: String,
}

/// `POST /exec/{id}/start` body (`ExecStartConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct ExecStartRequest {
    pub detach: bool,
    pub tty: bool,
    pub console_size: Option<[u64; 2]>,
}

/// `ProcessConfig` of an exec inspect.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecProcessConfig {
    pub arguments: Vec<String>,
    pub entrypoint: String,
    pub privileged: bool,
    pub tty: bool,
    pub user: String,
}

/// `GET /exec/{id}/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ExecInspect {
    pub can_remove: bool,
    #[serde(rename = "ContainerID")]
    pub container_id: String,
    pub detach_keys: String,
    /// `null` until the process has exited.
    pub exit_code: Option<i64>,
    #[serde(rename = "ID")]
    pub id: String,
    pub open_stderr: bool,
    pub open_stdin: bool,
    pub open_stdout: bool,
    pub process_config: ExecProcessConfig,
    pub running: bool,
    pub pid: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_the_docker_cli_sends_parses_and_unknown_fields_are_refused() {
        let body = r#"{"User":"","Privileged":false,"Tty":false,"ConsoleSize":[0,0],
            "AttachStdin":false,"AttachStderr":true,"AttachStdout":true,"Detach":false,
            "DetachKeys":"","Env":null,"WorkingDir":"","Cmd":["true"]}"#;
        let r: ExecCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.cmd, Some(vec!["true".to_string()]));
        assert!(r.attach_stdout && !r.attach_stdin);
        let e =
            serde_json::from_str::<ExecCreateRequest>(r#"{"Cmd":["x"],"Nosuch":1}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field `Nosuch`"), "{e}");
        let inspect = serde_json::to_value(ExecInspect::default()).unwrap();
        assert!(inspect["ExitCode"].is_null());
        assert!(inspect.get("ContainerID").is_some() && inspect.get("ID").is_some());
    }
}
