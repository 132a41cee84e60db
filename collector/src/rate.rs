//! The per-agent rate limit on batches, and the same windows as a log limiter
//! ([`LogLimiter`]: one line per key per minute). The rate limit: fixed one-minute windows keyed by agent id and shared
//! by every stream of the agent on this collector, so reconnecting does not reset it. With
//! several collectors behind a load balancer each enforces it on its own (an agent holds one
//! stream at a time, so in practice it meets one).
//!
//! Memory: one entry per agent seen in the last minute; entries of finished windows are swept
//! at most once per window.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Length of a window.
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Windows {
    /// Start of each agent's window and the batches admitted in it.
    by_agent: HashMap<String, (Instant, u32)>,
    /// When finished windows were last dropped.
    last_sweep: Instant,
}

/// Admits at most `per_minute` batches per agent per window (module docs).
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<Windows>,
}

impl RateLimiter {
    /// A limiter of `per_minute` batches per agent per minute.
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute, windows: Mutex::new(Windows { by_agent: HashMap::new(), last_sweep: Instant::now() }) }
    }

    /// Counts one batch of `agent_id` at `now`; over the limit, the wait until its window ends.
    pub fn admit(&self, agent_id: &str, now: Instant) -> Result<(), Duration> {
        let mut w = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_duration_since(w.last_sweep) >= WINDOW {
            w.by_agent.retain(|_, (start, _)| now.saturating_duration_since(*start) < WINDOW);
            w.last_sweep = now;
        }
        let entry = w.by_agent.entry(agent_id.to_owned()).or_insert((now, 0));
        if now.saturating_duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            return Err(WINDOW.saturating_sub(now.saturating_duration_since(entry.0)));
        }
        entry.1 += 1;
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
        Self(RateLimiter::new(1))
    }
}

impl LogLimiter {
    /// Whether a line about `key` may be written now (the first in its minute).
    pub fn first_in_window(&self, key: &str) -> bool {
        self.0.admit(key, Instant::now()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_per_agent_and_per_window_whatever_the_stream() {
        let limiter = RateLimiter::new(2);
        let t0 = Instant::now();
        assert_eq!(limiter.admit("a", t0), Ok(()));
        assert_eq!(limiter.admit("a", t0 + Duration::from_secs(1)), Ok(()));
        // A third batch in the window, on this stream or a new one, waits for the window's end.
        assert_eq!(limiter.admit("a", t0 + Duration::from_secs(10)), Err(Duration::from_secs(50)));
        assert_eq!(limiter.admit("b", t0 + Duration::from_secs(10)), Ok(()), "another agent has its own window");
        assert_eq!(limiter.admit("a", t0 + WINDOW), Ok(()), "a new window");
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
        let limiter = RateLimiter::new(5);
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(limiter.admit(&format!("agent-{i}"), t0).is_ok());
        }
        assert_eq!(limiter.tracked(), 100);
        assert!(limiter.admit("late", t0 + WINDOW + Duration::from_secs(1)).is_ok());
        assert_eq!(limiter.tracked(), 1);
    }
}
