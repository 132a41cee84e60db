//! What a hostile agent cannot make the store do (`store::limits`): oversized or absurd input is
//! refused or rejected per entry, its clock does not date shared assets, a flood of its
//! sightings neither hides another host's verdict nor grows the store without bound, and a
//! page stays small whatever was stored.

use super::*;
use crate::store::limits::{self, AgentQuota, MAX_PAGE_BYTES};
use crate::store::{StoreError, Verdict};

/// A model entry with a safety verdict.
fn judged(path: &str, sha: &str, verdict: &str) -> IngestAsset {
    IngestAsset {
        kind: AssetKind::Model,
        local_key: path.to_owned(),
        json: format!(r#"{{"path":"{path}","format":"pickle","sha256":"{sha}","safety":{{"verdict":"{verdict}"}}}}"#),
    }
}

#[test]
fn a_sequence_far_ahead_is_refused_and_the_stream_goes_on() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A)]));
    let forged = delta(1 + limits::MAX_SEQUENCE_JUMP + 1, 1_000, vec![model("/forged", SHA_B)]);
    let err = store.apply_batch("a", &forged).unwrap_err();
    assert!(matches!(err, StoreError::InvalidBatch { .. }), "{err:?}");
    assert!(err.to_string().contains("more than 16777216 ahead of the last applied 1"), "{err}");
    // Nothing of it was kept, and the next real batch applies rather than looking old.
    assert_eq!(store.agent("a").unwrap().unwrap().last_sequence, 1);
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &delta(2, 2_000, vec![model("/b", SHA_B)])) else {
        panic!("the next batch applies")
    };
    assert_eq!(summary.upserted, 1);
    // A gap within the window is an honest one (a compacted spool): applied.
    let within = delta(2 + limits::MAX_SEQUENCE_JUMP, 3_000, vec![]);
    assert!(matches!(apply(&store, "a", &within), ApplyOutcome::Gap { .. }));
}

#[test]
fn a_batch_with_too_many_entries_is_refused_whole() {
    let store = store_with_two_agents();
    let upserts = (0..=limits::MAX_ENTRIES_PER_BATCH).map(|i| model(&format!("/m/{i}"), SHA_A)).collect();
    let err = store.apply_batch("a", &delta(1, 1_000, upserts)).unwrap_err();
    assert!(err.to_string().contains("10001 entries, over the 10000"), "{err}");
    assert_eq!(store.agent("a").unwrap().unwrap().last_sequence, 0);
    assert_eq!(model_count(&store), 0);
}

fn model_count(store: &dyn Store) -> u64 {
    store.assets(&of_kind(AssetKind::Model), &PageRequest::default()).unwrap().total
}

#[test]
fn entries_over_a_bound_are_rejected_alone_with_their_reason() {
    let store = store_with_two_agents();
    let long_key = format!("/{}", "k".repeat(limits::MAX_LOCAL_KEY_BYTES));
    let huge = IngestAsset {
        kind: AssetKind::Model,
        local_key: "/huge".into(),
        json: format!(r#"{{"path":"/huge","sha256":"{SHA_B}","pad":"{}"}}"#, "x".repeat(limits::MAX_ENTRY_JSON_BYTES)),
    };
    let deep = IngestAsset {
        kind: AssetKind::Model,
        local_key: "/deep".into(),
        json: format!(r#"{{"path":"/deep","sha256":"{SHA_B}","x":{}0{}}}"#, "[".repeat(100), "]".repeat(100)),
    };
    let far_path = format!("/{}", "p".repeat(limits::MAX_LOCATION_BYTES));
    let long_path = IngestAsset {
        kind: AssetKind::Model,
        local_key: "/short-key".into(),
        json: format!(r#"{{"path":"{far_path}","sha256":"{SHA_B}"}}"#),
    };
    let batch = delta(1, 1_000, vec![model(&long_key, SHA_B), huge, deep, long_path, model("/ok", SHA_A)]);
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &batch) else { panic!() };
    assert_eq!(summary.upserted, 1);
    let reasons: Vec<&str> = summary.rejected.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons[0].starts_with("local key of 4097 bytes is over 4096"), "{reasons:?}");
    assert!(reasons[1].starts_with("entry json of"), "{reasons:?}");
    assert!(reasons[2].contains("deeper than 32"), "{reasons:?}");
    assert!(reasons[3].starts_with("location of 4097 bytes"), "{reasons:?}");
    // The summary never carries a huge key back.
    assert!(summary.rejected[0].local_key.len() <= 256);
    assert_eq!(model_count(&store), 1, "only /ok is stored");
}

#[test]
fn host_facts_over_a_bound_are_not_stored() {
    let store = store_with_two_agents();
    let mut batch = delta(1, 1_000, vec![]);
    batch.host = Some(host_facts("good-name", "fp-a"));
    apply(&store, "a", &batch);
    let mut batch = delta(2, 2_000, vec![model("/m", SHA_A)]);
    batch.host = Some(host_facts(&"h".repeat(4 << 20), "fp-a"));
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &batch) else { panic!() };
    assert!(summary.host_rejected.as_deref().is_some_and(|r| r.starts_with("hostname of 4194304 bytes")));
    assert_eq!(summary.upserted, 1, "the rest of the batch is stored");
    let agent = store.agent("a").unwrap().unwrap();
    assert_eq!(agent.reported_hostname.as_deref(), Some("good-name"));
    assert_eq!(agent.hostname, "host-a");
}

