//! Rotating the collector's CA under live agents (docs/collector.md, *Rotating the CA*): the
//! three steps of the procedure, with agents running as daemons and adding models all along;
//! every model added in every step lands, so no batch is lost.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aiscout_e2e::fleet::{poll, spawn_daemon, AgentOptions, Collector};
use aiscout_e2e::{fixtures_dir, Child};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};

/// Longest wait for a model to land or an agent to renew.
const WITHIN: Duration = Duration::from_secs(40);

/// A new CA: its certificate and key files in `dir`, and what signs with it.
fn new_ca(dir: &Path) -> (PathBuf, PathBuf, String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "aiscout ca 2");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).unwrap();
    let (cert_file, key_file) = (dir.join("ca2.pem"), dir.join("ca2.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file, key_file, cert.pem(), Issuer::new(params, key))
}

/// A server certificate for loopback signed by `issuer`, with `ca_pem` after it; its files.
fn server_cert(dir: &Path, issuer: &Issuer<'static, KeyPair>, ca_pem: &str) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    let (cert_file, key_file) = (dir.join("server2.pem"), dir.join("server2.key"));
    std::fs::write(&cert_file, format!("{}{ca_pem}", cert.pem())).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (cert_file, key_file)
}

/// The collector's configuration with TLS from files.
fn files_config(c: &Collector, server: (&Path, &Path), ca: (&Path, &Path), previous: &[&Path]) -> String {
    let previous: Vec<String> = previous.iter().map(|p| format!("\"{}\"", p.display())).collect();
    format!(
        "data_dir = \"{}\"\nlisten = \"127.0.0.1:{}\"\napi_listen = \"127.0.0.1:{}\"\n[tls]\ncert_file = \"{}\"\n\
         key_file = \"{}\"\nca_cert_file = \"{}\"\nca_key_file = \"{}\"\nprevious_ca_cert_files = [{}]\n",
        c.dir.path().join("data").display(),
        c.grpc_port,
        c.api_port,
        server.0.display(),
        server.1.display(),
        ca.0.display(),
        ca.1.display(),
        previous.join(", ")
    )
}

/// Restarts the collector on `config_text`.
fn restart_with(c: &mut Collector, config_text: &str) {
    c.kill();
    std::fs::write(&c.config, config_text).unwrap();
    c.restart();
}

/// Copies a fixture model to `root/<name>.npy`, distinct from every other by its last byte.
fn add_model(root: &Path, name: &str, mark: u8) -> String {
    let mut bytes = std::fs::read(fixtures_dir().join("models/weights.npy")).unwrap();
    if let Some(last) = bytes.last_mut() {
        *last = mark;
    }
    let path = root.join(format!("{name}.npy"));
    std::fs::write(&path, bytes).unwrap();
    path.display().to_string()
}

/// Waits until every path of `expected` is a live sighting.
fn wait_landed(c: &Collector, expected: &[String], logs: &[PathBuf], step: &str) {
    let landed = || {
        let live: Vec<String> = c.live_model_sightings().into_iter().map(|s| s.path).collect();
        expected.iter().all(|p| live.contains(p)).then_some(())
    };
    let start = std::time::Instant::now();
    while landed().is_none() {
        if start.elapsed() > WITHIN {
            let mut text = String::new();
            for log in logs {
                text.push_str(&std::fs::read_to_string(log).unwrap_or_default());
            }
            text.push_str(&std::fs::read_to_string(c.dir.path().join("collector.log")).unwrap_or_default());
            panic!("{step}: not every model landed within {WITHIN:?}: {expected:?}\n{text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_ca_is_rotated_under_live_agents_and_no_batch_is_lost() {
    let mut c = Collector::start();
    let token = c.token_file("token", &["--uses", "2"]);
    let fast = AgentOptions {
        extra_toml: "[schedule]\nfull_interval = \"1s\"\njitter = \"0%\"\nruntimes_interval = \"1s\"\n\
                     [transport]\nbackoff_initial = \"100ms\"\nbackoff_max = \"1s\"\n"
            .into(),
        ..AgentOptions::default()
    };
    let roots = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let names = ["a", "b"];
    let logs: Vec<PathBuf> = names.iter().map(|n| c.dir.path().join(format!("{n}.log"))).collect();
    let mut expected = Vec::new();
    for (root, mark) in roots.iter().zip([1u8, 2]) {
        expected.push(add_model(root.path(), "before", mark));
    }
    let _agents: Vec<Child> = names
        .iter()
        .zip(&roots)
        .zip(&logs)
        .map(|((name, root), log)| spawn_daemon(&c.agent_with(name, &[root.path()], &token, &fast), log))
        .collect();
    wait_landed(&c, &expected, &logs, "before the rotation");
    let old_certs: Vec<String> =
        names.iter().map(|n| std::fs::read_to_string(c.state_dir(n).join("tls/agent.crt")).unwrap()).collect();

    // Step 1: a new CA signs; the old one is still accepted and still signs the server's
    // certificate. Agents are asked to renew, and learn to trust the new CA.
    let pki = c.dir.path().join("data/pki");
    let (ca2, ca2_key, ca2_pem, issuer2) = new_ca(c.dir.path());
    let old_server = (pki.join("server.pem"), pki.join("server.key"));
    let step1 = files_config(&c, (&old_server.0, &old_server.1), (&ca2, &ca2_key), &[&pki.join("ca.pem")]);
    restart_with(&mut c, &step1);
    for (root, mark) in roots.iter().zip([3u8, 4]) {
        expected.push(add_model(root.path(), "during", mark));
    }
    for (name, old) in names.iter().zip(&old_certs) {
        let tls = c.state_dir(name).join("tls");
        poll(WITHIN, &format!("agent {name} renews with the new ca"), || {
            let cert = std::fs::read_to_string(tls.join("agent.crt")).ok()?;
            let trusted = std::fs::read_to_string(tls.join("ca.pem")).ok()?;
            (cert != *old && trusted.contains(ca2_pem.trim())).then_some(())
        });
    }
    wait_landed(&c, &expected, &logs, "step 1");

    // Step 2: the server's certificate comes from the new CA too.
    let (server2, server2_key) = server_cert(c.dir.path(), &issuer2, &ca2_pem);
    let step2 = files_config(&c, (&server2, &server2_key), (&ca2, &ca2_key), &[&pki.join("ca.pem")]);
    restart_with(&mut c, &step2);
    for (root, mark) in roots.iter().zip([5u8, 6]) {
        expected.push(add_model(root.path(), "after-server", mark));
    }
    wait_landed(&c, &expected, &logs, "step 2");

    // Step 3: the old CA is no longer accepted.
    let step3 = files_config(&c, (&server2, &server2_key), (&ca2, &ca2_key), &[]);
    restart_with(&mut c, &step3);
    for (root, mark) in roots.iter().zip([7u8, 8]) {
        expected.push(add_model(root.path(), "after", mark));
    }
    wait_landed(&c, &expected, &logs, "step 3");
    assert_eq!(c.hosts().len(), 2, "the same two agents throughout");
    let log = std::fs::read_to_string(c.dir.path().join("collector.log")).unwrap();
    assert!(!log.contains("agent refused"), "{log}");
}
