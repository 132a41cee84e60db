//! The parallel file walk.
//!
//! Two ways through a tree, one set of rules:
//! - **first walk** of a root (or any walk without a state directory): ripgrep's
//!   `ignore::WalkBuilder`, in parallel, recording each directory's listing
//!   ([`crate::listing`]) as it goes;
//! - **rescan** of a root that has a listing record: a parallel traversal driven by the records.
//!   An unchanged directory (same device, inode and mtime) is not read at all: its recorded
//!   subdirectories are visited and its candidate files are `lstat`ed against their records.
//!   A changed or new directory is read (one level) and its record replaced.
//!
//! Rules, in order of precedence:
//! 1. symlinks are never followed (so link loops cannot occur) and the walk never crosses onto
//!    another file system; mounts worth walking are separate roots (see [`crate::roots`]);
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

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::{WalkBuilder, WalkState};

use crate::fileio::FileStamp;
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
        // The version names what a listing records (v2: marker files).
        let mut text = format!("listing-v2\n{}", self.excludes.join("\n"));
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

/// What the walk asks of its user.
pub trait Visitor: Sync {
    /// Per-thread state (buffers).
    type Worker: Default + Send;
    /// A regular file (by its directory entry). `known` is its record from the last listing of
    /// its directory with its stamp now. Returns the file's candidate record, or `None` when the
    /// file is not a candidate.
    fn file(&self, path: &Path, known: Option<Known<'_>>, worker: &mut Self::Worker) -> Option<CandidateRecord>;
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

    fn excluded(&self, path: &Path, is_dir: bool) -> bool {
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
            || (BUILD_OUTPUT_DIRS.contains(&name.as_ref()) && path.join("CACHEDIR.TAG").is_file())
    }
}

fn lstat(path: &Path) -> std::io::Result<(std::fs::Metadata, FileStamp)> {
    let meta = std::fs::symlink_metadata(path)?;
    let stamp = FileStamp::of(&meta);
    Ok((meta, stamp))
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
    let (cached, fresh): (Vec<PathBuf>, Vec<PathBuf>) = match listings {
        Some(l) => opts.roots.iter().cloned().partition(|r| l.get(r).is_some()),
        None => (Vec::new(), opts.roots.clone()),
    };
    if let (Some(l), false) = (listings, cached.is_empty()) {
        rescan(&cached, opts.threads, l, &excludes, visitor);
    }
    if !fresh.is_empty() {
        first_walk(&fresh, opts.threads, listings, excludes, visitor);
    }
    Ok(())
}

/// A directory listing being assembled during a first walk.
#[derive(Debug, Default)]
struct Builder {
    stamp: Option<FileStamp>,
    record: DirRecord,
    complete: bool,
}

fn first_walk<V: Visitor>(
    roots: &[PathBuf],
    threads: usize,
    listings: Option<&ListingCache>,
    excludes: Excludes,
    visitor: &V,
) {
    let Some((first, rest)) = roots.split_first() else { return };
    let mut builder = WalkBuilder::new(first);
    for r in rest {
        builder.add(r);
    }
    let excludes = Arc::new(excludes);
    let filter = Arc::clone(&excludes);
    builder
        .standard_filters(false)
        .follow_links(false)
        .same_file_system(true)
        .threads(threads.max(1))
        .filter_entry(move |e| e.depth() == 0 || !filter.excluded(e.path(), e.file_type().is_some_and(|t| t.is_dir())));
    // Each thread assembles the listings of the entries it is handed; the maps are merged at
    // the end (the entries of one directory may be spread over threads).
    let shared: Mutex<Vec<HashMap<OsString, Builder>>> = Mutex::new(Vec::new());
    let keep = listings.is_some();
    builder.build_parallel().run(|| {
        let mut worker = V::Worker::default();
        let mut local = ThreadListings { current: None, records: HashMap::new(), shared: &shared, keep };
        Box::new(move |result| {
            match result {
                Ok(entry) => {
                    let path = entry.path();
                    let parent = path.parent().filter(|_| entry.depth() > 0);
                    match entry.file_type() {
                        Some(t) if t.is_file() => {
                            let found = visitor.file(path, None, &mut worker);
                            if let Some(b) = parent.and_then(|p| local.builder(p)) {
                                match found {
                                    Some(c) => b.record.candidates.push(c),
                                    None => b.record.other_files += 1,
                                }
                            }
                        }
                        Some(t) if t.is_dir() => {
                            visitor.dir(path);
                            // The stamp is taken before the walker reads the directory.
                            match lstat(path) {
                                Ok((_, stamp)) => {
                                    if let Some(b) = local.builder(path) {
                                        b.stamp = Some(stamp);
                                        b.record.listed_at_ns = now_ns();
                                    }
                                }
                                Err(e) => visitor.error(Some(path), io_message(&e)),
                            }
                            if let Some(b) = parent.and_then(|p| local.builder(p)) {
                                b.record.subdirs.push(
                                    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                                );
                            }
                        }
                        // Symlinks, FIFOs, sockets and devices are never opened.
                        _ => {}
                    }
                }
                Err(e) => {
                    let path = error_path(&e);
                    if let Some(b) = path.as_deref().and_then(|p| local.builder(p)) {
                        b.complete = false;
                    }
                    visitor.error(path.as_deref(), error_message(&e));
                }
            }
            WalkState::Continue
        })
    });
    let Some(l) = listings else { return };
    let mut merged: HashMap<OsString, Builder> = HashMap::new();
    for map in shared.into_inner().unwrap_or_else(|p| p.into_inner()) {
        for (dir, b) in map {
            match merged.get_mut(&dir) {
                Some(m) => m.merge(b),
                None => {
                    merged.insert(dir, b);
                }
            }
        }
    }
    for (dir, b) in merged {
        if let (Some(stamp), true) = (b.stamp, b.complete) {
            let record = DirRecord { dev: stamp.dev, ino: stamp.ino, mtime_ns: stamp.mtime_ns, ..b.record };
            l.put(Path::new(&dir), &record);
        }
    }
}

/// One walker thread's listings; handed to the shared list when the thread's visitor is dropped.
/// Entries of one directory mostly arrive together, so the directory being filled is kept
/// apart and compared by bytes; the map (keyed by raw path bytes) is touched on a switch only.
struct ThreadListings<'a> {
    /// The directory being filled.
    current: Option<(OsString, Builder)>,
    /// Listings by directory.
    records: HashMap<OsString, Builder>,
    /// Where finished maps go.
    shared: &'a Mutex<Vec<HashMap<OsString, Builder>>>,
    /// Whether listings are kept at all.
    keep: bool,
}

