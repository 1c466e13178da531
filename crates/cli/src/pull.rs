//! `berth pull`, and the pull `run` and `create` make of a missing image: the request,
//! the credentials the docker CLI would send (`~/.docker/config.json`: `auths`,
//! `credHelpers`, `credsStore`), and Docker's progress display: per-layer lines redrawn in
//! place on a terminal, plain status lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::Result;
use berth_client::{Client, JsonMessage};
use clap::Args;
use futures_util::StreamExt;

/// `berth pull`.
#[derive(Debug, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Skip image verification
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_content_trust: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG|@DIGEST]
    pub name: String,
}

/// `berth pull`: prints the progress, then the reference pulled.
pub async fn pull_cmd(client: &Client, args: &PullArgs) -> Result<i32> {
    if !args.disable_content_trust {
        anyhow::bail!(
            "--disable-content-trust=false: berth does not verify Docker Content Trust signatures"
        );
    }
    let (image, tag) = split(&args.name, args.all_tags)?;
    let shown = match (&tag, args.all_tags) {
        (_, true) => image.clone(),
        (Some(t), _) if t.starts_with("sha256:") => format!("{image}@{t}"),
        (Some(t), _) => format!("{image}:{t}"),
        (None, _) => image.clone(),
    };
    match pull(
        client,
        &image,
        tag.as_deref(),
        args.platform.as_deref(),
        args.quiet,
        false,
    )
    .await
    {
        Ok(()) => {
            crate::outln(&full_name(&shown));
            Ok(0)
        }
        Err(e) => {
            eprintln!("Error response from daemon: {e}");
            Ok(1)
        }
    }
}

/// Docker's form of the reference pulled: `docker.io/library/busybox:latest`.
fn full_name(shown: &str) -> String {
    let (domain, _) = split_domain(shown);
    if domain.is_some() {
        return shown.to_string();
    }
    if shown.contains('/') {
        format!("docker.io/{shown}")
    } else {
        format!("docker.io/library/{shown}")
    }
}

/// `name[:tag|@digest]` into the repository and the tag or digest (`latest` when none is
/// written, unless every tag is asked for).
fn split(reference: &str, all_tags: bool) -> Result<(String, Option<String>)> {
    if let Some((name, digest)) = reference.split_once('@') {
        if all_tags {
            anyhow::bail!("tag can't be used with --all-tags/-a");
        }
        return Ok((name.to_string(), Some(digest.to_string())));
    }
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if let Some(i) = last.rfind(':') {
        if all_tags {
            anyhow::bail!("tag can't be used with --all-tags/-a");
        }
        let cut = reference.len() - last.len() + i;
        return Ok((
            reference[..cut].to_string(),
            Some(reference[cut + 1..].to_string()),
        ));
    }
    Ok((
        reference.to_string(),
        (!all_tags).then(|| "latest".to_string()),
    ))
}

/// Pulls `image` (`tag` a tag or a digest), showing progress on stdout (or stderr, for
/// `run`'s pull, whose stdout is the container's). Errors are the daemon's message.
pub async fn pull(
    client: &Client,
    image: &str,
    tag: Option<&str>,
    platform: Option<&str>,
    quiet: bool,
    to_stderr: bool,
) -> std::result::Result<(), String> {
    let auth = registry_auth(image);
    let mut stream = client
        .image_pull(image, tag, platform, auth.as_deref())
        .await
        .map_err(|e| e.message().to_string())?;
    let terminal = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let mut display = Display::new(terminal);
    while let Some(msg) = stream.next().await {
        let msg = msg.map_err(|e| e.to_string())?;
        if let Some(err) = msg.failure() {
            return Err(err);
        }
        if quiet {
            continue;
        }
        let mut out: Box<dyn Write> = if to_stderr {
            Box::new(std::io::stderr().lock())
        } else {
            Box::new(std::io::stdout().lock())
        };
        display.show(&msg, &mut out);
        let _ = out.flush();
    }
    Ok(())
}

