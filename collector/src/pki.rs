//! The collector's certificate authority: it signs the collector's server certificate and one
//! client certificate per enrolled agent.
//!
//! Rules:
//! 1. an agent certificate's subject common name is the agent id the collector chose; the
//!    CSR's own subject and extensions are ignored (an agent cannot ask for another identity or
//!    for CA rights), only its public key is used;
//! 2. agent certificates carry `clientAuth` only, the server certificate `serverAuth` only;
//! 3. every certificate gets a random 128-bit serial, recorded by the store so that revocation
//!    and renewal are by agent id;
//! 4. in dev mode the CA and the server certificate are generated on first start
//!    ([`DevPki::load_or_create`]) into `data_dir/pki/` (0700; keys 0600), and the CA
//!    certificate is what agents trust (`collector.ca_file`). A CA is never silently replaced:
//!    the four files are created together only when none exists, each with `O_EXCL`, and a
//!    directory holding some but not all of them is an error naming the first missing one
//!    ([`PkiError::PartialDevPki`]), since a new CA would strand every enrolled agent.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};

/// Errors of the certificate authority.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A key or certificate could not be generated or signed.
    #[error("{what}: {source}")]
    Rcgen {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: rcgen::Error,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The dev PKI directory holds some of its files but not this one.
    #[error(
        "{missing}: missing from the dev pki, which holds {present}: restore it, or move the directory away to \
         create a new ca (every enrolled agent would then have to enroll again)"
    )]
    PartialDevPki {
        /// The first missing file.
        missing: String,
        /// The files that are there, comma-separated.
        present: String,
    },
    /// A CA certificate or key that cannot sign.
    #[error("{0}")]
    BadCa(String),
    /// A certificate signing request was refused.
    #[error("certificate signing request refused: {0}")]
    BadCsr(String),
}

fn rc(what: &'static str) -> impl FnOnce(rcgen::Error) -> PkiError {
    move |source| PkiError::Rcgen { what, source }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io { path: path.display().to_string(), source }
}

fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| PkiError::Io { path: "getrandom".into(), source: std::io::Error::other(e.to_string()) })?;
    if let Some(first) = bytes.first_mut() {
        // Positive, and never a leading zero byte (DER would drop it, and the serial read back
        // from a presented certificate would no longer match the one recorded).
        *first = (*first & 0x7f) | 0x40;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

/// Makes `params` a leaf certificate for `dn` with one extended key usage, a fresh random
/// serial and `lifetime`; returns the serial and the end of validity (Unix seconds).
fn leaf(
    params: &mut CertificateParams,
    dn: DistinguishedName,
    usage: ExtendedKeyUsagePurpose,
    lifetime: Duration,
) -> Result<(SerialNumber, i64), PkiError> {
    params.distinguished_name = dn;
    params.extended_key_usages = vec![usage];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let serial = random_serial()?;
    params.serial_number = Some(serial.clone());
    params.use_authority_key_identifier_extension = true;
    Ok((serial, validity(params, lifetime)))
}

fn validity(params: &mut CertificateParams, lifetime: Duration) -> i64 {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    let lifetime = time::Duration::seconds(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX / 2));
    params.not_after = now + lifetime;
    params.not_after.unix_timestamp()
}

/// A certificate authority able to sign.
#[derive(Debug)]
pub struct CertificateAuthority {
    /// The CA certificate (PEM), what clients trust.
    cert_pem: String,
    /// The signing identity.
    issuer: Issuer<'static, KeyPair>,
    /// Hex SHA-256 of its public key (`SubjectPublicKeyInfo`): recorded with each agent
    /// certificate to tell which CA signed it.
    key_sha256: String,
}

/// A signed certificate and when it expires.
#[derive(Debug, Clone)]
pub struct Signed {
    /// PEM certificate.
    pub cert_pem: String,
    /// Hex serial number.
    pub serial: String,
    /// Unix seconds after which it is invalid.
    pub not_after: i64,
}

