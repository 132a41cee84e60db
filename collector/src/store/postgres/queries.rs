//! PostgreSQL: the read pages of the HTTP API and the update records (`sqlite/queries.rs`, whose
//! pure helpers it calls: page bounds, cursors, sizes). Same filters, order, totals and cursors;
//! what differs, and why:
//! - **Only the filters given become conditions**, numbered as they are bound, instead of
//!   `?n IS NULL OR …`: PostgreSQL cannot type a parameter seen only in `IS NULL`, and plans
//!   the conditions that are left.
//! - **Ids compare and sort `COLLATE "C"`** (byte order, SQLite's `BINARY`), so keyset order and
//!   cursors do not depend on the database's collation.
//! - **Hostile JSON.** Where SQLite's `json_extract`/`json_each` give NULL or nothing for an
//!   unexpected shape, PostgreSQL raises; every JSON read is guarded by its type so one agent's
//!   entry cannot fail a listing for everyone. A field equals a filter only as a JSON string
//!   (SQLite's typed comparison: a number never equals text).

use postgres::fallible_iterator::FallibleIterator;
use postgres::types::ToSql;
use postgres::Row;

use super::agents::{self, stored, AGENT_COLUMNS};
use super::{Fail, Res, Tx};
use crate::store::error::StoreError;
use crate::store::sqlite::findings::severities_json;
use crate::store::sqlite::queries::{
    asset_bytes, bounded, export_bytes, host_bytes, like_escape, merge_verdicts, paginate, sighting_bytes,
    sighting_cursor, ASSET_COLUMNS, ASSET_COLUMN_COUNT, UPDATE_COLUMNS,
};
use crate::store::types::{
    AssetDetail, AssetEvent, AssetFilter, AssetKind, AssetSummary, Change, Changes, ExportFilter, ExportSighting,
    HostFilter, HostSummary, Page, PageRequest, RolloutTally, Sighting, SightingKey, UpdateRecord, Verdict,
};

/// The parameters of a statement built condition by condition: each bound value is the next `$n`.
#[derive(Default)]
struct Params(Vec<Box<dyn ToSql + Sync>>);

impl Params {
    /// Binds `value`; returns its placeholder.
    fn bind(&mut self, value: impl ToSql + Sync + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0.iter().map(|v| &**v as &(dyn ToSql + Sync)).collect()
    }
}

/// `conditions` joined by `AND` (`TRUE` when there are none).
fn all_of(conditions: &[String]) -> String {
    if conditions.is_empty() {
        return "TRUE".to_owned();
    }
    conditions.iter().map(|c| format!("({c})")).collect::<Vec<_>>().join(" AND ")
}

/// A stored value this code cannot read.
fn corrupt(what: String) -> Fail {
    Fail::Store(StoreError::Backend { operation: "read the inventory", source: what.into() })
}

/// A count (BIGINT) at column `idx`.
pub(super) fn count(r: &Row, idx: usize) -> Res<u64> {
    stored(r.try_get::<_, i64>(idx)?, "a count")
}

/// A page limit as a parameter.
fn limit_param(limit: u32) -> i64 {
    i64::from(limit)
}

/// Number of columns in [`AGENT_COLUMNS`].
const AGENT_COLUMN_COUNT: usize = 22;

