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
//! [`Store::list`] / [`Store::remove`] (or [`Store::remove_if`], deciding under the store's
//! lock); [`Store::size`] for prune's reclaimed space; [`Store::export`] and
//! [`Store::import`] -> [`StagedImport::commit`] for berth's own backup and restore
//! (archive/): an import is unpacked into a hidden `.import-<random>` directory beside
//! `_data` and exchanged with it in one `renameat2(RENAME_EXCHANGE)`, so `_data` is at
//! every instant either the old content or the whole new one.

pub mod archive;
pub mod local;
pub mod mountspec;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

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
/// An import being unpacked inside a volume's directory, or the old content it replaced.
const IMPORT_PREFIX: &str = ".import-";
/// The store's mode, Docker's for `<root>/volumes`: others may pass through to a volume's
/// `_data` (a container's user other than root reaches its mount) but not list the volumes.
const STORE_MODE: u32 = 0o701;
/// A volume's directory (Docker's): `_data` beneath it is reachable; its `volume.json` is
/// 0600.
const VOLUME_MODE: u32 = 0o755;

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
    /// Something is mounted on the volume's `_data` (or below): removing it would delete
    /// through the mount.
    #[error(
        "remove {0}: something is still mounted on the volume (it is not removed while that is so)"
    )]
    Mounted(String),
    #[error("reading {}: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An import into a volume with content, without `force`.
    #[error("volume {0} is not empty: import refused (--force replaces its content)")]
    NotEmpty(String),
    #[error("import into volume {name}: {source}")]
    Import {
        name: String,
        #[source]
        source: archive::ImportError,
    },
    #[error("export of volume {name}: {source}")]
    Export {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// An export or import of a volume of mount options: `what` says what to back up.
    #[error(
        "volume {name} has the local driver's mount options: export and import work on plain \
         volumes ({what})"
    )]
    MountOptions { name: String, what: String },
}

/// What kind of failure an error is; the engine maps it to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    Conflict,
    TooLarge,
    Internal,
}

impl VolumeError {
    /// The kind, for the HTTP status at the edge.
    pub fn kind(&self) -> ErrorKind {
        match self {
            VolumeError::InvalidName { .. } | VolumeError::MountOptions { .. } => {
                ErrorKind::InvalidArgument
            }
            VolumeError::NotFound(_) => ErrorKind::NotFound,
            VolumeError::Mounted(_) => ErrorKind::Conflict,
            VolumeError::NotEmpty(_) => ErrorKind::Conflict,
            VolumeError::Import { source, .. } => match source {
                archive::ImportError::Invalid(_) => ErrorKind::InvalidArgument,
                archive::ImportError::TooLarge { .. } => ErrorKind::TooLarge,
                archive::ImportError::Io { .. } => ErrorKind::Internal,
            },
            VolumeError::Io { .. } | VolumeError::Corrupt { .. } | VolumeError::Export { .. } => {
                ErrorKind::Internal
            }
        }
    }

