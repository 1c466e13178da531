//! `berth-registry serve`: berth's own OCI Distribution Spec 1.1 registry.
//!
//! HTTP/1.1 (hyper) over TCP or rustls, one task per connection, request bodies and blobs
//! streamed (a manifest, at most 4 MiB, is the only body read whole). Optional auth, from
//! an htpasswd file ([`auth`]): Basic on every request, or bearer tokens the server issues
//! itself at `/token` (`--auth token`: [`issuer`], [`token`], [`access`]). `--read-only`,
//! deletes only with `--delete-enabled`. Without `--htpasswd` anyone who reaches the port
//! may push: listen on loopback, or put TLS and auth in front.
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
//! token.key                                `--auth token`'s signing secret (0600)
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
pub mod issuer;
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

use handlers::{Auth, State};

/// A request head that takes longer than this to arrive is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(120);
/// A TLS handshake that takes longer than this is dropped.
const TLS_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that reads nothing of an answer for this long is dropped.
const WRITE_STALL: Duration = Duration::from_secs(120);
/// The most connections served at once. Past it the server accepts no more until one
/// ends (they wait in the kernel's backlog): a flood of connections must not take the
/// descriptors that opening blobs needs (the usual soft limit is 1024).
const MAX_CONNECTIONS: usize = 512;
/// How long open connections get to finish after SIGINT/SIGTERM.
const DRAIN: Duration = Duration::from_secs(30);

/// The service name tokens are issued for when `--token-service` is not given.
pub const DEFAULT_SERVICE: &str = "berth-registry";

/// How `serve` authorises requests (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Anyone who reaches the port (the default without `--htpasswd`).
    None,
    /// Basic auth on every request (the default with `--htpasswd`).
    Basic,
    /// Bearer tokens issued by the server itself at `/token`.
    Token,
}

/// `berth-registry serve`'s options.
#[derive(Debug)]
pub struct ServeConfig {
    pub addr: SocketAddr,
    pub root: PathBuf,
    pub htpasswd: Option<PathBuf>,
    /// `--auth`; when absent, Basic with an htpasswd file, else none.
    pub auth: Option<AuthMode>,
    /// Token mode's options.
    pub token: TokenOptions,
    /// Certificate chain and key (PEM).
    pub tls: Option<(PathBuf, PathBuf)>,
    pub read_only: bool,
    pub delete_enabled: bool,
}

/// The options only `--auth token` uses.
#[derive(Debug, Default)]
pub struct TokenOptions {
    /// `--token-service` (default [`DEFAULT_SERVICE`]).
    pub service: Option<String>,
    /// `--token-realm`: the token endpoint's URL as clients must reach it (behind a proxy).
    pub realm: Option<String>,
    /// `--anonymous-pull`: a client without credentials may pull every repository.
    pub anonymous_pull: bool,
    /// `--access`: who may do what.
    pub access: Option<PathBuf>,
}

