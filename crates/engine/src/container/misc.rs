//! The small operations: rename, pause, unpause, top, prune.

use std::sync::Arc;

use berth_api::container::TopResponse;
use berth_api::filters::{labels_match, Filters};

use crate::error::{EngineError, Result};
use crate::names;
use crate::record::Status;
use crate::Engine;

impl Engine {
    /// `POST /containers/{id}/rename?name=`.
    pub fn rename(&self, name_or_id: &str, new_name: &str) -> Result<()> {
        let new_name = names::validate(new_name)?;
        let c = self.get(name_or_id)?;
        let map = self.containers.write().expect("containers lock");
        if let Some(other) = map.values().find(|o| o.name() == new_name) {
            if other.id == c.id {
                return Err(EngineError::Invalid(
                    "Renaming a container with the same name as its current name".into(),
                ));
            }
            return Err(EngineError::NameInUse {
                name: new_name,
                id: other.id.clone(),
            });
        }
        let old_name = c.name();
        c.update_record(&self.cfg, |r| r.name = new_name)?;
        drop(map);
        self.emit_container(&c, "rename", &[("oldName", old_name)]);
        Ok(())
    }

    /// Freezes a running container.
    pub async fn pause(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _op = c.op.lock().await;
        match c.state().status {
            Status::Running => {}
            Status::Paused => {
                return Err(EngineError::Conflict(format!(
                    "Container {} is already paused",
                    c.id
                )))
            }
            Status::Restarting => return Err(restarting(&c.id)),
            _ => return Err(EngineError::NotRunning(c.id.clone())),
        }
        self.runtime_call(&c, "pause", |rt, b| rt.pause(b)).await?;
        c.update_state(&self.cfg, false, |s| s.status = Status::Paused)?;
        self.emit_container(&c, "pause", &[]);
        Ok(())
    }

    /// Thaws a paused container.
    pub async fn unpause(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _op = c.op.lock().await;
        if c.state().status != Status::Paused {
            return Err(EngineError::NotPaused(c.id.clone()));
        }
        self.runtime_call(&c, "unpause", |rt, b| rt.resume(b))
            .await?;
        c.update_state(&self.cfg, false, |s| s.status = Status::Running)?;
        self.emit_container(&c, "unpause", &[]);
        Ok(())
    }

