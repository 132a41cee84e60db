//! Findings over a small real fleet: real agents scan a host holding a dangerous pickle that a
//! process keeps open while listening on 0.0.0.0, a real venv with a vulnerable keras and an AI
//! key in a `.env`, and a second host with a copy of the pickle; the collector's API answers
//! the security team's questions with one call each, an operator acknowledges a finding, and a
//! finding whose evidence goes away resolves.

use std::process::Command;
use std::time::Duration;

use aiscout_e2e::fleet::{assert_ok, poll, run_once, AgentOptions, Collector};
use aiscout_e2e::{findings_venv, fixtures_dir, serve_holding_open};
use serde_json::Value;

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// A planted secret value: it must appear nowhere the collector answers.
const KEY_VALUE: &str = "sk-proj-aiscoutfindingstest0123456789abcdefABCDEF";

/// The items of `GET path`, once the evaluation has produced at least `at_least` of them.
fn items(c: &Collector, path: &str, at_least: usize) -> Vec<Value> {
    poll(Duration::from_secs(60), path, || {
        let items = c.get(path)["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= at_least).then_some(items)
    })
}

/// `POST path` with `token` and a JSON `body`: the status and the answer.
fn post(c: &Collector, path: &str, token: &str, body: &Value) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{}{path}", c.api_port);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut resp = agent
        .post(&url)
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn a_small_fleet_answers_the_day_one_questions_with_one_call_each() {
    let c = Collector::start_with("[findings]\ninterval = \"1s\"\n");
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("srv/models");
    std::fs::create_dir_all(&models).unwrap();
    let pickle = models.join("model.pkl");
    std::fs::copy(fixtures_dir().join("safety/hostile/os_system_p4.pkl"), &pickle).unwrap();
    std::fs::create_dir_all(root.path().join("app")).unwrap();
    std::fs::write(root.path().join("app/.env"), format!("OPENAI_API_KEY={KEY_VALUE}\n")).unwrap();
    // A real venv with a vulnerable keras (pip-installed by scripts/findings-venv.sh).
    let venv = findings_venv();

    // A process that holds the pickle open and listens on every interface.
    let (server, port) = serve_holding_open(&pickle);

    let options =
        AgentOptions { sections: vec!["models", "frameworks", "runtimes", "tooling"], ..AgentOptions::default() };
    let token = c.token_file("token", &["--uses", "2"]);
    let config = c.agent_with("gpu", &[root.path(), venv.as_path()], &token, &options);
    let before = now_ms();
    assert_ok(&run_once(&config));
    let agent_id = std::fs::read_to_string(c.state_dir("gpu").join("tls/agent.id")).unwrap().trim().to_string();
    // A laptop holds a copy of the same pickle, closed.
    let laptop_root = tempfile::tempdir().unwrap();
    std::fs::copy(&pickle, laptop_root.path().join("downloaded.pkl")).unwrap();
    let laptop = c.agent_with("laptop", &[laptop_root.path()], &token, &AgentOptions::default());
    assert_ok(&run_once(&laptop));
    let laptop_id = std::fs::read_to_string(c.state_dir("laptop").join("tls/agent.id")).unwrap().trim().to_string();

    // (a) Which hosts hold a model whose loading runs code?
    let model = poll(Duration::from_secs(60), "both hosts in the model's finding", || {
        let found = c.get("/api/v1/findings?rule=unsafe-model-serialization");
        let first = found["items"].get(0).cloned()?;
        (found["total"] == 1 && first["hosts"].as_array().is_some_and(|h| h.len() == 2)).then_some(first)
    });
    let model = &model;
    assert_eq!(model["severity"], "critical", "open by a process: {model:#}");
    let mut hosts = vec![agent_id.clone(), laptop_id.clone()];
    hosts.sort();
    assert_eq!(model["hosts"], serde_json::json!(hosts));
    let paths: Vec<&str> =
        model["evidence"]["sightings"].as_array().unwrap().iter().filter_map(|s| s["path"].as_str()).collect();
    assert!(paths.contains(&pickle.display().to_string().as_str()), "{paths:?}");
    assert_eq!(model["mappings"]["mitre_atlas"][0], "AML.T0011.000");

    // (b) Which inference servers listen beyond loopback without authentication, serving what?
    let exposed = items(&c, "/api/v1/findings?rule=exposed-inference-server", 1);
    let ours: Vec<&Value> = exposed
        .iter()
        .filter(|f| f["title"].as_str().is_some_and(|t| t.contains(&format!("0.0.0.0:{port}"))))
        .collect();
    assert_eq!(ours.len(), 1, "{exposed:#?}");
    let chain = ours[0];
    assert_eq!(chain["severity"], "critical");
    assert!(chain["title"].as_str().unwrap().contains("serves dangerous model.pkl"), "{chain:#}");
    assert_eq!(chain["evidence"]["open_models"][0]["verdict"], "dangerous");
    assert_eq!(chain["evidence"]["pid"], server.0.id());

    // The same chain, drawn: host runs the process, which has the dangerous model open and
    // listens on every interface; from the model's side too.
    let process = format!("process:{agent_id}:{}", server.0.id());
    for query in [format!("host={agent_id}"), format!("asset={}", model["assets"][0].as_str().unwrap())] {
        let graph = c.get(&format!("/api/v1/graph?{query}"));
        let edges = graph["edges"].as_array().unwrap();
        let has = |from: &str, kind: &str| {
            edges.iter().filter(|e| e["from"] == from && e["type"] == kind).cloned().collect::<Vec<_>>()
        };
        let open = has(&process, "has_open");
        assert_eq!(open.len(), 1, "{query}: {graph:#}");
        let node = |id: &Value| graph["nodes"].as_array().unwrap().iter().find(|n| n["id"] == *id).cloned().unwrap();
        assert_eq!(node(&open[0]["to"])["verdict"], "dangerous", "{query}");
        let sockets: Vec<Value> = has(&process, "listens").iter().map(|e| node(&e["to"])).collect();
        assert!(
            sockets.iter().any(|s| s["label"] == format!("0.0.0.0:{port}").as_str() && s["exposed"] == true),
            "{query}: {graph:#}"
        );
        assert!(!has(&format!("host:{agent_id}"), "runs").is_empty(), "{query}");
    }

    // (c) Where is this model deployed: by name, by digest, by verdict on a host?
    let by_name = c.get("/api/v1/assets?kind=model&q=MODEL.pkl");
    assert_eq!(by_name["total"], 1, "{by_name:#}");
    assert_eq!(by_name["items"][0]["hosts"], 2, "deployed on two hosts: {by_name:#}");
    let sha = model["evidence"]["sha256"].as_str().unwrap();
    let by_digest = c.get(&format!("/api/v1/assets?q={}", &sha[..12]));
    assert_eq!(by_digest["items"][0]["id"], by_name["items"][0]["id"]);
    let dangerous_here = c.get(&format!("/api/v1/assets?kind=model&verdict=dangerous&host={agent_id}"));
    assert_eq!(dangerous_here["total"], 1);
    assert_eq!(c.get("/api/v1/assets?q=no-such-model-anywhere")["total"], 0);
    let served = c.get("/api/v1/assets?kind=model&exposure=exposed");
    assert_eq!(served["items"][0]["id"], by_name["items"][0]["id"], "open by a process on 0.0.0.0: {served:#}");
    assert_eq!(c.get("/api/v1/assets?kind=model&exposure=loopback")["total"], 0);
    assert_eq!(c.get(&format!("/api/v1/hosts?silent_since={}", now_ms() + 60_000))["total"], 2);
    assert_eq!(c.get(&format!("/api/v1/hosts?silent_since={before}"))["total"], 0, "heard from since");
    // What a table shows, and a framework by its parts.
    let columns = &by_name["items"][0]["columns"];
    assert!(
        ["model.pkl", "downloaded.pkl"].contains(&columns["name"].as_str().unwrap()),
        "the latest sighting's: {columns}"
    );
    assert_eq!(columns["format"], "pickle");
    let keras = c.get("/api/v1/assets?kind=framework&ecosystem=pypi&name=keras&version=3.8.0");
    assert_eq!(keras["total"], 1, "{keras:#}");
    assert_eq!(keras["items"][0]["columns"]["environment"], venv.display().to_string());
    assert_eq!(c.get("/api/v1/assets?kind=framework&name=keras&version=3.9.0")["total"], 0);
    let runtimes = c.get(&format!("/api/v1/assets?kind=runtime&host={agent_id}"));
    assert!(runtimes["items"].as_array().unwrap().iter().any(|r| r["columns"]["exposed"] == true), "{runtimes:#}");
    assert_eq!(c.get("/api/v1/assets?q=%25")["total"], 0, "LIKE wildcards are literal");

    // (d) What changed since before the scan?
    let changed = c.get(&format!("/api/v1/changes?since={before}"));
    let appeared: Vec<&str> = changed["sightings_appeared"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["location"].as_str())
        .collect();
    assert!(appeared.contains(&pickle.display().to_string().as_str()), "{changed:#}");
    assert!(changed["new_assets"]["total"].as_u64().unwrap() >= 3, "{changed:#}");

    // (e) Which hosts keep AI API keys in plaintext files?
    let keys = items(&c, &format!("/api/v1/findings?rule=plaintext-ai-api-key&host={agent_id}"), 1);
    assert_eq!(keys.len(), 1);
    assert!(keys[0]["title"].as_str().unwrap().contains("OPENAI_API_KEY (openai) in plaintext"), "{:#}", keys[0]);

    // (f) Where are vulnerable framework versions installed?
    let vulnerable = items(&c, "/api/v1/findings?rule=vulnerable-version", 1);
    assert_eq!(vulnerable[0]["evidence"]["advisory"], "CVE-2025-1550", "{vulnerable:#?}");
    assert_eq!(vulnerable[0]["evidence"]["installs"][0]["name"], "keras");
    assert_eq!(vulnerable[0]["evidence"]["installs"][0]["version"], "3.8.0");

    // Everything at critical, and never the key's value anywhere.
    let all = c.get("/api/v1/findings?severity=critical&limit=1000");
    assert!(all["total"].as_u64().unwrap() >= 3, "{all:#}");
    assert!(!c.get("/api/v1/findings?limit=1000").to_string().contains(KEY_VALUE));

    // (g) An operator accepts the key finding; a read token may not.
    let key_id = keys[0]["id"].as_str().unwrap().to_string();
    let read_token = c.command(&["api-token", "create", "--label", "bob"]);
    let admin = c.command(&["api-token", "create", "--label", "alice", "--scope", "admin"]);
    let body = serde_json::json!({"reason": "test key, rotated monthly", "expires_ms": 4_102_444_800_000_i64});
    let (status, _) = post(&c, &format!("/api/v1/findings/{key_id}/ack"), &read_token, &body);
    assert_eq!(status, 403);
    let (status, bad) = post(&c, &format!("/api/v1/findings/{key_id}/ack"), &admin, &serde_json::json!({"reason": ""}));
    assert_eq!(status, 400, "{bad}");
    let (status, acked) = post(&c, &format!("/api/v1/findings/{key_id}/ack"), &admin, &body);
    assert_eq!(status, 200, "{acked}");
    assert_eq!(acked["state"], "acknowledged");
    assert!(acked["acknowledgement"]["by"].as_str().unwrap().starts_with("alice ("), "{acked:#}");
    let accepted = c.get("/api/v1/findings?state=acknowledged");
    assert_eq!(accepted["items"][0]["id"], key_id.as_str());
    assert_eq!(accepted["items"][0]["acknowledgement"]["reason"], "test key, rotated monthly");
    // It stays acknowledged across evaluations.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(c.get(&format!("/api/v1/findings/{key_id}"))["state"], "acknowledged");

    // Bad queries are refused with the parameter named.
    for (query, word) in
        [("severity=urgent", "severity"), ("rule=nope", "rule"), ("colour=red", "colour"), ("limit=0", "limit")]
    {
        let status = c.get_status(&format!("/api/v1/findings?{query}"), &read_token);
        assert_eq!(status, 400, "{query} ({word})");
    }

    // The server stops: its exposure finding resolves at the next inventory and evaluation.
    drop(server);
    let stopped = now_ms();
    assert_ok(&run_once(&config));
    let removed = c.get(&format!("/api/v1/changes?since={stopped}"))["sightings_removed"]["items"].clone();
    assert!(removed.as_array().unwrap().iter().any(|r| r["kind"] == "runtime"), "{removed:#}");
    let id = chain["id"].as_str().unwrap().to_string();
    poll(Duration::from_secs(60), "the exposure resolved", || {
        (c.get(&format!("/api/v1/findings/{id}"))["state"] == "resolved").then_some(())
    });
    assert!(c.get(&format!("/api/v1/findings/{id}"))["resolved_at_ms"].is_i64());

    // One host with its facts; hosts by the severity of their open findings.
    let host = c.get(&format!("/api/v1/hosts/{agent_id}"));
    assert!(host["os"].is_string() && host["kernel"].is_string() && host["arch"].is_string(), "{host:#}");
    assert!(host["facts"]["hostname"].is_string(), "{host:#}");
    assert_eq!(host["identity"]["machine_id"], "machine-gpu", "the facts that identify the machine: {host:#}");
    assert!(host["identity"]["mac_addresses"].is_array() && host["identity"].get("install_key").is_none());
    assert!(host["ip_addresses"].is_array(), "{host:#}");
    let severe = c.get("/api/v1/hosts?severity=high").to_string();
    assert!(severe.contains(&agent_id) && severe.contains(&laptop_id), "both hold the dangerous model: {severe}");
    assert_eq!(c.get_status("/api/v1/hosts/agent-nope", &read_token), 404);

    // Its risk: the weights of its open findings, explained; the same number in the hosts list.
    let risk = c.get(&format!("/api/v1/risk?host={agent_id}"));
    let parts = risk["findings"].as_array().unwrap();
    let sum: u64 = parts.iter().map(|p| p["weight"].as_u64().unwrap()).sum();
    assert_eq!(risk["risk"].as_u64().unwrap(), sum.min(100), "{risk:#}");
    assert!(parts.iter().all(|p| p["state"] != "acknowledged" && p["state"] != "resolved"), "{risk:#}");
    assert_eq!(c.host(&agent_id)["risk"], risk["risk"]);
    let model_risk = c.get(&format!("/api/v1/risk?asset={}", by_name["items"][0]["id"].as_str().unwrap()));
    assert_eq!(model_risk["risk"], 20, "its server stopped: dangerous, no longer open, high: {model_risk:#}");
    assert_eq!(model_risk["findings"][0]["rule"], "unsafe-model-serialization");
    assert_eq!(c.get_status("/api/v1/risk", &read_token), 400);

    // The host is online; decommissioned (admin scope), its sightings close, its history stays.
    assert_eq!(c.get("/api/v1/hosts?status=online")["total"], 2);
    assert_eq!(c.get("/api/v1/hosts?status=silent")["total"], 0);
    let delete = |token: &str| {
        let url = format!("http://127.0.0.1:{}/api/v1/hosts/{agent_id}", c.api_port);
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        agent.delete(&url).header("Authorization", &format!("Bearer {token}")).call().unwrap().status().as_u16()
    };
    assert_eq!(delete(&read_token), 403);
    assert_eq!(delete(&admin), 200);
    let hosts = c.get("/api/v1/hosts?status=decommissioned");
    assert_eq!(hosts["items"][0]["agent_id"], agent_id.as_str(), "{hosts:#}");
    assert!(hosts["items"][0]["decommissioned_at_ms"].is_i64());
    assert_eq!(c.get(&format!("/api/v1/assets?kind=model&host={agent_id}"))["total"], 0, "its sightings are closed");
    assert_eq!(c.get("/api/v1/assets?kind=model")["items"][0]["hosts"], 1, "the laptop's copy stays");
    let audit = c.get("/api/v1/audit?limit=1000").to_string();
    assert!(audit.contains("agent.decommissioned"));
    assert!(!run_once(&config).status.success(), "a decommissioned host's agent is refused");

    // The laptop deletes its copy: no host has the model any more, and /changes says so.
    let gone = now_ms();
    std::fs::remove_file(laptop_root.path().join("downloaded.pkl")).unwrap();
    assert_ok(&run_once(&laptop));
    let model_id = by_name["items"][0]["id"].as_str().unwrap().to_string();
    poll(Duration::from_secs(60), "the model's disappearance in /changes", || {
        let changes = c.get(&format!("/api/v1/changes?since={gone}"));
        let items = changes["assets_disappeared"]["items"].as_array()?.clone();
        items.iter().any(|i| i["asset_id"] == model_id.as_str()).then_some(())
    });
}

#[test]
fn the_teams_policy_is_checked_by_key_applied_once_per_version_and_its_exceptions_acknowledge() {
    let c = Collector::start_with("[findings]\ninterval = \"1s\"\n");
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join(".env"), format!("ANTHROPIC_API_KEY={KEY_VALUE}\n")).unwrap();
    let options = AgentOptions { sections: vec!["models", "frameworks", "tooling"], ..AgentOptions::default() };
    let venv = findings_venv();
    let config = c.agent_with("lab-1", &[root.path(), venv.as_path()], &c.token_file("token", &[]), &options);
    assert_ok(&run_once(&config));
    items(&c, "/api/v1/findings?rule=plaintext-ai-api-key", 1);

    let run = |args: &[&str]| {
        let out = Command::new(aiscout_e2e::collector_bin())
            .arg("--config")
            .arg(c.dir.path().join("collector.toml"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // A broken policy: every problem named by its key, exit 1.
    let bad = root.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 0\n[frameworks]\nfloors = { torch = \"new\" }\n[severity]\nsilent-host = \"urgent\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["policy", "check", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    for key in ["version:", "frameworks.floors.torch:", "severity.silent-host:"] {
        assert!(err.contains(&format!("{}: {key}", bad.display())), "{key}: {err}");
    }
    let (code, _, _) = run(&["policy", "apply", bad.to_str().unwrap()]);
    assert_eq!(code, Some(2), "a broken policy is not applied");
    let example = aiscout_e2e::workspace_root().join("packaging/policy.example.toml");
    let (code, out, _) = run(&["policy", "check", example.to_str().unwrap()]);
    assert_eq!((code, out.trim()), (Some(0), format!("{}: valid (version 1)", example.display()).as_str()));

    // The example policy: keras below its floor; the lab host's key an accepted exception.
    let (code, out, err) = run(&["policy", "apply", example.to_str().unwrap(), "--by", "secops"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("policy version 1 applied (sha256 "), "{out}");
    let floor = items(&c, "/api/v1/findings?rule=framework-below-floor", 1);
    assert!(floor[0]["title"].as_str().unwrap().contains("keras 3.8.0 is below the policy floor 3.9.0"), "{floor:#?}");
    let key = c.get("/api/v1/findings?rule=plaintext-ai-api-key");
    assert_eq!(key["items"][0]["state"], "acknowledged", "{key:#}");
    assert_eq!(key["items"][0]["acknowledgement"]["by"], "policy v1: ml-platform@example.com");
    assert_eq!(key["items"][0]["acknowledgement"]["reason"], "lab machines with scoped keys, rotated weekly");
    let applied = c.get("/api/v1/policy");
    assert_eq!((applied["version"].as_u64(), applied["applied_by"].as_str()), (Some(1), Some("secops")), "{applied:#}");
    assert_eq!(applied["text"], std::fs::read_to_string(&example).unwrap());
    let (code, _, err) = run(&["policy", "apply", example.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(err.contains("1 is not above the applied policy's version 1"), "{err}");

    // The audit trail holds who enrolled, what was applied and accepted, chained and intact.
    let audit = c.get("/api/v1/audit?limit=1000");
    let kinds: Vec<&str> = audit["items"].as_array().unwrap().iter().filter_map(|r| r["kind"].as_str()).collect();
    for kind in [
        "api_token.created",
        "enrollment_token.created",
        "agent.enrolled",
        "asset.appeared",
        "finding.opened",
        "policy.applied",
        "finding.acknowledged",
    ] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    let (code, out, err) = run(&["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(&format!("audit trail intact: {} records, last {} sha256 ", kinds.len(), kinds.len())),
        "{out}"
    );
    assert!(!audit.to_string().contains(KEY_VALUE));
}
