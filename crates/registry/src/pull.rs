//! `docker pull`: the manifest (an index resolved to the wanted platform), the config,
//! then every layer streamed once (download, digest check, decompression, unpacking) by
//! up to [`CONCURRENT_LAYERS`] at a time, into the image store's ingest path; the image
//! is made only when every digest matched.
//!
//! A layer's download that breaks off is resumed where it stopped (`Range`), with
//! backoff, up to [`ATTEMPTS`] times: what arrived is never fetched again.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_image::reference::Reference;
use berth_image::{chain_ids, ImageConfig, ImageStore, LayerIngest, StagedLayer};
use bytes::Bytes;
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, RANGE};
use hyper::{HeaderMap, Method, StatusCode};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::client::{AuthConfig, Registry, RegistryError, Session};
use crate::manifest::{self, Descriptor, Manifest, Platform};
use crate::transport;

/// Layers downloaded at once (Docker's `max-concurrent-downloads` default).
pub const CONCURRENT_LAYERS: usize = 3;
/// Tries of one layer's download (the first and the resumptions).
pub const ATTEMPTS: u32 = 5;

/// One line of Docker's JSON progress stream.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Message {
    pub status: String,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<Detail>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `{"Tag":..,"Digest":..,"Size":..}` at the end of a push.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// `progressDetail`: `{}` or `{"current":..,"total":..}`.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Detail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

impl Message {
    pub(crate) fn plain(status: impl Into<String>) -> Message {
        Message {
            status: status.into(),
            progress_detail: None,
            progress: None,
            id: None,
            aux: None,
        }
    }

    pub(crate) fn layer(id: &str, status: &str) -> Message {
        Message {
            status: status.to_string(),
            progress_detail: Some(Detail::default()),
            progress: None,
            id: Some(id.to_string()),
            aux: None,
        }
    }

    pub(crate) fn bar(id: &str, status: &str, current: u64, total: u64) -> Message {
        Message {
            status: status.to_string(),
            progress_detail: Some(Detail {
                current: Some(current),
                total: Some(total),
            }),
            progress: Some(bar(current, total)),
            id: Some(id.to_string()),
            aux: None,
        }
    }
}

/// Docker's text bar: `[=====>        ]  1.2MB/4.5MB`.
fn bar(current: u64, total: u64) -> String {
    let width = 50u64;
    let filled = (current.min(total) * width).checked_div(total).unwrap_or(0) as usize;
    let mut s = String::from("[");
    s.push_str(&"=".repeat(filled));
    if filled < width as usize {
        s.push('>');
        s.push_str(&" ".repeat(width as usize - filled - 1));
    }
    s.push(']');
    format!("{s} {}/{}", human(current), human(total))
}

/// Go's `units.HumanSize`: decimal units, 4 significant digits (`%.4g`): `1.234MB`.
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let int_digits = if v < 1.0 {
        1
    } else {
        v.log10().floor() as usize + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{s}{}", units[i])
}

/// Where progress goes (berthd's response stream).
pub type Sink = Arc<dyn Fn(Message) + Send + Sync>;

/// What a pull is asked.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// `None`: the host's.
    pub platform: Option<Platform>,
    pub auth: AuthConfig,
}

/// What a pull made.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub id: String,
    /// `busybox:latest` (or `busybox@sha256:..` for a pull by digest).
    pub name: String,
    /// `sha256:` of the manifest (or index) the reference named.
    pub digest: String,
    /// The image was there already under this name.
    pub up_to_date: bool,
}

