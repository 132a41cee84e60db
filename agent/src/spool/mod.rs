//! The durable spool: every report the agent produces, kept on disk from before it is sent
//! until the collector has stored it.
//!
//! # Constraints
//! - **At least once.** A report is appended (and flushed) before it is sent and deleted only
//!   when the collector acknowledges it, across crashes and restarts. Sequence numbers start at
//!   1, grow by 1 and are never reused, so the collector drops a replayed sequence.
//! - **State, not a log.** A *snapshot* (possibly in parts) states the whole inventory; a
//!   *delta* states the changes since the record before it. Old records a newer complete
//!   snapshot restates may be dropped; any other drop loses state and is announced with
//!   [`Spool::needs_snapshot`], never silent.
//! - **Bounded.** Stored bytes stay under the cap the caller gives ([`DEFAULT_MAX_BYTES`] unless
//!   configured); see *Compaction* for the one exception.
//! - **Corruption is survivable.** A record that fails its checksum or does not decode is
//!   skipped, counted, logged with its sequence and removed; opening a damaged spool succeeds
//!   (a corrupt Vector disk buffer looped forever, vectordotdev/vector#17644). Opening checks
//!   records one at a time and never holds the spool in memory (vectordotdev/vector#26035);
//!   [`Spool::pending`] checks each record again as it reads it. The metadata value has no
//!   checksum of ours (sled's log CRC covers it): if it does not decode, open fails with
//!   [`SpoolError::CorruptMeta`] rather than guess which sequences were issued.
//! - **Private.** Reports name model paths on the host: the spool's directory is `0700` and the
//!   files in it `0600`, tightened again after every append because sled creates files with
//!   the process umask ([`crate::state_dir`], *Private files*).
//!
//! # Storage
//! A sled 0.34 database in its own directory (`state_dir/spool`,
//! [`crate::state_dir::StateDir::spool`]) with one tree, [`TREE`], holding two key spaces. One
//! tree because sled's atomic unit (without transactions) is a batch on one tree: every change
//! below is one batch, so records and metadata never disagree after a crash.
//!
//! ```text
//! key                                  value
//! 'r' ++ sequence (8 bytes, u64 BE)    one record, format below. Big-endian keys sort like
//!                                      the numbers, so iterating the tree is sequence order.
//! 'm' ++ "state"                       postcard of meta::SpoolMeta: last sequence issued, last
//!                                      sequence acknowledged, needs_snapshot, the snapshot
//!                                      being written, the newest complete snapshot
//! ```
//!
//! # Record format
//! ```text
//!  0      1      2             10     14     15         23              31      35        35+n
//! +------+------+-------------+------+------+----------+---------------+-------+---------+----------+
//! | ver  | kind | snapshot id | part | last | sequence | written at ms | len n | payload | checksum |
//! | u8=1 | u8   | u64 BE      | u32  | u8   | u64 BE   | u64 BE        | u32BE | n bytes | 8 bytes  |
//! +------+------+-------------+------+------+----------+---------------+-------+---------+----------+
//! ```
//! - `kind` is 0 for a delta (whose snapshot id, part and last are 0) and 1 for a snapshot part.
//! - `sequence` repeats the key, so a value found under another key does not pass for it.
//! - `len` must equal the bytes present: nothing is allocated from a length read off disk.
//! - `checksum` is the first 8 bytes of the SHA-256 of every byte before it. SHA-256 rather than
//!   CRC-32C: `sha2` is already a dependency (with SHA-NI), a few records per scan make its cost
//!   vanish next to the fsync, and 64 bits leave no realistic undetected corruption. sled
//!   already CRCs its own log; this checksum covers the record end to end, as written by us.
//!
//! # Acknowledgement
//! `ack(n)` means the collector has stored every sequence up to and including `n` (the
//! protocol's `Ack`). One batch records `n` as acknowledged and deletes the records `<= n`;
//! [`Spool::pending`] starts after it. An ack at or below the current one changes nothing; an
//! ack above the last sequence ever issued is an error (the collector is answering another
//! agent, or the spool was replaced), never a panic.
//!
//! # Snapshots
//! A snapshot is *complete* when its parts 0 to `k`, part `k` marked last, were appended at
//! consecutive sequences under one id. The spool tracks this as parts are appended
//! (`SpoolMeta::appended` in `meta.rs`) rather than by reading records back, so a snapshot
//! whose first parts were already acknowledged still counts. Parts interleaved with deltas,
//! out of order, or under another id make no complete snapshot: an incomplete snapshot
//! supersedes nothing. Callers append the parts of one snapshot back to back.
//!
//! # Compaction
//! 1. It runs after an append, and at open, when the stored bytes (the sum of encoded records;
//!    sled's own overhead is not counted) exceed the cap.
//! 2. *Supersession.* Every record older than part 0 of the newest complete snapshot is
//!    dropped: the snapshot restates the whole inventory, so nothing is lost and
//!    `needs_snapshot` is untouched.
//! 3. *Overflow.* While still over the cap, records are dropped oldest first (deltas, parts of
//!    abandoned snapshots, an older complete snapshot), except the protected ones: the parts of
//!    the snapshot being written, or when none is, the newest complete snapshot. Each such drop
//!    loses state, so `needs_snapshot` is raised, persisted in the same batch.
//! 4. Protected records may keep the spool over the cap (logged): dropping them would have the
//!    caller write a snapshot that meets the same fate, forever. A single record larger than
//!    the cap is refused by [`Spool::append`].
//! 5. `needs_snapshot` clears when the last part of a complete snapshot is appended: overflow
//!    never drops a part of the snapshot being written, so everything it dropped is older than
//!    that snapshot and superseded by it.
//! 6. The collector sees gaps in the sequences where records were dropped. A gap followed by
//!    part 0 of a snapshot needs nothing; any other gap is covered by the snapshot
//!    `needs_snapshot` makes the caller send.
//!
//! A corrupt record is handled like an overflow drop: removed, and unless superseded it raises
//! `needs_snapshot`.
//!
//! # Crash points
//! Each operation is one sled batch, which sled recovers whole or not at all, then a flush
//! (fsync). What a crash leaves, step by step:
//! - **append**, before the batch: nothing is written and `append` has not returned, so the
//!   caller never counted the report as spooled.
//! - **append**, batch applied, before or during the flush: the record comes back together with
//!   the sequence counter, the snapshot tracking and a cleared flag, or none of them. If it comes
//!   back it is delivered although `append` never returned; should the caller append the same
//!   report again it gets a new sequence, and applying a state twice changes nothing.
//! - **append**, flushed, before compaction: the record is durable; the spool is over its cap
//!   until the next append or open compacts it.
//! - **compaction**, around its batch: the drops, the raised flag and the snapshot tracking
//!   land together or not at all; if not, the records are still there with the flag as it was,
//!   a consistent state compacted again later.
//! - **ack**, before the batch: the acknowledgement is lost and the records are sent again after
//!   restart; the collector drops sequences it has stored (at least once, never lost).
//! - **ack**, around the batch: the acknowledged sequence and the deletions land together.
//! - **open**, while removing corrupt records: the removals and the flag land together; if not,
//!   the same records are found corrupt at the next open.
//!
//! Sequences are never reused: the last sequence issued is persisted in the batch of its record
//! and kept when compaction drops the newest records; open takes the largest of it, the newest
//! key and the acknowledged sequence.
//!
//! # Concurrency
//! One lock serialises the writers (append, ack, compaction, removal of a corrupt record).
//! [`Spool::pending`] reads sled without it, so a sender can iterate while a scan appends.

