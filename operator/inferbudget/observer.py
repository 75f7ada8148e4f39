"""One Prometheus observation per cycle for all budgets, shared by their reconciles.

kopf runs each budget's timer on its own schedule; the first reconcile that finds the snapshot older than a
cycle refreshes it for every budget seen so far (one batch of queries, see metrics.observe), and the others
use it. Budgets not in the snapshot yet (just created, or all of them at start-up) get one batch between
them. The snapshot is a cache that a restart rebuilds: no decision depends on it surviving.
"""

import asyncio
import time
from collections.abc import Callable

from inferbudget.metrics.client import PrometheusClient
from inferbudget.metrics.observe import BudgetMetrics, Target, observe
from inferbudget.metrics.source import Source


class FleetObserver:
    def __init__(self, client_for: Callable[[Source], PrometheusClient], cycle_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._client_for = client_for
        self._cycle = cycle_seconds
        self._clock = clock
        self._targets: dict[str, tuple[Target, Source]] = {}
        self._snapshot: dict[str, BudgetMetrics] = {}
        self._taken_at = float("-inf")
        self._lock = asyncio.Lock()

    def forget(self, key: str) -> None:
        self._targets.pop(key, None)
        self._snapshot.pop(key, None)

    async def metrics_for(self, target: Target, source: Source) -> BudgetMetrics:
        self._targets[target.key] = (target, source)
        async with self._lock:
            if self._clock() - self._taken_at >= self._cycle * 0.9:
                await self._refresh()
            elif target.key not in self._snapshot:
                self._snapshot.update(await self._observe(self._unobserved()))
        return self._snapshot[target.key]

    def _unobserved(self) -> list[tuple[Target, Source]]:
        """Every budget seen but not in the snapshot yet: at start-up (or when many budgets are created at
        once) their reconciles queue up behind the lock, and one batch then serves all of them instead of a
        batch each."""
        return [entry for key, entry in self._targets.items() if key not in self._snapshot]

    async def _refresh(self) -> None:
        self._taken_at = self._clock()
        self._snapshot = await self._observe(list(self._targets.values()))

    async def _observe(self, targets: list[tuple[Target, Source]]) -> dict[str, BudgetMetrics]:
        by_source: dict[Source, list[Target]] = {}
        for target, source in targets:
            by_source.setdefault(source, []).append(target)
        results = await asyncio.gather(*(observe(self._client_for(source), group)
                                         for source, group in by_source.items()))
        merged: dict[str, BudgetMetrics] = {}
        for result in results:
            merged.update(result)
        return merged
