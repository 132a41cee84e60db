//! `apply_batch` in PostgreSQL: the steps of the store's "Batches" docs, as `sqlite/batch.rs`
//! (whose pure parts it calls), with these differences:
//! - The agent's row is locked first (`FOR UPDATE`): two streams of one agent, on one collector
//!   or two, apply its batches one after the other, so the sequence check holds.
//! - Set-based: SQLite's statements per upsert would be a round trip each. The batch's sightings
//!   are read in one query, the upserts decided in order in memory (quota, live sightings per
//!   asset, a key taken over by another asset) exactly as the per-upsert statements would, then
//!   written with one statement per table over arrays (`unnest`).
//! - New assets are inserted with `ON CONFLICT DO NOTHING`, in asset id order (fewer deadlocks
//!   between collectors); `asset.appeared` is recorded for the rows this insert created, so two
//!   collectors ingesting one new model at once record it once. The times of existing assets
//!   move at the end of the batch, only for the rows that move, locked in id order: a model on
//!   every host is a row every batch names, and its lock is held until commit.
//! - Hot paths do not depend on the planner's statistics (fresh tables have none, and
//!   `snapshot_keys` empties at every snapshot): per-row lookups are lateral subqueries or
//!   `NOT EXISTS` kept as parameterised probes by `OFFSET 0`.
//! - The agent's stored bytes are kept by statement-level triggers (`schema_v1.sql`), and an
//!   unchanged sighting only has its `last_seen` moved (`upsert_sightings`).
//! - U+0000, which PostgreSQL text and `json` operators refuse, is replaced by U+FFFD in what is
//!   stored (local keys, locations, host facts, entry JSON). Identities are derived from the text
//!   the agent sent, so asset ids are SQLite's.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use serde_json::Value;
use tracing::debug;

use super::{Fail, Res, Tx};
use crate::store::error::StoreError;
use crate::store::limits::{self, AgentQuota};
use crate::store::sqlite::audit::{digest, GENESIS};
use crate::store::sqlite::batch::{
    admit, batch_sequence, charge, checked, may_add_live, truncate, Admission, AgentState, Budget, REJECTED_KEY_BYTES,
};
use crate::store::types::{
    ApplyOutcome, ApplySummary, BatchMode, IngestAsset, IngestBatch, IngestRemoval, RejectedEntry, SnapshotProgress,
};
use crate::store::ASSET_SEEN_RESOLUTION_MS;

/// Applies `batch`; returns its outcome and the assets that existed before it and were seen in
/// it, whose times the caller refreshes after the commit ([`refresh_assets`]).
pub(super) fn apply(
    tx: &mut Tx<'_>,
    agent_id: &str,
    batch: &IngestBatch,
    quota: &AgentQuota,
) -> Res<(ApplyOutcome, Vec<String>)> {
    let sequence = batch_sequence(agent_id, batch)?;
    let state = agent_state(tx, agent_id)?;
    let (expected, gap, snapshot) = match admit(agent_id, batch, &state)? {
        Admission::AlreadyApplied { last_sequence } => {
            return Ok((ApplyOutcome::AlreadyApplied { last_sequence }, Vec::new()))
        }
        Admission::Apply { expected, gap, snapshot, abandon } => {
            if abandon {
                tx.execute("DELETE FROM snapshot_keys WHERE agent_id = $1", &[&agent_id])?;
            }
            (expected, gap, snapshot)
        }
    };

    let mut summary = ApplySummary { host_rejected: update_host(tx, agent_id, batch)?, ..ApplySummary::default() };
    // Sightings keep the agent's clock, never ahead of the collector's; assets only the
    // collector's, so no agent can date what others see.
    let observed = batch.observed_at_ms.min(batch.received_at_ms);
    summary.removed = remove(tx, agent_id, &batch.removals, observed)?;
    if let Some(open) = snapshot {
        record_keys(tx, agent_id, open.id, &batch.upserts)?;
    }
    let budget = Budget { stored_bytes: state.stored_bytes, quota: *quota };
    let times = Times { observed, received: batch.received_at_ms };
    let stored = store_upserts(tx, agent_id, &batch.upserts, times, budget)?;
    for (upsert, outcome) in batch.upserts.iter().zip(stored.outcomes) {
        match outcome {
            Ok(()) => summary.upserted += 1,
            Err(reason) => summary.rejected.push(RejectedEntry {
                kind: upsert.kind,
                local_key: truncate(&upsert.local_key, REJECTED_KEY_BYTES),
                reason,
            }),
        }
    }

    let (progress, still_open) = match (batch.mode, snapshot) {
        (BatchMode::SnapshotPart { last_part: true, .. }, Some(open)) => {
            let progress = if open.complete {
                let removed = sweep(tx, agent_id, open.id, observed)?;
                // A proven reinstall takes over its host once it has stated it whole.
                for old in super::agents::settle_reinstall(tx, agent_id, batch.received_at_ms)? {
                    debug!(agent_id, superseded = %old, "reinstall settled: earlier agent superseded");
                }
                SnapshotProgress::Closed { removed }
            } else {
                SnapshotProgress::ClosedIncomplete
            };
            tx.execute("DELETE FROM snapshot_keys WHERE agent_id = $1", &[&agent_id])?;
            (progress, None)
        }
        (_, Some(open)) => (SnapshotProgress::Open, Some(open)),
        (_, None) => (SnapshotProgress::None, None),
    };
    summary.snapshot = progress;
    // Last, so the audit chain's lock is held for as short as can be: concurrent batches of
    // other agents wait on it. The assets every host shares are refreshed by the caller in a
    // transaction of their own (refresh_assets).
    append_appeared(tx, &stored.appeared, batch.received_at_ms)?;
    tx.execute(
        "UPDATE agents SET last_seen_ms = GREATEST(last_seen_ms, $5), last_sequence = $2, open_snapshot_id = $3, \
             open_snapshot_complete = $4 WHERE agent_id = $1",
        &[
            &agent_id,
            &sequence,
            &still_open.map(|o| o.id),
            &still_open.is_some_and(|o| o.complete),
            &batch.received_at_ms,
        ],
    )?;
    let outcome = if gap { ApplyOutcome::Gap { expected, summary } } else { ApplyOutcome::Applied(summary) };
    Ok((outcome, stored.seen_assets))
}

