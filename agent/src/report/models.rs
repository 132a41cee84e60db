//! The `models` entries of the scan document: one per model file or directory, with where it
//! came from and the multi-file model it belongs to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::formats::{ModelFormat, ModelMetadata};
use crate::safety::{Finding, SafetyReport};

/// One model file (or model directory).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelEntry {
    /// Absolute path: the file, or the directory for directory formats.
    pub path: String,
    /// Format identified from content.
    pub format: ModelFormat,
    /// Size in bytes (all member files for a directory model).
    pub size: u64,
    /// Hex SHA-256 of the content; for a directory model, the tree digest of its files.
    pub sha256: String,
    /// How `sha256` was obtained: `hashed`, `cache`, `name` (content-addressed store), `tree`, or
    /// `skipped` (empty `sha256`; only from `check`).
    pub digest_source: DigestSource,
    /// Modification time (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modified: Option<String>,
    /// What the format's header tells.
    pub metadata: ModelMetadata,
    /// Where the model came from, when its location tells.
    pub source: Option<ModelSource>,
    /// The multi-file model this file belongs to.
    pub group: Option<ModelGroup>,
    /// The installed package that shipped this file, from its package manager's records; `None`
    /// for a user's own model ([`crate::detectors::owners`]).
    #[serde(default)]
    pub owner: Option<ModelOwner>,
    /// Load-time code execution verdict, with findings.
    pub safety: SafetyReport,
}

/// How a digest was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DigestSource {
    /// Read and hashed in this scan.
    Hashed,
    /// Taken from the hash cache (the file's device, inode, size and mtime are unchanged).
    Cache,
    /// Taken from a content-addressed name (Hugging Face blob, Ollama `sha256-` blob).
    Name,
    /// Tree digest over the member files of a directory model.
    Tree,
    /// Not computed (`aiscout-agent check`, which reports verdicts only).
    Skipped,
}

/// Provenance of a model, from its location in a known store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSource {
    /// `huggingface`, `ollama`, `lmstudio`, `mlflow`, `torch_hub`, `keras`, `llama_cpp`,
    /// `gpt4all`, `jan`.
    pub kind: String,
    /// Kind-specific attributes (`repo`, `revision`, `file`, `name`, `publisher`, `model`,
    /// `run_id`, `experiment_id`, `artifact_path`, ...).
    #[serde(flatten)]
    pub attributes: BTreeMap<String, String>,
}

/// Ties the files of a multi-file model together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelGroup {
    /// Tree digest over the members (their logical names and SHA-256); the model's identity.
    pub id: String,
    /// `sharded` (index + shards), `gguf_split`, or `directory`.
    pub kind: String,
    /// The index file, first split, or directory that defines the group.
    pub root: String,
    /// Member paths (absolute) in logical-name order.
    pub members: Vec<String>,
    /// Members the index names that were not found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
}

/// The installed package a model file belongs to, from the package manager's own records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelOwner {
    /// Whose records say so.
    pub ecosystem: OwnerEcosystem,
    /// The package's name as its records spell it (PEP 503-normalised for `pypi`).
    pub name: String,
    /// The installed version, when the records give one.
    pub version: Option<String>,
    /// Where it is installed: the venv or conda environment root, the site directory's prefix,
    /// the Node project directory, or `system` for `deb` and `rpm`.
    pub environment: String,
}

/// The package managers whose records attribute files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerEcosystem {
    /// A wheel or egg installed by pip (or uv, poetry…): `*.dist-info/RECORD`,
    /// `*.egg-info/installed-files.txt`.
    Pypi,
    /// A conda package: `conda-meta/*.json` `files`.
    Conda,
    /// A package under `node_modules/` (its `package.json`).
    Npm,
    /// A Debian package: `/var/lib/dpkg/info/*.list`.
    Deb,
    /// An RPM package: a header in the rpm SQLite database (`rpmdb.sqlite`).
    Rpm,
}

impl OwnerEcosystem {
    /// Its name in the document.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pypi => "pypi",
            Self::Conda => "conda",
            Self::Npm => "npm",
            Self::Deb => "deb",
            Self::Rpm => "rpm",
        }
    }
}

impl std::fmt::Display for ModelOwner {
    /// `pypi joblib 1.6.0 (/srv/venv)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.ecosystem.as_str(), self.name)?;
        if let Some(v) = &self.version {
            write!(f, " {v}")?;
        }
        write!(f, " ({})", self.environment)
    }
}

/// A file named like a model that could not be judged: no prober identified it
/// (`unknown_format`), or the prober of the format it claims found it broken (`unparseable`).
/// Only `check` collects these ([`crate::check`]); `scan` output never holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnjudgedFile {
    /// Where the file is.
    pub path: String,
    /// The format it claims (the prober that failed), or `unknown`.
    pub format: String,
    /// Why it could not be judged (severity `suspicious`: never `safe`).
    pub finding: Finding,
}
