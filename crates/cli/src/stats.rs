//! `stats`: docker's table of CPU, memory, network and block I/O per container, printed once
//! (`--no-stream`) or redrawn twice a second from the daemon's streams. The figures are
//! docker-cli's (`stats_helpers.go`): CPU % = container CPU delta / host CPU delta × online
//! CPUs × 100; memory = usage minus inactive file pages (`total_inactive_file` on cgroup v1,
//! `inactive_file` on v2); MEM % of the limit; block I/O summed over `read`/`write` entries.
//!
//! One difference on purpose: docker's `--no-stream` asks the daemon for two samples a second
//! apart; berth's takes two one-shot samples of every container [`NO_STREAM_WINDOW`] apart and
//! computes CPU % over that window, so that a table of many containers takes a fraction of a
//! second.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_api::stats::Stats;
use berth_client::{Client, ClientError, ListOptions};
use clap::Args;
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::format::{truncate_id, Formatter};
use crate::human::{bytes_size, human_size_precision};

/// docker's default `stats` table.
pub const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// The CPU window of `--no-stream`: the host's CPU counter moves in 10 ms ticks per CPU, so
/// 100 ms gives CPU % to a few percent of its value.
const NO_STREAM_WINDOW: Duration = Duration::from_millis(100);

/// How often a streaming table is redrawn (docker's ticker).
const REDRAW: Duration = Duration::from_millis(500);

/// How long a streaming table waits for every container's first sample before drawing.
const FIRST_SAMPLE_WAIT: Duration = Duration::from_secs(2);

/// `stats`.
#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long = "no-trunc")]
    pub no_trunc: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go
    /// template)
    #[arg(long)]
    pub format: Option<String>,
    /// Containers (default: every running container, or all with -a)
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// One row: docker-cli's `StatsEntry`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Entry {
    /// The container as named on the command line (the full id when listed).
    container: String,
    name: String,
    id: String,
    cpu_percent: f64,
    memory: f64,
    memory_limit: f64,
    memory_percent: f64,
    net_rx: f64,
    net_tx: f64,
    block_read: f64,
    block_write: f64,
    pids: u64,
    /// No valid sample (an error, or the stream ended): values show as `--`.
    invalid: bool,
}

impl Entry {
    fn from_sample(container: &str, s: &Stats) -> Entry {
        let memory = memory_usage(s);
        let limit = s.memory_stats.limit as f64;
        let (net_rx, net_tx) = s
            .networks
            .iter()
            .flatten()
            .fold((0.0, 0.0), |(rx, tx), (_, n)| {
                (rx + n.rx_bytes as f64, tx + n.tx_bytes as f64)
            });
        let (block_read, block_write) = block_io(s);
        Entry {
            container: container.to_string(),
            name: s.name.clone(),
            id: s.id.clone(),
            cpu_percent: cpu_percent(s),
            memory,
            memory_limit: limit,
            memory_percent: if limit != 0.0 {
                memory / limit * 100.0
            } else {
                0.0
            },
            net_rx,
            net_tx,
            block_read: block_read as f64,
            block_write: block_write as f64,
            pids: s.pids_stats.current,
            invalid: false,
        }
    }
}

/// docker-cli's `calculateCPUPercentUnix`: the sample's CPU use against its `precpu_stats`.
fn cpu_percent(s: &Stats) -> f64 {
    let cpu = &s.cpu_stats;
    let pre = &s.precpu_stats;
    let cpu_delta = cpu.cpu_usage.total_usage as f64 - pre.cpu_usage.total_usage as f64;
    let system_delta = cpu.system_cpu_usage as f64 - pre.system_cpu_usage as f64;
    let mut cpus = cpu.online_cpus as f64;
    if cpus == 0.0 {
        cpus = cpu.cpu_usage.percpu_usage.as_ref().map_or(0, Vec::len) as f64;
    }
    if system_delta > 0.0 && cpu_delta > 0.0 {
        cpu_delta / system_delta * cpus * 100.0
    } else {
        0.0
    }
}

