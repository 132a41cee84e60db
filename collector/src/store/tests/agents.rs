//! Agent registration, revocation and fingerprint lookups.

use super::*;
use crate::store::StoreError;

#[test]
fn registration_refreshes_the_certificate_and_keeps_the_history() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A)]));
    let mut renewed = registration("a", "host-a2", "fp-a", 5_000);
    renewed.cert_serial = "serial-2".into();
    store.upsert_agent(&renewed).unwrap();
    let agent = store.agent("a").unwrap().unwrap();
    assert_eq!(agent.cert_serial, "serial-2");
    assert_eq!(agent.hostname, "host-a2");
    assert_eq!((agent.enrolled_at_ms, agent.last_sequence), (10, 1));
    assert_eq!(store.agent("zz").unwrap(), None);
}

#[test]
fn agents_sharing_a_machine_fingerprint_are_listed_oldest_first() {
    let store = store();
    store.upsert_agent(&registration("new", "h", "fp-shared", 300)).unwrap();
    store.upsert_agent(&registration("old", "h", "fp-shared", 100)).unwrap();
    store.upsert_agent(&registration("other", "h2", "fp-other", 200)).unwrap();
    store.revoke_agent("old", 400).unwrap();
    let found = store.agents_with_machine_fingerprint("fp-shared").unwrap();
    let ids: Vec<_> = found.iter().map(|a| (a.agent_id.as_str(), a.revoked_at_ms)).collect();
    assert_eq!(ids, [("old", Some(400)), ("new", None)]);
    assert!(store.agents_with_machine_fingerprint("fp-none").unwrap().is_empty());
}

#[test]
fn a_revoked_agent_stays_revoked() {
    let store = store_with_two_agents();
    apply(&store, "a", &delta(1, 50, vec![model("/a", SHA_A)]));
    store.revoke_agent("a", 100).unwrap();
    let assets = store.assets(&WITH_REMOVED, &PageRequest::default()).unwrap();
    assert_eq!(assets.items[0].live_sightings, 0, "a revoked agent's sightings are history");
    store.revoke_agent("a", 200).unwrap();
    assert_eq!(store.agent("a").unwrap().unwrap().revoked_at_ms, Some(100));
    let err = store.upsert_agent(&registration("a", "host-a", "fp-a", 300)).unwrap_err();
    assert_eq!(err.to_string(), "agent a is revoked");
    let err = store.revoke_agent("ghost", 1).unwrap_err();
    assert!(matches!(err, StoreError::UnknownAgent { agent_id } if agent_id == "ghost"));
}

/// Enrolls `agent_id` on the host with fingerprint `fp` and install key digest `key`.
fn enroll(store: &dyn Store, agent_id: &str, fp: &str, key: &str, now_ms: i64) -> HostStatus {
    store.enroll_agent(&registration(agent_id, "h", fp, now_ms), Some(key)).unwrap()
}

fn statuses(store: &dyn Store, ids: &[&str]) -> Vec<IdentityStatus> {
    ids.iter().map(|id| store.agent(id).unwrap().unwrap().identity_status()).collect()
}

fn live_sightings(store: &dyn Store) -> (u64, u64) {
    let assets = store.assets(&WITH_REMOVED, &PageRequest::default()).unwrap();
    (assets.items[0].live_sightings, assets.items[0].live_hosts)
}