    /// The message for a client: the same as `Display` but without the host paths an I/O or
    /// metadata error names (those stay in berthd's log).
    pub fn public_message(&self) -> String {
        match self {
            VolumeError::Io {
                context, source, ..
            } => format!("volume store: {context}: {source}"),
            VolumeError::Corrupt { source, .. } => {
                format!("volume store: reading a volume's metadata: {source}")
            }
            other => other.to_string(),
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

impl Volume {
    /// Whether it may be exported or imported: a volume of mount options (a tmpfs, a bind
    /// of a host directory) has its content elsewhere than `_data` while it is not mounted,
    /// so its export would be empty and an import would land under the mount. Refused,
    /// naming what to back up instead.
    pub fn check_plain(&self) -> Result<()> {
        if self.options.is_empty() {
            return Ok(());
        }
        let what = match self.options.get("type").map(String::as_str) {
            Some("tmpfs") => {
                "a tmpfs volume holds nothing while no container runs with it".to_string()
            }
            _ => format!(
                "back up its device {} itself",
                self.options.get("device").map(String::as_str).unwrap_or("")
            ),
        };
        Err(VolumeError::MountOptions {
            name: self.name.clone(),
            what,
        })
    }
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
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent).map_err(|e| VolumeError::io("create", parent, e))?;
        }
        match fs::DirBuilder::new().mode(STORE_MODE).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(VolumeError::io("create", &dir, e)),
        }
        // Made with another mode (an older berth, the umask): corrected.
        let mode = fs::metadata(&dir)
            .map_err(|e| VolumeError::io("stat", &dir, e))?
            .permissions()
            .mode();
        if mode & 0o7777 != STORE_MODE {
            fs::set_permissions(&dir, fs::Permissions::from_mode(STORE_MODE))
                .map_err(|e| VolumeError::io("chmod", &dir, e))?;
        }
        let entries = fs::read_dir(&dir).map_err(|e| VolumeError::io("read", &dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| VolumeError::io("read", &dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(STAGING_PREFIX) || name.starts_with(TRASH_PREFIX) {
                // Hidden, never listed: what cannot go now stays for the next start rather
                // than keeping berthd from starting.
                let path = entry.path();
                if local::mounted_under(&path).unwrap_or(true) {
                    tracing::warn!(
                        "leftover {} not removed: something is mounted in it",
                        path.display()
                    );
                    continue;
                }
                if let Err(e) = fs::remove_dir_all(&path) {
                    tracing::warn!("leftover {} not removed: {e}", path.display());
                }
            } else {
                clear_imports(&entry.path());
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
        self.create_with(name, labels, options, |_| Ok::<(), VolumeError>(()))
    }

    /// [`Store::create`], with `fill` writing the new volume's first content into its
    /// `_data` while it is still hidden (copy-up): the volume appears whole or not at all, and
    /// neither the store's lock nor any other is held while `fill` runs. When the name is
    /// taken meanwhile, what `fill` wrote is dropped and the volume there is returned (not
    /// created). `fill` does not run for a volume that exists already.
    pub fn create_with<E: From<VolumeError>>(
        &self,
        name: &str,
        labels: BTreeMap<String, String>,
        options: BTreeMap<String, String>,
        fill: impl FnOnce(&Path) -> std::result::Result<(), E>,
    ) -> std::result::Result<(Volume, bool), E> {
        let name = if name.is_empty() {
            random_name()
        } else {
            name.to_string()
        };
        validate_name(&name)?;
        match self.get(&name) {
            Ok(v) => return Ok((v, false)),
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
        let volume = Volume {
            name: name.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            driver: LOCAL_DRIVER.to_string(),
            labels,
            options,
        };
        let staging = self.dir.join(hidden(STAGING_PREFIX));
        let built = self
            .build(&staging, &volume)
            .map_err(E::from)
            .and_then(|()| fill(&staging.join(DATA)));
        if let Err(e) = built {
            let _ = fs::remove_dir_all(&staging);
            return Err(e);
        }
        let _guard = self.lock();
        match self.get(&name) {
            Ok(v) => {
                let _ = fs::remove_dir_all(&staging);
                return Ok((v, false));
            }
            Err(VolumeError::NotFound(_)) => {}
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                return Err(e.into());
            }
        }
        let target = self.dir.join(&name);
        if let Err(e) = fs::rename(&staging, &target) {
            let _ = fs::remove_dir_all(&staging);
            return Err(VolumeError::io("create", &target, e).into());
        }
        // The rename made the volume: from here a failure is logged, never reported as the
        // create's (the volume is there, and listed).
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!("volume {name} created, but {e}");
        }
        Ok((volume, true))
    }

    /// Builds a whole volume directory at `staging`: `_data` and a synced `volume.json`.
    fn build(&self, staging: &Path, volume: &Volume) -> Result<()> {
        fs::DirBuilder::new()
            .mode(VOLUME_MODE)
            .create(staging)
            .map_err(|e| VolumeError::io("create", staging, e))?;
        let data = staging.join(DATA);
        fs::DirBuilder::new()
            .mode(0o755)
            .create(&data)
            .map_err(|e| VolumeError::io("create", &data, e))?;
        // The umask may have taken bits: Docker's modes whatever it is.
        for path in [staging, &data] {
            fs::set_permissions(path, fs::Permissions::from_mode(VOLUME_MODE))
                .map_err(|e| VolumeError::io("chmod", path, e))?;
        }
        let meta = staging.join(META);
        let body = serde_json::to_vec_pretty(volume).expect("a volume serializes");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&meta)
            .map_err(|e| VolumeError::io("create", &meta, e))?;
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
        self.remove_if(name, |_| Ok::<(), VolumeError>(()))
    }

    /// Removes volume `name` if `check`, run on its metadata under the store's lock (so no
    /// create or removal of that name comes between), says yes; its error is returned as
    /// it is. The rename out of sight is the removal's commit point: a failure after it
    /// (the deletion of the renamed directory) is logged and the removal succeeds, the
    /// rest going at the next [`Store::open`].
    pub fn remove_if<E: From<VolumeError>>(
        &self,
        name: &str,
        check: impl FnOnce(&Volume) -> Result<(), E>,
    ) -> Result<(), E> {
        let _guard = self.lock();
        let volume = self.get(name)?;
        check(&volume)?;
        let path = self.dir.join(name);
        // Never delete through a mount (a bind volume's device, a tmpfs in use).
        if local::mounted_under(&path).map_err(|e| VolumeError::io("read mounts of", &path, e))? {
            return Err(VolumeError::Mounted(name.to_string()).into());
        }
        let trash = self.dir.join(hidden(TRASH_PREFIX));
        fs::rename(&path, &trash).map_err(|e| VolumeError::io("remove", &path, e))?;
        if let Err(e) = sync_dir(&self.dir) {
            tracing::warn!("volume {name} removed, but {e}");
        }
        if let Err(e) = fs::remove_dir_all(&trash) {
            tracing::warn!(
                "volume {name} removed, but its content at {} is left: {e}",
                trash.display()
            );
        }
        Ok(())
    }

    /// The bytes of volume `name`'s content, as Docker's `directory.Size` counts them
    /// (what prune reports as reclaimed, and `system df`): every entry but a directory by
    /// its own size (a symlink's is its target's length: never followed), a hard-linked
    /// file once. The walk is relative to open directories and opens none through a
    /// symlink, so a directory swapped for a symlink meanwhile leads nowhere outside; what
    /// vanishes meanwhile (a removal beside) counts zero.
    pub fn size(&self, name: &str) -> Result<u64> {
        let (_, data) = self.open_volume(name)?;
        tree_size(data).map_err(|e| VolumeError::io("size", self.mountpoint(name), e.into()))
    }

    /// Writes volume `name`'s content to `out` as a tar archive (archive/), compressed as
    /// asked. The walk opens `_data` and everything under it relative to open directories,
    /// never through a symlink. Refused for a volume of mount options
    /// ([`Volume::check_plain`]). Blocking.
    pub fn export(
        &self,
        name: &str,
        out: &mut dyn Write,
        compression: archive::Compression,
    ) -> Result<()> {
        self.get(name)?.check_plain()?;
        let (_, data) = self.open_volume(name)?;
        let failed = |source| VolumeError::Export {
            name: name.to_string(),
            source,
        };
        let mut encoder = compression.encoder(out).map_err(failed)?;
        archive::write_tree(data, &mut encoder).map_err(failed)?;
        encoder.finish().map_err(failed)?;
        Ok(())
    }

    /// Unpacks the tar stream `input` (plain, gzip or zstd, told by its first bytes) for
    /// volume `name` into a hidden staging directory beside its `_data`; the content
    /// replaces `_data` at [`StagedImport::commit`], and goes if the import is dropped
    /// first. Refused for a volume of mount options ([`Volume::check_plain`]), and for a
    /// volume with content unless `force`. What the stream expands to
    /// is bounded by the space free on the volume's filesystem when the import starts.
    /// Blocking.
    pub fn import(&self, name: &str, input: impl Read, force: bool) -> Result<StagedImport<'_>> {
        self.get(name)?.check_plain()?;
        let (volume, data) = self.open_volume(name)?;
        if !force && !is_empty(&data).map_err(|e| self.io_at("read", name, e))? {
            return Err(VolumeError::NotEmpty(name.to_string()));
        }
        let free = rustix::fs::fstatvfs(&volume)
            .map(|v| v.f_bavail.saturating_mul(v.f_frsize))
            .map_err(|e| self.io_at("statvfs", name, e))?;
        let staging = hidden(IMPORT_PREFIX);
        rustix::fs::mkdirat(&volume, staging.as_str(), Mode::from_raw_mode(VOLUME_MODE))
            .map_err(|e| self.io_at("create", name, e))?;
        let staged = StagedImport {
            store: self,
            name: name.to_string(),
            staging,
            committed: false,
        };
        let root =
            open_dir(&volume, staged.staging.as_str()).map_err(|e| self.io_at("open", name, e))?;
        // Docker's mode for `_data` unless the archive's `./` says otherwise.
        rustix::fs::fchmod(&root, Mode::from_raw_mode(VOLUME_MODE))
            .map_err(|e| self.io_at("chmod", name, e))?;
        let input = std::io::BufReader::with_capacity(256 << 10, input);
        let unpacked = archive::decoder(input)
            .map_err(|e| archive::ImportError::Invalid(format!("reading the archive: {e}")))
            .and_then(|stream| archive::read_tree(stream, &root, free));
        unpacked.map_err(|source| VolumeError::Import {
            name: name.to_string(),
            source,
        })?;
        Ok(staged)
    }

