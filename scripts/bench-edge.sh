#!/usr/bin/env bash
# What the origin -> edge hop costs. One etcd, one sluice-origin (QUIC relay on) and one
# sluice-edge (release builds, --worker-threads 1 each), one `sluice-bench publish` to the
# origin; then, in the same run and with the same publisher, RTMP players straight on the
# origin and the same number of RTMP players on the edge (which pulls the stream once from the
# origin over the relay). Done twice: a low-load pair (PLAYERS_LOW viewers, where the hop's own
# latency is clearest) and a loaded pair (PLAYERS viewers). Prints the JSON reports, the
# latency difference edge minus origin (the hop cost) and the ratio of CPU per viewer
# edge / origin. The publisher stamps each frame with the wall clock, so the players (another
# process on the same machine) measure publish-to-receive latency through both nodes.
#
# Phases (PHASES, run in the order given):
#   low   PLAYERS_LOW players on the origin, then on the edge (ORDER), one after the other.
#   high  PLAYERS players on the origin, then on the edge (ORDER), one after the other. During
#         the edge's run the origin is busy too (ingest + relay send), during the origin's run
#         the edge is idle: the edge shares the 2 cores with one more active process.
#   same  the fair CPU comparison: PLAYERS players on the origin AND PLAYERS on the edge AT THE
#         SAME TIME (two `sluice-bench run` processes started together, same publisher, same
#         window), so each node has the other as background load. The origin then also serves
#         the edge's relay subscription, work a standalone origin doesn't do; the `relay` phase
#         measures that work so the summary can take it out of the origin's figure.
#   relay the origin's relay-send cost: the origin's CPU over RELAY_WINDOW with nobody playing
#         (edge idle), then over RELAY_WINDOW with one player on the edge (the origin serves
#         only the relay). The difference per second is the relay send's CPU.
#
# Every parameter is an environment variable (defaults in brackets):
#   PLAYERS [1000]  PLAYERS_LOW [10]  BITRATE [2500k]  FPS [30]  GOP [2s]
#   DURATION [20s]  WARMUP [5s]  RAMP [2s]   PHASES ["low high"] (any of low high same relay)
#   RELAY_WINDOW [30s] (each of the two windows of the relay phase)
#   ORDER ["origin edge"] (which node's players run first within a phase; "edge origin" swaps)
#   BENCH_THREADS [1]  SLUICE_THREADS [1]  UPSTREAM_LINGER [3s] (edge; the script waits for the
#   edge's upstream to close before each origin run, so the origin run has no relay subscriber)
#   SKIP_BUILD [0]  WAIT_OTHERS [1] (wait while another benchmark runs)
#   ORIGIN_RTMP_PORT [29551]  ORIGIN_HTTP_PORT [28251]  RELAY_PORT [29552] (UDP)
#   EDGE_RTMP_PORT [29553]  EDGE_HTTP_PORT [28253]  ETCD_PORT [29562]  ETCD_PEER_PORT [29563]
#   OUT_DIR [bench/results/DATE-edge]: origin-low.json, edge-low.json, origin.json, edge.json,
#   origin-same.json, edge-same.json, relay-idle.tsv, relay-1.json,
#   publisher.json, summary.json, busy-*.txt (compilers and benchmarks running at the start and
#   in the middle of each window), metrics-*.txt (/metrics of both nodes in the middle of each
#   run), proc-*.tsv (each node's CPU ticks, write syscalls and context switches over the whole
#   players run, from /proc) and logs/ (node logs, bench stderr).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
LOG_PREFIX="[bench-edge]"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
PLAYERS=${PLAYERS:-1000}
PLAYERS_LOW=${PLAYERS_LOW:-10}
BITRATE=${BITRATE:-2500k}
FPS=${FPS:-30}
GOP=${GOP:-2s}
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-5s}
RAMP=${RAMP:-2s}
PHASES=${PHASES:-"low high"}
RELAY_WINDOW=${RELAY_WINDOW:-30s}
ORDER=${ORDER:-"origin edge"}
BENCH_THREADS=${BENCH_THREADS:-1}
SLUICE_THREADS=${SLUICE_THREADS:-1}
UPSTREAM_LINGER=${UPSTREAM_LINGER:-3s}
SKIP_BUILD=${SKIP_BUILD:-0}
WAIT_OTHERS=${WAIT_OTHERS:-1}
ORIGIN_RTMP_PORT=${ORIGIN_RTMP_PORT:-29551}
ORIGIN_HTTP_PORT=${ORIGIN_HTTP_PORT:-28251}
RELAY_PORT=${RELAY_PORT:-29552}
EDGE_RTMP_PORT=${EDGE_RTMP_PORT:-29553}
EDGE_HTTP_PORT=${EDGE_HTTP_PORT:-28253}
ETCD_PORT=${ETCD_PORT:-29562}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-29563}
OUT_DIR=${OUT_DIR:-"$ROOT/bench/results/$(date +%Y-%m-%d)-edge"}

