//! Hosts of a fleet: several agents with distinct identities, and the collector telling a
//! proven reinstall (the same install key on a known machine fingerprint) from a clone or an
//! impostor (a known fingerprint without that proof), as docs/fleet.md and the store's `enroll`
//! and `resurface` describe.

use std::collections::BTreeSet;
use std::path::Path;

use aiscout_e2e::fixtures_dir;
use aiscout_e2e::fleet::{assert_ok, run_once, AgentOptions, Collector, LiveSighting};
use serde_json::Value;

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_else(|| panic!("no string {key} in {v:#}"))
}

/// The agent id of the only host named `host-<name>`.
fn agent_id(c: &Collector, name: &str) -> String {
    let hostname = format!("host-{name}");
    let hosts: Vec<Value> = c.hosts().into_iter().filter(|h| text(h, "hostname") == hostname).collect();
    assert_eq!(hosts.len(), 1, "hosts named {hostname}: {hosts:#?}");
    text(&hosts[0], "agent_id").to_string()
}

/// `identity_status`, `superseded_by` and live `sightings` of a host.
fn status(c: &Collector, agent_id: &str) -> (String, Option<String>, u64) {
    let h = c.host(agent_id);
    (
        text(&h, "identity_status").to_string(),
        h["superseded_by"].as_str().map(str::to_string),
        h["sightings"].as_u64().unwrap(),
    )
}

/// The live sightings of agent `agent_id`.
fn live_of(c: &Collector, agent_id: &str) -> Vec<LiveSighting> {
    c.live_model_sightings().into_iter().filter(|s| s.agent_id == agent_id).collect()
}

fn model_root(parent: &Path, name: &str) -> std::path::PathBuf {
    let root = parent.join(name);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), root.join("shared.onnx")).unwrap();
    root
}

#[test]
fn three_agents_are_three_hosts_and_a_model_they_share_is_one_asset_with_three_sightings() {
    let c = Collector::start();
    let token = c.token_file("token", &["--uses", "3"]);
    let parent = tempfile::tempdir().unwrap();
    let names = ["a", "b", "c"];
    for name in names {
        let root = model_root(parent.path(), name);
        std::fs::copy(fixtures_dir().join("models/weights.npy"), root.join(format!("own-{name}.npy"))).unwrap();
        // Each own model differs from the others: the last byte is the agent's.
        let own = root.join(format!("own-{name}.npy"));
        let mut bytes = std::fs::read(&own).unwrap();
        *bytes.last_mut().unwrap() = name.as_bytes()[0];
        std::fs::write(&own, bytes).unwrap();
        assert_ok(&run_once(&c.agent(name, &[&root], &token)));
    }

    let hosts = c.hosts();
    assert_eq!(hosts.len(), 3, "{hosts:#?}");
    let ids: BTreeSet<&str> = hosts.iter().map(|h| text(h, "agent_id")).collect();
    assert_eq!(ids.len(), 3, "distinct agent ids: {hosts:#?}");
    let hostnames: BTreeSet<&str> = hosts.iter().map(|h| text(h, "hostname")).collect();
    assert_eq!(hostnames, BTreeSet::from(["host-a", "host-b", "host-c"]));
    for h in &hosts {
        assert_eq!(text(h, "identity_status"), "unique", "{h:#}");
        assert_eq!(h["sightings"], 2, "{h:#}");
    }

    let live = c.live_model_sightings();
    assert_eq!(live.len(), 6, "{live:#?}");
    let shared: Vec<&LiveSighting> = live.iter().filter(|s| s.path.ends_with("/shared.onnx")).collect();
    assert_eq!(shared.len(), 3, "{live:#?}");
    let shared_assets: BTreeSet<&str> = shared.iter().map(|s| s.asset_id.as_str()).collect();
    assert_eq!(shared_assets.len(), 1, "one asset for the shared model: {shared:#?}");
    let sighted_by: BTreeSet<&str> = shared.iter().map(|s| s.agent_id.as_str()).collect();
    assert_eq!(sighted_by, ids, "one sighting per host");

    let models = c.model_assets();
    assert_eq!(models.len(), 4, "the shared model and three own ones: {models:#?}");
    let asset = models.iter().find(|m| shared_assets.contains(text(m, "id"))).unwrap();
    assert_eq!((asset["sightings"].as_u64(), asset["hosts"].as_u64()), (Some(3), Some(3)), "{asset:#}");
}

