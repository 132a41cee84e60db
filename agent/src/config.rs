//! The agent daemon's configuration: one TOML file, by default [`DEFAULT_CONFIG_PATH`].
//!
//! Every key, its default and its meaning are in `docs/agent-config.md`;
//! `packaging/agent.example.toml` states them all (a test keeps both in step with the code).
//!
//! A configuration goes through three steps:
//! 1. **loading** ([`Config::load`], or [`Config::from_str`] for text): TOML into typed
//!    structs. Every table denies unknown keys and every absent key takes the value of its
//!    named `default_*` function, so an almost empty file is a working one. What fails here is
//!    syntax and types (a misspelt key, a string where a number goes, `"10 parsecs"` as a
//!    duration); the first such error stops loading and is reported as
//!    `path:line:column: dotted.key: message`.
//! 2. **validation** ([`Config::validate`]): the rules a type cannot express (absolute paths,
//!    ranges, `schedule.runtimes_interval <= schedule.full_interval`, a collector URL). It
//!    returns every problem at once, each naming its dotted key, so one edit fixes them all.
//!    It opens no file: whether `collector.ca_file` exists is a question for the moment it is
//!    read.
//! 3. **use**: the daemon only ever holds a validated `Config` ([`Config::load_validated`]
//!    does steps 1 and 2; `aiscout-agent validate --config FILE` runs them and prints the
//!    result, exiting [`EXIT_INVALID_CONFIG`] on any problem). Optional values are `Option`s:
//!    an empty string in the file (`ca_file = ""`) means "not set".

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::report::Section;

/// Where the daemon looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/aiscout/agent.toml";

/// Exit status for a configuration that cannot be read, parsed or validated (`EX_USAGE` of
/// sysexits.h, as linkerd uses).
pub const EXIT_INVALID_CONFIG: u8 = 64;

/// Largest `transport.batch_max_bytes`: tonic's default limit on a decoded gRPC message.
const MAX_BATCH_BYTES: ByteSize = ByteSize(4 * ByteSize::MIB);
/// Smallest `transport.batch_max_bytes`: room for a batch of more than a handful of assets.
const MIN_BATCH_BYTES: ByteSize = ByteSize(16 * ByteSize::KIB);
/// Smallest `spool.max_bytes`.
const MIN_SPOOL_BYTES: ByteSize = ByteSize(ByteSize::MIB);
/// Largest `schedule.jitter` as a percentage of `schedule.full_interval`.
const MAX_JITTER_PERCENT: f64 = 50.0;

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
    /// The agent's own logs.
    pub log: LogConfig,
}

/// `[collector]`: the collector's address and trust.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// `https://host:port` of the collector; required (a daemon without one has nowhere to report).
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub url: Option<String>,
    /// PEM file of the CA that signed the collector's certificate; `None`: the CA learned at enrollment.
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub ca_file: Option<PathBuf>,
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
// Defaults: one named function per key, used by the `Default` impls below.

/// `state_dir`.
pub fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/aiscout")
}
/// `schedule.full_interval`.
pub fn default_full_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}
/// `schedule.jitter`.
pub fn default_jitter() -> Jitter {
    Jitter::Percent(10.0)
}
/// `schedule.runtimes_interval`.
pub fn default_runtimes_interval() -> Duration {
    Duration::from_secs(5 * 60)
}
/// `schedule.snapshot_every`.
pub fn default_snapshot_every() -> u32 {
    4
}
/// `scan.sections`: all of them.
pub fn default_sections() -> Vec<Section> {
    Section::ALL.to_vec()
}
/// `watch.enabled`.
pub fn default_watch_enabled() -> bool {
    true
}
/// `watch.max_watches`.
pub fn default_max_watches() -> u32 {
    8192
}
/// `watch.poll_interval`.
pub fn default_poll_interval() -> Duration {
    Duration::from_secs(60)
}
/// `throttle.cpu_percent`.
pub fn default_cpu_percent() -> u32 {
    25
}
/// `throttle.nice`.
pub fn default_nice() -> i32 {
    10
}
/// `throttle.io_idle`.
pub fn default_io_idle() -> bool {
    true
}
/// `spool.max_bytes`.
pub fn default_spool_max_bytes() -> ByteSize {
    ByteSize(64 * ByteSize::MIB)
}
/// `transport.batch_max_assets`.
pub fn default_batch_max_assets() -> u32 {
    500
}
/// `transport.batch_max_bytes`.
pub fn default_batch_max_bytes() -> ByteSize {
    ByteSize(ByteSize::MIB)
}
/// `transport.backoff_initial`.
pub fn default_backoff_initial() -> Duration {
    Duration::from_secs(1)
}
/// `transport.backoff_max`.
pub fn default_backoff_max() -> Duration {
    Duration::from_secs(5 * 60)
}
/// `transport.compression`.
pub fn default_compression() -> Compression {
    Compression::Gzip
}
/// `log.level`.
pub fn default_log_level() -> LogLevel {
    LogLevel::Info
}

