//! The audit trail, as `sqlite/audit.rs` (same record digest, chain check and asset-state
//! rules, shared from there). What differs: an append holds the advisory lock
//! `super::locks::AUDIT` until its transaction ends, so collectors sharing the database append
//! one after the other and keep one chain; `detail_json` is a `json` column, written from and
//! read as its exact text; the chain is verified through a cursor, not read whole; the asset
//! states are reconciled in an explicit order (kind, then id, bytewise), the one SQLite's
//! covering index gives.

use serde_json::Value;

use super::agents::stored;
use super::{locks, Fail, Res, Tx};
use crate::store::error::StoreError;
use crate::store::sqlite::audit::{asset_state_change, digest, ChainCheck, GENESIS};
use crate::store::types::{AuditRecord, AuditVerification, Page, PageRequest};

/// Records read per round trip by [`verify`].
const VERIFY_CHUNK: i32 = 1000;

/// Appends one record: `kind` (`finding.opened`, `agent.revoked`, …) about `subject`.
pub(super) fn append(tx: &mut Tx<'_>, at_ms: i64, kind: &str, subject: &str, detail: &Value) -> Res<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&locks::AUDIT])?;
    let last = tx.query_opt("SELECT seq, sha256 FROM audit ORDER BY seq DESC LIMIT 1", &[])?;
    let (seq, prev): (i64, String) = match last {
        Some(r) => {
            let seq = r.try_get::<_, i64>(0)?;
            let next = seq.checked_add(1).ok_or_else(|| {
                Fail::Store(StoreError::Backend {
                    operation: "append to the audit trail",
                    source: format!("the audit trail is full at sequence {seq}").into(),
                })
            })?;
            (next, r.try_get(1)?)
        }
        None => (1, GENESIS.to_string()),
    };
    let detail_json = detail.to_string();
    let sha = digest(&prev, seq, at_ms, kind, subject, &detail_json);
    tx.execute(
        "INSERT INTO audit (seq, at_ms, kind, subject, detail_json, prev_sha256, sha256) \
         VALUES ($1, $2, $3, $4, $5::text::json, $6, $7)",
        &[&seq, &at_ms, &kind, &subject, &detail_json, &prev, &sha],
    )?;
    Ok(())
}

/// Columns read by [`record`], in its order.
const COLUMNS: &str = "seq, at_ms, kind, subject, detail_json::text, prev_sha256, sha256";

fn record(r: &postgres::Row) -> Res<AuditRecord> {
    Ok(AuditRecord {
        seq: stored(r.try_get::<_, i64>(0)?, "audit.seq")?,
        at_ms: r.try_get(1)?,
        kind: r.try_get(2)?,
        subject: r.try_get(3)?,
        detail_json: r.try_get(4)?,
        prev_sha256: r.try_get(5)?,
        sha256: r.try_get(6)?,
    })
}

pub(super) fn list(tx: &mut Tx<'_>, since_ms: Option<i64>, page: &PageRequest) -> Res<Page<AuditRecord>> {
    let limit = page.effective_limit();
    let after: i64 = match &page.after {
        Some(c) => c.parse().map_err(|_| StoreError::InvalidCursor { cursor: c.clone() })?,
        None => 0,
    };
    let rows = tx.query(
        &format!(
            "SELECT {COLUMNS} FROM audit WHERE seq > $1 AND ($2::BIGINT IS NULL OR at_ms >= $2) ORDER BY seq LIMIT $3"
        ),
        &[&after, &since_ms, &(i64::from(limit) + 1)],
    )?;
    let mut items = rows.iter().map(record).collect::<Res<Vec<_>>>()?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = items.len() > limit;
    items.truncate(limit);
    let total: i64 =
        tx.query_one("SELECT COUNT(*) FROM audit WHERE $1::BIGINT IS NULL OR at_ms >= $1", &[&since_ms])?.try_get(0)?;
    let next_cursor = if more { items.last().map(|r| r.seq.to_string()) } else { None };
    Ok(Page { items, next_cursor, total: stored(total, "the audit record count")? })
}

