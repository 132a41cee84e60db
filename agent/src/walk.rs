//! The parallel file walk.
//!
//! One parallel traversal (a shared stack of directories, `threads` workers) serves both ways
//! through a tree:
//! - a directory without a listing record ([`crate::listing`]), or whose record no longer
//!   matches it, is read (one level, `getdents` on its descriptor) and its record written when
//!   a state directory is in use;
//! - an unchanged directory (same device, inode and mtime as recorded) is not read at all: its
//!   recorded subdirectories are visited and its candidate files are `stat`ed against their
//!   records.
//!
//! **Handles, not paths.** The agent runs as root in trees that users own, so a path it built
//! must never be resolved again: a user could swap a directory for a symlink between two steps
//! and point the agent anywhere. Every directory is opened *relative to its parent's
//! descriptor*, one component at a time ([`crate::fileio::open_beneath`]: `openat2` with
//! `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV`, or `O_NOFOLLOW` and a device check
//! where the kernel lacks it), after an `fstatat(AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT)` that
//! must show a directory on the root's device (so an automount point is never triggered), and
//! the opened descriptor must have that `stat`'s device and inode. Files are handed to the
//! visitor as an [`Entry`]: the open directory and a name, opened with
//! [`Entry::open`] the same way. Paths are only reported. Only a root is opened by its path
//! (the operator's own; its last component must not be a symlink). A queued directory holds its
//! parent's handle while fewer than `MAX_OPEN_DIRS` (128) are open; beyond, it is reached again
//! from its root's handle with the same resolution rules, so no tree shape can exhaust the
//! agent's descriptors.
//!
//! Rules, in order of precedence:
//! 1. symlinks are never followed (so link loops cannot occur) and the walk never crosses onto
//!    another file system; mounts worth walking are separate roots (see [`crate::roots`]);
//!    FIFOs, sockets and devices are never opened (entry type, then `O_NONBLOCK` and `fstat`);
//! 2. user excludes (`--exclude`, globs): a pattern without `/` matches a file or directory
//!    name anywhere, a pattern with `/` matches the absolute path;
//! 3. default excludes: [`DEFAULT_EXCLUDED_DIRS`] by name, [`DEFAULT_EXCLUDED_PATHS`] by
//!    prefix, build output (a [`BUILD_OUTPUT_DIRS`] name holding `CACHEDIR.TAG`), and the
//!    agent's own state directory;
//! 4. hidden files and `.gitignore` rules are NOT applied: model caches live in dot
//!    directories and a model is not less present for being git-ignored.
//!
//! An error on one entry (permission denied, vanished) is handed to the visitor and the walk
//! goes on; nothing aborts it.

use std::ffi::OsStr;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use globset::{Glob, GlobSet, GlobSetBuilder};
use rustix::fs::{AtFlags, FileType, RawDir};

use crate::fileio::{DirHandle, FileStamp};
use crate::listing::{now_ns, CandidateRecord, DirRecord, ListingCache, Verdict};
use crate::roots::{BUILD_OUTPUT_DIRS, DEFAULT_EXCLUDED_DIRS, DEFAULT_EXCLUDED_PATHS};

/// How to walk.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    /// Roots to walk (directories or single files).
    pub roots: Vec<PathBuf>,
    /// User exclude globs.
    pub excludes: Vec<String>,
    /// Paths never walked (the agent's state directory).
    pub skip_paths: Vec<PathBuf>,
    /// Worker threads.
    pub threads: usize,
}

impl WalkOptions {
    /// A fingerprint of the options that decide what a listing holds (excludes, skipped paths).
    pub fn fingerprint(&self) -> String {
        // The version names what a listing records (v2: marker files; v3: python project
        // manifests are markers; v4: Hugging Face config files are markers).
        let mut text = format!("listing-v4\n{}", self.excludes.join("\n"));
        for p in &self.skip_paths {
            text.push('\n');
            text.push_str(&p.display().to_string());
        }
        crate::hash::sha256_hex(text.as_bytes()).chars().take(16).collect()
    }
}

/// Errors building the walk.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// An exclude glob does not parse.
    #[error("invalid exclude pattern {pattern:?}: {source}")]
    Pattern { pattern: String, source: globset::Error },
    /// No root given.
    #[error("no root to walk")]
    NoRoots,
}

