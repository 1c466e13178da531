//! `-v` / `HostConfig.Binds`: Docker's grammar (moby's Linux mount parser), checked at create
//! with Docker's messages. A mode berth does not know is refused, never mounted read-write.

use std::path::{Path, PathBuf};

use berth_runtime::{BindMount, Propagation};

use crate::error::{EngineError, Result};

/// One parsed `SRC:DST[:MODE]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: String,
    pub readonly: bool,
    pub propagation: Propagation,
}

impl Bind {
    pub fn to_mount(&self) -> BindMount {
        BindMount {
            source: self.source.clone(),
            destination: self.destination.clone(),
            readonly: self.readonly,
            propagation: self.propagation,
        }
    }
}

/// What one word of a mode string is. Docker allows at most one word of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModeWord {
    ReadWrite,
    Label,
    Propagation,
    Copy,
    Consistency,
}

fn mode_word(w: &str) -> Option<ModeWord> {
    Some(match w {
        "rw" | "ro" => ModeWord::ReadWrite,
        // SELinux relabelling: berth applies no SELinux labels, as Docker on a host without
        // SELinux, where these are no-ops.
        "z" | "Z" => ModeWord::Label,
        "private" | "rprivate" | "slave" | "rslave" | "shared" | "rshared" => ModeWord::Propagation,
        "nocopy" => ModeWord::Copy,
        // Docker Desktop's file-sharing hints; no-ops on Linux, as in Docker.
        "consistent" | "cached" | "delegated" => ModeWord::Consistency,
        _ => return None,
    })
}

/// Docker's `linuxValidMountMode`: known words, at most one of each kind.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let mut seen = Vec::new();
    for w in mode.split(',') {
        match mode_word(w) {
            Some(kind) if !seen.contains(&kind) => seen.push(kind),
            _ => return false,
        }
    }
    true
}

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

fn invalid_bind_config(raw: &str, why: &str) -> EngineError {
    EngineError::Invalid(format!(
        "{}: invalid mount config for type \"bind\": {why}",
        invalid_spec(raw)
    ))
}

/// Docker's rule for a local volume's name.
fn valid_volume_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Parses one `Binds` entry with Docker's grammar and messages.
pub fn parse(raw: &str) -> Result<Bind> {
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(EngineError::Invalid(invalid_spec(raw)));
    }
    let (source, destination, mode) = match arr.as_slice() {
        [dst] => {
            return Err(EngineError::Invalid(format!(
                "anonymous volumes are not supported yet: '{raw}' (mount a host directory: \
                 -v /host/path:{dst})"
            )))
        }
        // `/foo:rw` is a destination with a mode: not a volume.
        [_, m] if valid_mode(m) => return Err(EngineError::Invalid(invalid_spec(raw))),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(EngineError::Invalid(invalid_spec(raw))),
    };
    if !valid_mode(mode) {
        return Err(EngineError::Invalid(format!("invalid mode: {mode}")));
    }
    if !source.starts_with('/') {
        if !valid_volume_name(source) {
            return Err(EngineError::Invalid(format!(
                "create {source}: \"{source}\" includes invalid characters for a local volume \
                 name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass \
                 a host directory, use absolute path"
            )));
        }
        return Err(EngineError::Invalid(format!(
            "named volumes are not supported yet: '{raw}'"
        )));
    }
    if destination.is_empty() {
        return Err(invalid_bind_config(raw, "field Target must not be empty"));
    }
    if destination.starts_with('/') && crate::fsutil::clean(destination) == "/" {
        return Err(invalid_bind_config(
            raw,
            "invalid specification: destination can't be '/'",
        ));
    }
    if !destination.starts_with('/') {
        return Err(invalid_bind_config(
            raw,
            &format!("invalid mount path: '{destination}' mount path must be absolute"),
        ));
    }
    let words: Vec<&str> = mode.split(',').filter(|w| !w.is_empty()).collect();
    if words.contains(&"nocopy") {
        // nocopy is for volumes; on a bind Docker reports the volume options it implies.
        return Err(invalid_bind_config(
            raw,
            "field VolumeOptions must not be specified",
        ));
    }
    let propagation = match words
        .iter()
        .copied()
        .find(|w| mode_word(w) == Some(ModeWord::Propagation))
    {
        None | Some("rprivate") => Propagation::RPrivate,
        Some("private") => Propagation::Private,
        Some("slave") => Propagation::Slave,
        Some("rslave") => Propagation::RSlave,
        Some(shared) => {
            return Err(EngineError::Invalid(format!(
                "bind propagation \"{shared}\" is not supported by berth: a container's \
                 mounts are slaves of the host's, so its mount events never reach the host \
                 (use rslave or slave to see the host's new mounts): '{raw}'"
            )))
        }
    };
    Ok(Bind {
        source: PathBuf::from(crate::fsutil::clean(source)),
        destination: crate::fsutil::clean(destination),
        readonly: words.contains(&"ro"),
        propagation,
    })
}

