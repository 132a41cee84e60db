//! `apply_batch`: the steps of the module docs' "Batches" section, in one transaction.

use rusqlite::{params, OptionalExtension, Transaction};
use tracing::{debug, warn};

use super::Res;
use crate::store::error::StoreError;
use crate::store::identity;
use crate::store::types::{
    ApplyOutcome, ApplySummary, BatchMode, IngestAsset, IngestBatch, RejectedEntry, SnapshotProgress,
};

/// The agent's row as a batch needs it.
struct AgentState {
    /// Last applied sequence.
    last_sequence: u64,
    /// Set when the agent is revoked.
    revoked: bool,
    /// The snapshot being received, if any.
    open_snapshot: Option<i64>,
    /// No gap hit the open snapshot so far.
    open_complete: bool,
}

/// The snapshot this batch's upserts are recorded under.
#[derive(Clone, Copy)]
struct OpenSnapshot {
    /// Its id.
    id: i64,
    /// Every part so far arrived without a gap.
    complete: bool,
}

pub(super) fn apply(tx: &Transaction<'_>, agent_id: &str, batch: &IngestBatch) -> Res<ApplyOutcome> {
    let invalid = |reason: &str| StoreError::InvalidBatch {
        agent_id: agent_id.to_owned(),
        sequence: batch.sequence,
        reason: reason.to_owned(),
    };
    let sequence = i64::try_from(batch.sequence).map_err(|_| invalid("sequence is beyond 2^63"))?;
    if sequence == 0 {
        return Err(invalid("sequence 0 (sequences start at 1)").into());
    }
    let state = agent_state(tx, agent_id)?;
    if state.revoked {
        return Err(StoreError::AgentRevoked { agent_id: agent_id.to_owned() }.into());
    }
    if batch.sequence <= state.last_sequence {
        return Ok(ApplyOutcome::AlreadyApplied { last_sequence: state.last_sequence });
    }
    let expected = state.last_sequence.saturating_add(1);
    let gap = batch.sequence > expected;

    let snapshot = match batch.mode {
        BatchMode::Delta => state.open_snapshot.map(|id| OpenSnapshot { id, complete: state.open_complete && !gap }),
        BatchMode::SnapshotPart { snapshot_id, first_part, .. } => {
            let id = i64::try_from(snapshot_id).map_err(|_| invalid("snapshot id is beyond 2^63"))?;
            if id == 0 {
                return Err(invalid("snapshot id 0").into());
            }
            if state.open_snapshot == Some(id) {
                Some(OpenSnapshot { id, complete: state.open_complete && !gap })
            } else {
                // A new snapshot abandons the open one; with a gap before it, its first parts
                // may be among the lost batches, unless this is its first part.
                tx.execute("DELETE FROM snapshot_keys WHERE agent_id = ?1", [agent_id])?;
                Some(OpenSnapshot { id, complete: !gap || first_part })
            }
        }
    };

    update_host(tx, agent_id, batch)?;
    let observed = batch.observed_at_ms;
    let mut summary = ApplySummary::default();
    for removal in &batch.removals {
        let removed = tx.execute(
            "UPDATE sightings SET removed_at_ms = ?4 \
             WHERE agent_id = ?1 AND kind = ?2 AND local_key = ?3 AND removed_at_ms IS NULL",
            params![agent_id, removal.kind.as_str(), removal.local_key, observed],
        )?;
        summary.removed += removed as u64;
    }
    for upsert in &batch.upserts {
        if let Some(open) = snapshot {
            tx.execute(
                "INSERT OR IGNORE INTO snapshot_keys (agent_id, snapshot_id, kind, local_key) VALUES (?1, ?2, ?3, ?4)",
                params![agent_id, open.id, upsert.kind.as_str(), upsert.local_key],
            )?;
        }
        match store_upsert(tx, agent_id, upsert, observed)? {
            Ok(()) => summary.upserted += 1,
            Err(rejected) => summary.rejected.push(rejected),
        }
    }

    let (progress, still_open) = match (batch.mode, snapshot) {
        (BatchMode::SnapshotPart { last_part: true, .. }, Some(open)) => {
            let progress = if open.complete {
                SnapshotProgress::Closed { removed: sweep(tx, agent_id, open.id, observed)? }
            } else {
                SnapshotProgress::ClosedIncomplete
            };
            tx.execute("DELETE FROM snapshot_keys WHERE agent_id = ?1", [agent_id])?;
            (progress, None)
        }
        (_, Some(open)) => (SnapshotProgress::Open, Some(open)),
        (_, None) => (SnapshotProgress::None, None),
    };
    summary.snapshot = progress;
    tx.execute(
        "UPDATE agents SET last_sequence = ?2, open_snapshot_id = ?3, open_snapshot_complete = ?4 WHERE agent_id = ?1",
        params![agent_id, sequence, still_open.map(|o| o.id), still_open.is_some_and(|o| o.complete)],
    )?;
    Ok(if gap { ApplyOutcome::Gap { expected, summary } } else { ApplyOutcome::Applied(summary) })
}

