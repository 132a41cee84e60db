//! The database file: reopening, schema version, settings, permissions.

use std::time::{Duration, Instant};

use super::*;
use crate::store::sqlite::schema::CURRENT_VERSION;
use crate::store::{ApplyOutcome, SnapshotProgress, StoreError};

/// A database file at schema `version`, as a collector of that version left it, without its
/// `schema_version` row (each test writes it with the rows it needs).
fn database_at(version: usize) -> (tempfile::TempDir, std::path::PathBuf, rusqlite::Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in &crate::store::sqlite::schema::MIGRATIONS[..version] {
        conn.execute_batch(sql).unwrap();
    }
    (dir, path, conn)
}

#[test]
fn reopening_the_file_keeps_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let before = {
        let store = SqliteStore::open(&path).unwrap();
        store.upsert_agent(&registration("a", "host-a", "fp-a", 10)).unwrap();
        apply(&store, "a", &delta(1, 1_000, vec![model("/a", SHA_A), framework("/v", "torch", "2.3.0")]));
        dump(&store)
    };
    assert_eq!(before.assets.len(), 2);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(dump(&store), before);
    assert_eq!(apply(&store, "a", &delta(1, 1_000, vec![])), ApplyOutcome::AlreadyApplied { last_sequence: 1 });
}

#[test]
fn the_file_is_private_in_wal_mode_with_full_sync_and_foreign_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (journal, sync, fk, version): (String, i64, i64, i64) = store
        .with_connection(|c| {
            c.query_row(
                "SELECT (SELECT journal_mode FROM pragma_journal_mode), (SELECT synchronous FROM pragma_synchronous), \
                     (SELECT foreign_keys FROM pragma_foreign_keys), (SELECT version FROM schema_version)",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
        })
        .unwrap();
    assert_eq!((journal.as_str(), sync, fk, version), ("wal", 2, 1, CURRENT_VERSION));
    let wal = dir.path().join("store.db-wal");
    assert_eq!(std::fs::metadata(wal).unwrap().permissions().mode() & 0o777, 0o600);
}

#[test]
fn a_database_from_a_newer_collector_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE schema_version SET version = 99", []).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { found: 99, supported: CURRENT_VERSION, .. }), "{err:?}");
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

#[test]
fn foreign_keys_are_enforced() {
    let store = store();
    let err = store.try_execute(
        "INSERT INTO sightings (asset_id, agent_id, kind, local_key, location, entry_json, first_seen_ms, last_seen_ms) \
         VALUES ('model:x', 'nobody', 'model', '/k', '/k', '{}', 1, 1)",
    );
    assert!(err.is_err());
}

#[test]
fn a_version_1_database_is_migrated_keeping_its_agents() {
    let (_dir, path, conn) = database_at(1);
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version VALUES (1); \
         INSERT INTO agents (agent_id, cert_serial, cert_fingerprint, cert_not_after_ms, machine_fingerprint, \
             hostname, agent_version, enrolled_at_ms) VALUES ('a', 's', 'f', 1, 'fp', 'h', '0.1.0', 5)",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let agent = store.agent("a").unwrap().unwrap();
    assert_eq!(agent.identity_status(), IdentityStatus::Unique);
    assert_eq!((agent.enrolled_at_ms, agent.install_key_sha256, agent.superseded_by), (5, None, None));
}

#[test]
fn a_version_2_database_is_migrated_keeping_its_tokens_as_read_only_and_unexpiring() {
    use crate::store::{ApiToken, Scope};
    let (_dir, path, conn) = database_at(2);
    let api_hash = crate::store::secret::secret_hash("aiscout_api_old");
    let enroll_hash = crate::store::secret::secret_hash("aiscout_enroll_old");
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version VALUES (2);",
    )
    .unwrap();
    conn.execute(
        "INSERT INTO api_tokens (token_id, secret_sha256, label, created_at_ms) VALUES ('api1', ?1, 'old', 5)",
        [api_hash],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO enrollment_tokens (token_id, secret_sha256, label, uses_left, expires_at_ms, created_at_ms) \
         VALUES ('enr1', ?1, 'old', 2, 10000, 5)",
        [enroll_hash],
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let version: i64 =
        store.with_connection(|c| c.query_row("SELECT version FROM schema_version", [], |r| r.get(0))).unwrap();
    assert_eq!(version, CURRENT_VERSION);
    let token = store.verify_api_token("aiscout_api_old", 100).unwrap().unwrap();
    assert_eq!(
        token,
        ApiToken {
            id: "api1".into(),
            label: "old".into(),
            scopes: vec![Scope::Read],
            created_at_ms: 5,
            expires_at_ms: None,
            last_used_at_ms: Some(100),
            revoked_at_ms: None,
        }
    );
    let enrollment = store.list_enrollment_tokens().unwrap();
    assert_eq!((enrollment[0].id.as_str(), enrollment[0].revoked_at_ms), ("enr1", None));
    assert_eq!(store.consume_enrollment_token("aiscout_enroll_old", 200).unwrap().uses_left, 1);
}

