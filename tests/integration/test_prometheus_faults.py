"""The observer through a proxy that makes a real Prometheus misbehave: every fault is "no data" with a reason
the operator can report, never a number it could act on, and it recovers by itself once Prometheus does."""

import asyncio
from collections.abc import Iterator

import pytest
from tests.integration.conftest import VllmPods, target
from tests.support.faulty_proxy import FaultyProxy
from tests.support.prometheus import Prometheus, free_port
from tests.support.scripts import wait_until

from inferbudget.metrics.client import PrometheusClient, RetryPolicy
from inferbudget.metrics.observe import BudgetMetrics, Target, observe

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(real_prometheus: Prometheus) -> Iterator[FaultyProxy]:
    server = FaultyProxy(real_prometheus.url, free_port())
    yield server
    server.stop()


def observe_through(proxy: FaultyProxy, budget: Target) -> BudgetMetrics:
    async def go() -> BudgetMetrics:
        client = PrometheusClient(proxy.url, timeout=2.0, retry=RetryPolicy(attempts=2, base_delay=0.01))
        try:
            return (await observe(client, [budget]))[budget.key]
        finally:
            await client.close()
    return asyncio.run(go())


@pytest.mark.parametrize(("mode", "problem"), [
    ("error", "HTTP 503: injected: unavailable"),
    ("bad-query", "Prometheus refused the query (400): injected: parse error"),
    ("garbage", "answer is not JSON"),
    ("timeout", "timed out after 2s"),
    ("empty", "no request-rate series"),
    ("nan", "no request-rate series"),
    ("inf", "no request-rate series"),
])
def test_each_fault_is_missing_data_with_a_reason_then_recovery(
        proxy: FaultyProxy, pods: VllmPods, mode: str, problem: str) -> None:
    budget = target()
    wait_until("metrics through the proxy", lambda: observe_through(proxy, budget).available, 60)
    proxy.mode, proxy.delay = mode, 3.0
    faulty = observe_through(proxy, budget)
    assert not faulty.available
    assert faulty.requests_per_second is None and faulty.latency_ms is None, "never a number from a fault"
    assert any(problem in reason for reason in faulty.problems), faulty.problems
    proxy.mode = "pass"  # recovers by itself (polled: a loaded machine may answer the first query late)
    wait_until("recovery", lambda: observe_through(proxy, budget).available, 60)


def test_transient_errors_are_retried_within_one_cycle(proxy: FaultyProxy, pods: VllmPods) -> None:
    budget = target()
    wait_until("metrics through the proxy", lambda: observe_through(proxy, budget).available, 60)
    proxy.mode, before = "error", proxy.requests
    assert not observe_through(proxy, budget).available
    assert proxy.requests - before == 6 * 2, "each of the 6 queries tried twice (RetryPolicy(attempts=2))"
