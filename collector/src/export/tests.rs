//! Exports of a small fleet in a real store: every format parses, the BOM validates against the
//! official CycloneDX 1.6 schema (vendored), the output is deterministic, hostile text stays
//! data, and a chunked read loses and repeats nothing.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::*;
use crate::store::tests::TestStore;
use crate::store::tests::{delta, registration, store};
use crate::store::IngestRemoval;
use crate::store::{HostFacts, IngestAsset, IngestBatch};

const GGUF: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
const PICKLE: &str = "bb00000000000000000000000000000000000000000000000000000000000002";
const NOW: i64 = 1_780_000_000_000;

fn upsert(kind: AssetKind, key: &str, json: Value) -> IngestAsset {
    IngestAsset { kind, local_key: key.to_owned(), json: json.to_string() }
}

fn gguf(path: &str) -> Value {
    json!({"path": path, "format": "gguf", "sha256": GGUF, "size": 1000, "digest_source": "hashed",
        "metadata": {"name": "Llama 2 7B", "architecture": "llama", "parameters": 6_738_415_616u64,
            "quantization": "Q4_K_M", "context_length": 4096, "license": "llama2"},
        "source": {"kind": "huggingface", "repo": "TheBloke/Llama-2-7B-GGUF", "revision": "b4e04e128f421c93a5f1e34ac4d7ca9b0af47b80"},
        "group": null, "owner": null, "safety": {"verdict": "safe", "findings": []}})
}

/// host-a serves the GGUF on all interfaces and holds a dangerous pickle named like a formula;
/// host-b holds the same GGUF; both have torch 2.3.0.
fn fleet() -> TestStore {
    let store = store();
    for (id, name) in [("agent-a", "host-a"), ("agent-b", "host-b")] {
        store.upsert_agent(&registration(id, name, &format!("fp-{id}"), NOW - 1000)).unwrap();
        store
            .set_identity_facts(
                id,
                &json!({"product_serial": format!("SN-{id}"), "mac_addresses": ["52:54:00:12:34:56"]}).to_string(),
            )
            .unwrap();
    }
    let torch = |env: &str| {
        upsert(
            AssetKind::Framework,
            &format!("{env}:torch"),
            json!({"ecosystem": "pypi", "name": "torch",
            "version": "2.3.0", "environment": {"path": env, "kind": "venv"}, "category": "core"}),
        )
    };
    let batch = |upserts: Vec<IngestAsset>, hostname: &str| IngestBatch {
        host: Some(HostFacts {
            json: json!({"hostname": hostname, "os": "Debian GNU/Linux 12", "kernel": "6.1", "arch": "x86_64",
                "ip_addresses": ["10.0.0.7"]})
            .to_string(),
            hostname: hostname.to_owned(),
            machine_fingerprint: format!("fp-agent-{}", hostname.trim_start_matches("host-")),
        }),
        ..delta(1, NOW - 500, upserts)
    };
    let a = vec![
        upsert(AssetKind::Model, "/srv/llama.gguf", gguf("/srv/llama.gguf")),
        upsert(
            AssetKind::Model,
            "/home/eve/x.pkl",
            json!({"path": "/home/eve/x.pkl", "format": "pickle",
            "sha256": PICKLE, "metadata": {"name": "=HYPERLINK(\"http://evil\",\"click\")"}, "group": null,
            "owner": null, "safety": {"verdict": "dangerous", "findings": [{"kind": "dangerous_import",
            "subject": "os.system", "detail": "runs a command", "severity": "dangerous", "atlas": "AML.T0011.000"}]}}),
        ),
        torch("/opt/venv"),
        upsert(
            AssetKind::Runtime,
            "ollama:11434",
            json!({"pid": 42, "kind": "ollama", "exe": "/usr/bin/ollama",
            "listening": [{"address": "0.0.0.0", "port": 11434, "exposure": "all_interfaces"}],
            "auth": {"state": "default", "server_default": "none", "evidence": []},
            "open_models": [{"path": "/srv/llama.gguf", "sha256": GGUF, "via": ["mmap"]}]}),
        ),
    ];
    store.apply_batch("agent-a", &batch(a, "host-a")).unwrap();
    // host-b's server maps the GGUF through a path no sighting has (a link): matched by SHA-256.
    let b = vec![
        upsert(AssetKind::Model, "/data/llama.gguf", gguf("/data/llama.gguf")),
        torch("/usr/lib/python3"),
        upsert(
            AssetKind::Runtime,
            "llama.cpp-server:8080",
            json!({"pid": 7, "kind": "llama.cpp-server",
            "listening": [{"address": "127.0.0.1", "port": 8080, "exposure": "loopback"}],
            "auth": {"state": "configured", "evidence": ["--api-key"]},
            "open_models": [{"path": "/mnt/current.gguf", "sha256": GGUF, "via": ["mmap"]}]}),
        ),
    ];
    store.apply_batch("agent-b", &batch(b, "host-b")).unwrap();
    crate::findings::evaluate(&store, &crate::findings::Settings::default(), NOW).unwrap();
    store
}

