//! Two collector processes on one PostgreSQL database (docs/scale.md): any replica serves any
//! agent, an agent whose collector dies fails over to the other and resumes where it was, and
//! the inventory stays exact.
//!
//! The database is `AISCOUT_TEST_POSTGRES` when set (scripts/test.sh), else a fresh one made
//! by `scripts/postgres-db.sh` on this machine's server and dropped at the end.

use std::path::Path;
use std::process::Command;

use aiscout_e2e::fleet::{assert_ok, run_once, Collector};
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
