//! Pagination of the listings.

use super::*;
use crate::store::StoreError;

#[test]
fn host_pages_follow_the_cursor_without_repeats() {
    let store = store();
    for i in 0..5 {
        store.upsert_agent(&registration(&format!("agent-{i}"), &format!("h{i}"), "fp", i)).unwrap();
    }
    apply(&store, "agent-3", &delta(1, 1_000, vec![model("/a", SHA_A), model("/b", SHA_B)]));
    let first = store.hosts(&HostFilter::default(), &PageRequest::first(2)).unwrap();
    assert_eq!(first.total, 5);
    let ids =
        |p: &crate::store::Page<HostSummary>| p.items.iter().map(|h| h.agent.agent_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ["agent-0", "agent-1"]);
    assert_eq!(first.next_cursor.as_deref(), Some("agent-1"));
    // A host enrolled between pages sorts before the cursor and shifts nothing.
    store.upsert_agent(&registration("agent-00", "late", "fp", 9)).unwrap();
    let second = store.hosts(&HostFilter::default(), &PageRequest { after: first.next_cursor, limit: 2 }).unwrap();
    assert_eq!(ids(&second), ["agent-2", "agent-3"]);
    assert_eq!(second.items[1].live_sightings, 2);
    let third = store.hosts(&HostFilter::default(), &PageRequest { after: second.next_cursor, limit: 2 }).unwrap();
    assert_eq!((ids(&third), third.next_cursor, third.total), (vec!["agent-4".to_owned()], None, 6));
}

#[test]
fn limits_are_defaulted_and_clamped() {
    assert_eq!(PageRequest::first(0).effective_limit(), 100);
    assert_eq!(PageRequest::first(5000).effective_limit(), 1000);
    assert_eq!(PageRequest::first(7).effective_limit(), 7);
}

#[test]
fn asset_listing_filters_by_kind_and_pages_sightings() {
    let store = store_with_two_agents();
    let models: Vec<_> = (0..3).map(|i| model(&format!("/m{i}"), SHA_A)).collect();
    apply(&store, "a", &delta(1, 1_000, models));
    apply(&store, "b", &delta(1, 1_000, vec![model("/x", SHA_A), framework("/v", "torch", "2.3.0")]));
    let frameworks = store.assets(&of_kind(AssetKind::Framework), &PageRequest::default()).unwrap();
    assert_eq!((frameworks.total, frameworks.items[0].kind), (1, AssetKind::Framework));
    let all = store.assets(&WITH_REMOVED, &PageRequest::first(1)).unwrap();
    assert_eq!((all.total, all.items.len(), all.next_cursor.is_some()), (2, 1, true));

    let id = format!("model:{SHA_A}");
    let page1 = store.asset(&id, &PageRequest::first(3)).unwrap().unwrap();
    assert_eq!((page1.asset.live_sightings, page1.asset.live_hosts), (4, 2));
    assert_eq!((page1.sightings.items.len(), page1.sightings.total), (3, 4));
    let page2 = store.asset(&id, &PageRequest { after: page1.sightings.next_cursor, limit: 3 }).unwrap().unwrap();
    let keys: Vec<_> = page2.sightings.items.iter().map(|s| (s.agent_id.as_str(), s.local_key.as_str())).collect();
    assert_eq!((keys, page2.sightings.next_cursor), (vec![("b", "/x")], None));

    let err = store.asset(&id, &PageRequest { after: Some("nope".into()), limit: 1 }).unwrap_err();
    assert!(matches!(err, StoreError::InvalidCursor { .. }), "{err:?}");
    assert_eq!(store.asset("model:0000", &PageRequest::default()).unwrap(), None);
}

/// A model entry that an installed package shipped, with its verdict.
fn package_model(path: &str, sha: &str, verdict: &str) -> IngestAsset {
    IngestAsset {
        kind: AssetKind::Model,
        local_key: path.to_owned(),
        json: format!(
            r#"{{"path":"{path}","format":"pickle","sha256":"{sha}","group":null,"safety":{{"verdict":"{verdict}"}},
                "owner":{{"ecosystem":"pypi","name":"joblib","version":"1.6.0","environment":"/v"}}}}"#
        ),
    }
}

