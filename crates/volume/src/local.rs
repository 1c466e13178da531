//! The local driver's mount options (`docker volume create -o type=... -o o=... -o
//! device=...`): a volume whose `_data` is a tmpfs or a bind of a host directory, mounted on
//! the host at `_data` while a running container uses it, as Docker's local driver does.
//!
//! Docker's checks and words come first (`validateOpts`: the keys it knows, the keys each
//! needs). Then berth's own, failing closed: it mounts `type=tmpfs` and the binds (`type=none`
//! or `bind` with `o=bind` or `o=rbind`); any other file system type (nfs, cifs, a block
//! device) is refused at create rather than accepted and left unmounted.
//!
//! A volume's `_data` that is a mount point is never deleted through: [`mounted_under`] is
//! what the store checks before it renames a volume away.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// The keys Docker's local driver takes.
const VALID: &[&str] = &["type", "o", "device", "size"];
/// A key given, and the keys it needs beside it (Docker's `mandatoryOpts`).
const NEEDS: &[(&str, &[&str])] = &[
    ("device", &["type"]),
    ("type", &["device"]),
    ("o", &["device", "type"]),
];

/// A volume's mount, from its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalMount {
    /// A tmpfs with these flags (`MS_*`) and data (`size=...`).
    Tmpfs { flags: u64, data: String },
    /// A bind of the host path `device`.
    Bind {
        device: PathBuf,
        recursive: bool,
        readonly: bool,
    },
}

impl LocalMount {
    /// The mount the options ask for; `None` without options (a plain directory). Docker's
    /// words for what it refuses, berth's for what it does not mount.
    pub fn from_options(opts: &BTreeMap<String, String>) -> Result<Option<LocalMount>, String> {
        if opts.is_empty() {
            return Ok(None);
        }
        for key in opts.keys() {
            if !VALID.contains(&key.as_str()) {
                return Err(format!("invalid option: {key:?}"));
            }
        }
        if opts.contains_key("size") {
            // Docker's answer on a file system without project quotas, which berth never
            // sets up.
            return Err("quota size requested but no quota support".into());
        }
        for (key, needs) in NEEDS {
            if opts.contains_key(*key) {
                for need in *needs {
                    if !opts.contains_key(*need) {
                        return Err(format!("missing required option: {need:?}"));
                    }
                }
            }
        }
        let kind = opts.get("type").map(String::as_str).unwrap_or("");
        let device = opts.get("device").map(String::as_str).unwrap_or("");
        let o = opts.get("o").map(String::as_str).unwrap_or("");
        let words: Vec<&str> = o.split(',').filter(|w| !w.is_empty()).collect();
        match kind {
            "tmpfs" => {
                let mut flags = 0u64;
                let mut data = Vec::new();
                for w in &words {
                    match *w {
                        "ro" => flags |= libc::MS_RDONLY,
                        "rw" => flags &= !libc::MS_RDONLY,
                        "nosuid" => flags |= libc::MS_NOSUID,
                        "nodev" => flags |= libc::MS_NODEV,
                        "noexec" => flags |= libc::MS_NOEXEC,
                        "suid" | "dev" | "exec" | "defaults" => {}
                        "noatime" => flags |= libc::MS_NOATIME,
                        "relatime" => flags |= libc::MS_RELATIME,
                        w if matches!(
                            w.split_once('=').map(|(k, _)| k),
                            Some("size" | "nr_blocks" | "nr_inodes" | "mode" | "uid" | "gid")
                        ) =>
                        {
                            data.push(w.to_string())
                        }
                        other => {
                            return Err(format!(
                                "volume option o={o}: \"{other}\" is not a tmpfs option berth \
                                 applies: refused rather than ignored"
                            ))
                        }
                    }
                }
                Ok(Some(LocalMount::Tmpfs {
                    flags,
                    data: data.join(","),
                }))
            }
            "none" | "bind" => {
                let recursive = words.contains(&"rbind");
                if !recursive && !words.contains(&"bind") {
                    return Err(format!(
                        "volume option type={kind} needs o=bind or o=rbind (a bind of the \
                         device); berth mounts no other kind of type={kind}"
                    ));
                }
                if let Some(other) = words
                    .iter()
                    .find(|w| !matches!(**w, "bind" | "rbind" | "ro" | "rw"))
                {
                    return Err(format!(
                        "volume option o={o}: \"{other}\" is not applied by berth to a bind: \
                         refused rather than ignored"
                    ));
                }
                if !device.starts_with('/') {
                    return Err(format!(
                        "volume option device={device}: a bind's device must be an absolute \
                         host path"
                    ));
                }
                Ok(Some(LocalMount::Bind {
                    device: PathBuf::from(device),
                    recursive,
                    readonly: words.contains(&"ro"),
                }))
            }
            other => Err(format!(
                "volume option type={other} is not supported by berth yet (it mounts tmpfs and \
                 binds): refused rather than ignored"
            )),
        }
    }

