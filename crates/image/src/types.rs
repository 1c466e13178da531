//! The plain values `ImageStore` takes and returns.

use serde::Serialize;

use crate::config::{ContainerConfig, ImageConfig};

/// One image as `docker images` / `docker inspect` need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRecord {
    /// `sha256:<hex>`, the digest of the raw config bytes
    pub id: String,
    /// familiar form, `busybox:latest`, sorted
    pub repo_tags: Vec<String>,
    /// `busybox@sha256:...`, sorted
    pub repo_digests: Vec<String>,
    /// the parsed config (the raw bytes stay in the content store)
    pub config: ImageConfig,
    /// sum of the uncompressed layer sizes (bytes of file content)
    pub size: u64,
    /// unix seconds from the config's `created`, 0 if unknown
    pub created: i64,
    /// RFC 3339 time of the last `tag` (Docker's `Metadata.LastTagTime`)
    pub last_tag_time: Option<String>,
    /// always "" (berth keeps no parent chain between images)
    pub parent: String,
}

/// How the images' layers add up, as Docker's `system df` counts them (its `LayerDiskUsage`
/// and the image list's `SharedSize`). A layer is its chain id: two images with the same
/// base have the same first layers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayerSharing {
    /// Every layer some image has, each counted once (Docker's `LayersSize`).
    pub layers_size: u64,
    /// Per image id: the bytes of its layers that another image has too (`SharedSize`).
    pub shared_size: std::collections::HashMap<String, u64>,
}

/// Options of `docker import`.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// `repo[:tag]` to tag the result with
    pub reference: Option<String>,
    /// Dockerfile lines: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL,
    /// USER, VOLUME, WORKDIR (JSON or shell form)
    pub changes: Vec<String>,
    /// the commit message; empty means Docker's `Imported from -`
    pub message: String,
    /// `os/arch[/variant]`; default: this host
    pub platform: Option<String>,
}

/// One record of the build cache (a build step's image no build returned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// The image's id.
    pub id: String,
    /// Bytes of its own layer that no ordinary image holds.
    pub size: u64,
    /// Its layer is held by an ordinary image too.
    pub shared: bool,
    /// Unix seconds.
    pub created: i64,
    /// The step (its history entry's `created_by`).
    pub description: String,
}

/// What `docker commit` makes of a container's rw layer.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// The container's image, parent of the new one.
    pub image_id: String,
    /// `repo[:tag]` to tag the result with (no tag: `latest`).
    pub reference: Option<String>,
    /// Dockerfile lines applied to `config` (the instructions `import --change` takes).
    pub changes: Vec<String>,
    /// `--author`
    pub author: String,
    /// `--message`: the new history entry's comment.
    pub comment: String,
    /// The container's config: the new image's runtime defaults once `changes` are applied.
    pub config: ContainerConfig,
    /// The container's config as it is (`container_config`; its `Cmd` is the history
    /// entry's `created_by`, as Docker writes it).
    pub container_config: ContainerConfig,
    /// The container's id (`container`).
    pub container_id: String,
    /// A build step's cache key: the image is build cache (found by [`ImageStore::cached`],
    /// not listed) until [`ImageStore::keep_built`] makes it a build's result.
    ///
    /// [`ImageStore::cached`]: crate::ImageStore::cached
    /// [`ImageStore::keep_built`]: crate::ImageStore::keep_built
    pub cache_key: Option<String>,
}

/// One image a `load` brought in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    /// `sha256:<hex>`
    pub id: String,
    /// familiar `name:tag`s given to it (empty: print `Loaded image ID: ...`)
    pub tags: Vec<String>,
}

/// One line of an `rmi`/`prune` answer: `{"Untagged": ".."}` or `{"Deleted": ".."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum DeleteItem {
    /// a `name:tag` or `name@digest` that was removed
    Untagged(String),
    /// an image id or layer chain id that was removed
    Deleted(String),
}

/// One row of `docker history`, newest first; serializes as the API's `HistoryResponseItem`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct HistoryItem {
    /// `sha256:...` for the top row, `<missing>` below (no parent images are kept)
    pub id: String,
    /// unix seconds
    pub created: i64,
    /// the step
    pub created_by: String,
    /// the image's tags on the top row
    pub tags: Vec<String>,
    /// bytes the step added
    pub size: i64,
    /// the step's comment
    pub comment: String,
}

/// A `label=` / `label!=` filter of `image prune`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelFilter {
    /// the label key
    pub key: String,
    /// `key=value` when set; otherwise only the key must exist
    pub value: Option<String>,
    /// `label!=`: keep images that do NOT match
    pub negate: bool,
}

impl LabelFilter {
    pub(crate) fn accepts(&self, config: &ImageConfig) -> bool {
        let labels = config.config.labels.as_ref();
        let matched = match (&self.value, labels.and_then(|l| l.get(&self.key))) {
            (None, found) => found.is_some(),
            (Some(want), Some(have)) => want == have,
            (Some(_), None) => false,
        };
        matched != self.negate
    }
}

/// What `prune` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// the untag/delete lines
    pub deleted: Vec<DeleteItem>,
    /// bytes of layer content removed
    pub space_reclaimed: u64,
}
