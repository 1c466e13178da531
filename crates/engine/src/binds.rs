//! Bind mounts' host side: whether a bind's source can take `slave` propagation. The `-v`
//! and `--mount` grammars are `berth_volume::mountspec`'s.

use std::path::Path;

use berth_volume::mountspec::Propagation;

use crate::error::{EngineError, Result};

/// Whether the mount holding `path` (in berthd's mount table) receives mount events from a
/// peer: `slave` propagation needs that, or it would silently act as `private`. Docker's
/// message otherwise.
pub fn check_propagation_source(source: &Path, propagation: Propagation) -> Result<()> {
    if !matches!(propagation, Propagation::Slave | Propagation::RSlave) {
        return Ok(());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| EngineError::io("read", "/proc/self/mountinfo", e))?;
    let shown = source.display().to_string();
    let source = std::fs::canonicalize(source).unwrap_or_else(|_| source.to_path_buf());
    let (mount_point, propagates) = mount_of(&mountinfo, &source);
    if propagates {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "path {} is mounted on {} but it is not a shared or slave mount",
            shown, mount_point
        )))
    }
}

/// The mount point holding `path` and whether it is shared or a slave (the last mount
/// listed on the longest matching mount point wins, as the kernel stacks them).
fn mount_of(mountinfo: &str, path: &Path) -> (String, bool) {
    let mut best: (usize, String, bool) = (0, "/".into(), false);
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(mp) = fields.get(4) else { continue };
        let mp = berth_runtime::cgroups::unescape_mountinfo(mp);
        if !path.starts_with(&mp) {
            continue;
        }
        let depth = Path::new(&mp).components().count();
        let optional = fields[6..].iter().take_while(|f| **f != "-");
        let propagates = optional
            .clone()
            .any(|f| f.starts_with("shared:") || f.starts_with("master:"));
        if depth >= best.0 {
            best = (depth, mp, propagates);
        }
    }
    (best.1, best.2)
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
        assert_eq!(mount_of(info, Path::new("/etc")), ("/".into(), true));
        assert_eq!(mount_of(info, Path::new("/srv/a")), ("/srv".into(), false));
        assert_eq!(
            mount_of(info, Path::new("/srv/data/x")),
            ("/srv/data".into(), true)
        );
        assert_eq!(
            mount_of(info, Path::new("/srv x/y")),
            ("/srv x".into(), false)
        );
    }
}
