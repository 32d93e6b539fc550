//! No secret leaks: one cluster run with every kind of credential in use (stream keys, publish
//! and play tokens and their secrets, the etcd password, the admin token, a webhook ticket in
//! a viewer's query), good and bad ones, then every log, every `/metrics`, every `/api/*`
//! answer, the cluster page and `sluicectl`'s listings are searched for them: none may appear.
//! (`sluicectl assign` and `/play/` print signed URLs on purpose: that is what they are for.)

use std::process::Command;

use sluice_tests::cluster::TestCluster;
use sluice_tests::origin::TestDir;
use sluice_tests::paths::binary;
use sluice_tests::process::wait_for;
use sluice_tests::webhook::HookServer;
use sluice_tests::{control_plane, h264_small, secs, Player, Publisher};

const STREAM_KEY: &str = "sk-Vq7Lm2Xw9Rt4";
const WRONG_KEY: &str = "sk-guessed-Pp0Hh5";
const PUBLISH_SECRET: &str = "pub-secret-Tz8Kq1Nn6Ww3Yy";
const PLAY_SECRET: &str = "play-secret-Gh4Jd9Ls2Qe7Rv";
const ETCD_PASSWORD: &str = "etcd-pw-Bb3Cc8Dd1Ee";
const ADMIN_TOKEN: &str = "admin-token-Mm5Oo0Uu2Ii";
const TICKET: &str = "good-Xk2Zq81";

/// The URLs `sluice-origin TOOL STREAM --secret-file FILE` prints, with the host filled in.
fn helper_urls(
    tool: &str,
    stream: &str,
    secret: &std::path::Path,
    rtmp: &str,
    http: &str,
) -> Vec<String> {
    let out = Command::new(binary("sluice-origin"))
        .args([tool, stream, "--secret-file", secret.to_str().unwrap(), "--ttl", "10m"])
        .output()
        .expect("run sluice-origin");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.contains("://")))
        .map(|u| {
            u.replace("rtmp://HOST", &format!("rtmp://{rtmp}"))
                .replace("http://HOST", &format!("http://{http}"))
        })
        .collect()
}

/// The signature of the token in `url` (what must stay secret in it).
fn signature(url: &str) -> String {
    let token = url.split("token=").nth(1).expect("a token");
    token.split(['.', '&']).nth(1).expect("EXPIRY.SIG").to_string()
}

