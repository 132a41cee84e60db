//! Deduplication, idempotency, snapshots, removals and atomicity of `apply_batch`.

use super::*;
use crate::store::{ApplySummary, SnapshotProgress, StoreError, ASSET_SEEN_RESOLUTION_MS};

#[test]
fn same_model_on_two_agents_is_one_asset_with_two_sightings() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/home/a/m.gguf", SHA_A)]));
    apply(&store, "b", &delta(1, 62_000, vec![model("/srv/b/model.gguf", &SHA_A.to_ascii_uppercase())]));

    let models = store.assets(&of_kind(AssetKind::Model), &PageRequest::default()).unwrap();
    assert_eq!(models.total, 1);
    let summary = &models.items[0];
    assert_eq!(summary.id, format!("model:{SHA_A}"));
    assert_eq!((summary.live_sightings, summary.live_hosts), (2, 2));
    assert_eq!(summary.hostnames, ["host-a", "host-b"]);
    // Asset times are the collector's (received 5 ms after the agents observed).
    assert_eq!((summary.first_seen_ms, summary.last_seen_ms), (1_005, 62_005));

    let detail = asset(&store, &summary.id);
    let places: Vec<_> =
        detail.sightings.items.iter().map(|s| (s.agent_id.as_str(), s.path_or_environment.as_str())).collect();
    assert_eq!(places, [("a", "/home/a/m.gguf"), ("b", "/srv/b/model.gguf")]);
}

#[test]
fn an_asset_last_seen_moves_by_its_resolution_and_sightings_exactly() {
    let store = store_with_two_agents();
    let at = |agent: &str, sequence: u64, observed: i64| {
        apply(&store, agent, &delta(sequence, observed, vec![model(&format!("/{agent}.gguf"), SHA_A)]));
        let summary = model_summary(&store);
        (summary.first_seen_ms, summary.last_seen_ms)
    };
    assert_eq!(at("a", 1, 1_000), (1_005, 1_005));
    // Within the resolution the shared row is not rewritten, from any host.
    let within = 1_000 + ASSET_SEEN_RESOLUTION_MS - 1;
    assert_eq!(at("b", 1, within), (1_005, 1_005));
    assert_eq!(at("a", 2, within), (1_005, 1_005));
    // Its sightings keep the exact times.
    let detail = asset(&store, &format!("model:{SHA_A}"));
    let seen: Vec<i64> = detail.sightings.items.iter().map(|s| s.last_seen_ms).collect();
    assert_eq!(seen, [within, within]);
    // At the resolution it moves; an earlier reception still moves first_seen back at once.
    let moved = 1_005 + ASSET_SEEN_RESOLUTION_MS;
    assert_eq!(at("b", 2, moved - 5), (1_005, moved));
    assert_eq!(at("a", 3, 0), (5, moved));
}

