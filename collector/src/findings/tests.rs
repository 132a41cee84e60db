//! The rules over a hand-made inventory, the finding lifecycle in a real store, and the mappings.

use super::*;
use crate::store::{
    Acknowledgement, AssetKind, FindingFilter, LiveEntry, LiveHost, LiveInventory, NewFinding, PageRequest,
};

fn host(id: &str, last_seen_ms: i64) -> LiveHost {
    LiveHost {
        agent_id: id.into(),
        hostname: format!("host-{id}"),
        last_seen_ms: Some(last_seen_ms),
        enrolled_at_ms: 0,
    }
}

fn entry(agent: &str, kind: AssetKind, asset: &str, json: serde_json::Value) -> LiveEntry {
    LiveEntry {
        agent_id: agent.into(),
        kind,
        asset_id: asset.into(),
        local_key: asset.into(),
        entry_json: json.to_string(),
        first_seen_ms: 0,
    }
}

/// gpu-07 serves a dangerous pickle on 0.0.0.0:8000 without auth; a laptop holds the same file
/// closed, a .env key, an old torch, and a silent host.
fn fleet(now: i64) -> LiveInventory {
    let pickle = |path: &str| {
        serde_json::json!({"path": path, "format": "pickle", "sha256": "ab", "safety": {"verdict": "dangerous",
            "findings": [{"kind": "import", "subject": "os.system"}]}})
    };
    LiveInventory {
        hosts: vec![host("gpu", now), host("laptop", now), host("old", now - 3 * 86_400_000)],
        entries: vec![
            entry("gpu", AssetKind::Model, "m-ab", pickle("/srv/models/model.pkl")),
            entry("laptop", AssetKind::Model, "m-ab", pickle("/home/a/model.pkl")),
            entry(
                "laptop",
                AssetKind::Model,
                "m-safe",
                serde_json::json!({"path": "/m.gguf", "format": "gguf", "sha256": "cd", "safety": {"verdict": "safe"}}),
            ),
            entry(
                "gpu",
                AssetKind::Runtime,
                "r-1",
                serde_json::json!({"pid": 42, "kind": "ml-process",
                "listening": [{"address": "0.0.0.0", "port": 8000, "exposure": "all_interfaces"},
                              {"address": "127.0.0.1", "port": 9000, "exposure": "loopback"}],
                "open_models": [{"path": "/srv/models/model.pkl", "sha256": "ab", "via": ["fd"]}]}),
            ),
            entry(
                "gpu",
                AssetKind::Runtime,
                "r-2",
                serde_json::json!({"pid": 43, "kind": "ollama",
                "listening": [{"address": "::", "port": 11434, "exposure": "all_interfaces"}],
                "auth": {"state": "default", "server_default": "none", "evidence": []},
                "identity": {"version": "0.1.30"}}),
            ),
            entry(
                "gpu",
                AssetKind::Runtime,
                "r-3",
                serde_json::json!({"pid": 44, "kind": "jupyter-server",
                "listening": [{"address": "0.0.0.0", "port": 8888, "exposure": "all_interfaces"}],
                "auth": {"state": "default", "server_default": "token", "evidence": []}}),
            ),
            entry(
                "laptop",
                AssetKind::Tooling,
                "t-1",
                serde_json::json!({"kind": "api_key", "path": "/home/a/app/.env",
                "variable": "OPENAI_API_KEY", "provider": "openai", "found_in": "dotenv"}),
            ),
            entry(
                "laptop",
                AssetKind::Tooling,
                "t-2",
                serde_json::json!({"kind": "api_key", "path": "/proc/9/environ",
                "variable": "HF_TOKEN", "provider": "huggingface", "found_in": "process_environment", "pid": 9}),
            ),
            entry(
                "laptop",
                AssetKind::Framework,
                "f-1",
                serde_json::json!({"ecosystem": "pypi", "name": "torch",
                "version": "2.5.1+cu121", "environment": {"path": "/home/a/venv", "kind": "venv"}}),
            ),
            entry(
                "laptop",
                AssetKind::Framework,
                "f-2",
                serde_json::json!({"ecosystem": "pypi", "name": "torch",
                "version": ">=2.0", "environment": {"path": "/home/a/app", "kind": "python-project"}}),
            ),
            entry("laptop", AssetKind::Model, "m-bad", serde_json::json!("not an object")),
        ],
    }
}