#[test]
fn a_version_2_database_is_migrated_with_its_stored_bytes_and_verdicts() {
    let (_dir, path, conn) = database_at(2);
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version VALUES (2); \
         INSERT INTO agents (agent_id, cert_serial, cert_fingerprint, cert_not_after_ms, machine_fingerprint, \
             hostname, agent_version, enrolled_at_ms) VALUES ('a', 's', 'f', 1, 'fp', 'h', '0.1.0', 5); \
         INSERT INTO assets (asset_id, kind, identity, first_seen_ms, last_seen_ms) VALUES ('model:x', 'model', 'x', 1, 1); \
         INSERT INTO sightings (asset_id, agent_id, kind, local_key, location, entry_json, first_seen_ms, last_seen_ms) \
             VALUES ('model:x', 'a', 'model', '/k', '/k', '{\"safety\":{\"verdict\":\"dangerous\"}}', 1, 1);",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let agent = store.agent("a").unwrap().unwrap();
    let json_len = r#"{"safety":{"verdict":"dangerous"}}"#.len() as u64;
    assert_eq!(agent.stored_bytes, json_len + 2 + 2);
    let page = store.assets(&WITH_REMOVED, &PageRequest::default()).unwrap();
    assert_eq!(page.items[0].verdict, Some(crate::store::Verdict::Dangerous));
}

#[test]
fn a_version_4_database_is_migrated_with_its_package_files_marked() {
    let (_dir, path, conn) = database_at(4);
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version VALUES (4); \
         INSERT INTO agents (agent_id, cert_serial, cert_fingerprint, cert_not_after_ms, machine_fingerprint, \
             hostname, agent_version, enrolled_at_ms) VALUES ('a', 's', 'f', 1, 'fp', 'h', '0.1.0', 5); \
         INSERT INTO assets (asset_id, kind, identity, first_seen_ms, last_seen_ms) VALUES ('model:x', 'model', 'x', 1, 1), \
             ('model:y', 'model', 'y', 1, 1); \
         INSERT INTO sightings (asset_id, agent_id, kind, local_key, location, entry_json, first_seen_ms, last_seen_ms) \
             VALUES ('model:x', 'a', 'model', '/x', '/x', '{\"owner\":{\"ecosystem\":\"pypi\",\"name\":\"p\"}}', 1, 1), \
             ('model:y', 'a', 'model', '/y', '/y', '{\"owner\":null}', 1, 1);",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let page = store.assets(&WITH_REMOVED, &PageRequest::default()).unwrap();
    let ids: Vec<&str> = page.items.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["model:y"]);
    let all = store.assets(&AssetFilter { include_owned: true, ..WITH_REMOVED }, &PageRequest::default()).unwrap();
    assert_eq!(all.items.iter().map(|a| a.owned).collect::<Vec<_>>(), [true, false]);
}

#[test]
fn a_version_18_database_keeps_the_keys_its_open_snapshot_named() {
    let (_dir, path, conn) = database_at(18);
    // Agent a is inside snapshot 5: its first part named /named, not /unnamed.
    conn.execute_batch(
        "CREATE TABLE schema_version (version INTEGER NOT NULL) STRICT; INSERT INTO schema_version VALUES (18); \
         INSERT INTO agents (agent_id, cert_serial, cert_fingerprint, cert_not_after_ms, machine_fingerprint, \
             hostname, agent_version, enrolled_at_ms, last_sequence, open_snapshot_id, open_snapshot_complete) \
             VALUES ('a', 's', 'f', 1, 'fp', 'h', '0.1.0', 5, 7, 5, 1); \
         INSERT INTO assets (asset_id, kind, identity, first_seen_ms, last_seen_ms) VALUES ('model:x', 'model', 'x', 1, 1), \
             ('model:y', 'model', 'y', 1, 1); \
         INSERT INTO sightings (asset_id, agent_id, kind, local_key, location, entry_json, first_seen_ms, last_seen_ms) \
             VALUES ('model:x', 'a', 'model', '/named', '/named', '{}', 1, 1), \
             ('model:y', 'a', 'model', '/unnamed', '/unnamed', '{}', 1, 1); \
         INSERT INTO snapshot_keys (agent_id, snapshot_id, kind, local_key) VALUES ('a', 5, 'model', '/named'), \
             ('a', 4, 'model', '/unnamed');",
    )
    .unwrap();
    drop(conn);
    let store = SqliteStore::open(&path).unwrap();
    let last = snapshot_part(8, 5, true, 2_000, vec![]);
    let ApplyOutcome::Applied(summary) = store.apply_batch("a", &last).unwrap() else { panic!() };
    assert_eq!(summary.snapshot, SnapshotProgress::Closed { removed: 1 });
    let live: rusqlite::Result<Vec<String>> = store.with_connection(|c| {
        c.prepare("SELECT local_key FROM sightings WHERE removed_at_ms IS NULL")?.query_map([], |r| r.get(0))?.collect()
    });
    assert_eq!(live.unwrap(), ["/named"]);
}

#[test]
fn committed_pages_reach_the_file_without_the_writer_checkpointing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store.db");
    let store = SqliteStore::open(&path).unwrap();
    let backstop: i64 = store.with_connection(|c| c.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))).unwrap();
    assert_eq!(backstop, 16_384, "the writer checkpoints only past 64 MiB of WAL");
    let file_size = || std::fs::metadata(&path).unwrap().len();
    let before = file_size();
    store.upsert_agent(&registration("a", "host-a", "fp-a", 10)).unwrap();
    let models: Vec<IngestAsset> = (0..300).map(|i| model(&format!("/m/{i:03}"), SHA_A)).collect();
    store.apply_batch("a", &delta(1, 1_000, models)).unwrap();
    // Far below the backstop: only the checkpointer thread copies the new pages into the file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while file_size() == before {
        assert!(Instant::now() < deadline, "the file stayed at {before} bytes");
        std::thread::sleep(Duration::from_millis(20));
    }
}
