//! Image verbs through the real docker CLI: import, load (docker-save and OCI layout),
//! save, images and its filters, inspect, tag, rmi, history, prune.

use std::process::{Command, Stdio};

use berth_e2e::{busybox_rootfs_tar, text, Daemon};

#[test]
fn image_verbs_behave_like_dockers() {
    let d = Daemon::start();
    let rootfs = busybox_rootfs_tar(d.dir.path());

    // import from stdin, with --change and -m.
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "docker import -c 'CMD [\"echo\",\"from-cmd\"]' -c 'ENV A=1' -c 'LABEL team=x' -m 'first import' - bb:1 < {}",
            rootfs.display()
        ))
        .env("DOCKER_HOST", d.host())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(d.ok(&["run", "--rm", "bb:1"]), "from-cmd\n");
    assert_eq!(d.ok(&["run", "--rm", "bb:1", "sh", "-c", "echo $A"]), "1\n");
    assert_eq!(
        d.ok(&[
            "image",
            "inspect",
            "-f",
            "{{.Comment}} {{index .Config.Labels \"team\"}}",
            "bb:1"
        ])
        .trim(),
        "first import x"
    );
    assert_eq!(d.ok(&["history", "-q", "bb:1"]).trim(), &id[7..19]);

    // tag, images, filters, -q, --no-trunc.
    d.ok(&["tag", "bb:1", "bb:2"]);
    d.ok(&["tag", "bb:1", "example.org:5000/team/bb"]);
    let list = d.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = list.lines().collect();
    names.sort();
    assert_eq!(names, ["bb:1", "bb:2", "example.org:5000/team/bb:latest"]);
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 3);
    assert_eq!(
        d.ok(&["images", "-q", "--no-trunc"])
            .lines()
            .next()
            .unwrap(),
        id
    );
    assert_eq!(
        d.ok(&[
            "images",
            "--filter",
            "reference=bb:2",
            "--format",
            "{{.Tag}}"
        ])
        .trim(),
        "2"
    );
    assert_eq!(
        d.ok(&["images", "--filter", "label=team=x", "-q"])
            .lines()
            .count(),
        3
    );
    assert_eq!(d.ok(&["images", "--filter", "dangling=true", "-q"]), "");

    // rmi of one of several tags only untags; a container's image needs force.
    assert_eq!(d.ok(&["rmi", "bb:2"]).trim(), "Untagged: bb:2");
    d.ok(&["create", "--name", "user1", "bb:1"]);
    let o = d.docker(&["rmi", "example.org:5000/team/bb"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = d.docker(&["rmi", "bb:1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(
            "conflict: unable to remove repository reference \"bb:1\" (must force) - container"
        ),
        "{}",
        text(&o.stderr)
    );
    d.ok(&["rm", "user1"]);

    // save -> rmi -> load (docker-save layout), then an OCI-layout-only archive.
    let archive = d.dir.path().join("bb.tar");
    d.ok(&["save", "-o", archive.to_str().unwrap(), "bb:1"]);
    let removed = d.ok(&["rmi", "bb:1"]);
    assert!(
        removed.contains("Untagged: bb:1") && removed.contains(&format!("Deleted: {id}")),
        "{removed}"
    );
    assert!(d
        .ok(&["load", "-i", archive.to_str().unwrap()])
        .contains("Loaded image: bb:1"));
    assert_eq!(
        d.ok(&["images", "-q", "--no-trunc"]).trim(),
        id,
        "ids survive a round trip"
    );
    d.ok(&["rmi", "bb:1"]);
    let oci = d.dir.path().join("oci.tar");
    strip_docker_manifest(&archive, &oci);
    let loaded = d.ok(&["load", "-i", oci.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image"), "{loaded}");
    assert_eq!(d.ok(&["run", "--rm", &id[7..19], "echo", "oci"]), "oci\n");

    // prune: an image imported without a name is dangling; prune removes it, not bb:1.
    let dangling = d.ok(&["import", rootfs.to_str().unwrap()]);
    let dangling = dangling.trim();
    let listed = d.ok(&["images", "--filter", "dangling=true", "-q", "--no-trunc"]);
    assert_eq!(listed.trim(), dangling);
    let pruned = d.ok(&["image", "prune", "-f"]);
    assert!(pruned.contains(&format!("deleted: {dangling}")), "{pruned}");
    assert_eq!(d.ok(&["images", "--filter", "dangling=true", "-q"]), "");
    assert_eq!(d.ok(&["images", "-q"]).lines().count(), 1);

    // Errors a user can act on.
    let o = d.docker(&["image", "inspect", "nosuch:1"]);
    assert!(
        text(&o.stderr).contains("No such image: nosuch:1"),
        "{}",
        text(&o.stderr)
    );
    let o = d.docker(&["tag", "nosuch", "x:1"]);
    assert!(
        text(&o.stderr).contains("No such image"),
        "{}",
        text(&o.stderr)
    );
    let bad = d.dir.path().join("bad.tar");
    std::fs::write(&bad, b"this is not a tar archive at all").unwrap();
    let o = d.docker(&["load", "-i", bad.to_str().unwrap()]);
    assert_ne!(o.status.code(), Some(0));
}

/// Copies a `docker save` archive without its `manifest.json` and `repositories`: what is
/// left is a plain OCI image layout.
fn strip_docker_manifest(from: &std::path::Path, to: &std::path::Path) {
    let mut input = tar::Archive::new(std::fs::File::open(from).unwrap());
    let mut out = tar::Builder::new(std::fs::File::create(to).unwrap());
    let mut kept = 0;
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().to_path_buf();
        if path.as_os_str() == "manifest.json" || path.as_os_str() == "repositories" {
            continue;
        }
        let mut header = entry.header().clone();
        out.append_data(&mut header, &path, &mut entry).unwrap();
        kept += 1;
    }
    out.finish().unwrap();
    assert!(kept > 2, "the archive had an OCI layout");
}

#[test]
fn malicious_archives_write_nothing_outside_the_store() {
    let d = Daemon::start();
    let outside = d.dir.path().join("escaped");
    // A rootfs tar with a `..` entry.
    let evil = d.dir.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        // set_path refuses `..`, so write the name bytes directly.
        let name = b"../../../../../../../../../../tmp/berth-escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        b.finish().unwrap();
    }
    let o = d.docker(&["import", evil.to_str().unwrap(), "evil:1"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(text(&o.stderr).contains("escapes"), "{}", text(&o.stderr));
    assert!(!std::path::Path::new("/tmp/berth-escaped").exists());
    assert!(!outside.exists());
    assert_eq!(d.ok(&["images", "-q"]), "", "no half image is left behind");
}

/// An archive rejected at its first entry while the client still uploads the rest: berthd
/// reads the rest before it answers, so the docker CLI prints berth's error instead of
/// `write: broken pipe` (it did, in three imports of five, with 8 MiB behind the bad entry).
#[test]
fn a_big_archive_rejected_early_still_gets_its_error() {
    let d = Daemon::start();
    let evil = d.dir.path().join("evil-big.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
        let mut h = tar::Header::new_gnu();
        h.set_size(4);
        h.set_mode(0o644);
        let name = b"../../../../../../../../../../tmp/berth-escaped-big";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"evil"[..]).unwrap();
        let big = vec![0u8; 8 << 20];
        let mut h = tar::Header::new_gnu();
        h.set_size(big.len() as u64);
        h.set_mode(0o644);
        h.set_path("big").unwrap();
        h.set_cksum();
        b.append(&h, &big[..]).unwrap();
        b.finish().unwrap();
    }
    for _ in 0..5 {
        let o = d.docker(&["import", evil.to_str().unwrap(), "evil:1"]);
        assert_ne!(o.status.code(), Some(0));
        let err = text(&o.stderr);
        assert!(err.contains("path escapes the layer root"), "{err}");
        // The same for `docker load`: not an archive it knows, behind the same bytes.
        let o = d.docker(&["load", "-i", evil.to_str().unwrap()]);
        assert_ne!(o.status.code(), Some(0));
        let err = text(&o.stderr);
        assert!(err.contains("Error response from daemon"), "{err}");
    }
    assert!(!std::path::Path::new("/tmp/berth-escaped-big").exists());
    assert_eq!(d.ok(&["images", "-q"]), "");
}

// ---- bounded, safe ingest (issue 12, points 6 and 7) ----

const MIB: u64 = 1 << 20;

/// What the image store holds on disk: after a refused request it must be as before.
fn store_entries(d: &Daemon) -> Vec<String> {
    let image = d.root().join("image");
    let mut out = Vec::new();
    for sub in ["ingest", "snapshots", "blobs/sha256", "images"] {
        for e in std::fs::read_dir(image.join(sub)).unwrap().flatten() {
            out.push(format!("{sub}/{}", e.file_name().to_string_lossy()));
        }
    }
    out.sort();
    out
}

/// Mounts below the daemon's directory (an image operation makes none).
fn mounts_below(d: &Daemon) -> Vec<String> {
    let dir = d.dir.path().to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&dir))
        .map(String::from)
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256:{hex}")
}

