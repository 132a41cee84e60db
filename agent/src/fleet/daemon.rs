//! `aiscout-agent run`: the agent as a daemon.
//!
//! One cycle, in order:
//! 1. identity and enrollment: the host identity ([`super::identity`]) and the agent's
//!    certificate, enrolling with the token file when there is none ([`super::enroll`]);
//! 2. collection: a full scan (every configured section) when one is due, else a rescan of the
//!    model directories a file event named ([`super::watch`]; the full scan also refreshes what
//!    is watched), else a runtimes-only scan when that is due; all run on a blocking thread,
//!    paced to `throttle.cpu_percent` ([`crate::throttle`]);
//! 3. spooling: a snapshot when one is due (first cycle, every `schedule.snapshot_every` full
//!    scans, the spool or the sent state lost something, or the collector asked), else the
//!    delta against what was last spooled ([`super::state`]); batches are in the spool
//!    ([`crate::spool`]) before anything is sent;
//! 4. renewal and sending: a certificate with less than a third of its lifetime left is
//!    renewed first ([`enroll::renew`]; a failure is logged and retried next cycle); then the
//!    spool is drained to the collector ([`super::transport`]); a failure leaves it in the
//!    spool and the next attempt waits an exponential backoff with full jitter;
//! 5. waiting: until the next scheduled scan, a retry, shutdown, or a file event in a watched
//!    model directory (gathered until [`WATCH_QUIET`] passes without one).
//!
//! State directory layout: `cache/` (scan caches), `spool/`, `fleet/` (sent state), `tls/`
//! (key, certificate, CA, agent id; 0600), `install.key`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aiscout_proto::v1::{self, AssetKind};

use super::state::{batches, BatchLimits, Contents, Delta, SentState};
use super::watch::{self, DirWatcher};
use super::{enroll, identity, payload, transport};
use crate::config::Config;
use crate::report::{ScanReport, Section};
use crate::scan::{self, Progress, ScanOptions, ScanState};
use crate::spool::Spool;

