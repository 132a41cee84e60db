//! Domain types of the store: what ingest hands in and what the API reads out.
//!
//! None of them is a wire or database type: ingest converts `aiscout.v1` messages into these,
//! and every backend maps them onto its own tables. Times are Unix milliseconds (`*_ms`), the
//! unit of the wire protocol's `observed_at_ms`.

use std::fmt;

/// What an inventory entry is (the wire's `AssetKind` without `UNSPECIFIED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AssetKind {
    /// A model file or multi-file model (`models[]` of the scan document).
    Model,
    /// An installed package or native executable (`frameworks[]`).
    Framework,
    /// A running inference server or ML process (`runtimes[]`).
    Runtime,
    /// An MCP client configuration or an AI API key by name (`tooling[]`).
    Tooling,
}

impl AssetKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [AssetKind; 4] = [Self::Model, Self::Framework, Self::Runtime, Self::Tooling];

    /// The kind's name in asset ids, the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Model => "model",
            Self::Framework => "framework",
            Self::Runtime => "runtime",
            Self::Tooling => "tooling",
        }
    }

    /// The kind named `name` (the inverse of [`AssetKind::as_str`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for AssetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A model's safety verdict as its sightings state it (`safety.verdict` of the scan JSON),
/// ordered from harmless to worst: an asset's fleet-wide verdict is the greatest of its live
/// sightings', so a flood of `safe` sightings cannot hide one `dangerous`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    /// Loading runs no code.
    Safe,
    /// The agent could not tell, or said something this collector does not know.
    Unknown,
    /// Loading may run code.
    Suspicious,
    /// Loading runs code.
    Dangerous,
}

impl Verdict {
    /// Every verdict, worst last.
    pub const ALL: [Verdict; 4] = [Self::Safe, Self::Unknown, Self::Suspicious, Self::Dangerous];

    /// Its name in the scan JSON, the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safe => "safe",
            Self::Unknown => "unknown",
            Self::Suspicious => "suspicious",
            Self::Dangerous => "dangerous",
        }
    }

    /// The verdict named `name`; any other text is `Unknown` (it comes from an agent).
    pub fn from_name(name: &str) -> Self {
        Self::ALL.into_iter().find(|v| v.as_str() == name).unwrap_or(Self::Unknown)
    }
}

/// One entry of a host's inventory, as an agent stated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestAsset {
    /// What the entry is; selects the identity rule.
    pub kind: AssetKind,
    /// The entry's stable key on its host: what later deltas update or remove.
    pub local_key: String,
    /// The entry as the public JSON of `docs/scan-json.md`; the identity is derived from it.
    pub json: String,
}

/// An entry that is gone from its host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRemoval {
    /// Kind of the entry that went away.
    pub kind: AssetKind,
    /// Its local key, as the upsert that created it gave it.
    pub local_key: String,
}

/// Whether a batch states changes or the whole inventory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchMode {
    /// Changes only: what is not named is unchanged.
    Delta,
    /// One part of a snapshot: after the last part, what no part named is removed.
    SnapshotPart {
        /// Shared by every part of one snapshot.
        snapshot_id: u64,
        /// This part opens the snapshot: a sequence gap just before it lost none of its parts.
        first_part: bool,
        /// This part closes the snapshot.
        last_part: bool,
    },
}

/// Facts about the host sent with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// The scan document's `host` object, kept as the host's latest facts.
    pub json: String,
    /// The hostname the agent reports now (hosts are renamed).
    pub hostname: String,
    /// The machine fingerprint the agent reports now; differing from the enrolled one hints at a
    /// clone.
    pub machine_fingerprint: String,
}

/// A unit of inventory from one agent (the wire's `Batch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestBatch {
    /// Per-agent sequence number, from 1, growing by 1: the idempotency key.
    pub sequence: u64,
    /// Delta or snapshot part.
    pub mode: BatchMode,
    /// Entries created or changed.
    pub upserts: Vec<IngestAsset>,
    /// Entries gone.
    pub removals: Vec<IngestRemoval>,
    /// Host facts, when the batch carries them.
    pub host: Option<HostFacts>,
    /// When the agent observed this state (agent clock): sightings' `last_seen`.
    pub observed_at_ms: i64,
    /// When the collector received the batch (collector clock): the agent's `last_seen`.
    pub received_at_ms: i64,
}