/// docker-cli's `calculateMemUsageUnixNoCache`: usage minus inactive file pages.
fn memory_usage(s: &Stats) -> f64 {
    let m = &s.memory_stats;
    let stat = |key: &str| m.stats.as_ref().and_then(|s| s.get(key)).copied();
    if let Some(v) = stat("total_inactive_file").filter(|v| *v < m.usage) {
        return (m.usage - v) as f64;
    }
    match stat("inactive_file").unwrap_or(0) {
        v if v < m.usage => (m.usage - v) as f64,
        _ => m.usage as f64,
    }
}

/// Bytes read and written: entries whose operation starts with `r`/`w` (`Read` on v1,
/// `read` on v2).
fn block_io(s: &Stats) -> (u64, u64) {
    let mut read = 0u64;
    let mut write = 0u64;
    for e in s.blkio_stats.io_service_bytes_recursive.iter().flatten() {
        match e.op.as_bytes().first() {
            Some(b'r' | b'R') => read = read.saturating_add(e.value),
            Some(b'w' | b'W') => write = write.saturating_add(e.value),
            _ => {}
        }
    }
    (read, write)
}

/// Column titles.
fn header() -> Value {
    json!({
        "BlockIO": "BLOCK I/O",
        "CPUPerc": "CPU %",
        "Container": "CONTAINER",
        "ID": "CONTAINER ID",
        "MemPerc": "MEM %",
        "MemUsage": "MEM USAGE / LIMIT",
        "Name": "NAME",
        "NetIO": "NET I/O",
        "PIDs": "PIDS",
    })
}

fn percentage(v: f64) -> String {
    format!("{v:.2}%")
}

/// One row as template data, keys in the order `{{json .}}` writes them (docker's sorted).
fn row(e: &Entry, trunc: bool) -> Value {
    let no_value = || "--".to_string();
    let name = e.name.strip_prefix('/').unwrap_or(&e.name);
    let pair = |a: f64, b: f64| {
        format!(
            "{} / {}",
            human_size_precision(a, 3),
            human_size_precision(b, 3)
        )
    };
    json!({
        "BlockIO": if e.invalid { no_value() } else { pair(e.block_read, e.block_write) },
        "CPUPerc": if e.invalid { no_value() } else { percentage(e.cpu_percent) },
        "Container": e.container,
        "ID": if trunc { truncate_id(&e.id) } else { e.id.clone() },
        "MemPerc": if e.invalid { no_value() } else { percentage(e.memory_percent) },
        "MemUsage": if e.invalid {
            "-- / --".to_string()
        } else {
            format!("{} / {}", bytes_size(e.memory), bytes_size(e.memory_limit))
        },
        "Name": if name.is_empty() { no_value() } else { name.to_string() },
        "NetIO": if e.invalid { no_value() } else { pair(e.net_rx, e.net_tx) },
        "PIDs": if e.invalid { no_value() } else { e.pids.to_string() },
    })
}

fn render(f: &Formatter, entries: &[Entry], trunc: bool) -> Result<String> {
    let rows: Vec<Value> = entries.iter().map(|e| row(e, trunc)).collect();
    Ok(f.render(&header(), &rows)?)
}

/// `stats`.
pub async fn stats(client: &Client, args: &StatsArgs) -> Result<i32> {
    let formatter = Formatter::new(args.format.as_deref(), STATS_TABLE)?;
    let listed = args.containers.is_empty();
    let targets = if listed {
        list(client, args.all).await?
    } else {
        args.containers.clone()
    };
    if args.no_stream {
        return once(client, &formatter, &targets, listed, !args.no_trunc).await;
    }
    follow(client, &formatter, targets, listed, args).await
}

