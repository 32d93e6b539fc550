//! Fair shares per client address: how many connections one IP may hold at once and how fast
//! it may open new ones (a token bucket per IP), so one host can never take the whole node.
//!
//! The core ([`PerIpTable::admit`]) is sans-IO: the caller passes the time. Each accept loop
//! (RTMP, HTTP) has its own table, so the budgets are separate: an IP that floods HTTP still
//! publishes over RTMP, and HTTP viewers cannot use up RTMP's share. An [`Admitted`] guard
//! holds one of the IP's concurrent slots until it is dropped (when the connection ends).
//!
//! The table's memory is bounded: an IP's entry exists while it holds connections or its
//! bucket is not yet full again; [`PerIpTable::admit`] forgets idle entries as it goes, and at
//! most `max_tracked` addresses are remembered (past that, new addresses are refused, which
//! only happens under a flood from that many distinct addresses).
//!
//! IPv6 clients are keyed by their /64 (one host usually owns a whole /64).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use crate::lock::lock;
use crate::log_limit::RateLimitedLog;
use crate::metrics::{Door, Metrics, RefusalReason};

/// What one table allows per IP.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerIpLimits {
    /// Concurrent connections per IP; 0: unlimited.
    pub max_concurrent: usize,
    /// New connections per second per IP (the bucket refills at this rate; its size is the
    /// same number, so a client may open a second's worth at once); 0: unlimited.
    pub per_second: u32,
}

/// Why an address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many concurrent connections from this address")]
    Concurrent,
    #[error("too many new connections per second from this address")]
    Rate,
    #[error("too many distinct client addresses tracked")]
    Table,
}

#[derive(Debug)]
struct Entry {
    concurrent: usize,
    /// Tokens in the bucket when last updated, and when.
    tokens: f64,
    updated: Instant,
}

/// Per-IP concurrent counts and token buckets.
#[derive(Debug)]
pub struct PerIpTable {
    limits: PerIpLimits,
    max_tracked: usize,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

/// The key an address is counted under: IPv4 as is, IPv6 by its /64.
fn key_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl PerIpTable {
    pub fn new(limits: PerIpLimits, max_tracked: usize) -> Arc<Self> {
        Arc::new(PerIpTable { limits, max_tracked, entries: Mutex::new(HashMap::new()) })
    }

    fn refill(&self, e: &mut Entry, now: Instant) {
        let rate = f64::from(self.limits.per_second);
        let dt = now.saturating_duration_since(e.updated).as_secs_f64();
        e.tokens = (e.tokens + dt * rate).min(rate);
        e.updated = now;
    }

    /// Admit one new connection from `ip` at `now`, or say why not. A refused attempt costs
    /// nothing (the bucket is only charged when admitted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, now: Instant) -> Result<Admitted, Refusal> {
        let key = key_of(ip);
        let mut map = lock(&self.entries);
        if !map.contains_key(&key) && map.len() >= self.max_tracked {
            self.forget_idle(&mut map, now);
            if map.len() >= self.max_tracked {
                return Err(Refusal::Table);
            }
        }
        let rate = f64::from(self.limits.per_second);
        let e = map.entry(key).or_insert(Entry { concurrent: 0, tokens: rate, updated: now });
        self.refill(e, now);
        if self.limits.max_concurrent > 0 && e.concurrent >= self.limits.max_concurrent {
            return Err(Refusal::Concurrent);
        }
        if self.limits.per_second > 0 {
            if e.tokens < 1.0 {
                return Err(Refusal::Rate);
            }
            e.tokens -= 1.0;
        }
        e.concurrent += 1;
        Ok(Admitted { table: self.clone(), key })
    }

    /// Drop entries that hold no connection and whose bucket is full again (they carry no
    /// state a fresh entry would not have).
    fn forget_idle(&self, map: &mut HashMap<IpAddr, Entry>, now: Instant) {
        let rate = f64::from(self.limits.per_second);
        map.retain(|_, e| {
            let dt = now.saturating_duration_since(e.updated).as_secs_f64();
            e.concurrent > 0 || e.tokens + dt * rate < rate
        });
    }

    /// Addresses tracked now.
    pub fn tracked(&self) -> usize {
        lock(&self.entries).len()
    }

    /// Connections `ip` holds now.
    pub fn concurrent(&self, ip: IpAddr) -> usize {
        lock(&self.entries).get(&key_of(ip)).map_or(0, |e| e.concurrent)
    }

    fn release(&self, key: IpAddr) {
        let mut map = lock(&self.entries);
        if let Some(e) = map.get_mut(&key) {
            e.concurrent = e.concurrent.saturating_sub(1);
            // An entry with no connection and a full bucket holds nothing a fresh one would
            // not: forget it now (the rest are forgotten by `forget_idle` when needed).
            if e.concurrent == 0 && e.tokens >= f64::from(self.limits.per_second) {
                map.remove(&key);
            }
        }
    }
}

