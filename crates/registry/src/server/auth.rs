//! Basic auth against an htpasswd file of bcrypt entries (`user:$2y$...`, `$2a$`, `$2b$`), as
//! distribution's htpasswd mode reads it. In Basic mode every authenticated user may read
//! and write every repository (distribution's htpasswd mode does the same); in token mode
//! the same file says who may ask for a token, and [`super::access`] what it grants.
//!
//! bcrypt costs tens of milliseconds by design and a push makes dozens of requests, so a
//! credential that verified once is remembered (its SHA-256, in memory, bounded).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use base64::Engine;
use sha2::{Digest, Sha256};

/// How many verified credentials are remembered before the memory is cleared.
const MAX_REMEMBERED: usize = 1024;

/// The users of an htpasswd file.
pub struct Htpasswd {
    users: HashMap<String, String>,
    /// Compared against when the user is unknown, so that an unknown user costs the time a
    /// wrong password does.
    dummy_hash: String,
    verified: Mutex<HashSet<[u8; 32]>>,
}

impl Htpasswd {
    /// Parses an htpasswd file's text. Blank lines and `#` comments are skipped; any entry
    /// that is not `user:<bcrypt hash>` is refused (with its line number, not its content).
    pub fn parse(text: &str) -> Result<Htpasswd, String> {
        let mut users = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (user, hash) = line
                .split_once(':')
                .ok_or_else(|| format!("htpasswd line {}: not user:hash", n + 1))?;
            let bcrypt = ["$2y$", "$2b$", "$2a$"].iter().any(|p| hash.starts_with(p));
            if user.is_empty() || !bcrypt {
                return Err(format!(
                    "htpasswd line {}: only bcrypt entries (user:$2y$...) are supported",
                    n + 1
                ));
            }
            users.insert(user.to_string(), hash.to_string());
        }
        if users.is_empty() {
            return Err("htpasswd: no users".into());
        }
        let cost = users
            .values()
            .next()
            .and_then(|h| h.get(4..6))
            .and_then(|c| c.parse().ok())
            .unwrap_or(bcrypt::DEFAULT_COST);
        let dummy_hash = bcrypt::hash("berth-registry", cost).map_err(|e| e.to_string())?;
        Ok(Htpasswd {
            users,
            dummy_hash,
            verified: Mutex::new(HashSet::new()),
        })
    }

    /// Whether the file has this user.
    pub fn has_user(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The user of an `Authorization: Basic` value checked before (no bcrypt needed).
    pub fn remembered(&self, authorization: Option<&str>) -> Option<String> {
        let (user, password) = authorization.and_then(basic_credentials)?;
        let key = remember_key(&user, &password);
        self.verified.lock().unwrap().contains(&key).then_some(user)
    }

    /// The user of an `Authorization: Basic` value holding a user's right password.
    pub fn check(&self, authorization: Option<&str>) -> Option<String> {
        let (user, password) = authorization.and_then(basic_credentials)?;
        self.verify(&user, &password).then_some(user)
    }

    /// Whether `password` is `user`'s (bcrypt, or remembered from an earlier check).
    pub fn verify(&self, user: &str, password: &str) -> bool {
        let key = remember_key(user, password);
        if self.verified.lock().unwrap().contains(&key) {
            return true;
        }
        let (hash, known) = match self.users.get(user) {
            Some(h) => (h.as_str(), true),
            None => (self.dummy_hash.as_str(), false),
        };
        let ok = bcrypt::verify(password, hash).unwrap_or(false) && known;
        if ok {
            let mut v = self.verified.lock().unwrap();
            if v.len() >= MAX_REMEMBERED {
                v.clear();
            }
            v.insert(key);
        }
        ok
    }
}

fn remember_key(user: &str, password: &str) -> [u8; 32] {
    Sha256::digest(format!("{user}\0{password}")).into()
}

/// `Basic <base64(user:password)>` -> (user, password).
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, b64) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(user: &str, pw: &str) -> String {
        let b = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        format!("Basic {b}")
    }

    #[test]
    fn htpasswd_accepts_bcrypt_entries_and_checks_passwords() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let h = Htpasswd::parse(&format!("# users\n\nalice:{hash}\n")).unwrap();
        assert_eq!(h.remembered(Some(&header("alice", "pw"))), None);
        assert_eq!(
            h.check(Some(&header("alice", "pw"))).as_deref(),
            Some("alice")
        );
        assert_eq!(
            h.remembered(Some(&header("alice", "pw"))).as_deref(),
            Some("alice")
        );
        assert!(h.verify("alice", "pw"), "remembered");
        assert!(!h.verify("alice", "wrong"));
        assert_eq!(h.check(Some(&header("alice", "wrong"))), None);
        assert_eq!(h.check(Some(&header("bob", "pw"))), None);
        assert_eq!(h.check(Some("Bearer abc")), None);
        assert_eq!(h.check(Some("Basic !!!")), None);
        assert_eq!(h.check(None), None);
        assert!(h.has_user("alice") && !h.has_user("bob"));
    }

    #[test]
    fn htpasswd_refuses_other_hashes_and_empty_files() {
        assert!(Htpasswd::parse("alice:{SHA}abc\n").is_err());
        assert!(Htpasswd::parse("alice:$apr1$x$y\n").is_err());
        assert!(Htpasswd::parse("no-colon\n").is_err());
        assert!(Htpasswd::parse("# nothing\n").is_err());
    }
}