    /// The open directories of volume `name` and its `_data`, never through a symlink.
    fn open_volume(&self, name: &str) -> Result<(OwnedFd, OwnedFd)> {
        validate_name(name).map_err(|_| VolumeError::NotFound(name.to_string()))?;
        let store = rustix::fs::open(
            &self.dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| VolumeError::io("open", &self.dir, e.into()))?;
        let not_found = |e: Errno| match e {
            Errno::NOENT | Errno::NOTDIR | Errno::LOOP => VolumeError::NotFound(name.to_string()),
            e => self.io_at("open", name, e),
        };
        let volume = open_dir(&store, name).map_err(not_found)?;
        // A directory without its metadata is no volume.
        rustix::fs::statat(&volume, META, AtFlags::SYMLINK_NOFOLLOW).map_err(not_found)?;
        let data = open_dir(&volume, DATA).map_err(not_found)?;
        Ok((volume, data))
    }

    fn io_at(&self, context: &'static str, name: &str, e: Errno) -> VolumeError {
        VolumeError::io(context, self.dir.join(name), e.into())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // Guards no data: a panic while held leaves nothing half-changed in memory.
        self.lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// An import unpacked beside a volume's `_data`, not yet in place (see [`Store::import`]).
/// Dropped without [`StagedImport::commit`], its directory is removed.
#[derive(Debug)]
pub struct StagedImport<'a> {
    store: &'a Store,
    name: String,
    staging: String,
    committed: bool,
}

impl StagedImport<'_> {
    /// Puts the imported content in place of `_data` in one exchange of the two names
    /// (`renameat2(RENAME_EXCHANGE)`), then removes the old content. Without `force`, a
    /// `_data` that got content since the import began is kept and the import refused.
    /// The caller decides under its own locks that no container stands in the way.
    pub fn commit(mut self, force: bool) -> Result<()> {
        let _guard = self.store.lock();
        let (volume, data) = self.store.open_volume(&self.name)?;
        if !force && !is_empty(&data).map_err(|e| self.store.io_at("read", &self.name, e))? {
            return Err(VolumeError::NotEmpty(self.name.clone()));
        }
        rustix::fs::renameat_with(
            &volume,
            self.staging.as_str(),
            &volume,
            DATA,
            rustix::fs::RenameFlags::EXCHANGE,
        )
        .map_err(|e| self.store.io_at("exchange", &self.name, e))?;
        self.committed = true;
        let dir = self.store.dir.join(&self.name);
        if let Err(e) = rustix::fs::fsync(&volume) {
            tracing::warn!(
                "volume {} imported, but sync {}: {e}",
                self.name,
                dir.display()
            );
        }
        // The old content, now under the staging name.
        let old = dir.join(&self.staging);
        if let Err(e) = fs::remove_dir_all(&old) {
            tracing::warn!(
                "volume {} imported; its old content {} stays: {e}",
                self.name,
                old.display()
            );
        }
        Ok(())
    }
}

