//! The fleet simulator (`aiscout-fleet-sim`, docs/fleet-sim.md) against a dev collector: twenty
//! agents enroll, snapshot, send deltas, reconnect and replay acknowledged batches over mutual
//! TLS, and the store's hosts and model assets match what the simulator says they hold; a
//! second run reuses the enrolled agents from the state file without enrolling them again.

use std::path::Path;

use aiscout_e2e::fleet::{write_private, Collector};
use serde_json::Value;

/// Runs the simulator against `c` with `extra` arguments and returns its JSON report.
fn simulate(c: &Collector, token: &Path, api_token: &Path, state: &Path, extra: &[&str]) -> Value {
    let out = c
        .fleet_sim(&format!("https://127.0.0.1:{}", c.grpc_port), token, api_token)
        .arg("--state")
        .arg(state)
        .args(["--agents", "20", "--entries", "120", "--batch-size", "50", "--json"])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fleet-sim failed: {}\n{stdout}\n{stderr}", out.status);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("the report is not json: {e}: {stdout}"))
}

#[test]
fn simulated_agents_stream_over_mutual_tls_and_the_store_matches_them() {
    let c = Collector::start();
    let token = c.token_file("sim.token", &["--uses", "20"]);
    let api_token = c.dir.path().join("sim.api-token");
    write_private(&api_token, &c.command(&["api-token", "create", "--label", "sim"]));
    let state = c.dir.path().join("sim-state.json");

    let first = simulate(
        &c,
        &token,
        &api_token,
        &state,
        &["--duration", "10", "--delta-interval", "1", "--reconnect-every", "4", "--replay"],
    );
    assert_eq!(first["verification"]["ok"], true, "{first:#}");
    assert_eq!((first["agents"].as_u64(), first["enrolled"].as_u64()), (Some(20), Some(20)), "{first:#}");
    assert_eq!(first["verification"]["hosts_checked"], 20, "{first:#}");
    // 120 entries in parts of 50: three parts a host, then deltas.
    assert!(first["batches_acked"].as_u64().unwrap() > 60, "{first:#}");
    assert!(first["reconnects"].as_u64().unwrap() > 0, "{first:#}");
    assert!(first["replays"].as_u64().unwrap() > 0, "the collector acknowledges replays: {first:#}");
    assert_eq!(first["unflushed_agents"], 0, "{first:#}");

    // The same agents again, from the state file: the token has no use left, and none is needed.
    let second = simulate(&c, &token, &api_token, &state, &["--duration", "3", "--delta-interval", "1", "--seed", "2"]);
    assert_eq!((second["reused"].as_u64(), second["enrolled"].as_u64()), (Some(20), Some(0)), "{second:#}");
    assert_eq!(second["verification"]["ok"], true, "{second:#}");
    assert_eq!(c.hosts().len(), 20);
}
