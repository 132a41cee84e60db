//! What the fleet modules' unit tests share: a throwaway CA, credentials signed by it, a fake
//! collector on loopback, and hand-built scan reports.

use std::collections::BTreeMap;
use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aiscout_proto::v1::enrollment_server::{Enrollment, EnrollmentServer};
use aiscout_proto::v1::inventory_server::{Inventory, InventoryServer};
use aiscout_proto::v1::{self, AssetKind};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};

use super::credentials::{CertFacts, Enrolled};
use crate::config::{CollectorConfig, Config};
use crate::report::host::HostInfo;
use crate::report::inventory::{
    Ecosystem, EnvironmentKind, EnvironmentRef, Exposure, FrameworkEntry, Listener, RuntimeEntry, ToolingDetail,
    ToolingEntry,
};
use crate::report::{ScanReport, Section};
use crate::scan::{run_scan, Progress, ScanOptions};

pub(crate) const DAY: u64 = 24 * 3600;

pub(crate) fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A throwaway certificate authority.
pub(crate) struct TestCa {
    pub(crate) cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub(crate) fn new(name: &str) -> Self {
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
    pub(crate) fn sign(&self, key: &impl PublicKeyData, cn: &str, not_before: u64, lifetime: Duration) -> String {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(not_before);
        params.not_after = params.not_before + lifetime;
        params.signed_by(key, &self.issuer).unwrap().pem()
    }

    /// What a collector does with a CSR: a one-hour certificate naming `cn`.
    pub(crate) fn sign_csr(&self, csr_pem: &str, cn: &str) -> Result<String, Status> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| Status::invalid_argument(format!("bad csr: {e}")))?;
        Ok(self.sign(&csr.public_key, cn, now_unix() - 300, Duration::from_secs(3600)))
    }

    /// A server certificate for `localhost` followed by `chain` (PEM), and its key.
    pub(crate) fn server_identity_with_chain(&self, chain: &str) -> Identity {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Identity::from_pem(format!("{}{chain}", cert.pem()), key.serialize_pem())
    }

    /// A server certificate for `localhost` with this CA after it (as the collector sends its
    /// chain), and its key.
    pub(crate) fn server_identity(&self) -> Identity {
        self.server_identity_with_chain(&self.cert_pem)
    }
}

/// A state whose parts hold together, signed by `ca`.
pub(crate) fn enrolled_by(ca: &TestCa, agent_id: &str, not_before: u64, lifetime: Duration) -> Enrolled {
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

pub(crate) fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o777
}

// ---- a fake collector ---------------------------------------------------------------

// ---- against an in-process collector ------------------------------------------------

/// What the fake collector does with an enrollment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// Signs the CSR with the agent id.
    Honest,
    /// Returns a certificate for another key.
    WrongKey,
    /// Returns an agent id that is not one.
    BadAgentId,
}

/// A minimal collector: one token, one agent id, its CA signs what it is asked.
#[derive(Clone)]
pub(crate) struct FakeCollector {
    pub(crate) ca: Arc<TestCa>,
    pub(crate) token: &'static str,
    pub(crate) behaviour: Behaviour,
    /// Identities received by `Enroll`.
    pub(crate) enrolled: Arc<Mutex<Vec<v1::HostIdentity>>>,
    /// Common names of the client certificates that called `Renew`.
    pub(crate) renewed: Arc<Mutex<Vec<String>>>,
}

pub(crate) const AGENT_ID: &str = "agent-0123abcd";

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
        }))
    }
}

#[tonic::async_trait]
impl Inventory for FakeCollector {
    type StreamStream = tonic::codegen::BoxStream<v1::CollectorMessage>;
    type DownloadReleaseStream = tonic::codegen::BoxStream<v1::ReleaseChunk>;

    async fn get_release_metadata(
        &self,
        _request: Request<v1::ReleaseMetadataRequest>,
    ) -> Result<Response<v1::ReleaseMetadataResponse>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn download_release(
        &self,
        _request: Request<v1::DownloadReleaseRequest>,
    ) -> Result<Response<Self::DownloadReleaseStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn stream(
        &self,
        _request: Request<tonic::Streaming<v1::AgentMessage>>,
    ) -> Result<Response<Self::StreamStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn renew(&self, request: Request<v1::RenewRequest>) -> Result<Response<v1::RenewResponse>, Status> {
        let certs = request.peer_certs().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let der = certs.first().ok_or_else(|| Status::unauthenticated("a client certificate is required"))?;
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        let cn = cert.subject().iter_common_name().next().unwrap().as_str().unwrap().to_string();
        self.renewed.lock().unwrap().push(cn.clone());
        let certificate_pem = self.ca.sign_csr(&request.get_ref().csr_pem, &cn)?;
        Ok(Response::new(v1::RenewResponse { certificate_pem, not_after: 0, ca_pem: String::new() }))
    }
}

/// A running fake collector on 127.0.0.1; dropping it stops the server.
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) collector: FakeCollector,
    _stop: tokio::sync::oneshot::Sender<()>,
}

pub(crate) async fn start(behaviour: Behaviour) -> Running {
    let ca = TestCa::new("fake collector ca");
    let identity = ca.server_identity();
    start_with(behaviour, ca, identity).await
}

