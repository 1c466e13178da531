//! The local side of `cp`, as the docker CLI's `archive` package does it: what a local
//! source or destination is (`CopyInfoSourcePath`, `CopyInfoDestinationPath`), how the
//! archive must be renamed for the copy to land where asked (`PrepareArchiveCopy`,
//! `RebaseArchiveEntries`), the tar of a local path (`TarResource`) and the extraction of
//! one (`Untar` without changing owners, never replacing a directory with a file or the
//! other way round).
//!
//! The extraction stays below its destination directory: each entry's parent is opened
//! with `openat2(RESOLVE_BENEATH)` from the destination's descriptor (a symlink in the
//! archive that points elsewhere cannot be written through) and the entry is made by name
//! in that descriptor without following it.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use berth_api::archive::gopath::{self, base, clean, split_dir_entry};
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timestamps};

/// What a side of a copy is (the docker CLI's `archive.CopyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyInfo {
    pub path: Vec<u8>,
    pub exists: bool,
    pub is_dir: bool,
    /// The name the archive's first element must take (a followed symlink's, or the
    /// name a trailing `/` asked for).
    pub rebase_name: Vec<u8>,
}

/// A failure said as Go's `os` package says it: `lstat /x: no such file or directory`.
pub fn go_err(op: &str, path: &[u8], e: &io::Error) -> anyhow::Error {
    anyhow::anyhow!("{op} {}: {}", show(path), errno_text(e))
}

fn errno_text(e: &io::Error) -> String {
    // std says "No such file or directory (os error 2)"; Go says "no such file or directory".
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => text,
    }
}

pub fn show(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}

fn p(path: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(path))
}

/// Go's `filepath.EvalSymlinks` of an absolute path: every symlink resolved; the first
/// missing element is an error naming it.
pub fn eval_symlinks(path: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut todo: std::collections::VecDeque<Vec<u8>> = path
        .split(|b| *b == b'/')
        .filter(|c| !c.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    let mut done: Vec<u8> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        match c.as_slice() {
            b"." => continue,
            b".." => {
                done = gopath::dir(if done.is_empty() { b"/" } else { &done });
                if done == b"/" {
                    done.clear();
                }
                continue;
            }
            _ => {}
        }
        let mut next = done.clone();
        next.push(b'/');
        next.extend_from_slice(&c);
        let meta = fs::symlink_metadata(p(&next)).map_err(|e| go_err("lstat", &next, &e))?;
        if !meta.file_type().is_symlink() {
            done = next;
            continue;
        }
        links += 1;
        if links > 255 {
            anyhow::bail!("EvalSymlinks: too many links");
        }
        let target = fs::read_link(p(&next)).map_err(|e| go_err("readlink", &next, &e))?;
        let target = target.as_os_str().as_bytes();
        if target.starts_with(b"/") {
            done.clear();
        }
        for part in target.rsplit(|b| *b == b'/').filter(|x| !x.is_empty()) {
            todo.push_front(part.to_vec());
        }
    }
    Ok(if done.is_empty() { b"/".to_vec() } else { done })
}

/// `GetRebaseName`: `resolved` with the trailing `/.` or `/` of `path`, and the name the
/// archive must be renamed to when the last element changed.
pub fn rebase_name(path: &[u8], resolved: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut resolved = resolved.to_vec();
    if gopath::specifies_current_dir(path) && !gopath::specifies_current_dir(&resolved) {
        resolved.extend_from_slice(b"/.");
    }
    if path.ends_with(b"/") && !resolved.ends_with(b"/") {
        resolved.push(b'/');
    }
    let rebase = if base(path) != base(&resolved) {
        base(path).to_vec()
    } else {
        Vec::new()
    };
    (resolved, rebase)
}

/// `CopyInfoSourcePath`: the local source, symlinks before its last element resolved (and
/// that one too with `-L`).
pub fn copy_info_source_path(path: &[u8], follow_link: bool) -> anyhow::Result<CopyInfo> {
    let (resolved, rebase) = if follow_link {
        let resolved = eval_symlinks(path)?;
        rebase_name(path, &resolved)
    } else {
        // filepath.Split: the directory keeps its trailing slash.
        let cut = path.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
        let (dir, last) = path.split_at(cut);
        let mut resolved = eval_symlinks(dir)?;
        if resolved != b"/" {
            resolved.push(b'/');
        }
        resolved.extend_from_slice(last);
        let rebase = if path.ends_with(b"/") && base(path) != base(&resolved) {
            base(path).to_vec()
        } else {
            Vec::new()
        };
        (resolved, rebase)
    };
    let meta = fs::symlink_metadata(p(&resolved)).map_err(|e| go_err("lstat", &resolved, &e))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: meta.is_dir(),
        rebase_name: rebase,
    })
}