BENCH="$ROOT/target/release/sluice-bench"
ORIGIN="$ROOT/target/release/sluice-origin"
EDGE="$ROOT/target/release/sluice-edge"
LAUNCH="$ROOT/target/release/sluice-launch"
LOG_DIR="$OUT_DIR/logs"
WORK=$(mktemp -d /tmp/sluice-edgebench.XXXXXX)
SHM=$([[ -d /dev/shm ]] && echo /dev/shm || echo /tmp)
ETCD_DIR="$SHM/sluice-edgebench-etcd.$$"
ETCD_URL="http://127.0.0.1:$ETCD_PORT"
PREFIX="/edgebench-$$"
mkdir -p "$OUT_DIR" "$LOG_DIR"
raise_fd_limit

# Processes this script started (etcd and the nodes through sluice-launch, in process groups of
# their own), stopped in reverse order on exit.
PIDS=()
ETCD_PID="" ORIGIN_PID="" EDGE_PID="" PUB_PID=""
cleanup() {
    local i
    # The publisher first (SIGINT: it prints its report), then edge, origin, etcd.
    stop_pid "$PUB_PID" INT
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
    done
    PIDS=()
    PUB_PID=""
    rm -rf "$ETCD_DIR" "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Other benchmarks (sluice-bench processes other than our publisher, or another bench script)
# on these 2 cores would spoil both runs: wait for them to finish.
other_benchmarks() {
    local pid
    for pid in $(pgrep -x sluice-bench || true) $(pgrep -f 'bench-vs-nginx\.sh|bench-hls\.sh' || true); do
        [[ "$pid" == "$PUB_PID" ]] && continue
        echo "$pid"
    done
}
wait_for_quiet() {
    [[ "$WAIT_OTHERS" == 1 ]] || return 0
    local waited=0 others
    while others=$(other_benchmarks) && [[ -n "$others" ]]; do
        if ((waited % 30 == 0)); then
            log "another benchmark runs (pids ${others//$'\n'/ }); waiting for it to finish"
        fi
        sleep 5
        waited=$((waited + 5))
    done
    ((waited > 0)) && log "no other benchmark left after ${waited}s; waiting 10 s more for the load to settle" && sleep 10
    return 0
}

metric() {
    # $1 = http port, $2 = metric name (no labels): its value, or empty
    curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null | awk -v m="$2" '$1 == m { print $2; exit }'
}

# Before an origin run: the edge must not be pulling (its relay subscription would be one more
# viewer on the origin).
wait_edge_idle() {
    local tries=$(( ($(to_secs "$UPSTREAM_LINGER") + 10) * 10 )) v
    while v=$(metric "$EDGE_HTTP_PORT" sluice_relay_upstreams) && [[ -n "$v" && "$v" != 0 ]]; do
        tries=$((tries - 1))
        if ((tries == 0)); then
            log "the edge still pulls the stream (sluice_relay_upstreams=$v); going on"
            return 0
        fi
        sleep 0.1
    done
}

# One line of counters of process $1 (named $2) from /proc: CPU ticks (utime+stime), write-family
# syscalls and bytes (write/writev: RTMP writes to viewers and eventfd wake-ups; send/sendmsg,
# which the QUIC relay uses, are not counted by the kernel there), and voluntary and involuntary
# context switches summed over all threads.
proc_counters() {
    local pid=$1 stat
    stat=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$2" \
        "$(awk '{print $12 + $13}' <<<"$stat")" \
        "$(awk '$1 == "syscw:" {print $2}' "/proc/$pid/io")" \
        "$(awk '$1 == "wchar:" {print $2}' "/proc/$pid/io")" \
        "$(cat /proc/"$pid"/task/*/status 2>/dev/null | awk '$1 == "voluntary_ctxt_switches:" {n += $2} END {print n + 0}')" \
        "$(cat /proc/"$pid"/task/*/status 2>/dev/null | awk '$1 == "nonvoluntary_ctxt_switches:" {n += $2} END {print n + 0}')"
}
proc_snapshot() {
    proc_counters "$ORIGIN_PID" origin
    proc_counters "$EDGE_PID" edge
    proc_counters "$PUB_PID" publisher
}

players_run() {
    # $1 = target (origin | edge), $2 = players, $3 = report name
    local target=$1 n=$2 name=$3 port pid
    if [[ "$target" == origin ]]; then
        port=$ORIGIN_RTMP_PORT pid=$ORIGIN_PID
        wait_edge_idle
    else
        port=$EDGE_RTMP_PORT pid=$EDGE_PID
    fi
    wait_for_quiet
    local args=(run --url "rtmp://127.0.0.1:$port/live/bench" --players "$n" --protocol rtmp
        --bitrate "$BITRATE" --fps "$FPS" --gop "$GOP" --duration "$DURATION"
        --warmup "$WARMUP" --ramp "$RAMP" --server-pid "$pid")
    # /metrics of both nodes in the middle of the measuring window.
    local mid=$(( $(to_secs "$WARMUP") + $(to_secs "$DURATION") / 2 ))
    (
        sleep "$mid"
        for node in origin:$ORIGIN_HTTP_PORT edge:$EDGE_HTTP_PORT; do
            curl -fsS "http://127.0.0.1:${node#*:}/metrics" >"$OUT_DIR/metrics-$name-${node%%:*}.txt" 2>/dev/null || true
        done
    ) &
    local scraper=$!
    log "$n players on the $target: sluice-bench ${args[*]}"
    local before
    before=$(proc_snapshot)
    "$BENCH" --threads "$BENCH_THREADS" "${args[@]}" >"$OUT_DIR/$name.json" 2>"$LOG_DIR/bench-$name.log" ||
        log "sluice-bench reported an error (see $OUT_DIR/$name.json, $LOG_DIR/bench-$name.log)"
    wait "$scraper" 2>/dev/null || true
    # Deltas over the whole run (ramp, warm-up and window), per process.
    proc_deltas "$before" >"$OUT_DIR/proc-$name.tsv"
    for p in "$ORIGIN_PID" "$EDGE_PID" "$PUB_PID"; do
        kill -0 "$p" 2>/dev/null || { log "process $p died during the $name run"; exit 1; }
    done
    log "$name: $(jq -c '{connected: .players.connected, dropped: .frames.dropped, p50: .latency_ms.p50_ms, p99: .latency_ms.p99_ms, cpu_s: .server.cpu_seconds}' "$OUT_DIR/$name.json" 2>/dev/null || echo 'no report')"
    # Let the players' connections close before the next run.
    sleep 2
}

# What else runs on the machine right now (one line): load average, compiler processes, other
# benchmark processes ($3 = how many sluice-bench processes are ours, publisher included).
# Appended to busy-$1.txt at the start and in the middle of a window.
busy_note() {
    printf '%s\t%s\tloadavg %s\trustc %s\tcargo %s\tother sluice-bench %s\n' "$(date +%T)" "$2" \
        "$(cut -d' ' -f1-3 /proc/loadavg)" "$(pgrep -cx rustc || true)" "$(pgrep -cx cargo || true)" \
        "$(($(pgrep -cx sluice-bench || true) - $3))" >>"$OUT_DIR/busy-$1.txt"
}

# Deltas of the /proc counters between snapshot $1 and now, as a TSV with a header.
proc_deltas() {
    printf 'process\tcpu_ticks\twrite_syscalls\tbytes_written\tvoluntary_cs\tinvoluntary_cs\n'
    awk -F'\t' -v OFS='\t' 'NR == FNR { for (i = 2; i <= NF; i++) b[$1, i] = $i; next }
        { printf "%s", $1; for (i = 2; i <= NF; i++) printf "\t%.0f", $i - b[$1, i]; printf "\n" }' \
        <(echo "$1") <(proc_snapshot)
}

# The fair phase: $1 players on the origin and $1 players on the edge at the same time, two
# sluice-bench processes started together (same ramp, warm-up and window), each sampling its
# own node's CPU (--server-pid) over the same window. Reports origin-$2.json, edge-$2.json.
players_pair() {
    local n=$1 name=$2
    wait_for_quiet
    local common_args=(run --players "$n" --protocol rtmp --bitrate "$BITRATE" --fps "$FPS"
        --gop "$GOP" --duration "$DURATION" --warmup "$WARMUP" --ramp "$RAMP")
    local warm mid
    warm=$(to_secs "$WARMUP")
    mid=$((warm + $(to_secs "$DURATION") / 2))
    : >"$OUT_DIR/busy-$name.txt"
    (
        sleep "$warm"
        busy_note "$name" window-start 3
        sleep $((mid - warm))
        busy_note "$name" window-middle 3
        for node in origin:$ORIGIN_HTTP_PORT edge:$EDGE_HTTP_PORT; do
            curl -fsS "http://127.0.0.1:${node#*:}/metrics" >"$OUT_DIR/metrics-$name-${node%%:*}.txt" 2>/dev/null || true
        done
    ) &
    local scraper=$!
    log "$n players on the origin AND $n on the edge at the same time: sluice-bench ${common_args[*]}"
    local before
    before=$(proc_snapshot)
    "$BENCH" --threads "$BENCH_THREADS" "${common_args[@]}" --url "rtmp://127.0.0.1:$ORIGIN_RTMP_PORT/live/bench" \
        --server-pid "$ORIGIN_PID" >"$OUT_DIR/origin-$name.json" 2>"$LOG_DIR/bench-origin-$name.log" &
    local bench_origin=$!
    "$BENCH" --threads "$BENCH_THREADS" "${common_args[@]}" --url "rtmp://127.0.0.1:$EDGE_RTMP_PORT/live/bench" \
        --server-pid "$EDGE_PID" >"$OUT_DIR/edge-$name.json" 2>"$LOG_DIR/bench-edge-$name.log" &
    local bench_edge=$!
    wait "$bench_origin" || log "sluice-bench (origin players) reported an error (see $OUT_DIR/origin-$name.json)"
    wait "$bench_edge" || log "sluice-bench (edge players) reported an error (see $OUT_DIR/edge-$name.json)"
    wait "$scraper" 2>/dev/null || true
    proc_deltas "$before" >"$OUT_DIR/proc-$name.tsv"
    for p in "$ORIGIN_PID" "$EDGE_PID" "$PUB_PID"; do
        kill -0 "$p" 2>/dev/null || { log "process $p died during the $name run"; exit 1; }
    done
    local node
    for node in origin edge; do
        log "$name $node: $(jq -c '{connected: .players.connected, dropped: .frames.dropped, p50: .latency_ms.p50_ms, p99: .latency_ms.p99_ms, cpu_s: .server.cpu_seconds, window_s: .window_s}' "$OUT_DIR/$node-$name.json" 2>/dev/null || echo 'no report')"
    done
    sleep 2
}

# The relay phase: the origin's CPU over RELAY_WINDOW with nobody playing anywhere (relay-idle.tsv,
# from /proc), then with one RTMP player on the edge only (relay-1.json, --server-pid origin:
# the origin serves only the relay subscription, plus ingest as in the idle window).
relay_cost() {
    local secs
    secs=$(to_secs "$RELAY_WINDOW")
    wait_edge_idle
    wait_for_quiet
    log "origin with no viewer and no relay subscriber for ${secs}s"
    : >"$OUT_DIR/busy-relay.txt"
    busy_note relay idle-start 1
    local before
    before=$(proc_snapshot)
    sleep "$secs"
    { proc_deltas "$before"; printf 'window_s\t%s\n' "$secs"; } >"$OUT_DIR/relay-idle.tsv"
    log "one player on the edge for ${secs}s (the origin serves the relay only)"
    busy_note relay one-edge-player-start 1
    before=$(proc_snapshot)
    "$BENCH" --threads "$BENCH_THREADS" run --url "rtmp://127.0.0.1:$EDGE_RTMP_PORT/live/bench" \
        --players 1 --protocol rtmp --bitrate "$BITRATE" --fps "$FPS" --gop "$GOP" \
        --duration "$RELAY_WINDOW" --warmup "$WARMUP" --ramp "$RAMP" --server-pid "$ORIGIN_PID" \
        >"$OUT_DIR/relay-1.json" 2>"$LOG_DIR/bench-relay-1.log" ||
        log "sluice-bench reported an error (see $OUT_DIR/relay-1.json)"
    proc_deltas "$before" >"$OUT_DIR/proc-relay-1.tsv"
    log "relay: origin idle $(awk -F'\t' '$1 == "origin" {print $2 / 100}' "$OUT_DIR/relay-idle.tsv") CPU-s in ${secs}s, serving the relay $(jq '.server.cpu_seconds' "$OUT_DIR/relay-1.json" 2>/dev/null) CPU-s in $(jq '.window_s' "$OUT_DIR/relay-1.json" 2>/dev/null)s"
    sleep 2
}

for phase in $PHASES; do
    case "$phase" in
        low | high | same | relay) ;;
        *) log "unknown phase $phase (use low, high, same, relay)"; exit 2 ;;
    esac
