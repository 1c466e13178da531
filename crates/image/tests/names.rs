//! `tag`, `rmi` and `prune` with Docker's semantics and messages.

mod common;

use berth_image::{DeleteItem, ErrorKind, ImageStore, ImportOptions, LabelFilter};
use common::*;

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("image")).unwrap();
    (dir, store)
}

/// An image with its own layer (content `seed`) tagged `reference`.
fn image(store: &ImageStore, reference: &str, seed: &str, labels: &[&str]) -> String {
    let tar = Layer::new().file("seed", seed.as_bytes()).finish();
    let opts = ImportOptions {
        reference: (!reference.is_empty()).then(|| reference.to_string()),
        changes: labels.iter().map(|l| format!("LABEL {l}")).collect(),
        ..ImportOptions::default()
    };
    store.import(&mut &tar[..], &opts).unwrap()
}

fn untagged(s: &str) -> DeleteItem {
    DeleteItem::Untagged(s.to_string())
}

const CONTAINER: &str = "437ebff9c6081f4a1c8f35d4ad4f1d3f4e5e7c0b1a2b3c4d5e6f708192a3b4c5";

#[test]
fn tag_stores_the_familiar_form() {
    let (_d, store) = store();
    let id = image(&store, "busybox", "a", &[]);
    store
        .tag("busybox", "docker.io/berthtest/built", "2")
        .unwrap();
    store
        .tag("busybox", "docker.io/library/busybox", "")
        .unwrap();
    store.tag(&id, "localhost:5000/busybox", "v1").unwrap();
    let img = store.resolve(&id).unwrap();
    assert_eq!(
        img.repo_tags,
        [
            "berthtest/built:2",
            "busybox:latest",
            "localhost:5000/busybox:v1"
        ]
    );
}

#[test]
fn tag_validates_like_docker() {
    let (_d, store) = store();
    image(&store, "busybox", "a", &[]);
    let e = store.tag("busybox", "UPPER", "1").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        e.to_string(),
        "invalid reference format: repository name (library/UPPER) must be lowercase"
    );
    assert_eq!(
        store.tag("busybox", "ok", "-bad").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        store.tag("nosuch", "ok", "1").unwrap_err().to_string(),
        "No such image: nosuch"
    );
}

#[test]
fn tag_moves_a_name_to_another_image() {
    let (_d, store) = store();
    let a = image(&store, "app:1", "a", &[]);
    let b = image(&store, "other", "b", &[]);
    store.tag(&b, "app", "1").unwrap();
    assert_eq!(store.resolve("app:1").unwrap().id, b);
    assert!(store.resolve(&a).unwrap().repo_tags.is_empty());
}

#[test]
fn rmi_of_one_of_several_tags_only_untags() {
    let (_d, store) = store();
    let id = image(&store, "busybox", "a", &[]);
    store.tag("busybox", "localhost:5000/busybox", "").unwrap();
    let items = store.remove("busybox", false, &never_used).unwrap();
    assert_eq!(items, [untagged("busybox:latest")]);
    assert_eq!(
        store.resolve(&id).unwrap().repo_tags,
        ["localhost:5000/busybox:latest"]
    );
    // The last tag deletes the image and its layer.
    let items = store
        .remove("localhost:5000/busybox", false, &never_used)
        .unwrap();
    assert_eq!(items[0], untagged("localhost:5000/busybox:latest"));
    assert_eq!(items[1], DeleteItem::Deleted(id.clone()));
    assert_eq!(items.len(), 3, "{items:?}"); // + the layer's chain id
    assert!(store.list().is_empty());
    assert_eq!(
        serde_json::to_string(&items[..2]).unwrap(),
        format!(r#"[{{"Untagged":"localhost:5000/busybox:latest"}},{{"Deleted":"{id}"}}]"#)
    );
}

#[test]
fn rmi_by_id_with_several_repositories_needs_force() {
    let (_d, store) = store();
    let id = image(&store, "berthtest/built:1", "a", &[]);
    store.tag(&id, "berthtest/built", "2").unwrap();
    let e = store.remove(&id, false, &never_used).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        e.to_string(),
        format!("conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories", &hex_of(&id)[..12])
    );
    assert_eq!(
        store.resolve(&id).unwrap().repo_tags.len(),
        2,
        "nothing untagged on conflict"
    );
    let items = store.remove(&hex_of(&id)[..12], true, &never_used).unwrap();
    assert_eq!(
        &items[..3],
        [
            untagged("berthtest/built:1"),
            untagged("berthtest/built:2"),
            DeleteItem::Deleted(id)
        ]
    );
}

