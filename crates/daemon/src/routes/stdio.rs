//! The hijacked side of attach (and exec): the client's connection bridged to a container
//! process's output stream and stdin descriptor, with Docker's detach keys and stdin rules.

use std::os::fd::{AsFd, OwnedFd};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::error::ApiError;

/// Docker's default detach sequence: ctrl-p, ctrl-q.
pub use berth_api::stream::DEFAULT_DETACH_KEYS;

/// Parses `--detach-keys` as Docker's `term.ToBytes` (`berth_api::stream`), with Docker's
/// 400 for a bad sequence.
pub fn parse_detach_keys(keys: &str) -> Result<Vec<u8>, ApiError> {
    berth_api::stream::parse_detach_keys(keys).map_err(ApiError::bad_request)
}

/// How a bridge behaves.
pub struct BridgeOptions {
    /// The process has a terminal: output goes raw (no frame headers).
    pub tty: bool,
    /// The client's stdin EOF closes the process's stdin (and output goes on); otherwise
    /// (or with a terminal) it ends the attach, as Docker's does.
    pub stdin_once: bool,
    /// Bytes that detach the client (none: never). As Docker's, only a terminal's input is
    /// watched for them: piped input (binary data) passes untouched.
    pub detach_keys: Vec<u8>,
}

/// Why the input side ended.
enum InputEnd {
    /// The client's EOF (or its connection broke).
    Eof,
    /// The detach sequence.
    Detached,
    /// The process's stdin is gone (its pipe or terminal closed).
    Gone,
}

/// The client's connection of a hijacked request, and what hyper read past the request.
/// Before the first write to it, await [`head_taken`].
pub fn client_connection(
    upgraded: hyper::upgrade::Upgraded,
) -> Option<(tokio::net::UnixStream, bytes::Bytes)> {
    match upgraded.downcast::<hyper_util::rt::TokioIo<tokio::net::UnixStream>>() {
        Ok(parts) => Some((parts.io.into_inner(), parts.read_buf)),
        Err(_) => {
            tracing::warn!("a hijacked connection that is not a unix socket");
            None
        }
    }
}

/// Waits (at most 2 s) until the client has read everything sent so far on `conn`: the 101
/// response head, when called before the first write of the stream. docker-py (and so
/// testcontainers) reads the head through a buffered reader, then the stream from the raw
/// socket beneath it: output that arrived together with the head would sit in that buffer
/// and be lost (a quick exec's whole output, at random). Docker gets away with it because
/// its exec starts tens of milliseconds later. Called at the first write, not at the
/// upgrade, so a command that prints nothing (or later) never waits.
pub async fn head_taken(conn: std::os::fd::BorrowedFd<'_>) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while matches!(berth_engine::unread_by_peer(conn), Ok(n) if n > 0)
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
}

/// Awaits an attach (ready at once for a running container, at its next start otherwise)
/// while watching the client's connection: `None` once the client has gone away entirely
/// (a half-close, as `docker start -a` without `-i` sends, is not leaving), so a client
/// that gave up waiting for a start never holds its connection until that start.
pub async fn until_attached(
    conn: &tokio::net::UnixStream,
    fut: berth_engine::AttachFuture,
) -> Option<berth_engine::Result<berth_engine::Attached>> {
    let mut probe = probe();
    tokio::select! {
        r = fut => Some(r),
        () = hang_up(&mut probe, conn.as_fd()) => None,
    }
}

/// A client's hang-up is looked for once a second.
fn probe() -> tokio::time::Interval {
    tokio::time::interval(std::time::Duration::from_secs(1))
}

/// Resolves once the client at `fd` has gone away entirely (a half-close is not leaving).
async fn hang_up(probe: &mut tokio::time::Interval, fd: std::os::fd::BorrowedFd<'_>) {
    loop {
        probe.tick().await;
        if berth_engine::peer_hung_up(fd) {
            return;
        }
    }
}

