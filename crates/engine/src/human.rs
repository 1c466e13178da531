//! Docker's `ps` status strings, built on go-units `HumanDuration` (in `berth-api`).

use chrono::{DateTime, Utc};

use crate::record::{ContainerState, Status};

/// go-units `HumanDuration` of a (possibly negative, then zero) time difference.
pub fn human_duration(d: chrono::Duration) -> String {
    berth_api::human::human_duration(d.to_std().unwrap_or_default())
}

/// The `Status` column of `docker ps`: "Up 3 minutes", "Exited (0) 2 seconds ago", ...
pub fn status_string(state: &ContainerState, now: DateTime<Utc>) -> String {
    let since = |t: Option<DateTime<Utc>>| human_duration(now - t.unwrap_or(now));
    match state.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(state.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            state.exit_code,
            since(state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            state.exit_code,
            since(state.finished_at)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn status_strings_match_docker() {
        let now = Utc::now();
        let mut s = ContainerState {
            status: Status::Exited,
            exit_code: 3,
            finished_at: Some(now - Duration::seconds(2)),
            ..Default::default()
        };
        assert_eq!(status_string(&s, now), "Exited (3) 2 seconds ago");
        s.status = Status::Running;
        s.started_at = Some(now - Duration::minutes(3));
        assert_eq!(status_string(&s, now), "Up 3 minutes");
        s.status = Status::Paused;
        assert_eq!(status_string(&s, now), "Up 3 minutes (Paused)");
        s.status = Status::Created;
        assert_eq!(status_string(&s, now), "Created");
        s.status = Status::Restarting;
        s.exit_code = 1;
        assert_eq!(status_string(&s, now), "Restarting (1) 2 seconds ago");
    }
}
