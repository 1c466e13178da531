//! `run` and `create` flags, and their pure conversion to a create request.

use std::collections::HashMap;

use berth_api::container::{
    Config, CreateRequest, DeviceMapping, HostConfig, LogConfig, NetworkingConfig, PortBinding,
    RestartPolicy, Ulimit,
};
use clap::{ArgAction, Args};

use crate::network::endpoint::{
    endpoints_config, is_valid_mac, parse_network_flag, validate_link, EndpointFlags,
    NetworkAttachment,
};

/// Flags shared by `run` and `create` (docker's names and short forms).
#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// Run in the background and print the container ID
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, allow_hyphen_values = true)]
    pub entrypoint: Option<String>,
    /// Set meta data on a container
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Read in a line delimited file of labels
    #[arg(long = "label-file")]
    pub label_file: Vec<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Container NIS domain name
    #[arg(long)]
    pub domainname: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Ulimit options
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    pub shm_size: Option<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub read_only: bool,
    /// Connect a container to a network (repeatable; `name=NET,alias=A,ip=IP,...` too)
    #[arg(long = "network", alias = "net", value_parser = parse_network_flag)]
    pub network: Vec<NetworkAttachment>,
    /// Add network-scoped alias for the container
    #[arg(long = "network-alias", alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, default_value = "", hide_default_value = true)]
    pub ip: String,
    /// IPv6 address (e.g., 2001:db8::33)
    #[arg(long, default_value = "", hide_default_value = true)]
    pub ip6: String,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long = "mac-address", default_value = "", hide_default_value = true)]
    pub mac_address: String,
    /// Container IPv4/IPv6 link-local addresses
    #[arg(long = "link-local-ip")]
    pub link_local_ip: Vec<String>,
    /// Add link to another container
    #[arg(long, value_parser = validate_link)]
    pub link: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    pub expose: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount", value_parser = crate::mount::mount_flag)]
    pub mount: Vec<crate::mount::Mount>,
    /// Mount a tmpfs directory
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from")]
    pub volumes_from: Vec<String>,
    /// Optional volume driver for the container
    #[arg(long = "volume-driver", default_value = "", hide_default_value = true)]
    pub volume_driver: String,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Set custom DNS servers
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long = "dns-search", value_parser = validate_dns_search)]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long = "dns-option", alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long = "add-host")]
    pub add_host: Vec<String>,
    /// Add additional groups to join
    #[arg(long = "group-add")]
    pub group_add: Vec<String>,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout", allow_hyphen_values = true)]
    pub stop_timeout: Option<i64>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub init: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// PID namespace to use
    #[arg(long)]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long)]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long)]
    pub uts: Option<String>,
    /// Sysctl options
    #[arg(long)]
    pub sysctl: Vec<String>,
    /// Add a host device to the container
    #[arg(long)]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long = "device-cgroup-rule")]
    pub device_cgroup_rule: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "false")]
    pub privileged: bool,
    /// Logging driver for the container
    #[arg(long = "log-driver")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long = "log-opt")]
    pub log_opt: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long = "sig-proxy", num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set, default_value = "true")]
    pub sig_proxy: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Suppress the pull output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Print usage
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// IMAGE [COMMAND] [ARG...]: one trailing list so that `run busybox --help` and
    /// `run busybox -- ls` reach the container as docker passes them.
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 1..,
        required = true
    )]
    pub image_and_command: Vec<String>,
}

/// The flag error docker prints for a bad value.
fn invalid(value: &str, flag: &str, why: impl std::fmt::Display) -> String {
    format!("invalid argument {value:?} for \"{flag}\" flag: {why}")
}

