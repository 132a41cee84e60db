//! What was last spooled for the collector, the delta that brings it up to date, and the split
//! of a snapshot or delta into batches.
//!
//! # Storage
//! One sled tree, [`TREE`], in a database the caller passes (the scan cache's, see
//! [`crate::cache::VerdictCache::db`]). One tree because sled's atomic unit without
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
//! 2. Snapshot: [`batches`] with [`Contents::Snapshot`] over [`crate::fleet::payload::assets`].
//!    Delta: [`SentState::delta`] with the scope of the sections the scan collected, then
//!    [`batches`] with [`Contents::Delta`]. An empty delta gives no batch.
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
//! # Batches
//! [`batches`] packs entries greedily, in order, into batches of at most
//! [`BatchLimits::max_assets`] entries (upserts plus removals) and
//! [`BatchLimits::max_bytes`] bytes of encoded [`v1::Batch`], counted with room for the largest
//! sequence number (the spool assigns it later; `sequence` is left 0 here). The host facts go in
//! the first batch only (a batch without facts leaves the collector's as they are) and count
//! toward its size. An entry too large to fit even alone goes alone, in a batch over
//! `max_bytes`: splitting it is impossible and dropping it would lose it silently. A delta puts
//! removals before upserts (their keys are disjoint). Snapshot parts share the caller's
//! `snapshot_id`, are numbered from 0 in [`OutgoingBatch::kind`], the first has `first_part`
//! and the last has `last_part`; an empty snapshot is one part with no entries, which removes
//! everything on the collector.

use std::collections::{BTreeSet, HashSet};
use std::path::PathBuf;

use aiscout_proto::v1::{self, AssetKind};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::spool::{NewRecord, RecordKind};

/// Name of the sled tree; bump the suffix when keys or hashes change meaning.
pub const TREE: &str = "fleet-state-v1";
/// Present once a snapshot was recorded.
const BASELINE_KEY: &[u8] = b"\xffbaseline";
/// Present while batches are being spooled and not yet recorded.
const PENDING_KEY: &[u8] = b"\xffpending";
/// Bytes the spool's sequence number may add to an encoded batch: tag and a 10-byte varint.
const SEQUENCE_RESERVE: usize = 11;

/// Errors of the sent state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The tree could not be opened.
    #[error("cannot open fleet state tree {TREE}: {source}")]
    Open {
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

/// Changes since the state: what a delta batch carries.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// New entries and entries whose change hash differs from the recorded one.
    pub upserts: Vec<v1::Asset>,
    /// Recorded entries of the scope that the scan no longer found.
    pub removals: Vec<v1::AssetRemoval>,
}

impl Delta {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removals.is_empty()
    }
}

/// The entries last spooled for the collector, by kind and local key.
#[derive(Debug, Clone)]
pub struct SentState {
    /// The [`TREE`] tree.
    tree: sled::Tree,
}

impl SentState {
    /// Opens (creating) the state tree in `db`.
    pub fn open(db: &sled::Db) -> Result<Self, StateError> {
        let tree = db.open_tree(TREE).map_err(|source| StateError::Open { source })?;
        Ok(Self { tree })
    }

    /// Whether the next batch must be a snapshot: no snapshot was ever recorded, or a
    /// [`begin`](Self::begin) was not followed by a record (module docs, *Protocol*).
    pub fn needs_snapshot(&self) -> Result<bool, StateError> {
        let baseline = self.tree.contains_key(BASELINE_KEY).map_err(read)?;
        let pending = self.tree.contains_key(PENDING_KEY).map_err(read)?;
        Ok(!baseline || pending)
    }

    /// Marks the state as about to change (durably): call before appending batches to the spool.
    pub fn begin(&self) -> Result<(), StateError> {
        self.tree.insert(PENDING_KEY, &[] as &[u8]).map_err(write)?;
        self.tree.flush().map_err(write)?;
        Ok(())
    }

