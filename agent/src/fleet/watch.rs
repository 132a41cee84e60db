//! Watching the directories where models are, so that a new model reaches the collector within
//! seconds instead of at the next full inventory.
//!
//! # What is watched
//! Not whole homes: inotify watches are a per-user kernel resource (`fs.inotify.max_user_watches`)
//! shared with every editor and build tool on the host. After each full inventory the daemon
//! hands [`targets`] to [`DirWatcher::set`], in priority order:
//! 1. every directory that holds a model the inventory found;
//! 2. the model caches that exist below the scan roots (the Hugging Face hub, Ollama, LM Studio,
//!    llama.cpp, torch and Keras caches, GPT4All, [`crate::roots::CACHE_ENV`]) and their
//!    subdirectories down to [`CACHE_DEPTH`] levels;
//! 3. the configured scan roots themselves (not the default roots, which are whole homes).
//!
//! Each directory is one non-recursive watch. A directory created inside a watched one is
//! watched as soon as its creation is seen, so `mkdir new && cp model new/` is caught.
//!
//! # Limits
//! The first `watch.max_watches` directories get an inotify watch; when that is reached, or
//! the kernel refuses a watch (its limit), the rest are polled every `watch.poll_interval` by
//! notify's `PollWatcher` (a `stat` of each entry), up to as many again; beyond that a
//! directory is seen at the next full inventory only, and a warning says how many.
//!
//! # Events
//! Creations, content changes, renames and removals count; accesses and metadata-only changes
//! do not (the agent's own reads would otherwise wake it). Paths below `ignore` (the state
//! directory) are dropped. The notify threads hand paths over a bounded channel
//! ([`CHANNEL_CAPACITY`]); when it is full, or inotify's queue overflowed, the watcher reports
//! an overflow and the daemon runs a full inventory instead of trusting the paths.
//! Symbolic links are never watched or followed: a target must be a real directory when
//! checked with `symlink_metadata`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::config::WatchConfig;

/// Paths buffered between the notify threads and the daemon.
pub const CHANNEL_CAPACITY: usize = 4096;
/// Levels of subdirectories of a cache that are watched.
pub const CACHE_DEPTH: usize = 4;
/// Longest a burst of events is gathered before it is handled.
pub const MAX_GATHER: Duration = Duration::from_secs(10);

/// Cache directories relative to a home (reference: model cache layouts).
const HOME_CACHES: &[&str] = &[
    ".cache/huggingface",
    ".ollama/models",
    ".lmstudio/models",
    ".cache/lm-studio/models",
    ".cache/llama.cpp",
    ".cache/torch",
    ".keras/models",
    ".cache/gpt4all",
    ".local/share/nomic.ai/GPT4All",
    ".cache/whisper",
];

/// Fixed system-wide stores.
const SYSTEM_CACHES: &[&str] = &["/usr/share/ollama/.ollama/models", "/var/lib/ollama"];

/// What a burst of events says changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Paths created, changed, renamed or removed.
    pub paths: BTreeSet<PathBuf>,
    /// Events were lost: only a full inventory is trustworthy.
    pub overflow: bool,
}

/// Events were lost: set from the notify threads, taken by [`DirWatcher::changes`], which it
/// wakes (no timer polls the flag).
#[derive(Debug, Default)]
struct Overflow {
    flag: AtomicBool,
    wake: tokio::sync::Notify,
}

impl Overflow {
    fn raise(&self) {
        self.flag.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    fn take(&self) -> bool {
        self.flag.swap(false, Ordering::Relaxed)
    }
}

/// Counts of what is watched, for logs and `check`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WatchCounts {
    /// Directories with an inotify watch.
    pub watched: usize,
    /// Directories polled.
    pub polled: usize,
    /// Directories left to the next full inventory.
    pub unwatched: usize,
}

/// The watches of the model directories (module docs).
pub struct DirWatcher {
    inotify: Option<RecommendedWatcher>,
    poll: Option<PollWatcher>,
    watched: BTreeSet<PathBuf>,
    polled: BTreeSet<PathBuf>,
    /// The kernel refused a watch for lack of room: no more inotify watches are tried.
    inotify_full: bool,
    max_watches: usize,
    events: mpsc::Receiver<PathBuf>,
    overflow: Arc<Overflow>,
    unwatched: usize,
}

impl std::fmt::Debug for DirWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatcher")
            .field("watched", &self.watched.len())
            .field("polled", &self.polled.len())
            .field("inotify_full", &self.inotify_full)
            .field("max_watches", &self.max_watches)
            .finish_non_exhaustive()
    }
}

/// Whether an event kind means content may have changed.
fn relevant(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) | EventKind::Any | EventKind::Other => true,
    }
}

