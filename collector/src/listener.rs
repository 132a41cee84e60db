//! TLS listeners: TCP connections accepted in one loop, their handshakes run in tasks of their
//! own (so a slow or silent peer delays no one), the connections that complete a handshake
//! handed on in order of completion ([`TlsIncoming`]: a `Stream` for tonic, an axum
//! `Listener` for the API).
//!
//! A failed handshake (an untrusted or expired client certificate, a client that does not
//! trust the collector, plain HTTP on a TLS port) is what an operator must see, but a
//! misconfigured peer retries in a loop: it is logged at WARN once per listener and peer
//! address per minute ([`crate::rate::LogLimiter`]). A peer that connects and closes without a
//! byte (a port probe, a load balancer's check) is not a handshake: DEBUG. At most
//! [`MAX_HANDSHAKES`] handshakes run at once; beyond, new connections are closed at once.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::rate::LogLimiter;

/// Longest a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most handshakes in progress at once.
pub const MAX_HANDSHAKES: usize = 512;

/// Connections whose TLS handshake completed (module docs); dropping it stops accepting.
#[derive(Debug)]
pub struct TlsIncoming {
    /// Completed connections and their peers.
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    /// The address listened on.
    local_addr: SocketAddr,
    /// The accept loop.
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsIncoming {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsIncoming {
    /// Accepts on `listener` with `config`; `name` (`agents`, `api`) names the listener in logs.
    pub fn spawn(listener: TcpListener, config: Arc<ServerConfig>, name: &'static str) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let acceptor = TlsAcceptor::from(config);
        let log = Arc::new(LogLimiter::default());
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(listener = name, error = %e, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                    if log.first_in_window(&format!("{name} busy")) {
                        tracing::warn!(
                            listener = name,
                            limit = MAX_HANDSHAKES,
                            "too many tls handshakes at once; closing new connections"
                        );
                    }
                    continue;
                };
                let (acceptor, tx, log) = (acceptor.clone(), tx.clone(), Arc::clone(&log));
                tokio::spawn(async move {
                    let _slot = slot;
                    let _ = tcp.set_nodelay(true);
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => handshake_failed(&log, name, peer, &e),
                        Err(_) => handshake_failed(&log, name, peer, &std::io::Error::other("timed out")),
                    }
                });
            }
        });
        Ok(Self { ready, local_addr, task })
    }

    /// The address listened on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// Logs a failed handshake (module docs).
fn handshake_failed(log: &LogLimiter, name: &'static str, peer: SocketAddr, error: &std::io::Error) {
    if error.kind() == std::io::ErrorKind::UnexpectedEof {
        tracing::debug!(listener = name, peer = %peer, "connection closed before a tls handshake");
    } else if log.first_in_window(&format!("{name} {}", peer.ip())) {
        tracing::warn!(listener = name, peer = %peer.ip(), error = %error, "tls handshake failed");
    }
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = std::io::Result<TlsStream<TcpStream>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|next| next.map(|(tls, _)| Ok(tls)))
    }
}

impl axum::serve::Listener for TlsIncoming {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(next) => next,
            // The accept loop ended (it does not, but if it did): no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A writer into a shared buffer, for the log lines.
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

    fn server_config() -> (Arc<ServerConfig>, String) {
        use rustls::pki_types::pem::PemObject;
        let (ca, _) = crate::pki::CertificateAuthority::generate("test ca").unwrap();
        let (server, key) = ca.server_certificate(&["localhost".into()], Duration::from_secs(3600)).unwrap();
        let chain = rustls::pki_types::CertificateDer::pem_slice_iter(server.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = crate::keys::pkcs8_from_pem(&key, None).unwrap();
        let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, rustls::pki_types::PrivateKeyDer::Pkcs8(key))
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        (Arc::new(config), ca.cert_pem().to_string())
    }

    /// A TLS client trusting `ca_pem` (PEM) for `localhost`.
    async fn client(addr: SocketAddr, ca_pem: &str) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await?;
        connector.connect(rustls::pki_types::ServerName::try_from("localhost").unwrap(), tcp).await
    }

    #[tokio::test]
    async fn failed_handshakes_are_logged_once_per_peer_per_minute_and_good_ones_go_through() {
        let out = Arc::new(Mutex::new(Vec::new()));
        let writer = Arc::clone(&out);
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || WriteTo(Arc::clone(&writer)))
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let (config, ca_pem) = server_config();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut incoming = TlsIncoming::spawn(listener, config, "api").unwrap();
        let addr = incoming.local_addr();
        let (stranger, _) = crate::pki::CertificateAuthority::generate("stranger").unwrap();
        for _ in 0..3 {
            assert!(client(addr, stranger.cert_pem()).await.is_err(), "a client that does not trust the server");
        }
        // A port probe is no handshake.
        drop(TcpStream::connect(addr).await.unwrap());
        let good = tokio::spawn({
            let ca_pem = ca_pem.clone();
            async move { client(addr, &ca_pem).await.map(|_| ()) }
        });
        let (_tls, peer) = axum::serve::Listener::accept(&mut incoming).await;
        assert_eq!(peer.ip(), addr.ip());
        good.await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        let warnings: Vec<&str> = text.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{text}");
        assert!(warnings[0].contains("tls handshake failed listener=\"api\" peer=127.0.0.1"), "{text}");
    }
}
