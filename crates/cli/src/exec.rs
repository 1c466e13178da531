//! `berth exec` and `berth attach`.

use anyhow::Result;
use berth_api::exec::{ExecCreateRequest, ExecStartRequest};
use berth_client::{AttachOptions, Client};
use clap::Args;

use crate::session::{pump, report_error, Pumped};

/// `exec`.
#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER", required = true)]
    pub container: String,
    /// The command and its arguments (passed as given, flags included)
    #[arg(
        value_name = "COMMAND [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<String>,
}

/// `attach`.
#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long = "detach-keys")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long = "no-stdin")]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long = "sig-proxy", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn detach_keys(given: Option<&str>) -> std::result::Result<Vec<u8>, String> {
    match given {
        Some(k) => berth_api::stream::parse_detach_keys(k),
        None => Ok(berth_api::stream::DEFAULT_DETACH_KEYS.to_vec()),
    }
}

/// docker's check before a terminal session: `-it` needs a terminal on stdin.
fn require_terminal(tty: bool, interactive: bool) -> std::result::Result<(), String> {
    if tty && interactive && !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err("the input device is not a TTY".into());
    }
    Ok(())
}

/// `berth exec`: exits with the process's exit code (126/127 for a command that cannot run,
/// as docker's).
pub async fn exec(client: &Client, args: &ExecArgs) -> Result<i32> {
    let (container, cmd) = (&args.container, &args.command);
    if let Err(e) = require_terminal(args.tty, args.interactive) {
        eprintln!("{e}");
        return Ok(1);
    }
    let keys = match detach_keys(args.detach_keys.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let mut env = Vec::new();
    for path in &args.env_file {
        let text = std::fs::read_to_string(path)?;
        match crate::run::parse_env_file(&text, |k| std::env::var(k).ok()) {
            Ok(vars) => env.extend(vars),
            Err(e) => {
                report_error("exec", &e);
                return Ok(1);
            }
        }
    }
    for e in &args.env {
        match crate::run::parse_env(e, |k| std::env::var(k).ok()) {
            Ok(v) => env.push(v),
            Err(e) => {
                report_error("exec", &e);
                return Ok(1);
            }
        }
    }
    let size = if args.tty {
        crate::tty::size().map(|(h, w)| [h as u64, w as u64])
    } else {
        None
    };
    let req = ExecCreateRequest {
        attach_stdin: args.interactive && !args.detach,
        attach_stdout: !args.detach,
        attach_stderr: !args.detach,
        console_size: size,
        detach_keys: args.detach_keys.clone().unwrap_or_default(),
        tty: args.tty,
        env: (!env.is_empty()).then_some(env),
        cmd: Some(cmd.to_vec()),
        privileged: args.privileged,
        user: args.user.clone().unwrap_or_default(),
        working_dir: args.workdir.clone().unwrap_or_default(),
        detach: args.detach,
        container: String::new(),
    };
    let id = match client.exec_create(container, &req).await {
        Ok(id) => id,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let start = ExecStartRequest {
        detach: args.detach,
        tty: args.tty,
        console_size: size,
    };
    if args.detach {
        if let Err(e) = client.exec_start_detached(&id, &start).await {
            eprintln!("{e}");
            return Ok(1);
        }
        return Ok(0);
    }
    let io = match client.exec_start_attached(&id, &start).await {
        Ok(io) => io,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let resize = (args.tty && crate::tty::size().is_some()).then(|| {
        tokio::spawn(crate::session::monitor_size(
            client.clone(),
            id.clone(),
            true,
        ))
    });
    let raw = if args.tty && args.interactive {
        crate::tty::RawMode::enable()
    } else {
        None
    };
    let pumped = pump(io, args.tty, args.interactive, &keys).await;
    drop(raw);
    if let Some(task) = resize {
        task.abort();
    }
    match pumped {
        Ok(Pumped::Detached) => return Ok(0),
        Ok(Pumped::Ended) => {}
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    }
    match client.exec_inspect(&id).await {
        Ok(i) => Ok(i.exit_code.unwrap_or(0) as i32),
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}

/// `berth attach`: the container's output (and stdin) until it exits or the user detaches.
pub async fn attach(client: &Client, args: &AttachArgs) -> Result<i32> {
    let inspect = match client.container_inspect(&args.container).await {
        Ok(i) => i,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let running = inspect.state.running;
    if !running {
        eprintln!("You cannot attach to a stopped container, start it first");
        return Ok(1);
    }
    if inspect.state.paused {
        eprintln!("You cannot attach to a paused container, unpause it first");
        return Ok(1);
    }
    if inspect.state.restarting {
        eprintln!("You cannot attach to a restarting container, wait until it is running");
        return Ok(1);
    }
    let tty = inspect.config.tty;
    let stdin = !args.no_stdin && inspect.config.open_stdin;
    if let Err(e) = require_terminal(tty, stdin) {
        eprintln!("{e}");
        return Ok(1);
    }
    let keys = match detach_keys(args.detach_keys.as_deref()) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("{e}");
            return Ok(1);
        }
    };
    let id = inspect.id.clone();
    let wait = client.container_wait(&id, Some("next-exit")).await?;
    let io = client
        .container_attach(
            &id,
            AttachOptions {
                stdin,
                stdout: true,
                stderr: true,
                stream: true,
                logs: false,
                detach_keys: args.detach_keys.clone(),
            },
        )
        .await?;
    let proxy = (args.sig_proxy && !tty)
        .then(|| tokio::spawn(crate::session::forward_signals(client.clone(), id.clone())));
    let resize = (tty && crate::tty::size().is_some())
        .then(|| tokio::spawn(crate::session::monitor_tty_size(client.clone(), id.clone())));
    let raw = if tty && stdin {
        crate::tty::RawMode::enable()
    } else {
        None
    };
    let pumped = pump(io, tty, stdin, &keys).await;
    drop(raw);
    for task in [proxy, resize].into_iter().flatten() {
        task.abort();
    }
    match pumped {
        Ok(Pumped::Detached) => Ok(0),
        Ok(Pumped::Ended) => Ok(match wait.await {
            Ok(r) => r.status_code as i32,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        }),
        Err(e) => {
            eprintln!("{e}");
            Ok(1)
        }
    }
}