    /// Mounts this on `data` (the volume's `_data`) in berthd's (the host's) mount
    /// namespace. A bind's device is opened once and mounted through that descriptor.
    pub fn mount(&self, data: &Path) -> std::io::Result<()> {
        match self {
            LocalMount::Tmpfs { flags, data: opts } => {
                let flags = MsFlags::from_bits_truncate(*flags as _);
                let opts = (!opts.is_empty()).then_some(opts.as_str());
                mount(Some("tmpfs"), data, Some("tmpfs"), flags, opts)?;
            }
            LocalMount::Bind {
                device,
                recursive,
                readonly,
            } => {
                let src = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_CLOEXEC | libc::O_DIRECTORY)
                    .open(device)?;
                let via = format!("/proc/self/fd/{}", src.as_raw_fd());
                let rec = if *recursive {
                    MsFlags::MS_REC
                } else {
                    MsFlags::empty()
                };
                mount(
                    Some(via.as_str()),
                    data,
                    None::<&str>,
                    MsFlags::MS_BIND | rec,
                    None::<&str>,
                )?;
                if *readonly {
                    let r = mount(
                        None::<&str>,
                        data,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
                        None::<&str>,
                    );
                    if let Err(e) = r {
                        let _ = umount2(data, MntFlags::MNT_DETACH);
                        return Err(e.into());
                    }
                }
            }
        }
        Ok(())
    }
}

/// Unmounts what is mounted on `data`, every layer of it; an error if something stays.
pub fn unmount(data: &Path) -> std::io::Result<()> {
    while mounted_at(data)? {
        umount2(data, MntFlags::empty())?;
    }
    Ok(())
}

