//! The volume endpoints (the engine's volumes.rs): list, inspect, create, remove, prune.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use berth_engine::CreateVolume;
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::query::Query;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

async fn list(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let filters = q.filters()?;
    let engine = st.engine.clone();
    let volumes = super::blocking(move || engine.volume_list(&filters)).await?;
    Ok(super::json(
        StatusCode::OK,
        &json!({"Volumes": volumes, "Warnings": []}),
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

async fn prune(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let filters = q.filters()?;
    let engine = st.engine.clone();
    let (deleted, reclaimed) = super::blocking(move || engine.volume_prune(&filters)).await?;
    // Docker's `null` when nothing was removed.
    let deleted = if deleted.is_empty() {
        Value::Null
    } else {
        json!(deleted)
    };
    Ok(super::json(
        StatusCode::OK,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}
