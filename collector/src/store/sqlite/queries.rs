//! Read pages for the HTTP API (keyset pagination, module docs of `store`).

use rusqlite::types::Type;
use rusqlite::{params, OptionalExtension, Row, Transaction};

use super::agents::{self, AGENT_COLUMNS, AGENT_COLUMN_COUNT};
use super::Res;
use crate::store::error::StoreError;
use crate::store::types::{
    AssetDetail, AssetFilter, AssetKind, AssetSummary, HostSummary, Page, PageRequest, Sighting,
};

pub(super) fn hosts(tx: &Transaction<'_>, page: &PageRequest) -> Res<Page<HostSummary>> {
    let limit = page.effective_limit();
    let sql = format!(
        "SELECT {AGENT_COLUMNS}, (SELECT COUNT(*) FROM sightings s \
             WHERE s.agent_id = a.agent_id AND s.removed_at_ms IS NULL) \
         FROM agents a WHERE ?1 IS NULL OR a.agent_id > ?1 ORDER BY a.agent_id LIMIT ?2"
    );
    let mut stmt = tx.prepare(&sql)?;
    let rows = stmt
        .query_map(params![page.after, limit + 1], |r| {
            Ok(HostSummary { agent: agents::from_row(r)?, live_sightings: count(r, AGENT_COLUMN_COUNT)? })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = tx.query_row("SELECT COUNT(*) FROM agents", [], |r| count(r, 0))?;
    Ok(paginate(rows, limit, total, |h| h.agent.agent_id.clone()))
}

/// Columns of an asset summary, for `assets` aliased `a`, read by [`asset_from_row`].
const ASSET_COLUMNS: &str = "a.asset_id, a.kind, a.identity, a.first_seen_ms, a.last_seen_ms, \
     (SELECT COUNT(*) FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL), \
     (SELECT COUNT(DISTINCT s.agent_id) FROM sightings s WHERE s.asset_id = a.asset_id AND s.removed_at_ms IS NULL)";

pub(super) fn assets(tx: &Transaction<'_>, filter: &AssetFilter, page: &PageRequest) -> Res<Page<AssetSummary>> {
    let limit = page.effective_limit();
    let kind = filter.kind.map(AssetKind::as_str);
    let sql = format!(
        "SELECT {ASSET_COLUMNS} FROM assets a WHERE (?1 IS NULL OR a.kind = ?1) AND (?2 IS NULL OR a.asset_id > ?2) \
         ORDER BY a.asset_id LIMIT ?3"
    );
    let mut stmt = tx.prepare(&sql)?;
    let mut rows =
        stmt.query_map(params![kind, page.after, limit + 1], asset_from_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
    for asset in &mut rows {
        asset.hostnames = hostnames(tx, &asset.id)?;
    }
    let total = tx.query_row("SELECT COUNT(*) FROM assets WHERE ?1 IS NULL OR kind = ?1", [kind], |r| count(r, 0))?;
    Ok(paginate(rows, limit, total, |a| a.id.clone()))
}

pub(super) fn asset(tx: &Transaction<'_>, asset_id: &str, page: &PageRequest) -> Res<Option<AssetDetail>> {
    let sql = format!("SELECT {ASSET_COLUMNS} FROM assets a WHERE a.asset_id = ?1");
    let Some(mut asset) = tx.query_row(&sql, [asset_id], asset_from_row).optional()? else {
        return Ok(None);
    };
    asset.hostnames = hostnames(tx, asset_id)?;
    let after: i64 = match &page.after {
        None => 0,
        Some(cursor) => cursor.parse().map_err(|_| StoreError::InvalidCursor { cursor: cursor.clone() })?,
    };
    let limit = page.effective_limit();
    let mut stmt = tx.prepare(
        "SELECT s.sighting_id, s.agent_id, g.hostname, s.local_key, s.location, s.first_seen_ms, s.last_seen_ms, \
             s.removed_at_ms, s.entry_json \
         FROM sightings s JOIN agents g ON g.agent_id = s.agent_id \
         WHERE s.asset_id = ?1 AND s.sighting_id > ?2 ORDER BY s.sighting_id LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(params![asset_id, after, limit + 1], |r| {
            let sighting = Sighting {
                agent_id: r.get(1)?,
                hostname: r.get(2)?,
                local_key: r.get(3)?,
                path_or_environment: r.get(4)?,
                first_seen_ms: r.get(5)?,
                last_seen_ms: r.get(6)?,
                removed_at_ms: r.get(7)?,
                json: r.get(8)?,
            };
            Ok((r.get::<_, i64>(0)?, sighting))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = tx.query_row("SELECT COUNT(*) FROM sightings WHERE asset_id = ?1", [asset_id], |r| count(r, 0))?;
    let page = paginate(rows, limit, total, |(id, _)| id.to_string());
    let sightings =
        Page { items: page.items.into_iter().map(|(_, s)| s).collect(), next_cursor: page.next_cursor, total };
    Ok(Some(AssetDetail { asset, sightings }))
}

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
    })
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

/// The page of `rows` (fetched with one extra row to tell whether another page follows).
fn paginate<T>(mut rows: Vec<T>, limit: u32, total: u64, cursor_of: impl Fn(&T) -> String) -> Page<T> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(cursor_of)
    } else {
        None
    };
    Page { items: rows, next_cursor, total }
}
