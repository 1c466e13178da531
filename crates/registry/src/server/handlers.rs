//! The endpoints of the OCI Distribution Spec 1.1: one function per endpoint, each
//! checking its input fully before the store changes. Errors are the spec's
//! `{"errors":[{"code","message","detail"}]}`.

use std::collections::HashMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::Htpasswd;
use super::issuer::{self, TokenAuth};
use super::names::{self, DigestError, RangeAnswer, Reference, Route, RouteError};
use super::storage::{self, Store};
use super::token::{Actions, Claims, Resource};

/// A response body: small JSON, or a blob streamed from disk.
pub type Body = BoxBody<Bytes, io::Error>;

/// Largest manifest accepted or served (distribution's limit too).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// A request body that sends nothing for this long is given up.
pub const BODY_IDLE: Duration = Duration::from_secs(120);
/// A blob is read from disk and sent in pieces of this size.
const CHUNK: u64 = 1 << 20;

const MANIFEST_TYPES: [&str; 4] = [
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// How requests are authorised.
pub enum Auth {
    /// Anyone who reaches the port may read and write.
    Open,
    /// Basic auth against an htpasswd file, on every request.
    Basic(Htpasswd),
    /// Bearer tokens this server issues at `/token` ([`issuer`]).
    Token(Box<TokenAuth>),
}

/// What every request shares: the store, the options, and the hash state of uploads in
/// progress (so a chunked upload is not read again at its end).
pub struct State {
    pub store: Store,
    pub auth: Auth,
    pub read_only: bool,
    pub delete_enabled: bool,
    /// Uploads' hash state, with when each was last used.
    hashes: Mutex<HashMap<String, (std::time::Instant, UploadLock)>>,
    /// Password checks at once: half the cores, at least one.
    bcrypt_turn: tokio::sync::Semaphore,
}

/// Uploads in memory before the ones unused for the stale age are swept.
const SWEEP_UPLOADS_AT: usize = 1024;

/// How long a password check waits for its turn before the request is turned away
/// (429): wrong passwords sent in a flood must not queue every login behind them.
const BCRYPT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The SHA-256 of an upload's first `len` bytes.
struct UploadHash {
    hasher: Sha256,
    len: u64,
}

type UploadLock = Arc<tokio::sync::Mutex<Option<UploadHash>>>;

impl State {
    pub fn new(store: Store, auth: Auth, read_only: bool, delete_enabled: bool) -> State {
        State {
            store,
            auth,
            read_only,
            delete_enabled,
            hashes: Mutex::new(HashMap::new()),
            bcrypt_turn: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            ),
        }
    }

    fn upload_lock(&self, id: &str) -> UploadLock {
        let mut hashes = self.hashes.lock().unwrap();
        if hashes.len() >= SWEEP_UPLOADS_AT && !hashes.contains_key(id) {
            // Uploads left without a PUT or DELETE: their files go at the stale age (gc,
            // or the next start), and so does their state here.
            hashes.retain(|_, (used, lock)| {
                used.elapsed() < storage::STALE_UPLOAD || Arc::strong_count(lock) > 1
            });
        }
        let entry = hashes
            .entry(id.to_string())
            .or_insert_with(|| (std::time::Instant::now(), UploadLock::default()));
        entry.0 = std::time::Instant::now();
        entry.1.clone()
    }

    fn forget_upload(&self, id: &str) {
        self.hashes.lock().unwrap().remove(id);
    }

    fn htpasswd(&self) -> Option<&Htpasswd> {
        match &self.auth {
            Auth::Open => None,
            Auth::Basic(h) => Some(h),
            Auth::Token(t) => Some(&t.htpasswd),
        }
    }
}

/// A registry error: status, the spec's code, a message and an optional detail.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// (Boxed: a `Value` is large, and every handler returns this.)
    detail: Option<Box<Value>>,
    /// A 401's `WWW-Authenticate` (Basic when none is set).
    challenge: Option<String>,
}

type Result<T> = std::result::Result<T, ApiError>;

pub(super) fn err(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        code,
        message: message.into(),
        detail: None,
        challenge: None,
    }
}

impl ApiError {
    pub(super) fn detail(mut self, detail: Value) -> ApiError {
        self.detail = Some(Box::new(detail));
        self
    }

    pub(super) fn challenge(mut self, challenge: String) -> ApiError {
        self.challenge = Some(challenge);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    fn into_response(self) -> Response<Body> {
        let mut e = json!({"code": self.code, "message": self.message});
        if let Some(detail) = self.detail {
            e["detail"] = *detail;
        }
        let mut r = json_response(self.status, &json!({ "errors": [e] }));
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = self
                .challenge
                .and_then(|c| HeaderValue::from_str(&c).ok())
                .unwrap_or(HeaderValue::from_static("Basic realm=\"berth-registry\""));
            r.headers_mut().insert("WWW-Authenticate", challenge);
        }
        r
    }
}

impl From<io::Error> for ApiError {
    fn from(e: io::Error) -> ApiError {
        tracing::error!("storage: {e}");
        err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "UNKNOWN",
            format!("storage error: {}", e.kind()),
        )
    }
}

