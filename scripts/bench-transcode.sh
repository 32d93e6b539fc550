#!/usr/bin/env bash
# Transcoding's cost (#16): one 1080p30 H.264 + AAC stream (ffmpeg publishing a generated
# fixture in real time) into a release sluice-origin with the ladder 720p 2.5 Mbit/s, 480p
# 1 Mbit/s, 240p 400 kbit/s. Reports the CPU the stream's ffmpeg (the transcoder) and the
# origin use over the same window, and how much later each rendition's keyframes reach an
# HTTP-FLV viewer than the source's keyframes at the same presentation time (median, p95).
#
# Every parameter is an environment variable (defaults in brackets):
#   DURATION [30] (seconds measured)  WARMUP [10] (seconds)  ENCODER [libx264]
#   SKIP_BUILD [0]  RTMP_PORT [29471]  HTTP_PORT [28201]
#   OUT_DIR [bench/results/DATE-transcode]: summary.json
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_PREFIX="[bench-transcode]"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
DURATION=${DURATION:-30}
WARMUP=${WARMUP:-10}
ENCODER=${ENCODER:-libx264}
SKIP_BUILD=${SKIP_BUILD:-0}
RTMP_PORT=${RTMP_PORT:-29471}
HTTP_PORT=${HTTP_PORT:-28201}
OUT_DIR=${OUT_DIR:-"$ROOT/bench/results/$(date +%Y-%m-%d)-transcode"}
LOG_DIR=$(mktemp -d /tmp/sluice-bench-transcode.XXXXXX)
ORIGIN="$ROOT/target/release/sluice-origin"
LAUNCH="$ROOT/target/release/sluice-launch"
mkdir -p "$OUT_DIR"

SERVER_PID=""
PUBLISHER=""
cleanup() {
    [[ -n "$PUBLISHER" ]] && kill "$PUBLISHER" 2>/dev/null || true
    stop_pid "$SERVER_PID"
}
trap cleanup EXIT INT TERM

cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p sluice-origin -p sluice-launch)
fi
command -v bc >/dev/null || die "bc is needed (apt-get install bc)"

FIXTURE="$LOG_DIR/1080p.flv"
log "generating a 10 s 1080p30 fixture (x264 veryfast, 2 s GOP, B-frames; AAC)"
ffmpeg -hide_banner -v error -f lavfi -i testsrc2=size=1920x1080:rate=30 \
    -f lavfi -i sine=frequency=440:sample_rate=44100 -t 10 -c:v libx264 -preset veryfast \
    -b:v 6000k -g 60 -keyint_min 60 -sc_threshold 0 -bf 2 -pix_fmt yuv420p -c:a aac -b:a 128k \
    -f flv "$FIXTURE"

cat >"$LOG_DIR/ladder.toml" <<'EOF'
[live]
renditions = [
  { name = "720p", height = 720, video-kbps = 2500 },
  { name = "480p", height = 480, video-kbps = 1000 },
  { name = "240p", height = 240, video-kbps = 400 },
]
EOF

require_free_port "$RTMP_PORT" RTMP_PORT
require_free_port "$HTTP_PORT" HTTP_PORT
SLUICE_LOG=${SLUICE_LOG:-warn} "$LAUNCH" node --bin "$ORIGIN" --name origin --log-dir "$LOG_DIR" \
    --pid-file "$LOG_DIR/origin.pid" --ready --timeout 10 -- \
    --rtmp-listen "127.0.0.1:$RTMP_PORT" --http-listen "127.0.0.1:$HTTP_PORT" \
    --ladder-file "$LOG_DIR/ladder.toml" --video-encoder "$ENCODER" >&2 ||
    die "sluice-origin did not start (log: $LOG_DIR/origin.log)"
