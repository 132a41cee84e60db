//! What a store logs of an applied batch, the same for both backends (under this module's
//! target, whichever backend applied it).

use std::collections::BTreeMap;

use tracing::{debug, warn};

use super::types::{ApplyOutcome, RejectedEntry};
use crate::untrusted;

/// Logs what a batch did, fields first.
pub(crate) fn log_outcome(agent_id: &str, sequence: u64, outcome: &ApplyOutcome) {
    let summary = match outcome {
        ApplyOutcome::AlreadyApplied { last_sequence } => {
            debug!(agent_id, sequence, last_sequence, "batch already applied");
            return;
        }
        ApplyOutcome::Gap { expected, summary } => {
            warn!(agent_id, sequence, expected, "sequence gap: batch applied, snapshot needed");
            summary
        }
        ApplyOutcome::Applied(summary) => summary,
    };
    if let Some(reason) = &summary.host_rejected {
        warn!(agent_id, sequence, reason = %untrusted::text(reason), "host facts not stored");
    }
    // One line per batch whatever the number of rejected entries: counts by reason, and the
    // first entry of each as an example.
    let mut by_reason: BTreeMap<&str, (u64, &RejectedEntry)> = BTreeMap::new();
    for rejected in &summary.rejected {
        by_reason.entry(rejected.reason.as_str()).or_insert((0, rejected)).0 += 1;
    }
    for (reason, (count, example)) in by_reason {
        warn!(agent_id, sequence, count, reason = %untrusted::text(reason), kind = %example.kind,
            local_key = %untrusted::text(&example.local_key), "entries not stored");
    }
    debug!(agent_id, sequence, upserted = summary.upserted, removed = summary.removed,
        snapshot = ?summary.snapshot, "batch applied");
}
