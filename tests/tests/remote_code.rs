//! Hugging Face remote code and the files `check` cannot judge, through the real binary:
//! `auto_map` snapshots laid out like `~/.cache/huggingface/hub` (blobs and snapshot links),
//! `check` exit codes and output, and what `scan --json` reports of the same files.

use std::path::{Path, PathBuf};
use std::process::Command;

use aiscout_e2e::{agent_bin, copy_tree, fixtures_dir, run_scan_json};
use serde_json::Value;

fn check(paths: &[&Path]) -> (Option<i32>, Value) {
    let out = Command::new(agent_bin()).arg("check").arg("--json").args(paths).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("check output is not json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), doc)
}

fn safety() -> PathBuf {
    std::fs::canonicalize(fixtures_dir().join("safety")).unwrap()
}

/// The entries of `doc[key]` whose path lies under `dir`.
fn under<'a>(doc: &'a Value, key: &str, dir: &Path) -> Vec<&'a Value> {
    let dir = format!("{}/", dir.display());
    doc[key].as_array().unwrap().iter().filter(|m| m["path"].as_str().unwrap().starts_with(&dir)).collect()
}

/// A hub cache at `<home>/.cache/huggingface/hub` holding copies of the fixture repositories
/// `repos` (relative to the safety corpus).
fn hub_with(home: &Path, repos: &[&str]) -> PathBuf {
    let hub = home.join(".cache/huggingface/hub");
    std::fs::create_dir_all(&hub).unwrap();
    for repo in repos {
        let from = safety().join(repo);
        let name = from.file_name().unwrap().to_owned();
        copy_tree(&from, &hub.join(name));
    }
    hub
}

const BENIGN_REPO: &str = "benign/hf_plain/models--acme--tiny-plain";
const TORCH_REPO: &str = "hostile/hf_remote_code/models--acme--tiny-remote";
const PWN_REPO: &str = "hostile/hf_remote_code_os_system/models--acme--tiny-remote-pwn";

#[test]
fn check_judges_remote_code_by_what_its_module_does() {
    let root = safety();
    let (code, doc) = check(&[&root.join(BENIGN_REPO)]);
    assert_eq!(code, Some(0), "a snapshot without auto_map is safe: {doc}");

    let (code, doc) = check(&[&root.join(TORCH_REPO), &root.join(PWN_REPO)]);
    assert_eq!(code, Some(1), "{doc}");
    let torch = &under(&doc, "files", &root.join(TORCH_REPO))[0];
    assert_eq!(
        torch["verdict"], "suspicious",
        "a module defining a torch model is remote code, not an attack: {torch}"
    );
    let pwn = &under(&doc, "files", &root.join(PWN_REPO))[0];
    assert_eq!(pwn["verdict"], "dangerous", "{pwn}");
    let finding =
        pwn["findings"].as_array().unwrap().iter().find(|f| f["subject"] == "modeling_tiny_remote.py").unwrap();
    assert_eq!(finding["kind"], "remote_code");
    assert_eq!(finding["severity"], "dangerous");
    assert_eq!(finding["location"], "config.json");
    assert_eq!(finding["atlas"], "AML.T0011.000");
    assert!(finding["detail"].as_str().unwrap().contains("os.system"), "{finding}");
    // Both modules the torch twin's auto_map names are listed, neither is dangerous.
    let subjects: Vec<&str> =
        torch["findings"].as_array().unwrap().iter().map(|f| f["subject"].as_str().unwrap()).collect();
    assert!(subjects.contains(&"modeling_tiny_remote.py") && subjects.contains(&"configuration_tiny_remote.py"));
}

#[test]
fn scan_json_carries_remote_code_on_the_snapshot_model() {
    let home = tempfile::tempdir().unwrap();
    let hub = hub_with(home.path(), &[BENIGN_REPO, TORCH_REPO, PWN_REPO]);
    let state = tempfile::tempdir().unwrap();
    let doc = run_scan_json(&[home.path()], state.path(), &[]);
    let model = |repo: &str| under(&doc, "models", &hub.join(repo))[0].clone();
    let pwn = model("models--acme--tiny-remote-pwn");
    assert_eq!(pwn["source"]["kind"], "huggingface");
    assert_eq!(pwn["source"]["repo"], "acme/tiny-remote-pwn", "{}", pwn["source"]);
    assert_eq!(pwn["safety"]["verdict"], "dangerous", "{}", pwn["safety"]);
    assert!(pwn["safety"]["findings"].to_string().contains("modeling_tiny_remote.py"));
    assert_eq!(model("models--acme--tiny-remote")["safety"]["verdict"], "suspicious");
    assert_eq!(model("models--acme--tiny-plain")["safety"]["verdict"], "safe");
    // A rescan answers the weights from the cache and still reads the code beside them.
    let again = run_scan_json(&[home.path()], state.path(), &[]);
    let pwn_again = under(&again, "models", &hub.join("models--acme--tiny-remote-pwn"))[0];
    assert_eq!(pwn_again["digest_source"], "cache");
    assert_eq!(pwn_again["safety"], pwn["safety"]);
}

