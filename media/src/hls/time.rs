//! Formatting of `EXT-X-PROGRAM-DATE-TIME` values and playlist durations.

use super::track::TICKS_PER_SECOND;

/// ISO 8601 UTC with milliseconds, e.g. `2024-05-01T12:00:00.250Z`, for milliseconds since
/// the Unix epoch (proleptic Gregorian calendar).
pub fn format_program_date_time(epoch_ms: u64) -> String {
    let ms = epoch_ms % 1000;
    let secs = epoch_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

/// Days since 1970-01-01 to (year, month, day): Howard Hinnant's `civil_from_days`.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// A 90 kHz duration as decimal seconds with 5 places, rounded half up.
pub(crate) fn seconds(ticks: u64) -> String {
    let units = (u128::from(ticks) * 100_000 + u128::from(TICKS_PER_SECOND) / 2)
        / u128::from(TICKS_PER_SECOND);
    format!("{}.{:05}", units / 100_000, units % 100_000)
}

/// A millisecond duration as decimal seconds with 3 places.
pub(crate) fn seconds_ms(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_program_date_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_program_date_time(951_782_400_000 + 86_399_999),
            "2000-02-29T23:59:59.999Z"
        );
        assert_eq!(format_program_date_time(1_714_564_800_250), "2024-05-01T12:00:00.250Z");
        // Far future input never panics.
        let _ = format_program_date_time(u64::MAX);
    }

    #[test]
    fn durations() {
        assert_eq!(seconds(180_000), "2.00000");
        assert_eq!(seconds(44_999), "0.49999");
        assert_eq!(seconds(1), "0.00001");
        assert_eq!(seconds(0), "0.00000");
        assert_eq!(seconds_ms(1500), "1.500");
    }
}
