//! URLs anywhere in a text: user-info, secret query and fragment parameters, and the secret
//! part of the path of well-known webhook and bot URLs.

use super::names::is_query_secret;
use super::tokens::{high_entropy, looks_like_token};
use super::Spans;

/// Most URLs looked at in one text.
const MAX_URLS: usize = 256;

/// Where a URL ends: whitespace, quotes, angle brackets, backticks.
fn ends_url(b: u8) -> bool {
    b.is_ascii_whitespace() || matches!(b, b'"' | b'\'' | b'<' | b'>' | b'`' | b'|' | b'\\')
}

/// Adds the secret parts of every URL (`scheme://…`) in `s` to `spans`.
pub(super) fn find(s: &str, spans: &mut Spans) {
    let bytes = s.as_bytes();
    let mut from = 0;
    let mut seen = 0;
    while let Some(found) = s.get(from..).and_then(|rest| rest.find("://")) {
        seen += 1;
        if seen > MAX_URLS {
            // Bounded work: past this many URLs in one text, the rest is hidden.
            spans.add(from + found, s.len());
            return;
        }
        let sep = from + found;
        let start = sep + 3;
        let mut end = start;
        while bytes.get(end).copied().is_some_and(|b| !ends_url(b)) {
            end += 1;
        }
        // A scheme: letters, digits, `+`, `-`, `.` before `://` (`jdbc:postgresql://` too).
        let scheme_ok = sep > 0 && bytes.get(sep - 1).is_some_and(u8::is_ascii_alphanumeric);
        if scheme_ok && end > start {
            one(s, start, end, spans);
        }
        // From just after `://`, so a URL inside another's query is looked at too.
        from = start;
    }
}

/// Longest `user:password` looked at before an `@` outside a URL.
const MAX_BARE_USERINFO: usize = 256;

/// Adds the passwords of `user:password@host` outside a URL (Go's MySQL DSN
/// `user:pw@tcp(db:3306)/app`, `postgres:pw@db:5432`) to `spans`: the word before an `@`
/// that holds a `:` after a user name, when a host follows.
pub(super) fn find_bare(s: &str, spans: &mut Spans) {
    let bytes = s.as_bytes();
    let mut from = 0;
    while let Some(found) = s.get(from..).and_then(|r| r.find('@')) {
        let at = from + found;
        from = at + 1;
        let host_follows = bytes.get(at + 1).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'[');
        // `image:tag@sha256:…` names a container image by digest.
        let digest = s.get(at + 1..).is_some_and(|r| r.starts_with("sha256:") || r.starts_with("sha512:"));
        if !host_follows || digest {
            continue;
        }
        let mut start = at;
        while start > 0
            && at - start < MAX_BARE_USERINFO
            && bytes
                .get(start - 1)
                .is_some_and(|b| !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\'' | b'=' | b'@'))
        {
            start -= 1;
        }
        let word = s.get(start..at).unwrap_or_default();
        if word.contains("://") {
            continue; // a URL's user-info: `find` has it
        }
        let Some((user, password)) = word.split_once(':') else { continue };
        let user_ok =
            !user.is_empty() && user.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if user_ok && !password.is_empty() {
            spans.add(start + user.len() + 1, at);
        }
    }
}

/// The parts of the URL `s[start..end]` (after `://`).
fn one(s: &str, start: usize, end: usize, spans: &mut Spans) {
    let Some(rest) = s.get(start..end) else { return };
    let host_start = match userinfo_end(rest) {
        Some(at) => {
            spans.add(start, start + at);
            at + 1
        }
        None => 0,
    };
    let after_host = rest.get(host_start..).unwrap_or_default();
    let path_start = host_start + after_host.find(['/', '?', '#']).unwrap_or(after_host.len());
    let host = rest.get(host_start..path_start).unwrap_or_default();
    let tail = rest.get(path_start..).unwrap_or_default();
    let query_at = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = tail.get(..query_at).unwrap_or_default();
    if let Some(off) = secret_path(host, path) {
        spans.add(start + path_start + off, start + path_start + query_at);
    }
    // Query and fragment: `name=value` pairs separated by `&` or `;`.
    let params_start = start + path_start + query_at;
    params(s, params_start, end, spans);
}

