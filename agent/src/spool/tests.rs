use std::io;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;

/// Payload size of the records in the cap tests.
const PAYLOAD: usize = 100;
/// Stored size of one such record.
const UNIT: u64 = (PAYLOAD + RECORD_OVERHEAD) as u64;

fn delta(tag: u8) -> NewRecord {
    NewRecord { kind: RecordKind::Delta, payload: vec![tag; PAYLOAD] }
}

fn part(snapshot_id: u64, part: u32, last_part: bool) -> NewRecord {
    NewRecord { kind: RecordKind::Snapshot { snapshot_id, part, last_part }, payload: vec![0xAA; PAYLOAD] }
}

fn pending(spool: &Spool) -> Vec<SpoolRecord> {
    spool.pending().collect::<Result<_, _>>().unwrap()
}

fn sequences(spool: &Spool) -> Vec<u64> {
    pending(spool).iter().map(|r| r.sequence).collect()
}

fn append_all(spool: &Spool, records: impl IntoIterator<Item = NewRecord>) -> Vec<u64> {
    records.into_iter().map(|r| spool.append(r).unwrap()).collect()
}

/// Rewrites the stored value of `sequence` with `damage` applied, through sled directly. Opened
/// as the spool opens it: a spool dropped just before may leave sled's flusher thread holding the
/// file lock for a moment (CI saw `could not acquire lock`), which `open_sled` waits out.
fn damage(dir: &Path, sequence: u64, damage: impl Fn(&mut Vec<u8>)) {
    let db = state_dir::open_sled(dir, 1 << 20).unwrap();
    let tree = db.open_tree(TREE).unwrap();
    let mut value = tree.get(record_key(sequence)).unwrap().unwrap().to_vec();
    damage(&mut value);
    tree.insert(record_key(sequence), value).unwrap();
    db.flush().unwrap();
}

#[test]
fn append_pending_ack_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(spool.stats(), SpoolStats::default());
    let records = [delta(1), part(7, 0, false), part(7, 1, true), delta(2)];
    assert_eq!(append_all(&spool, records.clone()), [1, 2, 3, 4]);
    let got = pending(&spool);
    assert_eq!(got.len(), 4);
    for (i, (record, sent)) in got.iter().zip(&records).enumerate() {
        assert_eq!(record.sequence, i as u64 + 1);
        assert_eq!(record.kind, sent.kind);
        assert_eq!(record.payload, sent.payload);
        assert!(record.written_at_ms > 1_600_000_000_000);
    }
    spool.ack(2).unwrap();
    assert_eq!(sequences(&spool), [3, 4]);
    let stats = spool.stats();
    assert_eq!((stats.records, stats.bytes, stats.last_sequence, stats.acked_sequence), (2, 2 * UNIT, 4, 2));
    spool.ack(4).unwrap();
    assert!(pending(&spool).is_empty());
    assert_eq!(spool.stats().bytes, 0);
}

#[test]
fn sequences_and_acks_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        append_all(&spool, [delta(1), delta(2), delta(3)]);
        spool.ack(1).unwrap();
    }
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(sequences(&spool), [2, 3]);
    assert_eq!(spool.append(delta(4)).unwrap(), 4);
    spool.ack(4).unwrap();
    drop(spool);
    // Everything acknowledged: the counter still continues.
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    let stats = spool.stats();
    assert_eq!((stats.records, stats.last_sequence, stats.acked_sequence), (0, 4, 4));
    assert_eq!(spool.append(delta(5)).unwrap(), 5);
}

#[test]
fn ack_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    append_all(&spool, [delta(1), delta(2), delta(3)]);
    spool.ack(2).unwrap();
    let before = spool.stats();
    spool.ack(2).unwrap();
    spool.ack(1).unwrap();
    spool.ack(0).unwrap();
    assert_eq!(spool.stats(), before);
    assert_eq!(sequences(&spool), [3]);
}

#[test]
fn ack_beyond_the_last_sequence_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    assert!(matches!(spool.ack(1), Err(SpoolError::AckBeyondLast { up_to: 1, last_sequence: 0 })));
    append_all(&spool, [delta(1), delta(2)]);
    let err = spool.ack(3).unwrap_err();
    assert!(matches!(err, SpoolError::AckBeyondLast { up_to: 3, last_sequence: 2 }));
    assert_eq!(err.to_string(), "cannot acknowledge sequence 3: the last sequence issued is 2");
    assert!(spool.ack(u64::MAX).is_err());
    assert_eq!(sequences(&spool), [1, 2], "a refused ack deletes nothing");
    assert_eq!(spool.stats().acked_sequence, 0);
}

