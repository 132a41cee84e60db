//! The backend the store tests run against (the conformance suite): SQLite in memory, or
//! PostgreSQL when `AISCOUT_TEST_POSTGRES` names a database (`postgres://root@127.0.0.1/db`).
//!
//! Every test that goes through [`store`] runs on whichever backend the run chose, so one suite
//! states the behaviour of both; `scripts/test.sh` runs it twice. Under PostgreSQL each test
//! gets its own schema in that database (tests run in parallel), which the run drops with the
//! database. A run that names a database it cannot reach fails: it never falls back to SQLite.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::store::limits::AgentQuota;
use crate::store::postgres::{PgOptions, PgStore};
use crate::store::types::*;
use crate::store::{SqliteStore, Store, StoreError, TokenError};

/// The variable naming the PostgreSQL database of a conformance run.
pub(crate) const POSTGRES_VAR: &str = "AISCOUT_TEST_POSTGRES";

/// A store of the run's backend, and what the tests inspect it with.
#[derive(Debug, Clone)]
pub(crate) struct TestStore {
    /// The store, as callers see it.
    store: Arc<dyn Store>,
    /// The backend, for the few tests that read its tables.
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl TestStore {
    /// The store as the server holds it.
    pub(crate) fn arc(&self) -> Arc<dyn Store> {
        Arc::new(self.clone())
    }

    /// Runs `f` on the store. PostgreSQL's synchronous client cannot run on a thread that
    /// drives a tokio runtime (an async test's body), so there it runs on a thread of its own,
    /// as the server runs store calls on its blocking pool.
    fn call<T: Send>(&self, f: impl FnOnce(&dyn Store) -> T + Send) -> T {
        match &self.backend {
            Backend::Sqlite(_) => f(&*self.store),
            Backend::Postgres(_) => std::thread::scope(|scope| {
                scope.spawn(|| f(&*self.store)).join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            }),
        }
    }

    /// Whether this run is the PostgreSQL one.
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self.backend, Backend::Postgres(_))
    }

    /// The one integer `sql` (the same text in both dialects) returns.
    pub(crate) fn count(&self, sql: &str) -> i64 {
        match &self.backend {
            Backend::Sqlite(s) => s.with_connection(|c| c.query_row(sql, [], |r| r.get(0))).expect(sql),
            Backend::Postgres(s) => std::thread::scope(|scope| {
                scope.spawn(|| s.with_client(|c| c.query_one(sql, &[]).and_then(|r| r.try_get(0))).expect(sql)).join()
            })
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        }
    }

    /// Runs `sql` (the same text in both dialects), for tests that change a table behind the
    /// store's back.
    pub(crate) fn execute(&self, sql: &str) {
        self.try_execute(sql).expect(sql);
    }

    /// Runs `sql` (the same text in both dialects); the database's refusal as text.
    pub(crate) fn try_execute(&self, sql: &str) -> Result<(), String> {
        match &self.backend {
            Backend::Sqlite(s) => s.with_connection(|c| c.execute_batch(sql)).map_err(|e| e.to_string()),
            Backend::Postgres(s) => std::thread::scope(|scope| {
                scope
                    .spawn(|| {
                        s.with_client(|c| c.batch_execute(sql))
                            .map_err(|e| e.as_db_error().map_or_else(|| e.to_string(), ToString::to_string))
                    })
                    .join()
            })
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        }
    }
}

