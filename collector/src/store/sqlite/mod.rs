//! The embedded SQLite backend of [`Store`].
//!
//! One database file holds everything (schema in `schema_v1.sql` and the migrations after it). Settings at open, and why:
//! - **WAL** journal: readers do not block the writer, and a crash (SIGKILL, power loss) leaves
//!   the database at its last commit, never half a transaction.
//! - **`synchronous=FULL`**: every commit fsyncs the WAL before returning. `NORMAL` survives a
//!   process crash but may lose the last commits on power loss, and a commit here precedes an
//!   acknowledgement after which the agent deletes the batch from its spool: an acknowledged batch
//!   must survive the machine. One fsync per batch is cheap next to the network round trip.
//! - **Foreign keys on**, so a sighting never names a missing asset or agent.
//! - **256 MiB page cache, temporary storage in memory**: a first snapshot's transaction outgrows
//!   the default 2 MB cache, its statement journal would be a temporary file, and the keys every
//!   upsert descends stay cached for a fleet of a few thousand hosts.
//! - **Checkpoints off the writer's path** (`checkpoint.rs`): a thread copies the WAL into the
//!   file every 100 ms; the writer only checkpoints past 64 MiB of WAL, as a backstop.
//! - **Busy timeout** of [`BUSY_TIMEOUT`]: another process (a backup, `sqlite3`) holding the lock
//!   delays a call instead of failing it; past it the call fails with [`StoreError::Busy`].
//! - **Versioned schema**: a `schema_version` table, migrations applied at open in one
//!   transaction (`schema.rs`); a database from a newer collector is refused.
//! - **File mode 0600**: the database is created owner-only (SQLite gives its WAL and shared
//!   memory files the database's mode). An existing file with wider permissions is warned about.
//!
//! One connection behind a mutex: SQLite has one writer at a time anyway, and every call is one
//! short transaction. Writes use `BEGIN IMMEDIATE` so a transaction never has to upgrade its lock
//! halfway (which can fail with a busy error the timeout does not cover); reads use a deferred
//! transaction so a page and its total come from one snapshot. A panic inside a call rolls its
//! transaction back as it unwinds, so a poisoned mutex still guards a consistent connection and
//! is recovered.

pub(crate) mod agents;
pub(crate) mod audit;
pub(crate) mod batch;
mod checkpoint;
pub(crate) mod findings;
pub(crate) mod overview;
pub(crate) mod queries;
pub mod schema;
pub(crate) mod tokens;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, Transaction, TransactionBehavior};
use serde_json::json;
use tracing::{debug, warn};

use super::error::{StoreError, TokenError};
use super::limits::AgentQuota;
use super::types::{
    Acknowledgement, Agent, AgentRegistration, ApiToken, ApplyOutcome, AssetDetail, AssetFilter, AssetSummary,
    AuditRecord, AuditVerification, Changes, EnrollmentToken, ExportFilter, ExportSighting, FindingChanges,
    FindingFilter, FindingRecord, HostFilter, HostStatus, HostSummary, IngestBatch, IssuedToken, LiveEntry,
    LiveInventory, NewApiToken, NewEnrollmentToken, NewFinding, Overview, OverviewRequest, Page, PageRequest,
    PolicyRecord, RateBudget, RateCharge, RolloutTally, SightingKey, TokenUse, UpdateRecord,
};
use super::Store;

/// The page cache of the connection, at most (KiB).
pub const CACHE_KIB: i64 = 256 * 1024;

/// How long a call waits for a lock held by another connection.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store (module docs).
#[derive(Debug)]
pub struct SqliteStore {
    /// The one connection; its mutex serialises calls.
    conn: Mutex<Connection>,
    /// The database file, or `:memory:`; named in errors and logs.
    path: PathBuf,
    /// What one agent may make the store keep.
    quota: AgentQuota,
    /// Copies the WAL into the file off the writer's path (on-disk databases only).
    _checkpointer: Option<checkpoint::Checkpointer>,
}

