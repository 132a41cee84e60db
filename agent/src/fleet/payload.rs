//! From a scan report to what travels to the collector: assets and host facts.
//!
//! # Assets
//! Every entry of the sections present in the report becomes one [`v1::Asset`]: `models`
//! ([`AssetKind::Model`]), `frameworks` (`Framework`), `runtimes` (`Runtime`) and `tooling`
//! (`Tooling`), in document order (each section is sorted by the scanner). `environments`,
//! `gpus`, `gpu_drivers`, `restricted_processes` and `stats` are not inventory entries: they
//! travel in the host facts ([`host_facts`]). An asset's `json` is the entry serialized with
//! `serde_json` exactly as in the scan document (`docs/scan-json.md`), compact.
//!
//! # Local keys
//! The local key names an entry on its host: stable across scans while the entry is the same
//! thing, unique within its kind, so that a later delta can update or remove it.
//! 1. Model: its `path` (the file, or the directory of a directory model).
//! 2. Framework: `ecosystem:name@environment.path` (`pypi:torch@/opt/venv`); a `native` entry
//!    appends `#path`, its executable (`native:ollama@/usr/bin#/usr/bin/ollama`). The version is
//!    not part of the key: an upgrade in place is an update of the same entry.
//! 3. Runtime: `pid:started_at` (`4242:2025-01-02T03:04:05Z`), a process's lifetime; the start
//!    time is empty when unknown. A restarted server is a removal and a new entry.
//! 4. Tooling: `path#kind#client-or-variable#pid` (`/home/a/.env#api_key#OPENAI_API_KEY#`); the
//!    client for `mcp_config`, the variable for `api_key`; the pid only for keys found in a
//!    process environment, else empty.
//! 5. Should two entries of one kind still share a key (two versions of one package in one
//!    environment, say), the first keeps it and each later one, in document order, takes the
//!    first of `key#2`, `key#3`, … that no entry of the kind uses. Document order is sorted, so
//!    this is stable while the colliding entries are.
//!
//! # Identity
//! The wire carries no identity: the collector derives each asset's fleet-wide identity from its
//! JSON (`collector/src/store/identity.rs`), the one place those rules live.
//!
//! # Host facts
//! [`host_facts`] sends one JSON object: the fields of the document's `host` object at the top
//! level (what the collector stores as the host's facts), plus `environments`, `gpus`,
//! `gpu_drivers` and `restricted_processes` when their section was collected, and `stats`.
//!
//! # Failures
//! The report types serialize with string map keys only, so `serde_json` cannot fail on them;
//! should it ever, the entry is left out (logged), and the host facts become `{}` (logged).

use std::collections::HashSet;

use aiscout_proto::v1::{self, AssetKind};
use serde::Serialize;

use crate::report::host::HostInfo;
use crate::report::inventory::{
    Ecosystem, EnvironmentEntry, FrameworkEntry, GpuDevice, GpuDrivers, RestrictedProcess, RuntimeEntry, ToolingDetail,
    ToolingEntry,
};
use crate::report::{ModelEntry, ScanReport, ScanStats};

/// The assets of `report`: models, frameworks, runtimes, tooling, each section in document order.
pub fn assets(report: &ScanReport) -> Vec<v1::Asset> {
    let capacity = report.models.len()
        + report.frameworks.as_ref().map_or(0, Vec::len)
        + report.runtimes.as_ref().map_or(0, Vec::len)
        + report.tooling.as_ref().map_or(0, Vec::len);
    let mut out = Vec::with_capacity(capacity);
    push_section(&mut out, AssetKind::Model, &report.models, model_key);
    if let Some(frameworks) = &report.frameworks {
        push_section(&mut out, AssetKind::Framework, frameworks, framework_key);
    }
    if let Some(runtimes) = &report.runtimes {
        push_section(&mut out, AssetKind::Runtime, runtimes, runtime_key);
    }
    if let Some(tooling) = &report.tooling {
        push_section(&mut out, AssetKind::Tooling, tooling, tooling_key);
    }
    out
}

