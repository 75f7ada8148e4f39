"""The live serving-fleet twin: a simulated vLLM fleet that a real Prometheus scrapes.

It watches the targets of the InferenceBudgets on the API server — their Ready pods and each pod's
inferbudget.io/variant label — replays a trace (or a per-workload rate set by the annotation
twin.inferbudget.io/requests-per-second on the Deployment) across those pods, runs the simulator's fleet model
for each group of same-variant pods every tick, and serves what vLLM would export, per pod: latency histograms
with vLLM's bucket bounds, histograms of the finished requests' prompt and generated lengths, token counters,
running and waiting requests, KV-cache use, and DCGM GPU memory that follows the variant. So the operator
under test sees its own decisions come back as metrics, through a real Prometheus.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from inferbudget.actuate.workload import VARIANT_KEY, selects
from inferbudget.api.crd import GROUP, PLURAL, VERSION
from inferbudget.sim.fleet import FleetProfile, GroupLoad, LengthSample, VariantModel, evaluate_group
from inferbudget.sim.traces import Trace

log = logging.getLogger(__name__)
RATE_ANNOTATION = "twin.inferbudget.io/requests-per-second"
# vLLM's histogram bounds (its Prometheus stat logger), so quantiles interpolate as they would in production.
E2E_BOUNDS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
              480.0, 960.0, 1920.0, 7680.0)
TTFT_BOUNDS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
               40.0, 80.0, 160.0, 640.0, 2560.0)
ITL_BOUNDS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
              40.0, 80.0)
HISTOGRAMS = {  # signal -> (vLLM metric name, bounds)
    "e2e": ("vllm:e2e_request_latency_seconds", E2E_BOUNDS),
    "ttft": ("vllm:time_to_first_token_seconds", TTFT_BOUNDS),
    "itl": ("vllm:inter_token_latency_seconds", ITL_BOUNDS),
    "queue": ("vllm:request_queue_time_seconds", E2E_BOUNDS),
}
# vLLM's 1-2-5 bounds up to Llama-3.1's 131,072-token context, for the lengths of finished requests
LENGTH_BOUNDS = (1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0,
                 50000.0, 100000.0)
LENGTHS = {  # part -> vLLM metric name; recorded when a request finishes, as its e2e latency is
    "prompt": "vllm:request_prompt_tokens",
    "generation": "vllm:request_generation_tokens",
}
BOUNDS = {name: bounds for name, bounds in HISTOGRAMS.values()} | dict.fromkeys(LENGTHS.values(), LENGTH_BOUNDS)


@dataclass
class PodSeries:
    """Cumulative counters and current gauges of one simulated pod."""

    buckets: dict[str, np.ndarray] = field(default_factory=lambda: {
        name: np.zeros(len(bounds) + 1) for name, bounds in BOUNDS.items()})
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(BOUNDS, 0.0))
    prompt_tokens: float = 0.0
    generation_tokens: float = 0.0
    running: float = 0.0
    waiting: float = 0.0
    kv_usage: float = 0.0
    memory_mib: float = 0.0
    model: str = ""

    def observe(self, name: str, values: np.ndarray, counts: np.ndarray) -> None:
        """Adds `counts[i]` requests of `values[i]` to histogram `name` (a metric name of BOUNDS; counts may be
        fractional: expected values)."""
        bounds = BOUNDS[name]
        slots = np.searchsorted(bounds, values, side="left")
        self.buckets[name] += np.bincount(slots, weights=counts, minlength=len(bounds) + 1)
        self.sums[name] += float(np.dot(values, counts))


class FleetCollector:
    """Exposes every pod's series with `namespace` and `pod` labels, as a relabelled vLLM scrape would."""

    def __init__(self) -> None:
        self.pods: dict[tuple[str, str], PodSeries] = {}
        self.lock = threading.Lock()

    def render(self) -> bytes:
        """The pods' series in the Prometheus text format, written directly: prometheus-client makes an object
        of every sample, which takes minutes for the 417,000 samples of 3,000 pods (the scale benchmark), far
        past any scrape timeout."""
        lines: list[str] = []
        with self.lock:
            pods = [(_labels(namespace=ns, pod=pod, model_name=series.model), _labels(namespace=ns, pod=pod, gpu="0"),
                     series) for (ns, pod), series in self.pods.items()]
            for name, bounds in BOUNDS.items():
                lines.append(f"# HELP {name} (simulated)\n# TYPE {name} histogram")
                edges = [*(repr(float(b)) for b in bounds), "+Inf"]
                for labels, _, series in pods:
                    cumulative = np.cumsum(series.buckets[name]).tolist()
                    lines.extend(f'{name}_bucket{{{labels},le="{le}"}} {count!r}'
                                 for le, count in zip(edges, cumulative, strict=True))
                    lines.append(f"{name}_count{{{labels}}} {cumulative[-1]!r}")
                    lines.append(f"{name}_sum{{{labels}}} {series.sums[name]!r}")
            for name, attribute, kind, text in SIMPLE:
                sample = f"{name}_total" if kind == "counter" else name
                lines.append(f"# HELP {sample} {text}\n# TYPE {sample} {kind}")
                lines.extend(f"{sample}{{{labels}}} {float(getattr(series, attribute))!r}"
                             for labels, _, series in pods)
            lines.append("# HELP DCGM_FI_DEV_FB_USED GPU framebuffer used, MiB (simulated DCGM)\n"
                         "# TYPE DCGM_FI_DEV_FB_USED gauge")
            lines.extend(f"DCGM_FI_DEV_FB_USED{{{gpu}}} {float(series.memory_mib)!r}" for _, gpu, series in pods)
        return ("\n".join(lines) + "\n").encode()


