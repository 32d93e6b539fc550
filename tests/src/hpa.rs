//! The Kubernetes HorizontalPodAutoscaler's decision, sans-IO, for the lifecycle harness: what
//! the HPA that KEDA creates from the chart's ScaledObject would do with the control plane's
//! external-scaler answers. It follows the controller (`pkg/controller/podautoscaler`): for an
//! `AverageValue` target the proposal is `ceil(metric / target)`, kept at the current count
//! while `metric / (target x current)` is within the tolerance (0.1) of 1; then the
//! stabilisation windows (the lowest recommendation of the scale-up window, the highest of the
//! scale-down window); then the rate policies, each over its period from the replica count at
//! the period's start (`Pods`: plus or minus the value; `Percent`: `ceil(n x (1 ± p/100))`),
//! chosen by `selectPolicy`; then min and max replicas. Time is given, never read.

use std::time::{Duration, Instant};

use serde_json::Value;

/// The controller's default tolerance.
pub const TOLERANCE: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Pods,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub kind: PolicyKind,
    pub value: i32,
    pub period: Duration,
}

/// `selectPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    Max,
    Min,
    Disabled,
}

/// `HPAScalingRules`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    pub window: Duration,
    pub policies: Vec<Policy>,
    pub select: Select,
}

impl Rules {
    /// From a rendered `HPAScalingRules` object.
    pub fn from_json(v: &Value) -> Rules {
        let secs = |v: &Value| Duration::from_secs(v.as_u64().unwrap_or(0));
        let policies = v["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| Policy {
                kind: match p["type"].as_str() {
                    Some("Pods") => PolicyKind::Pods,
                    Some("Percent") => PolicyKind::Percent,
                    other => panic!("policy type {other:?}"),
                },
                value: i32::try_from(p["value"].as_i64().expect("value")).expect("i32"),
                period: secs(&p["periodSeconds"]),
            })
            .collect();
        let select = match v["selectPolicy"].as_str() {
            None | Some("Max") => Select::Max,
            Some("Min") => Select::Min,
            Some("Disabled") => Select::Disabled,
            other => panic!("selectPolicy {other:?}"),
        };
        Rules { window: secs(&v["stabilizationWindowSeconds"]), policies, select }
    }
}

/// One autoscaler: its bounds, rules and the history its decisions depend on.
#[derive(Debug, Clone)]
pub struct Hpa {
    pub min: i32,
    pub max: i32,
    pub up: Rules,
    pub down: Rules,
    recommendations: Vec<(Instant, i32)>,
    /// Scale events: (when, replicas added (positive) or removed (negative)).
    events: Vec<(Instant, i32)>,
}

impl Hpa {
    pub fn new(min: i32, max: i32, up: Rules, down: Rules) -> Hpa {
        Hpa { min, max, up, down, recommendations: Vec::new(), events: Vec::new() }
    }

    /// From a rendered KEDA ScaledObject (its `minReplicaCount`, `maxReplicaCount` and
    /// `advanced.horizontalPodAutoscalerConfig.behavior`).
    pub fn from_scaled_object(so: &Value) -> Hpa {
        let spec = &so["spec"];
        let behavior = &spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
        let count = |v: &Value| i32::try_from(v.as_i64().expect("replica count")).expect("i32");
        Hpa::new(
            count(&spec["minReplicaCount"]),
            count(&spec["maxReplicaCount"]),
            Rules::from_json(&behavior["scaleUp"]),
            Rules::from_json(&behavior["scaleDown"]),
        )
    }

    /// One sync at `now`: `current` replicas, the metric's total `value` against its
    /// `AverageValue` target. Returns the replica count to set.
    pub fn sync(&mut self, now: Instant, current: i32, value: f64, target: f64) -> i32 {
        let ratio = value / (target * f64::from(current.max(1)));
        let proposal =
            if (ratio - 1.0).abs() <= TOLERANCE { current } else { (value / target).ceil() as i32 };
        let stabilized = self.stabilize(now, current, proposal);
        let desired = self.limit_rate(now, current, stabilized).clamp(self.min, self.max);
        if desired != current {
            self.events.push((now, desired - current));
        }
        desired
    }

    fn stabilize(&mut self, now: Instant, current: i32, proposal: i32) -> i32 {
        let longest = self.up.window.max(self.down.window);
        self.recommendations.retain(|(t, _)| now.duration_since(*t) <= longest);
        let (mut up, mut down) = (proposal, proposal);
        for &(t, r) in &self.recommendations {
            let age = now.duration_since(t);
            if age < self.up.window {
                up = up.min(r);
            }
            if age < self.down.window {
                down = down.max(r);
            }
        }
        self.recommendations.push((now, proposal));
        current.max(up).min(down)
    }

