//! Exports of the inventory (`aiscout-collector export`, `GET /api/v1/export`): CSV and JSON
//! lines for spreadsheets and scripts, CycloneDX 1.6 for SBOM tools, SPDX 3.0.1 for auditors
//! (docs/exports.md has every column and mapping).
//!
//! # How an export reads the store
//! 1. Hosts, assets and sightings are read in keyset chunks of [`CHUNK`] through the [`Store`]
//!    trait, each chunk its own short transaction, and written as soon as they are read: memory
//!    stays flat whatever the fleet's size, and ingest is never held behind an export.
//! 2. Chunks come in a fixed order (hosts by agent id, assets by asset id, sightings by asset,
//!    host and sighting id) and every JSON object is written with sorted keys, so the same
//!    inventory gives the same bytes; only a BOM's timestamp and serial number differ.
//! 3. An inventory that changes during an export is read as it is when each chunk is read: a
//!    row present from start to end is written exactly once, a row added or removed meanwhile may
//!    or may not be.
//! 4. Findings are read first into an index by asset (open, reopened and acknowledged ones):
//!    its size follows the number of findings, not of sightings.
//!
//! # Layout
//! - this file: the request, the chunked readers, the findings index.
//! - [`table`]: CSV (spreadsheet-safe) and JSON lines, one row per asset or per sighting.
//! - [`cyclonedx`]: the fleet's or one host's CycloneDX BOM ([`aiscout_proto::bom`]).
//! - [`spdx`]: the SPDX 3.0.1 JSON-LD document with the AI and Software profiles.

pub mod cyclonedx;
pub mod spdx;
pub mod table;

use std::collections::HashMap;
use std::io::{self, Write};

use serde_json::Value;

use crate::store::{
    each_page, AssetFilter, AssetKind, AssetSummary, ExportFilter, ExportSighting, FindingFilter, HostFilter,
    HostSummary, Store, StoreError,
};

/// Hosts and sightings read per store call.
pub const CHUNK: u32 = 1000;

/// Assets read per store call: each comes with its latest entry, which an agent can make as
/// large as an entry may be, so fewer at a time.
pub const ASSET_CHUNK: u32 = 100;

/// What an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values, one row per asset or per sighting.
    Csv,
    /// One JSON object per line, one per asset or per sighting.
    Jsonl,
    /// CycloneDX 1.6 JSON.
    Cyclonedx,
    /// SPDX 3.0.1 JSON-LD.
    Spdx,
}

impl Format {
    /// Every format's name, as the command line and the API spell it.
    pub const NAMES: [&'static str; 4] = ["csv", "jsonl", "cyclonedx", "spdx"];

    /// The format named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "csv" => Some(Self::Csv),
            "jsonl" => Some(Self::Jsonl),
            "cyclonedx" => Some(Self::Cyclonedx),
            "spdx" => Some(Self::Spdx),
            _ => None,
        }
    }

    /// The media type an HTTP response declares.
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Jsonl => "application/x-ndjson",
            Self::Cyclonedx => "application/vnd.cyclonedx+json; version=1.6",
            Self::Spdx => "application/ld+json",
        }
    }

    /// The file name an HTTP download suggests.
    pub fn file_name(self, rows: Rows) -> String {
        match self {
            Self::Csv => format!("aiscout-{}.csv", rows.as_str()),
            Self::Jsonl => format!("aiscout-{}.jsonl", rows.as_str()),
            Self::Cyclonedx => "aiscout.cdx.json".to_owned(),
            Self::Spdx => "aiscout.spdx.jsonld".to_owned(),
        }
    }
}

/// What one CSV or JSON-lines row is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Rows {
    /// One row per asset (fleet-wide, deduplicated).
    #[default]
    Assets,
    /// One row per sighting (an asset on a host, at a path).
    Sightings,
}

impl Rows {
    /// The name the command line and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Assets => "assets",
            Self::Sightings => "sightings",
        }
    }

    /// The rows named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "assets" => Some(Self::Assets),
            "sightings" => Some(Self::Sightings),
            _ => None,
        }
    }
}

/// One export's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    /// The format.
    pub format: Format,
    /// CSV and JSON lines: assets or sightings (ignored by the BOMs).
    pub rows: Rows,
    /// Only this kind of asset.
    pub kind: Option<AssetKind>,
    /// Only this host (agent id): a per-host BOM.
    pub agent_id: Option<String>,
    /// Assets and sightings no host has any more, too.
    pub include_removed: bool,
}

impl ExportRequest {
    /// Whether the request covers assets of `kind`.
    pub(crate) fn wants(&self, kind: AssetKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }
}

/// What varies from one export to the next: the clock, the serial number's randomness, the
/// collector's version.
#[derive(Debug, Clone)]
pub struct ExportContext {
    /// Now (Unix ms): the document's timestamp.
    pub now_ms: i64,
    /// 16 random bytes: a BOM's serial number.
    pub random: [u8; 16],
    /// The collector's version, named as the tool.
    pub tool_version: String,
}

