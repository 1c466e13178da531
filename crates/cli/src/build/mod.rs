//! `berth build`: docker build's flags over the classic builder's `POST /build`. The
//! context is a directory (sent as a tar with `.dockerignore` applied, context.rs), a tar on
//! stdin (sent as it is, compressed or not) or a Dockerfile alone on stdin; the answer's
//! JSON lines are printed as they come (plain) or as a compact live view on a terminal
//! (progress.rs). An in-band `errorDetail` ends the command with its code, as docker's.

mod context;
use berth_api::dockerignore as ignore;
mod progress;
mod secrets;

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use anyhow::{anyhow, bail, Context as _, Result};
use berth_client::{BuildOptions, Client};
use clap::Args;
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

use context::{Injected, Plan};
use ignore::Matcher;

/// `build`.
#[derive(Debug, Clone, Args)]
pub struct BuildArgs {
    /// Name and optionally a tag in the "name:tag" format
    #[arg(short = 't', long = "tag", value_parser = validate_tag)]
    pub tag: Vec<String>,
    /// Name of the Dockerfile (Default is "PATH/Dockerfile")
    #[arg(short = 'f', long = "file")]
    pub file: Option<String>,
    /// Set build-time variables
    #[arg(long = "build-arg", value_parser = validate_build_arg)]
    pub build_arg: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label", value_parser = validate_label)]
    pub label: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long = "no-cache")]
    pub no_cache: bool,
    /// Do not cache specified stages
    #[arg(long = "no-cache-filter", value_delimiter = ',')]
    pub no_cache_filter: Vec<String>,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long, default_value = "default")]
    pub network: String,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, env = "DOCKER_DEFAULT_PLATFORM", hide_env = true)]
    pub platform: Option<String>,
    /// Secret to expose to the build (format: "id=mysecret[,src=/local/secret]" or
    /// "id=mysecret,env=VAR"); berthd only
    #[arg(long)]
    pub secret: Vec<String>,
    /// Set type of progress output ("auto", "plain", "tty", "quiet")
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty", "quiet"])]
    pub progress: String,
    /// Remove intermediate containers after a successful build
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", action = clap::ArgAction::Set, default_value = "true")]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long = "force-rm")]
    pub force_rm: bool,
    /// PATH | -
    #[arg(value_name = "PATH | -")]
    pub context: String,
}

/// docker's `validateTag`: a reference that parses (`invalid reference format`).
fn validate_tag(t: &str) -> Result<String, String> {
    check_reference(t).map(|()| t.to_string())
}

/// A reference as `distribution/reference`'s grammar takes it: `[host[:port]/]path[:tag]`,
/// lowercase path components joined by `.`, `_`, `__` or runs of `-`.
fn check_reference(t: &str) -> Result<(), String> {
    let invalid = || Err("invalid reference format".to_string());
    if t.len() == 64
        && t.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(format!(
            "invalid repository name ({t}), cannot specify 64-byte hexadecimal strings"
        ));
    }
    let name_tag = t.split_once('@').map_or(t, |(n, _)| n);
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        if !ok {
            return invalid();
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1
        && (parts[0].contains(['.', ':'])
            || parts[0] == "localhost"
            || parts[0] != parts[0].to_lowercase())
    {
        let host = parts.remove(0);
        let (h, port) = host.split_once(':').unwrap_or((host, ""));
        let host_ok = !h.is_empty()
            && h.split('.').all(|l| {
                !l.is_empty()
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
            && (port.is_empty() && !host.ends_with(':')
                || port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty());
        if !host_ok {
            return invalid();
        }
    }
    if name.is_empty() {
        return invalid();
    }
    let path = parts.join("/");
    if path != path.to_lowercase() {
        let shown = if parts.len() == 1 && name == path {
            format!("library/{path}")
        } else {
            path.clone()
        };
        return Err(format!(
            "invalid reference format: repository name ({shown}) must be lowercase"
        ));
    }
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        // Separators between alphanumeric runs: `.`, `_`, `__` or any run of `-`.
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !(b[i].is_ascii_lowercase() || b[i].is_ascii_digit()) {
                i += 1;
            }
            let sep = &c[start..i];
            if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
                return false;
            }
        }
        true
    };
    if !parts.iter().all(|c| component_ok(c)) || name.len() > 255 {
        return invalid();
    }
    Ok(())
}

