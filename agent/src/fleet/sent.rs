//! What was last spooled for the collector, and the delta that brings it up to date. How a
//! snapshot or a delta is cut into batches is [`super::batch`].
//!
//! # Storage
//! One sled tree, [`TREE`], in its own database (`state_dir/fleet`,
//! [`crate::state_dir::StateDir::sent`]). One tree because sled's atomic unit without
//! transactions is a batch on one tree: every update below is one batch.
//!
//! ```text
//! key                                   value
//! kind (1 byte, the proto enum value)   SHA-256 (32 raw bytes) of the entry's change JSON
//!   ++ local key (UTF-8)
//! 0xFF ++ "baseline"                    empty; present once a snapshot was recorded
//! 0xFF ++ "pending"                     empty; present between begin() and record()
//! ```
//! Kinds are 0 to 4, so the meta keys never share a prefix with entries.
//!
//! # Change hash
//! The hash covers the entry JSON as sent, except a model's `digest_source`: it tells how this
//! scan obtained the digest (`hashed` on the first scan, `cache` afterwards), not what the model
//! is, and would otherwise resend every model after the first scan and after every change.
//! Entries whose JSON does not parse are hashed as they are.
//!
//! # Protocol
//! 1. [`SentState::needs_snapshot`] says whether the state can be trusted: it cannot before the
//!    first recorded snapshot, or after a crash between [`SentState::begin`] and
//!    [`SentState::record`]. Then the caller sends a snapshot.
//! 2. Snapshot: [`batches`](super::batch::batches) with
//!    [`Contents::Snapshot`](super::batch::Contents) over [`crate::fleet::payload::assets`].
//!    Delta: [`SentState::delta`] with the scope of the sections the scan collected, then
//!    [`batches`](super::batch::batches) with [`Contents::Delta`](super::batch::Contents). An
//!    empty delta gives no batch.
//! 3. [`SentState::begin`], append every batch to the spool, then [`SentState::record`] (delta)
//!    or [`SentState::replace_all`] (snapshot). The state follows what was *spooled*, not what
//!    was acknowledged: the spool guarantees delivery, and when it drops records it raises its
//!    own `needs_snapshot`.
//!
//! `begin` matters because spool and state live in two databases and cannot change together.
//! Without it, a crash after the spool append and before `record` would leave the state behind
//! the collector; if the entry then changed back to the recorded version, no delta would ever
//! send it again. With it, that crash leaves the pending mark and forces a snapshot.
//!

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use aiscout_proto::v1::{self, AssetKind};
use sha2::{Digest, Sha256};

pub use super::batch::Delta;
use crate::state_dir;

/// Name of the sled tree; bump the suffix when keys or hashes change meaning.
pub const TREE: &str = "fleet-state-v1";
/// Present once a snapshot was recorded.
const BASELINE_KEY: &[u8] = b"\xffbaseline";
/// Present while batches are being spooled and not yet recorded.
const PENDING_KEY: &[u8] = b"\xffpending";
/// Page cache of the database (sled's default is 1 GiB): it holds one short key per asset and
/// is read once per scan.
const CACHE_CAPACITY: u64 = 4 * 1024 * 1024;

/// Errors of the sent state.
#[derive(Debug, thiserror::Error)]
pub enum SentStateError {
    /// The database or its tree could not be opened.
    #[error("sent state {}: cannot open: {source}", path.display())]
    Open {
        /// The database directory.
        path: PathBuf,
        /// sled's error.
        source: sled::Error,
    },
    /// Reading the tree failed.
    #[error("cannot read fleet state: {source}")]
    Read {
        /// sled's error.
        source: sled::Error,
    },
    /// Writing or flushing the tree failed.
    #[error("cannot write fleet state: {source}")]
    Write {
        /// sled's error.
        source: sled::Error,
    },
}

