//! The inventory pushed to a CMDB: hosts, the inference servers that run on them and the models
//! they hold, to ServiceNow ([`servicenow`]) or to any CMDB through a signed JSON webhook
//! ([`webhook`]), by `aiscout-collector push …` or on a schedule by `serve` (docs/cmdb.md).
//!
//! # What is pushed
//! [`read_inventory`] reads the store once:
//! 1. **Hosts**: every agent but a superseded one (its successor is the same machine): its
//!    hostname, host facts (os, kernel, ip addresses) and identity facts (serial, DMI UUID,
//!    machine id, MACs). A decommissioned or revoked host is sent **retired**.
//! 2. **Servers**: runtime assets whose kind is a known server (anything but `ml-process`), or
//!    that listen on a port. Each runs on one host (its identity names the agent).
//! 3. **Models**: model assets that are not package files, related to every host with a live
//!    sighting of them (to the hosts that last had them when none has).
//! 4. An asset with no live sighting left is sent **retired** (`install_status` 7), never
//!    deleted: the CMDB keeps its history and a rerun does not insert it again.
//!
//! Every CI carries a stable key, the agent id for a host and the asset id for the others, so
//! a rerun updates what the previous run inserted.
//!
//! # Batches
//! [`batches`] cuts the CIs in requests of at most `batch_size` items, host by host: a host,
//! then its servers and models, each with its relation to the host. A dependent CI is always in
//! a batch with its host: a host with more dependents than a batch holds is sent again at the
//! head of the next batch (the CMDB answers it unchanged). A model on several hosts is sent once
//! with each of them; the report counts every CI once.
//!
//! # Requests
//! Requests go through [`Http`]: rustls with the system's roots and an optional extra CA, no
//! redirect, a timeout, every answer read to at most [`MAX_RESPONSE_BYTES`], and a 429 waited out
//! as its `Retry-After` says, until the push has waited `max_retry_wait` in all. Errors name the
//! URL, never a credential.

pub mod config;
pub mod servicenow;
pub mod webhook;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use config::{CmdbConfig, ServiceNowAuth, ServiceNowConfig, WebhookConfig};

use crate::store::{AssetFilter, AssetKind, AssetSummary, HostFilter, PageRequest, Store, StoreError};

/// Largest answer read from a CMDB.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// Most hosts one model is related to (the store lists as many hostnames per asset).
const MAX_MODEL_HOSTS: usize = AssetSummary::MAX_HOSTNAMES;

/// A host as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdbHost {
    /// Its agent: the stable key.
    pub agent_id: String,
    /// The hostname it enrolled with.
    pub hostname: String,
    /// `PRETTY_NAME` of its os-release (agent-supplied).
    pub os: String,
    /// Its kernel release.
    pub kernel: String,
    /// Its architecture.
    pub arch: String,
    /// Its own addresses, IPv4 first.
    pub ip_addresses: Vec<String>,
    /// DMI product serial.
    pub serial: String,
    /// DMI product UUID.
    pub product_uuid: String,
    /// `/etc/machine-id`.
    pub machine_id: String,
    /// Burnt-in MACs of its physical interfaces.
    pub mac_addresses: Vec<String>,
    /// The cloud instance id, when on a cloud.
    pub cloud_instance_id: String,
    /// Last heard from (ms).
    pub last_seen_ms: i64,
    /// Decommissioned or revoked: sent retired.
    pub retired: bool,
}

/// An inference server as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdbServer {
    /// The runtime asset: the stable key.
    pub asset_id: String,
    /// The host it runs on (agent id).
    pub agent_id: String,
    /// `ollama`, `vllm`, …, or `ml-process`.
    pub kind: String,
    /// TCP ports it listens on, sorted.
    pub ports: Vec<u16>,
    /// The widest exposure of those: `all_interfaces`, `specific`, `loopback`, or empty.
    pub exposure: String,
    /// `configured`, `disabled`, `default`, or empty when unknown.
    pub auth: String,
    /// Its executable.
    pub exe: String,
    /// The version its endpoint stated, when identified.
    pub version: String,
    /// Last seen (ms).
    pub last_seen_ms: i64,
    /// No live sighting left: sent retired.
    pub retired: bool,
}