/// A fake collector whose CA is `ca` and whose TLS identity is `identity`.
pub(crate) async fn start_with(behaviour: Behaviour, ca: TestCa, identity: Identity) -> Running {
    let collector = FakeCollector {
        ca: Arc::new(ca),
        token: "tok-1",
        behaviour,
        enrolled: Arc::default(),
        renewed: Arc::default(),
    };
    let tls = ServerTlsConfig::new()
        .identity(identity)
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
pub(crate) fn agent_config(dir: &Path, server: &Running, token: &str, ca_pem: Option<&str>) -> Config {
    let (token_file, ca_file) = (dir.join("token"), dir.join("collector-ca.pem"));
    fs::write(&token_file, format!("  {token}\n")).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    fs::write(&ca_file, ca_pem.unwrap_or(&server.collector.ca.cert_pem)).unwrap();
    Config {
        state_dir: dir.join("state"),
        collector: CollectorConfig {
            url: Some(format!("https://127.0.0.1:{}", server.addr.port())),
            ca_file: Some(ca_file),
            ca_sha256: None,
            enrollment_token_file: Some(token_file),
            server_name: Some("localhost".into()),
            failover_urls: Vec::new(),
        },
        ..Config::default()
    }
}

pub(crate) fn identity() -> v1::HostIdentity {
    v1::HostIdentity { hostname: "host-1".into(), machine_fingerprint: "f".repeat(64), ..Default::default() }
}

// ---- scan reports ----------------------------------------------------------------------

/// The committed model fixtures.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/models")
}

/// A models-only scan of `root`, with the hash cache in `state_dir` when given.
pub(crate) fn scan_models(root: &Path, state_dir: Option<&Path>) -> ScanReport {
    let opts = ScanOptions {
        roots: vec![root.to_path_buf()],
        state_dir: state_dir.map(Path::to_path_buf),
        only: vec![Section::Models],
        threads: 2,
        ..Default::default()
    };
    run_scan(&opts, &Progress::default()).expect("scan of the fixtures")
}

pub(crate) fn host() -> HostInfo {
    HostInfo {
        hostname: "h1".into(),
        os: "Debian GNU/Linux 12".into(),
        kernel: "6.1.0".into(),
        arch: "x86_64".into(),
        agent_version: "0.1.0".into(),
        scanned_at: "2025-01-02T03:04:05Z".into(),
        ip_addresses: vec!["10.0.0.5".into()],
    }
}

pub(crate) fn framework(ecosystem: Ecosystem, name: &str, version: Option<&str>, env: &str) -> FrameworkEntry {
    FrameworkEntry {
        ecosystem,
        name: name.into(),
        version: version.map(Into::into),
        environment: EnvironmentRef { path: env.into(), kind: EnvironmentKind::Venv },
        category: Some("core".into()),
        gpu_build: false,
        path: None,
    }
}

pub(crate) fn runtime(pid: u32, kind: &str, ports: &[u16]) -> RuntimeEntry {
    RuntimeEntry {
        pid,
        ppid: Some(1),
        kind: kind.into(),
        exe: Some(format!("/usr/bin/{kind}")),
        cmdline: vec![kind.into(), "serve".into()],
        user: Some("svc".into()),
        uid: Some(998),
        started_at: Some(format!("2025-01-02T03:04:{:02}Z", pid % 60)),
        ml_libraries: vec!["cuda".into()],
        open_models: Vec::new(),
        listening: ports
            .iter()
            .map(|&port| Listener { address: "0.0.0.0".into(), port, exposure: Exposure::AllInterfaces })
            .collect(),
        gpu_memory_bytes: None,
        container: None,
        auth: None,
        environment: BTreeMap::new(),
        identity: None,
        unreadable: Vec::new(),
        findings: Vec::new(),
    }
}

pub(crate) fn api_key(path: &str, variable: &str, found_in: &str, pid: Option<u32>) -> ToolingEntry {
    ToolingEntry {
        path: path.into(),
        detail: ToolingDetail::ApiKey {
            variable: variable.into(),
            provider: Some("openai".into()),
            found_in: found_in.into(),
            pid,
        },
    }
}

/// A report with one entry of every hand-built kind (no models).
pub(crate) fn inventory_report() -> ScanReport {
    let mut report = ScanReport::new(host());
    let mut native = framework(Ecosystem::Native, "ollama", Some("0.5.1"), "/usr/bin");
    native.path = Some("/usr/bin/ollama".into());
    report.frameworks = Some(vec![framework(Ecosystem::Pypi, "torch", Some("2.5.1"), "/opt/venv"), native]);
    report.runtimes = Some(vec![runtime(4242, "ollama", &[11435, 11434]), runtime(77, "vllm", &[])]);
    report.tooling = Some(vec![
        api_key("/home/a/.env", "OPENAI_API_KEY", "dotenv", None),
        api_key("/proc/99/environ", "OPENAI_API_KEY", "process_environment", Some(99)),
        ToolingEntry {
            path: "/home/a/.cursor/mcp.json".into(),
            detail: ToolingDetail::McpConfig { client: "cursor".into(), servers: Vec::new() },
        },
    ]);
    report.environments = Some(Vec::new());
    report.restricted_processes = Some(Vec::new());
    report
}

/// An asset of `kind` at `key` whose JSON pads to about `json_len` bytes.
pub(crate) fn asset(kind: AssetKind, key: &str, json_len: usize) -> v1::Asset {
    let json = serde_json::json!({ "path": key, "pad": "x".repeat(json_len) }).to_string();
    v1::Asset { kind: kind.into(), local_key: key.into(), json }
}