fn blob_unknown(digest: &str) -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "BLOB_UNKNOWN",
        "blob unknown to registry",
    )
    .detail(json!({ "digest": digest }))
}

fn upload_unknown() -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "BLOB_UPLOAD_UNKNOWN",
        "blob upload unknown to registry",
    )
}

fn manifest_unknown(reference: &str) -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "MANIFEST_UNKNOWN",
        "manifest unknown to registry",
    )
    .detail(json!({ "reference": reference }))
}

fn manifest_invalid(message: impl Into<String>) -> ApiError {
    err(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
}

pub(super) fn unsupported(message: impl Into<String>) -> ApiError {
    err(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", message)
}

/// The hex of a digest in a request, or the spec's error for it.
fn digest_hex(digest: &str) -> Result<String> {
    match names::parse_digest(digest) {
        Ok(hex) => Ok(hex.to_string()),
        Err(DigestError::Unsupported) => Err(err(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "unsupported digest algorithm: only sha256 is stored",
        )
        .detail(json!({ "digest": digest }))),
        Err(DigestError::Invalid) => Err(err(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest is not a valid sha256 digest",
        )
        .detail(json!({ "digest": digest }))),
    }
}

fn reference(r: &str) -> Result<Reference> {
    if r.contains(':') {
        return digest_hex(r).map(Reference::Digest);
    }
    if names::valid_tag(r) {
        Ok(Reference::Tag(r.to_string()))
    } else {
        Err(err(StatusCode::BAD_REQUEST, "TAG_INVALID", "invalid tag").detail(json!({ "tag": r })))
    }
}

/// Runs blocking store work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => Ok(r?),
        Err(e) => Err(io::Error::other(format!("store task: {e}")).into()),
    }
}

fn empty() -> Body {
    Full::new(Bytes::new()).map_err(|e| match e {}).boxed()
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|e| match e {}).boxed()
}

