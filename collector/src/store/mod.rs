//! The fleet inventory store: agents, deduplicated assets, their sightings, tokens.
//!
//! Ingest converts wire batches into [`IngestBatch`] and calls [`Store::apply_batch`]; enrollment
//! registers agents and spends tokens; the HTTP API reads pages. [`Store`] is the only thing they
//! see: [`SqliteStore`] is the embedded backend and [`PgStore`] the PostgreSQL one that several
//! stateless collectors share; both pass one conformance suite (`store/tests`).
//!
//! # Why the trait is shaped this way
//! - **One call, one transaction.** Every method is a complete unit of work that a backend runs
//!   in one transaction (but `admit_and_apply`'s default, which is two calls), so several
//!   collectors writing one database never interleave half operations: there is no
//!   begin/commit in the API and no cursor or connection type in it.
//! - **Idempotent batches.** The agent's last applied sequence is stored in the same transaction
//!   as the batch's effects. A batch whose sequence is not above it changes nothing, so a replay
//!   after a lost acknowledgement, a reconnect to another collector, or a crash between commit
//!   and acknowledgement is harmless.
//! - **Synchronous.** Each call is a short blocking transaction; the server runs it in
//!   `spawn_blocking`. A sync trait stays object-safe (`Arc<dyn Store>`) without boxed futures,
//!   SQLite is blocking anyway, and a PostgreSQL backend can use a pool of blocking clients the
//!   same way; an async facade over `spawn_blocking` can be added in one place if ever needed.
//! - **Backend-free types.** Arguments, results and [`StoreError`] carry no database type; the
//!   identity rules ([`identity`]) and token secrets ([`secret`]) are pure code shared by backends.
//! - **Time comes from the caller** (`*_ms`, Unix milliseconds), so tests are deterministic and
//!   several collectors agree on the clock they were given.
//!
//! # Asset identity
//! Agents send each entry as the public scan JSON (`docs/scan-json.md`); the store derives the
//! asset from it (the wire carries no identity: `Asset.identity` is reserved), so the rules live
//! in one place and cannot drift between agent versions. "Host" below is the agent id: hostnames collide
//! across a fleet and cloned machines get distinct agent ids.
//! 1. **Model**: the multi-file model's `group.id` when the entry has a group, else the file's
//!    `sha256`; 64 hex digits, lowercased. Fleet-wide: the same weights anywhere are one asset.
//!    Id: `model:<digest>`.
//! 2. **Framework**: (`ecosystem` lowercased, `name`, `version` or empty when null). Fleet-wide:
//!    torch 2.3.0 in fifty venvs on ten hosts is one asset with fifty sightings.
//! 3. **Runtime**: (host, `kind`, discriminator) where the discriminator is the lowest listening
//!    port (`port:11434`), else the executable (`exe:/usr/bin/ollama`), else the first command
//!    line argument (`cmd:python3`). Per host: a server is a thing running somewhere. The pid is
//!    not part of it, so a restarted server is the same asset.
//! 4. **Tooling**: (host, `kind`, `path`, name) where the name is `variable` (API keys) or
//!    `client` (MCP configurations). A key found in a process environment has the path
//!    `process_environment`, not `/proc/<pid>/environ`, so it survives restarts.
//! 5. **Ids**: rules 2 to 4 build the canonical identity as a JSON array of their parts
//!    (`["pypi","torch","2.3.0"]`), and the id is `<kind>:<hex SHA-256 of that text>`. Every id
//!    is URL-safe and never changes for the same identity.
//! 6. An upsert from which no identity can be derived (not a JSON object, a missing field, a
//!    malformed digest) is skipped and reported in [`ApplySummary::rejected`]; the rest of the
//!    batch is stored, so one malformed entry cannot wedge a host's stream forever. Its key
//!    still counts as named by an open snapshot, so the sighting it had stays live.
//!
//! # Sightings
//! A sighting is one (asset, host, local key) with its location, first and last observation,
//! removal time and latest entry JSON. At most one sighting per (host, kind, local key) is live:
//! when an upsert names a local key with a different asset (a model file rewritten in place),
//! the previous asset's sighting there is marked removed. A removed sighting named again is live
//! again with its `first_seen` kept.
//!
//! # Batches
//! [`Store::apply_batch`] in one transaction:
//! 1. Refuses unknown and revoked agents and sequence 0; a sequence at or below the agent's last
//!    returns [`ApplyOutcome::AlreadyApplied`] and writes nothing.
//! 2. A sequence beyond the next is **applied anyway** and returns [`ApplyOutcome::Gap`]: refusing
//!    it would stall the agent, whose spool already dropped the missing batches, and the
//!    snapshot the server then requests repairs whatever the lost deltas said.
//! 3. Updates host facts and the agent's `last_seen`.
//! 4. Applies removals (`removed_at` = observed time), then upserts (`last_seen` = observed
//!    time), so a key both removed and upserted in one batch ends up live.
//! 5. Snapshot parts: the (kind, local key) of every upsert is recorded as named by the open
//!    snapshot, in the database (so it works across transactions and collector restarts:
//!    PostgreSQL keeps the keys in a table, SQLite marks the sightings with the snapshot's
//!    epoch); a part with a new snapshot id abandons the open one. Deltas arriving while a
//!    snapshot is open record their upserts too. After the last part every live sighting of the
//!    host not recorded is marked removed, unless a sequence gap hit the snapshot: then some
//!    parts may be lost, nothing is removed ([`SnapshotProgress::ClosedIncomplete`]) and the
//!    next snapshot does it. A gap
//!    just before a part marked `first_part` lost nothing of that snapshot (an agent whose spool
//!    compacted old deltas away sends exactly this), so it does not count.
//! 6. Stores the sequence as the agent's last.
//!
//! # Asset times
//! An asset's `first_seen` and `last_seen` are the collector's reception times of the batches
//! that named it, `last_seen` to [`ASSET_SEEN_RESOLUTION_MS`]: a batch moves it only when it is
//! that much older. Sightings keep the exact time. Without it every snapshot of every host
//! rewrote the rows of the fleet-wide shared assets: on SQLite those scattered pages were most
//! of a steady-state batch's writes, and on PostgreSQL each was a row lock the collectors queued
//! on (docs/scale.md).
//!
//! # Package files
//! A model sighting whose entry has an `owner` object is a file an installed package shipped (a
//! test pickle of scikit-learn, docs/scan-json.md); the sighting is stored with `owned` set.
//! 1. A model asset is a **package file** when it has been seen as a package's file and no live
//!    sighting of it is a user's file (one host's own copy of the same weights makes it a user
//!    model everywhere).
//! 2. The assets listing leaves package files out unless [`AssetFilter::include_owned`] is set,
//!    except a package file with a live `dangerous` sighting, which is always listed: a hostile
//!    pickle inside a package is a supply-chain attack, not noise.
//! 3. [`AssetSummary::owned`] says which listed assets are package files; `total` counts what the
//!    filter lists.
//!
//! # Pagination
//! Listings are keyset pages in a fixed order (hosts by agent id, assets by asset id, sightings
//! by insertion). [`PageRequest::after`] is the previous page's [`Page::next_cursor`], an opaque
//! string; `next_cursor` is `None` on the last page. Rows added or removed between pages neither
//! shift nor repeat the others (unlike offsets), which matters while batches keep arriving.
//! [`Page::total`] counts the whole listing when the page was read. Limits: 0 means 100, at most
//! 1000. An asset summary lists at most [`AssetSummary::MAX_HOSTNAMES`] hostnames and counts
//! them all in `live_hosts`.
//!
//! # Tokens
//! Enrollment tokens allow N enrollments until an expiry or a revocation; API tokens
//! authenticate the HTTP API until an optional expiry or a revocation, with the scopes they
//! were given ([`Scope`]), and remember when they were last used (to the minute). Tokens are
//! listed and revoked by their public id. Only the SHA-256 of a secret is stored ([`secret`]); a secret is shown once.
//! Spending a use is one conditional update, so two enrollments racing for the last use cannot
//! both win.

