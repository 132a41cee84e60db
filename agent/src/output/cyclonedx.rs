//! `aiscout-agent scan --format cyclonedx`: this host's CycloneDX 1.6 BOM, for teams without a
//! collector, in the collector's shape ([`aiscout_proto::bom`]): the host as a `device`, its
//! models (one per digest, like the collector's assets) and frameworks (one per ecosystem, name
//! and version) as components with the collector's asset ids as `bom-ref`, its servers as
//! services, and the dependencies server → model → host.

use std::collections::BTreeMap;
use std::io::{self, Write};

use aiscout_proto::bom::{self, BomHeader, BomWriter};
use serde_json::Value;

use crate::report::ScanReport;

/// The `bom-ref` of this host.
const HOST_REF: &str = "host:local";

/// The array `key` of the scan document.
fn section<'v>(doc: &'v Value, key: &str) -> &'v [Value] {
    doc.get(key).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default()
}

/// Writes the BOM of `report` to `out`.
pub fn write_cyclonedx(report: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    let doc = serde_json::to_value(report).map_err(io::Error::other)?;
    let mut random = [0u8; 16];
    // Without randomness the serial is all zeros but still valid: a BOM is not a secret.
    let _ = getrandom::fill(&mut random);
    let timestamp = bom::text_at(&doc, &["host", "scanned_at"]).unwrap_or("1970-01-01T00:00:00Z").to_owned();
    let header = BomHeader::new(random, timestamp, "aiscout-agent", crate::version());
    let mut w = BomWriter::begin(out, &header)?;

    let host = doc.get("host").cloned().unwrap_or(Value::Null);
    let hostname = bom::text_at(&host, &["hostname"]).unwrap_or("localhost");
    w.component(&bom::host_component(HOST_REF, hostname, &host, Vec::new()))?;

    // Models by digest (the collector's asset), each with the paths it lies at.
    let mut models: BTreeMap<String, (&Value, Vec<String>)> = BTreeMap::new();
    let mut by_path: BTreeMap<&str, String> = BTreeMap::new();
    let mut by_sha: BTreeMap<String, String> = BTreeMap::new();
    for entry in section(&doc, "models") {
        let Some(digest) = bom::model_digest(entry) else { continue };
        let path = bom::text_at(entry, &["path"]).unwrap_or_default();
        by_path.insert(path, format!("model:{digest}"));
        if let Some(sha) = bom::text_at(entry, &["sha256"]) {
            by_sha.insert(sha.to_ascii_lowercase(), format!("model:{digest}"));
        }
        models.entry(digest).or_insert((entry, Vec::new())).1.push(path.to_owned());
    }
    for (digest, (entry, paths)) in &models {
        let extra = paths.iter().take(64).map(|p| ("aiscout:location".to_owned(), p.clone())).collect();
        w.component(&bom::model_component(&format!("model:{digest}"), digest, entry, extra))?;
    }
    let mut frameworks: BTreeMap<String, (&Value, Vec<String>)> = BTreeMap::new();
    for entry in section(&doc, "frameworks") {
        let Some(id) = bom::framework_asset_id(entry) else { continue };
        let env = bom::text_at(entry, &["environment", "path"]).or_else(|| bom::text_at(entry, &["path"]));
        frameworks.entry(id).or_insert((entry, Vec::new())).1.extend(env.map(str::to_owned));
    }
    for (id, (entry, envs)) in &frameworks {
        let extra = envs.iter().take(64).map(|p| ("aiscout:environment".to_owned(), p.clone())).collect();
        w.component(&bom::framework_component(id, entry, extra))?;
    }

    // Servers, by pid; each depends on the host and on the models it has open.
    let servers: Vec<(String, &Value)> = section(&doc, "runtimes")
        .iter()
        .enumerate()
        .filter(|(_, e)| bom::is_server(e))
        .map(|(i, e)| match e.get("pid").and_then(Value::as_u64) {
            Some(pid) => (format!("runtime:pid:{pid}"), e),
            None => (format!("runtime:entry:{i}"), e),
        })
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .collect();
    for (server_ref, entry) in &servers {
        w.service(&bom::server_service(server_ref, entry, Vec::new()))?;
    }
    for (server_ref, entry) in &servers {
        let mut depends_on = vec![HOST_REF.to_owned()];
        let open = bom::open_model_paths(entry)
            .iter()
            .filter_map(|p| by_path.get(p.as_str()).cloned())
            .chain(bom::open_model_digests(entry).iter().filter_map(|d| by_sha.get(d).cloned()))
            .collect::<std::collections::BTreeSet<_>>();
        depends_on.extend(open);
        w.dependency(server_ref, &depends_on)?;
    }
    for id in models.keys().map(|d| format!("model:{d}")).chain(frameworks.keys().cloned()) {
        w.dependency(&id, &[HOST_REF.to_owned()])?;
    }
    w.finish()?;
    Ok(())
}
