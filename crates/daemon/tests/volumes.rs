//! The volume endpoints through `server::handle`, over an engine on a temp root.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};

use berth_daemon::{router, server};

mod common;

struct Api {
    dir: tempfile::TempDir,
    router: axum::Router,
}

async fn api_in(dir: tempfile::TempDir) -> Api {
    let router = router(common::state_in(dir.path()).await);
    Api { dir, router }
}

struct Reply {
    status: StatusCode,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn message(&self) -> String {
        assert_eq!(self.content_type, "application/json");
        self.json()["message"].as_str().unwrap().to_string()
    }
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
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            content_type,
            body: String::from_utf8_lossy(&bytes).to_string(),
        }
    }

    async fn create(&self, body: Value) -> Value {
        let r = self
            .call(Method::POST, "/v1.44/volumes/create", &body.to_string())
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        r.json()
    }

    async fn names(&self, query: &str) -> Vec<String> {
        let r = self
            .call(Method::GET, &format!("/v1.44/volumes{query}"), "")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let v = r.json();
        // Docker's nil `Warnings`.
        assert_eq!(v["Warnings"], Value::Null);
        let mut names: Vec<String> = v["Volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["Name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }
}

fn filters(v: Value) -> String {
    let s = v.to_string();
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn create_inspect_list_and_remove_in_dockers_shapes() {
    let api = api_in(tempfile::tempdir().unwrap()).await;
    let v = api
        .create(json!({"Name": "data", "Driver": "local", "Labels": {"team": "a"}}))
        .await;
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "CreatedAt",
            "Driver",
            "Labels",
            "Mountpoint",
            "Name",
            "Options",
            "Scope"
        ]
    );
    let mountpoint = api.dir.path().join("root/volumes/data/_data");
    assert_eq!(v["Mountpoint"], json!(mountpoint));
    assert!(mountpoint.is_dir());
    assert_eq!(v["Labels"], json!({"team": "a"}));
    assert_eq!(v["Options"], Value::Null);
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Driver"], "local");
    chrono::DateTime::parse_from_rfc3339(v["CreatedAt"].as_str().unwrap()).unwrap();

    let plain = api.create(json!({"Name": "plain"})).await;
    assert_eq!(plain["Labels"], Value::Null);
    // The same name again: the volume that is there, its labels untouched (201, Docker's).
    let again = api
        .create(json!({"Name": "data", "Labels": {"other": "b"}}))
        .await;
    assert_eq!(again, v);
    let anon = api.create(json!({})).await;
    assert_eq!(anon["Name"].as_str().unwrap().len(), 64);
    // Docker labels a volume made without a name anonymous (a plain prune takes it).
    assert_eq!(anon["Labels"], json!({"com.docker.volume.anonymous": ""}));

    let r = api.call(Method::GET, "/volumes/data", "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), v);
    assert_eq!(api.names("").await.len(), 3);

    let r = api.call(Method::DELETE, "/volumes/data", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(!mountpoint.exists());
    let r = api.call(Method::GET, "/volumes/data", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.message(), "get data: no such volume");
    let r = api.call(Method::DELETE, "/volumes/data", "").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.message(), "get data: no such volume");
    let r = api.call(Method::DELETE, "/volumes/data?force=1", "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    // A restarted berthd finds the same volumes.
    let Api { dir, router } = api;
    drop(router);
    let api = api_in(dir).await;
    let mut want = vec![anon["Name"].as_str().unwrap().to_string(), "plain".into()];
    want.sort();
    assert_eq!(api.names("").await, want);
}

#[tokio::test]
async fn bad_create_bodies_are_refused_by_name() {
    let api = api_in(tempfile::tempdir().unwrap()).await;
    let refused = |body: Value, status: StatusCode, message: &'static str| {
        let api = &api;
        async move {
            let r = api
                .call(Method::POST, "/volumes/create", &body.to_string())
                .await;
            assert_eq!(r.status, status, "{}", r.body);
            assert_eq!(r.message(), message);
        }
    };
    refused(
        json!({"Name": "a/b"}),
        StatusCode::BAD_REQUEST,
        "create a/b: \"a/b\" includes invalid characters for a local volume name, only \
         \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, \
         use absolute path",
    )
    .await;
    refused(
        json!({"Name": "x1", "Driver": "nfs"}),
        StatusCode::NOT_FOUND,
        "error looking up volume plugin nfs: plugin \"nfs\" not found",
    )
    .await;
    refused(
        json!({"Name": "x1", "DriverOpts": {"type": "tmpfs"}}),
        StatusCode::BAD_REQUEST,
        "missing required option: \"device\"",
    )
    .await;
    refused(
        json!({"Name": "x1", "ClusterVolumeSpec": {}}),
        StatusCode::BAD_REQUEST,
        "volume create: ClusterVolumeSpec is not supported by berth: refused rather than ignored",
    )
    .await;
    refused(
        json!({"Name": "x1", "Nonsense": true}),
        StatusCode::BAD_REQUEST,
        "volume create: Nonsense is not supported by berth: refused rather than ignored",
    )
    .await;
    assert!(api.names("").await.is_empty());
    // A name that is a path never leaves the store: `..` is the store's parent, `.` itself.
    api.create(json!({"Name": "inside"})).await;
    for name in ["..", ".", "%2E%2E", "..%2Fvolumes%2Finside"] {
        let r = api
            .call(Method::DELETE, &format!("/volumes/{name}?force=0"), "")
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{name}: {}", r.body);
        assert!(r.message().ends_with(": no such volume"), "{name}");
    }
    assert!(api.dir.path().join("root/volumes/inside/_data").is_dir());
    assert_eq!(api.names("").await, ["inside"]);
}

