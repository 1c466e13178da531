//! `--mount` and `-v` as docker 28 reads them (`opts/mount.go`, the compose loader's
//! `ParseVolume`), pure: the value in, the API's `Mount` (or the bind/volume split) out.

use std::collections::BTreeMap;

use berth_api::query::go_bool;
use serde::Serialize;

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// One `HostConfig.Mounts` entry, serialized as Go's `mount.Mount` (every field
/// `omitempty`, options objects only when an option of theirs was given).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Mount {
    #[serde(rename = "Type", skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub target: String,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_options: Option<ImageOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
}

/// `mount.BindOptions` (docker 28's CLI has no flag for `CreateMountpoint`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BindOptions {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    #[serde(skip_serializing_if = "is_false")]
    pub non_recursive: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only_non_recursive: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub read_only_force_recursive: bool,
}

/// `mount.VolumeOptions`; maps are sorted, as Go writes them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VolumeOptions {
    #[serde(skip_serializing_if = "is_false")]
    pub no_copy: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<Driver>,
}

/// `mount.Driver`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Driver {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `mount.ImageOptions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ImageOptions {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subpath: String,
}

/// `mount.TmpfsOptions`: the mode is Go's `os.FileMode`, a number.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TmpfsOptions {
    #[serde(skip_serializing_if = "is_zero")]
    pub size_bytes: i64,
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
}

const DEPRECATED_NONRECURSIVE: &str =
    "bind-nonrecursive is deprecated, use bind-recursive=disabled instead";

/// The clap parser for `--mount`: [`parse_mount`], printing its warning as docker's logrus
/// does when stderr is not a terminal.
pub fn mount_flag(value: &str) -> Result<Mount, String> {
    let (mount, warnings) = parse_mount(value)?;
    for w in warnings {
        let now = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        eprintln!("time={now:?} level=warning msg={w:?}");
    }
    Ok(mount)
}

/// Go's `filepath.Abs` of a relative path (unchanged if the working directory is unknown).
fn go_abs(path: &str) -> String {
    match std::env::current_dir() {
        Ok(cwd) => {
            let joined =
                berth_api::archive::gopath::join(cwd.to_string_lossy().as_bytes(), path.as_bytes());
            String::from_utf8_lossy(&joined).into_owned()
        }
        Err(_) => path.to_string(),
    }
}

/// A relative source that starts with `.` made absolute, as docker does for `--mount src=`
/// and a bind's host part in `-v`.
fn absolute_if_dotted(source: &str) -> String {
    if !source.starts_with('/') && source.starts_with('.') {
        go_abs(source)
    } else {
        source.to_string()
    }
}

