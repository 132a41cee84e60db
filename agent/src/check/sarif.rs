//! `aiscout-agent check --format sarif`: the check as one SARIF 2.1.0 log (OASIS Static Analysis
//! Results Interchange Format), for GitHub code scanning and other pipeline viewers; documented
//! in `docs/sarif.md`.
//!
//! The log has one `run`:
//! 1. `tool.driver`: `aiscout-agent`, its version, and one rule (`reportingDescriptor`) per
//!    finding kind the run reports, whose tags carry the MITRE ATLAS technique(s) and OWASP
//!    Top 10 for LLM Applications (2025) entries of those findings ([`Finding::atlas`],
//!    [`Finding::owasp`]), plus `security` and a `security-severity` (what GitHub reads);
//! 2. `results`: one per finding of every checked file, the unjudged files' `unknown_format`
//!    and `unparseable` included; the level follows the finding's severity (dangerous `error`,
//!    suspicious `warning`, informational `note`); a container member or stream
//!    ([`Finding::location`]) is a logical location and is named in the message;
//! 3. `artifacts`: one per checked file, with its SHA-256 when the check knows it;
//! 4. `invocations`: the exit status of the module [`crate::check`], and one
//!    `toolExecutionNotifications` entry per path that could not be read; `executionSuccessful`
//!    is false when there is one.
//!
//! Locations are absolute `file://` URIs; with a base directory ([`SarifOptions::base`],
//! `--sarif-base`) a path below it is relative to `%SRCROOT%`, which `originalUriBaseIds` maps
//! to the base, so that a viewer can match it to a repository checkout. Every path is
//! percent-encoded byte by byte outside RFC 3986's unreserved characters and `/`, so any path
//! gives a valid URI; the whole log is built as serde structures, never by hand.
//!
//! `partialFingerprints` (`aiscoutFinding/v1`) is the SHA-256 of the finding's kind, subject,
//! location and the reported URI: stable across runs, and across checkouts with a base.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::CheckReport;
use crate::safety::{Finding, Verdict};

