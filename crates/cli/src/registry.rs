//! `berth pull`, `push`, `login` and `logout`, and the pull `run` and `create` make of a
//! missing image: the requests,
//! the credentials the docker CLI would send (`~/.docker/config.json`: `auths`,
//! `credHelpers`, `credsStore`), and Docker's progress display: per-layer lines redrawn in
//! place on a terminal, plain status lines otherwise.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};

use anyhow::Result;
use berth_api::auth::{config_key, registry_domain, AuthConfig};
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
    config_key(split_domain(image).0.unwrap_or(""))
}

/// The docker CLI's config directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> std::path::PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return d.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    std::path::Path::new(&home).join(".docker")
}

/// Credentials for `image`'s registry from the docker CLI's config (its credential
/// helper first), as the `X-Registry-Auth` value; `None` when there are none.
pub fn registry_auth(image: &str) -> Option<String> {
    let key = registry_key(image);
    let config = read_config(&config_dir().join("config.json")).ok()?;
    let mut creds = helper_for(&config, &key).and_then(|h| helper_get(&h, &key));
    if creds.is_none() {
        let auths = config.get("auths")?.as_object()?;
        let entry = auths.get(&key).or_else(|| {
            auths
                .iter()
                .find(|(k, _)| registry_domain(k) == registry_domain(&key))
                .map(|(_, v)| v)
        })?;
        creds = AuthConfig::from_config_entry(entry);
    }
    let mut c = creds?;
    c.server_address = key;
    Some(c.to_header())
}

/// The `X-Registry-Config` of a build: every `auths` entry of the docker CLI's config,
/// keyed by registry; `None` when there is none.
pub fn registry_config() -> Option<String> {
    use base64::Engine;
    let config = read_config(&config_dir().join("config.json")).ok()?;
    let out: std::collections::BTreeMap<&String, AuthConfig> = config
        .get("auths")?
        .as_object()?
        .iter()
        .filter_map(|(key, entry)| {
            let mut c = AuthConfig::from_config_entry(entry)?;
            c.server_address = key.clone();
            Some((key, c))
        })
        .collect();
    if out.is_empty() {
        return None;
    }
    let json = serde_json::to_string(&out).expect("credentials serialise");
    Some(base64::engine::general_purpose::URL_SAFE.encode(json))
}

/// The username credential helpers keep an identity token under (docker's).
const IDENTITY_TOKEN_USER: &str = "<token>";

/// `docker-credential-<helper> get`: the server on stdin, `{"Username","Secret"}` out
/// (`<token>` as the username for an identity token). A helper that knows nothing of
/// the server gives nothing.
fn helper_get(helper: &str, server: &str) -> Option<AuthConfig> {
    let out = helper_run(helper, "get", server.as_bytes()).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out).ok()?;
    let user = v.get("Username")?.as_str()?;
    let secret = v.get("Secret")?.as_str()?.to_string();
    Some(if user == IDENTITY_TOKEN_USER {
        AuthConfig {
            identity_token: secret,
            ..Default::default()
        }
    } else {
        AuthConfig {
            username: user.to_string(),
            password: secret,
            ..Default::default()
        }
    })
}

/// `run`'s image as a pull names it: the repository and its tag or digest (`latest`).
pub fn split_for_run(image: &str) -> (String, String) {
    match split(image, false) {
        Ok((name, Some(tag))) => (name, tag),
        _ => (image.to_string(), "latest".to_string()),
    }
}

/// `berth push`.
#[derive(Debug, Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short = 'a', long = "all-tags")]
    pub all_tags: bool,
    /// Skip image signing
    #[arg(long = "disable-content-trust", default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub disable_content_trust: bool,
    /// Push a platform-specific manifest as a single-platform image to the registry
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress verbose output
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// NAME[:TAG]
    pub name: String,
}