pub(super) fn json_response(status: StatusCode, v: &Value) -> Response<Body> {
    let body = v.to_string();
    let mut r = Response::new(full(body.clone()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    r
}

fn respond(status: StatusCode, headers: &[(&'static str, String)]) -> Response<Body> {
    let mut r = Response::new(empty());
    *r.status_mut() = status;
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    if !r.headers().contains_key(CONTENT_LENGTH) {
        r.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(0));
    }
    r
}

/// Answers one request; adds the API version header and logs it.
pub async fn handle(state: Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut r = match dispatch(&state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    r.headers_mut().insert(
        "Docker-Distribution-API-Version",
        HeaderValue::from_static("registry/2.0"),
    );
    let shown: String = path.chars().take(300).collect();
    tracing::info!(
        "{method} {shown} {} {}ms",
        r.status().as_u16(),
        started.elapsed().as_millis()
    );
    r
}

fn query(req: &Request<Incoming>) -> HashMap<String, String> {
    url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

pub(super) fn header(
    req: &Request<Incoming>,
    name: impl hyper::header::AsHeaderName,
) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The user of an `Authorization: Basic` value, or `None` when it holds no user's
/// password. A credential checked before needs no bcrypt; bcrypt runs on at most half
/// the cores at once, so requests with wrong credentials cannot take every core and the
/// blocking pool from the storage work, and waits at most [`BCRYPT_WAIT`] for its turn.
pub(super) async fn basic_user(
    state: &Arc<State>,
    authorization: Option<String>,
) -> Result<Option<String>> {
    let Some(htpasswd) = state.htpasswd() else {
        return Ok(None);
    };
    if let Some(user) = htpasswd.remembered(authorization.as_deref()) {
        return Ok(Some(user));
    }
    let _turn = bcrypt_turn(state).await?;
    let st = state.clone();
    Ok(
        tokio::task::spawn_blocking(move || st.htpasswd()?.check(authorization.as_deref()))
            .await
            .unwrap_or(None),
    )
}

/// Whether `password` is `user`'s, as [`basic_user`] checks it.
pub(super) async fn verify_password(
    state: &Arc<State>,
    user: String,
    password: String,
) -> Result<bool> {
    let Some(htpasswd) = state.htpasswd() else {
        return Ok(false);
    };
    if htpasswd.remembered_password(&user, &password) {
        return Ok(true);
    }
    let _turn = bcrypt_turn(state).await?;
    let st = state.clone();
    Ok(tokio::task::spawn_blocking(move || {
        st.htpasswd().is_some_and(|h| h.verify(&user, &password))
    })
    .await
    .unwrap_or(false))
}

/// A turn to run bcrypt, or 429 when none came within [`BCRYPT_WAIT`].
async fn bcrypt_turn(state: &State) -> Result<tokio::sync::SemaphorePermit<'_>> {
    match tokio::time::timeout(BCRYPT_WAIT, state.bcrypt_turn.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(err(
            StatusCode::TOO_MANY_REQUESTS,
            "TOOMANYREQUESTS",
            "too many password checks at once; try again",
        )),
    }
}

async fn dispatch(state: &Arc<State>, mut req: Request<Incoming>) -> Result<Response<Body>> {
    match &state.auth {
        Auth::Open => {}
        Auth::Basic(_) => {
            let authorization = header(&req, hyper::header::AUTHORIZATION).map(String::from);
            if basic_user(state, authorization).await?.is_none() {
                return Err(err(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "authentication required",
                ));
            }
        }
        Auth::Token(t) => {
            if req.uri().path() == "/token" {
                return issuer::token_endpoint(state, t, req).await;
            }
        }
    }
    let route = match names::route(req.uri().path()) {
        Ok(r) => r,
        Err(RouteError::NameInvalid(name)) => {
            let shown: String = name.chars().take(300).collect();
            return Err(err(
                StatusCode::BAD_REQUEST,
                "NAME_INVALID",
                "invalid repository name",
            )
            .detail(json!({ "name": shown })));
        }
        Err(RouteError::NotFound) => {
            return Err(err(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint"))
        }
    };
    let method = req.method().clone();
    let write = !(method == Method::GET || method == Method::HEAD);
    // What the configuration refuses is said before any token is asked for: a token would
    // not grant it either, and "denied" would hide why.
    if write && state.read_only {
        return Err(unsupported("the registry is read-only"));
    }
    let deleting =
        method == Method::DELETE && matches!(route, Route::Manifest { .. } | Route::Blob { .. });
    if deleting && !state.delete_enabled {
        return Err(unsupported(
            "deletes are disabled (berth-registry serve --delete-enabled)",
        ));
    }
    if let Auth::Token(t) = &state.auth {
        let claims = issuer::authorize(t, &req, &route)?;
        // The grant travels with the request: a cross-repository mount needs pull on the
        // repository it mounts from.
        req.extensions_mut().insert(claims);
    }
    let head = method == Method::HEAD;
    match (route, method) {
        (Route::Base, Method::GET | Method::HEAD) => Ok(json_response(StatusCode::OK, &json!({}))),
        (Route::Catalog, Method::GET) => catalog(state, &req).await,
        (Route::Tags { name }, Method::GET) => tags(state, &req, name).await,
        (Route::Manifest { name, reference }, Method::GET | Method::HEAD) => {
            get_manifest(state, name, &reference, head).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            put_manifest(state, req, name, &reference).await
        }
        (Route::Manifest { name, reference }, Method::DELETE) => {
            delete_manifest(state, name, &reference).await
        }
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            get_blob(state, &req, name, &digest, head).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => delete_blob(state, name, &digest).await,
        (Route::UploadStart { name }, Method::POST) => start_upload(state, req, name).await,
        (Route::Upload { name, id }, m) => upload(state, req, m, name, id).await,
        (Route::Referrers { name, digest }, Method::GET) => {
            referrers(state, &req, name, &digest).await
        }
        _ => Err(unsupported("method not allowed on this endpoint")),
    }
}

/// `?n=&last=` pagination over sorted `items`; the page and whether more follow.
fn paginate(
    items: Vec<String>,
    q: &HashMap<String, String>,
) -> Result<(Vec<String>, Option<usize>)> {
    let n = match q.get("n") {
        None => None,
        Some(n) => Some(n.parse::<usize>().map_err(|_| {
            err(
                StatusCode::BAD_REQUEST,
                "PAGINATION_NUMBER_INVALID",
                "invalid number of results requested",
            )
        })?),
    };
    let mut page: Vec<String> = match q.get("last") {
        Some(last) => items.into_iter().filter(|i| i > last).collect(),
        None => items,
    };
    match n {
        Some(n) if page.len() > n => {
            page.truncate(n);
            Ok((page, Some(n)))
        }
        _ => Ok((page, None)),
    }
}

fn next_link(base: &str, n: usize, page: &[String]) -> Option<(&'static str, String)> {
    let last = page.last()?;
    Some(("Link", format!("<{base}?n={n}&last={last}>; rel=\"next\"")))
}

async fn catalog(state: &Arc<State>, req: &Request<Incoming>) -> Result<Response<Body>> {
    let st = state.clone();
    let all = blocking(move || st.store.catalog()).await?;
    let (page, more) = paginate(all, &query(req))?;
    let mut r = json_response(StatusCode::OK, &json!({ "repositories": page }));
    if let Some((k, v)) = more.and_then(|n| next_link("/v2/_catalog", n, &page)) {
        r.headers_mut()
            .insert(k, HeaderValue::from_str(&v).expect("ascii"));
    }
    Ok(r)
}

fn name_unknown(name: &str) -> ApiError {
    err(
        StatusCode::NOT_FOUND,
        "NAME_UNKNOWN",
        "repository name not known to registry",
    )
    .detail(json!({ "name": name }))
}

async fn tags(state: &Arc<State>, req: &Request<Incoming>, name: String) -> Result<Response<Body>> {
    let st = state.clone();
    let n = name.clone();
    let all = blocking(move || {
        if !st.store.repository_exists(&n)? {
            return Ok(None);
        }
        st.store.tags(&n).map(Some)
    })
    .await?
    .ok_or_else(|| name_unknown(&name))?;
    let (page, more) = paginate(all, &query(req))?;
    let mut r = json_response(StatusCode::OK, &json!({ "name": name, "tags": page }));
    let base = format!("/v2/{name}/tags/list");
    if let Some((k, v)) = more.and_then(|n| next_link(&base, n, &page)) {
        r.headers_mut()
            .insert(k, HeaderValue::from_str(&v).expect("ascii"));
    }
    Ok(r)
}

async fn get_manifest(
    state: &Arc<State>,
    name: String,
    reference_text: &str,
    head: bool,
) -> Result<Response<Body>> {
    let r = reference(reference_text)?;
    let st = state.clone();
    let found = blocking(move || {
        let hex = match r {
            Reference::Digest(h) => h,
            Reference::Tag(t) => match st.store.resolve_tag(&name, &t)? {
                Some(h) => h,
                None => return Ok(None),
            },
        };
        let Some(media_type) = st.store.manifest_media_type(&name, &hex)? else {
            return Ok(None);
        };
        let bytes = st.store.read_small_blob(&hex, MAX_MANIFEST)?;
        Ok(Some((hex, media_type, bytes)))
    })
    .await?;
    let (hex, media_type, bytes) = found.ok_or_else(|| manifest_unknown(reference_text))?;
    let len = bytes.len();
    let mut resp = respond(
        StatusCode::OK,
        &[
            ("Content-Type", media_type),
            ("Docker-Content-Digest", format!("sha256:{hex}")),
            ("Content-Length", len.to_string()),
            ("ETag", format!("\"sha256:{hex}\"")),
        ],
    );
    if !head {
        *resp.body_mut() = full(bytes);
    }
    Ok(resp)
}

/// Reads a request body whole, up to `limit` bytes, with the idle timeout.
async fn read_limited(req: Request<Incoming>, limit: u64) -> Result<Bytes> {
    let too_large = || {
        err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "MANIFEST_INVALID",
            format!("manifest larger than {limit} bytes"),
        )
    };
    if let Some(len) = header(&req, CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok()) {
        if len > limit {
            return Err(too_large());
        }
    }
    let mut body = req.into_body();
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(BODY_IDLE, body.frame()).await {
            Err(_) => return Err(body_error("request body timed out")),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(body_error(&format!("reading request body: {e}"))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if (buf.len() + data.len()) as u64 > limit {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
    Ok(buf.into())
}

fn body_error(message: &str) -> ApiError {
    err(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", message)
}

/// What a manifest refers to, checked before it is stored.
struct ManifestRefs {
    media_type: String,
    /// Blobs that must be linked in the repository, with their sizes.
    blobs: Vec<(String, u64)>,
    /// Manifests that must be linked in the repository.
    manifests: Vec<String>,
    subject: Option<String>,
}

/// A descriptor's digest hex and size.
fn descriptor(v: &Value, what: &str) -> Result<(String, u64)> {
    let digest = v
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| manifest_invalid(format!("{what}: no digest")))?;
    let hex = names::parse_digest(digest)
        .map_err(|_| manifest_invalid(format!("{what}: invalid digest {digest:.80}")))?;
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| manifest_invalid(format!("{what}: no size")))?;
    Ok((hex.to_string(), size))
}

/// Parses a manifest or index and lists what it refers to.
fn manifest_refs(bytes: &[u8], content_type: Option<&str>) -> Result<ManifestRefs> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| manifest_invalid(format!("manifest is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(manifest_invalid("manifest is not a JSON object"));
    }
    if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(manifest_invalid(
            "unsupported manifest schemaVersion (2 only)",
        ));
    }
    let body_type = v.get("mediaType").and_then(Value::as_str);
    let header_type = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| MANIFEST_TYPES.contains(c));
    let media_type = match (body_type, header_type) {
        (Some(b), Some(h)) if b != h => {
            return Err(manifest_invalid(format!(
                "mediaType {b:.100} does not match Content-Type {h}"
            )))
        }
        (Some(b), _) => b,
        (None, Some(h)) => h,
        (None, None) => {
            return Err(manifest_invalid(
                "manifest has no mediaType and no supported Content-Type",
            ))
        }
    };
    if !MANIFEST_TYPES.contains(&media_type) {
        return Err(manifest_invalid(format!(
            "unsupported manifest media type {media_type:.100}"
        )));
    }
    let mut refs = ManifestRefs {
        media_type: media_type.to_string(),
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject: None,
    };
    if media_type.contains("index") || media_type.contains("list") {
        let list = v
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| manifest_invalid("index has no manifests array"))?;
        for m in list {
            refs.manifests.push(descriptor(m, "manifests[]")?.0);
        }
    } else {
        let config = v
            .get("config")
            .ok_or_else(|| manifest_invalid("manifest has no config"))?;
        refs.blobs.push(descriptor(config, "config")?);
        let layers = v
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| manifest_invalid("manifest has no layers array"))?;
        for l in layers {
            let d = descriptor(l, "layers[]")?;
            // Foreign layers (Windows base layers) live at their `urls`, not here.
            let foreign = l
                .get("mediaType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.contains("foreign"))
                && l.get("urls").is_some();
            if !foreign {
                refs.blobs.push(d);
            }
        }
    }
    if let Some(s) = v.get("subject") {
        refs.subject = Some(descriptor(s, "subject")?.0);
    }
    Ok(refs)
}

async fn put_manifest(
    state: &Arc<State>,
    req: Request<Incoming>,
    name: String,
    reference_text: &str,
) -> Result<Response<Body>> {
    let r = reference(reference_text)?;
    let content_type = header(&req, CONTENT_TYPE).map(String::from);
    let bytes = read_limited(req, MAX_MANIFEST).await?;
    let hex = format!("{:x}", Sha256::digest(&bytes));
    if let Reference::Digest(d) = &r {
        if *d != hex {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "DIGEST_INVALID",
                "manifest digest did not match the reference",
            )
            .detail(json!({ "digest": reference_text, "computed": format!("sha256:{hex}") })));
        }
    }
    let refs = manifest_refs(&bytes, content_type.as_deref())?;
    let st = state.clone();
    let (n, h) = (name.clone(), hex.clone());
    let tag = match r {
        Reference::Tag(t) => Some(t),
        Reference::Digest(_) => None,
    };
    let subject = refs.subject.clone();
    blocking(move || {
        for (b, size) in &refs.blobs {
            match st.store.linked_blob_size(&n, b)? {
                None => return Ok(Err(format!("sha256:{b}"))),
                Some(s) if s != *size => return Ok(Err(format!("sha256:{b}"))),
                Some(_) => st.store.touch_blob(b)?,
            }
        }
        for m in &refs.manifests {
            if st.store.manifest_media_type(&n, m)?.is_none() {
                return Ok(Err(format!("sha256:{m}")));
            }
        }
        st.store.put_manifest(
            &n,
            &h,
            &bytes,
            &refs.media_type,
            tag.as_deref(),
            refs.subject.as_deref(),
        )?;
        Ok(Ok(()))
    })
    .await?
    .map_err(|digest| {
        err(
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
            "manifest references a blob or manifest unknown to this repository (or of another size)",
        )
        .detail(json!({ "digest": digest }))
    })?;
    let mut headers = vec![
        ("Location", format!("/v2/{name}/manifests/sha256:{hex}")),
        ("Docker-Content-Digest", format!("sha256:{hex}")),
    ];
    if let Some(s) = subject {
        headers.push(("OCI-Subject", format!("sha256:{s}")));
    }
    Ok(respond(StatusCode::CREATED, &headers))
}

async fn delete_manifest(
    state: &Arc<State>,
    name: String,
    reference_text: &str,
) -> Result<Response<Body>> {
    let hex = match reference(reference_text)? {
        Reference::Digest(h) => h,
        Reference::Tag(_) => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                "UNSUPPORTED",
                "manifests are deleted by digest",
            ))
        }
    };
    let st = state.clone();
    let deleted = blocking(move || {
        let subject = st
            .store
            .read_small_blob(&hex, MAX_MANIFEST)
            .ok()
            .and_then(|b| manifest_refs(&b, None).ok())
            .and_then(|r| r.subject);
        st.store.delete_manifest(&name, &hex, subject.as_deref())
    })
    .await?;
    if !deleted {
        return Err(manifest_unknown(reference_text));
    }
    Ok(respond(StatusCode::ACCEPTED, &[]))
}

