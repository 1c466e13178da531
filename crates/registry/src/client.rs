//! One repository at one registry: where it is (scheme, mirrors, TLS), how requests are
//! authorised (the `WWW-Authenticate` challenge: a bearer token for the repository's
//! scope, anonymous or with credentials, or basic auth), and the registry's error
//! documents in Docker's words.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, LOCATION, WWW_AUTHENTICATE};
use hyper::{HeaderMap, Method, Response, StatusCode};
use serde::Deserialize;

pub use berth_api::auth::AuthConfig;

use crate::transport::{self, ReqBody, Transport, Verify};

/// Docker Hub's registry for `docker.io` names.
const DOCKER_HUB: &str = "registry-1.docker.io";
/// Redirects a blob request may take (Go's client stops after 10).
const MAX_REDIRECTS: usize = 10;
/// The most bytes of an error document or token response read.
const MAX_SMALL_BODY: usize = 1 << 20;
/// The OAuth client id token requests name (Docker's).
const OAUTH_CLIENT_ID: &str = "docker";

/// berthd's registry settings.
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// `insecure-registries`: `host:port` names or CIDR ranges served over plain HTTP or
    /// with a certificate that is not checked. Loopback addresses always are (as Docker).
    pub insecure: Vec<String>,
    /// `registry-mirrors`: tried in order for `docker.io` names before Docker Hub.
    pub mirrors: Vec<String>,
    /// Per-registry certificates: `<dir>/<host:port>/{*.crt,*.cert,*.key}`.
    pub certs_dir: Option<PathBuf>,
}

/// Basic credentials' `Authorization` value.
fn basic(auth: &AuthConfig) -> HeaderValue {
    use base64::Engine;
    let raw = format!("{}:{}", auth.username, auth.password);
    HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
    .expect("base64 is a valid header value")
}

/// What went wrong talking to a registry.
#[derive(Debug, Clone)]
pub enum RegistryError {
    /// The registry said so, in its error document (`code`: `MANIFEST_UNKNOWN`, ...).
    Registry {
        status: u16,
        code: String,
        message: String,
    },
    /// 401 and no way to authorise (`no basic auth credentials`, a refused token).
    Unauthorized(String),
    /// The registry could not be reached or broke off.
    Transport(String),
    /// What the registry sent is not what was asked for, or not readable.
    Invalid(String),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::Registry { code, message, .. } => {
                write!(f, "{}: {message}", code.to_lowercase().replace('_', " "))
            }
            RegistryError::Unauthorized(m)
            | RegistryError::Transport(m)
            | RegistryError::Invalid(m) => f.write_str(m),
        }
    }
}

impl RegistryError {
    /// The registry's error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            RegistryError::Registry { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The registry's error document.
#[derive(Deserialize)]
struct ErrorDoc {
    #[serde(default)]
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// Reads a failed response into a [`RegistryError`].
pub(crate) async fn error_of(response: Response<Incoming>) -> RegistryError {
    let status = response.status();
    let mut body = response.into_body();
    let bytes = transport::read_limited(&mut body, MAX_SMALL_BODY)
        .await
        .unwrap_or_default();
    if let Ok(doc) = serde_json::from_slice::<ErrorDoc>(&bytes) {
        if let Some(first) = doc.errors.into_iter().next() {
            return RegistryError::Registry {
                status: status.as_u16(),
                code: first.code,
                message: first.message,
            };
        }
    }
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => ("UNAUTHORIZED", "authentication required"),
        StatusCode::FORBIDDEN => ("DENIED", "requested access to the resource is denied"),
        StatusCode::NOT_FOUND => ("NOT_FOUND", "not found"),
        StatusCode::TOO_MANY_REQUESTS => ("TOOMANYREQUESTS", "too many requests"),
        _ => (
            "UNKNOWN",
            status.canonical_reason().unwrap_or("unknown error"),
        ),
    };
    RegistryError::Registry {
        status: status.as_u16(),
        code: code.to_string(),
        message: message.to_string(),
    }
}

/// Makes [`Session`]s; shared by every pull and push of berthd.
#[derive(Debug)]
pub struct Registry {
    transport: Transport,
    config: RegistryConfig,
}

/// One registry endpoint: its base URL and how to check its certificate.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub base: url::Url,
    pub verify: Verify,
    /// May fall back to plain HTTP.
    pub insecure: bool,
    /// A mirror (pull only; failures fall through to the next endpoint).
    pub mirror: bool,
}

