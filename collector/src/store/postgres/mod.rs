//! The PostgreSQL backend of [`Store`]: one database shared by several stateless collectors
//! (docs/scale.md).
//!
//! Selected by `store = "postgres://…"` in the collector's configuration. The behaviour is the
//! SQLite backend's, checked by one conformance suite run against both (`store/tests`); what
//! differs, and why:
//! - **A pool of connections** ([`r2d2`], at most [`PgOptions::pool_size`]) instead of one
//!   connection behind a mutex: PostgreSQL runs transactions of several collectors, and of
//!   several requests of one, at once.
//! - **Isolation.** Writes run at `READ COMMITTED` and take the row locks they need: a batch
//!   locks its agent's row first (`SELECT … FOR UPDATE`), so two streams of one agent, on one
//!   collector or two, apply its batches one after the other and its sequence check holds;
//!   assets are upserted with `INSERT … ON CONFLICT`, so two collectors ingesting the same model
//!   from different agents at once make one asset (the unique key decides, not a lock in a
//!   collector). The audit chain and the findings' reconciliation are serialised across
//!   collectors by transaction-scoped advisory locks. Reads run at `REPEATABLE READ READ ONLY`,
//!   so a page and its total come from one snapshot, as in SQLite.
//! - **Retries.** A transaction PostgreSQL aborts for a deadlock or a serialisation failure
//!   (SQLSTATE 40P01, 40001) is run again, up to [`RETRIES`] times: with several writers it is
//!   an expected outcome, not an error.
//! - **Back-pressure.** When the database cannot be reached (refused, down: no connection
//!   within [`PgOptions::connect_timeout`]) a call fails with [`StoreError::Unavailable`]: the
//!   gRPC status is `UNAVAILABLE`, the agent keeps its spool and retries, nothing is lost. A
//!   pool whose connections are all busy is a queue, not an outage: a call waits for one for up
//!   to [`PgOptions::queue_timeout`], so a burst of agents is served late rather than refused.
//! - **Text.** PostgreSQL text cannot hold U+0000, which SQLite stores. An agent's strings may
//!   contain it (a model file's metadata is the file author's), so the batch code replaces it
//!   with U+FFFD before storing, in the entry JSON too; without this a hostile file would wedge
//!   its host's stream on every retry.
//! - **Migrations** (`schema.rs`) run at open and by `aiscout-collector migrate`, under an
//!   advisory lock so collectors starting together migrate once.
//!
//! The SQL is PostgreSQL's own, not a copy of SQLite's planner hints (`INDEXED BY`,
//! `CROSS JOIN`): PostgreSQL's planner reads its statistics.

mod agents;
mod audit;
mod batch;
mod findings;
mod overview;
mod queries;
pub mod schema;
mod tokens;

use std::time::Duration;

use postgres::error::SqlState;
use postgres::{IsolationLevel, NoTls};
use r2d2_postgres::PostgresConnectionManager;
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

/// A transaction of this backend.
pub(crate) type Tx<'a> = postgres::Transaction<'a>;

/// The pool.
type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// How many times a transaction aborted by a deadlock or a serialisation failure is run again.
pub const RETRIES: u32 = 8;

/// Connection settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Most connections this collector holds.
    pub pool_size: u32,
    /// How long a call waits for a connection (a new one, or a free one of the pool) before it
    /// fails with [`StoreError::Unavailable`].
    pub connect_timeout: Duration,
    /// How long a call waits for a connection while the pool holds connections that are all
    /// busy (the database is up, the collector is loaded) before it fails with
    /// [`StoreError::Unavailable`]. Below the agent's 60 s wait for an acknowledgement.
    pub queue_timeout: Duration,
    /// The per-statement limit the server enforces (`statement_timeout`).
    pub statement_timeout: Duration,
    /// The schema the tables live in (first on the `search_path`, `public` after it for
    /// extensions); `None`: the server's default path. Letters, digits and `_` only.
    pub schema: Option<String>,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            queue_timeout: Duration::from_secs(30),
            statement_timeout: Duration::from_secs(60),
            schema: None,
        }
    }
}

