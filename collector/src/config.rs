//! The collector's configuration, in the agent's convention: TOML, unknown keys refused, each
//! default written once in a `Default` impl, then [`CollectorConfig::validate`] reports every
//! problem at once as a [`ConfigProblem`] naming its key; [`ConfigError::Invalid`] prints one
//! `path: key: message` line per problem. An empty string means "not set".
//!
//! Validation has two parts, both run by `validate` and by `load` (so `serve` refuses exactly
//! what `validate` reports): the values (ranges, absolute paths, what dev mode excludes), then
//! the files they name, read and checked by [`crate::tls`] (readable, certificates and keys that
//! parse and belong together, a dev PKI that is whole).
//!
//! ```toml
//! data_dir = "/var/lib/aiscout-collector"  # database, dev PKI
//! store = ""                 # "" (SQLite in data_dir) or "postgres://user@host:5432/db" (docs/scale.md)
//! store_password_file = ""   # PostgreSQL: the password, from a file (not in the URL)
//! store_pool_size = 16       # PostgreSQL: most connections this collector holds
//! listen = "0.0.0.0:7443"                  # gRPC over TLS (agents)
//! api_listen = "127.0.0.1:7080"            # HTTP API (bearer tokens)
//!
//! [tls]
//! dev = false             # generate a CA and server certificate in data_dir/pki on first start
//! names = ["localhost", "127.0.0.1"]  # dev mode: DNS names / IPs of the server certificate
//! cert_file = ""          # production: server certificate chain (PEM)
//! key_file = ""           # production: server key (PEM)
//! ca_cert_file = ""       # production: CA that signs agent certificates (PEM)
//! ca_key_file = ""        # production: its key (PEM: PKCS#8, encrypted PKCS#8, PKCS#1, SEC1)
//! ca_key_passphrase_file = ""   # passphrase of an encrypted CA key (else AISCOUT_CA_KEY_PASSPHRASE)
//! previous_ca_cert_files = []   # CAs whose agent certificates are still accepted (rotation)
//!
//! [api_tls]
//! cert_file = ""          # HTTPS for the API: certificate chain (PEM); "" serves plain HTTP
//! key_file = ""           # its key (PEM)
//!
//! [agents]
//! cert_lifetime = "30d"     # agents renew before expiry
//! batches_per_minute = 600  # per-agent rate limit (batches and hellos)
//! bytes_per_minute = 67108864     # per-agent rate limit in bytes (64 MiB)
//! max_stored_bytes = 268435456    # sightings one agent may make the store keep (256 MiB)
//!
//! [releases]
//! public_keys = []        # hex ed25519 keys (`release keygen`) whose signed releases `release publish` accepts
//! pause_failure_ratio = 0.2  # a cohort pauses when more than this share of its agents rolled a release back
//! pause_min_failures = 2     # ... and at least this many did
//!
//! [findings]
//! interval = "30s"        # time between evaluations of the rules over the inventory
//! silent_after = "24h"    # a host not heard from for longer is silent (a finding)
//! spread_hosts = 10       # a model first seen on this many hosts within spread_window is spreading
//! spread_window = "24h"
//!
//! [cmdb.servicenow]      # optional: push the inventory to a CMDB (docs/exports.md,
//! # [cmdb.webhook]       # packaging/servicenow.example.toml)
//!
//! [log]
//! level = "info"          # error, warn, info, debug, trace; AISCOUT_LOG overrides
//! json = false            # JSON lines instead of text
//! ```

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration; a key left out takes its value from [`Default`].
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Where the database and the dev PKI live.
    pub data_dir: PathBuf,
    /// The store: empty for SQLite in `data_dir`, or a PostgreSQL URL shared by replicas.
    pub store: String,
    /// The PostgreSQL password, read from this file so the URL in the configuration holds none.
    pub store_password_file: PathBuf,
    /// Most PostgreSQL connections this collector holds.
    pub store_pool_size: u32,
    /// gRPC (TLS) listen address.
    pub listen: SocketAddr,
    /// HTTP API listen address.
    pub api_listen: SocketAddr,
    /// TLS material.
    pub tls: TlsConfig,
    /// HTTPS for the HTTP API.
    pub api_tls: ApiTlsConfig,
    /// Agent policy.
    pub agents: AgentsConfig,
    /// The release channel.
    pub releases: ReleasesConfig,
    /// Findings over the inventory.
    pub findings: FindingsConfig,
    /// Where finding events go (`crate::siem`).
    pub siem: Vec<SiemTarget>,
    /// Where the inventory is pushed (`crate::cmdb`, `[cmdb.servicenow]`, `[cmdb.webhook]`).
    pub cmdb: crate::cmdb::CmdbConfig,
    /// The collector's own logs.
    pub log: LogConfig,
}

