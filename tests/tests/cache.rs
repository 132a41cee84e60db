//! The hash cache: a rescan of an unchanged tree hashes nothing; a changed file is re-hashed.

use aiscout_e2e::{copy_tree, fixtures_dir, model_facts, run_scan_json};

#[test]
fn rescan_hashes_zero_bytes_and_reports_the_same_models() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("fixtures");
    copy_tree(&fixtures_dir(), &tree);
    let state = tempfile::tempdir().unwrap();
    let cold = run_scan_json(&[&tree], state.path(), &[]);
    assert!(cold["stats"]["bytes_hashed"].as_u64().unwrap() > 0);
    let warm = run_scan_json(&[&tree], state.path(), &[]);
    assert_eq!(warm["stats"]["bytes_hashed"], 0, "{}", warm["stats"]);
    assert!(warm["stats"]["hash_cache_hits"].as_u64().unwrap() > 0);
    assert_eq!(model_facts(&cold), model_facts(&warm));
}

#[test]
fn changed_file_is_rehashed() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("w.npy");
    std::fs::copy(fixtures_dir().join("models/weights.npy"), &model).unwrap();
    let state = tempfile::tempdir().unwrap();
    let first = run_scan_json(&[dir.path()], state.path(), &[]);
    // Same size, new content and mtime.
    let mut bytes = std::fs::read(&model).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&model, &bytes).unwrap();
    let second = run_scan_json(&[dir.path()], state.path(), &[]);
    assert_ne!(first["models"][0]["sha256"], second["models"][0]["sha256"]);
    assert_eq!(second["stats"]["bytes_hashed"].as_u64().unwrap(), bytes.len() as u64);
}
