//! The fleet's (or one host's) CycloneDX 1.6 BOM, in the shape of [`aiscout_proto::bom`]: hosts,
//! models and frameworks as components, servers as services, and the dependencies server →
//! model → host. Each part is read from the store in chunks as it is written.

use std::collections::HashSet;
use std::io::Write;

use aiscout_proto::bom::{self, BomHeader, BomWriter};
use serde_json::Value;

use super::{
    entry, for_each_asset, for_each_host, for_each_sighting, host_facts, hostname, ExportContext, ExportError,
    ExportRequest, ExportSummary, FindingsIndex,
};
use crate::store::{AssetKind, AssetSummary, ExportSighting, HostSummary, Store};

/// The `bom-ref` of a host.
pub fn host_ref(agent_id: &str) -> String {
    format!("host:{agent_id}")
}

/// The fleet facts of a host the BOM names besides the scan's: its agent id, identity facts and
/// risk.
fn host_extra(host: &HostSummary) -> Vec<(String, String)> {
    let mut extra = vec![
        ("aiscout:agent_id".to_owned(), host.agent.agent_id.clone()),
        ("aiscout:risk".to_owned(), host.risk.to_string()),
        ("aiscout:last_seen".to_owned(), host.agent.last_seen_ms.map(crate::rfc3339_ms).unwrap_or_default()),
    ];
    let identity = host.agent.identity_json.as_deref().map_or(Value::Null, entry);
    for (key, name) in
        [("product_serial", "serial_number"), ("machine_id", "machine_id"), ("product_uuid", "product_uuid")]
    {
        if let Some(value) = bom::text_at(&identity, &[key]) {
            extra.push((format!("aiscout:host:{name}"), value.to_owned()));
        }
    }
    let macs = identity.get("mac_addresses").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    for mac in macs.iter().filter_map(Value::as_str).take(64) {
        extra.push(("aiscout:host:mac_address".to_owned(), mac.to_owned()));
    }
    extra
}

/// The fleet facts of an asset: when it was seen, on how many hosts, its worst verdict, and the
/// findings that stand on it.
fn asset_extra(asset: &AssetSummary, findings: &FindingsIndex) -> Vec<(String, String)> {
    let mut extra = vec![
        ("aiscout:live_hosts".to_owned(), asset.live_hosts.to_string()),
        ("aiscout:first_seen".to_owned(), crate::rfc3339_ms(asset.first_seen_ms)),
        ("aiscout:last_seen".to_owned(), crate::rfc3339_ms(asset.last_seen_ms)),
    ];
    if let Some(verdict) = asset.verdict {
        extra.push(("aiscout:fleet:verdict".to_owned(), verdict.as_str().to_owned()));
    }
    if asset.owned {
        extra.push(("aiscout:package_file".to_owned(), "true".to_owned()));
    }
    for (rule, severity, state) in findings.of(&asset.id) {
        extra.push(("aiscout:finding".to_owned(), format!("{rule} {severity} {state}")));
    }
    extra
}

/// Writes `bom_ref` → hosts dependencies from sightings sorted by asset and host, one entry per
/// asset, holding only the current asset's hosts.
#[derive(Debug, Default)]
struct HostsOfAsset {
    /// The asset whose hosts are being gathered.
    asset: Option<String>,
    /// Its hosts so far (sorted: sightings come by host).
    hosts: Vec<String>,
}

impl HostsOfAsset {
    fn add<W: Write>(
        &mut self,
        bom: &mut BomWriter<W>,
        s: &ExportSighting,
        written: &HashSet<String>,
    ) -> Result<(), ExportError> {
        if self.asset.as_deref() != Some(s.key.asset_id.as_str()) {
            self.flush(bom, written)?;
            self.asset = Some(s.key.asset_id.clone());
        }
        let host = host_ref(&s.key.agent_id);
        if self.hosts.last() != Some(&host) {
            self.hosts.push(host);
        }
        Ok(())
    }

    fn flush<W: Write>(&mut self, bom: &mut BomWriter<W>, written: &HashSet<String>) -> Result<(), ExportError> {
        let mut hosts = std::mem::take(&mut self.hosts);
        if let Some(asset) = self.asset.take().filter(|a| written.contains(a)) {
            hosts.retain(|h| written.contains(h));
            bom.dependency(&asset, &hosts)?;
        }
        Ok(())
    }
}

