//! Abuse of the HTTP side and of connection admission (issue 9): HTTP clients that never
//! finish their request headers are closed at the deadline; random HLS session ids and session
//! floods from one address do not lock real players out; half-open connections from one
//! address do not lock out a second address that publishes and plays. Each case is bounded in
//! time, ends with a legitimate ffmpeg publisher and RTMP, HTTP-FLV and LL-HLS viewers that
//! still work, and bounds the node's RSS growth (read from /proc).
//!
//! The attacker's source address is 127.0.0.2, the legitimate client's 127.0.0.1 (both are
//! loopback on Linux).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use sluice_tests::http;
use sluice_tests::process::wait_for;
use sluice_tests::viewer::MeasuredViewer;
use sluice_tests::{h264_aac, secs, Origin, Player, Publisher};

/// Most RSS growth over the baseline any case here may cause.
const RSS_BOUND_KIB: u64 = 64 * 1024;

const ATTACKER: &str = "127.0.0.2";

/// A TCP connection to `to` from source address `from`.
fn connect_from(from: &str, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let src: IpAddr = from.parse().expect("source address");
    socket.bind(&SocketAddr::new(src, 0).into())?;
    socket.connect_timeout(&to.into(), timeout)?;
    Ok(socket.into())
}

/// Whether the server closed `stream` (EOF or reset) within `timeout`.
fn closed_by_server(stream: &mut TcpStream, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let _ = stream.set_read_timeout(Some(left.min(secs(1))));
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {} // e.g. a 408 before the close
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true, // reset
        }
    }
}

fn rss(origin: &Origin) -> u64 {
    origin.rss_kib().expect("origin RSS")
}

/// A GET from 127.0.0.1 following one redirect (HLS sessions start with a 302).
fn get(origin: &Origin, path: &str) -> http::HttpResponse {
    let resp = http::get(origin.http, path, secs(15)).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    if resp.status == 302 {
        let location = resp.header("location").expect("Location").to_string();
        let dir = path.rsplit_once('/').unwrap().0;
        return http::get(origin.http, &format!("{dir}/{location}"), secs(15))
            .unwrap_or_else(|e| panic!("GET {location}: {e}"));
    }
    resp
}

/// The end of every case: a fresh ffmpeg publisher, and an RTMP, an HTTP-FLV and an LL-HLS
/// viewer that all get media.
fn legitimate_clients_work(origin: &Origin, name: &str) {
    let url = origin.rtmp_url("live", name);
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", name)).expect("legitimate publisher is live");
    let mut rtmp = Player::start(&url);
    let mut flv = Player::start(&origin.flv_url("live", name));
    let mut hls = Player::start(&format!("http://{}/live/{name}.m3u8", origin.http));
    assert!(rtmp.wait_frames(30, secs(20)) >= 30, "RTMP viewer plays");
    assert!(flv.wait_frames(30, secs(20)) >= 30, "HTTP-FLV viewer plays");
    assert!(hls.wait_frames(30, secs(30)) >= 30, "HLS viewer plays");
    // LL-HLS: the multivariant and a blocking media playlist answer.
    let multi = get(origin, &format!("/live/{name}.m3u8"));
    assert_eq!(multi.status, 200, "multivariant: {}", multi.text());
    let media_uri = multi.text().lines().find(|l| l.contains("index.m3u8")).unwrap().to_string();
    let media = get(origin, &format!("/live/{media_uri}"));
    assert_eq!(media.status, 200, "media playlist: {}", media.text());
    assert!(media.text().contains("#EXT-X-PART:"), "LL-HLS parts listed");
}

