#!/usr/bin/env bash
# Recording's cost (#15): STREAMS synthetic publishers (sluice-bench publish, with audio) into a
# release sluice-origin, twice back to back: recording off, then every stream recorded
# (--record-apps '*'). Reports the origin's CPU seconds over the same window for both, the
# extra CPU per recorded stream, the write rate held (sluice_recording_bytes_total over the
# window), and segments missed or writes failed (sluice_recording_errors_total, must be 0).
#
# Every parameter is an environment variable (defaults in brackets):
#   STREAMS [50]  BITRATE [2500k]  DURATION [60] (seconds measured)  WARMUP [10] (seconds)
#   SLUICE_THREADS [2]  SKIP_BUILD [0]  RTMP_PORT [29461]  HTTP_PORT [28191]
#   RECORD_DIR [a temp dir, removed afterwards]
#   RECORD_STORE [none]: s3://BUCKET/PREFIX to record into an S3-compatible bucket instead
#     (its endpoint and credentials from the AWS_* variables, e.g. a local moto_server)
#   OUT_DIR [bench/results/DATE-record]: summary.json
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_PREFIX="[bench-record]"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
STREAMS=${STREAMS:-50}
BITRATE=${BITRATE:-2500k}
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-10}
SLUICE_THREADS=${SLUICE_THREADS:-2}
SKIP_BUILD=${SKIP_BUILD:-0}
RTMP_PORT=${RTMP_PORT:-29461}
HTTP_PORT=${HTTP_PORT:-28191}
OUT_DIR=${OUT_DIR:-"$ROOT/bench/results/$(date +%Y-%m-%d)-record"}
LOG_DIR=$(mktemp -d /tmp/sluice-bench-record.XXXXXX)
RECORD_DIR=${RECORD_DIR:-"$LOG_DIR/recordings"}

BENCH="$ROOT/target/release/sluice-bench"
ORIGIN="$ROOT/target/release/sluice-origin"
LAUNCH="$ROOT/target/release/sluice-launch"
mkdir -p "$OUT_DIR"
raise_fd_limit

SERVER_PID=""
PUBLISHERS=()
cleanup() {
    for p in "${PUBLISHERS[@]}"; do kill "$p" 2>/dev/null || true; done
    PUBLISHERS=()
    stop_pid "$SERVER_PID"
    SERVER_PID=""
}
trap 'cleanup; rm -rf "$LOG_DIR/recordings"' EXIT INT TERM

# CPU seconds (user + system) of a pid so far.
cpu_seconds() {
    awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"
}

metric() {
    curl -s "http://127.0.0.1:$HTTP_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'
}

# $1 = off | on; prints "cpu_seconds bytes errors"
measure() {
    local mode=$1 args=()
    if [[ "$mode" == on && -n "${RECORD_STORE:-}" ]]; then
        args=(--record-store "$RECORD_STORE" --record-apps '*')
    elif [[ "$mode" == on ]]; then
        args=(--record-dir "$RECORD_DIR" --record-apps '*' --record-min-free 0)
    fi
    require_free_port "$RTMP_PORT" RTMP_PORT
    require_free_port "$HTTP_PORT" HTTP_PORT
    SLUICE_LOG=${SLUICE_LOG:-warn} "$LAUNCH" node --bin "$ORIGIN" --name "$mode" --log-dir "$LOG_DIR" \
        --pid-file "$LOG_DIR/$mode.pid" --ready --timeout 10 -- \
        --rtmp-listen "127.0.0.1:$RTMP_PORT" --http-listen "127.0.0.1:$HTTP_PORT" \
        --worker-threads "$SLUICE_THREADS" --max-connections-per-ip 0 --new-connections-per-ip 0 \
        "${args[@]}" >&2 || die "sluice-origin did not start (log: $LOG_DIR/$mode.log)"
    SERVER_PID=$(cat "$LOG_DIR/$mode.pid")
    log "recording $mode: $STREAMS publishers at $BITRATE with audio"
    for i in $(seq 1 "$STREAMS"); do
        "$BENCH" publish --url "rtmp://127.0.0.1:$RTMP_PORT/live/s$i" --bitrate "$BITRATE" --audio \
            --duration "$((WARMUP + DURATION + 5))s" >/dev/null 2>>"$LOG_DIR/publish-$mode.log" &
        PUBLISHERS+=($!)
    done
    sleep "$WARMUP"
    local cpu0 bytes0 errors0 cpu1 bytes1 errors1
    cpu0=$(cpu_seconds "$SERVER_PID"); bytes0=$(metric sluice_recording_bytes_total); bytes0=${bytes0:-0}
    sleep "$DURATION"
    cpu1=$(cpu_seconds "$SERVER_PID"); bytes1=$(metric sluice_recording_bytes_total); bytes1=${bytes1:-0}
    errors1=$(metric sluice_recording_errors_total); errors1=${errors1:-0}
    cleanup
    echo "$(echo "$cpu1 - $cpu0" | bc -l) $(echo "$bytes1 - $bytes0" | bc -l) $errors1"
}

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p sluice-bench -p sluice-origin -p sluice-launch)
fi
command -v bc >/dev/null || die "bc is needed (apt-get install bc)"

read -r cpu_off _ _ < <(measure off)
read -r cpu_on bytes errors < <(measure on)
recorded=$(du -sb "$RECORD_DIR" 2>/dev/null | cut -f1 || true)
jq -n --argjson streams "$STREAMS" --argjson window "$DURATION" --arg bitrate "$BITRATE" \
    --argjson off "$cpu_off" --argjson on "$cpu_on" --argjson bytes "$bytes" \
    --argjson errors "$errors" --argjson on_disk "${recorded:-0}" \
    --arg store "${RECORD_STORE:-$RECORD_DIR}" '
    def r3(x): ((x * 1000) | round) / 1000;
    {
      streams: $streams, bitrate: $bitrate, window_s: $window, store: $store,
      origin_cpu_seconds: {recording_off: r3($off), recording_on: r3($on)},
      cpu_share_of_a_core: {recording_off: r3($off / $window), recording_on: r3($on / $window)},
      recording_over_off: (if $off > 0 then r3($on / $off) else null end),
      extra_cpu_ms_per_stream_per_s: r3(($on - $off) / $streams / $window * 1000),
      write_rate_mb_s: r3($bytes / $window / 1e6),
      write_rate_per_stream_kbit_s: r3($bytes * 8 / $window / $streams / 1000),
      recording_errors: $errors,
      bytes_on_disk: $on_disk
    }' | tee "$OUT_DIR/summary.json"
log "logs: $LOG_DIR"
