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
        // The highest cost of the file: an unknown user must not answer faster than any
        // known one.
        let cost = users
            .values()
            .filter_map(|h| h.get(4..6)?.parse::<u32>().ok())
            .max()
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

    /// A print of `user`'s entry (of its bcrypt hash): it changes with the password. A
    /// refresh token carries it, so that a new password ends the old tokens.
    pub fn entry_print(&self, user: &str) -> Option<String> {
        let hash = self.users.get(user)?;
        let d = Sha256::digest(format!("berth-registry refresh\0{user}\0{hash}"));
        Some(d[..16].iter().map(|b| format!("{b:02x}")).collect())
    }

    /// Whether `user:password` was checked before (no bcrypt needed).
    pub fn remembered_password(&self, user: &str, password: &str) -> bool {
        let key = remember_key(user, password);
        self.verified.lock().unwrap().contains(&key)
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
    fn unknown_users_cost_the_most_and_prints_follow_the_password() {
        let (slow, fast) = (bcrypt::hash("a", 6).unwrap(), bcrypt::hash("b", 4).unwrap());
        for text in [
            format!("s:{slow}\nf:{fast}\n"),
            format!("f:{fast}\ns:{slow}\n"),
        ] {
            let h = Htpasswd::parse(&text).unwrap();
            assert!(h.dummy_hash.starts_with("$2b$06$"), "{}", h.dummy_hash);
        }
        let one = Htpasswd::parse(&format!("s:{slow}\n")).unwrap();
        let again = Htpasswd::parse(&format!("s:{slow}\n")).unwrap();
        let changed = Htpasswd::parse(&format!("s:{}\n", bcrypt::hash("a", 6).unwrap())).unwrap();
        assert_eq!(one.entry_print("s"), again.entry_print("s"));
        assert_ne!(one.entry_print("s"), changed.entry_print("s"));
        assert_eq!(one.entry_print("nobody"), None);
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
