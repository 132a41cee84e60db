//! Enrollment: how the agent gets, keeps and renews the client certificate that every
//! `Inventory` call needs (wire protocol in `proto/aiscout/v1/fleet.proto`).
//!
//! # Enrolling
//! 1. The agent reads the one-time token from `collector.enrollment_token_file` and the CA that
//!    signed the collector's certificate from `collector.ca_file` (both required: with no CA
//!    there is nothing to trust the collector by).
//! 2. It generates its key pair locally (ECDSA P-256, rcgen) and sends only a certificate
//!    signing request. The private key never leaves the host.
//! 3. It connects over TLS, verifying the collector against that CA (and against
//!    `collector.server_name` when set, instead of the URL's host), **without** a client
//!    certificate, and calls `Enrollment.Enroll` with the token, the CSR and the host identity
//!    ([`super::identity`]).
//! 4. It checks the answer before keeping anything: a well-formed agent id, a certificate that
//!    parses, names that agent id, carries the agent's own public key and is issued by the
//!    returned CA. The collector picks the agent id and ignores the CSR's subject.
//! 5. It writes the state below and returns [`Enrolled`].
//!
//! # State: `state_dir/tls/` (`0700`, files `0600`)
//! ```text
//! agent.id   the agent id (the certificate's common name), one line
//! agent.key  the private key, PKCS#8 PEM
//! agent.crt  the client certificate, PEM
//! ca.pem     the CAs the agent trusts for the collector: the CA of the enrollment answer,
//!            then collector.ca_file's certificates when they differ from it
//! ```
//! The four files change together or not at all: they are written into a fresh
//! `state_dir/.tls.new/`, synced, then that directory is renamed to `tls/`, or swapped with
//! an existing `tls/` in one `renameat2(RENAME_EXCHANGE)` (the old state is then deleted).
//! On a file system without the exchange, the files are renamed into `tls/` one by one; a
//! crash in between leaves a key that does not match the certificate, which [`load`] reports.
//!
//! [`load`] answers `None` when there is no state (not enrolled), and an error naming the file
//! when the state is partial or does not hold together: the agent never silently re-enrolls
//! with a token that may be spent, and an operator fixes it by deleting `tls/`.
//!
//! # Renewing
//! [`needs_renewal`] is true once less than a third of the certificate's lifetime is left.
//! [`renew`] then sends a CSR for a new key over the mutual-TLS channel
//! (`Inventory.Renew`) and replaces key and certificate as above. The collector considers
//! only the newest certificate of an agent valid, so a crash between its answer and the write
//! loses the agent's identity: it must be enrolled again.
//!
//! # Errors
//! Collector statuses become [`EnrollError`]s in [`status_error`] only: `permission_denied`
//! and `unauthenticated` are refusals (a spent or unknown token, a revoked agent), the other
//! codes are failures that [`EnrollError::is_retryable`] tells apart.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aiscout_proto::v1::{self, enrollment_client::EnrollmentClient, inventory_client::InventoryClient};
use rcgen::{CertificateParams, DnType, KeyPair, PublicKeyData};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::identity::{sync_dir, tighten_file, write_new_private, PRIVATE_DIR_MODE};
use crate::config::Config;

/// The directory of the enrollment state, in the state directory.
pub const TLS_DIR: &str = "tls";
/// Where a new state is prepared before it replaces [`TLS_DIR`], in the state directory.
const STAGING_DIR: &str = ".tls.new";
/// The agent id file.
pub const AGENT_ID_FILE: &str = "agent.id";
/// The private key file.
pub const KEY_FILE: &str = "agent.key";
/// The client certificate file.
pub const CERT_FILE: &str = "agent.crt";
/// The trusted CA file.
pub const CA_FILE: &str = "ca.pem";
/// Longest agent id accepted from the collector (it becomes a file's content and a log field).
const MAX_AGENT_ID_LEN: usize = 128;
/// Most bytes read from a state, token or CA file.
const MAX_FILE_BYTES: u64 = 64 * 1024;
/// Time allowed to establish the TCP and TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for the collector's answer to one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// What an enrolled agent holds: its id and its TLS material.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The id the collector gave this agent; the certificate's common name.
    pub agent_id: String,
    /// The client certificate (PEM).
    pub cert_pem: String,
    /// The private key of the certificate (PKCS#8 PEM); never sent anywhere.
    pub key_pem: String,
    /// The CA certificates trusted for the collector (PEM, one or more).
    pub ca_pem: String,
    /// Unix seconds after which the certificate is no longer valid (from the certificate).
    pub not_after: i64,
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolled")
            .field("agent_id", &self.agent_id)
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// The collector call an error concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `Enrollment.Enroll`.
    Enroll,
    /// `Inventory.Renew`.
    Renew,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Enroll => "enrollment",
            Self::Renew => "certificate renewal",
        })
    }
}

