//! Turning a container record into the runtime's spec (pure, unit-tested): Docker's
//! `HostConfig` knobs mapped onto what `berth-runtime` can do.

use std::path::Path;

use berth_api::container::HostConfig;
use berth_runtime::{
    BindMount, ContainerSpec, LogConfig, Network, Process, Resources, Rlimit, Seccomp,
};

use crate::error::{EngineError, Result};
use crate::record::ContainerRecord;
use crate::EngineConfig;

/// The CFS period Docker uses for `--cpus`.
const CPU_PERIOD: u64 = 100_000;
/// Docker refuses memory limits below 6 MB.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// Checks the parts of a host config that Docker rejects at create time.
pub fn validate_host_config(hc: &HostConfig) -> Result<()> {
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
    if hc.nano_cpus != 0 && (hc.cpu_quota != 0 || hc.cpu_period != 0) {
        return Err(EngineError::Invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    if hc.nano_cpus < 0 {
        return Err(EngineError::Invalid(
            "Range of CPUs is from 0.01 to the number of CPUs available".into(),
        ));
    }
    for u in hc.ulimits.iter().flatten() {
        if u.soft > u.hard {
            return Err(EngineError::Invalid(format!(
                "ulimit soft limit must be less than or equal to hard limit: {} > {}",
                u.soft, u.hard
            )));
        }
    }
    security_options(hc)?;
    match hc.log_config.kind.as_str() {
        "" | "json-file" => {}
        other => {
            return Err(EngineError::Invalid(format!(
                "logging driver \"{other}\" is not supported by berth (json-file only)"
            )))
        }
    }
    match hc.network_mode.as_str() {
        "" | "default" | "bridge" | "none" | "host" => {}
        other if other.starts_with("container:") => {
            return Err(EngineError::Invalid(format!(
                "network mode {other} is not supported yet"
            )))
        }
        other => {
            return Err(EngineError::Invalid(format!("network {other} not found")));
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
                out.seccomp = Some(Seccomp::Profile(profile.to_string()))
            }
            ("seccomp", Some(_)) => {
                return Err(EngineError::Invalid(format!(
                    "opening seccomp profile failed: the client must send the profile's JSON: {opt}"
                )))
            }
            ("apparmor", Some(_)) | ("label", Some(_)) => {}
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
    let mut mounts: Vec<BindMount> = etc_files
        .iter()
        .map(|(src, dst)| BindMount {
            source: src.clone(),
            destination: dst.to_string(),
            readonly: false,
        })
        .collect();
    mounts.extend(binds(hc)?);
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
    Ok(ContainerSpec {
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
        },
        hostname: rec.config.hostname.clone(),
        mounts,
        cap_add: hc.cap_add.clone().unwrap_or_default(),
        cap_drop: hc.cap_drop.clone().unwrap_or_default(),
        privileged: hc.privileged,
        seccomp: sec.seccomp.unwrap_or(Seccomp::Default),
        network,
        resources: resources(hc),
        cgroup_path: format!("/berth/{}", rec.id),
        init,
        log: LogConfig {
            path: cfg
                .container_dir(&rec.id)
                .join(format!("{}-json.log", rec.id)),
            max_size: log_max_size(hc).or(Some(cfg.log_max_size)),
            max_files: log_max_files(hc).unwrap_or(cfg.log_max_files),
        },
        backend: cfg.backend,
        seccomp_filter: None,
        cgroup_layout: cfg.cgroup_layout.clone(),
    })
}

fn resources(hc: &HostConfig) -> Resources {
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
        pids_limit: hc.pids_limit.filter(|p| *p != 0),
    }
}

/// `-v /host:/ctr[:ro]` bind mounts (named volumes come with the volume issue).
pub fn binds(hc: &HostConfig) -> Result<Vec<BindMount>> {
    let mut out = Vec::new();
    for b in hc.binds.iter().flatten() {
        let parts: Vec<&str> = b.split(':').collect();
        let (src, dst, mode) = match parts.as_slice() {
            [s, d] => (*s, *d, ""),
            [s, d, m] => (*s, *d, *m),
            _ => {
                return Err(EngineError::Invalid(format!(
                    "invalid volume specification: '{b}'"
                )))
            }
        };
        if !src.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "named volumes are not supported yet: '{b}'"
            )));
        }
        if !dst.starts_with('/') {
            return Err(EngineError::Invalid(format!(
                "invalid volume specification: '{b}': mount path must be absolute"
            )));
        }
        out.push(BindMount {
            source: src.into(),
            destination: dst.to_string(),
            readonly: mode.split(',').any(|m| m == "ro"),
        });
    }
    Ok(out)
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
            validate_host_config(&hc).unwrap_err().to_string(),
            "Minimum memory limit allowed is 6MB"
        );
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("10m"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("x"), None);
    }
}