/// What applying a batch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The batch was the next one and is stored.
    Applied(ApplySummary),
    /// Sequences `expected..sequence` never arrived. The batch is stored anyway and is now the
    /// agent's last sequence; the server should ask the agent for a snapshot.
    Gap {
        /// The sequence that should have come next.
        expected: u64,
        /// What the batch did.
        summary: ApplySummary,
    },
    /// The sequence was applied before: nothing changed. The server still acknowledges it.
    AlreadyApplied {
        /// The agent's last applied sequence.
        last_sequence: u64,
    },
}

/// Counts of what one applied batch changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// Upserts stored.
    pub upserted: u64,
    /// Live sightings marked removed by the batch's removals.
    pub removed: u64,
    /// Upserts skipped: no identity could be derived, or over a bound (`store::limits`).
    pub rejected: Vec<RejectedEntry>,
    /// Why the batch's host facts were not stored, when they were over a bound.
    pub host_rejected: Option<String>,
    /// What happened to the snapshot this batch belongs to.
    pub snapshot: SnapshotProgress,
}

/// An upsert the store could not use; the rest of its batch is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedEntry {
    /// Kind the agent gave.
    pub kind: AssetKind,
    /// Local key of the entry, to find it on the host (cut to 256 bytes).
    pub local_key: String,
    /// Why it was not stored.
    pub reason: String,
}

/// The state of a snapshot after a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SnapshotProgress {
    /// No snapshot is open (the batch is a delta).
    #[default]
    None,
    /// A snapshot is open: this batch's upserts were recorded under it, more parts are to come.
    Open,
    /// The last part arrived: this many live sightings no part named were marked removed.
    Closed {
        /// Sightings marked removed.
        removed: u64,
    },
    /// The last part arrived but a sequence gap hit the snapshot, so some parts may be lost:
    /// nothing was removed (removing on partial knowledge would hide live assets).
    ClosedIncomplete,
}

/// An agent as enrollment registers it (and certificate renewal refreshes it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRegistration {
    /// The id the collector gave the agent: its certificate's common name.
    pub agent_id: String,
    /// Serial number of the agent's current certificate.
    pub cert_serial: String,
    /// SHA-256 fingerprint of the agent's current certificate.
    pub cert_fingerprint: String,
    /// When the current certificate expires.
    pub cert_not_after_ms: i64,
    /// SHA-256 (hex) of the public key of the CA that signed the current certificate.
    pub cert_ca_sha256: String,
    /// The host's composite machine fingerprint at enrollment.
    pub machine_fingerprint: String,
    /// Hostname at enrollment.
    pub hostname: String,
    /// Agent version at enrollment.
    pub agent_version: String,
    /// Registration time (enrollment time for a new agent).
    pub now_ms: i64,
}