/// The host facts of `report` (see the module docs), with the host's `identity`.
pub fn host_facts(report: &ScanReport, identity: v1::HostIdentity) -> v1::HostFacts {
    let facts = Facts {
        host: &report.host,
        environments: report.environments.as_ref(),
        gpus: report.gpus.as_ref(),
        gpu_drivers: report.gpu_drivers.as_ref(),
        restricted_processes: report.restricted_processes.as_ref(),
        stats: &report.stats,
    };
    let json = serde_json::to_string(&facts).unwrap_or_else(|e| {
        tracing::warn!(error = %e, "cannot serialize host facts; sending an empty object");
        "{}".to_owned()
    });
    v1::HostFacts { json, identity: Some(identity) }
}

/// The JSON object of [`host_facts`].
#[derive(Serialize)]
struct Facts<'a> {
    /// The document's `host` object, its fields at the top level.
    #[serde(flatten)]
    host: &'a HostInfo,
    /// Environments examined for frameworks.
    #[serde(skip_serializing_if = "Option::is_none")]
    environments: Option<&'a Vec<EnvironmentEntry>>,
    /// NVIDIA GPUs.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpus: Option<&'a Vec<GpuDevice>>,
    /// Drivers and toolkits.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu_drivers: Option<&'a GpuDrivers>,
    /// Processes that could not be examined.
    #[serde(skip_serializing_if = "Option::is_none")]
    restricted_processes: Option<&'a Vec<RestrictedProcess>>,
    /// Counters of the scan.
    stats: &'a ScanStats,
}

/// Appends one asset per entry of a section, with unique keys (rule 5).
fn push_section<T: Serialize>(out: &mut Vec<v1::Asset>, kind: AssetKind, entries: &[T], key: fn(&T) -> String) {
    let keys: Vec<String> = entries.iter().map(key).collect();
    let taken: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let mut used: HashSet<String> = HashSet::with_capacity(keys.len());
    for (entry, base) in entries.iter().zip(&keys) {
        let local_key = unique_key(base, &taken, &mut used);
        let json = match serde_json::to_string(entry) {
            Ok(json) => json,
            Err(e) => {
                tracing::warn!(kind = ?kind, local_key = %local_key, error = %e, "cannot serialize entry; left out");
                continue;
            }
        };
        out.push(v1::Asset { kind: kind.into(), local_key, json });
    }
}

/// `base` if no earlier entry took it, else the first free `base#n` (rule 5).
fn unique_key(base: &str, taken: &HashSet<&str>, used: &mut HashSet<String>) -> String {
    if used.insert(base.to_owned()) {
        return base.to_owned();
    }
    let mut n = 2u64;
    loop {
        let candidate = format!("{base}#{n}");
        if !taken.contains(candidate.as_str()) && used.insert(candidate.clone()) {
            return candidate;
        }
        n += 1;
    }
}

/// Rule 1.
fn model_key(model: &ModelEntry) -> String {
    model.path.clone()
}

/// Rule 2.
fn framework_key(f: &FrameworkEntry) -> String {
    let mut key = format!("{}:{}@{}", f.ecosystem.as_str(), f.name, f.environment.path);
    if let (Ecosystem::Native, Some(path)) = (f.ecosystem, &f.path) {
        key.push('#');
        key.push_str(path);
    }
    key
}

/// Rule 3.
fn runtime_key(r: &RuntimeEntry) -> String {
    format!("{}:{}", r.pid, r.started_at.as_deref().unwrap_or(""))
}

/// Rule 4.
fn tooling_key(t: &ToolingEntry) -> String {
    match &t.detail {
        ToolingDetail::McpConfig { client, .. } => format!("{}#mcp_config#{client}#", t.path),
        ToolingDetail::ApiKey { variable, pid, .. } => {
            let pid = pid.map(|p| p.to_string()).unwrap_or_default();
            format!("{}#api_key#{variable}#{pid}", t.path)
        }
    }
}

#[cfg(test)]
#[path = "tests/payload.rs"]
mod tests;
