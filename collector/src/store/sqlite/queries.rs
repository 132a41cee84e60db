//! Read pages for the HTTP API (keyset pagination, module docs of `store`). Rows are read one by
//! one and a page ends at its limit or once it holds [`MAX_PAGE_BYTES`] of rows (limits rule 6),
//! so a page's memory and size stay bounded whatever agents stored.

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::agents::{self, AGENT_COLUMNS, AGENT_COLUMN_COUNT};
use super::Res;
use crate::store::error::StoreError;
use crate::store::limits::MAX_PAGE_BYTES;
use crate::store::types::{
    AssetDetail, AssetEvent, AssetFilter, AssetKind, AssetSummary, Change, Changes, ExportFilter, ExportSighting,
    HostFilter, HostSummary, Page, PageRequest, RolloutTally, Sighting, SightingKey, UpdateRecord, Verdict,
};

/// The hosts a [`HostFilter`] keeps, for `agents` aliased `a` (parameters ?1 to ?6).
const HOSTS_WANTED: &str = "(?1 IS NULL \
         OR (?1 = 'decommissioned' AND a.decommissioned_at_ms IS NOT NULL) \
         OR (?1 = 'revoked' AND a.revoked_at_ms IS NOT NULL AND a.decommissioned_at_ms IS NULL) \
         OR (?1 = 'silent' AND a.revoked_at_ms IS NULL AND COALESCE(a.last_seen_ms, a.enrolled_at_ms) < ?2) \
         OR (?1 = 'online' AND a.revoked_at_ms IS NULL AND COALESCE(a.last_seen_ms, a.enrolled_at_ms) >= ?2)) \
     AND (?3 IS NULL OR a.agent_version = ?3) AND (?4 IS NULL OR a.agent_id = ?4) \
     AND (?5 IS NULL OR EXISTS (SELECT 1 FROM finding_hosts h CROSS JOIN findings f ON f.finding_id = h.finding_id \
         WHERE h.agent_id = a.agent_id AND f.state IN ('open', 'reopened') \
             AND f.severity IN (SELECT value FROM json_each(?5)))) \
     AND (?6 IS NULL OR COALESCE(a.last_seen_ms, a.enrolled_at_ms) < ?6)";

pub(super) fn hosts(tx: &Transaction<'_>, filter: &HostFilter, page: &PageRequest) -> Res<Page<HostSummary>> {
    let limit = page.effective_limit();
    let weight = crate::findings::risk::sql_weight();
    let max = crate::findings::risk::MAX;
    let sql = format!(
        "SELECT {AGENT_COLUMNS}, (SELECT COUNT(*) FROM sightings s \
             WHERE s.agent_id = a.agent_id AND s.removed_at_ms IS NULL), {UPDATE_COLUMNS}, \
             MIN({max}, (SELECT COALESCE(SUM({weight}), 0) FROM finding_hosts h CROSS JOIN findings f ON f.finding_id = h.finding_id \
                 WHERE h.agent_id = a.agent_id AND f.state IN ('open', 'reopened'))) \
         FROM agents a LEFT JOIN agent_updates u ON u.agent_id = a.agent_id \
         WHERE {HOSTS_WANTED} AND (?7 IS NULL OR a.agent_id > ?7) ORDER BY a.agent_id LIMIT ?8"
    );
    let severities = super::findings::severities_json(filter.min_severity.as_deref())?;
    let wanted = host_args(filter, &severities);
    let paging: [&dyn rusqlite::ToSql; 2] = [&page.after, &(limit + 1)];
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(wanted.iter().chain(paging.iter())), |r| {
        Ok(HostSummary {
            agent: agents::from_row(r)?,
            live_sightings: count(r, AGENT_COLUMN_COUNT)?,
            update: update_from_row(r, AGENT_COLUMN_COUNT + 1)?,
            risk: u32::try_from(r.get::<_, i64>(AGENT_COLUMN_COUNT + 8)?).unwrap_or_default(),
        })
    })?;
    let rows = bounded(rows, limit, host_bytes)?;
    drop(stmt);
    let total = hosts_total(tx, filter)?;
    Ok(paginate(rows, total, |h| h.agent.agent_id.clone()))
}

