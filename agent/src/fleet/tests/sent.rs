//! Unit tests of [`super`] (the sent state): deltas from real scans of the fixtures, scoped
//! removals, and the crash mark.

use std::path::{Path, PathBuf};

use super::*;
use crate::fleet::payload::assets;
use crate::fleet::test_support::*;
use crate::report::DigestSource;

fn temp() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("fleet-state-").tempdir().unwrap()
}

/// A copy of the model fixtures in `dir/models`.
fn copied_fixtures(dir: &Path) -> PathBuf {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }
    let root = dir.join("models");
    copy(&fixtures(), &root);
    root
}

#[test]
fn a_fresh_state_needs_a_snapshot_then_an_unchanged_rescan_sends_nothing() {
    let dir = temp();
    let state = SentState::open(&dir.path().join("db")).unwrap();
    assert!(state.needs_snapshot().unwrap());
    let root = copied_fixtures(dir.path());
    let state_dir = dir.path().join("state");
    let first = assets(&scan_models(&root, Some(&state_dir)));
    let delta = state.delta(&first, &[AssetKind::Model]).unwrap();
    assert_eq!(delta.upserts, first);
    assert!(delta.removals.is_empty());
    state.replace_all(&first).unwrap();
    assert!(!state.needs_snapshot().unwrap());

    // The rescan answers digests from the hash cache: `digest_source` changes, nothing else.
    let report = scan_models(&root, Some(&state_dir));
    assert!(report.models.iter().any(|m| m.digest_source == DigestSource::Cache));
    let second = assets(&report);
    assert_ne!(first, second, "digest_source differs between the scans");
    let delta = state.delta(&second, &[AssetKind::Model]).unwrap();
    assert!(delta.is_empty(), "{delta:?}");
}

#[test]
fn a_rescan_of_some_directories_removes_only_below_them() {
    let dir = temp();
    let state = SentState::open(&dir.path().join("db")).unwrap();
    let recorded = [
        asset(AssetKind::Model, "/m/a/x.gguf", 1),
        asset(AssetKind::Model, "/m/a/sub/y.gguf", 1),
        asset(AssetKind::Model, "/m/ab/z.gguf", 1),
        asset(AssetKind::Model, "/m/saved", 1),
        asset(AssetKind::Model, "/m/other/w.gguf", 1),
        asset(AssetKind::Framework, "/m/a:torch", 1),
    ];
    state.replace_all(&recorded).unwrap();
    // `/m/a` now holds only a new file; `/m/saved` (a directory model) is gone.
    let found = [asset(AssetKind::Model, "/m/a/new.gguf", 1)];
    let dirs = [PathBuf::from("/m/a/"), PathBuf::from("/m/saved"), PathBuf::from("/m/a/sub")];
    let delta = state.delta_under(&found, AssetKind::Model, &dirs).unwrap();
    assert_eq!(delta.upserts, found);
    let removed: Vec<&str> = delta.removals.iter().map(|r| r.local_key.as_str()).collect();
    // `/m/ab` is not below `/m/a`, frameworks are another kind, and the overlapping
    // `/m/a/sub` does not name `y.gguf` twice.
    assert_eq!(removed, ["/m/a/sub/y.gguf", "/m/a/x.gguf", "/m/saved"]);
}

