//! Registry credentials as the Engine API carries them (`X-Registry-Auth`,
//! `X-Registry-Config`, `POST /auth`) and config.json keeps them, and the names a
//! registry is known by.

use std::collections::HashMap;

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Docker Hub's key in config.json and its `serveraddress`.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The registry a server address or config.json key names: scheme and path left out,
/// and Docker Hub's names (`index.docker.io`, `registry-1.docker.io`, none) as
/// `docker.io`.
pub fn registry_domain(server: &str) -> &str {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    match s.split('/').next().unwrap_or(s) {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io",
        h => h,
    }
}

/// The config.json key of the registry at `server`: Docker Hub's address for Docker
/// Hub, else `host[:port]`.
pub fn config_key(server: &str) -> String {
    match registry_domain(server) {
        "docker.io" => DOCKER_HUB_KEY.to_string(),
        h => h.to_string(),
    }
}

/// Credentials as the docker CLI sends them. Its `Debug` shows the username and server
/// only.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// `base64(username:password)`, as config.json keeps it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(
        default,
        rename = "serveraddress",
        skip_serializing_if = "String::is_empty"
    )]
    pub server_address: String,
    /// An OAuth refresh token from a token server, kept instead of the password.
    #[serde(
        default,
        rename = "identitytoken",
        skip_serializing_if = "String::is_empty"
    )]
    pub identity_token: String,
    /// A bearer token for the registry itself.
    #[serde(
        default,
        rename = "registrytoken",
        skip_serializing_if = "String::is_empty"
    )]
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

/// base64url (padded or not) or standard base64, as clients send headers.
fn decode_header(name: &str, value: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(value))
        .map_err(|_| format!("invalid {name} header: not base64"))
}

impl AuthConfig {
    /// The `X-Registry-Auth` header: base64url of the JSON. An empty or `{}` header
    /// means no credentials.
    pub fn from_header(value: &str) -> Result<AuthConfig, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(AuthConfig::default());
        }
        let bytes = decode_header("X-Registry-Auth", value)?;
        let mut auth: AuthConfig = serde_json::from_slice(&bytes)
            .map_err(|e| format!("invalid X-Registry-Auth header: {e}"))?;
        auth.fill_from_auth();
        Ok(auth)
    }

    /// The `X-Registry-Config` header of `POST /build`: base64url JSON of registry
    /// address -> credentials, as the docker CLI sends every one it knows.
    pub fn map_from_header(value: &str) -> Result<HashMap<String, AuthConfig>, String> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(HashMap::new());
        }
        let bytes = decode_header("X-Registry-Config", value)?;
        let mut map: HashMap<String, AuthConfig> = serde_json::from_slice(&bytes)
            .map_err(|e| format!("invalid X-Registry-Config header: {e}"))?;
        for a in map.values_mut() {
            a.fill_from_auth();
        }
        Ok(map)
    }

    /// The value of an `X-Registry-Auth` header for these credentials.
    pub fn to_header(&self) -> String {
        let json = serde_json::to_string(self).expect("credentials serialise");
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    /// An `auths` entry of config.json: `auth` (base64 of `username:password`) and
    /// `identitytoken`. `None` when it holds neither, or `auth` is not readable.
    pub fn from_config_entry(entry: &serde_json::Value) -> Option<AuthConfig> {
        let mut c = AuthConfig::default();
        if let Some(a) = entry.get("auth").and_then(|a| a.as_str()) {
            c.auth = a.trim().to_string();
            c.fill_from_auth();
            if c.username.is_empty() {
                return None;
            }
            c.auth.clear();
        }
        if let Some(t) = entry.get("identitytoken").and_then(|a| a.as_str()) {
            c.identity_token = t.to_string();
        }
        (!c.username.is_empty() || !c.identity_token.is_empty()).then_some(c)
    }

    /// The config.json entry that keeps these credentials: the username always, the
    /// password only when there is no identity token (as the docker CLI stores them).
    pub fn to_config_entry(&self) -> serde_json::Value {
        let password = if self.identity_token.is_empty() {
            self.password.as_str()
        } else {
            ""
        };
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", self.username));
        let mut entry = serde_json::json!({ "auth": auth });
        if !self.identity_token.is_empty() {
            entry["identitytoken"] = self.identity_token.clone().into();
        }
        entry
    }

    /// Username and password from `auth` when only it is given.
    pub fn fill_from_auth(&mut self) {
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

    /// Whether a username or password is given (for basic auth or a token request).
    pub fn has_password(&self) -> bool {
        !self.username.is_empty() || !self.password.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_follow_docker() {
        for hub in [
            "",
            "docker.io",
            "index.docker.io",
            DOCKER_HUB_KEY,
            "registry-1.docker.io",
        ] {
            assert_eq!(registry_domain(hub), "docker.io", "{hub}");
            assert_eq!(config_key(hub), DOCKER_HUB_KEY, "{hub}");
        }
        assert_eq!(registry_domain("http://h:5000/v2/"), "h:5000");
        assert_eq!(config_key("https://h:5000"), "h:5000");
        assert_eq!(config_key("localhost"), "localhost");
    }

    #[test]
    fn headers_decode() {
        let json = r#"{"username":"u","password":"p?>","serveraddress":"h:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = AuthConfig::from_header(&url).unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p?>"));
        assert_eq!(AuthConfig::from_header(&a.to_header()).unwrap(), a);
        assert_eq!(
            AuthConfig::from_header("e30=").unwrap(),
            AuthConfig::default()
        );
        assert_eq!(AuthConfig::from_header("").unwrap(), AuthConfig::default());
        let b = base64::engine::general_purpose::STANDARD.encode(r#"{"auth":"dTpw"}"#);
        let a = AuthConfig::from_header(&b).unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        assert!(AuthConfig::from_header("!!!").is_err());
        let m = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"h:5000":{"auth":"dTpw"},"https://index.docker.io/v1/":{}}"#);
        let m = AuthConfig::map_from_header(&m).unwrap();
        assert_eq!(m["h:5000"].password, "p");
        assert_eq!(m.len(), 2);
        assert!(AuthConfig::map_from_header("{}").is_err());
    }

    #[test]
    fn config_entries_round_trip() {
        let a = AuthConfig {
            username: "u".into(),
            password: "p:q".into(),
            ..Default::default()
        };
        let back = AuthConfig::from_config_entry(&a.to_config_entry()).unwrap();
        assert_eq!(
            (back.username.as_str(), back.password.as_str()),
            ("u", "p:q")
        );
        let t = AuthConfig {
            identity_token: "refresh".into(),
            ..a
        };
        let entry = t.to_config_entry();
        assert_eq!(
            entry["auth"], "dTo=",
            "no password beside an identity token"
        );
        let back = AuthConfig::from_config_entry(&entry).unwrap();
        assert_eq!(
            (back.password.as_str(), back.identity_token.as_str()),
            ("", "refresh")
        );
        assert_eq!(AuthConfig::from_config_entry(&serde_json::json!({})), None);
        assert_eq!(
            AuthConfig::from_config_entry(&serde_json::json!({"auth": "%%%"})),
            None
        );
    }
}
