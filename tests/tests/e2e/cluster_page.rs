//! The control plane's cluster page in headless Chromium (driven by playwright-core from
//! `tests/browser/cluster.mjs`, like the node page's test in `browser.rs`) on a real cluster:
//! etcd, one origin, two edges, `sluice-control-plane`, ffmpeg publishing and one ffmpeg viewer
//! sent to an edge by `/play/live/x.flv`. The page lists the three nodes with load bars, the
//! edge with the viewer shows it, the stream is listed with the figures `/api/cluster` gives,
//! node ids are rendered as text (no markup), and the viewers chart has data and has been drawn
//! (pixels of its stroke colour on the canvas). A 401 from `/api/cluster` makes the page ask
//! for a token, and a token in the URL fragment goes out as `Authorization: Bearer`. The
//! screenshot is kept in the test's directory under `target/sluice-tests/`.
//!
//! A missing Chromium, node or npm package (`npm ci --prefix web`) fails the test; developers
//! may skip it with `SLUICE_TEST_ALLOW_MISSING=chromium,node` (see `sluice_tests::deps`).

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sluice_tests::cluster::TestCluster;
use sluice_tests::control_plane;
use sluice_tests::deps::Dep;
use sluice_tests::ffmpeg::run_with_timeout;
use sluice_tests::origin::TestDir;
use sluice_tests::paths::workspace_root;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, http, secs, Player, Publisher};

/// `/api/cluster` of the replica at `addr`, once it answers JSON.
fn api(addr: std::net::SocketAddr) -> Option<Value> {
    let r = http::get(addr, "/api/cluster", secs(5)).ok().filter(|r| r.status == 200)?;
    serde_json::from_slice(&r.body).ok()
}

