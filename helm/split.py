"""Splits a `helm template` output into one file per object, by who validates it.

    split.py RENDERED.yaml OUT_DIR ALL.json

OUT_DIR/core/NN-KIND-NAME.yaml: Kubernetes' own kinds (kubernetes-validate);
OUT_DIR/keda/NN-KIND-NAME.json: keda.sh objects (@kubernetes-models/keda).
Any other API group is an error, so no rendered object goes unchecked. ALL.json: every
object, as one JSON array (what tests/tests/e2e/helm_chart.rs reads).
"""

import json
import os
import sys

import yaml

KUBERNETES_GROUPS = {
    "v1",
    "apps/v1",
    "batch/v1",
    "policy/v1",
    "autoscaling/v2",
    "networking.k8s.io/v1",
    "rbac.authorization.k8s.io/v1",
}


def main() -> int:
    rendered, out, everything = sys.argv[1], sys.argv[2], sys.argv[3]
    for sub in ("core", "keda"):
        os.makedirs(os.path.join(out, sub), exist_ok=True)
    with open(rendered, encoding="utf-8") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for i, doc in enumerate(docs):
        api, kind = doc.get("apiVersion", ""), doc.get("kind", "")
        stem = f"{i:02}-{kind}-{doc['metadata']['name']}".lower()
        if api in KUBERNETES_GROUPS:
            with open(os.path.join(out, "core", stem + ".yaml"), "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f)
        elif api.startswith("keda.sh/"):
            with open(os.path.join(out, "keda", stem + ".json"), "w", encoding="utf-8") as f:
                json.dump(doc, f)
        else:
            print(f"{rendered}: {kind} of {api} has no validator", file=sys.stderr)
            return 1
    if not docs:
        print(f"{rendered}: no objects", file=sys.stderr)
        return 1
    with open(everything, "w", encoding="utf-8") as f:
        json.dump(docs, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
