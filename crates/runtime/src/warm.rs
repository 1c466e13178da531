//! Warm shims: a `berth-shim warm` process started ahead of need, so that [`crate::start`]
//! hands it a bundle instead of starting a process.
//!
//! A cold start pays, on the path of every `docker run`: berthd's spawn of the shim, the
//! shim's exec and dynamic loading, its fork into the detached child, and two reader threads
//! in berthd. A warm shim has done all of that already: it is the detached child, waiting
//! for one message on its stdin, a `SOCK_SEQPACKET` socket: `start <bundle>`, with the
//! network namespace the engine made for the container attached ([`crate::start_in`]). It then goes on
//! exactly as a cold shim's child does and reports on its stdout, which berthd reads with
//! `poll(2)`.
//!
//! berthd keeps one per shim binary ([`warm_up`], called off the latency path after each
//! start). A warm shim exits when its stdin closes: when berthd lets
//! it go ([`cool_down`]) or dies. One that died meanwhile is noticed when the command cannot
//! be written (EPIPE), and the start falls back to a cold one.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::socket;

use crate::error::RuntimeError;

/// The room a warm shim's command line is rewritten into (`start <bundle>`): its argument.
/// A longer bundle path is cut (the command line only; nothing reads the path from there but
/// people and tests looking for a bundle's processes).
const PLACEHOLDER_LEN: usize = 1024;

/// How long [`warm_up`] waits for a new warm shim to say who it is.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// A warm shim, waiting.
#[derive(Debug)]
pub(crate) struct Warm {
    binary: PathBuf,
    /// Its stdin (a seqpacket socket): one command, then closed.
    command: OwnedFd,
    /// Its stdout: the report.
    out: File,
    /// Read from `out` past the last line.
    pending: Vec<u8>,
    /// The detached process.
    pub(crate) pid: i32,
    /// The binary it runs, as it was on disk: a shim binary replaced since (an upgrade) is
    /// not handed a bundle written for the new one.
    identity: Option<(u64, u64, i64)>,
}

/// (device, inode, mtime) of `path`.
fn identity(path: &Path) -> Option<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.mtime()))
}

static POOL: Mutex<Vec<Warm>> = Mutex::new(Vec::new());
/// Held while a warm shim is being made: concurrent callers make one, not one each.
static MAKING: Mutex<()> = Mutex::new(());

/// Makes sure a warm shim of `shim_binary` is waiting. Blocking (a process start, about
/// 1 ms): call it off the latency path. Only for berth's own runtime's `berth-shim`. Failing
/// costs only the next start its head start (a cold shim).
pub fn warm_up(shim_binary: &Path) -> Result<(), RuntimeError> {
    let _making = MAKING.lock().unwrap_or_else(|p| p.into_inner());
    if pool().iter().any(|w| w.binary == shim_binary) {
        Ok(())
    } else {
        start_warm(shim_binary)
    }
}

fn start_warm(shim_binary: &Path) -> Result<(), RuntimeError> {
    let (command, theirs) = socket::socketpair(
        socket::AddressFamily::Unix,
        socket::SockType::SeqPacket,
        None,
        socket::SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| RuntimeError::io("warm shim socketpair", e.into()))?;
    let identity = identity(shim_binary);
    let mut child = Command::new(shim_binary)
        .arg("warm")
        .arg(" ".repeat(PLACEHOLDER_LEN))
        .stdin(Stdio::from(theirs))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| RuntimeError::io(shim_binary, e))?;
    let mut out = File::from(std::os::fd::OwnedFd::from(
        child.stdout.take().expect("piped stdout"),
    ));
    let mut pending = Vec::new();
    let line = read_line(&mut out, &mut pending, Instant::now() + WARM_UP_TIMEOUT);
    // The launcher exits right after that line; without it, it is stuck or gone. (Its child,
    // if it made one, exits at EOF on its stdin when `command` is dropped below.)
    if !matches!(line, Ok(Some(_))) {
        let _ = child.kill();
    }
    let status = child.wait();
    let report = line
        .ok()
        .flatten()
        .and_then(|l| serde_json::from_str::<crate::shim::server::Report>(&l).ok());
    match report.and_then(|r| r.shim_pid) {
        Some(pid) if pid > 1 => {
            pool().push(Warm {
                binary: shim_binary.to_path_buf(),
                command,
                out,
                pending,
                pid,
                identity,
            });
            Ok(())
        }
        _ => Err(RuntimeError::Shim(format!(
            "{} warm did not say its pid ({})",
            shim_binary.display(),
            status.map_or_else(|e| e.to_string(), |s| s.to_string())
        ))),
    }
}

/// Lets the warm shims of `shim_binary` go: they exit when their stdin closes.
pub fn cool_down(shim_binary: &Path) {
    pool().retain(|w| w.binary != shim_binary);
}

/// The pids of the warm shims waiting now.
pub fn warm_pids() -> Vec<i32> {
    pool().iter().map(|w| w.pid).collect()
}

fn pool() -> std::sync::MutexGuard<'static, Vec<Warm>> {
    POOL.lock().unwrap_or_else(|p| p.into_inner())
}

/// A warm shim of `shim_binary`, handed `bundle` and, when given, the network namespace its
/// container joins; `None` when there is none, or the one there died meanwhile (the caller
/// starts a cold one).
pub(crate) fn hand_over(
    shim_binary: &Path,
    bundle: &Path,
    netns: Option<&std::os::fd::OwnedFd>,
) -> Option<Warm> {
    let bundle = bundle.as_os_str().as_bytes();
    if bundle.contains(&b'\n') {
        return None;
    }
    let warm = {
        let mut pool = pool();
        let i = pool.iter().position(|w| w.binary == shim_binary)?;
        pool.swap_remove(i)
    };
    if warm.identity.is_none() || warm.identity != identity(shim_binary) {
        // Let go (it exits at EOF); the next warm-up starts the new binary.
        return None;
    }
    let mut line = b"start ".to_vec();
    line.extend_from_slice(bundle);
    line.push(b'\n');
    let fds: Vec<RawFd> = netns.iter().map(|f| f.as_raw_fd()).collect();
    let rights = [socket::ControlMessage::ScmRights(&fds)];
    let cmsgs: &[socket::ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    // One message; EPIPE when the shim is gone (std ignores SIGPIPE in Rust programs).
    socket::sendmsg::<()>(
        warm.command.as_raw_fd(),
        &[std::io::IoSlice::new(&line)],
        cmsgs,
        socket::MsgFlags::MSG_NOSIGNAL,
        None,
    )
    .ok()?;
    Some(warm)
}

impl Warm {
    /// The report line by `deadline`: `Ok(None)` at EOF.
    pub(crate) fn report(&mut self, deadline: Instant) -> io::Result<Option<String>> {
        read_line(&mut self.out, &mut self.pending, deadline)
    }
}

/// One line of `out` (without the newline) by `deadline`: `Ok(None)` at EOF, `TimedOut` at
/// the deadline. Bytes read past the line stay in `pending` for the next call.
fn read_line(
    out: &mut File,
    pending: &mut Vec<u8>,
    deadline: Instant,
) -> io::Result<Option<String>> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(i) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=i).collect();
            return Ok(Some(String::from_utf8_lossy(&line[..i]).into_owned()));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut fds = [libc::pollfd {
            fd: out.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: `fds` is a valid array of one pollfd struct.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, ms) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no report in time"));
        }
        match out.read(&mut buf) {
            Ok(0) => return Ok(None),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}
