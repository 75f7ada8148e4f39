"""decide(): one cycle of the engine, as rules from the most to the least urgent.

1. Paused: nothing is decided.
2. Replica bounds: a count outside replicas.min..max is brought inside (the user's bounds, not a metric).
3. Blind (metrics missing or stale): hold; with whenMetricsMissing.action Fallback, after afterSeconds, scale UP
   to fallbackReplicas. Never scale down or swap blind.
4. Rollout in progress: hold until it has finished, except to add capacity (a Deployment scales proportionally
   mid-rollout, and waiting out a rollout under rising load would breach the latency budget).
5. A hard breach by the running variant (not in the budget, below the quality floor, its rollout failed, memory
   over budget, over the cost ceiling even at replicas.min): swap at once to the best option. The sustain period
   and the cooldown exist to avoid churn, not to prolong a breach, so they are skipped.
6. A better variant: swap once it has been the better choice for swap.sustainSeconds on end (at once when it
   is better at any load: engine.swapping.outclasses) and swap.cooldownSeconds have passed since the last swap;
   meanwhile the running variant is paced as in 7.
7. Pace the running variant: up at once, capped per step, to what the forecast needs; down only to what the
   scale-down window's peak needs, capped per step, once a whole window has been observed.
Loads are counted in requests of the size first seen, so that longer requests count as more load (engine.work).
When no option meets every budget, the decision aims at the least bad one (see engine.planning) and its reason
is Infeasible.
"""

from dataclasses import dataclass, replace

from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import Action
from inferbudget.engine import messages as say
from inferbudget.engine.bursts import (
    base_load,
    excess,
    headroom,
    peak_half_life,
    recalled_load,
    remember_bases,
    remember_excess,
    remember_peak,
)
from inferbudget.engine.decision import Decision, Reason, cost_of, hold
from inferbudget.engine.forecast import forecast, load_now, remember_planned, remember_rate, trend
from inferbudget.engine.learning import learn_capacity, startup_seconds, track_fleet
from inferbudget.engine.observation import Observation
from inferbudget.engine.pacing import pace
from inferbudget.engine.planning import Loads, Option, Plan, plan
from inferbudget.engine.state import EngineState, PredictionRecord, Preference
from inferbudget.engine.swapping import hard_breach, swap, swap_wait
from inferbudget.engine.window import highest, lowest, remember
from inferbudget.engine.work import in_reference_requests, remember_size, size_note

DEFAULT_CYCLE_SECONDS = 30.0  # until two cycles have been seen

# Reasons that describe the plan itself; when the plan is infeasible they give way to Infeasible.
_PLANNING_REASONS: frozenset[Reason] = frozenset({
    "WithinBudget", "ReplicasStarting", "LatencyOverPlan", "LatencyOverBudget", "BurstHeadroom", "CapacityForecast",
    "LoadFell", "CheaperVariant", "FasterVariant", "BetterQualityFits"})


def decide(spec: InferenceBudgetSpec, observation: Observation, state: EngineState,
           now: float) -> tuple[Decision, EngineState]:
    """The decision for this cycle and the state to pass to the next one. Pure: same inputs, same outputs."""
    if spec.paused:
        paused = hold(spec, observation.variant, observation.desired_replicas, "Paused",
                      "spec.paused is true: nothing is decided", feasible=None)
        return paused, state
    observation = observation.plausible()
    blindness = _blindness(spec, observation, now)
    if blindness is None:
        state = remember_size(state, observation, spec.latency.window_seconds)
    observation = in_reference_requests(observation, state)
    state = _remember(spec, observation, state, now, blind=blindness is not None)
    cycle = Cycle(spec, observation, state, now)
    decision, preferred = _rules(cycle, blindness)
    if say.LOAD_UNIT in decision.message:  # the message names a load, counted in requests of the reference size
        decision = replace(decision, message=decision.message + size_note(state))
    return decision, _after(state, decision, preferred, now)


