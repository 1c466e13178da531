//! Turning a container record into the runtime's spec (pure, unit-tested): Docker's
//! `HostConfig` knobs mapped onto what `berth-runtime` can do.

use std::collections::BTreeSet;
use std::path::Path;

use berth_api::container::HostConfig;
use berth_runtime::{
    ContainerMount, ContainerSpec, LogConfig, Network, Process, Resources, Rlimit, Seccomp,
};

use crate::error::{EngineError, Result};
use crate::record::ContainerRecord;
use crate::EngineConfig;

/// The CFS period Docker uses for `--cpus`.
const CPU_PERIOD: u64 = 100_000;
/// Docker refuses memory limits below 6 MB.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// What Docker checks resource requests against at create time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResources {
    /// The online CPUs (`/sys/devices/system/cpu/online`), e.g. `0-1`.
    pub cpus: String,
    /// The online memory nodes (`/sys/devices/system/node/online`; `0` without NUMA).
    pub mems: String,
    /// The CPUs the daemon may run on (Go's `runtime.NumCPU`: the affinity mask).
    pub ncpu: usize,
}

impl HostResources {
    /// Reads the host's CPUs and memory nodes now (they can change: hotplug).
    pub fn read() -> HostResources {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
        };
        let allowed = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                    .and_then(|list| parse_id_list(list.trim(), 0).ok())
                    .map(|ids| ids.len())
            })
            .filter(|n| *n > 0);
        let ncpu = allowed.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        HostResources {
            cpus: read("/sys/devices/system/cpu/online")
                .unwrap_or_else(|| format!("0-{}", ncpu.saturating_sub(1))),
            mems: read("/sys/devices/system/node/online").unwrap_or_else(|| "0".into()),
            ncpu,
        }
    }
}

/// Docker's largest CPU or memory node number accepted in a cpuset request (more if the
/// host has more), so that `0-9223372036854775807` cannot exhaust memory (CVE-2018-20699).
const MAX_CPUSET_ID: i64 = 8192;

/// Parses a cpuset list (`7`, `1-6`, `0,3-4,7,8-10`) as Docker's `parseUintList` does,
/// with its error texts; `maximum` 0 means no bound.
fn parse_id_list(val: &str, maximum: i64) -> std::result::Result<BTreeSet<i64>, String> {
    let mut out = BTreeSet::new();
    if val.is_empty() {
        return Ok(out);
    }
    let invalid = || format!("invalid format: {val}");
    let number = |s: &str| s.parse::<i64>().map_err(|_| invalid());
    let too_big = |v: i64| maximum != 0 && v > maximum;
    let out_of_range = || format!("value of out range, maximum is {maximum}");
    for part in val.split(',') {
        let (min, max) = match part.split_once('-') {
            None => {
                let v = number(part)?;
                (v, v)
            }
            Some((min, max)) => (number(min)?, number(max)?),
        };
        if max < min {
            return Err(invalid());
        }
        if too_big(max) {
            return Err(out_of_range());
        }
        out.extend(min..=max);
    }
    Ok(out)
}

/// Docker's checks of a `--cpuset-cpus` / `--cpuset-mems` value against what the host has
/// (`what`: "CPUs" or "memory nodes"; `key`: "cpus" or "mems", as in its messages).
fn check_cpuset(value: &str, available: &str, what: &str, key: &str) -> Result<()> {
    match cpuset_available(value, available) {
        Ok(true) => Ok(()),
        Ok(false) => Err(EngineError::Invalid(format!(
            "Requested {what} are not available - requested {value}, available: {available}"
        ))),
        Err(e) => Err(EngineError::Invalid(format!(
            "Invalid value {value} for cpuset {key}: {e}"
        ))),
    }
}

/// Whether every CPU (or memory node) in `requested` is in `available` (Docker's
/// `isCpusetListAvailable`).
fn cpuset_available(requested: &str, available: &str) -> std::result::Result<bool, String> {
    let available = parse_id_list(available, 0).unwrap_or_default();
    let maximum = available
        .last()
        .copied()
        .map_or(MAX_CPUSET_ID, |m| m.max(MAX_CPUSET_ID));
    let requested = parse_id_list(requested, maximum)?;
    Ok(requested.is_subset(&available))
}

