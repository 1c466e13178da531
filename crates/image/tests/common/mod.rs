//! Test inputs built by hand: layer tars (including malicious ones), image configs, and
//! docker-save / OCI layout archives.
#![allow(dead_code)]

use std::io::Write;

use sha2::{Digest, Sha256};

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// Panics (never skips) when not root, as the project's privileged tier demands.
pub fn require_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root (overlay mounts, mknod, chown)"
    );
}

/// A tar builder that can also write names the tar crate refuses (`..`, absolute).
pub struct Layer {
    builder: tar::Builder<Vec<u8>>,
}

impl Default for Layer {
    fn default() -> Self {
        Self::new()
    }
}

impl Layer {
    pub fn new() -> Layer {
        Layer {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: tar::EntryType, name: &str, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        // Raw bytes: set_path refuses `..` and absolute names, which is what we need to test.
        let bytes = name.as_bytes();
        assert!(bytes.len() < 100);
        let raw = &mut h.as_old_mut().name;
        raw.fill(0);
        raw[..bytes.len()].copy_from_slice(bytes);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h
    }

    fn append(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Directory, name, 0o755, 0);
        self.append(h, &[])
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_with(name, data, 0o644, 0, 0, 1_600_000_000)
    }

    pub fn file_with(
        &mut self,
        name: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
    ) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Regular, name, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_mtime(mtime);
        self.append(h, data)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Symlink, name, 0o777, 0);
        h.set_link_name_literal(target).unwrap();
        self.append(h, &[])
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Link, name, 0o644, 0);
        h.set_link_name_literal(target).unwrap();
        self.append(h, &[])
    }

    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(tar::EntryType::Char, name, 0o666, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.append(h, &[])
    }

    pub fn fifo(&mut self, name: &str) -> &mut Self {
        let h = Self::header(tar::EntryType::Fifo, name, 0o600, 0);
        self.append(h, &[])
    }

    /// A PAX header carrying `SCHILY.xattr.<name>` for the next entry.
    pub fn xattr_next(&mut self, attr: &str, value: &[u8]) -> &mut Self {
        let key = format!("SCHILY.xattr.{attr}");
        let body_len = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body_len + 1;
        while format!("{len}").len() + body_len != len {
            len += 1;
        }
        let mut record = format!("{len} {key}=").into_bytes();
        record.extend_from_slice(value);
        record.push(b'\n');
        let h = Self::header(
            tar::EntryType::XHeader,
            "PaxHeaders/x",
            0o644,
            record.len() as u64,
        );
        self.append(h, &record)
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.builder, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

/// A busybox root filesystem from Debian's busybox-static.
pub fn busybox_rootfs() -> Vec<u8> {
    let busybox =
        std::fs::read("/bin/busybox").expect("/bin/busybox (busybox-static) is installed");
    let mut l = Layer::new();
    l.dir("bin/").dir("etc/").dir("tmp/");
    l.file_with("bin/busybox", &busybox, 0o755, 0, 0, 1_600_000_000);
    for applet in ["sh", "echo", "true", "cat", "sleep", "ls"] {
        l.symlink(&format!("bin/{applet}"), "busybox");
    }
    l.file("etc/hostname", b"busybox\n");
    l.finish()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// An image config for these uncompressed layers.
pub fn config_for(layers: &[&[u8]], cmd: &[&str], labels: &[(&str, &str)]) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha256(l)).collect();
    let history: Vec<serde_json::Value> = layers
        .iter()
        .enumerate()
        .map(|(i, _)| serde_json::json!({"created": "2024-01-02T03:04:05Z", "created_by": format!("/bin/sh -c #(nop) ADD file:{i} in / ")}))
        .chain(std::iter::once(serde_json::json!({"created": "2024-01-02T03:04:06Z", "created_by": "/bin/sh -c #(nop)  CMD [\"sh\"]", "empty_layer": true})))
        .collect();
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-02T03:04:06Z",
        "config": {"Env": ["PATH=/bin"], "Cmd": cmd, "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }))
    .unwrap()
}

/// One image for an archive: config bytes, layer blobs as stored (maybe compressed), tags.
pub struct TestImage {
    pub config: Vec<u8>,
    pub blobs: Vec<Vec<u8>>,
    pub tags: Vec<String>,
}

fn add(b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, name, data).unwrap();
}