/// `[findings]`: the rules over the inventory (`crate::findings`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FindingsConfig {
    /// Time between evaluations (humantime).
    #[serde(with = "duration_text")]
    pub interval: Duration,
    /// A host not heard from for longer is silent (humantime).
    #[serde(with = "duration_text")]
    pub silent_after: Duration,
    /// A model first seen on at least this many hosts within `spread_window` is spreading.
    pub spread_hosts: usize,
    /// The window of `spread_hosts` (humantime).
    #[serde(with = "duration_text")]
    pub spread_window: Duration,
}

impl Default for FindingsConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(30),
            silent_after: Duration::from_secs(24 * 3600),
            spread_hosts: 10,
            spread_window: Duration::from_secs(24 * 3600),
        }
    }
}

/// The kind of a SIEM target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiemKind {
    /// A signed JSON webhook.
    Webhook,
    /// Splunk's HTTP Event Collector.
    SplunkHec,
    /// Elasticsearch's bulk API, ECS documents.
    Elastic,
}

/// `[[siem]]`: one target finding events are pushed to (`crate::siem`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiemTarget {
    /// A name for logs, idempotency keys and the cursor: 1 to 64 letters, digits, `-`, `_`.
    pub name: String,
    /// What it is.
    pub kind: SiemKind,
    /// `https://…` (or `http://` on loopback): the webhook, the HEC base URL, the Elasticsearch URL.
    pub url: String,
    /// Events of findings below this severity are not sent.
    #[serde(default = "default_min_severity")]
    pub min_severity: String,
    /// File holding the HMAC key (webhook), HEC token (splunk_hec) or API key (elastic).
    pub secret_file: PathBuf,
    /// Elasticsearch index (elastic).
    #[serde(default)]
    pub index: Option<String>,
    /// Most events per request.
    #[serde(default = "default_batch_max")]
    pub batch_max: u32,
}

fn default_min_severity() -> String {
    "high".into()
}

fn default_batch_max() -> u32 {
    100
}

/// Whether `url` is `https://…`, or `http://` to a loopback host, parsed rather than matched by
/// prefix (`http://localhost.evil.example` is not loopback), and without credentials in it: what
/// every outbound target (SIEM, CMDB) may be.
pub(crate) fn outbound_url_ok(url: &str) -> bool {
    let Ok(uri) = url.parse::<axum::http::Uri>() else { return false };
    let Some(host) = uri.host() else { return false };
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return false;
    }
    match uri.scheme_str() {
        Some("https") => true,
        Some("http") => matches!(host, "127.0.0.1" | "[::1]" | "::1" | "localhost"),
        _ => false,
    }
}

/// `[releases]`: the agent release channel (`crate::release`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReleasesConfig {
    /// Hex ed25519 public keys whose signed release metadata may be published.
    pub public_keys: Vec<String>,
    /// A cohort pauses when more than this share of its agents that tried a release rolled it
    /// back (`crate::release::RolloutPause`).
    pub pause_failure_ratio: f64,
    /// ... and at least this many did.
    pub pause_min_failures: u64,
}

impl Default for ReleasesConfig {
    fn default() -> Self {
        let pause = crate::release::RolloutPause::default();
        Self {
            public_keys: Vec::new(),
            pause_failure_ratio: pause.failure_ratio,
            pause_min_failures: pause.min_failures,
        }
    }
}

