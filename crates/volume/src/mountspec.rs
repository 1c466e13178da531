//! What a container mounts, parsed from each of Docker's ways of asking, with Docker's
//! grammar and words (moby's Linux mount parser): `-v` / `HostConfig.Binds`, `--mount` /
//! `HostConfig.Mounts`, `--tmpfs` / `HostConfig.Tmpfs`, `--volumes-from` /
//! `HostConfig.VolumesFrom`. Every option is either applied or refused by name: an unknown
//! mode never mounts read-write, an unknown `--mount` field is never dropped.
//!
//! A [`MountSpec`] is kept in the container's record; the engine turns it into the
//! runtime's mount at each start.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What is mounted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MountType {
    /// A host path.
    #[default]
    Bind,
    /// A named or anonymous volume of the local driver.
    Volume,
    /// A new tmpfs.
    Tmpfs,
}

impl MountType {
    /// Docker's name (`Type` in inspect).
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Volume => "volume",
            MountType::Tmpfs => "tmpfs",
        }
    }
}

/// A bind's propagation (Docker's default: `rprivate`). `shared` and `rshared` need the
/// source's mount on the host to be shared: the container's bind joins its peer group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    Private,
    #[default]
    RPrivate,
    Slave,
    RSlave,
    Shared,
    RShared,
}

impl Propagation {
    /// Docker's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::RPrivate => "rprivate",
            Propagation::Slave => "slave",
            Propagation::RSlave => "rslave",
            Propagation::Shared => "shared",
            Propagation::RShared => "rshared",
        }
    }

    fn parse(word: &str) -> Result<Propagation, String> {
        Ok(match word {
            "private" => Propagation::Private,
            "rprivate" => Propagation::RPrivate,
            "slave" => Propagation::Slave,
            "rslave" => Propagation::RSlave,
            "shared" => Propagation::Shared,
            "rshared" => Propagation::RShared,
            other => return Err(format!("invalid propagation mode: {other}")),
        })
    }
}

/// How far a read-only bind is read-only (API 1.44's `BindOptions.ReadOnlyNonRecursive` and
/// `ReadOnlyForceRecursive`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReadOnlyDepth {
    /// The mount and every mount below it where the kernel can (5.12+), the mount alone
    /// where it cannot (Docker's default since API 1.44).
    #[default]
    Recursive,
    /// The mount alone (the mounts below stay writable): `ReadOnlyNonRecursive`,
    /// `bind-recursive=writable`, and every read-only bind a client older than API 1.44
    /// asks for, as Docker does.
    NonRecursive,
    /// Recursive or refused: `ReadOnlyForceRecursive`, `bind-recursive=readonly`.
    Force,
}

impl ReadOnlyDepth {
    fn is_default(&self) -> bool {
        *self == ReadOnlyDepth::Recursive
    }
}

/// One mount of a container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MountSpec {
    pub kind: MountType,
    /// A bind's host path (clean, absolute); a volume's name (empty for an anonymous volume
    /// until the engine names it at create); empty for tmpfs.
    pub source: String,
    /// Absolute and clean, inside the container.
    pub destination: String,
    pub readonly: bool,
    /// `Mode` as inspect shows it: the `-v` mode as given (`z` for a local volume given
    /// none, as Docker); empty for `--mount`.
    pub mode: String,
    /// A bind's propagation.
    pub propagation: Propagation,
    /// A bind of the source mount only (`bind-nonrecursive`).
    pub nonrecursive: bool,
    /// A read-only bind: whether the mounts below its source are read-only too.
    #[serde(skip_serializing_if = "ReadOnlyDepth::is_default")]
    pub readonly_depth: ReadOnlyDepth,
    /// A bind whose missing source is made as a directory (`-v`; `--mount` only with
    /// `bind-create-mountpoint`, else a missing source is refused at create).
    pub create_source: bool,
    /// A volume that is filled with the image's content at the destination when it is new
    /// and empty (Docker's copy-up; off with `nocopy`).
    pub copy: bool,
    /// Labels for the volume when this mount creates it (`--mount volume-label=`).
    pub labels: BTreeMap<String, String>,
    /// The local driver's options for the volume when this mount creates it (`--mount
    /// volume-opt=`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// A volume made for this container alone: removed with it by `rm -v` and `--rm`.
    pub anonymous: bool,
    /// tmpfs options as `--tmpfs` takes them (`size=64m,mode=1770,exec`).
    pub tmpfs: Vec<String>,
    /// The container this mount came from (`--volumes-from`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// Left out of inspect's `Mounts`: a `--tmpfs` mount, which Docker shows in
    /// `HostConfig.Tmpfs` only (a `--mount type=tmpfs` is listed).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub unlisted: bool,
    /// A volume's: whether it has the local driver's mount options, as the engine found it
    /// when the record went in (a volume in use is never removed, so it holds while the
    /// record mounts it). `None` in a record from before: the volume is read at start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<bool>,
}

