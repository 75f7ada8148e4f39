"""What the operator reports about a budget: conditions, the observed figures and the decision record.

Pure functions from plain data to status models, so the reconcile loop stays a sentence and the wording
of every condition is tested in one place.
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from inferbudget.api.quantity import format_bytes
from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import Condition, DecisionRecord, Observed, Prediction, PredictionError

HISTORY_LENGTH = 20


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(conditions: list[Condition], type_: str, status: str, reason: str, message: str,
                  now: float, generation: int | None) -> list[Condition]:
    """The conditions with one set; its lastTransitionTime moves only when its status changes."""
    previous = next((c for c in conditions if c.type == type_), None)
    since = previous.last_transition_time if previous and previous.status == status else iso(now)
    updated = Condition(type=type_, status=status, reason=reason, message=message[:4096],
                        last_transition_time=since, observed_generation=generation)
    return [c for c in conditions if c.type != type_] + [updated]


@dataclass(frozen=True)
class Figures:
    """What was observed this cycle, in plain numbers."""

    latency_ms: float | None
    memory_per_replica_bytes: int | None
    requests_per_second: float | None
    replicas: int
    ready_replicas: int
    variant: str | None


def cost_per_hour(spec: InferenceBudgetSpec, variant: str | None, replicas: int) -> Decimal | None:
    chosen = spec.variant(variant) if variant else None
    return chosen.cost_per_replica_hour_decimal * replicas if chosen else None


def breaches(spec: InferenceBudgetSpec, figures: Figures) -> dict[str, bool]:
    """Which budgets the observed figures break: latency, memory, cost (unknown figures break nothing)."""
    memory_limit = spec.memory.max_per_replica_bytes if spec.memory else None
    total_limit = spec.memory.max_total_bytes if spec.memory else None
    memory = figures.memory_per_replica_bytes
    cost = cost_per_hour(spec, figures.variant, figures.replicas)
    return {
        "latency": figures.latency_ms is not None and figures.latency_ms > spec.latency.threshold_ms,
        "memory": memory is not None and (
            (memory_limit is not None and memory > memory_limit)
            or (total_limit is not None and memory * figures.ready_replicas > total_limit)),
        "cost": cost is not None and spec.cost is not None and cost > spec.cost.max_per_hour_decimal,
    }


def observed(spec: InferenceBudgetSpec, figures: Figures, now: float) -> Observed:
    cost = cost_per_hour(spec, figures.variant, figures.replicas)
    currency = spec.cost.currency if spec.cost else "USD"
    budget_memory = spec.memory.max_per_replica if spec.memory and spec.memory.max_per_replica else "-"
    latency = f"{figures.latency_ms:.0f}ms" if figures.latency_ms is not None else "?"
    memory = format_bytes(figures.memory_per_replica_bytes) if figures.memory_per_replica_bytes is not None else "?"
    ceiling = spec.cost.max_per_hour if spec.cost else "-"
    return Observed(
        time=iso(now), latency_ms=figures.latency_ms, memory_per_replica_bytes=figures.memory_per_replica_bytes,
        requests_per_second=figures.requests_per_second, replicas=figures.replicas,
        ready_replicas=figures.ready_replicas, variant=figures.variant,
        cost_per_hour=f"{cost:.2f}" if cost is not None else None,
        latency=f"{latency}/{spec.latency.threshold_ms}ms",
        memory=f"{memory}/{budget_memory}",
        cost=f"{cost:.2f}/{ceiling} {currency}" if cost is not None else f"?/{ceiling} {currency}",
    )


def _parse(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def prediction_error(history: list[DecisionRecord], spec: InferenceBudgetSpec, figures: Figures,
                     now: float) -> PredictionError | None:
    """How far the prediction made at least one latency window ago is from what is observed now, as
    (observed - predicted) / predicted; None while the fleet differs from the one predicted (scaling,
    swapping, pods not Ready), since the two would not be comparable."""
    due = [entry for entry in history
           if entry.predicted is not None and now - _parse(entry.time) >= spec.latency.window_seconds]
    if not due:
        return None
    entry = due[-1]
    if (entry.variant, entry.replicas) != (figures.variant, figures.replicas) or (
            figures.ready_replicas < figures.replicas):
        return None
    assert entry.predicted is not None
    latency = _ratio(figures.latency_ms, entry.predicted.latency_ms)
    observed_cost = cost_per_hour(spec, figures.variant, figures.replicas)
    cost = _ratio(float(observed_cost) if observed_cost is not None else None,
                  float(entry.predicted.cost_per_hour) if entry.predicted.cost_per_hour else None)
    return PredictionError(latency=latency, cost=cost) if latency is not None or cost is not None else None


def _ratio(observed: float | None, predicted: float | None) -> float | None:
    if observed is None or not predicted:
        return None
    return (observed - predicted) / predicted


def record(action: str, reason: str, message: str, variant: str | None, replicas: int,
           predicted_latency_ms: float | None, predicted_cost: Decimal | None, now: float) -> DecisionRecord:
    return DecisionRecord(
        time=iso(now), action=action, reason=reason, message=message[:1024],
        variant=variant, replicas=replicas,
        predicted=Prediction(latency_ms=predicted_latency_ms,
                             cost_per_hour=f"{predicted_cost:.2f}" if predicted_cost is not None else None))


def with_history(history: list[DecisionRecord], latest: DecisionRecord) -> list[DecisionRecord]:
    """History keeps decisions that changed something or changed the reason, newest last, bounded. The same
    decision again (a hold that goes on, or a change retried because it was not carried out yet) is kept once."""
    if history and _same(history[-1], latest):
        return history
    return [*history, latest][-HISTORY_LENGTH:]


def _same(earlier: DecisionRecord, later: DecisionRecord) -> bool:
    if later.action in ("None", "Hold"):
        return earlier.reason == later.reason
    return (earlier.action, earlier.reason, earlier.variant, earlier.replicas) == (
        later.action, later.reason, later.variant, later.replicas)
