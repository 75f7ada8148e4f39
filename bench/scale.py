"""`make bench-scale`: how many budgets one operator replica handles, measured on the local cluster.

    python bench/scale.py [--budgets 1000] [--pods-per-budget 3] [--budgets-per-namespace 10] [--interval 30]
                          [--duration 90] [--cluster scale] [--label NAME] [--py-spy DIR]

On the local control plane (hack/cluster; fake kwok nodes are added until every pod fits), it creates N
Deployments of P pods each (they request no GPU) and one InferenceBudget per Deployment, then runs what a
real installation runs, each as its own process: the twin serving every pod's vLLM metrics, a real
Prometheus scraping it (behind a counting proxy), and the operator (`python -m inferbudget run`).

It prints and records (bench/results/scale.json, and the table in bench/results/scale.md):
- first cycle: from the operator's start until every budget's status has been written once;
- steady cycle: the span of status writes within one interval (every budget once), reconciles per second;
- Prometheus queries and API requests per cycle (the proxy's count; the API server's apiserver_request_total);
- the operator's CPU (CPU seconds / wall seconds over the steady window) and peak RSS (VmHWM in /proc, or a
  higher VmRSS read);
- breach to scale: one Deployment's load jumps (its twin annotation); the time from the latency breach
  showing in Prometheus to the scale patch showing in the Deployment.
The machine's load average is recorded with every run: other work on the machine moves these figures.
Figures only: the benchmark asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import math
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.support: Prometheus and processes, shared with the e2e tier

from kubernetes import client as k8s  # noqa: E402
from kubernetes import config as k8s_config  # noqa: E402
from kubernetes import watch  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from tests.support import prometheus  # noqa: E402
from tests.support.processes import Process, inferbudget  # noqa: E402
from tests.support.scripts import load_script, wait_until  # noqa: E402

RESULTS = ROOT / "bench/results"
BENCH_KEY = "inferbudget.io/bench"  # on every object the bench creates, its value the namespace prefix
RATE_ANNOTATION = "twin.inferbudget.io/requests-per-second"
CAPACITY_HINT = 15.0  # req/s one bf16 replica is declared to carry (the e2e tier's budget)
PODS_PER_NODE = 100  # a kwok node takes 110 pods; leave room for strays
THRESHOLD_MS = 2000
WINDOW_SECONDS = 30


@dataclass
class Settings:
    budgets: int
    pods_per_budget: int
    budgets_per_namespace: int
    interval: float
    duration: float
    first_cycle_timeout: float
    cluster: str
    label: str
    scrape_interval: float
    twin_tick: float
    py_spy: Path | None
    work: Path
    results: Path | None
    keep: bool
    prefix: str
    namespaced: bool

    @property
    def labels(self) -> dict[str, str]:
        return {BENCH_KEY: self.prefix}

    @property
    def watched(self) -> list[str]:
        """--namespace flags for the operator and the twin: none (the whole cluster) unless --namespaced."""
        return [arg for ns in self.namespaces for arg in ("--namespace", ns)] if self.namespaced else []

    @property
    def selector(self) -> str:
        return f"{BENCH_KEY}={self.prefix}"

    @property
    def namespaces(self) -> list[str]:
        return [f"{self.prefix}-{i}" for i in range(math.ceil(self.budgets / self.budgets_per_namespace))]

    def budget_names(self) -> Iterator[tuple[str, str]]:
        """(namespace, name) of every budget; its Deployment has the same name."""
        for i in range(self.budgets):
            yield f"{self.prefix}-{i // self.budgets_per_namespace}", f"m-{i}"


@dataclass
class Figures:
    """What one run measured; None where a measurement did not complete."""

    label: str
    budgets: int
    pods: int
    namespaces: int
    interval_seconds: float
    started_at: str
    load_average: dict[str, str] = field(default_factory=dict)  # `uptime` before / after
    first_cycle_seconds: float | None = None
    steady_window_seconds: float | None = None
    steady_cycle_span_seconds: list[float] = field(default_factory=list)
    reconciles_per_second: float | None = None
    mean_seconds_between_reconciles: float | None = None
    # Seconds between two decisions of one budget (lastDecision.time: when the operator decided, before its
    # status patch went out), over every budget in the steady window: the p50, p99 and the longest.
    decision_gap_seconds: dict[str, float] = field(default_factory=dict)
    decision_cycle_span_seconds: list[float] = field(default_factory=list)  # _cycle_spans over decision times
    prometheus_queries_per_cycle: float | None = None
    prometheus_queries_first_cycle: int | None = None
    api_requests_per_cycle: dict[str, float] = field(default_factory=dict)  # "VERB resource[/sub]" -> count
    # Why the operator wrote what it wrote in the steady window: its decisions other than "None" by "action
    # reason" (lastDecision), and the Events on the budgets by reason (by their last time), per cycle.
    decisions_per_cycle: dict[str, float] = field(default_factory=dict)
    events_per_cycle: dict[str, float] = field(default_factory=dict)
    operator_api_requests_per_cycle: float | None = None
    operator_cpu_cores: float | None = None
    operator_peak_rss_mib: float | None = None
    operator_rss_mib: float | None = None
    operator_peak_rss_at_seconds: float | None = None  # when VmRSS was highest, seconds after the start
    operator_steady_max_rss_mib: float | None = None  # the highest VmRSS sampled in the steady window
    breach_to_scale_seconds: float | None = None
    load_jump_to_breach_seconds: float | None = None
    load_jump_to_scale_seconds: float | None = None
    profile: str | None = None
    notes: list[str] = field(default_factory=list)


def say(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------------------------------------
# The cluster and the fleet


def cluster_up(settings: Settings) -> Any:
    """The local cluster (started if down) with enough kwok nodes for every pod."""
    local_cluster = load_script("inferbudget_local_cluster", ROOT / "hack/cluster/cluster.py")
    local = local_cluster.Cluster(settings.cluster)
    nodes = max(2, math.ceil(settings.budgets * (settings.pods_per_budget + 1) / PODS_PER_NODE))
    local.up(nodes=nodes)
    # kubernetes.config is unannotated
    api = k8s_config.new_client_from_config(config_file=str(local.kubeconfig))  # type: ignore[no-untyped-call]
    existing = {node.metadata.name for node in k8s.CoreV1Api(api).list_node().items if node.metadata is not None}
    for index in range(nodes):
        node = local_cluster.fake_node(index)
        if node["metadata"]["name"] not in existing:
            k8s.CoreV1Api(api).create_node(node)
    wait_until(f"{nodes} Ready nodes", lambda: _ready_nodes(api) >= nodes, timeout=120, interval=1)
    return local, api


def _ready_nodes(api: Any) -> int:
    return sum(1 for node in k8s.CoreV1Api(api).list_node().items
               if node.status is not None
               and any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or []))


def deployment(name: str, replicas: int, rate: float, labels: dict[str, str]) -> dict[str, Any]:
    selector = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels, "annotations": {RATE_ANNOTATION: f"{rate:g}"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": {**selector, "inferbudget.io/variant": "bf16"}},
                              "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.10.1"}]}}},
    }


def budget(name: str, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "inferbudget.io/v1alpha1", "kind": "InferenceBudget",
        "metadata": {"name": name, "labels": labels},
        "spec": {"targetRef": {"name": name, "container": "server"}, "mode": "Enforce",
                 "latency": {"percentile": 95, "thresholdMs": THRESHOLD_MS, "windowSeconds": WINDOW_SECONDS},
                 "replicas": {"min": replicas, "max": replicas * 4},
                 "variants": [{"name": "bf16", "quality": 1.0, "costPerReplicaHour": "4.10", "memory": "24Gi",
                               "capacityHint": {"requestsPerSecond": CAPACITY_HINT}}]},
    }


def steady_rate(settings: Settings) -> float:
    """Each Deployment's load: its replicas at 60% of the declared capacity (well within budget)."""
    return 0.6 * CAPACITY_HINT * settings.pods_per_budget


