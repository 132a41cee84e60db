//! The agent's credentials on disk: its id, key, certificate and the CAs it trusts for the
//! collector, kept in `state_dir/tls/` ([`StateDir::tls`]); how they are checked to hold
//! together, saved all at once and loaded back.
//!
//! # Files (`0700` directory, `0600` files)
//! ```text
//! agent.id   the agent id (the certificate's common name), one line
//! agent.key  the private key, PKCS#8 PEM
//! agent.crt  the client certificate, PEM
//! ca.pem     the CAs the agent trusts for the collector: the CA of the enrollment answer,
//!            then the CA the collector was verified by at enrollment (collector.ca_file's
//!            certificates, or the CA matching collector.ca_sha256) when they differ from it
//! ```
//!
//! # Saving
//! The four files change together or not at all: they are written into a fresh
//! `state_dir/.tls.new/` ([`StateDir::tls_staging`]), synced, then that directory is renamed to
//! `tls/`, or swapped with an existing `tls/` in one `renameat2(RENAME_EXCHANGE)` (the old
//! credentials are then deleted). On a file system without the exchange, the files are renamed
//! into `tls/` one by one; a crash in between leaves a key that does not match the certificate,
//! which [`load`] reports.
//!
//! # Loading
//! [`load`] answers `None` when there are no credentials (not enrolled), and an error naming the
//! file when they are partial or do not hold together ([`check`]): the agent never silently
//! re-enrolls with a token that may be spent, and an operator fixes it by deleting `tls/`. A
//! key file readable by others is tightened.
//!
//! # Checking
//! [`check`] is what both an enrollment answer and the files on disk must pass: a well-formed
//! agent id; a key; a certificate naming the agent id, for that key, issued by one of the
//! trusted CAs. It answers which [`Part`] is at fault, so the caller can name the answer's
//! field or the file.

use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{KeyPair, PublicKeyData};

use crate::state_dir::{self, StateDir, PRIVATE_DIR_MODE};

/// The agent id file.
pub const AGENT_ID_FILE: &str = "agent.id";
/// The private key file.
pub const KEY_FILE: &str = "agent.key";
/// The client certificate file.
pub const CERT_FILE: &str = "agent.crt";
/// The trusted CA file.
pub const CA_FILE: &str = "ca.pem";
/// Longest agent id accepted from the collector (it becomes a file's content and a log field).
const MAX_AGENT_ID_LEN: usize = 128;
/// Most bytes read from a credentials, token or CA file.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// What an enrolled agent holds: its id and its TLS material.
#[derive(Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The id the collector gave this agent; the certificate's common name.
    pub agent_id: String,
    /// The client certificate (PEM).
    pub cert_pem: String,
    /// The private key of the certificate (PKCS#8 PEM); never sent anywhere.
    pub key_pem: String,
    /// The CA certificates trusted for the collector (PEM, one or more).
    pub ca_pem: String,
    /// Unix seconds after which the certificate is no longer valid (from the certificate).
    pub not_after: i64,
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolled")
            .field("agent_id", &self.agent_id)
            .field("cert_pem", &format_args!("<{} bytes>", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &format_args!("<{} bytes>", self.ca_pem.len()))
            .field("not_after", &self.not_after)
            .finish()
    }
}

/// Why the credentials could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A credentials file could not be read.
    #[error("{}: cannot read enrollment state: {source}", path.display())]
    ReadState {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// The credentials could not be written.
    #[error("{}: cannot write enrollment state: {source}", path.display())]
    WriteState {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// Some credentials files exist and this one does not.
    #[error("{}: missing: the enrollment state is incomplete (delete the directory to enroll again)", path.display())]
    IncompleteState {
        /// The missing file.
        path: PathBuf,
    },
    /// A credentials file is unreadable as what it should be, or disagrees with the others.
    #[error("{}: corrupt enrollment state: {reason} (delete the directory to enroll again)", path.display())]
    CorruptState {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// One of the four parts of the credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The agent id.
    AgentId,
    /// The private key.
    Key,
    /// The client certificate.
    Cert,
    /// The trusted CAs.
    Ca,
}

impl Part {
    /// Its file in `tls/`.
    pub fn file(self) -> &'static str {
        match self {
            Self::AgentId => AGENT_ID_FILE,
            Self::Key => KEY_FILE,
            Self::Cert => CERT_FILE,
            Self::Ca => CA_FILE,
        }
    }

    /// Its field in the collector's answer.
    pub fn field(self) -> &'static str {
        match self {
            Self::AgentId => "agent_id",
            Self::Key => "private key",
            Self::Cert => "certificate_pem",
            Self::Ca => "ca_pem",
        }
    }
}

