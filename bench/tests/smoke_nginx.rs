//! End-to-end smoke test: the bench publishes to and plays from a real nginx-rtmp (5 players,
//! 3 s window) and the JSON report must show every player receiving live, stamped frames.
//! Skips (with a printed reason) only when nginx or its RTMP module is not installed.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NGINX: &str = "/usr/sbin/nginx";
const RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";

/// Kills nginx when the test ends, however it ends.
struct Nginx {
    child: Child,
    dir: PathBuf,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn start_nginx(port: u16) -> Nginx {
    let dir =
        std::env::temp_dir().join(format!("sluice-bench-smoke-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("logs")).expect("create temp dir");
    let conf = format!(
        "load_module {RTMP_MODULE};\n\
         daemon off;\nmaster_process off;\nworker_processes 1;\n\
         error_log {dir}/error.log;\npid {dir}/nginx.pid;\n\
         events {{ worker_connections 1024; }}\n\
         rtmp {{ server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
           application live {{ live on; }} }} }}\n",
        dir = dir.display()
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let child = Command::new(NGINX)
        .arg("-p")
        .arg(&dir)
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn nginx");
    let nginx = Nginx { child, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nginx did not listen on {port}; see {}",
            nginx.dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    nginx
}

#[test]
fn five_players_against_nginx_rtmp() {
    if !Path::new(NGINX).exists() || !Path::new(RTMP_MODULE).exists() {
        println!("SKIPPED: nginx ({NGINX}) or libnginx-mod-rtmp ({RTMP_MODULE}) is not installed");
        return;
    }
    let port = free_port();
    let nginx = start_nginx(port);
    let pid = nginx.child.id();
    let output = Command::new(env!("CARGO_BIN_EXE_sluice-bench"))
        .args(["run", "--url", &format!("rtmp://127.0.0.1:{port}/live/smoke"), "--publish"])
        .args(["--players", "5", "--duration", "3s", "--warmup", "1s", "--ramp", "0.5s"])
        .args(["--bitrate", "1M", "--fps", "30", "--gop", "1s", "--audio"])
        .args(["--server-pid", &pid.to_string()])
        .output()
        .expect("run sluice-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}\n{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report on stdout");
    let num = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(serde_json::Value::as_f64)
            .unwrap_or_else(|| panic!("{pointer} missing in {report:#}"))
    };
    assert_eq!(num("/players/requested"), 5.0, "{report:#}");
    assert_eq!(num("/players/connected"), 5.0, "{report:#}");
    assert_eq!(num("/players/receiving"), 5.0, "{report:#}");
    assert_eq!(num("/players/failed"), 0.0, "{report:#}");
    // 5 players x ~3 s x 30 fps = 450 frames; allow for scheduling slack.
    assert!(num("/frames/received") >= 350.0, "{report:#}");
    assert_eq!(num("/frames/dropped"), 0.0, "{report:#}");
    assert!(num("/latency_ms/samples") >= 350.0, "{report:#}");
    let p50 = num("/latency_ms/p50_ms");
    assert!(p50 > 0.0 && p50 < 500.0, "latency p50 {p50} ms: {report:#}");
    assert!(num("/ttff_ms/samples") == 5.0, "{report:#}");
    // ~1 Mbit/s video (+ audio + RTMP framing) to 5 players.
    let mbps = num("/throughput_mbps");
    assert!((4.0..8.0).contains(&mbps), "throughput {mbps} Mbit/s: {report:#}");
    assert!(num("/server/cpu_seconds") >= 0.0, "{report:#}");
    assert!(num("/server/rss_max_bytes") > 0.0, "{report:#}");
    assert!(num("/publisher/video_frames_sent") >= 100.0, "{report:#}");
    drop(nginx);
}
