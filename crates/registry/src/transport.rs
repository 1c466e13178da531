//! HTTP/1.1 over TCP, or over TLS by rustls: one connection per request (a pull makes a
//! handful of requests, each layer's a long stream), bounded by timeouts everywhere a
//! server could stall: connecting, the TLS handshake, the response head, and every gap in
//! a body.
//!
//! TLS trusts the system's roots plus, per registry, the CA certificates (`*.crt`) of
//! `<certs dir>/<host:port>/`, and presents the client certificate (`*.cert` with its
//! `*.key`) found there, as Docker reads `/etc/docker/certs.d/`. An insecure registry's
//! certificate is not verified at all (Docker's `insecure-registries`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{HeaderMap, Method, Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// How long a connection (TCP, then TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a server may stay silent: before its response head, or between two pieces of
/// a body.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A request body: empty, bytes in memory, or a stream.
pub type ReqBody = BoxBody<Bytes, std::io::Error>;

/// An empty request body.
pub fn empty() -> ReqBody {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// A request body of `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> ReqBody {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// How TLS is done with one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verify {
    /// The system's roots and the registry's own CAs.
    Roots,
    /// Any certificate (an insecure registry).
    Nothing,
}

/// Makes connections; keeps the TLS configurations it built, per registry, while the
/// registry's certificate directory stays as it was (a CA added or changed is used at the
/// next request: Docker reads `certs.d` at every pull).
#[derive(Debug)]
pub struct Transport {
    certs_dir: Option<PathBuf>,
    user_agent: String,
    configs: Mutex<HashMap<(String, Verify), Built>>,
    /// [`IDLE_TIMEOUT`], shorter in tests.
    idle: Duration,
}

/// A configuration and the directory state it was built from.
type Built = (Fingerprint, Arc<rustls::ClientConfig>);

/// What the files of a certificate directory look like: names, sizes and mtimes.
type Fingerprint = Vec<(PathBuf, u64, i64, i64)>;

fn fingerprint(dir: Option<&Path>) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let Some(entries) = dir.and_then(|d| std::fs::read_dir(d).ok()) else {
        return Vec::new();
    };
    let mut out: Fingerprint = entries
        .flatten()
        .filter_map(|e| {
            let m = e.metadata().ok()?;
            Some((e.path(), m.size(), m.mtime(), m.mtime_nsec()))
        })
        .collect();
    out.sort();
    out
}

impl Transport {
    /// `certs_dir`: where per-registry certificates are looked up (`None`: nowhere).
    pub fn new(certs_dir: Option<PathBuf>, user_agent: &str) -> Transport {
        Transport {
            certs_dir,
            user_agent: user_agent.to_string(),
            configs: Mutex::new(HashMap::new()),
            idle: IDLE_TIMEOUT,
        }
    }

