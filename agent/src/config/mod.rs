//! The agent daemon's configuration: one TOML file, by default [`DEFAULT_CONFIG_PATH`].
//!
//! Every key, its default and its meaning are in `docs/agent-config.md`;
//! `packaging/agent.example.toml` states them all (a test keeps both in step with the code).
//!
//! A configuration goes through three steps:
//! 1. **loading** ([`Config::load`], or [`Config::from_str`] for text): TOML into typed
//!    structs. Every table denies unknown keys and every absent key takes its value from its
//!    table's `Default` impl, so an almost empty file is a working one. What fails here is
//!    syntax and types (a misspelt key, a string where a number goes, `"10 parsecs"` as a
//!    duration); the first such error stops loading and is reported as
//!    `path:line:column: dotted.key: message`.
//! 2. **validation** ([`Config::validate`]): the rules a type cannot express (absolute paths,
//!    ranges, `schedule.runtimes_interval <= schedule.full_interval`, a collector URL). It
//!    returns every problem at once, each naming its dotted key, so one edit fixes them all.
//!    It opens no file: whether `collector.ca_file` exists is a question for the moment it is
//!    read. Nor can it know whether the agent is enrolled, so it requires what enrolling needs
//!    (`collector.ca_file` or `collector.ca_sha256`) always.
//! 3. **use**: the daemon only ever holds a validated `Config` ([`Config::load_validated`]
//!    does steps 1 and 2; `aiscout-agent validate --config FILE` runs them and prints the
//!    result, exiting [`EXIT_INVALID_CONFIG`] on any problem). Optional values are `Option`s:
//!    an empty string in the file (`ca_file = ""`) means "not set".
//! 4. **reload** (`reload.rs`, [`Config::reloaded`]): on SIGHUP the daemon loads and
//!    validates the file again; a refused file changes nothing, a valid one applies except the
//!    keys only a restart can change ([`RESTART_ONLY`]).
//!
//! # Layout
//! - `mod.rs` (this file): the types, their `Default` impls (the one place each default is
//!   written), the errors, and step 1, loading (a `KeyTree` of the file's keys gives a serde
//!   error its dotted key).
//! - `validate.rs`: step 2, [`Config::validate`], with one `check` per table.
//! - `reload.rs`: step 4, what a running daemon takes from a new file.
//! - `values.rs`: the values written as text: sizes ([`ByteSize`]), [`Jitter`], durations and
//!   optional strings where `""` means "not set".
//! - `tests.rs`: the unit tests of all three.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::report::Section;

mod reload;
mod validate;
mod values;

pub use reload::RESTART_ONLY;

#[cfg(test)]
mod tests;

use values::{duration_text, empty_is_none, none_is_empty};
pub use values::{parse_ca_sha256, parse_duration, ByteSize, InvalidValue, Jitter};

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/aiscout/agent.toml";

/// Exit status for a configuration that cannot be read, parsed or validated (`EX_USAGE` of
/// sysexits.h, as linkerd uses).
pub const EXIT_INVALID_CONFIG: u8 = 64;

// ---------------------------------------------------------------------------------------
// The configuration.

/// The whole agent configuration (the file's top level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Directory for the spool, the hash cache, the private key and the certificate.
    pub state_dir: PathBuf,
    /// Where the inventory goes and how the collector is trusted.
    pub collector: CollectorConfig,
    /// Overrides of the host identity facts sent at enrollment.
    pub identity: IdentityConfig,
    /// When full inventories and runtime refreshes happen.
    pub schedule: ScheduleConfig,
    /// What an inventory covers.
    pub scan: ScanConfig,
    /// File watching between full inventories.
    pub watch: WatchConfig,
    /// How much of the host a scan may use.
    pub throttle: ThrottleConfig,
    /// The on-disk queue of batches not yet acknowledged by the collector.
    pub spool: SpoolConfig,
    /// Batching, retries and compression of the stream to the collector.
    pub transport: TransportConfig,
    /// Signed self-update from the collector's release channel.
    pub update: UpdateConfig,
    /// The agent's own logs.
    pub log: LogConfig,
}