#[test]
fn the_rules_find_what_a_security_team_asks_and_nothing_else() {
    let now = 10 * 86_400_000;
    let found = rules::run(&fleet(now), &Settings::default(), None, now);
    let by_rule = |rule: &str| found.iter().filter(|f| f.rule_id == rule).collect::<Vec<_>>();

    let unsafe_models = by_rule("unsafe-model-serialization");
    assert_eq!(unsafe_models.len(), 1, "one finding for the model, however many hosts");
    let f = unsafe_models[0];
    assert_eq!(f.severity, "critical", "open by a process");
    assert_eq!(f.hosts, ["gpu", "laptop"]);
    assert_eq!(f.title, "dangerous pickle model model.pkl on 2 host(s), open by ml-process on host-gpu");

    let exposed = by_rule("exposed-inference-server");
    assert_eq!(exposed.len(), 2, "jupyter with its default token is not exposed without auth: {exposed:?}");
    let ml = exposed.iter().find(|f| f.title.contains("ml-process")).unwrap();
    assert_eq!(ml.severity, "critical");
    assert_eq!(ml.title, "host-gpu: ml-process serves dangerous model.pkl on 0.0.0.0:8000 with authentication unknown");
    assert_eq!(ml.assets, ["m-ab", "r-1"]);
    let ollama = exposed.iter().find(|f| f.title.contains("ollama")).unwrap();
    assert_eq!(
        (ollama.severity.as_str(), ollama.title.as_str()),
        ("high", "host-gpu: ollama on [::]:11434 without authentication")
    );

    let keys = by_rule("plaintext-ai-api-key");
    assert_eq!(keys.len(), 1, "a key in a process environment is not a plaintext file");
    assert_eq!(keys[0].title, "host-laptop: OPENAI_API_KEY (openai) in plaintext in /home/a/app/.env");
    assert!(!keys[0].evidence_json.contains("sk-"), "values are never there to leak");

    let vulnerable = by_rule("vulnerable-version");
    let mut ids: Vec<&str> = vulnerable.iter().map(|f| f.subject.as_str()).collect();
    ids.sort_unstable();
    assert_eq!(ids, ["CVE-2024-37032|gpu", "CVE-2025-32434|laptop"], "a declared range is no installed version");
    assert!(vulnerable.iter().all(|f| f.severity == "critical"));

    let silent = by_rule("silent-host");
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0].title, "host-old: silent for 72 h");
    assert_eq!(found.len(), 7);
    // The same inventory gives the same findings.
    assert_eq!(found, rules::run(&fleet(now), &Settings::default(), None, now));
}

