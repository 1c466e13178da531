//! `load` of docker-save and OCI archives, `save`, round trips, and load atomicity.

mod common;

use std::collections::HashMap;
use std::io::Read;

use berth_image::{ErrorKind, ImageStore};
use common::*;

fn store_in(dir: &tempfile::TempDir) -> ImageStore {
    ImageStore::open(dir.path().join("image")).unwrap()
}

/// Name -> bytes of every regular file in an archive.
fn archive_files(archive: &[u8]) -> HashMap<String, Vec<u8>> {
    let mut out = HashMap::new();
    let mut a = tar::Archive::new(archive);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() == tar::EntryType::Regular {
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.insert(name, data);
        }
    }
    out
}

fn decompressed(blob: &[u8]) -> Vec<u8> {
    if blob.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(blob)
            .read_to_end(&mut out)
            .unwrap();
        out
    } else {
        blob.to_vec()
    }
}

#[test]
fn load_classic_docker_save_archive() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let a = two_layer_image("busybox:latest", "a");
    // Second image shares the base layer: the archive holds it once, via a symlink.
    let mut b = two_layer_image("berthtest/built:1", "b");
    b.blobs[0] = a.blobs[0].clone();
    let archive = docker_save_archive(&[a, b]);
    let loaded = store.load(&mut &archive[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(loaded[0].tags, ["busybox:latest"]);
    assert_eq!(loaded[1].tags, ["berthtest/built:1"]);
    let img = store.resolve("busybox").unwrap();
    assert_eq!(img.id, loaded[0].id);
    assert_eq!(img.config.config.cmd.as_deref().unwrap(), ["sh"]);
    assert_eq!(
        store.resolve("docker.io/berthtest/built:1").unwrap().id,
        loaded[1].id
    );
    // History: two layer steps + one empty step, newest first.
    let h = store.history("busybox").unwrap();
    assert_eq!(h.len(), 3);
    assert_eq!(h[0].id, img.id);
    assert_eq!(h[0].size, 0);
    assert!(h[0].created_by.contains("CMD"));
    assert_eq!(h[1].id, "<missing>");
    assert_eq!(h[1].size, 1);
    assert!(h[2].size > 1_000_000);
    assert_eq!(h[2].created, 1_704_164_645);
}

#[test]
fn load_oci_layout_archive_with_either_annotation() {
    for annotation in [
        "org.opencontainers.image.ref.name",
        "io.containerd.image.name",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let store = store_in(&dir);
        let img = two_layer_image("localhost:5000/x:1", "oci");
        let mut img2 = two_layer_image("docker.io/library/other:2", "oci2");
        img2.tags.push("docker.io/library/other:3".into());
        let archive = oci_archive(&[img, img2], annotation);
        let loaded = store.load(&mut &archive[..]).unwrap();
        assert_eq!(loaded.len(), 2, "{annotation}");
        assert_eq!(loaded[0].tags, ["localhost:5000/x:1"]);
        assert_eq!(loaded[1].tags, ["other:2", "other:3"]);
        assert_eq!(
            store.resolve("localhost:5000/x:1").unwrap().id,
            loaded[0].id
        );
        assert_eq!(store.resolve("other:3").unwrap().id, loaded[1].id);
    }
}

#[test]
fn oci_ref_name_with_only_a_tag_loads_untagged() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let img = two_layer_image("latest", "bare");
    let archive = oci_archive(&[img], "org.opencontainers.image.ref.name");
    let loaded = store.load(&mut &archive[..]).unwrap();
    assert!(loaded[0].tags.is_empty());
    assert!(store.resolve(&loaded[0].id).unwrap().repo_tags.is_empty());
}

#[test]
fn zstd_layers_load() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let base = busybox_rootfs();
    let img = TestImage {
        config: config_for(&[&base], &["sh"], &[]),
        blobs: vec![zstd(&base)],
        tags: vec!["z:1".into()],
    };
    let loaded = store
        .load(&mut &oci_archive(&[img], "io.containerd.image.name")[..])
        .unwrap();
    assert_eq!(store.resolve("z:1").unwrap().id, loaded[0].id);
}

