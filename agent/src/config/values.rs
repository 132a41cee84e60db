//! The values a configuration writes as text: sizes ([`ByteSize`]), [`Jitter`], durations
//! ([`parse_duration`], and `duration_text` for `#[serde(with)]`) and optional strings where
//! `""` means "not set" (`empty_is_none`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Largest `schedule.jitter` as a percentage of `schedule.full_interval`.
pub(super) const MAX_JITTER_PERCENT: f64 = 50.0;

/// A value that is not a valid size, duration or jitter (the message names the value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(String);

/// A size in bytes, written `"64MiB"`, `"512KiB"`, `"1048576"` or `1048576`.
///
/// Units are binary and case-insensitive: `B`, `KiB`, `MiB`, `GiB`, `TiB`. Decimal units
/// (`MB`) are refused rather than guessed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"64MiB\" or a whole number of bytes")
            }
            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }
            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {bytes}: must not be negative")))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

/// Parses a humantime duration (`"6h"`, `"90s"`, `"1h 30m"`).
pub fn parse_duration(text: &str) -> Result<Duration, InvalidValue> {
    humantime::parse_duration(text.trim())
        .map_err(|e| InvalidValue(format!("invalid duration {text:?}: {e} (such as \"60s\", \"5m\", \"6h\")")))
}

/// Durations as humantime strings, for `#[serde(with)]`.
pub(super) mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration string such as \"60s\", \"5m\" or \"6h\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
                parse_duration(text).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

/// The random delay added before each full inventory: a share of `schedule.full_interval`
/// (`"10%"`) or a duration (`"30m"`).
#[derive(Debug, Clone, Copy, PartialEq)]
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

impl Serialize for Jitter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Jitter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JitterVisitor;
        impl Visitor<'_> for JitterVisitor {
            type Value = Jitter;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage such as \"10%\" or a duration such as \"30m\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Jitter, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(JitterVisitor)
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