/// A candidate file known from the last listing of its directory.
#[derive(Debug)]
pub struct Known<'a> {
    /// What it was then.
    pub record: &'a CandidateRecord,
    /// Its stamp now, taken by the walk (`Ok(None)`: no longer a regular file).
    pub now: std::io::Result<Option<FileStamp>>,
}

/// A regular file the walk met: the open directory that holds it and its name there, with its
/// path for reports. Open it with [`Entry::open`], never by its path.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    path: &'a Path,
    dir: &'a Arc<DirHandle>,
    name: &'a OsStr,
}

impl<'a> Entry<'a> {
    /// The entry `name` of the directory open as `dir`, reported as `path`.
    pub fn new(path: &'a Path, dir: &'a Arc<DirHandle>, name: &'a OsStr) -> Self {
        Self { path, dir, name }
    }

    /// Where the file is (for reports and for decisions by name).
    pub fn path(&self) -> &'a Path {
        self.path
    }

    /// The directory holding it.
    pub fn dir(&self) -> &'a Arc<DirHandle> {
        self.dir
    }

    /// Opens it for reading if it is (still) a regular file, relative to its directory's
    /// descriptor ([`crate::fileio::open_regular_in`]).
    pub fn open(&self) -> std::io::Result<(std::fs::File, FileStamp)> {
        self.dir.open_regular(Path::new(self.name))
    }
}

/// What the walk asks of its user.
pub trait Visitor: Sync {
    /// Per-thread state (buffers).
    type Worker: Default + Send;
    /// A regular file (by its directory entry). `known` is its record from the last listing of
    /// its directory with its stamp now. Returns the file's candidate record, or `None` when the
    /// file is not a candidate.
    fn file(&self, entry: Entry<'_>, known: Option<Known<'_>>, worker: &mut Self::Worker) -> Option<CandidateRecord>;
    /// `n` regular files, known from a listing record not to be candidates.
    fn known_other_files(&self, n: u64);
    /// `n` candidate files, known from a listing record not to be models, that have not changed.
    fn unchanged_candidates(&self, n: u64);
    /// A directory entered.
    fn dir(&self, path: &Path);
    /// An entry that could not be read.
    fn error(&self, path: Option<&Path>, message: String);
}

/// Compiled exclusion rules.
#[derive(Debug)]
struct Excludes {
    names: GlobSet,
    paths: GlobSet,
    skip_paths: Vec<PathBuf>,
}

/// How the walk reads one `--exclude` pattern: a trailing `/` is ignored; a pattern with `/`
/// matches absolute paths (`true`), one without matches names anywhere (`false`).
pub fn parse_exclude(pattern: &str) -> Result<(Glob, bool), WalkError> {
    let trimmed = pattern.trim_end_matches('/');
    let glob = Glob::new(trimmed).map_err(|source| WalkError::Pattern { pattern: pattern.to_string(), source })?;
    Ok((glob, trimmed.contains('/')))
}

impl Excludes {
    fn new(opts: &WalkOptions) -> Result<Self, WalkError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for pattern in &opts.excludes {
            match parse_exclude(pattern)? {
                (glob, true) => paths.add(glob),
                (glob, false) => names.add(glob),
            };
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|source| WalkError::Pattern { pattern: opts.excludes.join(","), source })
        };
        Ok(Self { names: build(names)?, paths: build(paths)?, skip_paths: opts.skip_paths.clone() })
    }

    /// Whether `path` is excluded; `tagged` says whether a directory holds `CACHEDIR.TAG` (asked
    /// only for a build output directory's name).
    fn excluded(&self, path: &Path, is_dir: bool, tagged: impl FnOnce() -> bool) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if (!self.names.is_empty() && self.names.is_match(name.as_ref()))
            || (!self.paths.is_empty() && self.paths.is_match(path))
        {
            return true;
        }
        if !is_dir {
            return false;
        }
        DEFAULT_EXCLUDED_DIRS.contains(&name.as_ref())
            || DEFAULT_EXCLUDED_PATHS.iter().any(|p| path == Path::new(p))
            || self.skip_paths.iter().any(|p| path == p)
            || (BUILD_OUTPUT_DIRS.contains(&name.as_ref()) && tagged())
    }
}

