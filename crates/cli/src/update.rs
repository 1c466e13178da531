//! `update`: new limits and restart policy for containers, as docker's `update` sends them.

use anyhow::{anyhow, bail, Result};
use berth_api::container::UpdateConfig;
use berth_client::Client;
use clap::Args;

use crate::outln;
use crate::run::{parse_nano_cpus, parse_restart};

/// `update`.
#[derive(Debug, Clone, Args)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<i64>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long = "cpu-rt-runtime")]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    pub cpu_shares: Option<i64>,
    /// Memory limit
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory soft limit
    #[arg(long = "memory-reservation")]
    pub memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    pub restart: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<String>,
    /// Containers
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

fn invalid(value: &str, flag: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("invalid argument {value:?} for \"{flag}\" flag: {why}")
}

fn bytes(value: &Option<String>, flag: &str) -> Result<i64> {
    match value.as_deref() {
        None => Ok(0),
        Some(v) => crate::human::ram_in_bytes(v).map_err(|e| invalid(v, flag, e)),
    }
}

/// The request docker's `update` sends for these flags.
pub fn update_config(args: &UpdateArgs) -> Result<UpdateConfig> {
    let no_flags = args.blkio_weight.is_none()
        && args.cpu_period.is_none()
        && args.cpu_quota.is_none()
        && args.cpu_rt_period.is_none()
        && args.cpu_rt_runtime.is_none()
        && args.cpuset_cpus.is_none()
        && args.cpuset_mems.is_none()
        && args.cpu_shares.is_none()
        && args.memory.is_none()
        && args.memory_reservation.is_none()
        && args.memory_swap.is_none()
        && args.restart.is_none()
        && args.pids_limit.is_none()
        && args.cpus.is_none();
    if no_flags {
        bail!("you must provide one or more flags when using this command");
    }
    let mut cfg = UpdateConfig {
        memory: bytes(&args.memory, "-m, --memory")?,
        memory_swap: match args.memory_swap.as_deref() {
            Some("-1") => -1,
            _ => bytes(&args.memory_swap, "--memory-swap")?,
        },
        nano_cpus: match &args.cpus {
            Some(c) => parse_nano_cpus(c).map_err(|e| invalid(c, "--cpus", e))?,
            None => 0,
        },
        cpu_shares: args.cpu_shares.unwrap_or(0),
        cpu_period: args.cpu_period.unwrap_or(0),
        cpu_quota: args.cpu_quota.unwrap_or(0),
        cpuset_cpus: args.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: args.cpuset_mems.clone().unwrap_or_default(),
        // docker sends no limit for `--pids-limit 0`, as for no flag.
        pids_limit: args.pids_limit.filter(|p| *p != 0),
        ..UpdateConfig::default()
    };
    if let Some(r) = &args.restart {
        cfg.restart_policy = parse_restart(r).map_err(|e| anyhow!(e))?;
    }
    // The daemon refuses what berth does not apply, naming it: the flags are sent as docker
    // sends them.
    let extra = [
        ("BlkioWeight", args.blkio_weight.map(i64::from)),
        ("CpuRealtimePeriod", args.cpu_rt_period),
        ("CpuRealtimeRuntime", args.cpu_rt_runtime),
        (
            "MemoryReservation",
            Some(bytes(&args.memory_reservation, "--memory-reservation")?),
        ),
    ];
    for (key, value) in extra {
        if let Some(v) = value.filter(|v| *v != 0) {
            cfg.extra.insert(key.into(), v.into());
        }
    }
    Ok(cfg)
}

/// `update`: prints each container updated; failures go to stderr, exit status 1.
pub async fn update(client: &Client, args: &UpdateArgs) -> Result<i32> {
    let cfg = update_config(args)?;
    let mut status = 0;
    let mut warnings = Vec::new();
    for c in &args.containers {
        match client.container_update(c, &cfg).await {
            Ok(r) => {
                outln(c);
                warnings.extend(r.warnings.unwrap_or_default());
            }
            Err(e) => {
                eprintln!("{e}");
                status = 1;
            }
        }
    }
    if !warnings.is_empty() {
        outln(&warnings.join("\n"));
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: UpdateArgs,
    }

    fn parse(argv: &[&str]) -> Result<UpdateConfig> {
        let mut full = vec!["update"];
        full.extend_from_slice(argv);
        update_config(&Cli::try_parse_from(full).unwrap().args)
    }

    #[test]
    fn flags_become_dockers_update_request() {
        let cfg = parse(&[
            "-m",
            "64m",
            "--memory-swap",
            "-1",
            "--cpus",
            "1.5",
            "--pids-limit",
            "-1",
            "--restart",
            "on-failure:3",
            "web",
        ])
        .unwrap();
        assert_eq!(cfg.memory, 64 << 20);
        assert_eq!(cfg.memory_swap, -1);
        assert_eq!(cfg.nano_cpus, 1_500_000_000);
        assert_eq!(cfg.pids_limit, Some(-1));
        assert_eq!(cfg.restart_policy.name, "on-failure");
        assert_eq!(cfg.restart_policy.maximum_retry_count, 3);
        assert!(cfg.extra.is_empty());
        let cfg = parse(&["--blkio-weight", "300", "web"]).unwrap();
        assert_eq!(cfg.extra["BlkioWeight"], 300);
        assert_eq!(
            parse(&["web"]).unwrap_err().to_string(),
            "you must provide one or more flags when using this command"
        );
    }
}