    /// One request to `url` (http or https), up to the response head. `verify` applies to
    /// https only. Errors say what failed, naming the host.
    pub async fn send(
        &self,
        method: Method,
        url: &url::Url,
        headers: HeaderMap,
        body: ReqBody,
        verify: Verify,
    ) -> Result<Response<Incoming>, String> {
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("the URL has no host")?;
        let port = url.port_or_known_default().ok_or("the URL has no port")?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(target)
            .header(hyper::header::HOST, &authority)
            .header(hyper::header::USER_AGENT, &self.user_agent)
            .body(body)
            .map_err(|e| e.to_string())?;
        req.headers_mut().extend(headers);
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((bare, port)),
        )
        .await
        .map_err(|_| {
            format!(
                "dial tcp {authority_port}: i/o timeout",
                authority_port = hostport(host, port)
            )
        })?
        .map_err(|e| {
            format!(
                "dial tcp {}: connect: {}",
                hostport(host, port),
                plain_io(&e)
            )
        })?;
        let _ = tcp.set_nodelay(true);
        match url.scheme() {
            "http" => send(TokioIo::new(tcp), req, self.idle).await,
            "https" => {
                let server = ServerName::try_from(bare.to_string())
                    .map_err(|e| format!("TLS server name {host}: {e}"))?;
                let config = self.tls_config(&hostport(host, port), verify)?;
                let tls = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_rustls::TlsConnector::from(config).connect(server, tcp),
                )
                .await
                .map_err(|_| format!("TLS handshake with {authority}: timed out"))?
                .map_err(|e| format!("TLS handshake with {authority}: {e}"))?;
                send(TokioIo::new(tls), req, self.idle).await
            }
            other => Err(format!("unsupported scheme {other}")),
        }
    }

    /// The TLS configuration for `hostport`.
    fn tls_config(
        &self,
        hostport: &str,
        verify: Verify,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        // Hosts without a certificate directory share one configuration per kind of
        // verification: the cache does not grow with the hosts a registry redirects to.
        let dir = self
            .certs_dir
            .as_ref()
            .map(|d| d.join(hostport))
            .filter(|d| d.is_dir());
        let key = match &dir {
            Some(_) => (hostport.to_string(), verify),
            None => (String::new(), verify),
        };
        let print = fingerprint(dir.as_deref());
        if let Some((p, c)) = self
            .configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if *p == print {
                return Ok(c.clone());
            }
        }
        let config = Arc::new(build_tls_config(dir.as_deref(), verify)?);
        self.configs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (print, config.clone()));
        Ok(config)
    }
}

fn hostport(host: &str, port: u16) -> String {
    format!("{host}:{port}")
}

/// An I/O error's text without Rust's ` (os error N)` tail, as Go prints it.
fn plain_io(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// A request body that notes when it last gave a piece (an upload that the server stops
/// reading is told from one that is slow but moving).
struct Watched {
    inner: ReqBody,
    start: std::time::Instant,
    /// Milliseconds after `start` of the last piece.
    last: Arc<std::sync::atomic::AtomicU64>,
}

impl hyper::body::Body for Watched {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(_))) = &polled {
            let now = self.start.elapsed().as_millis() as u64;
            self.last.store(now, std::sync::atomic::Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

async fn send<I>(io: I, req: Request<ReqBody>, idle: Duration) -> Result<Response<Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    // The answer may take as long as the upload does, as long as the upload moves: the
    // timeout counts from the body's last piece (from the start, without a body).
    let start = std::time::Instant::now();
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (parts, body) = req.into_parts();
    let body = Watched {
        inner: body,
        start,
        last: last.clone(),
    };
    let response = sender.send_request(Request::from_parts(parts, body));
    tokio::pin!(response);
    loop {
        let last_ms = last.load(std::sync::atomic::Ordering::Relaxed);
        let idle_until = Duration::from_millis(last_ms) + idle;
        let wait = idle_until.saturating_sub(start.elapsed());
        if wait.is_zero() {
            return Err(format!("no answer for {idle:?}"));
        }
        match tokio::time::timeout(wait, &mut response).await {
            Ok(r) => return r.map_err(|e| e.to_string()),
            Err(_) => continue,
        }
    }
}

/// The next piece of a response body, or `None` at its end; a gap longer than
/// [`IDLE_TIMEOUT`] is an error.
pub async fn next_chunk(body: &mut Incoming) -> Result<Option<Bytes>, String> {
    next_chunk_within(body, IDLE_TIMEOUT).await
}

/// [`next_chunk`] with a gap of at most `idle`.
async fn next_chunk_within(body: &mut Incoming, idle: Duration) -> Result<Option<Bytes>, String> {
    loop {
        let frame = tokio::time::timeout(idle, body.frame())
            .await
            .map_err(|_| format!("no data for {idle:?}"))?;
        let Some(frame) = frame else {
            return Ok(None);
        };
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            return Ok(Some(data));
        }
    }
}

