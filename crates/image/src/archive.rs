//! Image archives: `docker save` output (manifest.json, both the classic `<id>/layer.tar`
//! layout and the OCI layout docker >= 25 writes) and plain OCI image-layout archives
//! (index.json + blobs). Reading extracts the outer tar into flat, numbered files under
//! `ingest/` (entry names never become paths, so the outer archive cannot escape), hashing each
//! file on the way; the images found are then committed by the store.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::budget::Budget;
use crate::content::{digest_hex, unique_name, ContentStore};
use crate::error::{clip, ImageError, IoContext};
use crate::reference::{self, Reference};
use crate::unpack::decompress;

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const MAX_SYMLINK_HOPS: usize = 16;
/// manifest.json, index.json and manifests are small; refuse to read huge ones into memory.
const MAX_METADATA_BYTES: u64 = 64 << 20;

/// One element of `manifest.json` (docker save).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct DockerManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(default)]
    pub layers: Vec<String>,
}

/// An OCI descriptor.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An OCI platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// An OCI image manifest (also reads Docker schema 2).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OciManifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An OCI index (also reads Docker manifest lists).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OciIndex {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// One file of the outer archive, extracted.
#[derive(Debug, Clone)]
struct ExtractedFile {
    path: PathBuf,
    digest: String,
    size: u64,
}

/// The outer archive on disk under `ingest/load-*`; removed on drop.
pub(crate) struct Extracted {
    dir: PathBuf,
    files: HashMap<String, ExtractedFile>,
    symlinks: HashMap<String, String>,
}