impl Registry {
    pub fn new(config: RegistryConfig) -> Registry {
        let agent = format!("berth/{}", env!("CARGO_PKG_VERSION"));
        Registry {
            transport: Transport::new(config.certs_dir.clone(), &agent),
            config,
        }
    }

    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The registry itself for `domain`, never a mirror: where pushes, tag lists and
    /// logins go.
    pub async fn endpoint(&self, domain: &str) -> Result<Endpoint, String> {
        self.endpoints(domain, true)
            .await?
            .pop()
            .ok_or_else(|| "no registry endpoint".to_string())
    }

    /// Where `domain`'s repositories are served: mirrors first for Docker Hub (pulls only).
    pub async fn endpoints(&self, domain: &str, for_push: bool) -> Result<Vec<Endpoint>, String> {
        let mut out = Vec::new();
        if domain == "docker.io" && !for_push {
            for m in &self.config.mirrors {
                let base = url::Url::parse(m).map_err(|e| format!("registry mirror {m}: {e}"))?;
                let hp = base
                    .host_str()
                    .map(|h| match base.port() {
                        Some(p) => format!("{h}:{p}"),
                        None => h.to_string(),
                    })
                    .unwrap_or_default();
                let insecure = self.is_insecure(&hp).await;
                out.push(Endpoint {
                    verify: if insecure {
                        Verify::Nothing
                    } else {
                        Verify::Roots
                    },
                    base,
                    insecure,
                    mirror: true,
                });
            }
        }
        let host = if domain == "docker.io" {
            DOCKER_HUB
        } else {
            domain
        };
        let insecure = self.is_insecure(host).await;
        let base = url::Url::parse(&format!("https://{host}/"))
            .map_err(|e| format!("invalid registry {host}: {e}"))?;
        out.push(Endpoint {
            base,
            verify: if insecure {
                Verify::Nothing
            } else {
                Verify::Roots
            },
            insecure,
            mirror: false,
        });
        Ok(out)
    }

    /// Docker's rule: a registry named in `insecure-registries` (by `host:port`, or by an
    /// address within a listed CIDR), or one on a loopback address.
    async fn is_insecure(&self, hostport: &str) -> bool {
        if self.config.insecure.iter().any(|i| i == hostport) {
            return true;
        }
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => {
                (h.to_string(), p.parse().unwrap_or(443))
            }
            _ => (hostport.to_string(), 443u16),
        };
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let addrs: Vec<IpAddr> = match bare.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => match tokio::net::lookup_host((bare.as_str(), port)).await {
                Ok(it) => it.map(|a| a.ip()).collect(),
                Err(_) => Vec::new(),
            },
        };
        // Loopback only when every address is (a DNS answer that adds 127.0.0.1 to a
        // registry's does not turn its TLS off).
        let loopback = !addrs.is_empty() && addrs.iter().all(|ip| ip.is_loopback());
        loopback
            || addrs
                .iter()
                .any(|ip| self.config.insecure.iter().any(|c| cidr_contains(c, ip)))
    }

    /// A session for `repo` (`library/busybox`) at `endpoint`, for `actions`
    /// (`pull`, `pull,push`): finds the scheme (an insecure registry falls back to plain
    /// HTTP when it speaks no TLS) and the registry's challenge.
    pub async fn session(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        repo: &str,
        auth: &AuthConfig,
        actions: &str,
    ) -> Result<Session, RegistryError> {
        self.session_scoped(
            endpoint,
            repo,
            auth,
            vec![format!("repository:{repo}:{actions}")],
        )
        .await
    }

    /// [`Registry::session`] whose token covers `scopes` (`repository:x:pull,push`, and
    /// `repository:y:pull` for a blob mounted from `y`).
    pub async fn session_scoped(
        self: &Arc<Self>,
        endpoint: &Endpoint,
        repo: &str,
        auth: &AuthConfig,
        scopes: Vec<String>,
    ) -> Result<Session, RegistryError> {
        let mut base = endpoint.base.clone();
        let ping = |base: url::Url| async move {
            let url = base
                .join("v2/")
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            self.transport
                .send(
                    Method::GET,
                    &url,
                    HeaderMap::new(),
                    transport::empty(),
                    endpoint.verify,
                )
                .await
                .map_err(|e| RegistryError::Transport(format!("Get \"{url}\": {e}")))
        };
        let response = match ping(base.clone()).await {
            Ok(r) => r,
            Err(e) if endpoint.insecure && base.scheme() == "https" => {
                let _ = base.set_scheme("http");
                // Docker reports the plain-HTTP attempt's error when both fail.
                let _ = e;
                ping(base.clone()).await?
            }
            Err(e) => return Err(e),
        };
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .and_then(Challenge::parse);
        let status = response.status();
        drop(response);
        if !status.is_success() && status != StatusCode::UNAUTHORIZED {
            return Err(RegistryError::Transport(format!(
                "Get \"{}v2/\": the registry answered {status}",
                base
            )));
        }
        Ok(Session {
            registry: self.clone(),
            base,
            verify: endpoint.verify,
            repo: repo.to_string(),
            auth: auth.clone(),
            scopes,
            challenge,
            authorization: Mutex::new(None),
        })
    }
}