/// `[update]`: signed self-update (`crate::update`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpdateConfig {
    /// Check the release channel and update.
    pub enabled: bool,
    /// Hex ed25519 public keys whose signed release metadata the agent trusts.
    pub public_keys: Vec<String>,
    /// The channel followed.
    pub channel: String,
    /// The cohort this host belongs to (releases may be offered to some cohorts only).
    pub cohort: String,
    /// Time between checks.
    #[serde(with = "duration_text")]
    pub check_interval: Duration,
    /// How long a switched-to release has to make its first acknowledged send before it is
    /// rolled back (`crate::update::switch`).
    #[serde(with = "duration_text")]
    pub health_deadline: Duration,
}

/// `[collector]`: the collector's address and trust.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// `https://host:port` of the collector; required (a daemon without one has nowhere to report).
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub url: Option<String>,
    /// More collectors sharing one store (replicas not behind one load balancer address), tried
    /// in order after `url` when it cannot be reached (`crate::fleet::channel`).
    pub failover_urls: Vec<String>,
    /// PEM file of the CA that signed the collector's certificate, trusted at enrollment; this
    /// or `ca_sha256` is required (once enrolled the agent trusts the CAs it saved).
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub ca_file: Option<PathBuf>,
    /// `sha256:<hex>` of the collector CA's public key, trusted at enrollment instead of a CA
    /// file (`crate::fleet::ca_pin`).
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub ca_sha256: Option<String>,
    /// File holding a one-time enrollment token, read only while the agent is not enrolled.
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub enrollment_token_file: Option<PathBuf>,
    /// Name to verify in the collector's certificate when it differs from the URL's host.
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub server_name: Option<String>,
}

/// `[identity]`: host identity overrides (tests give each agent on one machine its own).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IdentityConfig {
    /// Hostname to report; `None`: the system's.
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub hostname: Option<String>,
    /// Machine id to report; `None`: `/etc/machine-id`.
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub machine_id: Option<String>,
}

/// `[schedule]`: when inventories run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Time between full inventories (all sections).
    #[serde(with = "duration_text")]
    pub full_interval: Duration,
    /// Random delay added to each full inventory so a fleet does not scan in step.
    pub jitter: Jitter,
    /// Time between refreshes of the `runtimes` section alone (processes change fastest).
    #[serde(with = "duration_text")]
    pub runtimes_interval: Duration,
    /// Every Nth full inventory is sent as a full snapshot; the others as deltas.
    pub snapshot_every: u32,
}

/// `[scan]`: what an inventory covers (the options of `aiscout-agent scan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScanConfig {
    /// Roots to walk for models; empty: the platform defaults ([`crate::roots::default_roots`]).
    pub roots: Vec<PathBuf>,
    /// Exclude globs: without `/` a name anywhere, with `/` an absolute path ([`crate::walk`]).
    pub excludes: Vec<String>,
    /// Sections each full inventory produces.
    pub sections: Vec<Section>,
    /// List every package of every Python environment, not only the AI watchlist.
    pub all_packages: bool,
    /// Ask inference servers on this host for version and models (one GET on loopback).
    pub identify_servers: bool,
    /// Also walk network file systems (NFS, SMB, sshfs) mounted below the roots.
    pub network_fs: bool,
}

/// `[watch]`: noticing changed model directories between full inventories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WatchConfig {
    /// Watch model directories (inotify) and rescan them when they change.
    pub enabled: bool,
    /// Most directories watched; the ones beyond are polled.
    pub max_watches: u32,
    /// Time between polls of the directories not watched.
    #[serde(with = "duration_text")]
    pub poll_interval: Duration,
}

