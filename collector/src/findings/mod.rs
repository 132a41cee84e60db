//! Findings: what the collector concludes from the whole fleet's inventory.
//!
//! # Evaluation
//! [`evaluate`] reads the live inventory (every unrevoked host and its live sightings), runs
//! every rule of [`RULES`] over it ([`rules`]) and hands what they find to the store, which
//! reconciles it with the stored findings. The server runs it every `findings.interval` and at
//! start; `aiscout-collector findings evaluate` runs it once. Rules are pure functions of the
//! inventory, the settings and the time: the same inventory gives the same findings.
//!
//! # Identity
//! A finding is one rule's conclusion about one subject (an asset, a host and a server, a host
//! and a file, …); its id is `f-` and the first 24 hex digits of SHA-256 over the rule id and
//! the subject, so it is stable across evaluations, restarts and collectors.
//!
//! # Lifecycle
//! 1. found and unknown: **open**;
//! 2. found again: evidence, severity and title refreshed, `last_seen_ms` moves, the state
//!    stays (an **acknowledged** one stays acknowledged until its expiry, then is **open**);
//! 3. not found: **resolved** (the evidence is gone), its acknowledgement dropped;
//! 4. found while resolved: **reopened** (counted), to be looked at again.
//!
//! An operator acknowledges an open or reopened finding with a reason and an optional expiry
//! (`POST /api/v1/findings/{id}/ack`, admin scope); who did is the API token's label and id.
//!
//! # Mappings
//! Each rule names the OWASP Top 10 for LLM Applications 2025 ids, MITRE ATLAS techniques, NIST
//! AI RMF subcategories and ISO/IEC 42001 Annex A controls it relates to; [`frameworks`] holds
//! every id each framework defines, and a test checks that every id used exists there.
//!
//! Agent-supplied strings (hostnames, paths, versions) reach titles and evidence as they are:
//! JSON escapes them, titles are cut to [`MAX_TITLE_CHARS`], and whoever renders them escapes
//! them (the dashboard).

pub mod advisories;
pub mod frameworks;
pub mod risk;
mod rules;
pub mod version;

use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::store::{FindingChanges, NewFinding, Store, StoreError};

/// Severities, least first: the one list every rule, filter, policy and SIEM target uses.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];

/// 0 (info) to 4 (critical); text that is no severity is 0.
pub fn severity_rank(severity: &str) -> usize {
    SEVERITIES.iter().position(|s| *s == severity).unwrap_or(0)
}

/// The severities at or above `min`; `None` when `min` is no severity.
pub fn at_or_above(min: &str) -> Option<&'static [&'static str]> {
    SEVERITIES.iter().position(|s| *s == min).and_then(|at| SEVERITIES.get(at..))
}

/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 300;

/// A rule: what it looks for, and where it sits in the risk frameworks.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Stable id.
    pub id: &'static str,
    /// What it finds, one line.
    pub title: &'static str,
    /// How it decides, and its severities.
    pub description: &'static str,
    /// OWASP Top 10 for LLM Applications 2025 ids.
    pub owasp_llm: &'static [&'static str],
    /// MITRE ATLAS technique ids.
    pub mitre_atlas: &'static [&'static str],
    /// NIST AI RMF 1.0 subcategories.
    pub nist_ai_rmf: &'static [&'static str],
    /// ISO/IEC 42001:2023 Annex A controls.
    pub iso_42001: &'static [&'static str],
}

