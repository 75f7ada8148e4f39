"""The offline oracle: a clairvoyant fleet schedule, the reference lower bound on cost.

It knows the whole trace. For every control interval and every allowed variant it evaluates candidate replica
counts with the fleet model and records cost and SLO misses; a Lagrangian relaxation then picks, per interval,
the option minimising cost + mu * misses, with a variant kept until a swap pays for itself (a Viterbi pass, see
_stable_variants), and mu set by bisection so that the plan's misses use up exactly the budget (1 - attainment
target) of requests; the suite's `run_oracle` plans again with that budget corrected by what the replay missed,
until the replay spends it. Pods are started one start-up time before they are needed (a
pod that will be needed within its start-up time is kept), and a variant change rolls out with 100% surge.

It is a lower bound in the sense that matters for the comparison: it spends the SLO's slack where it saves the
most and never pays for reacting late. It is not a proof of optimality: intervals are evaluated without the
backlog of the previous one, and start-up overlap costs are added after the choice, not optimised.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from inferbudget.sim.budget import SimBudget, allowed_variants
from inferbudget.sim.fleet import FleetProfile, GroupLoad, LengthSample, VariantModel, evaluate_group, length_sample
from inferbudget.sim.policies import FleetObservation, FleetTarget
from inferbudget.sim.traces import FloatArray, Trace

CANDIDATES = 12  # replica counts evaluated per interval and variant
PLANNED_PRICE_STEPS = 20  # bisections of the miss price over whole plans, when the free choice's price is too low
MAX_MISS_PRICE = 1e12  # per missed request: a plan that misses more than allowed even at this price cannot do better
BLOCK_INTERVALS = 4000  # intervals evaluated at once (bounds memory: block x bins x sample size)


@dataclass(frozen=True, slots=True)
class OracleSchedule:
    """Per control interval: the variant and the replicas to have billed (running or starting)."""

    interval_s: float
    variants: tuple[str, ...]
    variant_index: npt.NDArray[np.int64]
    replicas: npt.NDArray[np.int64]
    planned_misses: float  # requests the plan expects to miss the SLO


class OraclePolicy:
    """Replays an `OracleSchedule`; it ignores observations (it already knows the future)."""

    def __init__(self, schedule: OracleSchedule) -> None:
        self.name = "oracle"
        self.interval_s = schedule.interval_s
        self.schedule = schedule
        self.settings_summary = {"planned_misses": round(schedule.planned_misses, 1)}

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget:
        index = min(int(now // self.interval_s), len(self.schedule.replicas) - 1)
        variant = self.schedule.variants[int(self.schedule.variant_index[index])]
        return FleetTarget(variant, int(self.schedule.replicas[index]), "planned with knowledge of the future")


@dataclass(frozen=True, slots=True)
class OracleChoices:
    """Per control interval, every (variant, replicas) option with its cost and SLO misses: what a plan chooses
    from. It depends on the trace and the budget, not on the misses a plan may spend, so the plans of one
    oracle run share it (computing it is most of a plan's time)."""

    models: tuple[VariantModel, ...]
    interval_s: float
    costs: FloatArray  # (intervals, variants x CANDIDATES)
    misses: FloatArray
    replicas: npt.NDArray[np.int64]


def oracle_choices(
    trace: Trace, profile: FleetProfile, budget: SimBudget, *, interval_s: float = 15.0
) -> OracleChoices:
    models = allowed_variants(budget, profile)
    per_interval = max(1, round(interval_s / trace.bin_seconds))
    sample = length_sample(trace, budget.latency_signal)
    loads = _interval_loads(trace, per_interval)
    costs, misses, replicas = _option_tables(models, loads, budget, sample, trace.bin_seconds)
    return OracleChoices(tuple(models), per_interval * trace.bin_seconds, costs, misses, replicas)


def plan_oracle(
    trace: Trace,
    profile: FleetProfile,
    budget: SimBudget,
    *,
    interval_s: float = 15.0,
    miss_share: float | None = None,
    choices: OracleChoices | None = None,
) -> OracleSchedule:
    """The clairvoyant schedule; `miss_share` overrides the share of requests allowed to miss the SLO, and
    `choices` (from `oracle_choices` on the same trace and budget, which fixes the interval) saves computing
    them again."""
    choices = choices or oracle_choices(trace, profile, budget, interval_s=interval_s)
    models, costs, misses, replicas = list(choices.models), choices.costs, choices.misses, choices.replicas
    allowed = (
        (1.0 - budget.attainment_target) * trace.total_requests
        if miss_share is None
        else miss_share * trace.total_requests
    )
    rows = np.arange(costs.shape[0])
    serves_early = _serves_early(models, choices.interval_s)

    def free_misses(mu: float) -> float:
        """Misses of each interval's cheapest option at price mu, variants free to change every interval."""
        return float(misses[rows, np.argmin(costs + mu * misses, axis=1)].sum())

    def plan(mu: float) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        return _stable_variants(costs, misses, mu, replicas, models, serves_early)

    mu = _miss_price(free_misses, allowed, low=0.0, high=1.0, steps=50)
    if _plan_misses(misses, *plan(mu), serves_early) > allowed and mu < MAX_MISS_PRICE:
        # Kept on one variant where the free choice would swap back and forth (a swap costs start-ups), the
        # plan runs intervals on a variant the price was not set for, whose cheapest option at that price may
        # miss every request; and a swap's new pods serve the interval before it. Raise the price until the
        # plan itself fits (each try runs the swap planning).
        mu = _miss_price(lambda price: _plan_misses(misses, *plan(price), serves_early), allowed, low=mu,
                         high=max(4.0 * mu, 1e-6), steps=PLANNED_PRICE_STEPS)
    variant, option = plan(mu)
    asked, billed = _with_startup(variant, replicas[rows, option], models, choices.interval_s)
    return OracleSchedule(
        interval_s=choices.interval_s,
        variants=tuple(model.name for model in models),
        variant_index=asked,
        replicas=billed,
        planned_misses=_plan_misses(misses, variant, option, serves_early),
    )


def _serves_early(models: list[VariantModel], interval_s: float) -> npt.NDArray[np.float64]:
    """Per variant, 1 where its new pods go into service before the swap's interval: _with_startup asks for
    them a start-up time rounded up to whole intervals early, so unless the start-up is a whole number of
    intervals they are Ready, and serve, during the interval before the swap."""
    return np.asarray([1.0 if model.startup_s % interval_s > 1e-9 else 0.0 for model in models])


def _swap_misses(misses_before: FloatArray, old: npt.NDArray[np.int64] | int, new: npt.NDArray[np.int64] | int,
                 serves_early: FloatArray | float) -> FloatArray:
    """What a swap adds to the misses of the interval before it, which the new pods serve where they go into
    service early: the misses of the new variant's option (`new`) beyond those of the old one's (`old`), both
    column indexes into `misses_before` (that interval's row), with the new variants' `serves_early`."""
    added: FloatArray = np.maximum(misses_before[new] - misses_before[old], 0.0) * serves_early
    return added


def _plan_misses(misses: FloatArray, variant: npt.NDArray[np.int64], option: npt.NDArray[np.int64],
                 serves_early: FloatArray) -> float:
    """The requests a plan misses: each interval's chosen option's, plus what each swap adds (_swap_misses)."""
    swaps = np.flatnonzero(variant[1:] != variant[:-1]) + 1
    added = sum(float(_swap_misses(misses[j - 1], int(option[j - 1]), int(option[j]), float(serves_early[variant[j]])))
                for j in swaps)
    return float(misses[np.arange(len(option)), option].sum()) + added


@dataclass(frozen=True, slots=True)
class _Loads:
    """The trace reshaped to (intervals, bins per interval), padded with empty bins."""

    arrivals: FloatArray
    mean_in: FloatArray
    mean_out: FloatArray


def _interval_loads(trace: Trace, per_interval: int) -> _Loads:
    n_intervals = math.ceil(trace.n_bins / per_interval)
    size = n_intervals * per_interval

    def padded(values: FloatArray, fill: float) -> FloatArray:
        out = np.full(size, fill)
        out[: trace.n_bins] = values
        return out.reshape(n_intervals, per_interval)

    mean_in, mean_out = trace.bin_mean_lengths()
    return _Loads(
        padded(trace.requests, 0.0),
        padded(mean_in, trace.mean_input_tokens),
        padded(mean_out, trace.mean_output_tokens),
    )


def _option_tables(
    models: list[VariantModel], loads: _Loads, budget: SimBudget, sample: LengthSample, bin_s: float
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.int64]]:
    """Cost, SLO misses and replicas of each (variant, candidate) option, per interval."""
    n = loads.arrivals.shape[0]
    costs = np.zeros((n, len(models) * CANDIDATES))
    misses = np.zeros_like(costs)
    replicas = np.zeros(costs.shape, dtype=np.int64)
    seconds = loads.arrivals.shape[1] * bin_s
    for v, model in enumerate(models):
        candidates = _candidates(model, loads, budget, bin_s)
        for c in range(CANDIDATES):
            column = v * CANDIDATES + c
            replicas[:, column] = candidates[:, c]
            costs[:, column] = candidates[:, c] * model.price_per_hour * seconds / 3600.0
            misses[:, column] = _misses(model, candidates[:, c], loads, budget, sample, bin_s)
    return costs, misses, replicas


