//! The agent daemon between full inventories: a model file that appears in, or leaves, a
//! watched directory reaches the collector within seconds, with no full inventory due.

use std::path::Path;
use std::time::Duration;

use aiscout_e2e::fixtures_dir;
use aiscout_e2e::fleet::{poll, spawn_daemon, AgentOptions, Collector};

/// Live sightings' paths.
fn live_paths(c: &Collector) -> Vec<String> {
    c.live_model_sightings().into_iter().map(|s| s.path).collect()
}

fn path_of(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn a_model_added_or_removed_under_a_running_daemon_reaches_the_collector_within_seconds() {
    let c = Collector::start();
    let token = c.token_file("token", &[]);
    let roots = tempfile::tempdir().unwrap();
    let root = roots.path().join("models");
    std::fs::create_dir_all(&root).unwrap();
    let first = root.join("first.onnx");
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), &first).unwrap();
    // No full inventory and no poll is due during the test: whatever arrives came by a watch.
    let options = AgentOptions {
        extra_toml: "[schedule]\nfull_interval = \"1h\"\nruntimes_interval = \"1h\"\n[watch]\npoll_interval = \"1h\"\n"
            .into(),
        ..AgentOptions::default()
    };
    let config = c.agent_with("watcher", &[&root], &token, &options);
    let _agent = spawn_daemon(&config, &roots.path().join("agent.log"));
    let agent_log = || std::fs::read_to_string(roots.path().join("agent.log")).unwrap_or_default();
    poll(Duration::from_secs(60), "first inventory", || (live_paths(&c) == [path_of(&first)]).then_some(()));
    // The watches are set once the first inventory is spooled; the log says so.
    poll(Duration::from_secs(10), "watches", || agent_log().contains("model directories watched").then_some(()));

    // A new file in the watched directory, and one in a directory created after the watch.
    let added = root.join("added.npy");
    std::fs::copy(fixtures_dir().join("models/weights.npy"), &added).unwrap();
    let nested_dir = root.join("later");
    std::fs::create_dir(&nested_dir).unwrap();
    let nested = nested_dir.join("nested.tflite");
    std::fs::copy(fixtures_dir().join("models/tiny.tflite"), &nested).unwrap();
    let mut want = vec![path_of(&added), path_of(&first), path_of(&nested)];
    want.sort();
    poll(Duration::from_secs(15), "new models sighted", || (live_paths(&c) == want).then_some(()));

    // A removed file stops being a live sighting; the others stay.
    std::fs::remove_file(&first).unwrap();
    want.retain(|p| *p != path_of(&first));
    poll(Duration::from_secs(15), "removal seen", || (live_paths(&c) == want).then_some(()));
    assert!(!agent_log().contains("running a full inventory"), "{}", agent_log());
}

#[test]
fn messages_that_repeat_every_cycle_are_logged_once() {
    let c = Collector::start();
    let token = c.token_file("token", &[]);
    let roots = tempfile::tempdir().unwrap();
    let root = roots.path().join("models");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.join("m.onnx")).unwrap();
    // A full inventory (with the GPU section, absent on this machine) every second.
    let options = AgentOptions {
        extra_toml: "[schedule]\nfull_interval = \"1s\"\nruntimes_interval = \"1s\"\njitter = \"0s\"\n".into(),
        sections: vec!["models", "gpus"],
        ..AgentOptions::default()
    };
    let config = c.agent_with("repeats", &[&root], &token, &options);
    let log_path = roots.path().join("agent.log");
    let _agent = spawn_daemon(&config, &log_path);
    let count = |needle: &str| std::fs::read_to_string(&log_path).unwrap_or_default().matches(needle).count();
    poll(Duration::from_secs(60), "three full inventories", || (count("scan finished") >= 3).then_some(()));
    let text = std::fs::read_to_string(&log_path).unwrap();
    for once in ["walk started", "model directories watched"] {
        assert_eq!(count(once), 1, "{once:?} is repeated:\n{text}");
    }
    assert_eq!(count("spool drained sent=0"), 0, "an empty drain is logged:\n{text}");
    // Without a GPU the absence is said once; with one the line is not there at all.
    assert!(count("no gpu inventory") <= 1, "the gpu absence is repeated:\n{text}");
    if !Path::new("/proc/driver/nvidia/version").exists() {
        assert_eq!(count("no gpu inventory"), 1, "{text}");
    }
}
