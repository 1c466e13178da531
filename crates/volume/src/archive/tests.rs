//! The archive both ways on real trees (as root: owners, devices, security.capability).

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, Timespec, Timestamps};

use super::*;

fn open_dir(path: &Path) -> OwnedFd {
    crate::open_dir(rustix::fs::CWD, path).unwrap()
}

fn set_mtime(path: &Path, sec: i64, nsec: i64) {
    let t = Timespec {
        tv_sec: sec,
        tv_nsec: nsec,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

/// A valid `security.capability` (v2): cap_net_bind_service permitted and effective.
fn capability() -> Vec<u8> {
    let mut v = Vec::new();
    for word in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        v.extend_from_slice(&word.to_le_bytes());
    }
    v
}

/// A tree with every kind of entry a volume holds.
fn sample(root: &Path) {
    fs::create_dir_all(root.join("dir/sub")).unwrap();
    fs::write(root.join("dir/file"), b"hello volume\n").unwrap();
    fs::write(
        root.join("big"),
        (0..300_000u32).map(|i| i as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    fs::hard_link(root.join("dir/file"), root.join("dir/sub/hardlink")).unwrap();
    // Sparse: 8 MiB with data at 1 MiB and at the end, and one ending in a hole.
    let f = fs::File::create(root.join("sparse")).unwrap();
    f.set_len(8 << 20).unwrap();
    f.write_all_at(&[7u8; 5000], 1 << 20).unwrap();
    f.write_all_at(b"end", (8 << 20) - 3).unwrap();
    let f = fs::File::create(root.join("tailhole")).unwrap();
    f.write_all_at(&[1u8; 4096], 0).unwrap();
    f.set_len(1 << 20).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs-link")).unwrap();
    std::os::unix::fs::symlink("dir/../nowhere", root.join("dangling")).unwrap();
    let long = "n".repeat(150);
    fs::write(root.join(&long), b"long name").unwrap();
    std::os::unix::fs::symlink("t".repeat(200), root.join("long-target")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("null"),
        rustix::fs::FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        root.join("dir/file"),
        Some(rustix::fs::Uid::from_raw(1234)),
        Some(rustix::fs::Gid::from_raw(5678)),
        AtFlags::empty(),
    )
    .unwrap();
    rustix::fs::chownat(
        rustix::fs::CWD,
        root.join("abs-link"),
        Some(rustix::fs::Uid::from_raw(42)),
        Some(rustix::fs::Gid::from_raw(43)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    fs::set_permissions(root.join("big"), fs::Permissions::from_mode(0o4751)).unwrap();
    fs::set_permissions(root.join("dir/sub"), fs::Permissions::from_mode(0o1777)).unwrap();
    rustix::fs::setxattr(
        root.join("big"),
        "user.note",
        b"\x00binary\xff",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        root.join("dir"),
        "user.dir",
        b"on a dir",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    rustix::fs::setxattr(
        root.join(&long),
        "security.capability",
        &capability(),
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    set_mtime(&root.join("abs-link"), 1_000_000_000, 5);
    set_mtime(&root.join("big"), 1_600_000_000, 123_456_789);
    set_mtime(&root.join("dir/sub"), 1_500_000_000, 1);
    set_mtime(&root.join("dir"), 1_400_000_000, 999_999_999);
    set_mtime(root, 1_300_000_000, 42);
}

/// Everything a round trip keeps, per path (the root as `.`).
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let rel = if rel.is_empty() { ".".to_string() } else { rel };
        let ft = md.file_type();
        let mut d = format!(
            "mode={:o} uid={} gid={} mtime={}.{} nlink={}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.mtime(),
            md.mtime_nsec(),
            if ft.is_dir() { 0 } else { md.nlink() },
        );
        if ft.is_symlink() {
            d += &format!(" -> {}", fs::read_link(&p).unwrap().display());
        } else if ft.is_file() {
            let content = fs::read(&p).unwrap();
            d += &format!(" size={} sum={}", content.len(), checksum(&content));
            d += &format!(" blocks={}", md.blocks());
        } else if !ft.is_dir() {
            d += &format!(" rdev={}", md.rdev());
        }
        if !ft.is_symlink() {
            let mut list = vec![0u8; 4096];
            let n = rustix::fs::listxattr(&p, &mut list[..]).unwrap_or(0);
            let mut names: Vec<String> = list[..n]
                .split(|&b| b == 0)
                .filter(|n| !n.is_empty())
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect();
            names.sort();
            for n in names {
                let mut v = vec![0u8; 4096];
                let len = rustix::fs::getxattr(&p, n.as_str(), &mut v[..]).unwrap();
                d += &format!(" {n}={:?}", &v[..len]);
            }
        }
        if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(rel, d);
    }
    out
}

fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn export(root: &Path, compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = compression.encoder(&mut out).unwrap();
    write_tree(open_dir(root), &mut enc).unwrap();
    enc.finish().unwrap();
    out
}

fn import(archive: &[u8], root: &Path, limit: u64) -> Result<(), ImportError> {
    fs::create_dir_all(root).unwrap();
    let stream = decoder(std::io::BufReader::new(archive)).unwrap();
    read_tree(stream, &open_dir(root), limit)
}

#[test]
fn a_round_trip_keeps_owners_modes_times_xattrs_links_holes_and_devices() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir(&a).unwrap();
    sample(&a);
    let archive = export(&a, Compression::None);
    import(&archive, &b, 1 << 30).unwrap();
    let (da, db) = (describe(&a), describe(&b));
    assert_eq!(da.len(), 14, "{da:#?}");
    assert_eq!(da, db);
    // The holes were holes in the archive too: far less than 8 MiB of it.
    assert!(archive.len() < 1 << 20, "{}", archive.len());
    let sparse = fs::metadata(b.join("sparse")).unwrap();
    assert!(sparse.blocks() * 512 < 64 << 10, "{}", sparse.blocks());
    // The same tree gives the same archive.
    assert_eq!(export(&a, Compression::None), archive);
}

#[test]
fn gnu_tar_reads_the_export_back_the_same() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    sample(&a);
    let archive = tmp.path().join("x.tar");
    fs::write(&archive, export(&a, Compression::None)).unwrap();
    let status = std::process::Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
        .arg(&archive)
        .arg("-C")
        .arg(&b)
        .status()
        .unwrap();
    assert!(status.success());
    // GNU tar 1.34 restores the xattrs too (`SCHILY.xattr.*`, security.capability included).
    let (mut da, mut db) = (describe(&a), describe(&b));
    // GNU tar leaves the root's time to the extraction.
    da.remove(".");
    db.remove(".");
    assert_eq!(da, db);
}

#[test]
fn gzip_and_zstd_are_told_by_their_magic() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    fs::create_dir(&a).unwrap();
    fs::write(a.join("f"), vec![b'z'; 100_000]).unwrap();
    for (i, c) in [Compression::Gzip, Compression::Zstd]
        .into_iter()
        .enumerate()
    {
        let archive = export(&a, c);
        assert_eq!(Compression::detect(&archive), c);
        assert!(archive.len() < 10_000);
        let b = tmp.path().join(format!("b{i}"));
        import(&archive, &b, 1 << 30).unwrap();
        assert_eq!(describe(&a), describe(&b));
    }
    assert_eq!("zstd".parse::<Compression>().unwrap(), Compression::Zstd);
    assert!("xz".parse::<Compression>().is_err());
}

/// A tar whose entries are named as given, raw (the tar crate's setters refuse `..`).
fn hostile(entries: &[(&str, EntryKind)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        let old = h.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        let data: &[u8] = match kind {
            EntryKind::File(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                data
            }
            EntryKind::Symlink(target) | EntryKind::Hardlink(target) => {
                h.set_entry_type(if matches!(kind, EntryKind::Symlink(_)) {
                    tar::EntryType::Symlink
                } else {
                    tar::EntryType::Link
                });
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                b""
            }
            EntryKind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                b""
            }
        };
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

enum EntryKind {
    File(&'static [u8]),
    Symlink(&'static str),
    Hardlink(&'static str),
    Dir,
}

#[test]
fn hostile_names_write_nothing_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("vol/_data");
    let outside = tmp.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            hostile(&[("../x", EntryKind::File(b"x"))]),
            "a `..` component",
        ),
        (
            hostile(&[("a/../../x", EntryKind::File(b"x"))]),
            "a `..` component",
        ),
        (
            hostile(&[("/tmp/x", EntryKind::File(b"x"))]),
            "an absolute path",
        ),
        (
            hostile(&[
                ("out", EntryKind::Symlink("../../outside")),
                ("out/x", EntryKind::File(b"x")),
            ]),
            "passes through a symlink",
        ),
        (
            hostile(&[
                ("d", EntryKind::Dir),
                ("d/abs", EntryKind::Symlink("/")),
                ("d/abs/tmp/x", EntryKind::File(b"x")),
            ]),
            "passes through a symlink",
        ),
        (
            hostile(&[("h", EntryKind::Hardlink("../../outside/target"))]),
            "a `..` component",
        ),
    ];
    fs::write(outside.join("target"), b"keep").unwrap();
    for (i, (archive, why)) in cases.iter().enumerate() {
        let dir = root.join(i.to_string());
        let e = import(archive, &dir, 1 << 20).unwrap_err();
        assert!(matches!(e, ImportError::Invalid(_)), "{e}");
        assert!(e.to_string().contains(why), "case {i}: {e}");
    }
    let left: Vec<_> = fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["target"]);
    assert_eq!(fs::read(outside.join("target")).unwrap(), b"keep");
    assert!(!tmp.path().join("x").exists());
    assert!(!tmp.path().join("vol/x").exists());
}

#[test]
fn a_symlink_is_kept_as_is_and_a_later_entry_replaces_it() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    let archive = hostile(&[
        ("etc", EntryKind::Symlink("/etc")),
        ("etc", EntryKind::File(b"now a file")),
        ("hard", EntryKind::Hardlink("etc")),
    ]);
    import(&archive, &root, 1 << 20).unwrap();
    assert_eq!(fs::read(root.join("etc")).unwrap(), b"now a file");
    assert_eq!(fs::metadata(root.join("hard")).unwrap().nlink(), 2);
}

#[test]
fn expansion_past_the_limit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    fs::create_dir(&a).unwrap();
    fs::write(a.join("zeros"), vec![0u8; 4 << 20]).unwrap();
    let archive = export(&a, Compression::Zstd);
    assert!(archive.len() < 4096, "{}", archive.len());
    let e = import(&archive, &tmp.path().join("b"), 1 << 20).unwrap_err();
    assert!(
        matches!(e, ImportError::TooLarge { limit } if limit == 1 << 20),
        "{e}"
    );
    assert!(e.to_string().contains("expands past 1048576 bytes"), "{e}");
}

