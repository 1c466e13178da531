//! The build context as the docker CLI sends it: a directory walked with the
//! `.dockerignore` applied (go-archive's `TarWithOptions`: excluded directories skipped unless
//! an exception names something below them), written as a tar with relative names, owner
//! 0:0, the modes and mtimes (whole seconds) kept, symlinks as symlinks and hard links once;
//! devices, FIFOs and sockets left out. The tar is written by a thread into a pipe while the
//! request reads the other end: nothing of the content is held in memory.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};

use berth_api::dockerignore::Matcher;

/// A file the CLI adds to the context: the Dockerfile from outside it or from stdin, under
/// a random name, and the `.dockerignore` that names it (the daemon leaves both out of the
/// context, as Docker's `AddDockerfileToBuildContext` arranges).
#[derive(Debug, Clone)]
pub struct Injected {
    pub name: String,
    pub content: Vec<u8>,
}

/// What to send of a context directory.
pub struct Plan {
    pub root: PathBuf,
    pub matcher: Matcher,
    pub injected: Option<Injected>,
}

/// One entry the walk found.
struct Found<'a> {
    rel: &'a str,
    path: &'a Path,
    meta: &'a Metadata,
}

/// Walks `root` in name order, calling `visit` for every entry sent.
fn walk(
    root: &Path,
    matcher: &Matcher,
    visit: &mut dyn FnMut(Found) -> io::Result<()>,
) -> io::Result<()> {
    walk_dir(root, "", None, matcher, visit)
}

fn walk_dir(
    dir: &Path,
    rel_dir: &str,
    parent: Option<&berth_api::dockerignore::ParentMatches>,
    matcher: &Matcher,
    visit: &mut dyn FnMut(Found) -> io::Result<()>,
) -> io::Result<()> {
    let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map_err(|e| named(e, dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()
        .map_err(|e| named(e, dir))?;
    names.sort();
    for name in names {
        let Some(name_str) = name.to_str() else {
            continue;
        };
        let rel = if rel_dir.is_empty() {
            name_str.to_string()
        } else {
            format!("{rel_dir}/{name_str}")
        };
        let path = dir.join(&name);
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Gone since the listing: as Docker's walk, leave it out.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(named(e, &path)),
        };
        let (skip, info) = matcher.matches(&rel, parent);
        let is_dir = meta.file_type().is_dir();
        if skip {
            if is_dir && matcher.has_exclusions() && matcher.exception_below(&rel) {
                walk_dir(&path, &rel, Some(&info), matcher, visit)?;
            }
            continue;
        }
        visit(Found {
            rel: &rel,
            path: &path,
            meta: &meta,
        })?;
        if is_dir {
            walk_dir(&path, &rel, Some(&info), matcher, visit)?;
        }
    }
    Ok(())
}

fn named(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Docker's `ValidateContextDirectory`: every file sent can be read, before anything is sent.
pub fn validate(plan: &Plan) -> Result<()> {
    walk(&plan.root, &plan.matcher, &mut |f| {
        if f.meta.file_type().is_file() {
            if let Err(e) = File::open(f.path) {
                if e.kind() == io::ErrorKind::PermissionDenied {
                    return Err(io::Error::other(format!(
                        "no permission to read from '{}'",
                        f.path.display()
                    )));
                }
            }
        }
        Ok(())
    })
    .map_err(|e| anyhow!("checking context: {e}"))
}

/// How recent a change keeps a directory from being kept by berthd: a file changed again
/// within one timestamp tick would show the same stat.
const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// The key berthd keeps this context under: a digest of what the walk finds (names, kinds,
/// modes, sizes, links, device and inode numbers, modification and change times, and the
/// machine), so an unchanged directory has the same key and any change to a file sent (its
/// content changes its change time) a new one. `None` when it cannot be told: a Dockerfile
/// from elsewhere is added under a new name each time, or something changed too recently.
pub fn kept_key(plan: &Plan) -> Option<String> {
    use sha2::{Digest, Sha256};
    if plan.injected.is_some() {
        return None;
    }
    let settled = std::time::SystemTime::now()
        .checked_sub(SETTLED)?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    let settled = (settled.as_secs() as i64, settled.subsec_nanos() as i64);
    let mut h = Sha256::new();
    h.update(b"berth build context v1\0");
    h.update(std::fs::read("/etc/machine-id").unwrap_or_default());
    h.update(plan.root.as_os_str().as_encoded_bytes());
    let mut recent = false;
    walk(&plan.root, &plan.matcher, &mut |f| {
        let m = f.meta;
        if (m.mtime(), m.mtime_nsec()) >= settled || (m.ctime(), m.ctime_nsec()) >= settled {
            recent = true;
        }
        let link = if m.file_type().is_symlink() {
            std::fs::read_link(f.path)?.into_os_string()
        } else {
            Default::default()
        };
        h.update(f.rel.as_bytes());
        h.update([0]);
        for n in [
            m.mode() as i64,
            m.len() as i64,
            m.dev() as i64,
            m.ino() as i64,
            m.nlink() as i64,
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
        ] {
            h.update(n.to_le_bytes());
        }
        h.update(link.as_encoded_bytes());
        h.update([0]);
        Ok(())
    })
    .ok()?;
    (!recent).then(|| format!("{:x}", h.finalize()))
}

/// Starts writing the context tar; returns the reading end and the writer thread, whose
/// error (a file that went away, a read error) explains a build cut short.
pub fn stream(plan: Plan) -> Result<(File, std::thread::JoinHandle<io::Result<()>>)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    let writer = std::thread::spawn(move || {
        let out = io::BufWriter::with_capacity(256 << 10, File::from(write));
        let result = write_tar(&plan, out);
        match result {
            // The request stopped reading (the daemon refused the build): not our failure.
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            r => r,
        }
    });
    Ok((File::from(read), writer))
}

fn write_tar(plan: &Plan, out: impl Write) -> io::Result<()> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Complete);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut saw_ignore = false;
    walk(&plan.root, &plan.matcher, &mut |f| {
        if let (Some(inj), ".dockerignore") = (&plan.injected, f.rel) {
            if f.meta.file_type().is_file() {
                saw_ignore = true;
                let mut content = std::fs::read(f.path).map_err(|e| named(e, f.path))?;
                content.extend_from_slice(format!("\n{}\n", inj.name).as_bytes());
                let mut h = header(f.meta, tar::EntryType::Regular);
                h.set_size(content.len() as u64);
                return tar.append_data(&mut h, f.rel, content.as_slice());
            }
        }
        append(&mut tar, &mut links, f)
    })?;
    if let Some(inj) = &plan.injected {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut add = |name: &str, content: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(0o600);
            h.set_mtime(now);
            h.set_uid(0);
            h.set_gid(0);
            h.set_size(content.len() as u64);
            tar.append_data(&mut h, name, content)
        };
        if !saw_ignore {
            add(
                ".dockerignore",
                format!(".dockerignore\n{}\n", inj.name).as_bytes(),
            )?;
        }
        add(&inj.name, &inj.content)?;
    }
    tar.into_inner()?.flush()
}

