//! `POST /build`: the classic builder's protocol. The body is the context (a tar, maybe
//! compressed); the answer is a stream of JSON lines (`{"stream": ...}`, `{"aux": {"ID":
//! ...}}`), and a failure once streaming began is an in-band `{"errorDetail": {"code",
//! "message"}, "error"}` with HTTP 200, whose code the docker CLI exits with.
//!
//! Every query parameter berth does not apply is refused by name when it asks for something
//! (`remote`, `pull`, resource limits, `squash`, BuildKit's `version=2`, ...).
//!
//! berth's one extension: `berthsecrets=<n>` says that the body's first `n` bytes are a frame
//! of build secrets (`berth build --secret`), read into memory, before the context
//! ([`berth_api::build_secrets`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use axum::routing::post;
use axum::Router;

use berth_build::{BuildOptions, Builder, Context, Message};

use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::routes::images::{body_reader, drain, ReceiverStream};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

/// Parameters that change the result and that berth does not apply yet: refused when set to
/// anything but their default.
const UNAPPLIED: [&str; 16] = [
    "remote",
    "extrahosts",
    "memory",
    "memswap",
    "cpushares",
    "cpusetcpus",
    "cpusetmems",
    "cpuperiod",
    "cpuquota",
    "shmsize",
    "squash",
    "outputs",
    "cgroupparent",
    "isolation",
    "session",
    "ulimits",
];

/// `POST /build/prune` (`docker builder prune`): `all`, `filters` (`until`), and
/// `keep-storage` (`reserved-space` from API 1.48); the newer `max-used-space` and
/// `min-free-space` are refused by name when set.
async fn prune(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    for key in ["max-used-space", "min-free-space"] {
        if let Some(v) = q.get(key).filter(|v| asks(v)) {
            return Err(ApiError::bad_request(format!(
                "{key}={v} is not supported by berth's build cache yet: refused rather than \
                 ignored (keep-storage is)"
            )));
        }
    }
    let keep_storage = match q.int("keep-storage")?.or(q.int("reserved-space")?) {
        Some(n) if n > 0 => Some(n as u64),
        _ => None,
    };
    let req = berth_engine::BuildPrune {
        all: q.bool("all", false),
        filters: q.filters()?.0,
        keep_storage,
    };
    let engine = st.engine.clone();
    let (deleted, reclaimed) =
        crate::routes::blocking(move || engine.prune_build_cache(&req)).await?;
    st.contexts.clear();
    Ok(crate::routes::json(
        axum::http::StatusCode::OK,
        &serde_json::json!({ "CachesDeleted": deleted, "SpaceReclaimed": reclaimed }),
    ))
}

/// The build's options from its query; what berth does not apply is refused by name.
fn build_options(q: &Query) -> ApiResult<BuildOptions> {
    let refuse = |what: String| {
        Err::<BuildOptions, _>(ApiError::bad_request(format!(
            "{what} is not supported by berth's builder yet: refused rather than ignored"
        )))
    };
    for key in UNAPPLIED {
        if let Some(v) = q.get(key).filter(|v| asks(v)) {
            return refuse(format!("the build parameter {key}={v}"));
        }
    }
    if let Some(v) = q.get("version").filter(|v| *v != "1") {
        return refuse(format!(
            "builder version {v} (BuildKit; use DOCKER_BUILDKIT=0 or uninstall buildx)"
        ));
    }
    if let Some(v) = q.get("cachefrom").filter(|v| asks(v)) {
        return refuse(format!("--cache-from {v}"));
    }
    if let Some(p) = q.get("platform").filter(|p| !p.is_empty()) {
        if !matches!(p, "linux" | "linux/amd64") {
            return Err(ApiError::bad_request(format!(
                "--platform {p}: berth builds for this machine's platform (linux/amd64) only"
            )));
        }
    }
    let network_mode = q.get("networkmode").unwrap_or("default").to_string();
    if !matches!(
        network_mode.as_str(),
        "" | "default" | "bridge" | "none" | "host"
    ) {
        return refuse(format!("--network {network_mode}"));
    }
    let labels: BTreeMap<String, String> = json_map(q, "labels")?
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect();
    let opts = BuildOptions {
        dockerfile: q.get("dockerfile").unwrap_or("Dockerfile").to_string(),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        build_args: json_map(q, "buildargs")?,
        labels,
        target: q.get("target").filter(|t| !t.is_empty()).map(String::from),
        network_mode,
        remove: q.bool("rm", true),
        force_remove: q.bool("forcerm", false),
        no_cache: q.bool("nocache", false),
        // berth's own (BuildKit's --no-cache-filter): a JSON list of stage names.
        no_cache_stages: match q.get("berthnocachefilter").filter(|v| !v.is_empty()) {
            None => Vec::new(),
            Some(v) => serde_json::from_str(v)
                .map_err(|e| ApiError::bad_request(format!("invalid berthnocachefilter: {e}")))?,
        },
        secrets: Default::default(),
        pull: q.bool("pull", false),
        puller: None,
    };
    for t in &opts.tags {
        berth_image::normalize_reference(t)
            .map_err(|e| ApiError::bad_request(format!("invalid reference format: {t}: {e}")))?;
    }
    Ok(opts)
}

