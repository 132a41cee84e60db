//! Self-update end to end, with real binaries: the agent under a supervisor that stands in for
//! systemd (before every start the packaged binary's `update-guard`, as the unit's
//! ExecStartPre; then the `state_dir/bin/aiscout-agent` link, as its ExecStart; started again
//! whatever the exit, as `Restart=` with `RestartForceExitStatus=75`).
//! - v1 (this build) takes v2 (the same sources built to state 9.9.9,
//!   `scripts/build-agent-v2.sh`) through a test collector, switches, and v2 confirms itself
//!   with its first acknowledged send; the collector's hosts API shows it.
//! - A release that crashes at start is rolled back to v1 after 3 starts, reported, and never
//!   taken again.
//! - A 10 % rollout is taken by the agents whose bucket is under 10 among 50 enrolled agents,
//!   and a cohort whose agents rolled the release back is paused.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aiscout_e2e::fleet::{assert_ok, daemon_command, poll, run_once, AgentOptions, Collector};
use aiscout_e2e::release::{
    agent_archive, archive_of, client, collector_with_release_key, publish_metadata_only, release_cli, script_archive,
    sign_and_publish,
};
use aiscout_e2e::{agent_bin, agent_v2_bin, fixtures_dir};
use aiscout_proto::{release, v1};