impl Default for Config {
    fn default() -> Self {
        Self {
            state_dir: default_state_dir(),
            collector: CollectorConfig::default(),
            identity: IdentityConfig::default(),
            schedule: ScheduleConfig::default(),
            scan: ScanConfig::default(),
            watch: WatchConfig::default(),
            throttle: ThrottleConfig::default(),
            spool: SpoolConfig::default(),
            transport: TransportConfig::default(),
            log: LogConfig::default(),
        }
    }
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            full_interval: default_full_interval(),
            jitter: default_jitter(),
            runtimes_interval: default_runtimes_interval(),
            snapshot_every: default_snapshot_every(),
        }
    }
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            roots: Vec::new(),
            excludes: Vec::new(),
            sections: default_sections(),
            all_packages: false,
            identify_servers: false,
            network_fs: false,
        }
    }
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            enabled: default_watch_enabled(),
            max_watches: default_max_watches(),
            poll_interval: default_poll_interval(),
        }
    }
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self { cpu_percent: default_cpu_percent(), nice: default_nice(), io_idle: default_io_idle() }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self { max_bytes: default_spool_max_bytes() }
    }
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            batch_max_assets: default_batch_max_assets(),
            batch_max_bytes: default_batch_max_bytes(),
            backoff_initial: default_backoff_initial(),
            backoff_max: default_backoff_max(),
            compression: default_compression(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: default_log_level(), json: false }
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

/// A value that is not a valid size, duration or jitter (the message names the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

// ---------------------------------------------------------------------------------------
// Loading.

impl Config {
    /// Reads and parses `path` (not validated: see [`Config::validate`]).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read { path: path.to_owned(), error })?;
        Self::from_toml(&text, path)
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

// ---------------------------------------------------------------------------------------
// Validation.

/// The problems found so far.
#[derive(Debug, Default)]
struct Problems(Vec<ConfigProblem>);

impl Problems {
    fn add(&mut self, key: &'static str, message: impl Into<String>) {
        self.0.push(ConfigProblem { key, message: message.into() });
    }

    fn absolute(&mut self, key: &'static str, path: &Path) {
        if !path.is_absolute() {
            self.add(key, format!("must be an absolute path, got {:?}", path.display().to_string()));
        }
    }

    fn positive(&mut self, key: &'static str, value: Duration) {
        if value.is_zero() {
            self.add(key, "must be greater than zero");
        }
    }

    fn within<T: PartialOrd + fmt::Display>(&mut self, key: &'static str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.add(key, format!("must be between {min} and {max}, got {value}"));
        }
    }
}

impl Config {
    /// Every semantic problem of this configuration, in the order of the keys in the file;
    /// empty when it is fit to run.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut p = Problems::default();
        p.absolute("state_dir", &self.state_dir);
        self.collector.check(&mut p);
        self.identity.check(&mut p);
        self.schedule.check(&mut p);
        self.scan.check(&mut p);
        self.watch.check(&mut p);
        self.throttle.check(&mut p);
        self.spool.check(&mut p);
        self.transport.check(&mut p);
        // Only against a spool size that is itself valid, so one mistake is one problem.
        if self.spool.max_bytes >= MIN_SPOOL_BYTES && self.transport.batch_max_bytes > self.spool.max_bytes {
            p.add(
                "transport.batch_max_bytes",
                format!(
                    "must not exceed spool.max_bytes ({}), got {}",
                    self.spool.max_bytes, self.transport.batch_max_bytes
                ),
            );
        }
        p.0
    }
}

