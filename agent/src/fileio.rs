//! Opening files safely for scanning.
//!
//! 1. The directory entry's type is checked before anything is opened: FIFOs, sockets, devices
//!    and symlinks are never opened (the walker does not follow links).
//! 2. A file is opened with `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`, so a path swapped for a link or
//!    a FIFO between the check and the open can neither redirect nor block the scan; the opened
//!    descriptor is checked again with `fstat` and anything but a regular file is refused.
//! 3. What the walk found is opened relative to a directory descriptor ([`open_beneath`],
//!    [`DirHandle`]): `openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV`,
//!    or one `O_NOFOLLOW` open per component with a device check where the kernel has no
//!    `openat2`; so no symlink is followed at any component, not only the last.
//! 4. A [`FileStamp`] (device, inode, size, mtime in ns) identifies the content for the cache and
//!    is compared before and after reading to catch a file that changes mid-read.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};

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
    let (file, stamp) = open_regular(path)?;
    read_open(file, &stamp, limit, oversize)
}

/// [`read_bounded_if_present`] of a file the walk found: no symlink at any component
/// ([`open_no_links`]), so a directory on its path swapped for a link since the walk saw it
/// leads nowhere.
pub fn read_found_if_present(path: &Path, limit: u64, oversize: Oversize) -> io::Result<Option<Vec<u8>>> {
    let opened = open_no_links(path, READ_FLAGS).map(File::from).and_then(|file| {
        let meta = file.metadata()?;
        if !meta.file_type().is_file() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
        }
        Ok((file, FileStamp::of(&meta)))
    });
    match opened {
        Ok((file, stamp)) => read_open(file, &stamp, limit, oversize).map(Some),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The bounded read of [`read_bounded`] on a file already open (`stamp` is its `fstat`).
pub fn read_open(file: File, stamp: &FileStamp, limit: u64, oversize: Oversize) -> io::Result<Vec<u8>> {
    use std::io::Read;
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
pub fn stat_in<P: rustix::path::Arg>(dir: BorrowedFd<'_>, name: P) -> io::Result<Option<FileStamp>> {
    let st = rustix::fs::statat(dir, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW)?;
    let regular = rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::RegularFile;
    Ok(regular.then(|| FileStamp::of_stat(&st)))
}

/// Opens a directory for [`stat_in`] (never through a symlink).
pub fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())?)
}

/// How [`open_beneath`] resolves: `openat2` when the kernel has it, else component by component.
static OPENAT2: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(OPENAT2_UNKNOWN);
const OPENAT2_UNKNOWN: u8 = 0;
const OPENAT2_YES: u8 = 1;
const OPENAT2_NO: u8 = 2;

/// Opens `rel` below the directory open as `dir`, following no symlink at any component and
/// never leaving `dir`'s file system or going above it.
///
/// Where the kernel has `openat2` (Linux 5.6), it resolves with `RESOLVE_NO_SYMLINKS |
/// RESOLVE_BENEATH | RESOLVE_NO_XDEV` (a mount point, an automounted directory included, is
/// `EXDEV`). Elsewhere (`ENOSYS`, or `EPERM` from a seccomp filter that predates it) each
/// component is opened with `O_NOFOLLOW` relative to the one before, `..` is refused, and every
/// descriptor is `fstat`ed: one on another device than `dir` is `EXDEV`. `rel` is relative; an
/// empty `rel` or `.` reopens `dir` itself.
pub fn open_beneath(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH | ResolveFlags::NO_XDEV;
    match try_openat2(dir, rel, flags, resolve) {
        Some(result) => result,
        None => open_beneath_by_components(dir, rel, flags),
    }
}

/// Opens the absolute `path` following no symlink at any component, across file systems: a
/// file the walk found (it never follows a link, below roots that are canonical) is reached
/// again this way, so a directory swapped for a link since cannot lead elsewhere.
pub fn open_no_links(path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let rel =
        path.strip_prefix("/").map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "not an absolute path"))?;
    let root = rustix::fs::open("/", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let rel = if rel.as_os_str().is_empty() { Path::new(".") } else { rel };
    match try_openat2(root.as_fd(), rel, flags, ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH) {
        Some(result) => result,
        None => by_components(root.as_fd(), rel, flags, false),
    }
}

