//! `POST /containers/{id}/wait`.

use std::sync::Arc;

use crate::container::Lifecycle;
use crate::error::{EngineError, Result};
use crate::Engine;

/// Docker's wait conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    /// Returns at once when the container is not running (the default).
    NotRunning,
    /// Waits for the next exit, even if the container is stopped now.
    NextExit,
    /// Waits until the container has been removed.
    Removed,
}

impl WaitCondition {
    /// Parses the `condition` parameter; Docker's 400 text otherwise.
    pub fn parse(s: Option<&str>) -> Result<Self> {
        match s.unwrap_or("") {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(EngineError::Invalid(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

/// The outcome of a wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    /// The exit code.
    pub status_code: i64,
}

impl Engine {
    /// Registers a waiter now (so that a `start` sent after this returns cannot be missed)
    /// and returns the future that resolves per `condition`.
    pub fn wait(
        self: &Arc<Self>,
        name_or_id: &str,
        condition: WaitCondition,
    ) -> Result<impl std::future::Future<Output = WaitOutcome> + Send + 'static> {
        let c = self.get(name_or_id)?;
        let mut rx = c.lifecycle.subscribe();
        let seen = rx.borrow().exits;
        let active = c.state().status.is_active();
        Ok(async move {
            let done = |l: &Lifecycle| match condition {
                WaitCondition::NotRunning => !active || l.exits > seen || l.removed,
                WaitCondition::NextExit => l.exits > seen || l.removed,
                WaitCondition::Removed => l.removed,
            };
            let waited = rx.wait_for(done).await.map(|l| l.clone());
            // The sender is gone only when the container is gone.
            let l = waited.unwrap_or_else(|_| rx.borrow().clone());
            WaitOutcome {
                status_code: l.exit_code,
            }
        })
    }
}
