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
    store.revoke_agent("a", 100).unwrap();
    store.revoke_agent("a", 200).unwrap();
    assert_eq!(store.agent("a").unwrap().unwrap().revoked_at_ms, Some(100));
    let err = store.upsert_agent(&registration("a", "host-a", "fp-a", 300)).unwrap_err();
    assert_eq!(err.to_string(), "agent a is revoked");
    let err = store.revoke_agent("ghost", 1).unwrap_err();
    assert!(matches!(err, StoreError::UnknownAgent { agent_id } if agent_id == "ghost"));
}