impl ThreadListings<'_> {
    fn park(&mut self) {
        if let Some((dir, b)) = self.current.take() {
            match self.records.get_mut(&dir) {
                Some(m) => m.merge(b),
                None => {
                    self.records.insert(dir, b);
                }
            }
        }
    }

    fn builder(&mut self, dir: &Path) -> Option<&mut Builder> {
        if !self.keep {
            return None;
        }
        let key = dir.as_os_str();
        if self.current.as_ref().is_none_or(|(k, _)| k.as_bytes() != key.as_bytes()) {
            self.park();
            let b = self.records.remove(key).unwrap_or(Builder { complete: true, ..Builder::default() });
            self.current = Some((key.to_os_string(), b));
        }
        self.current.as_mut().map(|(_, b)| b)
    }
}

impl Drop for ThreadListings<'_> {
    fn drop(&mut self) {
        self.park();
        let records = std::mem::take(&mut self.records);
        self.shared.lock().unwrap_or_else(|p| p.into_inner()).push(records);
    }
}

impl Builder {
    fn merge(&mut self, other: Builder) {
        self.stamp = self.stamp.or(other.stamp);
        self.complete &= other.complete;
        self.record.listed_at_ns = self.record.listed_at_ns.max(other.record.listed_at_ns);
        self.record.other_files += other.record.other_files;
        self.record.subdirs.extend(other.record.subdirs);
        self.record.candidates.extend(other.record.candidates);
    }
}

/// The shared queue of the rescan traversal.
struct Queue {
    /// Directories to visit (path, device of its root) and how many are being visited.
    state: Mutex<(Vec<(PathBuf, u64)>, usize)>,
    /// Signals new work or the end.
    ready: Condvar,
}

impl Queue {
    fn next(&self) -> Option<(PathBuf, u64)> {
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

    fn done(&self, children: Vec<(PathBuf, u64)>) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.1 -= 1;
        s.0.extend(children);
        self.ready.notify_all();
    }
}

fn rescan<V: Visitor>(roots: &[PathBuf], threads: usize, listings: &ListingCache, excludes: &Excludes, visitor: &V) {
    let mut start = Vec::new();
    for r in roots {
        match lstat(r) {
            Ok((_, stamp)) => start.push((r.clone(), stamp.dev)),
            Err(e) => visitor.error(Some(r), io_message(&e)),
        }
    }
    let queue = Queue { state: Mutex::new((start, 0)), ready: Condvar::new() };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                let mut worker = V::Worker::default();
                while let Some((dir, dev)) = queue.next() {
                    let children = visit_dir(&dir, dev, listings, excludes, visitor, &mut worker);
                    queue.done(children);
                }
            });
        }
    });
}

