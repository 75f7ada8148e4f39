"""The inferbudget engine as a simulator policy: the very decide() the operator runs, fed by the replay.

Each control cycle the replay's `FleetObservation` becomes the engine's `Observation` (what the operator builds
from Prometheus and the API server), the engine decides with the state it kept from the last cycle, and its
decision becomes the `FleetTarget` the simulated Deployment is steered to. The simulator's registry
(inferbudget.sim.suite) runs it as the `inferbudget` policy through `run_engine`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import ValidationError

from inferbudget.api.spec import InferenceBudgetSpec, Variant
from inferbudget.engine import Decision, EngineState, Observation, decide
from inferbudget.engine.learning import capacity_hint
from inferbudget.sim.budget import BudgetError, DeclaredVariant, SimBudget, allowed_variants, as_declared
from inferbudget.sim.fleet import FleetProfile, GroupLoad, LengthSample, VariantModel, evaluate_group, length_sample
from inferbudget.sim.policies import FleetObservation, FleetTarget
from inferbudget.sim.replay import ReplayOptions, ReplayResult, replay
from inferbudget.sim.suite import RunContext
from inferbudget.sim.traces import Trace

GIB = 2**30
BENCHMARK_STEPS = 30  # bisection steps: capacity to about 1e-9 of the saturation rate
BENCHMARK_SECONDS = 60  # of steady load before the percentile is read
NO_RATE_MEETS = 1e-3  # benchmark_capacity's figure when no rate meets the threshold (a hint must be positive)
HINT_WARNING_FACTOR = 3.0  # a declared hint this many times off the benchmark is worth a note
CYCLE_SECONDS = 15.0  # the operator's reconcile period for a budget


class EnginePolicy:
    """Replays the engine; keeps its EngineState between cycles as the operator keeps it in the status."""

    def __init__(self, spec: InferenceBudgetSpec, *, interval_s: float = CYCLE_SECONDS) -> None:
        self.name = "inferbudget"
        self.interval_s = interval_s
        self.spec = spec
        self.state = EngineState()
        self.decisions: list[Decision] = []
        self.observation_window_s = float(spec.latency.window_seconds)  # the operator queries over this window

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget:
        decision, self.state = decide(self.spec, observation_from(self.spec, obs), self.state, now)
        self.decisions.append(decision)
        return FleetTarget(decision.variant or obs.variant, decision.replicas, f"{decision.reason}: {decision.message}")


def observation_from(spec: InferenceBudgetSpec, obs: FleetObservation) -> Observation:
    """What the operator would observe: the request rate, the tokens per request and the budget's percentile of
    its signal over the budget's latency window (latency.windowSeconds, the range of the operator's PromQL), memory
    unless declared.
    (Until 2026-11-28 the replay fed the engine the last 15 s cycle's figures: quicker to show a burst, and
    noisier, than anything the operator reads.)"""
    available = obs.metrics_available
    rate, latency = obs.request_rate, math.nan
    if available:
        rate, percentiles = obs.over_window(spec.latency.signal)
        latency = percentiles.at(spec.latency.percentile)
    measured_memory = spec.memory is None or spec.memory.signal != "declared"
    tokens = obs.window_tokens_per_request
    memory = obs.memory_per_replica_gib * GIB if available and measured_memory else 0.0
    return Observation(
        sampled_at=obs.time_s if available else None,
        requests_per_second=rate if available else None,
        latency_ms=None if math.isnan(latency) else latency,
        memory_per_replica_bytes=int(memory) if memory > 0 else None,
        tokens_per_request=tokens if available and tokens > 0 else None,
        variant=obs.variant,
        desired_replicas=obs.desired_replicas,
        ready_replicas=obs.ready_replicas,
        rollout_in_progress=obs.rollout_in_progress,
        metrics_available=available,
    )


def engine_spec(budget: SimBudget, profile: FleetProfile, trace: Trace) -> InferenceBudgetSpec:
    """The InferenceBudget spec the engine decides with, rebuilt from the simulator's budget.

    The budget's variants are the profile's, with the figures a user declares: quality, price, memory,
    start-up time and a capacity hint, as the budget declares them (sim.budget.DeclaredVariant), else the
    profile's, and for an undeclared capacity hint what a benchmark of one replica would report
    (`benchmark_capacity`). The engine then learns the capacity the fleet really shows under the trace's load.
    """
    spec: dict[str, Any] = {
        **budget.extra,
        "targetRef": budget.extra.get("targetRef", {"name": "simulated"}),
        "latency": {
            "percentile": budget.latency_percentile,
            "thresholdMs": round(budget.latency_threshold_ms),
            "signal": budget.latency_signal,
            "windowSeconds": budget.latency_window_s,
        },
        "replicas": {"min": max(budget.replicas_min, 1), "max": budget.replicas_max},
        "variants": [
            _variant(model, budget.declared.get(model.name, DeclaredVariant()), trace, budget)
            for model in allowed_variants(budget, profile)
        ],
    }
    if budget.max_cost_per_hour is not None:
        spec["cost"] = {"maxPerHour": f"{budget.max_cost_per_hour:.2f}"}
    memory = {"maxPerReplica": budget.max_memory_per_replica_gib, "maxTotal": budget.max_memory_total_gib}
    if any(gib is not None for gib in memory.values()):
        spec["memory"] = {key: f"{gib:.3f}Gi" for key, gib in memory.items() if gib is not None}
    try:
        return InferenceBudgetSpec.model_validate(spec)
    except ValidationError as error:  # the budget's own fields (policy, mode...) the simulator passes through
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise BudgetError(f"the budget is not a valid InferenceBudget spec: {problems}") from None


def _variant(model: VariantModel, declared: DeclaredVariant, trace: Trace, budget: SimBudget) -> dict[str, Any]:
    """The variant as the engine is told of it."""
    model = as_declared(model, budget)
    capacity = declared.capacity_rps if declared.capacity_rps is not None else benchmark_capacity(model, trace, budget)
    startup = declared.startup_s if declared.startup_s is not None else model.startup_s
    return {
        "name": model.name,
        "quality": model.quality,
        "costPerReplicaHour": f"{model.price_per_hour:.2f}",
        "memory": f"{model.memory_gib:.3f}Gi",
        "capacityHint": {"requestsPerSecond": round(capacity, 3)},
        "startupSeconds": round(startup),
    }


def benchmark_capacity(model: VariantModel, trace: Trace, budget: SimBudget) -> float:
    """What a user's benchmark of one replica would report as its capacity within the latency budget: the
    steady request rate, at the trace's mean request lengths, at which the budget's percentile reaches the
    threshold. Steady arrivals, so it misses what bursts cost; the engine learns that part online."""
    sample = length_sample(trace, budget.latency_signal)
    saturation = float(model.capacity_rps(trace.mean_input_tokens, trace.mean_output_tokens))
    low, high = 0.0, saturation
    for _ in range(BENCHMARK_STEPS):
        middle = (low + high) / 2
        if _steady_percentile_s(model, trace, budget, sample, middle) <= budget.threshold_s:
            low = middle
        else:
            high = middle
    return max(low, NO_RATE_MEETS)


def misleading_hints(budget: SimBudget, profile: FleetProfile, trace: Trace) -> list[str]:
    """A line for each capacity hint the budget declares that is more than HINT_WARNING_FACTOR times off what a
    benchmark of one replica at the trace's lengths gives (`benchmark_capacity`). The engine starts from the hint
    and learns the rest as it goes, which costs requests: the example budget's chat-length hints on the Mooncake
    trace's long prompts (9 times this benchmark's figure there) cost 7% of the requests from a warm start."""
    lines = []
    for model in allowed_variants(budget, profile):
        declared = budget.declared.get(model.name, DeclaredVariant()).capacity_rps
        if declared is None:
            continue
        measured = benchmark_capacity(as_declared(model, budget), trace, budget)
        hint = f"{model.name}'s capacityHint is {declared:g} req/s"
        if measured <= NO_RATE_MEETS:
            lines.append(f"{hint}, but by the profile no replica of it meets the budget at this trace's lengths")
        elif not 1 / HINT_WARNING_FACTOR <= declared / measured <= HINT_WARNING_FACTOR:
            cost = "requests" if declared > measured else "replicas"  # too high: too few replicas; too low: too many
            lines.append(
                f"{hint}, {declared / measured:.1f}x what one replica serves within the budget at this trace's "
                f"lengths ({measured:.3g} req/s by the profile); the engine learns the difference as it goes, at "
                f"a cost in {cost}")
    return lines


def _steady_percentile_s(
    model: VariantModel, trace: Trace, budget: SimBudget, sample: LengthSample, rate: float
) -> float:
    bins = np.ones(BENCHMARK_SECONDS)
    load = GroupLoad(
        ready=bins,
        arrivals=bins * rate,
        mean_in=bins * trace.mean_input_tokens,
        mean_out=bins * trace.mean_output_tokens,
        backlog=0.0,
        bin_seconds=1.0,
    )
    latency = evaluate_group(model, load, sample).latency(budget.latency_signal)[-1]
    order = np.argsort(latency)
    position = np.searchsorted(np.cumsum(sample.weights[order]), budget.quantile)
    return float(latency[order][min(position, len(order) - 1)])


def run_engine(context: RunContext) -> ReplayResult:
    """The suite's runner for the engine: one replay, no tuning (the engine has nothing to tune offline).

    The fleet starts as the baselines' does: replicas.min warm replicas of the variant it would run, here the
    one `starting_variant` picks (with a warm start, that variant's warm fleet). (A baseline starts on the
    variant it was tuned on; started on the budget's first variant instead, the engine paid for a choice no
    baseline is charged with: on the Mooncake trace, a bf16 replica where the baselines start on fp8 missed
    about 100 more requests, 2.5% of the trace, before the fp8 replicas it swaps to at its first metric could
    be Ready.)"""
    spec = engine_spec(context.budget, context.profile, context.trace)
    variant = starting_variant(spec)
    initial = context.initial_fleet(variant) or FleetTarget(variant, spec.replicas.min)
    options = ReplayOptions(progress=context.progress, initial=initial)
    return replay(context.trace, context.profile, context.budget, EnginePolicy(spec), options)


def starting_variant(spec: InferenceBudgetSpec) -> str:
    """The variant whose capacity hint carries the most requests a dollar, of those at or above the quality
    floor (ties: the better quality, then the spec's order): the one the engine swaps to at its first cycle
    whatever the load, when it outclasses the others (engine.swapping.outclasses)."""
    good_enough = [v for v in spec.variants if v.quality >= spec.policy.min_quality] or list(spec.variants)

    def value(variant: Variant) -> tuple[float, float]:
        price = float(variant.cost_per_replica_hour_decimal)
        return ((capacity_hint(variant) or 0.0) / price if price > 0 else math.inf, variant.quality)

    return max(good_enough, key=value).name  # max keeps the first of equals: the spec's order

