//! One scan: resolve roots, open the cache, run the detectors, assemble the report.
//!
//! # Layout
//! - this file: [`ScanOptions`], [`run_scan`] and the [`ScanState`] a daemon keeps between scans;
//! - [`progress`]: the live counters a scan reports into.

pub mod progress;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::cache::{CacheError, VerdictCache};
use crate::detectors::frameworks::{self, FrameworkOptions};
use crate::detectors::gpus;
use crate::detectors::markers::{MarkerSink, Markers};
use crate::detectors::models::ModelScan;
use crate::detectors::owners::{self, OwnerOptions, RecordCache};
use crate::detectors::runtimes::{ModelLookup, OpenModelDigests, RuntimeCollector, RuntimeOptions};
use crate::detectors::tooling::{self, ToolingOptions};
use crate::listing::ListingCache;
use crate::report::host::HostInfo;
use crate::report::{FileError, ScanReport, ScanStats, Section};
use crate::roots;
use crate::state_dir::StateDir;
use crate::throttle::CpuBudget;
use crate::walk::{WalkError, WalkOptions};
pub use progress::Progress;

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
    /// Collect files named like a model that could not be judged into
    /// [`ScanReport::unjudged`] (for `check`; `scan` reports a broken file as an error and an
    /// unidentified one not at all, so that its inventory holds models only).
    pub report_unjudged: bool,
    /// List every package of every environment, not just the watchlist.
    pub all_packages: bool,
    /// Ask servers listening on loopback for their version and models (one GET, 1 s timeout).
    pub identify_servers: bool,
    /// Pace the walk and the hashing to this share of one CPU, in percent ([`crate::throttle`]);
    /// `None`: as fast as the machine goes.
    pub cpu_percent: Option<u32>,
}

impl ScanOptions {
    /// Whether `section` is to be produced.
    pub fn wants(&self, section: Section) -> bool {
        self.only.contains(&section)
    }
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
            report_unjudged: false,
            all_packages: false,
            identify_servers: false,
            cpu_percent: None,
        }
    }
}

/// Walker threads by default: every core (the walk is I/O- and syscall-bound).
pub fn default_threads() -> usize {
    num_cpus::get().clamp(1, 8)
}

