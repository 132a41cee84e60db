//! Findings in PostgreSQL, as `sqlite/findings.rs` (whose pure parts it calls), with these
//! differences:
//! - Reconciliation decides every finding in one pass, in order, as SQLite does (the audit
//!   trail gets the same records in the same order), and writes the findings and their links
//!   set-based, over arrays, instead of statements per finding. The findings it resolves are
//!   taken in id order (SQLite's are in hash order).
//! - A finding's hosts and assets are read as arrays, not JSON lists; JSON columns are read as
//!   text (`::text`), which keeps the stored text byte for byte.
//! - `json_each` is `json_array_elements` / `json_each` guarded by `json_typeof`, as SQLite's
//!   walks an array's items or an object's values.

use std::collections::{HashMap, HashSet};

use postgres::types::ToSql;
use postgres::Row;

use super::{audit, Fail, Res, Tx};
use crate::findings::{severity_rank, SEVERITIES};
use crate::store::error::StoreError;
use crate::store::sqlite::findings::{
    by_severity, count_in_days, entries_sha256, severities_json, trend_ends, GRAPH_LIMIT,
};
use crate::store::types::{
    Acknowledgement, AssetKind, FindingChanges, FindingFilter, FindingRecord, LiveEntry, LiveHost, LiveInventory,
    NewFinding, Page, PageRequest, PolicyRecord, TrendDay,
};
use crate::store::POLICY_ACK_PREFIX as POLICY_ACK;

/// `value` (a count or version of the database) as `u64`; a negative one is a corrupt row.
fn unsigned(value: i64, what: &'static str) -> Res<u64> {
    u64::try_from(value).map_err(|_| {
        Fail::Store(StoreError::Backend {
            operation: "read findings",
            source: format!("{what} is negative ({value})").into(),
        })
    })
}

pub(super) fn live_inventory(tx: &mut Tx<'_>) -> Res<LiveInventory> {
    let rows = tx.query(
        "SELECT agent_id, hostname, last_seen_ms, enrolled_at_ms FROM agents WHERE revoked_at_ms IS NULL \
         ORDER BY agent_id",
        &[],
    )?;
    let mut hosts = Vec::with_capacity(rows.len());
    for r in rows {
        hosts.push(LiveHost {
            agent_id: r.try_get(0)?,
            hostname: r.try_get(1)?,
            last_seen_ms: r.try_get(2)?,
            enrolled_at_ms: r.try_get(3)?,
        });
    }
    let entries = live_entries(tx, "TRUE", &[], None)?;
    Ok(LiveInventory { hosts, entries })
}

/// The stored state of one finding, as reconciliation needs it.
struct Stored {
    state: String,
    severity: String,
    ack_expires_ms: Option<i64>,
    /// Acknowledged by a policy exception rather than an operator.
    by_policy: bool,
}

/// A change of a finding's state decided by reconciliation, written after its row.
enum StateChange<'a> {
    /// A policy exception acknowledges it.
    PolicyAck(&'a NewFinding, &'a Acknowledgement),
    /// The policy exception that acknowledged it is gone.
    PolicyAckGone(&'a NewFinding),
    /// It becomes `open` or `reopened`, without acknowledgement.
    To(&'a NewFinding, &'static str),
}

