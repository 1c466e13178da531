//! Docker's json-file log format, written by the shim:
//! `{"log":"hi\n","stream":"stdout","time":"2026-11-23T17:53:58.123456789Z"}` a line.
//! A line longer than 16 KiB is split into records, all but the last without a newline; a
//! partial line is held until its newline, 16 KiB, or the end of the stream.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::spec::LogConfig;

/// Docker's maximum record size (moby `daemon/logger/copier.go` buffer).
pub(crate) const MAX_RECORD: usize = 16 * 1024;

/// The two container streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// RFC 3339 UTC with nanoseconds, always 9 digits.
pub(crate) fn timestamp_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

/// A json-file log with rotation.
pub(crate) struct LogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: Option<u64>,
    max_files: u32,
    /// Bytes of an unfinished line, per stream.
    partial: [Vec<u8>; 2],
    buf: Vec<u8>,
}

impl LogWriter {
    pub(crate) fn open(config: &LogConfig) -> io::Result<LogWriter> {
        let file = open_log(&config.path)?;
        let size = file.metadata()?.len();
        Ok(LogWriter {
            path: config.path.clone(),
            file,
            size,
            max_size: config.max_size.filter(|m| *m > 0),
            max_files: config.max_files,
            partial: [Vec::new(), Vec::new()],
            buf: Vec::with_capacity(4096),
        })
    }

    /// Adds bytes read from `stream`, writing every complete record.
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        let time = timestamp_now();
        let idx = stream as usize;
        let mut pending = std::mem::take(&mut self.partial[idx]);
        let mut rest = data;
        while !rest.is_empty() {
            let room = MAX_RECORD - pending.len();
            let window = &rest[..rest.len().min(room)];
            match window.iter().position(|b| *b == b'\n') {
                Some(nl) => {
                    pending.extend_from_slice(&window[..=nl]);
                    rest = &rest[nl + 1..];
                    self.record(stream, &pending, &time);
                    pending.clear();
                }
                None if window.len() == room => {
                    pending.extend_from_slice(window);
                    rest = &rest[window.len()..];
                    self.record(stream, &pending, &time);
                    pending.clear();
                }
                None => {
                    pending.extend_from_slice(window);
                    rest = &[];
                }
            }
        }
        self.partial[idx] = pending;
        self.flush()
    }

    /// The stream ended: write what is left of its last line.
    pub(crate) fn finish(&mut self, stream: Stream) -> io::Result<()> {
        let pending = std::mem::take(&mut self.partial[stream as usize]);
        if !pending.is_empty() {
            self.record(stream, &pending, &timestamp_now());
        }
        self.flush()
    }

    fn record(&mut self, stream: Stream, line: &[u8], time: &str) {
        let text = String::from_utf8_lossy(line);
        self.buf.extend_from_slice(b"{\"log\":");
        serde_json::to_writer(&mut self.buf, &*text).expect("writing to a Vec cannot fail");
        self.buf.extend_from_slice(b",\"stream\":\"");
        self.buf.extend_from_slice(stream.name().as_bytes());
        self.buf.extend_from_slice(b"\",\"time\":\"");
        self.buf.extend_from_slice(time.as_bytes());
        self.buf.extend_from_slice(b"\"}\n");
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.size += self.buf.len() as u64;
        self.buf.clear();
        if let Some(max) = self.max_size {
            if self.size >= max {
                self.rotate()?;
            }
        }
        Ok(())
    }

    /// Docker's rotation: `path.(n-2)` -> `path.(n-1)` ... `path` -> `path.1`, then a fresh
    /// `path`. With fewer than two files the file is truncated.
    fn rotate(&mut self) -> io::Result<()> {
        if self.max_files >= 2 {
            let numbered = |i: u32| {
                let mut p = self.path.clone().into_os_string();
                p.push(format!(".{i}"));
                PathBuf::from(p)
            };
            for i in (1..self.max_files - 1).rev() {
                match std::fs::rename(numbered(i), numbered(i + 1)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
            self.file = open_log(&self.path)?;
        } else {
            self.file.set_len(0)?;
        }
        self.size = 0;
        Ok(())
    }
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn writer(dir: &Path, max_size: Option<u64>, max_files: u32) -> LogWriter {
        LogWriter::open(&LogConfig {
            path: dir.join("c-json.log"),
            max_size,
            max_files,
        })
        .unwrap()
    }

    #[test]
    fn lines_become_records_and_partials_wait_for_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), None, 1);
        w.write(Stream::Stdout, b"hi\nhal").unwrap();
        w.write(Stream::Stderr, b"err\n").unwrap();
        w.write(Stream::Stdout, b"f\n\"q\"<").unwrap();
        w.finish(Stream::Stdout).unwrap();
        let r = records(&dir.path().join("c-json.log"));
        let logs: Vec<(&str, &str)> = r
            .iter()
            .map(|v| (v["log"].as_str().unwrap(), v["stream"].as_str().unwrap()))
            .collect();
        assert_eq!(
            logs,
            [
                ("hi\n", "stdout"),
                ("err\n", "stderr"),
                ("half\n", "stdout"),
                ("\"q\"<", "stdout")
            ]
        );
        let t = r[0]["time"].as_str().unwrap();
        assert_eq!(t.len(), "2026-11-23T17:53:58.123456789Z".len());
        assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok());
    }

    #[test]
    fn long_lines_are_split_at_16k() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), None, 1);
        let mut line = vec![b'a'; 40_000];
        line.push(b'\n');
        for chunk in line.chunks(5000) {
            w.write(Stream::Stdout, chunk).unwrap();
        }
        let r = records(&dir.path().join("c-json.log"));
        let lens: Vec<usize> = r.iter().map(|v| v["log"].as_str().unwrap().len()).collect();
        assert_eq!(lens, [MAX_RECORD, MAX_RECORD, 40_001 - 2 * MAX_RECORD]);
        assert!(r[2]["log"].as_str().unwrap().ends_with('\n'));
    }

    #[test]
    fn rotation_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), Some(100), 3);
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        let base = dir.path().join("c-json.log");
        assert!(dir.path().join("c-json.log.1").exists());
        assert!(dir.path().join("c-json.log.2").exists());
        assert!(!dir.path().join("c-json.log.3").exists());
        assert!(std::fs::metadata(&base).unwrap().len() < 100);
        let last = records(&dir.path().join("c-json.log.1"));
        assert!(!last.is_empty());
    }

    #[test]
    fn rotation_with_one_file_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path(), Some(100), 1);
        for i in 0..20 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(!dir.path().join("c-json.log.1").exists());
        assert!(
            std::fs::metadata(dir.path().join("c-json.log"))
                .unwrap()
                .len()
                < 100
        );
    }
}