/// The classic `docker save` layout (docker <= 24): `<id>/layer.tar`, `<config>.json`,
/// `manifest.json`, `repositories`. A layer used twice is a symlink, as docker writes it.
pub fn docker_save_archive(images: &[TestImage]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut manifest = Vec::new();
    let mut seen: std::collections::HashMap<String, String> = Default::default();
    for (i, img) in images.iter().enumerate() {
        let mut layers = Vec::new();
        for (j, blob) in img.blobs.iter().enumerate() {
            let layer_id = hex_of(&sha256(format!("{i}-{j}").as_bytes())).to_string();
            let name = format!("{layer_id}/layer.tar");
            let digest = sha256(blob);
            match seen.get(&digest) {
                Some(first) => {
                    let mut h = tar::Header::new_ustar();
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_size(0);
                    h.set_mode(0o777);
                    b.append_link(&mut h, &name, format!("../{first}")).unwrap();
                }
                None => {
                    add(&mut b, &format!("{layer_id}/VERSION"), b"1.0");
                    add(&mut b, &format!("{layer_id}/json"), b"{}");
                    add(&mut b, &name, blob);
                    seen.insert(digest, name.clone());
                }
            }
            layers.push(name);
        }
        let config_name = format!("{}.json", hex_of(&sha256(&img.config)));
        add(&mut b, &config_name, &img.config);
        manifest.push(
            serde_json::json!({"Config": config_name, "RepoTags": img.tags, "Layers": layers}),
        );
    }
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    add(&mut b, "repositories", b"{}");
    b.into_inner().unwrap()
}

/// A plain OCI image layout archive (no manifest.json), names in annotations.
pub fn oci_archive(images: &[TestImage], annotation: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    add(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
    let mut manifests = Vec::new();
    for img in images {
        let mut layers = Vec::new();
        for blob in &img.blobs {
            let d = sha256(blob);
            add(&mut b, &format!("blobs/sha256/{}", hex_of(&d)), blob);
            let mt = if blob.starts_with(&[0x1f, 0x8b]) {
                "application/vnd.oci.image.layer.v1.tar+gzip"
            } else {
                "application/vnd.oci.image.layer.v1.tar"
            };
            layers.push(serde_json::json!({"mediaType": mt, "digest": d, "size": blob.len()}));
        }
        let cd = sha256(&img.config);
        add(
            &mut b,
            &format!("blobs/sha256/{}", hex_of(&cd)),
            &img.config,
        );
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": img.config.len()},
            "layers": layers,
        }))
        .unwrap();
        let md = sha256(&manifest);
        add(&mut b, &format!("blobs/sha256/{}", hex_of(&md)), &manifest);
        for t in &img.tags {
            manifests.push(serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": md, "size": manifest.len(),
                "annotations": {annotation: t},
            }));
        }
    }
    let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
    add(&mut b, "index.json", &serde_json::to_vec(&index).unwrap());
    b.into_inner().unwrap()
}

/// A two-layer busybox-like image: rootfs + one file, stored gzip-compressed.
pub fn two_layer_image(tag: &str, note: &str) -> TestImage {
    let base = busybox_rootfs();
    let top = Layer::new()
        .dir("etc/")
        .file("etc/note", note.as_bytes())
        .finish();
    TestImage {
        config: config_for(&[&base, &top], &["sh"], &[]),
        blobs: vec![gzip(&base), top],
        tags: vec![tag.to_string()],
    }
}

pub fn never_used(_: &str) -> Option<String> {
    None
}

/// Every path under `dir` (for "nothing written outside" checks).
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
    }
    out
}

pub fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A gzip'd tar holding one file of `zeros` zero bytes, made as a stream: the bomb of a
/// few KiB that unpacks to `zeros` bytes.
pub fn gzip_bomb(name: &str, zeros: u64) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path(name).unwrap();
    h.set_mode(0o644);
    h.set_size(zeros);
    h.set_cksum();
    e.write_all(h.as_bytes()).unwrap();
    std::io::copy(&mut std::io::Read::take(std::io::repeat(0), zeros), &mut e).unwrap();
    let pad = ((512 - zeros % 512) % 512) as usize;
    e.write_all(&vec![0u8; pad + 1024]).unwrap();
    e.finish().unwrap()
}

/// Asserts the store at `root` holds nothing: no image, snapshot, blob, ingest file or
/// metadata (what a refused load or import must leave).
pub fn assert_nothing_left(root: &std::path::Path, store: &berth_image::ImageStore) {
    assert!(store.list().is_empty());
    let leftovers: Vec<_> = ["snapshots", "blobs/sha256", "ingest", "images"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(root.join(d))
                .unwrap()
                .flatten()
                .map(|e| e.path())
        })
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}
