//! 7z archives (`37 7A BC AF 27 1C`), read with the pure-Rust `sevenz-rust2`: the member
//! reader [`super::archive`] walks them with, like zip and tar. Members are decompressed at most
//! [`MAX_MEMBER`] bytes each and the caller's budget in all, so a 7z bomb stops early.

use std::io::{Read, Seek, SeekFrom};

use super::{ProbeInput, Source};

/// The 7z signature.
pub const MAGIC: &[u8; 6] = b"7z\xbc\xaf\x27\x1c";
/// Largest member decompressed for analysis.
pub const MAX_MEMBER: usize = 64 * 1024 * 1024;
/// Most members looked at.
const MAX_MEMBERS: usize = 4096;

/// A `Read + Seek` view of a [`Source`].
struct SeekableSource<'a> {
    src: &'a dyn Source,
    size: u64,
    pos: u64,
}

impl Read for SeekableSource<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.src.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SeekableSource<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

/// One member read from an archive: its name and (possibly cut) bytes, or why it could not be.
#[derive(Debug)]
pub struct Member {
    /// Name inside the archive.
    pub name: String,
    /// Its bytes, at most [`MAX_MEMBER`].
    pub data: Vec<u8>,
    /// The member was longer than what was read.
    pub cut: bool,
}

/// Reads the archive's file members, at most `max_total` bytes in all; `f` returns `false` to
/// stop early.
pub fn members(input: &ProbeInput<'_>, max_total: usize, mut f: impl FnMut(Member) -> bool) -> Result<(), String> {
    let source = SeekableSource { src: input.source, size: input.size, pos: 0 };
    let mut reader =
        sevenz_rust2::ArchiveReader::new(source, sevenz_rust2::Password::empty()).map_err(|e| e.to_string())?;
    let mut total = 0usize;
    let mut seen = 0usize;
    reader
        .for_each_entries(|entry, r| {
            seen += 1;
            if seen > MAX_MEMBERS || total >= max_total {
                return Ok(false);
            }
            if entry.is_directory() {
                return Ok(true);
            }
            let cap = MAX_MEMBER.min(max_total - total);
            let mut data = Vec::new();
            r.take(cap as u64 + 1).read_to_end(&mut data)?;
            let cut = data.len() > cap;
            data.truncate(cap);
            total += data.len();
            Ok(f(Member { name: entry.name().to_string(), data, cut }))
        })
        .map_err(|e| e.to_string())
}
