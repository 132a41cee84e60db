//! Crashes mid-send: the collector or the agent killed with SIGKILL while batches flow, files
//! added and deleted meanwhile, then the agent run again until it succeeds. Whatever was cut,
//! the collector ends with exactly what is on disk: one live sighting per file, none for a
//! deleted file, one asset per distinct model.
//!
//! Each model is its own small `.npy` file with distinct contents, and the agent sends one
//! asset per batch, so a first snapshot is over a thousand batches, about a second of sending:
//! long enough to be caught in the middle by polling the API.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aiscout_e2e::fixtures_dir;
use aiscout_e2e::fleet::{poll, run_once, spawn_once, AgentOptions, Collector};

/// Models on disk at first.
const MODELS: usize = 1200;
/// As many batches a minute as the agent sends: the default limit (600) would hold it back.
const NO_RATE_LIMIT: &str = "[agents]\nbatches_per_minute = 100000\n";
/// One asset per batch: as many batches as models.
const ONE_PER_BATCH: &str = "[transport]\nbatch_max_assets = 1\n";
/// Longest wait for the agent to be caught mid-send.
const MID_SEND: Duration = Duration::from_secs(20);
/// Most agent runs after a crash before the test gives up.
const MAX_RUNS: usize = 3;

/// Model `i`: `weights.npy` with `i` in its first four data bytes, so every model has its own
/// digest.
fn model(i: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(fixtures_dir().join("models/weights.npy")).unwrap();
    // The fixture's header is 128 bytes; its data follows.
    bytes[128..132].copy_from_slice(&u32::try_from(i).unwrap().to_le_bytes());
    bytes
}

/// Writes model `i` in `dir` as `m<i>.npy`.
fn write_model(dir: &Path, i: usize) {
    std::fs::write(dir.join(format!("m{i:04}.npy")), model(i)).unwrap();
}

/// The models on disk, sorted.
fn on_disk(dir: &Path) -> Vec<String> {
    let mut paths: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    paths.sort();
    paths
}

/// How many model assets the collector holds.
fn models_landed(c: &Collector) -> usize {
    usize::try_from(c.get("/api/v1/assets?kind=model&limit=1")["total"].as_u64().unwrap()).unwrap()
}

/// Waits until a tenth of the models landed, not all: the agent is sending.
fn wait_mid_send(c: &Collector) -> usize {
    poll(MID_SEND, "a tenth of the models landed", || {
        let landed = models_landed(c);
        assert!(landed < MODELS, "all {MODELS} models landed before the crash: make sending slower");
        (landed >= MODELS / 10).then_some(landed)
    })
}

/// Deletes some models that landed and some that may not have, rewrites one in place and adds
/// new ones; returns how many distinct models were ever written.
fn change_models(dir: &Path) -> usize {
    for i in (0..10).chain(MODELS - 10..MODELS) {
        std::fs::remove_file(dir.join(format!("m{i:04}.npy"))).unwrap();
    }
    for i in MODELS..MODELS + 20 {
        write_model(dir, i);
    }
    std::fs::write(dir.join(format!("m{:04}.npy", MODELS / 2)), model(MODELS + 20)).unwrap();
    MODELS + 21
}

/// Runs the agent until a run succeeds; returns how many runs it took.
fn run_until_ok(config: &Path) -> usize {
    for run in 1..=MAX_RUNS {
        let out = run_once(config);
        if out.status.success() {
            return run;
        }
        eprintln!("agent run {run} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    panic!("the agent did not succeed in {MAX_RUNS} runs");
}

/// The collector's inventory is the disk's: one live sighting per file, of this agent, one
/// asset per file, no asset but of a model written, nothing live for a deleted file.
fn assert_inventory_is_disk(c: &Collector, dir: &Path, models_written: usize) {
    let live = c.live_model_sightings();
    let paths: Vec<&str> = live.iter().map(|s| s.path.as_str()).collect();
    let disk = on_disk(dir);
    if paths != disk {
        let missing: Vec<&String> = disk.iter().filter(|p| !paths.contains(&p.as_str())).collect();
        let extra: Vec<&&str> = paths.iter().filter(|p| !disk.iter().any(|d| d == **p)).collect();
        panic!(
            "live sightings ({}) differ from the disk ({}): missing {missing:?}, extra or repeated {extra:?}",
            paths.len(),
            disk.len()
        );
    }
    let mut assets: Vec<&str> = live.iter().map(|s| s.asset_id.as_str()).collect();
    assets.sort_unstable();
    assets.dedup();
    assert_eq!(assets.len(), live.len(), "one asset per file");
    let agents: Vec<&str> = live.iter().map(|s| s.agent_id.as_str()).collect();
    assert!(agents.windows(2).all(|w| w[0] == w[1]), "one agent: {agents:?}");
    assert_eq!(c.hosts().len(), 1);
    // Deleted models may or may not have landed before they were deleted; nothing else can.
    let landed = models_landed(c);
    assert!((disk.len()..=models_written).contains(&landed), "{landed} model assets, {models_written} models written");
}

/// A collector, `MODELS` models and an agent configuration sending one per batch.
fn fleet() -> (Collector, tempfile::TempDir, PathBuf) {
    let c = Collector::start_with(NO_RATE_LIMIT);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..MODELS {
        write_model(dir.path(), i);
    }
    let token = c.token_file("token", &[]);
    let options = AgentOptions { extra_toml: ONE_PER_BATCH.into(), ..AgentOptions::default() };
    let config = c.agent_with("a", &[dir.path()], &token, &options);
    (c, dir, config)
}

#[test]
fn a_collector_killed_mid_batch_ends_with_the_disk_after_restart_and_rerun() {
    let (mut c, dir, config) = fleet();
    let log = c.dir.path().join("agent-first-run.log");
    let mut agent = spawn_once(&config, &log);
    let landed = wait_mid_send(&c);
    c.kill();
    let status = agent.0.wait().unwrap();
    assert!(!status.success(), "the agent must fail when the collector dies under it: {}", {
        std::fs::read_to_string(&log).unwrap()
    });

    let written = change_models(dir.path());
    c.restart();
    let kept = models_landed(&c);
    assert!((landed..MODELS).contains(&kept), "after the restart {kept} models, {landed} seen before the kill");
    let runs = run_until_ok(&config);
    assert_eq!(runs, 1, "the collector is back: the first run succeeds");
    assert_inventory_is_disk(&c, dir.path(), written);
}

#[test]
fn an_agent_killed_mid_send_ends_with_the_disk_after_rerun() {
    let (c, dir, config) = fleet();
    let mut agent = spawn_once(&config, &c.dir.path().join("agent-first-run.log"));
    wait_mid_send(&c);
    agent.0.kill().unwrap();
    agent.0.wait().unwrap();

    let written = change_models(dir.path());
    let runs = run_until_ok(&config);
    assert_eq!(runs, 1, "a killed agent resumes in one run");
    assert_inventory_is_disk(&c, dir.path(), written);
}