pub(super) fn reconcile(tx: &mut Tx<'_>, found: &[NewFinding], now_ms: i64) -> Res<FindingChanges> {
    let mut stored: HashMap<String, Stored> = HashMap::new();
    let mut stored_ids: Vec<String> = Vec::new();
    for r in
        tx.query("SELECT finding_id, state, ack_expires_ms, ack_by, severity FROM findings ORDER BY finding_id", &[])?
    {
        let id: String = r.try_get(0)?;
        let by: Option<String> = r.try_get(3)?;
        let by_policy = by.is_some_and(|b| b.starts_with(POLICY_ACK));
        stored_ids.push(id.clone());
        stored.insert(
            id,
            Stored { state: r.try_get(1)?, severity: r.try_get(4)?, ack_expires_ms: r.try_get(2)?, by_policy },
        );
    }
    let mut changes = FindingChanges::default();
    let mut present = HashSet::new();
    let mut new: Vec<&NewFinding> = Vec::new();
    let mut kept: Vec<&NewFinding> = Vec::new();
    let mut state_changes: Vec<StateChange<'_>> = Vec::new();
    for f in found {
        if !present.insert(f.finding_id.as_str()) {
            continue;
        }
        let state = match stored.get(&f.finding_id) {
            None => {
                new.push(f);
                changes.opened += 1;
                note(tx, now_ms, "finding.opened", f)?;
                None
            }
            Some(s) if s.state == "resolved" => {
                changes.reopened += 1;
                note(tx, now_ms, "finding.reopened", f)?;
                Some("reopened")
            }
            Some(s) if s.state == "acknowledged" && s.ack_expires_ms.is_some_and(|e| e <= now_ms) => {
                changes.ack_expired += 1;
                note(tx, now_ms, "finding.acknowledgement_expired", f)?;
                Some("open")
            }
            Some(s) => {
                changes.kept += 1;
                // A finding whose severity changes is news for whoever watches it (the SIEM).
                let rose = severity_rank(&f.severity) > severity_rank(&s.severity);
                if s.severity != f.severity && s.state != "resolved" {
                    let detail = serde_json::json!({"rule": f.rule_id, "from": s.severity, "to": f.severity,
                        "severity": f.severity, "title": f.title});
                    audit::append(tx, now_ms, "finding.severity_changed", &f.finding_id, &detail)?;
                }
                // An operator accepted it at a lower severity: that acceptance does not cover
                // what it has become.
                if rose && s.state == "acknowledged" && !s.by_policy {
                    let detail = serde_json::json!({"rule": f.rule_id, "severity": f.severity,
                        "reason": format!("severity rose from {} to {}", s.severity, f.severity)});
                    audit::append(tx, now_ms, "finding.acknowledgement_dropped", &f.finding_id, &detail)?;
                    Some("open")
                } else {
                    None
                }
            }
        };
        if stored.contains_key(&f.finding_id) {
            kept.push(f);
        }
        // A policy exception acknowledges what it covers; one that no longer does lets go.
        let now_state = match (state, stored.get(&f.finding_id)) {
            (Some(s), _) => s,
            (None, None) => "open",
            (None, Some(s)) => s.state.as_str(),
        };
        let operator_ack =
            stored.get(&f.finding_id).is_some_and(|s| s.state == "acknowledged" && !s.by_policy) && state.is_none();
        match &f.exception {
            Some(e) if !operator_ack && now_state != "resolved" => {
                if now_state != "acknowledged" {
                    let detail = serde_json::json!({"rule": f.rule_id, "severity": f.severity, "by": e.by, "reason": e.reason, "expires_ms": e.expires_ms});
                    audit::append(tx, now_ms, "finding.acknowledged", &f.finding_id, &detail)?;
                }
                state_changes.push(StateChange::PolicyAck(f, e));
                continue;
            }
            None if stored.get(&f.finding_id).is_some_and(|s| s.by_policy && s.state == "acknowledged") => {
                state_changes.push(StateChange::PolicyAckGone(f));
                continue;
            }
            _ => {}
        }
        if let Some(state) = state {
            state_changes.push(StateChange::To(f, state));
        }
    }

    insert_new(tx, &new, now_ms)?;
    refresh_kept(tx, &kept, now_ms)?;
    for change in &state_changes {
        match change {
            StateChange::PolicyAck(f, e) => {
                tx.execute(
                    "UPDATE findings SET state = 'acknowledged', \
                         state_changed_ms = CASE WHEN state = 'acknowledged' THEN state_changed_ms ELSE $2 END, \
                         resolved_at_ms = NULL, ack_reason = $3, ack_by = $4, ack_at_ms = COALESCE(ack_at_ms, $2), \
                         ack_expires_ms = $5 WHERE finding_id = $1",
                    &[&f.finding_id, &now_ms, &e.reason, &e.by, &e.expires_ms],
                )?;
            }
            StateChange::PolicyAckGone(f) => {
                tx.execute(
                    "UPDATE findings SET state = 'open', state_changed_ms = $2, ack_reason = NULL, ack_by = NULL, \
                         ack_at_ms = NULL, ack_expires_ms = NULL WHERE finding_id = $1",
                    &[&f.finding_id, &now_ms],
                )?;
            }
            StateChange::To(f, state) => {
                tx.execute(
                    "UPDATE findings SET state = $2, state_changed_ms = $3, resolved_at_ms = NULL, \
                         reopened_count = reopened_count + CASE WHEN $2 = 'reopened' THEN 1 ELSE 0 END, \
                         ack_reason = NULL, ack_by = NULL, ack_at_ms = NULL, ack_expires_ms = NULL \
                     WHERE finding_id = $1",
                    &[&f.finding_id, state, &now_ms],
                )?;
            }
        }
    }
    let processed: Vec<&NewFinding> = new.iter().chain(kept.iter()).copied().collect();
    replace_links(tx, &processed)?;

    let resolved: Vec<&str> = stored_ids
        .iter()
        .filter(|id| !present.contains(id.as_str()) && stored.get(*id).is_some_and(|s| s.state != "resolved"))
        .map(String::as_str)
        .collect();
    if !resolved.is_empty() {
        tx.execute(
            "UPDATE findings SET state = 'resolved', state_changed_ms = $2, resolved_at_ms = $2, \
                 ack_reason = NULL, ack_by = NULL, ack_at_ms = NULL, ack_expires_ms = NULL \
             WHERE finding_id = ANY($1::text[])",
            &[&resolved, &now_ms],
        )?;
    }
    for id in resolved {
        changes.resolved += 1;
        let severity = stored.get(id).map(|s| s.severity.as_str()).unwrap_or_default();
        audit::append(tx, now_ms, "finding.resolved", id, &serde_json::json!({"severity": severity}))?;
    }
    Ok(changes)
}

