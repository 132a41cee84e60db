//! Which records to drop when the spool is over its cap (rules in the [`super`] module doc).
//!
//! [`plan`] is pure: it reads `(sequence, stored length)` pairs in sequence order and the
//! metadata, and returns the drops; the spool applies them in one sled batch.

use super::meta::SpoolMeta;

/// The outcome of a compaction pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Records superseded by the complete snapshot (rule 1): `(sequence, stored bytes)`.
    pub superseded: Vec<(u64, u64)>,
    /// Records dropped to get under the cap with nothing superseding them (rule 2).
    pub lost: Vec<(u64, u64)>,
    /// Stored bytes once the drops are applied.
    pub bytes_after: u64,
}

impl Plan {
    /// Every dropped record, superseded ones first.
    pub fn drops(&self) -> impl Iterator<Item = &(u64, u64)> {
        self.superseded.iter().chain(&self.lost)
    }
}

/// Plans the drops that bring `bytes` stored in `records` under `max_bytes`.
///
/// `records` yields `(sequence, stored bytes)` in ascending sequence order. Superseded records
/// form a prefix of it and are all dropped; after them, records are dropped oldest first while
/// the spool is over the cap, skipping protected ones ([`SpoolMeta::protected`]). The walk stops
/// as soon as the spool is under the cap, so a spool under it reads only its superseded prefix.
pub fn plan<E>(
    records: impl IntoIterator<Item = Result<(u64, u64), E>>,
    bytes: u64,
    max_bytes: u64,
    meta: &SpoolMeta,
) -> Result<Plan, E> {
    let mut plan = Plan { bytes_after: bytes, ..Plan::default() };
    for item in records {
        let (sequence, len) = item?;
        if meta.superseded(sequence) {
            plan.superseded.push((sequence, len));
        } else if plan.bytes_after <= max_bytes {
            break;
        } else if meta.protected(sequence) {
            continue;
        } else {
            plan.lost.push((sequence, len));
        }
        plan.bytes_after = plan.bytes_after.saturating_sub(len);
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::spool::RecordKind;

    fn part(snapshot_id: u64, part: u32, last_part: bool) -> RecordKind {
        RecordKind::Snapshot { snapshot_id, part, last_part }
    }

    /// Appends `kinds` (10 bytes each) to fresh metadata and plans for `max_bytes`.
    fn run(kinds: &[RecordKind], max_bytes: u64) -> Plan {
        let mut meta = SpoolMeta::default();
        for (i, kind) in kinds.iter().enumerate() {
            meta.appended(i as u64 + 1, *kind);
        }
        let records = (1..=kinds.len() as u64).map(|s| Ok::<_, Infallible>((s, 10)));
        let Ok(plan) = plan(records, kinds.len() as u64 * 10, max_bytes, &meta);
        plan
    }

    fn sequences(drops: &[(u64, u64)]) -> Vec<u64> {
        drops.iter().map(|d| d.0).collect()
    }

    #[test]
    fn under_the_cap_nothing_is_dropped() {
        let plan = run(&[RecordKind::Delta; 3], 30);
        assert_eq!(plan, Plan { bytes_after: 30, ..Plan::default() });
    }

    #[test]
    fn deltas_without_a_snapshot_are_dropped_oldest_first_just_enough() {
        let plan = run(&[RecordKind::Delta; 5], 25);
        assert_eq!(sequences(&plan.lost), [1, 2, 3]);
        assert!(plan.superseded.is_empty());
        assert_eq!(plan.bytes_after, 20);
    }

    #[test]
    fn a_complete_snapshot_supersedes_every_older_record_not_just_enough() {
        let kinds = [RecordKind::Delta, RecordKind::Delta, part(1, 0, false), part(1, 1, true), RecordKind::Delta];
        let plan = run(&kinds, 45);
        assert_eq!(sequences(&plan.superseded), [1, 2]);
        assert!(plan.lost.is_empty());
        assert_eq!(plan.bytes_after, 30);
    }

    #[test]
    fn the_complete_snapshot_is_kept_and_deltas_after_it_go() {
        let kinds = [part(1, 0, false), part(1, 1, true), RecordKind::Delta, RecordKind::Delta, RecordKind::Delta];
        let plan = run(&kinds, 30);
        assert_eq!(sequences(&plan.lost), [3, 4]);
    }

    #[test]
    fn an_incomplete_snapshot_supersedes_nothing_and_is_kept_whole() {
        let kinds = [RecordKind::Delta, RecordKind::Delta, part(1, 0, false), part(1, 1, false), part(1, 2, false)];
        let plan = run(&kinds, 20);
        assert!(plan.superseded.is_empty());
        assert_eq!(sequences(&plan.lost), [1, 2]);
        assert_eq!(plan.bytes_after, 30, "the parts being written stay even over the cap");
    }

    #[test]
    fn an_abandoned_snapshot_is_dropped_like_a_delta() {
        let kinds = [part(1, 0, false), RecordKind::Delta, RecordKind::Delta];
        let plan = run(&kinds, 20);
        assert_eq!(sequences(&plan.lost), [1]);
    }

    #[test]
    fn read_errors_stop_the_plan() {
        let records = [Ok((1, 10)), Err("broken")];
        assert_eq!(plan(records, 20, 5, &SpoolMeta::default()), Err("broken"));
    }
}
