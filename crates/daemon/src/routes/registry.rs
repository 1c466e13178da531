//! The registry endpoints: `POST /images/create?fromImage=` (`docker pull`), `POST
//! /images/{name}/push` (`docker push`), both answered with Docker's JSON progress stream,
//! and `POST /auth` (`docker login`). What fails before the first layer (a bad reference,
//! an unknown tag, refused credentials) is an error status, as Docker answers it; what
//! fails after is the stream's last line (`{"errorDetail":..,"error":..}`).

use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use berth_registry::{AuthConfig, Platform, PullErrorKind, PullOptions};

use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::AppState;

/// The reference `fromImage` and `tag` name together (`tag` may be a digest).
fn reference_of(image: &str, tag: Option<&str>) -> Result<String, ApiError> {
    let parsed =
        berth_image::reference::parse(image).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let named = parsed.tag.is_some() || parsed.digest.is_some();
    Ok(match tag {
        Some(t) if !named && t.starts_with("sha256:") => format!("{image}@{t}"),
        Some(t) if !named => format!("{image}:{t}"),
        _ => image.to_string(),
    })
}

/// The credentials of `X-Registry-Auth` (none when absent).
pub(crate) fn registry_auth(headers: &HeaderMap) -> Result<AuthConfig, ApiError> {
    match headers.get("x-registry-auth") {
        None => Ok(AuthConfig::default()),
        Some(v) => {
            let v = v
                .to_str()
                .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header"))?;
            AuthConfig::from_header(v).map_err(ApiError::bad_request)
        }
    }
}

pub(crate) async fn pull(st: &AppState, q: &Query, headers: &HeaderMap) -> ApiResult<Response> {
    let image = q.get("fromImage").unwrap_or("");
    if image.is_empty() {
        return Err(ApiError::bad_request("fromImage is required"));
    }
    let reference = reference_of(image, q.get("tag").filter(|t| !t.is_empty()))?;
    let parsed = berth_image::reference::parse(&reference)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // Docker pulls every tag of a repository named without one.
    let all_tags = parsed.tag.is_none() && parsed.digest.is_none();
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Some(Platform::parse(p).map_err(ApiError::bad_request)?),
        None => None,
    };
    let opts = PullOptions {
        platform,
        auth: registry_auth(headers)?,
    };
    let registry = st.registry.clone();
    let engine = st.engine.clone();
    stream_op(move |sink, started| async move {
        let references = if all_tags {
            let tags = berth_registry::pull::list_tags(&registry, &reference, &opts.auth).await?;
            tags.into_iter()
                .map(|t| format!("{reference}:{t}"))
                .collect()
        } else {
            vec![reference.clone()]
        };
        for one in &references {
            let result = berth_registry::pull(
                &registry,
                engine.images().clone(),
                one,
                &opts,
                sink.clone(),
                &*started,
            )
            .await;
            match &result {
                Ok(p) => {
                    let name = p.name.rsplit_once(['@', ':']).map_or(&*p.name, |(n, _)| n);
                    engine.image_pulled(&p.id, &p.name, name);
                }
                Err(e) => {
                    tracing::info!("pull of {one} failed: {e}");
                    return Err(result.unwrap_err());
                }
            }
        }
        if references.is_empty() {
            return Err(berth_registry::PullError {
                message: format!("{reference} has no tags"),
                kind: PullErrorKind::NotFound,
            });
        }
        Ok(())
    })
    .await
}