#[test]
fn a_second_install_on_one_image_is_a_clone_at_once_and_takes_nothing_over() {
    let c = Collector::start();
    let token = c.token_file("token", &["--uses", "2"]);
    let parent = tempfile::tempdir().unwrap();
    // One disk image booted twice (or an attacker claiming the first machine's fingerprint): the
    // same machine id and files, two state directories, so two install keys.
    let root = model_root(parent.path(), "image");
    let same_machine = AgentOptions { machine_id: Some("machine-image".into()), ..AgentOptions::default() };
    let config_a = c.agent_with("a", &[&root], &token, &same_machine);
    let config_b = c.agent_with("b", &[&root], &token, &same_machine);

    assert_ok(&run_once(&config_a));
    assert!(c.log().contains("agent enrolled: new host"), "{}", c.log());
    let a = agent_id(&c, "a");
    assert_eq!(status(&c, &a), ("unique".into(), None, 1));

    // B enrolls with A's fingerprint and another install key: no proof of being A's
    // installation. Both are flagged as clones; A is neither superseded nor closed, even after
    // B stated its host whole. B is not told what the collector concluded.
    let out = run_once(&config_b);
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("host_status") && !err.contains("clone"), "{err}");
    assert!(c.log().contains("machine fingerprint is shared with live agents"), "{}", c.log());
    let b = agent_id(&c, "b");
    assert_ne!(a, b);
    assert_eq!(status(&c, &a), ("clone".into(), None, 1));
    assert_eq!(status(&c, &b), ("clone".into(), None, 1));
    let path = root.join("shared.onnx").display().to_string();
    assert_eq!(live_of(&c, &a).iter().map(|s| s.path.as_str()).collect::<Vec<_>>(), [path.as_str()]);

    // A speaks again: nothing to repair, both stay live.
    assert_ok(&run_once(&config_a));
    assert_eq!(status(&c, &a), ("clone".into(), None, 1));
    assert_eq!(status(&c, &b), ("clone".into(), None, 1));
    let models = c.model_assets();
    assert_eq!(models.len(), 1, "{models:#?}");
    assert_eq!(models[0]["sightings"], 2, "one sighting per clone: {models:#?}");
}

#[test]
fn a_reinstall_that_kept_its_install_key_supersedes_the_old_agent_once_it_states_the_host() {
    let c = Collector::start();
    let token = c.token_file("token", &["--uses", "3"]);
    let parent = tempfile::tempdir().unwrap();
    let root = model_root(parent.path(), "c");
    let elsewhere = model_root(parent.path(), "other");
    let config = c.agent("c", &[&root], &token);
    assert_ok(&run_once(&c.agent("other", &[&elsewhere], &token)));
    assert_ok(&run_once(&config));
    let old = agent_id(&c, "c");

    // The agent lost its certificate (tls/ deleted) but kept its install key: the same
    // installation, provably, enrolls again (with a token file again: the first enrollment
    // deleted its own).
    std::fs::remove_dir_all(c.state_dir("c").join("tls")).unwrap();
    assert_ok(&run_once(&c.agent("c", &[&root], &token)));
    assert!(c.log().contains("reinstall of a known installation"), "{}", c.log());

    let ids: Vec<String> =
        c.hosts().iter().filter(|h| text(h, "hostname") == "host-c").map(|h| text(h, "agent_id").to_string()).collect();
    assert_eq!(ids.len(), 2, "the old and the new agent of host-c: {ids:?}");
    let new = ids.iter().find(|id| **id != old).unwrap().clone();
    // Its first snapshot was complete: the old agent is superseded and its sighting closed.
    assert_eq!(status(&c, &old), ("superseded".into(), Some(new.clone()), 0));
    assert_eq!(status(&c, &new), ("unique".into(), None, 1));

    let models = c.model_assets();
    assert_eq!(models.len(), 1, "{models:#?}");
    assert_eq!((models[0]["sightings"].as_u64(), models[0]["hosts"].as_u64()), (Some(2), Some(2)), "{models:#?}");
    let path = root.join("shared.onnx").display().to_string();
    let on_c: Vec<LiveSighting> = c.live_model_sightings().into_iter().filter(|s| s.path == path).collect();
    assert_eq!(on_c.len(), 1, "host-c sights the model once: {on_c:#?}");
    assert_eq!(on_c[0].agent_id, new);
}

#[test]
fn a_reinstall_that_wiped_its_state_directory_is_a_clone_until_the_old_agent_is_revoked() {
    let c = Collector::start();
    let token = c.token_file("token", &["--uses", "2"]);
    let parent = tempfile::tempdir().unwrap();
    let root = model_root(parent.path(), "c");
    let config = c.agent("c", &[&root], &token);
    assert_ok(&run_once(&config));
    let old = agent_id_of(&c, "c", None);

    // The state directory is gone: nothing proves the new agent is the old installation.
    std::fs::remove_dir_all(c.state_dir("c")).unwrap();
    assert_ok(&run_once(&c.agent("c", &[&root], &token)));
    let new = agent_id_of(&c, "c", Some(&old));
    assert_eq!(status(&c, &old), ("clone".into(), None, 1));
    assert_eq!(status(&c, &new), ("clone".into(), None, 1));
    assert_eq!(c.model_assets()[0]["sightings"], 2, "sighted twice until an operator says which is gone");

    c.command(&["agent", "revoke", &old]);
    assert_eq!(status(&c, &old), ("revoked".into(), None, 0));
    assert_eq!(c.model_assets()[0]["sightings"], 1);
}

/// The agent id of host `host-<name>` other than `except`.
fn agent_id_of(c: &Collector, name: &str, except: Option<&str>) -> String {
    let hostname = format!("host-{name}");
    let ids: Vec<String> = c
        .hosts()
        .iter()
        .filter(|h| text(h, "hostname") == hostname)
        .map(|h| text(h, "agent_id").to_string())
        .filter(|id| Some(id.as_str()) != except)
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids.into_iter().next().unwrap()
}