/// Visits one directory during a rescan and returns its subdirectories to visit.
fn visit_dir<V: Visitor>(
    dir: &Path,
    root_dev: u64,
    listings: &ListingCache,
    excludes: &Excludes,
    visitor: &V,
    worker: &mut V::Worker,
) -> Vec<(PathBuf, u64)> {
    let (meta, stamp) = match lstat(dir) {
        Ok(m) => m,
        Err(e) => {
            visitor.error(Some(dir), io_message(&e));
            listings.remove(dir);
            return Vec::new();
        }
    };
    if !meta.is_dir() || stamp.dev != root_dev {
        if meta.is_file() {
            // A root that is a single file.
            visitor.file(dir, None, worker);
        }
        return Vec::new();
    }
    visitor.dir(dir);
    let old = listings.get(dir);
    let record = match old {
        Some(r) if r.trusted_for(&stamp) => {
            visitor.known_other_files(r.other_files);
            // Candidates whose record changes (index, new record or `None` when gone).
            let mut updates: Vec<(usize, Option<CandidateRecord>)> = Vec::new();
            let fd = crate::fileio::open_dir(dir);
            let mut unchanged = 0u64;
            for (i, c) in r.candidates.iter().enumerate() {
                let now = match &fd {
                    Ok(fd) => crate::fileio::stat_in(fd, &c.name),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                };
                // The common case, decided here without a call: a non-model that has not changed.
                if let (Verdict::NotModel, Ok(Some(stamp))) = (c.verdict, &now) {
                    if c.matches(stamp) {
                        unchanged += 1;
                        continue;
                    }
                }
                let new = visitor.file(&dir.join(&c.name), Some(Known { record: c, now }), worker);
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
        old => {
            let listed = relist(dir, &stamp, old.as_ref(), excludes, visitor, worker);
            // Subdirectories that are gone take their records with them.
            for gone in old.iter().flat_map(|o| o.subdirs.iter()).filter(|s| !listed.subdirs.contains(s)) {
                listings.remove_tree(&dir.join(gone));
            }
            listings.put(dir, &listed);
            listed
        }
    };
    record.subdirs.iter().map(|s| (dir.join(s), root_dev)).collect()
}

/// Reads `dir` (one level) and builds its new record, reusing candidate verdicts by name.
fn relist<V: Visitor>(
    dir: &Path,
    stamp: &FileStamp,
    old: Option<&DirRecord>,
    excludes: &Excludes,
    visitor: &V,
    worker: &mut V::Worker,
) -> DirRecord {
    let mut record = DirRecord {
        dev: stamp.dev,
        ino: stamp.ino,
        mtime_ns: stamp.mtime_ns,
        listed_at_ns: now_ns(),
        ..DirRecord::default()
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            visitor.error(Some(dir), io_message(&e));
            // Never trusted: the directory is read again next time.
            record.mtime_ns = i128::MIN;
            return record;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                visitor.error(Some(dir), io_message(&e));
                record.mtime_ns = i128::MIN;
                continue;
            }
        };
        let Ok(ft) = entry.file_type() else { continue };
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if ft.is_dir() && !excludes.excluded(&path, true) {
            record.subdirs.push(name);
        } else if ft.is_file() && !excludes.excluded(&path, false) {
            let known = old.and_then(|o| o.candidates.iter().find(|c| c.name == name)).map(|record| Known {
                record,
                now: std::fs::symlink_metadata(&path).map(|m| m.file_type().is_file().then(|| FileStamp::of(&m))),
            });
            match visitor.file(&path, known, worker) {
                Some(c) => record.candidates.push(c),
                None => record.other_files += 1,
            }
        }
    }
    record
}

fn error_path(e: &ignore::Error) -> Option<PathBuf> {
    match e {
        ignore::Error::WithPath { path, .. } => Some(path.clone()),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => error_path(err),
        ignore::Error::Loop { child, .. } => Some(child.clone()),
        _ => None,
    }
}

fn error_message(e: &ignore::Error) -> String {
    match e {
        ignore::Error::WithPath { err, .. }
        | ignore::Error::WithDepth { err, .. }
        | ignore::Error::WithLineNumber { err, .. } => error_message(err),
        ignore::Error::Io(io) => io.to_string().to_lowercase(),
        other => other.to_string().to_lowercase(),
    }
}
