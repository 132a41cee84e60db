//! `[cmdb.servicenow]` and `[cmdb.webhook]` of the collector configuration: where the inventory
//! is pushed, with which credentials, how often. Data first, then [`CmdbConfig::validate`]
//! returns every problem naming its key, as the rest of the configuration does.
//!
//! A secret (the ServiceNow password or bearer token, the webhook's HMAC key) is read from
//! `secret_file` or from the environment variable `secret_env`; a literal `secret` in the file
//! is refused unless `allow_literal_secret = true` says the operator insists.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::{outbound_url_ok, ConfigProblem};

/// `[cmdb]`: the CMDB targets; each is optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmdbConfig {
    /// ServiceNow through the Identification and Reconciliation API.
    pub servicenow: Option<ServiceNowConfig>,
    /// A generic signed JSON webhook, for other CMDBs.
    pub webhook: Option<WebhookConfig>,
}

/// How the ServiceNow integration user authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceNowAuth {
    /// `Authorization: Basic` with `user` and the secret as password.
    Basic,
    /// `Authorization: Bearer` with the secret as an OAuth access token.
    Bearer,
}

/// `[cmdb.servicenow]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// The instance, `https://example.service-now.com` (plain http only to loopback).
    pub instance_url: String,
    /// `sysparm_data_source`: a value of the `discovery_source` choice list of the instance.
    pub data_source: String,
    /// `sys_object_source_info.source_name` of every item (the data source when empty).
    #[serde(default)]
    pub source_name: String,
    /// Basic (user and password) or bearer (OAuth token).
    #[serde(default = "default_auth")]
    pub auth: ServiceNowAuth,
    /// The integration user (basic).
    #[serde(default)]
    pub user: String,
    /// File holding the password (basic) or token (bearer).
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding it.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The secret itself: refused unless `allow_literal_secret`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The operator insists on a literal `secret` in this file.
    #[serde(default)]
    pub allow_literal_secret: bool,
    /// An extra CA certificate (PEM) trusted beside the system roots (a private PKI).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Items per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Time between scheduled pushes by `serve` (humantime); none: only `push servicenow`.
    #[serde(default, with = "optional_duration")]
    pub interval: Option<Duration>,
    /// Preferred class of servers, when the instance has it.
    #[serde(default = "default_server_class")]
    pub server_class: String,
    /// Class of servers otherwise.
    #[serde(default = "default_server_fallback_class")]
    pub server_fallback_class: String,
    /// Preferred class of models, when the instance has it.
    #[serde(default = "default_model_class")]
    pub model_class: String,
    /// Class of models otherwise (`cmdb_ci_appl`, or a custom `u_` class).
    #[serde(default = "default_model_fallback_class")]
    pub model_fallback_class: String,
    /// Longest total wait honouring `Retry-After` in one push (humantime).
    #[serde(default = "default_max_retry_wait", with = "duration")]
    pub max_retry_wait: Duration,
    /// Longest one request may take (humantime).
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

/// `[cmdb.webhook]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where batches are POSTed (`https://`, plain http only to loopback).
    pub url: String,
    /// File holding the HMAC key.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Environment variable holding it.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// The key itself: refused unless `allow_literal_secret`.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// The operator insists on a literal `secret` in this file.
    #[serde(default)]
    pub allow_literal_secret: bool,
    /// An extra CA certificate (PEM) trusted beside the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Records per request.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Time between scheduled pushes by `serve` (humantime); none: only `push webhook`.
    #[serde(default, with = "optional_duration")]
    pub interval: Option<Duration>,
    /// Longest total wait honouring `Retry-After` in one push (humantime).
    #[serde(default = "default_max_retry_wait", with = "duration")]
    pub max_retry_wait: Duration,
    /// Longest one request may take (humantime).
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

/// A literal secret of the configuration: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

fn default_auth() -> ServiceNowAuth {
    ServiceNowAuth::Basic
}
fn default_batch_size() -> usize {
    100
}
fn default_server_class() -> String {
    "cmdb_ci_appl_ai_application".into()
}
fn default_server_fallback_class() -> String {
    "cmdb_ci_appl".into()
}
fn default_model_class() -> String {
    "alm_ai_model_digital_asset".into()
}
fn default_model_fallback_class() -> String {
    "cmdb_ci_appl".into()
}
fn default_max_retry_wait() -> Duration {
    Duration::from_secs(120)
}
fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

/// A humantime duration.
mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

/// An optional humantime duration; `""` is none.
mod optional_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.is_empty() {
            return Ok(None);
        }
        humantime::parse_duration(&text).map(Some).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