/// The notify callback: relevant paths not below `ignore` into `tx`, an overflow flag when
/// they do not fit or the kernel lost events.
fn handler(
    tx: mpsc::Sender<PathBuf>,
    overflow: Arc<Overflow>,
    ignore: Vec<PathBuf>,
) -> impl FnMut(notify::Result<notify::Event>) + Send + 'static {
    move |result| match result {
        Ok(event) => {
            if event.need_rescan() {
                overflow.raise();
                return;
            }
            if !relevant(&event.kind) {
                return;
            }
            for path in event.paths {
                if ignore.iter().any(|i| path.starts_with(i)) {
                    continue;
                }
                if tx.try_send(path).is_err() {
                    overflow.raise();
                }
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "watch error");
        }
    }
}

impl DirWatcher {
    /// A watcher with no directories yet; events below `ignore` are dropped. When inotify
    /// cannot be set up at all, everything is polled.
    pub fn new(config: &WatchConfig, ignore: Vec<PathBuf>) -> Self {
        let (tx, events) = mpsc::channel(CHANNEL_CAPACITY);
        let overflow = Arc::new(Overflow::default());
        let inotify = match notify::recommended_watcher(handler(tx.clone(), Arc::clone(&overflow), ignore.clone())) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "inotify unavailable; model directories are polled");
                None
            }
        };
        let poll_config = notify::Config::default().with_poll_interval(config.poll_interval);
        let poll = match PollWatcher::new(handler(tx, Arc::clone(&overflow), ignore), poll_config) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot poll model directories");
                None
            }
        };
        Self {
            inotify_full: inotify.is_none(),
            inotify,
            poll,
            watched: BTreeSet::new(),
            polled: BTreeSet::new(),
            max_watches: usize::try_from(config.max_watches).unwrap_or(usize::MAX),
            events,
            overflow,
            unwatched: 0,
        }
    }

    /// What is watched now.
    pub fn counts(&self) -> WatchCounts {
        WatchCounts { watched: self.watched.len(), polled: self.polled.len(), unwatched: self.unwatched }
    }

    /// Makes `dirs` (in priority order) the watched set: watches that are no longer wanted are
    /// removed, new ones added within the limits (module docs).
    pub fn set(&mut self, dirs: &[PathBuf]) {
        let wanted: BTreeSet<&PathBuf> = dirs.iter().collect();
        let stale: Vec<PathBuf> = self.watched.iter().filter(|d| !wanted.contains(d)).cloned().collect();
        for dir in stale {
            if let Some(w) = self.inotify.as_mut() {
                let _ = w.unwatch(&dir);
            }
            self.watched.remove(&dir);
        }
        let stale: Vec<PathBuf> = self.polled.iter().filter(|d| !wanted.contains(d)).cloned().collect();
        for dir in stale {
            if let Some(w) = self.poll.as_mut() {
                let _ = w.unwatch(&dir);
            }
            self.polled.remove(&dir);
        }
        self.unwatched = 0;
        for dir in dirs {
            self.add(dir);
        }
        if self.unwatched > 0 {
            tracing::warn!(
                unwatched = self.unwatched,
                max_watches = self.max_watches,
                "more model directories than watches and polls allow; the rest are seen at the next full inventory"
            );
        }
    }

    /// Watches `dir` (a real directory, not a link) if it is not yet and room is left.
    pub fn add(&mut self, dir: &Path) {
        if self.watched.contains(dir) || self.polled.contains(dir) {
            return;
        }
        if !std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()) {
            return;
        }
        if !self.inotify_full && self.watched.len() < self.max_watches {
            if let Some(w) = self.inotify.as_mut() {
                match w.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.watched.insert(dir.to_owned());
                        return;
                    }
                    Err(e) if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) => {
                        tracing::warn!(
                            watched = self.watched.len(),
                            "the kernel's inotify watch limit is reached; polling the rest"
                        );
                        self.inotify_full = true;
                    }
                    Err(e) => {
                        tracing::debug!(path = %dir.display(), error = %e, "cannot watch");
                        return;
                    }
                }
            }
        }
        if self.polled.len() < self.max_watches {
            if let Some(w) = self.poll.as_mut() {
                match w.watch(dir, RecursiveMode::NonRecursive) {
                    Ok(()) => {
                        self.polled.insert(dir.to_owned());
                        return;
                    }
                    Err(e) => {
                        tracing::debug!(path = %dir.display(), error = %e, "cannot poll");
                        return;
                    }
                }
            }
        }
        self.unwatched += 1;
    }

    /// Forgets the watched directories among `paths` that no longer exist (the kernel dropped
    /// their watches with them), so that a directory created again at the same path is
    /// watched again.
    pub fn forget_missing(&mut self, paths: &BTreeSet<PathBuf>) {
        for path in paths {
            if std::fs::symlink_metadata(path).is_ok() {
                continue;
            }
            if self.watched.remove(path) {
                if let Some(w) = self.inotify.as_mut() {
                    let _ = w.unwatch(path);
                }
            }
            if self.polled.remove(path) {
                if let Some(w) = self.poll.as_mut() {
                    let _ = w.unwatch(path);
                }
            }
        }
    }

    /// Waits for a change, then gathers further events until none came for `quiet` (or
    /// [`MAX_GATHER`] passed). Never returns when nothing is watched and nothing happens.
    pub async fn changes(&mut self, quiet: Duration) -> Changes {
        let mut changes = Changes::default();
        let first = loop {
            if self.overflow.take() {
                changes.overflow = true;
                break None;
            }
            tokio::select! {
                path = self.events.recv() => match path {
                    Some(path) => break Some(path),
                    None => std::future::pending::<()>().await,
                },
                () = self.overflow.wake.notified() => {}
            }
        };
        changes.paths.extend(first);
        let deadline = tokio::time::Instant::now() + MAX_GATHER;
        loop {
            let wait = quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            match tokio::time::timeout(wait, self.events.recv()).await {
                Ok(Some(path)) => {
                    changes.paths.insert(path);
                }
                Ok(None) | Err(_) => break,
            }
        }
        changes.overflow |= self.overflow.take();
        changes
    }
}

