//! `aiscout-agent run`: the agent as a daemon.
//!
//! [`run`] opens the state directory ([`crate::state_dir`]) and its stores, then repeats one
//! cycle whose decisions are all [`super::schedule`]'s; this module only carries them out:
//! 1. credentials: the agent's certificate, enrolling with the token file when there is none
//!    ([`super::enroll`]); a failure is logged and tried again next cycle (fatal with `--once`);
//! 2. collection: what [`Schedule::collection`] picks (a full inventory, a rescan of changed
//!    model directories, a runtimes refresh, or nothing), run on a blocking thread and paced
//!    to `throttle.cpu_percent` ([`crate::throttle`]); a full inventory also refreshes what is
//!    watched ([`super::watch`]);
//! 3. spooling: a snapshot when [`Schedule::snapshot_due`], else the delta against what was
//!    last spooled ([`super::sent`]), cut into batches ([`super::batch`]); batches are in the
//!    spool ([`crate::spool`]) before anything is sent;
//! 4. renewal and sending: a certificate with less than a third of its lifetime left is
//!    renewed first ([`enroll::renew`]; a failure is logged and retried next cycle); then the
//!    spool is drained to the collector ([`super::transport`]); a failure leaves it in the
//!    spool; when the collector asked for a renewal while draining (its CA was rotated), the
//!    certificate is renewed right after;
//! 5. waiting: what [`Schedule::after_send`] says, until shutdown, a file event in a watched
//!    model directory (gathered until [`WATCH_QUIET`] passes without one) or SIGHUP;
//! 6. on SIGHUP, the configuration file is loaded and validated again: a refused one changes
//!    nothing (the error is logged and kept in the status), a valid one applies as
//!    [`Config::reloaded`] says and starts a full inventory at once;
//! 7. with `update.enabled`, after a successful send and at most every
//!    `update.check_interval`, the release channel is checked and the release this agent should
//!    take is staged ([`crate::update`]); a refusal is logged and kept in the status, and the
//!    agent runs on unchanged. A staged release is switched to when the service starts the
//!    agent through `state_dir/bin/aiscout-agent` ([`crate::update::switch`]): the daemon
//!    points the link at it and ends with [`switch::EXIT_RESTART`] ([`Ended::Restart`]);
//! 8. a daemon that was switched to confirms its update with its first acknowledged send; one
//!    that has not by `update.health_deadline` ends with [`Ended::Restart`] too, and the guard
//!    run before the next start rolls it back.
//!
//! After every step the daemon's health is written to `state_dir/status.json`
//! ([`super::status`]), and once more, as `stopped`, when it ends.
//!
//! What lives where in the state directory is [`crate::state_dir`]'s module doc.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aiscout_proto::v1::{self, AssetKind};

use super::batch::{batches, BatchLimits, Contents, Delta};
use super::channel::{self, ChannelError};
use super::credentials::{self, CredentialsError, Enrolled};
use super::schedule::{After, Collect, Schedule, Timing};
use super::sent::{SentState, SentStateError};
use super::status::{self, AgentStatus, InventoryStatus};
use super::watch::{self, DirWatcher};
use super::{enroll, host_identity, payload, transport};
use crate::config::Config;
use crate::now_ms;
use crate::report::{ScanReport, Section};
use crate::scan::{self, Progress, ScanOptions, ScanState};
use crate::spool::Spool;
use crate::state_dir::StateDir;
use crate::update::switch;

