//! PostgreSQL: the dashboard's overview (`sqlite/overview.rs`): the listings' totals with the
//! overview's filters, the findings' counts and trend, and the models spreading fastest, in one
//! (`REPEATABLE READ`) transaction. Only the SQL differs: ids sort `COLLATE "C"` (byte order,
//! as in SQLite).

use super::{findings, queries, Res, Tx};
use crate::store::types::{AssetFilter, AssetKind, HostFilter, Overview, OverviewRequest, Verdict};

pub(super) fn overview(tx: &mut Tx<'_>, request: &OverviewRequest) -> Res<Overview> {
    let mut hosts_by_status = Vec::new();
    for status in ["online", "silent", "revoked", "decommissioned"] {
        let filter = HostFilter {
            status: Some(status.into()),
            silent_before_ms: request.silent_before_ms,
            ..HostFilter::default()
        };
        hosts_by_status.push((status.to_string(), queries::hosts_total(tx, &filter)?));
    }
    let clones = queries::count(
        &tx.query_one(
            "SELECT COUNT(*) FROM agents WHERE clone_detected_at_ms IS NOT NULL AND revoked_at_ms IS NULL \
             AND superseded_by IS NULL AND decommissioned_at_ms IS NULL",
            &[],
        )?,
        0,
    )?;
    let models_filter = AssetFilter { kind: Some(AssetKind::Model), ..AssetFilter::default() };
    let verdicts = [Verdict::Dangerous, Verdict::Suspicious, Verdict::Safe];
    let (models, by_verdict) = queries::count_by_verdict(tx, &models_filter, &verdicts)?;
    let models_by_verdict = verdicts.iter().map(|v| v.as_str().to_string()).zip(by_verdict).collect();
    let exposed =
        AssetFilter { kind: Some(AssetKind::Runtime), exposure: Some("exposed".into()), ..AssetFilter::default() };
    let exposed_servers = queries::assets_total(tx, &exposed)?;
    let mut spreading = Vec::new();
    for (asset_id, new_hosts) in spreading_models(tx, request.spread_since_ms, request.list_limit)? {
        if let Some(asset) = queries::asset_summary(tx, &asset_id)? {
            spreading.push((asset, new_hosts));
        }
    }
    Ok(Overview {
        hosts_by_status,
        clones,
        models,
        models_by_verdict,
        exposed_servers,
        open_findings: findings::open_by_severity(tx)?,
        trend: findings::trend(tx, request.now_ms, request.trend_days)?,
        newest_critical: findings::newest(tx, "critical", request.list_limit)?,
        spreading,
    })
}

/// The models with the most hosts whose live sighting of them began at or after `since_ms`
/// (`sightings_live_by_first_seen`), most first.
fn spreading_models(tx: &mut Tx<'_>, since_ms: i64, limit: u32) -> Res<Vec<(String, u64)>> {
    let rows = tx.query(
        "SELECT s.asset_id, COUNT(DISTINCT s.agent_id) AS n FROM sightings s \
         WHERE s.removed_at_ms IS NULL AND s.kind = 'model' AND s.first_seen_ms >= $1 \
         GROUP BY s.asset_id ORDER BY n DESC, s.asset_id COLLATE \"C\" LIMIT $2",
        &[&since_ms, &i64::from(limit)],
    )?;
    rows.iter().map(|r| Ok((r.try_get(0)?, queries::count(r, 1)?))).collect()
}