/// Why enrolling, renewing or loading the enrollment state failed.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// A configuration key that enrollment needs is not set.
    #[error("{key}: not set: {why}")]
    NotConfigured {
        /// The dotted configuration key.
        key: &'static str,
        /// Why it is needed.
        why: &'static str,
    },
    /// An input file (token, collector CA) could not be read.
    #[error("{}: cannot read the {what}: {source}", path.display())]
    ReadInput {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The enrollment token file holds nothing.
    #[error("{}: the enrollment token file is empty", path.display())]
    EmptyToken {
        /// The file.
        path: PathBuf,
    },
    /// The collector CA file holds no certificate.
    #[error("{}: no certificate in the collector ca file: {reason}", path.display())]
    BadCaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The agent key or its certificate signing request could not be made.
    #[error("cannot generate the agent key and certificate signing request: {0}")]
    KeyGeneration(#[source] rcgen::Error),
    /// `collector.url` (with the TLS settings) does not make an endpoint.
    #[error("collector.url: invalid collector endpoint {url}: {reason}")]
    Endpoint {
        /// The URL.
        url: String,
        /// What tonic said.
        reason: String,
    },
    /// No TLS connection to the collector (unreachable, or its certificate is not trusted).
    #[error("cannot connect to the collector at {url}: {reason}")]
    Connect {
        /// The URL.
        url: String,
        /// What the transport said, with its causes.
        reason: String,
    },
    /// The collector refused the call: an unknown, spent or expired token, a revoked agent.
    #[error("{call} refused by the collector: {message}")]
    Refused {
        /// The call.
        call: Call,
        /// The collector's message.
        message: String,
    },
    /// The collector found the request malformed (a bad CSR, a missing token).
    #[error("{call} request rejected by the collector: {message}")]
    Rejected {
        /// The call.
        call: Call,
        /// The collector's message.
        message: String,
    },
    /// The call failed otherwise (unavailable, timed out, internal error).
    #[error("{call} failed: {code:?}: {message}")]
    Rpc {
        /// The call.
        call: Call,
        /// The gRPC status code.
        code: tonic::Code,
        /// The collector's or the transport's message.
        message: String,
    },
    /// The collector's answer does not hold together; nothing was kept.
    #[error("invalid {call} answer from the collector: {field}: {reason}")]
    InvalidResponse {
        /// The call.
        call: Call,
        /// The field of the answer at fault.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A state file could not be read.
    #[error("{}: cannot read enrollment state: {source}", path.display())]
    ReadState {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The state could not be written.
    #[error("{}: cannot write enrollment state: {source}", path.display())]
    WriteState {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Some state files exist and this one does not.
    #[error("{}: missing: the enrollment state is incomplete (delete the directory to enroll again)", path.display())]
    IncompleteState {
        /// The missing file.
        path: PathBuf,
    },
    /// A state file is unreadable as what it should be, or disagrees with the others.
    #[error("{}: corrupt enrollment state: {reason} (delete the directory to enroll again)", path.display())]
    CorruptState {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A worker thread died.
    #[error("enrollment worker failed: {0}")]
    Worker(String),
}

impl EnrollError {
    /// Whether trying again later may succeed without anyone changing anything (the collector
    /// was unreachable, busy or timed out), as opposed to a refusal or a local problem.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            Self::Rpc { code, .. } => matches!(
                code,
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::ResourceExhausted
                    | tonic::Code::Aborted
                    | tonic::Code::Internal
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            ),
            _ => false,
        }
    }
}

/// The one mapping of collector statuses to enrollment errors (module docs, *Errors*).
pub fn status_error(call: Call, status: &tonic::Status) -> EnrollError {
    let message = status.message().to_string();
    match status.code() {
        tonic::Code::PermissionDenied | tonic::Code::Unauthenticated => EnrollError::Refused { call, message },
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => EnrollError::Rejected { call, message },
        code => EnrollError::Rpc { call, code, message },
    }
}

// ---------------------------------------------------------------------------------------
// The calls.

/// Enrolls this agent with the collector of `config` (module docs, *Enrolling*) and saves the
/// state in `config.state_dir`, replacing any earlier one.
pub async fn enroll(config: &Config, identity: v1::HostIdentity) -> Result<Enrolled, EnrollError> {
    let url = collector_url(config)?.to_string();
    let token_path = config.collector.enrollment_token_file.clone().ok_or(EnrollError::NotConfigured {
        key: "collector.enrollment_token_file",
        why: "the agent is not enrolled and needs an enrollment token",
    })?;
    let ca_path = config.collector.ca_file.clone().ok_or(EnrollError::NotConfigured {
        key: "collector.ca_file",
        why: "enrolling needs the ca that signed the collector's certificate",
    })?;
    let (token, ca_file_pem) = blocking(move || Ok((read_token(&token_path)?, read_ca_file(&ca_path)?))).await?;

    let (key, csr_pem) = key_and_csr(&identity.hostname)?;
    let channel = connect(config, tls_config(config, &ca_file_pem)).await?;
    let request = v1::EnrollRequest {
        token,
        csr_pem,
        identity: Some(identity),
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    let mut client = EnrollmentClient::new(channel);
    let response = within_timeout(Call::Enroll, client.enroll(request)).await?;

    let ca_pem = trusted_cas(&response.ca_pem, &ca_file_pem);
    let key_pem = key.serialize_pem();
    let not_after = check(&response.agent_id, &response.certificate_pem, &key_pem, &response.ca_pem)
        .map_err(|m| m.into_response_error(Call::Enroll))?;
    if not_after != response.not_after {
        tracing::warn!(agent_id = %response.agent_id, certificate = not_after, answer = response.not_after, "expiry in the answer differs from the certificate's; using the certificate's");
    }
    let enrolled =
        Enrolled { agent_id: response.agent_id, cert_pem: response.certificate_pem, key_pem, ca_pem, not_after };
    save_blocking(&config.state_dir, &enrolled).await?;
    if response.host_status == "clone" {
        tracing::warn!(agent_id = %enrolled.agent_id, url = %url, host_status = %response.host_status, "enrolled, but the collector sees another live agent with this machine fingerprint");
    } else {
        tracing::info!(agent_id = %enrolled.agent_id, url = %url, host_status = %response.host_status, not_after = enrolled.not_after, "enrolled");
    }
    Ok(enrolled)
}

/// Replaces the certificate of `enrolled` with one for a new key (module docs, *Renewing*),
/// saves it in `config.state_dir` and returns the new state.
pub async fn renew(config: &Config, enrolled: &Enrolled) -> Result<Enrolled, EnrollError> {
    let (key, csr_pem) = key_and_csr(&enrolled.agent_id)?;
    let channel = connect(config, channel_config(enrolled, config)).await?;
    let request = v1::RenewRequest { csr_pem };
    let mut client = InventoryClient::new(channel);
    let response = within_timeout(Call::Renew, client.renew(request)).await?;
    let key_pem = key.serialize_pem();
    let not_after = check(&enrolled.agent_id, &response.certificate_pem, &key_pem, &enrolled.ca_pem)
        .map_err(|m| m.into_response_error(Call::Renew))?;
    let renewed = Enrolled { cert_pem: response.certificate_pem, key_pem, not_after, ..enrolled.clone() };
    save_blocking(&config.state_dir, &renewed).await?;
    tracing::info!(agent_id = %renewed.agent_id, not_after = renewed.not_after, "certificate renewed");
    Ok(renewed)
}

/// The TLS settings of every call after enrollment: the agent's certificate and key as client
/// identity, the saved CAs as trust, `collector.server_name` as the name to verify when set.
pub fn channel_config(enrolled: &Enrolled, config: &Config) -> ClientTlsConfig {
    tls_config(config, &enrolled.ca_pem).identity(Identity::from_pem(&enrolled.cert_pem, &enrolled.key_pem))
}

/// The endpoint of `collector.url` with `tls`, for [`enroll`], [`renew`] and the inventory
/// stream alike.
pub fn endpoint(config: &Config, tls: ClientTlsConfig) -> Result<Endpoint, EnrollError> {
    let url = collector_url(config)?;
    Endpoint::from_shared(url.to_string())
        .and_then(|e| e.tls_config(tls))
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT))
        .map_err(|e| EnrollError::Endpoint { url: url.to_string(), reason: error_chain(&e) })
}

/// Whether `enrolled`'s certificate has less than a third of its lifetime left at `now` (or
/// cannot be read, which renewing repairs).
pub fn needs_renewal(enrolled: &Enrolled, now: SystemTime) -> bool {
    let Ok(cert) = CertFacts::from_pem(&enrolled.cert_pem) else { return true };
    let lifetime = cert.not_after.saturating_sub(cert.not_before);
    let left = cert.not_after.saturating_sub(unix_seconds(now));
    left.saturating_mul(3) < lifetime
}

fn collector_url(config: &Config) -> Result<&str, EnrollError> {
    config
        .collector
        .url
        .as_deref()
        .ok_or(EnrollError::NotConfigured { key: "collector.url", why: "the agent has no collector to talk to" })
}

fn tls_config(config: &Config, ca_pem: &str) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    match &config.collector.server_name {
        Some(name) => tls.domain_name(name.clone()),
        None => tls,
    }
}

