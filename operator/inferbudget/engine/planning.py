"""The joint choice of (variant, replicas): what each variant needs for the planned load, which options meet
the budgets, and which one the objective prefers.

Sizing. A variant needs enough replicas to carry the forecast load at its capacity (the load at which the
latency percentile reaches the threshold; see engine.latency). There is no further safety factor: headroom
comes from the forecast (never below the load now), from rounding up, and on the way down from the window and
the dead band; and capacity is learned where the fleet runs, so a factor would also bias what is learned (a
fleet kept at 90% of capacity teaches a capacity extrapolated from 90%). Scale-down is sized for the highest load
of the scale-down window at a capacity SCALE_DOWN_TOLERANCE lower, a dead band that keeps steady load from
flapping between two counts. The running variant keeps its count anywhere in that band; another
variant is sized for SWAP_MARGIN more than the top of its band, so that a swap needs a clear advantage and a
load wandering around the point where two variants cost the same does not swap back and forth. Until a whole
scale-down window has been observed (after a start, a restart or blindness) the running variant keeps its count,
and another variant must carry at least as much as the running fleet does: a swap is no way round the window.

Budgets. Quality below policy.minQuality and variants in their failure back-off are never options. Each option is
capped by replicas.max, the cost ceiling and memory.maxTotal; replicas.min is never undercut.

Choice. Among the options that meet every budget: the cheapest (MinimizeCost; ties to the better quality) or the
best quality (MaximizeQuality; ties to the cheaper); then the most load carried (counted as for the least bad
option below, so another variant needs SWAP_MARGIN more): at the same price and quality, the headroom for a burst
is what is left to choose by, and a variant that carries 2.7 times as much a replica for the same price is the
better one even at a load either carries; final ties keep the running variant, then the spec's order.
When none meets every budget, the least bad one, in this order: memory per replica fits, the cost ceiling and
memory.maxTotal hold (they are caps like replicas.max), then the most load carried (latency gives way first),
then the cheapest, then the best quality. The swap margin applies here too: another variant must carry
SWAP_MARGIN more load than the running one to be the less bad.
"""

import math
from dataclasses import dataclass
from decimal import Decimal

from inferbudget.api.spec import InferenceBudgetSpec, Variant
from inferbudget.engine.forecast import forecast
from inferbudget.engine.learning import MAX_EXTRAPOLATION, Performance, hint_factor, performance, proven_factor
from inferbudget.engine.observation import Observation
from inferbudget.engine.state import EngineState

# The dead band. Measured on the replays (make bench, the engine reading 60 s windows): at 0.05 each of m-large's
# replicas carried 12% less than tuned KEDA's; 0.02 costs 3.6% less there, for 0.07 points of attainment and 28%
# more scale events (Azure and Mooncake unchanged); 0 costs 6.2% less but scales 67% more often: the flapping the
# band exists to stop.
SCALE_DOWN_TOLERANCE = 0.02
SWAP_MARGIN = 0.1
UNBOUNDED = 1_000_000  # replicas "needed" when capacity is zero: more than any cap


@dataclass(frozen=True, slots=True)
class Loads:
    """The load figures a cycle plans with, in requests/s."""

    current: float
    slope: float  # trend, requests/s per second
    peak: float  # highest over the scale-down window (at least current)
    low: float  # lowest over the scale-up window (current when that window is 0)
    cycle_seconds: float
    base: float = 0.0  # the level the load returns to between bursts (engine.bursts)
    burst_headroom: float = 0.0  # how far bursts that breached the latency rose above it, requests/s
    recalled: float = 0.0  # the remembered, decayed peak of recent bursts (engine.bursts): scale-down keeps it
    held: float = 0.0  # the highest load planned for over the last start-up horizon (engine.forecast)

    @property
    def burst_floor(self) -> float:
        """The load to keep replicas for whatever the forecast: 0 until bursts have breached the latency."""
        return self.base + self.burst_headroom if self.burst_headroom > 0 else 0.0

    def horizon(self, startup_seconds: float) -> float:
        """Seconds until replicas started now are Ready and the next cycle could correct them."""
        return startup_seconds + self.cycle_seconds