/// Checks the parts of a host config that Docker rejects at create time, in Docker's order
/// and words (moby `validateHostConfig`, then `verifyPlatformContainerResources`).
pub fn validate_host_config(hc: &HostConfig, host: &HostResources) -> Result<()> {
    for (field, caps) in [("CapAdd", &hc.cap_add), ("CapDrop", &hc.cap_drop)] {
        for cap in caps.iter().flatten() {
            berth_runtime::defaults::validate_capability(cap)
                .map_err(|e| EngineError::Invalid(format!("invalid {field}: {e}")))?;
        }
    }
    validate_resources(hc, host, false)?;
    for u in hc.ulimits.iter().flatten() {
        berth_runtime::defaults::validate_rlimit_name(&u.name).map_err(EngineError::Invalid)?;
        if u.soft > u.hard {
            return Err(EngineError::Invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
    }
    security_options(hc)?;
    crate::isolation::validate(hc)?;
    match hc.log_config.kind.as_str() {
        "" | "json-file" => {}
        other => {
            return Err(EngineError::Invalid(format!(
                "logging driver \"{other}\" is not supported by berth (json-file only)"
            )))
        }
    }
    validate_log_options(hc)?;
    // Whether the network (or the container of `container:X`) is there is the engine's to
    // say (network.rs, at create).
    Ok(())
}

/// Docker's checks of the resource limits (`verifyPlatformContainerResources`), in its order
/// and words; `update` (`docker update`) allows a swap limit without a memory limit in the
/// same request (the container may have one).
pub fn validate_resources(hc: &HostConfig, host: &HostResources, update: bool) -> Result<()> {
    if hc.memory != 0 && hc.memory < MIN_MEMORY {
        return Err(EngineError::Invalid(
            "Minimum memory limit allowed is 6MB".into(),
        ));
    }
    if hc.memory > 0 && hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(EngineError::Invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage".into(),
        ));
    }
    if hc.memory == 0 && hc.memory_swap > 0 && !update {
        return Err(EngineError::Invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage".into(),
        ));
    }
    let reservation = memory_reservation(hc);
    if reservation > 0 && reservation < MIN_MEMORY {
        return Err(EngineError::Invalid(
            "Minimum memory reservation allowed is 6MB".into(),
        ));
    }
    if hc.memory > 0 && reservation > 0 && hc.memory < reservation {
        return Err(EngineError::Invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    if hc.cpu_shares < 0 {
        return Err(EngineError::Invalid(format!(
            "invalid CPU shares ({}): value must be a positive integer",
            hc.cpu_shares
        )));
    }
    if hc.nano_cpus > 0 && hc.cpu_period > 0 {
        return Err(EngineError::Invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    if hc.nano_cpus > 0 && hc.cpu_quota > 0 {
        return Err(EngineError::Invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
        ));
    }
    let ncpu = host.ncpu as i64;
    if hc.nano_cpus < 0 || hc.nano_cpus > ncpu.saturating_mul(1_000_000_000) {
        return Err(EngineError::Invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    if hc.cpu_period != 0 && !(1000..=1_000_000).contains(&hc.cpu_period) {
        return Err(EngineError::Invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        ));
    }
    if hc.cpu_quota > 0 && hc.cpu_quota < 1000 {
        return Err(EngineError::Invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
        ));
    }
    check_cpuset(&hc.cpuset_cpus, &host.cpus, "CPUs", "cpus")?;
    check_cpuset(cpuset_mems(hc), &host.mems, "memory nodes", "mems")?;
    Ok(())
}

/// Checks the merged container config (request and image) as Docker does at create.
pub fn validate_config(c: &berth_api::container::Config) -> Result<()> {
    if !c.working_dir.is_empty() && !c.working_dir.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "the working directory '{}' is invalid, it needs to be an absolute path",
            c.working_dir
        )));
    }
    if let Some(sig) = c.stop_signal.as_deref().filter(|s| !s.is_empty()) {
        crate::container::stop::parse_signal(sig)?;
    }
    Ok(())
}

/// The json-file driver's `--log-opt`s: berth applies `max-size` and `max-file`; a value it
/// cannot parse, or an option it does not apply, is refused (Docker's words where it has
/// them).
fn validate_log_options(hc: &HostConfig) -> Result<()> {
    for (key, value) in &hc.log_config.config {
        match key.as_str() {
            "max-size" => {
                if parse_size(value).is_none() {
                    return Err(EngineError::Invalid(format!(
                        "failed to parse max-size: invalid size: '{value}'"
                    )));
                }
            }
            "max-file" => match value.parse::<i64>() {
                Ok(n) if n >= 1 => {}
                Ok(_) => {
                    return Err(EngineError::Invalid(
                        "max-file cannot be less than 1".into(),
                    ))
                }
                Err(_) => {
                    return Err(EngineError::Invalid(format!(
                    "failed to parse max-file: strconv.Atoi: parsing \"{value}\": invalid syntax"
                )))
                }
            },
            other => {
                return Err(EngineError::Invalid(format!(
                    "unknown log opt '{other}' for json-file log driver (berth applies \
                     max-size and max-file)"
                )))
            }
        }
    }
    Ok(())
}

