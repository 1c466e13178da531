//! berth's named volumes: the local driver's store, `<root>/volumes`.
//!
//! A volume is a directory `<name>/` holding `_data/` (what containers will mount; 0755,
//! owned by root) and `volume.json` (its name, creation time, driver, labels and options).
//! A volume exists if and only if its directory with `volume.json` is in place: a create
//! builds the whole directory under a hidden staging name (`.tmp-<random>`) and renames it
//! into place, a removal renames it to a hidden trash name (`.trash-<random>`) before it
//! deletes it, so a crash at any point leaves either the whole volume or nothing that is
//! listed; [`Store::open`] clears what such a crash left behind.
//!
//! This crate owns the store and Docker's name rule. It does not know containers: which
//! volumes are in use, and mounting them, are the engine's (issue 15, later slices). It
//! speaks no HTTP; the engine shapes Docker's JSON from a [`Volume`].
//!
//! Flow: [`Store::open`] at engine start -> [`Store::create`] / [`Store::get`] /
//! [`Store::list`] / [`Store::remove`]; [`Store::size`] for prune's reclaimed space.

pub mod mountspec;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// The only driver berth has (Docker's built-in one).
pub const LOCAL_DRIVER: &str = "local";

/// The file holding a volume's metadata, beside its `_data`.
const META: &str = "volume.json";
/// The directory containers will mount.
const DATA: &str = "_data";
/// Hidden names: a create being built, a removal under way.
const STAGING_PREFIX: &str = ".tmp-";
const TRASH_PREFIX: &str = ".trash-";

/// Docker's `names.RestrictedNameChars`, quoted in its refusal.
const NAME_CHARS: &str = "[a-zA-Z0-9][a-zA-Z0-9_.-]";
/// The longest name a directory entry can have.
const MAX_NAME: usize = 255;

/// What a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// Docker's words (`create NAME: ...`), from the local driver's `validateName`.
    #[error("create {name}: {reason}")]
    InvalidName { name: String, reason: String },
    /// Docker's `get NAME: no such volume`.
    #[error("get {0}: no such volume")]
    NotFound(String),
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// What kind of failure an error is; the engine maps it to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Internal,
}

impl VolumeError {
    /// The kind, for the HTTP status at the edge.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::InvalidName { .. } => ErrorKind::InvalidArgument,
            VolumeError::NotFound(_) => ErrorKind::NotFound,
            VolumeError::Io { .. } | VolumeError::Corrupt { .. } => ErrorKind::Internal,
        }
    }

    fn io(context: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        VolumeError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// The store's result type.
pub type Result<T, E = VolumeError> = std::result::Result<T, E>;

/// A volume's metadata, as `volume.json` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Volume {
    pub name: String,
    /// RFC 3339, UTC, whole seconds (Docker's `CreatedAt`).
    pub created_at: String,
    pub driver: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// The volumes under one directory (`<root>/volumes`).
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    /// Serializes creates and removals, so a create never races a removal of the same name.
    lock: Mutex<()>,
}

/// Docker's local driver name rule: `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$` (so never `/` or a
/// name that is only dots), at most 255 bytes (one directory entry).
pub fn validate_name(name: &str) -> Result<()> {
    let invalid = |reason: String| VolumeError::InvalidName {
        name: name.to_string(),
        reason,
    };
    if name.len() == 1 {
        return Err(invalid(
            "volume name is too short, names should be at least two alphanumeric characters".into(),
        ));
    }
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !first_ok || !rest_ok {
        return Err(invalid(format!(
            "\"{name}\" includes invalid characters for a local volume name, only \
             \"{NAME_CHARS}\" are allowed. If you intended to pass a host directory, use \
             absolute path"
        )));
    }
    if name.len() > MAX_NAME {
        return Err(invalid(format!(
            "volume name is too long: {} bytes, at most {MAX_NAME}",
            name.len()
        )));
    }
    Ok(())
}

/// A random name of 64 hex characters, Docker's for a volume created without one.
pub fn random_name() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hidden(prefix: &str) -> String {
    let bytes: [u8; 8] = rand::random();
    let suffix: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{suffix}")
}

