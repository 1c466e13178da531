//! Container verbs other than run/create: lifecycle, ps, inspect, logs, top, prune.

use std::io::Write;

use anyhow::{bail, Result};
use berth_api::filters::Filters;
use berth_client::{Client, ErrorKind, ListOptions, LogsOptions, RemoveOptions};
use clap::Args;
use futures_util::StreamExt;
use serde_json::Value;

use crate::format::Formatter;
use crate::output::{ps_header, ps_row, PS_TABLE, PS_TABLE_SIZE};
use crate::session;
use crate::{confirm, outln};

/// One or more containers.
#[derive(Debug, Clone, Args)]
pub struct Targets {
    /// Containers (names or ids)
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// `start`.
#[derive(Debug, Clone, Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[command(flatten)]
    pub targets: Targets,
}

/// `stop` and `restart`.
#[derive(Debug, Clone, Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        visible_alias = "timeout",
        allow_hyphen_values = true
    )]
    pub time: Option<i64>,
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[command(flatten)]
    pub targets: Targets,
}

/// `kill`.
#[derive(Debug, Clone, Args)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    pub signal: Option<String>,
    #[command(flatten)]
    pub targets: Targets,
}

/// `rm`.
#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    pub volumes: bool,
    /// Remove the specified link (accepted, ignored)
    #[arg(short = 'l', long)]
    pub link: bool,
    #[command(flatten)]
    pub targets: Targets,
}

/// `ps`.
#[derive(Debug, Clone, Args)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states)
    #[arg(short = 'l', long)]
    pub latest: bool,
    /// Display total file sizes
    #[arg(short = 's', long)]
    pub size: bool,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
}

/// `inspect`.
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Return JSON for specified type (container or image)
    #[arg(long = "type")]
    pub kind: Option<String>,
    /// Display total file sizes if the type is container (accepted, ignored)
    #[arg(short = 's', long)]
    pub size: bool,
    /// Names or ids
    #[arg(value_name = "NAME|ID", required = true)]
    pub names: Vec<String>,
}

/// `logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    pub tail: String,
    /// Show timestamps
    #[arg(short = 't', long)]
    pub timestamps: bool,
    /// Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp or relative (e.g. 42m)
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs (accepted, ignored)
    #[arg(long)]
    pub details: bool,
    /// Container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// `rename`.
#[derive(Debug, Clone, Args)]
pub struct RenameArgs {
    /// Current name or id
    pub container: String,
    /// New name
    pub new_name: String,
}

/// `top`.
#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    /// Container
    pub container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `container prune`.
#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `--filter k=v` values into API filters.
pub fn parse_filters(values: &[String]) -> Result<Filters> {
    let mut f = Filters::default();
    for v in values {
        match v.split_once('=') {
            Some((k, val)) => f.add(k.trim().to_lowercase().as_str(), val),
            None => bail!("bad format of filter (expected name=value)"),
        }
    }
    Ok(f)
}

/// Runs `op` on every target, printing each name on success and each error on stderr;
/// exit status 1 if any failed, as docker's multi-container verbs do.
async fn each<F, Fut>(targets: &[String], op: F) -> i32
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, berth_client::ClientError>>,
{
    let mut status = 0;
    for t in targets {
        match op(t.clone()).await {
            Ok(Some(line)) => outln(&line),
            Ok(None) => {}
            Err(e) => {
                eprintln!("{e}");
                status = 1;
            }
        }
    }
    status
}

/// `start`.
pub async fn start(client: &Client, args: &StartArgs) -> Result<i32> {
    let targets = &args.targets.containers;
    if args.attach || args.interactive {
        if targets.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        return session::start_attached(client, &targets[0], args.interactive).await;
    }
    Ok(each(targets, |t| async move {
        client.container_start(&t).await.map(|_| Some(t))
    })
    .await)
}

/// `stop`.
pub async fn stop(client: &Client, args: &StopArgs) -> Result<i32> {
    Ok(each(&args.targets.containers, |t| async move {
        client
            .container_stop(&t, args.time, args.signal.as_deref())
            .await
            .map(|_| Some(t))
    })
    .await)
}

/// `restart`.
pub async fn restart(client: &Client, args: &StopArgs) -> Result<i32> {
    Ok(each(&args.targets.containers, |t| async move {
        client
            .container_restart(&t, args.time, args.signal.as_deref())
            .await
            .map(|_| Some(t))
    })
    .await)
}

/// `kill`.
pub async fn kill(client: &Client, args: &KillArgs) -> Result<i32> {
    Ok(each(&args.targets.containers, |t| async move {
        client
            .container_kill(&t, args.signal.as_deref())
            .await
            .map(|_| Some(t))
    })
    .await)
}

/// `rm`: with `-f`, a missing container is reported but does not fail (docker).
pub async fn rm(client: &Client, args: &RmArgs) -> Result<i32> {
    let mut status = 0;
    for t in &args.targets.containers {
        let opts = RemoveOptions {
            force: args.force,
            volumes: args.volumes,
        };
        match client.container_remove(t, opts).await {
            Ok(()) => outln(t),
            Err(e) => {
                eprintln!("{e}");
                if !(args.force && e.kind() == ErrorKind::NotFound) {
                    status = 1;
                }
            }
        }
    }
    Ok(status)
}

/// `pause`.
pub async fn pause(client: &Client, args: &Targets) -> Result<i32> {
    Ok(each(&args.containers, |t| async move {
        client.container_pause(&t).await.map(|_| Some(t))
    })
    .await)
}

/// `unpause`.
pub async fn unpause(client: &Client, args: &Targets) -> Result<i32> {
    Ok(each(&args.containers, |t| async move {
        client.container_unpause(&t).await.map(|_| Some(t))
    })
    .await)
}

