//! SHA-256 of file content at the CPU's limit.
//!
//! `sha2` selects the SHA-NI (x86) or ARMv8 crypto code path at run time. Files are read
//! sequentially in [`CHUNK`]-byte positioned reads into one buffer per thread, so memory stays
//! flat whatever the file size, and the kernel is told the access is sequential. After hashing,
//! the file's stamp is compared with the one taken at open: a file that changed while it was
//! read gives an error, never a digest of mixed content.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use sha2::{Digest, Sha256};

use crate::fileio::{check_unchanged, FileStamp};

/// Read size for hashing: large enough to amortise syscalls, small enough to stay in L2/L3.
pub const CHUNK: usize = 1 << 20;

/// A reusable hashing buffer (one per worker thread).
#[derive(Debug)]
pub struct FileHasher {
    /// The read buffer, allocated once.
    buf: Vec<u8>,
}

impl Default for FileHasher {
    fn default() -> Self {
        Self { buf: vec![0u8; CHUNK] }
    }
}

impl FileHasher {
    /// Hashes the whole of `file`, which must still match `stamp` at the end. `on_chunk` is
    /// called with the byte count of every chunk read (progress, CPU pacing).
    pub fn sha256(&mut self, file: &File, stamp: &FileStamp, on_chunk: &dyn Fn(u64)) -> io::Result<[u8; 32]> {
        let _ = rustix::fs::fadvise(file, 0, None, rustix::fs::Advice::Sequential);
        let mut hasher = Sha256::new();
        let mut offset: u64 = 0;
        loop {
            let n = match file.read_at(&mut self.buf, offset) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(self.buf.get(..n).unwrap_or_default());
            offset += n as u64;
            on_chunk(n as u64);
        }
        if offset != stamp.size {
            return Err(io::Error::other(format!(
                "file changed while being read ({} bytes read, {} expected)",
                offset, stamp.size
            )));
        }
        check_unchanged(file, stamp)?;
        Ok(hasher.finalize().into())
    }
}

/// The digest of `content`, the whole of `file` already read into memory (a small file read in
/// one go); like [`FileHasher::sha256`], `file` must still match `stamp` afterwards.
pub fn sha256_read(file: &File, stamp: &FileStamp, content: &[u8]) -> io::Result<[u8; 32]> {
    if content.len() as u64 != stamp.size {
        return Err(io::Error::other(format!(
            "file changed while being read ({} bytes read, {} expected)",
            content.len(),
            stamp.size
        )));
    }
    check_unchanged(file, stamp)?;
    Ok(Sha256::digest(content).into())
}

/// Hex SHA-256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest of a set of files, reproducible with coreutils:
/// `(cd ROOT && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum)`.
/// `members` are `(relative path, hex sha256)`; they are sorted by path bytes here.
pub fn tree_digest(members: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = members.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut h = Sha256::new();
    for (path, digest) in sorted {
        h.update(digest.as_bytes());
        h.update(b"  ");
        h.update(path.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn hashes_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        let (f, stamp) = crate::fileio::open_regular(&p).unwrap();
        let progress = AtomicU64::new(0);
        let d = FileHasher::default().sha256(&f, &stamp, &|n| _ = progress.fetch_add(n, Ordering::Relaxed)).unwrap();
        assert_eq!(hex::encode(d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(progress.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_file_that_changes_while_read_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let (f, stamp) = crate::fileio::open_regular(&p).unwrap();
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"more").unwrap();
        let err = FileHasher::default().sha256(&f, &stamp, &|_| ()).unwrap_err();
        assert!(err.to_string().contains("changed while being read"), "{err}");
    }

    #[test]
    fn a_file_read_whole_hashes_like_one_read_in_chunks_and_must_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.pkl");
        std::fs::write(&path, b"small model bytes").unwrap();
        let (file, stamp) = crate::fileio::open_regular(&path).unwrap();
        let content = std::fs::read(&path).unwrap();
        let whole = sha256_read(&file, &stamp, &content).unwrap();
        assert_eq!(whole, FileHasher::default().sha256(&file, &stamp, &|_| {}).unwrap());
        assert!(sha256_read(&file, &stamp, b"small").is_err(), "a short read is not the file");
        std::fs::write(&path, b"other model bytes, longer").unwrap();
        assert!(sha256_read(&file, &stamp, &content).is_err(), "the file changed after the read");
    }

    #[test]
    fn a_file_truncated_after_open_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, vec![7u8; 4096]).unwrap();
        let (f, stamp) = crate::fileio::open_regular(&p).unwrap();
        std::fs::write(&p, b"x").unwrap();
        assert!(FileHasher::default().sha256(&f, &stamp, &|_| ()).is_err());
    }

    #[test]
    fn tree_digest_matches_sha256sum_listing() {
        // printf 'x' > b; printf 'y' > a; sha256sum a b | sha256sum
        let a = sha256_hex(b"y");
        let b = sha256_hex(b"x");
        let listing = format!("{a}  a\n{b}  b\n");
        assert_eq!(tree_digest(&[("b".into(), b), ("a".into(), a)]), sha256_hex(listing.as_bytes()));
    }
}
