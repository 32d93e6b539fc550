//! An origin cut off from etcd (its own link to etcd goes through a proxy the test cuts; the
//! relay and every other link stay up) fences itself before the other nodes drop it from the
//! ring: it refuses new publishers at once and says why, while the stream it was home to moves
//! to the remaining origin and the edge viewer keeps playing without reconnecting. When the
//! link returns, the origin re-registers and takes streams again.

use std::time::Duration;

use sluice_media::rtmp::client::ClientMode;
use sluice_tests::cluster::{find_name, home, TestCluster};
use sluice_tests::link::Link;
use sluice_tests::process::wait_for;
use sluice_tests::replay::Replay;
use sluice_tests::rtmp::RtmpClient;
use sluice_tests::viewer::Watcher;
use sluice_tests::{h264_aac, secs, Origin};

/// The timestamp (RFC 3339, UTC: ordered as text) of the last log line containing `what`.
fn logged_at(log: &str, what: &str) -> Option<String> {
    let line = log.lines().rev().find(|l| l.contains(what))?;
    line.split_whitespace().next().map(str::to_string)
}

#[test]
fn an_origin_cut_off_from_etcd_fences_itself_before_the_cluster_drops_it() {
    let origins = ["pt-a", "pt-p"];
    let c = TestCluster::new("partition", &["pt-a", "pt-p", "pt-edge"]);
    let etcd_addr = c.etcd.endpoint().trim_start_matches("http://").parse().expect("etcd addr");
    let link = Link::start(etcd_addr).expect("a link to etcd");
    let a = c.origin("pt-a", &[]);
    // pt-p reaches etcd only through the link.
    let mut args = c.args("pt-p");
    let at = args.iter().position(|a| a == "--etcd").expect("--etcd") + 1;
    args[at] = format!("http://{}", link.addr);
    args.extend(["--relay-listen".to_string(), "127.0.0.1:0".to_string()]);
    let p = Origin::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let edge = c.edge("pt-edge", &[]);

    // A stream published on a whose home is p: a forwards it to p, the edge pulls it from p.
    let name = find_name("part", |n| home(&origins, n) == "pt-p");
    let _publisher = Replay::start(a.rtmp, "live", &name, &h264_aac().path);
    wait_for(secs(20), || p.stream_info("live", &name)).expect("p hosts the stream");
    let viewer = Watcher::start(edge.rtmp, "live", &name);
    assert!(viewer.wait_video(30, secs(30)) >= 30, "the edge viewer plays");
    let mark = viewer.mark();

    let cut_at = a.log().lines().count();
    link.cut();
    wait_for(secs(10), || (p.metrics().value("sluice_registry_fenced", &[]) == 1.0).then_some(()))
        .unwrap_or_else(|| panic!("p never fenced itself:\n{}", p.log()));
    // Fenced: a new publisher is refused at once, with the reason.
    let mut fresh = RtmpClient::connect(p.rtmp, "live", "fresh", ClientMode::Publish).unwrap();
    let (_, description) = fresh
        .expect_status("NetStream.Publish.Failed", secs(2))
        .expect("a fenced origin refuses new publishers at once");
    assert!(description.contains("fenced"), "the refusal says why: {description}");

    // The others drop p once its lease ends: after p fenced itself.
    let dropped = wait_for(secs(15), || {
        let since: String = a.log().lines().skip(cut_at).collect::<Vec<_>>().join("\n");
        logged_at(&since, "ring membership changed members={NodeId(\"pt-a\")}")
    })
    .unwrap_or_else(|| panic!("a never dropped p from its ring:\n{}", a.log()));
    let fenced = logged_at(&p.log(), "fenced").expect("p logged its fence");
    assert!(fenced < dropped, "p fenced at {fenced}, the ring dropped it at {dropped}");

    // The stream moved to a (make-before-break from the edge's side): the viewer played on.
    let after = viewer.video_frames();
    assert!(viewer.wait_video(after + 60, secs(20)) >= after + 60, "the viewer plays on");
    let broken = viewer.snapshot().interruptions(mark, Duration::from_secs(4), 150);
    assert!(broken.is_empty(), "the viewer was interrupted: {broken:?}");
    let report = viewer.snapshot().report_from(mark);
    eprintln!(
        "partitioned home: longest gap {:?}, {} frames lost",
        report.max_wall_gap, report.lost_frames
    );

    // The link returns: p re-registers, unfences and takes publishers again.
    link.restore();
    wait_for(secs(15), || (p.metrics().value("sluice_registry_fenced", &[]) == 0.0).then_some(()))
        .unwrap_or_else(|| panic!("p stays fenced:\n{}", p.log()));
    let mut again = RtmpClient::connect(p.rtmp, "live", "fresh", ClientMode::Publish).unwrap();
    again.expect_status("NetStream.Publish.Start", secs(10)).expect("p takes publishers again");
    assert!(viewer.is_playing(), "the viewer never reconnected");
}
