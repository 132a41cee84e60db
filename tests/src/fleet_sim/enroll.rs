//! Enrollment of simulated agents and the state file that lets a later run reuse them.
//!
//! Each agent makes its own ECDSA P-256 key with rcgen and sends only its CSR, with its host
//! identity ([`super::inventory::FleetShape::identity`]) and the enrollment token, to
//! `Enrollment.Enroll` over TLS trusting the collector CA, without a client certificate: what
//! the real agent does (agent/src/fleet/enroll.rs). Enrollments run at most
//! `--concurrency-of-enrollment` at a time; an agent whose collector does not answer tries the
//! next one.
//!
//! # State file
//! `--state FILE` keeps, per agent, its index, id, certificate, key and the last sequence it
//! sent, as JSON (mode 0600: it holds private keys). A run with the file reuses those agents
//! without enrolling them again (a reconnect storm of known agents), continues their
//! sequences, and enrolls only the agents beyond the file's.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aiscout_proto::v1::{self, enrollment_client::EnrollmentClient};
use anyhow::Context;
use serde::{Deserialize, Serialize};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use super::inventory::FleetShape;

/// The version simulated agents state.
pub const AGENT_VERSION: &str = concat!("fleet-sim-", env!("CARGO_PKG_VERSION"));

/// Longest wait for a TCP and TLS connection to a collector.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An enrolled simulated agent.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Credentials {
    /// Its index in the fleet: what its inventory and identity derive from.
    pub index: u32,
    /// The id the collector gave it (its certificate's common name).
    pub agent_id: String,
    /// Its client certificate (PEM).
    pub cert_pem: String,
    /// Its private key (PEM, PKCS#8).
    pub key_pem: String,
    /// The highest sequence it has sent; the next run continues after it.
    #[serde(default)]
    pub last_sequence: u64,
}

/// The `--state` file.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct StateFile {
    /// The agents, by index.
    pub agents: Vec<Credentials>,
}

/// The agents of the state file at `path`; none when it does not exist.
pub fn load_state(path: &Path) -> anyhow::Result<Vec<Credentials>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("{}: cannot read the state file", path.display())),
    };
    let state: StateFile =
        serde_json::from_str(&text).with_context(|| format!("{}: not a fleet-sim state file", path.display()))?;
    Ok(state.agents)
}

/// Writes `agents` to the state file at `path` (a temporary file renamed over it, mode 0600).
pub fn save_state(path: &Path, agents: &[Credentials]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let text = serde_json::to_string(&StateFile { agents: agents.to_vec() })?;
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::options().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().with_context(|| format!("{}: cannot write the state file", path.display()))
}

/// What enrollment needs to reach the collectors.
#[derive(Debug, Clone)]
pub struct Enroller {
    /// One endpoint per collector URL, trusting the CA, without a client certificate.
    pub endpoints: Vec<Endpoint>,
    /// The enrollment token's secret.
    pub token: String,
    /// Where identities come from.
    pub shape: Arc<FleetShape>,
}

impl Enroller {
    /// Endpoints for `urls` trusting `ca_pem`.
    pub fn new(urls: &[String], ca_pem: &str, token: String, shape: Arc<FleetShape>) -> anyhow::Result<Self> {
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
        let endpoints = urls
            .iter()
            .map(|url| {
                Endpoint::from_shared(url.clone())
                    .and_then(|e| e.tls_config(tls.clone()))
                    .map(|e| e.connect_timeout(CONNECT_TIMEOUT).tcp_nodelay(true))
                    .with_context(|| format!("{url}: not a collector url"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self { endpoints, token, shape })
    }

    /// Enrolls agent `index`, starting with collector `index % n` and trying the others in
    /// turn when one cannot be reached.
    pub async fn enroll(&self, index: u32) -> anyhow::Result<Credentials> {
        let key = rcgen::KeyPair::generate().context("cannot make a key")?;
        let csr_pem = rcgen::CertificateParams::default()
            .serialize_request(&key)
            .and_then(|csr| csr.pem())
            .context("cannot make a certificate signing request")?;
        let request = v1::EnrollRequest {
            token: self.token.clone(),
            csr_pem,
            identity: Some(self.shape.identity(index)),
            agent_version: AGENT_VERSION.to_owned(),
        };
        let n = self.endpoints.len().max(1);
        let mut last_error = None;
        for offset in 0..n {
            let Some(endpoint) = self.endpoints.get((index as usize + offset) % n) else { continue };
            let channel = match endpoint.connect().await {
                Ok(channel) => channel,
                Err(e) => {
                    last_error = Some(anyhow::anyhow!("{}: cannot connect: {}", endpoint.uri(), error_chain(&e)));
                    continue;
                }
            };
            let answer = EnrollmentClient::new(channel)
                .enroll(request.clone())
                .await
                .map_err(|s| anyhow::anyhow!("{}: enrollment refused: {}: {}", endpoint.uri(), s.code(), s.message()))?
                .into_inner();
            return Ok(Credentials {
                index,
                agent_id: answer.agent_id,
                cert_pem: answer.certificate_pem,
                key_pem: key.serialize_pem(),
                last_sequence: 0,
            });
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no collector url")))
    }
}

/// `error: cause: cause…`.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}