/// Inserts the findings found for the first time, open.
fn insert_new(tx: &mut Tx<'_>, new: &[&NewFinding], now_ms: i64) -> Res<()> {
    if new.is_empty() {
        return Ok(());
    }
    let column = |field: fn(&NewFinding) -> &str| -> Vec<&str> { new.iter().map(|f| field(f)).collect() };
    tx.execute(
        "INSERT INTO findings (finding_id, rule_id, subject, severity, title, evidence_json, \
             first_seen_ms, last_seen_ms, state, state_changed_ms) \
         SELECT t.id, t.rule, t.subject, t.severity, t.title, t.evidence::json, $7, $7, 'open', $7 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
             WITH ORDINALITY AS t(id, rule, subject, severity, title, evidence, n) ORDER BY t.n",
        &[
            &column(|f| f.finding_id.as_str()),
            &column(|f| f.rule_id.as_str()),
            &column(|f| f.subject.as_str()),
            &column(|f| f.severity.as_str()),
            &column(|f| f.title.as_str()),
            &column(|f| f.evidence_json.as_str()),
            &now_ms,
        ],
    )?;
    Ok(())
}

/// Sets what the rules say now of the findings found again: severity, title, evidence, last seen.
fn refresh_kept(tx: &mut Tx<'_>, kept: &[&NewFinding], now_ms: i64) -> Res<()> {
    if kept.is_empty() {
        return Ok(());
    }
    let column = |field: fn(&NewFinding) -> &str| -> Vec<&str> { kept.iter().map(|f| field(f)).collect() };
    tx.execute(
        "UPDATE findings f SET severity = t.severity, title = t.title, evidence_json = t.evidence::json, \
             last_seen_ms = $5 \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(id, severity, title, evidence) \
         WHERE f.finding_id = t.id",
        &[
            &column(|f| f.finding_id.as_str()),
            &column(|f| f.severity.as_str()),
            &column(|f| f.title.as_str()),
            &column(|f| f.evidence_json.as_str()),
            &now_ms,
        ],
    )?;
    Ok(())
}

/// Appends `kind` about finding `f` to the audit trail.
fn note(tx: &mut Tx<'_>, now_ms: i64, kind: &str, f: &NewFinding) -> Res<()> {
    let detail = serde_json::json!({"rule": f.rule_id, "severity": f.severity, "title": f.title});
    audit::append(tx, now_ms, kind, &f.finding_id, &detail)
}

/// Replaces the hosts and assets each of `findings` concerns.
fn replace_links(tx: &mut Tx<'_>, findings: &[&NewFinding]) -> Res<()> {
    if findings.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = findings.iter().map(|f| f.finding_id.as_str()).collect();
    tx.execute("DELETE FROM finding_hosts WHERE finding_id = ANY($1::text[])", &[&ids])?;
    tx.execute("DELETE FROM finding_assets WHERE finding_id = ANY($1::text[])", &[&ids])?;
    let pairs = |links: fn(&NewFinding) -> &[String]| -> (Vec<&str>, Vec<&str>) {
        findings.iter().flat_map(|f| links(f).iter().map(|l| (f.finding_id.as_str(), l.as_str()))).unzip()
    };
    let (of, to) = pairs(|f| f.hosts.as_slice());
    if !of.is_empty() {
        tx.execute(
            "INSERT INTO finding_hosts (finding_id, agent_id) SELECT * FROM unnest($1::text[], $2::text[]) \
             ON CONFLICT DO NOTHING",
            &[&of, &to],
        )?;
    }
    let (of, to) = pairs(|f| f.assets.as_slice());
    if !of.is_empty() {
        tx.execute(
            "INSERT INTO finding_assets (finding_id, asset_id) SELECT * FROM unnest($1::text[], $2::text[]) \
             ON CONFLICT DO NOTHING",
            &[&of, &to],
        )?;
    }
    Ok(())
}