/// The entries last spooled for the collector, by kind and local key.
#[derive(Debug, Clone)]
pub struct SentState {
    /// The [`TREE`] tree.
    tree: sled::Tree,
}

impl SentState {
    /// Opens (creating) the sent state in its private directory `path` ([`StateDir::sent`]).
    ///
    /// [`StateDir::sent`]: crate::state_dir::StateDir::sent
    pub fn open(path: &Path) -> Result<Self, SentStateError> {
        let open = |source| SentStateError::Open { path: path.to_path_buf(), source };
        let db = state_dir::open_sled(path, CACHE_CAPACITY).map_err(open)?;
        let tree = db.open_tree(TREE).map_err(open)?;
        Ok(Self { tree })
    }

    /// Whether the next batch must be a snapshot: no snapshot was ever recorded, or a
    /// [`begin`](Self::begin) was not followed by a record (module docs, *Protocol*).
    pub fn needs_snapshot(&self) -> Result<bool, SentStateError> {
        let baseline = self.tree.contains_key(BASELINE_KEY).map_err(read)?;
        let pending = self.tree.contains_key(PENDING_KEY).map_err(read)?;
        Ok(!baseline || pending)
    }

    /// Marks the state as about to change (durably): call before appending batches to the spool.
    pub fn begin(&self) -> Result<(), SentStateError> {
        self.tree.insert(PENDING_KEY, &[] as &[u8]).map_err(write)?;
        self.tree.flush().map_err(write)?;
        Ok(())
    }

    /// The changes from the state to `assets`: upserts of every asset that is new or changed,
    /// removals of every recorded entry whose kind is in `scope` and that `assets` lacks. Local
    /// keys must be unique per kind ([`crate::fleet::payload::assets`] makes them so).
    pub fn delta(&self, assets: &[v1::Asset], scope: &[AssetKind]) -> Result<Delta, SentStateError> {
        let mut kinds: Vec<u8> = scope.iter().map(|k| kind_byte(i32::from(*k))).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let prefixes: Vec<Vec<u8>> = kinds.into_iter().map(|k| vec![k]).collect();
        self.delta_over(assets, &prefixes, &[])
    }

    /// The changes after a rescan of the directories `dirs` that found `assets`: like
    /// [`delta`](Self::delta), but the only removals are of recorded entries of `kind` whose
    /// local key (a path) is one of `dirs` or lies below one.
    pub fn delta_under(
        &self,
        assets: &[v1::Asset],
        kind: AssetKind,
        dirs: &[PathBuf],
    ) -> Result<Delta, SentStateError> {
        let kind = i32::from(kind);
        let mut prefixes = Vec::with_capacity(dirs.len());
        let mut exact = Vec::with_capacity(dirs.len());
        for dir in dirs {
            let dir = dir.to_string_lossy();
            let dir = dir.trim_end_matches('/');
            prefixes.push(state_key(kind, &format!("{dir}/")));
            exact.push(state_key(kind, dir));
        }
        self.delta_over(assets, &prefixes, &exact)
    }

    /// Upserts of every asset new or changed; removals of recorded keys that start with one of
    /// `prefixes` or equal one of `exact` and that `assets` lacks.
    fn delta_over(
        &self,
        assets: &[v1::Asset],
        prefixes: &[Vec<u8>],
        exact: &[Vec<u8>],
    ) -> Result<Delta, SentStateError> {
        let mut upserts = Vec::new();
        let mut present: HashSet<Vec<u8>> = HashSet::with_capacity(assets.len());
        for asset in assets {
            let key = state_key(asset.kind, &asset.local_key);
            let recorded = self.tree.get(&key).map_err(read)?;
            if recorded.as_deref() != Some(change_hash(asset).as_slice()) {
                upserts.push(asset.clone());
            }
            present.insert(key);
        }
        let mut gone: BTreeSet<Vec<u8>> = BTreeSet::new();
        for prefix in prefixes {
            for item in self.tree.scan_prefix(prefix) {
                let (key, _) = item.map_err(read)?;
                if !present.contains(key.as_ref()) {
                    gone.insert(key.to_vec());
                }
            }
        }
        for key in exact {
            if !present.contains(key) && self.tree.contains_key(key).map_err(read)? {
                gone.insert(key.clone());
            }
        }
        let mut removals = Vec::with_capacity(gone.len());
        for key in gone {
            // A key that is not UTF-8 was never written by us and cannot be named on the
            // wire; the next snapshot drops it.
            let (Some(&kind), Some(local_key)) = (key.first(), key.get(1..).and_then(|k| std::str::from_utf8(k).ok()))
            else {
                continue;
            };
            removals.push(v1::AssetRemoval { kind: i32::from(kind), local_key: local_key.to_owned() });
        }
        Ok(Delta { upserts, removals })
    }