impl ReleasesConfig {
    /// The rollout pause these settings make.
    pub fn pause(&self) -> crate::release::RolloutPause {
        crate::release::RolloutPause {
            keys: self.keys(),
            failure_ratio: self.pause_failure_ratio,
            min_failures: self.pause_min_failures,
        }
    }

    /// The keys, parsed (invalid ones are validation problems, so skipped here).
    pub fn keys(&self) -> Vec<aiscout_proto::release::PublicKey> {
        self.public_keys.iter().filter_map(|k| aiscout_proto::release::PublicKey::from_hex(k).ok()).collect()
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/aiscout-collector"),
            store: String::new(),
            store_password_file: PathBuf::new(),
            store_pool_size: 16,
            listen: SocketAddr::from(([0, 0, 0, 0], 7443)),
            api_listen: SocketAddr::from(([127, 0, 0, 1], 7080)),
            tls: TlsConfig::default(),
            api_tls: ApiTlsConfig::default(),
            agents: AgentsConfig::default(),
            releases: ReleasesConfig::default(),
            findings: FindingsConfig::default(),
            siem: Vec::new(),
            cmdb: crate::cmdb::CmdbConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// TLS material: dev mode or files.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// Generate a CA and a server certificate on first start.
    pub dev: bool,
    /// Names of the dev server certificate.
    pub names: Vec<String>,
    /// Server certificate chain (PEM); with its CA last, agents may pin it (`collector.ca_sha256`).
    #[serde(deserialize_with = "empty_is_none")]
    pub cert_file: Option<PathBuf>,
    /// Server key (PEM).
    #[serde(deserialize_with = "empty_is_none")]
    pub key_file: Option<PathBuf>,
    /// CA certificate that signs agents (PEM).
    #[serde(deserialize_with = "empty_is_none")]
    pub ca_cert_file: Option<PathBuf>,
    /// Its key (PEM; [`crate::keys`] says which formats).
    #[serde(deserialize_with = "empty_is_none")]
    pub ca_key_file: Option<PathBuf>,
    /// Passphrase of an encrypted CA key; else the environment's [`crate::keys::PASSPHRASE_ENV`].
    #[serde(deserialize_with = "empty_is_none")]
    pub ca_key_passphrase_file: Option<PathBuf>,
    /// CAs whose agent certificates are still accepted while agents move to the current one.
    pub previous_ca_cert_files: Vec<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            dev: false,
            names: vec!["localhost".into(), "127.0.0.1".into()],
            cert_file: None,
            key_file: None,
            ca_cert_file: None,
            ca_key_file: None,
            ca_key_passphrase_file: None,
            previous_ca_cert_files: Vec::new(),
        }
    }
}

/// Smallest `agents.bytes_per_minute`: the largest message an agent may send
/// ([`crate::server::MAX_MESSAGE_BYTES`]).
const MIN_BYTES_PER_MINUTE: u64 = crate::server::MAX_MESSAGE_BYTES as u64;
/// Smallest `agents.max_stored_bytes`.
const MIN_STORED_BYTES: u64 = 1024 * 1024;

/// `[api_tls]`: HTTPS for the HTTP API; both files or neither.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiTlsConfig {
    /// Certificate chain (PEM).
    #[serde(deserialize_with = "empty_is_none")]
    pub cert_file: Option<PathBuf>,
    /// Its key (PEM).
    #[serde(deserialize_with = "empty_is_none")]
    pub key_file: Option<PathBuf>,
}

/// `[log]`: the collector's own logs, on stderr.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// Least severe level written (`error` … `trace`); `AISCOUT_LOG`, when set, overrides it.
    pub level: LogLevel,
    /// JSON lines instead of text.
    pub json: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: LogLevel::Info, json: false }
    }
}

/// Least severe level of the collector's logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings (refused agents, failed handshakes) and errors.
    Warn,
    /// What the collector does, once per event.
    Info,
    /// Detail for diagnosing (every agent connection).
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// The level as a `tracing` filter directive.
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

