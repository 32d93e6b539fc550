//! Interop: the clients people use, each publishing or playing a real stream on a standalone
//! origin and through an edge of a local cluster (etcd, an origin, an edge: the stream is
//! published to the origin and played from the edge), each check ending in decoded frames.
//! `CASES` is the matrix: every row is a test on both targets (`origin::NAME`, `edge::NAME`),
//! and README's interop matrix is rendered from it (`readme_matrix_is_current` fails when
//! they differ; `SLUICE_WRITE_MATRIX=1` rewrites README's).
//!
//! `cargo nextest run -p sluice-tests --test interop`

mod browser;
mod clients;

use std::path::Path;

use clients::Checked;
use sluice_tests::cluster::TestCluster;
use sluice_tests::ffmpeg::{probe_streams, Player};
use sluice_tests::origin::TestDir;
use sluice_tests::paths::workspace_root;
use sluice_tests::process::wait_for;
use sluice_tests::{ffprobe_streams, h264_aac, hevc_aac, secs, Origin, Publisher};

/// Where the stream is published and where it is played.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// One standalone origin: published and played there.
    Origin,
    /// A cluster: published to its origin, played from its edge.
    Edge,
}

/// The nodes of one test.
struct Nodes {
    ingest: Origin,
    edge: Option<Origin>,
    _cluster: Option<TestCluster>,
}

impl Nodes {
    fn start(target: Target, tag: &str) -> Nodes {
        // Each node serves the web page (the browser cases play through it).
        let web = workspace_root().join("web");
        let web = ["--web-dir", web.to_str().expect("utf-8 path")];
        match target {
            Target::Origin => Nodes { ingest: Origin::start(&web), edge: None, _cluster: None },
            Target::Edge => {
                let c = TestCluster::new(tag, &["io-origin", "io-edge"]);
                let ingest = c.origin("io-origin", &web);
                let edge = c.edge("io-edge", &web);
                Nodes { ingest, edge: Some(edge), _cluster: Some(c) }
            }
        }
    }

    /// Where players play.
    fn serving(&self) -> &Origin {
        self.edge.as_ref().unwrap_or(&self.ingest)
    }

    /// Wait until the ingest has `live/NAME`'s video and the serving node lists it (an edge
    /// lists the cluster's streams from the registry).
    fn wait_listed(&self, name: &str) -> Result<(), String> {
        wait_for(secs(20), || {
            self.ingest.stream_info("live", name).filter(|s| !s["video"].is_null())
        })
        .ok_or_else(|| format!("live/{name} never went live on the ingest"))?;
        wait_for(secs(20), || self.serving().stream_info("live", name))
            .map(|_| ())
            .ok_or_else(|| format!("live/{name} never listed on the serving node"))
    }

    fn rtmp(&self, name: &str) -> String {
        self.serving().rtmp_url("live", name)
    }

    fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.serving().http)
    }
}

/// A played stream: ffmpeg publishes the H.264/AAC fixture in a loop to the ingest.
fn published(nodes: &Nodes, name: &str) -> Result<Publisher, String> {
    let publisher = Publisher::start_looped(&nodes.ingest.rtmp_url("live", name), &h264_aac().path);
    nodes.wait_listed(name)?;
    Ok(publisher)
}

/// ffmpeg plays `url` and decodes [`clients::VIDEO_FRAMES`] frames without errors.
fn ffmpeg_plays(url: &str) -> Checked {
    let mut player = Player::start(url);
    let frames = player.wait_frames(clients::VIDEO_FRAMES, secs(40));
    let errors = player.errors();
    if frames < clients::VIDEO_FRAMES || !errors.is_empty() {
        return Err(format!("ffmpeg decoded {frames} frames; errors: {errors:?}"));
    }
    Ok(format!("{frames} frames decoded"))
}

