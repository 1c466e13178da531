//! A container's rw layer: `container_changes`, `export_container`, `commit_container`.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;

use berth_image::{
    ChangeKind, CommitOptions, ContainerConfig, ErrorKind, ImageStore, ImportOptions,
};
use common::*;

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("image")).unwrap();
    (dir, store)
}

/// A container snapshot on `image`; returns its rw layer's directory.
fn container(store: &ImageStore, key: &str, image: &str) -> PathBuf {
    let mounts = store.prepare_snapshot(key, image).unwrap();
    let upper = mounts[0]
        .options
        .iter()
        .find_map(|o| o.strip_prefix("upperdir="))
        .unwrap();
    PathBuf::from(upper)
}

fn whiteout(path: &std::path::Path) {
    nix::sys::stat::mknod(
        path,
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
}

/// Every entry of an export, with the content of regular files.
fn export(store: &ImageStore, key: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = Vec::new();
    store.export_container(key, &mut out).unwrap();
    let mut archive = tar::Archive::new(out.as_slice());
    let mut files = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    files
}

fn cmd(args: &[&str]) -> ContainerConfig {
    ContainerConfig {
        cmd: Some(args.iter().map(|s| s.to_string()).collect()),
        ..ContainerConfig::default()
    }
}

#[test]
fn a_commit_is_the_containers_changes_on_its_image() {
    require_root();
    let (_d, store) = store();
    let base = store
        .import(
            &mut &busybox_rootfs()[..],
            &ImportOptions {
                reference: Some("base:1".into()),
                ..ImportOptions::default()
            },
        )
        .unwrap();
    let upper = container(&store, "c1", &base);
    std::fs::create_dir_all(upper.join("tmp")).unwrap();
    std::fs::write(upper.join("tmp/x"), "made in the container").unwrap();
    std::fs::create_dir_all(upper.join("bin")).unwrap();
    whiteout(&upper.join("bin/ls"));
    // The runtime's mount point, which belongs to the init layer.
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::write(upper.join("etc/hosts"), "").unwrap();

    let changes: Vec<(String, ChangeKind)> = store
        .container_changes("c1")
        .unwrap()
        .into_iter()
        .map(|c| (c.path, c.kind))
        .collect();
    assert!(
        changes.contains(&("/tmp/x".into(), ChangeKind::Added)),
        "{changes:?}"
    );
    assert!(
        changes.contains(&("/bin/ls".into(), ChangeKind::Deleted)),
        "{changes:?}"
    );
    assert!(
        !changes.iter().any(|(p, _)| p == "/etc/hosts"),
        "{changes:?}"
    );

    let files = export(&store, "c1");
    assert_eq!(files["tmp/x"], b"made in the container");
    assert!(!files.contains_key("bin/ls"));
    assert!(files.contains_key("bin/busybox"));
    assert_eq!(
        files["etc/hosts"], b"",
        "the mount point as Docker's export shows it"
    );
    assert!(files.contains_key("proc/"), "{:?}", files.keys());

    let opts = CommitOptions {
        image_id: base.clone(),
        reference: Some("docker.io/library/committed".into()),
        changes: vec![r#"CMD ["cat","/tmp/x"]"#.into()],
        author: "someone".into(),
        comment: "a message".into(),
        config: cmd(&["sh", "-c", "echo hi > /tmp/x"]),
        container_config: cmd(&["sh", "-c", "echo hi > /tmp/x"]),
        container_id: "c1".into(),
        cache_key: None,
    };
    let id = store.commit_container("c1", &opts).unwrap();
    let img = store.resolve("committed:latest").unwrap();
    assert_eq!(img.id, id);
    assert_eq!(img.config.rootfs.diff_ids.len(), 2);
    assert_eq!(img.config.config.cmd.as_deref().unwrap(), ["cat", "/tmp/x"]);
    assert_eq!(img.config.author, "someone");
    assert_eq!(img.config.container, "c1");
    let last = img.config.history.last().unwrap();
    assert_eq!(last.created_by, "sh -c echo hi > /tmp/x");
    assert_eq!(last.comment, "a message");
    assert_eq!(last.author, "someone");
    assert!(!last.empty_layer);
    let history = store.history("committed").unwrap();
    assert_eq!(history[0].comment, "a message");

    // A container of the new image sees the change and the deletion, and changes nothing.
    container(&store, "c2", &id);
    assert!(store.container_changes("c2").unwrap().is_empty());
    let files = export(&store, "c2");
    assert_eq!(files["tmp/x"], b"made in the container");
    assert!(!files.contains_key("bin/ls"));
}

#[test]
fn a_commit_without_changes_adds_an_empty_history_entry_only() {
    require_root();
    let (_d, store) = store();
    let base = store
        .import(&mut &busybox_rootfs()[..], &ImportOptions::default())
        .unwrap();
    container(&store, "c1", &base);
    let opts = CommitOptions {
        image_id: base.clone(),
        container_id: "c1".into(),
        ..CommitOptions::default()
    };
    let id = store.commit_container("c1", &opts).unwrap();
    assert_ne!(id, base);
    let img = store.resolve(&id).unwrap();
    assert_eq!(img.config.rootfs.diff_ids.len(), 1);
    assert!(img.config.history.last().unwrap().empty_layer);
}

#[test]
fn the_rw_layer_of_an_unknown_container_is_not_found() {
    let (_d, store) = store();
    let e = store.container_changes("nope").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = store.export_container("nope", &mut Vec::new()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[test]
fn a_walk_never_follows_a_symlink_out_of_the_layer() {
    require_root();
    let (dir, store) = store();
    let base = store
        .import(&mut &busybox_rootfs()[..], &ImportOptions::default())
        .unwrap();
    let upper = container(&store, "c1", &base);
    let outside = dir.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host data").unwrap();
    std::os::unix::fs::symlink(&outside, upper.join("link")).unwrap();
    let files = export(&store, "c1");
    assert!(files.contains_key("link"));
    assert!(!files.keys().any(|k| k.starts_with("link/")), "{files:?}");
    assert!(!files.values().any(|v| v == b"host data"));
}