/// A model as it is pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdbModel {
    /// The model asset (`model:<digest>`): the stable key.
    pub asset_id: String,
    /// Its own name, its repository, or its file's name.
    pub name: String,
    /// Its format (`gguf`, `safetensors`, …).
    pub format: String,
    /// The content digest (file SHA-256 or group tree digest).
    pub sha256: String,
    /// Bytes.
    pub size: u64,
    /// Architecture, when the header says.
    pub architecture: String,
    /// Parameters, when the header says.
    pub parameters: u64,
    /// Quantization, when the header says.
    pub quantization: String,
    /// Declared license.
    pub license: String,
    /// Where it comes from: `huggingface:org/name`, `ollama:name:tag`, or empty.
    pub source: String,
    /// The fleet-wide safety verdict (`safe`, `unknown`, `suspicious`, `dangerous`).
    pub verdict: String,
    /// The hosts (agent ids) it is related to.
    pub hosts: Vec<String>,
    /// Last seen (ms).
    pub last_seen_ms: i64,
    /// No live sighting left: sent retired.
    pub retired: bool,
}

/// What is pushed, read from the store in one go ([`read_inventory`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CmdbInventory {
    /// Hosts, by agent id.
    pub hosts: Vec<CmdbHost>,
    /// Servers, by asset id.
    pub servers: Vec<CmdbServer>,
    /// Models, by asset id.
    pub models: Vec<CmdbModel>,
}

