//! A container's changes (`docker diff`) and the layer `docker commit` makes of them.
//!
//! Docker's overlay2 driver compares the mounted container with the mounted parent
//! (`NaiveDiffDriver.Changes` -> `archive.ChangesDirs`). Only the rw layer can differ, so this
//! walks the rw layer alone and compares each entry with the merged view of the layers below
//! (the init layer, then the image's: [`crate::merged`]), with Docker's rules:
//! - absent below: `A`, and so is everything inside it;
//! - present below: `C` when the mode (type and permission bits), owner, device number or
//!   `security.capability` differ, or, for a non-directory, the size or the mtime (equal when
//!   the same, or the same second with one side's nanoseconds 0); a directory's size and
//!   mtime do not count;
//! - a whiteout (0:0 character device) of a name present below: `D`; an opaque directory
//!   deletes every name below that it does not have itself;
//! - a directory with a change inside that is neither `A` nor `C` itself is reported `C`,
//!   before what is inside.
//!
//! The runtime's mount points in the rw layer (`/etc/hosts`, `/proc`, ...) belong to the
//! init layer ([`crate::initlayer`]): never reported, never committed.
//!
//! The walk hands each change to a [`Sink`], parents first: `docker diff` collects them
//! (sorted by path), `commit` writes them into a tar at once (AUFS whiteouts for `D`), so a
//! commit holds no list of the container's files.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::initlayer;
use crate::merged::{
    at, check_followed, is_opaque, is_whiteout, lstat_at, open_dir_at, too_deep, xattr_at, Layers,
    MergedDir, MAX_DEPTH,
};
use crate::tarfs::TarWriter;

/// Docker's change kinds (`Kind` 0, 1, 2 in `GET /containers/{id}/changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// `C`
    Modified,
    /// `A`
    Added,
    /// `D`
    Deleted,
}

impl ChangeKind {
    /// The API's number: 0 modified, 1 added, 2 deleted.
    pub fn code(self) -> u8 {
        match self {
            ChangeKind::Modified => 0,
            ChangeKind::Added => 1,
            ChangeKind::Deleted => 2,
        }
    }

    /// The letter `docker diff` prints.
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Modified => 'C',
            ChangeKind::Added => 'A',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// One change of a container's filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute inside the container: `/etc/passwd`.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// The rw layer's entry a change (`A`, `C`) names.
pub(crate) struct Source<'a> {
    /// The directory holding it.
    pub dir: &'a File,
    /// Its name there.
    pub name: &'a OsStr,
    /// Its `lstat`.
    pub meta: &'a Metadata,
}

/// What receives the changes of a walk, parents before their contents.
pub(crate) trait Sink {
    /// `rel` is relative to the root; `source` is `None` for a deletion.
    fn change(
        &mut self,
        rel: &Path,
        kind: ChangeKind,
        source: Option<Source<'_>>,
    ) -> io::Result<()>;
}

/// A directory whose `C` waits for a change inside it.
struct Pending {
    rel: PathBuf,
    dir: File,
    name: OsString,
    meta: Metadata,
    reported: bool,
}

struct Walker<'a> {
    below: Layers,
    sink: &'a mut dyn Sink,
    pending: Vec<Pending>,
}

/// Walks the rw layer `upper` against `below` (top first; `init` is the index of the init
/// layer in it), handing every change to `sink`.
pub(crate) fn walk(
    upper: &Path,
    below: &[PathBuf],
    init: Option<usize>,
    sink: &mut dyn Sink,
) -> io::Result<()> {
    let root = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(upper)
        .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", upper.display())))?;
    let below = Layers::open(below, init)?;
    let old_root = below.root()?;
    let opaque = is_opaque(&root)?;
    let mut w = Walker {
        below,
        sink,
        pending: Vec::new(),
    };
    w.dir(Path::new(""), &root, Some(&old_root), opaque)
}