/// docker's `ValidateEnv` for `--build-arg`: `K=V` as is; `K` takes its value from the
/// environment and is left out of the request when the environment has none.
fn validate_build_arg(a: &str) -> Result<String, String> {
    let key = a.split('=').next().unwrap_or("");
    if key.is_empty() {
        return Err(format!("invalid environment variable: {a}"));
    }
    Ok(a.to_string())
}

/// docker's `ValidateLabel`: a key before any `=`.
fn validate_label(l: &str) -> Result<String, String> {
    let key = l.split('=').next().unwrap_or("");
    if key.trim().is_empty() {
        return Err(format!("invalid label '{l}': empty name"));
    }
    Ok(l.to_string())
}

/// The build args sent: `K=V` pairs, and `K` with the environment's value when it has one.
fn build_args(args: &[String], env: impl Fn(&str) -> Option<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for a in args {
        match a.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Some(v) = env(a) {
                    out.insert(a.clone(), v);
                }
            }
        }
    }
    out
}

fn labels(args: &[String]) -> BTreeMap<String, String> {
    args.iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect()
}

/// `builder prune`.
#[derive(Debug, Clone, Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long)]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Amount of disk space to keep for cache
    #[arg(long = "keep-storage", value_parser = crate::human::ram_in_bytes)]
    pub keep_storage: Option<i64>,
}

/// `builder prune`, in the docker CLI's words.
pub async fn prune(client: &Client, args: &BuilderPruneArgs) -> Result<i32> {
    let warning = if args.all {
        "WARNING! This will remove all build cache. Are you sure you want to continue? [y/N] "
    } else {
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "
    };
    if !args.force && !crate::confirm(warning) {
        return Ok(0);
    }
    let filters = crate::container::parse_filters(&args.filter)?;
    let report = client
        .build_prune(args.all, &filters, args.keep_storage)
        .await?;
    let deleted = report.caches_deleted.unwrap_or_default();
    if !deleted.is_empty() {
        let mut out = String::from("Deleted build cache objects:\n");
        for id in &deleted {
            out.push_str(id);
            out.push('\n');
        }
        crate::outln(&out);
    }
    crate::outln(&format!(
        "Total reclaimed space: {}",
        crate::human::human_size(report.space_reclaimed as f64)
    ));
    Ok(0)
}

/// What is sent as the request body.
enum Body {
    /// A directory, validated, and the key berthd may keep it under (none while a file in
    /// it changed within the last seconds): its tar is written by a thread (whose error
    /// explains a cut-short build) unless berthd kept it.
    Dir(Box<Plan>, Option<String>),
    /// Bytes in memory (a Dockerfile alone) or stdin's archive after its first bytes.
    Reader(Box<dyn AsyncRead + Send + Unpin>),
}

