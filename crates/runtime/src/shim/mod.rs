//! The shim socket protocol and a blocking client.
//!
//! Each container's shim serves `<bundle>/shim.sock`, a unix stream socket. A client connects,
//! sends **one request** as a JSON line, and reads **one response** as a JSON line; then the
//! shim closes the connection (`exec` alone answers twice). `Wait` is answered only when the
//! container has exited and the shim has torn it down.
//!
//! Requests (`op` tag):
//! ```text
//! {"op":"state"}          -> {"state":{"pid":1234,"status":"running"}}   status: running | paused
//! {"op":"signal","signal":15} -> "ok"
//! {"op":"wait"}           -> {"exit":{"exit_code":0,"oom_killed":false,"finished_at":"2026-..Z"}}
//! {"op":"pause"}          -> "ok"
//! {"op":"resume"}         -> "ok"
//! {"op":"pids"}           -> {"pids":[1234,1240]}                      (host pids)
//! {"op":"update","resources":{"memory":67108864,"pids_limit":100}} -> "ok"
//!                            (the limits set are written to the live cgroup: `docker update`)
//! {"op":"exec","args":["sh"],"env":[],"user":"","cwd":"","tty":false,...}
//!                         + stdin, stdout, stderr by SCM_RIGHTS (none with "tty":true)
//!                         -> {"exec_started":{"pid":1250}}  (with "tty": the pty master by
//!                            SCM_RIGHTS), then, when it ends,
//!                         -> {"exit":{"exit_code":0,...}}               (berth's runtime only)
//! {"op":"hello","version":2} -> {"hello":{"version":2}}  (a version-1 shim answers an
//!                            "unknown variant" error: [`ShimClient::hello`] reads that as 1)
//! {"op":"attach","stdin":true,"stdout":true,"stderr":true}
//!                         -> {"attached":{"tty":false,"stdin":true}} (+ with "stdin": the
//!                            stdin pipe's write end or the terminal's master by SCM_RIGHTS);
//!                            then the container's output as it is read, in Docker's
//!                            8-byte-header frames (stream 1 or 2, big-endian length), until
//!                            the output ends, when the shim closes the connection
//! {"op":"resize","height":40,"width":120} -> "ok"   (the init's terminal)
//! {"op":"close_stdin"}    -> "ok"   (the shim lets go of the stdin pipe: EOF once no
//!                                    attached client holds a copy)
//! {"op":"execs"}          -> {"execs":[{"request":{"id":"..",..},"pid":1250,"exit_code":0}]}
//!                            (every exec started with an id: the newest 256 are kept, so
//!                            a new berthd finds them after a restart)
//! {"op":"exec_wait","id":".."} -> {"exit":{"exit_code":0,...}}  when that kept exec has
//!                            ended (at once if it has): a new berthd awaits an exec that
//!                            an older one started
//! any request line over [`MAX_REQUEST`] bytes -> {"error":{"message":"request of over ..."}}
//! any failure             -> {"error":{"message":"..."}}
//! ```
//! Output reaches attached clients from the same read that writes the log: a partial line
//! (a shell's prompt) goes out at once, and lands whole in the log at its newline. A client
//! that reads slowly holds the container's output back (as Docker's attach does), never
//! the shim's other requests; one whose socket breaks is dropped.
//! After the container exits the shim writes `<bundle>/exit.json` (an [`ExitStatus`]) before it
//! answers waiters and removes the socket, so a client that cannot connect reads that file
//! ([`read_exit`]).

mod reference;
pub(crate) mod server;
pub use server::prime_cgroup_attach;

