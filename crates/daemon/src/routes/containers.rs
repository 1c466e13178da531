//! `/containers/...`.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{delete, get, post};
use axum::Router;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use berth_api::container::{
    CreateRequest, CreateResponse, FilesystemChange, IdResponse, PruneResponse, UpdateConfig,
    UpdateResponse, WaitResponse,
};
use berth_api::stream::{frame, StreamKind};
use berth_engine::{LogChunk, LogOptions, WaitCondition};

use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::routes::{empty, json};
use crate::server::RequestVersion;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/changes", get(changes))
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/update", post(update))
        .route("/commit", post(commit))
        .route(
            "/containers/{id}/archive",
            get(archive_get).head(archive_head).put(archive_put),
        )
        .route("/containers/{id}", delete(remove))
}

async fn create(
    State(st): State<AppState>,
    version: Option<axum::Extension<RequestVersion>>,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let mut req: CreateRequest = if body.is_empty() {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?
    };
    if version.is_some_and(|v| v.0 .0 < berth_api::ApiVersion::v1(44)) {
        // Docker's rule: read-only binds were not recursive before 1.44, and a client that
        // old asking to force it is refused rather than ignored.
        req.readonly_binds_non_recursive = true;
        let forced = req
            .host_config
            .as_ref()
            .and_then(|hc| hc.extra.get("Mounts"))
            .and_then(|m| m.as_array())
            .into_iter()
            .flatten()
            .any(|m| m["Type"] == "bind" && m["BindOptions"]["ReadOnlyForceRecursive"] == true);
        if forced {
            return Err(ApiError::bad_request(
                "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer",
            ));
        }
    }
    let engine = st.engine.clone();
    let name = q.get("name").map(String::from);
    let platform = q.get("platform").map(String::from);
    let (id, warnings) = tokio::task::spawn_blocking(move || {
        engine.create(name.as_deref(), platform.as_deref(), req)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(json(StatusCode::CREATED, &CreateResponse { id, warnings }))
}

async fn list(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let opts = berth_engine::ListOptions {
        all: q.bool("all", false),
        limit: q.int("limit")?.filter(|n| *n > 0).map(|n| n as usize),
        size: q.bool("size", false),
        filters: q.filters()?,
    };
    Ok(json(StatusCode::OK, &st.engine.list(&opts)?))
}

async fn inspect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        &st.engine.inspect(&id, q.bool("size", false))?,
    ))
}

