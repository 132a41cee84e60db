//! `aiscout-collector serve`: the gRPC listener (TLS, agents) and the HTTP API, until shutdown.

use std::future::Future;
use std::sync::Arc;

use aiscout_proto::v1::enrollment_server::EnrollmentServer;
use aiscout_proto::v1::inventory_server::InventoryServer;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

use crate::config::CollectorConfig;
use crate::grpc::{EnrollmentService, InventoryService, Services};
use crate::pki::{CertificateAuthority, DevPki};
use crate::rate::RateLimiter;
use crate::store::Store;

/// Largest message accepted from an agent (a batch), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// TLS material the server runs with.
#[derive(Debug)]
pub struct TlsMaterial {
    /// Signs agent certificates.
    pub ca: Arc<CertificateAuthority>,
    /// Server chain (PEM).
    pub server_cert_pem: String,
    /// Server key (PEM).
    pub server_key_pem: String,
    /// Where the CA certificate agents trust is (dev mode), to print.
    pub ca_path: Option<std::path::PathBuf>,
}

/// Loads or creates the TLS material the configuration names.
pub fn tls_material(config: &CollectorConfig) -> anyhow::Result<TlsMaterial> {
    if config.tls.dev {
        let pki = DevPki::load_or_create(&config.data_dir.join("pki"), &config.tls.names)?;
        if pki.created {
            tracing::info!(ca = %pki.ca_path.display(), "dev pki created");
        }
        return Ok(TlsMaterial {
            ca: Arc::new(pki.ca),
            server_cert_pem: pki.server_cert_pem,
            server_key_pem: pki.server_key_pem,
            ca_path: Some(pki.ca_path),
        });
    }
    let read = |key: &str, p: &Option<std::path::PathBuf>| -> anyhow::Result<String> {
        let p = p.as_ref().ok_or_else(|| anyhow::anyhow!("{key} is not set"))?;
        std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("{key} {}: {e}", p.display()))
    };
    let ca = CertificateAuthority::load(
        &read("tls.ca_cert_file", &config.tls.ca_cert_file)?,
        &read("tls.ca_key_file", &config.tls.ca_key_file)?,
    )?;
    Ok(TlsMaterial {
        ca: Arc::new(ca),
        server_cert_pem: read("tls.cert_file", &config.tls.cert_file)?,
        server_key_pem: read("tls.key_file", &config.tls.key_file)?,
        ca_path: None,
    })
}

/// Serves agents on `grpc` and the API on `api` until `shutdown` completes.
pub async fn run(
    config: &CollectorConfig,
    store: Arc<dyn Store>,
    tls: TlsMaterial,
    grpc: TcpListener,
    api: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let services = Arc::new(Services {
        store: Arc::clone(&store),
        ca: Arc::clone(&tls.ca),
        cert_lifetime: config.agents.cert_lifetime,
        rate: RateLimiter::new(config.agents.batches_per_minute, config.agents.bytes_per_minute),
    });
    let tls_config = ServerTlsConfig::new()
        .identity(Identity::from_pem(&tls.server_cert_pem, &tls.server_key_pem))
        .client_ca_root(Certificate::from_pem(tls.ca.cert_pem()))
        .client_auth_optional(true);
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<InventoryServer<InventoryService>>().await;
    let inventory = InventoryServer::new(InventoryService(Arc::clone(&services)))
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let enrollment = EnrollmentServer::new(EnrollmentService(services)).max_decoding_message_size(64 * 1024);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut stop_grpc = stop_rx.clone();
    let mut stop_api = stop_rx;
    let grpc_server = Server::builder()
        .tls_config(tls_config)?
        .add_service(health)
        .add_service(enrollment)
        .add_service(inventory)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(grpc), async move {
            let _ = stop_grpc.wait_for(|s| *s).await;
        });
    let api_server = axum::serve(api, crate::api::router(store)).with_graceful_shutdown(async move {
        let _ = stop_api.wait_for(|s| *s).await;
    });
    let (g, a) = tokio::join!(grpc_server, api_server);
    g?;
    a?;
    Ok(())
}