/// What a host counts toward [`MAX_PAGE_BYTES`].
pub(crate) fn host_bytes(h: &HostSummary) -> usize {
    let a = &h.agent;
    [&a.agent_id, &a.hostname, &a.agent_version, &a.machine_fingerprint].iter().map(|s| s.len()).sum::<usize>()
        + [&a.host_facts_json, &a.reported_hostname, &a.reported_machine_fingerprint]
            .iter()
            .map(|s| s.as_ref().map_or(0, String::len))
            .sum::<usize>()
        + h.update.as_ref().map_or(0, |u| {
            [&u.channel, &u.cohort, &u.agent_version, &u.state, &u.version, &u.detail].iter().map(|s| s.len()).sum()
        })
}

/// The parameters of [`HOSTS_WANTED`] for `filter` (`severities`: its severities as JSON).
fn host_args<'a>(filter: &'a HostFilter, severities: &'a Option<String>) -> [&'a dyn rusqlite::ToSql; 6] {
    [&filter.status, &filter.silent_before_ms, &filter.version, &filter.agent_id, severities, &filter.not_seen_since]
}

/// How many hosts `filter` lists: the `total` of [`hosts`].
pub(super) fn hosts_total(tx: &Transaction<'_>, filter: &HostFilter) -> Res<u64> {
    let severities = super::findings::severities_json(filter.min_severity.as_deref())?;
    Ok(tx.query_row(
        &format!("SELECT COUNT(*) FROM agents a WHERE {HOSTS_WANTED}"),
        rusqlite::params_from_iter(host_args(filter, &severities)),
        |r| count(r, 0),
    )?)
}

/// Columns of an update record, for `agent_updates` aliased `u` (NULL when the agent never
/// reported one), read by [`update_from_row`].
pub(crate) const UPDATE_COLUMNS: &str =
    "u.channel, u.cohort, u.agent_version, u.state, u.version, u.detail, u.reported_at_ms";

/// The update record in the columns of `row` from `first` on, if the agent has one.
fn update_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<Option<UpdateRecord>> {
    let Some(channel) = row.get::<_, Option<String>>(first)? else { return Ok(None) };
    Ok(Some(UpdateRecord {
        channel,
        cohort: row.get(first + 1)?,
        agent_version: row.get(first + 2)?,
        state: row.get(first + 3)?,
        version: row.get(first + 4)?,
        detail: row.get(first + 5)?,
        reported_at_ms: row.get(first + 6)?,
    }))
}

pub(super) fn record_update(tx: &Transaction<'_>, agent_id: &str, r: &UpdateRecord) -> Res<()> {
    tx.execute(
        "INSERT INTO agent_updates (agent_id, channel, cohort, agent_version, state, version, detail, reported_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
         ON CONFLICT (agent_id) DO UPDATE SET channel = excluded.channel, cohort = excluded.cohort, \
             agent_version = excluded.agent_version, state = excluded.state, version = excluded.version, \
             detail = excluded.detail, reported_at_ms = excluded.reported_at_ms",
        params![agent_id, r.channel, r.cohort, r.agent_version, r.state, r.version, r.detail, r.reported_at_ms],
    )?;
    // The version it runs now: the hosts listing shows it, not the one it enrolled with.
    if !r.agent_version.is_empty() {
        tx.execute(
            "UPDATE agents SET agent_version = ?2 WHERE agent_id = ?1 AND agent_version <> ?2",
            params![agent_id, r.agent_version],
        )?;
    }
    Ok(())
}

/// Revoked agents do not count, and a rollback counts only from an agent that downloaded the
/// release's archive: neither a revoked clone nor an agent claiming a rollback it never tried
/// can pause a rollout.
pub(super) fn rollout_tally(
    tx: &Transaction<'_>,
    channel: &str,
    cohort: &str,
    version: &str,
    sha256: &str,
) -> Res<RolloutTally> {
    tx.query_row(
        "SELECT COALESCE(SUM(u.agent_version = ?3 AND u.state <> 'rolled_back'), 0), \
                COALESCE(SUM(u.state = 'rolled_back' AND u.version = ?3 AND EXISTS (SELECT 1 FROM release_downloads d \
                    WHERE d.agent_id = u.agent_id AND d.sha256 = lower(?4))), 0) \
         FROM agent_updates u JOIN agents a ON a.agent_id = u.agent_id \
         WHERE u.channel = ?1 AND u.cohort = ?2 AND a.revoked_at_ms IS NULL",
        params![channel, cohort, version, sha256],
        |r| Ok(RolloutTally { running: count(r, 0)?, rolled_back: count(r, 1)? }),
    )
    .map_err(Into::into)
}

