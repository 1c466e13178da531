//! `POST /containers/{id}/start`: write the per-container `/etc` files, build the runtime
//! spec, spawn the shim, then watch for the exit.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::Utc;

use crate::container::{Container, Lifecycle};
use crate::error::{EngineError, Result};
use crate::record::{ContainerRecord, Status};
use crate::restart::Policy;
use crate::runtime::ExitInfo;
use crate::{spec, Engine};

/// Who starts a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Launch {
    /// `start`, `restart`, or berthd's start-up (Docker resets the restart manager then).
    User,
    /// Its restart policy, after the backoff.
    Policy,
}

impl Engine {
    /// Starts a created or exited container. `AlreadyInState` (304) when it runs.
    ///
    /// Runs as a task of its own: a client that goes away mid-start (its request future
    /// dropped) must not leave the start half done (an address leased, ports held, a
    /// shim started and never monitored).
    pub async fn start(self: &Arc<Self>, name_or_id: &str) -> Result<()> {
        self.start_with_env(name_or_id, Vec::new()).await
    }

    /// [`Engine::start`] with `env` (`KEY=value`) added to the process's environment for
    /// this run only: it goes into the runtime's spec (under the exec root) and is never
    /// written to the container's record or shown by inspect. The builder's secrets in the
    /// environment (`RUN --mount=type=secret,env=`) take this way.
    pub async fn start_with_env(
        self: &Arc<Self>,
        name_or_id: &str,
        env: Vec<String>,
    ) -> Result<()> {
        let c = self.get(name_or_id)?;
        let engine = self.clone();
        tokio::spawn(async move {
            let _op = c.op.lock().await;
            engine.start_locked_with(&c, env).await
        })
        .await
        .unwrap_or_else(|e| Err(EngineError::Invalid(format!("start: {e}"))))
    }