fn invalid_spec(raw: &str) -> String {
    format!("invalid volume specification: '{raw}'")
}

fn mount_config(kind: &str, why: &str) -> String {
    format!("invalid mount config for type \"{kind}\": {why}")
}

/// `path.Clean` of an absolute or relative path.
pub fn clean(p: &str) -> String {
    let abs = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !abs {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (abs, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// What one word of a `-v` mode is. Docker allows at most one word of each kind.
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

/// The checks of a target every type shares (Docker's order and words).
fn check_target(kind: &str, target: &str) -> Result<(), String> {
    if target.is_empty() {
        return Err(mount_config(kind, "field Target must not be empty"));
    }
    if target.starts_with('/') && clean(target) == "/" {
        return Err(mount_config(
            kind,
            "invalid specification: destination can't be '/'",
        ));
    }
    if !target.starts_with('/') {
        return Err(mount_config(
            kind,
            &format!("invalid mount path: '{target}' mount path must be absolute"),
        ));
    }
    Ok(())
}

/// Parses one `-v` / `Binds` entry: `/host:/ctr[:mode]` (a bind), `name:/ctr[:mode]` (a
/// named volume) or `/ctr` (an anonymous volume).
pub fn parse_bind(raw: &str) -> Result<MountSpec, String> {
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(invalid_spec(raw));
    }
    let (source, destination, mode) = match arr.as_slice() {
        [dst] => ("", *dst, ""),
        // `/foo:rw` is a destination with a mode: not a volume.
        [_, m] if valid_mode(m) => return Err(invalid_spec(raw)),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid_spec(raw)),
    };
    if !valid_mode(mode) {
        return Err(format!("invalid mode: {mode}"));
    }
    let words: Vec<&str> = mode.split(',').filter(|w| !w.is_empty()).collect();
    let readonly = words.contains(&"ro");
    let propagation = words
        .iter()
        .find(|w| mode_word(w) == Some(ModeWord::Propagation));
    let kind = if source.is_empty() || !source.starts_with('/') {
        MountType::Volume
    } else {
        MountType::Bind
    };
    let with_spec = |e: String| format!("{}: {e}", invalid_spec(raw));
    check_target(kind.as_str(), destination).map_err(with_spec)?;
    let mut spec = MountSpec {
        kind,
        destination: clean(destination),
        readonly,
        mode: mode.to_string(),
        ..MountSpec::default()
    };
    match kind {
        MountType::Bind => {
            if words.contains(&"nocopy") {
                // nocopy is for volumes; on a bind Docker reports the options it implies.
                return Err(with_spec(mount_config(
                    "bind",
                    "field VolumeOptions must not be specified",
                )));
            }
            spec.source = clean(source);
            spec.propagation = match propagation {
                Some(w) => Propagation::parse(w)?,
                None => Propagation::RPrivate,
            };
            spec.create_source = true;
        }
        MountType::Volume => {
            if let Some(p) = propagation {
                return Err(with_spec(mount_config(
                    "volume",
                    &format!(
                        "field BindOptions must not be specified (propagation \"{p}\" is for \
                         binds)"
                    ),
                )));
            }
            if !source.is_empty() {
                crate::validate_name(source).map_err(|e| e.to_string())?;
            }
            if source.is_empty() && readonly {
                return Err(with_spec(mount_config(
                    "volume",
                    "must not set ReadOnly mode when using anonymous volumes",
                )));
            }
            spec.source = source.to_string();
            spec.anonymous = source.is_empty();
            spec.copy = !words.contains(&"nocopy");
            if spec.mode.is_empty() {
                // Docker's `setBindModeIfNull` for the local driver.
                spec.mode = "z".into();
            }
        }
        MountType::Tmpfs => unreachable!("-v makes no tmpfs"),
    }
    Ok(spec)
}

fn bool_field(obj: &serde_json::Map<String, Value>, key: &str, what: &str) -> Result<bool, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(format!("{what}.{key} must be a boolean (value: {v})")),
    }
}

