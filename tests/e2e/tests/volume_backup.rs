//! berth's own volume backup and restore (`berth volume export` / `import`, `GET
//! /volumes/{name}/export`, `POST /volumes/{name}/import`): a byte-for-byte round trip,
//! the refusals that keep a copy consistent, `--pause` with a writer running (and two
//! exports pausing it), a client leaving mid-export, a start refused during a copy, and
//! archives that try to write outside the volume.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_e2e::{require_root, text, wait_for_within, Daemon};

fn data(d: &Daemon, volume: &str) -> PathBuf {
    d.root().join("volumes").join(volume).join("_data")
}

fn status(d: &Daemon, name: &str) -> String {
    d.ok(&["inspect", "-f", "{{.State.Status}}", name])
        .trim()
        .to_string()
}

fn xattrs(p: &Path) -> String {
    let mut list = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut list[..]).unwrap_or(0);
    let mut names: Vec<&[u8]> = list[..n]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    let mut out = String::new();
    for name in names {
        let mut v = vec![0u8; 4096];
        let len = rustix::fs::lgetxattr(p, name, &mut v[..]).unwrap();
        out += &format!(" {}={:?}", String::from_utf8_lossy(name), &v[..len]);
    }
    out
}

/// Per path: type and mode, owner, mtime to the nanosecond, link count, content (a hash),
/// allocated blocks, device number, link target, extended attributes.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = fs::symlink_metadata(&p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = md.file_type();
        let mut d = format!(
            "mode={:o} owner={}:{} mtime={}.{:09} nlink={}",
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
            let sum = content.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
            d += &format!(" size={} sum={sum:x} blocks={}", content.len(), md.blocks());
        } else if !ft.is_dir() {
            d += &format!(" rdev={}", md.rdev());
        }
        d += &xattrs(&p);
        if ft.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        out.insert(rel, d);
    }
    out
}

