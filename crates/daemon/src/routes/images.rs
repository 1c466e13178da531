//! `/images/...`. Image names contain `/` and `:`, so the per-image routes take the rest
//! of the path and split off the verb at the end, as moby's greedy patterns do.

use std::collections::HashMap;
use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use futures_util::StreamExt;

use berth_api::container::GraphDriver;
use berth_api::image::{DeleteItem, HistoryItem, Inspect, PruneResponse, RootFs, Summary};
use berth_image::{ImageRecord, ImportOptions};

use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::routes::{empty, json};
use crate::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/load", post(load))
        .route("/images/get", get(save_many))
        .route("/images/create", post(create))
        .route("/images/prune", post(prune))
        .route("/images/{*rest}", any(per_image))
}

/// `/images/<name>/<verb>` and `DELETE /images/<name>`.
async fn per_image(
    State(st): State<AppState>,
    Path(rest): Path<String>,
    method: Method,
    headers: axum::http::HeaderMap,
    q: Query,
) -> ApiResult<Response> {
    let split = |verb: &str| rest.strip_suffix(verb).map(str::to_string);
    match method {
        Method::GET => {
            if let Some(name) = split("/json") {
                return inspect(&st, &name);
            }
            if let Some(name) = split("/history") {
                return history(&st, &name);
            }
            if let Some(name) = split("/get") {
                return save(&st, vec![name]).await;
            }
        }
        Method::POST => {
            if let Some(name) = split("/tag") {
                return tag(&st, &name, &q);
            }
            if let Some(name) = split("/push") {
                return crate::routes::registry::push(&st, &name, &q, &headers).await;
            }
        }
        Method::DELETE => return remove(&st, &rest, &q).await,
        _ => {}
    }
    Err(ApiError::not_found("page not found"))
}

pub(crate) fn summary(r: &ImageRecord, containers: i64) -> Summary {
    Summary {
        containers,
        created: r.created,
        id: r.id.clone(),
        labels: r
            .config
            .config
            .labels
            .clone()
            .map(|l| l.into_iter().collect::<HashMap<_, _>>()),
        parent_id: r.parent.clone(),
        repo_digests: r.repo_digests.clone(),
        repo_tags: r.repo_tags.clone(),
        shared_size: -1,
        size: r.size as i64,
        virtual_size: r.size as i64,
    }
}

/// `reference` filter: a glob on `repo` or `repo:tag` in familiar form.
fn reference_matches(pattern: &str, tags: &[String]) -> bool {
    tags.iter().any(|t| {
        let repo = t.rsplit_once(':').map(|(r, _)| r).unwrap_or(t);
        glob(pattern, t) || glob(pattern, repo)
    })
}

/// A shell-style glob with `*` and `?` (what Go's path.Match does for these names).
fn glob(pattern: &str, s: &str) -> bool {
    fn m(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], s) || (!s.is_empty() && s[0] != b'/' && m(p, &s[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => m(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &s[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), s.as_bytes())
}

async fn list(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let f = q.filters()?;
    f.validate(&["reference", "dangling", "label", "before", "since", "until"])
        .map_err(|e| ApiError::bad_request(e.0))?;
    let dangling = match f.get("dangling").first().map(String::as_str) {
        None => None,
        Some("true") | Some("1") => Some(true),
        Some("false") | Some("0") => Some(false),
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "Invalid filter 'dangling={v}'"
            )))
        }
    };
    let mut out: Vec<Summary> = Vec::new();
    for r in st.engine.images().list() {
        let is_dangling = r.repo_tags.is_empty();
        if dangling.is_some_and(|d| d != is_dangling) {
            continue;
        }
        let refs = f.get("reference");
        let mut r = r;
        if !refs.is_empty() {
            // Docker lists only the tags that matched.
            r.repo_tags.retain(|t| {
                refs.iter()
                    .any(|p| reference_matches(p, std::slice::from_ref(t)))
            });
            if r.repo_tags.is_empty() {
                continue;
            }
        }
        let labels = r
            .config
            .config
            .labels
            .clone()
            .map(|l| l.into_iter().collect::<HashMap<_, _>>());
        if !berth_api::filters::labels_match(f.get("label"), labels.as_ref()) {
            continue;
        }
        out.push(summary(&r, -1));
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(json(StatusCode::OK, &out))
}

