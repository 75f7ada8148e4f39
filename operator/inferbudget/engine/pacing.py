"""Pacing the running variant's replica count: up fast, down slowly, never in a flap.

Up: at once to what the forecast needs, but by at most max(maxStepPercent % of the count, maxStepReplicas) a
step, as the HPA's scale-up policies do. Down: only to what the highest load of the scale-down window needs (see
engine.planning for the dead band), by at most maxStepPercent % a step, and only once a whole window has been
observed. A count above what the cost ceiling or memory.maxTotal allow is cut at once: that is a budget breach,
not a load change.
"""

import math

from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import Action
from inferbudget.engine import messages as say
from inferbudget.engine.bursts import peak_half_life
from inferbudget.engine.decision import Decision, Reason, hold
from inferbudget.engine.observation import Observation
from inferbudget.engine.planning import Option, Plan, cost_cap, memory_cap, memory_per_replica, predicted_latency_ms


def pace(spec: InferenceBudgetSpec, observation: Observation, plan: Plan) -> Decision:
    option = plan.running
    current = observation.desired_replicas
    if option is None or option.sizing is None:
        message = (f"capacity of {observation.variant} unknown (no capacityHint, nothing learned yet): "
                   f"holding {say.fleet(current, observation.variant)}")
        return hold(spec, observation.variant, current, "CapacityUnknown", message, feasible=None)
    if option.replicas > current:
        return _scale_up(spec, observation, option)
    if option.replicas < current:
        return _scale_down(spec, observation, option)
    return _steady(spec, observation, option)


def _scale_up(spec: InferenceBudgetSpec, observation: Observation, option: Option) -> Decision:
    current = observation.desired_replicas
    policy = spec.policy.scale_up
    step = max(math.ceil(current * policy.max_step_percent / 100), policy.max_step_replicas)
    target = min(option.replicas, current + step)
    capped = f" (step cap; {option.replicas} needed)" if target < option.replicas else ""
    change = f"{current} -> {say.fleet(target, option.variant.name)}{capped}"
    latency_ms, threshold = observation.latency_ms, spec.latency.threshold_ms
    load = observation.requests_per_second or 0.0
    if latency_ms is not None and latency_ms > threshold:
        message = (f"{say.percentile(spec)} {say.latency(latency_ms)} > {say.latency(threshold)} at "
                   f"{say.rate(load)}: {change}")
        return _change(spec, option, "ScaleUp", "LatencyOverBudget", message, target)
    if _burst_bound(option):
        return _change(spec, option, "ScaleUp", "BurstHeadroom", f"{_bursts(option, load)}: {change}", target)
    return _change(spec, option, "ScaleUp", "CapacityForecast", f"{_growth(option, load)}: {change}", target)


def _burst_bound(option: Option) -> bool:
    """The burst floor, not the forecast or the window, sets the count (engine.bursts)."""
    assert option.sizing is not None
    return option.sizing.burst_load > max(option.sizing.planned_load, option.sizing.window_load)


def _bursts(option: Option, load: float) -> str:
    assert option.sizing is not None
    return (f"{say.rate(load)}, but bursts within {say.seconds(option.sizing.horizon_seconds)} (a replica's "
            f"start-up) have breached the latency lately: keeping replicas for {say.rate(option.sizing.burst_load)}")


def _growth(option: Option, load: float) -> str:
    assert option.sizing is not None
    planned = option.sizing.planned_load
    if planned > load * 1.005:
        return (f"{say.rate(load)} rising to {say.rate(planned)} within "
                f"{say.seconds(option.sizing.horizon_seconds)}")
    return f"{say.rate(load)} needs more replicas"


