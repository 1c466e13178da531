//! Build secrets over `POST /build`: berth's extension of the classic builder's protocol.
//!
//! The classic protocol has no secrets (BuildKit takes them over its gRPC session). `berth
//! build --secret` sends them to berthd in front of the context, in the same body:
//!
//! - the query carries `berthsecrets=<n>`, `n` the length in bytes of the frame below;
//! - the body's first `n` bytes are the frame, then the context tar as usual;
//! - the frame is [`MAGIC`], then per secret: the id's length (u32, big endian), the id
//!   (UTF-8), the content's length (u32, big endian), the content.
//!
//! berthd reads the frame into memory (never to disk) and the rest as the context, so a
//! secret never becomes part of the context: COPY cannot see it and the context's digest
//! does not include it. The magic is not a tar header, so a daemon that does not know the
//! parameter (dockerd) fails on the body instead of taking the secrets as context; `berth
//! build` also sends secrets to berthd only. Bounds: [`MAX_SECRET_SIZE`] per secret
//! (BuildKit's), [`MAX_SECRETS`] secrets, [`MAX_FRAME_SIZE`] in all.

use std::collections::BTreeMap;

/// The query parameter that announces the frame's length.
pub const QUERY_KEY: &str = "berthsecrets";
/// The first bytes of a frame.
pub const MAGIC: &[u8] = b"berth-build-secrets/1\n";
/// The largest secret (BuildKit's bound, 500 KiB).
pub const MAX_SECRET_SIZE: usize = 500 << 10;
/// The most secrets one build takes.
pub const MAX_SECRETS: usize = 64;
/// The largest frame: every secret at its bound, with its id.
pub const MAX_FRAME_SIZE: usize = MAGIC.len() + MAX_SECRETS * (MAX_SECRET_SIZE + 8 + 1024);
/// The longest id.
pub const MAX_ID_LEN: usize = 1024;

/// Secrets by id. Its `Debug` shows the ids only, so that no log line can carry a content.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets(BTreeMap<String, Vec<u8>>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        // Best effort: the contents do not linger in freed memory.
        for v in self.0.values_mut() {
            v.fill(0);
            std::hint::black_box(&v);
        }
    }
}

/// Why a frame or a secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SecretsError(pub String);

impl Secrets {
    /// Adds a secret, checked against the bounds; a second one of the same id replaces the
    /// first (the last `--secret` wins, as buildx).
    pub fn insert(&mut self, id: &str, content: Vec<u8>) -> Result<(), SecretsError> {
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(SecretsError(format!(
                "secret id {id:?}: must be 1 to {MAX_ID_LEN} bytes"
            )));
        }
        if content.len() > MAX_SECRET_SIZE {
            return Err(SecretsError(format!(
                "secret {id}: {} bytes, more than the {MAX_SECRET_SIZE} a secret may hold",
                content.len()
            )));
        }
        if !self.0.contains_key(id) && self.0.len() >= MAX_SECRETS {
            return Err(SecretsError(format!(
                "more than {MAX_SECRETS} secrets for one build"
            )));
        }
        self.0.insert(id.to_string(), content);
        Ok(())
    }

    /// The content of secret `id`.
    pub fn get(&self, id: &str) -> Option<&[u8]> {
        self.0.get(id).map(|v| v.as_slice())
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids, in order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(|k| k.as_str())
    }

    /// The frame sent in front of the context.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (id, content) in &self.0 {
            out.extend_from_slice(&(id.len() as u32).to_be_bytes());
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(&(content.len() as u32).to_be_bytes());
            out.extend_from_slice(content);
        }
        out
    }

    /// Reads a whole frame (exactly the bytes `berthsecrets=` announced).
    pub fn decode(frame: &[u8]) -> Result<Secrets, SecretsError> {
        let bad = |what: &str| SecretsError(format!("the build secrets frame: {what}"));
        let mut rest = frame
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("it does not start with berth's marker"))?;
        let mut take = |n: usize| -> Result<&[u8], SecretsError> {
            if rest.len() < n {
                return Err(bad("cut short"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let mut secrets = Secrets::default();
        loop {
            // Each length read before its bytes are taken: a lying length is "cut short".
            let len = |b: &[u8]| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize;
            let Ok(head) = take(4) else {
                break;
            };
            let id_len = len(head);
            if id_len > MAX_ID_LEN {
                return Err(bad("an id is too long"));
            }
            let id = std::str::from_utf8(take(id_len)?)
                .map_err(|_| bad("an id is not UTF-8"))?
                .to_string();
            let n = len(take(4)?);
            if n > MAX_SECRET_SIZE {
                return Err(SecretsError(format!(
                    "secret {id}: more than the {MAX_SECRET_SIZE} bytes a secret may hold"
                )));
            }
            let content = take(n)?.to_vec();
            if secrets.get(&id).is_some() {
                return Err(bad(&format!("secret {id} is given twice")));
            }
            secrets.insert(&id, content)?;
        }
        Ok(secrets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_debug_shows_ids_only() {
        let mut s = Secrets::default();
        s.insert("token", b"hunter2".to_vec()).unwrap();
        s.insert("bin", vec![0, 1, 2, 255]).unwrap();
        let frame = s.encode();
        assert!(frame.starts_with(MAGIC));
        let back = Secrets::decode(&frame).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.get("token"), Some(&b"hunter2"[..]));
        let shown = format!("{back:?}");
        assert_eq!(shown, r#"{"bin", "token"}"#);
        assert!(Secrets::decode(MAGIC).unwrap().is_empty());
    }

    #[test]
    fn bad_frames_and_oversized_secrets_are_refused() {
        let mut s = Secrets::default();
        s.insert("a", b"xyz".to_vec()).unwrap();
        let frame = s.encode();
        assert_eq!(
            Secrets::decode(&frame[..frame.len() - 1]).unwrap_err().0,
            "the build secrets frame: cut short"
        );
        assert!(Secrets::decode(b"ustar\0").is_err());
        let mut twice = frame.clone();
        twice.extend_from_slice(&frame[MAGIC.len()..]);
        assert!(Secrets::decode(&twice).unwrap_err().0.contains("twice"));
        let big = vec![b'x'; MAX_SECRET_SIZE + 1];
        assert!(s.insert("big", big).unwrap_err().0.contains("more than"));
        assert!(s.insert("", vec![]).is_err());
        // A length announcing more than the bound is refused before anything is taken.
        let mut lying = MAGIC.to_vec();
        lying.extend_from_slice(&1u32.to_be_bytes());
        lying.push(b'k');
        lying.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(Secrets::decode(&lying).unwrap_err().0.contains("more than"));
    }
}
