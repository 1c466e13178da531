//! Restart policies (`--restart`, `HostConfig.RestartPolicy`), with Docker's semantics
//! (moby `restartmanager` and `daemon/monitor.go`):
//!
//! - `no` never restarts; `always` restarts after any exit; `unless-stopped` likewise unless
//!   the user stopped the container; `on-failure[:N]` only after a non-zero exit, at most N
//!   times (no limit when N is 0).
//! - Before each restart the container waits (status `restarting`): 100 ms, doubled at each
//!   restart up to one minute, back to 100 ms once a run lasted 10 s. The wait is a timer,
//!   never a loop, and can be cancelled.
//! - `stop`, and `kill` with the stop signal (any signal when the image sets none), cancel the
//!   pending and the next restart ([`Manager::cancel`], Docker's `ExitOnNext`); a user `start`
//!   gives the container a fresh [`Manager`] and sets `RestartCount` back to 0.
//! - When berthd starts, [`Policy::restart_at_startup`] decides which stopped containers are
//!   started again (always; unless-stopped ones the user had not stopped; on-failure ones
//!   that failed and have retries left), as Docker's daemon restore does.

use std::time::Duration;

use berth_api::container::{HostConfig, RestartPolicy};

use crate::error::{EngineError, Result};

/// The first wait before a restart.
pub const FIRST_DELAY: Duration = Duration::from_millis(100);
/// The longest wait before a restart.
pub const MAX_DELAY: Duration = Duration::from_secs(60);
/// A run at least this long sets the wait back to [`FIRST_DELAY`].
pub const RESET_AFTER: Duration = Duration::from_secs(10);

/// A validated restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `no` (or empty): never restart.
    No,
    /// `always`.
    Always,
    /// `unless-stopped`.
    UnlessStopped,
    /// `on-failure[:max]`; `max` 0 means no limit.
    OnFailure { max: i64 },
}

impl Policy {
    /// Parses and validates the API's policy, with Docker's messages (moby
    /// `ValidateRestartPolicy`). An empty name with any count is `no`: Docker accepts it for
    /// requests from clients older than API 1.44.
    pub fn parse(p: &RestartPolicy) -> Result<Policy> {
        let count = p.maximum_retry_count;
        match p.name.as_str() {
            "" => Ok(Policy::No),
            "no" | "always" | "unless-stopped" => {
                if count != 0 {
                    let mut msg = String::from(
                        "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                    );
                    if count < 0 {
                        msg.push_str(" and cannot be negative");
                    }
                    return Err(EngineError::Invalid(msg));
                }
                Ok(match p.name.as_str() {
                    "no" => Policy::No,
                    "always" => Policy::Always,
                    _ => Policy::UnlessStopped,
                })
            }
            "on-failure" if count < 0 => Err(EngineError::Invalid(
                "invalid restart policy: maximum retry count cannot be negative".into(),
            )),
            "on-failure" => Ok(Policy::OnFailure { max: count }),
            other => Err(EngineError::Invalid(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', \
                 'on-failure', or 'unless-stopped'"
            ))),
        }
    }

    /// The policy of a stored record (validated at create; `no` should it not parse).
    pub fn of(hc: &HostConfig) -> Policy {
        Policy::parse(&hc.restart_policy).unwrap_or(Policy::No)
    }

    /// Whether an exit calls for a restart, before the manager's cancel and backoff.
    fn wants_restart(self, exit_code: i64, manually_stopped: bool, restart_count: i64) -> bool {
        match self {
            Policy::No => false,
            Policy::Always => true,
            Policy::UnlessStopped => !manually_stopped,
            Policy::OnFailure { max } => exit_code != 0 && (max == 0 || restart_count < max),
        }
    }

    /// Whether berthd, starting, starts this stopped container again (moby's restore:
    /// `ShouldRestart() && HasBeenStartedBefore`). `always` containers come back even when
    /// the user had stopped them, as Docker documents.
    pub fn restart_at_startup(
        self,
        started_before: bool,
        exit_code: i64,
        manually_stopped: bool,
        restart_count: i64,
    ) -> bool {
        started_before && self.wants_restart(exit_code, manually_stopped, restart_count)
    }
}