done

if [[ "$SKIP_BUILD" != 1 ]]; then
    log "building release binaries"
    (cd "$ROOT" && cargo build --release -p sluice-bench -p sluice-origin -p sluice-edge -p sluice-launch)
fi
for bin in "$BENCH" "$ORIGIN" "$EDGE" "$LAUNCH"; do
    [[ -x "$bin" ]] || { log "missing $bin (build it, or run without SKIP_BUILD=1)"; exit 1; }
done
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    log "etcd and etcdctl are needed (Debian etcd-server, etcd-client)"
    exit 1
fi

# Which code was measured (the tree may have uncommitted edits: they are listed).
{
    echo "date: $(date -Is)"
    echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    echo "uncommitted changes at run time:"
    git -C "$ROOT" status --short 2>/dev/null | sed 's/^/  /'
    # shellcheck disable=SC2012 # our own three paths, no odd names
    echo "binaries: $(ls -l --time-style=+%FT%T "$ORIGIN" "$EDGE" "$BENCH" | awk '{print $6, $7}' | tr '\n' ' ')"
    echo "host: $(nproc) cpus, $(uname -r)"
} >"$OUT_DIR/build.txt"

wait_for_quiet

for p in ORIGIN_RTMP_PORT ORIGIN_HTTP_PORT EDGE_RTMP_PORT EDGE_HTTP_PORT ETCD_PORT ETCD_PEER_PORT; do
    require_free_port "${!p}" "$p"
