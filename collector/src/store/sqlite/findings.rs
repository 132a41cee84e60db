//! Findings in SQLite: the live inventory the rules read, the reconciliation that keeps the
//! findings' lifecycle (`crate::findings`, *Lifecycle*), the listing and acknowledgements.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, params_from_iter, OptionalExtension, Row, ToSql, Transaction};

use super::{audit, Res};
use crate::store::error::StoreError;
use crate::store::types::{
    Acknowledgement, AssetKind, FindingChanges, FindingFilter, FindingRecord, LiveEntry, LiveHost, LiveInventory,
    NewFinding, Page, PageRequest, PolicyRecord, TrendDay,
};

use crate::findings::{severity_rank, SEVERITIES};
use crate::store::POLICY_ACK_PREFIX as POLICY_ACK;

pub(super) fn live_inventory(tx: &Transaction<'_>) -> Res<LiveInventory> {
    let mut hosts = tx.prepare(
        "SELECT agent_id, hostname, last_seen_ms, enrolled_at_ms FROM agents WHERE revoked_at_ms IS NULL \
         ORDER BY agent_id",
    )?;
    let hosts = hosts
        .query_map([], |r| {
            Ok(LiveHost {
                agent_id: r.get(0)?,
                hostname: r.get(1)?,
                last_seen_ms: r.get(2)?,
                enrolled_at_ms: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let entries = live_entries(tx, "1 = 1", &[], -1)?;
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

pub(super) fn reconcile(tx: &Transaction<'_>, found: &[NewFinding], now_ms: i64) -> Res<FindingChanges> {
    let mut stored: HashMap<String, Stored> = HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT finding_id, state, ack_expires_ms, ack_by, severity FROM findings")?;
        let rows = stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, Option<String>>(3)?, r.get(4)?))
        })?;
        for row in rows {
            let (id, state, ack_expires_ms, by, severity) = row?;
            let by_policy = by.is_some_and(|b| b.starts_with(POLICY_ACK));
            stored.insert(id, Stored { state, severity, ack_expires_ms, by_policy });
        }
    }
    let mut changes = FindingChanges::default();
    let mut present = HashSet::new();
    for f in found {
        if !present.insert(f.finding_id.as_str()) {
            continue;
        }
        let state = match stored.get(&f.finding_id) {
            None => {
                tx.execute(
                    "INSERT INTO findings (finding_id, rule_id, subject, severity, title, evidence_json, \
                         first_seen_ms, last_seen_ms, state, state_changed_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, 'open', ?7)",
                    params![f.finding_id, f.rule_id, f.subject, f.severity, f.title, f.evidence_json, now_ms],
                )?;
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
        tx.execute(
            "UPDATE findings SET severity = ?2, title = ?3, evidence_json = ?4, last_seen_ms = ?5 WHERE finding_id = ?1",
            params![f.finding_id, f.severity, f.title, f.evidence_json, now_ms],
        )?;
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
                tx.execute(
                    "UPDATE findings SET state = 'acknowledged', \
                         state_changed_ms = CASE WHEN state = 'acknowledged' THEN state_changed_ms ELSE ?2 END, \
                         resolved_at_ms = NULL, ack_reason = ?3, ack_by = ?4, ack_at_ms = COALESCE(ack_at_ms, ?2), \
                         ack_expires_ms = ?5 WHERE finding_id = ?1",
                    params![f.finding_id, now_ms, e.reason, e.by, e.expires_ms],
                )?;
                continue_with_links(tx, f)?;
                continue;
            }
            None if stored.get(&f.finding_id).is_some_and(|s| s.by_policy && s.state == "acknowledged") => {
                tx.execute(
                    "UPDATE findings SET state = 'open', state_changed_ms = ?2, ack_reason = NULL, ack_by = NULL, \
                         ack_at_ms = NULL, ack_expires_ms = NULL WHERE finding_id = ?1",
                    params![f.finding_id, now_ms],
                )?;
                continue_with_links(tx, f)?;
                continue;
            }
            _ => {}
        }
        if let Some(state) = state {
            tx.execute(
                "UPDATE findings SET state = ?2, state_changed_ms = ?3, resolved_at_ms = NULL, \
                     reopened_count = reopened_count + (?2 = 'reopened'), \
                     ack_reason = NULL, ack_by = NULL, ack_at_ms = NULL, ack_expires_ms = NULL \
                 WHERE finding_id = ?1",
                params![f.finding_id, state, now_ms],
            )?;
        }
        continue_with_links(tx, f)?;
    }
    for (id, s) in &stored {
        if present.contains(id.as_str()) || s.state == "resolved" {
            continue;
        }
        tx.execute(
            "UPDATE findings SET state = 'resolved', state_changed_ms = ?2, resolved_at_ms = ?2, \
                 ack_reason = NULL, ack_by = NULL, ack_at_ms = NULL, ack_expires_ms = NULL WHERE finding_id = ?1",
            params![id, now_ms],
        )?;
        changes.resolved += 1;
        audit::append(tx, now_ms, "finding.resolved", id, &serde_json::json!({"severity": s.severity}))?;
    }
    Ok(changes)
}

