//! Reading the json-file log the shim writes: `logs` (with `--tail`, `--since`, `--until`,
//! `-t`, `-f`). (Attach streams from the shim itself: attach.rs.)
//!
//! Following ends when the container exits: the shim writes every line before it reports
//! the exit, so after the exit notification a final read of the file is complete.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::container::Container;
use crate::error::Result;
use crate::Engine;

/// What `logs` was asked for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// `None` = all.
    pub tail: Option<usize>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub timestamps: bool,
}

/// One piece of output: stream 1 (stdout) or 2 (stderr) and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: u8,
    pub bytes: Vec<u8>,
}

#[derive(Deserialize)]
struct Entry {
    log: String,
    stream: String,
    time: DateTime<Utc>,
}

/// How often a follower looks for new lines while the container runs.
const POLL: Duration = Duration::from_millis(100);

impl Engine {
    /// Streams the log per `opts` into the returned channel.
    pub fn logs(
        self: &Arc<Self>,
        name_or_id: &str,
        opts: LogOptions,
    ) -> Result<mpsc::Receiver<LogChunk>> {
        let c = self.get(name_or_id)?;
        let (tx, rx) = mpsc::channel(64);
        let path = self.log_path(&c.id);
        let engine = self.clone();
        tokio::spawn(async move { engine.stream_log(c, path, opts, tx).await });
        Ok(rx)
    }

    fn log_path(&self, id: &str) -> PathBuf {
        self.cfg.container_dir(id).join(format!("{id}-json.log"))
    }

    async fn stream_log(
        self: Arc<Self>,
        c: Arc<Container>,
        path: PathBuf,
        opts: LogOptions,
        tx: mpsc::Sender<LogChunk>,
    ) {
        let mut life = c.lifecycle.subscribe();
        // Taken before the backlog is sent: an exit during a long backlog must end the
        // follow, not leave it waiting for the next one.
        let seen = life.borrow().exits;
        let running = c.state().status.is_active();
        let p = path.clone();
        let o = opts.clone();
        let backlog = tokio::task::spawn_blocking(move || read_backlog(&p, &o)).await;
        let Ok((chunks, end)) = backlog else { return };
        for ch in chunks {
            if tx.send(ch).await.is_err() {
                return;
            }
        }
        if !opts.follow || !running || opts.until.is_some_and(|u| u <= Utc::now()) {
            return;
        }
        let mut f = Follower::new(path, end);
        loop {
            let ended = {
                let l = life.borrow();
                l.exits > seen || l.removed
            };
            if !f.pump(&opts, &tx).await {
                return;
            }
            if ended {
                f.pump(&opts, &tx).await;
                return;
            }
            if opts.until.is_some_and(|u| u <= Utc::now()) {
                return;
            }
            tokio::select! {
                r = life.changed() => { if r.is_err() { f.pump(&opts, &tx).await; return; } }
                _ = tokio::time::sleep(POLL) => {}
                _ = tx.closed() => return,
            }
        }
    }
}

/// Turns one log line into a chunk if `opts` wants it.
fn chunk(line: &str, opts: &LogOptions) -> Option<LogChunk> {
    let e: Entry = serde_json::from_str(line).ok()?;
    let stream = match e.stream.as_str() {
        "stdout" if opts.stdout => 1,
        "stderr" if opts.stderr => 2,
        _ => return None,
    };
    if opts.since.is_some_and(|s| e.time < s) || opts.until.is_some_and(|u| e.time > u) {
        return None;
    }
    let mut bytes = Vec::with_capacity(e.log.len() + 32);
    if opts.timestamps {
        bytes.extend_from_slice(
            e.time
                .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                .as_bytes(),
        );
        bytes.push(b' ');
    }
    bytes.extend_from_slice(e.log.as_bytes());
    Some(LogChunk { stream, bytes })
}

