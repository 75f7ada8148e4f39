"""Swapping the variant: when it is due, when it must wait, and why.

A swap is a rollout: new pods start, the old ones go. It is worth it only on sustained evidence, so another
variant must have been the better choice on every cycle for swap.sustainSeconds, and swaps are at least
swap.cooldownSeconds apart. A hard breach by the running variant skips both (see engine.core).
"""

from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.engine import messages as say
from inferbudget.engine.decision import Decision, Reason, hold
from inferbudget.engine.observation import Observation
from inferbudget.engine.planning import Plan
from inferbudget.engine.state import EngineState, Preference


def hard_breach(spec: InferenceBudgetSpec, observation: Observation, state: EngineState,
                plan: Plan) -> Reason | None:
    """Why the running variant must go at once, if it must."""
    running = spec.variant(observation.variant) if observation.variant else None
    if running is None:
        return "UnknownVariant"
    if running.quality < spec.policy.min_quality:
        return "QualityFloor"
    if running.name in state.failures:
        return "VariantRolledBack"
    option = plan.running
    if option is not None and not option.within_memory:
        return "MemoryOverBudget"
    if option is not None and not option.within_cost:
        return "CostCeiling"
    return None


def swap_wait(spec: InferenceBudgetSpec, observation: Observation, state: EngineState, plan: Plan,
              preferred: Preference, now: float) -> Decision | None:
    """The hold that keeps a swap waiting, or None when the swap is due."""
    policy = spec.policy.swap
    better = f"{plan.best.variant.name} would be better ({_advantage(plan)})"
    sustained = now - preferred.since
    variant, replicas = observation.variant, observation.desired_replicas
    if sustained < policy.sustain_seconds:
        message = f"{better}; sustained {say.seconds(sustained)} of {say.seconds(policy.sustain_seconds)}"
        return hold(spec, variant, replicas, "Stabilizing", message, feasible=None)
    since_swap = now - state.last_swap_at if state.last_swap_at is not None else None
    if since_swap is not None and since_swap < policy.cooldown_seconds:
        message = (f"{better}; last swap {say.seconds(since_swap)} ago, cooldown "
                   f"{say.seconds(policy.cooldown_seconds)}")
        return hold(spec, variant, replicas, "SwapCooldown", message, feasible=None)
    return None


def swap(spec: InferenceBudgetSpec, observation: Observation, plan: Plan, breach: Reason | None) -> Decision:
    best = plan.best
    reason = breach or _soft_reason(plan)
    change = (f"{say.fleet(observation.desired_replicas, observation.variant)} -> "
              f"{say.fleet(best.replicas, best.variant.name)} ({say.money(best.cost_per_hour)})")
    return Decision(
        action="Swap", reason=reason, message=f"{_why(spec, observation, plan, reason)}: {change}",
        variant=best.variant.name, replicas=best.replicas, predicted_latency_ms=best.latency_ms,
        predicted_cost_per_hour=best.cost_per_hour, feasible=None,
    )


def _soft_reason(plan: Plan) -> Reason:
    best, running = plan.best, plan.running
    if running is None:
        return "UnknownVariant"
    if not running.carries_load and best.carried_load > running.carried_load:
        return "LatencyOverBudget"
    if best.cost_per_hour < running.cost_per_hour:
        return "CheaperVariant"
    return "BetterQualityFits"


def _advantage(plan: Plan) -> str:
    best, running = plan.best, plan.running
    reason = _soft_reason(plan)
    if reason == "CheaperVariant" and running is not None:
        return f"{say.money(best.cost_per_hour)} instead of {say.money(running.cost_per_hour)}"
    if reason == "LatencyOverBudget":
        return "it carries more of the load within the caps"
    return f"quality {best.variant.quality:g}"


def _why(spec: InferenceBudgetSpec, observation: Observation, plan: Plan, reason: Reason) -> str:
    name = observation.variant
    running = spec.variant(name) if name else None
    best = plan.best
    match reason:
        case "UnknownVariant":
            return f"{name or 'the workload'}'s variant is not one of this budget's"
        case "QualityFloor":
            quality = running.quality if running is not None else 0.0
            return f"{name} quality {quality:g} is below minQuality {spec.policy.min_quality:g}"
        case "VariantRolledBack":
            return f"the rollout of {name} failed"
        case "MemoryOverBudget":
            return f"{name} does not fit the memory budget"
        case "CostCeiling":
            return f"{name} costs more than the ceiling even at replicas.min"
        case "LatencyOverBudget":
            load = best.sizing.planned_load if best.sizing is not None else 0.0
            return f"{name} cannot carry {say.rate(load)} within its caps"
        case "CheaperVariant":
            return f"{best.variant.name} carries the load for less ({_advantage(plan)})"
        case _:
            return f"{best.variant.name} (quality {best.variant.quality:g}) fits every budget"
