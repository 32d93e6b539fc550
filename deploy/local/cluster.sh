#!/usr/bin/env bash
# A real local Sluice cluster on loopback: etcd + 2 origins + 3 edges + the control plane.
#
#   deploy/local/cluster.sh [up]         # build (release), start, print the URLs, return
#   deploy/local/cluster.sh up --foreground   # same, stay attached; Ctrl-C stops everything
#   deploy/local/cluster.sh status       # which processes run, /readyz of each, etcd's node keys
#   deploy/local/cluster.sh down         # stop everything (edges, origins, etcd); idempotent
#   deploy/local/cluster.sh chaos [--minutes N] [--seed S] [...]   # the chaos harness: its own
#                      cluster of these binaries, every node in a network namespace (root), under
#                      load while nodes die, freeze and lose links; prints the report
#                      (`sluice-chaos --help` lists its options)
#
# Environment (all optional):
#   BASE_PORT=20000    ports: etcd BASE+0 (client) BASE+1 (peer); node k (origin-1=1, origin-2=2,
#                      edge-1=3, edge-2=4, edge-3=5): RTMP BASE+10k, HTTP BASE+10k+1, relay (UDP,
#                      origins) BASE+10k+2; control plane: gRPC BASE+60, HTTP BASE+61 (cluster
#                      page, /play redirects, /api/cluster, /metrics)
#   STATE_DIR          PIDs, logs, certificates, etcd data (default /dev/shm/sluice-local-$USER)
#   SKIP_BUILD=1       do not run `cargo build --release`
#   BIN_DIR            where sluice-origin, sluice-edge, sluice-control-plane and sluice-launch are
#                      (default <target>/release)
#   FOREGROUND=1       same as --foreground
#   STREAM=live/mystream   the APP/STREAM used in the printed URLs
#   ETCD_PREFIX=/sluice, LEASE_TTL=5s, DRAIN_TIMEOUT=3s, START_TIMEOUT=60 (s), STOP_TIMEOUT=15 (s)
#   SLUICE_* variables reach the nodes as usual (e.g. SLUICE_LOG=debug); flags set here win.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SELF="deploy/local/cluster.sh"
LOG_PREFIX="cluster.sh:"
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
ORIGINS=(origin-1 origin-2)
EDGES=(edge-1 edge-2 edge-3)
# The control plane (sluice-control-plane): assigns viewers to edges, reports capacity, serves
# the cluster page. Stateless: it learns everything from etcd.
CONTROL=control-plane
HOST=127.0.0.1

STATE_DIR=${STATE_DIR:-/dev/shm/sluice-local-${USER:-$(id -un)}}
PID_DIR="$STATE_DIR/pids"
LOG_DIR="$STATE_DIR/logs"
CERT_DIR="$STATE_DIR/certs"
ETCD_DATA="$STATE_DIR/etcd-data"
ENV_FILE="$STATE_DIR/cluster.env"

say() { printf '%s\n' "$*"; }
err() { log "$@"; }
die() { err "$*"; exit 1; }

# Ports and prefix. `status` and `down` (argument "saved") take the settings `up` wrote to the
# state dir over the environment, so they need no flags.
load_settings() {
    if [ "${1:-}" = saved ] && [ -f "$ENV_FILE" ]; then
        # shellcheck source=/dev/null
        . "$ENV_FILE"
    fi
    BASE_PORT=${BASE_PORT:-20000}
    ETCD_PREFIX=${ETCD_PREFIX:-/sluice}
    STREAM=${STREAM:-live/mystream}
    case $BASE_PORT in
        '' | *[!0-9]*) die "BASE_PORT must be a number, got '$BASE_PORT'" ;;
    esac
    if [ "$BASE_PORT" -lt 1024 ] || [ "$BASE_PORT" -gt 65400 ]; then
        die "BASE_PORT must be between 1024 and 65400 (the cluster uses BASE_PORT..BASE_PORT+61)"
    fi
    ETCD_CLIENT=$((BASE_PORT))
    ETCD_PEER=$((BASE_PORT + 1))
    ETCD_URL="http://$HOST:$ETCD_CLIENT"
    CONTROL_GRPC=$((BASE_PORT + 60))
    CONTROL_HTTP=$((BASE_PORT + 61))
}

