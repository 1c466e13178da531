//! Bounded, safe ingest: decompression bombs stop at the limit (size or free-space reserve)
//! and leave nothing; malformed input is a 400 with the reader's cause and no path of the
//! store; `load` takes compressed archives; an image the overlay cannot stack is refused at
//! load; an import keeps its input and one unpacked copy, not two.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use berth_image::{ErrorKind, ImageStore, ImportOptions, IngestLimits};
use common::*;

const MIB: u64 = 1 << 20;

fn store_with(limits: IngestLimits) -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open_with(dir.path().join("image"), limits).unwrap();
    (dir, store)
}

fn limited(max: u64) -> (tempfile::TempDir, ImageStore) {
    store_with(IngestLimits {
        max_size: Some(max),
        reserve: Some(0),
    })
}

fn root(dir: &tempfile::TempDir) -> std::path::PathBuf {
    dir.path().join("image")
}

fn import(store: &ImageStore, input: &[u8]) -> Result<String, berth_image::ImageError> {
    store.import(&mut &input[..], &ImportOptions::default())
}

/// Bytes of regular files below `dir`.
fn bytes_below(dir: &Path) -> u64 {
    walk(dir)
        .iter()
        .filter_map(|p| std::fs::symlink_metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum()
}

/// An error a user can act on: the kind, the words, no path of the store, short.
fn assert_clear(e: &berth_image::ImageError, kind: ErrorKind, words: &[&str], store_dir: &Path) {
    let msg = e.to_string();
    assert_eq!(e.kind(), kind, "{msg}");
    for w in words {
        assert!(msg.contains(w), "{w:?} not in {msg:?}");
    }
    assert!(
        !msg.contains(&*store_dir.to_string_lossy()),
        "the message names the store: {msg}"
    );
    assert!(msg.len() < 1024, "{} bytes: {}", msg.len(), &msg[..200]);
}

#[test]
fn an_import_bomb_stops_at_the_limit_at_once_and_leaves_nothing() {
    let (dir, store) = limited(4 * MIB);
    let bomb = gzip_bomb("zeros", 256 * MIB);
    assert!(bomb.len() < MIB as usize, "{}", bomb.len());
    let started = Instant::now();
    let e = import(&store, &bomb).unwrap_err();
    assert_clear(
        &e,
        ErrorKind::TooLarge,
        &["image too large", "4.0 MiB", "--max-ingest-size"],
        dir.path(),
    );
    // It stopped at the limit, not after unpacking 256 MiB.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_nothing_left(&root(&dir), &store);
    // Under the limit, the same store imports.
    import(&store, &gzip_bomb("zeros", MIB)).unwrap();
}

#[test]
fn a_layer_bomb_in_a_load_stops_at_the_limit_and_leaves_nothing() {
    let (dir, store) = limited(4 * MIB);
    let bomb = gzip_bomb("zeros", 64 * MIB);
    let base = busybox_rootfs();
    // The diff id is never reached: the unpack stops first.
    let img = TestImage {
        config: config_for(&[&base, &b"unused"[..]], &["sh"], &[]),
        blobs: vec![gzip(&base), bomb],
        tags: vec!["bomb:1".into()],
    };
    let e = store
        .load(&mut &docker_save_archive(&[img])[..])
        .unwrap_err();
    assert_clear(
        &e,
        ErrorKind::TooLarge,
        &["image too large", "--max-ingest-size"],
        dir.path(),
    );
    assert_nothing_left(&root(&dir), &store);
}

#[test]
fn a_compressed_archive_bomb_stops_while_it_is_extracted() {
    let (dir, store) = limited(4 * MIB);
    // docker load of a gzip'd "archive" that holds 256 MiB of zeros.
    let e = store
        .load(&mut &gzip_bomb("blobs/sha256/zeros", 64 * MIB)[..])
        .unwrap_err();
    assert_clear(&e, ErrorKind::TooLarge, &["--max-ingest-size"], dir.path());
    assert_nothing_left(&root(&dir), &store);
}

#[test]
fn the_free_space_reserve_stops_an_import() {
    let dir = tempfile::tempdir().unwrap();
    let stat = nix::sys::statvfs::statvfs(dir.path()).unwrap();
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    // 16 MiB may be written before the reserve is reached; the bomb unpacks to 256 MiB.
    let limits = IngestLimits {
        max_size: None,
        reserve: Some(free - 16 * MIB),
    };
    let store = ImageStore::open_with(dir.path().join("image"), limits).unwrap();
    let e = import(&store, &gzip_bomb("zeros", 256 * MIB)).unwrap_err();
    assert_clear(&e, ErrorKind::TooLarge, &["--ingest-reserve"], dir.path());
    assert_nothing_left(&dir.path().join("image"), &store);

    // A reserve above the free space refuses before reading anything.
    let limits = IngestLimits {
        max_size: None,
        reserve: Some(free + 1024 * MIB),
    };
    let store = ImageStore::open_with(dir.path().join("image2"), limits).unwrap();
    let e = import(&store, &busybox_rootfs()).unwrap_err();
    assert_clear(
        &e,
        ErrorKind::TooLarge,
        &["not enough disk space", "--ingest-reserve"],
        dir.path(),
    );
    assert_nothing_left(&dir.path().join("image2"), &store);
}

#[test]
fn an_import_keeps_its_input_and_one_unpacked_copy() {
    let (dir, store) = store_with(IngestLimits::default());
    let rootfs = busybox_rootfs();
    let gz = gzip(&rootfs);
    let id = import(&store, &gz).unwrap();
    let img = store.resolve(&id).unwrap();
    assert_eq!(img.config.rootfs.diff_ids, [sha256(&rootfs)]);
    // The blobs are the compressed input and the config: no uncompressed copy of the tar.
    let config_len = serde_json::to_vec(&img.config).unwrap().len() as u64;
    let blobs = bytes_below(&root(&dir).join("blobs"));
    assert!(
        blobs < gz.len() as u64 + config_len + 4096,
        "blobs hold {blobs} bytes for a {} byte input (tar: {})",
        gz.len(),
        rootfs.len()
    );
    assert!(
        root(&dir)
            .join("blobs/sha256")
            .join(hex_of(&sha256(&gz)))
            .is_file(),
        "the input is the layer's blob"
    );
    // Save gives the input back as the layer, and a load of it makes the same image.
    let mut saved = Vec::new();
    store.save(std::slice::from_ref(&id), &mut saved).unwrap();
    let (_d2, other) = store_with(IngestLimits::default());
    let loaded = other.load(&mut &saved[..]).unwrap();
    assert_eq!(loaded[0].id, id);
}

/// Deterministic bytes that are no archive of any kind.
fn noise(len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut block = sha256(b"noise").into_bytes();
    while out.len() < len {
        block = sha256(&block).into_bytes();
        out.extend(hex::decode(hex_of(std::str::from_utf8(&block).unwrap())).unwrap());
    }
    out.truncate(len);
    out
}

/// A tar whose first header's size field is not a number.
fn bad_size_field() -> Vec<u8> {
    let mut tar = Layer::new().file("f", b"content").finish();
    tar[124..136].copy_from_slice(b"zzzzzzzzzzz\0");
    // A valid checksum for the broken header: the size is what is wrong.
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&tar[..512]);
    h.set_cksum();
    tar[..512].copy_from_slice(h.as_bytes());
    tar
}