/// Whether `cidr` (`10.0.0.0/8`) holds `ip`.
fn cidr_contains(cidr: &str, ip: &IpAddr) -> bool {
    let Some((net, bits)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(n) & mask == u32::from(*a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(n) & mask == u128::from(*a) & mask
        }
        _ => false,
    }
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

impl Challenge {
    pub(crate) fn parse(value: &str) -> Option<Challenge> {
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let params = parse_params(rest);
                let realm = params.iter().find(|(k, _)| k == "realm")?.1.clone();
                let service = params
                    .iter()
                    .find(|(k, _)| k == "service")
                    .map(|(_, v)| v.clone());
                Some(Challenge::Bearer { realm, service })
            }
            _ => None,
        }
    }
}

/// `k="v", k2=v2` (quoted strings may hold commas and `\"`).
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars
            .by_ref()
            .take_while(|c| *c != '=')
            .collect::<String>()
            .trim()
            .to_ascii_lowercase();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek() {
                if *c == ',' {
                    break;
                }
                value.push(*c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        out.push((key, value));
    }
    out
}

/// Whether credentials may go to a token realm for a registry at `base`: an http(s) URL,
/// and not plain HTTP for a registry reached over TLS. A registry reached over plain HTTP
/// (an insecure one) may name a plain HTTP realm: berth's own registry in token mode names
/// itself, and basic auth would send the same credentials there in clear anyway.
fn realm_allowed(realm: &url::Url, base: &url::Url) -> bool {
    match realm.scheme() {
        "https" => true,
        "http" => base.scheme() == "http",
        _ => false,
    }
}

/// Requests to one repository, authorised.
#[derive(Debug)]
pub struct Session {
    registry: Arc<Registry>,
    base: url::Url,
    verify: Verify,
    repo: String,
    auth: AuthConfig,
    /// What a token is asked for.
    scopes: Vec<String>,
    challenge: Option<Challenge>,
    /// The `Authorization` value in use (a token got, or basic credentials).
    authorization: Mutex<Option<HeaderValue>>,
}

/// The token endpoint's answer.
#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    /// An OAuth refresh token, when one was asked for (`offline_token`, `access_type`):
    /// what `docker login` keeps as the `identitytoken` instead of the password.
    #[serde(default)]
    refresh_token: String,
}

impl Session {
    /// `http://127.0.0.1:5000/` or `https://registry/`.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The URL of `/v2/<repo>/<rest>`.
    pub fn url(&self, rest: &str) -> url::Url {
        self.base
            .join(&format!("v2/{}/{rest}", self.repo))
            .expect("a repository path joins a base URL")
    }