#[test]
fn cluster_page_shows_nodes_streams_and_charts_in_chromium() {
    let test = "cluster_page_shows_nodes_streams_and_charts_in_chromium";
    let Some(chromium) = Dep::Chromium.require(test) else { return };
    let Some(node) = Dep::Node.require(test) else { return };
    let web_dir = workspace_root().join("web");
    assert!(
        web_dir.join("node_modules/playwright-core/package.json").is_file()
            && web_dir.join("node_modules/uplot/dist/uPlot.iife.min.js").is_file(),
        "npm packages missing in {}: run `npm ci --prefix web` (scripts/test.sh does)",
        web_dir.display()
    );

    let c = TestCluster::new("cpage", &["origin-p", "edge-p1", "edge-p2"]);
    let origin = c.origin("origin-p", &[]);
    let _e1 = c.edge("edge-p1", &["--max-viewers", "50"]);
    let _e2 = c.edge("edge-p2", &["--max-viewers", "80"]);
    let cp = control_plane::start(&c, "cp", &[]);

    // The page and its assets: the real chart library compiled in, a CSP, nothing else served.
    let page = http::get(cp.http, "/cluster", secs(5)).expect("GET /cluster");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("/assets/uplot.js"), "{}", page.text());
    let csp = page.header("content-security-policy").unwrap_or("").to_string();
    assert!(csp.contains("script-src 'self'"), "CSP: {csp:?}");
    assert_eq!(http::get(cp.http, "/", secs(5)).expect("GET /").body, page.body);
    let lib = http::get(cp.http, "/assets/uplot.js", secs(5)).expect("GET uplot.js");
    assert_eq!(lib.status, 200);
    assert!(
        lib.body.len() > 20_000 && !lib.text().contains("uPlotMissing"),
        "uplot.js is the stub: was the control plane built before `npm ci --prefix web`?"
    );
    assert_eq!(http::get(cp.http, "/assets/../Cargo.toml", secs(5)).unwrap().status, 404);

    let mut publisher = Publisher::start_looped(&origin.rtmp_url("live", "x"), &h264_aac().path);
    wait_for(secs(20), || {
        api(cp.http)?["streams"].as_array()?.iter().any(|s| s["name"] == "x").then_some(())
    })
    .unwrap_or_else(|| panic!("live/x never listed by /api/cluster; {:?}", publisher.stderr()));

    // One viewer, sent to an edge by the control plane.
    let mut player = Player::start(&format!("http://{}/play/live/x.flv", cp.http));
    let frames = player.wait_frames(30, secs(30));
    assert!(frames >= 30, "decoded only {frames} frames; errors {:?}", player.errors());
    let api_now = wait_for(secs(15), || {
        let v = api(cp.http)?;
        (v["edges"]["viewers"].as_u64()? >= 1).then_some(v)
    })
    .expect("the edges report the viewer");
    let viewer_edge = api_now["nodes"]
        .as_array()
        .and_then(|nodes| {
            nodes
                .iter()
                .find(|n| n["role"] == "edge" && n["load"]["viewers_total"].as_u64() >= Some(1))
        })
        .and_then(|n| n["id"].as_str())
        .expect("an edge with the viewer")
        .to_string();

    // The screenshot stays in the test's directory under `target/sluice-tests/`.
    let dir = TestDir::new("page");
    let out = dir.path();
    let mut cmd = Command::new(&node);
    cmd.arg(workspace_root().join("tests/browser/cluster.mjs"))
        .arg("--web-dir")
        .arg(&web_dir)
        .args(["--base", &format!("http://{}", cp.http), "--chromium"])
        .arg(&chromium)
        .args(["--min-viewers", "1", "--min-polls", "3", "--timeout-ms", "30000", "--out"])
        .arg(out);
    let (status, stdout, stderr) =
        run_with_timeout(&mut cmd, Duration::from_secs(90)).expect("run node");
    assert!(
        status.is_some_and(|s| s.success()),
        "cluster.mjs failed ({status:?}):\nstdout:\n{stdout}\nstderr:\n{stderr}\ncontrol plane log:\n{}",
        cp.log_text()
    );
    let r: Value = stdout
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result: {stdout}\n{stderr}"));
    eprintln!("cluster page: {r}");
    println!("screenshot: {}", r["screenshot"].as_str().unwrap_or("-"));
    assert_eq!(r["ok"], true, "page not driven: {r}");
    assert!(r["waitError"].is_null(), "the page never got there: {r}");
    assert!(r["consoleErrors"].as_array().is_some_and(Vec::is_empty), "console errors: {r}");
    assert!(r["errors"].as_array().is_some_and(Vec::is_empty), "page errors: {r}");
    assert!(r["chartsMissing"].is_null(), "{r}");

    // Every node, as text, with load bars; the viewer's edge shows it.
    let nodes = r["nodes"].as_array().expect("node rows");
    for (id, role) in [("origin-p", "origin"), ("edge-p1", "edge"), ("edge-p2", "edge")] {
        let row =
            nodes.iter().find(|n| n["id"] == id).unwrap_or_else(|| panic!("no row for {id}: {r}"));
        assert_eq!(row["role"], role, "{row}");
        assert_eq!(row["idText"], id, "the id is rendered as text: {row}");
        assert_eq!(row["idChildElements"], 0, "no markup in the id cell: {row}");
        assert!(row["meters"].as_u64() >= Some(2), "load bars for {id}: {row}");
    }
    let edge_row = nodes.iter().find(|n| n["id"] == viewer_edge.as_str()).expect("viewer's edge");
    assert!(edge_row["viewers"].as_u64() >= Some(1), "{viewer_edge} shows its viewer: {edge_row}");
    assert!(
        edge_row["text"].as_str().is_some_and(|t| t.contains(" / 50") || t.contains(" / 80")),
        "viewers against capacity: {edge_row}"
    );

    // The stream, with the viewer figures the API gives (viewers per node, and their total).
    let streams = r["streams"].as_array().expect("stream rows");
    let row = streams.iter().find(|s| s["key"] == "live/x").unwrap_or_else(|| panic!("{r}"));
    assert_eq!(row["nameText"], "live/x");
    let listed = r["api"]["streams"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "x"))
        .expect("live/x in the page's last /api/cluster");
    assert_eq!(row["viewers"], listed["viewers_total"], "{row} vs {listed}");
    for (node_id, viewers) in listed["viewers"].as_object().into_iter().flatten() {
        assert_eq!(&row["perNode"][node_id], viewers, "{node_id}: {row} vs {listed}");
    }
    // The viewer's edge is among the stream's viewers per node.
    assert!(row["perNode"][viewer_edge.as_str()].as_u64() >= Some(1), "{row}");
    assert!(row["viewers"].as_u64() >= Some(1), "{row}");
    let links: Vec<&str> =
        row["links"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    assert_eq!(links, ["/play/live/x.m3u8", "/play/live/x.flv"]);

    // The charts: history points, and the viewers line drawn on the canvas.
    assert!(r["chartPoints"].as_u64() >= Some(3), "{r}");
    assert!(r["egressPoints"].as_u64() >= Some(3), "{r}");
    assert!(r["viewersStroke"].as_i64() > Some(0), "viewers line not drawn: {r}");
    assert!(r["summary"].as_str().is_some_and(|s| s.contains(" / 130")), "edge totals: {r}");

    // 401: the page asks for a token, and sends the one in its URL fragment.
    let no_token = &r["noToken"];
    assert_eq!(no_token["ok"], true, "{no_token}");
    assert!(no_token["message"].as_str().is_some_and(|m| m.contains("#token=")), "{no_token}");
    assert_eq!(no_token["authorization"][0], Value::Null, "{no_token}");
    let with_token = &r["withToken"];
    assert_eq!(with_token["ok"], true, "{with_token}");
    assert_eq!(with_token["authorization"][0], "Bearer s3cret-token", "{with_token}");
    assert!(with_token["message"].as_str().is_some_and(|m| m.contains("refused")), "{with_token}");

    drop(player.stop());
    publisher.stop();
    let _ = std::fs::remove_file(&cp.log);
}