#[test]
fn an_agent_clock_dates_its_own_sightings_never_a_shared_asset() {
    let store = store_with_two_agents();
    // b reports honestly; a claims to have seen the model in 1970 and far in the future.
    apply(&store, "b", &delta(1, 5_000, vec![model("/b", SHA_A)]));
    apply(&store, "a", &delta(1, 0, vec![model("/a-past", SHA_A)]));
    let mut future = delta(2, i64::MAX - 10, vec![model("/a-future", SHA_A)]);
    future.received_at_ms = 70_000;
    apply(&store, "a", &future);
    let summary = model_summary(&store);
    assert_eq!((summary.first_seen_ms, summary.last_seen_ms), (5, 70_000), "the collector's reception times");
    let detail = asset(&store, &summary.id);
    let future_sighting = detail.sightings.items.iter().find(|s| s.local_key == "/a-future").unwrap();
    assert_eq!(future_sighting.last_seen_ms, 70_000, "clamped to when it was received");
}

#[test]
fn a_flood_of_safe_sightings_does_not_hide_one_dangerous() {
    let store = store_with_two_agents();
    let safe: Vec<IngestAsset> = (0..200).map(|i| judged(&format!("/flood/{i}"), SHA_A, "safe")).collect();
    apply(&store, "a", &delta(1, 1_000, safe));
    apply(&store, "b", &delta(1, 1_000, vec![judged("/srv/m.pkl", SHA_A, "dangerous")]));
    let summary = model_summary(&store);
    assert_eq!(summary.verdict, Some(Verdict::Dangerous));
    assert_eq!(summary.verdict_hosts, [(Verdict::Dangerous, 1), (Verdict::Safe, 1)], "hosts, not sightings");
    // A verdict this collector does not know counts as unknown, worse than safe.
    apply(&store, "a", &delta(2, 2_000, vec![judged("/odd", SHA_B, "totally-fine\\n")]));
    let page = store.assets(&of_kind(AssetKind::Model), &PageRequest::default()).unwrap();
    let odd = page.items.iter().find(|a| a.identity == SHA_B).unwrap();
    assert_eq!(odd.verdict, Some(Verdict::Unknown));
    // Once the dangerous sighting is gone the asset is judged by what is live.
    let mut gone = delta(2, 3_000, vec![]);
    gone.removals = vec![removal(AssetKind::Model, "/srv/m.pkl")];
    apply(&store, "b", &gone);
    assert_eq!(model_summary_of(&store, SHA_A).verdict, Some(Verdict::Safe));
}

fn model_summary_of(store: &dyn Store, sha: &str) -> crate::store::AssetSummary {
    let page = store.assets(&of_kind(AssetKind::Model), &PageRequest::default()).unwrap();
    page.items.into_iter().find(|a| a.identity == sha).unwrap()
}

#[test]
fn live_sightings_of_one_asset_per_agent_are_bounded() {
    let store = store_with_two_agents();
    let max = usize::try_from(limits::MAX_LIVE_SIGHTINGS_PER_ASSET).unwrap();
    let copies: Vec<IngestAsset> = (0..max + 5).map(|i| model(&format!("/copy/{i}"), SHA_A)).collect();
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &delta(1, 1_000, copies)) else { panic!() };
    assert_eq!(summary.upserted, limits::MAX_LIVE_SIGHTINGS_PER_ASSET);
    assert_eq!(summary.rejected.len(), 5);
    assert!(summary.rejected[0].reason.contains("already has 1000 live sightings"), "{:?}", summary.rejected[0]);
    // Updating one that is stored is still fine, and another agent has its own bound.
    let ApplyOutcome::Applied(again) = apply(&store, "a", &delta(2, 2_000, vec![model("/copy/0", SHA_A)])) else {
        panic!()
    };
    assert_eq!((again.upserted, again.rejected.len()), (1, 0));
    assert_eq!(model_summary(&store).live_sightings, limits::MAX_LIVE_SIGHTINGS_PER_ASSET);
    // Removed sightings coming back count too: removing a thousand, adding a thousand new and
    // then the first thousand again does not make two thousand live.
    let mut remove_all = delta(3, 3_000, vec![]);
    remove_all.removals = (0..max).map(|i| removal(AssetKind::Model, &format!("/copy/{i}"))).collect();
    apply(&store, "a", &remove_all);
    let fresh: Vec<IngestAsset> = (0..max).map(|i| model(&format!("/fresh/{i}"), SHA_A)).collect();
    apply(&store, "a", &delta(4, 4_000, fresh));
    let back: Vec<IngestAsset> = (0..max).map(|i| model(&format!("/copy/{i}"), SHA_A)).collect();
    let ApplyOutcome::Applied(back) = apply(&store, "a", &delta(5, 5_000, back)) else { panic!() };
    assert_eq!(back.upserted, 0);
    assert_eq!(model_summary(&store).live_sightings, limits::MAX_LIVE_SIGHTINGS_PER_ASSET);
}

