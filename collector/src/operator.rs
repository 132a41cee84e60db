//! What the operator commands print: token listings (`token list`, `api-token list`), one line
//! per token under a header, ids shown and secrets never (the store does not have them).
//!
//! Times are UTC RFC 3339 to the second, `-` when there is none. A token's state is the first
//! that holds of: `revoked`, `expired`, `spent` (enrollment tokens with no use left), `active`.

use std::time::{Duration, UNIX_EPOCH};

use crate::store::{ApiToken, EnrollmentToken, Scope};

/// `ms` (Unix milliseconds) as RFC 3339 UTC to the second, `-` for `None`.
pub fn time_text(ms: Option<i64>) -> String {
    match ms.and_then(|ms| u64::try_from(ms).ok()) {
        Some(ms) => humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_millis(ms)).to_string(),
        None => "-".into(),
    }
}

fn state(revoked_at_ms: Option<i64>, expires_at_ms: Option<i64>, spent: bool, now_ms: i64) -> &'static str {
    if revoked_at_ms.is_some() {
        "revoked"
    } else if expires_at_ms.is_some_and(|t| t <= now_ms) {
        "expired"
    } else if spent {
        "spent"
    } else {
        "active"
    }
}

/// `label` as one column: quoted when empty or holding blanks or control characters.
fn label_text(label: &str) -> String {
    if label.is_empty() || label.chars().any(|c| c.is_whitespace() || c.is_control()) {
        format!("{label:?}")
    } else {
        label.to_string()
    }
}

/// The `token list` table at `now_ms`.
pub fn enrollment_tokens_text(tokens: &[EnrollmentToken], now_ms: i64) -> String {
    let mut out =
        format!("{:<16}  {:<8}  {:<9}  {:<20}  {:<20}  LABEL\n", "ID", "STATE", "USES LEFT", "EXPIRES", "CREATED");
    for t in tokens {
        out.push_str(&format!(
            "{:<16}  {:<8}  {:<9}  {:<20}  {:<20}  {}\n",
            t.id,
            state(t.revoked_at_ms, Some(t.expires_at_ms), t.uses_left == 0, now_ms),
            t.uses_left,
            time_text(Some(t.expires_at_ms)),
            time_text(Some(t.created_at_ms)),
            label_text(&t.label),
        ));
    }
    out
}

/// The `api-token list` table at `now_ms`.
pub fn api_tokens_text(tokens: &[ApiToken], now_ms: i64) -> String {
    let mut out = format!(
        "{:<16}  {:<8}  {:<17}  {:<20}  {:<20}  {:<20}  LABEL\n",
        "ID", "STATE", "SCOPES", "EXPIRES", "LAST USED", "CREATED"
    );
    for t in tokens {
        let scopes: Vec<&str> = t.scopes.iter().map(|s| Scope::as_str(*s)).collect();
        out.push_str(&format!(
            "{:<16}  {:<8}  {:<17}  {:<20}  {:<20}  {:<20}  {}\n",
            t.id,
            state(t.revoked_at_ms, t.expires_at_ms, false, now_ms),
            scopes.join(","),
            time_text(t.expires_at_ms),
            time_text(t.last_used_at_ms),
            time_text(Some(t.created_at_ms)),
            label_text(&t.label),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enrollment_tokens_are_listed_with_their_state() {
        let token = |id: &str, uses_left, expires_at_ms, revoked_at_ms| EnrollmentToken {
            id: id.into(),
            label: "team ml".into(),
            uses_left,
            expires_at_ms,
            created_at_ms: 0,
            revoked_at_ms,
        };
        let day = 86_400_000;
        let text = enrollment_tokens_text(
            &[
                token("a1", 3, 2 * day, None),
                token("b2", 0, 2 * day, None),
                token("c3", 3, day / 2, None),
                token("d4", 0, day / 2, Some(1)),
            ],
            day,
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(lines[0].starts_with("ID                STATE     USES LEFT  EXPIRES"), "{text}");
        assert_eq!(
            lines[1],
            "a1                active    3          1970-01-03T00:00:00Z  1970-01-01T00:00:00Z  \"team ml\""
        );
        let states: Vec<&str> = lines[1..].iter().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
        assert_eq!(states, ["active", "spent", "expired", "revoked"]);
    }

    #[test]
    fn api_tokens_are_listed_with_scopes_expiry_and_last_use() {
        let token = ApiToken {
            id: "0123456789abcdef".into(),
            label: "cmdb".into(),
            scopes: vec![Scope::Read, Scope::Export],
            created_at_ms: 0,
            expires_at_ms: None,
            last_used_at_ms: Some(61_000),
            revoked_at_ms: None,
        };
        let text = api_tokens_text(&[token], 100_000);
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "0123456789abcdef  active    read,export        -                     1970-01-01T00:01:01Z  \
             1970-01-01T00:00:00Z  cmdb"
        );
        assert_eq!(time_text(None), "-");
    }
}
