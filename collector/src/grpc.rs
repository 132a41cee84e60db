//! The gRPC services: `Enrollment` (no client certificate) and `Inventory` (client
//! certificate required), over one TLS listener that asks for, but does not demand, a client
//! certificate; each method decides. `Inventory` also serves the release channel to enrolled
//! agents (`GetReleaseMetadata`: the envelope as signed; `DownloadRelease`: an archive by its
//! digest, never by a path), which agents verify themselves (`aiscout_proto::release`).
//!
//! Authentication of `Inventory` calls, in order:
//! 1. the TLS layer verified the client certificate against the collector CA (rustls);
//! 2. the certificate's common name is the agent id; no certificate → `unauthenticated`;
//! 3. the agent must be enrolled, not revoked, and the certificate must be the one issued to it
//!    last (its serial): a certificate of another agent id, an older certificate after renewal,
//!    or any certificate after `agent revoke` → `permission_denied`, checked on every batch so
//!    a revocation cuts a live stream at its next batch;
//! 4. an agent superseded by a reinstall of its host that speaks again is not refused: its host
//!    was cloned, not reinstalled, so it is made live again, flagged as a clone with the agents
//!    sharing its fingerprint, and asked for a snapshot (docs/fleet.md);
//! 5. an agent whose certificate was signed by another CA than the current one (TLS accepted it
//!    as one of the previous CAs during a rotation) is asked to renew at the start of its
//!    stream; its renewal answer carries the current and previous CAs, which the agent trusts
//!    from then on (docs/collector.md, *Rotating the CA*).
//!
//! A refused agent (unknown, revoked, or presenting a superseded certificate) is logged at WARN
//! once per agent per minute; "agent connected" is INFO at an agent's first contact only.
//!
//! Domain errors become `tonic::Status` in [`status`] only, from their class in
//! [`crate::error_code`], which the HTTP API shares.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use aiscout_proto::v1::{
    self, agent_message, collector_message, enrollment_server::Enrollment, inventory_server::Inventory,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use sha2::{Digest, Sha256};

use crate::ingest::to_ingest;
use crate::pki::CertificateAuthority;
use crate::store::limits;
use crate::store::{
    AgentRegistration, ApplyOutcome, HostStatus, RateBudget, RateCharge, Store, StoreError, TokenError,
};
use crate::untrusted;
use crate::{blocking, now_ms};

/// What the services share.
#[derive(Debug)]
pub struct Services {
    /// The inventory store.
    pub store: Arc<dyn Store>,
    /// Signs agent certificates.
    pub ca: Arc<CertificateAuthority>,
    /// The CAs agents are told to trust when they renew (PEM): the current one and the
    /// previous ones still accepted (docs/collector.md, *Rotating the CA*).
    pub ca_bundle: String,
    /// Lifetime of agent certificates.
    pub cert_lifetime: Duration,
    /// The per-agent rate limit, counted in the store's windows (`crate::rate`).
    pub rate: RateBudget,
    /// One WARN line per refused agent per minute.
    pub refusals: crate::rate::LogLimiter,
    /// The published release channel (`crate::release`), served to authenticated agents.
    pub releases_dir: std::path::PathBuf,
    /// When a cohort's rollout is paused.
    pub rollout: crate::release::RolloutPause,
    /// What this collector counts (`crate::metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// The update state an agent reports with its check, checked and cut to the store's limits.
fn update_record(
    req: &v1::ReleaseMetadataRequest,
    cohort: &str,
    r: &v1::UpdateReport,
) -> Result<crate::store::UpdateRecord, Status> {
    const STATES: [&str; 6] = ["current", "staged", "switching", "updated", "rolled_back", "error"];
    if !STATES.contains(&r.state.as_str()) {
        return Err(Status::invalid_argument(format!("report.state: one of {}", STATES.join(", "))));
    }
    for (key, value) in [("agent_version", &req.agent_version), ("report.version", &r.version)] {
        if value.len() > limits::MAX_VERSION_BYTES
            || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b".-+".contains(&b))
        {
            return Err(Status::invalid_argument(format!(
                "{key}: at most {} letters, digits, '.', '-' or '+'",
                limits::MAX_VERSION_BYTES
            )));
        }
    }
    let mut detail = r.detail.clone();
    if detail.len() > limits::MAX_UPDATE_DETAIL_BYTES {
        let cut = (0..=limits::MAX_UPDATE_DETAIL_BYTES).rev().find(|&i| detail.is_char_boundary(i)).unwrap_or(0);
        detail.truncate(cut);
    }
    Ok(crate::store::UpdateRecord {
        channel: req.channel.clone(),
        cohort: cohort.to_string(),
        agent_version: req.agent_version.clone(),
        state: r.state.clone(),
        version: r.version.clone(),
        detail,
        reported_at_ms: now_ms(),
    })
}

/// A store error as a gRPC status: its class's code ([`crate::error_code`]) and its message.
pub fn status(e: &StoreError) -> Status {
    Status::new(e.code().grpc(), e.to_string())
}

