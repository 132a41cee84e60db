//! Who may speak to the `Inventory` service (`collector/src/grpc.rs`, authentication rules 2
//! and 3): the agent id is the client certificate's common name and nothing else, so a call
//! without a certificate is unauthenticated, a certificate superseded by renewal is refused,
//! and what an agent sends lands under its own id whatever its batches claim.
//!
//! The agent binary never misbehaves this way, so a small tonic client plays the other side.
//! An agent holding another agent's certificate without its key is not tested here: the TLS
//! handshake (the client's CertificateVerify signature) stops it before any service runs.

use std::future::Future;
use std::path::Path;

use aiscout_e2e::fixtures_dir;
use aiscout_e2e::fleet::{assert_ok, run_once, AgentOptions, Collector, LiveSighting};
use aiscout_proto::v1::{self, agent_message, collector_message, inventory_client::InventoryClient};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

/// A client certificate and its key, PEM (throwaway test keys).
#[derive(Debug, Clone)]
struct ClientCert {
    cert_pem: String,
    key_pem: String,
}

impl ClientCert {
    /// The certificate and key agent `name` holds in its state directory.
    fn of_agent(c: &Collector, name: &str) -> Self {
        let tls = c.state_dir(name).join("tls");
        Self {
            cert_pem: std::fs::read_to_string(tls.join("agent.crt")).unwrap(),
            key_pem: std::fs::read_to_string(tls.join("agent.key")).unwrap(),
        }
    }