/// An optional path where `""` means "not set".
fn empty_is_none<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    let text = String::deserialize(deserializer)?;
    Ok((!text.is_empty()).then(|| PathBuf::from(text)))
}

/// Agent policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsConfig {
    /// Lifetime of agent certificates (humantime).
    #[serde(with = "duration_text")]
    pub cert_lifetime: Duration,
    /// Most batches per agent per minute.
    pub batches_per_minute: u32,
    /// Most bytes of messages per agent per minute.
    pub bytes_per_minute: u64,
    /// Most bytes of sightings one agent may make the store keep.
    pub max_stored_bytes: u64,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self {
            cert_lifetime: Duration::from_secs(30 * 24 * 3600),
            batches_per_minute: 600,
            bytes_per_minute: 64 * 1024 * 1024,
            max_stored_bytes: 256 * 1024 * 1024,
        }
    }
}

/// Durations as humantime text (`"30d"`, `"12h"`), for `#[serde(with)]`.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    /// A humantime duration; a text it cannot read is refused quoting it.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

/// Errors loading the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said (line, column, key).
        message: String,
    },
    /// The values are inconsistent; one line per problem, each `path: key: message`.
    #[error("{}", problem_lines(path, problems))]
    Invalid {
        /// The file.
        path: String,
        /// Every problem found.
        problems: Vec<ConfigProblem>,
    },
}

/// One semantic problem of a configuration, named by its dotted key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted TOML key the problem is about (`tls.cert_file`).
    pub key: &'static str,
    /// What is wrong with it, lowercase.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn problem_lines(path: &str, problems: &[ConfigProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("{path}: {p}")).collect();
    lines.join("\n")
}

