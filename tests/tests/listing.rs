//! Rescans driven by directory listing records: changes made after a scan are all seen.
//!
//! Directory mtimes are moved an hour into the past before the first scan, so the records it
//! writes are trusted (fresher records are re-read on purpose: see `listing::RACY_WINDOW_NS`).

use std::path::Path;
use std::process::Command;

use aiscout_e2e::{copy_tree, fixtures_dir, model_facts, run_scan_json};
use serde_json::Value;

fn backdate_dirs(root: &Path) {
    let status = Command::new("find")
        .arg(root)
        .args(["-type", "d", "-exec", "touch", "-h", "-d", "1 hour ago", "{}", "+"])
        .status()
        .unwrap();
    assert!(status.success());
}

fn model_paths(doc: &Value) -> Vec<String> {
    doc["models"].as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn rescan_sees_added_changed_and_removed_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    let models = fixtures_dir().join("models");
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::create_dir_all(root.join("a/c")).unwrap();
    std::fs::copy(models.join("tiny.onnx"), root.join("a/m.onnx")).unwrap();
    std::fs::copy(models.join("weights.npy"), root.join("a/b/w.npy")).unwrap();
    std::fs::write(root.join("a/c/notes.bin"), b"just some text, not a model").unwrap();
    std::fs::write(root.join("a/b/readme.txt"), b"hello").unwrap();
    backdate_dirs(&root);
    let state = tempfile::tempdir().unwrap();

    let first = run_scan_json(&[&root], state.path(), &[]);
    assert_eq!(model_paths(&first).len(), 2);
    let second = run_scan_json(&[&root], state.path(), &[]);
    assert_eq!(second["stats"]["verdict_cache_hits"], 1, "{}", second["stats"]);
    assert_eq!(second["stats"]["files_seen"], first["stats"]["files_seen"]);
    assert_eq!(second["stats"]["bytes_hashed"], 0);
    assert_eq!(model_paths(&second), model_paths(&first));

    // In place: the directory's mtime does not change, the file's stamp does.
    let c_mtime = std::fs::metadata(root.join("a/c")).unwrap().modified().unwrap();
    std::fs::write(root.join("a/c/notes.bin"), std::fs::read(models.join("tiny-llama.gguf")).unwrap()).unwrap();
    assert_eq!(std::fs::metadata(root.join("a/c")).unwrap().modified().unwrap(), c_mtime);
    // Added in a new subdirectory of an unchanged-looking tree.
    std::fs::create_dir(root.join("a/b/new")).unwrap();
    std::fs::copy(models.join("single.safetensors"), root.join("a/b/new/s.safetensors")).unwrap();
    // Removed.
    std::fs::remove_file(root.join("a/m.onnx")).unwrap();

    let third = run_scan_json(&[&root], state.path(), &[]);
    let paths = model_paths(&third);
    let want: Vec<String> = ["a/b/new/s.safetensors", "a/b/w.npy", "a/c/notes.bin"]
        .iter()
        .map(|p| root.join(p).display().to_string())
        .collect();
    assert_eq!(paths, want);
    let gguf = third["models"].as_array().unwrap().iter().find(|m| m["format"] == "gguf").unwrap();
    assert_eq!(gguf["digest_source"], "hashed");

    // A directory removed after it was recorded.
    std::fs::remove_dir_all(root.join("a/b/new")).unwrap();
    let fourth = run_scan_json(&[&root], state.path(), &[]);
    assert!(fourth["errors"].as_array().unwrap().is_empty(), "{}", fourth["errors"]);
    assert_eq!(model_paths(&fourth).len(), 2);
}

#[test]
fn rescan_of_unchanged_tree_reads_no_directory_and_matches_first_scan() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("fixtures");
    copy_tree(&fixtures_dir(), &tree);
    let tree = std::fs::canonicalize(tree).unwrap();
    backdate_dirs(&tree);
    let state = tempfile::tempdir().unwrap();
    let first = run_scan_json(&[&tree], state.path(), &[]);
    let second = run_scan_json(&[&tree], state.path(), &[]);
    for key in ["files_seen", "dirs_seen", "candidates", "models", "errors"] {
        assert_eq!(first["stats"][key], second["stats"][key], "stats.{key}");
    }
    assert_eq!(second["stats"]["bytes_hashed"], 0);
    assert_eq!(model_facts(&first), model_facts(&second));
    assert_eq!(first["errors"], second["errors"]);
}
