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
    /// 403: Docker's answer to a change that the object's state forbids (a network in use).
    Forbidden,
    /// 400.
    InvalidArgument,
    /// 413: an image load or import over its limit.
    TooLarge,
    /// 304: the container is already in the asked state.
    NotModified,
    /// 503: a container's shim cannot be reached.
    Unavailable,
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
    /// Another thing that does not exist (an exec instance), in Docker's words.
    #[error("{0}")]
    NotFound(String),
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
    Forbidden(String),
    #[error("{0}")]
    Image(#[from] berth_image::ImageError),
    #[error("{0}")]
    Volume(#[from] berth_volume::VolumeError),
    /// A start failure from the runtime, in the OCI wording the docker CLI maps to exit codes
    /// (`message`). Docker's status: 400 when the command cannot be run (exit code 126 or
    /// 127), 500 otherwise.
    #[error("{message}")]
    Start {
        message: String,
        #[source]
        source: berth_runtime::RuntimeError,
    },
    /// Any other runtime failure (signal, pause, resume, pids), after `context` ("Cannot
    /// pause container <id>"); the runtime's kind decides the status.
    #[error("{context}: {source}")]
    Runtime {
        context: String,
        #[source]
        source: berth_runtime::RuntimeError,
    },
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
            NoSuchContainer(_) | NotFound(_) => ErrorKind::NotFound,
            NameInUse { .. }
            | Conflict(_)
            | RemoveRunning(_)
            | NotRunning(_)
            | Paused(_)
            | NotPaused(_) => ErrorKind::Conflict,
            InvalidName(_) | Invalid(_) => ErrorKind::InvalidArgument,
            Forbidden(_) => ErrorKind::Forbidden,
            Start { message, .. } => {
                if matches!(
                    crate::container::start::start_failure_exit_code(message),
                    126 | 127
                ) {
                    ErrorKind::InvalidArgument
                } else {
                    ErrorKind::Internal
                }
            }
            Runtime { source, .. } => match source.kind() {
                berth_runtime::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_runtime::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_runtime::ErrorKind::Conflict => ErrorKind::Conflict,
                berth_runtime::ErrorKind::Unavailable => ErrorKind::Unavailable,
                berth_runtime::ErrorKind::Internal => ErrorKind::Internal,
            },
            AlreadyInState(_) => ErrorKind::NotModified,
            Image(e) => match e.kind() {
                berth_image::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_image::ErrorKind::Conflict => ErrorKind::Conflict,
                berth_image::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_image::ErrorKind::TooLarge => ErrorKind::TooLarge,
                _ => ErrorKind::Internal,
            },
            Volume(e) => match e.kind() {
                berth_volume::ErrorKind::NotFound => ErrorKind::NotFound,
                berth_volume::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                berth_volume::ErrorKind::Conflict => ErrorKind::Conflict,
                berth_volume::ErrorKind::TooLarge => ErrorKind::TooLarge,
                berth_volume::ErrorKind::Internal => ErrorKind::Internal,
            },
            Io { .. } | Internal(_) => ErrorKind::Internal,
        }
    }

    /// The message for the client. The same as `Display`, except that a volume store
    /// failure names no host path (berthd's log has the full message).
    pub fn public_message(&self) -> String {
        match self {
            EngineError::Volume(e) => e.public_message(),
            other => other.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::RuntimeError;

    #[test]
    fn runtime_errors_keep_their_kind_and_operand() {
        let e = EngineError::Runtime {
            context: "Cannot pause container abc".into(),
            source: RuntimeError::Conflict("container abc is already paused".into()),
        };
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(
            e.to_string(),
            "Cannot pause container abc: container abc is already paused"
        );
        let gone = EngineError::Runtime {
            context: "Cannot kill container abc".into(),
            source: RuntimeError::Shim("container abc: connection refused".into()),
        };
        assert_eq!(gone.kind(), ErrorKind::Unavailable);
        let start = |source: RuntimeError| EngineError::Start {
            message: format!("OCI runtime create failed: {source}: unknown"),
            source,
        };
        // Docker: 400 when the command cannot run (126/127), 500 otherwise.
        assert_eq!(
            start(RuntimeError::Exec(
                "exec: \"x\": executable file not found in $PATH".into()
            ))
            .kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            start(RuntimeError::Exec("exec /etc: permission denied".into())).kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            start(RuntimeError::Start("cgroup: boom".into())).kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn a_volume_store_failure_names_no_host_path_to_the_client() {
        let e = EngineError::Volume(berth_volume::VolumeError::Io {
            context: "remove",
            path: "/var/lib/berth/volumes/data".into(),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        });
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert!(e.to_string().contains("/var/lib/berth/volumes/data"), "{e}");
        let public = e.public_message();
        assert!(!public.contains("/var/lib"), "{public}");
        assert!(public.starts_with("volume store: remove: "), "{public}");
        let other = EngineError::NoSuchContainer("web".into());
        assert_eq!(other.public_message(), other.to_string());
    }
}