/// A part of the credentials that does not hold together with the others, and why.
#[derive(Debug)]
pub struct Mismatch {
    /// The part at fault.
    pub part: Part,
    /// What is wrong with it.
    pub reason: String,
}

impl Mismatch {
    fn new(part: Part, reason: impl Into<String>) -> Self {
        Self { part, reason: reason.into() }
    }
}

/// Checks that the four parts hold together and returns the certificate's expiry (module docs,
/// *Checking*).
pub fn check(agent_id: &str, cert_pem: &str, key_pem: &str, ca_pem: &str) -> Result<i64, Mismatch> {
    if agent_id.is_empty() || agent_id.len() > MAX_AGENT_ID_LEN {
        return Err(Mismatch::new(Part::AgentId, format!("must be 1 to {MAX_AGENT_ID_LEN} characters")));
    }
    if !agent_id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err(Mismatch::new(Part::AgentId, format!("{agent_id:?} has characters other than A-Z a-z 0-9 - _ .")));
    }
    let key = KeyPair::from_pem(key_pem).map_err(|e| Mismatch::new(Part::Key, format!("not a private key: {e}")))?;
    let cert = CertFacts::from_pem(cert_pem).map_err(|e| Mismatch::new(Part::Cert, e))?;
    if cert.common_name.as_deref() != Some(agent_id) {
        let named = cert.common_name.as_deref().unwrap_or("no common name");
        return Err(Mismatch::new(Part::Cert, format!("certificate names {named:?}, not the agent id {agent_id:?}")));
    }
    if cert.public_key != key.subject_public_key_info() {
        return Err(Mismatch::new(Part::Cert, "certificate is not for the agent's key"));
    }
    let cas = CertFacts::all_from_pem(ca_pem).map_err(|e| Mismatch::new(Part::Ca, e))?;
    if !cas.iter().any(|ca| ca.subject == cert.issuer) {
        return Err(Mismatch::new(Part::Cert, "certificate is not issued by the collector's ca"));
    }
    Ok(cert.not_after)
}

/// The CAs to keep in `ca.pem`: the certificates of `first`, then those of `then` not already
/// there (compared by DER, so the same CA written twice differently is kept once); PEM with
/// `\n` line ends. Blocks that are not certificates are left out.
pub fn trusted_cas(first: &str, then: &str) -> String {
    let mut kept: Vec<pem::Pem> = Vec::new();
    let blocks = |text: &str| pem::parse_many(text).unwrap_or_default();
    for block in blocks(first).into_iter().chain(blocks(then)) {
        if block.tag() == "CERTIFICATE" && !kept.iter().any(|k| k.contents() == block.contents()) {
            kept.push(block);
        }
    }
    pem::encode_many_config(&kept, pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF))
}

/// What the agent needs to know of a certificate.
#[derive(Debug)]
pub struct CertFacts {
    /// The subject's first common name.
    common_name: Option<String>,
    /// DER of the subject.
    subject: Vec<u8>,
    /// DER of the issuer.
    issuer: Vec<u8>,
    /// DER SubjectPublicKeyInfo.
    public_key: Vec<u8>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
}