/// Writes the BOM.
pub(super) fn write(
    store: &dyn Store,
    request: &ExportRequest,
    context: &ExportContext,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let findings = FindingsIndex::read(store, request)?;
    let header = BomHeader::new(
        context.random,
        crate::rfc3339_seconds(context.now_ms),
        "aiscout-collector",
        &context.tool_version,
    );
    let mut bom = BomWriter::begin(out, &header)?;
    // Every bom-ref written, so no dependency names what a later chunk added (module docs of
    // `export`, 5).
    let mut written: HashSet<String> = HashSet::new();
    for_each_host(store, request, |h| {
        let bom_ref = host_ref(&h.agent.agent_id);
        bom.component(&bom::host_component(&bom_ref, hostname(h), &host_facts(h), host_extra(h)))?;
        written.insert(bom_ref);
        Ok(())
    })?;
    if request.wants(AssetKind::Model) {
        for_each_asset(store, request, Some(AssetKind::Model), |a| {
            let e = super::latest_entry(a);
            bom.component(&bom::model_component(&a.id, &a.identity, &e, asset_extra(a, &findings)))?;
            written.insert(a.id.clone());
            Ok(())
        })?;
    }
    if request.wants(AssetKind::Framework) {
        for_each_asset(store, request, Some(AssetKind::Framework), |a| {
            let e = super::latest_entry(a);
            bom.component(&bom::framework_component(&a.id, &e, asset_extra(a, &findings)))?;
            written.insert(a.id.clone());
            Ok(())
        })?;
    }
    // A runtime asset is one server on one host; a restarted server can leave a second live
    // sighting of it for a moment: the first (by sighting id) speaks for it.
    let mut last_server: Option<String> = None;
    if request.wants(AssetKind::Runtime) {
        for_each_sighting(store, request, Some(AssetKind::Runtime), |s| {
            if last_server.as_deref() == Some(s.key.asset_id.as_str()) {
                return Ok(());
            }
            let e = entry(&s.entry_json);
            if !bom::is_server(&e) {
                return Ok(());
            }
            last_server = Some(s.key.asset_id.clone());
            let extra = vec![
                ("aiscout:agent_id".to_owned(), s.key.agent_id.clone()),
                ("aiscout:hostname".to_owned(), s.hostname.clone()),
                ("aiscout:first_seen".to_owned(), crate::rfc3339_ms(s.first_seen_ms)),
                ("aiscout:last_seen".to_owned(), crate::rfc3339_ms(s.last_seen_ms)),
            ];
            bom.service(&bom::server_service(&s.key.asset_id, &e, extra))?;
            written.insert(s.key.asset_id.clone());
            Ok(())
        })?;
    }
    // Dependencies. Servers: re-read (a server's open models are resolved against its host's
    // model sightings only here, so the services above were written without holding them).
    if request.wants(AssetKind::Runtime) {
        last_server = None;
        for_each_sighting(store, request, Some(AssetKind::Runtime), |s| {
            if !written.contains(&s.key.asset_id) || last_server.as_deref() == Some(s.key.asset_id.as_str()) {
                return Ok(());
            }
            let e = entry(&s.entry_json);
            last_server = Some(s.key.asset_id.clone());
            let mut depends_on = vec![host_ref(&s.key.agent_id)];
            if request.wants(AssetKind::Model) {
                let (paths, digests) = (bom::open_model_paths(&e), bom::open_model_digests(&e));
                if !paths.is_empty() || !digests.is_empty() {
                    depends_on.extend(store.models_at(&s.key.agent_id, &paths, &digests)?);
                }
            }
            depends_on.retain(|r| written.contains(r));
            Ok(bom.dependency(&s.key.asset_id, &depends_on)?)
        })?;
    }
    for kind in [AssetKind::Model, AssetKind::Framework] {
        if request.wants(kind) {
            let mut hosts = HostsOfAsset::default();
            for_each_sighting(store, request, Some(kind), |s| hosts.add(&mut bom, s, &written))?;
            hosts.flush(&mut bom, &written)?;
        }
    }
    bom.finish()?;
    Ok(ExportSummary { items: written.len() as u64 })
}
