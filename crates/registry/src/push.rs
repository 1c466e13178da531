//! `docker push`: every layer blob and the config the registry lacks (a `HEAD` first; a
//! blob the registry has in another repository of this image's is mounted from there),
//! uploaded whole in one `PUT` straight from the content store, up to
//! [`CONCURRENT_UPLOADS`] at a time; then the manifest. An image pulled unchanged is
//! pushed with the very manifest bytes it came with, so its digest is the same everywhere.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth_image::reference::Reference;
use berth_image::{ImageSource, ImageStore};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use hyper::{HeaderMap, Method, StatusCode};

use crate::client::{error_of, AuthConfig, Registry, RegistryError, Session};
use crate::manifest::{self, Manifest};
use crate::pull::{failed, invalid, layer_id, sha256, Message, PullError, PullErrorKind, Sink};
use crate::transport::{self, ReqBody};

/// Blobs uploaded at once (Docker's `max-concurrent-uploads` is 5; 3 keeps two cores
/// busy hashing on the server's side too).
pub const CONCURRENT_UPLOADS: usize = 3;
/// Tries of one blob's upload.
const ATTEMPTS: u32 = 3;

/// What went wrong: a push's errors have a pull's shape.
pub type PushError = PullError;

/// What a push sent.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub tag: String,
    pub digest: String,
    pub size: usize,
}

/// Docker's wording of a registry error met while pushing to `r`.
fn translate(e: RegistryError, r: &Reference) -> PushError {
    match &e {
        RegistryError::Registry { code, .. } if code == "DENIED" || code == "NAME_UNKNOWN" => {
            PullError {
                message: format!(
                    "push access denied for {}, repository does not exist or may require 'docker login': {e}",
                    r.familiar_name()
                ),
                kind: PullErrorKind::NotFound,
            }
        }
        RegistryError::Unauthorized(_) => PullError {
            message: e.to_string(),
            kind: PullErrorKind::Unauthorized,
        },
        _ => failed(e.to_string()),
    }
}

