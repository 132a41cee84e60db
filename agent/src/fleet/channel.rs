//! The TLS channel to the collector, for every call the agent makes: enrollment, renewal and
//! the inventory stream.
//!
//! 1. The address is `collector.url`; the collector's certificate is verified against the CAs
//!    the caller trusts (the configured `collector.ca_file` when enrolling, the saved `ca.pem`
//!    after) and against `collector.server_name` when set, instead of the URL's host.
//! 2. Enrollment connects without a client certificate ([`trust_only`]); every later call
//!    presents the agent's ([`with_client_certificate`]).
//! 3. Connecting gives up after [`CONNECT_TIMEOUT`]; an idle connection is kept alive with TCP
//!    keepalives.
//!
//! Errors carry the transport's whole cause chain ([`error_chain`]): tonic's own messages say
//! little ("transport error") without it.

use std::time::Duration;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::credentials::Enrolled;
use crate::config::Config;

/// Time allowed to establish the TCP and TLS connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Interval of TCP keepalives on an open connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why there is no channel to the collector.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// `collector.url` is not set.
    #[error("collector.url: not set: the agent has no collector to talk to")]
    NoCollectorUrl,
    /// `collector.url` (with the TLS settings) does not make an endpoint.
    #[error("collector.url: invalid collector endpoint {url}: {reason}")]
    Endpoint {
        /// The URL.
        url: String,
        /// What tonic said, with its causes.
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
}

/// The collector's URL (`collector.url`).
pub fn collector_url(config: &Config) -> Result<&str, ChannelError> {
    config.collector.url.as_deref().ok_or(ChannelError::NoCollectorUrl)
}

/// TLS that trusts `ca_pem` for the collector and presents no client certificate (enrollment).
pub fn trust_only(config: &Config, ca_pem: &str) -> ClientTlsConfig {
    let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    match &config.collector.server_name {
        Some(name) => tls.domain_name(name.clone()),
        None => tls,
    }
}

/// TLS of every call after enrollment: the agent's certificate and key as client identity, the
/// saved CAs as trust.
pub fn with_client_certificate(config: &Config, enrolled: &Enrolled) -> ClientTlsConfig {
    trust_only(config, &enrolled.ca_pem).identity(Identity::from_pem(&enrolled.cert_pem, &enrolled.key_pem))
}

/// The endpoint of `collector.url` with `tls`.
pub fn endpoint(config: &Config, tls: ClientTlsConfig) -> Result<Endpoint, ChannelError> {
    let url = collector_url(config)?;
    Endpoint::from_shared(url.to_string())
        .and_then(|e| e.tls_config(tls))
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT).tcp_keepalive(Some(TCP_KEEPALIVE)))
        .map_err(|e| ChannelError::Endpoint { url: url.to_string(), reason: error_chain(&e) })
}

/// Connects to the collector of `config` with `tls`.
pub async fn connect(config: &Config, tls: ClientTlsConfig) -> Result<Channel, ChannelError> {
    let endpoint = endpoint(config, tls)?;
    endpoint
        .connect()
        .await
        .map_err(|e| ChannelError::Connect { url: endpoint.uri().to_string(), reason: error_chain(&e) })
}

/// `e` and its causes, joined by `: `, each cause once (a message that already ends with its
/// cause's text does not repeat it).
pub fn error_chain(e: &dyn std::error::Error) -> String {
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
