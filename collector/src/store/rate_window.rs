//! The per-agent rate-limit windows (collector/src/rate.rs) as one statement both backends run:
//! the windows live in the store, so every collector on it counts against the same ones.
//!
//! The statement counts the message and returns the window's start when the message fits
//! (or the window is over, and a new one starts with it); it changes nothing and returns no row
//! when the message is over either budget. The row is locked by the upsert, so two collectors
//! counting messages of one agent at once count them one after the other.

use super::types::{RateBudget, RateCharge};

/// Length of a window, in milliseconds.
pub const WINDOW_MS: i64 = 60_000;

/// The statement, with SQLite's `?N` placeholders: 1 agent id, 2 now, 3 messages, 4 bytes,
/// 5 message budget, 6 byte budget, 7 window length. A window is over when `now` is a whole
/// window after its start; a clock that went back does not end it. The budget tests subtract
/// (`used > budget - charge`), so no sum can overflow a column.
pub(crate) const ADMIT: &str = "INSERT INTO rate_windows (agent_id, window_start_ms, batches, bytes) \
     VALUES (?1, ?2, ?3, ?4) \
     ON CONFLICT (agent_id) DO UPDATE SET \
       window_start_ms = CASE WHEN ?2 - rate_windows.window_start_ms >= ?7 THEN ?2 \
           ELSE rate_windows.window_start_ms END, \
       batches = CASE WHEN ?2 - rate_windows.window_start_ms >= ?7 THEN ?3 ELSE rate_windows.batches + ?3 END, \
       bytes = CASE WHEN ?2 - rate_windows.window_start_ms >= ?7 THEN ?4 ELSE rate_windows.bytes + ?4 END \
     WHERE ?2 - rate_windows.window_start_ms >= ?7 \
       OR NOT ((?3 > 0 AND rate_windows.batches > ?5 - ?3) OR (rate_windows.bytes > 0 AND rate_windows.bytes > ?6 - ?4)) \
     RETURNING window_start_ms";

/// The start of the agent's window, read after a refusal to say how long to wait.
pub(crate) const WINDOW_START: &str = "SELECT window_start_ms FROM rate_windows WHERE agent_id = ?1";

/// The statement's parameters 2–7 for `charge` against `budget`, as the columns' integers (a
/// budget over `i64::MAX` is no limit either way).
pub(crate) fn parameters(charge: &RateCharge, budget: &RateBudget) -> [i64; 6] {
    let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    [
        charge.now_ms,
        i64::from(charge.messages),
        clamp(charge.bytes),
        i64::from(budget.messages_per_minute),
        clamp(budget.bytes_per_minute),
        WINDOW_MS,
    ]
}

/// How long the agent waits after a refusal: the rest of the window that started at `start_ms`.
pub(crate) fn wait_ms(start_ms: i64, now_ms: i64) -> i64 {
    (start_ms.saturating_add(WINDOW_MS).saturating_sub(now_ms)).clamp(0, WINDOW_MS)
}
