//! Go's `path/filepath` string rules as `docker cp` applies them to container paths (on
//! bytes: names need not be UTF-8). Pure functions; nothing here touches a filesystem.

pub(crate) use berth_api::archive::gopath::{asserts_directory, base, clean, preserve_trailing};

/// The absolute path `docker cp` works on for the API's `path`: Go's
/// `PreserveTrailingDotOrSeparator(filepath.Join("/", path), path)`.
pub(crate) fn absolute(path: &[u8]) -> Vec<u8> {
    let joined = clean(&[b"/".as_slice(), path].concat());
    preserve_trailing(&joined, path)
}

/// The plain components of a tar entry's name, as Docker's unpacking reads it (Go's
/// `filepath.Clean`, then joined below the destination): a leading `/` is ignored; `None`
/// when the name climbs out of the destination (`..`, `a/../..`). Empty for the
/// destination itself (`.`, `./`).
pub(crate) fn entry_components(name: &[u8]) -> Option<Vec<Vec<u8>>> {
    let cleaned = clean(name);
    let rel = cleaned.strip_prefix(b"/").unwrap_or(&cleaned);
    if rel == b".." || rel.starts_with(b"../") {
        return None;
    }
    Some(
        rel.split(|b| *b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(<[u8]>::to_vec)
            .collect(),
    )
}

/// `dir` + `/` + the components, for a path to show or to resolve inside the root.
pub(crate) fn join(dir: &[u8], components: &[Vec<u8>]) -> Vec<u8> {
    let mut out = dir.to_vec();
    for c in components {
        if !out.ends_with(b"/") {
            out.push(b'/');
        }
        out.extend_from_slice(c);
    }
    out
}

/// Whether `path` (clean, absolute) is `dir` or below it (clean, absolute).
pub(crate) fn is_within(path: &[u8], dir: &[u8]) -> bool {
    dir == b"/" || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

/// Go's `%q` of a path, for Docker's messages.
pub(crate) fn quote(path: &[u8]) -> String {
    format!("{:?}", show(path))
}

/// A path for a message: cut after 512 bytes (an archive's name may be up to 1 MiB; no
/// path the kernel takes is longer than 4096).
pub(crate) fn show(path: &[u8]) -> String {
    const MAX: usize = 512;
    if path.len() <= MAX {
        return String::from_utf8_lossy(path).into_owned();
    }
    format!(
        "{}... ({} bytes)",
        String::from_utf8_lossy(&path[..MAX]),
        path.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(b: Vec<u8>) -> String {
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn the_api_path_keeps_its_trailing_dot_or_slash() {
        for (input, want) in [
            ("/etc/hosts", "/etc/hosts"),
            ("etc", "/etc"),
            ("/etc/", "/etc/"),
            ("/etc/.", "/etc/."),
            ("/", "/"),
            ("/.", "/."),
            ("../../etc/passwd", "/etc/passwd"),
            ("/tmp/x/..", "/tmp"),
        ] {
            assert_eq!(s(absolute(input.as_bytes())), want, "{input}");
        }
        assert!(asserts_directory(b"/etc/"));
        assert!(asserts_directory(b"/etc/."));
        assert!(!asserts_directory(b"/etc"));
    }

    #[test]
    fn entry_names_may_not_climb_out() {
        let c = |n: &str| {
            entry_components(n.as_bytes())
                .map(|v| v.into_iter().map(s).collect::<Vec<_>>().join("|"))
        };
        assert_eq!(c("a/b").as_deref(), Some("a|b"));
        assert_eq!(c("./a/").as_deref(), Some("a"));
        assert_eq!(c("/etc/passwd").as_deref(), Some("etc|passwd"));
        assert_eq!(c("a/../b").as_deref(), Some("b"));
        assert_eq!(c(".").as_deref(), Some(""));
        assert_eq!(c("/../x").as_deref(), Some("x"));
        assert_eq!(c(".."), None);
        assert_eq!(c("../x"), None);
        assert_eq!(c("a/../../x"), None);
    }

    #[test]
    fn within_is_by_component() {
        assert!(is_within(b"/tmp/x/a", b"/tmp/x"));
        assert!(is_within(b"/tmp/x", b"/tmp/x"));
        assert!(!is_within(b"/tmp/xyz", b"/tmp/x"));
        assert!(is_within(b"/etc", b"/"));
    }
}
