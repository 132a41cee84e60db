//! Frameworks: AI packages in every Python environment and Node project, and native runtimes.

use std::path::PathBuf;

use crate::detectors::markers::Markers;
use crate::inventory::{EnvironmentEntry, FrameworkEntry};
use crate::report::FileError;

/// Where to look and what to list.
#[derive(Debug, Clone, Default)]
pub struct FrameworkOptions {
    /// Directories treated as home directories (user site, pyenv, pipx, conda, kernelspecs).
    pub homes: Vec<PathBuf>,
    /// Also the system locations (`/usr`, `/usr/local`, `/opt`, `PATH`): true for a scan of the
    /// default roots, false when the user named roots.
    pub system: bool,
    /// List every package of every environment, not just the watchlist.
    pub all_packages: bool,
}

/// What the frameworks detector found.
#[derive(Debug, Default)]
pub struct FrameworksOutcome {
    /// AI packages (or every package with `all_packages`), sorted.
    pub frameworks: Vec<FrameworkEntry>,
    /// Environments examined, with package counts, sorted by path.
    pub environments: Vec<EnvironmentEntry>,
    /// Files that could not be read or parsed.
    pub errors: Vec<FileError>,
}

/// Finds the environments and their AI packages.
pub fn collect(_opts: &FrameworkOptions, _markers: &Markers) -> FrameworksOutcome {
    FrameworksOutcome::default()
}