impl CertificateAuthority {
    /// A new self-signed CA named `name`, valid ten years.
    pub fn generate(name: &str) -> Result<(Self, String), PkiError> {
        let key = KeyPair::generate().map_err(rc("generating the ca key"))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, name);
        dn.push(DnType::OrganizationName, "aiscout");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.serial_number = Some(random_serial()?);
        validity(&mut params, Duration::from_secs(10 * 365 * 24 * 3600));
        let cert = params.self_signed(&key).map_err(rc("signing the ca certificate"))?;
        let key_pem = key.serialize_pem();
        let key_sha256 = spki_sha256(&key.subject_public_key_info());
        Ok((Self { cert_pem: cert.pem(), issuer: Issuer::new(params, key), key_sha256 }, key_pem))
    }

    /// The CA from its PEM certificate and its key (PKCS#8 PEM).
    pub fn load(cert_pem: &str, key_pem: &str) -> Result<Self, PkiError> {
        let key = KeyPair::from_pem(key_pem).map_err(rc("reading the ca key"))?;
        Self::from_parts(cert_pem, key)
    }

    /// The CA from its PEM certificate and its key pair, which must be the certificate's.
    pub fn from_parts(cert_pem: &str, key: KeyPair) -> Result<Self, PkiError> {
        let key_sha256 = spki_sha256(&key.subject_public_key_info());
        let (_, block) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| PkiError::BadCa(format!("not a pem certificate: {e}")))?;
        let cert = block.parse_x509().map_err(|e| PkiError::BadCa(format!("certificate does not parse: {e}")))?;
        if spki_sha256(cert.public_key().raw) != key_sha256 {
            return Err(PkiError::BadCa("the key is not the certificate's".into()));
        }
        if !cert.is_ca() {
            return Err(PkiError::BadCa("the certificate is not a ca (basic constraints)".into()));
        }
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).map_err(rc("reading the ca certificate"))?;
        Ok(Self { cert_pem: cert_pem.to_string(), issuer, key_sha256 })
    }

    /// Hex SHA-256 of its public key (module docs of [`crate::grpc`], rule 5).
    pub fn key_sha256(&self) -> &str {
        &self.key_sha256
    }

    /// The CA certificate (PEM).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A server certificate for `names` (DNS names or IP addresses) and its key (PEM).
    pub fn server_certificate(&self, names: &[String], lifetime: Duration) -> Result<(Signed, String), PkiError> {
        let key = KeyPair::generate().map_err(rc("generating the server key"))?;
        let mut params = CertificateParams::new(names.to_vec()).map_err(rc("naming the server certificate"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, names.first().map(String::as_str).unwrap_or("aiscout-collector"));
        let (serial, not_after) = leaf(&mut params, dn, ExtendedKeyUsagePurpose::ServerAuth, lifetime)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(rc("signing the server certificate"))?;
        Ok((Signed { cert_pem: cert.pem(), serial: hex(serial.as_ref()), not_after }, key.serialize_pem()))
    }

    /// Signs an agent's CSR: the certificate names `agent_id` whatever the CSR asked for.
    pub fn sign_agent(&self, csr_pem: &str, agent_id: &str, lifetime: Duration) -> Result<Signed, PkiError> {
        if csr_pem.len() > 16 * 1024 {
            return Err(PkiError::BadCsr("larger than 16 KiB".into()));
        }
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, agent_id);
        dn.push(DnType::OrganizationName, "aiscout agents");
        let (serial, not_after) = leaf(&mut params, dn, ExtendedKeyUsagePurpose::ClientAuth, lifetime)?;
        let request = CertificateSigningRequestParams { params, public_key: csr.public_key };
        let cert = request.signed_by(&self.issuer).map_err(rc("signing the agent certificate"))?;
        Ok(Signed { cert_pem: cert.pem(), serial: hex(serial.as_ref()), not_after })
    }
}

/// The pin agents may set as `collector.ca_sha256` for the collector whose certificate chain is
/// `chain_pem`: `sha256:` and the hex SHA-256 of the `SubjectPublicKeyInfo` of the last CA
/// certificate in the chain (the kubeadm convention); `None` when the chain holds no CA.
pub fn chain_ca_pin(chain_pem: &str) -> Option<String> {
    let mut pin = None;
    for block in x509_parser::pem::Pem::iter_from_buffer(chain_pem.as_bytes()) {
        let Ok(block) = block else { continue };
        let Ok(cert) = block.parse_x509() else { continue };
        if cert.is_ca() {
            pin = Some(format!("sha256:{}", spki_sha256(cert.public_key().raw)));
        }
    }
    pin
}

