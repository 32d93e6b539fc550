//! The rendered pods started for real: each container's own command line, with what only a
//! Kubernetes node provides moved to this machine (listen addresses to loopback port 0, the
//! pod's mounted paths to a scratch directory, the etcd endpoint to a test etcd, `$(POD_*)`
//! to the pod's name and 127.0.0.1). Node pods first run their rendered init container's
//! script, which signs the pod's relay certificate with a CA from `sluice-origin gen-certs`
//! (what the chart's Job stores), so the relay between origin and edge is the chart's mTLS.

use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Container;
use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane;
use sluice_tests::helm::{flag_name, rendered_sets, RenderedSet, Workload};
use sluice_tests::origin::TestDir;
use sluice_tests::paths;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, http, secs, Origin, Player};

use super::probes;

/// Where the chart mounts the pods' secrets and scratch volumes, and its image's web page.
const MOUNTS: &str = "/var/run/sluice/";
const IMAGE_WEB_DIR: &str = "/usr/share/sluice/web";

/// A pod's scratch root standing in for `/var/run/sluice`: the relay CA Secret (`ca/`), the
/// init container's output (`tls/`), the HLS session key Secret (`hls/key`), the edges'
/// HTTPS Secret (`https/`: `cp`'s certificate, which names localhost), and what `access`
/// mounts (the set's quotas ConfigMap, the publish and play secrets, the etcd password).
fn pod_root(set: &RenderedSet, c: &TestCluster, label: &str) -> TestDir {
    let root = TestDir::new(label);
    for dir in ["ca", "tls", "hls", "https"] {
        std::fs::create_dir_all(root.path().join(dir)).expect("pod directories");
    }
    for file in ["ca.pem", "ca.key"] {
        std::fs::copy(c.certs_dir().join(file), root.path().join("ca").join(file)).expect("CA");
    }
    for (from, to) in [("cp.pem", "tls.crt"), ("cp.key", "tls.key")] {
        std::fs::copy(c.certs_dir().join(from), root.path().join("https").join(to))
            .expect("HTTPS Secret");
    }
    std::fs::write(root.path().join("hls/key"), "a shared HLS session key for the test")
        .expect("HLS key");
    etcd_client_secret(c, root.path());
    access_secrets(c, root.path());
    let write = |path: &str, text: &str| {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().expect("a directory")).expect("pod directories");
        std::fs::write(path, text).expect("a mounted file");
    };
    // The key of `live/keyed` (any key: the test's publisher uses the open app).
    write("publish-keys/keys", &format!("live/keyed sha256:{}\n", "ab".repeat(32)));
    write("publish-token/secret", "a-publish-token-secret-for-the-test\n");
    for cm in set.raw_of_kind("ConfigMap") {
        if let Some(quotas) = cm["data"]["quotas.toml"].as_str() {
            write("quotas/quotas.toml", quotas);
        }
    }
    root
}

/// The secrets nodes and the control plane share: the play token secret, and with etcd's
/// authentication on the password (`etcd-auth/password`).
fn access_secrets(c: &TestCluster, root: &Path) {
    std::fs::create_dir_all(root.join("play-token")).expect("play-token");
    std::fs::write(root.join("play-token/secret"), "a-play-token-secret-for-the-test\n")
        .expect("play token secret");
    if let Some(password) = c.etcd_password_file() {
        std::fs::create_dir_all(root.join("etcd-auth")).expect("etcd-auth");
        std::fs::copy(password, root.join("etcd-auth/password")).expect("etcd password");
    }
}

/// With a TLS etcd, the etcd client Secret (`etcd-tls/`: ca.crt, tls.crt, tls.key), holding
/// the certificate of `etcd-client`.
fn etcd_client_secret(c: &TestCluster, root: &Path) {
    if !c.etcd_tls() {
        return;
    }
    std::fs::create_dir_all(root.join("etcd-tls")).expect("etcd-tls");
    let files =
        [("ca.pem", "ca.crt"), ("etcd-client.pem", "tls.crt"), ("etcd-client.key", "tls.key")];
    for (from, to) in files {
        std::fs::copy(c.certs_dir().join(from), root.join("etcd-tls").join(to))
            .expect("etcd client Secret");
    }
}