def _labels(**values: str) -> str:
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for k, v in values.items()}
    return ",".join(f'{key}="{value}"' for key, value in escaped.items())


# (name, PodSeries attribute, type, help) of the per-pod gauges and counters
SIMPLE = (
    ("vllm:num_requests_running", "running", "gauge", "requests running"),
    ("vllm:num_requests_waiting", "waiting", "gauge", "requests waiting"),
    ("vllm:kv_cache_usage_perc", "kv_usage", "gauge", "KV-cache use, 0..1"),
    ("vllm:prompt_tokens", "prompt_tokens", "counter", "prompt tokens (simulated)"),
    ("vllm:generation_tokens", "generation_tokens", "counter", "generation tokens (simulated)"),
)


@dataclass(frozen=True)
class Workload:
    """One target the twin serves: its Ready pods grouped by variant, and the load it receives."""

    namespace: str
    name: str
    pods_by_variant: dict[str, list[str]]
    rate_override: float | None


class Twin:
    def __init__(self, api: client.ApiClient, profile: FleetProfile, trace: Trace, sample: LengthSample,
                 variant_map: dict[str, str], gpu: str, namespaces: list[str] | None = None) -> None:
        self.api, self.profile, self.trace, self.sample = api, profile, trace, sample
        self.variant_map, self.gpu, self.namespaces = variant_map, gpu, namespaces
        self.collector = FleetCollector()
        self.backlog: dict[tuple[str, str, str], float] = {}
        self.started_at: float | None = None
        self._warned: set[str] = set()
        self._last_seen: list[Workload] = []

    def model_for(self, variant: str) -> VariantModel | None:
        """The profile variant behind a budget's variant name: mapped explicitly, by name, or by precision
        on the twin's GPU (bf16 -> bf16 on h100-80gb)."""
        name = self.variant_map.get(variant, variant)
        if name in self.profile.variants:
            return self.profile.variants[name]
        match = next((m for m in self.profile.variants.values() if m.precision == variant and m.gpu == self.gpu),
                     None)
        if match is None and variant not in self._warned:
            self._warned.add(variant)
            log.warning("variant %s matches nothing in profile %s: pass --variant %s=PROFILE_VARIANT",
                        variant, self.profile.name, variant)
        return match

    def load_at(self, elapsed: float) -> tuple[float, float, float]:
        """(requests/s, mean input tokens, mean output tokens) of the trace at this point; it loops."""
        bins = len(self.trace.requests)
        index = int(elapsed / self.trace.bin_seconds) % bins
        requests = float(self.trace.requests[index])
        rate = requests / self.trace.bin_seconds
        if requests <= 0:
            return rate, self.sample.mean_input, self.sample.mean_output
        return (rate, float(self.trace.input_tokens[index]) / requests,
                float(self.trace.output_tokens[index]) / requests)

    def _everywhere(self, cluster_wide: Callable[[], Any], in_namespace: Callable[[str], Any]) -> list[Any]:
        """Items listed cluster-wide, or from each watched namespace."""
        answers = [in_namespace(ns) for ns in self.namespaces] if self.namespaces else [cluster_wide()]
        return [item for answer in answers for item in (answer["items"] if isinstance(answer, dict) else answer.items)]

    def workloads(self) -> list[Workload]:
        """The budgets' target Deployments, with their Ready pods grouped by the variant label."""
        custom: Any = client.CustomObjectsApi(self.api)
        core: Any = client.CoreV1Api(self.api)
        apps: Any = client.AppsV1Api(self.api)
        budgets = self._everywhere(lambda: custom.list_cluster_custom_object(GROUP, VERSION, PLURAL),
                                   lambda ns: custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL))
        pods = self._everywhere(core.list_pod_for_all_namespaces, core.list_namespaced_pod)
        deployments = {(d.metadata.namespace, d.metadata.name): d for d in self._everywhere(
            apps.list_deployment_for_all_namespaces, apps.list_namespaced_deployment)}
        by_namespace: dict[str, list[Any]] = {}
        for pod in pods:
            by_namespace.setdefault(pod.metadata.namespace, []).append(pod)
        served = []
        for budget in budgets:
            namespace, target = budget["metadata"]["namespace"], budget["spec"]["targetRef"]["name"]
            deployment = deployments.get((namespace, target))
            if deployment is not None:
                served.append(_workload(namespace, target, deployment, by_namespace.get(namespace, [])))
        return served

    def _workloads_or_last_seen(self) -> list[Workload]:
        """Pods serve on while the API server is away (restarting, or waiting on a stalled etcd): the fleet as
        last seen, not none, whose counters would then stand still and read as load falling to zero."""
        try:
            self._last_seen = self.workloads()
        except (ApiException, urllib3.exceptions.HTTPError) as error:
            log.warning("cannot list the fleet (%s): serving it as last seen", type(error).__name__)
        return self._last_seen

    def tick(self, now: float, seconds: float) -> None:
        """Simulates `seconds` of serving for every workload and updates the pods' series."""
        self.started_at = self.started_at if self.started_at is not None else now
        rate, mean_in, mean_out = self.load_at(now - self.started_at)
        alive: set[tuple[str, str]] = set()
        for workload in self._workloads_or_last_seen():
            workload_rate = workload.rate_override if workload.rate_override is not None else rate
            ready = sum(len(pods) for pods in workload.pods_by_variant.values())
            for variant, pods in workload.pods_by_variant.items():
                alive.update((workload.namespace, pod) for pod in pods)
                share = workload_rate * seconds * len(pods) / max(ready, 1)
                self._serve(workload, variant, pods, share, mean_in, mean_out, seconds)
        with self.collector.lock:
            for key in [key for key in self.collector.pods if key not in alive]:
                del self.collector.pods[key]  # gone pods' series go stale in Prometheus, as they would

    def _serve(self, workload: Workload, variant: str, pods: list[str], arrivals: float, mean_in: float,
               mean_out: float, seconds: float) -> None:
        model = self.model_for(variant)
        if model is None:
            return
        key = (workload.namespace, workload.name, variant)
        load = GroupLoad(ready=np.array([float(len(pods))]), arrivals=np.array([arrivals]),
                         mean_in=np.array([mean_in]), mean_out=np.array([mean_out]),
                         backlog=self.backlog.get(key, 0.0), bin_seconds=seconds)
        outcome = evaluate_group(model, load, self.sample)
        self.backlog[key] = float(outcome.backlog[-1])
        served_per_pod = float(outcome.served[-1]) / len(pods)
        counts = served_per_pod * self.sample.weights
        # the sample's lengths scaled to this moment's means, so the histograms' sums are the tokens served
        prompts = self.sample.inputs * (mean_in / max(self.sample.mean_input, 1e-9))
        generations = self.sample.outputs * (mean_out / max(self.sample.mean_output, 1e-9))
        with self.collector.lock:
            for pod in pods:
                series = self.collector.pods.setdefault((workload.namespace, pod), PodSeries(model=model.name))
                for signal, (name, _) in HISTOGRAMS.items():
                    series.observe(name, np.asarray(outcome.latency(signal)[-1], dtype=float), counts)
                series.observe(LENGTHS["prompt"], prompts, counts)
                series.observe(LENGTHS["generation"], generations, counts)
                series.prompt_tokens += served_per_pod * mean_in
                series.generation_tokens += served_per_pod * mean_out
                series.running = float(outcome.running[-1]) / len(pods)
                series.waiting = float(outcome.backlog[-1]) / len(pods)
                series.kv_usage = float(outcome.kv_usage[-1])
                series.memory_mib = float(outcome.memory_gib[-1]) * 1024


