//! Bind mounts' host side: whether a bind's source can take `slave` or `shared`
//! propagation. The `-v` and `--mount` grammars are `berth_volume::mountspec`'s.

use std::path::Path;

use berth_volume::mountspec::Propagation;

use crate::error::{EngineError, Result};

/// Whether the mount holding `path` (in berthd's mount table) can give the propagation
/// asked for, or it would silently act as `private`: `slave` needs a mount that receives
/// events (shared, or a slave itself), `shared` a shared mount, whose peer group the
/// container's bind joins. Docker's messages otherwise.
pub fn check_propagation_source(source: &Path, propagation: Propagation) -> Result<()> {
    let shared_only = match propagation {
        Propagation::Slave | Propagation::RSlave => false,
        Propagation::Shared | Propagation::RShared => true,
        Propagation::Private | Propagation::RPrivate => return Ok(()),
    };
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| EngineError::io("read", "/proc/self/mountinfo", e))?;
    let shown = source.display().to_string();
    let source = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let (mount_point, shared, slave) = mount_of(&mountinfo, &source);
    if shared || (slave && !shared_only) {
        return Ok(());
    }
    let kind = if shared_only {
        "a shared mount"
    } else {
        "a shared or slave mount"
    };
    Err(EngineError::Invalid(format!(
        "path {shown} is mounted on {mount_point} but it is not {kind}"
    )))
}

/// The mount point holding `path`, whether it is shared and whether it is a slave (the last
/// mount listed on the longest matching mount point wins, as the kernel stacks them).
fn mount_of(mountinfo: &str, path: &Path) -> (String, bool, bool) {
    let mut best: (usize, String, bool, bool) = (0, "/".into(), false, false);
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { continue };
        let mp = berth_runtime::cgroups::unescape_mountinfo(mp);
        if !path.starts_with(&mp) {
            continue;
        }
        let depth = Path::new(&mp).components().count();
        let mut optional = fields[6..].iter().take_while(|f| **f != "-");
        let shared = optional.clone().any(|f| f.starts_with("shared:"));
        let slave = optional.any(|f| f.starts_with("master:"));
        if depth >= best.0 {
            best = (depth, mp, shared, slave);
        }
    }
    (best.1, best.2, best.3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_of_a_path_and_its_propagation() {
        let info = "\
22 27 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:30 / /srv rw,relatime - ext4 /dev/vdb rw
31 30 0:31 / /srv/data rw,relatime master:4 - tmpfs t rw
32 22 0:32 / /srv\\040x rw,relatime - tmpfs t rw
";
        assert_eq!(mount_of(info, Path::new("/etc")), ("/".into(), true, false));
        assert_eq!(
            mount_of(info, Path::new("/srv/a")),
            ("/srv".into(), false, false)
        );
        assert_eq!(
            mount_of(info, Path::new("/srv/data/x")),
            ("/srv/data".into(), false, true)
        );
        assert_eq!(
            mount_of(info, Path::new("/srv x/y")),
            ("/srv x".into(), false, false)
        );
    }
}