pub(super) fn apply_policy(tx: &mut Tx<'_>, p: &PolicyRecord) -> Res<()> {
    let newest: Option<i64> = tx.query_one("SELECT MAX(version) FROM policies", &[])?.try_get(0)?;
    let version = i64::try_from(p.version).map_err(|_| StoreError::InvalidArgument {
        field: "version",
        reason: format!("{} is beyond the largest version a policy may have, 2^63 - 1", p.version),
    })?;
    if let Some(newest) = newest.filter(|n| *n >= version) {
        return Err(StoreError::InvalidArgument {
            field: "version",
            reason: format!("{} is not above the applied policy's version {newest}", p.version),
        }
        .into());
    }
    tx.execute(
        "INSERT INTO policies (version, sha256, text, applied_at_ms, applied_by) VALUES ($1, $2, $3, $4, $5)",
        &[&version, &p.sha256, &p.text, &p.applied_at_ms, &p.applied_by],
    )?;
    Ok(())
}

pub(super) fn current_policy(tx: &mut Tx<'_>) -> Res<Option<PolicyRecord>> {
    let row = tx.query_opt(
        "SELECT version, sha256, text, applied_at_ms, applied_by FROM policies ORDER BY version DESC LIMIT 1",
        &[],
    )?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(PolicyRecord {
        version: unsigned(r.try_get(0)?, "a policy's version")?,
        sha256: r.try_get(1)?,
        text: r.try_get(2)?,
        applied_at_ms: r.try_get(3)?,
        applied_by: r.try_get(4)?,
    }))
}

/// Columns of a finding, for `findings` aliased `f`, read by [`from_row`].
const COLUMNS: &str = "f.finding_id, f.rule_id, f.subject, f.severity, f.title, f.evidence_json::text, \
     f.first_seen_ms, f.last_seen_ms, f.state, f.state_changed_ms, f.resolved_at_ms, f.reopened_count, \
     f.ack_reason, f.ack_by, f.ack_at_ms, f.ack_expires_ms, \
     ARRAY(SELECT h.agent_id FROM finding_hosts h WHERE h.finding_id = f.finding_id ORDER BY h.agent_id), \
     ARRAY(SELECT x.asset_id FROM finding_assets x WHERE x.finding_id = f.finding_id ORDER BY x.asset_id)";

fn from_row(r: &Row) -> Res<FindingRecord> {
    let ack_reason: Option<String> = r.try_get(12)?;
    Ok(FindingRecord {
        found: NewFinding {
            finding_id: r.try_get(0)?,
            rule_id: r.try_get(1)?,
            subject: r.try_get(2)?,
            severity: r.try_get(3)?,
            title: r.try_get(4)?,
            evidence_json: r.try_get(5)?,
            hosts: r.try_get(16)?,
            assets: r.try_get(17)?,
            exception: None,
        },
        first_seen_ms: r.try_get(6)?,
        last_seen_ms: r.try_get(7)?,
        state: r.try_get(8)?,
        state_changed_ms: r.try_get(9)?,
        resolved_at_ms: r.try_get(10)?,
        reopened_count: unsigned(r.try_get(11)?, "a finding's reopened count")?,
        acknowledgement: match ack_reason {
            Some(reason) => Some(Acknowledgement {
                reason,
                by: r.try_get::<_, Option<String>>(13)?.unwrap_or_default(),
                at_ms: r.try_get::<_, Option<i64>>(14)?.unwrap_or_default(),
                expires_ms: r.try_get(15)?,
            }),
            None => None,
        },
    })
}

fn from_rows(rows: Vec<Row>) -> Res<Vec<FindingRecord>> {
    rows.iter().map(from_row).collect()
}

