//! The per-agent rate limit, and the in-memory windows of the log limiter ([`LogLimiter`]: one
//! line per key per minute).
//!
//! The rate limit: in fixed one-minute windows keyed by agent id, at most so many messages
//! (batches, and every `Hello` after the first of a stream) and so many bytes of them (every
//! message, `Hello`s included, so reconnecting is not free). The windows live in the store
//! (`Store::admit_message`, `store/rate_window.rs`), so every stream of the agent counts against
//! the same window on every collector on that store: neither reconnecting nor moving to another
//! replica resets it.
//!
//! A message over either budget is not applied: the stream ends with `RetryAfterMs` (the rest
//! of the window) and the agent resends from its first unacknowledged batch.
//!
//! The log limiter's windows are this collector's own, in memory (a log line is per replica):
//! one entry per key seen in the last minute; entries of finished windows are swept at most once
//! per window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of a window.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What one agent used in its current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the window started.
    start: Instant,
    /// Messages admitted in it.
    messages: u32,
    /// Bytes of the messages admitted in it.
    bytes: u64,
}

#[derive(Debug)]
struct Windows {
    /// Each agent's current window.
    by_agent: HashMap<String, Window>,
    /// When finished windows were last dropped.
    last_sweep: Instant,
}

/// Admits at most `per_minute` messages and `bytes_per_minute` bytes per key per window, in
/// memory (module docs).
#[derive(Debug)]
struct RateLimiter {
    /// Messages per agent per window.
    per_minute: u32,
    /// Bytes per agent per window.
    bytes_per_minute: u64,
    /// The windows, behind one lock (a lookup and an add).
    windows: Mutex<Windows>,
}

impl RateLimiter {
    /// A limiter of `per_minute` messages and `bytes_per_minute` bytes per agent per minute.
    fn new(per_minute: u32, bytes_per_minute: u64) -> Self {
        Self {
            per_minute,
            bytes_per_minute,
            windows: Mutex::new(Windows { by_agent: HashMap::new(), last_sweep: Instant::now() }),
        }
    }

    /// Counts `messages` (0 or 1) of `bytes` from `agent_id` at `now`; over either budget, the
    /// wait until its window ends. A message larger than the whole byte budget is admitted alone
    /// in a fresh window, so it is slowed, never refused forever.
    fn admit(&self, agent_id: &str, now: Instant, messages: u32, bytes: u64) -> Result<(), Duration> {
        let mut w = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_duration_since(w.last_sweep) >= WINDOW {
            w.by_agent.retain(|_, window| now.saturating_duration_since(window.start) < WINDOW);
            w.last_sweep = now;
        }
        let window = w.by_agent.entry(agent_id.to_owned()).or_insert(Window { start: now, messages: 0, bytes: 0 });
        if now.saturating_duration_since(window.start) >= WINDOW {
            *window = Window { start: now, messages: 0, bytes: 0 };
        }
        let over_bytes = window.bytes > 0 && window.bytes.saturating_add(bytes) > self.bytes_per_minute;
        let over_messages = messages > 0 && window.messages.saturating_add(messages) > self.per_minute;
        if over_messages || over_bytes {
            return Err(WINDOW.saturating_sub(now.saturating_duration_since(window.start)));
        }
        window.messages = window.messages.saturating_add(messages);
        window.bytes = window.bytes.saturating_add(bytes);
        Ok(())
    }

    /// Keys with an entry.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.windows.lock().map(|w| w.by_agent.len()).unwrap_or(0)
    }
}

/// One log line per key (a peer, an agent) per minute: a [`RateLimiter`] of one per window,
/// so a peer failing in a loop costs a line a minute, not a line per attempt.
#[derive(Debug)]
pub struct LogLimiter(RateLimiter);

impl Default for LogLimiter {
    fn default() -> Self {
        Self(RateLimiter::new(1, u64::MAX))
    }
}

impl LogLimiter {
    /// Whether a line about `key` may be written now (the first in its minute).
    pub fn first_in_window(&self, key: &str) -> bool {
        self.0.admit(key, Instant::now(), 1, 0).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_agent_and_per_window_whatever_the_stream() {
        let limiter = RateLimiter::new(2, u64::MAX);
        let t0 = Instant::now();
        assert_eq!(limiter.admit("a", t0, 1, 1), Ok(()));
        assert_eq!(limiter.admit("a", t0 + Duration::from_secs(1), 1, 1), Ok(()));
        // A third batch in the window, on this stream or a new one, waits for the window's end.
        assert_eq!(limiter.admit("a", t0 + Duration::from_secs(10), 1, 1), Err(Duration::from_secs(50)));
        assert_eq!(limiter.admit("b", t0 + Duration::from_secs(10), 1, 1), Ok(()), "another agent has its own window");
        assert_eq!(limiter.admit("a", t0 + WINDOW, 1, 1), Ok(()), "a new window");
    }

    #[test]
    fn a_log_limiter_lets_one_line_per_key_per_minute() {
        let limiter = LogLimiter::default();
        assert!(limiter.first_in_window("10.0.0.1"));
        assert!(!limiter.first_in_window("10.0.0.1"));
        assert!(limiter.first_in_window("10.0.0.2"));
    }

    #[test]
    fn finished_windows_are_swept() {
        let limiter = RateLimiter::new(5, u64::MAX);
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(limiter.admit(&format!("agent-{i}"), t0, 1, 1).is_ok());
        }
        assert_eq!(limiter.tracked(), 100);
        assert!(limiter.admit("late", t0 + WINDOW + Duration::from_secs(1), 1, 1).is_ok());
        assert_eq!(limiter.tracked(), 1);
    }

    #[test]
    fn bytes_are_budgeted_per_window_too() {
        let limiter = RateLimiter::new(1_000, 1_000);
        let t0 = Instant::now();
        assert_eq!(limiter.admit("a", t0, 1, 600), Ok(()));
        assert_eq!(limiter.admit("a", t0 + Duration::from_secs(5), 1, 600), Err(Duration::from_secs(55)));
        assert_eq!(limiter.admit("a", t0 + Duration::from_secs(5), 1, 400), Ok(()), "what fits still passes");
        assert_eq!(limiter.admit("b", t0, 1, 900), Ok(()), "another agent has its own budget");
        // A message larger than the whole budget waits for a fresh window and then passes alone.
        assert!(limiter.admit("c", t0, 1, 10).is_ok());
        assert_eq!(limiter.admit("c", t0, 1, 5_000), Err(WINDOW));
        assert_eq!(limiter.admit("c", t0 + WINDOW, 1, 5_000), Ok(()));
        assert!(limiter.admit("c", t0 + WINDOW, 1, 1).is_err());
        // What counts no message still counts its bytes.
        let hellos = RateLimiter::new(1, 100);
        assert_eq!(hellos.admit("d", t0, 0, 60), Ok(()));
        assert_eq!(hellos.admit("d", t0, 1, 30), Ok(()));
        assert!(hellos.admit("d", t0, 0, 20).is_err(), "over the bytes");
        assert!(hellos.admit("d", t0, 1, 1).is_err(), "over the messages");
    }
}
