//! Figures as people read them in a table: bit rates, bytes, cores, durations, frame rates.
//! JSON and YAML keep the raw numbers.

/// `850 kbit/s`, `12.3 Mbit/s`, `1.25 Gbit/s`, `10 Gbit/s`.
pub fn bitrate(bps: u64) -> String {
    let b = bps as f64;
    if bps < 1_000 {
        format!("{bps} bit/s")
    } else if bps < 1_000_000 {
        format!("{:.0} kbit/s", b / 1e3)
    } else if bps < 1_000_000_000 {
        format!("{} Mbit/s", trim(format!("{:.1}", b / 1e6)))
    } else {
        format!("{} Gbit/s", trim(format!("{:.2}", b / 1e9)))
    }
}

/// `24.0` as `24`, `1.50` as `1.5`.
fn trim(number: String) -> String {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        number
    }
}

/// `used` as a whole percentage of `max` (`-` without a maximum).
pub fn percent(used: u64, max: u64) -> String {
    if max == 0 {
        "-".to_string()
    } else {
        format!("{:.0}%", used as f64 * 100.0 / max as f64)
    }
}

/// `512 B`, `12 KiB`, `341 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = n as f64;
    if n < 1024 {
        format!("{n} B")
    } else if b < KIB * KIB {
        format!("{:.0} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.0} MiB", b / (KIB * KIB))
    } else {
        format!("{:.1} GiB", b / (KIB * KIB * KIB))
    }
}

/// Thousandths of a core as cores: `0.25`, `3.10`.
pub fn cores(millicores: u64) -> String {
    format!("{:.2}", millicores as f64 / 1000.0)
}

/// `45s`, `12m30s`, `3h12m`, `2d3h` (two units at most: an uptime, not a timestamp).
pub fn duration_ms(ms: u64) -> String {
    let s = ms / 1000;
    let (d, h, m, sec) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// A time (ms since the epoch) in UTC to the second: `2023-11-14 22:13:20`; `-` when 0.
pub fn utc(at_ms: u64) -> String {
    if at_ms == 0 {
        return "-".to_string();
    }
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms);
    // `2023-11-14T22:13:20Z`.
    let text = humantime::format_rfc3339_seconds(at).to_string();
    text.trim_end_matches('Z').replacen('T', " ", 1)
}

/// A length in seconds: `9.6s` under a minute, else as [`duration_ms`] (`12m30s`, `3h12m`).
pub fn length(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return "-".to_string();
    }
    if seconds < 60.0 {
        return format!("{}s", trim(format!("{seconds:.1}")));
    }
    // Within range: a length is far below u64::MAX ms.
    duration_ms((seconds * 1000.0) as u64)
}

/// Time since `at_ms` (ms since the epoch), or `-` when unknown (0).
pub fn since(at_ms: u64, now_ms: u64) -> String {
    if at_ms == 0 {
        "-".to_string()
    } else {
        duration_ms(now_ms.saturating_sub(at_ms))
    }
}

/// Thousandths of a frame per second: `30`, `29.97`, `-` when unknown.
pub fn fps(milli: u32) -> String {
    if milli == 0 {
        return "-".to_string();
    }
    trim(format!("{:.2}", f64::from(milli) / 1000.0))
}

/// `1280x720`, or `-` when unknown.
pub fn resolution(width: u32, height: u32) -> String {
    if width == 0 || height == 0 {
        "-".to_string()
    } else {
        format!("{width}x{height}")
    }
}

/// `used/max`, or just `used` when there is no configured maximum.
pub fn of(used: String, max: u64, max_text: impl FnOnce(u64) -> String) -> String {
    if max == 0 {
        used
    } else {
        format!("{used}/{}", max_text(max))
    }
}

/// This machine's wall clock in ms since the epoch (uptimes and report ages are wall-clock
/// differences with the nodes' clocks, so a monotonic clock would not do).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_rates() {
        assert_eq!(bitrate(0), "0 bit/s");
        assert_eq!(bitrate(850_000), "850 kbit/s");
        assert_eq!(bitrate(12_345_678), "12.3 Mbit/s");
        assert_eq!(bitrate(1_250_000_000), "1.25 Gbit/s");
        assert_eq!(bitrate(10_000_000_000), "10 Gbit/s");
        assert_eq!(bitrate(24_000_000), "24 Mbit/s");
        assert_eq!(percent(25, 100), "25%");
        assert_eq!(percent(25, 0), "-");
    }

    #[test]
    fn sizes_and_cores() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(341 * 1024 * 1024), "341 MiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024 / 2), "1.5 GiB");
        assert_eq!(cores(250), "0.25");
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms(45_000), "45s");
        assert_eq!(duration_ms(750_000), "12m30s");
        assert_eq!(duration_ms((3 * 3600 + 12 * 60 + 5) * 1000), "3h12m");
        assert_eq!(duration_ms((2 * 86_400 + 3 * 3600) * 1000), "2d3h");
        assert_eq!(since(0, 5), "-");
        assert_eq!(since(1_000, 61_000), "1m0s");
        assert_eq!(since(9_000, 1_000), "0s", "a clock ahead is not a negative age");
    }

    #[test]
    fn times_and_lengths() {
        assert_eq!(utc(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(utc(0), "-");
        assert_eq!(length(10.04), "10s");
        assert_eq!(length(9.6), "9.6s");
        assert_eq!(length(750.2), "12m30s");
        assert_eq!(length(f64::NAN), "-");
    }

    #[test]
    fn media_figures() {
        assert_eq!(fps(29_970), "29.97");
        assert_eq!(fps(30_000), "30");
        assert_eq!(fps(0), "-");
        assert_eq!(resolution(1280, 720), "1280x720");
        assert_eq!(resolution(0, 0), "-");
        assert_eq!(of("3".into(), 500, |m| m.to_string()), "3/500");
        assert_eq!(of("3".into(), 0, |m| m.to_string()), "3");
    }
}
