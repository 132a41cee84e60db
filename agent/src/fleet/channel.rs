//! The TLS channel to the collector, for every call the agent makes: enrollment, renewal and
//! the inventory stream.
//!
//! 1. The address is `collector.url`, then each of `collector.failover_urls` (replicas sharing
//!    one store: any of them serves any agent, and the spool resumes where the last one
//!    acknowledged). A connection starts with the collector that answered last and moves down
//!    the list, wrapping, until one answers; that one is tried first next time. The collector's certificate is verified against the CAs
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

/// Every collector URL in order: `collector.url`, then `collector.failover_urls`, each once.
pub fn collector_urls(config: &Config) -> Result<Vec<&str>, ChannelError> {
    let mut urls = vec![collector_url(config)?];
    for url in &config.collector.failover_urls {
        if !urls.contains(&url.as_str()) {
            urls.push(url);
        }
    }
    Ok(urls)
}

/// The index in [`collector_urls`] of the collector that answered last.
static LAST_GOOD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

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
    endpoint_of(collector_url(config)?, tls)
}

/// The endpoint of `url` with `tls`.
fn endpoint_of(url: &str, tls: ClientTlsConfig) -> Result<Endpoint, ChannelError> {
    Endpoint::from_shared(url.to_string())
        .and_then(|e| e.tls_config(tls))
        .map(|e| e.connect_timeout(CONNECT_TIMEOUT).tcp_keepalive(Some(TCP_KEEPALIVE)))
        .map_err(|e| ChannelError::Endpoint { url: url.to_string(), reason: error_chain(&e) })
}

/// Connects to a collector of `config` with `tls`: the one that answered last, else the next
/// in [`collector_urls`] that answers (module docs, 1). The error is the last one's.
pub async fn connect(config: &Config, tls: ClientTlsConfig) -> Result<Channel, ChannelError> {
    use std::sync::atomic::Ordering;
    let urls = collector_urls(config)?;
    let start = LAST_GOOD.load(Ordering::Relaxed) % urls.len();
    let mut last_error = None;
    for offset in 0..urls.len() {
        let index = (start + offset) % urls.len();
        let Some(url) = urls.get(index) else { continue };
        let endpoint = endpoint_of(url, tls.clone())?;
        match endpoint.connect().await {
            Ok(channel) => {
                if index != start {
                    tracing::warn!(url = %url, "failed over to another collector");
                }
                LAST_GOOD.store(index, Ordering::Relaxed);
                return Ok(channel);
            }
            Err(e) => {
                let error = ChannelError::Connect { url: endpoint.uri().to_string(), reason: error_chain(&e) };
                if urls.len() > 1 {
                    tracing::warn!(error = %error, "collector unreachable; trying the next one");
                }
                last_error = Some(error);
            }
        }
    }
    Err(last_error.unwrap_or(ChannelError::NoCollectorUrl))
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