/// The PostgreSQL store (module docs).
pub struct PgStore {
    /// The connections; taken only by [`Drop`].
    pool: Option<Pool>,
    /// The URL without its password, named in errors and logs.
    url: String,
    /// The schema the tables live in, when not the server's default path.
    schema: Option<String>,
    /// What one agent may make the store keep.
    quota: AgentQuota,
    /// [`PgOptions::queue_timeout`].
    queue_timeout: Duration,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("url", &self.url).field("quota", &self.quota).finish_non_exhaustive()
    }
}

/// Failure inside a transaction: a database error, or a domain error decided by the code.
#[derive(Debug)]
pub(crate) enum Fail {
    /// PostgreSQL failed.
    Db(postgres::Error),
    /// The operation is refused (unknown agent, invalid batch, ...).
    Store(StoreError),
}

impl From<postgres::Error> for Fail {
    fn from(e: postgres::Error) -> Self {
        Self::Db(e)
    }
}

impl From<StoreError> for Fail {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

/// Result of the code inside a transaction.
pub(crate) type Res<T> = Result<T, Fail>;

/// Whether PostgreSQL aborted the transaction for a conflict with another one, which running it
/// again resolves.
fn retryable(e: &postgres::Error) -> bool {
    matches!(e.code(), Some(c) if *c == SqlState::T_R_DEADLOCK_DETECTED || *c == SqlState::T_R_SERIALIZATION_FAILURE)
}

/// A database error as a store error: unreachable (closed connection, no server, admin
/// shutdown, statement cancelled) is [`StoreError::Unavailable`], the rest a backend failure.
fn db_error(operation: &'static str, e: postgres::Error) -> StoreError {
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    let unreachable = e.is_closed()
        || io
        || matches!(e.code(), Some(c) if c.code().starts_with("08") || c.code().starts_with("57P")
            || *c == SqlState::QUERY_CANCELED || *c == SqlState::TOO_MANY_CONNECTIONS);
    // The driver's own text is only "db error"; the server's message is the cause.
    let source: Box<dyn std::error::Error + Send + Sync> = match e.as_db_error() {
        Some(db) => db.to_string().into(),
        None => Box::new(e),
    };
    if unreachable {
        StoreError::Unavailable { operation, source }
    } else {
        StoreError::Backend { operation, source }
    }
}

/// `url` without its password, for messages.
pub fn redact_url(url: &str) -> String {
    // postgres://user:password@host/db → postgres://user:***@host/db
    let Some((scheme, rest)) = url.split_once("://") else { return "postgres://…".to_owned() };
    let (authority, tail) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{user_info}@{host}"),
        },
        None => authority.to_owned(),
    };
    // The query string may carry `password=`.
    let tail = match tail.split_once('?') {
        Some((path, query)) if query.contains("password") => format!("{path}?…"),
        _ => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// Whether the URL carries a password (in its user info or as a `password=` parameter): the
/// configuration refuses it, so a password never sits in a file others may read or in a log.
pub fn url_has_password(url: &str) -> bool {
    url.parse::<postgres::Config>().is_ok_and(|c| c.get_password().is_some())
}

/// Whether `store` (the collector's `store` key) names a PostgreSQL database.
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgres://") || store.starts_with("postgresql://")
}