pub(super) fn list(tx: &mut Tx<'_>, filter: &FindingFilter, page: &PageRequest) -> Res<Page<FindingRecord>> {
    let limit = page.effective_limit();
    let severities = match (filter.exact_severity, filter.min_severity.as_deref()) {
        (true, Some(s)) if SEVERITIES.contains(&s) => Some(serde_json::json!([s]).to_string()),
        _ => severities_json(filter.min_severity.as_deref())?,
    };
    let wanted = "($1::text IS NULL OR f.severity IN (SELECT json_array_elements_text($1::text::json))) \
         AND ($2::text IS NULL OR f.rule_id = $2) \
         AND ($3::text IS NULL OR f.state = $3 OR ($3 = 'active' AND f.state IN ('open', 'reopened'))) \
         AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM finding_hosts h WHERE h.finding_id = f.finding_id AND h.agent_id = $4)) \
         AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM finding_assets x WHERE x.finding_id = f.finding_id AND x.asset_id = $5)) \
         AND ($6::bigint IS NULL OR GREATEST(f.first_seen_ms, f.state_changed_ms) >= $6) \
         AND ($7::text[] IS NULL OR f.rule_id = ANY($7))";
    let sql = format!(
        "SELECT {COLUMNS} FROM findings f WHERE {wanted} AND ($8::text IS NULL OR f.finding_id > $8) \
         ORDER BY f.finding_id LIMIT $9"
    );
    let wanted_args: [&(dyn ToSql + Sync); 7] = [
        &severities,
        &filter.rule_id,
        &filter.state,
        &filter.agent_id,
        &filter.asset_id,
        &filter.since_ms,
        &filter.rule_ids,
    ];
    let fetch = i64::from(limit) + 1;
    let page_args: [&(dyn ToSql + Sync); 2] = [&page.after, &fetch];
    let args: Vec<&(dyn ToSql + Sync)> = wanted_args.iter().chain(page_args.iter()).copied().collect();
    let rows = from_rows(tx.query(&sql, &args)?)?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let items: Vec<FindingRecord> = rows.into_iter().take(limit).collect();
    let total: i64 =
        tx.query_one(&format!("SELECT COUNT(*) FROM findings f WHERE {wanted}"), &wanted_args)?.try_get(0)?;
    let next_cursor = if more { items.last().map(|f| f.found.finding_id.clone()) } else { None };
    Ok(Page { items, next_cursor, total: unsigned(total, "a count of findings")? })
}

/// The newest (by first sighting) open or reopened findings of `severity`, at most `limit`.
pub(super) fn newest(tx: &mut Tx<'_>, severity: &str, limit: u32) -> Res<Vec<FindingRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM findings f WHERE f.severity = $1 AND f.state IN ('open', 'reopened') \
         ORDER BY f.first_seen_ms DESC, f.finding_id LIMIT $2"
    );
    from_rows(tx.query(&sql, &[&severity, &i64::from(limit)])?)
}

/// Open and reopened findings by severity, most severe first (every severity, zero included).
pub(super) fn open_by_severity(tx: &mut Tx<'_>) -> Res<Vec<(String, u64)>> {
    let rows = tx.query(
        "SELECT f.severity, COUNT(*) FROM findings f WHERE f.state IN ('open', 'reopened') GROUP BY f.severity",
        &[],
    )?;
    let mut counts = HashMap::with_capacity(rows.len());
    for r in rows {
        counts.insert(r.try_get::<_, String>(0)?, r.try_get::<_, i64>(1)?);
    }
    Ok(by_severity(&counts))
}

/// For each of the `days` days ending at the UTC midnights up to `now_ms`'s next one, oldest
/// first: the day's end and, by severity, the findings first seen by then and not resolved by
/// then (`sqlite/findings.rs`, `trend`).
pub(super) fn trend(tx: &mut Tx<'_>, now_ms: i64, days: u32) -> Res<Vec<TrendDay>> {
    let ends = trend_ends(now_ms, days);
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); ends.len()];
    let rows = tx.query(
        "SELECT f.severity, f.first_seen_ms, CASE WHEN f.state = 'resolved' THEN COALESCE(f.resolved_at_ms, 0) END \
         FROM findings f",
        &[],
    )?;
    for r in rows {
        let severity: String = r.try_get(0)?;
        count_in_days(&ends, &mut counts, &severity, r.try_get(1)?, r.try_get(2)?);
    }
    Ok(ends.into_iter().zip(counts).map(|(end, c)| (end, by_severity(&c))).collect())
}

