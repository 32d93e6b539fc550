#!/usr/bin/env bash
# Run the same sluice-bench load against nginx-rtmp and against sluice-origin, print both JSON
# reports and the Sluice/nginx ratios.
#
# Every parameter is an environment variable (defaults in brackets):
#   PLAYERS [1000]  BITRATE [2500k]  FPS [30]  GOP [2s]  DURATION [20s]  WARMUP [5s]  RAMP [2s]
#   SETTLE [15s] (the stream runs this long before the baseline RSS and the first player)
#   PROTOCOL [rtmp] (flv: sluice only, nginx-rtmp has no HTTP-FLV)   AUDIO [0] (1 = --audio)
#   BENCH_THREADS [1]   TARGETS ["nginx sluice"]   SKIP_BUILD [0]
#   NGINX_PORT [29350]  SLUICE_RTMP_PORT [29351]  SLUICE_HTTP_PORT [28081]
#   ORIGIN_BIN [target/release/sluice-origin] (another build's binary, for an A/B run)
#   OUT_DIR [a new temp dir]: reports (nginx.json, sluice.json), configs and server logs.
#   PROFILE [0] (1 = while each server is measured, count its syscalls with `perf stat` for 5 s,
#   then record it with `perf record -g` for PROFILE_SECS [10] s: TARGET-syscalls.txt,
#   TARGET.perf.data, TARGET-top.txt (symbols over 0.5 %), TARGET-dso.txt and, when inferno is
#   installed (`cargo install inferno`), TARGET-flame.svg. Needs Debian's linux-perf.)
# On loopback the server's CPU includes work that a real network puts elsewhere: the kernel
# runs the receiving player's TCP input in the sender's context, and a sender on Nagle
# (nginx-rtmp) has part of its data sent from the player's ACK processing, in the load tool's
# context. The ratios therefore also compare server + load tool CPU per GB.
# nginx must run as root here (it is started with its own temp prefix and config).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_PREFIX="[bench-vs-nginx]"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PLAYERS=${PLAYERS:-1000}
BITRATE=${BITRATE:-2500k}
FPS=${FPS:-30}
GOP=${GOP:-2s}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
RAMP=${RAMP:-2s}
# The stream runs this long before the server's baseline RSS is read and players start: its
# per-stream memory (Sluice's GOP cache and HLS window) is then in the baseline, not divided
# among the viewers.
SETTLE=${SETTLE:-15s}
PROTOCOL=${PROTOCOL:-rtmp}
AUDIO=${AUDIO:-0}
BENCH_THREADS=${BENCH_THREADS:-1}
TARGETS=${TARGETS:-"nginx sluice"}
SKIP_BUILD=${SKIP_BUILD:-0}
PROFILE=${PROFILE:-0}
PROFILE_SECS=${PROFILE_SECS:-10}
# Sluice's tokio worker threads. nginx-rtmp runs one worker process here, so the comparison
# gives Sluice one worker thread too; set SLUICE_THREADS=0 for one per core.
SLUICE_THREADS=${SLUICE_THREADS:-1}
NGINX_PORT=${NGINX_PORT:-29350}
SLUICE_RTMP_PORT=${SLUICE_RTMP_PORT:-29351}
SLUICE_HTTP_PORT=${SLUICE_HTTP_PORT:-28081}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/sluice-bench-vs-nginx.XXXXXX)}
NGINX_BIN=${NGINX_BIN:-/usr/sbin/nginx}
RTMP_MODULE=${RTMP_MODULE:-$(dpkg -L libnginx-mod-rtmp 2>/dev/null | grep -m1 'ngx_rtmp_module\.so$' || echo /usr/lib/nginx/modules/ngx_rtmp_module.so)}

BENCH="$ROOT/target/release/sluice-bench"
ORIGIN=${ORIGIN_BIN:-"$ROOT/target/release/sluice-origin"}
LAUNCH="$ROOT/target/release/sluice-launch"
mkdir -p "$OUT_DIR"
raise_fd_limit

SERVER_PID=""
cleanup() {
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}
trap cleanup EXIT INT TERM