    /// Gets (once) what authorises requests: a token for the challenge's realm, or basic
    /// credentials.
    async fn authorize(&self) -> Result<Option<HeaderValue>, RegistryError> {
        if let Some(v) = self
            .authorization
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Ok(Some(v));
        }
        let value = match &self.challenge {
            None => return Ok(None),
            Some(Challenge::Basic) => {
                if !self.auth.has_password() {
                    return Err(RegistryError::Unauthorized(
                        "no basic auth credentials".to_string(),
                    ));
                }
                basic(&self.auth)
            }
            Some(Challenge::Bearer { realm, service }) => {
                if !self.auth.registry_token.is_empty() {
                    HeaderValue::from_str(&format!("Bearer {}", self.auth.registry_token))
                        .map_err(|_| RegistryError::Invalid("invalid registry token".into()))?
                } else {
                    let token = self.fetch_token(realm, service.as_deref(), false).await?.0;
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        RegistryError::Invalid("the token server sent an invalid token".into())
                    })?
                }
            }
        };
        *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = Some(value.clone());
        Ok(Some(value))
    }

    /// `docker login`'s check: the credentials get a token (with no scope) or pass basic
    /// auth at `/v2/`; a registry without auth takes any. A token server that hands out
    /// refresh tokens gives one, which the client keeps instead of the password (as
    /// Docker's `IdentityToken`).
    pub async fn check_login(&self) -> Result<Option<String>, RegistryError> {
        match &self.challenge {
            None => Ok(None),
            Some(Challenge::Bearer { realm, service }) => {
                let (_, refresh) = self.fetch_token(realm, service.as_deref(), true).await?;
                Ok(refresh)
            }
            Some(Challenge::Basic) => {
                if !self.auth.has_password() {
                    // An identity token is for a token server; basic auth has no use for it.
                    return Err(RegistryError::Unauthorized(
                        "no basic auth credentials".to_string(),
                    ));
                }
                let url = self
                    .base
                    .join("v2/")
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?;
                let mut headers = HeaderMap::new();
                headers.insert(AUTHORIZATION, basic(&self.auth));
                let response = self
                    .registry
                    .transport
                    .send(Method::GET, &url, headers, transport::empty(), self.verify)
                    .await
                    .map_err(|e| RegistryError::Transport(format!("Get \"{url}\": {e}")))?;
                if response.status().is_success() {
                    return Ok(None);
                }
                Err(RegistryError::Unauthorized(format!(
                    "login attempt to {url} failed with status: {}",
                    response.status()
                )))
            }
        }
    }

    /// A token for the session's scopes from the challenge's realm: by `GET` with basic
    /// credentials (or none), or, holding an identity token, by OAuth's `POST` of the
    /// refresh token (as Docker). `offline` asks for a refresh token too; the answer is
    /// the token and any refresh token.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        offline: bool,
    ) -> Result<(String, Option<String>), RegistryError> {
        let mut url = url::Url::parse(realm)
            .map_err(|e| RegistryError::Invalid(format!("invalid token realm {realm:?}: {e}")))?;
        if !realm_allowed(&url, &self.base) {
            return Err(RegistryError::Invalid(format!(
                "invalid token realm {realm:?}"
            )));
        }
        let mut headers = HeaderMap::new();
        let oauth = !self.auth.identity_token.is_empty();
        let (method, body) = if oauth {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", &self.auth.identity_token)
                .append_pair("client_id", OAUTH_CLIENT_ID);
            if let Some(s) = service {
                form.append_pair("service", s);
            }
            if !self.scopes.is_empty() {
                form.append_pair("scope", &self.scopes.join(" "));
            }
            if offline {
                form.append_pair("access_type", "offline");
            }
            headers.insert(
                hyper::header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            (Method::POST, transport::full(form.finish()))
        } else {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in &self.scopes {
                q.append_pair("scope", s);
            }
            if self.auth.has_password() {
                q.append_pair("account", &self.auth.username);
                headers.insert(AUTHORIZATION, basic(&self.auth));
                if offline {
                    q.append_pair("offline_token", "true")
                        .append_pair("client_id", OAUTH_CLIENT_ID);
                }
            }
            drop(q);
            (Method::GET, transport::empty())
        };
        let shown = format!("{} \"{realm}\"", go_method(&method));
        let verify = self.verify_for(&url);
        let response = self
            .registry
            .transport
            .send(method, &url, headers, body, verify)
            .await
            .map_err(|e| RegistryError::Transport(format!("{shown}: {e}")))?;
        // OAuth answers a refused refresh token with 400 `invalid_grant`.
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
            || (response.status() == StatusCode::BAD_REQUEST && oauth)
        {
            let e = error_of(response).await;
            return Err(RegistryError::Unauthorized(match e {
                RegistryError::Registry { message, .. } if !message.is_empty() => {
                    format!("unauthorized: {message}")
                }
                _ => "unauthorized: incorrect username or password".to_string(),
            }));
        }
        if !response.status().is_success() {
            return Err(error_of(response).await);
        }
        let mut body = response.into_body();
        let bytes = transport::read_limited(&mut body, MAX_SMALL_BODY)
            .await
            .map_err(|e| RegistryError::Transport(format!("{shown}: {e}")))?;
        let t: TokenResponse = serde_json::from_slice(&bytes)
            .map_err(|e| RegistryError::Invalid(format!("the token server's answer: {e}")))?;
        let token = if t.token.is_empty() {
            t.access_token
        } else {
            t.token
        };
        if token.is_empty() {
            return Err(RegistryError::Invalid(
                "the token server sent no token".into(),
            ));
        }
        Ok((token, Some(t.refresh_token).filter(|r| !r.is_empty())))
    }

    /// How a URL's certificate is checked: as the registry's when on the registry's host,
    /// else against the roots.
    fn verify_for(&self, url: &url::Url) -> Verify {
        if self.same_origin(url) {
            self.verify
        } else {
            Verify::Roots
        }
    }

    /// Whether `url` is the registry's own (scheme, host and port).
    fn same_origin(&self, url: &url::Url) -> bool {
        url.origin() == self.base.origin()
    }

    /// One request to the registry, authorised; redirects are followed (without the
    /// credentials when they lead to another host) when `follow` is set. `body` makes the
    /// request's body (again, after a redirect).
    pub async fn send(
        &self,
        method: Method,
        url: url::Url,
        headers: HeaderMap,
        body: &(dyn Fn() -> ReqBody + Sync),
        follow: bool,
    ) -> Result<Response<Incoming>, RegistryError> {
        let first = url.to_string();
        let mut url = url;
        let mut renewed = false;
        let mut hops = 0;
        while hops <= MAX_REDIRECTS {
            let mut h = headers.clone();
            // The registry's own origin (scheme too: credentials never go over plain HTTP
            // to a registry reached over TLS).
            let same_host = self.same_origin(&url);
            if same_host {
                if let Some(a) = self.authorize().await? {
                    h.insert(AUTHORIZATION, a);
                }
            }
            let shown = url.to_string();
            let response = self
                .registry
                .transport
                .send(method.clone(), &url, h, body(), self.verify_for(&url))
                .await
                .map_err(|e| {
                    RegistryError::Transport(format!("{} \"{shown}\": {e}", go_method(&method)))
                })?;
            if response.status() == StatusCode::UNAUTHORIZED && same_host {
                // A token expires (Docker Hub's after 300 s): a long pull or push asks for
                // a new one, once.
                if !renewed && matches!(self.challenge, Some(Challenge::Bearer { .. })) {
                    renewed = true;
                    *self.authorization.lock().unwrap_or_else(|e| e.into_inner()) = None;
                    continue;
                }
                let e = error_of(response).await;
                return Err(RegistryError::Unauthorized(e.to_string()));
            }
            if follow && response.status().is_redirection() {
                let location = response
                    .headers()
                    .get(LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        RegistryError::Invalid(format!("{shown}: a redirect without a Location"))
                    })?;
                url = url.join(location).map_err(|e| {
                    RegistryError::Invalid(format!("{shown}: redirected to {location:?}: {e}"))
                })?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(RegistryError::Invalid(format!(
                        "{shown}: redirected to a {} URL",
                        url.scheme()
                    )));
                }
                hops += 1;
                continue;
            }
            return Ok(response);
        }
        // Go's words. Not a transport error: a download that loops is not resumed.
        Err(RegistryError::Invalid(format!(
            "{} \"{first}\": stopped after {MAX_REDIRECTS} redirects",
            go_method(&method)
        )))
    }
}