/// An agent (one host's install) as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// The agent's id.
    pub agent_id: String,
    /// Serial number of its current certificate.
    pub cert_serial: String,
    /// SHA-256 fingerprint of its current certificate.
    pub cert_fingerprint: String,
    /// When its current certificate expires.
    pub cert_not_after_ms: i64,
    /// Machine fingerprint at enrollment.
    pub machine_fingerprint: String,
    /// Machine fingerprint of the latest batch, when one carried host facts.
    pub reported_machine_fingerprint: Option<String>,
    /// Hostname at enrollment: what the fleet shows (a batch cannot rename a host).
    pub hostname: String,
    /// Hostname of the latest batch's host facts, when one carried them (unverified).
    pub reported_hostname: Option<String>,
    /// Bytes of sightings the agent has made the store keep (its quota counts these).
    pub stored_bytes: u64,
    /// Agent version at its last registration, or the one it runs by its last update report.
    pub agent_version: String,
    /// First registration.
    pub enrolled_at_ms: i64,
    /// Last batch received (collector clock), if any.
    pub last_seen_ms: Option<i64>,
    /// Last applied batch sequence (0 before the first).
    pub last_sequence: u64,
    /// When it was revoked; a revoked agent's batches are refused.
    pub revoked_at_ms: Option<i64>,
    /// Latest host facts JSON.
    pub host_facts_json: Option<String>,
    /// SHA-256 (hex) of the install key sent at enrollment, when one was.
    pub install_key_sha256: Option<String>,
    /// The agent that replaced this one when the host enrolled again (a reinstall).
    pub superseded_by: Option<String>,
    /// When it was superseded.
    pub superseded_at_ms: Option<i64>,
    /// When it was found to share its machine fingerprint with another live agent (a clone).
    pub clone_detected_at_ms: Option<i64>,
    /// SHA-256 (hex) of the public key of the CA that signed its current certificate; `None`
    /// when it was signed before this was recorded.
    pub cert_ca_sha256: Option<String>,
    /// When an operator decommissioned its host: its sightings closed, the agent revoked.
    pub decommissioned_at_ms: Option<i64>,
    /// The identity facts stated at enrollment (JSON: machine id, product UUID and serial,
    /// MACs, cloud instance id).
    pub identity_json: Option<String>,
}

impl Agent {
    /// `decommissioned`, `revoked`, `silent` (not heard from since `silent_before_ms`) or
    /// `online`.
    pub fn status(&self, silent_before_ms: i64) -> &'static str {
        if self.decommissioned_at_ms.is_some() {
            "decommissioned"
        } else if self.revoked_at_ms.is_some() {
            "revoked"
        } else if self.last_seen_ms.unwrap_or(self.enrolled_at_ms) < silent_before_ms {
            "silent"
        } else {
            "online"
        }
    }

    /// How the collector regards this agent's identity (docs/fleet.md).
    pub fn identity_status(&self) -> IdentityStatus {
        if self.revoked_at_ms.is_some() {
            IdentityStatus::Revoked
        } else if self.superseded_by.is_some() {
            IdentityStatus::Superseded
        } else if self.clone_detected_at_ms.is_some() {
            IdentityStatus::Clone
        } else {
            IdentityStatus::Unique
        }
    }
}

/// How the collector regards an agent's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityStatus {
    /// The only live agent with its machine fingerprint.
    Unique,
    /// Shares its machine fingerprint with another live agent.
    Clone,
    /// Replaced by a newer enrollment of its host; its sightings are closed.
    Superseded,
    /// Revoked by an operator.
    Revoked,
}

impl IdentityStatus {
    /// The name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unique => "unique",
            Self::Clone => "clone",
            Self::Superseded => "superseded",
            Self::Revoked => "revoked",
        }
    }
}

/// What an enrollment concluded about the host (docs/fleet.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostStatus {
    /// No live agent had the machine fingerprint.
    New,
    /// The live agents with the fingerprint hold the new agent's install key: the same
    /// installation enrolled again. They are superseded at its first complete snapshot.
    Reinstall {
        /// The agents to supersede, oldest first.
        superseded: Vec<String>,
    },
    /// Live agents share the fingerprint without proof of being this installation: all are
    /// flagged as clones and nothing is superseded.
    Clone {
        /// The live agents sharing the fingerprint, oldest first.
        of: Vec<String>,
    },
}

impl HostStatus {
    /// The name sent to the agent as `EnrollResponse.host_status`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Reinstall { .. } => "reinstall",
            Self::Clone { .. } => "clone",
        }
    }
}

/// What a new enrollment token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEnrollmentToken {
    /// How many enrollments it allows (at least 1).
    pub uses: u32,
    /// It is refused from this time on.
    pub expires_at_ms: i64,
    /// Operator's note (team, purpose).
    pub label: String,
    /// Creation time.
    pub now_ms: i64,
}

/// A token's secret: shown once at creation, never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenSecret(pub(crate) String);