pub(super) fn record_download(tx: &Transaction<'_>, agent_id: &str, sha256: &str, now_ms: i64) -> Res<()> {
    tx.execute(
        "INSERT INTO release_downloads (agent_id, sha256, at_ms) VALUES (?1, lower(?2), ?3) \
         ON CONFLICT (agent_id, sha256) DO UPDATE SET at_ms = excluded.at_ms",
        params![agent_id, sha256, now_ms],
    )?;
    Ok(())
}

/// Whether the asset `a` is a package file (store module docs, "Package files"): seen as a file
/// of an installed package, and live nowhere as a user's file.
const PACKAGE_FILE: &str = "(EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.owned = 1) \
     AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.owned = 0 \
         AND s.removed_at_ms IS NULL))";

/// Columns of an asset summary, for `assets` aliased `a`, read by [`asset_from_row`].
pub(crate) const ASSET_COLUMNS: &str = "a.asset_id, a.kind, a.identity, a.first_seen_ms, a.last_seen_ms, \
     (SELECT COUNT(*) FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL), \
     (SELECT COUNT(DISTINCT s.agent_id) FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL)";

/// An asset listing's condition (over `assets` aliased `a`) with what its 13 parameters hold.
struct AssetQuery {
    listed: String,
    kind: Option<&'static str>,
    search: Option<String>,
    verdict: Option<&'static str>,
}

/// "A live sighting of the asset states the verdict `{v}`" (a parameter), shared by the
/// listing's verdict filter and [`count_by_verdict`], so the two count alike.
fn verdict_exists(v: &str) -> String {
    format!("EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND s.verdict = {v})")
}

impl AssetQuery {
    fn new(filter: &AssetFilter) -> Self {
        let kind = filter.kind.map(AssetKind::as_str);
        let search = filter.search.as_ref().map(|q| format!("%{}%", like_escape(&q.to_lowercase())));
        let verdict = filter.verdict.map(Verdict::as_str);
        let verdict_filter = verdict_exists("?7");
        // The default listing leaves out package files, unless a live sighting of one is dangerous,
        // and assets no host has any more.
        let listed = format!(
        "(?1 IS NULL OR a.kind = ?1) AND (?2 OR a.kind <> 'model' OR NOT {PACKAGE_FILE} \
         OR EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL \
             AND s.verdict = 'dangerous')) \
         AND (?3 OR EXISTS (SELECT 1 FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
             WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL)) \
         AND (?4 IS NULL OR EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL \
             AND s.search_text LIKE ?4 ESCAPE '\\')) \
         AND (?5 IS NULL OR EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id \
             AND (?3 OR s.removed_at_ms IS NULL) AND s.agent_id = ?5)) \
         AND (?6 IS NULL OR EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL \
             AND json_extract(s.entry_json, '$.format') = ?6)) \
         AND (?7 IS NULL OR {verdict_filter}) \
         AND (?8 IS NULL OR a.first_seen_ms >= ?8) AND (?9 IS NULL OR a.last_seen_ms >= ?9) \
         AND (?10 IS NULL AND ?11 IS NULL AND ?12 IS NULL OR EXISTS (SELECT 1 FROM sightings s \
             WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL \
             AND (?10 IS NULL OR json_extract(s.entry_json, '$.ecosystem') = ?10) \
             AND (?11 IS NULL OR json_extract(s.entry_json, '$.name') = ?11) \
             AND (?12 IS NULL OR json_extract(s.entry_json, '$.version') = ?12))) \
         AND (?13 IS NULL \
             OR (a.kind = 'runtime' AND EXISTS (SELECT 1 FROM sightings s, json_each(s.listening_json) l \
                 WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND s.kind = 'runtime' AND {EXPOSURE})) \
             OR (a.kind = 'model' AND EXISTS (SELECT 1 FROM sightings m \
                 JOIN sightings r ON r.kind = 'runtime' AND r.removed_at_ms IS NULL, \
                     json_each(r.entry_json, '$.open_models') om, json_each(r.listening_json) l \
                 WHERE m.asset_id = a.asset_id AND m.removed_at_ms IS NULL AND r.agent_id = m.agent_id \
                     AND CASE WHEN om.type = 'object' THEN json_extract(om.value, '$.sha256') END \
                         = json_extract(m.entry_json, '$.sha256') AND {EXPOSURE})))"
    );
        // The filters given also become conditions without `?n IS NULL OR`, which the planner can
        // drive from an index: the kind's (`assets_by_kind`), a host's sightings
        // (`sightings_by_host_asset`) instead of every asset.
        let mut listed = listed;
        if filter.kind.is_some() {
            listed.push_str(" AND a.kind = ?1");
        }
        if filter.agent_id.is_some() {
            listed.push_str(" AND a.asset_id IN (SELECT s.asset_id FROM sightings s WHERE s.agent_id = ?5)");
        }
        Self { listed, kind, search, verdict }
    }

    fn args<'a>(&'a self, filter: &'a AssetFilter) -> [&'a dyn rusqlite::ToSql; 13] {
        [
            &self.kind,
            &filter.include_owned,
            &filter.include_removed,
            &self.search,
            &filter.agent_id,
            &filter.format,
            &self.verdict,
            &filter.first_seen_since,
            &filter.last_seen_since,
            &filter.ecosystem,
            &filter.name,
            &filter.version,
            &filter.exposure,
        ]
    }
}