#[test]
fn frameworks_collapse_across_hosts_and_runtimes_stay_per_host() {
    let store = store_with_two_agents();
    let batch = |venv: &str| delta(1, 1_000, vec![framework(venv, "torch", "2.3.0"), runtime("ollama", 11434)]);
    apply(&store, "a", &batch("/home/a/venv"));
    apply(&store, "b", &batch("/opt/b/venv"));

    let frameworks = store.assets(&of_kind(AssetKind::Framework), &PageRequest::default()).unwrap();
    assert_eq!(frameworks.total, 1);
    assert_eq!(frameworks.items[0].identity, r#"["pypi","torch","2.3.0"]"#);
    assert_eq!(frameworks.items[0].live_sightings, 2);

    let runtimes = store.assets(&of_kind(AssetKind::Runtime), &PageRequest::default()).unwrap();
    assert_eq!(runtimes.total, 2);
    let mut hosts: Vec<_> = runtimes.items.iter().map(|r| r.hostnames.clone()).collect();
    hosts.sort();
    assert_eq!(hosts, [["host-a"], ["host-b"]]);
}

#[test]
fn a_replayed_batch_changes_nothing() {
    let store = store_with_two_agents();
    let first = delta(1, 1_000, vec![model("/m1", SHA_A), framework("/v", "vllm", "0.5.0")]);
    let mut second = delta(2, 2_000, vec![model("/m2", SHA_B)]);
    second.removals = vec![removal(AssetKind::Model, "/m1")];
    second.host = Some(host_facts("renamed-a", "fp-a"));
    apply(&store, "a", &first);
    apply(&store, "a", &second);
    let before = dump(&store);

    // The same sequences again, even with other content and later times, are acknowledged only.
    let mut replay = delta(2, 9_000, vec![model("/m3", SHA_C)]);
    replay.removals = vec![removal(AssetKind::Model, "/m2")];
    replay.host = Some(host_facts("other", "fp-x"));
    assert_eq!(apply(&store, "a", &replay), ApplyOutcome::AlreadyApplied { last_sequence: 2 });
    assert_eq!(apply(&store, "a", &first), ApplyOutcome::AlreadyApplied { last_sequence: 2 });
    assert_eq!(dump(&store), before);
    assert_eq!(store.agent("a").unwrap().unwrap().last_seen_ms, Some(2_005));
}

#[test]
fn a_snapshot_in_two_parts_removes_what_no_part_named_after_the_last_part() {
    let store = store_with_two_agents();
    let everything =
        vec![model("/a", SHA_A), model("/b", SHA_B), model("/c", SHA_C), framework("/v", "torch", "2.3.0")];
    apply(&store, "a", &delta(1, 1_000, everything.clone()));
    apply(&store, "b", &delta(1, 1_000, everything)); // another host's sightings are not touched

    let part1 = apply(&store, "a", &snapshot_part(2, 7, false, 2_000, vec![model("/a", SHA_A)]));
    assert!(matches!(part1, ApplyOutcome::Applied(ApplySummary { snapshot: SnapshotProgress::Open, .. })));
    for key in ["/b", "/c", "/v:torch"] {
        assert_eq!(sighting(&store, "a", key).removed_at_ms, None, "{key} removed before the last part");
    }

    let part2 = apply(&store, "a", &snapshot_part(3, 7, true, 3_000, vec![framework("/v", "torch", "2.3.0")]));
    let ApplyOutcome::Applied(summary) = part2 else { panic!("{part2:?}") };
    assert_eq!(summary.snapshot, SnapshotProgress::Closed { removed: 2 });
    assert_eq!(sighting(&store, "a", "/a").removed_at_ms, None);
    assert_eq!(sighting(&store, "a", "/v:torch").removed_at_ms, None);
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, Some(3_000));
    assert_eq!(sighting(&store, "a", "/c").removed_at_ms, Some(3_000));
    for key in ["/a", "/b", "/c", "/v:torch"] {
        assert_eq!(sighting(&store, "b", key).removed_at_ms, None);
    }
    let b_asset = asset(&store, &format!("model:{SHA_B}")).asset;
    assert_eq!((b_asset.live_sightings, b_asset.hostnames.clone()), (1, vec!["host-b".to_owned()]));
    // Nothing is named by an open snapshot once it is closed.
    assert_eq!(named_by_open_snapshots(&store), 0);
}

#[test]
fn a_snapshot_entry_rejected_at_a_live_key_keeps_that_sighting_live() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/kept", SHA_A), model("/gone", SHA_B)]));
    // The agent's entry at /kept is now unreadable: rejected, but it still names /kept.
    let unreadable = IngestAsset { kind: AssetKind::Model, local_key: "/kept".into(), json: "not json".into() };
    let mut last = snapshot_part(2, 9, true, 2_000, vec![unreadable, model("/new", SHA_C)]);
    last.mode = BatchMode::SnapshotPart { snapshot_id: 9, first_part: true, last_part: true };
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &last) else { panic!() };
    assert_eq!((summary.upserted, summary.rejected.len()), (1, 1), "{summary:?}");
    assert_eq!(summary.snapshot, SnapshotProgress::Closed { removed: 1 });
    assert_eq!(sighting(&store, "a", "/kept").removed_at_ms, None);
    assert_eq!(sighting(&store, "a", "/gone").removed_at_ms, Some(2_000));
    // The next snapshot that does not name it removes it.
    let mut next = snapshot_part(3, 10, true, 3_000, vec![model("/new", SHA_C)]);
    next.mode = BatchMode::SnapshotPart { snapshot_id: 10, first_part: true, last_part: true };
    apply(&store, "a", &next);
    assert_eq!(sighting(&store, "a", "/kept").removed_at_ms, Some(3_000));
}

