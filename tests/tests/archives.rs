//! Archives holding models and bundles carrying code, through the real binary: `check --json`
//! locates each finding under its member path (`inner.tar.gz!model/weights.pkl`), every hostile
//! archive has a benign twin that stays `safe`, and `scan --json` reports an archive as one
//! model entry of format `archive` listing the models inside.

use std::path::PathBuf;
use std::process::Command;

use aiscout_e2e::{agent_bin, fixtures_dir};
use serde_json::Value;

fn corpus(rel: &str) -> PathBuf {
    fixtures_dir().join("safety").join(rel)
}

/// `check --json` of one file: its exit status and its one entry.
fn check_one(rel: &str) -> (Option<i32>, Value) {
    let path = corpus(rel);
    let out = Command::new(agent_bin()).arg("check").arg("--json").arg(&path).output().unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{rel}: check output is not json: {e}\n{}", String::from_utf8_lossy(&out.stderr)));
    assert!(doc["errors"].as_array().unwrap().is_empty(), "{rel}: {}", doc["errors"]);
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{rel}: {doc}");
    (out.status.code(), files[0].clone())
}

/// The findings of `file` as `kind subject @ location` lines.
fn findings(file: &Value) -> Vec<String> {
    file["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {} @ {}", f["kind"].as_str().unwrap(), f["subject"].as_str().unwrap(), f["location"]))
        .collect()
}

fn has(file: &Value, kind: &str, location: &str) -> bool {
    file["findings"].as_array().unwrap().iter().any(|f| f["kind"] == kind && f["location"] == location)
}

#[test]
fn a_pickle_nested_in_a_tar_gz_in_a_zip_is_found_and_located() {
    let (code, f) = check_one("hostile/nested_tgz_in_zip.zip");
    assert_eq!(code, Some(1));
    assert_eq!((f["format"].as_str(), f["verdict"].as_str()), (Some("archive"), Some("dangerous")));
    assert!(has(&f, "dangerous_call", "inner.tar.gz!model/weights.pkl"), "{:?}", findings(&f));
    let (code, twin) = check_one("benign/nested_tgz_in_zip_ok.zip");
    assert_eq!((code, twin["verdict"].as_str()), (Some(0), Some("safe")), "{:?}", findings(&twin));
}

#[test]
fn tar_bz2_xz_gz_and_7z_members_are_walked() {
    let (_, f) = check_one("hostile/nested_tar_formats.tar");
    for at in ["a.tar.bz2!w.pkl", "b.tar.xz!w.pkl"] {
        assert!(has(&f, "dangerous_import", at), "{at}: {:?}", findings(&f));
    }
    assert!(f["imports"].as_array().unwrap().iter().any(|i| i == "posix.system"), "{f}");
    let (_, f) = check_one("hostile/nested_7z_in_tar.tar");
    assert!(has(&f, "dangerous_import", "m.7z!evil.pkl"), "{:?}", findings(&f));
    let (_, f) = check_one("hostile/renamed_tgz.bin");
    assert_eq!(f["verdict"], "dangerous", "content, not the .bin name, decides");
    for twin in ["benign/nested_tar_formats_ok.tar", "benign/nested_7z_in_tar_ok.tar"] {
        let (code, f) = check_one(twin);
        assert_eq!((code, f["verdict"].as_str()), (Some(0), Some("safe")), "{twin}: {:?}", findings(&f));
    }
}

#[test]
fn zip_tricks_that_loaders_ignore_hide_nothing() {
    for rel in [
        "hostile/zip_encrypted_flag.zip",
        "hostile/zip_central_hides_member.zip",
        "hostile/zip_prefixed.zip",
        "hostile/zip_bad_crc.zip",
        "hostile/zip_duplicate_names.zip",
    ] {
        let (code, f) = check_one(rel);
        assert_eq!((code, f["verdict"].as_str()), (Some(1), Some("dangerous")), "{rel}: {:?}", findings(&f));
        assert!(has(&f, "dangerous_call", "weights.pkl"), "{rel}: {:?}", findings(&f));
    }
    let (_, f) = check_one("hostile/zip_central_hides_member.zip");
    assert!(has(&f, "hidden_member", "weights.pkl"), "{:?}", findings(&f));
    let (code, f) = check_one("hostile/zip_local_name_differs.zip");
    assert_eq!((code, f["verdict"].as_str()), (Some(1), Some("dangerous")), "{:?}", findings(&f));
    assert!(has(&f, "header_mismatch", "notes.txt") && has(&f, "dangerous_call", "notes.txt"), "{:?}", findings(&f));
    let (code, twin) = check_one("benign/zip_tricks_ok.zip");
    assert_eq!((code, twin["verdict"].as_str()), (Some(0), Some("safe")), "{:?}", findings(&twin));
}

