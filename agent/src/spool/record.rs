//! The record format and the record keys (the byte diagram is in the [`super`] module doc).
//!
//! Encoding is done by hand with fixed-width big-endian fields so the diagram is the format:
//! no variable-length integers, no schema beside this file. Decoding checks the checksum first,
//! then reads fields through [`Fields`], which never indexes and never allocates from a length
//! read from disk: the declared payload length must equal the bytes actually present.

use std::fmt;

use sha2::{Digest, Sha256};

use super::{RecordKind, SpoolRecord};

/// Version of the record layout; a record of any other version does not decode.
pub const FORMAT_VERSION: u8 = 1;
/// Kind tag of a delta.
const KIND_DELTA: u8 = 0;
/// Kind tag of a snapshot part.
const KIND_SNAPSHOT: u8 = 1;
/// Bytes before the payload: version, kind, snapshot id, part, last flag, sequence, time, length.
pub const HEADER_LEN: usize = 1 + 1 + 8 + 4 + 1 + 8 + 8 + 4;
/// Bytes of the truncated SHA-256 after the payload.
pub const CHECKSUM_LEN: usize = 8;
/// Bytes a record takes beyond its payload.
pub const RECORD_OVERHEAD: usize = HEADER_LEN + CHECKSUM_LEN;

/// First byte of every record key.
pub const RECORD_PREFIX: u8 = b'r';
/// Length of a record key: the prefix and a big-endian sequence.
pub const RECORD_KEY_LEN: usize = 9;

/// The sled key of record `sequence`: `r` then the sequence big-endian, so keys sort by sequence.
pub fn record_key(sequence: u64) -> [u8; RECORD_KEY_LEN] {
    let mut key = [RECORD_PREFIX; RECORD_KEY_LEN];
    if let Some((_, rest)) = key.split_first_mut() {
        rest.copy_from_slice(&sequence.to_be_bytes());
    }
    key
}

/// The sequence of a record key, or `None` when the key is not one.
pub fn key_sequence(key: &[u8]) -> Option<u64> {
    let (&prefix, rest) = key.split_first()?;
    let bytes: [u8; 8] = rest.try_into().ok()?;
    (prefix == RECORD_PREFIX).then_some(u64::from_be_bytes(bytes))
}

/// Encodes one record. `payload` must fit a `u32` length (checked by the caller).
pub fn encode(sequence: u64, kind: RecordKind, written_at_ms: u64, payload: &[u8]) -> Vec<u8> {
    let (tag, snapshot_id, part, last_part) = match kind {
        RecordKind::Delta => (KIND_DELTA, 0, 0, false),
        RecordKind::Snapshot { snapshot_id, part, last_part } => (KIND_SNAPSHOT, snapshot_id, part, last_part),
    };
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(RECORD_OVERHEAD + payload.len());
    out.push(FORMAT_VERSION);
    out.push(tag);
    out.extend_from_slice(&snapshot_id.to_be_bytes());
    out.extend_from_slice(&part.to_be_bytes());
    out.push(u8::from(last_part));
    out.extend_from_slice(&sequence.to_be_bytes());
    out.extend_from_slice(&written_at_ms.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    out
}

/// The first [`CHECKSUM_LEN`] bytes of the SHA-256 of `body`.
fn checksum(body: &[u8]) -> [u8; CHECKSUM_LEN] {
    let digest = Sha256::digest(body);
    digest.first_chunk::<CHECKSUM_LEN>().copied().unwrap_or_default()
}

/// Why stored bytes are not a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Corruption {
    /// Shorter than a record with an empty payload.
    TooShort {
        /// Bytes present.
        len: usize,
    },
    /// The checksum does not match the bytes before it.
    Checksum,
    /// A format version this code does not know.
    Version(u8),
    /// A kind tag this code does not know.
    Kind(u8),
    /// A delta with snapshot fields set, or a flag byte other than 0 or 1.
    Fields,
    /// The declared payload length differs from the bytes present.
    Length {
        /// Length in the header.
        declared: u32,
        /// Bytes actually there.
        present: usize,
    },
    /// The sequence inside the record differs from the one in its key.
    Sequence {
        /// Sequence written in the record.
        stored: u64,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(f, "{len} bytes is shorter than any record"),
            Self::Checksum => f.write_str("checksum mismatch"),
            Self::Version(v) => write!(f, "unknown format version {v}"),
            Self::Kind(k) => write!(f, "unknown record kind {k}"),
            Self::Fields => f.write_str("invalid header fields"),
            Self::Length { declared, present } => {
                write!(f, "payload length {declared} but {present} bytes present")
            }
            Self::Sequence { stored } => write!(f, "record says sequence {stored}"),
        }
    }
}

/// Decodes the record stored under sequence `sequence`.
pub fn decode(sequence: u64, bytes: &[u8]) -> Result<SpoolRecord, Corruption> {
    let (kind, written_at_ms, payload) = parse(sequence, bytes)?;
    Ok(SpoolRecord { sequence, kind, payload: payload.to_vec(), written_at_ms })
}

/// Checks the record stored under sequence `sequence` without copying its payload.
pub fn verify(sequence: u64, bytes: &[u8]) -> Result<(), Corruption> {
    parse(sequence, bytes).map(|_| ())
}

