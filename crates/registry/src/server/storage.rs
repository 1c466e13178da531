//! The registry's files under `--root` (the layout is described in [`super`]). Every method
//! is blocking file I/O: handlers call them on the blocking pool. Names, digests, tags and
//! upload ids reach here validated ([`super::names`]), so each is one safe path component
//! (a name: several, none `.`/`..`/`_*`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Uploads untouched for this long are removed at start and by gc.
pub const STALE_UPLOAD: Duration = Duration::from_secs(24 * 3600);

/// The store rooted at `--root`.
pub struct Store {
    root: PathBuf,
}

/// Adds the path to an I/O error (the store's errors always say which file).
pub fn at(path: &Path) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

fn exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(at(path)(e)),
    }
}

/// A fresh random lowercase hex id of 32 digits.
pub fn random_id() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Forces a directory's entries (a rename into it) to disk.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(at(dir))
}

/// Writes `bytes` at `path` atomically: a temporary file beside it, fsync, rename, fsync of
/// the directory. A reader sees the old content or the new, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().expect("store paths have a parent");
    fs::create_dir_all(dir).map_err(at(dir))?;
    let tmp = dir.join(format!(".tmp-{}", random_id()));
    let result = (|| {
        let mut f = File::create(&tmp).map_err(at(&tmp))?;
        f.write_all(bytes).map_err(at(&tmp))?;
        f.sync_all().map_err(at(&tmp))?;
        fs::rename(&tmp, path).map_err(at(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

impl Store {
    /// Opens (making its directories) the store at `root` and removes stale uploads.
    pub fn open(root: &Path) -> io::Result<Store> {
        let store = Store {
            root: root.to_path_buf(),
        };
        for d in [
            store.blobs_dir(),
            store.repositories_dir(),
            store.uploads_dir(),
        ] {
            fs::create_dir_all(&d).map_err(at(&d))?;
        }
        store.remove_stale_uploads(STALE_UPLOAD, false)?;
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub fn repositories_dir(&self) -> PathBuf {
        self.root.join("repositories")
    }

    pub fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// The content-addressed file of a blob (or a manifest's bytes).
    pub fn blob_path(&self, hex: &str) -> PathBuf {
        self.blobs_dir().join(hex)
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.repositories_dir().join(name)
    }

    /// The blob's size when it is stored and linked in `name`.
    pub fn linked_blob_size(&self, name: &str, hex: &str) -> io::Result<Option<u64>> {
        if !exists(&self.repo(name).join("_blobs").join(hex))? {
            return Ok(None);
        }
        self.blob_size(hex)
    }

    /// The blob's size when it is stored.
    pub fn blob_size(&self, hex: &str) -> io::Result<Option<u64>> {
        let p = self.blob_path(hex);
        match fs::metadata(&p) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&p)(e)),
        }
    }

    /// Links a stored blob into `name` (idempotent) and marks it as just used, so a gc
    /// running now keeps it for its grace period.
    pub fn link_blob(&self, name: &str, hex: &str) -> io::Result<()> {
        let dir = self.repo(name).join("_blobs");
        fs::create_dir_all(&dir).map_err(at(&dir))?;
        let link = dir.join(hex);
        File::create(&link).map_err(at(&link))?;
        self.touch_blob(hex)
    }

    /// Sets a blob's mtime to now (gc's grace period counts from it).
    pub fn touch_blob(&self, hex: &str) -> io::Result<()> {
        let p = self.blob_path(hex);
        match File::options().write(true).open(&p) {
            Ok(f) => f.set_modified(SystemTime::now()).map_err(at(&p)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(at(&p)(e)),
        }
    }

    /// Removes a blob's link from `name`; false when it was not linked.
    pub fn unlink_blob(&self, name: &str, hex: &str) -> io::Result<bool> {
        remove_if_present(&self.repo(name).join("_blobs").join(hex))
    }

    /// The media type of a manifest linked in `name`.
    pub fn manifest_media_type(&self, name: &str, hex: &str) -> io::Result<Option<String>> {
        let link = self.repo(name).join("_manifests").join(hex);
        match fs::read_to_string(&link) {
            Ok(t) if self.blob_size(hex)?.is_some() => Ok(Some(t.trim().to_string())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&link)(e)),
        }
    }

    /// Reads a blob whole, refusing more than `limit` bytes (manifests).
    pub fn read_small_blob(&self, hex: &str, limit: u64) -> io::Result<Vec<u8>> {
        let p = self.blob_path(hex);
        let f = File::open(&p).map_err(at(&p))?;
        let mut bytes = Vec::new();
        f.take(limit + 1).read_to_end(&mut bytes).map_err(at(&p))?;
        if bytes.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: larger than {limit} bytes", p.display()),
            ));
        }
        Ok(bytes)
    }

    /// Stores a manifest: its bytes as a blob (staged, fsynced, renamed), its link in
    /// `name` holding `media_type`, the referrers link of its subject, and the tag.
    pub fn put_manifest(
        &self,
        name: &str,
        hex: &str,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
        subject: Option<&str>,
    ) -> io::Result<()> {
        if self.blob_size(hex)? != Some(bytes.len() as u64) {
            let staged = self.uploads_dir().join(format!("manifest-{}", random_id()));
            let result = (|| {
                let mut f = File::create(&staged).map_err(at(&staged))?;
                f.write_all(bytes).map_err(at(&staged))?;
                f.sync_all().map_err(at(&staged))?;
                fs::rename(&staged, self.blob_path(hex)).map_err(at(&staged))
            })();
            if result.is_err() {
                let _ = fs::remove_file(&staged);
            }
            result?;
            sync_dir(&self.blobs_dir())?;
        } else {
            self.touch_blob(hex)?;
        }
        let repo = self.repo(name);
        write_atomic(&repo.join("_manifests").join(hex), media_type.as_bytes())?;
        if let Some(s) = subject {
            let dir = repo.join("_referrers").join(s);
            fs::create_dir_all(&dir).map_err(at(&dir))?;
            let link = dir.join(hex);
            File::create(&link).map_err(at(&link))?;
        }
        if let Some(t) = tag {
            write_atomic(
                &repo.join("_tags").join(t),
                format!("sha256:{hex}").as_bytes(),
            )?;
        }
        Ok(())
    }

    /// The digest hex a tag of `name` points at.
    pub fn resolve_tag(&self, name: &str, tag: &str) -> io::Result<Option<String>> {
        let p = self.repo(name).join("_tags").join(tag);
        match fs::read_to_string(&p) {
            Ok(t) => Ok(t
                .trim()
                .strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && super::names::is_lower_hex(h))
                .map(String::from)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&p)(e)),
        }
    }

    /// Whether `name` is a repository here (something was pushed to it).
    pub fn repository_exists(&self, name: &str) -> io::Result<bool> {
        exists(&self.repo(name).join("_manifests"))
    }

    /// `name`'s tags, sorted.
    pub fn tags(&self, name: &str) -> io::Result<Vec<String>> {
        let mut tags = list_dir(&self.repo(name).join("_tags"))?;
        tags.retain(|t| !t.starts_with('.'));
        tags.sort();
        Ok(tags)
    }

    /// Every repository with a manifest, sorted.
    pub fn catalog(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        walk_repositories(&self.repositories_dir(), "", &mut names)?;
        names.sort();
        Ok(names)
    }

    /// Manifests of `name` whose subject is `subject_hex`.
    pub fn referrers(&self, name: &str, subject_hex: &str) -> io::Result<Vec<String>> {
        let mut r = list_dir(&self.repo(name).join("_referrers").join(subject_hex))?;
        r.sort();
        Ok(r)
    }

    /// Removes a manifest from `name`: its link, the tags pointing at it, its referrers
    /// link. Its bytes stay for gc. False when it was not linked.
    pub fn delete_manifest(
        &self,
        name: &str,
        hex: &str,
        subject: Option<&str>,
    ) -> io::Result<bool> {
        let repo = self.repo(name);
        if !remove_if_present(&repo.join("_manifests").join(hex))? {
            return Ok(false);
        }
        for tag in self.tags(name)? {
            if self.resolve_tag(name, &tag)?.as_deref() == Some(hex) {
                remove_if_present(&repo.join("_tags").join(&tag))?;
            }
        }
        if let Some(s) = subject {
            remove_if_present(&repo.join("_referrers").join(s).join(hex))?;
        }
        Ok(true)
    }

    /// Starts an upload into `name`: `uploads/<id>/{data,state}`.
    pub fn new_upload(&self, name: &str) -> io::Result<String> {
        let id = random_id();
        let dir = self.uploads_dir().join(&id);
        fs::create_dir(&dir).map_err(at(&dir))?;
        let data = dir.join("data");
        File::create(&data).map_err(at(&data))?;
        let state = dir.join("state");
        fs::write(&state, name).map_err(at(&state))?;
        Ok(id)
    }

    /// The repository an upload belongs to and its size so far; None when unknown.
    pub fn upload(&self, id: &str) -> io::Result<Option<(String, u64)>> {
        let dir = self.uploads_dir().join(id);
        let name = match fs::read_to_string(dir.join("state")) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(at(&dir)(e)),
        };
        let data = dir.join("data");
        match fs::metadata(&data) {
            Ok(m) => Ok(Some((name, m.len()))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(at(&data)(e)),
        }
    }

    /// The upload's data file.
    pub fn upload_data(&self, id: &str) -> PathBuf {
        self.uploads_dir().join(id).join("data")
    }

    /// Removes an upload.
    pub fn cancel_upload(&self, id: &str) -> io::Result<()> {
        let dir = self.uploads_dir().join(id);
        match fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(at(&dir)(e)),
            _ => Ok(()),
        }
    }

    /// Publishes a finished upload whose digest was checked: its data (already fsynced)
    /// renamed into `blobs/` (over an identical copy, if another push got there first),
    /// then linked in `name`.
    pub fn publish_upload(&self, id: &str, name: &str, hex: &str) -> io::Result<()> {
        let data = self.upload_data(id);
        let dest = self.blob_path(hex);
        // A blob already here was checked when it came: it is never replaced.
        if !dest.exists() {
            fs::rename(&data, &dest).map_err(at(&data))?;
            sync_dir(&self.blobs_dir())?;
        }
        self.link_blob(name, hex)?;
        self.cancel_upload(id)
    }

    /// Removes uploads (and staged manifests) untouched for `older_than`; lists them only
    /// when `dry_run`. Returns what it removed.
    pub fn remove_stale_uploads(
        &self,
        older_than: Duration,
        dry_run: bool,
    ) -> io::Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        let dir = self.uploads_dir();
        let now = SystemTime::now();
        for entry in fs::read_dir(&dir).map_err(at(&dir))? {
            let entry = entry.map_err(at(&dir))?;
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let mut newest = meta.modified().unwrap_or(now);
            if meta.is_dir() {
                if let Ok(m) = fs::metadata(path.join("data")).and_then(|m| m.modified()) {
                    newest = newest.max(m);
                }
            }
            if now.duration_since(newest).unwrap_or_default() < older_than {
                continue;
            }
            if !dry_run {
                let r = if meta.is_dir() {
                    fs::remove_dir_all(&path)
                } else {
                    fs::remove_file(&path)
                };
                r.map_err(at(&path))?;
            }
            removed.push(path);
        }
        Ok(removed)
    }
}