/// What the backends keep of the keys the agents' open snapshots named: PostgreSQL records the
/// keys, SQLite marks the live sightings with the snapshot's epoch.
fn named_by_open_snapshots(store: &TestStore) -> i64 {
    if store.is_postgres() {
        store.count("SELECT COUNT(*) FROM snapshot_keys")
    } else {
        store.count(
            "SELECT COUNT(*) FROM sightings s JOIN agents a ON a.agent_id = s.agent_id \
             WHERE a.open_snapshot_id IS NOT NULL AND s.snapshot_epoch = a.snapshot_epoch",
        )
    }
}

#[test]
fn snapshot_parts_survive_a_reopen_of_the_collector() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    {
        let store = SqliteStore::open(&path).unwrap();
        store.upsert_agent(&registration("a", "host-a", "fp", 1)).unwrap();
        apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
        apply(&store, "a", &snapshot_part(2, 5, false, 2_000, vec![model("/a", SHA_A)]));
    }
    let store = SqliteStore::open(&path).unwrap();
    let closed = apply(&store, "a", &snapshot_part(3, 5, true, 3_000, vec![]));
    assert!(matches!(
        closed,
        ApplyOutcome::Applied(ApplySummary { snapshot: SnapshotProgress::Closed { removed: 1 }, .. })
    ));
    assert_eq!(sighting(&store, "a", "/a").removed_at_ms, None);
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, Some(3_000));
}

#[test]
fn a_sighting_seen_again_is_live_with_its_first_seen_kept() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
    apply(&store, "a", &snapshot_part(2, 1, true, 2_000, vec![model("/b", SHA_B)]));
    assert_eq!(sighting(&store, "a", "/a").removed_at_ms, Some(2_000));

    apply(&store, "a", &delta(3, 3_000, vec![model("/a", SHA_A)]));
    let again = sighting(&store, "a", "/a");
    assert_eq!((again.first_seen_ms, again.last_seen_ms, again.removed_at_ms), (1_000, 3_000, None));
    assert_eq!(asset(&store, &format!("model:{SHA_A}")).asset.live_sightings, 1);
}

#[test]
fn a_delta_removal_sets_removed_at() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![runtime("vllm", 8000), model("/a", SHA_A)]));
    let mut gone = delta(2, 2_000, vec![]);
    gone.removals = vec![removal(AssetKind::Runtime, "vllm:8000"), removal(AssetKind::Model, "/never-seen")];
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &gone) else { panic!() };
    assert_eq!(summary.removed, 1);
    let vllm = sighting(&store, "a", "vllm:8000");
    assert_eq!((vllm.last_seen_ms, vllm.removed_at_ms), (1_000, Some(2_000)));
    assert_eq!(sighting(&store, "a", "/a").removed_at_ms, None);
    let runtimes = store.assets(&of_kind(AssetKind::Runtime), &PageRequest::default()).unwrap();
    assert_eq!((runtimes.items[0].live_sightings, runtimes.items[0].hostnames.len()), (0, 0));
}

#[test]
fn a_file_rewritten_in_place_moves_its_sighting_to_the_new_model() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/m.gguf", SHA_A)]));
    apply(&store, "a", &delta(2, 2_000, vec![model("/m.gguf", SHA_B)]));
    let old = asset(&store, &format!("model:{SHA_A}"));
    assert_eq!(old.sightings.items[0].removed_at_ms, Some(2_000));
    assert_eq!(asset(&store, &format!("model:{SHA_B}")).sightings.items[0].removed_at_ms, None);
}