/// Checks and splits a stored record: its kind, time and payload.
fn parse(sequence: u64, bytes: &[u8]) -> Result<(RecordKind, u64, &[u8]), Corruption> {
    if bytes.len() < RECORD_OVERHEAD {
        return Err(Corruption::TooShort { len: bytes.len() });
    }
    let (body, sum) = bytes.split_last_chunk::<CHECKSUM_LEN>().ok_or(Corruption::TooShort { len: bytes.len() })?;
    if checksum(body) != *sum {
        return Err(Corruption::Checksum);
    }
    let mut fields = Fields(body);
    let short = Corruption::TooShort { len: bytes.len() };
    let [version] = fields.take::<1>().ok_or(short.clone())?;
    if version != FORMAT_VERSION {
        return Err(Corruption::Version(version));
    }
    let [tag] = fields.take::<1>().ok_or(short.clone())?;
    let snapshot_id = u64::from_be_bytes(fields.take().ok_or(short.clone())?);
    let part = u32::from_be_bytes(fields.take().ok_or(short.clone())?);
    let last_part = match fields.take::<1>().ok_or(short.clone())? {
        [0] => false,
        [1] => true,
        _ => return Err(Corruption::Fields),
    };
    let stored = u64::from_be_bytes(fields.take().ok_or(short.clone())?);
    let written_at_ms = u64::from_be_bytes(fields.take().ok_or(short.clone())?);
    let declared = u32::from_be_bytes(fields.take().ok_or(short)?);
    let payload = fields.0;
    if usize::try_from(declared).ok() != Some(payload.len()) {
        return Err(Corruption::Length { declared, present: payload.len() });
    }
    if stored != sequence {
        return Err(Corruption::Sequence { stored });
    }
    let kind = match tag {
        KIND_DELTA if snapshot_id == 0 && part == 0 && !last_part => RecordKind::Delta,
        KIND_DELTA => return Err(Corruption::Fields),
        KIND_SNAPSHOT => RecordKind::Snapshot { snapshot_id, part, last_part },
        other => return Err(Corruption::Kind(other)),
    };
    Ok((kind, written_at_ms, payload))
}

/// Reads fixed-width fields off the front of a byte slice.
struct Fields<'a>(&'a [u8]);

impl Fields<'_> {
    /// The next `N` bytes, or `None` when fewer remain.
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> RecordKind {
        RecordKind::Snapshot { snapshot_id: 7, part: 2, last_part: true }
    }

    #[test]
    fn round_trips_both_kinds() {
        for kind in [RecordKind::Delta, snapshot()] {
            let bytes = encode(42, kind, 1_700_000_000_000, b"payload");
            assert_eq!(bytes.len(), RECORD_OVERHEAD + 7);
            let record = decode(42, &bytes).unwrap();
            assert_eq!(
                record,
                SpoolRecord { sequence: 42, kind, payload: b"payload".to_vec(), written_at_ms: 1_700_000_000_000 }
            );
        }
    }

    #[test]
    fn layout_matches_the_diagram() {
        let bytes = encode(0x0102, snapshot(), 3, b"xy");
        assert_eq!(bytes[0], FORMAT_VERSION);
        assert_eq!(bytes[1], KIND_SNAPSHOT);
        assert_eq!(bytes[2..10], 7u64.to_be_bytes());
        assert_eq!(bytes[10..14], 2u32.to_be_bytes());
        assert_eq!(bytes[14], 1);
        assert_eq!(bytes[15..23], 0x0102u64.to_be_bytes());
        assert_eq!(bytes[23..31], 3u64.to_be_bytes());
        assert_eq!(bytes[31..35], 2u32.to_be_bytes());
        assert_eq!(&bytes[35..37], b"xy");
        assert_eq!(bytes[37..], Sha256::digest(&bytes[..37])[..8]);
    }

    #[test]
    fn every_flipped_bit_is_caught() {
        let bytes = encode(5, snapshot(), 9, b"some payload");
        for i in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(decode(5, &bad).is_err(), "bit {i} flipped went unnoticed");
        }
    }

    #[test]
    fn truncation_and_wrong_key_are_caught() {
        let bytes = encode(5, RecordKind::Delta, 9, b"abc");
        for len in 0..bytes.len() {
            assert!(decode(5, &bytes[..len]).is_err(), "truncated to {len}");
        }
        assert_eq!(decode(6, &bytes), Err(Corruption::Sequence { stored: 5 }));
    }

    #[test]
    fn a_lying_length_is_refused_without_allocating_it() {
        let mut bytes = encode(1, RecordKind::Delta, 0, b"abc");
        bytes.truncate(HEADER_LEN - 4);
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(b"abc");
        let sum = checksum(&bytes);
        bytes.extend_from_slice(&sum);
        assert_eq!(decode(1, &bytes), Err(Corruption::Length { declared: u32::MAX, present: 3 }));
    }

    #[test]
    fn keys_sort_by_sequence_and_round_trip() {
        assert!(record_key(255) < record_key(256));
        assert!(record_key(1) < record_key(u64::MAX));
        assert_eq!(key_sequence(&record_key(12345)), Some(12345));
        assert_eq!(key_sequence(b"mstate"), None);
        assert_eq!(key_sequence(&[RECORD_PREFIX, 1, 2]), None);
    }
}