# Node k's ports (k = 1 for origin-1 ... 5 for edge-3).
node_index() {
    case $1 in
        origin-1) echo 1 ;; origin-2) echo 2 ;;
        edge-1) echo 3 ;; edge-2) echo 4 ;; edge-3) echo 5 ;;
        *) die "unknown node $1" ;;
    esac
}
rtmp_port() { echo $((BASE_PORT + 10 * $(node_index "$1"))); }
http_port() { echo $((BASE_PORT + 10 * $(node_index "$1") + 1)); }
relay_port() { echo $((BASE_PORT + 10 * $(node_index "$1") + 2)); }

# Process bookkeeping: pids/NAME.pid; a pid counts only while /proc says it is still our program
# (never signal a recycled pid).
comm_of() {
    case $1 in
        etcd) echo etcd ;; origin-*) echo sluice-origin ;; edge-*) echo sluice-edge ;;
        # /proc/PID/comm keeps the first 15 characters of the program's name.
        "$CONTROL") echo sluice-control- ;;
    esac
}
pid_of() {
    local f="$PID_DIR/$1.pid" pid
    [ -f "$f" ] || return 1
    pid=$(cat "$f")
    case $pid in '' | *[!0-9]*) return 1 ;; esac
    alive "$pid" "$(comm_of "$1")" || return 1
    echo "$pid"
}
check_ports() {
    local taken=() name proto port label
    # proto port label, one per line
    while read -r proto port label; do
        if port_taken "$proto" "$port"; then taken+=("$port/$proto ($label)"); fi
    done < <(
        echo "tcp $ETCD_CLIENT etcd client"
        echo "tcp $ETCD_PEER etcd peer"
        for name in "${ORIGINS[@]}" "${EDGES[@]}"; do
            echo "tcp $(rtmp_port "$name") $name RTMP"
            echo "tcp $(http_port "$name") $name HTTP"
            case $name in origin-*) echo "udp $(relay_port "$name") $name relay" ;; esac
        done
        echo "tcp $CONTROL_GRPC $CONTROL gRPC"
        echo "tcp $CONTROL_HTTP $CONTROL HTTP"
    )
    if [ "${#taken[@]}" -gt 0 ]; then
        err "port(s) already in use: ${taken[*]}"
        err "another cluster may be running (try: $SELF status / $SELF down), or pick other ports: BASE_PORT=21000 $SELF up"
        exit 1
    fi
}

need() {
    command -v "$1" >/dev/null || die "$1 not found: $2"
}

build() {
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        return
    fi
    need cargo "install Rust from https://rustup.rs (or set SKIP_BUILD=1 BIN_DIR=... to use built binaries)"
    say "Building sluice-origin, sluice-edge, sluice-control-plane and sluice-launch (release; SKIP_BUILD=1 skips this)..."
    (cd "$ROOT" && cargo build --release -p sluice-origin -p sluice-edge -p sluice-control-plane -p sluice-launch) >&2
}

log_tail() {
    err "last lines of $LOG_DIR/$1.log:"
    tail -n 20 "$LOG_DIR/$1.log" >&2 2>/dev/null || true
}

# launch etcd|node ARGS...: `sluice-launch` (tests/launch, the launcher the Rust tests use too)
# starts the process in a process group of its own, so neither a closed terminal nor a Ctrl-C
# meant for this script reaches it (`down` or the foreground trap stops the nodes in order),
# writes its pid file at once and returns when it is ready (etcd: /health; a node: its
# `listening` line, then /readyz 200). stdout goes to logs/NAME.out, stderr to logs/NAME.log.
launch() {
    "$BIN_DIR/sluice-launch" "$1" --timeout "$START_TIMEOUT" "${@:2}"
}

