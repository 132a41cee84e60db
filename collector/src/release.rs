//! The release manager's commands (`aiscout-collector release keygen|sign|publish`) and the
//! published release channel in `data_dir/releases/`.
//!
//! `keygen` and `sign` run offline, on the release manager's machine, with no collector
//! configuration: the signing key never has to be where the collector runs. `publish` checks
//! what it is given against the configured public keys (`[releases] public_keys`) before it
//! stores it, so an operator cannot publish a document the agents would refuse:
//!
//! ```text
//! data_dir/releases/<channel>.json      the signed envelope served to agents
//! data_dir/releases/blobs/<sha256>      the archives it names, by digest
//! ```
//! The format and its verification are [`aiscout_proto::release`]'s.

use std::io::Read;
use std::path::{Path, PathBuf};

use aiscout_proto::release::{self, PublicKey, Release, ReleaseMetadata, SigningKey};
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Largest archive published (the agent is a few MB; this bounds a mistake, not an attack).
pub const MAX_ARCHIVE_BYTES: u64 = 512 * 1024 * 1024;

/// Errors of the release commands.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseCommandError {
    /// A file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The key file is not a PEM PKCS#8 ed25519 key.
    #[error("{path}: not an ed25519 private key (PEM \"PRIVATE KEY\" from `release keygen`): {message}")]
    Key {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The document is refused.
    #[error("{path}: {source}")]
    Refused {
        /// The file.
        path: String,
        /// Why.
        source: release::ReleaseError,
    },
    /// Something else is wrong with what was asked.
    #[error("{0}")]
    Invalid(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReleaseCommandError + '_ {
    move |source| ReleaseCommandError::Io { path: path.display().to_string(), source }
}

/// Writes `contents` to the new file `path` (never over an existing one) with `mode`.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), ReleaseCommandError> {
    crate::write_new_file(path, contents, mode).map_err(io(path))
}

const PEM_LABEL: &str = "PRIVATE KEY";

/// `release keygen`: a new signing key written to `out` (mode 0600, never over an existing
/// file); returns its public key, for the agents' `update.public_keys`.
pub fn keygen(out: &Path) -> Result<PublicKey, ReleaseCommandError> {
    let (pkcs8, key) = SigningKey::generate().map_err(|e| ReleaseCommandError::Invalid(e.to_string()))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&pkcs8);
    let mut pem = format!("-----BEGIN {PEM_LABEL}-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    write_new(out, pem.as_bytes(), 0o600)?;
    Ok(key.public_key())
}

