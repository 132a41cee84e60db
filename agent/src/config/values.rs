//! The values a configuration writes as text: sizes ([`ByteSize`]), [`Jitter`], durations
//! ([`parse_duration`], and `duration_text` for `#[serde(with)]`), pinned CA digests
//! ([`parse_ca_sha256`]) and optional strings where
//! `""` means "not set" (`empty_is_none`).
//!
//! Each value type carries its own text form: `FromStr` reads it, `Display` writes it, and
//! serde goes through them (`#[serde(try_from = "toml::Value", into = "String")]`, the shape of
//! quickwit's `HumanDuration`). The input is a [`toml::Value`] rather than a `String` so that
//! a size may also be a bare integer and a value of the wrong type is refused in serde's own
//! words, naming what was expected (`text_of`).
//!
//! Durations stay plain [`Duration`]s in the config types, which the daemon reads directly,
//! so they are read and written by the `duration_text` functions rather than by a newtype.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Error as _, Unexpected};
use serde::{Deserialize, Serialize, Serializer};

/// Largest `schedule.jitter` as a percentage of `schedule.full_interval`.
pub(super) const MAX_JITTER_PERCENT: f64 = 50.0;

/// A value that is not a valid size, duration or jitter (the message names the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

/// The text of a value written as a string; any other type is refused in serde's words
/// (``invalid type: integer `60`, expected a duration string such as …``), naming `expected`.
fn text_of(value: toml::Value, expected: &str) -> Result<String, InvalidValue> {
    let unexpected = match value {
        toml::Value::String(text) => return Ok(text),
        toml::Value::Integer(number) => Unexpected::Signed(number),
        toml::Value::Float(number) => Unexpected::Float(number),
        toml::Value::Boolean(flag) => Unexpected::Bool(flag),
        toml::Value::Array(_) => Unexpected::Seq,
        // toml hands a datetime to serde as a map.
        toml::Value::Table(_) | toml::Value::Datetime(_) => Unexpected::Map,
    };
    Err(InvalidValue(de::value::Error::invalid_type(unexpected, &expected).to_string()))
}

/// A size in bytes, written `"64MiB"`, `"512KiB"`, `"1048576"` or `1048576`.
///
/// Units are binary and case-insensitive: `B`, `KiB`, `MiB`, `GiB`, `TiB`. Decimal units
/// (`MB`) are refused rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "toml::Value", into = "String")]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// One kibibyte.
    pub const KIB: u64 = 1024;
    /// One mebibyte.
    pub const MIB: u64 = 1024 * 1024;
    /// One gibibyte.
    pub const GIB: u64 = 1024 * 1024 * 1024;
    /// One tebibyte.
    pub const TIB: u64 = 1024 * 1024 * 1024 * 1024;

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl FromStr for ByteSize {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        let invalid = || {
            InvalidValue(format!(
                "invalid size {text:?}: expected a whole number of bytes, optionally with a unit \
                 (B, KiB, MiB, GiB, TiB), such as \"64MiB\""
            ))
        };
        let trimmed = text.trim();
        let digits_end = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(digits_end);
        let number: u64 = digits.parse().map_err(|_| invalid())?;
        let multiplier = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "kib" => Self::KIB,
            "mib" => Self::MIB,
            "gib" => Self::GIB,
            "tib" => Self::TIB,
            _ => return Err(invalid()),
        };
        number
            .checked_mul(multiplier)
            .map(ByteSize)
            .ok_or_else(|| InvalidValue(format!("invalid size {text:?}: too large")))
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that states the size exactly: `64MiB`, `1536KiB`, `1000B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [(Self::TIB, "TiB"), (Self::GIB, "GiB"), (Self::MIB, "MiB"), (Self::KIB, "KiB")];
        match units.iter().find(|(size, _)| self.0 != 0 && self.0.is_multiple_of(*size)) {
            Some((size, name)) => write!(f, "{}{name}", self.0 / size),
            None => write!(f, "{}B", self.0),
        }
    }
}

impl TryFrom<toml::Value> for ByteSize {
    type Error = InvalidValue;

    /// A whole number of bytes (`65536`) or the text form (`"64MiB"`).
    fn try_from(value: toml::Value) -> Result<Self, InvalidValue> {
        match value {
            toml::Value::Integer(bytes) => u64::try_from(bytes)
                .map(ByteSize)
                .map_err(|_| InvalidValue(format!("invalid size {bytes}: must not be negative"))),
            other => text_of(other, "a size such as \"64MiB\" or a whole number of bytes")?.parse(),
        }
    }
}

impl From<ByteSize> for String {
    fn from(size: ByteSize) -> String {
        size.to_string()
    }
}

/// Parses a humantime duration (`"6h"`, `"90s"`, `"1h 30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, InvalidValue> {
    humantime::parse_duration(text.trim())
        .map_err(|e| InvalidValue(format!("invalid duration {text:?}: {e} (such as \"60s\", \"5m\", \"6h\")")))
}