# A process that did not start (sluice-launch printed why and its log's last lines): stop the
# rest, fail.
start_failed() {
    local name=$1
    err "$name did not start"
    if grep -qi 'address already in use\|address in use' "$LOG_DIR/$name.log" 2>/dev/null; then
        err "a port of $name is taken: pick another range with BASE_PORT=..."
    fi
    stop_all >&2
    exit 1
}

# start_nodes BINARY NAME...: start them side by side, each through sluice-launch, and wait
# until all are ready (listening on the expected HTTP port, /readyz 200).
start_nodes() {
    local bin=$1 name jobs=() i line extra failed=()
    shift
    for name in "$@"; do
        extra=()
        case $name in origin-*) extra=(--relay-listen "$HOST:$(relay_port "$name")") ;; esac
        launch node --bin "$BIN_DIR/$bin" --name "$name" --log-dir "$LOG_DIR" \
            --pid-file "$PID_DIR/$name.pid" --ready -- "${common[@]}" --node-id "$name" \
            --rtmp-listen "$HOST:$(rtmp_port "$name")" --http-listen "$HOST:$(http_port "$name")" \
            "${extra[@]}" &
        jobs+=($!)
    done
    # Every launcher has returned before a failure stops the rest.
    i=0
    for name in "$@"; do
        wait "${jobs[i]}" || failed+=("$name")
        i=$((i + 1))
    done
    if [ "${#failed[@]}" -gt 0 ]; then start_failed "${failed[0]}"; fi
    for name in "$@"; do
        line=$(grep -m1 '^listening ' "$LOG_DIR/$name.out" 2>/dev/null) || true
        case $line in
            *"http=$HOST:$(http_port "$name")"*) ;;
            *) err "$name listens elsewhere than expected: $line"; start_failed "$name" ;;
        esac
    done
}

running_names() {
    local name
    for name in etcd "${ORIGINS[@]}" "${EDGES[@]}" "$CONTROL"; do
        if pid_of "$name" >/dev/null; then echo "$name"; fi
    done
}

# The control plane, through sluice-launch like the nodes: ready once its cache has loaded
# (/readyz 200).
start_control_plane() {
    launch service --bin "$BIN_DIR/sluice-control-plane" --name "$CONTROL" --log-dir "$LOG_DIR" \
        --pid-file "$PID_DIR/$CONTROL.pid" --http "$HOST:$CONTROL_HTTP" -- \
        --etcd "$ETCD_URL" --etcd-prefix "$ETCD_PREFIX" \
        --grpc-listen "$HOST:$CONTROL_GRPC" --http-listen "$HOST:$CONTROL_HTTP" \
        || start_failed "$CONTROL"
}

cmd_up() {
    need curl "apt-get install curl"
    need etcd "apt-get install etcd-server (Debian 12: etcd-server; older: etcd)"
    load_settings
    START_TIMEOUT=${START_TIMEOUT:-60}
    if [ -n "$(running_names)" ]; then
        die "a cluster is already running from $STATE_DIR ($(running_names | paste -sd ' ')): see '$SELF status', stop it with '$SELF down'"
    fi
    build
    BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
    BIN_DIR=$(cd "$BIN_DIR" 2>/dev/null && pwd) || die "BIN_DIR ${BIN_DIR} does not exist (build first, or unset SKIP_BUILD)"
    local bin
    for bin in sluice-origin sluice-edge sluice-control-plane sluice-launch; do
        [ -x "$BIN_DIR/$bin" ] || die "$BIN_DIR/$bin not found: build it with 'cargo build --release -p sluice-origin -p sluice-edge -p sluice-control-plane -p sluice-launch' (or drop SKIP_BUILD=1; BIN_DIR=target/debug uses debug builds)"
    done
    check_ports

    mkdir -p "$PID_DIR" "$LOG_DIR" "$CERT_DIR"
    {
        printf 'BASE_PORT=%q\n' "$BASE_PORT"
        printf 'ETCD_PREFIX=%q\n' "$ETCD_PREFIX"
        printf 'STREAM=%q\n' "$STREAM"
        printf 'BIN_DIR=%q\n' "$BIN_DIR"
    } >"$ENV_FILE"

    # Interrupted or failed half-way: stop what was started.
    trap 'err "interrupted: stopping what was started"; stop_all >&2; exit 130' INT TERM

    local nodes=("${ORIGINS[@]}" "${EDGES[@]}") csv
    csv=$(IFS=,; echo "${nodes[*]}")
    # Prints "Generating development certificates in DIR" when some are missing.
    "$BIN_DIR/sluice-launch" certs --origin-bin "$BIN_DIR/sluice-origin" --out "$CERT_DIR" \
        --nodes "$csv" || die "sluice-origin gen-certs failed"

    launch etcd --name sluice-local --client-port "$ETCD_CLIENT" --peer-port "$ETCD_PEER" \
        --data-dir "$ETCD_DATA" --log-level warn --log "$LOG_DIR/etcd.log" \
        --pid-file "$PID_DIR/etcd.pid" || start_failed etcd

    local common=(--etcd "$ETCD_URL" --etcd-prefix "$ETCD_PREFIX" --lease-ttl "${LEASE_TTL:-5s}"
        --tls-dir "$CERT_DIR" --web-dir "$ROOT/web" --drain-timeout "${DRAIN_TIMEOUT:-3s}")
    start_nodes sluice-origin "${ORIGINS[@]}"
    start_nodes sluice-edge "${EDGES[@]}"
    start_control_plane

    print_urls
    if [ "${FOREGROUND:-0}" = 1 ]; then
        foreground
    fi
}