/// The libcontainer backend's create function, for `berth-shim-libcontainer`.
pub(crate) fn reference_create() -> server::CreateReference {
    reference::create_libcontainer
}

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A request to the shim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ShimRequest {
    /// The init pid and whether the container is running or paused.
    State,
    /// Send a signal to the container's init process.
    Signal {
        /// Signal number.
        signal: i32,
    },
    /// Block until the container has exited (and is torn down).
    Wait,
    /// Freeze every process of the container.
    Pause,
    /// Thaw the container.
    Resume,
    /// Host pids of every process in the container's cgroup.
    Pids,
    /// Change the limits of the running container: each one `resources` sets.
    Update {
        /// The limits to write (`None`: unchanged); see [`crate::cgroups::Cgroup::update`].
        resources: crate::spec::Resources,
    },
    /// The protocol version both sides speak (see [`PROTOCOL_VERSION`]).
    Hello {
        /// The client's version.
        version: u32,
    },
    /// Stream the main process's output from now on (and take its stdin).
    Attach {
        /// Hand over the stdin pipe's write end (or the terminal's master), if the container
        /// has an open stdin.
        stdin: bool,
        /// Stream stdout (with a terminal: the terminal's output).
        stdout: bool,
        /// Stream stderr.
        stderr: bool,
    },
    /// Set the size of the main process's terminal.
    Resize {
        /// Rows.
        height: u16,
        /// Columns.
        width: u16,
    },
    /// Let go of the stdin pipe (`StdinOnce` after the attached client's EOF).
    CloseStdin,
    /// The exec'd processes the shim keeps (by id), with their state.
    Execs,
    /// Answer `Exit` once the kept exec `id` has ended (at once if it has).
    ExecWait {
        /// The engine's exec id ([`ExecRequest::id`]).
        id: String,
    },
    /// Start a process in the running container (berth's own runtime only). Without `tty`
    /// the request carries three descriptors (SCM_RIGHTS: stdin, stdout, stderr) that become
    /// the process's stdio. The shim answers `ExecStarted` once the process runs (with the
    /// pty master attached when `tty`), then `Exit` on the same connection when it ends.
    Exec(ExecRequest),
}

/// A process to start in a running container ([`ShimRequest::Exec`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecRequest {
    /// The engine's exec id: the shim keeps the process's state and exit under it
    /// ([`ShimRequest::Execs`]), whoever is connected. Empty: not kept.
    pub id: String,
    /// Command and arguments (`args[0]` is looked up in the container's `PATH`).
    pub args: Vec<String>,
    /// `KEY=VALUE` entries added to (or replacing those of) the container's environment.
    pub env: Vec<String>,
    /// Working directory; the container's when empty.
    pub cwd: String,
    /// docker `-u` syntax, resolved in the container's `/etc/passwd`; the container's user
    /// when empty.
    pub user: String,
    /// Allocate a terminal in the container's devpts.
    pub tty: bool,
    /// Every capability the shim holds (`docker exec --privileged`).
    pub privileged: bool,
    /// Nobody reads the process's output (`docker exec -d`): with `tty` the shim reads the
    /// terminal's master and discards what it reads, so the process never blocks on a full
    /// terminal (Docker discards a detached exec's output). An older shim ignores it.
    pub detach: bool,
}

/// The shim's answer (serde's external tagging: `"ok"`, `{"state":{..}}`, `{"exit":{..}}`,
/// `{"pids":[..]}`, `{"error":{"message":".."}}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShimResponse {
    /// Answer to `State`.
    State {
        /// Host pid of the container's init.
        pid: i32,
        /// `running` or `paused` (`stopped` only in the moment between exit and shutdown).
        status: String,
    },
    /// The request was carried out.
    Ok,
    /// Answer to `Wait`.
    Exit(ExitStatus),
    /// Answer to `Pids`.
    Pids(Vec<i32>),
    /// Answer to `Execs`.
    Execs(Vec<ExecRecord>),
    /// Answer to `Hello`.
    Hello {
        /// The shim's protocol version.
        version: u32,
    },
    /// Answer to `Attach`; the output frames follow on the connection.
    Attached {
        /// The main process has a terminal: its output is one stream (frames of stream 1).
        tty: bool,
        /// A descriptor for the container's stdin came with this line.
        stdin: bool,
    },
    /// First answer to `Exec`: the process runs (host pid).
    ExecStarted {
        /// Host pid of the exec'd process.
        pid: i32,
        /// The shim reads and discards the terminal's output ([`ExecRequest::detach`]);
        /// absent (false) from older shims.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        discarding: bool,
    },
    /// The request failed.
    Error {
        /// Lowercase error text.
        message: String,
        /// The error's kind (`not_found`, `invalid_argument`, `conflict`, `unavailable`,
        /// `internal`), so that the variant survives the trip; absent from older shims.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kind: Option<String>,
    },
}

impl ShimResponse {
    /// The answer for a failed request.
    pub(crate) fn error(e: &crate::RuntimeError) -> ShimResponse {
        ShimResponse::Error {
            message: e.to_string(),
            kind: Some(e.kind_name().to_string()),
        }
    }
}

