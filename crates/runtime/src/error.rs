//! The crate's error type.

use std::path::PathBuf;

/// What kind of failure a [`RuntimeError`] is; the daemon maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Something named does not exist.
    NotFound,
    /// The request can never work as given (bad capability, bad profile, command not found).
    InvalidArgument,
    /// The container is not in a state that allows the operation.
    Conflict,
    /// The shim is gone or does not answer.
    Unavailable,
    /// Anything else.
    Internal,
}

/// Errors of the runtime crate. Messages are lowercase and use Docker's wording where the docker
/// CLI or users match on it.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `--cap-add`/`--cap-drop` names a capability Linux does not have (Docker's text).
    #[error("unknown capability: {0:?}")]
    UnknownCapability(String),
    /// The capability exists but this host's bounding set lacks it.
    #[error(
        "capability not supported by your kernel or not available in the current environment: {0:?}"
    )]
    UnavailableCapability(String),
    /// `-u name` with no passwd entry (Docker's text).
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// `-u x:group` with no group entry (Docker's text).
    #[error("unable to find group {0}: no matching entries in group file")]
    GroupNotFound(String),
    /// The command cannot be executed. The message contains the substrings the docker CLI maps
    /// to exit codes: `executable file not found` / `no such file or directory` (127),
    /// `permission denied` (126).
    #[error("{0}")]
    Exec(String),
    /// A seccomp profile that cannot be converted.
    #[error("invalid seccomp profile: {0}")]
    Seccomp(String),
    /// The spec is not usable (empty args, unknown rlimit, ...).
    #[error("{0}")]
    InvalidSpec(String),
    /// The operation does not fit the container's state (e.g. pause a paused container).
    #[error("{0}")]
    Conflict(String),
    /// An I/O operation on a named path failed.
    #[error("{path}: {message}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error text.
        message: String,
    },
    /// The shim could not be reached or broke the protocol.
    #[error("shim: {0}")]
    Shim(String),
    /// Creating or starting the container failed inside the shim.
    #[error("{0}")]
    Start(String),
}

impl RuntimeError {
    /// The error's kind, for the daemon's status mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            RuntimeError::UnknownCapability(_)
            | RuntimeError::UnavailableCapability(_)
            | RuntimeError::Exec(_)
            | RuntimeError::Seccomp(_)
            | RuntimeError::InvalidSpec(_)
            // Not NotFound: a 404 from start would read as "no such container".
            | RuntimeError::UserNotFound(_)
            | RuntimeError::GroupNotFound(_) => ErrorKind::InvalidArgument,
            RuntimeError::Conflict(_) => ErrorKind::Conflict,
            RuntimeError::Shim(_) => ErrorKind::Unavailable,
            RuntimeError::Io { .. } | RuntimeError::Start(_) => ErrorKind::Internal,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        RuntimeError::Io {
            path: path.into(),
            message: err.to_string(),
        }
    }

    /// The short name of the kind, used on the shim's report pipe.
    pub(crate) fn kind_name(&self) -> &'static str {
        match self.kind() {
            ErrorKind::NotFound => "not_found",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Internal => "internal",
        }
    }

    /// Rebuilds an error reported by the shim from its message and kind name, so that the
    /// variant (and with it `kind()`) survives the trip over the report pipe.
    pub fn from_report(message: String, kind: Option<&str>) -> Self {
        let between = |prefix: &str, suffix: &str| {
            message
                .strip_prefix(prefix)
                .and_then(|r| r.strip_suffix(suffix))
                .map(str::to_string)
        };
        if let Some(user) = between(
            "unable to find user ",
            ": no matching entries in passwd file",
        ) {
            return RuntimeError::UserNotFound(user);
        }
        if let Some(group) = between(
            "unable to find group ",
            ": no matching entries in group file",
        ) {
            return RuntimeError::GroupNotFound(group);
        }
        match kind {
            Some("invalid_argument") if message.starts_with("exec: ") => {
                RuntimeError::Exec(message)
            }
            Some("invalid_argument") => RuntimeError::InvalidSpec(message),
            Some("conflict") => RuntimeError::Conflict(message),
            _ => RuntimeError::Start(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reported_errors_keep_their_variant_and_kind() {
        for err in [
            RuntimeError::UserNotFound("nosuch".into()),
            RuntimeError::GroupNotFound("g".into()),
            RuntimeError::Exec(r#"exec: "x": executable file not found in $PATH"#.into()),
            RuntimeError::UnknownCapability("CAP_FOO".into()),
            RuntimeError::Start("boom".into()),
        ] {
            let back = RuntimeError::from_report(err.to_string(), Some(err.kind_name()));
            assert_eq!(back.to_string(), err.to_string());
            assert_eq!(back.kind(), err.kind());
        }
    }
}