print_urls() {
    local name app=${STREAM%%/*} rtmp http
    say ""
    say "Sluice local cluster is up: etcd + ${#ORIGINS[@]} origins + ${#EDGES[@]} edges + the control plane on $HOST (state: $STATE_DIR)"
    say ""
    say "Publish (ingest) to origin-1; origin-2 takes publishers too (in production both sit behind a TCP load balancer):"
    for name in "${ORIGINS[@]}"; do
        printf '  %-9s %-9s rtmp://%s:%s/%s\n' "$name" ingest "$HOST" "$(rtmp_port "$name")" "$STREAM"
    done
    say "  e.g.  ffmpeg -re -f lavfi -i testsrc2=size=1280x720:rate=30 -f lavfi -i sine \\"
    say "          -c:v libx264 -preset veryfast -g 60 -c:a aac -f flv rtmp://$HOST:$(rtmp_port origin-1)/$STREAM"
    say "  OBS: Server rtmp://$HOST:$(rtmp_port origin-1)/$app, Stream Key ${STREAM#*/}"
    say ""
    say "Play from any edge:"
    for name in "${EDGES[@]}"; do
        rtmp="$HOST:$(rtmp_port "$name")"
        http="$HOST:$(http_port "$name")"
        printf '  %-9s %-9s rtmp://%s/%s\n' "$name" rtmp "$rtmp" "$STREAM"
        printf '  %-9s %-9s http://%s/%s.flv\n' "$name" http-flv "$http" "$STREAM"
        printf '  %-9s %-9s http://%s/%s.m3u8\n' "$name" hls "$http" "$STREAM"
        printf '  %-9s %-9s http://%s/?stream=%s\n' "$name" web "$http" "$STREAM"
    done
    say ""
    say "Control plane: players follow /play to the edge it picks (302); sluicectl and gRPC clients use the gRPC port:"
    printf '  %-13s %-5s http://%s:%s   (sluicectl --endpoint http://%s:%s nodes ls)\n' "$CONTROL" grpc "$HOST" "$CONTROL_GRPC" "$HOST" "$CONTROL_GRPC"
    printf '  %-13s %-5s http://%s:%s   (/readyz, /metrics, /api/cluster)\n' "$CONTROL" http "$HOST" "$CONTROL_HTTP"
    printf '  %-13s %-5s http://%s:%s/cluster\n' "$CONTROL" page "$HOST" "$CONTROL_HTTP"
    printf '  %-13s %-5s http://%s:%s/play/%s.m3u8   (.flv: HTTP-FLV; .json: the choice)\n' "$CONTROL" play "$HOST" "$CONTROL_HTTP" "$STREAM"
    say ""
    say "Metrics, API (/api/streams), /readyz on every node's HTTP port:"
    for name in "${ORIGINS[@]}" "${EDGES[@]}"; do
        printf '  %-9s %-9s http://%s:%s/metrics\n' "$name" metrics "$HOST" "$(http_port "$name")"
    done
    printf '  %-9s %-9s %s  (keys under %s/)\n' etcd client "$ETCD_URL" "$ETCD_PREFIX"
    say ""
    say "Logs:   $LOG_DIR/NAME.log (e.g. tail -f $LOG_DIR/edge-1.log)"
    if [ "${FOREGROUND:-0}" = 1 ]; then
        say "Stop:   Ctrl-C (or $SELF down)"
    else
        say "Status: $SELF status"
        say "Stop:   $SELF down"
    fi
    if [ ! -d "$ROOT/web/node_modules" ]; then
        say "Note:   the web page's players need 'npm ci --prefix web' (web/node_modules is missing), and the"
        say "        cluster page's charts need it before sluice-control-plane is built"
    fi
}