/// `berth push`: the progress, as docker shows it.
pub async fn push_cmd(client: &Client, args: &PushArgs) -> Result<i32> {
    if !args.disable_content_trust {
        anyhow::bail!(
            "--disable-content-trust=false: berth does not sign images (Docker Content Trust)"
        );
    }
    if let Some(p) = &args.platform {
        anyhow::bail!("--platform {p}: berth keeps one platform per image and pushes it whole; refused rather than ignored");
    }
    let (name, tag) = split(&args.name, args.all_tags)?;
    if tag.as_deref().is_some_and(|t| t.starts_with("sha256:")) {
        anyhow::bail!(
            "invalid reference format: a digest cannot be pushed: {}",
            args.name
        );
    }
    let auth = registry_auth(&name).unwrap_or_else(|| "e30=".to_string());
    let stream = match client.image_push(&name, tag.as_deref(), Some(&auth)).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("Error response from daemon: {}", e.message());
            return Ok(1);
        }
    };
    let mut stream = stream;
    let mut display = Display::new(std::io::stdout().is_terminal());
    while let Some(msg) = stream.next().await {
        let msg = msg?;
        if let Some(err) = msg.failure() {
            eprintln!("{err}");
            return Ok(1);
        }
        if args.quiet || msg.aux.is_some() {
            continue;
        }
        let mut out = std::io::stdout().lock();
        display.show(&msg, &mut out);
        let _ = out.flush();
    }
    if args.quiet {
        crate::outln(&full_name(&match &tag {
            Some(t) => format!("{name}:{t}"),
            None => name.clone(),
        }));
    }
    Ok(0)
}

/// `berth login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Username
    #[arg(short = 'u', long)]
    pub username: Option<String>,
    /// Password or Personal Access Token (PAT)
    #[arg(short = 'p', long)]
    pub password: Option<String>,
    /// Take the Password or Personal Access Token (PAT) from stdin
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// SERVER
    pub server: Option<String>,
}

/// `berth logout`.
#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// SERVER
    pub server: Option<String>,
}

/// The key a login is kept under: Docker Hub's address, else `host[:port]`.
fn login_key(server: Option<&str>) -> String {
    config_key(server.unwrap_or(""))
}

/// `berth login`: berthd checks the credentials with the registry; they are stored only
/// then (config.json, or the credential helper it names), as the docker CLI stores them.
pub async fn login_cmd(client: &Client, args: &LoginArgs) -> Result<i32> {
    let key = login_key(args.server.as_deref());
    if args.password.is_some() && args.password_stdin {
        anyhow::bail!("--password and --password-stdin are mutually exclusive");
    }
    if args.password_stdin && args.username.is_none() {
        anyhow::bail!("Must provide --username with --password-stdin");
    }
    if args.password.is_some() {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let username = match &args.username {
        Some(u) => u.clone(),
        None => {
            if !std::io::stdin().is_terminal() {
                anyhow::bail!("Cannot perform an interactive login from a non TTY device");
            }
            eprint!("Username: ");
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            line.trim().to_string()
        }
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => {
            if !std::io::stdin().is_terminal() {
                anyhow::bail!("Cannot perform an interactive login from a non TTY device");
            }
            eprint!("Password: ");
            let p = crate::tty::read_password()?;
            eprintln!();
            p
        }
    };
    if username.is_empty() {
        anyhow::bail!("Error: Non-null Username Required");
    }
    if password.is_empty() {
        anyhow::bail!("Error: Password Required");
    }
    let mut auth = AuthConfig {
        username,
        password,
        server_address: key.clone(),
        ..Default::default()
    };
    match client.registry_login(&auth).await {
        Ok(token) => auth.identity_token = token.unwrap_or_default(),
        Err(e) => {
            eprintln!("Error response from daemon: {}", e.message());
            return Ok(1);
        }
    }
    let warning = store_credentials(&key, &auth)?;
    if let Some(path) = warning {
        eprintln!(
            "\nWARNING! Your credentials are stored unencrypted in '{path}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n"
        );
    }
    crate::outln("Login Succeeded");
    Ok(0)
}

/// `berth logout`: the credentials of SERVER go from config.json (and its helper).
pub async fn logout_cmd(args: &LogoutArgs) -> Result<i32> {
    let key = login_key(args.server.as_deref());
    let path = config_dir().join("config.json");
    let mut config = read_config(&path)?;
    let mut found = false;
    if let Some(auths) = config.get_mut("auths").and_then(|a| a.as_object_mut()) {
        let keys: Vec<String> = auths
            .keys()
            .filter(|k| *k == &key || registry_domain(k) == registry_domain(&key))
            .cloned()
            .collect();
        for k in keys {
            auths.remove(&k);
            found = true;
        }
    }
    if let Some(helper) = helper_for(&config, &key) {
        found |= helper_run(&helper, "erase", key.as_bytes()).is_ok();
    }
    if !found {
        crate::outln(&format!("Not logged in to {key}"));
        return Ok(0);
    }
    crate::outln(&format!("Removing login credentials for {key}"));
    write_config(&path, &config)?;
    Ok(0)
}

fn read_config(path: &std::path::Path) -> Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| anyhow::anyhow!("loading config file {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
        Err(e) => Err(anyhow::anyhow!(
            "loading config file {}: {e}",
            path.display()
        )),
    }
}