/// The control plane's scratch root: its admin token Secret (`token/token`) and its TLS
/// Secret (`cp-tls/tls.crt`, `cp-tls/tls.key`).
fn control_plane_root(c: &TestCluster) -> TestDir {
    let root = TestDir::new("control-plane");
    for dir in ["token", "cp-tls"] {
        std::fs::create_dir_all(root.path().join(dir)).expect("pod directories");
    }
    std::fs::write(root.path().join("token/token"), "an-admin-token-for-the-test\n")
        .expect("token");
    for (from, to) in [("cp.pem", "tls.crt"), ("cp.key", "tls.key")] {
        std::fs::copy(c.certs_dir().join(from), root.path().join("cp-tls").join(to))
            .expect("TLS Secret");
    }
    etcd_client_secret(c, root.path());
    access_secrets(c, root.path());
    root
}

fn remap(text: &str, root: &Path) -> String {
    text.replace(MOUNTS, &format!("{}/", root.display()))
}

/// Runs the pod's init container (the relay certificate) as the rendered script says.
fn run_cert_init(w: &Workload, pod: &str, root: &Path) {
    let spec = w.template.spec.as_ref().expect("pod spec");
    let init = spec.init_containers.iter().flatten().find(|c| c.name == "relay-cert");
    let init = init.unwrap_or_else(|| panic!("{} has a relay-cert init container", w.name));
    let command = init.command.clone().expect("init command");
    let args: Vec<String> = init.args.iter().flatten().map(|a| remap(a, root)).collect();
    let out = Command::new(&command[0])
        .args(&command[1..])
        .args(&args)
        .env("POD_NAME", pod)
        .current_dir(root)
        .output()
        .expect("run the init container's script (sh, openssl)");
    assert!(out.status.success(), "{}: relay-cert init failed: {out:?}", w.name);
    assert!(root.join(format!("tls/{pod}.pem")).is_file(), "{pod}.pem written");
}

/// Flags the launchers set themselves (loopback port 0): the node launcher's, and the
/// control plane's, which also points it at the test etcd.
const NODE_LAUNCHER: &[&str] = &["--rtmp-listen", "--http-listen"];
const CONTROL_PLANE_LAUNCHER: &[&str] = &[
    "--grpc-listen",
    "--http-listen",
    "--etcd",
    "--etcd-prefix",
    "--etcd-ca-file",
    "--etcd-cert-file",
    "--etcd-key-file",
    "--etcd-user",
    "--etcd-password-file",
];

/// The container's args for this machine, without the flags in `launcher` (set by the
/// launcher) and the public ports.
fn local_args(
    c: &Container,
    pod: &str,
    (cluster, root): (&TestCluster, &Path),
    launcher: &[&str],
) -> Vec<String> {
    let web = paths::workspace_root().join("web");
    let mut out = Vec::new();
    for arg in c.args.iter().flatten() {
        let flag = flag_name(arg).expect("--flag=value");
        // The public ports are what the Service maps; nothing maps them here.
        if launcher.contains(&flag) || flag.starts_with("--public-") && flag.ends_with("-port") {
            continue;
        }
        let arg = match flag {
            "--relay-listen" => "--relay-listen=127.0.0.1:0".to_string(),
            "--etcd" => format!("--etcd={}", cluster.etcd.endpoint()),
            "--etcd-prefix" => format!("--etcd-prefix={}", cluster.prefix),
            // Cluster DNS names do not resolve here.
            "--advertise-host" => "--advertise-host=127.0.0.1".to_string(),
            "--public-host" => "--public-host=localhost".to_string(),
            "--https-listen" => "--https-listen=127.0.0.1:0".to_string(),
            "--rtmps-listen" => "--rtmps-listen=127.0.0.1:0".to_string(),
            _ => remap(arg, root)
                .replace(IMAGE_WEB_DIR, web.to_str().expect("utf-8 path"))
                .replace("$(POD_NAME)", pod)
                .replace("$(POD_IP)", "127.0.0.1"),
        };
        out.push(arg);
    }
    out
}