#[test]
fn save_then_load_round_trip_keeps_ids_and_tags() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = store_in(&src_dir);
    let archive = docker_save_archive(&[
        two_layer_image("busybox:latest", "a"),
        two_layer_image("app:1", "b"),
    ]);
    let loaded = src.load(&mut &archive[..]).unwrap();
    src.tag("busybox", "localhost:5000/busybox", "").unwrap();

    let mut saved = Vec::new();
    src.save(
        &[
            "busybox".to_string(),
            "app:1".to_string(),
            "localhost:5000/busybox".to_string(),
        ],
        &mut saved,
    )
    .unwrap();

    let dst_dir = tempfile::tempdir().unwrap();
    let dst = store_in(&dst_dir);
    let reloaded = dst.load(&mut &saved[..]).unwrap();
    assert_eq!(reloaded.len(), 2);
    assert_eq!(reloaded[0].id, loaded[0].id);
    assert_eq!(
        reloaded[0].tags,
        ["busybox:latest", "localhost:5000/busybox:latest"]
    );
    assert_eq!(reloaded[1].id, loaded[1].id);
    assert_eq!(reloaded[1].tags, ["app:1"]);
    assert_eq!(
        dst.resolve("busybox").unwrap(),
        src.resolve("busybox").unwrap().with_tag_time(&dst)
    );

    // Saving again gives the same bytes: the archive is deterministic.
    let mut again = Vec::new();
    src.save(
        &[
            "busybox".to_string(),
            "app:1".to_string(),
            "localhost:5000/busybox".to_string(),
        ],
        &mut again,
    )
    .unwrap();
    assert_eq!(saved, again);
}

trait WithTagTime {
    fn with_tag_time(self, other: &ImageStore) -> Self;
}

impl WithTagTime for berth_image::ImageRecord {
    /// The tag time differs between stores; everything else must be equal.
    fn with_tag_time(mut self, other: &ImageStore) -> Self {
        self.last_tag_time = other.resolve(&self.id).unwrap().last_tag_time;
        self
    }
}

#[test]
fn saved_archive_is_what_docker_load_reads() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let archive = docker_save_archive(&[
        two_layer_image("busybox:latest", "a"),
        two_layer_image("app:1", "b"),
    ]);
    store.load(&mut &archive[..]).unwrap();
    let mut saved = Vec::new();
    store
        .save(&["busybox:latest".into(), "app".into()], &mut saved)
        .unwrap();
    let files = archive_files(&saved);

    // docker load (every version) reads manifest.json: Config, RepoTags, Layers.
    let manifest: Vec<serde_json::Value> = serde_json::from_slice(&files["manifest.json"]).unwrap();
    assert_eq!(manifest.len(), 2);
    for entry in &manifest {
        let mut keys: Vec<&String> = entry.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["Config", "Layers", "RepoTags"]);
        let config_bytes = &files[entry["Config"].as_str().unwrap()];
        let config: serde_json::Value = serde_json::from_slice(config_bytes).unwrap();
        let image = store
            .resolve(entry["RepoTags"][0].as_str().unwrap())
            .unwrap();
        assert_eq!(
            sha256(config_bytes),
            image.id,
            "config digest is the image id"
        );
        let layers = entry["Layers"].as_array().unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        assert_eq!(layers.len(), diff_ids.len());
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let blob = &files[layer.as_str().unwrap()];
            assert_eq!(
                format!("blobs/sha256/{}", hex_of(&sha256(blob))),
                layer.as_str().unwrap()
            );
            assert_eq!(sha256(&decompressed(blob)), diff_id.as_str().unwrap());
        }
    }
    assert_eq!(
        manifest[0]["RepoTags"],
        serde_json::json!(["busybox:latest"])
    );
    assert_eq!(manifest[1]["RepoTags"], serde_json::json!(["app:1"]));

    // And the OCI side: oci-layout, index.json naming each manifest blob.
    assert!(files.contains_key("oci-layout"));
    let index: serde_json::Value = serde_json::from_slice(&files["index.json"]).unwrap();
    let descriptors = index["manifests"].as_array().unwrap();
    assert_eq!(descriptors.len(), 2);
    assert_eq!(
        descriptors[0]["annotations"]["io.containerd.image.name"],
        "docker.io/library/busybox:latest"
    );
    assert_eq!(
        descriptors[0]["annotations"]["org.opencontainers.image.ref.name"],
        "latest"
    );
    for d in descriptors {
        let blob = &files[&format!("blobs/sha256/{}", hex_of(d["digest"].as_str().unwrap()))];
        assert_eq!(sha256(blob), d["digest"].as_str().unwrap());
    }

    // A plain OCI reader (index.json only) gets the same images back.
    let mut oci_only = tar::Builder::new(Vec::new());
    for (name, data) in &files {
        if name != "manifest.json" {
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            oci_only.append_data(&mut h, name, &data[..]).unwrap();
        }
    }
    let oci_only = oci_only.into_inner().unwrap();
    let other_dir = tempfile::tempdir().unwrap();
    let other = store_in(&other_dir);
    let loaded = other.load(&mut &oci_only[..]).unwrap();
    assert_eq!(loaded.len(), 2);
    assert_eq!(
        other.resolve("app:1").unwrap().id,
        store.resolve("app:1").unwrap().id
    );
}

