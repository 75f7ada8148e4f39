"""One Prometheus observation per cycle for all budgets, shared by their reconciles.

kopf runs each budget's timer on its own schedule; the first reconcile that finds the snapshot older than a
cycle starts its refresh for every budget seen so far (one batch of queries, see metrics.observe), in the
background: while it runs, reconciles are answered from the last snapshot (stale-while-revalidate), for a
refresh of thousands of pods takes seconds and would otherwise hold up every reconcile meanwhile. An entry
older than MAX_AGE_CYCLES cycles is not served: its reconcile waits for the refresh. Serving an older entry
does not hide its age: the engine judges staleness by the time of the samples (newest_sample_time), not by
when they were read. Budgets not in the snapshot yet (just created, or all of them at start-up) get one batch
between them. The snapshot is a cache that a restart rebuilds: no decision depends on it surviving.
"""

import asyncio
import logging
import time
from collections.abc import Callable

from inferbudget.metrics.client import PrometheusClient
from inferbudget.metrics.observe import BudgetMetrics, Target, observe
from inferbudget.metrics.source import Source

MAX_AGE_CYCLES = 2.0  # an entry read longer ago than this is not served while a refresh runs: it is waited for
REFRESH_AFTER_CYCLES = 0.9  # a snapshot this old is refreshed (a little early: kopf's timers drift)

log = logging.getLogger(__name__)


class FleetObserver:
    def __init__(self, client_for: Callable[[Source], PrometheusClient], cycle_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self._client_for = client_for
        self._cycle = cycle_seconds
        self._clock = clock
        self._targets: dict[str, tuple[Target, Source]] = {}
        self._snapshot: dict[str, tuple[float, BudgetMetrics]] = {}  # key -> (when its batch was started, metrics)
        self._refreshed_at = float("-inf")  # when the last refresh was started
        self._refresh: asyncio.Task[None] | None = None
        self._batch = asyncio.Lock()  # budgets new to the snapshot queue here for one batch between them

    def forget(self, key: str) -> None:
        self._targets.pop(key, None)
        self._snapshot.pop(key, None)

    async def metrics_for(self, target: Target, source: Source) -> BudgetMetrics:
        self._targets[target.key] = (target, source)
        refresh = self._refresh_if_due()
        entry = self._snapshot.get(target.key)
        if entry is not None and self._clock() - entry[0] < self._cycle * MAX_AGE_CYCLES:
            return entry[1]  # current, or the last one while its refresh runs
        if refresh is not None:  # none to serve, or too old: wait for the refresh (not cancelled with us)
            await asyncio.shield(refresh)
        async with self._batch:
            if target.key not in self._snapshot:
                started = self._clock()
                self._store(await self._observe(self._unobserved()), started)
        return self._snapshot[target.key][1]

    @property
    def refreshing(self) -> bool:
        """A refresh runs in the background (reconciles are served the last snapshot meanwhile)."""
        return self._refresh is not None

    def _refresh_if_due(self) -> "asyncio.Task[None] | None":
        """The running refresh; one is started when the last one was started a cycle ago or more."""
        if self._refresh is None and self._clock() - self._refreshed_at >= self._cycle * REFRESH_AFTER_CYCLES:
            self._refreshed_at = self._clock()
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_all(self._refreshed_at))
        return self._refresh

    async def _refresh_all(self, started: float) -> None:
        try:
            self._store(await self._observe(list(self._targets.values())), started)
        except Exception:  # a bug, not Prometheus (its failures are BudgetMetrics problems): the next cycle retries
            log.exception("refreshing the Prometheus snapshot failed")
        finally:
            self._refresh = None

    def _store(self, observed: dict[str, BudgetMetrics], started: float) -> None:
        """Entries of budgets forgotten meanwhile are dropped; the others are kept until observed again."""
        self._snapshot.update({key: (started, metrics) for key, metrics in observed.items() if key in self._targets})

    def _unobserved(self) -> list[tuple[Target, Source]]:
        """Every budget seen but not in the snapshot yet: at start-up (or when many budgets are created at
        once) their reconciles queue up behind the lock, and one batch then serves all of them instead of a
        batch each."""
        return [entry for key, entry in self._targets.items() if key not in self._snapshot]

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
