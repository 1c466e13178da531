//! Streaming response shapes: raw bytes, log frames, JSON lines, hijacked connections.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use berth_api::stream::{Demuxer, StreamKind};
use bytes::{Bytes, BytesMut};
use futures_util::stream::{BoxStream, Stream, StreamExt};
use http_body_util::BodyDataStream;
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::ClientError;

/// A response body as a stream of byte chunks (`save`, raw TTY logs).
pub type ByteStream = BoxStream<'static, Result<Bytes, ClientError>>;

/// One piece of container output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Stdout or stderr (stdin frames are reported as stdout, like Go's stdcopy).
    pub kind: StreamKind,
    /// The payload; not necessarily whole lines.
    pub data: Bytes,
}

/// Container output: demultiplexed frames, or raw bytes reported as stdout for a TTY.
/// A stdcopy "system error" frame (stream 3) ends the stream with [`ClientError::Stream`].
pub type LogStream = BoxStream<'static, Result<LogChunk, ClientError>>;

/// Newline-delimited JSON values (`load`, `import` and other progress streams).
pub type JsonStream<T> = BoxStream<'static, Result<T, ClientError>>;

/// Reads any reader (a hijacked connection's read half) as a byte stream.
pub fn reader_bytes(reader: impl AsyncRead + Send + 'static) -> ByteStream {
    tokio_util::io::ReaderStream::new(reader)
        .map(|r| r.map_err(ClientError::from))
        .boxed()
}

pub(crate) fn bytes_of(body: Incoming) -> ByteStream {
    BodyDataStream::new(body)
        .map(|r| r.map_err(ClientError::from))
        .boxed()
}

/// Turns a byte stream into log chunks, demultiplexing unless the container has a TTY.
pub fn log_chunks<S>(bytes: S, tty: bool) -> LogStream
where
    S: Stream<Item = Result<Bytes, ClientError>> + Send + 'static,
{
    if tty {
        return bytes
            .map(|r| {
                r.map(|data| LogChunk {
                    kind: StreamKind::Stdout,
                    data,
                })
            })
            .boxed();
    }
    struct Demux<S> {
        bytes: Pin<Box<S>>,
        demux: Demuxer,
        ready: VecDeque<LogChunk>,
        /// An in-band error, reported after the chunks that preceded it.
        error: Option<ClientError>,
        done: bool,
    }
    let state = Demux {
        bytes: Box::pin(bytes),
        demux: Demuxer::default(),
        ready: VecDeque::new(),
        error: None,
        done: false,
    };
    futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(chunk) = st.ready.pop_front() {
                return Some((Ok(chunk), st));
            }
            if let Some(e) = st.error.take() {
                st.done = true;
                return Some((Err(e), st));
            }
            if st.done {
                return None;
            }
            match st.bytes.next().await {
                None => st.done = true,
                Some(Err(e)) => st.error = Some(e),
                Some(Ok(b)) => {
                    for (kind, payload) in st.demux.push(&b) {
                        let kind = match kind {
                            2 => StreamKind::Stderr,
                            3 => {
                                let msg = String::from_utf8_lossy(&payload).trim().to_string();
                                st.error = Some(ClientError::Stream(msg));
                                break;
                            }
                            _ => StreamKind::Stdout,
                        };
                        st.ready.push_back(LogChunk {
                            kind,
                            data: Bytes::from(payload),
                        });
                    }
                }
            }
        }
    })
    .boxed()
}

/// Splits a byte stream at newlines and decodes each non-empty line as JSON.
pub fn json_lines<T, S>(bytes: S) -> JsonStream<T>
where
    T: DeserializeOwned + Send + 'static,
    S: Stream<Item = Result<Bytes, ClientError>> + Send + 'static,
{
    let state = (Box::pin(bytes), BytesMut::new(), false);
    futures_util::stream::unfold(state, |(mut bytes, mut buf, mut eof)| async move {
        loop {
            if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                let line = buf.split_to(pos + 1);
                let line = line.trim_ascii();
                if line.is_empty() {
                    continue;
                }
                let item = serde_json::from_slice(line).map_err(ClientError::from);
                return Some((item, (bytes, buf, eof)));
            }
            if eof {
                let rest = buf.split();
                let rest = rest.trim_ascii();
                if rest.is_empty() {
                    return None;
                }
                let item = serde_json::from_slice(rest).map_err(ClientError::from);
                return Some((item, (bytes, buf, eof)));
            }
            match bytes.next().await {
                Some(Ok(b)) => buf.extend_from_slice(&b),
                Some(Err(e)) => return Some((Err(e), (bytes, buf, true))),
                None => eof = true,
            }
        }
    })
    .boxed()
}

/// A hijacked connection (attach): read the container's output, write its stdin.
/// Shutting down the write half (`AsyncWriteExt::shutdown`) half-closes the socket, which the
/// daemon reads as stdin EOF while it keeps sending output.
#[derive(Debug)]
pub struct Hijacked {
    io: TokioIo<Upgraded>,
    multiplexed: bool,
}

impl Hijacked {
    pub(crate) fn new(upgraded: Upgraded, multiplexed: bool) -> Hijacked {
        Hijacked {
            io: TokioIo::new(upgraded),
            multiplexed,
        }
    }

    /// Whether the daemon announced `application/vnd.docker.multiplexed-stream`. Older
    /// daemons always say raw-stream: decide framing by the container's `Tty` instead.
    pub fn announced_multiplexed(&self) -> bool {
        self.multiplexed
    }
}

impl AsyncRead for Hijacked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Hijacked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::stream::frame;

    fn chunks(parts: Vec<Vec<u8>>) -> impl Stream<Item = Result<Bytes, ClientError>> {
        futures_util::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from(p))))
    }

    #[tokio::test]
    async fn frames_split_across_chunks_are_demultiplexed() {
        let mut all = frame(StreamKind::Stdout, b"out\n");
        all.extend(frame(StreamKind::Stderr, b"err\n"));
        let parts = vec![all[..3].to_vec(), all[3..13].to_vec(), all[13..].to_vec()];
        let got: Vec<LogChunk> = log_chunks(chunks(parts), false)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].kind, StreamKind::Stdout);
        assert_eq!(&got[0].data[..], b"out\n");
        assert_eq!(got[1].kind, StreamKind::Stderr);
    }

    #[tokio::test]
    async fn system_error_frame_ends_the_stream_with_its_message() {
        let mut all = frame(StreamKind::Stdout, b"a");
        all.extend(frame(StreamKind::System, b"log file gone"));
        let mut s = log_chunks(chunks(vec![all[..9].to_vec(), all[9..].to_vec()]), false);
        assert!(s.next().await.unwrap().is_ok());
        let err = s.next().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "log file gone");
        assert!(s.next().await.is_none());
    }

    #[tokio::test]
    async fn tty_output_passes_through_as_stdout() {
        let got: Vec<LogChunk> = log_chunks(chunks(vec![b"\x01raw".to_vec()]), true)
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(&got[0].data[..], b"\x01raw");
    }

    #[tokio::test]
    async fn json_lines_are_split_at_newlines_across_chunks() {
        let parts = vec![
            b"{\"a\":1}\n{\"a\"".to_vec(),
            b":2}\n\n".to_vec(),
            b"{\"a\":3}".to_vec(),
        ];
        let got: Vec<serde_json::Value> = json_lines(chunks(parts))
            .map(|r| r.unwrap())
            .collect()
            .await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[2]["a"], 3);
    }
}