/// A counter or byte count of the database as `u64`; a negative one is a corrupt row.
fn unsigned(value: i64, what: &'static str) -> Res<u64> {
    u64::try_from(value).map_err(|_| {
        Fail::Store(StoreError::Backend {
            operation: "apply batch",
            source: format!("{what} is negative ({value}) in the database").into(),
        })
    })
}

/// The agent's row, locked until the transaction ends.
fn agent_state(tx: &mut Tx<'_>, agent_id: &str) -> Res<AgentState> {
    let row = tx.query_opt(
        "SELECT last_sequence, revoked_at_ms IS NOT NULL, open_snapshot_id, open_snapshot_complete, stored_bytes \
         FROM agents WHERE agent_id = $1 FOR UPDATE",
        &[&agent_id],
    )?;
    let Some(r) = row else { return Err(StoreError::UnknownAgent { agent_id: agent_id.to_owned() }.into()) };
    Ok(AgentState {
        last_sequence: unsigned(r.try_get(0)?, "the agent's last sequence")?,
        revoked: r.try_get(1)?,
        open_snapshot: r.try_get(2)?,
        open_complete: r.try_get(3)?,
        stored_bytes: unsigned(r.try_get(4)?, "the agent's stored bytes")?,
    })
}

/// Host facts of the agent; returns why they were not stored when they are over a bound. The
/// enrolled hostname stays: the reported one is kept beside it. (The agent's `last_seen` is
/// written with its sequence, by the batch's last statement.)
fn update_host(tx: &mut Tx<'_>, agent_id: &str, batch: &IngestBatch) -> Res<Option<String>> {
    let Some(host) = &batch.host else { return Ok(None) };
    if let Err(reason) = limits::check_host(&host.hostname, &host.machine_fingerprint, &host.json) {
        return Ok(Some(reason));
    }
    tx.execute(
        "UPDATE agents SET host_facts_json = $2, \
             reported_hostname = COALESCE(NULLIF($3::text, ''), reported_hostname), \
             reported_machine_fingerprint = COALESCE(NULLIF($4::text, ''), reported_machine_fingerprint) \
         WHERE agent_id = $1",
        &[&agent_id, &clean_json(&host.json), &clean_text(&host.hostname), &clean_text(&host.machine_fingerprint)],
    )?;
    Ok(None)
}

/// Applies the removals; how many live sightings they closed.
fn remove(tx: &mut Tx<'_>, agent_id: &str, removals: &[IngestRemoval], observed: i64) -> Res<u64> {
    if removals.is_empty() {
        return Ok(0);
    }
    let kinds: Vec<&str> = removals.iter().map(|r| r.kind.as_str()).collect();
    let keys: Vec<Cow<'_, str>> = removals.iter().map(|r| clean_text(&r.local_key)).collect();
    Ok(tx.execute(
        "UPDATE sightings s SET removed_at_ms = $2 FROM unnest($3::text[], $4::text[]) AS t(kind, local_key) \
         WHERE s.agent_id = $1 AND s.kind = t.kind AND s.local_key = t.local_key AND s.removed_at_ms IS NULL",
        &[&agent_id, &observed, &kinds, &keys],
    )?)
}

/// Records the (kind, local key) of every upsert under the open snapshot `snapshot_id`.
fn record_keys(tx: &mut Tx<'_>, agent_id: &str, snapshot_id: i64, upserts: &[IngestAsset]) -> Res<()> {
    // A key over its bound cannot name anything stored: it is not recorded.
    let named = || upserts.iter().filter(|u| u.local_key.len() <= limits::MAX_LOCAL_KEY_BYTES);
    let kinds: Vec<&str> = named().map(|u| u.kind.as_str()).collect();
    if kinds.is_empty() {
        return Ok(());
    }
    let keys: Vec<Cow<'_, str>> = named().map(|u| clean_text(&u.local_key)).collect();
    tx.execute(
        "INSERT INTO snapshot_keys (agent_id, snapshot_id, kind, local_key) \
         SELECT $1, $2, t.kind, t.local_key FROM unnest($3::text[], $4::text[]) AS t(kind, local_key) \
         ON CONFLICT DO NOTHING",
        &[&agent_id, &snapshot_id, &kinds, &keys],
    )?;
    Ok(())
}

