//! The init layer: the mount points every container gets, in a layer between its rw layer and
//! its image, as Docker's `initlayer.Setup` makes them (`/etc/hosts`, `/etc/hostname`,
//! `/etc/resolv.conf`, `/dev/console` empty files; `/dev/pts`, `/dev/shm`, `/proc`, `/sys`
//! directories). Docker never shows them in `diff` nor puts them in a `commit` (its init
//! layer is the rw layer's parent), while `export` shows them.
//!
//! berth's runtime creates a mount point in the rw layer when the image lacks it; so one
//! shared, read-only directory (`<store>/init`) stands for the init layer when the store
//! reads a container's layers ([`crate::ImageStore::container_changes`], `export`, `commit`),
//! and the rw layer's own copies of these mount points count as the init layer's. It is not
//! part of the overlay mount. Docker's empty `/.dockerenv` is in it (no mount point: berth's
//! runtime does not make it, so only the merged views, `export`'s, show it, as Docker's
//! export does; an rw layer's `/.dockerenv` is the container's own, compared with this one).
//! Docker's `/etc/mtab` is not: berth's containers do not have it.

use std::fs;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::content::unique_name;
use crate::error::{ImageError, IoContext};

/// The directory name under the store's root.
const DIR: &str = "init";

/// The mount points that are files (Docker makes them empty, 0755).
pub(crate) const FILES: [&str; 4] = [
    "etc/hosts",
    "etc/hostname",
    "etc/resolv.conf",
    "dev/console",
];

/// Docker's marker file: in the init layer, empty, 0755, but not a mount point.
const DOCKERENV: &str = ".dockerenv";

/// The mount points that are directories.
pub(crate) const DIRS: [&str; 5] = ["dev", "dev/pts", "dev/shm", "proc", "sys"];

/// Whether `rel` (relative to the root) is one of the mount points, of the type `is_dir`
/// says: an rw layer's entry there is the runtime's mount point, not the container's change.
pub(crate) fn is_mount_point(rel: &Path, is_dir: bool) -> bool {
    let list: &[&str] = if is_dir { &DIRS } else { &FILES };
    list.iter().any(|p| rel == Path::new(p))
}

fn complete(dir: &Path) -> bool {
    DIRS.iter().all(|d| dir.join(d).is_dir())
        && FILES
            .iter()
            .chain([DOCKERENV].iter())
            .all(|f| fs::symlink_metadata(dir.join(f)).is_ok_and(|m| m.is_file() && m.len() == 0))
}

/// The init layer under `root`, made (in a temporary directory, then renamed) when it is
/// missing or incomplete.
pub(crate) fn ensure(root: &Path) -> Result<PathBuf, ImageError> {
    let dir = root.join(DIR);
    if complete(&dir) {
        return Ok(dir);
    }
    let tmp = root.join(unique_name("init-tmp-"));
    let made = (|| {
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true).mode(0o755);
        use std::os::unix::fs::PermissionsExt;
        for d in DIRS.iter().chain(["etc"].iter()) {
            let p = tmp.join(d);
            builder.create(&p).ctx("create", &p)?;
        }
        // Whatever the umask: the mount points' modes are Docker's.
        for d in DIRS.iter().chain(["etc", ""].iter()) {
            let p = tmp.join(d);
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).ctx("chmod", &p)?;
        }
        for f in FILES.iter().chain([DOCKERENV].iter()) {
            let p = tmp.join(f);
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o755)
                .open(&p)
                .ctx("create", &p)?;
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).ctx("chmod", &p)?;
        }
        if dir.exists() {
            fs::remove_dir_all(&dir).ctx("remove", &dir)?;
        }
        fs::rename(&tmp, &dir).ctx("rename", &dir)
    })();
    if made.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    made.map(|()| dir)
}

/// Removes temporary init directories a crash left.
pub(crate) fn remove_leftovers(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_name().to_string_lossy().starts_with("init-tmp-") {
            let _ = fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_init_layer_is_made_once_and_repaired() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ensure(tmp.path()).unwrap();
        assert!(complete(&dir));
        fs::remove_file(dir.join("etc/hosts")).unwrap();
        let again = ensure(tmp.path()).unwrap();
        assert_eq!(again, dir);
        assert!(complete(&dir));
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.join("etc/hosts"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        assert!(is_mount_point(Path::new("etc/hosts"), false));
        assert!(!is_mount_point(Path::new("etc/hosts"), true));
        assert!(is_mount_point(Path::new("proc"), true));
        assert!(!is_mount_point(Path::new("etc"), true));
        // Docker's marker is there, but is no mount point (an rw copy is the container's).
        fs::remove_file(dir.join(DOCKERENV)).unwrap();
        ensure(tmp.path()).unwrap();
        assert!(fs::metadata(dir.join(DOCKERENV)).unwrap().is_file());
        assert!(!is_mount_point(Path::new(DOCKERENV), false));
    }
}