    /// Records a delta whose batches were all spooled, and clears the pending mark.
    pub fn record(&self, delta: &Delta) -> Result<(), SentStateError> {
        let mut batch = sled::Batch::default();
        for asset in &delta.upserts {
            batch.insert(state_key(asset.kind, &asset.local_key), change_hash(asset).as_slice());
        }
        for removal in &delta.removals {
            batch.remove(state_key(removal.kind, &removal.local_key));
        }
        batch.remove(PENDING_KEY);
        self.apply(batch)
    }

    /// Records a snapshot whose parts were all spooled: the state becomes exactly `assets`, a
    /// baseline exists and the pending mark is cleared.
    pub fn replace_all(&self, assets: &[v1::Asset]) -> Result<(), SentStateError> {
        let mut batch = sled::Batch::default();
        let mut kept: HashSet<Vec<u8>> = HashSet::with_capacity(assets.len());
        for asset in assets {
            let key = state_key(asset.kind, &asset.local_key);
            batch.insert(key.as_slice(), change_hash(asset).as_slice());
            kept.insert(key);
        }
        for key in self.tree.iter().keys() {
            let key = key.map_err(read)?;
            if key.first() != Some(&0xff) && !kept.contains(key.as_ref()) {
                batch.remove(key);
            }
        }
        batch.insert(BASELINE_KEY, &[] as &[u8]);
        batch.remove(PENDING_KEY);
        self.apply(batch)
    }

    /// Applies `batch` and flushes it to disk.
    fn apply(&self, batch: sled::Batch) -> Result<(), SentStateError> {
        self.tree.apply_batch(batch).map_err(write)?;
        self.tree.flush().map_err(write)?;
        Ok(())
    }
}

/// The state key of an entry: kind byte, then the local key.
fn state_key(kind: i32, local_key: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + local_key.len());
    key.push(kind_byte(kind));
    key.extend_from_slice(local_key.as_bytes());
    key
}

/// The kind as one byte; values outside 0..=254 (unknown to this agent) map to 0.
fn kind_byte(kind: i32) -> u8 {
    u8::try_from(kind).ok().filter(|&b| b != 0xff).unwrap_or(0)
}

/// SHA-256 of the entry's JSON, without a model's `digest_source` (module docs, *Change hash*).
fn change_hash(asset: &v1::Asset) -> [u8; 32] {
    if asset.kind() == AssetKind::Model {
        if let Ok(serde_json::Value::Object(mut entry)) = serde_json::from_str::<serde_json::Value>(&asset.json) {
            entry.remove("digest_source");
            if let Ok(bytes) = serde_json::to_vec(&entry) {
                return Sha256::digest(&bytes).into();
            }
        }
    }
    Sha256::digest(asset.json.as_bytes()).into()
}

/// A read error.
fn read(source: sled::Error) -> SentStateError {
    SentStateError::Read { source }
}

/// A write error.
fn write(source: sled::Error) -> SentStateError {
    SentStateError::Write { source }
}

#[cfg(test)]
#[path = "tests/sent.rs"]
mod tests;