#[test]
fn touching_changing_and_removing_files_give_one_change_each() {
    let dir = temp();
    let state = SentState::open(&dir.path().join("db")).unwrap();
    let root = copied_fixtures(dir.path());
    state.replace_all(&assets(&scan_models(&root, None))).unwrap();

    // Touched: only `modified` changes.
    let touched = root.join("tiny.onnx");
    let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options().write(true).open(&touched).unwrap().set_modified(when).unwrap();
    let delta = state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap();
    assert!(delta.removals.is_empty(), "{:?}", delta.removals);
    let upserted: Vec<&str> = delta.upserts.iter().map(|a| a.local_key.as_str()).collect();
    assert_eq!(upserted, vec![touched.to_str().unwrap()]);
    state.record(&delta).unwrap();
    assert!(state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap().is_empty());

    // Changed content: another valid array in place of weights.npy.
    let changed = root.join("weights.npy");
    std::fs::copy(root.join("weights_v2.npy"), &changed).unwrap();
    let delta = state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap();
    assert!(delta.removals.is_empty());
    assert_eq!(delta.upserts.len(), 1, "{:?}", delta.upserts);
    assert_eq!(delta.upserts[0].local_key, changed.to_str().unwrap());
    state.record(&delta).unwrap();

    // Removed.
    let removed = root.join("tiny.tflite");
    std::fs::remove_file(&removed).unwrap();
    let delta = state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap();
    assert!(delta.upserts.is_empty(), "{:?}", delta.upserts);
    assert_eq!(
        delta.removals,
        vec![v1::AssetRemoval { kind: AssetKind::Model.into(), local_key: removed.to_str().unwrap().into() }]
    );
    state.record(&delta).unwrap();
    assert!(state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap().is_empty());
}

#[test]
fn scope_limits_removals_to_the_kinds_scanned() {
    let dir = temp();
    let state = SentState::open(&dir.path().join("db")).unwrap();
    let mut all = assets(&scan_models(&fixtures(), None));
    let models = all.len();
    all.extend(assets(&inventory_report()));
    state.replace_all(&all).unwrap();

    // A runtimes-only pass that no longer sees the first runtime.
    let mut runtimes: Vec<v1::Asset> = all.iter().filter(|a| a.kind() == AssetKind::Runtime).cloned().collect();
    assert_eq!(runtimes.len(), 2);
    let gone = runtimes.remove(0);
    let delta = state.delta(&runtimes, &[AssetKind::Runtime]).unwrap();
    assert!(delta.upserts.is_empty());
    assert_eq!(delta.removals, vec![v1::AssetRemoval { kind: gone.kind, local_key: gone.local_key.clone() }]);

    // No scope: nothing removed; a repeated kind in scope: removals listed once.
    assert!(state.delta(&runtimes, &[]).unwrap().is_empty());
    let delta = state.delta(&runtimes, &[AssetKind::Runtime, AssetKind::Runtime, AssetKind::Model]).unwrap();
    assert_eq!(delta.removals.len(), models + 1);
    assert_eq!(delta.removals.iter().filter(|r| r.kind() == AssetKind::Model).count(), models);
}

#[test]
fn replace_all_forgets_entries_the_snapshot_lacks() {
    let dir = temp();
    let state = SentState::open(&dir.path().join("db")).unwrap();
    let a = asset(AssetKind::Tooling, "a", 1);
    let b = asset(AssetKind::Tooling, "b", 1);
    state.replace_all(&[a.clone(), b.clone()]).unwrap();
    state.replace_all(std::slice::from_ref(&b)).unwrap();
    // `a` is unknown again (an upsert), and `b` is all there is to remove.
    let delta = state.delta(std::slice::from_ref(&a), &[AssetKind::Tooling]).unwrap();
    assert_eq!(delta.upserts, vec![a]);
    assert_eq!(delta.removals, vec![v1::AssetRemoval { kind: b.kind, local_key: "b".into() }]);
}

#[test]
fn state_survives_reopening_and_a_crash_after_begin_forces_a_snapshot() {
    let dir = temp();
    let all = assets(&inventory_report());
    {
        SentState::open(&dir.path().join("db")).unwrap().replace_all(&all).unwrap();
    }
    {
        let state = SentState::open(&dir.path().join("db")).unwrap();
        assert!(!state.needs_snapshot().unwrap());
        let scope = [AssetKind::Framework, AssetKind::Runtime, AssetKind::Tooling];
        assert!(state.delta(&all, &scope).unwrap().is_empty());
        // Spooling starts, and the agent dies before recording.
        state.begin().unwrap();
    }
    let state = SentState::open(&dir.path().join("db")).unwrap();
    assert!(state.needs_snapshot().unwrap());
    state.record(&Delta::default()).unwrap();
    assert!(!state.needs_snapshot().unwrap());
}
