#!/usr/bin/env bash
# AssignViewer throughput and latency of one control-plane replica. Starts the local cluster
# (deploy/local/cluster.sh: etcd, 2 origins, 3 edges, one sluice-control-plane), publishes one
# stream with `sluice-bench publish`, then runs `sluice-bench assign` against the replica's
# gRPC port at each concurrency in CONCURRENCY (calls in flight at once), sampling the replica's
# CPU (utime+stime from /proc) over each run. Stops the cluster at the end.
#
# Environment (defaults in brackets):
#   CONCURRENCY ["1 16 64"]  CONNECTIONS [2]  DURATION [10s]  WARMUP [2s]  BENCH_THREADS [1]
#   EDGE_CAPACITY [100000000] (each edge's --max-viewers, via SLUICE_MAX_VIEWERS)
#   BASE_PORT [27000]  STATE_DIR [/dev/shm/sluice-bench-assign]
#   SKIP_BUILD [0]     BIN_DIR [target/release] (sluice-origin, sluice-edge,
#                      sluice-control-plane, sluice-launch, sluice-bench)
#   OUT_DIR [bench/results/DATE-assign]: assign-cN.json, cpu-cN.txt, cluster.txt, publisher.log
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_PREFIX="[bench-assign]"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
CONCURRENCY=${CONCURRENCY:-"1 16 64"}
CONNECTIONS=${CONNECTIONS:-2}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-2s}
BENCH_THREADS=${BENCH_THREADS:-1}
export BASE_PORT=${BASE_PORT:-27000}
export STATE_DIR=${STATE_DIR:-/dev/shm/sluice-bench-assign}
BIN_DIR=${BIN_DIR:-$ROOT/target/release}
OUT_DIR=${OUT_DIR:-$ROOT/bench/results/$(date -u +%Y-%m-%d)-assign}
STREAM=live/bench

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    log "building (release)"
    (cd "$ROOT" && cargo build --release -p sluice-origin -p sluice-edge -p sluice-control-plane \
        -p sluice-launch -p sluice-bench) >&2
fi
mkdir -p "$OUT_DIR"
# The edges' configured capacity: the replica counts the viewers it assigned to an edge until
# the edge's next load report (~2 s), so with the default 10 000 per edge the three edges would
# be "full" after 30 000 calls in 2 s and the run would measure RESOURCE_EXHAUSTED answers.
EDGE_CAPACITY=${EDGE_CAPACITY:-100000000}
cluster() {
    SKIP_BUILD=1 BIN_DIR="$BIN_DIR" STREAM=$STREAM SLUICE_MAX_VIEWERS=$EDGE_CAPACITY \
        "$ROOT/deploy/local/cluster.sh" "$@"
}
publisher=
cleanup() {
    if [ -n "$publisher" ]; then kill "$publisher" 2>/dev/null || true; fi
    cluster down >&2 || true
}
trap cleanup EXIT

cluster up >"$OUT_DIR/cluster.txt"
grpc="http://127.0.0.1:$((BASE_PORT + 60))"
cp_pid=$(cat "$STATE_DIR/pids/control-plane.pid")
"$BIN_DIR/sluice-bench" publish --url "rtmp://127.0.0.1:$((BASE_PORT + 10))/$STREAM" \
    >/dev/null 2>"$OUT_DIR/publisher.log" &
publisher=$!
# The replica answers once its cache holds the stream's claim.
for _ in $(seq 100); do
    if curl -fs -o /dev/null "http://127.0.0.1:$((BASE_PORT + 61))/play/$STREAM.json"; then break; fi
    sleep 0.1
done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
for c in $CONCURRENCY; do
    log "concurrency $c: $WARMUP warm-up, $DURATION measured"
    before=$(ticks "$cp_pid")
    start=$(date +%s.%N)
    "$BIN_DIR/sluice-bench" --threads "$BENCH_THREADS" assign --endpoint "$grpc" \
        --stream "$STREAM" --concurrency "$c" --connections "$CONNECTIONS" \
        --warmup "$WARMUP" --duration "$DURATION" >"$OUT_DIR/assign-c$c.json"
    end=$(date +%s.%N)
    after=$(ticks "$cp_pid")
    awk -v t=$((after - before)) -v hz="$hz" -v s="$start" -v e="$end" \
        'BEGIN { printf "control plane CPU: %.2f s over %.1f s (%.0f %% of one core)\n", t / hz, e - s, 100 * t / hz / (e - s) }' \
        | tee "$OUT_DIR/cpu-c$c.txt" >&2
    python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("  %(calls_per_second).0f calls/s, p50 %(p50)d us, p99 %(p99)d us, max %(max)d us, errors %(errors)s" % {**r, **r["latency_us"]})' \
        "$OUT_DIR/assign-c$c.json" >&2
done
log "reports in $OUT_DIR"
