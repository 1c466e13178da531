//! Tar reading with the header blocks bounded. The tar crate reads a GNU long name or long
//! link (`L`, `K`) and a PAX extension (`x`) whole into memory before the entry they
//! describe, limited by nothing but the stream: a 1 MB gzip of a 1 GiB "name" took berthd
//! to 6.4 GB. [`BoundedTar`] counts what the tar reader reads between two entries and fails
//! the read past the unread rest of the previous entry (which the reader skips through a
//! small buffer) plus [`MAX_HEADERS`], as Go's archive/tar refuses special files over
//! 1 MiB. What the caller reads of an entry's content is not counted: that is the budget's
//! business.

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;

/// The most a tar reader may read between two entries.
pub const MAX_HEADERS: u64 = 1 << 20;

/// A tar archive whose header blocks are bounded (see the module's comment).
pub struct BoundedTar<R: Read> {
    archive: tar::Archive<Metered<R>>,
    /// (bytes read since the entries iterator was asked for the next entry, the most it
    /// may read); `None` while the caller reads an entry's content.
    between: Rc<Cell<Option<(u64, u64)>>>,
}

/// The input, counting what the tar reader reads between entries.
pub struct Metered<R> {
    inner: R,
    between: Rc<Cell<Option<(u64, u64)>>>,
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some((used, most)) = self.between.get() {
            let used = used + n as u64;
            if used > most {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "an entry's headers (long name, long link or PAX records) exceed {} MiB",
                        MAX_HEADERS >> 20
                    ),
                ));
            }
            self.between.set(Some((used, most)));
        }
        Ok(n)
    }
}

impl<R: Read> BoundedTar<R> {
    pub fn new(input: R) -> Self {
        let between = Rc::new(Cell::new(Some((0, MAX_HEADERS))));
        BoundedTar {
            archive: tar::Archive::new(Metered {
                inner: input,
                between: between.clone(),
            }),
            between,
        }
    }

    /// The entries, as `tar::Archive::entries`.
    pub fn entries(&mut self) -> io::Result<Entries<'_, R>> {
        self.between.set(Some((0, MAX_HEADERS)));
        let inner = self.archive.entries()?;
        Ok(Entries {
            inner,
            between: self.between.clone(),
            last_size: 0,
        })
    }
}

/// The entries of a [`BoundedTar`].
pub struct Entries<'a, R: Read> {
    inner: tar::Entries<'a, Metered<R>>,
    between: Rc<Cell<Option<(u64, u64)>>>,
    /// The content size of the entry yielded last: what the reader may skip of it.
    last_size: u64,
}

/// One entry of a [`BoundedTar`].
pub type Entry<'a, R> = tar::Entry<'a, Metered<R>>;

impl<'a, R: Read> Iterator for Entries<'a, R> {
    type Item = io::Result<Entry<'a, R>>;

    fn next(&mut self) -> Option<Self::Item> {
        let skip = self.last_size.div_ceil(512) * 512;
        self.between
            .set(Some((0, skip.saturating_add(MAX_HEADERS))));
        let next = self.inner.next();
        self.between.set(None);
        self.last_size = match &next {
            Some(Ok(e)) => e.size(),
            _ => 0,
        };
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_with_long_name(len: usize) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let name = "a".repeat(len);
        b.append_data(&mut h, &name, &b"abc"[..]).unwrap();
        let mut big = tar::Header::new_gnu();
        big.set_size(2 * MAX_HEADERS);
        big.set_mode(0o644);
        big.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut big, "big", io::repeat(b'x').take(2 * MAX_HEADERS))
            .unwrap();
        b.into_inner().unwrap()
    }

    fn names(tar: &[u8]) -> io::Result<Vec<usize>> {
        let mut t = BoundedTar::new(tar);
        let mut out = Vec::new();
        for e in t.entries()? {
            let mut e = e?;
            let mut content = Vec::new();
            e.read_to_end(&mut content)?;
            out.push(e.path_bytes().len());
        }
        Ok(out)
    }

    #[test]
    fn long_names_within_the_bound_read_and_content_is_not_counted() {
        // A 64 KiB name, then an entry with 2 MiB of content.
        assert_eq!(names(&tar_with_long_name(64 << 10)).unwrap(), [64 << 10, 3]);
    }

    #[test]
    fn content_the_caller_skips_is_not_counted_as_headers() {
        let tar = tar_with_long_name(10);
        let mut t = BoundedTar::new(&tar[..]);
        let sizes: Vec<u64> = t.entries().unwrap().map(|e| e.unwrap().size()).collect();
        assert_eq!(sizes, [3, 2 * MAX_HEADERS]);
    }

    #[test]
    fn a_long_name_over_the_bound_fails_before_it_is_read_whole() {
        let e = names(&tar_with_long_name(2 << 20)).unwrap_err();
        assert!(e.to_string().contains("exceed 1 MiB"), "{e}");
    }
}