impl TokenSecret {
    /// The secret text to hand to the operator.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSecret(<redacted>)")
    }
}

/// A token just created: its public id and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    /// Public id, to list and revoke the token.
    pub id: String,
    /// The secret; the store keeps only its SHA-256.
    pub secret: TokenSecret,
}

/// A successful use of an enrollment token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    /// The token used.
    pub token_id: String,
    /// Its label, to tag the new agent.
    pub label: String,
    /// Uses left after this one.
    pub uses_left: u32,
}

/// An enrollment token as `token list` shows it: everything but its secret, which is not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentToken {
    /// Public id, to revoke the token.
    pub id: String,
    /// Operator's note.
    pub label: String,
    /// Enrollments it still allows.
    pub uses_left: u32,
    /// It is refused from this time on.
    pub expires_at_ms: i64,
    /// Creation time.
    pub created_at_ms: i64,
    /// When an operator revoked it; a revoked token enrolls no one.
    pub revoked_at_ms: Option<i64>,
}

/// What an API token may do. A route declares the one scope it needs ([`crate::api`]); scopes
/// do not imply one another, so a token holds exactly what it was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Read the inventory (hosts, assets, sightings).
    Read,
    /// Bulk exports of the inventory.
    Export,
    /// Operations that change the collector (revocations, tokens).
    Admin,
}

impl Scope {
    /// Every scope, in the order they are shown.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Export, Scope::Admin];

    /// Its name on the command line, in the database and in errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Export => "export",
            Self::Admin => "admin",
        }
    }

    /// The scope named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a new API token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApiToken {
    /// Operator's note (who holds it, what for).
    pub label: String,
    /// What it may do (at least one).
    pub scopes: Vec<Scope>,
    /// It is refused from this time on; `None`: until revoked.
    pub expires_at_ms: Option<i64>,
    /// Creation time.
    pub now_ms: i64,
}

/// An API bearer token: what a verified request carries, and what `api-token list` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Public id.
    pub id: String,
    /// Operator's note.
    pub label: String,
    /// What it may do, sorted.
    pub scopes: Vec<Scope>,
    /// Creation time.
    pub created_at_ms: i64,
    /// It is refused from this time on; `None`: until revoked.
    pub expires_at_ms: Option<i64>,
    /// When it last authenticated a request, to the minute ([`ApiToken::LAST_USED_GRANULARITY_MS`]).
    pub last_used_at_ms: Option<i64>,
    /// When an operator revoked it.
    pub revoked_at_ms: Option<i64>,
}

impl ApiToken {
    /// `last_used_at_ms` is written when it is older than this, so reading the API does not
    /// write the database on every request.
    pub const LAST_USED_GRANULARITY_MS: i64 = 60_000;

    /// Whether it holds `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Which page of a listing to return (keyset pagination, see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageRequest {
    /// `next_cursor` of the previous page; `None` for the first page.
    pub after: Option<String>,
    /// Items per page; 0 means [`PageRequest::DEFAULT_LIMIT`], larger than
    /// [`PageRequest::MAX_LIMIT`] is clamped.
    pub limit: u32,
}

impl PageRequest {
    /// Items per page when the request says 0.
    pub const DEFAULT_LIMIT: u32 = 100;
    /// The most items one page holds.
    pub const MAX_LIMIT: u32 = 1000;

    /// The first page with `limit` items.
    pub fn first(limit: u32) -> Self {
        Self { after: None, limit }
    }

    /// The limit actually applied.
    pub fn effective_limit(&self) -> u32 {
        match self.limit {
            0 => Self::DEFAULT_LIMIT,
            n => n.min(Self::MAX_LIMIT),
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next_cursor: Option<String>,
    /// Items in the whole listing (with its filter) when this page was read.
    pub total: u64,
}

/// A host in the hosts listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSummary {
    /// The agent behind the host.
    pub agent: Agent,
    /// Live sightings on the host.
    pub live_sightings: u64,
    /// Where its self-update stands, when it has checked the release channel.
    pub update: Option<UpdateRecord>,
    /// Its risk score, 0 to 100 (`crate::findings::risk`).
    pub risk: u32,
}

/// What one agent may send in one rate-limit window (collector/src/rate.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateBudget {
    /// Messages: batches, and every `Hello` after a stream's first.
    pub messages_per_minute: u32,
    /// Bytes of every message, `Hello`s included.
    pub bytes_per_minute: u64,
}