mod compaction;
mod meta;
mod record;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::state_dir;
use meta::{SpoolMeta, META_KEY};
use record::{key_sequence, record_key, Corruption, RECORD_OVERHEAD, RECORD_PREFIX};

/// The cap when the configuration sets none: 64 MiB of records.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;
/// Name of the sled tree; bump the suffix when the record or key layout changes.
pub const TREE: &str = "spool-v1";
/// sled page cache size: the spool is written once and read about once.
const CACHE_CAPACITY: u64 = 4 * 1024 * 1024;

/// What a record states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// One part of a full statement of the inventory.
    Snapshot {
        /// Shared by the parts of one snapshot.
        snapshot_id: u64,
        /// Position of this part, from 0.
        part: u32,
        /// Whether this part closes the snapshot.
        last_part: bool,
    },
    /// The changes since the previous record.
    Delta,
}

/// A record to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRecord {
    /// Snapshot part or delta.
    pub kind: RecordKind,
    /// Opaque bytes (an encoded protobuf batch).
    pub payload: Vec<u8>,
}

/// A stored record awaiting acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolRecord {
    /// Its sequence number, assigned by [`Spool::append`].
    pub sequence: u64,
    /// Snapshot part or delta.
    pub kind: RecordKind,
    /// The bytes given to [`Spool::append`].
    pub payload: Vec<u8>,
    /// When it was appended (Unix milliseconds).
    pub written_at_ms: u64,
}