impl CertFacts {
    /// The first certificate of `pem`.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let (_, block) =
            x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| format!("not a pem certificate: {e}"))?;
        Self::from_block(&block)
    }

    /// Every certificate of `pem` (at least one).
    pub fn all_from_pem(pem: &str) -> Result<Vec<Self>, String> {
        let mut all = Vec::new();
        for block in x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes()) {
            let block = block.map_err(|e| format!("not a pem certificate: {e}"))?;
            all.push(Self::from_block(&block)?);
        }
        if all.is_empty() {
            return Err("no certificate".into());
        }
        Ok(all)
    }

    fn from_block(block: &x509_parser::pem::Pem) -> Result<Self, String> {
        if block.label != "CERTIFICATE" {
            return Err(format!("a pem {:?} block, not a certificate", block.label));
        }
        let cert = block.parse_x509().map_err(|e| format!("certificate does not parse: {e}"))?;
        let common_name = cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        Ok(Self {
            common_name,
            subject: cert.subject().as_raw().to_vec(),
            issuer: cert.issuer().as_raw().to_vec(),
            public_key: cert.public_key().raw.to_vec(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }
}

/// Reads a small file (credentials, enrollment token, collector CA), at most 64 KiB.
pub fn read_small(path: &Path) -> io::Result<String> {
    let mut text = String::new();
    fs::File::open(path)?.take(MAX_FILE_BYTES).read_to_string(&mut text)?;
    Ok(text)
}

/// The credentials in `state`, `None` when the agent is not enrolled (module docs, *Loading*).
pub fn load(state: &StateDir) -> Result<Option<Enrolled>, CredentialsError> {
    let dir = state.tls();
    let read = |part: Part| {
        let path = dir.join(part.file());
        match read_small(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CredentialsError::ReadState { path, source }),
        }
    };
    let parts = (read(Part::AgentId)?, read(Part::Key)?, read(Part::Cert)?, read(Part::Ca)?);
    let (agent_id, key_pem, cert_pem, ca_pem) = match parts {
        (None, None, None, None) => return Ok(None),
        (Some(agent_id), Some(key_pem), Some(cert_pem), Some(ca_pem)) => (agent_id, key_pem, cert_pem, ca_pem),
        (agent_id, key, cert, _) => {
            let missing = if agent_id.is_none() {
                Part::AgentId
            } else if key.is_none() {
                Part::Key
            } else if cert.is_none() {
                Part::Cert
            } else {
                Part::Ca
            };
            return Err(CredentialsError::IncompleteState { path: dir.join(missing.file()) });
        }
    };
    let agent_id = agent_id.trim().to_string();
    let not_after = check(&agent_id, &cert_pem, &key_pem, &ca_pem)
        .map_err(|m| CredentialsError::CorruptState { path: dir.join(m.part.file()), reason: m.reason })?;
    state_dir::tighten_file(&dir.join(KEY_FILE));
    Ok(Some(Enrolled { agent_id, cert_pem, key_pem, ca_pem, not_after }))
}

/// Writes `enrolled` as the credentials of `state`, all four files or none (module docs,
/// *Saving*).
pub fn save(state: &StateDir, enrolled: &Enrolled) -> Result<(), CredentialsError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CredentialsError::WriteState { path, source }
    };
    let (dir, staging) = (state.tls(), state.tls_staging());
    if let Err(e) = fs::remove_dir_all(&staging) {
        if e.kind() != io::ErrorKind::NotFound {
            return Err(write_error(&staging)(e));
        }
    }
    state_dir::create_private_dir(&staging).map_err(write_error(&staging))?;
    let agent_id_line = format!("{}\n", enrolled.agent_id);
    for (part, contents) in [
        (Part::AgentId, &agent_id_line),
        (Part::Key, &enrolled.key_pem),
        (Part::Cert, &enrolled.cert_pem),
        (Part::Ca, &enrolled.ca_pem),
    ] {
        let path = staging.join(part.file());
        state_dir::write_new_private(&path, contents.as_bytes()).map_err(write_error(&path))?;
    }
    state_dir::sync_dir(&staging).map_err(write_error(&staging))?;

    match fs::rename(&staging, &dir) {
        Ok(()) => {}
        Err(e) if matches!(e.kind(), io::ErrorKind::DirectoryNotEmpty | io::ErrorKind::AlreadyExists) => {
            replace_existing(&staging, &dir).map_err(write_error(&dir))?;
        }
        Err(e) => return Err(write_error(&dir)(e)),
    }
    state_dir::sync_dir(state.root()).map_err(write_error(state.root()))
}

/// Puts the credentials prepared in `staging` in place of the ones in `dir`: one atomic
/// exchange where the file system has it, else file by file. Leaves `staging` removed.
fn replace_existing(staging: &Path, dir: &Path) -> io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use rustix::io::Errno;
    match renameat_with(CWD, staging, CWD, dir, RenameFlags::EXCHANGE) {
        Ok(()) => {}
        Err(e) if [Errno::INVAL, Errno::NOSYS, Errno::OPNOTSUPP].contains(&e) => {
            tracing::warn!(path = %dir.display(), error = %e, "no atomic directory exchange here; replacing enrollment files one by one");
            for part in [Part::Ca, Part::Key, Part::Cert, Part::AgentId] {
                fs::rename(staging.join(part.file()), dir.join(part.file()))?;
            }
            fs::set_permissions(dir, fs::Permissions::from_mode(PRIVATE_DIR_MODE))?;
            state_dir::sync_dir(dir)?;
        }
        Err(e) => return Err(e.into()),
    }
    // `staging` now holds the old credentials (or nothing): delete it.
    if let Err(e) = fs::remove_dir_all(staging) {
        tracing::warn!(path = %staging.display(), error = %e, "cannot remove the previous enrollment state");
    }
    Ok(())
}

#[cfg(test)]
#[path = "tests/credentials.rs"]
mod tests;