#[test]
fn findings_open_refresh_resolve_reopen_and_acknowledgements_expire() {
    let store = crate::store::tests::store();
    let now = 10 * 86_400_000;
    let mut found = rules::run(&fleet(now), &Settings::default(), None, now);
    let c = store.reconcile_findings(&found, 100).unwrap();
    assert_eq!((c.opened, c.kept), (7, 0));
    let c = store.reconcile_findings(&found, 200).unwrap();
    assert_eq!((c.opened, c.kept), (0, 7));
    // A severity that changes is recorded (and so sent to the SIEM), once.
    let mut raised = found.clone();
    if let Some(f) = raised.iter_mut().find(|f| f.rule_id == "silent-host") {
        f.severity = "high".into();
    }
    store.reconcile_findings(&raised, 250).unwrap();
    store.reconcile_findings(&raised, 260).unwrap();
    let log = store.audit_log(None, &PageRequest::default()).unwrap();
    let changed: Vec<_> = log.items.iter().filter(|r| r.kind == "finding.severity_changed").collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    let detail: serde_json::Value = serde_json::from_str(&changed[0].detail_json).unwrap();
    assert_eq!((detail["from"].as_str(), detail["to"].as_str()), (Some("low"), Some("high")));
    store.reconcile_findings(&found, 270).unwrap();
    let id = found.iter().find(|f| f.rule_id == "plaintext-ai-api-key").unwrap().finding_id.clone();

    // Acknowledged until 450: kept acknowledged, then open again once expired.
    let ack = Acknowledgement {
        reason: "test key, rotated".into(),
        by: "alice (tok-1)".into(),
        at_ms: 300,
        expires_ms: Some(450),
    };
    let acked = store.acknowledge_finding(&id, &ack).unwrap().unwrap();
    assert_eq!((acked.state.as_str(), acked.acknowledgement.as_ref()), ("acknowledged", Some(&ack)));
    assert_eq!(store.reconcile_findings(&found, 400).unwrap().ack_expired, 0);
    assert_eq!(store.finding(&id).unwrap().unwrap().state, "acknowledged");
    assert_eq!(store.reconcile_findings(&found, 500).unwrap().ack_expired, 1);
    let f = store.finding(&id).unwrap().unwrap();
    assert_eq!((f.state.as_str(), f.acknowledgement), ("open", None));

    // The key file is cleaned up: resolved; it comes back: reopened.
    found.retain(|f| f.finding_id != id);
    assert_eq!(store.reconcile_findings(&found, 600).unwrap().resolved, 1);
    let f = store.finding(&id).unwrap().unwrap();
    assert_eq!((f.state.as_str(), f.resolved_at_ms), ("resolved", Some(600)));
    assert!(store.acknowledge_finding(&id, &ack).unwrap_err().to_string().contains("is resolved"));
    let again = rules::run(&fleet(now), &Settings::default(), None, now);
    assert_eq!(store.reconcile_findings(&again, 700).unwrap().reopened, 1);
    let f = store.finding(&id).unwrap().unwrap();
    assert_eq!((f.state.as_str(), f.reopened_count, f.first_seen_ms, f.last_seen_ms), ("reopened", 1, 100, 700));
    assert_eq!(store.acknowledge_finding("f-none", &ack).unwrap(), None);

    // Filters: severity at least, rule, state, host, asset, since.
    let list = |filter: FindingFilter| {
        store
            .findings(&filter, &PageRequest::default())
            .unwrap()
            .items
            .into_iter()
            .map(|f| f.found.rule_id)
            .collect::<Vec<_>>()
    };
    let critical = list(FindingFilter { min_severity: Some("critical".into()), ..Default::default() });
    assert_eq!(critical.len(), 4, "{critical:?}");
    assert_eq!(list(FindingFilter { min_severity: Some("info".into()), ..Default::default() }).len(), 7);
    assert_eq!(list(FindingFilter { state: Some("reopened".into()), ..Default::default() }), ["plaintext-ai-api-key"]);
    assert_eq!(list(FindingFilter { agent_id: Some("old".into()), ..Default::default() }), ["silent-host"]);
    let on_model = list(FindingFilter { asset_id: Some("m-ab".into()), ..Default::default() });
    assert_eq!(on_model.len(), 2, "the model and the server serving it: {on_model:?}");
    assert_eq!(list(FindingFilter { since_ms: Some(650), ..Default::default() }), ["plaintext-ai-api-key"]);
    assert!(store
        .findings(&FindingFilter { min_severity: Some("urgent".into()), ..Default::default() }, &PageRequest::default())
        .is_err());
    let page = store.findings(&FindingFilter::default(), &PageRequest { after: None, limit: 3 }).unwrap();
    assert_eq!((page.items.len(), page.total), (3, 7));
    let rest = store.findings(&FindingFilter::default(), &PageRequest { after: page.next_cursor, limit: 10 }).unwrap();
    assert_eq!(rest.items.len(), 4);
}

#[test]
fn every_mapping_names_an_id_its_framework_defines() {
    for rule in RULES {
        for (key, ids) in rule.mappings() {
            let framework = frameworks::FRAMEWORKS.iter().find(|f| f.key == key).unwrap();
            for id in ids {
                assert!(framework.ids().any(|x| x == *id), "rule {}: {id} is not a {} id", rule.id, framework.name);
            }
        }
        assert!(!rule.nist_ai_rmf.is_empty(), "rule {} maps to the NIST AI RMF", rule.id);
    }
    let ids: std::collections::HashSet<&str> = RULES.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), RULES.len());
}

