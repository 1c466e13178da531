//! The bearer tokens of `--auth token`, as Docker's token protocol uses them: what a
//! client asks for (scopes, `repository:<name>:pull,push`), what a token grants (its
//! access list), and the tokens themselves, JWTs signed with HMAC-SHA256 (`ring::hmac`).
//!
//! The server is its own token issuer, so a shared secret is enough: no certificate chain
//! to hand out. The secret is 32 random bytes made on first start under the registry's
//! root (`token.key`, mode 0600); access and refresh tokens are signed with two keys
//! derived from it, so neither can stand in for the other. Only what this module issues
//! verifies: the header must be exactly ours (no `alg` is read from a token), the
//! signature is checked in constant time before the claims are parsed, then the issuer,
//! the audience (the service), the expiry.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::hmac;
use serde::{Deserialize, Serialize};

use super::names;
use super::storage;

/// An access token lives this long (Docker Hub's too).
pub const ACCESS_TTL: u64 = 300;
/// A refresh token (`offline_token`, `access_type=offline`) lives this long.
pub const REFRESH_TTL: u64 = 7 * 24 * 3600;
/// The longest token accepted; longer is refused unread.
pub const MAX_TOKEN: usize = 16 << 10;
/// The most scopes one token request may name.
pub const MAX_SCOPES: usize = 32;
/// The longest scope string accepted.
const MAX_SCOPE_LEN: usize = 512;
/// The token's `iss`.
const ISSUER: &str = "berth-registry";
/// `{"alg":"HS256","typ":"JWT"}`, the only header a token may carry.
const HEADER: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9";
/// The key file under the registry's root.
pub const KEY_FILE: &str = "token.key";
const KEY_LEN: usize = 32;

/// What may be done to a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Actions(u8);

impl Actions {
    pub const NONE: Actions = Actions(0);
    pub const PULL: Actions = Actions(1);
    pub const PUSH: Actions = Actions(2);
    pub const DELETE: Actions = Actions(4);
    pub const ALL: Actions = Actions(7);

    pub const fn union(self, other: Actions) -> Actions {
        Actions(self.0 | other.0)
    }

    pub const fn intersect(self, other: Actions) -> Actions {
        Actions(self.0 & other.0)
    }

    pub const fn without(self, other: Actions) -> Actions {
        Actions(self.0 & !other.0)
    }

    pub const fn contains(self, other: Actions) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// `pull`, `push`, `delete` (unknown words are not granted, as distribution does);
    /// `*` is all three. An empty list is refused.
    pub fn parse_list(list: &str) -> Option<Actions> {
        let mut a = Actions::NONE;
        for word in list.split(',') {
            a = a.union(match word.trim() {
                "pull" => Actions::PULL,
                "push" => Actions::PUSH,
                "delete" => Actions::DELETE,
                "*" => Actions::ALL,
                "" => return None,
                _ => Actions::NONE,
            });
        }
        Some(a)
    }

    /// The names, in the protocol's order.
    pub fn names(self) -> Vec<&'static str> {
        [
            (Actions::PULL, "pull"),
            (Actions::PUSH, "push"),
            (Actions::DELETE, "delete"),
        ]
        .into_iter()
        .filter(|(a, _)| self.contains(*a))
        .map(|(_, n)| n)
        .collect()
    }
}

/// One requested scope, or one entry of a token's access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// `repository:<name>:<actions>`.
    Repository(String),
    /// `registry:catalog:*`.
    Catalog,
}

/// A scope a client asked for: the resource and the actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource: Resource,
    pub actions: Actions,
}

impl Scope {
    /// `repository[(class)]:<name>:<actions>` or `registry:catalog:*`. Resource types
    /// berth does not serve (`repository(plugin)` is still a repository) are `Ok(None)`:
    /// asked, not granted. A repository name that breaks the grammar is an error.
    pub fn parse(s: &str) -> Result<Option<Scope>, String> {
        if s.len() > MAX_SCOPE_LEN {
            return Err("scope too long".into());
        }
        let shown: String = s.chars().take(100).collect();
        let bad = || format!("invalid scope {shown:?}");
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        let (name, actions) = rest.rsplit_once(':').ok_or_else(bad)?;
        let kind = kind.split_once('(').map_or(kind, |(k, _)| k);
        match kind {
            "repository" => {
                if !names::valid_name(name) {
                    return Err(bad());
                }
                let actions = Actions::parse_list(actions).ok_or_else(bad)?;
                Ok(Some(Scope {
                    resource: Resource::Repository(name.to_string()),
                    actions,
                }))
            }
            "registry" if name == "catalog" => Ok(Some(Scope {
                resource: Resource::Catalog,
                actions: Actions::ALL,
            })),
            "" => Err(bad()),
            _ => Ok(None),
        }
    }

