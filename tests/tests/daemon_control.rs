//! Operating a running daemon: SIGHUP reloads its configuration (a refused file changes
//! nothing), and `aiscout-agent status` reports its health from the status file, with the
//! exit codes endpoint tools check.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use aiscout_e2e::fleet::{poll, spawn_daemon, AgentOptions, Collector};
use aiscout_e2e::{agent_bin, fixtures_dir, Child};
use serde_json::Value;

/// `aiscout-agent status --json --config <config>`: exit code and document.
fn status(config: &Path) -> (Option<i32>, Value) {
    let out = Command::new(agent_bin()).args(["status", "--json", "--config"]).arg(config).output().unwrap();
    let doc = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code(), doc)
}

fn hangup(child: &Child) {
    let pid = rustix::process::Pid::from_raw(child.0.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).unwrap();
}

fn live_paths(c: &Collector) -> Vec<String> {
    c.live_model_sightings().into_iter().map(|s| s.path).collect()
}

#[test]
fn sighup_reloads_the_configuration_and_status_tells_the_daemons_health() {
    let c = Collector::start();
    let token = c.token_file("token", &[]);
    let dir = tempfile::tempdir().unwrap();
    let (first_root, second_root) = (dir.path().join("first"), dir.path().join("second"));
    for (root, name) in [(&first_root, "a.onnx"), (&second_root, "b.onnx")] {
        std::fs::create_dir_all(root).unwrap();
        std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.join(name)).unwrap();
    }
    // Nothing is due during the test but what the reload starts.
    let options = AgentOptions {
        extra_toml: "[schedule]\nfull_interval = \"1h\"\nruntimes_interval = \"1h\"\n[watch]\nenabled = false\n".into(),
        ..AgentOptions::default()
    };
    let config = c.agent_with("hup", &[&first_root], &token, &options);
    let (code, _) = status(&config);
    assert_eq!(code, Some(2), "no status before the daemon ever ran");

    let agent = spawn_daemon(&config, &dir.path().join("agent.log"));
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let a = first_root.join("a.onnx").display().to_string();
    let b = second_root.join("b.onnx").display().to_string();
    poll(Duration::from_secs(60), "first inventory", || (live_paths(&c) == [a.clone()]).then_some(()));
    let doc = poll(Duration::from_secs(10), "healthy status", || {
        let (code, doc) = status(&config);
        (code == Some(0) && doc["last_send_ok_at_ms"].is_i64()).then_some(doc)
    });
    assert_eq!(doc["running"], true, "{doc}");
    assert_eq!(doc["pid"], agent.0.id(), "{doc}");
    assert_eq!(doc["last_inventory"]["models"], 1, "{doc}");
    assert_eq!(doc["spool_records"], 0, "everything acknowledged: {doc}");
    assert!(doc["agent_id"].is_string(), "{doc}");

    // A broken file is refused: the daemon runs on, on the old configuration, and says so.
    let good = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, good.replace("[scan]", "[scan]\nroots_typo = 1")).unwrap();
    hangup(&agent);
    let doc = poll(Duration::from_secs(10), "reload refused", || {
        let (code, doc) = status(&config);
        (code == Some(1) && doc["reload_error"].is_string()).then_some(doc)
    });
    assert!(doc["reload_error"].as_str().unwrap().contains("roots_typo"), "{doc}");
    assert_eq!(doc["reloads"], 0);
    assert!(agent_log().contains("configuration reload refused"), "{}", agent_log());

    // A good file with another root applies at once: a full inventory under the new roots.
    let text = good.replace(&format!("\"{}\"", first_root.display()), &format!("\"{}\"", second_root.display()));
    // A restart-only key changed at the same time is held back and named.
    std::fs::write(&config, format!("{text}[log]\njson = true\n")).unwrap();
    hangup(&agent);
    poll(Duration::from_secs(30), "inventory of the new root", || (live_paths(&c) == [b.clone()]).then_some(()));
    let doc = poll(Duration::from_secs(10), "healthy again", || {
        let (code, doc) = status(&config);
        (code == Some(0) && doc["reloads"] == 1).then_some(doc)
    });
    assert_eq!(doc["restart_pending"], serde_json::json!(["log"]), "{doc}");
    assert!(doc.get("reload_error").is_none(), "{doc}");

    // Stopped: status says so and fails.
    drop(agent);
    let (code, doc) = status(&config);
    assert_eq!(code, Some(1), "{doc}");
    assert_eq!(doc["running"], false, "{doc}");
    let out = Command::new(agent_bin()).args(["status", "--config"]).arg(&config).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("not running") && text.contains("problems:"), "{text}");
}
