"""FleetObserver: how many query batches a cycle costs, whatever the number of budgets."""

import asyncio
from collections.abc import Callable

import pytest

from inferbudget.metrics.client import PrometheusClient, Sample
from inferbudget.metrics.observe import Target
from inferbudget.observer import FleetObserver

QUERIES_PER_BATCH = 4  # vLLM, no memory signal: latency buckets, request rate, queue, freshness


class CountingPrometheus(PrometheusClient):
    """Answers every query with one series per pod of the fleet, and counts the queries."""

    def __init__(self, pods: dict[str, list[str]]) -> None:
        super().__init__("http://prometheus.invalid")
        self.pods = pods  # namespace -> pods

    async def query(self, promql: str, at: float | None = None) -> list[Sample]:
        self.queries_sent += 1
        await asyncio.sleep(0)  # a real query yields to the other reconciles
        le = [{"le": "1.0"}, {"le": "+Inf"}] if "_bucket" in promql else [{}]
        return [Sample({"namespace": namespace, "pod": pod, **extra}, 2.0, 1000.0)
                for namespace, pods in self.pods.items() for pod in pods for extra in le]


def target(index: int) -> Target:
    return Target(key=f"ns/b{index}", namespace="ns", pods=frozenset({f"b{index}-0", f"b{index}-1"}),
                  server="vllm", signal="e2e", quantile=0.95, window_seconds=60)


def reconcile_all(observer: FleetObserver, targets: list[Target], cycles: int = 1,
                  between: Callable[[], None] = lambda: None) -> list[float | None]:
    """Every budget's reconcile at once, as kopf starts their timers at start-up; `cycles` times over."""
    async def go() -> list[float | None]:
        for cycle in range(cycles):
            if cycle:
                between()
            metrics = await asyncio.gather(*(observer.metrics_for(t, None) for t in targets))
        return [m.requests_per_second for m in metrics]
    return asyncio.run(go())


def test_budgets_reconciled_together_at_start_up_share_their_query_batches() -> None:
    targets = [target(i) for i in range(50)]
    prometheus = CountingPrometheus({"ns": [pod for t in targets for pod in sorted(t.pods)]})
    observer = FleetObserver(lambda _: prometheus, cycle_seconds=30, clock=lambda: 0.0)

    rates = reconcile_all(observer, targets)

    assert rates == [4.0] * 50  # each budget sums the rates of its own two pods only
    # the first reconcile's batch (the only budget seen then), and one for all the others that queued
    # behind it; not a batch per budget
    assert prometheus.queries_sent == 2 * QUERIES_PER_BATCH


@pytest.mark.parametrize("count", [10, 100])
def test_a_cycle_costs_one_batch_for_any_number_of_budgets(count: int) -> None:
    targets = [target(i) for i in range(count)]
    prometheus = CountingPrometheus({"ns": [pod for t in targets for pod in sorted(t.pods)]})
    now, sent = [0.0], []
    observer = FleetObserver(lambda _: prometheus, cycle_seconds=30, clock=lambda: now[0])

    def next_cycle() -> None:
        sent.append(prometheus.queries_sent)
        now[0] += 30

    assert reconcile_all(observer, targets, cycles=2, between=next_cycle) == [4.0] * count
    assert prometheus.queries_sent - sent[0] == QUERIES_PER_BATCH
