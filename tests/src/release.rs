//! The release channel from the release manager's side, for the self-update tests: offline
//! keys and signatures (`aiscout-collector release …`), a collector that trusts the key,
//! archives, and a raw gRPC client speaking as an enrolled agent.

// Test helpers fail the test by panicking, with the reason.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use aiscout_proto::v1::inventory_client::InventoryClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::collector_bin;
use crate::fleet::Collector;

/// Runs an offline release command (no collector configuration) and returns its stdout.
pub fn release_cli(args: &[&str]) -> String {
    let out = Command::new(collector_bin()).arg("release").args(args).output().unwrap();
    assert!(out.status.success(), "release {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A collector whose release channel trusts a new release key made in `offline`: the
/// collector, the key's public half (hex) and the private key file.
pub fn collector_with_release_key(offline: &Path) -> (Collector, String, PathBuf) {
    let key = offline.join("release.key");
    let public = release_cli(&["keygen", "--out", key.to_str().unwrap()]);
    let c = Collector::start_with(&format!("[releases]\npublic_keys = [\"{public}\"]\n"));
    (c, public, key)
}

/// `release sign` of `archive` as `version` (for x86_64 Linux) at `sequence`, with `extra`
/// options, into `out`; the signed copy of the archive, to publish.
pub fn sign_release(key: &Path, archive: &Path, version: &str, sequence: u64, extra: &[&str], out: &Path) -> PathBuf {
    let sequence = sequence.to_string();
    let mut args = vec!["sign", "--key", key.to_str().unwrap(), "--archive", archive.to_str().unwrap()];
    args.extend(["--release-version", version, "--sequence", &sequence, "--out", out.to_str().unwrap()]);
    args.extend(extra);
    let said = release_cli(&args);
    let signed = out.with_file_name(aiscout_proto::release::archive_name(version, "x86_64-unknown-linux-gnu"));
    assert!(said.contains(&format!("{}: the signed archive", signed.display())), "{said}");
    signed
}

/// `release publish` of the document `metadata` with the signed archive `archive` on `c`.
pub fn publish(c: &Collector, metadata: &Path, archive: &Path) {
    c.command(&[
        "release",
        "publish",
        "--metadata",
        metadata.to_str().unwrap(),
        "--archive",
        archive.to_str().unwrap(),
    ]);
}

/// [`sign_release`] of `archive` as `version` at `sequence` with `extra` options into
/// `dir/m-<sequence>.json`, then [`publish`]ed on `c`; the signed archive.
pub fn sign_and_publish(
    c: &Collector,
    key: &Path,
    archive: &Path,
    version: &str,
    sequence: u64,
    extra: &[&str],
    dir: &Path,
) -> PathBuf {
    let metadata = dir.join(format!("m-{sequence}.json"));
    let signed = sign_release(key, archive, version, sequence, extra, &metadata);
    publish(c, &metadata, &signed);
    signed
}

/// A gRPC client of `c`'s Inventory service, with agent `agent`'s certificate (none: a stranger).
pub async fn client(c: &Collector, agent: Option<&str>) -> InventoryClient<Channel> {
    let ca = std::fs::read_to_string(c.ca_file()).unwrap();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
    if let Some(name) = agent {
        let dir = c.state_dir(name).join("tls");
        let cert = std::fs::read_to_string(dir.join("agent.crt")).unwrap();
        let key = std::fs::read_to_string(dir.join("agent.key")).unwrap();
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    let endpoint =
        Endpoint::from_shared(format!("https://127.0.0.1:{}", c.grpc_port)).unwrap().tls_config(tls).unwrap();
    InventoryClient::new(endpoint.connect().await.unwrap())
}

/// A gzip-compressed tar holding `binary` as `aiscout-agent`, at its top level: `dir/<name>.tar.gz`.
pub fn archive_of(dir: &Path, name: &str, binary: &Path) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(binary, src.join("aiscout-agent")).unwrap();
    let archive = dir.join(format!("{name}.tar.gz"));
    let ok = Command::new("tar").arg("-czf").arg(&archive).arg("-C").arg(&src).arg("aiscout-agent").status().unwrap();
    assert!(ok.success());
    archive
}

/// An archive of a stand-in `aiscout-agent`: a script answering `--version` with `version`,
/// accepting any configuration (the updater's smoke test runs it), and running `run` as `body`.
pub fn script_archive(dir: &Path, name: &str, version: &str, body: &str) -> PathBuf {
    let script = dir.join(format!("{name}.sh"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  --version) echo 'aiscout-agent {version}'; exit 0 ;;\n  validate) exit 0 ;;\nesac\n{body}\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    archive_of(dir, name, &script)
}

/// A stand-in that states `version` and accepts any configuration.
pub fn agent_archive(dir: &Path, name: &str, version: &str) -> PathBuf {
    script_archive(dir, name, version, "exit 0")
}

/// Hex SHA-256 of the file at `path` (`sha256sum`).
pub fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap().to_string()
}

/// Publishes, without `release publish` and without `release sign`'s archive signature, a
/// channel document offering `archive` as `version` (x86_64 Linux, to every agent) at
/// `sequence`, its metadata signed with the release key at `key`: what a collector could serve
/// if the archive were swapped before signing, or signed by someone else.
pub fn publish_metadata_only(c: &Collector, key: &Path, archive: &Path, version: &str, sequence: u64) {
    use aiscout_proto::release::{Release, ReleaseMetadata, SigningKey};
    let pem = std::fs::read_to_string(key).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let mut decode = Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut decode.stdin.take().unwrap(), body.as_bytes()).unwrap();
    let der = decode.wait_with_output().unwrap().stdout;
    let signing = SigningKey::from_pkcs8(&der).unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let sha256 = sha256_of(archive);
    let metadata = ReleaseMetadata {
        channel: "stable".into(),
        sequence,
        issued_at: now,
        expires_at: now + 3600,
        min_version: "0.0.0".into(),
        releases: vec![Release {
            version: version.into(),
            target: "x86_64-unknown-linux-gnu".into(),
            sha256: sha256.clone(),
            size: std::fs::metadata(archive).unwrap().len(),
            rollout_percent: 100,
            cohorts: vec![],
        }],
    };
    let envelope = serde_json::to_vec(&signing.sign(&metadata).unwrap()).unwrap();
    let releases = c.dir.path().join("data/releases");
    std::fs::create_dir_all(releases.join("blobs")).unwrap();
    std::fs::copy(archive, releases.join("blobs").join(sha256)).unwrap();
    std::fs::write(releases.join("stable.json"), envelope).unwrap();
}