done
require_free_udp_port "$RELAY_PORT" RELAY_PORT

log "starting etcd on 127.0.0.1:$ETCD_PORT (data in $ETCD_DIR)"
"$LAUNCH" etcd --name bench --client-port "$ETCD_PORT" --peer-port "$ETCD_PEER_PORT" \
    --data-dir "$ETCD_DIR" --log "$LOG_DIR/etcd.log" --pid-file "$WORK/etcd.pid" ||
    { log "etcd did not start; see $LOG_DIR/etcd.log"; exit 1; }
ETCD_PID=$(cat "$WORK/etcd.pid")
PIDS+=("$ETCD_PID")
etcdctl_() { ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" --command-timeout=3s "$@"; }

"$LAUNCH" certs --origin-bin "$ORIGIN" --out "$WORK/certs" --nodes origin-1,edge-1 >/dev/null

# start_node NAME BINARY FLAGS...: through sluice-launch (stdout to logs/NAME.out, log to
# logs/NAME.log); returns once it listens and /readyz answers; its pid is in $WORK/NAME.pid.
start_node() {
    local name=$1 bin=$2
    shift 2
    "$LAUNCH" node --bin "$bin" --name "$name" --log-dir "$LOG_DIR" --pid-file "$WORK/$name.pid" \
        --ready --timeout 20 -- "$@" || { [[ -s "$WORK/$name.pid" ]] && PIDS+=("$(cat "$WORK/$name.pid")"); exit 1; }
    PIDS+=("$(cat "$WORK/$name.pid")")
}

common=(--etcd "$ETCD_URL" --etcd-prefix "$PREFIX" --tls-dir "$WORK/certs"
    --worker-threads "$SLUICE_THREADS" --log "${SLUICE_LOG:-warn}"
    # Every benchmark client comes from 127.0.0.1: per-address shares off.
    --max-connections-per-ip 0 --new-connections-per-ip 0 --hls-sessions-per-ip 0 --hls-max-sessions-per-ip 0)
log "starting sluice-origin (rtmp $ORIGIN_RTMP_PORT, http $ORIGIN_HTTP_PORT, relay udp $RELAY_PORT)"
start_node origin "$ORIGIN" "${common[@]}" --node-id origin-1 --relay-listen "127.0.0.1:$RELAY_PORT" \
    --rtmp-listen "127.0.0.1:$ORIGIN_RTMP_PORT" --http-listen "127.0.0.1:$ORIGIN_HTTP_PORT"
ORIGIN_PID=$(cat "$WORK/origin.pid")

log "starting sluice-edge (rtmp $EDGE_RTMP_PORT, http $EDGE_HTTP_PORT, --upstream-linger $UPSTREAM_LINGER)"
start_node edge "$EDGE" "${common[@]}" --node-id edge-1 --upstream-linger "$UPSTREAM_LINGER" \
    --rtmp-listen "127.0.0.1:$EDGE_RTMP_PORT" --http-listen "127.0.0.1:$EDGE_HTTP_PORT"
EDGE_PID=$(cat "$WORK/edge.pid")

log "publishing $BITRATE, $FPS fps, GOP $GOP to the origin"
"$BENCH" publish --url "rtmp://127.0.0.1:$ORIGIN_RTMP_PORT/live/bench" --bitrate "$BITRATE" \
    --fps "$FPS" --gop "$GOP" >"$OUT_DIR/publisher.json" 2>"$LOG_DIR/publisher.log" &
PUB_PID=$!
claim="$PREFIX/streams/live/bench"
tries=100
until etcdctl_ get --keys-only "$claim" 2>/dev/null | grep -qx "$claim"; do
    kill -0 "$PUB_PID" 2>/dev/null || { log "publisher exited; see $LOG_DIR/publisher.log"; exit 1; }
    tries=$((tries - 1))
    ((tries > 0)) || { log "stream $claim never appeared in etcd"; exit 1; }
    sleep 0.1
done
# A full GOP in the origin's cache before anyone plays.
sleep "$(to_secs "$GOP")"

for phase in $PHASES; do
    case "$phase" in
        low | high) ;;
        same) players_pair "$PLAYERS" same; continue ;;
        relay) relay_cost; continue ;;
        *) log "unknown phase $phase (use low, high, same, relay)"; exit 2 ;;
    esac
    for target in $ORDER; do
        case "$target" in
            origin | edge) ;;
            *) log "unknown target $target in ORDER (use origin, edge)"; exit 2 ;;
        esac
        if [[ "$phase" == low ]]; then
            players_run "$target" "$PLAYERS_LOW" "$target-low"
        else
            players_run "$target" "$PLAYERS" "$target"
        fi
    done