impl PgStore {
    /// Connects to `url` (`postgres://user@host:port/db?…`, libpq's URL form) with the default
    /// options and migrates its schema.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, &PgOptions::default())
    }

    /// Connects to `url` with `options` and migrates its schema.
    pub fn open_with(url: &str, options: &PgOptions) -> Result<Self, StoreError> {
        Self::open_with_password(url, None, options)
    }

    /// Connects to `url` with `password` (from a file, not the URL) and `options`, and migrates
    /// its schema.
    pub fn open_with_password(url: &str, password: Option<&str>, options: &PgOptions) -> Result<Self, StoreError> {
        let redacted = redact_url(url);
        let open_error = |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Open {
            path: std::path::PathBuf::from(&redacted),
            source,
        };
        let mut config: postgres::Config = url.parse().map_err(|e: postgres::Error| open_error(Box::new(e)))?;
        if let Some(password) = password {
            config.password(password.trim_end_matches(['\r', '\n']));
        }
        if config.get_application_name().is_none() {
            config.application_name("aiscout-collector");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(options.connect_timeout);
        }
        let timeout_ms = options.statement_timeout.as_millis();
        let mut startup = config.get_options().map(str::to_owned).unwrap_or_default();
        if !startup.is_empty() {
            startup.push(' ');
        }
        // Notices ("relation … already exists, skipping") are not the operator's business.
        startup.push_str(&format!(
            "-c statement_timeout={timeout_ms} -c idle_in_transaction_session_timeout={timeout_ms} \
             -c client_min_messages=warning"
        ));
        if let Some(schema) = &options.schema {
            let plain = !schema.is_empty()
                && schema.len() <= 63
                && schema.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !plain {
                return Err(open_error(format!("schema {schema:?} is not a plain lowercase identifier").into()));
            }
            startup.push_str(&format!(" -c search_path={schema},public"));
        }
        config.options(&startup);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(options.pool_size.max(1))
            .min_idle(Some(1))
            .connection_timeout(options.connect_timeout)
            .error_handler(Box::new(PoolErrors))
            .build(manager)
            .map_err(|e| open_error(Box::new(e)))?;
        let store = Self {
            pool: Some(pool),
            url: redacted,
            schema: options.schema.clone(),
            quota: AgentQuota::default(),
            queue_timeout: options.queue_timeout,
        };
        if let Some(schema) = &options.schema {
            // Checked above to be a plain identifier.
            let mut conn = store.connection("create schema")?;
            conn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .map_err(|e| db_error("create schema", e))?;
        }
        let version = store.migrate()?;
        store.warn_without_autovacuum();
        debug!(url = %store.url, schema_version = version, "store opened");
        Ok(store)
    }

    /// Brings the database's schema to the current version; returns it.
    pub fn migrate(&self) -> Result<i64, StoreError> {
        let mut conn = self.connection("migrate schema")?;
        schema::migrate(&mut conn, &self.url)
    }

    /// Warns when the server runs without autovacuum: its ANALYZE keeps the planner's
    /// statistics, without which the plans are those of empty tables (measured here: an asset
    /// listing at 400,000 sightings took 30 s instead of milliseconds until `ANALYZE`).
    fn warn_without_autovacuum(&self) {
        let setting = self
            .connection("read settings")
            .ok()
            .and_then(|mut conn| conn.query_one("SHOW autovacuum", &[]).ok())
            .and_then(|row| row.try_get::<_, String>(0).ok());
        if setting.as_deref() == Some("off") {
            warn!(url = %self.url, "autovacuum is off on the postgresql server: table statistics go stale and \
                queries slow down as the inventory grows; turn it on, or run ANALYZE after large ingests");
        }
    }

    /// The schema the tables live in, when one was chosen.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// The URL this store uses, without its password.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store with `quota` for every agent instead of the default.
    pub fn with_quota(mut self, quota: AgentQuota) -> Self {
        self.quota = quota;
        self
    }

    fn connection(
        &self,
        operation: &'static str,
    ) -> Result<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>, StoreError> {
        let pool = self.pool.as_ref().ok_or(StoreError::Unavailable { operation, source: "store closed".into() })?;
        let started = std::time::Instant::now();
        loop {
            match pool.get() {
                Ok(conn) => return Ok(conn),
                // Connections that exist are busy ones (a broken one is dropped when it is
                // checked out or given back): the database answers, this call waits its turn.
                Err(_) if pool.state().connections > 0 && started.elapsed() < self.queue_timeout => {}
                Err(e) => return Err(StoreError::Unavailable { operation, source: Box::new(e) }),
            }
        }
    }

    /// Runs `f` in one transaction at `isolation`, committed when it returns `Ok`, rolled back
    /// otherwise; run again when PostgreSQL aborts it for a conflict (module docs).
    fn transaction<T>(
        &self,
        operation: &'static str,
        isolation: IsolationLevel,
        read_only: bool,
        f: impl Fn(&mut Tx<'_>) -> Res<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection(operation)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = (|| -> Res<T> {
                let mut tx = conn.build_transaction().isolation_level(isolation).read_only(read_only).start()?;
                let out = f(&mut tx)?;
                tx.commit()?;
                Ok(out)
            })();
            match result {
                Ok(out) => return Ok(out),
                Err(Fail::Db(e)) if retryable(&e) && attempt <= RETRIES => {
                    debug!(operation, attempt, error = %e, "transaction conflicted with another; running it again");
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5));
                }
                Err(Fail::Db(e)) => return Err(db_error(operation, e)),
                Err(Fail::Store(e)) => return Err(e),
            }
        }
    }

    fn write<T>(&self, operation: &'static str, f: impl Fn(&mut Tx<'_>) -> Res<T>) -> Result<T, StoreError> {
        self.transaction(operation, IsolationLevel::ReadCommitted, false, f)
    }

    fn read<T>(&self, operation: &'static str, f: impl Fn(&mut Tx<'_>) -> Res<T>) -> Result<T, StoreError> {
        self.transaction(operation, IsolationLevel::RepeatableRead, true, f)
    }

    /// Runs `f` on a raw connection of the pool (tests: inspect tables, inject failures).
    #[cfg(test)]
    pub(crate) fn with_client<T>(&self, f: impl FnOnce(&mut postgres::Client) -> T) -> T {
        let mut conn = self.connection("test").expect("a connection");
        f(&mut conn)
    }
}