fn go_method(m: &Method) -> String {
    let s = m.as_str();
    let mut out = s[..1].to_string();
    out.push_str(&s[1..].to_lowercase());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into())
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse("Bearer service=x"), None);
        assert_eq!(Challenge::parse("Negotiate"), None);
    }

    #[test]
    fn token_realms_over_plain_http_only_for_plain_http_registries() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        let plain = u("http://127.0.0.1:5000/");
        let tls = u("https://127.0.0.1:5000/");
        assert!(realm_allowed(&u("http://127.0.0.1:5000/token"), &plain));
        assert!(realm_allowed(&u("https://auth.example/token"), &plain));
        assert!(realm_allowed(&u("https://127.0.0.1:5000/token"), &tls));
        assert!(!realm_allowed(&u("http://127.0.0.1:5000/token"), &tls));
        assert!(!realm_allowed(&u("ftp://127.0.0.1/token"), &plain));
    }

    #[test]
    fn cidrs_hold_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains("10.0.0.0/8", &ip("10.1.2.3")));
        assert!(!cidr_contains("10.0.0.0/8", &ip("11.0.0.1")));
        assert!(cidr_contains("0.0.0.0/0", &ip("1.2.3.4")));
        assert!(cidr_contains("fd00::/8", &ip("fd12::1")));
        assert!(!cidr_contains("fd00::/8", &ip("10.0.0.1")));
        assert!(!cidr_contains("junk", &ip("10.0.0.1")));
    }
}
