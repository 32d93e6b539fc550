#!/usr/bin/env bash
# Build everything and run every test (README command 2): unit, property, end-to-end (real
# ffmpeg/ffprobe against the real binaries) and doc tests. Exits non-zero on any failure.
#
# Installs missing test dependencies first: Debian packages (ffmpeg, etcd, protoc, nginx with
# the RTMP module, chromium, nodejs/npm, postgresql, and the interop tests' GStreamer, mpv, VLC, rtmpdump, OBS, Xvfb),
# the npm packages of web/ (`npm ci`: player libraries
# and playwright-core for the browser test), the imageio-ffmpeg PyPI package (a recent ffmpeg for
# HEVC over Enhanced RTMP), moto[server] (an S3-compatible server) and cargo-nextest (helm/test.sh fetches the Helm chart's tools:
# helm, kubernetes-validate, @kubernetes-models/keda); stops with an error naming any that is still
# missing afterwards (a test would fail without it).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh

need_apt=()
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
command -v ffprobe >/dev/null || need_apt+=(ffmpeg)
command -v protoc >/dev/null || need_apt+=(protobuf-compiler)
command -v etcd >/dev/null || need_apt+=(etcd-server)
command -v etcdctl >/dev/null || need_apt+=(etcd-client)
command -v nginx >/dev/null || need_apt+=(nginx)
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need_apt+=(libnginx-mod-rtmp)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v node >/dev/null || need_apt+=(nodejs)
command -v npm >/dev/null || need_apt+=(npm)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -m pip --version >/dev/null 2>&1 || need_apt+=(python3-pip)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# helm/test.sh: a venv for kubernetes-validate (Debian's python3 needs python3-venv for it).
[ "$(command -v python3)" != /usr/bin/python3 ] || dpkg -s python3-venv >/dev/null 2>&1 \
    || need_apt+=(python3-venv)
command -v unzip >/dev/null || need_apt+=(unzip)        # helm/test.sh (helm from an npm zip)
command -v openssl >/dev/null || need_apt+=(openssl)    # e2e helm_chart (the pods' cert script)
command -v curl >/dev/null || need_apt+=(curl)          # deploy/local/cluster.sh
command -v ss >/dev/null || need_apt+=(iproute2)        # deploy/local/cluster.sh port checks
command -v ip >/dev/null || need_apt+=(iproute2)        # e2e link_cuts (network namespaces)
command -v nft >/dev/null || need_apt+=(nftables)       # e2e link_cuts (cutting a link)
# The catalog's tests start a PostgreSQL server of their own (sluice_launch::Postgres).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
command -v pg_isready >/dev/null || need_apt+=(postgresql-client)
command -v setpriv >/dev/null || need_apt+=(util-linux)
# The interop tests' clients (tests/tests/interop).
command -v gst-launch-1.0 >/dev/null || need_apt+=(gstreamer1.0-tools)
for pkg in gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly \
    gstreamer1.0-libav vlc-plugin-base; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
command -v mpv >/dev/null || need_apt+=(mpv)
command -v cvlc >/dev/null || need_apt+=(vlc-bin)
command -v rtmpdump >/dev/null || need_apt+=(rtmpdump)
command -v obs >/dev/null || need_apt+=(obs-studio)
command -v Xvfb >/dev/null || need_apt+=(xvfb)
apt_get_install "${need_apt[@]}"

if ! python3 -c 'import imageio_ffmpeg' 2>/dev/null; then
    log "installing imageio-ffmpeg (pip)"
    python3 -m pip install --quiet imageio-ffmpeg \
        || python3 -m pip install --quiet --break-system-packages imageio-ffmpeg \
        || die "imageio-ffmpeg (PyPI) could not be installed: the H.265/Opus tests need its ffmpeg; install it with 'python3 -m pip install imageio-ffmpeg'"
fi

# The S3-compatible server the recordings' object-store test writes to.
if ! command -v moto_server >/dev/null; then
    log "installing moto[server] (pip): an S3-compatible server for the object-store test"
    python3 -m pip install --quiet 'moto[server]>=5,<6' \
        || python3 -m pip install --quiet --break-system-packages 'moto[server]>=5,<6' \
        || die "moto[server] (PyPI) could not be installed: the S3 store test needs moto_server; install it with \"python3 -m pip install 'moto[server]'\""
fi

