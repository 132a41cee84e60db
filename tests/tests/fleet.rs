//! The fleet over real TLS on loopback: a dev-mode collector process, agents as processes with
//! their own state directories, roots and host identities, the HTTP API read back.

use std::time::Duration;

use aiscout_e2e::fixtures_dir;
use aiscout_e2e::fleet::{assert_ok, run_once, Collector};

#[test]
fn the_same_model_under_two_agents_is_one_asset_with_two_sightings() {
    let c = Collector::start();
    let token = c.token_file("token", &["--uses", "2", "--ttl", "1h"]);
    let roots = tempfile::tempdir().unwrap();
    let (a, b) = (roots.path().join("a"), roots.path().join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), a.join("shared.onnx")).unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), b.join("copy-of-shared.onnx")).unwrap();
    std::fs::copy(fixtures_dir().join("models/weights.npy"), a.join("only-a.npy")).unwrap();

    assert_ok(&run_once(&c.agent("a", &[&a], &token)));
    assert_ok(&run_once(&c.agent("b", &[&b], &token)));

    let hosts = c.get("/api/v1/hosts");
    assert_eq!(hosts["total"], 2, "{hosts:#}");
    let models = c.model_assets();
    assert_eq!(models.len(), 2, "{models:#?}");
    let shared = models.iter().find(|m| m["hosts"] == 2).unwrap_or_else(|| panic!("{models:#?}"));
    assert_eq!(shared["sightings"], 2);
    let mut hostnames: Vec<&str> =
        shared["hostnames"].as_array().unwrap().iter().map(|h| h.as_str().unwrap()).collect();
    hostnames.sort();
    assert_eq!(hostnames, ["host-a", "host-b"]);
    let detail = c.get(&format!("/api/v1/assets/{}", shared["id"].as_str().unwrap()));
    let mut paths: Vec<&str> =
        detail["sightings_page"]["items"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap()).collect();
    paths.sort();
    let expected = [a.join("shared.onnx"), b.join("copy-of-shared.onnx")];
    let mut expected: Vec<String> = expected.iter().map(|p| p.display().to_string()).collect();
    expected.sort();
    assert_eq!(paths, expected);

    // A rerun with nothing changed sends nothing new and keeps one asset per model.
    assert_ok(&run_once(&c.agent("a", &[&a], &token)));
    assert_eq!(c.model_assets().len(), 2);

    // A removed file is no longer a live sighting after the next snapshot or delta.
    std::fs::remove_file(a.join("only-a.npy")).unwrap();
    assert_ok(&run_once(&c.agent("a", &[&a], &token)));
    let models = c.model_assets();
    let npy = models.iter().find(|m| m["hosts"] != 2).unwrap();
    assert_eq!(npy["sightings"], 0, "{npy:#}");
}

#[test]
fn spent_and_expired_tokens_are_refused() {
    let c = Collector::start();
    let roots = tempfile::tempdir().unwrap();
    let once = c.token_file("once", &["--uses", "1"]);
    assert_ok(&run_once(&c.agent("first", &[roots.path()], &once)));
    let second = run_once(&c.agent("second", &[roots.path()], &once));
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr).to_lowercase();
    assert!(err.contains("exhausted") || err.contains("refused"), "{err}");

    let short = c.token_file("short", &["--ttl", "1s"]);
    std::thread::sleep(Duration::from_millis(1500));
    let late = run_once(&c.agent("late", &[roots.path()], &short));
    assert!(!late.status.success());
    let err = String::from_utf8_lossy(&late.stderr).to_lowercase();
    assert!(err.contains("expired"), "{err}");
    assert_eq!(c.get("/api/v1/hosts")["total"], 1);
}

#[test]
fn a_revoked_agent_is_cut_off_at_its_next_call() {
    let c = Collector::start();
    let roots = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), roots.path().join("m.onnx")).unwrap();
    let token = c.token_file("token", &[]);
    let config = c.agent("r", &[roots.path()], &token);
    assert_ok(&run_once(&config));
    let hosts = c.get("/api/v1/hosts");
    let id = hosts["items"][0]["agent_id"].as_str().unwrap().to_string();
    c.command(&["agent", "revoke", &id]);
    std::fs::copy(fixtures_dir().join("models/weights.npy"), roots.path().join("new.npy")).unwrap();
    let out = run_once(&config);
    assert!(!out.status.success(), "a revoked agent must be refused");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("revoked"), "{err}");
    assert_eq!(c.model_assets().len(), 1, "nothing from the revoked agent lands");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let ours = Collector::start();
    let theirs = Collector::start();
    let roots = tempfile::tempdir().unwrap();
    std::fs::copy(fixtures_dir().join("models/tiny.onnx"), roots.path().join("m.onnx")).unwrap();
    // Enrolled with the other collector: its certificate is signed by the other CA.
    let token = theirs.token_file("token", &[]);
    let config = theirs.agent("stranger", &[roots.path()], &token);
    assert_ok(&run_once(&config));
    // Pointed at our collector, trusting our server certificate too: the TLS handshake must
    // still refuse the client certificate our CA did not sign.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&format!("https://127.0.0.1:{}", theirs.grpc_port), &format!("https://127.0.0.1:{}", ours.grpc_port));
    std::fs::write(&config, text).unwrap();
    let state_ca = theirs.dir.path().join("agent-stranger/tls/ca.pem");
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&state_ca).unwrap(),
        std::fs::read_to_string(ours.dir.path().join("data/pki/ca.pem")).unwrap()
    );
    std::fs::write(&state_ca, both).unwrap();
    std::fs::copy(fixtures_dir().join("models/weights.npy"), roots.path().join("new.npy")).unwrap();
    let out = run_once(&config);
    assert!(!out.status.success(), "a certificate from another CA must be refused");
    // The collector's TLS layer ends the connection: the client sees the server's fatal alert,
    // or (TLS 1.3 finishes the client side first) the connection closed under the request.
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("transport error"), "{err}");
    assert_eq!(ours.get("/api/v1/hosts")["total"], 0);
    assert_eq!(ours.model_assets().len(), 0);
}
