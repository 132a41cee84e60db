//! Two collector processes on one PostgreSQL database (docs/scale.md): any replica serves any
//! agent, an agent whose collector dies fails over to the other and resumes where it was, and
//! the inventory stays exact.
//!
//! The database is `AISCOUT_TEST_POSTGRES` when set (scripts/test.sh), else a fresh one made
//! by `scripts/postgres-db.sh` on this machine's server and dropped at the end.

use std::path::Path;
use std::process::Command;

use std::time::{Duration, Instant};

use aiscout_e2e::fleet::{assert_ok, poll, run_once, spawn_once, write_private, AgentOptions, Collector};
use aiscout_e2e::proxy::Proxy;
use aiscout_e2e::{fixtures_dir, workspace_root};

/// A database for this test: a schema-free fresh one, dropped when the guard goes.
struct Database {
    /// `postgres://…/aiscout_test_…`.
    url: String,
    /// Made here, so dropped here.
    owned: bool,
}

impl Database {
    fn fresh() -> Self {
        let script = workspace_root().join("scripts/postgres-db.sh");
        let out = Command::new(&script).arg("create").output().unwrap();
        assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
        Self { url: String::from_utf8(out.stdout).unwrap().trim().to_owned(), owned: true }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if self.owned {
            let _ = Command::new(workspace_root().join("scripts/postgres-db.sh")).args(["drop", &self.url]).status();
        }
    }
}

/// Every test here gets its own database: the shared one of the run is for the conformance
/// suite's schemas.
fn database() -> Database {
    Database::fresh()
}

fn model_paths(c: &Collector) -> Vec<String> {
    let mut paths: Vec<String> = c
        .live_model_sightings()
        .into_iter()
        .map(|s| Path::new(&s.path).file_name().unwrap().to_string_lossy().into())
        .collect();
    paths.sort();
    paths
}

#[test]
fn an_agent_fails_over_to_another_replica_and_the_inventory_stays_exact() {
    let db = database();
    let mut first = Collector::replica(&db.url, None);
    let second = Collector::replica(&db.url, Some(&first));
    // A token made through one replica is good on the other: it lives in the store.
    let token = second.token_file("token", &["--uses", "1", "--ttl", "1h"]);
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.path().join("a.onnx")).unwrap();
    std::fs::copy(fixtures_dir().join("models/weights.npy"), root.path().join("b.npy")).unwrap();
    let config = first.agent("x", &[root.path()], &token);
    let text = std::fs::read_to_string(&config).unwrap();
    let failover = format!("failover_urls = [\"https://127.0.0.1:{}\"]\nca_file", second.grpc_port);
    std::fs::write(&config, text.replacen("ca_file", &failover, 1)).unwrap();

    // Enrolled and inventoried through the first; the second reads it all.
    assert_ok(&run_once(&config));
    assert_eq!(model_paths(&second), ["a.onnx", "b.npy"]);
    assert_eq!(model_paths(&first), model_paths(&second));

    // The first dies; the agent's next run fails over and resumes its sequence there.
    first.kill();
    std::fs::remove_file(root.path().join("b.npy")).unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.path().join("c.onnx")).unwrap();
    let out = run_once(&config);
    assert_ok(&out);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("failed over to another collector"), "{log}");
    assert_eq!(model_paths(&second), ["a.onnx", "c.onnx"], "exactly what the host holds");
    let host = &second.hosts()[0];
    assert_eq!(host["hostname"], "host-x");

    // The first comes back: it serves the same inventory, and the agent (which now prefers the
    // second) keeps streaming there with nothing replayed twice.
    first.restart();
    assert_eq!(model_paths(&first), ["a.onnx", "c.onnx"]);
    assert_ok(&run_once(&config));
    assert_eq!(model_paths(&first), ["a.onnx", "c.onnx"]);
    let models = second.model_assets();
    assert_eq!(models.len(), 2, "a.onnx and c.onnx are one asset, b.npy is history: {models:#?}");
    let onnx = models.iter().find(|m| m["sightings"] == 2).unwrap_or_else(|| panic!("{models:#?}"));
    assert_eq!(onnx["hosts"], 1);

    // Each replica counts what it applied: together, every batch the agent sent.
    let metrics = second.get_text("/metrics");
    assert!(metrics.lines().any(|l| l.starts_with("aiscout_batches_total{outcome=\"applied\"} ")), "{metrics}");
}

/// Model `i`: `weights.npy` with `i` in its first data bytes, so each has its own digest.
fn model(i: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(fixtures_dir().join("models/weights.npy")).unwrap();
    bytes[128..132].copy_from_slice(&u32::try_from(i).unwrap().to_le_bytes());
    bytes
}

fn model_count(c: &Collector) -> u64 {
    c.get("/api/v1/assets?kind=model&limit=1")["total"].as_u64().unwrap()
}

/// How long the database is away, as the issue states it.
const CUT: Duration = Duration::from_secs(30);