/// `CopyInfoDestinationPath`: the local destination, its symlinks followed (10 at most);
/// it need not exist, but its parent must be a directory.
pub fn copy_info_destination_path(path: &[u8]) -> anyhow::Result<CopyInfo> {
    let original = path.to_vec();
    let mut path = path.to_vec();
    let mut stat = fs::symlink_metadata(p(&path));
    let mut n = 0;
    while let Ok(m) = &stat {
        if !m.file_type().is_symlink() {
            break;
        }
        if n > 10 {
            anyhow::bail!("too many symlinks in {}", show(&original));
        }
        n += 1;
        let target = fs::read_link(p(&path)).map_err(|e| go_err("readlink", &path, &e))?;
        let mut target = target.as_os_str().as_bytes().to_vec();
        if !target.starts_with(b"/") {
            target = gopath::join(&split_dir_entry(&path).0, &target);
        }
        path = target;
        stat = fs::symlink_metadata(p(&path));
    }
    match stat {
        Ok(m) => Ok(CopyInfo {
            path,
            exists: true,
            is_dir: m.is_dir(),
            ..Default::default()
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = split_dir_entry(&path).0;
            let m = fs::metadata(p(&parent)).map_err(|e| go_err("stat", &parent, &e))?;
            if !m.is_dir() {
                anyhow::bail!("not a directory");
            }
            Ok(CopyInfo {
                path,
                ..Default::default()
            })
        }
        Err(e) => Err(go_err("lstat", &path, &e)),
    }
}

/// A renaming of the archive's entries: the first occurrence of `from` in each name (and
/// hard link target) becomes `to` (`RebaseArchiveEntries`; `/` as `from` prefixes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebase {
    pub from: Vec<u8>,
    pub to: Vec<u8>,
}

impl Rebase {
    pub fn new(from: &[u8], to: &[u8]) -> Rebase {
        Rebase {
            from: if from == b"/" {
                Vec::new()
            } else {
                from.to_vec()
            },
            to: to.to_vec(),
        }
    }

    pub fn apply(&self, name: &[u8]) -> Vec<u8> {
        if self.from.is_empty() {
            return [self.to.as_slice(), name].concat();
        }
        match name.windows(self.from.len()).position(|w| w == self.from) {
            Some(i) => [&name[..i], &self.to, &name[i + self.from.len()..]].concat(),
            None => name.to_vec(),
        }
    }
}

/// `PrepareArchiveCopy`: the directory to extract into and how the archive's entries must
/// be renamed.
pub fn prepare_archive_copy(
    src: &CopyInfo,
    dst: &CopyInfo,
) -> anyhow::Result<(Vec<u8>, Option<Rebase>)> {
    let (dst_dir, dst_base) = split_dir_entry(&dst.path);
    let (_, src_base) = split_dir_entry(&src.path);
    let src_base = if src.rebase_name.is_empty() {
        src_base
    } else {
        src.rebase_name.clone()
    };
    if dst.exists && dst.is_dir {
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        anyhow::bail!("cannot copy directory");
    }
    if !dst.exists && !src.is_dir && gopath::asserts_directory(&dst.path) {
        anyhow::bail!("no such directory");
    }
    Ok((dst_dir, Some(Rebase::new(&src_base, &dst_base))))
}

/// A tar header's name and link name fields.
const NAME_FIELD: usize = 100;

