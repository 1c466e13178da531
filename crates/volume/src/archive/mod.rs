//! A volume's content as a tar archive, both ways: berth's own `volume export` and `volume
//! import` (issue 15, backup and restore).
//!
//! The format is GNU tar with PAX records: each entry's numeric owner, mode and type in its
//! header, its mtime to the nanosecond and its extended attributes (`SCHILY.xattr.NAME`,
//! GNU tar's and star's spelling) in a PAX header before it, a path or link target longer
//! than the header holds as a PAX `path` / `linkpath`. Hard links are `1` entries naming
//! the first path of the inode; a file with holes is a GNU sparse entry (`S`: its data
//! extents, found with `SEEK_DATA`/`SEEK_HOLE`, and the holes left out), which GNU tar and
//! the tar crate read back as holes.
//!
//! Both directions work relative to open directory descriptors and never follow a symlink
//! (`O_NOFOLLOW` on every open, `AT_SYMLINK_NOFOLLOW` on every stat and chown): an export
//! without pause may race a container that swaps a directory for a symlink, and reads
//! nothing outside the volume; an import of a hostile archive (`..`, absolute names, a
//! symlink then a path through it) writes nothing outside its staging directory.

mod export;
mod import;

pub use export::write_tree;
pub use import::{read_tree, ImportError};

use std::ffi::{CStr, OsString};
use std::io::{self, BufRead, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// A tar stream's compression, chosen for an export; told by magic bytes on import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Zstd,
}

impl std::str::FromStr for Compression {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "" | "none" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            other => Err(format!(
                "unknown compression {other:?}: expected none, gzip or zstd"
            )),
        }
    }
}

impl Compression {
    /// The compression of the stream whose first bytes are `head` (gzip's `1f 8b 08`,
    /// zstd's frame magic `28 b5 2f fd`).
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b, 0x08]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The media type of a stream with this compression.
    pub fn content_type(self) -> &'static str {
        match self {
            Compression::None => "application/x-tar",
            Compression::Gzip => "application/gzip",
            Compression::Zstd => "application/zstd",
        }
    }

    /// `out` wrapped in this compression's encoder; the returned writer's `finish`
    /// ([`Encoder::finish`]) ends the stream.
    pub fn encoder<'a, W: Write + 'a>(self, out: W) -> io::Result<Encoder<'a, W>> {
        Ok(match self {
            Compression::None => Encoder::Plain(out),
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::default(),
            )),
            // Level 3, zstd's default: faster than gzip's default at a better ratio.
            Compression::Zstd => Encoder::Zstd(zstd::stream::write::Encoder::new(out, 3)?),
        })
    }
}

/// A writer compressing (or not) into `W`.
pub enum Encoder<'a, W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'a, W>),
}

impl<W: Write> Encoder<'_, W> {
    /// Ends the compressed stream (its trailer) and flushes.
    pub fn finish(self) -> io::Result<W> {
        let mut out = match self {
            Encoder::Plain(w) => w,
            Encoder::Gzip(g) => g.finish()?,
            Encoder::Zstd(z) => z.finish()?,
        };
        out.flush()?;
        Ok(out)
    }
}

impl<W: Write> Write for Encoder<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            Encoder::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

/// The uncompressed stream of `input`, whatever its compression (told by its first bytes).
pub fn decoder<'a, R: BufRead + 'a>(mut input: R) -> io::Result<Box<dyn Read + 'a>> {
    let compression = Compression::detect(input.fill_buf()?);
    Ok(match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    })
}

/// The PAX key of an extended attribute (GNU tar's and star's).
const PAX_XATTR: &str = "SCHILY.xattr.";

/// The entry `name` of the open directory `dir` as a `/proc/self/fd` path, for the
/// `l*xattr` calls (which have no directory-relative form): it names the directory open,
/// wherever it is now, and the `l` calls do not follow `name` when it is a symlink.
fn proc_path(dir: &impl AsRawFd, name: &CStr) -> PathBuf {
    let mut path = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    path.extend_from_slice(name.to_bytes());
    PathBuf::from(OsString::from_vec(path))
}

#[cfg(test)]
mod tests;