#[test]
fn a_proven_reinstall_supersedes_the_earlier_agent_at_its_first_complete_snapshot() {
    let store = store();
    assert_eq!(enroll(&store, "old", "fp", "key-1", 10), HostStatus::New);
    apply(&store, "old", &delta(1, 100, vec![model("/m", SHA_A)]));
    // The same installation enrolls again (its certificate was lost, its install key kept).
    let status = enroll(&store, "new", "fp", "key-1", 200);
    assert_eq!(status, HostStatus::Reinstall { superseded: vec!["old".into()] });
    // Nothing changes until the new agent has stated the host whole.
    assert_eq!(statuses(&store, &["old", "new"]), [IdentityStatus::Unique, IdentityStatus::Unique]);
    apply(&store, "new", &snapshot_part(1, 9, false, 300, vec![model("/m", SHA_A)]));
    assert_eq!(store.agent("old").unwrap().unwrap().superseded_by, None, "an open snapshot settles nothing");
    assert_eq!(live_sightings(&store), (2, 2));
    apply(&store, "new", &snapshot_part(2, 9, true, 400, vec![]));
    assert_eq!(statuses(&store, &["old", "new"]), [IdentityStatus::Superseded, IdentityStatus::Unique]);
    let old = store.agent("old").unwrap().unwrap();
    assert_eq!((old.superseded_by.as_deref(), old.superseded_at_ms), (Some("new"), Some(405)));
    // The model is sighted once on the host.
    assert_eq!(live_sightings(&store), (1, 1));
    // A host with no fingerprint is never matched with another.
    assert_eq!(enroll(&store, "x", "", "k", 500), HostStatus::New);
    assert_eq!(enroll(&store, "y", "", "k", 600), HostStatus::New);
}

#[test]
fn enrolling_with_another_hosts_fingerprint_takes_nothing_over() {
    let store = store();
    enroll(&store, "victim", "fp-victim", "victim-key", 10);
    apply(&store, "victim", &delta(1, 100, vec![model("/srv/m.gguf", SHA_A)]));
    // An attacker claims the victim's fingerprint with its own install key (it cannot know the
    // victim's), then states an empty host, complete.
    let status = enroll(&store, "attacker", "fp-victim", "attacker-key", 200);
    assert_eq!(status, HostStatus::Clone { of: vec!["victim".into()] });
    apply(&store, "attacker", &snapshot_part(1, 5, true, 300, vec![]));
    assert_eq!(statuses(&store, &["victim", "attacker"]), [IdentityStatus::Clone, IdentityStatus::Clone]);
    let victim = store.agent("victim").unwrap().unwrap();
    assert_eq!(victim.superseded_by, None);
    assert_eq!(live_sightings(&store), (1, 1), "the victim's sighting stays live");
    // Without an install key there is no proof either.
    let keyless = store.enroll_agent(&registration("keyless", "h", "fp-victim", 400), None).unwrap();
    assert!(matches!(keyless, HostStatus::Clone { .. }));
    apply(&store, "keyless", &snapshot_part(1, 6, true, 500, vec![]));
    assert_eq!(live_sightings(&store), (1, 1));
}

#[test]
fn a_superseded_agent_that_speaks_again_makes_both_clones() {
    let store = store();
    enroll(&store, "first", "fp", "key-1", 10);
    apply(&store, "first", &delta(1, 100, vec![model("/m", SHA_A)]));
    enroll(&store, "second", "fp", "key-1", 200);
    apply(&store, "second", &snapshot_part(1, 3, true, 250, vec![model("/m", SHA_A)]));
    assert_eq!(statuses(&store, &["first", "second"]), [IdentityStatus::Superseded, IdentityStatus::Unique]);
    assert!(store.resurface_agent("first", 300).unwrap());
    assert!(!store.resurface_agent("first", 400).unwrap(), "resurfacing happens once");
    assert!(!store.resurface_agent("second", 400).unwrap());
    assert_eq!(statuses(&store, &["first", "second"]), [IdentityStatus::Clone, IdentityStatus::Clone]);
    assert_eq!(store.agent("first").unwrap().unwrap().clone_detected_at_ms, Some(300));
    // A third enrollment with the fingerprint joins the clone group and supersedes no one.
    let status = enroll(&store, "third", "fp", "key-3", 500);
    assert_eq!(status, HostStatus::Clone { of: vec!["first".into(), "second".into()] });
    assert_eq!(
        statuses(&store, &["first", "second", "third"]),
        [IdentityStatus::Clone, IdentityStatus::Clone, IdentityStatus::Clone]
    );
    // The resurfaced agent's sightings reopen with its snapshot.
    apply(&store, "first", &snapshot_part(2, 7, true, 600, vec![model("/m", SHA_A)]));
    assert_eq!(live_sightings(&store).0, 2);
    assert!(matches!(store.resurface_agent("ghost", 1), Err(StoreError::UnknownAgent { .. })));
}

