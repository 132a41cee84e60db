//! The release channel's signed metadata: what the collector serves and the agent must verify
//! before it updates itself.
//!
//! The release manager signs offline with an ed25519 key (`aiscout-collector release keygen`,
//! `release sign`); the collector only stores and serves what was signed (`release publish`),
//! so a compromised collector can withhold an update but never make an agent run a binary the
//! release manager did not sign. Agents are configured with the public key(s).
//!
//! # Format
//! A DSSE envelope (Dead Simple Signing Envelope, as in-toto and Sigstore use): the signed
//! bytes travel as they were signed, so there is no JSON canonicalisation to get wrong.
//! ```text
//! {"payloadType": "application/vnd.aiscout.release-metadata+json",
//!  "payload": base64(metadata JSON),
//!  "signatures": [{"keyid": hex(sha256(public key))[..16], "sig": base64(ed25519(PAE))}]}
//! PAE = "DSSEv1" SP len(payloadType) SP payloadType SP len(payload) SP payload
//! ```
//! The metadata ([`ReleaseMetadata`]): the channel, a sequence number that only grows, an
//! expiry, the lowest version allowed to run, and the releases (version, target, SHA-256 and
//! size of the archive, rollout percentage and cohorts).
//!
//! # Verification ([`verify`]), in order; the first failure refuses the whole document
//! 1. the envelope is at most [`MAX_ENVELOPE_BYTES`], JSON, of [`PAYLOAD_TYPE`];
//! 2. at least one signature by a trusted key verifies over the PAE;
//! 3. the metadata parses and every field is within bounds (versions are semver, digests are
//!    64 hex digits, percentages at most 100, at most [`MAX_RELEASES`] releases);
//! 4. the channel is the one the agent follows;
//! 5. the sequence is not older than the last one accepted (a replay of old metadata would
//!    roll agents back to a vulnerable release); the same sequence is accepted only with the
//!    same payload;
//! 6. the metadata has not expired: expired metadata stops updates (an attacker who can only
//!    replay cannot freeze agents on old releases forever unnoticed) but never stops the agent.

use std::fmt;

use base64::Engine as _;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// The DSSE payload type of release metadata.
pub const PAYLOAD_TYPE: &str = "application/vnd.aiscout.release-metadata+json";
/// Largest envelope accepted.
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;
/// Most releases in one document.
pub const MAX_RELEASES: usize = 256;
/// Most signatures looked at in one envelope.
const MAX_SIGNATURES: usize = 16;
/// Longest channel, target or cohort name.
const MAX_NAME: usize = 64;
/// Most cohorts per release.
const MAX_COHORTS: usize = 32;

/// A signed document as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// [`PAYLOAD_TYPE`].
    pub payload_type: String,
    /// The signed bytes, base64.
    pub payload: String,
    /// The signatures over the PAE of the payload.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One signature of an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Which key signed: [`PublicKey::key_id`].
    pub keyid: String,
    /// The ed25519 signature, base64.
    pub sig: String,
}

/// What a release channel offers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseMetadata {
    /// The channel (`stable`, `canary`): an agent follows one.
    pub channel: String,
    /// Grows with every document the release manager signs for the channel.
    pub sequence: u64,
    /// When it was signed (seconds since the epoch).
    pub issued_at: u64,
    /// When it stops being valid (seconds since the epoch).
    pub expires_at: u64,
    /// Agents older than this update whatever their rollout bucket (a security fix).
    pub min_version: String,
    /// The releases offered.
    pub releases: Vec<Release>,
}

/// One release of the agent for one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Its version (semver).
    pub version: String,
    /// The Rust target triple it runs on (`x86_64-unknown-linux-gnu`).
    pub target: String,
    /// Hex SHA-256 of the archive.
    pub sha256: String,
    /// Size of the archive in bytes.
    pub size: u64,
    /// Percentage of the agents (of the cohorts) that take it: 0 to 100.
    pub rollout_percent: u8,
    /// Cohorts it is offered to; empty means every agent.
    #[serde(default)]
    pub cohorts: Vec<String>,
}

