//! `stop`, `kill` and `restart`.

use std::sync::Arc;
use std::time::Duration;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::restart::Policy;
use crate::Engine;

/// Docker's default stop timeout.
const DEFAULT_STOP_TIMEOUT: i64 = 10;

impl Engine {
    /// Sends the stop signal, then SIGKILL after the timeout. 304 when not running.
    pub async fn stop(
        self: &Arc<Self>,
        name_or_id: &str,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let c = self.get(name_or_id)?;
        let _op = c.op.lock().await;
        if !c.state().status.is_active() {
            return Err(EngineError::AlreadyInState("stopped"));
        }
        self.stop_locked(&c, timeout, signal).await
    }

    /// Stops `c` (the caller holds `c.op`); Docker's `stop` event follows a stop that
    /// worked, after the `kill` event of each signal sent and the `die` of the exit.
    pub(crate) async fn stop_locked(
        self: &Arc<Self>,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        self.stop_signalled(c, timeout, signal).await?;
        self.emit_container(c, "stop", &[]);
        Ok(())
    }

    async fn stop_signalled(
        self: &Arc<Self>,
        c: &Arc<Container>,
        timeout: Option<i64>,
        signal: Option<&str>,
    ) -> Result<()> {
        let rec = c.record().clone();
        let sig = match signal.or(rec.config.stop_signal.as_deref()) {
            Some(s) => parse_signal(s)?,
            None => libc::SIGTERM,
        };
        let timeout = timeout
            .or(rec.config.stop_timeout)
            .unwrap_or(DEFAULT_STOP_TIMEOUT);
        // Docker's `HasBeenManuallyStopped` (kept across a berthd restart, for
        // unless-stopped) and `ExitOnNext` (no restart until the next user start).
        mark_manually_stopped(self, c)?;
        c.restart_manager().cancel();
        let mut exits = c.lifecycle.subscribe();
        let seen = exits.borrow().exits;
        // Read after `seen`: an exit not yet in the state is one `exits` will report.
        match c.state().status {
            Status::Running => {}
            Status::Paused => {
                // A frozen process cannot handle its signal: thaw it first, as Docker does.
                let _ = self.runtime_call(c, "unpause", |rt, b| rt.resume(b)).await;
            }
            Status::Restarting => {
                // Waiting for its backoff: no process to signal, and no restart now.
                self.settle_stopped(c);
                return Ok(());
            }
            _ => return Ok(()),
        }
        // Each `kill` event goes out before its signal: the exit it causes can be recorded
        // (and `die` sent) before the shim's answer to the signal is back, and Docker's
        // order is kill, die.
        self.emit_container(c, "kill", &[("signal", sig.to_string())]);
        let _ = self
            .runtime_call(c, "kill", move |rt, b| rt.signal(b, sig))
            .await;
        let exited = |l: &crate::container::Lifecycle| l.exits > seen;
        if timeout >= 0 {
            let wait =
                tokio::time::timeout(Duration::from_secs(timeout as u64), exits.wait_for(exited))
                    .await;
            if wait.is_ok() {
                return Ok(());
            }
        } else {
            let _ = exits.wait_for(exited).await;
            return Ok(());
        }
        self.emit_container(c, "kill", &[("signal", libc::SIGKILL.to_string())]);
        let _ = self
            .runtime_call(c, "kill", |rt, b| rt.signal(b, libc::SIGKILL))
            .await;
        let _ = exits.wait_for(exited).await;
        Ok(())
    }