/// ffprobe lists exactly one video and one audio stream of `url`.
fn ffprobe_lists_video_and_audio(url: &str) -> Checked {
    let probe = ffprobe_streams(url, secs(30))?;
    let streams = probe["streams"].as_array().map_or(0, Vec::len);
    let (video, audio) =
        (probe_streams(&probe, "video").len(), probe_streams(&probe, "audio").len());
    if (streams, video, audio) != (2, 1, 1) {
        return Err(format!(
            "ffprobe lists {streams} streams ({video} video, {audio} audio): {probe}"
        ));
    }
    Ok("exactly one video and one audio stream".into())
}

/// A publisher's stream, played from the serving node: ffmpeg decodes it and ffprobe lists
/// exactly its video and audio.
fn publisher_check(nodes: &Nodes, name: &str) -> Checked {
    nodes.wait_listed(name)?;
    let played = ffmpeg_plays(&nodes.rtmp(name))?;
    ffprobe_lists_video_and_audio(&nodes.rtmp(name))?;
    Ok(format!("{played}; ffprobe: one video and one audio stream"))
}

// ---- The cases --------------------------------------------------------------------------

fn ffmpeg_publishes_flv(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = Publisher::start_looped(&nodes.ingest.rtmp_url("live", "ff"), &h264_aac().path);
    publisher_check(nodes, "ff")
}

fn ffmpeg_publishes_hevc(nodes: &Nodes, _: &TestDir) -> Checked {
    let ffmpeg = sluice_tests::deps::Dep::HevcFfmpeg.path();
    let url = nodes.ingest.rtmp_url("live", "hevc");
    let _p = Publisher::start_with(&ffmpeg, &url, &hevc_aac().path, true);
    nodes.wait_listed("hevc")?;
    // Debian's ffmpeg 5.1 cannot read H.265 in FLV: the PyPI ffmpeg plays it.
    let mut player = Player::start_with(&ffmpeg, &nodes.rtmp("hevc"));
    let frames = player.wait_frames(clients::VIDEO_FRAMES, secs(40));
    if frames < clients::VIDEO_FRAMES {
        return Err(format!("{frames} H.265 frames decoded: {:?}", player.errors()));
    }
    Ok(format!("{frames} H.265 frames decoded by ffmpeg 7"))
}

fn gst_rtmp2sink_publishes(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = clients::gst_publisher("rtmp2sink", &nodes.ingest.rtmp_url("live", "gst2"));
    publisher_check(nodes, "gst2")
}

fn gst_rtmpsink_publishes(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = clients::gst_publisher("rtmpsink", &nodes.ingest.rtmp_url("live", "gst1"));
    publisher_check(nodes, "gst1")
}

fn obs_publishes(nodes: &Nodes, dir: &TestDir) -> Checked {
    let mut obs = clients::obs_publisher(&nodes.ingest.rtmp_url("live", "obs"), dir)?;
    let checked = publisher_check(nodes, "obs");
    // OBS ends its stream when its window closes: the script does that on SIGTERM.
    let stopped = obs.stop();
    let checked = checked.map_err(|why| {
        let said = std::fs::read_to_string(dir.path().join("obs-stream.err")).unwrap_or_default();
        format!("{why}\nobs-stream.sh ({stopped:?}) said:\n{said}")
    })?;
    Ok(format!("{checked}; OBS stopped: {stopped:?}"))
}

fn ffmpeg_plays_rtmp(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    ffmpeg_plays(&nodes.rtmp("p"))
}

fn ffprobe_probes_rtmp(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    ffprobe_lists_video_and_audio(&nodes.rtmp("p"))
}

fn ffmpeg_plays_flv(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    ffmpeg_plays(&nodes.http("/live/p.flv"))
}

fn ffmpeg_plays_ll_hls(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    ffmpeg_plays(&nodes.http("/live/p.m3u8"))
}

fn ffmpeg_plays_hls_ts(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    ffmpeg_plays(&nodes.http("/live/p/ts.m3u8"))
}