/// A refused enrollment token as a gRPC status; a store failure keeps its own message.
fn token_status(e: &TokenError) -> Status {
    let message = match e {
        TokenError::Store(store) => store.to_string(),
        refused => format!("enrollment refused: {refused}"),
    };
    Status::new(e.code().grpc(), message)
}

/// A fresh agent id: 16 random bytes, hex.
fn new_agent_id() -> Result<String, Status> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Status::internal(format!("no randomness: {e}")))?;
    Ok(format!("agent-{}", hex::encode(bytes)))
}

/// The agent id and certificate serial of the peer's client certificate.
fn peer_agent<T>(request: &Request<T>) -> Result<(String, String), Status> {
    let certs = request.peer_certs().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let der = certs.first().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| Status::unauthenticated(format!("unreadable client certificate: {e}")))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .ok_or_else(|| Status::unauthenticated("client certificate without a common name"))?;
    Ok((cn.to_string(), hex::encode(cert.raw_serial())))
}

/// What is recorded of an agent's host with each certificate.
#[derive(Debug)]
struct HostRecord {
    /// The machine fingerprint the agent reported at enrollment.
    machine_fingerprint: String,
    /// Its host name.
    hostname: String,
    /// Its version.
    agent_version: String,
}

/// What [`Services::authorize`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
struct Authorized {
    /// The agent had been superseded by a reinstall and spoke again: it is a clone, live again,
    /// and owes a snapshot because its sightings were closed.
    resurfaced: bool,
    /// Its certificate was not signed by the current CA (a rotation, or before CAs were
    /// recorded): it is asked to renew.
    renew: bool,
    /// No batch of it was ever applied: its first contact since enrolling.
    first_contact: bool,
}

impl Services {
    /// Signs `csr_pem` for `agent_id`; returns the certificate and the registration that makes
    /// it the agent's current one (the caller stores it: renewal with `upsert_agent`,
    /// enrollment with `enroll_agent`).
    fn sign(
        &self,
        csr_pem: &str,
        agent_id: &str,
        host: HostRecord,
    ) -> Result<(crate::pki::Signed, AgentRegistration), Status> {
        let signed = self
            .ca
            .sign_agent(csr_pem, agent_id, self.cert_lifetime)
            .map_err(|e| Status::invalid_argument(e.to_string()))?;
        let registration = AgentRegistration {
            agent_id: agent_id.to_string(),
            cert_serial: signed.serial.clone(),
            cert_fingerprint: signed.serial.clone(),
            cert_not_after_ms: signed.not_after.saturating_mul(1000),
            cert_ca_sha256: self.ca.key_sha256().to_string(),
            machine_fingerprint: host.machine_fingerprint,
            hostname: host.hostname,
            agent_version: host.agent_version,
            now_ms: now_ms(),
        };
        Ok((signed, registration))
    }

    /// Checks that `agent_id` may speak with the certificate `serial` (module docs, rule 3),
    /// and, when `resurface`, makes it live again if a reinstall had superseded it (rule 4).
    /// Only inventory streams resurface: they can ask for the snapshot that restores the
    /// agent's closed sightings, which a renewal cannot.
    fn authorize(&self, agent_id: &str, serial: &str, resurface: bool) -> Result<Authorized, Status> {
        let agent = self.store.agent(agent_id).map_err(|e| status(&e))?;
        let agent = agent.ok_or_else(|| {
            self.refused(agent_id, "unknown");
            status(&StoreError::UnknownAgent { agent_id: agent_id.to_string() })
        })?;
        if agent.revoked_at_ms.is_some() {
            self.refused(agent_id, "revoked");
            return Err(status(&StoreError::AgentRevoked { agent_id: agent_id.to_string() }));
        }
        let canonical = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
        if canonical(&agent.cert_serial) != canonical(serial) {
            self.refused(agent_id, "superseded certificate");
            return Err(Status::permission_denied(format!(
                "certificate {serial} is not the current one of {agent_id}"
            )));
        }
        let renew = agent.cert_ca_sha256.as_deref() != Some(self.ca.key_sha256());
        let first_contact = agent.last_seen_ms.is_none();
        let resurfaced = match &agent.superseded_by {
            Some(by) if resurface => {
                let resurfaced = self.store.resurface_agent(agent_id, now_ms()).map_err(|e| status(&e))?;
                if resurfaced {
                    tracing::warn!(
                        agent_id = %agent_id,
                        superseded_by = %by,
                        machine_fingerprint = %untrusted::text(&agent.machine_fingerprint),
                        "superseded agent is alive: its host was cloned, not reinstalled; both flagged as clones"
                    );
                }
                resurfaced
            }
            _ => false,
        };
        Ok(Authorized { resurfaced, renew, first_contact })
    }

    /// The agent id and serial of `request`'s client certificate; a call without a usable one
    /// is refused and logged at WARN, once per peer address per minute.
    fn caller<T>(&self, request: &Request<T>) -> Result<(String, String), Status> {
        peer_agent(request).inspect_err(|e| {
            let peer = request.remote_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
            if self.refusals.first_in_window(&format!("peer {peer}")) {
                tracing::warn!(peer = %peer, reason = %e.message(), "inventory call refused");
            }
        })
    }