@dataclass(frozen=True, slots=True)
class Sizing:
    """Replicas a variant needs: `up` for the forecast, `down` for the scale-down window's peak, `settled` for
    the forecast alone at the scale-down capacity (what the window allows once the peak has passed), and
    `switch` for the window's peak plus SWAP_MARGIN (to run it after a swap). `down`, `settled` and `switch` plan a
    replica for no more than `proven_capacity` (see the function)."""

    up: int
    down: int
    settled: int
    switch: int
    planned_load: float  # the forecast over the horizon
    window_load: float  # the highest load the scale-down window holds replicas for
    horizon_seconds: float
    burst_load: float = 0.0  # the burst floor (engine.bursts): replicas are kept for at least this load
    recalled_load: float = 0.0  # recent bursts' decayed peak (engine.bursts): scale-down keeps replicas for it
    # What scale-down planned a replica for, when that, not the capacity, set `down` (None otherwise).
    proven_capacity: float | None = None


@dataclass(frozen=True, slots=True)
class Option:
    variant: Variant
    replicas: int
    sizing: Sizing | None  # None: capacity unknown (only the running variant can be such an option)
    performance: Performance
    cost_per_hour: Decimal
    latency_ms: float | None  # predicted at the planned load
    carries_load: bool
    within_cost: bool
    within_memory: bool
    memory_per_replica_fits: bool
    running: bool

    @property
    def feasible(self) -> bool:
        return self.carries_load and self.within_cost and self.within_memory

    @property
    def carried_load(self) -> float:
        capacity = self.performance.capacity or 0.0
        return self.replicas * capacity

    @property
    def credited_load(self) -> float:
        """The carried load as the choice counts it: another variant's by SWAP_MARGIN less, as its sizing is."""
        return self.carried_load if self.running else self.carried_load / (1 + SWAP_MARGIN)


@dataclass(frozen=True, slots=True)
class Plan:
    options: tuple[Option, ...]
    best: Option
    running: Option | None  # the running variant's option, when it is one

    @property
    def feasible(self) -> bool:
        return any(option.feasible for option in self.options)


def replicas_for(load: float, capacity: float) -> int:
    """Fewest replicas of this capacity that carry `load`."""
    if load <= 0:
        return 0
    needed = load / capacity if capacity > 0 else math.inf
    if not needed < UNBOUNDED:  # also an overflow to inf (1e300 req/s at a capacity of 1e-300)
        return UNBOUNDED
    return math.ceil(needed - 1e-9)


def proven_capacity(perf: Performance, replicas_now: int) -> float | None:
    """The load a scale-down plans a replica for: the capacity, but at most MAX_EXTRAPOLATION times the most a
    replica has been seen to serve within the threshold (engine.learning), or what `replicas_now` - 1 replicas
    would each carry at that load, if that is more (else a fleet of 5 or fewer, which 1.25 times its load a replica
    never brings down a whole replica, could never shrink). After such a step the load a replica is proven to carry
    must rise before the next one: the fleet shrinks one step per proof. None: the capacity itself."""
    if perf.capacity is None or perf.proven is None:
        return None
    one_fewer = replicas_now / (replicas_now - 1) / (1 - SCALE_DOWN_TOLERANCE) if replicas_now > 1 else 0.0
    cap = perf.proven * max(MAX_EXTRAPOLATION, one_fewer)
    return cap if cap < perf.capacity else None