/// Converts `run`/`create` flags into the container name and the create request body.
/// Environment lookups (`-e NAME`, `--env-file` lines without `=`) read this process's
/// environment, as docker's do.
pub fn create_request(args: &RunArgs) -> Result<(Option<String>, CreateRequest), String> {
    let (image, command) = args
        .image_and_command
        .split_first()
        .ok_or_else(|| "\"run\" requires at least 1 argument.".to_string())?;
    // The trailing list takes hyphen values so the command keeps its flags; one before the
    // image is a flag clap did not know, which docker reports as such.
    if let Some(flag) = image.strip_prefix("--") {
        let name = flag.split('=').next().unwrap_or(flag);
        return Err(format!("unknown flag: --{name}"));
    }
    if let Some(c) = image.strip_prefix('-').and_then(|f| f.chars().next()) {
        return Err(format!("unknown shorthand flag: '{c}' in {image}"));
    }

    // docker checks the MAC address first of all.
    if !args.mac_address.is_empty() && !is_valid_mac(args.mac_address.trim()) {
        return Err(format!("{} is not a valid mac address", args.mac_address));
    }

    let mut env = Vec::new();
    for path in &args.env_file {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("open {path}: {}", io_reason(&e)))?;
        env.extend(parse_env_file(&text, |k| std::env::var(k).ok())?);
    }
    for e in &args.env {
        env.push(
            parse_env(e, |k| std::env::var(k).ok()).map_err(|why| invalid(e, "-e, --env", why))?,
        );
    }

    let mut labels = HashMap::new();
    for path in &args.label_file {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("open {path}: {}", io_reason(&e)))?;
        for line in text.lines() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            insert_kv(&mut labels, line);
        }
    }
    for l in &args.label {
        insert_kv(&mut labels, l);
    }

    let memory = match &args.memory {
        Some(m) => crate::human::ram_in_bytes(m).map_err(|e| invalid(m, "-m, --memory", e))?,
        None => 0,
    };
    let memory_swap = match args.memory_swap.as_deref() {
        Some("-1") => -1,
        Some(m) => crate::human::ram_in_bytes(m).map_err(|e| invalid(m, "--memory-swap", e))?,
        None => 0,
    };
    let shm_size = match &args.shm_size {
        Some(m) => crate::human::ram_in_bytes(m).map_err(|e| invalid(m, "--shm-size", e))?,
        None => 0,
    };
    let nano_cpus = match &args.cpus {
        Some(c) => parse_nano_cpus(c).map_err(|e| invalid(c, "--cpus", e))?,
        None => 0,
    };
    let mut ulimits = Vec::new();
    for u in &args.ulimit {
        ulimits.push(parse_ulimit(u).map_err(|e| invalid(u, "--ulimit", e))?);
    }
    let mut sysctls = HashMap::new();
    for kv in &args.sysctl {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| invalid(kv, "--sysctl", format!("sysctl '{kv}' is not allowed")))?;
        sysctls.insert(k.to_string(), v.to_string());
    }
    let mut devices = Vec::new();
    for d in &args.device {
        devices.push(parse_device(d).map_err(|e| invalid(d, "--device", e))?);
    }
    let mut log_opts = HashMap::new();
    for o in &args.log_opt {
        let (k, v) = o
            .split_once('=')
            .ok_or_else(|| invalid(o, "--log-opt", "invalid key value pair format"))?;
        log_opts.insert(k.to_string(), v.to_string());
    }
    let restart_policy = match &args.restart {
        Some(r) => parse_restart(r)?,
        None => RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        },
    };
    if args.rm && !matches!(restart_policy.name.as_str(), "" | "no") {
        return Err("conflicting options: cannot specify both --restart and --rm".into());
    }

    let mut exposed: HashMap<String, serde_json::Value> = HashMap::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for p in &args.publish {
        for (port, binding) in parse_publish(p).map_err(|e| invalid(p, "-p, --publish", e))? {
            exposed.insert(port.clone(), serde_json::json!({}));
            bindings
                .entry(port)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(binding);
        }
    }
    for e in &args.expose {
        let (range, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        let (start, end) = parse_range(range).map_err(|why| invalid(e, "--expose", why))?;
        for port in start..=end {
            exposed.insert(format!("{port}/{proto}"), serde_json::json!({}));
        }
    }

    // docker 28 files each distinct `-v` value by the compose loader's reading: with a
    // source it is a bind (a `.`-relative host path made absolute), else an anonymous volume.
    let mut binds: Vec<String> = Vec::new();
    let mut volumes = HashMap::new();
    for v in &args.volume {
        match crate::mount::classify_volume(v)? {
            Some(bind) => {
                if !binds.contains(&bind) {
                    binds.push(bind);
                }
            }
            None => {
                volumes.insert(v.clone(), serde_json::json!({}));
            }
        }
    }
    // `--tmpfs PATH[:OPTIONS]`, split at the first ':' (a later one for a path wins).
    let tmpfs: std::collections::BTreeMap<&str, &str> = args
        .tmpfs
        .iter()
        .map(|t| t.split_once(':').unwrap_or((t, "")))
        .collect();

    // docker: `--entrypoint ""` sends [""] (reset the image's), unset sends null.
    let entrypoint = args.entrypoint.as_ref().map(|e| vec![e.clone()]);
    let attach_out = !args.detach;
    let (network_mode, endpoints) = endpoints_config(
        &args.network,
        &EndpointFlags {
            aliases: args.network_alias.clone(),
            links: args.link.clone(),
            ipv4_address: args.ip.clone(),
            ipv6_address: args.ip6.clone(),
            mac_address: args.mac_address.clone(),
            link_local_ips: args.link_local_ip.clone(),
        },
    )?;

    let config = Config {
        hostname: args.hostname.clone().unwrap_or_default(),
        domainname: args.domainname.clone().unwrap_or_default(),
        user: args.user.clone().unwrap_or_default(),
        attach_stdin: args.interactive && !args.detach,
        attach_stdout: attach_out,
        attach_stderr: attach_out,
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: args.tty,
        open_stdin: args.interactive,
        stdin_once: args.interactive && !args.detach,
        env: (!env.is_empty()).then_some(env),
        cmd: (!command.is_empty()).then(|| command.to_vec()),
        image: image.clone(),
        volumes: Some(volumes),
        working_dir: args.workdir.clone().unwrap_or_default(),
        entrypoint,
        labels: Some(labels),
        stop_signal: args.stop_signal.clone(),
        stop_timeout: args.stop_timeout,
        ..Default::default()
    };
    let some_vec = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let mut host_config = HostConfig {
        binds: some_vec(&binds),
        log_config: LogConfig {
            kind: args.log_driver.clone().unwrap_or_default(),
            config: log_opts,
        },
        network_mode,
        port_bindings: Some(bindings),
        restart_policy,
        auto_remove: args.rm,
        cap_add: some_vec(&args.cap_add),
        cap_drop: some_vec(&args.cap_drop),
        dns: Some(args.dns.clone()),
        extra_hosts: some_vec(&args.add_host),
        group_add: some_vec(&args.group_add),
        privileged: args.privileged,
        readonly_rootfs: args.read_only,
        security_opt: some_vec(&args.security_opt),
        shm_size,
        init: args.init.then_some(true),
        memory,
        memory_swap,
        nano_cpus,
        cpu_shares: args.cpu_shares.unwrap_or(0),
        cpuset_cpus: args.cpuset_cpus.clone().unwrap_or_default(),
        pids_limit: args.pids_limit,
        ulimits: Some(ulimits),
        pid_mode: args.pid.clone().unwrap_or_default(),
        ipc_mode: args.ipc.clone().unwrap_or_default(),
        uts_mode: args.uts.clone().unwrap_or_default(),
        sysctls: (!sysctls.is_empty()).then_some(sysctls),
        devices: Some(devices),
        device_cgroup_rules: some_vec(&args.device_cgroup_rule),
        ..Default::default()
    };
    if args.publish_all {
        host_config
            .extra
            .insert("PublishAllPorts".into(), serde_json::Value::Bool(true));
    }
    // docker sends both lists always (`[]` when unset), and the links only when given
    // (with a user-defined network they are in its endpoint too).
    host_config
        .extra
        .insert("DnsSearch".into(), serde_json::json!(args.dns_search));
    host_config
        .extra
        .insert("DnsOptions".into(), serde_json::json!(args.dns_option));
    if !args.link.is_empty() {
        host_config
            .extra
            .insert("Links".into(), serde_json::json!(args.link));
    }
    // docker sends these two always (null and "" when unset), the tmpfs and mounts only
    // when given.
    host_config
        .extra
        .insert("VolumeDriver".into(), serde_json::json!(args.volume_driver));
    host_config.extra.insert(
        "VolumesFrom".into(),
        serde_json::json!(some_vec(&args.volumes_from)),
    );
    if !tmpfs.is_empty() {
        host_config
            .extra
            .insert("Tmpfs".into(), serde_json::json!(tmpfs));
    }
    if !args.mount.is_empty() {
        host_config
            .extra
            .insert("Mounts".into(), serde_json::json!(args.mount));
    }
    Ok((
        args.name.clone(),
        CreateRequest {
            config,
            host_config: Some(host_config),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(endpoints.into_iter().collect()),
                extra: Default::default(),
            }),
            readonly_binds_non_recursive: false,
        },
    ))
}

