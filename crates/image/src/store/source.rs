//! What a push reads from the store: an image's config, its layer blobs as stored, and
//! the raw manifest it was pulled by; and the repository digest a push records.

use std::fs::File;

use super::{resolve_in, ImageStore};
use crate::error::ImageError;

/// One layer as stored.
#[derive(Debug, Clone)]
pub struct SourceLayer {
    /// `sha256:` of the blob (compressed or not, as it came).
    pub blob: String,
    pub media_type: String,
    pub size: u64,
}

/// An image as a push sends it.
#[derive(Debug, Clone)]
pub struct ImageSource {
    pub id: String,
    /// The config's raw bytes (their digest is the id).
    pub config: Vec<u8>,
    pub layers: Vec<SourceLayer>,
    /// The raw manifest the image was pulled by, when it still describes these blobs.
    pub manifest: Option<Vec<u8>>,
    /// `repo@sha256:..` names the image has (where its blobs are known to be).
    pub repo_digests: Vec<String>,
}

impl ImageStore {
    /// The image `reference` names, as a push sends it.
    pub fn image_source(&self, reference: &str) -> Result<ImageSource, ImageError> {
        let st = self.lock();
        let (id, _) = resolve_in(&st, reference)?;
        let entry = &st.images[&id];
        let layers: Vec<SourceLayer> = entry
            .meta
            .layers
            .iter()
            .map(|l| SourceLayer {
                blob: l.blob.clone(),
                media_type: l.media_type.clone(),
                size: l.blob_size,
            })
            .collect();
        let manifest = entry
            .meta
            .manifest
            .as_deref()
            .and_then(|d| self.content.read(d).ok());
        let repo_digests = st
            .refs
            .digests
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .collect();
        drop(st);
        let config = self.content.read(&id)?;
        Ok(ImageSource {
            id,
            config,
            layers,
            manifest,
            repo_digests,
        })
    }

    /// Refuses an image of more layers than the overlay mount stacks (before a pull
    /// downloads any of them).
    pub fn check_stackable(&self, layers: usize) -> Result<(), ImageError> {
        self.lock().snapshots.check_stackable(layers)
    }

    /// A blob of the store, opened for reading.
    pub fn open_blob(&self, digest: &str) -> Result<File, ImageError> {
        self.content.open_blob(digest)
    }

    /// Records `name@digest` (`localhost:5000/x@sha256:..`) for image `id`, as a push
    /// does for the manifest it sent.
    pub fn add_repo_digest(&self, id: &str, name_at_digest: &str) -> Result<(), ImageError> {
        let mut st = self.lock();
        if !st.images.contains_key(id) {
            return Err(ImageError::NotFound {
                reference: id.to_string(),
            });
        }
        st.refs
            .digests
            .insert(name_at_digest.to_string(), id.to_string());
        self.save_refs(&st)
    }

    /// The tags of repository `familiar_name` (`localhost:5000/x`) with their images,
    /// sorted: what a push of a repository without a tag sends.
    pub fn tags_of(&self, familiar_name: &str) -> Vec<(String, String)> {
        let st = self.lock();
        st.refs
            .tags
            .iter()
            .filter_map(|(k, id)| {
                let (repo, tag) = k.rsplit_once(':')?;
                (repo == familiar_name && !tag.contains('/')).then(|| (tag.to_string(), id.clone()))
            })
            .collect()
    }
}