/// The conditions of `filter` over `agents` aliased `a` (SQLite's `HOSTS_WANTED`).
fn hosts_wanted(filter: &HostFilter, p: &mut Params) -> Res<String> {
    let seen = "COALESCE(a.last_seen_ms, a.enrolled_at_ms)";
    let mut wanted = Vec::new();
    if let Some(status) = &filter.status {
        wanted.push(match status.as_str() {
            "decommissioned" => "a.decommissioned_at_ms IS NOT NULL".to_owned(),
            "revoked" => "a.revoked_at_ms IS NOT NULL AND a.decommissioned_at_ms IS NULL".to_owned(),
            "silent" => format!("a.revoked_at_ms IS NULL AND {seen} < {}", p.bind(filter.silent_before_ms)),
            "online" => format!("a.revoked_at_ms IS NULL AND {seen} >= {}", p.bind(filter.silent_before_ms)),
            // No host has another status.
            _ => "FALSE".to_owned(),
        });
    }
    if let Some(version) = &filter.version {
        wanted.push(format!("a.agent_version = {}", p.bind(version.clone())));
    }
    if let Some(agent_id) = &filter.agent_id {
        wanted.push(format!("a.agent_id = {}", p.bind(agent_id.clone())));
    }
    if let Some(severities) = severities_json(filter.min_severity.as_deref())? {
        wanted.push(format!(
            "EXISTS (SELECT 1 FROM finding_hosts h JOIN findings f ON f.finding_id = h.finding_id \
             WHERE h.agent_id = a.agent_id AND f.state IN ('open', 'reopened') \
                 AND f.severity IN (SELECT json_array_elements_text({}::text::json)))",
            p.bind(severities)
        ));
    }
    if let Some(before) = filter.not_seen_since {
        wanted.push(format!("{seen} < {}", p.bind(before)));
    }
    Ok(all_of(&wanted))
}

pub(super) fn hosts(tx: &mut Tx<'_>, filter: &HostFilter, page: &PageRequest) -> Res<Page<HostSummary>> {
    let limit = page.effective_limit();
    let weight = crate::findings::risk::sql_weight();
    let max = crate::findings::risk::MAX;
    let mut p = Params::default();
    let mut wanted = hosts_wanted(filter, &mut p)?;
    if let Some(after) = &page.after {
        wanted.push_str(&format!(" AND a.agent_id COLLATE \"C\" > {}", p.bind(after.clone())));
    }
    let sql = format!(
        "SELECT {AGENT_COLUMNS}, (SELECT COUNT(*) FROM sightings s \
             WHERE s.agent_id = a.agent_id AND s.removed_at_ms IS NULL), {UPDATE_COLUMNS}, \
             LEAST({max}, (SELECT COALESCE(SUM({weight}), 0) FROM finding_hosts h \
                 JOIN findings f ON f.finding_id = h.finding_id \
                 WHERE h.agent_id = a.agent_id AND f.state IN ('open', 'reopened'))) \
         FROM agents a LEFT JOIN agent_updates u ON u.agent_id = a.agent_id \
         WHERE {wanted} ORDER BY a.agent_id COLLATE \"C\" LIMIT {}",
        p.bind(limit_param(limit) + 1)
    );
    let rows = tx.query_raw(sql.as_str(), p.refs())?.iterator().map(|r| -> Res<HostSummary> {
        let r = r?;
        Ok(HostSummary {
            agent: agents::from_row(&r)?,
            live_sightings: count(&r, AGENT_COLUMN_COUNT)?,
            update: update_from_row(&r, AGENT_COLUMN_COUNT + 1)?,
            risk: stored(r.try_get::<_, i64>(AGENT_COLUMN_COUNT + 8)?, "a host's risk")?,
        })
    });
    let rows = bounded(rows, limit, host_bytes)?;
    let total = hosts_total(tx, filter)?;
    Ok(paginate(rows, total, |h| h.agent.agent_id.clone()))
}

/// How many hosts `filter` lists: the `total` of [`hosts`].
pub(super) fn hosts_total(tx: &mut Tx<'_>, filter: &HostFilter) -> Res<u64> {
    let mut p = Params::default();
    let wanted = hosts_wanted(filter, &mut p)?;
    count(&tx.query_one(format!("SELECT COUNT(*) FROM agents a WHERE {wanted}").as_str(), &p.refs())?, 0)
}

