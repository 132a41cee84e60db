//! `aiscout-agent check --format sarif`: the real binary on the committed safety corpus
//! (`tests/fixtures/safety`), its output validated against the official OASIS SARIF 2.1.0 schema
//! vendored in `tests/data/` (see `tests/data/README.md`), offline.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use aiscout_agent::check::sarif::{file_uri, SRCROOT};
use serde_json::Value;

fn corpus(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/safety").join(rel)
}

/// The vendored schema, as a draft-04 validator that also checks formats (`uri`, `date-time`).
fn validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sarif-schema-2.1.0.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::options().with_draft(jsonschema::Draft::Draft4).should_validate_formats(true).build(&schema).unwrap()
}

fn assert_valid(doc: &Value) {
    let v = validator();
    let errors: Vec<String> = v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "not valid SARIF 2.1.0: {errors:#?}\n{doc:#}");
}

/// Runs `check` with `args` and returns the exit status and the parsed stdout.
fn check(args: &[&OsStr]) -> (Option<i32>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_aiscout-agent")).arg("check").args(args).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check output is not json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), doc)
}

fn sarif(paths: &[&Path], extra: &[&str]) -> (Option<i32>, Value) {
    let mut args: Vec<&OsStr> = vec![OsStr::new("--format"), OsStr::new("sarif")];
    args.extend(extra.iter().map(OsStr::new));
    args.extend(paths.iter().map(|p| p.as_os_str()));
    check(&args)
}

/// A directory with one dangerous pickle (`models/evil.pkl`) and one safe model.
fn project() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir(root.join("models")).unwrap();
    std::fs::copy(corpus("hostile/os_system_p2.pkl"), root.join("models/evil.pkl")).unwrap();
    std::fs::copy(corpus("benign/tiny.safetensors"), root.join("models/tiny.safetensors")).unwrap();
    (dir, root)
}

fn results(doc: &Value) -> &Vec<Value> {
    doc["runs"][0]["results"].as_array().unwrap()
}

fn uri_of(result: &Value) -> &str {
    result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap()
}

fn rule_of<'a>(doc: &'a Value, result: &Value) -> &'a Value {
    &doc["runs"][0]["tool"]["driver"]["rules"][result["ruleIndex"].as_u64().unwrap() as usize]
}

#[test]
fn a_dangerous_pickle_is_a_valid_error_result_and_a_safe_model_is_none() {
    let (_dir, root) = project();
    let (code, doc) = sarif(&[&root], &[]);
    assert_eq!(code, Some(1), "the exit status is check's: {doc:#}");
    assert_valid(&doc);
    assert_eq!(doc["version"], "2.1.0");
    let driver = &doc["runs"][0]["tool"]["driver"];
    assert_eq!(driver["name"], "aiscout-agent");
    assert_eq!(driver["version"], env!("CARGO_PKG_VERSION"));

    let evil = file_uri(&root.join("models/evil.pkl"));
    let error = results(&doc)
        .iter()
        .find(|r| r["level"] == "error" && r["ruleId"] == "dangerous_import")
        .unwrap_or_else(|| panic!("no dangerous_import error: {doc:#}"));
    assert_eq!(uri_of(error), evil);
    assert!(error["message"]["text"].as_str().unwrap().starts_with("dangerous_import: os.system"), "{error}");
    assert_eq!(error["partialFingerprints"]["aiscoutFinding/v1"].as_str().unwrap().len(), 64);
    let rule = rule_of(&doc, error);
    assert_eq!(rule["id"], "dangerous_import");
    assert_eq!(rule["defaultConfiguration"]["level"], "error");
    assert_eq!(rule["properties"]["tags"], serde_json::json!(["security", "AML.T0011.000", "LLM03:2025"]));
    assert_eq!(rule["properties"]["security-severity"], "9.0");

    let tiny = file_uri(&root.join("models/tiny.safetensors"));
    assert!(!results(&doc).iter().any(|r| uri_of(r) == tiny), "a safe model has no result: {doc:#}");
    let artifacts = doc["runs"][0]["artifacts"].as_array().unwrap();
    let safe = artifacts.iter().find(|a| a["location"]["uri"] == tiny.as_str()).unwrap();
    assert_eq!(safe["properties"]["verdict"], "safe");

    // The same findings, fingerprints included, on a second run.
    let (_, again) = sarif(&[&root], &[]);
    let prints = |d: &Value| -> Vec<Value> { results(d).iter().map(|r| r["partialFingerprints"].clone()).collect() };
    assert_eq!(prints(&doc), prints(&again));
}

#[test]
fn safe_models_alone_give_no_error_and_exit_0() {
    let (code, doc) = sarif(&[&corpus("benign/tiny.safetensors")], &[]);
    assert_eq!(code, Some(0), "{doc:#}");
    assert_valid(&doc);
    assert!(results(&doc).iter().all(|r| r["level"] != "error"), "{doc:#}");
    assert_eq!(doc["runs"][0]["invocations"][0]["executionSuccessful"], true);
    assert_eq!(doc["runs"][0]["invocations"][0]["exitCode"], 0);
}

