//! Safety verdicts over the committed corpus (`tests/fixtures/safety`, written by
//! `scripts/make-fixtures.py`): every benign model is safe, every hostile file is flagged at
//! least as badly as its answer key says, with the callables it uses reported.

use std::process::Command;

use aiscout_e2e::{agent_bin, fixtures_dir};
use serde_json::Value;

fn check(args: &[&str]) -> (Option<i32>, Value) {
    let out = Command::new(agent_bin()).arg("check").arg("--json").args(args).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check output is not json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), doc)
}

fn rank(v: &str) -> u8 {
    match v {
        "safe" => 1,
        "suspicious" => 2,
        "dangerous" => 3,
        _ => 0,
    }
}

#[test]
fn corpus_verdicts_match_the_answer_key() {
    let root = std::fs::canonicalize(fixtures_dir().join("safety")).unwrap();
    let expected: Value = serde_json::from_slice(&std::fs::read(root.join("expected.json")).unwrap()).unwrap();
    let (code, doc) = check(&[root.to_str().unwrap()]);
    assert_eq!(code, Some(1), "hostile files must make check exit 1");
    let by_path = |p: &str| {
        let want = root.join(p.trim_end_matches('/')).display().to_string();
        doc["files"].as_array().unwrap().iter().find(|f| f["path"] == want.as_str()).cloned()
    };
    for b in expected["benign"].as_array().unwrap() {
        let p = b["path"].as_str().unwrap();
        let f = by_path(p).unwrap_or_else(|| panic!("benign {p} not checked"));
        assert_eq!(f["verdict"], "safe", "false alarm on {p}: {}", f["findings"]);
    }
    for h in expected["hostile"].as_array().unwrap() {
        let p = h["path"].as_str().unwrap();
        let f = by_path(p).unwrap_or_else(|| panic!("hostile {p} not checked; errors: {}", doc["errors"]));
        let min = h["min_verdict"].as_str().unwrap();
        assert!(rank(f["verdict"].as_str().unwrap()) >= rank(min), "{p}: {} < {min}: {}", f["verdict"], f["findings"]);
        let text = f.to_string();
        for import in h["imports"].as_array().into_iter().flatten() {
            let import = import.as_str().unwrap();
            assert!(text.contains(import), "{p}: {import} not reported: {text}");
        }
        for f in f["findings"].as_array().unwrap() {
            assert!(f["atlas"].as_str().unwrap().starts_with("AML.T"), "{p}: {f}");
            assert!(f["owasp"].as_str().unwrap().starts_with("LLM0"), "{p}: {f}");
        }
    }
    assert!(doc["errors"].as_array().unwrap().is_empty(), "{}", doc["errors"]);
    // Verdicts need headers and pickles, not digests of whole weight files.
    assert_eq!(doc["summary"]["bytes_hashed"], 0);
}

#[test]
fn exit_status_is_0_when_everything_is_safe_1_when_not_judged_and_2_on_errors_only() {
    let (code, doc) = check(&[fixtures_dir().join("safety/benign").to_str().unwrap()]);
    assert_eq!(code, Some(0), "{}", doc["summary"]);
    assert_eq!(doc["summary"]["dangerous"], 0);
    // A header past the parser's bounds cannot be judged: check does not pass it.
    let (code, doc) = check(&[fixtures_dir().join("hazards/huge_kv.gguf").to_str().unwrap()]);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["files"][0]["findings"][0]["kind"], "unparseable", "{doc}");
    assert_eq!(doc["files"][0]["format"], "gguf");

    // A model that cannot be read at all is an error: 2.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("locked.safetensors");
    std::fs::copy(fixtures_dir().join("safety/benign/tiny.safetensors"), &model).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&model, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = if aiscout_e2e::running_as_root() {
        aiscout_e2e::run_agent_as_nobody(&["check", "--json", dir.path().to_str().unwrap()])
    } else {
        Command::new(agent_bin()).args(["check", "--json", dir.path().to_str().unwrap()]).output().unwrap()
    };
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(2), "{doc}");
    assert_eq!(doc["summary"]["errors"], 1, "{doc}");
}

#[test]
fn scan_reports_safety_beside_discovery() {
    let state = tempfile::tempdir().unwrap();
    let hostile = fixtures_dir().join("safety/hostile/os_system_p2.pkl");
    let doc = aiscout_e2e::run_scan_json(&[&hostile], state.path(), &[]);
    let safety = &doc["models"][0]["safety"];
    assert_eq!(safety["verdict"], "dangerous");
    assert!(safety["imports"].as_array().unwrap().iter().any(|i| i == "posix.system" || i == "os.system"), "{safety}");
    // A rescan answers from the cache with the same verdict.
    let again = aiscout_e2e::run_scan_json(&[&hostile], state.path(), &[]);
    assert_eq!(again["models"][0]["digest_source"], "cache");
    assert_eq!(&again["models"][0]["safety"], safety);
}