/// A gzip'd tar of one file of `zeros` zero bytes: a few KiB that unpack to `zeros`.
fn gzip_bomb(zeros: u64) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut h = tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_mode(0o644);
    h.set_size(zeros);
    h.set_cksum();
    e.write_all(h.as_bytes()).unwrap();
    std::io::copy(&mut std::io::Read::take(std::io::repeat(0), zeros), &mut e).unwrap();
    e.write_all(&[0u8; 1024]).unwrap();
    e.finish().unwrap()
}

/// A classic `docker save` archive of one image: `layers` as stored (maybe compressed),
/// `diff_ids` of their uncompressed tars.
fn save_archive(tag: &str, layers: &[Vec<u8>], diff_ids: &[String], cmd: &[&str]) -> Vec<u8> {
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
    };
    let names: Vec<String> = (0..layers.len())
        .map(|i| format!("l{i}/layer.tar"))
        .collect();
    for (name, layer) in names.iter().zip(layers) {
        add(name, layer);
    }
    add("config.json", &config);
    let manifest =
        serde_json::json!([{"Config": "config.json", "RepoTags": [tag], "Layers": names}]);
    add("manifest.json", &serde_json::to_vec(&manifest).unwrap());
    b.into_inner().unwrap()
}

/// One HTTP/1.1 request on the daemon's socket; returns the status and the body. Waits at
/// most 20 s for the answer.
fn raw_request(d: &Daemon, head: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(head.as_bytes()).unwrap();
    // The daemon may answer and close before taking the whole body.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&out);
                // Enough once the headers and a whole JSON body are in.
                if let Some(i) = text.find("\r\n\r\n") {
                    if text[i..].contains('}') {
                        break;
                    }
                }
            }
            Err(e) => panic!("no answer: {e} (got {:?})", String::from_utf8_lossy(&out)),
        }
    }
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_string();
    (status, body)
}

