//! The spool's persisted metadata: sequence counters, the `needs_snapshot` flag and where the
//! snapshots are.
//!
//! It is one small postcard value under [`META_KEY`], rewritten in the same sled batch as every
//! change it describes (an appended record, an acknowledgement's deletions, a compaction's
//! drops), so the metadata and the records never disagree after a crash.

use serde::{Deserialize, Serialize};

use super::RecordKind;

/// The sled key of the metadata: `m` (never a record key, which start with `r`) and a name.
pub const META_KEY: &[u8] = b"mstate";

/// Everything about the spool that is not a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolMeta {
    /// The highest sequence ever assigned (0 before the first append); never goes back, even
    /// when compaction drops the newest records.
    pub last_sequence: u64,
    /// Every sequence up to this one is acknowledged and deleted.
    pub acked_sequence: u64,
    /// Records were lost (dropped over the cap, or corrupt) that no complete snapshot
    /// supersedes: the caller must append a fresh snapshot.
    pub needs_snapshot: bool,
    /// The snapshot being written: parts at consecutive sequences, ending with the newest record.
    pub snapshot_run: Option<SnapshotRun>,
    /// The newest snapshot that was appended whole.
    pub complete_snapshot: Option<CompleteSnapshot>,
}

/// A snapshot whose parts are being appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRun {
    /// The id shared by its parts.
    pub snapshot_id: u64,
    /// Sequence of its part 0.
    pub first_sequence: u64,
    /// Sequence of its newest part.
    pub last_sequence: u64,
    /// The part number the next part must carry to continue it.
    pub next_part: u32,
}

/// Where the newest complete snapshot lies: parts 0 to the last, at consecutive sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteSnapshot {
    /// Sequence of part 0: every record before it is superseded.
    pub first_sequence: u64,
    /// Sequence of the last part.
    pub last_sequence: u64,
}

impl CompleteSnapshot {
    /// Whether `sequence` is one of its parts.
    fn contains(&self, sequence: u64) -> bool {
        (self.first_sequence..=self.last_sequence).contains(&sequence)
    }
}

