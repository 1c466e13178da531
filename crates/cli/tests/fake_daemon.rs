//! The `berth` binary against a fake daemon on a unix socket: request order of `run`,
//! exit statuses and the messages docker prints, and the bodies of the network verbs and
//! of `create --network ...` next to the ones docker 28 sent for the same commands.

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
const NET_ID: &str = "3f1b2c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809";

struct Fake {
    seen: Mutex<Vec<String>>,
    create_bodies: Mutex<Vec<serde_json::Value>>,
    /// `METHOD path` and JSON body of every request to `/networks`.
    network_bodies: Mutex<Vec<(String, serde_json::Value)>>,
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
    if let Some(network) = path.strip_prefix("/v1.44/networks") {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        fake.network_bodies
            .lock()
            .unwrap()
            .push((format!("{method} {uri}"), v));
        return Ok(network_route(&method, network));
    }
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
        ("POST", "/v1.44/images/create") => error(
            StatusCode::NOT_FOUND,
            "pull access denied for nosuch, repository does not exist or may require 'docker login': denied: requested access to the resource is denied",
        ),
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

/// `/networks{rest}`: a network whose name starts with `missing` does not exist.
fn network_route(method: &str, rest: &str) -> Response<Body> {
    let empty = |status| {
        Response::builder()
            .status(status)
            .body(Full::new(Bytes::new()).boxed())
            .unwrap()
    };
    let name = rest.trim_start_matches('/').split('/').next().unwrap_or("");
    match (method, rest) {
        ("POST", "/create") => json(
            StatusCode::CREATED,
            format!(r#"{{"Id":"{NET_ID}","Warning":""}}"#),
        ),
        ("POST", "/prune") => json(
            StatusCode::OK,
            r#"{"NetworksDeleted":["net-a","net-b"]}"#.into(),
        ),
        _ if name.starts_with("missing") => {
            error(StatusCode::NOT_FOUND, &format!("network {name} not found"))
        }
        ("DELETE", _) => empty(StatusCode::NO_CONTENT),
        ("POST", r) if r.ends_with("/connect") || r.ends_with("/disconnect") => {
            empty(StatusCode::OK)
        }
        _ => error(StatusCode::NOT_FOUND, "page not found"),
    }
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
        network_bodies: Mutex::new(Vec::new()),
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
async fn run_with_missing_image_says_unable_to_find_pulls_and_exits_125() {
    let d = fake_daemon().await;
    let r = berth(&d, &["run", "nosuch"]).await;
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        "Unable to find image 'nosuch:latest' locally\n\
         berth: Error response from daemon: pull access denied for nosuch, repository does not exist or may require 'docker login': denied: requested access to the resource is denied\n\n\
         Run 'berth run --help' for more information\n"
    );
    let seen = d.fake.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&"POST /v1.44/images/create?fromImage=nosuch&tag=latest".to_string()),
        "{seen:?}"
    );
    // --pull=never: no pull, the create's error stands.
    let r = berth(&d, &["run", "--pull=never", "nosuch"]).await;
    assert_eq!(r.code, 125);
    assert!(
        r.stderr.contains("No such image: nosuch:latest"),
        "{}",
        r.stderr
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

/// The requests made to `/networks`, as `METHOD path?query` and body.
fn network_requests(d: &Daemon) -> Vec<(String, serde_json::Value)> {
    d.fake.network_bodies.lock().unwrap().clone()
}

fn parse_json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

/// The zero endpoint docker 28 sends in `EndpointsConfig`.
const ZERO_ENDPOINT: &str = r#"{"IPAMConfig": null, "Links": null, "Aliases": null,
    "MacAddress": "", "DriverOpts": null, "GwPriority": 0, "NetworkID": "", "EndpointID": "",
    "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
    "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "DNSNames": null}"#;

#[tokio::test(flavor = "multi_thread")]
async fn network_create_sends_dockers_body_and_prints_the_full_id() {
    let d = fake_daemon().await;
    let r = berth(
        &d,
        &[
            "network",
            "create",
            "--subnet",
            "10.9.0.0/24",
            "--gateway",
            "10.9.0.1",
            "--label",
            "a=b",
            "--internal",
            "n2",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, format!("{NET_ID}\n"));
    // What docker 28 sent for the same command (API 1.44).
    let docker = parse_json(
        r#"{"Driver": "bridge", "Scope": "", "IPAM": {"Driver": "default", "Options": {},
            "Config": [{"Subnet": "10.9.0.0/24", "Gateway": "10.9.0.1"}]}, "Internal": true,
            "Attachable": false, "Ingress": false, "ConfigOnly": false, "ConfigFrom": null,
            "Options": {}, "Labels": {"a": "b"}, "Name": "n2"}"#,
    );
    assert_eq!(
        network_requests(&d),
        [("POST /v1.44/networks/create".to_string(), docker)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn network_create_refuses_an_unpaired_gateway_before_any_request() {
    let d = fake_daemon().await;
    let r = berth(&d, &["network", "create", "--gateway", "10.0.0.1", "n"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "every ip-range or gateway must have a corresponding subnet\n"
    );
    assert!(network_requests(&d).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn network_rm_goes_on_after_a_failure_and_exits_1() {
    let d = fake_daemon().await;
    let r = berth(&d, &["network", "rm", "a", "missing1", "b"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "a\nb\n");
    assert_eq!(
        r.stderr,
        "Error response from daemon: network missing1 not found\nexit status 1\n"
    );
    let paths: Vec<String> = network_requests(&d).into_iter().map(|r| r.0).collect();
    assert_eq!(
        paths,
        [
            "DELETE /v1.44/networks/a",
            "DELETE /v1.44/networks/missing1",
            "DELETE /v1.44/networks/b"
        ]
    );
    // -f passes over a missing network; `remove` is rm.
    let r = berth(&d, &["network", "remove", "-f", "a", "missing1", "b"]).await;
    assert_eq!(
        (r.code, r.stdout.as_str(), r.stderr.as_str()),
        (0, "a\nb\n", "")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn network_prune_prints_the_deleted_networks() {
    let d = fake_daemon().await;
    let r = berth(&d, &["network", "prune", "-f", "--filter", "until=24h"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "Deleted Networks:\nnet-a\nnet-b\n\n");
    assert_eq!(
        network_requests(&d)[0].0,
        "POST /v1.44/networks/prune?filters=%7B%22until%22%3A%7B%2224h%22%3Atrue%7D%7D"
    );
    // Without -f, docker's question; stdin at its end is a no.
    let r = berth(&d, &["network", "prune"]).await;
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout,
        "WARNING! This will remove all custom networks not used by at least one container.\n\
         Are you sure you want to continue? [y/N] "
    );
    assert_eq!(network_requests(&d).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn network_connect_and_disconnect_send_dockers_bodies() {
    let d = fake_daemon().await;
    let r = berth(
        &d,
        &[
            "network",
            "connect",
            "--alias",
            "x",
            "--alias",
            "y,z",
            "--ip",
            "10.1.0.9",
            "--ip6",
            "fd00::9",
            "--link",
            "c1:al",
            "--driver-opt",
            " c = d ",
            "--link-local-ip",
            "169.254.1.1",
            "--gw-priority",
            "5",
            "n1",
            "ctr",
        ],
    )
    .await;
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let r = berth(&d, &["network", "connect", "n1", "ctr"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = berth(&d, &["network", "disconnect", "-f", "n1", "ctr"]).await;
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    let r = berth(&d, &["network", "disconnect", "missing", "ctr"]).await;
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr,
        "Error response from daemon: network missing not found\n"
    );
    // What docker 28 sent for the same commands.
    let full = parse_json(
        r#"{"Container": "ctr", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.1.0.9",
            "IPv6Address": "fd00::9", "LinkLocalIPs": ["169.254.1.1"]}, "Links": ["c1:al"],
            "Aliases": ["x", "y", "z"], "MacAddress": "", "DriverOpts": {"c": "d"},
            "GwPriority": 5, "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0, "DNSNames": null}}"#,
    );
    let bare = parse_json(
        r#"{"Container": "ctr", "EndpointConfig": {"IPAMConfig": {}, "Links": null,
            "Aliases": [], "MacAddress": "", "DriverOpts": {}, "GwPriority": 0, "NetworkID": "",
            "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": null}}"#,
    );
    let s = |p: &str| p.to_string();
    assert_eq!(
        network_requests(&d),
        [
            (s("POST /v1.44/networks/n1/connect"), full),
            (s("POST /v1.44/networks/n1/connect"), bare),
            (
                s("POST /v1.44/networks/n1/disconnect"),
                parse_json(r#"{"Container": "ctr", "Force": true}"#)
            ),
            (
                s("POST /v1.44/networks/missing/disconnect"),
                parse_json(r#"{"Container": "ctr", "Force": false}"#)
            ),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_networks_sends_dockers_networking_config() {
    let d = fake_daemon().await;
    let r = berth(
        &d,
        &[
            "create",
            "--network",
            "n1",
            "--network",
            "n2",
            "--ip",
            "10.1.0.5",
            "--network-alias",
            "a1",
            "--mac-address",
            "02:42:ac:11:00:02",
            "--link",
            "c1:x",
            "--dns-search",
            "example.com",
            "--dns-option",
            "ndots:2",
            "busybox",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = berth(&d, &["create", "busybox"]).await;
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bodies = d.fake.create_bodies.lock().unwrap().clone();
    // What docker 28 sent for the same commands.
    let n1 = parse_json(
        r#"{"IPAMConfig": {"IPv4Address": "10.1.0.5"}, "Links": ["c1:x"], "Aliases": ["a1"],
            "MacAddress": "02:42:ac:11:00:02", "DriverOpts": null, "GwPriority": 0,
            "NetworkID": "", "EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "DNSNames": null}"#,
    );
    assert_eq!(
        bodies[0]["NetworkingConfig"],
        serde_json::json!({"EndpointsConfig": {"n1": n1, "n2": parse_json(ZERO_ENDPOINT)}})
    );
    let hc = &bodies[0]["HostConfig"];
    assert_eq!(hc["NetworkMode"], "n1");
    assert_eq!(hc["Links"], serde_json::json!(["c1:x"]));
    assert_eq!(hc["DnsSearch"], serde_json::json!(["example.com"]));
    assert_eq!(hc["DnsOptions"], serde_json::json!(["ndots:2"]));
    assert!(bodies[0].get("MacAddress").is_none());
    assert_eq!(
        bodies[1]["NetworkingConfig"],
        serde_json::json!({"EndpointsConfig": {"default": parse_json(ZERO_ENDPOINT)}})
    );
    assert_eq!(bodies[1]["HostConfig"]["DnsSearch"], serde_json::json!([]));
    assert!(bodies[1]["HostConfig"].get("Links").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_network_combinations_are_refused_as_docker_before_any_request() {
    let d = fake_daemon().await;
    let r = berth(
        &d,
        &["create", "--network", "n1", "--network", "n1", "busybox"],
    )
    .await;
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        "berth: network \"n1\" is specified multiple times\n\n\
         Run 'berth create --help' for more information\n"
    );
    let r = berth(&d, &["run", "--network", "name=n1,bogus=1", "busybox"]).await;
    assert_eq!(r.code, 125);
    assert_eq!(
        r.stderr,
        "invalid argument \"name=n1,bogus=1\" for \"--network\" flag: invalid field key bogus\n\n\
         Usage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
         Run 'berth run --help' for more information\n"
    );
    assert!(verbs(&d).is_empty());
}
