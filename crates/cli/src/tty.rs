//! The local terminal for `run -it`: raw mode on stdin while attached, and its size
//! (sent as `ConsoleSize` at create and by `resize` after start and on SIGWINCH, as docker).

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