fn str_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<&'a str, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(""),
        Some(Value::String(s)) => Ok(s),
        Some(v) => Err(format!("{what}.{key} must be a string (value: {v})")),
    }
}

/// The object at `key`, `None` when absent or `null`.
fn object_field<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    what: &str,
) -> Result<Option<&'a serde_json::Map<String, Value>>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(format!("{what}.{key} must be an object (value: {v})")),
    }
}

/// Refuses a key of `obj` that is not in `known`, naming it: berth does not drop what it
/// does not apply.
fn only_known(
    obj: &serde_json::Map<String, Value>,
    known: &[&str],
    what: &str,
) -> Result<(), String> {
    for (k, v) in obj {
        if !known.contains(&k.as_str()) && !v.is_null() {
            return Err(format!(
                "{what}.{k} is not supported by berth: refused rather than ignored (value: {v})"
            ));
        }
    }
    Ok(())
}

/// `--mount` size: `SizeBytes` as Docker's `ConvertTmpfsOptions` writes it.
fn tmpfs_size(bytes: i64) -> String {
    for (suffix, divisor) in [("g", 1i64 << 30), ("m", 1 << 20), ("k", 1 << 10)] {
        if bytes % divisor == 0 {
            return format!("size={}{suffix}", bytes / divisor);
        }
    }
    format!("size={bytes}")
}

