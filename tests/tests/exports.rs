//! Exports of a real fleet, checked by the formats' own reference libraries: two real agents
//! scan the fixture home (Hugging Face, Ollama and LM Studio caches, sharded models), the model
//! fixtures, a real venv and a hostile pickle whose name is a spreadsheet formula that a process
//! keeps open while listening on 0.0.0.0. The collector exports CSV, JSON lines, CycloneDX and
//! SPDX from the command line and over HTTP; `scripts/check-exports.py` runs CycloneDX's
//! `JsonStrictValidator(V1_6)` and SPDX's `v3_0_1` model on them, and the agent's own BOM of the
//! same host must pass the same validator and name the models alike.

use std::path::{Path, PathBuf};
use std::process::Command;

use aiscout_e2e::fleet::{assert_ok, run_once, AgentOptions, Collector};
use aiscout_e2e::{agent_bin, findings_venv, fixtures_dir, serve_holding_open, workspace_root};
use serde_json::Value;

/// The Python of `var/exports-venv` (scripts/exports-venv.sh).
fn validators() -> PathBuf {
    let out = Command::new(workspace_root().join("scripts/exports-venv.sh")).output().unwrap();
    assert!(out.status.success(), "exports-venv.sh: {}", String::from_utf8_lossy(&out.stderr));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// Runs `scripts/check-exports.py FORMAT FILES`: its report, and whether every file passed.
fn reference_check(format: &str, files: &[&Path]) -> (bool, String) {
    let out = Command::new(validators())
        .arg(workspace_root().join("scripts/check-exports.py"))
        .arg(format)
        .args(files)
        .output()
        .unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), report)
}

/// `GET path` with `token`: status, content type and body.
fn get(c: &Collector, path: &str, token: &str) -> (u16, String, String) {
    let url = format!("http://127.0.0.1:{}{path}", c.api_port);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut resp = agent.get(&url).header("Authorization", &format!("Bearer {token}")).call().unwrap();
    let status = resp.status().as_u16();
    let kind = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    (status, kind, resp.body_mut().read_to_string().unwrap())
}

/// `text` with the serial number and timestamps of a BOM replaced, for comparing two exports.
fn without_serial_and_time(text: &str) -> String {
    let doc: Value = serde_json::from_str(text).unwrap();
    let mut out = text.to_owned();
    for pointer in ["/serialNumber", "/metadata/timestamp", "/@graph/0/created", "/@graph/3/spdxId"] {
        if let Some(v) = doc.pointer(pointer).and_then(Value::as_str) {
            out = out.replace(v, "X");
        }
    }
    out
}