#[test]
fn a_long_name_header_over_the_bound_is_refused_before_it_is_read_whole() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "a".repeat(2 << 20), &b"x"[..])
        .unwrap();
    let archive = b.into_inner().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let e = import(&archive, &tmp.path().join("b"), 1 << 30).unwrap_err();
    assert!(e.to_string().contains("exceed 1 MiB"), "{e}");
}

#[test]
fn holes_past_their_ratio_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    fs::create_dir(&a).unwrap();
    let f = fs::File::create(a.join("huge")).unwrap();
    f.set_len(1 << 40).unwrap();
    let archive = export(&a, Compression::None);
    assert!(archive.len() < 8192);
    let e = import(&archive, &tmp.path().join("b"), 1 << 20).unwrap_err();
    assert!(e.to_string().contains("its holes"), "{e}");
}

#[test]
fn an_import_stays_relative_to_its_directory_when_the_path_changes() {
    // The unpacker holds descriptors: the staging directory renamed away mid-import
    // (what a volume removal does) takes the rest of the import with it.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    let archive = hostile(&[("a", EntryKind::Dir), ("a/f", EntryKind::File(b"x"))]);
    fs::create_dir(&root).unwrap();
    let fd = open_dir(&root);
    fs::rename(&root, tmp.path().join("moved")).unwrap();
    read_tree(&archive[..], &fd, 1 << 20).unwrap();
    assert_eq!(fs::read(tmp.path().join("moved/a/f")).unwrap(), b"x");
    assert!(!root.exists());
}