/// How the daemon ended (when no error stopped it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Shut down as asked, or `--once` is done.
    Stopped,
    /// It must be started again: the link names another binary now, or the release it runs
    /// missed its health deadline (exit with [`switch::EXIT_RESTART`]).
    Restart,
}

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
    Sent(#[from] SentStateError),
    /// The host identity cannot be read.
    #[error(transparent)]
    HostIdentity(#[from] host_identity::HostIdentityError),
    /// The credentials on disk cannot be read or do not hold together.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// Enrollment failed (only fatal with `--once`).
    #[error(transparent)]
    Enroll(#[from] enroll::EnrollError),
    /// No channel to the collector (only fatal with `--once`).
    #[error(transparent)]
    Channel(#[from] ChannelError),
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

/// Quiet time that ends a burst of file events (a model being copied writes for a while).
const WATCH_QUIET: Duration = Duration::from_millis(500);

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// One full collection, sent and acknowledged, then exit.
    pub once: bool,
    /// The configuration file, loaded again on SIGHUP (no reload when `None`).
    pub config_path: Option<PathBuf>,
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

/// The daemon's open stores and what it knows between cycles.
struct Daemon {
    /// The validated configuration.
    config: Config,
    /// The state directory, for the credentials.
    state: StateDir,
    /// Batches not yet acknowledged.
    spool: Spool,
    /// What was last spooled.
    sent: SentState,
    /// This host's identity, sent at enrollment and with every batch's host facts.
    identity: v1::HostIdentity,
    /// The decisions.
    schedule: Schedule,
    /// One process table and one open scan cache for every scan.
    scans: Arc<Mutex<ScanState>>,
    /// The health written to `status.json` after every step.
    status: AgentStatus,
    /// The switch to this binary waiting for its first acknowledged send, if it was switched to.
    awaiting: Option<switch::Pending>,
    /// When the release channel is next checked (step 7).
    next_update_check: Instant,
}

impl Daemon {
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

    /// Spools the report: for a full inventory a snapshot when one is due, else the delta
    /// within `scope`.
    fn spool_report(&mut self, report: &ScanReport, scope: &[AssetKind], full: bool) -> Result<(), DaemonError> {
        let assets = payload::assets(report);
        let host = payload::host_facts(report, self.identity.clone());
        let snapshot_due =
            full && self.schedule.snapshot_due(self.sent.needs_snapshot()? || self.spool.needs_snapshot());
        if snapshot_due {
            let mut appended = 0u64;
            let snapshot_id = u64::try_from(now_ms()).unwrap_or(1).max(1);
            self.sent.begin()?;
            for b in batches(Contents::Snapshot { assets: &assets, snapshot_id }, Some(&host), now_ms(), self.limits())
            {
                self.spool.append(b.into_record())?;
                appended += 1;
            }
            self.sent.replace_all(&assets)?;
            tracing::info!(assets = assets.len(), batches = appended, "snapshot spooled");
        } else {
            let delta = self.sent.delta(&assets, scope)?;
            self.spool_delta(&delta, Some(&host))?;
        }
        if full {
            self.schedule.spooled(snapshot_due);
        }
        Ok(())
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

    /// Writes the status, with the spool's level now; a failure is logged, never fatal.
    fn save_status(&mut self) {
        let spool = self.spool.stats();
        self.status.spool_records = spool.records;
        self.status.spool_bytes = spool.bytes;
        self.status.spool_max_bytes = self.config.spool.max_bytes.bytes();
        self.status.updated_at_ms = now_ms();
        if let Err(e) = self.status.write(&self.state.status()) {
            crate::log_once!(warn, "daemon.status", "", &e.to_string(), error = %e, "cannot write the status file");
        }
    }

    /// Loads the configuration at `path` again (SIGHUP) and applies it (module docs, step 6).
    fn reload(&mut self, path: &std::path::Path) {
        let new = match Config::load_validated(path) {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "configuration reload refused; running on the previous one");
                self.status.reload_error = Some(status::error_text(&e));
                return;
            }
        };
        let (config, pending) = self.config.reloaded(new);
        for key in &pending {
            tracing::warn!(key, "changed in the configuration file; takes effect at the next start");
        }
        self.status.restart_pending = pending.iter().map(|k| k.to_string()).collect();
        self.status.reload_error = None;
        self.status.reloads = self.status.reloads.saturating_add(1);
        let changed = config != self.config;
        self.config = config;
        self.schedule.reconfigured(Timing::of(&self.config), Instant::now());
        tracing::info!(path = %path.display(), changed, "configuration reloaded; full inventory now");
    }

    /// Step 7: checks the release channel when due, staging what this agent should take and
    /// switching to it; true when the daemon must end so that the new binary starts.
    async fn check_update(&mut self, enrolled: &Enrolled, config_path: Option<&std::path::Path>) -> bool {
        let now = Instant::now();
        if !self.config.update.enabled || now < self.next_update_check || self.awaiting.is_some() {
            return false;
        }
        self.next_update_check = now + self.config.update.check_interval;
        let Some(config_path) = config_path else { return false };
        self.status.update_checked_at_ms = Some(now_ms());
        self.status.update_paused = None;
        let outcome = crate::update::check_and_stage(&self.config, config_path, &self.state, enrolled).await;
        let mut restart = false;
        match outcome {
            Ok(outcome) => {
                self.status.update_error = None;
                match outcome {
                    crate::update::CheckOutcome::Staged { version, .. } => {
                        tracing::info!(version = %version, "release staged");
                        self.status.update_staged = Some(version.clone());
                        restart = self.switch_to(&version);
                    }
                    crate::update::CheckOutcome::Paused { reason } => self.status.update_paused = Some(reason),
                    other => tracing::debug!(outcome = ?other, "release channel checked"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "release channel check failed; the agent runs on unchanged");
                self.status.update_error = Some(status::error_text(&e));
            }
        }
        self.note_update_state();
        restart
    }

    /// Points the service's link at the staged `version`; true when it did (restart now).
    fn switch_to(&mut self, version: &str) -> bool {
        let deadline = i64::try_from(self.config.update.health_deadline.as_millis()).unwrap_or(i64::MAX);
        match switch::switch(&self.state, version, crate::version(), deadline) {
            Ok(switch::Switched::Restart) => {
                self.status.update_staged = None;
                true
            }
            Ok(switch::Switched::NoLink) => {
                tracing::info!(
                    version,
                    link = %switch::link(&self.state).display(),
                    "release staged; no service link to switch (started by hand?)"
                );
                false
            }
            Err(e) => {
                tracing::warn!(version, error = %e, "cannot switch to the staged release; the agent runs on unchanged");
                self.status.update_error = Some(status::error_text(&e));
                false
            }
        }
    }

    /// Step 8: the first acknowledged send of a binary that was switched to confirms it.
    fn confirm_update(&mut self) {
        if self.awaiting.is_none() {
            return;
        }
        match switch::confirm(&self.state, crate::version()) {
            Ok(_) => self.awaiting = None,
            Err(e) => tracing::warn!(error = %e, "cannot record the update as healthy"),
        }
        self.note_update_state();
    }

    /// The update state, as the collector is told, into the status.
    fn note_update_state(&mut self) {
        let report = crate::update::UpdateState::load(&self.state).report(crate::version());
        let some = |s: String| (!s.is_empty()).then_some(s);
        self.status.update_state = Some(report.state);
        self.status.update_version = some(report.version);
        self.status.update_detail = some(report.detail);
    }

    /// A full inventory at `started`: scanned, spooled, and the watcher pointed at the model
    /// directories it found.
    async fn full(&mut self, started: Instant, watcher: Option<&mut DirWatcher>) -> Result<(), DaemonError> {
        let report = self.collect(self.config.scan.sections.clone(), None).await?;
        self.status.last_inventory = Some(InventoryStatus {
            finished_at_ms: now_ms(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            models: report.models.len() as u64,
            errors: report.errors.len() as u64,
        });
        let scope: Vec<AssetKind> = self.config.scan.sections.iter().filter_map(|s| s.asset_kind()).collect();
        self.spool_report(&report, &scope, true)?;
        self.schedule.full_done(started);
        if let Some(w) = watcher {
            let budget = usize::try_from(self.config.watch.max_watches).unwrap_or(usize::MAX).saturating_mul(2);
            let paths = report.models.iter().map(|m| m.path.as_str());
            w.set(&watch::targets(paths, &self.config.scan.roots, &crate::roots::homes(), budget));
            let counts = w.counts();
            let state = format!("{} {} {}", counts.watched, counts.polled, counts.unwatched);
            crate::log_once!(
                info,
                "daemon.watched",
                "",
                &state,
                watched = counts.watched,
                polled = counts.polled,
                unwatched = counts.unwatched,
                "model directories watched"
            );
        }
        Ok(())
    }

    /// Rescans the model directories `dirs` after a change was seen in them and spools what
    /// changed there (watch module docs). A directory that no longer exists is not scanned:
    /// its models are removals.
    async fn rescan(&mut self, dirs: &[PathBuf]) -> Result<(), DaemonError> {
        let existing: Vec<PathBuf> =
            dirs.iter().filter(|d| std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir())).cloned().collect();
        let assets = if existing.is_empty() {
            Vec::new()
        } else {
            payload::assets(&self.collect(vec![Section::Models], Some(existing)).await?)
        };
        let delta = self.sent.delta_under(&assets, AssetKind::Model, dirs)?;
        tracing::debug!(dirs = dirs.len(), models = assets.len(), "model directories rescanned");
        self.spool_delta(&delta, None)?;
        Ok(())
    }

    /// A runtimes refresh at `started`.
    async fn runtimes(&mut self, started: Instant) -> Result<(), DaemonError> {
        let report = self.collect(vec![Section::Runtimes], None).await?;
        self.spool_report(&report, &[AssetKind::Runtime], false)?;
        self.schedule.runtimes_done(started);
        Ok(())
    }

    /// The credentials on disk, else a new enrollment (`None` when it failed and will be
    /// tried again; fatal with `once`). A new enrollment is followed by a snapshot.
    async fn credentials(&mut self, once: bool) -> Result<Option<Enrolled>, DaemonError> {
        if let Some(enrolled) = credentials::load(&self.state)? {
            self.status.agent_id = Some(enrolled.agent_id.clone());
            return Ok(Some(enrolled));
        }
        match enroll::enroll(&self.config, &self.state, self.identity.clone()).await {
            Ok(enrolled) => {
                self.schedule.enrolled();
                self.status.agent_id = Some(enrolled.agent_id.clone());
                self.status.enrollment_error = None;
                Ok(Some(enrolled))
            }
            Err(e) if once => Err(e.into()),
            Err(e) => {
                tracing::warn!(error = %e, "enrollment failed; retrying");
                self.status.enrollment_error = Some(status::error_text(&e));
                self.save_status();
                Ok(None)
            }
        }
    }

    /// Renews `enrolled`'s certificate when it is due or `asked` (the collector asked: a CA
    /// rotation); keeps the old one when renewal fails.
    async fn renew_if_due(&self, enrolled: Enrolled, asked: bool) -> Enrolled {
        if !asked && !enroll::needs_renewal(&enrolled, SystemTime::now()) {
            return enrolled;
        }
        match enroll::renew(&self.config, &self.state, &enrolled).await {
            Ok(renewed) => renewed,
            Err(err) => {
                tracing::warn!(agent_id = %enrolled.agent_id, not_after = enrolled.not_after, error = %err, "certificate renewal failed; retrying next cycle");
                enrolled
            }
        }
    }

    /// Sends the spool; returns what the collector asked for.
    async fn send(&mut self, enrolled: &Enrolled) -> Result<transport::DrainOutcome, DaemonError> {
        let tls = channel::with_client_certificate(&self.config, enrolled);
        let mut client = transport::client(channel::connect(&self.config, tls).await?);
        let outcome = transport::drain(&mut client, &self.spool, crate::version()).await?;
        if outcome.sent > 0 || outcome.acked > 0 {
            tracing::info!(sent = outcome.sent, acked = outcome.acked, "spool drained");
        } else {
            tracing::debug!("spool drained: nothing to send");
        }
        if let Some(reason) = &outcome.snapshot_requested {
            tracing::info!(reason = %reason, "snapshot requested");
        }
        Ok(outcome)
    }
}

/// Runs the agent until `shutdown` (or once).
pub async fn run(
    config: Config,
    opts: RunOptions,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Ended, DaemonError> {
    let state = StateDir::open(&config.state_dir)
        .map_err(|source| DaemonError::StateDir { path: config.state_dir.display().to_string(), source })?;
    let identity = host_identity::collect(&state, &config.identity)?;
    let spool = Spool::open(&state.spool(), config.spool.max_bytes.bytes())?;
    let sent = SentState::open(&state.sent())?;
    let schedule = Schedule::new(Timing::of(&config), opts.once, Instant::now());
    let watching = config.watch.enabled && !opts.once && config.scan.sections.contains(&Section::Models);
    let mut watcher = watching.then(|| DirWatcher::new(&config.watch, vec![state.root().to_path_buf()]));
    let status = AgentStatus {
        version: crate::version().to_string(),
        pid: std::process::id(),
        pid_start_ticks: status::process_start_ticks(std::process::id()).unwrap_or(0),
        started_at_ms: now_ms(),
        state: "running".into(),
        config_path: opts.config_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
        ..AgentStatus::default()
    };
    let mut daemon = Daemon {
        config,
        state,
        spool,
        sent,
        identity,
        schedule,
        scans: Arc::new(Mutex::new(ScanState::default())),
        status,
        next_update_check: Instant::now(),
        awaiting: None,
    };
    daemon.awaiting = switch::pending_for(&daemon.state, crate::version());
    if let Some(p) = &daemon.awaiting {
        tracing::info!(version = %p.version, from = %p.from_version, starts = p.starts, "switched to this release; waiting for its first acknowledged send");
    }
    if daemon.config.update.enabled {
        daemon.note_update_state();
    }
    daemon.save_status();
    let mut hangup = match &opts.config_path {
        Some(_) => match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; the configuration is read at start only");
                None
            }
        },
        None => None,
    };
    let result = cycles(&mut daemon, &opts, watcher.as_mut(), hangup.as_mut(), shutdown).await;
    daemon.status.state = "stopped".into();
    daemon.save_status();
    result
}

/// The daemon's cycles (module docs), until `shutdown` or the end of `--once`.
async fn cycles(
    daemon: &mut Daemon,
    opts: &RunOptions,
    mut watcher: Option<&mut DirWatcher>,
    mut hangup: Option<&mut tokio::signal::unix::Signal>,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Ended, DaemonError> {
    tokio::pin!(shutdown);

    let mut enrolled = None;
    loop {
        if let Some(p) = daemon.awaiting.as_ref().filter(|p| now_ms() > p.deadline_ms) {
            tracing::error!(version = %p.version, "no acknowledged send by the health deadline; restarting so that the guard rolls back");
            return Ok(Ended::Restart);
        }
        if enrolled.is_none() {
            enrolled = daemon.credentials(opts.once).await?;
        }
        let now = Instant::now();
        let collected = match daemon.schedule.collection(now) {
            Collect::Full => daemon.full(now, watcher.as_deref_mut()).await.map(|()| true)?,
            Collect::Rescan(dirs) => daemon.rescan(&dirs).await.map(|()| true)?,
            Collect::Runtimes => daemon.runtimes(now).await.map(|()| true)?,
            Collect::Nothing => false,
        };
        if collected {
            daemon.status.last_collection_at_ms = Some(now_ms());
        }
        if let Some(e) = enrolled.take() {
            let mut e = daemon.renew_if_due(e, false).await;
            match daemon.send(&e).await {
                Ok(outcome) => {
                    daemon.schedule.sent(outcome.snapshot_requested.is_some());
                    daemon.status.last_send_ok_at_ms = Some(now_ms());
                    daemon.status.failed_sends = 0;
                    daemon.status.last_send_error = None;
                    if outcome.renewal_requested.is_some() {
                        e = daemon.renew_if_due(e, true).await;
                    }
                    daemon.confirm_update();
                    if !opts.once && daemon.check_update(&e, opts.config_path.as_deref()).await {
                        daemon.save_status();
                        return Ok(Ended::Restart);
                    }
                }
                Err(DaemonError::Transport(transport::TransportError::RetryAfter(after))) => {
                    tracing::info!(
                        retry_ms = u64::try_from(after.as_millis()).unwrap_or(0),
                        "sending again after the collector's rate limit"
                    );
                    daemon.schedule.retry_after(Instant::now(), after);
                }
                Err(err) if opts.once => return Err(err),
                Err(err) => {
                    let retry = daemon.schedule.send_failed(Instant::now());
                    let attempt = daemon.schedule.failed_sends();
                    daemon.status.failed_sends = attempt;
                    daemon.status.last_send_error = Some(status::error_text(&err));
                    tracing::warn!(error = %err, attempt, retry_ms = u64::try_from(retry.as_millis()).unwrap_or(0), "send failed");
                }
            }
            enrolled = Some(e);
        }
        daemon.save_status();
        let wait = match daemon.schedule.after_send(Instant::now()) {
            After::Done => return Ok(Ended::Stopped),
            After::Again => continue,
            After::Wait(wait) => wait,
        };
        // A release on probation wakes up at its deadline.
        let wait = match &daemon.awaiting {
            Some(p) => wait.min(Duration::from_millis(u64::try_from(p.deadline_ms - now_ms()).unwrap_or(0))),
            None => wait,
        };
        let changes = tokio::select! {
            _ = &mut shutdown => return Ok(Ended::Stopped),
            _ = tokio::time::sleep(wait) => None,
            Some(()) = async {
                match hangup.as_deref_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Some(path) = &opts.config_path {
                    daemon.reload(path);
                    daemon.save_status();
                }
                None
            }
            changes = async {
                match watcher.as_mut() {
                    Some(w) => w.changes(WATCH_QUIET).await,
                    None => std::future::pending().await,
                }
            } => Some(changes),
        };
        if let (Some(changes), Some(w)) = (changes, watcher.as_deref_mut()) {
            if changes.overflow {
                tracing::info!("file events were lost; running a full inventory");
                daemon.schedule.events_lost(Instant::now());
            } else {
                w.forget_missing(&changes.paths);
                let dirs = watch::rescan_dirs(&changes.paths);
                for d in &dirs {
                    w.add(d);
                }
                tracing::debug!(paths = changes.paths.len(), dirs = dirs.len(), "model directories changed");
                daemon.schedule.dirs_changed(dirs);
            }
        }
    }
}
