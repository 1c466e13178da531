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
    /// 413: an ingest over its limit (size, or the free-space reserve)
    TooLarge,
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
    #[error("{}: path escapes the layer root", clip(entry))]
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
    /// An ingest that would decompress or write more than its limit allows.
    #[error("{0}")]
    TooLarge(String),
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
            ImageError::TooLarge(_) => ErrorKind::TooLarge,
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

/// The most of an untrusted name (a tar entry, a reference) an error message quotes.
const MAX_QUOTED: usize = 256;

/// `name`, cut to [`MAX_QUOTED`] bytes (on a character boundary) with its full length said,
/// and control characters escaped: an 8 MiB PAX path must not become an 8 MiB response and
/// log line, nor a header of random bytes write raw control codes into them.
pub(crate) fn clip(name: &str) -> String {
    let mut end = name.len().min(MAX_QUOTED);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let mut out: String = name[..end]
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if end < name.len() {
        out.push_str(&format!("... ({} bytes)", name.len()));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clip_cuts_long_names_and_escapes_control_characters() {
        assert_eq!(clip("etc/passwd"), "etc/passwd");
        assert_eq!(clip("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        let long = "é".repeat(1000);
        let clipped = clip(&long);
        assert!(clipped.ends_with("... (2000 bytes)"), "{clipped}");
        assert!(clipped.len() < 300, "{}", clipped.len());
    }
}