/// docker's `ValidateDNSSearch`: `.` (no search domain), or a domain name, returned without
/// its trailing dot. Its pattern is kept as docker's, quirks included: labels of letters,
/// digits and inner hyphens, with up to two `:` before the first label and one on either
/// side of each dot; at least one letter; under 255 characters.
pub fn validate_dns_search(value: &str) -> Result<String, String> {
    let value = value.trim_matches(' ');
    if value == "." {
        return Ok(value.to_string());
    }
    let bad = || format!("{value} is not a valid domain");
    if !value.bytes().any(|c| c.is_ascii_alphabetic()) {
        return Err(bad());
    }
    let core = value.trim_end_matches(['\t', '\n', '\x0c', '\r', ' ']);
    let core = core.strip_suffix('.').unwrap_or(core);
    let label = |l: &str| {
        let b = l.as_bytes();
        !b.is_empty()
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    };
    let parts: Vec<&str> = core.split('.').collect();
    let last = parts.len() - 1;
    let valid = parts.iter().enumerate().all(|(i, part)| {
        let leading = if i == 0 { 2 } else { 1 };
        let mut p = *part;
        for _ in 0..leading {
            p = p.strip_prefix(':').unwrap_or(p);
        }
        if i < last {
            p = p.strip_suffix(':').unwrap_or(p);
        }
        label(p)
    });
    if !valid || core.len() >= 255 {
        return Err(bad());
    }
    Ok(core.to_string())
}

/// docker/cli's `parseDevice`: `host[:container][:permissions]`; permissions are letters of
/// `rwm` (default `rwm`), and may stand second; the container path defaults to the host's.
fn parse_device(spec: &str) -> Result<DeviceMapping, String> {
    let valid_mode =
        |m: &str| !m.is_empty() && m.len() <= 3 && m.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let parts: Vec<&str> = spec.splitn(4, ':').collect();
    let (src, mut dst, mut permissions) = (parts[0], "", "rwm");
    match parts.len() {
        1 => {}
        2 | 3 => {
            if parts.len() == 3 {
                if !valid_mode(parts[2]) {
                    return Err(format!("invalid device mode: {}", parts[2]));
                }
                permissions = parts[2];
            }
            if valid_mode(parts[1]) {
                permissions = parts[1];
            } else {
                dst = parts[1];
            }
        }
        _ => return Err(format!("invalid device specification: {spec}")),
    }
    if dst.is_empty() {
        dst = src;
    }
    for path in [src, dst] {
        if !path.starts_with('/') {
            return Err(format!("bad format for path: {path}"));
        }
    }
    Ok(DeviceMapping {
        path_on_host: src.to_string(),
        path_in_container: dst.to_string(),
        cgroup_permissions: permissions.to_string(),
    })
}

use crate::image::io_reason;

/// `KEY=VALUE` into the map; `KEY` alone maps to the empty string (docker's labels).
fn insert_kv(map: &mut HashMap<String, String>, kv: &str) {
    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
    map.insert(k.to_string(), v.to_string());
}

/// docker's `ValidateEnv`: `K=V` as is; `K` alone takes the value from this environment
/// when set, and is passed bare otherwise.
pub fn parse_env(value: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let (k, _) = value.split_once('=').unwrap_or((value, ""));
    if k.is_empty() {
        return Err(format!("invalid environment variable: {value}"));
    }
    if value.contains('=') {
        return Ok(value.to_string());
    }
    Ok(match lookup(k) {
        Some(v) => format!("{k}={v}"),
        None => value.to_string(),
    })
}

/// docker's `ParseEnvFile`: one variable per line; blank lines and `#` comments skipped;
/// leading whitespace trimmed; the value kept verbatim (quotes included); a name without
/// `=` takes its value from the environment and is dropped when unset.
pub fn parse_env_file(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for raw in text.lines() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, value) = match line.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (line, None),
        };
        let name = name.trim_start();
        if name.is_empty() {
            return Err(format!("no variable name on line '{line}'"));
        }
        if name.contains(char::is_whitespace) {
            return Err(format!("variable '{name}' contains whitespaces"));
        }
        match value {
            Some(v) => out.push(format!("{name}={v}")),
            None => {
                if let Some(v) = lookup(name) {
                    out.push(format!("{name}={v}"));
                }
            }
        }
    }
    Ok(out)
}