/// Every page of a listing.
fn all_pages<T>(
    mut page: impl FnMut(&PageRequest) -> Result<crate::store::Page<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    let mut request = PageRequest::first(PageRequest::MAX_LIMIT);
    loop {
        let p = page(&request)?;
        out.extend(p.items);
        match p.next_cursor {
            Some(cursor) => request.after = Some(cursor),
            None => return Ok(out),
        }
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn text(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_default().to_string()
}

/// Reads what is pushed (module docs, *What is pushed*).
pub fn read_inventory(store: &dyn Store) -> Result<CmdbInventory, StoreError> {
    let agents = all_pages(|p| store.hosts(&HostFilter::default(), p))?;
    // A superseded agent's host is its successor's: its CIs go there.
    let successor: HashMap<String, String> =
        agents.iter().filter_map(|h| h.agent.superseded_by.clone().map(|s| (h.agent.agent_id.clone(), s))).collect();
    let host_of = |agent: &str| {
        let mut at = agent.to_string();
        for _ in 0..8 {
            match successor.get(&at) {
                Some(next) => at = next.clone(),
                None => break,
            }
        }
        at
    };
    let mut hosts = Vec::new();
    for h in agents.iter().filter(|h| h.agent.superseded_by.is_none()) {
        let a = &h.agent;
        let facts: Value =
            a.host_facts_json.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or(Value::Null);
        let identity: Value =
            a.identity_json.as_deref().and_then(|j| serde_json::from_str(j).ok()).unwrap_or(Value::Null);
        let list = |v: &Value, key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let mut ips = list(&facts, "ip_addresses");
        ips.sort_by_key(|ip| ip.contains(':'));
        hosts.push(CmdbHost {
            agent_id: a.agent_id.clone(),
            hostname: a.hostname.clone(),
            os: text(&facts, "/os"),
            kernel: text(&facts, "/kernel"),
            arch: text(&facts, "/arch"),
            ip_addresses: ips,
            serial: text(&identity, "/product_serial"),
            product_uuid: text(&identity, "/product_uuid"),
            machine_id: text(&identity, "/machine_id"),
            mac_addresses: list(&identity, "mac_addresses"),
            cloud_instance_id: text(&identity, "/cloud_instance_id"),
            last_seen_ms: a.last_seen_ms.unwrap_or(a.enrolled_at_ms),
            retired: a.decommissioned_at_ms.is_some() || a.revoked_at_ms.is_some(),
        });
    }

    let mut live_hosts: HashMap<String, Vec<String>> = HashMap::new();
    for e in store.live_inventory()?.entries {
        if e.kind == AssetKind::Model {
            let hosts = live_hosts.entry(e.asset_id).or_default();
            let host = host_of(&e.agent_id);
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
    }
    let listing = |kind| {
        let filter = AssetFilter { kind: Some(kind), include_removed: true, ..AssetFilter::default() };
        all_pages(|p| store.assets(&filter, p))
    };
    // The latest entry of an asset and the hosts of its sightings, newest first: for an asset
    // with no live sighting (the listing has no entry for it), or whose live sightings are all
    // on revoked hosts (the live inventory leaves those out).
    let from_sightings = |asset: &AssetSummary| -> Result<(Value, Vec<String>), StoreError> {
        let Some(detail) = store.asset(&asset.id, &PageRequest::first(PageRequest::MAX_LIMIT))? else {
            return Ok((Value::Null, Vec::new()));
        };
        let mut sightings = detail.sightings.items;
        sightings.sort_by_key(|s| std::cmp::Reverse(s.last_seen_ms));
        let entry = sightings.first().map_or(Value::Null, |s| parse_json(&s.json));
        let mut hosts: Vec<String> = Vec::new();
        for s in &sightings {
            let host = host_of(&s.agent_id);
            if !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        Ok((entry, hosts))
    };
    let entry_of = |asset: &AssetSummary| -> Result<Value, StoreError> {
        match asset.latest_entry.as_deref() {
            Some(entry) => Ok(parse_json(entry)),
            None => Ok(from_sightings(asset)?.0),
        }
    };

    let mut servers = Vec::new();
    for asset in listing(AssetKind::Runtime)? {
        let entry = entry_of(&asset)?;
        let kind = text(&entry, "/kind");
        let listening = entry.get("listening").and_then(Value::as_array).cloned().unwrap_or_default();
        if kind.is_empty() || (kind == "ml-process" && listening.is_empty()) {
            continue;
        }
        // The runtime identity is ["<agent id>", "<kind>", "<discriminator>"].
        let identity: Value = serde_json::from_str(&asset.identity).unwrap_or(Value::Null);
        let Some(agent) = identity.get(0).and_then(Value::as_str) else { continue };
        let mut ports: Vec<u16> = listening
            .iter()
            .filter_map(|l| l.get("port").and_then(Value::as_u64))
            .filter_map(|p| u16::try_from(p).ok())
            .collect();
        ports.sort_unstable();
        ports.dedup();
        let exposures: Vec<&str> = listening.iter().filter_map(|l| l.get("exposure").and_then(Value::as_str)).collect();
        let exposure =
            ["all_interfaces", "specific", "loopback"].into_iter().find(|e| exposures.contains(e)).unwrap_or("");
        servers.push(CmdbServer {
            asset_id: asset.id.clone(),
            agent_id: host_of(agent),
            kind,
            ports,
            exposure: exposure.to_string(),
            auth: text(&entry, "/auth/state"),
            exe: text(&entry, "/exe"),
            version: text(&entry, "/identity/version"),
            last_seen_ms: asset.last_seen_ms,
            retired: asset.live_sightings == 0,
        });
    }

    let mut models = Vec::new();
    for asset in listing(AssetKind::Model)? {
        let mut hosts = live_hosts.remove(&asset.id).unwrap_or_default();
        let entry = if hosts.is_empty() {
            let (entry, last_hosts) = from_sightings(&asset)?;
            hosts = last_hosts;
            entry
        } else {
            entry_of(&asset)?
        };
        hosts.sort();
        hosts.truncate(MAX_MODEL_HOSTS);
        let file = text(&entry, "/path").rsplit('/').next().unwrap_or_default().to_string();
        let source = match text(&entry, "/source/kind").as_str() {
            "" => String::new(),
            "huggingface" => format!("huggingface:{}", text(&entry, "/source/repo")),
            "ollama" => format!("ollama:{}", text(&entry, "/source/name")),
            other => other.to_string(),
        };
        let name = [text(&entry, "/metadata/name"), text(&entry, "/source/repo"), text(&entry, "/source/name"), file]
            .into_iter()
            .find(|n| !n.is_empty())
            .unwrap_or_else(|| asset.id.clone());
        let verdict = asset.verdict.map(|v| v.as_str().to_string()).unwrap_or_else(|| text(&entry, "/safety/verdict"));
        models.push(CmdbModel {
            asset_id: asset.id.clone(),
            name,
            format: text(&entry, "/format"),
            sha256: asset.identity.clone(),
            size: entry.get("size").and_then(Value::as_u64).unwrap_or(0),
            architecture: text(&entry, "/metadata/architecture"),
            parameters: entry.pointer("/metadata/parameters").and_then(Value::as_u64).unwrap_or(0),
            quantization: text(&entry, "/metadata/quantization"),
            license: text(&entry, "/metadata/license"),
            source,
            verdict,
            hosts,
            last_seen_ms: asset.last_seen_ms,
            retired: asset.live_sightings == 0,
        });
    }
    Ok(CmdbInventory { hosts, servers, models })
}

/// One CI of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ci<'a> {
    /// A host.
    Host(&'a CmdbHost),
    /// A server, which runs on the batch's host.
    Server(&'a CmdbServer),
    /// A model, on the batch's host.
    Model(&'a CmdbModel),
}

impl Ci<'_> {
    /// Its stable key: the agent id or the asset id.
    pub fn key(&self) -> &str {
        match self {
            Ci::Host(h) => &h.agent_id,
            Ci::Server(s) => &s.asset_id,
            Ci::Model(m) => &m.asset_id,
        }
    }
}

/// One request's worth of CIs: `relations` are (dependent, host) indices into `cis`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch<'a> {
    /// The CIs, each host before its dependents.
    pub cis: Vec<Ci<'a>>,
    /// (dependent index, host index).
    pub relations: Vec<(usize, usize)>,
}

/// The inventory in batches of at most `size` CIs (module docs, *Batches*); `size` is at least 2.
pub fn batches(inventory: &CmdbInventory, size: usize) -> Vec<Batch<'_>> {
    let size = size.max(2);
    let mut out: Vec<Batch<'_>> = Vec::new();
    let mut current = Batch::default();
    for host in &inventory.hosts {
        let mut dependents: Vec<Ci<'_>> = Vec::new();
        dependents.extend(inventory.servers.iter().filter(|s| s.agent_id == host.agent_id).map(Ci::Server));
        dependents.extend(inventory.models.iter().filter(|m| m.hosts.contains(&host.agent_id)).map(Ci::Model));
        if current.cis.len() + 1 + dependents.len() > size && !current.cis.is_empty() {
            out.push(std::mem::take(&mut current));
        }
        let mut host_at = current.cis.len();
        current.cis.push(Ci::Host(host));
        for ci in dependents {
            if current.cis.len() == size {
                out.push(std::mem::take(&mut current));
                host_at = 0;
                current.cis.push(Ci::Host(host));
            }
            current.relations.push((current.cis.len(), host_at));
            current.cis.push(ci);
        }
    }
    if !current.cis.is_empty() {
        out.push(current);
    }
    out
}

/// What happened to the CIs of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassCounts {
    /// Created.
    pub inserted: u64,
    /// Changed.
    pub updated: u64,
    /// Already as sent.
    pub unchanged: u64,
    /// Refused (see the report's errors).
    pub failed: u64,
    /// Accepted by a target that does not say what it did with them (the webhook).
    pub delivered: u64,
    /// Of those sent, how many were sent retired.
    pub retired: u64,
}

/// One CI the CMDB refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemError {
    /// Its class.
    pub class: String,
    /// Its stable key.
    pub key: String,
    /// The CMDB's error code (`MISSING_DEPENDENCY`, `INVALID_INPUT_DATA`, …).
    pub error: String,
    /// The CMDB's message (cut to 300 characters).
    pub message: String,
}

/// What one push did: printed by `push`, logged by the schedule, kept for the API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReport {
    /// `servicenow` or `webhook`.
    pub target: String,
    /// Identified only (ServiceNow's query endpoint): nothing was written.
    pub dry_run: bool,
    /// When it started (ms).
    pub started_at_ms: i64,
    /// When it ended (ms).
    pub finished_at_ms: i64,
    /// Every request answered and no CI refused.
    pub ok: bool,
    /// Why the push stopped, when it did (an HTTP error, the credentials, the store).
    pub error: Option<String>,
    /// Per class (ServiceNow) or record type (webhook).
    pub classes: BTreeMap<String, ClassCounts>,
    /// The first [`PushReport::MAX_ERRORS`] refused CIs.
    pub errors: Vec<ItemError>,
    /// How many CIs were refused (each once).
    pub errors_total: u64,
    /// Requests sent (retries included).
    pub requests: u64,
    /// 429 answers met.
    pub throttled: u64,
    /// Time spent waiting them out (ms).
    pub waited_ms: u64,
}