    /// `docker top`: the host's `ps` output restricted to the container's processes.
    pub async fn top(
        self: &Arc<Self>,
        name_or_id: &str,
        ps_args: Option<&str>,
    ) -> Result<TopResponse> {
        let c = self.get(name_or_id)?;
        match c.state().status {
            Status::Restarting => return Err(restarting(&c.id)),
            s if !s.is_active() => return Err(EngineError::NotRunning(c.id.clone())),
            _ => {}
        }
        let pids = self
            .runtime_call(&c, "list the processes of", |rt, b| rt.pids(b))
            .await?;
        let args: Vec<String> = ps_args
            .filter(|a| !a.is_empty())
            .unwrap_or("-ef")
            .split_whitespace()
            .map(String::from)
            .collect();
        let out = tokio::process::Command::new("ps")
            .args(&args)
            .output()
            .await
            .map_err(|e| EngineError::Internal(format!("running ps: {e}")))?;
        if !out.status.success() {
            return Err(EngineError::Internal(format!(
                "ps: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        parse_ps(&String::from_utf8_lossy(&out.stdout), &pids)
    }

    /// `POST /containers/prune`: removes stopped containers; returns their ids.
    pub async fn prune(self: &Arc<Self>, filters: &Filters) -> Result<Vec<String>> {
        filters
            .validate(&["label", "until"])
            .map_err(|e| EngineError::Invalid(e.to_string()))?;
        let until = filters
            .get("until")
            .first()
            .map(|u| parse_until(u))
            .transpose()?;
        let mut removed = Vec::new();
        for c in self.all() {
            let (created, labels) = {
                let r = c.record();
                (r.created, r.config.labels.clone())
            };
            if c.state().status.is_active()
                || !labels_match(filters.get("label"), labels.as_ref())
                || until.is_some_and(|u| created >= u)
            {
                continue;
            }
            self.remove_container(&c, false).await;
            removed.push(c.id.clone());
        }
        // Docker's `prune` event; berth does not measure what the removals reclaimed.
        self.emit_prune(berth_api::events::CONTAINER, 0);
        Ok(removed)
    }
}

/// An `until` filter's time: unix seconds, RFC 3339, or a Go duration (`10m`, `1h30m`)
/// back from now, as moby's `timetypes.GetTimestamp` takes it.
pub(crate) fn parse_until(s: &str) -> Result<chrono::DateTime<chrono::Utc>> {
    if let Some(nanos) = go_duration_nanos(s) {
        return Ok(chrono::Utc::now() - chrono::Duration::nanoseconds(nanos));
    }
    if let Ok(secs) = s.parse::<i64>() {
        return chrono::DateTime::from_timestamp(secs, 0)
            .ok_or_else(|| EngineError::Invalid(format!("invalid until: {s}")));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|_| EngineError::Invalid(format!("invalid until: {s}")))
}

/// A Go duration (`1h30m`, `90s`, `1.5h`) in nanoseconds; `None` if `s` is not one.
fn go_duration_nanos(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest.is_empty() || rest.parse::<f64>().is_ok() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_end..];
    }
    let nanos = total as i64;
    Some(if neg { -nanos } else { nanos })
}

/// Keeps the rows of `ps` output whose PID column is one of `pids`.
fn parse_ps(output: &str, pids: &[i32]) -> Result<TopResponse> {
    let mut lines = output.lines();
    let header = lines.next().unwrap_or_default();
    let titles: Vec<String> = header.split_whitespace().map(String::from).collect();
    let pid_col = titles
        .iter()
        .position(|t| t == "PID")
        .ok_or_else(|| EngineError::Invalid("Couldn't find PID field in ps output".into()))?;
    let mut processes = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < titles.len() {
            continue;
        }
        let Ok(pid) = fields[pid_col].parse::<i32>() else {
            continue;
        };
        if !pids.contains(&pid) {
            continue;
        }
        let mut row: Vec<String> = fields[..titles.len() - 1]
            .iter()
            .map(|s| s.to_string())
            .collect();
        row.push(fields[titles.len() - 1..].join(" "));
        processes.push(row);
    }
    Ok(TopResponse { titles, processes })
}

/// Docker's refusal of pause and top while a restart waits for its backoff.
pub(crate) fn restarting(id: &str) -> EngineError {
    EngineError::Conflict(format!(
        "Container {id} is restarting, wait until the container is running"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_go_durations() {
        assert_eq!(go_duration_nanos("1h30m"), Some(5_400_000_000_000));
        assert_eq!(go_duration_nanos("1.5s"), Some(1_500_000_000));
        assert_eq!(go_duration_nanos("10"), None);
        assert_eq!(go_duration_nanos("10x"), None);
        let t = parse_until("24h").unwrap();
        let back = chrono::Utc::now() - t;
        assert!((back.num_hours() - 24).abs() <= 1, "{back}");
        assert_eq!(
            parse_until("1700000000").unwrap().timestamp(),
            1_700_000_000
        );
    }

    #[test]
    fn ps_output_is_filtered_by_pid_and_keeps_the_command_whole() {
        let out = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:00 /sbin/init\nroot 42 1 0 10:01 ? 00:00:00 sleep 60\n";
        let top = parse_ps(out, &[42]).unwrap();
        assert_eq!(top.titles.len(), 8);
        assert_eq!(
            top.processes,
            vec![vec![
                "root", "42", "1", "0", "10:01", "?", "00:00:00", "sleep 60"
            ]]
        );
    }
}
