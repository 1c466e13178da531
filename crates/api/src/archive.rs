//! `docker cp`'s wire shapes: the `X-Docker-Container-Path-Stat` header of `HEAD` and `GET
//! /containers/{id}/archive`, and Go's `os.FileMode` bit layout that its `mode` carries.
//!
//! The header is base64 (standard alphabet, padded) of the JSON of [`PathStat`]; `mode` is
//! not POSIX's `st_mode` but Go's: the permission bits, then one high bit per file type and
//! for set-uid, set-gid and sticky (a directory has bit 31, never `S_IFDIR`).

use serde::{Deserialize, Serialize};

/// The name of the stat header.
pub const PATH_STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// What the stat header says about a path in a container (moby's `container.PathStat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    /// The path's last element (`.` for a path ending in `/.`, `/` for the root).
    pub name: String,
    /// `st_size` of the path itself (of a symlink: the length of its target).
    pub size: i64,
    /// Go's `os.FileMode` of the path (see [`go_file_mode`]).
    pub mode: u32,
    /// The modification time, RFC 3339 with nanoseconds as Go writes it.
    pub mtime: String,
    /// For a symlink, its target fully resolved inside the container's root (as far as it
    /// exists); empty otherwise.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.ModeDir`.
pub const MODE_DIR: u32 = 1 << 31;
/// Go's `os.ModeSymlink`.
pub const MODE_SYMLINK: u32 = 1 << 27;
/// Go's `os.ModeDevice`.
pub const MODE_DEVICE: u32 = 1 << 26;
/// Go's `os.ModeNamedPipe`.
pub const MODE_NAMED_PIPE: u32 = 1 << 25;
/// Go's `os.ModeSocket`.
pub const MODE_SOCKET: u32 = 1 << 24;
/// Go's `os.ModeSetuid`.
pub const MODE_SETUID: u32 = 1 << 23;
/// Go's `os.ModeSetgid`.
pub const MODE_SETGID: u32 = 1 << 22;
/// Go's `os.ModeCharDevice`.
pub const MODE_CHAR_DEVICE: u32 = 1 << 21;
/// Go's `os.ModeSticky`.
pub const MODE_STICKY: u32 = 1 << 20;
/// Go's `os.ModeIrregular`.
pub const MODE_IRREGULAR: u32 = 1 << 19;

/// POSIX `st_mode` -> Go's `os.FileMode`, as Go's `os.Lstat` fills it on Linux.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & 0o170000 {
        0o060000 => MODE_DEVICE,
        0o020000 => MODE_DEVICE | MODE_CHAR_DEVICE,
        0o040000 => MODE_DIR,
        0o010000 => MODE_NAMED_PIPE,
        0o120000 => MODE_SYMLINK,
        0o140000 => MODE_SOCKET,
        _ => 0,
    };
    if st_mode & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if st_mode & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if st_mode & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    mode
}

impl PathStat {
    /// Whether the path is a directory.
    pub fn is_dir(&self) -> bool {
        self.mode & MODE_DIR != 0
    }

    /// Whether the path is a symlink.
    pub fn is_symlink(&self) -> bool {
        self.mode & MODE_SYMLINK != 0
    }

    /// The header's value: base64 of the JSON.
    pub fn to_header(&self) -> String {
        base64_encode(&serde_json::to_vec(self).expect("a path stat serialises"))
    }