/// Why a pull failed: before anything was streamed (an API error status is still
/// possible), or during.
#[derive(Debug)]
pub struct PullError {
    pub message: String,
    /// Docker's status class: `NotFound` (404), `Unauthorized` (401), `InvalidArgument`
    /// (400), else a server error.
    pub kind: PullErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullErrorKind {
    NotFound,
    Unauthorized,
    InvalidArgument,
    Failed,
}

impl std::fmt::Display for PullError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

pub(crate) fn failed(message: impl Into<String>) -> PullError {
    PullError {
        message: message.into(),
        kind: PullErrorKind::Failed,
    }
}

/// Docker's wording of a registry error met while resolving `r`.
fn translate(e: RegistryError, r: &Reference) -> PullError {
    let tagged = shown(r);
    match &e {
        RegistryError::Registry { code, .. } if code == "MANIFEST_UNKNOWN" => PullError {
            message: format!("manifest for {tagged} not found: {e}"),
            kind: PullErrorKind::NotFound,
        },
        RegistryError::Registry { code, .. } if code == "NAME_UNKNOWN" => PullError {
            message: format!("repository {} not found: {e}", r.familiar_name()),
            kind: PullErrorKind::NotFound,
        },
        RegistryError::Registry { code, .. } if code == "DENIED" || code == "NOT_FOUND" => {
            PullError {
                message: format!(
                    "pull access denied for {}, repository does not exist or may require 'docker login': {e}",
                    r.familiar_name()
                ),
                kind: PullErrorKind::NotFound,
            }
        }
        RegistryError::Unauthorized(_) => PullError {
            message: e.to_string(),
            kind: PullErrorKind::Unauthorized,
        },
        RegistryError::Invalid(_) => PullError {
            message: e.to_string(),
            kind: PullErrorKind::InvalidArgument,
        },
        _ => failed(e.to_string()),
    }
}

/// `busybox:latest` or `busybox@sha256:...`.
fn shown(r: &Reference) -> String {
    match &r.digest {
        Some(d) => format!("{}@{d}", r.familiar_name()),
        None => r.familiar_tagged(),
    }
}

/// The manifest, index resolved, with its raw bytes.
struct Resolved {
    /// Digest the reference names (an index's, when it named one).
    digest: String,
    manifest: manifest::ImageManifest,
    /// The image manifest's own bytes.
    manifest_bytes: Vec<u8>,
    config_bytes: Vec<u8>,
}

/// Pulls `reference` into `store`. Progress goes to `sink` once the manifest is resolved;
/// a failure before that (an unknown tag, refused credentials) is returned with nothing
/// sent, so berthd can answer it with an error status, as Docker does.
pub async fn pull(
    registry: &Arc<Registry>,
    store: Arc<ImageStore>,
    reference: &str,
    opts: &PullOptions,
    sink: Sink,
    started: &(dyn Fn() + Send + Sync),
) -> Result<Pulled, PullError> {
    let r = berth_image::reference::parse(reference).map_err(|e| PullError {
        message: e.to_string(),
        kind: PullErrorKind::InvalidArgument,
    })?;
    let platform = opts.platform.clone().unwrap_or_else(Platform::host);
    // An image with one platform is checked against `--platform` when one was asked for;
    // else it runs wherever it can (Docker warns at run time).
    let strict = opts.platform.is_some();
    let endpoints = registry.endpoints(&r.domain, false).await.map_err(failed)?;
    let mut last = None;
    for endpoint in &endpoints {
        // A mirror gets no credentials: they are Docker Hub's.
        let auth = if endpoint.mirror {
            AuthConfig::default()
        } else {
            opts.auth.clone()
        };
        let session = match registry.session(endpoint, &r.path, &auth, "pull").await {
            Ok(s) => s,
            Err(e) if endpoint.mirror => {
                tracing::info!("mirror {} skipped: {e}", endpoint.base);
                continue;
            }
            Err(e) => return Err(translate(e, &r)),
        };
        match resolve(&session, &r, &platform, strict).await {
            Ok(resolved) => {
                started();
                return fetch(session, store, &r, resolved, &sink).await;
            }
            Err(e) if endpoint.mirror => {
                tracing::info!("mirror {} skipped: {e}", endpoint.base);
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| failed("no registry endpoint")))
}

/// GET of a manifest by tag or digest, checked against the digest it was asked by.
async fn get_manifest(
    session: &Session,
    r: &Reference,
    reference: &str,
) -> Result<(Vec<u8>, Option<String>, String), PullError> {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(manifest::ACCEPT));
    let response = session
        .send(
            Method::GET,
            session.url(&format!("manifests/{reference}")),
            headers,
            &transport::empty,
            true,
        )
        .await
        .map_err(|e| translate(e, r))?;
    if !response.status().is_success() {
        return Err(translate(crate::client::error_of(response).await, r));
    }
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(len) = response
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
    {
        if len > manifest::MAX_MANIFEST as u64 {
            return Err(invalid(format!(
                "manifest for {} is too large ({len} bytes, at most {})",
                shown(r),
                manifest::MAX_MANIFEST
            )));
        }
    }
    let mut body = response.into_body();
    let bytes = transport::read_limited(&mut body, manifest::MAX_MANIFEST)
        .await
        .map_err(|e| invalid(format!("manifest for {}: {e}", shown(r))))?;
    let digest = sha256(&bytes);
    if reference.starts_with("sha256:") && digest != reference {
        return Err(invalid(format!(
            "manifest for {}: digest mismatch: expected {reference}, got {digest}",
            shown(r)
        )));
    }
    Ok((bytes, content_type, digest))
}

pub(crate) fn invalid(message: String) -> PullError {
    PullError {
        message,
        kind: PullErrorKind::InvalidArgument,
    }
}

pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

async fn resolve(
    session: &Session,
    r: &Reference,
    platform: &Platform,
    strict: bool,
) -> Result<Resolved, PullError> {
    let first = r
        .digest
        .clone()
        .or_else(|| r.tag.clone())
        .unwrap_or_else(|| "latest".to_string());
    let (bytes, ct, digest) = get_manifest(session, r, &first).await?;
    let bad = |e: String| invalid(format!("manifest for {}: {e}", shown(r)));
    let (manifest, manifest_bytes, from_index) =
        match manifest::parse(&bytes, ct.as_deref()).map_err(bad)? {
            Manifest::Image(m) => (m, bytes, false),
            Manifest::Index(index) => {
                let entry = manifest::select(&index, platform).map_err(|e| PullError {
                    message: e,
                    kind: PullErrorKind::NotFound,
                })?;
                // By a digest it is checked against (never by a tag an index could name).
                check_digest_form(&entry.digest).map_err(bad)?;
                let (bytes, ct, _) = get_manifest(session, r, &entry.digest).await?;
                match manifest::parse(&bytes, ct.as_deref()).map_err(bad)? {
                    Manifest::Image(m) => (m, bytes, true),
                    Manifest::Index(_) => {
                        return Err(bad("an index names another index for the platform".into()))
                    }
                }
            }
        };
    for l in &manifest.layers {
        if !manifest::layer_supported(&l.media_type) {
            return Err(bad(format!(
                "unsupported layer media type {}",
                l.media_type
            )));
        }
        if !l.urls.is_empty() {
            return Err(bad("foreign layers (with URLs) are not supported".into()));
        }
        check_digest_form(&l.digest).map_err(bad)?;
    }
    check_digest_form(&manifest.config.digest).map_err(bad)?;
    if manifest.config.size > manifest::MAX_CONFIG as u64 {
        return Err(bad(format!(
            "the image config is too large ({} bytes)",
            manifest.config.size
        )));
    }
    let config_bytes = get_small_blob(session, r, &manifest.config).await?;
    if strict && !from_index {
        let actual: Platform = serde_json::from_slice(&config_bytes)
            .map_err(|e| invalid(format!("config of {}: {e}", shown(r))))?;
        if !actual.serves(platform) {
            return Err(PullError {
                message: format!(
                    "image with reference {} was found but does not match the specified platform: wanted {platform}, actual: {actual}",
                    shown(r)
                ),
                kind: PullErrorKind::NotFound,
            });
        }
    }
    Ok(Resolved {
        digest,
        manifest,
        manifest_bytes,
        config_bytes,
    })
}

fn check_digest_form(d: &str) -> Result<(), String> {
    match d.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) => {
            Ok(())
        }
        _ => Err(format!("unsupported digest {d:?}")),
    }
}