#[test]
fn save_by_id_has_no_tags() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let loaded = store
        .load(&mut &docker_save_archive(&[two_layer_image("busybox:latest", "a")])[..])
        .unwrap();
    let mut saved = Vec::new();
    store.save(&[loaded[0].id.clone()], &mut saved).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&archive_files(&saved)["manifest.json"]).unwrap();
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([]));
    let e = store.save(&["nosuch".into()], &mut Vec::new()).unwrap_err();
    assert_eq!(e.to_string(), "No such image: nosuch");
}

#[test]
fn failure_mid_load_leaves_no_image_and_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    // The first layer is fine and gets unpacked; the second does not match its diff id.
    let mut img = two_layer_image("broken:1", "x");
    img.blobs[1] = Layer::new()
        .file("other", b"not what the config says")
        .finish();
    let e = store
        .load(&mut &docker_save_archive(&[img])[..])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("digest mismatch"), "{e}");
    common::assert_nothing_left(&dir.path().join("image"), &store);

    // The same with a layer that fails while unpacking.
    let base = busybox_rootfs();
    let evil = Layer::new().file("../evil", b"x").finish();
    let img = TestImage {
        config: config_for(&[&base, &evil], &["sh"], &[]),
        blobs: vec![base.clone(), evil.clone()],
        tags: vec!["evil:1".into()],
    };
    assert!(store.load(&mut &docker_save_archive(&[img])[..]).is_err());
    common::assert_nothing_left(&dir.path().join("image"), &store);
}

#[test]
fn open_removes_what_a_killed_load_left() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("image");
    {
        let store = ImageStore::open(&root).unwrap();
        store
            .load(&mut &docker_save_archive(&[two_layer_image("keep:1", "k")])[..])
            .unwrap();
    }
    // What a kill -9 mid-load leaves: a half-unpacked temp snapshot, a numbered snapshot dir
    // whose metadata was never written, ingest files, an orphan blob.
    std::fs::create_dir_all(root.join("snapshots/tmp-123-0-0/fs/bin")).unwrap();
    std::fs::create_dir_all(root.join("snapshots/99/fs")).unwrap();
    std::fs::create_dir_all(root.join("ingest/load-1")).unwrap();
    std::fs::write(root.join("ingest/blob-1"), b"partial").unwrap();
    let orphan = sha256(b"orphan");
    std::fs::write(root.join("blobs/sha256").join(hex_of(&orphan)), b"orphan").unwrap();

    let store = ImageStore::open(&root).unwrap();
    assert_eq!(store.list().len(), 1);
    let snapshots: Vec<_> = std::fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert!(!root.join("snapshots/99").exists());
    assert_eq!(std::fs::read_dir(root.join("ingest")).unwrap().count(), 0);
    assert!(!root.join("blobs/sha256").join(hex_of(&orphan)).exists());
    store.resolve("keep:1").unwrap();
}

