//! The TLS material the configuration names: read and checked in one place, so that `validate`
//! and `serve` find the same problems ([`TlsMaterial::check`] and [`TlsMaterial::load`] run
//! the same reader), and the rustls configurations of the two listeners.
//!
//! What is checked, every problem reported with its key and file, all at once:
//! 1. each file named is an absolute path and readable;
//! 2. certificate files hold PEM certificates; `tls.ca_cert_file` and every
//!    `tls.previous_ca_cert_files` entry is a CA certificate (basic constraints);
//! 3. key files hold a private key in a format [`crate::keys`] reads (the CA key decrypted with
//!    its passphrase when encrypted), of an algorithm the collector can sign with;
//! 4. each key is the one of its certificate (the first of `tls.cert_file`, `tls.ca_cert_file`,
//!    the first of `api_tls.cert_file`), compared by `SubjectPublicKeyInfo`;
//! 5. in dev mode, the PKI directory is whole or absent ([`DevPki::load`]); `load` creates it
//!    when absent, `check` never writes.
//!
//! # The agents' listener
//! Client certificates are verified against the current CA and every previous one
//! ([`TlsMaterial::ca_bundle`]), and are optional at the TLS layer (enrollment has none); each
//! `Inventory` call then demands one ([`crate::grpc`]). Agents are signed by the current CA
//! only. A rotation (docs/collector.md, *Rotating the CA*) moves the old CA to
//! `tls.previous_ca_cert_files`, so agents holding its certificates still connect, are asked to
//! renew, and are told to trust the bundle.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{KeyPair, PublicKeyData};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

use crate::config::{CollectorConfig, ConfigProblem};
use crate::keys::{self, PASSPHRASE_ENV};
use crate::pki::{CertificateAuthority, DevPki};

/// A certificate chain and the key of its first certificate.
#[derive(Debug)]
struct Identity {
    /// The chain, leaf first.
    chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    key: PrivatePkcs8KeyDer<'static>,
}

/// The TLS material the server runs with (module docs).
#[derive(Debug)]
pub struct TlsMaterial {
    /// Signs agent certificates: the current CA.
    pub ca: Arc<CertificateAuthority>,
    /// The CAs whose agent certificates are accepted, current first (PEM): the client roots of
    /// the agents' listener, and what renewing agents are told to trust.
    pub ca_bundle: String,
    /// The server certificate chain (PEM), as agents see it.
    pub server_cert_pem: String,
    /// The agents' listener identity.
    server: Identity,
    /// The HTTP API's identity, when it serves HTTPS.
    api: Option<Identity>,
    /// Where the dev CA certificate is (dev mode), to print.
    pub ca_path: Option<PathBuf>,
}

/// The problems found so far (module docs).
#[derive(Debug, Default)]
struct Reader {
    problems: Vec<ConfigProblem>,
}

impl Reader {
    fn problem(&mut self, key: &'static str, path: &Path, message: impl std::fmt::Display) {
        self.problems.push(ConfigProblem { key, message: format!("{}: {message}", path.display()) });
    }

    /// The text of `path`, the file of `key`, when it is absolute and readable (rule 1).
    fn text(&mut self, key: &'static str, path: &Path) -> Option<String> {
        if !path.is_absolute() {
            let message = format!("must be an absolute path, got {:?}", path.display().to_string());
            self.problems.push(ConfigProblem { key, message });
            return None;
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Some(text),
            Err(e) => {
                self.problem(key, path, format!("cannot read: {e}"));
                None
            }
        }
    }