# The web page's player libraries and the browser test's driver (playwright-core), pinned by
# web/package-lock.json.
# Installed again when web/package-lock.json changed since the last install.
if [ ! -e web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    log "installing web/node_modules (npm ci --prefix web)"
    npm ci --prefix web --no-audit --no-fund
fi

need_cargo_tool nextest cargo-nextest

# Every program a test needs must be there now: a test fails without it (see
# tests/src/deps.rs), so stop here with the name instead of after the whole build.
for tool in ffmpeg ffprobe protoc etcd etcdctl nginx chromium node npm python3 cc curl ss ip nft unzip openssl \
    pg_isready psql setpriv moto_server \
    gst-launch-1.0 mpv cvlc rtmpdump obs Xvfb; do
    command -v "$tool" >/dev/null || die "$tool is still missing after installing the test dependencies"
done
[ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] \
    || die "nginx's RTMP module (libnginx-mod-rtmp) is still missing after installing it"
hevc_ffmpeg=$(python3 -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())' 2>/dev/null || true)
if [ -z "$hevc_ffmpeg" ] || [ ! -x "$hevc_ffmpeg" ]; then
    die "the ffmpeg of imageio-ffmpeg (the H.265/Opus tests' ffmpeg) is not usable: '$hevc_ffmpeg'"
fi
[ -e web/node_modules/playwright-core/package.json ] \
    || die "web/node_modules lacks playwright-core after 'npm ci --prefix web'"

# The developers' opt-out of missing dependencies (tests/src/deps.rs): in CI it would hide
# what the suite exists to show, so refuse it there; elsewhere say it loudly.
if [ -n "${SLUICE_TEST_ALLOW_MISSING:-}" ]; then
    if [ -n "${CI:-}" ]; then
        die "SLUICE_TEST_ALLOW_MISSING is set in CI ($SLUICE_TEST_ALLOW_MISSING): unset it"
    fi
    log "WARNING: SLUICE_TEST_ALLOW_MISSING=$SLUICE_TEST_ALLOW_MISSING: tests missing those programs are skipped"
fi

# The e2e tests open thousands of sockets (connection flood).
raise_fd_limit

# A clean clone builds once: incremental caches would only double the target folder (CI ran
# out of disk once). Say how much room there is, so a full disk is plain from the log.
if [ -n "${CI:-}" ]; then
    export CARGO_INCREMENTAL=0
fi
log "free disk for target/: $(df -h --output=avail "$PWD" | tail -1 | tr -d ' ')"

# The house style and lints (rustfmt.toml, [workspace.lints] in Cargo.toml, clippy.toml): a
# formatting diff stops the run at once; a clippy warning fails it after the tests have run.
for component in rustfmt clippy; do
    if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
        log "installing the $component component (rustup)"
        rustup component add "$component"
    fi
done
if ! cargo fmt --all --check >/dev/null; then
    cargo fmt --all --check | head -40
    echo "test.sh: formatting differs from rustfmt.toml: run 'cargo fmt --all'" >&2
    exit 1
fi
lint_status=0
cargo clippy --workspace --all-targets -- -D warnings || lint_status=$?
if [ "$lint_status" -ne 0 ]; then
    echo "test.sh: clippy FAILED (exit $lint_status); running the tests anyway"
fi

cargo build --workspace --bins

# The Helm chart with helm, kubernetes-validate and the KEDA models (fetched on demand); it
# also renders the manifests that the e2e module helm_chart checks against the binaries.
helm_status=0
helm/test.sh || helm_status=$?
if [ "$helm_status" -ne 0 ]; then
    echo "test.sh: helm/test.sh FAILED (exit $helm_status); running the other tests anyway"
fi

# Doc tests first, so the output ends with nextest's summary.
doc_status=0
cargo test --doc --workspace || doc_status=$?
if [ "$doc_status" -ne 0 ]; then
    echo "test.sh: doc tests FAILED (exit $doc_status); running the other tests anyway"
fi

status=0
cargo nextest run --workspace --no-fail-fast || status=$?
if [ "$status" -eq 0 ] && [ "$doc_status" -ne 0 ]; then
    status=$doc_status
fi
if [ "$status" -eq 0 ] && [ "$helm_status" -ne 0 ]; then
    echo "test.sh: the tests passed but helm/test.sh did not (see above)"
    status=$helm_status
fi
if [ "$status" -eq 0 ] && [ "$lint_status" -ne 0 ]; then
    echo "test.sh: the tests passed but clippy did not (see above)"
    status=$lint_status
fi
exit "$status"