#[test]
fn a_fleet_exports_in_every_format_and_the_reference_validators_accept_it() {
    let c = Collector::start();
    let root = tempfile::tempdir().unwrap();
    let hostile = root.path().join("=HYPERLINK(\"http:evil\")&CMD.pkl");
    // A hostile pickle no other end-to-end test holds open: every agent sees every process of
    // the machine, so a file shared with a concurrent test would join that test's findings.
    std::fs::copy(fixtures_dir().join("safety/hostile/functools_partial_os_system.pkl"), &hostile).unwrap();
    let (_server, port) = serve_holding_open(&hostile);
    let venv = findings_venv();
    let (home, models) = (fixtures_dir().join("home"), fixtures_dir().join("models"));
    let options =
        AgentOptions { sections: vec!["models", "frameworks", "runtimes", "tooling"], ..AgentOptions::default() };
    let token = c.token_file("token", &["--uses", "2"]);
    let gpu = c.agent_with("gpu", &[root.path(), home.as_path(), venv.as_path()], &token, &options);
    assert_ok(&run_once(&gpu));
    let laptop = c.agent_with("laptop", &[models.as_path(), home.as_path()], &token, &AgentOptions::default());
    assert_ok(&run_once(&laptop));
    let gpu_id = std::fs::read_to_string(c.state_dir("gpu").join("tls/agent.id")).unwrap().trim().to_string();
    c.command(&["findings", "evaluate"]);

    // The command line: every format, to files.
    let out = tempfile::tempdir().unwrap();
    let export = |name: &str, args: &[&str]| {
        let path = out.path().join(name);
        let mut all = vec!["export"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--out", path.to_str().unwrap()]);
        c.command(&all);
        assert!(!out.path().join(format!("{name}.partial")).exists());
        path
    };
    let fleet_bom = export("fleet.cdx.json", &["--format", "cyclonedx"]);
    let gpu_bom = export("gpu.cdx.json", &["--format", "cyclonedx", "--host", &gpu_id]);
    let spdx = export("fleet.spdx.jsonld", &["--format", "spdx"]);
    let gpu_spdx = export("gpu.spdx.jsonld", &["--format", "spdx", "--host", &gpu_id]);
    let csv = export("assets.csv", &["--format", "csv"]);
    let sightings = export("sightings.jsonl", &["--format", "jsonl", "--rows", "sightings"]);

    // This host's BOM from the agent alone, of the same roots.
    let agent_bom = out.path().join("agent.cdx.json");
    let scanned = Command::new(agent_bin())
        .args(["scan", "--format", "cyclonedx", "--no-cache"])
        .arg(root.path())
        .arg(&home)
        .arg(&venv)
        .output()
        .unwrap();
    assert!(scanned.status.success(), "{}", String::from_utf8_lossy(&scanned.stderr));
    std::fs::write(&agent_bom, &scanned.stdout).unwrap();

    let (ok, report) = reference_check("cyclonedx", &[&fleet_bom, &gpu_bom, &agent_bom]);
    assert!(ok, "{report}");
    let (ok, report) = reference_check("spdx", &[&spdx, &gpu_spdx]);
    assert!(ok, "{report}");

    // What the fleet BOM says: the served hostile pickle, its server, the chain to the host.
    let bom: Value = serde_json::from_str(&std::fs::read_to_string(&fleet_bom).unwrap()).unwrap();
    let components = bom["components"].as_array().unwrap();
    let count = |t: &str| components.iter().filter(|x| x["type"] == t).count();
    assert_eq!(count("device"), 2);
    assert!(count("machine-learning-model") >= 20, "{}", count("machine-learning-model"));
    assert!(count("library") >= 1, "keras from the venv");
    let pickle = components
        .iter()
        .find(|x| x["name"].as_str().is_some_and(|n| n.starts_with("=HYPERLINK")))
        .expect("the hostile pickle is a component");
    assert!(pickle["properties"].to_string().contains("\"dangerous\""));
    let hf = components.iter().filter(|x| x["purl"].as_str().is_some_and(|p| p.starts_with("pkg:huggingface/acme/")));
    assert!(hf.count() >= 1, "Hugging Face models carry their purl");
    let keras = components.iter().find(|x| x["name"] == "keras").unwrap();
    assert_eq!(keras["purl"], "pkg:pypi/keras@3.8.0");
    let service = bom["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["endpoints"].to_string().contains(&format!(":{port}")))
        .expect("the listening process is a service");
    assert_eq!(service["x-trust-boundary"], true);
    let deps = bom["dependencies"].as_array().unwrap();
    let of = |r: &Value| deps.iter().find(|d| d["ref"] == *r).map(|d| d["dependsOn"].clone()).unwrap();
    let server_deps = of(&service["bom-ref"]);
    assert!(server_deps.to_string().contains(&format!("host:{gpu_id}")));
    assert!(server_deps.to_string().contains(pickle["bom-ref"].as_str().unwrap()), "server → model: {server_deps}");
    assert_eq!(of(&pickle["bom-ref"]), serde_json::json!([format!("host:{gpu_id}")]), "model → host");

    // The agent's BOM names the same models alike.
    let mine: Value = serde_json::from_slice(&scanned.stdout).unwrap();
    let refs = |doc: &Value, t: &str| -> std::collections::BTreeSet<String> {
        doc["components"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["type"] == t)
            .filter_map(|x| x["bom-ref"].as_str().map(str::to_owned))
            .collect()
    };
    let gpu_doc: Value = serde_json::from_str(&std::fs::read_to_string(&gpu_bom).unwrap()).unwrap();
    assert_eq!(refs(&mine, "machine-learning-model"), refs(&gpu_doc, "machine-learning-model"));
    assert_eq!(refs(&mine, "library"), refs(&gpu_doc, "library"));

    // CSV: the formula is defused; JSON lines: one sighting per line, the value as it is.
    let csv_text = std::fs::read_to_string(&csv).unwrap();
    assert!(csv_text.starts_with("asset_id,kind,name,version,type,sha256,purl,verdict,"));
    assert!(csv_text.contains("\"'=HYPERLINK(\"\"http:evil\"\")&CMD.pkl\""), "{csv_text}");
    let lines: Vec<Value> =
        std::fs::read_to_string(&sightings).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(lines.iter().any(|l| l["name"] == "=HYPERLINK(\"http:evil\")&CMD.pkl"));
    let live: u64 = c.hosts().iter().map(|h| h["sightings"].as_u64().unwrap()).sum();
    assert_eq!(lines.len() as u64, live, "one line per live sighting");

    // Over HTTP with the export scope: the same bytes but for the serial and the time.
    let exporter = c.command(&["api-token", "create", "--scope", "export"]);
    let reader = c.command(&["api-token", "create", "--scope", "read"]);
    let (status, kind, body) = get(&c, "/api/v1/export?format=cyclonedx", &exporter);
    assert_eq!((status, kind.as_str()), (200, "application/vnd.cyclonedx+json; version=1.6"));
    assert_eq!(without_serial_and_time(&body), without_serial_and_time(&std::fs::read_to_string(&fleet_bom).unwrap()));
    let (_, _, spdx_body) = get(&c, "/api/v1/export?format=spdx", &exporter);
    assert_eq!(without_serial_and_time(&spdx_body), without_serial_and_time(&std::fs::read_to_string(&spdx).unwrap()));
    let (_, kind, csv_body) = get(&c, "/api/v1/export?format=csv", &exporter);
    assert_eq!((kind.as_str(), csv_body.as_str()), ("text/csv; charset=utf-8", csv_text.as_str()));
    assert_eq!(get(&c, "/api/v1/export?format=csv", &reader).0, 403, "read scope cannot export");
    assert_eq!(get(&c, "/api/v1/export?format=xml", &exporter).0, 400);
    assert_eq!(get(&c, "/api/v1/export?format=csv&host=nobody", &exporter).0, 404);
    let (status, _, answer) = get(&c, "/api/v1/export?format=csv&rows=everything", &exporter);
    assert_eq!(status, 400);
    assert!(answer.contains("rows"), "{answer}");
}

#[test]
fn the_validators_refuse_a_broken_document() {
    let dir = tempfile::tempdir().unwrap();
    let bad_bom = dir.path().join("bad.cdx.json");
    std::fs::write(
        &bad_bom,
        r#"{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[{"type":"spaceship","name":"x"}]}"#,
    )
    .unwrap();
    let bad_spdx = dir.path().join("bad.spdx.jsonld");
    std::fs::write(
        &bad_spdx,
        r#"{"@context":"https://spdx.org/rdf/3.0.1/spdx-context.jsonld","@graph":[{"type":"ai_AIPackage","spdxId":"urn:x","creationInfo":"_:c","ai_notAProperty":"x"}]}"#,
    )
    .unwrap();
    assert!(!reference_check("cyclonedx", &[&bad_bom]).0);
    assert!(!reference_check("spdx", &[&bad_spdx]).0);
}
