#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a while.
#
#   ./scripts/fuzz.sh            # each target for 30 s
#   ./scripts/fuzz.sh 300        # each target for 300 s
#   ./scripts/fuzz.sh 60 chunk   # only targets whose name contains "chunk"
#
# Uses `-s none` (no sanitizer), which cargo-fuzz supports on the stable toolchain; Rust's own
# checks (bounds, overflow with debug assertions) still turn bugs into crashes. Crashes are kept
# in fuzz/artifacts/TARGET/. Seeds for a target (real inputs to start from) live in
# fuzz/seeds/TARGET/ (fuzz/seeds/make_seeds.sh regenerates them); reproducers of crashes found
# and reported live in fuzz/artifacts-found/.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

seconds=${1:-30}
filter=${2:-}

if [ ! -d fuzz ]; then
    echo "fuzz.sh: no fuzz/ directory in this checkout" >&2
    exit 1
fi
need_cargo_tool fuzz cargo-fuzz

mapfile -t targets < <(cd fuzz && cargo fuzz list)
failed=()
ran=0
for target in "${targets[@]}"; do
    if [ -n "$filter" ] && [[ "$target" != *"$filter"* ]]; then
        continue
    fi
    echo "== fuzz target $target for ${seconds}s"
    ran=$((ran + 1))
    # The target's corpus (kept, not committed) plus its committed seeds, if any.
    corpus=("$PWD/fuzz/corpus/$target")
    mkdir -p "${corpus[0]}"
    if [ -d "fuzz/seeds/$target" ]; then
        corpus+=("$PWD/fuzz/seeds/$target")
    fi
    if ! (cd fuzz && cargo fuzz run -s none "$target" "${corpus[@]}" -- -max_total_time="$seconds"); then
        failed+=("$target")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz.sh: crashes found in: ${failed[*]} (see fuzz/artifacts/)"
    exit 1
fi
if [ "$ran" -eq 0 ]; then
    echo "fuzz.sh: no target matches '$filter' (targets: ${targets[*]})" >&2
    exit 1
fi
echo "fuzz.sh: $ran target(s) ran ${seconds}s each without a crash"