fn request(format: Format) -> ExportRequest {
    ExportRequest { format, rows: Rows::Assets, kind: None, agent_id: None, include_removed: false }
}

fn context(random: u8) -> ExportContext {
    ExportContext { now_ms: NOW + i64::from(random), random: [random; 16], tool_version: "0.1.0".into() }
}

fn export(store: &TestStore, request: &ExportRequest, random: u8) -> String {
    let mut out = Vec::new();
    run(store, request, &context(random), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

/// The official CycloneDX 1.6 schema, with the two schemas it refers to served from the vendored
/// copies (no network).
pub(crate) fn cyclonedx_validator() -> jsonschema::Validator {
    #[derive(Debug)]
    struct Vendored;
    impl jsonschema::Retrieve for Vendored {
        fn retrieve(&self, uri: &jsonschema::Uri<String>) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
            let text = match uri.as_str() {
                "http://cyclonedx.org/schema/spdx.SNAPSHOT.schema.json" => {
                    include_str!("../../data/schemas/cyclonedx-1.6/spdx.SNAPSHOT.schema.json")
                }
                "http://cyclonedx.org/schema/jsf-0.82.SNAPSHOT.schema.json" => {
                    include_str!("../../data/schemas/cyclonedx-1.6/jsf-0.82.SNAPSHOT.schema.json")
                }
                other => return Err(format!("not vendored: {other}").into()),
            };
            Ok(serde_json::from_str(text)?)
        }
    }
    let schema: Value =
        serde_json::from_str(include_str!("../../data/schemas/cyclonedx-1.6/bom-1.6.SNAPSHOT.schema.json")).unwrap();
    jsonschema::options().with_draft(jsonschema::Draft::Draft7).with_retriever(Vendored).build(&schema).unwrap()
}

fn schema_errors(validator: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    validator.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

#[test]
fn the_fleet_bom_validates_and_ties_server_to_model_to_host() {
    let store = fleet();
    let doc: Value = serde_json::from_str(&export(&store, &request(Format::Cyclonedx), 1)).unwrap();
    let errors = schema_errors(&cyclonedx_validator(), &doc);
    assert!(errors.is_empty(), "{errors:#?}");

    let components = doc["components"].as_array().unwrap();
    let of_type = |t: &str| components.iter().filter(|c| c["type"] == t).collect::<Vec<_>>();
    assert_eq!(of_type("device").len(), 2);
    assert_eq!(of_type("library").len(), 1, "torch in two venvs is one framework");
    let models = of_type("machine-learning-model");
    assert_eq!(models.len(), 2, "the same GGUF on two hosts is one model");
    let llama = models.iter().find(|m| m["bom-ref"] == format!("model:{GGUF}")).unwrap();
    assert_eq!(llama["purl"], "pkg:huggingface/TheBloke/Llama-2-7B-GGUF@b4e04e128f421c93a5f1e34ac4d7ca9b0af47b80");
    assert_eq!(llama["hashes"], json!([{"alg": "SHA-256", "content": GGUF}]));
    assert_eq!(llama["modelCard"]["modelParameters"]["architectureFamily"], "llama");
    assert_eq!(llama["licenses"], json!([{"license": {"name": "llama2"}}]));
    let card = llama["modelCard"]["properties"].to_string();
    assert!(card.contains("Q4_K_M") && card.contains("6738415616") && card.contains("4096"), "{card}");
    let pickle = models.iter().find(|m| m["bom-ref"] == format!("model:{PICKLE}")).unwrap();
    let props = pickle["properties"].to_string();
    assert!(props.contains("\"aiscout:safety:verdict\",\"value\":\"dangerous\""), "{props}");
    assert!(props.contains("unsafe-model-serialization"), "the finding is a property: {props}");
    let torch = of_type("library")[0];
    assert_eq!(torch["purl"], "pkg:pypi/torch@2.3.0");

    let services = doc["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    let ollama = services.iter().find(|s| s["name"] == "ollama").unwrap();
    assert_eq!(ollama["endpoints"], json!(["tcp://0.0.0.0:11434"]));
    assert_eq!((&ollama["authenticated"], &ollama["x-trust-boundary"]), (&json!(false), &json!(true)));
    let llama_cpp = services.iter().find(|s| s["name"] == "llama.cpp-server").unwrap();
    assert_eq!((&llama_cpp["authenticated"], &llama_cpp["x-trust-boundary"]), (&json!(true), &json!(false)));
    let deps = doc["dependencies"].as_array().unwrap();
    let depends = |r: &Value| deps.iter().find(|d| d["ref"] == *r).map(|d| d["dependsOn"].clone());
    assert_eq!(depends(&ollama["bom-ref"]), Some(json!(["host:agent-a", format!("model:{GGUF}")])));
    assert_eq!(depends(&llama_cpp["bom-ref"]), Some(json!(["host:agent-b", format!("model:{GGUF}")])), "by sha-256");
    let depends = |r: &str| deps.iter().find(|d| d["ref"] == r).map(|d| d["dependsOn"].clone());
    assert_eq!(depends(&format!("model:{GGUF}")), Some(json!(["host:agent-a", "host:agent-b"])));
    // Every reference names something in the BOM.
    let refs: BTreeSet<&str> = components.iter().chain(services).filter_map(|c| c["bom-ref"].as_str()).collect();
    for d in deps {
        assert!(refs.contains(d["ref"].as_str().unwrap()));
        for r in d["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(r.as_str().unwrap()), "{r} is not in the bom");
        }
    }
}

#[test]
fn a_per_host_bom_holds_only_that_host() {
    let store = fleet();
    let doc: Value = serde_json::from_str(&export(
        &store,
        &ExportRequest { agent_id: Some("agent-b".into()), ..request(Format::Cyclonedx) },
        1,
    ))
    .unwrap();
    assert!(schema_errors(&cyclonedx_validator(), &doc).is_empty());
    let refs: Vec<&str> = doc["components"].as_array().unwrap().iter().filter_map(|c| c["bom-ref"].as_str()).collect();
    assert_eq!(refs.len(), 3, "{refs:?}");
    assert!(refs.contains(&"host:agent-b") && refs.contains(&format!("model:{GGUF}").as_str()));
    assert_eq!(doc["services"].as_array().map(Vec::len), Some(1), "host-b's own server only");
    let mut out = Vec::new();
    let unknown = ExportRequest { agent_id: Some("nobody".into()), ..request(Format::Cyclonedx) };
    assert!(matches!(run(&store, &unknown, &context(1), &mut out), Err(ExportError::UnknownHost(_))));
}

#[test]
fn the_validator_can_fail() {
    let mut doc: Value = serde_json::from_str(&export(&fleet(), &request(Format::Cyclonedx), 1)).unwrap();
    doc["components"][0]["type"] = json!("spaceship");
    assert!(!schema_errors(&cyclonedx_validator(), &doc).is_empty());
}

#[test]
fn the_same_inventory_gives_the_same_bytes_but_for_the_timestamp_and_serial() {
    let store = fleet();
    for format in [Format::Csv, Format::Jsonl, Format::Cyclonedx, Format::Spdx] {
        for rows in [Rows::Assets, Rows::Sightings] {
            let r = ExportRequest { rows, ..request(format) };
            let (one, two) = (export(&store, &r, 1), export(&store, &r, 2));
            let strip = |text: &str, random: u8| {
                let uuid = aiscout_proto::bom::uuid_v4([random; 16]);
                text.replace(&uuid, "SERIAL").replace(&crate::rfc3339_seconds(NOW + i64::from(random)), "TIME")
            };
            assert_eq!(strip(&one, 1), strip(&two, 2), "{format:?} {rows:?}");
            if matches!(format, Format::Cyclonedx | Format::Spdx) {
                assert_ne!(one, two, "{format:?}: a new serial each time");
            }
        }
    }
}

#[test]
fn csv_rows_are_spreadsheet_safe_and_jsonl_keeps_the_value() {
    let store = fleet();
    let csv_text = export(&store, &request(Format::Csv), 1);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), table::ASSET_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 5, "2 models, 1 framework, 2 runtimes");
    let name = |row: &csv::StringRecord| row.get(2).unwrap().to_owned();
    let evil = rows.iter().find(|r| r.get(0) == Some(&format!("model:{PICKLE}"))).unwrap();
    assert_eq!(name(evil), "'=HYPERLINK(\"http://evil\",\"click\")");
    assert!(evil.get(18).unwrap().contains("unsafe-model-serialization:"));
    let llama = rows.iter().find(|r| r.get(0) == Some(&format!("model:{GGUF}"))).unwrap();
    assert_eq!(llama.get(9), Some("2"), "live_hosts");
    assert_eq!(llama.get(19), Some("host-a host-b"));

    let jsonl = export(&store, &request(Format::Jsonl), 1);
    let lines: Vec<Value> = jsonl.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 5);
    assert!(lines.iter().any(|l| l["name"] == "=HYPERLINK(\"http://evil\",\"click\")"));
    assert!(lines.iter().all(|l| l.as_object().unwrap().len() == table::ASSET_COLUMNS.len()));

    let sightings = export(&store, &ExportRequest { rows: Rows::Sightings, ..request(Format::Csv) }, 1);
    let mut reader = csv::Reader::from_reader(sightings.as_bytes());
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), table::SIGHTING_COLUMNS);
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 7, "4 sightings on host-a, 3 on host-b");
    let server = rows.iter().find(|r| r.get(5) == Some("ollama")).unwrap();
    assert_eq!(server.get(13), Some("0.0.0.0:11434/all_interfaces"));
}