/// Reads the signing key at `path`.
pub fn read_key(path: &Path) -> Result<SigningKey, ReleaseCommandError> {
    let bad = |message: &str| ReleaseCommandError::Key { path: path.display().to_string(), message: message.into() };
    let text = read_bounded(path, 64 * 1024)?;
    let text = String::from_utf8(text).map_err(|_| bad("not text"))?;
    let body: String = text
        .lines()
        .skip_while(|l| l.trim() != format!("-----BEGIN {PEM_LABEL}-----"))
        .skip(1)
        .take_while(|l| l.trim() != format!("-----END {PEM_LABEL}-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body.trim()).map_err(|_| bad("not base64 PEM"))?;
    SigningKey::from_pkcs8(&der).map_err(|e| bad(&e.to_string()))
}

/// Reads at most `limit` bytes of `path`, refusing a larger file.
fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReleaseCommandError> {
    let file = std::fs::File::open(path).map_err(io(path))?;
    let mut out = Vec::new();
    file.take(limit + 1).read_to_end(&mut out).map_err(io(path))?;
    if out.len() as u64 > limit {
        return Err(ReleaseCommandError::Invalid(format!("{}: larger than {limit} bytes", path.display())));
    }
    Ok(out)
}

/// Hex SHA-256 and size of the file at `path` (at most [`MAX_ARCHIVE_BYTES`]).
pub fn digest_file(path: &Path) -> Result<(String, u64), ReleaseCommandError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?.take(MAX_ARCHIVE_BYTES + 1);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(buf.get(..n).unwrap_or_default());
        size += n as u64;
    }
    if size > MAX_ARCHIVE_BYTES {
        return Err(ReleaseCommandError::Invalid(format!("{}: larger than {MAX_ARCHIVE_BYTES} bytes", path.display())));
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// What `release sign` is asked to sign.
#[derive(Debug, Clone)]
pub struct SignRequest {
    /// The channel.
    pub channel: String,
    /// The document's sequence number.
    pub sequence: u64,
    /// Seconds since the epoch now.
    pub now: u64,
    /// How long the document is valid.
    pub valid_for_secs: u64,
    /// The lowest version allowed to run.
    pub min_version: String,
    /// The releases: each archive with its version, target, rollout and cohorts.
    pub releases: Vec<(PathBuf, Release)>,
}

/// `release sign`: the envelope for `request`, signed with `key`; each release's digest and
/// size are read from its archive.
pub fn sign(key: &SigningKey, request: &SignRequest) -> Result<Vec<u8>, ReleaseCommandError> {
    let mut releases = Vec::new();
    for (archive, r) in &request.releases {
        let (sha256, size) = digest_file(archive)?;
        releases.push(Release { sha256, size, ..r.clone() });
    }
    let metadata = ReleaseMetadata {
        channel: request.channel.clone(),
        sequence: request.sequence,
        issued_at: request.now,
        expires_at: request.now.saturating_add(request.valid_for_secs),
        min_version: request.min_version.clone(),
        releases,
    };
    release::check_fields(&metadata).map_err(|e| ReleaseCommandError::Invalid(e.to_string()))?;
    let envelope = key.sign(&metadata).map_err(|e| ReleaseCommandError::Invalid(e.to_string()))?;
    serde_json::to_vec_pretty(&envelope).map_err(|e| ReleaseCommandError::Invalid(e.to_string()))
}

/// `release publish`: checks `envelope` (signed by one of `trusted`, not older than what is
/// published for its channel, not expired at `now`) and that `archives` hold every release it
/// names, then stores them in `releases_dir`. Returns the channel and sequence published.
pub fn publish(
    releases_dir: &Path,
    envelope: &Path,
    archives: &[PathBuf],
    trusted: &[PublicKey],
    now: u64,
) -> Result<(String, u64), ReleaseCommandError> {
    let bytes = read_bounded(envelope, release::MAX_ENVELOPE_BYTES as u64)?;
    let refused = |source| ReleaseCommandError::Refused { path: envelope.display().to_string(), source };
    // The channel is read from the document itself, then the document verified for it.
    let channel = peek_channel(&bytes, trusted, now).map_err(refused)?;
    let current = releases_dir.join(format!("{channel}.json"));
    let last = match std::fs::read(&current) {
        Ok(old) => release::verify(&old, trusted, &channel, None, 0).ok().map(|v| v.accepted),
        Err(_) => None,
    };
    let verified = release::verify(&bytes, trusted, &channel, last.as_ref(), now).map_err(refused)?;
    let mut digests = std::collections::HashMap::new();
    for a in archives {
        let (sha, size) = digest_file(a)?;
        digests.insert(sha, (a.clone(), size));
    }
    let blobs = releases_dir.join("blobs");
    crate::create_private_dir(&blobs).map_err(io(&blobs))?;
    for r in &verified.metadata.releases {
        let Some((path, size)) = digests.get(&r.sha256) else {
            return Err(ReleaseCommandError::Invalid(format!(
                "release {} ({}) names archive sha256 {}, which no --archive given has",
                r.version, r.target, r.sha256
            )));
        };
        if *size != r.size {
            return Err(ReleaseCommandError::Invalid(format!("release {}: size {} is not {size}", r.version, r.size)));
        }
        let blob = blobs.join(&r.sha256);
        if !blob.exists() {
            let tmp = blobs.join(format!(".{}.tmp", r.sha256));
            let _ = std::fs::remove_file(&tmp);
            std::fs::copy(path, &tmp).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &blob).map_err(io(&blob))?;
        }
    }
    let tmp = releases_dir.join(format!(".{channel}.json.tmp"));
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, &bytes, 0o600)?;
    std::fs::rename(&tmp, &current).map_err(io(&current))?;
    Ok((channel, verified.metadata.sequence))
}