/// Whether a query value asks for something: not empty, not zero, not an empty JSON value.
fn asks(v: &str) -> bool {
    !matches!(
        v.trim(),
        "" | "0" | "false" | "False" | "null" | "[]" | "{}" | "default"
    )
}

/// `berthsecrets=<n>`: the length of the secrets' frame in front of the context (0: none).
fn secrets_frame_len(q: &Query) -> ApiResult<usize> {
    use berth_api::build_secrets::{MAX_FRAME_SIZE, QUERY_KEY};
    let Some(v) = q.get(QUERY_KEY).filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    match v.parse::<usize>() {
        Ok(n) if n <= MAX_FRAME_SIZE => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "invalid {QUERY_KEY}={v}: the length of the build secrets' frame, at most \
             {MAX_FRAME_SIZE} bytes"
        ))),
    }
}

/// Reads the secrets' frame (`len` bytes) off the front of the body.
fn read_secrets(
    reader: &mut impl std::io::Read,
    len: usize,
) -> ApiResult<berth_api::build_secrets::Secrets> {
    if len == 0 {
        return Ok(Default::default());
    }
    let mut frame = vec![0u8; len];
    let read = reader.read_exact(&mut frame);
    let decoded = read
        .map_err(|e| ApiError::bad_request(format!("the build secrets' frame: {e}")))
        .and_then(|()| {
            berth_api::build_secrets::Secrets::decode(&frame)
                .map_err(|e| ApiError::bad_request(e.to_string()))
        });
    frame.fill(0);
    std::hint::black_box(&frame);
    decoded
}

fn json_map(q: &Query, key: &str) -> ApiResult<BTreeMap<String, Option<String>>> {
    match q.get(key).filter(|v| !v.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
    }
}

/// berth's own `berthcontextkey`: the key `berth build` gives the context it sends (kept
/// after the build under it), or, with `berthcontextreuse=1` and no context in the body,
/// of one kept before (412 when it is not kept, and the client sends it).
fn context_key(q: &Query) -> ApiResult<Option<String>> {
    match q.get("berthcontextkey").filter(|k| !k.is_empty()) {
        Some(k) if !berth_build::ContextCache::valid_key(k) => Err(ApiError::bad_request(format!(
            "invalid berthcontextkey {k:?}: 64 hex digits expected"
        ))),
        k => Ok(k.map(String::from)),
    }
}