async fn get_blob(
    state: &Arc<State>,
    req: &Request<Incoming>,
    name: String,
    digest: &str,
    head: bool,
) -> Result<Response<Body>> {
    let hex = digest_hex(digest)?;
    let st = state.clone();
    let h = hex.clone();
    let size = blocking(move || st.store.linked_blob_size(&name, &h))
        .await?
        .ok_or_else(|| blob_unknown(digest))?;
    let (status, start, end) = match header(req, RANGE).map(|v| names::parse_range(v, size)) {
        Some(RangeAnswer::Part(s, e)) => (StatusCode::PARTIAL_CONTENT, s, e),
        Some(RangeAnswer::Unsatisfiable) => {
            return Ok(respond(
                StatusCode::RANGE_NOT_SATISFIABLE,
                &[("Content-Range", format!("bytes */{size}"))],
            ))
        }
        _ => (StatusCode::OK, 0, size.saturating_sub(1)),
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut headers = vec![
        ("Content-Type", "application/octet-stream".to_string()),
        ("Docker-Content-Digest", format!("sha256:{hex}")),
        ("Content-Length", len.to_string()),
        ("Accept-Ranges", "bytes".to_string()),
        ("ETag", format!("\"sha256:{hex}\"")),
    ];
    if status == StatusCode::PARTIAL_CONTENT {
        headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
    }
    let mut resp = respond(status, &headers);
    if !head && len > 0 {
        let path = state.store.blob_path(&hex);
        let file = blocking(move || {
            let mut f = std::fs::File::open(&path).map_err(storage::at(&path))?;
            f.seek(SeekFrom::Start(start)).map_err(storage::at(&path))?;
            Ok(f)
        })
        .await?;
        *resp.body_mut() = file_body(file, len);
    }
    Ok(resp)
}

type ChunkRead = tokio::task::JoinHandle<io::Result<(std::fs::File, Vec<u8>)>>;

fn read_chunk(mut file: std::fs::File, n: u64) -> ChunkRead {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; n as usize];
        file.read_exact(&mut buf)?;
        Ok((file, buf))
    })
}

