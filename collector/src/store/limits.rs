//! Bounds on what one agent can make the collector hold, whatever it sends (a compromised
//! endpoint is an enrolled agent).
//!
//! Pure code shared by every backend and by ingest, like the identity rules:
//! 1. **Per batch** ([`MAX_ENTRIES_PER_BATCH`] upserts plus removals): a larger batch is refused
//!    whole with `INVALID_ARGUMENT` before anything of it is stored (agents send at most
//!    `transport.batch_max_assets`, 500 by default). The gRPC layer bounds the message itself
//!    (8 MiB) and the per-agent rate limiter its bytes per minute.
//! 2. **Per entry** ([`check_entry`]): a local key of at most [`MAX_LOCAL_KEY_BYTES`], an entry
//!    JSON of at most [`MAX_ENTRY_JSON_BYTES`] nested at most [`MAX_JSON_DEPTH`] deep, a location
//!    (path or environment) of at most [`MAX_LOCATION_BYTES`]. An entry over a bound is rejected
//!    alone with its reason, like an entry without an identity; the rest of the batch is stored.
//! 3. **Host facts** ([`check_host`]): hostname, machine fingerprint and facts JSON bounded; facts
//!    over a bound are not stored (the previous ones stay) and the batch goes on.
//! 4. **Per agent**: at most [`MAX_LIVE_SIGHTINGS_PER_ASSET`] live sightings of one asset, and at
//!    most the configured stored bytes of sightings (`agents.max_stored_bytes`); upserts that
//!    would go beyond are rejected, updates of what is stored and removals still apply, so the
//!    agent's stream goes on.
//! 5. **Sequences**: a batch more than [`MAX_SEQUENCE_JUMP`] ahead of the agent's last applied
//!    one is refused without being stored, so one forged sequence cannot make every later batch
//!    of the agent look already applied.
//! 6. **Reads**: a page of the API holds at most [`MAX_PAGE_BYTES`] of rows, whatever the limit
//!    asked for; the cursor continues after the last row returned.

/// Most upserts plus removals in one batch.
pub const MAX_ENTRIES_PER_BATCH: usize = 10_000;
/// Longest local key, in bytes.
pub const MAX_LOCAL_KEY_BYTES: usize = 4 * 1024;
/// Longest entry JSON, in bytes.
pub const MAX_ENTRY_JSON_BYTES: usize = 256 * 1024;
/// Deepest nesting of arrays and objects in an entry or in host facts.
pub const MAX_JSON_DEPTH: usize = 32;
/// Longest location (path or environment), in bytes.
pub const MAX_LOCATION_BYTES: usize = 4 * 1024;
/// Longest hostname, in bytes (a DNS name is at most 253).
pub const MAX_HOSTNAME_BYTES: usize = 255;
/// Longest machine fingerprint, in bytes (agents send 64 hex digits).
pub const MAX_FINGERPRINT_BYTES: usize = 128;
/// Longest agent version, in bytes.
pub const MAX_VERSION_BYTES: usize = 64;
/// Bytes of an update report's detail kept (longer ones are cut).
pub const MAX_UPDATE_DETAIL_BYTES: usize = 512;
/// Longest host facts JSON, in bytes.
pub const MAX_HOST_FACTS_BYTES: usize = 1024 * 1024;
/// Most live sightings one agent may hold of one asset (one model copied to many paths).
pub const MAX_LIVE_SIGHTINGS_PER_ASSET: u64 = 1_000;
/// Furthest a batch's sequence may be ahead of the agent's last applied one. Honest gaps come
/// from batches the agent's spool compacted away; at the agents' rate limit (600 a minute) this
/// is weeks of batches.
pub const MAX_SEQUENCE_JUMP: u64 = 1 << 24;
/// Most bytes of rows in one page of the API.
pub const MAX_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// What one agent may make the store keep (rule 4), set by the collector's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgentQuota {
    /// Most bytes of sightings (entry JSON, local keys, locations, removed ones included) one
    /// agent may make the store keep (`agents.max_stored_bytes`).
    pub max_stored_bytes: u64,
}