    /// Makes this the certificate and key of agent `name` (its id and CA stay).
    fn install(&self, c: &Collector, name: &str) {
        let tls = c.state_dir(name).join("tls");
        std::fs::write(tls.join("agent.crt"), &self.cert_pem).unwrap();
        std::fs::write(tls.join("agent.key"), &self.key_pem).unwrap();
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// An `Inventory` client over TLS trusting the collector CA, presenting `cert` if any.
async fn client(c: &Collector, cert: Option<&ClientCert>) -> InventoryClient<Channel> {
    let ca = std::fs::read_to_string(c.ca_file()).unwrap();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(cert) = cert {
        tls = tls.identity(Identity::from_pem(&cert.cert_pem, &cert.key_pem));
    }
    let endpoint =
        Endpoint::from_shared(format!("https://127.0.0.1:{}", c.grpc_port)).unwrap().tls_config(tls).unwrap();
    InventoryClient::new(endpoint.connect().await.unwrap())
}

/// Opens a stream, sends `Hello` and `batches`, and returns what the collector answered until
/// it closed the stream, or its refusal.
fn stream(
    c: &Collector,
    cert: Option<&ClientCert>,
    batches: Vec<v1::Batch>,
) -> Result<Vec<v1::CollectorMessage>, tonic::Status> {
    block_on(async {
        let hello = v1::Hello { agent_version: "test".into() };
        let messages: Vec<v1::AgentMessage> = std::iter::once(agent_message::Message::Hello(hello))
            .chain(batches.into_iter().map(agent_message::Message::Batch))
            .map(|m| v1::AgentMessage { message: Some(m) })
            .collect();
        let mut inbound = client(c, cert).await.stream(tokio_stream::iter(messages)).await?.into_inner();
        let mut answers = Vec::new();
        while let Some(m) = inbound.message().await? {
            answers.push(m);
        }
        Ok(answers)
    })
}

/// Asks the collector to renew `cert` for a new key; returns the new certificate and key.
fn renew(c: &Collector, cert: Option<&ClientCert>) -> Result<ClientCert, tonic::Status> {
    let key = rcgen::KeyPair::generate().unwrap();
    let csr_pem = rcgen::CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap();
    block_on(async {
        let answer = client(c, cert).await.renew(v1::RenewRequest { csr_pem }).await?.into_inner();
        Ok(ClientCert { cert_pem: answer.certificate_pem, key_pem: key.serialize_pem() })
    })
}

/// A model entry as an agent reports it (docs/scan-json.md), reduced to what identifies it.
fn model_upsert(path: &str, digest_byte: u8) -> v1::Asset {
    let sha256 = format!("{digest_byte:02x}").repeat(32);
    v1::Asset {
        kind: v1::AssetKind::Model as i32,
        local_key: path.to_string(),
        json: serde_json::json!({ "path": path, "format": "onnx", "size": 1, "sha256": sha256 }).to_string(),
    }
}

fn delta(sequence: u64, upserts: Vec<v1::Asset>, removals: Vec<v1::AssetRemoval>) -> v1::Batch {
    v1::Batch { sequence, upserts, removals, observed_at_ms: 1, ..v1::Batch::default() }
}

/// The sequences acknowledged in `answers`.
fn acks(answers: &[v1::CollectorMessage]) -> Vec<u64> {
    answers
        .iter()
        .filter_map(|m| match &m.message {
            Some(collector_message::Message::Ack(a)) => Some(a.sequence),
            _ => None,
        })
        .collect()
}

fn copy_model(fixture: &str, to: &Path) {
    std::fs::copy(fixtures_dir().join("models").join(fixture), to).unwrap();
}

fn agent_id(c: &Collector, name: &str) -> String {
    std::fs::read_to_string(c.state_dir(name).join("tls/agent.id")).unwrap().trim().to_string()
}

#[test]
fn an_inventory_call_without_a_client_certificate_is_unauthenticated() {
    let c = Collector::start();
    let root = tempfile::tempdir().unwrap();
    copy_model("tiny.onnx", &root.path().join("x.onnx"));
    assert_ok(&run_once(&c.agent("x", &[root.path()], &c.token_file("token", &[]))));
    let before = c.live_model_sightings();
    assert_eq!(before.len(), 1);

    let forged = delta(1, vec![model_upsert("/forged.onnx", 0xab)], Vec::new());
    let refused = stream(&c, None, vec![forged]).unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let refused = renew(&c, None).unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");

    assert_eq!(c.hosts().len(), 1);
    assert_eq!(c.model_assets().len(), 1, "nothing landed");
    assert_eq!(c.live_model_sightings(), before);
}

#[test]
fn a_certificate_superseded_by_renewal_is_refused() {
    let c = Collector::start();
    let root = tempfile::tempdir().unwrap();
    copy_model("tiny.onnx", &root.path().join("x.onnx"));
    let config = c.agent("x", &[root.path()], &c.token_file("token", &[]));
    assert_ok(&run_once(&config));
    let old = ClientCert::of_agent(&c, "x");
    let renewed = renew(&c, Some(&old)).unwrap();
    assert_ne!(renewed.cert_pem, old.cert_pem);

    // The agent still holding the old certificate is refused, and nothing it found lands.
    copy_model("weights.npy", &root.path().join("new.npy"));
    let out = run_once(&config);
    assert!(!out.status.success(), "the superseded certificate must be refused");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("is not the current one of {}", agent_id(&c, "x"))), "{err}");
    assert_eq!(c.model_assets().len(), 1, "nothing landed");
    // Nor can the old certificate be renewed again (a stolen old key gains nothing).
    assert_eq!(renew(&c, Some(&old)).unwrap_err().code(), Code::PermissionDenied);
    assert_eq!(
        stream(&c, Some(&old), vec![delta(100, vec![model_upsert("/forged.onnx", 0xab)], Vec::new())])
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    // With the renewed certificate the same agent is let in and its pending batch lands.
    renewed.install(&c, "x");
    assert_ok(&run_once(&config));
    let live: Vec<String> = c.live_model_sightings().into_iter().map(|s| s.path).collect();
    let mut expected =
        vec![root.path().join("new.npy").display().to_string(), root.path().join("x.onnx").display().to_string()];
    expected.sort();
    assert_eq!(live, expected);
}

#[test]
fn an_agent_speaks_only_for_itself_whatever_its_batches_claim() {
    let c = Collector::start();
    let token = c.token_file("token", &["--uses", "2"]);
    let (root_x, root_y) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    copy_model("tiny.onnx", &root_x.path().join("x.onnx"));
    copy_model("weights.npy", &root_y.path().join("y.npy"));
    assert_ok(&run_once(&c.agent("x", &[root_x.path()], &token)));
    let config_y = c.agent("y", &[root_y.path()], &token);
    assert_ok(&run_once(&config_y));
    let (x, y) = (agent_id(&c, "x"), agent_id(&c, "y"));
    let x_path = root_x.path().join("x.onnx").display().to_string();
    let before = c.live_model_sightings();
    assert_eq!(before.len(), 2, "{before:#?}");

    // The agent itself will not claim another id: its state must name its certificate's.
    let id_file = c.state_dir("y").join("tls/agent.id");
    std::fs::write(&id_file, format!("{x}\n")).unwrap();
    copy_model("weights_v2.npy", &root_y.path().join("more.npy"));
    let out = run_once(&config_y);
    assert!(!out.status.success(), "a state naming another agent must not be used");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("corrupt enrollment state"), "{err}");
    assert_eq!(c.live_model_sightings(), before, "nothing landed");
    std::fs::write(&id_file, format!("{y}\n")).unwrap();