impl PushReport {
    /// Refused CIs kept in a report.
    pub const MAX_ERRORS: usize = 100;

    /// A report of a push to `target` starting now.
    pub fn start(target: &str, dry_run: bool) -> Self {
        Self { target: target.to_string(), dry_run, started_at_ms: crate::now_ms(), ..Self::default() }
    }

    /// The report as the operator reads it: one line per class, then the refusals.
    pub fn text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let verb = if self.dry_run { "dry run (nothing written)" } else { "push" };
        let _ = writeln!(
            out,
            "{} {verb}: {} in {} ms, {} requests, {} throttled ({} ms waited)",
            self.target,
            if self.ok { "ok" } else { "failed" },
            self.finished_at_ms.saturating_sub(self.started_at_ms),
            self.requests,
            self.throttled,
            self.waited_ms
        );
        for (class, c) in &self.classes {
            let _ = writeln!(
                out,
                "  {class}: {} inserted, {} updated, {} unchanged, {} delivered, {} failed ({} sent retired)",
                c.inserted, c.updated, c.unchanged, c.delivered, c.failed, c.retired
            );
        }
        for e in &self.errors {
            let _ = writeln!(
                out,
                "  refused {} {}: {}: {}",
                e.class,
                crate::untrusted::text(&e.key),
                crate::untrusted::text(&e.error),
                crate::untrusted::text(&e.message)
            );
        }
        if self.errors_total > self.errors.len() as u64 {
            let _ = writeln!(out, "  … {} refusals in all", self.errors_total);
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  error: {}", crate::untrusted::text(e));
        }
        out
    }
}