#[test]
fn a_policy_adds_its_rules_overrides_severities_and_its_exceptions_acknowledge_until_gone() {
    let policy = crate::policy::Policy::parse(
        r#"
version = 2
[models]
approved_names = ["*.gguf"]
[frameworks]
floors = { torch = "2.6.0" }
approved = ["torch"]
[licences]
deny = ["cc-by-nc-4.0"]
[severity]
silent-host = "high"
[[exceptions]]
rule = "plaintext-ai-api-key"
hosts = ["host-lap*"]
owner = "ml-platform"
reason = "lab key"
"#,
    )
    .unwrap();
    let now = 10 * 86_400_000;
    let mut inventory = fleet(now);
    inventory.entries.push(entry(
        "laptop",
        AssetKind::Framework,
        "f-lc",
        serde_json::json!({"ecosystem": "pypi", "name": "langchain", "version": "0.3.1",
            "environment": {"path": "/home/a/venv", "kind": "venv"}}),
    ));
    inventory.entries.push(entry(
        "laptop",
        AssetKind::Model,
        "m-nc",
        serde_json::json!({"path": "/m/nc.onnx", "format": "onnx", "sha256": "ef",
            "metadata": {"license": "CC-BY-NC-4.0"}, "safety": {"verdict": "safe"}}),
    ));
    let found = rules::run(&inventory, &Settings::default(), Some(&policy), now);
    let of = |rule: &str| found.iter().filter(|f| f.rule_id == rule).collect::<Vec<_>>();
    let unapproved: Vec<&str> = of("unapproved-model").iter().map(|f| f.subject.as_str()).collect();
    assert_eq!(unapproved, ["m-ab", "m-nc"], "the gguf is approved by name");
    assert_eq!(
        of("licence-outside-policy")[0].title,
        "model nc.onnx declares licence CC-BY-NC-4.0, denied by the policy"
    );
    let floor = of("framework-below-floor");
    assert_eq!(floor.len(), 1, "a declared range is no installed version");
    assert_eq!(floor[0].title, "host-laptop: torch 2.5.1+cu121 is below the policy floor 2.6.0 (/home/a/venv)");
    assert_eq!(of("silent-host")[0].severity, "high");
    let unapproved: Vec<&str> = of("unapproved-framework").iter().map(|f| f.title.as_str()).collect();
    assert_eq!(
        unapproved,
        ["host-laptop: langchain 0.3.1 is not an approved framework (/home/a/venv)"],
        "torch is approved"
    );
    let key = of("plaintext-ai-api-key")[0];
    let exception = key.exception.as_ref().unwrap();
    assert_eq!((exception.by.as_str(), exception.reason.as_str()), ("policy v2: ml-platform", "lab key"));

    // In the store: acknowledged by the policy; an operator's own acknowledgement is kept over
    // it; without the exception it is open again.
    let store = crate::store::tests::store();
    store.reconcile_findings(&found, 100).unwrap();
    let stored = store.finding(&key.finding_id).unwrap().unwrap();
    assert_eq!(stored.state, "acknowledged");
    assert_eq!(stored.acknowledgement.unwrap().by, "policy v2: ml-platform");
    let without: Vec<NewFinding> = rules::run(&inventory, &Settings::default(), None, now);
    store.reconcile_findings(&without, 200).unwrap();
    assert_eq!(store.finding(&key.finding_id).unwrap().unwrap().state, "open");
    let ack = Acknowledgement { reason: "mine".into(), by: "bob (tok)".into(), at_ms: 250, expires_ms: None };
    store.acknowledge_finding(&key.finding_id, &ack).unwrap();
    store.reconcile_findings(&found, 300).unwrap();
    let stored = store.finding(&key.finding_id).unwrap().unwrap();
    assert_eq!(stored.acknowledgement.unwrap().by, "bob (tok)", "an operator's acknowledgement stands");
}

#[test]
fn the_audit_trail_records_every_change_in_a_chain_that_names_the_first_tampered_record() {
    let store = crate::store::tests::store();
    let now = 10 * 86_400_000;
    let found = rules::run(&fleet(now), &Settings::default(), None, now);
    store.reconcile_findings(&found, 100).unwrap();
    let id = found[0].finding_id.clone();
    let ack = Acknowledgement { reason: "ok".into(), by: "alice (t)".into(), at_ms: 150, expires_ms: None };
    store.acknowledge_finding(&id, &ack).unwrap();
    store.reconcile_findings(&found[1..], 200).unwrap();
    let log = store.audit_log(None, &PageRequest::default()).unwrap();
    let kinds: Vec<&str> = log.items.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "finding.opened").count(), 7);
    assert_eq!(&kinds[7..], ["finding.acknowledged", "finding.resolved"]);
    assert_eq!(log.items[8].subject, id);
    assert_eq!(store.audit_log(Some(150), &PageRequest::default()).unwrap().items.len(), 2, "since");
    assert_eq!(store.verify_audit().unwrap(), crate::store::AuditVerification { records: 9, broken_at: None });

    // The database refuses to change or delete a record; one changed behind its back is named.
    let refused = store.try_execute("UPDATE audit SET subject = 'x' WHERE seq = 3");
    assert!(refused.unwrap_err().contains("append-only"));
    assert!(store.try_execute("DELETE FROM audit WHERE seq = 9").is_err());
    let (no_update, no_delete) = if store.is_postgres() {
        ("DROP TRIGGER audit_no_change ON audit", "")
    } else {
        ("DROP TRIGGER audit_no_update", "DROP TRIGGER audit_no_delete")
    };
    store.execute(&format!("{no_update}; UPDATE audit SET detail_json = '{{}}' WHERE seq = 4;"));
    let broken = store.verify_audit().unwrap();
    assert_eq!(broken.records, 3);
    let (seq, reason) = broken.broken_at.unwrap();
    assert_eq!(seq, 4);
    assert!(reason.contains("does not match its content"), "{reason}");
    if !no_delete.is_empty() {
        store.execute(no_delete);
    }
    store.execute("DELETE FROM audit WHERE seq = 2");
    let (seq, reason) = store.verify_audit().unwrap().broken_at.unwrap();
    assert_eq!(seq, 3);
    assert!(reason.contains("a record was removed"), "{reason}");
}