/// The severities at or above `min` as a JSON list (for `json_each`); `None` without a minimum,
/// refused when `min` is no severity.
pub(crate) fn severities_json(min: Option<&str>) -> Result<Option<String>, StoreError> {
    let Some(min) = min else { return Ok(None) };
    let list = crate::findings::at_or_above(min).ok_or_else(|| StoreError::InvalidArgument {
        field: "severity",
        reason: format!("one of {}", SEVERITIES.join(", ")),
    })?;
    Ok(Some(serde_json::to_string(list).unwrap_or_default()))
}

/// Appends `kind` about finding `f` to the audit trail.
fn note(tx: &Transaction<'_>, now_ms: i64, kind: &str, f: &NewFinding) -> Res<()> {
    let detail = serde_json::json!({"rule": f.rule_id, "severity": f.severity, "title": f.title});
    audit::append(tx, now_ms, kind, &f.finding_id, &detail)
}

/// Replaces the hosts and assets `f` concerns.
fn continue_with_links(tx: &Transaction<'_>, f: &NewFinding) -> Res<()> {
    tx.execute("DELETE FROM finding_hosts WHERE finding_id = ?1", [&f.finding_id])?;
    tx.execute("DELETE FROM finding_assets WHERE finding_id = ?1", [&f.finding_id])?;
    for host in &f.hosts {
        tx.execute(
            "INSERT OR IGNORE INTO finding_hosts (finding_id, agent_id) VALUES (?1, ?2)",
            params![f.finding_id, host],
        )?;
    }
    for asset in &f.assets {
        tx.execute(
            "INSERT OR IGNORE INTO finding_assets (finding_id, asset_id) VALUES (?1, ?2)",
            params![f.finding_id, asset],
        )?;
    }
    Ok(())
}

pub(super) fn apply_policy(tx: &Transaction<'_>, p: &PolicyRecord) -> Res<()> {
    let newest: Option<i64> = tx.query_row("SELECT MAX(version) FROM policies", [], |r| r.get(0))?;
    let version = i64::try_from(p.version).unwrap_or(i64::MAX);
    if let Some(newest) = newest.filter(|n| *n >= version) {
        return Err(StoreError::InvalidArgument {
            field: "version",
            reason: format!("{} is not above the applied policy's version {newest}", p.version),
        }
        .into());
    }
    tx.execute(
        "INSERT INTO policies (version, sha256, text, applied_at_ms, applied_by) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![version, p.sha256, p.text, p.applied_at_ms, p.applied_by],
    )?;
    Ok(())
}