#[test]
fn a_path_that_is_not_utf8_gives_valid_json_and_a_valid_uri() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let name = OsStr::from_bytes(b"evil-\xff\"\n%.pkl");
    std::fs::copy(corpus("hostile/os_system_p2.pkl"), root.join(name)).unwrap();
    let (code, doc) = sarif(&[&root], &[]);
    assert_eq!(code, Some(1));
    assert_valid(&doc);
    let error = results(&doc).iter().find(|r| r["level"] == "error").unwrap_or_else(|| panic!("{doc:#}"));
    let uri = uri_of(error);
    assert!(uri.is_ascii() && !uri.contains(['"', '\n', ' ']), "{uri}");
    // The report carries paths as text: the byte that is not UTF-8 arrives as U+FFFD, which the
    // URI percent-encodes (docs/sarif.md).
    assert!(uri.starts_with(&file_uri(&root)), "{uri}");
    assert!(uri.ends_with("/evil-%EF%BF%BD%22%0A%25.pkl"), "{uri}");
}

#[test]
fn sarif_base_reports_paths_relative_to_srcroot() {
    let (_dir, root) = project();
    let (code, doc) = sarif(&[&root], &["--sarif-base", root.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_valid(&doc);
    let run = &doc["runs"][0];
    let base = file_uri(&root) + "/";
    assert_eq!(run["originalUriBaseIds"][SRCROOT]["uri"], base.as_str());
    let error = results(&doc).iter().find(|r| r["level"] == "error").unwrap();
    let loc = &error["locations"][0]["physicalLocation"]["artifactLocation"];
    assert_eq!(loc["uri"], "models/evil.pkl");
    assert_eq!(loc["uriBaseId"], SRCROOT);

    // Only with --format sarif.
    let out = Command::new(env!("CARGO_BIN_EXE_aiscout-agent"))
        .args(["check", "--json", "--sarif-base"])
        .arg(&root)
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--sarif-base applies to --format sarif only"));
}

#[test]
fn unjudged_files_are_results_and_unreadable_paths_are_notifications() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::write(root.join("weights.pt"), b"not a model at all, just text").unwrap();
    let (code, doc) = sarif(&[&root], &[]);
    assert_eq!(code, Some(1), "a file that cannot be judged fails the gate");
    assert_valid(&doc);
    let r = results(&doc).iter().find(|r| r["ruleId"] == "unknown_format").unwrap_or_else(|| panic!("{doc:#}"));
    assert_eq!(r["level"], "warning");
    assert_eq!(uri_of(r), file_uri(&root.join("weights.pt")));

    // A root that does not exist beside one that does (with none, check has nothing to do and
    // fails as a command: exit 2, nothing printed).
    let empty = root.join("empty");
    std::fs::create_dir(&empty).unwrap();
    let missing = root.join("missing");
    let (code, doc) = sarif(&[&empty, &missing], &[]);
    assert_eq!(code, Some(2), "{doc:#}");
    assert_valid(&doc);
    let inv = &doc["runs"][0]["invocations"][0];
    assert_eq!(inv["executionSuccessful"], false);
    assert_eq!(inv["exitCode"], 2);
    let note = &inv["toolExecutionNotifications"][0];
    assert_eq!(note["level"], "error");
    assert_eq!(note["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], file_uri(&missing).as_str());
}

#[test]
fn json_is_the_alias_of_format_json() {
    let path = corpus("benign/tiny.safetensors");
    let (_, a) = check(&[OsStr::new("--json"), path.as_os_str()]);
    let (_, b) = check(&[OsStr::new("--format"), OsStr::new("json"), path.as_os_str()]);
    let strip = |mut v: Value| {
        v["summary"]["duration_ms"] = Value::Null;
        v
    };
    assert_eq!(strip(a), strip(b));
}

#[test]
fn the_validator_rejects_a_broken_log() {
    let (_dir, root) = project();
    let (_, doc) = sarif(&[&root], &[]);
    assert_valid(&doc);
    let v = validator();
    let mut no_version = doc.clone();
    no_version.as_object_mut().unwrap().remove("version");
    assert!(!v.is_valid(&no_version), "a log without version must not validate");
    let mut bad_level = doc.clone();
    bad_level["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!v.is_valid(&bad_level), "an unknown level must not validate");
    let mut no_driver_name = doc;
    no_driver_name["runs"][0]["tool"]["driver"].as_object_mut().unwrap().remove("name");
    assert!(!v.is_valid(&no_driver_name), "a tool without a name must not validate");
}

#[test]
fn the_whole_corpus_gives_a_valid_log_matching_the_answer_key() {
    let root = std::fs::canonicalize(corpus("")).unwrap();
    let expected: Value = serde_json::from_slice(&std::fs::read(root.join("expected.json")).unwrap()).unwrap();
    let (code, doc) = sarif(&[&root], &["--sarif-base", root.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert_valid(&doc);
    let rules = doc["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
    for r in results(&doc) {
        assert_eq!(rule_of(&doc, r)["id"], r["ruleId"], "{r}");
    }
    let ids: Vec<&str> = rules.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "one rule per kind: {ids:?}");
    // Paths of the answer key are relative to the corpus, as the URIs are.
    let levels_at = |p: &str| -> Vec<String> {
        let want = p.trim_end_matches('/');
        results(&doc).iter().filter(|r| uri_of(r) == want).map(|r| r["level"].as_str().unwrap().to_string()).collect()
    };
    for b in expected["benign"].as_array().unwrap() {
        let p = b["path"].as_str().unwrap();
        assert!(!levels_at(p).iter().any(|l| l == "error" || l == "warning"), "false alarm on {p}");
    }
    for h in expected["hostile"].as_array().unwrap() {
        let p = h["path"].as_str().unwrap();
        let want = if h["min_verdict"] == "dangerous" { "error" } else { "warning" };
        let levels = levels_at(p);
        assert!(levels.iter().any(|l| l == want || l == "error"), "{p}: no {want} result, only {levels:?}");
    }
}