done

stop_pid "$PUB_PID" INT
PUB_PID=""

for name in origin-low edge-low origin edge origin-same edge-same relay-1; do
    if [[ -s "$OUT_DIR/$name.json" ]]; then
        echo "=== $name ==="
        cat "$OUT_DIR/$name.json"
    fi
done

# Edge vs origin for one load level: $1 = origin report, $2 = edge report.
compare() {
    jq -n --slurpfile o "$1" --slurpfile e "$2" '
        def ratio(a; b): if (a == null or b == null or b == 0) then null else ((a / b) * 10000 | round) / 10000 end;
        def diff(a; b): if (a == null or b == null) then null else (((a - b) * 1000) | round) / 1000 end;
        def r3(x): if x == null then null else ((x * 1000) | round) / 1000 end;
        ($o[0]) as $o | ($e[0]) as $e |
        {
          viewers: {origin: $o.players.connected, edge: $e.players.connected},
          dropped_frames: {origin: $o.frames.dropped, edge: $e.frames.dropped},
          latency_ms: {
            origin: {p50: $o.latency_ms.p50_ms, p90: $o.latency_ms.p90_ms, p99: $o.latency_ms.p99_ms, max: $o.latency_ms.max_ms},
            edge: {p50: $e.latency_ms.p50_ms, p90: $e.latency_ms.p90_ms, p99: $e.latency_ms.p99_ms, max: $e.latency_ms.max_ms}
          },
          hop_cost_ms: {
            p50: diff($e.latency_ms.p50_ms; $o.latency_ms.p50_ms),
            p99: diff($e.latency_ms.p99_ms; $o.latency_ms.p99_ms),
            p99_under_5ms: (diff($e.latency_ms.p99_ms; $o.latency_ms.p99_ms) as $d | $d != null and $d < 5)
          },
          ttff_ms: {origin: {p50: $o.ttff_ms.p50_ms, p99: $o.ttff_ms.p99_ms}, edge: {p50: $e.ttff_ms.p50_ms, p99: $e.ttff_ms.p99_ms}},
          server_cpu_seconds: {origin: $o.server.cpu_seconds, edge: $e.server.cpu_seconds},
          cpu_ms_per_viewer: {
            origin: r3($o.server.cpu_seconds_per_viewer * 1000),
            edge: r3($e.server.cpu_seconds_per_viewer * 1000),
            edge_over_origin: ratio($e.server.cpu_seconds_per_viewer; $o.server.cpu_seconds_per_viewer)
          },
          cpu_seconds_per_gb: {
            origin: r3($o.server.cpu_seconds_per_gb), edge: r3($e.server.cpu_seconds_per_gb),
            edge_over_origin: ratio($e.server.cpu_seconds_per_gb; $o.server.cpu_seconds_per_gb)
          },
          rss_delta_per_viewer_bytes: {origin: ($o.server.rss_delta_per_viewer_bytes | round), edge: ($e.server.rss_delta_per_viewer_bytes | round)},
          throughput_mbps: {origin: r3($o.throughput_mbps), edge: r3($e.throughput_mbps)},
          bench_cpu_seconds: {origin: $o.bench_cpu_seconds, edge: $e.bench_cpu_seconds},
          loadavg_1m: {origin: [$o.host.loadavg_1m_start, $o.host.loadavg_1m_end], edge: [$e.host.loadavg_1m_start, $e.host.loadavg_1m_end]}
        }'
}