impl SpoolMeta {
    /// Decodes stored metadata; `None` when the bytes are not metadata.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        postcard::from_bytes(bytes).ok()
    }

    /// Encodes for storage.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Notes that the record `sequence` of `kind` was appended. A snapshot part continues the
    /// run when it carries the run's id and next part number at the next sequence; part 0
    /// starts a new run; anything else ends the run. A part marked last that closes a run makes
    /// that run the complete snapshot and clears `needs_snapshot`.
    pub fn appended(&mut self, sequence: u64, kind: RecordKind) {
        self.last_sequence = sequence;
        let RecordKind::Snapshot { snapshot_id, part, last_part } = kind else {
            self.snapshot_run = None;
            return;
        };
        let continues = self.snapshot_run.is_some_and(|run| {
            run.snapshot_id == snapshot_id
                && run.next_part == part
                && run.last_sequence.checked_add(1) == Some(sequence)
        });
        let run = match self.snapshot_run {
            Some(run) if continues => SnapshotRun { last_sequence: sequence, next_part: part.saturating_add(1), ..run },
            _ if part == 0 => {
                SnapshotRun { snapshot_id, first_sequence: sequence, last_sequence: sequence, next_part: 1 }
            }
            _ => {
                self.snapshot_run = None;
                return;
            }
        };
        if last_part {
            self.snapshot_run = None;
            self.complete_snapshot =
                Some(CompleteSnapshot { first_sequence: run.first_sequence, last_sequence: run.last_sequence });
            self.needs_snapshot = false;
        } else {
            self.snapshot_run = Some(run);
        }
    }

    /// Whether record `sequence` is superseded by the complete snapshot (it is older).
    pub fn superseded(&self, sequence: u64) -> bool {
        self.complete_snapshot.is_some_and(|c| sequence < c.first_sequence)
    }

    /// Whether compaction must keep record `sequence` when it drops records over the cap: the
    /// parts of the snapshot being written or, when none is, of the newest complete snapshot.
    /// Dropping those would make the caller write a snapshot that could meet the same fate.
    pub fn protected(&self, sequence: u64) -> bool {
        match (self.snapshot_run, self.complete_snapshot) {
            (Some(run), _) => sequence >= run.first_sequence,
            (None, Some(complete)) => complete.contains(sequence),
            (None, None) => false,
        }
    }

    /// Notes that record `sequence` is gone without an acknowledgement (dropped over the cap or
    /// found corrupt). Unless a complete snapshot supersedes it, the state it carried is lost:
    /// `needs_snapshot` is raised, and a snapshot it belonged to no longer counts.
    pub fn lost(&mut self, sequence: u64) {
        if self.superseded(sequence) {
            return;
        }
        self.needs_snapshot = true;
        if self.complete_snapshot.is_some_and(|c| c.contains(sequence)) {
            self.complete_snapshot = None;
        }
        if self.snapshot_run.is_some_and(|run| sequence >= run.first_sequence) {
            self.snapshot_run = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(snapshot_id: u64, part: u32, last_part: bool) -> RecordKind {
        RecordKind::Snapshot { snapshot_id, part, last_part }
    }

    #[test]
    fn consecutive_parts_complete_a_snapshot_and_clear_the_flag() {
        let mut meta = SpoolMeta { needs_snapshot: true, ..SpoolMeta::default() };
        meta.appended(1, RecordKind::Delta);
        meta.appended(2, part(9, 0, false));
        meta.appended(3, part(9, 1, false));
        assert!(meta.needs_snapshot);
        assert!(meta.protected(2) && meta.protected(3) && !meta.protected(1));
        meta.appended(4, part(9, 2, true));
        assert!(!meta.needs_snapshot);
        assert_eq!(meta.complete_snapshot, Some(CompleteSnapshot { first_sequence: 2, last_sequence: 4 }));
        assert!(meta.superseded(1) && !meta.superseded(2));
        assert_eq!(meta.snapshot_run, None);
        assert_eq!(meta.last_sequence, 4);
    }

    #[test]
    fn a_single_part_snapshot_is_complete() {
        let mut meta = SpoolMeta::default();
        meta.appended(1, part(3, 0, true));
        assert_eq!(meta.complete_snapshot, Some(CompleteSnapshot { first_sequence: 1, last_sequence: 1 }));
    }

    #[test]
    fn interleaved_skipped_or_foreign_parts_complete_nothing() {
        let cases: [&[RecordKind]; 4] = [
            &[part(1, 0, false), RecordKind::Delta, part(1, 1, true)],
            &[part(1, 0, false), part(1, 2, true)],
            &[part(1, 0, false), part(2, 1, true)],
            &[part(1, 1, true)],
        ];
        for kinds in cases {
            let mut meta = SpoolMeta { needs_snapshot: true, ..SpoolMeta::default() };
            for (i, kind) in kinds.iter().enumerate() {
                meta.appended(i as u64 + 1, *kind);
            }
            assert_eq!(meta.complete_snapshot, None, "{kinds:?}");
            assert!(meta.needs_snapshot, "{kinds:?}");
        }
    }

    #[test]
    fn a_restarted_snapshot_counts_from_its_new_part_zero() {
        let mut meta = SpoolMeta::default();
        meta.appended(1, part(1, 0, false));
        meta.appended(2, part(1, 0, false));
        meta.appended(3, part(1, 1, true));
        assert_eq!(meta.complete_snapshot, Some(CompleteSnapshot { first_sequence: 2, last_sequence: 3 }));
    }

    #[test]
    fn losing_a_record_raises_the_flag_unless_superseded() {
        let mut meta = SpoolMeta::default();
        meta.appended(1, RecordKind::Delta);
        meta.appended(2, part(1, 0, true));
        meta.appended(3, RecordKind::Delta);
        meta.lost(1);
        assert!(!meta.needs_snapshot);
        meta.lost(3);
        assert!(meta.needs_snapshot);
        assert!(meta.complete_snapshot.is_some());
        meta.lost(2);
        assert_eq!(meta.complete_snapshot, None);
    }

    #[test]
    fn losing_a_part_of_the_run_ends_it() {
        let mut meta = SpoolMeta::default();
        meta.appended(1, part(1, 0, false));
        meta.lost(1);
        meta.appended(2, part(1, 1, true));
        assert_eq!(meta.complete_snapshot, None);
        assert!(meta.needs_snapshot);
    }

    #[test]
    fn protection_prefers_the_run_over_the_complete_snapshot() {
        let mut meta = SpoolMeta::default();
        meta.appended(1, part(1, 0, true));
        meta.appended(2, RecordKind::Delta);
        assert!(meta.protected(1) && !meta.protected(2));
        meta.appended(3, part(2, 0, false));
        assert!(!meta.protected(1) && !meta.protected(2) && meta.protected(3));
    }

    #[test]
    fn encodes_and_decodes() {
        let mut meta = SpoolMeta { acked_sequence: 3, needs_snapshot: true, ..SpoolMeta::default() };
        meta.appended(4, part(1, 0, false));
        assert_eq!(SpoolMeta::decode(&meta.encode()), Some(meta));
        assert_eq!(SpoolMeta::decode(b""), None);
    }
}
