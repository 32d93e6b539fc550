//! `sluicectl check`: gathers what the checks need (connection, health, node listing,
//! certificate files) and prints the verdicts of `checks`. A failure to connect or call is a
//! failed check, not an error of the command, so the report is always complete up to the
//! first check the rest depend on.

use std::io::Write;
use std::path::PathBuf;

use sluice_proto::control::v1 as pb;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::HealthCheckRequest;

use crate::args::{CheckArgs, Format};
use crate::checks::{cert_check, count, node_checks, render, CheckLine, CheckReport, Limits};
use crate::client::Conn;
use crate::config::Settings;
use crate::error::CtlError;
use crate::output::{encode, write};
use crate::units::now_ms;
use crate::views;

/// The health service names the control plane registers: the server as a whole and the API.
const HEALTH_SERVICES: [&str; 2] = ["", "sluice.control.v1.ControlPlane"];

pub async fn run(
    args: &CheckArgs,
    settings: &Settings,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), CtlError> {
    let mut checks = control_plane_checks(args, settings).await;
    checks.extend(certificate_checks(args, settings));
    let report = CheckReport::new(checks);
    write(out, &encode(format, &report, render)?);
    if report.ok {
        Ok(())
    } else {
        Err(CtlError::ChecksFailed { failed: report.failed(), total: report.checks.len() })
    }
}

async fn control_plane_checks(args: &CheckArgs, settings: &Settings) -> Vec<CheckLine> {
    let mut checks = Vec::new();
    let name = "control plane reachable";
    let conn = match Conn::connect(settings).await {
        Ok(conn) => {
            checks.push(CheckLine::pass(name, settings.endpoint.clone()));
            conn
        }
        Err(e) => {
            checks.push(CheckLine::fail(name, e.to_string()));
            return checks;
        }
    };

    let name = "control plane serving (grpc.health.v1)";
    let mut not_serving = Vec::new();
    for service in HEALTH_SERVICES {
        let request = HealthCheckRequest { service: service.to_string() };
        match conn.call("Health.Check", conn.health().check(request)).await {
            Ok(r) if r.status() == ServingStatus::Serving => {}
            Ok(r) => not_serving.push(format!("{service:?} is {:?}", r.status())),
            Err(e) => not_serving.push(e.to_string()),
        }
    }
    // A dead connection fails both services alike: say it once.
    not_serving.dedup();
    checks.push(if not_serving.is_empty() {
        CheckLine::pass(name, "SERVING")
    } else {
        CheckLine::fail(name, not_serving.join(", "))
    });

    // The control plane learns the cluster from etcd: listing it proves the registry is read.
    let name = "cluster registry (etcd) readable";
    let listed = async {
        let nodes =
            conn.call("ListNodes", conn.control().list_nodes(pb::ListNodesRequest {})).await?;
        let streams = conn
            .call("ListStreams", conn.control().list_streams(pb::ListStreamsRequest {}))
            .await?;
        Ok::<_, CtlError>((nodes, streams))
    };
    let (nodes, streams) = match listed.await {
        Ok(answers) => answers,
        Err(e) => {
            checks.push(CheckLine::fail(name, e.to_string()));
            return checks;
        }
    };
    let nodes = views::nodes(nodes.nodes);
    checks.push(CheckLine::pass(
        name,
        format!("{}, {}", count(nodes.len(), "node"), count(streams.streams.len(), "stream")),
    ));
    let limits = Limits {
        stale_after_ms: u64::try_from(args.stale_after.as_millis()).unwrap_or(u64::MAX),
        max_skew_ms: u64::try_from(args.max_clock_skew.as_millis()).unwrap_or(u64::MAX),
    };
    checks.extend(node_checks(&nodes, now_ms(), limits));
    checks
}

/// The `--ca` file (when set) and every `--cert`.
fn certificate_checks(args: &CheckArgs, settings: &Settings) -> Vec<CheckLine> {
    let files: Vec<&PathBuf> = settings.ca.iter().chain(&args.certs).collect();
    let now_secs = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
    files
        .into_iter()
        .map(|path| match std::fs::read(path) {
            Ok(pem) => cert_check(path, &pem, now_secs, args.cert_days),
            Err(e) => CheckLine::fail(
                &format!("certificate {}", path.display()),
                format!("cannot read it: {e}"),
            ),
        })
        .collect()
}