def create_fleet(settings: Settings, api: Any, kubectl: Callable[..., None]) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))  # the e2e tier applies it too
    wait_until("the CRD to be served", lambda: _crd_served(api), timeout=60)
    core, apps, custom = k8s.CoreV1Api(api), k8s.AppsV1Api(api), k8s.CustomObjectsApi(api)
    wait_until("the namespaces of an earlier run to be gone", lambda: not _terminating(core, settings.selector),
               timeout=600, interval=2)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda ns: _create(core.create_namespace, {"metadata": {"name": ns, "labels": settings.labels}}),
                      settings.namespaces))
        wait_until("ServiceAccounts in the bench namespaces", lambda: all(
            pool.map(lambda ns: _exists(core.read_namespaced_service_account, "default", ns), settings.namespaces)),
            timeout=120, interval=1)
        rate = steady_rate(settings)

        def create(item: tuple[str, str]) -> None:
            namespace, name = item
            workload = deployment(name, settings.pods_per_budget, rate, settings.labels)
            if not _create(apps.create_namespaced_deployment, namespace, workload):  # kept: back to the start
                apps.patch_namespaced_deployment(name, namespace, {"metadata": workload["metadata"],
                                                                   "spec": {"replicas": settings.pods_per_budget}})
            _create(custom.create_namespaced_custom_object, "inferbudget.io", "v1alpha1", namespace,
                    "inferencebudgets", budget(name, settings.pods_per_budget, settings.labels))

        list(pool.map(create, settings.budget_names()))
    pods = settings.budgets * settings.pods_per_budget
    say(f"created {settings.budgets} Deployments and budgets in {len(settings.namespaces)} namespaces; "
        f"waiting for {pods} pods to be Ready")
    wait_until(f"{pods} Ready pods", lambda: _ready_pods(core, settings) >= pods, timeout=1800, interval=5)