/// `[throttle]`: the share of the host a scan may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleConfig {
    /// CPU budget of scanning, in percent (1–100).
    pub cpu_percent: u32,
    /// Nice value of the scanning threads (0–19).
    pub nice: i32,
    /// Put the scanning threads in the idle I/O priority class.
    pub io_idle: bool,
}

/// `[spool]`: the durable queue of batches awaiting acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Most bytes the spool holds on disk; the oldest deltas go first when it is full.
    pub max_bytes: ByteSize,
}

/// `[transport]`: the inventory stream to the collector.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransportConfig {
    /// Most assets in one batch.
    pub batch_max_assets: u32,
    /// Most encoded bytes in one batch (at most 4 MiB, the collector's gRPC message limit).
    pub batch_max_bytes: ByteSize,
    /// First wait before reconnecting after a failure.
    #[serde(with = "duration_text")]
    pub backoff_initial: Duration,
    /// Longest wait between reconnection attempts.
    #[serde(with = "duration_text")]
    pub backoff_max: Duration,
    /// Compression of gRPC messages.
    pub compression: Compression,
}

/// `[log]`: the agent's own logs (on stderr, so in the journal under systemd).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Least severe level written; `AISCOUT_LOG`, when set, overrides it.
    pub level: LogLevel,
    /// Write JSON lines instead of human-readable lines.
    pub json: bool,
}

/// Compression of the gRPC messages sent to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// gzip (tonic's `CompressionEncoding::Gzip`).
    Gzip,
    /// No compression.
    None,
}

/// Least severe level of the agent's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// What the agent does, once per event.
    Info,
    /// Detail for diagnosing a host.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level as a `tracing` filter directive (`"info"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Defaults: each written once, in its table's `Default` impl; `#[serde(default)]` on every
// table fills an absent key from it.

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/aiscout"),
            collector: CollectorConfig::default(),
            identity: IdentityConfig::default(),
            schedule: ScheduleConfig::default(),
            scan: ScanConfig::default(),
            watch: WatchConfig::default(),
            throttle: ThrottleConfig::default(),
            spool: SpoolConfig::default(),
            transport: TransportConfig::default(),
            update: UpdateConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for UpdateConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            public_keys: Vec::new(),
            channel: "stable".into(),
            cohort: "default".into(),
            check_interval: Duration::from_secs(6 * 3600),
            health_deadline: Duration::from_secs(600),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            full_interval: Duration::from_secs(6 * 3600),
            jitter: Jitter::Percent(10.0),
            runtimes_interval: Duration::from_secs(5 * 60),
            snapshot_every: 4,
        }
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            excludes: Vec::new(),
            sections: Section::ALL.to_vec(),
            all_packages: false,
            identify_servers: false,
            network_fs: false,
        }
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { enabled: true, max_watches: 8192, poll_interval: Duration::from_secs(60) }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { cpu_percent: 25, nice: 10, io_idle: true }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self { max_bytes: ByteSize(64 * ByteSize::MIB) }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            batch_max_assets: 500,
            batch_max_bytes: ByteSize(ByteSize::MIB),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(5 * 60),
            compression: Compression::Gzip,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: LogLevel::Info, json: false }
    }
}

// ---------------------------------------------------------------------------------------
// Errors and problems.

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        error: std::io::Error,
    },
    /// The file is not valid TOML, or a value has the wrong type or an unknown key.
    #[error("{}{}: {}{message}", path.display(), position_text(*position), key_text(key.as_deref()))]
    Parse {
        /// The file (`<string>` for [`Config::from_str`]).
        path: PathBuf,
        /// 1-based line and column of the offending text, when the parser knows it.
        position: Option<(usize, usize)>,
        /// Dotted key the error is in (`scan.roots`), when it could be told.
        key: Option<String>,
        /// What is wrong, on one line.
        message: String,
    },
    /// The file parsed but breaks rules of [`Config::validate`]; one line per problem.
    #[error("{}", problem_lines(path, problems))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

