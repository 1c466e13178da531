//! The local terminal: raw mode on stdin for `run -it` while attached, its size (sent as
//! `ConsoleSize` at create and by `resize` after start and on SIGWINCH, as docker), and
//! the no-echo line of `login`'s password prompt.

use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions, Termios};

/// Restores stdin's terminal settings when dropped.
pub struct RawMode {
    original: Termios,
}

impl RawMode {
    /// Puts stdin in raw mode (keys pass through to the container's pty, no local echo);
    /// `None` when stdin is not a terminal.
    pub fn enable() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let original = tcgetattr(&stdin).ok()?;
        let mut raw = original.clone();
        raw.make_raw();
        tcsetattr(&stdin, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { original })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin(), OptionalActions::Now, &self.original);
    }
}

/// `(height, width)` of the terminal on stdout, if it is one.
pub fn size() -> Option<(u16, u16)> {
    let ws = tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// A line read from the terminal on stdin without echo (`login`'s password prompt).
pub fn read_password() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    let original = tcgetattr(&stdin)?;
    let mut quiet = original.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &quiet)?;
    let mut line = String::new();
    let read = stdin.read_line(&mut line);
    let _ = tcsetattr(&stdin, OptionalActions::Now, &original);
    read?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
