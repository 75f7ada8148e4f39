"""The observer against a real Prometheus scraping vLLM-format metrics from a local exporter."""

import asyncio

import pytest
from tests.integration.conftest import REQUEST_TOKENS, VllmPods, target
from tests.support.prometheus import Prometheus, free_port
from tests.support.scripts import wait_until

from inferbudget.metrics.client import PrometheusClient
from inferbudget.metrics.observe import BudgetMetrics, Target, observe

pytestmark = pytest.mark.integration
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
    # The length histograms' sums and the request count rise on every tick: their rates' ratio is the size of the
    # budget's own finished requests (the other pods' are ten times as big; the token counters, which count
    # in-flight work too, three times), within a tick of 100 in the window (a scrape may fall between one
    # series' increment and the next's).
    assert metrics.tokens_per_request == pytest.approx(sum(REQUEST_TOKENS), rel=0.03)


def test_a_tgi_budget_reads_the_size_of_its_requests_from_the_length_histograms(
        real_prometheus: Prometheus, pods: VllmPods) -> None:
    tgi = target(key="serving/tgi", pods=frozenset({"tgi-0"}), server="tgi", memory_signal=None)

    def ready() -> BudgetMetrics | None:
        metrics = observe_once(real_prometheus.url, [tgi])[0]["serving/tgi"]
        return metrics if metrics.available and metrics.tokens_per_request is not None else None

    metrics = wait_until("two scrapes of the exporter", ready, 60)
    assert metrics.tokens_per_request == pytest.approx(sum(REQUEST_TOKENS), rel=0.03)  # within a tick, as above
    assert metrics.latency_ms == pytest.approx(975.0)  # every request 0.8 s: the (0.5, 1.0] bucket's p95
    assert metrics.queue == 1


def test_only_the_running_variants_pods_tell_its_memory(real_prometheus: Prometheus, pods: VllmPods) -> None:
    # llama-0 (18 GiB) is a pod of the variant swapped out, still draining: its requests count, its memory not.
    swapped = target(variant_pods=frozenset({"llama-1"}))

    def ready() -> BudgetMetrics | None:
        metrics = observe_once(real_prometheus.url, [swapped])[0]["serving/llama"]
        return metrics if metrics.pods_reporting == 2 and metrics.memory_per_replica_bytes else None

    metrics = wait_until("two scrapes of the exporter", ready, 60)
    assert metrics.memory_per_replica_bytes == 16 * 2**30
    assert metrics.queue == 5  # both pods' queues


def test_queries_per_cycle_do_not_grow_with_budgets(real_prometheus: Prometheus, pods: VllmPods) -> None:
    many = [target(key=f"serving/b{i}", pods=frozenset({f"llama-{i % 2}"})) for i in range(50)]
    _, one_budget = observe_once(real_prometheus.url, many[:1])
    _, fifty_budgets = observe_once(real_prometheus.url, many)
    assert one_budget == fifty_budgets == 6  # latency, rate, token rate, queue, memory, freshness


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