/// The update record in the columns of `row` from `first` on ([`UPDATE_COLUMNS`]), if the
/// agent has one.
fn update_from_row(row: &Row, first: usize) -> Res<Option<UpdateRecord>> {
    let Some(channel) = row.try_get::<_, Option<String>>(first)? else { return Ok(None) };
    Ok(Some(UpdateRecord {
        channel,
        cohort: row.try_get(first + 1)?,
        agent_version: row.try_get(first + 2)?,
        state: row.try_get(first + 3)?,
        version: row.try_get(first + 4)?,
        detail: row.try_get(first + 5)?,
        reported_at_ms: row.try_get(first + 6)?,
    }))
}

pub(super) fn record_update(tx: &mut Tx<'_>, agent_id: &str, r: &UpdateRecord) -> Res<()> {
    tx.execute(
        "INSERT INTO agent_updates (agent_id, channel, cohort, agent_version, state, version, detail, reported_at_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (agent_id) DO UPDATE SET channel = excluded.channel, cohort = excluded.cohort, \
             agent_version = excluded.agent_version, state = excluded.state, version = excluded.version, \
             detail = excluded.detail, reported_at_ms = excluded.reported_at_ms",
        &[&agent_id, &r.channel, &r.cohort, &r.agent_version, &r.state, &r.version, &r.detail, &r.reported_at_ms],
    )?;
    // The version it runs now: the hosts listing shows it, not the one it enrolled with.
    if !r.agent_version.is_empty() {
        tx.execute(
            "UPDATE agents SET agent_version = $2 WHERE agent_id = $1 AND agent_version <> $2",
            &[&agent_id, &r.agent_version],
        )?;
    }
    Ok(())
}

/// Revoked agents do not count, and a rollback counts only from an agent that downloaded the
/// release's archive (SQLite's `rollout_tally`).
pub(super) fn rollout_tally(
    tx: &mut Tx<'_>,
    channel: &str,
    cohort: &str,
    version: &str,
    sha256: &str,
) -> Res<RolloutTally> {
    let r = tx.query_one(
        "SELECT COUNT(*) FILTER (WHERE u.agent_version = $3 AND u.state <> 'rolled_back'), \
                COUNT(*) FILTER (WHERE u.state = 'rolled_back' AND u.version = $3 \
                    AND EXISTS (SELECT 1 FROM release_downloads d \
                        WHERE d.agent_id = u.agent_id AND d.sha256 = lower($4))) \
         FROM agent_updates u JOIN agents a ON a.agent_id = u.agent_id \
         WHERE u.channel = $1 AND u.cohort = $2 AND a.revoked_at_ms IS NULL",
        &[&channel, &cohort, &version, &sha256],
    )?;
    Ok(RolloutTally { running: count(&r, 0)?, rolled_back: count(&r, 1)? })
}

pub(super) fn record_download(tx: &mut Tx<'_>, agent_id: &str, sha256: &str, now_ms: i64) -> Res<()> {
    tx.execute(
        "INSERT INTO release_downloads (agent_id, sha256, at_ms) VALUES ($1, lower($2), $3) \
         ON CONFLICT (agent_id, sha256) DO UPDATE SET at_ms = excluded.at_ms",
        &[&agent_id, &sha256, &now_ms],
    )?;
    Ok(())
}

/// Whether the asset `a` is a package file (store module docs, "Package files"): seen as a file
/// of an installed package, and live nowhere as a user's file.
const PACKAGE_FILE: &str = "(EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.owned) \
     AND NOT EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND NOT s.owned \
         AND s.removed_at_ms IS NULL))";

/// "A live sighting `s` of the asset `a` meets `condition`."
fn live_sighting(condition: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND {condition})"
    )
}

/// "A live sighting of the asset states the verdict `v`" (a placeholder), shared by the
/// listing's verdict filter and [`count_by_verdict`], so the two count alike.
fn verdict_exists(v: &str) -> String {
    live_sighting(&format!("s.verdict = {v}"))
}

/// "Field `key` of the JSON object `doc` is the string `value`" (a placeholder): any other
/// shape is no match and no error.
fn json_string_is(doc: &str, key: &str, value: &str) -> String {
    format!("json_typeof({doc} -> '{key}') = 'string' AND {doc} ->> '{key}' = {value}")
}