fn inspect(st: &AppState, name: &str) -> ApiResult<Response> {
    let r = st.engine.images().resolve(name)?;
    let c = &r.config;
    let mut metadata = HashMap::new();
    metadata.insert(
        "LastTagTime".to_string(),
        serde_json::Value::String(
            r.last_tag_time
                .clone()
                .unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        ),
    );
    let out = Inspect {
        id: r.id.clone(),
        repo_tags: r.repo_tags.clone(),
        repo_digests: r.repo_digests.clone(),
        parent: r.parent.clone(),
        // Docker's: a committed image keeps its comment in the last history entry only.
        comment: if c.comment.is_empty() {
            c.history
                .last()
                .map(|h| h.comment.clone())
                .unwrap_or_default()
        } else {
            c.comment.clone()
        },
        created: c.created.clone().unwrap_or_default(),
        docker_version: c.docker_version.clone(),
        author: c.author.clone(),
        config: serde_json::to_value(&c.config).unwrap_or_default(),
        architecture: c.architecture.clone(),
        variant: c.variant.clone(),
        os: c.os.clone(),
        size: r.size as i64,
        virtual_size: r.size as i64,
        graph_driver: GraphDriver {
            name: "overlay2".into(),
            data: HashMap::new(),
        },
        root_fs: RootFs {
            kind: "layers".into(),
            layers: c.rootfs.diff_ids.clone(),
        },
        metadata,
    };
    Ok(json(StatusCode::OK, &out))
}

fn history(st: &AppState, name: &str) -> ApiResult<Response> {
    let items: Vec<HistoryItem> = st
        .engine
        .images()
        .history(name)?
        .into_iter()
        .map(|h| HistoryItem {
            id: h.id,
            created: h.created,
            created_by: h.created_by,
            tags: (!h.tags.is_empty()).then_some(h.tags),
            size: h.size,
            comment: h.comment,
        })
        .collect();
    Ok(json(StatusCode::OK, &items))
}

fn tag(st: &AppState, name: &str, q: &Query) -> ApiResult<Response> {
    let repo = q.get("repo").unwrap_or("");
    if repo.is_empty() {
        return Err(ApiError::bad_request(
            "repository name must have at least one component",
        ));
    }
    st.engine
        .tag_image(name, repo, q.get("tag").unwrap_or(""))?;
    Ok(empty(StatusCode::CREATED))
}

fn to_api(items: Vec<berth_image::DeleteItem>) -> Vec<DeleteItem> {
    items
        .into_iter()
        .map(|d| match d {
            berth_image::DeleteItem::Untagged(s) => DeleteItem::Untagged(s),
            berth_image::DeleteItem::Deleted(s) => DeleteItem::Deleted(s),
        })
        .collect()
}

async fn remove(st: &AppState, name: &str, q: &Query) -> ApiResult<Response> {
    let engine = st.engine.clone();
    let name = name.to_string();
    let force = q.bool("force", false);
    let items = tokio::task::spawn_blocking(move || engine.remove_image(&name, force))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(json(StatusCode::OK, &to_api(items)))
}

async fn prune(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    let f = q.filters()?;
    f.validate(&["dangling", "label", "label!", "until"])
        .map_err(|e| ApiError::bad_request(e.0))?;
    let all = f
        .get("dangling")
        .first()
        .is_some_and(|d| d == "false" || d == "0");
    let mut labels = Vec::new();
    for (key, negate) in [("label", false), ("label!", true)] {
        for l in f.get(key) {
            let (k, v) = match l.split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (l.clone(), None),
            };
            labels.push(berth_image::LabelFilter {
                key: k,
                value: v,
                negate,
            });
        }
    }
    let engine = st.engine.clone();
    let report = tokio::task::spawn_blocking(move || engine.prune_images(all, &labels))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let deleted = to_api(report.deleted);
    Ok(json(
        StatusCode::OK,
        &PruneResponse {
            images_deleted: (!deleted.is_empty()).then_some(deleted),
            space_reclaimed: report.space_reclaimed,
        },
    ))
}

/// A blocking reader over a request body, for the image store's synchronous archive code.
pub(crate) fn body_reader(req: Request) -> BodyReader {
    // A task reads ahead (up to BODY_AHEAD chunks) while the blocking reader works: the
    // connection does not wait for each chunk to be consumed before it reads the next
    // (a 50 MiB build context took 800 such round trips between threads).
    let (tx, rx) = tokio::sync::mpsc::channel(BODY_AHEAD);
    let mut stream = req.into_body().into_data_stream();
    tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other);
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                break;
            }
        }
    });
    BodyReader {
        rx,
        current: Bytes::new(),
    }
}