/// Failure inside a transaction: a database error, or a domain error decided by the code.
#[derive(Debug)]
enum Fail {
    /// SQLite failed.
    Db(rusqlite::Error),
    /// The operation is refused (unknown agent, invalid batch, ...).
    Store(StoreError),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl Fail {
    fn into_store(self, operation: &'static str) -> StoreError {
        match self {
            Self::Store(e) => e,
            Self::Db(e) => db_error(operation, e),
        }
    }
}

/// Result of the code inside a transaction.
type Res<T> = Result<T, Fail>;

fn db_error(operation: &'static str, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy { operation },
        _ => StoreError::Backend { operation, source: Box::new(e) },
    }
}

impl SqliteStore {
    /// Opens (creating it 0600 if absent) the database at `path` and migrates its schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let open_error =
            |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open { path: path.to_owned(), source };
        create_private(path).map_err(|e| open_error(Box::new(e)))?;
        let conn = Connection::open(path).map_err(|e| open_error(Box::new(e)))?;
        Self::setup(conn, path.to_owned(), true)
    }

    /// A private in-memory database, for tests.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory()
            .map_err(|e| StoreError::Open { path: PathBuf::from(":memory:"), source: Box::new(e) })?;
        Self::setup(conn, PathBuf::from(":memory:"), false)
    }

    fn setup(mut conn: Connection, path: PathBuf, on_disk: bool) -> Result<Self, StoreError> {
        let pragmas = |conn: &Connection| -> rusqlite::Result<String> {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "foreign_keys", true)?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            // A snapshot's transaction touches more pages than the default 2 MB cache holds, and
            // its statement journal would go to a temporary file: temporary tables and journals
            // in memory (measured: collector/examples/ingest_bench.rs). Each upsert descends the
            // sightings' and the assets' keys: with 2,000 hosts of 200 entries (a 1 GB file)
            // 64 MiB of cache left 11 % of the collector's time in reads of evicted pages, which
            // 256 MiB keeps (scripts/bench/scale.sh, docs/scale.md).
            conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        };
        let mode = pragmas(&conn).map_err(|e| StoreError::Open { path: path.clone(), source: Box::new(e) })?;
        if on_disk && !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Open { path, source: format!("journal mode is {mode}, not wal").into() });
        }
        let version = schema::migrate(&mut conn, &path)?;
        debug!(path = %path.display(), schema_version = version, "store opened");
        let checkpointer = match on_disk.then(|| checkpoint::Checkpointer::start(&path)) {
            Some(Ok(checkpointer)) => {
                conn.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)
                    .map_err(|e| StoreError::Open { path: path.clone(), source: Box::new(e) })?;
                Some(checkpointer)
            }
            Some(Err(e)) => {
                warn!(path = %path.display(), error = %e, "wal checkpointer not started: commits checkpoint as usual");
                None
            }
            None => None,
        };
        Ok(Self { conn: Mutex::new(conn), path, quota: AgentQuota::default(), _checkpointer: checkpointer })
    }

    /// The database file this store uses (`:memory:` for an in-memory one).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store with `quota` for every agent instead of the default.
    pub fn with_quota(mut self, quota: AgentQuota) -> Self {
        self.quota = quota;
        self
    }

    /// Runs `f` in one transaction: committed when it returns `Ok`, rolled back otherwise.
    fn transaction<T>(
        &self,
        operation: &'static str,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Transaction<'_>) -> Res<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn.transaction_with_behavior(behavior).map_err(|e| db_error(operation, e))?;
        let out = f(&tx).map_err(|e| e.into_store(operation))?;
        tx.commit().map_err(|e| db_error(operation, e))?;
        Ok(out)
    }

    fn write<T>(&self, operation: &'static str, f: impl FnOnce(&Transaction<'_>) -> Res<T>) -> Result<T, StoreError> {
        self.transaction(operation, TransactionBehavior::Immediate, f)
    }

    fn read<T>(&self, operation: &'static str, f: impl FnOnce(&Transaction<'_>) -> Res<T>) -> Result<T, StoreError> {
        self.transaction(operation, TransactionBehavior::Deferred, f)
    }

    /// Runs `f` on the raw connection (tests: inject failures, inspect tables).
    #[cfg(test)]
    pub(crate) fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn)
    }
}

/// Creates `path` owner-only if it does not exist; warns when an existing one is wider.
fn create_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mode = std::fs::metadata(path)?.permissions().mode();
                if mode & 0o077 != 0 {
                    warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777), "database file is readable by others");
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }
    #[cfg(not(unix))]
    {
        OpenOptions::new().write(true).create(true).truncate(false).open(path).map(|_| ())
    }
}

