//! Atomic writes, and Go's `path.Clean`. Every state file is replaced whole (temp file, then rename), so a reader or
//! a crash sees the old content or the new, never a mix. What cannot be derived again is
//! also made durable (fsync of the file and of its directory): a container's `config.json`,
//! the exit status of a kept container. What every start regenerates, or what mirrors live
//! kernel state that `/run` and the shim hold (the `/etc` files, `Running`), is replaced
//! without fsync: an fsync costs ~0.4 ms here and the run path had twenty of them.

use std::io::Write;
use std::path::Path;

use crate::error::{EngineError, Result};

/// A new file readable by root only: records hold containers' environments (secrets).
fn private_file(path: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // A temp file left by a crash keeps its old mode unless it is made anew.
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| EngineError::io("create", path, e))
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new content.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("state files live in a directory");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = private_file(&tmp)?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| EngineError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io("rename", path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replaces `path` atomically without forcing it to disk (see the module doc for when).
pub fn replace(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("state files live in a directory");
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    private_file(&tmp)?
        .write_all(bytes)
        .map_err(|e| EngineError::io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| EngineError::io("rename", path, e))
}

/// Writes a file every start regenerates and the container reads (`/etc/hosts`, ...): mode
/// 0644 like Docker's (a non-root user in the container must read them), written in place
/// (no temp file: an ext4 create is ~0.25 ms here; a file cut short by a crash is written
/// again at the next start), never through a symlink. Not forced to disk.
pub fn rewrite_public(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| EngineError::io("create", path, e))?;
    // Files from before were 0600.
    f.set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| EngineError::io("chmod", path, e))?;
    f.write_all(bytes)
        .map_err(|e| EngineError::io("write", path, e))
}

/// Serialises `value` as JSON and replaces `path` atomically, not forced to disk.
pub fn replace_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| EngineError::Internal(e.to_string()))?;
    replace(path, &bytes)
}

/// Serialises `value` as JSON and writes it atomically.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let bytes = serde_json::to_vec(value).map_err(|e| EngineError::Internal(e.to_string()))?;
    write_atomic(path, &bytes)
}