fn mpv_plays_rtmp(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::mpv(&nodes.rtmp("p"))
}

fn mpv_plays_flv(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::mpv(&nodes.http("/live/p.flv"))
}

fn mpv_plays_ll_hls(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::mpv(&nodes.http("/live/p.m3u8"))
}

fn vlc_plays_rtmp(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::vlc(&nodes.rtmp("p"), dir)
}

fn vlc_plays_flv(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::vlc(&nodes.http("/live/p.flv"), dir)
}

fn vlc_plays_ll_hls(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::vlc(&nodes.http("/live/p.m3u8"), dir)
}

fn vlc_plays_hls_ts(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::vlc(&nodes.http("/live/p/ts.m3u8"), dir)
}

fn gst_rtmp2src_plays(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::gst_rtmp("rtmp2src", &nodes.rtmp("p"))
}

fn gst_rtmpsrc_plays(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::gst_rtmp("rtmpsrc", &nodes.rtmp("p"))
}

fn gst_hlsdemux_plays_ll_hls(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::gst_hls(&nodes.http("/live/p.m3u8"))
}

fn gst_hlsdemux_plays_hls_ts(nodes: &Nodes, _: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::gst_hls(&nodes.http("/live/p/ts.m3u8"))
}

fn rtmpdump_plays_rtmp(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    clients::rtmpdump(&nodes.rtmp("p"), dir)
}

fn chromium_hlsjs_plays_ll_hls(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    browser::chromium(&nodes.http(""), "live/p", "hls", dir.path())
}

fn chromium_mpegtsjs_plays_flv(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    browser::chromium(&nodes.http(""), "live/p", "flv", dir.path())
}

fn chromium_native_plays_ll_hls(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    browser::chromium(&nodes.http(""), "live/p", "native", dir.path())
}

fn chromium_native_plays_hls_ts(nodes: &Nodes, dir: &TestDir) -> Checked {
    let _p = published(nodes, "p")?;
    // Chromium's own player refuses a live playlist shorter than three target durations (6 s:
    // a young stream, or one an edge has only started pulling); a bare video element does not
    // retry as the web page does, so it starts once the serving node's playlist is long enough.
    let serving = nodes.serving();
    wait_for(secs(30), || {
        let redirect = serving.get("/live/p/ts.m3u8");
        let playlist = serving.get(&format!("/live/p/{}", redirect.header("location")?));
        (playlist.text().matches("#EXTINF").count() >= 4).then_some(())
    })
    .ok_or("the serving node's ts.m3u8 never held 4 segments")?;
    browser::chromium(&nodes.http(""), "live/p", "video:/live/p/ts.m3u8", dir.path())
}

/// One row of the matrix.
struct Case {
    name: &'static str,
    client: &'static str,
    role: &'static str,
    protocol: &'static str,
    codecs: &'static str,
    how: &'static str,
    run: fn(&Nodes, &TestDir) -> Checked,
}

/// Cases that do not work through an edge yet, and what goes wrong: their edge tests check
/// that they still fail, so a fix shows up as a failure that asks for the mark to go.
const EDGE_ISSUES: &[(&str, &str)] = &[];

fn edge_issue(name: &str) -> &'static str {
    EDGE_ISSUES.iter().find(|(n, _)| *n == name).map_or("", |(_, why)| why)
}