impl Store for SqliteStore {
    fn upsert_agent(&self, agent: &AgentRegistration) -> Result<(), StoreError> {
        self.write("upsert agent", |tx| agents::upsert(tx, agent))
    }

    fn revoke_agent(&self, agent_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write("revoke agent", |tx| {
            agents::revoke(tx, agent_id, now_ms)?;
            audit::append(tx, now_ms, "agent.revoked", agent_id, &json!({}))
        })
    }

    fn set_identity_facts(&self, agent_id: &str, identity_json: &str) -> Result<(), StoreError> {
        self.write("record identity facts", |tx| agents::set_identity(tx, agent_id, identity_json))
    }

    fn decommission_agent(&self, agent_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.write("decommission host", |tx| {
            let done = agents::decommission(tx, agent_id, now_ms)?;
            if done {
                audit::append(tx, now_ms, "agent.decommissioned", agent_id, &json!({}))?;
            }
            Ok(done)
        })
    }

    fn agent(&self, agent_id: &str) -> Result<Option<Agent>, StoreError> {
        self.read("read agent", |tx| agents::get(tx, agent_id))
    }

    fn agents_with_machine_fingerprint(&self, fingerprint: &str) -> Result<Vec<Agent>, StoreError> {
        self.read("read agents by fingerprint", |tx| agents::by_machine_fingerprint(tx, fingerprint))
    }

    fn enroll_agent(
        &self,
        agent: &AgentRegistration,
        install_key_sha256: Option<&str>,
    ) -> Result<HostStatus, StoreError> {
        self.write("enroll agent", |tx| {
            let status = agents::enroll(tx, agent, install_key_sha256)?;
            let detail = super::audit_detail::enrolled(agent, &status);
            audit::append(tx, agent.now_ms, "agent.enrolled", &agent.agent_id, &detail)?;
            Ok(status)
        })
    }

    fn resurface_agent(&self, agent_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.write("resurface agent", |tx| agents::resurface(tx, agent_id, now_ms))
    }

    fn apply_batch(&self, agent_id: &str, batch: &IngestBatch) -> Result<ApplyOutcome, StoreError> {
        // Identities are derived before the connection is taken: the writer is the bottleneck.
        let checked: Vec<_> = batch.upserts.iter().map(|u| batch::checked(agent_id, u)).collect();
        let outcome = self.write("apply batch", |tx| batch::apply(tx, agent_id, batch, &checked, &self.quota))?;
        super::batch_log::log_outcome(agent_id, batch.sequence, &outcome);
        Ok(outcome)
    }

    fn admit_and_apply(
        &self,
        agent_id: &str,
        charge: &RateCharge,
        budget: &RateBudget,
        batch: &IngestBatch,
    ) -> Result<Result<ApplyOutcome, i64>, StoreError> {
        let checked: Vec<_> = batch.upserts.iter().map(|u| batch::checked(agent_id, u)).collect();
        let outcome = self.write("apply batch", |tx| {
            if let Some(wait) = agents::admit_message(tx, agent_id, charge, budget)? {
                return Ok(Err(wait));
            }
            // A refused batch is rolled back to here and still counted.
            tx.execute_batch("SAVEPOINT apply")?;
            match batch::apply(tx, agent_id, batch, &checked, &self.quota) {
                Ok(outcome) => {
                    tx.execute_batch("RELEASE apply")?;
                    Ok(Ok(Ok(outcome)))
                }
                Err(Fail::Store(refused)) => {
                    tx.execute_batch("ROLLBACK TO apply; RELEASE apply")?;
                    Ok(Ok(Err(refused)))
                }
                Err(e) => Err(e),
            }
        })?;
        match outcome {
            Err(wait) => Ok(Err(wait)),
            Ok(Err(refused)) => Err(refused),
            Ok(Ok(outcome)) => {
                super::batch_log::log_outcome(agent_id, batch.sequence, &outcome);
                Ok(Ok(outcome))
            }
        }
    }