/// `--cpus 1.5` -> 1_500_000_000 nano CPUs (exact decimal arithmetic, as docker's big.Rat).
pub fn parse_nano_cpus(s: &str) -> Result<i64, String> {
    let not_rational = || format!("failed to parse {s} as a rational number");
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if (int.is_empty() && frac.is_empty())
        || !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
    {
        return Err(not_rational());
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > 9 {
        return Err("value is too precise".into());
    }
    let int: i64 = if int.is_empty() {
        0
    } else {
        int.parse().map_err(|_| not_rational())?
    };
    let frac_nanos: i64 = format!("{frac:0<9}").parse().map_err(|_| not_rational())?;
    int.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nanos))
        .ok_or_else(not_rational)
}

const ULIMIT_NAMES: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// go-units `ParseUlimit`: `name=soft[:hard]`; one value sets both.
pub fn parse_ulimit(s: &str) -> Result<Ulimit, String> {
    let (name, limits) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    if !ULIMIT_NAMES.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let (soft, hard) = match limits.split_once(':') {
        Some((s, h)) => (s, h),
        None => (limits, limits),
    };
    let parse = |v: &str| -> Result<i64, String> {
        v.parse::<i64>()
            .map_err(|_| format!("invalid ulimit argument: {s}"))
    };
    let (soft, hard) = (parse(soft)?, parse(hard)?);
    if soft > hard {
        return Err(format!(
            "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        ));
    }
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// `--restart no|always|unless-stopped|on-failure[:N]`, parsed as the docker CLI does: the
/// format here, the name and count by the daemon (its messages name what is wrong).
pub fn parse_restart(s: &str) -> Result<RestartPolicy, String> {
    let (name, count) = s.split_once(':').unwrap_or((s, ""));
    if name.is_empty() && s.contains(':') {
        return Err("invalid restart policy format: no policy provided before colon".into());
    }
    let maximum_retry_count = if count.is_empty() {
        0
    } else {
        count.parse::<i64>().map_err(|_| {
            "invalid restart policy format: maximum retry count must be an integer".to_string()
        })?
    };
    Ok(RestartPolicy {
        name: name.to_string(),
        maximum_retry_count,
    })
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("invalid port range: {s}");
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok((a, b))
}

/// `-p [ip:][hostPort:]containerPort[/proto]`, ranges allowed on both sides.
pub fn parse_publish(s: &str) -> Result<Vec<(String, PortBinding)>, String> {
    let (spec, proto) = match s.rsplit_once('/') {
        Some((spec, proto)) => (spec, proto),
        None => (s, "tcp"),
    };
    if !matches!(proto, "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    // An IPv6 host address comes in brackets: [::1]:8080:80.
    let (ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once("]:")
            .ok_or_else(|| format!("invalid IP address: {spec}"))?;
        (ip.to_string(), rest.to_string())
    } else {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 | 2 => (String::new(), spec.to_string()),
            3 => (parts[0].to_string(), format!("{}:{}", parts[1], parts[2])),
            _ => return Err(format!("invalid port format: {s}")),
        }
    };
    let (host, container) = match rest.split_once(':') {
        Some((h, c)) => (h.to_string(), c.to_string()),
        None => (String::new(), rest.clone()),
    };
    let (cs, ce) = parse_range(&container)?;
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_range(&host)?)
    };
    let count = ce - cs;
    let mut out = Vec::new();
    for i in 0..=count {
        let host_port = match host_range {
            None => String::new(),
            // One host port for a range of container ports would collide; docker takes a
            // host range of the same length, or a single host port for a single port.
            Some((hs, he)) if he - hs == count => (hs + i).to_string(),
            Some((hs, he)) if count == 0 => {
                if hs == he {
                    hs.to_string()
                } else {
                    format!("{hs}-{he}")
                }
            }
            Some(_) => {
                return Err(format!(
                    "invalid ranges specified for container and host Ports: {container} and {host}"
                ))
            }
        };
        out.push((
            format!("{}/{proto}", cs + i),
            PortBinding {
                host_ip: ip.clone(),
                host_port,
            },
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(disable_help_flag = true)]
    struct Wrap {
        #[command(flatten)]
        run: RunArgs,
    }

    fn parse(args: &[&str]) -> RunArgs {
        let mut v = vec!["run"];
        v.extend_from_slice(args);
        Wrap::try_parse_from(v).unwrap().run
    }

    fn request(args: &[&str]) -> CreateRequest {
        create_request(&parse(args)).unwrap().1
    }

    #[test]
    fn isolation_flags_reach_the_host_config() {
        let r = request(&[
            "--pid",
            "host",
            "--ipc",
            "container:db",
            "--uts",
            "host",
            "--sysctl",
            "net.ipv4.ip_forward=1",
            "--device",
            "/dev/fuse",
            "--device",
            "/dev/sda:/dev/xvda:r",
            "--device",
            "/dev/null:rw",
            "--device-cgroup-rule",
            "c 1:3 mr",
            "busybox",
        ]);
        let hc = r.host_config.unwrap();
        assert_eq!(
            (
                hc.pid_mode.as_str(),
                hc.ipc_mode.as_str(),
                hc.uts_mode.as_str()
            ),
            ("host", "container:db", "host")
        );
        assert_eq!(hc.sysctls.unwrap()["net.ipv4.ip_forward"], "1");
        let d = |h: &str, c: &str, p: &str| DeviceMapping {
            path_on_host: h.into(),
            path_in_container: c.into(),
            cgroup_permissions: p.into(),
        };
        assert_eq!(
            hc.devices.unwrap(),
            [
                d("/dev/fuse", "/dev/fuse", "rwm"),
                d("/dev/sda", "/dev/xvda", "r"),
                d("/dev/null", "/dev/null", "rw")
            ]
        );
        assert_eq!(hc.device_cgroup_rules.unwrap(), ["c 1:3 mr"]);
        for (bad, why) in [
            ("/dev/sda:/dev/xvda:rx", "invalid device mode: rx"),
            ("dev/sda", "bad format for path: dev/sda"),
            ("/a:/b:r:x", "invalid device specification: /a:/b:r:x"),
        ] {
            let err = create_request(&parse(&["--device", bad, "busybox"])).unwrap_err();
            assert!(err.ends_with(why), "{err}");
        }
        let err = create_request(&parse(&["--sysctl", "net.x", "busybox"])).unwrap_err();
        assert!(err.ends_with("sysctl 'net.x' is not allowed"), "{err}");
    }

    #[test]
    fn image_and_command_are_one_trailing_list() {
        assert_eq!(
            parse(&["busybox", "--help"]).image_and_command,
            ["busybox", "--help"]
        );
        assert_eq!(
            parse(&["busybox", "--", "ls"]).image_and_command,
            ["busybox", "--", "ls"]
        );
        assert_eq!(
            parse(&["--", "busybox", "ls"]).image_and_command,
            ["busybox", "ls"]
        );
        let r = request(&["busybox", "echo", "--help", "-n"]);
        assert_eq!(r.config.image, "busybox");
        assert_eq!(
            r.config.cmd,
            Some(vec!["echo".into(), "--help".into(), "-n".into()])
        );
        assert_eq!(request(&["busybox"]).config.cmd, None);
    }

    #[test]
    fn hostname_takes_dash_h_and_combined_short_flags_work() {
        let a = parse(&["-h", "box", "-itd", "--rm", "busybox"]);
        assert_eq!(a.hostname.as_deref(), Some("box"));
        assert!(a.interactive && a.tty && a.detach && a.rm);
        let r = create_request(&a).unwrap().1;
        assert_eq!(r.config.hostname, "box");
        assert!(!r.config.attach_stdout && !r.config.attach_stdin && r.config.open_stdin);
        assert!(r.host_config.unwrap().auto_remove);
        assert!(!parse(&["--rm=false", "busybox"]).rm);
    }

    #[test]
    fn resources_convert_to_host_config() {
        let r = request(&[
            "-m",
            "512m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "--cpu-shares",
            "512",
            "--cpuset-cpus",
            "0-1",
            "--pids-limit",
            "100",
            "--ulimit",
            "nofile=1024:2048",
            "--read-only",
            "--init",
            "--privileged",
            "busybox",
        ]);
        let hc = r.host_config.unwrap();
        assert_eq!(hc.memory, 512 * 1024 * 1024);
        assert_eq!(hc.memory_swap, -1);
        assert_eq!(hc.nano_cpus, 1_500_000_000);
        assert_eq!(hc.cpu_shares, 512);
        assert_eq!(hc.cpuset_cpus, "0-1");
        assert_eq!(hc.pids_limit, Some(100));
        assert_eq!(
            hc.ulimits.unwrap(),
            vec![Ulimit {
                name: "nofile".into(),
                soft: 1024,
                hard: 2048
            }]
        );
        assert!(hc.readonly_rootfs && hc.privileged);
        assert_eq!(hc.init, Some(true));
        // Defaults mirror the docker CLI's body.
        let d = request(&["busybox"]).host_config.unwrap();
        assert_eq!(d.network_mode, "default");
        assert_eq!(d.restart_policy.name, "no");
        assert_eq!(d.init, None);
        assert_eq!(d.pids_limit, None);
    }

    #[test]
    fn bad_values_give_dockers_flag_errors() {
        let e = create_request(&parse(&["-m", "12x", "busybox"])).unwrap_err();
        assert_eq!(
            e,
            r#"invalid argument "12x" for "-m, --memory" flag: invalid size: '12x'"#
        );
        let e = create_request(&parse(&["--cpus", "abc", "busybox"])).unwrap_err();
        assert_eq!(
            e,
            r#"invalid argument "abc" for "--cpus" flag: failed to parse abc as a rational number"#
        );
        assert!(create_request(&parse(&["--rm", "--restart", "always", "busybox"])).is_err());
    }

    #[test]
    fn cpus_are_exact() {
        assert_eq!(parse_nano_cpus("0.5"), Ok(500_000_000));
        assert_eq!(parse_nano_cpus("2"), Ok(2_000_000_000));
        assert_eq!(parse_nano_cpus(".25"), Ok(250_000_000));
        assert_eq!(parse_nano_cpus("0.000000001"), Ok(1));
        assert_eq!(
            parse_nano_cpus("0.0000000001"),
            Err("value is too precise".into())
        );
    }

    #[test]
    fn ulimits_parse_like_go_units() {
        assert_eq!(
            parse_ulimit("nproc=64"),
            Ok(Ulimit {
                name: "nproc".into(),
                soft: 64,
                hard: 64
            })
        );
        assert_eq!(
            parse_ulimit("bogus=1"),
            Err("invalid ulimit type: bogus".into())
        );
        assert_eq!(
            parse_ulimit("nofile"),
            Err("invalid ulimit argument: nofile".into())
        );
        assert_eq!(
            parse_ulimit("nofile=10:5"),
            Err("ulimit soft limit must be less than or equal to hard limit: 10 > 5".into())
        );
    }

    #[test]
    fn env_and_env_file_follow_docker() {
        let lookup = |k: &str| (k == "HOME").then(|| "/root".to_string());
        assert_eq!(parse_env("A=1", lookup), Ok("A=1".into()));
        assert_eq!(parse_env("HOME", lookup), Ok("HOME=/root".into()));
        assert_eq!(parse_env("UNSET", lookup), Ok("UNSET".into()));
        assert!(parse_env("=x", lookup).is_err());
        let file = "\u{feff}# comment\n\n  A=1\nB=\"quoted value\"\nHOME\nUNSET\nC=x=y\n";
        assert_eq!(
            parse_env_file(file, lookup).unwrap(),
            vec!["A=1", "B=\"quoted value\"", "HOME=/root", "C=x=y"]
        );
        assert_eq!(
            parse_env_file("BAD NAME=1", lookup),
            Err("variable 'BAD NAME' contains whitespaces".into())
        );
    }

    #[test]
    fn env_file_comes_before_dash_e() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        std::fs::write(&path, "A=file\nB=2\n").unwrap();
        let r = request(&[
            "--env-file",
            path.to_str().unwrap(),
            "-e",
            "A=flag",
            "busybox",
        ]);
        assert_eq!(r.config.env.unwrap(), vec!["A=file", "B=2", "A=flag"]);
    }

    #[test]
    fn labels_entrypoint_network_and_stop_options() {
        let r = request(&[
            "-l",
            "a=b",
            "--label",
            "flag",
            "--entrypoint",
            "",
            "--network",
            "none",
            "--stop-signal",
            "SIGUSR1",
            "--stop-timeout",
            "3",
            "--log-opt",
            "max-size=1m",
            "--cap-add",
            "NET_ADMIN",
            "--security-opt",
            "no-new-privileges",
            "-u",
            "1000:1000",
            "-w",
            "/tmp",
            "busybox",
        ]);
        let labels = r.config.labels.clone().unwrap();
        assert_eq!(labels["a"], "b");
        assert_eq!(labels["flag"], "");
        assert_eq!(r.config.entrypoint, Some(vec![String::new()]));
        assert_eq!(r.config.stop_signal.as_deref(), Some("SIGUSR1"));
        assert_eq!(r.config.stop_timeout, Some(3));
        assert_eq!(r.config.user, "1000:1000");
        assert_eq!(r.config.working_dir, "/tmp");
        let hc = r.host_config.unwrap();
        assert_eq!(hc.network_mode, "none");
        assert_eq!(hc.log_config.config["max-size"], "1m");
        assert_eq!(hc.cap_add, Some(vec!["NET_ADMIN".into()]));
        assert_eq!(hc.security_opt, Some(vec!["no-new-privileges".into()]));
        assert_eq!(request(&["busybox"]).config.entrypoint, None);
    }

    #[test]
    fn published_ports_and_volumes() {
        let r = request(&[
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1::53/udp",
            "-v",
            "/h:/c:ro",
            "-v",
            "/anon",
            "busybox",
        ]);
        let hc = r.host_config.unwrap();
        let pb = hc.port_bindings.unwrap();
        assert_eq!(pb["80/tcp"].as_ref().unwrap()[0].host_port, "8080");
        assert_eq!(pb["53/udp"].as_ref().unwrap()[0].host_ip, "127.0.0.1");
        assert!(r.config.exposed_ports.unwrap().contains_key("80/tcp"));
        assert_eq!(hc.binds, Some(vec!["/h:/c:ro".into()]));
        assert!(r.config.volumes.unwrap().contains_key("/anon"));
        assert_eq!(parse_publish("8000-8001:80-81").unwrap().len(), 2);
        assert!(parse_publish("8000-8002:80-81").is_err());
        assert_eq!(parse_publish("[::1]:8080:80").unwrap()[0].1.host_ip, "::1");
    }

    #[test]
    fn network_flags_repeat_and_reach_the_request() {
        let a = parse(&[
            "--network",
            "n1",
            "--net",
            "name=n2,alias=x",
            "--net-alias",
            "a1",
            "--network-alias",
            "a2",
            "--ip",
            "10.1.0.5",
            "--ip6",
            "fd00::5",
            "--link-local-ip",
            "169.254.0.9",
            "--link",
            "c1:x",
            "--dns-search",
            "example.com.",
            "--dns-opt",
            "ndots:2",
            "--dns-option",
            "rotate",
            "busybox",
        ]);
        assert_eq!(a.network.len(), 2);
        assert_eq!(a.network_alias, ["a1", "a2"]);
        let r = create_request(&a).unwrap().1;
        let hc = r.host_config.unwrap();
        assert_eq!(hc.network_mode, "n1");
        assert_eq!(hc.extra["Links"], serde_json::json!(["c1:x"]));
        assert_eq!(hc.extra["DnsSearch"], serde_json::json!(["example.com"]));
        assert_eq!(
            hc.extra["DnsOptions"],
            serde_json::json!(["ndots:2", "rotate"])
        );
        let eps = r.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(eps["n1"]["Aliases"], serde_json::json!(["a1", "a2"]));
        assert_eq!(eps["n1"]["Links"], serde_json::json!(["c1:x"]));
        assert_eq!(
            eps["n1"]["IPAMConfig"],
            serde_json::json!({"IPv4Address": "10.1.0.5", "IPv6Address": "fd00::5",
                "LinkLocalIPs": ["169.254.0.9"]})
        );
        assert_eq!(eps["n2"]["Aliases"], serde_json::json!(["x"]));
        // No flag: docker's `[]` for both lists, no links.
        let hc = request(&["busybox"]).host_config.unwrap();
        assert_eq!(hc.extra["DnsSearch"], serde_json::json!([]));
        assert_eq!(hc.extra["DnsOptions"], serde_json::json!([]));
        assert!(!hc.extra.contains_key("Links"));
    }

    #[test]
    fn network_mistakes_are_dockers() {
        let err = |args: &[&str]| create_request(&parse(args)).unwrap_err();
        assert_eq!(
            err(&["--mac-address", "bogus", "busybox"]),
            "bogus is not a valid mac address"
        );
        assert_eq!(
            err(&["--network", "n1", "--network", "bridge", "busybox"]),
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes"
        );
        let bad_flag = |args: &[&str]| {
            let mut v = vec!["run"];
            v.extend_from_slice(args);
            Wrap::try_parse_from(v).err().unwrap().kind()
        };
        for args in [
            &["--network", "name=n1,bogus=1", "busybox"][..],
            &["--link", "a:b:c", "busybox"],
            &["--dns-search", "123", "busybox"],
        ] {
            assert_eq!(bad_flag(args), clap::error::ErrorKind::ValueValidation);
        }
    }

    #[test]
    fn dns_search_domains_validate_as_docker() {
        assert_eq!(validate_dns_search("."), Ok(".".into()));
        assert_eq!(validate_dns_search(" a.b "), Ok("a.b".into()));
        assert_eq!(
            validate_dns_search("example.com."),
            Ok("example.com".into())
        );
        assert_eq!(validate_dns_search("x-1.example"), Ok("x-1.example".into()));
        // docker's pattern lets a colon stand beside a dot (`(:?` in its regexp).
        assert_eq!(validate_dns_search("::a:.:b"), Ok("::a:.:b".into()));
        for bad in [
            "123",
            "bad_domain!",
            "-a.com",
            "a-.com",
            "a..com",
            "a:",
            &"a".repeat(255),
        ] {
            assert_eq!(
                validate_dns_search(bad),
                Err(format!("{} is not a valid domain", bad.trim())),
                "{bad}"
            );
        }
    }

    #[test]
    fn restart_policies() {
        assert_eq!(
            parse_restart("on-failure:3").unwrap().maximum_retry_count,
            3
        );
        assert_eq!(
            parse_restart("unless-stopped").unwrap().name,
            "unless-stopped"
        );
        // Names and counts are the daemon's to refuse, as with the docker CLI.
        assert_eq!(parse_restart("sometimes").unwrap().name, "sometimes");
        assert_eq!(
            parse_restart("on-failure:x").unwrap_err(),
            "invalid restart policy format: maximum retry count must be an integer"
        );
        assert_eq!(
            parse_restart(":3").unwrap_err(),
            "invalid restart policy format: no policy provided before colon"
        );
    }

    fn host_extra(args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
        request(args)
            .host_config
            .unwrap()
            .extra
            .into_iter()
            .collect()
    }

    /// The text and exit status of `berth run ARGS` refused while parsing its flags.
    fn run_flag_error(args: &[&str]) -> (String, i32) {
        use clap::{CommandFactory, Parser};
        let mut argv = vec!["berth".to_string(), "run".to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        let e = crate::Cli::try_parse_from(&argv).unwrap_err();
        let mut root = crate::Cli::command();
        root.build();
        crate::usage::report(&root, &e, &argv).expect("a flag error")
    }

    #[test]
    fn mounts_reach_the_host_config_as_docker_sends_them() {
        // Each expectation is what docker 28.2.2 sent for the same flag.
        let extra = host_extra(&[
            "--mount",
            "type=bind,src=/data,dst=/d,ro,bind-propagation=RSHARED,consistency=Cached",
            "--mount",
            "src=v1,target=/t,volume-driver=local,volume-label=b=2,volume-label=a=1,\
             volume-opt=o=addr=1,volume-opt=type=nfs,volume-subpath=sub",
            "--mount",
            "type=tmpfs,target=/tmp,tmpfs-size=64m,tmpfs-mode=1777",
            "--mount",
            "destination=/anon",
            "--mount",
            "type=volume,target=/nc,volume-nocopy",
            "--mount",
            "type=bind,source=/s,target=/r,bind-recursive=readonly,ro=T,bind-propagation=rprivate",
            "--mount",
            "type=bind,source=/s,target=/n,bind-nonrecursive",
            "--mount",
            "type=image,source=alpine,target=/i,image-subpath=/etc",
            "busybox",
        ]);
        assert_eq!(
            extra["Mounts"],
            serde_json::json!([
                {"Type": "bind", "Source": "/data", "Target": "/d", "ReadOnly": true,
                 "Consistency": "cached", "BindOptions": {"Propagation": "rshared"}},
                {"Type": "volume", "Source": "v1", "Target": "/t",
                 "VolumeOptions": {"Labels": {"a": "1", "b": "2"}, "Subpath": "sub",
                   "DriverConfig": {"Name": "local",
                     "Options": {"o": "addr=1", "type": "nfs"}}}},
                {"Type": "tmpfs", "Target": "/tmp",
                 "TmpfsOptions": {"SizeBytes": 67108864, "Mode": 1023}},
                {"Type": "volume", "Target": "/anon"},
                {"Type": "volume", "Target": "/nc",
                 "VolumeOptions": {"NoCopy": true, "DriverConfig": {}}},
                {"Type": "bind", "Source": "/s", "Target": "/r", "ReadOnly": true,
                 "BindOptions": {"Propagation": "rprivate", "ReadOnlyForceRecursive": true}},
                {"Type": "bind", "Source": "/s", "Target": "/n",
                 "BindOptions": {"NonRecursive": true}},
                {"Type": "image", "Source": "alpine", "Target": "/i",
                 "ImageOptions": {"Subpath": "/etc"}},
            ])
        );
        // Key order as Go writes the struct (serde_json keeps insertion order here).
        let keys: Vec<_> = extra["Mounts"][1]["VolumeOptions"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys, ["Labels", "Subpath", "DriverConfig"]);
        // A `.`-relative source is made absolute, as filepath.Abs does.
        let cwd = std::env::current_dir().unwrap();
        let extra = host_extra(&["--mount", "type=bind,src=./a/../b/,dst=/d", "busybox"]);
        assert_eq!(extra["Mounts"][0]["Source"], format!("{}/b", cwd.display()));
        // Zero values are left out, the options object stays (docker's nil-pointer rule).
        let extra = host_extra(&[
            "--mount",
            "TYPE=TMPFS,Target=/t,tmpfs-size=0",
            "--mount",
            "target=/v,volume-label==x,src=",
            "busybox",
        ]);
        assert_eq!(
            extra["Mounts"],
            serde_json::json!([
                {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {}},
                {"Type": "volume", "Target": "/v", "VolumeOptions": {"DriverConfig": {}}},
            ])
        );
        // A quoted CSV field keeps its comma.
        let extra = host_extra(&["--mount", "\"target=/a,b\",type=volume", "busybox"]);
        assert_eq!(
            extra["Mounts"],
            serde_json::json!([{"Type": "volume", "Target": "/a,b"}])
        );
    }

    #[test]
    fn tmpfs_volumes_from_and_volume_driver() {
        let extra = host_extra(&[
            "--tmpfs",
            "/run",
            "--tmpfs",
            "/tmp:rw,size=64m",
            "--tmpfs",
            "/a:b:c",
            "--tmpfs",
            "/run:exec",
            "--volumes-from",
            "a",
            "--volumes-from",
            "b:ro",
            "--volume-driver",
            "flocker",
            "busybox",
        ]);
        assert_eq!(
            extra["Tmpfs"],
            serde_json::json!({"/a": "b:c", "/run": "exec", "/tmp": "rw,size=64m"})
        );
        assert_eq!(extra["VolumesFrom"], serde_json::json!(["a", "b:ro"]));
        assert_eq!(extra["VolumeDriver"], "flocker");
        assert!(!extra.contains_key("Mounts"));
        // Unset: docker sends these two at their zero values and leaves the others out.
        let extra = host_extra(&["busybox"]);
        assert_eq!(extra["VolumesFrom"], serde_json::Value::Null);
        assert_eq!(extra["VolumeDriver"], "");
        assert!(!extra.contains_key("Tmpfs"));
        assert!(!extra.contains_key("Mounts"));
    }

    #[test]
    fn volume_specs_are_split_as_the_docker_cli_splits_them() {
        let cwd = std::env::current_dir().unwrap();
        let r = request(&[
            "-v", "./rel:/c", "-v", "/h:/c:ro", "-v", "named:/n", "-v", "/anon", "-v", "ab", "-v",
            "a:", "-v", "/h:/c:ro", "-v", ".:/dot", "-v", "C:\\x", "-v", "C:\\x:/y", "busybox",
        ]);
        assert_eq!(
            r.host_config.unwrap().binds.unwrap(),
            [
                format!("{}/rel:/c", cwd.display()),
                "/h:/c:ro".into(),
                "named:/n".into(),
                format!("{}:/dot", cwd.display()),
                "C:\\x:/y".into(),
            ]
        );
        let mut anon: Vec<_> = r.config.volumes.unwrap().into_keys().collect();
        anon.sort();
        assert_eq!(anon, ["/anon", "C:\\x", "a:", "ab"]);
        let err = |v: &str| create_request(&parse(&["-v", v, "busybox"])).unwrap_err();
        assert_eq!(err(""), "invalid empty volume spec");
        assert_eq!(
            err("/a:/b:ro:x"),
            "invalid spec: /a:/b:ro:x: too many colons"
        );
        assert_eq!(
            err("/a:/b:"),
            "invalid spec: /a:/b:: empty section between colons"
        );
    }

    #[test]
    fn mount_mistakes_are_dockers_flag_errors() {
        let (msg, code) = run_flag_error(&["--mount", "target=/t,bogus=1", "busybox"]);
        assert_eq!(code, 125);
        assert_eq!(
            msg,
            "invalid argument \"target=/t,bogus=1\" for \"--mount\" flag: unexpected key \
             'bogus' in 'bogus=1'\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\
             \n\nRun 'berth run --help' for more information"
        );
        // What docker 28.2.2 printed after `... for "--mount" flag: ` for each value.
        for (value, why) in [
            ("", "EOF"),
            ("type=volume", "target is required"),
            ("type=,target=/t", "type is required"),
            ("target=/t,Bogus=X", "unexpected key 'bogus' in 'Bogus=X'"),
            (
                "target=/t,BOGUS",
                "invalid field 'BOGUS' must be a key=value pair",
            ),
            ("target=/t,", "invalid field '' must be a key=value pair"),
            (
                "type=bind,target=/t,volume-nocopy",
                "cannot mix 'volume-*' options with mount type 'bind'",
            ),
            (
                "type=volume,target=/t,bind-propagation=shared",
                "cannot mix 'bind-*' options with mount type 'volume'",
            ),
            (
                "type=bind,target=/t,tmpfs-size=1m",
                "cannot mix 'tmpfs-*' options with mount type 'bind'",
            ),
            (
                "type=bind,target=/t,image-subpath=x",
                "cannot mix 'image-*' options with mount type 'bind'",
            ),
            ("target=/t,ro=yes", "invalid value for ro: yes"),
            (
                "target=/t,volume-nocopy=x",
                "invalid value for volume-nocopy: x",
            ),
            (
                "type=bind,target=/t,bind-recursive=x",
                "invalid value for bind-recursive: x (must be \"enabled\", \"disabled\", \
                 \"writable\", or \"readonly\")",
            ),
            (
                "type=bind,target=/t,bind-recursive=writable",
                "option 'bind-recursive=writable' requires 'readonly' to be specified in \
                 conjunction",
            ),
            (
                "type=bind,target=/t,bind-recursive=readonly,ro",
                "option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be \
                 specified in conjunction",
            ),
            (
                "type=tmpfs,target=/t,tmpfs-size=x",
                "invalid value for tmpfs-size: x",
            ),
            (
                "type=tmpfs,target=/t,tmpfs-mode=8",
                "invalid value for tmpfs-mode: 8",
            ),
            (
                "type=tmpfs,target=/t,tmpfs-mode=+7",
                "invalid value for tmpfs-mode: +7",
            ),
            // docker 28 has no bind-create-src (docker 29 added it).
            (
                "type=bind,source=/s,target=/t,bind-create-src",
                "invalid field 'bind-create-src' must be a key=value pair",
            ),
            (
                "target=/a b,src=x\"y",
                "parse error on line 1, column 18: bare \" in non-quoted-field",
            ),
        ] {
            let (msg, code) = run_flag_error(&["--mount", value, "busybox"]);
            assert_eq!(code, 125, "{value}");
            let first = msg.lines().next().unwrap();
            assert_eq!(
                first,
                format!("invalid argument {value:?} for \"--mount\" flag: {why}"),
                "{value}"
            );
        }
    }
}