pub(super) fn current_policy(tx: &Transaction<'_>) -> Res<Option<PolicyRecord>> {
    Ok(tx
        .query_row(
            "SELECT version, sha256, text, applied_at_ms, applied_by FROM policies ORDER BY version DESC LIMIT 1",
            [],
            |r| {
                Ok(PolicyRecord {
                    version: u64::try_from(r.get::<_, i64>(0)?).unwrap_or_default(),
                    sha256: r.get(1)?,
                    text: r.get(2)?,
                    applied_at_ms: r.get(3)?,
                    applied_by: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Columns of a finding, for `findings` aliased `f`, read by [`from_row`].
const COLUMNS: &str = "f.finding_id, f.rule_id, f.subject, f.severity, f.title, f.evidence_json, f.first_seen_ms, \
     f.last_seen_ms, f.state, f.state_changed_ms, f.resolved_at_ms, f.reopened_count, f.ack_reason, f.ack_by, \
     f.ack_at_ms, f.ack_expires_ms, \
     (SELECT json_group_array(agent_id) FROM (SELECT agent_id FROM finding_hosts h WHERE h.finding_id = f.finding_id ORDER BY agent_id)), \
     (SELECT json_group_array(asset_id) FROM (SELECT asset_id FROM finding_assets x WHERE x.finding_id = f.finding_id ORDER BY asset_id))";

fn from_row(r: &Row<'_>) -> rusqlite::Result<FindingRecord> {
    let list = |i: usize| -> rusqlite::Result<Vec<String>> {
        let text: String = r.get(i)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    let ack_reason: Option<String> = r.get(12)?;
    Ok(FindingRecord {
        found: NewFinding {
            finding_id: r.get(0)?,
            rule_id: r.get(1)?,
            subject: r.get(2)?,
            severity: r.get(3)?,
            title: r.get(4)?,
            evidence_json: r.get(5)?,
            hosts: list(16)?,
            assets: list(17)?,
            exception: None,
        },
        first_seen_ms: r.get(6)?,
        last_seen_ms: r.get(7)?,
        state: r.get(8)?,
        state_changed_ms: r.get(9)?,
        resolved_at_ms: r.get(10)?,
        reopened_count: u64::try_from(r.get::<_, i64>(11)?).unwrap_or_default(),
        acknowledgement: match ack_reason {
            Some(reason) => Some(Acknowledgement {
                reason,
                by: r.get::<_, Option<String>>(13)?.unwrap_or_default(),
                at_ms: r.get::<_, Option<i64>>(14)?.unwrap_or_default(),
                expires_ms: r.get(15)?,
            }),
            None => None,
        },
    })
}

pub(super) fn list(tx: &Transaction<'_>, filter: &FindingFilter, page: &PageRequest) -> Res<Page<FindingRecord>> {
    let limit = page.effective_limit();
    let severities = match (filter.exact_severity, filter.min_severity.as_deref()) {
        (true, Some(s)) if SEVERITIES.contains(&s) => Some(serde_json::json!([s]).to_string()),
        _ => severities_json(filter.min_severity.as_deref())?,
    };
    let min_rank = severities.as_ref().map(|_| 1);
    let ranked = severities.unwrap_or_else(|| "[]".into());
    let wanted = "(?1 IS NULL OR f.severity IN (SELECT value FROM json_each(?2))) \
         AND (?3 IS NULL OR f.rule_id = ?3) AND (?4 IS NULL OR f.state = ?4 OR (?4 = 'active' AND f.state IN ('open', 'reopened'))) \
         AND (?5 IS NULL OR EXISTS (SELECT 1 FROM finding_hosts h WHERE h.finding_id = f.finding_id AND h.agent_id = ?5)) \
         AND (?6 IS NULL OR EXISTS (SELECT 1 FROM finding_assets x WHERE x.finding_id = f.finding_id AND x.asset_id = ?6)) \
         AND (?7 IS NULL OR MAX(f.first_seen_ms, f.state_changed_ms) >= ?7) \
         AND (?8 IS NULL OR f.rule_id IN (SELECT value FROM json_each(?8)))";
    let sql = format!(
        "SELECT {COLUMNS} FROM findings f WHERE {wanted} AND (?9 IS NULL OR f.finding_id > ?9) ORDER BY f.finding_id LIMIT ?10"
    );
    let rule_ids = filter.rule_ids.as_ref().map(|ids| serde_json::Value::from(ids.clone()).to_string());
    let wanted_args: [&dyn ToSql; 8] = [
        &min_rank,
        &ranked,
        &filter.rule_id,
        &filter.state,
        &filter.agent_id,
        &filter.asset_id,
        &filter.since_ms,
        &rule_ids,
    ];
    let page_args: [&dyn ToSql; 2] = [&page.after, &(limit + 1)];
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(wanted_args.iter().chain(page_args.iter())), from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    drop(stmt);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    let items: Vec<FindingRecord> = rows.into_iter().take(limit).collect();
    let total: i64 =
        tx.query_row(&format!("SELECT COUNT(*) FROM findings f WHERE {wanted}"), params_from_iter(wanted_args), |r| {
            r.get(0)
        })?;
    let next_cursor = if more { items.last().map(|f| f.found.finding_id.clone()) } else { None };
    Ok(Page { items, next_cursor, total: u64::try_from(total).unwrap_or_default() })
}

/// The newest (by first sighting) open or reopened findings of `severity`, at most `limit`.
pub(super) fn newest(tx: &Transaction<'_>, severity: &str, limit: u32) -> Res<Vec<FindingRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM findings f WHERE f.severity = ?1 AND f.state IN ('open', 'reopened') \
         ORDER BY f.first_seen_ms DESC, f.finding_id LIMIT ?2"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map(params![severity, limit], from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Open and reopened findings by severity, most severe first (every severity, zero included).
pub(super) fn open_by_severity(tx: &Transaction<'_>) -> Res<Vec<(String, u64)>> {
    let mut stmt = tx.prepare(
        "SELECT f.severity, COUNT(*) FROM findings f WHERE f.state IN ('open', 'reopened') GROUP BY f.severity",
    )?;
    let counts = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<HashMap<_, _>>>()?;
    Ok(by_severity(&counts))
}

/// `counts` in severity order, most severe first, zero where absent.
pub(crate) fn by_severity(counts: &HashMap<String, i64>) -> Vec<(String, u64)> {
    SEVERITIES
        .iter()
        .rev()
        .map(|s| ((*s).to_string(), counts.get(*s).map_or(0, |n| u64::try_from(*n).unwrap_or_default())))
        .collect()
}

/// For each of the `days` days ending at the UTC midnights up to `now_ms`'s next one, oldest first: the
/// day's end and, by severity, the findings first seen by then and not resolved by then. A finding
/// resolved and reopened since counts from its first sighting on (the store keeps one resolution).
pub(super) fn trend(tx: &Transaction<'_>, now_ms: i64, days: u32) -> Res<Vec<TrendDay>> {
    let ends = trend_ends(now_ms, days);
    let mut counts: Vec<HashMap<String, i64>> = vec![HashMap::new(); ends.len()];
    // One pass over `findings_summary` (it holds every column read here); the days are counted
    // here rather than by a join of every finding with every day.
    let mut stmt = tx.prepare(
        "SELECT f.severity, f.first_seen_ms, CASE WHEN f.state = 'resolved' THEN COALESCE(f.resolved_at_ms, 0) END \
         FROM findings f INDEXED BY findings_summary",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (severity, first, resolved): (String, i64, Option<i64>) = (row.get(0)?, row.get(1)?, row.get(2)?);
        count_in_days(&ends, &mut counts, &severity, first, resolved);
    }
    Ok(ends.into_iter().zip(counts).map(|(end, c)| (end, by_severity(&c))).collect())
}

/// The ends of the trend's days ([`trend`]), oldest first.
pub(crate) fn trend_ends(now_ms: i64, days: u32) -> Vec<i64> {
    const DAY: i64 = 86_400_000;
    let last_end = (now_ms.div_euclid(DAY) + 1) * DAY;
    (0..i64::from(days)).rev().map(|n| last_end - n * DAY).collect()
}

/// Counts a finding of `severity`, first seen at `first` and resolved at `resolved`, in each day
/// of `ends` it was active at the end of ([`trend`]).
pub(crate) fn count_in_days(
    ends: &[i64],
    counts: &mut [HashMap<String, i64>],
    severity: &str,
    first: i64,
    resolved: Option<i64>,
) {
    for (end, day) in ends.iter().zip(counts.iter_mut()) {
        if first < *end && resolved.is_none_or(|r| r >= *end) {
            *day.entry(severity.to_owned()).or_insert(0) += 1;
        }
    }
}

pub(super) fn get(tx: &Transaction<'_>, finding_id: &str) -> Res<Option<FindingRecord>> {
    let sql = format!("SELECT {COLUMNS} FROM findings f WHERE f.finding_id = ?1");
    Ok(tx.query_row(&sql, [finding_id], from_row).optional()?)
}

pub(super) fn acknowledge(tx: &Transaction<'_>, finding_id: &str, ack: &Acknowledgement) -> Res<Option<FindingRecord>> {
    let Some(current) = get(tx, finding_id)? else { return Ok(None) };
    if current.state == "resolved" {
        return Err(StoreError::InvalidArgument {
            field: "finding",
            reason: format!("{finding_id} is resolved: its evidence is gone, there is nothing to acknowledge"),
        }
        .into());
    }
    tx.execute(
        "UPDATE findings SET state = 'acknowledged', state_changed_ms = ?2, ack_reason = ?3, ack_by = ?4, \
             ack_at_ms = ?2, ack_expires_ms = ?5 WHERE finding_id = ?1",
        params![finding_id, ack.at_ms, ack.reason, ack.by, ack.expires_ms],
    )?;
    let detail = serde_json::json!({"rule": current.found.rule_id, "severity": current.found.severity, "by": ack.by, "reason": ack.reason, "expires_ms": ack.expires_ms});
    audit::append(tx, ack.at_ms, "finding.acknowledged", finding_id, &detail)?;
    get(tx, finding_id)
}

/// Live sightings of unrevoked agents matching `condition` (over `sightings` aliased `s`, with
/// `params`), at most `limit` (-1: all), as [`LiveEntry`]s; entries of an unknown kind are left out.
fn live_entries(tx: &Transaction<'_>, condition: &str, params: &[&dyn ToSql], limit: i64) -> Res<Vec<LiveEntry>> {
    let mut stmt = tx.prepare(&format!(
        "SELECT s.agent_id, s.kind, s.asset_id, s.local_key, s.entry_json, s.first_seen_ms FROM sightings s \
         JOIN agents a ON a.agent_id = s.agent_id \
         WHERE s.removed_at_ms IS NULL AND a.revoked_at_ms IS NULL AND {condition} \
         ORDER BY s.agent_id, s.kind, s.local_key LIMIT {limit}"
    ))?;
    let rows = stmt.query_map(params, |r| {
        let Some(kind) = AssetKind::from_name(&r.get::<_, String>(1)?) else { return Ok(None) };
        Ok(Some(LiveEntry {
            agent_id: r.get(0)?,
            kind,
            asset_id: r.get(2)?,
            local_key: r.get(3)?,
            entry_json: r.get(4)?,
            first_seen_ms: r.get(5)?,
        }))
    })?;
    Ok(rows.filter_map(Result::transpose).collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The first non-empty `sha256` of `entries`: the digest whose open copies a graph of the asset
/// they are sightings of also shows.
pub(crate) fn entries_sha256(entries: &[LiveEntry]) -> Option<String> {
    let sha: Option<String> = entries.iter().find_map(|e| {
        serde_json::from_str::<serde_json::Value>(&e.entry_json).ok()?.get("sha256")?.as_str().map(str::to_string)
    });
    sha.filter(|s| !s.is_empty())
}

/// Most sightings read for one graph query.
pub(crate) const GRAPH_LIMIT: i64 = 5000;

pub(super) fn graph_entries(
    tx: &Transaction<'_>,
    agent_id: Option<&str>,
    asset_id: Option<&str>,
) -> Res<Vec<LiveEntry>> {
    if let Some(agent) = agent_id {
        return live_entries(tx, "s.agent_id = ?1 AND s.kind IN ('model', 'runtime')", &[&agent], GRAPH_LIMIT);
    }
    let Some(asset) = asset_id else { return Ok(Vec::new()) };
    let mut out = live_entries(tx, "s.asset_id = ?1", &[&asset], GRAPH_LIMIT)?;
    if let Some(sha) = entries_sha256(&out) {
        out.extend(live_entries(
            tx,
            "s.kind = 'runtime' AND EXISTS (SELECT 1 FROM json_each(s.entry_json, '$.open_models') j \
                 WHERE CASE WHEN j.type = 'object' THEN json_extract(j.value, '$.sha256') END = ?1)",
            &[&sha],
            GRAPH_LIMIT,
        )?);
    }
    Ok(out)
}