/// Writes one tar entry with its name as given (long names in PAX records, as Go's
/// writer does).
fn append(
    tar: &mut tar::Builder<impl Write>,
    mut h: tar::Header,
    name: &[u8],
    link: &[u8],
    xattrs: &[(String, Vec<u8>)],
    data: impl Read,
) -> io::Result<()> {
    let mut pax: Vec<(String, Vec<u8>)> = xattrs.to_vec();
    if name.len() > NAME_FIELD {
        pax.push(("path".into(), name.to_vec()));
    }
    if link.len() > NAME_FIELD {
        pax.push(("linkpath".into(), link.to_vec()));
    }
    if !pax.is_empty() {
        tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    let fields = h.as_old_mut();
    let n = name.len().min(NAME_FIELD);
    fields.name[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(NAME_FIELD);
    fields.linkname[..l].copy_from_slice(&link[..l]);
    h.set_cksum();
    tar.append(&h, data)
}

/// `TarResource` of `src` (then renamed by `rebase`) to `out`: the docker CLI's archive of a
/// local path.
pub fn tar_resource(src: &CopyInfo, rebase: Option<&Rebase>, out: impl Write) -> io::Result<()> {
    let (source_dir, source_base) = split_dir_entry(&src.path);
    let rename = (!src.rebase_name.is_empty()).then(|| {
        let replacement = if src.rebase_name == b"/" {
            Vec::new()
        } else {
            src.rebase_name.clone()
        };
        (source_base.clone(), replacement)
    });
    let mut w = Walker {
        tar: tar::Builder::new(io::BufWriter::new(out)),
        seen: HashMap::new(),
        rename,
        rebase: rebase.cloned(),
    };
    let mut root = source_dir.clone();
    if !root.ends_with(b"/") {
        root.push(b'/');
    }
    root.extend_from_slice(&source_base);
    let rel = source_base.clone();
    w.walk(&root, &rel, source_base == b".")?;
    w.tar.finish()?;
    w.tar.into_inner()?.flush()
}

struct Walker<W: Write> {
    tar: tar::Builder<io::BufWriter<W>>,
    /// inode -> the name it was first archived as
    seen: HashMap<(u64, u64), Vec<u8>>,
    /// TarResource's own rename of the base (`RebaseNames`)
    rename: Option<(Vec<u8>, Vec<u8>)>,
    /// PrepareArchiveCopy's rename
    rebase: Option<Rebase>,
}

impl<W: Write> Walker<W> {
    /// Archives `path` as `rel` and, for a directory, everything below it (sorted, depth
    /// first, symlinks not followed: Go's `filepath.WalkDir`).
    fn walk(&mut self, path: &[u8], rel: &[u8], dot: bool) -> io::Result<()> {
        let meta = match fs::symlink_metadata(p(path)) {
            Ok(m) => m,
            Err(e) => {
                eprintln!("Can't add file {} to tar: {e}", show(path));
                return Ok(());
            }
        };
        self.add(path, rel, &meta)?;
        if !meta.is_dir() {
            return Ok(());
        }
        let mut names: Vec<Vec<u8>> = match fs::read_dir(p(path)) {
            Ok(entries) => entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().as_bytes().to_vec())
                .collect(),
            Err(_) => return Ok(()),
        };
        names.sort();
        for name in names {
            let child = gopath::join(path, &name);
            let mut child_rel = if rel == b"." && dot {
                b"./".to_vec()
            } else {
                let mut r = rel.to_vec();
                r.push(b'/');
                r
            };
            child_rel.extend_from_slice(&name);
            self.walk(&child, &child_rel, dot)?;
        }
        Ok(())
    }

    fn add(&mut self, path: &[u8], rel: &[u8], meta: &fs::Metadata) -> io::Result<()> {
        let mut name = rel.to_vec();
        if let Some((from, to)) = &self.rename {
            name = Rebase {
                from: from.clone(),
                to: to.clone(),
            }
            .apply(&name);
        }
        if let Some(r) = &self.rebase {
            name = r.apply(&name);
        }
        let ft = meta.file_type();
        if ft.is_socket() {
            return Ok(());
        }
        if meta.is_dir() && !name.ends_with(b"/") {
            name.push(b'/');
        }
        let mut h = tar::Header::new_ustar();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        let mut xattrs = Vec::new();
        if let Ok(caps) = xattr_caps(path) {
            xattrs.push(("SCHILY.xattr.security.capability".to_string(), caps));
        }
        if ft.is_symlink() {
            let target = fs::read_link(p(path))?;
            h.set_entry_type(tar::EntryType::Symlink);
            return append(
                &mut self.tar,
                h,
                &name,
                target.as_os_str().as_bytes(),
                &xattrs,
                io::empty(),
            );
        }
        if meta.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            return append(&mut self.tar, h, &name, b"", &xattrs, io::empty());
        }
        if meta.nlink() > 1 {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.seen.get(&key).cloned() {
                h.set_entry_type(tar::EntryType::Link);
                return append(&mut self.tar, h, &name, &first, &xattrs, io::empty());
            }
            self.seen.insert(key, name.clone());
        }
        if ft.is_file() {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(meta.len());
            let file = fs::File::open(p(path))?;
            return append(
                &mut self.tar,
                h,
                &name,
                b"",
                &xattrs,
                file.take(meta.len()).chain(io::repeat(0)).take(meta.len()),
            );
        }
        let (t, dev) = if ft.is_char_device() {
            (tar::EntryType::Char, true)
        } else if ft.is_block_device() {
            (tar::EntryType::Block, true)
        } else {
            (tar::EntryType::Fifo, false)
        };
        h.set_entry_type(t);
        if dev {
            h.set_device_major(rustix::fs::major(meta.rdev()))?;
            h.set_device_minor(rustix::fs::minor(meta.rdev()))?;
        }
        append(&mut self.tar, h, &name, b"", &xattrs, io::empty())
    }
}

