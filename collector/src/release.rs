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

/// When the collector pauses a cohort's rollout (docs/rollout.md, *Rollout pause*): a release
/// of the channel's current metadata offered to the cohort that at least `min_failures` of its
/// agents rolled back, and more than `failure_ratio` of those that tried it (run it or rolled it
/// back). Agents of a paused cohort are served no envelope and told why, until a new document
/// is published (a new version starts a new tally).
///
/// The counts are the agents' own reports: one row per agent, revoked agents left out, and a
/// rollback counts only from an agent that downloaded the release's archive; one hostile agent
/// adds at most one failure (hence `min_failures`).
#[derive(Debug, Clone)]
pub struct RolloutPause {
    /// The release keys, to read the published document.
    pub keys: Vec<PublicKey>,
    /// Share of failures past which a cohort pauses.
    pub failure_ratio: f64,
    /// Fewest failures that pause a cohort.
    pub min_failures: u64,
}

impl Default for RolloutPause {
    fn default() -> Self {
        Self { keys: Vec::new(), failure_ratio: 0.2, min_failures: 2 }
    }
}

impl RolloutPause {
    /// Why `cohort` of `channel` is paused, given the published `envelope`; `None` when it is not.
    pub fn paused(
        &self,
        store: &dyn crate::store::Store,
        channel: &str,
        cohort: &str,
        envelope: &[u8],
    ) -> Result<Option<String>, crate::store::StoreError> {
        if envelope.is_empty() {
            return Ok(None);
        }
        // Checked at publish; the expiry does not matter here (agents refuse an expired one).
        let Ok(verified) = release::verify(envelope, &self.keys, channel, None, 0) else { return Ok(None) };
        for r in &verified.metadata.releases {
            if !r.cohorts.is_empty() && !r.cohorts.iter().any(|c| c == cohort) {
                continue;
            }
            let tally = store.rollout_tally(channel, cohort, &r.version, &r.sha256)?;
            let tried = tally.running.saturating_add(tally.rolled_back);
            #[allow(clippy::cast_precision_loss)] // agent counts, far below 2^52
            let ratio = if tried == 0 { 0.0 } else { tally.rolled_back as f64 / tried as f64 };
            if tally.rolled_back >= self.min_failures && ratio > self.failure_ratio {
                return Ok(Some(format!(
                    "rollout of {} to cohort {cohort} paused: {} of {tried} agents rolled it back ({:.0}% > {:.0}%)",
                    r.version,
                    tally.rolled_back,
                    ratio * 100.0,
                    self.failure_ratio * 100.0
                )));
            }
        }
        Ok(None)
    }
}

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

/// The release manager's key, as both signatures need it: the metadata's (DSSE, ring) and the
/// archives' (zipsign, ed25519-dalek), one ed25519 key.
pub struct ReleaseKey {
    /// Signs the metadata.
    pub metadata: SigningKey,
    /// Signs the archives.
    pub archive: zipsign_api::SigningKey,
}

impl std::fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReleaseKey({})", self.public_key().to_hex())
    }
}

impl ReleaseKey {
    /// The public half, for the agents' `update.public_keys`.
    pub fn public_key(&self) -> PublicKey {
        self.metadata.public_key()
    }
}

/// The 32-byte seed of an ed25519 PKCS#8 document (v1, or v2 with the public key as ring
/// writes it): the bytes after the fixed prefix of RFC 8410's `OneAsymmetricKey`.
fn ed25519_seed(der: &[u8]) -> Option<[u8; 32]> {
    const TAIL: [u8; 14] = [0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    let (outer, rest) = der.split_at_checked(2)?;
    if outer.first() != Some(&0x30) || usize::from(*outer.get(1)?) != rest.len() {
        return None;
    }
    let (version_and_algorithm, rest) = rest.split_at_checked(TAIL.len())?;
    // Version 0 (v1) or 1 (v2): the third byte.
    let mut expected = TAIL;
    if let (Some(v), Some(e)) = (version_and_algorithm.get(2), expected.get_mut(2)) {
        if *v == 1 {
            *e = 1;
        }
    }
    if version_and_algorithm != expected {
        return None;
    }
    rest.get(..32)?.try_into().ok()
}

/// Reads the signing key at `path`.
pub fn read_key(path: &Path) -> Result<ReleaseKey, ReleaseCommandError> {
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
    let metadata = SigningKey::from_pkcs8(&der).map_err(|e| bad(&e.to_string()))?;
    let seed = ed25519_seed(&der).ok_or_else(|| bad("no ed25519 seed in the PKCS#8 document"))?;
    let archive = zipsign_api::SigningKey::from_bytes(&seed);
    if archive.verifying_key().to_bytes() != metadata.public_key().to_bytes() {
        return Err(bad("its two readings disagree"));
    }
    Ok(ReleaseKey { metadata, archive })
}

/// `release sign`, first half: a copy of the gzip-compressed tar `input` with the zipsign
/// signature of the release `version` for `target` (in the context of its name,
/// [`release::archive_name`]), written to `out` (replaced whole). Agents verify it before they
/// extract anything; the metadata then signs this copy's digest.
pub fn sign_archive(
    key: &ReleaseKey,
    input: &Path,
    version: &str,
    target: &str,
    out: &Path,
) -> Result<(), ReleaseCommandError> {
    let name = release::archive_name(version, target);
    let mut from = std::fs::File::open(input).map_err(io(input))?;
    let size = from.metadata().map_err(io(input))?.len();
    if size > MAX_ARCHIVE_BYTES {
        return Err(ReleaseCommandError::Invalid(format!(
            "{}: larger than {MAX_ARCHIVE_BYTES} bytes",
            input.display()
        )));
    }
    let temp = out.with_extension("signing");
    let mut to = std::fs::File::create(&temp).map_err(io(&temp))?;
    zipsign_api::sign::copy_and_sign_tar(&mut from, &mut to, std::slice::from_ref(&key.archive), Some(name.as_bytes()))
        .map_err(|e| ReleaseCommandError::Invalid(format!("{}: cannot sign: {e}", input.display())))?;
    to.sync_all().map_err(io(&temp))?;
    std::fs::rename(&temp, out).map_err(io(out))
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
pub fn sign(key: &ReleaseKey, request: &SignRequest) -> Result<Vec<u8>, ReleaseCommandError> {
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
    let envelope = key.metadata.sign(&metadata).map_err(|e| ReleaseCommandError::Invalid(e.to_string()))?;
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