/// Why a document was refused (module docs, *Verification*).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// Step 1.
    #[error("release metadata is not a signed envelope: {0}")]
    Envelope(String),
    /// Step 2.
    #[error("release metadata is not signed by a trusted key")]
    Unsigned,
    /// Step 3.
    #[error("release metadata is malformed: {0}")]
    Malformed(String),
    /// Step 4.
    #[error("release metadata is for channel {found}, not {expected}")]
    Channel {
        /// The channel followed.
        expected: String,
        /// The channel of the document.
        found: String,
    },
    /// Step 5.
    #[error("release metadata sequence {found} is older than {last}, the last accepted: a replay")]
    Replay {
        /// The last sequence accepted.
        last: u64,
        /// The document's.
        found: u64,
    },
    /// Step 5, same sequence, other content.
    #[error("release metadata sequence {0} was accepted before with other content")]
    SequenceReused(u64),
    /// Step 6.
    #[error("release metadata expired at {expires_at} (now {now}): no update until newer metadata is signed")]
    Expired {
        /// When it expired.
        expires_at: u64,
        /// Now.
        now: u64,
    },
    /// A key that cannot be used.
    #[error("invalid release key: {0}")]
    Key(String),
}

/// An ed25519 public key that signs releases.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_hex())
    }
}

impl PublicKey {
    /// Parses 64 hex digits.
    pub fn from_hex(text: &str) -> Result<Self, ReleaseError> {
        let bytes = hex::decode(text.trim()).map_err(|e| ReleaseError::Key(format!("not hex: {e}")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| ReleaseError::Key("not 32 bytes".into()))?;
        Ok(Self(key))
    }

    /// The key as 64 hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw key (what zipsign verifies archive signatures with).
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key id signatures name: the first 16 hex digits of the key's SHA-256.
    pub fn key_id(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        hex::encode(digest.as_ref()).chars().take(16).collect()
    }
}

/// An ed25519 signing key (the release manager's, kept offline).
pub struct SigningKey(Ed25519KeyPair);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key().to_hex())
    }
}

impl SigningKey {
    /// A new key: its PKCS#8 document (to store privately) and the key.
    pub fn generate() -> Result<(Vec<u8>, Self), ReleaseError> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|e| ReleaseError::Key(e.to_string()))?;
        let key = Self::from_pkcs8(pkcs8.as_ref())?;
        Ok((pkcs8.as_ref().to_vec(), key))
    }

    /// The key of a PKCS#8 document.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, ReleaseError> {
        Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map(Self).map_err(|e| ReleaseError::Key(e.to_string()))
    }

    /// Its public key.
    pub fn public_key(&self) -> PublicKey {
        let mut key = [0u8; 32];
        key.copy_from_slice(self.0.public_key().as_ref());
        PublicKey(key)
    }

    /// Signs `metadata` into an envelope.
    pub fn sign(&self, metadata: &ReleaseMetadata) -> Result<Envelope, ReleaseError> {
        let payload = serde_json::to_vec(metadata).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
        let sig = self.0.sign(&pae(PAYLOAD_TYPE, &payload));
        let b64 = base64::engine::general_purpose::STANDARD;
        Ok(Envelope {
            payload_type: PAYLOAD_TYPE.into(),
            payload: b64.encode(&payload),
            signatures: vec![EnvelopeSignature { keyid: self.public_key().key_id(), sig: b64.encode(sig.as_ref()) }],
        })
    }
}

/// The DSSE pre-authentication encoding.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {payload_type} {} ", payload_type.len(), payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

/// What the verifier knows from before: the last document it accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accepted {
    /// Its sequence.
    pub sequence: u64,
    /// Hex SHA-256 of its payload.
    pub payload_sha256: String,
}

/// A verified document and what the verifier now remembers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The metadata.
    pub metadata: ReleaseMetadata,
    /// To keep for the next verification.
    pub accepted: Accepted,
}

