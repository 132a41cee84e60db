//! AI tooling: MCP client configurations and AI API keys (by variable name only).

use std::path::PathBuf;

use crate::detectors::markers::Markers;
use crate::inventory::ToolingEntry;
use crate::report::FileError;

/// Where to look.
#[derive(Debug, Clone, Default)]
pub struct ToolingOptions {
    /// Directories treated as home directories (client configurations, shell profiles).
    pub homes: Vec<PathBuf>,
    /// Also read the environments of running processes (for API key names).
    pub processes: bool,
}

/// What the tooling detector found.
#[derive(Debug, Default)]
pub struct ToolingOutcome {
    /// Entries, sorted by path.
    pub tooling: Vec<ToolingEntry>,
    /// Files that could not be read or parsed.
    pub errors: Vec<FileError>,
}

/// Finds MCP configurations and API key names.
pub fn collect(_opts: &ToolingOptions, _markers: &Markers) -> ToolingOutcome {
    ToolingOutcome::default()
}
