//! Async client for the Docker Engine API as served by `berthd` (or dockerd) on a unix socket.
//!
//! Owns: connecting, API version negotiation (`HEAD /_ping`, then `GET`, reading
//! `Api-Version`, using `min(server, 1.44)`), typed calls for the container, image, build,
//! network, volume and system endpoints, error decoding ([`ClientError`] keeps the status and the daemon's
//! `message`), and the streaming shapes: log frames ([`LogStream`]), JSON progress lines
//! ([`JsonStream`]), raw bytes ([`ByteStream`]), hijacked attach connections ([`Hijacked`]),
//! and `wait`, whose headers are awaited before its body ([`Client::container_wait`]).
//! Does not own: output formatting or flag parsing (the CLI), wire types (`berth-api`).
//!
//! Every call opens its own HTTP/1.1 connection to the socket: connections are cheap on a
//! unix socket, and it keeps hijacked and long-polling calls independent, as the docker
//! CLI's separate connections for attach, wait and start are.
//!
//! ```no_run
//! # async fn demo() -> Result<(), berth_client::ClientError> {
//! let client = berth_client::Client::new("unix:///run/berth/berth.sock")?;
//! let version = client.version().await?;
//! println!("{}", version.version);
//! # Ok(()) }
//! ```

mod build;
mod container;
mod error;
mod exec;
mod image;
mod network;
mod query;
mod stream;
mod system;
mod volume;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

pub use build::{BuildOptions, BuildPruneReport};
pub use container::{
    AttachOptions, CommitOptions, ListOptions, LogsOptions, RemoveOptions, WaitFuture,
};
pub use error::{ClientError, ErrorKind};
pub use image::{ImportOptions, JsonMessage, JsonMessageError};
pub use query::Query;
pub use stream::{
    json_lines, log_chunks, reader_bytes, ByteStream, Hijacked, JsonStream, LogChunk, LogStream,
};
pub use system::{EventsOptions, Ping};

/// The newest API version this client speaks.
pub const MAX_API_VERSION: &str = berth_api::API_VERSION;
/// What the docker CLI assumes when `_ping` carries no `Api-Version` header.
pub const FALLBACK_API_VERSION: &str = "1.24";

/// The default socket of `berthd`.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

type ReqBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A handle to one daemon; cheap to clone, safe to share between tasks.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    host: String,
    socket: PathBuf,
    version: tokio::sync::OnceCell<String>,
}

impl Client {
    /// A client for `unix:///path/to.sock` or a bare socket path. Does not connect yet.
    pub fn new(host: &str) -> Result<Client, ClientError> {
        let socket = match host.strip_prefix("unix://") {
            Some(path) if !path.is_empty() => PathBuf::from(path),
            Some(_) => return Err(ClientError::InvalidHost(host.to_string())),
            None if host.contains("://") || host.is_empty() => {
                return Err(ClientError::InvalidHost(host.to_string()))
            }
            None => PathBuf::from(host),
        };
        Ok(Client {
            inner: Arc::new(Inner {
                host: host.to_string(),
                socket,
                version: tokio::sync::OnceCell::new(),
            }),
        })
    }

    /// The host string this client was made from.
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// The negotiated API version (negotiating on first use).
    pub async fn api_version(&self) -> Result<String, ClientError> {
        self.inner
            .version
            .get_or_try_init(|| async {
                let ping = self.ping().await?;
                Ok::<_, ClientError>(negotiate(ping.api_version.as_deref()))
            })
            .await
            .cloned()
    }

    /// Opens a fresh HTTP/1.1 connection (with upgrades enabled) and sends `req`.
    async fn send_raw(&self, req: Request<ReqBody>) -> Result<Response<Incoming>, ClientError> {
        let stream = UnixStream::connect(&self.inner.socket)
            .await
            .map_err(|source| ClientError::Connect {
                host: self.inner.host.clone(),
                source,
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // The connection ends when the response (or upgraded stream) is dropped; errors
            // surface through the response future, so nothing is lost here.
            let _ = conn.with_upgrades().await;
        });
        Ok(sender.send_request(req).await?)
    }

