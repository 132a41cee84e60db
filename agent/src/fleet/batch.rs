//! How a snapshot or a delta is cut into batches for the spool.
//!
//! # Packing
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

use aiscout_proto::v1;
use prost::Message;

use crate::spool::{NewRecord, RecordKind};

/// Bytes the spool's sequence number may add to an encoded batch: tag and a 10-byte varint.
const SEQUENCE_RESERVE: usize = 11;

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

/// Splits `contents` into batches within `limits` (module docs, *Packing*), the first carrying
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

#[cfg(test)]
#[path = "tests/batch.rs"]
mod tests;
