//! `apply_batch`: the steps of the module docs' "Batches" section, in one transaction, within
//! the bounds of `store::limits`.
//!
//! Statements are prepared once per connection (`prepare_cached`): a batch runs several per
//! upsert. A statement whose plan SQLite derives from a bound value is prepared again at every
//! execution; `kind = ?` next to `removed_at_ms IS NULL` is one (SQLite checks whether it implies
//! the partial index `sightings_live_listening`'s `kind = 'runtime'`), so the kind is bound as
//! `CAST(? AS TEXT)`, which is still an index equality but is not compared with that literal.

use rusqlite::{params, OptionalExtension, Transaction};
use tracing::debug;

use super::Res;
use crate::store::error::StoreError;
use crate::store::identity::{self, DerivedIdentity};
use crate::store::limits::{self, AgentQuota};
use crate::store::types::{
    ApplyOutcome, ApplySummary, BatchMode, IngestAsset, IngestBatch, RejectedEntry, SnapshotProgress,
};
use crate::store::ASSET_SEEN_RESOLUTION_MS;

/// The agent's row as a batch needs it.
pub(crate) struct AgentState {
    /// Last applied sequence.
    pub(crate) last_sequence: u64,
    /// Set when the agent is revoked.
    pub(crate) revoked: bool,
    /// The snapshot being received, if any.
    pub(crate) open_snapshot: Option<i64>,
    /// No gap hit the open snapshot so far.
    pub(crate) open_complete: bool,
    /// Bytes of sightings the agent has made the store keep.
    pub(crate) stored_bytes: u64,
}

/// The snapshot this batch's upserts are recorded under.
#[derive(Clone, Copy)]
pub(crate) struct OpenSnapshot {
    /// Its id.
    pub(crate) id: i64,
    /// Every part so far arrived without a gap.
    pub(crate) complete: bool,
}

/// What to do with a batch, decided from it and its agent's row (steps 1, 2 and 5 of the
/// module docs' "Batches"), before anything is written.
pub(crate) enum Admission {
    /// Its sequence is at or below the agent's last: nothing to write.
    AlreadyApplied {
        /// The agent's last applied sequence.
        last_sequence: u64,
    },
    /// Apply it.
    Apply {
        /// The sequence the agent's last applied one would be followed by.
        expected: u64,
        /// Its sequence is beyond `expected`.
        gap: bool,
        /// The snapshot its upserts are recorded under, if any.
        snapshot: Option<OpenSnapshot>,
        /// It starts a new snapshot: what the open one named no longer counts (SQLite takes a
        /// new epoch, PostgreSQL drops the keys).
        abandon: bool,
    },
}

/// A batch refused as invalid, for `reason`.
fn invalid(agent_id: &str, batch: &IngestBatch, reason: &str) -> StoreError {
    StoreError::InvalidBatch { agent_id: agent_id.to_owned(), sequence: batch.sequence, reason: reason.to_owned() }
}

/// The batch's sequence as stored; refused when it is 0 or beyond 2^63.
pub(crate) fn batch_sequence(agent_id: &str, batch: &IngestBatch) -> Result<i64, StoreError> {
    let sequence = i64::try_from(batch.sequence).map_err(|_| invalid(agent_id, batch, "sequence is beyond 2^63"))?;
    if sequence == 0 {
        return Err(invalid(agent_id, batch, "sequence 0 (sequences start at 1)"));
    }
    Ok(sequence)
}