#[test]
fn mcp_servers_that_run_shells_or_carry_credentials_and_models_spreading_fast_are_found() {
    let now = 10 * 86_400_000;
    let mcp = serde_json::json!({"kind": "mcp_config", "path": "/home/a/.cursor/mcp.json", "client": "cursor",
    "servers": [
        {"name": "sh", "transport": "stdio", "command": "/bin/bash", "args": ["-c", "<redacted>"], "env": [], "headers": []},
        {"name": "github", "transport": "stdio", "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"],
         "env": ["GITHUB_PERSONAL_ACCESS_TOKEN"], "headers": []},
        {"name": "dc", "transport": "stdio", "command": "npx", "args": ["@wonderwhy-er/desktop-commander"], "env": [], "headers": []},
        {"name": "time", "transport": "stdio", "command": "uvx", "args": ["mcp-server-time"], "env": ["TZ"], "headers": []}
    ]});
    let mut inventory = LiveInventory {
        hosts: vec![host("laptop", now)],
        entries: vec![entry("laptop", AssetKind::Tooling, "t-mcp", mcp)],
    };
    for i in 0..12 {
        let mut e = entry(
            &format!("h{i}"),
            AssetKind::Model,
            "m-new",
            serde_json::json!({"path": "/m/new.gguf", "format": "gguf", "sha256": "99"}),
        );
        e.first_seen_ms = now - 3_600_000;
        inventory.entries.push(e);
        inventory.hosts.push(host(&format!("h{i}"), now));
    }
    let mut old = entry(
        "h0",
        AssetKind::Model,
        "m-old",
        serde_json::json!({"path": "/m/old.gguf", "format": "gguf", "sha256": "98"}),
    );
    old.first_seen_ms = now - 3 * 86_400_000;
    inventory.entries.push(old);
    let found = rules::run(&inventory, &Settings::default(), None, now);
    let titles: Vec<&str> = found.iter().filter(|f| f.rule_id == "mcp-server-risk").map(|f| f.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "host-laptop: MCP server sh (cursor) runs a shell (bash)",
            "host-laptop: MCP server github (cursor) carries credentials (GITHUB_PERSONAL_ACCESS_TOKEN)",
            "host-laptop: MCP server dc (cursor) is a command-execution server (desktop-commander)",
        ]
    );
    let spread: Vec<&NewFinding> = found.iter().filter(|f| f.rule_id == "model-spread").collect();
    assert_eq!(spread.len(), 1);
    assert_eq!(spread[0].title, "model new.gguf appeared on 12 hosts within 24 h");
    assert_eq!(spread[0].hosts.len(), 12);
}

