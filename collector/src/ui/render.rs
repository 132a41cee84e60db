//! The pieces every page is made of: the layout, values from the API's JSON, times, badges and
//! the pager. maud escapes every value it inserts (text and attributes alike), so an agent's
//! string is text on the page whatever it holds; nothing here builds markup from strings.

use maud::{html, Markup, DOCTYPE};
use serde_json::Value;

use super::session::Session;

/// The sections of the navigation: path, label.
const NAV: [(&str, &str); 6] = [
    ("/ui/", "Overview"),
    ("/ui/findings", "Findings"),
    ("/ui/models", "Models"),
    ("/ui/hosts", "Hosts"),
    ("/ui/graph", "Graph"),
    ("/ui/exports", "Exports"),
];

/// A whole page: `title`, the navigation with `active` marked, the sign-out form when signed in,
/// and `body`.
pub fn page(title: &str, active: &str, session: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · aiscout" }
                link rel="stylesheet" href="/ui/static/style.css";
                link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml";
                script src="/ui/static/app.js" defer {}
            }
            body {
                header.top {
                    a.brand href="/ui/" { "aiscout" }
                    @if session.is_some() {
                        nav {
                            @for (path, label) in NAV {
                                a href=(path) class=[(path == active).then_some("active")] { (label) }
                            }
                        }
                    }
                    @if let Some(s) = session {
                        form.signout method="post" action="/ui/logout" {
                            input type="hidden" name="csrf" value=(s.csrf);
                            button type="submit" data-test="sign-out" { "Sign out" }
                        }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// The text of a JSON value for a cell: a string as it is, a number or boolean written, `—` for
/// null or absent, a list joined with commas.
pub fn text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => {
            let parts: Vec<String> = items.iter().map(|i| text(Some(i))).collect();
            if parts.is_empty() {
                "—".into()
            } else {
                parts.join(", ")
            }
        }
        Some(other) => other.to_string(),
    }
}

/// [`text`] of `v` at the JSON pointer `at`.
pub fn at(v: &Value, at: &str) -> String {
    text(v.pointer(at))
}

/// The string at `at`, if it is one.
pub fn str_at<'v>(v: &'v Value, at: &str) -> Option<&'v str> {
    v.pointer(at).and_then(Value::as_str)
}

/// The array at `at` (empty when absent or not an array).
pub fn list_at<'v>(v: &'v Value, at: &str) -> &'v [Value] {
    v.pointer(at).and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

/// The number at `at` (0 when absent).
pub fn num_at(v: &Value, at: &str) -> u64 {
    v.pointer(at).and_then(Value::as_u64).unwrap_or(0)
}

/// A time in ms as `<time>`: UTC text, the machine-readable value for the page's script to show
/// in the reader's time zone.
pub fn time(ms: Option<i64>) -> Markup {
    match ms {
        Some(ms) => {
            let iso = crate::rfc3339_seconds(ms);
            let shown = iso.replacen('T', " ", 1).replace('Z', " UTC");
            html! { time datetime=(iso) { (shown) } }
        }
        None => html! { "—" },
    }
}

/// The time at `at` of `v`.
pub fn time_at(v: &Value, at: &str) -> Markup {
    time(v.pointer(at).and_then(Value::as_i64))
}

/// A severity as a coloured badge.
pub fn severity(s: &str) -> Markup {
    let class = if crate::findings::SEVERITIES.contains(&s) { s } else { "unknown" };
    html! { span class={ "badge sev-" (class) } { (s) } }
}

/// A verdict as a coloured badge.
pub fn verdict(v: Option<&str>) -> Markup {
    let v = v.unwrap_or("unknown");
    let class = match v {
        "dangerous" | "suspicious" | "safe" => v,
        _ => "unknown",
    };
    html! { span class={ "badge verdict-" (class) } { (v) } }
}

/// A byte count, in binary units.
pub use aiscout_proto::human_bytes as bytes;

