#!/usr/bin/env bash
# Build and run the Sluice origin server (README command 1).
#
#   ./scripts/run.sh                      # RTMP on 127.0.0.1:1935, HTTP on 127.0.0.1:8080
#   ./scripts/run.sh --rtmp-listen 0.0.0.0:1935 --http-listen 0.0.0.0:8080
#
# Needs only a Rust toolchain; installs the few system packages the build needs when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

command -v cargo >/dev/null || { log "cargo not found; install Rust from rustup.rs"; exit 1; }
command -v protoc >/dev/null || apt_install protobuf-compiler
command -v cc >/dev/null || apt_install build-essential
command -v pkg-config >/dev/null || apt_install pkg-config

cargo build --release --bin sluice-origin >&2

# The web page's player libraries (hls.js, mpegts.js) come from npm, pinned by web/package-lock.json.
# Installed again when web/package-lock.json changed since the last install.
if [ ! -e web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    if command -v npm >/dev/null; then
        log "installing the web player libraries (npm ci --prefix web)"
        npm ci --prefix web --no-audit --no-fund >&2 \
            || log "WARNING: npm ci failed; the web page at / will have no players"
    else
        log "WARNING: npm not found (apt-get install npm); the web page at / will have no players"
    fi
fi

target_dir=${CARGO_TARGET_DIR:-target}
# Defaults: RTMP 127.0.0.1:1935, HTTP 127.0.0.1:8080 (see --help; SLUICE_* env vars work too).
exec "$target_dir/release/sluice-origin" "$@"