/// One semantic problem of a configuration, named by its dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted TOML key the problem is about (`schedule.jitter`).
    pub key: &'static str,
    /// What is wrong with it, lowercase.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn position_text(position: Option<(usize, usize)>) -> String {
    position.map(|(line, column)| format!(":{line}:{column}")).unwrap_or_default()
}

fn key_text(key: Option<&str>) -> String {
    key.map(|k| format!("{k}: ")).unwrap_or_default()
}

fn problem_lines(path: &Path, problems: &[ConfigProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("{}: {p}", path.display())).collect();
    lines.join("\n")
}

// ---------------------------------------------------------------------------------------
// Loading.

impl Config {
    /// Reads and parses `path` (not validated: see [`Config::validate`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
        Self::from_toml(&text, path)
    }

    /// The state directory `path` names, for a reader of the daemon's files
    /// (`aiscout-agent status`): from the whole configuration when it loads, else from its
    /// `state_dir` key alone (a file being edited may be broken elsewhere while the daemon runs
    /// on its previous version), else the default.
    pub fn state_dir_of(path: &Path) -> Result<PathBuf, ConfigError> {
        match Self::load(path) {
            Ok(c) => Ok(c.state_dir),
            Err(e @ ConfigError::Read { .. }) => Err(e),
            Err(_) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
                let named = toml::from_str::<toml::Table>(&text)
                    .ok()
                    .and_then(|t| t.get("state_dir").and_then(toml::Value::as_str).map(PathBuf::from))
                    .filter(|p| p.is_absolute());
                Ok(named.unwrap_or_else(|| Self::default().state_dir))
            }
        }
    }

    /// Reads, parses and validates `path`: what the daemon and `validate` run.
    pub fn load_validated(path: &Path) -> Result<Self, ConfigError> {
        let config = Self::load(path)?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: path.to_owned(), problems })
        }
    }

    /// Parses `text`; errors name `origin` as the file they are in.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let span = e.span();
            ConfigError::Parse {
                path: origin.to_owned(),
                position: span.as_ref().and_then(|s| line_column(text, s.start)),
                key: span.and_then(|s| key_at(text, s.start)),
                message: e.message().trim().replace('\n', "; "),
            }
        })
    }
}

impl FromStr for Config {
    type Err = ConfigError;

    /// Parses TOML text (errors name the file `<string>`).
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        Self::from_toml(text, Path::new("<string>"))
    }
}

/// 1-based line and column (in characters) of byte `offset` of `text`.
fn line_column(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..)?.chars().count() + 1;
    Some((before.matches('\n').count() + 1, column))
}

/// The dotted key whose key or value holds byte `offset` of `text`, from the keys' spans.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let tree: KeyTree = toml::from_str(text).ok()?;
    let mut path: Vec<&str> = Vec::new();
    let mut level = &tree;
    // Within a table, the entry an offset is in is the last one to start before it.
    while let Some((key, below)) =
        level.0.iter().filter(|(k, _)| k.span().start <= offset).max_by_key(|(k, _)| k.span().start)
    {
        path.push(key.get_ref());
        level = below;
    }
    (!path.is_empty()).then(|| path.join("."))
}

/// The keys of a TOML document, each with where it is written and the keys below it.
#[derive(Debug, Default)]
struct KeyTree(Vec<(toml::Spanned<String>, KeyTree)>);

impl<'de> Deserialize<'de> for KeyTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(KeyTreeVisitor)
    }
}

struct KeyTreeVisitor;

impl<'de> Visitor<'de> for KeyTreeVisitor {
    type Value = KeyTree;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any toml value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<KeyTree, E> {
        Ok(KeyTree::default())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<KeyTree, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(KeyTree::default())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<KeyTree, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<toml::Spanned<String>>()? {
            entries.push((key, map.next_value::<KeyTree>()?));
        }
        Ok(KeyTree(entries))
    }
}
