//! Kill tests for the spool: a child process appends (and acknowledges) in a loop and is
//! SIGKILLed at an arbitrary point; the parent reopens the spool and checks that everything the
//! child was told is durable is there, decodes, and that sequences have no unexplained gap.
//!
//! The child is this test binary run again with [`CHILD_ENV`] set: [`child_entry_point`] then
//! appends until killed, printing a line after each call returns.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use aiscout_agent::spool::{NewRecord, RecordKind, Spool, DEFAULT_MAX_BYTES};

/// Set to the state directory in the child.
const CHILD_ENV: &str = "AISCOUT_SPOOL_CRASH_DIR";

/// The payload of the `i`th record appended by round `round`: self-describing, so a record
/// from one round cannot pass for another.
fn payload(round: u64, i: u64) -> Vec<u8> {
    let mut p = format!("round {round} record {i} ").into_bytes();
    // Vary the size so records straddle sled's buffers differently.
    p.resize(p.len() + (i as usize * 37) % 3000, b'.');
    p
}

/// The child's work: append forever, acknowledging now and then, reporting each return.
fn run_child(dir: &Path, round: u64) -> ! {
    let spool = Spool::open(dir, DEFAULT_MAX_BYTES).unwrap();
    let mut out = std::io::stdout().lock();
    let mut i = 0u64;
    loop {
        let kind = if i.is_multiple_of(5) {
            RecordKind::Snapshot { snapshot_id: round * 1_000_000 + i, part: 0, last_part: true }
        } else {
            RecordKind::Delta
        };
        let sequence = spool.append(NewRecord { kind, payload: payload(round, i) }).unwrap();
        writeln!(out, "appended {sequence}").unwrap();
        if i % 7 == 6 {
            let up_to = sequence.saturating_sub(3);
            spool.ack(up_to).unwrap();
            writeln!(out, "acked {up_to}").unwrap();
        }
        out.flush().unwrap();
        i += 1;
    }
}

#[test]
fn child_entry_point() {
    // Only does something when this binary is run as the child of `killed_appends_are_durable`.
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let round = std::env::var("AISCOUT_SPOOL_CRASH_ROUND").unwrap().parse().unwrap();
        run_child(Path::new(&dir), round);
    }
}

/// What the child said before it was killed.
#[derive(Debug, Default)]
struct Reported {
    /// Sequences whose append returned.
    appended: Vec<u64>,
    /// The highest acknowledgement that returned.
    acked: u64,
}

impl Reported {
    /// Notes one line of the child's output. The first one follows libtest's
    /// `test child_entry_point ... ` on the same line.
    fn note(&mut self, line: &str) {
        if let Some((_, n)) = line.split_once("appended ") {
            self.appended.push(n.parse().unwrap());
        } else if let Some((_, n)) = line.split_once("acked ") {
            self.acked = n.parse().unwrap();
        }
    }
}

/// Runs the child on `dir` until it has reported `appends` appends, then SIGKILLs it.
fn run_and_kill(dir: &Path, round: u64, appends: usize) -> Reported {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry_point", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir)
        .env("AISCOUT_SPOOL_CRASH_ROUND", round.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reported = Reported::default();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while reported.appended.len() < appends {
        let Some(line) = lines.next() else {
            panic!("child exited after {} appends: {:?}", reported.appended.len(), child.wait());
        };
        reported.note(&line.unwrap());
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush
    let status = child.wait().unwrap();
    assert!(!status.success(), "the child was killed, not finished");
    // Lines written between our last read and the kill were also returned calls.
    for line in lines.map_while(Result::ok) {
        reported.note(&line);
    }
    reported
}

#[test]
fn killed_appends_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    let mut last_seen = 0u64;
    for (round, appends) in [(1u64, 40usize), (2, 3), (3, 150), (4, 1), (5, 77)] {
        let reported = run_and_kill(dir.path(), round, appends);
        let spool = Spool::open(dir.path(), DEFAULT_MAX_BYTES).unwrap();
        let stats = spool.stats();
        assert_eq!(stats.corrupt_skipped, 0, "round {round}: a kill left a corrupt record");
        assert_eq!(stats.compacted_records, 0);
        assert!(!stats.needs_snapshot);
        // Sequences continue across kills, without reuse.
        assert_eq!(reported.appended.first().copied(), Some(last_seen + 1), "round {round}");
        assert!(reported.appended.windows(2).all(|w| w[1] == w[0] + 1));
        let newest = *reported.appended.last().unwrap();
        // The append that was running at the kill may have landed (its line unwritten), not more.
        assert!(stats.last_sequence == newest || stats.last_sequence == newest + 1, "round {round}: {stats:?}");
        assert!(stats.acked_sequence >= reported.acked, "round {round}: a returned ack was lost");
        let records: Vec<_> = spool.pending().collect::<Result<_, _>>().unwrap();
        let sequences: Vec<u64> = records.iter().map(|r| r.sequence).collect();
        let expected: Vec<u64> = (stats.acked_sequence + 1..=stats.last_sequence).collect();
        assert_eq!(sequences, expected, "round {round}: pending is not contiguous after the ack");
        for sequence in reported.appended.iter().filter(|&&s| s > stats.acked_sequence) {
            assert!(sequences.contains(sequence), "round {round}: returned append {sequence} is gone");
        }
        // Payloads decode and belong to the right round, in append order.
        for record in &records {
            let text = String::from_utf8_lossy(&record.payload);
            let round_of: u64 = text.split(' ').nth(1).unwrap().parse().unwrap();
            let i: u64 = text.split(' ').nth(3).unwrap().parse().unwrap();
            assert_eq!(record.payload, payload(round_of, i), "sequence {}", record.sequence);
            assert!(round_of <= round);
        }
        last_seen = stats.last_sequence;
    }
}