async fn start(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    st.engine.start(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn stop(State(st): State<AppState>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    st.engine
        .stop(&id, q.int("t")?, q.get("signal").filter(|s| !s.is_empty()))
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn restart(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    st.engine.restart(&id, q.int("t")?).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn kill(State(st): State<AppState>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    st.engine.kill(&id, q.get("signal")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn remove(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    if q.bool("link", false) {
        // berth makes no links (`--link` is refused at create): there is none to remove.
        return Err(berth_engine::EngineError::Invalid(
            "rm --link is not supported by berth: containers have no links".into(),
        )
        .into());
    }
    st.engine
        .remove(&id, q.bool("force", false), q.bool("v", false))
        .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn rename(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let name = q.get("name").unwrap_or("");
    st.engine.rename(&id, name)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn pause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    st.engine.pause(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn unpause(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    st.engine.unpause(&id).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn top(State(st): State<AppState>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    Ok(json(
        StatusCode::OK,
        &st.engine.top(&id, q.get("ps_args")).await?,
    ))
}

/// How often a stats stream samples, and the gap between the two samples of a
/// `stream=false` answer (Docker's collector interval).
const STATS_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// `GET /containers/{id}/stats`. `stream=true` (the default): one JSON line a second, each
/// with the previous sample as `precpu_stats`, until the container is removed or the client
/// goes (the body is dropped with the connection, and the sampling with it). `stream=false`:
/// two samples a second apart, so that `precpu_stats` is filled, or one with `one-shot=true`
/// (API 1.41+); a container that does not run answers at once with Docker's zero sample.
async fn stats(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: Option<axum::Extension<RequestVersion>>,
    q: Query,
) -> ApiResult<Response> {
    let mut reader = st.engine.stats(&id)?;
    let one_shot_known = version.is_none_or(|v| v.0 .0 >= berth_api::ApiVersion::v1(41));
    let one_shot = one_shot_known && q.bool("one-shot", false);
    if !q.bool("stream", true) {
        if !one_shot && reader.running() {
            reader.sample();
            tokio::time::sleep(STATS_INTERVAL).await;
        }
        let mut resp = Response::new(Body::from(json_line(&reader.sample())));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        return Ok(resp);
    }
    let samples = futures_util::stream::unfold((reader, true), |(mut reader, first)| async move {
        if !first {
            tokio::time::sleep(STATS_INTERVAL).await;
            if reader.removed() {
                return None;
            }
        }
        let line = json_line(&reader.sample());
        Some((Ok::<_, Infallible>(Bytes::from(line)), (reader, false)))
    });
    let mut resp = Response::new(Body::from_stream(samples));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// A value as one line of JSON, as Go's `json.Encoder` writes it.
fn json_line(value: &impl serde::Serialize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    bytes
}

async fn resize(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let (h, w) = resize_query(&q)?;
    st.engine.resize(&id, h, w).await?;
    Ok(empty(StatusCode::OK))
}

/// `docker diff`: `null` when nothing changed, as Docker answers.
async fn changes(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let engine = st.engine.clone();
    let changes = tokio::task::spawn_blocking(move || engine.changes(&id))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let items: Vec<FilesystemChange> = changes
        .into_iter()
        .map(|c| FilesystemChange {
            path: c.path,
            kind: c.kind.code(),
        })
        .collect();
    Ok(json(StatusCode::OK, &(!items.is_empty()).then_some(items)))
}

/// `docker export`: the tar streams as it is read; a failure after the headers cuts the
/// body short (the client sees an incomplete archive, as with Docker).
async fn export(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let c = st.engine.export_target(&id)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let engine = st.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = std::io::BufWriter::with_capacity(
            64 << 10,
            crate::routes::images::ChannelWriter { tx: tx.clone() },
        );
        if let Err(e) = engine.export(&c, &id, &mut out) {
            tracing::warn!(container = %c.id, "export: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let mut resp = Response::new(Body::from_stream(crate::routes::images::ReceiverStream(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// `docker update`: `{"Warnings":null}`, as Docker answers without warnings.
async fn update(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    // Docker reads an empty body as an update of nothing.
    let req: UpdateConfig = if body.is_empty() {
        UpdateConfig::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    st.engine.update(&id, req).await?;
    Ok(json(StatusCode::OK, &UpdateResponse { warnings: None }))
}

/// `docker commit`: `201 {"Id": "sha256:..."}`.
async fn commit(State(st): State<AppState>, q: Query, body: Bytes) -> ApiResult<Response> {
    // The body is a container config (an object), `null` or nothing: anything else is
    // refused, never read as no config.
    let config = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
        {
            serde_json::Value::Null => None,
            v @ serde_json::Value::Object(_) => Some(v),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid JSON: a commit's body is a container config (an object)",
                ))
            }
        }
    };
    let req = berth_engine::CommitRequest {
        repo: q.get("repo").map(String::from),
        tag: q.get("tag").map(String::from),
        comment: q.get("comment").unwrap_or("").to_string(),
        author: q.get("author").unwrap_or("").to_string(),
        changes: q.all("changes"),
        pause: q.bool("pause", true),
        config,
    };
    let container = q.get("container").unwrap_or("").to_string();
    let id = st.engine.commit(&container, req).await?;
    Ok(json(StatusCode::CREATED, &IdResponse { id }))
}

/// `h` and `w` of a resize, as Docker reads them (both required, unsigned).
pub(crate) fn resize_query(q: &Query) -> ApiResult<(u16, u16)> {
    let dim = |name: &str| -> ApiResult<u16> {
        let v = q.get(name).unwrap_or("");
        v.parse::<u64>()
            .map(|n| n.min(u16::MAX as u64) as u16)
            .map_err(|_| {
                ApiError::bad_request(format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
            })
    };
    Ok((dim("h")?, dim("w")?))
}

async fn prune(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let removed = st.engine.prune(&q.filters()?).await?;
    Ok(json(
        StatusCode::OK,
        &PruneResponse {
            containers_deleted: (!removed.is_empty()).then_some(removed),
            space_reclaimed: 0,
        },
    ))
}

/// The 200 and its headers go out at once; the body follows at the exit. `docker run`
/// waits for those headers before it sends `start`.
async fn wait(State(st): State<AppState>, Path(id): Path<String>, q: Query) -> ApiResult<Response> {
    let condition = WaitCondition::parse(q.get("condition"))?;
    let fut = st.engine.wait(&id, condition)?;
    let body = futures_util::stream::once(async move {
        let outcome = fut.await;
        let resp = WaitResponse {
            status_code: outcome.status_code,
            error: None,
        };
        let mut bytes = serde_json::to_vec(&resp).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, Infallible>(Bytes::from(bytes))
    });
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Docker labels a framed stream `multiplexed-stream` from API 1.42; before, and for a
/// TTY, `raw-stream`. (Clients decide on framing by the container's `Tty`, not by this.)
fn stream_content_type(tty: bool, version: Option<&RequestVersion>) -> HeaderValue {
    let multiplexed_label = version.is_none_or(|v| v.0 >= berth_api::ApiVersion::v1(42));
    HeaderValue::from_static(if tty || !multiplexed_label {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    })
}

fn encode(chunk: LogChunk, tty: bool) -> Bytes {
    if tty {
        return Bytes::from(chunk.bytes);
    }
    let kind = if chunk.stream == 2 {
        StreamKind::Stderr
    } else {
        StreamKind::Stdout
    };
    Bytes::from(frame(kind, &chunk.bytes))
}

/// Parses `since`/`until`: unix seconds, optionally with a fraction; 0 or empty = none.
fn parse_timestamp(v: Option<&str>) -> ApiResult<Option<chrono::DateTime<chrono::Utc>>> {
    let Some(v) = v.filter(|v| !v.is_empty() && *v != "0") else {
        return Ok(None);
    };
    let (secs, frac) = v.split_once('.').unwrap_or((v, "0"));
    let secs: i64 = secs
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid timestamp: {v:?}")))?;
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    let nanos: u32 = frac
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid timestamp: {v:?}")))?;
    Ok(chrono::DateTime::from_timestamp(secs, nanos))
}

async fn logs(
    State(st): State<AppState>,
    Path(id): Path<String>,
    version: Option<axum::Extension<RequestVersion>>,
    q: Query,
) -> ApiResult<Response> {
    let c = st.engine.get(&id)?;
    let tty = c.record().config.tty;
    let opts = LogOptions {
        stdout: q.bool("stdout", false),
        stderr: q.bool("stderr", false),
        follow: q.bool("follow", false),
        tail: match q.get("tail") {
            None | Some("") | Some("all") => None,
            Some(n) => Some(
                n.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid tail: {n:?}")))?
                    .max(0) as usize,
            ),
        },
        since: parse_timestamp(q.get("since"))?,
        until: parse_timestamp(q.get("until"))?,
        timestamps: q.bool("timestamps", false),
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let rx = st.engine.logs(&c.id, opts)?;
    let body = tokio_stream_from(rx).map(move |c| Ok::<_, Infallible>(encode(c, tty)));
    let mut resp = Response::new(Body::from_stream(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        stream_content_type(tty, version.as_ref().map(|v| &v.0)),
    );
    Ok(resp)
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<LogChunk>,
) -> impl futures_util::Stream<Item = LogChunk> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Attach: a hijacked connection (101 `Upgrade: tcp`) bridged to the container's shim: the
/// output from now (the log so far first with `logs=1`) until the process's output ends,
/// and stdin (`stdin=1`, a container made with `-i`). To a container that is not running
/// the connection waits for its next start. Without `Upgrade`, the output alone as the body.
async fn attach(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
    mut req: Request,
) -> ApiResult<Response> {
    let c = st.engine.get(&id)?;
    let (tty, stdin_once) = {
        let rec = c.record();
        (rec.config.tty, rec.config.stdin_once)
    };
    let detach_keys = match q.get("detachKeys") {
        Some(keys) => super::stdio::parse_detach_keys(keys)?,
        None => st.detach_keys.clone(),
    };
    let opts = berth_engine::AttachOptions {
        stdin: q.bool("stdin", false),
        stdout: q.bool("stdout", false),
        stderr: q.bool("stderr", false),
    };
    let backlog = if q.bool("logs", false) && (opts.stdout || opts.stderr) {
        let lo = LogOptions {
            stdout: opts.stdout,
            stderr: opts.stderr,
            ..Default::default()
        };
        Some(st.engine.logs(&c.id, lo)?)
    } else {
        None
    };
    let live = if q.bool("stream", false) {
        Some(st.engine.attach(&id, opts)?)
    } else {
        None
    };
    let version = req.extensions().get::<RequestVersion>().copied();
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    if !wants_upgrade {
        // The output as the body: the backlog, then the live frames.
        let body = async_stream_body(backlog, live, tty);
        let mut resp = Response::new(Body::from_stream(body));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            stream_content_type(tty, version.as_ref()),
        );
        return Ok(resp);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let engine = st.engine.clone();
    let cid = c.id.clone();
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Some((mut conn, read_buf)) = super::stdio::client_connection(upgraded) else {
            return;
        };
        if let Some(mut rx) = backlog {
            super::stdio::head_taken(std::os::fd::AsFd::as_fd(&conn)).await;
            while let Some(chunk) = rx.recv().await {
                if conn.write_all(&encode(chunk, tty)).await.is_err() {
                    return;
                }
            }
        }
        let attached = match live {
            Some(fut) => match super::stdio::until_attached(&conn, fut).await {
                Some(attached) => attached,
                // The client left while it waited for the container's start.
                None => return,
            },
            None => {
                let _ = conn.shutdown().await;
                return;
            }
        };
        let attached = match attached {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(container = %cid, "attach: {e}");
                let _ = conn.shutdown().await;
                return;
            }
        };
        let close = async move {
            if let Err(e) = engine.close_stdin(&cid).await {
                tracing::debug!(container = %cid, "close stdin: {e}");
            }
        };
        let opts = super::stdio::BridgeOptions {
            tty,
            stdin_once: stdin_once && attached.stdin_once,
            detach_keys,
        };
        super::stdio::bridge(conn, read_buf, attached.output, opts, close).await;
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(
        header::CONTENT_TYPE,
        stream_content_type(tty, version.as_ref()),
    );
    Ok(resp)
}

/// A non-hijacked attach's body: the log so far (`logs=1`), then the live output.
fn async_stream_body(
    backlog: Option<tokio::sync::mpsc::Receiver<LogChunk>>,
    live: Option<berth_engine::AttachFuture>,
    tty: bool,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        if let Some(mut b) = backlog {
            while let Some(chunk) = b.recv().await {
                if tx.send(encode(chunk, tty)).await.is_err() {
                    return;
                }
            }
        }
        let Some(fut) = live else { return };
        // The client may leave while it waits for the container's start.
        let attached = tokio::select! {
            r = fut => r,
            _ = tx.closed() => return,
        };
        let Ok(attached) = attached else { return };
        let Ok(mut stream) = attached
            .output
            .stream
            .set_nonblocking(true)
            .and_then(|_| tokio::net::UnixStream::from_std(attached.output.stream))
        else {
            return;
        };
        use tokio::io::AsyncReadExt;
        let mut pending = attached.output.rest;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // Whole frames only, so that a TTY's headers can be taken off.
            let mut at = 0;
            let mut out = Vec::new();
            while pending.len() - at >= 8 {
                let len = u32::from_be_bytes(pending[at + 4..at + 8].try_into().unwrap_or_default())
                    as usize;
                if pending.len() - at - 8 < len {
                    break;
                }
                let frame = &pending[at..at + 8 + len];
                out.extend_from_slice(if tty { &frame[8..] } else { frame });
                at += 8 + len;
            }
            pending.drain(..at);
            if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                return;
            }
            tokio::select! {
                r = stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                },
                _ = tx.closed() => return,
            }
        }
    });
    tokio_stream_from_bytes(rx)
}

fn tokio_stream_from_bytes(
    mut rx: tokio::sync::mpsc::Receiver<Bytes>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|o| o.map(Ok)))
}

/// The `path` of the archive endpoints: required (moby's `ArchiveFormValues`).
fn archive_path(q: &Query) -> ApiResult<String> {
    match q.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_string()),
        _ => Err(ApiError::bad_request("bad parameter: path cannot be empty")),
    }
}

fn path_stat_header(stat: &berth_api::archive::PathStat) -> ApiResult<HeaderValue> {
    HeaderValue::from_str(&stat.to_header()).map_err(|e| ApiError::internal(e.to_string()))
}

/// `HEAD /containers/{id}/archive`: the path's stat in `X-Docker-Container-Path-Stat`.
async fn archive_head(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let path = archive_path(&q)?;
    let stat = st.engine.archive_stat(&id, &path).await?;
    let mut resp = empty(StatusCode::OK);
    resp.headers_mut().insert(
        berth_api::archive::PATH_STAT_HEADER,
        path_stat_header(&stat)?,
    );
    Ok(resp)
}

/// `GET /containers/{id}/archive`: a tar of the path, streamed as it is made.
async fn archive_get(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let path = archive_path(&q)?;
    let (stat, mut chunks) = st.engine.archive_get(&id, &path).await?;
    let stream = futures_util::stream::poll_fn(move |cx| {
        chunks.poll_recv(cx).map(|c| c.map(|r| r.map(Bytes::from)))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        berth_api::archive::PATH_STAT_HEADER,
        path_stat_header(&stat)?,
    );
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// `PUT /containers/{id}/archive`: extracts the body (a tar, plain or compressed) into the
/// directory `path`.
async fn archive_put(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
    req: Request,
) -> ApiResult<Response> {
    let path = archive_path(&q)?;
    let opts = berth_engine::ExtractOptions {
        // moby: overwriting is allowed unless the parameter is there and true
        no_overwrite_dir_non_dir: q.bool("noOverwriteDirNonDir", false),
        copy_uid_gid: q.bool("copyUIDGID", false),
    };
    let body = Box::new(crate::routes::images::body_reader(req));
    st.engine.archive_put(&id, &path, opts, body).await?;
    Ok(empty(StatusCode::OK))
}