/// The schema the log names: the OASIS SARIF 2.1.0 schema (errata 01), the one vendored for the
/// tests (`agent/tests/data/sarif-schema-2.1.0.json`).
pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The base URI id of paths relative to [`SarifOptions::base`] (the name GitHub's and
/// Microsoft's tools use for a source root).
pub const SRCROOT: &str = "%SRCROOT%";

/// The partial fingerprint's name.
pub const FINGERPRINT: &str = "aiscoutFinding/v1";

/// Where the documentation of finding kinds lives (the manifest's repository).
const DOCS: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/safety.md");

/// How the log is written.
#[derive(Debug, Clone, Default)]
pub struct SarifOptions {
    /// Absolute directory that paths below it are reported relative to (`%SRCROOT%`); `None`:
    /// every path is an absolute `file://` URI.
    pub base: Option<PathBuf>,
}

/// What the log says of one finding kind.
struct KindDoc {
    /// The `kind`.
    kind: &'static str,
    /// One line.
    short: &'static str,
    /// A few lines.
    full: &'static str,
    /// The section of docs/safety.md that explains it.
    anchor: &'static str,
    /// The severity it usually has (a result's own level follows its finding).
    severity: Verdict,
}

/// Every kind [`Finding::kind`] lists, as docs/safety.md's *Finding kinds* explains it.
const KINDS: &[KindDoc] = &[
    KindDoc {
        kind: "dangerous_import",
        short: "A pickle imports a callable on the denylist",
        full: "The pickle imports a callable (os.system, subprocess.Popen, builtins.eval, ...) that runs code, touches files or the network when the file is loaded.",
        anchor: "finding-kinds",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "dangerous_call",
        short: "A pickle calls a callable on the denylist",
        full: "The pickle calls a denied callable while it is loaded: loading the file runs code.",
        anchor: "finding-kinds",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "nested_pickle",
        short: "A pickle unpickles another pickle",
        full: "A pickle passed to pickle.loads and the like inside the pickle: loading it unpickles arbitrary data.",
        anchor: "finding-kinds",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "lambda_layer",
        short: "A Keras Lambda layer carries bytecode",
        full: "A Keras Lambda layer or __lambda__ function: Python bytecode that runs when the model is loaded or called.",
        anchor: "keras-configs",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "template_injection",
        short: "A GGUF chat template reaches Python from Jinja2",
        full: "A chat template that walks from template objects to Python's globals (CVE-2024-34359): rendering it without a sandbox runs code.",
        anchor: "chat-templates-gguf",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "tf_op",
        short: "A SavedModel graph runs Python or touches files",
        full: "A TensorFlow SavedModel graph op (PyFunc, ReadFile, WriteFile, ...) that runs Python or reads and writes files.",
        anchor: "finding-kinds",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "unknown_import",
        short: "A model imports a callable on neither list",
        full: "A pickle imports, or a Keras config names, a callable that is neither denied nor allowed: it runs when the file is loaded.",
        anchor: "finding-kinds",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "unresolved_import",
        short: "A pickle imports a name that cannot be resolved statically",
        full: "STACK_GLOBAL with operands that are not strings, or an extension-registry code: the callable is known only at load.",
        anchor: "finding-kinds",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "external_data",
        short: "ONNX tensor data outside the model's directory",
        full: "An ONNX tensor whose external data is an absolute path or climbs with '..': loading reads a file outside the model.",
        anchor: "finding-kinds",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "custom_loader",
        short: "An MLflow model loads through a module of its own",
        full: "An MLflow python_function model whose loader module is not MLflow's: that module is imported at load.",
        anchor: "archives-that-carry-code-by-design",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "remote_code",
        short: "Hugging Face remote code runs at load",
        full: "A Hugging Face auto_map names a Python module that trust_remote_code=True imports when the model is loaded; dangerous when it calls process, network, eval/exec or file-writing APIs.",
        anchor: "finding-kinds",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "malformed",
        short: "A model breaks before its end",
        full: "A pickle, container, Keras config or chat template identified from its start that breaks before its end: what follows the break was not judged.",
        anchor: "finding-kinds",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "unparseable",
        short: "A file named like a model could not be parsed",
        full: "A file named as a pickle that is not one from its first opcode, or whose format's parser found it broken or past a bound: it could not be judged.",
        anchor: "finding-kinds",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "unknown_format",
        short: "A file named like a model matches no format",
        full: "A file named like a model (.pt, .bin, .onnx, .gguf, ...) whose content no format matches: it could not be judged.",
        anchor: "finding-kinds",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "bound_exceeded",
        short: "Part of a model is past the analysis bounds",
        full: "A member or stream past the analysis bounds (decompressed size, opcodes, nesting, members): what lies past it was not judged.",
        anchor: "archives",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "damaged_member",
        short: "A container member cannot be read",
        full: "A container member that cannot be read; the other members were still analysed.",
        anchor: "finding-kinds",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "hidden_member",
        short: "A zip member the central directory does not list",
        full: "A zip member that the local headers hold but the central directory does not list: zipfile and PyTorch do not see it, streaming extractors do.",
        anchor: "archives",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "header_mismatch",
        short: "A zip member named differently in its two headers",
        full: "A zip member whose local header gives another name than the central directory: zipfile and an extractor reading local headers see different files.",
        anchor: "archives",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "bundled_code",
        short: "A bundle ships code its loader imports",
        full: "Python code a bundle's loader imports by design (a TorchServe handler, an MLflow code/ module); informational unless the manifest names code the archive does not hold.",
        anchor: "archives-that-carry-code-by-design",
        severity: Verdict::Safe,
    },
    KindDoc {
        kind: "dangerous_code",
        short: "Bundled code runs a dangerous primitive at import",
        full: "Code a bundle's loader imports calls a process, network, file or eval primitive when it is imported.",
        anchor: "archives-that-carry-code-by-design",
        severity: Verdict::Dangerous,
    },
    KindDoc {
        kind: "config_target",
        short: "A NeMo config instantiates a class outside NeMo",
        full: "A NeMo model_config.yaml _target_ class path outside nemo.: Hydra imports and instantiates it on restore; dangerous when the pickle policy denies it.",
        anchor: "archives-that-carry-code-by-design",
        severity: Verdict::Suspicious,
    },
    KindDoc {
        kind: "untrusted_type",
        short: "A skops schema names an untrusted type",
        full: "A type in a skops schema.json outside sklearn, NumPy, SciPy and safe builtins; dangerous when the pickle policy denies it.",
        anchor: "archives-that-carry-code-by-design",
        severity: Verdict::Suspicious,
    },
];

/// The SARIF level of a severity.
fn level(severity: Verdict) -> &'static str {
    match severity {
        Verdict::Dangerous => "error",
        Verdict::Suspicious => "warning",
        Verdict::Safe | Verdict::Unknown => "note",
    }
}