    /// The PEM text and certificates of `path` (rule 2); `ca`: each must be a CA.
    fn certs(&mut self, key: &'static str, path: &Path, ca: bool) -> Option<(String, Vec<CertificateDer<'static>>)> {
        let text = self.text(key, path)?;
        let certs = match CertificateDer::pem_slice_iter(text.as_bytes()).collect::<Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => certs,
            Ok(_) => {
                self.problem(key, path, "no certificate in it (a pem CERTIFICATE block)");
                return None;
            }
            Err(e) => {
                self.problem(key, path, format!("not a pem certificate: {e}"));
                return None;
            }
        };
        for cert in &certs {
            match x509_parser::parse_x509_certificate(cert.as_ref()) {
                Err(e) => {
                    self.problem(key, path, format!("a certificate does not parse: {e}"));
                    return None;
                }
                Ok((_, parsed)) if ca && !parsed.is_ca() => {
                    self.problem(key, path, "not a ca certificate (basic constraints)");
                    return None;
                }
                Ok(_) => {}
            }
        }
        Some((text, certs))
    }

    /// The key of `path` (rule 3), and its key pair.
    fn key(
        &mut self,
        key: &'static str,
        path: &Path,
        passphrase: Option<&[u8]>,
    ) -> Option<(PrivatePkcs8KeyDer<'static>, KeyPair)> {
        let text = self.text(key, path)?;
        let der = match keys::pkcs8_from_pem(&text, passphrase) {
            Ok(der) => der,
            Err(e) => {
                self.problem(key, path, e);
                return None;
            }
        };
        match KeyPair::try_from(&der) {
            Ok(pair) => Some((der, pair)),
            Err(e) => {
                self.problem(key, path, format!("a key the collector cannot sign with: {e}"));
                None
            }
        }
    }

    /// Whether `pair` is the key of `cert` (rule 4); a problem on `key` otherwise.
    fn matches(
        &mut self,
        key: &'static str,
        path: &Path,
        pair: &KeyPair,
        cert: &CertificateDer<'_>,
        cert_key: &str,
    ) -> bool {
        let spki = x509_parser::parse_x509_certificate(cert.as_ref()).map(|(_, c)| c.public_key().raw.to_vec());
        if spki.is_ok_and(|spki| spki == pair.subject_public_key_info()) {
            true
        } else {
            self.problem(key, path, format!("the key does not match the certificate of {cert_key}"));
            false
        }
    }

    /// A certificate chain and its key, both named (`api_tls` and the production server).
    fn identity(&mut self, cert: (&'static str, &Path), key: (&'static str, &Path)) -> Option<(String, Identity)> {
        let certs = self.certs(cert.0, cert.1, false);
        let pair = self.key(key.0, key.1, None);
        let ((text, chain), (der, pair)) = (certs?, pair?);
        let leaf = chain.first()?;
        self.matches(key.0, key.1, &pair, leaf, cert.0).then_some((text, Identity { chain, key: der }))
    }
}

/// The passphrase of an encrypted CA key: `tls.ca_key_passphrase_file` (without its final
/// newline), else the environment.
fn passphrase(reader: &mut Reader, file: Option<&Path>) -> Option<Vec<u8>> {
    match file {
        Some(path) => {
            let text = reader.text("tls.ca_key_passphrase_file", path)?;
            Some(text.strip_suffix('\n').unwrap_or(&text).trim_end_matches('\r').as_bytes().to_vec())
        }
        None => std::env::var_os(PASSPHRASE_ENV).map(|v| v.into_encoded_bytes()),
    }
}

/// `pem` ending with one newline.
fn line_ended(pem: &str) -> String {
    format!("{}\n", pem.trim_end())
}

impl TlsMaterial {
    /// Reads (and in dev mode creates) the material of `config`; every problem when it cannot.
    pub fn load(config: &CollectorConfig) -> Result<Self, Vec<ConfigProblem>> {
        let (material, problems) = Self::read(config, true);
        match material {
            Some(material) if problems.is_empty() => Ok(material),
            _ => Err(problems),
        }
    }

    /// The problems of the files `config` names, writing nothing (module docs).
    pub fn check(config: &CollectorConfig) -> Vec<ConfigProblem> {
        Self::read(config, false).1
    }

    fn read(config: &CollectorConfig, create: bool) -> (Option<Self>, Vec<ConfigProblem>) {
        let mut reader = Reader::default();
        let api = match (&config.api_tls.cert_file, &config.api_tls.key_file) {
            (Some(cert), Some(key)) => {
                reader.identity(("api_tls.cert_file", cert), ("api_tls.key_file", key)).map(|(_, identity)| identity)
            }
            _ => None,
        };
        let material =
            if config.tls.dev { Self::dev(&mut reader, config, create) } else { Self::files(&mut reader, config) };
        let material = material.map(|m| Self { api, ..m });
        (material, reader.problems)
    }