#[test]
fn http_clients_that_never_finish_headers_are_closed_at_the_deadline() {
    const CLIENTS: usize = 500;
    let origin = Origin::start(&["--http-header-timeout", "2s", "--max-connections-per-ip", "0"]);
    let viewer = MeasuredViewer::start(origin.rtmp, "measured", &h264_aac().path);
    let baseline = rss(&origin);
    let started = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for i in 0..CLIENTS {
        let Ok(mut s) = connect_from(ATTACKER, origin.http, secs(5)) else { continue };
        // Half send part of a request, half send nothing at all.
        if i % 2 == 0 {
            let _ = s.write_all(b"GET /live/x.m3u8 HTTP/1.1\r\nHost: x\r\n");
        }
        clients.push(s);
        if i % 150 == 149 {
            // Stay under the per-address rate of new connections.
            std::thread::sleep(Duration::from_millis(1100));
        }
    }
    assert!(clients.len() >= CLIENTS * 9 / 10, "only {} connected", clients.len());
    let open = origin.metrics().value("sluice_http_connections", &[]);
    assert!(open >= 1.0, "slow clients are held open until the deadline: {open}");
    let mut closed = 0;
    for c in &mut clients {
        if closed_by_server(c, secs(8).saturating_sub(started.elapsed()).max(secs(1))) {
            closed += 1;
        }
    }
    viewer.finish("500 slow-header HTTP clients");
    println!("{closed}/{} closed by the server in {:?}", clients.len(), started.elapsed());
    assert_eq!(closed, clients.len(), "every slow client is closed at the deadline");
    let still = wait_for(secs(5), || {
        let n = origin.metrics().value("sluice_http_connections", &[]);
        (n <= 2.0).then_some(n)
    });
    assert!(still.is_some(), "HTTP connections released");
    let growth = rss(&origin).saturating_sub(baseline);
    println!("RSS growth {growth} KiB (bound {RSS_BOUND_KIB})");
    assert!(growth < RSS_BOUND_KIB, "RSS grew {growth} KiB");
    legitimate_clients_work(&origin, "after-slow-headers");
}

#[test]
fn random_session_ids_do_not_lock_real_players_out() {
    let origin = Origin::start(&["--hls-max-sessions", "200", "--hls-sessions-per-ip", "10"]);
    let url = origin.rtmp_url("live", "sids");
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", "sids")).expect("live");
    // The first segment exists: multivariant requests answer at once.
    wait_for(secs(20), || (get(&origin, "/live/sids.m3u8").status == 200).then_some(()))
        .expect("HLS ready");
    let viewer = MeasuredViewer::start(origin.rtmp, "measured", &h264_aac().path);
    let baseline = rss(&origin);
    // Three seconds of multivariant and media playlist requests with random sids, from the
    // attacker's address, on keep-alive connections.
    let attack_started = Instant::now();
    let attack_until = attack_started + secs(3);
    let mut requests = 0u64;
    let mut conn = connect_from(ATTACKER, origin.http, secs(5)).unwrap();
    let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
    while Instant::now() < attack_until {
        let sid: u128 = rand::random();
        let path = if requests.is_multiple_of(2) { "sids.m3u8" } else { "sids/index.m3u8" };
        let req = format!("GET /live/{path}?sid={sid:032x} HTTP/1.1\r\nHost: x\r\n\r\n");
        if conn.write_all(req.as_bytes()).is_err() || !read_response(&mut reader) {
            conn = connect_from(ATTACKER, origin.http, secs(5)).unwrap();
            reader = std::io::BufReader::new(conn.try_clone().unwrap());
            continue;
        }
        requests += 1;
    }
    viewer.finish("the random-sid flood");
    println!("{requests} requests with random sids");
    assert!(requests > 20, "the attack ran: {requests}");
    let m = origin.metrics();
    let sessions = m.value("sluice_hls_sessions", &[]);
    // What the rate gate lets through from the attacker's address: a burst of ten and ten a
    // second for as long as the attack (and the metrics read) took, plus the one session
    // the readiness poll above minted. Without the gate the flood fills all 200 places.
    let allowed = 10.0 * (1.0 + attack_started.elapsed().as_secs_f64().ceil()) + 1.0;
    assert!(sessions <= allowed, "random sids made {sessions} sessions (allowed {allowed})");
    let refused =
        m.value("sluice_admission_refused_total", &[("door", "hls_session"), ("reason", "rate")]);
    assert!(refused > 0.0, "session floods are refused and counted");
    // A real player (another address) still gets its multivariant playlist.
    let multi = get(&origin, "/live/sids.m3u8");
    assert_eq!(multi.status, 200, "real player's multivariant: {}", multi.text());
    let growth = rss(&origin).saturating_sub(baseline);
    println!("RSS growth {growth} KiB (bound {RSS_BOUND_KIB})");
    assert!(growth < RSS_BOUND_KIB, "RSS grew {growth} KiB");
    legitimate_clients_work(&origin, "after-sids");
}

