//! Manifests and indexes as the OCI image spec and Docker's schema 2 write them, and the
//! choice of one platform's manifest from an index.

use serde::Deserialize;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What a manifest request accepts, best first.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// The most bytes a manifest or index may have (the distribution spec's servers refuse
/// more than 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;
/// The most bytes an image config may have.
pub const MAX_CONFIG: usize = 8 << 20;

/// A content descriptor.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub urls: Vec<String>,
}

/// An index entry's platform.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Platform {
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl Platform {
    /// This machine's, in Go's names (`linux/amd64`, `linux/arm64/v8`).
    pub fn host() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", None),
            "aarch64" => ("arm64", Some("v8")),
            "x86" => ("386", None),
            "arm" => ("arm", Some("v7")),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", None),
            "s390x" => ("s390x", None),
            "riscv64" => ("riscv64", None),
            other => (other, None),
        };
        Platform {
            os: "linux".to_string(),
            architecture: architecture.to_string(),
            variant: variant.map(str::to_string),
        }
    }

    /// `os[/arch[/variant]]` as `--platform` takes it; the host's parts fill what is left
    /// out.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let host = Platform::host();
        let parts: Vec<&str> = s.split('/').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "invalid platform {s:?}: expected os[/arch[/variant]]"
            ));
        }
        let os = parts[0].to_lowercase();
        let (architecture, variant) = match parts.get(1) {
            Some(a) => {
                let (a, v) = normalize_arch(&a.to_lowercase(), parts.get(2).copied());
                (a, v)
            }
            None => (host.architecture.clone(), host.variant.clone()),
        };
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }

    /// Whether an index entry's platform serves a request for `self`.
    pub(crate) fn serves(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os {
            return false;
        }
        let (arch, variant) = normalize_arch(&self.architecture, self.variant.as_deref());
        if arch != wanted.architecture {
            return false;
        }
        match (&wanted.variant, &variant) {
            (Some(w), Some(v)) => w == v,
            _ => true,
        }
    }
}

/// containerd's normalisation: `x86_64` is `amd64`, `aarch64` is `arm64` (variant `v8`
/// when none is given), `armhf` is `arm/v7`.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let variant = variant.map(|v| v.to_lowercase());
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".to_string(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => (
            "arm64".to_string(),
            Some(variant.unwrap_or_else(|| "v8".to_string())),
        ),
        "armhf" => ("arm".to_string(), Some("v7".to_string())),
        "armel" => ("arm".to_string(), Some("v6".to_string())),
        "i386" => ("386".to_string(), variant),
        other => (other.to_string(), variant),
    }
}

/// An image manifest (Docker schema 2 or OCI).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    #[serde(default)]
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// An index (a Docker manifest list or an OCI index).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub manifests: Vec<Descriptor>,
}

/// A manifest as fetched.
#[derive(Debug)]
pub enum Manifest {
    Image(ImageManifest),
    Index(Index),
}

/// Reads manifest bytes of `content_type` (the response's `Content-Type`, else the
/// document's own `mediaType`).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<Manifest, String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: Option<String>,
        #[serde(default)]
        schema_version: Option<u32>,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        config: Option<serde_json::Value>,
        #[serde(default)]
        layers: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(bytes).map_err(|e| format!("the manifest does not parse: {e}"))?;
    let declared = probe.media_type.clone();
    let kind = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().to_string())
        .filter(|c| {
            [
                DOCKER_MANIFEST,
                DOCKER_LIST,
                OCI_MANIFEST,
                OCI_INDEX,
                DOCKER_SCHEMA1,
                DOCKER_SCHEMA1_SIGNED,
            ]
            .contains(&c.as_str())
        })
        .or(declared)
        .unwrap_or_else(|| {
            if probe.manifests.is_some() {
                OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    if kind == DOCKER_SCHEMA1 || kind == DOCKER_SCHEMA1_SIGNED || probe.schema_version == Some(1) {
        return Err("Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of the image to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2".to_string());
    }
    // containerd's `validateMediaType`: a document with the other kind's fields, or that
    // declares the other kind, is refused, so that no document is an image to one client
    // and an index to another (CVE-2021-41190).
    let declares_index = matches!(probe.media_type.as_deref(), Some(DOCKER_LIST | OCI_INDEX));
    let declares_image = matches!(
        probe.media_type.as_deref(),
        Some(DOCKER_MANIFEST | OCI_MANIFEST)
    );
    match kind.as_str() {
        DOCKER_MANIFEST | OCI_MANIFEST if probe.manifests.is_some() || declares_index => {
            return Err(format!(
                "media type: expected manifest but found index ({kind})"
            ));
        }
        DOCKER_LIST | OCI_INDEX
            if probe.config.is_some() || probe.layers.is_some() || declares_image =>
        {
            return Err(format!(
                "media type: expected index but found manifest ({kind})"
            ));
        }
        _ => {}
    }
    match kind.as_str() {
        DOCKER_LIST | OCI_INDEX => serde_json::from_slice(bytes)
            .map(Manifest::Index)
            .map_err(|e| format!("the index does not parse: {e}")),
        DOCKER_MANIFEST | OCI_MANIFEST => serde_json::from_slice(bytes)
            .map(Manifest::Image)
            .map_err(|e| format!("the manifest does not parse: {e}")),
        other => Err(format!("unsupported manifest media type {other}")),
    }
}

/// The entry of `index` for `wanted` (Docker's message when there is none).
pub fn select<'i>(index: &'i Index, wanted: &Platform) -> Result<&'i Descriptor, String> {
    let candidates = index.manifests.iter().filter(|d| {
        matches!(d.media_type.as_str(), DOCKER_MANIFEST | OCI_MANIFEST | "")
            && d.platform.as_ref().is_some_and(|p| p.serves(wanted))
    });
    // An exact variant first, then the first that serves.
    let mut first = None;
    for d in candidates {
        let p = d.platform.as_ref().expect("filtered on platform");
        if p.variant == wanted.variant {
            return Ok(d);
        }
        first.get_or_insert(d);
    }
    first.ok_or_else(|| {
        format!(
            "no matching manifest for {} in the manifest list entries",
            wanted
        )
    })
}