/// Whether and how `batch` applies to an agent whose row is `state` (module docs, "Batches").
pub(crate) fn admit(agent_id: &str, batch: &IngestBatch, state: &AgentState) -> Result<Admission, StoreError> {
    if state.revoked {
        return Err(StoreError::AgentRevoked { agent_id: agent_id.to_owned() });
    }
    if batch.sequence <= state.last_sequence {
        return Ok(Admission::AlreadyApplied { last_sequence: state.last_sequence });
    }
    if batch.sequence - state.last_sequence > limits::MAX_SEQUENCE_JUMP {
        let reason = format!(
            "sequence is more than {} ahead of the last applied {}",
            limits::MAX_SEQUENCE_JUMP,
            state.last_sequence
        );
        return Err(invalid(agent_id, batch, &reason));
    }
    let entries = batch.upserts.len().saturating_add(batch.removals.len());
    if entries > limits::MAX_ENTRIES_PER_BATCH {
        let reason = format!("{entries} entries, over the {} a batch may hold", limits::MAX_ENTRIES_PER_BATCH);
        return Err(invalid(agent_id, batch, &reason));
    }
    let expected = state.last_sequence.saturating_add(1);
    let gap = batch.sequence > expected;

    let (snapshot, abandon) = match batch.mode {
        BatchMode::Delta => {
            (state.open_snapshot.map(|id| OpenSnapshot { id, complete: state.open_complete && !gap }), false)
        }
        BatchMode::SnapshotPart { snapshot_id, first_part, .. } => {
            let id = i64::try_from(snapshot_id).map_err(|_| invalid(agent_id, batch, "snapshot id is beyond 2^63"))?;
            if id == 0 {
                return Err(invalid(agent_id, batch, "snapshot id 0"));
            }
            if state.open_snapshot == Some(id) {
                (Some(OpenSnapshot { id, complete: state.open_complete && !gap }), false)
            } else {
                // A new snapshot abandons the open one; with a gap before it, its first parts
                // may be among the lost batches, unless this is its first part.
                (Some(OpenSnapshot { id, complete: !gap || first_part }), true)
            }
        }
    };
    Ok(Admission::Apply { expected, gap, snapshot, abandon })
}

/// The per-upsert checks and identity of `upsert` (bounds of its entry and location, rule 6 of
/// the store's "Asset identity"), or why it is rejected. Pure: SQLite runs it for a whole batch
/// before it takes its one connection.
pub(crate) fn checked(agent_id: &str, upsert: &IngestAsset) -> Result<DerivedIdentity, String> {
    limits::check_entry(&upsert.local_key, &upsert.json)?;
    let derived =
        identity::derive(agent_id, upsert.kind, &upsert.local_key, &upsert.json).map_err(|e| e.to_string())?;
    limits::check_location(&derived.location)?;
    Ok(derived)
}

/// Applies `batch`, whose upserts `checked` were checked by [`checked`], one for one.
pub(super) fn apply(
    tx: &Transaction<'_>,
    agent_id: &str,
    batch: &IngestBatch,
    checked: &[Result<DerivedIdentity, String>],
    quota: &AgentQuota,
) -> Res<ApplyOutcome> {
    let sequence = batch_sequence(agent_id, batch)?;
    let state = agent_state(tx, agent_id)?;
    // `mark`: the epoch this batch's upserts mark while a snapshot is open.
    let (expected, gap, snapshot, mark) = match admit(agent_id, batch, &state)? {
        Admission::AlreadyApplied { last_sequence } => return Ok(ApplyOutcome::AlreadyApplied { last_sequence }),
        Admission::Apply { expected, gap, snapshot, abandon } => {
            let mark = snapshot.map(|_| snapshot_epoch(tx, agent_id, abandon)).transpose()?;
            (expected, gap, snapshot, mark)
        }
    };

    let mut summary = ApplySummary { host_rejected: update_host(tx, agent_id, batch)?, ..ApplySummary::default() };
    // Sightings keep the agent's clock, never ahead of the collector's; assets only the
    // collector's, so no agent can date what others see.
    let observed = batch.observed_at_ms.min(batch.received_at_ms);
    let mut budget = Budget { stored_bytes: state.stored_bytes, quota: *quota };
    for removal in &batch.removals {
        let removed = tx
            .prepare_cached(
                "UPDATE sightings SET removed_at_ms = ?4 \
                 WHERE agent_id = ?1 AND kind = CAST(?2 AS TEXT) AND local_key = ?3 AND removed_at_ms IS NULL",
            )?
            .execute(params![agent_id, removal.kind.as_str(), removal.local_key, observed])?;
        summary.removed += removed as u64;
    }
    let times = Times { observed, received: batch.received_at_ms };
    for (upsert, checked) in batch.upserts.iter().zip(checked) {
        match store_upsert(tx, agent_id, upsert, checked, times, mark, &mut budget)? {
            Ok(()) => summary.upserted += 1,
            Err(reason) => {
                // A rejected entry still names its key (module docs, rule 6 of "Asset
                // identity"): what is live there stays. A key over its bound names nothing stored.
                if let (Some(mark), true) = (mark, upsert.local_key.len() <= limits::MAX_LOCAL_KEY_BYTES) {
                    tx.prepare_cached(
                        "UPDATE sightings SET snapshot_epoch = ?4 \
                         WHERE agent_id = ?1 AND kind = CAST(?2 AS TEXT) AND local_key = ?3 AND removed_at_ms IS NULL",
                    )?
                    .execute(params![agent_id, upsert.kind.as_str(), upsert.local_key, mark])?;
                }
                summary.rejected.push(RejectedEntry {
                    kind: upsert.kind,
                    local_key: truncate(&upsert.local_key, REJECTED_KEY_BYTES),
                    reason,
                });
            }
        }
    }

    let (progress, still_open) = match (batch.mode, snapshot) {
        (BatchMode::SnapshotPart { last_part: true, .. }, Some(open)) => {
            let progress = if let (true, Some(mark)) = (open.complete, mark) {
                let removed = sweep(tx, agent_id, mark, observed)?;
                // A proven reinstall takes over its host once it has stated it whole.
                for old in super::agents::settle_reinstall(tx, agent_id, batch.received_at_ms)? {
                    debug!(agent_id, superseded = %old, "reinstall settled: earlier agent superseded");
                }
                SnapshotProgress::Closed { removed }
            } else {
                SnapshotProgress::ClosedIncomplete
            };
            (progress, None)
        }
        (_, Some(open)) => (SnapshotProgress::Open, Some(open)),
        (_, None) => (SnapshotProgress::None, None),
    };
    summary.snapshot = progress;
    tx.prepare_cached(
        "UPDATE agents SET last_sequence = ?2, open_snapshot_id = ?3, open_snapshot_complete = ?4 WHERE agent_id = ?1",
    )?
    .execute(params![agent_id, sequence, still_open.map(|o| o.id), still_open.is_some_and(|o| o.complete)])?;
    Ok(if gap { ApplyOutcome::Gap { expected, summary } } else { ApplyOutcome::Applied(summary) })
}

