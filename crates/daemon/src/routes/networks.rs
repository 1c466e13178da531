//! `GET /networks` and `GET /networks/{id}` (the engine's networks.rs).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;

use crate::error::ApiResult;
use crate::query::Query;
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/{id}", get(inspect))
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
