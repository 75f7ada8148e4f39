"""What the engine decides, and the closed set of reasons it gives."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import Action

Reason = Literal[
    "WithinBudget",
    "ReplicasStarting",
    "LatencyOverPlan",
    "LatencyOverBudget",
    "BurstHeadroom",
    "CapacityForecast",
    "LoadFell",
    "CheaperVariant",
    "FasterVariant",
    "BetterQualityFits",
    "MemoryOverBudget",
    "CostCeiling",
    "QualityFloor",
    "UnknownVariant",
    "VariantRolledBack",
    "ReplicaBounds",
    "MetricsMissing",
    "MetricsStale",
    "FallbackReplicas",
    "RolloutInProgress",
    "Stabilizing",
    "SwapCooldown",
    "CapacityUnknown",
    "Infeasible",
    "Paused",
]

# One line per reason: what it means. docs/concepts.md shows these.
REASONS: dict[Reason, str] = {
    "WithinBudget": "the current variant and replica count carry the load within every budget; nothing to do",
    "ReplicasStarting": "the replicas asked for carry the planned load but some are still starting; the latency "
                        "measured is that of the fleet without them: held until they are Ready",
    "LatencyOverPlan": "the latency percentile is over its threshold although the replicas carry the planned load "
                       "(a burst shorter than the load's one-minute smoothing, or capacity still being learned): held; "
                       "when breaches keep coming, the learned capacity falls and the plan adds replicas",
    "BurstHeadroom": "bursts shorter than a replica's start-up have breached the latency lately: replicas kept for "
                     "the level plus the typical rise of such bursts",
    "LatencyOverBudget": "the latency percentile is over its threshold: more replicas (or a faster variant)",
    "CapacityForecast": "the load forecast over the replicas' start-up time needs more replicas than run now",
    "LoadFell": "the highest load of the scale-down stabilization window needs fewer replicas",
    "CheaperVariant": "another variant carries the load for less, and has for policy.swap.sustainSeconds",
    "FasterVariant": "another variant, no dearer a replica and of no lower quality, carries more a replica (by more "
                     "than the 10% swap margin): better at any load, so swapped without waiting for "
                     "policy.swap.sustainSeconds (the cooldown still applies)",
    "BetterQualityFits": "a higher-quality variant fits every budget (and, with MinimizeCost, costs no more)",
    "MemoryOverBudget": "the variant uses more memory than memory.maxPerReplica or memory.maxTotal allow",
    "CostCeiling": "the current replicas cost more than cost.maxPerHour",
    "QualityFloor": "the variant running is below policy.minQuality",
    "UnknownVariant": "the workload runs a variant this budget does not list: swapped to the best listed one",
    "VariantRolledBack": "the variant's rollout failed: moved to the best other variant, retried after a back-off",
    "ReplicaBounds": "the replica count is outside replicas.min..max",
    "MetricsMissing": "no trustworthy metrics: the workload is held as it is (never scaled down or swapped blind)",
    "MetricsStale": "the newest metric samples are older than whenMetricsMissing.staleAfterSeconds: held",
    "FallbackReplicas": "metrics have been missing for whenMetricsMissing.afterSeconds: scaled up to the fallback",
    "RolloutInProgress": "a variant rollout is under way: the next change waits for it to finish",
    "Stabilizing": "a change is indicated but the stabilization window or sustained-evidence period holds it",
    "SwapCooldown": "a better variant is known but policy.swap.cooldownSeconds have not passed since the last swap",
    "CapacityUnknown": "no capacity hint and nothing learned yet for the variant: replicas kept until measured",
    "Infeasible": "no variant and replica count meets every budget: the least bad option is chosen",
    "Paused": "spec.paused is true: nothing is decided",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    """One cycle's decision: where the workload should be, why, and what that is expected to give."""

    action: Action
    reason: Reason
    message: str  # one line for people, e.g. "p95 1.2s > 800ms at 9.1 req/s: 3 -> 5 replicas of bf16"
    variant: str | None  # target variant (None only while the workload's variant is unknown and held)
    replicas: int  # target replicas
    predicted_latency_ms: float | None  # at the planned load; None when unknown or overloaded
    predicted_cost_per_hour: Decimal | None  # of the target; None when the variant is unknown
    feasible: bool | None  # BudgetFeasible: some option meets every budget; None: not assessed (blind, paused)

    @property
    def changes_workload(self) -> bool:
        return self.action in ("ScaleUp", "ScaleDown", "Swap")


def cost_of(spec: InferenceBudgetSpec, variant_name: str | None, replicas: int) -> Decimal | None:
    """Cost per hour of that many replicas of the variant (None for a variant the budget does not list)."""
    variant = spec.variant(variant_name) if variant_name else None
    return variant.cost_per_replica_hour_decimal * replicas if variant is not None else None


def hold(spec: InferenceBudgetSpec, variant: str | None, replicas: int, reason: Reason, message: str, *,
         feasible: bool | None, latency_ms: float | None = None) -> Decision:
    """Keep the workload as it is."""
    return Decision(action="Hold", reason=reason, message=message, variant=variant, replicas=replicas,
                    predicted_latency_ms=latency_ms, predicted_cost_per_hour=cost_of(spec, variant, replicas),
                    feasible=feasible)