/// GitHub code scanning's `security-severity` (0.0 to 10.0: 9 and above critical, 4 to 6.9
/// medium, below 4 low) of a kind's usual severity.
fn security_severity(severity: Verdict) -> &'static str {
    match severity {
        Verdict::Dangerous => "9.0",
        Verdict::Suspicious => "5.0",
        Verdict::Safe | Verdict::Unknown => "1.0",
    }
}

/// The top-level SARIF object.
#[derive(Debug, Serialize)]
pub struct SarifLog {
    /// The schema the log follows.
    #[serde(rename = "$schema")]
    schema: &'static str,
    /// Always `2.1.0`.
    version: &'static str,
    /// One run.
    runs: Vec<Run>,
}

/// One run of the tool.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Run {
    /// The agent and its rules.
    tool: Tool,
    /// How the run went: exit status, unreadable paths.
    invocations: Vec<Invocation>,
    /// `%SRCROOT%` when a base was given.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    original_uri_base_ids: BTreeMap<&'static str, ArtifactLocation>,
    /// Every checked file.
    artifacts: Vec<Artifact>,
    /// One per finding.
    results: Vec<SarifResult>,
}

/// The tool.
#[derive(Debug, Serialize)]
struct Tool {
    /// The agent.
    driver: Driver,
}

/// The agent as a tool component.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver {
    /// `aiscout-agent`.
    name: &'static str,
    /// The version the agent states.
    version: &'static str,
    /// The project's home.
    information_uri: &'static str,
    /// One per finding kind reported.
    rules: Vec<Rule>,
}

/// A finding kind as a SARIF `reportingDescriptor`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Rule {
    /// The finding kind.
    id: String,
    /// One line.
    short_description: Text,
    /// A few lines.
    full_description: Text,
    /// The docs/safety.md section.
    help_uri: String,
    /// The usual level.
    default_configuration: Configuration,
    /// Tags and `security-severity`.
    properties: RuleProperties,
}

/// A message or description.
#[derive(Debug, Serialize)]
struct Text {
    /// Plain text.
    text: String,
}

/// A rule's default configuration.
#[derive(Debug, Serialize)]
struct Configuration {
    /// `error`, `warning` or `note`.
    level: &'static str,
}

/// A rule's property bag.
#[derive(Debug, Serialize)]
struct RuleProperties {
    /// `security`, the ATLAS technique(s) and the OWASP LLM entries of the kind's findings.
    tags: Vec<String>,
    /// What GitHub code scanning ranks security alerts by.
    #[serde(rename = "security-severity")]
    security_severity: &'static str,
}

/// One finding.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    /// The finding kind.
    rule_id: String,
    /// Its index in `rules`.
    rule_index: usize,
    /// From the finding's severity.
    level: &'static str,
    /// Subject, place and detail.
    message: Text,
    /// The file, and the member or stream inside it.
    locations: Vec<Location>,
    /// [`FINGERPRINT`].
    partial_fingerprints: BTreeMap<&'static str, String>,
}

/// A location.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    /// The file.
    physical_location: PhysicalLocation,
    /// The container member or stream, when the finding is not about the file itself.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    logical_locations: Vec<LogicalLocation>,
}

/// A file on disk.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation {
    /// Where it is.
    artifact_location: ArtifactLocation,
    /// Line 1: model files have no lines, and GitHub code scanning anchors an alert on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<Region>,
}

/// A region of a file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    /// Always 1 (the file as a whole).
    start_line: u32,
}

/// A URI, relative to a base id or absolute.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation {
    /// Percent-encoded.
    uri: String,
    /// [`SRCROOT`] for a path relative to the base.
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'static str>,
    /// The file's index in `artifacts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    index: Option<usize>,
}

/// A place inside a file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct LogicalLocation {
    /// The member path (containers joined by `!`) or stream, as [`Finding::location`] says it.
    fully_qualified_name: String,
    /// `member`.
    kind: &'static str,
}

/// A checked file.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    /// Where it is.
    location: ArtifactLocation,
    /// `sha-256` when the check knows it.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    hashes: BTreeMap<&'static str, String>,
    /// Its format and verdict.
    properties: ArtifactProperties,
}

/// An artifact's property bag.
#[derive(Debug, Serialize)]
struct ArtifactProperties {
    /// As in `check --json`.
    format: String,
    /// As in `check --json`.
    verdict: Verdict,
}