/// Counters and levels of the spool, for metrics and the caller's decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    /// Records stored (all pending: acknowledged ones are deleted).
    pub records: u64,
    /// Bytes of the stored records, as encoded; what the cap applies to.
    pub bytes: u64,
    /// The highest sequence ever assigned (0 before the first append).
    pub last_sequence: u64,
    /// The highest sequence acknowledged.
    pub acked_sequence: u64,
    /// Corrupt records skipped and removed since open.
    pub corrupt_skipped: u64,
    /// Records dropped by compaction since open.
    pub compacted_records: u64,
    /// Bytes of the records dropped by compaction since open.
    pub compacted_bytes: u64,
    /// Whether state was lost and a fresh complete snapshot must be appended.
    pub needs_snapshot: bool,
}

/// Errors of the spool.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool directory could not be created or made private.
    #[error("cannot prepare spool directory {path}: {source}")]
    Directory { path: String, source: std::io::Error },
    /// sled could not open the database.
    #[error("cannot open spool at {path}: {source}")]
    Open { path: String, source: sled::Error },
    /// The metadata does not decode, so which sequences were issued is unknown.
    #[error("spool at {path} has unreadable metadata: the sequences already issued are unknown")]
    CorruptMeta { path: String },
    /// Reading records failed.
    #[error("cannot read spool at {path}: {source}")]
    Read { path: String, source: sled::Error },
    /// Writing or flushing a record failed.
    #[error("cannot write spool record {sequence} at {path}: {source}")]
    Write { path: String, sequence: u64, source: sled::Error },
    /// Persisting an acknowledgement failed.
    #[error("cannot persist acknowledgement up to sequence {up_to} at {path}: {source}")]
    Ack { path: String, up_to: u64, source: sled::Error },
    /// Removing records (compaction, corruption) failed.
    #[error("cannot remove records from spool at {path}: {source}")]
    Remove { path: String, source: sled::Error },
    /// An acknowledgement for a sequence never issued.
    #[error("cannot acknowledge sequence {up_to}: the last sequence issued is {last_sequence}")]
    AckBeyondLast { up_to: u64, last_sequence: u64 },
    /// A record that could never fit under the cap.
    #[error("spool record of {len} bytes exceeds the spool cap of {max_bytes} bytes")]
    RecordTooLarge { len: u64, max_bytes: u64 },
    /// Every sequence number has been used.
    #[error("spool at {path} has issued its last sequence number")]
    SequenceExhausted { path: String },
}

/// The durable spool; share it between the producer and the sender (`Arc<Spool>`).
#[derive(Debug)]
pub struct Spool {
    /// The sled database, kept for flushing.
    db: sled::Db,
    /// The tree holding records and metadata.
    tree: sled::Tree,
    /// The spool's directory, for messages and permissions.
    path: PathBuf,
    /// Stored bytes above which compaction runs.
    max_bytes: u64,
    /// Metadata and counters; the lock also serialises every write.
    state: Mutex<State>,
}

/// What the spool knows about itself in memory.
#[derive(Debug, Default)]
struct State {
    /// The persisted metadata, as last written.
    meta: SpoolMeta,
    /// Records stored.
    records: u64,
    /// Bytes of the stored records.
    bytes: u64,
    /// Corrupt records removed since open.
    corrupt_skipped: u64,
    /// Records dropped by compaction since open.
    compacted_records: u64,
    /// Bytes dropped by compaction since open.
    compacted_bytes: u64,
}