pub(super) fn assets(tx: &Transaction<'_>, filter: &AssetFilter, page: &PageRequest) -> Res<Page<AssetSummary>> {
    let limit = page.effective_limit();
    let query = AssetQuery::new(filter);
    let (listed, wanted) = (&query.listed, query.args(filter));
    let sql = format!(
        "SELECT {ASSET_COLUMNS}, {PACKAGE_FILE} FROM assets a WHERE {listed} AND (?14 IS NULL OR a.asset_id > ?14) \
         ORDER BY a.asset_id LIMIT ?15"
    );
    let mut stmt = tx.prepare(&sql)?;
    let paging: [&dyn rusqlite::ToSql; 2] = [&page.after, &(limit + 1)];
    let rows = stmt.query_map(rusqlite::params_from_iter(wanted.iter().chain(paging.iter())), |r| {
        Ok(AssetSummary { owned: r.get(ASSET_COLUMN_COUNT)?, ..asset_from_row(r)? })
    })?;
    let mut rows = bounded(rows, limit, asset_bytes)?;
    drop(stmt);
    for asset in &mut rows.0 {
        complete(tx, asset, filter.agent_id.as_deref())?;
    }
    let total = listed_total(tx, &query, filter)?;
    Ok(paginate(rows, total, |a| a.id.clone()))
}

/// What an asset counts toward [`MAX_PAGE_BYTES`].
pub(crate) fn asset_bytes(a: &AssetSummary) -> usize {
    a.id.len() + a.identity.len()
}

/// How many assets `query` (of `filter`) lists.
fn listed_total(tx: &Transaction<'_>, query: &AssetQuery, filter: &AssetFilter) -> Res<u64> {
    Ok(tx.query_row(
        &format!("SELECT COUNT(*) FROM assets a WHERE {}", query.listed),
        rusqlite::params_from_iter(query.args(filter)),
        |r| count(r, 0),
    )?)
}

/// How many assets `filter` lists: the `total` of [`assets`].
pub(super) fn assets_total(tx: &Transaction<'_>, filter: &AssetFilter) -> Res<u64> {
    listed_total(tx, &AssetQuery::new(filter), filter)
}

/// How many assets `filter` lists, and how many of those have a live sighting stating each of
/// `verdicts`: the totals of the listing with `verdict` set to each, in one pass over the assets.
pub(super) fn count_by_verdict(
    tx: &Transaction<'_>,
    filter: &AssetFilter,
    verdicts: &[Verdict],
) -> Res<(u64, Vec<u64>)> {
    let query = AssetQuery::new(&AssetFilter { verdict: None, ..filter.clone() });
    let sums: Vec<String> =
        (0..verdicts.len()).map(|i| format!("SUM({})", verdict_exists(&format!("?{}", 14 + i)))).collect();
    let names: Vec<&str> = verdicts.iter().map(|v| v.as_str()).collect();
    let args = query.args(filter);
    let all = args.iter().copied().chain(names.iter().map(|n| n as &dyn rusqlite::ToSql));
    let sql = format!("SELECT COUNT(*), {} FROM assets a WHERE {}", sums.join(", "), query.listed);
    tx.query_row(&sql, rusqlite::params_from_iter(all), |r| {
        let total = count(r, 0)?;
        let by = (0..verdicts.len())
            .map(|i| r.get::<_, Option<i64>>(i + 1).map(|n| u64::try_from(n.unwrap_or(0)).unwrap_or_default()))
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok((total, by))
    })
    .map_err(Into::into)
}

