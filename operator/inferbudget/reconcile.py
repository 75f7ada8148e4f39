"""One reconcile of one budget, as a sentence: observe -> decide -> act -> report.

`plan()` is pure: from the budget, the workload, the metrics and the time it works out the decision, the
status to write and the Events to post. `execute()` carries out the change on the workload. handlers.py
wires both to kopf. Nothing that matters is kept in memory: the engine's state travels in the status.
"""

from dataclasses import dataclass, field

from kubernetes import client

from inferbudget import report
from inferbudget.actuate import kube
from inferbudget.actuate.workload import Workload
from inferbudget.api.spec import InferenceBudgetSpec, LatencyBudget
from inferbudget.api.status import InferenceBudgetStatus
from inferbudget.engine import decide
from inferbudget.engine.decision import Decision
from inferbudget.engine.observation import FailedRollout, Observation
from inferbudget.engine.state import EngineState
from inferbudget.metrics.observe import BudgetMetrics


@dataclass(frozen=True)
class Event:
    reason: str
    message: str
    warning: bool = False


@dataclass
class Plan:
    status: InferenceBudgetStatus
    decision: Decision | None = None
    act: bool = False  # change the workload (Enforce mode, nothing in the way)
    events: list[Event] = field(default_factory=list)
    figures: report.Figures | None = None


def arriving(metrics: BudgetMetrics, latency: LatencyBudget) -> float | None:
    """Requests per second arriving at the model, as far as Prometheus shows: the completions, plus, while the
    latency is over budget, the requests waiting in the servers' queues spread over the latency window (served
    within it, they let the percentile recover). Completions alone hide an overload: a saturated server completes
    what it can (a thrashing one even less), its queue grows, and the engine saw a load its replicas carry while
    the percentile ran away (bench/scale.py's load jump to 2.5x capacity: p95 14.5 s, then 38.7 s, at 22.5 req/s
    completed, held as LatencyOverPlan; in one run no scale for 300 s). Within budget the queue is left out: a
    short queue then is a burst the replicas absorb, not load to add replicas for (counted at any latency, it
    most likely made the scale bench scale up hundreds of budgets at 60% load on its simulated servers' small
    queues)."""
    if metrics.requests_per_second is None:
        return None
    over = metrics.latency_ms is not None and metrics.latency_ms > latency.threshold_ms
    return metrics.requests_per_second + (max(metrics.queue or 0.0, 0.0) / latency.window_seconds if over else 0.0)


def observation_of(workload: Workload, metrics: BudgetMetrics | None, latency: LatencyBudget) -> Observation:
    failed = None
    if workload.deadline_exceeded_at is not None and workload.variant is not None:
        failed = FailedRollout(variant=workload.variant, failed_at=workload.deadline_exceeded_at)
    available = metrics is not None and metrics.available
    return Observation(
        sampled_at=metrics.newest_sample_time if metrics else None,
        requests_per_second=arriving(metrics, latency) if available and metrics else None,
        latency_ms=metrics.latency_ms if available and metrics else None,
        memory_per_replica_bytes=metrics.memory_per_replica_bytes if available and metrics else None,
        tokens_per_request=metrics.tokens_per_request if available and metrics else None,
        variant=workload.variant,
        desired_replicas=workload.desired_replicas,
        ready_replicas=workload.ready_replicas,
        rollout_in_progress=workload.rollout_in_progress,
        failed_rollout=failed,
        metrics_available=available,
    )


def _conditions(status: InferenceBudgetStatus, now: float, generation: int | None,
                *updates: tuple[str, str, str, str]) -> InferenceBudgetStatus:
    conditions = list(status.conditions)
    for type_, value, reason, message in updates:
        conditions = report.set_condition(conditions, type_, value, reason, message, now, generation)
    return status.model_copy(update={"conditions": conditions})


def _transitioned(before: InferenceBudgetStatus, after: InferenceBudgetStatus, type_: str) -> bool:
    def value(status: InferenceBudgetStatus) -> str | None:
        return next((c.status for c in status.conditions if c.type == type_), None)
    return value(before) != value(after)


def plan(spec: InferenceBudgetSpec, status: InferenceBudgetStatus, generation: int | None,
         workload: Workload | None, metrics: BudgetMetrics | None, conflicts: list[str], now: float) -> Plan:
    """What to do for one budget this cycle, without doing it."""
    if spec.paused:
        paused = _conditions(status, now, generation, ("Ready", "False", "Paused", "spec.paused is true"))
        return Plan(paused)
    if workload is None:
        missing = (f"{spec.target_ref.kind} {spec.target_ref.name} not found in this namespace: nothing is "
                   f"changed until it exists again")
        updated = _conditions(status, now, generation, ("Ready", "False", "TargetNotFound", missing))
        events = [Event("TargetNotFound", missing, warning=True)] if _reason(status, "Ready") != "TargetNotFound" \
            else []
        return Plan(updated, events=events)
    return _decide(spec, status, generation, workload, metrics, conflicts, now)


def _reason(status: InferenceBudgetStatus, type_: str) -> str | None:
    return next((c.reason for c in status.conditions if c.type == type_), None)


def _engine_state(status: InferenceBudgetStatus, workload: Workload) -> tuple[EngineState, Event | None]:
    """The engine's state for this workload, and an Event when the workload is another object than the one the
    state was about (deleted and created again under the same name: a new uid)."""
    try:
        state = EngineState.from_json(status.engine_state)
    except ValueError:
        state = EngineState()  # unreadable (an older format): a fresh state is the cautious one
    if not workload.uid:
        return state, None
    fresh = state.for_target(workload.uid)
    if state.target in (None, workload.uid):
        return fresh, None
    return fresh, Event("TargetReplaced", f"{workload.kind} {workload.name} was deleted and created again (uid "
                        f"{state.target} -> {workload.uid}): resuming on the new object with what was learned "
                        f"about the variants; its rollout, window and cooldown bookkeeping starts afresh")


