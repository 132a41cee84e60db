//! Pictures drawn as inline SVG with presentation attributes only (no `style`, no script), so
//! the Content-Security-Policy needs nothing inline: the findings trend and the process ↔ model
//! ↔ host ↔ exposure graph. Labels are agent strings: maud escapes them as text.

use maud::{html, Markup};
use serde_json::Value;

use super::render::{num_at, str_at};

/// Severities from the bottom of a bar up, with their colours.
const SEVERITY_COLOURS: [(&str, &str); 5] =
    [("critical", "#7f1d1d"), ("high", "#dc2626"), ("medium", "#f59e0b"), ("low", "#3b82f6"), ("info", "#9ca3af")];

/// One day's bar: its x, its day (`YYYY-MM-DD`), its tooltip and its segments (y, height, colour).
struct Bar {
    x: f64,
    day: String,
    tooltip: String,
    segments: Vec<(f64, f64, &'static str)>,
}

/// The findings trend (`overview.trend`): one stacked bar per day, a tooltip per bar.
pub fn trend(days: &[Value]) -> Markup {
    const HEIGHT: f64 = 140.0;
    const BAR: f64 = 18.0;
    const GAP: f64 = 4.0;
    let count = |d: &Value, s: &str| num_at(d, &format!("/by_severity/{s}"));
    let max = days.iter().map(|d| SEVERITY_COLOURS.iter().map(|(s, _)| count(d, s)).sum::<u64>()).max().unwrap_or(0);
    let scale = (HEIGHT - 16.0) / max.max(1) as f64;
    let bars: Vec<Bar> = days
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let end = d.get("day_end_ms").and_then(Value::as_i64).unwrap_or(0);
            let day = crate::rfc3339_seconds(end.saturating_sub(1)).get(..10).unwrap_or_default().to_string();
            let mut tooltip = day.clone();
            let mut y = HEIGHT;
            let mut segments = Vec::new();
            for (s, colour) in SEVERITY_COLOURS {
                let n = count(d, s);
                tooltip.push_str(&format!(" · {s} {n}"));
                if n > 0 {
                    let h = n as f64 * scale;
                    y -= h;
                    segments.push((y, h, colour));
                }
            }
            Bar { x: 34.0 + (BAR + GAP) * i as f64, day, tooltip, segments }
        })
        .collect();
    let width = (BAR + GAP) * days.len() as f64 + 40.0;
    html! {
        svg.trend xmlns="http://www.w3.org/2000/svg" width=(width) height=(HEIGHT + 30.0) role="img"
            aria-label="findings not resolved at each day's end, by severity" {
            text x="0" y="12" font-size="11" fill="#555" { (max) }
            line x1="30" y1=(HEIGHT) x2=(width) y2=(HEIGHT) stroke="#999" stroke-width="1" {}
            @for (i, bar) in bars.iter().enumerate() {
                g {
                    title { (bar.tooltip) }
                    @for (y, h, colour) in &bar.segments {
                        rect x=(bar.x) y=(y) width=(BAR) height=(h) fill=(colour) {}
                    }
                    @if (i % 7 == 0 && i + 4 < bars.len()) || i + 1 == bars.len() {
                        text x=(bar.x) y=(HEIGHT + 14.0) font-size="10" fill="#555" { (bar.day.get(5..).unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// Nodes drawn per column; the rest are counted under it.
const MAX_PER_COLUMN: usize = 150;

/// The columns of the graph, left to right: node type, heading.
const COLUMNS: [(&str, &str); 4] =
    [("host", "hosts"), ("process", "processes"), ("model", "models"), ("socket", "listening sockets")];

const NODE_W: f64 = 220.0;
const NODE_H: f64 = 28.0;
const ROW: f64 = 36.0;
const COLUMN_GAP: f64 = 90.0;
const TOP: f64 = 40.0;

/// `label` cut to `n` characters.
fn cut(label: &str, n: usize) -> String {
    if label.chars().count() <= n {
        label.to_string()
    } else {
        let mut s: String = label.chars().take(n.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// What a node's box says and how it is coloured: a dangerous model and an exposed socket in red.
fn node_look(node: &Value) -> (&'static str, &'static str) {
    match (str_at(node, "/type"), str_at(node, "/verdict"), node.get("exposed").and_then(Value::as_bool)) {
        (Some("model"), Some("dangerous"), _) | (Some("socket"), _, Some(true)) => ("#fee2e2", "#b91c1c"),
        (Some("model"), Some("suspicious"), _) => ("#fef3c7", "#b45309"),
        (Some("host"), _, _) => ("#e0e7ff", "#3730a3"),
        _ => ("#f3f4f6", "#374151"),
    }
}

/// The graph of `GET /api/v1/graph` as columns of boxes joined by lines; a node links to its page
/// (a host's, a model's).
pub fn graph(g: &Value) -> Markup {
    let empty = Vec::new();
    let nodes = g.get("nodes").and_then(Value::as_array).unwrap_or(&empty);
    let edges = g.get("edges").and_then(Value::as_array).unwrap_or(&empty);
    let mut placed: std::collections::HashMap<&str, (f64, f64)> = std::collections::HashMap::new();
    let mut columns: Vec<(usize, usize)> = Vec::new();
    for (c, (kind, _)) in COLUMNS.iter().enumerate() {
        let of_kind: Vec<&Value> = nodes.iter().filter(|n| str_at(n, "/type") == Some(*kind)).collect();
        for (row, node) in of_kind.iter().take(MAX_PER_COLUMN).enumerate() {
            if let Some(id) = str_at(node, "/id") {
                placed.insert(id, (10.0 + c as f64 * (NODE_W + COLUMN_GAP), TOP + row as f64 * ROW));
            }
        }
        columns.push((of_kind.len().min(MAX_PER_COLUMN), of_kind.len()));
    }
    let rows = columns.iter().map(|(drawn, _)| *drawn).max().unwrap_or(0);
    let width = 20.0 + COLUMNS.len() as f64 * (NODE_W + COLUMN_GAP);
    let height = TOP + rows as f64 * ROW + 30.0;
    html! {
        svg.graph xmlns="http://www.w3.org/2000/svg" width=(width) height=(height) role="img"
            aria-label="process, model, host and exposure graph" {
            @for (c, (_, heading)) in COLUMNS.iter().enumerate() {
                @let (drawn, all) = columns.get(c).copied().unwrap_or((0, 0));
                text x=(10.0 + c as f64 * (NODE_W + COLUMN_GAP)) y="20" font-size="13" font-weight="bold" fill="#111" {
                    (heading) " (" (all) ")"
                }
                @if all > drawn {
                    text x=(10.0 + c as f64 * (NODE_W + COLUMN_GAP)) y=(TOP + drawn as f64 * ROW + 14.0) font-size="12" fill="#555" {
                        (all - drawn) " more not drawn"
                    }
                }
            }
            @for edge in edges {
                @if let (Some(from), Some(to)) = (str_at(edge, "/from").and_then(|f| placed.get(f)), str_at(edge, "/to").and_then(|t| placed.get(t))) {
                    @let (x1, y1) = (from.0 + NODE_W, from.1 + NODE_H / 2.0);
                    @let (x2, y2) = (to.0, to.1 + NODE_H / 2.0);
                    @let kind = str_at(edge, "/type").unwrap_or("");
                    path d=(format!("M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}", x1 + 40.0, x2 - 40.0))
                        fill="none" stroke=(if kind == "stores" { "#a5b4fc" } else { "#6b7280" })
                        stroke-width="1.2" stroke-dasharray=[(kind == "stores").then_some("4 3")] {
                        title { (kind) @if let Some(p) = str_at(edge, "/path") { ": " (p) } }
                    }
                }
            }
            @for node in nodes {
                @if let Some((x, y)) = str_at(node, "/id").and_then(|id| placed.get(id)).copied() {
                    @let (fill, stroke) = node_look(node);
                    @let label = str_at(node, "/label").unwrap_or("?");
                    @let href = match (str_at(node, "/type"), str_at(node, "/agent_id"), str_at(node, "/asset_id")) {
                        (Some("host"), Some(agent), _) => Some(format!("/ui/hosts/{}", super::render::segment(agent))),
                        (Some("model"), _, Some(asset)) => Some(format!("/ui/models/{}", super::render::segment(asset))),
                        _ => None,
                    };
                    @let body = html! {
                        rect x=(x) y=(y) width=(NODE_W) height=(NODE_H) rx="5" fill=(fill) stroke=(stroke) stroke-width="1.2" {}
                        text x=(x + 8.0) y=(y + 18.0) font-size="12" fill="#111" { (cut(label, 30)) }
                        title { (label) }
                    };
                    @match href {
                        Some(href) => { a href=(href) data-node=(str_at(node, "/type").unwrap_or("")) { (body) } },
                        None => { g data-node=(str_at(node, "/type").unwrap_or("")) { (body) } },
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_graph_escapes_labels_and_marks_danger() {
        let g = json!({"nodes": [
            {"id": "host:a", "type": "host", "agent_id": "a", "label": "<script>x</script>"},
            {"id": "model:m", "type": "model", "asset_id": "m", "verdict": "dangerous", "label": "evil.pkl"},
            {"id": "process:a:1", "type": "process", "label": "vllm (1)"},
            {"id": "socket:a:0.0.0.0:8000", "type": "socket", "label": "0.0.0.0:8000", "exposed": true},
        ], "edges": [
            {"from": "host:a", "to": "model:m", "type": "stores", "path": "/m/evil.pkl"},
            {"from": "process:a:1", "to": "model:m", "type": "has_open"},
            {"from": "process:a:1", "to": "socket:a:0.0.0.0:8000", "type": "listens"},
        ]});
        let svg = graph(&g).into_string();
        assert!(!svg.contains("<script>"), "{svg}");
        assert!(svg.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(svg.contains("href=\"/ui/hosts/a\"") && svg.contains("href=\"/ui/models/m\""));
        assert_eq!(svg.matches("#b91c1c").count(), 2, "the dangerous model and the exposed socket");
        assert_eq!(svg.matches("<path").count(), 3);
    }

    #[test]
    fn a_crowded_column_says_how_many_are_not_drawn() {
        let nodes: Vec<Value> =
            (0..200).map(|i| json!({"id": format!("host:{i}"), "type": "host", "label": format!("h{i}")})).collect();
        let svg = graph(&json!({"nodes": nodes, "edges": []})).into_string();
        assert!(svg.contains("50 more not drawn"));
        assert_eq!(svg.matches("<rect").count(), MAX_PER_COLUMN);
    }

    #[test]
    fn the_trend_draws_one_bar_segment_per_severity_present() {
        let days = vec![
            json!({"day_end_ms": 86_400_000, "by_severity": {"critical": 1, "high": 2, "low": 0}}),
            json!({"day_end_ms": 172_800_000, "by_severity": {}}),
        ];
        let svg = trend(&days).into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("1970-01-01 · critical 1 · high 2"), "{svg}");
    }
}