/// `curl` with the admin token: the body.
fn admin_get(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "-H", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .arg(url)
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn plays(url: &str) {
    let mut p = Player::start(url);
    assert!(p.wait_frames(30, secs(30)) >= 30, "{url}: {:?}", p.errors());
}

#[test]
fn no_key_token_password_or_secret_appears_in_logs_metrics_apis_or_sluicectl() {
    let dir = TestDir::new("secrets");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{text}\n")).unwrap();
        path
    };
    let keys_line = Command::new(binary("sluice-origin"))
        .args(["stream-key", "live/ok-cam", "--key", STREAM_KEY])
        .output()
        .expect("sluice-origin stream-key");
    let keys_line = String::from_utf8(keys_line.stdout).unwrap();
    let keys_line = keys_line.lines().find_map(|l| l.strip_prefix("keys file line: ")).unwrap();
    let keys = file("publish-keys", keys_line);
    let publish_secret = file("publish-secret", PUBLISH_SECRET);
    let play_secret = file("play-secret", PLAY_SECRET);
    let admin = file("admin-token", ADMIN_TOKEN);
    // Admits publishes of names starting with `ok` and plays with `ticket=good…`.
    let hook = HookServer::start();

    let nodes = ["sec-o", "sec-e", "cp", "etcdctl"];
    let c = TestCluster::with_tls_etcd_and_password("sec", &nodes, "sluice", ETCD_PASSWORD);
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let shared = [
        "--play-token-secret-file".to_string(),
        path(&play_secret),
        "--play-private-apps".into(),
        "vip".into(),
        "--token-file".into(),
        path(&admin),
        // The test's own reads (stream_info) come from loopback; the token guards the rest.
        "--admin-allow".into(),
        "127.0.0.0/8".into(),
        "--webhook-url".into(),
        hook.url.clone(),
        "--play-webhook-apps".into(),
        "club".into(),
    ];
    let mut origin_args = shared.to_vec();
    origin_args.extend([
        "--publish-keys-file".into(),
        path(&keys),
        "--publish-token-secret-file".into(),
        path(&publish_secret),
    ]);
    let origin_refs: Vec<&str> = origin_args.iter().map(String::as_str).collect();
    let origin = c.origin("sec-o", &origin_refs);
    let shared_refs: Vec<&str> = shared.iter().map(String::as_str).collect();
    let edge = c.edge("sec-e", &shared_refs);
    let cp_args = [
        "--play-token-secret-file",
        &path(&play_secret),
        "--play-private-apps",
        "vip",
        "--token-file",
        &path(&admin),
    ]
    .map(String::from);
    let cp_refs: Vec<&str> = cp_args.iter().map(String::as_str).collect();
    let cp = control_plane::start(&c, "sec", &cp_refs);

    // Publishers: a stream key (OBS form), publish tokens; a guessed key is refused.
    let (o_rtmp, o_http) = (origin.rtmp.to_string(), origin.http.to_string());
    let mut cam =
        Publisher::start_looped(&format!("rtmp://{o_rtmp}/live/{STREAM_KEY}"), &h264_small().path);
    let vip_url =
        &helper_urls("publish-token", "vip/ok-show", &publish_secret, &o_rtmp, &o_http)[0];
    let club_url =
        &helper_urls("publish-token", "club/ok-show", &publish_secret, &o_rtmp, &o_http)[0];
    let mut vip = Publisher::start_looped(vip_url, &h264_small().path);
    let mut club = Publisher::start_looped(club_url, &h264_small().path);
    for (app, name) in [("live", "ok-cam"), ("vip", "ok-show"), ("club", "ok-show")] {
        wait_for(secs(20), || edge.stream_info(app, name))
            .unwrap_or_else(|| panic!("{app}/{name} never reached the edge: {:?}", cam.stderr()));
    }
    let wrong = format!("rtmp://{o_rtmp}/live/{WRONG_KEY}");
    sluice_tests::ffmpeg::expect_refused(&wrong, &h264_small().path, "needs a stream key");

    // Viewers on the edge: signed URLs over every protocol, a forged one, a webhook ticket.
    let (e_rtmp, e_http) = (edge.rtmp.to_string(), edge.http.to_string());
    let play_urls = helper_urls("play-token", "vip/ok-show", &play_secret, &e_rtmp, &e_http);
    for url in &play_urls {
        plays(url);
    }
    let forged_sig = "f".repeat(64);
    let forged = format!("rtmp://{e_rtmp}/vip/ok-show?token=9999999999.{forged_sig}");
    let refused = Player::start(&forged).finish(secs(20), secs(20));
    assert_eq!(refused.frames, 0);
    plays(&format!("rtmp://{e_rtmp}/club/ok-show?ticket={TICKET}"));
    plays(&format!("http://{e_http}/club/ok-show.flv?ticket={TICKET}"));

    // What a run shows: logs, metrics, APIs, the cluster page, sluicectl's listings.
    let ctl = |args: &[&str]| {
        let out = Command::new(binary("sluicectl"))
            .env("SLUICE_ENDPOINT", cp.grpc_url())
            .env("SLUICE_TOKEN_FILE", &admin)
            .env_remove("SLUICE_TOKEN")
            .env("SLUICE_CONFIG", dir.path().join("sluicectl.toml"))
            .args(args)
            .output()
            .expect("sluicectl");
        assert!(
            out.status.success(),
            "sluicectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut shown: Vec<(String, String)> = vec![
        ("sluicectl nodes ls".into(), ctl(&["nodes", "ls", "-o", "json"])),
        ("sluicectl streams ls".into(), ctl(&["streams", "ls", "-o", "json"])),
        ("sluicectl capacity".into(), ctl(&["capacity"])),
    ];
    for (name, http) in [("origin", origin.http), ("edge", edge.http), ("cp", cp.http)] {
        for path in ["/metrics", "/api/streams", "/api/cluster", "/"] {
            shown.push((format!("{name} {path}"), admin_get(&format!("http://{http}{path}"))));
        }
    }
    assert!(shown.iter().any(|(_, body)| body.contains("vip")), "the APIs answered: {shown:?}");
    shown.extend([
        ("origin log".to_string(), origin.log()),
        ("edge log".to_string(), edge.log()),
        ("control plane log".to_string(), cp.log_text()),
    ]);
    let mut secrets = vec![
        STREAM_KEY.to_string(),
        WRONG_KEY.to_string(),
        PUBLISH_SECRET.to_string(),
        PLAY_SECRET.to_string(),
        ETCD_PASSWORD.to_string(),
        ADMIN_TOKEN.to_string(),
        TICKET.to_string(),
        forged_sig,
        signature(vip_url),
        signature(club_url),
    ];
    secrets.extend(play_urls.iter().map(|u| signature(u)));
    for (what, text) in &shown {
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{what} shows the secret {secret}:\n{text}");
        }
    }
    cam.stop();
    vip.stop();
    club.stop();
}
