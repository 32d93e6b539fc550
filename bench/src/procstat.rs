//! Process resource readings from `/proc` (Linux): CPU time and resident set size, and the
//! `RLIMIT_NOFILE` raise the bench needs for thousands of sockets.

use std::fs;

/// One reading of a process's resource use.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// utime + stime, seconds.
    pub cpu_seconds: f64,
    /// Resident set size, bytes.
    pub rss_bytes: u64,
}

/// Read `/proc/<pid>/stat` (`pid` may be `"self"`).
pub fn sample(pid: &str) -> Option<ProcSample> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text, clock_ticks(), page_size())
}

/// Parse the content of a `/proc/PID/stat` file. The command name (field 2) may contain spaces
/// and parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str, ticks_per_second: f64, page_size: u64) -> Option<ProcSample> {
    let after = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime 15, rss 24.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    Some(ProcSample {
        cpu_seconds: utime.saturating_add(stime) as f64 / ticks_per_second,
        rss_bytes: rss_pages.saturating_mul(page_size),
    })
}

/// The 1-minute load average and the number of online CPUs: the bench usually shares the
/// machine with the server (and maybe other work), so reports carry how busy it was.
pub fn host_load() -> Option<(f64, u64)> {
    let text = fs::read_to_string("/proc/loadavg").ok()?;
    let load: f64 = text.split_whitespace().next()?.parse().ok()?;
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get() as u64);
    Some((load, cpus))
}

fn clock_ticks() -> f64 {
    let ticks = rustix::param::clock_ticks_per_second();
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    let size = rustix::param::page_size();
    if size > 0 {
        size as u64
    } else {
        4096
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit. Returns the new soft limit.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    // `None` is RLIM_INFINITY.
    let (current, maximum) = (limit.current.unwrap_or(u64::MAX), limit.maximum.unwrap_or(u64::MAX));
    if current < maximum {
        setrlimit(Resource::Nofile, Rlimit { current: limit.maximum, maximum: limit.maximum })?;
        return Ok(maximum);
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let line = "1234 (my (odd) proc) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 \
                    3 0 1000 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1";
        let sample = parse_stat(line, 100.0, 4096).unwrap();
        assert_eq!(sample.cpu_seconds, 3.0);
        assert_eq!(sample.rss_bytes, 2048 * 4096);
        assert_eq!(parse_stat("garbage", 100.0, 4096), None);
    }

    #[test]
    fn reads_own_process() {
        let own = sample("self").unwrap();
        assert!(own.rss_bytes > 0);
        assert!(own.cpu_seconds >= 0.0);
        let (load, cpus) = host_load().unwrap();
        assert!(load >= 0.0 && cpus >= 1);
    }
}