impl Rule {
    /// The mappings, by framework key ([`frameworks::FRAMEWORKS`]).
    pub fn mappings(&self) -> [(&'static str, &'static [&'static str]); 4] {
        [
            ("owasp_llm", self.owasp_llm),
            ("mitre_atlas", self.mitre_atlas),
            ("nist_ai_rmf", self.nist_ai_rmf),
            ("iso_42001", self.iso_42001),
        ]
    }
}

/// Model files whose loading can run code.
pub const UNSAFE_MODEL: Rule = Rule {
    id: "unsafe-model-serialization",
    title: "Model file whose loading can run code",
    description: "A model whose safety verdict is dangerous (high) or suspicious (medium) on a live sighting; \
        critical when it is dangerous and a process has it open (a server serving it).",
    owasp_llm: &["LLM03:2025", "LLM04:2025"],
    mitre_atlas: &["AML.T0011.000", "AML.T0010.003"],
    nist_ai_rmf: &["MEASURE 2.7", "GOVERN 6.1"],
    iso_42001: &["A.10.3", "A.6.2.4"],
};

/// Inference servers and ML processes listening beyond loopback without authentication.
pub const EXPOSED_SERVER: Rule = Rule {
    id: "exposed-inference-server",
    title: "Inference server or ML process listening beyond loopback without authentication",
    description: "A running server or ML process listening on all interfaces or a specific address whose \
        authentication is disabled or off by default (high), or cannot be told (an ML process: medium); \
        critical when it has a dangerous model open.",
    owasp_llm: &["LLM10:2025", "LLM02:2025"],
    mitre_atlas: &["AML.T0040", "AML.T0049"],
    nist_ai_rmf: &["MEASURE 2.7", "MANAGE 2.4"],
    iso_42001: &["A.6.2.6"],
};

/// AI API keys kept in plaintext files.
pub const PLAINTEXT_KEY: Rule = Rule {
    id: "plaintext-ai-api-key",
    title: "AI API key in a plaintext file",
    description: "An AI provider's API key with a literal value in a .env file, a shell profile or an MCP \
        configuration (medium). The value itself is never collected.",
    owasp_llm: &["LLM02:2025"],
    mitre_atlas: &["AML.T0055"],
    nist_ai_rmf: &["MEASURE 2.7"],
    iso_42001: &["A.6.2.6"],
};

/// Framework and server versions with known vulnerabilities.
pub const VULNERABLE_VERSION: Rule = Rule {
    id: "vulnerable-version",
    title: "ML framework or server version with a known vulnerability",
    description: "An installed package or a running server whose version an advisory of the advisories file \
        (OSV format) affects; the advisory's severity.",
    owasp_llm: &["LLM03:2025"],
    mitre_atlas: &["AML.T0010.001"],
    nist_ai_rmf: &["MANAGE 3.1", "MEASURE 2.7"],
    iso_42001: &["A.10.3"],
};

/// Hosts not heard from for too long.
pub const SILENT_HOST: Rule = Rule {
    id: "silent-host",
    title: "Host silent for longer than findings.silent_after",
    description: "An unrevoked host whose agent has not opened a stream or sent a batch for longer than \
        findings.silent_after (low): its inventory is out of date, or the agent was removed.",
    owasp_llm: &[],
    mitre_atlas: &[],
    nist_ai_rmf: &["MEASURE 3.1"],
    iso_42001: &["A.6.2.6"],
};

/// Models the policy does not approve.
pub const UNAPPROVED_MODEL: Rule = Rule {
    id: "unapproved-model",
    title: "Model not on the policy's approved list",
    description: "A model (not a file an installed package shipped) whose digest, Hugging Face repo or names match \
        no approval of the applied policy (medium); off while the policy lists no approvals.",
    owasp_llm: &["LLM03:2025"],
    mitre_atlas: &["AML.T0010.003"],
    nist_ai_rmf: &["GOVERN 1.6", "MAP 4.1"],
    iso_42001: &["A.4.2", "A.10.3"],
};

/// Frameworks older than the policy's floor.
pub const BELOW_FLOOR: Rule = Rule {
    id: "framework-below-floor",
    title: "Framework older than the policy's version floor",
    description: "An installed package whose version is below the floor the applied policy sets for it (high).",
    owasp_llm: &["LLM03:2025"],
    mitre_atlas: &["AML.T0010.001"],
    nist_ai_rmf: &["MANAGE 3.1"],
    iso_42001: &["A.10.3"],
};

/// Frameworks the policy does not approve.
pub const UNAPPROVED_FRAMEWORK: Rule = Rule {
    id: "unapproved-framework",
    title: "Framework not on the policy's approved list",
    description: "An installed ML framework or AI package the applied policy's frameworks.approved does not name \
        (medium); off while the policy lists none.",
    owasp_llm: &["LLM03:2025"],
    mitre_atlas: &["AML.T0010.001"],
    nist_ai_rmf: &["GOVERN 1.6", "MAP 4.1"],
    iso_42001: &["A.10.3"],
};

/// Model licences outside the policy.
pub const LICENCE: Rule = Rule {
    id: "licence-outside-policy",
    title: "Model licence outside the policy",
    description: "A model whose declared licence the applied policy denies, or does not allow when it lists the \
        allowed ones (medium).",
    owasp_llm: &["LLM03:2025"],
    mitre_atlas: &[],
    nist_ai_rmf: &["GOVERN 1.1", "MAP 4.1"],
    iso_42001: &["A.10.3"],
};

/// MCP servers that run local commands through a shell or carry credentials.
pub const MCP_SERVER: Rule = Rule {
    id: "mcp-server-risk",
    title: "MCP server that runs arbitrary local commands or carries credentials",
    description: "A configured MCP server whose command is a shell interpreter or a known command-execution \
        server (medium: an agent that calls it can run anything the user can), or that passes credentials in \
        its environment or headers (medium); names only, never values.",
    owasp_llm: &["LLM06:2025", "LLM02:2025"],
    mitre_atlas: &["AML.T0053", "AML.T0055"],
    nist_ai_rmf: &["GOVERN 6.1", "MAP 4.1"],
    iso_42001: &["A.10.3", "A.6.2.6"],
};

/// Models spreading over the fleet.
pub const SPREAD: Rule = Rule {
    id: "model-spread",
    title: "Model that appeared on many hosts in a short time",
    description: "A model first seen on at least findings.spread_hosts hosts within findings.spread_window \
        (medium): a new model rolled out, copied or dropped across the fleet.",
    owasp_llm: &["LLM03:2025"],
    mitre_atlas: &["AML.T0010.003"],
    nist_ai_rmf: &["GOVERN 1.6", "MEASURE 3.1"],
    iso_42001: &["A.4.2"],
};

/// Every rule, in the order findings are evaluated.
pub const RULES: [Rule; 11] = [
    UNSAFE_MODEL,
    EXPOSED_SERVER,
    PLAINTEXT_KEY,
    VULNERABLE_VERSION,
    SILENT_HOST,
    UNAPPROVED_MODEL,
    BELOW_FLOOR,
    LICENCE,
    MCP_SERVER,
    SPREAD,
    UNAPPROVED_FRAMEWORK,
];

/// The rule with `id`.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// The ids of the rules mapped to `mapping` (an id of any framework: `LLM03:2025`,
/// `AML.T0010.003`, `MEASURE 2.7`, `A.10.3`); empty when none is.
pub fn rules_mapped_to(mapping: &str) -> Vec<&'static str> {
    RULES.iter().filter(|r| r.mappings().iter().any(|(_, ids)| ids.contains(&mapping))).map(|r| r.id).collect()
}

/// Every mapping id some rule has, by framework key, sorted and without repeats.
pub fn mapped_ids() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for rule in &RULES {
        for (key, ids) in rule.mappings() {
            match out.iter_mut().find(|(k, _)| *k == key) {
                Some((_, all)) => all.extend_from_slice(ids),
                None => out.push((key, ids.to_vec())),
            }
        }
    }
    for (_, ids) in &mut out {
        ids.sort_unstable();
        ids.dedup();
    }
    out
}