/// The client's side of a bridge, the same for attach and exec: its connection split, its
/// input pumped into the process's stdin (or read and dropped: a client that sent some must
/// never be reset when the connection closes), and what ends the session on its account.
struct ClientSide {
    to_client: tokio::net::unix::OwnedWriteHalf,
    input: tokio::task::JoinHandle<()>,
    /// Fired when the input side ends the session.
    ended: tokio::sync::oneshot::Receiver<()>,
    /// The input side ended without ending the session (its sender is gone).
    input_quiet: bool,
    probe: tokio::time::Interval,
    /// The client has read the response head (see [`head_taken`]).
    head_seen: bool,
}

impl ClientSide {
    /// Splits the connection (what hyper read past the request comes first) and starts the
    /// input side. As Docker's, only a terminal's input (`tty`) is watched for
    /// `detach_keys`: piped input (binary data) passes untouched. When the input is over,
    /// `ends` says whether that ends the session (after doing what the end asks, as closing
    /// the process's stdin).
    fn start<F, Fut>(
        conn: tokio::net::UnixStream,
        read_buf: bytes::Bytes,
        stdin: Option<OwnedFd>,
        (tty, detach_keys): (bool, Vec<u8>),
        ends: F,
    ) -> ClientSide
    where
        F: FnOnce(InputEnd) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = bool> + Send + 'static,
    {
        let detach_keys = if tty { detach_keys } else { Vec::new() };
        let (from_client, to_client) = conn.into_split();
        let mut from_client = std::io::Cursor::new(read_buf).chain(from_client);
        let (ended_tx, ended) = tokio::sync::oneshot::channel::<()>();
        let input = tokio::spawn(async move {
            // The stdin descriptor is dropped when the pump ends: without a terminal that is
            // the process's EOF.
            let end = match stdin {
                Some(fd) => pump_input(&mut from_client, fd, &detach_keys).await,
                None => {
                    let _ = tokio::io::copy(&mut from_client, &mut tokio::io::sink()).await;
                    InputEnd::Eof
                }
            };
            if ends(end).await {
                let _ = ended_tx.send(());
            }
        });
        ClientSide {
            to_client,
            input,
            ended,
            input_quiet: false,
            probe: probe(),
            head_seen: false,
        }
    }

    /// Writes `bytes` to the client, the first time once it has read the response head.
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if !self.head_seen {
            head_taken(self.to_client.as_ref().as_fd()).await;
            self.head_seen = true;
        }
        self.to_client.write_all(bytes).await
    }

    /// Resolves when the session must end on the client's account: its input ended it
    /// (detach keys, a terminal's EOF...) or it went away entirely. Looked for also while
    /// the input side is busy: its write may wait for good on a process that never reads
    /// its stdin, and a client gone meanwhile must not be kept. Cancel-safe (a `select!`
    /// branch).
    async fn leaves(&mut self) {
        loop {
            tokio::select! {
                r = &mut self.ended, if !self.input_quiet => match r {
                    Ok(()) => return,
                    Err(_) => self.input_quiet = true,
                },
                () = hang_up(&mut self.probe, self.to_client.as_ref().as_fd()) => return,
            }
        }
    }

    /// Ends the client's stream (what was written goes out first) and the input side.
    async fn close(mut self) {
        let _ = self.to_client.flush().await;
        let _ = self.to_client.shutdown().await;
        self.input.abort();
    }
}

/// Bridges until the output ends (the process exited), the client detaches or goes away.
/// `close_stdin` is awaited when the client's EOF must reach the process. A client that
/// goes away entirely (after a half-close, as `docker run` without `-i` sends at once, or
/// while its input waits on a process that does not read it) is noticed within a second,
/// even while the process prints nothing.
pub async fn bridge<F>(
    conn: tokio::net::UnixStream,
    read_buf: bytes::Bytes,
    output: berth_engine::Attachment,
    opts: BridgeOptions,
    close_stdin: F,
) where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let berth_engine::Attachment {
        stream,
        rest,
        stdin,
        ..
    } = output;
    let once = opts.stdin_once && !opts.tty;
    let has_stdin = stdin.is_some();
    let keys = (opts.tty, opts.detach_keys);
    let mut client = ClientSide::start(conn, read_buf, stdin, keys, move |end| async move {
        match end {
            InputEnd::Eof if once => {
                close_stdin.await;
                false
            }
            InputEnd::Eof if !has_stdin => false,
            // Detach, or EOF of a terminal or a non-once stdin: the attach ends.
            _ => true,
        }
    });
    let stream = match tokio_stream(stream) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("attach stream: {e}");
            client.input.abort();
            return;
        }
    };
    let mut deframe = Deframer::new(opts.tty);
    let mut out = Vec::new();
    deframe.push(&rest, &mut out);
    let mut stream = stream;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if !out.is_empty() {
            if client.write(&out).await.is_err() || client.to_client.flush().await.is_err() {
                break;
            }
            out.clear();
        }
        tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => deframe.push(&buf[..n], &mut out),
            },
            () = client.leaves() => break,
        }
    }
    client.close().await;
}