# Stay attached: Ctrl-C or SIGTERM stops the cluster; so does any process dying.
foreground() {
    trap 'say ""; say "Stopping..."; stop_all; exit 0' INT TERM
    local name
    while :; do
        for name in etcd "${ORIGINS[@]}" "${EDGES[@]}" "$CONTROL"; do
            if ! pid_of "$name" >/dev/null; then
                err "$name exited unexpectedly"
                log_tail "$name"
                stop_all
                exit 1
            fi
        done
        # `wait` on a background sleep returns at once when a trapped signal arrives.
        sleep 1 &
        wait $! || true
    done
}

# stop_tier NAME...: SIGTERM them, wait until they exit or the shared deadline passes.
stop_tier() {
    local name pid left
    for name in "$@"; do
        if pid=$(pid_of "$name"); then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    done
    while :; do
        left=0
        for name in "$@"; do
            if pid_of "$name" >/dev/null; then left=1; fi
        done
        if [ "$left" = 0 ] || [ "$SECONDS" -ge "$STOP_DEADLINE" ]; then return 0; fi
        sleep 0.1
    done
}

# The control plane first (it sends no more viewers to edges about to go), then edges, then
# origins (their leases are revoked while etcd still runs), then etcd; SIGKILL whatever is left
# after STOP_TIMEOUT; remove the pid files. Nothing running: nothing to do.
stop_all() {
    local name pid stopped=()
    for name in "$CONTROL" "${EDGES[@]}" "${ORIGINS[@]}" etcd; do
        if pid_of "$name" >/dev/null; then stopped+=("$name"); fi
    done
    STOP_DEADLINE=$((SECONDS + ${STOP_TIMEOUT:-15}))
    stop_tier "$CONTROL"
    stop_tier "${EDGES[@]}"
    stop_tier "${ORIGINS[@]}"
    stop_tier etcd
    for name in "$CONTROL" "${EDGES[@]}" "${ORIGINS[@]}" etcd; do
        if pid=$(pid_of "$name"); then
            err "$name (pid $pid) still running after ${STOP_TIMEOUT:-15}s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    rm -f "$PID_DIR"/*.pid 2>/dev/null || true
    rm -rf "$ETCD_DATA"
    if [ "${#stopped[@]}" -gt 0 ]; then
        say "Stopped: ${stopped[*]} (logs kept in $LOG_DIR)"
    else
        say "Nothing running in $STATE_DIR"
    fi
}

cmd_down() {
    load_settings saved
    stop_all
}