def size(spec: InferenceBudgetSpec, perf: Performance, loads: Loads, replicas_now: int = 0) -> Sizing | None:
    """What the variant needs; `replicas_now`: how many of it run (0 for a variant not running)."""
    if perf.capacity is None:
        return None
    horizon = loads.horizon(perf.startup_seconds)
    planned = forecast(loads.current, loads.slope, horizon)
    up_load = planned if spec.policy.scale_up.stabilization_seconds == 0 else min(planned, loads.low)
    floor = loads.burst_floor
    proven = proven_capacity(perf, replicas_now)
    down_capacity = (perf.capacity if proven is None else proven) * (1 - SCALE_DOWN_TOLERANCE)
    window_load = max(planned, loads.peak, loads.held)
    kept_load = max(window_load, floor, loads.recalled)
    down = replicas_for(kept_load, down_capacity)
    proof_bound = down > replicas_for(kept_load, perf.capacity * (1 - SCALE_DOWN_TOLERANCE))
    return Sizing(
        up=replicas_for(max(up_load, floor), perf.capacity),
        down=down,
        settled=replicas_for(max(planned, floor), down_capacity),
        switch=replicas_for(kept_load * (1 + SWAP_MARGIN), down_capacity),
        planned_load=planned,
        window_load=window_load,
        horizon_seconds=horizon,
        burst_load=floor,
        recalled_load=loads.recalled,
        proven_capacity=proven if proof_bound else None,
    )


def plan(spec: InferenceBudgetSpec, observation: Observation, state: EngineState, loads: Loads,
         may_scale_down: bool) -> Plan | None:
    """Every option and the one to aim for; None when no variant can be sized (nothing known yet)."""
    factor = hint_factor(spec, state, observation.variant)
    proven = proven_factor(spec, state, observation.variant)
    kept = None if may_scale_down else _carried_now(spec, observation, state, factor)
    sized = (_option(spec, observation, state, variant, loads, may_scale_down, kept, factor, proven)
             for variant in _candidates(spec, state))
    options = tuple(option for option in sized if option is not None)
    if not options:
        return None
    running = next((option for option in options if option.running), None)
    return Plan(options=options, best=choose(spec, options), running=running)


def choose(spec: InferenceBudgetSpec, options: tuple[Option, ...]) -> Option:
    order = {variant.name: index for index, variant in enumerate(spec.variants)}

    def preference(option: Option) -> tuple[Decimal | float | bool | int, ...]:
        cost, quality = option.cost_per_hour, -option.variant.quality
        ranked = (cost, quality) if spec.policy.objective == "MinimizeCost" else (quality, cost)
        return (*ranked, -option.credited_load, not option.running, order[option.variant.name])

    def badness(option: Option) -> tuple[Decimal | float | bool | int, ...]:
        return (not option.memory_per_replica_fits, not (option.within_cost and option.within_memory),
                -option.credited_load, *preference(option))

    feasible = [option for option in options if option.feasible]
    return min(feasible, key=preference) if feasible else min(options, key=badness)


def _candidates(spec: InferenceBudgetSpec, state: EngineState) -> list[Variant]:
    """Variants at or above the quality floor, outside their failure back-off (unless every one is in it)."""
    good_enough = [v for v in spec.variants if v.quality >= spec.policy.min_quality]
    healthy = [v for v in good_enough if v.name not in state.failures]
    return healthy or good_enough


def _carried_now(spec: InferenceBudgetSpec, observation: Observation, state: EngineState,
                 factor: float) -> float | None:
    """The load the running fleet can carry: what the fleet keeps until a whole scale-down window has been
    observed, whatever the variant (None: the running variant's capacity is unknown)."""
    running = spec.variant(observation.variant) if observation.variant else None
    if running is None:
        return None
    capacity = performance(running, state, spec.latency.threshold_ms / 1000.0, factor).capacity
    return observation.desired_replicas * capacity if capacity is not None else None


