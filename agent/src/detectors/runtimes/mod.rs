//! Runtimes: running inference servers and ML processes.

use std::collections::HashMap;
use std::path::Path;

use crate::inventory::RuntimeEntry;
use crate::report::ModelEntry;

/// What to collect.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Ask servers on loopback for their identity.
    pub identify: bool,
}

/// What the runtime detector found.
#[derive(Debug, Default)]
pub struct RuntimesOutcome {
    /// Entries, sorted by pid.
    pub runtimes: Vec<RuntimeEntry>,
    /// Processes examined.
    pub processes: u64,
    /// Processes with parts the agent could not read.
    pub restricted: u64,
}

/// Models known to this scan, by path.
#[derive(Debug, Default)]
pub struct ModelLookup<'a> {
    by_path: HashMap<&'a str, &'a ModelEntry>,
}

impl<'a> ModelLookup<'a> {
    /// Indexes `models`.
    pub fn new(models: &'a [ModelEntry], _state_dir: Option<&Path>) -> Self {
        Self { by_path: models.iter().map(|m| (m.path.as_str(), m)).collect() }
    }
}

/// Collects runtimes; keeps its process table between collections.
#[derive(Debug, Default)]
pub struct RuntimeCollector {}

impl RuntimeCollector {
    /// A collector.
    pub fn new() -> Self {
        Self {}
    }

    /// One collection.
    pub fn collect(
        &mut self,
        _opts: &RuntimeOptions,
        _models: &ModelLookup<'_>,
        _gpu: &HashMap<u32, u64>,
    ) -> RuntimesOutcome {
        RuntimesOutcome::default()
    }
}