#[test]
fn an_agent_over_its_storage_quota_stores_no_more_but_keeps_streaming() {
    let store = store_with_quota(AgentQuota { max_stored_bytes: 2_000 });
    store.upsert_agent(&registration("a", "host-a", "fp-a", 10)).unwrap();
    let entries: Vec<IngestAsset> = (0..40).map(|i| framework(&format!("/venv/{i:02}"), "torch", "2.3.0")).collect();
    let ApplyOutcome::Applied(summary) = apply(&store, "a", &delta(1, 1_000, entries)) else { panic!() };
    assert!(summary.upserted > 5 && summary.upserted < 40, "{summary:?}");
    assert!(summary.rejected.iter().all(|r| r.reason.contains("quota of 2000 bytes")), "{:?}", summary.rejected);
    let agent = store.agent("a").unwrap().unwrap();
    assert!(agent.stored_bytes <= 2_000, "{}", agent.stored_bytes);
    // Removals still apply, and they make room again (removed sightings still count: history).
    let mut next = delta(2, 2_000, vec![]);
    next.removals = vec![removal(AssetKind::Framework, "/venv/00:torch")];
    let ApplyOutcome::Applied(removed) = apply(&store, "a", &next) else { panic!() };
    assert_eq!(removed.removed, 1);
    assert_eq!(store.agent("a").unwrap().unwrap().last_sequence, 2);
}

#[test]
fn stored_bytes_follow_inserts_updates_and_deletes() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/m", SHA_A)]));
    let expected = |store: &TestStore| -> i64 {
        store.count(if store.is_postgres() {
            "SELECT SUM(octet_length(entry_json::text) + octet_length(local_key) + octet_length(location))::bigint \
             FROM sightings WHERE agent_id = 'a'"
        } else {
            "SELECT SUM(length(CAST(entry_json AS BLOB)) + length(CAST(local_key AS BLOB)) \
             + length(CAST(location AS BLOB))) FROM sightings WHERE agent_id = 'a'"
        })
    };
    let stored = |store: &dyn Store| i64::try_from(store.agent("a").unwrap().unwrap().stored_bytes).unwrap();
    assert_eq!(stored(&store), expected(&store));
    apply(&store, "a", &delta(2, 2_000, vec![judged("/m", SHA_A, "suspicious")]));
    assert_eq!(stored(&store), expected(&store));
    store.execute("DELETE FROM sightings WHERE agent_id = 'a'");
    assert_eq!(stored(&store), 0);
}

#[test]
fn a_page_stays_small_whatever_was_stored_and_the_cursor_reaches_everything() {
    let store = store_with_two_agents();
    // 40 sightings of one asset with 200 KiB entries each: 8 MiB if read in one page.
    let big = |i: usize| IngestAsset {
        kind: AssetKind::Model,
        local_key: format!("/big/{i}"),
        json: format!(r#"{{"path":"/big/{i}","sha256":"{SHA_A}","pad":"{}"}}"#, "x".repeat(200 * 1024)),
    };
    for chunk in 0..4u64 {
        let upserts = (0..10).map(|i| big(usize::try_from(chunk).unwrap() * 10 + i)).collect();
        apply(&store, "a", &delta(chunk + 1, 1_000, upserts));
    }
    let id = format!("model:{SHA_A}");
    let mut page = PageRequest::first(PageRequest::MAX_LIMIT);
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let detail = store.asset(&id, &page).unwrap().unwrap();
        let bytes: usize = detail.sightings.items.iter().map(|s| s.json.len()).sum();
        assert!(bytes <= MAX_PAGE_BYTES + 256 * 1024, "a page of {bytes} bytes");
        seen += detail.sightings.items.len();
        pages += 1;
        match detail.sightings.next_cursor {
            Some(c) => page.after = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, 40);
    assert!(pages >= 2, "{pages} pages");
}
