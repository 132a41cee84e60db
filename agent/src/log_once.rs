//! Messages a daemon would otherwise repeat every cycle ("no gpu inventory: libnvidia-ml.so.1
//! not found" every runtimes refresh): logged at their level once per process life for each
//! subject, and again only when what they say changes; the repeats go to DEBUG.
//!
//! Rules:
//! 1. a message is keyed by a topic (a constant naming the message) and a subject (a device
//!    index, a path; empty when the topic has one subject);
//! 2. [`is_new`] answers `true` the first time a key is seen and whenever its state (the
//!    message's changing part: a reason, an error) differs from the last one;
//! 3. at most [`MAX_KEYS`] keys are remembered; past that every message is new, so nothing is
//!    ever hidden for lack of room, only repeated.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, OnceLock};

/// Most keys remembered.
pub const MAX_KEYS: usize = 4096;

/// Last state (a hash of it) per key.
fn seen() -> &'static Mutex<HashMap<(&'static str, String), u64>> {
    static SEEN: OnceLock<Mutex<HashMap<(&'static str, String), u64>>> = OnceLock::new();
    SEEN.get_or_init(|| Mutex::new(HashMap::new()))
}

fn fingerprint(state: &str) -> u64 {
    static KEYS: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEYS.get_or_init(Default::default).hash_one(state)
}

/// Whether the message `topic` about `subject` saying `state` should be logged at its level
/// (see the module rules); `false` means it repeats the last one.
pub fn is_new(topic: &'static str, subject: &str, state: &str) -> bool {
    let print = fingerprint(state);
    let Ok(mut seen) = seen().lock() else { return true };
    match seen.get_mut(&(topic, subject.to_string())) {
        Some(last) if *last == print => false,
        Some(last) => {
            *last = print;
            true
        }
        None => {
            if seen.len() < MAX_KEYS {
                seen.insert((topic, subject.to_string()), print);
            }
            true
        }
    }
}

/// Logs at `$level` when [`is_new`], else at DEBUG: `log_once!(info, "topic", subject, state,
/// field = value, ..., "message")`.
#[macro_export]
macro_rules! log_once {
    ($level:ident, $topic:expr, $subject:expr, $state:expr, $($rest:tt)+) => {
        if $crate::log_once::is_new($topic, $subject, $state) {
            tracing::$level!($($rest)+);
        } else {
            tracing::debug!($($rest)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_new_once_and_again_when_it_changes() {
        assert!(is_new("test.topic", "", "no library"));
        assert!(!is_new("test.topic", "", "no library"));
        assert!(!is_new("test.topic", "", "no library"));
        assert!(is_new("test.topic", "", "driver not loaded"));
        assert!(!is_new("test.topic", "", "driver not loaded"));
        assert!(is_new("test.topic", "", "no library"));
        // Subjects and topics are apart.
        assert!(is_new("test.topic", "gpu 1", "no library"));
        assert!(is_new("test.other", "", "no library"));
    }

    #[test]
    fn past_the_bound_every_message_is_logged() {
        for i in 0..MAX_KEYS + 10 {
            is_new("test.flood", &i.to_string(), "x");
        }
        let last = (MAX_KEYS + 9).to_string();
        assert!(is_new("test.flood", &last, "x"));
        assert!(is_new("test.flood", &last, "x"), "a key past the bound was remembered");
    }
}