    /// The changes from the state to `assets`: upserts of every asset that is new or changed,
    /// removals of every recorded entry whose kind is in `scope` and that `assets` lacks. Local
    /// keys must be unique per kind ([`crate::fleet::payload::assets`] makes them so).
    pub fn delta(&self, assets: &[v1::Asset], scope: &[AssetKind]) -> Result<Delta, StateError> {
        let mut kinds: Vec<u8> = scope.iter().map(|k| kind_byte(i32::from(*k))).collect();
        kinds.sort_unstable();
        kinds.dedup();
        let prefixes: Vec<Vec<u8>> = kinds.into_iter().map(|k| vec![k]).collect();
        self.delta_over(assets, &prefixes, &[])
    }

    /// The changes after a rescan of the directories `dirs` that found `assets`: like
    /// [`delta`](Self::delta), but the only removals are of recorded entries of `kind` whose
    /// local key (a path) is one of `dirs` or lies below one.
    pub fn delta_under(&self, assets: &[v1::Asset], kind: AssetKind, dirs: &[PathBuf]) -> Result<Delta, StateError> {
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
    fn delta_over(&self, assets: &[v1::Asset], prefixes: &[Vec<u8>], exact: &[Vec<u8>]) -> Result<Delta, StateError> {
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
    pub fn record(&self, delta: &Delta) -> Result<(), StateError> {
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
    pub fn replace_all(&self, assets: &[v1::Asset]) -> Result<(), StateError> {
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
    fn apply(&self, batch: sled::Batch) -> Result<(), StateError> {
        self.tree.apply_batch(batch).map_err(write)?;
        self.tree.flush().map_err(write)?;
        Ok(())
    }
}

/// Bounds of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most entries (upserts plus removals) in one batch; 0 counts as 1.
    pub max_assets: usize,
    /// Most encoded bytes of one batch, sequence number included (see module docs for the one
    /// exception).
    pub max_bytes: usize,
}

/// What [`batches`] splits.
#[derive(Debug, Clone, Copy)]
pub enum Contents<'a> {
    /// The whole inventory.
    Snapshot {
        /// Every asset of the host.
        assets: &'a [v1::Asset],
        /// Shared by the parts; the caller picks a fresh one per snapshot.
        snapshot_id: u64,
    },
    /// Changes since the last record.
    Delta(&'a Delta),
}

/// One batch ready for the spool.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingBatch {
    /// Snapshot part (id, position from 0, last) or delta, as the spool records it.
    pub kind: RecordKind,
    /// The batch, `sequence` 0.
    pub batch: v1::Batch,
}

impl OutgoingBatch {
    /// The spool record: this kind and the encoded batch.
    pub fn into_record(self) -> NewRecord {
        NewRecord { kind: self.kind, payload: self.batch.encode_to_vec() }
    }
}

/// Splits `contents` into batches within `limits` (module docs, *Batches*), the first carrying
/// `host`, each stamped `observed_at_ms`.
pub fn batches(
    contents: Contents<'_>,
    host: Option<&v1::HostFacts>,
    observed_at_ms: i64,
    limits: BatchLimits,
) -> Vec<OutgoingBatch> {
    let (snapshot, snapshot_id, items): (bool, u64, Vec<Item<'_>>) = match contents {
        Contents::Snapshot { assets, snapshot_id } => (true, snapshot_id, assets.iter().map(Item::Upsert).collect()),
        Contents::Delta(delta) => {
            let items =
                delta.removals.iter().map(Item::Removal).chain(delta.upserts.iter().map(Item::Upsert)).collect();
            (false, 0, items)
        }
    };
    if items.is_empty() && !snapshot {
        return Vec::new();
    }
    // The largest header a batch can have: every scalar at its widest.
    let header = |host: Option<&v1::HostFacts>| {
        let batch = v1::Batch {
            snapshot,
            snapshot_id,
            first_part: snapshot,
            last_part: snapshot,
            host: host.cloned(),
            observed_at_ms,
            ..Default::default()
        };
        batch.encoded_len() + SEQUENCE_RESERVE
    };
    let groups = split(&items, header(host), header(None), limits);
    let parts = groups.len();
    groups
        .into_iter()
        .enumerate()
        .map(|(index, group)| {
            let last_part = snapshot && index + 1 == parts;
            let mut batch = v1::Batch {
                snapshot,
                snapshot_id,
                first_part: snapshot && index == 0,
                last_part,
                host: if index == 0 { host.cloned() } else { None },
                observed_at_ms,
                ..Default::default()
            };
            for item in group {
                match item {
                    Item::Upsert(asset) => batch.upserts.push(asset.clone()),
                    Item::Removal(removal) => batch.removals.push(removal.clone()),
                }
            }
            let kind = if snapshot {
                RecordKind::Snapshot { snapshot_id, part: u32::try_from(index).unwrap_or(u32::MAX), last_part }
            } else {
                RecordKind::Delta
            };
            OutgoingBatch { kind, batch }
        })
        .collect()
}

/// One entry of a batch.
#[derive(Debug, Clone, Copy)]
enum Item<'a> {
    /// An upsert (field 5 of `Batch`).
    Upsert(&'a v1::Asset),
    /// A removal (field 6 of `Batch`).
    Removal(&'a v1::AssetRemoval),
}

impl Item<'_> {
    /// Bytes the entry adds to an encoded batch: one key byte (fields 5 and 6), the length
    /// prefix and the message.
    fn encoded_len(self) -> usize {
        let len = match self {
            Self::Upsert(asset) => asset.encoded_len(),
            Self::Removal(removal) => removal.encoded_len(),
        };
        1 + prost::length_delimiter_len(len) + len
    }
}

/// Greedy packing of `items` in order; the first group's header is `first_header` bytes, the
/// others' `header`. Always at least one group (possibly empty).
fn split<'a>(items: &[Item<'a>], first_header: usize, header: usize, limits: BatchLimits) -> Vec<Vec<Item<'a>>> {
    let max_assets = limits.max_assets.max(1);
    let mut groups = Vec::new();
    let mut current: Vec<Item<'a>> = Vec::new();
    let mut bytes = first_header;
    for &item in items {
        let len = item.encoded_len();
        if !current.is_empty() && (current.len() >= max_assets || bytes.saturating_add(len) > limits.max_bytes) {
            groups.push(std::mem::take(&mut current));
            bytes = header;
        }
        current.push(item);
        bytes = bytes.saturating_add(len);
    }
    groups.push(current);
    groups
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
fn read(source: sled::Error) -> StateError {
    StateError::Read { source }
}

