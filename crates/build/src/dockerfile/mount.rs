//! `RUN --mount=...`: the value of one flag read as BuildKit reads it
//! (`instructions/commands_runmount.go`): comma-separated `key=value` fields (CSV, so a
//! field may be quoted), values expanded one by one, Docker's defaults and messages.

use crate::expand::ExpandError;

/// What a RUN mount mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountType {
    /// The default: a path of the context or of `from`.
    Bind,
    /// A persistent cache directory.
    Cache,
    /// `--mount=type=tmpfs`.
    Tmpfs,
    /// `--mount=type=secret`.
    Secret,
    /// `--mount=type=ssh`.
    Ssh,
}

impl MountType {
    /// The name as written in `type=`.
    pub fn as_str(self) -> &'static str {
        match self {
            MountType::Bind => "bind",
            MountType::Cache => "cache",
            MountType::Tmpfs => "tmpfs",
            MountType::Secret => "secret",
            MountType::Ssh => "ssh",
        }
    }
}

/// `sharing=` of a cache mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSharing {
    /// The default.
    Shared,
    /// Concurrent builds each get their own.
    Private,
    /// One build at a time; others wait.
    Locked,
}

/// One `--mount`, values expanded. Unset fields are `None`; the executor applies Docker's
/// defaults for them (cache `id` = target, `sharing` = shared, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `type=`.
    pub kind: MountType,
    /// `from=`: a stage or image to take `source` from.
    pub from: Option<String>,
    /// `source=` / `src=`.
    pub source: Option<String>,
    /// `target=` / `dst=` / `destination=`.
    pub target: Option<String>,
    /// `ro`/`readonly`, `rw`/`readwrite`; by default bind, secret and ssh mounts are
    /// read-only, cache and tmpfs mounts writable.
    pub read_only: bool,
    /// `size=` of a tmpfs, in bytes (`64m`, `1g`: binary multiples).
    pub size: Option<u64>,
    /// `id=`: the cache's or the secret's id.
    pub id: Option<String>,
    /// `sharing=` of a cache mount.
    pub sharing: Option<CacheSharing>,
    /// `required` (secret, ssh): fail when the secret is not given.
    pub required: bool,
    /// `env=` (secret): the variable to put the secret in.
    pub env: Option<String>,
    /// `mode=` (octal), `uid=`, `gid=`: cache, secret and ssh only.
    pub mode: Option<u32>,
    /// `uid=` of the mount point (cache, secret, ssh).
    pub uid: Option<u32>,
    /// `gid=` of the mount point (cache, secret, ssh).
    pub gid: Option<u32>,
}