impl Drop for Extracted {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A layer found in an archive.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveLayer {
    pub path: PathBuf,
    pub digest: String,
}

/// An image found in an archive.
#[derive(Debug, Clone)]
pub(crate) struct ArchiveImage {
    pub config: Vec<u8>,
    pub layers: Vec<ArchiveLayer>,
    pub tags: Vec<Reference>,
    /// the manifest's digest, for OCI layouts (gives `name@sha256:..` repo digests)
    pub manifest_digest: Option<String>,
}

fn invalid(msg: impl Into<String>) -> ImageError {
    ImageError::InvalidArchive(msg.into())
}

/// `a/./b/../c` -> `a/c`; `None` when it climbs out of the archive.
fn normalize_name(name: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(parts.join("/"))
}

impl Extracted {
    /// Extract the outer archive (plain, or compressed as `docker load` accepts: gzip,
    /// bzip2, xz, zstd) into `ingest/load-*`, charging what is decompressed and written to
    /// `budget`. A malformed archive is a 400 with the tar reader's cause.
    pub fn new(
        archive: &mut dyn Read,
        content: &ContentStore,
        budget: &Budget,
    ) -> Result<Extracted, ImageError> {
        let dir = content.ingest_dir().join(unique_name("load-"));
        fs::create_dir(&dir).ctx("create", &dir)?;
        let mut out = Extracted {
            dir,
            files: HashMap::new(),
            symlinks: HashMap::new(),
        };
        let (_, archive) = decompress(archive, budget)?;
        let bad =
            |e: io::Error| budget.or(invalid(format!("read archive: {}", clip(&e.to_string()))));
        let mut tar = crate::BoundedTar::new(archive);
        let entries = tar.entries().map_err(bad)?;
        for (i, entry) in entries.enumerate() {
            let mut entry = entry.map_err(bad)?;
            let raw = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            let name = normalize_name(&raw)
                .ok_or_else(|| ImageError::PathEscape { entry: raw.clone() })?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let path = out.dir.join(format!("f{i}"));
                    let (digest, size) = write_hashed(&mut entry, &path, budget)?;
                    out.files.insert(name, ExtractedFile { path, digest, size });
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|t| t.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let resolved = if entry.header().entry_type() == tar::EntryType::Link {
                        normalize_name(&target)
                    } else {
                        let parent = Path::new(&name).parent().unwrap_or(Path::new(""));
                        normalize_name(&parent.join(&target).to_string_lossy())
                    };
                    let resolved = resolved.ok_or_else(|| ImageError::PathEscape {
                        entry: format!("{raw} -> {target}"),
                    })?;
                    out.symlinks.insert(name, resolved);
                }
                _ => {}
            }
        }
        Ok(out)
    }

    fn file(&self, name: &str) -> Result<&ExtractedFile, ImageError> {
        let mut name = normalize_name(name).ok_or_else(|| ImageError::PathEscape {
            entry: name.to_string(),
        })?;
        for _ in 0..MAX_SYMLINK_HOPS {
            if let Some(f) = self.files.get(&name) {
                return Ok(f);
            }
            match self.symlinks.get(&name) {
                Some(next) => name = next.clone(),
                None => break,
            }
        }
        Err(invalid(format!(
            "{}: no such file in the archive",
            clip(&name)
        )))
    }

    fn has(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }

    fn read_small(&self, name: &str) -> Result<(Vec<u8>, String), ImageError> {
        let f = self.file(name)?;
        Ok((read_metadata(f, name)?, f.digest.clone()))
    }

    /// A metadata blob (index, manifest, config) of an OCI layout, checked against its digest
    /// and read with the metadata size limit; `what` names it in errors.
    fn read_blob(&self, digest: &str, what: &str) -> Result<Vec<u8>, ImageError> {
        let f = self.blob(digest)?;
        read_metadata(f, &format!("{what} blobs/sha256/{}", digest_hex(digest)?))
    }

    /// A blob of an OCI layout, checked against its digest.
    fn blob(&self, digest: &str) -> Result<&ExtractedFile, ImageError> {
        let f = self.file(&format!("blobs/sha256/{}", digest_hex(digest)?))?;
        if f.digest != digest {
            return Err(ImageError::DigestMismatch {
                what: format!("blob {digest}"),
                expected: digest.to_string(),
                actual: f.digest.clone(),
            });
        }
        Ok(f)
    }

    /// Every image in the archive: manifest.json when present, otherwise index.json.
    pub fn images(&self) -> Result<Vec<ArchiveImage>, ImageError> {
        if self.has("manifest.json") {
            self.docker_images()
        } else if self.has("index.json") {
            self.oci_images()
        } else {
            Err(invalid(
                "neither manifest.json nor index.json found (is this a docker save or OCI layout archive?)",
            ))
        }
    }

    fn docker_images(&self) -> Result<Vec<ArchiveImage>, ImageError> {
        let (bytes, _) = self.read_small("manifest.json")?;
        let entries: Vec<DockerManifestEntry> =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("manifest.json: {e}")))?;
        let mut out = Vec::new();
        for entry in entries {
            let (config, _) = self.read_small(&entry.config)?;
            let layers = entry
                .layers
                .iter()
                .map(|l| {
                    let f = self.file(l)?;
                    Ok(ArchiveLayer {
                        path: f.path.clone(),
                        digest: f.digest.clone(),
                    })
                })
                .collect::<Result<Vec<_>, ImageError>>()?;
            let tags = entry
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| reference::parse(t))
                .collect::<Result<Vec<_>, _>>()?;
            out.push(ArchiveImage {
                config,
                layers,
                tags,
                manifest_digest: None,
            });
        }
        Ok(out)
    }

    fn oci_images(&self) -> Result<Vec<ArchiveImage>, ImageError> {
        let (bytes, _) = self.read_small("index.json")?;
        let index: OciIndex =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("index.json: {e}")))?;
        // Docker writes one descriptor per tag for the same manifest: merge them.
        let mut by_manifest: Vec<(String, ArchiveImage)> = Vec::new();
        for desc in &index.manifests {
            let tag = name_from_annotations(desc.annotations.as_ref());
            let manifest_digest = self.pick_manifest(desc, 0)?;
            if let Some((_, image)) = by_manifest.iter_mut().find(|(d, _)| *d == manifest_digest) {
                image.tags.extend(tag);
                continue;
            }
            let mut image = self.oci_image(&manifest_digest)?;
            image.tags.extend(tag);
            by_manifest.push((manifest_digest, image));
        }
        Ok(by_manifest.into_iter().map(|(_, i)| i).collect())
    }

    /// Follow nested indexes down to one image manifest for this host's platform.
    fn pick_manifest(&self, desc: &Descriptor, depth: usize) -> Result<String, ImageError> {
        if desc.media_type != OCI_INDEX && desc.media_type != DOCKER_MANIFEST_LIST {
            return Ok(desc.digest.clone());
        }
        if depth > 4 {
            return Err(invalid("index nesting too deep"));
        }
        let bytes = self.read_blob(&desc.digest, "index")?;
        let index: OciIndex = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("index {}: {e}", desc.digest)))?;
        let arch = host_architecture();
        let chosen = index
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .or_else(|| index.manifests.first())
            .ok_or_else(|| invalid(format!("index {} is empty", desc.digest)))?;
        self.pick_manifest(chosen, depth + 1)
    }

    fn oci_image(&self, manifest_digest: &str) -> Result<ArchiveImage, ImageError> {
        let bytes = self.read_blob(manifest_digest, "manifest")?;
        let manifest: OciManifest = serde_json::from_slice(&bytes)
            .map_err(|e| invalid(format!("manifest {manifest_digest}: {e}")))?;
        let config = self.read_blob(&manifest.config.digest, "config")?;
        let layers = manifest
            .layers
            .iter()
            .map(|l| {
                let f = self.blob(&l.digest)?;
                Ok(ArchiveLayer {
                    path: f.path.clone(),
                    digest: f.digest.clone(),
                })
            })
            .collect::<Result<Vec<_>, ImageError>>()?;
        Ok(ArchiveImage {
            config,
            layers,
            tags: Vec::new(),
            manifest_digest: Some(manifest_digest.to_string()),
        })
    }
}