/// A config blob, whole, checked.
async fn get_small_blob(
    session: &Session,
    r: &Reference,
    d: &Descriptor,
) -> Result<Vec<u8>, PullError> {
    let response = session
        .send(
            Method::GET,
            session.url(&format!("blobs/{}", d.digest)),
            HeaderMap::new(),
            &transport::empty,
            true,
        )
        .await
        .map_err(|e| translate(e, r))?;
    if !response.status().is_success() {
        return Err(translate(crate::client::error_of(response).await, r));
    }
    let mut body = response.into_body();
    let bytes = transport::read_limited(&mut body, manifest::MAX_CONFIG)
        .await
        .map_err(|e| failed(format!("config of {}: {e}", shown(r))))?;
    let actual = sha256(&bytes);
    if actual != d.digest {
        return Err(invalid(format!(
            "config of {}: digest mismatch: expected {}, got {actual}",
            shown(r),
            d.digest
        )));
    }
    Ok(bytes)
}

/// The short id Docker shows for a layer.
pub(crate) fn layer_id(digest: &str) -> String {
    let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
    hex[..hex.len().min(12)].to_string()
}

async fn fetch(
    session: Session,
    store: Arc<ImageStore>,
    r: &Reference,
    resolved: Resolved,
    sink: &Sink,
) -> Result<Pulled, PullError> {
    let tag_or_digest = r
        .digest
        .clone()
        .unwrap_or_else(|| r.tag.clone().unwrap_or_else(|| "latest".to_string()));
    sink(Message {
        id: Some(tag_or_digest),
        ..Message::plain(format!("Pulling from {}", r.path))
    });
    let config: ImageConfig = serde_json::from_slice(&resolved.config_bytes)
        .map_err(|e| invalid(format!("config of {}: {e}", shown(r))))?;
    let layers = resolved.manifest.layers.clone();
    store
        .check_stackable(layers.len())
        .map_err(|e| invalid(format!("{}: {e}", shown(r))))?;
    if config.rootfs.diff_ids.len() != layers.len() {
        return Err(invalid(format!(
            "config of {} lists {} layers, its manifest {}",
            shown(r),
            config.rootfs.diff_ids.len(),
            layers.len()
        )));
    }
    let name = shown(r);
    let repo_digest = format!("{}@{}", r.familiar_name(), resolved.digest);
    let tags: Vec<String> = if r.digest.is_none() {
        vec![name.clone()]
    } else {
        vec![]
    };
    let was = store.resolve(&name).ok().map(|i| i.id);
    let work = Work {
        session: Arc::new(session),
        layers,
        diff_ids: config.rootfs.diff_ids.clone(),
        chains: chain_ids(&config.rootfs.diff_ids),
        sink: sink.clone(),
        handle: tokio::runtime::Handle::current(),
        stop: Arc::new(Stop::default()),
    };
    // When this pull is dropped (its client left), every download stops and the
    // ingest is rolled back.
    let _stop = StopOnDrop(work.stop.clone());
    let (id, digest) = tokio::task::spawn_blocking(move || {
        let mut ingest = store.begin_ingest().map_err(|e| failed(e.to_string()))?;
        let staged = work.stage_all(&mut ingest)?;
        let id = ingest
            .commit(
                &resolved.config_bytes,
                staged,
                Some(&resolved.manifest_bytes),
                &tags,
                std::slice::from_ref(&repo_digest),
            )
            .map_err(|e| failed(e.to_string()))?;
        Ok::<_, PullError>((id, resolved.digest))
    })
    .await
    .map_err(|e| failed(format!("pull task: {e}")))??;
    sink(Message::plain(format!("Digest: {digest}")));
    let up_to_date = was.as_deref() == Some(id.as_str());
    let status = if up_to_date {
        format!("Status: Image is up to date for {name}")
    } else {
        format!("Status: Downloaded newer image for {name}")
    };
    sink(Message::plain(status));
    Ok(Pulled {
        id,
        name,
        digest,
        up_to_date,
    })
}