    /// Logs a refused agent at WARN, once per agent per minute (docs/collector.md, *Logs*).
    fn refused(&self, agent_id: &str, why: &'static str) {
        self.metrics.rejected("agent_refused");
        if self.refusals.first_in_window(agent_id) {
            tracing::warn!(agent_id = %agent_id, reason = why, "agent refused");
        }
    }
}

/// The `Enrollment` service.
#[derive(Debug, Clone)]
pub struct EnrollmentService(pub Arc<Services>);

#[tonic::async_trait]
impl Enrollment for EnrollmentService {
    async fn enroll(&self, request: Request<v1::EnrollRequest>) -> Result<Response<v1::EnrollResponse>, Status> {
        let req = request.into_inner();
        if req.token.is_empty() || req.token.len() > 256 {
            return Err(Status::invalid_argument("enrollment token missing or longer than 256 bytes"));
        }
        let services = Arc::clone(&self.0);
        let response = blocking(Status::internal, move || {
            let identity = req.identity.unwrap_or_default();
            check_identity(&identity, &req.agent_version)?;
            // A short install key (the empty one above all) hashes alike on many machines: it
            // proves nothing and is not kept.
            let install_key_sha256 = (identity.install_key.len() >= MIN_INSTALL_KEY_CHARS)
                .then(|| hex::encode(Sha256::digest(identity.install_key.as_bytes())));
            let agent_id = new_agent_id()?;
            let host = HostRecord {
                machine_fingerprint: identity.machine_fingerprint.clone(),
                hostname: identity.hostname.clone(),
                agent_version: req.agent_version.clone(),
            };
            // The request is checked and its CSR signed before the token is spent: a malformed
            // enrollment costs the token nothing.
            let (signed, registration) = services.sign(&req.csr_pem, &agent_id, host)?;
            let token = services.store.consume_enrollment_token(&req.token, now_ms()).map_err(|e| token_status(&e))?;
            let host_status =
                services.store.enroll_agent(&registration, install_key_sha256.as_deref()).map_err(|e| status(&e))?;
            log_enrolled(&agent_id, &token.token_id, &identity.hostname, &host_status);
            // The facts that identify the machine, for reconciliation; never the install key.
            let facts = serde_json::json!({
                "machine_id": identity.machine_id,
                "product_uuid": identity.product_uuid,
                "product_serial": identity.product_serial,
                "mac_addresses": identity.mac_addresses,
                "cloud_instance_id": identity.cloud_instance_id,
            });
            services.store.set_identity_facts(&agent_id, &facts.to_string()).map_err(|e| status(&e))?;
            // What the collector concluded about the host stays here (the wire's host_status is
            // retired): telling the client would tell it whether the fingerprint it claimed is known.
            Ok(v1::EnrollResponse {
                agent_id,
                certificate_pem: signed.cert_pem,
                ca_pem: services.ca.cert_pem().to_string(),
                not_after: signed.not_after,
            })
        })
        .await?;
        Ok(Response::new(response))
    }
}

/// Refuses an enrollment whose identity facts or version are over their bounds
/// (`store::limits`), before anything is spent or stored.
fn check_identity(identity: &v1::HostIdentity, agent_version: &str) -> Result<(), Status> {
    let fields = [
        ("identity.hostname", identity.hostname.len(), limits::MAX_HOSTNAME_BYTES),
        ("identity.machine_fingerprint", identity.machine_fingerprint.len(), limits::MAX_FINGERPRINT_BYTES),
        ("identity.machine_id", identity.machine_id.len(), limits::MAX_FINGERPRINT_BYTES),
        ("identity.product_uuid", identity.product_uuid.len(), limits::MAX_FINGERPRINT_BYTES),
        ("identity.product_serial", identity.product_serial.len(), limits::MAX_FINGERPRINT_BYTES),
        ("identity.cloud_instance_id", identity.cloud_instance_id.len(), limits::MAX_HOSTNAME_BYTES),
        ("identity.install_key", identity.install_key.len(), limits::MAX_FINGERPRINT_BYTES),
        ("agent_version", agent_version.len(), limits::MAX_VERSION_BYTES),
    ];
    for (field, len, max) in fields {
        if len > max {
            return Err(Status::invalid_argument(format!("{field}: {len} bytes, over the {max} allowed")));
        }
    }
    if identity.mac_addresses.len() > MAX_MAC_ADDRESSES || identity.mac_addresses.iter().any(|m| m.len() > 64) {
        return Err(Status::invalid_argument(format!(
            "identity.mac_addresses: more than {MAX_MAC_ADDRESSES} or one over 64 bytes"
        )));
    }
    Ok(())
}

/// Shortest install key kept as proof of an installation (agents send 64 hex digits).
const MIN_INSTALL_KEY_CHARS: usize = 32;