SERVER_PID=$(cat "$LOG_DIR/origin.pid")
ffmpeg -hide_banner -nostdin -v error -re -stream_loop -1 -i "$FIXTURE" -c copy -f flv \
    "rtmp://127.0.0.1:$RTMP_PORT/live/cam" 2>"$LOG_DIR/publisher.log" &
PUBLISHER=$!
sleep "$WARMUP"
TRANSCODER=$(pgrep -P "$SERVER_PID" ffmpeg | head -1)
[[ -n "$TRANSCODER" ]] || die "no transcoder ffmpeg under the origin (log: $LOG_DIR/origin.log)"

log "measuring for $DURATION s: CPU, and keyframe arrival over HTTP-FLV"
t0=$(cpu_seconds "$TRANSCODER"); o0=$(cpu_seconds "$SERVER_PID")
python3 - "$HTTP_PORT" "$DURATION" >"$LOG_DIR/latency.json" <<'PY'
import json, socket, statistics, sys, threading, time
port, duration = int(sys.argv[1]), float(sys.argv[2])
names = ["cam", "cam_720p", "cam_480p", "cam_240p"]
arrivals = {n: {} for n in names}

def watch(name):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(f"GET /live/{name}.flv HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf, end = b"", time.monotonic() + duration
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    buf = buf.split(b"\r\n\r\n", 1)[1]
    raw, header_done = b"", False
    def unchunk(data, state=[b""]):
        state[0] += data
        out = b""
        while True:
            line, sep, rest = state[0].partition(b"\r\n")
            if not sep:
                return out
            size = int(line.split(b";")[0] or b"0", 16)
            if len(rest) < size + 2:
                return out
            out += rest[:size]
            state[0] = rest[size + 2:]
    raw = unchunk(buf)
    while time.monotonic() < end:
        data = s.recv(1 << 20)
        if not data:
            break
        now = time.monotonic()
        raw += unchunk(data)
        if not header_done:
            if len(raw) < 13:
                continue
            raw, header_done = raw[13:], True
        while len(raw) >= 11:
            kind, size = raw[0], int.from_bytes(raw[1:4], "big")
            if len(raw) < 11 + size + 4:
                break
            ts = int.from_bytes(raw[4:7], "big") | (raw[7] << 24)
            body = raw[11:11 + size]
            if kind == 9 and size > 5 and body[0] >> 4 == 1 and body[1] == 1:
                cts = int.from_bytes(body[2:5], "big", signed=True)
                arrivals[name].setdefault(ts + cts, now)
            raw = raw[11 + size + 4:]

threads = [threading.Thread(target=watch, args=(n,)) for n in names]
for t in threads: t.start()
for t in threads: t.join()
out = {}
for n in names[1:]:
    lags = sorted((arrivals[n][pts] - arrivals["cam"][pts]) * 1000
                  for pts in arrivals[n] if pts in arrivals["cam"])
    out[n] = {"keyframes": len(lags),
              "median_ms": round(statistics.median(lags), 1) if lags else None,
              "p95_ms": round(lags[int(len(lags) * 0.95) - 1], 1) if lags else None}
print(json.dumps(out))
PY
t1=$(cpu_seconds "$TRANSCODER"); o1=$(cpu_seconds "$SERVER_PID")
jq -n --argjson window "$DURATION" --arg encoder "$ENCODER" \
    --argjson t "$(echo "$t1 - $t0" | bc -l)" --argjson o "$(echo "$o1 - $o0" | bc -l)" \
    --slurpfile lat "$LOG_DIR/latency.json" '
    def r3(x): ((x * 1000) | round) / 1000;
    {
      source: "1080p30 H.264 6 Mbit/s + AAC", ladder: "720p 2500k, 480p 1000k, 240p 400k",
      encoder: $encoder, window_s: $window,
      transcoder_cores: r3($t / $window), origin_cores: r3($o / $window),
      extra_latency_over_source: $lat[0]
    }' | tee "$OUT_DIR/summary.json"
log "logs: $LOG_DIR"
