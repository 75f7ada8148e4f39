"""Replay a trace through the fleet model under a policy, and account for cost, SLO and churn.

The loop runs once per control interval (the policy's `interval_s`): the policy reads the previous interval's
observation and sets a target; the fleet applies it (new pods turn Ready after the variant's start-up time, a
variant change rolls out); then the interval's bins are evaluated at once by `fleet.evaluate_group`, one call
per variant present, with each variant's backlog carried into the next interval.

SLO accounting is exact for the model: a request meets the SLO when its latency on the budget's signal is
within the threshold, so the request attainment is the request-weighted share within it, and a 1-minute window
meets the budget when the share of its requests within the threshold reaches the budget's percentile (the
window's percentile is within the threshold exactly then).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from inferbudget.sim.budget import SimBudget
from inferbudget.sim.fleet import (
    FleetProfile,
    GroupLoad,
    GroupOutcome,
    LengthSample,
    VariantModel,
    evaluate_group,
    length_sample,
)
from inferbudget.sim.fleet_state import FleetState
from inferbudget.sim.policies import NO_LATENCY, FleetObservation, FleetTarget, LatencyPercentiles, Policy
from inferbudget.sim.traces import FloatArray, Trace

ProgressCallback = Callable[[float, str], None]
_PERCENTILES = np.asarray([0.50, 0.90, 0.95, 0.99])


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """How a replay runs. `interval_s` None: the policy's own interval."""

    interval_s: float | None = None
    window_s: float = 60.0  # SLO windows
    max_surge_fraction: float = 0.25  # rolling update maxSurge (maxUnavailable is 0)
    initial: FleetTarget | None = None  # fleet Ready at t=0; None: the policy's first decision
    abort_above_violations: float | None = None  # stop once this many requests missed the SLO
    abort_above_cost: float | None = None  # stop once the run has cost more than this
    progress: ProgressCallback | None = None
    progress_every_s: float = 6 * 3600.0  # simulated time between progress calls
    keep_series: bool = True
    lookahead_s: float = 60.0  # bins evaluated ahead of the policy; re-evaluated when readiness changes


@dataclass(frozen=True, slots=True)
class ReplaySeries:
    """Per-bin time series of a run, for plots (times are bin starts in seconds)."""

    time_s: FloatArray
    request_rate: FloatArray
    desired_replicas: FloatArray
    ready_replicas: FloatArray
    pods: FloatArray  # billed pods, all variants
    variant_index: FloatArray  # index into `variant_names` of the target variant
    latency_s: FloatArray  # the budget percentile of the budget signal in each bin (NaN without requests)
    variant_names: tuple[str, ...]
    threshold_s: float
    percentile: float
    signal: str


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """What one policy did on one trace."""

    policy: str
    trace: str
    variants_used: tuple[str, ...]
    cost: float
    gpu_hours: float
    slo_attainment_requests: float
    slo_attainment_windows: float
    mean_quality: float
    scale_events: int
    swaps: int
    breach_seconds: float
    total_requests: float
    duration_s: float
    aborted: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    series: ReplaySeries | None = None

    def summary(self) -> dict[str, Any]:
        """The fields `inferbudget simulate --json` prints per policy (attainments as fractions)."""
        return {
            "policy": self.policy,
            "cost": round(self.cost, 4),
            "gpu_hours": round(self.gpu_hours, 4),
            "slo_attainment_requests": round(self.slo_attainment_requests, 6),
            "slo_attainment_windows": round(self.slo_attainment_windows, 6),
            "mean_quality": round(self.mean_quality, 6),
            "scale_events": self.scale_events,
            "swaps": self.swaps,
            "breach_seconds": round(self.breach_seconds, 1),
        }

    def meets(self, attainment_target: float) -> bool:
        return not self.aborted and self.slo_attainment_requests >= attainment_target


def replay(
    trace: Trace,
    profile: FleetProfile,
    budget: SimBudget,
    policy: Policy,
    options: ReplayOptions | None = None,
) -> ReplayResult:
    """Run `policy` over `trace` on the fleet `profile` and measure it against `budget`."""
    return _Replay(trace, profile, budget, policy, options or ReplayOptions()).run()