async fn build(State(st): State<AppState>, q: Query, req: Request) -> ApiResult<Response> {
    let auths = crate::routes::registry::registry_config(req.headers());
    let mut reader = body_reader(req);
    let checked = build_options(&q).and_then(|mut opts| {
        opts.puller = Some(crate::routes::registry::build_puller(&st, auths?));
        Ok((opts, secrets_frame_len(&q)?, context_key(&q)?))
    });
    let (mut opts, frame_len, key) = match checked {
        Ok(c) => c,
        Err(e) => {
            // Read (and drop) what the client still uploads: answered mid-upload, the docker
            // CLI reports a broken pipe instead of the error.
            let _ = tokio::task::spawn_blocking(move || drain(reader)).await;
            return Err(e);
        }
    };
    let quiet = q.bool("q", false);
    let engine = st.engine.clone();
    let root = engine.config().root.clone();
    let exec_root = engine.config().exec_root.clone();
    let (context, dir) = if q.bool("berthcontextreuse", false) {
        let kept = key.as_deref().and_then(|k| st.contexts.get(k));
        // The body is the secrets' frame alone, if any.
        let secrets = tokio::task::spawn_blocking(move || {
            let secrets = read_secrets(&mut reader, frame_len);
            drain(reader);
            secrets
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
        let Some(kept) = kept else {
            return Err(ApiError {
                status: axum::http::StatusCode::PRECONDITION_FAILED,
                message: "the build context is not kept by berthd: send it".into(),
            });
        };
        opts.secrets = secrets;
        let made = tokio::task::spawn_blocking(move || berth_build::new_build_dir(&root))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(|e| ApiError::internal(format!("prepare the build: {e}")))?;
        (kept, made)
    } else {
        let contexts = st.contexts.clone();
        let key = key.clone();
        let engine = engine.clone();
        tokio::task::spawn_blocking(move || {
            // The secrets' frame first, into memory only.
            let secrets = read_secrets(&mut reader, frame_len);
            let secrets = match secrets {
                Ok(s) => s,
                Err(e) => {
                    drain(&mut reader);
                    return Err(e);
                }
            };
            let made = berth_build::new_build_dir(&root).and_then(|dir| {
                std::fs::File::options()
                    .create_new(true)
                    .read(true)
                    .write(true)
                    .open(dir.join("context.tar"))
                    .map(|f| (f, dir))
            });
            let (file, dir) = match made {
                Ok(f) => f,
                Err(e) => {
                    drain(&mut reader);
                    return Err(ApiError::internal(format!("prepare the build: {e}")));
                }
            };
            let limits = engine.images().ingest_limits();
            let ctx = berth_image::Budget::for_archive(&dir, limits)
                .map_err(|e| ApiError::bad_request(e.to_string()))
                .and_then(|budget| {
                    Context::ingest(&mut reader, file, &budget)
                        .map_err(|e| ApiError::bad_request(e.to_string()))
                });
            if ctx.is_err() {
                drain(&mut reader);
                let _ = std::fs::remove_dir_all(&dir);
            }
            if let (Ok(c), Some(k)) = (&ctx, key) {
                contexts.put(&k, c, &dir.join("context.tar"));
            }
            ctx.map(|c| (c, dir, secrets))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))
        .and_then(|r| r)
        .map(|(c, dir, secrets)| {
            opts.secrets = secrets;
            (c, dir)
        })?
    };
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    let (body_tx, body_rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let builder = Builder::new(engine.clone(), Arc::new(context), opts, dir.clone(), out_tx);
    let live = builder.live();
    tokio::spawn(async move {
        let mut built = tokio::spawn(builder.run());
        let line = |v: serde_json::Value| {
            let mut b = v.to_string().into_bytes();
            b.push(b'\n');
            Ok(Bytes::from(b))
        };
        loop {
            // The client went away (the response body was dropped, noticed even while a
            // RUN prints nothing): the build stops, its step containers (a RUN that runs)
            // are removed; finished steps stay in the cache.
            let gone = tokio::select! {
                m = out_rx.recv() => match m {
                    None => break,
                    Some(Message::Stream(_)) if quiet => continue,
                    Some(Message::Stream(s)) => {
                        body_tx.send(line(serde_json::json!({ "stream": s }))).await.is_err()
                    }
                    Some(Message::Aux(id)) => body_tx
                        .send(line(serde_json::json!({ "aux": { "ID": id } })))
                        .await
                        .is_err(),
                    Some(Message::Json(_)) if quiet => continue,
                    Some(Message::Json(v)) => body_tx.send(line(v)).await.is_err(),
                },
                () = body_tx.closed() => true,
            };
            if gone {
                built.abort();
                let _ = (&mut built).await;
                berth_build::abandon(&engine, &live).await;
                let _ = tokio::task::spawn_blocking(move || {
                    berth_build::remove_build_dir(&exec_root, &dir)
                })
                .await;
                return;
            }
        }
        let result = built.await.unwrap_or_else(|e| {
            Err(berth_build::BuildError {
                message: format!("the build stopped: {e}"),
                code: None,
            })
        });
        let end = match result {
            Ok(id) if quiet => serde_json::json!({ "stream": format!("{id}\n") }),
            Ok(_) => serde_json::Value::Null,
            Err(e) => {
                let mut detail = serde_json::json!({ "message": e.message });
                if let Some(code) = e.code {
                    detail["code"] = code.into();
                }
                serde_json::json!({ "errorDetail": detail, "error": e.message })
            }
        };
        if !end.is_null() {
            let _ = body_tx.send(line(end)).await;
        }
        let _ =
            tokio::task::spawn_blocking(move || berth_build::remove_build_dir(&exec_root, &dir))
                .await;
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream(body_rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::build_secrets::{Secrets, MAX_FRAME_SIZE};

    /// The frame is taken off the front of the body, and the context follows untouched.
    #[test]
    fn the_secrets_frame_comes_off_the_front_of_the_body() {
        let mut s = Secrets::default();
        s.insert("tok", b"value".to_vec()).unwrap();
        let frame = s.encode();
        let q = Query::parse(&format!("t=x&berthsecrets={}", frame.len()));
        let n = secrets_frame_len(&q).unwrap();
        let mut body = std::io::Cursor::new([frame.as_slice(), b"CONTEXT"].concat());
        assert_eq!(read_secrets(&mut body, n).unwrap(), s);
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut body, &mut rest).unwrap();
        assert_eq!(rest, "CONTEXT");
        assert_eq!(secrets_frame_len(&Query::parse("")).unwrap(), 0);
        let too_big = Query::parse(&format!("berthsecrets={}", MAX_FRAME_SIZE + 1));
        assert!(secrets_frame_len(&too_big).is_err());
        assert!(secrets_frame_len(&Query::parse("berthsecrets=-1")).is_err());
        // A body shorter than announced.
        let mut short = std::io::Cursor::new(frame[..frame.len() - 2].to_vec());
        assert!(read_secrets(&mut short, frame.len()).is_err());
    }
}