/// Collects what `tracing` writes while `f` runs.
fn capture_logs(f: impl FnOnce()) -> String {
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let sink = Sink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
    tracing::subscriber::with_default(subscriber, f);
    let bytes = sink.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn corrupt_records_are_skipped_counted_logged_and_removed_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        append_all(&spool, (1..=6).map(delta));
    }
    damage(dir.path(), 2, |v| v[RECORD_OVERHEAD] ^= 0x01);
    damage(dir.path(), 4, |v| v.truncate(v.len() - 3));
    damage(dir.path(), 5, |v| *v = b"junk".to_vec());
    let mut opened = None;
    let logs = capture_logs(|| opened = Some(Spool::open(dir.path(), DEFAULT_MAX_BYTES)));
    let spool = opened.unwrap().unwrap();
    for sequence in [2, 4, 5] {
        assert!(logs.contains(&format!("sequence={sequence}")), "no warning names {sequence}: {logs}");
    }
    assert!(logs.contains("WARN"), "{logs}");
    let got = pending(&spool);
    assert_eq!(got.iter().map(|r| r.sequence).collect::<Vec<_>>(), [1, 3, 6]);
    assert_eq!(got[1].payload, vec![3; PAYLOAD]);
    let stats = spool.stats();
    assert_eq!((stats.corrupt_skipped, stats.records, stats.bytes), (3, 3, 3 * UNIT));
    assert!(stats.needs_snapshot, "lost deltas are state the collector never gets");
    drop(spool);
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(spool.stats().corrupt_skipped, 0, "the corrupt records were removed for good");
    assert_eq!(sequences(&spool), [1, 3, 6]);
    assert!(spool.needs_snapshot());
    assert_eq!(spool.append(delta(7)).unwrap(), 7);
}

#[test]
fn a_corrupt_superseded_record_needs_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        append_all(&spool, [delta(1), part(1, 0, true), delta(2)]);
    }
    damage(dir.path(), 1, |v| v[0] = 9);
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    assert_eq!(sequences(&spool), [2, 3]);
    assert_eq!(spool.stats().corrupt_skipped, 1);
    assert!(!spool.needs_snapshot());
}

#[test]
fn corruption_found_while_reading_is_skipped_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    append_all(&spool, [delta(1), delta(2), delta(3)]);
    let mut value = spool.tree.get(record_key(2)).unwrap().unwrap().to_vec();
    value[20] ^= 0x80;
    spool.tree.insert(record_key(2), value).unwrap();
    assert_eq!(sequences(&spool), [1, 3]);
    let stats = spool.stats();
    assert_eq!((stats.corrupt_skipped, stats.records, stats.bytes), (1, 2, 2 * UNIT));
    assert!(stats.needs_snapshot);
    assert_eq!(sequences(&spool), [1, 3]);
    assert_eq!(spool.stats().corrupt_skipped, 1, "counted once");
}

#[test]
fn deltas_past_the_cap_drop_the_oldest_and_ask_for_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 5 * UNIT).unwrap();
    append_all(&spool, (1..=8).map(delta));
    assert_eq!(sequences(&spool), [4, 5, 6, 7, 8]);
    let stats = spool.stats();
    assert_eq!((stats.compacted_records, stats.compacted_bytes, stats.bytes), (3, 3 * UNIT, 5 * UNIT));
    assert!(stats.needs_snapshot);
    assert_eq!(stats.last_sequence, 8);

    // A complete two-part snapshot supersedes everything older and clears the flag.
    spool.append(part(1, 0, false)).unwrap();
    assert!(spool.needs_snapshot(), "an incomplete snapshot clears nothing");
    spool.append(part(1, 1, true)).unwrap();
    assert!(!spool.needs_snapshot());
    assert_eq!(sequences(&spool), [9, 10]);
    // Deltas after it are all kept.
    append_all(&spool, (11..=13).map(delta));
    assert_eq!(sequences(&spool), [9, 10, 11, 12, 13]);
    drop(spool);
    let spool = Spool::open(dir.path(), 5 * UNIT).unwrap();
    assert_eq!(sequences(&spool), [9, 10, 11, 12, 13]);
    assert!(!spool.needs_snapshot(), "the cleared flag is persisted");
}