/// Read an extracted metadata file (manifest.json, index.json, an OCI index, manifest or
/// config) into memory, refusing more than `MAX_METADATA_BYTES`: the size recorded at
/// extraction is checked first, and the read itself stops one byte past the limit.
/// `name` names the file in the archive for the error.
fn read_metadata(f: &ExtractedFile, name: &str) -> Result<Vec<u8>, ImageError> {
    let too_large = || {
        invalid(format!(
            "{}: too large (metadata is limited to {} MiB)",
            clip(name),
            MAX_METADATA_BYTES >> 20
        ))
    };
    if f.size > MAX_METADATA_BYTES {
        return Err(too_large());
    }
    let file = File::open(&f.path).ctx("open", &f.path)?;
    let mut bytes = Vec::with_capacity(f.size as usize);
    file.take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)
        .ctx("read", &f.path)?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(too_large());
    }
    Ok(bytes)
}

/// The image name from `io.containerd.image.name`, or from `org.opencontainers.image.ref.name`
/// when that holds a whole reference; a bare tag there names nothing (as with containerd).
fn name_from_annotations(annotations: Option<&BTreeMap<String, String>>) -> Option<Reference> {
    let a = annotations?;
    if let Some(name) = a.get(ANNOTATION_CONTAINERD_NAME) {
        return reference::parse(name).ok();
    }
    let name = a.get(ANNOTATION_REF_NAME)?;
    if name.contains(':') || name.contains('/') {
        return reference::parse(name).ok();
    }
    None
}

/// Copies an entry of the outer archive into `path`, hashing it: a read error is the
/// archive's (400, the reader's cause), a write error the store's.
fn write_hashed(
    reader: &mut dyn Read,
    path: &Path,
    budget: &Budget,
) -> Result<(String, u64), ImageError> {
    use sha2::{Digest, Sha256};
    let mut file = File::create(path).ctx("create", path)?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let bad = |e: io::Error| budget.or(invalid(format!("read archive: {}", clip(&e.to_string()))));
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(bad(e)),
        };
        budget.charge_written(n as u64).map_err(bad)?;
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).ctx("write", path)?;
        size += n as u64;
    }
    file.sync_all().ctx("fsync", path)?;
    Ok((format!("sha256:{}", hex::encode(hasher.finalize())), size))
}

/// Move an extracted, already hashed and fsynced file into the content store.
pub(crate) fn adopt(content: &ContentStore, layer: &ArchiveLayer) -> Result<(), ImageError> {
    content.adopt(&layer.path, &layer.digest)
}

/// The OCI architecture name of this host.
pub(crate) fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// One image to write into a save archive.
pub(crate) struct SaveImage {
    pub config_digest: String,
    pub layers: Vec<(String, String, u64)>, // digest, media type, size
    /// `(familiar name:tag, full name:tag, tag)`
    pub tags: Vec<(String, String, String)>,
}

