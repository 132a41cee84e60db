//! The rate-limit windows (collector/src/rate.rs) in the store: per agent, per window, messages
//! and bytes, and shared by every collector on one database.

use std::sync::{Arc, Barrier};

use super::*;
use crate::store::{ApplyOutcome, RateBudget, RateCharge, StoreError};

const MINUTE: i64 = crate::store::rate_window::WINDOW_MS;

fn budget(messages_per_minute: u32, bytes_per_minute: u64) -> RateBudget {
    RateBudget { messages_per_minute, bytes_per_minute }
}

/// Counts one message of `bytes` (or only its bytes, when `messages` is 0) of `agent` at `now_ms`.
fn admit(store: &dyn Store, agent: &str, now_ms: i64, messages: u32, bytes: u64, b: RateBudget) -> Option<i64> {
    store.admit_message(agent, &RateCharge { messages, bytes, now_ms }, &b).unwrap()
}

#[test]
fn the_limit_is_per_agent_and_per_window() {
    let store = store();
    let b = budget(2, u64::MAX);
    let t0 = 1_000_000;
    assert_eq!(admit(&store, "a", t0, 1, 1, b), None);
    assert_eq!(admit(&store, "a", t0 + 1_000, 1, 1, b), None);
    // A third message in the window waits for the window's end.
    assert_eq!(admit(&store, "a", t0 + 10_000, 1, 1, b), Some(50_000));
    assert_eq!(admit(&store, "a", t0 + 20_000, 1, 1, b), Some(40_000), "a refusal counts nothing");
    assert_eq!(admit(&store, "b", t0 + 10_000, 1, 1, b), None, "another agent has its own window");
    assert_eq!(admit(&store, "a", t0 + MINUTE, 1, 1, b), None, "a new window");
    assert_eq!(admit(&store, "a", t0 + MINUTE + 1, 1, 1, b), None);
    assert_eq!(admit(&store, "a", t0 + MINUTE + 2, 1, 1, b), Some(MINUTE - 2), "the new window is full");
    // A clock that went back does not end the window.
    assert_eq!(admit(&store, "a", t0, 1, 1, b), Some(MINUTE), "the wait is at most a window");
}

#[test]
fn bytes_are_budgeted_per_window_too() {
    let store = store();
    let b = budget(1_000, 1_000);
    let t0 = 5_000_000;
    assert_eq!(admit(&store, "a", t0, 1, 600, b), None);
    assert_eq!(admit(&store, "a", t0 + 5_000, 1, 600, b), Some(55_000));
    assert_eq!(admit(&store, "a", t0 + 5_000, 1, 400, b), None, "what fits still passes");
    assert_eq!(admit(&store, "b", t0, 1, 900, b), None, "another agent has its own budget");
    // A message larger than the whole budget waits for a fresh window and then passes alone.
    assert_eq!(admit(&store, "c", t0, 1, 10, b), None);
    assert_eq!(admit(&store, "c", t0, 1, 5_000, b), Some(MINUTE));
    assert_eq!(admit(&store, "c", t0 + MINUTE, 1, 5_000, b), None);
    assert!(admit(&store, "c", t0 + MINUTE, 1, 1, b).is_some());
    // What counts no message still counts its bytes.
    let hellos = budget(1, 100);
    assert_eq!(admit(&store, "d", t0, 0, 60, hellos), None);
    assert_eq!(admit(&store, "d", t0, 1, 30, hellos), None);
    assert!(admit(&store, "d", t0, 0, 20, hellos).is_some(), "over the bytes");
    assert!(admit(&store, "d", t0, 1, 1, hellos).is_some(), "over the messages");
    // A budget past what the columns hold is as good as none, and nothing overflows.
    let unlimited = budget(10, u64::MAX);
    assert_eq!(admit(&store, "e", t0, 1, 1 << 62, unlimited), None);
    assert_eq!(admit(&store, "e", t0, 1, 1 << 61, unlimited), None);
    assert_eq!(admit(&store, "e", t0, 1, u64::MAX, unlimited), Some(MINUTE), "over what the column holds");
}

#[test]
fn two_collectors_count_against_one_window() {
    let (first, second, _dir) = concurrency::two_collectors();
    const MESSAGES: u32 = 40;
    const BUDGET: u32 = 25;
    let now = 9_000_000;
    let barrier = Arc::new(Barrier::new(2));
    let writers: Vec<_> = [first, second]
        .into_iter()
        .map(|store| {
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                (0..MESSAGES / 2)
                    .filter(|i| admit(&*store, "a", now + i64::from(*i), 1, 1, budget(BUDGET, u64::MAX)).is_none())
                    .count()
            })
        })
        .collect();
    let admitted: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(admitted, BUDGET as usize, "one budget, whichever collector the messages reach");
}

#[test]
fn a_batch_is_counted_and_applied_together_and_a_refused_one_still_counts() {
    let store = store_with_two_agents();
    let b = budget(2, u64::MAX);
    let t0 = 9_000_000;
    let charge = RateCharge { messages: 1, bytes: 10, now_ms: t0 };
    let batch = delta(1, t0, vec![model("/m", SHA_A)]);
    let applied = store.admit_and_apply("a", &charge, &b, &batch).unwrap();
    assert!(matches!(applied, Ok(ApplyOutcome::Applied(ref s)) if s.upserted == 1), "{applied:?}");
    // A refused batch (sequence 0) is an error, and it used the second message of the window.
    let refused = store.admit_and_apply("a", &charge, &b, &delta(0, t0, vec![model("/n", SHA_B)]));
    assert!(matches!(refused, Err(StoreError::InvalidBatch { .. })), "{refused:?}");
    assert_eq!(sighting_count(&store, "a"), 1, "nothing of the refused batch is stored");
    // The third waits for the window, and nothing of it is applied.
    let over = store.admit_and_apply("a", &charge, &b, &delta(2, t0, vec![model("/o", SHA_C)])).unwrap();
    assert_eq!(over.err(), Some(MINUTE));
    assert_eq!(store.agent("a").unwrap().unwrap().last_sequence, 1);
    assert_eq!(sighting_count(&store, "a"), 1);
}

fn sighting_count(store: &TestStore, agent: &str) -> i64 {
    store.count(&format!("SELECT COUNT(*) FROM sightings WHERE agent_id = '{agent}'"))
}