/// How the run went.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Invocation {
    /// False when a path could not be read.
    execution_successful: bool,
    /// `check`'s exit status.
    exit_code: u8,
    /// What the exit status means.
    exit_code_description: &'static str,
    /// One per unreadable path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_execution_notifications: Vec<Notification>,
}

/// A path that could not be read.
#[derive(Debug, Serialize)]
struct Notification {
    /// `error`.
    level: &'static str,
    /// The error.
    message: Text,
    /// The path, when the walker could tell.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    locations: Vec<Location>,
}

/// Percent-encodes `bytes` for a URI path: RFC 3986's unreserved characters and `/` stay, every
/// other byte (`%`, `:`, spaces, non-ASCII, bytes that are not UTF-8) becomes `%XX`.
pub fn percent_encode_path(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The `file://` URI of an absolute path (a relative one is taken from the current directory).
pub fn file_uri(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    format!("file://{}", percent_encode_path(abs.as_os_str().as_bytes()))
}

impl SarifOptions {
    /// Where `path` is: relative to [`SRCROOT`] when it is below the base, else a `file://` URI.
    fn locate(&self, path: &str) -> ArtifactLocation {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(path);
        if let Some(rel) = self.base.as_deref().and_then(|b| path.strip_prefix(b).ok()) {
            if !rel.as_os_str().is_empty() {
                return ArtifactLocation {
                    uri: percent_encode_path(rel.as_os_str().as_bytes()),
                    uri_base_id: Some(SRCROOT),
                    index: None,
                };
            }
        }
        ArtifactLocation { uri: file_uri(path), uri_base_id: None, index: None }
    }
}

/// The rules' order and content, built from the findings the run reports.
struct RuleSet {
    /// Kinds in order of first appearance.
    rules: Vec<Rule>,
}

impl RuleSet {
    /// The index of `finding`'s rule, adding the rule (or its tags) as needed.
    fn index_of(&mut self, finding: &Finding) -> usize {
        let pos = self.rules.iter().position(|r| r.id == finding.kind);
        let index = pos.unwrap_or_else(|| {
            self.rules.push(rule_for(&finding.kind, finding.severity));
            self.rules.len() - 1
        });
        if let Some(rule) = self.rules.get_mut(index) {
            for tag in [&finding.atlas, &finding.owasp] {
                if !tag.is_empty() && !rule.properties.tags.contains(tag) {
                    rule.properties.tags.push(tag.clone());
                }
            }
        }
        index
    }
}

/// The rule of `kind`; a kind this module does not describe (a newer one) gets its name and the
/// severity of its first finding.
fn rule_for(kind: &str, first_severity: Verdict) -> Rule {
    let doc = KINDS.iter().find(|k| k.kind == kind);
    let severity = doc.map_or(first_severity, |d| d.severity);
    Rule {
        id: kind.to_string(),
        short_description: Text { text: doc.map_or_else(|| kind.replace('_', " "), |d| d.short.to_string()) },
        full_description: Text {
            text: doc.map_or_else(|| format!("finding kind {kind}: see docs/safety.md"), |d| d.full.to_string()),
        },
        help_uri: format!("{DOCS}#{}", doc.map_or("finding-kinds", |d| d.anchor)),
        default_configuration: Configuration { level: level(severity) },
        properties: RuleProperties {
            tags: vec!["security".to_string()],
            security_severity: security_severity(severity),
        },
    }
}

/// The fingerprint of a finding reported at `uri`.
fn fingerprint(finding: &Finding, uri: &str) -> String {
    let mut h = Sha256::new();
    for part in [finding.kind.as_str(), finding.subject.as_str(), finding.location.as_deref().unwrap_or(""), uri] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

/// The message of a finding: subject, place, detail.
fn message(finding: &Finding) -> String {
    let subject = escape_message(&finding.subject);
    let mut text = if subject.is_empty() { finding.kind.clone() } else { format!("{}: {subject}", finding.kind) };
    if let Some(loc) = &finding.location {
        text.push_str(&format!(" (in {})", escape_message(loc)));
    }
    if !finding.detail.is_empty() {
        text.push_str(&format!(": {}", escape_message(&finding.detail)));
    }
    text
}

/// Text from a scanned file made literal in a SARIF message: `\`, `[` and `]` escaped with a
/// backslash (SARIF 2.1.0 §3.11.6), so a hostile import name such as `[Fix](https://…)` is never
/// rendered as a link by a code-scanning UI.
fn escape_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '[' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The SARIF log of a check.
pub fn sarif_log(report: &CheckReport, opts: &SarifOptions) -> SarifLog {
    let mut rules = RuleSet { rules: Vec::new() };
    let mut artifacts = Vec::with_capacity(report.files.len());
    let mut results = Vec::new();
    for (index, file) in report.files.iter().enumerate() {
        let located = opts.locate(&file.path);
        let hashes: BTreeMap<&'static str, String> = file.sha256.iter().map(|h| ("sha-256", h.clone())).collect();
        for finding in &file.findings {
            let rule_index = rules.index_of(finding);
            let fp = fingerprint(finding, &located.uri);
            let logical_locations = finding
                .location
                .iter()
                .map(|l| LogicalLocation { fully_qualified_name: l.clone(), kind: "member" })
                .collect();
            results.push(SarifResult {
                rule_id: finding.kind.clone(),
                rule_index,
                level: level(finding.severity),
                message: Text { text: message(finding) },
                locations: vec![Location {
                    physical_location: PhysicalLocation {
                        artifact_location: ArtifactLocation { index: Some(index), ..located.clone() },
                        region: Some(Region { start_line: 1 }),
                    },
                    logical_locations,
                }],
                partial_fingerprints: BTreeMap::from([(FINGERPRINT, fp)]),
            });
        }
        artifacts.push(Artifact {
            location: located,
            hashes,
            properties: ArtifactProperties { format: file.format.clone(), verdict: file.verdict },
        });
    }
    let notifications = report
        .errors
        .iter()
        .map(|e| Notification {
            level: "error",
            message: Text {
                text: if e.path.is_empty() { e.error.clone() } else { format!("{}: {}", e.path, e.error) },
            },
            locations: if e.path.is_empty() {
                Vec::new()
            } else {
                vec![Location {
                    physical_location: PhysicalLocation { artifact_location: opts.locate(&e.path), region: None },
                    logical_locations: Vec::new(),
                }]
            },
        })
        .collect::<Vec<_>>();
    let exit_code = report.exit_code();
    let mut original_uri_base_ids = BTreeMap::new();
    if let Some(base) = &opts.base {
        let mut uri = file_uri(base);
        if !uri.ends_with('/') {
            uri.push('/');
        }
        original_uri_base_ids.insert(SRCROOT, ArtifactLocation { uri, uri_base_id: None, index: None });
    }
    SarifLog {
        schema: SARIF_SCHEMA,
        version: "2.1.0",
        runs: vec![Run {
            tool: Tool {
                driver: Driver {
                    name: "aiscout-agent",
                    version: crate::version(),
                    information_uri: env!("CARGO_PKG_REPOSITORY"),
                    rules: rules.rules,
                },
            },
            invocations: vec![Invocation {
                execution_successful: notifications.is_empty(),
                exit_code,
                exit_code_description: match exit_code {
                    0 => "every model is safe",
                    1 => "a model is suspicious or dangerous, or a file could not be judged",
                    _ => "a path could not be read",
                },
                tool_execution_notifications: notifications,
            }],
            original_uri_base_ids,
            artifacts,
            results,
        }],
    }
}

/// Writes the SARIF log of a check, pretty-printed, with a final newline.
pub fn write_sarif(report: &CheckReport, opts: &SarifOptions, out: &mut dyn Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, &sarif_log(report, opts))?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_in_a_hostile_name_stays_text() {
        assert_eq!(escape_message("[Fix](https://evil) a\\b"), "\\[Fix\\](https://evil) a\\\\b");
        assert_eq!(escape_message("os.system"), "os.system");
    }

    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::*;
    use crate::check::{CheckSummary, CheckedFile};
    use crate::report::FileError;

    /// The ids (first column) of one of the collector's framework lists.
    fn framework_ids(name: &str) -> BTreeSet<String> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../collector/data/frameworks").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let ids: BTreeSet<String> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .filter_map(|l| l.split('\t').next())
            .map(str::to_string)
            .collect();
        assert!(ids.len() > 5, "{}: too few ids", path.display());
        ids
    }

    fn file(path: &str, findings: Vec<Finding>) -> CheckedFile {
        let verdict = findings.iter().map(|f| f.severity).max().unwrap_or(Verdict::Safe);
        CheckedFile {
            path: path.to_string(),
            format: "pickle".to_string(),
            verdict,
            findings,
            imports: Vec::new(),
            owner: None,
            sha256: None,
        }
    }

    fn report(files: Vec<CheckedFile>, errors: Vec<FileError>) -> CheckReport {
        let mut summary = CheckSummary::default();
        for f in &files {
            summary.models += 1;
            match f.verdict {
                Verdict::Dangerous => summary.dangerous += 1,
                Verdict::Suspicious => summary.suspicious += 1,
                _ => summary.safe += 1,
            }
        }
        summary.errors = errors.len() as u64;
        CheckReport { files, errors, summary }
    }

    fn log_json(report: &CheckReport, opts: &SarifOptions) -> Value {
        serde_json::to_value(sarif_log(report, opts)).unwrap()
    }

    #[test]
    fn every_atlas_and_owasp_id_emitted_is_in_the_collector_lists() {
        let atlas = framework_ids("mitre-atlas.tsv");
        let owasp = framework_ids("owasp-llm-2025.tsv");
        // Every kind this module describes, and one it does not (the fallback).
        let findings: Vec<Finding> = KINDS
            .iter()
            .map(|k| k.kind)
            .chain(["some_future_kind"])
            .map(|k| Finding::new(k, "subject", "detail", Verdict::Suspicious, None))
            .collect();
        let doc = log_json(&report(vec![file("/m/x.pkl", findings)], Vec::new()), &SarifOptions::default());
        let rules = doc["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), KINDS.len() + 1);
        for rule in rules {
            let tags: Vec<&str> =
                rule["properties"]["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
            assert!(tags.contains(&"security"), "{rule}");
            assert!(tags.iter().any(|t| atlas.contains(*t)), "{}: no ATLAS id in {tags:?}", rule["id"]);
            assert!(tags.iter().any(|t| owasp.contains(*t)), "{}: no OWASP id in {tags:?}", rule["id"]);
            for t in tags.iter().filter(|t| **t != "security") {
                assert!(atlas.contains(*t) || owasp.contains(*t), "{}: {t} is in neither list", rule["id"]);
            }
        }
        let unsafe_serialization = rules.iter().find(|r| r["id"] == "dangerous_import").unwrap();
        assert_eq!(
            unsafe_serialization["properties"]["tags"],
            serde_json::json!(["security", "AML.T0011.000", "LLM03:2025"])
        );
        assert_eq!(unsafe_serialization["properties"]["security-severity"], "9.0");
        let help = unsafe_serialization["helpUri"].as_str().unwrap();
        assert!(help.starts_with("https://") && help.ends_with("/docs/safety.md#finding-kinds"), "{help}");
        assert!(doc["runs"][0]["tool"]["driver"]["informationUri"].as_str().unwrap().starts_with("https://"));
    }

    #[test]
    fn every_kind_the_finding_docs_name_is_described() {
        // The kinds `Finding::kind`'s doc lists (the source of truth beside the code).
        for kind in [
            "dangerous_import",
            "dangerous_call",
            "unknown_import",
            "unresolved_import",
            "nested_pickle",
            "malformed",
            "bound_exceeded",
            "damaged_member",
            "lambda_layer",
            "tf_op",
            "external_data",
            "custom_loader",
            "remote_code",
            "unknown_format",
            "unparseable",
            "hidden_member",
            "header_mismatch",
            "bundled_code",
            "dangerous_code",
            "config_target",
            "untrusted_type",
            "template_injection",
        ] {
            assert!(KINDS.iter().any(|k| k.kind == kind), "{kind} has no SARIF description");
        }
    }

    #[test]
    fn levels_follow_the_severity_and_rules_are_indexed() {
        let files = vec![
            file(
                "/m/bad.pkl",
                vec![
                    Finding::new(
                        "dangerous_import",
                        "posix.system",
                        "runs a command",
                        Verdict::Dangerous,
                        Some("archive/data.pkl"),
                    ),
                    Finding::new("unknown_import", "foo.bar", "unknown", Verdict::Suspicious, None),
                ],
            ),
            file("/m/bundle.mar", vec![Finding::new("bundled_code", "handler.py", "imported", Verdict::Safe, None)]),
            file("/m/ok.safetensors", Vec::new()),
        ];
        let doc = log_json(&report(files, Vec::new()), &SarifOptions::default());
        let run = &doc["runs"][0];
        let results = run["results"].as_array().unwrap();
        assert_eq!(results.len(), 3, "one result per finding, none for a file without findings");
        let levels: Vec<&str> = results.iter().map(|r| r["level"].as_str().unwrap()).collect();
        assert_eq!(levels, ["error", "warning", "note"]);
        for r in results {
            let rule = &run["tool"]["driver"]["rules"][r["ruleIndex"].as_u64().unwrap() as usize];
            assert_eq!(rule["id"], r["ruleId"]);
        }
        let first = &results[0];
        assert_eq!(first["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "file:///m/bad.pkl");
        assert_eq!(first["locations"][0]["physicalLocation"]["artifactLocation"]["index"], 0);
        assert_eq!(first["locations"][0]["logicalLocations"][0]["fullyQualifiedName"], "archive/data.pkl");
        assert!(first["message"]["text"].as_str().unwrap().contains("posix.system (in archive/data.pkl)"));
        assert_eq!(run["artifacts"].as_array().unwrap().len(), 3);
        assert_eq!(run["invocations"][0]["exitCode"], 1);
        assert_eq!(run["invocations"][0]["executionSuccessful"], true);
    }

    #[test]
    fn fingerprints_are_stable_and_relative_to_the_base() {
        let finding = || Finding::new("dangerous_import", "posix.system", "runs a command", Verdict::Dangerous, None);
        let at = |root: &str| {
            let opts = SarifOptions { base: Some(PathBuf::from(root)) };
            log_json(&report(vec![file(&format!("{root}/models/x.pkl"), vec![finding()])], Vec::new()), &opts)
        };
        let (a, b) = (at("/ci/one/checkout"), at("/ci/two"));
        let loc = &a["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"];
        assert_eq!(loc["uri"], "models/x.pkl");
        assert_eq!(loc["uriBaseId"], SRCROOT);
        assert_eq!(a["runs"][0]["originalUriBaseIds"][SRCROOT]["uri"], "file:///ci/one/checkout/");
        let fp = |d: &Value| d["runs"][0]["results"][0]["partialFingerprints"][FINGERPRINT].clone();
        assert_eq!(fp(&a), fp(&b), "the same finding in two checkouts");
        assert_eq!(fp(&a).as_str().unwrap().len(), 64);
        // Outside the base: absolute.
        let opts = SarifOptions { base: Some(PathBuf::from("/elsewhere")) };
        let c = log_json(&report(vec![file("/ci/two/models/x.pkl", vec![finding()])], Vec::new()), &opts);
        assert_eq!(
            c["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "file:///ci/two/models/x.pkl"
        );
        assert_ne!(fp(&a), fp(&c));
    }

    #[test]
    fn paths_are_percent_encoded_whatever_their_bytes() {
        assert_eq!(percent_encode_path(b"/a b/%x:y\xff\xc3\xa9~_-.z"), "/a%20b/%25x%3Ay%FF%C3%A9~_-.z");
        assert_eq!(file_uri(Path::new("/m/\u{fffd}.pkl")), "file:///m/%EF%BF%BD.pkl");
        let doc = log_json(
            &report(
                vec![file(
                    "/m/\"quoted\"\n\u{fffd}.pkl",
                    vec![Finding::new("malformed", "\u{0}", "x", Verdict::Suspicious, None)],
                )],
                Vec::new(),
            ),
            &SarifOptions::default(),
        );
        let text = serde_json::to_string(&doc).unwrap();
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["runs"][0]["artifacts"][0]["location"]["uri"], "file:///m/%22quoted%22%0A%EF%BF%BD.pkl");
    }

    #[test]
    fn unreadable_paths_are_notifications_and_hashes_are_reported() {
        let mut f = file("/m/x.safetensors", Vec::new());
        f.sha256 = Some("ab".repeat(32));
        let errors = vec![FileError { path: "/m/locked".into(), error: "permission denied".into() }];
        let doc = log_json(&report(vec![f], errors), &SarifOptions::default());
        let run = &doc["runs"][0];
        assert_eq!(run["artifacts"][0]["hashes"]["sha-256"], "ab".repeat(32));
        let inv = &run["invocations"][0];
        assert_eq!(inv["executionSuccessful"], false);
        assert_eq!(inv["exitCode"], 2);
        assert_eq!(inv["toolExecutionNotifications"][0]["level"], "error");
        assert_eq!(
            inv["toolExecutionNotifications"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "file:///m/locked"
        );
        assert!(run["results"].as_array().unwrap().is_empty());
    }
}