/// `wait`: prints each exit status.
pub async fn wait(client: &Client, args: &Targets) -> Result<i32> {
    Ok(each(&args.containers, |t| async move {
        let body = client.container_wait(&t, None).await?;
        let r = body.await?;
        Ok(Some(r.status_code.to_string()))
    })
    .await)
}

/// `rename`.
pub async fn rename(client: &Client, args: &RenameArgs) -> Result<i32> {
    if args.new_name.trim().is_empty() {
        bail!("Error: neither old nor new names may be empty");
    }
    client
        .container_rename(&args.container, &args.new_name)
        .await?;
    Ok(0)
}

/// `top`.
pub async fn top(client: &Client, args: &TopArgs) -> Result<i32> {
    let ps_args = args.ps_args.join(" ");
    let top = client
        .container_top(&args.container, Some(&ps_args))
        .await?;
    let mut text = top.titles.join("\t");
    for p in &top.processes {
        text.push('\n');
        text.push_str(&p.join("\t"));
    }
    // docker's top uses a wider minimum cell (20).
    outln(&crate::format::tabwrite(&text, 20, 3));
    Ok(0)
}

/// `ps`.
pub async fn ps(client: &Client, args: &PsArgs) -> Result<i32> {
    let limit = if args.latest && args.last == -1 {
        Some(1)
    } else {
        Some(args.last).filter(|n| *n > 0)
    };
    // docker asks for sizes when a custom template uses them.
    let wants_size = args.format.as_deref().is_some_and(|f| f.contains(".Size"));
    let opts = ListOptions {
        all: args.all,
        limit,
        size: args.size || (wants_size && !args.quiet),
        filters: parse_filters(&args.filter)?,
    };
    let containers = client.container_list(&opts).await?;
    let default = if args.size { PS_TABLE_SIZE } else { PS_TABLE };
    let format = if args.quiet {
        if args.format.as_deref().is_some_and(|f| !f.is_empty()) {
            eprintln!(
                "WARNING: Ignoring custom format, because both --format and --quiet are set."
            );
        }
        Some("{{.ID}}")
    } else {
        args.format.as_deref()
    };
    let f = Formatter::new(format, default)?;
    let rows: Vec<Value> = containers
        .iter()
        .map(|c| ps_row(c, !args.no_trunc))
        .collect();
    print_raw(&f.render(&ps_header(), &rows)?);
    Ok(0)
}

/// `inspect`: containers then images on 404 unless `--type` says which.
pub async fn inspect(client: &Client, args: &InspectArgs) -> Result<i32> {
    let template = match &args.format {
        Some(f) => Some(
            crate::template::Template::parse(f)
                .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?,
        ),
        None => None,
    };
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        let result = match args.kind.as_deref() {
            Some("container") => client.container_inspect_raw(name).await,
            Some("image") => client.image_inspect_raw(name).await,
            Some(other) => bail!("\"{other}\" is not a valid value for --type"),
            None => match client.container_inspect_raw(name).await {
                Err(e) if e.is_not_found() => match client.image_inspect_raw(name).await {
                    Err(e2) if e2.is_not_found() => {
                        errors.push(format!("Error: No such object: {name}"));
                        continue;
                    }
                    other => other,
                },
                other => other,
            },
        };
        match result {
            Ok(v) => found.push(v),
            // With a type, docker shows the daemon's own error
            // (`Error response from daemon: No such container: x`).
            Err(e) => errors.push(e.to_string()),
        }
    }
    match template {
        Some(t) => {
            for v in &found {
                outln(&t.render(v)?);
            }
        }
        None => outln(&indent_json(&Value::Array(found))),
    }
    for e in &errors {
        eprintln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// JSON with docker's four-space indentation, keys in the daemon's order.
pub fn indent_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(v, &mut ser).expect("JSON values serialize");
    String::from_utf8(buf).expect("JSON is UTF-8")
}

/// `logs`.
pub async fn logs(client: &Client, args: &LogsArgs) -> Result<i32> {
    let inspect = client.container_inspect(&args.container).await?;
    let now = chrono::Utc::now();
    let ts = |v: &Option<String>| -> Result<Option<String>> {
        v.as_deref()
            .map(|s| crate::human::api_timestamp(s, now))
            .transpose()
            .map_err(|e| anyhow::anyhow!(e))
    };
    let opts = LogsOptions {
        stdout: true,
        stderr: true,
        follow: args.follow,
        tail: args.tail.clone(),
        timestamps: args.timestamps,
        since: ts(&args.since)?,
        until: ts(&args.until)?,
        tty: inspect.config.tty,
    };
    let mut stream = client.container_logs(&inspect.id, &opts).await?;
    while let Some(chunk) = stream.next().await {
        let c = chunk?;
        session::write_chunk(c.kind, &c.data);
    }
    Ok(0)
}

/// `container prune`.
pub async fn prune(client: &Client, args: &PruneArgs) -> Result<i32> {
    if !args.force
        && !confirm("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ")
    {
        return Ok(0);
    }
    let report = client
        .container_prune(&parse_filters(&args.filter)?)
        .await?;
    let mut out = String::new();
    let deleted = report.containers_deleted.unwrap_or_default();
    let mut space = 0;
    if !deleted.is_empty() {
        out.push_str("Deleted Containers:\n");
        for id in &deleted {
            out.push_str(id);
            out.push('\n');
        }
        out.push('\n');
        space = report.space_reclaimed;
    }
    print_raw(&out);
    outln(&format!(
        "Total reclaimed space: {}",
        crate::human::human_size(space as f64)
    ));
    Ok(0)
}

/// Writes text as is (it carries its own newlines).
pub fn print_raw(s: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(s.as_bytes());
    let _ = o.flush();
}