/// Verifies `envelope` (module docs, *Verification*): signed by one of `trusted`, for
/// `channel`, not older than `last` (when something was accepted before), not expired at `now`
/// (seconds since the epoch).
pub fn verify(
    envelope: &[u8],
    trusted: &[PublicKey],
    channel: &str,
    last: Option<&Accepted>,
    now: u64,
) -> Result<Verified, ReleaseError> {
    if envelope.len() > MAX_ENVELOPE_BYTES {
        return Err(ReleaseError::Envelope(format!("{} bytes, more than {MAX_ENVELOPE_BYTES}", envelope.len())));
    }
    let env: Envelope = serde_json::from_slice(envelope).map_err(|e| ReleaseError::Envelope(e.to_string()))?;
    if env.payload_type != PAYLOAD_TYPE {
        return Err(ReleaseError::Envelope(format!("payload type {:?}", env.payload_type)));
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(env.payload.as_bytes())
        .map_err(|e| ReleaseError::Envelope(format!("payload is not base64: {e}")))?;
    let message = pae(&env.payload_type, &payload);
    let signed = env.signatures.iter().take(MAX_SIGNATURES).any(|s| {
        let Some(key) = trusted.iter().find(|k| k.key_id() == s.keyid) else { return false };
        let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(s.sig.as_bytes()) else { return false };
        UnparsedPublicKey::new(&signature::ED25519, &key.0).verify(&message, &sig).is_ok()
    });
    if !signed {
        return Err(ReleaseError::Unsigned);
    }
    let metadata: ReleaseMetadata =
        serde_json::from_slice(&payload).map_err(|e| ReleaseError::Malformed(e.to_string()))?;
    check_fields(&metadata)?;
    if metadata.channel != channel {
        return Err(ReleaseError::Channel { expected: channel.into(), found: metadata.channel });
    }
    let payload_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &payload).as_ref());
    if let Some(last) = last {
        if metadata.sequence < last.sequence {
            return Err(ReleaseError::Replay { last: last.sequence, found: metadata.sequence });
        }
        if metadata.sequence == last.sequence && payload_sha256 != last.payload_sha256 {
            return Err(ReleaseError::SequenceReused(metadata.sequence));
        }
    }
    if now >= metadata.expires_at {
        return Err(ReleaseError::Expired { expires_at: metadata.expires_at, now });
    }
    let accepted = Accepted { sequence: metadata.sequence, payload_sha256 };
    Ok(Verified { metadata, accepted })
}

/// The file name of a release's archive as agents fetch it, `aiscout-agent-<version>-<target>.tar.gz`:
/// the context its zipsign signature is made in (`aiscout-collector release sign`), so that a
/// signature made for one release does not verify as another's.
pub fn archive_name(version: &str, target: &str) -> String {
    format!("aiscout-agent-{version}-{target}.tar.gz")
}

/// Whether `s` is a valid channel, target or cohort name: 1 to 64 ASCII letters, digits, `-`,
/// `_` or `.` (so also a safe single path component for a channel's file).
pub fn is_valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_NAME && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// Step 3: every field within bounds.
pub fn check_fields(m: &ReleaseMetadata) -> Result<(), ReleaseError> {
    let bad = |what: String| Err(ReleaseError::Malformed(what));
    if !is_valid_name(&m.channel) {
        return bad(format!("channel {:?}", m.channel));
    }
    if semver::Version::parse(&m.min_version).is_err() {
        return bad(format!("min_version {:?} is not semver", m.min_version));
    }
    if m.releases.len() > MAX_RELEASES {
        return bad(format!("{} releases, more than {MAX_RELEASES}", m.releases.len()));
    }
    if m.expires_at <= m.issued_at {
        return bad("expires_at is not after issued_at".into());
    }
    for r in &m.releases {
        if semver::Version::parse(&r.version).is_err() {
            return bad(format!("release version {:?} is not semver", r.version));
        }
        if !is_valid_name(&r.target) {
            return bad(format!("release target {:?}", r.target));
        }
        if r.sha256.len() != 64 || !r.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return bad(format!("release {} sha256 is not 64 hex digits", r.version));
        }
        if r.rollout_percent > 100 {
            return bad(format!("release {} rollout_percent {} is over 100", r.version, r.rollout_percent));
        }
        if r.cohorts.len() > MAX_COHORTS || !r.cohorts.iter().all(|c| is_valid_name(c)) {
            return bad(format!("release {} cohorts", r.version));
        }
    }
    Ok(())
}

/// Where an agent stands against verified metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing newer for this agent (or not its turn yet).
    Stay,
    /// Update to this release.
    Update(Release),
}