# Exit status: 0 all running and ready, 3 nothing running, 1 otherwise.
cmd_status() {
    load_settings saved
    local name pid state code ok=0 up=0 total=0
    printf '%-13s %-8s %-8s %-7s %s\n' NODE PID STATE READY ADDRESS
    for name in etcd "${ORIGINS[@]}" "${EDGES[@]}" "$CONTROL"; do
        total=$((total + 1))
        code=-
        if pid=$(pid_of "$name"); then
            state=running
            up=$((up + 1))
            if [ "$name" = etcd ]; then
                curl -fsS -m 2 "$ETCD_URL/health" 2>/dev/null | grep -q '"health":"true"' && code=healthy || code=no
            elif [ "$name" = "$CONTROL" ]; then
                code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$HOST:$CONTROL_HTTP/readyz" 2>/dev/null) || true
            else
                code=$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$HOST:$(http_port "$name")/readyz" 2>/dev/null) || true
            fi
            case $code in 200 | healthy) ok=$((ok + 1)) ;; esac
        else
            pid=-
            state=stopped
        fi
        if [ "$name" = etcd ]; then
            printf '%-13s %-8s %-8s %-7s %s\n' "$name" "$pid" "$state" "$code" "$ETCD_URL"
        elif [ "$name" = "$CONTROL" ]; then
            printf '%-13s %-8s %-8s %-7s gRPC http://%s:%s, HTTP http://%s:%s\n' "$name" "$pid" "$state" "$code" \
                "$HOST" "$CONTROL_GRPC" "$HOST" "$CONTROL_HTTP"
        else
            printf '%-13s %-8s %-8s %-7s rtmp://%s:%s http://%s:%s\n' "$name" "$pid" "$state" "$code" \
                "$HOST" "$(rtmp_port "$name")" "$HOST" "$(http_port "$name")"
        fi
    done
    if pid_of etcd >/dev/null && command -v etcdctl >/dev/null; then
        say ""
        say "Registered in etcd ($ETCD_PREFIX/nodes/, $ETCD_PREFIX/streams/):"
        ETCDCTL_API=3 etcdctl --endpoints "$ETCD_URL" --command-timeout=3s \
            get --prefix --keys-only "$ETCD_PREFIX/" 2>/dev/null | sed -n 's/^\(.\)/  \1/p' || true
    fi
    if [ "$up" = 0 ]; then
        say ""
        say "Not running (state: $STATE_DIR)"
        return 3
    fi
    [ "$ok" = "$total" ] || return 1
}

# The chaos harness (tests/src/chaos): it starts a cluster of its own, each node in a network
# namespace, so it needs root, `ip` and `nft`, and never touches a cluster `up` started.
cmd_chaos() {
    [ "$(id -u)" = 0 ] || die "chaos puts every node in a network namespace of its own: run it as root"
    need ip "apt-get install iproute2"
    need nft "apt-get install nftables"
    need etcd "apt-get install etcd-server"
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
        need cargo "install Rust from https://rustup.rs (or set SKIP_BUILD=1 BIN_DIR=... to use built binaries)"
        say "Building the nodes and sluice-chaos (release; SKIP_BUILD=1 skips this)..."
        (cd "$ROOT" && cargo build --release --workspace --bins) >&2
    fi
    BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/release}
    BIN_DIR=$(cd "$BIN_DIR" 2>/dev/null && pwd) || die "BIN_DIR ${BIN_DIR} does not exist (build first, or unset SKIP_BUILD)"
    [ -x "$BIN_DIR/sluice-chaos" ] || die "$BIN_DIR/sluice-chaos not found: build it with 'cargo build --release --workspace --bins'"
    # The harness finds the nodes next to itself: <target>/<profile>/.
    CARGO_TARGET_DIR=$(dirname "$BIN_DIR") SLUICE_TEST_PROFILE=$(basename "$BIN_DIR") \
        exec "$BIN_DIR/sluice-chaos" "$@"
}

usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "${BASH_SOURCE[0]}"
}

main() {
    local cmd=up arg
    if [ "${1:-}" = chaos ]; then
        shift
        cmd_chaos "$@"
    fi
    for arg in "$@"; do
        case $arg in
            up | down | status) cmd=$arg ;;
            --foreground | -f) FOREGROUND=1 ;;
            -h | --help | help) usage; exit 0 ;;
            *) err "unknown argument '$arg'"; usage >&2; exit 2 ;;
        esac
    done
    case $cmd in
        up) cmd_up ;;
        down) cmd_down ;;
        status) cmd_status ;;
    esac
}

main "$@"