/// Every wanted line of the rotated files and the current one, oldest first; returns the
/// chunks (tail applied) and the current file's length.
fn read_backlog(path: &Path, opts: &LogOptions) -> (Vec<LogChunk>, u64) {
    let mut files = Vec::new();
    for n in (1..100).rev() {
        let p = PathBuf::from(format!("{}.{n}", path.display()));
        if p.exists() {
            files.push(p);
        }
    }
    files.push(path.to_path_buf());
    let mut lines = Vec::new();
    let mut end = 0;
    for p in files {
        let Ok(f) = std::fs::File::open(&p) else {
            continue;
        };
        let mut r = BufReader::new(f);
        let mut pos = 0u64;
        loop {
            let mut line = String::new();
            match r.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !line.ends_with('\n') {
                        break; // a line still being written: the follower gets it
                    }
                    pos += n as u64;
                    line.pop();
                    lines.push(line);
                }
            }
        }
        if p == path {
            end = pos;
        }
    }
    // Docker tails the file first (both streams count), then filters.
    if let Some(t) = opts.tail {
        let skip = lines.len().saturating_sub(t);
        lines.drain(..skip);
    }
    let out = lines.iter().filter_map(|l| chunk(l, opts)).collect();
    (out, end)
}

/// Follows the current log file from an offset, across rotation.
struct Follower {
    path: PathBuf,
    file: Option<std::fs::File>,
    ino: u64,
    pos: u64,
    partial: Vec<u8>,
}

impl Follower {
    fn new(path: PathBuf, pos: u64) -> Self {
        Follower {
            path,
            file: None,
            ino: 0,
            pos,
            partial: Vec::new(),
        }
    }

    /// Sends every complete new line; false when the receiver is gone.
    async fn pump(&mut self, opts: &LogOptions, tx: &mpsc::Sender<LogChunk>) -> bool {
        let lines = self.read_new();
        for l in lines {
            if let Some(c) = chunk(&l, opts) {
                if tx.send(c).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    fn read_new(&mut self) -> Vec<String> {
        use std::os::unix::fs::MetadataExt;
        let mut lines = Vec::new();
        if self.file.is_none() {
            let Ok(mut f) = std::fs::File::open(&self.path) else {
                return lines;
            };
            self.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            let _ = f.seek(SeekFrom::Start(self.pos));
            self.file = Some(f);
        }
        loop {
            self.drain_into(&mut lines);
            // Rotated away? The writer may have appended to the old file between our read
            // and the rename, so drain it once more before switching to the new one.
            match std::fs::metadata(&self.path) {
                Ok(m) if m.ino() != self.ino => {
                    self.drain_into(&mut lines);
                    self.pos = 0;
                    self.partial.clear();
                    let Ok(f) = std::fs::File::open(&self.path) else {
                        self.file = None;
                        return lines;
                    };
                    self.ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
                    self.file = Some(f);
                }
                Ok(m) if m.len() < self.pos => {
                    // Truncated in place (max-file=1): start over at its beginning.
                    self.pos = 0;
                    self.partial.clear();
                    if let Some(f) = self.file.as_mut() {
                        let _ = f.seek(SeekFrom::Start(0));
                    }
                }
                _ => return lines,
            }
        }
    }

    /// Reads the open file to its end and moves every complete line into `lines`. Works on
    /// bytes: a record cut in the middle of a multi-byte character waits for its rest.
    fn drain_into(&mut self, lines: &mut Vec<String>) {
        use std::io::Read;
        let mut buf = Vec::new();
        if let Some(f) = self.file.as_mut() {
            let _ = f.read_to_end(&mut buf);
        }
        self.pos += buf.len() as u64;
        self.partial.extend_from_slice(&buf);
        while let Some(i) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=i).collect();
            lines.push(String::from_utf8_lossy(&line[..line.len() - 1]).into_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn line(stream: &str, text: &str, secs: i64) -> String {
        let t = DateTime::<Utc>::from_timestamp(1_700_000_000 + secs, 5).unwrap();
        serde_json::json!({"log": text, "stream": stream, "time": t}).to_string() + "\n"
    }

    #[test]
    fn backlog_applies_streams_tail_since_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x-json.log");
        std::fs::write(format!("{}.1", p.display()), line("stdout", "old\n", 0)).unwrap();
        let mut f = std::fs::File::create(&p).unwrap();
        f.write_all(line("stdout", "a\n", 10).as_bytes()).unwrap();
        f.write_all(line("stderr", "b\n", 20).as_bytes()).unwrap();
        f.write_all(line("stdout", "c\n", 30).as_bytes()).unwrap();
        f.write_all(b"{\"log\":\"partial").unwrap();
        let all = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let (chunks, end) = read_backlog(&p, &all);
        let text: Vec<_> = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.bytes).to_string())
            .collect();
        assert_eq!(text, ["old\n", "a\n", "b\n", "c\n"]);
        assert_eq!(chunks[2].stream, 2);
        assert!(end < std::fs::metadata(&p).unwrap().len());

        let tail = LogOptions {
            tail: Some(2),
            ..all.clone()
        };
        assert_eq!(read_backlog(&p, &tail).0.len(), 2);
        let only_out = LogOptions {
            stderr: false,
            ..all.clone()
        };
        assert_eq!(read_backlog(&p, &only_out).0.len(), 3);
        let since = LogOptions {
            since: Some(DateTime::<Utc>::from_timestamp(1_700_000_015, 0).unwrap()),
            ..all.clone()
        };
        assert_eq!(read_backlog(&p, &since).0.len(), 2);
        let ts = LogOptions {
            timestamps: true,
            tail: Some(1),
            ..all
        };
        let c = &read_backlog(&p, &ts).0[0];
        assert!(String::from_utf8_lossy(&c.bytes).starts_with("2023-11-14T22:13:50.000000005Z c"));
    }

    /// Regression: a follower that opened the log by path after the exit lost the output
    /// when an auto-remove had renamed the directory away first. Attach hands the follower
    /// the file it opened before `start`, so a rename no longer matters.
    #[test]
    fn follower_drains_the_old_file_across_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let mut old = std::fs::File::create(&path).unwrap();
        old.write_all(line("stdout", "1\n", 1).as_bytes()).unwrap();
        let mut f = Follower::new(path.clone(), 0);
        assert_eq!(f.read_new().len(), 1);
        // The writer appends, then rotates, before the follower looks again.
        old.write_all(line("stdout", "2\n", 2).as_bytes()).unwrap();
        std::fs::rename(&path, format!("{}.1", path.display())).unwrap();
        std::fs::write(&path, line("stdout", "3\n", 3)).unwrap();
        let opts = LogOptions {
            stdout: true,
            ..Default::default()
        };
        let got: Vec<Vec<u8>> = f
            .read_new()
            .iter()
            .map(|l| chunk(l, &opts).unwrap().bytes)
            .collect();
        assert_eq!(got, [b"2\n".to_vec(), b"3\n".to_vec()]);
    }

