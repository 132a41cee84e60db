//! Opening files safely for scanning.
//!
//! 1. The directory entry's type is checked before anything is opened: FIFOs, sockets, devices
//!    and symlinks are never opened (the walker does not follow links).
//! 2. A file is opened with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, so a path swapped for a link or
//!    a FIFO between the check and the open can neither redirect nor block the scan; the opened
//!    descriptor is checked again with `fstat` and anything but a regular file is refused.
//! 3. A [`FileStamp`] (device, inode, size, mtime in ns) identifies the content for the cache and
//!    is compared before and after reading to catch a file that changes mid-read.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// What identifies a file's content without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileStamp {
    /// Device id.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time in nanoseconds since the epoch.
    pub mtime_ns: i128,
}

impl FileStamp {
    /// The stamp of `meta`.
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }

    /// The stamp of a raw `stat` result. (The field types of `stat` differ between targets,
    /// hence the casts.)
    #[allow(clippy::unnecessary_cast)]
    pub fn of_stat(st: &rustix::fs::Stat) -> Self {
        Self {
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime_ns: i128::from(st.st_mtime as i64) * 1_000_000_000 + i128::from(st.st_mtime_nsec as i64),
        }
    }

    /// Fixed-width big-endian key (40 bytes) for the cache.
    pub fn key(&self) -> [u8; 40] {
        let mut k = [0u8; 40];
        let parts = [
            &self.dev.to_be_bytes()[..],
            &self.ino.to_be_bytes()[..],
            &self.size.to_be_bytes()[..],
            &self.mtime_ns.to_be_bytes()[..],
        ];
        let mut at = 0;
        for p in parts {
            if let Some(dst) = k.get_mut(at..at + p.len()) {
                dst.copy_from_slice(p);
            }
            at += p.len();
        }
        k
    }
}

/// Opens `path` for reading if and only if it is a regular file; returns it with its stamp.
pub fn open_regular(path: &Path) -> io::Result<(File, FileStamp)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok((file, FileStamp::of(&meta)))
}

/// What [`read_bounded`] does with a file larger than its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// Refuse it: a truncated JSON or TOML document is not a document.
    Refuse,
    /// Keep the first `limit` bytes (a header is all the caller reads).
    Prefix,
    /// Keep the first bytes up to the limit, cut back to the last `separator` (a line, an
    /// environment entry), so no partial record is ever parsed.
    Truncate {
        /// The byte that ends a record.
        separator: u8,
    },
}

/// Reads a regular file (never a FIFO, socket, device or symlink: [`open_regular`]) of which at
/// most `limit` bytes are kept, larger files handled as `oversize` says. Files of `/proc`
/// report size 0: the read itself is bounded, not the size.
pub fn read_bounded(path: &Path, limit: u64, oversize: Oversize) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let (file, stamp) = open_regular(path)?;
    if oversize == Oversize::Refuse && stamp.size > limit {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {limit} bytes")));
    }
    let mut buf = Vec::with_capacity(usize::try_from(stamp.size.min(limit)).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        let keep = usize::try_from(limit).unwrap_or(usize::MAX);
        match oversize {
            Oversize::Refuse => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("larger than {limit} bytes")));
            }
            Oversize::Prefix => buf.truncate(keep),
            Oversize::Truncate { separator } => {
                let end = buf.get(..keep).unwrap_or_default().iter().rposition(|b| *b == separator).unwrap_or(0);
                buf.truncate(end);
            }
        }
    }
    Ok(buf)
}

/// Whether `e` only says that nothing is at the path: `NotFound`, or `NotADirectory` (a
/// component of the path is not a directory).
pub fn is_absent(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

/// [`read_bounded`] for a file that may not exist: `Ok(None)` when nothing is at `path`
/// ([`is_absent`]). Every other failure, a FIFO or a symlink included, is an error.
pub fn read_bounded_if_present(path: &Path, limit: u64, oversize: Oversize) -> io::Result<Option<Vec<u8>>> {
    match read_bounded(path, limit, oversize) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `lstat`s `name` inside the directory open as `dir` (one path component to resolve, where a
/// full path would walk every component again). `Ok(None)` when it is not a regular file.
pub fn stat_in(dir: &std::os::fd::OwnedFd, name: &str) -> io::Result<Option<FileStamp>> {
    let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    let regular = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    Ok(regular.then(|| FileStamp::of_stat(&st)))
}

/// Opens a directory for [`stat_in`] (never through a symlink).
pub fn open_dir(path: &Path) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::fs::{Mode, OFlags};
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
}

/// Fails if `file` no longer matches `before` (size or mtime changed while it was read).
pub fn check_unchanged(file: &File, before: &FileStamp) -> io::Result<()> {
    let now = FileStamp::of(&file.metadata()?);
    if now.size != before.size || now.mtime_ns != before.mtime_ns {
        return Err(io::Error::other(format!(
            "file changed while being read (size {} -> {}, mtime changed: {})",
            before.size,
            now.size,
            now.mtime_ns != before.mtime_ns
        )));
    }
    Ok(())
}

/// Reads up to `buf.len()` bytes from the start of `file`.
pub fn read_head(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut filled = 0;
    while filled < buf.len() {
        let dst = buf.get_mut(filled..).unwrap_or_default();
        match file.read_at(dst, filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("model.gguf");
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn stat_in_a_directory_matches_lstat() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"abc").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let via_fd = stat_in(&fd, "f").unwrap().unwrap();
        let via_path = FileStamp::of(&std::fs::symlink_metadata(dir.path().join("f")).unwrap());
        assert_eq!(via_fd, via_path);
        assert_eq!(stat_in(&fd, "l").unwrap(), None);
        assert!(stat_in(&fd, "missing").is_err());
    }

    #[test]
    fn symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert!(open_regular(&dir.path().join("link")).is_err());
    }
}