/// Docker's `statDifferent`, and its `sameFsTime` for the mtimes.
fn stat_different(old: &Metadata, new: &Metadata) -> bool {
    let same_time = || {
        (old.mtime(), old.mtime_nsec()) == (new.mtime(), new.mtime_nsec())
            || (old.mtime() == new.mtime() && (old.mtime_nsec() == 0 || new.mtime_nsec() == 0))
    };
    old.mode() != new.mode()
        || old.uid() != new.uid()
        || old.gid() != new.gid()
        || old.rdev() != new.rdev()
        || (!old.is_dir() && (!same_time() || old.len() != new.len()))
}

const CAPABILITY: &str = "security.capability";

impl Walker<'_> {
    fn dir(
        &mut self,
        rel: &Path,
        upper: &File,
        below: Option<&MergedDir>,
        opaque: bool,
    ) -> io::Result<()> {
        let mut names: Vec<OsString> = Vec::new();
        for e in fs::read_dir(at(upper, OsStr::new(".")))? {
            names.push(e?.file_name());
        }
        names.sort();
        // An opaque directory deletes what lies below it that it does not have itself.
        let mut deleted: Vec<OsString> = Vec::new();
        if let (true, Some(below)) = (opaque, below) {
            for name in below.entries(&self.below)?.into_keys() {
                if names.binary_search(&name).is_err() {
                    deleted.push(name);
                }
            }
        }
        let (mut u, mut d) = (names.into_iter().peekable(), deleted.into_iter().peekable());
        loop {
            let take_deleted = match (u.peek(), d.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => false,
                (None, Some(_)) => true,
                (Some(a), Some(b)) => b < a,
            };
            if take_deleted {
                let name = d.next().expect("peeked");
                self.report(&rel.join(&name), ChangeKind::Deleted, None)?;
            } else {
                let name = u.next().expect("peeked");
                self.entry(rel, upper, &name, below)?;
            }
        }
    }

    fn entry(
        &mut self,
        rel: &Path,
        upper: &File,
        name: &OsStr,
        below: Option<&MergedDir>,
    ) -> io::Result<()> {
        let path = rel.join(name);
        let Some(meta) = lstat_at(upper, name)? else {
            return Ok(()); // gone meanwhile (a running container)
        };
        let old = match below {
            Some(b) => b.lookup(name, &self.below)?,
            None => None,
        };
        if is_whiteout(&meta) {
            if old.is_some() {
                self.report(&path, ChangeKind::Deleted, None)?;
            }
            return Ok(());
        }
        let kind = if initlayer::is_mount_point(&path, meta.is_dir()) {
            None
        } else {
            match (&old, below) {
                (None, _) | (_, None) => Some(ChangeKind::Added),
                (Some(o), Some(b)) => {
                    let changed = stat_different(&o.meta, &meta)
                        || xattr_at(b.holder(o.part), name, CAPABILITY)?
                            != xattr_at(upper, name, CAPABILITY)?;
                    changed.then_some(ChangeKind::Modified)
                }
            }
        };
        if let Some(kind) = kind {
            let source = Source {
                dir: upper,
                name,
                meta: &meta,
            };
            self.report(&path, kind, Some(source))?;
        }
        if !meta.is_dir() {
            return Ok(());
        }
        let shown = Path::new("/").join(&path);
        if path.components().count() >= MAX_DEPTH {
            return Err(too_deep(&shown));
        }
        let Some(sub) = open_dir_at(upper, name)? else {
            return Ok(());
        };
        check_followed(&sub, &shown)?;
        let opaque = is_opaque(&sub)?;
        let old_dir = match (kind, &old, below) {
            (Some(ChangeKind::Added), _, _) => None,
            (_, Some(o), Some(b)) if o.meta.is_dir() => b.child(name, &shown)?,
            _ => None,
        };
        if kind.is_none() {
            self.pending.push(Pending {
                rel: path.clone(),
                dir: upper.try_clone()?,
                name: name.to_os_string(),
                meta: meta.clone(),
                reported: false,
            });
        }
        let result = self.dir(&path, &sub, old_dir.as_ref(), opaque);
        if kind.is_none() {
            self.pending.pop();
        }
        result
    }

    /// Hands a change to the sink, after the `C` of each directory around it not yet reported.
    fn report(
        &mut self,
        rel: &Path,
        kind: ChangeKind,
        source: Option<Source<'_>>,
    ) -> io::Result<()> {
        for p in self.pending.iter_mut().filter(|p| !p.reported) {
            p.reported = true;
            let source = Source {
                dir: &p.dir,
                name: &p.name,
                meta: &p.meta,
            };
            self.sink
                .change(&p.rel, ChangeKind::Modified, Some(source))?;
        }
        self.sink.change(rel, kind, source)
    }
}

