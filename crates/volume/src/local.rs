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
use std::os::fd::AsRawFd;
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

/// `/proc/self/mountinfo`'s octal escapes (`\040` for a space) undone.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn mount_points() -> std::io::Result<Vec<PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
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
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}