/// A chunk of an export (`Store::export_sightings`). Only the filters given become conditions,
/// so the planner walks the index that fits: `sightings_live_by_asset` (whose entries end with
/// the rowid, the sighting id) in order for the whole fleet, `sightings_by_host_key` and a sort
/// of that host's rows for one host. Sightings of revoked agents count as live only when removed
/// ones are asked for too.
pub(super) fn export_sightings(
    tx: &Transaction<'_>,
    filter: &ExportFilter,
    after: Option<&SightingKey>,
    limit: u32,
) -> Res<Vec<ExportSighting>> {
    // One host: a seek in `sightings_by_host_asset` (the host's rows in asset order). The
    // fleet: `sightings_live_by_asset`, whose entries end with the rowid (the sighting id).
    let mut conditions = if filter.agent_id.is_some() {
        vec!["s.agent_id = :host", "(s.asset_id, s.sighting_id) > (:asset, :id)"]
    } else {
        vec!["(s.asset_id, s.agent_id, s.sighting_id) > (:asset, :agent, :id)"]
    };
    if !filter.include_removed {
        conditions.push("s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL");
    }
    if filter.kind.is_some() {
        conditions.push("s.kind = :kind");
    }
    let order =
        if filter.agent_id.is_some() { "s.asset_id, s.sighting_id" } else { "s.asset_id, s.agent_id, s.sighting_id" };
    let sql = format!(
        "SELECT s.asset_id, s.agent_id, s.sighting_id, s.kind, COALESCE(g.reported_hostname, g.hostname), \
             s.location, s.first_seen_ms, s.last_seen_ms, s.removed_at_ms, s.verdict, s.entry_json \
         FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
         WHERE {} ORDER BY {order} LIMIT :limit",
        conditions.join(" AND ")
    );
    let (after_asset, after_agent, after_id) =
        after.map_or(("", "", 0), |k| (&*k.asset_id, &*k.agent_id, k.sighting_id));
    let kind = filter.kind.map(AssetKind::as_str);
    let limit = limit.max(1);
    let mut named: Vec<(&str, &dyn rusqlite::ToSql)> =
        vec![(":asset", &after_asset), (":id", &after_id), (":limit", &limit)];
    if let Some(kind) = &kind {
        named.push((":kind", kind));
    }
    match &filter.agent_id {
        Some(host) => named.push((":host", host)),
        None => named.push((":agent", &after_agent)),
    }
    let mut stmt = tx.prepare_cached(&sql)?;
    let rows = stmt.query_map(named.as_slice(), |r| {
        let kind: String = r.get(3)?;
        let kind = AssetKind::from_name(&kind)
            .ok_or_else(|| rusqlite::Error::FromSqlConversionFailure(3, Type::Text, "unknown asset kind".into()))?;
        Ok(ExportSighting {
            key: SightingKey { asset_id: r.get(0)?, agent_id: r.get(1)?, sighting_id: r.get(2)? },
            kind,
            hostname: r.get(4)?,
            location: r.get(5)?,
            first_seen_ms: r.get(6)?,
            last_seen_ms: r.get(7)?,
            removed_at_ms: r.get(8)?,
            verdict: r.get::<_, Option<String>>(9)?.map(|v| Verdict::from_name(&v)),
            entry_json: r.get(10)?,
        })
    })?;
    let (rows, _) = bounded(rows, limit, export_bytes)?;
    Ok(rows)
}

/// What an exported sighting counts toward [`MAX_PAGE_BYTES`].
pub(crate) fn export_bytes(s: &ExportSighting) -> usize {
    s.key.asset_id.len() + s.key.agent_id.len() + s.hostname.len() + s.location.len() + s.entry_json.len()
}

