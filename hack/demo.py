#!/usr/bin/env python3
"""`make demo`: inferbudget end to end on this machine, with its decisions shown live.

  1. the local Kubernetes control plane (hack/cluster; the first run builds it from source),
  2. the Helm chart (CRD, ServiceAccount, RBAC; the operator runs here as a process with that
     ServiceAccount's token, since kwok pods run no containers),
  3. a real Prometheus with the chart's alert rules, scraping the twin and the operator,
  4. the twin: a simulated vLLM fleet replaying a public trace (Azure LLM inference, code) at a speed-up,
  5. the operator, and the vLLM example Deployment with a budget tuned to act within minutes,
  6. a live view, refreshed until Ctrl-C, which tears everything down.

DEMO_SECONDS=N runs unattended for N seconds, prints a summary of the decisions and exits 0;
DEMO_SUMMARY=FILE also writes that summary as JSON (the e2e test reads it). Standard library + the
project's virtualenv; run from the repository root (the Makefile does).
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import prometheus  # noqa: E402 (after the path set-up above)
from tests.support.processes import Process, inferbudget  # noqa: E402
from tests.support.scripts import load_script  # noqa: E402

TRACE = ROOT.parent / "shared" / "traces" / "AzureLLMInferenceTrace_code.csv"
TIME_SCALE = 0.2  # the 1-hour trace in 12 minutes: 5x its request rate
CYCLE_SECONDS = 5
NAMESPACE = "demo"
SYSTEM_NAMESPACE = "inferbudget-system"


def step(number: int, text: str) -> None:
    print(f"\n[{number}/6] {text}", flush=True)


def demo_budget() -> dict[str, Any]:
    """The vLLM example's budget with windows short enough to see every kind of decision in minutes."""
    return {
        "apiVersion": "inferbudget.io/v1alpha1", "kind": "InferenceBudget",
        "metadata": {"name": "llama-3-1-8b-chat", "namespace": NAMESPACE},
        "spec": {
            "targetRef": {"kind": "Deployment", "name": "llama-3-1-8b", "container": "server"},
            "server": "vllm",
            "latency": {"percentile": 95, "thresholdMs": 1000, "signal": "e2e", "windowSeconds": 15},
            "memory": {"maxPerReplica": "48Gi", "signal": "gpu"},
            "cost": {"maxPerHour": "70.00", "currency": "USD"},
            "replicas": {"min": 1, "max": 20},  # room above the bursts' need, so it can also come down
            "variants": [  # prices: the shipped profile's H100 on-demand figure (see its sources)
                {"name": "bf16", "quality": 1.0, "costPerReplicaHour": "3.24", "memory": "42Gi",
                 "capacityHint": {"requestsPerSecond": 8}},
                {"name": "fp8", "quality": 0.99, "costPerReplicaHour": "3.24", "memory": "35Gi",
                 "capacityHint": {"requestsPerSecond": 12}},
                {"name": "int4-w4a16", "quality": 0.97, "costPerReplicaHour": "3.24", "memory": "32Gi",
                 "capacityHint": {"requestsPerSecond": 7}},
            ],
            "policy": {"objective": "MinimizeCost", "minQuality": 0.97,
                       "scaleDown": {"stabilizationSeconds": 30},
                       "swap": {"cooldownSeconds": 60, "sustainSeconds": 20}},
        },
    }