    /// A record cut in the middle of a multi-byte character is kept until its rest comes.
    #[test]
    fn follower_keeps_a_record_cut_mid_character() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        let record = line("stdout", "caf\u{e9}\n", 1);
        let bytes = record.as_bytes();
        let cut = record.find('\u{e9}').unwrap() + 1; // inside the two-byte é
        let mut w = std::fs::File::create(&path).unwrap();
        w.write_all(&bytes[..cut]).unwrap();
        let mut f = Follower::new(path.clone(), 0);
        assert!(f.read_new().is_empty());
        w.write_all(&bytes[cut..]).unwrap();
        let lines = f.read_new();
        let opts = LogOptions {
            stdout: true,
            ..Default::default()
        };
        assert_eq!(
            chunk(&lines[0], &opts).unwrap().bytes,
            "caf\u{e9}\n".as_bytes()
        );
    }

    /// With max-file=1 the writer truncates in place; the follower starts over.
    #[test]
    fn follower_restarts_after_truncation_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-json.log");
        std::fs::write(&path, line("stdout", "long line before\n", 1)).unwrap();
        let mut f = Follower::new(path.clone(), 0);
        assert_eq!(f.read_new().len(), 1);
        std::fs::write(&path, line("stdout", "x\n", 2)).unwrap(); // truncates, same inode
        let lines = f.read_new();
        assert_eq!(lines.len(), 1, "{lines:?}");
    }
}