/// `Store::models_at`, from indexes only: a live model sighting of the host at one of the
/// paths (its local key), or the single-file model whose digest is one of the SHA-256s. A group
/// member open through a path no sighting has is not matched: finding it would mean reading
/// every model entry of the host, once per server, which one agent could make endless.
pub(super) fn models_at(
    tx: &Transaction<'_>,
    agent_id: &str,
    paths: &[String],
    sha256s: &[String],
) -> Res<Vec<String>> {
    let json_list = |items: &[String]| serde_json::Value::from(items.to_vec()).to_string();
    let ids: Vec<String> = sha256s.iter().map(|d| format!("model:{d}")).collect();
    let mut stmt = tx.prepare_cached(
        "SELECT DISTINCT s.asset_id FROM sightings s WHERE s.agent_id = ?1 AND s.kind = 'model' \
             AND s.removed_at_ms IS NULL AND s.local_key IN (SELECT value FROM json_each(?2)) \
         UNION SELECT DISTINCT s.asset_id FROM sightings s WHERE s.asset_id IN (SELECT value FROM json_each(?3)) \
             AND s.agent_id = ?1 AND s.removed_at_ms IS NULL \
         ORDER BY 1",
    )?;
    let assets = stmt.query_map(params![agent_id, json_list(paths), json_list(&ids)], |r| r.get::<_, String>(0))?;
    Ok(assets.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A listening socket `l` (a `json_each` row) of the exposure ?13 (`exposed`: any but loopback).
/// A listening socket `l` with the exposure `?13` (`exposed`: any but loopback). An agent's
/// `listening` may hold anything: an element that is not an object never matches (and never
/// makes `json_extract` fail the whole query).
const EXPOSURE: &str = "(CASE WHEN l.type <> 'object' THEN 0 \
     WHEN ?13 = 'exposed' THEN json_extract(l.value, '$.exposure') <> 'loopback' \
     ELSE json_extract(l.value, '$.exposure') = ?13 END)";

/// `text` with LIKE's wildcards and the escape character escaped (`\\`).
pub(crate) fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// One asset's summary, as a listing shows it.
pub(super) fn asset_summary(tx: &Transaction<'_>, asset_id: &str) -> Res<Option<AssetSummary>> {
    let sql = format!("SELECT {ASSET_COLUMNS}, {PACKAGE_FILE} FROM assets a WHERE a.asset_id = ?1");
    let row = |r: &Row<'_>| Ok(AssetSummary { owned: r.get(ASSET_COLUMN_COUNT)?, ..asset_from_row(r)? });
    let Some(mut asset) = tx.query_row(&sql, [asset_id], row).optional()? else {
        return Ok(None);
    };
    complete(tx, &mut asset, None)?;
    Ok(Some(asset))
}

pub(super) fn asset(tx: &Transaction<'_>, asset_id: &str, page: &PageRequest) -> Res<Option<AssetDetail>> {
    let Some(asset) = asset_summary(tx, asset_id)? else {
        return Ok(None);
    };
    let after = sighting_cursor(page)?;
    let limit = page.effective_limit();
    let mut stmt = tx.prepare(
        "SELECT s.sighting_id, s.agent_id, g.hostname, s.local_key, s.location, s.first_seen_ms, s.last_seen_ms, \
             s.removed_at_ms, s.entry_json, g.reported_hostname \
         FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
         WHERE s.asset_id = ?1 AND s.sighting_id > ?2 ORDER BY s.sighting_id LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![asset_id, after, limit + 1], |r| {
        let sighting = Sighting {
            agent_id: r.get(1)?,
            hostname: r.get(2)?,
            reported_hostname: r.get(9)?,
            local_key: r.get(3)?,
            path_or_environment: r.get(4)?,
            first_seen_ms: r.get(5)?,
            last_seen_ms: r.get(6)?,
            removed_at_ms: r.get(7)?,
            json: r.get(8)?,
        };
        Ok((r.get::<_, i64>(0)?, sighting))
    })?;
    let rows = bounded(rows, limit, |(_, s)| sighting_bytes(s))?;
    let total = tx.query_row("SELECT COUNT(*) FROM sightings WHERE asset_id = ?1", [asset_id], |r| count(r, 0))?;
    let page = paginate(rows, total, |(id, _)| id.to_string());
    let sightings =
        Page { items: page.items.into_iter().map(|(_, s)| s).collect(), next_cursor: page.next_cursor, total };
    Ok(Some(AssetDetail { asset, sightings }))
}

/// The sighting id after which a page of an asset's sightings starts (0: the first page).
pub(crate) fn sighting_cursor(page: &PageRequest) -> Result<i64, StoreError> {
    match &page.after {
        None => Ok(0),
        Some(cursor) => cursor.parse().map_err(|_| StoreError::InvalidCursor { cursor: cursor.clone() }),
    }
}

/// What a sighting counts toward [`MAX_PAGE_BYTES`].
pub(crate) fn sighting_bytes(s: &Sighting) -> usize {
    s.agent_id.len()
        + s.hostname.len()
        + s.reported_hostname.as_ref().map_or(0, String::len)
        + s.local_key.len()
        + s.path_or_environment.len()
        + s.json.len()
}

/// Columns in [`ASSET_COLUMNS`].
pub(crate) const ASSET_COLUMN_COUNT: usize = 7;

fn asset_from_row(r: &Row<'_>) -> rusqlite::Result<AssetSummary> {
    let kind: String = r.get(1)?;
    let kind = AssetKind::from_name(&kind).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(1, Type::Text, format!("unknown kind {kind}").into())
    })?;
    Ok(AssetSummary {
        id: r.get(0)?,
        kind,
        identity: r.get(2)?,
        first_seen_ms: r.get(3)?,
        last_seen_ms: r.get(4)?,
        live_sightings: count(r, 5)?,
        live_hosts: count(r, 6)?,
        hostnames: Vec::new(),
        verdict: None,
        verdict_hosts: Vec::new(),
        owned: false,
        latest_entry: None,
    })
}