impl Default for AgentQuota {
    fn default() -> Self {
        Self { max_stored_bytes: 256 * 1024 * 1024 }
    }
}

/// Why an entry is over a bound (rule 2), or `Ok`.
pub fn check_entry(local_key: &str, json: &str) -> Result<(), String> {
    if local_key.len() > MAX_LOCAL_KEY_BYTES {
        return Err(format!("local key of {} bytes is over {MAX_LOCAL_KEY_BYTES}", local_key.len()));
    }
    if json.len() > MAX_ENTRY_JSON_BYTES {
        return Err(format!("entry json of {} bytes is over {MAX_ENTRY_JSON_BYTES}", json.len()));
    }
    if !depth_within(json, MAX_JSON_DEPTH) {
        return Err(format!("entry json nests deeper than {MAX_JSON_DEPTH}"));
    }
    Ok(())
}

/// Why a location is over its bound (rule 2), or `Ok`.
pub fn check_location(location: &str) -> Result<(), String> {
    if location.len() > MAX_LOCATION_BYTES {
        return Err(format!("location of {} bytes is over {MAX_LOCATION_BYTES}", location.len()));
    }
    Ok(())
}

/// Why host facts are over a bound (rule 3), or `Ok`.
pub fn check_host(hostname: &str, machine_fingerprint: &str, json: &str) -> Result<(), String> {
    if hostname.len() > MAX_HOSTNAME_BYTES {
        return Err(format!("hostname of {} bytes is over {MAX_HOSTNAME_BYTES}", hostname.len()));
    }
    if machine_fingerprint.len() > MAX_FINGERPRINT_BYTES {
        return Err(format!(
            "machine fingerprint of {} bytes is over {MAX_FINGERPRINT_BYTES}",
            machine_fingerprint.len()
        ));
    }
    if json.len() > MAX_HOST_FACTS_BYTES {
        return Err(format!("host facts of {} bytes are over {MAX_HOST_FACTS_BYTES}", json.len()));
    }
    if !depth_within(json, MAX_JSON_DEPTH) {
        return Err(format!("host facts nest deeper than {MAX_JSON_DEPTH}"));
    }
    Ok(())
}

/// Whether the arrays and objects of `json` nest at most `max` deep. A scan of the bytes, so it
/// answers before a parser recurses; text that is not JSON is left to the parser.
pub fn depth_within(json: &str, max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in json.as_bytes() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return false;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert!(depth_within(r#"{"a":[{"b":1}]}"#, 3));
        assert!(!depth_within(r#"{"a":[{"b":1}]}"#, 2));
        assert!(depth_within(r#"{"a":"[[[[[[{{{{"}"#, 1), "brackets in a string do not nest");
        assert!(depth_within(r#"{"a":"\"[[[["}"#, 1), "an escaped quote does not end the string");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(!depth_within(&deep, MAX_JSON_DEPTH));
    }

    #[test]
    fn entries_over_a_bound_say_which() {
        assert_eq!(check_entry("/m/a.gguf", r#"{"path":"/m/a.gguf"}"#), Ok(()));
        let long_key = "k".repeat(MAX_LOCAL_KEY_BYTES + 1);
        assert!(check_entry(&long_key, "{}").unwrap_err().starts_with("local key of 4097 bytes"));
        let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(MAX_ENTRY_JSON_BYTES));
        assert!(check_entry("k", &big).unwrap_err().contains("entry json of"));
        let deep = format!(r#"{{"a":{}1{}}}"#, "[".repeat(40), "]".repeat(40));
        assert!(check_entry("k", &deep).unwrap_err().contains("deeper than 32"));
        assert!(check_location(&"/".repeat(MAX_LOCATION_BYTES + 1)).is_err());
        assert!(check_host(&"h".repeat(4 << 20), "f", "{}").unwrap_err().starts_with("hostname of"));
        assert!(check_host("h", &"f".repeat(200), "{}").is_err());
        assert_eq!(check_host("gpu-07", &"f".repeat(64), r#"{"hostname":"gpu-07"}"#), Ok(()));
    }
}