#[test]
fn spdx_names_models_frameworks_hosts_and_what_each_host_contains() {
    let store = fleet();
    let doc: Value = serde_json::from_str(&export(&store, &request(Format::Spdx), 1)).unwrap();
    let graph = doc["@graph"].as_array().unwrap();
    let of_type = |t: &str| graph.iter().filter(|e| e["type"] == t).collect::<Vec<_>>();
    assert_eq!(of_type("ai_AIPackage").len(), 2);
    let llama = of_type("ai_AIPackage").into_iter().find(|m| m["name"] == "Llama 2 7B").unwrap();
    assert_eq!(llama["verifiedUsing"][0]["hashValue"], GGUF);
    assert_eq!(llama["ai_typeOfModel"], json!(["llama"]));
    let packages = of_type("software_Package");
    assert_eq!(packages.iter().filter(|p| p["software_primaryPurpose"] == "device").count(), 2);
    assert_eq!(packages.iter().filter(|p| p["software_primaryPurpose"] == "library").count(), 1);
    let contains: Vec<_> =
        of_type("Relationship").into_iter().filter(|r| r["relationshipType"] == "contains").collect();
    assert_eq!(contains.len(), 2);
    let ids: BTreeSet<&str> = graph.iter().filter_map(|e| e["spdxId"].as_str()).collect();
    for r in of_type("Relationship") {
        assert!(ids.contains(r["from"].as_str().unwrap()));
        for to in r["to"].as_array().unwrap() {
            assert!(ids.contains(to.as_str().unwrap()), "{to}");
        }
    }
    assert_eq!(graph[0]["created"], crate::rfc3339_seconds(NOW + 1));
}