/// The directories to rescan for `paths` that changed: a path that is a directory now (just
/// created) is itself rescanned; any other path (a file, or something removed) means its parent.
/// Directories below another in the set are dropped.
pub fn rescan_dirs(paths: &BTreeSet<PathBuf>) -> Vec<PathBuf> {
    let dirs: BTreeSet<PathBuf> = paths
        .iter()
        .filter_map(|p| {
            if std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()) {
                Some(p.clone())
            } else {
                p.parent().map(Path::to_path_buf)
            }
        })
        .collect();
    // Sorted order puts a directory before everything below it.
    let mut out: Vec<PathBuf> = Vec::with_capacity(dirs.len());
    for dir in dirs {
        if !out.last().is_some_and(|kept| dir.starts_with(kept)) {
            out.push(dir);
        }
    }
    out
}

/// The directories to watch after a full inventory, in priority order (module docs), for the
/// paths of the models it found. `roots` are the configured scan roots (empty: the default roots, which are not watched
/// themselves); `homes` the home directories whose caches are looked for.
pub fn targets<'a>(
    model_paths: impl IntoIterator<Item = &'a str>,
    roots: &[PathBuf],
    homes: &[PathBuf],
    budget: usize,
) -> Vec<PathBuf> {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut out = Vec::new();
    let mut push = |dir: PathBuf, out: &mut Vec<PathBuf>| {
        if out.len() < budget && seen.insert(dir.clone()) {
            out.push(dir);
        }
    };
    for path in model_paths {
        if let Some(parent) = Path::new(path).parent() {
            push(parent.to_path_buf(), &mut out);
        }
    }
    let within_roots = |p: &Path| roots.is_empty() || roots.iter().any(|r| p.starts_with(r));
    let mut caches: Vec<PathBuf> = homes.iter().flat_map(|h| HOME_CACHES.iter().map(move |c| h.join(c))).collect();
    caches.extend(crate::roots::CACHE_ENV.iter().filter_map(std::env::var_os).map(PathBuf::from));
    caches.extend(SYSTEM_CACHES.iter().map(PathBuf::from));
    for cache in caches.into_iter().filter(|c| within_roots(c)) {
        let mut level = vec![cache];
        for _ in 0..=CACHE_DEPTH {
            let mut next = Vec::new();
            for dir in level {
                if out.len() >= budget || !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
                    continue;
                }
                if let Ok(entries) = std::fs::read_dir(&dir) {
                    next.extend(
                        entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()),
                    );
                }
                push(dir, &mut out);
            }
            level = next;
        }
    }
    for root in roots {
        push(root.clone(), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_watches: u32) -> WatchConfig {
        WatchConfig { enabled: true, max_watches, poll_interval: Duration::from_millis(200) }
    }

    async fn next(w: &mut DirWatcher) -> Changes {
        tokio::time::timeout(Duration::from_secs(10), w.changes(Duration::from_millis(200))).await.unwrap_or_default()
    }

    #[tokio::test]
    async fn a_new_file_in_a_watched_directory_is_reported_and_reads_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let ignored = dir.path().join("state");
        std::fs::create_dir(&ignored).unwrap();
        std::fs::write(dir.path().join("old.gguf"), b"x").unwrap();
        let mut w = DirWatcher::new(&config(10), vec![ignored.clone()]);
        w.set(&[dir.path().to_path_buf(), ignored.clone()]);
        assert_eq!(w.counts(), WatchCounts { watched: 2, polled: 0, unwatched: 0 });
        // Reading a file and writing below the ignored directory wake nothing.
        let _ = std::fs::read(dir.path().join("old.gguf")).unwrap();
        std::fs::write(ignored.join("spool"), b"x").unwrap();
        let quiet = tokio::time::timeout(Duration::from_millis(700), w.changes(Duration::from_millis(100))).await;
        assert!(quiet.is_err(), "{quiet:?}");
        std::fs::write(dir.path().join("new.gguf"), b"x").unwrap();
        let changes = next(&mut w).await;
        assert!(changes.paths.contains(&dir.path().join("new.gguf")), "{changes:?}");
        assert!(!changes.overflow);
    }

    #[tokio::test]
    async fn directories_beyond_the_watch_limit_are_polled() {
        let dir = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("d{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir(d).unwrap();
        }
        let mut w = DirWatcher::new(&config(1), Vec::new());
        let mut with_link = dirs.clone();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&dirs[0], &link).unwrap();
        with_link.push(link);
        w.set(&with_link);
        // One watch, one poll, one left over; the symbolic link is never watched.
        assert_eq!(w.counts(), WatchCounts { watched: 1, polled: 1, unwatched: 1 });
        std::fs::write(dirs[1].join("polled.onnx"), b"x").unwrap();
        let changes = next(&mut w).await;
        assert!(changes.paths.iter().any(|p| p.starts_with(&dirs[1])), "{changes:?}");
        // Narrowing the set drops watches.
        w.set(&dirs[2..]);
        assert_eq!(w.counts(), WatchCounts { watched: 1, polled: 0, unwatched: 0 });
        // A watched directory that is removed is forgotten, and watched again once recreated.
        std::fs::remove_dir(&dirs[2]).unwrap();
        w.forget_missing(&[dirs[2].clone()].into_iter().collect());
        assert_eq!(w.counts().watched, 0);
        std::fs::create_dir(&dirs[2]).unwrap();
        w.add(&dirs[2]);
        assert_eq!(w.counts().watched, 1);
    }

    #[tokio::test]
    async fn more_events_than_the_channel_holds_report_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWatcher::new(&config(10), Vec::new());
        w.set(&[dir.path().to_path_buf()]);
        // Nobody drains the channel while the files are written: it fills and the rest is lost.
        for i in 0..CHANNEL_CAPACITY + 100 {
            std::fs::write(dir.path().join(format!("{i}.onnx")), b"x").unwrap();
        }
        let mut overflow = false;
        for _ in 0..10 {
            if next(&mut w).await.overflow {
                overflow = true;
                break;
            }
        }
        assert!(overflow, "the lost events must be reported");
    }

    #[test]
    fn rescan_dirs_are_parents_or_new_directories_without_nesting() {
        let dir = tempfile::tempdir().unwrap();
        let new_dir = dir.path().join("new");
        std::fs::create_dir(&new_dir).unwrap();
        let paths: BTreeSet<PathBuf> = [
            dir.path().join("a/x.gguf"),
            dir.path().join("a/sub/y.gguf"),
            new_dir.join("z.gguf"),
            new_dir.clone(),
            dir.path().join("b/gone.onnx"),
        ]
        .into_iter()
        .collect();
        assert_eq!(rescan_dirs(&paths), [dir.path().join("a"), dir.path().join("b"), new_dir]);
    }

    #[test]
    fn targets_put_model_directories_first_and_respect_the_budget() {
        let home = tempfile::tempdir().unwrap();
        let hub = home.path().join(".cache/huggingface/hub/models--org--m/snapshots/rev");
        std::fs::create_dir_all(&hub).unwrap();
        let report = ["/data/m/x.gguf"];
        let roots = [PathBuf::from("/data"), home.path().to_path_buf()];
        let all = targets(report, &roots, &[home.path().to_path_buf()], 100);
        assert_eq!(all.first(), Some(&PathBuf::from("/data/m")));
        assert!(all.contains(&home.path().join(".cache/huggingface/hub/models--org--m")), "{all:?}");
        assert!(all.ends_with(&roots), "{all:?}");
        assert_eq!(targets(report, &roots, &[home.path().to_path_buf()], 2).len(), 2);
        // A cache outside the configured roots is not watched.
        let outside = targets(report, &[PathBuf::from("/data")], &[home.path().to_path_buf()], 100);
        assert_eq!(outside, [PathBuf::from("/data/m"), PathBuf::from("/data")]);
    }
}