    /// Builds a request for `path` (already versioned or not), with the usual headers.
    fn build(
        &self,
        method: Method,
        path_and_query: &str,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Request<ReqBody> {
        let mut b = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(http::header::HOST, "api.moby.localhost")
            .header(
                http::header::USER_AGENT,
                concat!("berth-client/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            b = b.header(http::header::CONTENT_TYPE, ct);
        }
        b.body(body).expect("request parts are valid")
    }

    /// `/v1.xx{path}?{query}` after negotiation.
    async fn versioned(&self, path: &str, query: &Query) -> Result<String, ClientError> {
        let v = self.api_version().await?;
        Ok(format!("/v{v}{path}{}", query.to_suffix()))
    }

    /// Sends a versioned request and turns error statuses into [`ClientError::Daemon`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>, ClientError> {
        self.call_with(method, path, query, body, content_type, &[])
            .await
    }

    /// [`Client::call`] with extra request headers.
    async fn call_with(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: ReqBody,
        content_type: Option<&str>,
        headers: &[(&'static str, String)],
    ) -> Result<Response<Incoming>, ClientError> {
        let uri = self.versioned(path, query).await?;
        let mut req = self.build(method, &uri, body, content_type);
        for (k, v) in headers {
            if let Ok(v) = http::HeaderValue::from_str(v) {
                req.headers_mut().insert(*k, v);
            }
        }
        let resp = self.send_raw(req).await?;
        check_status(resp, &uri).await
    }

    /// A call without a body whose answer is ignored (204/201/304 all count as success).
    async fn call_empty(
        &self,
        method: Method,
        path: &str,
        query: &Query,
    ) -> Result<StatusCode, ClientError> {
        let resp = self.call(method, path, query, empty(), None).await?;
        let status = resp.status();
        resp.into_body().collect().await?;
        Ok(status)
    }

    /// A call whose answer is decoded from JSON.
    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &Query,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, ClientError> {
        let (body, ct) = match body {
            Some(b) => (full(serde_json::to_vec(b)?), Some("application/json")),
            None => (empty(), None),
        };
        let resp = self.call(method, path, query, body, ct).await?;
        let bytes = resp.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }
}

/// `min(server, MAX_API_VERSION)`; a missing or unreadable header gives the docker CLI's
/// fallback, 1.24.
pub fn negotiate(server: Option<&str>) -> String {
    let max = berth_api::ApiVersion::current();
    match server.and_then(berth_api::ApiVersion::parse) {
        Some(v) if v < max => v.to_string(),
        Some(_) => max.to_string(),
        None => FALLBACK_API_VERSION.to_string(),
    }
}

/// Passes 1xx/2xx/3xx answers through, reads the body of others into a [`ClientError`].
async fn check_status(
    resp: Response<Incoming>,
    uri: &str,
) -> Result<Response<Incoming>, ClientError> {
    let status = resp.status();
    if !status.is_client_error() && !status.is_server_error() {
        return Ok(resp);
    }
    let content_type = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let path = uri.split('?').next().unwrap_or(uri).to_string();
    let body = resp.into_body().collect().await?.to_bytes();
    Err(ClientError::from_response(
        status,
        content_type.as_deref(),
        &body,
        &path,
    ))
}

fn empty() -> ReqBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

fn full(bytes: Vec<u8>) -> ReqBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A request body streamed from any reader (files, stdin), sent chunked.
fn reader_body(reader: impl tokio::io::AsyncRead + Send + 'static) -> ReqBody {
    use futures_util::TryStreamExt;
    // 256 KiB reads: the default 4 KiB made a 1 GiB upload from a file (each tokio file
    // read a trip through the blocking pool) several times slower than the daemon's side.
    let stream = tokio_util::io::ReaderStream::with_capacity(reader, 256 << 10)
        .map_ok(hyper::body::Frame::data);
    http_body_util::StreamBody::new(stream).boxed_unsync()
}

/// Percent-encodes one path segment (names and ids); `/` and `:` stay, as image references
/// carry them and the daemon matches names greedily.
fn segment(s: &str) -> String {
    query::encode(s, b"/:@")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_takes_the_lower_version() {
        assert_eq!(negotiate(Some("1.41")), "1.41");
        assert_eq!(negotiate(Some("1.50")), "1.44");
        assert_eq!(negotiate(None), "1.24");
        assert_eq!(negotiate(Some("garbage")), "1.24");
    }

    #[test]
    fn hosts_are_unix_sockets() {
        assert_eq!(
            Client::new("unix:///run/x.sock").unwrap().inner.socket,
            PathBuf::from("/run/x.sock")
        );
        assert_eq!(
            Client::new("/tmp/b.sock").unwrap().inner.socket,
            PathBuf::from("/tmp/b.sock")
        );
        assert!(Client::new("tcp://1.2.3.4:2375").is_err());
        assert!(Client::new("unix://").is_err());
    }
}