/// `security.capability` of a path (not following a symlink).
fn xattr_caps(path: &[u8]) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    let n = rustix::fs::lgetxattr(p(path), "security.capability", &mut buf[..])?;
    buf.truncate(n);
    Ok(buf)
}

/// Extracts `input` into the directory `dest` as the docker CLI's `CopyTo` does (owners not
/// changed, a directory and a non-directory never replace each other), renaming entries by
/// `rebase`.
pub fn untar(input: impl Read, dest: &[u8], rebase: Option<&Rebase>) -> anyhow::Result<()> {
    let dir: OwnedFd = fs::File::open(p(dest))
        .map_err(|e| go_err("open", dest, &e))?
        .into();
    let dest = clean(dest);
    let mut archive = tar::Archive::new(input);
    // (parent below the destination, name, mtime)
    let mut dirs: Vec<(Vec<u8>, Vec<u8>, u64)> = Vec::new();
    for entry in archive.entries()? {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let mut name = entry.path_bytes().into_owned();
        if let Some(r) = rebase {
            name = r.apply(&name);
        }
        let mut link = entry.link_name_bytes().map(|l| l.into_owned());
        if kind == tar::EntryType::Link {
            if let (Some(r), Some(l)) = (rebase, link.as_mut()) {
                *l = r.apply(l);
            }
        }
        let cleaned = clean(&name);
        let rel = cleaned.strip_prefix(b"/").unwrap_or(&cleaned).to_vec();
        if rel == b".." || rel.starts_with(b"../") {
            anyhow::bail!("{:?} is outside of {:?}", show(&cleaned), show(&dest));
        }
        let full = gopath::join(&dest, &rel);
        if rel == b"." {
            if kind == tar::EntryType::Directory {
                continue;
            }
            anyhow::bail!(
                "cannot overwrite directory {:?} with non-directory {:?}",
                show(&full),
                show(&dest)
            );
        }
        let (parent_rel, leaf) = match rel.iter().rposition(|b| *b == b'/') {
            Some(i) => (rel[..i].to_vec(), rel[i + 1..].to_vec()),
            None => (Vec::new(), rel.clone()),
        };
        let parent = open_parent(dir.as_fd(), &parent_rel, &dest)?;
        let is_dir = kind == tar::EntryType::Directory;
        let existing = rustix::fs::statat(&parent, leaf.as_slice(), AtFlags::SYMLINK_NOFOLLOW).ok();
        let mut merge = false;
        if let Some(st) = existing {
            let existing_dir = (st.st_mode & libc_s_ifmt()) == 0o040000;
            if existing_dir && !is_dir {
                anyhow::bail!(
                    "cannot overwrite directory {:?} with non-directory {:?}",
                    show(&full),
                    show(&dest)
                );
            }
            if !existing_dir && is_dir {
                anyhow::bail!(
                    "cannot overwrite non-directory {:?} with directory {:?}",
                    show(&full),
                    show(&dest)
                );
            }
            merge = existing_dir && is_dir;
            if !merge {
                rustix::fs::unlinkat(&parent, leaf.as_slice(), AtFlags::empty())
                    .map_err(|e| go_err("unlinkat", &full, &e.into()))?;
            }
        }
        let header = entry.header().clone();
        let mode = Mode::from_raw_mode(header.mode().unwrap_or(0o644) & 0o7777);
        let mtime = header.mtime().unwrap_or(0);
        let times = Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: mtime as i64,
                tv_nsec: 0,
            },
        };
        let leaf_name = leaf.as_slice();
        match kind {
            tar::EntryType::Directory => {
                if !merge {
                    rustix::fs::mkdirat(&parent, leaf_name, Mode::from_raw_mode(0o700))
                        .map_err(|e| go_err("mkdir", &full, &e.into()))?;
                }
                let fd = open_beneath(
                    parent.as_fd(),
                    leaf_name,
                    OFlags::RDONLY | OFlags::DIRECTORY,
                )
                .map_err(|e| go_err("open", &full, &e))?;
                set_xattrs(&mut entry, &fd);
                rustix::fs::fchmod(&fd, mode).map_err(|e| go_err("chmod", &full, &e.into()))?;
                dirs.push((parent_rel.clone(), leaf.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat2(
                    &parent,
                    leaf_name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
                )
                .map_err(|e| go_err("open", &full, &e.into()))?;
                let mut file = fs::File::from(fd);
                io::copy(&mut entry, &mut file)?;
                set_xattrs(&mut entry, &file);
                rustix::fs::fchmod(&file, mode).map_err(|e| go_err("chmod", &full, &e.into()))?;
                rustix::fs::futimens(&file, &times)
                    .map_err(|e| go_err("chtimes", &full, &e.into()))?;
            }
            tar::EntryType::Symlink => {
                let link = link
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("{}: a link without a target", show(&full)))?;
                let from = gopath::join(&gopath::dir(&full), &link);
                if !within(&from, &dest) {
                    anyhow::bail!("invalid symlink {:?} -> {:?}", show(&full), show(&link));
                }
                rustix::fs::symlinkat(link.as_slice(), &parent, leaf_name)
                    .map_err(|e| go_err("symlink", &full, &e.into()))?;
                rustix::fs::utimensat(&parent, leaf_name, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| go_err("chtimes", &full, &e.into()))?;
            }
            tar::EntryType::Link => {
                let link = link
                    .filter(|l| !l.is_empty())
                    .ok_or_else(|| anyhow::anyhow!("{}: a link without a target", show(&full)))?;
                let target = gopath::join(&dest, &link);
                if !within(&target, &dest) {
                    anyhow::bail!("invalid hardlink {:?} -> {:?}", show(&target), show(&link));
                }
                let trel = target[dest.len()..]
                    .strip_prefix(b"/")
                    .unwrap_or(&target[dest.len()..])
                    .to_vec();
                let (tdir, tleaf) = match trel.iter().rposition(|b| *b == b'/') {
                    Some(i) => (trel[..i].to_vec(), trel[i + 1..].to_vec()),
                    None => (Vec::new(), trel.clone()),
                };
                let tparent = open_parent(dir.as_fd(), &tdir, &dest)?;
                rustix::fs::linkat(
                    &tparent,
                    tleaf.as_slice(),
                    &parent,
                    leaf_name,
                    AtFlags::empty(),
                )
                .map_err(|e| go_err(&format!("link {}", show(&target)), &full, &e.into()))?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(&parent, leaf_name, file_type, mode, dev)
                    .map_err(|e| go_err("mknod", &full, &e.into()))?;
            }
            other => anyhow::bail!("unhandled tar header type {}", other.as_byte()),
        }
    }
    // Directory times last (making their children changed them), each by name in its
    // parent, as that parent is now.
    for (parent_rel, leaf, mtime) in dirs {
        let t = rustix::fs::Timespec {
            tv_sec: mtime as i64,
            tv_nsec: 0,
        };
        let path: &[u8] = if parent_rel.is_empty() {
            b"."
        } else {
            &parent_rel
        };
        if let Ok(parent) = rustix::fs::openat2(
            &dir,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
        ) {
            let _ = rustix::fs::utimensat(
                &parent,
                leaf.as_slice(),
                &Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            );
        }
    }
    Ok(())
}

