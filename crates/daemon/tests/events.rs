//! `GET /events` over a real unix socket: a client that goes away leaves no subscriber
//! behind, events reach a live stream one line at a time, and bad parameters get Docker's
//! 400s. The runtime is the tests' fake: nothing here starts a container.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_daemon::{router, server};
use berth_engine::Engine;

mod common;

struct Served {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    engine: Arc<Engine>,
}

/// berthd's router on a socket in a temp dir, with one image (`busybox:latest`).
async fn serve() -> Served {
    let dir = tempfile::tempdir().unwrap();
    let state = common::state_in(dir.path()).await;
    let engine = state.engine.clone();
    let socket = dir.path().join("api.sock");
    let app = router(state);
    let path = socket.clone();
    tokio::spawn(async move { server::serve(app, &path).await });
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(&socket).is_err() {
        assert!(Instant::now() < deadline, "the socket never came up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Served {
        _dir: dir,
        socket,
        engine,
    }
}

/// Sends a GET and returns the connection with the status line and headers read.
fn get(socket: &Path, uri: &str) -> (BufReader<UnixStream>, String) {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {uri} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut r = BufReader::new(s);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    (r, head)
}

/// The next chunk of a chunked body.
fn chunk(r: &mut BufReader<UnixStream>) -> String {
    let mut size = String::new();
    r.read_line(&mut size).unwrap();
    let n = usize::from_str_radix(size.trim(), 16).unwrap();
    let mut data = vec![0; n + 2];
    r.read_exact(&mut data).unwrap();
    String::from_utf8(data[..n].to_vec()).unwrap()
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_arrive_one_chunk_each_and_a_gone_client_leaves_no_subscriber() {
    let s = serve().await;
    let socket = s.socket.clone();
    let (mut r, head) = tokio::task::spawn_blocking(move || {
        get(
            &socket,
            "/v1.44/events?filters=%7B%22type%22%3A%5B%22image%22%5D%7D",
        )
    })
    .await
    .unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-type: application/json\r\n"),
        "{head}"
    );
    wait_until("the subscription", || s.engine.events().subscribers() == 1).await;

    let engine = s.engine.clone();
    tokio::task::spawn_blocking(move || engine.tag_image("busybox", "other", "2"))
        .await
        .unwrap()
        .unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let line = chunk(&mut r);
        (line, r)
    })
    .await
    .unwrap();
    let (line, r) = line;
    assert!(line.ends_with('\n'), "{line:?}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["Action"], "tag");
    assert_eq!(v["Actor"]["Attributes"]["name"], "other:2");

    drop(r);
    wait_until("the subscriber to go with its client", || {
        s.engine.events().subscribers() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_past_until_replays_and_closes_and_bad_parameters_are_400s() {
    let s = serve().await;
    s.engine.tag_image("busybox", "other", "2").unwrap();
    let socket = s.socket.clone();
    let replies = tokio::task::spawn_blocking(move || {
        let read_all = |uri: &str| {
            let (mut r, head) = get(&socket, uri);
            let mut body = String::new();
            if head.contains("chunked") {
                loop {
                    let c = chunk(&mut r);
                    if c.is_empty() {
                        break;
                    }
                    body.push_str(&c);
                }
            } else {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap();
                let mut b = vec![0; len];
                r.read_exact(&mut b).unwrap();
                body = String::from_utf8(b).unwrap();
            }
            (head, body)
        };
        let t = chrono::Utc::now();
        let now = format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos());
        vec![
            read_all(&format!("/events?since=0&until={now}")),
            read_all("/events?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D"),
            read_all("/events?since=abc"),
            read_all("/events?since=20&until=10"),
        ]
    })
    .await
    .unwrap();
    let (head, body) = &replies[0];
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The store was fed directly for busybox: the tag is the one event.
    let actions: Vec<String> = body
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["Action"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(actions, ["tag"]);
    let message = |i: usize| {
        let (head, body) = &replies[i];
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
        serde_json::from_str::<serde_json::Value>(body).unwrap()["message"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(message(1), "invalid filter 'bogus'");
    assert_eq!(
        message(2),
        "invalid value for 'since': invalid timestamp \"abc\": invalid seconds \"abc\": invalid syntax"
    );
    assert_eq!(
        message(3),
        "`since` time (20) cannot be after `until` time (10)"
    );
    assert_eq!(
        s.engine.events().subscribers(),
        0,
        "a finished replay holds nothing"
    );
}