/// Reads one `--mount` value, expanding each value with `expand` (the builder passes
/// [`crate::expand::word`] with the step's variables). Errors are Docker's.
pub fn parse_mount(
    value: &str,
    expand: &dyn Fn(&str) -> Result<String, ExpandError>,
) -> Result<Mount, String> {
    let fields = csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
    let mut m = Mount {
        kind: MountType::Bind,
        from: None,
        source: None,
        target: None,
        read_only: false,
        size: None,
        id: None,
        sharing: None,
        required: false,
        env: None,
        mode: None,
        uid: None,
        gid: None,
    };
    let mut read_only_given = false;
    for field in &fields {
        let (key, raw) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let secretish = matches!(m.kind, MountType::Secret | MountType::Ssh);
        let unexpected = |key: &str, kind: MountType| {
            format!("unexpected key '{key}' for mount type '{}'", kind.as_str())
        };
        let Some(raw) = raw else {
            match key.as_str() {
                "readonly" | "ro" => m.read_only = true,
                "readwrite" | "rw" => m.read_only = false,
                "required" if secretish => m.required = true,
                "required" => return Err(unexpected(&key, m.kind)),
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            if key != "required" {
                read_only_given = true;
            }
            continue;
        };
        let value = expand(raw).map_err(|e| e.0)?;
        let invalid = || format!("invalid value for {key}: {value}");
        match key.as_str() {
            "type" => {
                m.kind = match value.to_lowercase().as_str() {
                    "bind" => MountType::Bind,
                    "cache" => MountType::Cache,
                    "tmpfs" => MountType::Tmpfs,
                    "secret" => MountType::Secret,
                    "ssh" => MountType::Ssh,
                    _ => {
                        let hint = super::args::suggest(
                            &value,
                            &["bind", "cache", "tmpfs", "secret", "ssh"],
                            true,
                        )
                        .map(|s| format!(" (did you mean {s}?)"))
                        .unwrap_or_default();
                        return Err(format!("unsupported mount type {value:?}{hint}"));
                    }
                }
            }
            "from" => m.from = Some(value),
            "source" | "src" => m.source = Some(value),
            "target" | "dst" | "destination" => m.target = Some(value),
            "readonly" | "ro" => {
                m.read_only = go_bool(&value).ok_or_else(invalid)?;
                read_only_given = true;
            }
            "readwrite" | "rw" => {
                m.read_only = !go_bool(&value).ok_or_else(invalid)?;
                read_only_given = true;
            }
            "required" if secretish => m.required = go_bool(&value).ok_or_else(invalid)?,
            "required" => return Err(unexpected(&key, m.kind)),
            "size" if m.kind == MountType::Tmpfs => {
                m.size = Some(ram_in_bytes(&value).ok_or_else(invalid)?)
            }
            "size" => return Err(unexpected(&key, m.kind)),
            "id" => m.id = Some(value),
            "sharing" => {
                m.sharing = Some(match value.to_lowercase().as_str() {
                    "shared" => CacheSharing::Shared,
                    "private" => CacheSharing::Private,
                    "locked" => CacheSharing::Locked,
                    _ => return Err(format!("unsupported sharing value {value:?}")),
                })
            }
            "mode" => {
                m.mode = Some(
                    u32::from_str_radix(&value, 8)
                        .map_err(|_| format!("invalid value {value} for mode"))?,
                )
            }
            "uid" => {
                m.uid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for uid"))?,
                )
            }
            "gid" => {
                m.gid = Some(
                    value
                        .parse()
                        .map_err(|_| format!("invalid value {value} for gid"))?,
                )
            }
            "env" => m.env = Some(value),
            _ => {
                let keys = [
                    "type",
                    "from",
                    "source",
                    "target",
                    "readonly",
                    "id",
                    "sharing",
                    "required",
                    "size",
                    "mode",
                    "uid",
                    "gid",
                    "src",
                    "dst",
                    "destination",
                    "ro",
                    "rw",
                    "readwrite",
                    "env",
                ];
                let hint = super::args::suggest(&key, &keys, true)
                    .map(|s| format!(" (did you mean {s}?)"))
                    .unwrap_or_default();
                return Err(format!("unexpected key '{key}' in '{field}'{hint}"));
            }
        }
    }
    check(&mut m, read_only_given)?;
    Ok(m)
}

/// Docker's checks after the fields, and the read-only default.
fn check(m: &mut Mount, read_only_given: bool) -> Result<(), String> {
    let kind = m.kind.as_str();
    if !matches!(
        m.kind,
        MountType::Secret | MountType::Ssh | MountType::Cache
    ) {
        for (name, given) in [
            ("mode", m.mode.is_some()),
            ("uid", m.uid.is_some()),
            ("gid", m.gid.is_some()),
        ] {
            if given {
                return Err(format!("{name} not allowed for {kind:?} type mounts"));
            }
        }
    }
    if !read_only_given {
        m.read_only = !matches!(m.kind, MountType::Cache | MountType::Tmpfs);
    }
    if m.kind == MountType::Secret {
        if m.from.is_some() {
            return Err("secret mount should not have a from".into());
        }
        if m.sharing.is_some() {
            return Err("secret mount should not define sharing".into());
        }
        if m.source.is_none() && m.target.is_none() && m.id.is_none() {
            return Err("invalid secret mount. one of source, target required".into());
        }
        if m.source.is_some() && m.id.is_some() {
            return Err("both source and id can't be set".into());
        }
    }
    if m.sharing.is_some() && m.kind != MountType::Cache {
        return Err(format!("invalid cache sharing set for {kind} mount"));
    }
    Ok(())
}

/// The parse-time check Docker makes before any expansion: `from=` may not use a variable
/// (`$` anywhere but at the end).
pub(super) fn check_unexpanded(value: &str) -> Result<(), String> {
    for field in csv_fields(value).map_err(|e| format!("failed to parse csv mounts: {e}"))? {
        if let Some((key, v)) = field.split_once('=') {
            if key.eq_ignore_ascii_case("from") {
                if let Some(i) = v.find('$') {
                    if i != v.len() - 1 {
                        return Err(
                            "'from' doesn't support variable expansion, define alias stage instead"
                                .into(),
                        );
                    }
                }
            }
        }
    }
    Ok(())
}