/// docker 28's `MountOpt.Set`: the value is one CSV record of `key=value` fields. Returns
/// the mount and any warnings docker would log.
pub fn parse_mount(value: &str) -> Result<(Mount, Vec<String>), String> {
    let fields = csv_record(value)?;
    let mut warnings = Vec::new();
    let mut m = Mount {
        kind: "volume".into(),
        ..Default::default()
    };
    fn volume_options(m: &mut Mount) -> &mut VolumeOptions {
        // docker 28 creates the driver config with the options: `"DriverConfig": {}` is sent
        // with any `volume-*` option.
        m.volume_options.get_or_insert_with(|| VolumeOptions {
            driver_config: Some(Driver::default()),
            ..Default::default()
        })
    }
    fn driver(m: &mut Mount) -> &mut Driver {
        volume_options(m)
            .driver_config
            .get_or_insert_with(Driver::default)
    }
    fn set_on_map(map: &mut BTreeMap<String, String>, kv: &str) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        if !k.is_empty() {
            map.insert(k.to_string(), v.to_string());
        }
    }
    for field in &fields {
        let (key, val) = match field.split_once('=') {
            Some((k, v)) => (k.to_lowercase(), Some(v)),
            None => (field.to_lowercase(), None),
        };
        let Some(val) = val else {
            match key.as_str() {
                "readonly" | "ro" => m.read_only = true,
                "volume-nocopy" => volume_options(&mut m).no_copy = true,
                "bind-nonrecursive" => {
                    m.bind_options
                        .get_or_insert_with(Default::default)
                        .non_recursive = true
                }
                _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
            }
            continue;
        };
        let bad = || format!("invalid value for {key}: {val}");
        match key.as_str() {
            "type" => m.kind = val.to_lowercase(),
            "source" | "src" => m.source = absolute_if_dotted(val),
            "target" | "dst" | "destination" => m.target = val.to_string(),
            "readonly" | "ro" => m.read_only = go_bool(val).ok_or_else(bad)?,
            "consistency" => m.consistency = val.to_lowercase(),
            "bind-propagation" => {
                m.bind_options
                    .get_or_insert_with(Default::default)
                    .propagation = val.to_lowercase()
            }
            "bind-nonrecursive" => {
                m.bind_options
                    .get_or_insert_with(Default::default)
                    .non_recursive = go_bool(val).ok_or_else(bad)?;
                warnings.push(DEPRECATED_NONRECURSIVE.to_string());
            }
            "bind-recursive" => {
                let b = m.bind_options.get_or_insert_with(Default::default);
                match val {
                    "enabled" => {}
                    "disabled" => b.non_recursive = true,
                    "writable" => b.read_only_non_recursive = true,
                    "readonly" => b.read_only_force_recursive = true,
                    _ => {
                        return Err(format!(
                            "invalid value for {key}: {val} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")"
                        ))
                    }
                }
            }
            "volume-subpath" => volume_options(&mut m).subpath = val.to_string(),
            "volume-nocopy" => volume_options(&mut m).no_copy = go_bool(val).ok_or_else(bad)?,
            "volume-label" => set_on_map(&mut volume_options(&mut m).labels, val),
            "volume-driver" => driver(&mut m).name = val.to_string(),
            "volume-opt" => set_on_map(&mut driver(&mut m).options, val),
            "image-subpath" => {
                m.image_options.get_or_insert_with(Default::default).subpath = val.to_string()
            }
            "tmpfs-size" => {
                let size = crate::human::ram_in_bytes(val).map_err(|_| bad())?;
                m.tmpfs_options
                    .get_or_insert_with(Default::default)
                    .size_bytes = size;
            }
            "tmpfs-mode" => {
                // strconv.ParseUint(val, 8, 32): octal digits only, no sign or prefix.
                if val.is_empty() || !val.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
                    return Err(bad());
                }
                let mode = u32::from_str_radix(val, 8).map_err(|_| bad())?;
                m.tmpfs_options.get_or_insert_with(Default::default).mode = mode;
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }

    if m.kind.is_empty() {
        return Err("type is required".into());
    }
    if m.target.is_empty() {
        return Err("target is required".into());
    }
    let mix = |what: &str| format!("cannot mix '{what}-*' options with mount type '{}'", m.kind);
    if m.volume_options.is_some() && m.kind != "volume" {
        return Err(mix("volume"));
    }
    if m.image_options.is_some() && m.kind != "image" {
        return Err(mix("image"));
    }
    if m.bind_options.is_some() && m.kind != "bind" {
        return Err(mix("bind"));
    }
    if m.tmpfs_options.is_some() && m.kind != "tmpfs" {
        return Err(mix("tmpfs"));
    }
    if let Some(b) = &m.bind_options {
        if b.read_only_non_recursive && !m.read_only {
            return Err("option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction".into());
        }
        if b.read_only_force_recursive {
            if !m.read_only {
                return Err("option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction".into());
            }
            if b.propagation != "rprivate" {
                return Err("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".into());
            }
        }
    }
    Ok((m, warnings))
}

