//! Log lines a hostile peer can trigger at will: rate limiting, and names made safe to print.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Allows at most `per_second` lines per wall-clock second; counts what it suppressed and
/// reports the count with the next allowed line's second.
#[derive(Debug)]
pub struct RateLimitedLog {
    per_second: u64,
    /// Upper 32 bits: the second; lower 32 bits: lines in it.
    window: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimitedLog {
    pub const fn new(per_second: u64) -> Self {
        RateLimitedLog { per_second, window: AtomicU64::new(0), suppressed: AtomicU64::new(0) }
    }

    /// Whether to log this line.
    pub fn allow(&self) -> bool {
        let now =
            SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) & 0xFFFF_FFFF;
        let mut cur = self.window.load(Ordering::Relaxed);
        loop {
            let (sec, count) = (cur >> 32, cur & 0xFFFF_FFFF);
            let next =
                if sec == now { (sec << 32) | (count + 1).min(0xFFFF_FFFF) } else { now << 32 | 1 };
            match self.window.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    let allowed = (next & 0xFFFF_FFFF) <= self.per_second;
                    if !allowed {
                        self.suppressed.fetch_add(1, Ordering::Relaxed);
                    } else if sec != now {
                        let n = self.suppressed.swap(0, Ordering::Relaxed);
                        if n > 0 {
                            tracing::warn!(suppressed = n, "similar log lines were suppressed");
                        }
                    }
                    return allowed;
                }
                Err(actual) => cur = actual,
            }
        }
    }
}

/// `text` made safe for a log line: at most `max_chars` characters, anything outside printable
/// ASCII escaped (`\n`, `\u{1b}`, ...), and a truncated value marked with its full length. Use
/// it for every name or command a client sent (stream and app names, command names).
pub fn printable(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars) + 16);
    for (kept, c) in text.chars().enumerate() {
        if kept == max_chars {
            out.push_str(&format!("...({} bytes)", text.len()));
            return out;
        }
        if c.is_ascii_graphic() || c == ' ' {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_escapes_and_truncates() {
        assert_eq!(printable("cam-1", 64), "cam-1");
        assert_eq!(printable("a\nb\x1b[31m", 64), "a\\nb\\u{1b}[31m");
        assert_eq!(printable("é", 64), "\\u{e9}");
        let long = "x".repeat(60_000);
        let p = printable(&long, 64);
        assert_eq!(p, format!("{}...(60000 bytes)", "x".repeat(64)));
        assert_eq!(printable("", 8), "");
    }

    #[test]
    fn limits_lines_per_second() {
        let l = RateLimitedLog::new(3);
        let allowed = (0..100).filter(|_| l.allow()).count();
        // Within one second at most 3 pass (two if the second ticked over mid-loop: 3 + 3).
        assert!((3..=6).contains(&allowed), "{allowed}");
    }
}