async fn connect(config: &Config, tls: ClientTlsConfig) -> Result<Channel, EnrollError> {
    let endpoint = endpoint(config, tls)?;
    endpoint
        .connect()
        .await
        .map_err(|e| EnrollError::Connect { url: endpoint.uri().to_string(), reason: error_chain(&e) })
}

/// Awaits a unary call for at most [`CALL_TIMEOUT`], mapping its status.
async fn within_timeout<T>(
    call: Call,
    future: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, EnrollError> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(status_error(call, &status)),
        Err(_) => Err(EnrollError::Rpc {
            call,
            code: tonic::Code::DeadlineExceeded,
            message: format!("no answer within {}s", CALL_TIMEOUT.as_secs()),
        }),
    }
}

/// `e` and its causes, joined by `: ` (tonic's transport errors say little on their own).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EnrollError> + Send + 'static,
) -> Result<T, EnrollError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EnrollError::Worker(e.to_string()))?
}

async fn save_blocking(state_dir: &Path, enrolled: &Enrolled) -> Result<(), EnrollError> {
    let (state_dir, enrolled) = (state_dir.to_path_buf(), enrolled.clone());
    blocking(move || save(&state_dir, &enrolled)).await
}

// ---------------------------------------------------------------------------------------
// Keys, requests and checks.

/// A new key pair and a PEM certificate signing request for it. The subject is `name` for
/// whoever reads the request; the collector ignores it.
fn key_and_csr(name: &str) -> Result<(KeyPair, String), EnrollError> {
    let key = KeyPair::generate().map_err(EnrollError::KeyGeneration)?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, if name.is_empty() { "aiscout-agent" } else { name });
    let csr = params.serialize_request(&key).and_then(|r| r.pem()).map_err(EnrollError::KeyGeneration)?;
    Ok((key, csr))
}

/// The CAs to keep in `ca.pem`: the answer's, then the configured file's when it differs.
fn trusted_cas(answer_ca: &str, ca_file_pem: &str) -> String {
    let answer = answer_ca.trim();
    let file = ca_file_pem.trim();
    if file.is_empty() || answer.contains(file) {
        format!("{answer}\n")
    } else {
        format!("{answer}\n{file}\n")
    }
}

/// One of the four parts of the enrollment state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    AgentId,
    Key,
    Cert,
    Ca,
}

impl Part {
    /// Its file in [`TLS_DIR`].
    fn file(self) -> &'static str {
        match self {
            Self::AgentId => AGENT_ID_FILE,
            Self::Key => KEY_FILE,
            Self::Cert => CERT_FILE,
            Self::Ca => CA_FILE,
        }
    }

    /// Its field in the collector's answer.
    fn field(self) -> &'static str {
        match self {
            Self::AgentId => "agent_id",
            Self::Key => "private key",
            Self::Cert => "certificate_pem",
            Self::Ca => "ca_pem",
        }
    }
}

/// A part of the state that does not hold together with the others, and why.
#[derive(Debug)]
struct Mismatch {
    /// The part at fault.
    part: Part,
    /// What is wrong with it.
    reason: String,
}