/// Every case, and a test of it on each target.
macro_rules! cases {
    ($($name:ident: $client:literal, $role:literal, $protocol:literal, $codecs:literal, $how:literal;)*) => {
        const CASES: &[Case] = &[$(Case {
            name: stringify!($name),
            client: $client,
            role: $role,
            protocol: $protocol,
            codecs: $codecs,
            how: $how,
            run: $name,
        }),*];
        mod origin {
            $(#[test] fn $name() { super::run(stringify!($name), super::Target::Origin) })*
        }
        mod edge {
            $(#[test] fn $name() { super::run(stringify!($name), super::Target::Edge) })*
        }
    };
}

cases! {
    ffmpeg_publishes_flv: "ffmpeg 5.1", "publish", "RTMP", "H.264 + AAC", "ffmpeg plays it back, ffprobe lists 1 video + 1 audio";
    ffmpeg_publishes_hevc: "ffmpeg 7 (PyPI)", "publish", "Enhanced RTMP", "H.265 + AAC", "ffmpeg 7 plays it back and decodes H.265";
    gst_rtmp2sink_publishes: "GStreamer rtmp2sink", "publish", "RTMP", "H.264 + AAC", "ffmpeg plays it back, ffprobe lists 1 video + 1 audio";
    gst_rtmpsink_publishes: "GStreamer rtmpsink (librtmp)", "publish", "RTMP", "H.264 + AAC", "ffmpeg plays it back, ffprobe lists 1 video + 1 audio";
    obs_publishes: "OBS Studio 29 (headless: Xvfb, software OpenGL)", "publish", "RTMP", "H.264 + AAC", "a Media Source scene, custom service; ffmpeg plays it back, ffprobe lists 1 video + 1 audio";
    ffmpeg_plays_rtmp: "ffmpeg 5.1", "play", "RTMP", "H.264 + AAC", "decodes 150 frames, no decoder error";
    ffprobe_probes_rtmp: "ffprobe 5.1", "play", "RTMP", "H.264 + AAC", "lists exactly 1 video + 1 audio stream";
    ffmpeg_plays_flv: "ffmpeg 5.1", "play", "HTTP-FLV", "H.264 + AAC", "decodes 150 frames, no decoder error";
    ffmpeg_plays_ll_hls: "ffmpeg 5.1", "play", "LL-HLS (fMP4)", "H.264 + AAC", "decodes 150 frames, no decoder error";
    ffmpeg_plays_hls_ts: "ffmpeg 5.1", "play", "HLS (MPEG-TS)", "H.264 + AAC", "decodes 150 frames, no decoder error";
    mpv_plays_rtmp: "mpv 0.35", "play", "RTMP", "H.264 + AAC", "plays 150 frames (null outputs)";
    mpv_plays_flv: "mpv 0.35", "play", "HTTP-FLV", "H.264 + AAC", "plays 150 frames (null outputs)";
    mpv_plays_ll_hls: "mpv 0.35", "play", "LL-HLS (fMP4)", "H.264 + AAC", "plays 150 frames (null outputs)";
    vlc_plays_rtmp: "VLC 3.0 (cvlc)", "play", "RTMP", "H.264 + AAC", "records 8 s; ffmpeg decodes it with no error";
    vlc_plays_flv: "VLC 3.0 (cvlc)", "play", "HTTP-FLV", "H.264 + AAC", "records 8 s; ffmpeg decodes it with no error";
    vlc_plays_ll_hls: "VLC 3.0 (cvlc)", "play", "LL-HLS (fMP4)", "H.264 + AAC", "records 8 s; ffmpeg decodes it with no error";
    vlc_plays_hls_ts: "VLC 3.0 (cvlc)", "play", "HLS (MPEG-TS)", "H.264 + AAC", "records 8 s; ffmpeg decodes it with no error";
    gst_rtmp2src_plays: "GStreamer rtmp2src + flvdemux", "play", "RTMP", "H.264 + AAC", "decodes 150 video + 200 audio frames";
    gst_rtmpsrc_plays: "GStreamer rtmpsrc (librtmp) + flvdemux", "play", "RTMP", "H.264 + AAC", "decodes 150 video + 200 audio frames";
    gst_hlsdemux_plays_ll_hls: "GStreamer hlsdemux", "play", "LL-HLS (fMP4)", "H.264 + AAC", "decodes 150 video + 200 audio frames in 20 s";
    gst_hlsdemux_plays_hls_ts: "GStreamer hlsdemux", "play", "HLS (MPEG-TS)", "H.264 + AAC", "decodes 150 video + 200 audio frames in 20 s";
    rtmpdump_plays_rtmp: "rtmpdump 2.4 (librtmp)", "play", "RTMP", "H.264 + AAC", "records 8 s; ffmpeg decodes it with no error";
    chromium_hlsjs_plays_ll_hls: "hls.js in Chromium 156 (the web page)", "play", "LL-HLS (fMP4)", "H.264 + AAC", "video time advances 5 s, 150 frames decoded, no player error";
    chromium_mpegtsjs_plays_flv: "mpegts.js in Chromium 156 (the web page)", "play", "HTTP-FLV", "H.264 + AAC", "video time advances 5 s, 150 frames decoded, no player error";
    chromium_native_plays_ll_hls: "Chromium 156's own HLS (the web page)", "play", "LL-HLS (fMP4)", "H.264 + AAC", "from the stream's first second (the page retries while Chromium refuses a playlist under 6 s): video time advances 5 s, 150 frames decoded";
    chromium_native_plays_hls_ts: "Chromium 156's own HLS (a bare video element)", "play", "HLS (MPEG-TS)", "H.264 + AAC", "once the playlist holds 4 segments (Chromium refuses a live one under 6 s): video time advances 5 s, 150 frames decoded";
}

/// Clients the matrix names that no test here runs, and why.
const NOT_RUN: &[(&str, &str, &str)] = &[];

fn run(name: &str, target: Target) {
    let case = CASES.iter().find(|c| c.name == name).expect("a case");
    let dir = TestDir::new(name);
    let nodes = Nodes::start(target, &format!("io{}", &name[..name.len().min(6)]));
    let issue = if target == Target::Edge { edge_issue(name) } else { "" };
    match (case.run)(&nodes, &dir) {
        Ok(what) if !issue.is_empty() => panic!(
            "{name} on {target:?} works now ({what}): take it out of EDGE_ISSUES and rewrite \
             README's matrix"
        ),
        Ok(what) => eprintln!("{name} on {target:?}: {what}"),
        Err(why) if !issue.is_empty() => eprintln!("{name} on {target:?}: known issue: {why}"),
        Err(why) => panic!(
            "{} {} {} on {target:?}: {why}\ningest log:\n{}",
            case.client,
            case.role,
            case.protocol,
            nodes.ingest.log()
        ),
    }
}

const BEGIN: &str = "<!-- interop-matrix: begin (rendered from tests/tests/interop/main.rs) -->";
const END: &str = "<!-- interop-matrix: end -->";

/// The matrix as README shows it.
fn render() -> String {
    let mut out = String::from(
        "| Client | Role | Protocol | Codecs | Standalone origin | Through an edge | Checked by |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for c in CASES {
        let edge = match edge_issue(c.name) {
            "" => format!("✓ `edge::{}`", c.name),
            issue => format!("{issue} (`edge::{}`)", c.name),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | ✓ `origin::{}` | {edge} | {} |\n",
            c.client, c.role, c.protocol, c.codecs, c.name, c.how
        ));
    }
    for (client, what, how) in NOT_RUN {
        out.push_str(&format!("| {client} | | {what} | | | | {how} |\n"));
    }
    out
}

#[test]
fn readme_matrix_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let readme = std::fs::read_to_string(&path).expect("README.md");
    let (before, rest) = readme.split_once(BEGIN).expect("README has the interop matrix markers");
    let (_, after) = rest.split_once(END).expect("README has the end marker");
    let current = format!("{before}{BEGIN}\n{}{END}{after}", render());
    if std::env::var_os("SLUICE_WRITE_MATRIX").is_some() {
        std::fs::write(&path, &current).expect("write README.md");
        return;
    }
    assert!(
        readme == current,
        "README's interop matrix differs from tests/tests/interop/main.rs: run \
         `SLUICE_WRITE_MATRIX=1 cargo nextest run -p sluice-tests --test interop readme_matrix`"
    );
}
