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

use crate::transport::{self, ReqBody, Transport, Verify};

/// Docker Hub's registry for `docker.io` names.
const DOCKER_HUB: &str = "registry-1.docker.io";
/// Redirects a blob request may take (Go's client stops after 10).
const MAX_REDIRECTS: usize = 10;
/// The most bytes of an error document or token response read.
const MAX_SMALL_BODY: usize = 1 << 20;

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

/// Credentials as the docker CLI sends them (`X-Registry-Auth`, `POST /auth`). Its
/// `Debug` shows the username and server only.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// `base64(username:password)`, as config.json keeps it.
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// The `X-Registry-Auth` header: base64url (padded or not) of the JSON. An empty or
    /// `{}` header means no credentials.
    pub fn from_header(value: &str) -> Result<AuthConfig, String> {
        use base64::Engine;
        let value = value.trim();
        if value.is_empty() {
            return Ok(AuthConfig::default());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(value.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(value))
            .map_err(|_| "invalid X-Registry-Auth header: not base64".to_string())?;
        let mut auth: AuthConfig = serde_json::from_slice(&bytes)
            .map_err(|e| format!("invalid X-Registry-Auth header: {e}"))?;
        auth.fill_from_auth();
        Ok(auth)
    }

    /// Username and password from `auth` when only it is given.
    pub fn fill_from_auth(&mut self) {
        use base64::Engine;
        if self.username.is_empty() && !self.auth.is_empty() {
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(self.auth.trim()) {
                if let Ok(s) = String::from_utf8(b) {
                    if let Some((u, p)) = s.split_once(':') {
                        self.username = u.to_string();
                        self.password = p.to_string();
                    }
                }
            }
        }
    }

    fn has_password(&self) -> bool {
        !self.username.is_empty() || !self.password.is_empty()
    }

    fn basic(&self) -> HeaderValue {
        use base64::Engine;
        let raw = format!("{}:{}", self.username, self.password);
        HeaderValue::from_str(&format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        ))
        .expect("base64 is a valid header value")
    }
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
                self.auth.basic()
            }
            Some(Challenge::Bearer { realm, service }) => {
                if !self.auth.registry_token.is_empty() {
                    HeaderValue::from_str(&format!("Bearer {}", self.auth.registry_token))
                        .map_err(|_| RegistryError::Invalid("invalid registry token".into()))?
                } else {
                    let token = self.fetch_token(realm, service.as_deref()).await?;
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
    /// auth at `/v2/`; a registry without auth takes any.
    pub async fn check_login(&self) -> Result<(), RegistryError> {
        match &self.challenge {
            None => Ok(()),
            Some(Challenge::Bearer { realm, service }) => {
                self.fetch_token(realm, service.as_deref()).await.map(drop)
            }
            Some(Challenge::Basic) => {
                let url = self
                    .base
                    .join("v2/")
                    .map_err(|e| RegistryError::Invalid(e.to_string()))?;
                let mut headers = HeaderMap::new();
                headers.insert(AUTHORIZATION, self.auth.basic());
                let response = self
                    .registry
                    .transport
                    .send(Method::GET, &url, headers, transport::empty(), self.verify)
                    .await
                    .map_err(|e| RegistryError::Transport(format!("Get \"{url}\": {e}")))?;
                if response.status().is_success() {
                    return Ok(());
                }
                Err(RegistryError::Unauthorized(format!(
                    "login attempt to {url} failed with status: {}",
                    response.status()
                )))
            }
        }
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
    ) -> Result<String, RegistryError> {
        let mut url = url::Url::parse(realm)
            .map_err(|e| RegistryError::Invalid(format!("invalid token realm {realm:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https")
            || (url.scheme() == "http" && self.base.scheme() == "https")
        {
            // Credentials would go over plain HTTP for a registry reached over TLS.
            return Err(RegistryError::Invalid(format!(
                "invalid token realm {realm:?}"
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in &self.scopes {
                q.append_pair("scope", s);
            }
            if self.auth.has_password() {
                q.append_pair("account", &self.auth.username);
            }
        }
        let mut headers = HeaderMap::new();
        if self.auth.has_password() {
            headers.insert(AUTHORIZATION, self.auth.basic());
        }
        let verify = self.verify_for(&url);
        let response = self
            .registry
            .transport
            .send(Method::GET, &url, headers, transport::empty(), verify)
            .await
            .map_err(|e| RegistryError::Transport(format!("Get \"{realm}\": {e}")))?;
        if response.status() == StatusCode::UNAUTHORIZED
            || response.status() == StatusCode::FORBIDDEN
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
            .map_err(|e| RegistryError::Transport(format!("Get \"{realm}\": {e}")))?;
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
        Ok(token)
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
    fn auth_headers_decode() {
        use base64::Engine;
        let json = r#"{"username":"u","password":"p?>","serveraddress":"h:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = AuthConfig::from_header(&url).unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p?>"));
        assert_eq!(
            AuthConfig::from_header("e30=").unwrap(),
            AuthConfig::default()
        );
        assert_eq!(AuthConfig::from_header("").unwrap(), AuthConfig::default());
        let b = base64::engine::general_purpose::STANDARD.encode(r#"{"auth":"dTpw"}"#);
        let a = AuthConfig::from_header(&b).unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        assert!(AuthConfig::from_header("!!!").is_err());
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