/// Pushes `name:tag` (a familiar name, `localhost:5000/x`) from `store`. Progress goes to
/// `sink` once the registry answered; an error before (no such image, refused
/// credentials) is returned with nothing sent.
pub async fn push(
    registry: &Arc<Registry>,
    store: Arc<ImageStore>,
    name: &str,
    tag: &str,
    auth: &AuthConfig,
    sink: Sink,
    started: &(dyn Fn() + Send + Sync),
) -> Result<Pushed, PushError> {
    let reference = format!("{name}:{tag}");
    let r = berth_image::reference::parse(&reference).map_err(|e| PullError {
        message: e.to_string(),
        kind: PullErrorKind::InvalidArgument,
    })?;
    let source = store.image_source(&reference).map_err(|_| PullError {
        message: format!("An image does not exist locally with the tag: {name}"),
        kind: PullErrorKind::NotFound,
    })?;
    let endpoint = registry.endpoint(&r.domain).await.map_err(failed)?;
    // Repositories of the same registry that hold this image's blobs: mount sources.
    let mounts: Vec<String> = source
        .repo_digests
        .iter()
        .filter_map(|rd| {
            let (n, _) = rd.split_once('@')?;
            let other = berth_image::reference::parse(n).ok()?;
            (other.domain == r.domain && other.path != r.path).then_some(other.path)
        })
        .collect();
    let mut scopes = vec![format!("repository:{}:pull,push", r.path)];
    scopes.extend(mounts.iter().map(|m| format!("repository:{m}:pull")));
    let session = registry
        .session_scoped(&endpoint, &r.path, auth, scopes)
        .await
        .map_err(|e| translate(e, &r))?;
    // Credentials are checked before anything is shown (Docker answers them as an error).
    session
        .head_blob(&source.id)
        .await
        .map_err(|e| translate(e, &r))?;
    started();
    sink(Message::plain(format!(
        "The push refers to repository [{}]",
        r.familiar_name()
    )));
    let session = Arc::new(session);
    let work = Arc::new(Upload {
        session: session.clone(),
        store: store.clone(),
        sink: sink.clone(),
        mounts,
    });
    // Layers top first, as Docker lists them; each blob once.
    let mut blobs: Vec<(String, u64, bool)> = Vec::new();
    for l in source.layers.iter().rev() {
        if !blobs.iter().any(|(b, _, _)| *b == l.blob) {
            blobs.push((l.blob.clone(), l.size, true));
        }
    }
    for (b, _, _) in &blobs {
        sink(Message::layer(&layer_id(b), "Preparing"));
    }
    blobs.push((source.id.clone(), source.config.len() as u64, false));
    let queue = Arc::new(Mutex::new(blobs.into_iter()));
    let first_error: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let mut tasks = Vec::new();
    for _ in 0..CONCURRENT_UPLOADS {
        let queue = queue.clone();
        let work = work.clone();
        let first_error = first_error.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                if first_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .is_some()
                {
                    return;
                }
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((blob, size, shown)) = next else {
                    return;
                };
                if let Err(e) = work.blob(&blob, size, shown).await {
                    first_error
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(e);
                    return;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some(e) = first_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(failed(e));
    }
    let (bytes, media_type) = manifest_of(&source)?;
    let digest = sha256(&bytes);
    let size = bytes.len();
    session
        .put_manifest(tag, bytes, &media_type)
        .await
        .map_err(|e| translate(e, &r))?;
    let _ = store.add_repo_digest(&source.id, &format!("{}@{digest}", r.familiar_name()));
    sink(Message::plain(format!(
        "{tag}: digest: {digest} size: {size}"
    )));
    sink(Message {
        aux: Some(serde_json::json!({"Tag": tag, "Digest": digest, "Size": size})),
        ..Message::plain("")
    });
    Ok(Pushed {
        tag: tag.to_string(),
        digest,
        size,
    })
}

/// The manifest to push: the one the image was pulled by when it still names exactly
/// these blobs, else an OCI image manifest of them.
fn manifest_of(source: &ImageSource) -> Result<(Vec<u8>, String), PushError> {
    if let Some(raw) = &source.manifest {
        if let Ok(Manifest::Image(m)) = manifest::parse(raw, None) {
            let same = m.config.digest == source.id
                && m.layers.len() == source.layers.len()
                && m.layers
                    .iter()
                    .zip(&source.layers)
                    .all(|(a, b)| a.digest == b.blob);
            if same {
                let media_type = m
                    .media_type
                    .clone()
                    .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string());
                return Ok((raw.clone(), media_type));
            }
        }
    }
    let layers: Vec<serde_json::Value> = source
        .layers
        .iter()
        .map(|l| {
            serde_json::json!({
                "mediaType": oci_layer_type(&l.media_type),
                "digest": l.blob,
                "size": l.size,
            })
        })
        .collect();
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": manifest::OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": source.id,
            "size": source.config.len(),
        },
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&m).map_err(|e| invalid(e.to_string()))?;
    Ok((bytes, manifest::OCI_MANIFEST.to_string()))
}

/// A stored layer's media type in OCI's names (Docker's gzip type is OCI's `+gzip`).
fn oci_layer_type(media_type: &str) -> String {
    match media_type {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
        | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip".to_string()
        }
        "application/vnd.docker.image.rootfs.diff.tar" => {
            "application/vnd.oci.image.layer.v1.tar".to_string()
        }
        other => other.to_string(),
    }
}

/// The blobs of one push.
struct Upload {
    session: Arc<Session>,
    store: Arc<ImageStore>,
    sink: Sink,
    mounts: Vec<String>,
}

