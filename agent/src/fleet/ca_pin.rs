//! Trusting the collector by a pinned CA digest (`collector.ca_sha256`) when no CA file is
//! configured: the agent's first TLS connection, the enrollment, is verified against the CA
//! whose digest the operator pinned, as `kubeadm join --discovery-token-ca-cert-hash` does.
//!
//! # The pin
//! `sha256:<64 hex>`: the SHA-256 of the CA certificate's DER `SubjectPublicKeyInfo`, the
//! kubeadm convention. It names the CA's key, not one certificate of it, so re-issuing the CA
//! certificate for the same key keeps the pin. The collector prints it at start; by hand:
//! `openssl x509 -in ca.pem -pubkey -noout | openssl pkey -pubin -outform der | sha256sum`.
//!
//! # Why a verifier, not a fetch
//! Two designs verify a pin: fetch the CA over an unauthenticated call, check its digest, then
//! reconnect trusting it; or verify the pin inside the handshake. The second is used: one
//! connection, no call ever made (and no token ever sent) before the collector is verified,
//! and no second protocol to keep. tonic's `ClientTlsConfig` takes root certificates only, so
//! the connection is made by a connector of our own ([`connect`]) with a rustls
//! [`ServerCertVerifier`] ([`PinnedCaVerifier`]). For each handshake it:
//! 1. looks among the certificates the collector sent after its own (its chain) for one whose
//!    `SubjectPublicKeyInfo` digest is the pin; none is a failed handshake, whose error says
//!    the collector must send its CA certificate in its chain (`tls.cert_file`; dev mode does);
//! 2. verifies the collector's certificate with rustls' standard WebPKI verifier whose only
//!    root is that certificate: signatures, validity, `serverAuth` and the server name
//!    (`collector.server_name`, else the URL's host), exactly as with `collector.ca_file`;
//! 3. keeps the CA certificate ([`PinnedCa`]) for the caller, who saves it with the CAs of the
//!    enrollment answer as the agent's trusted CAs: from then on the agent trusts the
//!    collector by its saved `ca.pem` like any enrolled agent, and the pin is not used again.
//!
//! The handshake signature itself is checked with the provider's algorithms, as rustls does.
//! A man in the middle without a key certified by the pinned CA cannot pass step 2, whatever
//! chain it sends: a copy of the real CA certificate in its chain does not sign its key.

use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};
use tonic::transport::{Channel, Endpoint, Uri};

use super::channel::{self, ChannelError, CONNECT_TIMEOUT};
use crate::config::Config;

/// The SHA-256 of `cert`'s DER `SubjectPublicKeyInfo` (module docs, *The pin*); `None` when
/// it does not parse.
pub fn spki_sha256(cert: &[u8]) -> Option<[u8; 32]> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(Sha256::digest(parsed.public_key().raw).into())
}

/// The CA certificate a pinned handshake found, once one has.
#[derive(Debug, Clone, Default)]
pub struct PinnedCa(Arc<Mutex<Option<CertificateDer<'static>>>>);

impl PinnedCa {
    /// The CA as PEM, when a handshake verified the collector against it.
    pub fn pem(&self) -> Option<String> {
        let der = self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()?;
        let block = pem::Pem::new("CERTIFICATE", der.as_ref().to_vec());
        Some(pem::encode_config(&block, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF)))
    }
}

/// Verifies the collector against the CA of its chain whose key digest is the pin (module docs).
#[derive(Debug)]
pub struct PinnedCaVerifier {
    /// `collector.ca_sha256`, decoded.
    pin: [u8; 32],
    /// Signature algorithms and WebPKI verification.
    provider: Arc<CryptoProvider>,
    /// Where the CA found is left for the caller.
    found: PinnedCa,
}

impl PinnedCaVerifier {
    /// A verifier for `pin` that leaves the CA it finds in `found`.
    pub fn new(pin: [u8; 32], found: PinnedCa) -> Self {
        Self { pin, provider: Arc::new(rustls::crypto::ring::default_provider()), found }
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates.iter().find(|c| spki_sha256(c.as_ref()) == Some(self.pin)).ok_or_else(|| {
            rustls::Error::General(
                "no ca certificate in the collector's chain has the digest of collector.ca_sha256 (the collector \
                 must send its ca certificate after its own)"
                    .into(),
            )
        })?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&self.provider))
            .build()
            .map_err(|e| rustls::Error::General(format!("pinned ca: {e}")))?;
        let verified = webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        *self.found.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(ca.clone().into_owned());
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to the collector of `config` without a client certificate, verifying it against
/// the CA pinned by `pin` (module docs); returns the channel and the CA it was verified by.
pub async fn connect(config: &Config, pin: [u8; 32]) -> Result<(Channel, PinnedCa), ChannelError> {
    let url = channel::collector_url(config)?;
    let endpoint_error = |reason: String| ChannelError::Endpoint { url: url.to_string(), reason };
    let uri: Uri = url.parse().map_err(|e: tonic::codegen::http::uri::InvalidUri| endpoint_error(e.to_string()))?;
    let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = config.collector.server_name.clone().unwrap_or_else(|| host.clone());
    let server_name = ServerName::try_from(name).map_err(|e| endpoint_error(e.to_string()))?;

    let found = PinnedCa::default();
    let verifier = Arc::new(PinnedCaVerifier::new(pin, found.clone()));
    let mut tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| endpoint_error(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let connect = tower::service_fn(move |_: Uri| {
        let (connector, server_name, host) = (connector.clone(), server_name.clone(), host.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let tls = connector.connect(server_name, tcp).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    // tonic adds its own TLS to an https URI; this connector brings the TLS, so tonic is given
    // the address as plain http.
    let plain = format!("http://{}", url.trim_start_matches("https://"));
    let endpoint = Endpoint::from_shared(plain).map_err(|e| endpoint_error(channel::error_chain(&e)))?;
    let channel = endpoint
        .connect_timeout(CONNECT_TIMEOUT)
        .connect_with_connector(connect)
        .await
        .map_err(|e| ChannelError::Connect { url: url.to_string(), reason: channel::error_chain(&e) })?;
    Ok((channel, found))
}
