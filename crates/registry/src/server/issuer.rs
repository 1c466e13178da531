//! `--auth token`: the server issues its own bearer tokens at `/token` (Docker's token
//! protocol: `GET` with optional Basic credentials, and the OAuth2 `POST` with
//! `grant_type=password` or `refresh_token`) and checks them on every `/v2/` request.
//!
//! A request without a valid token gets 401 and
//! `WWW-Authenticate: Bearer realm="<base>/token",service="<service>",scope="<what it needs>"`,
//! which is what the docker CLI, containerd and skopeo follow. The realm is
//! `--token-realm`, else this server's own URL as the client reached it (its `Host`
//! header, checked to be a host name or address), so a client sends its credentials back
//! to where it already is.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::access::Policy;
use super::auth::Htpasswd;
use super::handlers::{
    basic_user, err, header, json_response, unsupported, verify_password, ApiError, Body, State,
    BODY_IDLE,
};
use super::names::Route;
use super::token::{self, Actions, Claims, Keys, Resource, Scope};

/// The largest `POST /token` form accepted.
pub const MAX_FORM: usize = 64 << 10;
/// The most query or form parameters a token request may have.
const MAX_PARAMS: usize = 64;

/// What token mode needs: who the users are, the keys, the service name, the policy.
pub struct TokenAuth {
    pub htpasswd: Htpasswd,
    pub keys: Keys,
    /// The tokens' audience, `service=` in the challenge and the token request.
    pub service: String,
    /// `--token-realm`; else `<scheme>://<Host>/token` of each request.
    pub realm: Option<String>,
    /// Whether the server speaks TLS (the realm's scheme).
    pub tls: bool,
    /// The listening address: the realm's host when a request has no usable `Host`.
    pub listen: String,
    pub policy: Policy,
}

/// A `Host` header a realm can be made of: a name or address and a port, nothing that
/// could end the quoted string or add a path.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 261
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
}

/// A service name fit for a quoted challenge parameter.
pub fn valid_service(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\' && b != b',')
}

impl TokenAuth {
    fn realm(&self, req: &Request<Incoming>) -> String {
        if let Some(r) = &self.realm {
            return r.clone();
        }
        let scheme = if self.tls { "https" } else { "http" };
        let host = header(req, HOST)
            .filter(|h| valid_host(h))
            .unwrap_or(&self.listen);
        format!("{scheme}://{host}/token")
    }

    /// The `WWW-Authenticate` value for a request that needs `scope`.
    fn challenge(
        &self,
        req: &Request<Incoming>,
        scope: Option<&Scope>,
        error: Option<&str>,
    ) -> String {
        let mut c = format!(
            "Bearer realm=\"{}\",service=\"{}\"",
            self.realm(req),
            self.service
        );
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{}\"", s.to_scope_string()));
        }
        if let Some(e) = error {
            c.push_str(&format!(",error=\"{e}\""));
        }
        c
    }
}

/// What a request needs of its token: the resource, the action checked, and the scope a
/// client is told to ask for (docker asks `pull,push` to push).
fn required(route: &Route, method: &Method) -> Option<(Scope, Actions)> {
    let read = matches!(*method, Method::GET | Method::HEAD);
    let repo = |name: &str, needed: Actions, asked: Actions| {
        Some((
            Scope {
                resource: Resource::Repository(name.to_string()),
                actions: asked,
            },
            needed,
        ))
    };
    let pull_push = Actions::PULL.union(Actions::PUSH);
    match route {
        Route::Base => None,
        Route::Catalog => Some((
            Scope {
                resource: Resource::Catalog,
                actions: Actions::ALL,
            },
            Actions::PULL,
        )),
        Route::Tags { name } | Route::Referrers { name, .. } => {
            repo(name, Actions::PULL, Actions::PULL)
        }
        Route::Manifest { name, .. } | Route::Blob { name, .. } => {
            if read {
                repo(name, Actions::PULL, Actions::PULL)
            } else if *method == Method::DELETE {
                repo(name, Actions::DELETE, Actions::DELETE)
            } else {
                repo(name, Actions::PUSH, pull_push)
            }
        }
        Route::UploadStart { name } | Route::Upload { name, .. } => {
            repo(name, Actions::PUSH, pull_push)
        }
    }
}