#[test]
fn needs_snapshot_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), 2 * UNIT).unwrap();
        append_all(&spool, (1..=3).map(delta));
        assert!(spool.needs_snapshot());
    }
    let spool = Spool::open(dir.path(), 2 * UNIT).unwrap();
    assert!(spool.needs_snapshot());
    spool.ack(3).unwrap();
    assert!(spool.needs_snapshot(), "acknowledging does not restore lost state");
}

#[test]
fn an_incomplete_snapshot_supersedes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 5 * UNIT).unwrap();
    append_all(&spool, [delta(1), delta(2), delta(3), part(4, 0, false), part(4, 1, false)]);
    spool.append(part(4, 2, false)).unwrap();
    // Over the cap by one record: only the oldest delta goes, and that loses state.
    assert_eq!(sequences(&spool), [2, 3, 4, 5, 6]);
    assert!(spool.needs_snapshot());
    assert_eq!(spool.stats().compacted_records, 1);
    // The last part completes it: the deltas before it are superseded, the flag clears.
    spool.append(part(4, 3, true)).unwrap();
    assert_eq!(sequences(&spool), [4, 5, 6, 7]);
    assert!(!spool.needs_snapshot());
}

#[test]
fn a_snapshot_larger_than_the_cap_is_kept_whole() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), 3 * UNIT).unwrap();
    append_all(&spool, (0..5).map(|p| part(9, p, p == 4)));
    assert_eq!(sequences(&spool), [1, 2, 3, 4, 5], "parts being written are never dropped");
    assert!(!spool.needs_snapshot(), "no loop: the snapshot is complete");
    // A delta after it is dropped (the newest record), the snapshot stays and the flag rises.
    assert_eq!(spool.append(delta(6)).unwrap(), 6);
    assert_eq!(sequences(&spool), [1, 2, 3, 4, 5]);
    assert!(spool.needs_snapshot());
    drop(spool);
    let spool = Spool::open(dir.path(), 3 * UNIT).unwrap();
    assert_eq!(spool.append(delta(7)).unwrap(), 7, "a dropped newest sequence is never reused");
}

#[test]
fn a_record_larger_than_the_cap_is_refused_without_using_a_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), UNIT).unwrap();
    let big = NewRecord { kind: RecordKind::Delta, payload: vec![0; PAYLOAD + 1] };
    let err = spool.append(big).unwrap_err();
    assert!(matches!(err, SpoolError::RecordTooLarge { len, max_bytes } if len == UNIT + 1 && max_bytes == UNIT));
    assert_eq!(spool.stats().last_sequence, 0);
    assert_eq!(spool.append(delta(1)).unwrap(), 1);
}

#[test]
fn lowering_the_cap_compacts_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        append_all(&spool, [delta(1), delta(2), part(1, 0, true), delta(3)]);
    }
    let spool = Spool::open(dir.path(), 3 * UNIT).unwrap();
    assert_eq!(sequences(&spool), [3, 4]);
    assert!(!spool.needs_snapshot());
    assert_eq!(spool.stats().compacted_records, 2);
}

#[test]
fn nothing_in_the_spool_is_readable_by_others() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
    spool.append(NewRecord { kind: RecordKind::Delta, payload: vec![7; 1 << 20] }).unwrap();
    append_all(&spool, (0..20).map(delta));
    let mut stack = vec![dir.path().to_path_buf()];
    let mut seen = 0;
    while let Some(path) = stack.pop() {
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o077, 0, "{} is open to others", path.display());
        seen += 1;
        if meta.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }
    assert!(seen > 2, "sled wrote files");
}

#[test]
fn a_file_where_the_spool_directory_goes_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    std::fs::write(&path, b"").unwrap();
    let err = Spool::open(&path, DEFAULT_MAX_BYTES).unwrap_err();
    assert!(matches!(err, SpoolError::Directory { .. }));
    assert!(err.to_string().contains(&path.display().to_string()));
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    /// Append a delta with a payload of this many bytes.
    Delta(usize),
    /// Append `parts` snapshot parts of `len` bytes, the last marked last only if `finish`.
    Snapshot { parts: u32, finish: bool, len: usize },
    /// Acknowledge this many sequences past the acknowledged one (capped at the last).
    Ack(u64),
    /// Acknowledge past the last sequence: must fail and change nothing.
    AckBeyond(u64),
    /// Close and open again.
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..120usize).prop_map(Op::Delta),
        2 => (1..4u32, any::<bool>(), 0..120usize).prop_map(|(parts, finish, len)| Op::Snapshot { parts, finish, len }),
        2 => (0..6u64).prop_map(Op::Ack),
        1 => (1..3u64).prop_map(Op::AckBeyond),
        1 => Just(Op::Reopen),
    ]
}