/// An exec'd process as the shim keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecRecord {
    /// What was asked.
    pub request: ExecRequest,
    /// Host pid.
    pub pid: i32,
    /// The exit code once it ended (128 + signal when killed).
    pub exit_code: Option<i32>,
}

/// How the container ended; also the content of `<bundle>/exit.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code, or 128 + signal number when killed by a signal.
    pub exit_code: i32,
    /// The memory cgroup recorded an OOM kill.
    pub oom_killed: bool,
    /// RFC 3339 UTC with nanoseconds.
    pub finished_at: String,
}

/// The shim protocol's version. 1: state, signal, wait, pause, resume, pids, exec. 2 adds
/// hello, attach, resize, close_stdin, execs. 3 adds update. 4 adds exec_wait (and an exec's
/// `detach`). A berthd manages the containers of an older shim with what that version has,
/// and says so when asked for more ([`ShimClient::hello`]).
pub const PROTOCOL_VERSION: u32 = 4;

/// The longest request line a shim reads (an exec's command and environment are its
/// largest): a longer one is answered with an error, never dropped silently. The engine
/// refuses an exec whose request would come near it at create.
pub const MAX_REQUEST: usize = 2 << 20;

/// The state the shim reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShimState {
    /// Host pid of the container's init.
    pub pid: i32,
    /// `running` or `paused`.
    pub status: String,
}

/// Path of the shim socket in a bundle.
pub fn socket_path(bundle: &Path) -> PathBuf {
    bundle.join("shim.sock")
}

/// The longest path a unix socket address holds (`sun_path` is 108 bytes with its NUL).
const SUN_PATH_MAX: usize = 107;

/// A name for the bundle's socket that fits a unix socket address.
///
/// A bundle below a long `--exec-root` gives a path over 107 bytes, which `bind` and
/// `connect` refuse. Such a path is reached through a descriptor of the bundle directory
/// instead: `/proc/self/fd/N/shim.sock` names the same socket in a few bytes. Keep the
/// value alive while the path is in use: it holds that descriptor.
#[derive(Debug)]
pub struct SocketAddress {
    _dir: Option<std::fs::File>,
    path: PathBuf,
}

impl SocketAddress {
    /// The address of `<bundle>/shim.sock`.
    pub fn of(bundle: &Path) -> io::Result<SocketAddress> {
        let path = socket_path(bundle);
        if path.as_os_str().len() <= SUN_PATH_MAX {
            return Ok(SocketAddress { _dir: None, path });
        }
        use std::os::fd::AsRawFd;
        let dir = std::fs::File::open(bundle)?;
        let path = PathBuf::from(format!("/proc/self/fd/{}/shim.sock", dir.as_raw_fd()));
        Ok(SocketAddress {
            _dir: Some(dir),
            path,
        })
    }

    /// The path to pass to `bind` or `connect`.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn connect_socket(bundle: &Path) -> io::Result<UnixStream> {
    let addr = SocketAddress::of(bundle)?;
    UnixStream::connect(addr.path())
}

/// Path of the exit record in a bundle.
pub fn exit_path(bundle: &Path) -> PathBuf {
    bundle.join("exit.json")
}