impl CollectorConfig {
    fn check(&self, p: &mut Problems) {
        match &self.url {
            None => p.add(
                "collector.url",
                "missing: the collector's address, such as \"https://collector.example.com:7443\"",
            ),
            Some(url) => {
                if let Err(message) = check_collector_url(url) {
                    p.add("collector.url", message);
                }
            }
        }
        if let Some(path) = &self.ca_file {
            p.absolute("collector.ca_file", path);
        }
        if let Some(path) = &self.enrollment_token_file {
            p.absolute("collector.enrollment_token_file", path);
        }
        if let Some(name) = &self.server_name {
            if !is_host_name(name) && name.parse::<IpAddr>().is_err() {
                p.add("collector.server_name", format!("must be a dns name or ip address, got {name:?}"));
            }
        }
    }
}

/// `https://host[:port][/]`: the gRPC services live at the root, so no path, query or user.
fn check_collector_url(url: &str) -> Result<(), String> {
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(format!("must start with https://, got {url:?}"));
    };
    let (authority, tail) = rest.find(['/', '?', '#']).map_or((rest, ""), |i| rest.split_at(i));
    if !tail.is_empty() && tail != "/" {
        return Err(format!("must not have a path, query or fragment, got {url:?}"));
    }
    if authority.contains('@') {
        return Err("must not contain user credentials".to_owned());
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, after) = bracketed.split_once(']').ok_or_else(|| format!("unclosed '[' in {url:?}"))?;
            if ip.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{ip:?} is not an ipv6 address"));
            }
            (ip, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(format!("has no host: {url:?}"));
    }
    if !authority.starts_with('[') && !is_host_name(host) && host.parse::<IpAddr>().is_err() {
        return Err(format!("{host:?} is not a valid host name"));
    }
    if let Some(port) = port {
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("port {port:?} is not a number between 1 and 65535"));
        }
    }
    Ok(())
}

/// A DNS name: dot-separated labels of ASCII letters, digits, `-` and `_`, 253 bytes at most.
fn is_host_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// An identity value: not blank, no whitespace or control characters, 255 bytes at most.
fn check_identity_value(p: &mut Problems, key: &'static str, value: &str) {
    if value.len() > 255 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        p.add(key, format!("must be at most 255 bytes without spaces or control characters, got {value:?}"));
    }
}

impl IdentityConfig {
    fn check(&self, p: &mut Problems) {
        if let Some(hostname) = &self.hostname {
            check_identity_value(p, "identity.hostname", hostname);
        }
        if let Some(machine_id) = &self.machine_id {
            check_identity_value(p, "identity.machine_id", machine_id);
        }
    }
}

impl ScheduleConfig {
    fn check(&self, p: &mut Problems) {
        p.positive("schedule.full_interval", self.full_interval);
        match self.jitter {
            Jitter::Percent(percent) => {
                if !(0.0..=MAX_JITTER_PERCENT).contains(&percent) {
                    p.add("schedule.jitter", format!("must be between 0% and 50%, got {}", self.jitter));
                }
            }
            Jitter::Duration(delay) => {
                if delay > self.full_interval / 2 {
                    p.add(
                        "schedule.jitter",
                        format!(
                            "must be at most 50% of schedule.full_interval ({}), got {}",
                            humantime::format_duration(self.full_interval / 2),
                            self.jitter
                        ),
                    );
                }
            }
        }
        p.positive("schedule.runtimes_interval", self.runtimes_interval);
        if self.runtimes_interval > self.full_interval {
            p.add(
                "schedule.runtimes_interval",
                format!(
                    "must not exceed schedule.full_interval ({}), got {}",
                    humantime::format_duration(self.full_interval),
                    humantime::format_duration(self.runtimes_interval)
                ),
            );
        }
        if self.snapshot_every == 0 {
            p.add("schedule.snapshot_every", "must be at least 1 (1 sends every full inventory as a snapshot)");
        }
    }
}

impl ScanConfig {
    fn check(&self, p: &mut Problems) {
        for root in &self.roots {
            p.absolute("scan.roots", root);
        }
        for pattern in &self.excludes {
            // The walk's own reading of a pattern (`crate::walk::parse_exclude`).
            if pattern.trim_end_matches('/').is_empty() {
                p.add("scan.excludes", format!("{pattern:?} is an empty pattern"));
            } else if let Err(crate::walk::WalkError::Pattern { source, .. }) = crate::walk::parse_exclude(pattern) {
                p.add("scan.excludes", source.to_string());
            }
        }
        if self.sections.is_empty() {
            p.add("scan.sections", "must name at least one section");
        }
        let mut seen = BTreeSet::new();
        for section in &self.sections {
            if !seen.insert(section) {
                p.add("scan.sections", format!("names {} twice", section.as_str()));
            }
        }
    }
}

