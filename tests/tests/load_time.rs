//! Load-time code that is not a pickle (issue 12 §2): Jinja2 chat templates in GGUF files
//! (CVE-2024-34359) and Keras configs naming callables outside Keras (CVE-2025-1550), each
//! hostile fixture beside its benign twin, through `check --json` and `scan --json`.

use std::path::PathBuf;
use std::process::Command;

use aiscout_e2e::{agent_bin, fixtures_dir};
use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    fixtures_dir().join("safety").join(rel)
}

/// `check --json` on one file: (exit status, its `files[0]` entry).
fn check(rel: &str) -> (Option<i32>, Value) {
    let out = Command::new(agent_bin()).arg("check").arg("--json").arg(fixture(rel)).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check output is not json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(doc["errors"].as_array().unwrap().is_empty(), "{rel}: {}", doc["errors"]);
    (out.status.code(), doc["files"][0].clone())
}

/// The finding of `kind` at `location`, or a panic showing all findings.
fn finding<'a>(file: &'a Value, kind: &str, location: &str) -> &'a Value {
    file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == kind && f["location"] == location)
        .unwrap_or_else(|| panic!("no {kind} at {location}: {:#}", file["findings"]))
}

#[test]
fn hostile_chat_templates_are_dangerous_and_their_twins_safe() {
    let (code, f) = check("hostile/chat_template_ssti.gguf");
    assert_eq!(code, Some(1));
    assert_eq!(f["verdict"], "dangerous", "{f:#}");
    let hit = finding(&f, "template_injection", "tokenizer.chat_template");
    assert_eq!(hit["atlas"], "AML.T0011.000");
    assert_eq!(hit["owasp"], "LLM03:2025");
    let subjects = f["findings"].to_string();
    assert!(subjects.contains("().__class__"), "{subjects}");
    assert!(subjects.contains(".popen"), "{subjects}");

    let (code, f) = check("hostile/chat_template_named_ssti.gguf");
    assert_eq!(code, Some(1));
    assert_eq!(f["verdict"], "dangerous", "{f:#}");
    let hit = finding(&f, "template_injection", "tokenizer.chat_template.tool_use");
    assert!(hit["subject"].as_str().unwrap().starts_with("cycler.__init__"), "{hit}");
    // The default template of that file is plain ChatML: nothing is located there.
    assert!(f["findings"].as_array().unwrap().iter().all(|f| f["location"] != "tokenizer.chat_template"), "{f:#}");

    for twin in ["benign/chat_template_chatml.gguf", "benign/chat_template_llama3.gguf"] {
        let (code, f) = check(twin);
        assert_eq!((code, &f["verdict"]), (Some(0), &Value::from("safe")), "{twin}: {f:#}");
    }
}

#[test]
fn scan_reports_the_chat_template_digests() {
    let state = tempfile::tempdir().unwrap();
    let path = fixture("benign/chat_template_chatml.gguf");
    let doc = aiscout_e2e::run_scan_json(&[&path], state.path(), &[]);
    let model = &doc["models"][0];
    assert_eq!(model["safety"]["verdict"], "safe", "{model:#}");
    let extra = &model["metadata"]["extra"];
    let digest = extra["chat_template_sha256"].as_str().unwrap_or_else(|| panic!("no digest: {model:#}"));
    assert_eq!(digest.len(), 64);
    let named = extra["chat_template_sha256_named"]["tool_use"].as_str().unwrap();
    assert_eq!(named.len(), 64);
    assert_ne!(digest, named);

    // The hostile file with the same default template reports the same default digest.
    let hostile = fixture("hostile/chat_template_named_ssti.gguf");
    let doc = aiscout_e2e::run_scan_json(&[&hostile], state.path(), &[]);
    let model = &doc["models"][0];
    assert_eq!(model["metadata"]["extra"]["chat_template_sha256"], digest);
    assert_ne!(model["metadata"]["extra"]["chat_template_sha256_named"]["tool_use"], named);
    assert_eq!(model["safety"]["verdict"], "dangerous");

    // A GGUF without a template has no digest.
    let doc = aiscout_e2e::run_scan_json(&[&fixture("benign/tiny.gguf")], state.path(), &[]);
    assert!(doc["models"][0]["metadata"]["extra"].get("chat_template_sha256").is_none(), "{doc:#}");
}

#[test]
fn keras_configs_naming_system_callables_are_dangerous_and_their_twins_safe() {
    for (rel, callable, location) in [
        ("hostile/keras_config_os_system.keras", "os.system", "config.json"),
        ("hostile/keras_config_posix_system.h5", "posix.system", "model_config"),
    ] {
        let (code, f) = check(rel);
        assert_eq!(code, Some(1), "{rel}");
        assert_eq!(f["verdict"], "dangerous", "{rel}: {f:#}");
        let hit = finding(&f, "dangerous_import", location);
        assert_eq!(hit["subject"], callable, "{rel}: {hit}");
        assert!(f["imports"].as_array().unwrap().iter().any(|i| i == callable), "{rel}: {f:#}");
    }
    for twin in ["benign/keras_config_keras_fn.keras", "benign/keras_config_keras_fn.h5"] {
        let (code, f) = check(twin);
        assert_eq!((code, &f["verdict"]), (Some(0), &Value::from("safe")), "{twin}: {f:#}");
    }
}
