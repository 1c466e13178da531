//! The volume endpoints (the engine's volumes.rs): list, inspect, create, remove, prune.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use berth_api::ApiVersion;
use berth_engine::CreateVolume;
use serde_json::json;

use crate::error::ApiResult;
use crate::query::Query;
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
const PRUNE_ANONYMOUS_ONLY: ApiVersion = ApiVersion {
    major: 1,
    minor: 42,
};

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
