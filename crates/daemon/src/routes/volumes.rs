//! The volume endpoints (the engine's volumes.rs): list, inspect, create, remove, prune;
//! and berth's own export and import (the engine's volume_backup.rs), which Docker has not.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use berth_api::ApiVersion;
use berth_engine::{Compression, CreateVolume};
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::routes::images::{body_reader, drain, ChannelWriter, ReceiverStream};
use crate::server::RequestVersion;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    // A volume may be named `create` or `prune`: the static routes of those POSTs would
    // shadow its GET and DELETE (405), so they answer them as `/volumes/{name}` does.
    Router::new()
        .route("/volumes", get(list))
        .route(
            "/volumes/create",
            post(create)
                .get(|st: State<AppState>| inspect(st, Path("create".into())))
                .delete(|st: State<AppState>, q: Query| remove(st, Path("create".into()), q)),
        )
        .route(
            "/volumes/prune",
            post(prune)
                .get(|st: State<AppState>| inspect(st, Path("prune".into())))
                .delete(|st: State<AppState>, q: Query| remove(st, Path("prune".into()), q)),
        )
        .route("/volumes/{name}", get(inspect).delete(remove))
        .route("/volumes/{name}/export", get(export))
        .route("/volumes/{name}/import", post(import))
}

/// `GET /volumes/{name}/export[?compression=none|gzip|zstd][&pause=1]` (berth's own): the
/// volume's content as a tar stream. A refusal (no such volume, a running writer without
/// `pause`) is answered before the stream starts; a failure after it cuts the body short.
/// The paused writers are thawed when the copy ends, however it ends: the guard goes with
/// the copying task, which the client going away ends at its next write.
async fn export(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let compression: Compression = q
        .get("compression")
        .unwrap_or("none")
        .parse()
        .map_err(ApiError::bad_request)?;
    let pause = q.bool("pause", false);
    let guard = st.engine.volume_export_prepare(&name, pause).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let engine = st.engine.clone();
    tokio::task::spawn_blocking(move || {
        let _thaw = guard;
        let mut out =
            std::io::BufWriter::with_capacity(256 << 10, ChannelWriter { tx: tx.clone() });
        if let Err(e) = engine.volume_export(&name, &mut out, compression) {
            tracing::warn!(volume = %name, "export: {e}");
            drop(out);
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let mut resp = Response::new(Body::from_stream(ReceiverStream(rx)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(compression.content_type()),
    );
    Ok(resp)
}

/// `POST /volumes/{name}/import[?force=1]` (berth's own): a tar stream (plain, gzip or
/// zstd, told by its magic) becomes the volume's content, whole or not at all; 204.
async fn import(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Query,
    req: Request,
) -> ApiResult<Response> {
    let force = q.bool("force", false);
    let mut reader = body_reader(req);
    let engine = st.engine.clone();
    tokio::task::spawn_blocking(move || {
        let imported = engine.volume_import(&name, &mut reader, force);
        if imported.is_err() {
            drain(&mut reader);
        }
        imported
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(super::empty(StatusCode::NO_CONTENT))
}

async fn list(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let filters = q.filters()?;
    let engine = st.engine.clone();
    let volumes = super::blocking(move || engine.volume_list(&filters)).await?;
    // Docker's `Warnings` is a nil slice unless a driver failed: `null`.
    Ok(super::json(
        StatusCode::OK,
        &json!({"Volumes": volumes, "Warnings": null}),
    ))
}

async fn inspect(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Response> {
    let engine = st.engine.clone();
    let volume = super::blocking(move || engine.volume_inspect(&name)).await?;
    Ok(super::json(StatusCode::OK, &volume))
}

async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req = CreateVolume::parse(&super::object(&body)?)?;
    let engine = st.engine.clone();
    let volume = super::blocking(move || engine.volume_create(req)).await?;
    Ok(super::json(StatusCode::CREATED, &volume))
}

async fn remove(
    State(st): State<AppState>,
    Path(name): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let force = q.bool("force", false);
    let engine = st.engine.clone();
    super::blocking(move || engine.volume_remove(&name, force)).await?;
    Ok(super::empty(StatusCode::NO_CONTENT))
}

/// Before API 1.42 a prune took every unused volume: Docker adds `all=true` to an older
/// client's filters (a set: with `all=false` given too, that is two values, refused).
const PRUNE_ANONYMOUS_ONLY: ApiVersion = ApiVersion::v1(42);

async fn prune(
    State(st): State<AppState>,
    version: Option<Extension<RequestVersion>>,
    q: Query,
) -> ApiResult<Response> {
    let mut filters = q.filters()?;
    let older = version.is_some_and(|v| v.0 .0 < PRUNE_ANONYMOUS_ONLY);
    if older && !filters.get("all").iter().any(|v| v == "true") {
        filters.add("all", "true");
    }
    let engine = st.engine.clone();
    let (deleted, reclaimed) = super::blocking(move || engine.volume_prune(&filters)).await?;
    // Docker's `VolumesDeleted` is made empty, never nil: `[]` when nothing went.
    Ok(super::json(
        StatusCode::OK,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}