/// Fills what a summary needs beyond its row: the hostnames, the latest live entry (`host`'s own
/// when it has one, so a host's listing shows that host's path and environment), and a model's
/// verdicts.
fn complete(tx: &Transaction<'_>, asset: &mut AssetSummary, host: Option<&str>) -> Res<()> {
    asset.hostnames = hostnames(tx, &asset.id)?;
    asset.latest_entry = tx
        .prepare_cached(
            "SELECT entry_json FROM sightings WHERE asset_id = ?1 AND removed_at_ms IS NULL \
             ORDER BY (agent_id IS ?2) DESC, last_seen_ms DESC, sighting_id DESC LIMIT 1",
        )?
        .query_row(rusqlite::params![&asset.id, host], |r| r.get(0))
        .optional()?;
    if asset.kind == AssetKind::Model {
        asset.verdict_hosts = verdict_hosts(tx, &asset.id)?;
        asset.verdict = asset.verdict_hosts.first().map(|(v, _)| *v);
    }
    Ok(())
}

/// How many distinct hosts state each verdict in a live sighting of the asset, worst first.
fn verdict_hosts(tx: &Transaction<'_>, asset_id: &str) -> Res<Vec<(Verdict, u64)>> {
    let mut stmt = tx.prepare_cached(
        "SELECT COALESCE(s.verdict, 'unknown'), COUNT(DISTINCT s.agent_id) FROM sightings s \
         WHERE s.asset_id = ?1 AND s.removed_at_ms IS NULL GROUP BY 1",
    )?;
    let counts = stmt
        .query_map([asset_id], |r| Ok((Verdict::from_name(&r.get::<_, String>(0)?), count(r, 1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(merge_verdicts(counts))
}

/// Host counts by stored verdict name, as verdicts worst first: two stored names can map to
/// `unknown`, merged.
pub(crate) fn merge_verdicts(mut counts: Vec<(Verdict, u64)>) -> Vec<(Verdict, u64)> {
    counts.sort_by_key(|(verdict, _)| std::cmp::Reverse(*verdict));
    counts.dedup_by(|later, first| {
        let same = later.0 == first.0;
        if same {
            first.1 += later.1;
        }
        same
    });
    counts
}

/// Sorted hostnames of the hosts with a live sighting of the asset, at most the summary's cap.
fn hostnames(tx: &Transaction<'_>, asset_id: &str) -> Res<Vec<String>> {
    let mut stmt = tx.prepare_cached(
        "SELECT DISTINCT g.hostname FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
         WHERE s.asset_id = ?1 AND s.removed_at_ms IS NULL ORDER BY g.hostname LIMIT ?2",
    )?;
    let cap = i64::try_from(AssetSummary::MAX_HOSTNAMES).unwrap_or(i64::MAX);
    let names = stmt.query_map(params![asset_id, cap], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(names)
}

/// A non-negative count at column `idx`.
fn count(r: &Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    Ok(u64::try_from(r.get::<_, i64>(idx)?).unwrap_or_default())
}

/// Reads up to `limit` rows, stopping early once they hold [`MAX_PAGE_BYTES`] by `size_of`
/// (the first row is always taken); returns them and whether another page may follow. The
/// query asks for one row more than `limit`, which tells the last page from a full one.
pub(crate) fn bounded<T, E>(
    rows: impl Iterator<Item = Result<T, E>>,
    limit: u32,
    size_of: impl Fn(&T) -> usize,
) -> Result<(Vec<T>, bool), E> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let (mut out, mut bytes) = (Vec::new(), 0usize);
    for row in rows {
        if out.len() == limit {
            return Ok((out, true));
        }
        let row = row?;
        bytes = bytes.saturating_add(size_of(&row));
        out.push(row);
        if bytes >= MAX_PAGE_BYTES {
            return Ok((out, true));
        }
    }
    Ok((out, false))
}

/// The page of `rows` read by [`bounded`]: a cursor after the last row when more may follow.
pub(crate) fn paginate<T>((rows, more): (Vec<T>, bool), total: u64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let next_cursor = if more { rows.last().map(cursor_of) } else { None };
    Page { items: rows, next_cursor, total }
}

pub(super) fn changes(tx: &Transaction<'_>, since_ms: i64, limit: u32) -> Res<Changes> {
    let limit = i64::from(limit.clamp(1, PageRequest::MAX_LIMIT));
    let rows = |sql: &str| -> Res<(Vec<Change>, u64)> {
        let mut stmt = tx.prepare(&format!(
            "SELECT s.asset_id, s.kind, s.agent_id, g.hostname, s.local_key, s.location, s.verdict, {sql} AS at \
             FROM sightings s JOIN agents g ON g.agent_id = s.agent_id WHERE {sql} >= ?1 ORDER BY at, s.sighting_id LIMIT ?2"
        ))?;
        let items = stmt
            .query_map(params![since_ms, limit], |r| {
                Ok(Change {
                    asset_id: r.get(0)?,
                    kind: r.get(1)?,
                    agent_id: r.get(2)?,
                    hostname: r.get(3)?,
                    local_key: r.get(4)?,
                    location: r.get(5)?,
                    verdict: r.get(6)?,
                    at_ms: r.get(7)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let total =
            tx.query_row(&format!("SELECT COUNT(*) FROM sightings s WHERE {sql} >= ?1"), [since_ms], |r| count(r, 0))?;
        Ok((items, total))
    };
    let (appeared, appeared_total) = rows("s.first_seen_ms")?;
    let (removed, removed_total) = rows("s.removed_at_ms")?;
    let mut stmt = tx.prepare(
        "SELECT asset_id, kind, identity, first_seen_ms FROM assets WHERE first_seen_ms >= ?1 ORDER BY first_seen_ms, asset_id LIMIT ?2",
    )?;
    let new_assets = stmt
        .query_map(params![since_ms, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let new_assets_total =
        tx.query_row("SELECT COUNT(*) FROM assets WHERE first_seen_ms >= ?1", [since_ms], |r| count(r, 0))?;
    let records = |kind: &str| -> Res<(Vec<AssetEvent>, u64)> {
        let mut stmt = tx.prepare_cached(
            "SELECT subject, at_ms, detail_json FROM audit WHERE kind = ?1 AND at_ms >= ?2 ORDER BY seq LIMIT ?3",
        )?;
        let items = stmt
            .query_map(params![kind, since_ms, limit], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let total =
            tx.query_row("SELECT COUNT(*) FROM audit WHERE kind = ?1 AND at_ms >= ?2", params![kind, since_ms], |r| {
                count(r, 0)
            })?;
        Ok((items, total))
    };
    let (assets_disappeared, assets_disappeared_total) = records("asset.disappeared")?;
    let (verdict_changes, verdict_changes_total) = records("asset.verdict_changed")?;
    Ok(Changes {
        new_assets,
        new_assets_total,
        appeared,
        appeared_total,
        removed,
        removed_total,
        assets_disappeared,
        assets_disappeared_total,
        verdict_changes,
        verdict_changes_total,
    })
}