/// Most MAC addresses an enrollment may list.
const MAX_MAC_ADDRESSES: usize = 256;

/// Logs an enrollment in one line whose message, level and related agents come from the host
/// status (docs/fleet.md): a clone warns, since two machines now answer to one identity.
fn log_enrolled(agent_id: &str, token_id: &str, hostname: &str, host_status: &HostStatus) {
    let (message, superseded, clone_of) = match host_status {
        HostStatus::New => ("agent enrolled: new host", None, None),
        HostStatus::Reinstall { superseded } => (
            "agent enrolled: reinstall of a known installation; the earlier agents are superseded at its first complete snapshot",
            Some(superseded.join(",")),
            None,
        ),
        HostStatus::Clone { of } => (
            "agent enrolled: its machine fingerprint is shared with live agents; all are flagged as clones",
            None,
            Some(of.join(",")),
        ),
    };
    // A tracing level is fixed at each call site; the fields are written once here.
    macro_rules! enrolled {
        ($level:expr) => {
            tracing::event!(
                $level,
                agent_id = %agent_id,
                token = %token_id,
                hostname = %untrusted::text(hostname),
                superseded = superseded.as_deref().map(tracing::field::display),
                clone_of = clone_of.as_deref().map(tracing::field::display),
                "{message}"
            )
        };
    }
    match host_status {
        HostStatus::Clone { .. } => enrolled!(tracing::Level::WARN),
        HostStatus::New | HostStatus::Reinstall { .. } => enrolled!(tracing::Level::INFO),
    }
}

/// The `Inventory` service.
#[derive(Debug, Clone)]
pub struct InventoryService(pub Arc<Services>);

type CollectorStream = Pin<Box<dyn Stream<Item = Result<v1::CollectorMessage, Status>> + Send + 'static>>;
type ReleaseStream = Pin<Box<dyn Stream<Item = Result<v1::ReleaseChunk, Status>> + Send + 'static>>;

/// Size of one chunk of a release archive.
const RELEASE_CHUNK: usize = 256 * 1024;

/// The encoded size of an agent's message, for the byte budget.
fn message_bytes(msg: &v1::AgentMessage) -> u64 {
    u64::try_from(prost::Message::encoded_len(msg)).unwrap_or(u64::MAX)
}

fn message(m: collector_message::Message) -> v1::CollectorMessage {
    v1::CollectorMessage { message: Some(m) }
}

#[tonic::async_trait]
impl Inventory for InventoryService {
    type StreamStream = CollectorStream;
    type DownloadReleaseStream = ReleaseStream;