pub(super) fn get(tx: &mut Tx<'_>, finding_id: &str) -> Res<Option<FindingRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM findings f WHERE f.finding_id = $1");
    tx.query_opt(&sql, &[&finding_id])?.as_ref().map(from_row).transpose()
}

pub(super) fn acknowledge(tx: &mut Tx<'_>, finding_id: &str, ack: &Acknowledgement) -> Res<Option<FindingRecord>> {
    let Some(current) = get(tx, finding_id)? else { return Ok(None) };
    if current.state == "resolved" {
        return Err(StoreError::InvalidArgument {
            field: "finding",
            reason: format!("{finding_id} is resolved: its evidence is gone, there is nothing to acknowledge"),
        }
        .into());
    }
    tx.execute(
        "UPDATE findings SET state = 'acknowledged', state_changed_ms = $2, ack_reason = $3, ack_by = $4, \
             ack_at_ms = $2, ack_expires_ms = $5 WHERE finding_id = $1",
        &[&finding_id, &ack.at_ms, &ack.reason, &ack.by, &ack.expires_ms],
    )?;
    let detail = serde_json::json!({"rule": current.found.rule_id, "severity": current.found.severity, "by": ack.by, "reason": ack.reason, "expires_ms": ack.expires_ms});
    audit::append(tx, ack.at_ms, "finding.acknowledged", finding_id, &detail)?;
    get(tx, finding_id)
}

/// Live sightings of unrevoked agents matching `condition` (over `sightings` aliased `s`, with
/// `params` as `$1`…), at most `limit` (`None`: all), as [`LiveEntry`]s; entries of an unknown
/// kind are left out.
fn live_entries(
    tx: &mut Tx<'_>,
    condition: &str,
    params: &[&(dyn ToSql + Sync)],
    limit: Option<i64>,
) -> Res<Vec<LiveEntry>> {
    let sql = format!(
        "SELECT s.agent_id, s.kind, s.asset_id, s.local_key, s.entry_json::text, s.first_seen_ms FROM sightings s \
         JOIN agents a ON a.agent_id = s.agent_id \
         WHERE s.removed_at_ms IS NULL AND a.revoked_at_ms IS NULL AND {condition} \
         ORDER BY s.agent_id, s.kind, s.local_key LIMIT ${}",
        params.len() + 1
    );
    let args: Vec<&(dyn ToSql + Sync)> = params.iter().copied().chain([&limit as &(dyn ToSql + Sync)]).collect();
    let rows = tx.query(&sql, &args)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let Some(kind) = AssetKind::from_name(&r.try_get::<_, String>(1)?) else { continue };
        out.push(LiveEntry {
            agent_id: r.try_get(0)?,
            kind,
            asset_id: r.try_get(2)?,
            local_key: r.try_get(3)?,
            entry_json: r.try_get(4)?,
            first_seen_ms: r.try_get(5)?,
        });
    }
    Ok(out)
}

pub(super) fn graph_entries(tx: &mut Tx<'_>, agent_id: Option<&str>, asset_id: Option<&str>) -> Res<Vec<LiveEntry>> {
    if let Some(agent) = agent_id {
        return live_entries(tx, "s.agent_id = $1 AND s.kind IN ('model', 'runtime')", &[&agent], Some(GRAPH_LIMIT));
    }
    let Some(asset) = asset_id else { return Ok(Vec::new()) };
    let mut out = live_entries(tx, "s.asset_id = $1", &[&asset], Some(GRAPH_LIMIT))?;
    if let Some(sha) = entries_sha256(&out) {
        // SQLite's `json_each(entry_json, '$.open_models')`: an array's items or an object's values.
        out.extend(live_entries(
            tx,
            "s.kind = 'runtime' AND EXISTS (SELECT 1 FROM ( \
                 SELECT j FROM json_array_elements(CASE WHEN json_typeof(s.entry_json -> 'open_models') = 'array' \
                     THEN s.entry_json -> 'open_models' END) AS j \
                 UNION ALL SELECT value FROM json_each(CASE WHEN json_typeof(s.entry_json -> 'open_models') = 'object' \
                     THEN s.entry_json -> 'open_models' END)) AS m(v) \
             WHERE json_typeof(m.v) = 'object' AND json_typeof(m.v -> 'sha256') = 'string' AND m.v ->> 'sha256' = $1)",
            &[&sha],
            Some(GRAPH_LIMIT),
        )?);
    }
    Ok(out)
}
