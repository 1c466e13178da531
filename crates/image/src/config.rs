//! Docker's image config JSON (`application/vnd.docker.container.image.v1+json`, a superset
//! of the OCI image config). Our own type because oci-spec drops `Healthcheck`, `OnBuild`,
//! `Shell` and more (reference/crates.md §2). Unknown fields are kept in `extra`; the raw bytes
//! stay in the content store anyway, since the image id is their digest.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

type Extra = serde_json::Map<String, serde_json::Value>;

fn is_false(b: &bool) -> bool {
    !*b
}

/// The image config document.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// `amd64`, `arm64`, ...
    #[serde(default)]
    pub architecture: String,
    /// `linux`
    #[serde(default)]
    pub os: String,
    /// `v8` for arm64/v8
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// RFC 3339 creation time
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// MAINTAINER / --author
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// commit / import message
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// version of the builder
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    /// id of the container that built it (legacy builder)
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    /// the runtime defaults: Cmd, Env, Entrypoint, ...
    #[serde(default)]
    pub config: ContainerConfig,
    /// the build container's config (legacy builder)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<ContainerConfig>,
    /// the layer diff ids
    #[serde(default)]
    pub rootfs: RootFs,
    /// one entry per Dockerfile step, newest last
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// every field not named above
    #[serde(flatten)]
    pub extra: Extra,
}

/// `rootfs`: the uncompressed layer digests, bottom first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// always `layers`
    #[serde(default)]
    pub r#type: String,
    /// `sha256:<hex>` of each uncompressed layer tar
    #[serde(default)]
    pub diff_ids: Vec<String>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            r#type: "layers".to_string(),
            diff_ids: Vec::new(),
        }
    }
}

/// One `history` entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// the step, e.g. `/bin/sh -c #(nop)  CMD ["sh"]`
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// author of the step
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// comment of the step
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// true when the step made no layer
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
    /// every field not named above
    #[serde(flatten)]
    pub extra: Extra,
}

/// The container defaults in an image config, PascalCase as Docker writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct ContainerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stdin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stdout: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_stderr: Option<bool>,
    /// `{"80/tcp": {}}`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_stdin: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_once: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `{"/data": {}}`
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_disabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// every field not named above
    #[serde(flatten)]
    pub extra: Extra,
}

/// `HEALTHCHECK`; durations in nanoseconds as Docker stores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
#[allow(missing_docs)]
pub struct Healthcheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// every field not named above
    #[serde(flatten)]
    pub extra: Extra,
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKER_CONFIG: &str = r##"{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000000000,"StartInterval":5},"Image":"sha256:abc","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":["RUN x"],"Labels":{"a":"b"},"Shell":["/bin/sh","-c"],"MacAddress":"x"},"container":"c1","container_config":{"Cmd":["/bin/sh","-c","#(nop) "]},"created":"2023-05-18T22:34:17.429371307Z","docker_version":"20.10.23","history":[{"created":"2023-05-18T22:34:17Z","created_by":"/bin/sh -c #(nop) ADD file:x in / "},{"created":"2023-05-18T22:34:17Z","created_by":"/bin/sh -c #(nop)  CMD [\"sh\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:baacf561cfff825708763ce7ee4a18293716c533e6ece3bd39009a5fb3c804d2"]},"moby.buildkit.buildinfo.v1":"e30="}"##;

    #[test]
    fn docker_config_keeps_every_field() {
        let c: ImageConfig = serde_json::from_str(DOCKER_CONFIG).unwrap();
        assert_eq!(
            c.config.healthcheck.as_ref().unwrap().start_interval,
            Some(5)
        );
        assert_eq!(
            c.config.on_build.as_deref(),
            Some(&["RUN x".to_string()][..])
        );
        assert_eq!(c.config.extra["MacAddress"], "x");
        assert_eq!(c.extra["moby.buildkit.buildinfo.v1"], "e30=");
        assert!(c.history[1].empty_layer);
        let again: ImageConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(again, c);
    }
}