/// The ids of the running containers (all with `-a`), newest first.
async fn list(client: &Client, all: bool) -> Result<Vec<String>> {
    let opts = ListOptions {
        all,
        ..Default::default()
    };
    Ok(client
        .container_list(&opts)
        .await?
        .into_iter()
        .map(|c| c.id)
        .collect())
}

/// Every target's one-shot sample, all at once.
async fn sample_all(client: &Client, targets: &[String]) -> Vec<Result<Stats, ClientError>> {
    futures_util::future::join_all(targets.iter().map(|t| client.container_stats(t, true))).await
}

/// Named containers that failed end the command with their errors before any table, as
/// docker's; listed ones show as `--`.
fn named_errors(results: &[Result<Stats, ClientError>]) -> Option<i32> {
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    if errors.is_empty() {
        return None;
    }
    eprintln!("{}", errors.join("\n"));
    Some(1)
}

/// `--no-stream`: two rounds of one-shot samples [`NO_STREAM_WINDOW`] apart; each second
/// sample gets the first one's CPU counters as `precpu_stats`.
async fn once(
    client: &Client,
    formatter: &Formatter,
    targets: &[String],
    listed: bool,
    trunc: bool,
) -> Result<i32> {
    if targets.is_empty() {
        return Ok(0);
    }
    let started = Instant::now();
    let first = sample_all(client, targets).await;
    if !listed {
        if let Some(code) = named_errors(&first) {
            return Ok(code);
        }
    }
    tokio::time::sleep(NO_STREAM_WINDOW.saturating_sub(started.elapsed())).await;
    let second = sample_all(client, targets).await;
    if !listed {
        if let Some(code) = named_errors(&second) {
            return Ok(code);
        }
    }
    let entries: Vec<Entry> = targets
        .iter()
        .zip(first.iter().zip(second))
        .map(|(target, pair)| match pair {
            (Ok(before), Ok(mut now)) => {
                now.precpu_stats = before.cpu_stats.clone();
                Entry::from_sample(target, &now)
            }
            _ => Entry {
                container: target.clone(),
                invalid: true,
                ..Entry::default()
            },
        })
        .collect();
    crate::container::print_raw(&render(formatter, &entries, trunc)?);
    Ok(0)
}

/// The rows a streaming table shows, in order, each with whether a sample or an error came.
#[derive(Default)]
struct Board {
    rows: Vec<(Entry, bool)>,
    errors: HashMap<String, String>,
}

type SharedBoard = Arc<Mutex<Board>>;

fn board_set(board: &SharedBoard, container: &str, update: impl FnOnce(&mut Entry)) {
    let mut b = board.lock().expect("stats board");
    if let Some((entry, seen)) = b.rows.iter_mut().find(|(e, _)| e.container == container) {
        update(entry);
        *seen = true;
    }
}

/// Reads one container's stream into the board until it ends; an error or the end marks
/// the row invalid (docker shows `--` then), keeping its name and id.
async fn watch(client: Client, container: String, board: SharedBoard) {
    let mut stream = match client.container_stats_stream(&container).await {
        Ok(s) => s,
        Err(e) => {
            board
                .lock()
                .expect("stats board")
                .errors
                .insert(container.clone(), e.to_string());
            board_set(&board, &container, |e| e.invalid = true);
            return;
        }
    };
    while let Some(sample) = stream.next().await {
        match sample {
            Ok(s) => board_set(&board, &container, |e| {
                *e = Entry::from_sample(&container, &s)
            }),
            Err(_) => break,
        }
    }
    board_set(&board, &container, |e| e.invalid = true);
}

