//! `aiscout-collector serve`: the gRPC listener (TLS, agents) and the HTTP API (HTTPS when
//! `[api_tls]` is set), until shutdown. Both accept through [`crate::listener`], which runs
//! the handshakes and logs the failed ones.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use aiscout_proto::v1::enrollment_server::EnrollmentServer;
use aiscout_proto::v1::inventory_server::InventoryServer;
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;

use crate::config::CollectorConfig;
use crate::grpc::{EnrollmentService, InventoryService, Services};
use crate::listener::TlsIncoming;
use crate::rate::LogLimiter;
use crate::store::Store;
use crate::tls::TlsMaterial;

/// Largest message accepted from an agent (a batch), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;

/// What to warn about an API listening on `addr`: beyond loopback without TLS, bearer tokens
/// and the inventory cross the network in clear text.
pub fn api_exposure_warning(addr: SocketAddr, tls: bool) -> Option<String> {
    (!tls && !addr.ip().is_loopback()).then(|| {
        format!(
            "the http api listens on {addr}, beyond loopback, without tls: bearer tokens and the inventory cross \
             the network in clear text; set api_tls.cert_file and api_tls.key_file, or api_listen to a loopback \
             address behind a tls proxy"
        )
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
    let metrics = Arc::new(crate::metrics::Metrics::default());
    let services = Arc::new(Services {
        store: Arc::clone(&store),
        ca: Arc::clone(&tls.ca),
        ca_bundle: tls.ca_bundle.clone(),
        cert_lifetime: config.agents.cert_lifetime,
        rate: crate::store::RateBudget {
            messages_per_minute: config.agents.batches_per_minute,
            bytes_per_minute: config.agents.bytes_per_minute,
        },
        refusals: LogLimiter::default(),
        releases_dir: config.releases_dir(),
        rollout: config.releases.pause(),
        metrics: Arc::clone(&metrics),
    });
    let findings = crate::findings::Settings::load(config).map_err(|e| anyhow::anyhow!("findings: {e}"))?;
    let senders = config
        .siem
        .iter()
        .map(|t| crate::siem::Sender::new(t.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cmdb_targets = crate::cmdb::scheduled(&config.cmdb).map_err(|e| anyhow::anyhow!("{e}"))?;
    let agents = TlsIncoming::spawn(grpc, tls.agents_config()?, "agents")?;
    let api_tls = tls.api_config().transpose()?;
    if let Some(warning) = api_exposure_warning(api.local_addr()?, api_tls.is_some()) {
        tracing::warn!("{warning}");
    }
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
    tokio::spawn(crate::findings::run_periodically(
        Arc::clone(&store),
        findings,
        config.findings.interval,
        stop_rx.clone(),
    ));
    for sender in senders {
        tokio::spawn(crate::siem::run(Arc::clone(&store), sender, stop_rx.clone()));
    }
    for (target, interval) in cmdb_targets {
        tokio::spawn(crate::cmdb::run_periodically(Arc::clone(&store), target, interval, stop_rx.clone()));
    }
    let mut stop_grpc = stop_rx.clone();
    let mut stop_api = stop_rx;
    let grpc_server = Server::builder()
        .add_service(health)
        .add_service(enrollment)
        .add_service(inventory)
        .serve_with_incoming_shutdown(agents, async move {
            let _ = stop_grpc.wait_for(|s| *s).await;
        });
    let settings = crate::api::ApiSettings { silent_after: config.findings.silent_after };
    // The API and, under /ui/, the dashboard that is its client (crate::ui).
    let router = crate::ui::app(Arc::clone(&store), settings, api_tls.is_some())
        .merge(crate::api::any_token(&store, crate::metrics::router(metrics)));
    let api_stopped = async move {
        let _ = stop_api.wait_for(|s| *s).await;
    };
    let api_server = async move {
        match api_tls {
            Some(config) => {
                let https = TlsIncoming::spawn(api, config, "api")?;
                axum::serve(https, router).with_graceful_shutdown(api_stopped).await
            }
            None => axum::serve(api, router).with_graceful_shutdown(api_stopped).await,
        }
    };
    let (g, a) = tokio::join!(grpc_server, api_server);
    g?;
    a?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_beyond_loopback_without_tls_is_warned_about() {
        let addr = |text: &str| text.parse::<SocketAddr>().unwrap();
        assert!(api_exposure_warning(addr("0.0.0.0:7080"), false).unwrap().contains("without tls"));
        assert!(api_exposure_warning(addr("10.1.2.3:7080"), false).is_some());
        assert!(api_exposure_warning(addr("[::]:7080"), false).is_some());
        assert_eq!(api_exposure_warning(addr("0.0.0.0:7080"), true), None);
        assert_eq!(api_exposure_warning(addr("127.0.0.1:7080"), false), None);
        assert_eq!(api_exposure_warning(addr("[::1]:7080"), false), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_api_serves_https_when_api_tls_is_set() {
        use rustls::pki_types::pem::PemObject;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = crate::pki::CertificateAuthority::generate("api ca").unwrap();
        let (cert, key) = ca.server_certificate(&["localhost".into()], std::time::Duration::from_secs(3600)).unwrap();
        std::fs::write(dir.path().join("api.pem"), &cert.cert_pem).unwrap();
        std::fs::write(dir.path().join("api.key"), &key).unwrap();
        let text = format!(
            "data_dir = \"{0}/data\"\n[tls]\ndev = true\n[api_tls]\ncert_file = \"{0}/api.pem\"\nkey_file = \"{0}/api.key\"\n",
            dir.path().display()
        );
        let config = CollectorConfig::parse(&text, "t").unwrap();
        assert_eq!(config.validate(), vec![]);
        let tls = TlsMaterial::load(&config).unwrap();
        let store: Arc<dyn Store> = crate::store::tests::store().arc();
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_addr = api.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            run(&config, store, tls, grpc, api, async {
                let _ = stopped.await;
            })
            .await
        });

        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(api_addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let mut https = tokio_rustls::TlsConnector::from(Arc::new(client)).connect(name, tcp).await.unwrap();
        https.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut answer = String::new();
        https.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");

        // Plain HTTP gets no answer: the port speaks TLS only.
        let mut plain = tokio::net::TcpStream::connect(api_addr).await.unwrap();
        plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await.unwrap();
        let mut bytes = Vec::new();
        let _ = plain.read_to_end(&mut bytes).await;
        assert!(!String::from_utf8_lossy(&bytes).contains("200 OK"));

        let _ = stop.send(());
        server.await.unwrap().unwrap();
    }
}
