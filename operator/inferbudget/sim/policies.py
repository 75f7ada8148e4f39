"""Scaling policies replayed by the simulator: one interface, and the HPA, KEDA and Knative KPA baselines.

A policy sees what an operator would read from Prometheus each control cycle (`FleetObservation`) and answers
with the fleet it wants (`FleetTarget`). Baselines run one fixed variant: they scale replicas, never swap.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from inferbudget.sim.traces import FloatArray


@dataclass(frozen=True, slots=True)
class LatencyPercentiles:
    """Latency percentiles in milliseconds over the observation window (NaN when no request finished)."""

    p50: float
    p90: float
    p95: float
    p99: float

    def at(self, percentile: float) -> float:
        """The nearest reported percentile at or above the one asked for (what a histogram query gives)."""
        for level, value in ((50, self.p50), (90, self.p90), (95, self.p95), (99, self.p99)):
            if percentile <= level:
                return value
        return self.p99


NO_LATENCY = LatencyPercentiles(math.nan, math.nan, math.nan, math.nan)


def _no_latency(signal: str) -> LatencyPercentiles:
    return NO_LATENCY


@dataclass(frozen=True)
class FleetObservation:
    """One control cycle's metrics, as Prometheus would report them for the served model.

    Series fields hold one value per bin (second) of the last cycle, oldest first: the resolution of a 1 s
    scrape. Latency percentiles are computed on first use (`latency_ms(signal)` or the `*_ms` properties):
    most baselines never read them and they are the expensive part of an observation.
    """

    time_s: float  # end of the observed cycle, seconds since the trace started
    window_s: float  # length of the observed cycle
    request_rate: float  # requests/s arriving over the cycle
    mean_input_tokens: float
    mean_output_tokens: float
    memory_per_replica_gib: float  # highest GPU memory in use on one replica (weights + KV cache in use)
    kv_cache_usage: float  # 0..1, highest over replicas
    variant: str  # the variant the fleet is converging to (the target of a rollout in progress)
    desired_replicas: int  # replicas asked for (spec.replicas)
    ready_replicas: int  # Ready replicas at the end of the cycle, all variants
    ready_by_variant: dict[str, int]
    running_requests: float  # in flight on the servers (vllm:num_requests_running), mean over the cycle
    waiting_requests: float  # queued (vllm:num_requests_waiting) at the end of the cycle
    rollout_in_progress: bool  # pods of another variant than `variant` still exist
    metrics_available: bool = True  # False: Prometheus returned nothing this cycle (scalar fields are stale)
    window_tokens_per_request: float = 0.0  # prompt + generated, over the observation window (0: no requests)
    requests_per_second_series: FloatArray = field(default_factory=lambda: np.zeros(0))
    concurrency_series: FloatArray = field(default_factory=lambda: np.zeros(0))  # running + waiting
    ready_series: FloatArray = field(default_factory=lambda: np.zeros(0))  # Ready replicas
    latency_source: Callable[[str], LatencyPercentiles] = field(default=_no_latency, repr=False, compare=False)
    _latency_cache: dict[str, LatencyPercentiles] = field(default_factory=dict, repr=False, compare=False)
    window_source: Callable[[str], tuple[float, LatencyPercentiles]] | None = field(
        default=None, repr=False, compare=False
    )

    def over_window(self, signal: str) -> tuple[float, LatencyPercentiles]:
        """Requests/s and latency percentiles over the policy's observation window (`observation_window_s`):
        what rate() and a histogram quantile over that window report. The last cycle's without one."""
        if self.window_source is None:
            return self.request_rate, self.latency_ms(signal)
        return self.window_source(signal)

    def latency_ms(self, signal: str) -> LatencyPercentiles:
        """Percentiles of one signal (e2e, ttft, itl, queue) over the requests that arrived in the cycle."""
        if signal not in self._latency_cache:
            self._latency_cache[signal] = self.latency_source(signal)
        return self._latency_cache[signal]

    @property
    def e2e_ms(self) -> LatencyPercentiles:
        return self.latency_ms("e2e")

    @property
    def ttft_ms(self) -> LatencyPercentiles:
        return self.latency_ms("ttft")

    @property
    def itl_ms(self) -> LatencyPercentiles:
        return self.latency_ms("itl")

    @property
    def queue_ms(self) -> LatencyPercentiles:
        return self.latency_ms("queue")