/// What the rules need besides the inventory.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A host not heard from for longer is silent.
    pub silent_after: Duration,
    /// A model first seen on at least this many hosts within `spread_window` is spreading.
    pub spread_hosts: usize,
    /// The window of `spread_hosts`.
    pub spread_window: Duration,
    /// The advisories matched against installed versions.
    pub advisories: Vec<advisories::Advisory>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            silent_after: Duration::from_secs(24 * 3600),
            spread_hosts: 10,
            spread_window: Duration::from_secs(24 * 3600),
            advisories: advisories::parse(advisories::SHIPPED).unwrap_or_default(),
        }
    }
}

impl Settings {
    /// The settings `config` gives: its `[findings]` values, and the advisories file installed
    /// in the data directory (`aiscout-collector advisories update`) or else the shipped one.
    pub fn load(config: &crate::config::CollectorConfig) -> Result<Self, String> {
        let file = config.advisories_file();
        let advisories = match read_advisories(&file) {
            Ok(Some(list)) => list,
            Ok(None) => advisories::parse(advisories::SHIPPED)?,
            Err(e) => return Err(format!("{}: {e}", file.display())),
        };
        Ok(Self {
            silent_after: config.findings.silent_after,
            spread_hosts: config.findings.spread_hosts,
            spread_window: config.findings.spread_window,
            advisories,
        })
    }
}