/// Collects the changes for `docker diff`.
#[derive(Default)]
pub(crate) struct ChangeList(pub Vec<Change>);

impl Sink for ChangeList {
    fn change(&mut self, rel: &Path, kind: ChangeKind, _: Option<Source<'_>>) -> io::Result<()> {
        self.0.push(Change {
            path: Path::new("/").join(rel).to_string_lossy().into_owned(),
            kind,
        });
        Ok(())
    }
}

/// Writes the changes as a layer tar.
pub(crate) struct LayerTar<W: Write> {
    pub tar: TarWriter<W>,
    /// The mtime of whiteout entries (Docker gives them the time of the commit).
    pub now: u64,
}

impl<W: Write> Sink for LayerTar<W> {
    fn change(
        &mut self,
        rel: &Path,
        kind: ChangeKind,
        source: Option<Source<'_>>,
    ) -> io::Result<()> {
        match (kind, source) {
            (ChangeKind::Deleted, _) => self.tar.whiteout(rel, self.now),
            (_, Some(s)) => self.tar.append(rel, s.dir, s.name, s.meta),
            (_, None) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn whiteout(path: &Path) {
        nix::sys::stat::mknod(
            path,
            nix::sys::stat::SFlag::S_IFCHR,
            nix::sys::stat::Mode::empty(),
            0,
        )
        .unwrap();
    }

    fn changes(upper: &Path, below: &[PathBuf], init: Option<usize>) -> Vec<String> {
        let mut list = ChangeList::default();
        walk(upper, below, init, &mut list).unwrap();
        let mut out: Vec<Change> = list.0;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out.into_iter()
            .map(|c| format!("{} {}", c.kind.letter(), c.path))
            .collect()
    }

    /// Copies a lower entry's metadata onto its rw copy, as overlay's copy-up does.
    fn copy_up_dir(lower: &Path, upper: &Path) {
        fs::create_dir_all(upper).unwrap();
        let m = fs::metadata(lower).unwrap();
        fs::set_permissions(upper, fs::Permissions::from_mode(m.mode())).unwrap();
    }

    #[test]
    fn changes_follow_dockers_rules() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test needs root (whiteouts and trusted xattrs)"
        );
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        let init = crate::initlayer::ensure(&tmp.path().join("store")).unwrap();
        for d in ["etc", "usr/lib", "opaque/sub", "same", "bin"] {
            fs::create_dir_all(lower.join(d)).unwrap();
        }
        fs::write(lower.join("etc/passwd"), "root").unwrap();
        fs::write(lower.join("etc/gone"), "x").unwrap();
        fs::write(lower.join("opaque/old"), "x").unwrap();
        fs::write(lower.join("same/file"), "x").unwrap();
        fs::write(lower.join("bin/sh"), "x").unwrap();
        fs::create_dir_all(&upper).unwrap();
        // A new file in an existing directory, a change, a deletion.
        copy_up_dir(&lower.join("etc"), &upper.join("etc"));
        fs::write(upper.join("etc/new"), "n").unwrap();
        fs::write(upper.join("etc/passwd"), "root:x").unwrap();
        whiteout(&upper.join("etc/gone"));
        // A whole new tree.
        fs::create_dir_all(upper.join("data/deep")).unwrap();
        fs::write(upper.join("data/deep/f"), "f").unwrap();
        // An opaque directory: what was below is deleted, its own content added.
        copy_up_dir(&lower.join("opaque"), &upper.join("opaque"));
        xattr::set(upper.join("opaque"), crate::merged::OPAQUE_XATTR, b"y").unwrap();
        fs::write(upper.join("opaque/mine"), "m").unwrap();
        // A copied-up directory with nothing changed is not reported.
        copy_up_dir(&lower.join("same"), &upper.join("same"));
        // A chmod of a file.
        copy_up_dir(&lower.join("bin"), &upper.join("bin"));
        fs::copy(lower.join("bin/sh"), upper.join("bin/sh")).unwrap();
        let m = fs::metadata(lower.join("bin/sh")).unwrap();
        let t = nix::sys::time::TimeSpec::new(m.mtime(), m.mtime_nsec());
        nix::sys::stat::utimensat(
            None,
            &upper.join("bin/sh"),
            &t,
            &t,
            nix::sys::stat::UtimensatFlags::NoFollowSymlink,
        )
        .unwrap();
        fs::set_permissions(upper.join("bin/sh"), fs::Permissions::from_mode(0o4755)).unwrap();
        // The runtime's mount points are the init layer's.
        fs::create_dir_all(upper.join("proc")).unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        fs::write(upper.join("etc/resolv.conf"), "").unwrap();
        let got = changes(&upper, &[init, lower], Some(0));
        assert_eq!(
            got,
            [
                "C /bin",
                "C /bin/sh",
                "A /data",
                "A /data/deep",
                "A /data/deep/f",
                "C /etc",
                "D /etc/gone",
                "A /etc/new",
                "C /etc/passwd",
                "C /opaque",
                "A /opaque/mine",
                "D /opaque/old",
                "D /opaque/sub",
            ]
        );
    }

