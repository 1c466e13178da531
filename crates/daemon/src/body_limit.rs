//! Request body limits, answered as Docker clients expect errors: a JSON 413.
//!
//! A request body is read whole only for JSON requests (container create, exec, update, ...),
//! where axum stops at [`MAX_JSON_BODY`]; image ingest (`/images/load`, `/images/create`),
//! a build's context (`/build`), a volume import and `docker cp` into a container (`PUT
//! /containers/{id}/archive`) stream their body and are bounded by the ingest budget. A `Content-Length` over the
//! route's limit is refused before a byte of the body is read.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

/// The most a request body read whole may be (axum's default limit for its body
/// extractors, which this module answers in JSON).
pub const MAX_JSON_BODY: u64 = 2 << 20;

/// Whether the request streams an archive in: an image into the store, or files into a
/// container (`docker cp`), both bounded by the ingest limits.
fn is_ingest(method: &Method, path: &str) -> bool {
    let path = strip_version(path);
    (method == Method::POST
        && (path == "/images/load"
            || path == "/images/create"
            || path == "/build"
            || (path.starts_with("/volumes/") && path.ends_with("/import"))))
        || (method == Method::PUT && path.starts_with("/containers/") && path.ends_with("/archive"))
}

/// `/v1.44/images/load` -> `/images/load` (the version prefix is stripped later, by the
/// server, for routing; this runs on the full path too in tests).
fn strip_version(path: &str) -> &str {
    match path.strip_prefix("/v") {
        Some(rest) => match rest.find('/') {
            Some(i) if rest[..i].chars().all(|c| c.is_ascii_digit() || c == '.') => &rest[i..],
            _ => path,
        },
        None => path,
    }
}

fn too_large(what: String) -> Response {
    ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: what,
    }
    .into_response()
}

/// The middleware: refuses a `Content-Length` over the limit at once, and turns axum's plain
/// text 413 (a body that grew over [`MAX_JSON_BODY`] while read) into `{"message": ...}`.
pub async fn limit_bodies(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let (limit, flag) = if is_ingest(req.method(), req.uri().path()) {
        (
            st.engine.images().ingest_limits().max_size,
            " (berthd --max-ingest-size)",
        )
    } else {
        (Some(MAX_JSON_BODY), "")
    };
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let (Some(limit), Some(length)) = (limit, length) {
        if length > limit {
            return too_large(format!(
                "request body too large: {length} bytes, the limit is {limit}{flag}"
            ));
        }
    }
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/json");
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        return too_large(format!(
            "request body too large: the limit is {MAX_JSON_BODY} bytes"
        ));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_routes_are_told_with_or_without_a_version() {
        assert!(is_ingest(&Method::POST, "/images/load"));
        assert!(is_ingest(&Method::POST, "/v1.44/images/create"));
        assert!(!is_ingest(&Method::GET, "/images/load"));
        assert!(!is_ingest(&Method::POST, "/containers/create"));
        // A build context and a volume import stream in too (docker-py sends a
        // Content-Length).
        assert!(is_ingest(&Method::POST, "/v1.41/build"));
        assert!(is_ingest(&Method::POST, "/volumes/data/import"));
        assert!(!is_ingest(&Method::POST, "/build/prune"));
        assert!(!is_ingest(&Method::POST, "/v1.44/images/x/tag"));
        assert!(is_ingest(&Method::PUT, "/v1.44/containers/web/archive"));
        assert!(!is_ingest(&Method::GET, "/containers/web/archive"));
    }
}
