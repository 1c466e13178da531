//! `docker stats` / `berth stats` and `GET /containers/{id}/stats`, on whatever cgroup
//! layout this host has (v1, hybrid or pure v2; scripts/test-v2.sh runs this file on a pure
//! v2 kernel): a container that holds a known amount of memory reads back as using at least
//! that much, under the limit it was given; the stream's samples; the zero sample of a
//! stopped container; the CLIs' tables; unknown containers.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_e2e::api::request;
use berth_e2e::{bin_dir, text, wait_for, wait_for_within, Daemon};
use serde_json::Value;

/// What the memory test holds: a file in the container's `/dev/shm` (a tmpfs, charged to
/// the container's memory cgroup as shared memory, which no reclaim takes back without swap).
const HELD_MIB: u64 = 48;
const LIMIT: u64 = 256 << 20;

/// Whether this host is pure cgroup v2 (no v1 hierarchy mounted).
fn pure_v2() -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    !mountinfo.lines().any(|l| l.contains(" - cgroup "))
}

fn json(body: &str) -> Value {
    serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A `stream=true` response, read chunk by chunk.
struct SampleStream {
    reader: BufReader<UnixStream>,
}

impl SampleStream {
    fn open(d: &Daemon, id: &str) -> SampleStream {
        let mut s = UnixStream::connect(&d.socket).expect("connect to berthd");
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /v1.44/containers/{id}/stats?stream=true HTTP/1.1\r\nHost: berth\r\n\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(s);
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            assert!(!line.is_empty(), "the headers did not end");
        }
        SampleStream { reader }
    }

    /// The next sample (one JSON line per chunk, as berthd writes them).
    fn next(&mut self) -> Value {
        let mut size = String::new();
        self.reader.read_line(&mut size).unwrap();
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        assert!(n > 0, "the stream ended");
        let mut chunk = vec![0; n + 2];
        self.reader.read_exact(&mut chunk).unwrap();
        json(&text(&chunk[..n]))
    }
}

/// Starts a detached container; returns its full id.
fn run_detached(d: &Daemon, args: &[&str]) -> String {
    let mut full = vec!["run", "-d"];
    full.extend_from_slice(args);
    d.ok(&full).trim().to_string()
}

/// The `memory_stats` figure docker's CLI shows: usage minus inactive file pages.
fn cli_memory(stats: &Value) -> u64 {
    let m = &stats["memory_stats"];
    let usage = m["usage"].as_u64().unwrap();
    let inactive = m["stats"]["total_inactive_file"]
        .as_u64()
        .or_else(|| m["stats"]["inactive_file"].as_u64())
        .unwrap_or(0);
    usage.saturating_sub(inactive)
}

/// "48.3MiB" -> bytes (go-units' binary sizes as `docker stats` prints them).
fn parse_binary_size(s: &str) -> f64 {
    let split = s
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or_else(|| panic!("no unit in {s:?}"));
    let (n, unit) = s.split_at(split);
    let n: f64 = n.parse().unwrap_or_else(|_| panic!("bad size {s:?}"));
    let scale = match unit {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        _ => panic!("unit {unit:?} in {s:?}"),
    };
    n * scale
}

/// Checks a `MEM USAGE / LIMIT` cell of the memory container.
fn check_mem_usage_cell(cell: &str) {
    let (usage, limit) = cell.split_once(" / ").unwrap_or_else(|| panic!("{cell:?}"));
    assert_eq!(limit, "256MiB", "{cell:?}");
    assert!(
        parse_binary_size(usage) >= (HELD_MIB << 20) as f64,
        "usage below {HELD_MIB} MiB: {cell:?}"
    );
}

/// The number of processes `docker top` lists for `id`.
fn top_count(d: &Daemon, id: &str) -> u64 {
    d.ok(&["top", id]).lines().skip(1).count() as u64
}

