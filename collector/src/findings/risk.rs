//! Risk scores of hosts and assets, from their open findings, explained (docs/findings.md,
//! *Risk*).
//!
//! `risk = min(100, Σ weight(severity))` over the findings that concern the host or asset and
//! are open or reopened (an acknowledged finding is an accepted risk, a resolved one is gone),
//! with the weights of [`WEIGHTS`]: one critical finding puts a host at 40, three at 100.

use serde_json::{json, Value};

use crate::store::FindingRecord;

/// Weight per severity.
pub const WEIGHTS: [(&str, u32); 5] = [("critical", 40), ("high", 20), ("medium", 8), ("low", 2), ("info", 0)];

/// The most a score reaches.
pub const MAX: u32 = 100;

/// The states whose findings count.
pub const COUNTED_STATES: [&str; 2] = ["open", "reopened"];

/// The weight of `severity`.
pub fn weight(severity: &str) -> u32 {
    WEIGHTS.iter().find(|(s, _)| *s == severity).map_or(0, |(_, w)| *w)
}

/// The score of `findings` and its explanation: each counted finding with its weight.
pub fn score(findings: &[FindingRecord]) -> (u32, Vec<Value>) {
    let mut total = 0u32;
    let mut parts = Vec::new();
    for f in findings.iter().filter(|f| COUNTED_STATES.contains(&f.state.as_str())) {
        let w = weight(&f.found.severity);
        total = total.saturating_add(w);
        parts.push(json!({"id": f.found.finding_id, "rule": f.found.rule_id, "severity": f.found.severity,
            "state": f.state, "weight": w, "title": f.found.title}));
    }
    (total.min(MAX), parts)
}

/// The same sum in SQL, over `findings` aliased `f` (for listings).
pub fn sql_weight() -> String {
    let cases: String = WEIGHTS.iter().map(|(s, w)| format!(" WHEN '{s}' THEN {w}")).collect();
    format!("CASE f.severity{cases} ELSE 0 END")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NewFinding;

    fn f(severity: &str, state: &str) -> FindingRecord {
        FindingRecord {
            found: NewFinding {
                finding_id: format!("f-{severity}-{state}"),
                rule_id: "r".into(),
                subject: "s".into(),
                severity: severity.into(),
                title: "t".into(),
                evidence_json: "{}".into(),
                hosts: vec![],
                assets: vec![],
                exception: None,
            },
            first_seen_ms: 0,
            last_seen_ms: 0,
            state: state.into(),
            state_changed_ms: 0,
            resolved_at_ms: None,
            reopened_count: 0,
            acknowledgement: None,
        }
    }

    #[test]
    fn open_findings_add_up_to_at_most_100_and_each_is_explained() {
        let (score_, parts) =
            score(&[f("critical", "open"), f("high", "reopened"), f("medium", "acknowledged"), f("low", "resolved")]);
        assert_eq!(score_, 60);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0]["weight"], 40);
        assert_eq!(score(&[f("critical", "open"), f("critical", "open"), f("critical", "open")]).0, 100);
        assert_eq!(score(&[]).0, 0);
        assert_eq!(sql_weight(), "CASE f.severity WHEN 'critical' THEN 40 WHEN 'high' THEN 20 WHEN 'medium' THEN 8 WHEN 'low' THEN 2 WHEN 'info' THEN 0 ELSE 0 END");
    }
}