/// One message counted against its agent's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateCharge {
    /// 1 for a counted message, 0 for a stream's first `Hello` (its bytes still count).
    pub messages: u32,
    /// Its encoded size.
    pub bytes: u64,
    /// When it arrived (the collector's clock).
    pub now_ms: i64,
}

/// An agent's update state, as it last reported it with a check of the release channel
/// (checked and truncated by the gRPC service; still the agent's word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateRecord {
    /// The channel it follows.
    pub channel: String,
    /// Its cohort.
    pub cohort: String,
    /// The version it runs.
    pub agent_version: String,
    /// `current`, `staged`, `switching`, `updated`, `rolled_back` or `error`.
    pub state: String,
    /// The release the state concerns (empty for `current` and `error`).
    pub version: String,
    /// Why, for `rolled_back` and `error`.
    pub detail: String,
    /// When the collector received the report.
    pub reported_at_ms: i64,
}

/// How a release fared in one cohort of one channel: agents that run it and agents that
/// rolled it back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RolloutTally {
    /// Agents whose last report says they run the release.
    pub running: u64,
    /// Agents whose last report says they rolled it back.
    pub rolled_back: u64,
}

/// Filter of the hosts listing; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFilter {
    /// `online`, `silent`, `revoked` or `decommissioned` ([`Agent::status`]).
    pub status: Option<String>,
    /// Hosts not heard from before this are silent (ms).
    pub silent_before_ms: i64,
    /// Agents running this version.
    pub version: Option<String>,
    /// Only this agent.
    pub agent_id: Option<String>,
    /// Hosts with an open or reopened finding at least this severe.
    pub min_severity: Option<String>,
    /// Hosts not heard from since this time (ms).
    pub not_seen_since: Option<i64>,
}

/// Filter of the assets listing; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AssetFilter {
    /// Only assets of this kind.
    pub kind: Option<AssetKind>,
    /// Also the package files: models that installed packages shipped and that no host has as
    /// a user's file, with no dangerous live sighting (store module docs, "Package files").
    pub include_owned: bool,
    /// Also assets with no live sighting left.
    pub include_removed: bool,
    /// A substring (case-insensitive) of a live sighting's path, own name, Hugging Face repo,
    /// Ollama name, package name or SHA-256.
    pub search: Option<String>,
    /// A live sighting on this host (agent id).
    pub agent_id: Option<String>,
    /// A live sighting in this format (models).
    pub format: Option<String>,
    /// A live sighting with this verdict (models).
    pub verdict: Option<Verdict>,
    /// First seen at or after (ms).
    pub first_seen_since: Option<i64>,
    /// Last seen at or after (ms).
    pub last_seen_since: Option<i64>,
    /// A live sighting with this ecosystem (frameworks: `pypi`, `npm`, `conda`, `native`).
    pub ecosystem: Option<String>,
    /// A live sighting with exactly this package name (frameworks).
    pub name: Option<String>,
    /// A live sighting with exactly this version (frameworks).
    pub version: Option<String>,
    /// Exposure: a runtime listening (or a model open by a runtime listening) with this
    /// exposure (`all_interfaces`, `specific`, `loopback`), or `exposed` for any but loopback.
    pub exposure: Option<String>,
}