#[test]
fn chunked_sightings_come_once_each_in_order() {
    let store = store();
    store.upsert_agent(&registration("h", "h", "fp", 0)).unwrap();
    let upserts = (0..2500)
        .map(|i| {
            let sha = format!("{:064x}", i % 700);
            upsert(
                AssetKind::Model,
                &format!("/m/{i}"),
                json!({"path": format!("/m/{i}"), "sha256": sha, "format": "gguf"}),
            )
        })
        .collect();
    store.apply_batch("h", &delta(1, 10, upserts)).unwrap();
    let mut seen = Vec::new();
    for_each_sighting(&store, &request(Format::Csv), None, |s| {
        seen.push(s.key.clone());
        Ok(())
    })
    .unwrap();
    assert_eq!(seen.len(), 2500);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "strictly increasing: no repeat, no reorder");
}

/// Every `dependsOn` of a BOM names a component or service of it.
fn assert_refs_resolve(doc: &Value) {
    let components = doc["components"].as_array().cloned().unwrap_or_default();
    let services = doc["services"].as_array().cloned().unwrap_or_default();
    let refs: BTreeSet<String> =
        components.iter().chain(&services).filter_map(|c| c["bom-ref"].as_str().map(str::to_owned)).collect();
    for d in doc["dependencies"].as_array().cloned().unwrap_or_default() {
        assert!(refs.contains(d["ref"].as_str().unwrap()), "{d}");
        for r in d["dependsOn"].as_array().unwrap() {
            assert!(refs.contains(r.as_str().unwrap()), "{r} is not in the bom");
        }
    }
}