/// Every probe of the container answers 200 on the process's HTTP port, over HTTPS (trusting
/// `ca`) when the probe says so.
fn probes_pass(set: &str, c: &Container, http: std::net::SocketAddr, ca: &Path) {
    for (kind, probe) in probes(c) {
        let get = probe.http_get.as_ref().expect("an httpGet probe");
        let path = get.path.clone().expect("probe path");
        let https = get.scheme.as_deref() == Some("HTTPS");
        let ok = wait_for(secs(20), || {
            let status = if https {
                let url = format!("https://localhost:{}{path}", http.port());
                let resolve = format!("localhost:{}:127.0.0.1", http.port());
                let ca = ca.to_str().expect("utf-8 path");
                http::curl_status(&url, &["--cacert", ca, "--resolve", &resolve])
            } else {
                http::get(http, &path, secs(2)).ok()?.status.to_string()
            };
            (status == "200").then_some(())
        });
        let scheme = if https { "HTTPS" } else { "HTTP" };
        assert!(
            ok.is_some(),
            "{set}: {} {kind} probe {scheme} GET {path} never answered 200",
            c.name
        );
    }
}

/// A rendered node pod (origin or edge), started.
pub(super) fn start_node(
    set: &RenderedSet,
    binary: &str,
    pod: &str,
    c: &TestCluster,
) -> (Origin, TestDir) {
    let w = set.workload_running(binary);
    let root = pod_root(set, c, pod);
    run_cert_init(&w, pod, root.path());
    let container = w.container_running(binary).expect("container");
    let args = local_args(container, pod, (c, root.path()), NODE_LAUNCHER);
    let node = Origin::try_start_bin(binary, &args.iter().map(String::as_str).collect::<Vec<_>>())
        .unwrap_or_else(|e| {
            panic!("{}: {pod} does not start with its rendered args: {e}", set.name)
        });
    probes_pass(&set.name, container, node.http, &c.certs_dir().join("ca.pem"));
    (node, root)
}

/// What one rendering's pods showed: ScaledObjects asked of the scaler, and edges that played
/// over HTTPS.
#[derive(Default)]
struct Checked {
    keda: usize,
    https: usize,
    rtmps: usize,
}

