"""The pods of each namespace, listed once per cycle and shared by the reconciles of its budgets.

A reconcile needs its target's pods, by name, to pick their series out of the shared Prometheus snapshot.
Listing them by the target's selector at every reconcile cost one LIST per budget per cycle (1,000 for 1,000
budgets, bench/scale.py); one LIST of a namespace's pods (metadata only) serves every budget in it, each picking
its pods by its selector here. Not a kopf index of every pod: kopf readies an index one object at a time and
wakes every waiting worker at each, so a start-up with 3,000 pods spent minutes in kopf before the first
reconcile. A list is reused for most of a cycle: a pod created since shows up on the next cycle, as its
samples do in Prometheus a scrape after it starts.
"""

import asyncio
import time
from collections.abc import Callable

from inferbudget.actuate.workload import VARIANT_KEY, selects

PodLabels = tuple[str, dict[str, str]]  # a pod's name and labels
REUSE_CYCLES = 0.9  # a namespace's list serves its reconciles for this much of a cycle, then it is listed again
DROP_AFTER_CYCLES = 3.0  # a list nobody asked to renew for this long is dropped


def selected(pods: list[PodLabels], selector: dict[str, str]) -> dict[str, str | None]:
    """The pods that a workload's matchLabels select (none for an empty selector, see workload.selects), by
    name, with each one's variant label (None: it has none)."""
    return {name: labels.get(VARIANT_KEY) for name, labels in pods if selects(selector, labels)}


class NamespacePods:
    def __init__(self, list_pods: Callable[[str], list[PodLabels]], cycle_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._list_pods = list_pods  # blocking (the Kubernetes client): run in a thread
        self._cycle = cycle_seconds
        self._clock = clock
        self._lists: dict[str, tuple[float, list[PodLabels]]] = {}  # namespace -> (when listed, its pods)
        self._locks: dict[str, asyncio.Lock] = {}  # one LIST of a namespace at a time; the others wait for it

    async def selected(self, namespace: str, selector: dict[str, str]) -> dict[str, str | None]:
        """The namespace's pods that the selector selects, by name, with their variant labels."""
        if not selector:
            return {}  # no LIST for a selector that selects nothing
        return selected(await self._pods(namespace), selector)

    async def _pods(self, namespace: str) -> list[PodLabels]:
        async with self._locks.setdefault(namespace, asyncio.Lock()):
            listed = self._lists.get(namespace)
            if listed is None or self._clock() - listed[0] >= self._cycle * REUSE_CYCLES:
                started = self._clock()
                listed = started, await asyncio.to_thread(self._list_pods, namespace)
                self._lists[namespace] = listed
                self._drop_unused(started)
            return listed[1]

    def _drop_unused(self, now: float) -> None:
        """Forgets namespaces no reconcile asked for in DROP_AFTER_CYCLES (their budgets are gone)."""
        for namespace, (listed_at, _) in list(self._lists.items()):
            if now - listed_at >= self._cycle * DROP_AFTER_CYCLES and not self._locks[namespace].locked():
                del self._lists[namespace], self._locks[namespace]