/// The token's claims when it covers this request; else 401 with the challenge.
pub fn authorize(
    t: &TokenAuth,
    req: &Request<Incoming>,
    route: &Route,
) -> Result<Claims, ApiError> {
    let needed = required(route, req.method());
    let scope = needed.as_ref().map(|(s, _)| s);
    let token = header(req, AUTHORIZATION)
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim());
    let Some(token) = token else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        )
        .challenge(t.challenge(req, scope, None)));
    };
    let claims =
        t.keys
            .verify_access(token, &t.service, token::now())
            .map_err(|e| {
                tracing::debug!("token refused: {e:?}");
                err(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "invalid token")
                    .challenge(t.challenge(req, scope, Some("invalid_token")))
            })?;
    if let Some((s, action)) = &needed {
        if !claims.allows(&s.resource, *action) {
            let detail = match &s.resource {
                Resource::Repository(n) => {
                    json!([{"type": "repository", "name": n, "action": action.names().join(",")}])
                }
                Resource::Catalog => {
                    json!([{"type": "registry", "name": "catalog", "action": "*"}])
                }
            };
            return Err(err(
                StatusCode::UNAUTHORIZED,
                "DENIED",
                "requested access to the resource is denied",
            )
            .detail(detail)
            .challenge(t.challenge(req, scope, Some("insufficient_scope"))));
        }
    }
    Ok(claims)
}

fn unauthorized(message: &str) -> ApiError {
    err(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", message)
}

fn bad_request(message: &str) -> ApiError {
    err(StatusCode::BAD_REQUEST, "UNSUPPORTED", message)
}

/// `/token`: `GET` (Docker's token protocol) or `POST` (OAuth2).
pub async fn token_endpoint(
    state: &Arc<State>,
    t: &TokenAuth,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    match *req.method() {
        Method::GET => get_token(state, t, req).await,
        Method::POST => post_token(state, t, req).await,
        _ => Err(unsupported("the token endpoint takes GET and POST")),
    }
}

type Params = Vec<(String, String)>;

fn params(bytes: &[u8]) -> Result<Params, ApiError> {
    let p: Params = url::form_urlencoded::parse(bytes).into_owned().collect();
    if p.len() > MAX_PARAMS {
        return Err(bad_request("too many parameters"));
    }
    Ok(p)
}

fn param<'a>(p: &'a Params, key: &str) -> Option<&'a str> {
    p.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// The requested scopes: each `scope` parameter, each holding one or more scopes
/// separated by spaces (OAuth2's form).
fn scopes(p: &Params) -> Result<Vec<Scope>, ApiError> {
    let mut out = Vec::new();
    let asked = p
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' '))
        .filter(|s| !s.is_empty());
    // Counted as asked, those of types berth does not serve too.
    for (n, s) in asked.enumerate() {
        if n >= token::MAX_SCOPES {
            return Err(unauthorized("too many scopes"));
        }
        if let Some(scope) = Scope::parse(s).map_err(|e| unauthorized(&e))? {
            out.push(scope);
        }
    }
    Ok(out)
}

fn check_service(t: &TokenAuth, p: &Params) -> Result<(), ApiError> {
    match param(p, "service") {
        Some(s) if s == t.service => Ok(()),
        Some(_) => Err(unauthorized("unknown service")),
        None => Err(unauthorized("service parameter missing")),
    }
}

async fn get_token(
    state: &Arc<State>,
    t: &TokenAuth,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let p = params(req.uri().query().unwrap_or("").as_bytes())?;
    check_service(t, &p)?;
    let scopes = scopes(&p)?;
    let user = match header(&req, AUTHORIZATION) {
        None => None,
        Some(a) => Some(
            basic_user(state, Some(a.to_string()))
                .await?
                .ok_or_else(|| unauthorized("incorrect username or password"))?,
        ),
    };
    if let (Some(account), Some(u)) = (param(&p, "account"), &user) {
        if account != u {
            return Err(unauthorized("account does not match the credentials"));
        }
    }
    let offline = param(&p, "offline_token") == Some("true") && user.is_some();
    let now = token::now();
    Ok(issue(
        t,
        user.as_deref().map(|u| (u, now)),
        &scopes,
        offline,
        false,
    ))
}

