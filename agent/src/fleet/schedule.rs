//! What the daemon does next, decided from the time and the events alone.
//!
//! [`Schedule`] holds every decision of `aiscout-agent run` and no I/O: the daemon
//! ([`super::daemon`]) asks it what to do, does it, and tells it what happened. Every method
//! takes the time as an argument, so tests drive it with a made-up clock, and its randomness
//! (jitter, backoff) comes from one replaceable source.
//!
//! # A cycle
//! 1. [`Schedule::collection`] picks at most one collection, in order: a full inventory when one
//!    is due or the collector asked for a snapshot ([`Collect::Full`]); else a rescan of the
//!    directories that file events named ([`Collect::Rescan`]); else a refresh of the runtimes
//!    section when it is due and configured ([`Collect::Runtimes`]).
//! 2. The daemon runs it and reports it ([`Schedule::full_done`], [`Schedule::runtimes_done`]).
//!    For a full inventory, [`Schedule::snapshot_due`] says whether it is spooled as a snapshot
//!    (the collector asked, the stores lost state, or every `schedule.snapshot_every` full
//!    inventories) or as a delta; [`Schedule::spooled`] records which.
//! 3. The daemon sends the spool, when it is enrolled, and reports the outcome:
//!    [`Schedule::sent`], [`Schedule::send_failed`] or [`Schedule::retry_after`].
//! 4. [`Schedule::after_send`] says what follows: [`After::Done`] (`--once`, and everything was
//!    acknowledged with no snapshot asked for), [`After::Again`] (the collector asked for a
//!    snapshot: collect it now), or [`After::Wait`] until the first of the next full inventory,
//!    the next runtimes refresh and the retry of a failed send.
//! 5. A new enrollment ([`Schedule::enrolled`]) asks for a snapshot like the collector does: a
//!    new agent id starts from nothing at the collector, whatever the sent state remembers.
//! 6. While waiting, file events end the wait: [`Schedule::dirs_changed`] queues directories
//!    for the next cycle's rescan, [`Schedule::events_lost`] makes a full inventory due now.
//!
//! # Timing
//! 1. A full inventory runs at start, then `schedule.full_interval` after the previous one plus
//!    a random delay in `[0, jitter]` (`schedule.jitter` of the interval), so a fleet does not
//!    scan in step.
//! 2. A runtimes refresh runs `schedule.runtimes_interval` after the last full inventory or
//!    runtimes refresh.
//! 3. After the n-th failed send in a row the next attempt waits a random time in
//!    `[0, min(backoff_max, backoff_initial * 2^n)]` (full jitter); a successful send resets n.
//! 4. A collector's retry-after is waited as given and leaves n as it is: the collector is up.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::report::Section;

/// Largest exponent of the backoff (`2^20` times the initial wait is beyond any maximum).
const MAX_BACKOFF_EXPONENT: u32 = 20;

/// What to collect in this cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Collect {
    /// Every configured section.
    Full,
    /// The model directories file events named, and only those.
    Rescan(Vec<PathBuf>),
    /// The runtimes section alone.
    Runtimes,
    /// Nothing is due.
    Nothing,
}

/// What follows a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// `--once` is complete: stop.
    Done,
    /// Start the next cycle now.
    Again,
    /// Wait this long (or until a file event or shutdown), then start the next cycle.
    Wait(Duration),
}

/// The timing the configuration sets (module docs, *Timing*).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    /// Time between full inventories.
    pub full_interval: Duration,
    /// Largest random delay added to each full inventory.
    pub jitter: Duration,
    /// Time between runtimes refreshes.
    pub runtimes_interval: Duration,
    /// Whether the runtimes section is collected at all.
    pub runtimes: bool,
    /// Every Nth full inventory is spooled as a snapshot.
    pub snapshot_every: u32,
    /// Backoff after the first failed send, before doubling.
    pub backoff_initial: Duration,
    /// Longest backoff.
    pub backoff_max: Duration,
}

impl Timing {
    /// The timing of `config`.
    pub fn of(config: &Config) -> Self {
        let schedule = &config.schedule;
        Self {
            full_interval: schedule.full_interval,
            jitter: schedule.jitter.max_delay(schedule.full_interval),
            runtimes_interval: schedule.runtimes_interval,
            runtimes: config.scan.sections.contains(&Section::Runtimes),
            snapshot_every: schedule.snapshot_every,
            backoff_initial: config.transport.backoff_initial,
            backoff_max: config.transport.backoff_max,
        }
    }
}

/// The daemon's decisions and what they depend on.
#[derive(Debug)]
pub struct Schedule {
    /// The configured timing.
    timing: Timing,
    /// `--once`: stop after the first cycle whose send was fully acknowledged.
    once: bool,
    /// When the next full inventory is due.
    next_full: Instant,
    /// When the next runtimes refresh is due.
    next_runtimes: Instant,
    /// Directories file events named since the last collection, for the next rescan.
    changed_dirs: Vec<PathBuf>,
    /// Failed sends in a row (the backoff's exponent).
    failed_sends: u32,
    /// When to send again after a failure or a retry-after, for the current wait only.
    retry_at: Option<Instant>,
    /// The last send ended with everything acknowledged.
    acknowledged: bool,
    /// The collector asked for a snapshot that has not been spooled yet.
    snapshot_requested: bool,
    /// Full inventories spooled as deltas since the last snapshot.
    fulls_since_snapshot: u32,
    /// A uniform random fraction in `[0, 1]` per call (jitter, backoff).
    random: fn() -> f64,
}

impl Schedule {
    /// The schedule of a daemon started at `now`: a full inventory first.
    pub fn new(timing: Timing, once: bool, now: Instant) -> Self {
        Self::with_random(timing, once, now, random_fraction)
    }