/// Go's `csv.Reader.Read` with its defaults: the first record of `input` (empty lines
/// before it skipped; fields may be quoted, `""` inside quotes being one quote, and a
/// quoted field may span lines), with Go's `ParseError` texts and 1-based byte columns.
pub fn csv_record(input: &str) -> Result<Vec<String>, String> {
    // Lines as Go's readLine returns them: `\r\n` read as `\n`, a final `\r` dropped.
    let mut lines = input.split_inclusive('\n').map(|l| {
        let mut l = l.as_bytes().to_vec();
        if l.ends_with(b"\r\n") {
            l.truncate(l.len() - 2);
            l.push(b'\n');
        } else if l.ends_with(b"\r") {
            l.pop();
        }
        l
    });
    let mut num_line = 0usize;
    let mut line = loop {
        match lines.next() {
            None => return Err("EOF".into()),
            Some(l) => {
                num_line += 1;
                if l != b"\n" {
                    break l;
                }
            }
        }
    };
    let rec_line = num_line;
    let len_nl = |l: &[u8]| usize::from(l.ends_with(b"\n"));
    let parse_error = |line: usize, col: usize, what: &str| {
        let e = format!("parse error on line {line}, column {col}: {what}");
        if line == rec_line {
            e
        } else {
            format!("record on line {rec_line}; {e}")
        }
    };
    const BARE: &str = "bare \" in non-quoted-field";
    const QUOTE: &str = "extraneous or missing \" in quoted-field";

    let mut fields: Vec<Vec<u8>> = Vec::new();
    let (mut pos_line, mut col) = (num_line, 1usize);
    // Where the next field starts in `line`; a quoted field may read on into later lines.
    let mut offset = 0usize;
    'fields: loop {
        let rest = &line[offset..];
        if rest.first() != Some(&b'"') {
            let comma = rest.iter().position(|b| *b == b',');
            let field = match comma {
                Some(i) => &rest[..i],
                None => &rest[..rest.len() - len_nl(rest)],
            };
            if let Some(j) = field.iter().position(|b| *b == b'"') {
                return Err(parse_error(num_line, col + j, BARE));
            }
            fields.push(field.to_vec());
            match comma {
                Some(i) => {
                    offset += i + 1;
                    col += i + 1;
                    continue 'fields;
                }
                None => break 'fields,
            }
        }
        // A quoted field.
        let mut buf = Vec::new();
        offset += 1;
        col += 1;
        loop {
            let rest = &line[offset..];
            if let Some(i) = rest.iter().position(|b| *b == b'"') {
                buf.extend_from_slice(&rest[..i]);
                offset += i + 1;
                col += i + 1;
                let rest = &line[offset..];
                match rest.first() {
                    Some(b'"') => {
                        buf.push(b'"');
                        offset += 1;
                        col += 1;
                    }
                    Some(b',') => {
                        offset += 1;
                        col += 1;
                        fields.push(buf);
                        continue 'fields;
                    }
                    _ if len_nl(rest) == rest.len() => {
                        fields.push(buf);
                        break 'fields;
                    }
                    _ => return Err(parse_error(num_line, col - 1, QUOTE)),
                }
            } else if !rest.is_empty() {
                buf.extend_from_slice(rest);
                col += rest.len();
                line = match lines.next() {
                    Some(next) => {
                        num_line += 1;
                        if !next.is_empty() {
                            pos_line += 1;
                            col = 1;
                        }
                        next
                    }
                    None => Vec::new(),
                };
                offset = 0;
            } else {
                return Err(parse_error(pos_line, col, QUOTE));
            }
        }
    }
    Ok(fields
        .into_iter()
        .map(|f| String::from_utf8_lossy(&f).into_owned())
        .collect())
}

/// How docker 28 files one `-v` value: `Some(bind)` for `HostConfig.Binds` (a `.`-relative
/// host path made absolute), `None` for an anonymous volume (`Config.Volumes`). Errors are
/// the compose loader's `ParseVolume` ones.
pub fn classify_volume(spec: &str) -> Result<Option<String>, String> {
    if spec.is_empty() {
        return Err("invalid empty volume spec".into());
    }
    let (source, kind) = parse_volume(spec).map_err(|e| format!("invalid spec: {spec}: {e}"))?;
    if source.is_empty() {
        return Ok(None);
    }
    if kind == "bind" {
        if let Some((host, target)) = spec.split_once(':') {
            return Ok(Some(format!("{}:{target}", absolute_if_dotted(host))));
        }
    }
    Ok(Some(spec.to_string()))
}

fn is_windows_drive(buffer: &[char], c: char) -> bool {
    c == ':' && buffer.len() == 1 && buffer[0].is_alphabetic()
}

/// The compose loader's `ParseVolume`, reduced to what `run` uses: the source and the type.
fn parse_volume(spec: &str) -> Result<(String, &'static str), String> {
    if spec.len() <= 2 {
        // Empty is refused by the caller; one or two bytes are an anonymous volume's target.
        return Ok((String::new(), "volume"));
    }
    let (mut source, mut have_target) = (String::new(), false);
    let mut buffer: Vec<char> = Vec::new();
    let chars = spec.chars().map(Some).chain(std::iter::once(None));
    for c in chars {
        match c {
            Some(ch) if is_windows_drive(&buffer, ch) => buffer.push(ch),
            Some(':') | None => {
                let end = c.is_none();
                let s: String = buffer.iter().collect();
                if buffer.is_empty() {
                    return Err("empty section between colons".into());
                } else if source.is_empty() && end {
                    have_target = true;
                } else if source.is_empty() {
                    source = s;
                } else if !have_target {
                    have_target = true;
                } else if !end {
                    return Err("too many colons".into());
                }
                // The mode field's options (ro, rw, nocopy, propagation) do not decide
                // between bind and volume.
                buffer.clear();
            }
            Some(ch) => buffer.push(ch),
        }
    }
    let kind = if !source.is_empty() && is_file_path(&source) {
        "bind"
    } else {
        "volume"
    };
    Ok((source, kind))
}

