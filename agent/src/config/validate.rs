//! Step 2 of a configuration, validation: the rules a type cannot express, each problem named
//! by its dotted key and all of them returned at once ([`Config::validate`]).
//!
//! One `check` per table, called in the order of the tables in the file; a rule that relates
//! two tables (a batch must fit in the spool) is in [`Config::validate`] itself.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::values::{parse_ca_sha256, MAX_JITTER_PERCENT};
use super::{
    ByteSize, CollectorConfig, Config, ConfigProblem, IdentityConfig, Jitter, ScanConfig, ScheduleConfig, SpoolConfig,
    ThrottleConfig, TransportConfig, WatchConfig,
};

/// Largest `transport.batch_max_bytes`: tonic's default limit on a decoded gRPC message.
const MAX_BATCH_BYTES: ByteSize = ByteSize(4 * ByteSize::MIB);
/// Smallest `transport.batch_max_bytes`: room for a batch of more than a handful of assets.
const MIN_BATCH_BYTES: ByteSize = ByteSize(16 * ByteSize::KIB);
/// Largest `transport.batch_max_assets`: the collector refuses a batch of more entries
/// (upserts plus removals) whole, so a larger setting could only wedge the stream.
const MAX_BATCH_ASSETS: u32 = 10_000;
/// Smallest `spool.max_bytes`.
const MIN_SPOOL_BYTES: ByteSize = ByteSize(ByteSize::MIB);

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
        self.update.check(&mut p);
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
        for (i, url) in self.failover_urls.iter().enumerate() {
            if let Err(message) = check_collector_url(url) {
                p.add("collector.failover_urls", format!("entry {}: {message}", i + 1));
            }
        }
        if self.failover_urls.len() > MAX_FAILOVER_URLS {
            p.add("collector.failover_urls", format!("at most {MAX_FAILOVER_URLS} entries"));
        }
        match (&self.ca_file, &self.ca_sha256) {
            (None, None) => p.add(
                "collector.ca_file",
                "missing: the agent cannot enroll without a way to trust the collector: set collector.ca_file \
                 (its ca certificate) or collector.ca_sha256 (the digest of its ca's public key)",
            ),
            (Some(_), Some(_)) => {
                p.add("collector.ca_sha256", "set collector.ca_file or collector.ca_sha256, not both");
            }
            _ => {}
        }
        if let Some(path) = &self.ca_file {
            p.absolute("collector.ca_file", path);
        }
        if let Some(pin) = &self.ca_sha256 {
            if let Err(e) = parse_ca_sha256(pin) {
                p.add("collector.ca_sha256", e.to_string());
            }
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

/// Most `collector.failover_urls`: each unreachable one costs a connect timeout.
pub const MAX_FAILOVER_URLS: usize = 16;

/// `https://host[:port][/]`: the gRPC services live at the root, so no path, query or user.
pub(super) fn check_collector_url(url: &str) -> Result<(), String> {
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

/// Smallest `update.check_interval`.
const MIN_UPDATE_CHECK: Duration = Duration::from_secs(60);
/// Shortest and longest `update.health_deadline`.
const HEALTH_DEADLINE: (Duration, Duration) = (Duration::from_secs(10), Duration::from_secs(24 * 3600));

impl super::UpdateConfig {
    fn check(&self, p: &mut Problems) {
        if self.enabled && self.public_keys.is_empty() {
            p.add("update.public_keys", "required when update.enabled: the release key's public half (hex)");
        }
        for key in &self.public_keys {
            if let Err(e) = aiscout_proto::release::PublicKey::from_hex(key) {
                p.add("update.public_keys", format!("{key:?}: {e}"));
            }
        }
        let name_ok = aiscout_proto::release::is_valid_name;
        if !name_ok(&self.channel) {
            p.add("update.channel", format!("1 to 64 letters, digits, '-', '_' or '.', got {:?}", self.channel));
        }
        if !name_ok(&self.cohort) {
            p.add("update.cohort", format!("1 to 64 letters, digits, '-', '_' or '.', got {:?}", self.cohort));
        }
        if self.check_interval < MIN_UPDATE_CHECK {
            p.add(
                "update.check_interval",
                format!("at least 1m, got {}", humantime::format_duration(self.check_interval)),
            );
        }
        if !(HEALTH_DEADLINE.0..=HEALTH_DEADLINE.1).contains(&self.health_deadline) {
            p.add(
                "update.health_deadline",
                format!("between 10s and 24h, got {}", humantime::format_duration(self.health_deadline)),
            );
        }
    }
}

impl TransportConfig {
    fn check(&self, p: &mut Problems) {
        p.within("transport.batch_max_assets", self.batch_max_assets, 1, MAX_BATCH_ASSETS);
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