/// Removes a file; false when there was none.
fn remove_if_present(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(at(path)(e)),
    }
}

/// The entries' names of a directory; none when it does not exist.
pub fn list_dir(dir: &Path) -> io::Result<Vec<String>> {
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(at(dir)(e)),
    };
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(at(dir))?;
        if let Ok(n) = entry.file_name().into_string() {
            names.push(n);
        }
    }
    Ok(names)
}

/// Collects the repository names below `dir` (`prefix` is `dir`'s name so far): a
/// directory with `_manifests` is a repository; directories not starting with `_` are
/// name components to descend into.
pub fn walk_repositories(dir: &Path, prefix: &str, names: &mut Vec<String>) -> io::Result<()> {
    for entry in list_dir(dir)? {
        if entry.starts_with('_') || entry.starts_with('.') {
            continue;
        }
        let path = dir.join(&entry);
        if !fs::symlink_metadata(&path)
            .map(|m| m.is_dir())
            .unwrap_or(false)
        {
            continue;
        }
        let name = if prefix.is_empty() {
            entry
        } else {
            format!("{prefix}/{entry}")
        };
        if path.join("_manifests").is_dir() {
            names.push(name.clone());
        }
        walk_repositories(&path, &name, names)?;
    }
    Ok(())
}

/// Opens an upload's data file for appending.
pub fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().append(true).open(path).map_err(at(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn nested_repositories_do_not_collide_with_link_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bytes = b"{}";
        let hex = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(bytes));
        for name in ["a", "a/blobs", "a/manifests/x"] {
            store
                .put_manifest(name, &hex, bytes, "m", Some("t"), Some(HEX_A))
                .unwrap();
        }
        assert_eq!(store.catalog().unwrap(), ["a", "a/blobs", "a/manifests/x"]);
        assert_eq!(store.tags("a").unwrap(), ["t"]);
        assert_eq!(
            store.resolve_tag("a/blobs", "t").unwrap(),
            Some(hex.clone())
        );
        assert_eq!(store.referrers("a", HEX_A).unwrap(), vec![hex.clone()]);
        assert!(store.delete_manifest("a", &hex, Some(HEX_A)).unwrap());
        assert_eq!(store.tags("a").unwrap(), Vec::<String>::new());
        assert_eq!(store.resolve_tag("a/blobs", "t").unwrap(), Some(hex));
    }

    #[test]
    fn an_upload_is_visible_only_once_published() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let id = store.new_upload("r").unwrap();
        std::fs::write(store.upload_data(&id), b"data").unwrap();
        assert_eq!(store.upload(&id).unwrap(), Some(("r".into(), 4)));
        assert_eq!(list_dir(&store.blobs_dir()).unwrap().len(), 0);
        store.publish_upload(&id, "r", HEX_A).unwrap();
        assert_eq!(store.linked_blob_size("r", HEX_A).unwrap(), Some(4));
        assert_eq!(store.linked_blob_size("other", HEX_A).unwrap(), None);
        assert_eq!(store.upload(&id).unwrap(), None);
        // Stale uploads go; young ones stay.
        let young = store.new_upload("r").unwrap();
        assert!(store
            .remove_stale_uploads(STALE_UPLOAD, false)
            .unwrap()
            .is_empty());
        assert_eq!(
            store
                .remove_stale_uploads(Duration::ZERO, false)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.upload(&young).unwrap(), None);
    }
}