    #[test]
    fn mount_points_alone_change_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        let init = crate::initlayer::ensure(&tmp.path().join("store")).unwrap();
        fs::create_dir_all(&lower).unwrap();
        fs::write(lower.join("x"), "x").unwrap();
        // An image without /etc, /dev, /proc, /sys: the runtime made them all.
        for d in ["etc", "dev", "proc", "sys"] {
            fs::create_dir_all(upper.join(d)).unwrap();
            fs::set_permissions(upper.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        }
        for f in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
            fs::write(upper.join(f), "").unwrap();
        }
        assert!(changes(&upper, &[init, lower], Some(0)).is_empty());
    }

    #[test]
    fn a_tree_deeper_than_berth_unpacks_is_an_error_not_a_crash() {
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        fs::create_dir_all(&lower).unwrap();
        let deep: PathBuf = std::iter::repeat_n("d", MAX_DEPTH + 10).collect();
        fs::create_dir_all(upper.join(deep)).unwrap();
        let mut list = ChangeList::default();
        let e = walk(&upper, &[lower], None, &mut list).unwrap_err();
        assert!(
            e.to_string().contains("more than 256 nested directories"),
            "{e}"
        );
    }

    #[test]
    fn a_layer_tar_carries_whiteouts_and_parents_first() {
        assert!(nix::unistd::geteuid().is_root(), "this test needs root");
        let tmp = tempfile::tempdir().unwrap();
        let (upper, lower) = (tmp.path().join("upper"), tmp.path().join("lower"));
        fs::create_dir_all(lower.join("a")).unwrap();
        fs::write(lower.join("a/old"), "x").unwrap();
        copy_up_dir(&lower.join("a"), &upper.join("a"));
        whiteout(&upper.join("a/old"));
        fs::write(upper.join("a/new"), "hello").unwrap();
        fs::hard_link(upper.join("a/new"), upper.join("a/same")).unwrap();
        let mut sink = LayerTar {
            tar: TarWriter::new(Vec::new()),
            now: 1,
        };
        walk(&upper, &[lower], None, &mut sink).unwrap();
        let bytes = sink.tar.finish().unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let names: Vec<(String, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("a/".to_string(), tar::EntryType::Directory),
                ("a/new".to_string(), tar::EntryType::Regular),
                ("a/.wh.old".to_string(), tar::EntryType::Regular),
                ("a/same".to_string(), tar::EntryType::Link),
            ]
        );
    }
}