def _terminating(core: Any, selector: str) -> list[str]:
    return [ns.metadata.name for ns in core.list_namespace(label_selector=selector).items
            if ns.status.phase == "Terminating"]


def _crd_served(api: Any) -> bool:
    try:
        k8s.CustomObjectsApi(api).list_cluster_custom_object("inferbudget.io", "v1alpha1", "inferencebudgets",
                                                             limit=1)
        return True
    except k8s.ApiException:
        return False


def _create(create: Callable[..., Any], *args: Any) -> bool:
    """Whether it was created (False: it is left from an earlier run with --keep, and reused)."""
    try:
        create(*args)
    except k8s.ApiException as error:
        if error.status != 409:
            raise
        return False
    return True


def _ignore_missing(call: Callable[..., Any], *args: Any) -> None:
    try:
        call(*args)
    except k8s.ApiException as error:
        if error.status != 404:
            raise


def _exists(read: Callable[..., Any], *args: Any) -> bool:
    try:
        read(*args)
        return True
    except k8s.ApiException:
        return False


def _ready_pods(core: Any, settings: Settings) -> int:
    """The bench's Ready pods. A pod the node controller marked NotReady (its kwok node missed a lease renewal
    on a busy machine) is deleted, for kwok readies a pod only once: its ReplicaSet makes a new one."""
    namespaces = set(settings.namespaces)
    pods = [pod for pod in core.list_pod_for_all_namespaces(label_selector="inferbudget.io/variant").items
            if pod.metadata.namespace in namespaces]
    conditions = [{c.type: c.status for c in pod.status.conditions or []} for pod in pods]
    for pod, condition in zip(pods, conditions, strict=True):
        if condition.get("ContainersReady") == "True" and condition.get("Ready") == "False":
            _ignore_missing(core.delete_namespaced_pod, pod.metadata.name, pod.metadata.namespace)
    return sum(1 for condition in conditions if condition.get("Ready") == "True")


def delete_fleet(settings: Settings, api: Any) -> None:
    """Deletes the bench's namespaces (not waited for). kopf put a finalizer on every budget (its reconcile
    daemons are stopped on deletion) and the operator is stopped by now: the finalizers go first, or deletion
    would hang."""
    custom, core = k8s.CustomObjectsApi(api), k8s.CoreV1Api(api)
    listed = custom.list_cluster_custom_object("inferbudget.io", "v1alpha1", "inferencebudgets",
                                               label_selector=settings.selector)
    assert isinstance(listed, dict)  # custom objects come back as the JSON they are
    budgets = listed["items"]

    def release(body: dict[str, Any]) -> None:
        if body["metadata"].get("finalizers"):
            custom.patch_namespaced_custom_object("inferbudget.io", "v1alpha1", body["metadata"]["namespace"],
                                                  "inferencebudgets", body["metadata"]["name"],
                                                  {"metadata": {"finalizers": None}})

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(release, budgets))
        list(pool.map(lambda ns: _ignore_missing(core.delete_namespace, ns), settings.namespaces))


# ---------------------------------------------------------------------------------------------------------
# Counting what the operator asks for


class CountingProxy:
    """Forwards GETs to Prometheus unchanged and counts them: the operator's queries, whatever it reports."""

    def __init__(self, upstream: str) -> None:
        self.upstream, self.requests, self._lock = upstream.rstrip("/"), 0, threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the operator's client expects

            def do_GET(self) -> None:
                with proxy._lock:
                    proxy.requests += 1
                try:
                    with urllib.request.urlopen(proxy.upstream + self.path, timeout=60) as response:
                        status, body = response.status, response.read()
                except urllib.error.HTTPError as error:
                    status, body = error.code, error.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", prometheus.free_port()), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()


class StatusWrites:
    """Watches the bench's budgets and records when each one's status changes: one entry per reconcile."""

    def __init__(self, api: Any, selector: str) -> None:
        self.api, self.selector = api, selector
        self.writes: list[tuple[float, str]] = []
        self.decisions: list[tuple[float, str]] = []  # (lastDecision.time, budget): when the operator decided
        self.actions: dict[tuple[str, str], str] = {}  # (budget, lastDecision.time) -> "action reason"
        self._seen: dict[str, str] = {}
        # kubernetes.watch is unannotated (Watch, its stream and stop)
        self._watch, self._stopped = watch.Watch(), threading.Event()  # type: ignore[no-untyped-call]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        custom = k8s.CustomObjectsApi(self.api)
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(  # type: ignore[no-untyped-call]
                        custom.list_cluster_custom_object, "inferbudget.io", "v1alpha1", "inferencebudgets",
                        label_selector=self.selector):
                    self._record(event["object"])
            except Exception as error:  # a dropped watch: start again (writes in between are missed)
                say(f"status watch restarted: {error}")

    def _record(self, body: dict[str, Any]) -> None:
        status = json.dumps(body.get("status") or {}, sort_keys=True)
        key = f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        if body.get("status") and self._seen.get(key) != status:
            self._seen[key] = status
            self.writes.append((time.time(), key))
            decision = body["status"].get("lastDecision") or {}
            if decision.get("time"):
                self.decisions.append((_unix(decision["time"]), key))
                self.actions[(key, decision["time"])] = f"{decision.get('action')} {decision.get('reason')}"

    def since(self, moment: float) -> list[tuple[float, str]]:
        return [(at, key) for at, key in list(self.writes) if at >= moment]

    def decided_between(self, start: float, end: float) -> list[tuple[float, str]]:
        return [(at, key) for at, key in list(self.decisions) if start <= at <= end]

    def actions_between(self, start: float, end: float) -> Counter[str]:
        """The decisions made in [start, end] that were not "None" (nothing to do), by "action reason"."""
        return Counter(action for (_, at), action in list(self.actions.items())
                       if start <= _unix(at) <= end and not action.startswith("None "))

    def stop(self) -> None:
        self._stopped.set()
        self._watch.stop()  # type: ignore[no-untyped-call]