@dataclass(frozen=True, slots=True)
class Cycle:
    """The inputs of one decision, with the figures derived from them."""

    spec: InferenceBudgetSpec
    observation: Observation
    state: EngineState
    now: float

    @property
    def running(self) -> str | None:
        return self.observation.variant

    @property
    def replicas(self) -> int:
        return self.observation.desired_replicas

    def loads(self) -> Loads:
        current = load_now(self.state.rates, self.now, self.observation.requests_per_second or 0.0)
        up_seconds, down_seconds = self._windows()
        span = max(up_seconds, down_seconds)
        peak = highest(self.state.window, self.now, down_seconds, span)
        low = lowest(self.state.window, self.now, up_seconds, span)
        return Loads(
            current=current,
            slope=trend(self.state.rates),
            peak=max(current, peak if peak is not None else current),
            low=min(current, low if low is not None else current),
            cycle_seconds=self.state.cycle_seconds or DEFAULT_CYCLE_SECONDS,
            base=base_load(self.state.rates, self.now),
            burst_headroom=headroom(self.state.burst_excesses),
            recalled=recalled_load(self.state.burst_peaks, self.now,
                                   peak_half_life(self.spec.policy.scale_down.stabilization_seconds)),
            held=max((load for _, load in self.state.planned), default=0.0),
        )

    def may_scale_down(self) -> bool:
        """A whole scale-down window has been observed (not so after a start, a restart or blindness)."""
        since = self.state.observing_since
        return since is not None and since <= self.now - self.spec.policy.scale_down.stabilization_seconds

    def plan(self) -> Plan | None:
        return plan(self.spec, self.observation, self.state, self.loads(), self.may_scale_down())

    def _windows(self) -> tuple[float, float]:
        policy = self.spec.policy
        return float(policy.scale_up.stabilization_seconds), float(policy.scale_down.stabilization_seconds)


def _rules(cycle: Cycle, blindness: Reason | None) -> tuple[Decision, Preference | None]:
    bounds = _replica_bounds(cycle)
    if bounds is not None:
        return bounds, None
    if blindness is not None:
        return _blind(cycle, blindness), None
    current_plan = cycle.plan()
    if current_plan is None:
        return hold(cycle.spec, cycle.running, cycle.replicas, "CapacityUnknown",
                    f"capacity of {cycle.running} unknown (no capacityHint, nothing learned yet): holding "
                    f"{say.fleet(cycle.replicas, cycle.running)}", feasible=None), None
    if cycle.observation.rollout_in_progress:
        return _with_feasibility(cycle, current_plan, _during_rollout(cycle, current_plan)), None
    decision, preferred = _act(cycle, current_plan)
    return _with_feasibility(cycle, current_plan, decision), preferred


def _during_rollout(cycle: Cycle, current_plan: Plan) -> Decision:
    """While a rollout runs, only capacity may be added (a Deployment scales proportionally mid-rollout);
    the next swap, and any scale-down, wait for it to finish."""
    paced = pace(cycle.spec, cycle.observation, current_plan)
    if paced.action == "ScaleUp":
        return paced
    observation = cycle.observation
    message = (f"rollout of {cycle.running} in progress ({observation.ready_replicas}/"
               f"{observation.desired_replicas} ready): holding")
    held = hold(cycle.spec, cycle.running, cycle.replicas, "RolloutInProgress", message, feasible=None)
    return _held_on(current_plan.running, held)


def _act(cycle: Cycle, current_plan: Plan) -> tuple[Decision, Preference | None]:
    """Rules 5 to 7: swap, wait for a swap, or pace the running variant."""
    spec, observation = cycle.spec, cycle.observation
    if current_plan.best.variant.name == cycle.running:
        return pace(spec, observation, current_plan), None
    breach = hard_breach(spec, observation, cycle.state, current_plan)
    if breach is not None or current_plan.running is None:
        return swap(spec, observation, current_plan, breach or "UnknownVariant"), None
    preferred = _preference(cycle.state, current_plan.best, cycle.now)
    waiting = swap_wait(spec, observation, cycle.state, current_plan, preferred, cycle.now)
    if waiting is None:
        return swap(spec, observation, current_plan, None), None
    paced = pace(spec, observation, current_plan)
    return (paced if paced.changes_workload else waiting), preferred


def _preference(state: EngineState, best: Option, now: float) -> Preference:
    """The better variant, and since when it has been the better one without interruption."""
    previous = state.preferred
    if previous is not None and previous.variant == best.variant.name:
        return previous
    return Preference(variant=best.variant.name, since=now)


def _replica_bounds(cycle: Cycle) -> Decision | None:
    bounds = cycle.spec.replicas
    target = min(max(cycle.replicas, bounds.min), bounds.max)
    if target == cycle.replicas:
        return None
    message = (f"{cycle.replicas} replicas is outside replicas {bounds.min}..{bounds.max}: "
               f"{cycle.replicas} -> {say.fleet(target, cycle.running)}")
    action: Action = "ScaleUp" if target > cycle.replicas else "ScaleDown"
    return replace(hold(cycle.spec, cycle.running, cycle.replicas, "ReplicaBounds", message, feasible=None),
                   action=action, replicas=target,
                   predicted_cost_per_hour=cost_of(cycle.spec, cycle.running, target))


def _blindness(spec: InferenceBudgetSpec, observation: Observation, now: float) -> Reason | None:
    if not observation.metrics_available or observation.sampled_at is None:
        return "MetricsMissing"
    if observation.requests_per_second is None:
        return "MetricsMissing"
    if now - observation.sampled_at > spec.policy.when_metrics_missing.stale_after_seconds:
        return "MetricsStale"
    return None