#[test]
fn export_reads_through_no_symlink_swapped_in() {
    // A symlink to a directory outside is exported as a symlink, never walked.
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    fs::create_dir(&a).unwrap();
    fs::create_dir(tmp.path().join("secret")).unwrap();
    fs::write(tmp.path().join("secret/key"), b"k").unwrap();
    std::os::unix::fs::symlink("../secret", a.join("d")).unwrap();
    let archive = export(&a, Compression::None);
    let mut t = tar::Archive::new(&archive[..]);
    let names: Vec<String> = t
        .entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect();
    assert_eq!(names, ["./", "d"]);
}

#[test]
fn sparse_extents_come_from_seek_data() {
    let tmp = tempfile::tempdir().unwrap();
    let mut f = fs::File::create(tmp.path().join("s")).unwrap();
    f.seek(SeekFrom::Start(1 << 20)).unwrap();
    f.write_all(&[1; 4096]).unwrap();
    f.set_len(4 << 20).unwrap();
    f.sync_all().unwrap();
    let fd: OwnedFd = fs::File::open(tmp.path().join("s")).unwrap().into();
    let st = rustix::fs::fstat(&fd).unwrap();
    assert_eq!(
        export::data_extents(&fd, &st).unwrap(),
        Some(vec![(1 << 20, 4096)])
    );
    let mut content = Vec::new();
    fs::File::open(tmp.path().join("s"))
        .unwrap()
        .read_to_end(&mut content)
        .unwrap();
    assert_eq!(content.len(), 4 << 20);
}