summary="{}"
if [[ -s "$OUT_DIR/origin-low.json" && -s "$OUT_DIR/edge-low.json" ]]; then
    summary=$(jq --argjson c "$(compare "$OUT_DIR/origin-low.json" "$OUT_DIR/edge-low.json")" '.low = $c' <<<"$summary")
fi
if [[ -s "$OUT_DIR/origin.json" && -s "$OUT_DIR/edge.json" ]]; then
    summary=$(jq --argjson c "$(compare "$OUT_DIR/origin.json" "$OUT_DIR/edge.json")" '.high = $c' <<<"$summary")
fi
if [[ -s "$OUT_DIR/origin-same.json" && -s "$OUT_DIR/edge-same.json" ]]; then
    summary=$(jq --argjson c "$(compare "$OUT_DIR/origin-same.json" "$OUT_DIR/edge-same.json")" '.same = $c' <<<"$summary")
fi
# The origin's relay-send CPU per second (serving the relay alone minus idle, both with ingest).
if [[ -s "$OUT_DIR/relay-idle.tsv" && -s "$OUT_DIR/relay-1.json" ]]; then
    idle_ticks=$(awk -F'\t' '$1 == "origin" {print $2}' "$OUT_DIR/relay-idle.tsv")
    idle_secs=$(awk -F'\t' '$1 == "window_s" {print $2}' "$OUT_DIR/relay-idle.tsv")
    summary=$(jq --slurpfile r "$OUT_DIR/relay-1.json" --argjson it "${idle_ticks:-null}" --argjson is "${idle_secs:-null}" '
        ($r[0]) as $r |
        .relay = {
          origin_idle_cpu_seconds: (if $it == null then null else $it / 100 end), idle_window_s: $is,
          origin_serving_relay_cpu_seconds: $r.server.cpu_seconds, relay_window_s: $r.window_s,
          edge_viewers: $r.players.connected,
          relay_send_cpu_seconds_per_second:
            (if ($it == null or $is == null or $r.server.cpu_seconds == null) then null
             else ((($r.server.cpu_seconds / $r.window_s) - ($it / 100 / $is)) * 100000 | round) / 100000 end)
        }' <<<"$summary")
fi
# The same-time comparison with the origin's relay send taken out of its CPU (what a standalone
# origin would have spent), when both phases ran.
summary=$(jq --slurpfile o <(cat "$OUT_DIR/origin-same.json" 2>/dev/null || echo null) '
    if (.same != null and .relay.relay_send_cpu_seconds_per_second != null and $o[0] != null) then
      ($o[0]) as $o |
      (($o.server.cpu_seconds - .relay.relay_send_cpu_seconds_per_second * $o.window_s) / $o.players.connected * 1000) as $adj |
      .same.cpu_ms_per_viewer.origin_without_relay_send = (($adj * 1000) | round) / 1000 |
      .same.cpu_ms_per_viewer.edge_over_origin_without_relay_send =
        (if $adj > 0 then (((.same.cpu_ms_per_viewer.edge / $adj) * 10000) | round) / 10000 else null end)
    else . end' <<<"$summary")
jq --argjson low "$PLAYERS_LOW" --argjson high "$PLAYERS" '.players = {low: $low, high: $high, same: $high}' <<<"$summary" >"$OUT_DIR/summary.json"

echo "=== origin -> edge hop (edge minus origin; ratios edge / origin) ==="
jq -r '
    . as $s |
    (("low", "high", "same") as $k | select($s[$k] != null) | $s[$k] as $c |
    "\(if $k == "same" then "same time" else "\($k) load" end), \($s.players[$k]) viewers each (connected origin \($c.viewers.origin), edge \($c.viewers.edge); dropped \($c.dropped_frames.origin) / \($c.dropped_frames.edge)):",
    "  latency p50 ms: origin \($c.latency_ms.origin.p50)  edge \($c.latency_ms.edge.p50)  hop \($c.hop_cost_ms.p50)",
    "  latency p99 ms: origin \($c.latency_ms.origin.p99)  edge \($c.latency_ms.edge.p99)  hop \($c.hop_cost_ms.p99)  (under 5 ms: \($c.hop_cost_ms.p99_under_5ms))",
    "  CPU ms per viewer: origin \($c.cpu_ms_per_viewer.origin)  edge \($c.cpu_ms_per_viewer.edge)  edge/origin \($c.cpu_ms_per_viewer.edge_over_origin)",
    "  CPU s per GB: origin \($c.cpu_seconds_per_gb.origin)  edge \($c.cpu_seconds_per_gb.edge)  edge/origin \($c.cpu_seconds_per_gb.edge_over_origin)",
    "  load average 1m: origin \($c.loadavg_1m.origin)  edge \($c.loadavg_1m.edge)",
    (select($c.cpu_ms_per_viewer.origin_without_relay_send != null) |
    "  CPU ms per viewer, origin without its relay send: \($c.cpu_ms_per_viewer.origin_without_relay_send)  edge/origin \($c.cpu_ms_per_viewer.edge_over_origin_without_relay_send)")),
    (select($s.relay != null) | $s.relay as $r |
    "relay send on the origin: idle \($r.origin_idle_cpu_seconds) CPU-s in \($r.idle_window_s) s, serving the relay \($r.origin_serving_relay_cpu_seconds) CPU-s in \($r.relay_window_s) s: \($r.relay_send_cpu_seconds_per_second) CPU-s per s")
' "$OUT_DIR/summary.json"
log "reports in $OUT_DIR (logs in $LOG_DIR)"