/// A pull's stop: set once (a layer failed, or the pull was dropped), seen by the
/// blocking threads between layers and awaited by the downloads.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    notify: tokio::sync::Notify,
}

impl Stop {
    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Returns once the stop is set.
    async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }
}

/// Sets a stop when dropped.
struct StopOnDrop(Arc<Stop>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// The layers of one pull.
struct Work {
    session: Arc<Session>,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
    chains: Vec<String>,
    sink: Sink,
    handle: tokio::runtime::Handle,
    /// Set at the first failure: every other download ends.
    stop: Arc<Stop>,
}

impl Work {
    /// Every layer staged (or found present), in order; up to [`CONCURRENT_LAYERS`]
    /// at once.
    fn stage_all(&self, ingest: &mut LayerIngest<'_>) -> Result<Vec<StagedLayer>, PullError> {
        let n = self.layers.len();
        let mut slots: Vec<Option<StagedLayer>> = (0..n).map(|_| None).collect();
        let mut todo = Vec::new();
        for (i, d) in self.layers.iter().enumerate() {
            let id = layer_id(&d.digest);
            match ingest.present(&self.chains[i], &d.digest, &self.diff_ids[i], &d.media_type) {
                Some(s) => {
                    (self.sink)(Message::layer(&id, "Already exists"));
                    slots[i] = Some(s);
                }
                None => {
                    (self.sink)(Message::layer(&id, "Pulling fs layer"));
                    todo.push(i);
                }
            }
        }
        if todo.len() == 1 {
            ingest.one_at_a_time();
        }
        let ingest = &*ingest;
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<(usize, StagedLayer)>> = Mutex::new(Vec::new());
        let first_error: Mutex<Option<PullError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..todo.len().min(CONCURRENT_LAYERS) {
                s.spawn(|| loop {
                    let k = next.fetch_add(1, Ordering::SeqCst);
                    if k >= todo.len() || self.stop.is_set() {
                        break;
                    }
                    let i = todo[k];
                    match self.stage_one(ingest, i) {
                        Ok(staged) => results
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((i, staged)),
                        Err(e) => {
                            self.stop.set();
                            first_error
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .get_or_insert(e);
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        for (i, staged) in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
            slots[i] = Some(staged);
        }
        // Stopped from outside (the client left) between two layers: no layer failed,
        // some were never taken.
        slots
            .into_iter()
            .map(|s| s.ok_or_else(|| failed("the pull was stopped")))
            .collect()
    }

    fn stage_one(&self, ingest: &LayerIngest<'_>, i: usize) -> Result<StagedLayer, PullError> {
        let d = &self.layers[i];
        let id = layer_id(&d.digest);
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        self.handle.spawn(download(
            self.session.clone(),
            d.clone(),
            tx,
            self.sink.clone(),
            self.stop.clone(),
        ));
        let mut reader = ChannelReader {
            rx,
            current: Bytes::new(),
            error: None,
        };
        let staged = ingest
            .layer(
                &mut reader,
                &d.digest,
                &self.diff_ids[i],
                &self.chains[i],
                &d.media_type,
            )
            .map_err(|e| {
                // The download's own error, when it is why the stream ended.
                match reader.error_text() {
                    Some(t) => failed(t),
                    None => failed(e.to_string()),
                }
            })?;
        (self.sink)(Message::bar(
            &id,
            "Extracting",
            staged.blob_size,
            staged.blob_size,
        ));
        (self.sink)(Message::layer(&id, "Pull complete"));
        Ok(staged)
    }
}

/// A download's pieces, read on a blocking thread.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, String>>,
    current: Bytes,
    /// A failed download sends its error as the stream's last item.
    error: Option<String>,
}

impl ChannelReader {
    fn error_text(&mut self) -> Option<String> {
        self.error.take()
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    self.error = Some(e.clone());
                    return Err(io::Error::other(e));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Streams blob `d` into `tx`, resuming with `Range` where a broken download stopped.
async fn download(
    session: Arc<Session>,
    d: Descriptor,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, String>>,
    sink: Sink,
    stop: Arc<Stop>,
) {
    let id = layer_id(&d.digest);
    let mut offset = 0u64;
    let mut attempt = 0u32;
    let mut chunk_count = 0u64;
    let mut last_report = Instant::now() - Duration::from_secs(1);
    let url = session.url(&format!("blobs/{}", d.digest));
    loop {
        if stop.is_set() {
            let _ = tx.send(Err("stopped: another layer failed".into())).await;
            return;
        }
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={offset}-")).expect("a range is ASCII"),
            );
        }
        let broke = match session
            .send(Method::GET, url.clone(), headers, &transport::empty, true)
            .await
        {
            Err(e @ RegistryError::Transport(_)) => e.to_string(),
            Err(e) => {
                let _ = tx.send(Err(e.to_string())).await;
                return;
            }
            Ok(response) => {
                let status = response.status();
                let mut skip = 0u64;
                if status == StatusCode::PARTIAL_CONTENT && offset > 0 {
                    // The range must start where the bytes stopped.
                    let start = response
                        .headers()
                        .get(hyper::header::CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("bytes "))
                        .and_then(|v| v.split('-').next())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    if start != Some(offset) {
                        let _ = tx
                            .send(Err(format!(
                                "GET blob {}: asked from byte {offset}, the registry sent another range",
                                d.digest
                            )))
                            .await;
                        return;
                    }
                }
                if status == StatusCode::OK && offset > 0 {
                    // The server ignored the range: skip what arrived before.
                    skip = offset;
                } else if !(status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT) {
                    let e = crate::client::error_of(response).await;
                    let _ = tx.send(Err(format!("GET blob {}: {e}", d.digest))).await;
                    return;
                }
                let mut body = response.into_body();
                let mut broke = None;
                loop {
                    if stop.is_set() {
                        let _ = tx.send(Err("stopped".into())).await;
                        return;
                    }
                    let next = tokio::select! {
                        n = transport::next_chunk(&mut body) => n,
                        () = stop.wait() => {
                            let _ = tx.send(Err("stopped".into())).await;
                            return;
                        }
                    };
                    match next {
                        Ok(Some(mut chunk)) => {
                            if skip > 0 {
                                let k = skip.min(chunk.len() as u64) as usize;
                                let _ = chunk.split_to(k);
                                skip -= k as u64;
                                if chunk.is_empty() {
                                    continue;
                                }
                            }
                            offset += chunk.len() as u64;
                            if offset > d.size {
                                let _ = tx
                                    .send(Err(format!(
                                        "blob {} is larger than its manifest says ({} bytes)",
                                        d.digest, d.size
                                    )))
                                    .await;
                                return;
                            }
                            if tx.send(Ok(chunk)).await.is_err() {
                                return; // the reader gave up
                            }
                            // Progress earns the tries back, a little at a time: a server
                            // that sends a byte and breaks off runs out of them.
                            if chunk_count % 64 == 63 {
                                attempt = attempt.saturating_sub(1);
                            }
                            chunk_count += 1;
                            if last_report.elapsed() >= Duration::from_millis(100) {
                                last_report = Instant::now();
                                sink(Message::bar(&id, "Downloading", offset, d.size));
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            broke = Some(e);
                            break;
                        }
                    }
                }
                match broke {
                    None if offset >= d.size => {
                        sink(Message::layer(&id, "Verifying Checksum"));
                        sink(Message::layer(&id, "Download complete"));
                        return; // dropping tx ends the stream
                    }
                    None => format!("the connection closed at byte {offset} of {}", d.size),
                    Some(e) => e,
                }
            }
        };
        attempt += 1;
        if attempt >= ATTEMPTS {
            let _ = tx
                .send(Err(format!("GET blob {}: {broke}", d.digest)))
                .await;
            return;
        }
        tracing::info!(blob = %d.digest, offset, attempt, "download broke off ({broke}); resuming");
        let backoff = Duration::from_millis(100 << attempt.min(6));
        tokio::time::sleep(backoff).await;
    }
}

/// The most tags `pull --all-tags` takes from a repository.
const MAX_TAGS: usize = 10_000;
/// The most pages of tags it reads.
const MAX_TAG_PAGES: usize = 100;

/// The tags of `repository` (a name without tag or digest), every page of them, as
/// `pull --all-tags` pulls them.
pub async fn list_tags(
    registry: &Arc<Registry>,
    repository: &str,
    auth: &AuthConfig,
) -> Result<Vec<String>, PullError> {
    #[derive(serde::Deserialize)]
    struct Page {
        #[serde(default)]
        tags: Option<Vec<String>>,
    }
    let r = berth_image::reference::parse(repository).map_err(|e| PullError {
        message: e.to_string(),
        kind: PullErrorKind::InvalidArgument,
    })?;
    let endpoint = registry.endpoint(&r.domain).await.map_err(failed)?;
    let session = registry
        .session(&endpoint, &r.path, auth, "pull")
        .await
        .map_err(|e| translate(e, &r))?;
    let mut url = session.url("tags/list");
    url.query_pairs_mut().append_pair("n", "1000");
    let mut tags = Vec::new();
    let mut pages = 0;
    let next_is_some = |n: &Option<String>| n.is_some();
    loop {
        let response = session
            .send(
                Method::GET,
                url.clone(),
                HeaderMap::new(),
                &transport::empty,
                true,
            )
            .await
            .map_err(|e| translate(e, &r))?;
        if !response.status().is_success() {
            return Err(translate(crate::client::error_of(response).await, &r));
        }
        let next = response
            .headers()
            .get(hyper::header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (target, rel) = v.split_once(';')?;
                rel.contains("rel=\"next\"").then(|| {
                    target
                        .trim()
                        .trim_start_matches('<')
                        .trim_end_matches('>')
                        .to_string()
                })
            });
        let mut body = response.into_body();
        let bytes = transport::read_limited(&mut body, manifest::MAX_MANIFEST)
            .await
            .map_err(|e| failed(format!("tags of {}: {e}", r.familiar_name())))?;
        let page: Page = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("tags of {}: {e}", r.familiar_name())))?;
        let page = page.tags.unwrap_or_default();
        for t in &page {
            // A tag that is not one (`5000/x` would name another registry) is refused.
            let ok = berth_image::reference::parse(&format!("{repository}:{t}"))
                .is_ok_and(|p| p.tag.as_deref() == Some(t.as_str()) && p.path == r.path);
            if !ok {
                return Err(invalid(format!(
                    "the registry lists an invalid tag for {}: {t:?}",
                    r.familiar_name()
                )));
            }
        }
        let before = tags.len();
        tags.extend(page);
        pages += 1;
        if tags.len() == before && next_is_some(&next) || pages > MAX_TAG_PAGES {
            return Err(invalid(format!(
                "the registry's tag list of {} does not end",
                r.familiar_name()
            )));
        }
        if tags.len() > MAX_TAGS {
            return Err(invalid(format!(
                "{} has more than {MAX_TAGS} tags",
                r.familiar_name()
            )));
        }
        match next {
            Some(n) => {
                url = session.base().join(&n).map_err(|e| {
                    invalid(format!(
                        "tags of {}: next page {n:?}: {e}",
                        r.familiar_name()
                    ))
                })?;
            }
            None => break,
        }
    }
    tags.sort();
    tags.dedup();
    Ok(tags)
}
