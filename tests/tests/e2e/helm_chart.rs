//! The Helm chart (helm/sluice) against what schemas cannot check. `helm/test.sh` renders
//! every value set for Kubernetes 1.30 and 1.35 and validates each object against the
//! Kubernetes schemas; these tests read those renderings (k8s-openapi types) and check them
//! against each other and against the real binaries: every flag a container passes exists in
//! that binary's `--help`; Services select pods and target ports those pods have; autoscalers
//! and budgets name rendered workloads and leave room to evict; grace periods cover preStop
//! plus the drain deadline; and the rendered origin, edge and control-plane pods, started
//! with their own command line (paths and addresses moved to loopback), sign their relay
//! certificates with the rendered init script, answer their probes, and carry a stream
//! from origin to edge over the relay.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Container, Probe, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sluice_tests::helm::{
    command_of, flag_name, flag_value, help_flags, int, rendered_sets, selects, RenderedSet,
    Workload,
};

mod lifecycle;
mod pods;

const BINARIES: [&str; 3] = ["sluice-origin", "sluice-edge", "sluice-control-plane"];

fn sets(test: &str) -> Option<Vec<RenderedSet>> {
    let sets = rendered_sets(test)?;
    // Default values and four value sets (helm/sluice/ci), on two Kubernetes versions.
    assert!(sets.len() >= 10, "expected >= 10 renderings, got {}", sets.len());
    Some(sets)
}

