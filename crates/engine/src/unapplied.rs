//! Fail closed: a create request that asks for something berth does not apply is refused,
//! naming the field (and the docker flag), instead of running the container without it.
//!
//! Real clients send every field, mostly at its zero value (the docker CLI sends 62 host
//! config keys; `docs/docker-api-notes.md` §2.3), and newer clients send fields this code has
//! never heard of. So the rule is by value, not by name: a field is fine when berth applies
//! it, or when its value is the zero value (`null`, `false`, `0`, `""`, `[]`, `{}`) or
//! Docker's documented default. Anything else is refused.

use std::sync::LazyLock;

use berth_api::container::{Config, HostConfig, NetworkingConfig};
use serde_json::Value;

use crate::error::{EngineError, Result};

/// Host config fields kept in `HostConfig.extra` that berth applies (any value).
const APPLIED_HOST_FIELDS: &[&str] = &[
    "CpusetMems",
    // The client writes the file itself (`--cidfile`); the daemon only stores the name.
    "ContainerIDFile",
    // The terminal's size at start (spec.rs: the pty's first size).
    "ConsoleSize",
    // `-P` (ports.rs).
    "PublishAllPorts",
    // Written into the container's resolv.conf (start.rs).
    "DnsSearch",
    "DnsOptions",
    // mounts.rs.
    "VolumesFrom",
    "Mounts",
    "Tmpfs",
    "VolumeDriver",
];

/// Container config fields kept in `Config.extra` that berth applies (any value).
const APPLIED_CONFIG_FIELDS: &[&str] = &[];

/// The docker flag behind a field, for the message.
pub(crate) fn flag_of(field: &str) -> Option<&'static str> {
    Some(match field {
        "UsernsMode" => "--userns",
        "CgroupnsMode" => "--cgroupns",
        "DeviceRequests" => "--gpus",
        "PortBindings" => "-p/--publish",
        "PublishAllPorts" => "-P/--publish-all",
        "Links" => "--link",
        "VolumesFrom" => "--volumes-from",
        "VolumeDriver" => "--volume-driver",
        "Mounts" => "--mount",
        "Tmpfs" => "--tmpfs",
        "DnsOptions" => "--dns-option",
        "DnsSearch" => "--dns-search",
        "MemorySwappiness" => "--memory-swappiness",
        "OomKillDisable" => "--oom-kill-disable",
        "KernelMemory" => "--kernel-memory",
        "KernelMemoryTCP" => "--kernel-memory-tcp",
        "BlkioWeight" => "--blkio-weight",
        "BlkioWeightDevice" => "--blkio-weight-device",
        "BlkioDeviceReadBps" => "--device-read-bps",
        "BlkioDeviceWriteBps" => "--device-write-bps",
        "BlkioDeviceReadIOps" => "--device-read-iops",
        "BlkioDeviceWriteIOps" => "--device-write-iops",
        "CpuRealtimePeriod" => "--cpu-rt-period",
        "CpuRealtimeRuntime" => "--cpu-rt-runtime",
        "CgroupParent" => "--cgroup-parent",
        // Validated as Docker does (spec.rs) but not written to a cgroup yet.
        "MemoryReservation" => "--memory-reservation",
        "StorageOpt" => "--storage-opt",
        "Runtime" => "--runtime",
        "Isolation" => "--isolation",
        "Annotations" => "--annotation",
        "MaskedPaths" | "ReadonlyPaths" => "--security-opt systempaths",
        "Healthcheck" => "--health-cmd",
        "Domainname" => "--domainname",
        "MacAddress" => "--mac-address",
        "Volumes" => "-v (anonymous volume)",
        "GroupAdd" => "--group-add",
        _ => return None,
    })
}

fn refuse(section: &str, field: &str, value: &Value) -> EngineError {
    let mut shown = value.to_string();
    if shown.len() > 200 {
        let mut end = 200;
        while !shown.is_char_boundary(end) {
            end -= 1;
        }
        shown.truncate(end);
        shown.push_str("...");
    }
    let name = match flag_of(field) {
        Some(flag) => format!("{flag} ({section}.{field})"),
        None => format!("{section}.{field}"),
    };
    EngineError::Invalid(format!(
        "{name} is not supported by berth yet: refused rather than ignored (value: {shown})"
    ))
}