impl ExportContext {
    /// The clock, fresh randomness and this build's version.
    pub fn now() -> Self {
        let mut random = [0u8; 16];
        // Without randomness the serial is all zeros but still a valid URN: an export is not a
        // secret, and it must not fail for that.
        let _ = getrandom::fill(&mut random);
        Self { now_ms: crate::now_ms(), random, tool_version: env!("CARGO_PKG_VERSION").to_owned() }
    }
}

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written (a full disk, a client that went away).
    #[error("cannot write the export: {0}")]
    Write(#[from] io::Error),
    /// `--host` names no agent.
    #[error("host {0:?}: no such agent")]
    UnknownHost(String),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Rows (CSV, JSON lines) or components and services (BOMs) written.
    pub items: u64,
}

/// Writes the export `request` asks for to `out`.
pub fn run(
    store: &dyn Store,
    request: &ExportRequest,
    context: &ExportContext,
    out: &mut dyn Write,
) -> Result<ExportSummary, ExportError> {
    if let Some(agent_id) = &request.agent_id {
        if store.agent(agent_id)?.is_none() {
            return Err(ExportError::UnknownHost(agent_id.clone()));
        }
    }
    let summary = match request.format {
        Format::Csv | Format::Jsonl => table::write(store, request, out)?,
        Format::Cyclonedx => cyclonedx::write(store, request, context, out)?,
        Format::Spdx => spdx::write(store, request, context, out)?,
    };
    out.flush()?;
    Ok(summary)
}

/// Calls `each` on every host the request covers, by agent id (revoked ones only with
/// `include_removed`).
pub(crate) fn for_each_host(
    store: &dyn Store,
    request: &ExportRequest,
    mut each: impl FnMut(&HostSummary) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let filter = HostFilter { agent_id: request.agent_id.clone(), ..HostFilter::default() };
    each_page(
        CHUNK,
        |page| store.hosts(&filter, page),
        |host| if request.include_removed || host.agent.revoked_at_ms.is_none() { each(&host) } else { Ok(()) },
    )
}

/// Calls `each` on every asset of `kind` the request covers, by asset id, package files
/// included (the export is the whole inventory; the `owned` column tells them apart).
pub(crate) fn for_each_asset(
    store: &dyn Store,
    request: &ExportRequest,
    kind: Option<AssetKind>,
    mut each: impl FnMut(&AssetSummary) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let filter = AssetFilter {
        kind,
        include_owned: true,
        include_removed: request.include_removed,
        agent_id: request.agent_id.clone(),
        ..AssetFilter::default()
    };
    each_page(ASSET_CHUNK, |page| store.assets(&filter, page), |asset| each(&asset))
}

/// Calls `each` on every sighting of `kind` the request covers, by asset, host and sighting id.
pub(crate) fn for_each_sighting(
    store: &dyn Store,
    request: &ExportRequest,
    kind: Option<AssetKind>,
    each: impl FnMut(&ExportSighting) -> Result<(), ExportError>,
) -> Result<(), ExportError> {
    let filter = ExportFilter { kind, agent_id: request.agent_id.clone(), include_removed: request.include_removed };
    crate::store::each_sighting(store, &filter, each)
}

/// The findings that still stand (open, reopened, acknowledged) by asset id: `(rule, severity,
/// state)`, sorted.
#[derive(Debug, Default)]
pub(crate) struct FindingsIndex(HashMap<String, Vec<(String, String, String)>>);

impl FindingsIndex {
    /// Reads every finding that still stands (on the request's host, when it names one).
    pub(crate) fn read(store: &dyn Store, request: &ExportRequest) -> Result<Self, StoreError> {
        let mut index: HashMap<String, Vec<(String, String, String)>> = HashMap::new();
        // `active`: open or reopened.
        for state in ["active", "acknowledged"] {
            let filter = FindingFilter {
                state: Some(state.into()),
                agent_id: request.agent_id.clone(),
                ..FindingFilter::default()
            };
            each_page(
                CHUNK,
                |page| store.findings(&filter, page),
                |f| -> Result<(), StoreError> {
                    for asset in f.found.assets {
                        let standing = (f.found.rule_id.clone(), f.found.severity.clone(), f.state.clone());
                        index.entry(asset).or_default().push(standing);
                    }
                    Ok(())
                },
            )?;
        }
        for list in index.values_mut() {
            list.sort();
            list.dedup();
        }
        Ok(Self(index))
    }

    /// The standing findings of `asset_id`.
    pub(crate) fn of(&self, asset_id: &str) -> &[(String, String, String)] {
        self.0.get(asset_id).map(Vec::as_slice).unwrap_or_default()
    }
}

/// An entry's JSON, or `null` when it does not parse (the store only keeps valid JSON).
pub(crate) fn entry(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or(Value::Null)
}

/// An asset's latest live entry, `null` when it has none.
pub(crate) fn latest_entry(asset: &AssetSummary) -> Value {
    asset.latest_entry.as_deref().map_or(Value::Null, entry)
}

/// A host's facts (`host` of its scan), `null` when unknown.
pub(crate) fn host_facts(host: &HostSummary) -> Value {
    host.agent.host_facts_json.as_deref().map_or(Value::Null, entry)
}

/// The hostname an export shows: the reported one when the agent sent it, else the enrolled one.
pub(crate) fn hostname(host: &HostSummary) -> &str {
    host.agent.reported_hostname.as_deref().unwrap_or(&host.agent.hostname)
}

#[cfg(test)]
mod tests;
