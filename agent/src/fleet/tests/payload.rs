//! Unit tests of [`super`] (the payload): one asset per entry, documented local keys, host facts.

use std::collections::HashSet;

use super::*;
use crate::fleet::test_support::*;

fn keys(assets: &[v1::Asset], kind: AssetKind) -> Vec<String> {
    assets.iter().filter(|a| a.kind() == kind).map(|a| a.local_key.clone()).collect()
}

#[test]
fn fixture_models_become_one_asset_each_with_the_document_json() {
    let report = scan_models(&fixtures(), None);
    assert!(report.models.len() >= 20, "fixtures give {} models", report.models.len());
    let assets = assets(&report);
    assert_eq!(assets.len(), report.models.len());
    let document = serde_json::to_value(&report).unwrap();
    let models = document["models"].as_array().unwrap();
    for ((asset, model), json) in assets.iter().zip(&report.models).zip(models) {
        assert_eq!(asset.kind(), AssetKind::Model);
        assert_eq!(asset.local_key, model.path);
        let parsed: serde_json::Value = serde_json::from_str(&asset.json).unwrap();
        assert_eq!(&parsed, json, "{}", model.path);
    }
    // Grouped fixtures (sharded safetensors, split gguf) use the group id.
    assert!(report.models.iter().any(|m| m.group.is_some()));
}

#[test]
fn local_keys_are_unique_and_stable_across_scans() {
    let first = assets(&scan_models(&fixtures(), None));
    let second = assets(&scan_models(&fixtures(), None));
    let k1 = keys(&first, AssetKind::Model);
    let unique: HashSet<&String> = k1.iter().collect();
    assert_eq!(unique.len(), k1.len(), "duplicate model keys: {k1:?}");
    assert_eq!(k1, keys(&second, AssetKind::Model));
}

#[test]
fn inventory_entries_get_the_documented_keys() {
    let assets = assets(&inventory_report());
    let got: Vec<(AssetKind, &str)> = assets.iter().map(|a| (a.kind(), a.local_key.as_str())).collect();
    assert_eq!(
        got,
        vec![
            (AssetKind::Framework, "pypi:torch@/opt/venv"),
            (AssetKind::Framework, "native:ollama@/usr/bin#/usr/bin/ollama"),
            (AssetKind::Runtime, "4242:2025-01-02T03:04:42Z"),
            (AssetKind::Runtime, "77:2025-01-02T03:04:17Z"),
            (AssetKind::Tooling, "/home/a/.env#api_key#OPENAI_API_KEY#"),
            (AssetKind::Tooling, "/proc/99/environ#api_key#OPENAI_API_KEY#99"),
            (AssetKind::Tooling, "/home/a/.cursor/mcp.json#mcp_config#cursor#"),
        ]
    );
    // Tooling JSON keeps the flattened document shape.
    let tooling: serde_json::Value = serde_json::from_str(&assets[4].json).unwrap();
    assert_eq!(tooling["kind"], "api_key");
    assert_eq!(tooling["variable"], "OPENAI_API_KEY");
    assert_eq!(tooling["path"], "/home/a/.env");
}

#[test]
fn colliding_keys_are_made_unique_in_document_order() {
    let mut report = ScanReport::new(host());
    report.frameworks = Some(vec![
        framework(Ecosystem::Pypi, "torch", Some("2.4.0"), "/opt/venv"),
        framework(Ecosystem::Pypi, "torch", Some("2.5.1"), "/opt/venv"),
        framework(Ecosystem::Pypi, "torch", Some("2.6.0"), "/opt/venv"),
        // A real key that looks like a suffixed one is left alone and skipped over.
        framework(Ecosystem::Pypi, "torch", Some("1.0"), "/opt/venv#2"),
    ]);
    let assets = assets(&report);
    assert_eq!(
        keys(&assets, AssetKind::Framework),
        vec!["pypi:torch@/opt/venv", "pypi:torch@/opt/venv#3", "pypi:torch@/opt/venv#4", "pypi:torch@/opt/venv#2"]
    );
}

#[test]
fn sections_not_collected_give_no_assets() {
    let mut report = inventory_report();
    report.frameworks = None;
    report.tooling = None;
    let assets = assets(&report);
    assert_eq!(assets.len(), 2);
    assert!(assets.iter().all(|a| a.kind() == AssetKind::Runtime));
}

#[test]
fn host_facts_hold_the_host_fields_and_the_non_asset_sections() {
    let report = inventory_report();
    let identity = v1::HostIdentity { hostname: "h1".into(), machine_fingerprint: "fp".into(), ..Default::default() };
    let facts = host_facts(&report, identity.clone());
    assert_eq!(facts.identity, Some(identity));
    let json: serde_json::Value = serde_json::from_str(&facts.json).unwrap();
    assert_eq!(json["hostname"], "h1");
    assert_eq!(json["os"], "Debian GNU/Linux 12");
    assert_eq!(json["environments"], serde_json::json!([]));
    assert_eq!(json["restricted_processes"], serde_json::json!([]));
    assert!(json["stats"].is_object());
    // Not collected: absent. Assets: never in the facts.
    for absent in ["gpus", "gpu_drivers", "models", "frameworks", "runtimes", "tooling", "host", "errors"] {
        assert!(json.get(absent).is_none(), "{absent} in host facts");
    }
}