def _scale_down(spec: InferenceBudgetSpec, observation: Observation, option: Option) -> Decision:
    current = observation.desired_replicas
    over_cost = current > cost_cap(spec, option.variant)
    if over_cost or current > memory_cap(spec, memory_per_replica(option.variant, observation)):
        return _cut_to_caps(spec, observation, option, "CostCeiling" if over_cost else "MemoryOverBudget")
    assert option.sizing is not None
    step = max(1, current * spec.policy.scale_down.max_step_percent // 100)
    target = max(option.replicas, current - step)
    seconds = spec.policy.scale_down.stabilization_seconds
    load = (f"peak {say.rate(option.sizing.window_load)} over the last {say.seconds(seconds)}" if seconds
            else say.rate(option.sizing.window_load))  # no scale-down window: the load now, not a peak
    bursts = _recalled(option, seconds) or (
        f" (with the burst headroom, {say.rate(option.sizing.burst_load)})" if _burst_bound(option) else "")
    message = (f"{load}{bursts} needs {option.replicas}{_unproven(option)}: {current} -> "
               f"{say.fleet(target, option.variant.name)}")
    return _change(spec, option, "ScaleDown", "LoadFell", message, target)


def _recalled(option: Option, scale_down_seconds: float) -> str:
    """Say so when recent bursts' remembered peak, not the window or the burst headroom, sets how far the fleet
    may shrink (then it, and only it, is said: one reason in parentheses)."""
    assert option.sizing is not None
    sizing = option.sizing
    if sizing.recalled_load <= max(sizing.window_load, sizing.burst_load):
        return ""
    half_life = peak_half_life(scale_down_seconds)
    return (f" (recurring bursts: their peak, halved every {say.seconds(half_life)} since, is "
            f"{say.rate(sizing.recalled_load)})")


def _unproven(option: Option) -> str:
    """Say so when the proven load (engine.planning.proven_capacity), not the capacity, sets how far the fleet may
    shrink."""
    assert option.sizing is not None
    down = option.sizing.proven_capacity
    if down is None:
        return ""
    return (f" (planning a replica for at most {say.rate(down)}: replicas have been seen to serve at most "
            f"{say.rate(option.performance.proven or 0.0)} each within the budget)")


def _cut_to_caps(spec: InferenceBudgetSpec, observation: Observation, option: Option, reason: Reason) -> Decision:
    current, target = observation.desired_replicas, option.replicas
    name = option.variant.name
    if reason == "CostCeiling":
        assert spec.cost is not None
        price = option.variant.cost_per_replica_hour_decimal
        why = f"{current} replicas of {name} cost {say.money(price * current)} > {spec.cost.max_per_hour}/h"
    else:
        why = f"{current} replicas of {name} exceed memory.maxTotal"
    return _change(spec, option, "ScaleDown", reason, f"{why}: {current} -> {target}", target)


def _steady(spec: InferenceBudgetSpec, observation: Observation, option: Option) -> Decision:
    """No change: either the load fell and the window still holds the replicas, or all is within budget."""
    assert option.sizing is not None
    current, name = observation.desired_replicas, option.variant.name
    settled = max(option.sizing.settled, spec.replicas.min)
    load = observation.requests_per_second or 0.0
    if settled < current:
        window = say.seconds(spec.policy.scale_down.stabilization_seconds)
        message = (f"{say.rate(load)} needs {settled}{_unproven(option)}; holding {say.fleet(current, name)} until "
                   f"the load has stayed low for the {window} scale-down window"
                   f"{_recalled(option, spec.policy.scale_down.stabilization_seconds)}")
        return hold(spec, name, current, "Stabilizing", message, feasible=None, latency_ms=option.latency_ms)
    latency, threshold = observation.latency_ms, spec.latency.threshold_ms
    fleet = f"{say.fleet(current, name)} ({say.money(option.cost_per_hour)})"
    reason: Reason = "WithinBudget"
    if latency is None:
        message = f"{say.rate(load)}: {fleet}"
    elif latency <= threshold:
        measured = f"{say.percentile(spec)} {say.latency(latency)} <= {say.latency(threshold)}"
        message = f"{measured} at {say.rate(load)}: {fleet}"
    else:
        reason, message = _over_threshold(spec, observation, option, fleet)
    return Decision(action="None", reason=reason, message=message, variant=name, replicas=current,
                    predicted_latency_ms=option.latency_ms, predicted_cost_per_hour=option.cost_per_hour,
                    feasible=None)


def _over_threshold(spec: InferenceBudgetSpec, observation: Observation, option: Option,
                    fleet: str) -> tuple[Reason, str]:
    """The measured latency is over the threshold although the plan keeps the count: say why, truthfully."""
    assert option.sizing is not None and observation.latency_ms is not None
    measured = (f"{say.percentile(spec)} {say.latency(observation.latency_ms)} > "
                f"{say.latency(spec.latency.threshold_ms)} at {say.rate(observation.requests_per_second or 0.0)}")
    planned = say.rate(option.sizing.planned_load)
    if not option.carries_load:
        return "LatencyOverBudget", f"{measured}: holding {fleet}, the most the caps allow"
    carry = "carries" if observation.desired_replicas == 1 else "carry"
    if observation.ready_replicas < observation.desired_replicas:
        return "ReplicasStarting", (f"{measured} with {observation.ready_replicas} of {observation.desired_replicas} "
                                    f"replicas Ready; {fleet} {carry} the planned {planned} once Ready: holding")
    return "LatencyOverPlan", (f"{measured}, yet {fleet} {carry} the planned {planned}: holding (a burst shorter "
                               f"than the load's one-minute smoothing, or capacity still being learned)")


def _change(spec: InferenceBudgetSpec, option: Option, action: Action, reason: Reason, message: str,
            target: int) -> Decision:
    return Decision(
        action=action, reason=reason, message=message, variant=option.variant.name, replicas=target,
        predicted_latency_ms=predicted_latency_ms(spec, option.performance, option.sizing, target),
        predicted_cost_per_hour=option.variant.cost_per_replica_hour_decimal * target,
        feasible=None,
    )