fn tokio_stream(s: std::os::unix::net::UnixStream) -> std::io::Result<tokio::net::UnixStream> {
    s.set_nonblocking(true)?;
    tokio::net::UnixStream::from_std(s)
}

/// Copies the client's input into the process's stdin, watching for the detach keys.
async fn pump_input<R: AsyncRead + Unpin>(
    from_client: &mut R,
    fd: OwnedFd,
    detach_keys: &[u8],
) -> InputEnd {
    if berth_engine::set_nonblocking(fd.as_fd()).is_err() {
        return InputEnd::Gone;
    }
    // A pipe's write end or a terminal's master: both pollable, so tokio's pipe writer
    // drives either (it checks nothing about the descriptor beyond that).
    let Ok(mut fd) = tokio::net::unix::pipe::Sender::from_owned_fd_unchecked(fd) else {
        return InputEnd::Gone;
    };
    let mut buf = vec![0u8; 32 * 1024];
    // How much of the detach sequence the input has matched so far (held back meanwhile).
    let mut matched = 0;
    loop {
        let n = match from_client.read(&mut buf).await {
            Ok(0) | Err(_) => return InputEnd::Eof,
            Ok(n) => n,
        };
        let mut send = Vec::with_capacity(n);
        for &b in &buf[..n] {
            if !detach_keys.is_empty() && b == detach_keys[matched] {
                matched += 1;
                if matched == detach_keys.len() {
                    let _ = fd.write_all(&send).await;
                    return InputEnd::Detached;
                }
                continue;
            }
            // Not the sequence after all: what was held back goes through.
            send.extend_from_slice(&detach_keys[..matched]);
            matched = 0;
            if !detach_keys.is_empty() && b == detach_keys[0] {
                matched = 1;
            } else {
                send.push(b);
            }
        }
        if fd.write_all(&send).await.is_err() {
            return InputEnd::Gone;
        }
    }
}

/// Reads from an output that is still open; never completes for a closed one.
async fn read_open(
    o: &mut Option<tokio::net::unix::pipe::Receiver>,
    buf: &mut [u8],
) -> std::io::Result<usize> {
    match o {
        Some(r) => r.read(buf).await,
        None => std::future::pending().await,
    }
}

/// The shim's output frames as the client gets them: as they are without a terminal (the
/// shim frames exactly as Docker does), the payloads alone with one.
struct Deframer {
    raw: bool,
    buf: Vec<u8>,
}

impl Deframer {
    fn new(tty: bool) -> Self {
        Deframer {
            raw: tty,
            buf: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8], out: &mut Vec<u8>) {
        if !self.raw {
            out.extend_from_slice(data);
            return;
        }
        self.buf.extend_from_slice(data);
        let mut at = 0;
        while self.buf.len() - at >= 8 {
            let len =
                u32::from_be_bytes(self.buf[at + 4..at + 8].try_into().expect("4 bytes")) as usize;
            if self.buf.len() - at - 8 < len {
                break;
            }
            out.extend_from_slice(&self.buf[at + 8..at + 8 + len]);
            at += 8 + len;
        }
        self.buf.drain(..at);
    }
}