/// Errors that stop the daemon (everything else is retried).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The state directory cannot be used.
    #[error("state directory {path}: {source}")]
    StateDir {
        /// The directory.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The spool cannot be opened or written.
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    /// The sent state cannot be opened or written.
    #[error(transparent)]
    State(#[from] super::state::StateError),
    /// The sent-state database cannot be opened.
    #[error("sent state {path}: {source}")]
    StateDb {
        /// The directory.
        path: String,
        /// The cause.
        source: sled::Error,
    },
    /// The host identity cannot be read.
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    /// Enrollment failed.
    #[error(transparent)]
    Enroll(#[from] enroll::EnrollError),
    /// A scan could not run.
    #[error(transparent)]
    Scan(#[from] scan::ScanError),
    /// Sending failed (only fatal with `--once`).
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
    /// The scan thread died.
    #[error("scan worker failed: {0}")]
    Worker(String),
}

/// Page cache of the sent-state database (sled's default is 1 GiB): it holds one short key per
/// asset and is read once per scan.
const SENT_STATE_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// Quiet time that ends a burst of file events (a model being copied writes for a while).
const WATCH_QUIET: Duration = Duration::from_millis(500);

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// One full collection, sent and acknowledged, then exit.
    pub once: bool,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// The scan options of a configuration, for `sections`.
fn scan_options(config: &Config, sections: Vec<Section>) -> ScanOptions {
    ScanOptions {
        roots: config.scan.roots.clone(),
        state_dir: Some(config.state_dir.clone()),
        only: sections,
        excludes: config.scan.excludes.clone(),
        scan_network_fs: config.scan.network_fs,
        all_packages: config.scan.all_packages,
        identify_servers: config.scan.identify_servers,
        cpu_percent: Some(config.throttle.cpu_percent),
        ..ScanOptions::default()
    }
}

/// The daemon's open stores.
struct Agent {
    config: Config,
    spool: Spool,
    sent: SentState,
    identity: v1::HostIdentity,
    /// Full scans since the last snapshot.
    since_snapshot: u32,
    /// The collector asked for a snapshot.
    snapshot_requested: bool,
    /// One process table and one open scan cache for every scan.
    scans: Arc<Mutex<ScanState>>,
}

impl Agent {
    /// Runs a scan of `sections` (below `roots` when given, else the configured roots) on a
    /// blocking thread, with the daemon's long-lived scan state and its CPU budget.
    async fn collect(&self, sections: Vec<Section>, roots: Option<Vec<PathBuf>>) -> Result<ScanReport, DaemonError> {
        let mut options = scan_options(&self.config, sections);
        if let Some(roots) = roots {
            options.roots = roots;
        }
        let scans = Arc::clone(&self.scans);
        tokio::task::spawn_blocking(move || {
            let mut state = scans.lock().unwrap_or_else(|p| p.into_inner());
            let report = scan::run_scan_with(&options, &Progress::default(), &mut state);
            crate::throttle::release_free_memory();
            report
        })
        .await
        .map_err(|e| DaemonError::Worker(e.to_string()))?
        .map_err(DaemonError::from)
    }

    fn limits(&self) -> BatchLimits {
        BatchLimits {
            max_assets: usize::try_from(self.config.transport.batch_max_assets).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(self.config.transport.batch_max_bytes.bytes()).unwrap_or(usize::MAX),
        }
    }

    /// Spools the report: a snapshot when due, else the delta within `scope`.
    fn spool_report(&mut self, report: &ScanReport, scope: &[AssetKind], full: bool) -> Result<u64, DaemonError> {
        let assets = payload::assets(report);
        let host = payload::host_facts(report, self.identity.clone());
        let snapshot_due = full
            && (self.snapshot_requested
                || self.sent.needs_snapshot()?
                || self.spool.needs_snapshot()
                || self.since_snapshot + 1 >= self.config.schedule.snapshot_every);
        let mut appended = 0;
        if snapshot_due {
            let snapshot_id = u64::try_from(now_ms()).unwrap_or(1).max(1);
            self.sent.begin()?;
            for b in batches(Contents::Snapshot { assets: &assets, snapshot_id }, Some(&host), now_ms(), self.limits())
            {
                self.spool.append(b.into_record())?;
                appended += 1;
            }
            self.sent.replace_all(&assets)?;
            self.since_snapshot = 0;
            self.snapshot_requested = false;
            tracing::info!(assets = assets.len(), batches = appended, "snapshot spooled");
        } else {
            let delta = self.sent.delta(&assets, scope)?;
            appended = self.spool_delta(&delta, Some(&host))?;
            if full {
                self.since_snapshot += 1;
            }
        }
        Ok(appended)
    }

    /// Spools `delta` (nothing when it is empty) and records it; returns the batches appended.
    fn spool_delta(&mut self, delta: &Delta, host: Option<&v1::HostFacts>) -> Result<u64, DaemonError> {
        if delta.is_empty() {
            return Ok(0);
        }
        self.sent.begin()?;
        let mut appended = 0;
        for b in batches(Contents::Delta(delta), host, now_ms(), self.limits()) {
            self.spool.append(b.into_record())?;
            appended += 1;
        }
        self.sent.record(delta)?;
        tracing::info!(upserts = delta.upserts.len(), removals = delta.removals.len(), "delta spooled");
        Ok(appended)
    }

    /// Rescans the model directories `dirs` after a change was seen in them and spools what
    /// changed there (watch module docs). A directory that no longer exists is not scanned:
    /// its models are removals.
    async fn rescan(&mut self, dirs: &[PathBuf]) -> Result<u64, DaemonError> {
        let existing: Vec<PathBuf> =
            dirs.iter().filter(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir())).cloned().collect();
        let assets = if existing.is_empty() {
            Vec::new()
        } else {
            payload::assets(&self.collect(vec![Section::Models], Some(existing)).await?)
        };
        let delta = self.sent.delta_under(&assets, AssetKind::Model, dirs)?;
        tracing::debug!(dirs = dirs.len(), models = assets.len(), "model directories rescanned");
        self.spool_delta(&delta, None)
    }

    /// Sends the spool; returns whether everything was acknowledged.
    async fn send(&mut self, enrolled: &enroll::Enrolled) -> Result<(), DaemonError> {
        let url = self.config.collector.url.clone().unwrap_or_default();
        let tls = enroll::channel_config(enrolled, &self.config);
        let endpoint = enroll::endpoint(&self.config, tls)?;
        let mut client = transport::connect(&url, endpoint).await?;
        let outcome = transport::drain(&mut client, &self.spool, env!("CARGO_PKG_VERSION")).await?;
        tracing::info!(sent = outcome.sent, acked = outcome.acked, "spool drained");
        if let Some(reason) = outcome.snapshot_requested {
            tracing::info!(reason = %reason, "snapshot requested");
            self.snapshot_requested = true;
        }
        Ok(())
    }
}

/// Full jitter: a random wait in `[0, min(max, initial * 2^attempt)]`.
fn backoff(initial: Duration, max: Duration, attempt: u32) -> Duration {
    let cap = initial.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX)).min(max);
    let mut b = [0u8; 8];
    let r = getrandom::fill(&mut b).map(|_| u64::from_le_bytes(b)).unwrap_or(0);
    let millis = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(if millis == 0 { 0 } else { r % (millis + 1) })
}

