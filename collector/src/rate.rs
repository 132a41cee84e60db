//! The per-agent rate limit, and the log limiter ([`LogLimiter`]: one line per key per minute).
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

/// Length of a log limiter's window.
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Windows {
    /// When each key's current window started.
    started: HashMap<String, Instant>,
    /// When finished windows were last dropped.
    last_sweep: Instant,
}

/// One log line per key (a peer, an agent) per minute, so a peer failing in a loop costs a line
/// a minute, not a line per attempt.
#[derive(Debug)]
pub struct LogLimiter(Mutex<Windows>);

impl Default for LogLimiter {
    fn default() -> Self {
        Self(Mutex::new(Windows { started: HashMap::new(), last_sweep: Instant::now() }))
    }
}

impl LogLimiter {
    /// Whether a line about `key` may be written now (the first in its minute).
    pub fn first_in_window(&self, key: &str) -> bool {
        self.first_at(key, Instant::now())
    }

    /// Whether `now` opens a new window for `key` (and opens it).
    fn first_at(&self, key: &str, now: Instant) -> bool {
        let mut w = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_duration_since(w.last_sweep) >= WINDOW {
            w.started.retain(|_, start| now.saturating_duration_since(*start) < WINDOW);
            w.last_sweep = now;
        }
        match w.started.get_mut(key) {
            Some(start) if now.saturating_duration_since(*start) < WINDOW => false,
            Some(start) => {
                *start = now;
                true
            }
            None => {
                w.started.insert(key.to_owned(), now);
                true
            }
        }
    }

    /// Keys with an entry.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.0.lock().map(|w| w.started.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_limiter_lets_one_line_per_key_per_minute() {
        let limiter = LogLimiter::default();
        assert!(limiter.first_in_window("10.0.0.1"));
        assert!(!limiter.first_in_window("10.0.0.1"));
        assert!(limiter.first_in_window("10.0.0.2"));
        let t0 = Instant::now();
        assert!(limiter.first_at("k", t0));
        assert!(!limiter.first_at("k", t0 + Duration::from_secs(10)));
        assert!(limiter.first_at("k", t0 + WINDOW), "a new window");
    }

    #[test]
    fn finished_windows_are_swept() {
        let limiter = LogLimiter::default();
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(limiter.first_at(&format!("agent-{i}"), t0));
        }
        assert_eq!(limiter.tracked(), 100);
        assert!(limiter.first_at("late", t0 + WINDOW + Duration::from_secs(1)));
        assert_eq!(limiter.tracked(), 1);
    }
}