/// Parses every `Binds` entry; two binds on one destination are refused as Docker does.
pub fn parse_all(binds: &[String]) -> Result<Vec<Bind>> {
    let mut out: Vec<Bind> = Vec::with_capacity(binds.len());
    for raw in binds {
        let b = parse(raw)?;
        if out.iter().any(|o| o.destination == b.destination) {
            return Err(EngineError::Invalid(format!(
                "Duplicate mount point: {}",
                b.destination
            )));
        }
        out.push(b);
    }
    Ok(out)
}

/// Whether the mount holding `path` (in berthd's mount table) receives mount events from a
/// peer: `slave` propagation needs that, or it would silently act as `private`. Docker's
/// message otherwise.
pub fn check_propagation_source(b: &Bind) -> Result<()> {
    if !matches!(b.propagation, Propagation::Slave | Propagation::RSlave) {
        return Ok(());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| EngineError::io("read", "/proc/self/mountinfo", e))?;
    let source = std::fs::canonicalize(&b.source).unwrap_or_else(|_| b.source.clone());
    let (mount_point, propagates) = mount_of(&mountinfo, &source);
    if propagates {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!(
            "path {} is mounted on {} but it is not a shared or slave mount",
            b.source.display(),
            mount_point
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

    fn refused(raw: &str) -> String {
        parse(raw).unwrap_err().to_string()
    }

    #[test]
    fn unknown_modes_are_refused_never_mounted_read_write() {
        for mode in [
            "RO", "readonly", "r0", "badmode", "ro,ro", "ro,rw", "z,Z", "ro,",
        ] {
            assert_eq!(
                refused(&format!("/src:/x:{mode}")),
                format!("invalid mode: {mode}"),
                "{mode}"
            );
        }
    }

    #[test]
    fn dockers_modes_parse() {
        let b = parse("/src:/x:ro").unwrap();
        assert!(b.readonly);
        assert_eq!(b.propagation, Propagation::RPrivate);
        for (mode, ro, prop) in [
            ("", false, Propagation::RPrivate),
            ("rw", false, Propagation::RPrivate),
            ("z", false, Propagation::RPrivate),
            ("Z,ro", true, Propagation::RPrivate),
            ("ro,rslave", true, Propagation::RSlave),
            ("slave", false, Propagation::Slave),
            ("private", false, Propagation::Private),
            ("cached", false, Propagation::RPrivate),
            ("delegated,ro", true, Propagation::RPrivate),
            ("consistent", false, Propagation::RPrivate),
        ] {
            let raw = if mode.is_empty() {
                "/src:/x".to_string()
            } else {
                format!("/src:/x:{mode}")
            };
            let b = parse(&raw).unwrap();
            assert_eq!((b.readonly, b.propagation), (ro, prop), "{raw}");
            assert_eq!(b.source, PathBuf::from("/src"));
            assert_eq!(b.destination, "/x");
        }
    }

    #[test]
    fn bad_specs_get_dockers_messages() {
        assert_eq!(
            refused("/src:/"),
            "invalid volume specification: '/src:/': invalid mount config for type \"bind\": \
             invalid specification: destination can't be '/'"
        );
        assert_eq!(
            refused("/src:/a/.."),
            "invalid volume specification: '/src:/a/..': invalid mount config for type \
             \"bind\": invalid specification: destination can't be '/'"
        );
        assert_eq!(
            refused("/src:rel"),
            "invalid volume specification: '/src:rel': invalid mount config for type \"bind\": \
             invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            refused("/src:/x:nocopy"),
            "invalid volume specification: '/src:/x:nocopy': invalid mount config for type \
             \"bind\": field VolumeOptions must not be specified"
        );
        assert_eq!(
            refused("/foo:rw"),
            "invalid volume specification: '/foo:rw'"
        );
        assert_eq!(
            refused("/a:/b:ro:x"),
            "invalid volume specification: '/a:/b:ro:x'"
        );
        assert_eq!(refused(":/b"), "invalid volume specification: ':/b'");
        assert!(refused("./data:/x").starts_with(
            "create ./data: \"./data\" includes invalid characters for a local volume name"
        ));
        assert_eq!(
            refused("data:/x"),
            "named volumes are not supported yet: 'data:/x'"
        );
        assert!(refused("/data").starts_with("anonymous volumes are not supported yet"));
        assert!(refused("/src:/x:rshared").contains("bind propagation \"rshared\""));
        assert!(refused("/src:/x:shared").contains("bind propagation \"shared\""));
        assert_eq!(
            parse_all(&["/a:/x".into(), "/b:/x/".into()])
                .unwrap_err()
                .to_string(),
            "Duplicate mount point: /x"
        );
    }

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