/// Fills `dir` with one of each: a hard link, a sparse file, xattrs (user.* and
/// security.capability), owners, set-id modes, a device, a FIFO, symlinks absolute and
/// dangling, a long name.
fn fill(dir: &Path) {
    fs::create_dir_all(dir.join("etc/deep")).unwrap();
    fs::write(dir.join("etc/conf"), b"key = value\n").unwrap();
    fs::hard_link(dir.join("etc/conf"), dir.join("etc/deep/conf.link")).unwrap();
    let f = fs::File::create(dir.join("sparse.img")).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(b"header", 0).unwrap();
    f.write_all_at(&[9u8; 8192], 32 << 20).unwrap();
    drop(f);
    fs::write(dir.join("bin"), vec![0x7fu8; 70_000]).unwrap();
    fs::set_permissions(dir.join("bin"), fs::Permissions::from_mode(0o6755)).unwrap();
    rustix::fs::setxattr(
        dir.join("etc/conf"),
        "user.origin",
        b"e2e",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let mut cap = Vec::new();
    for word in [0x0200_0001u32, 1 << 10, 0, 0, 0] {
        cap.extend_from_slice(&word.to_le_bytes());
    }
    rustix::fs::setxattr(
        dir.join("bin"),
        "security.capability",
        &cap,
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::os::unix::fs::chown(dir.join("etc/conf"), Some(1000), Some(1001)).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", dir.join("abs")).unwrap();
    std::os::unix::fs::lchown(dir.join("abs"), Some(7), Some(8)).unwrap();
    std::os::unix::fs::symlink("../../nowhere", dir.join("etc/dangling")).unwrap();
    fs::write(dir.join("x".repeat(180)), b"long").unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("null"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        dir.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
}

#[test]
fn export_and_import_round_trip_byte_for_byte() {
    require_root();
    let d = Daemon::start();
    d.ok(&["volume", "create", "src"]);
    fill(&data(&d, "src"));
    let archive = d.dir.path().join("src.tar");
    let archive = archive.to_str().unwrap();
    d.berth_ok(&["volume", "export", "src", "-o", archive]);
    // The holes stayed holes in the archive.
    assert!(fs::metadata(archive).unwrap().len() < 1 << 20);
    d.ok(&["volume", "create", "dst"]);
    d.berth_ok(&["volume", "import", "dst", archive]);
    let (a, b) = (describe(&data(&d, "src")), describe(&data(&d, "dst")));
    assert_eq!(a.len(), 12, "{a:#?}");
    assert_eq!(a, b);
    let sparse = fs::metadata(data(&d, "dst").join("sparse.img")).unwrap();
    assert!(
        sparse.blocks() * 512 < 1 << 20,
        "{} blocks",
        sparse.blocks()
    );
    assert_eq!(
        fs::metadata(data(&d, "dst").join("etc/conf"))
            .unwrap()
            .nlink(),
        2
    );

    // Compressed through stdout and stdin.
    for compress in ["zstd", "gzip"] {
        let out = d.berth(&["volume", "export", "src", "--compress", compress]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let name = format!("dst-{compress}");
        d.ok(&["volume", "create", &name]);
        let (code, _, err) =
            d.cli_with_input("berth", &["volume", "import", &name, "-"], &out.stdout);
        assert_eq!(code, 0, "{err}");
        assert_eq!(describe(&data(&d, &name)), a, "{compress}");
    }
}

#[test]
fn import_into_a_volume_with_content_needs_force_and_none_while_running() {
    require_root();
    let d = Daemon::start();
    d.busybox();
    d.ok(&["volume", "create", "full"]);
    fs::write(data(&d, "full").join("old"), b"old").unwrap();
    d.ok(&["volume", "create", "new"]);
    fs::write(data(&d, "new").join("fresh"), b"fresh").unwrap();
    let archive = d.dir.path().join("new.tar");
    let archive = archive.to_str().unwrap();
    d.berth_ok(&["volume", "export", "new", "-o", archive]);
    let (code, _, err) = d.cli("berth", &["volume", "import", "full", archive]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        "Error response from daemon: volume full is not empty: import refused (--force \
         replaces its content)"
    );
    assert!(data(&d, "full").join("old").exists());

    d.ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "-v",
        "full:/data:ro",
        "busybox",
        "sleep",
        "600",
    ]);
    let (code, _, err) = d.cli("berth", &["volume", "import", "--force", "full", archive]);
    assert_eq!(code, 1);
    assert!(
        err.contains("volume full is mounted by running container(s)") && err.contains("(user)"),
        "{err}"
    );
    d.ok(&["stop", "-t", "0", "user"]);
    d.berth_ok(&["volume", "import", "--force", "full", archive]);
    assert!(!data(&d, "full").join("old").exists());
    assert_eq!(fs::read(data(&d, "full").join("fresh")).unwrap(), b"fresh");
    // The stopped container mounts the new content at its next start.
    d.ok(&["start", "user"]);
    assert_eq!(d.ok(&["exec", "user", "cat", "/data/fresh"]), "fresh");
    // Nothing hidden left beside `_data`.
    let left: Vec<_> = fs::read_dir(d.root().join("volumes/full"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["_data", "volume.json"]);
}

/// A writer appending numbered lines to /data/log as fast as it can.
fn writer(d: &Daemon, name: &str, volume: &str) {
    let mount = format!("{volume}:/data");
    d.ok(&[
        "run",
        "-d",
        "--name",
        name,
        "-v",
        &mount,
        "busybox",
        "sh",
        "-c",
        "i=0; while :; do i=$((i+1)); echo line-$i >> /data/log; done",
    ]);
    wait_for_within("the writer to write", Duration::from_secs(20), || {
        fs::metadata(data(d, volume).join("log")).is_ok_and(|m| m.len() > 1000)
    });
}

fn log_of(archive: &[u8]) -> String {
    let mut t = tar::Archive::new(archive);
    for e in t.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("log") {
            let mut s = String::new();
            e.read_to_string(&mut s).unwrap();
            return s;
        }
    }
    panic!("no log in the archive");
}

#[test]
fn export_refuses_a_running_writer_and_pauses_it_when_asked() {
    require_root();
    let d = Daemon::start();
    d.busybox();
    d.ok(&["volume", "create", "busy"]);
    writer(&d, "writer", "busy");
    // Never `-o /dev/null`: the CLI writes beside the file and renames over it.
    let sink = d.dir.path().join("busy.tar");
    let sink = sink.to_str().unwrap();
    let (code, _, err) = d.cli("berth", &["volume", "export", "busy", "-o", sink]);
    assert_eq!(code, 1);
    assert!(
        err.contains("volume busy is in use read-write by running container(s)")
            && err.contains("(writer)")
            && err.contains("--pause"),
        "{err}"
    );
    let (status_code, body) = berth_e2e::api::curl(&d, "GET", "/volumes/busy/export", None);
    assert_eq!(status_code, 409, "{body}");

    let out = d.berth(&["volume", "export", "busy", "--pause"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A snapshot: every line whole and in order, none missing.
    let log = log_of(&out.stdout);
    assert!(
        log.ends_with('\n'),
        "a torn last line: {:?}",
        &log[log.len() - 20..]
    );
    let lines: Vec<&str> = log.lines().collect();
    assert!(lines.len() > 10);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("line-{}", i + 1));
    }
    // Thawed, and writing again.
    wait_for_within("the writer to be unpaused", Duration::from_secs(10), || {
        status(&d, "writer") == "running"
    });
    let before = fs::metadata(data(&d, "busy").join("log")).unwrap().len();
    wait_for_within("the writer to write again", Duration::from_secs(10), || {
        fs::metadata(data(&d, "busy").join("log")).unwrap().len() > before
    });

    // A container mounting it read-only, or paused, is no obstacle.
    d.ok(&["pause", "writer"]);
    d.berth_ok(&["volume", "export", "busy", "-o", sink]);
    assert_eq!(status(&d, "writer"), "paused");
    d.ok(&["rm", "-f", "writer"]);
    d.ok(&[
        "run",
        "-d",
        "--name",
        "reader",
        "-v",
        "busy:/data:ro",
        "busybox",
        "sleep",
        "600",
    ]);
    d.berth_ok(&["volume", "export", "busy", "-o", sink]);
}

/// An export request of its own, read until its body has begun: the copy runs (the
/// volume marked, its writers paused with `pause=1`) and then waits on this reader, which
/// reads no more until it is dropped.
fn held_export(d: &Daemon, volume: &str, query: &str) -> UnixStream {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET /volumes/{volume}/export{query} HTTP/1.1\r\nHost: berth\r\n\r\n"
    )
    .unwrap();
    let mut got = vec![0u8; 256 << 10];
    let mut n = 0;
    while n < got.len() {
        let k = s.read(&mut got[n..]).unwrap();
        assert_ne!(k, 0, "the export ended early: {}", text(&got[..n]));
        n += k;
    }
    assert!(
        text(&got[..64]).starts_with("HTTP/1.1 200"),
        "{}",
        text(&got[..64])
    );
    s
}

/// A volume far larger than the socket and the stream's buffers hold: an export of it
/// waits on its client.
fn big_volume(d: &Daemon, name: &str) {
    d.ok(&["volume", "create", name]);
    fs::write(data(d, name).join("blob"), vec![0x5au8; 128 << 20]).unwrap();
}

#[test]
fn a_client_leaving_mid_export_leaves_the_writer_unpaused() {
    require_root();
    let d = Daemon::start();
    d.busybox();
    big_volume(&d, "big");
    writer(&d, "writer", "big");
    let s = held_export(&d, "big", "?pause=1");
    assert_eq!(status(&d, "writer"), "paused");
    drop(s);
    wait_for_within("the writer to be unpaused", Duration::from_secs(15), || {
        status(&d, "writer") == "running"
    });
}

fn start_status(d: &Daemon, name: &str) -> u16 {
    berth_e2e::api::curl(d, "POST", &format!("/containers/{name}/start"), None).0
}

#[test]
fn a_start_is_refused_while_its_volume_is_exported_or_imported() {
    require_root();
    let d = Daemon::start();
    d.busybox();
    big_volume(&d, "big");
    d.ok(&[
        "create",
        "--name",
        "rw",
        "-v",
        "big:/data",
        "busybox",
        "true",
    ]);
    d.ok(&[
        "create",
        "--name",
        "ro",
        "-v",
        "big:/data:ro",
        "busybox",
        "true",
    ]);

    // Checked before the copy began, when no container ran: a start now would tear it.
    let export = held_export(&d, "big", "");
    let (code, _, err) = d.cli("docker", &["start", "rw"]);
    assert_ne!(code, 0);
    assert!(
        err.contains(
            "volume big is being exported: the container cannot start with it now; try \
             again when that ends"
        ),
        "{err}"
    );
    assert_eq!(start_status(&d, "rw"), 409);
    assert_eq!(status(&d, "rw"), "created");
    // A reader cannot tear it.
    d.ok(&["start", "ro"]);
    d.ok(&["wait", "ro"]);
    // The mark goes with the copy, which the client going away ends.
    drop(export);
    wait_for_within("the export to end", Duration::from_secs(15), || {
        start_status(&d, "rw") == 204
    });
    d.ok(&["wait", "rw"]);

    // An import waiting for its archive: it keeps out a reader too (it would keep the old
    // content mounted).
    let mut import = UnixStream::connect(&d.socket).unwrap();
    write!(
        import,
        "POST /volumes/big/import?force=1 HTTP/1.1\r\nHost: berth\r\n\
         Content-Type: application/x-tar\r\nContent-Length: 1048576\r\n\r\n"
    )
    .unwrap();
    wait_for_within("the import to begin", Duration::from_secs(15), || {
        fs::read_dir(d.root().join("volumes/big"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".import-"))
    });
    let (code, _, err) = d.cli("docker", &["start", "ro"]);
    assert_ne!(code, 0);
    assert!(err.contains("volume big is being imported"), "{err}");
    drop(import);
    wait_for_within("the import to end", Duration::from_secs(15), || {
        start_status(&d, "ro") == 204
    });
    // The cut import changed nothing.
    assert_eq!(
        fs::metadata(data(&d, "big").join("blob")).unwrap().len(),
        128 << 20
    );
}

#[test]
fn a_writer_paused_by_two_exports_is_thawed_when_the_last_ends() {
    require_root();
    let d = Daemon::start();
    d.busybox();
    big_volume(&d, "one");
    big_volume(&d, "two");
    d.ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "-v",
        "one:/one",
        "-v",
        "two:/two",
        "busybox",
        "sh",
        "-c",
        "while :; do echo x >> /one/log; echo x >> /two/log; done",
    ]);
    wait_for_within("the writer to write", Duration::from_secs(20), || {
        fs::metadata(data(&d, "two").join("log")).is_ok_and(|m| m.len() > 1000)
    });
    // Started once the first export's mark is gone, which goes after its pause holds.
    d.ok(&[
        "create",
        "--name",
        "probe",
        "-v",
        "one:/data",
        "busybox",
        "true",
    ]);
    let first = held_export(&d, "one", "?pause=1");
    assert_eq!(status(&d, "writer"), "paused");
    let second = held_export(&d, "two", "?pause=1");
    drop(first);
    wait_for_within("the first export to end", Duration::from_secs(15), || {
        start_status(&d, "probe") == 204
    });
    assert_eq!(
        status(&d, "writer"),
        "paused",
        "thawed while the second export still copies"
    );
    drop(second);
    wait_for_within("the writer to be unpaused", Duration::from_secs(15), || {
        status(&d, "writer") == "running"
    });
}