/// The agent's snapshot epoch: its next one for a snapshot that opens now, so nothing an
/// abandoned snapshot marked counts (schema_v19.sql); else the open snapshot's.
fn snapshot_epoch(tx: &Transaction<'_>, agent_id: &str, opens: bool) -> Res<i64> {
    let sql = if opens {
        "UPDATE agents SET snapshot_epoch = snapshot_epoch + 1 WHERE agent_id = ?1 RETURNING snapshot_epoch"
    } else {
        "SELECT snapshot_epoch FROM agents WHERE agent_id = ?1"
    };
    Ok(tx.prepare_cached(sql)?.query_row([agent_id], |r| r.get(0))?)
}

fn agent_state(tx: &Transaction<'_>, agent_id: &str) -> Res<AgentState> {
    let row = tx
        .prepare_cached(
            "SELECT last_sequence, revoked_at_ms IS NOT NULL, open_snapshot_id, open_snapshot_complete, stored_bytes \
             FROM agents WHERE agent_id = ?1",
        )?
        .query_row([agent_id], |r| {
            Ok(AgentState {
                last_sequence: u64::try_from(r.get::<_, i64>(0)?).unwrap_or_default(),
                revoked: r.get(1)?,
                open_snapshot: r.get(2)?,
                open_complete: r.get(3)?,
                stored_bytes: u64::try_from(r.get::<_, i64>(4)?).unwrap_or_default(),
            })
        })
        .optional()?;
    row.ok_or_else(|| StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into())
}

/// Host facts and `last_seen` of the agent; returns why the facts were not stored when they
/// are over a bound. The enrolled hostname stays: the reported one is kept beside it.
fn update_host(tx: &Transaction<'_>, agent_id: &str, batch: &IngestBatch) -> Res<Option<String>> {
    super::agents::touch(tx, agent_id, batch.received_at_ms)?;
    let Some(host) = &batch.host else { return Ok(None) };
    if let Err(reason) = limits::check_host(&host.hostname, &host.machine_fingerprint, &host.json) {
        return Ok(Some(reason));
    }
    tx.execute(
        "UPDATE agents SET host_facts_json = ?2, reported_hostname = COALESCE(NULLIF(?3, ''), reported_hostname), \
             reported_machine_fingerprint = COALESCE(NULLIF(?4, ''), reported_machine_fingerprint) \
         WHERE agent_id = ?1",
        params![agent_id, host.json, host.hostname, host.machine_fingerprint],
    )?;
    Ok(None)
}