/// How far an asset's `last_seen_ms` may lag the last batch that named it (module docs,
/// "Asset times").
pub const ASSET_SEEN_RESOLUTION_MS: i64 = 60_000;

pub(crate) mod audit_detail;
pub(crate) mod batch_log;
pub mod error;
pub mod identity;
pub mod limits;
pub mod postgres;
pub(crate) mod rate_window;
pub mod secret;
pub mod sqlite;
pub mod types;

pub use error::{BackendError, StoreError, TokenError};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use types::*;

/// The collector's persistent state. Each method is one transaction (module docs).
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Registers a new agent or refreshes an existing one's certificate, hostname and version;
    /// its sequence, sightings and enrollment time are kept. Refused for a revoked agent.
    fn upsert_agent(&self, agent: &AgentRegistration) -> Result<(), StoreError>;

    /// Keeps the identity facts `agent_id` stated at enrollment (JSON, bounded by the caller).
    fn set_identity_facts(&self, agent_id: &str, identity_json: &str) -> Result<(), StoreError>;

    /// Decommissions the host of `agent_id`: its live sightings close, its agent is revoked,
    /// its history stays. False when it already was.
    fn decommission_agent(&self, agent_id: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// Revokes an agent: its batches and renewals are refused from now on. Its sightings stay.
    fn revoke_agent(&self, agent_id: &str, now_ms: i64) -> Result<(), StoreError>;

    /// The agent with this id.
    fn agent(&self, agent_id: &str) -> Result<Option<Agent>, StoreError>;

    /// Every agent (revoked ones included) enrolled with this machine fingerprint, oldest first:
    /// enrollment decides between new host, reinstall and clone from them.
    fn agents_with_machine_fingerprint(&self, fingerprint: &str) -> Result<Vec<Agent>, StoreError>;

    /// Registers a newly enrolled agent with the SHA-256 of its install key (`None` when it sent
    /// none usable) and settles its host's status atomically: new; reinstall, proven by a live
    /// agent with its fingerprint holding the same install key (superseded at the new agent's
    /// first complete snapshot); or clone, a shared fingerprint without proof, which supersedes
    /// nothing (docs/fleet.md).
    fn enroll_agent(
        &self,
        agent: &AgentRegistration,
        install_key_sha256: Option<&str>,
    ) -> Result<HostStatus, StoreError>;

    /// Called when a superseded agent speaks again: it was a clone, not a reinstall. Makes it
    /// live and flags it and the live agents sharing its fingerprint as clones; `true` when it
    /// was superseded (its sightings are closed, so it owes a snapshot).
    fn resurface_agent(&self, agent_id: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// Applies one batch of `agent_id` atomically and idempotently (module docs).
    fn apply_batch(&self, agent_id: &str, batch: &IngestBatch) -> Result<ApplyOutcome, StoreError>;

    /// Creates an enrollment token and returns its secret, which is not stored.
    fn create_enrollment_token(&self, token: &NewEnrollmentToken) -> Result<IssuedToken, StoreError>;

    /// Spends one use of the token with this secret, atomically.
    fn consume_enrollment_token(&self, secret: &str, now_ms: i64) -> Result<TokenUse, TokenError>;

    /// Every enrollment token (revoked, spent and expired ones too), oldest first; no secret.
    fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentToken>, StoreError>;

    /// Revokes an enrollment token: no one enrolls with it from now on; `false` when no
    /// unrevoked token has this id.
    fn revoke_enrollment_token(&self, token_id: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// Creates an API bearer token and returns its secret, which is not stored.
    fn create_api_token(&self, token: &NewApiToken) -> Result<IssuedToken, StoreError>;

    /// The unrevoked, unexpired API token with this secret, if any, with its use recorded (to
    /// the minute: [`ApiToken::LAST_USED_GRANULARITY_MS`]).
    fn verify_api_token(&self, secret: &str, now_ms: i64) -> Result<Option<ApiToken>, StoreError>;

    /// Every API token (revoked and expired ones too), oldest first; no secret.
    fn list_api_tokens(&self) -> Result<Vec<ApiToken>, StoreError>;

    /// Revokes an API token; `false` when no unrevoked token has this id.
    fn revoke_api_token(&self, token_id: &str, now_ms: i64) -> Result<bool, StoreError>;

    /// A page of hosts, by agent id, with their live sighting counts.
    fn hosts(&self, filter: &HostFilter, page: &PageRequest) -> Result<Page<HostSummary>, StoreError>;

    /// A page of assets, by asset id, with live sighting counts and hostnames.
    fn assets(&self, filter: &AssetFilter, page: &PageRequest) -> Result<Page<AssetSummary>, StoreError>;

    /// One asset and a page of its sightings, live and removed.
    fn asset(&self, asset_id: &str, sightings: &PageRequest) -> Result<Option<AssetDetail>, StoreError>;

    /// What changed in the inventory since `since_ms`: new assets, sightings that appeared and
    /// sightings removed, oldest first, each list cut at `limit`.
    fn changes(&self, since_ms: i64, limit: u32) -> Result<Changes, StoreError>;

    /// Keeps `record` as `agent_id`'s update state, replacing the last one, and its running
    /// version as the agent's version.
    fn record_update(&self, agent_id: &str, record: &UpdateRecord) -> Result<(), StoreError>;

    /// How `version` (archive `sha256`) fared in `cohort` of `channel`, from every agent's last
    /// update report; a rollback counts only from an agent that downloaded that archive.
    fn rollout_tally(
        &self,
        channel: &str,
        cohort: &str,
        version: &str,
        sha256: &str,
    ) -> Result<RolloutTally, StoreError>;

    /// `agent_id` downloaded the release archive `sha256` at `now_ms`.
    fn record_download(&self, agent_id: &str, sha256: &str, now_ms: i64) -> Result<(), StoreError>;

    /// Marks `agent_id` as heard from at `now_ms` (a stream opened: the heartbeat).
    fn touch_agent(&self, agent_id: &str, now_ms: i64) -> Result<(), StoreError>;

    /// Counts one message of `agent_id` against its current rate-limit window
    /// (collector/src/rate.rs), which every collector on this store shares: `None` when it fits
    /// (a window that is over starts again with it), else how many milliseconds remain of the
    /// window, and nothing is counted.
    fn admit_message(
        &self,
        agent_id: &str,
        charge: &RateCharge,
        budget: &RateBudget,
    ) -> Result<Option<i64>, StoreError>;

    /// Counts the batch `batch` of `agent_id` against its rate-limit window as
    /// [`Store::admit_message`] does with `charge`, and applies it when it fits as
    /// [`Store::apply_batch`] does: `Ok(Err(wait_ms))` when it is over the limit, and nothing is
    /// applied. A batch refused by `apply_batch`'s rules is still counted. A backend may do both
    /// in one transaction (SQLite does: one commit, not two, per batch); then a database failure
    /// undoes the count with the batch, where the default keeps the count it committed first.
    /// Either way the entries are parsed before the count: an agent over its limit costs the
    /// parse of the one batch that ends its stream.
    fn admit_and_apply(
        &self,
        agent_id: &str,
        charge: &RateCharge,
        budget: &RateBudget,
        batch: &IngestBatch,
    ) -> Result<Result<ApplyOutcome, i64>, StoreError> {
        if let Some(wait) = self.admit_message(agent_id, charge, budget)? {
            return Ok(Err(wait));
        }
        self.apply_batch(agent_id, batch).map(Ok)
    }

    /// The live sightings a graph is drawn from: a host's models and processes, or an asset's
    /// sightings and the processes on any host that have it open (at most 5,000 each).
    fn graph_entries(&self, agent_id: Option<&str>, asset_id: Option<&str>) -> Result<Vec<LiveEntry>, StoreError>;

    /// Up to `limit` sightings matching `filter` after `after`, in (asset id, agent id, sighting
    /// id) order: an export reads the inventory chunk by chunk, so a million sightings never sit
    /// in memory and no transaction is held between chunks (docs/exports.md, *Consistency*).
    fn export_sightings(
        &self,
        filter: &ExportFilter,
        after: Option<&SightingKey>,
        limit: u32,
    ) -> Result<Vec<ExportSighting>, StoreError>;

    /// The model assets `agent_id`'s host holds live at any of `paths` (their local keys), or
    /// whose digest is one of `sha256s` (lowercase hex): the models a process there has open.
    /// Sorted, distinct; indexes only.
    fn models_at(&self, agent_id: &str, paths: &[String], sha256s: &[String]) -> Result<Vec<String>, StoreError>;

    /// Every unrevoked host and its live sightings, for the findings rules.
    fn live_inventory(&self) -> Result<LiveInventory, StoreError>;

    /// Makes the stored findings what `found` says at `now_ms` (`crate::findings`, *Lifecycle*):
    /// new ones open, returning ones reopen, missing ones resolve, expired acknowledgements end.
    fn reconcile_findings(&self, found: &[NewFinding], now_ms: i64) -> Result<FindingChanges, StoreError>;

    /// A page of findings matching `filter`, by id.
    fn findings(&self, filter: &FindingFilter, page: &PageRequest) -> Result<Page<FindingRecord>, StoreError>;

    /// One finding.
    fn finding(&self, finding_id: &str) -> Result<Option<FindingRecord>, StoreError>;

    /// A page of the audit trail, oldest first, from `since_ms` when given.
    fn audit_log(&self, since_ms: Option<i64>, page: &PageRequest) -> Result<Page<AuditRecord>, StoreError>;

    /// Up to `limit` finding records of the audit trail (`finding.*`) after `after_seq`, oldest
    /// first: the SIEM outbox.
    fn finding_events(&self, after_seq: u64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;

    /// The last audit sequence SIEM target `target` accepted (0 when none).
    fn siem_cursor(&self, target: &str) -> Result<u64, StoreError>;

    /// Target `target` accepted everything up to `seq`, `delivered` events of it, at `now_ms`.
    fn advance_siem_cursor(&self, target: &str, seq: u64, delivered: u64, now_ms: i64) -> Result<(), StoreError>;

    /// Target `target` failed at `now_ms` with `error`; its cursor stays.
    fn note_siem_error(&self, target: &str, error: &str, now_ms: i64) -> Result<(), StoreError>;

    /// Records in the audit trail the assets that disappeared, came back or changed verdict
    /// since the last call; how many records it appended.
    fn reconcile_asset_states(&self, now_ms: i64) -> Result<u64, StoreError>;

    /// Recomputes the audit chain and names its first broken record.
    fn verify_audit(&self) -> Result<AuditVerification, StoreError>;

    /// Records `policy` as the newest applied policy; refused unless its version is higher than
    /// every one applied before.
    fn apply_policy(&self, policy: &PolicyRecord) -> Result<(), StoreError>;

    /// The newest applied policy, if any.
    fn current_policy(&self) -> Result<Option<PolicyRecord>, StoreError>;

    /// Keeps `report_json` as the last push to CMDB target `target` (`crate::cmdb`), at `at_ms`.
    fn record_cmdb_push(&self, target: &str, at_ms: i64, report_json: &str) -> Result<(), StoreError>;

    /// The last push to each CMDB target: target, when, the report JSON; by target.
    fn cmdb_pushes(&self) -> Result<Vec<(String, i64, String)>, StoreError>;

    /// Acknowledges an open or reopened finding; `None` when there is no such finding.
    /// Refused for a resolved one (there is nothing to accept).
    fn acknowledge_finding(&self, finding_id: &str, ack: &Acknowledgement)
        -> Result<Option<FindingRecord>, StoreError>;

    /// The dashboard's overview ([`Overview`]): its counts are the totals of the hosts, assets
    /// and findings listings with the matching filters, all read in one transaction.
    fn overview(&self, request: &OverviewRequest) -> Result<Overview, StoreError>;
}

/// Calls `each` on every item of a keyset listing, page after page of `limit` (`fetch` reads
/// one page): what exports and the CMDB push walk hosts, assets and findings with.
pub fn each_page<T, E: From<StoreError>>(
    limit: u32,
    mut fetch: impl FnMut(&PageRequest) -> Result<Page<T>, StoreError>,
    mut each: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let mut page = PageRequest { after: None, limit };
    loop {
        let listing = fetch(&page)?;
        for item in listing.items {
            each(item)?;
        }
        match listing.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => return Ok(()),
        }
    }
}

/// Calls `each` on every sighting `filter` matches, reading them in chunks of 1,000 through
/// [`Store::export_sightings`]: what exports and the CMDB push walk instead of loading the
/// inventory, so their memory does not grow with it.
pub fn each_sighting<E: From<StoreError>>(
    store: &dyn Store,
    filter: &ExportFilter,
    mut each: impl FnMut(&ExportSighting) -> Result<(), E>,
) -> Result<(), E> {
    let mut after: Option<SightingKey> = None;
    loop {
        let chunk = store.export_sightings(filter, after.as_ref(), 1000)?;
        for sighting in &chunk {
            each(sighting)?;
        }
        match chunk.last() {
            Some(last) => after = Some(last.key.clone()),
            None => return Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