#[tokio::test]
async fn list_filters_select_as_dockers() {
    let api = api_in(tempfile::tempdir().unwrap()).await;
    api.create(json!({"Name": "web-data", "Labels": {"app": "web", "tier": "front"}}))
        .await;
    api.create(json!({"Name": "db-data", "Labels": {"app": "db"}}))
        .await;
    api.create(json!({"Name": "scratch"})).await;
    let q = |f: Value| format!("?filters={}", filters(f));
    assert_eq!(
        api.names(&q(json!({"name": {"data": true}}))).await,
        ["db-data", "web-data"]
    );
    assert_eq!(
        api.names(&q(json!({"label": ["app"]}))).await,
        ["db-data", "web-data"]
    );
    assert_eq!(
        api.names(&q(json!({"label": ["app=db"]}))).await,
        ["db-data"]
    );
    assert_eq!(
        api.names(&q(json!({"label": ["app=web", "tier=front"]})))
            .await,
        ["web-data"]
    );
    assert_eq!(api.names(&q(json!({"driver": ["local"]}))).await.len(), 3);
    assert!(api.names(&q(json!({"driver": ["nfs"]}))).await.is_empty());
    // No container mounts a volume yet: every one is dangling.
    assert_eq!(api.names(&q(json!({"dangling": ["true"]}))).await.len(), 3);
    assert!(api
        .names(&q(json!({"dangling": ["false"]})))
        .await
        .is_empty());
    let r = api
        .call(
            Method::GET,
            &format!("/volumes{}", q(json!({"bogus": ["x"]}))),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message(), "invalid filter 'bogus'");
    let r = api
        .call(
            Method::GET,
            &format!("/volumes{}", q(json!({"dangling": ["maybe"]}))),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message(), "invalid filter 'dangling=[maybe]'");
    // Docker's name filter is a regular expression (or the exact name).
    assert_eq!(api.names(&q(json!({"name": ["^db-"]}))).await, ["db-data"]);
    assert_eq!(
        api.names(&q(json!({"name": ["h$", "^web-data$"]}))).await,
        ["scratch", "web-data"]
    );
    let r = api
        .call(
            Method::GET,
            &format!("/volumes{}", q(json!({"name": ["a["]}))),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.message()
            .starts_with("invalid filter 'name=a[': not a regular expression ("),
        "{}",
        r.message()
    );
}