#[test]
fn a_dangerous_model_in_a_directory_a_server_serves_is_critical_though_not_yet_open() {
    let now = 10 * 86_400_000;
    let inventory = LiveInventory {
        hosts: vec![host("gpu", now)],
        entries: vec![
            entry(
                "gpu",
                AssetKind::Model,
                "m-x",
                serde_json::json!({"path": "/srv/store/evil.mar", "format": "archive",
                "sha256": "ee", "safety": {"verdict": "dangerous"}}),
            ),
            entry(
                "gpu",
                AssetKind::Runtime,
                "r-ts",
                serde_json::json!({"pid": 7, "kind": "torchserve",
                "cmdline": ["torchserve", "--start", "--model-store=/srv/store/", "--models", "all"],
                "listening": [{"address": "127.0.0.1", "port": 8080, "exposure": "loopback"}]}),
            ),
            entry(
                "gpu",
                AssetKind::Runtime,
                "r-root",
                serde_json::json!({"pid": 8, "kind": "ml-process",
                "cmdline": ["python", "/", "--token=<redacted>"], "environment": {"OLLAMA_MODELS": "/"}}),
            ),
        ],
    };
    let found = rules::run(&inventory, &Settings::default(), None, now);
    let f = found.iter().find(|f| f.rule_id == "unsafe-model-serialization").unwrap();
    assert_eq!(f.severity, "critical");
    assert_eq!(
        f.title,
        "dangerous archive model evil.mar on 1 host(s), in the directory torchserve serves on host-gpu"
    );
    let evidence: serde_json::Value = serde_json::from_str(&f.evidence_json).unwrap();
    assert_eq!(evidence["served_from"].as_array().unwrap().len(), 1, "'/' is no model directory: {evidence:#}");
    assert_eq!(evidence["served_from"][0]["directory"], "/srv/store");
}

#[test]
fn an_operators_acknowledgement_does_not_cover_a_severity_the_finding_rises_to() {
    let store = crate::store::tests::store();
    let now = 10 * 86_400_000;
    let mut found = rules::run(&fleet(now), &Settings::default(), None, now);
    let silent = found.iter().position(|f| f.rule_id == "silent-host").unwrap();
    let id = found[silent].finding_id.clone();
    store.reconcile_findings(&found, 100).unwrap();
    let ack = Acknowledgement { reason: "lab host".into(), by: "alice (t)".into(), at_ms: 150, expires_ms: None };
    store.acknowledge_finding(&id, &ack).unwrap();
    // The same severity: still accepted. Higher: open again, and the audit trail says why.
    store.reconcile_findings(&found, 200).unwrap();
    assert_eq!(store.finding(&id).unwrap().unwrap().state, "acknowledged");
    found[silent].severity = "high".into();
    store.reconcile_findings(&found, 300).unwrap();
    let f = store.finding(&id).unwrap().unwrap();
    assert_eq!((f.state.as_str(), f.acknowledgement), ("open", None));
    let log = store.audit_log(None, &PageRequest::default()).unwrap();
    assert!(log.items.iter().any(|r| r.kind == "finding.acknowledgement_dropped" && r.subject == id));
}

#[test]
fn the_overview_trend_counts_each_day_the_findings_found_and_not_yet_resolved() {
    const DAY: i64 = 86_400_000;
    let store = crate::store::tests::store();
    let finding = |id: &str, severity: &str| NewFinding {
        finding_id: id.into(),
        rule_id: "silent-host".into(),
        subject: id.into(),
        severity: severity.into(),
        title: id.into(),
        evidence_json: "{}".into(),
        hosts: Vec::new(),
        assets: Vec::new(),
        exception: None,
    };
    let t0 = 100 * DAY + 3_600_000;
    let (stays, goes) = (finding("f-stays", "high"), finding("f-goes", "critical"));
    store.reconcile_findings(&[stays.clone(), goes], t0).unwrap();
    // The critical one's evidence is gone two days later: resolved at t0 + 2 days.
    store.reconcile_findings(&[stays], t0 + 2 * DAY).unwrap();
    let request = crate::store::OverviewRequest {
        now_ms: t0 + 4 * DAY,
        silent_before_ms: 0,
        trend_days: 6,
        spread_since_ms: 0,
        list_limit: 5,
    };
    let o = store.overview(&request).unwrap();
    let ends: Vec<i64> = o.trend.iter().map(|(end, _)| *end).collect();
    assert_eq!(ends, (100..=105).map(|d| d * DAY).collect::<Vec<_>>(), "the days end at UTC midnights, oldest first");
    let of = |severity: &str| -> Vec<u64> {
        o.trend.iter().map(|(_, c)| c.iter().find(|(s, _)| s == severity).map_or(99, |(_, n)| *n)).collect()
    };
    assert_eq!(of("high"), [0, 1, 1, 1, 1, 1]);
    assert_eq!(of("critical"), [0, 1, 1, 0, 0, 0]);
    assert_eq!(of("low"), [0; 6]);
    assert_eq!(o.open_findings.first(), Some(&("critical".to_string(), 0)), "most severe first");
    assert!(o.open_findings.contains(&("high".to_string(), 1)));
}