/// What `--security-opt` asked for.
#[derive(Debug, Default, PartialEq)]
pub struct SecurityOptions {
    pub no_new_privileges: bool,
    pub seccomp: Option<Seccomp>,
}

/// Parses `--security-opt` values as Docker does (`key=value` or the legacy `key:value`).
pub fn security_options(hc: &HostConfig) -> Result<SecurityOptions> {
    let mut out = SecurityOptions::default();
    for opt in hc.security_opt.iter().flatten() {
        let (key, value) = match opt.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => match opt.split_once(':') {
                Some((k, v)) => (k, Some(v)),
                None => (opt.as_str(), None),
            },
        };
        match (key, value) {
            ("no-new-privileges", None) => out.no_new_privileges = true,
            ("no-new-privileges", Some(v)) => {
                out.no_new_privileges = match v {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(EngineError::Invalid(format!(
                            "invalid --security-opt 2: {opt:?}"
                        )))
                    }
                }
            }
            ("seccomp", Some("unconfined")) => out.seccomp = Some(Seccomp::Unconfined),
            ("seccomp", Some(profile)) if profile.trim_start().starts_with('{') => {
                berth_runtime::defaults::validate_seccomp_profile(profile).map_err(|e| {
                    EngineError::Invalid(format!("decoding seccomp profile failed: {e}"))
                })?;
                out.seccomp = Some(Seccomp::Profile(profile.to_string()))
            }
            ("seccomp", Some(_)) => {
                return Err(EngineError::Invalid(format!(
                    "opening seccomp profile failed: the client must send the profile's JSON: {opt}"
                )))
            }
            // Turning off what berth does not do is honoured; asking for a profile or a label
            // it would not apply is refused.
            ("apparmor", Some("unconfined")) | ("label", Some("disable")) => {}
            ("apparmor", Some(_)) | ("label", Some(_)) => {
                return Err(EngineError::Invalid(format!(
                    "--security-opt {opt}: berth applies no AppArmor profiles or SELinux \
                     labels yet: refused rather than ignored"
                )))
            }
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid --security-opt 2: {opt:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// Builds the runtime spec for a start of `rec`.
pub fn build(
    cfg: &EngineConfig,
    rec: &ContainerRecord,
    bundle: &Path,
    etc_files: &[(std::path::PathBuf, &'static str)],
    peers: &crate::isolation::Peers,
    user_mounts: Vec<ContainerMount>,
) -> Result<ContainerSpec> {
    let hc = &rec.host_config;
    let sec = security_options(hc)?;
    let mut env = rec.config.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    env.insert(
        1.min(env.len()),
        format!("HOSTNAME={}", rec.config.hostname),
    );
    if rec.config.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let mut args = vec![rec.path.clone()];
    args.extend(rec.args.iter().cloned());
    let rlimits = hc
        .ulimits
        .iter()
        .flatten()
        .map(|u| Rlimit {
            name: u.name.clone(),
            soft: u.soft as u64,
            hard: u.hard as u64,
        })
        .collect();
    // A mount the user asked for at /etc/hosts (or the others) is mounted instead of berth's
    // file, as Docker skips its own.
    let mut mounts: Vec<ContainerMount> = etc_files
        .iter()
        .filter(|(_, dst)| !user_mounts.iter().any(|m| m.destination == *dst))
        .map(|(src, dst)| ContainerMount {
            source: src.clone(),
            destination: dst.to_string(),
            ..Default::default()
        })
        .collect();
    mounts.extend(user_mounts);
    let network = match hc.network_mode.as_str() {
        "host" => Network::Host,
        _ => Network::None,
    };
    let init = if hc.init.unwrap_or(false) {
        Some(cfg.init_binary.clone().ok_or_else(|| {
            EngineError::Invalid(
                "--init was asked for but berthd found no init binary (install tini)".into(),
            )
        })?)
    } else {
        None
    };
    let mut spec = ContainerSpec {
        id: rec.id.clone(),
        bundle: bundle.to_path_buf(),
        rootfs: rec.rootfs.clone(),
        readonly_rootfs: hc.readonly_rootfs,
        process: Process {
            args,
            env,
            cwd: if rec.config.working_dir.is_empty() {
                "/".into()
            } else {
                rec.config.working_dir.clone()
            },
            user: rec.config.user.clone(),
            rlimits,
            no_new_privileges: sec.no_new_privileges,
            oom_score_adj: (hc.oom_score_adj != 0).then_some(hc.oom_score_adj as i32),
            additional_gids: hc
                .group_add
                .iter()
                .flatten()
                .filter_map(|g| g.parse().ok())
                .collect(),
            terminal: rec.config.tty,
        },
        hostname: rec.config.hostname.clone(),
        mounts,
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        privileged: hc.privileged,
        seccomp: sec.seccomp.unwrap_or(Seccomp::Default),
        network,
        resources: resources(hc),
        cgroup_path: cgroup_path(&rec.id),
        init,
        log: LogConfig {
            path: cfg
                .container_dir(&rec.id)
                .join(format!("{}-json.log", rec.id)),
            max_size: log_max_size(hc).or(Some(cfg.log_max_size)),
            max_files: log_max_files(hc).unwrap_or(cfg.log_max_files),
        },
        backend: cfg.backend,
        volatile_exit: hc.auto_remove,
        seccomp_filter: None,
        cgroup_layout: cfg.cgroup_layout.clone(),
        stdio: stdio(rec),
        ..Default::default()
    };
    crate::isolation::apply(hc, peers, &mut spec)?;
    Ok(spec)
}

/// The main process's stdin (`-i`) and its terminal's first size (`ConsoleSize`, which the
/// docker CLI sends as `[rows, columns]`; `[0, 0]` without a terminal).
fn stdio(rec: &ContainerRecord) -> berth_runtime::StdioSpec {
    let size = rec
        .host_config
        .extra
        .get("ConsoleSize")
        .and_then(|v| serde_json::from_value::<[u64; 2]>(v.clone()).ok())
        .unwrap_or_default();
    let clamp = |n: u64| n.min(u16::MAX as u64) as u16;
    berth_runtime::StdioSpec {
        open_stdin: rec.config.open_stdin,
        hold_output: false,
        console_height: if rec.config.tty { clamp(size[0]) } else { 0 },
        console_width: if rec.config.tty { clamp(size[1]) } else { 0 },
    }
}

/// The container's cgroup path (in every hierarchy on v1): the shim makes it, `stats` reads it.
pub(crate) fn cgroup_path(id: &str) -> String {
    format!("/berth/{id}")
}

/// `--cgroupns` (`CgroupnsMode`, kept in the host config's extra fields). berth gives a
/// container the cgroup namespace Docker gives by default for the host's layout: its own on
/// cgroup v2, the host's on v1. The other mode is refused, not ignored.
pub fn check_cgroupns(hc: &HostConfig, v2: bool) -> Result<()> {
    let mode = match hc.extra.get("CgroupnsMode") {
        None | Some(serde_json::Value::Null) => "",
        Some(serde_json::Value::String(mode)) => mode.as_str(),
        Some(other) => {
            return Err(EngineError::Invalid(format!(
                "invalid cgroup namespace mode: {other}"
            )))
        }
    };
    let (default, layout) = if v2 {
        ("private", "v2")
    } else {
        ("host", "v1")
    };
    match mode {
        "" => Ok(()),
        m if m == default => Ok(()),
        "private" | "host" => Err(EngineError::Invalid(format!(
            "cgroup namespace mode \"{mode}\" is not supported by berth on cgroup {layout} \
             (only \"{default}\", Docker's default there)"
        ))),
        other => Err(EngineError::Invalid(format!(
            "invalid cgroup namespace mode: {other}"
        ))),
    }
}

/// `MemoryReservation` (`--memory-reservation`), kept in the host config's extra fields.
fn memory_reservation(hc: &HostConfig) -> i64 {
    hc.extra
        .get("MemoryReservation")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0)
}

/// `CpusetMems` (`--cpuset-mems`), kept in the host config's extra fields.
pub(crate) fn cpuset_mems(hc: &HostConfig) -> &str {
    hc.extra
        .get("CpusetMems")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
}

pub(crate) fn resources(hc: &HostConfig) -> Resources {
    let (cpu_quota, cpu_period) = if hc.nano_cpus > 0 {
        (
            Some((hc.nano_cpus as u64 * CPU_PERIOD / 1_000_000_000) as i64),
            Some(CPU_PERIOD),
        )
    } else {
        (
            (hc.cpu_quota != 0).then_some(hc.cpu_quota),
            (hc.cpu_period != 0).then_some(hc.cpu_period as u64),
        )
    };
    Resources {
        memory: (hc.memory > 0).then_some(hc.memory),
        memory_swap: (hc.memory_swap != 0).then_some(hc.memory_swap),
        cpu_shares: (hc.cpu_shares > 0).then_some(hc.cpu_shares as u64),
        cpu_quota,
        cpu_period,
        cpuset_cpus: (!hc.cpuset_cpus.is_empty()).then(|| hc.cpuset_cpus.clone()),
        cpuset_mems: Some(cpuset_mems(hc))
            .filter(|m| !m.is_empty())
            .map(str::to_string),
        pids_limit: hc.pids_limit.filter(|p| *p != 0),
        devices: Vec::new(),
    }
}

fn log_max_size(hc: &HostConfig) -> Option<u64> {
    hc.log_config
        .config
        .get("max-size")
        .and_then(|s| parse_size(s))
}

fn log_max_files(hc: &HostConfig) -> Option<u32> {
    hc.log_config
        .config
        .get("max-file")
        .and_then(|s| s.parse().ok())
}

/// `10m`, `1g`, `512k`, `100` (bytes), as go-units `RAMInBytes`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let digits_end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(digits_end);
    let n: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim_end_matches('b').trim_end_matches('i') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        _ => return None,
    };
    Some((n * mult) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_opts_parse_like_docker() {
        let hc = HostConfig {
            security_opt: Some(vec![
                "no-new-privileges".into(),
                "seccomp=unconfined".into(),
            ]),
            ..Default::default()
        };
        let s = security_options(&hc).unwrap();
        assert!(s.no_new_privileges);
        assert_eq!(s.seccomp, Some(Seccomp::Unconfined));
        let bad = HostConfig {
            security_opt: Some(vec!["bogus".into()]),
            ..Default::default()
        };
        assert!(security_options(&bad).is_err());
    }

    #[test]
    fn cpus_become_a_cfs_quota() {
        let hc = HostConfig {
            nano_cpus: 1_500_000_000,
            pids_limit: Some(0),
            ..Default::default()
        };
        let r = resources(&hc);
        assert_eq!(r.cpu_quota, Some(150_000));
        assert_eq!(r.cpu_period, Some(100_000));
        assert_eq!(r.pids_limit, None);
    }

    #[test]
    fn small_memory_is_refused_with_dockers_text() {
        let hc = HostConfig {
            memory: 1024,
            ..Default::default()
        };
        assert_eq!(
            validate_host_config(&hc, &two_cpus())
                .unwrap_err()
                .to_string(),
            "Minimum memory limit allowed is 6MB"
        );
    }

    #[test]
    fn cgroupns_other_than_the_layouts_default_is_refused() {
        let hc = |mode: serde_json::Value| {
            let mut hc = HostConfig::default();
            hc.extra.insert("CgroupnsMode".into(), mode);
            hc
        };
        for v2 in [false, true] {
            check_cgroupns(&HostConfig::default(), v2).unwrap();
            check_cgroupns(&hc("".into()), v2).unwrap();
        }
        check_cgroupns(&hc("private".into()), true).unwrap();
        check_cgroupns(&hc("host".into()), false).unwrap();
        assert_eq!(
            check_cgroupns(&hc("host".into()), true)
                .unwrap_err()
                .to_string(),
            "cgroup namespace mode \"host\" is not supported by berth on cgroup v2 \
             (only \"private\", Docker's default there)"
        );
        let e = check_cgroupns(&hc("private".into()), false).unwrap_err();
        assert!(matches!(e, EngineError::Invalid(_)), "{e}");
        assert!(e.to_string().contains("on cgroup v1"), "{e}");
        let e = check_cgroupns(&hc("bogus".into()), true).unwrap_err();
        assert_eq!(e.to_string(), "invalid cgroup namespace mode: bogus");
        let e = check_cgroupns(&hc(5.into()), true).unwrap_err();
        assert_eq!(e.to_string(), "invalid cgroup namespace mode: 5");
    }

    fn two_cpus() -> HostResources {
        HostResources {
            cpus: "0-1".into(),
            mems: "0".into(),
            ncpu: 2,
        }
    }

    fn refused(hc: HostConfig) -> String {
        let e = validate_host_config(&hc, &two_cpus()).unwrap_err();
        assert!(matches!(e, EngineError::Invalid(_)), "{e}");
        e.to_string()
    }

    fn with_extra(key: &str, value: serde_json::Value) -> HostConfig {
        let mut hc = HostConfig::default();
        hc.extra.insert(key.into(), value);
        hc
    }

    #[test]
    fn cpusets_outside_the_host_are_refused_with_dockers_text() {
        let hc = |cpus: &str| HostConfig {
            cpuset_cpus: cpus.into(),
            ..Default::default()
        };
        assert_eq!(
            refused(hc("99")),
            "Requested CPUs are not available - requested 99, available: 0-1"
        );
        assert_eq!(
            refused(hc("0,2")),
            "Requested CPUs are not available - requested 0,2, available: 0-1"
        );
        assert_eq!(
            refused(hc("1-0")),
            "Invalid value 1-0 for cpuset cpus: invalid format: 1-0"
        );
        assert_eq!(
            refused(hc("x")),
            "Invalid value x for cpuset cpus: invalid format: x"
        );
        assert_eq!(
            refused(hc("0-9223372036854775807")),
            "Invalid value 0-9223372036854775807 for cpuset cpus: value of out range, maximum is 8192"
        );
        for ok in ["", "0", "1", "0-1", "0,1", "1,0-0"] {
            validate_host_config(&hc(ok), &two_cpus()).unwrap();
        }
        assert_eq!(
            refused(with_extra("CpusetMems", "5".into())),
            "Requested memory nodes are not available - requested 5, available: 0"
        );
        validate_host_config(&with_extra("CpusetMems", "0".into()), &two_cpus()).unwrap();
    }

    #[test]
    fn cpus_beyond_the_host_are_refused_with_dockers_text() {
        let hc = |nano_cpus| HostConfig {
            nano_cpus,
            ..Default::default()
        };
        let range = "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available";
        assert_eq!(refused(hc(99_000_000_000)), range);
        assert_eq!(refused(hc(2_000_000_001)), range);
        assert_eq!(refused(hc(-1)), range);
        validate_host_config(&hc(2_000_000_000), &two_cpus()).unwrap();
        assert_eq!(
            refused(HostConfig {
                nano_cpus: 1_000_000_000,
                cpu_quota: 50_000,
                ..Default::default()
            }),
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set"
        );
    }

    #[test]
    fn memory_below_the_reservation_is_refused_with_dockers_text() {
        let mut hc = with_extra("MemoryReservation", (20i64 << 20).into());
        hc.memory = 10 << 20;
        assert_eq!(
            refused(hc.clone()),
            "Minimum memory limit can not be less than memory reservation limit, see usage"
        );
        hc.memory = 20 << 20;
        validate_host_config(&hc, &two_cpus()).unwrap();
        assert_eq!(
            refused(with_extra("MemoryReservation", 4096.into())),
            "Minimum memory reservation allowed is 6MB"
        );
    }

    #[test]
    fn unknown_capabilities_are_refused_at_create_with_dockers_text() {
        let add = HostConfig {
            cap_add: Some(vec!["NOPE".into()]),
            ..Default::default()
        };
        assert_eq!(
            refused(add),
            r#"invalid CapAdd: unknown capability: "CAP_NOPE""#
        );
        let drop = HostConfig {
            cap_drop: Some(vec!["chown".into(), "nope".into()]),
            ..Default::default()
        };
        assert_eq!(
            refused(drop),
            r#"invalid CapDrop: unknown capability: "CAP_NOPE""#
        );
        let fine = HostConfig {
            cap_add: Some(vec!["ALL".into()]),
            cap_drop: Some(vec!["CAP_CHOWN".into(), "net_raw".into()]),
            ..Default::default()
        };
        validate_host_config(&fine, &two_cpus()).unwrap();
    }

    #[test]
    fn cpuset_mems_reach_the_runtime() {
        let mut hc = with_extra("CpusetMems", "0".into());
        hc.cpuset_cpus = "1".into();
        let r = resources(&hc);
        assert_eq!(r.cpuset_mems.as_deref(), Some("0"));
        assert_eq!(r.cpuset_cpus.as_deref(), Some("1"));
        assert_eq!(resources(&HostConfig::default()).cpuset_mems, None);
    }

    #[test]
    fn the_host_has_cpus_and_a_memory_node() {
        let host = HostResources::read();
        assert!(host.ncpu >= 1);
        assert!(cpuset_available("0", &host.cpus).unwrap(), "{host:?}");
        assert!(cpuset_available("0", &host.mems).unwrap(), "{host:?}");
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10m"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
    }
}