/// Writes config.json atomically: a new temp file beside it (never one that was there),
/// mode 0600, owned as the file it replaces, renamed over it. A symlinked config.json is
/// written where it points, as the docker CLI does.
fn write_config(path: &std::path::Path, config: &serde_json::Value) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
    let path = match std::fs::canonicalize(path) {
        Ok(p) => p,
        Err(_) => path.to_path_buf(),
    };
    let dir = path.parent().expect("config.json has a directory");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let owner = std::fs::metadata(&path)
        .or_else(|_| std::fs::metadata(dir))
        .map(|m| (m.uid(), m.gid()))
        .ok();
    let nonce: u64 = {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    };
    let tmp = dir.join(format!(".config.json.{nonce:016x}"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let written = (|| {
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        f.write_all(serde_json::to_string_pretty(config)?.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok::<(), anyhow::Error>(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// The credential helper config.json names for `key`, if it is installed.
fn helper_for(config: &serde_json::Value, key: &str) -> Option<String> {
    let helper = config
        .get("credHelpers")
        .and_then(|h| h.get(registry_domain(key)).or_else(|| h.get(key)))
        .or_else(|| config.get("credsStore"))
        .and_then(|v| v.as_str())
        .filter(|s| valid_helper(s))?
        .to_string();
    let installed = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join(format!("docker-credential-{helper}")).is_file())
    });
    installed.then_some(helper)
}

/// A credential helper's name: a program name part, never a path.
fn valid_helper(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Runs `docker-credential-<helper> <verb>` with `input`; its stdout.
fn helper_run(helper: &str, verb: &str, input: &[u8]) -> Result<Vec<u8>> {
    let mut child = std::process::Command::new(format!("docker-credential-{helper}"))
        .arg(verb)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child.stdin.take().expect("piped stdin").write_all(input)?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        anyhow::bail!(
            "docker-credential-{helper} {verb}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Keeps the credentials: in the credential helper when config.json names an installed
/// one, else in config.json (base64, as docker's). Returns the file's path when they went
/// there unencrypted.
fn store_credentials(key: &str, auth: &AuthConfig) -> Result<Option<String>> {
    let path = config_dir().join("config.json");
    let mut config = read_config(&path)?;
    if !config.is_object() {
        config = serde_json::json!({});
    }
    let helper = helper_for(&config, key);
    let entry = match &helper {
        Some(h) => {
            let input = if auth.identity_token.is_empty() {
                serde_json::json!({"ServerURL": key, "Username": auth.username, "Secret": auth.password})
            } else {
                serde_json::json!({"ServerURL": key, "Username": IDENTITY_TOKEN_USER, "Secret": auth.identity_token})
            };
            helper_run(h, "store", input.to_string().as_bytes())?;
            serde_json::json!({})
        }
        None => auth.to_config_entry(),
    };
    let obj = config.as_object_mut().expect("an object");
    let auths = obj.entry("auths").or_insert_with(|| serde_json::json!({}));
    if !auths.is_object() {
        *auths = serde_json::json!({});
    }
    auths
        .as_object_mut()
        .expect("an object")
        .insert(key.to_string(), entry);
    write_config(&path, &config)?;
    Ok(helper.is_none().then(|| path.display().to_string()))
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
    fn helper_names_are_never_paths() {
        assert!(valid_helper("pass") && valid_helper("ecr-login") && valid_helper("a.b_c"));
        for bad in ["", "x/y", "../x", "a b", "x;y"] {
            assert!(!valid_helper(bad), "{bad}");
        }
    }

    #[test]
    fn registry_keys_follow_docker() {
        assert_eq!(registry_key("busybox"), "https://index.docker.io/v1/");
        assert_eq!(
            registry_key("docker.io/me/x"),
            "https://index.docker.io/v1/"
        );
        assert_eq!(registry_key("127.0.0.1:5000/x"), "127.0.0.1:5000");
        assert_eq!(
            login_key(Some("https://127.0.0.1:5000/v2/")),
            "127.0.0.1:5000"
        );
        assert_eq!(login_key(None), "https://index.docker.io/v1/");
    }
}