/// Whether `name` can be a ServiceNow table name (`cmdb_ci_appl`, `u_ai_model`).
fn table_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 80
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Where a secret comes from: exactly one of file, environment, literal (allowed).
fn check_secret(
    problem: &mut impl FnMut(&'static str, String),
    keys: [&'static str; 3],
    file: Option<&PathBuf>,
    env: Option<&String>,
    literal: Option<&Secret>,
    allow_literal: bool,
) {
    let [file_key, env_key, literal_key] = keys;
    let given = usize::from(file.is_some()) + usize::from(env.is_some()) + usize::from(literal.is_some());
    if given == 0 {
        problem(file_key, "required (or secret_env)".into());
    } else if given > 1 {
        problem(file_key, "give one of secret_file, secret_env and secret".into());
    }
    if file.is_some_and(|f| !f.is_absolute()) {
        problem(file_key, "must be an absolute path".into());
    }
    if env.is_some_and(|e| e.is_empty() || !e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')) {
        problem(env_key, "an environment variable name (letters, digits, '_')".into());
    }
    if literal.is_some() && !allow_literal {
        problem(literal_key, "a secret in the configuration is refused: use secret_file or secret_env (or set allow_literal_secret = true)".into());
    }
}

impl CmdbConfig {
    /// Every problem of the `[cmdb]` tables, each naming its key.
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut out = Vec::new();
        let mut problem = |key: &'static str, message: String| out.push(ConfigProblem { key, message });
        if let Some(s) = &self.servicenow {
            if !outbound_url_ok(&s.instance_url) {
                problem("cmdb.servicenow.instance_url", "https://… (plain http only to a loopback address)".into());
            }
            if s.data_source.is_empty() || s.data_source.len() > 40 || s.data_source.chars().any(char::is_control) {
                problem(
                    "cmdb.servicenow.data_source",
                    "1 to 40 characters: a discovery_source choice of the instance".into(),
                );
            }
            if s.auth == ServiceNowAuth::Basic && s.user.is_empty() {
                problem("cmdb.servicenow.user", "required with auth = \"basic\"".into());
            }
            if s.auth == ServiceNowAuth::Bearer && !s.user.is_empty() {
                problem("cmdb.servicenow.user", "not used with auth = \"bearer\"".into());
            }
            check_secret(
                &mut problem,
                ["cmdb.servicenow.secret_file", "cmdb.servicenow.secret_env", "cmdb.servicenow.secret"],
                s.secret_file.as_ref(),
                s.secret_env.as_ref(),
                s.secret.as_ref(),
                s.allow_literal_secret,
            );
            if s.ca_file.as_ref().is_some_and(|f| !f.is_absolute()) {
                problem("cmdb.servicenow.ca_file", "must be an absolute path".into());
            }
            if !(2..=1000).contains(&s.batch_size) {
                problem("cmdb.servicenow.batch_size", "2 to 1000 (a host and one of its CIs fit in a batch)".into());
            }
            if s.interval.is_some_and(|i| i < Duration::from_secs(1)) {
                problem("cmdb.servicenow.interval", "at least 1s".into());
            }
            for (key, class) in [
                ("cmdb.servicenow.server_class", &s.server_class),
                ("cmdb.servicenow.server_fallback_class", &s.server_fallback_class),
                ("cmdb.servicenow.model_class", &s.model_class),
                ("cmdb.servicenow.model_fallback_class", &s.model_fallback_class),
            ] {
                if !table_name_ok(class) {
                    problem(key, format!("{class:?} is not a table name (lowercase letters, digits, '_')"));
                }
            }
            if s.timeout < Duration::from_secs(1) {
                problem("cmdb.servicenow.timeout", "at least 1s".into());
            }
        }
        if let Some(w) = &self.webhook {
            if !outbound_url_ok(&w.url) {
                problem("cmdb.webhook.url", "https://… (plain http only to a loopback address)".into());
            }
            check_secret(
                &mut problem,
                ["cmdb.webhook.secret_file", "cmdb.webhook.secret_env", "cmdb.webhook.secret"],
                w.secret_file.as_ref(),
                w.secret_env.as_ref(),
                w.secret.as_ref(),
                w.allow_literal_secret,
            );
            if w.ca_file.as_ref().is_some_and(|f| !f.is_absolute()) {
                problem("cmdb.webhook.ca_file", "must be an absolute path".into());
            }
            if !(2..=1000).contains(&w.batch_size) {
                problem("cmdb.webhook.batch_size", "2 to 1000".into());
            }
            if w.interval.is_some_and(|i| i < Duration::from_secs(1)) {
                problem("cmdb.webhook.interval", "at least 1s".into());
            }
            if w.timeout < Duration::from_secs(1) {
                problem("cmdb.webhook.timeout", "at least 1s".into());
            }
        }
        out
    }
}

/// Reads a secret as [`check_secret`] allowed it; the error names the key, never the value.
pub(crate) fn read_secret(
    section: &str,
    file: Option<&PathBuf>,
    env: Option<&String>,
    literal: Option<&Secret>,
) -> Result<String, String> {
    let secret = if let Some(file) = file {
        crate::read_secret_file(file).map_err(|e| format!("{section}.secret_file {}: {e}", file.display()))?
    } else if let Some(name) = env {
        std::env::var(name).map_err(|_| format!("{section}.secret_env: the environment variable {name} is not set"))?
    } else if let Some(literal) = literal {
        literal.0.clone()
    } else {
        return Err(format!("{section}: no secret_file, secret_env or secret"));
    };
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        return Err(format!("{section}: the secret is empty"));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> CmdbConfig {
        #[derive(Deserialize)]
        struct Root {
            cmdb: CmdbConfig,
        }
        toml::from_str::<Root>(text).unwrap().cmdb
    }

    #[test]
    fn the_shipped_example_parses_and_is_valid() {
        let c = crate::config::CollectorConfig::parse(
            include_str!("../../../packaging/servicenow.example.toml"),
            "example",
        )
        .unwrap();
        assert_eq!(c.cmdb.validate(), vec![]);
        let s = c.cmdb.servicenow.unwrap();
        assert_eq!(
            (s.batch_size, s.auth, s.model_fallback_class.as_str()),
            (100, ServiceNowAuth::Basic, "cmdb_ci_appl")
        );
        assert_eq!(s.interval, Some(Duration::from_secs(6 * 3600)));
        assert!(c.cmdb.webhook.is_some());
    }

    #[test]
    fn every_problem_is_named_by_its_key() {
        let c = parse(
            "[cmdb.servicenow]\ninstance_url = \"http://sn.example.com\"\ndata_source = \"\"\nsecret = \"hunter2\"\n\
             batch_size = 1\nmodel_class = \"Bad Class\"\ninterval = \"0s\"\n\
             [cmdb.webhook]\nurl = \"https://user:pw@cmdb.example.com\"\nsecret_file = \"rel\"\nsecret_env = \"X\"\n",
        );
        let keys: Vec<&str> = c.validate().iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "cmdb.servicenow.instance_url",
                "cmdb.servicenow.data_source",
                "cmdb.servicenow.user",
                "cmdb.servicenow.secret",
                "cmdb.servicenow.batch_size",
                "cmdb.servicenow.interval",
                "cmdb.servicenow.model_class",
                "cmdb.webhook.url",
                "cmdb.webhook.secret_file",
                "cmdb.webhook.secret_file",
            ]
        );
        let literal = c.validate().into_iter().find(|p| p.key == "cmdb.servicenow.secret").unwrap();
        assert!(!literal.message.contains("hunter2"), "{literal}");
        let e =
            toml::from_str::<ServiceNowConfig>("instance_url = \"https://x\"\ndata_source = \"d\"\npasword = \"x\"\n")
                .unwrap_err();
        assert!(e.to_string().contains("pasword"), "{e}");
    }

    #[test]
    fn a_secret_comes_from_a_file_or_the_environment_and_is_never_in_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        assert_eq!(read_secret("cmdb.servicenow", Some(&file), None, None).unwrap(), "s3cret");
        let missing = dir.path().join("missing");
        let e = read_secret("cmdb.servicenow", Some(&missing), None, None).unwrap_err();
        assert!(e.starts_with("cmdb.servicenow.secret_file "), "{e}");
        let e = read_secret("cmdb.webhook", None, Some(&"AISCOUT_TEST_UNSET_VARIABLE".to_string()), None).unwrap_err();
        assert_eq!(e, "cmdb.webhook.secret_env: the environment variable AISCOUT_TEST_UNSET_VARIABLE is not set");
        std::fs::write(&file, "  \n").unwrap();
        assert_eq!(read_secret("x", Some(&file), None, None).unwrap_err(), "x: the secret is empty");
    }

    #[test]
    fn a_secret_file_over_64_kib_is_refused_naming_the_key_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("huge");
        std::fs::write(&file, "x".repeat(64 * 1024 + 1)).unwrap();
        let e = read_secret("cmdb.webhook", Some(&file), None, None).unwrap_err();
        assert_eq!(e, format!("cmdb.webhook.secret_file {}: larger than 64 KiB: not a secret", file.display()));
        std::fs::write(&file, "x".repeat(64 * 1024)).unwrap();
        assert_eq!(read_secret("cmdb.webhook", Some(&file), None, None).unwrap().len(), 64 * 1024);
    }

    #[test]
    fn a_literal_secret_never_shows_in_debug() {
        let c = parse(
            "[cmdb.servicenow]\ninstance_url = \"https://x\"\ndata_source = \"d\"\nuser = \"u\"\n\
             secret = \"hunter2\"\nallow_literal_secret = true\n\
             [cmdb.webhook]\nurl = \"https://y\"\nsecret = \"hmac-key-1\"\nallow_literal_secret = true\n",
        );
        let shown = format!("{c:?} {:#?}", c.servicenow);
        assert!(!shown.contains("hunter2") && !shown.contains("hmac-key-1"), "{shown}");
        assert!(shown.contains("secret: Some(<redacted>)"), "{shown}");
        assert_eq!(read_secret("x", None, None, c.webhook.unwrap().secret.as_ref()).unwrap(), "hmac-key-1");
    }
}