/// An asset in the assets listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetSummary {
    /// Stable, URL-safe id (module docs).
    pub id: String,
    /// What the asset is.
    pub kind: AssetKind,
    /// The canonical identity the id is derived from (module docs).
    pub identity: String,
    /// First sighting anywhere.
    pub first_seen_ms: i64,
    /// Latest sighting anywhere.
    pub last_seen_ms: i64,
    /// Sightings not removed.
    pub live_sightings: u64,
    /// Distinct hosts with a live sighting.
    pub live_hosts: u64,
    /// Hostnames of those hosts, sorted, at most [`AssetSummary::MAX_HOSTNAMES`].
    pub hostnames: Vec<String>,
    /// A model's fleet-wide verdict: the worst of its live sightings' (`None` for other kinds,
    /// or a model with no live sighting).
    pub verdict: Option<Verdict>,
    /// How many distinct hosts state each verdict in a live sighting, worst first (models).
    pub verdict_hosts: Vec<(Verdict, u64)>,
    /// A package file: a model seen as a file of an installed package and live nowhere as a
    /// user's file (store module docs, "Package files").
    pub owned: bool,
    /// The entry of its most recently seen live sighting (the agent's JSON), for the columns a
    /// table shows: a model's name, format and size, a framework's parts, a server's ports.
    pub latest_entry: Option<String>,
}

impl AssetSummary {
    /// Hostnames listed per asset; `live_hosts` tells how many there are.
    pub const MAX_HOSTNAMES: usize = 50;
}

/// One asset seen at one place on one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The host's agent.
    pub agent_id: String,
    /// The hostname the host's agent enrolled with.
    pub hostname: String,
    /// The hostname the agent reports in its latest batch, when it reported one (unverified).
    pub reported_hostname: Option<String>,
    /// The entry's key on the host.
    pub local_key: String,
    /// Where on the host: a model's path, a framework's environment, a runtime's executable, a
    /// tooling file.
    pub path_or_environment: String,
    /// First observed (agent clock, never later than the collector received it).
    pub first_seen_ms: i64,
    /// Last observed (agent clock, never later than the collector received it).
    pub last_seen_ms: i64,
    /// When it went away; `None` while live.
    pub removed_at_ms: Option<i64>,
    /// The latest entry JSON.
    pub json: String,
}

/// An asset with a page of its sightings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetDetail {
    /// The asset.
    pub asset: AssetSummary,
    /// Its sightings, live and removed, in a stable order.
    pub sightings: Page<Sighting>,
}

/// Which sightings an export reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Only this kind of asset.
    pub kind: Option<AssetKind>,
    /// Only this host (agent id).
    pub agent_id: Option<String>,
    /// Removed sightings too (an export of history), not only live ones.
    pub include_removed: bool,
}

/// Where a chunk of [`crate::store::Store::export_sightings`] ends: the next chunk starts after it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct SightingKey {
    /// The asset.
    pub asset_id: String,
    /// The host.
    pub agent_id: String,
    /// The sighting's own id, for several sightings of one asset on one host.
    pub sighting_id: i64,
}

/// One sighting as an export writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSighting {
    /// Its place in the export order (asset, host, sighting).
    pub key: SightingKey,
    /// The asset's kind.
    pub kind: AssetKind,
    /// The host's enrolled hostname.
    pub hostname: String,
    /// Where on the host (the sighting's `path_or_environment`).
    pub location: String,
    /// First observation (ms).
    pub first_seen_ms: i64,
    /// Latest observation (ms).
    pub last_seen_ms: i64,
    /// When it was seen gone, if it was.
    pub removed_at_ms: Option<i64>,
    /// A model sighting's verdict.
    pub verdict: Option<Verdict>,
    /// The entry as the agent last sent it (scan JSON).
    pub entry_json: String,
}

/// A live sighting of an unrevoked agent, as the findings rules read the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEntry {
    /// The host's agent.
    pub agent_id: String,
    /// What the asset is.
    pub kind: AssetKind,
    /// The fleet-wide asset.
    pub asset_id: String,
    /// The entry's key on its host.
    pub local_key: String,
    /// The entry as the agent sent it (the scan document's entry; untrusted).
    pub entry_json: String,
    /// When the host first had it (collector clock).
    pub first_seen_ms: i64,
}