impl TestStore {
    /// Makes the database refuse to insert a sighting at `local_key` (a failure in the middle
    /// of a transaction), until [`Self::stop_failing_inserts`].
    pub(crate) fn fail_inserts_of_sighting(&self, local_key: &str) {
        assert!(local_key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/'), "{local_key}");
        if self.is_postgres() {
            self.execute(&format!(
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
                 RAISE EXCEPTION 'injected failure'; END $$; \
                 CREATE TRIGGER poison BEFORE INSERT ON sightings FOR EACH ROW \
                 WHEN (NEW.local_key = '{local_key}') EXECUTE FUNCTION poison()"
            ));
        } else {
            self.execute(&format!(
                "CREATE TEMP TRIGGER poison BEFORE INSERT ON sightings WHEN NEW.local_key = '{local_key}' \
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ));
        }
    }

    /// Removes the failure [`Self::fail_inserts_of_sighting`] injected.
    pub(crate) fn stop_failing_inserts(&self) {
        if self.is_postgres() {
            self.execute("DROP TRIGGER poison ON sightings; DROP FUNCTION poison()");
        } else {
            self.execute("DROP TRIGGER poison");
        }
    }
}

/// The suite calls the run's backend through this, as the server would.
impl Store for TestStore {
    fn enroll_agent(
        &self,
        agent: &AgentRegistration,
        install_key_sha256: Option<&str>,
    ) -> Result<HostStatus, StoreError> {
        self.call(|s| s.enroll_agent(agent, install_key_sha256))
    }

    fn rollout_tally(
        &self,
        channel: &str,
        cohort: &str,
        version: &str,
        sha256: &str,
    ) -> Result<RolloutTally, StoreError> {
        self.call(|s| s.rollout_tally(channel, cohort, version, sha256))
    }

    fn export_sightings(
        &self,
        filter: &ExportFilter,
        after: Option<&SightingKey>,
        limit: u32,
    ) -> Result<Vec<ExportSighting>, StoreError> {
        self.call(|s| s.export_sightings(filter, after, limit))
    }

    fn upsert_agent(&self, agent: &AgentRegistration) -> Result<(), StoreError> {
        self.call(|s| s.upsert_agent(agent))
    }

    fn set_identity_facts(&self, agent_id: &str, identity_json: &str) -> Result<(), StoreError> {
        self.call(|s| s.set_identity_facts(agent_id, identity_json))
    }

    fn decommission_agent(&self, agent_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.call(|s| s.decommission_agent(agent_id, now_ms))
    }

    fn revoke_agent(&self, agent_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.call(|s| s.revoke_agent(agent_id, now_ms))
    }

    fn agent(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        self.call(|s| s.agent(agent_id))
    }

    fn agents_with_machine_fingerprint(&self, fingerprint: &str) -> Result<Vec<Agent>, StoreError> {
        self.call(|s| s.agents_with_machine_fingerprint(fingerprint))
    }

    fn resurface_agent(&self, agent_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.call(|s| s.resurface_agent(agent_id, now_ms))
    }

    fn apply_batch(&self, agent_id: &str, batch: &IngestBatch) -> Result<ApplyOutcome, StoreError> {
        self.call(|s| s.apply_batch(agent_id, batch))
    }

    fn create_enrollment_token(&self, token: &NewEnrollmentToken) -> Result<IssuedToken, StoreError> {
        self.call(|s| s.create_enrollment_token(token))
    }

    fn consume_enrollment_token(&self, secret: &str, now_ms: i64) -> Result<TokenUse, TokenError> {
        self.call(|s| s.consume_enrollment_token(secret, now_ms))
    }

    fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StoreError> {
        self.call(|s| s.list_enrollment_tokens())
    }

    fn revoke_enrollment_token(&self, token_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.call(|s| s.revoke_enrollment_token(token_id, now_ms))
    }

    fn create_api_token(&self, token: &NewApiToken) -> Result<IssuedToken, StoreError> {
        self.call(|s| s.create_api_token(token))
    }

    fn verify_api_token(&self, secret: &str, now_ms: i64) -> Result<Option<ApiToken>, StoreError> {
        self.call(|s| s.verify_api_token(secret, now_ms))
    }

    fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.call(|s| s.list_api_tokens())
    }

    fn revoke_api_token(&self, token_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.call(|s| s.revoke_api_token(token_id, now_ms))
    }

    fn hosts(&self, filter: &HostFilter, page: &PageRequest) -> Result<Page<HostSummary>, StoreError> {
        self.call(|s| s.hosts(filter, page))
    }

    fn assets(&self, filter: &AssetFilter, page: &PageRequest) -> Result<Page<AssetSummary>, StoreError> {
        self.call(|s| s.assets(filter, page))
    }

    fn asset(&self, asset_id: &str, sightings: &PageRequest) -> Result<Option<AssetDetail>, StoreError> {
        self.call(|s| s.asset(asset_id, sightings))
    }

    fn changes(&self, since_ms: i64, limit: u32) -> Result<Changes, StoreError> {
        self.call(|s| s.changes(since_ms, limit))
    }

    fn record_update(&self, agent_id: &str, record: &UpdateRecord) -> Result<(), StoreError> {
        self.call(|s| s.record_update(agent_id, record))
    }

    fn record_download(&self, agent_id: &str, sha256: &str, now_ms: i64) -> Result<(), StoreError> {
        self.call(|s| s.record_download(agent_id, sha256, now_ms))
    }

    fn touch_agent(&self, agent_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.call(|s| s.touch_agent(agent_id, now_ms))
    }

    fn admit_message(
        &self,
        agent_id: &str,
        charge: &RateCharge,
        budget: &RateBudget,
    ) -> Result<Option<i64>, StoreError> {
        self.call(|s| s.admit_message(agent_id, charge, budget))
    }

    fn admit_and_apply(
        &self,
        agent_id: &str,
        charge: &RateCharge,
        budget: &RateBudget,
        batch: &IngestBatch,
    ) -> Result<Result<ApplyOutcome, i64>, StoreError> {
        self.call(|s| s.admit_and_apply(agent_id, charge, budget, batch))
    }

    fn graph_entries(&self, agent_id: Option<&str>, asset_id: Option<&str>) -> Result<Vec<LiveEntry>, StoreError> {
        self.call(|s| s.graph_entries(agent_id, asset_id))
    }

    fn models_at(&self, agent_id: &str, paths: &[String], sha256s: &[String]) -> Result<Vec<String>, StoreError> {
        self.call(|s| s.models_at(agent_id, paths, sha256s))
    }

    fn live_inventory(&self) -> Result<LiveInventory, StoreError> {
        self.call(|s| s.live_inventory())
    }

    fn reconcile_findings(&self, found: &[NewFinding], now_ms: i64) -> Result<FindingChanges, StoreError> {
        self.call(|s| s.reconcile_findings(found, now_ms))
    }

    fn findings(&self, filter: &FindingFilter, page: &PageRequest) -> Result<Page<FindingRecord>, StoreError> {
        self.call(|s| s.findings(filter, page))
    }

    fn finding(&self, finding_id: &str) -> Result<Option<FindingRecord>, StoreError> {
        self.call(|s| s.finding(finding_id))
    }

    fn audit_log(&self, since_ms: Option<i64>, page: &PageRequest) -> Result<Page<AuditRecord>, StoreError> {
        self.call(|s| s.audit_log(since_ms, page))
    }

    fn finding_events(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.call(|s| s.finding_events(after_seq, limit))
    }

    fn siem_cursor(&self, target: &str) -> Result<u64, StoreError> {
        self.call(|s| s.siem_cursor(target))
    }

    fn advance_siem_cursor(&self, target: &str, seq: u64, delivered: u64, now_ms: i64) -> Result<(), StoreError> {
        self.call(|s| s.advance_siem_cursor(target, seq, delivered, now_ms))
    }

    fn note_siem_error(&self, target: &str, error: &str, now_ms: i64) -> Result<(), StoreError> {
        self.call(|s| s.note_siem_error(target, error, now_ms))
    }

    fn reconcile_asset_states(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.call(|s| s.reconcile_asset_states(now_ms))
    }

    fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.call(|s| s.verify_audit())
    }

    fn apply_policy(&self, policy: &PolicyRecord) -> Result<(), StoreError> {
        self.call(|s| s.apply_policy(policy))
    }

    fn current_policy(&self) -> Result<Option<PolicyRecord>, StoreError> {
        self.call(|s| s.current_policy())
    }

    fn record_cmdb_push(&self, target: &str, at_ms: i64, report_json: &str) -> Result<(), StoreError> {
        self.call(|s| s.record_cmdb_push(target, at_ms, report_json))
    }

    fn cmdb_pushes(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        self.call(|s| s.cmdb_pushes())
    }

    fn acknowledge_finding(
        &self,
        finding_id: &str,
        ack: &Acknowledgement,
    ) -> Result<Option<FindingRecord>, StoreError> {
        self.call(|s| s.acknowledge_finding(finding_id, ack))
    }

    fn overview(&self, request: &OverviewRequest) -> Result<Overview, StoreError> {
        self.call(|s| s.overview(request))
    }
}

/// A fresh, empty store of the run's backend.
pub(crate) fn store() -> TestStore {
    store_with_quota(AgentQuota::default())
}

/// [`store`] with `quota` for every agent.
pub(crate) fn store_with_quota(quota: AgentQuota) -> TestStore {
    match std::env::var(POSTGRES_VAR) {
        Ok(url) if !url.is_empty() => {
            // Off the caller's thread: it may be an async test's.
            let store = std::thread::scope(|s| s.spawn(|| postgres_store(&url)).join())
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let store = Arc::new(store.with_quota(quota));
            TestStore { store: store.clone(), backend: Backend::Postgres(store) }
        }
        _ => {
            let store = Arc::new(SqliteStore::open_in_memory().expect("in-memory store").with_quota(quota));
            TestStore { store: store.clone(), backend: Backend::Sqlite(store) }
        }
    }
}

/// A PostgreSQL store in a new schema of the database at `url`.
pub(crate) fn postgres_store(url: &str) -> PgStore {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).expect("randomness");
    let schema = format!("t_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), hex::encode(random));
    ensure_trigram_extension(url);
    let options = PgOptions { pool_size: 4, schema: Some(schema), ..PgOptions::default() };
    PgStore::open_with(url, &options).unwrap_or_else(|e| panic!("{POSTGRES_VAR}: cannot open a store: {e}"))
}

/// Installs `pg_trgm` in `public` once per database: test schemas find it there. Test
/// processes racing to install it are fine: the loser sees it installed.
fn ensure_trigram_extension(url: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls)
        .unwrap_or_else(|e| panic!("{POSTGRES_VAR}: cannot connect: {e}"));
    if client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public").is_err() {
        let installed = client
            .query_one("SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'", &[])
            .and_then(|r| r.try_get::<_, i64>(0))
            .unwrap_or(0);
        assert_eq!(installed, 1, "{POSTGRES_VAR}: cannot install pg_trgm");
    }
}

#[test]
fn the_run_uses_the_backend_it_names() {
    let store = store();
    assert_eq!(store.is_postgres(), std::env::var(POSTGRES_VAR).is_ok_and(|u| !u.is_empty()));
    assert_eq!(store.count("SELECT count(*) FROM agents"), 0);
}