/// `build`.
pub async fn build(client: &Client, args: &BuildArgs) -> Result<i32> {
    let secrets = secrets::load(&args.secret).map_err(|e| anyhow!("invalid secret: {e}"))?;
    if !secrets.is_empty() {
        // The frame is berth's extension of the protocol: another daemon would take it for
        // (a broken) context, so it goes to berthd only.
        let v = client.version().await?;
        if v.platform.name != "berth" {
            bail!(
                "--secret needs berthd: the daemon is {:?}, whose classic builder takes no \
                 secrets (use BuildKit there)",
                v.platform.name
            );
        }
    }
    let quiet = args.quiet || args.progress == "quiet";
    let from_stdin = args.context == "-";
    let dockerfile_stdin = args.file.as_deref() == Some("-");
    if dockerfile_stdin && from_stdin {
        bail!("invalid argument: can't use stdin for both build context and dockerfile");
    }
    if let Some(f) = &args.iidfile {
        match std::fs::remove_file(f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                bail!("removing image ID file: {e}")
            }
            _ => {}
        }
    }
    let (body, dockerfile) = if from_stdin {
        stdin_context(args.file.as_deref())
            .await
            .map_err(|e| anyhow!("unable to prepare context from STDIN: {e}"))?
    } else {
        dir_context(args, dockerfile_stdin).await?
    };
    let options = BuildOptions {
        dockerfile,
        tags: args.tag.clone(),
        build_args: build_args(&args.build_arg, |k| std::env::var(k).ok()),
        labels: labels(&args.label),
        quiet,
        no_cache: args.no_cache,
        no_cache_stages: args.no_cache_filter.clone(),
        pull: args.pull,
        remove: args.rm,
        force_remove: args.force_rm,
        network_mode: args.network.clone(),
        target: args.target.clone(),
        platform: args.platform.clone().map(|p| p.to_lowercase()),
        secrets,
        registry_config: crate::registry::registry_config(),
        ..Default::default()
    };
    let mut options = options;
    let sent = Arc::new(Sent::default());
    // An unchanged directory berthd kept from an earlier build is not sent again.
    let mut kept = None;
    if let Body::Dir(_, Some(key)) = &body {
        let berthd = client
            .ping()
            .await
            .ok()
            .and_then(|p| p.server)
            .is_some_and(|s| s.starts_with("Berth/"));
        if berthd {
            options.context_key = Some(key.clone());
            let reuse = BuildOptions {
                context_reuse: true,
                ..options.clone()
            };
            match client.image_build(tokio::io::empty(), &reuse).await {
                Ok(stream) => kept = Some(stream),
                Err(berth_client::ClientError::Daemon { status, .. }) if status.as_u16() == 412 => {
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    let (reader, writer): (Box<dyn AsyncRead + Send + Unpin>, _) = match body {
        _ if kept.is_some() => (Box::new(tokio::io::empty()), None),
        Body::Dir(plan, _) => {
            let (file, writer) = context::stream(*plan)?;
            (Box::new(tokio::fs::File::from_std(file)), Some(writer))
        }
        Body::Reader(r) => (r, None),
    };
    let reader = Counted {
        inner: reader,
        sent: sent.clone(),
    };
    let answer = match kept {
        Some(stream) => Ok(stream),
        None => client.image_build(reader, &options).await,
    };
    let result = match answer {
        Ok(stream) => {
            let tty = match args.progress.as_str() {
                "tty" => true,
                "plain" => false,
                _ => std::io::stdout().is_terminal(),
            };
            progress::show(stream, quiet, tty, &sent).await
        }
        Err(e) => Err(e.into()),
    };
    // The context's writer failing (a file gone or unreadable mid-way) is the real cause of
    // whatever the daemon said about a cut-short context.
    if let Some(w) = writer {
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || w.join())
            .await
            .map(|j| {
                j.unwrap_or_else(|_| Err(std::io::Error::other("the context writer panicked")))
            })
        {
            return Err(anyhow!("sending the build context: {e}"));
        }
    }
    let outcome = result?;
    if let Some(code) = outcome.failed {
        return Ok(code);
    }
    if let Some(f) = &args.iidfile {
        let Some(id) = &outcome.image_id else {
            bail!("server did not provide an image ID. Cannot write {f}");
        };
        std::fs::write(f, id).with_context(|| format!("write {f}"))?;
    }
    Ok(0)
}

/// What the request read of the context: docker prints its size once it is all sent.
#[derive(Debug, Default)]
pub struct Sent {
    bytes: AtomicU64,
    whole: AtomicBool,
}

impl Sent {
    /// The bytes sent, once the whole context was.
    pub fn whole(&self) -> Option<u64> {
        self.whole
            .load(Ordering::Relaxed)
            .then(|| self.bytes.load(Ordering::Relaxed))
    }
}

/// A reader that counts into a [`Sent`].
struct Counted<R> {
    inner: R,
    sent: Arc<Sent>,
}

impl<R: AsyncRead + Unpin> AsyncRead for Counted<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            let n = (buf.filled().len() - before) as u64;
            if n == 0 {
                self.sent.whole.store(true, Ordering::Relaxed);
            } else {
                self.sent.bytes.fetch_add(n, Ordering::Relaxed);
            }
        }
        polled
    }
}

