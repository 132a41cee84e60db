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
pub(crate) mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::report::inventory::{EnvironmentKind, EnvironmentRef, Exposure, Listener};
    use crate::report::Section;
    use crate::scan::Progress;
    use crate::scan::{run_scan, ScanOptions};

    /// The committed model fixtures.
    pub(crate) fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
    }

    /// A models-only scan of `root`, with the hash cache in `state_dir` when given.
    pub(crate) fn scan_models(root: &Path, state_dir: Option<&Path>) -> ScanReport {
        let opts = ScanOptions {
            roots: vec![root.to_path_buf()],
            state_dir: state_dir.map(Path::to_path_buf),
            only: vec![Section::Models],
            threads: 2,
            ..Default::default()
        };
        run_scan(&opts, &Progress::default()).expect("scan of the fixtures")
    }

    pub(crate) fn host() -> HostInfo {
        HostInfo {
            hostname: "h1".into(),
            os: "Debian GNU/Linux 12".into(),
            kernel: "6.1.0".into(),
            arch: "x86_64".into(),
            agent_version: "0.1.0".into(),
            scanned_at: "2025-01-02T03:04:05Z".into(),
        }
    }

    pub(crate) fn framework(ecosystem: Ecosystem, name: &str, version: Option<&str>, env: &str) -> FrameworkEntry {
        FrameworkEntry {
            ecosystem,
            name: name.into(),
            version: version.map(Into::into),
            environment: EnvironmentRef { path: env.into(), kind: EnvironmentKind::Venv },
            category: Some("core".into()),
            gpu_build: false,
            path: None,
        }
    }

    pub(crate) fn runtime(pid: u32, kind: &str, ports: &[u16]) -> RuntimeEntry {
        RuntimeEntry {
            pid,
            ppid: Some(1),
            kind: kind.into(),
            exe: Some(format!("/usr/bin/{kind}")),
            cmdline: vec![kind.into(), "serve".into()],
            user: Some("svc".into()),
            uid: Some(998),
            started_at: Some(format!("2025-01-02T03:04:{:02}Z", pid % 60)),
            ml_libraries: vec!["cuda".into()],
            open_models: Vec::new(),
            listening: ports
                .iter()
                .map(|&port| Listener { address: "0.0.0.0".into(), port, exposure: Exposure::AllInterfaces })
                .collect(),
            gpu_memory_bytes: None,
            container: None,
            auth: None,
            environment: BTreeMap::new(),
            identity: None,
            unreadable: Vec::new(),
            findings: Vec::new(),
        }
    }

    fn api_key(path: &str, variable: &str, found_in: &str, pid: Option<u32>) -> ToolingEntry {
        ToolingEntry {
            path: path.into(),
            detail: ToolingDetail::ApiKey {
                variable: variable.into(),
                provider: Some("openai".into()),
                found_in: found_in.into(),
                pid,
            },
        }
    }

    /// A report with one entry of every hand-built kind (no models).
    pub(crate) fn inventory_report() -> ScanReport {
        let mut report = ScanReport::new(host());
        let mut native = framework(Ecosystem::Native, "ollama", Some("0.5.1"), "/usr/bin");
        native.path = Some("/usr/bin/ollama".into());
        report.frameworks = Some(vec![framework(Ecosystem::Pypi, "torch", Some("2.5.1"), "/opt/venv"), native]);
        report.runtimes = Some(vec![runtime(4242, "ollama", &[11435, 11434]), runtime(77, "vllm", &[])]);
        report.tooling = Some(vec![
            api_key("/home/a/.env", "OPENAI_API_KEY", "dotenv", None),
            api_key("/proc/99/environ", "OPENAI_API_KEY", "process_environment", Some(99)),
            ToolingEntry {
                path: "/home/a/.cursor/mcp.json".into(),
                detail: ToolingDetail::McpConfig { client: "cursor".into(), servers: Vec::new() },
            },
        ]);
        report.environments = Some(Vec::new());
        report.restricted_processes = Some(Vec::new());
        report
    }

    fn keys(assets: &[v1::Asset], kind: AssetKind) -> Vec<String> {
        assets.iter().filter(|a| a.kind() == kind).map(|a| a.local_key.clone()).collect()
    }

    #[test]
    fn fixture_models_become_one_asset_each_with_the_document_json() {
        let report = scan_models(&fixtures(), None);
        assert!(report.models.len() >= 20, "fixtures give {} models", report.models.len());
        let assets = assets(&report);
        assert_eq!(assets.len(), report.models.len());
        let document = serde_json::to_value(&report).unwrap();
        let models = document["models"].as_array().unwrap();
        for ((asset, model), json) in assets.iter().zip(&report.models).zip(models) {
            assert_eq!(asset.kind(), AssetKind::Model);
            assert_eq!(asset.local_key, model.path);
            let parsed: serde_json::Value = serde_json::from_str(&asset.json).unwrap();
            assert_eq!(&parsed, json, "{}", model.path);
        }
        // Grouped fixtures (sharded safetensors, split gguf) use the group id.
        assert!(report.models.iter().any(|m| m.group.is_some()));
    }

    #[test]
    fn local_keys_are_unique_and_stable_across_scans() {
        let first = assets(&scan_models(&fixtures(), None));
        let second = assets(&scan_models(&fixtures(), None));
        let k1 = keys(&first, AssetKind::Model);
        let unique: HashSet<&String> = k1.iter().collect();
        assert_eq!(unique.len(), k1.len(), "duplicate model keys: {k1:?}");
        assert_eq!(k1, keys(&second, AssetKind::Model));
    }

    #[test]
    fn inventory_entries_get_the_documented_keys() {
        let assets = assets(&inventory_report());
        let got: Vec<(AssetKind, &str)> = assets.iter().map(|a| (a.kind(), a.local_key.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (AssetKind::Framework, "pypi:torch@/opt/venv"),
                (AssetKind::Framework, "native:ollama@/usr/bin#/usr/bin/ollama"),
                (AssetKind::Runtime, "4242:2025-01-02T03:04:42Z"),
                (AssetKind::Runtime, "77:2025-01-02T03:04:17Z"),
                (AssetKind::Tooling, "/home/a/.env#api_key#OPENAI_API_KEY#"),
                (AssetKind::Tooling, "/proc/99/environ#api_key#OPENAI_API_KEY#99"),
                (AssetKind::Tooling, "/home/a/.cursor/mcp.json#mcp_config#cursor#"),
            ]
        );
        // Tooling JSON keeps the flattened document shape.
        let tooling: serde_json::Value = serde_json::from_str(&assets[4].json).unwrap();
        assert_eq!(tooling["kind"], "api_key");
        assert_eq!(tooling["variable"], "OPENAI_API_KEY");
        assert_eq!(tooling["path"], "/home/a/.env");
    }

    #[test]
    fn colliding_keys_are_made_unique_in_document_order() {
        let mut report = ScanReport::new(host());
        report.frameworks = Some(vec![
            framework(Ecosystem::Pypi, "torch", Some("2.4.0"), "/opt/venv"),
            framework(Ecosystem::Pypi, "torch", Some("2.5.1"), "/opt/venv"),
            framework(Ecosystem::Pypi, "torch", Some("2.6.0"), "/opt/venv"),
            // A real key that looks like a suffixed one is left alone and skipped over.
            framework(Ecosystem::Pypi, "torch", Some("1.0"), "/opt/venv#2"),
        ]);
        let assets = assets(&report);
        assert_eq!(
            keys(&assets, AssetKind::Framework),
            vec!["pypi:torch@/opt/venv", "pypi:torch@/opt/venv#3", "pypi:torch@/opt/venv#4", "pypi:torch@/opt/venv#2"]
        );
    }

    #[test]
    fn sections_not_collected_give_no_assets() {
        let mut report = inventory_report();
        report.frameworks = None;
        report.tooling = None;
        let assets = assets(&report);
        assert_eq!(assets.len(), 2);
        assert!(assets.iter().all(|a| a.kind() == AssetKind::Runtime));
    }

    #[test]
    fn host_facts_hold_the_host_fields_and_the_non_asset_sections() {
        let report = inventory_report();
        let identity =
            v1::HostIdentity { hostname: "h1".into(), machine_fingerprint: "fp".into(), ..Default::default() };
        let facts = host_facts(&report, identity.clone());
        assert_eq!(facts.identity, Some(identity));
        let json: serde_json::Value = serde_json::from_str(&facts.json).unwrap();
        assert_eq!(json["hostname"], "h1");
        assert_eq!(json["os"], "Debian GNU/Linux 12");
        assert_eq!(json["environments"], serde_json::json!([]));
        assert_eq!(json["restricted_processes"], serde_json::json!([]));
        assert!(json["stats"].is_object());
        // Not collected: absent. Assets: never in the facts.
        for absent in ["gpus", "gpu_drivers", "models", "frameworks", "runtimes", "tooling", "host", "errors"] {
            assert!(json.get(absent).is_none(), "{absent} in host facts");
        }
    }
}
