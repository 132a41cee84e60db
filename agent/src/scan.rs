//! One scan: resolve roots, open the cache, run the detectors, assemble the report.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::cache::{CacheError, VerdictCache};
use crate::detectors::models::{ModelScan, Progress};
use crate::host::HostInfo;
use crate::listing::ListingCache;
use crate::report::{FileError, ScanReport, ScanStats};
use crate::roots;
use crate::walk::{WalkError, WalkOptions};

/// Sections of the scan document that can be selected with `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Section {
    /// Model files and directories.
    Models,
    /// ML frameworks in Python environments and Node projects.
    Frameworks,
    /// Running inference servers and ML processes.
    Runtimes,
    /// AI tooling configuration (MCP servers, API keys by name).
    Tooling,
}

/// What to scan and how.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Roots to walk; empty means the platform defaults ([`roots::default_roots`]).
    pub roots: Vec<PathBuf>,
    /// Where the cache lives; `None` disables it.
    pub state_dir: Option<PathBuf>,
    /// Sections to produce.
    pub only: Vec<Section>,
    /// Extra exclude globs.
    pub excludes: Vec<String>,
    /// Walker threads.
    pub threads: usize,
    /// Walk network file systems mounted below the roots.
    pub scan_network_fs: bool,
    /// Hash models (off for `check`, which needs verdicts only; also disables the cache).
    pub hash_models: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            state_dir: None,
            only: vec![Section::Models],
            excludes: Vec::new(),
            threads: default_threads(),
            scan_network_fs: false,
            hash_models: true,
        }
    }
}

/// Walker threads by default: every core (the walk is I/O- and syscall-bound).
pub fn default_threads() -> usize {
    num_cpus::get().clamp(1, 8)
}

/// The default state directory: `/var/lib/aiscout` for root, else
/// `$XDG_STATE_HOME/aiscout` or `~/.local/state/aiscout`.
pub fn default_state_dir() -> Option<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Some(PathBuf::from("/var/lib/aiscout"));
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME") {
        return Some(PathBuf::from(x).join("aiscout"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state/aiscout"))
}

/// Errors that stop a scan (per-file problems never do).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// The cache could not be opened.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The walk could not be set up.
    #[error(transparent)]
    Walk(#[from] WalkError),
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    StateDir { path: String, source: std::io::Error },
    /// A section that this build does not produce yet.
    #[error("section {0:?} is not available in this version of the agent")]
    Unsupported(Section),
    /// None of the roots exists.
    #[error("none of the roots to scan exists: {0}")]
    NoRoots(String),
}

/// Runs one scan, reporting live counters into `progress`.
pub fn run_scan(opts: &ScanOptions, progress: &Progress) -> Result<ScanReport, ScanError> {
    let started = Instant::now();
    let host = HostInfo::collect();
    if let Some(s) = opts.only.iter().find(|s| **s != Section::Models) {
        return Err(ScanError::Unsupported(*s));
    }
    let mut errors = Vec::new();
    let defaults = opts.roots.is_empty();
    let roots = if defaults {
        roots::default_roots(opts.scan_network_fs)
    } else {
        for r in &opts.roots {
            if let Err(e) = std::fs::symlink_metadata(r) {
                errors.push(FileError {
                    path: r.display().to_string(),
                    error: format!("cannot scan root: {}", e.to_string().to_lowercase()),
                });
            }
        }
        roots::with_mounts(opts.roots.clone(), opts.scan_network_fs)
    };
    if roots.is_empty() {
        let names: Vec<String> = opts.roots.iter().map(|r| r.display().to_string()).collect();
        return Err(ScanError::NoRoots(names.join(", ")));
    }

    let cache = match &opts.state_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|source| ScanError::StateDir { path: dir.display().to_string(), source })?;
            Some(VerdictCache::open(dir)?)
        }
        None => None,
    };
    let walk = WalkOptions {
        roots: roots.clone(),
        excludes: opts.excludes.clone(),
        skip_paths: opts.state_dir.iter().filter_map(|d| std::fs::canonicalize(d).ok()).collect(),
        threads: opts.threads,
    };
    tracing::info!(roots = roots.len(), threads = opts.threads, cache = cache.is_some(), "scan started");
    let listings = match &cache {
        Some(c) => Some(
            ListingCache::open(c.db(), &walk.fingerprint())
                .map_err(|source| CacheError::Open { path: format!("{} (listings)", c.path()), source })?,
        ),
        None => None,
    };
    let mut models = ModelScan::new(cache.as_ref(), progress);
    if !opts.hash_models {
        models = models.without_hashing();
    }
    let outcome = models.run(&walk, listings.as_ref())?;
    if let Some(c) = &cache {
        // Only a scan of the default roots sees every file the cache may describe.
        if defaults {
            c.retain(&outcome.seen_keys);
        }
        c.flush();
    }
    errors.extend(outcome.errors);
    let stats = ScanStats {
        roots: roots.iter().map(|r| r.display().to_string()).collect(),
        files_seen: progress.files_seen.load(Ordering::Relaxed),
        dirs_seen: progress.dirs_seen.load(Ordering::Relaxed),
        candidates: progress.candidates.load(Ordering::Relaxed),
        models: outcome.models.len() as u64,
        bytes_hashed: progress.bytes_hashed.load(Ordering::Relaxed),
        hash_cache_hits: progress.hash_cache_hits.load(Ordering::Relaxed),
        verdict_cache_hits: progress.verdict_cache_hits.load(Ordering::Relaxed),
        digests_from_name: progress.digests_from_name.load(Ordering::Relaxed),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        errors: errors.len() as u64,
    };
    tracing::info!(
        models = stats.models,
        files = stats.files_seen,
        bytes_hashed = stats.bytes_hashed,
        errors = stats.errors,
        duration_ms = stats.duration_ms,
        "scan finished"
    );
    Ok(ScanReport { host, models: outcome.models, stats, errors })
}