/// A listening socket `l` (a `jsonb_array_elements` row) with the exposure `exposure`
/// (`exposed`: any but loopback); an element that is not an object never matches.
fn exposure_is(exposure: &str, p: &mut Params) -> String {
    let of = "l.value -> 'exposure'";
    let matches = if exposure == "exposed" {
        // SQLite: `json_extract(…) <> 'loopback'`: JSON null (SQL NULL) and a missing field
        // never match, any other value but the string does.
        format!("{of} <> 'null'::jsonb AND {of} <> '\"loopback\"'::jsonb")
    } else {
        format!("{of} = to_jsonb({}::text)", p.bind(exposure.to_owned()))
    };
    format!("jsonb_typeof(l.value) = 'object' AND {matches}")
}

/// The conditions of an assets listing over `assets` aliased `a` (SQLite's `AssetQuery`).
fn assets_wanted(filter: &AssetFilter, p: &mut Params) -> String {
    let mut wanted = Vec::new();
    if let Some(kind) = filter.kind {
        wanted.push(format!("a.kind = {}", p.bind(kind.as_str())));
    }
    // The default listing leaves out package files, unless a live sighting of one is dangerous,
    // and assets no host has any more.
    if !filter.include_owned {
        wanted.push(format!("a.kind <> 'model' OR NOT {PACKAGE_FILE} OR {}", live_sighting("s.verdict = 'dangerous'")));
    }
    if !filter.include_removed {
        wanted.push(
            "EXISTS (SELECT 1 FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
             WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL)"
                .to_owned(),
        );
    }
    if let Some(q) = &filter.search {
        // `sightings_live_search` (trigrams) serves the LIKE.
        let pattern = format!("%{}%", like_escape(&q.to_lowercase()));
        wanted.push(live_sighting(&format!("s.search_text LIKE {} ESCAPE '\\'", p.bind(pattern))));
    }
    if let Some(agent_id) = &filter.agent_id {
        let live = if filter.include_removed { "" } else { " AND s.removed_at_ms IS NULL" };
        wanted.push(format!(
            "EXISTS (SELECT 1 FROM sightings s WHERE s.asset_id = a.asset_id AND s.agent_id = {}{live})",
            p.bind(agent_id.clone())
        ));
    }
    if let Some(format) = &filter.format {
        wanted.push(live_sighting(&json_string_is("s.entry_json", "format", &p.bind(format.clone()))));
    }
    if let Some(verdict) = filter.verdict {
        wanted.push(verdict_exists(&p.bind(verdict.as_str())));
    }
    if let Some(since) = filter.first_seen_since {
        wanted.push(format!("a.first_seen_ms >= {}", p.bind(since)));
    }
    if let Some(since) = filter.last_seen_since {
        wanted.push(format!("a.last_seen_ms >= {}", p.bind(since)));
    }
    let package: Vec<String> = [("ecosystem", &filter.ecosystem), ("name", &filter.name), ("version", &filter.version)]
        .into_iter()
        .filter_map(|(key, value)| value.as_ref().map(|v| json_string_is("s.entry_json", key, &p.bind(v.clone()))))
        .collect();
    if !package.is_empty() {
        wanted.push(live_sighting(&all_of(&package)));
    }
    if let Some(exposure) = &filter.exposure {
        let exposed = exposure_is(exposure, p);
        // A runtime's open models: an array's elements, an object's values (as SQLite's
        // `json_each`); anything else has none.
        let open_models =
            "(SELECT e.value FROM json_array_elements(CASE WHEN json_typeof(r.entry_json -> 'open_models') \
                 = 'array' THEN r.entry_json -> 'open_models' END) e \
             UNION ALL SELECT e.value FROM json_each(CASE WHEN json_typeof(r.entry_json -> 'open_models') \
                 = 'object' THEN r.entry_json -> 'open_models' END) e)";
        wanted.push(format!(
            "(a.kind = 'runtime' AND EXISTS (SELECT 1 FROM sightings s, jsonb_array_elements(s.listening_json) l \
                 WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL AND s.kind = 'runtime' AND {exposed})) \
             OR (a.kind = 'model' AND EXISTS (SELECT 1 FROM sightings m \
                 JOIN sightings r ON r.kind = 'runtime' AND r.removed_at_ms IS NULL AND r.agent_id = m.agent_id, \
                     LATERAL {open_models} om, jsonb_array_elements(r.listening_json) l \
                 WHERE m.asset_id = a.asset_id AND m.removed_at_ms IS NULL \
                     AND json_typeof(om.value) = 'object' AND json_typeof(om.value -> 'sha256') = 'string' \
                     AND json_typeof(m.entry_json -> 'sha256') = 'string' \
                     AND om.value ->> 'sha256' = m.entry_json ->> 'sha256' AND {exposed}))"
        ));
    }
    all_of(&wanted)
}

