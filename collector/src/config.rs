//! The collector's configuration: TOML, unknown keys refused, defaults named, then
//! [`CollectorConfig::validate`] reports every problem at once by key.
//!
//! ```toml
//! data_dir = "/var/lib/aiscout-collector"  # database, dev PKI
//! listen = "0.0.0.0:7443"                  # gRPC over TLS (agents)
//! api_listen = "127.0.0.1:7080"            # HTTP API (bearer tokens)
//!
//! [tls]
//! dev = false             # generate a CA and server certificate in data_dir/pki on first start
//! names = ["localhost"]   # dev mode: DNS names / IPs of the server certificate
//! cert_file = ""          # production: server certificate chain (PEM)
//! key_file = ""           # production: server key (PEM)
//! ca_cert_file = ""       # production: CA that signs agent certificates (PEM)
//! ca_key_file = ""        # production: its key (PEM)
//!
//! [agents]
//! cert_lifetime = "30d"     # agents renew before expiry
//! batches_per_minute = 600  # per-agent rate limit
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectorConfig {
    /// Where the database and the dev PKI live.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// gRPC (TLS) listen address.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// HTTP API listen address.
    #[serde(default = "default_api_listen")]
    pub api_listen: SocketAddr,
    /// TLS material.
    #[serde(default)]
    pub tls: TlsConfig,
    /// Agent policy.
    #[serde(default)]
    pub agents: AgentsConfig,
}

/// TLS material: dev mode or files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Generate a CA and a server certificate on first start.
    #[serde(default)]
    pub dev: bool,
    /// Names of the dev server certificate.
    #[serde(default = "default_names")]
    pub names: Vec<String>,
    /// Server certificate chain (PEM).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Server key (PEM).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// CA certificate that signs agents (PEM).
    #[serde(default)]
    pub ca_cert_file: Option<PathBuf>,
    /// Its key (PEM).
    #[serde(default)]
    pub ca_key_file: Option<PathBuf>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self {
            dev: false,
            names: default_names(),
            cert_file: None,
            key_file: None,
            ca_cert_file: None,
            ca_key_file: None,
        }
    }
}

/// Agent policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsConfig {
    /// Lifetime of agent certificates (humantime).
    #[serde(default = "default_cert_lifetime", deserialize_with = "duration")]
    pub cert_lifetime: Duration,
    /// Most batches per agent per minute.
    #[serde(default = "default_batches_per_minute")]
    pub batches_per_minute: u32,
}

impl Default for AgentsConfig {
    fn default() -> Self {
        Self { cert_lifetime: default_cert_lifetime(), batches_per_minute: default_batches_per_minute() }
    }
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

/// Default `data_dir`.
pub fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/aiscout-collector")
}
/// Default `listen`.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 7443))
}
/// Default `api_listen`.
pub fn default_api_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 7080))
}
/// Default `tls.names`.
pub fn default_names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}
/// Default `agents.cert_lifetime`: 30 days.
pub fn default_cert_lifetime() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
/// Default `agents.batches_per_minute`.
pub fn default_batches_per_minute() -> u32 {
    600
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
    /// The values are inconsistent; every problem, one per line.
    #[error("{path}: {}", problems.join("; "))]
    Invalid {
        /// The file.
        path: String,
        /// `key: problem` lines.
        problems: Vec<String>,
    },
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

    /// Every problem, as `key: message`.
    pub fn validate(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.data_dir.as_os_str().is_empty() {
            out.push("data_dir: must not be empty".to_string());
        }
        if self.listen == self.api_listen {
            out.push(format!("api_listen: must differ from listen ({})", self.listen));
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
                out.push("tls.names: dev mode needs at least one name".to_string());
            }
            for (key, f) in files {
                if f.is_some() {
                    out.push(format!("{key}: not used in dev mode (tls.dev = true)"));
                }
            }
        } else {
            for (key, f) in files {
                if f.is_none() {
                    out.push(format!("{key}: required unless tls.dev = true"));
                }
            }
        }
        if self.agents.cert_lifetime < Duration::from_secs(3600) {
            out.push("agents.cert_lifetime: at least 1h".to_string());
        }
        if self.agents.batches_per_minute == 0 {
            out.push("agents.batches_per_minute: at least 1".to_string());
        }
        out
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
    fn defaults_and_every_problem_at_once() {
        let c = CollectorConfig::parse("data_dir = \"/d\"\n[tls]\ndev = true\n", "t").unwrap();
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(c.listen.port(), 7443);
        let bad = CollectorConfig::parse(
            "listen = \"127.0.0.1:1\"\napi_listen = \"127.0.0.1:1\"\n[agents]\ncert_lifetime = \"1m\"\nbatches_per_minute = 0\n",
            "t",
        )
        .unwrap();
        let keys: Vec<String> = bad.validate().iter().map(|p| p.split(':').next().unwrap_or("").to_string()).collect();
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
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let e = CollectorConfig::parse("[tls]\ndevv = true\n", "c.toml").unwrap_err().to_string();
        assert!(e.contains("c.toml") && e.contains("devv"), "{e}");
    }
}