    /// [`Schedule::new`] with `random` as the source of random fractions (tests).
    pub fn with_random(timing: Timing, once: bool, now: Instant, random: fn() -> f64) -> Self {
        Self {
            timing,
            once,
            next_full: now,
            next_runtimes: now + timing.runtimes_interval,
            changed_dirs: Vec::new(),
            failed_sends: 0,
            retry_at: None,
            acknowledged: false,
            snapshot_requested: false,
            fulls_since_snapshot: 0,
            random,
        }
    }

    /// What to collect at `now` (module docs, *A cycle*, step 1). A rescan hands over the
    /// queued directories.
    pub fn collection(&mut self, now: Instant) -> Collect {
        if now >= self.next_full || self.snapshot_requested {
            Collect::Full
        } else if !self.changed_dirs.is_empty() {
            Collect::Rescan(std::mem::take(&mut self.changed_dirs))
        } else if self.timing.runtimes && now >= self.next_runtimes {
            Collect::Runtimes
        } else {
            Collect::Nothing
        }
    }

    /// A full inventory that started at `started` is done: the next one is due one interval
    /// and a random jitter later, the next runtimes refresh one runtimes interval later, and
    /// the queued directories are covered.
    pub fn full_done(&mut self, started: Instant) {
        let jitter = self.timing.jitter.mul_f64((self.random)().clamp(0.0, 1.0));
        self.next_full = started + self.timing.full_interval + jitter;
        self.next_runtimes = started + self.timing.runtimes_interval;
        self.changed_dirs.clear();
    }

    /// A runtimes refresh that started at `started` is done.
    pub fn runtimes_done(&mut self, started: Instant) {
        self.next_runtimes = started + self.timing.runtimes_interval;
    }

    /// Whether a full inventory is spooled as a snapshot, given whether the stores (sent state,
    /// spool) lost something and need one.
    pub fn snapshot_due(&self, stores_need_one: bool) -> bool {
        self.snapshot_requested || stores_need_one || self.fulls_since_snapshot + 1 >= self.timing.snapshot_every
    }

    /// A full inventory was spooled, as a snapshot or as a delta.
    pub fn spooled(&mut self, snapshot: bool) {
        if snapshot {
            self.fulls_since_snapshot = 0;
            self.snapshot_requested = false;
        } else {
            self.fulls_since_snapshot = self.fulls_since_snapshot.saturating_add(1);
        }
    }

    /// The spool was sent and everything acknowledged; the collector may have asked for a
    /// snapshot.
    pub fn sent(&mut self, snapshot_requested: bool) {
        self.failed_sends = 0;
        self.retry_at = None;
        self.acknowledged = true;
        self.snapshot_requested |= snapshot_requested;
    }

    /// Sending failed at `now`: returns how long to wait before the next attempt (module docs,
    /// *Timing*, rule 3).
    pub fn send_failed(&mut self, now: Instant) -> Duration {
        self.failed_sends = self.failed_sends.saturating_add(1);
        self.acknowledged = false;
        let wait = self.backoff_cap(self.failed_sends).mul_f64((self.random)().clamp(0.0, 1.0));
        self.retry_at = Some(now + wait);
        wait
    }

    /// The collector's rate limit ended the send at `now`: send again `after` later (rule 4).
    pub fn retry_after(&mut self, now: Instant, after: Duration) {
        self.acknowledged = false;
        self.retry_at = Some(now + after);
    }

    /// Failed sends in a row.
    pub fn failed_sends(&self) -> u32 {
        self.failed_sends
    }

    /// The largest backoff after `failures` failed sends in a row.
    pub fn backoff_cap(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.min(MAX_BACKOFF_EXPONENT)).unwrap_or(u32::MAX);
        self.timing.backoff_initial.saturating_mul(factor).min(self.timing.backoff_max)
    }

    /// What follows the send at `now` (module docs, *A cycle*, step 4). The retry of a failed
    /// send bounds this wait only: a file event that ends it early leads to a send at once.
    pub fn after_send(&mut self, now: Instant) -> After {
        let retry_at = self.retry_at.take();
        if self.snapshot_requested {
            return After::Again;
        }
        if self.once && self.acknowledged {
            return After::Done;
        }
        let mut until = self.next_full.min(self.next_runtimes);
        if let Some(retry_at) = retry_at {
            until = until.min(retry_at);
        }
        After::Wait(until.saturating_duration_since(now))
    }

    /// The agent enrolled anew: the collector knows nothing of this agent id, whatever the sent
    /// state remembers of an earlier one, so the next full inventory is a snapshot, now.
    pub fn enrolled(&mut self) {
        self.snapshot_requested = true;
    }

    /// File events named `dirs` as changed: they are rescanned in the next cycle.
    pub fn dirs_changed(&mut self, dirs: Vec<PathBuf>) {
        self.changed_dirs = dirs;
    }

    /// The configuration was reloaded at `now` with `timing`: a full inventory now, under the
    /// new roots and sections, and the intervals from then on.
    pub fn reconfigured(&mut self, timing: Timing, now: Instant) {
        self.timing = timing;
        self.next_full = now;
        self.next_runtimes = now + timing.runtimes_interval;
    }

    /// File events were lost at `now`: only a full inventory can tell what changed.
    pub fn events_lost(&mut self, now: Instant) {
        self.next_full = now;
    }
}

/// A uniform random fraction in `[0, 1]` from the system's generator (0 if it has none).
fn random_fraction() -> f64 {
    let mut bytes = [0u8; 8];
    match getrandom::fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) as f64 / u64::MAX as f64,
        Err(_) => 0.0,
    }
}

#[cfg(test)]
#[path = "tests/schedule.rs"]
mod tests;
