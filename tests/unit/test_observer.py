"""FleetObserver: how many query batches a cycle costs, whatever the number of budgets, and that a refresh
does not hold up the reconciles."""

import asyncio

import pytest

from inferbudget.metrics.client import PrometheusClient, Sample
from inferbudget.metrics.observe import Target
from inferbudget.metrics.source import DEFAULT
from inferbudget.observer import MAX_AGE_CYCLES, FleetObserver

QUERIES_PER_BATCH = 5  # vLLM, no memory signal: latency buckets, request rate, token rate, queue, freshness


class CountingPrometheus(PrometheusClient):
    """Answers every query with one series per pod of the fleet, and counts the queries."""

    def __init__(self, pods: dict[str, list[str]]) -> None:
        super().__init__("http://prometheus.invalid")
        self.pods = pods  # namespace -> pods
        self.value = 2.0  # every series' value
        self.answering = asyncio.Event()  # cleared: queries wait (a slow Prometheus)
        self.answering.set()

    async def query(self, promql: str, at: float | None = None) -> list[Sample]:
        self.queries_sent += 1
        await asyncio.sleep(0)  # a real query yields to the other reconciles
        await self.answering.wait()
        le = [{"le": "1.0"}, {"le": "+Inf"}] if "_bucket" in promql else [{}]
        return [Sample((("namespace", namespace), ("pod", pod), *extra.items()), self.value, 1000.0)
                for namespace, pods in self.pods.items() for pod in pods for extra in le]


def target(index: int) -> Target:
    return Target(key=f"ns/b{index}", namespace="ns", pods=frozenset({f"b{index}-0", f"b{index}-1"}),
                  server="vllm", signal="e2e", quantile=0.95, window_seconds=60)


def reconcile_all(observer: FleetObserver, targets: list[Target]) -> list[float | None]:
    """Every budget's reconcile at once, as kopf starts their timers at start-up."""
    async def go() -> list[float | None]:
        metrics = await asyncio.gather(*(observer.metrics_for(t, DEFAULT) for t in targets))
        return [m.requests_per_second for m in metrics]
    return asyncio.run(go())


def test_budgets_reconciled_together_at_start_up_share_their_query_batches() -> None:
    targets = [target(i) for i in range(50)]
    prometheus = CountingPrometheus({"ns": [pod for t in targets for pod in sorted(t.pods)]})
    observer = FleetObserver(lambda _: prometheus, cycle_seconds=30, clock=lambda: 0.0)

    rates = reconcile_all(observer, targets)

    assert rates == [4.0] * 50  # each budget sums the rates of its own two pods only
    # one batch, started by the first reconcile and run once the others had been seen: not a batch per budget
    assert prometheus.queries_sent == QUERIES_PER_BATCH


@pytest.mark.parametrize("count", [10, 100])
def test_a_cycle_costs_one_batch_for_any_number_of_budgets(count: int) -> None:
    targets = [target(i) for i in range(count)]
    prometheus = CountingPrometheus({"ns": [pod for t in targets for pod in sorted(t.pods)]})
    now = [0.0]
    observer = FleetObserver(lambda _: prometheus, cycle_seconds=30, clock=lambda: now[0])

    async def go() -> None:
        await asyncio.gather(*(observer.metrics_for(t, DEFAULT) for t in targets))
        sent = prometheus.queries_sent
        now[0] += 30
        await asyncio.gather(*(observer.metrics_for(t, DEFAULT) for t in targets))
        await refreshed(observer)
        assert prometheus.queries_sent - sent == QUERIES_PER_BATCH

    asyncio.run(go())


async def refreshed(observer: FleetObserver) -> None:
    """Until the background refresh has finished (each pass lets it run a step)."""
    while observer.refreshing:
        await asyncio.sleep(0)


def test_reconciles_are_served_the_last_snapshot_while_its_refresh_waits_for_prometheus() -> None:
    targets = [target(i) for i in range(20)]
    prometheus = CountingPrometheus({"ns": [pod for t in targets for pod in sorted(t.pods)]})
    now = [0.0]
    observer = FleetObserver(lambda _: prometheus, cycle_seconds=30, clock=lambda: now[0])

    async def go() -> None:
        await asyncio.gather(*(observer.metrics_for(t, DEFAULT) for t in targets))
        now[0] += 30  # a cycle later: due for a refresh, which Prometheus is slow to answer
        prometheus.answering.clear()
        prometheus.value = 5.0
        served = await asyncio.gather(*(observer.metrics_for(t, DEFAULT) for t in targets))
        assert [m.requests_per_second for m in served] == [4.0] * 20  # the last snapshot, without waiting
        assert observer.refreshing
        prometheus.answering.set()
        await refreshed(observer)
        fresh = await asyncio.gather(*(observer.metrics_for(t, DEFAULT) for t in targets))
        assert [m.requests_per_second for m in fresh] == [10.0] * 20

    asyncio.run(go())


def test_a_snapshot_older_than_its_bound_is_not_served_but_waited_for() -> None:
    budget = target(0)
    prometheus = CountingPrometheus({"ns": sorted(budget.pods)})
    now = [0.0]
    observer = FleetObserver(lambda _: prometheus, cycle_seconds=30, clock=lambda: now[0])

    async def go() -> float | None:
        await observer.metrics_for(budget, DEFAULT)
        now[0] += 30 * MAX_AGE_CYCLES  # e.g. the operator's loop was stalled for two cycles
        prometheus.value = 5.0
        return (await observer.metrics_for(budget, DEFAULT)).requests_per_second

    assert asyncio.run(go()) == 10.0
