//! The inventory as an SPDX 3.0.1 JSON-LD document with the Core, Software, AI and
//! SimpleLicensing profiles (docs/exports.md has the mapping).
//!
//! 1. One `CreationInfo` (`_:creationinfo`) made by the collector (`SoftwareAgent`) with the
//!    collector (`Tool`), and the `SpdxDocument`.
//! 2. Each host is a `software_Package` whose primary purpose is `device`; each model an
//!    `ai_AIPackage` (purpose `model`) with its SHA-256 in `verifiedUsing`, its package URL, the
//!    header facts as `ai_hyperparameter` entries and its architecture as `ai_typeOfModel`;
//!    each framework a `software_Package` (purpose `library`).
//! 3. A declared licence that reads as an SPDX licence expression is a
//!    `simplelicensing_LicenseExpression` tied by `hasDeclaredLicense`; any other text stays in
//!    the model's `comment`, with the safety verdict and findings.
//! 4. Each host `contains` the models and frameworks seen on it: one relationship per host,
//!    read host by host so only one host's assets are held.
//!
//! Ids are stable IRIs (`urn:aiscout:host:<agent id>`, `urn:aiscout:asset:<asset id>`), so two
//! exports of the same inventory differ only in the document's id and creation time.

use std::collections::HashSet;
use std::io::{self, Write};

use aiscout_proto::bom;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::{
    for_each_asset, for_each_host, for_each_sighting, hostname, ExportContext, ExportError, ExportRequest,
    ExportSummary, FindingsIndex,
};
use crate::store::{AssetKind, AssetSummary, Store};

const CONTEXT: &str = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld";
const CREATION_INFO: &str = "_:creationinfo";
/// Most assets one `contains` relationship names.
const CONTAINS_PER_RELATIONSHIP: usize = 1000;

fn host_id(agent_id: &str) -> String {
    format!("urn:aiscout:host:{agent_id}")
}

fn asset_id(asset_id: &str) -> String {
    format!("urn:aiscout:asset:{asset_id}")
}

/// Writes the `@graph` array element by element.
struct Graph<'w> {
    out: &'w mut dyn Write,
    first: bool,
    items: u64,
    /// The hosts and assets written (their number, not the sightings'), so a relationship never
    /// names what a later chunk added (module docs of `export`, 5).
    written: HashSet<String>,
}

impl Graph<'_> {
    fn element(&mut self, element: &Value) -> io::Result<()> {
        if !self.first {
            self.out.write_all(b",\n")?;
        }
        self.first = false;
        self.items += 1;
        serde_json::to_writer(&mut *self.out, element).map_err(io::Error::other)
    }
}

/// SPDX licence identifiers models commonly declare; a declared licence is written as an SPDX
/// licence expression only when it is one of these (in any case) or a `LicenseRef-`, so the
/// document never carries an expression that SPDX tools would refuse. Anything else (`llama3`,
/// `MIT License`, free text) stays in the model's `comment`.
const LICENCE_IDS: &[&str] = &[
    "AFL-3.0",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "Apache-2.0",
    "Artistic-2.0",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "BSL-1.0",
    "CC-BY-4.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-ND-4.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0",
    "CC-BY-SA-4.0",
    "CC0-1.0",
    "CreativeML-OpenRAIL-M",
    "ECL-2.0",
    "EPL-2.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "ISC",
    "LGPL-2.1-only",
    "LGPL-3.0-only",
    "MIT",
    "MPL-2.0",
    "OpenRAIL",
    "Unlicense",
    "Zlib",
];