/// Whether a layer's media type is one berth unpacks (tar, gzip or zstd, Docker's or
/// OCI's, distributable or not).
pub fn layer_supported(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            | "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, Option<&str>)]) -> Index {
        Index {
            manifests: entries
                .iter()
                .enumerate()
                .map(|(i, (os, arch, variant))| Descriptor {
                    media_type: OCI_MANIFEST.to_string(),
                    digest: format!("sha256:{i}"),
                    size: 1,
                    platform: Some(Platform {
                        os: os.to_string(),
                        architecture: arch.to_string(),
                        variant: variant.map(str::to_string),
                    }),
                    urls: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn the_wanted_platform_is_chosen() {
        let i = index(&[
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("linux", "amd64", None),
        ]);
        assert_eq!(
            select(&i, &Platform::parse("linux/amd64").unwrap())
                .unwrap()
                .digest,
            "sha256:2"
        );
        assert_eq!(
            select(&i, &Platform::parse("linux/arm64").unwrap())
                .unwrap()
                .digest,
            "sha256:1"
        );
        assert_eq!(
            select(&i, &Platform::parse("linux/arm/v7").unwrap())
                .unwrap()
                .digest,
            "sha256:0"
        );
        let e = select(&i, &Platform::parse("linux/s390x").unwrap()).unwrap_err();
        assert_eq!(
            e,
            "no matching manifest for linux/s390x in the manifest list entries"
        );
        assert!(select(&i, &Platform::parse("windows/amd64").unwrap()).is_err());
    }

    #[test]
    fn platforms_parse_as_docker_takes_them() {
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert!(Platform::parse("linux//").is_err());
        assert!(Platform::parse("a/b/c/d").is_err());
    }

    #[test]
    fn schema1_is_refused_and_kinds_are_told_apart() {
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(parse(s1, None)
            .unwrap_err()
            .contains("schema 1 support has been removed"));
        let idx = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse(idx, None).unwrap(), Manifest::Index(_)));
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:a","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(m, Some(DOCKER_MANIFEST)).unwrap(),
            Manifest::Image(_)
        ));
        assert!(parse(b"not json", None).is_err());
    }

    #[test]
    fn a_document_of_the_other_kind_is_refused() {
        let m = br#"{"schemaVersion":2,"config":{"digest":"sha256:a","size":1},"layers":[]}"#;
        let e = parse(m, Some(OCI_INDEX)).unwrap_err();
        assert_eq!(
            e,
            format!("media type: expected index but found manifest ({OCI_INDEX})")
        );
        let says_index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":{"digest":"sha256:a","size":1},"layers":[]}"#;
        let e = parse(says_index, Some(OCI_MANIFEST)).unwrap_err();
        assert!(e.contains("expected manifest but found index"), "{e}");
        // Both kinds' fields: an index (by its `manifests`) with layers.
        let both = br#"{"schemaVersion":2,"manifests":[],"config":{"digest":"sha256:a","size":1},"layers":[]}"#;
        assert!(parse(both, None)
            .unwrap_err()
            .contains("expected index but found manifest"));
        assert!(parse(both, Some(DOCKER_MANIFEST))
            .unwrap_err()
            .contains("expected manifest but found index"));
        // A Content-Type of its own (not a manifest's) leaves the document's word.
        let oci = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"digest":"sha256:a","size":1},"layers":[]}"#;
        assert!(matches!(
            parse(oci, Some("application/json")).unwrap(),
            Manifest::Image(_)
        ));
    }
}