/// The two clocks of a batch.
#[derive(Clone, Copy)]
struct Times {
    /// The agent's observation, clamped to `received` (sightings).
    observed: i64,
    /// The collector's reception (assets).
    received: i64,
}

/// What the agent may still make the store keep in this batch (limits rule 4).
pub(crate) struct Budget {
    /// Bytes of its sightings so far, this batch's included.
    pub(crate) stored_bytes: u64,
    /// Its quota.
    pub(crate) quota: AgentQuota,
}

/// Bytes of a rejected entry's local key kept in the summary and the log.
pub(crate) const REJECTED_KEY_BYTES: usize = 256;

/// `text` cut to at most `max` bytes, on a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default().to_owned()
}

/// The agent's stored bytes once a sighting of `local_key`, `json` and `location` is stored,
/// replacing one of `existing` bytes (its entry JSON and location) if any; or why it may not be
/// (limits rule 4: the agent's quota).
pub(crate) fn charge(
    budget: &Budget,
    local_key: &str,
    json: &str,
    location: &str,
    existing: Option<u64>,
) -> Result<u64, String> {
    let size = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    let adds = size(json.len()) + size(location.len()) + if existing.is_none() { size(local_key.len()) } else { 0 };
    let frees = existing.unwrap_or(0);
    if adds > frees && budget.stored_bytes.saturating_add(adds - frees) > budget.quota.max_stored_bytes {
        return Err(format!("the agent's sightings are at their quota of {} bytes", budget.quota.max_stored_bytes));
    }
    Ok(budget.stored_bytes.saturating_add(adds).saturating_sub(frees))
}

/// Why an agent with `live` live sightings of an asset may not have one more, if so (limits
/// rule 4).
pub(crate) fn may_add_live(live: u64) -> Result<(), String> {
    if live >= limits::MAX_LIVE_SIGHTINGS_PER_ASSET {
        return Err(format!(
            "the agent already has {} live sightings of this asset",
            limits::MAX_LIVE_SIGHTINGS_PER_ASSET
        ));
    }
    Ok(())
}