pub(super) fn assets(tx: &mut Tx<'_>, filter: &AssetFilter, page: &PageRequest) -> Res<Page<AssetSummary>> {
    let limit = page.effective_limit();
    let mut p = Params::default();
    let mut wanted = assets_wanted(filter, &mut p);
    if let Some(after) = &page.after {
        wanted.push_str(&format!(" AND a.asset_id COLLATE \"C\" > {}", p.bind(after.clone())));
    }
    let sql = format!(
        "SELECT {ASSET_COLUMNS}, {PACKAGE_FILE} FROM assets a WHERE {wanted} \
         ORDER BY a.asset_id COLLATE \"C\" LIMIT {}",
        p.bind(limit_param(limit) + 1)
    );
    let rows = tx.query_raw(sql.as_str(), p.refs())?.iterator().map(|r| -> Res<AssetSummary> {
        let r = r?;
        Ok(AssetSummary { owned: r.try_get(ASSET_COLUMN_COUNT)?, ..asset_from_row(&r)? })
    });
    let mut rows = bounded(rows, limit, asset_bytes)?;
    for asset in &mut rows.0 {
        complete(tx, asset, filter.agent_id.as_deref())?;
    }
    let total = assets_total(tx, filter)?;
    Ok(paginate(rows, total, |a| a.id.clone()))
}

/// How many assets `filter` lists: the `total` of [`assets`].
pub(super) fn assets_total(tx: &mut Tx<'_>, filter: &AssetFilter) -> Res<u64> {
    let mut p = Params::default();
    let wanted = assets_wanted(filter, &mut p);
    count(&tx.query_one(format!("SELECT COUNT(*) FROM assets a WHERE {wanted}").as_str(), &p.refs())?, 0)
}

/// How many assets `filter` lists, and how many of those have a live sighting stating each of
/// `verdicts`: the totals of the listing with `verdict` set to each, in one pass over the assets.
pub(super) fn count_by_verdict(tx: &mut Tx<'_>, filter: &AssetFilter, verdicts: &[Verdict]) -> Res<(u64, Vec<u64>)> {
    let mut p = Params::default();
    let wanted = assets_wanted(&AssetFilter { verdict: None, ..filter.clone() }, &mut p);
    let counts: String =
        verdicts.iter().map(|v| format!(", COUNT(*) FILTER (WHERE {})", verdict_exists(&p.bind(v.as_str())))).collect();
    let r = tx.query_one(format!("SELECT COUNT(*){counts} FROM assets a WHERE {wanted}").as_str(), &p.refs())?;
    let by = (1..=verdicts.len()).map(|i| count(&r, i)).collect::<Res<Vec<_>>>()?;
    Ok((count(&r, 0)?, by))
}

