//! The client's error type: daemon answers keep their HTTP status and `message`.

use http::StatusCode;

/// What went wrong, coarsely; callers branch on this (the CLI maps 404 on `rm -f` to success).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404.
    NotFound,
    /// 409.
    Conflict,
    /// 400 or a bad argument given to the client itself.
    InvalidArgument,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 501.
    NotImplemented,
    /// 503, or the daemon's socket cannot be reached.
    Unavailable,
    /// Everything else: 500, malformed answers, broken connections.
    Internal,
}

/// An error from a call to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error status; `message` is its `{"message": ..}` text.
    /// Displayed exactly as the docker CLI does: `Error response from daemon: <message>`.
    #[error("Error response from daemon: {message}")]
    Daemon {
        /// The HTTP status of the answer.
        status: StatusCode,
        /// The daemon's message (the raw body when it was not JSON).
        message: String,
    },
    /// The socket could not be connected to (docker's wording).
    #[error("Cannot connect to the berth daemon at {host}. Is the berth daemon running?")]
    Connect {
        /// The host as given, `unix:///run/berth/berth.sock`.
        host: String,
        /// Why connecting failed.
        #[source]
        source: std::io::Error,
    },
    /// The host string is not a unix socket address.
    #[error("invalid host {0:?}: only unix:// sockets are supported")]
    InvalidHost(String),
    /// An HTTP-level failure (connection reset, malformed response).
    #[error("error during connect: {0}")]
    Http(#[from] hyper::Error),
    /// The daemon's answer did not decode.
    #[error("cannot decode the daemon's answer: {0}")]
    Decode(#[from] serde_json::Error),
    /// Local I/O while streaming a request or response body.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An attach or exec start answered without switching protocols.
    #[error("unable to upgrade to tcp, received {0}")]
    NoUpgrade(u16),
    /// An error the daemon sent in-band after the response started (stdcopy stream 3,
    /// or `errorDetail` in a JSON progress stream).
    #[error("{0}")]
    Stream(String),
}

impl ClientError {
    /// The HTTP status, when the daemon answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The daemon's message without the `Error response from daemon: ` prefix.
    pub fn message(&self) -> String {
        match self {
            ClientError::Daemon { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }

    /// The coarse class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ClientError::Daemon { status, .. } => match status.as_u16() {
                400 => ErrorKind::InvalidArgument,
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                404 => ErrorKind::NotFound,
                409 => ErrorKind::Conflict,
                501 => ErrorKind::NotImplemented,
                503 => ErrorKind::Unavailable,
                _ => ErrorKind::Internal,
            },
            ClientError::Connect { .. } => ErrorKind::Unavailable,
            ClientError::InvalidHost(_) => ErrorKind::InvalidArgument,
            _ => ErrorKind::Internal,
        }
    }

    /// True for a 404 answer.
    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// Builds the error for a non-success answer the way the Go client does: the body is
    /// decoded as `{"message":..}` only when `Content-Type` is exactly `application/json`;
    /// any other body becomes the message as is; an empty body gets Go's generic text.
    pub(crate) fn from_response(
        status: StatusCode,
        content_type: Option<&str>,
        body: &[u8],
        path: &str,
    ) -> ClientError {
        let message = if content_type == Some("application/json") {
            match serde_json::from_slice::<berth_api::ErrorBody>(body) {
                Ok(b) => b.message,
                Err(_) => String::from_utf8_lossy(body).trim().to_string(),
            }
        } else {
            String::from_utf8_lossy(body).trim().to_string()
        };
        let message = if message.is_empty() {
            format!(
                "request returned {} for API route and version {path}, check if the server supports the requested API version",
                status.canonical_reason().unwrap_or(status.as_str())
            )
        } else {
            message
        };
        ClientError::Daemon { status, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_error_body_is_decoded_only_for_exact_content_type() {
        let body = br#"{"message":"No such container: web"}"#;
        let e = ClientError::from_response(
            StatusCode::NOT_FOUND,
            Some("application/json"),
            body,
            "/v1.44/containers/web/json",
        );
        assert_eq!(
            e.to_string(),
            "Error response from daemon: No such container: web"
        );
        assert!(e.is_not_found());
        let raw = ClientError::from_response(
            StatusCode::NOT_FOUND,
            Some("application/json; charset=utf-8"),
            body,
            "/x",
        );
        assert_eq!(raw.message(), r#"{"message":"No such container: web"}"#);
    }

    #[test]
    fn empty_error_body_gets_go_clients_text() {
        let e = ClientError::from_response(StatusCode::NOT_FOUND, None, b"", "/v1.44/x");
        assert_eq!(
            e.message(),
            "request returned Not Found for API route and version /v1.44/x, check if the server supports the requested API version"
        );
    }
}
