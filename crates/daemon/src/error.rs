//! The one place where errors become HTTP responses: `{"message": ...}` with
//! `Content-Type: application/json` exactly (the Go client decodes only that).
//!
//! A server error (5xx) is told whole to berthd's log, and to the client with every cause
//! its chain has (the OS error, which a user can act on: "No space left on device") but no
//! path under berthd's own `--root` or `--exec-root` ([`InternalPaths`], applied by the
//! router's outermost layer). A 4xx message is the client's own input answered in Docker's
//! words (clients match them) and is left as it is.

use std::path::{Path, PathBuf};

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use berth_engine::{EngineError, ErrorKind};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// 404 with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    /// 500 with `message`.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
        }
    }
}

fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let status = status_of(e.kind());
        let mut message = e.public_message();
        let full = e.to_string();
        if full != message {
            // What the client is not told (a host path) is for the log.
            tracing::error!("{full}");
        }
        if status.is_server_error() {
            message = with_causes(message, &e);
        }
        ApiError { status, message }
    }
}

/// `message` followed by each cause in `e`'s chain that neither it nor `e` already says.
/// Errors are formatted once, here: some leave their source out of their text (an image
/// store I/O error says `write <path>` only), and without it a client reads what failed but
/// not why.
fn with_causes(mut message: String, e: &dyn std::error::Error) -> String {
    let mut said = format!("{message}\n{e}");
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !text.is_empty() && !said.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
            said.push('\n');
            said.push_str(&text);
        }
        cause = c.source();
    }
    message
}

impl From<berth_image::ImageError> for ApiError {
    fn from(e: berth_image::ImageError) -> Self {
        EngineError::from(e).into()
    }
}

/// The most of a message a response (and berthd's log) carries: whatever a lower layer
/// quoted from hostile input, an error stays a few KiB.
const MAX_MESSAGE: usize = 4096;

/// `message` cut to [`MAX_MESSAGE`] bytes on a character boundary, its full length said.
fn bounded(mut message: String) -> String {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let len = message.len();
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message.push_str(&format!("... (message cut from {len} bytes)"));
    message
}

/// `{"message": ...}`.
fn error_body(message: String) -> Vec<u8> {
    serde_json::to_vec(&berth_api::ErrorBody { message }).unwrap_or_default()
}

/// The response for `message`: [`error_body`], `application/json` exactly.
fn error_response(status: StatusCode, message: String) -> Response {
    let mut resp = (status, error_body(message)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// A server error's message, whole, on its response for [`hide_internal_paths`].
#[derive(Clone)]
struct ServerErrorMessage(String);

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        if self.status == StatusCode::NOT_MODIFIED {
            return self.status.into_response();
        }
        self.message = bounded(self.message);
        if !self.status.is_server_error() {
            return error_response(self.status, self.message);
        }
        // The log has it whole, paths and all: the operator's to act on.
        tracing::error!("{}", self.message);
        let mut resp = error_response(self.status, self.message.clone());
        resp.extensions_mut()
            .insert(ServerErrorMessage(self.message));
        resp
    }
}