/// Docker's `DisplayJSONMessagesStream`: on a terminal, one line per layer id, rewritten
/// in place; otherwise one line per status, progress bars left out.
struct Display {
    terminal: bool,
    /// Layer id -> its line's index (terminal only).
    lines: HashMap<String, usize>,
    count: usize,
}

impl Display {
    fn new(terminal: bool) -> Display {
        Display {
            terminal,
            lines: HashMap::new(),
            count: 0,
        }
    }

    fn text(msg: &JsonMessage, with_bar: bool) -> Option<String> {
        let status = msg.status.as_ref()?;
        Some(match (&msg.id, &msg.progress) {
            (Some(id), Some(p)) if with_bar => format!("{id}: {status} {p}"),
            (Some(id), _) => format!("{id}: {status}"),
            (None, _) => status.clone(),
        })
    }

    fn show(&mut self, msg: &JsonMessage, out: &mut dyn Write) {
        if let Some(s) = &msg.stream {
            let _ = out.write_all(s.as_bytes());
            return;
        }
        if !self.terminal {
            if msg.progress.is_some() {
                return;
            }
            if let Some(t) = Self::text(msg, false) {
                let _ = writeln!(out, "{t}");
            }
            return;
        }
        let Some(text) = Self::text(msg, true) else {
            return;
        };
        match &msg.id {
            Some(id) => {
                let line = match self.lines.get(id) {
                    Some(&l) => l,
                    None => {
                        let l = self.count;
                        self.lines.insert(id.clone(), l);
                        self.count += 1;
                        let _ = writeln!(out);
                        l
                    }
                };
                let up = self.count - line;
                // Up to the layer's line, clear it, write, and back down.
                let _ = write!(out, "\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B");
            }
            None => {
                let _ = writeln!(out, "{text}");
                // Lines before this one are done with.
                self.lines.clear();
                self.count = 0;
            }
        }
    }
}

/// The registry part of a repository name, if it has one (`localhost:5000/x`).
fn split_domain(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

/// The key of `image`'s registry in `config.json` (`https://index.docker.io/v1/` for
/// Docker Hub, else `host[:port]`).
pub fn registry_key(image: &str) -> String {
    match split_domain(image).0 {
        None | Some("docker.io") | Some("index.docker.io") | Some("registry-1.docker.io") => {
            "https://index.docker.io/v1/".to_string()
        }
        Some(d) => d.to_string(),
    }
}

/// The docker CLI's config directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    std::path::Path::new(&home).join(".docker")
}

/// `auths` keys as Docker matches them: scheme and path left out.
fn host_of(key: &str) -> &str {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

/// Credentials for `image`'s registry from the docker CLI's config, as the
/// `X-Registry-Auth` value; `None` when there are none.
pub fn registry_auth(image: &str) -> Option<String> {
    use base64::Engine;
    let key = registry_key(image);
    let path = config_dir().join("config.json");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let helper = config
        .get("credHelpers")
        .and_then(|h| h.get(host_of(&key)).or_else(|| h.get(&key)))
        .or_else(|| config.get("credsStore"))
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty());
    let mut creds = None;
    if let Some(helper) = helper {
        creds = helper_get(helper, &key);
    }
    if creds.is_none() {
        let auths = config.get("auths")?.as_object()?;
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| host_of(k) == host_of(&key))
                .map(|(_, v)| v)
        })?;
        let mut c = serde_json::Map::new();
        if let Some(a) = entry.get("auth").and_then(|a| a.as_str()) {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .ok()?;
            let raw = String::from_utf8(raw).ok()?;
            let (u, p) = raw.split_once(':')?;
            c.insert("username".into(), u.into());
            c.insert("password".into(), p.into());
        }
        if let Some(t) = entry.get("identitytoken").and_then(|a| a.as_str()) {
            c.insert("identitytoken".into(), t.into());
        }
        if c.is_empty() {
            return None;
        }
        creds = Some(c);
    }
    let mut c = creds?;
    c.insert("serveraddress".into(), key.into());
    let json = serde_json::Value::Object(c).to_string();
    Some(base64::engine::general_purpose::URL_SAFE.encode(json))
}