@dataclass(frozen=True, slots=True)
class FleetTarget:
    """The fleet a policy wants: this many replicas of this variant (a different variant means a swap)."""

    variant: str
    replicas: int
    reason: str = ""


@runtime_checkable
class Policy(Protocol):
    """Anything that decides a fleet each control cycle. `interval_s` is how often the runner asks."""

    name: str
    interval_s: float

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget: ...


# --- Kubernetes HorizontalPodAutoscaler -------------------------------------------------------------------


@dataclass(slots=True)
class HpaSettings:
    """autoscaling/v2 defaults: 10% tolerance, 300 s scale-down stabilization, 15 s sync."""

    target_per_replica: float  # average metric value per Ready pod
    tolerance: float = 0.1
    sync_s: float = 15.0
    scale_down_stabilization_s: float = 300.0
    scale_up_stabilization_s: float = 0.0
    # Default scale-up policies: the larger of +100% and +4 pods per 15 s.
    scale_up_percent: float = 100.0
    scale_up_pods: int = 4
    scale_up_period_s: float = 15.0
    # Default scale-down policy: up to 100% of pods per 15 s (after stabilization).
    scale_down_percent: float = 100.0
    scale_down_period_s: float = 15.0


class HorizontalPodAutoscaler:
    """The HPA's control loop on one metric, as kube-controller-manager runs it.

    desired = ceil(ready * value / target) with value the average over Ready pods; nothing changes while the
    ratio is within the tolerance. On a scale-up, pods that are not Ready yet are counted at zero load (the
    HPA's rule for unready pods), so it does not pile up replicas while new ones start. Scale-down uses the
    highest recommendation of the stabilization window; both directions are rate-limited by scaling policies.
    The metric is running + waiting requests per pod unless a subclass reads another one.
    """

    def __init__(
        self, variant: str, settings: HpaSettings, *, replicas_min: int, replicas_max: int, name: str = "hpa"
    ) -> None:
        self.name = name
        self.variant = variant
        self.settings = settings
        self.interval_s = settings.sync_s
        self.replicas_min = replicas_min
        self.replicas_max = replicas_max
        self._recommendations: deque[tuple[float, int]] = deque()
        self._scale_events: deque[tuple[float, int]] = deque()  # (time, replicas before) for rate limits
        self._current = replicas_min

    def metric_total(self, obs: FleetObservation) -> float:
        """The metric summed over pods: running + waiting requests (what vLLM exports)."""
        return obs.running_requests + obs.waiting_requests

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget:
        current = max(obs.desired_replicas, self.replicas_min)
        self._current = current
        if not obs.metrics_available:
            return FleetTarget(self.variant, current, "metrics unavailable: keep replicas")
        proposal = self._proposal(self.metric_total(obs), current, obs.ready_replicas)
        desired = self._stabilize(now, proposal, current)
        desired = self._rate_limit(now, desired, current)
        desired = min(max(desired, self.replicas_min), self.replicas_max)
        if desired != current:
            self._scale_events.append((now, current))
        return FleetTarget(self.variant, desired, f"metric {self.metric_total(obs):.1f} for {current} pods")

    def _proposal(self, total: float, current: int, ready: int) -> int:
        target = self.settings.target_per_replica
        if ready <= 0:
            return current  # no Ready pod reports the metric: the HPA holds
        ratio = total / (ready * target)
        if abs(ratio - 1.0) <= self.settings.tolerance:
            return current
        proposal = math.ceil(ratio * ready)
        if proposal > current and current > ready:
            # Unready pods count as zero load: recompute over all pods and keep if within tolerance.
            ratio_all = total / (current * target)
            if ratio_all <= 1.0 + self.settings.tolerance:
                return current
            proposal = math.ceil(ratio_all * current)
        return proposal

    def _stabilize(self, now: float, proposal: int, current: int) -> int:
        self._recommendations.append((now, proposal))
        horizon = max(self.settings.scale_down_stabilization_s, self.settings.scale_up_stabilization_s)
        while self._recommendations and self._recommendations[0][0] < now - horizon:
            self._recommendations.popleft()
        down_window = [r for t, r in self._recommendations if t >= now - self.settings.scale_down_stabilization_s]
        up_window = [r for t, r in self._recommendations if t >= now - self.settings.scale_up_stabilization_s]
        if proposal < current:
            return min(current, max(down_window))  # the highest recommendation of the window
        if proposal > current:
            return max(current, min(up_window))
        return current

    def _rate_limit(self, now: float, desired: int, current: int) -> int:
        if desired > current:
            base = self._replicas_at(now - self.settings.scale_up_period_s, current)
            limit = max(
                math.ceil(base * (1 + self.settings.scale_up_percent / 100)), base + self.settings.scale_up_pods
            )
            return min(desired, limit)
        if desired < current:
            base = self._replicas_at(now - self.settings.scale_down_period_s, current)
            return max(desired, math.floor(base * (1 - self.settings.scale_down_percent / 100)))
        return desired

    def _replicas_at(self, since: float, current: int) -> int:
        """Replicas at the start of the policy period (the HPA measures each policy against that)."""
        while self._scale_events and self._scale_events[0][0] < since - 3600:
            self._scale_events.popleft()
        earlier = [before for t, before in self._scale_events if t >= since]
        return earlier[0] if earlier else current