/// One rendering's origin, edge and control-plane pods, started and checked.
fn check_rendering(set: &RenderedSet) -> Checked {
    // The CA the chart's Job makes, and a certificate for `cp` and `localhost` standing in for
    // the control plane's TLS Secret.
    // A rendering for an etcd over TLS gets one (the pods present `etcd-client`'s certificate).
    let origin_args = set.workload_running("sluice-origin");
    let origin_args = origin_args.container_running("sluice-origin").expect("container");
    let has = |flag: &str| origin_args.args.iter().flatten().any(|a| a.starts_with(flag));
    let cluster = match (has("--etcd-ca-file"), has("--etcd-user")) {
        (true, true) => TestCluster::with_tls_etcd_and_password(
            "helm",
            &["cp", "etcd-client", "etcdctl"],
            "sluice",
            "an-etcd-password-for-the-chart",
        ),
        (true, false) => TestCluster::with_tls_etcd("helm", &["cp", "etcd-client"]),
        _ => TestCluster::new("helm", &["cp"]),
    };

    let (origin, _origin_root) = start_node(set, "sluice-origin", "sluice-origin-0", &cluster);
    let (edge, _edge_root) =
        start_node(set, "sluice-edge", "sluice-edge-6c9f8d7b5-x2k4q", &cluster);

    // The relay between them uses the certificates the init containers signed.
    let _publisher = Replay::start(origin.rtmp, "live", "helm", &h264_aac().path);
    // An edge answers an unknown stream at once from its cache: wait until it knows this one.
    wait_for(secs(20), || edge.stream_info("live", "helm"))
        .unwrap_or_else(|| panic!("{}: the edge never listed live/helm", set.name));
    let viewer = Watcher::start(edge.rtmp, "live", "helm");
    let frames = viewer.wait_video(30, secs(30));
    assert!(
        frames >= 30,
        "{}: edge viewer got {frames} frames; edge log:\n{}",
        set.name,
        edge.log()
    );
    // With HTTPS on the edges, a viewer plays over it, verifying the Secret's certificate.
    let mut checked = Checked::default();
    if let Some(https) = edge.https {
        checked.https += 1;
        let url = format!("https://localhost:{}/live/helm.flv", https.port());
        let mut player = Player::start_verified_tls(&url, &cluster.certs_dir().join("ca.pem"));
        let frames = player.wait_frames(30, secs(30));
        assert!(
            frames >= 30,
            "{}: HTTPS viewer got {frames} frames: {:?}",
            set.name,
            player.errors()
        );
    }
    // With RTMPS on the edges, a viewer plays over it, verifying the same certificate.
    if let Some(rtmps) = edge.rtmps {
        checked.rtmps += 1;
        let url = format!("rtmps://localhost:{}/live/helm", rtmps.port());
        let mut player = Player::start_verified_tls(&url, &cluster.certs_dir().join("ca.pem"));
        let frames = player.wait_frames(30, secs(30));
        assert!(
            frames >= 30,
            "{}: RTMPS viewer got {frames} frames: {:?}",
            set.name,
            player.errors()
        );
    }

    // The control plane, with its own rendered flags.
    let w = set.workload_running("sluice-control-plane");
    let container = w.container_running("sluice-control-plane").expect("container");
    let root = control_plane_root(&cluster);
    let args = local_args(container, "cp", (&cluster, root.path()), CONTROL_PLANE_LAUNCHER);
    let cp = control_plane::spawn(
        &cluster,
        "helm",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    probes_pass(&set.name, container, cp.http, &cluster.certs_dir().join("ca.pem"));
    checked.keda = keda_asks_what_the_chart_says(set, &cp);
    checked
}

/// KEDA's calls with the rendered ScaledObject's trigger metadata get the metric it names and
/// the target it sets (for the value sets with KEDA and a plain-text control plane).
fn keda_asks_what_the_chart_says(
    set: &RenderedSet,
    cp: &control_plane::ControlPlaneProcess,
) -> usize {
    use sluice_proto::externalscaler as keda;
    let mut asked = 0;
    for so in set.raw_of_kind("ScaledObject") {
        if so["spec"]["triggers"][0]["authenticationRef"].is_object() {
            continue; // TLS to the scaler: the TLS test covers that port.
        }
        let trigger = &so["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "external", "{}: an external scaler", set.name);
        let metadata: std::collections::HashMap<String, String> = trigger["metadata"]
            .as_object()
            .expect("trigger metadata")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string metadata").to_string()))
            .collect();
        let target: i64 = metadata["targetViewersPerEdge"].parse().expect("a number");
        let request = keda::ScaledObjectRef {
            name: so["metadata"]["name"].as_str().expect("name").to_string(),
            namespace: "default".into(),
            scaler_metadata: metadata,
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let spec = rt.block_on(async {
            let mut scaler =
                keda::external_scaler_client::ExternalScalerClient::connect(cp.grpc_url())
                    .await
                    .expect("connect to the scaler");
            scaler.get_metric_spec(request).await.expect("GetMetricSpec").into_inner()
        });
        let spec = spec.metric_specs.first().expect("one metric");
        assert_eq!(spec.metric_name, "sluice-edge-viewers", "{}", set.name);
        assert_eq!(spec.target_size, target, "{}: the chart's targetViewersPerEdge", set.name);
        asked += 1;
    }
    asked
}

/// Every value set, as rendered for the newest Kubernetes version (the pod specs do not
/// depend on the version).
#[test]
fn rendered_pods_start_answer_their_probes_and_relay_a_stream() {
    let test = "rendered_pods_start_answer_their_probes_and_relay_a_stream";
    let Some(sets) = rendered_sets(test) else { return };
    let newest: Vec<&RenderedSet> = sets.iter().filter(|s| s.name.ends_with("-1.35")).collect();
    assert!(newest.len() >= 5, "renderings for Kubernetes 1.35: {}", newest.len());
    let checked: Vec<Checked> = newest.into_iter().map(check_rendering).collect();
    let keda: usize = checked.iter().map(|c| c.keda).sum();
    assert!(keda >= 1, "the KEDA value set's ScaledObject was asked of the scaler");
    let https: usize = checked.iter().map(|c| c.https).sum();
    assert!(https >= 1, "the TLS value set's edge played over HTTPS");
    let rtmps: usize = checked.iter().map(|c| c.rtmps).sum();
    assert!(rtmps >= 1, "the access value set's edge played over RTMPS");
}