/// `null`, `false`, `0`, `""`, `[]` or `{}`. A map with keys is not zero, whatever its
/// values: `Tmpfs {"/run": ""}` asks for a mount.
pub(crate) fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// A struct sent with every field at its zero value (an endpoint's settings).
pub(crate) fn is_zero_struct(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.values().all(is_zero),
        other => is_zero(other),
    }
}

/// Docker's defaults that are not zero values.
fn is_documented_default(field: &str, v: &Value, cgroup_v2: bool) -> bool {
    match (field, v) {
        ("MemorySwappiness", Value::Number(n)) => n.as_i64() == Some(-1),
        ("Isolation", Value::String(s)) => s == "default",
        // Docker's default by cgroup version, which is what berth does.
        ("CgroupnsMode", Value::String(s)) => s == if cgroup_v2 { "private" } else { "host" },
        // Docker's "unlimited" spellings of a swap limit or `--oom-score-adj` are typed.
        _ => false,
    }
}

/// A JSON key as Go's `encoding/json` matches it against a field name: case-insensitively,
/// with Unicode's simple folds (`ſ` is `s`, the Kelvin sign is `k`).
fn fold(key: &str) -> String {
    key.chars()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

/// The JSON names of a struct's fields (every one serialized: the optional ones set).
fn field_names<T: serde::Serialize>(full: &T) -> Vec<String> {
    match serde_json::to_value(full) {
        Ok(Value::Object(o)) => o.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

fn host_config_names() -> Vec<String> {
    let mut names = field_names(&HostConfig {
        sysctls: Some(Default::default()),
        ..Default::default()
    });
    names.extend(APPLIED_HOST_FIELDS.iter().map(|f| f.to_string()));
    names
}

fn config_names() -> Vec<String> {
    let mut names = field_names(&Config {
        exposed_ports: Some(Default::default()),
        healthcheck: Some(Value::Bool(true)),
        args_escaped: true,
        network_disabled: true,
        mac_address: Some(String::new()),
        stop_signal: Some(String::new()),
        stop_timeout: Some(0),
        shell: Some(Vec::new()),
        ..Default::default()
    });
    names.extend(["HostConfig", "NetworkingConfig"].map(String::from));
    names.extend(APPLIED_CONFIG_FIELDS.iter().map(|f| f.to_string()));
    names
}

/// Each name with its Go-folded form.
fn folded(names: Vec<String>) -> Vec<(String, String)> {
    names.into_iter().map(|n| (fold(&n), n)).collect()
}

/// A key that Docker (Go) would take as a field berth reads under another spelling
/// (`privileged` beside `Privileged`): Go keeps the last of the two, berth the exact one, so
/// whatever the value, the request means something else to each. Refused; so are two
/// unknown keys that are one name to Go.
fn refuse_other_spellings(
    section: &str,
    known: &[(String, String)],
    extra: &serde_json::Map<String, Value>,
) -> Result<()> {
    let mut seen: Vec<(String, &str)> =
        known.iter().map(|(f, k)| (f.clone(), k.as_str())).collect();
    for key in extra.keys() {
        let folded = fold(key);
        if let Some((_, other)) = seen.iter().find(|(f, k)| *f == folded && k != key) {
            return Err(EngineError::Invalid(format!(
                "{section}.{key} is {section}.{other} spelt differently (Docker matches JSON \
                 keys case-insensitively): refused rather than guessed"
            )));
        }
        seen.push((folded, key));
    }
    Ok(())
}

/// Refuses every field of a create request that berth would not apply.
pub fn refuse_unapplied(
    config: &Config,
    hc: &HostConfig,
    networking: Option<&NetworkingConfig>,
    cgroup_v2: bool,
) -> Result<()> {
    // The names berth reads, folded as Go folds them: fixed, so made once.
    static HOST_NAMES: LazyLock<Vec<(String, String)>> =
        LazyLock::new(|| folded(host_config_names()));
    static CONFIG_NAMES: LazyLock<Vec<(String, String)>> = LazyLock::new(|| folded(config_names()));
    refuse_other_spellings("HostConfig", &HOST_NAMES, &hc.extra)?;
    refuse_other_spellings("Config", &CONFIG_NAMES, &config.extra)?;
    for (field, value) in &hc.extra {
        if APPLIED_HOST_FIELDS.contains(&field.as_str())
            || is_zero(value)
            || is_documented_default(field, value, cgroup_v2)
        {
            continue;
        }
        return Err(refuse("HostConfig", field, value));
    }
    for (field, value) in &config.extra {
        if APPLIED_CONFIG_FIELDS.contains(&field.as_str()) || is_zero(value) {
            continue;
        }
        return Err(refuse("Config", field, value));
    }
    typed_host_fields(hc)?;
    typed_config_fields(config, hc)?;
    // NetworkingConfig.EndpointsConfig is the engine's (network.rs), field by field. Other
    // keys only at a zero value: docker-py puts `{"<network>": null}` there, which Docker
    // ignores (the network is `NetworkMode`'s); anything else would be a setting dropped.
    let mut extra: Vec<(&String, &Value)> = networking
        .map(|n| n.extra.iter().collect())
        .unwrap_or_default();
    extra.sort_by_key(|(k, _)| k.as_str());
    if let Some((key, value)) = extra
        .into_iter()
        .find(|(k, v)| !is_zero_struct(v) || k.eq_ignore_ascii_case("EndpointsConfig"))
    {
        return Err(refuse("NetworkingConfig", key, value));
    }
    Ok(())
}

/// The typed host config fields that berth does not apply (yet).
fn typed_host_fields(hc: &HostConfig) -> Result<()> {
    let defaults_kept = |given: &Option<Vec<String>>, defaults: Vec<&str>| {
        given
            .as_ref()
            .is_none_or(|g| g.iter().map(String::as_str).eq(defaults.iter().copied()))
    };
    if !defaults_kept(&hc.masked_paths, berth_runtime::defaults::masked_paths()) {
        return Err(refuse(
            "HostConfig",
            "MaskedPaths",
            &serde_json::to_value(&hc.masked_paths).unwrap_or_default(),
        ));
    }
    if !defaults_kept(
        &hc.readonly_paths,
        berth_runtime::defaults::readonly_paths(),
    ) {
        return Err(refuse(
            "HostConfig",
            "ReadonlyPaths",
            &serde_json::to_value(&hc.readonly_paths).unwrap_or_default(),
        ));
    }
    for g in hc.group_add.iter().flatten() {
        if g.parse::<u32>().is_err() {
            return Err(EngineError::Invalid(format!(
                "--group-add (HostConfig.GroupAdd) with a group name is not supported by \
                 berth yet: refused rather than ignored (value: {g:?}; numeric gids work)"
            )));
        }
    }
    Ok(())
}

/// The typed container config fields that berth does not apply (yet). Checked on the
/// request, before the image's config is merged in: an image's HEALTHCHECK or VOLUME is the
/// image's, not a request (ARCHITECTURE.md says what berth does with them).
fn typed_config_fields(c: &Config, hc: &HostConfig) -> Result<()> {
    if let Some(h) = &c.healthcheck {
        let disabled = h
            .get("Test")
            .and_then(Value::as_array)
            .is_some_and(|t| t.len() == 1 && t[0] == "NONE");
        if !is_zero(h) && !disabled {
            return Err(refuse("Config", "Healthcheck", h));
        }
    }
    if !c.domainname.is_empty() {
        return Err(refuse(
            "Config",
            "Domainname",
            &Value::from(c.domainname.clone()),
        ));
    }
    // `Volumes` (anonymous volumes) are mounts.rs's.
    let _ = hc;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: Value) -> Result<()> {
        let req: berth_api::container::CreateRequest =
            serde_json::from_value(body).expect("request parses");
        refuse_unapplied(
            &req.config,
            &req.host_config.unwrap_or_default(),
            req.networking_config.as_ref(),
            false,
        )
    }

    /// What the docker CLI 28 sends for `docker run --rm busybox echo hi` (all 62 host
    /// config keys at their defaults).
    fn docker_cli_default() -> Value {
        serde_json::from_str(
            r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":true,
            "AttachStderr":true,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,
            "Cmd":["echo","hi"],"Image":"busybox","Volumes":{},"WorkingDir":"",
            "Entrypoint":null,"OnBuild":null,"Labels":{},
            "HostConfig":{"Binds":null,"ContainerIDFile":"","LogConfig":{"Type":"","Config":{}},
              "NetworkMode":"default","PortBindings":{},"RestartPolicy":{"Name":"no",
              "MaximumRetryCount":0},"AutoRemove":true,"VolumeDriver":"","VolumesFrom":null,
              "ConsoleSize":[30,90],"Annotations":null,"CapAdd":null,"CapDrop":null,
              "CgroupnsMode":"","Dns":[],"DnsOptions":[],"DnsSearch":[],"ExtraHosts":null,
              "GroupAdd":null,"IpcMode":"","Cgroup":"","Links":null,"OomScoreAdj":0,
              "PidMode":"","Privileged":false,"PublishAllPorts":false,"ReadonlyRootfs":false,
              "SecurityOpt":null,"UTSMode":"","UsernsMode":"","ShmSize":0,"Isolation":"",
              "CpuShares":0,"Memory":0,"NanoCpus":0,"CgroupParent":"","BlkioWeight":0,
              "BlkioWeightDevice":[],"BlkioDeviceReadBps":[],"BlkioDeviceWriteBps":[],
              "BlkioDeviceReadIOps":[],"BlkioDeviceWriteIOps":[],"CpuPeriod":0,"CpuQuota":0,
              "CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpusetCpus":"","CpusetMems":"",
              "Devices":[],"DeviceCgroupRules":null,"DeviceRequests":null,
              "MemoryReservation":0,"MemorySwap":0,"MemorySwappiness":null,
              "OomKillDisable":null,"PidsLimit":null,"Ulimits":[],"CpuCount":0,
              "CpuPercent":0,"IOMaximumIOps":0,"IOMaximumBandwidth":0,"MaskedPaths":null,
              "ReadonlyPaths":null},
            "NetworkingConfig":{"EndpointsConfig":{"default":{"IPAMConfig":null,"Links":null,
              "Aliases":null,"MacAddress":"","DriverOpts":null,"GwPriority":0,"NetworkID":"",
              "EndpointID":"","Gateway":"","IPAddress":"","IPPrefixLen":0,"IPv6Gateway":"",
              "GlobalIPv6Address":"","GlobalIPv6PrefixLen":0,"DNSNames":null}}}}"#,
        )
        .expect("valid JSON")
    }

    fn with(path: &[&str], value: Value) -> Value {
        let mut body = docker_cli_default();
        let mut at = &mut body;
        for p in &path[..path.len() - 1] {
            at = at.get_mut(*p).expect("path exists");
        }
        at[path[path.len() - 1]] = value;
        body
    }

    fn refused(path: &[&str], value: Value) -> String {
        match create(with(path, value.clone())) {
            Err(e) => e.to_string(),
            Ok(()) => panic!("{path:?} = {value} was accepted"),
        }
    }

    /// docker-py sends a `Volumes` entry for every bind's destination: those are the binds.
    #[test]
    fn the_mount_fields_pass_to_mounts_rs() {
        let mut body = with(&["Volumes"], json!({"/x/": {}, "/y": {}}));
        body["HostConfig"]["Binds"] = json!(["/src:/x:ro"]);
        body["HostConfig"]["Mounts"] = json!([{"Type": "tmpfs", "Target": "/t"}]);
        body["HostConfig"]["Tmpfs"] = json!({"/run": ""});
        body["HostConfig"]["VolumesFrom"] = json!(["other"]);
        create(body).unwrap();
    }

    #[test]
    fn what_the_docker_cli_sends_by_default_passes() {
        create(docker_cli_default()).unwrap();
        create(with(&["HostConfig", "MemorySwappiness"], json!(-1))).unwrap();
        create(with(&["HostConfig", "CgroupnsMode"], json!("host"))).unwrap();
        create(with(&["HostConfig", "ContainerIDFile"], json!("/tmp/cid"))).unwrap();
        create(with(&["Healthcheck"], json!({"Test": ["NONE"]}))).unwrap();
        create(with(&["HostConfig", "PortBindings"], json!({"80/tcp": []}))).unwrap();
    }

    #[test]
    fn unapplied_fields_are_refused_by_name() {
        for (field, value, flag) in [
            (
                "UsernsMode",
                json!("host"),
                "--userns (HostConfig.UsernsMode)",
            ),
            ("CgroupnsMode", json!("private"), "--cgroupns"),
            ("MemorySwappiness", json!(10), "--memory-swappiness"),
            ("OomKillDisable", json!(true), "--oom-kill-disable"),
            ("CgroupParent", json!("/mine"), "--cgroup-parent"),
            ("MemoryReservation", json!(1048576), "--memory-reservation"),
            ("GroupAdd", json!(["audio"]), "--group-add"),
            ("MaskedPaths", json!([]), "HostConfig.MaskedPaths"),
            (
                "SomeFutureField",
                json!({"x": 1}),
                "HostConfig.SomeFutureField",
            ),
        ] {
            let e = refused(&["HostConfig", field], value);
            assert!(e.contains(flag), "{field}: {e}");
            assert!(e.contains("not supported by berth yet"), "{field}: {e}");
        }
        for (field, value, flag) in [
            (
                "Healthcheck",
                json!({"Test": ["CMD", "true"]}),
                "--health-cmd",
            ),
            ("Domainname", json!("example.org"), "--domainname"),
            ("SomeFutureField", json!(true), "Config.SomeFutureField"),
        ] {
            let e = refused(&[field], value);
            assert!(e.contains(flag), "{field}: {e}");
        }
    }

    /// Go's decoder takes `privileged` (or `Bindſ`) for `Privileged` (`Binds`) and keeps the
    /// last; berth reads the exact key. A second spelling, even at a zero value, is refused:
    /// `{"Privileged":true,"privileged":false}` ran privileged while an authorization proxy
    /// that decodes like Docker saw `false`.
    #[test]
    fn other_spellings_of_a_field_are_refused() {
        for (path, value) in [
            (vec!["HostConfig", "privileged"], json!(false)),
            (vec!["HostConfig", "networkmode"], json!("")),
            (vec!["HostConfig", "Bind\u{17f}"], json!(null)),
            (vec!["HostConfig", "memoryreservation"], json!(0)),
            (vec!["HostConfig", "SYSCTLS"], json!({})),
            (vec!["user"], json!("")),
            (vec!["hostconfig"], json!(null)),
            (vec!["stopsignal"], json!("")),
        ] {
            let e = refused(&path, value);
            assert!(e.contains("spelt differently"), "{path:?}: {e}");
        }
        let mut body = docker_cli_default();
        body["HostConfig"]["Future"] = json!(0);
        body["HostConfig"]["future"] = json!(0);
        let e = create(body).expect_err("two spellings of an unknown field");
        assert!(e.to_string().contains("spelt differently"), "{e}");
    }

    #[test]
    fn nested_fields_in_another_case_are_refused() {
        for body in [
            with(&["HostConfig", "LogConfig"], json!({"type": "none"})),
            with(&["HostConfig", "RestartPolicy"], json!({"name": "always"})),
            with(
                &["HostConfig", "Devices"],
                json!([{"pathOnHost": "/dev/null", "PathInContainer": "/dev/x"}]),
            ),
        ] {
            let parsed: std::result::Result<berth_api::container::CreateRequest, _> =
                serde_json::from_value(body.clone());
            assert!(parsed.is_err(), "accepted: {body}");
        }
    }

    #[test]
    fn other_networking_config_keys_are_taken_at_zero_only() {
        // docker-py's `networks.run(network=...)` body.
        create(with(&["NetworkingConfig"], json!({"sdknet": null}))).expect("docker-py's");
        for bad in [
            json!({"endpointsconfig": {"n": {"Aliases": ["a"]}}}),
            json!({"endpointsconfig": {}}),
            json!({"sdknet": {"driver_opt": {"a": "b"}}}),
        ] {
            let e = create(with(&["NetworkingConfig"], bad.clone()))
                .expect_err(&bad.to_string())
                .to_string();
            assert!(e.contains("NetworkingConfig."), "{bad}: {e}");
        }
    }

    #[test]
    fn long_values_are_cut_in_the_message() {
        let e = refused(
            &["HostConfig", "Annotations"],
            json!({"a": "x".repeat(100_000)}),
        );
        assert!(e.len() < 400, "{}", e.len());
    }
}