    async fn get_release_metadata(
        &self,
        request: Request<v1::ReleaseMetadataRequest>,
    ) -> Result<Response<v1::ReleaseMetadataResponse>, Status> {
        let (agent_id, serial) = self.0.caller(&request)?;
        let req = request.into_inner();
        let name_ok = aiscout_proto::release::is_valid_name;
        if !name_ok(&req.channel) {
            return Err(Status::invalid_argument("channel: 1 to 64 letters, digits, '-', '_' or '.'"));
        }
        // Agents before the rollout reports send no cohort: theirs is the default.
        let cohort = if req.cohort.is_empty() { "default".to_string() } else { req.cohort.clone() };
        if !name_ok(&cohort) {
            return Err(Status::invalid_argument("cohort: 1 to 64 letters, digits, '-', '_' or '.'"));
        }
        let record = req.report.as_ref().map(|r| update_record(&req, &cohort, r)).transpose()?;
        let services = Arc::clone(&self.0);
        let response = blocking(Status::internal, move || {
            let _ = services.authorize(&agent_id, &serial, false)?;
            if let Some(record) = &record {
                services.store.record_update(&agent_id, record).map_err(|e| status(&e))?;
                if record.state == "rolled_back" {
                    tracing::warn!(
                        agent_id = %agent_id,
                        version = %untrusted::text(&record.version),
                        cohort = %untrusted::text(&record.cohort),
                        detail = %untrusted::text(&record.detail),
                        "agent rolled back a release"
                    );
                }
            }
            let path = services.releases_dir.join(format!("{}.json", req.channel));
            let envelope = match std::fs::read(&path) {
                Ok(bytes) if bytes.len() <= aiscout_proto::release::MAX_ENVELOPE_BYTES => bytes,
                Ok(_) => return Err(Status::internal(format!("{} is larger than an envelope may be", path.display()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
                Err(e) => return Err(Status::internal(format!("cannot read {}: {e}", path.display()))),
            };
            if let Some(paused) =
                services.rollout.paused(&*services.store, &req.channel, &cohort, &envelope).map_err(|e| status(&e))?
            {
                return Ok(v1::ReleaseMetadataResponse { envelope: Vec::new(), paused });
            }
            Ok(v1::ReleaseMetadataResponse { envelope, paused: String::new() })
        })
        .await?;
        Ok(Response::new(response))
    }

    async fn download_release(
        &self,
        request: Request<v1::DownloadReleaseRequest>,
    ) -> Result<Response<ReleaseStream>, Status> {
        let (agent_id, serial) = self.0.caller(&request)?;
        let sha256 = request.into_inner().sha256;
        // A digest, never a path: 64 hex digits name a blob and nothing else.
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Status::invalid_argument("sha256: 64 hex digits"));
        }
        let services = Arc::clone(&self.0);
        let file = blocking(Status::internal, move || {
            let _ = services.authorize(&agent_id, &serial, false)?;
            let path = services.releases_dir.join("blobs").join(sha256.to_ascii_lowercase());
            if path.is_file() {
                services.store.record_download(&agent_id, &sha256, now_ms()).map_err(|e| status(&e))?;
            }
            std::fs::File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Status::not_found(format!("no published archive {sha256}")),
                _ => Status::internal(format!("cannot read {}: {e}", path.display())),
            })
        })
        .await?;
        let (tx, rx) = mpsc::channel(4);
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut file = file;
            loop {
                let mut data = vec![0u8; RELEASE_CHUNK];
                match file.read(&mut data) {
                    Ok(0) => break,
                    Ok(n) => {
                        data.truncate(n);
                        if tx.blocking_send(Ok(v1::ReleaseChunk { data })).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(Status::internal(format!("cannot read archive: {e}"))));
                        break;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    #[tracing::instrument(skip_all)]
    async fn stream(&self, request: Request<Streaming<v1::AgentMessage>>) -> Result<Response<CollectorStream>, Status> {
        let (agent_id, serial) = self.0.caller(&request)?;
        let services = Arc::clone(&self.0);
        let authorized = {
            let (services, agent_id, serial) = (Arc::clone(&services), agent_id.clone(), serial.clone());
            blocking(Status::internal, move || services.authorize(&agent_id, &serial, true)).await?
        };
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::channel::<Result<v1::CollectorMessage, Status>>(16);
        if authorized.resurfaced {
            let request =
                v1::SnapshotRequest { reason: "this agent was superseded by a reinstall and is live again".into() };
            let _ = tx.send(Ok(message(collector_message::Message::SnapshotRequest(request)))).await;
        }
        if authorized.renew {
            let request =
                v1::RenewCertificate { reason: "the certificate is not from the collector's current ca".into() };
            let _ = tx.send(Ok(message(collector_message::Message::RenewCertificate(request)))).await;
        }
        let first_contact = authorized.first_contact;
        tokio::spawn(async move {
            let _open = crate::metrics::StreamGuard::open(&services.metrics);
            let mut hello_seen = false;
            while let Some(next) = incoming.next().await {
                let msg = match next {
                    Ok(m) => m,
                    Err(e) => {
                        // The stream ends with a status the agent can read, never with OK: a
                        // message over the size limit is refused as RESOURCE_EXHAUSTED.
                        let refusal = match e.code() {
                            tonic::Code::OutOfRange => {
                                services.metrics.rejected("oversized");
                                Status::resource_exhausted(e.message().to_owned())
                            }
                            _ => e,
                        };
                        tracing::debug!(agent_id = %agent_id, error = %refusal, "stream ended");
                        let _ = tx.send(Err(refusal)).await;
                        break;
                    }
                };
                // Every message counts against the agent's rate limit: its bytes always, and as a
                // message unless it is the stream's first Hello. Nothing beyond the limit is
                // applied: the answer ends the stream, and the agent resends from its first
                // unacknowledged batch. The windows are in the store, shared by every replica;
                // the count and the work run in one blocking call.
                let first_hello = matches!(msg.message, Some(agent_message::Message::Hello(_))) && !hello_seen;
                hello_seen |= first_hello;
                let charge =
                    RateCharge { messages: u32::from(!first_hello), bytes: message_bytes(&msg), now_ms: now_ms() };
                let reply = match msg.message {
                    Some(agent_message::Message::Batch(batch)) => {
                        apply(&services, &agent_id, &serial, batch, charge).await
                    }
                    // A Hello is the heartbeat: a quiet host that connects is alive (findings,
                    // silent-host). A message without a body is only counted.
                    other => match admit(&services, &agent_id, charge, other.is_some()).await {
                        Ok(None) => {
                            if let Some(agent_message::Message::Hello(hello)) = other {
                                // Once a fleet is up, reconnections are routine: only a first
                                // contact is news. A new agent's first batch is a snapshot
                                // already; a collector that lost state sees a sequence gap and
                                // asks for one then.
                                let version = untrusted::text(&hello.agent_version);
                                if first_contact {
                                    tracing::info!(agent_id = %agent_id, version = %version, "agent connected");
                                } else {
                                    tracing::debug!(agent_id = %agent_id, version = %version, "agent connected");
                                }
                            }
                            Vec::new()
                        }
                        Ok(Some(wait_ms)) => vec![retry_after(&services, &agent_id, wait_ms)],
                        Err(e) => vec![Err(e)],
                    },
                };
                let stop = reply.iter().any(|r| {
                    matches!(
                        r,
                        Err(_)
                            | Ok(v1::CollectorMessage { message: Some(collector_message::Message::RetryAfterMs(_)) })
                    )
                });
                for r in reply {
                    if tx.send(r).await.is_err() {
                        return;
                    }
                }
                if stop {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn renew(&self, request: Request<v1::RenewRequest>) -> Result<Response<v1::RenewResponse>, Status> {
        let (agent_id, serial) = self.0.caller(&request)?;
        let req = request.into_inner();
        let services = Arc::clone(&self.0);
        let response = blocking(Status::internal, move || {
            let _ = services.authorize(&agent_id, &serial, false)?;
            let agent = services.store.agent(&agent_id).map_err(|e| status(&e))?;
            let agent = agent.ok_or_else(|| status(&StoreError::UnknownAgent { agent_id: agent_id.clone() }))?;
            let host = HostRecord {
                machine_fingerprint: agent.machine_fingerprint,
                hostname: agent.hostname,
                agent_version: agent.agent_version,
            };
            let (signed, registration) = services.sign(&req.csr_pem, &agent_id, host)?;
            services.store.upsert_agent(&registration).map_err(|e| status(&e))?;
            tracing::info!(agent_id = %agent_id, "certificate renewed");
            Ok(v1::RenewResponse {
                certificate_pem: signed.cert_pem,
                not_after: signed.not_after,
                ca_pem: services.ca_bundle.clone(),
            })
        })
        .await?;
        Ok(Response::new(response))
    }
}

/// The answer to a message over the agent's rate limit: wait the rest of its window. It ends
/// the stream.
fn retry_after(services: &Services, agent_id: &str, wait_ms: i64) -> Result<v1::CollectorMessage, Status> {
    services.metrics.rejected("rate_limit");
    tracing::warn!(agent_id = %agent_id, retry_after_ms = wait_ms, "rate limit: stream ended");
    Ok(message(collector_message::Message::RetryAfterMs(u64::try_from(wait_ms).unwrap_or(0))))
}

/// Counts a message that is not a batch against the agent's rate limit and, when it fits and
/// `heartbeat`, records that the agent was heard from; over the limit, the wait.
async fn admit(
    services: &Arc<Services>,
    agent_id: &str,
    charge: RateCharge,
    heartbeat: bool,
) -> Result<Option<i64>, Status> {
    let (services, id) = (Arc::clone(services), agent_id.to_owned());
    blocking(Status::internal, move || {
        let wait = services.store.admit_message(&id, &charge, &services.rate).map_err(|e| {
            services.metrics.store_failed(&e);
            status(&e)
        })?;
        if wait.is_none() && heartbeat {
            if let Err(e) = services.store.touch_agent(&id, now_ms()) {
                tracing::warn!(agent_id = %id, error = %e, "cannot record the heartbeat");
            }
        }
        Ok(wait)
    })
    .await
}

/// What a batch came to.
enum Applied {
    /// Over the agent's rate limit: not applied; wait this many milliseconds; and whether the
    /// agent resurfaced (authorization comes first).
    OverLimit(i64, bool),
    /// Applied (or already applied, or after a gap), and whether the agent resurfaced.
    Stored(ApplyOutcome, bool),
}

/// Why a resurfaced agent is asked for a snapshot.
const RESURFACED: &str = "this agent was superseded by a reinstall and is live again";

/// Counts one batch against the agent's rate limit and applies it, and says what to answer:
/// an ack, plus a snapshot request after a gap; or the wait, when it is over the limit.
async fn apply(
    services: &Arc<Services>,
    agent_id: &str,
    serial: &str,
    batch: v1::Batch,
    charge: RateCharge,
) -> Vec<Result<v1::CollectorMessage, Status>> {
    let sequence = batch.sequence;
    // A gap right before a snapshot's first part is repaired by that snapshot.
    let opens_snapshot = batch.snapshot && batch.first_part;
    let started = std::time::Instant::now();
    let (shared, id, serial) = (Arc::clone(services), agent_id.to_string(), serial.to_string());
    let outcome = blocking(Status::internal, move || {
        let (services, agent_id) = (shared, id);
        let authorized = services.authorize(&agent_id, &serial, true)?;
        let (ingest, dropped) = to_ingest(batch, now_ms());
        // Counted against the rate limit and applied in one call (one transaction on SQLite).
        let outcome = services.store.admit_and_apply(&agent_id, &charge, &services.rate, &ingest).map_err(|e| {
            services.metrics.batch_failed(&e);
            status(&e)
        })?;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(wait) => return Ok(Applied::OverLimit(wait, authorized.resurfaced)),
        };
        if dropped > 0 {
            tracing::warn!(agent_id = %agent_id, sequence, dropped, "entries of unknown kind dropped");
        }
        services.metrics.batch_applied(&outcome);
        Ok(Applied::Stored(outcome, authorized.resurfaced))
    })
    .await;
    services.metrics.batch_duration.observe(started.elapsed().as_secs_f64());
    let ack = || Ok(message(collector_message::Message::Ack(v1::Ack { sequence })));
    let snapshot =
        |reason: String| Ok(message(collector_message::Message::SnapshotRequest(v1::SnapshotRequest { reason })));
    match outcome {
        // A resurfaced agent is asked for its snapshot even when this batch waits: the store
        // no longer marks it superseded, so no later call would ask.
        Ok(Applied::OverLimit(wait, true)) => vec![snapshot(RESURFACED.into()), retry_after(services, agent_id, wait)],
        Ok(Applied::OverLimit(wait, false)) => vec![retry_after(services, agent_id, wait)],
        Ok(Applied::Stored(ApplyOutcome::Gap { expected, .. }, _)) if !opens_snapshot => {
            vec![ack(), snapshot(format!("sequence gap: expected {expected}, got {sequence}"))]
        }
        Ok(Applied::Stored(_, true)) => {
            vec![ack(), snapshot(RESURFACED.into())]
        }
        Ok(Applied::Stored(
            ApplyOutcome::Applied(_) | ApplyOutcome::AlreadyApplied { .. } | ApplyOutcome::Gap { .. },
            false,
        )) => vec![ack()],
        Err(e) => vec![Err(e)],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// What [`log_enrolled`] writes for `status`, as the collector's log shows it.
    fn enrolled_line(status: &HostStatus) -> String {
        logged(|| log_enrolled("agent-b", "tok-1", "host-b", status))
    }

    /// What `log` writes, as the collector's log shows it.
    fn logged(log: impl FnOnce()) -> String {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&out);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || WriteTo(Arc::clone(&writer)))
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        text.trim_end().to_string()
    }

    /// A writer into a shared buffer.
    struct WriteTo(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for WriteTo {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn an_enrollment_is_one_line_whose_message_level_and_agents_follow_the_host_status() {
        assert_eq!(
            enrolled_line(&HostStatus::New),
            " INFO agent enrolled: new host agent_id=agent-b token=tok-1 hostname=host-b"
        );
        assert_eq!(
            enrolled_line(&HostStatus::Reinstall { superseded: vec!["agent-a".into(), "agent-z".into()] }),
            " INFO agent enrolled: reinstall of a known installation; the earlier agents are superseded at its \
             first complete snapshot agent_id=agent-b token=tok-1 hostname=host-b superseded=agent-a,agent-z"
        );
        assert_eq!(
            enrolled_line(&HostStatus::Clone { of: vec!["agent-a".into()] }),
            " WARN agent enrolled: its machine fingerprint is shared with live agents; all are flagged as clones \
             agent_id=agent-b token=tok-1 hostname=host-b clone_of=agent-a"
        );
    }

    #[test]
    fn an_agent_supplied_hostname_cannot_forge_a_log_line() {
        let line = logged(|| {
            log_enrolled("agent-b", "tok-1", "host-b\n WARN agent revoked agent_id=agent-a\x1b[2J", &HostStatus::New)
        });
        assert_eq!(line.lines().count(), 1, "{line}");
        assert!(!line.contains('\x1b'), "{line:?}");
        assert!(line.contains(r"hostname=host-b\u{a} WARN agent revoked agent_id=agent-a\u{1b}[2J"), "{line}");
    }

    #[tokio::test]
    async fn a_malformed_enrollment_does_not_spend_the_token() {
        use crate::store::{NewEnrollmentToken, SqliteStore};
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let (ca, _) = CertificateAuthority::generate("test ca").unwrap();
        let service = EnrollmentService(Arc::new(Services {
            store: Arc::clone(&store),
            ca: Arc::new(ca),
            ca_bundle: String::new(),
            cert_lifetime: Duration::from_secs(3600),
            rate: RateBudget { messages_per_minute: 10, bytes_per_minute: u64::MAX },
            refusals: crate::rate::LogLimiter::default(),
            releases_dir: std::path::PathBuf::from("/nonexistent"),
            rollout: crate::release::RolloutPause::default(),
            metrics: Arc::default(),
        }));
        let new = NewEnrollmentToken { uses: 1, expires_at_ms: i64::MAX, label: "t".into(), now_ms: 0 };
        let token = store.create_enrollment_token(&new).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::default().serialize_request(&key).unwrap().pem().unwrap();
        let request = |csr_pem: &str, hostname: &str| {
            Request::new(v1::EnrollRequest {
                token: token.secret.expose().to_owned(),
                csr_pem: csr_pem.to_owned(),
                identity: Some(v1::HostIdentity { hostname: hostname.to_owned(), ..Default::default() }),
                agent_version: "test".into(),
            })
        };
        let bad_csr = service.enroll(request("not a csr", "host-1")).await.unwrap_err();
        assert_eq!(bad_csr.code(), tonic::Code::InvalidArgument, "{bad_csr:?}");
        let huge = service.enroll(request(&csr, &"h".repeat(4 << 20))).await.unwrap_err();
        assert_eq!(huge.code(), tonic::Code::InvalidArgument, "{huge:?}");
        assert!(huge.message().starts_with("identity.hostname: 4194304 bytes"), "{huge:?}");
        // The one use is still there for a well-formed request, and is then spent.
        let enrolled = service.enroll(request(&csr, "host-1")).await.unwrap().into_inner();
        assert!(enrolled.agent_id.starts_with("agent-"));
        let spent = service.enroll(request(&csr, "host-1")).await.unwrap_err();
        assert_eq!(spent.code(), tonic::Code::PermissionDenied, "{spent:?}");
    }

    /// Services over an in-memory store whose agent `a` holds certificate `serial-a` of `ca`.
    fn services_with_agent(ca_sha256: &str) -> Services {
        services_on(Arc::new(crate::store::SqliteStore::open_in_memory().unwrap()), ca_sha256)
    }

    /// Services on `store` with agent `a` enrolled (certificate `serial-a`, CA `ca_sha256`, the
    /// services' own when empty), at 10 messages a minute.
    fn services_on(store: Arc<crate::store::SqliteStore>, ca_sha256: &str) -> Services {
        let (ca, _) = CertificateAuthority::generate("test ca").unwrap();
        store
            .upsert_agent(&AgentRegistration {
                agent_id: "a".into(),
                cert_serial: "serial-a".into(),
                cert_fingerprint: "f".into(),
                cert_not_after_ms: now_ms() + 3_600_000,
                cert_ca_sha256: if ca_sha256.is_empty() { ca.key_sha256().to_string() } else { ca_sha256.into() },
                machine_fingerprint: "m".into(),
                hostname: "h".into(),
                agent_version: "0.1.0".into(),
                now_ms: now_ms(),
            })
            .unwrap();
        Services {
            store,
            ca: Arc::new(ca),
            ca_bundle: String::new(),
            cert_lifetime: Duration::from_secs(3600),
            rate: RateBudget { messages_per_minute: 10, bytes_per_minute: u64::MAX },
            refusals: crate::rate::LogLimiter::default(),
            releases_dir: std::path::PathBuf::from("/nonexistent"),
            rollout: crate::release::RolloutPause::default(),
            metrics: Arc::default(),
        }
    }

    #[tokio::test]
    async fn a_superseded_agent_over_its_rate_limit_is_still_asked_for_its_snapshot() {
        let store = Arc::new(crate::store::SqliteStore::open_in_memory().unwrap());
        let services = Arc::new(services_on(Arc::clone(&store), ""));
        store.with_connection(|c| {
            c.execute("UPDATE agents SET superseded_by = 'b', superseded_at_ms = 1 WHERE agent_id = 'a'", []).unwrap();
        });
        let charge = RateCharge { messages: 1, bytes: 10, now_ms: now_ms() };
        for _ in 0..10 {
            assert_eq!(services.store.admit_message("a", &charge, &services.rate).unwrap(), None);
        }
        let answers =
            apply(&services, "a", "serial-a", v1::Batch { sequence: 1, ..v1::Batch::default() }, charge).await;
        let kinds: Vec<_> = answers
            .into_iter()
            .map(|a| match a.unwrap().message {
                Some(collector_message::Message::SnapshotRequest(_)) => "snapshot",
                Some(collector_message::Message::RetryAfterMs(_)) => "retry_after",
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(kinds, ["snapshot", "retry_after"], "the resurfacing is not lost to the rate limit");
        assert_eq!(services.store.agent("a").unwrap().unwrap().superseded_by, None);
    }

    #[test]
    fn refused_agents_are_warned_about_once_per_agent_per_minute() {
        let services = services_with_agent("");
        let text = logged(|| {
            for _ in 0..3 {
                assert!(services.authorize("a", "serial-old", false).is_err());
                assert!(services.authorize("nobody", "serial-x", false).is_err());
            }
            services.store.revoke_agent("a", now_ms()).unwrap();
            assert!(services.authorize("a", "serial-a", false).is_err(), "revoked");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                " WARN agent refused agent_id=a reason=\"superseded certificate\"",
                " WARN agent refused agent_id=nobody reason=\"unknown\"",
            ],
            "the revocation of `a` falls in the minute already logged for it"
        );
    }

    #[test]
    fn a_call_without_a_client_certificate_is_warned_about_once_per_peer_per_minute() {
        let services = services_with_agent("");
        let text = logged(|| {
            for _ in 0..3 {
                let refused = services.caller(&Request::new(())).unwrap_err();
                assert_eq!(refused.code(), tonic::Code::Unauthenticated);
            }
        });
        assert_eq!(
            text.trim_end(),
            " WARN inventory call refused peer=unknown reason=a client certificate is required"
        );
    }

    #[test]
    fn an_agent_of_another_ca_is_asked_to_renew_and_a_first_contact_is_told_apart() {
        let current = services_with_agent("");
        let seen = current.authorize("a", "serial-a", false).unwrap();
        assert_eq!((seen.renew, seen.first_contact, seen.resurfaced), (false, true, false));
        let rotated = services_with_agent("digest-of-the-previous-ca");
        assert!(rotated.authorize("a", "serial-a", false).unwrap().renew);
    }
}