    // With its own certificate, y sends batches that name x's host and x's model: removing
    // it, putting another model at its path, then a snapshot naming nothing. A large sequence
    // is applied anyway (a gap); the next one closes the snapshot.
    let claim_x = v1::HostFacts {
        json: r#"{"hostname":"host-x"}"#.into(),
        identity: Some(v1::HostIdentity { hostname: "host-x".into(), ..v1::HostIdentity::default() }),
    };
    let removal = v1::AssetRemoval { kind: v1::AssetKind::Model as i32, local_key: x_path.clone() };
    let mut first = delta(1000, vec![model_upsert(&x_path, 0xcd)], vec![removal]);
    first.host = Some(claim_x);
    let sweep = v1::Batch { sequence: 1001, snapshot: true, snapshot_id: 7, last_part: true, ..v1::Batch::default() };
    let answers = stream(&c, Some(&ClientCert::of_agent(&c, "y")), vec![first, sweep]).unwrap();
    let acked: Vec<u64> = answers
        .iter()
        .filter_map(|m| match &m.message {
            Some(collector_message::Message::Ack(a)) => Some(a.sequence),
            _ => None,
        })
        .collect();
    assert_eq!(acked, [1000, 1001], "{answers:?}");

    // Everything happened to y: x's sighting is live, under x, at its path, and x's host is
    // untouched; the model y put at x's path was sighted by y and swept with y's own.
    let x_host = c.host(&x);
    assert_eq!((x_host["hostname"].as_str(), x_host["sightings"].as_u64()), (Some("host-x"), Some(1)), "{x_host:#}");
    let live = c.live_model_sightings();
    let x_live: Vec<&LiveSighting> = live.iter().filter(|s| s.agent_id == x).collect();
    assert_eq!(x_live.len(), 1, "{live:#?}");
    assert_eq!(x_live[0].path, x_path);
    assert!(live.iter().all(|s| s.agent_id == x), "y's snapshot removed y's sightings only: {live:#?}");
    assert_eq!(c.host(&y)["sightings"], 0);
    let forged_id = format!("model:{}", "cd".repeat(32));
    let forged = c.get(&format!("/api/v1/assets/{forged_id}"));
    let sightings = forged["sightings_page"]["items"].as_array().unwrap();
    assert_eq!(sightings.len(), 1, "{forged:#}");
    assert_eq!(sightings[0]["agent_id"].as_str(), Some(y.as_str()), "{forged:#}");
}

#[test]
fn the_rate_limit_holds_per_agent_across_streams_and_applies_nothing_beyond_it() {
    let c = Collector::start_with("[agents]\nbatches_per_minute = 2\n");
    let token = c.token_file("token", &[]);
    let root = tempfile::tempdir().unwrap();
    assert_ok(&run_once(&c.agent("r", &[root.path()], &token)));
    let cert = ClientCert::of_agent(&c, "r");
    let retry = |answers: &[v1::CollectorMessage]| {
        answers.iter().any(|m| matches!(m.message, Some(collector_message::Message::RetryAfterMs(ms)) if ms > 0))
    };
    // The enrollment run used one batch of this minute's two; the window is the agent's, so
    // a new stream gets one more batch, then the answer to wait, which ends the stream.
    let batch = |seq: u64| delta(seq, vec![model_upsert(&format!("/rl/{seq}.onnx"), seq as u8)], vec![]);
    let first = stream(&c, Some(&cert), vec![batch(2), batch(3), batch(4)]).unwrap();
    assert_eq!(acks(&first), [2], "{first:?}");
    assert!(retry(&first), "{first:?}");
    // Reconnecting does not reset the window: nothing is applied, nothing acknowledged.
    let second = stream(&c, Some(&cert), vec![batch(3), batch(4)]).unwrap();
    assert_eq!(acks(&second), Vec::<u64>::new(), "{second:?}");
    assert!(retry(&second), "{second:?}");
    let landed: Vec<String> =
        c.live_model_sightings().into_iter().map(|s| s.path).filter(|p| p.starts_with("/rl/")).collect();
    assert_eq!(landed, ["/rl/2.onnx"]);
}