/// What became of one CI in a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created.
    Inserted,
    /// Changed.
    Updated,
    /// Already as sent.
    Unchanged,
    /// Refused.
    Failed,
    /// Accepted, with no word on what became of it (the webhook).
    Delivered,
}

/// Counts each CI once however many batches carried it: its first outcome, unless a later
/// one failed.
#[derive(Debug, Default)]
pub struct Tally {
    seen: HashMap<(String, String), (Outcome, bool)>,
    errors: Vec<ItemError>,
    errors_total: u64,
}

impl Tally {
    /// Records what the CMDB did with the CI `key` of `class`; `retired` when it was sent so.
    pub fn record(&mut self, class: &str, key: &str, outcome: Outcome, retired: bool) {
        let slot = self.seen.entry((class.to_string(), key.to_string())).or_insert((outcome, retired));
        if outcome == Outcome::Failed {
            slot.0 = Outcome::Failed;
        }
    }

    /// Records a refusal (and the CI's failure); a CI refused again in a later batch (a host
    /// sent with each of its batches) is kept and counted once.
    pub fn refuse(&mut self, error: ItemError, retired: bool) {
        let id = (error.class.clone(), error.key.clone());
        if self.seen.get(&id).is_some_and(|(outcome, _)| *outcome == Outcome::Failed) {
            return;
        }
        self.record(&id.0, &id.1, Outcome::Failed, retired);
        self.errors_total += 1;
        if self.errors.len() < PushReport::MAX_ERRORS {
            self.errors.push(error);
        }
    }