async fn post_token(
    state: &Arc<State>,
    t: &TokenAuth,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let form = header(&req, CONTENT_TYPE).is_some_and(|c| {
        c.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !form {
        return Err(bad_request(
            "the token form must be application/x-www-form-urlencoded",
        ));
    }
    let announced = header(&req, hyper::header::CONTENT_LENGTH).and_then(|l| l.parse::<u64>().ok());
    if announced.is_some_and(|l| l > MAX_FORM as u64) {
        return Err(too_large());
    }
    let body = read_form(req.into_body()).await?;
    let p = params(&body)?;
    check_service(t, &p)?;
    let scopes = scopes(&p)?;
    // (the user, and when they last gave their password)
    let (user, auth_time) = match param(&p, "grant_type") {
        Some("password") => {
            let (Some(user), Some(password)) = (param(&p, "username"), param(&p, "password"))
            else {
                return Err(bad_request("username and password are required"));
            };
            if !verify_password(state, user.to_string(), password.to_string()).await? {
                return Err(unauthorized("incorrect username or password"));
            }
            (user.to_string(), token::now())
        }
        Some("refresh_token") => {
            let refresh = param(&p, "refresh_token")
                .ok_or_else(|| bad_request("refresh_token is required"))?;
            let claims = t
                .keys
                .verify_refresh(refresh, &t.service, token::now())
                .map_err(|e| {
                    tracing::debug!("refresh token refused: {e:?}");
                    unauthorized("invalid refresh token")
                })?;
            // A user removed from the htpasswd file, or whose password changed, keeps no
            // access: the token names the entry it was given for.
            if claims.sub.is_empty()
                || claims.auth_time == 0
                || t.htpasswd.entry_print(&claims.sub).as_deref() != Some(claims.pwd.as_str())
            {
                return Err(unauthorized("invalid refresh token"));
            }
            (claims.sub, claims.auth_time)
        }
        _ => return Err(bad_request("grant_type must be password or refresh_token")),
    };
    let offline = param(&p, "access_type") == Some("offline");
    Ok(issue(t, Some((&user, auth_time)), &scopes, offline, true))
}

fn too_large() -> ApiError {
    err(
        StatusCode::PAYLOAD_TOO_LARGE,
        "SIZE_INVALID",
        "token request too large",
    )
}

/// Reads a form body of at most [`MAX_FORM`] bytes.
async fn read_form(mut body: Incoming) -> Result<Bytes, ApiError> {
    let mut buf = Vec::new();
    loop {
        match tokio::time::timeout(BODY_IDLE, body.frame()).await {
            Err(_) => return Err(bad_request("request body timed out")),
            Ok(None) => return Ok(buf.into()),
            Ok(Some(Err(e))) => return Err(bad_request(&format!("reading request body: {e}"))),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    if buf.len() + data.len() > MAX_FORM {
                        return Err(too_large());
                    }
                    buf.extend_from_slice(&data);
                }
            }
        }
    }
}

