//! The image operations that change the store, with Docker's image events: the daemon calls
//! these instead of the store, so that every `tag`, `untag`, `delete`, `import`, `load`,
//! `save` and `prune` is in the event log. Blocking (the store's I/O): call them off the
//! async threads. The events follow Docker's `LogImageEvent`: the actor is the image id, and
//! `name` the new reference for `tag`, the id otherwise.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use berth_image::{DeleteItem, ImportOptions, LabelFilter, LoadedImage, PruneReport};

use crate::error::Result;
use crate::Engine;

impl Engine {
    /// `POST /images/{name}/tag`.
    pub fn tag_image(&self, source: &str, repo: &str, tag: &str) -> Result<()> {
        self.images.tag(source, repo, tag)?;
        let id = self.images.resolve(source)?.id;
        self.emit_image(&id, &familiar_tagged(repo, tag), "tag");
        Ok(())
    }

    /// `DELETE /images/{name}`: an `untag` event per name removed and a `delete` for the
    /// image when it went too (the labels are read before, while the image exists).
    pub fn remove_image(&self, reference: &str, force: bool) -> Result<Vec<DeleteItem>> {
        let before = self.images.resolve(reference).ok();
        let in_use = |id: &str| self.container_using_image(id);
        let items = self.images.remove(reference, force, &in_use)?;
        if let Some(img) = before {
            let labels = img.config.config.labels.as_ref();
            self.emit_deletions(&items, &HashMap::from([(img.id.clone(), labels)]));
        }
        Ok(items)
    }

    /// `POST /images/prune`: the events of each removal, then Docker's `prune` event.
    pub fn prune_images(&self, all: bool, labels: &[LabelFilter]) -> Result<PruneReport> {
        let before = self.images.list();
        let in_use = |id: &str| self.container_using_image(id);
        let report = self.images.prune(all, &in_use, labels)?;
        let known: HashMap<String, Option<&BTreeMap<String, String>>> = before
            .iter()
            .map(|i| (i.id.clone(), i.config.config.labels.as_ref()))
            .collect();
        self.emit_deletions(&report.deleted, &known);
        self.emit_prune(berth_api::events::IMAGE, report.space_reclaimed);
        Ok(report)
    }

    /// `untag` for every name removed from the images in `known`, `delete` for each of them
    /// removed (not for the layers, which `Deleted` lines also list). The untags and the
    /// delete of one image come in the store's order, which is Docker's.
    fn emit_deletions(
        &self,
        items: &[DeleteItem],
        known: &HashMap<String, Option<&BTreeMap<String, String>>>,
    ) {
        // An `Untagged` line names the reference, not the image: it belongs to the image
        // whose `Deleted` line follows, or (an `rmi` that only untags) to the one image.
        let mut untags = 0;
        for item in items {
            match item {
                DeleteItem::Untagged(_) => untags += 1,
                DeleteItem::Deleted(id) => {
                    if let Some(labels) = known.get(id) {
                        for _ in 0..std::mem::take(&mut untags) {
                            self.emit_image_with(id, id, "untag", *labels);
                        }
                        self.emit_image_with(id, id, "delete", None);
                    }
                }
            }
        }
        if let (true, Some((id, labels))) = (known.len() == 1, known.iter().next()) {
            for _ in 0..untags {
                self.emit_image_with(id, id, "untag", *labels);
            }
        }
    }

    /// `POST /images/create?fromSrc=`: the new image's id; `tag` (when named) and `import`
    /// events, in Docker's order.
    pub fn import_image(&self, rootfs_tar: &mut dyn Read, opts: &ImportOptions) -> Result<String> {
        let id = self.images.import(rootfs_tar, opts)?;
        if let Some(reference) = &opts.reference {
            self.emit_image(&id, &familiar_tagged(reference, ""), "tag");
        }
        self.emit_image(&id, &id, "import");
        Ok(id)
    }

    /// `POST /images/load`: a `load` event per image.
    pub fn load_images(&self, archive: &mut dyn Read) -> Result<Vec<LoadedImage>> {
        let loaded = self.images.load(archive)?;
        for img in &loaded {
            self.emit_image(&img.id, &img.id, "load");
        }
        Ok(loaded)
    }

    /// `GET /images/get`: a `save` event per image written.
    pub fn save_images(&self, references: &[String], out: &mut dyn Write) -> Result<()> {
        for id in self.images.save(references, out)? {
            self.emit_image(&id, &id, "save");
        }
        Ok(())
    }
}

/// `repo:tag` in familiar form (`busybox:latest` of `docker.io/library/busybox`), the
/// reference a tag event names; what does not parse is given back as written.
pub fn familiar_tagged(repo: &str, tag: &str) -> String {
    match berth_image::normalize_reference(repo) {
        Ok((name, written, _)) => {
            let tag = if tag.is_empty() {
                written.unwrap_or_else(|| "latest".into())
            } else {
                tag.to_string()
            };
            format!("{name}:{tag}")
        }
        Err(_) => repo.to_string(),
    }
}

impl Engine {
    /// Docker's `push` event: the actor is the reference pushed (`localhost:5000/x:1`),
    /// named by its repository.
    pub fn image_pushed(&self, reference: &str, name: &str) {
        let labels = self
            .images
            .resolve(reference)
            .ok()
            .and_then(|r| r.config.config.labels);
        self.emit_image_with(reference, name, "push", labels.as_ref());
    }

    /// Docker's `pull` event: the actor is the reference pulled (`busybox:latest`), named
    /// by its repository (`busybox`), with the image's labels.
    pub fn image_pulled(&self, id: &str, reference: &str, name: &str) {
        let labels = self
            .images
            .resolve(id)
            .ok()
            .and_then(|r| r.config.config.labels);
        self.emit_image_with(reference, name, "pull", labels.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_events_name_the_familiar_reference() {
        assert_eq!(
            familiar_tagged("docker.io/library/busybox", ""),
            "busybox:latest"
        );
        assert_eq!(familiar_tagged("busybox", "v2"), "busybox:v2");
        assert_eq!(
            familiar_tagged("localhost:5000/x:1", ""),
            "localhost:5000/x:1"
        );
    }
}
