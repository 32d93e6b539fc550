#!/usr/bin/env bash
# RTMP vs LL-HLS delivery cost on sluice-origin, back to back in one run: the same synthetic
# publisher (sluice-bench --publish) and the same number of viewers, first as RTMP players,
# then as LL-HLS clients (blocking reloads + preload-hinted parts). Each protocol gets a fresh
# release origin started with --worker-threads 1. Prints CPU per viewer for both and the
# HLS/RTMP ratio, and the HLS publish-to-part-received latency p99 against the 700 ms target.
#
# Every parameter is an environment variable (defaults in brackets):
#   VIEWERS [1000]  BITRATE [2500k]  FPS [30]  GOP [2s]  DURATION [20s]  WARMUP [5s]  RAMP [2s]
#   SETTLE [15s] (the stream runs this long before the baseline RSS and the first viewer)
#   AUDIO [0] (1 = --audio)   PART_TARGET [500ms]  SEGMENT_TARGET [2s]  HLS_MODE [hint|blocking]
#   BENCH_THREADS [1]  SLUICE_THREADS [1]  SKIP_BUILD [0]  PROTOCOLS ["rtmp hls"]
#   RTMP_PORT [29451]  HTTP_PORT [28181]
#   OUT_DIR [bench/results/DATE-hls]: rtmp.json, hls.json, summary.json; server logs go to a
#   temp dir (printed at the end).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_PREFIX="[bench-hls]"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
VIEWERS=${VIEWERS:-1000}
BITRATE=${BITRATE:-2500k}
FPS=${FPS:-30}
GOP=${GOP:-2s}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
RAMP=${RAMP:-2s}
# As in bench-vs-nginx.sh: the stream's own memory (GOP cache, HLS window) is in the baseline,
# not divided among the viewers.
SETTLE=${SETTLE:-15s}
AUDIO=${AUDIO:-0}
PART_TARGET=${PART_TARGET:-500ms}
SEGMENT_TARGET=${SEGMENT_TARGET:-2s}
HLS_MODE=${HLS_MODE:-hint}
BENCH_THREADS=${BENCH_THREADS:-1}
SLUICE_THREADS=${SLUICE_THREADS:-1}
SKIP_BUILD=${SKIP_BUILD:-0}
PROTOCOLS=${PROTOCOLS:-"rtmp hls"}
RTMP_PORT=${RTMP_PORT:-29451}
HTTP_PORT=${HTTP_PORT:-28181}
OUT_DIR=${OUT_DIR:-"$ROOT/bench/results/$(date +%Y-%m-%d)-hls"}
LOG_DIR=$(mktemp -d /tmp/sluice-bench-hls.XXXXXX)

BENCH="$ROOT/target/release/sluice-bench"
ORIGIN="$ROOT/target/release/sluice-origin"
LAUNCH="$ROOT/target/release/sluice-launch"
mkdir -p "$OUT_DIR"
raise_fd_limit

SERVER_PID=""
cleanup() {
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}
trap cleanup EXIT INT TERM

start_origin() {
    # $1 = log name
    require_free_port "$RTMP_PORT" RTMP_PORT
    require_free_port "$HTTP_PORT" HTTP_PORT
    log "starting sluice-origin (--worker-threads $SLUICE_THREADS) on 127.0.0.1:$RTMP_PORT, HTTP $HTTP_PORT"
    # Through sluice-launch: stdout to $LOG_DIR/$1.out, log to $LOG_DIR/$1.log; returns once it
    # listens and /readyz answers.
    SLUICE_LOG=${SLUICE_LOG:-warn} "$LAUNCH" node --bin "$ORIGIN" --name "$1" --log-dir "$LOG_DIR" \
        --pid-file "$LOG_DIR/$1.pid" --ready --timeout 10 -- \
        --rtmp-listen "127.0.0.1:$RTMP_PORT" \
        --http-listen "127.0.0.1:$HTTP_PORT" --worker-threads "$SLUICE_THREADS" \
        --hls-part-target "$PART_TARGET" --hls-segment-target "$SEGMENT_TARGET" \
        --max-connections-per-ip 0 --new-connections-per-ip 0 --hls-sessions-per-ip 0 --hls-max-sessions-per-ip 0 ||
        { log "sluice-origin did not start (log: $LOG_DIR/$1.log)"; exit 1; }
    SERVER_PID=$(cat "$LOG_DIR/$1.pid")
}

bench_run() {
    # $1 = protocol (rtmp | hls)
    local proto=$1 out="$OUT_DIR/$1.json"
    start_origin "$proto"
    local args=(run --url "rtmp://127.0.0.1:$RTMP_PORT/live/bench" --publish
        --players "$VIEWERS" --protocol "$proto" --bitrate "$BITRATE" --fps "$FPS" --gop "$GOP"
        --duration "$DURATION" --warmup "$WARMUP" --ramp "$RAMP" --settle "$SETTLE" --server-pid "$SERVER_PID")
    [[ "$AUDIO" == 1 ]] && args+=(--audio)
    if [[ "$proto" == hls ]]; then
        args+=(--hls-url "http://127.0.0.1:$HTTP_PORT/live/bench.m3u8" --hls-mode "$HLS_MODE")
    fi
    log "sluice-bench ${args[*]}"
    "$BENCH" --threads "$BENCH_THREADS" "${args[@]}" >"$out" 2>"$LOG_DIR/bench-$proto.log" ||
        log "sluice-bench reported an error (see $out and $LOG_DIR/bench-$proto.log)"
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        log "server (pid $SERVER_PID) died during the run"
    fi
    cleanup
}

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p sluice-bench -p sluice-origin -p sluice-launch)
fi

