//! The verdict and hash cache, kept in sled under the state directory.
//!
//! Key: a file's [`FileStamp`] (device, inode, size, mtime ns; 40 bytes). Value: JSON of
//! [`CacheEntry`]: what a model file was identified as and its SHA-256 (also the digests of
//! directory models' member files). A rescan of an unchanged model therefore opens nothing and
//! hashes nothing; files that are not models are remembered per directory by
//! [`crate::listing`]. A
//! change of size or mtime changes the key, so stale entries are never read; they are pruned
//! by [`VerdictCache::retain`] after a full scan.
//!
//! The tree name carries [`SCHEMA`]: when parsers change what they report, the version is bumped
//! and old entries are ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fileio::FileStamp;
use crate::formats::Detection;
use crate::safety::SafetyReport;
use crate::state_dir;

/// Name of the sled tree; bump the suffix when cached detections change meaning.
pub const SCHEMA: &str = "verdicts-v3";
/// sled page cache size: small, the agent must stay cheap.
const CACHE_CAPACITY: u64 = 8 * 1024 * 1024;

/// What is remembered about one file content.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The identification, when the content is a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<Detection>,
    /// Hex SHA-256, when the content was hashed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The safety assessment of a model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety: Option<SafetyReport>,
}

/// Errors opening the cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// sled could not open the database.
    #[error("cannot open cache at {path}: {source}")]
    Open { path: String, source: sled::Error },
}

/// Handle to the cache; cheap to clone and share between threads.
#[derive(Clone, Debug)]
pub struct VerdictCache {
    /// The sled database (kept for flushing).
    db: sled::Db,
    /// The tree holding entries of the current schema.
    tree: sled::Tree,
    /// Where the database lives (for messages).
    path: std::path::PathBuf,
}

impl VerdictCache {
    /// Opens (creating) the cache in its private directory `path` ([`state_dir::StateDir::cache`]).
    pub fn open(path: &Path) -> Result<Self, CacheError> {
        let path = path.to_path_buf();
        let err = |source| CacheError::Open { path: path.display().to_string(), source };
        let db = state_dir::open_sled(&path, CACHE_CAPACITY).map_err(err)?;
        let tree = db.open_tree(SCHEMA).map_err(err)?;
        Ok(Self { db, tree, path })
    }

    /// The entry for `stamp`, if any. A corrupt entry reads as absent.
    pub fn get(&self, stamp: &FileStamp) -> Option<CacheEntry> {
        let raw = self.tree.get(stamp.key()).ok()??;
        serde_json::from_slice(&raw).ok()
    }

    /// Stores `entry` for `stamp`. Failures are logged, never fatal: the cache is an optimisation.
    pub fn put(&self, stamp: &FileStamp, entry: &CacheEntry) {
        let Ok(raw) = serde_json::to_vec(entry) else {
            return;
        };
        if let Err(e) = self.tree.insert(stamp.key(), raw) {
            tracing::warn!(error = %e, "cannot write scan cache entry");
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.tree.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    /// Drops every entry whose key is not in `keep` (used after a full scan).
    pub fn retain(&self, keep: &std::collections::HashSet<[u8; 40]>) {
        for key in self.tree.iter().keys().flatten() {
            let Ok(k) = <[u8; 40]>::try_from(key.as_ref()) else {
                let _ = self.tree.remove(key);
                continue;
            };
            if !keep.contains(&k) {
                let _ = self.tree.remove(key);
            }
        }
    }

    /// Where the database lives.
    pub fn path(&self) -> String {
        self.path.display().to_string()
    }

    /// The database, for the other trees kept beside the stamp cache.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Flushes to disk.
    pub fn flush(&self) {
        if let Err(e) = self.db.flush() {
            tracing::warn!(error = %e, "cannot flush scan cache");
        }
    }
}