impl ServeConfig {
    /// The auth mode these options ask for; a combination of which a part would not be
    /// applied is refused (fail closed), naming the flag.
    pub fn auth_mode(&self) -> Result<AuthMode, String> {
        let mode = self.auth.unwrap_or(if self.htpasswd.is_some() {
            AuthMode::Basic
        } else {
            AuthMode::None
        });
        match (mode, &self.htpasswd) {
            (AuthMode::None, Some(_)) => {
                return Err("--htpasswd is not used with --auth none".into())
            }
            (AuthMode::Basic | AuthMode::Token, None) => {
                return Err(format!(
                    "--auth {} needs --htpasswd FILE (the users)",
                    if mode == AuthMode::Basic {
                        "basic"
                    } else {
                        "token"
                    }
                ))
            }
            _ => {}
        }
        if mode != AuthMode::Token {
            let t = &self.token;
            let given = [
                (t.service.is_some(), "--token-service"),
                (t.realm.is_some(), "--token-realm"),
                (t.anonymous_pull, "--anonymous-pull"),
                (t.access.is_some(), "--access"),
            ];
            if let Some((_, flag)) = given.iter().find(|(g, _)| *g) {
                return Err(format!("{flag} applies to --auth token only"));
            }
            return Ok(mode);
        }
        if let Some(s) = &self.token.service {
            if !issuer::valid_service(s) {
                return Err(format!(
                    "--token-service {s:?}: printable characters without quotes, backslashes, commas or spaces"
                ));
            }
        }
        if let Some(r) = &self.token.realm {
            let url = url::Url::parse(r).map_err(|e| format!("--token-realm {r:?}: {e}"))?;
            match url.scheme() {
                "https" => {}
                "http" if self.tls.is_none() => {}
                "http" => {
                    return Err(format!(
                        "--token-realm {r:?}: a plain http realm for a TLS registry would send passwords in clear"
                    ))
                }
                _ => return Err(format!("--token-realm {r:?}: not an http(s) URL")),
            }
            if url.as_str().contains('"') {
                return Err(format!("--token-realm {r:?}: no quotes"));
            }
        }
        Ok(mode)
    }
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
    let mode = config.auth_mode().map_err(invalid)?;
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
    let addr = config.addr;
    let store = storage::Store::open(&config.root)?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("listen on {addr}: {e}")))?;
    let local = listener.local_addr()?;
    let auth = match (mode, htpasswd) {
        (AuthMode::Basic, Some(h)) => Auth::Basic(h),
        (AuthMode::Token, Some(h)) => Auth::Token(Box::new(token_auth(&config, h, local)?)),
        _ => Auth::Open,
    };
    let realm_in_clear = config
        .token
        .realm
        .as_deref()
        .map_or(tls.is_none(), |r| r.starts_with("http:"));
    if matches!(mode, AuthMode::Token) && realm_in_clear {
        tracing::warn!(
            "token mode without TLS: clients send passwords to the token endpoint in clear \
             (serve with --tls-cert/--tls-key, or behind a TLS proxy with an https --token-realm)"
        );
    }
    let state = Arc::new(State::new(
        store,
        auth,
        config.read_only,
        config.delete_enabled,
    ));
    tracing::info!(
        "berth-registry listening on {local}{} (root {}, auth {})",
        if tls.is_some() { " (TLS)" } else { "" },
        config.root.display(),
        match mode {
            AuthMode::None => "none",
            AuthMode::Basic => "basic",
            AuthMode::Token => "token",
        }
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = sigterm.recv() => break,
            // At the cap: wait for a connection to end instead of accepting.
            _ = connections.join_next(), if connections.len() >= MAX_CONNECTIONS => {}
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => {
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

/// Token mode's state: the policy (with the access file, checked whole), the key (made
/// on first start).
fn token_auth(
    config: &ServeConfig,
    htpasswd: auth::Htpasswd,
    local: SocketAddr,
) -> std::io::Result<issuer::TokenAuth> {
    let t = &config.token;
    let mut policy =
        access::Policy::open_to_users(t.anonymous_pull, config.read_only, config.delete_enabled);
    if let Some(p) = &t.access {
        let text = std::fs::read_to_string(p).map_err(storage::at(p))?;
        policy = policy
            .with_access_file(&text, &htpasswd)
            .map_err(|e| invalid(format!("{}: {e}", p.display())))?;
    }
    Ok(issuer::TokenAuth {
        keys: token::Keys::load_or_create(&config.root)?,
        htpasswd,
        service: t.service.clone().unwrap_or_else(|| DEFAULT_SERVICE.into()),
        realm: t.realm.clone(),
        tls: config.tls.is_some(),
        listen: local.to_string(),
        policy,
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(f: impl FnOnce(&mut ServeConfig)) -> ServeConfig {
        let mut c = ServeConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            root: PathBuf::new(),
            htpasswd: None,
            auth: None,
            token: TokenOptions::default(),
            tls: None,
            read_only: false,
            delete_enabled: false,
        };
        f(&mut c);
        c
    }

    #[test]
    fn auth_mode_follows_htpasswd_by_default() {
        assert_eq!(config(|_| {}).auth_mode(), Ok(AuthMode::None));
        let basic = config(|c| c.htpasswd = Some("h".into()));
        assert_eq!(basic.auth_mode(), Ok(AuthMode::Basic));
        let token = config(|c| {
            c.htpasswd = Some("h".into());
            c.auth = Some(AuthMode::Token);
            c.token.anonymous_pull = true;
            c.token.access = Some("a".into());
            c.token.realm = Some("https://r.example/token".into());
        });
        assert_eq!(token.auth_mode(), Ok(AuthMode::Token));
    }

    #[test]
    fn flags_that_would_not_be_applied_are_refused() {
        let refused = |c: ServeConfig, needle: &str| {
            let e = c.auth_mode().unwrap_err();
            assert!(e.contains(needle), "{e}");
        };
        refused(
            config(|c| c.auth = Some(AuthMode::Token)),
            "needs --htpasswd",
        );
        refused(
            config(|c| c.auth = Some(AuthMode::Basic)),
            "needs --htpasswd",
        );
        refused(
            config(|c| {
                c.auth = Some(AuthMode::None);
                c.htpasswd = Some("h".into());
            }),
            "--htpasswd is not used",
        );
        refused(
            config(|c| {
                c.htpasswd = Some("h".into());
                c.token.anonymous_pull = true;
            }),
            "--anonymous-pull applies to --auth token only",
        );
        refused(
            config(|c| c.token.access = Some("a".into())),
            "--access applies",
        );
        let token = |f: fn(&mut ServeConfig)| {
            config(|c| {
                c.htpasswd = Some("h".into());
                c.auth = Some(AuthMode::Token);
                f(c);
            })
        };
        refused(
            token(|c| c.token.service = Some("a\"b".into())),
            "--token-service",
        );
        refused(
            token(|c| c.token.realm = Some("ftp://x/token".into())),
            "not an http",
        );
        refused(
            token(|c| c.token.realm = Some("not a url".into())),
            "--token-realm",
        );
        refused(
            token(|c| {
                c.token.realm = Some("http://x/token".into());
                c.tls = Some(("c".into(), "k".into()));
            }),
            "in clear",
        );
    }
}