#[test]
fn stats_report_a_known_allocation_under_its_limit() {
    let d = Daemon::start();
    d.busybox();
    let script = format!(
        "dd if=/dev/zero of=/dev/shm/held bs=1M count={HELD_MIB} 2>/dev/null && echo ready; sleep 600"
    );
    let id = run_detached(
        &d,
        &[
            "--name", "mem", "--memory", "256m", "busybox", "sh", "-c", &script,
        ],
    );
    wait_for_within("the allocation", Duration::from_secs(120), || {
        d.ok(&["logs", &id]).contains("ready")
    });
    let processes = top_count(&d, &id);

    // One sample, no previous one.
    let (status, body) = request(
        &d,
        "GET",
        "/v1.44/containers/mem/stats?stream=false&one-shot=true",
        None,
    );
    assert_eq!(status, 200, "{body}");
    let s = json(&body);
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["name"], "/mem");
    assert_ne!(s["read"], "0001-01-01T00:00:00Z");
    assert_eq!(s["preread"], "0001-01-01T00:00:00Z");
    assert_eq!(s["precpu_stats"]["cpu_usage"]["total_usage"], 0);
    let m = &s["memory_stats"];
    assert_eq!(m["limit"].as_u64(), Some(LIMIT), "{m}");
    assert!(
        m["usage"].as_u64().unwrap() >= HELD_MIB << 20,
        "usage below the {HELD_MIB} MiB held: {m}"
    );
    assert!(
        cli_memory(&s) >= HELD_MIB << 20,
        "usage without inactive file pages below the {HELD_MIB} MiB held: {m}"
    );
    assert!(cli_memory(&s) <= LIMIT);
    assert_eq!(s["pids_stats"]["current"].as_u64(), Some(processes), "{s}");
    let cpu = &s["cpu_stats"];
    assert!(
        cpu["cpu_usage"]["total_usage"].as_u64().unwrap() > 0,
        "{cpu}"
    );
    assert!(cpu["system_cpu_usage"].as_u64().unwrap() > 0, "{cpu}");
    assert!(cpu["online_cpus"].as_u64().unwrap() >= 1, "{cpu}");
    assert!(s.get("networks").is_none(), "only lo: no networks ({s})");
    let keys = m["stats"].as_object().expect("memory_stats.stats");
    if pure_v2() {
        assert!(
            keys.contains_key("inactive_file") && keys.contains_key("shmem"),
            "{m}"
        );
        assert!(!keys.contains_key("total_inactive_file"), "{m}");
        assert!(
            m["stats"]["shmem"].as_u64().unwrap() >= HELD_MIB << 20,
            "{m}"
        );
        assert!(cpu["cpu_usage"].get("percpu_usage").is_none(), "{cpu}");
        assert!(s["blkio_stats"]["io_serviced_recursive"].is_null());
        // Unlimited on v2 is u64::MAX, as containerd reads "max".
        assert_eq!(s["pids_stats"]["limit"].as_u64(), Some(u64::MAX));
    } else {
        assert!(
            keys.contains_key("total_inactive_file") && keys.contains_key("rss"),
            "{m}"
        );
        assert!(m["max_usage"].as_u64().unwrap() >= HELD_MIB << 20, "{m}");
        assert!(cpu["cpu_usage"]["percpu_usage"].is_array(), "{cpu}");
        assert!(s["blkio_stats"]["io_service_bytes_recursive"].is_array());
        assert!(s["pids_stats"].get("limit").is_none(), "{s}");
    }

    // stream=false without one-shot: two samples a second apart.
    let (status, body) = request(&d, "GET", "/v1.44/containers/mem/stats?stream=false", None);
    assert_eq!(status, 200, "{body}");
    let s = json(&body);
    let read = chrono::DateTime::parse_from_rfc3339(s["read"].as_str().unwrap()).unwrap();
    let pre = chrono::DateTime::parse_from_rfc3339(s["preread"].as_str().unwrap()).unwrap();
    let gap = (read - pre).num_milliseconds();
    assert!((900..5000).contains(&gap), "preread {gap} ms before read");
    assert!(s["precpu_stats"]["system_cpu_usage"].as_u64().unwrap() > 0);

    // The docker CLI: its table and its JSON.
    let out = d.ok(&["stats", "--no-stream", "mem"]);
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert!(
        header.starts_with(&["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT"]),
        "{out}"
    );
    let row = lines.next().expect("a row");
    let cells: Vec<&str> = row
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cells[0], &id[..12], "{out}");
    assert_eq!(cells[1], "mem", "{out}");
    check_mem_usage_cell(cells[3]);
    let out = d.ok(&["stats", "--no-stream", "--format", "{{json .}}", "mem"]);
    let row = json(&out);
    assert_eq!(row["Name"], "mem");
    assert_eq!(row["Container"], "mem");
    check_mem_usage_cell(row["MemUsage"].as_str().unwrap());
    assert_eq!(row["PIDs"], processes.to_string().as_str());

    // berth: the same figures.
    for format in ["{{json .}}", "json"] {
        let o = d.berth(&["stats", "--no-stream", "--format", format, "mem"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        let row = json(&text(&o.stdout));
        assert_eq!(row["Name"], "mem");
        assert_eq!(row["ID"], &id[..12]);
        check_mem_usage_cell(row["MemUsage"].as_str().unwrap());
        assert_eq!(row["PIDs"], processes.to_string().as_str());
        let percent: f64 = row["MemPerc"]
            .as_str()
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        assert!(percent >= 100.0 * HELD_MIB as f64 / 256.0, "{row}");
    }
}

#[test]
fn a_stream_sends_a_sample_a_second_and_ends_with_its_client() {
    let d = Daemon::start();
    d.busybox();
    let id = run_detached(&d, &["--name", "streamed", "busybox", "sleep", "600"]);
    let mut stream = SampleStream::open(&d, &id);
    let first = stream.next();
    let second = stream.next();
    let read =
        |s: &Value| chrono::DateTime::parse_from_rfc3339(s["read"].as_str().unwrap()).unwrap();
    assert!(read(&second) > read(&first), "{first}\n{second}");
    assert_eq!(second["preread"], first["read"]);
    assert_eq!(second["precpu_stats"], first["cpu_stats"]);
    assert_eq!(first["preread"], "0001-01-01T00:00:00Z");
    drop(stream);

    // Clients that go away end their streams: berthd closes their connections (a stream
    // that outlived its client would keep its socket).
    let pid = std::fs::read_to_string(d.exec_root().join("berthd.pid")).unwrap();
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
            .unwrap()
            .count()
    };
    let mut streams: Vec<SampleStream> = (0..20).map(|_| SampleStream::open(&d, &id)).collect();
    for s in &mut streams {
        s.next();
    }
    let open = fds();
    drop(streams);
    wait_for("berthd to close the streams of gone clients", || {
        fds() + 15 <= open
    });

    // Removing the container ends a stream (as Docker's).
    let mut stream = SampleStream::open(&d, &id);
    stream.next();
    d.ok(&["rm", "-f", &id]);
    let mut size = String::new();
    let mut ended = false;
    for _ in 0..5 {
        size.clear();
        if stream.reader.read_line(&mut size).unwrap_or(0) == 0 {
            ended = true;
            break;
        }
        if size.trim() == "0" {
            ended = true;
            break;
        }
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; n + 2];
        stream.reader.read_exact(&mut chunk).unwrap();
    }
    assert!(ended, "the stream went on after the container was removed");
}

