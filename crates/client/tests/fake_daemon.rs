//! The client against a tiny fake daemon on a unix socket in a tempdir.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use berth_api::stream::{frame, StreamKind};
use berth_client::{AttachOptions, Client, LogsOptions};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::{mpsc, Notify};

type Body = BoxBody<Bytes, Infallible>;

#[derive(Default)]
struct Fake {
    /// `METHOD path?query` of every request, in arrival order.
    seen: Mutex<Vec<String>>,
    /// Fired when `start` arrives; the wait body is sent after it.
    started: Notify,
}

fn full(status: StatusCode, content_type: &str, body: &'static [u8]) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", content_type)
        .header("Api-Version", "1.41")
        .body(Full::new(Bytes::from_static(body)).boxed())
        .unwrap()
}

async fn handle(fake: Arc<Fake>, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let line = format!("{} {}", req.method(), req.uri());
    fake.seen.lock().unwrap().push(line.clone());
    let path = req.uri().path().to_string();
    let resp = match (req.method().as_str(), path.as_str()) {
        // HEAD answered 405 so the client must fall back to GET, like against old servers.
        ("HEAD", "/_ping") => full(StatusCode::METHOD_NOT_ALLOWED, "text/plain", b""),
        ("GET", "/_ping") => full(StatusCode::OK, "text/plain", b"OK"),
        ("GET", "/v1.41/containers/nosuch/json") => full(
            StatusCode::NOT_FOUND,
            "application/json",
            br#"{"message":"No such container: nosuch"}"#,
        ),
        ("POST", "/v1.41/containers/c1/wait") => {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            let fake = fake.clone();
            tokio::spawn(async move {
                fake.started.notified().await;
                let _ = tx
                    .send(Bytes::from_static(br#"{"StatusCode":7,"Error":null}"#))
                    .await;
            });
            let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv()
                    .await
                    .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
            });
            Response::builder()
                .header("Content-Type", "application/json")
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .unwrap()
        }
        ("POST", "/v1.41/containers/c1/start") => {
            fake.started.notify_one();
            Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Full::new(Bytes::new()).boxed())
                .unwrap()
        }
        ("GET", "/v1.41/containers/c1/logs") => {
            let mut body = frame(StreamKind::Stdout, b"out\n");
            body.extend(frame(StreamKind::Stderr, b"err\n"));
            Response::builder()
                .body(Full::new(Bytes::from(body)).boxed())
                .unwrap()
        }
        ("POST", "/v1.41/containers/c1/attach") => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let mut io = TokioIo::new(upgrade.await.unwrap());
                // The client half-closes at once when it sends no stdin: read to EOF, then
                // keep writing output, as berthd must.
                let mut sink = Vec::new();
                io.read_to_end(&mut sink).await.unwrap();
                io.write_all(&frame(StreamKind::Stdout, b"after eof\n"))
                    .await
                    .unwrap();
                io.shutdown().await.unwrap();
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("Connection", "Upgrade")
                .header("Upgrade", "tcp")
                .header("Content-Type", "application/vnd.docker.multiplexed-stream")
                .body(Full::new(Bytes::new()).boxed())
                .unwrap()
        }
        _ => full(
            StatusCode::NOT_FOUND,
            "application/json",
            br#"{"message":"page not found"}"#,
        ),
    };
    Ok(resp)
}

/// Starts the fake daemon; returns the client pointed at it and the shared record.
async fn fake_daemon() -> (Client, Arc<Fake>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("berth.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let fake = Arc::new(Fake::default());
    let f = fake.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let f = f.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| handle(f.clone(), req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades()
                    .await;
            });
        }
    });
    let client = Client::new(&format!("unix://{}", sock.display())).unwrap();
    (client, fake, dir)
}

#[tokio::test]
async fn negotiation_falls_back_to_get_and_uses_server_version() {
    let (client, fake, _dir) = fake_daemon().await;
    assert_eq!(client.api_version().await.unwrap(), "1.41");
    // Negotiated once, then reused.
    let _ = client.container_inspect("nosuch").await;
    let _ = client.container_inspect("nosuch").await;
    let seen = fake.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            "HEAD /_ping",
            "GET /_ping",
            "GET /v1.41/containers/nosuch/json",
            "GET /v1.41/containers/nosuch/json",
        ]
    );
}

#[tokio::test]
async fn daemon_errors_keep_status_and_message() {
    let (client, _fake, _dir) = fake_daemon().await;
    let err = client.container_inspect("nosuch").await.unwrap_err();
    assert_eq!(err.status(), Some(StatusCode::NOT_FOUND));
    assert!(err.is_not_found());
    assert_eq!(err.message(), "No such container: nosuch");
    assert_eq!(
        err.to_string(),
        "Error response from daemon: No such container: nosuch"
    );
}

#[tokio::test]
async fn wait_returns_at_headers_and_body_follows_start() {
    let (client, _fake, _dir) = fake_daemon().await;
    // If container_wait awaited the body this would deadlock: the body is only sent after
    // start, which we send after wait returns.
    let wait = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.container_wait("c1", Some("next-exit")),
    )
    .await
    .expect("wait must return once headers arrive")
    .unwrap();
    client.container_start("c1").await.unwrap();
    let status = wait.await.unwrap();
    assert_eq!(status.status_code, 7);
}

#[tokio::test]
async fn logs_are_demultiplexed() {
    let (client, _fake, _dir) = fake_daemon().await;
    let chunks: Vec<_> = client
        .container_logs("c1", &LogsOptions::default())
        .await
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!(chunks.len(), 2);
    assert_eq!(chunks[0].kind, StreamKind::Stdout);
    assert_eq!(&chunks[0].data[..], b"out\n");
    assert_eq!(chunks[1].kind, StreamKind::Stderr);
}

#[tokio::test]
async fn attach_half_close_still_receives_output() {
    let (client, fake, _dir) = fake_daemon().await;
    let opts = AttachOptions {
        stdout: true,
        stderr: true,
        stream: true,
        ..Default::default()
    };
    let mut io = client.container_attach("c1", opts).await.unwrap();
    assert!(io.announced_multiplexed());
    io.shutdown().await.unwrap();
    let mut out = Vec::new();
    io.read_to_end(&mut out).await.unwrap();
    assert_eq!(out, frame(StreamKind::Stdout, b"after eof\n"));
    let seen = fake.seen.lock().unwrap().clone();
    assert!(seen.contains(&"POST /v1.41/containers/c1/attach?stderr=1&stdout=1&stream=1".into()));
}

#[tokio::test]
async fn unreachable_socket_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/none.sock", dir.path().display());
    let err = Client::new(&host).unwrap().ping().await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")
    );
}