/// `len` bytes of `file` from its position, read a chunk ahead of what is being sent. No
/// thread is held while the client is slow: each read is one blocking task.
fn file_body(file: std::fs::File, len: u64) -> Body {
    let first = CHUNK.min(len);
    let state = Some((read_chunk(file, first), len - first));
    let stream = futures_util::stream::unfold(state, |state| async move {
        let (pending, remaining) = state?;
        let read = match pending.await {
            Ok(r) => r,
            Err(e) => Err(io::Error::other(e)),
        };
        match read {
            Ok((file, buf)) => {
                let next = (remaining > 0).then(|| {
                    let n = CHUNK.min(remaining);
                    (read_chunk(file, n), remaining - n)
                });
                Some((Ok(Frame::data(Bytes::from(buf))), next))
            }
            Err(e) => {
                tracing::error!("reading a blob: {e}");
                Some((Err(e), None))
            }
        }
    });
    StreamBody::new(stream).boxed()
}

async fn delete_blob(state: &Arc<State>, name: String, digest: &str) -> Result<Response<Body>> {
    let hex = digest_hex(digest)?;
    let st = state.clone();
    if !blocking(move || st.store.unlink_blob(&name, &hex)).await? {
        return Err(blob_unknown(digest));
    }
    Ok(respond(StatusCode::ACCEPTED, &[]))
}