    /// Sends a signal; 409 when the container does not run. As Docker's `killWithSignal`,
    /// marks the container as stopped by the user and, for SIGKILL, its stop signal, or any
    /// signal when it has none, cancels its restart policy until the next user start.
    pub async fn kill(self: &Arc<Self>, name_or_id: &str, signal: Option<&str>) -> Result<()> {
        let c = self.get(name_or_id)?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("KILL"))?;
        let not_running = || {
            EngineError::Conflict(format!(
                "Cannot kill container: {name_or_id}: Container {} is not running",
                c.id
            ))
        };
        let status = c.state().status;
        if !status.is_active() {
            return Err(not_running());
        }
        let stop_signal = c.record().config.stop_signal.clone();
        let stops = sig == libc::SIGKILL
            || match stop_signal.as_deref().filter(|s| !s.is_empty()) {
                Some(s) => parse_signal(s).ok() == Some(sig),
                None => true,
            };
        // Not under `op` (a kill must get through a `stop` waiting for its timeout), except
        // while a restart is pending, so that the restart and this kill do not cross.
        let locked = status == Status::Restarting;
        let _op = if locked {
            Some(c.op.lock().await)
        } else {
            None
        };
        mark_manually_stopped(self, &c)?;
        if stops {
            c.restart_manager().cancel();
        }
        // It may have exited on its own meanwhile, its restart pending: as above.
        let _late_op = if !locked && c.state().status == Status::Restarting {
            Some(c.op.lock().await)
        } else {
            None
        };
        match c.state().status {
            Status::Restarting => {
                // No process to signal: Docker only tells the pending restart (cancelled
                // above when the signal stops the container).
                if stops {
                    self.settle_stopped(&c);
                }
                self.emit_container(&c, "kill", &[("signal", sig.to_string())]);
                Ok(())
            }
            s if !s.is_active() => Err(not_running()),
            _ => {
                // Before the signal, as in `stop`: its `die` may come before the answer.
                self.emit_container(&c, "kill", &[("signal", sig.to_string())]);
                self.runtime_call(&c, "kill", move |rt, b| rt.signal(b, sig))
                    .await?;
                Ok(())
            }
        }
    }

    /// Stops (if running) and starts again.
    pub async fn restart(self: &Arc<Self>, name_or_id: &str, timeout: Option<i64>) -> Result<()> {
        let c = self.get(name_or_id)?;
        // A task of its own, as `start`: a client gone mid-way does not cut it short.
        let engine = self.clone();
        tokio::spawn(async move {
            let _op = c.op.lock().await;
            if c.state().status.is_active() {
                engine.stop_locked(&c, timeout, None).await?;
            }
            engine.start_locked(&c).await?;
            engine.emit_container(&c, "restart", &[]);
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(EngineError::Invalid(format!("restart: {e}"))))
    }

    /// Runs `f` on the container's runtime off the async threads; a failure says what was
    /// being done to which container (`what`: Docker's verb, "kill", "pause", ...) and keeps
    /// the runtime's kind for the status.
    pub(crate) async fn runtime_call<T: Send + 'static>(
        &self,
        c: &Container,
        what: &'static str,
        f: impl FnOnce(&dyn crate::Runtime, &std::path::Path) -> Result<T, berth_runtime::RuntimeError>
            + Send
            + 'static,
    ) -> Result<T> {
        let rt = self.runtime.clone();
        let bundle = self.cfg.bundle_dir(&c.id);
        tokio::task::spawn_blocking(move || f(rt.as_ref(), &bundle))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))?
            .map_err(|source| EngineError::Runtime {
                context: format!("Cannot {what} container {}", c.id),
                source,
            })
    }
}

/// Sets Docker's `HasBeenManuallyStopped`. Forced to disk only for `unless-stopped`, the
/// one policy berthd's start-up reads it for (the exit recorded next is durable anyway).
fn mark_manually_stopped(engine: &Engine, c: &Container) -> Result<()> {
    let durable = Policy::of(&c.record().host_config) == Policy::UnlessStopped;
    c.update_state(&engine.cfg, durable, |s| s.has_been_manually_stopped = true)?;
    Ok(())
}

/// `KILL`, `SIGKILL`, `kill`, `9` -> 9. Docker's error for others: `Invalid signal: X`.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let n = match name {
        "HUP" => libc::SIGHUP,
        "INT" => libc::SIGINT,
        "QUIT" => libc::SIGQUIT,
        "ILL" => libc::SIGILL,
        "TRAP" => libc::SIGTRAP,
        "ABRT" | "IOT" => libc::SIGABRT,
        "BUS" => libc::SIGBUS,
        "FPE" => libc::SIGFPE,
        "KILL" => libc::SIGKILL,
        "USR1" => libc::SIGUSR1,
        "SEGV" => libc::SIGSEGV,
        "USR2" => libc::SIGUSR2,
        "PIPE" => libc::SIGPIPE,
        "ALRM" => libc::SIGALRM,
        "TERM" => libc::SIGTERM,
        "STKFLT" => libc::SIGSTKFLT,
        "CHLD" => libc::SIGCHLD,
        "CONT" => libc::SIGCONT,
        "STOP" => libc::SIGSTOP,
        "TSTP" => libc::SIGTSTP,
        "TTIN" => libc::SIGTTIN,
        "TTOU" => libc::SIGTTOU,
        "URG" => libc::SIGURG,
        "XCPU" => libc::SIGXCPU,
        "XFSZ" => libc::SIGXFSZ,
        "VTALRM" => libc::SIGVTALRM,
        "PROF" => libc::SIGPROF,
        "WINCH" => libc::SIGWINCH,
        "IO" | "POLL" => libc::SIGIO,
        "PWR" => libc::SIGPWR,
        "SYS" => libc::SIGSYS,
        _ => return Err(EngineError::Invalid(format!("Invalid signal: {s}"))),
    };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_in_every_spelling() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("sigterm").unwrap(), 15);
        assert_eq!(parse_signal("1").unwrap(), 1);
        assert_eq!(
            parse_signal("BOGUS").unwrap_err().to_string(),
            "Invalid signal: BOGUS"
        );
    }
}