/// The first sequences of the complete snapshots in `records`: parts 0 to last at
/// consecutive sequences under one id.
fn complete_snapshot_starts(records: &[SpoolRecord]) -> Vec<u64> {
    let mut starts = Vec::new();
    let mut run: Option<(u64, u64, u32, u64)> = None; // id, first, next part, next sequence
    for r in records {
        run = match r.kind {
            RecordKind::Snapshot { snapshot_id, part, last_part } => {
                let next = match run {
                    Some((id, first, next_part, next_seq))
                        if id == snapshot_id && next_part == part && next_seq == r.sequence =>
                    {
                        Some((id, first, part + 1, r.sequence + 1))
                    }
                    _ if part == 0 => Some((snapshot_id, r.sequence, 1, r.sequence + 1)),
                    _ => None,
                };
                match next {
                    Some((_, first, _, _)) if last_part => {
                        starts.push(first);
                        None
                    }
                    other => other,
                }
            }
            RecordKind::Delta => None,
        };
    }
    starts
}

fn check_invariants(spool: &Spool, last: u64, acked: u64, max_bytes: u64) -> Result<(), TestCaseError> {
    let records = pending(spool);
    let stats = spool.stats();
    prop_assert_eq!(stats.last_sequence, last);
    prop_assert_eq!(stats.acked_sequence, acked);
    prop_assert!(records.windows(2).all(|w| w[0].sequence < w[1].sequence), "sorted, no duplicates");
    prop_assert!(records.iter().all(|r| r.sequence > acked && r.sequence <= last));
    prop_assert_eq!(stats.records, records.len() as u64);
    let bytes: u64 = records.iter().map(|r| (r.payload.len() + RECORD_OVERHEAD) as u64).sum();
    prop_assert_eq!(stats.bytes, bytes);
    let present: std::collections::BTreeSet<u64> = records.iter().map(|r| r.sequence).collect();
    if max_bytes >= 1 << 20 {
        prop_assert_eq!(present.iter().copied().collect::<Vec<_>>(), (acked + 1..=last).collect::<Vec<_>>());
    }
    // Completeness: a missing unacknowledged record is superseded by a complete snapshot after
    // it, or the caller has been told to send one.
    let starts = complete_snapshot_starts(&records);
    for missing in (acked + 1..=last).filter(|s| !present.contains(s)) {
        prop_assert!(
            stats.needs_snapshot || starts.iter().any(|&s| s > missing),
            "sequence {} lost silently (starts {:?}, present {:?})",
            missing,
            starts,
            present
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn operations_keep_the_invariants(
        ops in proptest::collection::vec(op(), 1..30),
        max_bytes in prop_oneof![Just(4 * UNIT), Just(1u64 << 20)],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), max_bytes).unwrap();
        let (mut last, mut acked, mut next_id) = (0u64, 0u64, 1u64);
        for op in ops {
            match op {
                Op::Delta(len) => {
                    last += 1;
                    prop_assert_eq!(spool.append(NewRecord { kind: RecordKind::Delta, payload: vec![1; len] }).unwrap(), last);
                }
                Op::Snapshot { parts, finish, len } => {
                    for part in 0..parts {
                        let kind = RecordKind::Snapshot { snapshot_id: next_id, part, last_part: finish && part + 1 == parts };
                        last += 1;
                        prop_assert_eq!(spool.append(NewRecord { kind, payload: vec![2; len] }).unwrap(), last);
                    }
                    next_id += 1;
                    if finish {
                        prop_assert!(!spool.needs_snapshot());
                    }
                }
                Op::Ack(k) => {
                    let up_to = (acked + k).min(last);
                    spool.ack(up_to).unwrap();
                    acked = acked.max(up_to);
                }
                Op::AckBeyond(k) => {
                    let is_beyond = matches!(spool.ack(last + k), Err(SpoolError::AckBeyondLast { .. }));
                    prop_assert!(is_beyond);
                }
                Op::Reopen => {
                    drop(spool);
                    spool = Spool::open(dir.path(), max_bytes).unwrap();
                }
            }
            check_invariants(&spool, last, acked, max_bytes)?;
        }
    }
}
