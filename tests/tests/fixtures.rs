//! A scan of the committed fixtures finds every model with the right format, digest, metadata,
//! source and group, and nothing else; hazards are errors, decoys are silent.

use std::collections::BTreeMap;
use std::path::Path;

use aiscout_e2e::{fixtures_dir, run_scan_json};
use serde_json::Value;

fn rel(path: &str, root: &Path) -> String {
    path.strip_prefix(&format!("{}/", root.display())).unwrap_or(path).to_string()
}

/// Scans the discovery fixtures (the safety corpus under `safety/` has its own answer key).
fn scan_fixtures() -> (Value, std::path::PathBuf) {
    let root = std::fs::canonicalize(fixtures_dir()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let safety = format!("{}/safety", root.display());
    (run_scan_json(&[&root], state.path(), &["--exclude", &safety]), root)
}

fn expected() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures_dir().join("expected.json")).unwrap()).unwrap()
}

#[test]
fn every_model_found_with_format_digest_and_metadata() {
    let (doc, root) = scan_fixtures();
    let exp = expected();
    let found: BTreeMap<String, &Value> =
        doc["models"].as_array().unwrap().iter().map(|m| (rel(m["path"].as_str().unwrap(), &root), m)).collect();
    let mut wanted = Vec::new();
    for e in exp["models"].as_array().unwrap() {
        let path = e["path"].as_str().unwrap();
        wanted.push(path.to_string());
        let m = found
            .get(path)
            .unwrap_or_else(|| panic!("model {path} not found; found: {:?}", found.keys().collect::<Vec<_>>()));
        assert_eq!(m["format"], e["format"], "format of {path}");
        assert_eq!(m["sha256"], e["sha256"], "sha256 of {path}");
        assert_eq!(m["size"], e["size"], "size of {path}");
        for (k, v) in e["metadata"].as_object().unwrap() {
            assert_eq!(&m["metadata"][k], v, "metadata.{k} of {path}: {}", m["metadata"]);
        }
        match e["source"].as_object() {
            Some(src) => {
                for (k, v) in src {
                    assert_eq!(&m["source"][k], v, "source.{k} of {path}");
                }
            }
            None => assert!(m["source"].is_null(), "{path} has an unexpected source {}", m["source"]),
        }
        match e["group"].as_object() {
            Some(g) => {
                assert_eq!(m["group"]["kind"], g["kind"], "group kind of {path}");
                assert_eq!(
                    rel(m["group"]["root"].as_str().unwrap(), &root),
                    g["root"].as_str().unwrap(),
                    "group root of {path}"
                );
                let mut members: Vec<String> =
                    m["group"]["members"].as_array().unwrap().iter().map(|p| rel(p.as_str().unwrap(), &root)).collect();
                let mut want: Vec<String> =
                    g["members"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
                members.sort();
                want.sort();
                if g["kind"] == "directory" {
                    // A directory group lists every file of the directory model.
                    assert!(
                        want.iter().all(|w| members.contains(w)),
                        "group members of {path}: {members:?} lack some of {want:?}"
                    );
                } else {
                    assert_eq!(members, want, "group members of {path}");
                }
                assert_eq!(m["group"]["id"].as_str().unwrap().len(), 64);
            }
            None => assert!(m["group"].is_null(), "{path} has an unexpected group {}", m["group"]),
        }
        assert_eq!(m["safety"]["verdict"], "safe", "safety of {path}: {}", m["safety"]);
    }
    for d in exp["directory_models"].as_array().unwrap() {
        let path = d["path"].as_str().unwrap();
        wanted.push(path.to_string());
        let m = found.get(path).unwrap_or_else(|| panic!("directory model {path} not found"));
        assert_eq!(m["format"], d["format"], "format of {path}");
        assert_eq!(m["digest_source"], "tree");
        assert_eq!(m["group"]["kind"], "directory");
    }
    let extra: Vec<&String> = found.keys().filter(|k| !wanted.contains(k)).collect();
    assert!(extra.is_empty(), "reported as models but not expected: {extra:?}");
    assert_eq!(doc["stats"]["models"].as_u64().unwrap() as usize, wanted.len());
}

#[test]
fn hazards_are_errors_and_decoys_are_silent() {
    let (doc, root) = scan_fixtures();
    let exp = expected();
    let errors: Vec<String> =
        doc["errors"].as_array().unwrap().iter().map(|e| rel(e["path"].as_str().unwrap(), &root)).collect();
    for h in exp["hazards"].as_array().unwrap() {
        assert!(errors.contains(&h.as_str().unwrap().to_string()), "hazard {h} not reported as an error: {errors:?}");
    }
    let models: Vec<String> =
        doc["models"].as_array().unwrap().iter().map(|m| rel(m["path"].as_str().unwrap(), &root)).collect();
    for d in exp["decoys"].as_array().unwrap() {
        let d = d.as_str().unwrap().to_string();
        assert!(!models.contains(&d), "decoy {d} reported as a model");
        assert!(!errors.contains(&d), "decoy {d} reported as an error");
    }
    assert_eq!(errors.len(), exp["hazards"].as_array().unwrap().len(), "unexpected errors: {errors:?}");
    assert_eq!(doc["stats"]["errors"].as_u64().unwrap() as usize, errors.len());
}

#[test]
fn document_has_the_public_shape() {
    let (doc, _) = scan_fixtures();
    for key in ["hostname", "os", "kernel", "arch", "agent_version", "scanned_at"] {
        assert!(doc["host"][key].is_string(), "host.{key}");
    }
    for key in ["files_seen", "models", "bytes_hashed", "hash_cache_hits", "duration_ms", "errors"] {
        assert!(doc["stats"][key].is_u64(), "stats.{key}");
    }
    let m = &doc["models"][0];
    for key in ["path", "format", "size", "sha256", "metadata", "source", "group", "safety"] {
        assert!(m.get(key).is_some(), "model.{key}");
    }
}

#[test]
fn content_addressed_blobs_take_their_digest_from_the_name() {
    let (doc, root) = scan_fixtures();
    let models = doc["models"].as_array().unwrap();
    let blob = |prefix: &str| {
        models.iter().filter(|m| rel(m["path"].as_str().unwrap(), &root).starts_with(prefix)).collect::<Vec<_>>()
    };
    let hf = blob("home/.cache/huggingface/hub/models--acme--tiny-bert/blobs/");
    assert_eq!(hf.len(), 1);
    assert_eq!(hf[0]["digest_source"], "name");
    let ollama = blob("home/.ollama/models/blobs/");
    assert_eq!(ollama.len(), 1);
    assert_eq!(ollama[0]["digest_source"], "name");
    // tiny-bert, the two tiny-sharded shards, the Ollama model layer.
    assert_eq!(doc["stats"]["digests_from_name"].as_u64().unwrap(), 4);
}

#[test]
fn ollama_blob_whose_size_disagrees_with_its_manifest_is_hashed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("models");
    aiscout_e2e::copy_tree(&fixtures_dir().join("home/.ollama/models"), &store);
    let manifest = store.join("manifests/registry.ollama.ai/library/tinyllama/latest");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    for layer in m["layers"].as_array_mut().unwrap() {
        if layer["mediaType"] == "application/vnd.ollama.image.model" {
            layer["size"] = Value::from(layer["size"].as_u64().unwrap() + 1);
        }
    }
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let state = tempfile::tempdir().unwrap();
    let doc = run_scan_json(&[&store], state.path(), &[]);
    let model = &doc["models"][0];
    assert_eq!(model["digest_source"], "hashed");
    assert_eq!(model["source"]["name"], "tinyllama:latest");
    // The name still matches the content here; hashing confirmed it rather than trusting it.
    let name = model["path"].as_str().unwrap().rsplit("sha256-").next().unwrap().to_string();
    assert_eq!(model["sha256"].as_str().unwrap(), name);
}