#[test]
fn a_gap_is_applied_and_reported() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A)]));
    let outcome = apply(&store, "a", &delta(4, 2_000, vec![model("/b", SHA_B)]));
    assert!(
        matches!(outcome, ApplyOutcome::Gap { expected: 2, summary: ApplySummary { upserted: 1, .. } }),
        "{outcome:?}"
    );
    assert_eq!(store.agent("a").unwrap().unwrap().last_sequence, 4);
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, None);
    // The missing sequences, arriving late, are below the last one: acknowledged, not applied.
    assert_eq!(apply(&store, "a", &delta(3, 1_500, vec![])), ApplyOutcome::AlreadyApplied { last_sequence: 4 });
}

#[test]
fn a_snapshot_hit_by_a_gap_removes_nothing() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
    apply(&store, "a", &snapshot_part(2, 9, false, 2_000, vec![model("/a", SHA_A)]));
    // Sequence 3 (a part naming /b) is lost.
    let last = apply(&store, "a", &snapshot_part(4, 9, true, 3_000, vec![]));
    let ApplyOutcome::Gap { expected: 3, summary } = last else { panic!("{last:?}") };
    assert_eq!(summary.snapshot, SnapshotProgress::ClosedIncomplete);
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, None);
    // The snapshot the server then asks for is contiguous and does remove.
    let repair = apply(&store, "a", &snapshot_part(5, 10, true, 4_000, vec![model("/a", SHA_A)]));
    assert!(matches!(
        repair,
        ApplyOutcome::Applied(ApplySummary { snapshot: SnapshotProgress::Closed { removed: 1 }, .. })
    ));
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, Some(4_000));
}

#[test]
fn a_gap_just_before_a_first_part_does_not_spoil_the_snapshot() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
    // Sequences 2–4 (deltas the agent's spool compacted away) are lost; the snapshot that
    // superseded them arrives whole.
    let mut first = snapshot_part(5, 9, false, 2_000, vec![model("/a", SHA_A)]);
    first.mode = BatchMode::SnapshotPart { snapshot_id: 9, first_part: true, last_part: false };
    assert!(matches!(apply(&store, "a", &first), ApplyOutcome::Gap { expected: 2, .. }));
    let last = apply(&store, "a", &snapshot_part(6, 9, true, 3_000, vec![]));
    assert!(
        matches!(last, ApplyOutcome::Applied(ApplySummary { snapshot: SnapshotProgress::Closed { removed: 1 }, .. })),
        "{last:?}"
    );
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, Some(3_000));
}

#[test]
fn a_new_snapshot_abandons_an_unfinished_one() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
    apply(&store, "a", &snapshot_part(2, 1, false, 2_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
    apply(&store, "a", &snapshot_part(3, 2, true, 3_000, vec![model("/a", SHA_A)]));
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, Some(3_000), "keys of snapshot 1 must not count");
}

#[test]
fn a_failed_transaction_leaves_no_partial_state() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
    apply(&store, "a", &snapshot_part(2, 3, false, 1_500, vec![model("/a", SHA_A)]));
    let before = dump(&store);
    let keys_before = named_by_open_snapshots(&store);
    assert_eq!(keys_before, 1, "/a, named by the open snapshot 3");
    store.fail_inserts_of_sighting("/poison");

    // Removal, new asset, framework and host facts come before the poisoned row.
    let mut batch = snapshot_part(
        3,
        3,
        true,
        2_000,
        vec![model("/c", SHA_C), framework("/v", "jax", "0.4.0"), model("/poison", SHA_B)],
    );
    batch.removals = vec![removal(AssetKind::Model, "/a")];
    batch.host = Some(host_facts("renamed", "fp-new"));
    let err = store.apply_batch("a", &batch).unwrap_err();
    assert!(matches!(err, StoreError::Backend { operation: "apply batch", .. }), "{err:?}");
    assert_eq!(dump(&store), before);
    let agent = store.agent("a").unwrap().unwrap();
    assert_eq!((agent.last_sequence, agent.hostname.as_str()), (2, "host-a"));
    assert_eq!(named_by_open_snapshots(&store), keys_before);

    // The sequence was not consumed: once the fault is gone the same batch applies.
    store.stop_failing_inserts();
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &batch) else { panic!() };
    assert_eq!((summary.upserted, summary.removed), (3, 1));
    // /b was named by no part of snapshot 3.
    assert_eq!(summary.snapshot, SnapshotProgress::Closed { removed: 1 });
    assert_eq!(sighting(&store, "a", "/b").removed_at_ms, Some(2_000));
    let agent = store.agent("a").unwrap().unwrap();
    assert_eq!((agent.hostname.as_str(), agent.reported_hostname.as_deref()), ("host-a", Some("renamed")));
}