/// `openat2` with `resolve`, or `None` when this kernel (or a seccomp filter) has no `openat2`,
/// learnt once per process.
fn try_openat2(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags, resolve: ResolveFlags) -> Option<io::Result<OwnedFd>> {
    use std::sync::atomic::Ordering;
    if OPENAT2.load(Ordering::Relaxed) == OPENAT2_NO {
        return None;
    }
    match rustix::fs::openat2(dir, rel, flags | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty(), resolve) {
        Ok(fd) => {
            OPENAT2.store(OPENAT2_YES, Ordering::Relaxed);
            Some(Ok(fd))
        }
        Err(rustix::io::Errno::NOSYS) | Err(rustix::io::Errno::PERM)
            if OPENAT2.load(Ordering::Relaxed) == OPENAT2_UNKNOWN =>
        {
            OPENAT2.store(OPENAT2_NO, Ordering::Relaxed);
            None
        }
        Err(e) => Some(Err(e.into())),
    }
}

/// [`open_beneath`] without `openat2`: one `O_NOFOLLOW` open per component, each checked to be
/// on `dir`'s device.
pub(crate) fn open_beneath_by_components(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    by_components(dir, rel, flags, true)
}

/// One `O_NOFOLLOW` open per component of `rel` below `dir`; with `same_device`, each on
/// `dir`'s device.
fn by_components(dir: BorrowedFd<'_>, rel: &Path, flags: OFlags, same_device: bool) -> io::Result<OwnedFd> {
    use std::path::Component;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let dev = rustix::fs::fstat(dir)?.st_dev;
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::new(io::ErrorKind::InvalidInput, "path leaves its directory")),
        })
        .collect::<io::Result<_>>()?;
    let same_device = |fd: OwnedFd| -> io::Result<OwnedFd> {
        if same_device && rustix::fs::fstat(&fd)?.st_dev != dev {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        Ok(fd)
    };
    let Some((last, dirs)) = parts.split_last() else {
        return same_device(rustix::fs::openat(dir, ".", flags, Mode::empty())?);
    };
    let mut current: Option<OwnedFd> = None;
    for part in dirs {
        let at = current.as_ref().map_or(dir, |f| f.as_fd());
        let next = rustix::fs::openat(
            at,
            *part,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        current = Some(same_device(next)?);
    }
    let at = current.as_ref().map_or(dir, |f| f.as_fd());
    same_device(rustix::fs::openat(at, *last, flags, Mode::empty())?)
}

/// Flags a file found by the walk is opened with: a FIFO cannot block the open, a terminal
/// cannot become the controlling one.
const READ_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::NONBLOCK).union(OFlags::NOCTTY);

/// [`open_regular`] for `rel` below the directory open as `dir` ([`open_beneath`]): no symlink
/// at any component, nothing but a regular file on `dir`'s file system.
pub fn open_regular_in(dir: BorrowedFd<'_>, rel: &Path) -> io::Result<(File, FileStamp)> {
    let file = File::from(open_beneath(dir, rel, READ_FLAGS)?);
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"));
    }
    Ok((file, FileStamp::of(&meta)))
}