#[test]
fn rmi_by_id_with_one_tag_untags_and_deletes() {
    let (_d, store) = store();
    let id = image(&store, "solo:1", "a", &[]);
    let items = store.remove(&id, false, &never_used).unwrap();
    assert_eq!(&items[..2], [untagged("solo:1"), DeleteItem::Deleted(id)]);
}

#[test]
fn rmi_of_an_image_a_container_uses() {
    let (_d, store) = store();
    let id = image(&store, "x:1", "a", &[]);
    let used = |image: &str| (image == id).then(|| CONTAINER.to_string());
    let e = store.remove("x:1", false, &used).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to remove repository reference \"x:1\" (must force) - container 437ebff9c608 is using its referenced image {}",
            &hex_of(&id)[..12]
        )
    );
    let e = store.remove(&id, false, &used).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("conflict: unable to delete {} (must be forced) - image is being used by stopped container 437ebff9c608", &hex_of(&id)[..12])
    );
    // A second tag makes the name removable without force.
    store.tag(&id, "x", "2").unwrap();
    assert_eq!(
        store.remove("x:2", false, &used).unwrap(),
        [untagged("x:2")]
    );

    // Force: untag and delete; the container's snapshot keeps its layers.
    let mounts = store.prepare_snapshot("c1", &id).unwrap();
    let items = store.remove("x:1", true, &used).unwrap();
    assert_eq!(
        &items[..2],
        [untagged("x:1"), DeleteItem::Deleted(id.clone())]
    );
    assert_eq!(items.len(), 2, "layer kept for the container: {items:?}");
    let lower = mounts[0].options[0]
        .trim_start_matches("lowerdir=")
        .to_string();
    assert!(std::path::Path::new(&lower).join("seed").exists());
    store.remove_snapshot("c1").unwrap();
    assert!(
        !std::path::Path::new(&lower).exists(),
        "layer removed with its last user"
    );
}

#[test]
fn shared_layers_are_kept_until_the_last_image_goes() {
    let (_d, store) = store();
    let a = image(&store, "a:1", "same", &[]);
    // Same layer, different config (import time differs): the snapshot is shared.
    std::thread::sleep(std::time::Duration::from_millis(5));
    let b = image(&store, "b:1", "same", &[]);
    assert_ne!(a, b);
    let items = store.remove("a:1", false, &never_used).unwrap();
    assert_eq!(items, [untagged("a:1"), DeleteItem::Deleted(a)]);
    let mounts = store.prepare_snapshot("c", &b).unwrap();
    let lower = mounts[0].options[0]
        .trim_start_matches("lowerdir=")
        .to_string();
    assert_eq!(std::fs::read(format!("{lower}/seed")).unwrap(), b"same");
}

