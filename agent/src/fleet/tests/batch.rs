//! Unit tests of [`super`] (batch packing): counts, bytes with room for the sequence, oversized
//! entries, empty contents.

use aiscout_proto::v1::AssetKind;

use super::*;
use crate::fleet::payload::host_facts;
use crate::fleet::test_support::*;

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
    let shape: Vec<(usize, usize)> = parts.iter().map(|p| (p.batch.removals.len(), p.batch.upserts.len())).collect();
    assert_eq!(shape, vec![(4, 0), (1, 3), (0, 2)]);
    for (i, part) in parts.iter().enumerate() {
        assert_eq!(part.kind, RecordKind::Delta);
        assert!(!part.batch.snapshot && !part.batch.last_part);
        assert_eq!(part.batch.snapshot_id, 0);
        assert_eq!(part.batch.host.is_some(), i == 0);
    }
    let removed: Vec<&str> = parts.iter().flat_map(|p| p.batch.removals.iter().map(|r| r.local_key.as_str())).collect();
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