def _unix(timestamp: str) -> float:
    """An RFC 3339 time as written in the status ("2026-11-28T05:20:00.123456Z")."""
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


class MemorySampler:
    """Samples the operator's VmRSS every half second from its start: when the peak happens says what causes it."""

    def __init__(self, pid: int) -> None:
        self.pid, self.started = pid, time.time()
        self.samples: list[tuple[float, float]] = []  # (time, MiB)
        self._stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stopped.wait(0.5):
            try:
                self.samples.append((time.time(), memory_mib(self.pid, "VmRSS")))
            except OSError:
                return

    def peak(self) -> tuple[float, float]:
        """(seconds after the start, MiB) of the highest sample."""
        at, mib = max(self.samples, key=lambda sample: sample[1])
        return round(at - self.started, 1), mib

    def highest_between(self, start: float, end: float) -> float | None:
        return max((mib for at, mib in self.samples if start <= at <= end), default=None)

    def stop(self) -> None:
        self._stopped.set()


def apiserver_requests(api: Any) -> dict[str, float]:
    """apiserver_request_total summed by "VERB resource[/subresource]"."""
    response = api.call_api("GET", f"{api.configuration.host}/metrics")
    response.read()
    text = response.data.decode()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            if sample.name != "apiserver_request_total":
                continue
            labels = sample.labels
            resource = labels.get("resource", "") + (f"/{labels['subresource']}" if labels.get("subresource") else "")
            key = f"{labels.get('verb', '?')} {resource}"
            totals[key] = totals.get(key, 0.0) + sample.value
    return totals


# The operator's own requests in the steady state: status patches, Events, scale patches (the twin only lists,
# and kopf's watches are long-lived streams).
OPERATOR_REQUESTS = ("PATCH inferencebudgets/status", "POST events", "PATCH deployments", "PATCH events")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _peak_rss_mib(pid: int, memory: MemorySampler, figures: Figures) -> float:
    """The operator's peak RSS: VmHWM, or a higher VmRSS read before it. The kernel raises VmHWM only on some
    paths (an unmap, an exit), so pages given back since (glibc trims its heap with madvise) can leave it below an
    earlier VmRSS: in one run VmHWM read 102.2 MiB after a VmRSS of 102.4 MiB."""
    readings = [memory_mib(pid, "VmHWM"), *(mib for _, mib in list(memory.samples))]
    if figures.operator_rss_mib is not None:
        readings.append(figures.operator_rss_mib)
    return round(max(readings), 1)


def memory_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 1024
    raise KeyError(key)


# ---------------------------------------------------------------------------------------------------------
# The processes


@contextmanager
def processes(settings: Settings, local: Any) -> Iterator[tuple[Process, CountingProxy, prometheus.Prometheus]]:
    """The twin, Prometheus scraping it, the counting proxy and the operator; stopped on the way out."""
    env = {"KUBECONFIG": str(local.kubeconfig)}
    trace = settings.work / "constant.csv"  # the loads are set per Deployment; the trace only sets lengths
    trace.write_text("timestamp_s,input_tokens,output_tokens\n" + "".join(f"{i / 10},1000,100\n" for i in range(600)))
    with ExitStack() as stack:
        twin_port = prometheus.free_port()
        twin = Process(inferbudget("twin", *settings.watched, "--trace", str(trace), "--port", str(twin_port),
                                   "--tick", str(settings.twin_tick)), settings.work / "twin.log", env).start()
        stack.callback(twin.stop)
        server = prometheus.start(settings.work / "prometheus", scrape_interval=f"{settings.scrape_interval:g}s")
        stack.callback(server.stop)
        server.scrape(f"127.0.0.1:{twin_port}")
        pods = settings.budgets * settings.pods_per_budget
        say(f"waiting for Prometheus to hold the twin's series of {pods} pods")
        wait_until("every pod's request rate in Prometheus", lambda: _pods_in_prometheus(server.url) >= pods,
                   timeout=600, interval=2)
        # The twin's counters started at zero: until the latency window holds only steady load, rates still
        # climb, and the engine would forecast growth and scale up.
        settled = time.time() + WINDOW_SECONDS + 2 * settings.scrape_interval
        wait_until("the rates to settle", lambda: time.time() >= settled, timeout=settled - time.time() + 5, interval=1)
        proxy = CountingProxy(server.url)
        stack.callback(proxy.stop)
        metrics_port = prometheus.free_port()
        operator = Process([*inferbudget("run"), *settings.watched, "--interval", f"{settings.interval:g}",
                            "--prometheus-url", proxy.url, "--metrics-port", str(metrics_port),
                            "--health-port", str(prometheus.free_port())], settings.work / "operator.log", env)
        operator.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        operator.start()
        stack.callback(operator.stop)
        yield operator, proxy, server


