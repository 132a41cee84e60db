//! Counters shared by every simulated agent, and the final report built from them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::Serialize;

/// Fleet-wide counters, updated by every agent task.
#[derive(Debug, Default)]
pub struct Stats {
    /// Batches handed to the transport (replays included).
    pub batches_sent: AtomicU64,
    /// Batches acknowledged (replays not included).
    pub batches_acked: AtomicU64,
    /// Upserts in acknowledged batches: sightings the store confirmed.
    pub sightings_acked: AtomicU64,
    /// Removals in acknowledged batches.
    pub removals_acked: AtomicU64,
    /// Encoded bytes of the batches sent, before gzip.
    pub bytes_sent: AtomicU64,
    /// Streams opened again after the first.
    pub reconnects: AtomicU64,
    /// Already acknowledged batches sent again after a reconnect, and acknowledged again.
    pub replays: AtomicU64,
    /// Unacknowledged deltas sent again after a stream broke.
    pub resent: AtomicU64,
    /// Full snapshots sent (first contact, requests, repairs after a broken snapshot).
    pub snapshots: AtomicU64,
    /// Scheduled snapshots (`--snapshot-every`) put off because the last was unacknowledged.
    pub snapshots_deferred: AtomicU64,
    /// `SnapshotRequest`s received.
    pub snapshot_requests: AtomicU64,
    /// `RenewCertificate`s received (ignored).
    pub renew_requests: AtomicU64,
    /// Errors by kind: `connect`, `status:<code>`, `retry_after`, `closed`, `enroll`.
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    /// Adds one to `counter`.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts an error of `kind`.
    pub fn error(&self, kind: &str) {
        let mut errors = self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *errors.entry(kind.to_owned()).or_default() += 1;
    }

    /// The errors counted so far.
    pub fn errors(&self) -> BTreeMap<String, u64> {
        self.errors.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// Batch latencies, send to acknowledgement, in milliseconds.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Latency {
    /// Batches measured.
    pub count: usize,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
}

impl Latency {
    /// The percentiles of `micros` (sorted here).
    pub fn of(mut micros: Vec<u32>) -> Self {
        micros.sort_unstable();
        let at = |q: f64| {
            let i = ((micros.len() as f64 - 1.0) * q).round() as usize;
            micros.get(i).map_or(0.0, |m| f64::from(*m) / 1000.0)
        };
        Self { count: micros.len(), p50_ms: at(0.5), p99_ms: at(0.99), max_ms: at(1.0) }
    }
}

/// What a run did and measured.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Report {
    /// Agents simulated.
    pub agents: u32,
    /// Of which enrolled by this run.
    pub enrolled: u32,
    /// Of which reused from the state file.
    pub reused: u32,
    /// Agents that could not enroll (not simulated).
    pub enroll_failed: u32,
    /// Seconds the enrollment took.
    pub enroll_s: f64,
    /// Seconds of the streaming phase, from its start until every agent finished.
    pub stream_s: f64,
    /// Seconds until every agent's first snapshot was acknowledged.
    pub initial_snapshot_s: f64,
    /// Sightings of the first snapshots per second of [`Report::initial_snapshot_s`].
    pub initial_snapshot_sightings_per_s: f64,
    /// Batches sent (replays included).
    pub batches_sent: u64,
    /// Batches acknowledged.
    pub batches_acked: u64,
    /// Upserts acknowledged.
    pub sightings_acked: u64,
    /// Removals acknowledged.
    pub removals_acked: u64,
    /// Upserts acknowledged per second of the streaming phase.
    pub sightings_per_s: f64,
    /// Encoded bytes of the batches sent, before gzip.
    pub bytes_sent: u64,
    /// Send-to-acknowledgement latency of batches.
    pub latency: Latency,
    /// Streams opened again.
    pub reconnects: u64,
    /// Acknowledged batches replayed and acknowledged again.
    pub replays: u64,
    /// Unacknowledged deltas resent after a broken stream.
    pub resent: u64,
    /// Full snapshots sent.
    pub snapshots: u64,
    /// Scheduled snapshots put off because the last was unacknowledged.
    pub snapshots_deferred: u64,
    /// Snapshot requests received.
    pub snapshot_requests: u64,
    /// Certificate renewal requests received (ignored).
    pub renew_requests: u64,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Agents that still had unacknowledged batches when the drain timed out.
    pub unflushed_agents: u32,
    /// The verification through the HTTP API, when `--api` was given.
    pub verification: Option<super::verify::Verification>,
}