/// Stores one upsert; the inner `Err` says why it was rejected (no identity, over a bound,
/// over the agent's quota).
fn store_upsert(
    tx: &Transaction<'_>,
    agent_id: &str,
    upsert: &IngestAsset,
    checked: &Result<DerivedIdentity, String>,
    times: Times,
    mark: Option<i64>,
    budget: &mut Budget,
) -> Res<Result<(), String>> {
    let derived = match checked {
        Ok(derived) => derived,
        Err(reason) => return Ok(Err(reason.clone())),
    };
    let kind = upsert.kind.as_str();
    let verdict = derived.verdict.map(|v| v.as_str());
    // The sighting this upsert updates, if any: its stored size, whether it is live, and its id
    // when it holds what the upsert would write (the same entry text, location, verdict, owner).
    // Found through the host's keys, not the (asset, host, key) unique index: one batch's
    // lookups then stay in a few neighbouring pages of the index and of the table, where the
    // unique index, ordered by asset, sends each to a page of its own (docs/scale.md).
    let existing: Option<(i64, bool, Option<i64>)> = tx
        .prepare_cached(
            "SELECT length(CAST(entry_json AS BLOB)) + length(CAST(location AS BLOB)), removed_at_ms IS NULL, \
                 CASE WHEN entry_json = ?5 AND location = ?6 AND verdict IS ?7 AND owned = ?8 THEN sighting_id END \
             FROM sightings INDEXED BY sightings_by_host_key \
             WHERE agent_id = ?2 AND kind = CAST(?4 AS TEXT) AND local_key = ?3 AND asset_id = ?1",
        )?
        .query_row(
            params![
                derived.asset_id,
                agent_id,
                upsert.local_key,
                kind,
                upsert.json,
                derived.location,
                verdict,
                derived.owned
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let existing_bytes = existing.map(|(n, _, _)| u64::try_from(n).unwrap_or(0));
    let charged = match charge(budget, &upsert.local_key, &upsert.json, &derived.location, existing_bytes) {
        Ok(charged) => charged,
        Err(reason) => return Ok(Err(reason)),
    };
    // A new sighting, or a removed one coming back, adds to the live ones.
    if !existing.is_some_and(|(_, live, _)| live) {
        let live: i64 = tx
            .prepare_cached(
                "SELECT COUNT(*) FROM sightings WHERE asset_id = ?1 AND agent_id = ?2 AND removed_at_ms IS NULL",
            )?
            .query_row(params![derived.asset_id, agent_id], |r| r.get(0))?;
        if let Err(reason) = may_add_live(u64::try_from(live).unwrap_or(0)) {
            return Ok(Err(reason));
        }
    }
    budget.stored_bytes = charged;
    let seen: Option<(i64, i64)> = tx
        .prepare_cached("SELECT first_seen_ms, last_seen_ms FROM assets INDEXED BY assets_seen WHERE asset_id = ?1")?
        .query_row([&derived.asset_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match seen {
        None => {
            let detail = serde_json::json!({"kind": kind, "identity": derived.identity, "first_agent": agent_id});
            super::audit::append(tx, times.received, "asset.appeared", &derived.asset_id, &detail)?;
            tx.prepare_cached(
                "INSERT INTO assets (asset_id, kind, identity, first_seen_ms, last_seen_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
            )?
            .execute(params![derived.asset_id, kind, derived.identity, times.received])?;
        }
        // Within the resolution, a known asset's row is not written (module docs, "Asset times").
        Some((first, last)) if first > times.received || last <= times.received - ASSET_SEEN_RESOLUTION_MS => {
            tx.prepare_cached(
                "UPDATE assets SET first_seen_ms = MIN(first_seen_ms, ?2), last_seen_ms = MAX(last_seen_ms, ?2) \
                 WHERE asset_id = ?1",
            )?
            .execute(params![derived.asset_id, times.received])?;
        }
        Some(_) => {}
    }
    // What was at this key before, if it was another asset, is gone from it. When this
    // asset's sighting there is live, nothing else is (one live sighting per key).
    if !existing.is_some_and(|(_, live, _)| live) {
        tx.prepare_cached(
            "UPDATE sightings SET removed_at_ms = ?5 \
             WHERE agent_id = ?1 AND kind = CAST(?2 AS TEXT) AND local_key = ?3 AND asset_id <> ?4 \
                 AND removed_at_ms IS NULL",
        )?
        .execute(params![agent_id, kind, upsert.local_key, derived.asset_id, times.observed])?;
    }
    // A live sighting that holds what the upsert says only gets its `last_seen` (and the open
    // snapshot's mark): rewriting its entry would recompute the indexed search text and
    // listening ports and fire the stored bytes trigger, for the same row.
    if let Some((_, true, Some(sighting_id))) = existing {
        tx.prepare_cached(
            "UPDATE sightings SET last_seen_ms = MAX(last_seen_ms, ?2), snapshot_epoch = COALESCE(?3, snapshot_epoch) \
             WHERE sighting_id = ?1",
        )?
        .execute(params![sighting_id, times.observed, mark])?;
        return Ok(Ok(()));
    }
    tx.prepare_cached(
        "INSERT INTO sightings (asset_id, agent_id, kind, local_key, location, entry_json, first_seen_ms, last_seen_ms, \
             verdict, owned, snapshot_epoch) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8, ?9, ?10) \
         ON CONFLICT (asset_id, agent_id, local_key) DO UPDATE SET location = excluded.location, \
             entry_json = excluded.entry_json, last_seen_ms = MAX(last_seen_ms, excluded.last_seen_ms), \
             removed_at_ms = NULL, verdict = excluded.verdict, owned = excluded.owned, \
             snapshot_epoch = COALESCE(excluded.snapshot_epoch, sightings.snapshot_epoch)",
    )?
    .execute(params![
            derived.asset_id,
            agent_id,
            kind,
            upsert.local_key,
            derived.location,
            upsert.json,
            times.observed,
            verdict,
            derived.owned,
            mark
        ])?;
    Ok(Ok(()))
}

/// Marks removed every live sighting of the agent that the snapshot of epoch `mark` did not name.
fn sweep(tx: &Transaction<'_>, agent_id: &str, mark: i64, observed: i64) -> Res<u64> {
    let removed = tx
        .prepare_cached(
            "UPDATE sightings SET removed_at_ms = ?3 \
             WHERE agent_id = ?1 AND removed_at_ms IS NULL AND snapshot_epoch IS NOT ?2",
        )?
        .execute(params![agent_id, mark, observed])?;
    Ok(removed as u64)
}