/// Write a `docker save` archive: the docker >= 25 layout (OCI layout with `manifest.json`),
/// which both older and newer `docker load` accept.
pub(crate) fn write_save(
    content: &ContentStore,
    images: &[SaveImage],
    out: &mut dyn Write,
) -> Result<(), ImageError> {
    let mut tar = tar::Builder::new(out);
    let mut written = std::collections::HashSet::new();
    let mut docker_manifest = Vec::new();
    let mut index = OciIndex {
        schema_version: 2,
        media_type: Some(OCI_INDEX.to_string()),
        manifests: Vec::new(),
    };
    let dir = |tar: &mut tar::Builder<&mut dyn Write>, name: &str| -> Result<(), ImageError> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        h.set_mtime(0);
        tar.append_data(&mut h, name, io::empty())
            .ctx("write archive entry", Path::new(name))
    };
    dir(&mut tar, "blobs/")?;
    dir(&mut tar, "blobs/sha256/")?;
    for image in images {
        let config_size = content.size(&image.config_digest);
        let manifest = OciManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_string(),
                digest: image.config_digest.clone(),
                size: config_size,
                annotations: None,
                platform: None,
            },
            layers: image
                .layers
                .iter()
                .map(|(digest, media_type, size)| Descriptor {
                    media_type: media_type.clone(),
                    digest: digest.clone(),
                    size: *size,
                    annotations: None,
                    platform: None,
                })
                .collect(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serializes");
        let manifest_digest = crate::content::digest_of(&manifest_bytes);
        let blobs = std::iter::once(image.config_digest.clone())
            .chain(image.layers.iter().map(|l| l.0.clone()));
        for digest in blobs {
            if written.insert(digest.clone()) {
                let name = format!("blobs/sha256/{}", digest_hex(&digest)?);
                let size = content.size(&digest);
                let f = content.open_blob(&digest)?;
                append_file(&mut tar, &name, size, f)?;
            }
        }
        if written.insert(manifest_digest.clone()) {
            let name = format!("blobs/sha256/{}", digest_hex(&manifest_digest)?);
            append_file(
                &mut tar,
                &name,
                manifest_bytes.len() as u64,
                &manifest_bytes[..],
            )?;
        }
        let descriptor = |annotations| Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: manifest_digest.clone(),
            size: manifest_bytes.len() as u64,
            annotations,
            platform: None,
        };
        if image.tags.is_empty() {
            index.manifests.push(descriptor(None));
        }
        for (_, full, tag) in &image.tags {
            index.manifests.push(descriptor(Some(BTreeMap::from([
                (ANNOTATION_CONTAINERD_NAME.to_string(), full.clone()),
                (ANNOTATION_REF_NAME.to_string(), tag.clone()),
            ]))));
        }
        docker_manifest.push(DockerManifestEntry {
            config: format!("blobs/sha256/{}", digest_hex(&image.config_digest)?),
            repo_tags: Some(image.tags.iter().map(|t| t.0.clone()).collect()),
            layers: image
                .layers
                .iter()
                .map(|l| Ok(format!("blobs/sha256/{}", digest_hex(&l.0)?)))
                .collect::<Result<_, ImageError>>()?,
        });
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append_file(&mut tar, "oci-layout", layout.len() as u64, &layout[..])?;
    let index_bytes = serde_json::to_vec(&index).expect("index serializes");
    append_file(
        &mut tar,
        "index.json",
        index_bytes.len() as u64,
        &index_bytes[..],
    )?;
    let manifest_bytes = serde_json::to_vec(&docker_manifest).expect("manifest serializes");
    append_file(
        &mut tar,
        "manifest.json",
        manifest_bytes.len() as u64,
        &manifest_bytes[..],
    )?;
    tar.into_inner()
        .and_then(|w| w.flush())
        .ctx("write", Path::new("image archive"))
}

