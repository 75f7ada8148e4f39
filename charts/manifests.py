#!/usr/bin/env python3
"""What deploy/ holds for people who do not use Helm, made from the chart (`make manifests`):

    deploy/install.yaml           the chart rendered with its defaults, CRDs included, after a Namespace
    deploy/prometheus/rules.yaml  a copy of charts/inferbudget/files/rules.yaml (for rule_files)
    deploy/grafana/dashboard.json a copy of charts/inferbudget/files/dashboard.json (for import)

    charts/manifests.py           write them
    charts/manifests.py --check   exit 1 naming each one that is out of date (tests/e2e/test_chart.py)

helm comes from $HELM, else the binary hack/cluster builds, else PATH. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHART = ROOT / "charts/inferbudget"
NAMESPACE = "inferbudget"
RELEASE = "inferbudget"

HEADER = f"""\
# inferbudget, installed without Helm:  kubectl apply --server-side -f deploy/install.yaml
# Generated from charts/inferbudget with its default values by `make manifests`; do not edit by hand.
# It runs the operator in namespace {NAMESPACE}, for budgets in every namespace, and reads metrics from the
# chart's default prometheus.url: to change either, use the chart (helm install --set ...) or edit a copy.
---
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels:
    app.kubernetes.io/name: inferbudget
"""


def helm_binary() -> str:
    cache = Path(os.environ.get("INFERBUDGET_CACHE_DIR") or Path.home() / ".cache/inferbudget")
    built = sorted(cache.glob("bin/helm-*/helm"))
    helm = os.environ.get("HELM") or (str(built[-1]) if built else shutil.which("helm"))
    if helm is None:
        raise SystemExit("helm not found: set $HELM, or run `hack/cluster/cluster.py build` to build it")
    return helm


def install_yaml(helm: str) -> str:
    rendered = subprocess.run(
        [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "--include-crds"],
        capture_output=True, text=True, check=True).stdout
    return HEADER + rendered


def expected(helm: str) -> dict[Path, bytes]:
    """Each generated file and what it must contain."""
    files = CHART / "files"
    return {
        ROOT / "deploy/install.yaml": install_yaml(helm).encode(),
        ROOT / "deploy/prometheus/rules.yaml": (files / "rules.yaml").read_bytes(),
        ROOT / "deploy/grafana/dashboard.json": (files / "dashboard.json").read_bytes(),
    }


def stale(helm: str) -> list[Path]:
    return [path for path, content in expected(helm).items()
            if not path.exists() or path.read_bytes() != content]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    helm = helm_binary()
    if args.check:
        out_of_date = stale(helm)
        for path in out_of_date:
            print(f"{path.relative_to(ROOT)} is out of date: run `make manifests`", file=sys.stderr)
        return 1 if out_of_date else 0
    for path, content in expected(helm).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