#[test]
fn a_hard_link_whose_first_path_was_passed_over_is_written_whole() {
    // `a`, `b` and `c` are one inode; `a` is stat'ed, then removed before its open (a
    // container deleting it mid-export): `b` must carry the content, `c` link to `b`.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("a");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("a"), b"linked").unwrap();
    fs::hard_link(root.join("a"), root.join("b")).unwrap();
    fs::hard_link(root.join("a"), root.join("c")).unwrap();
    let dir = open_dir(&root);
    let st = rustix::fs::statat(&dir, c"a", AtFlags::SYMLINK_NOFOLLOW).unwrap();
    fs::remove_file(root.join("a")).unwrap();
    let mut archive = Vec::new();
    let mut w = export::TarWriter::new(&mut archive);
    w.regular(&dir, &c"a".to_owned(), b"a", &st).unwrap();
    for name in [c"b", c"c"] {
        let path = name.to_bytes().to_vec();
        assert!(w.entry(&dir, &name.to_owned(), &path).unwrap().is_none());
    }
    archive.extend_from_slice(&[0; 1024]);

    let mut t = tar::Archive::new(&archive[..]);
    let entries: Vec<(String, tar::EntryType, Option<String>)> = t
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned());
            let path = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            (path, e.header().entry_type(), link)
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("b".to_string(), tar::EntryType::Regular, None),
            ("c".to_string(), tar::EntryType::Link, Some("b".to_string())),
        ]
    );
    let back = tmp.path().join("back");
    import(&archive, &back, 1 << 20).unwrap();
    assert_eq!(fs::read(back.join("c")).unwrap(), b"linked");
    assert_eq!(fs::metadata(back.join("c")).unwrap().nlink(), 2);
}

#[test]
fn a_directory_replaced_by_a_later_entry_leaves_the_import_whole() {
    // Tar's last-wins: `d` a directory, then a file. The directory's time, set at the
    // end, goes to its descriptor, not to whatever the path names by then.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    let archive = hostile(&[("d", EntryKind::Dir), ("d", EntryKind::File(b"now a file"))]);
    import(&archive, &root, 1 << 20).unwrap();
    assert_eq!(fs::read(root.join("d")).unwrap(), b"now a file");
}

#[test]
fn directories_past_the_descriptors_kept_get_their_times_by_a_walk() {
    // More directories than import keeps open: the rest are found from the root again,
    // and one replaced meanwhile is passed over there too.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("r");
    let names: Vec<String> = (0..300).map(|i| format!("p/d{i:03}")).collect();
    let mut entries: Vec<(&str, EntryKind)> = vec![("p", EntryKind::Dir)];
    entries.extend(names.iter().map(|n| (n.as_str(), EntryKind::Dir)));
    entries.push(("p/d299", EntryKind::File(b"x")));
    import(&hostile(&entries), &root, 1 << 20).unwrap();
    // hostile() writes every entry with mtime 0.
    for name in &names[..299] {
        let md = fs::symlink_metadata(root.join(name)).unwrap();
        assert!(md.is_dir(), "{name}");
        assert_eq!(md.mtime(), 0, "{name}");
    }
    assert_eq!(fs::read(root.join("p/d299")).unwrap(), b"x");
    assert_eq!(fs::metadata(root.join("p")).unwrap().mtime(), 0);
}

#[test]
fn xattrs_of_symlinks_devices_and_fifos_make_the_round_trip() {
    // `trusted.*`: `user.*` attributes are for files and directories only. The symlink's
    // target does not exist: its own attributes are read and set, never followed.
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir(&a).unwrap();
    std::os::unix::fs::symlink("nowhere", a.join("link")).unwrap();
    for (name, kind, dev) in [
        (
            "null",
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::makedev(1, 3),
        ),
        ("fifo", rustix::fs::FileType::Fifo, 0),
    ] {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            a.join(name),
            kind,
            Mode::from_raw_mode(0o600),
            dev,
        )
        .unwrap();
    }
    let names = ["link", "null", "fifo"];
    for name in names {
        let value = format!("on {name}");
        rustix::fs::lsetxattr(
            a.join(name),
            "trusted.berth",
            value.as_bytes(),
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    let archive = export(&a, Compression::None);
    import(&archive, &b, 1 << 20).unwrap();
    for name in names {
        let mut value = [0u8; 64];
        let n = rustix::fs::lgetxattr(b.join(name), "trusted.berth", &mut value[..]).unwrap();
        assert_eq!(&value[..n], format!("on {name}").as_bytes(), "{name}");
    }
    assert_eq!(fs::read_link(b.join("link")).unwrap(), Path::new("nowhere"));
    assert!(fs::symlink_metadata(b.join("null"))
        .unwrap()
        .file_type()
        .is_char_device());
}
