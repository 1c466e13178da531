//! Image verbs through the real docker CLI: import, load (docker-save and OCI layout),
//! save, images and its filters, inspect, tag, rmi, history, prune.

use std::process::{Command, Stdio};

use berth_e2e::{busybox_rootfs_tar, text, Daemon};

fn ok(d: &Daemon, args: &[&str]) -> String {
    let o = d.docker(args);
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

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
    assert_eq!(ok(&d, &["run", "--rm", "bb:1"]), "from-cmd\n");
    assert_eq!(
        ok(&d, &["run", "--rm", "bb:1", "sh", "-c", "echo $A"]),
        "1\n"
    );
    assert_eq!(
        ok(
            &d,
            &[
                "image",
                "inspect",
                "-f",
                "{{.Comment}} {{index .Config.Labels \"team\"}}",
                "bb:1"
            ]
        )
        .trim(),
        "first import x"
    );
    assert_eq!(ok(&d, &["history", "-q", "bb:1"]).trim(), &id[7..19]);

    // tag, images, filters, -q, --no-trunc.
    ok(&d, &["tag", "bb:1", "bb:2"]);
    ok(&d, &["tag", "bb:1", "example.org:5000/team/bb"]);
    let list = ok(&d, &["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = list.lines().collect();
    names.sort();
    assert_eq!(names, ["bb:1", "bb:2", "example.org:5000/team/bb:latest"]);
    assert_eq!(ok(&d, &["images", "-q"]).lines().count(), 3);
    assert_eq!(
        ok(&d, &["images", "-q", "--no-trunc"])
            .lines()
            .next()
            .unwrap(),
        id
    );
    assert_eq!(
        ok(
            &d,
            &[
                "images",
                "--filter",
                "reference=bb:2",
                "--format",
                "{{.Tag}}"
            ]
        )
        .trim(),
        "2"
    );
    assert_eq!(
        ok(&d, &["images", "--filter", "label=team=x", "-q"])
            .lines()
            .count(),
        3
    );
    assert_eq!(ok(&d, &["images", "--filter", "dangling=true", "-q"]), "");

    // rmi of one of several tags only untags; a container's image needs force.
    assert_eq!(ok(&d, &["rmi", "bb:2"]).trim(), "Untagged: bb:2");
    ok(&d, &["create", "--name", "user1", "bb:1"]);
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
    ok(&d, &["rm", "user1"]);

    // save -> rmi -> load (docker-save layout), then an OCI-layout-only archive.
    let archive = d.dir.path().join("bb.tar");
    ok(&d, &["save", "-o", archive.to_str().unwrap(), "bb:1"]);
    let removed = ok(&d, &["rmi", "bb:1"]);
    assert!(
        removed.contains("Untagged: bb:1") && removed.contains(&format!("Deleted: {id}")),
        "{removed}"
    );
    assert!(ok(&d, &["load", "-i", archive.to_str().unwrap()]).contains("Loaded image: bb:1"));
    assert_eq!(
        ok(&d, &["images", "-q", "--no-trunc"]).trim(),
        id,
        "ids survive a round trip"
    );
    ok(&d, &["rmi", "bb:1"]);
    let oci = d.dir.path().join("oci.tar");
    strip_docker_manifest(&archive, &oci);
    let loaded = ok(&d, &["load", "-i", oci.to_str().unwrap()]);
    assert!(loaded.contains("Loaded image"), "{loaded}");
    assert_eq!(ok(&d, &["run", "--rm", &id[7..19], "echo", "oci"]), "oci\n");

    // prune: an image imported without a name is dangling; prune removes it, not bb:1.
    let dangling = ok(&d, &["import", rootfs.to_str().unwrap()]);
    let dangling = dangling.trim();
    let listed = ok(
        &d,
        &["images", "--filter", "dangling=true", "-q", "--no-trunc"],
    );
    assert_eq!(listed.trim(), dangling);
    let pruned = ok(&d, &["image", "prune", "-f"]);
    assert!(pruned.contains(&format!("deleted: {dangling}")), "{pruned}");
    assert_eq!(ok(&d, &["images", "--filter", "dangling=true", "-q"]), "");
    assert_eq!(ok(&d, &["images", "-q"]).lines().count(), 1);

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
    assert_eq!(
        ok(&d, &["images", "-q"]),
        "",
        "no half image is left behind"
    );
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
    assert_eq!(ok(&d, &["images", "-q"]), "");
}
