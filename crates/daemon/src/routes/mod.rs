//! One module per API area; handlers only translate between HTTP and engine calls.

pub mod build;
pub mod containers;
pub mod events;
pub mod exec;
pub mod images;
pub mod networks;
pub mod registry;
pub mod stdio;
pub mod system;
pub mod volumes;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;

/// A JSON response with `Content-Type: application/json` exactly.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A bare status with no body (204, 304, 201 for tag).
pub fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// A JSON object body; nothing is read as `{}` (networks, volumes).
pub fn object(body: &Bytes) -> crate::error::ApiResult<serde_json::Value> {
    use crate::error::ApiError;
    if body.is_empty() {
        return Ok(serde_json::json!({}));
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err(ApiError::bad_request(
            "invalid JSON: the body must be an object",
        )),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON: {e}"))),
    }
}

/// Runs a blocking engine call (netlink, nft, directory creation and removal) off the
/// event loop.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_engine::Result<T> + Send + 'static,
) -> crate::error::ApiResult<T> {
    Ok(tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::error::ApiError::internal(e.to_string()))??)
}