/// A whole (small) body, at most `limit` bytes.
pub async fn read_limited(body: &mut Incoming, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = next_chunk(body).await? {
        if out.len() + chunk.len() > limit {
            return Err(format!("the response is larger than {limit} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The system's roots (read once).
fn system_roots() -> Result<Vec<CertificateDer<'static>>, String> {
    static ROOTS: std::sync::OnceLock<Vec<CertificateDer<'static>>> = std::sync::OnceLock::new();
    Ok(ROOTS
        .get_or_init(|| rustls_native_certs::load_native_certs().certs)
        .clone())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    // ring's provider (X25519, P-256, P-384 key exchange; no post-quantum group, hence
    // rustls's deprecation note): ring is already built for berth, where aws-lc-rs would
    // add a large C build.
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build_tls_config(dir: Option<&Path>, verify: Verify) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add_parsable_certificates(system_roots()?);
    let mut client_cert = None;
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| format!("read {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for path in &names {
            let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
            let shown = || {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            };
            match ext {
                "crt" => {
                    for cert in CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("read CA certificate {}: {e}", shown()))?
                    {
                        let cert =
                            cert.map_err(|e| format!("read CA certificate {}: {e}", shown()))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("CA certificate {}: {e}", shown()))?;
                    }
                }
                "cert" => {
                    let key_path = path.with_extension("key");
                    if !key_path.exists() {
                        return Err(format!(
                            "missing key {}.key for client certificate {}",
                            path.file_stem()
                                .map(|s| s.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                            shown()
                        ));
                    }
                    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("read client certificate {}: {e}", shown()))?
                        .collect::<Result<_, _>>()
                        .map_err(|e| format!("read client certificate {}: {e}", shown()))?;
                    let key = PrivateKeyDer::from_pem_file(&key_path)
                        .map_err(|e| format!("read client key of {}: {e}", shown()))?;
                    client_cert = Some((chain, key));
                }
                "key" if !path.with_extension("cert").exists() => {
                    return Err(format!("missing client certificate for key {}", shown()));
                }
                _ => {}
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match verify {
        Verify::Roots => {
            if roots.is_empty() {
                return Err("no root certificates found on this system".to_string());
            }
            builder.with_root_certificates(roots)
        }
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider()))),
    };
    let mut config = match client_cert {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| format!("client certificate: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// An insecure registry's certificate is taken as it is; signatures are still checked, so
/// the handshake itself is sound.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Instant;

    /// A server on 127.0.0.1 that reads one request head, writes `answer`, then holds the
    /// connection open, silent, until the client hangs up. Returns a URL on it.
    fn stalling_server(answer: &'static [u8]) -> url::Url {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            s.write_all(answer).unwrap();
            let mut rest = [0u8; 64];
            while s.read(&mut rest).unwrap_or(0) > 0 {}
        });
        url::Url::parse(&format!("http://{addr}/v2/x/blobs/sha256:0")).unwrap()
    }

    fn quick() -> Transport {
        let mut t = Transport::new(None, "test");
        t.idle = Duration::from_millis(300);
        t
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_given_up_on() {
        let url = stalling_server(b"");
        let start = Instant::now();
        let e = quick()
            .send(Method::GET, &url, HeaderMap::new(), empty(), Verify::Roots)
            .await
            .unwrap_err();
        assert_eq!(e, "no answer for 300ms");
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
        assert!(took < Duration::from_secs(10), "{took:?}");
    }

    #[tokio::test]
    async fn a_body_that_stops_mid_way_is_given_up_on() {
        let url =
            stalling_server(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nthe first bytes");
        let response = quick()
            .send(Method::GET, &url, HeaderMap::new(), empty(), Verify::Roots)
            .await
            .unwrap();
        let mut body = response.into_body();
        let idle = Duration::from_millis(300);
        let first = next_chunk_within(&mut body, idle).await.unwrap().unwrap();
        assert_eq!(&first[..], b"the first bytes");
        let start = Instant::now();
        let e = next_chunk_within(&mut body, idle).await.unwrap_err();
        assert_eq!(e, "no data for 300ms");
        let took = start.elapsed();
        assert!(took >= idle && took < Duration::from_secs(10), "{took:?}");
    }
}