/// How many chunks of a request body are read ahead of its reader.
const BODY_AHEAD: usize = 16;

/// A request body read from a blocking thread ([`body_reader`]).
pub(crate) struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.current = b,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        bytes::Buf::advance(&mut self.current, n);
        Ok(n)
    }
}

/// How much of a rejected upload is read (and dropped) before the error is answered.
const DRAIN_LIMIT: u64 = 1 << 30;

/// Reads what is left of a request body that was rejected part-way (up to [`DRAIN_LIMIT`]):
/// answered while the client still uploads, the docker CLI reports `write: broken pipe`
/// instead of the error (seen with an 8 MiB import rejected at its first entry).
pub(crate) fn drain(reader: impl std::io::Read) {
    let _ = std::io::copy(&mut reader.take(DRAIN_LIMIT), &mut std::io::sink());
}

/// `POST /images/load`: a `docker save` or OCI archive in the body.
async fn load(State(st): State<AppState>, q: Query, req: Request) -> ApiResult<Response> {
    let _quiet = q.bool("quiet", false);
    let mut reader = body_reader(req);
    let engine = st.engine.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let loaded = engine.load_images(&mut reader);
        if loaded.is_err() {
            drain(&mut reader);
        }
        loaded
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut out = Vec::new();
    for img in loaded {
        if img.tags.is_empty() {
            let line = serde_json::json!({"stream": format!("Loaded image ID: {}\n", img.id)});
            out.extend(line.to_string().into_bytes());
            out.push(b'\n');
        }
        for t in img.tags {
            let line = serde_json::json!({"stream": format!("Loaded image: {t}\n")});
            out.extend(line.to_string().into_bytes());
            out.push(b'\n');
        }
    }
    let mut resp = Response::new(Body::from(out));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// `POST /images/create`: `fromSrc=-` imports the body; `fromImage` would pull.
async fn create(State(st): State<AppState>, q: Query, req: Request) -> ApiResult<Response> {
    if q.get("fromImage").is_some() {
        return crate::routes::registry::pull(&st, &q, req.headers()).await;
    }
    let Some(src) = q.get("fromSrc") else {
        return Err(ApiError::bad_request("fromImage or fromSrc is required"));
    };
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "importing from a URL is not supported: {src}"
        )));
    }
    let repo = q.get("repo").unwrap_or("").to_string();
    let reference = match (repo.is_empty(), q.get("tag").filter(|t| !t.is_empty())) {
        (true, _) => None,
        (false, Some(tag)) => Some(format!("{repo}:{tag}")),
        (false, None) => Some(repo),
    };
    let opts = ImportOptions {
        reference,
        changes: q.all("changes"),
        message: q.get("message").unwrap_or("").to_string(),
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(String::from),
    };
    let mut reader = body_reader(req);
    let engine = st.engine.clone();
    let id = tokio::task::spawn_blocking(move || {
        let id = engine.import_image(&mut reader, &opts);
        if id.is_err() {
            drain(&mut reader);
        }
        id
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut body = serde_json::json!({"status": id}).to_string().into_bytes();
    body.push(b'\n');
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

async fn save_many(State(st): State<AppState>, q: Query) -> ApiResult<Response> {
    save(&st, q.all("names")).await
}

/// Streams `docker save` output; names are resolved first so that a bad one is a 404.
async fn save(st: &AppState, names: Vec<String>) -> ApiResult<Response> {
    for n in &names {
        st.engine.images().resolve(n)?;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let engine = st.engine.clone();
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter { tx: tx.clone() };
        if let Err(e) = engine.save_images(&names, &mut w) {
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = Body::from_stream(ReceiverStream(rx));
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(resp)
}

/// The receiving end of a [`ChannelWriter`], as a response body's stream.
pub(crate) struct ReceiverStream(
    pub(crate) tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
);

impl futures_util::Stream for ReceiverStream {
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

/// A `Write` that hands each buffer to an async body.
pub(crate) struct ChannelWriter {
    pub(crate) tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_filter_globs_repo_and_tag() {
        let tags = vec!["busybox:latest".to_string(), "a/b:1".to_string()];
        assert!(reference_matches("busybox", &tags));
        assert!(reference_matches("busy*", &tags));
        assert!(reference_matches("a/*:1", &tags));
        assert!(!reference_matches("alpine", &tags));
        assert!(!reference_matches("*", &["a/b:1".to_string()]));
    }
}
