//! `GET /containers/{id}/changes` (`docker diff`): what the container changed in its rw
//! layer, in Docker's terms (the image store's `container_changes` has the rules).

use berth_image::Change;

use crate::container::Container;
use crate::error::Result;
use crate::Engine;

impl Engine {
    /// The container's changes, sorted by path. Blocking (walks the rw layer).
    pub fn changes(&self, name_or_id: &str) -> Result<Vec<Change>> {
        let c = self.get(name_or_id)?;
        self.ensure_rw_layer(&c);
        Ok(self.images.container_changes(&c.id)?)
    }

    /// Makes the container's rw layer again when a crash lost it (it is not forced to disk:
    /// ARCHITECTURE.md §5), as `start` does; a layer that exists is left as it is. Blocking.
    pub(crate) fn ensure_rw_layer(&self, c: &Container) {
        let image = c.record().image_id.clone();
        if let Err(e) = self.images.prepare_snapshot(&c.id, &image) {
            tracing::debug!(container = %c.id, "preparing the rw layer again: {e}");
        }
    }
}