/// An unrevoked host, as the findings rules read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveHost {
    /// Its agent.
    pub agent_id: String,
    /// The hostname it enrolled with.
    pub hostname: String,
    /// When it was last heard from (a stream or a batch), if ever.
    pub last_seen_ms: Option<i64>,
    /// When it enrolled.
    pub enrolled_at_ms: i64,
}

/// What the findings rules read: every unrevoked host and the live sightings of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveInventory {
    /// The hosts, by agent id.
    pub hosts: Vec<LiveHost>,
    /// Their live sightings, by agent id then kind then local key.
    pub entries: Vec<LiveEntry>,
}

/// A finding as an evaluation of the rules states it now (`crate::findings`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFinding {
    /// Stable id: from the rule and the subject.
    pub finding_id: String,
    /// The rule.
    pub rule_id: String,
    /// What it is about, within the rule (an asset id, a host and a server, …).
    pub subject: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    pub severity: String,
    /// One line.
    pub title: String,
    /// The evidence, JSON.
    pub evidence_json: String,
    /// The hosts (agent ids) it concerns.
    pub hosts: Vec<String>,
    /// The assets it concerns.
    pub assets: Vec<String>,
    /// The policy exception that accepts it, if one does: it is acknowledged by the policy.
    pub exception: Option<Acknowledgement>,
}

/// What acknowledgements made by a policy exception start their `by` with (`policy v3: owner`).
pub const POLICY_ACK_PREFIX: &str = "policy ";

/// An applied policy (`crate::policy`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRecord {
    /// Its version (the file's `version`).
    pub version: u64,
    /// Hex SHA-256 of its text.
    pub sha256: String,
    /// The file as applied.
    pub text: String,
    /// When.
    pub applied_at_ms: i64,
    /// By whom (the operator's name, or the API token).
    pub applied_by: String,
}

/// An operator's acknowledgement of a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    /// Why it is accepted.
    pub reason: String,
    /// Who: the API token's label and id.
    pub by: String,
    /// When.
    pub at_ms: i64,
    /// Until when (none: until it is resolved).
    pub expires_ms: Option<i64>,
}

/// A stored finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingRecord {
    /// The finding as last evaluated.
    pub found: NewFinding,
    /// First evaluation that found it.
    pub first_seen_ms: i64,
    /// Last evaluation that found it.
    pub last_seen_ms: i64,
    /// `open`, `acknowledged`, `resolved` or `reopened`.
    pub state: String,
    /// When the state last changed.
    pub state_changed_ms: i64,
    /// When its evidence disappeared, while resolved.
    pub resolved_at_ms: Option<i64>,
    /// Times it came back after being resolved.
    pub reopened_count: u64,
    /// The acknowledgement, while acknowledged.
    pub acknowledgement: Option<Acknowledgement>,
}

/// Filter of the findings listing; every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FindingFilter {
    /// At least this severity.
    pub min_severity: Option<String>,
    /// `min_severity` only, not the severities above it.
    pub exact_severity: bool,
    /// This rule.
    pub rule_id: Option<String>,
    /// This state, or `active`: open or reopened.
    pub state: Option<String>,
    /// Concerning this host (agent id).
    pub agent_id: Option<String>,
    /// Concerning this asset.
    pub asset_id: Option<String>,
    /// Found or changed state at or after this time (ms).
    pub since_ms: Option<i64>,
    /// Of one of these rules (a framework mapping's rules: `crate::findings::rules_mapped_to`).
    pub rule_ids: Option<Vec<String>>,
}

/// What one reconciliation of findings changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FindingChanges {
    /// New findings.
    pub opened: u64,
    /// Resolved findings whose evidence returned.
    pub reopened: u64,
    /// Findings whose evidence disappeared.
    pub resolved: u64,
    /// Acknowledgements that expired.
    pub ack_expired: u64,
    /// Findings still present.
    pub kept: u64,
}

/// One record of the audit trail (`store::sqlite::audit`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Its position, from 1.
    pub seq: u64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// What happened: `finding.opened`, `policy.applied`, `agent.revoked`, …
    pub kind: String,
    /// What it happened to (a finding, agent, token or asset id, a policy version).
    pub subject: String,
    /// Details, JSON.
    pub detail_json: String,
    /// The previous record's `sha256`.
    pub prev_sha256: String,
    /// SHA-256 over `prev_sha256` and this record.
    pub sha256: String,
}