# --- KEDA Prometheus scaler ------------------------------------------------------------------------------


@dataclass(slots=True)
class KedaSettings:
    """A KEDA ScaledObject with a Prometheus trigger on the request rate (AverageValue = threshold)."""

    threshold_rps_per_replica: float
    polling_interval_s: float = 30.0
    cooldown_period_s: float = 300.0  # KEDA applies it to scaling to zero (only when min replicas is 0)
    rate_window_s: float = 60.0  # rate(vllm:request_success_total[1m]) in the trigger's query


class KedaPrometheusScaler(HorizontalPodAutoscaler):
    """KEDA drives an HPA with an external metric: a PromQL request rate polled every `polling_interval_s`.

    The HPA keeps its 15 s sync, 10% tolerance and 300 s scale-down stabilization; it sees a metric that KEDA
    refreshes only at each poll and that is itself a 1-minute rate, so it reacts later than a concurrency HPA.
    """

    def __init__(self, variant: str, settings: KedaSettings, *, replicas_min: int, replicas_max: int) -> None:
        hpa = HpaSettings(target_per_replica=settings.threshold_rps_per_replica)
        super().__init__(variant, hpa, replicas_min=replicas_min, replicas_max=replicas_max, name="keda")
        self.keda = settings
        self._rates: deque[tuple[float, float]] = deque()  # (time, requests in that cycle)
        self._polled_value = 0.0
        self._last_poll = -math.inf
        self._last_active = 0.0

    def metric_total(self, obs: FleetObservation) -> float:
        return self._polled_value

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget:
        if obs.metrics_available:
            self._rates.append((now, obs.request_rate * obs.window_s))
            while self._rates and self._rates[0][0] <= now - self.keda.rate_window_s:
                self._rates.popleft()
        if now - self._last_poll >= self.keda.polling_interval_s:
            span = max(min(self.keda.rate_window_s, now), obs.window_s)
            self._polled_value = sum(count for _, count in self._rates) / span
            self._last_poll = now
        if self._polled_value > 0:
            self._last_active = now
        target = super().decide(now, obs)
        if target.replicas == 0 and now - self._last_active < self.keda.cooldown_period_s:
            return FleetTarget(self.variant, max(1, obs.desired_replicas), "cooldown before scaling to zero")
        return target