    /// Reads the header's value; `None` when it is not base64 of a path stat.
    pub fn from_header(value: &str) -> Option<PathStat> {
        serde_json::from_slice(&base64_decode(value.trim())?).ok()
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (Go's `base64.StdEncoding`).
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional); `None` on any other byte.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text
        .trim_end_matches('=')
        .bytes()
        .map(|c| ALPHABET.iter().position(|a| *a == c).map(|p| p as u8))
        .collect::<Option<_>>()?;
    if digits.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in chunk.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        for i in 0..chunk.len() - 1 {
            out.push((n >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

/// Go's `path/filepath` rules on slash-separated byte paths, as `docker cp` applies them on
/// both sides (the CLI to local paths, the daemon to container paths). Pure functions.
pub mod gopath {
    /// Go's `filepath.Clean`.
    pub fn clean(path: &[u8]) -> Vec<u8> {
        if path.is_empty() {
            return b".".to_vec();
        }
        let rooted = path[0] == b'/';
        let mut out: Vec<&[u8]> = Vec::new();
        for part in path.split(|b| *b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    if out.last().is_some_and(|l| *l != b"..") {
                        out.pop();
                    } else if !rooted {
                        out.push(b"..");
                    }
                }
                p => out.push(p),
            }
        }
        let joined = out.join(&b'/');
        match (rooted, joined.is_empty()) {
            (true, _) => [b"/".as_slice(), &joined].concat(),
            (false, true) => b".".to_vec(),
            (false, false) => joined,
        }
    }

    /// Go's `filepath.Base`: the last element, trailing slashes ignored; `/` for the root
    /// and `.` for an empty path.
    pub fn base(path: &[u8]) -> &[u8] {
        if path.is_empty() {
            return b".";
        }
        let mut end = path.len();
        while end > 0 && path[end - 1] == b'/' {
            end -= 1;
        }
        let trimmed = &path[..end];
        if trimmed.is_empty() {
            return b"/";
        }
        match trimmed.iter().rposition(|b| *b == b'/') {
            Some(i) => &trimmed[i + 1..],
            None => trimmed,
        }
    }

    /// Go's `filepath.Dir`: everything before the last element, cleaned.
    pub fn dir(path: &[u8]) -> Vec<u8> {
        match path.iter().rposition(|b| *b == b'/') {
            Some(i) => clean(&path[..=i]),
            None => b".".to_vec(),
        }
    }

    /// Go's `filepath.Join` of two paths.
    pub fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
        if a.is_empty() {
            return if b.is_empty() { Vec::new() } else { clean(b) };
        }
        clean(&[a, b"/", b].concat())
    }

    /// Whether the path's last element is `.` (`specifiesCurrentDir`).
    pub fn specifies_current_dir(path: &[u8]) -> bool {
        base(path) == b"."
    }

    /// Whether the path asserts a directory: it ends in `/` or `/.` (`assertsDirectory`).
    pub fn asserts_directory(path: &[u8]) -> bool {
        path.ends_with(b"/") || specifies_current_dir(path)
    }

    /// `PreserveTrailingDotOrSeparator`: `cleaned` with the `/.` or `/` that `original`
    /// ended in.
    pub fn preserve_trailing(cleaned: &[u8], original: &[u8]) -> Vec<u8> {
        let mut out = cleaned.to_vec();
        if !specifies_current_dir(&out) && specifies_current_dir(original) {
            if !out.ends_with(b"/") {
                out.push(b'/');
            }
            out.push(b'.');
        }
        if !out.ends_with(b"/") && original.ends_with(b"/") {
            out.push(b'/');
        }
        out
    }

    /// `SplitPathDirEntry`: the directory and the last element, a trailing `.` kept as the
    /// element.
    pub fn split_dir_entry(path: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut cleaned = clean(path);
        if specifies_current_dir(path) {
            cleaned.extend_from_slice(b"/.");
        }
        (dir(&cleaned), base(&cleaned).to_vec())
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        fn s(b: Vec<u8>) -> String {
            String::from_utf8(b).unwrap()
        }

        #[test]
        fn clean_is_gos() {
            for (input, want) in [
                ("", "."),
                ("/", "/"),
                ("a/b/", "a/b"),
                ("./x", "x"),
                ("a/../b", "b"),
                ("a/../../b", "../b"),
                ("/../x", "/x"),
                ("//a//b/./c/..", "/a/b"),
                ("..", ".."),
            ] {
                assert_eq!(s(clean(input.as_bytes())), want, "{input}");
            }
        }

        #[test]
        fn base_dir_and_split_are_gos() {
            assert_eq!(base(b"/a/b"), b"b");
            assert_eq!(base(b"/a/b/"), b"b");
            assert_eq!(base(b"/a/b/."), b".");
            assert_eq!(base(b"/"), b"/");
            assert_eq!(base(b""), b".");
            assert_eq!(s(dir(b"/a/b")), "/a");
            assert_eq!(s(dir(b"/a")), "/");
            assert_eq!(s(dir(b"a")), ".");
            let split = |p: &str| {
                let (d, b) = split_dir_entry(p.as_bytes());
                (s(d), s(b))
            };
            assert_eq!(split("/a/b/."), ("/a/b".into(), ".".into()));
            assert_eq!(split("/a/b/"), ("/a".into(), "b".into()));
            assert_eq!(split("/"), ("/".into(), "/".into()));
            assert_eq!(s(join(b"/a/b", b"../c")), "/a/c");
            assert_eq!(s(join(b"/a", b"/etc")), "/a/etc");
        }

        #[test]
        fn trailing_dots_and_slashes_are_kept() {
            assert_eq!(s(preserve_trailing(b"/etc", b"etc/")), "/etc/");
            assert_eq!(s(preserve_trailing(b"/etc", b"/etc/.")), "/etc/.");
            assert_eq!(s(preserve_trailing(b"/", b"/.")), "/.");
            assert!(asserts_directory(b"/etc/"));
            assert!(asserts_directory(b"/etc/."));
            assert!(!asserts_directory(b"/etc"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_with_gos_padding() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded).unwrap(), plain.as_bytes());
        }
        assert_eq!(base64_decode("Zm9vYg").unwrap(), b"foob");
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn modes_have_gos_bit_layout() {
        assert_eq!(go_file_mode(0o100644), 0o644);
        assert_eq!(go_file_mode(0o040755), MODE_DIR | 0o755);
        assert_eq!(go_file_mode(0o120777), MODE_SYMLINK | 0o777);
        assert_eq!(
            go_file_mode(0o020666),
            MODE_DEVICE | MODE_CHAR_DEVICE | 0o666
        );
        assert_eq!(go_file_mode(0o041777), MODE_DIR | MODE_STICKY | 0o777);
        assert_eq!(go_file_mode(0o104755), MODE_SETUID | 0o755);
    }

    /// The header Docker sent for a file (observed; docker-api-notes.md §2.12).
    #[test]
    fn the_header_reads_dockers() {
        let json = r#"{"name":"cpfile.txt","size":11,"mode":420,"mtime":"2026-11-22T11:01:55Z","linkTarget":""}"#;
        let stat = PathStat::from_header(&base64_encode(json.as_bytes())).unwrap();
        assert_eq!(stat.name, "cpfile.txt");
        assert_eq!(stat.mode, 0o644);
        assert!(!stat.is_dir());
        assert_eq!(PathStat::from_header(&stat.to_header()), Some(stat));
    }
}