/// The rollout bucket of `agent_id` for `version`: 0 to 99, stable for the pair, independent
/// between versions (so the same agents are not always first).
pub fn bucket(agent_id: &str, version: &str) -> u8 {
    let digest = ring::digest::digest(&ring::digest::SHA256, format!("{agent_id}\n{version}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(digest.as_ref().get(..8).unwrap_or(&[0; 8]));
    (u64::from_be_bytes(first) % 100) as u8
}

/// The release the agent `agent_id` (of `cohort`, running `current` on `target`) takes from
/// `metadata`: the newest release for its target and cohort newer than `current` whose rollout
/// includes its bucket; below `min_version`, the newest such release whatever the bucket.
pub fn decide(metadata: &ReleaseMetadata, current: &str, target: &str, cohort: &str, agent_id: &str) -> Decision {
    let Ok(current) = semver::Version::parse(current) else { return Decision::Stay };
    let below_min = semver::Version::parse(&metadata.min_version).is_ok_and(|min| current < min);
    let mut best: Option<(semver::Version, &Release)> = None;
    for r in &metadata.releases {
        let Ok(v) = semver::Version::parse(&r.version) else { continue };
        let offered = r.target == target && (r.cohorts.is_empty() || r.cohorts.iter().any(|c| c == cohort));
        let its_turn = below_min || bucket(agent_id, &r.version) < r.rollout_percent;
        if offered && its_turn && v > current && best.as_ref().is_none_or(|(b, _)| v > *b) {
            best = Some((v, r));
        }
    }
    match best {
        Some((_, r)) => Decision::Update(r.clone()),
        None => Decision::Stay,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(sequence: u64) -> ReleaseMetadata {
        ReleaseMetadata {
            channel: "stable".into(),
            sequence,
            issued_at: 1000,
            expires_at: 2000,
            min_version: "0.1.0".into(),
            releases: vec![Release {
                version: "0.2.0".into(),
                target: "x86_64-unknown-linux-gnu".into(),
                sha256: "ab".repeat(32),
                size: 10,
                rollout_percent: 100,
                cohorts: vec![],
            }],
        }
    }

    fn signed(key: &SigningKey, m: &ReleaseMetadata) -> Vec<u8> {
        serde_json::to_vec(&key.sign(m).unwrap()).unwrap()
    }

    #[test]
    fn a_signed_document_verifies_and_each_step_refuses_what_it_must() {
        let (_, key) = SigningKey::generate().unwrap();
        let (_, other) = SigningKey::generate().unwrap();
        let trusted = [key.public_key()];
        let doc = signed(&key, &metadata(5));
        let ok = verify(&doc, &trusted, "stable", None, 1500).unwrap();
        assert_eq!(ok.metadata, metadata(5));
        assert_eq!(ok.accepted.sequence, 5);

        // Wrong key, no key, tampered payload.
        assert_eq!(verify(&signed(&other, &metadata(5)), &trusted, "stable", None, 1500), Err(ReleaseError::Unsigned));
        assert_eq!(verify(&doc, &[], "stable", None, 1500), Err(ReleaseError::Unsigned));
        let mut env: Envelope = serde_json::from_slice(&doc).unwrap();
        let mut evil = metadata(5);
        evil.releases[0].sha256 = "cd".repeat(32);
        env.payload = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&evil).unwrap());
        assert_eq!(
            verify(&serde_json::to_vec(&env).unwrap(), &trusted, "stable", None, 1500),
            Err(ReleaseError::Unsigned)
        );
        // Unsigned envelope, other payload type.
        env.signatures.clear();
        assert_eq!(
            verify(&serde_json::to_vec(&env).unwrap(), &trusted, "stable", None, 1500),
            Err(ReleaseError::Unsigned)
        );
        let mut typed: Envelope = serde_json::from_slice(&doc).unwrap();
        typed.payload_type = "text/plain".into();
        assert!(matches!(
            verify(&serde_json::to_vec(&typed).unwrap(), &trusted, "stable", None, 1500),
            Err(ReleaseError::Envelope(_))
        ));

        // Channel, replay, reuse, expiry.
        assert!(matches!(verify(&doc, &trusted, "canary", None, 1500), Err(ReleaseError::Channel { .. })));
        let newer = verify(&signed(&key, &metadata(6)), &trusted, "stable", None, 1500).unwrap().accepted;
        assert_eq!(
            verify(&doc, &trusted, "stable", Some(&newer), 1500),
            Err(ReleaseError::Replay { last: 6, found: 5 })
        );
        assert!(verify(&doc, &trusted, "stable", Some(&ok.accepted), 1500).is_ok(), "the same document again");
        let mut same_seq = metadata(5);
        same_seq.min_version = "0.2.0".into();
        assert_eq!(
            verify(&signed(&key, &same_seq), &trusted, "stable", Some(&ok.accepted), 1500),
            Err(ReleaseError::SequenceReused(5))
        );
        assert_eq!(
            verify(&doc, &trusted, "stable", None, 2000),
            Err(ReleaseError::Expired { expires_at: 2000, now: 2000 })
        );

        // Bounds.
        let huge = vec![b' '; MAX_ENVELOPE_BYTES + 1];
        assert!(matches!(verify(&huge, &trusted, "stable", None, 1500), Err(ReleaseError::Envelope(_))));
        let mut bad = metadata(7);
        bad.releases[0].rollout_percent = 101;
        assert!(matches!(verify(&signed(&key, &bad), &trusted, "stable", None, 1500), Err(ReleaseError::Malformed(_))));
        bad.releases[0].rollout_percent = 10;
        bad.releases[0].sha256 = "zz".into();
        assert!(matches!(verify(&signed(&key, &bad), &trusted, "stable", None, 1500), Err(ReleaseError::Malformed(_))));
    }

    #[test]
    fn keys_round_trip_through_pkcs8_and_hex() {
        let (pkcs8, key) = SigningKey::generate().unwrap();
        let again = SigningKey::from_pkcs8(&pkcs8).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        assert_eq!(PublicKey::from_hex(&key.public_key().to_hex()).unwrap(), key.public_key());
        assert!(PublicKey::from_hex("abcd").is_err());
        assert!(SigningKey::from_pkcs8(b"not a key").is_err());
    }

    #[test]
    fn decisions_follow_version_target_cohort_bucket_and_minimum() {
        let mut m = metadata(1);
        let target = "x86_64-unknown-linux-gnu";
        assert_eq!(decide(&m, "0.1.0", target, "default", "a"), Decision::Update(m.releases[0].clone()));
        assert_eq!(decide(&m, "0.2.0", target, "default", "a"), Decision::Stay);
        assert_eq!(decide(&m, "0.1.0", "aarch64-unknown-linux-gnu", "default", "a"), Decision::Stay);
        m.releases[0].cohorts = vec!["canary".into()];
        assert_eq!(decide(&m, "0.1.0", target, "default", "a"), Decision::Stay);
        assert!(matches!(decide(&m, "0.1.0", target, "canary", "a"), Decision::Update(_)));
        m.releases[0].cohorts.clear();
        m.releases[0].rollout_percent = 0;
        assert_eq!(decide(&m, "0.1.0", target, "default", "a"), Decision::Stay);
        m.min_version = "0.2.0".into();
        assert!(matches!(decide(&m, "0.1.0", target, "default", "a"), Decision::Update(_)), "below the minimum");
    }

    #[test]
    fn a_ten_percent_rollout_takes_about_ten_percent() {
        let taken = (0..10_000).filter(|i| bucket(&format!("agent-{i}"), "0.2.0") < 10).count();
        assert!((900..1100).contains(&taken), "{taken}");
        let again = (0..10_000).filter(|i| bucket(&format!("agent-{i}"), "0.3.0") < 10).count();
        assert!((900..1100).contains(&again), "{again}");
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_bytes_are_refused_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let (_, key) = SigningKey::generate().unwrap();
            prop_assert!(verify(&bytes, &[key.public_key()], "stable", None, 1500).is_err());
        }

        #[test]
        fn any_flipped_payload_byte_breaks_the_signature(at in 0usize..4096, bit in 0u8..8) {
            let (_, key) = SigningKey::generate().unwrap();
            let env = key.sign(&metadata(3)).unwrap();
            let mut payload = base64::engine::general_purpose::STANDARD.decode(&env.payload).unwrap();
            let i = at % payload.len();
            payload[i] ^= 1 << bit;
            let tampered = Envelope { payload: base64::engine::general_purpose::STANDARD.encode(&payload), ..env };
            let r = verify(&serde_json::to_vec(&tampered).unwrap(), &[key.public_key()], "stable", None, 1500);
            prop_assert_eq!(r, Err(ReleaseError::Unsigned));
        }
    }
}
