//! The crate's error type. Messages are lowercase except the ones Docker clients match
//! (`No such image: x`, the `conflict: ...` family), which are copied verbatim.

use std::path::{Path, PathBuf};

/// What kind of failure an [`ImageError`] is; the daemon maps it to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404
    NotFound,
    /// 409
    Conflict,
    /// 400
    InvalidArgument,
    /// 500
    Internal,
}

/// Every error `berth-image` returns.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Docker's exact wording: the docker CLI pulls when it sees it on `run`.
    #[error("No such image: {reference}")]
    NotFound {
        /// the reference as the caller wrote it
        reference: String,
    },
    /// A snapshot key that does not exist.
    #[error("snapshot {key} not found")]
    SnapshotNotFound {
        /// the snapshot key
        key: String,
    },
    /// A conflict whose full message is Docker's (`conflict: unable to delete ...`).
    #[error("{0}")]
    Conflict(String),
    /// A reference that does not parse (`invalid reference format...`).
    #[error("{0}")]
    InvalidReference(String),
    /// Any other bad input.
    #[error("{0}")]
    InvalidArgument(String),
    /// A layer or archive entry that would land outside its root.
    #[error("{entry}: path escapes the layer root")]
    PathEscape {
        /// the entry name as written in the tar
        entry: String,
    },
    /// A malformed image archive (docker save / OCI layout).
    #[error("invalid image archive: {0}")]
    InvalidArchive(String),
    /// Content whose digest is not the one it was announced with.
    #[error("{what}: digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// what was checked ("layer 2 of busybox", "blob ...")
        what: String,
        /// the digest announced
        expected: String,
        /// the digest computed
        actual: String,
    },
    /// A filesystem operation failed; `context` names the operation and its path.
    #[error("{context}")]
    Io {
        /// e.g. `write /var/lib/berth/image/refs.json`
        context: String,
        /// the underlying error
        #[source]
        source: std::io::Error,
    },
    /// A state file that does not parse.
    #[error("parse {path}")]
    Json {
        /// the file
        path: PathBuf,
        /// the underlying error
        #[source]
        source: serde_json::Error,
    },
}

impl ImageError {
    /// The kind of this error, for the daemon's status mapping.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound { .. } | ImageError::SnapshotNotFound { .. } => {
                ErrorKind::NotFound
            }
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::InvalidReference(_)
            | ImageError::InvalidArgument(_)
            | ImageError::PathEscape { .. }
            | ImageError::InvalidArchive(_)
            | ImageError::DigestMismatch { .. } => ErrorKind::InvalidArgument,
            ImageError::Io { .. } | ImageError::Json { .. } => ErrorKind::Internal,
        }
    }

    pub(crate) fn io(op: &str, path: &Path, source: std::io::Error) -> ImageError {
        ImageError::Io {
            context: format!("{op} {}", path.display()),
            source,
        }
    }

    pub(crate) fn not_found(reference: &str) -> ImageError {
        ImageError::NotFound {
            reference: reference.to_string(),
        }
    }
}

/// Attach an operation and a path to an `io::Result`.
pub(crate) trait IoContext<T> {
    fn ctx(self, op: &str, path: &Path) -> Result<T, ImageError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &str, path: &Path) -> Result<T, ImageError> {
        self.map_err(|e| ImageError::io(op, path, e))
    }
}