@dataclass(slots=True)
class _Chunk:
    """Bins [start, stop) evaluated for the fleet as it stood; valid until the fleet's readiness changes."""

    start: int
    stop: int
    target: str
    ready: dict[str, FloatArray]  # Ready pods per variant, per bin
    shares: dict[str, FloatArray]  # share of the arrivals each variant received, per bin
    outcomes: dict[str, GroupOutcome]
    latency: FloatArray | None  # budget percentile of the budget signal per bin (None: series not kept)
    fleet_version: int  # FleetState.version the chunk was evaluated for
    ready_total: FloatArray  # Ready pods per bin, all variants
    quality: FloatArray  # quality of the variant serving an average request of each bin
    waiting: FloatArray  # queued requests at the end of each bin, all variants
    concurrency: FloatArray  # running + waiting
    requests_within: FloatArray  # requests within the threshold, per bin
    # Per control interval of the chunk (the chunk starts at an interval's start), what each cycle accounts and
    # observes, reduced once here rather than on every cycle (KPA's cycle is 2 s; a chunk lasts a minute or more).
    interval_within: FloatArray  # requests within the threshold
    interval_running: FloatArray  # in-flight requests, all variants, summed over the interval's bins
    interval_memory_gib: FloatArray  # highest memory in use on a serving replica
    interval_kv_usage: FloatArray  # highest KV-cache use on a serving replica