/// Directory handles open now ([`DirHandle::live`]).
static LIVE_HANDLES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for DirHandle {
    fn drop(&mut self) {
        LIVE_HANDLES.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A directory open for the walk, with its path (for reports) and the directory it was opened
/// from (so a directory model can reach its root above the file that defines it).
#[derive(Debug)]
pub struct DirHandle {
    fd: OwnedFd,
    path: std::path::PathBuf,
    parent: Option<std::sync::Arc<DirHandle>>,
}

impl DirHandle {
    /// Opens the directory at `path` by path: a walk root (the operator's own path; only its
    /// last component must not be a symlink).
    pub fn open_path(path: &Path) -> io::Result<Self> {
        Ok(Self::new(open_dir(path)?, path.to_path_buf(), None))
    }

    /// A handle for `fd`, the directory at `path` opened below `parent`.
    pub fn new(fd: OwnedFd, path: std::path::PathBuf, parent: Option<std::sync::Arc<DirHandle>>) -> Self {
        LIVE_HANDLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self { fd, path, parent }
    }

    /// How many handles are open in the process now (the walk keeps fewer when many are).
    pub fn live() -> usize {
        LIVE_HANDLES.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory it was opened from, if any.
    pub fn parent(&self) -> Option<&std::sync::Arc<DirHandle>> {
        self.parent.as_ref()
    }

    /// Opens `rel` below this directory as a regular file ([`open_regular_in`]).
    pub fn open_regular(&self, rel: &Path) -> io::Result<(File, FileStamp)> {
        open_regular_in(self.fd(), rel)
    }

    /// Opens the directory `rel` below this one ([`open_beneath`]); `.` opens a new descriptor
    /// of this directory (with its own read position).
    pub fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        open_beneath(self.fd(), rel, OFlags::RDONLY | OFlags::DIRECTORY)
    }
}

/// Opens the directory at `path`, symlinks followed: the directory of a walk root that is a
/// single file (the operator's own path).
pub fn open_dir_following(path: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
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
        rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, Mode::from_raw_mode(0o600)).unwrap();
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn stat_in_a_directory_matches_lstat() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"abc").unwrap();
        std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let via_fd = stat_in(fd.as_fd(), "f").unwrap().unwrap();
        let via_path = FileStamp::of(&std::fs::symlink_metadata(dir.path().join("f")).unwrap());
        assert_eq!(via_fd, via_path);
        assert_eq!(stat_in(fd.as_fd(), "l").unwrap(), None);
        assert!(stat_in(fd.as_fd(), "missing").is_err());
    }

    #[test]
    fn symlink_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("real"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("link")).unwrap();
        assert!(open_regular(&dir.path().join("link")).is_err());
    }

    #[test]
    fn open_beneath_refuses_a_symlink_at_any_component() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/f"), b"inside").unwrap();
        std::os::unix::fs::symlink("a", root.join("l")).unwrap();
        std::os::unix::fs::symlink("f", root.join("a/b/lf")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("a/etc")).unwrap();
        let fd = open_dir(root).unwrap();
        let flags = OFlags::RDONLY;
        for open in [open_beneath, open_beneath_by_components] {
            assert!(open(fd.as_fd(), Path::new("a/b/f"), flags).is_ok());
            assert!(open(fd.as_fd(), Path::new("./a/./b/f"), flags).is_ok());
            assert!(open(fd.as_fd(), Path::new("."), flags | OFlags::DIRECTORY).is_ok());
            for bad in ["l/b/f", "a/b/lf", "a/etc/passwd", "a/etc", "../etc/passwd", "/etc/passwd"] {
                assert!(open(fd.as_fd(), Path::new(bad), flags).is_err(), "{bad} was opened");
            }
        }
        let (mut file, stamp) = open_regular_in(fd.as_fd(), Path::new("a/b/f")).unwrap();
        let mut text = String::new();
        io::Read::read_to_string(&mut file, &mut text).unwrap();
        assert_eq!((text.as_str(), stamp.size), ("inside", 6));
    }

    #[test]
    fn a_found_file_is_read_again_through_no_link_at_any_component() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/b/.env"), b"K=1\n").unwrap();
        std::os::unix::fs::symlink("a", root.join("l")).unwrap();
        std::os::unix::fs::symlink(".env", root.join("a/b/link")).unwrap();
        let read = |rel: &str| read_found_if_present(&root.join(rel), 64, Oversize::Refuse);
        assert_eq!(read("a/b/.env").unwrap().unwrap(), b"K=1\n");
        assert_eq!(read("a/b/missing").unwrap(), None);
        assert!(read("l/b/.env").is_err(), "a link in the middle of the path was followed");
        assert!(read("a/b/link").is_err(), "a final link was followed");
        // The path-based read follows the link in the middle: what the walk's files must not do.
        assert!(read_bounded_if_present(&root.join("l/b/.env"), 64, Oversize::Refuse).unwrap().is_some());
        assert!(read_found_if_present(Path::new("relative/.env"), 64, Oversize::Refuse).is_err());
    }

    #[test]
    fn a_fifo_below_a_directory_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        rustix::fs::mkfifoat(rustix::fs::CWD, dir.path().join("m.gguf"), Mode::from_raw_mode(0o600)).unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let err = open_regular_in(fd.as_fd(), Path::new("m.gguf")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
