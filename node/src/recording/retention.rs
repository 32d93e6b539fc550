//! Which finished recordings go, sans-IO: the recordings' figures and the clock in, the ones
//! to delete out. Each app has its own budget: recordings older than `max_age` (from their
//! start) go, then the oldest while the app's recordings take more than `max_bytes`.
//! Recordings still being written are never deleted, but count against the budget.

use std::time::Duration;

/// One recording, as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecInfo {
    pub app: String,
    /// `APP/NAME/ID`.
    pub prefix: String,
    /// Its start (the ID), Unix milliseconds.
    pub started_ms: u64,
    pub bytes: u64,
    /// The index is finished (`EXT-X-ENDLIST`).
    pub finished: bool,
}

/// How much each app keeps (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

impl Policy {
    pub fn is_off(&self) -> bool {
        self.max_age.is_none() && self.max_bytes.is_none()
    }
}

/// The recordings (prefixes) to delete now, oldest first.
pub fn expired(recs: &[RecInfo], now_ms: u64, policy: &Policy) -> Vec<String> {
    let mut recs: Vec<&RecInfo> = recs.iter().collect();
    recs.sort_by(|a, b| (&a.app, a.started_ms, &a.prefix).cmp(&(&b.app, b.started_ms, &b.prefix)));
    let mut out = Vec::new();
    for app in recs.chunk_by(|a, b| a.app == b.app) {
        let mut total: u64 = app.iter().map(|r| r.bytes).sum();
        for r in app.iter().filter(|r| r.finished) {
            let too_old = policy.max_age.is_some_and(|age| {
                now_ms.saturating_sub(r.started_ms)
                    >= u64::try_from(age.as_millis()).unwrap_or(u64::MAX)
            });
            let over = policy.max_bytes.is_some_and(|max| total > max);
            if too_old || over {
                total -= r.bytes;
                out.push(r.prefix.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(app: &str, started_ms: u64, bytes: u64, finished: bool) -> RecInfo {
        RecInfo {
            app: app.into(),
            prefix: format!("{app}/s/{started_ms}"),
            started_ms,
            bytes,
            finished,
        }
    }

    #[test]
    fn the_oldest_finished_recordings_of_an_app_over_its_budget_go_first() {
        let recs = [
            rec("live", 3000, 40, true),
            rec("live", 1000, 40, true),
            rec("live", 2000, 40, true),
            rec("live", 4000, 40, false),
            rec("other", 500, 1000, true),
        ];
        let policy = Policy { max_age: None, max_bytes: Some(100) };
        // live holds 160: the two oldest finished ones go; `other` has its own budget.
        assert_eq!(expired(&recs, 10_000, &policy), ["live/s/1000", "live/s/2000", "other/s/500"]);
        let policy = Policy { max_age: None, max_bytes: Some(1000) };
        assert!(expired(&recs, 10_000, &policy).is_empty());
        assert!(expired(&recs, 10_000, &Policy::default()).is_empty());
    }

    #[test]
    fn recordings_past_their_age_go_but_never_one_still_being_written() {
        let recs =
            [rec("live", 1000, 1, true), rec("live", 5000, 1, true), rec("live", 0, 1, false)];
        let policy = Policy { max_age: Some(Duration::from_secs(5)), max_bytes: None };
        assert_eq!(expired(&recs, 7000, &policy), ["live/s/1000"]);
        assert_eq!(expired(&recs, 10_000, &policy), ["live/s/1000", "live/s/5000"]);
        // Over the byte budget with only an unfinished recording: nothing to delete.
        let policy = Policy { max_age: None, max_bytes: Some(0) };
        assert_eq!(expired(&recs[2..], 7000, &policy), Vec::<String>::new());
    }
}
