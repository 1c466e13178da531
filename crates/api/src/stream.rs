//! Docker's stdout/stderr multiplexing ("stdcopy"): without a TTY every chunk of output
//! travels behind an 8-byte header `[stream, 0, 0, 0, len as big-endian u32]`.

/// Which stream a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The process's standard input (never framed towards clients, listed for completeness).
    Stdin = 0,
    /// Standard output.
    Stdout = 1,
    /// Standard error.
    Stderr = 2,
    /// An error from the daemon, in-band after the response has started.
    System = 3,
}

/// Docker's default detach sequence: ctrl-p, ctrl-q.
pub const DEFAULT_DETACH_KEYS: &[u8] = &[16, 17];

/// Parses a detach sequence (`ctrl-p,ctrl-q`, `a`, `ctrl-@`...) as Docker's `term.ToBytes`;
/// empty disables detaching. The error is Docker's text.
pub fn parse_detach_keys(keys: &str) -> Result<Vec<u8>, String> {
    let invalid = || format!("Invalid detach keys ({keys}) provided");
    let mut out = Vec::new();
    if keys.is_empty() {
        return Ok(out);
    }
    for key in keys.split(',') {
        let key = key.trim();
        if let Some(c) = key.strip_prefix("ctrl-") {
            let b = match c.as_bytes() {
                [b @ b'a'..=b'z'] => b - b'a' + 1,
                [b'@'] => 0,
                [b'['] => 27,
                [b'\\'] => 28,
                [b']'] => 29,
                [b'^'] => 30,
                [b'_'] => 31,
                _ => return Err(invalid()),
            };
            out.push(b);
        } else if key.len() == 1 && key.is_ascii() {
            out.push(key.as_bytes()[0]);
        } else {
            return Err(invalid());
        }
    }
    Ok(out)
}

/// Frames `payload` for `kind`; payloads over 4 GiB are not expected from one write.
pub fn frame(kind: StreamKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Incremental decoder for framed streams (used by the CLI).
#[derive(Debug, Default)]
pub struct Demuxer {
    buf: Vec<u8>,
}

impl Demuxer {
    /// Feeds bytes; returns every complete frame.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            if self.buf.len() < 8 {
                break;
            }
            let len =
                u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if self.buf.len() < 8 + len {
                break;
            }
            let kind = self.buf[0];
            let payload = self.buf[8..8 + len].to_vec();
            self.buf.drain(..8 + len);
            frames.push((kind, payload));
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detach_keys_parse_as_dockers() {
        assert_eq!(
            parse_detach_keys("ctrl-p,ctrl-q").unwrap(),
            DEFAULT_DETACH_KEYS
        );
        assert_eq!(
            parse_detach_keys("a,ctrl-@,ctrl-_").unwrap(),
            vec![b'a', 0, 31]
        );
        assert_eq!(parse_detach_keys("").unwrap(), Vec::<u8>::new());
        for bad in ["ctrl-", "ctrl-1", "ab", "ctrl-p,,"] {
            let e = parse_detach_keys(bad).unwrap_err();
            assert_eq!(e, format!("Invalid detach keys ({bad}) provided"));
        }
    }

    #[test]
    fn frames_round_trip_in_pieces() {
        let mut bytes = frame(StreamKind::Stdout, b"hi\n");
        bytes.extend(frame(StreamKind::Stderr, b"oops"));
        assert_eq!(&bytes[..8], &[1, 0, 0, 0, 0, 0, 0, 3]);
        let mut d = Demuxer::default();
        let mut got = d.push(&bytes[..5]);
        assert!(got.is_empty());
        got = d.push(&bytes[5..]);
        assert_eq!(got, vec![(1, b"hi\n".to_vec()), (2, b"oops".to_vec())]);
    }
}