/// The two clocks of a batch.
#[derive(Clone, Copy)]
struct Times {
    /// The agent's observation, clamped to `received` (sightings).
    observed: i64,
    /// The collector's reception (assets).
    received: i64,
}

/// An upsert whose identity is derived and whose entry is within its bounds, as it is stored.
struct Prepared<'a> {
    asset_id: String,
    /// The canonical identity, as derived (the audit record's) and as stored.
    identity: String,
    kind: &'static str,
    local_key: Cow<'a, str>,
    location: String,
    json: Cow<'a, str>,
    verdict: Option<&'static str>,
    owned: bool,
}

impl Prepared<'_> {
    /// Bytes its entry JSON and location take once stored.
    fn stored_bytes(&self) -> u64 {
        u64::try_from(self.json.len().saturating_add(self.location.len())).unwrap_or(u64::MAX)
    }
}

/// What the store holds of one sighting of the agent, as the batch goes on.
struct Held {
    /// Bytes of its entry JSON and location.
    bytes: u64,
    live: bool,
}

/// The per-upsert checks and identity of `upsert` (`sqlite/batch.rs`, `checked`), or why
/// it is rejected.
fn prepare<'a>(agent_id: &str, upsert: &'a IngestAsset) -> Result<Prepared<'a>, String> {
    let derived = checked(agent_id, upsert)?;
    Ok(Prepared {
        asset_id: derived.asset_id,
        identity: derived.identity,
        kind: upsert.kind.as_str(),
        local_key: clean_text(&upsert.local_key),
        location: clean_text(&derived.location).into_owned(),
        json: clean_json(&upsert.json),
        verdict: derived.verdict.map(|v| v.as_str()),
        owned: derived.owned,
    })
}