#[test]
fn one_address_holds_only_its_share_of_hls_sessions() {
    const SHARE: usize = 5;
    let origin = Origin::start(&[
        "--hls-max-sessions-per-ip",
        &SHARE.to_string(),
        "--hls-sessions-per-ip",
        "1000",
    ]);
    let url = origin.rtmp_url("live", "share");
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", "share")).expect("live");
    wait_for(secs(20), || (get(&origin, "/live/share.m3u8").status == 200).then_some(()))
        .expect("HLS ready");
    // Twenty players behind the attacker's address each start a session (a multivariant
    // request without a sid mints one).
    let statuses: Vec<u16> = (0..20)
        .map(|_| {
            let mut conn = connect_from(ATTACKER, origin.http, secs(5)).unwrap();
            conn.write_all(
                b"GET /live/share.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            )
            .unwrap();
            let mut head = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(conn), &mut head).unwrap();
            head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
        })
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((admitted, refused), (SHARE, 20 - SHARE), "statuses: {statuses:?}");
    let m = origin.metrics();
    let counted = m.value(
        "sluice_admission_refused_total",
        &[("door", "hls_session"), ("reason", "concurrent")],
    );
    assert!(counted >= (20 - SHARE) as f64, "refusals counted: {counted}");
    // Another address is not affected.
    assert_eq!(get(&origin, "/live/share.m3u8").status, 200);
}

#[test]
fn http2_connections_are_limited_to_their_stream_share() {
    const STREAMS: u32 = 4;
    let origin = Origin::start(&["--http2-max-streams", &STREAMS.to_string()]);
    let url = origin.rtmp_url("live", "h2");
    let _publisher = Publisher::start_looped(&url, &h264_aac().path);
    wait_for(secs(15), || origin.stream_info("live", "h2")).expect("live");
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        // HTTP/2 with prior knowledge (h2c), as a proxy in front of the node would speak it.
        let tcp = tokio::net::TcpStream::connect(origin.http).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.expect("h2 handshake");
        tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let request = |path: &str| {
            ::http::Request::get(format!("http://{}{path}", origin.http)).body(()).unwrap()
        };
        // The first response carries the server's SETTINGS: its stream cap is the flag's.
        let (first, _) = client.send_request(request("/live/h2.flv"), true).unwrap();
        let first = first.await.expect("first FLV stream");
        assert_eq!(first.status(), 200);
        assert_eq!(client.current_max_send_streams(), STREAMS as usize, "advertised cap");
        // (A compliant client never opens more; hyper refuses streams beyond the cap with
        // REFUSED_STREAM for one that does.) The cap's worth of long-lived FLV streams share the connection and all get media.
        let mut bodies = vec![first.into_body()];
        for _ in 1..STREAMS {
            let mut c = client.clone().ready().await.unwrap();
            let (resp, _) = c.send_request(request("/live/h2.flv"), true).unwrap();
            let resp = resp.await.expect("FLV stream");
            assert_eq!(resp.status(), 200);
            bodies.push(resp.into_body());
        }
        // Read them all at once (the connection's flow-control window is shared).
        let readers = bodies.into_iter().enumerate().map(|(i, mut body)| async move {
            let mut got = 0;
            while got < 64 * 1024 {
                let chunk = tokio::time::timeout(secs(10), body.data())
                    .await
                    .unwrap_or_else(|_| panic!("stream {i} stalled after {got} bytes"))
                    .expect("stream open")
                    .expect("data");
                got += chunk.len();
                let _ = body.flow_control().release_capacity(chunk.len());
            }
        });
        futures_util::future::join_all(readers).await;
    });
}