bench_run() {
    # $1 = rtmp url, $2 = server pid, $3 = output file, $4 = flv url (optional)
    local args=(run --url "$1" --publish --players "$PLAYERS" --protocol "$PROTOCOL"
        --bitrate "$BITRATE" --fps "$FPS" --gop "$GOP" --duration "$DURATION"
        --warmup "$WARMUP" --ramp "$RAMP" --settle "$SETTLE" --server-pid "$2")
    [[ "$AUDIO" == 1 ]] && args+=(--audio)
    [[ -n "${4:-}" ]] && args+=(--flv-url "$4")
    local profiler=""
    if [[ "$PROFILE" == 1 ]]; then
        profile_server "$2" "$(basename "$3" .json)" &
        profiler=$!
    fi
    log "sluice-bench ${args[*]}"
    "$BENCH" --threads "$BENCH_THREADS" "${args[@]}" >"$3" || log "sluice-bench reported an error (see $3)"
    if ! kill -0 "$2" 2>/dev/null; then
        log "server (pid $2) died during the run"
    fi
    [[ -n "$profiler" ]] && wait "$profiler"
    return 0
}

profile_server() {
    # $1 = server pid, $2 = target name. Starts once the measuring window has begun.
    local pid=$1 out="$OUT_DIR/$2"
    sleep $(($(to_secs "$SETTLE") + $(to_secs "$WARMUP") + 1))
    perf stat -p "$pid" -e 'syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_writev,syscalls:sys_enter_write,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvfrom,syscalls:sys_enter_read,syscalls:sys_enter_futex' \
        -- sleep 5 2>"$out-syscalls.txt" >/dev/null || log "perf stat failed (see $out-syscalls.txt)"
    perf record -q -F 1999 -g -p "$pid" -o "$out.perf.data" -- sleep "$PROFILE_SECS" >/dev/null 2>&1 ||
        { log "perf record failed"; return 0; }
    perf report -i "$out.perf.data" --no-children --sort sym --percent-limit 0.5 --stdio 2>/dev/null |
        grep -E '^ +[0-9]' >"$out-top.txt" || true
    perf report -i "$out.perf.data" --no-children --sort dso --stdio 2>/dev/null |
        grep -E '^ +[0-9]' >"$out-dso.txt" || true
    if command -v inferno-collapse-perf >/dev/null && command -v inferno-flamegraph >/dev/null; then
        perf script -i "$out.perf.data" 2>/dev/null | inferno-collapse-perf 2>/dev/null |
            inferno-flamegraph --title "$2: $PLAYERS $PROTOCOL viewers, $BITRATE" >"$out-flame.svg" 2>/dev/null ||
            log "flame graph failed"
    fi
    log "profile of $2 in $out-{syscalls,top,dso}.txt"
}

run_nginx() {
    if [[ "$PROTOCOL" != rtmp ]]; then
        log "skipping nginx-rtmp: it has no HTTP-FLV output"
        return 0
    fi
    local dir="$OUT_DIR/nginx"
    mkdir -p "$dir/logs"
    cat >"$dir/nginx.conf" <<EOF
load_module $RTMP_MODULE;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile $((PLAYERS * 2 + 1024));
error_log $dir/error.log;
pid $dir/nginx.pid;
events { worker_connections $((PLAYERS + 512)); }
rtmp {
    server {
        listen 127.0.0.1:$NGINX_PORT;
        chunk_size 4096;
        application live { live on; }
    }
}
EOF
    require_free_port "$NGINX_PORT" NGINX_PORT
    log "starting nginx-rtmp on 127.0.0.1:$NGINX_PORT"
    "$NGINX_BIN" -p "$dir" -c "$dir/nginx.conf" &
    SERVER_PID=$!
    wait_port "$NGINX_PORT" "$SERVER_PID"
    bench_run "rtmp://127.0.0.1:$NGINX_PORT/live/bench" "$SERVER_PID" "$OUT_DIR/nginx.json"
    cleanup
}

