//! The network endpoints (the engine's networks.rs): list, inspect, create, remove, prune,
//! connect, disconnect.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use berth_engine::CreateNetwork;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

async fn list(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    Ok(super::json(
        StatusCode::OK,
        &st.engine.network_list(&q.filters()?)?,
    ))
}

async fn inspect(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(super::json(
        StatusCode::OK,
        &st.engine.network_inspect(&id)?,
    ))
}

async fn create(State(st): State<AppState>, body: Bytes) -> ApiResult<Response> {
    let req = CreateNetwork::parse(&super::object(&body)?)?;
    let engine = st.engine.clone();
    let id = super::blocking(move || engine.network_create(req)).await?;
    Ok(super::json(
        StatusCode::CREATED,
        &json!({"Id": id, "Warning": ""}),
    ))
}

async fn remove(State(st): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let engine = st.engine.clone();
    super::blocking(move || engine.network_remove(&id)).await?;
    Ok(super::empty(StatusCode::NO_CONTENT))
}

async fn prune(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let filters = q.filters()?;
    let engine = st.engine.clone();
    let deleted = super::blocking(move || engine.network_prune(&filters)).await?;
    Ok(super::json(
        StatusCode::OK,
        &json!({ "NetworksDeleted": deleted }),
    ))
}

/// Refuses a body key other than `known`, by name (never taken and ignored).
fn only_keys(verb: &str, body: &Value, known: &[&str]) -> ApiResult<()> {
    for key in body.as_object().into_iter().flatten().map(|(k, _)| k) {
        if !known.contains(&key.as_str()) {
            return Err(ApiError::bad_request(format!(
                "network {verb}: {key} is not supported by berth: refused rather than ignored"
            )));
        }
    }
    Ok(())
}

/// `{"Container": "...", ...}`: the container named, or Docker's 400.
fn container_of(body: &Value) -> ApiResult<String> {
    match body.get("Container").and_then(Value::as_str) {
        Some(c) if !c.is_empty() => Ok(c.to_string()),
        _ => Err(ApiError::bad_request("container is required")),
    }
}

async fn connect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = super::object(&body)?;
    only_keys("connect", &body, &["Container", "EndpointConfig"])?;
    let container = container_of(&body)?;
    let settings = body.get("EndpointConfig").cloned().unwrap_or(Value::Null);
    st.engine
        .network_connect(&id, &container, &settings)
        .await?;
    Ok(super::empty(StatusCode::OK))
}

async fn disconnect(
    State(st): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let body = super::object(&body)?;
    // `Force` is what berth always does: the endpoint goes, whatever state it is in.
    only_keys("disconnect", &body, &["Container", "Force"])?;
    let container = container_of(&body)?;
    let force = body.get("Force").and_then(Value::as_bool).unwrap_or(false);
    st.engine.network_disconnect(&id, &container, force).await?;
    Ok(super::empty(StatusCode::OK))
}