fn io_message(e: &std::io::Error) -> String {
    e.to_string().to_lowercase()
}

/// Walks every root in parallel, using and refreshing `listings` when given.
pub fn walk<V: Visitor>(opts: &WalkOptions, listings: Option<&ListingCache>, visitor: &V) -> Result<(), WalkError> {
    if opts.roots.is_empty() {
        return Err(WalkError::NoRoots);
    }
    let excludes = Excludes::new(opts)?;
    let mut start = Vec::new();
    let mut worker = V::Worker::default();
    for root in &opts.roots {
        match open_root(root) {
            Ok(Root::Dir(handle, stamp)) => {
                start.push(Job { path: root.clone(), dev: stamp.dev, root: handle, at: At::Root(stamp) });
            }
            Ok(Root::File(dir, name)) => {
                visitor.file(Entry::new(root, &dir, &name), None, &mut worker);
            }
            Ok(Root::Other) => {}
            Err(e) => {
                visitor.error(Some(root), io_message(&e));
                if let Some(l) = listings {
                    l.remove(root);
                }
            }
        }
    }
    drop(worker);
    let queue = Queue { state: Mutex::new((start, 0)), ready: Condvar::new() };
    std::thread::scope(|scope| {
        for _ in 0..opts.threads.max(1) {
            scope.spawn(|| {
                let mut worker = V::Worker::default();
                let mut buf = vec![MaybeUninit::<u8>::uninit(); DIRENT_BUFFER];
                while let Some(job) = queue.next() {
                    let children = visit_dir(job, listings, &excludes, visitor, &mut worker, &mut buf);
                    queue.done(children);
                }
            });
        }
    });
    Ok(())
}

/// Bytes of directory entries read per `getdents` call.
const DIRENT_BUFFER: usize = 32 * 1024;

/// What a root turned out to be.
enum Root {
    /// A directory, open, with its stamp.
    Dir(Arc<DirHandle>, FileStamp),
    /// A regular file: its directory (opened by path) and its name there.
    File(Arc<DirHandle>, std::ffi::OsString),
    /// Anything else (a symlink, a FIFO): not walked.
    Other,
}

fn open_root(root: &Path) -> std::io::Result<Root> {
    let meta = std::fs::symlink_metadata(root)?;
    if meta.is_dir() {
        let handle = DirHandle::open_path(root)?;
        let stamp = FileStamp::of_stat(&rustix::fs::fstat(handle.fd())?);
        return Ok(Root::Dir(Arc::new(handle), stamp));
    }
    if meta.is_file() {
        if let (Some(parent), Some(name)) = (root.parent(), root.file_name()) {
            let parent = if parent.as_os_str().is_empty() { Path::new(".") } else { parent };
            let dir = DirHandle::new(crate::fileio::open_dir_following(parent)?, parent.to_path_buf(), None);
            return Ok(Root::File(Arc::new(dir), name.to_os_string()));
        }
    }
    Ok(Root::Other)
}

/// A directory to visit.
struct Job {
    /// Its path (reports, listing records).
    path: PathBuf,
    /// The device of its root: the walk stays on it.
    dev: u64,
    /// Its root, open.
    root: Arc<DirHandle>,
    /// How to reach it.
    at: At,
}

/// How a directory to visit is reached.
enum At {
    /// It is the root, with its stamp.
    Root(FileStamp),
    /// The entry named by the job's path's last component in this open directory.
    Below(Arc<DirHandle>),
    /// The same, its directory opened again from the root first ([`open_beneath`]: no symlink
    /// at any component, no other file system): for jobs queued while [`MAX_OPEN_DIRS`] were
    /// open, so that a deep tree with siblings at every level cannot hold one descriptor per
    /// level and run the agent out of them.
    ///
    /// [`open_beneath`]: crate::fileio::open_beneath
    Beneath,
}

/// Directory handles open at once above which queued directories stop holding their parent's.
const MAX_OPEN_DIRS: usize = 128;

/// Whether a directory at `path` keeps its parent's handle for good: inside a Core ML package,
/// whose model root is up to four levels above the file defining it
/// ([`crate::detectors::models`]'s directory models). Nowhere else, so a deep tree does not
/// keep a chain of descriptors open.
fn in_mlpackage(path: &Path) -> bool {
    path.ancestors().skip(1).take(4).any(|a| a.extension().is_some_and(|e| e.eq_ignore_ascii_case("mlpackage")))
}

