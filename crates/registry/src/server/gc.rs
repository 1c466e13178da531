//! `berth-registry gc`: mark and sweep, safe while the server runs.
//!
//! Mark: every manifest some repository links, and what it refers to (config, layers,
//! index children, recursively). Sweep: blobs that are unmarked and older than the grace
//! period (a push uploads its blobs before its manifest; the server touches a blob when it
//! is linked, mounted or referred to by a manifest PUT, so a push in flight keeps its blobs),
//! then repository blob links whose blob is gone, then stale uploads.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::handlers::MAX_MANIFEST;
use super::names;
use super::storage::{self, list_dir, walk_repositories, Store};

/// What gc removed (or would remove, with `dry_run`).
#[derive(Debug, Default)]
pub struct Report {
    /// Blobs removed, with their sizes.
    pub blobs: Vec<(String, u64)>,
    /// Repository links removed (`<name>@sha256:<hex>`).
    pub links: Vec<String>,
    /// Stale uploads removed.
    pub uploads: usize,
}

impl Report {
    pub fn bytes_freed(&self) -> u64 {
        self.blobs.iter().map(|(_, s)| s).sum()
    }
}

/// Runs gc on the store at `root`.
pub fn collect(root: &Path, grace: Duration, dry_run: bool) -> io::Result<Report> {
    let store = Store::open(root)?;
    let mut repos = Vec::new();
    walk_repositories(&store.repositories_dir(), "", &mut repos)?;
    let marked = mark(&store, &repos)?;
    let mut report = Report::default();
    let now = SystemTime::now();
    let blobs_dir = store.blobs_dir();
    let mut gone = HashSet::new();
    for hex in list_dir(&blobs_dir)? {
        if marked.contains(&hex) || !(hex.len() == 64 && names::is_lower_hex(&hex)) {
            continue;
        }
        let path = blobs_dir.join(&hex);
        let Ok(meta) = fs::metadata(&path) else {
            continue;
        };
        let age = now
            .duration_since(meta.modified().unwrap_or(now))
            .unwrap_or_default();
        if age < grace {
            continue;
        }
        if !dry_run {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(storage::at(&path)(e)),
            }
        }
        gone.insert(hex.clone());
        report.blobs.push((hex, meta.len()));
    }
    for repo in &repos_with_links(&store)? {
        let dir = store.repositories_dir().join(repo).join("_blobs");
        for hex in list_dir(&dir)? {
            let dangling = gone.contains(&hex) || store.blob_size(&hex)?.is_none();
            if !dangling {
                continue;
            }
            if !dry_run {
                let p = dir.join(&hex);
                match fs::remove_file(&p) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        return Err(storage::at(&p)(e))
                    }
                    _ => {}
                }
            }
            report.links.push(format!("{repo}@sha256:{hex}"));
        }
    }
    report.uploads = store
        .remove_stale_uploads(storage::STALE_UPLOAD, dry_run)?
        .len();
    Ok(report)
}

/// Every directory under repositories/ that has a `_blobs` dir (a repository may have
/// blobs and no manifest yet).
fn repos_with_links(store: &Store) -> io::Result<Vec<String>> {
    fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> io::Result<()> {
        for entry in list_dir(dir)? {
            if entry.starts_with('_') || entry.starts_with('.') {
                continue;
            }
            let path = dir.join(&entry);
            if !path.is_dir() {
                continue;
            }
            let name = if prefix.is_empty() {
                entry
            } else {
                format!("{prefix}/{entry}")
            };
            if path.join("_blobs").is_dir() {
                out.push(name.clone());
            }
            walk(&path, &name, out)?;
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&store.repositories_dir(), "", &mut out)?;
    Ok(out)
}

/// The blobs (manifests included) reachable from the repositories' manifest links.
fn mark(store: &Store, repos: &[String]) -> io::Result<HashSet<String>> {
    let mut marked = HashSet::new();
    let mut work: Vec<String> = Vec::new();
    for repo in repos {
        let dir = store.repositories_dir().join(repo).join("_manifests");
        work.extend(
            list_dir(&dir)?
                .into_iter()
                .filter(|h| h.len() == 64 && names::is_lower_hex(h)),
        );
    }
    while let Some(hex) = work.pop() {
        if !marked.insert(hex.clone()) {
            continue;
        }
        let Ok(bytes) = store.read_small_blob(&hex, MAX_MANIFEST) else {
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        let descriptors = v
            .get("config")
            .into_iter()
            .chain(
                v.get("layers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            )
            .chain(
                v.get("manifests")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten(),
            );
        for d in descriptors {
            if let Some(h) = d
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|d| names::parse_digest(d).ok())
            {
                work.push(h.to_string());
            }
        }
    }
    Ok(marked)
}