impl Mismatch {
    fn new(part: Part, reason: impl Into<String>) -> Self {
        Self { part, reason: reason.into() }
    }

    fn into_response_error(self, call: Call) -> EnrollError {
        EnrollError::InvalidResponse { call, field: self.part.field(), reason: self.reason }
    }

    fn into_state_error(self, dir: &Path) -> EnrollError {
        EnrollError::CorruptState { path: dir.join(self.part.file()), reason: self.reason }
    }
}

/// Checks that the four parts hold together and returns the certificate's expiry: a
/// well-formed agent id; a key; a certificate naming the agent id, for that key, issued by a
/// CA of `ca_pem`.
fn check(agent_id: &str, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<i64, Mismatch> {
    if agent_id.is_empty() || agent_id.len() > MAX_AGENT_ID_LEN {
        return Err(Mismatch::new(Part::AgentId, format!("must be 1 to {MAX_AGENT_ID_LEN} characters")));
    }
    if !agent_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(Mismatch::new(Part::AgentId, format!("{agent_id:?} has characters other than A-Z a-z 0-9 - _ .")));
    }
    let key = KeyPair::from_pem(key_pem).map_err(|e| Mismatch::new(Part::Key, format!("not a private key: {e}")))?;
    let cert = CertFacts::from_pem(cert_pem).map_err(|e| Mismatch::new(Part::Cert, e))?;
    if cert.common_name.as_deref() != Some(agent_id) {
        let named = cert.common_name.as_deref().unwrap_or("no common name");
        return Err(Mismatch::new(Part::Cert, format!("certificate names {named:?}, not the agent id {agent_id:?}")));
    }
    if cert.public_key != key.subject_public_key_info() {
        return Err(Mismatch::new(Part::Cert, "certificate is not for the agent's key"));
    }
    let cas = CertFacts::all_from_pem(ca_pem).map_err(|e| Mismatch::new(Part::Ca, e))?;
    if !cas.iter().any(|ca| ca.subject == cert.issuer) {
        return Err(Mismatch::new(Part::Cert, "certificate is not issued by the collector's ca"));
    }
    Ok(cert.not_after)
}

/// What the agent needs to know of a certificate.
#[derive(Debug)]
struct CertFacts {
    /// The subject's first common name.
    common_name: Option<String>,
    /// DER of the subject.
    subject: Vec<u8>,
    /// DER of the issuer.
    issuer: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    public_key: Vec<u8>,
    /// Start of validity, Unix seconds.
    not_before: i64,
    /// End of validity, Unix seconds.
    not_after: i64,
}

impl CertFacts {
    /// The first certificate of `pem`.
    fn from_pem(pem: &str) -> Result<Self, String> {
        let (_, block) =
            x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a pem certificate: {e}"))?;
        Self::from_block(&block)
    }

    /// Every certificate of `pem` (at least one).
    fn all_from_pem(pem: &str) -> Result<Vec<Self>, String> {
        let mut all = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
            let block = block.map_err(|e| format!("not a pem certificate: {e}"))?;
            all.push(Self::from_block(&block)?);
        }
        if all.is_empty() {
            return Err("no certificate".into());
        }
        Ok(all)
    }

    fn from_block(block: &x509_parser::pem::Pem) -> Result<Self, String> {
        if block.label != "CERTIFICATE" {
            return Err(format!("a pem {:?} block, not a certificate", block.label));
        }
        let cert = block.parse_x509().map_err(|e| format!("certificate does not parse: {e}"))?;
        let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        Ok(Self {
            common_name,
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            public_key: cert.public_key().raw.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map(|s| -s).unwrap_or(i64::MIN),
    }
}

// ---------------------------------------------------------------------------------------
// Files.

/// Reads a small file, at most [`MAX_FILE_BYTES`].
fn read_small(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    fs::File::open(path)?.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

fn read_token(path: &Path) -> Result<String, EnrollError> {
    let text = read_small(path).map_err(|source| EnrollError::ReadInput {
        what: "enrollment token",
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(EnrollError::EmptyToken { path: path.to_path_buf() });
    }
    Ok(token.to_string())
}

fn read_ca_file(path: &Path) -> Result<String, EnrollError> {
    let pem = read_small(path).map_err(|source| EnrollError::ReadInput {
        what: "collector ca",
        path: path.to_path_buf(),
        source,
    })?;
    CertFacts::all_from_pem(&pem).map_err(|reason| EnrollError::BadCaFile { path: path.to_path_buf(), reason })?;
    Ok(pem)
}

/// The enrollment state in `state_dir`, `None` when the agent is not enrolled (module docs,
/// *State*).
pub fn load(state_dir: &Path) -> Result<Option<Enrolled>, EnrollError> {
    let dir = state_dir.join(TLS_DIR);
    let read = |part: Part| {
        let path = dir.join(part.file());
        match read_small(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(EnrollError::ReadState { path, source }),
        }
    };
    let state = (read(Part::AgentId)?, read(Part::Key)?, read(Part::Cert)?, read(Part::Ca)?);
    let (agent_id, key_pem, cert_pem, ca_pem) = match state {
        (None, None, None, None) => return Ok(None),
        (Some(agent_id), Some(key_pem), Some(cert_pem), Some(ca_pem)) => (agent_id, key_pem, cert_pem, ca_pem),
        (agent_id, key, cert, _) => {
            let missing = if agent_id.is_none() {
                Part::AgentId
            } else if key.is_none() {
                Part::Key
            } else if cert.is_none() {
                Part::Cert
            } else {
                Part::Ca
            };
            return Err(EnrollError::IncompleteState { path: dir.join(missing.file()) });
        }
    };
    let agent_id = agent_id.trim().to_string();
    let not_after = check(&agent_id, &cert_pem, &key_pem, &ca_pem).map_err(|m| m.into_state_error(&dir))?;
    tighten_file(&dir.join(KEY_FILE));
    Ok(Some(Enrolled { agent_id, cert_pem, key_pem, ca_pem, not_after }))
}

/// Writes `enrolled` as the state of `state_dir`, all four files or none (module docs,
/// *State*).
fn save(state_dir: &Path, enrolled: &Enrolled) -> Result<(), EnrollError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| EnrollError::WriteState { path, source }
    };
    let dir = state_dir.join(TLS_DIR);
    let staging = state_dir.join(STAGING_DIR);
    crate::fileio::create_private_dir(state_dir).map_err(write_error(state_dir))?;
    if let Err(e) = fs::remove_dir_all(&staging) {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(write_error(&staging)(e));
        }
    }
    crate::fileio::create_private_dir(&staging).map_err(write_error(&staging))?;
    let agent_id_line = format!("{}\n", enrolled.agent_id);
    for (part, contents) in [
        (Part::AgentId, &agent_id_line),
        (Part::Key, &enrolled.key_pem),
        (Part::Cert, &enrolled.cert_pem),
        (Part::Ca, &enrolled.ca_pem),
    ] {
        let path = staging.join(part.file());
        write_new_private(&path, contents.as_bytes()).map_err(write_error(&path))?;
    }
    sync_dir(&staging).map_err(write_error(&staging))?;

    match fs::rename(&staging, &dir) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists) => {
            replace_existing(&staging, &dir).map_err(write_error(&dir))?;
        }
        Err(e) => return Err(write_error(&dir)(e)),
    }
    sync_dir(state_dir).map_err(write_error(state_dir))
}