    fn create_enrollment_token(&self, token: &NewEnrollmentToken) -> Result<IssuedToken, StoreError> {
        self.write("create enrollment token", |tx| {
            let issued = tokens::create_enrollment(tx, token)?;
            let detail = super::audit_detail::enrollment_token_created(token);
            audit::append(tx, token.now_ms, "enrollment_token.created", &issued.id, &detail)?;
            Ok(issued)
        })
    }

    fn consume_enrollment_token(&self, secret: &str, now_ms: i64) -> Result<TokenUse, TokenError> {
        self.write("consume enrollment token", |tx| tokens::consume_enrollment(tx, secret, now_ms))?
    }

    fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StoreError> {
        self.read("list enrollment tokens", tokens::list_enrollment)
    }

    fn revoke_enrollment_token(&self, token_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.write("revoke enrollment token", |tx| {
            let revoked = tokens::revoke_enrollment(tx, token_id, now_ms)?;
            if revoked {
                audit::append(tx, now_ms, "enrollment_token.revoked", token_id, &json!({}))?;
            }
            Ok(revoked)
        })
    }

    fn create_api_token(&self, token: &NewApiToken) -> Result<IssuedToken, StoreError> {
        self.write("create api token", |tx| {
            let issued = tokens::create_api(tx, token)?;
            let detail = super::audit_detail::api_token_created(token);
            audit::append(tx, token.now_ms, "api_token.created", &issued.id, &detail)?;
            Ok(issued)
        })
    }

    fn verify_api_token(&self, secret: &str, now_ms: i64) -> Result<Option<ApiToken>, StoreError> {
        // A write: it may record the use. Without a change SQLite commits without writing.
        self.write("verify api token", |tx| tokens::verify_api(tx, secret, now_ms))
    }

    fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StoreError> {
        self.read("list api tokens", tokens::list_api)
    }

    fn revoke_api_token(&self, token_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        self.write("revoke api token", |tx| {
            let revoked = tokens::revoke_api(tx, token_id, now_ms)?;
            if revoked {
                audit::append(tx, now_ms, "api_token.revoked", token_id, &json!({}))?;
            }
            Ok(revoked)
        })
    }

    fn hosts(&self, filter: &HostFilter, page: &PageRequest) -> Result<Page<HostSummary>, StoreError> {
        self.read("list hosts", |tx| queries::hosts(tx, filter, page))
    }

    fn assets(&self, filter: &AssetFilter, page: &PageRequest) -> Result<Page<AssetSummary>, StoreError> {
        self.read("list assets", |tx| queries::assets(tx, filter, page))
    }

    fn asset(&self, asset_id: &str, sightings: &PageRequest) -> Result<Option<AssetDetail>, StoreError> {
        self.read("read asset", |tx| queries::asset(tx, asset_id, sightings))
    }

    fn changes(&self, since_ms: i64, limit: u32) -> Result<Changes, StoreError> {
        self.read("read changes", |tx| queries::changes(tx, since_ms, limit))
    }

    fn record_update(&self, agent_id: &str, record: &UpdateRecord) -> Result<(), StoreError> {
        self.write("record update state", |tx| queries::record_update(tx, agent_id, record))
    }

    fn rollout_tally(
        &self,
        channel: &str,
        cohort: &str,
        version: &str,
        sha256: &str,
    ) -> Result<RolloutTally, StoreError> {
        self.read("tally rollout", |tx| queries::rollout_tally(tx, channel, cohort, version, sha256))
    }

    fn record_download(&self, agent_id: &str, sha256: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write("record download", |tx| queries::record_download(tx, agent_id, sha256, now_ms))
    }

    fn touch_agent(&self, agent_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write("heartbeat", |tx| agents::touch(tx, agent_id, now_ms))
    }

    fn admit_message(
        &self,
        agent_id: &str,
        charge: &RateCharge,
        budget: &RateBudget,
    ) -> Result<Option<i64>, StoreError> {
        self.write("count a message against its rate limit", |tx| agents::admit_message(tx, agent_id, charge, budget))
    }

    fn graph_entries(&self, agent_id: Option<&str>, asset_id: Option<&str>) -> Result<Vec<LiveEntry>, StoreError> {
        self.read("read graph", |tx| findings::graph_entries(tx, agent_id, asset_id))
    }