impl Drop for StagedImport<'_> {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        let path = self.store.dir.join(&self.name).join(&self.staging);
        if let Err(e) = fs::remove_dir_all(&path) {
            tracing::warn!("import staging {} not removed: {e}", path.display());
        }
    }
}

/// Whether the open directory `dir` has no entry.
fn is_empty(dir: &OwnedFd) -> rustix::io::Result<bool> {
    for entry in Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if name != c"." && name != c".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Removes what an import that died left in the volume directory `dir`: its staging
/// directory, or the old content it had not removed yet.
fn clear_imports(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(IMPORT_PREFIX)
        {
            let path = entry.path();
            if let Err(e) = fs::remove_dir_all(&path) {
                tracing::warn!("leftover {} not removed: {e}", path.display());
            }
        }
    }
}

/// `name` in `dir` opened as a directory, never through a symlink (`ELOOP` or `ENOTDIR`
/// then).
pub(crate) fn open_dir(
    dir: impl AsFd,
    name: impl rustix::path::Arg,
) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// What one directory entry adds to a size.
#[derive(Debug)]
enum Entry {
    /// A directory, open, to walk.
    Dir(OwnedFd),
    /// Anything else: its own size, or zero (a hard link already counted).
    Bytes(u64),
    /// Gone since its directory was read, or no longer a directory when opened as one.
    Vanished,
}