/// A directory context: its `.dockerignore` (or the Dockerfile's own
/// `<Dockerfile>.dockerignore`), the Dockerfile inside or outside it, validated, then
/// streamed.
async fn dir_context(args: &BuildArgs, dockerfile_stdin: bool) -> Result<(Body, String)> {
    let root = resolve_context_dir(&args.context)
        .map_err(|e| anyhow!("unable to prepare context: {e}"))?;
    let (rel_dockerfile, outside) = match args.file.as_deref() {
        Some("-") => ("-".to_string(), None),
        given => {
            let abs = dockerfile_path(&root, given)
                .map_err(|e| anyhow!("unable to prepare context: {e}"))?;
            match abs.strip_prefix(&root) {
                Ok(rel) => (rel.to_string_lossy().into_owned(), None),
                Err(_) => (String::new(), Some(abs)),
            }
        }
    };
    let dockerfile_on_disk = match (&outside, rel_dockerfile.as_str()) {
        (Some(abs), _) => Some(abs.clone()),
        (None, "-") => None,
        (None, rel) => Some(root.join(rel)),
    };
    let own_ignore = dockerfile_on_disk.as_ref().map(|p| {
        let mut s = p.clone().into_os_string();
        s.push(".dockerignore");
        PathBuf::from(s)
    });
    let ignore_file = match own_ignore.filter(|p| p.is_file()) {
        Some(p) => p,
        None => root.join(".dockerignore"),
    };
    let mut patterns = match std::fs::read(&ignore_file) {
        Ok(c) => ignore::read_patterns(&c),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => bail!(
            "error reading .dockerignore: {}: {e}",
            ignore_file.display()
        ),
    };
    // Docker's `TrimBuildFilesFromExcludes`: the Dockerfile and .dockerignore are always
    // sent (the daemon needs them, and leaves them out of what COPY sees).
    let m = Matcher::new(&patterns).map_err(|e| anyhow!("checking context: {e}"))?;
    if m.matches_legacy(".dockerignore") {
        patterns.push("!.dockerignore".into());
    }
    if outside.is_none() && !dockerfile_stdin && m.matches_legacy(&rel_dockerfile) {
        patterns.push(format!("!{rel_dockerfile}"));
    }
    let matcher = Matcher::new(&patterns).map_err(|e| anyhow!("checking context: {e}"))?;
    let injected_content = if dockerfile_stdin {
        let mut buf = Vec::new();
        tokio::io::stdin()
            .read_to_end(&mut buf)
            .await
            .context("read the Dockerfile from stdin")?;
        Some(buf)
    } else if let Some(abs) = &outside {
        Some(std::fs::read(abs).map_err(|e| anyhow!("unable to open Dockerfile: {e}"))?)
    } else {
        None
    };
    let (injected, dockerfile) = match injected_content {
        Some(content) => {
            let name = context::random_dockerfile_name();
            (
                Some(Injected {
                    name: name.clone(),
                    content,
                }),
                name,
            )
        }
        None => (None, rel_dockerfile),
    };
    let plan = Plan {
        root,
        matcher,
        injected,
    };
    let (plan, key) = tokio::task::spawn_blocking(move || {
        context::validate(&plan)?;
        let key = context::kept_key(&plan);
        Ok::<_, anyhow::Error>((plan, key))
    })
    .await??;
    Ok((Body::Dir(Box::new(plan), key), dockerfile))
}

