//! Ingest: `aiscout.v1` wire messages into the store's domain types.
//!
//! The one place that knows both sides. Rules:
//! 1. an asset of kind `ASSET_KIND_UNSPECIFIED` (or a kind this collector does not know) is
//!    dropped from the batch and counted, never an error for the whole batch;
//! 2. a snapshot part maps to [`BatchMode::SnapshotPart`]; anything else is a delta;
//! 3. an asset carries no identity on the wire: the store derives it from the entry JSON (its
//!    module docs, rule list), so an agent cannot merge unrelated assets;
//! 4. host facts travel with the batch; the machine fingerprint is the one the agent reports.

use aiscout_proto::v1;

use crate::store::{AssetKind, BatchMode, HostFacts, IngestAsset, IngestBatch, IngestRemoval};

/// The domain kind of a wire kind.
pub fn asset_kind(kind: i32) -> Option<AssetKind> {
    match v1::AssetKind::try_from(kind).ok()? {
        v1::AssetKind::Model => Some(AssetKind::Model),
        v1::AssetKind::Framework => Some(AssetKind::Framework),
        v1::AssetKind::Runtime => Some(AssetKind::Runtime),
        v1::AssetKind::Tooling => Some(AssetKind::Tooling),
        v1::AssetKind::Unspecified => None,
    }
}

/// A wire batch as a store batch, and how many entries were dropped (rule 1).
pub fn to_ingest(batch: v1::Batch, received_at_ms: i64) -> (IngestBatch, u64) {
    let mut dropped = 0u64;
    let upserts = batch
        .upserts
        .into_iter()
        .filter_map(|a| match asset_kind(a.kind) {
            Some(kind) => Some(IngestAsset { kind, local_key: a.local_key, json: a.json }),
            None => {
                dropped += 1;
                None
            }
        })
        .collect();
    let removals = batch
        .removals
        .into_iter()
        .filter_map(|r| match asset_kind(r.kind) {
            Some(kind) => Some(IngestRemoval { kind, local_key: r.local_key }),
            None => {
                dropped += 1;
                None
            }
        })
        .collect();
    let mode = if batch.snapshot {
        BatchMode::SnapshotPart {
            snapshot_id: batch.snapshot_id,
            first_part: batch.first_part,
            last_part: batch.last_part,
        }
    } else {
        BatchMode::Delta
    };
    let host = batch.host.map(|h| {
        let identity = h.identity.unwrap_or_default();
        HostFacts { json: h.json, hostname: identity.hostname, machine_fingerprint: identity.machine_fingerprint }
    });
    let ingest = IngestBatch {
        sequence: batch.sequence,
        mode,
        upserts,
        removals,
        host,
        observed_at_ms: batch.observed_at_ms,
        received_at_ms,
    };
    (ingest, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_kinds_are_dropped_and_snapshots_keep_their_parts() {
        let batch = v1::Batch {
            sequence: 7,
            snapshot: true,
            snapshot_id: 3,
            first_part: true,
            last_part: true,
            upserts: vec![
                v1::Asset { kind: v1::AssetKind::Model as i32, local_key: "/m".into(), json: "{}".into() },
                v1::Asset { kind: 0, local_key: "/x".into(), json: "{}".into() },
                v1::Asset { kind: 99, local_key: "/y".into(), json: "{}".into() },
            ],
            removals: vec![v1::AssetRemoval { kind: v1::AssetKind::Tooling as i32, local_key: "/t".into() }],
            host: None,
            observed_at_ms: 5,
        };
        let (b, dropped) = to_ingest(batch, 9);
        assert_eq!(dropped, 2);
        assert_eq!(b.upserts.len(), 1);
        assert_eq!(b.mode, BatchMode::SnapshotPart { snapshot_id: 3, first_part: true, last_part: true });
        assert_eq!(b.removals, vec![IngestRemoval { kind: AssetKind::Tooling, local_key: "/t".into() }]);
        assert_eq!((b.sequence, b.observed_at_ms, b.received_at_ms), (7, 5, 9));
    }
}
