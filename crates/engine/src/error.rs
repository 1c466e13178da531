//! The engine's errors. Each carries a [`ErrorKind`] that the daemon maps to an HTTP status
//! in one place; messages use Docker's wording where clients match it.

use std::path::PathBuf;

/// What kind of failure an error is; decides the HTTP status at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 400.
    InvalidArgument,
    /// 413: an image load or import over its limit.
    TooLarge,
    /// 304: the container is already in the asked state.
    NotModified,
    /// 500.
    Internal,
    /// 501.
    NotImplemented,
}

/// Everything the engine can fail with.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("You cannot remove a running container {0}. Stop the container before attempting removal or force remove")]
    RemoveRunning(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("Container {0} is paused, unpause the container before stopping or killing")]
    Paused(String),
    #[error("Container {0} is not paused")]
    NotPaused(String),
    #[error("container is already {0}")]
    AlreadyInState(&'static str),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Image(#[from] berth_image::ImageError),
    /// A start failure from the runtime, in the OCI wording the docker CLI maps to exit codes.
    #[error("{0}")]
    Start(String),
    #[error("{context} {}: {source}", path.display())]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl EngineError {
    /// The kind, for the HTTP status.
    pub fn kind(&self) -> ErrorKind {
        use EngineError::*;
        match self {
            NoSuchContainer(_) => ErrorKind::NotFound,
            NameInUse { .. }
            | Conflict(_)
            | RemoveRunning(_)
            | NotRunning(_)
            | Paused(_)
            | NotPaused(_) => ErrorKind::Conflict,
            InvalidName(_) | Invalid(_) | Start(_) => ErrorKind::InvalidArgument,
            AlreadyInState(_) => ErrorKind::NotModified,
            Image(e) => match e.kind() {
                berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
                berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_image::ErrorKind::TooLarge => ErrorKind::TooLarge,
                _ => ErrorKind::Internal,
            },
            Io { .. } | Internal(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        EngineError::Io {
            context,
            path: path.into(),
            source,
        }
    }
}

/// The engine's result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;
