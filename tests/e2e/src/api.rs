//! Requests straight to berthd's Engine API socket, for what neither CLI sends (bad bodies,
//! unknown fields, raw statuses, hijacked connections), and Docker's stream framing.
//!
//! The framing is written here from Docker's documentation rather than taken from
//! `berth_api::stream`, so that the tests check berthd's bytes against a reading of their
//! own and not against the code under test.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::{text, Daemon};

/// Now as the API's `seconds.nanoseconds`, which both CLIs pass through (`--since`).
pub fn now() -> String {
    let t = chrono::Utc::now();
    format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos())
}

/// `curl -X method` of `path` (as given: with or without a `/v1.xx` prefix) on `d`'s socket,
/// with `body` sent as JSON: (status, the answer's bytes). The status is 0 when no answer
/// came; curl gives up after 120 s.
pub fn curl_bytes(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, Vec<u8>) {
    let mut c = Command::new("curl");
    c.args(["-s", "--max-time", "120", "-w", "\n%{http_code}"])
        .arg("--unix-socket")
        .arg(&d.socket)
        .args(["-X", method]);
    if let Some(body) = body {
        c.args(["-H", "Content-Type: application/json", "-d", body]);
    }
    let out = c
        .arg(format!("http://berth{path}"))
        .output()
        .expect("run curl");
    let mut answer = out.stdout;
    let at = answer.iter().rposition(|&b| b == b'\n').expect("curl's -w");
    let status = text(&answer[at + 1..]).trim().parse().unwrap_or(0);
    answer.truncate(at);
    (status, answer)
}

/// [`curl_bytes`] with the answer as text.
pub fn curl(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let (status, answer) = curl_bytes(d, method, path, body);
    (status, text(&answer))
}

/// [`curl_bytes`] with the answer as JSON (`Null` when it is not JSON).
pub fn curl_json(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let (status, answer) = curl_bytes(d, method, path, body);
    (status, serde_json::from_slice(&answer).unwrap_or_default())
}

/// One HTTP/1.1 request written by hand on `d`'s socket (`Connection: close`), with `body`
/// sent as JSON, read to the end: (status, body). Chunked bodies are joined. Waits at most
/// 120 s for the answer.
pub fn request(d: &Daemon, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    let mut s = UnixStream::connect(&d.socket).expect("connect to berthd");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: berth\r\n");
    if let Some(body) = body {
        head += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    write!(s, "{head}Connection: close\r\n\r\n{}", body.unwrap_or("")).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read the answer");
    let raw = text(&raw);
    let (head, rest) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if !head.to_lowercase().contains("transfer-encoding: chunked") {
        return (status, rest.to_string());
    }
    let mut joined = String::new();
    let mut rest = rest;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        joined.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    (status, joined)
}

/// A `POST path` with `body` (JSON, or nothing when empty) that asks for an upgrade, as
/// `attach` and `exec start` do: the connection once berthd answered `101`, with nothing
/// of the stream read yet.
pub fn upgrade(d: &Daemon, path: &str, body: &str) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).expect("connect to berthd");
    let kind = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         {kind}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "{}", text(&head));
        head.push(byte[0]);
    }
    assert!(text(&head).starts_with("HTTP/1.1 101"), "{}", text(&head));
    s
}

/// Docker's stream number of stdout in a frame header.
pub const STDOUT: u8 = 1;
/// Docker's stream number of stderr in a frame header.
pub const STDERR: u8 = 2;

/// Docker's multiplexed frame of `payload` on `stream` ([`STDOUT`], [`STDERR`]): the stream,
/// three zero bytes, the payload's length (big-endian u32), the payload.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![stream, 0, 0, 0];
    f.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
    f.extend_from_slice(payload);
    f
}