/// Refuses a policy Docker refuses at create: a bogus one, and any policy with `--rm`.
pub fn validate(hc: &HostConfig) -> Result<()> {
    let policy = Policy::parse(&hc.restart_policy)?;
    if hc.auto_remove && policy != Policy::No {
        return Err(EngineError::Invalid(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    Ok(())
}

/// A container's restart state between two user starts (in memory: a new berthd, like a
/// new dockerd, starts every container's backoff afresh).
#[derive(Debug, Default)]
pub struct Manager {
    /// The last wait; zero before the first restart.
    delay: Duration,
    /// Set by a user stop or kill: no restart until the next user start.
    canceled: bool,
    /// Dropping it wakes the pending restart's timer, which then gives up.
    pending: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Manager {
    /// Docker's `ShouldRestart`: advances the backoff and returns the wait before the
    /// restart, or `None` when the container stays down. `ran_for` is how long this run
    /// lasted; `restart_count` the restarts since the last user start.
    pub fn should_restart(
        &mut self,
        policy: Policy,
        exit_code: i64,
        manually_stopped: bool,
        restart_count: i64,
        ran_for: Duration,
    ) -> Option<Duration> {
        if policy == Policy::No || self.canceled {
            return None;
        }
        if ran_for >= RESET_AFTER {
            self.delay = Duration::ZERO;
        }
        self.delay = if self.delay.is_zero() {
            FIRST_DELAY
        } else {
            (self.delay * 2).min(MAX_DELAY)
        };
        policy
            .wants_restart(exit_code, manually_stopped, restart_count)
            .then_some(self.delay)
    }

    /// No restart until the next user start; wakes a pending one so that it gives up.
    pub fn cancel(&mut self) {
        self.canceled = true;
        self.pending = None;
    }

    /// Whether [`Manager::cancel`] was called since the last user start.
    pub fn canceled(&self) -> bool {
        self.canceled
    }

    /// Registers the pending restart's timer; returns what fires when it is cancelled
    /// (at once when it already was).
    pub fn arm(&mut self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !self.canceled {
            self.pending = Some(tx);
        }
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(name: &str, count: i64) -> RestartPolicy {
        RestartPolicy {
            name: name.into(),
            maximum_retry_count: count,
        }
    }

    fn err(name: &str, count: i64) -> String {
        Policy::parse(&policy(name, count)).unwrap_err().to_string()
    }

    #[test]
    fn policies_parse_with_dockers_messages() {
        assert_eq!(Policy::parse(&policy("", 3)).unwrap(), Policy::No);
        assert_eq!(Policy::parse(&policy("no", 0)).unwrap(), Policy::No);
        assert_eq!(Policy::parse(&policy("always", 0)).unwrap(), Policy::Always);
        assert_eq!(
            Policy::parse(&policy("unless-stopped", 0)).unwrap(),
            Policy::UnlessStopped
        );
        assert_eq!(
            Policy::parse(&policy("on-failure", 2)).unwrap(),
            Policy::OnFailure { max: 2 }
        );
        assert_eq!(
            err("sometimes", 0),
            "invalid restart policy: unknown policy 'sometimes'; use one of 'no', 'always', \
             'on-failure', or 'unless-stopped'"
        );
        assert_eq!(
            err("always", 3),
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        );
        assert_eq!(
            err("no", -1),
            "invalid restart policy: maximum retry count can only be used with 'on-failure' \
             and cannot be negative"
        );
        assert_eq!(
            err("on-failure", -1),
            "invalid restart policy: maximum retry count cannot be negative"
        );
    }

    #[test]
    fn auto_remove_with_a_policy_is_refused() {
        let mut hc = HostConfig {
            auto_remove: true,
            restart_policy: policy("always", 0),
            ..Default::default()
        };
        assert_eq!(
            validate(&hc).unwrap_err().to_string(),
            "can't create 'AutoRemove' container with restart policy"
        );
        hc.restart_policy = policy("no", 0);
        validate(&hc).unwrap();
        hc.restart_policy = policy("", 0);
        validate(&hc).unwrap();
    }

    #[test]
    fn each_policy_restarts_on_its_exits() {
        let mut m = Manager::default();
        let short = Duration::from_millis(5);
        assert_eq!(m.should_restart(Policy::No, 1, false, 0, short), None);
        assert!(m
            .should_restart(Policy::Always, 0, true, 0, short)
            .is_some());
        assert!(m
            .should_restart(Policy::UnlessStopped, 0, false, 0, short)
            .is_some());
        assert_eq!(
            m.should_restart(Policy::UnlessStopped, 0, true, 0, short),
            None
        );
        let on_failure = Policy::OnFailure { max: 2 };
        assert_eq!(m.should_restart(on_failure, 0, false, 0, short), None);
        assert!(m.should_restart(on_failure, 3, false, 1, short).is_some());
        assert_eq!(m.should_restart(on_failure, 3, false, 2, short), None);
        let unlimited = Policy::OnFailure { max: 0 };
        assert!(m.should_restart(unlimited, 3, false, 1000, short).is_some());
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets_after_ten_seconds() {
        let mut m = Manager::default();
        let short = Duration::from_millis(5);
        let mut delays = Vec::new();
        for _ in 0..12 {
            delays.push(
                m.should_restart(Policy::Always, 1, false, 0, short)
                    .unwrap(),
            );
        }
        let ms: Vec<u128> = delays.iter().map(|d| d.as_millis()).collect();
        assert_eq!(
            ms,
            [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]
        );
        let after_long_run = m.should_restart(Policy::Always, 1, false, 0, RESET_AFTER);
        assert_eq!(after_long_run, Some(FIRST_DELAY));
    }

    #[test]
    fn cancel_stops_restarts_and_wakes_the_pending_one() {
        let mut m = Manager::default();
        let mut rx = m.arm();
        assert!(rx
            .try_recv()
            .is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Empty));
        m.cancel();
        assert!(rx
            .try_recv()
            .is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Closed));
        assert_eq!(
            m.should_restart(Policy::Always, 1, false, 0, Duration::ZERO),
            None
        );
        // A timer armed after the cancel fires at once.
        let mut rx = m.arm();
        assert!(rx
            .try_recv()
            .is_err_and(|e| e == tokio::sync::oneshot::error::TryRecvError::Closed));
    }

    #[test]
    fn startup_restarts_what_docker_restarts() {
        let always = Policy::Always;
        assert!(always.restart_at_startup(true, 0, true, 0));
        assert!(!always.restart_at_startup(false, 0, false, 0));
        assert!(!Policy::UnlessStopped.restart_at_startup(true, 0, true, 0));
        assert!(Policy::UnlessStopped.restart_at_startup(true, 255, false, 0));
        assert!(Policy::OnFailure { max: 2 }.restart_at_startup(true, 255, false, 1));
        assert!(!Policy::OnFailure { max: 2 }.restart_at_startup(true, 255, false, 2));
        assert!(!Policy::OnFailure { max: 0 }.restart_at_startup(true, 0, false, 0));
        assert!(!Policy::No.restart_at_startup(true, 1, false, 0));
    }
}