/// The `X-Registry-Config` of a build: every `auths` entry of the docker CLI's config,
/// keyed by registry; `None` when there is none.
pub fn registry_config() -> Option<String> {
    use base64::Engine;
    let path = config_dir().join("config.json");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let auths = config.get("auths")?.as_object()?;
    let mut out = serde_json::Map::new();
    for (key, entry) in auths {
        let mut c = serde_json::Map::new();
        if let Some(a) = entry.get("auth").and_then(|a| a.as_str()) {
            let Some((u, p)) = base64::engine::general_purpose::STANDARD
                .decode(a.trim())
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .and_then(|raw| {
                    raw.split_once(':')
                        .map(|(u, p)| (u.to_string(), p.to_string()))
                })
            else {
                continue;
            };
            c.insert("username".into(), u.into());
            c.insert("password".into(), p.into());
        }
        if let Some(t) = entry.get("identitytoken").and_then(|a| a.as_str()) {
            c.insert("identitytoken".into(), t.into());
        }
        if c.is_empty() {
            continue;
        }
        c.insert("serveraddress".into(), key.clone().into());
        out.insert(key.clone(), serde_json::Value::Object(c));
    }
    if out.is_empty() {
        return None;
    }
    let json = serde_json::Value::Object(out).to_string();
    Some(base64::engine::general_purpose::URL_SAFE.encode(json))
}

/// `docker-credential-<helper> get`: the server on stdin, `{"Username","Secret"}` out.
/// A helper that is not installed, or knows nothing of the server, gives nothing.
fn helper_get(helper: &str, server: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    let mut child = std::process::Command::new(format!("docker-credential-{helper}"))
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(server.as_bytes()).ok()?;
    let out = child.wait_with_output().ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let user = v.get("Username")?.as_str()?.to_string();
    let secret = v.get("Secret")?.as_str()?.to_string();
    let mut c = serde_json::Map::new();
    if user == "<token>" {
        c.insert("identitytoken".into(), secret.into());
    } else {
        c.insert("username".into(), user.into());
        c.insert("password".into(), secret.into());
    }
    Some(c)
}

/// `run`'s image as a pull names it: the repository and its tag or digest (`latest`).
pub fn split_for_run(image: &str) -> (String, String) {
    match split(image, false) {
        Ok((name, Some(tag))) => (name, tag),
        _ => (image.to_string(), "latest".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_split_into_name_and_tag() {
        let s = |r: &str| split(r, false).unwrap();
        assert_eq!(s("busybox"), ("busybox".into(), Some("latest".into())));
        assert_eq!(
            s("localhost:5000/x"),
            ("localhost:5000/x".into(), Some("latest".into()))
        );
        assert_eq!(
            s("localhost:5000/x:1"),
            ("localhost:5000/x".into(), Some("1".into()))
        );
        assert_eq!(s("x@sha256:ab"), ("x".into(), Some("sha256:ab".into())));
        assert_eq!(split("busybox", true).unwrap(), ("busybox".into(), None));
        assert!(split("busybox:1", true).is_err());
    }

    #[test]
    fn names_show_in_full() {
        assert_eq!(
            full_name("busybox:latest"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(full_name("me/x:1"), "docker.io/me/x:1");
        assert_eq!(full_name("127.0.0.1:5000/x:1"), "127.0.0.1:5000/x:1");
    }

    #[test]
    fn registry_keys_follow_docker() {
        assert_eq!(registry_key("busybox"), "https://index.docker.io/v1/");
        assert_eq!(
            registry_key("docker.io/me/x"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(registry_key("127.0.0.1:5000/x"), "127.0.0.1:5000");
        assert_eq!(host_of("https://127.0.0.1:5000/v2/"), "127.0.0.1:5000");
    }
}