/// berthd's own directories, `--root` and `--exec-root`, which a server error's message
/// does not show a client: a path below one of them becomes a word for it ("create
/// berthd's root: Is a directory (os error 21)"), the full path stays in berthd's log.
/// Only these are hidden; a path the client named (a bind mount's source, a file in its
/// build context) is shown as it was.
#[derive(Debug, Clone)]
pub struct InternalPaths {
    /// Each directory as text (also canonical, when that differs) and the word for it,
    /// longest first: an exec-root below the root is told as the exec-root.
    dirs: Vec<(String, &'static str)>,
}

impl InternalPaths {
    /// The paths below `root` and `exec_root`.
    pub fn new(root: &Path, exec_root: &Path) -> Self {
        let mut dirs: Vec<(String, &'static str)> = Vec::new();
        for (dir, word) in [(root, "berthd's root"), (exec_root, "berthd's exec-root")] {
            let forms: [Option<PathBuf>; 2] = [
                std::path::absolute(dir).ok(),
                std::fs::canonicalize(dir).ok(),
            ];
            for form in forms.into_iter().flatten() {
                let text = form.to_string_lossy().trim_end_matches('/').to_string();
                // `/` would hide every path, a client's too.
                if !text.is_empty() && !dirs.iter().any(|(t, _)| *t == text) {
                    dirs.push((text, word));
                }
            }
        }
        dirs.sort_by_key(|(text, _)| std::cmp::Reverse(text.len()));
        InternalPaths { dirs }
    }

    /// The paths of this engine's [`berth_engine::EngineConfig`].
    pub fn of(engine: &berth_engine::Engine) -> Self {
        let cfg = engine.config();
        InternalPaths::new(&cfg.root, &cfg.exec_root)
    }

    /// `message` with every path below berthd's directories replaced by its word.
    pub fn hide(&self, message: &str) -> String {
        let mut out = String::with_capacity(message.len());
        let mut rest = message;
        while let Some((start, end, word)) = self.first_in(rest) {
            out.push_str(&rest[..start]);
            out.push_str(word);
            rest = &rest[end..];
        }
        out.push_str(rest);
        out
    }

    /// The first path in `text` below one of the directories: its start, its end and the
    /// directory's word.
    fn first_in(&self, text: &str) -> Option<(usize, usize, &'static str)> {
        let mut first: Option<(usize, usize, &'static str)> = None;
        for (dir, word) in &self.dirs {
            let mut from = 0;
            while let Some(i) = text[from..].find(dir.as_str()) {
                let start = from + i;
                let after = start + dir.len();
                // The directory itself or below it, not `/var/lib/berth2` nor a path that
                // merely ends in the same names (`/home/var/lib/berth`).
                let begins = text[..start]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !in_name(c));
                let whole = text[after..]
                    .chars()
                    .next()
                    .is_none_or(|c| c == '/' || !in_name(c));
                if begins && whole {
                    if first.is_none_or(|(s, _, _)| start < s) {
                        let end =
                            after + text[after..].find(ends_path).unwrap_or(text.len() - after);
                        first = Some((start, end, word));
                    }
                    break;
                }
                // Absolute: the `/` it starts with is one byte.
                from = start + 1;
            }
        }
        first
    }
}

/// A character of a file name, as berthd names its files (ids, digests, `.tmp` names).
fn in_name(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '.' | '-' | '_')
}

/// Where a path quoted in a message ends: at a space, a quote or bracket, or the `:` before
/// the error (`open <path>: No such file or directory`; overlay's `lowerdir=<a>:<b>`).
fn ends_path(c: char) -> bool {
    c.is_whitespace() || matches!(c, ':' | ',' | ';' | '"' | '\'' | '`' | ')' | ']' | '}')
}

/// The router's outermost layer: a server error's message, without [`InternalPaths`].
pub async fn hide_internal_paths(
    State(paths): State<InternalPaths>,
    mut resp: Response,
) -> Response {
    let Some(ServerErrorMessage(message)) = resp.extensions_mut().remove() else {
        return resp;
    };
    let hidden = paths.hide(&message);
    if hidden == message {
        return resp;
    }
    let (mut parts, _) = resp.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(error_body(hidden)))
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short".into()), "short");
        let cut = bounded("é".repeat(1 << 20));
        assert!(cut.len() < MAX_MESSAGE + 64, "{}", cut.len());
        assert!(
            cut.ends_with("... (message cut from 2097152 bytes)"),
            "{cut}"
        );
    }

    fn berthd() -> InternalPaths {
        InternalPaths::new(Path::new("/var/lib/berth"), Path::new("/run/berth/"))
    }

    #[test]
    fn paths_below_berthds_root_and_exec_root_become_a_word() {
        let paths = berthd();
        assert_eq!(
            paths.hide(
                "create /var/lib/berth/containers/0123abcd/hostname: Is a directory (os error 21)"
            ),
            "create berthd's root: Is a directory (os error 21)"
        );
        assert_eq!(
            paths.hide(
                "failed to create task for container: OCI runtime create failed: \
                 /run/berth/containers/0123abcd/spec.json: No space left on device: unknown"
            ),
            "failed to create task for container: OCI runtime create failed: \
             berthd's exec-root: No space left on device: unknown"
        );
        assert_eq!(
            paths.hide(
                "mount overlay (lowerdir=/var/lib/berth/image/snapshots/1/fs:\
                 /var/lib/berth/image/snapshots/2/fs,upperdir=/var/lib/berth/image/snapshots/3/fs): \
                 Invalid argument (os error 22)"
            ),
            "mount overlay (lowerdir=berthd's root:berthd's root,upperdir=berthd's root): \
             Invalid argument (os error 22)"
        );
        assert_eq!(
            paths.hide("read \"/var/lib/berth\": Permission denied"),
            "read \"berthd's root\": Permission denied"
        );
    }

    #[test]
    fn an_exec_root_below_the_root_is_told_as_the_exec_root() {
        let paths = InternalPaths::new(Path::new("/srv/berth"), Path::new("/srv/berth/run"));
        assert_eq!(
            paths.hide("open /srv/berth/run/containers/a/pid and /srv/berth/events.jsonl"),
            "open berthd's exec-root and berthd's root"
        );
    }

    #[test]
    fn paths_a_client_named_are_shown_as_they_were() {
        let paths = berthd();
        for message in [
            "create bind source /srv/data: Read-only file system (os error 30)",
            "open /var/lib/berth2/x: Permission denied (os error 13)",
            "open /home/var/lib/berth/x: Permission denied (os error 13)",
            "No such container: web",
        ] {
            assert_eq!(paths.hide(message), message);
        }
        // `--root /` would hide everything: it hides nothing.
        let slash = InternalPaths::new(Path::new("/"), Path::new("/run/berth"));
        assert_eq!(slash.hide("open /etc/x: boom"), "open /etc/x: boom");
    }

    fn enospc() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::ENOSPC)
    }

    #[test]
    fn a_server_error_names_the_cause_its_text_leaves_out() {
        // An image store I/O error says what it did, its source why.
        let e = EngineError::Image(berth_image::ImageError::Io {
            context: "write /var/lib/berth/image/refs.json".into(),
            source: enospc(),
        });
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            api.message,
            "write /var/lib/berth/image/refs.json: No space left on device (os error 28)"
        );
        // An error that says its source already says it once.
        let e = EngineError::Io {
            context: "create",
            path: "/var/lib/berth/containers/a/hostname".into(),
            source: enospc(),
        };
        let text = e.to_string();
        assert_eq!(ApiError::from(e).message, text);
        let e = EngineError::Volume(berth_volume::VolumeError::Io {
            context: "remove",
            path: "/var/lib/berth/volumes/data".into(),
            source: enospc(),
        });
        assert_eq!(
            ApiError::from(e).message,
            "volume store: remove: No space left on device (os error 28)"
        );
    }

    #[test]
    fn client_errors_keep_dockers_words() {
        for e in [
            EngineError::NoSuchContainer("web".into()),
            EngineError::NameInUse {
                name: "web".into(),
                id: "0123".into(),
            },
            EngineError::Image(berth_image::ImageError::NotFound {
                reference: "busybox".into(),
            }),
        ] {
            let text = e.to_string();
            let api = ApiError::from(e);
            assert!(api.status.is_client_error(), "{text}");
            assert_eq!(api.message, text);
        }
    }

    async fn body_of(resp: Response) -> String {
        use http_body_util::BodyExt;
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_layer_hides_berthds_paths_in_server_errors_only() {
        let e = ApiError::internal("rename /var/lib/berth/containers/a/state.json: boom");
        let resp = hide_internal_paths(State(berthd()), e.into_response()).await;
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_of(resp).await,
            r#"{"message":"rename berthd's root: boom"}"#
        );
        // A client error is the client's input answered: left as it is.
        let e = ApiError::not_found("Could not find the file /var/lib/berth/x in container a");
        let resp = hide_internal_paths(State(berthd()), e.into_response()).await;
        assert_eq!(
            body_of(resp).await,
            r#"{"message":"Could not find the file /var/lib/berth/x in container a"}"#
        );
    }
}