/// The streaming table: one stream per container, redrawn every [`REDRAW`] (on a terminal
/// in place, with docker's ANSI sequences; otherwise one plain table after another). Without
/// names, the container list is read again at every redraw: new containers join the table,
/// and those gone (or stopped, without `-a`) leave it, as docker's event watch does.
async fn follow(
    client: &Client,
    formatter: &Formatter,
    targets: Vec<String>,
    listed: bool,
    args: &StatsArgs,
) -> Result<i32> {
    let board: SharedBoard = Arc::default();
    let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    let track = |board: &SharedBoard,
                 tasks: &mut HashMap<String, tokio::task::JoinHandle<()>>,
                 target: &str| {
        if tasks.contains_key(target) {
            return;
        }
        board.lock().expect("stats board").rows.push((
            Entry {
                container: target.to_string(),
                ..Entry::default()
            },
            false,
        ));
        let task = tokio::spawn(watch(client.clone(), target.to_string(), board.clone()));
        tasks.insert(target.to_string(), task);
    };
    for t in &targets {
        track(&board, &mut tasks, t);
    }
    let waited = Instant::now();
    while waited.elapsed() < FIRST_SAMPLE_WAIT
        && !board.lock().expect("stats board").rows.iter().all(|r| r.1)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if !listed {
        let b = board.lock().expect("stats board");
        let errors: Vec<&String> = targets.iter().filter_map(|t| b.errors.get(t)).collect();
        if !errors.is_empty() {
            for e in errors {
                eprintln!("{e}");
            }
            return Ok(1);
        }
    }
    let tty = std::io::stdout().is_terminal();
    let trunc = !args.no_trunc;
    loop {
        if listed {
            if let Ok(current) = list(client, args.all).await {
                for t in &current {
                    track(&board, &mut tasks, t);
                }
                tasks.retain(|id, task| {
                    let keep = current.contains(id);
                    if !keep {
                        task.abort();
                    }
                    keep
                });
                board
                    .lock()
                    .expect("stats board")
                    .rows
                    .retain(|(e, _)| current.contains(&e.container));
            }
        }
        let entries: Vec<Entry> = board
            .lock()
            .expect("stats board")
            .rows
            .iter()
            .map(|(e, _)| e.clone())
            .collect();
        let table = render(formatter, &entries, trunc)?;
        let frame = if tty { in_place(&table) } else { table };
        let mut out = std::io::stdout().lock();
        if out
            .write_all(frame.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return Ok(0);
        }
        drop(out);
        tokio::time::sleep(REDRAW).await;
    }
}