/// Read one HTTP/1.1 response with a Content-Length body; false on EOF or error.
fn read_response(reader: &mut impl std::io::BufRead) -> bool {
    let mut len = 0usize;
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    reader.read_exact(&mut body).is_ok()
}

#[test]
fn half_open_connections_from_one_address_do_not_lock_out_another() {
    const ATTEMPTS: usize = 20_000;
    let origin = Origin::start(&[
        "--max-connections-per-ip",
        "200",
        "--new-connections-per-ip",
        "100",
        "--handshake-timeout",
        "60s",
    ]);
    let baseline = rss(&origin);
    // 20 000 RTMP connection attempts from the attacker's address that never handshake; the
    // node keeps at most its per-address share of them and closes the rest at once.
    const THREADS: usize = 4;
    let until = Instant::now() + secs(20);
    let start = Instant::now();
    let rtmp = origin.rtmp;
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                let (mut held, mut attempts, mut failed) = (Vec::new(), 0, 0);
                while attempts < ATTEMPTS / THREADS && Instant::now() < until {
                    attempts += 1;
                    match connect_from(ATTACKER, rtmp, secs(2)) {
                        Ok(s) if held.len() < 100 => held.push(s),
                        Ok(_) => {}
                        Err(_) => {
                            failed += 1;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                (held, attempts, failed)
            })
        })
        .collect();
    let (mut held, mut attempts, mut failed) = (Vec::new(), 0, 0);
    for w in workers {
        let (h, a, f) = w.join().expect("flood thread");
        held.extend(h);
        attempts += a;
        failed += f;
    }
    println!("{attempts} attempts ({failed} failed) in {:?}", start.elapsed());
    let m = origin.metrics();
    let refused: f64 = ["concurrent", "rate"]
        .iter()
        .map(|r| m.value("sluice_admission_refused_total", &[("door", "rtmp"), ("reason", r)]))
        .sum();
    assert!(refused > 0.0, "per-address refusals are counted");
    assert!(
        m.value("sluice_connections", &[]) <= 210.0,
        "the attacker holds no more than its share: {}",
        m.value("sluice_connections", &[])
    );
    let growth = rss(&origin).saturating_sub(baseline);
    println!("RSS growth {growth} KiB (bound {RSS_BOUND_KIB})");
    assert!(growth < RSS_BOUND_KIB, "RSS grew {growth} KiB");
    // The other address publishes and plays while the attacker's connections are held.
    legitimate_clients_work(&origin, "beside-half-open");
    drop(held);
}