/// The context directory, absolute with symlinks resolved (Docker's
/// `resolveAndValidateContextPath`).
fn resolve_context_dir(given: &str) -> Result<PathBuf> {
    let abs = std::path::absolute(given)?;
    let real = std::fs::canonicalize(&abs).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            anyhow!("path {given:?} not found")
        } else {
            anyhow!("unable to evaluate symlinks in context path: {e}")
        }
    })?;
    if !real.is_dir() {
        bail!("context must be a directory: {}", real.display());
    }
    Ok(real)
}

/// The Dockerfile's absolute path: `-f` is relative to the working directory, the default
/// `Dockerfile` (or `dockerfile`) to the context (Docker's `getDockerfileRelPath`).
fn dockerfile_path(root: &Path, given: Option<&str>) -> Result<PathBuf> {
    let path = match given {
        Some(f) => std::path::absolute(f)?,
        None => {
            let default = root.join("Dockerfile");
            let lower = root.join("dockerfile");
            if std::fs::symlink_metadata(&default).is_err()
                && std::fs::symlink_metadata(&lower).is_ok()
            {
                lower
            } else {
                default
            }
        }
    };
    match std::fs::canonicalize(&path) {
        Ok(p) => Ok(p),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Go's EvalSymlinks names the first component that is missing.
            let missing = path
                .ancestors()
                .filter(|a| std::fs::symlink_metadata(a).is_err())
                .last()
                .unwrap_or(&path);
            bail!(
                "unable to evaluate symlinks in Dockerfile path: lstat {}: no such file or directory",
                missing.display()
            )
        }
        Err(e) => bail!("unable to evaluate symlinks in Dockerfile path: {e}"),
    }
}

/// A context on stdin: an archive, sent as it is (its first bytes read to tell), or a
/// Dockerfile alone, sent as a one-file tar.
async fn stdin_context(file: Option<&str>) -> Result<(Body, String)> {
    let mut stdin = tokio::io::stdin();
    let mut head = Vec::with_capacity(1024);
    while head.len() < 1024 {
        let mut chunk = vec![0u8; 1024 - head.len()];
        let n = stdin.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    if context::is_archive(&head) {
        let reader = std::io::Cursor::new(head).chain(stdin);
        return Ok((
            Body::Reader(Box::new(reader)),
            file.unwrap_or_default().to_string(),
        ));
    }
    if file.is_some() {
        bail!("ambiguous Dockerfile source: both stdin and flag correspond to Dockerfiles");
    }
    let mut content = head;
    stdin.read_to_end(&mut content).await?;
    let tar = context::dockerfile_only(&content)?;
    Ok((
        Body::Reader(Box::new(std::io::Cursor::new(tar))),
        "Dockerfile".to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_args_from_the_environment_only_when_it_has_them() {
        let env = |k: &str| (k == "SET").then(|| "from-env".to_string());
        let got = build_args(
            &["A=1".into(), "SET".into(), "UNSET".into(), "B=".into()],
            env,
        );
        let want: BTreeMap<String, String> = [("A", "1"), ("B", ""), ("SET", "from-env")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
        assert!(validate_build_arg("=x").is_err());
        assert!(validate_label("=x").is_err());
        assert_eq!(labels(&["a=b".into(), "c".into()])["c"], "");
    }

    #[test]
    fn tags_are_checked_as_references() {
        for ok in [
            "busybox",
            "a/b:1",
            "localhost:5000/x:latest",
            "reg.io/a/b_c.d-e:v1.0",
            "a__b",
        ] {
            assert_eq!(validate_tag(ok), Ok(ok.to_string()), "{ok}");
        }
        assert_eq!(
            validate_tag("Foo").unwrap_err(),
            "invalid reference format: repository name (library/Foo) must be lowercase"
        );
        for bad in [
            "", "a:", "a:-x", "-a", "a//b", "a/b/", "a:b:c", "a..b", "a___b",
        ] {
            assert_eq!(
                validate_tag(bad).unwrap_err(),
                "invalid reference format",
                "{bad:?}"
            );
        }
    }
}