fn libc_s_ifmt() -> u32 {
    0o170000
}

/// Whether `path` is `dir` or below it (both clean and absolute).
fn within(path: &[u8], dir: &[u8]) -> bool {
    dir == b"/" || path == dir || (path.starts_with(dir) && path.get(dir.len()) == Some(&b'/'))
}

fn open_beneath(dir: BorrowedFd<'_>, name: &[u8], flags: OFlags) -> io::Result<OwnedFd> {
    Ok(rustix::fs::openat2(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
    )?)
}

/// The directory `rel` below the destination, made (0755) if missing; never reached
/// through a symlink that leads out of the destination.
fn open_parent(dir: BorrowedFd<'_>, rel: &[u8], dest: &[u8]) -> anyhow::Result<OwnedFd> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let path: &[u8] = if rel.is_empty() { b"." } else { rel };
    match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
        Ok(fd) => return Ok(fd),
        Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(go_err("open", &gopath::join(dest, rel), &e.into())),
    }
    let mut prefix: Vec<u8> = Vec::new();
    for part in rel.split(|b| *b == b'/').filter(|x| !x.is_empty()) {
        let above: &[u8] = if prefix.is_empty() { b"." } else { &prefix };
        let parent = rustix::fs::openat2(dir, above, flags, Mode::empty(), resolve)
            .map_err(|e| go_err("mkdir", &gopath::join(dest, above), &e.into()))?;
        match rustix::fs::mkdirat(&parent, part, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(go_err("mkdir", &gopath::join(dest, &prefix), &e.into())),
        }
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(part);
    }
    rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve)
        .map_err(|e| go_err("open", &gopath::join(dest, rel), &e.into()))
}

