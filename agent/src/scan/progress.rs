//! The live counters of one scan: read while it runs (the progress bar), turned into the
//! document's [`ScanStats`] when it ends.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::ScanStats;

/// Live counters, readable while the scan runs.
#[derive(Debug, Default)]
pub struct Progress {
    /// Regular files seen.
    pub files_seen: AtomicU64,
    /// Directories entered.
    pub dirs_seen: AtomicU64,
    /// Candidate files examined.
    pub candidates: AtomicU64,
    /// Models found so far.
    pub models: AtomicU64,
    /// Bytes hashed so far.
    pub bytes_hashed: AtomicU64,
    /// Model digests answered by the cache.
    pub hash_cache_hits: AtomicU64,
    /// Non-model files answered by the cache.
    pub verdict_cache_hits: AtomicU64,
    /// Digests taken from content-addressed names.
    pub digests_from_name: AtomicU64,
}

impl Progress {
    /// The walk's counters as the document states them (the other fields of [`ScanStats`] are
    /// the caller's).
    pub fn stats(&self) -> ScanStats {
        let read = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ScanStats {
            files_seen: read(&self.files_seen),
            dirs_seen: read(&self.dirs_seen),
            candidates: read(&self.candidates),
            bytes_hashed: read(&self.bytes_hashed),
            hash_cache_hits: read(&self.hash_cache_hits),
            verdict_cache_hits: read(&self.verdict_cache_hits),
            digests_from_name: read(&self.digests_from_name),
            ..ScanStats::default()
        }
    }
}