    /// Writes the counts into `report`.
    pub fn finish(self, report: &mut PushReport) {
        for ((class, _), (outcome, retired)) in self.seen {
            let c = report.classes.entry(class).or_default();
            match outcome {
                Outcome::Inserted => c.inserted += 1,
                Outcome::Updated => c.updated += 1,
                Outcome::Unchanged => c.unchanged += 1,
                Outcome::Failed => c.failed += 1,
                Outcome::Delivered => c.delivered += 1,
            }
            c.retired += u64::from(retired);
        }
        report.errors_total += self.errors_total;
        report.errors.extend(self.errors);
    }
}

/// Unix milliseconds as ServiceNow's `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn glide_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .map(|t| {
            format!(
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_default()
}

/// Unix milliseconds as RFC 3339 (UTC).
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// The CA bundles of the usual distributions, tried in order after `SSL_CERT_FILE`.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The certificates of a PEM file.
fn pem_certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

/// HTTP to one CMDB (module docs, *Requests*), counting what the report tells.
#[derive(Debug)]
pub struct Http {
    agent: ureq::Agent,
    /// Longest total wait for 429s.
    max_wait: Duration,
    /// Requests sent.
    pub requests: u64,
    /// 429 answers met.
    pub throttled: u64,
    /// Time waited for them.
    pub waited: Duration,
}

/// Most attempts of one request answered 429.
const MAX_ATTEMPTS: u32 = 30;

impl Http {
    /// A client trusting the system's roots and `ca_file`; `section` names the configuration.
    pub fn new(section: &str, ca_file: Option<&Path>, timeout: Duration, max_wait: Duration) -> Result<Self, String> {
        let system = std::env::var_os("SSL_CERT_FILE")
            .map(std::path::PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
            .find_map(|p| std::fs::read(p).ok());
        let mut roots = system.as_deref().map(pem_certificates).unwrap_or_default();
        if let Some(file) = ca_file {
            let pem = std::fs::read(file).map_err(|e| format!("{section}.ca_file {}: {e}", file.display()))?;
            let extra = pem_certificates(&pem);
            if extra.is_empty() {
                return Err(format!("{section}.ca_file {}: no certificate in it", file.display()));
            }
            roots.extend(extra);
        }
        let roots = if roots.is_empty() {
            ureq::tls::RootCerts::WebPki
        } else {
            ureq::tls::RootCerts::Specific(Arc::new(roots))
        };
        let tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls).root_certs(roots).build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls)
            .build()
            .into();
        Ok(Self { agent, max_wait, requests: 0, throttled: 0, waited: Duration::ZERO })
    }

    /// Sends a request (a POST when `body` is given, else a GET) and returns the status and
    /// the answer; a 429 is waited out and sent again (module docs).
    pub fn send(&mut self, url: &str, headers: &[(&str, String)], body: Option<&str>) -> Result<(u16, String), String> {
        let method = if body.is_some() { "POST" } else { "GET" };
        for _ in 0..MAX_ATTEMPTS {
            self.requests += 1;
            let answer = match body {
                Some(body) => {
                    let mut request = self.agent.post(url);
                    for (name, value) in headers {
                        request = request.header(*name, value);
                    }
                    request.send(body)
                }
                None => {
                    let mut request = self.agent.get(url);
                    for (name, value) in headers {
                        request = request.header(*name, value);
                    }
                    request.call()
                }
            };
            let mut response = answer.map_err(|e| format!("{method} {url}: {e}"))?;
            let status = response.status().as_u16();
            if status == 429 {
                self.throttled += 1;
                let wait = retry_after(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                if self.waited + wait > self.max_wait {
                    return Err(format!(
                        "{method} {url}: still rate limited (429) after waiting {} s in all (max_retry_wait)",
                        self.waited.as_secs()
                    ));
                }
                tracing::info!(url = %url, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "cmdb rate limited (429): waiting as retry-after says");
                std::thread::sleep(wait);
                self.waited += wait;
                continue;
            }
            let text = response
                .body_mut()
                .with_config()
                .limit(MAX_RESPONSE_BYTES)
                .read_to_string()
                .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
            return Ok((status, text));
        }
        Err(format!("{method} {url}: still rate limited (429) after {MAX_ATTEMPTS} attempts"))
    }
}

