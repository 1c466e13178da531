//! `import`, `resolve` by every spelling, `history`, compressed layers.

mod common;

use berth_image::{ErrorKind, ImageStore, ImportOptions};
use common::*;

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("image")).unwrap();
    (dir, store)
}

fn import_as(store: &ImageStore, tar: &[u8], reference: &str) -> String {
    let opts = ImportOptions {
        reference: Some(reference.to_string()),
        ..ImportOptions::default()
    };
    store.import(&mut &tar[..], &opts).unwrap()
}

#[test]
fn import_makes_a_one_layer_image_with_changes_and_message() {
    let (_d, store) = store();
    let rootfs = busybox_rootfs();
    let opts = ImportOptions {
        reference: Some("docker.io/library/mybox:v1".into()),
        changes: vec![
            r#"CMD ["sh","-c","echo hi"]"#.into(),
            "ENV FOO=bar".into(),
            "EXPOSE 8080".into(),
            "WORKDIR /tmp".into(),
            "LABEL a=b".into(),
        ],
        message: "from a test".into(),
        platform: Some("linux/arm64/v8".into()),
    };
    // A stdin-like reader: one byte at a time would be slow, so a plain `Read` over a chain.
    let mut reader = std::io::Read::chain(&rootfs[..10], &rootfs[10..]);
    let id = store.import(&mut reader, &opts).unwrap();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let img = store.resolve("mybox:v1").unwrap();
    assert_eq!(img.id, id);
    assert_eq!(img.repo_tags, ["mybox:v1"]);
    assert_eq!(
        img.config.config.cmd.as_deref().unwrap(),
        ["sh", "-c", "echo hi"]
    );
    assert_eq!(img.config.config.env.as_deref().unwrap(), ["FOO=bar"]);
    assert!(img
        .config
        .config
        .exposed_ports
        .as_ref()
        .unwrap()
        .contains_key("8080/tcp"));
    assert_eq!(img.config.config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(img.config.architecture, "arm64");
    assert_eq!(img.config.variant.as_deref(), Some("v8"));
    assert_eq!(img.config.comment, "from a test");
    assert_eq!(img.config.rootfs.diff_ids, [sha256(&rootfs)]);
    let busybox_len = std::fs::metadata("/bin/busybox").unwrap().len();
    // Docker's `DiffSize`: file content and the six applet symlinks by their target's length.
    let links = 6 * "busybox".len() as u64;
    assert_eq!(img.size, busybox_len + "busybox\n".len() as u64 + links);
    assert!(img.created > 1_700_000_000);
    assert!(img.last_tag_time.is_some());

    let history = store.history(&id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].id, id);
    assert_eq!(history[0].comment, "from a test");
    assert_eq!(history[0].tags, ["mybox:v1"]);
    assert_eq!(history[0].size as u64, img.size);
}

#[test]
fn import_without_message_says_imported_from() {
    let (_d, store) = store();
    let id = store
        .import(&mut &busybox_rootfs()[..], &ImportOptions::default())
        .unwrap();
    let img = store.resolve(&id).unwrap();
    assert!(img.repo_tags.is_empty());
    assert_eq!(img.config.comment, "Imported from -");
}

#[test]
fn import_rejects_bad_changes_before_reading() {
    let (_d, store) = store();
    let opts = ImportOptions {
        changes: vec!["RUN true".into()],
        ..ImportOptions::default()
    };
    let e = store.import(&mut &b"not read"[..], &opts).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(store.list().is_empty());
}

#[test]
fn gzip_and_zstd_imports_give_the_same_image_content() {
    let (_d, store) = store();
    let rootfs = busybox_rootfs();
    let plain = store.resolve(&import_as(&store, &rootfs, "plain")).unwrap();
    let gz = store
        .resolve(&import_as(&store, &gzip(&rootfs), "gz"))
        .unwrap();
    let zst = store
        .resolve(&import_as(&store, &zstd(&rootfs), "zst"))
        .unwrap();
    // Same uncompressed layer: same diff id, and the snapshot is shared.
    assert_eq!(plain.config.rootfs.diff_ids, gz.config.rootfs.diff_ids);
    assert_eq!(plain.config.rootfs.diff_ids, zst.config.rootfs.diff_ids);
    assert_eq!(plain.size, gz.size);
    assert_eq!(plain.size, zst.size);
}

#[test]
fn resolve_accepts_every_docker_spelling() {
    let (_d, store) = store();
    let id = import_as(&store, &busybox_rootfs(), "busybox");
    store.tag(&id, "localhost:5000/x", "1").unwrap();
    let hex = hex_of(&id).to_string();
    for spelling in [
        "busybox".to_string(),
        "busybox:latest".into(),
        "library/busybox".into(),
        "docker.io/library/busybox:latest".into(),
        "index.docker.io/library/busybox".into(),
        "localhost:5000/x:1".into(),
        id.clone(),
        hex.clone(),
        hex[..12].to_string(),
        format!("sha256:{}", &hex[..12]),
    ] {
        assert_eq!(store.resolve(&spelling).unwrap().id, id, "{spelling}");
    }
    let e = store.resolve("nosuchimage:v1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.to_string(), "No such image: nosuchimage:v1");
    assert_eq!(
        store.resolve("busybox:2").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.resolve("localhost:5000/x").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store.resolve("UPPER").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn ambiguous_short_id_is_not_found() {
    let (_d, store) = store();
    // Import enough different images that some share a first hex digit.
    let mut ids = Vec::new();
    for i in 0..20 {
        let tar = Layer::new().file("f", format!("{i}").as_bytes()).finish();
        ids.push(
            store
                .import(&mut &tar[..], &ImportOptions::default())
                .unwrap(),
        );
    }
    let first = &hex_of(&ids[0])[..1];
    let sharing = ids
        .iter()
        .filter(|id| hex_of(id).starts_with(first))
        .count();
    let result = store.resolve(first);
    if sharing > 1 {
        assert_eq!(result.unwrap_err().kind(), ErrorKind::NotFound);
    } else {
        assert_eq!(result.unwrap().id, ids[0]);
    }
}

#[test]
fn state_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let id = {
        let store = ImageStore::open(dir.path()).unwrap();
        import_as(&store, &busybox_rootfs(), "keep:1")
    };
    let store = ImageStore::open(dir.path()).unwrap();
    let img = store.resolve("keep:1").unwrap();
    assert_eq!(img.id, id);
    assert_eq!(store.list().len(), 1);
}