/// Bridges an exec's stdio (pipes, or its terminal's master) to the client until the
/// process has exited and its output is drained, the client detaches or goes away. As
/// Docker's exec: the client's stdin EOF closes the process's stdin (without a terminal; with
/// one it ends the session). The exit is recorded before the connection closes, so a client
/// that inspects the exec right after the stream ends (the docker CLI does) finds the code.
pub async fn bridge_exec(
    conn: tokio::net::UnixStream,
    read_buf: bytes::Bytes,
    io: berth_engine::ExecIo,
    detach_keys: Vec<u8>,
) {
    use tokio::net::unix::pipe;
    let berth_engine::ExecIo {
        stdin,
        stdout,
        stderr,
        tty,
        mut exited,
    } = io;
    let has_stdin = stdin.is_some();
    let keys = (tty, detach_keys);
    let mut client = ClientSide::start(conn, read_buf, stdin, keys, move |end| async move {
        !matches!(end, InputEnd::Eof if !tty || !has_stdin)
    });
    let reader = |fd: Option<OwnedFd>| {
        fd.and_then(|fd| {
            berth_engine::set_nonblocking(fd.as_fd()).ok()?;
            pipe::Receiver::from_owned_fd_unchecked(fd).ok()
        })
    };
    let mut outputs = [reader(stdout), reader(stderr)];
    let mut bufs = [vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]];
    // After the exit, output still in the pipes is drained; a grandchild that keeps them
    // open does not keep the session (Docker's ends at the exit too).
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        if *exited.borrow() && drain_until.is_none() {
            drain_until = Some(tokio::time::Instant::now() + std::time::Duration::from_millis(500));
        }
        if outputs.iter().all(Option::is_none) {
            if *exited.borrow() {
                break;
            }
            // Output is over; the exit is near (or the process closed its streams).
            tokio::select! {
                _ = exited.changed() => {}
                () = client.leaves() => break,
            }
            continue;
        }
        let deadline = drain_until
            .unwrap_or_else(|| tokio::time::Instant::now() + std::time::Duration::from_secs(3600));
        let [a, b] = &mut outputs;
        let [ba, bb] = &mut bufs;
        let (which, r) = tokio::select! {
            r = read_open(a, ba) => (0, r),
            r = read_open(b, bb) => (1, r),
            _ = exited.changed(), if drain_until.is_none() => continue,
            _ = tokio::time::sleep_until(deadline) => break,
            () = client.leaves() => break,
        };
        match r {
            // EOF, or EIO from a terminal's master once its last slave closed.
            Ok(0) | Err(_) => outputs[which] = None,
            Ok(n) => {
                let data = &bufs[which][..n];
                let bytes = if tty {
                    data.to_vec()
                } else {
                    let kind = if which == 0 {
                        berth_api::stream::StreamKind::Stdout
                    } else {
                        berth_api::stream::StreamKind::Stderr
                    };
                    berth_api::stream::frame(kind, data)
                };
                if client.write(&bytes).await.is_err() {
                    break;
                }
            }
        }
    }
    // The client left (detached, or went away) while the process runs on with a terminal:
    // it is told at once, and the terminal is read and thrown away until the exit, as
    // Docker does; else the process blocks once the terminal's buffer is full.
    if tty && !*exited.borrow() {
        if let Some(master) = outputs[0].take() {
            client.close().await;
            if let Ok(master) = master.into_nonblocking_fd() {
                berth_engine::discard_terminal(master, exited).await;
            }
            return;
        }
    }
    // The exit is recorded before the client learns the stream is over (bounded: a
    // client that detached does not wait).
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), exited.wait_for(|d| *d)).await;
    client.close().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_dockers() {
        assert_eq!(parse_detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-_").unwrap(),
            vec![b'a', 0, 31]
        );
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        for bad in ["ctrl-", "ctrl-1", "ab", "ctrl-p,,"] {
            let e = parse_detach_keys(bad).unwrap_err();
            assert!(e.message.contains("Invalid detach keys"), "{bad}");
        }
    }

    #[test]
    fn frames_lose_their_headers_only_with_a_terminal() {
        let f = berth_api::stream::frame(berth_api::stream::StreamKind::Stdout, b"hello");
        let mut out = Vec::new();
        let mut raw = Deframer::new(true);
        raw.push(&f[..5], &mut out);
        assert!(out.is_empty());
        raw.push(&f[5..], &mut out);
        assert_eq!(out, b"hello");
        let mut framed = Deframer::new(false);
        out.clear();
        framed.push(&f, &mut out);
        assert_eq!(out, f);
    }
}