def _candidates(model: VariantModel, loads: _Loads, budget: SimBudget, bin_s: float) -> npt.NDArray[np.int64]:
    """Replica counts worth trying: from what the mean rate needs to what the peak bin needs, plus headroom."""
    capacity = np.maximum(model.capacity_rps(loads.mean_in, loads.mean_out), 1e-9)
    need = loads.arrivals / bin_s / capacity
    low = np.maximum(np.floor(need.mean(axis=1)), budget.replicas_min)
    high = np.maximum(np.ceil(need.max(axis=1) * 1.5) + 2, low + CANDIDATES - 1)
    steps = np.linspace(0.0, 1.0, CANDIDATES)
    grid = np.rint(low[:, None] + (high - low)[:, None] * steps[None, :]).astype(np.int64)
    clipped: npt.NDArray[np.int64] = np.clip(grid, max(budget.replicas_min, 0), budget.replica_cap(model))
    return clipped


def _misses(
    model: VariantModel,
    ready: npt.NDArray[np.int64],
    loads: _Loads,
    budget: SimBudget,
    sample: LengthSample,
    bin_s: float,
) -> FloatArray:
    """Requests per interval that miss the SLO with `ready` replicas throughout (each interval starts empty)."""
    out = np.zeros(len(ready))
    for start in range(0, len(ready), BLOCK_INTERVALS):
        block = slice(start, start + BLOCK_INTERVALS)
        arrivals = loads.arrivals[block]
        load = GroupLoad(
            ready=np.broadcast_to(ready[block, None].astype(np.float64), arrivals.shape),
            arrivals=arrivals,
            mean_in=loads.mean_in[block],
            mean_out=loads.mean_out[block],
            backlog=np.zeros(arrivals.shape[0]),
            bin_seconds=bin_s,
        )
        outcome = evaluate_group(model, load, sample)
        within = (outcome.latency(budget.latency_signal) <= budget.threshold_s) @ sample.weights
        out[block] = (arrivals * (1.0 - within)).sum(axis=1)
    return out