fn write(d: &Daemon, name: &str, bytes: &[u8]) -> String {
    let path = d.dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path.to_string_lossy().to_string()
}

#[test]
fn ingest_over_the_limit_gets_a_413_and_leaves_nothing() {
    let d = Daemon::start_with_args(&["--max-ingest-size", "8m"]);
    d.busybox();
    let before = store_entries(&d);
    let bomb = gzip_bomb(256 * MIB);
    assert!(bomb.len() < MIB as usize, "{}", bomb.len());

    // docker import of the bomb.
    let path = write(&d, "bomb.tar.gz", &bomb);
    let started = std::time::Instant::now();
    let o = d.docker(&["import", &path, "bomb:1"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(err.contains("image too large"), "{err}");
    assert!(err.contains("--max-ingest-size"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(store_entries(&d), before, "the import left something");

    // docker load of an archive whose layer is the bomb.
    let archive = save_archive(
        "bomb:2",
        std::slice::from_ref(&bomb),
        &[sha256(b"never reached")],
        &["sh"],
    );
    let path = write(&d, "bomb-save.tar", &archive);
    let o = d.docker(&["load", "-i", &path]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("image too large"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(store_entries(&d), before, "the load left something");

    // The status is 413, the body Docker's JSON error.
    let head = format!(
        "POST /v1.44/images/create?fromSrc=- HTTP/1.1\r\nHost: berth\r\nContent-Type: application/x-tar\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        bomb.len()
    );
    let (status, body) = raw_request(&d, &head, &bomb);
    assert_eq!(status, 413, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("image too large"),
        "{body}"
    );

    // A Content-Length over the limit is refused before the body is sent at all.
    for (path, length) in [
        ("/v1.44/images/load", 9 * MIB),
        ("/v1.44/images/create?fromSrc=-", 10 << 30),
        ("/v1.44/containers/create", 3 * MIB),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
        );
        let (status, body) = raw_request(&d, &head, b"");
        assert_eq!(status, 413, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let m = v["message"].as_str().unwrap();
        assert!(m.contains(&format!("{length} bytes")), "{m}");
    }
    assert_eq!(store_entries(&d), before);
    assert!(mounts_below(&d).is_empty(), "{:?}", mounts_below(&d));
    assert_eq!(
        d.ok(&["images", "--format", "{{.Repository}}"]).trim(),
        "busybox"
    );
}

/// Deterministic bytes that are no archive.
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seed = b"noise".to_vec();
    while out.len() < len {
        seed = sha256(&seed).into_bytes();
        out.extend(seed.iter().map(|b| b.wrapping_mul(37) ^ 0xa5));
    }
    out.truncate(len);
    out
}

#[test]
fn malformed_archives_get_a_400_with_the_readers_cause_and_no_path() {
    let d = Daemon::start();
    d.busybox();
    let before = store_entries(&d);
    let rootfs = std::fs::read(busybox_rootfs_tar(d.dir.path())).unwrap();
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&rootfs).unwrap();
        e.finish().unwrap()
    };
    let mut bad_size = rootfs.clone();
    bad_size[124..136].copy_from_slice(b"zzzzzzzzzzz\0");
    let sum: u32 = bad_size[..512]
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                32
            } else {
                *b as u32
            }
        })
        .sum();
    bad_size[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    let root = d.root().to_string_lossy().to_string();
    for (what, bytes) in [
        ("random bytes", noise(64 << 10)),
        ("truncated tar", rootfs[..rootfs.len() / 2].to_vec()),
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("bad size field", bad_size),
    ] {
        let path = write(&d, "bad-input", &bytes);
        for (verb, words) in [
            (
                vec!["import", path.as_str(), "bad:1"],
                "invalid layer tar: ",
            ),
            (vec!["load", "-i", path.as_str()], "invalid image archive: "),
        ] {
            let o = d.docker(&verb);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{what}, {verb:?}: {err}");
            assert!(err.contains(words), "{what}, {verb:?}: {err}");
            assert!(
                !err.contains(&root),
                "{what}, {verb:?} names the store: {err}"
            );
            assert!(
                !err.contains("\u{0}"),
                "{what}, {verb:?}: raw bytes in {err:?}"
            );
            assert_eq!(store_entries(&d), before, "{what}, {verb:?} left something");
        }
        // 400, not 500.
        let head = format!(
            "POST /v1.44/images/load HTTP/1.1\r\nHost: berth\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            bytes.len()
        );
        let (status, body) = raw_request(&d, &head, &bytes);
        assert_eq!(status, 400, "{what}: {body}");
    }

    // An 8 MiB name: a short error, and a short log line.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, format!("d/{}", "n".repeat(8 << 20)), &b"x"[..])
        .unwrap();
    let path = write(&d, "long-name.tar", &b.into_inner().unwrap());
    let o = d.docker(&["import", &path, "long:1"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    // (Refused before it is read whole: the tar reader's header blocks are bounded.)
    assert!(
        err.contains("long name, long link or PAX records) exceed 1 MiB"),
        "{}",
        &err[..err.len().min(500)]
    );
    assert!(err.len() < 2048, "{} bytes of error", err.len());
    assert!(
        d.log().len() < 1 << 20,
        "berthd logged {} bytes",
        d.log().len()
    );
    assert_eq!(store_entries(&d), before);
    assert!(mounts_below(&d).is_empty(), "{:?}", mounts_below(&d));
}

#[test]
fn docker_load_takes_compressed_saves() {
    use std::io::Write;
    let d = Daemon::start();
    d.busybox();
    let saved = d.dir.path().join("bb.tar");
    d.ok(&["save", "-o", saved.to_str().unwrap(), "busybox"]);
    let tar = std::fs::read(&saved).unwrap();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let bz = {
        let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
        e.write_all(&tar).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::stream::encode_all(&tar[..], 3).unwrap();
    for (what, bytes) in [("gzip", gz), ("bzip2", bz), ("xz", xz), ("zstd", zst)] {
        d.ok(&["rmi", "busybox"]);
        let path = write(&d, &format!("bb.tar.{what}"), &bytes);
        let out = d.ok(&["load", "-i", &path]);
        assert!(
            out.contains("Loaded image: busybox:latest"),
            "{what}: {out}"
        );
    }
    assert_eq!(
        d.ok(&["run", "--rm", "busybox", "echo", "loaded"]),
        "loaded\n"
    );
}

/// Layers of one small file each, named `l<i>`.
fn small_layers(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(format!("{i}\n").len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, format!("l{i}"), format!("{i}\n").as_bytes())
                .unwrap();
            b.into_inner().unwrap()
        })
        .collect()
}

#[test]
fn images_deeper_than_one_option_page_run_and_deeper_than_overlay_are_refused() {
    let d = Daemon::start();
    d.busybox();
    // 501 layers: more than overlay stacks; refused at load, before anything is unpacked.
    // (First: no container has run yet, so no spare directory is being made meanwhile.)
    let before = store_entries(&d);
    let layers = small_layers(501);
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let archive = save_archive("deeper:501", &layers, &diff_ids, &["sh"]);
    let path = write(&d, "deeper.tar", &archive);
    let o = d.docker(&["load", "-i", &path]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("image has 501 layers"), "{err}");
    assert!(err.contains("stacks at most 500"), "{err}");
    assert_eq!(store_entries(&d), before);

    // 150 layers below this daemon's long root: their lowerdir list is far over the 4096
    // bytes mount(2) takes; with lowerdir+ (Linux 6.8) it runs.
    let rootfs = std::fs::read(busybox_rootfs_tar(d.dir.path())).unwrap();
    let mut layers = vec![rootfs];
    layers.extend(small_layers(149));
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let archive = save_archive("deep:150", &layers, &diff_ids, &["cat", "/l0", "/l148"]);
    let path = write(&d, "deep.tar", &archive);
    assert!(d
        .ok(&["load", "-i", &path])
        .contains("Loaded image: deep:150"));
    assert_eq!(d.ok(&["run", "--rm", "deep:150"]), "0\n148\n");
}

/// A tar of a few deep names: each makes 250 directories (a block and an inode each) from a
/// few hundred bytes of tar (deeper than 256 is refused outright). Those used to be free: 1.1 KiB of gzip took 75 MB and 99 % of the
/// inodes of a 300 MB store and was imported. Now every object is charged.
#[test]
fn directories_made_for_deep_names_are_charged() {
    use std::io::Write;
    let d = Daemon::start_with_args(&["--max-ingest-size", "8m"]);
    d.busybox();
    let before = store_entries(&d);
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    {
        let mut b = tar::Builder::new(&mut e);
        for i in 0..10 {
            let name = format!("d{i}/{}f", "a/".repeat(249));
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(0);
            b.append_data(&mut h, &name, std::io::empty()).unwrap();
        }
        b.finish().unwrap();
    }
    e.flush().unwrap();
    let deep = e.finish().unwrap();
    assert!(deep.len() < 4096, "{}", deep.len());
    let path = write(&d, "deep.tar.gz", &deep);
    let o = d.docker(&["import", &path, "deep:1"]);
    assert_eq!(o.status.code(), Some(1), "imported: {}", text(&o.stdout));
    let err = text(&o.stderr);
    assert!(err.contains("image too large"), "{err}");
    assert!(err.contains("--max-ingest-size"), "{err}");
    assert_eq!(store_entries(&d), before, "the import left something");
}