    /// The scope string, as a challenge names it.
    pub fn to_scope_string(&self) -> String {
        match &self.resource {
            Resource::Repository(n) => format!("repository:{n}:{}", self.actions.names().join(",")),
            Resource::Catalog => "registry:catalog:*".into(),
        }
    }
}

/// One entry of a token's `access` claim (distribution's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessEntry {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl AccessEntry {
    pub fn from_grant(resource: &Resource, actions: Actions) -> AccessEntry {
        match resource {
            Resource::Repository(n) => AccessEntry {
                kind: "repository".into(),
                name: n.clone(),
                actions: actions.names().iter().map(|s| s.to_string()).collect(),
            },
            Resource::Catalog => AccessEntry {
                kind: "registry".into(),
                name: "catalog".into(),
                actions: vec!["*".into()],
            },
        }
    }
}

/// A token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user; empty for an anonymous token.
    pub sub: String,
    /// The service.
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    #[serde(default)]
    pub access: Vec<AccessEntry>,
    /// Refresh tokens: when the user last gave their password (seconds since the epoch).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub auth_time: u64,
    /// Refresh tokens: the print of the user's htpasswd entry they were given for.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pwd: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Claims {
    /// Whether this token lets its bearer do `action` to `resource`.
    pub fn allows(&self, resource: &Resource, action: Actions) -> bool {
        self.access.iter().any(|e| match resource {
            Resource::Repository(n) => {
                e.kind == "repository"
                    && &e.name == n
                    && e.actions
                        .iter()
                        .filter_map(|a| Actions::parse_list(a))
                        .fold(Actions::NONE, Actions::union)
                        .contains(action)
            }
            Resource::Catalog => {
                e.kind == "registry" && e.name == "catalog" && e.actions.iter().any(|a| a == "*")
            }
        })
    }
}

/// Why a token is refused (the reason is logged, the client hears `invalid_token`).
#[derive(Debug, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    Signature,
    Expired,
    NotYetValid,
    WrongService,
    WrongIssuer,
}

/// The keys tokens are signed with, derived from the key file's secret.
pub struct Keys {
    access: hmac::Key,
    refresh: hmac::Key,
}

/// A token whose `iat` or `nbf` is later than now by more than this is refused.
const CLOCK_SKEW: u64 = 60;

impl Keys {
    pub fn from_secret(secret: &[u8]) -> Keys {
        let master = hmac::Key::new(hmac::HMAC_SHA256, secret);
        let derive =
            |label: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&master, label).as_ref());
        Keys {
            access: derive(b"berth-registry access token"),
            refresh: derive(b"berth-registry refresh token"),
        }
    }

    /// Reads `<root>/token.key`, or makes it (32 random bytes, 0600, written to a temporary
    /// file and linked into place, so that a reader never sees part of it and two servers
    /// starting at once end up with the same key). A key file others may read is refused.
    pub fn load_or_create(root: &Path) -> io::Result<Keys> {
        let path = root.join(KEY_FILE);
        match fs::metadata(&path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => create_key(root, &path)?,
            Err(e) => return Err(storage::at(&path)(e)),
        }
        let meta = fs::metadata(&path).map_err(storage::at(&path))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{}: the token key is readable by others (chmod 600 it)",
                    path.display()
                ),
            ));
        }
        let secret = fs::read(&path).map_err(storage::at(&path))?;
        if secret.len() != KEY_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: not a {KEY_LEN}-byte key (remove it to make a new one; tokens signed with it stop working)",
                    path.display()
                ),
            ));
        }
        Ok(Keys::from_secret(&secret))
    }

    /// An access token for `claims`.
    pub fn sign_access(&self, claims: &Claims) -> String {
        sign(&self.access, claims)
    }

    /// A refresh token for `claims` (no access: it only names the user).
    pub fn sign_refresh(&self, claims: &Claims) -> String {
        sign(&self.refresh, claims)
    }

    /// The claims of an access token this server issued for `service`, valid at `now`.
    pub fn verify_access(
        &self,
        token: &str,
        service: &str,
        now: u64,
    ) -> Result<Claims, TokenError> {
        verify(&self.access, token, service, now)
    }

    /// The claims of a refresh token this server issued for `service`, valid at `now`.
    pub fn verify_refresh(
        &self,
        token: &str,
        service: &str,
        now: u64,
    ) -> Result<Claims, TokenError> {
        verify(&self.refresh, token, service, now)
    }
}