#[test]
fn prune_removes_dangling_images_only_unless_all() {
    let (_d, store) = store();
    let dangling = image(&store, "", "d", &[]);
    let used_dangling = image(&store, "", "u", &[]);
    let tagged = image(&store, "t:1", "t", &[]);
    let used = |id: &str| (id == used_dangling).then(|| CONTAINER.to_string());
    let report = store.prune(false, &used, &[]).unwrap();
    assert_eq!(report.deleted[0], DeleteItem::Deleted(dangling.clone()));
    assert_eq!(report.deleted.len(), 2); // image + layer
    assert_eq!(report.space_reclaimed, 1);
    let left: Vec<String> = store.list().into_iter().map(|i| i.id).collect();
    assert!(left.contains(&used_dangling) && left.contains(&tagged) && left.len() == 2);

    let report = store.prune(true, &used, &[]).unwrap();
    assert_eq!(
        &report.deleted[..2],
        [untagged("t:1"), DeleteItem::Deleted(tagged)]
    );
    assert_eq!(store.list().len(), 1);
}

#[test]
fn prune_honours_label_filters() {
    let (_d, store) = store();
    let keep = image(&store, "", "k", &["keep=yes"]);
    let go = image(&store, "", "g", &["keep=no"]);
    let plain = image(&store, "", "p", &[]);
    let only_no = [LabelFilter {
        key: "keep".into(),
        value: Some("no".into()),
        negate: false,
    }];
    let report = store.prune(false, &never_used, &only_no).unwrap();
    assert_eq!(report.deleted[0], DeleteItem::Deleted(go));
    let without_keep = [LabelFilter {
        key: "keep".into(),
        value: None,
        negate: true,
    }];
    let report = store.prune(false, &never_used, &without_keep).unwrap();
    assert_eq!(report.deleted[0], DeleteItem::Deleted(plain));
    let ids: Vec<String> = store.list().into_iter().map(|i| i.id).collect();
    assert_eq!(ids, [keep]);
}

#[test]
fn snapshot_lifecycle() {
    let (_d, store) = store();
    let id = image(&store, "x:1", "a", &[]);
    let mounts = store.prepare_snapshot("ctr", "x:1").unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(mounts[0].fstype, "overlay");
    assert_eq!(mounts[0].source, "overlay");
    let opts = &mounts[0].options;
    assert!(opts[0].starts_with("lowerdir=") && !opts[0].contains(':'));
    assert!(opts[1].starts_with("upperdir=") && opts[1].ends_with("/fs"));
    assert!(opts[2].starts_with("workdir=") && opts[2].ends_with("/work"));
    assert_eq!(
        store.prepare_snapshot("ctr", &id).unwrap(),
        mounts,
        "idempotent"
    );
    assert_eq!(store.snapshot_usage("ctr"), 0);
    let upper = opts[1].trim_start_matches("upperdir=");
    std::fs::write(format!("{upper}/data"), vec![0u8; 4096]).unwrap();
    assert_eq!(store.snapshot_usage("ctr"), 4096);
    store.remove_snapshot("ctr").unwrap();
    store.remove_snapshot("ctr").unwrap();
    assert_eq!(store.snapshot_usage("ctr"), 0);
    assert!(!std::path::Path::new(upper).exists());
    assert_eq!(
        store.prepare_snapshot("c2", "nosuch").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn concurrent_imports_and_prunes_stay_consistent() {
    let (_d, store) = store();
    let store = std::sync::Arc::new(store);
    let rootfs = std::sync::Arc::new(busybox_rootfs());
    let workers: Vec<_> = (0..4)
        .map(|i| {
            let (store, rootfs) = (store.clone(), rootfs.clone());
            std::thread::spawn(move || {
                for j in 0..3 {
                    let opts = ImportOptions {
                        reference: Some(format!("w{i}:{j}")),
                        ..ImportOptions::default()
                    };
                    store.import(&mut &rootfs[..], &opts).unwrap();
                    store.prune(false, &never_used, &[]).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(store.list().len(), 12);
    // All share one layer snapshot, and every image still mounts.
    let lowers: std::collections::HashSet<String> = store
        .list()
        .iter()
        .enumerate()
        .map(|(n, img)| {
            store.prepare_snapshot(&format!("c{n}"), &img.id).unwrap()[0].options[0].clone()
        })
        .collect();
    assert_eq!(lowers.len(), 1);
}
