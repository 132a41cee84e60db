//! Hostile file-system shapes: FIFOs, sockets, symlink loops, vanishing files, missing roots.

use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use aiscout_e2e::{agent_bin, fixtures_dir, run_scan_json};

#[test]
fn fifo_socket_and_symlink_loop_do_not_hang_or_count() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::copy(fixtures_dir().join("models/tiny-llama.gguf"), root.join("real.gguf")).unwrap();
    let fifo = root.join("model.gguf");
    rustix::fs::mkfifoat(rustix::fs::CWD, &fifo, rustix::fs::Mode::from_raw_mode(0o644)).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(root.join("weights.safetensors")).unwrap();
    std::fs::create_dir(root.join("loop")).unwrap();
    symlink("..", root.join("loop/up")).unwrap();
    symlink(root.join("real.gguf"), root.join("link.gguf")).unwrap();
    symlink(root.join("missing"), root.join("dangling.pt")).unwrap();

    let state = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let doc = run_scan_json(&[root], state.path(), &[]);
    assert!(started.elapsed() < Duration::from_secs(30));
    let paths: Vec<&str> = doc["models"].as_array().unwrap().iter().map(|m| m["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("/real.gguf"));
    assert!(doc["errors"].as_array().unwrap().is_empty(), "{}", doc["errors"]);
}

#[test]
fn missing_root_is_an_error_entry_not_an_abort() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), dir.path().join("m.onnx")).unwrap();
    let missing = dir.path().join("no-such-dir");
    let state = tempfile::tempdir().unwrap();
    let doc = run_scan_json(&[dir.path(), &missing], state.path(), &[]);
    assert_eq!(doc["models"].as_array().unwrap().len(), 1);
    let errs = doc["errors"].as_array().unwrap();
    assert!(errs.iter().any(|e| e["path"].as_str().unwrap().ends_with("no-such-dir")), "{errs:?}");
}

#[test]
fn only_missing_roots_fail_with_status_2() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(agent_bin())
        .args(["scan", "--json", "--state-dir"])
        .arg(state.path())
        .arg("/no/such/root/anywhere")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/no/such/root/anywhere"), "{err}");
}

#[test]
fn sections_not_asked_for_are_absent() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(agent_bin())
        .args(["scan", "--json", "--only", "frameworks", "--state-dir"])
        .arg(state.path())
        .arg(fixtures_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["sections"], serde_json::json!(["frameworks"]));
    assert_eq!(doc["models"], serde_json::json!([]));
    assert!(doc["frameworks"].is_array());
    for absent in ["runtimes", "tooling", "gpus"] {
        assert!(doc.get(absent).is_none(), "{absent} present");
    }
    // The walk noted markers without opening candidates; a models scan afterwards still finds
    // every model.
    let after = run_scan_json(&[fixtures_dir().as_path()], state.path(), &[]);
    let fresh_state = tempfile::tempdir().unwrap();
    let fresh = run_scan_json(&[fixtures_dir().as_path()], fresh_state.path(), &[]);
    assert!(fresh["models"].as_array().unwrap().len() > 10);
    assert_eq!(after["models"], fresh["models"]);
}

#[test]
fn table_output_lists_models_and_summary() {
    let state = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(agent_bin())
        .args(["scan", "--state-dir"])
        .arg(state.path())
        .arg(fixtures_dir().join("models"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("FORMAT"), "{text}");
    assert!(text.contains("tiny-llama.gguf"));
    assert!(text.contains(" models · "), "{text}");
}

#[test]
fn excludes_skip_names_and_paths() {
    let state = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(fixtures_dir().join("models")).unwrap();
    let doc = run_scan_json(
        &[&root],
        state.path(),
        &["--exclude", "*.gguf", "--exclude", &format!("{}/sharded", root.display())],
    );
    for m in doc["models"].as_array().unwrap() {
        let p = m["path"].as_str().unwrap();
        assert!(!p.ends_with(".gguf") && !p.contains("/sharded/"), "{p} not excluded");
    }
    assert!(!doc["models"].as_array().unwrap().is_empty());
}

#[test]
fn a_savedmodels_keras_metadata_is_read_beside_it_and_never_through_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let lambda = br#"{"class_name": "Lambda", "config": {}}"#;
    let (with, linked) = (dir.path().join("with/m"), dir.path().join("linked/m"));
    for m in [&with, &linked] {
        std::fs::create_dir_all(m.parent().unwrap()).unwrap();
        aiscout_e2e::copy_tree(&fixtures_dir().join("models/savedmodel"), m);
    }
    std::fs::write(with.join("keras_metadata.pb"), lambda).unwrap();
    let outside = dir.path().join("outside.pb");
    std::fs::write(&outside, lambda).unwrap();
    symlink(&outside, linked.join("keras_metadata.pb")).unwrap();

    let state = tempfile::tempdir().unwrap();
    let doc = run_scan_json(&[dir.path()], state.path(), &[]);
    let model = |root: &std::path::Path| {
        doc["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["path"] == root.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} not reported: {:#}", root.display(), doc["models"]))
            .clone()
    };
    let read = model(&with);
    assert_eq!(read["safety"]["verdict"], "dangerous", "{:#}", read["safety"]);
    assert!(read["safety"].to_string().contains("Lambda"));
    let not_read = model(&linked);
    assert!(!not_read["safety"].to_string().contains("Lambda"), "read through a link: {:#}", not_read["safety"]);
}

#[test]
fn a_tree_deeper_than_the_descriptor_limit_is_walked_whole() {
    // 1,500 levels with a sibling at every level, walked with 256 descriptors: the walk must
    // not hold one open directory per level.
    let dir = tempfile::tempdir().unwrap();
    let mut deep = dir.path().to_path_buf();
    let mut middle = None;
    for level in 0..1500 {
        std::fs::create_dir_all(deep.join("s")).unwrap();
        if level == 700 {
            middle = Some(deep.join("s/m.gguf"));
        }
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let gguf = fixtures_dir().join("models/tiny-llama.gguf");
    std::fs::copy(&gguf, deep.join("m.gguf")).unwrap();
    std::fs::copy(&gguf, middle.unwrap()).unwrap();

    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 256 && exec \"$0\" scan --json --only models --no-cache \"$1\"")
        .arg(agent_bin())
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["models"].as_array().unwrap().len(), 2, "{:#}", doc["models"]);
    assert!(doc["errors"].as_array().unwrap().is_empty(), "{:#}", doc["errors"]);
    assert_eq!(doc["stats"]["dirs_seen"], 3001);
}
