//! Unit tests of [`super`] (the schedule), on a made-up clock: every instant is `start` plus a
//! duration, and the random source is a fixed fraction.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::*;

const MIN: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

fn timing() -> Timing {
    Timing {
        full_interval: 6 * HOUR,
        jitter: 36 * MIN,
        runtimes_interval: 5 * MIN,
        runtimes: true,
        snapshot_every: 3,
        backoff_initial: Duration::from_secs(1),
        backoff_max: 5 * MIN,
    }
}

fn lowest() -> f64 {
    0.0
}

fn highest() -> f64 {
    1.0
}

fn half() -> f64 {
    0.5
}

/// A daemon's schedule started at `start`, random fractions from `random`.
fn schedule(once: bool, start: Instant, random: fn() -> f64) -> Schedule {
    Schedule::with_random(timing(), once, start, random)
}

#[test]
fn a_full_inventory_comes_first_then_every_interval_plus_bounded_jitter() {
    let start = Instant::now();
    let no_runtimes = Timing { runtimes: false, ..timing() };
    for (random, jitter) in [(lowest as fn() -> f64, Duration::ZERO), (highest, 36 * MIN), (half, 18 * MIN)] {
        let mut s = Schedule::with_random(no_runtimes, false, start, random);
        assert_eq!(s.collection(start), Collect::Full);
        s.full_done(start);
        let due = start + 6 * HOUR + jitter;
        assert_eq!(s.collection(due - Duration::from_millis(1)), Collect::Nothing, "{jitter:?}");
        assert_eq!(s.collection(due), Collect::Full, "{jitter:?}");
    }
    // The real random source stays within the bounds too.
    for _ in 0..200 {
        let mut s = Schedule::new(timing(), false, start);
        s.full_done(start);
        s.sent(false);
        let After::Wait(_) = s.after_send(start) else { panic!("a daemon waits") };
        assert!(s.next_full >= start + 6 * HOUR && s.next_full <= start + 6 * HOUR + 36 * MIN);
    }
}

#[test]
fn runtimes_refresh_on_their_own_interval_only_when_configured() {
    let start = Instant::now();
    let mut s = schedule(false, start, lowest);
    assert_eq!(s.collection(start), Collect::Full);
    s.full_done(start);
    assert_eq!(s.collection(start + 4 * MIN), Collect::Nothing);
    assert_eq!(s.collection(start + 5 * MIN), Collect::Runtimes);
    s.runtimes_done(start + 5 * MIN);
    assert_eq!(s.collection(start + 9 * MIN), Collect::Nothing);
    assert_eq!(s.collection(start + 10 * MIN), Collect::Runtimes);
    // The wait ends at the next refresh.
    s.sent(false);
    assert_eq!(s.after_send(start + 8 * MIN), After::Wait(2 * MIN));

    let mut quiet = Schedule::with_random(Timing { runtimes: false, ..timing() }, false, start, lowest);
    quiet.full_done(start);
    assert_eq!(quiet.collection(start + HOUR), Collect::Nothing);
}

#[test]
fn changed_directories_are_rescanned_once_and_a_full_inventory_covers_them() {
    let start = Instant::now();
    let mut s = schedule(false, start, lowest);
    s.full_done(start);
    let dirs = vec![PathBuf::from("/models/a"), PathBuf::from("/models/b")];
    s.dirs_changed(dirs.clone());
    assert_eq!(s.collection(start + MIN), Collect::Rescan(dirs.clone()));
    assert_eq!(s.collection(start + MIN), Collect::Nothing, "handed over once");

    // A rescan waits behind a due full inventory, which covers it.
    s.dirs_changed(dirs);
    assert_eq!(s.collection(start + 7 * HOUR), Collect::Full);
    s.full_done(start + 7 * HOUR);
    assert_eq!(s.collection(start + 7 * HOUR + MIN), Collect::Nothing);
}

#[test]
fn lost_events_make_a_full_inventory_due_now() {
    let start = Instant::now();
    let mut s = schedule(false, start, lowest);
    s.full_done(start);
    s.events_lost(start + MIN);
    assert_eq!(s.collection(start + MIN), Collect::Full);
}

#[test]
fn backoff_grows_to_its_cap_and_a_success_resets_it() {
    let start = Instant::now();
    let mut s = schedule(false, start, highest);
    s.full_done(start);
    let mut waits = Vec::new();
    for _ in 0..12 {
        waits.push(s.send_failed(start).as_secs());
    }
    assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]);
    assert_eq!(s.failed_sends(), 12);
    assert_eq!(s.after_send(start), After::Wait(5 * MIN), "the retry bounds the wait");

    s.sent(false);
    assert_eq!(s.failed_sends(), 0);
    assert_eq!(s.send_failed(start), Duration::from_secs(2), "back to the first step");

    // Full jitter: anywhere from nothing to the cap.
    let mut low = schedule(false, start, lowest);
    assert_eq!(low.send_failed(start), Duration::ZERO);
    let mut real = Schedule::new(timing(), false, start);
    for failures in 1..40u32 {
        let wait = real.send_failed(start);
        assert!(wait <= real.backoff_cap(failures) && wait <= 5 * MIN, "{failures}: {wait:?}");
    }
    assert_eq!(real.backoff_cap(u32::MAX), 5 * MIN);
    let zero = Schedule::with_random(
        Timing { backoff_initial: Duration::ZERO, backoff_max: Duration::ZERO, ..timing() },
        false,
        start,
        highest,
    );
    assert_eq!(zero.backoff_cap(3), Duration::ZERO);
}