class Demo:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.local = load_script("inferbudget_local_cluster", ROOT / "hack/cluster/cluster.py")
        self.cluster = self.local.Cluster(os.environ.get("INFERBUDGET_DEMO_CLUSTER", "demo"))
        self.processes: list[Process] = []
        self.prometheus: prometheus.Prometheus | None = None
        self.env = {"KUBECONFIG": str(self.cluster.kubeconfig)}

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self._run(self.local.tool("kubectl"), args, input)

    def helm(self, *args: str) -> str:
        return self._run(self.local.tool("helm"), args, None)

    def _run(self, binary: Path, args: tuple[str, ...], input: str | None) -> str:
        result = subprocess.run([str(binary), "--kubeconfig", str(self.cluster.kubeconfig), *args],
                                capture_output=True, text=True, input=input, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{binary.name} {' '.join(args)}: {result.stderr.strip() or result.stdout}")
        return result.stdout

    def start(self) -> None:
        step(1, "local Kubernetes control plane (the first run builds it from source: 8-20 minutes)")
        self.cluster.up()
        step(2, "Helm chart: CRD, ServiceAccount and least-privilege RBAC")
        self.helm("upgrade", "--install", "inferbudget", str(ROOT / "charts/inferbudget"), "--namespace",
                  SYSTEM_NAMESPACE, "--create-namespace", "--set", "replicaCount=0", "--wait")
        step(3, "Prometheus, with the chart's alert rules")
        self.prometheus = prometheus.start(self.work / "prometheus", scrape_interval="2s",
                                           rule_files=[ROOT / "charts/inferbudget/files/rules.yaml"])
        twin_port, metrics_port = prometheus.free_port(), prometheus.free_port()
        self.prometheus.scrape(f"127.0.0.1:{twin_port}", f"127.0.0.1:{metrics_port}")
        step(4, f"the twin: a simulated vLLM fleet replaying {TRACE.name} at {1 / TIME_SCALE:g}x")
        self._spawn("twin", inferbudget("twin", "--trace", str(TRACE), "--time-scale", str(TIME_SCALE),
                                        "--port", str(twin_port), "--namespace", NAMESPACE), self.env)
        step(5, "the operator (with the chart's ServiceAccount token) and the vLLM example with its budget")
        self._spawn("operator", inferbudget(
            "run", "--interval", str(CYCLE_SECONDS), "--prometheus-url",
            self.prometheus.url, "--metrics-port", str(metrics_port), "--health-port", str(prometheus.free_port())),
            {"KUBECONFIG": str(self._service_account_kubeconfig())})
        # a fresh start: the cluster keeps its data between runs
        self.kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait", "--timeout=120s")
        self.kubectl("create", "namespace", NAMESPACE)
        example = yaml.safe_load_all((ROOT / "deploy/examples/vllm-llama-3.1-8b.yaml").read_text())
        workloads = [doc for doc in example if doc["kind"] != "InferenceBudget"]  # the demo's budget instead
        self.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump_all(workloads))
        self.kubectl("apply", "-f", "-", input=json.dumps(demo_budget()))

    def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        self.processes.append(Process(argv, self.work / f"{name}.log", env).start())

    def _service_account_kubeconfig(self) -> Path:
        """A kubeconfig holding a token of the chart's ServiceAccount: the operator runs with its RBAC."""
        account = self.kubectl("get", "serviceaccount", "-n", SYSTEM_NAMESPACE, "-l",
                               "app.kubernetes.io/name=inferbudget", "-o", "jsonpath={.items[0].metadata.name}")
        token = self.kubectl("create", "token", account, "-n", SYSTEM_NAMESPACE, "--duration", "24h").strip()
        admin = json.loads(self.kubectl("config", "view", "--raw", "-o", "json"))
        cluster = admin["clusters"][0]["cluster"]
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "operator",
                  "clusters": [{"name": "demo", "cluster": cluster}],
                  "users": [{"name": "operator", "user": {"token": token}}],
                  "contexts": [{"name": "operator", "context": {"cluster": "demo", "user": "operator"}}]}
        path = self.work / "operator-kubeconfig"
        path.write_text(json.dumps(config))
        return path

    def budgets(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", "inferencebudgets", "-A", "-o", "json"))["items"]
        return items

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.cluster.down()


def render(budgets: list[dict[str, Any]], elapsed: float) -> str:
    """The live view: one block per budget, then its recent decisions."""
    lines = [f"inferbudget demo - {elapsed:5.0f}s - Ctrl-C stops and tears everything down", ""]
    lines.append(f"{'BUDGET':<28}{'LOAD':>9}  {'LATENCY/BUDGET':<17}{'MEMORY':<13}{'REPLICAS':<10}"
                 f"{'VARIANT':<12}{'COST/H':<18}")
    for budget in budgets:
        status = budget.get("status") or {}
        observed = status.get("observed") or {}
        rate = observed.get("requestsPerSecond")
        replicas = f"{observed.get('readyReplicas', '?')}/{observed.get('replicas', '?')}"
        lines.append(f"{budget['metadata']['namespace'] + '/' + budget['metadata']['name']:<28}"
                     f"{(f'{rate:.1f}/s' if rate is not None else '?'):>9}  {observed.get('latency', '?'):<17}"
                     f"{observed.get('memory', '?'):<13}{replicas:<10}{observed.get('variant') or '?':<12}"
                     f"{observed.get('cost', '?'):<18}")
        last = status.get("lastDecision") or {}
        lines.append(f"  last decision: {last.get('action', '-')} ({last.get('reason', '-')}): "
                     f"{last.get('message', '')}")
        for entry in (status.get("history") or [])[-6:]:
            lines.append(f"    {entry['time'][11:19]} {entry['action']:<9} {entry['reason']:<18} "
                         f"{entry['message'][:90]}")
    return "\n".join(lines)


class Tally:
    """Every change decided while the demo ran (the status keeps only the recent history)."""

    def __init__(self) -> None:
        self.decisions: dict[tuple[str, str, str], dict[str, Any]] = {}

    def add(self, budgets: list[dict[str, Any]]) -> None:
        for budget in budgets:
            for entry in (budget.get("status") or {}).get("history", []):
                if entry["action"] in ("ScaleUp", "ScaleDown", "Swap"):
                    self.decisions[(budget["metadata"]["name"], entry["time"], entry["action"])] = entry

    def summary(self) -> dict[str, Any]:
        decisions = sorted(self.decisions.values(), key=lambda entry: entry["time"])
        return {"decisions": decisions, "counts": dict(Counter(entry["action"] for entry in decisions))}


def main() -> int:
    seconds = float(os.environ.get("DEMO_SECONDS", "0"))
    interactive = seconds == 0 and sys.stdout.isatty()
    work = Path(tempfile.mkdtemp(prefix="inferbudget-demo-"))
    demo = Demo(work)
    tally = Tally()
    stopping = False

    def interrupt(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, interrupt)
    try:
        demo.start()
        assert demo.prometheus is not None
        print(f"\nPrometheus: {demo.prometheus.url} (alerts: {demo.prometheus.url}/alerts)\n"
              f"Grafana: add a Prometheus data source with that URL, then import "
              f"charts/inferbudget/files/dashboard.json\nlogs: {work}\n", flush=True)
        started = time.monotonic()
        shown = 0.0
        while not stopping and (seconds == 0 or time.monotonic() - started < seconds):
            elapsed = time.monotonic() - started
            budgets = demo.budgets()
            tally.add(budgets)
            if interactive:
                print("\033[2J\033[H" + render(budgets, elapsed), flush=True)
                time.sleep(2)  # the refresh period of the view, not a synchronisation
            else:
                if elapsed - shown >= 30 or shown == 0:
                    print(render(budgets, elapsed) + "\n", flush=True)
                    shown = elapsed or 0.001
                time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        if demo.cluster.is_running():
            tally.add(demo.budgets())
        result = tally.summary()
        print("\nDecisions taken:", json.dumps(result["counts"]))
        for entry in result["decisions"]:
            print(f"  {entry['time']} {entry['action']:<9} {entry['reason']:<18} {entry['message']}")
        if os.environ.get("DEMO_SUMMARY"):
            Path(os.environ["DEMO_SUMMARY"]).write_text(json.dumps(result, indent=2))
        print("\ntearing down...", flush=True)
        demo.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