#[test]
fn the_docker_cli_streams_named_containers() {
    let d = Daemon::start();
    d.busybox();
    run_detached(&d, &["--name", "ds", "busybox", "sleep", "600"]);
    let mut child = Command::new("docker")
        .args(["stats", "--format", "{{.Name}} {{.PIDs}}", "ds"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut frames = 0;
    let mut line = String::new();
    while frames < 2 {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "docker stats ended");
        if line.contains("ds 1") {
            frames += 1;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_stopped_container_gets_the_zero_sample() {
    let d = Daemon::start();
    d.busybox();
    d.ok(&["create", "--name", "idle", "busybox", "true"]);
    run_detached(&d, &["--name", "busy", "busybox", "sleep", "600"]);
    for query in ["stream=false", "stream=false&one-shot=true"] {
        let (status, body) = request(
            &d,
            "GET",
            &format!("/v1.44/containers/idle/stats?{query}"),
            None,
        );
        assert_eq!(status, 200, "{body}");
        let s = json(&body);
        assert_eq!(s["read"], "0001-01-01T00:00:00Z");
        assert_eq!(s["name"], "/idle");
        assert_eq!(s["memory_stats"], serde_json::json!({}));
        assert_eq!(s["pids_stats"], serde_json::json!({}));
        assert_eq!(s["cpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert!(s["blkio_stats"]["io_service_bytes_recursive"].is_null());
    }
    // Without -a only running containers; with it, the stopped one in zeros.
    let out = d.ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["busy"]);
    let out = d.ok(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
    ]);
    assert!(out.lines().any(|l| l == "idle 0B / 0B 0"), "{out}");
    let o = d.berth(&[
        "stats",
        "--no-stream",
        "-a",
        "--format",
        "{{.Name}} {{.MemUsage}} {{.PIDs}}",
    ]);
    let out = text(&o.stdout);
    assert!(out.lines().any(|l| l == "idle 0B / 0B 0"), "{out}");
    assert!(out.lines().any(|l| l.starts_with("busy ")), "{out}");
}

#[test]
fn berth_shows_several_containers_in_one_table() {
    let d = Daemon::start();
    d.busybox();
    let names = ["t1", "t2", "t3"];
    for n in names {
        run_detached(&d, &["--name", n, "busybox", "sleep", "600"]);
    }
    let o = d.berth(&["stats", "--no-stream"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let mut lines = out.lines();
    assert_eq!(
        lines
            .next()
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
        "CONTAINER ID NAME CPU % MEM USAGE / LIMIT MEM % NET I/O BLOCK I/O PIDS",
        "{out}"
    );
    let mut shown: Vec<&str> = lines
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    shown.sort_unstable();
    assert_eq!(shown, names, "{out}");
    // The same names through the docker CLI.
    let out = d.ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    let mut shown: Vec<&str> = out.lines().collect();
    shown.sort_unstable();
    assert_eq!(shown, names);

    // Named, with a custom table; --no-trunc gives full ids.
    let o = d.berth(&[
        "stats",
        "--no-stream",
        "--no-trunc",
        "--format",
        "table {{.Container}}\t{{.ID}}\t{{.PIDs}}",
        "t2",
        "t1",
    ]);
    let out = text(&o.stdout);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["CONTAINER", "CONTAINER", "ID", "PIDS"], "{out}");
    assert_eq!(rows[1][0], "t2");
    assert_eq!(rows[1][1].len(), 64, "{out}");
    assert_eq!(rows[2][0], "t1");

    // Streaming to a pipe: plain tables one after another.
    let mut child = Command::new(bin_dir().join("berth"))
        .args(["stats", "--format", "{{.Name}}", "t1"])
        .env("BERTH_HOST", d.host())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line, "t1\n");
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn stats_of_an_unknown_container_is_a_404() {
    let d = Daemon::start();
    let (status, body) = request(&d, "GET", "/v1.44/containers/nope/stats?stream=false", None);
    assert_eq!(status, 404);
    assert_eq!(json(&body)["message"], "No such container: nope");
    let (code, _, err) = d.outcome(&["stats", "--no-stream", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("No such container: nope"), "{err}");
    let o = d.berth(&["stats", "--no-stream", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        text(&o.stderr).trim(),
        "Error response from daemon: No such container: nope"
    );
    // Streaming too.
    let o = d.berth(&["stats", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stderr).contains("No such container: nope"));
}
