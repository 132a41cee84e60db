//! The runtimes section against real processes: an onnxruntime process holding a model open and
//! listening on all interfaces, a Jupyter server on loopback, and a process the agent may not
//! read. No mock of /proc: the agent reads the real one.

use std::process::{Command, Stdio};
use std::time::Duration;

use aiscout_e2e::{
    first_line, fixtures_dir, process_python, run_agent, run_agent_as_nobody, wait_for_port, workspace_root, Child,
};
use serde_json::Value;

/// A value no output may contain.
fn fake_secret(label: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("sk-test-{label}-{nanos:x}{:x}", std::process::id())
}

fn runtime(doc: &Value, pid: u32) -> &Value {
    doc["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in runtimes: {:#}", doc["runtimes"]))
}

fn start_onnx_holder(model: &std::path::Path, envs: &[(&str, &str)]) -> (Child, u16) {
    let mut child = Child(
        Command::new(process_python())
            .arg(workspace_root().join("tests/procs/hold_onnx.py"))
            .arg(model)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let port: u16 = first_line(&mut child).parse().expect("hold_onnx.py prints its port");
    (child, port)
}

#[test]
fn onnxruntime_process_is_reported_with_its_model_its_socket_and_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("served.onnx");
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), &model).unwrap();
    let secret = fake_secret("env");
    let (child, port) = start_onnx_holder(&model, &[("OPENAI_API_KEY", &secret), ("CUDA_VISIBLE_DEVICES", "0")]);
    let pid = child.0.id();

    let (stdout, stderr) = run_agent(
        &["scan", "--json", "--no-cache", "--only", "models,runtimes,tooling", dir.path().to_str().unwrap()],
        &[],
    );
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let r = runtime(&doc, pid);
    assert_eq!(r["kind"], "ml-process");
    assert!(r["ml_libraries"].as_array().unwrap().contains(&Value::from("onnxruntime")), "{r:#}");
    let model_entry = doc["models"].as_array().unwrap().iter().find(|m| m["format"] == "onnx").unwrap();
    let open = r["open_models"].as_array().unwrap();
    assert_eq!(open.len(), 1, "{r:#}");
    assert_eq!(open[0]["path"], model.to_str().unwrap());
    assert_eq!(open[0]["sha256"], model_entry["sha256"], "the open model links to the model entry by digest");
    assert_eq!(open[0]["format"], "onnx");
    assert!(open[0]["via"].as_array().unwrap().contains(&Value::from("fd")));
    let listening = r["listening"].as_array().unwrap();
    assert!(
        listening.iter().any(|l| l["port"] == port && l["address"] == "0.0.0.0" && l["exposure"] == "all_interfaces"),
        "{listening:?}"
    );
    assert!(r["findings"].as_array().unwrap().iter().any(|f| f.as_str().unwrap().contains("all interfaces")));
    assert_eq!(r["user"], std::env::var("USER").unwrap_or_else(|_| r["user"].as_str().unwrap().to_string()));
    assert!(r["started_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(r["environment"]["CUDA_VISIBLE_DEVICES"], "0");
    assert_eq!(r["environment"]["OPENAI_API_KEY"], "<redacted>");
    // The key in the process environment is reported by name in tooling, never by value.
    let keys: Vec<&Value> = doc["tooling"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"] == "api_key" && t["pid"] == pid && t["variable"] == "OPENAI_API_KEY")
        .collect();
    assert_eq!(keys.len(), 1, "{:#}", doc["tooling"]);
    assert!(!stdout.contains(&secret) && !stderr.contains(&secret), "the secret value leaked");
}

#[test]
fn jupyter_server_on_loopback_is_classified_with_auth_and_identified() {
    let token = fake_secret("jupyter");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let root = tempfile::tempdir().unwrap();
    let jupyter = process_python().with_file_name("jupyter-server");
    let child = Child(
        Command::new(&jupyter)
            .args(["--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1"])
            .arg(format!("--ServerApp.port={port}"))
            .arg(format!("--ServerApp.root_dir={}", root.path().display()))
            .arg(format!("--IdentityProvider.token={token}"))
            .env("JUPYTER_RUNTIME_DIR", root.path().join("runtime"))
            .env("JUPYTER_CONFIG_DIR", root.path().join("config"))
            .env("JUPYTER_DATA_DIR", root.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port, Duration::from_secs(60));
    let pid = child.0.id();

    let (stdout, stderr) = run_agent(&["scan", "--json", "--only", "runtimes", "--identify-servers"], &[]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let r = runtime(&doc, pid);
    assert_eq!(r["kind"], "jupyter-server");
    assert_eq!(r["listening"], serde_json::json!([{"address": "127.0.0.1", "port": port, "exposure": "loopback"}]));
    assert_eq!(r["auth"]["state"], "configured");
    assert_eq!(r["auth"]["evidence"], serde_json::json!(["--IdentityProvider.token"]));
    assert!(r["cmdline"].as_array().unwrap().contains(&Value::from("--IdentityProvider.token=<redacted>")));
    assert_eq!(r["identity"]["status"], 200, "{:#}", r["identity"]);
    assert_eq!(r["identity"]["version"], "2.17.0", "the version pinned in tests/process-requirements.txt");
    assert!(r["findings"].as_array().is_none_or(|f| f.is_empty()), "loopback with a token is no finding");
    assert!(!stdout.contains(&token) && !stderr.contains(&token), "the token leaked");
}

#[test]
fn identification_is_off_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), &model).unwrap();
    let (child, _) = start_onnx_holder(&model, &[]);
    let (stdout, _) = run_agent(&["scan", "--json", "--no-cache", "--only", "runtimes"], &[]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    assert!(doc["runtimes"].as_array().unwrap().iter().all(|r| r.get("identity").is_none()));
    // Without the models section and without a cache the open model is still recognised by
    // content, without digest.
    let r = runtime(&doc, child.0.id());
    assert_eq!(r["open_models"][0]["format"], "onnx");
    assert!(r["open_models"][0].get("sha256").is_none());
}

#[test]
fn a_runtimes_only_refresh_links_the_open_model_by_digest_through_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("served.onnx");
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), &model).unwrap();
    let (child, _) = start_onnx_holder(&model, &[]);
    let (stdout, _) =
        run_agent(&["scan", "--json", "--no-cache", "--only", "models", dir.path().to_str().unwrap()], &[]);
    let doc: Value = serde_json::from_str(&stdout).unwrap();
    let digest = doc["models"][0]["sha256"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);

    // A daemon's runtimes refresh: no models section, the state directory's cache. The first
    // hashes the file into the cache, the second finds it there; both carry the digest.
    let state = tempfile::tempdir().unwrap();
    let state_dir = state.path().to_str().unwrap();
    for round in 0..2 {
        let (stdout, _) = run_agent(&["scan", "--json", "--state-dir", state_dir, "--only", "runtimes"], &[]);
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let open = &runtime(&doc, child.0.id())["open_models"][0];
        assert_eq!(open["path"], model.to_str().unwrap(), "round {round}");
        assert_eq!(open["sha256"], digest.as_str(), "round {round}: {open:#}");
    }
}

#[test]
fn a_process_the_agent_may_not_read_is_listed_as_restricted() {
    // The ML process runs as this user; the agent runs as `nobody` through setpriv, so the
    // kernel refuses it the process's maps and descriptors. That needs root to set up.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m.onnx");
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), &model).unwrap();
    let (child, _) = start_onnx_holder(&model, &[]);
    let pid = child.0.id();
    let out = run_agent_as_nobody(&["scan", "--json", "--only", "runtimes"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["runtimes"].as_array().unwrap().iter().all(|r| r["pid"] != pid), "it cannot see the ML libraries");
    let restricted = doc["restricted_processes"].as_array().unwrap();
    let entry = restricted.iter().find(|r| r["pid"] == pid).unwrap_or_else(|| panic!("{restricted:#?}"));
    let unreadable = entry["unreadable"].as_array().unwrap();
    assert!(unreadable.contains(&Value::from("maps")) && unreadable.contains(&Value::from("fd")), "{entry}");
    assert!(doc["stats"]["processes_restricted"].as_u64().unwrap() >= 1);
}
