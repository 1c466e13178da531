//! `POST /containers/{id}/update` (`docker update`): new limits and restart policy for a
//! container (moby `ContainerUpdate`). The request is checked as Docker checks it (the
//! create-time resource checks, then the conflicts with what the container has, in Docker's
//! words), the new host config is written to the record (so the next start uses it), and a
//! running or paused container's cgroup gets the limits at once, through its shim. A field
//! berth does not apply is refused by name unless it holds its zero value.

use std::sync::{Arc, LazyLock};

use berth_api::container::{HostConfig, UpdateConfig};
use serde_json::Value;

use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::restart::Policy;
use crate::spec::{self, HostResources};
use crate::Engine;

impl Engine {
    /// Updates the container; returns Docker's warnings (none).
    pub async fn update(self: &Arc<Self>, name_or_id: &str, req: UpdateConfig) -> Result<()> {
        refuse_unapplied(&req)?;
        let policy = (!req.restart_policy.name.is_empty())
            .then(|| Policy::parse(&req.restart_policy))
            .transpose()?;
        let asked = asked_host_config(&req);
        spec::validate_resources(&asked, &HostResources::read(), true)?;

        let c = self.get(name_or_id)?;
        let _op = c.op.lock().await;
        let status = c.state().status;
        let cannot =
            |msg: &str| EngineError::Conflict(format!("Cannot update container {}: {msg}", c.id));
        if matches!(status, Status::Removing | Status::Dead) {
            return Err(cannot(
                "container is marked for removal and cannot be \"update\"",
            ));
        }
        let before = c.record().host_config.clone();
        let after = merged(&before, &req, &asked).map_err(|m| cannot(&m))?;
        if policy.is_some_and(|p| p != Policy::No) && before.auto_remove {
            return Err(cannot(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        c.update_record(&self.cfg, |r| r.host_config = after.clone())?;
        // Docker's `update` event goes out once the record changed, whatever the cgroup says.
        self.emit_container(&c, "update", &[]);
        // A stopped container takes the limits at its next start; one waiting for a restart
        // too (Docker's `isRestarting`).
        if !matches!(status, Status::Running | Status::Paused) {
            return Ok(());
        }
        let changes = live_changes(&req, &after);
        let applied = self
            .runtime_call(&c, "update", move |rt, bundle| rt.update(bundle, &changes))
            .await;
        if let Err(e) = applied {
            // The kernel refused: the record says what the container has (Docker restores it).
            c.update_record(&self.cfg, |r| r.host_config = before)?;
            return Err(e);
        }
        Ok(())
    }
}

/// The fields of Docker's update request that berth applies (JSON names).
const APPLIED: &[&str] = &[
    "Memory",
    "MemorySwap",
    "NanoCpus",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "RestartPolicy",
];

/// A field berth does not change on a container (a `Resources` field other than the applied
/// ones: block I/O, realtime CPU, kernel memory, memory reservation and swappiness, OOM
/// killer, devices, ulimits, init, ...) is refused unless zero, as are keys that Docker
/// (case-insensitive) would read as an applied field under another spelling.
fn refuse_unapplied(req: &UpdateConfig) -> Result<()> {
    static FOLDED: LazyLock<Vec<(String, &'static str)>> =
        LazyLock::new(|| APPLIED.iter().map(|f| (f.to_lowercase(), *f)).collect());
    let mut seen: Vec<String> = Vec::new();
    for (key, value) in &req.extra {
        let folded = key.to_lowercase();
        if let Some((_, field)) = FOLDED.iter().find(|(f, _)| *f == folded) {
            return Err(EngineError::Invalid(format!(
                "{key} is {field} spelt differently (Docker matches JSON keys \
                 case-insensitively): refused rather than guessed"
            )));
        }
        if seen.contains(&folded) {
            return Err(EngineError::Invalid(format!(
                "{key} is given twice under different spellings (Docker matches JSON keys \
                 case-insensitively): refused rather than guessed"
            )));
        }
        seen.push(folded);
        if crate::unapplied::is_zero(value) {
            continue;
        }
        let name = match crate::unapplied::flag_of(key) {
            Some(flag) => format!("{flag} ({key})"),
            None => key.clone(),
        };
        let mut shown = value.to_string();
        shown.truncate(200);
        return Err(EngineError::Invalid(format!(
            "{name} cannot be updated by berth yet: refused rather than ignored (value: {shown})"
        )));
    }
    Ok(())
}

/// The request as a host config of its own, for Docker's resource checks.
fn asked_host_config(req: &UpdateConfig) -> HostConfig {
    let mut hc = HostConfig {
        memory: req.memory,
        memory_swap: req.memory_swap,
        nano_cpus: req.nano_cpus,
        cpu_shares: req.cpu_shares,
        cpu_period: req.cpu_period,
        cpu_quota: req.cpu_quota,
        cpuset_cpus: req.cpuset_cpus.clone(),
        pids_limit: req.pids_limit,
        ..HostConfig::default()
    };
    if !req.cpuset_mems.is_empty() {
        hc.extra
            .insert("CpusetMems".into(), Value::String(req.cpuset_mems.clone()));
    }
    hc
}

/// Docker's `UpdateContainer`: the container's host config with what the request sets
/// (zero: unchanged), or the conflict in Docker's words.
fn merged(
    before: &HostConfig,
    req: &UpdateConfig,
    asked: &HostConfig,
) -> std::result::Result<HostConfig, String> {
    // Nano CPUs replace the period and quota: one may not be updated once the other is set.
    let conflicts = [
        (
            req.nano_cpus > 0 && before.cpu_period > 0,
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        ),
        (
            req.nano_cpus > 0 && before.cpu_quota > 0,
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set",
        ),
        (
            req.cpu_period > 0 && before.nano_cpus > 0,
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        ),
        (
            req.cpu_quota > 0 && before.nano_cpus > 0,
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
        ),
        (
            req.memory != 0 && req.memory > before.memory_swap && req.memory_swap == 0,
            "Memory limit should be smaller than already set memoryswap limit, update the \
             memoryswap at the same time",
        ),
    ];
    if let Some((_, msg)) = conflicts.iter().find(|(hit, _)| *hit) {
        return Err(msg.to_string());
    }
    let mut hc = before.clone();
    let set = |v: i64, into: &mut i64| {
        if v != 0 {
            *into = v;
        }
    };
    set(req.memory, &mut hc.memory);
    set(req.memory_swap, &mut hc.memory_swap);
    set(req.nano_cpus, &mut hc.nano_cpus);
    set(req.cpu_shares, &mut hc.cpu_shares);
    set(req.cpu_period, &mut hc.cpu_period);
    set(req.cpu_quota, &mut hc.cpu_quota);
    if !req.cpuset_cpus.is_empty() {
        hc.cpuset_cpus = req.cpuset_cpus.clone();
    }
    if let Some(mems) = asked.extra.get("CpusetMems") {
        hc.extra.insert("CpusetMems".into(), mems.clone());
    }
    // Docker: 0 and -1 (any negative) both mean unlimited on update.
    if let Some(p) = req.pids_limit {
        hc.pids_limit = Some(p.max(0));
    }
    if !req.restart_policy.name.is_empty() {
        hc.restart_policy = req.restart_policy.clone();
    }
    Ok(hc)
}

/// What to write to a live container's cgroup: each limit the request sets, in the merged
/// config's terms (`--cpus` as quota and period; the CFS pair whole when either changes;
/// the memory limit with a swap limit, which v2 computes from it).
fn live_changes(req: &UpdateConfig, after: &HostConfig) -> berth_runtime::Resources {
    let all = spec::resources(after);
    let cfs = req.nano_cpus != 0 || req.cpu_period != 0 || req.cpu_quota != 0;
    berth_runtime::Resources {
        memory: if req.memory != 0 || req.memory_swap != 0 {
            all.memory
        } else {
            None
        },
        memory_swap: (req.memory_swap != 0).then_some(req.memory_swap),
        cpu_shares: (req.cpu_shares > 0).then_some(req.cpu_shares as u64),
        cpu_quota: if cfs {
            all.cpu_quota.or(Some(-1))
        } else {
            None
        },
        cpu_period: if cfs { all.cpu_period } else { None },
        cpuset_cpus: (!req.cpuset_cpus.is_empty()).then(|| req.cpuset_cpus.clone()),
        cpuset_mems: (!req.cpuset_mems.is_empty()).then(|| req.cpuset_mems.clone()),
        pids_limit: req.pids_limit.map(|p| p.max(0)),
        devices: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: &str) -> UpdateConfig {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_docker_clis_zero_fields_pass_and_others_are_refused_by_name() {
        // What docker 28 sends for `docker update --memory 64m --memory-swap 128m`.
        let full = r#"{"BlkioWeight":0,"BlkioWeightDevice":null,"BlkioDeviceReadBps":null,
            "BlkioDeviceWriteBps":null,"BlkioDeviceReadIOps":null,"BlkioDeviceWriteIOps":null,
            "CgroupParent":"","CpuCount":0,"CpuPercent":0,"CpuPeriod":0,"CpuQuota":0,
            "CpuRealtimePeriod":0,"CpuRealtimeRuntime":0,"CpuShares":0,"CpusetCpus":"",
            "CpusetMems":"","DeviceCgroupRules":null,"DeviceRequests":null,"Devices":null,
            "IOMaximumBandwidth":0,"IOMaximumIOps":0,"Init":null,"KernelMemory":0,
            "KernelMemoryTCP":0,"Memory":67108864,"MemoryReservation":0,"MemorySwap":134217728,
            "MemorySwappiness":null,"NanoCpus":0,"OomKillDisable":null,"PidsLimit":null,
            "Ulimits":null,"RestartPolicy":{"Name":"","MaximumRetryCount":0}}"#;
        refuse_unapplied(&req(full)).unwrap();
        let e = refuse_unapplied(&req(r#"{"BlkioWeight":300}"#)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--blkio-weight (BlkioWeight) cannot be updated by berth yet: refused rather than \
             ignored (value: 300)"
        );
        let e = refuse_unapplied(&req(r#"{"MemoryReservation":1048576}"#)).unwrap_err();
        assert!(e.to_string().contains("MemoryReservation"), "{e}");
        let e = refuse_unapplied(&req(r#"{"memory":1048576}"#)).unwrap_err();
        assert!(e.to_string().contains("spelt differently"), "{e}");
    }

    #[test]
    fn updates_merge_and_conflict_as_dockers() {
        let before = HostConfig {
            memory: 64 << 20,
            memory_swap: 128 << 20,
            nano_cpus: 500_000_000,
            ..HostConfig::default()
        };
        let m = |r: UpdateConfig| {
            let asked = asked_host_config(&r);
            merged(&before, &r, &asked)
        };
        let grown = m(req(r#"{"Memory":100663296,"PidsLimit":-1}"#)).unwrap();
        assert_eq!(grown.memory, 96 << 20);
        assert_eq!(grown.memory_swap, 128 << 20);
        assert_eq!(grown.pids_limit, Some(0));
        assert_eq!(grown.nano_cpus, 500_000_000);
        assert_eq!(
            m(req(r#"{"Memory":268435456}"#)).unwrap_err(),
            "Memory limit should be smaller than already set memoryswap limit, update the \
             memoryswap at the same time"
        );
        m(req(r#"{"Memory":268435456,"MemorySwap":536870912}"#)).unwrap();
        assert_eq!(
            m(req(r#"{"CpuQuota":50000}"#)).unwrap_err(),
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
        );
        let policy = m(req(r#"{"RestartPolicy":{"Name":"always"}}"#)).unwrap();
        assert_eq!(policy.restart_policy.name, "always");
        assert_eq!(policy.memory, 64 << 20);
    }

    #[test]
    fn live_changes_carry_only_what_was_asked() {
        let r = req(r#"{"NanoCpus":1500000000,"PidsLimit":0}"#);
        let after = merged(&HostConfig::default(), &r, &asked_host_config(&r)).unwrap();
        let live = live_changes(&r, &after);
        assert_eq!(live.cpu_quota, Some(150_000));
        assert_eq!(live.cpu_period, Some(100_000));
        assert_eq!(live.pids_limit, Some(0));
        assert_eq!(live.memory, None);
        assert_eq!(live.memory_swap, None);
        let r = req(r#"{"MemorySwap":-1}"#);
        let before = HostConfig {
            memory: 64 << 20,
            ..HostConfig::default()
        };
        let after = merged(&before, &r, &asked_host_config(&r)).unwrap();
        let live = live_changes(&r, &after);
        assert_eq!(live.memory, Some(64 << 20), "v2 computes swap from it");
        assert_eq!(live.memory_swap, Some(-1));
    }
}