# --- Knative Pod Autoscaler ------------------------------------------------------------------------------


@dataclass(slots=True)
class KpaSettings:
    """Knative Serving autoscaler defaults (config-autoscaler), with a per-pod concurrency target."""

    target_concurrency: float  # container-concurrency-target-default (soft limit per pod)
    target_utilization: float = 0.7  # container-concurrency-target-percentage
    stable_window_s: float = 60.0
    panic_window_percentage: float = 10.0  # panic window = 6 s
    panic_threshold_percentage: float = 200.0
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    tick_s: float = 2.0


class KnativePodAutoscaler:
    """The KPA: average concurrency over a 60 s stable window and a 6 s panic window, evaluated every tick.

    desired = ceil(avg concurrency / (target * utilization)). When the panic window's desired pods reach 200% of
    Ready pods the KPA panics: it scales on the panic window and never scales down until the stable window has
    passed without panic. Scale-up is capped at 1000x and scale-down at 2x Ready pods per decision. The runner
    asks every `interval_s`; the ticks in between are replayed from the per-second series of the observation.
    """

    def __init__(self, variant: str, settings: KpaSettings, *, replicas_min: int, replicas_max: int) -> None:
        self.name = "kpa"
        self.variant = variant
        self.settings = settings
        self.interval_s = settings.tick_s
        self.replicas_min = replicas_min
        self.replicas_max = replicas_max
        # Per-second concurrency samples, enough for the stable window at one sample per second.
        self._samples: deque[float] = deque(maxlen=max(1, math.ceil(settings.stable_window_s)))
        self._sample_s = 1.0
        self._panic_until = -math.inf
        self._max_panic_pods = 0

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget:
        current = max(obs.desired_replicas, self.replicas_min)
        if not obs.metrics_available:
            return FleetTarget(self.variant, current, "metrics unavailable: keep replicas")
        self._record(now, obs)
        ready = max(obs.ready_replicas, 1)
        stable = self._desired(self.settings.stable_window_s)
        panic = self._desired(self._panic_window_s())
        desired = self._panic_or_stable(now, stable, panic, ready)
        desired = min(desired, math.ceil(ready * self.settings.max_scale_up_rate))
        desired = max(desired, math.floor(ready / self.settings.max_scale_down_rate))
        desired = min(max(desired, self.replicas_min), self.replicas_max)
        mode = "panic" if now < self._panic_until else "stable"
        return FleetTarget(self.variant, desired, f"{mode}: stable {stable}, panic {panic}")

    def _panic_window_s(self) -> float:
        return self.settings.stable_window_s * self.settings.panic_window_percentage / 100.0

    def _record(self, now: float, obs: FleetObservation) -> None:
        series = obs.concurrency_series
        if series.size == 0:
            series = np.asarray([obs.running_requests + obs.waiting_requests])
        self._samples.extend(series.tolist())
        self._sample_s = obs.window_s / series.size

    def _desired(self, window_s: float) -> int:
        """Pods for the average concurrency over the last `window_s` seconds of per-second samples."""
        count = min(len(self._samples), max(1, round(window_s / self._sample_s)))
        if count == 0:
            return 0
        total = sum(itertools.islice(reversed(self._samples), count))  # newest first, as the sum always ran
        per_pod = self.settings.target_concurrency * self.settings.target_utilization
        return math.ceil(total / count / per_pod)

    def _panic_or_stable(self, now: float, stable: int, panic: int, ready: int) -> int:
        if panic / ready >= self.settings.panic_threshold_percentage / 100.0:
            self._panic_until = now + self.settings.stable_window_s
        if now < self._panic_until:
            # In panic the KPA only scales up, to the highest panic recommendation seen.
            self._max_panic_pods = max(self._max_panic_pods, panic, ready)
            return self._max_panic_pods
        self._max_panic_pods = 0
        return stable