fn header(meta: &Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.permissions().mode() & 0o7777);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(0);
    h
}

fn append(
    tar: &mut tar::Builder<impl Write>,
    links: &mut HashMap<(u64, u64), String>,
    f: Found,
) -> io::Result<()> {
    let ft = f.meta.file_type();
    if ft.is_dir() {
        let mut h = header(f.meta, tar::EntryType::Directory);
        tar.append_data(&mut h, format!("{}/", f.rel), io::empty())
    } else if ft.is_symlink() {
        let target = std::fs::read_link(f.path).map_err(|e| named(e, f.path))?;
        let mut h = header(f.meta, tar::EntryType::Symlink);
        tar.append_link(&mut h, f.rel, target)
    } else if ft.is_file() {
        if f.meta.nlink() > 1 {
            let key = (f.meta.dev(), f.meta.ino());
            if let Some(first) = links.get(&key) {
                let mut h = header(f.meta, tar::EntryType::Link);
                return tar.append_link(&mut h, f.rel, first);
            }
            links.insert(key, f.rel.to_string());
        }
        let file = File::open(f.path).map_err(|e| named(e, f.path))?;
        let mut h = header(f.meta, tar::EntryType::Regular);
        h.set_size(f.meta.len());
        // Exactly the size in the header (tar needs it exact): a file that grew meanwhile is
        // cut there, one that shrank padded with zeros.
        let len = f.meta.len();
        tar.append_data(&mut h, f.rel, file.take(len).chain(io::repeat(0)).take(len))
    } else {
        // Devices, FIFOs, sockets: not sent (a build has no use for them, and opening a FIFO
        // would hang).
        Ok(())
    }
}