    fn dev(reader: &mut Reader, config: &CollectorConfig, create: bool) -> Option<Self> {
        let dir = config.data_dir.join("pki");
        let pki = if create { DevPki::load_or_create(&dir, &config.tls.names).map(Some) } else { DevPki::load(&dir) };
        let pki = match pki {
            Ok(pki) => pki?,
            Err(e) => {
                reader.problems.push(ConfigProblem { key: "tls.dev", message: e.to_string() });
                return None;
            }
        };
        if pki.created {
            tracing::info!(ca = %pki.ca_path.display(), "dev pki created");
        }
        let key_path = dir.join("server.key");
        let key = match keys::pkcs8_from_pem(&pki.server_key_pem, None) {
            Ok(key) => key,
            Err(e) => {
                reader.problem("tls.dev", &key_path, e);
                return None;
            }
        };
        let chain = CertificateDer::pem_slice_iter(pki.server_cert_pem.as_bytes()).collect::<Result<Vec<_>, _>>();
        let chain = match chain {
            Ok(chain) => chain,
            Err(e) => {
                reader.problem("tls.dev", &dir.join("server.pem"), format!("not a pem certificate: {e}"));
                return None;
            }
        };
        Some(Self {
            ca_bundle: line_ended(pki.ca.cert_pem()),
            ca: Arc::new(pki.ca),
            server_cert_pem: pki.server_cert_pem,
            server: Identity { chain, key },
            api: None,
            ca_path: Some(pki.ca_path),
        })
    }

    fn files(reader: &mut Reader, config: &CollectorConfig) -> Option<Self> {
        let t = &config.tls;
        let server = match (&t.cert_file, &t.key_file) {
            (Some(cert), Some(key)) => reader.identity(("tls.cert_file", cert), ("tls.key_file", key)),
            _ => None,
        };
        let ca_cert = t.ca_cert_file.as_deref().and_then(|p| reader.certs("tls.ca_cert_file", p, true));
        let pass = passphrase(reader, t.ca_key_passphrase_file.as_deref());
        let ca_key =
            t.ca_key_file.as_deref().and_then(|p| Some((p, reader.key("tls.ca_key_file", p, pass.as_deref())?)));
        let mut previous = Vec::new();
        for path in &t.previous_ca_cert_files {
            if let Some((text, _)) = reader.certs("tls.previous_ca_cert_files", path, true) {
                previous.push(line_ended(&text));
            }
        }
        let ((ca_text, ca_certs), (ca_key_path, (_, ca_pair))) = (ca_cert?, ca_key?);
        let first_ca = ca_certs.first()?;
        if !reader.matches("tls.ca_key_file", ca_key_path, &ca_pair, first_ca, "tls.ca_cert_file") {
            return None;
        }
        // The CA file's first certificate is the CA; rcgen signs with it.
        let first_pem = pem::encode(&pem::Pem::new("CERTIFICATE", first_ca.as_ref().to_vec()));
        let ca = match CertificateAuthority::from_parts(&first_pem, ca_pair) {
            Ok(ca) => ca,
            Err(e) => {
                reader.problem("tls.ca_cert_file", t.ca_cert_file.as_deref().unwrap_or(Path::new("")), e);
                return None;
            }
        };
        let (server_cert_pem, server) = server?;
        let ca_bundle = std::iter::once(line_ended(&ca_text)).chain(previous).collect();
        Some(Self { ca: Arc::new(ca), ca_bundle, server_cert_pem, server, api: None, ca_path: None })
    }

    /// The rustls configuration of the agents' listener (module docs, *The agents' listener*).
    pub fn agents_config(&self) -> Result<Arc<ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_bundle.as_bytes()) {
            roots.add(cert.map_err(|e| rustls::Error::General(format!("ca bundle: {e}")))?)?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider))
            .allow_unauthenticated()
            .build()
            .map_err(|e| rustls::Error::General(format!("client verifier: {e}")))?;
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server.chain.clone(), PrivateKeyDer::Pkcs8(self.server.key.clone_key()))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// The rustls configuration of the HTTP API, when it serves HTTPS.
    pub fn api_config(&self) -> Option<Result<Arc<ServerConfig>, rustls::Error>> {
        let api = self.api.as_ref()?;
        let build = || {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(api.chain.clone(), PrivateKeyDer::Pkcs8(api.key.clone_key()))?;
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        };
        Some(build())
    }
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