/// A `/proc/self/mountinfo` field with its octal escapes (`\040` for a space: the kernel's
/// `mangle_path` writes space, tab, newline and backslash as `\ooo`) undone. A backslash
/// not followed by three octal digits making a byte is kept as it is. Bytes, not text: a
/// mount point need not be UTF-8.
fn unescape(field: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let byte = field
            .get(i + 1..i + 4)
            .filter(|_| field[i] == b'\\')
            .and_then(octal_byte);
        match byte {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(field[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(OsString::from_vec(out))
}

/// Three octal digits as the byte they make (`\377` at most).
fn octal_byte(digits: &[u8]) -> Option<u8> {
    let mut n: u32 = 0;
    for &d in digits {
        if !(b'0'..=b'7').contains(&d) {
            return None;
        }
        n = n * 8 + u32::from(d - b'0');
    }
    u8::try_from(n).ok()
}

fn mount_points() -> std::io::Result<Vec<PathBuf>> {
    let info = std::fs::read("/proc/self/mountinfo")?;
    Ok(info
        .split(|&b| b == b'\n')
        .filter_map(|l| l.split(|&b| b == b' ').nth(4))
        .map(unescape)
        .collect())
}

/// Whether `path` is a mount point.
pub fn mounted_at(path: &Path) -> std::io::Result<bool> {
    Ok(mount_points()?.iter().any(|m| m == path))
}

/// Whether anything is mounted at or below `dir`: a directory that is must not be deleted,
/// or the deletion would go into what is mounted there.
pub fn mounted_under(dir: &Path) -> std::io::Result<bool> {
    Ok(mount_points()?.iter().any(|m| m.starts_with(dir)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Result<Option<LocalMount>, String> {
        LocalMount::from_options(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn dockers_checks_and_words() {
        assert_eq!(opts(&[]).unwrap(), None);
        assert_eq!(
            opts(&[("bogus", "1")]).unwrap_err(),
            "invalid option: \"bogus\""
        );
        assert_eq!(
            opts(&[("type", "tmpfs")]).unwrap_err(),
            "missing required option: \"device\""
        );
        assert_eq!(
            opts(&[("o", "size=1m"), ("device", "tmpfs")]).unwrap_err(),
            "missing required option: \"type\""
        );
        assert_eq!(
            opts(&[("size", "1g"), ("type", "tmpfs"), ("device", "tmpfs")]).unwrap_err(),
            "quota size requested but no quota support"
        );
    }

    #[test]
    fn tmpfs_and_binds_are_mounted_and_the_rest_refused() {
        assert_eq!(
            opts(&[
                ("type", "tmpfs"),
                ("device", "tmpfs"),
                ("o", "size=1m,uid=1000,nosuid")
            ])
            .unwrap(),
            Some(LocalMount::Tmpfs {
                flags: libc::MS_NOSUID,
                data: "size=1m,uid=1000".into()
            })
        );
        assert_eq!(
            opts(&[("type", "none"), ("device", "/srv/x"), ("o", "bind,ro")]).unwrap(),
            Some(LocalMount::Bind {
                device: "/srv/x".into(),
                recursive: false,
                readonly: true
            })
        );
        assert!(
            opts(&[("type", "nfs"), ("device", ":/x"), ("o", "addr=1.2.3.4")])
                .unwrap_err()
                .contains("type=nfs is not supported by berth yet")
        );
        assert!(opts(&[("type", "none"), ("device", "/x")])
            .unwrap_err()
            .contains("needs o=bind"));
        assert!(opts(&[("type", "none"), ("device", "rel"), ("o", "bind")])
            .unwrap_err()
            .contains("absolute"));
        assert!(
            opts(&[("type", "tmpfs"), ("device", "t"), ("o", "lowerdir=/x")])
                .unwrap_err()
                .contains("lowerdir")
        );
        assert!(
            opts(&[("type", "none"), ("device", "/x"), ("o", "bind,nosuid")])
                .unwrap_err()
                .contains("nosuid")
        );
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        let path = |s: &str| PathBuf::from(s);
        assert_eq!(unescape(b"/a\\040b"), path("/a b"));
        assert_eq!(unescape(b"/plain"), path("/plain"));
        assert_eq!(
            unescape(b"/tab\\011and\\134slash"),
            path("/tab\tand\\slash")
        );
    }

    #[test]
    fn a_mountinfo_escape_at_the_end_of_the_field_is_undone() {
        assert_eq!(unescape(b"/mnt/a\\040"), PathBuf::from("/mnt/a "));
        assert_eq!(unescape(b"\\040"), PathBuf::from(" "));
    }

    #[test]
    fn a_backslash_without_three_octal_digits_is_kept() {
        // 8 and 9 are no octal digits; \400 is past a byte; too short at the end.
        assert_eq!(unescape(b"/a\\089"), PathBuf::from("/a\\089"));
        assert_eq!(unescape(b"/a\\190"), PathBuf::from("/a\\190"));
        assert_eq!(unescape(b"/a\\400"), PathBuf::from("/a\\400"));
        assert_eq!(unescape(b"/a\\04"), PathBuf::from("/a\\04"));
        assert_eq!(unescape(b"/a\\"), PathBuf::from("/a\\"));
    }

    #[test]
    fn a_mount_point_that_is_not_utf8_keeps_its_bytes() {
        use std::os::unix::ffi::OsStrExt;
        let p = unescape(b"/a\\377\xfe");
        assert_eq!(p.as_os_str().as_bytes(), b"/a\xff\xfe");
    }
}