def _option(spec: InferenceBudgetSpec, observation: Observation, state: EngineState, variant: Variant,
            loads: Loads, may_scale_down: bool, kept: float | None, factor: float,
            proven: float | None) -> Option | None:
    """`kept`: the load the running fleet carries, while a whole scale-down window has not been observed yet
    (no other variant may carry less then: a swap must not shrink the fleet on a first, partial look at the load,
    as the running variant may not)."""
    running = variant.name == observation.variant
    perf = performance(variant, state, spec.latency.threshold_ms / 1000.0, factor, proven)
    sizing = size(spec, perf, loads, observation.desired_replicas if running else 0)
    if sizing is None and not running:
        return None  # a variant nobody knows the capacity of is not swapped to
    needed = _needed(sizing, observation.desired_replicas, running, may_scale_down=may_scale_down)
    if kept is not None and not running and perf.capacity is not None:
        needed = max(needed, replicas_for(kept, perf.capacity))
    cap = replica_cap(spec, variant, memory_per_replica(variant, observation))
    replicas = max(spec.replicas.min, min(needed, cap))
    return _priced(spec, variant, observation, perf, sizing, replicas, carries_load=needed <= cap,
                   running=running)


def _needed(sizing: Sizing | None, current: int, running: bool, *, may_scale_down: bool) -> int:
    """Replicas to run: the running variant stays anywhere in its dead band [up, down]; another variant is
    sized for the top of its band plus the swap margin; unknown capacity keeps the current count."""
    if sizing is None:
        return current
    if not running:
        return max(sizing.up, sizing.switch)
    return max(sizing.up, min(current, max(sizing.up, sizing.down)) if may_scale_down else current)


def _priced(spec: InferenceBudgetSpec, variant: Variant, observation: Observation, perf: Performance,
            sizing: Sizing | None, replicas: int, *, carries_load: bool, running: bool) -> Option:
    cost = variant.cost_per_replica_hour_decimal * replicas
    memory = memory_per_replica(variant, observation)
    budget = spec.memory
    fits_per_replica = budget is None or budget.max_per_replica_bytes is None or (
        memory <= budget.max_per_replica_bytes)
    within_total = budget is None or budget.max_total_bytes is None or memory * replicas <= budget.max_total_bytes
    return Option(
        variant=variant,
        replicas=replicas,
        sizing=sizing,
        performance=perf,
        cost_per_hour=cost,
        latency_ms=predicted_latency_ms(spec, perf, sizing, replicas),
        carries_load=carries_load,
        within_cost=spec.cost is None or cost <= spec.cost.max_per_hour_decimal,
        within_memory=fits_per_replica and within_total,
        memory_per_replica_fits=fits_per_replica,
        running=running,
    )


def replica_cap(spec: InferenceBudgetSpec, variant: Variant, memory_per_replica: int) -> int:
    """Most replicas of the variant within replicas.max, the cost ceiling and memory.maxTotal."""
    return min(spec.replicas.max, cost_cap(spec, variant), memory_cap(spec, memory_per_replica))


def cost_cap(spec: InferenceBudgetSpec, variant: Variant) -> int:
    """Most replicas of the variant within the cost ceiling."""
    price = variant.cost_per_replica_hour_decimal
    if spec.cost is None or price <= 0:
        return UNBOUNDED
    return int(spec.cost.max_per_hour_decimal // price)


def memory_cap(spec: InferenceBudgetSpec, memory_per_replica: int) -> int:
    """Most replicas of this memory within memory.maxTotal."""
    if spec.memory is None or spec.memory.max_total_bytes is None or memory_per_replica <= 0:
        return UNBOUNDED
    return spec.memory.max_total_bytes // memory_per_replica


def memory_per_replica(variant: Variant, observation: Observation) -> int:
    """Measured memory for the running variant when there is a measurement, else the declared figure."""
    measured = observation.memory_per_replica_bytes
    if variant.name == observation.variant and measured is not None:
        return measured
    return variant.memory_bytes


def predicted_latency_ms(spec: InferenceBudgetSpec, perf: Performance, sizing: Sizing | None,
                          replicas: int) -> float | None:
    line = perf.line(spec.latency.threshold_ms / 1000.0)
    if line is None or sizing is None or replicas <= 0:
        return None
    latency_s = line.latency_s(sizing.planned_load / replicas)
    return latency_s * 1000.0 if latency_s is not None else None
