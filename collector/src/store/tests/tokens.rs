//! Enrollment and API tokens.

use super::*;
use crate::store::{EnrollmentToken, NewApiToken, NewEnrollmentToken, Scope, StoreError, TokenError};

fn new_token(uses: u32, expires_at_ms: i64) -> NewEnrollmentToken {
    NewEnrollmentToken { uses, expires_at_ms, label: "team-ml".into(), now_ms: 100 }
}

#[test]
fn an_enrollment_token_allows_its_uses_then_is_exhausted() {
    let store = store();
    let token = store.create_enrollment_token(&new_token(2, 10_000)).unwrap();
    let first = store.consume_enrollment_token(token.secret.expose(), 200).unwrap();
    assert_eq!((first.token_id.as_str(), first.label.as_str(), first.uses_left), (token.id.as_str(), "team-ml", 1));
    assert_eq!(store.consume_enrollment_token(token.secret.expose(), 300).unwrap().uses_left, 0);
    let third = store.consume_enrollment_token(token.secret.expose(), 400).unwrap_err();
    assert!(matches!(&third, TokenError::Exhausted { token_id } if *token_id == token.id), "{third:?}");
    assert_eq!(third.to_string(), format!("enrollment token {} has no use left", token.id));
}

#[test]
fn an_expired_token_is_refused_without_spending_a_use() {
    let store = store();
    let token = store.create_enrollment_token(&new_token(1, 10_000)).unwrap();
    let err = store.consume_enrollment_token(token.secret.expose(), 10_000).unwrap_err();
    assert!(matches!(&err, TokenError::Expired { token_id } if *token_id == token.id), "{err:?}");
    let uses: i64 = store.count("SELECT uses_left FROM enrollment_tokens");
    assert_eq!(uses, 1);
    assert_eq!(store.consume_enrollment_token(token.secret.expose(), 9_999).unwrap().uses_left, 0);
}

#[test]
fn unknown_secrets_and_zero_uses_are_refused() {
    let store = store();
    let token = store.create_enrollment_token(&new_token(1, 10_000)).unwrap();
    let err = store.consume_enrollment_token(&format!("{}x", token.secret.expose()), 200).unwrap_err();
    assert!(matches!(err, TokenError::Unknown), "{err:?}");
    assert!(matches!(store.consume_enrollment_token("", 200), Err(TokenError::Unknown)));
    let err = store.create_enrollment_token(&new_token(0, 10_000)).unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { field: "uses", .. }), "{err:?}");
}

fn read_token(label: &str, now_ms: i64) -> NewApiToken {
    NewApiToken { label: label.into(), scopes: vec![Scope::Read], expires_at_ms: None, now_ms }
}

#[test]
fn api_tokens_verify_until_revoked() {
    let store = store();
    let token = store.create_api_token(&read_token("dashboard", 100)).unwrap();
    let other = store.create_api_token(&read_token("ci", 200)).unwrap();
    assert_ne!(token.secret, other.secret);
    let found = store.verify_api_token(token.secret.expose(), 250).unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.label.as_str(), found.created_at_ms), (token.id.as_str(), "dashboard", 100));
    assert_eq!(found.scopes, [Scope::Read]);
    assert_eq!(store.verify_api_token("aiscout_api_00", 250).unwrap(), None);
    // An enrollment secret is not an API token.
    let enroll = store.create_enrollment_token(&new_token(1, 10_000)).unwrap();
    assert_eq!(store.verify_api_token(enroll.secret.expose(), 250).unwrap(), None);
    assert!(store.revoke_api_token(&token.id, 300).unwrap());
    assert!(!store.revoke_api_token(&token.id, 400).unwrap());
    assert_eq!(store.verify_api_token(token.secret.expose(), 500).unwrap(), None);
    assert!(store.verify_api_token(other.secret.expose(), 500).unwrap().is_some());
}

#[test]
fn an_api_token_with_a_ttl_stops_at_its_expiry() {
    let store = store();
    let token =
        store.create_api_token(&NewApiToken { expires_at_ms: Some(1_000), ..read_token("short", 100) }).unwrap();
    assert!(store.verify_api_token(token.secret.expose(), 999).unwrap().is_some());
    assert_eq!(store.verify_api_token(token.secret.expose(), 1_000).unwrap(), None);
    let listed = store.list_api_tokens().unwrap();
    assert_eq!((listed.len(), listed[0].expires_at_ms, listed[0].revoked_at_ms), (1, Some(1_000), None));
}

#[test]
fn api_tokens_record_their_last_use_to_the_minute() {
    let store = store();
    let token = store.create_api_token(&read_token("dashboard", 100)).unwrap();
    let last_used = || store.list_api_tokens().unwrap()[0].last_used_at_ms;
    assert_eq!(last_used(), None, "never used");
    store.verify_api_token(token.secret.expose(), 1_000).unwrap().unwrap();
    assert_eq!(last_used(), Some(1_000));
    // Within the minute nothing is written; past it, the new time is.
    let seen = store.verify_api_token(token.secret.expose(), 30_000).unwrap().unwrap();
    assert_eq!((seen.last_used_at_ms, last_used()), (Some(1_000), Some(1_000)));
    store.verify_api_token(token.secret.expose(), 61_000).unwrap().unwrap();
    assert_eq!(last_used(), Some(61_000));
    // A refused secret records nothing.
    assert!(store.revoke_api_token(&token.id, 62_000).unwrap());
    assert_eq!(store.verify_api_token(token.secret.expose(), 200_000).unwrap(), None);
    assert_eq!(last_used(), Some(61_000));
}

