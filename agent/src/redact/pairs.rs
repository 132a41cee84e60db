//! `name=value`, `name: value` and `Header: value` pairs anywhere inside a text (an argument,
//! a shell string, an environment value, JSON or YAML in a variable), and the word after
//! `Bearer` or `Basic`.

use super::names::{is_harmless_value, is_query_secret, is_secret_name};
use super::tokens::high_entropy;
use super::Spans;

/// Longest name looked at before a `=` or `:`.
const MAX_NAME: usize = 128;

/// Longest value of a header with a harmless name that is judged by its shape.
const MAX_HEADER_VALUE: usize = 512;

/// A header name: `Authorization`, `X-Api-Key`, `x-custom-token` (a capital or a dash).
fn looks_like_header(name: &str) -> bool {
    name.len() >= 2
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && (name.contains('-') || name.bytes().next().is_some_and(|b| b.is_ascii_uppercase()))
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Adds the values of secret-named pairs in `s` to `spans`.
pub(super) fn find(s: &str, spans: &mut Spans) {
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or(0);
        if b != b'=' && b != b':' {
            i += 1;
            continue;
        }
        let Some((name, name_start)) = name_before(s, i) else {
            i += 1;
            continue;
        };
        // After `?`, `&`, `#` or `;` a pair is a query or connection-string parameter.
        let context = name_start.checked_sub(1).and_then(|p| bytes.get(p)).copied();
        let in_query = matches!(context, Some(b'?' | b'&' | b'#' | b';'));
        let secret = secret_pair_name(name) || (in_query && b == b'=' && is_query_secret(name));
        let userinfo = b == b':' && s.get(..name_start).is_some_and(|before| before.ends_with("://"));
        if b == b':' && bytes.get(i + 1..i + 3) == Some(b"//") || userinfo {
            i += 1; // a URL or its user-info: their own rules
            continue;
        }
        // A header with any name whose value is a credential: `X-Custom: Bearer x`.
        let header = !secret && b == b':' && bytes.get(i + 1) == Some(&b' ') && looks_like_header(name);
        if !secret && !header {
            i += 1;
            continue;
        }
        let limit = if secret { usize::MAX } else { MAX_HEADER_VALUE };
        let (start, mut end) = value_after(s, i + 1, b == b':', limit);
        if s.get(start..end).is_some_and(is_auth_scheme) && bytes.get(end) == Some(&b' ') {
            // `authorization:Bearer x`: the scheme and its credential.
            end = value_after(s, end, false, limit).1;
        }
        let value = s.get(start..end).unwrap_or_default();
        let header_value = header && high_entropy_header(value);
        if end > start && ((secret && !is_harmless_value(value)) || header_value) {
            spans.add(start, end);
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    bearer(s, spans);
}

/// `-Dpassword` names `password`, a glued curl header `-HCookie` names `Cookie`; `--api-key`
/// names `api-key`.
pub(super) fn secret_pair_name(name: &str) -> bool {
    let bare = name.trim_start_matches('-');
    let java = (name.starts_with("-D") || name.starts_with("-H")) && !name.starts_with("--");
    let bare = if java { bare.get(1..).unwrap_or_default() } else { bare };
    // `PWD=/home/x` is the working directory.
    if bare == "PWD" || bare == "OLDPWD" {
        return false;
    }
    is_secret_name(bare)
}

/// The name that ends just before `s[at]` (a `=` or `:`), and where it starts: a run of name
/// characters, or a quoted name (`"api_key": …`, a subscript `['api_key'] = …`), a few spaces
/// allowed before the `=` or `:`.
fn name_before(s: &str, at: usize) -> Option<(&str, usize)> {
    let bytes = s.as_bytes();
    let mut end = at;
    while end > 0 && at - end < 8 && bytes.get(end - 1) == Some(&b' ') {
        end -= 1;
    }
    // A subscript: `os.environ['HF_TOKEN'] = …`, `$_ENV["API_KEY"]=…`.
    if end >= 2 && bytes.get(end - 1) == Some(&b']') && matches!(bytes.get(end - 2), Some(b'"' | b'\'')) {
        end -= 1;
    }
    let quote = end.checked_sub(1).and_then(|p| bytes.get(p)).copied().filter(|q| *q == b'"' || *q == b'\'');
    if let Some(q) = quote {
        let close = end - 1;
        let mut start = close;
        while start > 0 && close - start < MAX_NAME && bytes.get(start - 1).is_some_and(|b| *b != q) {
            start -= 1;
        }
        return s.get(start..close).filter(|n| !n.is_empty()).map(|n| (n, start));
    }
    let mut start = end;
    while start > 0 && end - start < MAX_NAME && bytes.get(start - 1).copied().is_some_and(is_name_byte) {
        start -= 1;
    }
    s.get(start..end).filter(|n| !n.is_empty()).map(|n| (n, start))
}

/// The value that starts at `s[from]` after a `=` or `:`: a quoted string to its closing quote,
/// `{…}` (connection strings) to its brace; after `: ` (a header or YAML) the rest of the line;
/// else up to whitespace, `;`, `&`, `,` (after a `:`) or a quote.
fn value_after(s: &str, from: usize, colon: bool, limit: usize) -> (usize, usize) {
    let bytes = s.as_bytes();
    let mut start = from;
    let spaced = colon && bytes.get(start) == Some(&b' ');
    while bytes.get(start) == Some(&b' ') || bytes.get(start) == Some(&b'\t') {
        start += 1;
    }
    match bytes.get(start).copied() {
        Some(q @ (b'"' | b'\'')) => {
            let mut end = start + 1;
            let mut escaped = false;
            while let Some(&b) = bytes.get(end) {
                if b == q && !escaped || end - start > limit {
                    return (start + 1, end);
                }
                escaped = b == b'\\' && !escaped;
                end += 1;
            }
            (start + 1, end)
        }
        Some(b'{') => {
            let end = s.get(start..).and_then(|r| r.find('}')).map_or(s.len(), |e| start + e + 1);
            (start, end)
        }
        _ => {
            let mut end = start;
            while let Some(&b) = bytes.get(end) {
                if end - start > limit {
                    break;
                }
                // `\"` inside a shell string is part of the value, not its end.
                let escaped_quote = matches!(b, b'"' | b'\'') && end > 0 && bytes.get(end - 1) == Some(&b'\\');
                let stop = !escaped_quote
                    && if spaced {
                        matches!(b, b'\n' | b'\r' | b'"' | b'\'')
                    } else {
                        b.is_ascii_whitespace()
                            || matches!(b, b';' | b'&' | b'"' | b'\'')
                            || (colon && matches!(b, b',' | b'}'))
                    };
                if stop {
                    break;
                }
                end += 1;
            }
            (start, end)
        }
    }
}

/// A header value that is a credential under any header name: `Bearer x`, `Basic x`, or a
/// random-looking word (`X-Custom-Key: 4f9c…`).
fn high_entropy_header(value: &str) -> bool {
    let mut words = value.split_whitespace();
    match (words.next(), words.next()) {
        (Some(scheme), Some(_)) if is_auth_scheme(scheme) => true,
        (Some(one), None) => high_entropy(one),
        _ => false,
    }
}

fn is_auth_scheme(word: &str) -> bool {
    ["bearer", "basic", "token", "digest", "apikey", "api-key", "negotiate", "ntlm", "aws4-hmac-sha256", "sharedkey"]
        .iter()
        .any(|s| word.eq_ignore_ascii_case(s))
}

/// The credential after `Bearer ` or `Basic ` wherever it appears (`-H "authorization:Bearer
/// x"`, a header string cut from its name).
fn bearer(s: &str, spans: &mut Spans) {
    for scheme in ["Bearer ", "bearer ", "BEARER ", "Basic ", "basic "] {
        let mut from = 0;
        while let Some(found) = s.get(from..).and_then(|r| r.find(scheme)) {
            let start = from + found + scheme.len();
            let bytes = s.as_bytes();
            let mut end = start;
            while bytes.get(end).is_some_and(|b| !b.is_ascii_whitespace() && !matches!(b, b'"' | b'\'' | b',')) {
                end += 1;
            }
            let word = s.get(start..end).unwrap_or_default();
            let basic = scheme.eq_ignore_ascii_case("basic ");
            let credential =
                if basic { word.len() >= 8 && (word.ends_with('=') || high_entropy(word)) } else { word.len() >= 6 };
            if credential {
                spans.add(start, end);
            }
            from = end.max(start);
        }
    }
}
