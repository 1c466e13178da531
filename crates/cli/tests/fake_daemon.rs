//! The `berth` binary against a fake daemon on a unix socket: request order of `run`,
//! exit statuses and the messages docker prints.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use berth_api::stream::{frame, StreamKind};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::{mpsc, watch};

type Body = BoxBody<Bytes, Infallible>;

const ID: &str = "c0ffee00000000000000000000000000000000000000000000000000000000aa";

struct Fake {
    seen: Mutex<Vec<String>>,
    create_bodies: Mutex<Vec<serde_json::Value>>,
    /// Becomes true at start; attach output and the wait body follow it.
    started: watch::Sender<bool>,
    /// Becomes true once attach output is written: the "container" has exited.
    exited: watch::Sender<bool>,
    fail_start: Mutex<Option<&'static str>>,
}

fn json(status: StatusCode, body: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Api-Version", "1.44")
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap()
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({ "message": message }).to_string(),
    )
}

async fn handle(fake: Arc<Fake>, mut req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let uri = req.uri().to_string();
    let method = req.method().to_string();
    fake.seen.lock().unwrap().push(format!("{method} {uri}"));
    let path = req.uri().path().to_string();
    let resp = match (method.as_str(), path.as_str()) {
        ("HEAD" | "GET", "/_ping") => json(StatusCode::OK, String::new()),
        ("POST", "/v1.44/containers/create") => {
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            fake.create_bodies.lock().unwrap().push(v.clone());
            if v["Image"] == "nosuch" {
                error(StatusCode::NOT_FOUND, "No such image: nosuch:latest")
            } else {
                json(
                    StatusCode::CREATED,
                    format!(r#"{{"Id":"{ID}","Warnings":[]}}"#),
                )
            }
        }
        ("POST", p) if p.ends_with("/attach") => {
            let upgrade = hyper::upgrade::on(&mut req);
            let fake = fake.clone();
            tokio::spawn(async move {
                let mut io = TokioIo::new(upgrade.await.unwrap());
                let mut started = fake.started.subscribe();
                if started.wait_for(|s| *s).await.is_ok() {
                    let _ = io.write_all(&frame(StreamKind::Stdout, b"hi\n")).await;
                    let _ = io.write_all(&frame(StreamKind::Stderr, b"err\n")).await;
                }
                let _ = io.shutdown().await;
                let _ = fake.exited.send(true);
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("Connection", "Upgrade")
                .header("Upgrade", "tcp")
                .header("Content-Type", "application/vnd.docker.multiplexed-stream")
                .body(Full::new(Bytes::new()).boxed())
                .unwrap()
        }
        ("POST", p) if p.ends_with("/wait") => {
            let (tx, rx) = mpsc::channel::<Bytes>(1);
            let mut exited = fake.exited.subscribe();
            tokio::spawn(async move {
                if exited.wait_for(|s| *s).await.is_ok() {
                    let _ = tx
                        .send(Bytes::from_static(br#"{"StatusCode":3,"Error":null}"#))
                        .await;
                }
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
        ("POST", p) if p.ends_with("/start") => {
            let fail = *fake.fail_start.lock().unwrap();
            match fail {
                Some(msg) => {
                    // The container never runs: end attach and wait as the daemon would.
                    let _ = fake.exited.send(true);
                    error(StatusCode::BAD_REQUEST, msg)
                }
                None => {
                    let _ = fake.started.send(true);
                    Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()).boxed())
                        .unwrap()
                }
            }
        }
        ("DELETE", "/v1.44/containers/nosuch") => {
            error(StatusCode::NOT_FOUND, "No such container: nosuch")
        }
        ("GET", "/v1.44/containers/json") => {
            let created = chrono::Utc::now().timestamp() - 150;
            json(
                StatusCode::OK,
                serde_json::json!([{
                    "Id": ID, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:1b23",
                    "Command": "httpd -f -p 80", "Created": created,
                    "Ports": [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"}],
                    "Labels": {"a": "b"}, "State": "running", "Status": "Up 2 minutes",
                    "HostConfig": {"NetworkMode": "default"},
                    "NetworkSettings": {"Networks": {"bridge": {}}}, "Mounts": []
                }])
                .to_string(),
            )
        }
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    };
    Ok(resp)
}

struct Daemon {
    fake: Arc<Fake>,
    host: String,
    _dir: tempfile::TempDir,
}

async fn fake_daemon() -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("berth.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let fake = Arc::new(Fake {
        seen: Mutex::new(Vec::new()),
        create_bodies: Mutex::new(Vec::new()),
        started: watch::channel(false).0,
        exited: watch::channel(false).0,
        fail_start: Mutex::new(None),
    });
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
    Daemon {
        fake,
        host: format!("unix://{}", sock.display()),
        _dir: dir,
    }
}

struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn berth(d: &Daemon, args: &[&str]) -> Ran {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("-H")
        .arg(&d.host)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), out)
        .await
        .expect("berth must not hang")
        .unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into(),
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

/// The verbs of the recorded requests, without the version prefix and query.
fn verbs(d: &Daemon) -> Vec<String> {
    d.fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|l| !l.contains("/_ping"))
        .map(|l| {
            let (m, uri) = l.split_once(' ').unwrap();
            let path = uri.split('?').next().unwrap();
            let verb = path.rsplit('/').next().unwrap();
            format!("{m} {verb}")
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn run_follows_dockers_choreography_and_exits_with_container_status() {
    let d = fake_daemon().await;
    let r = berth(
        &d,
        &[
            "run", "--rm", "--name", "t1", "busybox", "sh", "-c", "exit 3",
        ],
    )
    .await;
    assert_eq!(r.stdout, "hi\n");
    assert_eq!(r.stderr, "err\n");
    assert_eq!(r.code, 3);
    // Attach and wait go out together (either may arrive first); both before start.
    let mut v = verbs(&d);
    assert_eq!(v.first().map(String::as_str), Some("POST create"), "{v:?}");
    assert_eq!(v.last().map(String::as_str), Some("POST start"), "{v:?}");
    v[1..3].sort();
    assert_eq!(v, ["POST create", "POST attach", "POST wait", "POST start"]);
    let seen = d.fake.seen.lock().unwrap().clone();
    assert!(seen.contains(&"POST /v1.44/containers/create?name=t1".to_string()));
    assert!(seen
        .iter()
        .any(|l| l.ends_with(&format!("/containers/{ID}/wait?condition=removed"))));
    assert!(seen
        .iter()
        .any(|l| l.ends_with("/attach?stderr=1&stdout=1&stream=1")));
    let body = d.fake.create_bodies.lock().unwrap()[0].clone();
    assert_eq!(body["Cmd"], serde_json::json!(["sh", "-c", "exit 3"]));
    assert_eq!(body["HostConfig"]["AutoRemove"], true);
    assert_eq!(body["AttachStdout"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_detached_prints_the_full_id_after_start() {
    let d = fake_daemon().await;
    let r = berth(&d, &["run", "-d", "busybox", "sleep", "9"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{ID}\n"));
    assert_eq!(verbs(&d), ["POST create", "POST wait", "POST start"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_missing_image_says_unable_to_find_and_exits_125() {
    let d = fake_daemon().await;
    let r = berth(&d, &["run", "nosuch"]).await;
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        "Unable to find image 'nosuch:latest' locally\n\
         berth: Error response from daemon: No such image: nosuch:latest\n\n\
         Run 'berth run --help' for more information\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn run_with_missing_command_exits_127() {
    let d = fake_daemon().await;
    *d.fake.fail_start.lock().unwrap() =
        Some("failed to create task: exec: \"nosuchcmd\": executable file not found in $PATH");
    let r = berth(&d, &["run", "busybox", "nosuchcmd"]).await;
    assert_eq!(r.code, 127);
    assert_eq!(
        r.stderr,
        "berth: Error response from daemon: failed to create task: exec: \"nosuchcmd\": executable file not found in $PATH\n\n\
         Run 'berth run --help' for more information\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flag_value_is_a_usage_error_before_any_request() {
    let d = fake_daemon().await;
    let r = berth(&d, &["run", "-m", "lots", "busybox"]).await;
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        "invalid argument \"lots\" for \"-m, --memory\" flag: invalid size: 'lots'\n\n\
         Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
         Run 'berth run --help' for more information\n"
    );
    assert!(verbs(&d).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn rm_force_of_missing_container_prints_but_succeeds() {
    let d = fake_daemon().await;
    let r = berth(&d, &["rm", "-f", "nosuch"]).await;
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stderr,
        "Error response from daemon: No such container: nosuch\n"
    );
    let r = berth(&d, &["rm", "nosuch"]).await;
    assert_eq!(r.code, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn ps_prints_dockers_table_and_templates() {
    let d = fake_daemon().await;
    let r = berth(&d, &["ps"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "CONTAINER ID   IMAGE     COMMAND            CREATED         STATUS         PORTS                  NAMES\n\
         c0ffee000000   busybox   \"httpd -f -p 80\"   2 minutes ago   Up 2 minutes   0.0.0.0:8080->80/tcp   web\n"
    );
    let r = berth(&d, &["ps", "-q"]).await;
    assert_eq!(r.stdout, "c0ffee000000\n");
    let r = berth(&d, &["ps", "--format", "{{.Names}} {{.Label \"a\"}}"]).await;
    assert_eq!(r.stdout, "web b\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_daemon_is_reported_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let host = format!("unix://{}/none.sock", dir.path().display());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["-H", &host, "ps"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("Cannot connect to the berth daemon at {host}. Is the berth daemon running?\n")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_flag_combinations_read_as_dockers_report_error() {
    let d = fake_daemon().await;
    let r = berth(&d, &["create", "--rm", "--restart", "always", "busybox"]).await;
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        "berth: conflicting options: cannot specify both --restart and --rm\n\n\
         Run 'berth create --help' for more information\n"
    );
    // A bad `-e` is a flag error: usage follows, as docker's.
    let r = berth(&d, &["create", "-e", "=x", "busybox"]).await;
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        "invalid argument \"=x\" for \"-e, --env\" flag: invalid environment variable: =x\n\n\
         Usage:  berth create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
         Run 'berth create --help' for more information\n"
    );
    // So is a bad value clap refuses, with docker's usage line.
    let r = berth(&d, &["container", "create", "--cpu-shares", "x", "busybox"]).await;
    assert_eq!(r.code, 125);
    assert!(
        r.stderr
            .contains("\n\nUsage:  berth container create [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"),
        "{}",
        r.stderr
    );
    assert!(verbs(&d).is_empty());
}