    /// A user start (`start`, `restart`, berthd's start-up): also gives the container a
    /// fresh restart manager and, once it runs, `RestartCount` 0 and no manual stop.
    pub(crate) async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        self.start_locked_with(c, Vec::new()).await
    }

    /// [`Engine::start_locked`] with the run's own extra environment.
    async fn start_locked_with(
        self: &Arc<Self>,
        c: &Arc<Container>,
        extra_env: Vec<String>,
    ) -> Result<()> {
        let status = c.state().status;
        if status.is_active() {
            return Err(EngineError::AlreadyInState("started"));
        }
        if status == Status::Removing {
            return Err(EngineError::Conflict(format!(
                "container {} is marked for removal and cannot be started",
                c.id
            )));
        }
        if !status.can_start() {
            return Err(EngineError::Invalid(format!(
                "cannot start a container in state {}",
                status.as_str()
            )));
        }
        *c.restart_manager() = Default::default();
        self.launch(c, Launch::User, extra_env).await
    }

    /// The start itself, shared by a user start and a restart by policy: the rw layer, the
    /// `/etc` files, the spec, the shim, then the monitor. The caller holds `c.op`.
    /// `extra_env` goes into this run's spec only (this copy of the record is not stored).
    async fn launch(
        self: &Arc<Self>,
        c: &Arc<Container>,
        how: Launch,
        extra_env: Vec<String>,
    ) -> Result<()> {
        let mut rec = c.record().clone();
        if !extra_env.is_empty() {
            let env = rec.config.env.get_or_insert_with(Vec::new);
            for e in extra_env {
                let key = e.split('=').next().unwrap_or_default().to_string();
                env.retain(|old| old.split('=').next() != Some(key.as_str()));
                env.push(e);
            }
        }
        // Refused while a volume it mounts is being exported or imported; its volumes are
        // marked until it runs (or fails), so that no copy starts meanwhile.
        let _starting = self.volume_start_marks(&rec)?;
        // The rw layer again: the same mounts, or a new empty layer when a crash lost it (a
        // container snapshot is not forced to disk at create).
        match self.snapshot_mounts(&c.id, &rec.image_id) {
            Ok(mounts) => rec.rootfs = mounts,
            Err(e) => tracing::warn!(container = %c.id, "preparing the rw layer again: {e}"),
        }
        let bundle = self.cfg.bundle_dir(&c.id);
        // The network first: /etc/hosts names the container's address.
        let network = match self
            .network_mode(&rec.host_config.network_mode)
            .and_then(|mode| Ok((mode, crate::ports::requests(&rec.config, &rec.host_config)?)))
        {
            Ok((mode, ports)) => {
                let (engine, id, rec) = (self.clone(), c.id.clone(), rec.clone());
                tokio::task::spawn_blocking(move || engine.prepare_network(&id, mode, &rec, &ports))
                    .await
                    .unwrap_or_else(|e| Err(EngineError::Invalid(format!("network: {e}"))))
            }
            Err(e) => Err(e),
        };
        let prepared = network.and_then(|network| {
            let spec = self
                .isolation_peers(&rec.host_config)
                .and_then(|peers| {
                    let first = crate::network::attach_order(&rec)
                        .first()
                        .and_then(|(name, _)| network.endpoints.get(name))
                        .map(|ep| (ep.ip, ep.gateway, ep.v6.map(|v| v.ip)));
                    let host_gateway = first
                        .map(|f| f.1)
                        .or_else(|| self.net.bridge_info().and_then(|b| b.1.parse().ok()));
                    let etc = write_etc_files(
                        &self.cfg.container_dir(&c.id),
                        &rec,
                        first.map(|f| f.0),
                        first.and_then(|f| f.2),
                        host_gateway,
                        network.dns,
                    )?;
                    let mounts = self.runtime_mounts(&rec)?;
                    spec::build(&self.cfg, &rec, &bundle, &etc, &peers, mounts)
                })
                .and_then(|spec| reset_bundle(&bundle).map(|_| spec));
            match spec {
                Ok(spec) => Ok((spec, network)),
                Err(e) => {
                    c.set_state(|s| s.networks.clear());
                    self.stop_dns(&c.id);
                    self.release_network(&c.id, network.endpoints);
                    Err(e)
                }
            }
        });
        let (mut spec, network) = match prepared {
            Ok(ready) => ready,
            Err(e) => {
                self.answer_pending_attach(c, Err(e.to_string()));
                return Err(self.start_failed(c, &rec, e.to_string(), e));
            }
        };
        // A client attached before this start: the shim holds the output for it.
        spec.stdio.hold_output = self.attach_waiting(c);
        // The endpoint is recorded before the container can run: a berthd killed during
        // the start finds it at restore with the running container (its address and ports
        // taken back, not handed to another). Not forced to disk (/run's shim is the fact).
        if !network.endpoints.is_empty() {
            let endpoints = network.endpoints.clone();
            if let Err(e) = c.update_state(&self.cfg, false, |s| s.networks = endpoints) {
                tracing::warn!(container = %c.id, "recording the network endpoint: {e}");
            }
        }
        let runtime = self.runtime.clone();
        let netns = network.netns;
        let started = tokio::task::spawn_blocking(move || runtime.start(&spec, netns))
            .await
            .unwrap_or_else(|e| {
                Err(berth_runtime::RuntimeError::Start(format!(
                    "starting the shim: {e}"
                )))
            });
        // The spares used by the create before this start (container/spares.rs).
        self.refill_spares();
        let endpoints = network.endpoints;
        if started.is_err() {
            c.set_state(|s| s.networks.clear());
            self.stop_dns(&c.id);
            self.release_network(&c.id, endpoints.clone());
        }
        match started {
            Ok(pid) => {
                // Not forced to disk: while it runs, the shim in /run is the fact.
                c.update_state(&self.cfg, false, |s| {
                    s.status = Status::Running;
                    s.networks = endpoints;
                    s.pid = pid;
                    s.exit_code = 0;
                    s.error.clear();
                    s.oom_killed = false;
                    s.started_at = Some(Utc::now());
                    // FinishedAt keeps the end of the last run, as Docker's does.
                    if how == Launch::User {
                        s.has_been_manually_stopped = false;
                        s.restart_count = 0;
                    }
                })?;
                self.emit_volume_mounts(&rec, true);
                self.emit_container(c, "start", &[]);
                self.monitor(c.clone());
                self.answer_pending_attach(c, Ok(()));
                Ok(())
            }
            Err(source) => {
                let message = format!(
                    "failed to create task for container: OCI runtime create failed: {source}: unknown"
                );
                let err = EngineError::Start {
                    message: message.clone(),
                    source,
                };
                self.answer_pending_attach(c, Err(message.clone()));
                Err(self.start_failed(c, &rec, message, err))
            }
        }
    }

    /// Records a failed start as Docker does: the status stays what it was (`created` for a
    /// container that never ran), the exit code comes from the error and the message goes
    /// to `State.Error`; neither `StartedAt` nor `FinishedAt` changes. Wakes waiters (which
    /// ends attach streams, as Docker closes them), applies auto-remove; returns the error
    /// for the client.
    fn start_failed(
        self: &Arc<Self>,
        c: &Arc<Container>,
        rec: &ContainerRecord,
        message: String,
        err: EngineError,
    ) -> EngineError {
        let code = start_failure_exit_code(&message);
        if let Err(e) = c.update_state(&self.cfg, true, |s| {
            s.exit_code = code;
            s.error = message.clone();
            s.pid = 0;
        }) {
            tracing::error!(container = %c.id, "recording a failed start: {e}");
        }
        // Docker's wait result after a failed start is `{"StatusCode":127}` with no error:
        // the start response already carried the message.
        c.lifecycle.send_modify(|l| {
            l.exits += 1;
            l.exit_code = code;
        });
        if rec.host_config.auto_remove {
            let engine = self.clone();
            let c = c.clone();
            tokio::spawn(async move { engine.remove_container(&c, true).await });
        }
        err
    }

    /// Spawns the task that awaits this run's exit.
    pub(crate) fn monitor(self: &Arc<Self>, c: Arc<Container>) {
        let engine = self.clone();
        tokio::spawn(async move {
            let bundle = engine.cfg.bundle_dir(&c.id);
            let exit = engine.runtime.wait(&bundle).await;
            engine.record_exit(&c, exit, true).await;
        });
    }

    /// Records an exit, wakes waiters, then applies the restart policy (when `by_policy`;
    /// berthd's start-up decides itself) or auto-remove. A restart is scheduled after the
    /// backoff with the status `restarting`, Docker's `SetRestarting`.
    pub(crate) async fn record_exit(
        self: &Arc<Self>,
        c: &Arc<Container>,
        exit: Option<ExitInfo>,
        by_policy: bool,
    ) {
        let exit = exit.unwrap_or(ExitInfo {
            exit_code: 255,
            oom_killed: false,
            finished_at: None,
        });
        // Its exec'd processes went with it.
        self.end_execs(&c.id);
        self.emit_volume_mounts(&c.record(), false);
        let finished = exit
            .finished_at
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        let policy = Policy::of(&c.record().host_config);
        let mut restart_after = None;
        let mut ran_for = std::time::Duration::ZERO;
        // Its ports and address first, while the status still says it runs (no start can
        // come in between and find them held, or have its own taken away); the veth
        // pair's removal goes on off this path (release_network).
        // Taken out of the state at once, with the pid: a `network disconnect` beside
        // finds them gone (one release only), and a `network connect` beside sees the run
        // is over and undoes its own.
        let mut endpoints = std::collections::BTreeMap::new();
        c.set_state(|s| {
            endpoints = std::mem::take(&mut s.networks);
            s.pid = 0;
        });
        // Its DNS server always (a disconnect may have taken its last endpoint); the
        // endpoints off the event loop, and only when there are some (no thread hop on the
        // exit of a container without any).
        self.stop_dns(&c.id);
        if !endpoints.is_empty() {
            let (engine, id) = (self.clone(), c.id.clone());
            let _ =
                tokio::task::spawn_blocking(move || engine.release_network(&id, endpoints)).await;
        }
        c.set_state(|s| {
            ran_for = (finished - s.started_at.unwrap_or(finished))
                .to_std()
                .unwrap_or_default();
            if by_policy {
                restart_after = c.restart_manager().should_restart(
                    policy,
                    exit.exit_code,
                    s.has_been_manually_stopped,
                    s.restart_count,
                    ran_for,
                );
            }
            if restart_after.is_some() {
                s.status = Status::Restarting;
                s.restart_count += 1;
            } else {
                s.status = Status::Exited;
            }
            s.exit_code = exit.exit_code;
            s.oom_killed = exit.oom_killed;
            s.pid = 0;
            s.finished_at = Some(finished);
        });
        // Docker reports the OOM kill before the exit.
        if exit.oom_killed {
            self.emit_container(c, "oom", &[]);
        }
        self.emit_container(
            c,
            "die",
            &[
                ("exitCode", exit.exit_code.to_string()),
                ("execDuration", ran_for.as_secs().to_string()),
            ],
        );
        // A volume of mount options is unmounted at its last running user's exit, before
        // the waiters hear of it (a `volume rm` right after `docker run` finds it free).
        if restart_after.is_none() {
            let volumes = crate::mounts::optioned_volume_names(&c.record());
            if !volumes.is_empty() {
                let (engine, id) = (self.clone(), c.id.clone());
                let _ = tokio::task::spawn_blocking(move || engine.release_volumes(&id, &volumes))
                    .await;
            }
        }
        // Waiters first: the exit is already safe in the shim's exit.json.
        c.lifecycle.send_modify(|l: &mut Lifecycle| {
            l.exits += 1;
            l.exit_code = exit.exit_code;
        });
        if restart_after.is_none() && c.record().host_config.auto_remove {
            self.remove_container(c, true).await;
            return;
        }
        let cfg = self.cfg.clone();
        let persisted = {
            let c = c.clone();
            tokio::task::spawn_blocking(move || c.persist_state(&cfg)).await
        };
        if let Ok(Err(e)) = persisted {
            // `rm -f` of a running container: its record went away while this exit was
            // being written, as it should.
            let removed = c.state().status == Status::Removing || c.lifecycle.borrow().removed;
            if !removed {
                tracing::error!(container = %c.id, "recording exit: {e}");
            }
        }
        if let Some(delay) = restart_after {
            self.schedule_restart(c, delay);
        }
    }

    /// Starts `c` again after `delay` unless the restart is cancelled meanwhile (user stop,
    /// kill, rm, start): a timer task, woken early by the cancel.
    fn schedule_restart(self: &Arc<Self>, c: &Arc<Container>, delay: std::time::Duration) {
        let cancelled = c.restart_manager().arm();
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = cancelled => {}
            }
            let _op = c.op.lock().await;
            // Whoever cancelled also took the container out of `restarting`, under `op`.
            if c.state().status != Status::Restarting || c.restart_manager().canceled() {
                return;
            }
            // Docker's events for a restart by policy are the `die` before and the `start`
            // of `launch`; `restart` is the user's `docker restart`.
            if let Err(e) = engine.launch(&c, Launch::Policy, Vec::new()).await {
                // Docker gives up then (the container stays exited, the error in State.Error).
                tracing::warn!(container = %c.id, "restart by policy failed: {e}");
                engine.settle_stopped(&c);
            }
        });
    }

    /// Takes a `restarting` container out of it: `exited`, durably. The caller holds `c.op`.
    pub(crate) fn settle_stopped(&self, c: &Container) {
        if let Err(e) = c.update_state(&self.cfg, true, |s| {
            if s.status == Status::Restarting {
                s.status = Status::Exited;
            }
        }) {
            tracing::error!(container = %c.id, "recording a stop: {e}");
        }
    }
}

