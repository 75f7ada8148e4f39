"""The observer against a real Prometheus scraping vLLM-format metrics from a local exporter."""

import asyncio
import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tests.support.prometheus import Prometheus, free_port
from tests.support.scripts import wait_until

from inferbudget.metrics.client import PrometheusClient
from inferbudget.metrics.observe import BudgetMetrics, Target, observe
from inferbudget.telemetry import serve_metrics

pytestmark = pytest.mark.integration
BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class VllmPods:
    """Pods exporting vLLM's metric names with namespace and pod labels, as a scraped fleet would."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "pod"]
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "e2e", labels, buckets=BUCKETS,
                             registry=self.registry)
        self.running = Gauge("vllm:num_requests_running", "running", labels, registry=self.registry)
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=self.registry)
        self.fb_used = Gauge("DCGM_FI_DEV_FB_USED", "MiB", labels, registry=self.registry)
        self.ticks = Counter("ticks", "exporter ticks", registry=self.registry)
        self.port = free_port()
        self.server = serve_metrics(self.registry, "127.0.0.1", self.port)
        self.stopping = threading.Event()
        self.load = threading.Thread(target=self._serve_requests, daemon=True)
        self.load.start()

    def _serve_requests(self) -> None:
        """Keeps counters rising so rates exist: every pod serves a request each tick, at its latency."""
        latency = {("serving", "llama-0"): 0.8, ("serving", "llama-1"): 0.8, ("serving", "other-0"): 7.0,
                   ("elsewhere", "llama-0"): 7.0}
        while not self.stopping.wait(0.05):
            for (namespace, pod), seconds in latency.items():
                self.e2e.labels(namespace, pod).observe(seconds)
                self.running.labels(namespace, pod).set(4)
            self.ticks.inc()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()


@pytest.fixture
def pods(real_prometheus: Prometheus) -> Iterator[VllmPods]:
    exporter = VllmPods()
    exporter.waiting.labels("serving", "llama-0").set(3)
    exporter.waiting.labels("serving", "llama-1").set(2)
    exporter.fb_used.labels("serving", "llama-0").set(18432)
    exporter.fb_used.labels("serving", "llama-1").set(16384)
    real_prometheus.scrape(f"127.0.0.1:{exporter.port}")
    yield exporter
    exporter.stop()


def target(**overrides: object) -> Target:
    fields: dict[str, object] = dict(key="serving/llama", namespace="serving", pods=frozenset({"llama-0", "llama-1"}),
                                     server="vllm", signal="e2e", quantile=0.95, window_seconds=5, memory_signal="gpu")
    return Target(**(fields | overrides))  # type: ignore[arg-type]


def observe_once(url: str, targets: list[Target]) -> tuple[dict[str, BudgetMetrics], int]:
    async def go() -> tuple[dict[str, BudgetMetrics], int]:
        client = PrometheusClient(url)
        try:
            return await observe(client, targets), client.queries_sent
        finally:
            await client.close()
    return asyncio.run(go())


def test_a_budget_sees_only_its_pods_with_exact_percentile_memory_and_queue(
        real_prometheus: Prometheus, pods: VllmPods) -> None:
    def ready() -> BudgetMetrics | None:
        metrics = observe_once(real_prometheus.url, [target()])[0]["serving/llama"]
        full = metrics.available and metrics.pods_reporting == 2 and metrics.latency_ms is not None
        return metrics if full and metrics.memory_per_replica_bytes else None

    metrics = wait_until("two scrapes of the exporter", ready, 60)
    # Every request of the budget's pods took 0.8 s, inside the (0.5, 1.0] bucket: Prometheus's
    # interpolation puts p95 at 0.5 + 0.5 * 0.95 s. The 7 s pods (another workload, another namespace)
    # would push it past 5 s if they leaked in.
    assert metrics.latency_ms == pytest.approx(975.0)
    assert metrics.requests_per_second is not None and metrics.requests_per_second > 0
    assert metrics.queue == 5
    assert metrics.memory_per_replica_bytes == 18 * 2**30
    assert metrics.newest_sample_time is not None


def test_queries_per_cycle_do_not_grow_with_budgets(real_prometheus: Prometheus, pods: VllmPods) -> None:
    many = [target(key=f"serving/b{i}", pods=frozenset({f"llama-{i % 2}"})) for i in range(50)]
    _, one_budget = observe_once(real_prometheus.url, many[:1])
    _, fifty_budgets = observe_once(real_prometheus.url, many)
    assert one_budget == fifty_budgets == 5  # latency, rate, queue, memory, freshness


def test_pods_without_series_are_no_data_not_zero(real_prometheus: Prometheus, pods: VllmPods) -> None:
    ghost = target(key="serving/ghost", pods=frozenset({"ghost-0"}))
    metrics = observe_once(real_prometheus.url, [ghost])[0]["serving/ghost"]
    assert not metrics.available and metrics.requests_per_second is None
    assert "no request-rate series" in metrics.problems[0]


def test_unreachable_prometheus_is_a_problem_for_every_budget() -> None:
    observed, _ = observe_once(f"http://127.0.0.1:{free_port()}", [target(), target(key="serving/other")])
    assert set(observed) == {"serving/llama", "serving/other"}
    assert all(not m.available and "cannot connect" in m.problems[0] for m in observed.values())


def test_unsupported_signal_is_reported_for_that_budget_only(real_prometheus: Prometheus, pods: VllmPods) -> None:
    observed, _ = observe_once(real_prometheus.url, [target(key="serving/tgi", server="tgi", signal="ttft")])
    assert observed["serving/tgi"].problems == ("server tgi exports no ttft latency; use one of e2e, itl, queue",)
