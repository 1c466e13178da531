//! The listener: one hyper HTTP/1.1 connection per client (upgrades allowed, for attach),
//! the `/vX.Y` prefix check, and the headers on every response.

use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderValue, Request, Response, Uri};
use axum::response::IntoResponse;
use axum::Router;
use hyper_util::rt::TokioIo;
use tower::ServiceExt;

use berth_api::ApiVersion;

use crate::error::ApiError;

/// The API version a request asked for (from its path prefix, or the newest).
#[derive(Debug, Clone, Copy)]
pub struct RequestVersion(pub ApiVersion);

/// Serves `router` on the unix socket at `path` (mode 0660) until the process ends.
pub async fn serve(router: Router, path: &Path) -> std::io::Result<()> {
    if path.exists() {
        std::fs::remove_file(path)?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = tokio::net::UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, for example: not a reason to stop serving.
                tracing::error!("accepting a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let router = router.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(handle(router, req.map(Body::new)).await)
                }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await
            {
                tracing::debug!("connection: {e}");
            }
        });
    }
}

/// Handles one request: strips and checks the version prefix, routes, adds headers.
pub async fn handle(router: Router, mut req: Request<Body>) -> Response<Body> {
    let version = match strip_version(req.uri()) {
        Ok((version, uri)) => {
            if let Some(uri) = uri {
                *req.uri_mut() = uri;
            }
            version
        }
        Err(e) => return with_headers(e.into_response()),
    };
    req.extensions_mut().insert(RequestVersion(version));
    let resp = router
        .oneshot(req)
        .await
        .unwrap_or_else(|never| match never {});
    if resp.status() == axum::http::StatusCode::SWITCHING_PROTOCOLS {
        return resp;
    }
    with_headers(resp)
}

fn with_headers(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(
        "Api-Version",
        HeaderValue::from_static(berth_api::API_VERSION),
    );
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert(
        "Server",
        HeaderValue::from_static(concat!("Berth/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    resp
}

/// `/v1.41/containers/json?x` -> (1.41, `/containers/json?x`); no prefix -> newest.
fn strip_version(uri: &Uri) -> Result<(ApiVersion, Option<Uri>), ApiError> {
    let path = uri.path();
    let Some(rest) = path.strip_prefix("/v") else {
        return Ok((ApiVersion::current(), None));
    };
    let (ver, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let Some(version) = ApiVersion::parse(ver) else {
        return Ok((ApiVersion::current(), None));
    };
    if version > ApiVersion::current() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too new. Maximum supported API version is {}",
            berth_api::API_VERSION
        )));
    }
    if version < ApiVersion::minimum() {
        return Err(ApiError::bad_request(format!(
            "client version {version} is too old. Minimum supported API version is {}, please upgrade your client to a newer version",
            berth_api::MIN_API_VERSION
        )));
    }
    let new = match uri.query() {
        Some(q) => format!("{tail}?{q}"),
        None => tail.to_string(),
    };
    let uri = new
        .parse()
        .map_err(|_| ApiError::bad_request("malformed request path"))?;
    Ok((version, Some(uri)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix_is_stripped_and_checked() {
        let (v, uri) = strip_version(&"/v1.41/containers/json?all=1".parse().unwrap()).unwrap();
        assert_eq!(v.to_string(), "1.41");
        assert_eq!(uri.unwrap().to_string(), "/containers/json?all=1");
        let (v, uri) = strip_version(&"/version".parse().unwrap()).unwrap();
        assert_eq!(v, ApiVersion::current());
        assert!(uri.is_none());
        let e = strip_version(&"/v1.99/info".parse().unwrap()).unwrap_err();
        assert_eq!(
            e.message,
            "client version 1.99 is too new. Maximum supported API version is 1.44"
        );
        assert!(strip_version(&"/v1.12/info".parse().unwrap()).is_err());
    }
}