pub(super) fn verify(tx: &mut Tx<'_>) -> Res<AuditVerification> {
    let portal = tx.bind(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"), &[])?;
    let mut chain = ChainCheck::default();
    loop {
        let rows = tx.query_portal(&portal, VERIFY_CHUNK)?;
        for r in &rows {
            if let Some(broken) = chain.check(record(r)?) {
                return Ok(broken);
            }
        }
        if rows.len() < usize::try_from(VERIFY_CHUNK).unwrap_or(usize::MAX) {
            return Ok(chain.intact());
        }
    }
}

pub(super) fn finding_events(tx: &mut Tx<'_>, after_seq: u64, limit: u32) -> Res<Vec<AuditRecord>> {
    // Past i64::MAX no record can be: the largest bound selects the same nothing.
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let rows = tx.query(
        &format!("SELECT {COLUMNS} FROM audit WHERE seq > $1 AND kind LIKE 'finding.%' ORDER BY seq LIMIT $2"),
        &[&after, &i64::from(limit)],
    )?;
    rows.iter().map(record).collect()
}

pub(super) fn siem_cursor(tx: &mut Tx<'_>, target: &str) -> Res<u64> {
    match tx.query_opt("SELECT last_seq FROM siem_cursors WHERE target = $1", &[&target])? {
        Some(r) => stored(r.try_get::<_, i64>(0)?, "siem_cursors.last_seq"),
        None => Ok(0),
    }
}

/// `value` of argument `field` as the store's `BIGINT`.
fn bigint(value: u64, field: &'static str) -> Res<i64> {
    i64::try_from(value).map_err(|_| {
        Fail::Store(StoreError::InvalidArgument { field, reason: format!("{value} is larger than the store holds") })
    })
}

pub(super) fn advance_siem_cursor(tx: &mut Tx<'_>, target: &str, seq: u64, delivered: u64, now_ms: i64) -> Res<()> {
    let (seq, delivered) = (bigint(seq, "seq")?, bigint(delivered, "delivered")?);
    tx.execute(
        "INSERT INTO siem_cursors (target, last_seq, delivered, last_ok_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (target) DO UPDATE SET last_seq = GREATEST(siem_cursors.last_seq, excluded.last_seq), \
             delivered = siem_cursors.delivered + excluded.delivered, last_ok_ms = excluded.last_ok_ms",
        &[&target, &seq, &delivered, &now_ms],
    )?;
    Ok(())
}

pub(super) fn note_siem_error(tx: &mut Tx<'_>, target: &str, error: &str, now_ms: i64) -> Res<()> {
    tx.execute(
        "INSERT INTO siem_cursors (target, last_error, last_error_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (target) DO UPDATE SET last_error = excluded.last_error, last_error_ms = excluded.last_error_ms",
        &[&target, &error, &now_ms],
    )?;
    Ok(())
}

/// Compares every asset's state (live or not, worst live verdict) with what the last call saw
/// and records the differences ([`asset_state_change`]). Returns how many records it appended.
pub(super) fn reconcile_asset_states(tx: &mut Tx<'_>, now_ms: i64) -> Res<u64> {
    let rows = tx.query(
        "SELECT a.asset_id, a.kind, \
             EXISTS (SELECT 1 FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
                 WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL), \
             (SELECT s.verdict FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
                 WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL \
                     AND s.verdict IS NOT NULL \
                 ORDER BY CASE s.verdict WHEN 'dangerous' THEN 3 WHEN 'suspicious' THEN 2 WHEN 'unknown' THEN 1 ELSE 0 END DESC \
                 LIMIT 1), \
             st.live, st.verdict, st.asset_id IS NOT NULL \
         FROM assets a LEFT JOIN asset_states st ON st.asset_id = a.asset_id \
         ORDER BY a.kind COLLATE \"C\", a.asset_id COLLATE \"C\"",
        &[],
    )?;
    let mut appended = 0;
    for r in &rows {
        let asset_id: &str = r.try_get(0)?;
        let kind: &str = r.try_get(1)?;
        let live: bool = r.try_get(2)?;
        let verdict: Option<&str> = r.try_get(3)?;
        let was_live: Option<bool> = r.try_get(4)?;
        let was_verdict: Option<&str> = r.try_get(5)?;
        let known: bool = r.try_get(6)?;
        let (records, changed) = asset_state_change(kind, live, verdict, known.then_some((was_live, was_verdict)));
        for (record_kind, detail) in records {
            append(tx, now_ms, record_kind, asset_id, &detail)?;
            appended += 1;
        }
        if changed {
            tx.execute(
                "INSERT INTO asset_states (asset_id, live, verdict) VALUES ($1, $2, $3) \
                 ON CONFLICT (asset_id) DO UPDATE SET live = excluded.live, verdict = excluded.verdict",
                &[&asset_id, &live, &verdict],
            )?;
        }
    }
    Ok(appended)
}