/// Stores the upserts; for each, in order, `Err` with why it was rejected (no identity, over a
/// bound, over the agent's quota). Decides each in order as SQLite's statement by statement
/// would, from one read of the sightings concerned, then writes them set-based.
fn store_upserts(
    tx: &mut Tx<'_>,
    agent_id: &str,
    upserts: &[IngestAsset],
    times: Times,
    mut budget: Budget,
) -> Res<Stored> {
    let prepared: Vec<Result<Prepared<'_>, String>> = upserts.iter().map(|u| prepare(agent_id, u)).collect();
    let valid = || prepared.iter().filter_map(|p| p.as_ref().ok());
    if valid().next().is_none() {
        return Ok(Stored { outcomes: prepared.into_iter().map(|p| p.map(|_| ())).collect(), ..Stored::default() });
    }

    // The agent's sightings at the batch's keys: (asset, key) → what is held; (kind, key) → assets.
    let mut held: HashMap<(String, String), Held> = HashMap::new();
    let mut at_key: HashMap<(String, String), Vec<String>> = HashMap::new();
    {
        let kinds: Vec<&str> = valid().map(|p| p.kind).collect();
        let keys: Vec<&str> = valid().map(|p| p.local_key.as_ref()).collect();
        // One index probe per key (`OFFSET 0` keeps the lateral subquery a parameterised scan):
        // a join the planner could choose from stale statistics would read every sighting of
        // the agent at each batch.
        let rows = tx.query(
            "SELECT s.asset_id, s.kind, s.local_key, s.bytes, s.live \
             FROM (SELECT DISTINCT * FROM unnest($2::text[], $3::text[])) AS t(kind, local_key), \
                 LATERAL (SELECT s.asset_id, s.kind, s.local_key, \
                         (octet_length(s.entry_json::text) + octet_length(s.location))::bigint AS bytes, \
                         s.removed_at_ms IS NULL AS live \
                     FROM sightings s WHERE s.agent_id = $1 AND s.kind = t.kind AND s.local_key = t.local_key \
                     OFFSET 0) AS s",
            &[&agent_id, &kinds, &keys],
        )?;
        for r in rows {
            let (asset_id, kind, key): (String, String, String) = (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
            let bytes = unsigned(r.try_get(3)?, "a sighting's size")?;
            at_key.entry((kind, key.clone())).or_default().push(asset_id.clone());
            held.insert((asset_id, key), Held { bytes, live: r.try_get(4)? });
        }
    }

    // Live sightings per asset, for the assets whose count a decision may read: one not live at
    // its key, or sharing a key with another asset of the batch (which would close it there).
    let mut live: HashMap<String, u64> = HashMap::new();
    {
        let mut batch_assets: HashMap<(&str, &str), HashSet<&str>> = HashMap::new();
        for p in valid() {
            batch_assets.entry((p.kind, p.local_key.as_ref())).or_default().insert(p.asset_id.as_str());
        }
        let mut wanted: Vec<&str> = valid()
            .filter(|p| {
                let live_here = held.get(&(p.asset_id.clone(), p.local_key.to_string())).is_some_and(|h| h.live);
                !live_here || batch_assets.get(&(p.kind, p.local_key.as_ref())).is_some_and(|a| a.len() > 1)
            })
            .map(|p| p.asset_id.as_str())
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        if !wanted.is_empty() {
            let rows = tx.query(
                "SELECT asset_id, COUNT(*) FROM sightings \
                 WHERE agent_id = $1 AND asset_id = ANY($2::text[]) AND removed_at_ms IS NULL GROUP BY asset_id",
                &[&agent_id, &wanted],
            )?;
            for asset in &wanted {
                live.insert((*asset).to_owned(), 0);
            }
            for r in rows {
                let asset: String = r.try_get(0)?;
                live.insert(asset, unsigned(r.try_get(1)?, "a live sighting count")?);
            }
        }
    }

    // The decisions, in order. `rows` holds each accepted (asset, key) once, at its first
    // position with its last data; `takes_over` the keys whose last accepted asset closes others.
    let mut outcomes = Vec::with_capacity(prepared.len());
    let mut rows: Vec<&Prepared<'_>> = Vec::new();
    let mut row_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut takes_over: HashMap<(&str, &str), &str> = HashMap::new();
    for p in &prepared {
        let p = match p {
            Ok(p) => p,
            Err(reason) => {
                outcomes.push(Err(reason.clone()));
                continue;
            }
        };
        let slot = (p.asset_id.clone(), p.local_key.to_string());
        let existing = held.get(&slot);
        let was_live = existing.is_some_and(|h| h.live);
        let charged = match charge(&budget, &p.local_key, &p.json, &p.location, existing.map(|h| h.bytes)) {
            Ok(charged) => charged,
            Err(reason) => {
                outcomes.push(Err(reason));
                continue;
            }
        };
        // A new sighting, or a removed one coming back, adds to the live ones.
        if !was_live {
            if let Err(reason) = may_add_live(live.get(&p.asset_id).copied().unwrap_or(0)) {
                outcomes.push(Err(reason));
                continue;
            }
            if let Some(n) = live.get_mut(&p.asset_id) {
                *n += 1;
            }
        }
        budget.stored_bytes = charged;
        outcomes.push(Ok(()));
        if existing.is_none() {
            at_key.entry((p.kind.to_owned(), slot.1.clone())).or_default().push(p.asset_id.clone());
        }
        held.insert(slot, Held { bytes: p.stored_bytes(), live: true });
        // What was at this key before, if it was another asset, is gone from it.
        let mut closes = false;
        for other in at_key.get(&(p.kind.to_owned(), p.local_key.to_string())).into_iter().flatten() {
            if *other == p.asset_id {
                continue;
            }
            if let Some(h) = held.get_mut(&(other.clone(), p.local_key.to_string())) {
                if h.live {
                    h.live = false;
                    closes = true;
                    if let Some(n) = live.get_mut(other) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
        let key = (p.kind, p.local_key.as_ref());
        if closes || takes_over.contains_key(&key) {
            takes_over.insert(key, p.asset_id.as_str());
        }
        match row_of.get(&(p.asset_id.as_str(), p.local_key.as_ref())) {
            Some(&i) => {
                if let Some(row) = rows.get_mut(i) {
                    *row = p;
                }
            }
            None => {
                row_of.insert((p.asset_id.as_str(), p.local_key.as_ref()), rows.len());
                rows.push(p);
            }
        }
    }
    if rows.is_empty() {
        return Ok(Stored { outcomes, ..Stored::default() });
    }

    let (seen_assets, appeared) = insert_assets(tx, agent_id, &rows, times.received)?;
    upsert_sightings(tx, agent_id, &rows, times.observed)?;
    if !takes_over.is_empty() {
        let (mut kinds, mut keys, mut assets) = (Vec::new(), Vec::new(), Vec::new());
        for ((kind, key), asset) in &takes_over {
            kinds.push(*kind);
            keys.push(*key);
            assets.push(*asset);
        }
        tx.execute(
            "UPDATE sightings s SET removed_at_ms = $2 \
             FROM unnest($3::text[], $4::text[], $5::text[]) AS t(kind, local_key, asset_id) \
             WHERE s.agent_id = $1 AND s.kind = t.kind AND s.local_key = t.local_key \
                 AND s.asset_id <> t.asset_id AND s.removed_at_ms IS NULL",
            &[&agent_id, &times.observed, &kinds, &keys, &assets],
        )?;
    }
    Ok(Stored { outcomes, seen_assets, appeared })
}

/// `asset.appeared` records owed, in order: (asset id, detail).
type Appeared = Vec<(String, Value)>;

/// What [`store_upserts`] did.
#[derive(Default)]
struct Stored {
    /// For each upsert, in order, `Err` with why it was rejected.
    outcomes: Vec<Result<(), String>>,
    /// The ids of the assets the accepted upserts name, sorted, each once.
    seen_assets: Vec<String>,
    /// The `asset.appeared` records owed for the assets this batch created, in the order the
    /// batch named them: (asset id, detail).
    appeared: Appeared,
}

/// Inserts the assets of `rows` not stored yet, in asset id order (fewer deadlocks between
/// collectors); returns every asset id of `rows` (sorted, each once) and the `asset.appeared`
/// records owed for those this statement created, in the order the batch named them. Assets
/// that exist are not touched (no row lock on a model every host has): [`refresh_assets`]
/// moves their times at the end of the batch.
fn insert_assets(
    tx: &mut Tx<'_>,
    agent_id: &str,
    rows: &[&Prepared<'_>],
    received: i64,
) -> Res<(Vec<String>, Appeared)> {
    let mut assets: Vec<&Prepared<'_>> = rows.to_vec();
    assets.sort_by(|a, b| a.asset_id.cmp(&b.asset_id));
    assets.dedup_by(|a, b| a.asset_id == b.asset_id);
    let ids: Vec<&str> = assets.iter().map(|p| p.asset_id.as_str()).collect();
    let kinds: Vec<&str> = assets.iter().map(|p| p.kind).collect();
    let identities: Vec<Cow<'_, str>> = assets.iter().map(|p| clean_text(&p.identity)).collect();
    // DO NOTHING returns only the rows this statement inserted, and locks no existing row.
    let created = tx.query(
        "INSERT INTO assets (asset_id, kind, identity, first_seen_ms, last_seen_ms) \
         SELECT t.asset_id, t.kind, t.identity, $4, $4 \
         FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(asset_id, kind, identity, n) ORDER BY t.n \
         ON CONFLICT (asset_id) DO NOTHING \
         RETURNING asset_id",
        &[&ids, &kinds, &identities, &received],
    )?;
    let mut new: HashSet<String> = HashSet::with_capacity(created.len());
    for r in created {
        new.insert(r.try_get(0)?);
    }
    let mut appeared = Vec::with_capacity(new.len());
    for p in rows {
        if new.remove(&p.asset_id) {
            let detail = serde_json::json!({"kind": p.kind, "identity": p.identity, "first_agent": agent_id});
            appeared.push((p.asset_id.clone(), detail));
        }
    }
    Ok((ids.into_iter().map(str::to_owned).collect(), appeared))
}

/// Moves the first and last seen times of the assets `ids` to include `received`, locking only
/// the rows that move (a `last_seen` within [`ASSET_SEEN_RESOLUTION_MS`] does not), in id
/// order. Run in its own short transaction after the batch's: every
/// snapshot of every host refreshes the fleet-wide shared assets, and inside the batch's
/// transaction their row locks were held until its commit, queueing the other agents' batches
/// behind it. Apart, a crash between the two leaves those times one batch behind, never the
/// sightings.
pub(super) fn refresh_assets(tx: &mut Tx<'_>, ids: &[String], received: i64) -> Res<()> {
    if ids.is_empty() {
        return Ok(());
    }
    // ORDER BY is applied before the rows are locked, so batches lock shared rows in one order;
    // a row another batch moved within the resolution meanwhile is re-checked and left as it is. The
    // update then finds the locked rows by primary key (`= ANY`), never by a scan.
    tx.execute(
        "UPDATE assets SET first_seen_ms = LEAST(first_seen_ms, $2), last_seen_ms = GREATEST(last_seen_ms, $2) \
         WHERE asset_id = ANY(ARRAY(SELECT asset_id FROM assets WHERE asset_id = ANY($1::text[]) \
                   AND (first_seen_ms > $2 OR last_seen_ms <= $2 - $3) \
               ORDER BY asset_id FOR NO KEY UPDATE))",
        &[&ids, &received, &ASSET_SEEN_RESOLUTION_MS],
    )?;
    Ok(())
}

/// Appends the `asset.appeared` records `appeared` (asset id, detail), in order, as
/// [`super::audit::append`] would one after the other (same sequence numbers, digests and
/// chain), with one lock, one read and one insert.
fn append_appeared(tx: &mut Tx<'_>, appeared: &[(String, Value)], at_ms: i64) -> Res<()> {
    const KIND: &str = "asset.appeared";
    if appeared.is_empty() {
        return Ok(());
    }
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&super::locks::AUDIT])?;
    let last = tx.query_opt("SELECT seq, sha256 FROM audit ORDER BY seq DESC LIMIT 1", &[])?;
    let (mut seq, mut prev): (i64, String) = match last {
        Some(r) => (r.try_get(0)?, r.try_get(1)?),
        None => (0, GENESIS.to_owned()),
    };
    let n = appeared.len();
    let (mut seqs, mut subjects, mut details, mut prevs, mut shas) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for (subject, detail) in appeared {
        seq = seq.checked_add(1).ok_or_else(|| {
            Fail::Store(StoreError::Backend {
                operation: "append to the audit trail",
                source: format!("the audit trail is full at sequence {seq}").into(),
            })
        })?;
        let detail_json = detail.to_string();
        let sha = digest(&prev, seq, at_ms, KIND, subject, &detail_json);
        seqs.push(seq);
        subjects.push(subject.as_str());
        details.push(detail_json);
        prevs.push(std::mem::replace(&mut prev, sha.clone()));
        shas.push(sha);
    }
    tx.execute(
        "INSERT INTO audit (seq, at_ms, kind, subject, detail_json, prev_sha256, sha256) \
         SELECT t.seq, $1, $2, t.subject, t.detail::json, t.prev, t.sha \
         FROM unnest($3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) AS t(seq, subject, detail, prev, sha)",
        &[&at_ms, &KIND, &seqs, &subjects, &details, &prevs, &shas],
    )?;
    Ok(())
}

/// Inserts or updates the sightings `rows`, live, in their order (new sightings are numbered in
/// it, as SQLite inserts them one after the other). A live sighting whose stored entry is the
/// upsert's, text for text, with the same location, verdict and owner, only has its `last_seen`
/// moved: rewriting the row would recompute its generated columns and rewrite its index entries
/// (the trigram index of its search text) for nothing, and an agent re-sends every entry it
/// holds at each snapshot.
fn upsert_sightings(tx: &mut Tx<'_>, agent_id: &str, rows: &[&Prepared<'_>], observed: i64) -> Res<()> {
    let assets: Vec<&str> = rows.iter().map(|p| p.asset_id.as_str()).collect();
    let kinds: Vec<&str> = rows.iter().map(|p| p.kind).collect();
    let keys: Vec<&str> = rows.iter().map(|p| p.local_key.as_ref()).collect();
    let locations: Vec<&str> = rows.iter().map(|p| p.location.as_str()).collect();
    let entries: Vec<&str> = rows.iter().map(|p| p.json.as_ref()).collect();
    let verdicts: Vec<Option<&str>> = rows.iter().map(|p| p.verdict).collect();
    let owned: Vec<bool> = rows.iter().map(|p| p.owned).collect();
    // Every part of the statement reads the table as it was when it started: `same` finds the
    // unchanged live rows, `touched` moves their `last_seen`, the INSERT writes the others: no
    // row is written twice. `same` probes the unique key once per row whatever the statistics
    // say: the lateral subquery (kept by `OFFSET 0`) names only its columns, so no partial
    // index (`removed_at_ms IS NULL`) that would scan every live sighting of a kind fits it.
    tx.execute(
        "WITH t AS ( \
             SELECT * FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bool[]) \
                 WITH ORDINALITY AS t(asset_id, kind, local_key, location, entry, verdict, owned, n)), \
         same AS ( \
             SELECT s.sighting_id, t.n FROM t, LATERAL ( \
                 SELECT s.sighting_id, s.removed_at_ms, s.kind, s.location, s.entry_json, s.verdict, s.owned \
                 FROM sightings s WHERE s.asset_id = t.asset_id AND s.agent_id = $1 AND s.local_key = t.local_key \
                 OFFSET 0) AS s \
             WHERE s.removed_at_ms IS NULL AND s.kind = t.kind AND s.location = t.location \
                 AND s.entry_json::text = t.entry AND s.verdict IS NOT DISTINCT FROM t.verdict \
                 AND s.owned = t.owned), \
         touched AS ( \
             UPDATE sightings s SET last_seen_ms = $2 FROM same \
             WHERE s.sighting_id = same.sighting_id AND s.last_seen_ms < $2) \
         INSERT INTO sightings (asset_id, agent_id, kind, local_key, location, entry_json, first_seen_ms, \
             last_seen_ms, verdict, owned) \
         SELECT t.asset_id, $1, t.kind, t.local_key, t.location, t.entry::json, $2, $2, t.verdict, t.owned \
         FROM t WHERE NOT EXISTS (SELECT 1 FROM same WHERE same.n = t.n) \
         ORDER BY t.n \
         ON CONFLICT (asset_id, agent_id, local_key) DO UPDATE SET location = excluded.location, \
             entry_json = excluded.entry_json, last_seen_ms = GREATEST(sightings.last_seen_ms, excluded.last_seen_ms), \
             removed_at_ms = NULL, verdict = excluded.verdict, owned = excluded.owned",
        &[&agent_id, &observed, &assets, &kinds, &keys, &locations, &entries, &verdicts, &owned],
    )?;
    Ok(())
}

/// Marks removed every live sighting of the agent that snapshot `snapshot_id` did not name.
fn sweep(tx: &mut Tx<'_>, agent_id: &str, snapshot_id: i64, observed: i64) -> Res<u64> {
    // `OFFSET 0` keeps the NOT EXISTS a primary key probe per live sighting: as an anti join
    // planned from the statistics of a table whose rows come and go with every snapshot, it
    // was seen to scan every key of the snapshot for every sighting (a second per 2,000).
    Ok(tx.execute(
        "UPDATE sightings SET removed_at_ms = $3 \
         WHERE agent_id = $1 AND removed_at_ms IS NULL AND NOT EXISTS ( \
             SELECT 1 FROM snapshot_keys k WHERE k.agent_id = sightings.agent_id AND k.snapshot_id = $2 \
                 AND k.kind = sightings.kind AND k.local_key = sightings.local_key OFFSET 0)",
        &[&agent_id, &snapshot_id, &observed],
    )?)
}

/// `text` with every U+0000 replaced by U+FFFD (PostgreSQL text cannot hold it).
fn clean_text(text: &str) -> Cow<'_, str> {
    if text.contains('\0') {
        Cow::Owned(text.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(text)
    }
}

/// JSON `text` with every U+0000 of its strings and keys, written as the escape `\u0000`,
/// replaced by U+FFFD (PostgreSQL's JSON operators and `jsonb` refuse it). Text without such an
/// escape is returned as it is, byte for byte; text that is not JSON only loses raw U+0000.
fn clean_json(text: &str) -> Cow<'_, str> {
    if !has_nul_escape(text) {
        return clean_text(text);
    }
    let Ok(mut value) = serde_json::from_str::<Value>(text) else { return clean_text(text) };
    clean_value(&mut value);
    match serde_json::to_string(&value) {
        Ok(json) => Cow::Owned(json),
        Err(_) => clean_text(text),
    }
}

/// Whether JSON `text` holds the escape `\u0000` (not `\\u0000`: an escaped backslash, then text).
fn has_nul_escape(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b != b'\\' {
            i += 1;
            continue;
        }
        if bytes.get(i + 1) == Some(&b'u') && bytes.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
            return true;
        }
        i += 2;
    }
    false
}

