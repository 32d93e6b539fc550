# shellcheck shell=bash
# Helpers shared by the shell scripts (scripts/*.sh, deploy/local/cluster.sh). Source it:
#
#   . "$(dirname "$0")/lib.sh"                  # from scripts/
#   LOG_PREFIX="[bench-edge]"                   # what log() puts before each message
#
# It defines functions only (and LOG_PREFIX, if unset), so sourcing it changes nothing else.
# Processes themselves (etcd, certificates, nodes) are started by the `sluice-launch` binary
# (tests/launch), the same code the Rust tests use.

LOG_PREFIX=${LOG_PREFIX:-"$(basename "$0"):"}

# log MESSAGE...: one line on stderr, after LOG_PREFIX.
log() { printf '%s %s\n' "$LOG_PREFIX" "$*" >&2; }

# die MESSAGE...: log "ERROR: MESSAGE" and exit 1.
die() {
    log "ERROR: $*"
    exit 1
}

# as_root COMMAND...: run as root (directly, or with sudo).
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_get_install PACKAGE...: apt-get update, then install them quietly (output on stderr).
apt_get_install() {
    [ "$#" -gt 0 ] || return 0
    log "installing $*"
    as_root apt-get update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# apt_install PACKAGE...: install those of them that dpkg does not know as installed.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then apt_get_install "${missing[@]}"; fi
}

# raise_fd_limit: the soft limit of open files up to the hard limit (thousands of sockets).
raise_fd_limit() { ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; }

# need_cargo_tool SUBCOMMAND CRATE: `cargo install --locked CRATE` unless `cargo SUBCOMMAND`
# works already.
need_cargo_tool() {
    if ! cargo "$1" --help >/dev/null 2>&1; then
        log "installing $2"
        cargo install --locked "$2"
    fi
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# port_taken tcp|udp PORT: something listens on it (ss; without ss, a TCP connect for tcp).
port_taken() {
    local flags=-Hltn
    [ "$1" = udp ] && flags=-Hlun
    if command -v ss >/dev/null; then
        [ -n "$(ss "$flags" "sport = :$2" 2>/dev/null)" ]
    elif [ "$1" = tcp ]; then
        port_open "$2"
    else
        return 1
    fi
}

# require_free_port PORT VARIABLE: exit when something already listens on TCP PORT (the load
# would hit the wrong server); VARIABLE names the setting that moves it.
require_free_port() {
    if port_open "$1"; then
        log "port $1 is already in use by another process; set $2 to a free port"
        exit 1
    fi
}

# require_free_udp_port PORT VARIABLE: the same for a UDP port.
require_free_udp_port() {
    if port_taken udp "$1"; then
        log "UDP port $1 is already in use by another process; set $2 to a free port"
        exit 1
    fi
}

# wait_port PORT PID: wait (10 s at most) until something listens on TCP PORT; exit if process
# PID exits first.
wait_port() {
    local port=$1 pid=$2 tries=100
    while ! port_open "$port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            log "server (pid $pid) exited before listening on $port"
            exit 1
        fi
        tries=$((tries - 1))
        if ((tries == 0)); then
            log "nothing listens on port $port"
            exit 1
        fi
        sleep 0.1
    done
}

# alive PID COMM: PID runs (is no zombie) and its command name is COMM, so a recycled pid is
# never taken for ours.
alive() {
    local stat
    [ -r "/proc/$1/comm" ] || return 1
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] || return 1
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# stop_pid PID [SIGNAL]: send SIGNAL (TERM), wait up to 15 s for the process to exit (nodes
# drain), then SIGKILL. Works for children and for processes started by sluice-launch alike.
stop_pid() {
    local pid=$1 sig=${2:-TERM}
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        kill -"$sig" "$pid" 2>/dev/null || true
        local tries=150
        while kill -0 "$pid" 2>/dev/null && ((tries > 0)); do
            sleep 0.1
            tries=$((tries - 1))
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null || true
    fi
}

# to_secs DURATION: 20s, 500ms, 1m as whole seconds, rounded up.
to_secs() {
    local d=$1
    case "$d" in
        *ms) echo $(((${d%ms} + 999) / 1000)) ;;
        *s) echo "${d%s}" | awk '{ printf "%d", ($1 == int($1)) ? $1 : int($1) + 1 }' ;;
        *m) echo $((${d%m} * 60)) ;;
        *) echo "$d" ;;
    esac
}

# launcher DIR: the sluice-launch binary in DIR (a target/{debug,release} directory); exits
# with build instructions when it is missing.
launcher() {
    if [ ! -x "$1/sluice-launch" ]; then
        log "$1/sluice-launch not found: build it with 'cargo build -p sluice-launch' (--release for target/release)"
        exit 1
    fi
    echo "$1/sluice-launch"
}