/// The default state directory of `aiscout-agent scan` (its hash cache): `/var/cache/aiscout`
/// for root, else `$XDG_STATE_HOME/aiscout` or `~/.local/state/aiscout`. The daemon's is
/// `state_dir` in its configuration (`/var/lib/aiscout`), never shared: a root scan there would
/// leave a root-owned cache the packaged daemon, running as its own user, cannot open.
pub fn default_scan_state_dir() -> Option<PathBuf> {
    if rustix::process::geteuid().is_root() {
        return Some(PathBuf::from("/var/cache/aiscout"));
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
    /// None of the roots exists.
    #[error("none of the roots to scan exists: {0}")]
    NoRoots(String),
}

/// What a daemon keeps from one scan to the next: the process table and the open scan cache.
/// Reopening the cache's sled database for every scan would cost its page cache each time, and
/// sled does not give all of it back when a database is dropped.
#[derive(Debug, Default)]
pub struct ScanState {
    /// The process table of runtime collections.
    pub runtimes: RuntimeCollector,
    /// The cache, with the state directory it was opened in.
    cache: Option<(PathBuf, VerdictCache)>,
}

impl ScanState {
    /// The cache in `dir`, opened on first use and kept while `dir` stays the same.
    fn cache(&mut self, dir: &Path) -> Result<VerdictCache, ScanError> {
        if let Some((open_dir, cache)) = &self.cache {
            if open_dir == dir {
                return Ok(cache.clone());
            }
        }
        let state_dir =
            StateDir::open(dir).map_err(|source| ScanError::StateDir { path: dir.display().to_string(), source })?;
        let cache = VerdictCache::open(&state_dir.cache())?;
        self.cache = Some((dir.to_owned(), cache.clone()));
        Ok(cache)
    }
}

/// Runs one scan, reporting live counters into `progress`.
pub fn run_scan(opts: &ScanOptions, progress: &Progress) -> Result<ScanReport, ScanError> {
    run_scan_with(opts, progress, &mut ScanState::default())
}

/// Runs one scan with a caller's [`ScanState`], so a daemon keeps one process table and one
/// open cache across scans instead of building them again each time.
pub fn run_scan_with(opts: &ScanOptions, progress: &Progress, state: &mut ScanState) -> Result<ScanReport, ScanError> {
    let started = Instant::now();
    let host = HostInfo::collect();
    let mut report = ScanReport::new(host);
    report.sections = Section::ALL.into_iter().filter(|s| opts.wants(*s)).collect();
    let defaults = opts.roots.is_empty();
    let homes = if defaults { roots::homes() } else { opts.roots.clone() };

    let markers = if [Section::Models, Section::Frameworks, Section::Tooling].iter().any(|s| opts.wants(*s)) {
        let t = Instant::now();
        let markers = walk_roots(opts, progress, state, &mut report)?;
        report.stats.section_ms.insert("walk".into(), elapsed_ms(t));
        markers
    } else {
        Markers::default()
    };

    if opts.wants(Section::Frameworks) {
        let t = Instant::now();
        let fw_opts = FrameworkOptions { homes: homes.clone(), system: defaults, all_packages: opts.all_packages };
        let outcome = frameworks::collect(&fw_opts, &markers);
        report.frameworks = Some(outcome.frameworks);
        report.environments = Some(outcome.environments);
        report.errors.extend(outcome.errors);
        report.stats.section_ms.insert("frameworks".into(), elapsed_ms(t));
    }
    let gpu = if opts.wants(Section::Gpus) || opts.wants(Section::Runtimes) {
        let t = Instant::now();
        let outcome = gpus::collect();
        report.stats.section_ms.insert("gpus".into(), elapsed_ms(t));
        Some(outcome)
    } else {
        None
    };
    if opts.wants(Section::Runtimes) {
        let t = Instant::now();
        let gpu_memory = gpu.as_ref().map(|g| g.memory_by_pid()).unwrap_or_default();
        let rt_opts = RuntimeOptions { identify: opts.identify_servers };
        // Open models the walk did not see get their digests from the cache (or are hashed
        // into it), so a runtimes-only refresh links servers to models too.
        // A state directory this scan may not create (a runtimes-only scan as an unprivileged
        // user) costs the digests, not the section.
        let cache = match (&opts.state_dir, opts.hash_models) {
            (Some(dir), true) => match state.cache(dir) {
                Ok(cache) => Some(cache),
                Err(error) => {
                    let dir = dir.display().to_string();
                    let message = error.to_string();
                    crate::log_once!(
                        warn,
                        "scan.open_model_digests",
                        &dir,
                        &message,
                        dir = %dir.escape_debug(),
                        error = %message,
                        "open models get no digest: the hash cache cannot be opened"
                    );
                    None
                }
            },
            _ => None,
        };
        let budget = opts.cpu_percent.map(CpuBudget::new);
        let mut lookup = ModelLookup::new(&report.models);
        if let Some(cache) = &cache {
            lookup = lookup.with_digests(OpenModelDigests::new(cache, budget.as_ref()));
        }
        let outcome = state.runtimes.collect(&rt_opts, &lookup, &gpu_memory);
        report.stats.processes = outcome.processes;
        report.stats.processes_restricted = outcome.restricted_count;
        report.runtimes = Some(outcome.runtimes);
        report.restricted_processes = Some(outcome.restricted);
        report.errors.extend(outcome.errors);
        report.stats.section_ms.insert("runtimes".into(), elapsed_ms(t));
    }
    if let Some(g) = gpu.filter(|_| opts.wants(Section::Gpus)) {
        report.gpus = Some(g.gpus);
        report.gpu_drivers = Some(g.drivers);
    }
    if opts.wants(Section::Tooling) {
        let t = Instant::now();
        let tl_opts = ToolingOptions { homes, processes: true };
        let outcome = tooling::collect(&tl_opts, &markers);
        report.tooling = Some(outcome.tooling);
        report.errors.extend(outcome.errors);
        report.stats.section_ms.insert("tooling".into(), elapsed_ms(t));
    }
    if !opts.wants(Section::Models) {
        report.models.clear();
    }
    report.stats.models = report.models.len() as u64;
    report.stats.errors = report.errors.len() as u64;
    report.stats.duration_ms = elapsed_ms(started);
    tracing::info!(
        models = report.stats.models,
        files = report.stats.files_seen,
        bytes_hashed = report.stats.bytes_hashed,
        errors = report.stats.errors,
        duration_ms = report.stats.duration_ms,
        "scan finished"
    );
    Ok(report)
}

fn elapsed_ms(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// The one walk of the roots: models (when asked for) and marker files for the other
/// detectors. Fills `report.models`, its walk counters and errors.
fn walk_roots(
    opts: &ScanOptions,
    progress: &Progress,
    state: &mut ScanState,
    report: &mut ScanReport,
) -> Result<Markers, ScanError> {
    let defaults = opts.roots.is_empty();
    let roots = if defaults {
        roots::default_roots(opts.scan_network_fs)
    } else {
        for r in &opts.roots {
            if let Err(e) = std::fs::symlink_metadata(r) {
                report.errors.push(FileError {
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
        Some(dir) => Some(state.cache(dir)?),
        None => None,
    };
    let walk = WalkOptions {
        roots: roots.clone(),
        excludes: opts.excludes.clone(),
        skip_paths: opts.state_dir.iter().filter_map(|d| std::fs::canonicalize(d).ok()).collect(),
        threads: opts.threads,
    };
    let state = format!("{} {} {}", roots.len(), opts.threads, cache.is_some());
    crate::log_once!(
        info,
        "scan.walk",
        "",
        &state,
        roots = roots.len(),
        threads = opts.threads,
        cache = cache.is_some(),
        "walk started"
    );
    let listings = match &cache {
        Some(c) => Some(
            ListingCache::open(c.db(), &walk.fingerprint())
                .map_err(|source| CacheError::Open { path: format!("{} (listings)", c.path()), source })?,
        ),
        None => None,
    };
    let sink = MarkerSink::default();
    let budget = opts.cpu_percent.map(CpuBudget::new);
    // Markers are always noted, so that the listing records keep them for later scans.
    let mut models = ModelScan::new(cache.as_ref(), progress).with_markers(&sink);
    if let Some(budget) = &budget {
        models = models.with_budget(budget);
    }
    if !opts.hash_models {
        models = models.without_hashing();
    }
    if opts.report_unjudged {
        models = models.reporting_unjudged();
    }
    let examining = opts.wants(Section::Models);
    if !examining {
        models = models.markers_only();
    }
    let outcome = models.run(&walk, listings.as_ref())?;
    report.errors.extend(outcome.errors);
    report.models = outcome.models;
    report.unjudged = outcome.unjudged;
    let seen_keys = outcome.seen_keys;
    report.stats = ScanStats { roots: roots.iter().map(|r| r.display().to_string()).collect(), ..progress.stats() };
    let markers = sink.into_markers();
    if examining && !report.models.is_empty() {
        let t = Instant::now();
        let records = match &cache {
            Some(c) => Some(
                RecordCache::open(c.db())
                    .map_err(|source| CacheError::Open { path: format!("{} (owners)", c.path()), source })?,
            ),
            None => None,
        };
        // Real homes, not the roots: a root given on the command line may well be /opt.
        let owned =
            owners::attribute(&mut report.models, &markers, records.as_ref(), &OwnerOptions::new(roots::homes()));
        report.stats.owned_models = owned.owned;
        report.stats.records_read = owned.records_read;
        report.stats.record_cache_hits = owned.records_cached;
        report.errors.extend(owned.errors);
        if let (Some(records), true) = (&records, defaults) {
            records.retain(&owned.records_touched);
        }
        report.stats.section_ms.insert("owners".into(), elapsed_ms(t));
    }
    if let Some(c) = &cache {
        // Only a models scan of the default roots sees every file the cache may describe.
        if defaults && examining {
            c.retain(&seen_keys);
        }
        c.flush();
    }
    Ok(markers)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_scan_never_shares_the_daemons_state_directory() {
        let daemon = crate::config::Config::default().state_dir;
        let scan = super::default_scan_state_dir();
        assert_ne!(scan.as_deref(), Some(daemon.as_path()));
        if rustix::process::geteuid().is_root() {
            assert_eq!(scan, Some(std::path::PathBuf::from("/var/cache/aiscout")));
        }
    }
}