/// Parses one `HostConfig.Mounts` entry (what `--mount` sends), with Docker's checks and
/// words. `bind_source_exists` says whether a bind's host path is there (Docker refuses a
/// missing one unless `CreateMountpoint`).
pub fn parse_mount(
    v: &Value,
    bind_source_exists: &dyn Fn(&str) -> bool,
) -> Result<MountSpec, String> {
    let Some(obj) = v.as_object() else {
        return Err(format!(
            "HostConfig.Mounts entries must be objects (value: {v})"
        ));
    };
    let what = "Mounts";
    only_known(
        obj,
        &[
            "Type",
            "Source",
            "Target",
            "ReadOnly",
            "Consistency",
            "BindOptions",
            "VolumeOptions",
            "TmpfsOptions",
        ],
        what,
    )?;
    let kind_name = str_field(obj, "Type", what)?;
    let kind = match kind_name {
        "bind" => MountType::Bind,
        "volume" => MountType::Volume,
        "tmpfs" => MountType::Tmpfs,
        "" => return Err("invalid mount config: mount type unknown".into()),
        other => {
            return Err(format!(
                "invalid mount config for type \"{other}\": mount type unknown (berth mounts \
                 bind, volume and tmpfs)"
            ))
        }
    };
    let source = str_field(obj, "Source", what)?;
    let target = str_field(obj, "Target", what)?;
    let readonly = bool_field(obj, "ReadOnly", what)?;
    match str_field(obj, "Consistency", what)? {
        "" | "default" | "consistent" | "cached" | "delegated" => {}
        other => {
            return Err(format!(
                "{what}.Consistency {other:?} is not one Docker knows"
            ))
        }
    }
    check_target(kind_name, target)?;
    let bind_opts = object_field(obj, "BindOptions", what)?;
    let volume_opts = object_field(obj, "VolumeOptions", what)?;
    let tmpfs_opts = object_field(obj, "TmpfsOptions", what)?;
    let cfg = |why: &str| mount_config(kind_name, why);
    let mut spec = MountSpec {
        kind,
        destination: clean(target),
        readonly,
        ..MountSpec::default()
    };
    if kind != MountType::Bind && bind_opts.is_some() {
        return Err(cfg("field BindOptions must not be specified"));
    }
    if kind != MountType::Volume && volume_opts.is_some() {
        return Err(cfg("field VolumeOptions must not be specified"));
    }
    if kind != MountType::Tmpfs && tmpfs_opts.is_some() {
        return Err(cfg("field TmpfsOptions must not be specified"));
    }
    match kind {
        MountType::Bind => {
            if source.is_empty() {
                return Err(cfg("field Source must not be empty"));
            }
            if !source.starts_with('/') {
                return Err(cfg(&format!(
                    "invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            spec.source = clean(source);
            if let Some(b) = bind_opts {
                let what = "Mounts.BindOptions";
                only_known(
                    b,
                    &[
                        "Propagation",
                        "NonRecursive",
                        "CreateMountpoint",
                        "ReadOnlyNonRecursive",
                        "ReadOnlyForceRecursive",
                    ],
                    what,
                )?;
                let p = str_field(b, "Propagation", what)?;
                if !p.is_empty() {
                    spec.propagation = Propagation::parse(p).map_err(|e| cfg(&e))?;
                }
                spec.nonrecursive = bool_field(b, "NonRecursive", what)?;
                spec.create_source = bool_field(b, "CreateMountpoint", what)?;
                // moby's words (daemon/volumes_unix.go), checked at create rather than start.
                let non_recursive = bool_field(b, "ReadOnlyNonRecursive", what)?;
                let force = bool_field(b, "ReadOnlyForceRecursive", what)?;
                if non_recursive && !readonly {
                    return Err(
                        "mount options conflict: !ReadOnly && BindOptions.ReadOnlyNonRecursive"
                            .into(),
                    );
                }
                if force && !readonly {
                    return Err(
                        "mount options conflict: !ReadOnly && BindOptions.ReadOnlyForceRecursive"
                            .into(),
                    );
                }
                spec.readonly_depth = match (non_recursive, force) {
                    (true, true) => {
                        return Err("mount options conflict: ReadOnlyNonRecursive && \
                                    BindOptions.ReadOnlyForceRecursive"
                            .into())
                    }
                    (true, false) => ReadOnlyDepth::NonRecursive,
                    (false, true) => ReadOnlyDepth::Force,
                    (false, false) => ReadOnlyDepth::Recursive,
                };
            }
            if !spec.create_source && !bind_source_exists(&spec.source) {
                return Err(cfg(&format!(
                    "bind source path does not exist: {}",
                    spec.source
                )));
            }
        }
        MountType::Volume => {
            if !source.is_empty() {
                crate::validate_name(source).map_err(|e| e.to_string())?;
            }
            if source.is_empty() && readonly {
                return Err(cfg(
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            spec.source = source.to_string();
            spec.anonymous = source.is_empty();
            spec.copy = true;
            spec.mode = "z".into();
            if let Some(o) = volume_opts {
                let what = "Mounts.VolumeOptions";
                only_known(o, &["NoCopy", "Labels", "DriverConfig", "Subpath"], what)?;
                spec.copy = !bool_field(o, "NoCopy", what)?;
                if let Some(labels) = object_field(o, "Labels", what)? {
                    for (k, v) in labels {
                        let Some(v) = v.as_str() else {
                            return Err(format!("{what}.Labels.{k} must be a string"));
                        };
                        spec.labels.insert(k.clone(), v.to_string());
                    }
                }
                if !str_field(o, "Subpath", what)?.is_empty() {
                    return Err(format!(
                        "{what}.Subpath (volume-subpath) is not supported by berth yet: \
                         refused rather than ignored"
                    ));
                }
                if let Some(d) = object_field(o, "DriverConfig", what)? {
                    let what = "Mounts.VolumeOptions.DriverConfig";
                    only_known(d, &["Name", "Options"], what)?;
                    check_driver(str_field(d, "Name", what)?)?;
                    if let Some(opts) = object_field(d, "Options", what)? {
                        for (k, v) in opts {
                            let Some(v) = v.as_str() else {
                                return Err(format!("{what}.Options.{k} must be a string"));
                            };
                            spec.driver_opts.insert(k.clone(), v.to_string());
                        }
                        // The local driver's options, checked as `volume create -o` checks
                        // them (they apply when this mount makes the volume).
                        crate::local::LocalMount::from_options(&spec.driver_opts)?;
                    }
                }
            }
        }
        MountType::Tmpfs => {
            if !source.is_empty() {
                return Err(cfg("field Source must not be specified"));
            }
            if let Some(t) = tmpfs_opts {
                let what = "Mounts.TmpfsOptions";
                only_known(t, &["SizeBytes", "Mode", "Options"], what)?;
                let int = |key: &str| -> Result<i64, String> {
                    match t.get(key) {
                        None | Some(Value::Null) => Ok(0),
                        Some(v) => v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                            format!("{what}.{key} must be a non-negative integer (value: {v})")
                        }),
                    }
                };
                let mode = int("Mode")?;
                if mode != 0 {
                    spec.tmpfs.push(format!("mode={mode:o}"));
                }
                let size = int("SizeBytes")?;
                if size != 0 {
                    spec.tmpfs.push(tmpfs_size(size));
                }
                match t.get("Options") {
                    None | Some(Value::Null) => {}
                    Some(Value::Array(opts)) => {
                        for o in opts {
                            let words: Vec<&str> = o
                                .as_array()
                                .map(|a| a.iter().filter_map(Value::as_str).collect())
                                .unwrap_or_default();
                            match words.as_slice() {
                                [w] if matches!(*w, "exec" | "noexec") => {
                                    spec.tmpfs.push(w.to_string())
                                }
                                [w, ..] => return Err(cfg(&format!("invalid option: {w}"))),
                                [] => return Err(cfg("invalid option array length")),
                            }
                        }
                    }
                    Some(v) => return Err(format!("{what}.Options must be an array (value: {v})")),
                }
            }
        }
    }
    Ok(spec)
}

/// The local driver only: any other is Docker's lookup error for a plugin not installed.
pub fn check_driver(name: &str) -> Result<(), String> {
    match name {
        "" | "local" => Ok(()),
        other => Err(format!(
            "error looking up volume plugin {other}: plugin \"{other}\" not found (berth has \
             the local driver only)"
        )),
    }
}

/// One `HostConfig.Tmpfs` entry (`--tmpfs /path[:options]`).
pub fn parse_tmpfs(destination: &str, options: &str) -> Result<MountSpec, String> {
    if destination.starts_with('/') && clean(destination) == "/" {
        return Err(mount_config(
            "tmpfs",
            "invalid specification: destination can't be '/'",
        ));
    }
    if !destination.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{destination}' mount path must be absolute"
        ));
    }
    Ok(MountSpec {
        kind: MountType::Tmpfs,
        unlisted: true,
        destination: clean(destination),
        tmpfs: options
            .split(',')
            .filter(|o| !o.is_empty())
            .map(String::from)
            .collect(),
        ..MountSpec::default()
    })
}

/// One `--volumes-from` entry, `container[:ro|rw]`: the container and whether its mounts
/// stay writable (they keep their own mode unless `ro`).
pub fn parse_volumes_from(spec: &str) -> Result<(String, bool), String> {
    if spec.is_empty() {
        return Err("volumes-from specification cannot be an empty string".into());
    }
    let (id, mode) = spec.split_once(':').unwrap_or((spec, ""));
    if mode.is_empty() {
        return Ok((id.to_string(), true));
    }
    let words: Vec<&str> = mode.split(',').collect();
    if !valid_mode(mode)
        || words.iter().any(|w| {
            matches!(
                mode_word(w),
                Some(ModeWord::Propagation) | Some(ModeWord::Copy)
            )
        })
    {
        return Err(format!("invalid mode: {mode}"));
    }
    Ok((id.to_string(), !words.contains(&"ro")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_record_from_before_reads_as_not_knowing_a_volumes_options() {
        let spec = parse_bind("data:/data").unwrap();
        // A plan made before the field: written without it, read back as `None`.
        let stored = serde_json::to_value(&spec).unwrap();
        assert!(stored.get("volume_options").is_none(), "{stored}");
        let old: MountSpec = serde_json::from_value(stored).unwrap();
        assert_eq!(old.volume_options, None);
        let known = MountSpec {
            volume_options: Some(false),
            ..spec
        };
        let again: MountSpec =
            serde_json::from_value(serde_json::to_value(&known).unwrap()).unwrap();
        assert_eq!(again.volume_options, Some(false));
    }

    fn refused(raw: &str) -> String {
        parse_bind(raw).unwrap_err()
    }

    #[test]
    fn clean_is_go_path_clean() {
        // Absolute: a `..` at the root stays at the root (the engine's device paths too).
        assert_eq!(clean("/a/./b//c/../d/"), "/a/b/d");
        assert_eq!(clean("/../.."), "/");
        assert_eq!(clean("/dev/../../null"), "/null");
        assert_eq!(clean("/"), "/");
        // Relative: leading `..`s are kept, nothing left is `.`.
        assert_eq!(clean("../a/../../b"), "../../b");
        assert_eq!(clean("a/.."), ".");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn unknown_modes_are_refused_never_mounted_read_write() {
        for mode in [
            "RO", "readonly", "r0", "badmode", "ro,ro", "ro,rw", "z,Z", "ro,",
        ] {
            for src in ["/src", "vol"] {
                assert_eq!(
                    refused(&format!("{src}:/x:{mode}")),
                    format!("invalid mode: {mode}"),
                    "{src} {mode}"
                );
            }
        }
    }

    #[test]
    fn binds_parse_with_dockers_modes() {
        for (mode, ro, prop) in [
            ("", false, Propagation::RPrivate),
            ("rw", false, Propagation::RPrivate),
            ("z", false, Propagation::RPrivate),
            ("Z,ro", true, Propagation::RPrivate),
            ("ro,rslave", true, Propagation::RSlave),
            ("slave", false, Propagation::Slave),
            ("private", false, Propagation::Private),
            ("rshared", false, Propagation::RShared),
            ("ro,shared", true, Propagation::Shared),
            ("cached", false, Propagation::RPrivate),
            ("delegated,ro", true, Propagation::RPrivate),
        ] {
            let raw = if mode.is_empty() {
                "/src/:/x".to_string()
            } else {
                format!("/src/:/x:{mode}")
            };
            let b = parse_bind(&raw).unwrap();
            assert_eq!(b.kind, MountType::Bind);
            assert_eq!((b.readonly, b.propagation), (ro, prop), "{raw}");
            assert_eq!((b.source.as_str(), b.destination.as_str()), ("/src", "/x"));
            assert_eq!(b.mode, mode);
            assert!(b.create_source, "-v makes a missing host path");
        }
    }

    #[test]
    fn named_and_anonymous_volumes_parse() {
        let v = parse_bind("data:/var/lib/db").unwrap();
        assert_eq!(v.kind, MountType::Volume);
        assert_eq!(v.source, "data");
        assert_eq!(v.mode, "z", "Docker's mode for a local volume given none");
        assert!(v.copy && !v.anonymous && !v.readonly);
        let v = parse_bind("data:/x:ro,nocopy").unwrap();
        assert!(v.readonly && !v.copy);
        assert_eq!(v.mode, "ro,nocopy");
        let a = parse_bind("/scratch").unwrap();
        assert_eq!(a.kind, MountType::Volume);
        assert!(a.anonymous && a.source.is_empty());
        assert_eq!(a.destination, "/scratch");
    }

    #[test]
    fn bad_specs_get_dockers_messages() {
        assert_eq!(
            refused("/src:/"),
            "invalid volume specification: '/src:/': invalid mount config for type \"bind\": \
             invalid specification: destination can't be '/'"
        );
        assert_eq!(
            refused("/src:rel"),
            "invalid volume specification: '/src:rel': invalid mount config for type \"bind\": \
             invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            refused("vol:rel"),
            "invalid volume specification: 'vol:rel': invalid mount config for type \
             \"volume\": invalid mount path: 'rel' mount path must be absolute"
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
        assert!(refused("../x:/x").contains("includes invalid characters"));
        assert!(refused("vol:/x:rslave").contains("field BindOptions must not be specified"));
        assert!(refused("rel").starts_with("invalid volume specification: 'rel'"));
        assert!(refused("/x:ro").starts_with("invalid volume specification"));
    }

    fn mount(v: Value) -> Result<MountSpec, String> {
        parse_mount(&v, &|p| p == "/exists")
    }

    #[test]
    fn read_only_depth_is_dockers_bind_options() {
        let depth = |opts: Value| {
            mount(json!({"Type": "bind", "Source": "/exists", "Target": "/x",
                "ReadOnly": true, "BindOptions": opts}))
            .map(|m| m.readonly_depth)
        };
        assert_eq!(depth(json!({})), Ok(ReadOnlyDepth::Recursive));
        assert_eq!(
            depth(json!({"ReadOnlyNonRecursive": true})),
            Ok(ReadOnlyDepth::NonRecursive)
        );
        assert_eq!(
            depth(json!({"ReadOnlyForceRecursive": true})),
            Ok(ReadOnlyDepth::Force)
        );
        assert!(
            depth(json!({"ReadOnlyNonRecursive": true, "ReadOnlyForceRecursive": true}))
                .unwrap_err()
                .contains("ReadOnlyNonRecursive && BindOptions.ReadOnlyForceRecursive")
        );
        for field in ["ReadOnlyNonRecursive", "ReadOnlyForceRecursive"] {
            let e = mount(json!({"Type": "bind", "Source": "/exists", "Target": "/x",
                "BindOptions": {field: true}}))
            .unwrap_err();
            assert_eq!(
                e,
                format!("mount options conflict: !ReadOnly && BindOptions.{field}")
            );
        }
    }

    #[test]
    fn mounts_parse_each_type() {
        let b = mount(json!({"Type": "bind", "Source": "/exists", "Target": "/x",
            "ReadOnly": true, "BindOptions": {"Propagation": "rslave", "NonRecursive": true}}))
        .unwrap();
        assert_eq!(b.kind, MountType::Bind);
        assert!(b.readonly && b.nonrecursive && !b.create_source);
        assert_eq!(b.propagation, Propagation::RSlave);
        assert_eq!(b.mode, "", "--mount shows no mode");
        let v = mount(json!({"Type": "volume", "Source": "db", "Target": "/d",
            "VolumeOptions": {"NoCopy": true, "Labels": {"a": "b"},
                "DriverConfig": {"Name": "local"}}}))
        .unwrap();
        assert!(!v.copy && !v.anonymous);
        assert_eq!(v.labels.get("a").map(String::as_str), Some("b"));
        let a = mount(json!({"Type": "volume", "Target": "/d"})).unwrap();
        assert!(a.anonymous && a.copy);
        let t = mount(json!({"Type": "tmpfs", "Target": "/t",
            "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 448, "Options": [["exec"]]}}))
        .unwrap();
        assert_eq!(t.tmpfs, ["mode=700", "size=1m", "exec"]);
    }

    #[test]
    fn mounts_fail_closed_in_dockers_words() {
        let e = |v: Value| mount(v).unwrap_err();
        assert_eq!(
            e(json!({"Type": "bind", "Source": "/nope", "Target": "/x"})),
            "invalid mount config for type \"bind\": bind source path does not exist: /nope"
        );
        assert!(
            mount(json!({"Type": "bind", "Source": "/nope", "Target": "/x",
            "BindOptions": {"CreateMountpoint": true}}))
            .is_ok()
        );
        assert_eq!(
            e(json!({"Type": "volume", "Target": "/x", "ReadOnly": true})),
            "invalid mount config for type \"volume\": must not set ReadOnly mode when using \
             anonymous volumes"
        );
        assert_eq!(
            e(json!({"Type": "tmpfs", "Source": "x", "Target": "/x"})),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert_eq!(
            e(json!({"Type": "volume", "Source": "vol", "Target": "/x",
                "BindOptions": {"Propagation": "rslave"}})),
            "invalid mount config for type \"volume\": field BindOptions must not be specified"
        );
        assert!(e(json!({"Type": "volume", "Source": "vol", "Target": "/x",
            "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}}))
        .contains("plugin \"nfs\" not found"));
        assert!(e(json!({"Type": "volume", "Source": "vol", "Target": "/x",
            "VolumeOptions": {"DriverConfig": {"Options": {"type": "nfs", "device": ":/x"}}}}))
        .contains("type=nfs is not supported"));
        let v = mount(json!({"Type": "volume", "Source": "vol", "Target": "/x",
            "VolumeOptions": {"DriverConfig": {"Options": {"type": "tmpfs", "device": "tmpfs"}}}}))
        .unwrap();
        assert_eq!(v.driver_opts.len(), 2);
        assert!(
            e(json!({"Type": "image", "Source": "busybox", "Target": "/x"}))
                .contains("mount type unknown")
        );
        assert!(
            e(json!({"Type": "bind", "Source": "/exists", "Target": "/x", "Bogus": 1}))
                .contains("Mounts.Bogus")
        );
        assert!(e(json!({"Type": "tmpfs", "Target": "/x",
            "TmpfsOptions": {"Options": [["size", "1"]]}}))
        .contains("invalid option: size"));
        assert!(
            e(json!({"Type": "bind", "Source": "/exists", "Target": "/x",
            "BindOptions": {"Propagation": "rshare"}}))
            .contains("invalid propagation mode: rshare")
        );
        assert_eq!(
            e(json!({"Type": "bind", "Source": "/exists", "Target": "/"})),
            "invalid mount config for type \"bind\": invalid specification: destination \
             can't be '/'"
        );
    }

    #[test]
    fn tmpfs_and_volumes_from_parse() {
        let t = parse_tmpfs("/run/", "size=64m,exec").unwrap();
        assert_eq!(t.destination, "/run");
        assert_eq!(t.tmpfs, ["size=64m", "exec"]);
        assert!(parse_tmpfs("run", "").is_err());
        assert!(parse_tmpfs("/", "").is_err());
        assert_eq!(parse_volumes_from("db").unwrap(), ("db".into(), true));
        assert_eq!(parse_volumes_from("db:ro").unwrap(), ("db".into(), false));
        assert_eq!(parse_volumes_from("db:rw").unwrap(), ("db".into(), true));
        assert_eq!(
            parse_volumes_from("db:rslave").unwrap_err(),
            "invalid mode: rslave"
        );
        assert_eq!(
            parse_volumes_from("db:nocopy").unwrap_err(),
            "invalid mode: nocopy"
        );
        assert!(parse_volumes_from("").is_err());
    }

    #[test]
    fn clean_is_gos_path_clean() {
        for (p, want) in [
            ("/a/b/../c/", "/a/c"),
            ("/..", "/"),
            ("/a//b/./", "/a/b"),
            ("a/../..", ".."),
            ("", "."),
        ] {
            assert_eq!(clean(p), want, "{p}");
        }
    }
}
