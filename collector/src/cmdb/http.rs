//! HTTP to a CMDB (`super`, *Requests*).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Largest answer read from a CMDB.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// The CA bundles of the usual distributions, tried in order after `SSL_CERT_FILE`.
const SYSTEM_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The certificates of a PEM file.
fn pem_certificates(pem: &[u8]) -> Vec<ureq::tls::Certificate<'static>> {
    ureq::tls::parse_pem(pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect()
}

/// HTTP to one CMDB (module docs, *Requests*), counting what the report tells.
#[derive(Debug)]
pub struct Http {
    agent: ureq::Agent,
    /// Longest total wait for 429s.
    max_wait: Duration,
    /// Requests sent.
    pub requests: u64,
    /// 429 answers met.
    pub throttled: u64,
    /// Time waited for them.
    pub waited: Duration,
}

/// Most attempts of one request answered 429.
const MAX_ATTEMPTS: u32 = 30;

impl Http {
    /// A client trusting the system's roots and `ca_file`; `section` names the configuration.
    pub fn new(section: &str, ca_file: Option<&Path>, timeout: Duration, max_wait: Duration) -> Result<Self, String> {
        let system = std::env::var_os("SSL_CERT_FILE")
            .map(std::path::PathBuf::from)
            .into_iter()
            .chain(SYSTEM_BUNDLES.iter().map(std::path::PathBuf::from))
            .find_map(|p| std::fs::read(p).ok());
        let mut roots = system.as_deref().map(pem_certificates).unwrap_or_default();
        if let Some(file) = ca_file {
            let pem = std::fs::read(file).map_err(|e| format!("{section}.ca_file {}: {e}", file.display()))?;
            let extra = pem_certificates(&pem);
            if extra.is_empty() {
                return Err(format!("{section}.ca_file {}: no certificate in it", file.display()));
            }
            roots.extend(extra);
        }
        let roots = if roots.is_empty() {
            ureq::tls::RootCerts::WebPki
        } else {
            ureq::tls::RootCerts::Specific(Arc::new(roots))
        };
        let tls = ureq::tls::TlsConfig::builder().provider(ureq::tls::TlsProvider::Rustls).root_certs(roots).build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .max_redirects(0)
            .tls_config(tls)
            .build()
            .into();
        Ok(Self { agent, max_wait, requests: 0, throttled: 0, waited: Duration::ZERO })
    }

    /// Sends a request (a POST when `body` is given, else a GET) and returns the status and
    /// the answer; a 429 is waited out and sent again (module docs).
    pub fn send(&mut self, url: &str, headers: &[(&str, String)], body: Option<&str>) -> Result<(u16, String), String> {
        let method = if body.is_some() { "POST" } else { "GET" };
        for _ in 0..MAX_ATTEMPTS {
            self.requests += 1;
            let answer = match body {
                Some(body) => {
                    let mut request = self.agent.post(url);
                    for (name, value) in headers {
                        request = request.header(*name, value);
                    }
                    request.send(body)
                }
                None => {
                    let mut request = self.agent.get(url);
                    for (name, value) in headers {
                        request = request.header(*name, value);
                    }
                    request.call()
                }
            };
            let mut response = answer.map_err(|e| format!("{method} {url}: {e}"))?;
            let status = response.status().as_u16();
            if status == 429 {
                self.throttled += 1;
                let wait = retry_after(response.headers().get("retry-after").and_then(|v| v.to_str().ok()));
                if self.waited + wait > self.max_wait {
                    return Err(format!(
                        "{method} {url}: still rate limited (429) after waiting {} s in all (max_retry_wait)",
                        self.waited.as_secs()
                    ));
                }
                tracing::info!(url = %url, wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX), "cmdb rate limited (429): waiting as retry-after says");
                std::thread::sleep(wait);
                self.waited += wait;
                continue;
            }
            let text = response
                .body_mut()
                .with_config()
                .limit(MAX_RESPONSE_BYTES)
                .read_to_string()
                .map_err(|e| format!("{method} {url}: reading the answer: {e}"))?;
            return Ok((status, text));
        }
        Err(format!("{method} {url}: still rate limited (429) after {MAX_ATTEMPTS} attempts"))
    }
}

/// The wait a `Retry-After` asks (seconds; an HTTP date or nothing is taken as 5 s), from 1 s
/// to 5 min.
pub(crate) fn retry_after(value: Option<&str>) -> Duration {
    let secs = value.and_then(|v| v.trim().parse::<u64>().ok()).unwrap_or(5);
    Duration::from_secs(secs.clamp(1, 300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_ca_must_hold_a_certificate_and_errors_name_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let e = Http::new("cmdb.webhook", Some(&missing), Duration::from_secs(1), Duration::ZERO).unwrap_err();
        assert!(e.starts_with(&format!("cmdb.webhook.ca_file {}: ", missing.display())), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let e = Http::new("cmdb.servicenow", Some(&empty), Duration::from_secs(1), Duration::ZERO).unwrap_err();
        assert_eq!(e, format!("cmdb.servicenow.ca_file {}: no certificate in it", empty.display()));
        let (ca, _) = crate::pki::CertificateAuthority::generate("cmdb test ca").unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, ca.cert_pem()).unwrap();
        assert!(Http::new("cmdb.servicenow", Some(&pem), Duration::from_secs(1), Duration::ZERO).is_ok());
    }

    #[test]
    fn a_429_beyond_the_total_wait_stops_the_push_naming_the_url() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            for _ in 0..2 {
                let (mut stream, _) = listener.accept().unwrap();
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).unwrap();
                stream
                    .write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .unwrap();
            }
        });
        let mut http = Http::new("cmdb.webhook", None, Duration::from_secs(5), Duration::from_secs(1)).unwrap();
        let url = format!("http://127.0.0.1:{port}/hook");
        let e = http.send(&url, &[], Some("{}")).unwrap_err();
        assert_eq!(e, format!("POST {url}: still rate limited (429) after waiting 1 s in all (max_retry_wait)"));
        assert_eq!((http.requests, http.throttled, http.waited), (2, 2, Duration::from_secs(1)));
        server.join().unwrap();
    }
}
