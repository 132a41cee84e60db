//! The collector's own metrics, served as Prometheus text at `GET /metrics` on `api_listen`
//! (docs/scale.md, *Metrics*).
//!
//! Each collector counts what it did itself; Prometheus sums the replicas. The families:
//! - `aiscout_batches_total{outcome}`: batches answered (`applied`, `already_applied`, `gap`,
//!   `error`);
//! - `aiscout_sightings_total`, `aiscout_removals_total`: upserts stored and removals applied;
//! - `aiscout_rejections_total{reason}`: what was refused: `rate_limit`, `oversized` (a message
//!   over the size limit), `invalid_batch`, `agent_refused` (unknown, revoked, another
//!   certificate), `entry` (one upsert without an identity or over a bound);
//! - `aiscout_store_errors_total{kind}`: store calls that failed (`unavailable`: the database
//!   could not be reached, the agents were told to retry; `busy`; `backend`);
//! - `aiscout_batch_duration_seconds`: from a batch's arrival to its answer, the store's
//!   transaction included;
//! - `aiscout_connected_agents`: inventory streams open now.
//!
//! The endpoint needs an API token (any scope): counts of a fleet are not public. Prometheus
//! sends it with `authorization: {credentials_file: …}`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::store::{ApplyOutcome, StoreError};

/// One label: what the count is of.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `applied`, `already_applied`, `gap`, `error`.
    pub outcome: &'static str,
}

/// One label: why something was refused.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// `rate_limit`, `oversized`, `invalid_batch`, `agent_refused`, `entry`.
    pub reason: &'static str,
}

/// One label: the class of a store failure.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// `unavailable`, `busy`, `backend`.
    pub kind: &'static str,
}

/// The collector's metrics (module docs).
#[derive(Debug)]
pub struct Metrics {
    /// The families, for the exposition.
    registry: Registry,
    /// Batches answered, by outcome.
    pub batches: Family<Outcome, Counter>,
    /// Upserts stored.
    pub sightings: Counter,
    /// Removals applied.
    pub removals: Counter,
    /// What was refused, by reason.
    pub rejections: Family<Reason, Counter>,
    /// Store calls that failed, by class.
    pub store_errors: Family<Kind, Counter>,
    /// Seconds from a batch's arrival to its answer.
    pub batch_duration: Histogram,
    /// Inventory streams open now.
    pub connected_agents: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("aiscout");
        let batches = Family::<Outcome, Counter>::default();
        let sightings = Counter::default();
        let removals = Counter::default();
        let rejections = Family::<Reason, Counter>::default();
        let store_errors = Family::<Kind, Counter>::default();
        // 1 ms to 16 s, doubling: a batch on a loaded PostgreSQL takes tens of milliseconds.
        let batch_duration = Histogram::new([
            0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384,
        ]);
        let connected_agents = Gauge::default();
        registry.register("batches", "Batches answered, by outcome", batches.clone());
        registry.register("sightings", "Upserts stored", sightings.clone());
        registry.register("removals", "Removals applied", removals.clone());
        registry.register("rejections", "Messages, batches and entries refused, by reason", rejections.clone());
        registry.register("store_errors", "Store calls that failed, by class", store_errors.clone());
        registry.register(
            "batch_duration_seconds",
            "Seconds from a batch's arrival to its answer",
            batch_duration.clone(),
        );
        registry.register("connected_agents", "Inventory streams open now", connected_agents.clone());
        Self { registry, batches, sightings, removals, rejections, store_errors, batch_duration, connected_agents }
    }
}

impl Metrics {
    /// Counts a batch's outcome and what it stored.
    pub fn batch_applied(&self, outcome: &ApplyOutcome) {
        let (name, summary) = match outcome {
            ApplyOutcome::Applied(summary) => ("applied", Some(summary)),
            ApplyOutcome::Gap { summary, .. } => ("gap", Some(summary)),
            ApplyOutcome::AlreadyApplied { .. } => ("already_applied", None),
        };
        self.batches.get_or_create(&Outcome { outcome: name }).inc();
        if let Some(s) = summary {
            self.sightings.inc_by(s.upserted);
            self.removals.inc_by(s.removed);
            let rejected = u64::try_from(s.rejected.len()).unwrap_or(u64::MAX);
            if rejected > 0 {
                self.rejections.get_or_create(&Reason { reason: "entry" }).inc_by(rejected);
            }
        }
    }

    /// Counts a batch the store refused or failed.
    pub fn batch_failed(&self, e: &StoreError) {
        self.batches.get_or_create(&Outcome { outcome: "error" }).inc();
        let reason = match e {
            StoreError::UnknownAgent { .. } | StoreError::AgentRevoked { .. } => Some("agent_refused"),
            StoreError::InvalidBatch { .. } => Some("invalid_batch"),
            _ => None,
        };
        match reason {
            Some(reason) => self.rejected(reason),
            None => self.store_failed(e),
        }
    }

    /// Counts a refusal.
    pub fn rejected(&self, reason: &'static str) {
        self.rejections.get_or_create(&Reason { reason }).inc();
    }

    /// Counts a failed store call.
    pub fn store_failed(&self, e: &StoreError) {
        let kind = match e {
            StoreError::Unavailable { .. } => "unavailable",
            StoreError::Busy { .. } => "busy",
            _ => "backend",
        };
        self.store_errors.get_or_create(&Kind { kind }).inc();
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Counts an open inventory stream while it lives.
#[derive(Debug)]
pub struct StreamGuard(Arc<Metrics>);

impl StreamGuard {
    /// One more stream open.
    pub fn open(metrics: &Arc<Metrics>) -> Self {
        metrics.connected_agents.inc();
        Self(Arc::clone(metrics))
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.connected_agents.dec();
    }
}

/// `GET /metrics` (module docs); the caller adds the token check.
pub fn router<S: Clone + Send + Sync + 'static>(metrics: Arc<Metrics>) -> Router<S> {
    Router::new().route("/metrics", get(serve)).with_state(metrics)
}

async fn serve(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.render())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ApplySummary;

    #[test]
    fn outcomes_rejections_and_streams_are_counted_in_the_exposition() {
        let m = Arc::new(Metrics::default());
        let summary = ApplySummary { upserted: 7, removed: 2, ..ApplySummary::default() };
        m.batch_applied(&ApplyOutcome::Applied(summary));
        m.batch_applied(&ApplyOutcome::AlreadyApplied { last_sequence: 3 });
        m.batch_failed(&StoreError::UnknownAgent { agent_id: "x".into() });
        m.batch_failed(&StoreError::Unavailable { operation: "apply batch", source: "down".into() });
        m.rejected("rate_limit");
        m.batch_duration.observe(0.003);
        let guard = StreamGuard::open(&m);
        let text = m.render();
        for line in [
            "aiscout_batches_total{outcome=\"applied\"} 1",
            "aiscout_batches_total{outcome=\"already_applied\"} 1",
            "aiscout_batches_total{outcome=\"error\"} 2",
            "aiscout_sightings_total 7",
            "aiscout_removals_total 2",
            "aiscout_rejections_total{reason=\"agent_refused\"} 1",
            "aiscout_rejections_total{reason=\"rate_limit\"} 1",
            "aiscout_store_errors_total{kind=\"unavailable\"} 1",
            "aiscout_batch_duration_seconds_count 1",
            "aiscout_batch_duration_seconds_bucket{le=\"0.004\"} 1",
            "aiscout_connected_agents 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in:\n{text}");
        }
        drop(guard);
        assert!(m.render().lines().any(|l| l == "aiscout_connected_agents 0"));
    }
}