#[test]
fn a_retry_bounds_only_the_wait_that_follows_it() {
    let start = Instant::now();
    let mut s = schedule(false, start, highest);
    s.full_done(start);
    s.send_failed(start);
    assert_eq!(s.after_send(start), After::Wait(Duration::from_secs(2)));
    // Woken early by a file event, the next cycle sends; with nothing new it waits for the
    // schedule again.
    assert_eq!(s.after_send(start + Duration::from_secs(1)), After::Wait(5 * MIN - Duration::from_secs(1)));
}

#[test]
fn retry_after_is_waited_as_given_and_keeps_the_backoff_step() {
    let start = Instant::now();
    let mut s = schedule(false, start, highest);
    s.full_done(start);
    s.send_failed(start);
    s.send_failed(start);
    s.retry_after(start, Duration::from_secs(42));
    assert_eq!(s.after_send(start), After::Wait(Duration::from_secs(42)));
    assert_eq!(s.failed_sends(), 2);
    assert_eq!(s.send_failed(start), Duration::from_secs(8), "the third failure in a row");
}

#[test]
fn once_ends_only_when_everything_is_acknowledged() {
    let start = Instant::now();
    let mut s = schedule(true, start, lowest);
    assert_eq!(s.collection(start), Collect::Full);
    s.full_done(start);
    // Not enrolled or nothing sent yet: not done.
    assert_eq!(s.after_send(start), After::Wait(5 * MIN));
    // Rate-limited: wait as told, then send again.
    s.retry_after(start, Duration::from_secs(3));
    assert_eq!(s.after_send(start), After::Wait(Duration::from_secs(3)));
    assert_eq!(s.collection(start + Duration::from_secs(3)), Collect::Nothing);
    // Acknowledged, but the collector wants a snapshot: one more cycle.
    s.sent(true);
    assert_eq!(s.after_send(start + Duration::from_secs(3)), After::Again);
    assert_eq!(s.collection(start + Duration::from_secs(3)), Collect::Full);
    assert!(s.snapshot_due(false));
    s.spooled(true);
    s.full_done(start + Duration::from_secs(3));
    s.sent(false);
    assert_eq!(s.after_send(start + Duration::from_secs(4)), After::Done);
}

#[test]
fn a_failed_send_after_success_is_not_done() {
    let start = Instant::now();
    let mut s = schedule(true, start, lowest);
    s.full_done(start);
    s.sent(false);
    s.send_failed(start);
    assert_ne!(s.after_send(start), After::Done);
}

#[test]
fn snapshot_requests_run_a_full_inventory_at_once_and_are_spooled_as_snapshots() {
    let start = Instant::now();
    let mut s = schedule(false, start, lowest);
    s.full_done(start);
    s.spooled(true);
    s.sent(true);
    assert_eq!(s.after_send(start + MIN), After::Again, "no wait");
    assert_eq!(s.collection(start + MIN), Collect::Full, "before the full interval");
    assert!(s.snapshot_due(false));
    s.full_done(start + MIN);
    s.spooled(true);
    assert_eq!(s.collection(start + 2 * MIN), Collect::Nothing);
    s.sent(false);
    assert!(matches!(s.after_send(start + 2 * MIN), After::Wait(_)));
}

#[test]
fn every_nth_full_inventory_is_a_snapshot_and_lost_state_forces_one() {
    let start = Instant::now();
    let mut s = schedule(false, start, lowest);
    let mut kinds = Vec::new();
    for _ in 0..7 {
        let snapshot = s.snapshot_due(false);
        s.spooled(snapshot);
        kinds.push(snapshot);
    }
    // snapshot_every = 3: a snapshot, two deltas, a snapshot, …
    assert_eq!(kinds, [false, false, true, false, false, true, false]);
    assert!(s.snapshot_due(true), "the stores lost state");
    let every = Schedule::with_random(Timing { snapshot_every: 1, ..timing() }, false, start, lowest);
    assert!(every.snapshot_due(false));
}

#[test]
fn a_new_enrollment_sends_a_snapshot_at_once() {
    let start = Instant::now();
    let mut s = schedule(false, start, lowest);
    s.full_done(start);
    s.spooled(false);
    s.enrolled();
    assert_eq!(s.collection(start + MIN), Collect::Full, "before the full interval");
    assert!(s.snapshot_due(false), "whatever the stores remember");
}