#[test]
fn every_container_flag_exists_in_its_binary() {
    let Some(sets) = sets("every_container_flag_exists_in_its_binary") else { return };
    let helps: BTreeMap<&str, _> = BINARIES.iter().map(|b| (*b, help_flags(b))).collect();
    let mut checked = 0;
    for set in &sets {
        for w in set.workloads() {
            for c in w.containers() {
                let Some(binary) = command_of(c).filter(|b| b.starts_with("sluice-")) else {
                    continue;
                };
                let help = helps.get(binary).unwrap_or_else(|| panic!("unknown binary {binary}"));
                for arg in c.args.iter().flatten() {
                    let flag = flag_name(arg).unwrap_or_else(|| {
                        panic!("{}: {}: argument {arg:?} is not --flag=value", set.name, w.name)
                    });
                    checked += 1;
                    assert!(
                        help.contains(flag),
                        "{}: {} passes {flag}, which `{binary} --help` does not list",
                        set.name,
                        w.name
                    );
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} flags found");
}

/// The container ports of a workload: (name, number, protocol).
fn container_ports(w: &Workload) -> Vec<(String, i32, String)> {
    w.containers()
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .map(|p| {
            let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
            (p.name.clone().unwrap_or_default(), p.container_port, protocol)
        })
        .collect()
}

fn has_port(w: &Workload, port: &IntOrString, protocol: &str) -> bool {
    container_ports(w).iter().any(|(name, number, proto)| {
        proto == protocol
            && match port {
                IntOrString::Int(n) => n == number,
                IntOrString::String(s) => s == name,
            }
    })
}

#[test]
fn services_select_pods_and_target_their_ports() {
    let Some(sets) = sets("services_select_pods_and_target_their_ports") else { return };
    for set in &sets {
        let workloads = set.workloads();
        for w in &workloads {
            assert!(selects(&w.selector, &w.labels()), "{}: {} selects its pods", set.name, w.name);
        }
        for svc in set.of_kind::<Service>("Service") {
            let name = svc.metadata.name.clone().unwrap_or_default();
            let spec = svc.spec.expect("a Service has a spec");
            let selector = spec.selector.unwrap_or_default();
            let chosen: Vec<&Workload> =
                workloads.iter().filter(|w| selects(&selector, &w.labels())).collect();
            assert_eq!(chosen.len(), 1, "{}: Service {name} selects one workload", set.name);
            for port in spec.ports.iter().flatten() {
                let target = port.target_port.clone().unwrap_or(IntOrString::Int(port.port));
                let protocol = port.protocol.as_deref().unwrap_or("TCP");
                assert!(
                    has_port(chosen[0], &target, protocol),
                    "{}: Service {name} port {:?} targets {target:?}/{protocol}, which {} lacks",
                    set.name,
                    port.name,
                    chosen[0].name
                );
            }
        }
        for np in set.of_kind::<NetworkPolicy>("NetworkPolicy") {
            let spec = np.spec.expect("a NetworkPolicy has a spec");
            let selector = spec.pod_selector.and_then(|s| s.match_labels).unwrap_or_default();
            let name = np.metadata.name.unwrap_or_default();
            let chosen: Vec<&Workload> =
                workloads.iter().filter(|w| selects(&selector, &w.labels())).collect();
            assert_eq!(chosen.len(), 1, "{}: NetworkPolicy {name} selects one workload", set.name);
            for rule in spec.ingress.iter().flatten() {
                for p in rule.ports.iter().flatten() {
                    let port = p.port.clone().expect("policy ports are named");
                    let protocol = p.protocol.as_deref().unwrap_or("TCP");
                    assert!(
                        has_port(chosen[0], &port, protocol),
                        "{}: NetworkPolicy {name} opens {port:?}/{protocol}, not on {}",
                        set.name,
                        chosen[0].name
                    );
                }
            }
        }
    }
}

fn probes(c: &Container) -> Vec<(&'static str, &Probe)> {
    [
        ("startup", c.startup_probe.as_ref()),
        ("liveness", c.liveness_probe.as_ref()),
        ("readiness", c.readiness_probe.as_ref()),
    ]
    .into_iter()
    .filter_map(|(k, p)| p.map(|p| (k, p)))
    .collect()
}

#[test]
fn probes_name_container_ports_and_sluice_containers_have_all_three() {
    let Some(sets) = sets("probes_name_container_ports") else { return };
    for set in &sets {
        for w in set.workloads() {
            for c in w.containers() {
                let sluice = command_of(c).is_some_and(|b| BINARIES.contains(&b));
                if sluice {
                    assert_eq!(probes(c).len(), 3, "{}: {} has three probes", set.name, w.name);
                }
                for (kind, probe) in probes(c) {
                    let get = probe.http_get.as_ref().expect("HTTP probes");
                    let named = c.ports.iter().flatten().find(|p| match &get.port {
                        IntOrString::String(s) => p.name.as_deref() == Some(s),
                        IntOrString::Int(n) => p.container_port == *n,
                    });
                    let port = named.unwrap_or_else(|| {
                        panic!("{}: {} {kind} probe port {:?} unknown", set.name, w.name, get.port)
                    });
                    if sluice {
                        // The probe's port is the one the binary serves HTTP on.
                        let args = c.args.clone().unwrap_or_default();
                        let listen = flag_value(&args, "--http-listen").expect("--http-listen");
                        assert!(
                            listen.ends_with(&format!(":{}", port.container_port)),
                            "{}: {} {kind} probe on {} but HTTP listens on {listen}",
                            set.name,
                            w.name,
                            port.container_port
                        );
                    }
                }
            }
        }
    }
}

/// The name an autoscaler scales, and its least replica count.
fn autoscaled(set: &RenderedSet) -> Vec<(String, String, i32)> {
    let mut out = Vec::new();
    for hpa in set.of_kind::<HorizontalPodAutoscaler>("HorizontalPodAutoscaler") {
        let spec = hpa.spec.expect("an HPA has a spec");
        let r = spec.scale_target_ref;
        assert!(spec.min_replicas.unwrap_or(1) <= spec.max_replicas, "{}: HPA bounds", set.name);
        assert!(spec.behavior.is_some(), "{}: the HPA sets its scaling behaviour", set.name);
        out.push((r.kind, r.name, spec.min_replicas.unwrap_or(1)));
    }
    for so in set.raw_of_kind("ScaledObject") {
        let r = &so["spec"]["scaleTargetRef"];
        let kind = r["kind"].as_str().unwrap_or("Deployment").to_string();
        let min = so["spec"]["minReplicaCount"].as_i64().unwrap_or(0);
        let behavior = &so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
        assert!(behavior["scaleDown"]["stabilizationWindowSeconds"].is_number(), "{}", set.name);
        assert!(behavior["scaleUp"]["policies"].is_array(), "{}: scale-up policy", set.name);
        out.push((kind, r["name"].as_str().unwrap_or_default().into(), min as i32));
    }
    out
}

#[test]
fn autoscalers_target_workloads_and_budgets_leave_room() {
    let Some(sets) = sets("autoscalers_target_workloads") else { return };
    for set in &sets {
        let workloads = set.workloads();
        let scaled = autoscaled(set);
        assert!(scaled.len() <= 1, "{}: one autoscaler for the edges at most", set.name);
        for (kind, name, _) in &scaled {
            let w = workloads.iter().find(|w| &w.name == name);
            let w = w.unwrap_or_else(|| panic!("{}: autoscaler targets unknown {name}", set.name));
            assert_eq!(w.kind, kind.as_str(), "{}: autoscaler target kind", set.name);
            assert!(w.container_running("sluice-edge").is_some(), "{}: it scales edges", set.name);
            assert!(w.replicas.is_none(), "{}: {name} leaves replicas to the autoscaler", set.name);
        }
        // KEDA asks the control plane's Service on its gRPC port.
        for so in set.raw_of_kind("ScaledObject") {
            let address = so["spec"]["triggers"][0]["metadata"]["scalerAddress"].as_str();
            let (host, port) = address.and_then(|a| a.rsplit_once(':')).expect("host:port");
            let svc = set
                .of_kind::<Service>("Service")
                .into_iter()
                .find(|s| host.starts_with(&format!("{}.", s.metadata.name.as_deref().unwrap())))
                .unwrap_or_else(|| panic!("{}: scaler address {host} names no Service", set.name));
            let grpc = svc.spec.and_then(|s| s.ports).unwrap_or_default();
            let grpc = grpc.iter().find(|p| p.name.as_deref() == Some("grpc")).expect("grpc");
            assert_eq!(port, grpc.port.to_string(), "{}: scaler port", set.name);
        }
        for pdb in set.of_kind::<PodDisruptionBudget>("PodDisruptionBudget") {
            let name = pdb.metadata.name.unwrap_or_default();
            let spec = pdb.spec.expect("a PDB has a spec");
            let selector = spec.selector.and_then(|s| s.match_labels).unwrap_or_default();
            let chosen: Vec<&Workload> =
                workloads.iter().filter(|w| selects(&selector, &w.labels())).collect();
            assert_eq!(chosen.len(), 1, "{}: PDB {name} selects one workload", set.name);
            let w = chosen[0];
            let least = scaled
                .iter()
                .find(|(_, n, _)| n == &w.name)
                .map(|(_, _, min)| *min)
                .or(w.replicas)
                .unwrap_or_else(|| panic!("{}: {} has no replica count", set.name, w.name));
            if let Some(min) = spec.min_available {
                assert!(int(&min) < least, "{}: PDB {name} minAvailable < {least}", set.name);
            }
            if let Some(max) = spec.max_unavailable {
                assert!(int(&max) >= 1, "{}: PDB {name} lets a pod go", set.name);
            }
        }
    }
}

#[test]
fn grace_periods_cover_prestop_and_the_drain_deadline() {
    let Some(sets) = sets("grace_periods") else { return };
    for set in &sets {
        for binary in ["sluice-origin", "sluice-edge"] {
            let w = set.workload_running(binary);
            let c = w.container_running(binary).expect("container");
            let args = c.args.clone().unwrap_or_default();
            let drain = flag_value(&args, "--drain-timeout").expect("--drain-timeout");
            let drain: i64 = drain.strip_suffix('s').and_then(|s| s.parse().ok()).expect("Ns");
            let pre_stop = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref());
            let sleep = pre_stop.and_then(|h| h.exec.as_ref()).and_then(|e| e.command.clone());
            let sleep = sleep.expect("preStop runs a command");
            assert_eq!(sleep[0], "sleep", "{}: preStop sleeps", set.name);
            let pre: i64 = sleep[1].parse().expect("whole seconds");
            let spec = w.template.spec.as_ref().expect("pod spec");
            let grace = spec.termination_grace_period_seconds.expect("grace period set");
            assert!(
                grace >= pre + drain,
                "{}: {} grace {grace}s < preStop {pre}s + drain {drain}s",
                set.name,
                w.name
            );
        }
    }
}
