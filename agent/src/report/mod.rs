//! The public scan document (`aiscout-agent scan --json`), documented in `docs/scan-json.md`,
//! and its vocabulary: the [`Section`]s a scan can produce.
//!
//! Field names and meanings here are a public interface: add fields, never rename or repurpose.
//!
//! # Layout
//! - this file: the document ([`ScanReport`]), its counters ([`ScanStats`]), per-path errors
//!   ([`FileError`]) and [`Section`];
//! - [`models`]: the `models` entries ([`ModelEntry`] and its source and group);
//! - [`inventory`]: the host-inventory entries (frameworks, environments, GPUs, runtimes,
//!   tooling);
//! - [`host`]: the `host` object.
//!
//! Everything that produces or consumes the document imports it from here; this module imports
//! only the types its entries embed (formats' metadata, safety verdicts), never the code that
//! fills it.

pub mod host;
pub mod inventory;
pub mod models;

use std::collections::BTreeMap;

use aiscout_proto::v1::AssetKind;
use serde::{Deserialize, Serialize};

use host::HostInfo;
use inventory::{
    EnvironmentEntry, FrameworkEntry, GpuDevice, GpuDrivers, RestrictedProcess, RuntimeEntry, ToolingEntry,
};
pub use models::{DigestSource, ModelEntry, ModelGroup, ModelOwner, ModelSource, OwnerEcosystem, UnjudgedFile};

/// A section of the document: what `--only` and `scan.sections` select, in document order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Model files and directories.
    Models,
    /// ML frameworks in Python environments and Node projects.
    Frameworks,
    /// GPUs, drivers and CUDA toolkits.
    Gpus,
    /// Running inference servers and ML processes.
    Runtimes,
    /// AI tooling configuration (MCP servers, API keys by name).
    Tooling,
}

impl Section {
    /// Every section, in document order.
    pub const ALL: [Section; 5] = [Self::Models, Self::Frameworks, Self::Gpus, Self::Runtimes, Self::Tooling];

    /// Its name in the document, on the command line and in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Models => "models",
            Self::Frameworks => "frameworks",
            Self::Gpus => "gpus",
            Self::Runtimes => "runtimes",
            Self::Tooling => "tooling",
        }
    }

    /// The kind of inventory asset its entries travel as; `None` for `gpus`, whose entries
    /// travel in the host facts.
    pub fn asset_kind(self) -> Option<AssetKind> {
        match self {
            Self::Models => Some(AssetKind::Model),
            Self::Frameworks => Some(AssetKind::Framework),
            Self::Runtimes => Some(AssetKind::Runtime),
            Self::Tooling => Some(AssetKind::Tooling),
            Self::Gpus => None,
        }
    }
}

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
    /// Files named like a model that could not be judged, collected for `check` only
    /// ([`crate::scan::ScanOptions::report_unjudged`]); never serialized.
    #[serde(skip)]
    pub unjudged: Vec<UnjudgedFile>,
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
            unjudged: Vec::new(),
        }
    }
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
    /// Models that an installed package shipped (they carry an `owner`).
    #[serde(default)]
    pub owned_models: u64,
    /// Package record files read to attribute models (`RECORD`, conda-meta JSON, dpkg `.list`,
    /// `package.json`); unchanged ones are answered by the cache instead.
    #[serde(default)]
    pub records_read: u64,
    /// Package record files answered by the cache.
    #[serde(default)]
    pub record_cache_hits: u64,
    /// Processes examined by the runtimes section.
    #[serde(default)]
    pub processes: u64,
    /// Processes some of whose `/proc` entries the agent was not allowed to read.
    #[serde(default)]
    pub processes_restricted: u64,
    /// Wall time of each part (`walk`, `owners`, `frameworks`, `gpus`, `runtimes`, `tooling`).
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