fn upload_headers(name: &str, id: &str, size: u64) -> Vec<(&'static str, String)> {
    vec![
        ("Location", format!("/v2/{name}/blobs/uploads/{id}")),
        ("Range", format!("0-{}", size.max(1) - 1)),
        ("Docker-Upload-UUID", id.to_string()),
    ]
}

async fn start_upload(
    state: &Arc<State>,
    req: Request<Incoming>,
    name: String,
) -> Result<Response<Body>> {
    let q = query(&req);
    if let (Some(mount), Some(from)) = (q.get("mount"), q.get("from")) {
        let hex = digest_hex(mount)?;
        // With tokens, a mount from a repository the client may not pull is an upload.
        let may_read_from = req
            .extensions()
            .get::<Claims>()
            .is_none_or(|c| c.allows(&Resource::Repository(from.clone()), Actions::PULL));
        if names::valid_name(from) && may_read_from {
            let st = state.clone();
            let (n, f, h) = (name.clone(), from.clone(), hex.clone());
            let mounted = blocking(move || {
                if st.store.linked_blob_size(&f, &h)?.is_none() {
                    return Ok(false);
                }
                st.store.link_blob(&n, &h)?;
                Ok(true)
            })
            .await?;
            if mounted {
                return Ok(respond(
                    StatusCode::CREATED,
                    &[
                        ("Location", format!("/v2/{name}/blobs/sha256:{hex}")),
                        ("Docker-Content-Digest", format!("sha256:{hex}")),
                    ],
                ));
            }
        }
    }
    let digest = q.get("digest").cloned();
    let hex = digest.as_deref().map(digest_hex).transpose()?;
    let st = state.clone();
    let n = name.clone();
    let id = blocking(move || st.store.new_upload(&n)).await?;
    match hex {
        None => Ok(respond(
            StatusCode::ACCEPTED,
            &upload_headers(&name, &id, 0),
        )),
        Some(hex) => {
            let lock = state.upload_lock(&id);
            let mut guard = lock.lock().await;
            let result = async {
                append(state, &id, 0, &mut guard, req.into_body()).await?;
                finish(state, &id, &name, &hex, &mut guard).await
            }
            .await;
            drop(guard);
            state.forget_upload(&id);
            if result.is_err() {
                let st = state.clone();
                let _ = blocking(move || st.store.cancel_upload(&id)).await;
            }
            result
        }
    }
}

async fn upload(
    state: &Arc<State>,
    req: Request<Incoming>,
    method: Method,
    name: String,
    id: String,
) -> Result<Response<Body>> {
    if !names::valid_upload_id(&id) {
        return Err(upload_unknown());
    }
    let lock = state.upload_lock(&id);
    let mut guard = lock.lock().await;
    let st = state.clone();
    let i = id.clone();
    let size = match blocking(move || st.store.upload(&i)).await? {
        Some((n, size)) if n == name => size,
        // Asked under another repository's name: the upload stays as it is, and so does
        // its lock (forgetting it here let a second lock work on the same file).
        Some(_) => return Err(upload_unknown()),
        None => {
            drop(guard);
            state.forget_upload(&id);
            return Err(upload_unknown());
        }
    };
    match method {
        Method::GET => Ok(respond(
            StatusCode::NO_CONTENT,
            &upload_headers(&name, &id, size),
        )),
        Method::DELETE => {
            let st = state.clone();
            let i = id.clone();
            blocking(move || st.store.cancel_upload(&i)).await?;
            drop(guard);
            state.forget_upload(&id);
            Ok(respond(StatusCode::NO_CONTENT, &[]))
        }
        Method::PATCH => {
            let range = content_range(&req, size)?;
            let new_size = append(state, &id, size, &mut guard, req.into_body()).await?;
            if let Some((s, e)) = range {
                if Some(new_size) != e.checked_add(1) {
                    truncate(state, &id, s, &mut guard).await?;
                    return Err(body_error("chunk length does not match Content-Range"));
                }
            }
            Ok(respond(
                StatusCode::ACCEPTED,
                &upload_headers(&name, &id, new_size),
            ))
        }
        Method::PUT => {
            let q = query(&req);
            let digest = q.get("digest").ok_or_else(|| {
                err(
                    StatusCode::BAD_REQUEST,
                    "DIGEST_INVALID",
                    "digest parameter missing",
                )
            })?;
            let hex = digest_hex(digest)?;
            let range = content_range(&req, size)?;
            let new_size = append(state, &id, size, &mut guard, req.into_body()).await?;
            if let Some((s, e)) = range {
                if Some(new_size) != e.checked_add(1) {
                    truncate(state, &id, s, &mut guard).await?;
                    return Err(body_error("chunk length does not match Content-Range"));
                }
            }
            let r = finish(state, &id, &name, &hex, &mut guard).await;
            drop(guard);
            state.forget_upload(&id);
            r
        }
        _ => Err(unsupported("method not allowed on an upload")),
    }
}