/// What checking the audit chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerification {
    /// Records checked and found intact (before the first broken one).
    pub records: u64,
    /// The first broken record and why, if one is.
    pub broken_at: Option<(u64, String)>,
}

/// A sighting that appeared or was removed (`Store::changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its asset.
    pub asset_id: String,
    /// The asset's kind.
    pub kind: String,
    /// The host's agent.
    pub agent_id: String,
    /// The host's enrolled hostname.
    pub hostname: String,
    /// The entry's key on the host.
    pub local_key: String,
    /// Where (a path, an environment, a process).
    pub location: String,
    /// The model's verdict on that host.
    pub verdict: Option<String>,
    /// When it appeared or was removed.
    pub at_ms: i64,
}

/// An asset event of the audit trail: asset id, when, the record's detail JSON.
pub type AssetEvent = (String, i64, String);

/// What changed in the inventory since a time (`GET /api/v1/changes`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    /// Assets first seen since: id, kind, identity, first seen.
    pub new_assets: Vec<(String, String, String, i64)>,
    /// How many there are (the list is cut at the limit).
    pub new_assets_total: u64,
    /// Sightings that appeared since.
    pub appeared: Vec<Change>,
    /// How many.
    pub appeared_total: u64,
    /// Sightings removed since.
    pub removed: Vec<Change>,
    /// How many.
    pub removed_total: u64,
    /// Assets that disappeared from the fleet since (the audit trail's `asset.disappeared`):
    /// id, when, the record's detail JSON.
    pub assets_disappeared: Vec<AssetEvent>,
    /// How many.
    pub assets_disappeared_total: u64,
    /// Assets whose worst live verdict changed since (`asset.verdict_changed`): id, when, detail
    /// JSON (`{"from", "to"}`).
    pub verdict_changes: Vec<AssetEvent>,
    /// How many.
    pub verdict_changes_total: u64,
}

/// One day of the findings trend: its end (ms) and, by severity, the findings open then.
pub type TrendDay = (i64, Vec<(String, u64)>);

/// What the dashboard's overview shows (`Store::overview`), read in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overview {
    /// Hosts by status (`online`, `silent`, `revoked`, `decommissioned`): the totals of the hosts
    /// listing with that status filter.
    pub hosts_by_status: Vec<(String, u64)>,
    /// Live (neither revoked, superseded nor decommissioned) agents sharing a machine with another.
    pub clones: u64,
    /// Models as the default assets listing counts them.
    pub models: u64,
    /// Models by verdict (`dangerous`, `suspicious`, `safe`): the totals of the assets listing with
    /// that verdict filter (a model with sightings of two verdicts counts under both).
    pub models_by_verdict: Vec<(String, u64)>,
    /// Inference servers listening beyond loopback (`assets?kind=runtime&exposure=exposed`).
    pub exposed_servers: u64,
    /// Open and reopened findings by severity, most severe first.
    pub open_findings: Vec<(String, u64)>,
    /// The last days, oldest first: the day's end (ms) and, by severity, the findings found by
    /// then and not resolved by then.
    pub trend: Vec<TrendDay>,
    /// The newest open or reopened critical findings, newest first.
    pub newest_critical: Vec<FindingRecord>,
    /// The models that reached the most new hosts lately: the asset and how many hosts first saw it
    /// since the window's start.
    pub spreading: Vec<(AssetSummary, u64)>,
}

/// What `Store::overview` is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverviewRequest {
    /// Now (ms).
    pub now_ms: i64,
    /// Hosts not heard from before this are silent (ms).
    pub silent_before_ms: i64,
    /// Days of trend.
    pub trend_days: u32,
    /// The spread window's start (ms).
    pub spread_since_ms: i64,
    /// Rows of the lists (newest critical findings, spreading models).
    pub list_limit: u32,
}