impl CollectorConfig {
    /// Parses TOML text (`origin` names it in errors).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text)
            .map_err(|e| ConfigError::Parse { path: origin.into(), message: e.to_string().trim().into() })
    }

    /// Loads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: origin.clone(), source })?;
        let config = Self::parse(&text, &origin)?;
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid { path: origin, problems })
        }
    }

    /// Every problem, in the order of the keys in the file, then those of the files they name
    /// (module docs); empty when it is fit to run.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = self.check_values();
        out.extend(crate::tls::TlsMaterial::check(self));
        out
    }

    /// The problems of the values alone, reading no file.
    fn check_values(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut problem = |key: &'static str, message: String| out.push(ConfigProblem { key, message });
        if self.data_dir.as_os_str().is_empty() {
            problem("data_dir", "must not be empty".into());
        } else if !self.data_dir.is_absolute() {
            problem("data_dir", format!("must be an absolute path, got {:?}", self.data_dir.display().to_string()));
        }
        if !self.store.is_empty() {
            if !crate::store::postgres::is_postgres_url(&self.store) {
                problem("store", "must be empty (SQLite in data_dir) or a postgres:// URL".into());
            } else if let Err(e) = self.store.parse::<postgres::Config>() {
                problem("store", format!("not a postgresql URL: {e}"));
            } else if crate::store::postgres::url_has_password(&self.store) {
                problem("store", "holds a password: put it in store_password_file instead".into());
            }
            if self.store_pool_size == 0 || self.store_pool_size > 1000 {
                problem("store_pool_size", format!("must be 1 to 1000, got {}", self.store_pool_size));
            }
        }
        if !self.store_password_file.as_os_str().is_empty() {
            if self.store.is_empty() {
                problem("store_password_file", "only for a postgres:// store".into());
            } else if !self.store_password_file.is_absolute() {
                problem("store_password_file", "must be an absolute path".into());
            }
        }
        if self.listen == self.api_listen {
            problem("api_listen", format!("must differ from listen ({})", self.listen));
        }
        let t = &self.tls;
        let files = [
            ("tls.cert_file", &t.cert_file),
            ("tls.key_file", &t.key_file),
            ("tls.ca_cert_file", &t.ca_cert_file),
            ("tls.ca_key_file", &t.ca_key_file),
        ];
        if t.dev {
            if t.names.is_empty() {
                problem("tls.names", "dev mode needs at least one name".into());
            }
            for (key, f) in files {
                if f.is_some() {
                    problem(key, "not used in dev mode (tls.dev = true)".into());
                }
            }
            if t.ca_key_passphrase_file.is_some() {
                problem("tls.ca_key_passphrase_file", "not used in dev mode (tls.dev = true)".into());
            }
            if !t.previous_ca_cert_files.is_empty() {
                problem("tls.previous_ca_cert_files", "not used in dev mode (tls.dev = true)".into());
            }
        } else {
            for (key, f) in files {
                if f.is_none() {
                    problem(key, "required unless tls.dev = true".into());
                }
            }
        }
        let a = &self.api_tls;
        match (&a.cert_file, &a.key_file) {
            (Some(_), None) => problem("api_tls.key_file", "required with api_tls.cert_file".into()),
            (None, Some(_)) => problem("api_tls.cert_file", "required with api_tls.key_file".into()),
            _ => {}
        }
        if self.agents.cert_lifetime < Duration::from_secs(3600) {
            problem("agents.cert_lifetime", "at least 1h".into());
        }
        if self.agents.batches_per_minute == 0 {
            problem("agents.batches_per_minute", "at least 1".into());
        }
        if self.agents.bytes_per_minute < MIN_BYTES_PER_MINUTE {
            problem("agents.bytes_per_minute", format!("at least {MIN_BYTES_PER_MINUTE} (one largest message)"));
        }
        if self.agents.max_stored_bytes < MIN_STORED_BYTES {
            problem("agents.max_stored_bytes", format!("at least {MIN_STORED_BYTES}"));
        }
        for k in &self.releases.public_keys {
            if let Err(e) = aiscout_proto::release::PublicKey::from_hex(k) {
                problem("releases.public_keys", format!("{k:?}: {e}"));
            }
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&self.findings.interval) {
            problem("findings.interval", "between 1s and 24h".into());
        }
        if self.findings.silent_after < Duration::from_secs(60) {
            problem("findings.silent_after", "at least 1m".into());
        }
        if self.findings.spread_hosts < 2 {
            problem("findings.spread_hosts", "at least 2".into());
        }
        if self.findings.spread_window < Duration::from_secs(60) {
            problem("findings.spread_window", "at least 1m".into());
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.siem.iter().enumerate() {
            let at = |m: &str| format!("siem[{i}] ({}): {m}", t.name);
            if t.name.is_empty()
                || t.name.len() > 64
                || !t.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                problem("siem.name", at("1 to 64 letters, digits, '-' or '_'"));
            }
            if !names.insert(t.name.as_str()) {
                problem("siem.name", at("used by another target"));
            }
            if !outbound_url_ok(&t.url) {
                problem("siem.url", at("https://… (plain http only to a loopback address)"));
            }
            if !crate::findings::SEVERITIES.contains(&t.min_severity.as_str()) {
                problem("siem.min_severity", at("info, low, medium, high or critical"));
            }
            if !(1..=1000).contains(&t.batch_max) {
                problem("siem.batch_max", at("1 to 1000"));
            }
            if t.kind == SiemKind::Elastic && t.index.as_deref().is_none_or(str::is_empty) {
                problem("siem.index", at("required for kind = \"elastic\""));
            }
        }
        let ratio = self.releases.pause_failure_ratio;
        if !(ratio > 0.0 && ratio <= 1.0) {
            problem("releases.pause_failure_ratio", format!("above 0 and at most 1, got {ratio}"));
        }
        if self.releases.pause_min_failures == 0 {
            problem("releases.pause_min_failures", "at least 1".into());
        }
        out.extend(self.cmdb.validate());
        out
    }

    /// The advisories file `aiscout-collector advisories update` installs, used instead of the
    /// shipped one when present (`crate::findings::advisories`).
    pub fn advisories_file(&self) -> PathBuf {
        self.data_dir.join("advisories.osv.json")
    }

    /// Where the published release channel lives (`crate::release`).
    pub fn releases_dir(&self) -> PathBuf {
        self.data_dir.join("releases")
    }

    /// The SQLite database file.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("inventory.db")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_takes_every_default() {
        let c = CollectorConfig::parse("", "t").unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/aiscout-collector"));
        assert_eq!(c.listen, "0.0.0.0:7443".parse().unwrap());
        assert_eq!(c.api_listen, "127.0.0.1:7080".parse().unwrap());
        assert!(!c.tls.dev);
        assert_eq!(c.tls.names, ["localhost", "127.0.0.1"]);
        assert_eq!(
            (&c.tls.cert_file, &c.tls.key_file, &c.tls.ca_cert_file, &c.tls.ca_key_file),
            (&None, &None, &None, &None)
        );
        assert_eq!(c.agents.cert_lifetime, Duration::from_secs(30 * 24 * 3600));
        assert_eq!(c.agents.batches_per_minute, 600);
        // A table given in part keeps the defaults of the keys it leaves out.
        let c = CollectorConfig::parse("[agents]\nbatches_per_minute = 5\n[tls]\ndev = true\n", "t").unwrap();
        assert_eq!((c.agents.cert_lifetime, c.tls.names.len()), (Duration::from_secs(30 * 24 * 3600), 2));
    }

    #[test]
    fn defaults_and_every_problem_at_once() {
        let c = CollectorConfig::parse("data_dir = \"/d\"\n[tls]\ndev = true\n", "t").unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.listen.port(), 7443);
        let bad = CollectorConfig::parse(
            "listen = \"127.0.0.1:1\"\napi_listen = \"127.0.0.1:1\"\n[agents]\ncert_lifetime = \"1m\"\nbatches_per_minute = 0\n",
            "t",
        )
        .unwrap();
        let keys: Vec<&str> = bad.validate().iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "api_listen",
                "tls.cert_file",
                "tls.key_file",
                "tls.ca_cert_file",
                "tls.ca_key_file",
                "agents.cert_lifetime",
                "agents.batches_per_minute"
            ]
        );
        let dev =
            CollectorConfig::parse("data_dir = \"\"\n[tls]\ndev = true\nnames = []\nkey_file = \"k\"\n", "t").unwrap();
        assert_eq!(
            dev.validate(),
            [
                ConfigProblem { key: "data_dir", message: "must not be empty".into() },
                ConfigProblem { key: "tls.names", message: "dev mode needs at least one name".into() },
                ConfigProblem { key: "tls.key_file", message: "not used in dev mode (tls.dev = true)".into() },
            ]
        );
    }

    #[test]
    fn invalid_prints_one_line_per_problem_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        std::fs::write(&file, "[tls]\ndev = true\nnames = []\n[agents]\nbatches_per_minute = 0\n").unwrap();
        let err = CollectorConfig::load(&file).unwrap_err();
        let path = file.display();
        assert_eq!(
            err.to_string(),
            format!(
                "{path}: tls.names: dev mode needs at least one name\n{path}: agents.batches_per_minute: at least 1"
            )
        );
        assert!(matches!(err, ConfigError::Invalid { problems, .. } if problems.len() == 2));
    }

    #[test]
    fn siem_targets_are_checked_one_by_one() {
        let text = "[tls]\ndev = true\n\
            [[siem]]\nname = \"a b\"\nkind = \"webhook\"\nurl = \"http://siem.example.com\"\nsecret_file = \"/s\"\n\
            [[siem]]\nname = \"e\"\nkind = \"elastic\"\nurl = \"https://es\"\nmin_severity = \"urgent\"\nsecret_file = \"/s\"\nbatch_max = 0\n\
            [[siem]]\nname = \"e\"\nkind = \"splunk_hec\"\nurl = \"http://127.0.0.1:8088\"\nsecret_file = \"/s\"\n";
        let c = CollectorConfig::parse(text, "c.toml").unwrap();
        let problems: Vec<String> = c.validate().iter().map(|p| format!("{}: {}", p.key, p.message)).collect();
        assert_eq!(
            problems,
            [
                "siem.name: siem[0] (a b): 1 to 64 letters, digits, '-' or '_'",
                "siem.url: siem[0] (a b): https://… (plain http only to a loopback address)",
                "siem.min_severity: siem[1] (e): info, low, medium, high or critical",
                "siem.batch_max: siem[1] (e): 1 to 1000",
                "siem.index: siem[1] (e): required for kind = \"elastic\"",
                "siem.name: siem[2] (e): used by another target",
            ]
        );
        for (url, ok) in [
            ("https://siem.example.com/hook", true),
            ("http://127.0.0.1:8088", true),
            ("http://[::1]:9200", true),
            ("http://localhost:9200/", true),
            ("http://localhost.evil.example/", false),
            ("http://127.0.0.1@evil.example/", false),
            ("https://user:pass@siem.example.com/", false),
            ("ftp://127.0.0.1/", false),
            ("not a url", false),
        ] {
            assert_eq!(outbound_url_ok(url), ok, "{url}");
        }
        let e =
            CollectorConfig::parse("[[siem]]\nname = \"x\"\nkind = \"syslog\"\n", "c.toml").unwrap_err().to_string();
        assert!(e.contains("unknown variant `syslog`"), "{e}");
    }

    #[test]
    fn rollout_pause_settings_out_of_range_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("collector.toml");
        for (toml, key) in [
            ("pause_failure_ratio = 0.0", "releases.pause_failure_ratio: above 0 and at most 1, got 0"),
            ("pause_failure_ratio = 1.5", "releases.pause_failure_ratio: above 0 and at most 1, got 1.5"),
            ("pause_failure_ratio = nan", "releases.pause_failure_ratio: above 0 and at most 1, got NaN"),
            ("pause_min_failures = 0", "releases.pause_min_failures: at least 1"),
        ] {
            std::fs::write(&file, format!("[tls]\ndev = true\n[releases]\n{toml}\n")).unwrap();
            let err = CollectorConfig::load(&file).unwrap_err().to_string();
            assert_eq!(err, format!("{}: {key}", file.display()), "{toml}");
        }
    }

    #[test]
    fn a_duration_that_is_not_humantime_is_refused_with_its_text() {
        let e = CollectorConfig::parse("[agents]\ncert_lifetime = \"soon\"\n", "c.toml").unwrap_err().to_string();
        assert!(e.starts_with("c.toml: ") && e.contains("\"soon\": "), "{e}");
        let e = CollectorConfig::parse("[agents]\ncert_lifetime = 30\n", "c.toml").unwrap_err().to_string();
        assert!(e.contains("expected a string"), "{e}");
    }

    #[test]
    fn the_shipped_example_is_valid_and_shows_the_defaults() {
        let c = CollectorConfig::parse(include_str!("../../packaging/collector.example.toml"), "example").unwrap();
        assert!(c.check_values().is_empty(), "{:?}", c.check_values());
        // Dev mode is the one value it changes: a fresh install validates without key files.
        assert!(c.tls.dev);
        let d = CollectorConfig::default();
        assert_eq!((&c.data_dir, c.listen, c.api_listen), (&d.data_dir, d.listen, d.api_listen));
        assert_eq!((&c.tls.names, &c.tls.cert_file, &c.tls.ca_key_file), (&d.tls.names, &None, &None));
        assert_eq!(
            (c.agents.cert_lifetime, c.agents.batches_per_minute, c.agents.bytes_per_minute, c.agents.max_stored_bytes),
            (d.agents.cert_lifetime, d.agents.batches_per_minute, d.agents.bytes_per_minute, d.agents.max_stored_bytes)
        );
        assert_eq!((c.log.level, c.log.json), (d.log.level, d.log.json));
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = CollectorConfig::parse("[tls]\ndevv = true\n", "c.toml").unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("devv"), "{e}");
    }
}