class _Replay:
    def __init__(
        self, trace: Trace, profile: FleetProfile, budget: SimBudget, policy: Policy, options: ReplayOptions
    ) -> None:
        self.trace, self.profile, self.budget, self.policy, self.options = trace, profile, budget, policy, options
        self.sample: LengthSample = length_sample(trace, budget.latency_signal)
        self.mean_in, self.mean_out = trace.bin_mean_lengths()
        interval = options.interval_s or policy.interval_s
        self.bins_per_interval = max(1, round(interval / trace.bin_seconds))
        self.bins_per_chunk = max(self.bins_per_interval, round(options.lookahead_s / trace.bin_seconds))
        self.bin_times = np.arange(trace.n_bins + 1, dtype=np.float64) * trace.bin_seconds
        # What each control interval observes of the trace, summed once here rather than on every cycle.
        self.interval_requests = _per_interval(trace.requests, self.bins_per_interval, np.sum)
        self.interval_input_tokens = _per_interval(trace.input_tokens, self.bins_per_interval, np.sum)
        self.interval_output_tokens = _per_interval(trace.output_tokens, self.bins_per_interval, np.sum)
        self.requests_per_second = trace.requests / trace.bin_seconds
        self.names = tuple(profile.variants)
        n = trace.n_bins
        self.within = np.zeros(n)
        self.latency = np.full(n, np.nan)
        self.desired = np.zeros(n)
        self.ready_total = np.zeros(n)
        self.pods = np.zeros(n)
        self.variant_index = np.zeros(n)
        self.cost = 0.0
        self.gpu_seconds = 0.0
        self.quality_served = 0.0
        self.scale_events = 0
        self.swaps = 0
        self.used: set[str] = set()
        self.chunk: _Chunk | None = None
        # The last intervals observed, for policies that read rate and latency over a longer window (the
        # engine reads them over its budget's latency window, as the operator's PromQL does).
        window_s = float(getattr(policy, "observation_window_s", 0.0) or 0.0)
        self.recent: deque[tuple[_Chunk, int, int]] = deque(maxlen=max(1, math.ceil(window_s / interval)))
        self.carried_backlog: dict[str, float] = {}

    # -- main loop --

    def run(self) -> ReplayResult:
        fleet, last_target = self._initial_fleet()
        observation = self._initial_observation(last_target)
        violations = 0.0
        aborted = False
        next_progress = self.options.progress_every_s
        for interval, start in enumerate(range(0, self.trace.n_bins, self.bins_per_interval)):
            stop = min(start + self.bins_per_interval, self.trace.n_bins)
            now = start * self.trace.bin_seconds
            if start > 0:
                target = self._checked(self.policy.decide(now, observation))
                self._count_changes(last_target, target)
                fleet.apply(now, target.variant, target.replicas, self._model(target.variant).startup_s)
                last_target = target
            chunk = self._chunk_for(fleet, start, stop)
            within = self._account(fleet, chunk, start, stop, last_target)
            observation = self._observe(fleet, chunk, interval, start, stop, last_target)
            violations += float(self.interval_requests[interval] - within)
            if self._should_abort(violations):
                aborted = True
                break
            if self.options.progress and now >= next_progress:
                self.options.progress(now / self.trace.duration_s, f"{self.policy.name} t={now / 3600:.1f}h")
                next_progress += self.options.progress_every_s
        if self.options.progress:
            self.options.progress(1.0, f"{self.policy.name} done")
        return self._result(aborted)

    def _initial_fleet(self) -> tuple[FleetState, FleetTarget]:
        target = self.options.initial
        if target is None:
            first_variant = self.budget.variants[0] if self.budget.variants else self.names[0]
            probe = self._initial_observation(FleetTarget(first_variant, max(self.budget.replicas_min, 1)))
            target = self._checked(self.policy.decide(0.0, probe))
        self.used.add(target.variant)
        return FleetState.warm(target.variant, target.replicas, self.options.max_surge_fraction), target

    def _checked(self, target: FleetTarget) -> FleetTarget:
        self._model(target.variant)  # raises on a variant the profile does not have
        if type(target.replicas) is int and target.replicas >= 0:
            return target
        return FleetTarget(target.variant, max(int(target.replicas), 0), target.reason)

    def _model(self, variant: str) -> VariantModel:
        return self.profile.variant(variant)

    def _count_changes(self, previous: FleetTarget, target: FleetTarget) -> None:
        if target.variant != previous.variant:
            self.swaps += 1
            self.used.add(target.variant)
        elif target.replicas != previous.replicas:
            self.scale_events += 1

    def _should_abort(self, violations: float) -> bool:
        limit = self.options.abort_above_violations
        ceiling = self.options.abort_above_cost
        return (limit is not None and violations > limit) or (ceiling is not None and self.cost > ceiling)

    # -- fleet evaluation, a chunk of bins ahead --

    def _chunk_for(self, fleet: FleetState, start: int, stop: int) -> _Chunk:
        """The evaluated bins covering [start, stop), re-evaluated only if the fleet's readiness changed."""
        chunk = self.chunk
        if chunk is not None and chunk.start <= start and stop <= chunk.stop and self._still_valid(chunk, fleet, start):
            return chunk
        backlog = self._backlog_before(start)
        end = min(start + self.bins_per_chunk, self.trace.n_bins)
        self.chunk = self._evaluate(fleet, start, max(end, stop), backlog)
        return self.chunk

    def _still_valid(self, chunk: _Chunk, fleet: FleetState, start: int) -> bool:
        if fleet.target_variant != chunk.target:
            return False
        if fleet.version == chunk.fleet_version:
            return True
        ready = fleet.ready_at(self.bin_times[start : chunk.stop])
        if set(ready) != set(chunk.ready):
            return False
        offset = start - chunk.start
        if not all(np.array_equal(count, chunk.ready[name][offset:]) for name, count in ready.items()):
            return False
        chunk.fleet_version = fleet.version  # the same readiness from `start` on, so from any later cycle too
        return True

    def _backlog_before(self, start: int) -> dict[str, float]:
        """Each variant's queue at the end of bin start-1, from the chunk that evaluated it."""
        chunk = self.chunk
        if chunk is None or not chunk.start < start <= chunk.stop:
            return dict(self.carried_backlog)
        index = start - 1 - chunk.start
        return {name: float(outcome.backlog[index]) for name, outcome in chunk.outcomes.items()}

    def _evaluate(self, fleet: FleetState, start: int, stop: int, backlog: dict[str, float]) -> _Chunk:
        ready = fleet.ready_at(self.bin_times[start:stop])
        backlog = self._rehome_backlog(backlog, ready, fleet.target_variant)
        total_ready = sum(ready.values(), np.zeros(stop - start))
        arrivals = self.trace.requests[start:stop]
        outcomes: dict[str, GroupOutcome] = {}
        shares: dict[str, FloatArray] = {}
        for name, count in ready.items():
            idle_share = 1.0 if name == fleet.target_variant else 0.0  # nobody Ready: requests queue at the target
            share = np.where(total_ready > 0, count / np.maximum(total_ready, 1e-9), idle_share)
            load = GroupLoad(
                ready=count,
                arrivals=arrivals * share,
                mean_in=self.mean_in[start:stop],
                mean_out=self.mean_out[start:stop],
                backlog=backlog.get(name, 0.0),
                bin_seconds=self.trace.bin_seconds,
            )
            outcomes[name] = evaluate_group(self._model(name), load, self.sample)
            shares[name] = share
        self.carried_backlog = {name: float(outcome.backlog[-1]) for name, outcome in outcomes.items()}
        within, latency = self._slo_per_bin(outcomes, shares)
        zeros = np.zeros(stop - start)
        serving = {name: ready[name] > 0 for name in outcomes}
        running = sum((outcome.running for outcome in outcomes.values()), zeros)
        waiting = sum((outcome.backlog for outcome in outcomes.values()), zeros)
        memory_gib = np.max([np.where(serving[n], o.memory_gib, 0.0) for n, o in outcomes.items()], axis=0)
        kv_usage = np.max([np.where(serving[n], o.kv_usage, 0.0) for n, o in outcomes.items()], axis=0)
        requests_within = within * arrivals
        per_interval = self.bins_per_interval
        return _Chunk(
            start=start,
            stop=stop,
            target=fleet.target_variant,
            ready=ready,
            shares=shares,
            outcomes=outcomes,
            latency=latency,
            fleet_version=fleet.version,
            ready_total=total_ready,
            quality=sum((self._model(name).quality * share for name, share in shares.items()), zeros),
            waiting=waiting,
            concurrency=running + waiting,
            requests_within=requests_within,
            interval_within=_per_interval(requests_within, per_interval, np.sum),
            interval_running=_per_interval(running, per_interval, np.sum),
            interval_memory_gib=_per_interval(memory_gib, per_interval, np.max),
            interval_kv_usage=_per_interval(kv_usage, per_interval, np.max),
        )

    @staticmethod
    def _rehome_backlog(backlog: dict[str, float], ready: dict[str, FloatArray], target: str) -> dict[str, float]:
        """Requests queued on a variant whose pods are all gone are re-sent to the target variant."""
        moved = {name: queued for name, queued in backlog.items() if name in ready}
        orphaned = sum(queued for name, queued in backlog.items() if name not in ready)
        moved[target] = moved.get(target, 0.0) + orphaned
        return moved

    def _slo_per_bin(
        self, outcomes: dict[str, GroupOutcome], shares: dict[str, FloatArray]
    ) -> tuple[FloatArray, FloatArray | None]:
        """Per bin: the share of requests within the threshold, and the budget percentile of the latency (only
        when the series are kept: the plots are all that read it, and sorting is most of this function's time)."""
        signal = self.budget.latency_signal
        values = np.concatenate([outcome.latency(signal) for outcome in outcomes.values()], axis=-1)
        weights = np.concatenate([shares[name][:, None] * self.sample.weights for name in outcomes], axis=-1)
        within = ((values <= self.budget.threshold_s) * weights).sum(axis=-1)
        if not self.options.keep_series:
            return within, None
        order = np.argsort(values, axis=-1)
        cumulative = np.cumsum(np.take_along_axis(weights, order, axis=-1), axis=-1)
        position = (cumulative < self.budget.quantile * cumulative[:, -1:] - 1e-12).sum(axis=-1)
        position = np.minimum(position, values.shape[-1] - 1)
        picked = np.take_along_axis(np.take_along_axis(values, order, axis=-1), position[:, None], axis=-1)[:, 0]
        return within, picked

    # -- accounting, per control interval --

    def _account(self, fleet: FleetState, chunk: _Chunk, start: int, stop: int, target: FleetTarget) -> float:
        """Bill the interval and credit its requests; returns how many of them were within the threshold."""
        offset, end = start - chunk.start, stop - chunk.start
        seconds = (stop - start) * self.trace.bin_seconds
        arrivals = self.trace.requests[start:stop]
        self.within[start:stop] = chunk.requests_within[offset:end]
        self.quality_served += float(np.dot(arrivals, chunk.quality[offset:end]))
        if chunk.latency is not None:  # the series are kept
            self.latency[start:stop] = chunk.latency[offset:end]
            self.desired[start:stop] = target.replicas
            self.ready_total[start:stop] = chunk.ready_total[offset:end]
            self.pods[start:stop] = fleet.total_pods()
            self.variant_index[start:stop] = self.names.index(target.variant)
        for name, pods in fleet.pods.items():
            self.cost += len(pods) * self._model(name).price_per_hour * seconds / 3600.0
            self.gpu_seconds += len(pods) * seconds
        return float(chunk.interval_within[offset // self.bins_per_interval])

    # -- observations --

    def _observe(
        self, fleet: FleetState, chunk: _Chunk, interval: int, start: int, stop: int, target: FleetTarget
    ) -> FleetObservation:
        offset, end = start - chunk.start, stop - chunk.start
        in_chunk = offset // self.bins_per_interval
        bin_s = self.trace.bin_seconds
        window = (stop - start) * bin_s
        requests = float(self.interval_requests[interval])
        ready_end = {name: int(count[end - 1]) for name, count in chunk.ready.items()}
        self.recent.append((chunk, offset, end))
        recent = tuple(self.recent) if len(self.recent) > 1 else None  # None: the window is this cycle
        in_window = slice(interval + 1 - len(self.recent), interval + 1)  # the intervals in self.recent
        window_requests = float(self.interval_requests[in_window].sum())
        window_tokens = float(self.interval_input_tokens[in_window].sum()
                              + self.interval_output_tokens[in_window].sum())
        return FleetObservation(
            time_s=stop * bin_s,
            window_s=window,
            request_rate=requests / window,
            mean_input_tokens=float(self.interval_input_tokens[interval]) / max(requests, 1.0),
            mean_output_tokens=float(self.interval_output_tokens[interval]) / max(requests, 1.0),
            memory_per_replica_gib=float(chunk.interval_memory_gib[in_chunk]),
            kv_cache_usage=float(chunk.interval_kv_usage[in_chunk]),
            variant=target.variant,
            desired_replicas=target.replicas,
            ready_replicas=sum(ready_end.values()),
            ready_by_variant=ready_end,
            running_requests=float(chunk.interval_running[in_chunk]) / (end - offset),
            waiting_requests=float(chunk.waiting[end - 1]),
            rollout_in_progress=fleet.rollout_in_progress(),
            requests_per_second_series=self.requests_per_second[start:stop],
            concurrency_series=chunk.concurrency[offset:end],
            ready_series=chunk.ready_total[offset:end],
            latency_source=lambda signal: self._percentiles(((chunk, offset, end),), signal),
            window_source=None if recent is None else lambda signal: self._over(recent, signal),
            window_tokens_per_request=window_tokens / window_requests if window_requests > 0 else 0.0,
        )

    def _over(self, parts: tuple[tuple[_Chunk, int, int], ...], signal: str) -> tuple[float, LatencyPercentiles]:
        """Requests/s and latency percentiles over several observed intervals together."""
        requests = sum(float(self.trace.requests[c.start + o : c.start + e].sum()) for c, o, e in parts)
        seconds = sum(e - o for _, o, e in parts) * self.trace.bin_seconds
        return requests / seconds, self._percentiles(parts, signal)

    def _percentiles(self, parts: tuple[tuple[_Chunk, int, int], ...], signal: str) -> LatencyPercentiles:
        values = []
        weights = []
        for chunk, offset, end in parts:
            arrivals = self.trace.requests[chunk.start + offset : chunk.start + end]
            for name, outcome in chunk.outcomes.items():
                values.append(outcome.latency(signal)[offset:end].ravel())
                weights.append(np.outer(arrivals * chunk.shares[name][offset:end], self.sample.weights).ravel())
        value = np.concatenate(values)
        weight = np.concatenate(weights)
        total = weight.sum()
        if total <= 0:
            return NO_LATENCY
        order = np.argsort(value)
        cumulative = np.cumsum(weight[order])
        index = np.minimum(np.searchsorted(cumulative, _PERCENTILES * total), len(value) - 1)
        p50, p90, p95, p99 = (float(v) * 1000.0 for v in value[order][index])
        return LatencyPercentiles(p50, p90, p95, p99)

    def _initial_observation(self, target: FleetTarget) -> FleetObservation:
        """What a warm fleet shows before the trace starts: nothing measured yet."""
        return FleetObservation(
            time_s=0.0,
            window_s=self.bins_per_interval * self.trace.bin_seconds,
            request_rate=0.0,
            mean_input_tokens=self.trace.mean_input_tokens,
            mean_output_tokens=self.trace.mean_output_tokens,
            memory_per_replica_gib=0.0,
            kv_cache_usage=0.0,
            variant=target.variant,
            desired_replicas=target.replicas,
            ready_replicas=target.replicas,
            ready_by_variant={target.variant: target.replicas},
            running_requests=0.0,
            waiting_requests=0.0,
            rollout_in_progress=False,
            metrics_available=False,
        )

    # -- results --

    def _result(self, aborted: bool) -> ReplayResult:
        total = self.trace.total_requests
        return ReplayResult(
            policy=self.policy.name,
            trace=self.trace.name,
            variants_used=tuple(name for name in self.names if name in self.used),
            cost=self.cost,
            gpu_hours=self.gpu_seconds / 3600.0,
            slo_attainment_requests=float(self.within.sum() / total) if total > 0 else 1.0,
            slo_attainment_windows=self._window_attainment(),
            mean_quality=self.quality_served / total if total > 0 else 0.0,
            scale_events=self.scale_events,
            swaps=self.swaps,
            breach_seconds=self._breach_seconds(),
            total_requests=total,
            duration_s=self.trace.duration_s,
            aborted=aborted,
            settings=dict(getattr(self.policy, "settings_summary", {}) or {}),
            series=self._series() if self.options.keep_series else None,
        )

    def _window_attainment(self) -> float:
        per_window = max(1, round(self.options.window_s / self.trace.bin_seconds))
        n = math.ceil(self.trace.n_bins / per_window) * per_window
        requests = np.zeros(n)
        within = np.zeros(n)
        requests[: self.trace.n_bins] = self.trace.requests
        within[: self.trace.n_bins] = self.within
        window_requests = requests.reshape(-1, per_window).sum(axis=1)
        window_within = within.reshape(-1, per_window).sum(axis=1)
        # The window percentile is within the threshold iff that share of its requests is (a window without
        # requests has nothing to breach).
        met = window_within >= self.budget.quantile * window_requests - 1e-9
        return float(met.mean())

    def _breach_seconds(self) -> float:
        """Seconds whose requests' budget percentile exceeded the threshold."""
        requests = self.trace.requests
        breached = (requests > 0) & (self.within < self.budget.quantile * requests - 1e-9)
        return float(breached.sum() * self.trace.bin_seconds)

    def _series(self) -> ReplaySeries:
        return ReplaySeries(
            time_s=np.arange(self.trace.n_bins, dtype=np.float64) * self.trace.bin_seconds,
            request_rate=self.trace.requests / self.trace.bin_seconds,
            desired_replicas=self.desired,
            ready_replicas=self.ready_total,
            pods=self.pods,
            variant_index=self.variant_index,
            latency_s=self.latency,
            variant_names=self.names,
            threshold_s=self.budget.threshold_s,
            percentile=self.budget.latency_percentile,
            signal=self.budget.latency_signal,
        )


def _per_interval(values: FloatArray, per_interval: int, reduce: Callable[..., FloatArray]) -> FloatArray:
    """`reduce` (np.sum, np.max) over consecutive runs of `per_interval` values (the last run may be shorter),
    each exactly as `reduce(values[start:stop])` computes it: rows of a reshape are summed the same way, unlike
    np.add.reduceat."""
    whole = len(values) // per_interval * per_interval
    reduced: FloatArray = reduce(values[:whole].reshape(-1, per_interval), axis=1)
    if whole < len(values):
        reduced = np.append(reduced, reduce(values[whole:]))
    return reduced
