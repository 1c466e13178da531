//! One module per API area; handlers only translate between HTTP and engine calls.

pub mod containers;
pub mod events;
pub mod exec;
pub mod images;
pub mod networks;
pub mod stdio;
pub mod system;
pub mod volumes;

use axum::body::Body;
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
