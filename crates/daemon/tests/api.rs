//! The API edge without a socket or a real runtime: routes driven through
//! `server::handle`, an engine over a temp root, and a runtime fake whose containers exit
//! as soon as they start (with the code given in the command: `exit N`).

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;

use berth_daemon::{router, server};

mod common;

struct Api {
    dir: tempfile::TempDir,
    router: axum::Router,
}

async fn api() -> Api {
    api_in(tempfile::tempdir().unwrap()).await
}

/// An API over `dir`: an existing root is restored, a new one gets a busybox image.
async fn api_in(dir: tempfile::TempDir) -> Api {
    let router = router(common::state_in(dir.path()).await);
    Api { dir, router }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Api {
    async fn call(&self, method: Method, uri: &str, body: &str) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        let resp = server::handle(self.router.clone(), req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).to_string(),
        }
    }

    async fn create(&self, name: &str, cmd: &str) -> String {
        let body = serde_json::json!({"Image": "busybox", "Cmd": ["sh", "-c", cmd],
            "Labels": {"team": name}, "HostConfig": {}});
        let r = self
            .call(
                Method::POST,
                &format!("/v1.44/containers/create?name={name}"),
                &body.to_string(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        v["Id"].as_str().unwrap().to_string()
    }
}

fn message(r: &Reply) -> String {
    assert_eq!(
        r.headers["content-type"], "application/json",
        "errors must be application/json exactly"
    );
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    v["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn ping_answers_get_and_head_with_the_api_version() {
    let api = api().await;
    for uri in ["/_ping", "/v1.41/_ping"] {
        let r = api.call(Method::GET, uri, "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "OK");
        assert_eq!(r.headers["api-version"], "1.44");
        let r = api.call(Method::HEAD, uri, "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, "");
        assert_eq!(r.headers["api-version"], "1.44");
    }
}

#[tokio::test]
async fn versions_are_served_from_1_24_to_1_44_and_unversioned() {
    let api = api().await;
    for uri in ["/version", "/v1.24/version", "/v1.44/version"] {
        let r = api.call(Method::GET, uri, "").await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["ApiVersion"], "1.44");
        assert_eq!(v["MinAPIVersion"], "1.24");
    }
    let r = api.call(Method::GET, "/v1.45/version", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&r),
        "client version 1.45 is too new. Maximum supported API version is 1.44"
    );
    let r = api.call(Method::GET, "/v1.23/info", "").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(message(&r).starts_with("client version 1.23 is too old"));
    let r = api.call(Method::GET, "/info", "").await;
    assert_eq!(r.status, StatusCode::OK);
    let r = api.call(Method::GET, "/nosuch/route", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(message(&r), "page not found");
}

#[tokio::test]
async fn malformed_and_unknown_input_gets_dockers_errors() {
    let api = api().await;
    let r = api
        .call(Method::POST, "/containers/create", "{bad json")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains("key must be a string"), "{}", r.body);

    let r = api
        .call(
            Method::POST,
            "/containers/create",
            r#"{"Image":"nosuch","Cmd":["x"]}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(message(&r), "No such image: nosuch");

    let r = api
        .call(
            Method::POST,
            "/containers/create?name=bad%20name",
            r#"{"Image":"busybox","Cmd":["x"]}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&r),
        "Invalid container name (bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
    );

    // Unknown fields with a value berth would not apply are refused (fail closed), naming
    // the field; at their zero value they are accepted (and kept for inspect).
    let r = api
        .call(
            Method::POST,
            "/containers/create?name=web",
            r#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Nope":2}}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        message(&r),
        "HostConfig.Nope is not supported by berth yet: refused rather than ignored (value: 2)"
    );
    let id = {
        let body =
            r#"{"Image":"busybox","Cmd":["true"],"FromTheFuture":0,"HostConfig":{"Nope":null}}"#;
        let r = api
            .call(Method::POST, "/containers/create?name=web", body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let r = api
        .call(
            Method::POST,
            "/containers/create?name=web",
            r#"{"Image":"busybox","Cmd":["x"]}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        message(&r),
        format!("Conflict. The container name \"/web\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")
    );
    let r = api.call(Method::GET, "/containers/nosuch/json", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(message(&r), "No such container: nosuch");
    let r = api
        .call(Method::GET, "/containers/json?filters={bogus", "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = api
        .call(
            Method::GET,
            "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
            "",
        )
        .await;
    assert_eq!(message(&r), "invalid filter 'bogus'");
    let r = api
        .call(Method::POST, "/containers/web/wait?condition=sometime", "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn both_filter_shapes_and_loose_booleans_select_the_same_containers() {
    let api = api().await;
    api.create("alpha", "true").await;
    api.create("beta", "true").await;
    let go = "/containers/json?all=1&filters=%7B%22label%22%3A%7B%22team%3Dalpha%22%3Atrue%7D%7D";
    let py = "/containers/json?all=True&filters=%7B%22label%22%3A%5B%22team%3Dalpha%22%5D%7D";
    let a: serde_json::Value =
        serde_json::from_str(&api.call(Method::GET, go, "").await.body).unwrap();
    let b: serde_json::Value =
        serde_json::from_str(&api.call(Method::GET, py, "").await.body).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.as_array().unwrap().len(), 1);
    assert_eq!(a[0]["Names"][0], "/alpha");
    assert_eq!(a[0]["Labels"]["from"], "image", "image labels are merged");
    // all=0 / absent: created containers are not running, so none are listed.
    let none: serde_json::Value = serde_json::from_str(
        &api.call(Method::GET, "/containers/json?all=0", "")
            .await
            .body,
    )
    .unwrap();
    assert_eq!(none.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn wait_sends_its_headers_before_the_container_starts() {
    let api = api().await;
    let id = api.create("waiter", "exit 3").await;
    // The wait response (status line and headers) must come back before start is sent:
    // the docker CLI blocks on it.
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/containers/{id}/wait?condition=next-exit"))
        .body(Body::empty())
        .unwrap();
    let resp = tokio::time::timeout(
        Duration::from_secs(2),
        server::handle(api.router.clone(), req),
    )
    .await
    .expect("wait headers were held back");
    assert_eq!(resp.status(), StatusCode::OK);
    let r = api
        .call(Method::POST, &format!("/containers/{id}/start"), "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect())
        .await
        .unwrap()
        .unwrap()
        .to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body).trim(),
        r#"{"StatusCode":3,"Error":null}"#
    );
    // Starting an exited container again is allowed; stopping it is a 304.
    let r = api
        .call(Method::POST, &format!("/containers/{id}/stop"), "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn start_failures_are_400_when_the_command_cannot_run_and_500_otherwise() {
    let api = api().await;
    let body = r#"{"Image":"busybox","Cmd":["breaks"]}"#;
    let r = api
        .call(Method::POST, "/containers/create?name=breaking", body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .call(Method::POST, "/containers/breaking/start", "")
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    assert_eq!(
        message(&r),
        "failed to create task for container: OCI runtime create failed: cgroup: boom: unknown"
    );
}

#[tokio::test]
async fn a_failed_start_reports_the_oci_text_and_records_127() {
    let api = api().await;
    let body = r#"{"Image":"busybox","Cmd":["nosuch"]}"#;
    let r = api
        .call(Method::POST, "/containers/create?name=failing", body)
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = api
        .call(Method::POST, "/containers/failing/start", "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains("executable file not found in $PATH"));
    let r = api.call(Method::GET, "/containers/failing/json", "").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["State"]["ExitCode"], 127);
    // Docker: a container that never ran stays `created`, with the error recorded.
    assert_eq!(v["State"]["Status"], "created");
    assert!(v["State"]["Error"]
        .as_str()
        .unwrap()
        .contains("executable file not found in $PATH"));
    assert_eq!(v["State"]["StartedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(v["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(v["Name"], "/failing");
    assert!(v["HostConfig"]["MaskedPaths"].as_array().unwrap().len() > 3);
}

#[tokio::test]
async fn a_removal_berthd_did_not_finish_is_finished_at_start_up() {
    let api = api().await;
    let id = api.create("doomed", "true").await;
    api.create("kept", "true").await;
    // berthd died right after renaming the record away (the first step of a removal).
    let containers = api.dir.path().join("root/containers");
    std::fs::rename(
        containers.join(&id),
        containers.join(format!(".removing-{id}")),
    )
    .unwrap();
    let Api { dir, router } = api;
    drop(router);
    let api = api_in(dir).await;
    let r = api.call(Method::GET, "/containers/json?all=1", "").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["Names"][0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["/kept"]);
    assert!(!containers.join(format!(".removing-{id}")).exists());
    // The kept record, and the spare directories berthd keeps ready (`.spare-*`).
    let records: Vec<String> = std::fs::read_dir(&containers)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with(".spare-"))
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
}

/// Attach to containers that exit at once and are auto-removed: every output line arrives
/// framed, and the stream ends.
#[tokio::test]
async fn attach_of_an_auto_removed_container_gets_its_output() {
    let api = api().await;
    for round in 0..20 {
        let body = serde_json::json!({"Image": "busybox", "Cmd": ["echo", format!("r{round}")],
            "HostConfig": {"AutoRemove": true}});
        let r = api
            .call(Method::POST, "/containers/create", &body.to_string())
            .await;
        let id = serde_json::from_str::<serde_json::Value>(&r.body).unwrap()["Id"]
            .as_str()
            .unwrap()
            .to_string();
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!(
                "/containers/{id}/attach?stream=1&stdout=1&stderr=1"
            ))
            .body(Body::empty())
            .unwrap();
        let attached = server::handle(api.router.clone(), req).await;
        assert_eq!(attached.status(), StatusCode::OK);
        let r = api
            .call(Method::POST, &format!("/containers/{id}/start"), "")
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
        let out = tokio::time::timeout(Duration::from_secs(5), attached.into_body().collect())
            .await
            .unwrap()
            .unwrap()
            .to_bytes();
        let expected = berth_api::stream::frame(
            berth_api::stream::StreamKind::Stdout,
            format!("echo r{round}\n").as_bytes(),
        );
        assert_eq!(out.to_vec(), expected, "round {round}");
    }
}

#[tokio::test]
async fn stream_content_type_follows_the_api_version() {
    let api = api().await;
    api.create("talker", "true").await;
    let r = api.call(Method::POST, "/containers/talker/start", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let old = api
        .call(Method::GET, "/v1.41/containers/talker/logs?stdout=1", "")
        .await;
    assert_eq!(
        old.headers["content-type"],
        "application/vnd.docker.raw-stream"
    );
    let new = api
        .call(Method::GET, "/v1.44/containers/talker/logs?stdout=1", "")
        .await;
    assert_eq!(
        new.headers["content-type"],
        "application/vnd.docker.multiplexed-stream"
    );
    // Either way the body is framed: the container has no TTY.
    assert_eq!(old.body, new.body);
    assert!(
        old.body.as_bytes().starts_with(&[1, 0, 0, 0]),
        "{:?}",
        old.body
    );
}

/// `create` takes a record directory, a bundle and a rw layer that berthd made ahead
/// (`.spare-*`, `snapshots/tmp-*`); a restart removes the ones a previous berthd left.
#[tokio::test]
async fn create_uses_spare_directories_and_a_restart_drops_old_ones() {
    let api = api().await;
    let containers = api.dir.path().join("root/containers");
    let spares = |dir: &std::path::Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".spare-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    // The first refill runs in the background after start-up; it makes the rw layers
    // (snapshots/tmp-*) after the directories, so once those exist both spares are listed.
    let snapshots = api.dir.path().join("root/image/snapshots");
    let tmp_count = || {
        std::fs::read_dir(&snapshots)
            .map(|d| {
                d.filter(|e| {
                    e.as_ref()
                        .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("tmp-"))
                })
                .count()
            })
            .unwrap_or(0)
    };
    for _ in 0..500 {
        if tmp_count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(tmp_count() >= 2, "no spare rw layer made");
    use std::os::unix::fs::MetadataExt;
    let inodes: Vec<u64> = spares(&containers)
        .iter()
        .map(|n| std::fs::metadata(containers.join(n)).unwrap().ino())
        .collect();
    assert_eq!(inodes.len(), 2, "{:?}", spares(&containers));
    let id = api.create("one", "true").await;
    // One of them became the container's record directory.
    let ino = std::fs::metadata(containers.join(&id)).unwrap().ino();
    assert!(inodes.contains(&ino), "the record directory is not a spare");
    assert!(containers.join(&id).join("config.json").is_file());
    assert!(api
        .dir
        .path()
        .join("run/containers")
        .join(&id)
        .join("rootfs")
        .is_dir());
    // A stale spare from a previous daemon is gone after a restart.
    std::fs::create_dir(containers.join(".spare-stale")).unwrap();
    let Api { dir, router } = api;
    drop(router);
    let api = api_in(dir).await;
    assert!(!api.dir.path().join("root/containers/.spare-stale").exists());
}

/// A body that never yields: reading it would hang the request.
fn endless_body() -> Body {
    Body::from_stream(futures_util::stream::pending::<
        Result<Vec<u8>, std::io::Error>,
    >())
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_refused_before_the_body_is_read() {
    let api = api().await;
    for uri in ["/v1.44/containers/create", "/v1.44/containers/x/update"] {
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("content-type", "application/json")
            .header("content-length", "10737418240")
            .body(endless_body())
            .unwrap();
        let resp = tokio::time::timeout(
            Duration::from_secs(10),
            server::handle(api.router.clone(), req),
        )
        .await
        .expect("answered without reading the body");
        assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE, "{uri}");
        assert_eq!(resp.headers()["content-type"], "application/json");
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let m = v["message"].as_str().unwrap();
        assert!(
            m.contains("request body too large: 10737418240 bytes"),
            "{m}"
        );
    }
}

#[tokio::test]
async fn a_body_that_grows_over_the_limit_gets_a_json_413() {
    let api = api().await;
    // No Content-Length: the limit is found while reading.
    let big = format!(
        "{{\"Image\":\"busybox\",\"Env\":[\"{}\"]}}",
        "x".repeat(3 << 20)
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
        .into_bytes()
        .chunks(64 << 10)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1.44/containers/create")
        .header("content-type", "application/json")
        .body(Body::from_stream(futures_util::stream::iter(chunks)))
        .unwrap();
    let resp = server::handle(api.router.clone(), req).await;
    let r = Reply {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: String::from_utf8_lossy(&resp.into_body().collect().await.unwrap().to_bytes())
            .to_string(),
    };
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert!(message(&r).contains("request body too large"), "{}", r.body);
    let r = api
        .call(Method::GET, "/v1.44/containers/json?all=1", "")
        .await;
    assert_eq!(r.body, "[]", "nothing was created");
}

/// Exec records are bounded per container: the oldest ended ones are forgotten beyond 256
/// (a client creating execs in a loop cannot grow berthd without bound).
#[tokio::test]
async fn ended_execs_are_bounded_per_container() {
    let api = api().await;
    let id = api.create("busy", "forever").await;
    let r = api
        .call(Method::POST, &format!("/containers/{id}/start"), "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let mut ids = Vec::new();
    for _ in 0..300 {
        let r = api
            .call(
                Method::POST,
                &format!("/containers/{id}/exec"),
                r#"{"Cmd":["true"],"AttachStdout":true}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let exec: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let exec = exec["Id"].as_str().unwrap().to_string();
        // The fake runtime cannot exec: the start fails and the exec has ended (126).
        let r = api
            .call(
                Method::POST,
                &format!("/exec/{exec}/start"),
                r#"{"Detach":true}"#,
            )
            .await;
        assert_ne!(r.status, StatusCode::OK);
        ids.push(exec);
    }
    let first = api
        .call(Method::GET, &format!("/exec/{}/json", ids[0]), "")
        .await;
    assert_eq!(first.status, StatusCode::NOT_FOUND, "{}", first.body);
    assert!(
        first.body.contains("No such exec instance"),
        "{}",
        first.body
    );
    let last = api
        .call(Method::GET, &format!("/exec/{}/json", ids[299]), "")
        .await;
    assert_eq!(last.status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&last.body).unwrap();
    assert_eq!(v["ExitCode"], 126);
    let oldest_kept = api
        .call(Method::GET, &format!("/exec/{}/json", ids[300 - 256]), "")
        .await;
    assert_eq!(oldest_kept.status, StatusCode::OK);
    let dropped = api
        .call(Method::GET, &format!("/exec/{}/json", ids[300 - 257]), "")
        .await;
    assert_eq!(dropped.status, StatusCode::NOT_FOUND);
}

/// An exec that races with its container's exit gets Docker's 409 "is not running", not a
/// 126 "cannot run" (the exec has ended, as Docker's failed start leaves it).
#[tokio::test]
async fn an_exec_racing_with_the_containers_exit_is_a_conflict() {
    let api = api().await;
    let id = api.create("racer", "forever").await;
    let r = api
        .call(Method::POST, &format!("/containers/{id}/start"), "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    for cmd in ["racing", "true"] {
        let r = api
            .call(
                Method::POST,
                &format!("/containers/{id}/exec"),
                &format!(r#"{{"Cmd":["{cmd}"],"AttachStdout":true}}"#),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let exec: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        let exec = exec["Id"].as_str().unwrap().to_string();
        for body in [r#"{"Detach":true}"#, r#"{"Detach":false}"#] {
            let r = api
                .call(Method::POST, &format!("/exec/{exec}/start"), body)
                .await;
            if body.contains("true") {
                assert_eq!(r.status, StatusCode::CONFLICT, "{cmd}: {}", r.body);
                assert_eq!(
                    message(&r),
                    format!("container {id} is not running"),
                    "{cmd}"
                );
            } else {
                // Started once already: Docker's answer to a second start.
                assert_eq!(r.status, StatusCode::CONFLICT, "{cmd}: {}", r.body);
                assert!(message(&r).contains("has already run"), "{}", r.body);
            }
        }
        let r = api
            .call(Method::GET, &format!("/exec/{exec}/json"), "")
            .await;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(
            (v["Running"].clone(), v["ExitCode"].clone()),
            (false.into(), 126.into())
        );
    }
}

/// Execs created and never started do not block new ones: beyond 1024 the oldest of them
/// are forgotten (Docker has no such limit; berthd's memory stays bounded).
#[tokio::test]
async fn never_started_execs_make_room_for_new_ones() {
    let api = api().await;
    let id = api.create("idle", "forever").await;
    let r = api
        .call(Method::POST, &format!("/containers/{id}/start"), "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let mut ids = Vec::new();
    for _ in 0..1100 {
        let r = api
            .call(
                Method::POST,
                &format!("/containers/{id}/exec"),
                r#"{"Cmd":["true"]}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let exec: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        ids.push(exec["Id"].as_str().unwrap().to_string());
    }
    let status = |r: Reply| r.status;
    for (i, want) in [
        (0, StatusCode::NOT_FOUND),
        (1100 - 1025, StatusCode::NOT_FOUND),
        (1100 - 1024, StatusCode::OK),
        (1099, StatusCode::OK),
    ] {
        let r = api
            .call(Method::GET, &format!("/exec/{}/json", ids[i]), "")
            .await;
        assert_eq!(status(r), want, "exec {i}");
    }
    let r = api
        .call(Method::GET, &format!("/containers/{id}/json"), "")
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["ExecIDs"].as_array().unwrap().len(), 1024);
}

/// A commit's body is a config object, `null` or nothing; any other JSON is refused, never
/// taken for no config (an object with fields berth does not apply is refused by the engine).
#[tokio::test]
async fn a_commit_body_that_is_not_a_config_is_refused() {
    let api = api().await;
    let id = api.create("tocommit", "true").await;
    for body in ["[1]", "\"x\"", "3"] {
        let r = api
            .call(Method::POST, &format!("/commit?container={id}"), body)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {}", r.body);
        assert!(message(&r).contains("container config"), "{}", r.body);
    }
    let r = api
        .call(
            Method::POST,
            &format!("/commit?container={id}"),
            r#"{"Env":["A=1"]}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(
        message(&r).contains("refused rather than ignored"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn system_df_has_dockers_shape_and_sections_by_type() {
    let api = api().await;
    let id = api.create("sized", "exit 0").await;
    let r = api
        .call(Method::POST, "/v1.44/volumes/create", r#"{"Name":"vol"}"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let data = api.dir.path().join("root/volumes/vol/_data");
    std::fs::write(data.join("f"), b"12345").unwrap();
    std::fs::hard_link(data.join("f"), data.join("again")).unwrap();
    std::os::unix::fs::symlink("f", data.join("l")).unwrap();

    let r = api.call(Method::GET, "/v1.44/system/df", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    // Sorted: a build with serde_json's preserve_order (the CLI's) keeps the wire's order.
    let mut keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "BuildCache",
            "Containers",
            "Images",
            "LayersSize",
            "Volumes"
        ]
    );
    // The test image is one 2-byte file.
    assert_eq!(v["LayersSize"], 2);
    let img = &v["Images"][0];
    assert_eq!(img["RepoTags"], serde_json::json!(["busybox:latest"]));
    assert_eq!((&img["Size"], &img["SharedSize"]), (&2.into(), &0.into()));
    assert_eq!(img["Containers"], 1);
    let c = &v["Containers"][0];
    assert_eq!(c["Id"], id.as_str());
    assert_eq!((&c["SizeRw"], &c["SizeRootFs"]), (&0.into(), &2.into()));
    // The file once for its two names, and the symlink by its target's length.
    let vol = &v["Volumes"][0];
    assert_eq!(vol["Name"], "vol");
    assert_eq!(
        vol["UsageData"],
        serde_json::json!({"RefCount": 0, "Size": 6})
    );
    assert_eq!(v["BuildCache"], serde_json::json!([]));

    let r = api
        .call(
            Method::GET,
            "/v1.44/system/df?type=volume&type=build-cache",
            "",
        )
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["LayersSize"], 0);
    assert_eq!(
        (&v["Images"], &v["Containers"]),
        (&serde_json::Value::Null, &serde_json::Value::Null)
    );
    assert_eq!(v["Volumes"].as_array().unwrap().len(), 1);
    assert_eq!(v["BuildCache"], serde_json::json!([]));

    // Before 1.42 `type` is not read: every section.
    let r = api
        .call(Method::GET, "/v1.41/system/df?type=volume", "")
        .await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["Images"].as_array().unwrap().len(), 1);

    let r = api
        .call(Method::GET, "/v1.44/system/df?type=image&type=network", "")
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(message(&r), "unknown object type: network");
}

#[tokio::test]
async fn a_failed_write_under_berthds_root_names_the_os_error_but_not_the_path() {
    let api = api().await;
    let id = api.create("full", "exit 0").await;
    // Deterministic, even as root: the start's write of the container's /etc/hostname
    // finds a directory where its file goes.
    let hostname = api
        .dir
        .path()
        .join("root/containers")
        .join(&id)
        .join("hostname");
    let _ = std::fs::remove_file(&hostname);
    std::fs::create_dir(&hostname).unwrap();
    let r = api.call(Method::POST, "/containers/full/start", "").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "{}", r.body);
    let message = message(&r);
    assert_eq!(
        message,
        "create berthd's root: Is a directory (os error 21)"
    );
    let dir = api.dir.path().to_string_lossy().to_string();
    assert!(!r.body.contains(&dir), "{}", r.body);
}

/// berthd's own build parameters: a kept context asked for and not kept is 412 (the client
/// then sends it); a key that is not a digest is refused; docker clients never send them.
#[tokio::test]
async fn a_build_asking_for_a_context_berthd_did_not_keep_is_412() {
    let api = api().await;
    let key = "a".repeat(64);
    let r = api
        .call(
            Method::POST,
            &format!("/v1.44/build?berthcontextkey={key}&berthcontextreuse=1"),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED, "{}", r.body);
    assert!(message(&r).contains("not kept"), "{}", r.body);
    for bad in ["../x", "ABC", &"g".repeat(64)] {
        let r = api
            .call(
                Method::POST,
                &format!("/v1.44/build?berthcontextkey={bad}&berthcontextreuse=1"),
                "",
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert!(message(&r).contains("berthcontextkey"), "{}", r.body);
    }
}