#[test]
fn a_superseded_agent_may_renew_but_only_its_next_stream_proves_it_a_clone() {
    let c = Collector::start();
    let token = c.token_file("token", &["--uses", "2"]);
    let root = tempfile::tempdir().unwrap();
    let same_machine = AgentOptions { machine_id: Some("golden-image".into()), ..AgentOptions::default() };
    assert_ok(&run_once(&c.agent_with("a", &[root.path()], &token, &same_machine)));
    // B holds A's install key (an image copied with A's state directory, its certificate
    // removed): a proven reinstall, which supersedes A once B's first snapshot is complete.
    let config_b = c.agent_with("b", &[root.path()], &token, &same_machine);
    std::fs::create_dir_all(c.state_dir("b")).unwrap();
    std::fs::copy(c.state_dir("a").join("install.key"), c.state_dir("b").join("install.key")).unwrap();
    assert_ok(&run_once(&config_b));
    let a = agent_id(&c, "a");
    let status = |c: &Collector| c.host(&a)["identity_status"].as_str().unwrap_or_default().to_string();
    assert_eq!(status(&c), "superseded");

    // Renewing proves nothing the collector could act on: a renewal cannot carry a snapshot
    // request, so the agent stays superseded.
    let renewed = renew(&c, Some(&ClientCert::of_agent(&c, "a"))).unwrap();
    assert_eq!(status(&c), "superseded");
    // Its next stream makes it a clone and asks it for the snapshot that restores its sightings.
    let answers = stream(&c, Some(&renewed), vec![]).unwrap();
    assert!(
        answers.iter().any(|m| matches!(m.message, Some(collector_message::Message::SnapshotRequest(_)))),
        "{answers:?}"
    );
    assert_eq!(status(&c), "clone");
}

/// An enrolled agent `x` with one model, and its certificate.
fn enrolled_agent(c: &Collector, root: &Path) -> ClientCert {
    copy_model("tiny.onnx", &root.join("x.onnx"));
    assert_ok(&run_once(&c.agent("x", &[root], &c.token_file("token", &[]))));
    ClientCert::of_agent(c, "x")
}

#[test]
fn a_message_over_the_size_limit_is_refused_with_resource_exhausted_not_a_silent_end() {
    let c = Collector::start();
    let root = tempfile::tempdir().unwrap();
    let cert = enrolled_agent(&c, root.path());
    let mut huge = model_upsert("/huge.onnx", 0x11);
    huge.json = format!(r#"{{"path":"/huge.onnx","pad":"{}"}}"#, "x".repeat(9 << 20));
    let refused = stream(&c, Some(&cert), vec![delta(1_000, vec![huge], Vec::new())]).unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(c.live_model_sightings().iter().all(|s| s.path != "/huge.onnx"));
    let metrics = c.get_text("/metrics");
    assert!(metrics.lines().any(|l| l == "aiscout_rejections_total{reason=\"oversized\"} 1"), "{metrics}");
}

#[test]
fn oversized_batches_and_forged_sequences_are_refused_and_the_stream_goes_on() {
    let c = Collector::start();
    let root = tempfile::tempdir().unwrap();
    let cert = enrolled_agent(&c, root.path());

    let removals = (0..10_001).map(|i| v1::AssetRemoval { kind: 1, local_key: format!("/r/{i}") }).collect();
    let refused = stream(&c, Some(&cert), vec![delta(1_000, Vec::new(), removals)]).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("10001 entries"), "{refused:?}");

    let forged = delta(1 << 40, vec![model_upsert("/forged.onnx", 0x22)], Vec::new());
    let refused = stream(&c, Some(&cert), vec![forged]).unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("ahead of the last applied"), "{refused:?}");

    // Neither moved the agent's sequence: its next batch is applied and acknowledged.
    let next = delta(1_000, vec![model_upsert("/next.onnx", 0x33)], Vec::new());
    let answers = stream(&c, Some(&cert), vec![next.clone()]).unwrap();
    assert_eq!(acks(&answers), [1_000], "{answers:?}");
    // A replay is acknowledged and changes nothing; every refusal and the replay are counted.
    assert_eq!(acks(&stream(&c, Some(&cert), vec![next]).unwrap()), [1_000]);
    let metrics = c.get_text("/metrics");
    for line in [
        "aiscout_rejections_total{reason=\"invalid_batch\"} 2",
        "aiscout_batches_total{outcome=\"already_applied\"} 1",
        "aiscout_batches_total{outcome=\"error\"} 2",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in {metrics}");
    }
    let paths: Vec<String> = c.live_model_sightings().into_iter().map(|s| s.path).collect();
    assert!(paths.contains(&"/next.onnx".to_string()) && !paths.contains(&"/forged.onnx".to_string()), "{paths:?}");
}
