//! `/containers/{id}/exec` and `/exec/{id}/...`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use tokio::io::AsyncWriteExt;

use berth_api::exec::{ExecCreateRequest, ExecStartRequest};

use crate::error::{ApiError, ApiResult, InternalPaths};
use crate::query::Query;
use crate::routes::{empty, json};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

async fn create(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let req: ExecCreateRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("exec config: {e}")))?;
    if !req.detach_keys.is_empty() {
        super::stdio::parse_detach_keys(&req.detach_keys)?;
    }
    if !req.container.is_empty() && st.engine.get(&req.container)?.id != st.engine.get(&id)?.id {
        return Err(ApiError::bad_request(format!(
            "exec config: Container {:?} names another container than the path",
            req.container
        )));
    }
    let id = st.engine.exec_create(&id, req)?;
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "Id": id })))
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, &st.engine.exec_inspect(&id)?))
}

async fn resize(
    State(st): State<AppState>,
    Path(id): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let (h, w) = super::containers::resize_query(&q)?;
    st.engine.exec_resize(&id, h, w)?;
    Ok(empty(StatusCode::OK))
}

/// Detached: starts and answers 200. Otherwise hijacked (101) like attach, or the output
/// as the body without `Upgrade`. As Docker's, a hijacked start that fails (a command that
/// cannot run) writes the error into the stream; the exec's exit code (126/127) tells it.
async fn start(
    State(st): State<AppState>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult<Response> {
    let body = axum::body::to_bytes(std::mem::take(req.body_mut()), 1 << 20)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let start: ExecStartRequest = if body.is_empty() {
        ExecStartRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("exec start config: {e}")))?
    };
    let exec = st.engine.exec_get(&id)?;
    if start.tty != exec.config.tty && start.tty {
        return Err(ApiError::bad_request(
            "Tty at start differs from the exec's Tty at create: refused rather than ignored",
        ));
    }
    if start.detach {
        st.engine.exec_start(&id, true, start.console_size).await?;
        return Ok(empty(StatusCode::OK));
    }
    let detach_keys = if exec.config.detach_keys.is_empty() {
        st.detach_keys.clone()
    } else {
        super::stdio::parse_detach_keys(&exec.config.detach_keys)?
    };
    let wants_upgrade = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"));
    let content_type = HeaderValue::from_static(if exec.config.tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    });
    if !wants_upgrade {
        // Output only, as the body; a failure to start is the error response.
        let io = st.engine.exec_start(&id, false, start.console_size).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let (client, server) =
            tokio::net::UnixStream::pair().map_err(|e| ApiError::internal(e.to_string()))?;
        tokio::spawn(super::stdio::bridge_exec(
            server,
            Bytes::new(),
            io,
            Vec::new(),
        ));
        tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let (mut r, w) = client.into_split();
            drop(w);
            let mut buf = vec![0u8; 32 * 1024];
            while let Ok(n) = r.read(&mut buf).await {
                if n == 0 || tx.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    break;
                }
            }
        });
        let mut rx = rx;
        let stream = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|o| o.map(Ok::<_, std::convert::Infallible>))
        });
        let mut resp = Response::new(Body::from_stream(stream));
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
        return Ok(resp);
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let engine = st.engine.clone();
    let tty = exec.config.tty;
    tokio::spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let Some((mut conn, read_buf)) = super::stdio::client_connection(upgraded) else {
            return;
        };
        match engine.exec_start(&id, false, start.console_size).await {
            Ok(io) => super::stdio::bridge_exec(conn, read_buf, io, detach_keys).await,
            Err(e) => {
                // Not an HTTP error, so told here as the error layer tells one: whole to
                // the log, without berthd's own paths to the client.
                let full = e.to_string();
                let shown = InternalPaths::of(&engine).hide(&full);
                if shown != full {
                    tracing::error!("exec start: {full}");
                }
                // On the stdout stream, framed unless the exec has a terminal (as moby).
                let text = format!("{shown}\r\n");
                let bytes = if tty {
                    text.into_bytes()
                } else {
                    berth_api::stream::frame(berth_api::stream::StreamKind::Stdout, text.as_bytes())
                };
                super::stdio::head_taken(std::os::fd::AsFd::as_fd(&conn)).await;
                let _ = conn.write_all(&bytes).await;
                let _ = conn.shutdown().await;
            }
        }
    });
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    h.insert(header::CONTENT_TYPE, content_type);
    Ok(resp)
}