fn create_key(root: &Path, path: &Path) -> io::Result<()> {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; KEY_LEN];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| io::Error::other("no random bytes for the token key"))?;
    let tmp = root.join(format!(".{KEY_FILE}.tmp-{}", storage::random_id()));
    let written = (|| {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(storage::at(&tmp))?;
        f.write_all(&secret).map_err(storage::at(&tmp))?;
        f.sync_all().map_err(storage::at(&tmp))
    })();
    // A link fails when the name exists: the first server to start wins, the others read
    // its key.
    let linked = written.and_then(|()| match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(storage::at(path)(e)),
    });
    let _ = fs::remove_file(&tmp);
    linked?;
    fs::File::open(root)
        .and_then(|d| d.sync_all())
        .map_err(storage::at(root))
}

fn sign(key: &hmac::Key, claims: &Claims) -> String {
    sign_payload(key, &serde_json::to_vec(claims).expect("claims serialise"))
}

fn sign_payload(key: &hmac::Key, payload: &[u8]) -> String {
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signed = format!("{HEADER}.{payload}");
    let tag = hmac::sign(key, signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

fn verify(key: &hmac::Key, token: &str, service: &str, now: u64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN {
        return Err(TokenError::Malformed);
    }
    let (signed, signature) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
    let (header, payload) = signed.split_once('.').ok_or(TokenError::Malformed)?;
    if header != HEADER || payload.contains('.') {
        return Err(TokenError::Malformed);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Malformed)?;
    // ring compares the tags in constant time.
    hmac::verify(key, signed.as_bytes(), &signature).map_err(|_| TokenError::Signature)?;
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
    if claims.iss != ISSUER {
        return Err(TokenError::WrongIssuer);
    }
    if claims.aud != service {
        return Err(TokenError::WrongService);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    if claims.nbf > now + CLOCK_SKEW || claims.iat > now + CLOCK_SKEW {
        return Err(TokenError::NotYetValid);
    }
    Ok(claims)
}

/// Claims for `user` (empty: anonymous) and `access`, valid from `now` for `ttl` seconds.
pub fn claims(user: &str, service: &str, access: Vec<AccessEntry>, now: u64, ttl: u64) -> Claims {
    Claims {
        iss: ISSUER.into(),
        sub: user.into(),
        aud: service.into(),
        exp: now + ttl,
        nbf: now,
        iat: now,
        jti: storage::random_id(),
        access,
        auth_time: 0,
        pwd: String::new(),
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> Keys {
        Keys::from_secret(&[7u8; 32])
    }

    fn pull(name: &str) -> Vec<AccessEntry> {
        vec![AccessEntry::from_grant(
            &Resource::Repository(name.into()),
            Actions::PULL,
        )]
    }

    #[test]
    fn header_constant_is_the_hs256_header() {
        assert_eq!(
            URL_SAFE_NO_PAD.decode(HEADER).unwrap(),
            br#"{"alg":"HS256","typ":"JWT"}"#
        );
    }

    #[test]
    fn a_signed_token_verifies_and_grants_what_it_names() {
        let k = keys();
        let t = k.sign_access(&claims("alice", "svc", pull("a/b"), 1000, ACCESS_TTL));
        let c = k.verify_access(&t, "svc", 1001).unwrap();
        assert_eq!(c.sub, "alice");
        let repo = |n: &str| Resource::Repository(n.into());
        assert!(c.allows(&repo("a/b"), Actions::PULL));
        assert!(!c.allows(&repo("a/b"), Actions::PUSH));
        assert!(!c.allows(&repo("a/bc"), Actions::PULL));
        assert!(!c.allows(&Resource::Catalog, Actions::PULL));
    }

    #[test]
    fn forged_expired_and_foreign_tokens_are_refused() {
        let k = keys();
        let c = claims("alice", "svc", pull("a/b"), 1000, ACCESS_TTL);
        let t = k.sign_access(&c);
        assert_eq!(
            k.verify_access(&t, "svc", 1000 + ACCESS_TTL),
            Err(TokenError::Expired)
        );
        assert_eq!(
            k.verify_access(&t, "other", 1001),
            Err(TokenError::WrongService)
        );
        assert_eq!(
            k.verify_access(&t, "svc", 900),
            Err(TokenError::NotYetValid)
        );
        // Another server's key.
        let other = Keys::from_secret(&[8u8; 32]);
        assert_eq!(
            other.verify_access(&t, "svc", 1001),
            Err(TokenError::Signature)
        );
        // A refresh token is no access token, and the reverse.
        let r = k.sign_refresh(&c);
        assert_eq!(k.verify_access(&r, "svc", 1001), Err(TokenError::Signature));
        assert_eq!(
            k.verify_refresh(&t, "svc", 1001),
            Err(TokenError::Signature)
        );
        // More access written into the payload, the signature kept.
        let (signed, sig) = t.rsplit_once('.').unwrap();
        let (header, _) = signed.split_once('.').unwrap();
        let mut more = c.clone();
        more.access[0].actions.push("push".into());
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&more).unwrap());
        let forged = format!("{header}.{forged_payload}.{sig}");
        assert_eq!(
            k.verify_access(&forged, "svc", 1001),
            Err(TokenError::Signature)
        );
        // alg "none", unsigned.
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
        for bad in [
            format!("{none}.{p}."),
            format!("{none}.{p}.{sig}"),
            String::new(),
            "a.b".into(),
            "a.b.c.d".into(),
            format!("{HEADER}.{p}.!!!"),
            format!("{HEADER}.{p}"),
            "x".repeat(MAX_TOKEN + 1),
            format!("{header}.{p}.{sig}x"),
        ] {
            assert!(k.verify_access(&bad, "svc", 1001).is_err(), "{bad}");
        }
        // Well-signed payloads that are not our claims, or another issuer's.
        for junk in [&b"[1,2]"[..], b"{}", br#"{"iss":"x"}"#] {
            let t = sign_payload(&k.access, junk);
            assert_eq!(k.verify_access(&t, "svc", 1001), Err(TokenError::Malformed));
        }
        let mut foreign = c.clone();
        foreign.iss = "someone-else".into();
        let t = k.sign_access(&foreign);
        assert_eq!(
            k.verify_access(&t, "svc", 1001),
            Err(TokenError::WrongIssuer)
        );
    }

    #[test]
    fn scopes_parse_as_docker_sends_them() {
        let s = Scope::parse("repository:team/app:pull,push")
            .unwrap()
            .unwrap();
        assert_eq!(s.resource, Resource::Repository("team/app".into()));
        assert_eq!(s.actions, Actions::PULL.union(Actions::PUSH));
        assert_eq!(s.to_scope_string(), "repository:team/app:pull,push");
        let s = Scope::parse("repository(plugin):p:pull").unwrap().unwrap();
        assert_eq!(s.actions, Actions::PULL);
        assert_eq!(
            Scope::parse("repository:a:*").unwrap().unwrap().actions,
            Actions::ALL
        );
        assert_eq!(
            Scope::parse("repository:a:pull,frobnicate")
                .unwrap()
                .unwrap()
                .actions,
            Actions::PULL
        );
        assert_eq!(
            Scope::parse("registry:catalog:*")
                .unwrap()
                .unwrap()
                .resource,
            Resource::Catalog
        );
        assert_eq!(Scope::parse("other:x:pull").unwrap(), None);
        for bad in [
            "",
            "repository",
            "repository:a",
            "repository:A/B:pull",
            "repository:a/../b:pull",
            "repository::pull",
            "repository:a:",
            ":a:pull",
        ] {
            assert!(Scope::parse(bad).is_err(), "{bad}");
        }
        assert!(Scope::parse(&format!("repository:{}:pull", "a".repeat(600))).is_err());
    }

    #[test]
    fn the_key_file_is_made_once_private_and_refused_when_readable() {
        let dir = tempfile::tempdir().unwrap();
        let k1 = Keys::load_or_create(dir.path()).unwrap();
        let path = dir.path().join(KEY_FILE);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let t = k1.sign_access(&claims("u", "s", vec![], 1, 10));
        let k2 = Keys::load_or_create(dir.path()).unwrap();
        assert!(
            k2.verify_access(&t, "s", 2).is_ok(),
            "the same key on restart"
        );
        let leftovers: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = Keys::load_or_create(dir.path()).err().unwrap();
        assert!(e.to_string().contains("readable by others"), "{e}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, b"short").unwrap();
        assert!(Keys::load_or_create(dir.path()).is_err());
    }
}
