//! The parallel file walk (ripgrep's `ignore::WalkBuilder`).
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

use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::{WalkBuilder, WalkState};

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

/// What the walk hands to the visitor.
#[derive(Debug)]
pub enum WalkItem<'a> {
    /// A regular file (by its directory entry; the visitor re-checks on open).
    File(&'a Path),
    /// A directory entered.
    Dir(&'a Path),
    /// An entry that could not be read.
    Error(Option<&'a Path>, String),
}

/// Compiled exclusion rules.
#[derive(Debug)]
struct Excludes {
    names: GlobSet,
    paths: GlobSet,
    skip_paths: Vec<PathBuf>,
}

impl Excludes {
    fn new(opts: &WalkOptions) -> Result<Self, WalkError> {
        let mut names = GlobSetBuilder::new();
        let mut paths = GlobSetBuilder::new();
        for pattern in &opts.excludes {
            let glob = Glob::new(pattern.trim_end_matches('/'))
                .map_err(|source| WalkError::Pattern { pattern: pattern.clone(), source })?;
            if pattern.trim_end_matches('/').contains('/') {
                paths.add(glob);
            } else {
                names.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| {
            b.build().map_err(|source| WalkError::Pattern { pattern: opts.excludes.join(","), source })
        };
        Ok(Self { names: build(names)?, paths: build(paths)?, skip_paths: opts.skip_paths.clone() })
    }

    fn excluded(&self, path: &Path, is_dir: bool) -> bool {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        if self.names.is_match(name.as_ref()) || self.paths.is_match(path) {
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

/// Walks every root in parallel. `make_visitor` is called once per worker thread and returns
/// that thread's visitor, so each thread owns its buffers.
pub fn walk<F, V>(opts: &WalkOptions, make_visitor: F) -> Result<(), WalkError>
where
    F: Fn() -> V + Sync,
    V: FnMut(WalkItem<'_>) + Send,
{
    let (first, rest) = opts.roots.split_first().ok_or(WalkError::NoRoots)?;
    let excludes = Arc::new(Excludes::new(opts)?);
    let mut builder = WalkBuilder::new(first);
    for r in rest {
        builder.add(r);
    }
    let filter = Arc::clone(&excludes);
    builder
        .standard_filters(false)
        .follow_links(false)
        .same_file_system(true)
        .threads(opts.threads.max(1))
        .filter_entry(move |e| e.depth() == 0 || !filter.excluded(e.path(), e.file_type().is_some_and(|t| t.is_dir())));
    builder.build_parallel().run(|| {
        let mut visit = make_visitor();
        Box::new(move |result| {
            match result {
                Ok(entry) => match entry.file_type() {
                    Some(t) if t.is_file() => visit(WalkItem::File(entry.path())),
                    Some(t) if t.is_dir() => visit(WalkItem::Dir(entry.path())),
                    // Symlinks, FIFOs, sockets and devices are never opened.
                    _ => {}
                },
                Err(e) => {
                    let path = error_path(&e);
                    visit(WalkItem::Error(path.as_deref(), error_message(&e)));
                }
            }
            WalkState::Continue
        })
    });
    Ok(())
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