#[test]
fn a_snapshot_link_out_of_the_cache_is_never_followed() {
    let home = tempfile::tempdir().unwrap();
    let hub = hub_with(home.path(), &[TORCH_REPO]);
    let snapshots = hub.join("models--acme--tiny-remote/snapshots");
    let snapshot = std::fs::read_dir(&snapshots).unwrap().next().unwrap().unwrap().path();
    // The module now points outside the cache, at a file that would be dangerous.
    let outside = home.path().join("outside.py");
    std::fs::write(&outside, "import os\nos.system('touch /tmp/aiscout-pwned-outside')\n").unwrap();
    let module = snapshot.join("modeling_tiny_remote.py");
    std::fs::remove_file(&module).unwrap();
    std::os::unix::fs::symlink(&outside, &module).unwrap();
    let (code, doc) = check(&[home.path()]);
    assert_eq!(code, Some(1));
    let model = under(&doc, "files", &hub)[0];
    assert_eq!(model["verdict"], "suspicious", "the outside file was read: {model}");
    let text = model["findings"].to_string();
    assert!(text.contains("not followed") && !text.contains("os.system"), "{text}");
}

#[test]
fn check_names_what_it_cannot_judge_and_scan_stays_an_inventory() {
    let root = safety();
    let hostile = root.join("hostile");
    let files = ["random_bytes.pt", "truncated_p0.pkl", "truncated_p4.pkl"].map(|f| hostile.join(f));
    let paths: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, doc) = check(&paths);
    assert_eq!(code, Some(1), "{doc}");
    let kind = |f: &Path| {
        let entry = doc["files"].as_array().unwrap().iter().find(|e| e["path"] == f.to_str().unwrap()).unwrap();
        assert_eq!(entry["verdict"], "suspicious", "{entry}");
        (entry["format"].as_str().unwrap().to_string(), entry["findings"][0]["kind"].as_str().unwrap().to_string())
    };
    assert_eq!(kind(&files[0]), ("unknown".to_string(), "unknown_format".to_string()));
    assert_eq!(kind(&files[1]), ("pickle".to_string(), "unparseable".to_string()));
    assert_eq!(kind(&files[2]), ("pickle".to_string(), "malformed".to_string()));
    assert_eq!(doc["summary"]["unjudged"], 2, "{}", doc["summary"]);
    assert_eq!(doc["summary"]["models"], 1, "{}", doc["summary"]);

    let out = Command::new(agent_bin()).arg("check").args(&paths).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("unknown_format .pt") && text.contains("2 not judged"), "{text}");

    // The whole pickles they were cut from are safe.
    let benign = ["builtins_p0.pkl", "builtins_p4.pkl"].map(|f| root.join("benign").join(f));
    let (code, doc) = check(&benign.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert_eq!(code, Some(0), "{doc}");

    // scan lists models only: the unidentified files are neither models nor errors.
    let state = tempfile::tempdir().unwrap();
    let doc = run_scan_json(&paths, state.path(), &[]);
    let models: Vec<&str> = doc["models"].as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap()).collect();
    assert_eq!(models, [files[2].to_str().unwrap()], "{doc}");
    assert!(doc["errors"].as_array().unwrap().is_empty(), "{}", doc["errors"]);
    assert!(!doc.to_string().contains("unknown_format"));
}

/// A minimal valid safetensors file (one F32 tensor of four values).
fn tiny_safetensors(path: &Path) {
    let header = br#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn remote_code_in_a_plain_directory_is_found_on_every_scan_and_when_it_appears_later() {
    let root = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    let pwn = root.path().join("exported");
    let later = root.path().join("later");
    std::fs::create_dir_all(&pwn).unwrap();
    std::fs::create_dir_all(&later).unwrap();
    tiny_safetensors(&pwn.join("model.safetensors"));
    tiny_safetensors(&later.join("model.safetensors"));
    let config = r#"{"model_type": "x", "auto_map": {"AutoModel": "modeling_x.XModel"}}"#;
    std::fs::write(pwn.join("config.json"), config).unwrap();
    std::fs::write(pwn.join("modeling_x.py"), "import os\nos.system('id')\n").unwrap();
    let verdict = |doc: &Value, dir: &Path| under(doc, "models", dir)[0]["safety"]["verdict"].clone();

    let first = run_scan_json(&[root.path()], state.path(), &[]);
    assert_eq!(verdict(&first, &pwn), "dangerous", "{first}");
    assert_eq!(verdict(&first, &later), "safe");
    // Unchanged directories come from the listing records, which keep the config file.
    let again = run_scan_json(&[root.path()], state.path(), &[]);
    assert_eq!(verdict(&again, &pwn), "dangerous", "{again}");
    // A config added to a directory listed before is seen at the next scan.
    std::fs::write(later.join("tokenizer_config.json"), r#"{"auto_map": {"AutoTokenizer": ["tok_x.T", null]}}"#)
        .unwrap();
    std::fs::write(later.join("tok_x.py"), "import subprocess\n").unwrap();
    let third = run_scan_json(&[root.path()], state.path(), &[]);
    assert_eq!(verdict(&third, &later), "dangerous", "{third}");
    assert_eq!(verdict(&third, &pwn), "dangerous");
}