#[test]
fn package_files_are_listed_only_on_request_unless_dangerous() {
    let store = store_with_two_agents();
    let listed = |include_owned: bool| {
        let page = store.assets(&AssetFilter { include_owned, ..of_kind(AssetKind::Model) }, &PageRequest::default());
        let page = page.unwrap();
        let ids: Vec<(String, bool)> = page.items.iter().map(|a| (a.identity.clone(), a.owned)).collect();
        assert_eq!(page.total, ids.len() as u64);
        ids
    };
    // A: a package file on a; B: a dangerous package file; C: a user's model.
    apply(
        &store,
        "a",
        &delta(
            1,
            1_000,
            vec![
                package_model("/v/joblib/a.pkl", SHA_A, "safe"),
                package_model("/v/evil/b.pkl", SHA_B, "dangerous"),
                model("/home/u/c.gguf", SHA_C),
            ],
        ),
    );
    let (a, b, c) = (SHA_A.to_owned(), SHA_B.to_owned(), SHA_C.to_owned());
    // In asset id order: B, C, A.
    assert_eq!(listed(false), vec![(b.clone(), true), (c.clone(), false)]);
    assert_eq!(listed(true), vec![(b.clone(), true), (c.clone(), false), (a.clone(), true)]);
    // The same weights as host b's own file are a user model everywhere.
    apply(&store, "b", &delta(1, 2_000, vec![model("/home/w/copy.pkl", SHA_A)]));
    assert_eq!(listed(false), vec![(b.clone(), true), (c.clone(), false), (a.clone(), false)]);
    let detail = store.asset(&format!("model:{SHA_A}"), &PageRequest::default()).unwrap().unwrap();
    assert!(!detail.asset.owned);
    // Once b's copy is gone, A is a package file again; other kinds are never filtered.
    let gone = IngestBatch {
        removals: vec![removal(AssetKind::Model, "/home/w/copy.pkl")],
        ..delta(2, 3_000, vec![framework("/v", "joblib", "1.6.0")])
    };
    apply(&store, "b", &gone);
    assert_eq!(listed(false), vec![(b, true), (c, false)]);
    let all = store.assets(&WITH_REMOVED, &PageRequest::default()).unwrap();
    assert_eq!(all.total, 3);
}

#[test]
fn asset_disappearances_returns_and_verdict_changes_reach_the_audit_trail_whatever_removed_them() {
    let store = store_with_two_agents();
    let judged = |verdict: &str| IngestAsset {
        kind: AssetKind::Model,
        local_key: "/m.pkl".to_owned(),
        json: format!(
            r#"{{"path":"/m.pkl","format":"pickle","sha256":"{SHA_A}","group":null,"safety":{{"verdict":"{verdict}"}}}}"#
        ),
    };
    let kinds_since = |seq: u64| -> Vec<String> {
        let log = store.audit_log(None, &PageRequest::default()).unwrap();
        log.items
            .into_iter()
            .filter(|r| r.seq > seq && r.kind.starts_with("asset.") && r.kind != "asset.appeared")
            .map(|r| r.kind)
            .collect()
    };
    let last = || store.audit_log(None, &PageRequest::default()).unwrap().items.last().map_or(0, |r| r.seq);
    apply(&store, "a", &delta(1, 100, vec![judged("safe")]));
    assert_eq!(store.reconcile_asset_states(200).unwrap(), 0, "first sight: nothing to compare with");
    let mark = last();
    apply(&store, "a", &delta(2, 300, vec![judged("dangerous")]));
    assert_eq!(store.reconcile_asset_states(400).unwrap(), 1);
    assert_eq!(kinds_since(mark), ["asset.verdict_changed"]);
    let mark = last();
    apply(&store, "a", &IngestBatch { removals: vec![removal(AssetKind::Model, "/m.pkl")], ..delta(3, 500, vec![]) });
    store.reconcile_asset_states(600).unwrap();
    assert_eq!(kinds_since(mark), ["asset.disappeared"]);
    let mark = last();
    apply(&store, "b", &delta(1, 700, vec![judged("dangerous")]));
    store.reconcile_asset_states(800).unwrap();
    assert_eq!(kinds_since(mark), ["asset.reappeared"]);
    // Revoking the only holder makes it disappear too.
    let mark = last();
    store.revoke_agent("b", 900).unwrap();
    store.reconcile_asset_states(1000).unwrap();
    assert_eq!(kinds_since(mark), ["asset.disappeared"]);
    assert_eq!(store.reconcile_asset_states(1100).unwrap(), 0, "nothing changed since");
}