def _pods_in_prometheus(url: str) -> int:
    return int(_query(url, "count(rate(vllm:e2e_request_latency_seconds_count[1m]) > 0)") or 0)


def _query(url: str, promql: str) -> float | None:
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}",
                                timeout=30) as response:
        result = json.loads(response.read())["data"]["result"]
    return float(result[0]["value"][1]) if result else None


# ---------------------------------------------------------------------------------------------------------
# Measuring


def measure(settings: Settings, local: Any, api: Any) -> Figures:
    figures = Figures(settings.label, settings.budgets, settings.budgets * settings.pods_per_budget,
                      len(settings.namespaces), settings.interval, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    figures.load_average["before"] = uptime()
    writes = StatusWrites(api, settings.selector)
    with processes(settings, local) as (operator, proxy, server):
        assert operator.process is not None
        pid, started = operator.process.pid, time.time()
        memory = MemorySampler(pid)
        everyone = {f"{ns}/{name}" for ns, name in settings.budget_names()}
        try:
            first = wait_until("every budget's first status write",
                               lambda: _all_written(writes, everyone, started), timeout=settings.first_cycle_timeout,
                               interval=0.5)
        except AssertionError:
            written = len({key for _, key in writes.since(started)})
            figures.notes.append(f"first cycle incomplete: {written} of {settings.budgets} budgets reconciled "
                                 f"{settings.first_cycle_timeout:g} s after the operator started; "
                                 f"{cpu_seconds(pid):.0f} CPU seconds used by then")
            figures.operator_peak_rss_mib = _peak_rss_mib(pid, memory, figures)
            say(figures.notes[-1])
        else:
            figures.first_cycle_seconds = round(first - started, 2)
            figures.prometheus_queries_first_cycle = proxy.requests
            say(f"first cycle: every budget reconciled {figures.first_cycle_seconds} s after the operator started "
                f"({proxy.requests} Prometheus queries so far)")
            _steady(settings, figures, writes, everyone, operator, proxy, api, memory)
            _breach(settings, figures, server.url, api, pid)
            figures.operator_peak_rss_mib = _peak_rss_mib(pid, memory, figures)
        memory.stop()
        if memory.samples:
            figures.operator_peak_rss_at_seconds = memory.peak()[0]
    writes.stop()
    figures.load_average["after"] = uptime()
    return figures


def _all_written(writes: StatusWrites, everyone: set[str], since: float) -> float | None:
    recent = writes.since(since)
    return max(at for at, _ in recent) if recent and {key for _, key in recent} >= everyone else None


def _steady(settings: Settings, figures: Figures, writes: StatusWrites, everyone: set[str], operator: Process,
            proxy: CountingProxy, api: Any, memory: MemorySampler) -> None:
    assert operator.process is not None
    pid = operator.process.pid
    profile = None
    if settings.py_spy is not None:
        settings.py_spy.mkdir(parents=True, exist_ok=True)
        out = settings.py_spy / f"{settings.label.replace(' ', '-')}.txt"
        profile = subprocess.Popen([_py_spy(), "record", "--pid", str(pid), "--duration", str(int(settings.duration)),
                                    "--rate", "50", "--nonblocking", "--format", "raw", "--output", str(out)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        figures.profile = str(out.relative_to(ROOT)) if out.is_relative_to(ROOT) else str(out)
    start, cpu0, queries0, api0 = time.time(), cpu_seconds(pid), proxy.requests, apiserver_requests(api)
    say(f"steady state: measuring for {settings.duration:g} s ({uptime()})")
    wait_until("the end of the steady window", lambda: time.time() >= start + settings.duration,
               timeout=settings.duration + 5, interval=1)
    wall, cpu = time.time() - start, cpu_seconds(pid) - cpu0
    queries, api1 = proxy.requests - queries0, apiserver_requests(api)
    if profile is not None:
        profile.wait(timeout=60)
    cycles = wall / settings.interval
    window = [(at, key) for at, key in writes.since(start) if at <= start + wall]
    figures.steady_window_seconds = round(wall, 1)
    figures.reconciles_per_second = round(len(window) / wall, 2)
    figures.steady_cycle_span_seconds = _cycle_spans(window, everyone, settings.interval)
    figures.mean_seconds_between_reconciles = _mean_gap(window)
    decisions = writes.decided_between(start, start + wall)
    figures.decision_gap_seconds = _gap_percentiles(decisions)
    figures.decision_cycle_span_seconds = _cycle_spans(decisions, everyone, settings.interval)
    figures.prometheus_queries_per_cycle = round(queries / cycles, 1)
    delta = {key: round((api1.get(key, 0) - api0.get(key, 0)) / cycles, 1) for key in api1}
    figures.api_requests_per_cycle = {key: value for key, value in sorted(delta.items()) if value}
    figures.operator_api_requests_per_cycle = round(sum(delta.get(key, 0) for key in OPERATOR_REQUESTS), 1)
    figures.decisions_per_cycle = _per_cycle(writes.actions_between(start, start + wall), cycles)
    figures.events_per_cycle = _per_cycle(budget_events(api, settings, start, start + wall), cycles)
    figures.operator_cpu_cores = round(cpu / wall, 3)
    figures.operator_rss_mib = round(memory_mib(pid, "VmRSS"), 1)
    highest = memory.highest_between(start, start + wall)
    figures.operator_steady_max_rss_mib = round(highest, 1) if highest is not None else None
    say(f"decisions: seconds between two of a budget {figures.decision_gap_seconds}, rounds (decision times) "
        f"{figures.decision_cycle_span_seconds} s; steady RSS at most {figures.operator_steady_max_rss_mib} MiB")
    say(f"steady: {figures.reconciles_per_second} reconciles/s, cycle spans {figures.steady_cycle_span_seconds} s, "
        f"{figures.prometheus_queries_per_cycle} Prometheus queries and {figures.operator_api_requests_per_cycle} "
        f"operator API requests per cycle, {figures.operator_cpu_cores} CPU cores, RSS {figures.operator_rss_mib} MiB")
    say(f"per cycle: decisions {figures.decisions_per_cycle or '-'}, Events {figures.events_per_cycle or '-'}")


def budget_events(api: Any, settings: Settings, start: float, end: float) -> Counter[str]:
    """Events on the bench's budgets last seen in [start, end], by reason (a repeated Event counts once)."""
    core, namespaces = k8s.CoreV1Api(api), set(settings.namespaces)
    events = core.list_event_for_all_namespaces(field_selector="involvedObject.kind=InferenceBudget").items
    return Counter(event.reason or "(none)" for event in events if event.metadata.namespace in namespaces
                   and (seen := event.last_timestamp or event.event_time) is not None
                   and start <= seen.timestamp() <= end)


def _per_cycle(counts: Counter[str], cycles: float) -> dict[str, float]:
    return {key: round(count / cycles, 1) for key, count in counts.most_common()}


def _py_spy() -> str:
    """py-spy from this interpreter's environment (the dev extras), else from PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else "py-spy"


def _cycle_spans(window: list[tuple[float, str]], everyone: set[str], interval: float) -> list[float]:
    """For each complete cycle in the window (every budget written once), the time from its first write to
    its last: how long the operator takes to get round every budget."""
    spans, seen, first = [], set(), None
    for at, key in sorted(window):
        if key in seen:
            continue  # a second write before the cycle completed: the cycle is longer than an interval
        first = at if first is None else first
        seen.add(key)
        if seen >= everyone:
            spans.append(round(at - first, 2))
            seen, first = set(), None
    return spans


def _gaps(window: list[tuple[float, str]]) -> list[float]:
    """The time between two consecutive entries of each budget."""
    last: dict[str, float] = {}
    gaps = []
    for at, key in sorted(window):
        if key in last:
            gaps.append(at - last[key])
        last[key] = at
    return gaps


def _mean_gap(window: list[tuple[float, str]]) -> float | None:
    gaps = _gaps(window)
    return round(sum(gaps) / len(gaps), 2) if gaps else None


def _gap_percentiles(window: list[tuple[float, str]]) -> dict[str, float]:
    gaps = sorted(_gaps(window))
    if not gaps:
        return {}
    return {"p50": round(gaps[len(gaps) // 2], 2), "p99": round(gaps[min(len(gaps) - 1, int(0.99 * len(gaps)))], 2),
            "max": round(gaps[-1], 2)}


def _breach(settings: Settings, figures: Figures, prometheus_url: str, api: Any, pid: int) -> None:
    """Budget 0's load jumps to 2.5x what its replicas carry: time the breach in Prometheus and the scale."""
    namespace, name = next(settings.budget_names())
    apps = k8s.AppsV1Api(api)
    replicas = apps.read_namespaced_deployment(name, namespace).spec.replicas
    p95 = (f'histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket'
           f'{{namespace="{namespace}",pod=~"{name}-.*"}}[{WINDOW_SECONDS}s])))')
    jumped = time.time()
    apps.patch_namespaced_deployment(name, namespace, {"metadata": {"annotations": {
        RATE_ANNOTATION: f"{2.5 * CAPACITY_HINT * settings.pods_per_budget:g}"}}})
    breached: list[float] = []

    def scaled() -> float | None:
        if not breached and (_query(prometheus_url, p95) or 0) * 1000 > THRESHOLD_MS:
            breached.append(time.time())
        return time.time() if apps.read_namespaced_deployment(name, namespace).spec.replicas != replicas else None

    try:
        at = wait_until("the scale patch after the load jump", scaled, timeout=10 * settings.interval, interval=0.5)
    except AssertionError as error:
        figures.notes.append(f"the load jump on {name}: no scale in {10 * settings.interval:g} s; "
                             f"{_last_decision(api, namespace, name)}")
        say(f"no scale action seen: {error}; {figures.notes[-1]}")
        return
    figures.load_jump_to_scale_seconds = round(at - jumped, 1)
    if breached:
        figures.load_jump_to_breach_seconds = round(breached[0] - jumped, 1)
        figures.breach_to_scale_seconds = round(at - breached[0], 1)
    say(f"load jump -> breach in Prometheus {figures.load_jump_to_breach_seconds} s -> scale patch "
        f"{figures.breach_to_scale_seconds} s later")


def _last_decision(api: Any, namespace: str, name: str) -> str:
    """What the operator last decided for the budget and what it observed then (its status), to tell why it did
    not scale."""
    body = k8s.CustomObjectsApi(api).get_namespaced_custom_object(
        "inferbudget.io", "v1alpha1", namespace, "inferencebudgets", name)
    assert isinstance(body, dict)  # a custom object comes back as the JSON it is
    status = body.get("status") or {}
    last, observed = status.get("lastDecision") or {}, status.get("observed") or {}
    conditions = ", ".join(f"{c.get('type')}={c.get('status')} ({c.get('reason')})"
                           for c in status.get("conditions", []))
    return (f"its last decision {last.get('action')}/{last.get('reason')}: {last.get('message')!r}; observed "
            f"{json.dumps(observed, sort_keys=True)}; {conditions}")


# ---------------------------------------------------------------------------------------------------------
# Results


def record(figures: Figures, results: Path) -> None:
    """Adds this run to results/scale.json (keyed by label) and rewrites the table in results/scale.md."""
    results.mkdir(parents=True, exist_ok=True)
    store = results / "scale.json"
    runs = json.loads(store.read_text()) if store.exists() else {}
    runs[figures.label] = asdict(figures)
    store.write_text(json.dumps(runs, indent=2) + "\n")
    (results / "scale.md").write_text(markdown(list(runs.values())))


ROWS = [  # (row title, key in Figures, unit)
    ("budgets / pods / namespaces", None, ""),
    ("first cycle: operator start to every budget reconciled", "first_cycle_seconds", "s"),
    ("steady cycle: first to last status write of one round", "steady_cycle_span_seconds", "s"),
    ("mean time between two reconciles of a budget", "mean_seconds_between_reconciles", "s"),
    ("time between two decisions of a budget (lastDecision.time), p50 / p99 / max", "decision_gap_seconds", "s"),
    ("one round by decision times: first to last budget decided", "decision_cycle_span_seconds", "s"),
    ("reconciles per second (steady window)", "reconciles_per_second", "/s"),
    ("Prometheus queries per cycle (steady)", "prometheus_queries_per_cycle", ""),
    ("Prometheus queries in the first cycle", "prometheus_queries_first_cycle", ""),
    ("operator API requests per cycle (status, Events, scale)", "operator_api_requests_per_cycle", ""),
    ("operator CPU (CPU seconds / wall seconds)", "operator_cpu_cores", " cores"),
    ("operator RSS at the end of the steady window", "operator_rss_mib", " MiB"),
    ("operator peak RSS (VmHWM, or a higher VmRSS read)", "operator_peak_rss_mib", " MiB"),
    ("when the RSS peaked (seconds after the operator started)", "operator_peak_rss_at_seconds", "s"),
    ("operator RSS, highest in the steady window", "operator_steady_max_rss_mib", " MiB"),
    ("load jump to latency breach in Prometheus", "load_jump_to_breach_seconds", "s"),
    ("breach in Prometheus to scale patch", "breach_to_scale_seconds", "s"),
    ("load average (uptime) before / after", None, ""),
]


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = ["# Scale benchmark (`make bench-scale`, bench/scale.py)", "",
             "One operator replica, the local cluster (kwok nodes), the twin serving every pod's vLLM metrics, a "
             "real Prometheus. Generated by bench/scale.py; see docs/scale.md for what the figures mean.", "",
             "| | " + " | ".join(run["label"] for run in runs) + " |",
             "|---|" + "---|" * len(runs)]
    for title, key, unit in ROWS:
        cells = []
        for run in runs:
            if title.startswith("budgets"):
                cells.append(f"{run['budgets']} / {run['pods']} / {run['namespaces']} "
                             f"(interval {run['interval_seconds']:g} s)")
            elif title.startswith("load average"):
                cells.append(" / ".join(run["load_average"].get(when, "?").split("load average:")[-1].strip()
                                        for when in ("before", "after")))
            elif isinstance(value := run.get(key or ""), dict):
                cells.append(" / ".join(f"{figure}{unit}" for figure in value.values()) if value else "-")
            else:
                cells.append("-" if value in (None, []) else f"{value}{unit}")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    notes = [f"- {run['label']}: {note}" for run in runs for note in run.get("notes", [])]
    lines += ["", "Notes:", "", *notes] if notes else []
    lines += ["", "API requests per cycle during the steady window, all clients. The operator's are its status "
              "patches, Events and scale patches (the row above) and its LISTs of pods (`LIST pods`: one per "
              "reconcile before, one per namespace per cycle after; it also holds the twin's: one per tick, per "
              "namespace with --namespaced); the twin lists "
              "budgets and Deployments too, kwok renews node leases:", ""]
    for run in runs:
        requests = ", ".join(f"{key}: {value:g}" for key, value in run["api_requests_per_cycle"].items())
        lines.append(f"- {run['label']}: {requests or '-'}")
    lines += ["", "Why, per cycle in the steady window: the operator's decisions other than None (nothing to do) by "
              "action and reason, and the Events on the budgets by reason (runs before these were recorded show "
              "none):", ""]
    for run in runs:
        decided = ", ".join(f"{key}: {value:g}" for key, value in run.get("decisions_per_cycle", {}).items())
        events = ", ".join(f"{key}: {value:g}" for key, value in run.get("events_per_cycle", {}).items())
        lines.append(f"- {run['label']}: decisions {decided or '-'}; Events {events or '-'}")
    return "\n".join(lines) + "\n"


def arguments(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", type=int, default=1000, help="InferenceBudgets, one Deployment each")
    parser.add_argument("--pods-per-budget", type=int, default=3, help="replicas of each Deployment")
    parser.add_argument("--budgets-per-namespace", type=int, default=10)
    parser.add_argument("--interval", type=float, default=30, help="the operator's --interval (seconds)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of steady-state measurement (default: 3 intervals)")
    parser.add_argument("--first-cycle-timeout", type=float, default=900,
                        help="give up (and record so) when not every budget is reconciled this long after the "
                             "operator started (default %(default)s s)")
    parser.add_argument("--cluster", default=os.environ.get("INFERBUDGET_CLUSTER", "scale"),
                        help="local cluster name (hack/cluster/cluster.py --name)")
    parser.add_argument("--label", default=None, help="name of this run in the results (default: N budgets)")
    parser.add_argument("--scrape-interval", type=float, default=15, help="Prometheus scrape interval (s)")
    parser.add_argument("--twin-tick", type=float, default=5, help="seconds between two twin simulation steps")
    parser.add_argument("--py-spy", type=Path, default=None, metavar="DIR",
                        help="profile the operator with py-spy during the steady window (raw stacks in DIR)")
    parser.add_argument("--work", type=Path, default=None, help="logs and Prometheus data (default: a temp dir)")
    parser.add_argument("--results", type=Path, default=RESULTS,
                        help="where scale.json and scale.md go (default %(default)s); '-' records nothing")
    parser.add_argument("--keep", action="store_true", help="leave the Deployments and budgets in the cluster")
    parser.add_argument("--prefix", default="scale", help="names of the bench's namespaces: PREFIX-0, PREFIX-1...")
    parser.add_argument("--namespaced", action="store_true",
                        help="the operator and the twin watch only the bench's namespaces (default: the whole "
                             "cluster, as the chart installs the operator by default)")
    args = parser.parse_args(argv)
    work = args.work or Path(os.environ.get("TMPDIR", "/tmp")) / f"inferbudget-scale-{os.getpid()}"
    work.mkdir(parents=True, exist_ok=True)
    return Settings(args.budgets, args.pods_per_budget, args.budgets_per_namespace, args.interval,
                    args.duration or 3 * args.interval, args.first_cycle_timeout, args.cluster,
                    args.label or f"{args.budgets} budgets",
                    args.scrape_interval, args.twin_tick, args.py_spy, work,
                    None if str(args.results) == "-" else args.results, args.keep, args.prefix, args.namespaced)


def main(argv: list[str] | None = None) -> int:
    settings = arguments(argv)
    local, api = cluster_up(settings)

    def kubectl(*args: str) -> None:
        subprocess.run([str(local_tool("kubectl")), "--kubeconfig", str(local.kubeconfig), *args], check=True,
                       capture_output=True)

    def local_tool(name: str) -> Path:
        return Path(load_script("inferbudget_local_cluster", ROOT / "hack/cluster/cluster.py").tool(name))

    say(f"logs in {settings.work}")
    try:
        create_fleet(settings, api, kubectl)
        figures = measure(settings, local, api)
    finally:
        if not settings.keep:
            delete_fleet(settings, api)
    print(json.dumps(asdict(figures), indent=2))
    if settings.results is not None:
        record(figures, settings.results)
        say(f"recorded in {settings.results / 'scale.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