/// A write error.
fn write(source: sled::Error) -> StateError {
    StateError::Write { source }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::fleet::payload::tests::{fixtures, inventory_report, scan_models};
    use crate::fleet::payload::{assets, host_facts};
    use crate::report::DigestSource;

    fn open_db(dir: &Path) -> sled::Db {
        sled::Config::new().path(dir.join("db")).open().unwrap()
    }

    fn temp() -> tempfile::TempDir {
        tempfile::Builder::new().prefix("fleet-state-").tempdir().unwrap()
    }

    /// A copy of the model fixtures in `dir/models`.
    fn copied_fixtures(dir: &Path) -> PathBuf {
        fn copy(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).unwrap();
            for entry in std::fs::read_dir(from).unwrap() {
                let entry = entry.unwrap();
                let target = to.join(entry.file_name());
                if entry.file_type().unwrap().is_dir() {
                    copy(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), &target).unwrap();
                }
            }
        }
        let root = dir.join("models");
        copy(&fixtures(), &root);
        root
    }

    fn asset(kind: AssetKind, key: &str, json_len: usize) -> v1::Asset {
        let json = serde_json::json!({ "path": key, "pad": "x".repeat(json_len) }).to_string();
        v1::Asset { kind: kind.into(), local_key: key.into(), json }
    }

    fn keys_of(batches: &[OutgoingBatch]) -> Vec<String> {
        let mut keys: Vec<String> =
            batches.iter().flat_map(|b| b.batch.upserts.iter().map(|a| a.local_key.clone())).collect();
        keys.sort();
        keys
    }

    /// Encoded length of `batch` once the spool gives it the widest sequence.
    fn sent_len(batch: &v1::Batch) -> usize {
        v1::Batch { sequence: u64::MAX, ..batch.clone() }.encoded_len()
    }

    const UNLIMITED: BatchLimits = BatchLimits { max_assets: usize::MAX, max_bytes: usize::MAX };

    #[test]
    fn a_fresh_state_needs_a_snapshot_then_an_unchanged_rescan_sends_nothing() {
        let dir = temp();
        let state = SentState::open(&open_db(dir.path())).unwrap();
        assert!(state.needs_snapshot().unwrap());
        let root = copied_fixtures(dir.path());
        let state_dir = dir.path().join("state");
        let first = assets(&scan_models(&root, Some(&state_dir)));
        let delta = state.delta(&first, &[AssetKind::Model]).unwrap();
        assert_eq!(delta.upserts, first);
        assert!(delta.removals.is_empty());
        state.replace_all(&first).unwrap();
        assert!(!state.needs_snapshot().unwrap());

        // The rescan answers digests from the hash cache: `digest_source` changes, nothing else.
        let report = scan_models(&root, Some(&state_dir));
        assert!(report.models.iter().any(|m| m.digest_source == DigestSource::Cache));
        let second = assets(&report);
        assert_ne!(first, second, "digest_source differs between the scans");
        let delta = state.delta(&second, &[AssetKind::Model]).unwrap();
        assert!(delta.is_empty(), "{delta:?}");
    }

    #[test]
    fn a_rescan_of_some_directories_removes_only_below_them() {
        let dir = temp();
        let state = SentState::open(&open_db(dir.path())).unwrap();
        let recorded = [
            asset(AssetKind::Model, "/m/a/x.gguf", 1),
            asset(AssetKind::Model, "/m/a/sub/y.gguf", 1),
            asset(AssetKind::Model, "/m/ab/z.gguf", 1),
            asset(AssetKind::Model, "/m/saved", 1),
            asset(AssetKind::Model, "/m/other/w.gguf", 1),
            asset(AssetKind::Framework, "/m/a:torch", 1),
        ];
        state.replace_all(&recorded).unwrap();
        // `/m/a` now holds only a new file; `/m/saved` (a directory model) is gone.
        let found = [asset(AssetKind::Model, "/m/a/new.gguf", 1)];
        let dirs = [PathBuf::from("/m/a/"), PathBuf::from("/m/saved"), PathBuf::from("/m/a/sub")];
        let delta = state.delta_under(&found, AssetKind::Model, &dirs).unwrap();
        assert_eq!(delta.upserts, found);
        let removed: Vec<&str> = delta.removals.iter().map(|r| r.local_key.as_str()).collect();
        // `/m/ab` is not below `/m/a`, frameworks are another kind, and the overlapping
        // `/m/a/sub` does not name `y.gguf` twice.
        assert_eq!(removed, ["/m/a/sub/y.gguf", "/m/a/x.gguf", "/m/saved"]);
    }

    #[test]
    fn touching_changing_and_removing_files_give_one_change_each() {
        let dir = temp();
        let state = SentState::open(&open_db(dir.path())).unwrap();
        let root = copied_fixtures(dir.path());
        state.replace_all(&assets(&scan_models(&root, None))).unwrap();

        // Touched: only `modified` changes.
        let touched = root.join("tiny.onnx");
        let when = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        std::fs::File::options().write(true).open(&touched).unwrap().set_modified(when).unwrap();
        let delta = state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap();
        assert!(delta.removals.is_empty(), "{:?}", delta.removals);
        let upserted: Vec<&str> = delta.upserts.iter().map(|a| a.local_key.as_str()).collect();
        assert_eq!(upserted, vec![touched.to_str().unwrap()]);
        state.record(&delta).unwrap();
        assert!(state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap().is_empty());

        // Changed content: another valid array in place of weights.npy.
        let changed = root.join("weights.npy");
        std::fs::copy(root.join("weights_v2.npy"), &changed).unwrap();
        let delta = state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap();
        assert!(delta.removals.is_empty());
        assert_eq!(delta.upserts.len(), 1, "{:?}", delta.upserts);
        assert_eq!(delta.upserts[0].local_key, changed.to_str().unwrap());
        state.record(&delta).unwrap();

        // Removed.
        let removed = root.join("tiny.tflite");
        std::fs::remove_file(&removed).unwrap();
        let delta = state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap();
        assert!(delta.upserts.is_empty(), "{:?}", delta.upserts);
        assert_eq!(
            delta.removals,
            vec![v1::AssetRemoval { kind: AssetKind::Model.into(), local_key: removed.to_str().unwrap().into() }]
        );
        state.record(&delta).unwrap();
        assert!(state.delta(&assets(&scan_models(&root, None)), &[AssetKind::Model]).unwrap().is_empty());
    }

    #[test]
    fn scope_limits_removals_to_the_kinds_scanned() {
        let dir = temp();
        let state = SentState::open(&open_db(dir.path())).unwrap();
        let mut all = assets(&scan_models(&fixtures(), None));
        let models = all.len();
        all.extend(assets(&inventory_report()));
        state.replace_all(&all).unwrap();

        // A runtimes-only pass that no longer sees the first runtime.
        let mut runtimes: Vec<v1::Asset> = all.iter().filter(|a| a.kind() == AssetKind::Runtime).cloned().collect();
        assert_eq!(runtimes.len(), 2);
        let gone = runtimes.remove(0);
        let delta = state.delta(&runtimes, &[AssetKind::Runtime]).unwrap();
        assert!(delta.upserts.is_empty());
        assert_eq!(delta.removals, vec![v1::AssetRemoval { kind: gone.kind, local_key: gone.local_key.clone() }]);

        // No scope: nothing removed; a repeated kind in scope: removals listed once.
        assert!(state.delta(&runtimes, &[]).unwrap().is_empty());
        let delta = state.delta(&runtimes, &[AssetKind::Runtime, AssetKind::Runtime, AssetKind::Model]).unwrap();
        assert_eq!(delta.removals.len(), models + 1);
        assert_eq!(delta.removals.iter().filter(|r| r.kind() == AssetKind::Model).count(), models);
    }

    #[test]
    fn replace_all_forgets_entries_the_snapshot_lacks() {
        let dir = temp();
        let state = SentState::open(&open_db(dir.path())).unwrap();
        let a = asset(AssetKind::Tooling, "a", 1);
        let b = asset(AssetKind::Tooling, "b", 1);
        state.replace_all(&[a.clone(), b.clone()]).unwrap();
        state.replace_all(std::slice::from_ref(&b)).unwrap();
        // `a` is unknown again (an upsert), and `b` is all there is to remove.
        let delta = state.delta(std::slice::from_ref(&a), &[AssetKind::Tooling]).unwrap();
        assert_eq!(delta.upserts, vec![a]);
        assert_eq!(delta.removals, vec![v1::AssetRemoval { kind: b.kind, local_key: "b".into() }]);
    }

    #[test]
    fn state_survives_reopening_and_a_crash_after_begin_forces_a_snapshot() {
        let dir = temp();
        let all = assets(&inventory_report());
        {
            let db = open_db(dir.path());
            SentState::open(&db).unwrap().replace_all(&all).unwrap();
        }
        {
            let db = open_db(dir.path());
            let state = SentState::open(&db).unwrap();
            assert!(!state.needs_snapshot().unwrap());
            let scope = [AssetKind::Framework, AssetKind::Runtime, AssetKind::Tooling];
            assert!(state.delta(&all, &scope).unwrap().is_empty());
            // Spooling starts, and the agent dies before recording.
            state.begin().unwrap();
        }
        let db = open_db(dir.path());
        let state = SentState::open(&db).unwrap();
        assert!(state.needs_snapshot().unwrap());
        state.record(&Delta::default()).unwrap();
        assert!(!state.needs_snapshot().unwrap());
    }

    #[test]
    fn snapshot_splits_by_count_into_numbered_parts() {
        let all: Vec<v1::Asset> = (0..10).map(|i| asset(AssetKind::Model, &format!("/m/{i:02}"), 10)).collect();
        let host = host_facts(&inventory_report(), v1::HostIdentity::default());
        let limits = BatchLimits { max_assets: 3, max_bytes: usize::MAX };
        let parts = batches(Contents::Snapshot { assets: &all, snapshot_id: 7 }, Some(&host), 1234, limits);
        let sizes: Vec<usize> = parts.iter().map(|p| p.batch.upserts.len()).collect();
        assert_eq!(sizes, vec![3, 3, 3, 1]);
        for (i, part) in parts.iter().enumerate() {
            let last = i == 3;
            assert_eq!(part.kind, RecordKind::Snapshot { snapshot_id: 7, part: i as u32, last_part: last });
            assert!(part.batch.snapshot);
            assert_eq!(part.batch.snapshot_id, 7);
            assert_eq!(part.batch.last_part, last);
            assert_eq!(part.batch.first_part, i == 0);
            assert_eq!(part.batch.sequence, 0);
            assert_eq!(part.batch.observed_at_ms, 1234);
            assert!(part.batch.removals.is_empty());
            assert_eq!(part.batch.host.as_ref(), (i == 0).then_some(&host));
        }
        let mut expected: Vec<String> = all.iter().map(|a| a.local_key.clone()).collect();
        expected.sort();
        assert_eq!(keys_of(&parts), expected);
        // The spool record carries the same batch.
        let record = parts[1].clone().into_record();
        assert_eq!(record.kind, parts[1].kind);
        assert_eq!(v1::Batch::decode(record.payload.as_slice()).unwrap(), parts[1].batch);
    }

    #[test]
    fn snapshot_splits_by_bytes_with_room_for_the_sequence() {
        let all: Vec<v1::Asset> = (0..20).map(|i| asset(AssetKind::Model, &format!("/m/{i:02}"), 500)).collect();
        let mut host = host_facts(&inventory_report(), v1::HostIdentity::default());
        host.json = serde_json::json!({ "hostname": "h", "pad": "y".repeat(800) }).to_string();
        let limits = BatchLimits { max_assets: 100, max_bytes: 2000 };
        let parts = batches(Contents::Snapshot { assets: &all, snapshot_id: 9 }, Some(&host), 0, limits);
        for part in &parts {
            assert!(sent_len(&part.batch) <= 2000, "{} bytes", sent_len(&part.batch));
        }
        // An entry takes 540 bytes and a header without host facts 17: three entries a part.
        // The host facts (~830 bytes) leave room for two in the first part.
        assert_eq!(Item::Upsert(&all[0]).encoded_len(), 540);
        let sizes: Vec<usize> = parts.iter().map(|p| p.batch.upserts.len()).collect();
        assert_eq!(sizes, vec![2, 3, 3, 3, 3, 3, 3]);
        assert_eq!(keys_of(&parts).len(), 20);
        assert_eq!(parts.iter().filter(|p| p.batch.last_part).count(), 1);
        assert!(parts.last().unwrap().batch.last_part);
    }

    #[test]
    fn the_sequence_the_spool_adds_later_is_budgeted() {
        let all: Vec<v1::Asset> = (0..6).map(|i| asset(AssetKind::Model, &format!("/m/{i:02}"), 500)).collect();
        // Three entries (1620 bytes) and the header without a sequence (6) fit in 1631 bytes; with
        // the widest sequence (11 more) they do not.
        let limits = BatchLimits { max_assets: 100, max_bytes: 1631 };
        let parts = batches(Contents::Snapshot { assets: &all, snapshot_id: 9 }, None, 0, limits);
        assert_eq!(parts.iter().map(|p| p.batch.upserts.len()).collect::<Vec<_>>(), vec![2, 2, 2]);
        assert!(parts.iter().all(|p| sent_len(&p.batch) <= 1631));
    }

    #[test]
    fn an_asset_larger_than_the_limit_goes_alone() {
        let all = vec![
            asset(AssetKind::Model, "/a", 100),
            asset(AssetKind::Model, "/huge", 5000),
            asset(AssetKind::Model, "/b", 100),
            asset(AssetKind::Model, "/c", 100),
        ];
        let limits = BatchLimits { max_assets: 10, max_bytes: 2000 };
        let parts = batches(Contents::Snapshot { assets: &all, snapshot_id: 1 }, None, 0, limits);
        let keys: Vec<Vec<&str>> =
            parts.iter().map(|p| p.batch.upserts.iter().map(|a| a.local_key.as_str()).collect()).collect();
        assert_eq!(keys, vec![vec!["/a"], vec!["/huge"], vec!["/b", "/c"]]);
        assert!(sent_len(&parts[1].batch) > 2000);
        assert!(sent_len(&parts[0].batch) <= 2000 && sent_len(&parts[2].batch) <= 2000);
    }

    #[test]
    fn an_empty_snapshot_is_one_last_part_and_an_empty_delta_no_batch() {
        let parts = batches(Contents::Snapshot { assets: &[], snapshot_id: 3 }, None, 5, UNLIMITED);
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].kind, RecordKind::Snapshot { snapshot_id: 3, part: 0, last_part: true });
        assert!(parts[0].batch.snapshot && parts[0].batch.last_part);
        assert!(parts[0].batch.upserts.is_empty());
        let host = host_facts(&inventory_report(), v1::HostIdentity::default());
        assert!(batches(Contents::Delta(&Delta::default()), Some(&host), 5, UNLIMITED).is_empty());
    }

    #[test]
    fn delta_batches_carry_removals_then_upserts() {
        let delta = Delta {
            upserts: (0..5).map(|i| asset(AssetKind::Runtime, &format!("u{i}"), 10)).collect(),
            removals: (0..5)
                .map(|i| v1::AssetRemoval { kind: AssetKind::Model.into(), local_key: format!("r{i}") })
                .collect(),
        };
        let host = host_facts(&inventory_report(), v1::HostIdentity::default());
        let limits = BatchLimits { max_assets: 4, max_bytes: usize::MAX };
        let parts = batches(Contents::Delta(&delta), Some(&host), 42, limits);
        let shape: Vec<(usize, usize)> =
            parts.iter().map(|p| (p.batch.removals.len(), p.batch.upserts.len())).collect();
        assert_eq!(shape, vec![(4, 0), (1, 3), (0, 2)]);
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(part.kind, RecordKind::Delta);
            assert!(!part.batch.snapshot && !part.batch.last_part);
            assert_eq!(part.batch.snapshot_id, 0);
            assert_eq!(part.batch.host.is_some(), i == 0);
        }
        let removed: Vec<&str> =
            parts.iter().flat_map(|p| p.batch.removals.iter().map(|r| r.local_key.as_str())).collect();
        assert_eq!(removed, vec!["r0", "r1", "r2", "r3", "r4"]);
        assert_eq!(keys_of(&parts), vec!["u0", "u1", "u2", "u3", "u4"]);
    }

    #[test]
    fn a_zero_count_limit_still_makes_progress() {
        let all: Vec<v1::Asset> = (0..3).map(|i| asset(AssetKind::Model, &format!("/m/{i}"), 1)).collect();
        let limits = BatchLimits { max_assets: 0, max_bytes: 0 };
        let parts = batches(Contents::Snapshot { assets: &all, snapshot_id: 1 }, None, 0, limits);
        assert_eq!(parts.iter().map(|p| p.batch.upserts.len()).collect::<Vec<_>>(), vec![1, 1, 1]);
    }
}