impl Drop for PgStore {
    /// Closing a connection blocks on the driver's own runtime, which panics on a thread that
    /// drives a tokio runtime (the server's, when it drops the store at shutdown): the pool is
    /// dropped on a thread of its own then.
    fn drop(&mut self) {
        let Some(pool) = self.pool.take() else { return };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        } else {
            drop(pool);
        }
    }
}

/// Logs the pool's failures to connect (each call that needed one fails on its own).
#[derive(Debug)]
struct PoolErrors;

impl r2d2::HandleError<postgres::Error> for PoolErrors {
    fn handle_error(&self, error: postgres::Error) {
        warn!(error = %error, "cannot connect to the postgresql store");
    }
}

/// Advisory lock keys (transaction-scoped) that serialise work across collectors.
pub(crate) mod locks {
    /// Appending to the audit chain.
    pub const AUDIT: i64 = 0x6169_7363_0001;
    /// Reconciling findings and asset states.
    pub const FINDINGS: i64 = 0x6169_7363_0002;
    /// Migrating the schema.
    pub const MIGRATE: i64 = 0x6169_7363_0003;
}

impl Store for PgStore {
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
        let (outcome, seen) = self.write("apply batch", |tx| batch::apply(tx, agent_id, batch, &self.quota))?;
        // The batch is committed: it is acknowledged whatever happens to the refresh of its
        // assets' times (batch::refresh_assets).
        if !seen.is_empty() {
            if let Err(e) =
                self.write("refresh asset times", |tx| batch::refresh_assets(tx, &seen, batch.received_at_ms))
            {
                warn!(agent_id, sequence = batch.sequence, error = %e, "asset times not refreshed");
            }
        }
        super::batch_log::log_outcome(agent_id, batch.sequence, &outcome);
        Ok(outcome)
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
        self.write("reconcile findings", |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&locks::FINDINGS])?;
            findings::reconcile(tx, found, now_ms)
        })
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
        self.write("reconcile asset states", |tx| {
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&locks::FINDINGS])?;
            audit::reconcile_asset_states(tx, now_ms)
        })
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
                "INSERT INTO cmdb_pushes (target, at_ms, report_json) VALUES ($1, $2, $3) \
                 ON CONFLICT (target) DO UPDATE SET at_ms = excluded.at_ms, report_json = excluded.report_json",
                &[&target, &at_ms, &report_json],
            )?;
            Ok(())
        })
    }

    fn cmdb_pushes(&self) -> Result<Vec<(String, i64, String)>, StoreError> {
        self.read("read cmdb pushes", |tx| {
            let rows = tx.query("SELECT target, at_ms, report_json FROM cmdb_pushes ORDER BY target", &[])?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?));
            }
            Ok(out)
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