/// The SPDX licence expression `text` stands for, if it is a known identifier or a
/// `LicenseRef-` (letters, digits, `.` and `-`).
pub(crate) fn licence_expression(text: &str) -> Option<String> {
    if let Some(id) = LICENCE_IDS.iter().find(|id| id.eq_ignore_ascii_case(text)) {
        return Some((*id).to_owned());
    }
    let reference = text.strip_prefix("LicenseRef-")?;
    (!reference.is_empty()
        && reference.len() <= 128
        && reference.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')))
    .then(|| text.to_owned())
}

fn model_element(asset: &AssetSummary, e: &Value, findings: &FindingsIndex) -> Value {
    let mut m = Map::new();
    m.insert("type".into(), json!("ai_AIPackage"));
    m.insert("spdxId".into(), json!(asset_id(&asset.id)));
    m.insert("creationInfo".into(), json!(CREATION_INFO));
    m.insert("name".into(), json!(bom::model_name(e)));
    m.insert("software_primaryPurpose".into(), json!("model"));
    m.insert("software_packageUrl".into(), json!(bom::model_purl(e, &asset.identity)));
    if let Some(revision) = bom::text_at(e, &["source", "revision"]) {
        m.insert("software_packageVersion".into(), json!(revision));
    }
    if bom::text_at(e, &["source", "kind"]) == Some("huggingface") {
        if let Some(repo) = bom::text_at(e, &["source", "repo"]) {
            let path = repo.split('/').map(bom::purl_encode).collect::<Vec<_>>().join("/");
            m.insert("software_downloadLocation".into(), json!(format!("https://huggingface.co/{path}")));
        }
    }
    let tree = bom::is_tree_digest(e);
    if !tree {
        m.insert("verifiedUsing".into(), json!([{"type": "Hash", "algorithm": "sha256", "hashValue": asset.identity}]));
    }
    if let Some(arch) = bom::text_at(e, &["metadata", "architecture"]) {
        m.insert("ai_typeOfModel".into(), json!([arch]));
    }
    let hyper: Vec<Value> = ["parameters", "quantization", "context_length", "tensor_count"]
        .iter()
        .filter_map(|k| {
            let v = e.get("metadata")?.get(*k)?;
            let v = v.as_str().map(str::to_owned).or_else(|| v.as_u64().map(|n| n.to_string()))?;
            Some(json!({"type": "DictionaryEntry", "key": k, "value": v}))
        })
        .collect();
    if !hyper.is_empty() {
        m.insert("ai_hyperparameter".into(), Value::Array(hyper));
    }
    let mut notes: Vec<String> =
        bom::model_facts(e).into_iter().map(|(k, v)| format!("{}: {v}", k.trim_start_matches("aiscout:"))).collect();
    if tree {
        notes.push(format!("tree_digest: {}", asset.identity));
    }
    if let Some(licence) = bom::text_at(e, &["metadata", "license"]).filter(|l| licence_expression(l).is_none()) {
        notes.push(format!("license: {licence}"));
    }
    if let Some(verdict) = asset.verdict {
        notes.push(format!("fleet:verdict: {}", verdict.as_str()));
    }
    for (rule, severity, state) in findings.of(&asset.id) {
        notes.push(format!("finding: {rule} {severity} {state}"));
    }
    m.insert("comment".into(), json!(notes.join("; ")));
    Value::Object(m)
}

fn framework_element(asset: &AssetSummary, e: &Value) -> Value {
    let mut p = Map::new();
    p.insert("type".into(), json!("software_Package"));
    p.insert("spdxId".into(), json!(asset_id(&asset.id)));
    p.insert("creationInfo".into(), json!(CREATION_INFO));
    p.insert("name".into(), json!(bom::text_at(e, &["name"]).unwrap_or("unknown")));
    p.insert("software_primaryPurpose".into(), json!("library"));
    if let Some(version) = bom::text_at(e, &["version"]) {
        p.insert("software_packageVersion".into(), json!(version));
    }
    if let Some(purl) = bom::framework_purl(e) {
        p.insert("software_packageUrl".into(), json!(purl));
    }
    Value::Object(p)
}

/// Writes the document.
pub(super) fn write(
    store: &dyn Store,
    request: &ExportRequest,
    context: &ExportContext,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    let findings = FindingsIndex::read(store, request)?;
    let created = crate::rfc3339_seconds(context.now_ms);
    let tool_id = format!("urn:aiscout:tool:aiscout-collector:{}", context.tool_version);
    let agent = "urn:aiscout:agent:aiscout-collector";
    writeln!(out, "{{\"@context\":\"{CONTEXT}\",\"@graph\":[")?;
    let mut graph = Graph { out, first: true, items: 0, written: HashSet::new() };
    graph.element(&json!({"type": "CreationInfo", "@id": CREATION_INFO, "specVersion": "3.0.1",
        "created": created, "createdBy": [agent], "createdUsing": [tool_id]}))?;
    graph.element(&json!({"type": "SoftwareAgent", "spdxId": agent, "creationInfo": CREATION_INFO,
        "name": "aiscout-collector"}))?;
    graph.element(&json!({"type": "Tool", "spdxId": tool_id, "creationInfo": CREATION_INFO,
        "name": format!("aiscout-collector {}", context.tool_version)}))?;
    graph.element(&json!({"type": "SpdxDocument",
        "spdxId": format!("urn:aiscout:spdx:{}", bom::uuid_v4(context.random)),
        "creationInfo": CREATION_INFO, "name": "aiscout AI inventory",
        "profileConformance": ["core", "software", "ai", "simpleLicensing"]}))?;
    // The hosts written, in order, for their `contains` relationships at the end.
    let mut host_ids: Vec<String> = Vec::new();
    for_each_host(store, request, |h| {
        let facts = super::host_facts(h);
        let os = bom::text_at(&facts, &["os"]).unwrap_or("unknown os");
        graph.element(&json!({"type": "software_Package", "spdxId": host_id(&h.agent.agent_id),
            "creationInfo": CREATION_INFO, "name": hostname(h), "software_primaryPurpose": "device",
            "comment": format!("aiscout host: agent id {}; {os}", h.agent.agent_id)}))?;
        graph.written.insert(host_id(&h.agent.agent_id));
        host_ids.push(h.agent.agent_id.clone());
        Ok(())
    })?;
    let mut licences: HashSet<String> = HashSet::new();
    if request.wants(AssetKind::Model) {
        for_each_asset(store, request, Some(AssetKind::Model), |a| {
            let e = super::latest_entry(a);
            graph.element(&model_element(a, &e, &findings))?;
            graph.written.insert(asset_id(&a.id));
            if let Some(licence) = bom::text_at(&e, &["metadata", "license"]).and_then(licence_expression) {
                let id = format!("urn:aiscout:license:{}", hex::encode(Sha256::digest(licence.as_bytes())));
                if licences.insert(id.clone()) {
                    graph.element(&json!({"type": "simplelicensing_LicenseExpression", "spdxId": id,
                        "creationInfo": CREATION_INFO, "simplelicensing_licenseExpression": licence}))?;
                }
                graph.element(&json!({"type": "Relationship",
                    "spdxId": format!("urn:aiscout:relationship:{}:hasDeclaredLicense", a.id),
                    "creationInfo": CREATION_INFO, "from": asset_id(&a.id),
                    "relationshipType": "hasDeclaredLicense", "to": [id]}))?;
            }
            Ok(())
        })?;
    }
    if request.wants(AssetKind::Framework) {
        for_each_asset(store, request, Some(AssetKind::Framework), |a| {
            let e = super::latest_entry(a);
            graph.element(&framework_element(a, &e))?;
            graph.written.insert(asset_id(&a.id));
            Ok(())
        })?;
    }
    // Host by host: what each contains.
    for agent_id in &host_ids {
        contains(store, request, agent_id, &mut graph)?;
    }
    let items = graph.items;
    graph.out.write_all(b"\n]}\n")?;
    Ok(ExportSummary { items })
}

/// Writes `host contains …` for the host of `agent_id`.
fn contains(
    store: &dyn Store,
    request: &ExportRequest,
    agent_id: &str,
    graph: &mut Graph<'_>,
) -> Result<(), ExportError> {
    if !graph.written.contains(&host_id(agent_id)) {
        return Ok(());
    }
    let one_host = ExportRequest { agent_id: Some(agent_id.to_owned()), ..request.clone() };
    let (mut to, mut part, mut last): (Vec<String>, u32, Option<String>) = (Vec::new(), 0, None);
    // At most CONTAINS_PER_RELATIONSHIP assets per relationship, so one host's element stays
    // small whatever it holds; the first keeps the plain id.
    let mut emit = |graph: &mut Graph<'_>, to: Vec<String>| -> Result<(), ExportError> {
        let id = match part {
            0 => format!("urn:aiscout:relationship:host:{agent_id}:contains"),
            n => format!("urn:aiscout:relationship:host:{agent_id}:contains:{n}"),
        };
        part += 1;
        Ok(graph.element(&json!({"type": "Relationship", "spdxId": id, "creationInfo": CREATION_INFO,
            "from": host_id(agent_id), "relationshipType": "contains", "to": to}))?)
    };
    for kind in [AssetKind::Model, AssetKind::Framework].into_iter().filter(|k| request.wants(*k)) {
        for_each_sighting(store, &one_host, Some(kind), |s| {
            let id = asset_id(&s.key.asset_id);
            if last.as_ref() != Some(&id) && graph.written.contains(&id) {
                last = Some(id.clone());
                to.push(id);
            }
            if to.len() == CONTAINS_PER_RELATIONSHIP {
                emit(graph, std::mem::take(&mut to))?;
            }
            Ok(())
        })?;
    }
    if !to.is_empty() {
        emit(graph, to)?;
    }
    Ok(())
}