#[test]
fn archives_past_the_depth_or_member_bound_are_suspicious_and_the_twin_within_is_safe() {
    let (code, f) = check_one("hostile/nested_past_depth.zip");
    assert_eq!((code, f["verdict"].as_str()), (Some(1), Some("suspicious")));
    let bound = &f["findings"][0];
    assert_eq!(bound["kind"], "bound_exceeded", "{f}");
    assert_eq!(bound["location"], "level1.zip!level2.zip!level3.zip!level4.zip");
    assert_eq!((bound["atlas"].as_str(), bound["owasp"].as_str()), (Some("AML.T0010"), Some("LLM04:2025")));
    let (code, f) = check_one("hostile/bomb_member.tar.bz2");
    assert_eq!((code, f["verdict"].as_str()), (Some(1), Some("suspicious")), "{:?}", findings(&f));
    assert!(has(&f, "bound_exceeded", "zeros.bin"), "{:?}", findings(&f));
    let (code, twin) = check_one("benign/nested_in_depth.zip");
    assert_eq!((code, twin["verdict"].as_str()), (Some(0), Some("safe")), "{:?}", findings(&twin));
}

#[test]
fn bundles_name_the_code_that_runs_and_flag_it_when_it_spawns_or_connects() {
    let cases = [
        ("hostile/torchserve_hostile.mar", "dangerous_code", "subprocess.run (line 7)", "handler.py"),
        (
            "hostile/mlflow_pyfunc_hostile.zip",
            "dangerous_code",
            "socket.create_connection (line 4)",
            "model/code/features.py",
        ),
        ("hostile/nemo_hostile.nemo", "config_target", "subprocess.Popen", "./model_config.yaml"),
        ("hostile/skops_hostile.skops", "untrusted_type", "posix.system", "schema.json"),
    ];
    for (rel, kind, subject, location) in cases {
        let (code, f) = check_one(rel);
        assert_eq!((code, f["verdict"].as_str()), (Some(1), Some("dangerous")), "{rel}: {:?}", findings(&f));
        let found = f["findings"].as_array().unwrap().iter().find(|x| x["kind"] == kind).cloned().unwrap_or_default();
        assert_eq!((found["subject"].as_str(), found["location"].as_str()), (Some(subject), Some(location)), "{rel}");
        assert_eq!(found["atlas"], "AML.T0011.000", "{rel}");
    }
    // The twins carry code too (TorchServe imports the handler): it is named, and safe.
    for (rel, named) in [
        ("benign/torchserve_ok.mar", Some("handler.py")),
        ("benign/mlflow_pyfunc_ok.zip", Some("model/code/features.py")),
        ("benign/nemo_ok.nemo", None),
        ("benign/skops_benign.skops", None),
    ] {
        let (code, f) = check_one(rel);
        assert_eq!((code, f["verdict"].as_str()), (Some(0), Some("safe")), "{rel}: {:?}", findings(&f));
        if let Some(named) = named {
            assert!(has(&f, "bundled_code", named), "{rel}: {:?}", findings(&f));
        }
    }
}

#[test]
fn scan_reports_an_archive_as_one_entry_listing_its_models_and_a_torch_zip_once() {
    let state = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for rel in ["hostile/nested_tgz_in_zip.zip", "benign/torchserve_ok.mar", "benign/torch_checkpoint.pt"] {
        let path = corpus(rel);
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    let doc = aiscout_e2e::run_scan_json(&[dir.path()], state.path(), &[]);
    let models = doc["models"].as_array().unwrap();
    assert_eq!(models.len(), 3, "{doc}");
    let by_name = |n: &str| models.iter().find(|m| m["path"].as_str().unwrap().ends_with(n)).unwrap().clone();
    let zip = by_name("nested_tgz_in_zip.zip");
    assert_eq!(zip["format"], "archive");
    assert_eq!(zip["metadata"]["contents"], serde_json::json!(["inner.tar.gz!model/weights.pkl (pickle)"]));
    assert_eq!(zip["metadata"]["extra"]["container"], "zip");
    assert_eq!(zip["safety"]["verdict"], "dangerous");
    assert_eq!(zip["sha256"].as_str().unwrap().len(), 64);
    let mar = by_name("torchserve_ok.mar");
    assert_eq!(
        (mar["format"].as_str(), mar["metadata"]["extra"]["bundle"].as_str()),
        (Some("archive"), Some("torchserve"))
    );
    assert_eq!(by_name("torch_checkpoint.pt")["format"], "pytorch");
}

#[test]
fn an_mlflow_pyfunc_directory_has_its_code_modules_scanned() {
    for (rel, verdict) in [("hostile/mlflow_pyfunc_dir", "dangerous"), ("benign/mlflow_pyfunc_dir_ok", "safe")] {
        let out = Command::new(agent_bin()).arg("check").arg("--json").arg(corpus(rel)).output().unwrap();
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        let dir = doc["files"].as_array().unwrap().iter().find(|f| f["format"] == "mlflow").cloned().unwrap();
        assert_eq!(dir["verdict"], verdict, "{rel}: {:?}", findings(&dir));
        assert!(has(&dir, "bundled_code", "code/features.py"), "{rel}: {:?}", findings(&dir));
        assert_eq!(has(&dir, "dangerous_code", "code/features.py"), verdict == "dangerous", "{rel}");
    }
}