impl WatchConfig {
    fn check(&self, p: &mut Problems) {
        if self.enabled && self.max_watches == 0 {
            p.add("watch.max_watches", "must be at least 1 (set watch.enabled = false to watch nothing)");
        }
        p.positive("watch.poll_interval", self.poll_interval);
    }
}

impl ThrottleConfig {
    fn check(&self, p: &mut Problems) {
        p.within("throttle.cpu_percent", self.cpu_percent, 1, 100);
        p.within("throttle.nice", self.nice, 0, 19);
    }
}

impl SpoolConfig {
    fn check(&self, p: &mut Problems) {
        if self.max_bytes < MIN_SPOOL_BYTES {
            p.add("spool.max_bytes", format!("must be at least {MIN_SPOOL_BYTES}, got {}", self.max_bytes));
        }
    }
}

impl TransportConfig {
    fn check(&self, p: &mut Problems) {
        if self.batch_max_assets == 0 {
            p.add("transport.batch_max_assets", "must be at least 1");
        }
        p.within("transport.batch_max_bytes", self.batch_max_bytes, MIN_BATCH_BYTES, MAX_BATCH_BYTES);
        p.positive("transport.backoff_initial", self.backoff_initial);
        if self.backoff_max < self.backoff_initial {
            p.add(
                "transport.backoff_max",
                format!(
                    "must be at least transport.backoff_initial ({}), got {}",
                    humantime::format_duration(self.backoff_initial),
                    humantime::format_duration(self.backoff_max)
                ),
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Value types: sizes, durations, jitter, optional strings.

/// A size in bytes, written `"64MiB"`, `"512KiB"`, `"1048576"` or `1048576`.
///
/// Units are binary and case-insensitive: `B`, `KiB`, `MiB`, `GiB`, `TiB`. Decimal units
/// (`MB`) are refused rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// One kibibyte.
    pub const KIB: u64 = 1024;
    /// One mebibyte.
    pub const MIB: u64 = 1024 * 1024;
    /// One gibibyte.
    pub const GIB: u64 = 1024 * 1024 * 1024;
    /// One tebibyte.
    pub const TIB: u64 = 1024 * 1024 * 1024 * 1024;

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        let invalid = || {
            InvalidValue(format!(
                "invalid size {text:?}: expected a whole number of bytes, optionally with a unit \
                 (B, KiB, MiB, GiB, TiB), such as \"64MiB\""
            ))
        };
        let trimmed = text.trim();
        let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(digits_end);
        let number: u64 = digits.parse().map_err(|_| invalid())?;
        let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" => Self::KIB,
            "mib" => Self::MIB,
            "gib" => Self::GIB,
            "tib" => Self::TIB,
            _ => return Err(invalid()),
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| InvalidValue(format!("invalid size {text:?}: too large")))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that states the size exactly: `64MiB`, `1536KiB`, `1000B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(Self::TIB, "TiB"), (Self::GIB, "GiB"), (Self::MIB, "MiB"), (Self::KIB, "KiB")];
        match units.iter().find(|(size, _)| self.0 != 0 && self.0.is_multiple_of(*size)) {
            Some((size, name)) => write!(f, "{}{name}", self.0 / size),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a whole number of bytes")
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }
            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {bytes}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// Parses a humantime duration (`"6h"`, `"90s"`, `"1h 30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, InvalidValue> {
    humantime::parse_duration(text.trim())
        .map_err(|e| InvalidValue(format!("invalid duration {text:?}: {e} (such as \"60s\", \"5m\", \"6h\")")))
}

/// Durations as humantime strings, for `#[serde(with)]`.
mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"60s\", \"5m\" or \"6h\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                parse_duration(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// The random delay added before each full inventory: a share of `schedule.full_interval`
/// (`"10%"`) or a duration (`"30m"`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// Percent of the interval (0–50 once validated).
    Percent(f64),
    /// A fixed bound (at most half the interval once validated).
    Duration(Duration),
}

impl Jitter {
    /// The largest delay for `interval`: a random delay in `0..=max_delay` is added to it.
    pub fn max_delay(self, interval: Duration) -> Duration {
        match self {
            Self::Percent(percent) => interval.mul_f64(percent.clamp(0.0, MAX_JITTER_PERCENT) / 100.0),
            Self::Duration(delay) => delay.min(interval / 2),
        }
    }
}

impl FromStr for Jitter {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        match text.trim().strip_suffix('%') {
            Some(number) => match number.trim().parse::<f64>() {
                Ok(percent) if percent.is_finite() => Ok(Self::Percent(percent)),
                _ => Err(InvalidValue(format!("invalid jitter {text:?}: expected a percentage such as \"10%\""))),
            },
            None => parse_duration(text).map(Self::Duration).map_err(|_| {
                InvalidValue(format!(
                    "invalid jitter {text:?}: expected a percentage such as \"10%\" or a duration such as \"30m\""
                ))
            }),
        }
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percent(percent) => write!(f, "{percent}%"),
            Self::Duration(delay) => write!(f, "{}", humantime::format_duration(*delay)),
        }
    }
}