/// Docker's exit code for a start error (moby `setExitCodeFromError`, matched without
/// case, in its order): 126 when the command cannot be invoked ("permission denied", "is a
/// directory"), 127 for a bind mount of a file onto a directory or the reverse ("not a
/// directory") and for a command that does not exist, 128 ("unknown") for anything else,
/// such as a user the image does not have.
pub(crate) fn start_failure_exit_code(message: &str) -> i64 {
    let message = message.to_lowercase();
    let has = |s: &str| message.contains(s);
    if has("permission denied") || has("is a directory") {
        126
    } else if has("not a directory")
        || has("executable file not found")
        || has("no such file or directory")
    {
        127
    } else {
        128
    }
}

/// Removes what a previous run left in the bundle directory (exit status, socket).
fn reset_bundle(bundle: &std::path::Path) -> Result<()> {
    std::fs::create_dir_all(bundle).map_err(|e| EngineError::io("create", bundle, e))?;
    // spec.json is rewritten in place by the runtime.
    for f in ["exit.json", "shim.sock", "pid"] {
        let _ = std::fs::remove_file(bundle.join(f));
    }
    Ok(())
}

/// Writes `hostname`, `hosts` and `resolv.conf` beside the record; returns what to bind
/// where.
fn write_etc_files(
    dir: &std::path::Path,
    rec: &ContainerRecord,
    ip: Option<std::net::Ipv4Addr>,
    ip6: Option<std::net::Ipv6Addr>,
    host_gateway: Option<std::net::Ipv4Addr>,
    embedded_dns: bool,
) -> Result<Vec<(PathBuf, &'static str)>> {
    let host_net = rec.host_config.network_mode == "host";
    let hostname = if host_net {
        nix_hostname()
    } else {
        rec.config.hostname.clone()
    };
    let hosts = if host_net {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut h = String::from(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n",
        );
        for extra in rec.host_config.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = extra.split_once(':') {
                // `--add-host name:host-gateway`: the host's address on the container's
                // network (Docker's default bridge gateway).
                let ip = if ip == "host-gateway" {
                    match host_gateway {
                        Some(gw) => gw.to_string(),
                        None => {
                            return Err(EngineError::Invalid(format!(
                                "--add-host {extra}: host-gateway has no address here (no \
                                 bridge network)"
                            )))
                        }
                    }
                } else {
                    ip.to_string()
                };
                h.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        // The container's own address and name, last (as Docker's).
        if let Some(ip) = ip {
            h.push_str(&format!("{ip}\t{hostname}\n"));
        }
        if let Some(ip6) = ip6 {
            h.push_str(&format!("{ip6}\t{hostname}\n"));
        }
        h
    };
    let resolv = resolv_conf(rec, host_net, embedded_dns);
    let files: [(&str, &'static str, String); 3] = [
        ("hostname", "/etc/hostname", format!("{hostname}\n")),
        ("hosts", "/etc/hosts", hosts),
        ("resolv.conf", "/etc/resolv.conf", resolv),
    ];
    let mut out = Vec::new();
    for (file, dest, content) in files {
        let path = dir.join(file);
        // Regenerated at every start; readable by the container's user (0644).
        crate::fsutil::rewrite_public(&path, content.as_bytes())?;
        out.push((path, dest));
    }
    Ok(out)
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The host's resolv.conf, without loopback servers a container cannot reach (Docker's
/// rule); `--dns`, `--dns-search` and `--dns-option` replace the host's `nameserver`,
/// `search`/`domain` and `options` lines.
fn resolv_conf(rec: &ContainerRecord, host_net: bool, embedded: bool) -> String {
    let out = resolv_conf_of_host(rec, host_net);
    if !embedded {
        return out;
    }
    // On a user-defined network, as Docker's: the embedded DNS only (it forwards to the
    // servers this would have named), `ndots:0` unless an option says otherwise.
    let mut lines: Vec<String> = vec![format!("nameserver {}", berth_network::dns::ADDRESS)];
    let mut has_ndots = false;
    for l in out.lines() {
        match l.split_whitespace().next() {
            Some("nameserver") => {}
            Some("options") => {
                has_ndots |= l.contains("ndots:");
                lines.push(l.to_string());
            }
            _ => lines.push(l.to_string()),
        }
    }
    if !has_ndots {
        lines.push("options ndots:0".into());
    }
    lines.join("\n") + "\n"
}

fn resolv_conf_of_host(rec: &ContainerRecord, host_net: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let hc = &rec.host_config;
    let list = |key: &str| -> Vec<String> {
        hc.extra
            .get(key)
            .and_then(|v| serde_json::from_value::<Vec<String>>(v.clone()).ok())
            .unwrap_or_default()
    };
    let dns = hc.dns.clone().unwrap_or_default();
    let search = list("DnsSearch");
    let options = list("DnsOptions");
    if host_net && dns.is_empty() && search.is_empty() && options.is_empty() {
        return host;
    }
    let word = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    let mut out = String::new();
    for l in host.lines() {
        let w = word(l);
        let replaced = match w.as_str() {
            "nameserver" => {
                !dns.is_empty()
                    || (!host_net
                        && l.split_whitespace()
                            .nth(1)
                            .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
            }
            "search" | "domain" => !search.is_empty(),
            "options" => !options.is_empty(),
            _ => false,
        };
        if !replaced {
            out.push_str(l);
            out.push('\n');
        }
    }
    for d in &dns {
        out.push_str(&format!("nameserver {d}\n"));
    }
    // `--dns-search .` clears the search list, as in Docker.
    let search: Vec<&String> = search.iter().filter(|s| s.as_str() != ".").collect();
    if !search.is_empty() {
        let joined: Vec<&str> = search.iter().map(|s| s.as_str()).collect();
        out.push_str(&format!("search {}\n", joined.join(" ")));
    }
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_dockers_exit_codes() {
        assert_eq!(
            start_failure_exit_code("exec: \"x\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_failure_exit_code("exec /etc: permission denied"), 126);
        assert_eq!(start_failure_exit_code("exec /etc: Is a directory"), 126);
        // Docker tests EACCES first.
        assert_eq!(
            start_failure_exit_code("open /x: no such file or directory: permission denied"),
            126
        );
        assert_eq!(
            start_failure_exit_code("mount /a on /b: not a directory"),
            127
        );
        assert_eq!(
            start_failure_exit_code(
                "unable to find user ghost: no matching entries in passwd file"
            ),
            128
        );
        assert_eq!(start_failure_exit_code("cgroup: oops"), 128);
    }
}