/// Hex SHA-256 of a DER `SubjectPublicKeyInfo`.
fn spki_sha256(spki: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(spki))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates `path` with `contents` and `mode`; an existing file is an error, never overwritten.
fn write_new(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    crate::write_new_file(path, contents.as_bytes(), mode).map_err(io(path))
}

/// The dev-mode PKI in a data directory: `ca.pem`, `ca.key`, `server.pem`, `server.key`.
#[derive(Debug)]
pub struct DevPki {
    /// The CA.
    pub ca: CertificateAuthority,
    /// The CA certificate file agents are told to trust.
    pub ca_path: PathBuf,
    /// Server certificate (PEM).
    pub server_cert_pem: String,
    /// Server key (PEM).
    pub server_key_pem: String,
    /// Whether it was created by this call.
    pub created: bool,
}

impl DevPki {
    /// The files of a dev PKI, in the order a missing one is reported.
    pub const FILES: [&'static str; 4] = ["ca.pem", "ca.key", "server.pem", "server.key"];

    /// Loads the dev PKI from `dir`, or creates it with a server certificate for `names` when
    /// `dir` holds none of its files (module docs, rule 4). `dir` is made or kept `0700`.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Self, PkiError> {
        crate::create_private_dir(dir).map_err(io(dir))?;
        if let Some(pki) = Self::load(dir)? {
            return Ok(pki);
        }
        let (ca_path, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
        let (srv_path, srv_key) = (dir.join("server.pem"), dir.join("server.key"));
        let (ca, ca_key_pem) = CertificateAuthority::generate("aiscout dev ca")?;
        let (server, server_key_pem) = ca.server_certificate(names, Duration::from_secs(2 * 365 * 24 * 3600))?;
        let chain = format!("{}{}", server.cert_pem, ca.cert_pem());
        // Keys first: a crash in between leaves a partial directory, which the next start
        // reports instead of making a second CA.
        write_new(&ca_key, &ca_key_pem, 0o600)?;
        write_new(&srv_key, &server_key_pem, 0o600)?;
        write_new(&ca_path, ca.cert_pem(), 0o644)?;
        write_new(&srv_path, &chain, 0o644)?;
        Ok(Self { ca, ca_path, server_cert_pem: chain, server_key_pem, created: true })
    }

    /// The dev PKI in `dir` without creating anything: `None` when none of its files is there
    /// (or `dir` is not), [`PkiError::PartialDevPki`] when some are.
    pub fn load(dir: &Path) -> Result<Option<Self>, PkiError> {
        let present: Vec<&str> =
            Self::FILES.into_iter().filter(|f| std::fs::symlink_metadata(dir.join(f)).is_ok()).collect();
        if present.is_empty() {
            return Ok(None);
        }
        if let Some(missing) = Self::FILES.into_iter().find(|f| !present.contains(f)) {
            return Err(PkiError::PartialDevPki {
                missing: dir.join(missing).display().to_string(),
                present: present.join(", "),
            });
        }
        let read = |name: &str| {
            let p = dir.join(name);
            std::fs::read_to_string(&p).map_err(io(&p))
        };
        let ca = CertificateAuthority::load(&read("ca.pem")?, &read("ca.key")?)?;
        Ok(Some(Self {
            ca,
            ca_path: dir.join("ca.pem"),
            server_cert_pem: read("server.pem")?,
            server_key_pem: read("server.key")?,
            created: false,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr(cn: &str) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained); // asks for more than it gets
        (params.serialize_request(&key).unwrap().pem().unwrap(), key)
    }

    #[test]
    fn agent_certificates_name_the_agent_whatever_the_csr_asks() {
        let (ca, _) = CertificateAuthority::generate("test ca").unwrap();
        let (request, _key) = csr("i-am-someone-else");
        let signed = ca.sign_agent(&request, "agent-42", Duration::from_secs(3600)).unwrap();
        let (_, cert) = x509_parser::pem::parse_x509_pem(signed.cert_pem.as_bytes()).unwrap();
        let cert = cert.parse_x509().unwrap();
        let cn: Vec<_> = cert.subject().iter_common_name().map(|c| c.as_str().unwrap().to_string()).collect();
        assert_eq!(cn, vec!["agent-42"]);
        assert!(!cert.is_ca());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(signed.not_after > 0 && signed.serial.len() == 32);
    }

    #[test]
    fn the_pin_is_the_digest_of_the_chain_cas_public_key() {
        let (ca, ca_key_pem) = CertificateAuthority::generate("test ca").unwrap();
        let (server, _) = ca.server_certificate(&["localhost".into()], Duration::from_secs(60)).unwrap();
        let key = KeyPair::from_pem(&ca_key_pem).unwrap();
        let expected = format!("sha256:{}", spki_sha256(&key.subject_public_key_info()));
        assert_eq!(ca.key_sha256(), &expected["sha256:".len()..]);
        assert_eq!(chain_ca_pin(&format!("{}{}", server.cert_pem, ca.cert_pem())), Some(expected));
        assert_eq!(chain_ca_pin(&server.cert_pem), None, "a leaf alone names no ca");
    }

    #[test]
    fn serials_are_positive_and_keep_their_length_in_der() {
        for _ in 0..2000 {
            let serial = random_serial().unwrap();
            let first = *serial.as_ref().first().unwrap();
            assert!((0x40..=0x7f).contains(&first), "{first:#x}");
            assert_eq!(serial.as_ref().len(), 16);
        }
    }

    #[test]
    fn garbage_csrs_are_refused() {
        let (ca, _) = CertificateAuthority::generate("test ca").unwrap();
        assert!(matches!(ca.sign_agent("not a csr", "a", Duration::from_secs(60)), Err(PkiError::BadCsr(_))));
        assert!(matches!(ca.sign_agent(&"x".repeat(20_000), "a", Duration::from_secs(60)), Err(PkiError::BadCsr(_))));
    }

    #[test]
    fn dev_pki_is_created_once_with_private_keys() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = DevPki::load_or_create(dir.path(), &["localhost".into(), "127.0.0.1".into()]).unwrap();
        assert!(first.created);
        let mode = std::fs::metadata(dir.path().join("ca.key")).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = DevPki::load_or_create(dir.path(), &["localhost".into()]).unwrap();
        assert!(!again.created);
        assert_eq!(again.ca.cert_pem(), first.ca.cert_pem());
        // The reloaded CA still signs.
        let (request, _) = csr("x");
        again.ca.sign_agent(&request, "agent-1", Duration::from_secs(60)).unwrap();
    }

    #[test]
    fn the_dev_pki_directory_is_private_even_when_it_was_not() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("pki");
        DevPki::load_or_create(&dir, &["localhost".into()]).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(!DevPki::load_or_create(&dir, &["localhost".into()]).unwrap().created);
        assert_eq!(mode(&dir), 0o700);
    }

    #[test]
    fn a_partial_dev_pki_is_an_error_naming_the_missing_file_and_nothing_is_replaced() {
        let data = tempfile::tempdir().unwrap();
        let dir = data.path().join("pki");
        let first = DevPki::load_or_create(&dir, &["localhost".into()]).unwrap();
        for (gone, present) in [
            ("ca.key", "ca.pem, server.pem, server.key"),
            ("ca.pem", "ca.key, server.pem, server.key"),
            ("server.pem", "ca.pem, ca.key, server.key"),
            ("server.key", "ca.pem, ca.key, server.pem"),
        ] {
            let path = dir.join(gone);
            let kept = std::fs::read(&path).unwrap();
            std::fs::remove_file(&path).unwrap();
            let err = DevPki::load_or_create(&dir, &["localhost".into()]).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "{}: missing from the dev pki, which holds {present}: restore it, or move the directory away \
                     to create a new ca (every enrolled agent would then have to enroll again)",
                    path.display()
                )
            );
            assert!(!path.exists(), "nothing was written");
            std::fs::write(&path, kept).unwrap();
        }
        let again = DevPki::load_or_create(&dir, &["localhost".into()]).unwrap();
        assert_eq!(again.ca.cert_pem(), first.ca.cert_pem(), "the same ca throughout");
        assert!(DevPki::load(&data.path().join("none")).unwrap().is_none());
    }
}
