//! `aiscout-agent check`: the safety verdict alone, for CI gates (like picklescan, ModelScan and
//! fickling's command lines).
//!
//! Besides the models, `check` lists every file named like a model that it could not judge
//! ([`UnjudgedFile`]): `unknown_format` (no prober recognises the content) and `unparseable`
//! (named as a pickle but not one, or broken where its format's prober looked). They are
//! `suspicious`, never `safe`: a gate must not pass what it could not read.
//!
//! Exit status, the first that applies:
//! 1. `1` when any model is suspicious or dangerous, or any file could not be judged;
//! 2. `2` when a path could not be read at all (permissions, I/O): its `errors` entry;
//! 3. `0` otherwise: every model is safe.
//!
//! The report is printed as lines ([`CheckReport::write_text`]), as JSON (`--json`, its serde
//! form) or as a SARIF log ([`sarif`]).

pub mod sarif;

use std::io::{self, Write};

use serde::Serialize;

use crate::report::{DigestSource, FileError, ModelOwner, ScanReport, UnjudgedFile};
use crate::safety::{Finding, Verdict};

/// One model and its verdict.
#[derive(Debug, Clone, Serialize)]
pub struct CheckedFile {
    /// The model's path (a directory for directory models).
    pub path: String,
    /// Its format (as spelled in `scan --json`), or `unknown` for a file no prober identifies.
    pub format: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why.
    pub findings: Vec<Finding>,
    /// What its pickles import, and the callables outside Keras its Keras config names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub imports: Vec<String>,
    /// The installed package that shipped it, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<ModelOwner>,
    /// Hex SHA-256 of the file, when the check knows it without hashing (a content-addressed
    /// name, such as a Hugging Face blob); SARIF reports it in the artifact's `hashes`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// Counts of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckSummary {
    /// Models checked.
    pub models: u64,
    /// Safe ones.
    pub safe: u64,
    /// Suspicious ones.
    pub suspicious: u64,
    /// Dangerous ones.
    pub dangerous: u64,
    /// Files named like a model that could not be judged (not counted in `models`).
    pub unjudged: u64,
    /// Paths that could not be read.
    pub errors: u64,
    /// Bytes hashed (0: check reads headers and pickles, never whole weight files).
    pub bytes_hashed: u64,
    /// Wall time.
    pub duration_ms: u64,
}

/// The `check --json` document.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Every model found under the paths, worst first.
    pub files: Vec<CheckedFile>,
    /// Paths that could not be read or parsed.
    pub errors: Vec<FileError>,
    /// Counts.
    pub summary: CheckSummary,
}

/// Whether a finding kind says the file could not be judged at all.
fn is_unjudged(kind: &str) -> bool {
    kind == "unknown_format" || kind == "unparseable"
}

impl CheckReport {
    /// The check view of a scan.
    pub fn from_scan(scan: ScanReport) -> Self {
        let mut summary = CheckSummary {
            duration_ms: scan.stats.duration_ms,
            bytes_hashed: scan.stats.bytes_hashed,
            ..CheckSummary::default()
        };
        let mut files: Vec<CheckedFile> = scan
            .models
            .into_iter()
            .map(|m| CheckedFile {
                path: m.path,
                format: m.format.as_str().to_string(),
                verdict: m.safety.verdict,
                findings: m.safety.findings,
                imports: m.safety.imports,
                owner: m.owner,
                // A file's own digest only: a tree digest is not the hash of a file.
                sha256: (!m.sha256.is_empty()
                    && matches!(m.digest_source, DigestSource::Hashed | DigestSource::Cache | DigestSource::Name))
                .then_some(m.sha256),
            })
            .collect();
        summary.unjudged = scan.unjudged.len() as u64;
        files.extend(scan.unjudged.into_iter().map(|u: UnjudgedFile| CheckedFile {
            path: u.path,
            format: u.format,
            verdict: u.finding.severity.max(Verdict::Suspicious),
            findings: vec![u.finding],
            imports: Vec::new(),
            owner: None,
            sha256: None,
        }));
        files.sort_by(|a, b| b.verdict.cmp(&a.verdict).then_with(|| a.path.cmp(&b.path)));
        for f in files.iter().filter(|f| !f.findings.iter().any(|x| is_unjudged(&x.kind))) {
            summary.models += 1;
            match f.verdict {
                Verdict::Dangerous => summary.dangerous += 1,
                Verdict::Suspicious => summary.suspicious += 1,
                Verdict::Safe | Verdict::Unknown => summary.safe += 1,
            }
        }
        summary.errors = scan.errors.len() as u64;
        Self { files, errors: scan.errors, summary }
    }

    /// The exit status of the module doc: 1 something flagged or not judged, 2 nothing flagged
    /// but errors, 0 all safe.
    pub fn exit_code(&self) -> u8 {
        if self.summary.dangerous + self.summary.suspicious + self.summary.unjudged > 0 {
            1
        } else if self.summary.errors > 0 {
            2
        } else {
            0
        }
    }

    /// One line per model, worst first, then the errors and a summary.
    pub fn write_text(&self, out: &mut dyn Write) -> io::Result<()> {
        for f in &self.files {
            let reasons: Vec<String> = f
                .findings
                .iter()
                .take(4)
                .map(|x| match &x.location {
                    Some(l) => format!("{} {} ({l})", x.kind, x.subject),
                    None => format!("{} {}", x.kind, x.subject),
                })
                .collect();
            let more = f.findings.len().saturating_sub(4);
            let mut tail = if more > 0 { format!(", +{more} more") } else { String::new() };
            if let Some(owner) = &f.owner {
                tail.push_str(&format!(" [package: {owner}]"));
            }
            writeln!(out, "{:<10}  {:<14}  {}  {}{}", f.verdict.as_str(), f.format, f.path, reasons.join(", "), tail)?;
        }
        for e in &self.errors {
            writeln!(out, "{:<10}  {:<14}  {}  {}", "error", "-", e.path, e.error)?;
        }
        let s = &self.summary;
        writeln!(
            out,
            "\n{} models: {} safe, {} suspicious, {} dangerous; {} not judged; {} errors; {:.2} s",
            s.models,
            s.safe,
            s.suspicious,
            s.dangerous,
            s.unjudged,
            s.errors,
            s.duration_ms as f64 / 1000.0
        )
    }
}