#[test]
fn history_of_one_host_names_only_what_the_document_holds() {
    let store = fleet();
    let mut gone = delta(2, NOW - 100, Vec::new());
    gone.removals = vec![IngestRemoval { kind: AssetKind::Model, local_key: "/data/llama.gguf".into() }];
    store.apply_batch("agent-b", &gone).unwrap();
    for include_removed in [false, true] {
        let r = ExportRequest { agent_id: Some("agent-b".into()), include_removed, ..request(Format::Cyclonedx) };
        let doc: Value = serde_json::from_str(&export(&store, &r, 1)).unwrap();
        assert!(schema_errors(&cyclonedx_validator(), &doc).is_empty());
        assert_refs_resolve(&doc);
        let has_llama = doc["components"].as_array().unwrap().iter().any(|c| c["bom-ref"] == format!("model:{GGUF}"));
        assert_eq!(has_llama, include_removed, "the removed model only in the history export");
        let r = ExportRequest { format: Format::Spdx, ..r };
        let spdx: Value = serde_json::from_str(&export(&store, &r, 1)).unwrap();
        let graph = spdx["@graph"].as_array().unwrap();
        let ids: BTreeSet<&str> = graph.iter().filter_map(|e| e["spdxId"].as_str()).collect();
        for rel in graph.iter().filter(|e| e["type"] == "Relationship") {
            for to in rel["to"].as_array().unwrap() {
                assert!(ids.contains(to.as_str().unwrap()), "{to}");
            }
        }
    }
}

#[test]
fn only_known_licence_ids_become_spdx_expressions() {
    assert_eq!(spdx::licence_expression("apache-2.0").as_deref(), Some("Apache-2.0"));
    assert_eq!(spdx::licence_expression("LicenseRef-llama2").as_deref(), Some("LicenseRef-llama2"));
    for free in ["llama2", "MIT License", "other", "LicenseRef-", "LicenseRef-a b"] {
        assert_eq!(spdx::licence_expression(free), None, "{free}");
    }
}

#[test]
fn a_tree_digest_is_never_called_a_file_checksum() {
    let group = json!({"path": "/m/model-00001-of-00002.safetensors", "group": {"id": GGUF, "root": "/m/index.json"}});
    let c = aiscout_proto::bom::model_component("model:x", GGUF, &group, Vec::new());
    assert!(c.get("hashes").is_none());
    assert!(!c["purl"].as_str().unwrap().contains("checksum"), "{}", c["purl"]);
}