#[test]
fn revoked_agents_are_neither_superseded_nor_resurfaced() {
    let store = store();
    enroll(&store, "gone", "fp", "key-1", 10);
    store.revoke_agent("gone", 20).unwrap();
    assert_eq!(enroll(&store, "next", "fp", "key-1", 30), HostStatus::New);
    assert!(!store.resurface_agent("gone", 40).unwrap());
    assert_eq!(statuses(&store, &["gone", "next"]), [IdentityStatus::Revoked, IdentityStatus::Unique]);
    let next = store.agent("next").unwrap().unwrap();
    assert_eq!(next.install_key_sha256.as_deref(), Some("key-1"));
}

#[test]
fn update_reports_are_kept_per_agent_shown_with_the_host_and_tallied_per_cohort() {
    use crate::store::{RolloutTally, UpdateRecord};
    let store = store_with_two_agents();
    store.upsert_agent(&registration("c", "host-c", "fp-c", 30)).unwrap();
    let report = |cohort: &str, running: &str, state: &str, version: &str| UpdateRecord {
        channel: "stable".into(),
        cohort: cohort.into(),
        agent_version: running.into(),
        state: state.into(),
        version: version.into(),
        detail: String::new(),
        reported_at_ms: 100,
    };
    let tally = |cohort: &str| store.rollout_tally("stable", cohort, "0.2.0", "AB").unwrap();
    assert_eq!(tally("canary"), RolloutTally::default());
    store.record_update("a", &report("canary", "0.2.0", "updated", "0.2.0")).unwrap();
    store.record_update("b", &report("canary", "0.1.0", "rolled_back", "0.2.0")).unwrap();
    store.record_update("c", &report("canary", "0.1.0", "rolled_back", "0.2.0")).unwrap();
    assert_eq!(tally("canary"), RolloutTally { running: 1, rolled_back: 0 }, "no download, no rollback to count");
    store.record_download("b", "ab", 110).unwrap();
    store.record_download("c", "ab", 120).unwrap();
    assert_eq!(tally("canary"), RolloutTally { running: 1, rolled_back: 2 });
    assert_eq!(tally("default"), RolloutTally::default(), "another cohort counts apart");
    assert_eq!(store.rollout_tally("beta", "canary", "0.2.0", "ab").unwrap(), RolloutTally::default());
    // The last report replaces the one before; a revoked agent no longer counts.
    store.record_update("c", &report("canary", "0.2.0", "updated", "0.2.0")).unwrap();
    assert_eq!(tally("canary"), RolloutTally { running: 2, rolled_back: 1 });
    store.revoke_agent("b", 200).unwrap();
    assert_eq!(tally("canary"), RolloutTally { running: 2, rolled_back: 0 });
    // The hosts listing carries the report and the version the agent runs now.
    let hosts = store.hosts(&HostFilter::default(), &PageRequest::default()).unwrap().items;
    let a = hosts.iter().find(|h| h.agent.agent_id == "a").unwrap();
    assert_eq!(a.update.as_ref().map(|u| u.state.as_str()), Some("updated"));
    assert_eq!(a.agent.agent_version, "0.2.0");
    let b = hosts.iter().find(|h| h.agent.agent_id == "b").unwrap();
    assert_eq!(b.agent.agent_version, "0.1.0");
    assert!(store.record_update("ghost", &report("canary", "0.1.0", "current", "")).is_err());
}
