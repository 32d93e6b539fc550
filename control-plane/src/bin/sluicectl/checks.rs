//! `sluicectl check`'s verdicts, sans-IO: the node listing, certificate bytes and the current
//! time in, one pass/fail line per check out. The command (in `commands`) gathers the inputs.

use std::path::Path;

use serde::Serialize;
use x509_parser::pem::Pem;

use crate::units::duration_ms;
use crate::views::NodeView;

/// One check's verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckLine {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl CheckLine {
    pub fn pass(name: &str, detail: impl Into<String>) -> CheckLine {
        CheckLine { name: name.to_string(), ok: true, detail: detail.into() }
    }

    pub fn fail(name: &str, detail: impl Into<String>) -> CheckLine {
        CheckLine { name: name.to_string(), ok: false, detail: detail.into() }
    }
}

/// Every verdict, and whether all passed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    pub ok: bool,
    pub checks: Vec<CheckLine>,
}

impl CheckReport {
    pub fn new(checks: Vec<CheckLine>) -> CheckReport {
        CheckReport { ok: checks.iter().all(|c| c.ok), checks }
    }

    pub fn failed(&self) -> usize {
        self.checks.iter().filter(|c| !c.ok).count()
    }
}

/// `✓ name: detail` / `✗ name: detail`, one line each.
pub fn render(report: &CheckReport) -> String {
    let mut out = String::new();
    for c in &report.checks {
        let mark = if c.ok { '✓' } else { '✗' };
        out.push_str(&format!("{mark} {}: {}\n", c.name, c.detail));
    }
    // A failure's summary goes to stderr as the error line.
    if report.ok {
        out.push_str("all checks passed\n");
    }
    out
}

/// How strict the node checks are.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A load report older than this is stale.
    pub stale_after_ms: u64,
    /// How far ahead of this machine's clock a report time may be.
    pub max_skew_ms: u64,
}

fn role_ready(nodes: &[NodeView], role: &str) -> CheckLine {
    let name = format!("at least one ready {role}");
    let of_role: Vec<&NodeView> = nodes.iter().filter(|n| n.role == role).collect();
    let ready = of_role.iter().filter(|n| n.state == "ready").count();
    let detail = format!("{ready} of {} ready", count(of_role.len(), role));
    if ready > 0 {
        CheckLine::pass(&name, detail)
    } else {
        CheckLine::fail(&name, detail)
    }
}

/// `1 node`, `2 nodes`.
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn list_or(items: &[String], ok: &str) -> String {
    if items.is_empty() {
        ok.to_string()
    } else {
        items.join(", ")
    }
}

/// The cluster's node checks: a ready origin and edge, every node ready, every node's load
/// report fresh, and no report time ahead of this machine's clock.
///
/// A report time behind the local clock cannot be told apart from a stale report, so the
/// freshness check covers clocks that lag; the clock check catches clocks that run ahead
/// (a report cannot come from the future).
pub fn node_checks(nodes: &[NodeView], now_ms: u64, limits: Limits) -> Vec<CheckLine> {
    let mut checks = vec![role_ready(nodes, "origin"), role_ready(nodes, "edge")];

    let not_ready: Vec<String> = nodes
        .iter()
        .filter(|n| n.state != "ready")
        .map(|n| format!("{} {} is {}", n.role, n.id, n.state))
        .collect();
    let name = "every node is ready";
    checks.push(if not_ready.is_empty() {
        CheckLine::pass(name, format!("{} ready", count(nodes.len(), "node")))
    } else {
        CheckLine::fail(name, not_ready.join(", "))
    });

    let stale: Vec<String> = nodes
        .iter()
        .filter_map(|n| match &n.load {
            None => Some(format!("{} has not reported", n.id)),
            Some(l) if now_ms.saturating_sub(l.reported_at_ms) > limits.stale_after_ms => {
                Some(format!(
                    "{} last reported {} ago",
                    n.id,
                    duration_ms(now_ms.saturating_sub(l.reported_at_ms))
                ))
            }
            Some(_) => None,
        })
        .collect();
    let name = "every node reports its load";
    let ok = format!("every report is under {} old", duration_ms(limits.stale_after_ms));
    checks.push(if stale.is_empty() {
        CheckLine::pass(name, ok)
    } else {
        CheckLine::fail(name, list_or(&stale, ""))
    });

    let ahead: Vec<String> = nodes
        .iter()
        .filter_map(|n| {
            let at = n.load.as_ref()?.reported_at_ms;
            let skew = at.saturating_sub(now_ms);
            (skew > limits.max_skew_ms).then(|| format!("{} is {} ahead", n.id, duration_ms(skew)))
        })
        .collect();
    let name = "node clocks agree with this machine";
    checks.push(if ahead.is_empty() {
        CheckLine::pass(
            name,
            format!("no report is more than {} ahead", duration_ms(limits.max_skew_ms)),
        )
    } else {
        CheckLine::fail(name, ahead.join(", "))
    });
    checks
}