impl Report {
    /// Copies the counters of `stats` in.
    pub fn take_counters(&mut self, stats: &Stats) {
        self.batches_sent = Stats::get(&stats.batches_sent);
        self.batches_acked = Stats::get(&stats.batches_acked);
        self.sightings_acked = Stats::get(&stats.sightings_acked);
        self.removals_acked = Stats::get(&stats.removals_acked);
        self.bytes_sent = Stats::get(&stats.bytes_sent);
        self.reconnects = Stats::get(&stats.reconnects);
        self.replays = Stats::get(&stats.replays);
        self.resent = Stats::get(&stats.resent);
        self.snapshots = Stats::get(&stats.snapshots);
        self.snapshots_deferred = Stats::get(&stats.snapshots_deferred);
        self.snapshot_requests = Stats::get(&stats.snapshot_requests);
        self.renew_requests = Stats::get(&stats.renew_requests);
        self.errors.extend(stats.errors());
    }

    /// Whether the run is a success: every agent enrolled and flushed, and verification (when
    /// run) found no difference.
    pub fn ok(&self) -> bool {
        self.enroll_failed == 0 && self.unflushed_agents == 0 && self.verification.as_ref().is_none_or(|v| v.ok)
    }

    /// The report as text, one fact a line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line(format!(
            "agents: {} ({} enrolled in {:.1} s, {} reused, {} failed to enroll)",
            self.agents, self.enrolled, self.enroll_s, self.reused, self.enroll_failed
        ));
        line(format!("streaming: {:.1} s", self.stream_s));
        line(format!(
            "initial snapshots: acknowledged within {:.1} s, {:.0} sightings/s",
            self.initial_snapshot_s, self.initial_snapshot_sightings_per_s
        ));
        line(format!(
            "batches: {} sent, {} acked; sightings acked: {} ({:.0}/s over the streaming phase); removals acked: {}",
            self.batches_sent, self.batches_acked, self.sightings_acked, self.sightings_per_s, self.removals_acked
        ));
        line(format!("bytes sent (before gzip): {}", aiscout_proto::human_bytes(self.bytes_sent)));
        line(format!(
            "batch latency (send to ack): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} batches",
            self.latency.p50_ms, self.latency.p99_ms, self.latency.max_ms, self.latency.count
        ));
        line(format!(
            "reconnects: {}, replays: {}, resent deltas: {}, snapshots: {} ({} deferred), snapshot requests: {}, \
             renew requests: {}",
            self.reconnects,
            self.replays,
            self.resent,
            self.snapshots,
            self.snapshots_deferred,
            self.snapshot_requests,
            self.renew_requests
        ));
        let errors: Vec<String> = self.errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
        line(format!("errors: {}", if errors.is_empty() { "none".to_owned() } else { errors.join(", ") }));
        if self.unflushed_agents > 0 {
            line(format!("unflushed agents: {}", self.unflushed_agents));
        }
        if let Some(v) = &self.verification {
            line(v.text());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_latencies() {
        let l = Latency::of((1..=100).map(|ms| ms * 1000).collect());
        assert_eq!((l.count, l.p50_ms, l.p99_ms, l.max_ms), (100, 51.0, 99.0, 100.0));
        assert_eq!(Latency::of(Vec::new()).count, 0);
    }
}