impl Serialize for Jitter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Jitter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JitterVisitor;
        impl Visitor<'_> for JitterVisitor {
            type Value = Jitter;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage such as \"10%\" or a duration such as \"30m\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Jitter, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(JitterVisitor)
    }
}

/// Reads an optional string value: `""` is `None`.
fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let text = String::deserialize(deserializer)?;
    Ok((!text.is_empty()).then(|| T::from(text)))
}

/// Writes an optional value: `None` is `""`.
fn none_is_empty<S: Serializer, T: Serialize>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(serializer),
        None => serializer.serialize_str(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL_ONLY: &str = "[collector]\nurl = \"https://collector.example.com:7443\"\n";

    fn parse_error(text: &str) -> (Option<(usize, usize)>, Option<String>, String) {
        match Config::from_str(text) {
            Err(ConfigError::Parse { position, key, message, .. }) => (position, key, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    fn problem_keys(config: &Config) -> Vec<&'static str> {
        config.validate().iter().map(|p| p.key).collect()
    }

    #[test]
    fn absent_keys_take_their_defaults() {
        let config = Config::from_str(URL_ONLY).unwrap();
        assert_eq!(config.collector.url.as_deref(), Some("https://collector.example.com:7443"));
        assert_eq!(config.state_dir, PathBuf::from("/var/lib/aiscout"));
        assert_eq!(config.collector.ca_file, None);
        assert_eq!(config.identity, IdentityConfig { hostname: None, machine_id: None });
        assert_eq!(config.schedule.full_interval, Duration::from_secs(21_600));
        assert_eq!(config.schedule.jitter, Jitter::Percent(10.0));
        assert_eq!(config.schedule.runtimes_interval, Duration::from_secs(300));
        assert_eq!(config.schedule.snapshot_every, 4);
        assert_eq!(config.scan.sections.len(), 5);
        assert!(config.scan.roots.is_empty() && !config.scan.all_packages && !config.scan.identify_servers);
        assert_eq!(
            config.watch,
            WatchConfig { enabled: true, max_watches: 8192, poll_interval: Duration::from_secs(60) }
        );
        assert_eq!(config.throttle, ThrottleConfig { cpu_percent: 25, nice: 10, io_idle: true });
        assert_eq!(config.spool.max_bytes, ByteSize(67_108_864));
        assert_eq!(config.transport.batch_max_bytes, ByteSize(1_048_576));
        assert_eq!(config.transport.backoff_max, Duration::from_secs(300));
        assert_eq!(config.transport.compression, Compression::Gzip);
        assert_eq!(config.log, LogConfig { level: LogLevel::Info, json: false });
        let mut expected = Config::default();
        expected.collector.url = Some("https://collector.example.com:7443".into());
        assert_eq!(config, expected);
        assert_eq!(config.validate(), vec![]);
    }

    #[test]
    fn an_empty_file_lacks_only_the_collector_url() {
        let config = Config::from_str("").unwrap();
        assert_eq!(problem_keys(&config), vec!["collector.url"]);
        assert_eq!(
            config.validate()[0].to_string(),
            "collector.url: missing: the collector's address, such as \"https://collector.example.com:7443\""
        );
    }

    #[test]
    fn empty_strings_mean_unset() {
        let config =
            Config::from_str("[collector]\nca_file = \"\"\nserver_name = \"\"\n[identity]\nhostname = \"\"").unwrap();
        assert_eq!(config.collector.ca_file, None);
        assert_eq!(config.collector.server_name, None);
        assert_eq!(config.identity.hostname, None);
    }

    #[test]
    fn unknown_keys_are_refused_with_their_key_and_line() {
        let (position, key, message) = parse_error(&format!("{URL_ONLY}\n[scan]\nroots = []\nrootz = [\"/srv\"]\n"));
        assert_eq!(position, Some((6, 1)));
        assert_eq!(key.as_deref(), Some("scan.rootz"));
        assert!(message.starts_with("unknown field `rootz`, expected one of `roots`"), "{message}");

        let (position, key, _) = parse_error("state_dir = \"/var/lib/aiscout\"\nstatedir = \"/tmp\"\n");
        assert_eq!((position, key.as_deref()), (Some((2, 1)), Some("statedir")));

        let (position, key, _) = parse_error(&format!("{URL_ONLY}[throtle]\ncpu_percent = 5\n"));
        assert_eq!((position, key.as_deref()), (Some((3, 2)), Some("throtle")));
    }

    #[test]
    fn parse_errors_display_file_line_key_and_message() {
        let err = Config::from_toml("[schedule]\nsnapshot_every = \"often\"\n", Path::new("/etc/aiscout/agent.toml"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/aiscout/agent.toml:2:18: schedule.snapshot_every: invalid type: string \"often\", expected u32"
        );
        let (position, key, message) = parse_error("[log\nlevel = \"info\"\n");
        assert_eq!(position.map(|(line, _)| line), Some(1));
        assert_eq!(key, None);
        assert!(message.contains("invalid table header"), "{message}");
    }

    #[test]
    fn enum_values_are_checked_at_parse() {
        let (_, key, message) = parse_error("[scan]\nsections = [\"models\", \"weights\"]\n");
        assert_eq!(key.as_deref(), Some("scan.sections"));
        assert!(message.starts_with("unknown variant `weights`"), "{message}");
        let (_, key, _) = parse_error("[transport]\ncompression = \"zstd\"\n");
        assert_eq!(key.as_deref(), Some("transport.compression"));
        let (_, key, _) = parse_error("[log]\nlevel = \"verbose\"\n");
        assert_eq!(key.as_deref(), Some("log.level"));
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let config = Config::from_str(
            r#"
state_dir = "var/lib/aiscout"
[collector]
url = "http://collector.example.com:7443"
ca_file = "ca.pem"
[schedule]
full_interval = "1h"
jitter = "80%"
runtimes_interval = "2h"
snapshot_every = 0
[scan]
roots = ["/srv", "models"]
excludes = ["[abc"]
sections = []
[watch]
poll_interval = "0s"
[throttle]
cpu_percent = 0
nice = 25
[spool]
max_bytes = "512KiB"
[transport]
batch_max_assets = 0
batch_max_bytes = "8MiB"
backoff_initial = "10s"
backoff_max = "5s"
"#,
        )
        .unwrap();
        assert_eq!(
            problem_keys(&config),
            vec![
                "state_dir",
                "collector.url",
                "collector.ca_file",
                "schedule.jitter",
                "schedule.runtimes_interval",
                "schedule.snapshot_every",
                "scan.roots",
                "scan.excludes",
                "scan.sections",
                "watch.poll_interval",
                "throttle.cpu_percent",
                "throttle.nice",
                "spool.max_bytes",
                "transport.batch_max_assets",
                "transport.batch_max_bytes",
                "transport.backoff_max",
            ]
        );
        let lines: Vec<String> = config.validate().iter().map(ToString::to_string).collect();
        assert!(lines
            .contains(&"collector.url: must start with https://, got \"http://collector.example.com:7443\"".into()));
        assert!(lines.contains(&"schedule.jitter: must be between 0% and 50%, got 80%".into()));
        assert!(
            lines.contains(&"schedule.runtimes_interval: must not exceed schedule.full_interval (1h), got 2h".into())
        );
        assert!(lines.contains(&"throttle.nice: must be between 0 and 19, got 25".into()));
        assert!(lines.contains(&"spool.max_bytes: must be at least 1MiB, got 512KiB".into()));
        assert!(lines.contains(&"scan.roots: must be an absolute path, got \"models\"".into()));
    }

    #[test]
    fn invalid_error_prints_one_line_per_problem_with_the_path() {
        let err = ConfigError::Invalid {
            path: PathBuf::from("/etc/aiscout/agent.toml"),
            problems: Config::from_str("[throttle]\nnice = -1\n").unwrap().validate(),
        };
        assert_eq!(
            err.to_string(),
            "/etc/aiscout/agent.toml: collector.url: missing: the collector's address, such as \
             \"https://collector.example.com:7443\"\n/etc/aiscout/agent.toml: throttle.nice: must be between 0 and 19, got -1"
        );
    }

    #[test]
    fn load_names_the_file_it_cannot_read_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent.toml");
        let err = Config::load_validated(&missing).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
        assert!(err.to_string().starts_with(&format!("{}: cannot read: ", missing.display())), "{err}");

        let file = dir.path().join("agent.toml");
        std::fs::write(&file, "[spool]\nmax_bytes = 1024\n").unwrap();
        match Config::load_validated(&file) {
            Err(ConfigError::Invalid { path, problems }) => {
                assert_eq!(path, file);
                assert_eq!(
                    problems.iter().map(|p| p.key).collect::<Vec<_>>(),
                    vec!["collector.url", "spool.max_bytes"]
                );
            }
            other => panic!("expected invalid, got {other:?}"),
        }
        std::fs::write(&file, URL_ONLY).unwrap();
        assert!(Config::load_validated(&file).is_ok());
    }

    #[test]
    fn sizes_parse_and_refuse() {
        assert_eq!("64MiB".parse(), Ok(ByteSize(64 * 1024 * 1024)));
        assert_eq!("512 KiB".parse(), Ok(ByteSize(512 * 1024)));
        assert_eq!("2gib".parse(), Ok(ByteSize(2 << 30)));
        assert_eq!("65536".parse(), Ok(ByteSize(65_536)));
        assert_eq!("10B".parse(), Ok(ByteSize(10)));
        for bad in ["-1", "10 parsecs", "64MB", "1.5GiB", "", "MiB", "99999999999TiB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad:?} should be refused");
        }
        assert_eq!(
            "10 parsecs".parse::<ByteSize>().unwrap_err().to_string(),
            "invalid size \"10 parsecs\": expected a whole number of bytes, optionally with a unit \
             (B, KiB, MiB, GiB, TiB), such as \"64MiB\""
        );
        assert_eq!(ByteSize(64 << 20).to_string(), "64MiB");
        assert_eq!(ByteSize(1536 << 10).to_string(), "1536KiB");
        assert_eq!(ByteSize(1000).to_string(), "1000B");

        let from_int = Config::from_str("[spool]\nmax_bytes = 65536\n").unwrap();
        assert_eq!(from_int.spool.max_bytes, ByteSize(65_536));
        let (_, key, message) = parse_error("[spool]\nmax_bytes = -1\n");
        assert_eq!(key.as_deref(), Some("spool.max_bytes"));
        assert_eq!(message, "invalid size -1: must not be negative");
        let (_, key, message) = parse_error("[spool]\nmax_bytes = \"-1\"\n");
        assert_eq!(key.as_deref(), Some("spool.max_bytes"));
        assert!(message.starts_with("invalid size \"-1\""), "{message}");
    }

    #[test]
    fn durations_parse_and_refuse() {
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(21_600)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["-1", "10 parsecs", "", "60"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be refused");
        }
        let (position, key, message) = parse_error("[schedule]\nfull_interval = \"10 parsecs\"\n");
        assert_eq!(position, Some((2, 17)));
        assert_eq!(key.as_deref(), Some("schedule.full_interval"));
        assert!(message.starts_with("invalid duration \"10 parsecs\": unknown time unit \"parsecs\""), "{message}");
        let (_, key, message) = parse_error("[watch]\npoll_interval = 60\n");
        assert_eq!(key.as_deref(), Some("watch.poll_interval"));
        assert_eq!(message, "invalid type: integer `60`, expected a duration string such as \"60s\", \"5m\" or \"6h\"");
    }

    #[test]
    fn jitter_is_a_percentage_or_a_duration() {
        assert_eq!("10%".parse(), Ok(Jitter::Percent(10.0)));
        assert_eq!("12.5 %".parse(), Ok(Jitter::Percent(12.5)));
        assert_eq!("30m".parse(), Ok(Jitter::Duration(Duration::from_secs(1800))));
        for bad in ["ten%", "nan%", "%", "10 parsecs", "-1"] {
            assert!(bad.parse::<Jitter>().is_err(), "{bad:?} should be refused");
        }
        let hour = Duration::from_secs(3600);
        assert_eq!(Jitter::Percent(10.0).max_delay(hour), Duration::from_secs(360));
        assert_eq!(Jitter::Duration(Duration::from_secs(60)).max_delay(hour), Duration::from_secs(60));

        let mut config = Config::from_str(URL_ONLY).unwrap();
        config.schedule.jitter = Jitter::Duration(Duration::from_secs(4 * 3600));
        assert_eq!(
            config.validate().iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["schedule.jitter: must be at most 50% of schedule.full_interval (3h), got 4h"]
        );
        config.schedule.jitter = Jitter::Percent(-1.0);
        assert_eq!(problem_keys(&config), vec!["schedule.jitter"]);
        config.schedule.jitter = Jitter::Percent(50.0);
        assert_eq!(problem_keys(&config), Vec::<&str>::new());
    }

    #[test]
    fn a_batch_must_fit_in_the_spool() {
        let text = format!("{URL_ONLY}[spool]\nmax_bytes = \"2MiB\"\n[transport]\nbatch_max_bytes = \"3MiB\"\n");
        assert_eq!(
            Config::from_str(&text).unwrap().validate().iter().map(ToString::to_string).collect::<Vec<_>>(),
            vec!["transport.batch_max_bytes: must not exceed spool.max_bytes (2MiB), got 3MiB"]
        );
    }

    #[test]
    fn collector_urls() {
        for good in [
            "https://collector.example.com:7443",
            "https://collector.example.com",
            "https://collector:7443/",
            "https://10.0.0.5:7443",
            "https://[::1]:7443",
        ] {
            assert_eq!(check_collector_url(good), Ok(()), "{good}");
        }
        for bad in [
            "collector.example.com:7443",
            "http://collector.example.com",
            "https://",
            "https://:7443",
            "https://collector:0",
            "https://collector:99999",
            "https://collector:7443/api",
            "https://user:pw@collector:7443",
            "https://[::1:7443",
            "https://bad host:7443",
        ] {
            assert!(check_collector_url(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn identity_and_server_name_checks() {
        let config = Config::from_str(&format!(
            "{URL_ONLY}server_name = \"collector internal\"\n[identity]\nhostname = \"agent-1\"\nmachine_id = \"a b\"\n"
        ))
        .unwrap();
        assert_eq!(problem_keys(&config), vec!["collector.server_name", "identity.machine_id"]);
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let text = toml::to_string(&Config::default()).unwrap();
        assert_eq!(Config::from_str(&text).unwrap(), Config::default());
    }

    fn dotted_keys(table: &toml::Table, prefix: &str, out: &mut BTreeSet<String>) {
        for (key, value) in table {
            let dotted = format!("{prefix}{key}");
            match value {
                toml::Value::Table(inner) => dotted_keys(inner, &format!("{dotted}."), out),
                _ => {
                    out.insert(dotted);
                }
            }
        }
    }

    const EXAMPLE: &str = include_str!("../../packaging/agent.example.toml");
    const DOC: &str = include_str!("../../docs/agent-config.md");

    #[test]
    fn the_example_file_states_every_default_and_validates() {
        let example = Config::from_toml(EXAMPLE, Path::new("packaging/agent.example.toml")).unwrap();
        assert_eq!(example.validate(), vec![]);
        // Every value but the collector's address is the default.
        let mut expected = Config::default();
        expected.collector.url = example.collector.url.clone();
        assert_eq!(example, expected);
        assert!(expected.collector.url.is_some());

        // The example and the doc name every key the code has, and no other.
        let mut in_code = BTreeSet::new();
        dotted_keys(&toml::Table::try_from(Config::default()).unwrap(), "", &mut in_code);
        let mut in_example = BTreeSet::new();
        dotted_keys(&toml::from_str(EXAMPLE).unwrap(), "", &mut in_example);
        assert_eq!(in_example, in_code);
        assert_eq!(in_code.len(), 31);
        for key in &in_code {
            assert!(DOC.contains(&format!("`{key}`")), "docs/agent-config.md does not describe `{key}`");
        }
    }
}