/// The exit record, when the container has exited and its shim has finished.
pub fn read_exit(bundle: &Path) -> Option<ExitStatus> {
    let text = std::fs::read(exit_path(bundle)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// True when the bundle's shim accepts connections.
pub fn shim_alive(bundle: &Path) -> bool {
    connect_socket(bundle).is_ok()
}

/// A blocking client of one container's shim. Every call is one connection.
#[derive(Debug)]
pub struct ShimClient {
    bundle: PathBuf,
    /// The connection made by `connect`, used by the first request.
    first: Option<UnixStream>,
}

/// How long a non-`Wait` request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl ShimClient {
    /// Connects to `<bundle>/shim.sock`; fails when no shim serves it.
    pub fn connect(bundle: &Path) -> io::Result<ShimClient> {
        let stream = connect_socket(bundle)?;
        Ok(ShimClient {
            bundle: bundle.to_path_buf(),
            first: Some(stream),
        })
    }

    fn request(
        &mut self,
        req: &ShimRequest,
        timeout: Option<Duration>,
    ) -> io::Result<ShimResponse> {
        let mut stream = match self.first.take() {
            Some(s) => s,
            None => connect_socket(&self.bundle)?,
        };
        stream.set_read_timeout(timeout)?;
        let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line)?;
        let mut reader = BufReader::new(stream);
        let mut answer = String::new();
        reader.read_line(&mut answer)?;
        if answer.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "shim closed the connection without answering",
            ));
        }
        serde_json::from_str(&answer).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    fn expect_ok(&mut self, req: ShimRequest) -> io::Result<()> {
        match self.request(&req, Some(REQUEST_TIMEOUT))? {
            ShimResponse::Ok => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// The init pid and status.
    pub fn state(&mut self) -> io::Result<ShimState> {
        match self.request(&ShimRequest::State, Some(REQUEST_TIMEOUT))? {
            ShimResponse::State { pid, status } => Ok(ShimState { pid, status }),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `signal` to the container's init.
    pub fn signal(&mut self, signal: i32) -> io::Result<()> {
        self.expect_ok(ShimRequest::Signal { signal })
    }

    /// Blocks until the container has exited. If the shim goes away without answering (it
    /// exited between connect and request), the exit record is read instead.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        match self.request(&ShimRequest::Wait, None) {
            Ok(ShimResponse::Exit(status)) => Ok(status),
            Ok(other) => Err(unexpected(other)),
            Err(e) => read_exit(&self.bundle).ok_or(e),
        }
    }

    /// Freezes the container.
    pub fn pause(&mut self) -> io::Result<()> {
        self.expect_ok(ShimRequest::Pause)
    }

    /// Thaws the container.
    pub fn resume(&mut self) -> io::Result<()> {
        self.expect_ok(ShimRequest::Resume)
    }

    /// Writes the limits `resources` sets to the running container's cgroup.
    pub fn update(&mut self, resources: &crate::spec::Resources) -> io::Result<()> {
        self.expect_ok(ShimRequest::Update {
            resources: resources.clone(),
        })
    }

    /// Host pids of the container's processes.
    pub fn pids(&mut self) -> io::Result<Vec<i32>> {
        match self.request(&ShimRequest::Pids, Some(REQUEST_TIMEOUT))? {
            ShimResponse::Pids(p) => Ok(p),
            other => Err(unexpected(other)),
        }
    }
}

/// The output stream of [`ShimClient::attach`].
#[derive(Debug)]
pub struct Attachment {
    /// The connection: Docker-framed output follows until the shim closes it.
    pub stream: UnixStream,
    /// Output bytes that arrived with the answer (the start of the first frames).
    pub rest: Vec<u8>,
    /// The container's stdin (pipe write end or terminal master), when asked for and open.
    pub stdin: Option<OwnedFd>,
    /// The main process has a terminal.
    pub tty: bool,
}

impl ShimClient {
    /// The shim's protocol version: 1 for a shim that predates the handshake.
    pub fn hello(&mut self) -> io::Result<u32> {
        let req = ShimRequest::Hello {
            version: PROTOCOL_VERSION,
        };
        match self.request(&req, Some(REQUEST_TIMEOUT))? {
            ShimResponse::Hello { version } => Ok(version),
            ShimResponse::Error { message, .. } if message.contains("unknown variant") => Ok(1),
            other => Err(unexpected(other)),
        }
    }

    /// Sets the size of the main process's terminal.
    pub fn resize(&mut self, height: u16, width: u16) -> io::Result<()> {
        self.expect_ok(ShimRequest::Resize { height, width })
    }

    /// The exec'd processes the shim keeps.
    pub fn execs(&mut self) -> io::Result<Vec<ExecRecord>> {
        match self.request(&ShimRequest::Execs, Some(REQUEST_TIMEOUT))? {
            ShimResponse::Execs(list) => Ok(list),
            other => Err(unexpected(other)),
        }
    }

    /// Blocks until the kept exec `id` has ended (at once if it has); an error when the
    /// shim keeps no such exec or the container ends first.
    pub fn exec_wait(&mut self, id: &str) -> io::Result<ExitStatus> {
        let req = ShimRequest::ExecWait { id: id.into() };
        match self.request(&req, None)? {
            ShimResponse::Exit(status) => Ok(status),
            other => Err(unexpected(other)),
        }
    }

    /// Lets go of the container's stdin pipe.
    pub fn close_stdin(&mut self) -> io::Result<()> {
        self.expect_ok(ShimRequest::CloseStdin)
    }

    /// Attaches to the main process's output (and stdin, if asked and open).
    pub fn attach(&mut self, stdin: bool, stdout: bool, stderr: bool) -> io::Result<Attachment> {
        let req = ShimRequest::Attach {
            stdin,
            stdout,
            stderr,
        };
        let (first, stream, rest, mut fds) = self.request_with_fds(&req)?;
        match first {
            ShimResponse::Attached { tty, .. } => Ok(Attachment {
                stream,
                rest,
                stdin: fds.pop(),
                tty,
            }),
            other => Err(unexpected(other)),
        }
    }

    /// Sends `req` on a connection of its own and reads the first answer with the
    /// descriptors that came along; returns the connection (in blocking mode, no timeout)
    /// and the bytes read past the answer.
    fn request_with_fds(
        &mut self,
        req: &ShimRequest,
    ) -> io::Result<(ShimResponse, UnixStream, Vec<u8>, Vec<OwnedFd>)> {
        let mut stream = match self.first.take() {
            Some(s) => s,
            None => connect_socket(&self.bundle)?,
        };
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
        line.push(b'\n');
        stream.write_all(&line)?;
        let mut buf = Vec::new();
        let mut received = Vec::new();
        while !buf.contains(&b'\n') {
            let mut chunk = [0u8; 4096];
            let n = recv_with_fds(&stream, &mut chunk, &mut received, 1)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "shim closed the connection without answering",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        stream.set_read_timeout(None)?;
        let nl = buf.iter().position(|b| *b == b'\n').unwrap_or(0);
        let first = serde_json::from_slice(&buf[..nl])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok((first, stream, buf[nl + 1..].to_vec(), received))
    }
}

/// A process started with [`ShimClient::exec`].
#[derive(Debug)]
pub struct ExecSession {
    /// Host pid of the process.
    pub pid: i32,
    /// The pty master, when a terminal was asked for.
    pub master: Option<OwnedFd>,
    /// The shim reads and discards the terminal's output ([`ExecRequest::detach`]).
    pub discarding: bool,
    stream: UnixStream,
    /// Bytes read past the first answer.
    rest: Vec<u8>,
}

impl ExecSession {
    /// Blocks until the process has exited.
    pub fn wait(self) -> io::Result<ExitStatus> {
        let (mut stream, mut rest) = self.into_parts();
        let mut chunk = [0u8; 1024];
        while !rest.contains(&b'\n') {
            let n = stream.read(&mut chunk)?;
            if n == 0 {
                return Err(exit_missing());
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        exec_exit(&rest)
    }

    /// The connection the exit comes on and the bytes read from it past the first answer,
    /// for a caller that waits without holding a thread (a process may run for days): it
    /// reads up to the next newline and gives the bytes to [`exec_exit`].
    pub fn into_parts(self) -> (UnixStream, Vec<u8>) {
        (self.stream, self.rest)
    }
}

/// The exit status in the second answer to an exec: `line` holds that answer (up to, or
/// past, its newline; see [`ExecSession::into_parts`]).
pub fn exec_exit(line: &[u8]) -> io::Result<ExitStatus> {
    let Some(nl) = line.iter().position(|b| *b == b'\n') else {
        return Err(exit_missing());
    };
    match serde_json::from_slice(&line[..nl])
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
    {
        ShimResponse::Exit(status) => Ok(status),
        other => Err(unexpected(other)),
    }
}

fn exit_missing() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "shim closed the connection without the exit status",
    )
}

impl ShimClient {
    /// Starts a process in the running container. Without `req.tty`, `stdio` (stdin, stdout,
    /// stderr) must be given: the process gets copies of them. Returns once the process runs.
    pub fn exec(
        &mut self,
        req: &ExecRequest,
        stdio: Option<[BorrowedFd<'_>; 3]>,
    ) -> io::Result<ExecSession> {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
        let stream = match self.first.take() {
            Some(s) => s,
            None => connect_socket(&self.bundle)?,
        };
        stream.set_read_timeout(Some(REQUEST_TIMEOUT))?;
        let mut line =
            serde_json::to_vec(&ShimRequest::Exec(req.clone())).map_err(io::Error::other)?;
        line.push(b'\n');
        let raw: Vec<RawFd> = stdio.iter().flatten().map(|f| f.as_raw_fd()).collect();
        let cmsg = [ControlMessage::ScmRights(&raw)];
        let cmsgs: &[ControlMessage] = if raw.is_empty() { &[] } else { &cmsg };
        let sent = sendmsg::<()>(
            stream.as_raw_fd(),
            &[io::IoSlice::new(&line)],
            cmsgs,
            MsgFlags::empty(),
            None,
        )?;
        if sent < line.len() {
            (&stream).write_all(&line[sent..])?;
        }
        // The first answer, possibly with the pty master attached.
        let mut buf = Vec::new();
        let mut received = Vec::new();
        while !buf.contains(&b'\n') {
            let mut chunk = [0u8; 1024];
            let n = recv_with_fds(&stream, &mut chunk, &mut received, 1)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "shim closed the connection without answering",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let master = received.pop();
        stream.set_read_timeout(None)?;
        let nl = buf.iter().position(|b| *b == b'\n').unwrap_or(0);
        let first: ShimResponse = serde_json::from_slice(&buf[..nl])
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        match first {
            ShimResponse::ExecStarted { pid, discarding } => Ok(ExecSession {
                pid,
                master,
                discarding,
                stream,
                rest: buf[nl + 1..].to_vec(),
            }),
            other => Err(unexpected(other)),
        }
    }
}

/// `recvmsg` of up to `buf.len()` bytes; descriptors that came along (SCM_RIGHTS) are
/// appended to `fds`, at most `max` kept (the rest are closed).
pub(crate) fn recv_with_fds(
    stream: &UnixStream,
    buf: &mut [u8],
    fds: &mut Vec<OwnedFd>,
    max: usize,
) -> io::Result<usize> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut iov = [io::IoSliceMut::new(buf)];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let msg = recvmsg::<()>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let n = msg.bytes;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = c {
            for fd in received {
                // SAFETY: the kernel just installed this descriptor for us; owning it closes
                // it when dropped.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                if fds.len() < max {
                    fds.push(fd);
                }
            }
        }
    }
    Ok(n)
}

/// The typed error behind a [`ShimClient`] failure: the shim's own (with its kind), or
/// `Shim` (unavailable) when the shim could not be reached or broke the protocol. The
/// container's id goes into the latter, so the operand is never lost.
pub fn runtime_error(e: io::Error, container: &str) -> crate::RuntimeError {
    let text = e.to_string();
    match e
        .into_inner()
        .map(|inner| inner.downcast::<crate::RuntimeError>())
    {
        Some(Ok(typed)) => *typed,
        _ => crate::RuntimeError::Shim(format!("container {container}: {text}")),
    }
}

fn unexpected(resp: ShimResponse) -> io::Error {
    match resp {
        // The typed error rides inside the io::Error ([`runtime_error`] takes it out).
        ShimResponse::Error { message, kind } => {
            io::Error::other(crate::RuntimeError::from_report(message, kind.as_deref()))
        }
        other => io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected shim response: {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_as_documented() {
        let j = |r: &ShimRequest| serde_json::to_string(r).unwrap();
        assert_eq!(j(&ShimRequest::State), r#"{"op":"state"}"#);
        assert_eq!(
            j(&ShimRequest::Signal { signal: 15 }),
            r#"{"op":"signal","signal":15}"#
        );
        let j = |r: &ShimResponse| serde_json::to_string(r).unwrap();
        assert_eq!(j(&ShimResponse::Ok), r#""ok""#);
        assert_eq!(
            j(&ShimResponse::State {
                pid: 7,
                status: "running".into()
            }),
            r#"{"state":{"pid":7,"status":"running"}}"#
        );
        assert_eq!(j(&ShimResponse::Pids(vec![1, 2])), r#"{"pids":[1,2]}"#);
        assert_eq!(
            j(&ShimResponse::Exit(ExitStatus {
                exit_code: 137,
                oom_killed: false,
                finished_at: "t".into()
            })),
            r#"{"exit":{"exit_code":137,"oom_killed":false,"finished_at":"t"}}"#
        );
        assert_eq!(
            j(&ShimResponse::Error {
                message: "x".into(),
                kind: None,
            }),
            r#"{"error":{"message":"x"}}"#
        );
        assert_eq!(
            j(&ShimResponse::error(&crate::RuntimeError::Conflict(
                "y".into()
            ))),
            r#"{"error":{"message":"y","kind":"conflict"}}"#
        );
    }
}