#[tokio::test]
async fn prune_takes_anonymous_volumes_unless_all() {
    let api = api_in(tempfile::tempdir().unwrap()).await;
    let anon = api
        .create(json!({"Labels": {"com.docker.volume.anonymous": ""}}))
        .await;
    let anon = anon["Name"].as_str().unwrap().to_string();
    std::fs::write(
        api.dir.path().join(format!("root/volumes/{anon}/_data/f")),
        vec![0u8; 100],
    )
    .unwrap();
    api.create(json!({"Name": "named", "Labels": {"keep": "no"}}))
        .await;
    api.create(json!({"Name": "kept", "Labels": {"keep": "yes"}}))
        .await;

    let prune = |query: String| {
        let api = &api;
        async move {
            let r = api
                .call(Method::POST, &format!("/volumes/prune{query}"), "")
                .await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.body);
            r.json()
        }
    };
    let report = prune(String::new()).await;
    assert_eq!(
        report,
        json!({"VolumesDeleted": [anon], "SpaceReclaimed": 100})
    );
    assert_eq!(api.names("").await, ["kept", "named"]);
    let report = prune(String::new()).await;
    // Docker's `VolumesDeleted` is an empty list, not null, when nothing went.
    assert_eq!(report, json!({"VolumesDeleted": [], "SpaceReclaimed": 0}));
    let report = prune(format!(
        "?filters={}",
        filters(json!({"all": ["true"], "label": ["keep=no"]}))
    ))
    .await;
    assert_eq!(report["VolumesDeleted"], json!(["named"]));
    let report = prune(format!(
        "?filters={}",
        filters(json!({"all": ["1"], "label!": ["keep=yes"]}))
    ))
    .await;
    assert_eq!(report["VolumesDeleted"], json!([]));
    assert_eq!(api.names("").await, ["kept"]);
    let r = api
        .call(
            Method::POST,
            &format!("/volumes/prune?filters={}", filters(json!({"name": ["x"]}))),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.message(), "invalid filter 'name'");
    let r = api
        .call(
            Method::POST,
            &format!(
                "/volumes/prune?filters={}",
                filters(json!({"all": ["yes"]}))
            ),
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.message(),
        "invalid filter 'all': strconv.ParseBool: parsing \"yes\": invalid syntax"
    );
    // strconv.ParseBool's spellings.
    let report = prune(format!("?filters={}", filters(json!({"all": ["True"]})))).await;
    assert_eq!(report["VolumesDeleted"], json!(["kept"]));
    assert!(api.names("").await.is_empty());
}

#[tokio::test]
async fn volumes_named_create_and_prune_are_inspected_and_removed() {
    let api = api_in(tempfile::tempdir().unwrap()).await;
    for name in ["create", "prune"] {
        let v = api.create(json!({"Name": name})).await;
        let r = api
            .call(Method::GET, &format!("/v1.44/volumes/{name}"), "")
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}: {}", r.body);
        assert_eq!(r.json(), v);
        let r = api
            .call(
                Method::DELETE,
                &format!("/v1.44/volumes/{name}?force=0"),
                "",
            )
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{name}: {}", r.body);
        let r = api.call(Method::GET, &format!("/volumes/{name}"), "").await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{name}: {}", r.body);
        assert_eq!(r.message(), format!("get {name}: no such volume"));
        let r = api
            .call(Method::DELETE, &format!("/volumes/{name}?force=1"), "")
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{name}: {}", r.body);
    }
    assert!(api.names("").await.is_empty());
}

#[tokio::test]
async fn prune_before_api_1_42_takes_every_unused_volume() {
    let api = api_in(tempfile::tempdir().unwrap()).await;
    api.create(json!({"Name": "named"})).await;
    let r = api
        .call(
            Method::POST,
            &format!(
                "/v1.41/volumes/prune?filters={}",
                filters(json!({"all": ["false"]}))
            ),
            "",
        )
        .await;
    // Docker adds all=true to an older client's filters: with all=false, two values.
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(
        r.message(),
        "invalid filter 'all=[false true]': only one value is expected"
    );
    let r = api.call(Method::POST, "/v1.42/volumes/prune", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["VolumesDeleted"], json!([]));
    let r = api.call(Method::POST, "/v1.41/volumes/prune", "").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["VolumesDeleted"], json!(["named"]));
    assert!(api.names("").await.is_empty());
}