#[test]
fn malformed_imports_get_the_readers_cause_and_leave_nothing() {
    let (dir, store) = store_with(IngestLimits::default());
    let rootfs = busybox_rootfs();
    let gz = gzip(&rootfs);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("random bytes", noise(4096), "invalid layer tar"),
        (
            "truncated tar",
            rootfs[..rootfs.len() / 2].to_vec(),
            "invalid layer tar",
        ),
        (
            "truncated gzip",
            gz[..gz.len() / 2].to_vec(),
            "invalid layer tar",
        ),
        ("bad size field", bad_size_field(), "invalid layer tar"),
    ];
    for (what, input, words) in cases {
        let e = import(&store, &input).unwrap_err();
        eprintln!("{what}: {e}");
        assert_clear(&e, ErrorKind::InvalidArgument, &[words], dir.path());
        assert_nothing_left(&root(&dir), &store);
    }
}

#[test]
fn malformed_loads_get_the_readers_cause_and_leave_nothing() {
    let (dir, store) = store_with(IngestLimits::default());
    let archive = docker_save_archive(&[two_layer_image("t:1", "x")]);
    let gz = gzip(&archive);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", noise(4096)),
        ("truncated tar", archive[..archive.len() / 2].to_vec()),
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("bad size field", bad_size_field()),
    ];
    for (what, input) in cases {
        let e = store.load(&mut &input[..]).unwrap_err();
        eprintln!("{what}: {e}");
        assert_clear(
            &e,
            ErrorKind::InvalidArgument,
            &["invalid image archive"],
            dir.path(),
        );
        assert_nothing_left(&root(&dir), &store);
    }
}