#[test]
fn api_tokens_keep_the_scopes_they_were_given_and_need_one() {
    let store = store();
    let scoped = |scopes: Vec<Scope>| NewApiToken { scopes, ..read_token("t", 100) };
    let export = store.create_api_token(&scoped(vec![Scope::Admin, Scope::Export, Scope::Admin])).unwrap();
    let found = store.verify_api_token(export.secret.expose(), 200).unwrap().unwrap();
    assert_eq!(found.scopes, [Scope::Export, Scope::Admin]);
    assert!(found.allows(Scope::Admin) && !found.allows(Scope::Read), "no scope implies another");
    let err = store.create_api_token(&scoped(Vec::new())).unwrap_err();
    assert!(matches!(err, StoreError::InvalidArgument { field: "scopes", .. }), "{err:?}");
    // A scope this build does not know (a newer collector wrote it) grants nothing.
    store.execute("UPDATE api_tokens SET scopes = 'read,launch-missiles'");
    assert_eq!(store.verify_api_token(export.secret.expose(), 300).unwrap().unwrap().scopes, [Scope::Read]);
}

#[test]
fn listings_show_ids_and_state_but_never_a_secret() {
    let store = store();
    let first = store.create_enrollment_token(&new_token(2, 10_000)).unwrap();
    let second = store.create_enrollment_token(&NewEnrollmentToken { now_ms: 150, ..new_token(1, 20_000) }).unwrap();
    store.consume_enrollment_token(first.secret.expose(), 200).unwrap();
    assert!(store.revoke_enrollment_token(&second.id, 300).unwrap());
    assert!(!store.revoke_enrollment_token(&second.id, 400).unwrap(), "already revoked");
    assert!(!store.revoke_enrollment_token("0000000000000000", 400).unwrap(), "no such token");
    let listed = store.list_enrollment_tokens().unwrap();
    assert_eq!(
        listed,
        [
            EnrollmentToken {
                id: first.id.clone(),
                label: "team-ml".into(),
                uses_left: 1,
                expires_at_ms: 10_000,
                created_at_ms: 100,
                revoked_at_ms: None
            },
            EnrollmentToken {
                id: second.id.clone(),
                label: "team-ml".into(),
                uses_left: 1,
                expires_at_ms: 20_000,
                created_at_ms: 150,
                revoked_at_ms: Some(300)
            },
        ]
    );
    let text = format!("{listed:?}{:?}", store.list_api_tokens().unwrap());
    assert!(!text.contains(&first.secret.expose()[15..]), "no secret in a listing");
}

#[test]
fn a_revoked_enrollment_token_enrolls_no_one() {
    let store = store();
    let token = store.create_enrollment_token(&new_token(5, 10_000)).unwrap();
    assert!(store.revoke_enrollment_token(&token.id, 150).unwrap());
    let err = store.consume_enrollment_token(token.secret.expose(), 200).unwrap_err();
    assert!(matches!(&err, TokenError::Revoked { token_id } if *token_id == token.id), "{err:?}");
    assert_eq!(err.to_string(), format!("enrollment token {} is revoked", token.id));
    assert_eq!(store.list_enrollment_tokens().unwrap()[0].uses_left, 5, "nothing spent");
}

#[test]
fn only_hashes_of_secrets_reach_the_database_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).unwrap();
    let enroll = store.create_enrollment_token(&new_token(3, 10_000)).unwrap();
    let api = store.create_api_token(&read_token("dashboard", 100)).unwrap();
    store.consume_enrollment_token(enroll.secret.expose(), 200).unwrap();

    let read_all = || -> Vec<u8> {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        bytes
    };
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    // Checked while open (data in the WAL) and after close (checkpointed into the main file).
    for bytes in [read_all(), {
        drop(store);
        read_all()
    }] {
        for secret in [&enroll.secret, &api.secret] {
            let text = secret.expose();
            let random_part = &text.as_bytes()[text.len() - 64..];
            assert!(!contains(&bytes, random_part), "a secret is in the database files");
            // The check reads the right files: the hash is there.
            assert!(contains(&bytes, &crate::store::secret::secret_hash(text)));
        }
    }
}

#[test]
fn two_collectors_on_one_file_never_overspend_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let first = SqliteStore::open(&path).unwrap();
    let second = SqliteStore::open(&path).unwrap();
    let token = first.create_enrollment_token(&new_token(5, 10_000)).unwrap();
    let spend = |store: &dyn Store| {
        (0..5).filter(|_| store.consume_enrollment_token(token.secret.expose(), 200).is_ok()).count()
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| spend(&first));
        let b = s.spawn(|| spend(&second));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a + b, 5);
    let last = second.consume_enrollment_token(token.secret.expose(), 300).unwrap_err();
    assert!(matches!(last, TokenError::Exhausted { .. }), "{last:?}");
}