def _decide(spec: InferenceBudgetSpec, status: InferenceBudgetStatus, generation: int | None,
            workload: Workload, metrics: BudgetMetrics | None, conflicts: list[str], now: float) -> Plan:
    state, replaced = _engine_state(status, workload)
    observation = observation_of(workload, metrics, spec.latency)
    decision, state = decide(spec, observation, state, now)
    figures = report.Figures(observation.latency_ms, observation.memory_per_replica_bytes,
                             observation.requests_per_second, workload.desired_replicas,
                             workload.ready_replicas, workload.variant)
    entry = report.record(decision.action, decision.reason, decision.message, decision.variant,
                          decision.replicas, decision.predicted_latency_ms, decision.predicted_cost_per_hour, now)
    breaches = report.breaches(spec, figures)
    history = report.with_history(list(status.history), entry)
    error = report.prediction_error(history, spec, figures, now) or status.prediction_error
    problems = "; ".join(metrics.problems) if metrics and metrics.problems else "no metrics yet"
    blocked = ", ".join(conflicts)
    updated = _conditions(
        status.model_copy(update={
            "observed_generation": generation, "observed": report.observed(spec, figures, now),
            "last_decision": entry, "history": history, "prediction_error": error,
            "engine_state": state.to_json(), "learned": dict(state.learned)}),
        now, generation,
        ("Ready", "False", "Conflict", f"{blocked} also scales this target: not acting") if conflicts
        else ("Ready", "True", "Reconciling", f"mode {spec.mode}"),
        ("Conflict", "True" if conflicts else "False", "OtherAutoscaler" if conflicts else "NoConflict",
         f"{blocked} drives {workload.name}: remove it or the budget" if conflicts else "no other autoscaler"),
        ("MetricsAvailable", "True", "MetricsRead", "metrics read from Prometheus") if observation.metrics_available
        else ("MetricsAvailable", "False", "MetricsMissing", problems),
        _within_budget(breaches, observation),
        _feasible(decision),
        ("Actuating", "True" if workload.rollout_in_progress else "False",
         "RolloutInProgress" if workload.rollout_in_progress else "Idle",
         f"rolling out {workload.variant}" if workload.rollout_in_progress else "no rollout under way"),
    )
    act = spec.mode == "Enforce" and decision.changes_workload and not conflicts
    events = _events(spec, status, updated, decision, act, conflicts)
    return Plan(updated, decision, act, [replaced, *events] if replaced else events, figures)


def _feasible(decision: Decision) -> tuple[str, str, str, str]:
    if decision.feasible is None:  # not assessed this cycle (blind, paused, capacity unknown)
        return "BudgetFeasible", "Unknown", "NotAssessed", decision.message
    if decision.feasible:
        return "BudgetFeasible", "True", "Feasible", "some variant and replica count meets every budget"
    return "BudgetFeasible", "False", "Infeasible", decision.message


def _within_budget(breaches: dict[str, bool], observation: Observation) -> tuple[str, str, str, str]:
    if not observation.metrics_available:
        return "WithinBudget", "Unknown", "MetricsMissing", "cannot tell without metrics"
    broken = [dimension for dimension, over in breaches.items() if over]
    if broken:
        return "WithinBudget", "False", "Over" + "".join(d.capitalize() for d in broken), \
            f"over the {' and '.join(broken)} budget"
    return "WithinBudget", "True", "WithinBudget", "latency, memory and cost within budget"


def _events(spec: InferenceBudgetSpec, before: InferenceBudgetStatus, after: InferenceBudgetStatus,
            decision: Decision, act: bool, conflicts: list[str]) -> list[Event]:
    events = []
    if act:
        events.append(Event(decision.reason, f"{decision.action}: {decision.message}"))
    elif decision.changes_workload and spec.mode == "Advise" and _new_advice(before, decision):
        events.append(Event(decision.reason, f"Advise (not applied) {decision.action}: {decision.message}"))
    if conflicts and _transitioned(before, after, "Conflict"):
        events.append(Event("Conflict", f"{', '.join(conflicts)} also scales this target: not acting",
                            warning=True))
    if _transitioned(before, after, "MetricsAvailable") and not any(
            c.type == "MetricsAvailable" and c.status == "True" for c in after.conditions):
        why = next(c.message for c in after.conditions if c.type == "MetricsAvailable")
        events.append(Event("MetricsMissing", f"{why}; holding: {decision.message}", warning=True))
    if decision.feasible is False and _transitioned(before, after, "BudgetFeasible"):
        events.append(Event("Infeasible", decision.message, warning=True))
    return events


def _new_advice(before: InferenceBudgetStatus, decision: Decision) -> bool:
    last = before.last_decision
    return last is None or (last.action, last.variant, last.replicas) != (
        decision.action, decision.variant, decision.replicas)


def execute(api: client.ApiClient, spec: InferenceBudgetSpec, workload: Workload, decision: Decision) -> None:
    """Carries out a decision that changes the workload: a swap (with its replica count, in one write), or a
    scale."""
    if decision.action == "Swap" and decision.variant is not None:
        variant = spec.variant(decision.variant)
        container = workload.container_name(spec.target_ref.container)
        if variant is None or container is None:
            raise kube.UnsupportedTarget(f"cannot swap to {decision.variant}: container "
                                         f"{spec.target_ref.container or '(first)'} not in {workload.name}")
        kube.apply_variant(api, workload, variant, container, decision.replicas)
    elif decision.replicas != workload.desired_replicas:
        kube.scale(api, workload, decision.replicas)