/// Puts the state prepared in `staging` in place of the one in `dir`: one atomic exchange
/// where the file system has it, else file by file. Leaves `staging` removed.
fn replace_existing(staging: &Path, dir: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, staging, CWD, dir, RenameFlags::EXCHANGE) {
        Ok(()) => {}
        Err(e) if [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP].contains(&e) => {
            tracing::warn!(path = %dir.display(), error = %e, "no atomic directory exchange here; replacing enrollment files one by one");
            for part in [Part::Ca, Part::Key, Part::Cert, Part::AgentId] {
                fs::rename(staging.join(part.file()), dir.join(part.file()))?;
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
            sync_dir(dir)?;
        }
        Err(e) => return Err(e.into()),
    }
    // `staging` now holds the old state (or nothing): delete it.
    if let Err(e) = fs::remove_dir_all(staging) {
        tracing::warn!(path = %staging.display(), error = %e, "cannot remove the previous enrollment state");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::{Arc, Mutex};

    use aiscout_proto::v1::enrollment_server::{Enrollment, EnrollmentServer};
    use aiscout_proto::v1::inventory_server::{Inventory, InventoryServer};
    use rcgen::{
        BasicConstraints, CertificateSigningRequestParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyUsagePurpose,
    };
    use tonic::transport::server::TcpIncoming;
    use tonic::transport::{Server, ServerTlsConfig};
    use tonic::{Request, Response, Status};

    use super::*;
    use crate::config::CollectorConfig;

    const DAY: u64 = 24 * 3600;

    fn now_unix() -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
    }

    /// A throwaway certificate authority.
    struct TestCa {
        cert_pem: String,
        issuer: Issuer<'static, KeyPair>,
    }

    impl TestCa {
        fn new(name: &str) -> Self {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, name);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
            let cert = params.self_signed(&key).unwrap();
            Self { cert_pem: cert.pem(), issuer: Issuer::new(params, key) }
        }

        /// A client certificate for `key` naming `cn`, valid from `not_before` (Unix seconds)
        /// for `lifetime`.
        fn sign(&self, key: &impl PublicKeyData, cn: &str, not_before: u64, lifetime: Duration) -> String {
            let mut params = CertificateParams::default();
            params.distinguished_name.push(DnType::CommonName, cn);
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            params.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(not_before);
            params.not_after = params.not_before + lifetime;
            params.signed_by(key, &self.issuer).unwrap().pem()
        }

        /// What a collector does with a CSR: a one-hour certificate naming `cn`.
        fn sign_csr(&self, csr_pem: &str, cn: &str) -> Result<String, Status> {
            let csr = CertificateSigningRequestParams::from_pem(csr_pem)
                .map_err(|e| Status::invalid_argument(format!("bad csr: {e}")))?;
            Ok(self.sign(&csr.public_key, cn, now_unix() - 300, Duration::from_secs(3600)))
        }

        /// A server certificate for `localhost` and its key.
        fn server_identity(&self) -> Identity {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            let cert = params.signed_by(&key, &self.issuer).unwrap();
            Identity::from_pem(cert.pem(), key.serialize_pem())
        }
    }

    /// A state whose parts hold together, signed by `ca`.
    fn enrolled_by(ca: &TestCa, agent_id: &str, not_before: u64, lifetime: Duration) -> Enrolled {
        let key = KeyPair::generate().unwrap();
        let cert_pem = ca.sign(&key, agent_id, not_before, lifetime);
        let not_after = CertFacts::from_pem(&cert_pem).unwrap().not_after;
        Enrolled {
            agent_id: agent_id.into(),
            cert_pem,
            key_pem: key.serialize_pem(),
            ca_pem: ca.cert_pem.clone(),
            not_after,
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
    }

    // ---- keys, checks, statuses --------------------------------------------------------

    #[test]
    fn the_csr_carries_the_new_key_and_the_key_stays_pkcs8() {
        let (key, csr_pem) = key_and_csr("host-1").unwrap();
        let csr = CertificateSigningRequestParams::from_pem(&csr_pem).unwrap();
        assert_eq!(csr.public_key.subject_public_key_info(), key.subject_public_key_info());
        assert!(key.serialize_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        let (other, _) = key_and_csr("").unwrap();
        assert_ne!(other.subject_public_key_info(), key.subject_public_key_info());
    }

    #[test]
    fn statuses_map_to_clear_errors() {
        let refused = status_error(Call::Enroll, &Status::permission_denied("token already used"));
        assert_eq!(refused.to_string(), "enrollment refused by the collector: token already used");
        assert!(!refused.is_retryable());
        let revoked = status_error(Call::Renew, &Status::unauthenticated("a client certificate is required"));
        assert!(matches!(revoked, EnrollError::Refused { call: Call::Renew, .. }));
        let bad = status_error(Call::Enroll, &Status::invalid_argument("certificate signing request refused"));
        assert!(matches!(bad, EnrollError::Rejected { .. }) && !bad.is_retryable());
        let down = status_error(Call::Enroll, &Status::unavailable("database is busy"));
        assert!(matches!(down, EnrollError::Rpc { code: tonic::Code::Unavailable, .. }) && down.is_retryable());
    }

    #[test]
    fn debug_output_never_shows_the_private_key() {
        let ca = TestCa::new("test ca");
        let enrolled = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600));
        let text = format!("{enrolled:?}");
        assert!(text.contains("agent-1") && text.contains("<redacted>"), "{text}");
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }

    #[test]
    fn trusted_cas_keep_the_configured_one_when_it_differs() {
        let (a, b) = (TestCa::new("a"), TestCa::new("b"));
        assert_eq!(CertFacts::all_from_pem(&trusted_cas(&a.cert_pem, &a.cert_pem)).unwrap().len(), 1);
        assert_eq!(CertFacts::all_from_pem(&trusted_cas(&a.cert_pem, &b.cert_pem)).unwrap().len(), 2);
    }

    #[test]
    fn renewal_is_due_with_less_than_a_third_of_the_lifetime_left() {
        let ca = TestCa::new("test ca");
        let start = 1_900_000_000; // 2030
        let enrolled = enrolled_by(&ca, "agent-1", start, Duration::from_secs(90 * DAY));
        let at = |secs: u64| UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(enrolled.not_after, i64::try_from(start + 90 * DAY).unwrap());
        assert!(!needs_renewal(&enrolled, at(start)));
        assert!(!needs_renewal(&enrolled, at(start + 59 * DAY)));
        assert!(!needs_renewal(&enrolled, at(start + 60 * DAY)), "exactly a third left");
        assert!(needs_renewal(&enrolled, at(start + 60 * DAY + 1)));
        assert!(needs_renewal(&enrolled, at(start + 365 * DAY)), "expired");
        assert!(!needs_renewal(&enrolled, UNIX_EPOCH), "not yet valid is not due");

        let garbage = Enrolled { cert_pem: "garbage".into(), ..enrolled };
        assert!(needs_renewal(&garbage, at(start)));
    }

    // ---- state files -------------------------------------------------------------------

    #[test]
    fn state_is_saved_private_and_loaded_back() {
        let ca = TestCa::new("test ca");
        let state = tempfile::tempdir().unwrap();
        let state_dir = state.path().join("state");
        assert_eq!(load(&state_dir).unwrap(), None, "no state directory");
        fs::create_dir_all(state_dir.join(TLS_DIR)).unwrap();
        assert_eq!(load(&state_dir).unwrap(), None, "empty tls directory");

        let first = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600));
        save(&state_dir, &first).unwrap();
        let dir = state_dir.join(TLS_DIR);
        assert_eq!(mode(&dir), 0o700);
        for file in [AGENT_ID_FILE, KEY_FILE, CERT_FILE, CA_FILE] {
            assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
        }
        assert_eq!(fs::read_to_string(dir.join(AGENT_ID_FILE)).unwrap(), "agent-1\n");
        assert_eq!(load(&state_dir).unwrap(), Some(first.clone()));

        // Saving again replaces the whole state and leaves no staging directory behind.
        let second = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(7200));
        save(&state_dir, &second).unwrap();
        assert_eq!(load(&state_dir).unwrap(), Some(second.clone()));
        assert_ne!(second.key_pem, first.key_pem);
        let mut names: Vec<_> = fs::read_dir(&state_dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, vec![TLS_DIR]);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_loose_key_file_is_tightened_on_load() {
        let ca = TestCa::new("test ca");
        let state = tempfile::tempdir().unwrap();
        save(state.path(), &enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600))).unwrap();
        let key = state.path().join(TLS_DIR).join(KEY_FILE);
        fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
        load(state.path()).unwrap().unwrap();
        assert_eq!(mode(&key), 0o600);
    }

    #[test]
    fn partial_state_names_the_missing_file() {
        let ca = TestCa::new("test ca");
        let state = tempfile::tempdir().unwrap();
        save(state.path(), &enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600))).unwrap();
        let missing = state.path().join(TLS_DIR).join(CERT_FILE);
        fs::remove_file(&missing).unwrap();
        let err = load(state.path()).unwrap_err();
        assert!(matches!(&err, EnrollError::IncompleteState { path } if *path == missing), "{err:?}");
        assert!(err.to_string().starts_with(&format!("{}: missing", missing.display())), "{err}");
    }

    #[test]
    fn corrupt_state_names_the_file_at_fault() {
        let ca = TestCa::new("test ca");
        let other_ca = TestCa::new("other ca");
        let good = enrolled_by(&ca, "agent-1", now_unix(), Duration::from_secs(3600));
        let stranger = enrolled_by(&ca, "agent-2", now_unix(), Duration::from_secs(3600));
        let cases: Vec<(&str, String, &str)> = vec![
            (CERT_FILE, "not a certificate".into(), "not a pem certificate"),
            (CERT_FILE, stranger.cert_pem.clone(), "names \"agent-2\""),
            (KEY_FILE, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(), "not a private key"),
            (KEY_FILE, stranger.key_pem.clone(), ""),
            (CA_FILE, "garbage".into(), "no certificate"),
            (CA_FILE, other_ca.cert_pem.clone(), ""),
            (AGENT_ID_FILE, "../../etc/passwd\n".into(), "characters other than"),
        ];
        for (file, contents, says) in cases {
            let state = tempfile::tempdir().unwrap();
            save(state.path(), &good).unwrap();
            fs::write(state.path().join(TLS_DIR).join(file), &contents).unwrap();
            let err = load(state.path()).unwrap_err();
            let EnrollError::CorruptState { path, reason } = &err else { panic!("{file}: {err:?}") };
            // A key or CA that does not match is reported on the certificate that disagrees.
            let expected = match (file, says) {
                (KEY_FILE | CA_FILE, "") => CERT_FILE,
                _ => file,
            };
            assert_eq!(path, &state.path().join(TLS_DIR).join(expected), "{file}: {reason}");
            assert!(reason.contains(says), "{file}: {reason}");
            assert!(err.to_string().contains("corrupt enrollment state"), "{err}");
        }
    }

    // ---- against an in-process collector ------------------------------------------------

    /// What the fake collector does with an enrollment.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Behaviour {
        /// Signs the CSR with the agent id.
        Honest,
        /// Returns a certificate for another key.
        WrongKey,
        /// Returns an agent id that is not one.
        BadAgentId,
    }

    /// A minimal collector: one token, one agent id, its CA signs what it is asked.
    #[derive(Clone)]
    struct FakeCollector {
        ca: Arc<TestCa>,
        token: &'static str,
        behaviour: Behaviour,
        /// Identities received by `Enroll`.
        enrolled: Arc<Mutex<Vec<v1::HostIdentity>>>,
        /// Common names of the client certificates that called `Renew`.
        renewed: Arc<Mutex<Vec<String>>>,
    }

    const AGENT_ID: &str = "agent-0123abcd";

    #[tonic::async_trait]
    impl Enrollment for FakeCollector {
        async fn enroll(&self, request: Request<v1::EnrollRequest>) -> Result<Response<v1::EnrollResponse>, Status> {
            if request.peer_certs().is_some_and(|certs| !certs.is_empty()) {
                return Err(Status::invalid_argument("enrollment must come without a client certificate"));
            }
            let req = request.into_inner();
            if req.token != self.token {
                return Err(Status::permission_denied("enrollment refused: unknown token"));
            }
            self.enrolled.lock().unwrap().push(req.identity.unwrap_or_default());
            let certificate_pem = match self.behaviour {
                Behaviour::WrongKey => {
                    self.ca.sign(&KeyPair::generate().unwrap(), AGENT_ID, now_unix(), Duration::from_secs(3600))
                }
                _ => self.ca.sign_csr(&req.csr_pem, AGENT_ID)?,
            };
            let agent_id = if self.behaviour == Behaviour::BadAgentId { "" } else { AGENT_ID };
            Ok(Response::new(v1::EnrollResponse {
                agent_id: agent_id.into(),
                certificate_pem,
                ca_pem: self.ca.cert_pem.clone(),
                not_after: 0,
                host_status: "new".into(),
            }))
        }
    }

    #[tonic::async_trait]
    impl Inventory for FakeCollector {
        type StreamStream = tonic::codegen::BoxStream<v1::CollectorMessage>;

        async fn stream(
            &self,
            _request: Request<tonic::Streaming<v1::AgentMessage>>,
        ) -> Result<Response<Self::StreamStream>, Status> {
            Err(Status::unimplemented("not in this test"))
        }

        async fn renew(&self, request: Request<v1::RenewRequest>) -> Result<Response<v1::RenewResponse>, Status> {
            let certs =
                request.peer_certs().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
            let der = certs.first().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
            let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
            let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string();
            self.renewed.lock().unwrap().push(cn.clone());
            let certificate_pem = self.ca.sign_csr(&request.get_ref().csr_pem, &cn)?;
            Ok(Response::new(v1::RenewResponse { certificate_pem, not_after: 0 }))
        }
    }

    /// A running fake collector on 127.0.0.1; dropping it stops the server.
    struct Running {
        addr: SocketAddr,
        collector: FakeCollector,
        _stop: tokio::sync::oneshot::Sender<()>,
    }

    async fn start(behaviour: Behaviour) -> Running {
        let collector = FakeCollector {
            ca: Arc::new(TestCa::new("fake collector ca")),
            token: "tok-1",
            behaviour,
            enrolled: Arc::default(),
            renewed: Arc::default(),
        };
        let tls = ServerTlsConfig::new()
            .identity(collector.ca.server_identity())
            .client_ca_root(Certificate::from_pem(&collector.ca.cert_pem))
            .client_auth_optional(true);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = Server::builder()
            .tls_config(tls)
            .unwrap()
            .add_service(EnrollmentServer::new(collector.clone()))
            .add_service(InventoryServer::new(collector.clone()));
        tokio::spawn(router.serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
            let _ = stopped.await;
        }));
        Running { addr, collector, _stop: stop }
    }

    /// An agent configuration for `server` with its files in `dir`: token `token`, and the
    /// collector's CA unless `ca_pem` says otherwise.
    fn agent_config(dir: &Path, server: &Running, token: &str, ca_pem: Option<&str>) -> Config {
        let (token_file, ca_file) = (dir.join("token"), dir.join("collector-ca.pem"));
        fs::write(&token_file, format!("  {token}\n")).unwrap();
        fs::write(&ca_file, ca_pem.unwrap_or(&server.collector.ca.cert_pem)).unwrap();
        Config {
            state_dir: dir.join("state"),
            collector: CollectorConfig {
                url: Some(format!("https://127.0.0.1:{}", server.addr.port())),
                ca_file: Some(ca_file),
                enrollment_token_file: Some(token_file),
                server_name: Some("localhost".into()),
            },
            ..Config::default()
        }
    }

    fn identity() -> v1::HostIdentity {
        v1::HostIdentity { hostname: "host-1".into(), machine_fingerprint: "f".repeat(64), ..Default::default() }
    }

    #[tokio::test]
    async fn enrolls_then_renews_over_mutual_tls() {
        let server = start(Behaviour::Honest).await;
        let dir = tempfile::tempdir().unwrap();
        let config = agent_config(dir.path(), &server, "tok-1", None);

        let enrolled = enroll(&config, identity()).await.unwrap();
        assert_eq!(enrolled.agent_id, AGENT_ID);
        assert_eq!(server.collector.enrolled.lock().unwrap().clone(), vec![identity()]);
        assert_eq!(CertFacts::all_from_pem(&enrolled.ca_pem).unwrap().len(), 1);
        assert_eq!(load(&config.state_dir).unwrap(), Some(enrolled.clone()));
        assert_eq!(mode(&config.state_dir.join(TLS_DIR).join(KEY_FILE)), 0o600);
        assert!(!needs_renewal(&enrolled, SystemTime::now()));
        assert!(needs_renewal(&enrolled, SystemTime::now() + Duration::from_secs(45 * 60)));

        let renewed = renew(&config, &enrolled).await.unwrap();
        assert_eq!(server.collector.renewed.lock().unwrap().clone(), vec![AGENT_ID.to_string()]);
        assert_eq!(renewed.agent_id, enrolled.agent_id);
        assert_ne!(renewed.key_pem, enrolled.key_pem);
        assert_ne!(renewed.cert_pem, enrolled.cert_pem);
        assert_eq!(load(&config.state_dir).unwrap(), Some(renewed));
    }

    #[tokio::test]
    async fn a_refused_token_is_reported_and_nothing_is_kept() {
        let server = start(Behaviour::Honest).await;
        let dir = tempfile::tempdir().unwrap();
        let config = agent_config(dir.path(), &server, "tok-spent", None);
        let err = enroll(&config, identity()).await.unwrap_err();
        assert_eq!(err.to_string(), "enrollment refused by the collector: enrollment refused: unknown token");
        assert!(!err.is_retryable());
        assert_eq!(load(&config.state_dir).unwrap(), None);
    }

    #[tokio::test]
    async fn a_collector_outside_the_configured_ca_is_not_trusted() {
        let server = start(Behaviour::Honest).await;
        let dir = tempfile::tempdir().unwrap();
        let stranger = TestCa::new("another ca");
        let config = agent_config(dir.path(), &server, "tok-1", Some(&stranger.cert_pem));
        let err = enroll(&config, identity()).await.unwrap_err();
        assert!(matches!(err, EnrollError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains("cannot connect to the collector at https://127.0.0.1:"), "{err}");
        assert!(server.collector.enrolled.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn answers_that_do_not_hold_together_are_refused() {
        for (behaviour, field, says) in [
            (Behaviour::WrongKey, "certificate_pem", "not for the agent's key"),
            (Behaviour::BadAgentId, "agent_id", "must be 1 to"),
        ] {
            let server = start(behaviour).await;
            let dir = tempfile::tempdir().unwrap();
            let config = agent_config(dir.path(), &server, "tok-1", None);
            let err = enroll(&config, identity()).await.unwrap_err();
            let EnrollError::InvalidResponse { field: f, reason, .. } = &err else { panic!("{behaviour:?}: {err:?}") };
            assert_eq!((*f, reason.contains(says)), (field, true), "{behaviour:?}: {reason}");
            assert_eq!(load(&config.state_dir).unwrap(), None, "{behaviour:?}");
        }
    }

    #[tokio::test]
    async fn missing_inputs_are_named_before_any_connection() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { state_dir: dir.path().join("state"), ..Config::default() };
        let err = enroll(&config, identity()).await.unwrap_err();
        assert_eq!(err.to_string(), "collector.url: not set: the agent has no collector to talk to");

        config.collector.url = Some("https://127.0.0.1:9".into());
        let err = enroll(&config, identity()).await.unwrap_err();
        assert!(err.to_string().starts_with("collector.enrollment_token_file: not set"), "{err}");

        let token = dir.path().join("token");
        config.collector.enrollment_token_file = Some(token.clone());
        config.collector.ca_file = Some(dir.path().join("ca.pem"));
        let err = enroll(&config, identity()).await.unwrap_err();
        assert!(
            err.to_string().starts_with(&format!("{}: cannot read the enrollment token: ", token.display())),
            "{err}"
        );

        fs::write(&token, " \n").unwrap();
        let err = enroll(&config, identity()).await.unwrap_err();
        assert_eq!(err.to_string(), format!("{}: the enrollment token file is empty", token.display()));

        fs::write(&token, "tok-1").unwrap();
        let err = enroll(&config, identity()).await.unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}: cannot read the collector ca: ", dir.path().join("ca.pem").display())),
            "{err}"
        );
        fs::write(dir.path().join("ca.pem"), "not pem").unwrap();
        let err = enroll(&config, identity()).await.unwrap_err();
        assert!(matches!(err, EnrollError::BadCaFile { .. }), "{err:?}");
    }
}