/// The shared stack of the traversal.
struct Queue {
    /// Directories to visit and how many are being visited.
    state: Mutex<(Vec<Job>, usize)>,
    /// Signals new work or the end.
    ready: Condvar,
}

impl Queue {
    fn next(&self) -> Option<Job> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(item) = s.0.pop() {
                s.1 += 1;
                return Some(item);
            }
            if s.1 == 0 {
                self.ready.notify_all();
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn done(&self, children: Vec<Job>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 -= 1;
        let woken = children.len();
        s.0.extend(children);
        match (woken, s.1) {
            (0, 0) => self.ready.notify_all(),
            (0, _) => {}
            (1, _) => self.ready.notify_one(),
            _ => self.ready.notify_all(),
        }
    }
}

/// Opens the directory a job names, relative to its parent: `None` (after reporting why, when
/// it is worth reporting) when it is not a directory on the root's device any more.
fn open_job(job: &Job, listings: Option<&ListingCache>, visitor: &impl Visitor) -> Option<(Arc<DirHandle>, FileStamp)> {
    let parent = match &job.at {
        At::Root(stamp) => return Some((Arc::clone(&job.root), *stamp)),
        At::Below(parent) => Arc::clone(parent),
        At::Beneath => {
            let dir = job.path.parent().unwrap_or(Path::new(""));
            let rel = dir.strip_prefix(job.root.path()).unwrap_or(Path::new(""));
            match job.root.open_dir(rel) {
                Ok(fd) => Arc::new(DirHandle::new(fd, dir.to_path_buf(), None)),
                Err(e) => {
                    visitor.error(Some(&job.path), io_message(&e));
                    return None;
                }
            }
        }
    };
    let name = job.path.file_name().unwrap_or_default();
    // The type and device first, without triggering an automount or following a link.
    let before = match rustix::fs::statat(parent.fd(), name, AtFlags::SYMLINK_NOFOLLOW | AtFlags::NO_AUTOMOUNT) {
        Ok(st) => st,
        Err(e) => {
            visitor.error(Some(&job.path), io_message(&e.into()));
            if let Some(l) = listings {
                l.remove(&job.path);
            }
            return None;
        }
    };
    #[allow(clippy::unnecessary_cast)]
    let dev = before.st_dev as u64;
    if FileType::from_raw_mode(before.st_mode) != FileType::Directory || dev != job.dev {
        return None;
    }
    let fd = match parent.open_dir(Path::new(name)) {
        Ok(fd) => fd,
        // A mount point of the same file system (a bind mount): not crossed, as any other.
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return None,
        Err(e) => {
            visitor.error(Some(&job.path), io_message(&e));
            return None;
        }
    };
    let now = match rustix::fs::fstat(&fd) {
        Ok(st) => st,
        Err(e) => {
            visitor.error(Some(&job.path), io_message(&e.into()));
            return None;
        }
    };
    // What was opened must be what was looked at (the check `openat2` makes unnecessary and
    // the component-by-component fallback relies on).
    if now.st_dev != before.st_dev || now.st_ino != before.st_ino {
        visitor.error(Some(&job.path), "directory replaced while being walked; not entered".into());
        return None;
    }
    let handle = DirHandle::new(fd, job.path.clone(), in_mlpackage(&job.path).then_some(parent));
    Some((Arc::new(handle), FileStamp::of_stat(&now)))
}

/// Visits one directory and returns its subdirectories to visit.
fn visit_dir<V: Visitor>(
    job: Job,
    listings: Option<&ListingCache>,
    excludes: &Excludes,
    visitor: &V,
    worker: &mut V::Worker,
    buf: &mut [MaybeUninit<u8>],
) -> Vec<Job> {
    let Some((handle, stamp)) = open_job(&job, listings, visitor) else { return Vec::new() };
    let dir = job.path.as_path();
    visitor.dir(dir);
    let old = listings.and_then(|l| l.get(dir));
    let record = match (old, listings) {
        (Some(r), Some(listings)) if r.trusted_for(&stamp) => {
            visitor.known_other_files(r.other_files);
            // Candidates whose record changes (index, new record or `None` when gone).
            let mut updates: Vec<(usize, Option<CandidateRecord>)> = Vec::new();
            let mut unchanged = 0u64;
            for (i, c) in r.candidates.iter().enumerate() {
                let now = crate::fileio::stat_in(handle.fd(), c.name.as_str());
                // The common case, decided here without a call: a non-model that has not changed.
                if let (Verdict::NotModel, Ok(Some(stamp))) = (c.verdict, &now) {
                    if c.matches(stamp) {
                        unchanged += 1;
                        continue;
                    }
                }
                let path = dir.join(&c.name);
                let entry = Entry::new(&path, &handle, OsStr::new(&c.name));
                let new = visitor.file(entry, Some(Known { record: c, now }), worker);
                if new.as_ref() != Some(c) {
                    updates.push((i, new));
                }
            }
            visitor.unchanged_candidates(unchanged);
            if !updates.is_empty() {
                let mut candidates: Vec<Option<CandidateRecord>> = r.candidates.iter().cloned().map(Some).collect();
                for (i, new) in updates {
                    if let Some(slot) = candidates.get_mut(i) {
                        *slot = new;
                    }
                }
                listings.put(dir, &DirRecord { candidates: candidates.into_iter().flatten().collect(), ..r.clone() });
            }
            r
        }
        (old, listings) => {
            let listed = relist(&handle, &stamp, old.as_ref(), excludes, visitor, worker, buf);
            if let Some(listings) = listings {
                // Subdirectories that are gone take their records with them.
                for gone in old.iter().flat_map(|o| o.subdirs.iter()).filter(|s| !listed.subdirs.contains(s)) {
                    listings.remove_tree(&dir.join(gone));
                }
                listings.put(dir, &listed);
            }
            listed
        }
    };
    let hold = DirHandle::live() <= MAX_OPEN_DIRS;
    record
        .subdirs
        .iter()
        .map(|s| {
            let path = dir.join(s);
            let at = if hold || in_mlpackage(&path) { At::Below(Arc::clone(&handle)) } else { At::Beneath };
            Job { path, dev: job.dev, root: Arc::clone(&job.root), at }
        })
        .collect()
}

/// Reads the directory open as `handle` (one level) and builds its new record, reusing
/// candidate verdicts by name.
fn relist<V: Visitor>(
    handle: &Arc<DirHandle>,
    stamp: &FileStamp,
    old: Option<&DirRecord>,
    excludes: &Excludes,
    visitor: &V,
    worker: &mut V::Worker,
    buf: &mut [MaybeUninit<u8>],
) -> DirRecord {
    let dir = handle.path();
    let mut record = DirRecord {
        dev: stamp.dev,
        ino: stamp.ino,
        mtime_ns: stamp.mtime_ns,
        listed_at_ns: now_ns(),
        ..DirRecord::default()
    };
    let mut entries = RawDir::new(handle.fd(), buf);
    let mut name_buf: Vec<u8> = Vec::with_capacity(256);
    loop {
        let ft = match entries.next() {
            None => break,
            Some(Err(e)) => {
                visitor.error(Some(dir), io_message(&e.into()));
                // Never trusted: the directory is read again next time.
                record.mtime_ns = i128::MIN;
                break;
            }
            Some(Ok(entry)) => {
                let name = entry.file_name().to_bytes();
                if name == b"." || name == b".." {
                    continue;
                }
                name_buf.clear();
                name_buf.extend_from_slice(name);
                entry.file_type()
            }
        };
        let name = OsStr::from_bytes(&name_buf);
        let ft = match ft {
            // File systems that do not fill in `d_type`.
            FileType::Unknown => match rustix::fs::statat(handle.fd(), name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(_) => continue,
            },
            t => t,
        };
        match ft {
            FileType::Directory => {
                let path = dir.join(name);
                let tagged = || {
                    let tag = Path::new(name).join("CACHEDIR.TAG");
                    crate::fileio::stat_in(handle.fd(), tag.as_path()).is_ok_and(|s| s.is_some())
                };
                if !excludes.excluded(&path, true, tagged) {
                    record.subdirs.push(name.to_string_lossy().into_owned());
                }
            }
            FileType::RegularFile => {
                let path = dir.join(name);
                if excludes.excluded(&path, false, || false) {
                    continue;
                }
                let lossy = name.to_string_lossy();
                let known = old
                    .and_then(|o| o.candidates.iter().find(|c| c.name == lossy))
                    .map(|record| Known { record, now: crate::fileio::stat_in(handle.fd(), name) });
                match visitor.file(Entry::new(&path, handle, name), known, worker) {
                    Some(c) => record.candidates.push(c),
                    None => record.other_files += 1,
                }
            }
            // Symlinks, FIFOs, sockets and devices are never opened.
            _ => {}
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Records the files handed over and what opening them read.
    #[derive(Default)]
    struct Recorder {
        files: Mutex<Vec<(PathBuf, Option<String>)>>,
        errors: Mutex<Vec<String>>,
    }

    impl Visitor for Recorder {
        type Worker = ();
        fn file(&self, entry: Entry<'_>, _: Option<Known<'_>>, _: &mut ()) -> Option<CandidateRecord> {
            let content = entry.open().ok().map(|(mut f, _)| {
                let mut s = String::new();
                f.read_to_string(&mut s).unwrap();
                s
            });
            self.files.lock().unwrap().push((entry.path().to_path_buf(), content));
            None
        }
        fn known_other_files(&self, _: u64) {}
        fn unchanged_candidates(&self, _: u64) {}
        fn dir(&self, _: &Path) {}
        fn error(&self, path: Option<&Path>, message: String) {
            self.errors.lock().unwrap().push(format!("{path:?}: {message}"));
        }
    }

    fn opts(root: &Path) -> WalkOptions {
        WalkOptions { roots: vec![root.to_path_buf()], excludes: Vec::new(), skip_paths: Vec::new(), threads: 2 }
    }

    #[test]
    #[allow(clippy::unnecessary_cast)]
    fn a_symlinked_directory_is_not_entered_and_a_swapped_one_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (root, outside) = (dir.path().join("root"), dir.path().join("outside"));
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(root.join("a/f"), "inside").unwrap();
        std::fs::write(outside.join("f"), "outside").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
        let r = Recorder::default();
        walk(&opts(&root), None, &r).unwrap();
        assert_eq!(*r.files.lock().unwrap(), vec![(root.join("a/f"), Some("inside".to_string()))]);
        assert!(r.errors.lock().unwrap().is_empty());

        // A directory listed, then swapped for a link to the outside before it is entered: the
        // job finds a link and enters nothing.
        let root_handle = Arc::new(DirHandle::open_path(&root).unwrap());
        let dev = rustix::fs::fstat(root_handle.fd()).unwrap().st_dev as u64;
        let job =
            Job { path: root.join("a"), dev, root: Arc::clone(&root_handle), at: At::Below(Arc::clone(&root_handle)) };
        let (a, _) = open_job(&job, None, &r).unwrap();
        std::fs::rename(root.join("a"), root.join("a.away")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("a")).unwrap();
        assert!(open_job(&job, None, &r).is_none());
        // A directory already open, swapped while it is walked: its files are still its own.
        let (path, name) = (root.join("a/f"), OsStr::new("f"));
        let (mut f, _) = Entry::new(&path, &a, name).open().unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        assert_eq!(text, "inside");
        // And a walk now sees the link and leaves it.
        let r = Recorder::default();
        walk(&opts(&root), None, &r).unwrap();
        assert_eq!(*r.files.lock().unwrap(), vec![(root.join("a.away/f"), Some("inside".to_string()))]);
    }

    /// A tmpfs mounted for the test, unmounted whatever happens.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    #[test]
    fn another_file_system_is_not_entered() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("mnt")).unwrap();
        std::fs::write(root.join("here"), "here").unwrap();
        let status =
            std::process::Command::new("mount").args(["-t", "tmpfs", "aiscout-test"]).arg(root.join("mnt")).status();
        assert!(status.is_ok_and(|s| s.success()), "mounting a tmpfs needs root (the tests run as root)");
        let _mounted = Mounted(root.join("mnt"));
        std::fs::write(root.join("mnt/there"), "there").unwrap();
        let r = Recorder::default();
        walk(&opts(&root), None, &r).unwrap();
        assert_eq!(*r.files.lock().unwrap(), vec![(root.join("here"), Some("here".to_string()))]);
        assert!(r.errors.lock().unwrap().is_empty(), "{:?}", r.errors.lock().unwrap());
    }
}
