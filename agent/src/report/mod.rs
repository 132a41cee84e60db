//! The public scan document (`aiscout-agent scan --json`), documented in `docs/scan-json.md`.
//!
//! Field names and meanings here are a public interface: add fields, never rename or repurpose.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::formats::{ModelFormat, ModelMetadata};
use crate::host::HostInfo;
use crate::inventory::{
    EnvironmentEntry, FrameworkEntry, GpuDevice, GpuDrivers, RestrictedProcess, RuntimeEntry, ToolingEntry,
};
use crate::safety::SafetyReport;
use crate::scan::Section;

/// The whole document. A section that was not collected is absent (`models`: empty); a
/// collected section that found nothing is an empty list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScanReport {
    /// The host scanned.
    pub host: HostInfo,
    /// The sections collected (`--only`).
    #[serde(default)]
    pub sections: Vec<Section>,
    /// Every model found, sorted by path.
    pub models: Vec<ModelEntry>,
    /// AI packages and native runtimes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frameworks: Option<Vec<FrameworkEntry>>,
    /// Environments examined for frameworks, with package counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environments: Option<Vec<EnvironmentEntry>>,
    /// NVIDIA GPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Vec<GpuDevice>>,
    /// GPU drivers, CUDA toolkits, and why `gpus` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_drivers: Option<GpuDrivers>,
    /// Running inference servers and ML processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtimes: Option<Vec<RuntimeEntry>>,
    /// Processes that may host ML work but could not be examined (the agent lacks the right
    /// to read their memory maps); present with `runtimes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted_processes: Option<Vec<RestrictedProcess>>,
    /// MCP configurations and API keys (by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tooling: Option<Vec<ToolingEntry>>,
    /// Counters of the scan.
    pub stats: ScanStats,
    /// Files and directories that could not be read or parsed; never fatal.
    pub errors: Vec<FileError>,
}

impl ScanReport {
    /// An empty report for `host`.
    pub fn new(host: HostInfo) -> Self {
        Self {
            host,
            sections: Vec::new(),
            models: Vec::new(),
            frameworks: None,
            environments: None,
            gpus: None,
            gpu_drivers: None,
            runtimes: None,
            restricted_processes: None,
            tooling: None,
            stats: ScanStats::default(),
            errors: Vec::new(),
        }
    }
}

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

/// Counters of one scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScanStats {
    /// Roots walked.
    pub roots: Vec<String>,
    /// Regular files seen by the walk.
    pub files_seen: u64,
    /// Directories entered.
    pub dirs_seen: u64,
    /// Files whose content was examined (opened, or answered by the cache).
    pub candidates: u64,
    /// Model entries reported.
    pub models: u64,
    /// Bytes read for hashing in this scan.
    pub bytes_hashed: u64,
    /// Model digests answered by the hash cache.
    pub hash_cache_hits: u64,
    /// Non-model files answered by the cache without opening them.
    pub verdict_cache_hits: u64,
    /// Digests taken from content-addressed names.
    pub digests_from_name: u64,
    /// Processes examined by the runtimes section.
    #[serde(default)]
    pub processes: u64,
    /// Processes some of whose `/proc` entries the agent was not allowed to read.
    #[serde(default)]
    pub processes_restricted: u64,
    /// Wall time of each part (`walk`, `frameworks`, `gpus`, `runtimes`, `tooling`).
    #[serde(default)]
    pub section_ms: BTreeMap<String, u64>,
    /// Wall time of the scan.
    pub duration_ms: u64,
    /// Entries in `errors`.
    pub errors: u64,
}

/// A path that could not be scanned, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileError {
    /// The file or directory concerned (empty when the walker could not tell).
    pub path: String,
    /// What went wrong.
    pub error: String,
}
