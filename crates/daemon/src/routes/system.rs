//! `/_ping`, `/version`, `/info`, `/system/df`.

use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;

use berth_api::system::{Component, DiskUsage, Info, Platform, Version};
use berth_api::ApiVersion;
use berth_engine::DiskUsageTypes;

use crate::error::ApiResult;
use crate::query::Query;
use crate::routes::json;
use crate::server::RequestVersion;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/auth", axum::routing::post(crate::routes::registry::login))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/system/df", get(disk_usage))
}

async fn ping(method: Method) -> Response {
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut resp = Response::new(axum::body::Body::from(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    resp
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

async fn version() -> Response {
    let v = Version {
        platform: Platform {
            name: "berth".into(),
        },
        components: vec![Component {
            name: "Engine".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            details: serde_json::json!({
                "ApiVersion": berth_api::API_VERSION,
                "MinAPIVersion": berth_api::MIN_API_VERSION,
                "Os": "linux",
                "Arch": go_arch(),
                "KernelVersion": kernel_version(),
            }),
        }],
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: berth_api::API_VERSION.into(),
        min_api_version: berth_api::MIN_API_VERSION.into(),
        git_commit: String::new(),
        go_version: concat!("rust (berth ", env!("CARGO_PKG_VERSION"), ")").into(),
        os: "linux".into(),
        arch: go_arch().into(),
        kernel_version: kernel_version(),
        build_time: String::new(),
    };
    json(StatusCode::OK, &v)
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

async fn info(State(st): State<AppState>) -> Response {
    let containers = st.engine.all();
    let mut running = 0;
    let mut paused = 0;
    for c in &containers {
        match c.state().status {
            berth_engine::Status::Running => running += 1,
            berth_engine::Status::Paused => paused += 1,
            _ => {}
        }
    }
    let total = containers.len() as i64;
    let root = st.engine.config().root.display().to_string();
    let info = Info {
        id: String::new(),
        containers: total,
        containers_running: running,
        containers_paused: paused,
        containers_stopped: total - running - paused,
        images: st.engine.images().list().len() as i64,
        driver: "overlay2".into(),
        driver_status: vec![["Backing Filesystem".into(), "extfs".into()]],
        memory_limit: true,
        swap_limit: false,
        cpu_cfs_period: true,
        cpu_cfs_quota: true,
        pids_limit: true,
        logging_driver: "json-file".into(),
        cgroup_driver: "cgroupfs".into(),
        cgroup_version: cgroup_version().into(),
        kernel_version: kernel_version(),
        operating_system: os_name(),
        os_type: "linux".into(),
        architecture: std::env::consts::ARCH.into(),
        ncpu: std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1),
        mem_total: berth_engine::machine_memory() as i64,
        docker_root_dir: root,
        name: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
        labels: Vec::new(),
        server_version: env!("CARGO_PKG_VERSION").into(),
        default_runtime: "berth".into(),
        runtimes: serde_json::json!({"berth": {"path": st.shim_binary.display().to_string()}}),
        swarm: serde_json::json!({"LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "",
            "ControlAvailable": false, "Error": "", "RemoteManagers": null}),
        security_options: vec!["name=seccomp,profile=builtin".into()],
        warnings: None,
        plugins: serde_json::json!({"Volume": ["local"], "Network": ["bridge", "host", "null"],
            "Authorization": null, "Log": ["json-file"]}),
        registry_config: serde_json::json!({"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"], "Mirrors": []}),
    };
    json(StatusCode::OK, &info)
}

/// The first version whose `system df` takes `type` (older ones get every section).
const DF_TYPES: ApiVersion = ApiVersion::v1(42);

/// `GET /system/df`: an unknown `type` is Docker's 400 (`unknown object type: x`).
async fn disk_usage(
    State(st): State<AppState>,
    version: Option<Extension<RequestVersion>>,
    q: Query,
) -> ApiResult<Response> {
    let asked = q.all("type");
    let older = version.is_some_and(|v| v.0 .0 < DF_TYPES);
    let types = if older || asked.is_empty() {
        DiskUsageTypes::all()
    } else {
        DiskUsageTypes::parse(&asked)?
    };
    let engine = st.engine.clone();
    let du = super::blocking(move || engine.disk_usage(types)).await?;
    let body = DiskUsage {
        layers_size: du.layers_size,
        images: du.images.map(|list| {
            list.iter()
                .map(|i| {
                    let mut s = super::images::summary(&i.record, i.containers);
                    s.shared_size = i.shared_size;
                    s
                })
                .collect()
        }),
        containers: du.containers,
        volumes: du.volumes,
        build_cache: du.build_cache,
    };
    Ok(json(StatusCode::OK, &body))
}