impl From<Refusal> for RefusalReason {
    fn from(r: Refusal) -> RefusalReason {
        match r {
            Refusal::Concurrent => RefusalReason::Concurrent,
            Refusal::Rate => RefusalReason::Rate,
            Refusal::Table => RefusalReason::Table,
        }
    }
}

/// One door's admission: its per-IP table, counting and logging refusals.
pub struct Gate {
    table: Arc<PerIpTable>,
    door: Door,
    metrics: Metrics,
    log: RateLimitedLog,
}

/// Addresses one gate remembers at most (a few MB).
const MAX_TRACKED_IPS: usize = 100_000;

impl Gate {
    pub fn new(door: Door, limits: PerIpLimits, metrics: Metrics) -> Self {
        Gate {
            table: PerIpTable::new(limits, MAX_TRACKED_IPS),
            door,
            metrics,
            log: RateLimitedLog::new(5),
        }
    }

    /// A gate that admits everyone (tests, and nodes built without settings).
    pub fn open(door: Door, metrics: Metrics) -> Self {
        Gate::new(door, PerIpLimits { max_concurrent: 0, per_second: 0 }, metrics)
    }

    /// Admit a new connection from `ip` now, or count and (rate-limited) log the refusal.
    pub fn admit(&self, ip: IpAddr) -> Option<Admitted> {
        match self.table.admit(ip, Instant::now()) {
            Ok(admitted) => Some(admitted),
            Err(refusal) => {
                self.metrics.refused(self.door, refusal.into());
                if self.log.allow() {
                    tracing::info!(door = ?self.door, %ip, %refusal, "client refused");
                }
                None
            }
        }
    }

    pub fn table(&self) -> &Arc<PerIpTable> {
        &self.table
    }
}

/// One admitted connection: holds its IP's slot until dropped.
#[derive(Debug)]
pub struct Admitted {
    table: Arc<PerIpTable>,
    key: IpAddr,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.table.release(self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn concurrent_cap_is_per_ip_and_released_on_drop() {
        let t = PerIpTable::new(PerIpLimits { max_concurrent: 2, per_second: 0 }, 100);
        let now = Instant::now();
        let a1 = t.admit(ip("10.0.0.1"), now).unwrap();
        let _a2 = t.admit(ip("10.0.0.1"), now).unwrap();
        assert_eq!(t.admit(ip("10.0.0.1"), now).unwrap_err(), Refusal::Concurrent);
        // Another address has its own share.
        let _b = t.admit(ip("10.0.0.2"), now).unwrap();
        drop(a1);
        assert_eq!(t.concurrent(ip("10.0.0.1")), 1);
        t.admit(ip("10.0.0.1"), now).unwrap();
    }

    #[test]
    fn token_bucket_refills_with_time() {
        let t = PerIpTable::new(PerIpLimits { max_concurrent: 0, per_second: 10 }, 100);
        let start = Instant::now();
        let mut held = Vec::new();
        for _ in 0..10 {
            held.push(t.admit(ip("10.0.0.1"), start).unwrap());
        }
        assert_eq!(t.admit(ip("10.0.0.1"), start).unwrap_err(), Refusal::Rate);
        // Refused attempts cost nothing; 100 ms later one token is back.
        let later = start + Duration::from_millis(100);
        held.push(t.admit(ip("10.0.0.1"), later).unwrap());
        assert_eq!(t.admit(ip("10.0.0.1"), later).unwrap_err(), Refusal::Rate);
        // Closing connections does not give tokens back.
        held.clear();
        assert_eq!(t.admit(ip("10.0.0.1"), later).unwrap_err(), Refusal::Rate);
        t.admit(ip("10.0.0.1"), start + Duration::from_secs(2)).unwrap();
    }

    #[test]
    fn ipv6_counts_by_slash_64_and_mapped_v4_as_v4() {
        let t = PerIpTable::new(PerIpLimits { max_concurrent: 1, per_second: 0 }, 100);
        let now = Instant::now();
        let _a = t.admit(ip("2001:db8::1"), now).unwrap();
        assert_eq!(t.admit(ip("2001:db8::2"), now).unwrap_err(), Refusal::Concurrent);
        t.admit(ip("2001:db8:0:1::1"), now).unwrap();
        let _v4 = t.admit(ip("10.0.0.9"), now).unwrap();
        assert_eq!(t.admit(ip("::ffff:10.0.0.9"), now).unwrap_err(), Refusal::Concurrent);
    }

    #[test]
    fn memory_is_bounded_by_max_tracked() {
        let t = PerIpTable::new(PerIpLimits { max_concurrent: 10, per_second: 10 }, 3);
        let now = Instant::now();
        let held: Vec<_> =
            (1..=3).map(|i| t.admit(ip(&format!("10.0.0.{i}")), now).unwrap()).collect();
        assert_eq!(t.admit(ip("10.0.0.4"), now).unwrap_err(), Refusal::Table);
        drop(held);
        // Their buckets refill within a second; then the entries can be forgotten.
        t.admit(ip("10.0.0.4"), now + Duration::from_secs(2)).unwrap();
        assert!(t.tracked() <= 3);
    }
}