impl Upload {
    /// One blob: there already, mounted, or uploaded (with retries).
    async fn blob(&self, digest: &str, size: u64, shown: bool) -> Result<(), String> {
        let id = layer_id(digest);
        let say = |status: &str| {
            if shown {
                (self.sink)(Message::layer(&id, status));
            }
        };
        if self
            .session
            .head_blob(digest)
            .await
            .map_err(|e| e.to_string())?
        {
            say("Layer already exists");
            return Ok(());
        }
        for from in &self.mounts {
            match self.session.mount_blob(digest, from).await {
                Ok(true) => {
                    say(&format!("Mounted from {from}"));
                    return Ok(());
                }
                Ok(false) => {}
                Err(e) => tracing::info!("mount of {digest} from {from}: {e}"),
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let file = self.store.open_blob(digest).map_err(|e| e.to_string())?;
            let sent = Arc::new(AtomicU64::new(0));
            let watcher = shown.then(|| {
                let sent = sent.clone();
                let sink = self.sink.clone();
                let id = id.clone();
                tokio::spawn(async move {
                    let mut shown = u64::MAX;
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let n = sent.load(Ordering::Relaxed);
                        if n != shown {
                            shown = n;
                            sink(Message::bar(&id, "Pushing", n, size));
                        }
                        if n >= size {
                            return;
                        }
                    }
                })
            });
            let result = self.session.upload_blob(digest, size, file, sent).await;
            if let Some(w) = watcher {
                w.abort();
            }
            match result {
                Ok(()) => {
                    say("Pushed");
                    return Ok(());
                }
                Err(RegistryError::Transport(e)) if attempt < ATTEMPTS => {
                    tracing::info!(blob = %digest, attempt, "upload broke off ({e}); again");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => return Err(format!("blob {digest}: {e}")),
            }
        }
    }
}

/// A file's content as a request body, in 256 KiB pieces, counted into `sent`.
fn file_body(file: std::fs::File, sent: Arc<AtomicU64>) -> ReqBody {
    let file = Arc::new(Mutex::new(file));
    let stream = futures_util::stream::unfold(file, move |file| {
        let sent = sent.clone();
        async move {
            let f = file.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; 256 << 10];
                let n = f.lock().unwrap_or_else(|e| e.into_inner()).read(&mut buf)?;
                buf.truncate(n);
                Ok::<_, std::io::Error>(buf)
            })
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
            match read {
                Ok(buf) if buf.is_empty() => None,
                Ok(buf) => {
                    sent.fetch_add(buf.len() as u64, Ordering::Relaxed);
                    Some((Ok(hyper::body::Frame::data(Bytes::from(buf))), file))
                }
                Err(e) => Some((Err(e), file)),
            }
        }
    });
    http_body_util::StreamBody::new(stream).boxed()
}

impl Session {
    /// Whether the registry has blob `digest` in this repository.
    pub async fn head_blob(&self, digest: &str) -> Result<bool, RegistryError> {
        let response = self
            .send(
                Method::HEAD,
                self.url(&format!("blobs/{digest}")),
                HeaderMap::new(),
                &transport::empty,
                true,
            )
            .await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(error_of(response).await),
        }
    }

    /// Asks the registry to mount `digest` from repository `from`: `true` when it did.
    async fn mount_blob(&self, digest: &str, from: &str) -> Result<bool, RegistryError> {
        let mut url = self.url("blobs/uploads/");
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let response = self
            .send(
                Method::POST,
                url,
                HeaderMap::new(),
                &transport::empty,
                false,
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            // An upload was started instead; it is left to expire.
            StatusCode::ACCEPTED => Ok(false),
            _ => Err(error_of(response).await),
        }
    }

    /// A monolithic upload: `POST` for a session, then one `PUT` with the whole blob.
    async fn upload_blob(
        &self,
        digest: &str,
        size: u64,
        file: std::fs::File,
        sent: Arc<AtomicU64>,
    ) -> Result<(), RegistryError> {
        let response = self
            .send(
                Method::POST,
                self.url("blobs/uploads/"),
                HeaderMap::new(),
                &transport::empty,
                false,
            )
            .await?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(error_of(response).await);
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| RegistryError::Invalid("an upload without a Location".into()))?;
        let mut url = self
            .base()
            .join(location)
            .map_err(|e| RegistryError::Invalid(format!("upload location {location:?}: {e}")))?;
        url.query_pairs_mut().append_pair("digest", digest);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let file = Mutex::new(Some(file));
        let body = move || match file.lock().unwrap_or_else(|e| e.into_inner()).take() {
            Some(f) => file_body(f, sent.clone()),
            None => transport::empty(),
        };
        let response = self.send(Method::PUT, url, headers, &body, false).await?;
        if response.status() != StatusCode::CREATED {
            return Err(error_of(response).await);
        }
        Ok(())
    }

    /// `PUT` of a manifest under `tag`.
    async fn put_manifest(
        &self,
        tag: &str,
        bytes: Vec<u8>,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .map_err(|_| RegistryError::Invalid(format!("media type {media_type:?}")))?,
        );
        let bytes = Bytes::from(bytes);
        let response = self
            .send(
                Method::PUT,
                self.url(&format!("manifests/{tag}")),
                headers,
                &|| transport::full(bytes.clone()),
                false,
            )
            .await?;
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        Ok(())
    }
}