/// A path segment, percent-encoded but for the unreserved characters (as a purl segment is).
pub fn segment(s: &str) -> String {
    aiscout_proto::bom::purl_encode(s)
}

/// `path?query` of the non-empty `params`.
pub fn link(path: &str, params: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = params.iter().copied().filter(|(_, v)| !v.is_empty()).collect();
    match serde_urlencoded::to_string(&kept) {
        Ok(q) if !q.is_empty() => format!("{path}?{q}"),
        _ => path.to_string(),
    }
}

/// The line under a table: how many of how many, and the next page's link.
pub fn pager(path: &str, params: &[(&str, &str)], page: &Value) -> Markup {
    let shown = page.get("items").and_then(Value::as_array).map_or(0, Vec::len);
    let total = num_at(page, "/total");
    let first: Vec<(&str, &str)> = params.iter().copied().filter(|(k, _)| *k != "after").collect();
    let next = str_at(page, "/next_cursor").map(|cursor| {
        let mut with_cursor = first.clone();
        with_cursor.push(("after", cursor));
        link(path, &with_cursor)
    });
    let paged = params.iter().any(|(k, v)| *k == "after" && !v.is_empty());
    html! {
        p.pager {
            span data-test="total" { (shown) " shown of " (total) }
            @if let Some(next) = next {
                " · " a href=(next) rel="next" data-test="next-page" { "next page →" }
            }
            @if paged {
                " · " a href=(link(path, &first)) { "first page" }
            }
        }
    }
}

/// A `<select>` named `name` offering `choices` (value, label), `current` selected; the first
/// choice is "any" (empty).
pub fn select(name: &str, any: &str, choices: &[(&str, &str)], current: &str) -> Markup {
    html! {
        select name=(name) {
            option value="" selected[current.is_empty()] { (any) }
            @for (value, label) in choices {
                option value=(value) selected[*value == current] { (label) }
            }
        }
    }
}

/// JSON pretty-printed for a `<pre>` (escaped by maud when inserted).
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The stylesheet, embedded in the binary.
pub const STYLE: &str = include_str!("../../data/ui/style.css");

/// The icon, embedded in the binary.
pub const FAVICON: &str = include_str!("../../data/ui/favicon.svg");

/// The page script (times in the reader's zone), embedded in the binary.
pub const SCRIPT: &str = include_str!("../../data/ui/app.js");

/// An empty table's row.
pub fn empty_row(columns: usize, what: &str) -> Markup {
    html! { tr { td colspan=(columns) class="empty" { (what) } } }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn agent_strings_are_escaped_in_text_and_attributes() {
        let hostile = "<script>alert(1)</script>\"'&";
        let out = html! { td title=(hostile) { (text(Some(&json!(hostile)))) } }.into_string();
        assert!(!out.contains("<script>"), "{out}");
        assert!(out.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;"), "{out}");
        let page = page(hostile, "/ui/", None, html! {}).into_string();
        assert!(!page.contains("<script>alert"), "{page}");
    }

    #[test]
    fn links_and_segments_encode_what_they_carry() {
        assert_eq!(segment("a/b c?d"), "a%2Fb%20c%3Fd");
        assert_eq!(segment("agent-01.x_y~"), "agent-01.x_y~");
        assert_eq!(link("/ui/models", &[("q", "a&b=c"), ("verdict", "")]), "/ui/models?q=a%26b%3Dc");
        assert_eq!(link("/ui/models", &[]), "/ui/models");
    }

    #[test]
    fn values_are_written_for_people() {
        assert_eq!(text(None), "—");
        assert_eq!(text(Some(&json!(["a", 1]))), "a, 1");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(80 * 1024 * 1024 * 1024), "80.0 GiB");
        assert_eq!(
            time(Some(0)).into_string(),
            "<time datetime=\"1970-01-01T00:00:00Z\">1970-01-01 00:00:00 UTC</time>"
        );
    }
}