#[test]
fn ended_streams_release_their_memory_while_their_playlists_are_polled() {
    use sluice_media::rtmp::client::ClientMode;
    use sluice_tests::rtmp::{read_flv_file, RtmpClient};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const NAMES: usize = 1_000;
    const PUBLISHERS: usize = 4;
    let tags = read_flv_file(&h264_aac().path).unwrap();
    // Enough for the first complete HLS segment (2 s GOPs): up to the keyframe at 2 s.
    let tags: Arc<Vec<_>> = Arc::new(tags.into_iter().filter(|t| t.timestamp <= 2_100).collect());
    // The poller opens a connection per request, hundreds a second from one address, and holds
    // a session per name: this case is about memory, not about per-address shares. Ended
    // streams count against --max-streams until released, so at most 12 streams' media is
    // held at any time.
    let origin = Origin::start(&[
        "--ended-stream-linger",
        "250ms",
        "--max-streams",
        "12",
        "--new-connections-per-ip",
        "0",
        "--hls-sessions-per-ip",
        "0",
        "--hls-max-sessions-per-ip",
        "0",
    ]);
    let baseline = rss(&origin);
    let polled: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    // Someone keeps polling every ended stream's media playlist.
    let poller = {
        let (polled, stop, http) = (polled.clone(), stop.clone(), origin.http);
        std::thread::spawn(move || {
            let mut polls = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let paths = sluice_tests::lock(&polled).clone();
                for p in &paths {
                    let _ = http::get(http, p, secs(5));
                    polls += 1;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            polls
        })
    };
    let until = Instant::now() + secs(150);
    let (next, published, refused) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    // Publishers, each taking the next name: publish its first segment, start an HLS session
    // on it (polled from then on), end it.
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|_| {
            let (next, published, refused) = (next.clone(), published.clone(), refused.clone());
            let (tags, polled, rtmp, http) =
                (tags.clone(), polled.clone(), origin.rtmp, origin.http);
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= NAMES || Instant::now() > until {
                    return;
                }
                let name = format!("ended{i}");
                // Refused while twelve streams are held: retry until one is released.
                let mut publisher = loop {
                    let mut p = RtmpClient::connect(rtmp, "live", &name, ClientMode::Publish)
                        .unwrap_or_else(|e| panic!("connect {name}: {e}"));
                    match p.expect_status("NetStream.Publish.Start", secs(10)) {
                        Ok(_) => break p,
                        Err(_) if Instant::now() < until => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        Err(e) => panic!("publish {name} refused until the end: {e}"),
                    }
                };
                for tag in tags.iter() {
                    publisher.send_media(tag).unwrap();
                }
                let multi = wait_for(secs(10), || {
                    let mut r = http::get(http, &format!("/live/{name}.m3u8"), secs(15)).ok()?;
                    if r.status == 302 {
                        let location = r.header("location")?.to_string();
                        r = http::get(http, &format!("/live/{location}"), secs(15)).ok()?;
                    }
                    (r.status == 200).then_some(r)
                })
                .unwrap_or_else(|| panic!("{name}: no multivariant playlist"));
                let media =
                    multi.text().lines().find(|l| l.contains("index.m3u8")).unwrap().to_string();
                sluice_tests::lock(&polled).push(format!("/live/{media}"));
                publisher.close();
                published.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    // Memory and streams held, sampled while they run.
    let mut peak_growth = 0;
    while publishers.iter().any(|p| !p.is_finished()) {
        let g = rss(&origin).saturating_sub(baseline);
        let held = origin.metrics().value("sluice_streams_held", &[]);
        let done = published.load(Ordering::Relaxed);
        if g > peak_growth + 1024 || done % 100 < 2 {
            println!("after {done} names: RSS growth {g} KiB, {held} streams held");
        }
        assert!(held <= 12.0, "{held} streams held with --max-streams 12");
        peak_growth = peak_growth.max(g);
        std::thread::sleep(Duration::from_millis(500));
    }
    for p in publishers {
        p.join().expect("a publisher thread panicked");
    }
    let (published, refused) = (published.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    println!("{published} streams published and ended; {refused} publishes refused meanwhile");
    assert_eq!(published, NAMES, "only {published} names published and ended in the time allowed");
    // Within the linger (plus the once-a-second sweep), nothing ended is held any more.
    let held = wait_for(secs(10), || {
        let n = origin.metrics().value("sluice_streams_held", &[]);
        (n == 0.0).then_some(n)
    });
    assert!(
        held.is_some(),
        "ended streams still held: {}",
        origin.metrics().value("sluice_streams_held", &[])
    );
    std::thread::sleep(secs(5)); // the pollers' sessions expire too
    let growth = rss(&origin).saturating_sub(baseline);
    peak_growth = peak_growth.max(growth);
    stop.store(true, Ordering::Relaxed);
    let polls = poller.join().unwrap();
    println!("{polls} playlist polls; RSS growth {growth} KiB at the end, peak {peak_growth} KiB");
    assert!(peak_growth < RSS_BOUND_KIB, "RSS grew {peak_growth} KiB (bound {RSS_BOUND_KIB})");
    legitimate_clients_work(&origin, "after-ended");
}
