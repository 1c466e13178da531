//! Files of a layer written into a tar as Docker's archiver writes them: owner, mode and
//! mtime (whole seconds) in the header, hard links to a file already written as links,
//! `security.capability` as a PAX `SCHILY.xattr.` record, sockets left out. Every file is
//! read through its directory's descriptor ([`crate::merged`]), never by path.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::merged::{open_file_at, read_link_at, xattr_at};

/// The one extended attribute Docker's archiver carries.
const CAPABILITY_XATTR: &str = "security.capability";

/// The tar being written and the hard links seen so far.
pub(crate) struct TarWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (device, inode) of a multiply linked file -> the name it was first written under
    links: HashMap<(u64, u64), PathBuf>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        TarWriter {
            tar,
            links: HashMap::new(),
        }
    }

    /// Writes the end-of-archive blocks and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        self.tar.into_inner()
    }

    /// Writes the entry `name` of `dir` (whose `lstat` is `meta`) as `rel`. A file that is
    /// gone or was replaced since `meta` was read is left out, as is a socket.
    pub fn append(
        &mut self,
        rel: &Path,
        dir: &File,
        name: &OsStr,
        meta: &Metadata,
    ) -> io::Result<()> {
        let ft = meta.file_type();
        let mut h = Header::new_gnu();
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(u64::from(meta.uid()));
        h.set_gid(u64::from(meta.gid()));
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        if ft.is_dir() {
            h.set_entry_type(EntryType::Directory);
            self.capability(dir, name)?;
            let mut shown = rel.as_os_str().to_os_string();
            shown.push("/");
            return self.tar.append_data(&mut h, shown, io::empty());
        }
        if ft.is_file() {
            let key = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = self.links.get(&key) {
                    h.set_entry_type(EntryType::Link);
                    let first = first.clone();
                    return self.tar.append_link(&mut h, rel, first);
                }
            }
            let Some(file) = open_file_at(dir, name, meta)? else {
                return Ok(());
            };
            h.set_entry_type(EntryType::Regular);
            h.set_size(meta.len());
            self.capability(dir, name)?;
            self.tar
                .append_data(&mut h, rel, ExactLength::new(file, meta.len()))?;
            if meta.nlink() > 1 {
                self.links.insert(key, rel.to_path_buf());
            }
            return Ok(());
        }
        if ft.is_symlink() {
            let target = match read_link_at(dir, name) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            h.set_entry_type(EntryType::Symlink);
            return self.tar.append_link(&mut h, rel, target);
        }
        let kind = if ft.is_char_device() {
            EntryType::Char
        } else if ft.is_block_device() {
            EntryType::Block
        } else if ft.is_fifo() {
            EntryType::Fifo
        } else {
            // Go's archive/tar has no type for sockets: Docker leaves them out too.
            return Ok(());
        };
        h.set_entry_type(kind);
        if kind != EntryType::Fifo {
            h.set_device_major(nix::sys::stat::major(meta.rdev()) as u32)?;
            h.set_device_minor(nix::sys::stat::minor(meta.rdev()) as u32)?;
        }
        self.capability(dir, name)?;
        self.tar.append_data(&mut h, rel, io::empty())
    }

    /// An AUFS whiteout for `rel` (`dir/.wh.name`): what a layer says to delete a file.
    pub fn whiteout(&mut self, rel: &Path, now: u64) -> io::Result<()> {
        let mut name = b".wh.".to_vec();
        name.extend_from_slice(rel.file_name().unwrap_or_default().as_bytes());
        let path = rel
            .parent()
            .unwrap_or(Path::new(""))
            .join(OsStr::from_bytes(&name));
        let mut h = Header::new_gnu();
        h.set_entry_type(EntryType::Regular);
        h.set_size(0);
        h.set_mode(0);
        h.set_mtime(now);
        self.tar.append_data(&mut h, path, io::empty())
    }

    /// The PAX record of the entry's file capabilities, when it has some.
    fn capability(&mut self, dir: &File, name: &OsStr) -> io::Result<()> {
        let Some(value) = xattr_at(dir, name, CAPABILITY_XATTR)? else {
            return Ok(());
        };
        let record = pax_record(&format!("SCHILY.xattr.{CAPABILITY_XATTR}"), &value);
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.set_size(record.len() as u64);
        h.set_mode(0o644);
        h.set_path("PaxHeader")?;
        h.set_cksum();
        self.tar.append(&h, record.as_slice())
    }
}

/// One PAX record: `<length> <key>=<value>\n`, the length counting itself.
fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3;
    let mut len = rest + rest.to_string().len();
    if len.to_string().len() + rest != len {
        len = rest + len.to_string().len();
    }
    let mut out = format!("{len} {key}=").into_bytes();
    out.extend_from_slice(value);
    out.push(b'\n');
    out
}

/// A file's first `len` bytes, padded with zeros if it shrank meanwhile: a tar entry's
/// content must be as long as its header says (a running container may write on).
struct ExactLength {
    file: io::Take<File>,
    left: u64,
}

impl ExactLength {
    fn new(file: File, len: u64) -> Self {
        ExactLength {
            file: file.take(len),
            left: len,
        }
    }
}

impl Read for ExactLength {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let n = match self.file.read(&mut buf[..want])? {
            0 => {
                buf[..want].fill(0);
                want
            }
            n => n,
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_records_count_their_own_length() {
        for value_len in [0, 1, 5, 80, 89, 90, 95, 990, 996] {
            let value = vec![b'v'; value_len];
            let r = pax_record("SCHILY.xattr.security.capability", &value);
            let text = String::from_utf8_lossy(&r);
            let (len, _) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), r.len(), "{value_len}");
        }
    }

    #[test]
    fn a_shrunk_file_is_padded_to_its_length() {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b"abc").unwrap();
        let mut r = ExactLength::new(File::open(tmp.path()).unwrap(), 6);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"abc\0\0\0");
    }
}