#[test]
fn malformed_archives_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let e = store
        .load(&mut &Layer::new().file("x", b"y").finish()[..])
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    assert!(e.to_string().contains("manifest.json"), "{e}");
    // A config whose layer count disagrees with the manifest.
    let mut img = two_layer_image("a:1", "x");
    img.blobs.pop();
    let e = store
        .load(&mut &docker_save_archive(&[img])[..])
        .unwrap_err();
    assert!(e.to_string().contains("lists 2 layers"), "{e}");
    common::assert_nothing_left(&dir.path().join("image"), &store);
}

#[test]
fn oci_load_records_repo_digests_and_resolves_name_at_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let archive = oci_archive(
        &[two_layer_image("docker.io/library/busybox:1", "d")],
        "io.containerd.image.name",
    );
    let loaded = store.load(&mut &archive[..]).unwrap();
    let img = store.resolve("busybox:1").unwrap();
    assert_eq!(img.repo_digests.len(), 1);
    let digest_ref = img.repo_digests[0].clone();
    assert!(digest_ref.starts_with("busybox@sha256:"), "{digest_ref}");
    assert_eq!(store.resolve(&digest_ref).unwrap().id, loaded[0].id);
    assert_eq!(
        store
            .resolve(&format!("docker.io/library/{digest_ref}"))
            .unwrap()
            .id,
        loaded[0].id
    );
    // Untagging the last tag also drops the digest reference, then the image.
    let items = store.remove("busybox:1", false, &never_used).unwrap();
    assert_eq!(
        items[0],
        berth_image::DeleteItem::Untagged("busybox:1".into())
    );
    assert_eq!(items[1], berth_image::DeleteItem::Untagged(digest_ref));
    assert_eq!(
        items[2],
        berth_image::DeleteItem::Deleted(loaded[0].id.clone())
    );
}

/// The tar header of a regular file of `size` bytes.
fn tar_header(name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path(name).unwrap();
    h.set_mode(0o644);
    h.set_size(size);
    h.set_cksum();
    h.as_bytes().to_vec()
}

fn tar_padding(size: u64) -> Vec<u8> {
    vec![0; ((512 - size % 512) % 512) as usize]
}

#[test]
fn oversized_manifest_blob_is_refused_by_name() {
    use sha2::{Digest, Sha256};
    use std::io::{self, Cursor};
    // One byte over the 64 MiB metadata limit, streamed: never held in memory by the test.
    let size: u64 = (64 << 20) + 1;
    let filler = || io::repeat(b' ').take(size);
    let mut hasher = Sha256::new();
    io::copy(&mut filler(), &mut hasher).unwrap();
    let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest, "size": size,
            "annotations": {"io.containerd.image.name": "big:1"},
        }],
    }))
    .unwrap();
    let blob_name = format!("blobs/sha256/{}", hex_of(&digest));
    let mut tail = tar_padding(size);
    tail.extend(tar_header("index.json", index.len() as u64));
    tail.extend(&index);
    tail.extend(tar_padding(index.len() as u64));
    tail.extend([0u8; 1024]);
    let mut archive = Cursor::new(tar_header(&blob_name, size))
        .chain(filler())
        .chain(Cursor::new(tail));

    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let e = store.load(&mut archive).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    let msg = e.to_string();
    assert!(msg.contains(&blob_name), "{msg}");
    assert!(msg.contains("too large"), "{msg}");
    common::assert_nothing_left(&dir.path().join("image"), &store);
}

#[test]
fn layer_sharing_counts_a_common_base_once_and_as_shared() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_in(&dir);
    let a = two_layer_image("busybox:latest", "a");
    let b = two_layer_image("berthtest/built:1", "bb");
    let archive = docker_save_archive(&[a, b]);
    let loaded = store.load(&mut &archive[..]).unwrap();
    let (a, b) = (
        store.resolve(&loaded[0].id).unwrap(),
        store.resolve(&loaded[1].id).unwrap(),
    );
    // Same base (busybox) under each, tops of 1 and 2 bytes.
    assert_eq!(a.size + 1, b.size);
    let base = a.size - 1;
    let sharing = store.layer_sharing();
    assert_eq!(sharing.layers_size, base + 1 + 2);
    assert_eq!(sharing.shared_size[&a.id], base);
    assert_eq!(sharing.shared_size[&b.id], base);
}