run_sluice() {
    require_free_port "$SLUICE_RTMP_PORT" SLUICE_RTMP_PORT
    require_free_port "$SLUICE_HTTP_PORT" SLUICE_HTTP_PORT
    log "starting sluice-origin on 127.0.0.1:$SLUICE_RTMP_PORT (HTTP $SLUICE_HTTP_PORT)"
    # Through sluice-launch: log to $OUT_DIR/sluice.log, stdout to sluice.out; returns once it
    # listens and /readyz answers.
    SLUICE_LOG=${SLUICE_LOG:-warn} "$LAUNCH" node --bin "$ORIGIN" --name sluice --log-dir "$OUT_DIR" \
        --pid-file "$OUT_DIR/sluice.pid" --ready --timeout 10 -- \
        --rtmp-listen "127.0.0.1:$SLUICE_RTMP_PORT" \
        --http-listen "127.0.0.1:$SLUICE_HTTP_PORT" --worker-threads "$SLUICE_THREADS" \
        --max-connections-per-ip 0 --new-connections-per-ip 0 --hls-sessions-per-ip 0 --hls-max-sessions-per-ip 0 ||
        { log "sluice-origin did not start (log: $OUT_DIR/sluice.log)"; exit 1; }
    SERVER_PID=$(cat "$OUT_DIR/sluice.pid")
    bench_run "rtmp://127.0.0.1:$SLUICE_RTMP_PORT/live/bench" "$SERVER_PID" "$OUT_DIR/sluice.json" \
        "http://127.0.0.1:$SLUICE_HTTP_PORT/live/bench.flv"
    cleanup
}

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p sluice-bench -p sluice-origin -p sluice-launch)
fi

for target in $TARGETS; do
    case "$target" in
        nginx) run_nginx ;;
        sluice) run_sluice ;;
        *) log "unknown target $target (use nginx, sluice)"; exit 2 ;;
    esac
done

for target in $TARGETS; do
    if [[ -s "$OUT_DIR/$target.json" ]]; then
        echo "=== $target ==="
        cat "$OUT_DIR/$target.json"
    fi
done

if [[ -s "$OUT_DIR/nginx.json" && -s "$OUT_DIR/sluice.json" ]]; then
    echo "=== ratios (sluice / nginx; < 1 means Sluice is lower) ==="
    jq -n --slurpfile n "$OUT_DIR/nginx.json" --slurpfile s "$OUT_DIR/sluice.json" '
        def ratio(a; b): if (a == null or b == null or b == 0) then null else ((a / b) * 10000 | round) / 10000 end;
        ($n[0]) as $n | ($s[0]) as $s |
        {
          cpu_seconds_per_gb: ratio($s.server.cpu_seconds_per_gb; $n.server.cpu_seconds_per_gb),
          load_tool_cpu_seconds: {sluice: $s.bench_cpu_seconds, nginx: $n.bench_cpu_seconds},
          server_and_load_tool_cpu_per_gb: ratio(($s.server.cpu_seconds + $s.bench_cpu_seconds) / $s.bytes_received;
            ($n.server.cpu_seconds + $n.bench_cpu_seconds) / $n.bytes_received),
          cpu_seconds_per_viewer: ratio($s.server.cpu_seconds_per_viewer; $n.server.cpu_seconds_per_viewer),
          latency_p50: ratio($s.latency_ms.p50_ms; $n.latency_ms.p50_ms),
          latency_p99: ratio($s.latency_ms.p99_ms; $n.latency_ms.p99_ms),
          ttff_p50: ratio($s.ttff_ms.p50_ms; $n.ttff_ms.p50_ms),
          ttff_p99: ratio($s.ttff_ms.p99_ms; $n.ttff_ms.p99_ms),
          rss_per_viewer: ratio($s.server.rss_per_viewer_bytes; $n.server.rss_per_viewer_bytes),
          rss_delta_per_viewer: ratio($s.server.rss_delta_per_viewer_bytes; $n.server.rss_delta_per_viewer_bytes),
          connected: {sluice: $s.players.connected, nginx: $n.players.connected},
          dropped_frames: {sluice: $s.frames.dropped, nginx: $n.frames.dropped}
        }'
fi
log "reports and logs in $OUT_DIR"