#[test]
fn an_entry_without_identity_is_skipped_and_the_rest_stored() {
    let store = store_with_two_agents();
    let bad = IngestAsset { kind: AssetKind::Model, local_key: "/bad".into(), json: r#"{"sha256":"xyz"}"#.into() };
    let not_json = IngestAsset { kind: AssetKind::Tooling, local_key: "/t".into(), json: "{".into() };
    let outcome = apply(&store, "a", &delta(1, 1_000, vec![bad, model("/good", SHA_A), not_json]));
    let ApplyOutcome::Applied(summary) = outcome else { panic!() };
    assert_eq!(summary.upserted, 1);
    let rejected: Vec<_> = summary.rejected.iter().map(|r| (r.local_key.as_str(), r.reason.as_str())).collect();
    assert_eq!(rejected[0], ("/bad", "entry sha256 is not a sha-256 hex digest"));
    assert_eq!(rejected[1].0, "/t");
    assert_eq!(dump(&store).assets.len(), 1);
}

#[test]
fn unknown_revoked_and_malformed_batches_are_refused() {
    let store = store_with_two_agents();
    let err = store.apply_batch("nobody", &delta(1, 1, vec![])).unwrap_err();
    assert_eq!(err.to_string(), "agent nobody is not enrolled");
    let err = store.apply_batch("a", &delta(0, 1, vec![])).unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { sequence: 0, .. }), "{err:?}");
    let err = store.apply_batch("a", &snapshot_part(1, 0, true, 1, vec![])).unwrap_err();
    assert_eq!(err.to_string(), "batch 1 of agent a is invalid: snapshot id 0");
    store.revoke_agent("b", 50).unwrap();
    let err = store.apply_batch("b", &delta(1, 1, vec![model("/a", SHA_A)])).unwrap_err();
    assert!(matches!(err, StoreError::AgentRevoked { .. }), "{err:?}");
    assert!(dump(&store).assets.is_empty());
}

#[test]
fn host_facts_and_last_seen_follow_batches() {
    let store = store_with_two_agents();
    let mut batch = delta(1, 1_000, vec![]);
    batch.host = Some(host_facts("new-name", "fp-clone"));
    apply(&store, "a", &batch);
    let agent = store.agent("a").unwrap().unwrap();
    // A batch cannot rename a host: the enrolled name stays, the reported one is kept beside it.
    assert_eq!((agent.hostname.as_str(), agent.reported_hostname.as_deref()), ("host-a", Some("new-name")));
    assert_eq!(agent.reported_machine_fingerprint.as_deref(), Some("fp-clone"));
    assert_eq!(agent.machine_fingerprint, "fp-a");
    assert_eq!(agent.host_facts_json.as_deref(), Some(r#"{"hostname":"new-name","os":"Debian GNU/Linux 12"}"#));
    assert_eq!(agent.last_seen_ms, Some(1_005));
    // A batch without facts keeps them.
    apply(&store, "a", &delta(2, 2_000, vec![]));
    let agent = store.agent("a").unwrap().unwrap();
    assert_eq!((agent.reported_hostname.as_deref(), agent.last_seen_ms), (Some("new-name"), Some(2_005)));
}
