//! Parsers for the human-friendly command-line values: durations (`2s`, `500ms`, `1m`) and
//! bit rates (`2500k`, `2.5M`, `800000`).

use std::time::Duration;

use thiserror::Error;

/// A command-line value that does not parse (clap prints it).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgError {
    #[error("invalid duration {0:?} (use e.g. 20s, 500ms, 2m)")]
    Duration(String),
    #[error("duration {0:?} out of range")]
    DurationRange(String),
    #[error("invalid bit rate {0:?} (use e.g. 2500k, 2.5M)")]
    Bitrate(String),
    #[error("bit rate {0:?} out of range (1k..10G)")]
    BitrateRange(String),
}

/// Parse a duration such as `20s`, `0.5s`, `250ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, ArgError> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (text, 1.0)
    };
    let value: f64 = number.trim().parse().map_err(|_| ArgError::Duration(text.to_owned()))?;
    let seconds = value * scale;
    if !seconds.is_finite() || !(0.0..=366.0 * 86400.0).contains(&seconds) {
        return Err(ArgError::DurationRange(text.to_owned()));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Parse a bit rate in bits per second: `2500k`, `2.5M`, `800000`, `1G`.
pub fn parse_bitrate(text: &str) -> Result<u64, ArgError> {
    let text = text.trim();
    let (number, scale) = match text.chars().last() {
        Some('k' | 'K') => (&text[..text.len() - 1], 1e3),
        Some('m' | 'M') => (&text[..text.len() - 1], 1e6),
        Some('g' | 'G') => (&text[..text.len() - 1], 1e9),
        _ => (text, 1.0),
    };
    let value: f64 = number.trim().parse().map_err(|_| ArgError::Bitrate(text.to_owned()))?;
    let bits = value * scale;
    if !bits.is_finite() || !(1000.0..=10e9).contains(&bits) {
        return Err(ArgError::BitrateRange(text.to_owned()));
    }
    Ok(bits as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("20s").unwrap(), Duration::from_secs(20));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("0.5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("abc"), Err(ArgError::Duration("abc".into())));
        assert_eq!(parse_duration("-1s"), Err(ArgError::DurationRange("-1s".into())));
    }

    #[test]
    fn bitrates() {
        assert_eq!(parse_bitrate("2500k").unwrap(), 2_500_000);
        assert_eq!(parse_bitrate("2.5M").unwrap(), 2_500_000);
        assert_eq!(parse_bitrate("800000").unwrap(), 800_000);
        assert_eq!(parse_bitrate("fast"), Err(ArgError::Bitrate("fast".into())));
        assert_eq!(parse_bitrate("10"), Err(ArgError::BitrateRange("10".into())));
    }
}