/// One CSV record: fields split on commas; a field starting with `"` runs to its closing
/// quote, `""` inside being a quote.
fn csv_fields(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err("extraneous or missing \" in quoted-field".into()),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    out.push(field);
                    return Ok(out);
                }
                Some(',') => {}
                Some(_) => return Err("extraneous or missing \" in quoted-field".into()),
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
        }
        out.push(field);
    }
}

/// Go's `strconv.ParseBool`.
fn go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// docker/go-units' `RAMInBytes`: `1024`, `64m`, `1.5g`, `2GiB`, binary multiples.
fn ram_in_bytes(s: &str) -> Option<u64> {
    let num_end = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(num_end);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') {
        return None;
    }
    let number: f64 = num.parse().ok()?;
    let unit = unit.strip_prefix(' ').unwrap_or(unit).to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let power = match unit {
        "" => 0,
        "k" => 1,
        "m" => 2,
        "g" => 3,
        "t" => 4,
        "p" => 5,
        _ => return None,
    };
    let bytes = number * 1024f64.powi(power);
    // Truncation is Go's int64 conversion.
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Result<String, ExpandError> {
        Ok(s.to_string())
    }

    #[test]
    fn mount_forms_and_defaults() {
        let m = parse_mount(
            "type=cache,target=/root/.cache,sharing=locked,id=pip,mode=0755",
            &plain,
        )
        .unwrap();
        assert_eq!(m.kind, MountType::Cache);
        assert_eq!(m.target.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing, Some(CacheSharing::Locked));
        assert_eq!(m.mode, Some(0o755));
        assert!(!m.read_only);
        let m = parse_mount("source=go.sum,dst=go.sum", &plain).unwrap();
        assert_eq!(m.kind, MountType::Bind);
        assert!(m.read_only);
        let m = parse_mount("type=bind,target=.,rw", &plain).unwrap();
        assert!(!m.read_only);
        let m = parse_mount("type=tmpfs,target=/t,size=64m", &plain).unwrap();
        assert_eq!(m.size, Some(64 << 20));
        let m = parse_mount("type=secret,id=tok,env=TOKEN,required", &plain).unwrap();
        assert!(m.required);
        assert_eq!(m.env.as_deref(), Some("TOKEN"));
        let m = parse_mount("type=ssh,\"target=/a,b\"", &plain).unwrap();
        assert_eq!(m.target.as_deref(), Some("/a,b"));
        let vars = |n: &str| (n == "DIR").then(|| "/cache".to_string());
        let expand = |s: &str| crate::expand::word(s, &vars, '\\');
        let m = parse_mount("type=cache,target=$DIR", &expand).unwrap();
        assert_eq!(m.target.as_deref(), Some("/cache"));
    }

    #[test]
    fn mount_errors_in_dockers_words() {
        let e = |s: &str| parse_mount(s, &plain).unwrap_err();
        assert_eq!(
            e("type=cahce"),
            "unsupported mount type \"cahce\" (did you mean cache?)"
        );
        assert_eq!(
            e("type=bind,bogus"),
            "invalid field 'bogus' must be a key=value pair"
        );
        assert_eq!(
            e("type=bind,required"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            e("type=bind,size=1m"),
            "unexpected key 'size' for mount type 'bind'"
        );
        assert_eq!(e("type=tmpfs,size=lots"), "invalid value for size: lots");
        assert_eq!(
            e("type=bind,uid=0"),
            "uid not allowed for \"bind\" type mounts"
        );
        assert_eq!(e("type=cache,mode=9"), "invalid value 9 for mode");
        assert_eq!(e("type=bind,ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(
            e("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            e("type=bind,sharing=shared"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            e("type=bind,color=red"),
            "unexpected key 'color' in 'color=red'"
        );
        assert_eq!(
            e("type=bind,targte=/x"),
            "unexpected key 'targte' in 'targte=/x' (did you mean target?)"
        );
        assert_eq!(
            check_unexpanded("type=bind,from=$STAGE,target=/x"),
            Err("'from' doesn't support variable expansion, define alias stage instead".into())
        );
        assert_eq!(check_unexpanded("type=bind,from=a$,target=/x"), Ok(()));
    }
}