def _blind(cycle: Cycle, blindness: Reason) -> Decision:
    """Hold, or scale up to the fallback once metrics have been missing long enough; never down, never swap."""
    policy = cycle.spec.policy.when_metrics_missing
    blind_for = cycle.now - (cycle.state.blind_since if cycle.state.blind_since is not None else cycle.now)
    what = ("no metrics" if blindness == "MetricsMissing"
            else f"metrics older than {say.seconds(policy.stale_after_seconds)}")
    fallback = policy.fallback_replicas
    if (policy.action == "Fallback" and fallback is not None and blind_for >= policy.after_seconds
            and fallback > cycle.replicas):
        target = min(fallback, cycle.spec.replicas.max)
        change = f"{cycle.replicas} -> {say.fleet(target, cycle.running)}"
        message = f"{what} for {say.seconds(blind_for)}: {change} (fallback)"
        return replace(hold(cycle.spec, cycle.running, cycle.replicas, "FallbackReplicas", message, feasible=None),
                       action="ScaleUp", replicas=target,
                       predicted_cost_per_hour=cost_of(cycle.spec, cycle.running, target))
    message = f"{what} for {say.seconds(blind_for)}: holding {say.fleet(cycle.replicas, cycle.running)}"
    return hold(cycle.spec, cycle.running, cycle.replicas, blindness, message, feasible=None)


def _held_on(option: Option | None, decision: Decision) -> Decision:
    """A hold with the running option's predicted latency, when there is one."""
    if option is None or option.replicas != decision.replicas:
        return decision
    return replace(decision, predicted_latency_ms=option.latency_ms)


def _with_feasibility(cycle: Cycle, current_plan: Plan, decision: Decision) -> Decision:
    """Mark the decision with BudgetFeasible; an infeasible plan is said so rather than as a normal step."""
    if current_plan.feasible:
        return replace(decision, feasible=True)
    if decision.reason not in _PLANNING_REASONS:
        return replace(decision, feasible=False)
    best = current_plan.best
    why = (f"no option meets every budget; least bad: {say.fleet(best.replicas, best.variant.name)} "
           f"carrying {say.rate(best.carried_load)} of {say.rate(cycle.loads().current)} at "
           f"{say.money(best.cost_per_hour)}")
    return replace(decision, reason="Infeasible", message=f"{why}: {decision.message}", feasible=False)


def _remember(spec: InferenceBudgetSpec, observation: Observation, state: EngineState, now: float, *,
              blind: bool) -> EngineState:
    """Update what the engine knows from this observation (before deciding on it)."""
    state = track_fleet(state, spec, observation, now)
    if blind:
        # Trends and window coverage do not span a blind gap: a full window is observed again before any
        # scale-down. The window's old peaks are kept, which only makes scale-down more cautious.
        return state.model_copy(update={
            "blind_since": state.blind_since if state.blind_since is not None else now,
            "observing_since": None, "rates": (), "bases": (), "planned": ()})
    rps = observation.requests_per_second or 0.0
    policy = spec.policy
    span = float(max(policy.scale_up.stabilization_seconds, policy.scale_down.stabilization_seconds))
    state = learn_capacity(state, spec, observation, now)
    rates = remember_rate(state.rates, now, rps)
    horizon = startup_seconds(spec, state, observation.variant) + (state.cycle_seconds or DEFAULT_CYCLE_SECONDS)
    breached = observation.latency_ms is not None and observation.latency_ms > spec.latency.threshold_ms
    rise = excess(state.bases, rates, now, horizon, breached=breached)
    base, load = base_load(rates, now), load_now(rates, now, rps)
    return state.model_copy(update={
        "blind_since": None,
        "observing_since": state.observing_since if state.observing_since is not None else now,
        "rates": rates,
        "window": remember(state.window, now, load, span),
        "planned": remember_planned(state.planned, now, forecast(load, trend(rates), horizon), horizon),
        "bases": remember_bases(state.bases, now, base, horizon),
        "burst_excesses": remember_excess(state.burst_excesses, rise),
        "burst_peaks": remember_peak(state.burst_peaks, now, load, base,
                                     peak_half_life(policy.scale_down.stabilization_seconds)),
    })


def _after(state: EngineState, decision: Decision, preferred: Preference | None, now: float) -> EngineState:
    cost = decision.predicted_cost_per_hour
    previous = state.last_cycle_at
    return state.model_copy(update={
        "preferred": preferred,
        "cycle_seconds": now - previous if previous is not None and now > previous else state.cycle_seconds,
        "last_cycle_at": now,
        "last_prediction": PredictionRecord(
            at=now, variant=decision.variant, replicas=decision.replicas,
            latency_ms=decision.predicted_latency_ms, cost_per_hour=float(cost) if cost is not None else None),
    })