/// A supervisor loop standing in for systemd (module docs).
struct Supervisor {
    stop: Arc<AtomicBool>,
    /// What happened, in order: `guard: <its output>` and `exit <code>` lines.
    events: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    fn start(config: &Path, link: &Path, log: &Path) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (config, link, log) = (config.to_path_buf(), link.to_path_buf(), log.to_path_buf());
        let (s, e) = (Arc::clone(&stop), Arc::clone(&events));
        let thread = std::thread::spawn(move || supervise(&config, &link, &log, &s, &e));
        Self { stop, events, thread: Some(thread) }
    }

    fn events(&self) -> Vec<String> {
        self.events.lock().unwrap().clone()
    }

    /// Stops the agent (SIGTERM) and the loop; the events.
    fn stop(mut self) -> Vec<String> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.events()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn supervise(config: &Path, link: &Path, log: &Path, stop: &AtomicBool, events: &Mutex<Vec<String>>) {
    let note = |line: String| events.lock().unwrap().push(line);
    while !stop.load(Ordering::SeqCst) {
        // ExecStartPre=-/usr/bin/aiscout-agent update-guard: the packaged binary, never the link.
        let guard = Command::new(agent_bin()).args(["update-guard", "--config"]).arg(config).output().unwrap();
        let said = String::from_utf8_lossy(&guard.stdout).trim().to_string();
        if !said.is_empty() {
            note(format!("guard: {said}"));
        }
        // ExecStart=/var/lib/aiscout/bin/aiscout-agent run
        let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
        let mut child = daemon_command(link, config).stderr(log).spawn().unwrap();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if stop.load(Ordering::SeqCst) {
                let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
                let status = child.wait().unwrap();
                note(format!("exit {}", status.code().unwrap_or(-1)));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        note(format!("exit {}", status.code().unwrap_or(-1)));
        // RestartSec
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `aiscout-agent status --json` of `config`.
fn status(config: &Path) -> serde_json::Value {
    let out = Command::new(agent_bin()).args(["status", "--json", "--config"]).arg(config).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// An agent `name` of `c` set up as the package sets it up: its state directory with the
/// service link `bin/aiscout-agent` pointing at the packaged binary (this build), and updates on
/// from the release key `public`; its configuration.
fn packaged_agent(c: &Collector, name: &str, public: &str, root: &Path) -> PathBuf {
    let options = AgentOptions {
        extra_toml: format!(
            "[schedule]\nfull_interval = \"1h\"\nruntimes_interval = \"1h\"\n[watch]\nenabled = false\n\
             [update]\nenabled = true\npublic_keys = [\"{public}\"]\nhealth_deadline = \"2m\"\n"
        ),
        ..AgentOptions::default()
    };
    let config = c.agent_with(name, &[root], &c.token_file(&format!("{name}.tok"), &[]), &options);
    let bin = c.state_dir(name).join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(c.state_dir(name), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(agent_bin(), bin.join("aiscout-agent")).unwrap();
    config
}

/// A [`packaged_agent`] `name` with a model to report, started under a [`Supervisor`] logging
/// into `dir/agent.log`: its model root, configuration and supervisor.
fn supervised_agent(c: &Collector, name: &str, public: &str, dir: &Path) -> (tempfile::TempDir, PathBuf, Supervisor) {
    let root = model_root();
    let config = packaged_agent(c, name, public, root.path());
    let supervisor = Supervisor::start(&config, &c.state_dir(name).join("bin/aiscout-agent"), &dir.join("agent.log"));
    (root, config, supervisor)
}

/// The host of the agent whose state directory is `state`, from the collector's hosts API.
fn host_of(c: &Collector, state: &Path) -> serde_json::Value {
    let id = std::fs::read_to_string(state.join("tls/agent.id")).unwrap();
    c.host(id.trim())
}

fn model_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.path().join("m.onnx")).unwrap();
    root
}

#[test]
fn v1_takes_v2_through_the_collector_switches_and_v2_confirms_itself() {
    let v2 = agent_v2_bin();
    let offline = tempfile::tempdir().unwrap();
    let (c, public, key) = collector_with_release_key(offline.path());
    let archive = archive_of(offline.path(), "aiscout-agent-9.9.9-x86_64-unknown-linux-gnu", &v2);
    sign_and_publish(&c, &key, &archive, "9.9.9", 1, &[], offline.path());

    let (_root, config, supervisor) = supervised_agent(&c, "u", &public, offline.path());
    let state = c.state_dir("u");
    let link = state.join("bin/aiscout-agent");

    let doc = poll(Duration::from_secs(180), "v2 running and confirmed", || {
        let doc = status(&config);
        (doc["version"] == "9.9.9" && doc["update_state"] == "updated" && doc["running"] == true).then_some(doc)
    });
    assert_eq!(doc["update_version"], "9.9.9", "{doc}");
    assert_eq!(std::fs::read_link(&link).unwrap(), state.join("update/versions/9.9.9/aiscout-agent"));
    // v2 is the real build: the file the link names is the one released.
    assert_eq!(std::fs::read(std::fs::read_link(&link).unwrap()).unwrap(), std::fs::read(&v2).unwrap());
    let host = poll(Duration::from_secs(60), "the collector sees v2", || {
        let host = host_of(&c, &state);
        (host["update"]["state"] == "updated").then_some(host)
    });
    assert_eq!(host["update"]["running_version"], "9.9.9", "{host}");
    assert_eq!(host["agent_version"], "9.9.9", "the host's version is the one it runs: {host}");
    assert_eq!(host["update"]["version"], "9.9.9", "{host}");
    assert_eq!(host["update"]["cohort"], "default", "{host}");
    let events = supervisor.stop();
    // v1 switched and asked to be started again; the guard counted v2's start; v2 stopped cleanly.
    assert_eq!(events.first().map(String::as_str), Some("exit 75"), "{events:?}");
    assert!(events.iter().any(|e| e == "guard: update-guard: start 1 of 9.9.9"), "{events:?}");
    assert_eq!(events.last().map(String::as_str), Some("exit 0"), "{events:?}");
    assert!(!events.iter().any(|e| e.contains("rolled back")), "{events:?}");
}

#[test]
fn a_refused_release_leaves_v1_running_and_its_status_says_why() {
    let offline = tempfile::tempdir().unwrap();
    let (c, public, _key) = collector_with_release_key(offline.path());
    // A collector serving a document the agents' key did not sign (a rogue collector, a
    // stolen other key): `release publish` would refuse it, so it is put in place by hand.
    let other_key = offline.path().join("other.key");
    release_cli(&["keygen", "--out", other_key.to_str().unwrap()]);
    publish_metadata_only(&c, &other_key, &agent_archive(offline.path(), "v2", "9.9.9"), "9.9.9", 1);
    let (_root, config, supervisor) = supervised_agent(&c, "x", &public, offline.path());
    let doc = poll(Duration::from_secs(120), "the refusal in the status", || {
        let doc = status(&config);
        doc["update_error"].as_str().is_some_and(|e| e.contains("not signed by a trusted key")).then_some(doc)
    });
    assert_eq!(doc["running"], true, "{doc}");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"), "{doc}");
    assert!(doc["last_send_ok_at_ms"].is_i64(), "{doc}");
    assert_eq!(std::fs::read_link(c.state_dir("x").join("bin/aiscout-agent")).unwrap(), agent_bin());
    assert!(!c.state_dir("x").join("update/versions/9.9.9").exists());
    let out = Command::new(agent_bin()).args(["status", "--config"]).arg(&config).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a refused check is a problem the status names");
    let events = supervisor.stop();
    assert_eq!(events, ["exit 0"], "the agent ran on until stopped");
}

#[test]
fn a_release_that_crashes_at_start_is_rolled_back_to_v1_reported_and_never_taken_again() {
    let offline = tempfile::tempdir().unwrap();
    let (c, public, key) = collector_with_release_key(offline.path());
    // Passes the smoke test (`--version`, `validate`), dies as soon as it is run.
    let archive = script_archive(offline.path(), "crashes", "10.0.0", "echo 'cannot start' >&2; exit 1");
    sign_and_publish(&c, &key, &archive, "10.0.0", 1, &[], offline.path());

    let (_root, config, supervisor) = supervised_agent(&c, "r", &public, offline.path());
    let state = c.state_dir("r");
    let link = state.join("bin/aiscout-agent");

    let doc = poll(Duration::from_secs(180), "v1 running again after the rollback", || {
        let doc = status(&config);
        let back = doc["update_state"] == "rolled_back" && doc["version"] == env!("CARGO_PKG_VERSION");
        (back && doc["running"] == true && doc["last_send_ok_at_ms"].is_i64()).then_some(doc)
    });
    assert_eq!(doc["update_version"], "10.0.0", "{doc}");
    assert_eq!(doc["update_detail"], "not healthy after 3 starts", "{doc}");
    assert_eq!(std::fs::read_link(&link).unwrap(), agent_bin(), "the link names v1 again");
    let host = poll(Duration::from_secs(60), "the collector sees the rollback", || {
        let host = host_of(&c, &state);
        (host["update"]["state"] == "rolled_back").then_some(host)
    });
    assert_eq!(host["update"]["version"], "10.0.0", "{host}");
    assert_eq!(host["update"]["running_version"], env!("CARGO_PKG_VERSION"), "{host}");
    assert!(c.log().contains("agent rolled back a release"), "the collector logs it");
    let events = supervisor.stop();
    let guard: Vec<&str> = events.iter().filter_map(|e| e.strip_prefix("guard: update-guard: ")).collect();
    assert_eq!(
        guard,
        [
            "start 1 of 10.0.0",
            "start 2 of 10.0.0",
            "start 3 of 10.0.0",
            "rolled back 10.0.0: not healthy after 3 starts"
        ],
        "{events:?}"
    );
    let exits: Vec<&str> = events.iter().filter(|e| e.starts_with("exit")).map(String::as_str).collect();
    assert_eq!(exits, ["exit 75", "exit 1", "exit 1", "exit 1", "exit 0"], "{events:?}");

    // The rolled-back release is never taken again, while the channel still offers it.
    let out = Command::new(agent_bin()).args(["update", "--config"]).arg(&config).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "channel stable sequence 1: nothing to take now",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_ten_percent_rollout_reaches_the_agents_in_its_bucket_and_a_failing_cohort_is_paused() {
    const AGENTS: usize = 50;
    let offline = tempfile::tempdir().unwrap();
    let (c, public, key) = collector_with_release_key(offline.path());
    let archive = agent_archive(offline.path(), "good", "9.9.11");
    let signed = sign_and_publish(&c, &key, &archive, "9.9.11", 1, &["--rollout-percent", "10"], offline.path());
    let sha = aiscout_e2e::release::sha256_of(&signed);

    let root = model_root();
    let token = c.token_file("fleet.tok", &["--uses", "60"]);
    let options = AgentOptions {
        extra_toml: format!("[update]\nenabled = true\npublic_keys = [\"{public}\"]\n"),
        ..AgentOptions::default()
    };
    let mut expected = 0;
    let mut staged = 0;
    // The agents that did not take the release (never downloaded it), by name.
    let mut stayed = Vec::new();
    for i in 0..AGENTS {
        let name = format!("s{i}");
        let config = c.agent_with(&name, &[root.path()], &token, &options);
        assert_ok(&run_once(&config));
        let id = std::fs::read_to_string(c.state_dir(&name).join("tls/agent.id")).unwrap();
        let takes = release::bucket(id.trim(), "9.9.11") < 10;
        expected += usize::from(takes);
        let out = Command::new(agent_bin()).args(["update", "--config"]).arg(&config).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(out.status.success(), "{name}: {said} {}", String::from_utf8_lossy(&out.stderr));
        if takes {
            assert!(said.starts_with("staged 9.9.11:"), "{name} is in the 10 %: {said}");
            staged += 1;
        } else {
            assert_eq!(said, "channel stable sequence 1: nothing to take now", "{name}");
            stayed.push(name);
        }
    }
    assert_eq!(staged, expected);
    // Roles for the pause below, all among agents that never downloaded the release.
    let [claimer1, claimer2, claimer3, failed1, failed2, canary, plain, bad_reporter] =
        std::array::from_fn::<&str, 8, _>(|i| stayed.get(i).map_or("", String::as_str));
    assert!(!bad_reporter.is_empty(), "enough agents stayed: {stayed:?}");
    eprintln!("10 % rollout: {staged} of {AGENTS} agents staged 9.9.11");
    assert!(staged <= 15, "about 10 % of {AGENTS}, not {staged}");

    // Two agents of cohort canary roll 9.9.11 back: over 20 % of those that tried, and at least
    // 2: the collector pauses canary, and only canary.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ask = |agent: &str, cohort: &str, state: &str| {
        let request = v1::ReleaseMetadataRequest {
            channel: "stable".into(),
            cohort: cohort.into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            report: Some(v1::UpdateReport {
                state: state.into(),
                version: if state == "rolled_back" { "9.9.11".into() } else { String::new() },
                detail: if state == "rolled_back" { "not healthy after 3 starts".into() } else { String::new() },
                at_ms: 0,
            }),
        };
        runtime.block_on(async {
            let mut agent = client(&c, Some(agent)).await;
            if state == "rolled_back" {
                // A rollback counts only from an agent that downloaded the release.
                let request = v1::DownloadReleaseRequest { sha256: sha.clone() };
                let mut stream = agent.download_release(request).await.unwrap().into_inner();
                while stream.message().await.unwrap().is_some() {}
            }
            agent.get_release_metadata(request).await.unwrap().into_inner()
        })
    };
    // Rollbacks claimed without the download count for nothing.
    for agent in [claimer1, claimer2, claimer3] {
        let claimed = v1::ReleaseMetadataRequest {
            channel: "stable".into(),
            cohort: "canary".into(),
            agent_version: env!("CARGO_PKG_VERSION").into(),
            report: Some(v1::UpdateReport {
                state: "rolled_back".into(),
                version: "9.9.11".into(),
                ..Default::default()
            }),
        };
        let answer = runtime.block_on(async {
            client(&c, Some(agent)).await.get_release_metadata(claimed).await.unwrap().into_inner()
        });
        assert!(answer.paused.is_empty(), "{agent}: a rollback of a release it never downloaded");
    }
    assert!(ask(failed1, "canary", "rolled_back").paused.is_empty(), "one failure is not enough");
    let paused = ask(failed2, "canary", "rolled_back");
    assert!(paused.envelope.is_empty());
    assert_eq!(paused.paused, "rollout of 9.9.11 to cohort canary paused: 2 of 2 agents rolled it back (100% > 20%)");
    let other = ask(canary, "canary", "current");
    assert!(other.envelope.is_empty() && !other.paused.is_empty(), "every agent of canary is paused");
    let default = ask(plain, "default", "current");
    assert!(default.paused.is_empty() && !default.envelope.is_empty(), "the default cohort goes on");
    let hosts = c.hosts();
    let rolled_back = hosts.iter().filter(|h| h["update"]["state"] == "rolled_back").count();
    assert_eq!(rolled_back, 5, "the hosts API shows every report, counted or not");

    // A report the collector cannot take is refused, not stored.
    let bad = v1::ReleaseMetadataRequest {
        channel: "stable".into(),
        cohort: "default".into(),
        agent_version: "1.0\n<script>".into(),
        report: Some(v1::UpdateReport { state: "current".into(), ..Default::default() }),
    };
    let e =
        runtime.block_on(async { client(&c, Some(bad_reporter)).await.get_release_metadata(bad).await.unwrap_err() });
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e:?}");
}
