//! Durations and sizes as people write them: `500ms`, `5s`, `2m`, `1h` or a bare number of
//! seconds; `65536`, `64KiB`, `4MiB`, `1GiB`. The same parsers serve flags, `SLUICE_*`
//! variables and the TOML file (where a bare integer is also accepted), and the same
//! formatting shows defaults in `--help` and in the example files.
//!
//! Hand-rolled rather than `humantime`/`bytesize`: those reject inputs accepted since the
//! first release (`humantime` wants a unit and takes no fractions like `0.5s`; `bytesize`
//! reads `64k` as 64 000 bytes, not 64 KiB), and the two functions below are the whole need.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration or size that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("'{0}' is not a duration (e.g. 500ms, 5s, 2m)")]
    NotADuration(String),
    #[error("'{0}': unknown duration unit '{1}' (ms, s, m, h)")]
    DurationUnit(String, String),
    #[error("'{0}' is not a size (e.g. 65536, 64KiB, 4MiB)")]
    NotASize(String),
    #[error("'{0}': unknown size unit '{1}' (KiB, MiB, GiB)")]
    SizeUnit(String, String),
    #[error("'{0}' is out of range")]
    OutOfRange(String),
}

/// Parse `500ms`, `5s`, `2m`, `1h` or a bare number of seconds (fractions allowed).
pub fn parse_duration(s: &str) -> Result<Duration, UnitError> {
    let s = s.trim();
    let (num, unit) = split_unit(s);
    let value: f64 = num.parse().map_err(|_| UnitError::NotADuration(s.to_string()))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(UnitError::DurationUnit(s.to_string(), unit.to_string())),
    };
    if !(0.0..=1e9).contains(&secs) {
        return Err(UnitError::OutOfRange(s.to_string()));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse `1048576`, `64KiB`, `4MiB`, `1GiB` (also `K`/`KB`/`M`/`MB`/`G`/`GB`, meaning the
/// same binary units).
pub fn parse_size(s: &str) -> Result<usize, UnitError> {
    let s = s.trim();
    let (num, unit) = split_unit(s);
    let value: u64 = num.parse().map_err(|_| UnitError::NotASize(s.to_string()))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(UnitError::SizeUnit(s.to_string(), unit.to_string())),
    };
    let bytes = value.checked_mul(mult).ok_or_else(|| UnitError::OutOfRange(s.to_string()))?;
    usize::try_from(bytes).map_err(|_| UnitError::OutOfRange(s.to_string()))
}

fn split_unit(s: &str) -> (&str, &str) {
    let idx = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
    (&s[..idx], s[idx..].trim())
}

/// `d` the way [`parse_duration`] reads it back: the largest unit that divides it (`2m`,
/// `5s`, `500ms`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms.is_multiple_of(3_600_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// `bytes` the way [`parse_size`] reads it back (`4MiB`, `64KiB`, `1000`).
pub fn format_size(bytes: usize) -> String {
    match bytes {
        0 => "0".to_string(),
        b if b.is_multiple_of(1 << 30) => format!("{}GiB", b >> 30),
        b if b.is_multiple_of(1 << 20) => format!("{}MiB", b >> 20),
        b if b.is_multiple_of(1 << 10) => format!("{}KiB", b >> 10),
        b => b.to_string(),
    }
}

/// A [`Duration`] that parses and prints with units (for flags: `--help` shows the default
/// as `5s`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl FromStr for HumanDuration {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s).map(HumanDuration)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Duration {
        d.0
    }
}

/// A byte count that parses and prints with units (`4MiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub usize);

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl FromStr for ByteSize {
    type Err = UnitError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_size(s).map(ByteSize)
    }
}

impl From<ByteSize> for usize {
    fn from(s: ByteSize) -> usize {
        s.0
    }
}

/// Serde for a [`Duration`] field: a string with a unit, or a number of seconds.
pub mod serde_duration {
    use std::time::Duration;

    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration such as \"500ms\", \"5s\", \"2m\" or a number of seconds")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
                super::parse_duration(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration::from_secs)
                    .map_err(|_| E::custom("negative duration"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration::from_secs(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
                super::parse_duration(&v.to_string()).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Serde for a byte-count field: a string with a unit, or a number of bytes.
pub mod serde_size {
    use serde::de::{self, Deserializer, Visitor};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(n: &usize, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_size(*n))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = usize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size such as \"64KiB\", \"4MiB\" or a number of bytes")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
                super::parse_size(v).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
                usize::try_from(v).map_err(|_| E::custom("size out of range"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
                usize::try_from(v).map_err(|_| E::custom("size out of range"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("5").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("5x").is_err());
        assert_eq!(parse_size("4MiB").unwrap(), 4 << 20);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }

    #[test]
    fn formatting_reads_back() {
        for d in [0, 1, 500, 1000, 2000, 90_000, 120_000, 3_600_000] {
            let d = Duration::from_millis(d);
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        for n in [0, 1000, 1024, 65536, 4 << 20, 1 << 30, 1500] {
            assert_eq!(parse_size(&format_size(n)).unwrap(), n);
        }
        assert_eq!(HumanDuration(Duration::from_millis(500)).to_string(), "500ms");
        assert_eq!(ByteSize(16 << 20).to_string(), "16MiB");
    }
}