/// The wait a `Retry-After` asks (seconds; an HTTP date or nothing is taken as 5 s), from 1 s
/// to 5 min.
fn retry_after(value: Option<&str>) -> Duration {
    let secs = value.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(5);
    Duration::from_secs(secs.clamp(1, 300))
}

/// A configured target, ready to push: its credentials read.
#[derive(Debug)]
pub enum Target {
    /// ServiceNow.
    ServiceNow(servicenow::ServiceNow),
    /// The webhook.
    Webhook(webhook::Webhook),
}

impl Target {
    /// `servicenow` or `webhook`: the report's and the API's name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::ServiceNow(_) => "servicenow",
            Self::Webhook(_) => "webhook",
        }
    }

    /// Pushes the inventory of `store`; the report says what happened, a failure included.
    pub fn push(&self, store: &dyn Store, dry_run: bool) -> PushReport {
        let mut report = PushReport::start(self.name(), dry_run);
        let outcome =
            read_inventory(store).map_err(|e| format!("reading the inventory: {e}")).and_then(|inventory| match self {
                Self::ServiceNow(s) => s.push(&inventory, dry_run, &mut report),
                Self::Webhook(w) => w.push(&inventory, &mut report),
            });
        report.error = outcome.err();
        report.ok = report.error.is_none() && report.errors_total == 0;
        report.finished_at_ms = crate::now_ms();
        report
    }
}

/// The targets `serve` pushes to on a schedule, with their intervals.
pub fn scheduled(config: &CmdbConfig) -> Result<Vec<(Target, Duration)>, String> {
    let mut out = Vec::new();
    if let Some(s) = &config.servicenow {
        if let Some(interval) = s.interval {
            out.push((Target::ServiceNow(servicenow::ServiceNow::new(s.clone())?), interval));
        }
    }
    if let Some(w) = &config.webhook {
        if let Some(interval) = w.interval {
            out.push((Target::Webhook(webhook::Webhook::new(w.clone())?), interval));
        }
    }
    Ok(out)
}

/// Pushes to `target` now and then every `interval` until `stop` turns true, off the async
/// runtime; each report is logged and kept in the store for `GET /api/v1/cmdb/last-push`.
pub async fn run_periodically(
    store: Arc<dyn Store>,
    target: Target,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let target = Arc::new(target);
    loop {
        let (s, t) = (Arc::clone(&store), Arc::clone(&target));
        match tokio::task::spawn_blocking(move || {
            let report = t.push(&*s, false);
            record(&*s, &report);
            report
        })
        .await
        {
            Ok(report) => log_report(&report),
            Err(e) => {
                tracing::warn!(target_name = target.name(), error = %e, "cmdb push died; trying at the next interval")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// Keeps `report` as its target's last push (a dry run is not kept).
pub fn record(store: &dyn Store, report: &PushReport) {
    if report.dry_run {
        return;
    }
    let json = serde_json::to_string(report).unwrap_or_default();
    if let Err(e) = store.record_cmdb_push(&report.target, report.finished_at_ms, &json) {
        tracing::warn!(target_name = %report.target, error = %e, "cannot keep the cmdb push report");
    }
}

/// Logs `report`, fields first.
pub fn log_report(r: &PushReport) {
    let count = |f: fn(&ClassCounts) -> u64| r.classes.values().map(f).sum::<u64>();
    let (inserted, updated, unchanged, failed) =
        (count(|c| c.inserted), count(|c| c.updated), count(|c| c.unchanged), count(|c| c.failed));
    match &r.error {
        None if r.ok => {
            tracing::info!(target_name = %r.target, inserted, updated, unchanged, failed, requests = r.requests, throttled = r.throttled, "cmdb push done")
        }
        None => {
            let first = r.errors.first().map(|e| format!("{} {}: {}", e.class, e.error, e.message)).unwrap_or_default();
            tracing::warn!(target_name = %r.target, inserted, updated, unchanged, failed,
                first_error = %crate::untrusted::text(&first), "cmdb push: some cis were refused");
        }
        Some(e) => {
            tracing::warn!(target_name = %r.target, inserted, updated, unchanged, failed, error = %crate::untrusted::text(e), "cmdb push failed")
        }
    }
}

#[cfg(test)]
mod tests;