    fn export_sightings(
        &self,
        filter: &ExportFilter,
        after: Option<&SightingKey>,
        limit: u32,
    ) -> Result<Vec<ExportSighting>, StoreError> {
        self.read("read sightings for an export", |tx| queries::export_sightings(tx, filter, after, limit))
    }

    fn models_at(&self, agent_id: &str, paths: &[String], sha256s: &[String]) -> Result<Vec<String>, StoreError> {
        self.read("read the models a process holds", |tx| queries::models_at(tx, agent_id, paths, sha256s))
    }

    fn live_inventory(&self) -> Result<LiveInventory, StoreError> {
        self.read("read live inventory", findings::live_inventory)
    }

    fn reconcile_findings(&self, found: &[NewFinding], now_ms: i64) -> Result<FindingChanges, StoreError> {
        self.write("reconcile findings", |tx| findings::reconcile(tx, found, now_ms))
    }

    fn findings(&self, filter: &FindingFilter, page: &PageRequest) -> Result<Page<FindingRecord>, StoreError> {
        self.read("list findings", |tx| findings::list(tx, filter, page))
    }

    fn finding(&self, finding_id: &str) -> Result<Option<FindingRecord>, StoreError> {
        self.read("read finding", |tx| findings::get(tx, finding_id))
    }

    fn audit_log(&self, since_ms: Option<i64>, page: &PageRequest) -> Result<Page<AuditRecord>, StoreError> {
        self.read("read audit trail", |tx| audit::list(tx, since_ms, page))
    }

    fn finding_events(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        self.read("read finding events", |tx| audit::finding_events(tx, after_seq, limit))
    }

    fn siem_cursor(&self, target: &str) -> Result<u64, StoreError> {
        self.read("read siem cursor", |tx| audit::siem_cursor(tx, target))
    }

    fn advance_siem_cursor(&self, target: &str, seq: u64, delivered: u64, now_ms: i64) -> Result<(), StoreError> {
        self.write("advance siem cursor", |tx| audit::advance_siem_cursor(tx, target, seq, delivered, now_ms))
    }

    fn note_siem_error(&self, target: &str, error: &str, now_ms: i64) -> Result<(), StoreError> {
        self.write("note siem error", |tx| audit::note_siem_error(tx, target, error, now_ms))
    }

    fn reconcile_asset_states(&self, now_ms: i64) -> Result<u64, StoreError> {
        self.write("reconcile asset states", |tx| audit::reconcile_asset_states(tx, now_ms))
    }

    fn verify_audit(&self) -> Result<AuditVerification, StoreError> {
        self.read("verify audit trail", audit::verify)
    }

    fn apply_policy(&self, policy: &PolicyRecord) -> Result<(), StoreError> {
        self.write("apply policy", |tx| {
            findings::apply_policy(tx, policy)?;
            let detail = super::audit_detail::policy_applied(policy);
            audit::append(tx, policy.applied_at_ms, "policy.applied", &policy.version.to_string(), &detail)
        })
    }

    fn current_policy(&self) -> Result<Option<PolicyRecord>, StoreError> {
        self.read("read policy", findings::current_policy)
    }

    fn record_cmdb_push(&self, target: &str, at_ms: i64, report_json: &str) -> Result<(), StoreError> {
        self.write("record cmdb push", |tx| {
            tx.execute(
                "INSERT INTO cmdb_pushes (target, at_ms, report_json) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (target) DO UPDATE SET at_ms = excluded.at_ms, report_json = excluded.report_json",
                rusqlite::params![target, at_ms, report_json],
            )?;
            Ok(())
        })
    }

    fn cmdb_pushes(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        self.read("read cmdb pushes", |tx| {
            let mut rows = tx.prepare("SELECT target, at_ms, report_json FROM cmdb_pushes ORDER BY target")?;
            let rows = rows.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn acknowledge_finding(
        &self,
        finding_id: &str,
        ack: &Acknowledgement,
    ) -> Result<Option<FindingRecord>, StoreError> {
        self.write("acknowledge finding", |tx| findings::acknowledge(tx, finding_id, ack))
    }

    fn overview(&self, request: &OverviewRequest) -> Result<Overview, StoreError> {
        self.read("read overview", |tx| overview::overview(tx, request))
    }
}