fn agent_state(tx: &Transaction<'_>, agent_id: &str) -> Res<AgentState> {
    let row = tx
        .query_row(
            "SELECT last_sequence, revoked_at_ms IS NOT NULL, open_snapshot_id, open_snapshot_complete \
             FROM agents WHERE agent_id = ?1",
            [agent_id],
            |r| {
                Ok(AgentState {
                    last_sequence: u64::try_from(r.get::<_, i64>(0)?).unwrap_or_default(),
                    revoked: r.get(1)?,
                    open_snapshot: r.get(2)?,
                    open_complete: r.get(3)?,
                })
            },
        )
        .optional()?;
    row.ok_or_else(|| StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into())
}

/// Host facts and `last_seen` of the agent.
fn update_host(tx: &Transaction<'_>, agent_id: &str, batch: &IngestBatch) -> Res<()> {
    tx.execute(
        "UPDATE agents SET last_seen_ms = MAX(COALESCE(last_seen_ms, ?2), ?2) WHERE agent_id = ?1",
        params![agent_id, batch.received_at_ms],
    )?;
    if let Some(host) = &batch.host {
        tx.execute(
            "UPDATE agents SET host_facts_json = ?2, hostname = COALESCE(NULLIF(?3, ''), hostname), \
                 reported_machine_fingerprint = COALESCE(NULLIF(?4, ''), reported_machine_fingerprint) \
             WHERE agent_id = ?1",
            params![agent_id, host.json, host.hostname, host.machine_fingerprint],
        )?;
    }
    Ok(())
}

/// Stores one upsert; the inner `Err` is an entry without a derivable identity.
fn store_upsert(
    tx: &Transaction<'_>,
    agent_id: &str,
    upsert: &IngestAsset,
    observed: i64,
) -> Res<Result<(), RejectedEntry>> {
    let derived = match identity::derive(agent_id, upsert.kind, &upsert.local_key, &upsert.json) {
        Ok(d) => d,
        Err(e) => {
            return Ok(Err(RejectedEntry {
                kind: upsert.kind,
                local_key: upsert.local_key.clone(),
                reason: e.to_string(),
            }))
        }
    };
    let kind = upsert.kind.as_str();
    tx.execute(
        "INSERT INTO assets (asset_id, kind, identity, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT (asset_id) DO UPDATE SET first_seen_ms = MIN(first_seen_ms, excluded.first_seen_ms), \
             last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms)",
        params![derived.asset_id, kind, derived.identity, observed],
    )?;
    // What was at this key before, if it was another asset, is gone from it.
    tx.execute(
        "UPDATE sightings SET removed_at_ms = ?5 \
         WHERE agent_id = ?1 AND kind = ?2 AND local_key = ?3 AND asset_id <> ?4 AND removed_at_ms IS NULL",
        params![agent_id, kind, upsert.local_key, derived.asset_id, observed],
    )?;
    tx.execute(
        "INSERT INTO sightings (asset_id, agent_id, kind, local_key, location, entry_json, first_seen_ms, last_seen_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
         ON CONFLICT (asset_id, agent_id, local_key) DO UPDATE SET location = excluded.location, \
             entry_json = excluded.entry_json, last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms), \
             removed_at_ms = NULL",
        params![derived.asset_id, agent_id, kind, upsert.local_key, derived.location, upsert.json, observed],
    )?;
    Ok(Ok(()))
}

/// Marks removed every live sighting of the agent that snapshot `snapshot_id` did not name.
fn sweep(tx: &Transaction<'_>, agent_id: &str, snapshot_id: i64, observed: i64) -> Res<u64> {
    let removed = tx.execute(
        "UPDATE sightings SET removed_at_ms = ?3 \
         WHERE agent_id = ?1 AND removed_at_ms IS NULL AND NOT EXISTS ( \
             SELECT 1 FROM snapshot_keys k WHERE k.agent_id = sightings.agent_id AND k.snapshot_id = ?2 \
                 AND k.kind = sightings.kind AND k.local_key = sightings.local_key)",
        params![agent_id, snapshot_id, observed],
    )?;
    Ok(removed as u64)
}

/// Logs what a batch did, fields first.
pub(super) fn log_outcome(agent_id: &str, sequence: u64, outcome: &ApplyOutcome) {
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
    for rejected in &summary.rejected {
        warn!(agent_id, sequence, kind = %rejected.kind, local_key = %rejected.local_key,
            reason = %rejected.reason, "entry skipped: no identity");
    }
    debug!(agent_id, sequence, upserted = summary.upserted, removed = summary.removed,
        snapshot = ?summary.snapshot, "batch applied");
}