/// A tar of one file, `Dockerfile` (0644), for a Dockerfile given on stdin as the whole
/// context (Docker's `GetContextFromReader`).
pub fn dockerfile_only(content: &[u8]) -> io::Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_mtime(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    );
    h.set_size(content.len() as u64);
    tar.append_data(&mut h, "Dockerfile", content)?;
    tar.into_inner()
}

/// Whether the first bytes of stdin are an archive: a compression's magic (gzip, bzip2, xz,
/// zstd) or a tar header with a valid checksum (Docker's `isArchive`).
pub fn is_archive(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 4] = [
        &[0x1f, 0x8b, 0x08],
        b"BZh",
        &[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00],
        &[0x28, 0xb5, 0x2f, 0xfd],
    ];
    if MAGIC.iter().any(|m| head.starts_with(m)) {
        return true;
    }
    if head.len() < 512 || head[..512].iter().all(|b| *b == 0) {
        return false;
    }
    let block = &head[..512];
    let field = String::from_utf8_lossy(&block[148..156]);
    let Ok(want) = i64::from_str_radix(field.trim_matches(|c: char| c == ' ' || c == '\0'), 8)
    else {
        return false;
    };
    let mut unsigned: i64 = 0;
    let mut signed: i64 = 0;
    for (i, b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { *b };
        unsigned += i64::from(b);
        signed += i64::from(b as i8);
    }
    want == unsigned || want == signed
}

/// A random `.dockerfile.<20 hex>` name, as the docker CLI's.
pub fn random_dockerfile_name() -> String {
    let mut bytes = [0u8; 10];
    let filled = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if filled.is_err() {
        // No /dev/urandom: the time and pid still make a name no context is likely to hold.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id());
        bytes.copy_from_slice(&t.to_le_bytes()[..10]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(".dockerfile.{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(plan: Plan) -> Vec<(String, tar::EntryType, u64, u64)> {
        let mut buf = Vec::new();
        write_tar(&plan, &mut buf).unwrap();
        let mut ar = tar::Archive::new(buf.as_slice());
        ar.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.uid().unwrap(),
                    h.gid().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn the_tar_keeps_links_and_skips_what_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir_all(root.join("docs/sub")).unwrap();
        std::fs::write(root.join("docs/a.md"), "a").unwrap();
        std::fs::write(root.join("docs/sub/keep.md"), "k").unwrap();
        std::fs::write(root.join("file"), "f").unwrap();
        std::fs::hard_link(root.join("file"), root.join("file2")).unwrap();
        std::os::unix::fs::symlink("file", root.join("link")).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("fifo"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let matcher = Matcher::new(&["docs".into(), "!docs/sub/keep.md".into()]).unwrap();
        let got = entries(Plan {
            root: root.to_path_buf(),
            matcher,
            injected: None,
        });
        let names: Vec<(&str, tar::EntryType)> =
            got.iter().map(|(n, t, ..)| (n.as_str(), *t)).collect();
        assert_eq!(
            names,
            [
                ("Dockerfile", tar::EntryType::Regular),
                ("docs/sub/keep.md", tar::EntryType::Regular),
                ("file", tar::EntryType::Regular),
                ("file2", tar::EntryType::Link),
                ("link", tar::EntryType::Symlink),
            ]
        );
        assert!(got.iter().all(|(_, _, u, g)| (*u, *g) == (0, 0)));
    }

    #[test]
    fn an_injected_dockerfile_is_named_in_the_dockerignore() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), "a").unwrap();
        let name = random_dockerfile_name();
        assert_eq!(name.len(), ".dockerfile.".len() + 20);
        let got = entries(Plan {
            root: dir.path().to_path_buf(),
            matcher: Matcher::default(),
            injected: Some(Injected {
                name: name.clone(),
                content: b"FROM scratch\n".to_vec(),
            }),
        });
        let names: Vec<&str> = got.iter().map(|(n, ..)| n.as_str()).collect();
        assert_eq!(names, ["a", ".dockerignore", name.as_str()]);
    }

    #[test]
    fn archives_are_told_from_dockerfiles_by_content() {
        assert!(is_archive(&[0x1f, 0x8b, 0x08, 0]));
        assert!(is_archive(b"BZh91AY"));
        assert!(!is_archive(b"FROM busybox\nRUN true\n"));
        let tar = dockerfile_only(b"FROM busybox\n").unwrap();
        assert!(is_archive(&tar));
        assert!(!is_archive(&[0u8; 1024]));
    }
}