impl Spool {
    /// Opens (creating) the spool in its private directory `path`, with a cap of `max_bytes`
    /// stored bytes.
    ///
    /// Every stored record is checked: corrupt ones are removed and counted, then the spool
    /// is compacted if it is over the cap (which may have been lowered).
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let path = path.to_path_buf();
        let shown = || path.display().to_string();
        state_dir::create_private_dir(&path).map_err(|source| SpoolError::Directory { path: shown(), source })?;
        let open_err = |source| SpoolError::Open { path: shown(), source };
        let db = state_dir::open_sled(&path, CACHE_CAPACITY).map_err(open_err)?;
        let tree = db.open_tree(TREE).map_err(open_err)?;
        let meta = match tree.get(META_KEY).map_err(open_err)? {
            None => SpoolMeta::default(),
            Some(raw) => SpoolMeta::decode(&raw).ok_or_else(|| SpoolError::CorruptMeta { path: shown() })?,
        };
        let spool = Self { db, tree, path, max_bytes, state: Mutex::new(State { meta, ..State::default() }) };
        spool.recover()?;
        state_dir::restrict_tree(&spool.path);
        Ok(spool)
    }

    /// Appends `record` under the next sequence, flushes it to disk, then enforces the cap.
    /// Returns the sequence. A record larger than the cap is refused and consumes no sequence.
    ///
    /// Compaction failures after the record is durable are logged, not returned: the record is
    /// stored under its sequence, and compaction is tried again at the next append.
    pub fn append(&self, record: NewRecord) -> Result<u64, SpoolError> {
        let len = u64::try_from(record.payload.len()).unwrap_or(u64::MAX).saturating_add(RECORD_OVERHEAD as u64);
        if len > self.max_bytes || u32::try_from(record.payload.len()).is_err() {
            return Err(SpoolError::RecordTooLarge { len, max_bytes: self.max_bytes });
        }
        let mut state = self.lock();
        let sequence = state
            .meta
            .last_sequence
            .checked_add(1)
            .ok_or_else(|| SpoolError::SequenceExhausted { path: self.shown() })?;
        let write_err = |source| SpoolError::Write { path: self.shown(), sequence, source };
        let mut meta = state.meta;
        meta.appended(sequence, record.kind);
        let mut batch = sled::Batch::default();
        batch.insert(
            &record_key(sequence),
            record::encode(sequence, record.kind, u64::try_from(crate::now_ms()).unwrap_or(0), &record.payload),
        );
        batch.insert(META_KEY, meta.encode());
        self.tree.apply_batch(batch).map_err(write_err)?;
        // The batch is in the tree from here on: account for it even if the flush fails, so the
        // sequence is never handed out twice.
        state.meta = meta;
        state.records += 1;
        state.bytes = state.bytes.saturating_add(len);
        self.db.flush().map_err(write_err)?;
        if state.bytes > self.max_bytes {
            if let Err(e) = self.compact(&mut state) {
                tracing::warn!(sequence, error = %e, "cannot compact spool after append");
            }
        }
        drop(state);
        state_dir::restrict_tree(&self.path);
        Ok(sequence)
    }

    /// The unacknowledged records, in sequence order. A corrupt record is skipped, counted,
    /// logged and removed (raising [`Spool::needs_snapshot`] unless superseded); items are
    /// errors only when sled cannot be read.
    pub fn pending(&self) -> impl Iterator<Item = Result<SpoolRecord, SpoolError>> + '_ {
        let from = self.lock().meta.acked_sequence.saturating_add(1);
        self.tree.range(record_key(from)..=record_key(u64::MAX)).filter_map(move |item| {
            let (key, value) = match item {
                Ok(kv) => kv,
                Err(source) => return Some(Err(SpoolError::Read { path: self.shown(), source })),
            };
            let sequence = key_sequence(&key)?;
            match record::decode(sequence, &value) {
                Ok(record) => Some(Ok(record)),
                Err(why) => self.remove_corrupt(sequence, &why).err().map(Err),
            }
        })
    }

    /// Records that the collector stored every sequence up to `up_to`, and deletes those
    /// records. Acknowledging again, or less, changes nothing; acknowledging a sequence never
    /// issued is [`SpoolError::AckBeyondLast`].
    pub fn ack(&self, up_to: u64) -> Result<(), SpoolError> {
        let mut state = self.lock();
        let last_sequence = state.meta.last_sequence;
        if up_to > last_sequence {
            return Err(SpoolError::AckBeyondLast { up_to, last_sequence });
        }
        let acked = state.meta.acked_sequence;
        if up_to <= acked {
            return Ok(());
        }
        let ack_err = |source| SpoolError::Ack { path: self.shown(), up_to, source };
        let mut batch = sled::Batch::default();
        let (mut records, mut bytes) = (0u64, 0u64);
        for item in self.tree.range(record_key(acked.saturating_add(1))..=record_key(up_to)) {
            let (key, value) = item.map_err(ack_err)?;
            if key_sequence(&key).is_some() {
                records += 1;
                bytes = bytes.saturating_add(value.len() as u64);
            }
            batch.remove(key);
        }
        let mut meta = state.meta;
        meta.acked_sequence = up_to;
        batch.insert(META_KEY, meta.encode());
        self.tree.apply_batch(batch).map_err(ack_err)?;
        state.meta = meta;
        state.records = state.records.saturating_sub(records);
        state.bytes = state.bytes.saturating_sub(bytes);
        self.db.flush().map_err(ack_err)?;
        Ok(())
    }

    /// Whether state was lost (records dropped over the cap or corrupt, with no complete
    /// snapshot superseding them): the caller must append a fresh complete snapshot. Persists
    /// across restarts; cleared when a complete snapshot is appended.
    pub fn needs_snapshot(&self) -> bool {
        self.lock().meta.needs_snapshot
    }

    /// Current counters and levels.
    pub fn stats(&self) -> SpoolStats {
        let state = self.lock();
        SpoolStats {
            records: state.records,
            bytes: state.bytes,
            last_sequence: state.meta.last_sequence,
            acked_sequence: state.meta.acked_sequence,
            corrupt_skipped: state.corrupt_skipped,
            compacted_records: state.compacted_records,
            compacted_bytes: state.compacted_bytes,
            needs_snapshot: state.meta.needs_snapshot,
        }
    }

    /// Checks every stored record at open: counts the good ones, removes corrupt ones and any
    /// left at or below the acknowledged sequence, repairs the last sequence, then compacts if
    /// over the cap.
    fn recover(&self) -> Result<(), SpoolError> {
        let mut state = self.lock();
        let mut meta = state.meta;
        let mut batch = sled::Batch::default();
        let mut changed = false;
        let (mut records, mut bytes, mut newest, mut corrupt) = (0u64, 0u64, 0u64, 0u64);
        for item in self.tree.scan_prefix([RECORD_PREFIX]) {
            let (key, value) = item.map_err(|source| SpoolError::Read { path: self.shown(), source })?;
            let Some(sequence) = key_sequence(&key) else {
                tracing::warn!(path = %self.path.display(), key = %hex::encode(&key), "removing malformed spool key");
                batch.remove(key);
                corrupt += 1;
                changed = true;
                continue;
            };
            if sequence <= meta.acked_sequence {
                batch.remove(key);
                changed = true;
                continue;
            }
            match record::verify(sequence, &value) {
                Ok(()) => {
                    records += 1;
                    bytes = bytes.saturating_add(value.len() as u64);
                    newest = sequence;
                }
                Err(why) => {
                    self.warn_corrupt(sequence, &why);
                    meta.lost(sequence);
                    batch.remove(key);
                    corrupt += 1;
                    changed = true;
                }
            }
        }
        let last_sequence = meta.last_sequence.max(newest).max(meta.acked_sequence);
        if last_sequence != meta.last_sequence {
            tracing::warn!(path = %self.path.display(), stored = meta.last_sequence, repaired = last_sequence, "spool last sequence was behind its records");
            meta.last_sequence = last_sequence;
            changed = true;
        }
        if changed {
            batch.insert(META_KEY, meta.encode());
            let remove_err = |source| SpoolError::Remove { path: self.shown(), source };
            self.tree.apply_batch(batch).map_err(remove_err)?;
            self.db.flush().map_err(remove_err)?;
        }
        state.meta = meta;
        state.records = records;
        state.bytes = bytes;
        state.corrupt_skipped += corrupt;
        if state.bytes > self.max_bytes {
            self.compact(&mut state)?;
        }
        Ok(())
    }

    /// Applies the compaction rules (module doc) in one batch.
    fn compact(&self, state: &mut State) -> Result<(), SpoolError> {
        let remove_err = |source| SpoolError::Remove { path: self.shown(), source };
        let records = self.tree.scan_prefix([RECORD_PREFIX]).filter_map(|item| match item {
            Ok((key, value)) => key_sequence(&key).map(|sequence| Ok((sequence, value.len() as u64))),
            Err(e) => Some(Err(e)),
        });
        let plan = compaction::plan(records, state.bytes, self.max_bytes, &state.meta).map_err(remove_err)?;
        let mut meta = state.meta;
        let mut batch = sled::Batch::default();
        let (mut dropped, mut freed) = (0u64, 0u64);
        for &(sequence, len) in plan.drops() {
            batch.remove(&record_key(sequence));
            dropped += 1;
            freed = freed.saturating_add(len);
        }
        for &(sequence, _) in &plan.lost {
            meta.lost(sequence);
        }
        if dropped > 0 {
            batch.insert(META_KEY, meta.encode());
            self.tree.apply_batch(batch).map_err(remove_err)?;
            state.meta = meta;
            state.records = state.records.saturating_sub(dropped);
            state.bytes = plan.bytes_after;
            state.compacted_records += dropped;
            state.compacted_bytes = state.compacted_bytes.saturating_add(freed);
            self.db.flush().map_err(remove_err)?;
        }
        if let (Some(first), Some(last)) = (plan.lost.first(), plan.lost.last()) {
            tracing::warn!(
                path = %self.path.display(),
                dropped = plan.lost.len(),
                first_sequence = first.0,
                last_sequence = last.0,
                "spool over its cap with no snapshot superseding its oldest records: dropped them, a fresh snapshot is needed"
            );
        }
        if !plan.superseded.is_empty() {
            tracing::debug!(path = %self.path.display(), dropped = plan.superseded.len(), "spool records superseded by a complete snapshot dropped");
        }
        if state.bytes > self.max_bytes {
            tracing::warn!(
                path = %self.path.display(),
                bytes = state.bytes,
                max_bytes = self.max_bytes,
                "spool stays over its cap: the snapshot it keeps is larger than the cap"
            );
        }
        Ok(())
    }

    /// Removes record `sequence`, found corrupt while reading, in one batch with the metadata.
    fn remove_corrupt(&self, sequence: u64, why: &Corruption) -> Result<(), SpoolError> {
        self.warn_corrupt(sequence, why);
        let remove_err = |source| SpoolError::Remove { path: self.shown(), source };
        let mut state = self.lock();
        let key = record_key(sequence);
        // Under the lock no writer runs; the record may be gone already (acknowledged, dropped).
        let Some(value) = self.tree.get(key).map_err(remove_err)? else {
            return Ok(());
        };
        let mut meta = state.meta;
        meta.lost(sequence);
        let mut batch = sled::Batch::default();
        batch.remove(&key);
        batch.insert(META_KEY, meta.encode());
        self.tree.apply_batch(batch).map_err(remove_err)?;
        state.meta = meta;
        state.records = state.records.saturating_sub(1);
        state.bytes = state.bytes.saturating_sub(value.len() as u64);
        state.corrupt_skipped += 1;
        self.db.flush().map_err(remove_err)?;
        Ok(())
    }

    fn warn_corrupt(&self, sequence: u64, why: &Corruption) {
        tracing::warn!(path = %self.path.display(), sequence, reason = %why, "skipping corrupt spool record");
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the last persisted state in it: keep going.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn shown(&self) -> String {
        self.path.display().to_string()
    }
}

#[cfg(test)]
mod tests;