    fn limit_rate(&self, now: Instant, current: i32, desired: i32) -> i32 {
        if desired > current {
            desired.min(self.limit(now, current, &self.up, 1))
        } else if desired < current {
            desired.max(self.limit(now, current, &self.down, -1))
        } else {
            desired
        }
    }

    /// The furthest count the rules allow now, upwards (`sign` 1) or downwards (-1).
    fn limit(&self, now: Instant, current: i32, rules: &Rules, sign: i32) -> i32 {
        if rules.select == Select::Disabled {
            return current;
        }
        // `Max` picks the largest change: the highest count up, the lowest down; `Min` the
        // smallest.
        let highest = (rules.select == Select::Max) == (sign > 0);
        let mut result: Option<i32> = None;
        for p in &rules.policies {
            let (mut added, mut removed) = (0, 0);
            for &(t, change) in &self.events {
                if now.duration_since(t) < p.period {
                    if change > 0 {
                        added += change;
                    } else {
                        removed -= change;
                    }
                }
            }
            let start = current - added + removed;
            let proposed = match p.kind {
                PolicyKind::Pods => start + sign * p.value,
                PolicyKind::Percent => {
                    let factor = 1.0 + f64::from(sign * p.value) / 100.0;
                    (f64::from(start) * factor).ceil() as i32
                }
            };
            result = Some(match result {
                None => proposed,
                Some(r) if highest => r.max(proposed),
                Some(r) => r.min(proposed),
            });
        }
        result.unwrap_or(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(window: u64, policies: &[(PolicyKind, i32)]) -> Rules {
        Rules {
            window: Duration::from_secs(window),
            policies: policies
                .iter()
                .map(|&(kind, value)| Policy { kind, value, period: Duration::from_secs(60) })
                .collect(),
            select: Select::Max,
        }
    }

    fn chart(down_pods: Option<i32>) -> Hpa {
        let mut down = vec![(PolicyKind::Percent, 10)];
        down.extend(down_pods.map(|n| (PolicyKind::Pods, n)));
        Hpa::new(
            1,
            20,
            rules(0, &[(PolicyKind::Pods, 4), (PolicyKind::Percent, 100)]),
            rules(300, &down),
        )
    }

    #[test]
    fn proposals_follow_the_metric_within_the_tolerance() {
        let t0 = Instant::now();
        let mut h = chart(Some(1));
        // 105 viewers on 1 edge at 100 each: within 10 %, no change.
        assert_eq!(h.sync(t0, 1, 105.0, 100.0), 1);
        // 350: four edges, but at most 4 more and 100 % per minute from 1: max(5, 2) = 5, so 4.
        assert_eq!(h.sync(t0 + Duration::from_secs(15), 1, 350.0, 100.0), 4);
        // 2 000 a minute later: from 4, max(4 + 4, 8) = 8 per minute.
        assert_eq!(h.sync(t0 + Duration::from_secs(90), 4, 2_000.0, 100.0), 8);
        // Within the same minute no more is allowed.
        assert_eq!(h.sync(t0 + Duration::from_secs(105), 8, 2_000.0, 100.0), 8);
    }

    #[test]
    fn scale_down_waits_for_the_window_and_keeps_to_the_policies() {
        let t0 = Instant::now();
        let mut h = chart(Some(1));
        assert_eq!(h.sync(t0, 3, 300.0, 100.0), 3);
        // The audience leaves: nothing happens within the 300 s window.
        for s in (15..300).step_by(15) {
            assert_eq!(h.sync(t0 + Duration::from_secs(s), 3, 0.0, 100.0), 3, "at {s} s");
        }
        // Then one pod a minute (10 % of 3 rounds up to no pod at all).
        assert_eq!(h.sync(t0 + Duration::from_secs(315), 3, 0.0, 100.0), 2);
        assert_eq!(h.sync(t0 + Duration::from_secs(330), 2, 0.0, 100.0), 2);
        assert_eq!(h.sync(t0 + Duration::from_secs(380), 2, 0.0, 100.0), 1);
    }

    #[test]
    fn a_percent_policy_alone_never_shrinks_a_small_fleet() {
        let t0 = Instant::now();
        let mut h = chart(None);
        for s in (0..1200).step_by(15) {
            assert_eq!(h.sync(t0 + Duration::from_secs(s), 3, 0.0, 100.0), 3, "at {s} s");
        }
    }
}