def _workload(namespace: str, name: str, deployment: Any, pods: list[Any]) -> Workload:
    """The Deployment's Ready pods (`pods`: those of its namespace) by variant, and its load override."""
    selector = deployment.spec.selector.match_labels or {}
    by_variant: dict[str, list[str]] = {}
    for pod in pods:
        if selects(selector, pod.metadata.labels) and _ready(pod):
            variant = (pod.metadata.labels or {}).get(VARIANT_KEY, "")
            by_variant.setdefault(variant, []).append(pod.metadata.name)
    annotation = (deployment.metadata.annotations or {}).get(RATE_ANNOTATION)
    return Workload(namespace, name, by_variant, float(annotation) if annotation else None)


def _ready(pod: Any) -> bool:
    conditions = pod.status.conditions or [] if pod.status else []
    return pod.metadata.deletion_timestamp is None and any(
        c.type == "Ready" and c.status == "True" for c in conditions)


def run_forever(twin: Twin, tick_seconds: float, stop: threading.Event) -> None:
    """Ticks until stop is set; a failed tick (API server away) is logged and the next one tries again."""
    last = time.time()
    while not stop.wait(max(0.0, last + tick_seconds - time.time())):
        now = time.time()
        try:
            twin.tick(now, now - last)
        except Exception:
            log.exception("twin tick failed; retrying next tick")
        last = now