/// Signs a token for `user` with what the policy grants of `scopes`; a refresh token too
/// when asked for (and a user is known). `user` comes with the time they last gave their
/// password: a refresh token lasts [`token::REFRESH_TTL`] from then, however often it is
/// renewed, and holds only while their htpasswd entry stays the same.
fn issue(
    t: &TokenAuth,
    user: Option<(&str, u64)>,
    scopes: &[Scope],
    offline: bool,
    oauth: bool,
) -> Response<Body> {
    let now = token::now();
    let (user, auth_time) = match user {
        Some((u, at)) => (Some(u), at),
        None => (None, now),
    };
    let access = t.policy.grant(user, scopes);
    let granted: Vec<String> = access
        .iter()
        .map(|e| format!("{}:{}:{}", e.kind, e.name, e.actions.join(",")))
        .collect();
    let user_name = user.unwrap_or("");
    let access_token = t.keys.sign_access(&token::claims(
        user_name,
        &t.service,
        access,
        now,
        token::ACCESS_TTL,
    ));
    tracing::info!(
        "token for {} ({})",
        if user_name.is_empty() {
            "anonymous"
        } else {
            user_name
        },
        if granted.is_empty() {
            "no access".to_string()
        } else {
            granted.join(" ")
        }
    );
    let issued_at = chrono::DateTime::from_timestamp(now as i64, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut answer = json!({
        "token": access_token,
        "access_token": access_token,
        "expires_in": token::ACCESS_TTL,
        "issued_at": issued_at,
    });
    if oauth {
        answer["scope"] = json!(granted.join(" "));
    }
    if offline {
        let left = (auth_time + token::REFRESH_TTL).saturating_sub(now);
        if let (Some(u), Some(print)) = (user, user.and_then(|u| t.htpasswd.entry_print(u))) {
            if left > 0 {
                let mut refresh = token::claims(u, &t.service, Vec::new(), now, left);
                refresh.auth_time = auth_time;
                refresh.pwd = print;
                answer["refresh_token"] = json!(t.keys.sign_refresh(&refresh));
            }
        }
    }
    let mut r = json_response(StatusCode::OK, &answer);
    // A token is a credential: no cache keeps it.
    r.headers_mut()
        .insert("Cache-Control", HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_need_the_action_docker_asks_for() {
        let name = || "a/b".to_string();
        let need =
            |route: Route, m: Method| required(&route, &m).map(|(s, a)| (s.to_scope_string(), a));
        assert_eq!(need(Route::Base, Method::GET), None);
        assert_eq!(
            need(Route::Catalog, Method::GET),
            Some(("registry:catalog:*".into(), Actions::PULL))
        );
        let manifest = || Route::Manifest {
            name: name(),
            reference: "1".into(),
        };
        assert_eq!(
            need(manifest(), Method::HEAD),
            Some(("repository:a/b:pull".into(), Actions::PULL))
        );
        assert_eq!(
            need(manifest(), Method::PUT),
            Some(("repository:a/b:pull,push".into(), Actions::PUSH))
        );
        assert_eq!(
            need(manifest(), Method::DELETE),
            Some(("repository:a/b:delete".into(), Actions::DELETE))
        );
        assert_eq!(
            need(Route::UploadStart { name: name() }, Method::POST),
            Some(("repository:a/b:pull,push".into(), Actions::PUSH))
        );
        let upload = Route::Upload {
            name: name(),
            id: "0".repeat(32),
        };
        assert_eq!(need(upload, Method::GET).unwrap().1, Actions::PUSH);
    }

    #[test]
    fn realm_hosts_and_services_cannot_break_the_challenge() {
        assert!(valid_host("127.0.0.1:5000"));
        assert!(valid_host("[::1]:5000"));
        assert!(valid_host("registry.example"));
        for bad in ["", "a\"b", "a/b", "a b", "a,b", "evil\r\nx"] {
            assert!(!valid_host(bad), "{bad:?}");
        }
        assert!(valid_service("berth-registry"));
        for bad in ["", "a\"b", "a b", "a,b", "a\\b"] {
            assert!(!valid_service(bad), "{bad:?}");
        }
    }

    #[test]
    fn scopes_are_counted_and_checked() {
        let p = |s: &str| params(s.as_bytes()).unwrap();
        let got = scopes(&p(
            "scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apush+registry%3Acatalog%3A*",
        ))
        .unwrap();
        assert_eq!(got.len(), 3);
        let e = scopes(&p("scope=repository%3AA%3Apull")).unwrap_err();
        assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
        let many: Vec<String> = (0..40)
            .map(|i| format!("scope=repository:r{i}:pull"))
            .collect();
        assert!(scopes(&p(&many.join("&"))).is_err());
        let unknown: Vec<String> = (0..40).map(|i| format!("other:r{i}:x")).collect();
        assert!(scopes(&p(&format!("scope={}", unknown.join("+")))).is_err());
        let lots: Vec<String> = (0..100).map(|i| format!("k{i}=v")).collect();
        assert!(params(lots.join("&").as_bytes()).is_err());
    }
}