for proto in $PROTOCOLS; do
    case "$proto" in
        rtmp | hls) bench_run "$proto" ;;
        *) log "unknown protocol $proto (use rtmp, hls)"; exit 2 ;;
    esac
done

if [[ -s "$OUT_DIR/rtmp.json" && -s "$OUT_DIR/hls.json" ]]; then
    jq -n --slurpfile r "$OUT_DIR/rtmp.json" --slurpfile h "$OUT_DIR/hls.json" \
        --arg part_target "$PART_TARGET" '
        def ratio(a; b): if (a == null or b == null or b == 0) then null else ((a / b) * 10000 | round) / 10000 end;
        def r3(x): if x == null then null else ((x * 1000) | round) / 1000 end;
        ($r[0]) as $r | ($h[0]) as $h |
        {
          viewers: {rtmp: $r.players.connected, hls: $h.players.connected},
          throughput_mbps: {rtmp: r3($r.throughput_mbps), hls: r3($h.throughput_mbps)},
          server_cpu_seconds: {rtmp: $r.server.cpu_seconds, hls: $h.server.cpu_seconds},
          cpu_ms_per_viewer: {
            rtmp: r3($r.server.cpu_seconds_per_viewer * 1000),
            hls: r3($h.server.cpu_seconds_per_viewer * 1000),
            hls_over_rtmp: ratio($h.server.cpu_seconds_per_viewer; $r.server.cpu_seconds_per_viewer)
          },
          cpu_seconds_per_gb: {
            rtmp: r3($r.server.cpu_seconds_per_gb),
            hls: r3($h.server.cpu_seconds_per_gb),
            hls_over_rtmp: ratio($h.server.cpu_seconds_per_gb; $r.server.cpu_seconds_per_gb)
          },
          rss_delta_per_viewer_bytes: {
            rtmp: ($r.server.rss_delta_per_viewer_bytes | round),
            hls: ($h.server.rss_delta_per_viewer_bytes | round)
          },
          latency_ms: {rtmp: $r.latency_ms, hls: $h.latency_ms},
          hls_part_target: $part_target,
          hls_latency_p99_under_700ms: ($h.latency_ms.p99_ms != null and $h.latency_ms.p99_ms < 700),
          hls: $h.hls,
          dropped_frames: {rtmp: $r.frames.dropped, hls: $h.frames.dropped},
          window_s: {rtmp: $r.window_s, hls: $h.window_s},
          bench_cpu_seconds: {rtmp: $r.bench_cpu_seconds, hls: $h.bench_cpu_seconds},
          loadavg_1m: {rtmp: [$r.host.loadavg_1m_start, $r.host.loadavg_1m_end],
                       hls: [$h.host.loadavg_1m_start, $h.host.loadavg_1m_end]}
        }' >"$OUT_DIR/summary.json"
    echo "=== RTMP vs LL-HLS on sluice-origin ($VIEWERS viewers each) ==="
    jq -r '
        "CPU per viewer (ms of server CPU over the window): RTMP \(.cpu_ms_per_viewer.rtmp)  HLS \(.cpu_ms_per_viewer.hls)  HLS/RTMP \(.cpu_ms_per_viewer.hls_over_rtmp)",
        "CPU seconds per GB delivered: RTMP \(.cpu_seconds_per_gb.rtmp)  HLS \(.cpu_seconds_per_gb.hls)  HLS/RTMP \(.cpu_seconds_per_gb.hls_over_rtmp)",
        "Viewers connected: RTMP \(.viewers.rtmp)  HLS \(.viewers.hls); dropped frames: RTMP \(.dropped_frames.rtmp)  HLS \(.dropped_frames.hls)",
        "HLS publish-to-part-received latency p50/p99/max (ms): \(.latency_ms.hls.p50_ms) / \(.latency_ms.hls.p99_ms) / \(.latency_ms.hls.max_ms)  (parts \(.hls_part_target); p99 < 700 ms: \(.hls_latency_p99_under_700ms))",
        "HLS parts \(.hls.parts), stalls \(.hls.stalls), errors \(.hls.errors); RTMP latency p50/p99 (ms): \(.latency_ms.rtmp.p50_ms) / \(.latency_ms.rtmp.p99_ms)",
        "Load average (1 min) start/end: RTMP \(.loadavg_1m.rtmp)  HLS \(.loadavg_1m.hls)"
    ' "$OUT_DIR/summary.json"
fi
log "reports in $OUT_DIR, server and bench logs in $LOG_DIR"
