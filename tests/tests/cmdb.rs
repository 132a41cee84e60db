//! The inventory pushed to a CMDB: a real collector and agent, a ServiceNow instance played by
//! tests/receivers/servicenow_receiver.py (which enforces the Identification and
//! Reconciliation contract: authentication, registered data source, dependent CIs with their
//! host, 429 now and then) and a webhook played by tests/receivers/cmdb_webhook_receiver.py.
//!
//! The agent scans the machine's processes, so runtimes of other tests running at the same time
//! may join the inventory: the assertions name the CIs this test made, and count the others
//! only where every CI behaves alike.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use aiscout_e2e::fleet::{assert_ok, free_port, poll, run_once, AgentOptions, Collector};
use aiscout_e2e::{collector_bin, first_line, fixtures_dir, serve_holding_open, workspace_root, Child};
use serde_json::Value;

const USER: &str = "aiscout.integration";
const PASSWORD: &str = "sn-pass-Zq81-secret";
/// `Basic` and the base64 of `USER:PASSWORD`.
const BASIC: &str = "Basic YWlzY291dC5pbnRlZ3JhdGlvbjpzbi1wYXNzLVpxODEtc2VjcmV0";

/// A ServiceNow instance on `port` with `data_sources` registered and `classes` existing,
/// answering every `throttle_every`-th POST 429 (0: never).
fn instance(port: u16, data_sources: &str, classes: &str, throttle_every: u32) -> Child {
    let mut child = Child(
        Command::new("python3")
            .arg(workspace_root().join("tests/receivers/servicenow_receiver.py"))
            .args([&port.to_string(), USER, PASSWORD, data_sources, classes, &throttle_every.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(first_line(&mut child), "ready");
    child
}

/// The instance's table and counters.
fn table(port: u16) -> Value {
    let url = format!("http://127.0.0.1:{port}/__table");
    let body = ureq::get(&url).call().unwrap().body_mut().read_to_string().unwrap();
    serde_json::from_str(&body).unwrap()
}

/// The instance's row of CI `key`.
fn row(port: u16, key: &str) -> Value {
    let t = table(port);
    let rows: Vec<&Value> = t["rows"].as_array().unwrap().iter().filter(|r| r["source_native_key"] == key).collect();
    assert_eq!(rows.len(), 1, "one row for {key}: {t:#}");
    rows[0].clone()
}

/// The `[cmdb.servicenow]` table for the instance on `port`.
fn servicenow_section(port: u16, data_source: &str, secret: &Path, extra: &str) -> String {
    format!(
        "[cmdb.servicenow]\ninstance_url = \"http://127.0.0.1:{port}\"\ndata_source = \"{data_source}\"\n\
         user = \"{USER}\"\nsecret_file = \"{}\"\nbatch_size = 2\nmodel_fallback_class = \"u_ai_model\"\n\
         max_retry_wait = \"30s\"\n{extra}",
        secret.display()
    )
}

/// A configuration for `push` on `c`'s database: its data directory and ports, and `section`.
fn push_config(c: &Collector, name: &str, section: &str) -> PathBuf {
    let path = c.dir.path().join(name);
    let text = format!(
        "data_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\napi_listen = \"127.0.0.1:{}\"\n[tls]\ndev = true\n{section}",
        c.dir.path().join("data").display(),
        c.grpc_port,
        c.api_port
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `aiscout-collector --config CONFIG push ARGS`.
fn push(config: &Path, args: &[&str]) -> Output {
    Command::new(collector_bin()).arg("--config").arg(config).arg("push").args(args).output().unwrap()
}

/// The JSON report a `push … --json` printed.
fn report(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })
}

/// The sum of `field` over the report's classes.
fn total(report: &Value, field: &str) -> u64 {
    report["classes"].as_object().unwrap().values().map(|c| c[field].as_u64().unwrap()).sum()
}

/// `GET path` with `token`: status and JSON body.
fn get_with(c: &Collector, path: &str, token: &str) -> (u16, Value) {
    let url = format!("http://127.0.0.1:{}{path}", c.api_port);
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut resp = agent.get(&url).header("Authorization", &format!("Bearer {token}")).call().unwrap();
    let status = resp.status().as_u16();
    let body = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// POSTs `body` to the instance's identifyreconcile with the right credentials, as the push
/// would, and returns its answer.
fn raw_post(port: u16, query: &str, body: &Value) -> Value {
    let url = format!("http://127.0.0.1:{port}/api/now/identifyreconcile{query}");
    let mut resp = ureq::post(&url)
        .header("Authorization", BASIC)
        .header("Content-Type", "application/json")
        .send(body.to_string())
        .unwrap();
    serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
}

fn agent_id(c: &Collector, name: &str) -> String {
    std::fs::read_to_string(c.state_dir(name).join("tls/agent.id")).unwrap().trim().to_string()
}

/// The model asset id of the live sighting at `path`.
fn model_at(c: &Collector, path: &Path) -> String {
    let wanted = path.display().to_string();
    poll(Duration::from_secs(30), &wanted, || {
        c.live_model_sightings().into_iter().find(|s| s.path == wanted).map(|s| s.asset_id)
    })
}

#[test]
fn the_inventory_reaches_servicenow_once_then_updates_retires_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("servicenow.secret");
    std::fs::write(&secret, format!("{PASSWORD}\n")).unwrap();
    // The instance the schedule of `serve` pushes to, every second.
    let scheduled_port = free_port();
    let _scheduled = instance(scheduled_port, "aiscout", "cmdb_ci_appl,u_ai_model", 0);
    let c = Collector::start_with(&servicenow_section(scheduled_port, "aiscout", &secret, "interval = \"1s\"\n"));

    // A host with three models, one of them held open by a process listening on every
    // interface: an inference server.
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("serve.pkl");
    // A hostile pickle no other end-to-end test holds open: every agent sees every process of
    // the machine, so a file shared with a concurrent test would join that test's findings.
    std::fs::copy(fixtures_dir().join("safety/hostile/builtins_exec_p4.pkl"), &served).unwrap();
    let gguf = root.path().join("tiny.gguf");
    std::fs::copy(fixtures_dir().join("safety/benign/tiny.gguf"), &gguf).unwrap();
    let removed = root.path().join("tiny.safetensors");
    std::fs::copy(fixtures_dir().join("safety/benign/tiny.safetensors"), &removed).unwrap();
    let (_server, port) = serve_holding_open(&served);
    let port: u64 = port.parse().unwrap();
    let options = AgentOptions { sections: vec!["models", "runtimes"], ..AgentOptions::default() };
    let config = c.agent_with("sn", &[root.path()], &c.token_file("token", &[]), &options);
    assert_ok(&run_once(&config));
    let host = agent_id(&c, "sn");
    let models: Vec<String> = [&served, &gguf, &removed].iter().map(|p| model_at(&c, p)).collect();
    let runtime = poll(Duration::from_secs(30), "the listening process as a runtime", || {
        let runtimes = c.get(&format!("/api/v1/assets?kind=runtime&host={host}&limit=1000"));
        runtimes["items"].as_array().unwrap().iter().find_map(|r| {
            let ports = r["columns"]["listening"].as_array()?;
            ports.iter().any(|l| l["port"] == port).then(|| r["id"].as_str().unwrap().to_string())
        })
    });

    // The instance of the CLI pushes: no AI classes (the fallbacks are used), 429 every third POST.
    let cli_port = free_port();
    let _instance = instance(cli_port, "aiscout", "cmdb_ci_appl,u_ai_model", 3);
    // It enforces what the push must satisfy: a dependent CI without its host, or a payload
    // without a data source, is refused item by item (these two POSTs also take it to the 429).
    let app = serde_json::json!({"className": "cmdb_ci_appl", "values": {"name": "orphan"},
        "sys_object_source_info": {"source_name": "aiscout", "source_native_key": "runtime:orphan",
            "source_recency_timestamp": "2026-01-01 00:00:00"}});
    for (query, error) in [("?sysparm_data_source=aiscout", "MISSING_DEPENDENCY"), ("", "INVALID_INPUT_DATA")] {
        let answer = raw_post(cli_port, query, &serde_json::json!({"items": [app.clone()], "relations": []}));
        assert_eq!(answer["result"]["items"][0]["errors"][0]["error"], error, "{answer:#}");
    }
    assert_eq!(table(cli_port)["rows"], serde_json::json!([]));
    let good = push_config(&c, "push.toml", &servicenow_section(cli_port, "aiscout", &secret, ""));

    // First push: everything is new.
    let out = push(&good, &["servicenow", "--json"]);
    let first = report(&out);
    assert!(out.status.success(), "{first:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((first["ok"].as_bool(), first["dry_run"].as_bool()), (Some(true), Some(false)), "{first:#}");
    let rows_after_first = table(cli_port)["rows"].as_array().unwrap().len() as u64;
    assert_eq!(total(&first, "inserted"), rows_after_first, "{first:#}");
    assert_eq!((total(&first, "updated"), total(&first, "unchanged"), total(&first, "failed")), (0, 0, 0), "{first:#}");
    assert_eq!(row(cli_port, &host)["className"], "cmdb_ci_linux_server");
    assert_eq!(row(cli_port, &host)["values"]["name"], "host-sn");
    let server_row = row(cli_port, &runtime);
    assert_eq!(server_row["className"], "cmdb_ci_appl", "the AI application class is absent: the fallback");
    assert_eq!(server_row["values"]["tcp_port"], port.to_string());
    for m in &models {
        let r = row(cli_port, m);
        assert_eq!((r["className"].as_str(), r["operation"].as_str()), (Some("u_ai_model"), Some("INSERT")), "{r:#}");
        assert_eq!(r["values"]["install_status"], "1");
    }
    // The 429 was met and its Retry-After honoured: nothing came back within the second.
    let stats = &table(cli_port)["stats"];
    assert!(stats["throttled"].as_u64().unwrap() >= 1, "{stats:#}");
    assert_eq!(stats["early"], 0, "{stats:#}");
    assert!(first["throttled"].as_u64().unwrap() >= 1 && first["waited_ms"].as_u64().unwrap() >= 1000, "{first:#}");
    let sys_ids: Vec<Value> = models.iter().map(|m| row(cli_port, m)["sysId"].clone()).collect();

    // One model goes away from the host; the second push retires it and changes nothing else.
    std::fs::remove_file(&removed).unwrap();
    assert_ok(&run_once(&config));
    poll(Duration::from_secs(30), "the removed model has no live sighting", || {
        let asset = c.get(&format!("/api/v1/assets/{}", models[2]));
        (asset["sightings"] == 0).then_some(())
    });
    let out = push(&good, &["servicenow", "--json"]);
    let second = report(&out);
    assert!(out.status.success(), "{second:#}");
    let rows_after_second = table(cli_port)["rows"].as_array().unwrap().len() as u64;
    assert_eq!(rows_after_second, rows_after_first + total(&second, "inserted"), "no duplicate: {second:#}");
    assert_eq!(total(&second, "failed"), 0, "{second:#}");
    for key in [&host, &runtime, &models[0], &models[1]] {
        assert_eq!(row(cli_port, key)["operation"], "NO_CHANGE", "{key}");
    }
    let retired = row(cli_port, &models[2]);
    assert_eq!(
        (retired["operation"].as_str(), retired["values"]["install_status"].as_str()),
        (Some("UPDATE"), Some("7"))
    );
    assert_eq!(retired["history"], serde_json::json!(["INSERT", "UPDATE"]));
    let again: Vec<Value> = models.iter().map(|m| row(cli_port, m)["sysId"].clone()).collect();
    assert_eq!(again, sys_ids, "the same CIs, updated in place");
    assert!(second["classes"]["u_ai_model"]["retired"].as_u64().unwrap() >= 1, "{second:#}");

    // A dry run identifies a new model without writing anything.
    std::fs::copy(fixtures_dir().join("safety/benign/tiny.onnx"), root.path().join("tiny.onnx")).unwrap();
    assert_ok(&run_once(&config));
    let onnx = model_at(&c, &root.path().join("tiny.onnx"));
    let before = table(cli_port);
    let out = push(&good, &["servicenow", "--dry-run", "--json"]);
    let dry = report(&out);
    assert!(out.status.success(), "{dry:#}");
    assert_eq!(dry["dry_run"], true);
    assert!(dry["classes"]["u_ai_model"]["inserted"].as_u64().unwrap() >= 1, "{dry:#}");
    let after = table(cli_port);
    assert_eq!(after["rows"], before["rows"], "a dry run writes nothing");
    assert_eq!(after["stats"]["writes"], before["stats"]["writes"]);
    assert!(after["stats"]["queries"].as_u64() > before["stats"]["queries"].as_u64());
    assert!(!after["rows"].as_array().unwrap().iter().any(|r| r["source_native_key"] == onnx.as_str()));

    // A data source the instance does not know: every item refused, reported, exit 1.
    let wrong = push_config(&c, "wrong.toml", &servicenow_section(cli_port, "not-registered", &secret, ""));
    let out = push(&wrong, &["servicenow", "--json"]);
    let refused = report(&out);
    assert_eq!(out.status.code(), Some(1), "{refused:#}");
    assert_eq!(refused["ok"], false);
    assert_eq!(total(&refused, "failed"), refused["errors_total"].as_u64().unwrap());
    assert!(total(&refused, "failed") >= 5, "{refused:#}");
    assert!(refused["errors"].as_array().unwrap().iter().all(|e| e["error"] == "INVALID_INPUT_DATA"), "{refused:#}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cis refused"));
    assert_eq!(table(cli_port)["rows"], after["rows"]);
    // The text report names the refusals per class.
    let out = push(&wrong, &["servicenow"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("u_ai_model: 0 inserted") && text.contains("INVALID_INPUT_DATA"), "{text}");

    // Wrong credentials: a clear error naming the URL, never a password; exit 2.
    let bad_secret = dir.path().join("bad.secret");
    std::fs::write(&bad_secret, "not-the-password-Xy7\n").unwrap();
    let unauthorized = push_config(&c, "unauthorized.toml", &servicenow_section(cli_port, "aiscout", &bad_secret, ""));
    let out = push(&unauthorized, &["servicenow"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("GET http://127.0.0.1:{cli_port}/api/now/table/sys_db_object")), "{stderr}");
    assert!(stderr.contains("401 unauthorized"), "{stderr}");
    let everything = format!("{stderr}{}", String::from_utf8_lossy(&out.stdout));
    assert!(!everything.contains("not-the-password") && !everything.contains(PASSWORD), "{everything}");

    // The schedule of `serve` pushed too, and the API shows its last report to an exporter or
    // an admin, not to a reader.
    let export = c.command(&["api-token", "create", "--scope", "export"]);
    let admin = c.command(&["api-token", "create", "--scope", "admin"]);
    let read = c.command(&["api-token", "create", "--scope", "read"]);
    poll(Duration::from_secs(60), "the scheduled push of the host", || {
        let rows = table(scheduled_port)["rows"].as_array().cloned().unwrap_or_default();
        rows.iter().any(|r| r["source_native_key"] == host.as_str()).then_some(())
    });
    let last = poll(Duration::from_secs(30), "the last push in the api", || {
        let (status, body) = get_with(&c, "/api/v1/cmdb/last-push", &export);
        assert_eq!(status, 200, "{body:#}");
        body["pushes"].as_array().and_then(|p| p.first().cloned())
    });
    assert_eq!(last["target"], "servicenow", "{last:#}");
    assert!(last["report"]["classes"].is_object(), "{last:#}");
    assert_eq!(get_with(&c, "/api/v1/cmdb/last-push", &admin).0, 200);
    assert_eq!(get_with(&c, "/api/v1/cmdb/last-push", &read).0, 403);
    assert!(c.log().contains("cmdb push done"), "the schedule logs its report");
}

#[test]
fn the_webhook_receives_signed_host_and_model_records_in_order() {
    let c = Collector::start();
    let root = tempfile::tempdir().unwrap();
    let gguf = root.path().join("tiny.gguf");
    std::fs::copy(fixtures_dir().join("safety/benign/tiny.gguf"), &gguf).unwrap();
    let config = c.agent("hook", &[root.path()], &c.token_file("token", &[]));
    assert_ok(&run_once(&config));
    let host = agent_id(&c, "hook");
    let model = model_at(&c, &gguf);

    let port = free_port();
    let out_file = c.dir.path().join("webhook.out");
    let mut receiver = Child(
        Command::new("python3")
            .arg(workspace_root().join("tests/receivers/cmdb_webhook_receiver.py"))
            .args([&port.to_string(), "hook-secret"])
            .arg(&out_file)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    assert_eq!(first_line(&mut receiver), "ready");
    let secret = c.dir.path().join("hook.secret");
    std::fs::write(&secret, "hook-secret\n").unwrap();
    let section = |secret: &Path| {
        format!("[cmdb.webhook]\nurl = \"http://127.0.0.1:{port}/aiscout\"\nsecret_file = \"{}\"\n", secret.display())
    };
    let good = push_config(&c, "hook.toml", &section(&secret));
    let out = push(&good, &["webhook", "--json"]);
    let r = report(&out);
    assert!(out.status.success(), "{r:#}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        (r["classes"]["host"]["delivered"].as_u64(), r["classes"]["model"]["delivered"].as_u64()),
        (Some(1), Some(1))
    );
    let records: Vec<Value> =
        std::fs::read_to_string(&out_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let keys: Vec<(&str, &str)> =
        records.iter().map(|r| (r["type"].as_str().unwrap(), r["key"].as_str().unwrap())).collect();
    assert_eq!(keys, [("host", host.as_str()), ("model", model.as_str())]);
    assert_eq!(records[1]["host_keys"], serde_json::json!([host]));
    assert_eq!((records[1]["format"].as_str(), records[1]["retired"].as_bool()), (Some("gguf"), Some(false)));
    assert_eq!(records[0]["hostname"], "host-hook");

    // A wrong key: the receiver refuses the signature, the push says where and exits 2.
    let bad = c.dir.path().join("bad.secret");
    std::fs::write(&bad, "wrong\n").unwrap();
    let out = push(&push_config(&c, "bad-hook.toml", &section(&bad)), &["webhook"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&format!("POST http://127.0.0.1:{port}/aiscout: status 401")), "{stderr}");
}