def _miss_price(total_misses: Callable[[float], float], allowed: float, *, low: float, high: float,
                steps: int) -> float:
    """A price per missed request, above `low`, at which `total_misses(price)` fits within `allowed`: `high` is
    raised fourfold until it fits, then `steps` bisections (of the ratio once low is above zero, as prices span
    orders of magnitude) bring it down towards the smallest such price (exactly, where the misses fall as the
    price rises; where swaps are planned they need not, quite). Where nothing up to MAX_MISS_PRICE fits, that
    price: its plan misses the least within reach."""
    while total_misses(high) > allowed:
        if high >= MAX_MISS_PRICE:
            return high
        low, high = high, high * 4.0
    for _ in range(steps):
        middle = math.sqrt(low * high) if low > 0 else (low + high) / 2
        if total_misses(middle) > allowed:
            low = middle
        else:
            high = middle
    return high


def _stable_variants(
    costs: FloatArray,
    misses: FloatArray,
    mu: float,
    replicas: npt.NDArray[np.int64],
    models: list[VariantModel],
    serves_early: FloatArray,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Variant and option per interval minimising cost + mu * misses plus the price of each swap (Viterbi).

    Without a swap price the cheapest variant may alternate between near-equal options every interval, which
    no rollout can follow. A swap costs the new variant's pods during their start-up, when the old ones still
    serve, and mu times the misses it adds to the interval before it (_swap_misses).
    """
    n, n_models = costs.shape[0], len(models)
    per_variant = (costs + mu * misses).reshape(n, n_models, CANDIDATES)
    best_option = per_variant.argmin(axis=2)
    value = np.take_along_axis(per_variant, best_option[:, :, None], axis=2)[:, :, 0]
    each = np.arange(n_models)
    chosen = each[None, :] * CANDIDATES + best_option  # (intervals, variants): the column of each variant's choice
    best_replicas = replicas[np.arange(n)[:, None], chosen]
    startup_cost = np.asarray([m.price_per_hour * m.startup_s / 3600.0 for m in models])
    startups = best_replicas * startup_cost[None, :]
    came_from = np.zeros((n, n_models), dtype=np.int64)
    total = value[0].copy()
    for j in range(1, n):
        # switching from variant u (rows) to v (columns) at j
        added = _swap_misses(misses[j - 1], chosen[j - 1][:, None], chosen[j][None, :], serves_early[None, :])
        switch = total[:, None] + startups[j][None, :] + mu * added
        switch[each, each] = total  # staying costs nothing more
        origin = switch.argmin(axis=0)
        origin = np.where(switch[each, each] <= switch[origin, each], each, origin)  # stay on a tie
        came_from[j] = origin
        total = value[j] + switch[origin, each]
    variant = np.zeros(n, dtype=np.int64)
    variant[-1] = int(total.argmin())
    for j in range(n - 1, 0, -1):
        variant[j - 1] = came_from[j, variant[j]]
    option = variant * CANDIDATES + best_option[np.arange(n), variant]
    return variant, option


def _with_startup(
    variant: npt.NDArray[np.int64], replicas: npt.NDArray[np.int64], models: list[VariantModel], interval_s: float
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Variant and replicas to ask for per interval so that pods are Ready when the plan needs them.

    A pod needed within its start-up time must already be starting (billed), and a variant change is asked for
    one start-up time of the new variant early; the rollout keeps the old pods serving until the new are Ready.
    """
    leads = np.asarray([math.ceil(model.startup_s / interval_s) for model in models])
    ahead = np.zeros((len(models), len(replicas)), dtype=np.int64)
    for v, lead in enumerate(leads):
        needed = np.where(variant == v, replicas, 0)
        padded = np.concatenate([needed, np.zeros(lead, dtype=np.int64)])
        ahead[v] = np.lib.stride_tricks.sliding_window_view(padded, lead + 1).max(axis=1)
    asked = variant.copy()
    columns = np.arange(len(replicas))
    billed = ahead[variant, columns]
    for change in np.flatnonzero(variant[1:] != variant[:-1]) + 1:
        early = slice(max(0, change - leads[variant[change]]), change)
        asked[early] = variant[change]
        # A rollout keeps old pods only while Ready pods stay at the target: ask for at least the old need.
        billed[early] = np.maximum(ahead[variant[change], columns[early]], billed[early])
    return asked, billed