fn is_file_path(source: &str) -> bool {
    let mut chars = source.chars();
    let first = chars.next().unwrap_or_default();
    if matches!(first, '.' | '/' | '~') {
        return true;
    }
    if source.chars().count() == 1 {
        return false;
    }
    if source.starts_with(r"\\") {
        return true;
    }
    // Go compares the first rune with the byte after it, as a rune.
    let next = source.as_bytes()[first.len_utf8()] as char;
    is_windows_drive(&[first], next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_reads_one_record_as_go() {
        let ok = |s: &str| csv_record(s).unwrap();
        assert_eq!(ok("a=1,b"), ["a=1", "b"]);
        assert_eq!(ok("\"a=1,b\",c"), ["a=1,b", "c"]);
        assert_eq!(ok("\"t=x\"\"y\",c"), ["t=x\"y", "c"]);
        assert_eq!(ok("a,"), ["a", ""]);
        // Empty lines before the record are skipped, lines after it are not read.
        assert_eq!(ok("\na=1\r\nb=2"), ["a=1"]);
        // A quoted field may span lines (`\r\n` read as `\n`).
        assert_eq!(ok("\"a\r\nb\",c"), ["a\nb", "c"]);
        assert_eq!(csv_record("").unwrap_err(), "EOF");
        assert_eq!(csv_record("\n").unwrap_err(), "EOF");
    }

    #[test]
    fn csv_errors_are_gos_with_byte_columns() {
        let err = |s: &str| csv_record(s).unwrap_err();
        let bare = "bare \" in non-quoted-field";
        let quote = "extraneous or missing \" in quoted-field";
        assert_eq!(
            err("target=\"/a"),
            format!("parse error on line 1, column 8: {bare}")
        );
        assert_eq!(
            err("target=é\""),
            format!("parse error on line 1, column 10: {bare}")
        );
        assert_eq!(
            err("\"target=/a\"x"),
            format!("parse error on line 1, column 11: {quote}")
        );
        assert_eq!(
            err("\"abc"),
            format!("parse error on line 1, column 5: {quote}")
        );
        assert_eq!(
            err("t=/t,\"abc"),
            format!("parse error on line 1, column 10: {quote}")
        );
        assert_eq!(
            err("\"target=/t\nx\"y"),
            format!("record on line 1; parse error on line 2, column 2: {quote}")
        );
    }

    #[test]
    fn booleans_and_options_read_as_docker_28() {
        let m = |s: &str| parse_mount(s).unwrap().0;
        for v in ["1", "t", "T", "TRUE", "true", "True"] {
            assert!(m(&format!("target=/t,readonly={v}")).read_only, "{v}");
        }
        for v in ["0", "f", "F", "FALSE", "false", "False"] {
            assert!(!m(&format!("target=/t,ro,ro={v}")).read_only, "{v}");
        }
        // Whitespace is kept, and so refused where it makes a key unknown.
        assert_eq!(
            parse_mount(" target=/t").unwrap_err(),
            "unexpected key ' target' in ' target=/t'"
        );
        // The later of two values wins; an empty key is dropped from a map.
        let v = m("target=/t,volume-driver=a,volume-driver=,volume-label=k,volume-label==x");
        let vo = v.volume_options.unwrap();
        assert_eq!(vo.driver_config, Some(Driver::default()));
        assert_eq!(vo.labels, BTreeMap::from([("k".into(), String::new())]));
        // Only the valued spelling of bind-nonrecursive warns.
        assert!(parse_mount("type=bind,target=/t,bind-nonrecursive")
            .unwrap()
            .1
            .is_empty());
        assert_eq!(
            parse_mount("type=bind,target=/t,bind-nonrecursive=1")
                .unwrap()
                .1,
            [DEPRECATED_NONRECURSIVE]
        );
        assert_eq!(
            m("type=tmpfs,target=/t,tmpfs-mode=0777")
                .tmpfs_options
                .unwrap()
                .mode,
            0o777
        );
        assert!(parse_mount("type=tmpfs,target=/t,tmpfs-mode=77777777777").is_err());
        assert_eq!(
            m("type=tmpfs,target=/t,tmpfs-size=10 kib")
                .tmpfs_options
                .unwrap()
                .size_bytes,
            10240
        );
        assert_eq!(m("type=foo,target=/t").kind, "foo");
    }
}
