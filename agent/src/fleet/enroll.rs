//! Enrollment: how the agent gets and renews the client certificate that every `Inventory`
//! call needs (wire protocol in `proto/aiscout/v1/fleet.proto`). Where the credentials live is
//! [`super::credentials`]; how the agent reaches the collector is [`super::channel`].
//!
//! # Enrolling
//! 1. The agent reads the one-time token from `collector.enrollment_token_file`, refusing a
//!    file others could read or choose ([`token_file`]), and how to trust the collector: the
//!    CA of `collector.ca_file`, or the CA digest pinned by `collector.ca_sha256`
//!    ([`ca_pin`]). One of them is required: with neither there is nothing to trust the
//!    collector by, and `validate` refuses such a configuration.
//! 2. It generates its key pair locally (ECDSA P-256, rcgen) and sends only a certificate
//!    signing request. The private key never leaves the host.
//! 3. It connects over TLS, verifying the collector against that CA ([`channel::trust_only`])
//!    or against the CA of its chain that matches the pin ([`ca_pin::connect`]), **without** a
//!    client certificate, and calls `Enrollment.Enroll` with the token, the CSR and the host
//!    identity ([`super::host_identity`]). Nothing is sent before the collector is verified.
//! 4. It checks the answer before keeping anything ([`credentials::check`]): a well-formed agent
//!    id, a certificate that parses, names that agent id, carries the agent's own public key and
//!    is issued by the returned CA. The collector picks the agent id and ignores the CSR's
//!    subject.
//! 5. It saves the credentials ([`credentials::save`]), deletes the token file when it may
//!    ([`token_file::remove_used`]) and returns them.
//!
//! # Renewing
//! [`needs_renewal`] is true once less than a third of the certificate's lifetime is left, and
//! the collector may ask for a renewal at any time (a CA rotation). [`renew`] then sends a CSR
//! for a new key over the mutual-TLS channel (`Inventory.Renew`) and replaces key and
//! certificate as above. The answer lists the CAs to trust from then on (the current one and
//! the previous ones still accepted): the agent keeps that list, plus the CAs its configuration
//! names (`collector.ca_file`, the CA matching `collector.ca_sha256`), so a CA the collector
//! retired is no longer trusted once the operator retires it from the configuration too. The collector considers
//! only the newest certificate of an agent valid, so a crash between its answer and the write
//! loses the agent's identity: it must be enrolled again.
//!
//! # Errors
//! Collector statuses become [`EnrollError`]s in [`status_error`] only: `permission_denied`
//! and `unauthenticated` are refusals (a spent or unknown token, a revoked agent), the other
//! codes are failures that [`EnrollError::is_retryable`] tells apart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aiscout_proto::v1::{self, enrollment_client::EnrollmentClient, inventory_client::InventoryClient};
use rcgen::{CertificateParams, DnType, KeyPair};

use super::ca_pin;
use super::channel::{self, ChannelError};
use super::credentials::{self, CertFacts, CredentialsError, Enrolled, Mismatch};
use super::token_file::{self, TokenFileError};
use crate::config::{parse_ca_sha256, Config};
use crate::state_dir::StateDir;

/// Time allowed for the collector's answer to one call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

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