/// The channel of a signed document (verified for that channel, no replay check).
fn peek_channel(bytes: &[u8], trusted: &[PublicKey], now: u64) -> Result<String, release::ReleaseError> {
    match release::verify(bytes, trusted, "", None, now) {
        Err(release::ReleaseError::Channel { found, .. }) => Ok(found),
        Err(e) => Err(e),
        Ok(v) => Ok(v.metadata.channel),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(version: &str) -> Release {
        Release {
            version: version.into(),
            target: "x86_64-unknown-linux-gnu".into(),
            sha256: String::new(),
            size: 0,
            rollout_percent: 100,
            cohorts: vec![],
        }
    }

    #[test]
    fn keygen_sign_and_publish_round_trip_and_refuse_what_agents_would() {
        let dir = tempfile::tempdir().unwrap();
        let key_path = dir.path().join("release.key");
        let public = keygen(&key_path).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(keygen(&key_path).is_err(), "an existing key is never overwritten");
        let key = read_key(&key_path).unwrap();
        assert_eq!(key.public_key(), public);

        let archive = dir.path().join("agent-0.2.0.tar.gz");
        std::fs::write(&archive, b"archive bytes").unwrap();
        let request = |sequence| SignRequest {
            channel: "stable".into(),
            sequence,
            now: 1000,
            valid_for_secs: 3600,
            min_version: "0.1.0".into(),
            releases: vec![(archive.clone(), release("0.2.0"))],
        };
        let envelope = dir.path().join("stable-2.json");
        std::fs::write(&envelope, sign(&key, &request(2)).unwrap()).unwrap();
        let releases = dir.path().join("releases");
        std::fs::create_dir(&releases).unwrap();
        let trusted = [public.clone()];
        assert_eq!(
            publish(&releases, &envelope, std::slice::from_ref(&archive), &trusted, 1500).unwrap(),
            ("stable".into(), 2)
        );
        let (sha, _) = digest_file(&archive).unwrap();
        assert_eq!(std::fs::read(releases.join("blobs").join(&sha)).unwrap(), b"archive bytes");

        // An older sequence, another key, a missing archive, an expired document: refused.
        let old = dir.path().join("stable-1.json");
        std::fs::write(&old, sign(&key, &request(1)).unwrap()).unwrap();
        let e = publish(&releases, &old, std::slice::from_ref(&archive), &trusted, 1500).unwrap_err().to_string();
        assert!(e.contains("replay"), "{e}");
        let other = dir.path().join("other.key");
        keygen(&other).unwrap();
        let foreign = dir.path().join("foreign.json");
        std::fs::write(&foreign, sign(&read_key(&other).unwrap(), &request(3)).unwrap()).unwrap();
        let e = publish(&releases, &foreign, std::slice::from_ref(&archive), &trusted, 1500).unwrap_err().to_string();
        assert!(e.contains("not signed by a trusted key"), "{e}");
        let next = dir.path().join("stable-3.json");
        std::fs::write(&next, sign(&key, &request(3)).unwrap()).unwrap();
        let e = publish(&releases, &next, &[], &trusted, 1500).unwrap_err().to_string();
        assert!(e.contains("no --archive"), "{e}");
        let e = publish(&releases, &next, std::slice::from_ref(&archive), &trusted, 5000).unwrap_err().to_string();
        assert!(e.contains("expired"), "{e}");
        assert_eq!(publish(&releases, &next, &[archive], &trusted, 1500).unwrap(), ("stable".into(), 3));

        let bad = key_path.with_extension("bad");
        std::fs::write(&bad, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        assert!(read_key(&bad).unwrap_err().to_string().contains("not an ed25519"));
    }
}