/// A chunk of an export (`Store::export_sightings`), in (asset, host, sighting) order, or
/// (asset, sighting) for one host. Sightings of revoked agents count as live only when removed
/// ones are asked for too.
pub(super) fn export_sightings(
    tx: &mut Tx<'_>,
    filter: &ExportFilter,
    after: Option<&SightingKey>,
    limit: u32,
) -> Res<Vec<ExportSighting>> {
    let (after_asset, after_agent, after_id) =
        after.map_or((String::new(), String::new(), 0), |k| (k.asset_id.clone(), k.agent_id.clone(), k.sighting_id));
    let mut p = Params::default();
    let mut conditions = Vec::new();
    let order = match &filter.agent_id {
        Some(host) => {
            conditions.push(format!("s.agent_id = {}", p.bind(host.clone())));
            conditions.push(format!(
                "(s.asset_id COLLATE \"C\", s.sighting_id) > ({}, {})",
                p.bind(after_asset),
                p.bind(after_id)
            ));
            "s.asset_id COLLATE \"C\", s.sighting_id"
        }
        None => {
            conditions.push(format!(
                "(s.asset_id COLLATE \"C\", s.agent_id COLLATE \"C\", s.sighting_id) > ({}, {}, {})",
                p.bind(after_asset),
                p.bind(after_agent),
                p.bind(after_id)
            ));
            "s.asset_id COLLATE \"C\", s.agent_id COLLATE \"C\", s.sighting_id"
        }
    };
    if !filter.include_removed {
        conditions.push("s.removed_at_ms IS NULL AND g.revoked_at_ms IS NULL".to_owned());
    }
    if let Some(kind) = filter.kind {
        conditions.push(format!("s.kind = {}", p.bind(kind.as_str())));
    }
    let limit = limit.max(1);
    let sql = format!(
        "SELECT s.asset_id, s.agent_id, s.sighting_id, s.kind, COALESCE(g.reported_hostname, g.hostname), \
             s.location, s.first_seen_ms, s.last_seen_ms, s.removed_at_ms, s.verdict, s.entry_json::text \
         FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
         WHERE {} ORDER BY {order} LIMIT {}",
        all_of(&conditions),
        p.bind(limit_param(limit))
    );
    let rows = tx.query_raw(sql.as_str(), p.refs())?.iterator().map(|r| -> Res<ExportSighting> {
        let r = r?;
        let kind: String = r.try_get(3)?;
        let kind = AssetKind::from_name(&kind).ok_or_else(|| corrupt(format!("unknown asset kind {kind}")))?;
        Ok(ExportSighting {
            key: SightingKey { asset_id: r.try_get(0)?, agent_id: r.try_get(1)?, sighting_id: r.try_get(2)? },
            kind,
            hostname: r.try_get(4)?,
            location: r.try_get(5)?,
            first_seen_ms: r.try_get(6)?,
            last_seen_ms: r.try_get(7)?,
            removed_at_ms: r.try_get(8)?,
            verdict: r.try_get::<_, Option<String>>(9)?.map(|v| Verdict::from_name(&v)),
            entry_json: r.try_get(10)?,
        })
    });
    let (rows, _) = bounded(rows, limit, export_bytes)?;
    Ok(rows)
}