/// Replaces U+0000 by U+FFFD in every string and key of `value`.
fn clean_value(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Cow::Owned(clean) = clean_text(s) {
                *s = clean;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean_value),
        Value::Object(map) => {
            for (key, mut item) in std::mem::take(map) {
                clean_value(&mut item);
                map.insert(clean_text(&key).into_owned(), item);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::backend::{postgres_store, POSTGRES_VAR};
    use crate::store::tests::{delta, framework, model, registration, SHA_A, SHA_B, SHA_C, WITH_REMOVED};
    use crate::store::types::{AssetKind, HostFacts, PageRequest};
    use crate::store::{SqliteStore, Store};

    /// Batches whose upserts interact inside one batch: a key taken over by another asset and
    /// given back, one (asset, key) named twice, a removal and an upsert of one key, entries
    /// rejected by the quota between accepted ones, a snapshot that sweeps.
    fn tricky_batches() -> Vec<IngestBatch> {
        let removal = |key: &str| IngestRemoval { kind: AssetKind::Model, local_key: key.to_owned() };
        let mut big = model("/m/big", SHA_C);
        big.json = big.json.replace(r#""format":"gguf""#, &format!(r#""format":"gguf","pad":"{}""#, "x".repeat(900)));
        let mut first = delta(
            1,
            1_000,
            vec![
                model("/m/1", SHA_A),
                model("/m/2", SHA_A),
                model("/m/1", SHA_B),
                model("/m/1", SHA_A),
                model("/m/3", SHA_C),
                framework("/venv", "torch", "2.3.0"),
                model("/m/3", SHA_C),
                big.clone(),
                model("/m/4", SHA_B),
            ],
        );
        first.removals.push(removal("/m/9"));
        let mut second = delta(2, 2_000, vec![model("/m/2", SHA_B), model("/m/5", SHA_A), model("/m/2", SHA_A)]);
        second.removals = vec![removal("/m/2"), removal("/m/3"), removal("/m/3")];
        second.host = Some(HostFacts {
            json: r#"{"hostname":"h"}"#.to_owned(),
            hostname: "h".to_owned(),
            machine_fingerprint: String::new(),
        });
        let third = IngestBatch {
            mode: BatchMode::SnapshotPart { snapshot_id: 7, first_part: true, last_part: false },
            ..delta(4, 3_000, vec![model("/m/1", SHA_B), model("/m/3", SHA_C)])
        };
        let fourth = IngestBatch {
            mode: BatchMode::SnapshotPart { snapshot_id: 7, first_part: false, last_part: true },
            ..delta(5, 4_000, vec![model("/m/1", SHA_A), big])
        };
        vec![first, second, third, fourth]
    }

    /// What a store holds after the batches, as the API reads it.
    fn state(store: &dyn Store) -> Vec<String> {
        let mut out = Vec::new();
        let assets = store.assets(&WITH_REMOVED, &PageRequest::default()).expect("assets");
        for asset in assets.items {
            let detail = store.asset(&asset.id, &PageRequest::default()).expect("asset").expect("listed");
            out.push(format!("{:?}", detail.sightings.items));
            out.push(format!("{asset:?}"));
        }
        let agent = store.agent("a").expect("agent").expect("enrolled");
        out.push(format!("{} {:?}", agent.stored_bytes, agent.last_seen_ms));
        let audit = store.audit_log(None, &PageRequest::default()).expect("audit");
        out.extend(audit.items.iter().map(|r| format!("{} {} {}", r.kind, r.subject, r.detail_json)));
        out
    }

    #[test]
    #[ignore = "needs AISCOUT_TEST_POSTGRES; scripts/test.sh runs it with --include-ignored"]
    fn postgres_applies_batches_as_sqlite_does() {
        let url = std::env::var(POSTGRES_VAR).expect("AISCOUT_TEST_POSTGRES names the database");
        let quota = AgentQuota { max_stored_bytes: 1_200 };
        let sqlite = SqliteStore::open_in_memory().expect("sqlite").with_quota(quota);
        let pg = postgres_store(&url).with_quota(quota);
        for store in [&sqlite as &dyn Store, &pg] {
            store.upsert_agent(&registration("a", "host-a", "fp-a", 10)).expect("enroll");
        }
        let mut rejected = 0;
        for batch in tricky_batches() {
            let expected = sqlite.apply_batch("a", &batch).expect("sqlite applies");
            assert_eq!(pg.apply_batch("a", &batch).expect("postgres applies"), expected, "batch {}", batch.sequence);
            if let ApplyOutcome::Applied(summary) | ApplyOutcome::Gap { summary, .. } = expected {
                rejected += summary.rejected.len();
            }
        }
        assert!(rejected > 0, "the quota rejects some");
        assert_eq!(state(&pg), state(&sqlite));
    }

    #[test]
    fn nul_in_what_an_agent_sends_is_stored_as_replacement_characters() {
        let store = crate::store::tests::store();
        store.upsert_agent(&registration("a", "host-a", "fp-a", 10)).expect("enroll");
        let hostile = IngestAsset {
            kind: AssetKind::Model,
            local_key: "/m/a\0b".to_owned(),
            json: format!(r#"{{"path":"/m/a\u0000b","sha256":"{SHA_A}","metadata":{{"name":"x\u0000"}}}}"#),
        };
        let mut batch = delta(1, 1_000, vec![hostile]);
        batch.host = Some(HostFacts {
            json: r#"{"hostname":"h\u0000"}"#.to_owned(),
            hostname: "h\0".to_owned(),
            machine_fingerprint: "f\0".to_owned(),
        });
        match store.apply_batch("a", &batch).expect("applied") {
            ApplyOutcome::Applied(summary) => {
                assert_eq!((summary.upserted, summary.rejected.len(), summary.host_rejected), (1, 0, None));
            }
            other => panic!("{other:?}"),
        }
        let detail = store.asset(&format!("model:{SHA_A}"), &PageRequest::default()).expect("read").expect("stored");
        let sighting = detail.sightings.items.first().expect("a sighting");
        if store.is_postgres() {
            assert_eq!(sighting.local_key, "/m/a\u{FFFD}b");
            assert_eq!(sighting.path_or_environment, "/m/a\u{FFFD}b");
            assert!(!sighting.json.contains("\\u0000") && sighting.json.contains("x\u{FFFD}"), "{}", sighting.json);
            assert_eq!(sighting.reported_hostname.as_deref(), Some("h\u{FFFD}"));
        }
        // The key it is stored under is the one a removal names.
        let mut removal = delta(2, 2_000, Vec::new());
        removal.removals.push(IngestRemoval { kind: AssetKind::Model, local_key: "/m/a\0b".to_owned() });
        match store.apply_batch("a", &removal).expect("applied") {
            ApplyOutcome::Applied(summary) => assert_eq!(summary.removed, 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nul_is_replaced_in_json_strings_and_keys_only_when_escaped() {
        let plain = r#"{ "path": "/m/a.gguf",  "n": 1 }"#;
        assert!(matches!(clean_json(plain), Cow::Borrowed(t) if t == plain), "untouched byte for byte");
        // An escaped backslash then `u0000` is text, not U+0000.
        let literal = r#"{"path":"C:\\u0000\\x", "b" : 2}"#;
        assert!(!has_nul_escape(literal));
        assert!(matches!(clean_json(literal), Cow::Borrowed(t) if t == literal));
        let odd = r#"{"p":"\\\u0000"}"#;
        assert!(has_nul_escape(odd), "a backslash, then U+0000");
        assert_eq!(clean_json(odd), "{\"p\":\"\\\\\u{FFFD}\"}");
        let hostile = r#"{"name":"a\u0000b","meta":{"k\u0000":["\u0000",1,null]}}"#;
        let cleaned: Value = serde_json::from_str(&clean_json(hostile)).expect("json");
        assert_eq!(cleaned["name"], "a\u{FFFD}b");
        assert_eq!(cleaned["meta"]["k\u{FFFD}"][0], "\u{FFFD}");
        assert!(!clean_json(hostile).contains("\\u0000"));
        assert_eq!(clean_text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(clean_text("ab"), Cow::Borrowed("ab")));
        // Not JSON: only raw U+0000 goes.
        assert_eq!(clean_json("not json \\u0000 \0"), "not json \\u0000 \u{FFFD}");
    }
}