/// A chunk's `Content-Range`, which must continue the upload exactly (else 416).
fn content_range(req: &Request<Incoming>, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(v) = header(req, hyper::header::CONTENT_RANGE) else {
        return Ok(None);
    };
    match names::parse_content_range(v) {
        Some((s, e)) if s == size => Ok(Some((s, e))),
        _ => Err(err(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("Content-Range must start at {size}, the upload's size"),
        )),
    }
}

async fn truncate(
    state: &Arc<State>,
    id: &str,
    len: u64,
    guard: &mut Option<UploadHash>,
) -> Result<()> {
    *guard = None;
    let path = state.store.upload_data(id);
    blocking(move || {
        let f = storage::open_append(&path)?;
        f.set_len(len).map_err(storage::at(&path))
    })
    .await
}

/// Appends a request body to an upload's data, hashing as it goes when the hash so far is
/// known; returns the new size. The body is written by a blocking task fed chunk by chunk,
/// never held whole.
async fn append(
    state: &Arc<State>,
    id: &str,
    size: u64,
    guard: &mut Option<UploadHash>,
    mut body: Incoming,
) -> Result<u64> {
    let mut hash = match guard.take() {
        Some(h) if h.len == size => Some(h),
        _ if size == 0 => Some(UploadHash {
            hasher: Sha256::new(),
            len: 0,
        }),
        _ => None,
    };
    let path = state.store.upload_data(id);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(32);
    let writer = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut file = storage::open_append(&path)?;
        let mut written = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk).map_err(storage::at(&path))?;
            if let Some(h) = hash.as_mut() {
                h.hasher.update(&chunk);
                h.len += chunk.len() as u64;
            }
            written += chunk.len() as u64;
        }
        Ok::<_, io::Error>((hash, written))
    });
    let mut failure = None;
    loop {
        match tokio::time::timeout(BODY_IDLE, body.frame()).await {
            Err(_) => {
                failure = Some(body_error("request body timed out"));
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                failure = Some(body_error(&format!("reading request body: {e}")));
                break;
            }
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    drop(tx);
    let written = match writer.await {
        Ok(Ok((hash, written))) => {
            *guard = hash;
            written
        }
        Ok(Err(e)) => return Err(e.into()),
        Err(e) => return Err(io::Error::other(format!("upload writer: {e}")).into()),
    };
    match failure {
        // What arrived stays: the client may ask the upload's status and resume.
        Some(f) => {
            *guard = None;
            Err(f)
        }
        None => Ok(size + written),
    }
}

/// Checks the finished upload's digest (the running hash, or the data read again) and
/// publishes it; a mismatch removes the upload and publishes nothing.
async fn finish(
    state: &Arc<State>,
    id: &str,
    name: &str,
    hex: &str,
    guard: &mut Option<UploadHash>,
) -> Result<Response<Body>> {
    let path = state.store.upload_data(id);
    let running = guard.take();
    let st = state.clone();
    let (i, n, h) = (id.to_string(), name.to_string(), hex.to_string());
    let matched = blocking(move || {
        let file = std::fs::File::open(&path).map_err(storage::at(&path))?;
        let len = file.metadata().map_err(storage::at(&path))?.len();
        let computed = match running {
            Some(r) if r.len == len => format!("{:x}", r.hasher.finalize()),
            _ => {
                let mut hasher = Sha256::new();
                let mut f = &file;
                let mut buf = vec![0u8; CHUNK as usize];
                loop {
                    let k = f.read(&mut buf).map_err(storage::at(&path))?;
                    if k == 0 {
                        break;
                    }
                    hasher.update(&buf[..k]);
                }
                format!("{:x}", hasher.finalize())
            }
        };
        if computed != h {
            st.store.cancel_upload(&i)?;
            return Ok(false);
        }
        file.sync_all().map_err(storage::at(&path))?;
        st.store.publish_upload(&i, &n, &h)?;
        Ok(true)
    })
    .await?;
    if !matched {
        return Err(err(
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
            "provided digest did not match uploaded content",
        )
        .detail(json!({ "digest": format!("sha256:{hex}") })));
    }
    Ok(respond(
        StatusCode::CREATED,
        &[
            ("Location", format!("/v2/{name}/blobs/sha256:{hex}")),
            ("Docker-Content-Digest", format!("sha256:{hex}")),
        ],
    ))
}

async fn referrers(
    state: &Arc<State>,
    req: &Request<Incoming>,
    name: String,
    digest: &str,
) -> Result<Response<Body>> {
    let subject = digest_hex(digest)?;
    let q = query(req);
    let filter = q.get("artifactType").cloned();
    let st = state.clone();
    let f = filter.clone();
    let manifests = blocking(move || {
        let mut out = Vec::new();
        for hex in st.store.referrers(&name, &subject)? {
            if !names::is_lower_hex(&hex) {
                continue;
            }
            let Some(media_type) = st.store.manifest_media_type(&name, &hex)? else {
                continue;
            };
            let Ok(bytes) = st.store.read_small_blob(&hex, MAX_MANIFEST) else {
                continue;
            };
            let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                continue;
            };
            // The spec: artifactType, else the config's media type.
            let artifact_type = v
                .get("artifactType")
                .or_else(|| v.pointer("/config/mediaType"))
                .and_then(Value::as_str)
                .map(String::from);
            if f.is_some() && f != artifact_type {
                continue;
            }
            let mut d = json!({
                "mediaType": media_type,
                "digest": format!("sha256:{hex}"),
                "size": bytes.len(),
            });
            if let Some(a) = artifact_type {
                d["artifactType"] = json!(a);
            }
            if let Some(a) = v.get("annotations") {
                d["annotations"] = a.clone();
            }
            out.push(d);
        }
        Ok(out)
    })
    .await?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": manifests,
    });
    let mut r = json_response(StatusCode::OK, &index);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    if filter.is_some() {
        r.headers_mut().insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_remembered_password_needs_no_turn_and_a_busy_turn_is_a_429() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("pw", 4).unwrap();
        let htpasswd = Htpasswd::parse(&format!("keeper:{hash}\n")).unwrap();
        let state = Arc::new(State::new(
            Store::open(dir.path()).unwrap(),
            Auth::Basic(htpasswd),
            false,
            false,
        ));
        assert!(verify_password(&state, "keeper".into(), "pw".into())
            .await
            .unwrap());
        // Every turn taken (a flood of wrong passwords): the remembered one still passes.
        let turns = state.bcrypt_turn.available_permits() as u32;
        let _held = state.bcrypt_turn.acquire_many(turns).await.unwrap();
        assert!(verify_password(&state, "keeper".into(), "pw".into())
            .await
            .unwrap());
        let started = std::time::Instant::now();
        let refused = verify_password(&state, "keeper".into(), "other".into()).await;
        assert_eq!(
            refused.err().map(|e| e.status),
            Some(StatusCode::TOO_MANY_REQUESTS)
        );
        assert!(started.elapsed() >= BCRYPT_WAIT);
    }

    #[test]
    fn manifest_refs_lists_config_layers_and_subject() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let m = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "x", "digest": d('a'), "size": 1},
            "layers": [{"mediaType": "y", "digest": d('b'), "size": 2}],
            "subject": {"mediaType": "z", "digest": d('c'), "size": 3},
        });
        let r = manifest_refs(m.to_string().as_bytes(), None).unwrap();
        assert_eq!(r.blobs, vec![("a".repeat(64), 1), ("b".repeat(64), 2)]);
        assert_eq!(r.subject, Some("c".repeat(64)));
        let i = json!({"schemaVersion": 2, "manifests": [{"digest": d('e'), "size": 9}]});
        let r = manifest_refs(i.to_string().as_bytes(), Some(OCI_INDEX)).unwrap();
        assert_eq!(r.manifests, vec!["e".repeat(64)]);
        assert_eq!(r.media_type, OCI_INDEX);
    }

    #[test]
    fn manifest_refs_refuses_what_it_cannot_check() {
        let bad = [
            "not json".to_string(),
            "[]".to_string(),
            json!({"schemaVersion": 1, "mediaType": OCI_INDEX, "manifests": []}).to_string(),
            json!({"schemaVersion": 2, "manifests": []}).to_string(),
            json!({"schemaVersion": 2, "mediaType": "text/plain", "manifests": []}).to_string(),
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
                   "manifests": [{"digest": "sha256:../x", "size": 1}]})
            .to_string(),
            json!({"schemaVersion": 2, "mediaType": MANIFEST_TYPES[2], "layers": []}).to_string(),
        ];
        for b in bad {
            assert!(manifest_refs(b.as_bytes(), None).is_err(), "{b}");
        }
        let mismatch = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []});
        assert!(manifest_refs(mismatch.to_string().as_bytes(), Some(MANIFEST_TYPES[1])).is_err());
    }

    #[test]
    fn pagination_follows_last_and_n() {
        let items: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        let q = |s: &str| -> HashMap<String, String> {
            url::form_urlencoded::parse(s.as_bytes())
                .into_owned()
                .collect()
        };
        assert_eq!(
            paginate(items.clone(), &q("n=1")).unwrap(),
            (vec!["a".into()], Some(1))
        );
        assert_eq!(
            paginate(items.clone(), &q("n=1&last=b")).unwrap(),
            (vec!["c".into()], None)
        );
        assert_eq!(paginate(items.clone(), &q("")).unwrap().0.len(), 3);
        assert!(paginate(items, &q("n=x")).is_err());
    }
}