/// The entry's `SCHILY.xattr.*` records, set where the filesystem and privileges allow
/// (Docker ignores what is refused).
fn set_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>, fd: impl AsFd) {
    let Ok(Some(pax)) = entry.pax_extensions() else {
        return;
    };
    for ext in pax.flatten() {
        let Ok(key) = ext.key() else { continue };
        if let Some(attr) = key.strip_prefix("SCHILY.xattr.") {
            let _ = rustix::fs::fsetxattr(
                &fd,
                attr,
                ext.value_bytes(),
                rustix::fs::XattrFlags::empty(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_are_renamed_as_dockers() {
        let r = Rebase::new(b"x", b"y");
        assert_eq!(r.apply(b"x/a"), b"y/a");
        assert_eq!(r.apply(b"x"), b"y");
        let root = Rebase::new(b"/", b"out");
        assert_eq!(root.apply(b"/etc/"), b"out/etc/");
        let dot = Rebase::new(b".", b"d");
        assert_eq!(dot.apply(b"./a.txt"), b"d/a.txt");
    }

    #[test]
    fn the_copy_rules_are_dockers() {
        let file = CopyInfo {
            path: b"/src/f".to_vec(),
            exists: true,
            ..Default::default()
        };
        let dir = CopyInfo {
            is_dir: true,
            path: b"/src/d".to_vec(),
            ..file.clone()
        };
        let to = |path: &str, exists: bool, is_dir: bool| CopyInfo {
            path: path.as_bytes().to_vec(),
            exists,
            is_dir,
            ..Default::default()
        };
        let (d, r) = prepare_archive_copy(&file, &to("/dst", true, true)).unwrap();
        assert_eq!((d, r), (b"/dst".to_vec(), None));
        let (d, r) = prepare_archive_copy(&file, &to("/dst/new", false, false)).unwrap();
        assert_eq!((d, r), (b"/dst".to_vec(), Some(Rebase::new(b"f", b"new"))));
        let e = prepare_archive_copy(&file, &to("/dst/new/", false, false)).unwrap_err();
        assert_eq!(e.to_string(), "no such directory");
        let e = prepare_archive_copy(&dir, &to("/dst/file", true, false)).unwrap_err();
        assert_eq!(e.to_string(), "cannot copy directory");
        let (d, r) = prepare_archive_copy(&dir, &to("/dst/new/", false, false)).unwrap();
        assert_eq!((d, r), (b"/dst".to_vec(), Some(Rebase::new(b"d", b"new"))));
    }

    #[test]
    fn a_local_copy_round_trips_and_stays_below_its_destination() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), "content").unwrap();
        std::os::unix::fs::symlink("/etc", src.join("abs")).unwrap();
        let info = copy_info_source_path(src.as_os_str().as_bytes(), false).unwrap();
        let mut tar = Vec::new();
        tar_resource(&info, None, &mut tar).unwrap();
        let dst = tmp.path().join("dst");
        std::fs::create_dir(&dst).unwrap();
        untar(&tar[..], dst.as_os_str().as_bytes(), None).unwrap();
        assert_eq!(
            std::fs::read_to_string(dst.join("src/sub/f")).unwrap(),
            "content"
        );
        // A crafted archive writing through a symlink it planted is refused.
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, "esc", tmp.path()).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "esc/planted", &b"x"[..]).unwrap();
        let crafted = b.into_inner().unwrap();
        let dst2 = tmp.path().join("dst2");
        std::fs::create_dir(&dst2).unwrap();
        assert!(untar(&crafted[..], dst2.as_os_str().as_bytes(), None).is_err());
        assert!(!tmp.path().join("planted").exists());
    }
}