fn append_file(
    tar: &mut tar::Builder<&mut dyn Write>,
    name: &str,
    size: u64,
    data: impl Read,
) -> Result<(), ImageError> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(size);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data)
        .ctx("write archive entry", Path::new(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = MAX_METADATA_BYTES + 1;

    /// What an extracted file holds: bytes, or a sparse file of `BIG` bytes (no disk, no memory).
    enum Content {
        Bytes(Vec<u8>),
        Sparse,
        /// recorded as small, but the file on disk is `BIG` bytes
        GrewAfterExtraction,
    }

    fn fake_digest(n: u8) -> String {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
    }

    fn blob_name(digest: &str) -> String {
        format!("blobs/sha256/{}", digest.strip_prefix("sha256:").unwrap())
    }

    /// An `Extracted` made by hand; blob digests are taken from their names, not computed.
    fn extracted(tmp: &Path, files: Vec<(String, Content)>) -> Extracted {
        let dir = tmp.join("load");
        fs::create_dir_all(&dir).unwrap();
        let mut out = Extracted {
            dir,
            files: HashMap::new(),
            symlinks: HashMap::new(),
        };
        for (i, (name, content)) in files.into_iter().enumerate() {
            let path = out.dir.join(format!("f{i}"));
            let size = match content {
                Content::Bytes(b) => {
                    fs::write(&path, &b).unwrap();
                    b.len() as u64
                }
                Content::Sparse => {
                    File::create(&path).unwrap().set_len(BIG).unwrap();
                    BIG
                }
                Content::GrewAfterExtraction => {
                    File::create(&path).unwrap().set_len(BIG).unwrap();
                    2
                }
            };
            let digest = name
                .strip_prefix("blobs/sha256/")
                .map(|h| format!("sha256:{h}"))
                .unwrap_or_default();
            out.files.insert(name, ExtractedFile { path, digest, size });
        }
        out
    }

    fn index_of(media_type: &str, digest: &str) -> Content {
        Content::Bytes(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "manifests": [{"mediaType": media_type, "digest": digest, "size": 1}],
            }))
            .unwrap(),
        )
    }

    fn assert_too_large(ex: &Extracted, name: &str) {
        let e = ex.images().unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(name), "{msg}");
        assert!(msg.contains("too large"), "{msg}");
    }

    #[test]
    fn oversized_nested_index_manifest_and_config_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (nested, manifest, config) = (fake_digest(1), fake_digest(2), fake_digest(3));

        let ex = extracted(
            &tmp.path().join("index"),
            vec![
                ("index.json".into(), index_of(OCI_INDEX, &nested)),
                (blob_name(&nested), Content::Sparse),
            ],
        );
        assert_too_large(&ex, &blob_name(&nested));

        let ex = extracted(
            &tmp.path().join("manifest"),
            vec![
                ("index.json".into(), index_of(OCI_MANIFEST, &manifest)),
                (blob_name(&manifest), Content::Sparse),
            ],
        );
        assert_too_large(&ex, &blob_name(&manifest));

        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "config": {"mediaType": OCI_CONFIG, "digest": config, "size": 1},
            "layers": [],
        }))
        .unwrap();
        let ex = extracted(
            &tmp.path().join("config"),
            vec![
                ("index.json".into(), index_of(OCI_MANIFEST, &manifest)),
                (blob_name(&manifest), Content::Bytes(body)),
                (blob_name(&config), Content::Sparse),
            ],
        );
        assert_too_large(&ex, &blob_name(&config));
    }

    #[test]
    fn oversized_docker_save_metadata_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let ex = extracted(
            &tmp.path().join("manifest"),
            vec![("manifest.json".into(), Content::Sparse)],
        );
        assert_too_large(&ex, "manifest.json");

        let manifest = br#"[{"Config":"cfg.json","RepoTags":[],"Layers":[]}]"#.to_vec();
        let ex = extracted(
            &tmp.path().join("config"),
            vec![
                ("manifest.json".into(), Content::Bytes(manifest)),
                ("cfg.json".into(), Content::Sparse),
            ],
        );
        assert_too_large(&ex, "cfg.json");
    }

    #[test]
    fn the_read_itself_is_bounded_not_only_the_recorded_size() {
        let tmp = tempfile::tempdir().unwrap();
        let manifest = fake_digest(4);
        let ex = extracted(
            tmp.path(),
            vec![
                ("index.json".into(), index_of(OCI_MANIFEST, &manifest)),
                (blob_name(&manifest), Content::GrewAfterExtraction),
            ],
        );
        assert_too_large(&ex, &blob_name(&manifest));
    }
}