/// docker's terminal frame: cursor home, each line followed by erase-to-end-of-line, then
/// erase below (a shorter table leaves nothing behind).
fn in_place(table: &str) -> String {
    let mut frame = String::with_capacity(table.len() + 64);
    frame.push_str("\x1b[H");
    for line in table.split('\n') {
        frame.push_str(line);
        frame.push_str("\x1b[K\n");
    }
    frame.push_str("\x1b[J");
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::stats::{BlkioStatEntry, CpuStats, CpuUsage, MemoryStats};

    fn sample() -> Stats {
        let mut s = Stats {
            name: "/web".into(),
            id: "4dfddfadf5470123456789".into(),
            ..Stats::default()
        };
        s.cpu_stats = CpuStats {
            cpu_usage: CpuUsage {
                total_usage: 300_000_000,
                ..CpuUsage::default()
            },
            system_cpu_usage: 10_000_000_000,
            online_cpus: 2,
            ..CpuStats::default()
        };
        s.precpu_stats = CpuStats {
            cpu_usage: CpuUsage {
                total_usage: 100_000_000,
                ..CpuUsage::default()
            },
            system_cpu_usage: 8_000_000_000,
            online_cpus: 2,
            ..CpuStats::default()
        };
        s.memory_stats = MemoryStats {
            usage: 60 << 20,
            stats: Some([("total_inactive_file".to_string(), 10 << 20)].into()),
            limit: 256 << 20,
            ..MemoryStats::default()
        };
        s.pids_stats.current = 2;
        s.blkio_stats.io_service_bytes_recursive = Some(vec![
            BlkioStatEntry {
                major: 8,
                minor: 0,
                op: "Read".into(),
                value: 1_500_000,
            },
            BlkioStatEntry {
                major: 8,
                minor: 0,
                op: "Write".into(),
                value: 2048,
            },
            BlkioStatEntry {
                major: 8,
                minor: 0,
                op: "Total".into(),
                value: 1_502_048,
            },
        ]);
        s
    }

    #[test]
    fn figures_are_docker_clis() {
        let e = Entry::from_sample("web", &sample());
        // 200 ms of CPU in 2 s of host CPU time on 2 CPUs.
        assert!((e.cpu_percent - 20.0).abs() < 1e-9, "{}", e.cpu_percent);
        assert_eq!(e.memory, (50 << 20) as f64);
        let r = row(&e, true);
        assert_eq!(r["ID"], "4dfddfadf547");
        assert_eq!(r["Name"], "web");
        assert_eq!(r["CPUPerc"], "20.00%");
        assert_eq!(r["MemUsage"], "50MiB / 256MiB");
        assert_eq!(r["MemPerc"], "19.53%");
        assert_eq!(r["NetIO"], "0B / 0B");
        assert_eq!(r["BlockIO"], "1.5MB / 2.05kB");
        assert_eq!(r["PIDs"], "2");
    }

    #[test]
    fn v2_memory_subtracts_inactive_file() {
        let mut s = sample();
        s.memory_stats.stats = Some([("inactive_file".to_string(), 20 << 20)].into());
        assert_eq!(memory_usage(&s), (40 << 20) as f64);
        s.memory_stats.stats = Some([("inactive_file".to_string(), 100 << 20)].into());
        assert_eq!(memory_usage(&s), (60 << 20) as f64);
    }

    #[test]
    fn a_stopped_container_shows_zeros_and_an_invalid_one_dashes() {
        let zero = Stats {
            name: "/old".into(),
            id: "abc".into(),
            ..Stats::default()
        };
        let r = row(&Entry::from_sample("old", &zero), true);
        assert_eq!(
            [
                &r["CPUPerc"],
                &r["MemUsage"],
                &r["MemPerc"],
                &r["NetIO"],
                &r["PIDs"]
            ],
            ["0.00%", "0B / 0B", "0.00%", "0B / 0B", "0"]
        );
        let invalid = Entry {
            container: "gone".into(),
            invalid: true,
            ..Entry::default()
        };
        let r = row(&invalid, true);
        assert_eq!(r["Name"], "--");
        assert_eq!(r["MemUsage"], "-- / --");
        assert_eq!(r["CPUPerc"], "--");
    }

    #[test]
    fn default_table_and_json() {
        let e = Entry::from_sample("web", &sample());
        let f = Formatter::new(None, STATS_TABLE).unwrap();
        let table = render(&f, std::slice::from_ref(&e), true).unwrap();
        let mut lines = table.lines();
        assert_eq!(
            lines.next().unwrap(),
            "CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O   BLOCK I/O        PIDS"
        );
        assert_eq!(
            lines.next().unwrap(),
            "4dfddfadf547   web       20.00%    50MiB / 256MiB      19.53%    0B / 0B   1.5MB / 2.05kB   2"
        );
        let f = Formatter::new(Some("{{json .}}"), STATS_TABLE).unwrap();
        assert_eq!(
            render(&f, &[e], false).unwrap(),
            "{\"BlockIO\":\"1.5MB / 2.05kB\",\"CPUPerc\":\"20.00%\",\"Container\":\"web\",\"ID\":\"4dfddfadf5470123456789\",\"MemPerc\":\"19.53%\",\"MemUsage\":\"50MiB / 256MiB\",\"Name\":\"web\",\"NetIO\":\"0B / 0B\",\"PIDs\":\"2\"}\n"
        );
    }

    #[test]
    fn a_terminal_frame_redraws_in_place() {
        assert_eq!(in_place("A\nB"), "\x1b[HA\x1b[K\nB\x1b[K\n\x1b[J");
    }
}