/// The certificate check of one PEM file: every certificate in it parses, is valid now and
/// stays valid for at least `days` more days.
pub fn cert_check(path: &Path, pem: &[u8], now_secs: i64, days: u32) -> CheckLine {
    let name = format!("certificate {}", path.display());
    let mut soonest: Option<i64> = None;
    let mut count = 0;
    for block in Pem::iter_from_buffer(pem) {
        let block = match block {
            Ok(b) => b,
            Err(e) => return CheckLine::fail(&name, format!("not valid PEM: {e}")),
        };
        if block.label != "CERTIFICATE" {
            continue;
        }
        let cert = match block.parse_x509() {
            Ok(c) => c,
            Err(e) => return CheckLine::fail(&name, format!("not a valid certificate: {e}")),
        };
        count += 1;
        let validity = cert.validity();
        let (from, until) = (validity.not_before.timestamp(), validity.not_after.timestamp());
        if now_secs < from {
            return CheckLine::fail(
                &name,
                format!("{} is not valid until {}", cert.subject(), validity.not_before),
            );
        }
        if now_secs > until {
            return CheckLine::fail(
                &name,
                format!("{} expired on {}", cert.subject(), validity.not_after),
            );
        }
        soonest = Some(soonest.map_or(until, |s| s.min(until)));
    }
    let Some(until) = soonest else {
        return CheckLine::fail(&name, "holds no certificate");
    };
    let left_days = (until - now_secs) / 86_400;
    let plural = if count == 1 { "" } else { "s" };
    if left_days < i64::from(days) {
        CheckLine::fail(
            &name,
            format!("expires in {left_days} days (less than the {days} required)"),
        )
    } else {
        CheckLine::pass(&name, format!("{count} certificate{plural} valid {left_days} more days"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::LoadView;

    const NOW: u64 = 1_700_000_000_000;
    const LIMITS: Limits = Limits { stale_after_ms: 10_000, max_skew_ms: 2_000 };

    fn node(id: &str, role: &str, state: &str, reported_ago_ms: Option<i64>) -> NodeView {
        NodeView {
            id: id.into(),
            role: role.into(),
            state: state.into(),
            load: reported_ago_ms.map(|ago| LoadView {
                reported_at_ms: (NOW as i64 - ago) as u64,
                ..LoadView::default()
            }),
            ..NodeView::default()
        }
    }

    fn healthy() -> Vec<NodeView> {
        vec![
            node("o1", "origin", "ready", Some(1_000)),
            node("e1", "edge", "ready", Some(500)),
            node("e2", "edge", "ready", Some(-500)),
        ]
    }

    #[test]
    fn a_healthy_cluster_passes() {
        let report = CheckReport::new(node_checks(&healthy(), NOW, LIMITS));
        assert!(report.ok, "{}", render(&report));
        assert!(render(&report).ends_with("all checks passed\n"));
        assert!(render(&report).starts_with("✓ at least one ready origin: 1 of 1 origin ready\n"));
    }

    #[test]
    fn no_edge_fails() {
        let nodes = vec![node("o1", "origin", "ready", Some(0))];
        let checks = node_checks(&nodes, NOW, LIMITS);
        let edge = checks.iter().find(|c| c.name == "at least one ready edge").unwrap();
        assert!(!edge.ok);
        assert_eq!(edge.detail, "0 of 0 edges ready");
    }

    #[test]
    fn a_starting_node_and_a_stale_report_fail() {
        let mut nodes = healthy();
        nodes.push(node("e3", "edge", "starting", None));
        nodes.push(node("e4", "edge", "ready", Some(15_000)));
        let report = CheckReport::new(node_checks(&nodes, NOW, LIMITS));
        let text = render(&report);
        assert!(text.contains("✗ every node is ready: edge e3 is starting\n"), "{text}");
        assert!(
            text.contains(
                "✗ every node reports its load: e3 has not reported, e4 last reported 15s ago\n"
            ),
            "{text}"
        );
        assert_eq!(report.failed(), 2, "{text}");
        assert!(!text.contains("all checks passed"), "{text}");
    }

    #[test]
    fn a_clock_ahead_fails() {
        let mut nodes = healthy();
        nodes.push(node("e5", "edge", "ready", Some(-5_000)));
        let checks = node_checks(&nodes, NOW, LIMITS);
        let clock = checks.last().unwrap();
        assert!(!clock.ok);
        assert_eq!(clock.detail, "e5 is 5s ahead");
    }

    fn pem(not_before: (i32, u8, u8), not_after: (i32, u8, u8)) -> String {
        let mut params = rcgen::CertificateParams::new(vec!["cp.test".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(not_before.0, not_before.1, not_before.2);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().pem()
    }

    /// 2025-01-01T00:00:00Z.
    const JAN_2025: i64 = 1_735_689_600;

    #[test]
    fn certificates_valid_expiring_expired_and_not_yet_valid() {
        let path = Path::new("ca.pem");
        let good = pem((2024, 1, 1), (2026, 1, 1));
        let c = cert_check(path, good.as_bytes(), JAN_2025, 30);
        assert!(c.ok, "{c:?}");
        assert_eq!(c.detail, "1 certificate valid 365 more days");
        let c = cert_check(path, good.as_bytes(), JAN_2025, 400);
        assert!(!c.ok);
        assert_eq!(c.detail, "expires in 365 days (less than the 400 required)");
        let old = pem((2020, 1, 1), (2024, 6, 1));
        let c = cert_check(path, old.as_bytes(), JAN_2025, 30);
        assert!(!c.ok && c.detail.contains("expired on"), "{c:?}");
        let future = pem((2025, 6, 1), (2027, 1, 1));
        let c = cert_check(path, future.as_bytes(), JAN_2025, 30);
        assert!(!c.ok && c.detail.contains("is not valid until"), "{c:?}");
        // A chain: the soonest expiry counts.
        let chain = format!("{good}{}", pem((2024, 1, 1), (2025, 1, 11)));
        let c = cert_check(path, chain.as_bytes(), JAN_2025, 30);
        assert_eq!(c.detail, "expires in 10 days (less than the 30 required)");
    }

    #[test]
    fn not_a_certificate() {
        let c = cert_check(Path::new("x"), b"hello", JAN_2025, 30);
        assert_eq!((c.ok, c.detail.as_str()), (false, "holds no certificate"));
        let c = cert_check(Path::new("x"), b"-----BEGIN CERTIFICATE-----\n!!\n", JAN_2025, 30);
        assert!(!c.ok, "{c:?}");
    }
}