/// Runs the agent until `shutdown` (or once).
pub async fn run(
    config: Config,
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), DaemonError> {
    let dir = config.state_dir.clone();
    crate::fileio::create_private_dir(&dir)
        .map_err(|source| DaemonError::StateDir { path: dir.display().to_string(), source })?;
    let identity = identity::collect(&dir, &config.identity)?;
    let spool = Spool::open(&dir, config.spool.max_bytes.bytes())?;
    let fleet_path = dir.join("fleet");
    let db = crate::fileio::open_sled(&fleet_path, SENT_STATE_CACHE_BYTES)
        .map_err(|source| DaemonError::StateDb { path: fleet_path.display().to_string(), source })?;
    let sent = SentState::open(&db)?;
    let mut agent = Agent {
        config,
        spool,
        sent,
        identity,
        since_snapshot: 0,
        snapshot_requested: false,
        scans: Arc::new(Mutex::new(ScanState::default())),
    };
    tokio::pin!(shutdown);

    let watching = agent.config.watch.enabled && !opts.once && agent.config.scan.sections.contains(&Section::Models);
    let mut watcher = watching.then(|| DirWatcher::new(&agent.config.watch, vec![dir.clone()]));
    let mut enrolled = None;
    let mut attempt = 0u32;
    let mut next_full = Instant::now();
    let mut next_runtimes = Instant::now() + agent.config.schedule.runtimes_interval;
    let mut changed_dirs: Vec<PathBuf> = Vec::new();
    loop {
        // 1. enrollment
        if enrolled.is_none() {
            enrolled = match enroll::load(&dir)? {
                Some(e) => Some(e),
                None => match enroll::enroll(&agent.config, agent.identity.clone()).await {
                    Ok(e) => Some(e),
                    Err(e) if opts.once => return Err(e.into()),
                    Err(e) => {
                        tracing::warn!(error = %e, "enrollment failed; retrying");
                        None
                    }
                },
            };
        }
        // 2–3. collection and spooling
        let now = Instant::now();
        if now >= next_full || agent.snapshot_requested {
            let report = agent.collect(agent.config.scan.sections.clone(), None).await?;
            let scope: Vec<AssetKind> = agent.config.scan.sections.iter().filter_map(|s| s.asset_kind()).collect();
            agent.spool_report(&report, &scope, true)?;
            let jitter = agent.config.schedule.jitter.max_delay(agent.config.schedule.full_interval);
            next_full = now + agent.config.schedule.full_interval + backoff(jitter, jitter, 0);
            next_runtimes = now + agent.config.schedule.runtimes_interval;
            changed_dirs.clear();
            if let Some(w) = watcher.as_mut() {
                let budget = usize::try_from(agent.config.watch.max_watches).unwrap_or(usize::MAX).saturating_mul(2);
                let paths = report.models.iter().map(|m| m.path.as_str());
                w.set(&watch::targets(paths, &agent.config.scan.roots, &crate::roots::homes(), budget));
                let counts = w.counts();
                tracing::info!(
                    watched = counts.watched,
                    polled = counts.polled,
                    unwatched = counts.unwatched,
                    "model directories watched"
                );
            }
        } else if !changed_dirs.is_empty() {
            agent.rescan(&std::mem::take(&mut changed_dirs)).await?;
        } else if now >= next_runtimes && agent.config.scan.sections.contains(&Section::Runtimes) {
            let report = agent.collect(vec![Section::Runtimes], None).await?;
            agent.spool_report(&report, &[AssetKind::Runtime], false)?;
            next_runtimes = now + agent.config.schedule.runtimes_interval;
        }
        // 4. renewal, then sending
        if let Some(e) = enrolled.as_ref().filter(|e| enroll::needs_renewal(e, SystemTime::now())) {
            match enroll::renew(&agent.config, e).await {
                Ok(renewed) => enrolled = Some(renewed),
                Err(err) => {
                    tracing::warn!(agent_id = %e.agent_id, not_after = e.not_after, error = %err, "certificate renewal failed; retrying next cycle");
                }
            }
        }
        let mut wait = next_full.min(next_runtimes).saturating_duration_since(Instant::now());
        if let Some(e) = &enrolled {
            match agent.send(e).await {
                Ok(()) => attempt = 0,
                Err(DaemonError::Transport(transport::TransportError::RetryAfter(after))) => {
                    tracing::info!(
                        retry_ms = u64::try_from(after.as_millis()).unwrap_or(0),
                        "sending again after the collector's rate limit"
                    );
                    if opts.once {
                        // `--once` ends only when everything is acknowledged.
                        tokio::time::sleep(after).await;
                        continue;
                    }
                    wait = wait.min(after);
                }
                Err(err) if opts.once => return Err(err),
                Err(err) => {
                    attempt = attempt.saturating_add(1);
                    let t = &agent.config.transport;
                    let retry = backoff(t.backoff_initial, t.backoff_max, attempt);
                    tracing::warn!(error = %err, attempt, retry_ms = u64::try_from(retry.as_millis()).unwrap_or(0), "send failed");
                    wait = wait.min(retry);
                }
            }
        }
        if opts.once && !agent.snapshot_requested {
            return Ok(());
        }
        if agent.snapshot_requested {
            continue;
        }
        let changes = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(wait) => None,
            changes = async {
                match watcher.as_mut() {
                    Some(w) => w.changes(WATCH_QUIET).await,
                    None => std::future::pending().await,
                }
            } => Some(changes),
        };
        if let (Some(changes), Some(w)) = (changes, watcher.as_mut()) {
            if changes.overflow {
                tracing::info!("file events were lost; running a full inventory");
                next_full = Instant::now();
            } else {
                w.forget_missing(&changes.paths);
                changed_dirs = watch::rescan_dirs(&changes.paths);
                for d in &changed_dirs {
                    w.add(d);
                }
                tracing::debug!(paths = changes.paths.len(), dirs = changed_dirs.len(), "model directories changed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_stays_within_its_cap() {
        for attempt in 0..30 {
            let b = backoff(Duration::from_secs(1), Duration::from_secs(300), attempt);
            assert!(b <= Duration::from_secs(300));
            assert!(b <= Duration::from_secs(1u64 << attempt.min(20)));
        }
        assert_eq!(backoff(Duration::ZERO, Duration::ZERO, 3), Duration::ZERO);
    }
}
