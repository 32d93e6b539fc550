//! Every node serves the same HLS for a stream: the ingest origin decides segments and
//! numbers, the relay carries its stamps, and the home origin and two edges that joined at
//! different times serve byte-identical segments with the same numbers, durations and
//! program date-times, so a player or a CDN can switch nodes mid-stream.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice_tests::cluster::{find_name, home, TestCluster};
use sluice_tests::http;
use sluice_tests::process::wait_for;
use sluice_tests::{h264_aac, secs, Origin, Publisher};

fn get(node: &Origin, path: &str) -> http::HttpResponse {
    http::get(node.http, path, secs(15)).unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// One media segment as a playlist lists it.
#[derive(Debug, Clone, PartialEq)]
struct Listed {
    duration: String,
    date: Option<String>,
    discontinuity: bool,
}

/// An HLS session on one node: the media playlist URI (with its sid) from the multivariant.
struct Session<'a> {
    node: &'a Origin,
    playlist: String,
}

impl<'a> Session<'a> {
    fn open(node: &'a Origin, stream: &str) -> Session<'a> {
        let resp = get(node, &format!("/live/{stream}.m3u8"));
        assert_eq!(resp.status, 200, "multivariant: {}", resp.text());
        let uri = resp
            .text()
            .lines()
            .find(|l| !l.starts_with('#') && !l.is_empty())
            .expect("variant URI")
            .to_string();
        Session { node, playlist: format!("/live/{uri}") }
    }

    /// msn -> what the media playlist says of each complete segment.
    fn segments(&self) -> BTreeMap<u64, Listed> {
        let resp = get(self.node, &self.playlist);
        assert_eq!(resp.status, 200, "media playlist: {}", resp.text());
        let mut out = BTreeMap::new();
        let (mut duration, mut date, mut disc) = (None, None, false);
        for line in resp.text().lines() {
            if let Some(d) = line.strip_prefix("#EXTINF:") {
                duration = Some(d.trim_end_matches(',').to_string());
            } else if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
                date = Some(d.to_string());
            } else if line == "#EXT-X-DISCONTINUITY" {
                disc = true;
            } else if let Some(rest) = line.strip_prefix("seg-") {
                let msn: u64 = rest.split('.').next().unwrap().parse().unwrap();
                out.insert(
                    msn,
                    Listed {
                        duration: duration.take().unwrap_or_default(),
                        date: date.take(),
                        discontinuity: disc,
                    },
                );
                disc = false;
            }
        }
        out
    }

    fn segment(&self, msn: u64) -> Vec<u8> {
        let sid = self.playlist.split("sid=").nth(1).unwrap_or("");
        let dir = self.playlist.rsplit_once('/').unwrap().0;
        let resp = get(self.node, &format!("{dir}/seg-{msn}.m4s?sid={sid}"));
        assert_eq!(resp.status, 200, "segment {msn}");
        resp.body
    }
}

#[test]
fn the_home_origin_and_two_edges_serve_identical_hls() {
    let c = TestCluster::new("eh", &["hls-a", "hls-b", "hls-e1", "hls-e2"]);
    let a = c.origin("hls-a", &[]);
    let b = c.origin("hls-b", &[]);
    let e1 = c.edge("hls-e1", &[]);
    let e2 = c.edge("hls-e2", &[]);

    // Published on hls-a, homed on hls-b: the home is itself a follower of the ingest.
    let name = find_name("h", |n| home(&["hls-a", "hls-b"], n) == "hls-b");
    let mut publisher = Publisher::start_looped(&a.rtmp_url("live", &name), &h264_aac().path);
    wait_for(secs(20), || b.stream_info("live", &name)).expect("forwarded to the home");

    let ingest = Session::open(&a, &name);
    let home = Session::open(&b, &name);
    let first = Session::open(&e1, &name);
    std::thread::sleep(Duration::from_secs(4));
    let late = Session::open(&e2, &name);

    // Wait until the late edge lists three complete segments.
    let common_msns = wait_for(secs(40), || {
        let lists = [ingest.segments(), home.segments(), first.segments(), late.segments()];
        let msns: Vec<u64> =
            lists[3].keys().copied().filter(|m| lists.iter().all(|l| l.contains_key(m))).collect();
        (msns.len() >= 3).then_some((msns, lists))
    });
    let (msns, lists) = common_msns.unwrap_or_else(|| {
        panic!(
            "nodes do not list common segments: ingest {:?} home {:?} e1 {:?} e2 {:?}",
            ingest.segments().keys().collect::<Vec<_>>(),
            home.segments().keys().collect::<Vec<_>>(),
            first.segments().keys().collect::<Vec<_>>(),
            late.segments().keys().collect::<Vec<_>>()
        )
    });
    for msn in &msns {
        let listed: Vec<&Listed> = lists.iter().map(|l| &l[msn]).collect();
        assert!(
            listed.iter().all(|l| *l == listed[0]),
            "segment {msn} listed differently: {listed:?}"
        );
        assert!(listed[0].date.is_some(), "program date-time present");
        let bytes: Vec<Vec<u8>> =
            [&ingest, &home, &first, &late].iter().map(|s| s.segment(*msn)).collect();
        assert!(bytes[0].len() > 10_000, "segment {msn} has media ({} bytes)", bytes[0].len());
        for (i, other) in bytes.iter().enumerate().skip(1) {
            assert!(
                *other == bytes[0],
                "segment {msn} on node {i} differs from the ingest's ({} vs {} bytes)",
                other.len(),
                bytes[0].len()
            );
        }
    }
    publisher.stop();
}
