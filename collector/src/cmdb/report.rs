//! The report of a push: per class, what the CMDB did with each CI, counted once however many
//! batches carried it ([`Tally`]), and the refusals.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// What happened to the CIs of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Created.
    pub inserted: u64,
    /// Changed.
    pub updated: u64,
    /// Already as sent.
    pub unchanged: u64,
    /// Refused (see the report's errors).
    pub failed: u64,
    /// Accepted by a target that does not say what it did with them (the webhook).
    pub delivered: u64,
    /// Of those sent, how many were sent retired.
    pub retired: u64,
}

/// One CI the CMDB refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// Its class.
    pub class: String,
    /// Its stable key.
    pub key: String,
    /// The CMDB's error code (`MISSING_DEPENDENCY`, `INVALID_INPUT_DATA`, …).
    pub error: String,
    /// The CMDB's message (cut to 300 characters).
    pub message: String,
}

/// What one push did: printed by `push`, logged by the schedule, kept for the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    /// `servicenow` or `webhook`.
    pub target: String,
    /// Identified only (ServiceNow's query endpoint): nothing was written.
    pub dry_run: bool,
    /// When it started (ms).
    pub started_at_ms: i64,
    /// When it ended (ms).
    pub finished_at_ms: i64,
    /// Every request answered and no CI refused.
    pub ok: bool,
    /// Why the push stopped, when it did (an HTTP error, the credentials, the store).
    pub error: Option<String>,
    /// Per class (ServiceNow) or record type (webhook).
    pub classes: BTreeMap<String, ClassCounts>,
    /// The first [`PushReport::MAX_ERRORS`] refused CIs.
    pub errors: Vec<ItemError>,
    /// How many CIs were refused (each once).
    pub errors_total: u64,
    /// Requests sent (retries included).
    pub requests: u64,
    /// 429 answers met.
    pub throttled: u64,
    /// Time spent waiting them out (ms).
    pub waited_ms: u64,
}

impl PushReport {
    /// Refused CIs kept in a report.
    pub const MAX_ERRORS: usize = 100;

    /// A report of a push to `target` starting now.
    pub fn start(target: &str, dry_run: bool) -> Self {
        Self { target: target.to_string(), dry_run, started_at_ms: crate::now_ms(), ..Self::default() }
    }

    /// The report as the operator reads it: one line per class, then the refusals.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let verb = if self.dry_run { "dry run (nothing written)" } else { "push" };
        let _ = writeln!(
            out,
            "{} {verb}: {} in {} ms, {} requests, {} throttled ({} ms waited)",
            self.target,
            if self.ok { "ok" } else { "failed" },
            self.finished_at_ms.saturating_sub(self.started_at_ms),
            self.requests,
            self.throttled,
            self.waited_ms
        );
        for (class, c) in &self.classes {
            let _ = writeln!(
                out,
                "  {class}: {} inserted, {} updated, {} unchanged, {} delivered, {} failed ({} sent retired)",
                c.inserted, c.updated, c.unchanged, c.delivered, c.failed, c.retired
            );
        }
        for e in &self.errors {
            let _ = writeln!(
                out,
                "  refused {} {}: {}: {}",
                e.class,
                crate::untrusted::text(&e.key),
                crate::untrusted::text(&e.error),
                crate::untrusted::text(&e.message)
            );
        }
        if self.errors_total > self.errors.len() as u64 {
            let _ = writeln!(out, "  … {} refusals in all", self.errors_total);
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  error: {}", crate::untrusted::text(e));
        }
        out
    }
}

/// What became of one CI in a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created.
    Inserted,
    /// Changed.
    Updated,
    /// Already as sent.
    Unchanged,
    /// Refused.
    Failed,
    /// Accepted, with no word on what became of it (the webhook).
    Delivered,
}

/// Counts each CI once however many batches carried it: its first outcome, unless a later
/// one failed.
#[derive(Debug, Default)]
pub struct Tally {
    seen: HashMap<(String, String), (Outcome, bool)>,
    errors: Vec<ItemError>,
    errors_total: u64,
}

impl Tally {
    /// Records what the CMDB did with the CI `key` of `class`; `retired` when it was sent so.
    pub fn record(&mut self, class: &str, key: &str, outcome: Outcome, retired: bool) {
        let slot = self.seen.entry((class.to_string(), key.to_string())).or_insert((outcome, retired));
        if outcome == Outcome::Failed {
            slot.0 = Outcome::Failed;
        }
    }

    /// Records a refusal (and the CI's failure); a CI refused again in a later batch (a host
    /// sent with each of its batches) is kept and counted once.
    pub fn refuse(&mut self, error: ItemError, retired: bool) {
        let id = (error.class.clone(), error.key.clone());
        if self.seen.get(&id).is_some_and(|(outcome, _)| *outcome == Outcome::Failed) {
            return;
        }
        self.record(&id.0, &id.1, Outcome::Failed, retired);
        self.errors_total += 1;
        if self.errors.len() < PushReport::MAX_ERRORS {
            self.errors.push(error);
        }
    }

    /// Writes the counts into `report`.
    pub fn finish(self, report: &mut PushReport) {
        for ((class, _), (outcome, retired)) in self.seen {
            let c = report.classes.entry(class).or_default();
            match outcome {
                Outcome::Inserted => c.inserted += 1,
                Outcome::Updated => c.updated += 1,
                Outcome::Unchanged => c.unchanged += 1,
                Outcome::Failed => c.failed += 1,
                Outcome::Delivered => c.delivered += 1,
            }
            c.retired += u64::from(retired);
        }
        report.errors_total += self.errors_total;
        report.errors.extend(self.errors);
    }
}