/// The advisories in `path`, `None` when there is no such file.
pub fn read_advisories(path: &std::path::Path) -> Result<Option<Vec<advisories::Advisory>>, String> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut text = String::new();
    file.take(advisories::MAX_FILE_BYTES + 1).read_to_string(&mut text).map_err(|e| e.to_string())?;
    if text.len() as u64 > advisories::MAX_FILE_BYTES {
        return Err(format!("larger than {} bytes", advisories::MAX_FILE_BYTES));
    }
    advisories::parse(&text).map(Some)
}

/// Runs [`evaluate`] now and every `interval` until `stop` turns true; an evaluation that fails
/// is logged and tried again at the next tick.
pub async fn run_periodically(
    store: std::sync::Arc<dyn Store>,
    settings: Settings,
    interval: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let settings = std::sync::Arc::new(settings);
    loop {
        let (s, st) = (std::sync::Arc::clone(&store), std::sync::Arc::clone(&settings));
        match tokio::task::spawn_blocking(move || evaluate(&*s, &st, crate::now_ms())).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "findings evaluation failed; trying again at the next interval"),
            Err(e) => tracing::warn!(error = %e, "findings evaluation died; trying again at the next interval"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// A finding as JSON: the record, its rule's mappings and its evidence.
pub fn to_json(f: &crate::store::FindingRecord) -> serde_json::Value {
    let rule = rule(&f.found.rule_id);
    let mappings: serde_json::Map<String, serde_json::Value> = rule
        .map(|r| r.mappings().iter().map(|(k, ids)| ((*k).to_string(), serde_json::json!(ids))).collect())
        .unwrap_or_default();
    serde_json::json!({
        "id": f.found.finding_id,
        "rule": f.found.rule_id,
        "rule_title": rule.map(|r| r.title),
        "severity": f.found.severity,
        "title": f.found.title,
        "state": f.state,
        "hosts": f.found.hosts,
        "assets": f.found.assets,
        "first_seen_ms": f.first_seen_ms,
        "last_seen_ms": f.last_seen_ms,
        "state_changed_ms": f.state_changed_ms,
        "resolved_at_ms": f.resolved_at_ms,
        "reopened_count": f.reopened_count,
        "acknowledgement": f.acknowledgement.as_ref().map(|a| serde_json::json!({
            "reason": a.reason, "by": a.by, "at_ms": a.at_ms, "expires_ms": a.expires_ms,
        })),
        "mappings": mappings,
        "evidence": serde_json::from_str::<serde_json::Value>(&f.found.evidence_json).unwrap_or(serde_json::Value::Null),
    })
}

/// The id of `rule`'s finding about `subject` (module docs, *Identity*).
pub fn finding_id(rule: &str, subject: &str) -> String {
    let mut h = Sha256::new();
    h.update(rule.as_bytes());
    h.update([0]);
    h.update(subject.as_bytes());
    let hex = hex::encode(h.finalize());
    format!("f-{}", hex.get(..24).unwrap_or(&hex))
}

/// Records the assets that disappeared, came back or changed verdict in the audit trail, then
/// runs every rule over the store's live inventory and reconciles the findings at `now_ms`.
pub fn evaluate(store: &dyn Store, settings: &Settings, now_ms: i64) -> Result<FindingChanges, StoreError> {
    store.reconcile_asset_states(now_ms)?;
    let inventory = store.live_inventory()?;
    let policy = match store.current_policy()? {
        Some(record) => match crate::policy::Policy::parse(&record.text) {
            Ok(p) => Some(p),
            Err(problems) => {
                tracing::warn!(version = record.version, problems = ?problems, "the applied policy no longer parses; evaluating without it");
                None
            }
        },
        None => None,
    };
    let found: Vec<NewFinding> = rules::run(&inventory, settings, policy.as_ref(), now_ms);
    let changes = store.reconcile_findings(&found, now_ms)?;
    if changes.opened + changes.reopened + changes.resolved + changes.ack_expired > 0 {
        tracing::info!(
            opened = changes.opened,
            reopened = changes.reopened,
            resolved = changes.resolved,
            ack_expired = changes.ack_expired,
            kept = changes.kept,
            "findings evaluated"
        );
    }
    Ok(changes)
}

#[cfg(test)]
mod tests;
