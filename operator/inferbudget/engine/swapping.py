"""Swapping the variant: when it is due, when it must wait, and why.

A swap is a rollout: new pods start, the old ones go. It is worth it only on sustained evidence, so another
variant must have been the better choice on every cycle for swap.sustainSeconds, and swaps are at least
swap.cooldownSeconds apart. A hard breach by the running variant skips both (see engine.core).

One advantage needs no sustaining: a variant that `outclasses` the running one (no dearer a replica, of no lower
quality, within the memory budget, and carrying more a replica by more than the swap margin) is the better choice
at any load, so no passing load made it so; waiting would only leave the fleet on the weaker variant for the
first bursts (on the Azure code trace, bf16 where fp8 carries 2.7 times as much for the same price). It is
swapped to at once, as FasterVariant; the cooldown, the rollout and the blind rules still apply.
"""

from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.engine import messages as say
from inferbudget.engine.decision import Decision, Reason, hold
from inferbudget.engine.observation import Observation
from inferbudget.engine.planning import SWAP_MARGIN, Plan
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
    if sustained < policy.sustain_seconds and not outclasses(plan):
        message = f"{better}; sustained {say.seconds(sustained)} of {say.seconds(policy.sustain_seconds)}"
        return hold(spec, variant, replicas, "Stabilizing", message, feasible=None)
    since_swap = now - state.last_swap_at if state.last_swap_at is not None else None
    if since_swap is not None and since_swap < policy.cooldown_seconds:
        message = (f"{better}; last swap {say.seconds(since_swap)} ago, cooldown "
                   f"{say.seconds(policy.cooldown_seconds)}")
        return hold(spec, variant, replicas, "SwapCooldown", message, feasible=None)
    return None


def outclasses(plan: Plan) -> bool:
    """The better variant beats the running one whatever the load (see the module's docstring)."""
    best, running = plan.best, plan.running
    if running is None or best.performance.capacity is None or running.performance.capacity is None:
        return False
    return (best.variant.cost_per_replica_hour_decimal <= running.variant.cost_per_replica_hour_decimal
            and best.variant.quality >= running.variant.quality and best.within_memory
            and best.performance.capacity > running.performance.capacity * (1 + SWAP_MARGIN))


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
    if outclasses(plan):
        return "FasterVariant"
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
    if reason == "FasterVariant" and running is not None:
        return _capacities(plan)
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
        case "FasterVariant":
            return (f"{best.variant.name} carries more a replica than {name} ({_advantage(plan)}) for no more and "
                    f"at no lower quality: better at any load")
        case _:
            return f"{best.variant.name} (quality {best.variant.quality:g}) fits every budget"


def _capacities(plan: Plan) -> str:
    best, running = plan.best, plan.running
    assert running is not None and best.performance.capacity is not None
    return (f"{say.rate(best.performance.capacity)} instead of "
            f"{say.rate(running.performance.capacity or 0.0)}")
