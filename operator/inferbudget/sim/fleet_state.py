"""The replicas of a simulated Deployment: pods per variant, when each becomes Ready, and rolling updates.

Scaling within a variant adds pods (Ready after the variant's start-up time) or removes them, not-Ready pods
first as a ReplicaSet does. A target with another variant starts a rolling update with maxUnavailable 0 and a
configurable maxSurge: new pods are created up to the surge, and old pods are removed only while the Ready
count stays at or above the target. The Deployment controller's reaction to pods turning Ready is taken at
each control step, so a rollout advances in steps of the control interval.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from inferbudget.sim.traces import FloatArray


@dataclass(slots=True)
class FleetState:
    """Pods of each variant, as the times they become (or became) Ready, sorted."""

    target_variant: str
    target_replicas: int
    max_surge_fraction: float = 0.25
    pods: dict[str, list[float]] = field(default_factory=dict)
    version: int = 0  # bumped whenever a pod is added or removed

    def _signature(self) -> tuple[tuple[str, int], ...]:
        return tuple((name, len(times)) for name, times in self.pods.items())

    @classmethod
    def warm(cls, variant: str, replicas: int, max_surge_fraction: float) -> FleetState:
        """A fleet already serving: `replicas` Ready pods of `variant` at time zero."""
        return cls(variant, replicas, max_surge_fraction, {variant: [0.0] * replicas})

    def apply(self, now: float, variant: str, replicas: int, startup_s: float) -> None:
        """Steer the fleet towards `replicas` pods of `variant` (one reconcile of the Deployment controller)."""
        replicas = max(replicas, 0)
        unchanged = variant == self.target_variant and replicas == self.target_replicas
        if unchanged and not self.rollout_in_progress() and len(self.pods.get(variant, ())) == replicas:
            return  # nothing to do: the common case, kept cheap
        self.target_variant = variant
        self.target_replicas = replicas
        before = self._signature()
        self.pods.setdefault(variant, [])
        for _ in range(2):  # removing old pods can make room for new ones in the same reconcile
            self._reconcile(now, startup_s)
        self.pods = {name: times for name, times in self.pods.items() if times or name == variant}
        if self._signature() != before:
            self.version += 1

    def _reconcile(self, now: float, startup_s: float) -> None:
        new = self.pods[self.target_variant]
        old_variants = [name for name in self.pods if name != self.target_variant and self.pods[name]]
        if not old_variants:
            self._scale(new, self.target_replicas, now, startup_s)
            return
        old_count = sum(len(self.pods[name]) for name in old_variants)
        surge = max(1, math.ceil(self.max_surge_fraction * self.target_replicas))
        self._scale(
            new, min(self.target_replicas, self.target_replicas + surge - old_count), now, startup_s, grow_only=True
        )
        if len(new) > self.target_replicas:
            self._scale(new, self.target_replicas, now, startup_s)
        self._retire_old(now, old_variants)

    def _retire_old(self, now: float, old_variants: list[str]) -> None:
        for name in old_variants:  # not-Ready old pods serve nobody: remove them first
            self.pods[name] = [t for t in self.pods[name] if t <= now]
        ready_new = sum(1 for t in self.pods[self.target_variant] if t <= now)
        ready_old = sum(len(self.pods[name]) for name in old_variants)
        removable = max(0, ready_new + ready_old - self.target_replicas)
        for name in old_variants:
            take = min(removable, len(self.pods[name]))
            del self.pods[name][len(self.pods[name]) - take :]
            removable -= take

    @staticmethod
    def _scale(pods: list[float], count: int, now: float, startup_s: float, grow_only: bool = False) -> None:
        count = max(count, 0)
        if len(pods) < count:
            pods.extend([now + startup_s] * (count - len(pods)))
        elif len(pods) > count and not grow_only:
            pods.sort()
            del pods[count:]  # the latest to become Ready go first
        pods.sort()

    def total_pods(self) -> int:
        return sum(len(times) for times in self.pods.values())

    def pods_of(self, variant: str) -> int:
        return len(self.pods.get(variant, []))

    def ready_at(self, times: FloatArray) -> dict[str, FloatArray]:
        """Ready pods of each variant at each of the given times."""
        return {
            name: np.searchsorted(np.asarray(pods, dtype=np.float64), times, side="right").astype(np.float64)
            for name, pods in self.pods.items()
        }

    def rollout_in_progress(self) -> bool:
        return any(pods for name, pods in self.pods.items() if name != self.target_variant)
