//! Docker's human-readable durations and `ps` status strings (go-units `HumanDuration`).

use chrono::{DateTime, Utc};

use crate::record::{ContainerState, Status};

/// go-units `HumanDuration`: "Less than a second", "1 second", "About a minute", ...
pub fn human_duration(d: chrono::Duration) -> String {
    let seconds = d.num_seconds();
    if seconds < 1 {
        return "Less than a second".into();
    }
    if seconds == 1 {
        return "1 second".into();
    }
    if seconds < 60 {
        return format!("{seconds} seconds");
    }
    let minutes = d.num_minutes();
    if minutes == 1 {
        return "About a minute".into();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Go rounds to the nearest hour here.
    let hours = (d.num_seconds() + 1800) / 3600;
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", d.num_hours() / 24 / 365)
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
    fn durations_read_like_docker() {
        assert_eq!(
            human_duration(Duration::milliseconds(300)),
            "Less than a second"
        );
        assert_eq!(human_duration(Duration::seconds(1)), "1 second");
        assert_eq!(human_duration(Duration::seconds(2)), "2 seconds");
        assert_eq!(human_duration(Duration::seconds(61)), "About a minute");
        assert_eq!(human_duration(Duration::minutes(3)), "3 minutes");
        assert_eq!(human_duration(Duration::minutes(70)), "About an hour");
        assert_eq!(human_duration(Duration::hours(5)), "5 hours");
        assert_eq!(human_duration(Duration::days(3)), "3 days");
        assert_eq!(human_duration(Duration::days(20)), "2 weeks");
        assert_eq!(human_duration(Duration::days(90)), "3 months");
        assert_eq!(human_duration(Duration::days(800)), "2 years");
    }

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
    }
}
