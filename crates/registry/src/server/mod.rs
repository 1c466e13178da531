//! `berth-registry serve`: berth's own OCI Distribution Spec 1.1 registry.
//!
//! HTTP/1.1 (hyper) over TCP or rustls, one task per connection, request bodies and blobs
//! streamed (a manifest, at most 4 MiB, is the only body read whole). Optional Basic auth
//! from an htpasswd file ([`auth`]), `--read-only`, deletes only with `--delete-enabled`.
//! Without `--htpasswd` anyone who reaches the port may push: listen on loopback, or put
//! TLS and auth in front. A bearer token mode is not implemented.
//!
//! # Storage (under `--root`)
//!
//! ```text
//! blobs/sha256/<hex>                       content: every blob and every manifest's bytes,
//!                                          shared by all repositories
//! repositories/<name>/_blobs/<hex>         empty file: the blob is in this repository
//! repositories/<name>/_manifests/<hex>     the manifest is in this repository; holds its
//!                                          media type
//! repositories/<name>/_tags/<tag>          `sha256:<hex>` (temp file + fsync + rename)
//! repositories/<name>/_referrers/<subject-hex>/<hex>
//!                                          empty file: manifest <hex> has that subject
//! uploads/<id>/{data,state}                an upload in progress: its bytes, its repository
//! uploads/manifest-<id>                    a manifest's bytes on their way into blobs/
//! ```
//!
//! The per-repository directories start with `_`, which no name component can: a
//! repository `a/_blobs` cannot exist, while `a/blobs` can and does not collide with `a`'s
//! links. An upload becomes a blob only by a rename of its fsynced data after its digest
//! matched, so a crash never leaves a partial blob in `blobs/`, and two pushes of the same
//! blob each rename an identical complete file into place. Nothing is written into
//! `blobs/` in place. Uploads untouched for 24 h are removed at start and by gc
//! ([`gc`]); gc removes blobs no manifest reaches once they are older than its grace
//! period.

pub mod access;
pub mod auth;
pub mod gc;
pub mod handlers;
pub mod names;
mod stall;
pub mod storage;
pub mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

use handlers::State;

/// A request head that takes longer than this to arrive is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(120);
/// A TLS handshake that takes longer than this is dropped.
const TLS_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that reads nothing of an answer for this long is dropped.
const WRITE_STALL: Duration = Duration::from_secs(120);
/// How long open connections get to finish after SIGINT/SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// `berth-registry serve`'s options.
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub htpasswd: Option<PathBuf>,
    /// Certificate chain and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub read_only: bool,
    pub delete_enabled: bool,
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

/// The rustls server configuration from PEM files (ring, as the client's).
fn tls_config(cert: &PathBuf, key: &PathBuf) -> std::io::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(invalid(format!("{}: no certificate", cert.display())));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid(format!("{}: {e}", key.display())))?;
    // ring's provider, as the client's (transport.rs): no post-quantum group, hence the
    // deprecation, which is about that.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| invalid(format!("TLS certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Serves until SIGINT or SIGTERM, then lets open connections finish (up to 30 s).
pub async fn serve(config: ServeConfig) -> std::io::Result<()> {
    let htpasswd = match &config.htpasswd {
        None => None,
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(storage::at(p))?;
            Some(
                auth::Htpasswd::parse(&text)
                    .map_err(|e| invalid(format!("{}: {e}", p.display())))?,
            )
        }
    };
    let tls = match &config.tls {
        None => None,
        Some((c, k)) => Some(tokio_rustls::TlsAcceptor::from(Arc::new(tls_config(c, k)?))),
    };
    let store = storage::Store::open(&config.root)?;
    let state = Arc::new(State::new(
        store,
        htpasswd,
        config.read_only,
        config.delete_enabled,
    ));
    let listener = TcpListener::bind(config.addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {}: {e}", config.addr)))?;
    tracing::info!(
        "berth-registry listening on {}{} (root {})",
        listener.local_addr()?,
        if tls.is_some() { " (TLS)" } else { "" },
        config.root.display()
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of descriptors (EMFILE) fails at once: no busy loop.
                        tracing::warn!("accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = state.clone();
                let stop = stop_rx.clone();
                let tls = tls.clone();
                connections.spawn(async move {
                    match tls {
                        None => connection(stream, state, stop).await,
                        Some(acceptor) => {
                            match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(stream)).await {
                                Ok(Ok(s)) => connection(s, state, stop).await,
                                Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                                Err(_) => tracing::debug!("TLS handshake with {peer} timed out"),
                            }
                        }
                    }
                });
                while connections.try_join_next().is_some() {}
            }
        }
    }
    tracing::info!("shutting down: finishing open requests");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// One connection: HTTP/1.1 with keep-alive, until the peer leaves or shutdown.
async fn connection<I>(io: I, state: Arc<State>, mut stop: tokio::sync::watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(handlers::handle(state, req).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .keep_alive(true);
    let io = stall::WriteStall::new(io, WRITE_STALL);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("connection: {e}");
            }
        }
        _ = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