#[test]
fn an_8_mib_pax_path_gives_a_short_error() {
    let (dir, store) = store_with(IngestLimits::default());
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    // The tar crate writes a long name as a GNU long-name entry: 8 MiB of it.
    let long = format!("dir/{}", "a".repeat(8 << 20));
    b.append_data(&mut h, &long, &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let e = import(&store, &tar).unwrap_err();
    assert_clear(
        &e,
        ErrorKind::InvalidArgument,
        // Refused before it is read whole (BoundedTar), short and naming the limit.
        &["long name, long link or PAX records) exceed 1 MiB"],
        dir.path(),
    );
    assert_nothing_left(&root(&dir), &store);
}

/// Files named hundreds of directories deep cost time with the square of the depth: refused
/// past berth's limit, quickly, with nothing left.
#[test]
fn names_nested_too_deep_are_refused_quickly() {
    let (dir, store) = store_with(IngestLimits::default());
    let mut b = tar::Builder::new(Vec::new());
    b.mode(tar::HeaderMode::Deterministic);
    for i in 0..200 {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = format!("{}f{i}", "a/".repeat(1900));
        b.append_data(&mut h, &name, std::io::empty()).unwrap();
    }
    let tar = b.into_inner().unwrap();
    let started = Instant::now();
    let e = import(&store, &tar).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_clear(
        &e,
        ErrorKind::InvalidArgument,
        &["more than 256 nested directories"],
        dir.path(),
    );
    assert_nothing_left(&root(&dir), &store);
    // 256 levels still unpack.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, format!("{}f", "d/".repeat(255)), &b"x"[..])
        .unwrap();
    import(&store, &b.into_inner().unwrap()).unwrap();
}

#[test]
fn load_takes_archives_compressed_as_docker_load_does() {
    let archive = docker_save_archive(&[two_layer_image("packed:1", "p")]);
    for (what, packed) in [
        ("gzip", gzip(&archive)),
        ("bzip2", bzip2(&archive)),
        ("xz", xz(&archive)),
        ("zstd", zstd(&archive)),
    ] {
        let (_dir, store) = store_with(IngestLimits::default());
        let loaded = store
            .load(&mut &packed[..])
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(loaded[0].tags, ["packed:1"], "{what}");
        store.resolve("packed:1").unwrap();
    }
}

#[test]
fn import_takes_bzip2_and_xz_too() {
    let (_dir, store) = store_with(IngestLimits::default());
    let rootfs = busybox_rootfs();
    for packed in [bzip2(&rootfs), xz(&rootfs)] {
        let img = store.resolve(&import(&store, &packed).unwrap()).unwrap();
        assert_eq!(img.config.rootfs.diff_ids, [sha256(&rootfs)]);
    }
}

#[test]
fn an_image_deeper_than_overlay_stacks_is_refused_at_load() {
    let (dir, store) = store_with(IngestLimits::default());
    let layers: Vec<Vec<u8>> = (0..501)
        .map(|i| Layer::new().file(&format!("f{i}"), b"x").finish())
        .collect();
    let refs: Vec<&[u8]> = layers.iter().map(Vec::as_slice).collect();
    let img = TestImage {
        config: config_for(&refs, &["sh"], &[]),
        blobs: layers.clone(),
        tags: vec!["deep:1".into()],
    };
    let e = store
        .load(&mut &oci_archive(&[img], "io.containerd.image.name")[..])
        .unwrap_err();
    assert_clear(
        &e,
        ErrorKind::InvalidArgument,
        &["image has 501 layers", "stacks at most 500"],
        dir.path(),
    );
    assert_nothing_left(&root(&dir), &store);
}