/// The entry `name` of `dir`, stat'ed without following a symlink.
fn entry(
    dir: impl AsFd,
    name: &std::ffi::CStr,
    seen: &mut HashSet<(u64, u64)>,
) -> rustix::io::Result<Entry> {
    let dir = dir.as_fd();
    let st = match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(Entry::Vanished),
        Err(e) => return Err(e),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        return match open_dir(dir, name) {
            Ok(fd) => Ok(Entry::Dir(fd)),
            // Removed, or swapped for a symlink or a file since the stat.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => Ok(Entry::Vanished),
            Err(e) => Err(e),
        };
    }
    let size = u64::try_from(st.st_size).unwrap_or(0);
    if st.st_nlink > 1 && !seen.insert((st.st_dev, st.st_ino)) {
        return Ok(Entry::Bytes(0));
    }
    Ok(Entry::Bytes(size))
}

/// The size of the tree under the open directory `root`, depth first, one open directory
/// per level.
fn tree_size(root: OwnedFd) -> rustix::io::Result<u64> {
    let mut seen = HashSet::new();
    let mut total = 0u64;
    let mut stack = vec![Dir::new(root)?];
    while let Some(dir) = stack.last_mut() {
        let found = match dir.next() {
            None => None,
            Some(Ok(e)) => Some(e),
            // The directory itself removed meanwhile: nothing more in it.
            Some(Err(Errno::NOENT)) => None,
            Some(Err(e)) => return Err(e),
        };
        let Some(found) = found else {
            stack.pop();
            continue;
        };
        let name = found.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        match entry(dir.fd()?, name, &mut seen)? {
            Entry::Dir(fd) => stack.push(Dir::new(fd)?),
            Entry::Bytes(n) => total += n,
            Entry::Vanished => {}
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
    fn create_with_fills_the_volume_before_it_appears_and_a_failed_fill_leaves_nothing() {
        let (_tmp, store) = store();
        let (v, created) = store
            .create_with("filled", BTreeMap::new(), BTreeMap::new(), |data| {
                // Hidden while it is filled.
                assert!(!data.starts_with(store.dir().join("filled")));
                assert!(store.list().unwrap().is_empty());
                fs::write(data.join("seed"), "x").map_err(|e| VolumeError::io("w", data, e))
            })
            .unwrap();
        assert!(created);
        assert_eq!(
            fs::read_to_string(store.mountpoint(&v.name).join("seed")).unwrap(),
            "x"
        );
        // A name there already: fill does not run.
        let (_, created) = store
            .create_with(
                "filled",
                BTreeMap::new(),
                BTreeMap::new(),
                |_| -> Result<()> { panic!("filled again") },
            )
            .unwrap();
        assert!(!created);
        let failed = store.create_with("broken", BTreeMap::new(), BTreeMap::new(), |data| {
            fs::write(data.join("half"), "x").unwrap();
            Err(VolumeError::NotFound("broken".into()))
        });
        assert!(failed.is_err());
        assert!(matches!(store.get("broken"), Err(VolumeError::NotFound(_))));
        let hidden: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .collect();
        assert!(hidden.is_empty(), "a failed fill left {hidden:?}");
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
    fn size_counts_each_entry_by_its_own_size_and_hard_links_once() {
        let (_tmp, store) = store();
        store
            .create("sized", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        let data = store.mountpoint("sized");
        fs::create_dir(data.join("sub")).unwrap();
        fs::write(data.join("sub/a"), vec![0u8; 1000]).unwrap();
        fs::write(data.join("b"), vec![0u8; 24]).unwrap();
        fs::hard_link(data.join("b"), data.join("b2")).unwrap();
        // A symlink counts its own size (the length of its target), never what it names.
        std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
        std::os::unix::fs::symlink("/usr", data.join("dirlink")).unwrap();
        assert_eq!(store.size("sized").unwrap(), 1024 + 11 + 4);
        assert!(matches!(
            store.size("nosuch"),
            Err(VolumeError::NotFound(_))
        ));
        // A directory without its volume.json is no volume, as for export and import.
        fs::create_dir_all(store.mountpoint("half")).unwrap();
        assert!(matches!(store.size("half"), Err(VolumeError::NotFound(_))));
    }

    #[test]
    fn the_size_walk_counts_what_vanished_as_zero_and_opens_no_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        std::os::unix::fs::symlink("/etc", tmp.path().join("swapped")).unwrap();
        let dir = open_dir(fs::File::open(tmp.path()).unwrap(), ".").unwrap();
        let mut seen = HashSet::new();
        let at = |name: &std::ffi::CStr, seen: &mut HashSet<_>| entry(&dir, name, seen).unwrap();
        assert!(matches!(at(c"gone", &mut seen), Entry::Vanished));
        assert!(matches!(at(c"sub", &mut seen), Entry::Dir(_)));
        assert!(matches!(at(c"swapped", &mut seen), Entry::Bytes(4)));
        // A directory swapped for a symlink between the stat and the open is not entered.
        assert!(matches!(
            open_dir(&dir, "swapped"),
            Err(Errno::NOTDIR | Errno::LOOP)
        ));
    }

    #[test]
    fn open_makes_and_corrects_the_store_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("volumes");
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        drop(Store::open(&dir).unwrap());
        assert_eq!(mode(&dir), 0o701);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let store = Store::open(&dir).unwrap();
        assert_eq!(mode(&dir), 0o701);
        store
            .create("moded", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        assert_eq!(mode(&dir.join("moded")), 0o755);
        assert_eq!(mode(&store.mountpoint("moded")), 0o755);
        assert_eq!(mode(&dir.join("moded").join(META)), 0o600);
    }

    #[test]
    fn a_leftover_that_cannot_be_removed_does_not_stop_open() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("volumes");
        drop(Store::open(&dir).unwrap());
        // Not a directory: remove_dir_all refuses it (as it would a busy mount point).
        fs::write(dir.join(".tmp-file"), b"x").unwrap();
        let store = Store::open(&dir).unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn remove_if_decides_under_the_lock_and_keeps_a_refused_volume() {
        let (_tmp, store) = store();
        store
            .create("kept", labels(&[("keep", "yes")]), BTreeMap::new())
            .unwrap();
        #[derive(Debug)]
        enum Refusal {
            Kept,
            Store(VolumeError),
        }
        impl From<VolumeError> for Refusal {
            fn from(e: VolumeError) -> Self {
                Refusal::Store(e)
            }
        }
        let keep = |v: &Volume| {
            if v.labels.contains_key("keep") {
                Err(Refusal::Kept)
            } else {
                Ok(())
            }
        };
        assert!(matches!(store.remove_if("kept", keep), Err(Refusal::Kept)));
        assert!(store.get("kept").is_ok());
        assert!(matches!(
            store.remove_if("nosuch", keep),
            Err(Refusal::Store(VolumeError::NotFound(_)))
        ));
        store.remove_if("kept", |_| Ok::<(), Refusal>(())).unwrap();
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn the_client_message_names_no_host_path() {
        let e = VolumeError::io(
            "remove",
            "/var/lib/berth/volumes/x",
            std::io::Error::from_raw_os_error(13),
        );
        assert!(e.to_string().contains("/var/lib/berth"), "{e}");
        let public = e.public_message();
        assert!(!public.contains("/var/lib"), "{public}");
        assert!(public.starts_with("volume store: remove: "), "{public}");
        assert_eq!(
            VolumeError::NotFound("x1".into()).public_message(),
            "get x1: no such volume"
        );
    }

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn hidden_entries(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect()
    }

    #[test]
    fn an_import_is_swapped_in_whole_and_refused_into_content_without_force() {
        let (_tmp, store) = store();
        store
            .create("v1", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        let data = store.mountpoint("v1");
        let staged = store
            .import("v1", &tar_of(&[("a", b"new")])[..], false)
            .unwrap();
        // Not in place until committed.
        assert!(!data.join("a").exists());
        staged.commit(false).unwrap();
        assert_eq!(fs::read(data.join("a")).unwrap(), b"new");
        assert!(hidden_entries(&store.dir().join("v1")).is_empty());
        let e = store
            .import("v1", &tar_of(&[("b", b"x")])[..], false)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            "volume v1 is not empty: import refused (--force replaces its content)"
        );
        store
            .import("v1", &tar_of(&[("b", b"x")])[..], true)
            .unwrap()
            .commit(true)
            .unwrap();
        assert!(!data.join("a").exists());
        assert_eq!(fs::read(data.join("b")).unwrap(), b"x");
        assert!(matches!(
            store.import("nosuch", &b""[..], false),
            Err(VolumeError::NotFound(_))
        ));
    }

    #[test]
    fn a_failed_or_dropped_import_leaves_the_old_content_and_no_staging() {
        let (_tmp, store) = store();
        store
            .create("v2", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        fs::write(store.mountpoint("v2").join("keep"), b"old").unwrap();
        let mut bad = tar_of(&[("a", b"new")]);
        bad[0..3].copy_from_slice(b"../");
        let e = store.import("v2", &bad[..], true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        let truncated = &tar_of(&[("a", &[1u8; 5000])])[..2048];
        let e = store.import("v2", truncated, true).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
        drop(
            store
                .import("v2", &tar_of(&[("a", b"new")])[..], true)
                .unwrap(),
        );
        assert_eq!(
            fs::read(store.mountpoint("v2").join("keep")).unwrap(),
            b"old"
        );
        assert!(hidden_entries(&store.dir().join("v2")).is_empty());
        // What a crash leaves is cleared at the next open.
        fs::create_dir(store.dir().join("v2/.import-dead")).unwrap();
        let store = Store::open(store.dir()).unwrap();
        assert!(hidden_entries(&store.dir().join("v2")).is_empty());
    }

    #[test]
    fn export_then_import_round_trips_through_the_store() {
        let (_tmp, store) = store();
        store
            .create("src", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        store
            .create("dst", BTreeMap::new(), BTreeMap::new())
            .unwrap();
        fs::create_dir(store.mountpoint("src").join("d")).unwrap();
        fs::write(store.mountpoint("src").join("d/f"), b"content").unwrap();
        fs::set_permissions(store.mountpoint("src"), fs::Permissions::from_mode(0o750)).unwrap();
        let mut out = Vec::new();
        store
            .export("src", &mut out, archive::Compression::Zstd)
            .unwrap();
        store
            .import("dst", &out[..], false)
            .unwrap()
            .commit(false)
            .unwrap();
        assert_eq!(
            fs::read(store.mountpoint("dst").join("d/f")).unwrap(),
            b"content"
        );
        let mode = fs::metadata(store.mountpoint("dst"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o750);
    }

    #[test]
    fn export_and_import_of_a_volume_of_mount_options_are_refused() {
        let (_tmp, store) = store();
        let opts = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        store
            .create(
                "tv",
                BTreeMap::new(),
                opts(&[("type", "tmpfs"), ("device", "tmpfs")]),
            )
            .unwrap();
        store
            .create(
                "bv",
                BTreeMap::new(),
                opts(&[("type", "none"), ("o", "bind"), ("device", "/srv/data")]),
            )
            .unwrap();
        let export = store
            .export("tv", &mut Vec::new(), archive::Compression::None)
            .unwrap_err();
        assert_eq!(
            export.to_string(),
            "volume tv has the local driver's mount options: export and import work on plain \
             volumes (a tmpfs volume holds nothing while no container runs with it)"
        );
        assert_eq!(export.kind(), ErrorKind::InvalidArgument);
        let import = store.import("bv", &b""[..], true).map(|_| ()).unwrap_err();
        assert_eq!(
            import.to_string(),
            "volume bv has the local driver's mount options: export and import work on plain \
             volumes (back up its device /srv/data itself)"
        );
        assert!(hidden_entries(&store.dir().join("bv")).is_empty());
    }
}