/// A tar with raw names (the tar crate's setters refuse `..`).
fn hostile(entries: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, symlink, content) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match symlink {
            Some(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target.as_bytes());
                h.set_size(0);
            }
            None => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(content.len() as u64);
            }
        }
        h.set_cksum();
        b.append(&h, *content).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn an_archive_leading_out_of_the_volume_writes_nothing_outside() {
    require_root();
    let d = Daemon::start();
    d.ok(&["volume", "create", "target"]);
    let outside = d.dir.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let out = outside.to_str().unwrap().to_string();
    let cases = [
        (
            hostile(&[("ok", None, b"fine"), ("../../../../escaped", None, b"x")]),
            "a `..` component is refused",
        ),
        (
            hostile(&[("/abs-escaped", None, b"x")]),
            "an absolute path is refused",
        ),
        (
            hostile(&[
                ("link", Some(out.as_str()), b""),
                ("link/escaped", None, b"x"),
            ]),
            "its path passes through a symlink",
        ),
        (
            hostile(&[
                ("up", Some("../../../../.."), b""),
                ("up/escaped", None, b"x"),
            ]),
            "its path passes through a symlink",
        ),
    ];
    for (archive, why) in &cases {
        let (code, _, err) =
            d.cli_with_input("berth", &["volume", "import", "target", "-"], archive);
        assert_eq!(code, 1);
        assert!(err.contains(why), "{err}");
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(fs::read_dir(data(&d, "target")).unwrap().count(), 0);
    assert!(!d.root().join("escaped").exists());
    assert!(!d.root().join("volumes/escaped").exists());
    assert!(!Path::new("/abs-escaped").exists());
    // The symlink itself is fine on its own, kept as it is, never followed.
    let archive = hostile(&[("link", Some(out.as_str()), b"")]);
    let (code, _, err) = d.cli_with_input("berth", &["volume", "import", "target", "-"], &archive);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        fs::read_link(data(&d, "target").join("link")).unwrap(),
        outside
    );
}