/// `POST /images/{name}/push?tag=`: `docker push`, Docker's JSON progress back. An empty
/// tag pushes every tag of the repository, as Docker does.
pub(crate) async fn push(
    st: &AppState,
    name: &str,
    q: &Query,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let parsed =
        berth_image::reference::parse(name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if parsed.digest.is_some() {
        return Err(ApiError::bad_request(format!(
            "cannot push a digest reference: {name}"
        )));
    }
    let repo = parsed.familiar_name();
    let tags: Vec<String> = match (parsed.tag, q.get("tag").filter(|t| !t.is_empty())) {
        (Some(t), _) => vec![t],
        (None, Some(t)) => vec![t.to_string()],
        (None, None) => {
            let all: Vec<String> = st
                .engine
                .images()
                .tags_of(&repo)
                .into_iter()
                .map(|(t, _)| t)
                .collect();
            if all.is_empty() {
                return Err(ApiError::not_found(format!(
                    "An image does not exist locally with the tag: {repo}"
                )));
            }
            all
        }
    };
    let auth = registry_auth(headers)?;
    let registry = st.registry.clone();
    let engine = st.engine.clone();
    stream_op(move |sink, started| async move {
        for tag in &tags {
            let pushed = berth_registry::push(
                &registry,
                engine.images().clone(),
                &repo,
                tag,
                &auth,
                sink.clone(),
                &*started,
            )
            .await;
            match pushed {
                Ok(_) => engine.image_pushed(&format!("{repo}:{tag}"), &repo),
                Err(e) => {
                    tracing::info!("push of {repo}:{tag} failed: {e}");
                    return Err(e);
                }
            }
        }
        Ok(())
    })
    .await
}

/// Runs a registry operation in a task: an error before it `started` is the answer's
/// status; after, progress streams as JSON lines and an error is the last one
/// (`errorDetail`), as Docker's pull and push answer.
async fn stream_op<F, Fut>(run: F) -> ApiResult<Response>
where
    F: FnOnce(berth_registry::Sink, Arc<dyn Fn() + Send + Sync>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), berth_registry::PullError>> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Bytes>();
    let sink_tx = tx.clone();
    let sink: berth_registry::Sink = Arc::new(move |m| {
        let mut b = serde_json::to_vec(&m).expect("a progress message serializes");
        b.push(b'\n');
        let _ = sink_tx.send(Bytes::from(b));
    });
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let started_tx = Mutex::new(Some(started_tx));
    let started: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
        if let Some(t) = started_tx.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.send(());
        }
    });
    let (result_tx, result_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        // A client that leaves stops the operation (a pull's ingest is rolled back).
        let result = tokio::select! {
            r = run(sink, started) => r,
            () = tx.closed() => {
                tracing::info!("a registry operation stopped: the client went away");
                Err(berth_registry::PullError {
                    message: "the client went away".to_string(),
                    kind: PullErrorKind::Failed,
                })
            }
        };
        if let Err(e) = &result {
            let mut b = serde_json::json!({
                "errorDetail": {"message": e.message},
                "error": e.message,
            })
            .to_string()
            .into_bytes();
            b.push(b'\n');
            let _ = tx.send(Bytes::from(b));
        }
        drop(tx);
        let _ = result_tx.send(result);
    });
    // The operation either starts streaming, or ends (with an error) before it does.
    if started_rx.await.is_err() {
        return match result_rx.await {
            Ok(Err(e)) => Err(ApiError {
                status: match e.kind {
                    PullErrorKind::NotFound => StatusCode::NOT_FOUND,
                    PullErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
                    PullErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
                    PullErrorKind::Failed => StatusCode::INTERNAL_SERVER_ERROR,
                },
                message: e.message,
            }),
            _ => Err(ApiError::internal("the operation ended without an answer")),
        };
    }
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx))
    });
    let mut resp = Response::new(Body::from_stream(stream));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The credentials of `X-Registry-Config` (`POST /build`): registry address ->
/// credentials, as the docker CLI sends every one it knows.
pub(crate) fn registry_config(
    headers: &HeaderMap,
) -> Result<std::collections::HashMap<String, AuthConfig>, ApiError> {
    let Some(v) = headers.get("x-registry-config") else {
        return Ok(Default::default());
    };
    let v = v
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Config header"))?;
    AuthConfig::map_from_header(v).map_err(ApiError::bad_request)
}

/// The builder's way to pull a base image: berthd's registry client, with the build's
/// credentials for the image's registry, the `pull` event, and the progress as lines of
/// the build's output.
pub(crate) fn build_puller(
    st: &AppState,
    auths: std::collections::HashMap<String, AuthConfig>,
) -> berth_build::Puller {
    let registry = st.registry.clone();
    let engine = st.engine.clone();
    let auths = Arc::new(auths);
    berth_build::Puller(Arc::new(move |reference, sink| {
        let registry = registry.clone();
        let engine = engine.clone();
        let auths = auths.clone();
        Box::pin(async move {
            let domain = berth_image::reference::parse(&reference)
                .map(|r| r.domain)
                .map_err(|e| e.to_string())?;
            let auth = auths
                .iter()
                .find(|(k, _)| berth_api::auth::registry_domain(k) == domain)
                .map(|(_, a)| a.clone())
                .unwrap_or_default();
            let msink: berth_registry::Sink = Arc::new(move |m| {
                sink(serde_json::to_value(&m).expect("a progress message serializes"))
            });
            let opts = PullOptions {
                platform: None,
                auth,
            };
            let p = berth_registry::pull(
                &registry,
                engine.images().clone(),
                &reference,
                &opts,
                msink,
                &|| {},
            )
            .await
            .map_err(|e| e.message)?;
            let name = p.name.rsplit_once(['@', ':']).map_or(&*p.name, |(n, _)| n);
            engine.image_pulled(&p.id, &p.name, name);
            Ok(())
        })
    }))
}

/// `POST /auth`: `docker login`'s check of credentials against a registry. Nothing is
/// kept: the client stores the credentials, as Docker's does.
pub(crate) async fn login(
    axum::extract::State(st): axum::extract::State<AppState>,
    body: Bytes,
) -> ApiResult<Response> {
    let mut auth: AuthConfig = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid auth configuration: {e}")))?;
    auth.fill_from_auth();
    let identity_token = match berth_registry::login(&st.registry, &auth).await {
        Ok(t) => t.unwrap_or_default(),
        Err(e) => {
            tracing::info!(server = %auth.server_address, "login refused: {e}");
            return Err(ApiError {
                status: match e {
                    berth_registry::RegistryError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                    berth_registry::RegistryError::Registry { status: 401, .. } => {
                        StatusCode::UNAUTHORIZED
                    }
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                },
                message: e.to_string(),
            });
        }
    };
    let mut resp = Response::new(Body::from(
        serde_json::json!({"Status": "Login Succeeded", "IdentityToken": identity_token})
            .to_string(),
    ));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