/// Reads a pinned CA digest, `sha256:` and 64 hex digits (`collector.ca_sha256`, the SHA-256
/// of the CA certificate's `SubjectPublicKeyInfo`: `crate::fleet::ca_pin`).
pub fn parse_ca_sha256(text: &str) -> Result<[u8; 32], InvalidValue> {
    let invalid = || InvalidValue(format!("must be \"sha256:\" and 64 hex digits, got {text:?}"));
    let hex_digits = text.trim().strip_prefix("sha256:").ok_or_else(invalid)?;
    let bytes = hex::decode(hex_digits).map_err(|_| invalid())?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| invalid())
}

/// Durations as humantime strings, for `#[serde(with)]`.
pub(super) mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let value = toml::Value::deserialize(deserializer)?;
        text_of(value, "a duration string such as \"60s\", \"5m\" or \"6h\"")
            .and_then(|text| parse_duration(&text))
            .map_err(de::Error::custom)
    }
}

/// The random delay added before each full inventory: a share of `schedule.full_interval`
/// (`"10%"`) or a duration (`"30m"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "toml::Value", into = "String")]
pub enum Jitter {
    /// Percent of the interval (0–50 once validated).
    Percent(f64),
    /// A fixed bound (at most half the interval once validated).
    Duration(Duration),
}

impl Jitter {
    /// The largest delay for `interval`: a random delay in `0..=max_delay` is added to it.
    pub fn max_delay(self, interval: Duration) -> Duration {
        match self {
            Self::Percent(percent) => interval.mul_f64(percent.clamp(0.0, MAX_JITTER_PERCENT) / 100.0),
            Self::Duration(delay) => delay.min(interval / 2),
        }
    }
}

impl FromStr for Jitter {
    type Err = InvalidValue;

    fn from_str(text: &str) -> Result<Self, InvalidValue> {
        match text.trim().strip_suffix('%') {
            Some(number) => match number.trim().parse::<f64>() {
                Ok(percent) if percent.is_finite() => Ok(Self::Percent(percent)),
                _ => Err(InvalidValue(format!("invalid jitter {text:?}: expected a percentage such as \"10%\""))),
            },
            None => parse_duration(text).map(Self::Duration).map_err(|_| {
                InvalidValue(format!(
                    "invalid jitter {text:?}: expected a percentage such as \"10%\" or a duration such as \"30m\""
                ))
            }),
        }
    }
}

impl fmt::Display for Jitter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Percent(percent) => write!(f, "{percent}%"),
            Self::Duration(delay) => write!(f, "{}", humantime::format_duration(*delay)),
        }
    }
}

impl TryFrom<toml::Value> for Jitter {
    type Error = InvalidValue;

    /// The text form (`"10%"`, `"30m"`).
    fn try_from(value: toml::Value) -> Result<Self, InvalidValue> {
        text_of(value, "a percentage such as \"10%\" or a duration such as \"30m\"")?.parse()
    }
}

impl From<Jitter> for String {
    fn from(jitter: Jitter) -> String {
        jitter.to_string()
    }
}

/// Reads an optional string value: `""` is `None`.
pub(super) fn empty_is_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: From<String>,
{
    let text = String::deserialize(deserializer)?;
    Ok((!text.is_empty()).then(|| T::from(text)))
}

/// Writes an optional value: `None` is `""`.
pub(super) fn none_is_empty<S: Serializer, T: Serialize>(value: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => v.serialize(serializer),
        None => serializer.serialize_str(""),
    }
}
