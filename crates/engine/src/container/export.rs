//! `GET /containers/{id}/export` (`docker export`): the container's whole filesystem as a
//! tar, streamed (the image store's `export_container`), then Docker's `export` event.

use std::io::Write;
use std::sync::Arc;

use crate::container::Container;
use crate::error::{EngineError, Result};
use crate::record::Status;
use crate::Engine;

impl Engine {
    /// Docker's refusals before an export begins (`ContainerExport`): the container exists,
    /// is not dead and is not being removed. Returns it, for [`Engine::export`].
    pub fn export_target(&self, name_or_id: &str) -> Result<Arc<Container>> {
        let c = self.get(name_or_id)?;
        match c.state().status {
            Status::Dead => Err(EngineError::Conflict(format!(
                "You cannot export container {} which is Dead",
                c.id
            ))),
            Status::Removing => Err(EngineError::Conflict(format!(
                "You cannot export container {} which is being removed",
                c.id
            ))),
            _ => Ok(c),
        }
    }

    /// Writes the container's filesystem to `out` as a tar; `export` event when all of it
    /// went out. `name` is how the client named it (Docker's error quotes it). Blocking.
    pub fn export(&self, c: &Container, name: &str, out: &mut dyn Write) -> Result<()> {
        self.ensure_rw_layer(c);
        self.images
            .export_container(&c.id, out)
            .map_err(|e| EngineError::Internal(format!("Error exporting container {name}: {e}")))?;
        self.emit_container(c, "export", &[]);
        Ok(())
    }
}