/// `Store::models_at`: a live model sighting of the host at one of the paths (its local key),
/// or the single-file model whose digest is one of the SHA-256s (SQLite's `models_at`).
pub(super) fn models_at(tx: &mut Tx<'_>, agent_id: &str, paths: &[String], sha256s: &[String]) -> Res<Vec<String>> {
    let ids: Vec<String> = sha256s.iter().map(|d| format!("model:{d}")).collect();
    let rows = tx.query(
        "SELECT asset_id FROM (\
             SELECT s.asset_id FROM sightings s WHERE s.agent_id = $1 AND s.kind = 'model' \
                 AND s.removed_at_ms IS NULL AND s.local_key = ANY($2) \
             UNION SELECT s.asset_id FROM sightings s WHERE s.asset_id = ANY($3) \
                 AND s.agent_id = $1 AND s.removed_at_ms IS NULL) m \
         ORDER BY asset_id COLLATE \"C\"",
        &[&agent_id, &paths, &ids],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// One asset's summary, as a listing shows it.
pub(super) fn asset_summary(tx: &mut Tx<'_>, asset_id: &str) -> Res<Option<AssetSummary>> {
    let sql = format!("SELECT {ASSET_COLUMNS}, {PACKAGE_FILE} FROM assets a WHERE a.asset_id = $1");
    let Some(r) = tx.query_opt(sql.as_str(), &[&asset_id])? else {
        return Ok(None);
    };
    let mut asset = AssetSummary { owned: r.try_get(ASSET_COLUMN_COUNT)?, ..asset_from_row(&r)? };
    complete(tx, &mut asset, None)?;
    Ok(Some(asset))
}

pub(super) fn asset(tx: &mut Tx<'_>, asset_id: &str, page: &PageRequest) -> Res<Option<AssetDetail>> {
    let Some(asset) = asset_summary(tx, asset_id)? else {
        return Ok(None);
    };
    let after = sighting_cursor(page)?;
    let limit = page.effective_limit();
    let rows = tx
        .query_raw(
            "SELECT s.sighting_id, s.agent_id, g.hostname, s.local_key, s.location, s.first_seen_ms, \
                 s.last_seen_ms, s.removed_at_ms, s.entry_json::text, g.reported_hostname \
             FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
             WHERE s.asset_id = $1 AND s.sighting_id > $2 ORDER BY s.sighting_id LIMIT $3",
            [&asset_id as &(dyn ToSql + Sync), &after, &(limit_param(limit) + 1)],
        )?
        .iterator()
        .map(|r| {
            let r = r?;
            let sighting = Sighting {
                agent_id: r.try_get(1)?,
                hostname: r.try_get(2)?,
                reported_hostname: r.try_get(9)?,
                local_key: r.try_get(3)?,
                path_or_environment: r.try_get(4)?,
                first_seen_ms: r.try_get(5)?,
                last_seen_ms: r.try_get(6)?,
                removed_at_ms: r.try_get(7)?,
                json: r.try_get(8)?,
            };
            Ok::<_, Fail>((r.try_get::<_, i64>(0)?, sighting))
        });
    let rows = bounded(rows, limit, |(_, s)| sighting_bytes(s))?;
    let total = count(&tx.query_one("SELECT COUNT(*) FROM sightings WHERE asset_id = $1", &[&asset_id])?, 0)?;
    let page = paginate(rows, total, |(id, _)| id.to_string());
    let sightings =
        Page { items: page.items.into_iter().map(|(_, s)| s).collect(), next_cursor: page.next_cursor, total };
    Ok(Some(AssetDetail { asset, sightings }))
}

/// The summary in the [`ASSET_COLUMNS`] of `r`, without what [`complete`] adds.
fn asset_from_row(r: &Row) -> Res<AssetSummary> {
    let kind: String = r.try_get(1)?;
    let kind = AssetKind::from_name(&kind).ok_or_else(|| corrupt(format!("unknown kind {kind}")))?;
    Ok(AssetSummary {
        id: r.try_get(0)?,
        kind,
        identity: r.try_get(2)?,
        first_seen_ms: r.try_get(3)?,
        last_seen_ms: r.try_get(4)?,
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
/// when it has one), and a model's verdicts.
fn complete(tx: &mut Tx<'_>, asset: &mut AssetSummary, host: Option<&str>) -> Res<()> {
    asset.hostnames = hostnames(tx, &asset.id)?;
    asset.latest_entry = tx
        .query_opt(
            "SELECT entry_json::text FROM sightings WHERE asset_id = $1 AND removed_at_ms IS NULL \
             ORDER BY (agent_id IS NOT DISTINCT FROM $2) DESC, last_seen_ms DESC, sighting_id DESC LIMIT 1",
            &[&asset.id, &host],
        )?
        .map(|r| r.try_get(0))
        .transpose()?;
    if asset.kind == AssetKind::Model {
        asset.verdict_hosts = verdict_hosts(tx, &asset.id)?;
        asset.verdict = asset.verdict_hosts.first().map(|(v, _)| *v);
    }
    Ok(())
}

/// How many distinct hosts state each verdict in a live sighting of the asset, worst first.
fn verdict_hosts(tx: &mut Tx<'_>, asset_id: &str) -> Res<Vec<(Verdict, u64)>> {
    let rows = tx.query(
        "SELECT COALESCE(s.verdict, 'unknown'), COUNT(DISTINCT s.agent_id) FROM sightings s \
         WHERE s.asset_id = $1 AND s.removed_at_ms IS NULL GROUP BY 1",
        &[&asset_id],
    )?;
    let counts = rows
        .iter()
        .map(|r| Ok((Verdict::from_name(&r.try_get::<_, String>(0)?), count(r, 1)?)))
        .collect::<Res<Vec<_>>>()?;
    Ok(merge_verdicts(counts))
}

/// Hostnames of the hosts with a live sighting of the asset, in byte order, at most the
/// summary's cap.
fn hostnames(tx: &mut Tx<'_>, asset_id: &str) -> Res<Vec<String>> {
    let cap = i64::try_from(AssetSummary::MAX_HOSTNAMES).unwrap_or(i64::MAX);
    let rows = tx.query(
        "SELECT DISTINCT g.hostname COLLATE \"C\" FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
         WHERE s.asset_id = $1 AND s.removed_at_ms IS NULL ORDER BY 1 LIMIT $2",
        &[&asset_id, &cap],
    )?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub(super) fn changes(tx: &mut Tx<'_>, since_ms: i64, limit: u32) -> Res<Changes> {
    let limit = limit_param(limit.clamp(1, PageRequest::MAX_LIMIT));
    let mut sightings = |at: &str| -> Res<(Vec<Change>, u64)> {
        let rows = tx.query(
            format!(
                "SELECT s.asset_id, s.kind, s.agent_id, g.hostname, s.local_key, s.location, s.verdict, {at} AS at_ms \
                 FROM sightings s JOIN agents g ON g.agent_id = s.agent_id WHERE {at} >= $1 \
                 ORDER BY at_ms, s.sighting_id LIMIT $2"
            )
            .as_str(),
            &[&since_ms, &limit],
        )?;
        let items = rows
            .iter()
            .map(|r| {
                Ok(Change {
                    asset_id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    agent_id: r.try_get(2)?,
                    hostname: r.try_get(3)?,
                    local_key: r.try_get(4)?,
                    location: r.try_get(5)?,
                    verdict: r.try_get(6)?,
                    at_ms: r.try_get(7)?,
                })
            })
            .collect::<Res<Vec<_>>>()?;
        let total = count(
            &tx.query_one(format!("SELECT COUNT(*) FROM sightings s WHERE {at} >= $1").as_str(), &[&since_ms])?,
            0,
        )?;
        Ok((items, total))
    };
    let (appeared, appeared_total) = sightings("s.first_seen_ms")?;
    let (removed, removed_total) = sightings("s.removed_at_ms")?;
    let new_assets = tx
        .query(
            "SELECT asset_id, kind, identity, first_seen_ms FROM assets WHERE first_seen_ms >= $1 \
             ORDER BY first_seen_ms, asset_id COLLATE \"C\" LIMIT $2",
            &[&since_ms, &limit],
        )?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect::<Res<Vec<_>>>()?;
    let new_assets_total =
        count(&tx.query_one("SELECT COUNT(*) FROM assets WHERE first_seen_ms >= $1", &[&since_ms])?, 0)?;
    let mut records = |kind: &str| -> Res<(Vec<AssetEvent>, u64)> {
        let items = tx
            .query(
                "SELECT subject, at_ms, detail_json::text FROM audit WHERE kind = $1 AND at_ms >= $2 \
                 ORDER BY seq LIMIT $3",
                &[&kind, &since_ms, &limit],
            )?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Res<Vec<_>>>()?;
        let total = count(
            &tx.query_one("SELECT COUNT(*) FROM audit WHERE kind = $1 AND at_ms >= $2", &[&kind, &since_ms])?,
            0,
        )?;
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