/// Why enrolling or renewing failed.
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
    /// The collector CA file could not be read.
    #[error("{}: cannot read the {what}: {source}", path.display())]
    ReadInput {
        /// What the file holds.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The enrollment token file is missing, unsafe or empty ([`token_file`]).
    #[error(transparent)]
    TokenFile(#[from] TokenFileError),
    /// `collector.ca_sha256` is not a digest.
    #[error("collector.ca_sha256: {reason}")]
    BadPin {
        /// What is wrong with it.
        reason: String,
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
    /// No channel to the collector.
    #[error(transparent)]
    Channel(#[from] ChannelError),
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
    /// The credentials could not be saved.
    #[error(transparent)]
    Credentials(#[from] CredentialsError),
    /// A worker thread died.
    #[error("enrollment worker failed: {0}")]
    Worker(String),
}

impl EnrollError {
    /// Whether trying again later may succeed without anyone changing anything (the collector
    /// was unreachable, busy or timed out), as opposed to a refusal or a local problem.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Channel(ChannelError::Connect { .. }) => true,
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

    /// The error for an answer of `call` whose `mismatch` part does not hold together.
    fn invalid_answer(call: Call, mismatch: Mismatch) -> Self {
        Self::InvalidResponse { call, field: mismatch.part.field(), reason: mismatch.reason }
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

/// Enrolls this agent with the collector of `config` (module docs, *Enrolling*) and saves its
/// credentials in `state`, replacing any earlier ones.
pub async fn enroll(config: &Config, state: &StateDir, identity: v1::HostIdentity) -> Result<Enrolled, EnrollError> {
    let url = channel::collector_url(config)?.to_string();
    let token_path = config.collector.enrollment_token_file.clone().ok_or(EnrollError::NotConfigured {
        key: "collector.enrollment_token_file",
        why: "the agent is not enrolled and needs an enrollment token",
    })?;
    let not_configured = EnrollError::NotConfigured {
        key: "collector.ca_file",
        why: "enrolling needs collector.ca_file or collector.ca_sha256 to trust the collector by",
    };
    let ca_path = config.collector.ca_file.clone();
    let pin = match (&ca_path, &config.collector.ca_sha256) {
        (Some(_), _) => None,
        (None, Some(text)) => Some(parse_ca_sha256(text).map_err(|e| EnrollError::BadPin { reason: e.to_string() })?),
        (None, None) => return Err(not_configured),
    };
    let token_file = token_path.clone();
    let (token, ca_file_pem) = blocking(move || {
        let token = token_file::read(&token_file)?;
        Ok((token, ca_path.map(|path| read_ca_file(&path)).transpose()?))
    })
    .await?;

    let (key, csr_pem) = key_and_csr(&identity.hostname)?;
    // The CA the collector was verified by: the configured file's, or the pinned one it sent.
    let (channel, verified_by) = match (ca_file_pem, pin) {
        (Some(pem), _) => (channel::connect(config, channel::trust_only(config, &pem)).await?, pem),
        (None, Some(pin)) => {
            let (channel, pinned) = ca_pin::connect(config, pin).await?;
            (channel, pinned.pem().unwrap_or_default())
        }
        (None, None) => return Err(not_configured),
    };
    let request =
        v1::EnrollRequest { token, csr_pem, identity: Some(identity), agent_version: crate::version().to_string() };
    let mut client = EnrollmentClient::new(channel);
    let response = within_timeout(Call::Enroll, client.enroll(request)).await?;

    let ca_pem = credentials::trusted_cas(&response.ca_pem, &verified_by);
    let key_pem = key.serialize_pem();
    let not_after = credentials::check(&response.agent_id, &response.certificate_pem, &key_pem, &response.ca_pem)
        .map_err(|m| EnrollError::invalid_answer(Call::Enroll, m))?;
    if not_after != response.not_after {
        tracing::warn!(agent_id = %response.agent_id, certificate = not_after, answer = response.not_after, "expiry in the answer differs from the certificate's; using the certificate's");
    }
    let enrolled =
        Enrolled { agent_id: response.agent_id, cert_pem: response.certificate_pem, key_pem, ca_pem, not_after };
    save_blocking(state, &enrolled).await?;
    blocking(move || {
        token_file::remove_used(&token_path);
        Ok(())
    })
    .await?;
    tracing::info!(agent_id = %enrolled.agent_id, url = %url, not_after = enrolled.not_after, "enrolled");
    Ok(enrolled)
}

/// Replaces the certificate of `enrolled` with one for a new key (module docs, *Renewing*),
/// saves it in `state` and returns the new credentials.
pub async fn renew(config: &Config, state: &StateDir, enrolled: &Enrolled) -> Result<Enrolled, EnrollError> {
    let (key, csr_pem) = key_and_csr(&enrolled.agent_id)?;
    let channel = channel::connect(config, channel::with_client_certificate(config, enrolled)).await?;
    let request = v1::RenewRequest { csr_pem };
    let mut client = InventoryClient::new(channel);
    let response = within_timeout(Call::Renew, client.renew(request)).await?;
    let key_pem = key.serialize_pem();
    let ca_pem = renewed_trust(config, &response.ca_pem, &enrolled.ca_pem);
    let not_after = credentials::check(&enrolled.agent_id, &response.certificate_pem, &key_pem, &ca_pem)
        .map_err(|m| EnrollError::invalid_answer(Call::Renew, m))?;
    let renewed = Enrolled { cert_pem: response.certificate_pem, key_pem, not_after, ca_pem, ..enrolled.clone() };
    save_blocking(state, &renewed).await?;
    tracing::info!(agent_id = %renewed.agent_id, not_after = renewed.not_after, "certificate renewed");
    Ok(renewed)
}

/// The CAs to trust after a renewal (module docs, *Renewing*): the collector's list when it
/// sent one, then those of the current ones the configuration names (`collector.ca_file`'s
/// certificates, the CA matching `collector.ca_sha256`); without a list, the current ones.
fn renewed_trust(config: &Config, answer: &str, current: &str) -> String {
    if answer.trim().is_empty() {
        return current.to_string();
    }
    let configured_file = config.collector.ca_file.as_deref().and_then(|p| credentials::read_small(p).ok());
    let pin = config.collector.ca_sha256.as_deref().and_then(|p| parse_ca_sha256(p).ok());
    let kept: Vec<pem::Pem> = pem::parse_many(current)
        .unwrap_or_default()
        .into_iter()
        .filter(|block| {
            let in_file = configured_file.as_deref().is_some_and(|file| {
                pem::parse_many(file).unwrap_or_default().iter().any(|f| f.contents() == block.contents())
            });
            in_file || (pin.is_some() && ca_pin::spki_sha256(block.contents()) == pin)
        })
        .collect();
    credentials::trusted_cas(answer, &pem::encode_many(&kept))
}

/// Whether `enrolled`'s certificate has less than a third of its lifetime left at `now` (or
/// cannot be read, which renewing repairs).
pub fn needs_renewal(enrolled: &Enrolled, now: SystemTime) -> bool {
    let Ok(cert) = CertFacts::from_pem(&enrolled.cert_pem) else { return true };
    let lifetime = cert.not_after.saturating_sub(cert.not_before);
    let left = cert.not_after.saturating_sub(unix_seconds(now));
    left.saturating_mul(3) < lifetime
}

fn unix_seconds(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map(|s| -s).unwrap_or(i64::MIN),
    }
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, EnrollError> + Send + 'static,
) -> Result<T, EnrollError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| EnrollError::Worker(e.to_string()))?
}

async fn save_blocking(state: &StateDir, enrolled: &Enrolled) -> Result<(), EnrollError> {
    let (state, enrolled) = (state.clone(), enrolled.clone());
    blocking(move || Ok(credentials::save(&state, &enrolled)?)).await
}

/// A new key pair and a PEM certificate signing request for it. The subject is `name` for
/// whoever reads the request; the collector ignores it.
fn key_and_csr(name: &str) -> Result<(KeyPair, String), EnrollError> {
    let key = KeyPair::generate().map_err(EnrollError::KeyGeneration)?;
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, if name.is_empty() { "aiscout-agent" } else { name });
    let csr = params.serialize_request(&key).and_then(|r| r.pem()).map_err(EnrollError::KeyGeneration)?;
    Ok((key, csr))
}

fn read_ca_file(path: &Path) -> Result<String, EnrollError> {
    let pem = credentials::read_small(path).map_err(|source| EnrollError::ReadInput {
        what: "collector ca",
        path: path.to_path_buf(),
        source,
    })?;
    CertFacts::all_from_pem(&pem).map_err(|reason| EnrollError::BadCaFile { path: path.to_path_buf(), reason })?;
    Ok(pem)
}

#[cfg(test)]
#[path = "tests/enroll.rs"]
mod tests;