#[test]
fn a_database_cut_for_30_seconds_mid_stream_is_waited_out_and_nothing_is_lost() {
    // One model a batch, each acknowledged on its own: enough batches (a few milliseconds each)
    // that the cut falls mid-stream.
    const MODELS: usize = 600;
    let db = database();
    let (host, port) = db
        .url
        .trim_start_matches("postgres://")
        .split_once('@')
        .unwrap()
        .1
        .split_once('/')
        .unwrap()
        .0
        .split_once(':')
        .unwrap();
    let proxy = Proxy::start(format!("{host}:{port}").parse().unwrap());
    let via_proxy = db.url.replace(&format!("{host}:{port}"), &format!("127.0.0.1:{}", proxy.port));
    let c = Collector::replica_with(&via_proxy, None, "[agents]\nbatches_per_minute = 100000\n");
    let root = tempfile::tempdir().unwrap();
    for i in 0..MODELS {
        std::fs::write(root.path().join(format!("m{i:04}.npy")), model(i)).unwrap();
    }
    let token = c.token_file("token", &[]);
    let options = AgentOptions { extra_toml: "[transport]\nbatch_max_assets = 1\n".into(), ..AgentOptions::default() };
    let config = c.agent_with("a", &[root.path()], &token, &options);

    // The agent is sending, one model a batch, when the database goes away.
    let log = c.dir.path().join("agent-1.log");
    let mut agent = spawn_once(&config, &log);
    poll(Duration::from_secs(30), "some models landed", || (model_count(&c) >= 20).then_some(()));
    proxy.cut();
    let cut_at = Instant::now();
    // The API answers at once that the store is unavailable: nothing hangs.
    poll(Duration::from_secs(15), "the api says 503", || {
        (c.get_status("/api/v1/hosts", c.api_token()) == 503).then_some(())
    });
    // The agent's run ends: its batches were not acknowledged, they stay in its spool.
    let status = agent.0.wait().unwrap();
    assert!(!status.success(), "the run could not finish without a store");
    let landed_during_cut = std::fs::read_to_string(&log).unwrap();
    assert!(
        landed_during_cut.contains("unavailable") || landed_during_cut.contains("Unavailable"),
        "{landed_during_cut}"
    );
    // More changes on the host while the database is away.
    for i in 0..10 {
        std::fs::remove_file(root.path().join(format!("m{i:04}.npy"))).unwrap();
    }
    for i in MODELS..MODELS + 10 {
        std::fs::write(root.path().join(format!("m{i:04}.npy")), model(i)).unwrap();
    }
    std::thread::sleep(CUT.saturating_sub(cut_at.elapsed()));
    proxy.restore();

    // The same collector, never restarted, serves again; the agent resumes from its spool.
    poll(Duration::from_secs(30), "the api answers again", || {
        (c.get_status("/api/v1/hosts", c.api_token()) == 200).then_some(())
    });
    let mut ok = false;
    for _ in 0..3 {
        if run_once(&config).status.success() {
            ok = true;
            break;
        }
    }
    assert!(ok, "the agent drains its spool once the store is back");
    let mut live: Vec<String> = c
        .live_model_sightings()
        .into_iter()
        .map(|s| Path::new(&s.path).file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    live.sort();
    let mut disk: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    disk.sort();
    assert_eq!(live.len(), disk.len(), "one live sighting per file");
    assert_eq!(live, disk, "exactly the disk");
    let metrics = c.get_text("/metrics");
    assert!(metrics.lines().any(|l| l.starts_with("aiscout_store_errors_total{kind=\"unavailable\"} ")), "{metrics}");
}

/// Agents the simulator plays in the replica-kill test: half start on each replica.
const SIM_AGENTS: u64 = 30;

#[test]
fn a_replica_killed_mid_stream_loses_nothing_its_agents_fail_over() {
    let db = database();
    // Simulated agents send a batch every half second each: more than the default per-agent budget.
    let limits = "[agents]\nbatches_per_minute = 100000\n";
    let mut first = Collector::replica_with(&db.url, None, limits);
    let second = Collector::replica_with(&db.url, Some(&first), limits);
    let token = second.token_file("sim.token", &["--uses", "30"]);
    let api_token = second.dir.path().join("sim.api-token");
    write_private(&api_token, &second.command(&["api-token", "create", "--label", "sim"]));
    let urls = format!("https://127.0.0.1:{},https://127.0.0.1:{}", first.grpc_port, second.grpc_port);
    let sim = second
        .fleet_sim(&urls, &token, &api_token)
        .args(["--agents", &SIM_AGENTS.to_string(), "--entries", "120", "--batch-size", "20"])
        .args(["--duration", "12", "--delta-interval", "0.5", "--drain-timeout", "60", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Every agent has streamed to its first collector (hosts are in the store), and the deltas
    // keep coming: the first replica dies under them.
    poll(Duration::from_secs(60), "every simulated host in the store", || {
        (second.hosts().len() as u64 == SIM_AGENTS).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    first.kill();
    let out = sim.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "fleet-sim failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // The streams on the dead replica broke; their agents failed over and resent what was not
    // acknowledged; the store, read through the survivor, is exactly what every agent holds.
    let errors: u64 = report["errors"].as_object().unwrap().values().filter_map(serde_json::Value::as_u64).sum();
    assert!(errors > 0, "the kill broke streams: {report:#}");
    assert_eq!(report["verification"]["ok"], true, "{report:#}");
    assert_eq!(report["verification"]["hosts_checked"].as_u64(), Some(SIM_AGENTS), "{report:#}");
    assert_eq!(report["unflushed_agents"], 0, "{report:#}");
}