/// Where the user-info of `rest` (a URL after `://`) ends (the `@`), if it has one. The
/// user-info ends at the last `@` before the path, and a password may hold `/`, `?`, `#`, `@`
/// or `%`-escapes: the last `@` of the URL begins the host when what comes before it is
/// `user:password` (a user without `/`, `?`, `#`, and no port after the colon); otherwise the
/// last `@` before the first `/`, `?` or `#`.
fn userinfo_end(rest: &str) -> Option<usize> {
    if let Some(at) = rest.rfind('@') {
        let before = rest.get(..at).unwrap_or_default();
        if let Some((user, password)) = before.split_once(':') {
            let user_ok = !user.contains(['/', '?', '#']);
            let port = password.split(['/', '?', '#']).next().unwrap_or_default();
            // `host:8080/path?email=a@b`: a port, and the `@` in the query. Otherwise a
            // password that begins with digits and holds a `/` is still a password.
            let is_port = !port.is_empty()
                && port.len() <= 5
                && port.bytes().all(|b| b.is_ascii_digit())
                && password.get(port.len()..).is_some_and(|rest| rest.contains(['?', '#']));
            if user_ok && !is_port {
                return Some(at);
            }
        }
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority.rfind('@')
}

/// Hosts whose URL paths hold a secret, and the path segment after which it starts.
const WEBHOOKS: &[(&str, &str)] = &[
    ("hooks.slack.com", "services"),
    ("hooks.slack.com", "workflows"),
    ("hooks.slack.com", "triggers"),
    ("discord.com", "webhooks"),
    ("discordapp.com", "webhooks"),
    ("ptb.discord.com", "webhooks"),
    ("canary.discord.com", "webhooks"),
    ("outlook.office.com", "webhook"),
    ("outlook.office.com", "webhookb2"),
    ("outlook.office365.com", "webhook"),
    ("hooks.zapier.com", "catch"),
    ("maker.ifttt.com", "key"),
    ("api.pushover.net", "token"),
];

/// Where the secret part of `path` (from its leading `/`) starts for a webhook or bot URL on
/// `host`: Slack and Discord webhooks, Teams connectors (`*.webhook.office.com`), Telegram
/// bots (`/bot<token>/`), Zapier and IFTTT hooks; else a segment after `hooks`, `webhook(s)`
/// or `webhookb2` that looks random.
fn secret_path(host: &str, path: &str) -> Option<usize> {
    let host =
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
    let host = host.to_ascii_lowercase();
    let mut offset = 0;
    let mut previous = "";
    let mut segments = Vec::new();
    for segment in path.split('/') {
        segments.push((offset, segment));
        offset += segment.len() + 1;
    }
    for (off, segment) in segments {
        if host == "api.telegram.org" && segment.len() > 3 && segment.starts_with("bot") {
            return Some(off);
        }
        let known = WEBHOOKS.iter().any(|(h, after)| host == *h && previous.eq_ignore_ascii_case(after));
        let teams = host.ends_with(".webhook.office.com") && previous.eq_ignore_ascii_case("webhookb2");
        let hook_word =
            matches!(previous.to_ascii_lowercase().as_str(), "hooks" | "webhook" | "webhooks" | "webhookb2");
        let random = high_entropy(segment) || looks_like_token(segment) || segment.len() >= 32;
        if !segment.is_empty() && (known || teams || (hook_word && random)) {
            return Some(off);
        }
        previous = segment;
    }
    None
}

/// The values of secret parameters in `s[start..end]`, a URL's query and fragment
/// (`?a=1&token=x#access_token=y`).
fn params(s: &str, start: usize, end: usize, spans: &mut Spans) {
    let Some(text) = s.get(start..end) else { return };
    let mut offset = 0;
    for part in text.split(['?', '&', '#', ';']) {
        if let Some((name, value)) = part.split_once('=') {
            let value_start = start + offset + name.len() + 1;
            if !value.is_empty() && (is_query_secret(name) || looks_like_token(value)) {
                spans.add(value_start, value_start + value.len());
            }
        }
        offset += part.len() + 1;
    }
}
