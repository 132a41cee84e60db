//! The audit trail: an append-only log of inventory, finding, policy, agent and token changes,
//! each record chained by hash to the one before (docs/findings.md, *Audit trail*).
//!
//! A record is appended in the same transaction as the change it records, so the log and the
//! state never disagree. Its `sha256` is SHA-256 over the previous record's `sha256` (64 zeros
//! for the first) and the record's own fields, each on its own line:
//! `prev \n seq \n at_ms \n kind \n subject \n detail_json`. [`verify`] recomputes the chain
//! and names the first record that does not match: an edited, deleted or reordered record
//! breaks it from there on.

use rusqlite::{params, OptionalExtension, Transaction};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Res;
use crate::store::types::{AuditRecord, AuditVerification, Page, PageRequest};

/// The `prev` of the first record.
pub(crate) const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

pub(crate) fn digest(prev: &str, seq: i64, at_ms: i64, kind: &str, subject: &str, detail_json: &str) -> String {
    let mut h = Sha256::new();
    for part in [prev, &seq.to_string(), &at_ms.to_string(), kind, subject, detail_json] {
        h.update(part.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

/// Appends one record: `kind` (`finding.opened`, `agent.revoked`, …) about `subject`.
pub(super) fn append(tx: &Transaction<'_>, at_ms: i64, kind: &str, subject: &str, detail: &Value) -> Res<()> {
    let last: Option<(i64, String)> = tx
        .query_row("SELECT seq, sha256 FROM audit ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (seq, prev) = match last {
        Some((seq, sha)) => (seq + 1, sha),
        None => (1, GENESIS.to_string()),
    };
    let detail_json = detail.to_string();
    let sha = digest(&prev, seq, at_ms, kind, subject, &detail_json);
    tx.execute(
        "INSERT INTO audit (seq, at_ms, kind, subject, detail_json, prev_sha256, sha256) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![seq, at_ms, kind, subject, detail_json, prev, sha],
    )?;
    Ok(())
}

fn record(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    Ok(AuditRecord {
        seq: u64::try_from(r.get::<_, i64>(0)?).unwrap_or_default(),
        at_ms: r.get(1)?,
        kind: r.get(2)?,
        subject: r.get(3)?,
        detail_json: r.get(4)?,
        prev_sha256: r.get(5)?,
        sha256: r.get(6)?,
    })
}

const COLUMNS: &str = "seq, at_ms, kind, subject, detail_json, prev_sha256, sha256";

pub(super) fn list(tx: &Transaction<'_>, since_ms: Option<i64>, page: &PageRequest) -> Res<Page<AuditRecord>> {
    let limit = page.effective_limit();
    let after: i64 = match &page.after {
        Some(c) => c.parse().map_err(|_| crate::store::StoreError::InvalidCursor { cursor: c.clone() })?,
        None => 0,
    };
    let mut stmt = tx.prepare(&format!(
        "SELECT {COLUMNS} FROM audit WHERE seq > ?1 AND (?2 IS NULL OR at_ms >= ?2) ORDER BY seq LIMIT ?3"
    ))?;
    let mut items =
        stmt.query_map(params![after, since_ms, limit + 1], record)?.collect::<rusqlite::Result<Vec<_>>>()?;
    drop(stmt);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = items.len() > limit;
    items.truncate(limit);
    let total: i64 =
        tx.query_row("SELECT COUNT(*) FROM audit WHERE ?1 IS NULL OR at_ms >= ?1", [since_ms], |r| r.get(0))?;
    let next_cursor = if more { items.last().map(|r| r.seq.to_string()) } else { None };
    Ok(Page { items, next_cursor, total: u64::try_from(total).unwrap_or_default() })
}

pub(super) fn verify(tx: &Transaction<'_>) -> Res<AuditVerification> {
    let mut stmt = tx.prepare(&format!("SELECT {COLUMNS} FROM audit ORDER BY seq"))?;
    let rows = stmt.query_map([], record)?;
    let mut chain = ChainCheck::default();
    for row in rows {
        if let Some(broken) = chain.check(row?) {
            return Ok(broken);
        }
    }
    Ok(chain.intact())
}

/// [`verify`]'s walk of the chain, record by record in `seq` order (shared by the backends).
pub(crate) struct ChainCheck {
    /// The `sha256` of the last record checked ([`GENESIS`] before the first).
    prev: String,
    /// The `seq` the next record must have.
    expected_seq: u64,
    /// Records found intact.
    checked: u64,
}

impl Default for ChainCheck {
    fn default() -> Self {
        Self { prev: GENESIS.to_string(), expected_seq: 1, checked: 0 }
    }
}

impl ChainCheck {
    /// Checks the next record: `Some` with the verdict when it breaks the chain (stop there).
    pub(crate) fn check(&mut self, r: AuditRecord) -> Option<AuditVerification> {
        let (prev, expected_seq) = (&self.prev, self.expected_seq);
        let seq = i64::try_from(r.seq).unwrap_or(i64::MAX);
        let broken = if r.seq != expected_seq {
            Some(format!("sequence {} where {expected_seq} was expected (a record was removed)", r.seq))
        } else if r.prev_sha256 != *prev {
            Some("its prev_sha256 is not the previous record's sha256".to_string())
        } else if digest(prev, seq, r.at_ms, &r.kind, &r.subject, &r.detail_json) != r.sha256 {
            Some("its sha256 does not match its content (the record was changed)".to_string())
        } else {
            None
        };
        if let Some(reason) = broken {
            return Some(AuditVerification { records: self.checked, broken_at: Some((r.seq, reason)) });
        }
        self.prev = r.sha256;
        self.expected_seq += 1;
        self.checked += 1;
        None
    }

    /// The verdict when every record was found intact.
    pub(crate) fn intact(&self) -> AuditVerification {
        AuditVerification { records: self.checked, broken_at: None }
    }
}

pub(super) fn finding_events(tx: &Transaction<'_>, after_seq: u64, limit: u32) -> Res<Vec<AuditRecord>> {
    let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
    let mut stmt = tx.prepare(&format!(
        "SELECT {COLUMNS} FROM audit WHERE seq > ?1 AND kind LIKE 'finding.%' ORDER BY seq LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![after, limit], record)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

pub(super) fn siem_cursor(tx: &Transaction<'_>, target: &str) -> Res<u64> {
    let seq: Option<i64> =
        tx.query_row("SELECT last_seq FROM siem_cursors WHERE target = ?1", [target], |r| r.get(0)).optional()?;
    Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
}

pub(super) fn advance_siem_cursor(
    tx: &Transaction<'_>,
    target: &str,
    seq: u64,
    delivered: u64,
    now_ms: i64,
) -> Res<()> {
    let (seq, delivered) = (i64::try_from(seq).unwrap_or(i64::MAX), i64::try_from(delivered).unwrap_or(i64::MAX));
    tx.execute(
        "INSERT INTO siem_cursors (target, last_seq, delivered, last_ok_ms) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (target) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq), \
             delivered = delivered + excluded.delivered, last_ok_ms = excluded.last_ok_ms",
        params![target, seq, delivered, now_ms],
    )?;
    Ok(())
}

pub(super) fn note_siem_error(tx: &Transaction<'_>, target: &str, error: &str, now_ms: i64) -> Res<()> {
    tx.execute(
        "INSERT INTO siem_cursors (target, last_error, last_error_ms) VALUES (?1, ?2, ?3) \
         ON CONFLICT (target) DO UPDATE SET last_error = excluded.last_error, last_error_ms = excluded.last_error_ms",
        params![target, error, now_ms],
    )?;
    Ok(())
}

/// Compares every asset's state (live or not, worst live verdict) with what the last call saw
/// and records the differences: `asset.disappeared`, `asset.reappeared`,
/// `asset.verdict_changed`. Returns how many records it appended.
pub(super) fn reconcile_asset_states(tx: &Transaction<'_>, now_ms: i64) -> Res<u64> {
    let mut stmt = tx.prepare(
        "SELECT a.asset_id, a.kind, \
             EXISTS (SELECT 1 FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
                 WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL), \
             (SELECT s.verdict FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
                 WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL \
                     AND s.verdict IS NOT NULL \
                 ORDER BY CASE s.verdict WHEN 'dangerous' THEN 3 WHEN 'suspicious' THEN 2 WHEN 'unknown' THEN 1 ELSE 0 END DESC \
                 LIMIT 1), \
             st.live, st.verdict, st.asset_id IS NOT NULL \
         FROM assets a LEFT JOIN asset_states st ON st.asset_id = a.asset_id",
    )?;
    type Row = (String, String, bool, Option<String>, Option<bool>, Option<String>, bool);
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))?
        .collect::<rusqlite::Result<Vec<Row>>>()?;
    drop(stmt);
    let mut appended = 0;
    for (asset_id, kind, live, verdict, was_live, was_verdict, known) in rows {
        let was = known.then_some((was_live, was_verdict.as_deref()));
        let (records, changed) = asset_state_change(&kind, live, verdict.as_deref(), was);
        for (record_kind, detail) in records {
            append(tx, now_ms, record_kind, &asset_id, &detail)?;
            appended += 1;
        }
        if !changed {
            continue;
        }
        tx.execute(
            "INSERT INTO asset_states (asset_id, live, verdict) VALUES (?1, ?2, ?3) \
             ON CONFLICT (asset_id) DO UPDATE SET live = excluded.live, verdict = excluded.verdict",
            params![asset_id, live, verdict],
        )?;
    }
    Ok(appended)
}

/// What [`reconcile_asset_states`] makes of one asset of `kind` found `live` with worst live
/// `verdict`, given `was` (its stored liveness and verdict; `None` when none is stored): the
/// records to append, and whether its stored state must be written (shared by the backends).
pub(crate) fn asset_state_change(
    kind: &str,
    live: bool,
    verdict: Option<&str>,
    was: Option<(Option<bool>, Option<&str>)>,
) -> (Vec<(&'static str, Value)>, bool) {
    let mut records = Vec::new();
    let Some((was_live, was_verdict)) = was else { return (records, true) };
    let was_live = was_live.unwrap_or(false);
    if was_live && !live {
        records.push(("asset.disappeared", serde_json::json!({"kind": kind})));
    } else if !was_live && live {
        records.push(("asset.reappeared", serde_json::json!({"kind": kind})));
    }
    if live && was_live && verdict != was_verdict {
        records.push(("asset.verdict_changed", serde_json::json!({"kind": kind, "from": was_verdict, "to": verdict})));
    }
    let changed = !(live == was_live && verdict == was_verdict);
    (records, changed)
}