impl Store {
    /// Opens (creating it when missing) the store at `dir`, clearing what a crash left
    /// behind: half-built creates and unfinished removals.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store> {
        let dir = dir.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| VolumeError::io("create", &dir, e))?;
        let entries = fs::read_dir(&dir).map_err(|e| VolumeError::io("read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| VolumeError::io("read", &dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(STAGING_PREFIX) || name.starts_with(TRASH_PREFIX) {
                let path = entry.path();
                fs::remove_dir_all(&path).map_err(|e| VolumeError::io("remove", &path, e))?;
            }
        }
        Ok(Store {
            dir,
            lock: Mutex::new(()),
        })
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where volume `name`'s content lives (Docker's `Mountpoint`).
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir.join(name).join(DATA)
    }

    /// Creates volume `name` (a random one when empty) with the local driver. A volume of
    /// that name already there is returned as it is, labels and options untouched:
    /// Docker's answer for the same driver. The `bool` says whether it was created now.
    pub fn create(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
    ) -> Result<(Volume, bool)> {
        let name = if name.is_empty() {
            random_name()
        } else {
            name.to_string()
        };
        validate_name(&name)?;
        let _guard = self.lock.lock().expect("volume store lock");
        match self.get(&name) {
            Ok(v) => return Ok((v, false)),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let volume = Volume {
            name: name.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            driver: LOCAL_DRIVER.to_string(),
            labels,
            options,
        };
        let staging = self.dir.join(hidden(STAGING_PREFIX));
        if let Err(e) = self.build(&staging, &volume) {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let target = self.dir.join(&name);
        if let Err(e) = fs::rename(&staging, &target) {
            let _ = fs::remove_dir_all(&staging);
            return Err(VolumeError::io("create", &target, e));
        }
        sync_dir(&self.dir)?;
        Ok((volume, true))
    }

    /// Builds a whole volume directory at `staging`: `_data` and a synced `volume.json`.
    fn build(&self, staging: &Path, volume: &Volume) -> Result<()> {
        fs::DirBuilder::new()
            .mode(0o700)
            .create(staging)
            .map_err(|e| VolumeError::io("create", staging, e))?;
        let data = staging.join(DATA);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&data)
            .map_err(|e| VolumeError::io("create", &data, e))?;
        // The umask may have taken bits: Docker's `_data` is 0755 whatever it is.
        fs::set_permissions(&data, fs::Permissions::from_mode(0o755))
            .map_err(|e| VolumeError::io("chmod", &data, e))?;
        let meta = staging.join(META);
        let body = serde_json::to_vec_pretty(volume).expect("a volume serializes");
        let mut file = fs::File::create(&meta).map_err(|e| VolumeError::io("create", &meta, e))?;
        file.write_all(&body)
            .and_then(|()| file.sync_all())
            .map_err(|e| VolumeError::io("write", &meta, e))?;
        sync_dir(staging)
    }

    /// Volume `name`, or Docker's `get NAME: no such volume`.
    pub fn get(&self, name: &str) -> Result<Volume> {
        // Never a path: a name the rule refuses cannot be a volume (nor `..`, nor hidden).
        if validate_name(name).is_err() {
            return Err(VolumeError::NotFound(name.to_string()));
        }
        let meta = self.dir.join(name).join(META);
        let body = match fs::read(&meta) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(VolumeError::NotFound(name.to_string()))
            }
            Err(e) => return Err(VolumeError::io("read", &meta, e)),
        };
        serde_json::from_slice(&body).map_err(|source| VolumeError::Corrupt { path: meta, source })
    }

    /// Every volume, by name. A directory without a readable `volume.json` is passed over
    /// (logged): it is no volume.
    pub fn list(&self) -> Result<Vec<Volume>> {
        let entries = fs::read_dir(&self.dir).map_err(|e| VolumeError::io("read", &self.dir, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| VolumeError::io("read", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            match self.get(&name) {
                Ok(v) => out.push(v),
                Err(VolumeError::NotFound(_)) => {}
                Err(e) => tracing::warn!("volume {name} passed over: {e}"),
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Removes volume `name` and its content: renamed out of sight first (it stops
    /// existing at that instant), then deleted.
    pub fn remove(&self, name: &str) -> Result<()> {
        let _guard = self.lock.lock().expect("volume store lock");
        self.get(name)?;
        let path = self.dir.join(name);
        let trash = self.dir.join(hidden(TRASH_PREFIX));
        fs::rename(&path, &trash).map_err(|e| VolumeError::io("remove", &path, e))?;
        sync_dir(&self.dir)?;
        fs::remove_dir_all(&trash).map_err(|e| VolumeError::io("remove", &trash, e))
    }

    /// The bytes of volume `name`'s content: regular files' sizes, a hard-linked file
    /// counted once (Docker's `directory.Size`, what prune reports as reclaimed).
    pub fn size(&self, name: &str) -> Result<u64> {
        self.get(name)?;
        let mut seen = HashSet::new();
        dir_size(&self.mountpoint(name), &mut seen)
    }
}

fn dir_size(dir: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64> {
    let mut total = 0;
    let entries = fs::read_dir(dir).map_err(|e| VolumeError::io("read", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| VolumeError::io("read", dir, e))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).map_err(|e| VolumeError::io("stat", &path, e))?;
        if meta.is_dir() {
            total += dir_size(&path, seen)?;
        } else if meta.is_file() && (meta.nlink() == 1 || seen.insert((meta.dev(), meta.ino()))) {
            total += meta.len();
        }
    }
    Ok(total)
}

/// fsync of a directory, so a rename in it is on disk before the caller says "done".
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| VolumeError::io("sync", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(tmp.path().join("volumes")).unwrap();
        (tmp, store)
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn create_get_list_remove_round_trip() {
        let (_tmp, store) = store();
        let (v, created) = store
            .create("data1", labels(&[("a", "b")]), BTreeMap::new())
            .unwrap();
        assert!(created);
        assert_eq!(v.name, "data1");
        assert_eq!(v.driver, "local");
        assert_eq!(v.labels, labels(&[("a", "b")]));
        chrono::DateTime::parse_from_rfc3339(&v.created_at).unwrap();
        assert!(v.created_at.ends_with('Z'), "{}", v.created_at);
        let data = store.mountpoint("data1");
        assert_eq!(data, store.dir().join("data1/_data"));
        let mode = fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert_eq!(store.get("data1").unwrap(), v);
        store
            .create("data0", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        let names: Vec<String> = store.list().unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(names, ["data0", "data1"]);
        store.remove("data1").unwrap();
        assert!(!store.dir().join("data1").exists());
        assert!(matches!(store.get("data1"), Err(VolumeError::NotFound(_))));
        assert_eq!(
            store.remove("data1").unwrap_err().to_string(),
            "get data1: no such volume"
        );
        assert_eq!(store.list().unwrap().len(), 1);
        // Nothing hidden is left behind by a create or a removal.
        let left: Vec<_> = fs::read_dir(store.dir()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1);
    }

    #[test]
    fn create_of_an_existing_name_returns_the_existing_volume() {
        let (_tmp, store) = store();
        let (first, _) = store
            .create("keep", labels(&[("x", "1")]), BTreeMap::new())
            .unwrap();
        fs::write(store.mountpoint("keep").join("file"), b"data").unwrap();
        let (again, created) = store
            .create("keep", labels(&[("y", "2")]), BTreeMap::new())
            .unwrap();
        assert!(!created);
        assert_eq!(again, first);
        assert_eq!(
            fs::read(store.mountpoint("keep").join("file")).unwrap(),
            b"data"
        );
    }

    #[test]
    fn an_empty_name_gets_64_random_hex_characters() {
        let (_tmp, store) = store();
        let (a, _) = store.create("", BTreeMap::new(), BTreeMap::new()).unwrap();
        let (b, _) = store.create("", BTreeMap::new(), BTreeMap::new()).unwrap();
        assert_eq!(a.name.len(), 64);
        assert!(a
            .name
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a.name, b.name);
    }

    #[test]
    fn invalid_names_are_refused_in_dockers_words() {
        let (_tmp, store) = store();
        for bad in [
            "a/b", "..", "../x", ".hidden", "-x", "_x", "x y", "é1", "a\0b",
        ] {
            let e = store
                .create(bad, BTreeMap::new(), BTreeMap::new())
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{bad}");
            assert_eq!(
                e.to_string(),
                format!(
                    "create {bad}: \"{bad}\" includes invalid characters for a local volume \
                     name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to \
                     pass a host directory, use absolute path"
                )
            );
        }
        let e = store
            .create("a", BTreeMap::new(), BTreeMap::new())
            .unwrap_err();
        assert!(e.to_string().contains("too short"), "{e}");
        let long = "a".repeat(256);
        assert!(store
            .create(&long, BTreeMap::new(), BTreeMap::new())
            .is_err());
        store
            .create(&"a".repeat(255), BTreeMap::new(), BTreeMap::new())
            .unwrap();
        store
            .create("A0_.-z", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(store.list().unwrap().len(), 2);
        // Lookups never leave the store either.
        assert!(matches!(store.get(".."), Err(VolumeError::NotFound(_))));
    }

    #[test]
    fn a_crash_leftover_is_not_listed_and_open_clears_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("volumes");
        let store = Store::open(&dir).unwrap();
        store
            .create("whole", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        // A create that died before its rename, and a removal that died after its own.
        let staging = dir.join(".tmp-0123");
        fs::create_dir_all(staging.join(DATA)).unwrap();
        fs::write(staging.join(META), b"{\"Name\":\"ghost\"").unwrap();
        let trash = dir.join(".trash-4567");
        fs::create_dir_all(trash.join(DATA)).unwrap();
        fs::write(trash.join(DATA).join("f"), b"x").unwrap();
        // A directory without its metadata (built by hand): no volume either.
        fs::create_dir_all(dir.join("half").join(DATA)).unwrap();
        let names =
            |s: &Store| -> Vec<String> { s.list().unwrap().into_iter().map(|v| v.name).collect() };
        assert_eq!(names(&store), ["whole"]);
        assert!(matches!(store.get("half"), Err(VolumeError::NotFound(_))));
        drop(store);
        let store = Store::open(&dir).unwrap();
        assert!(!staging.exists());
        assert!(!trash.exists());
        assert_eq!(names(&store), ["whole"]);
        assert!(store.mountpoint("whole").is_dir());
    }

    #[test]
    fn size_counts_file_bytes_and_hard_links_once() {
        let (_tmp, store) = store();
        store
            .create("sized", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        let data = store.mountpoint("sized");
        fs::create_dir(data.join("sub")).unwrap();
        fs::write(data.join("sub/a"), vec![0u8; 1000]).unwrap();
        fs::write(data.join("b"), vec![0u8; 24]).unwrap();
        fs::hard_link(data.join("b"), data.join("b2")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        assert_eq!(store.size("sized").unwrap(), 1024);
    }
}
