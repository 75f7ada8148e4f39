"""One reconcile, planned without a cluster: conditions, Events, acting or not, and what is recorded."""

from typing import Any

from inferbudget import report
from inferbudget.actuate.workload import Workload
from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import InferenceBudgetStatus, LearnedVariant
from inferbudget.engine.state import EngineState
from inferbudget.metrics.observe import BudgetMetrics
from inferbudget.reconcile import Plan, arriving, plan

NOW = 1_800_000_000.0


def spec(**overrides: Any) -> InferenceBudgetSpec:
    return InferenceBudgetSpec.model_validate({
        "targetRef": {"name": "llama"}, "latency": {"thresholdMs": 1000},
        "replicas": {"min": 1, "max": 8},
        "variants": [{"name": "bf16", "quality": 1, "costPerReplicaHour": "4.10", "memory": "18Gi",
                      "capacityHint": {"requestsPerSecond": 10}}],
        **overrides})


def workload(replicas: int = 2, ready: int | None = None, uid: str = "") -> Workload:
    ready = replicas if ready is None else ready
    return Workload(kind="Deployment", namespace="serving", name="llama", generation=1, observed_generation=1,
                    desired_replicas=replicas, total_replicas=replicas, ready_replicas=ready,
                    updated_replicas=replicas, available_replicas=ready, variant="bf16",
                    selector={"app": "llama"}, containers=("server",), deadline_exceeded_at=None, uid=uid)


def metrics(rps: float, latency_ms: float) -> BudgetMetrics:
    return BudgetMetrics(latency_ms=latency_ms, requests_per_second=rps, newest_sample_time=NOW - 5,
                         pods_reporting=2)


def conditions(result: Plan) -> dict[str, str]:
    return {c.type: c.status for c in result.status.conditions}


def run(budget: InferenceBudgetSpec, status: InferenceBudgetStatus | None = None, **kwargs: Any) -> Plan:
    arguments: dict[str, Any] = {"workload": workload(), "metrics": metrics(5, 400), "conflicts": [], "now": NOW}
    arguments.update(kwargs)
    return plan(budget, status or InferenceBudgetStatus(), 1, **arguments)


def test_paused_budget_decides_nothing() -> None:
    result = run(spec(paused=True))
    assert result.decision is None and not result.act and conditions(result) == {"Ready": "False"}


def test_missing_target_is_reported_once() -> None:
    first = run(spec(), workload=None)
    assert conditions(first)["Ready"] == "False" and first.status.conditions[0].reason == "TargetNotFound"
    assert [e.reason for e in first.events] == ["TargetNotFound"]
    again = run(spec(), first.status, workload=None, now=NOW + 15)
    assert again.events == [], "an unchanged condition is not announced again"


def test_a_missing_target_is_reported_whatever_made_the_budget_not_ready_before() -> None:
    paused = run(spec(paused=True))
    missing = run(spec(), paused.status, workload=None, now=NOW + 15)
    assert [e.reason for e in missing.events] == ["TargetNotFound"]
    assert missing.decision is None and not missing.act, "no decision, no action on a missing target"


def test_a_target_created_again_is_announced_and_its_bookkeeping_starts_afresh() -> None:
    budget = spec()
    learned = {"bf16": LearnedVariant(requests_per_second_per_replica=7.0, samples=9)}
    before = InferenceBudgetStatus(engine_state=EngineState(learned=learned).to_json())
    first = run(budget, before, workload=workload(uid="uid-1"))
    assert first.status.engine_state and first.status.engine_state["target"] == "uid-1"
    assert "TargetReplaced" not in [e.reason for e in first.events], "the first object seen is no news"
    gone = run(budget, first.status, workload=None, now=NOW + 15)
    back = run(budget, gone.status, workload=workload(uid="uid-2"), now=NOW + 30)
    replaced = [e for e in back.events if e.reason == "TargetReplaced"]
    assert len(replaced) == 1 and "uid-1 -> uid-2" in replaced[0].message and not replaced[0].warning
    state = back.status.engine_state or {}
    assert state["target"] == "uid-2" and state["observingSince"] == NOW + 30, "a whole window is observed again"
    assert back.status.learned["bf16"].samples >= 9, "what was learned about the variants is kept"
    assert conditions(back)["Ready"] == "True"
    again = run(budget, back.status, workload=workload(uid="uid-2"), now=NOW + 45)
    assert "TargetReplaced" not in [e.reason for e in again.events]


def test_overload_in_enforce_mode_acts_and_says_why() -> None:
    result = run(spec(), metrics=metrics(60, 3000))
    assert result.decision is not None and result.decision.action == "ScaleUp" and result.act
    assert conditions(result)["WithinBudget"] == "False"
    assert result.events[0].reason == result.decision.reason
    assert result.status.last_decision is not None and result.status.history[-1].action == "ScaleUp"


def test_advise_mode_never_acts_and_announces_each_new_advice_once() -> None:
    first = run(spec(mode="Advise"), metrics=metrics(60, 3000))
    assert not first.act and first.events[0].message.startswith("Advise (not applied) ScaleUp")
    again = run(spec(mode="Advise"), first.status, metrics=metrics(60, 3000), now=NOW + 15)
    assert not again.act and not [e for e in again.events if e.message.startswith("Advise")]


def test_another_autoscaler_blocks_action() -> None:
    result = run(spec(), metrics=metrics(60, 3000), conflicts=["HorizontalPodAutoscaler llama"])
    assert not result.act
    assert conditions(result)["Conflict"] == "True" and conditions(result)["Ready"] == "False"
    assert [e.reason for e in result.events if e.warning] == ["Conflict"]


def test_missing_metrics_hold_and_warn_on_the_transition_only() -> None:
    blind = BudgetMetrics(problems=("Prometheus: cannot connect",))
    first = run(spec(), metrics=blind)
    assert first.decision is not None and first.decision.action == "Hold" and not first.act
    assert conditions(first)["MetricsAvailable"] == "False" and conditions(first)["WithinBudget"] == "Unknown"
    assert conditions(first)["BudgetFeasible"] == "Unknown", "blind, feasibility is not assessed"
    missing = [e for e in first.events if e.reason == "MetricsMissing"]
    assert missing and missing[0].message.startswith("Prometheus: cannot connect; holding: "), \
        "the Event says why the metrics are missing, not only that the operator holds"
    again = run(spec(), first.status, metrics=blind, now=NOW + 15)
    assert "MetricsMissing" not in [e.reason for e in again.events]


def test_engine_state_and_conditions_survive_a_round_trip_through_the_status() -> None:
    first = run(spec())
    wire = first.status.to_wire()
    restored = InferenceBudgetStatus.model_validate(wire)
    assert restored == first.status
    second = run(spec(), restored, now=NOW + 15)
    ready = next(c for c in second.status.conditions if c.type == "Ready")
    assert ready.last_transition_time == report.iso(NOW), "a condition that holds keeps its transition time"


def test_prediction_error_compares_a_window_old_prediction_with_what_happened() -> None:
    budget = spec()
    first = run(budget, metrics=metrics(5, 400))
    predicted = first.status.history[-1].predicted
    assert predicted is not None and predicted.latency_ms
    later = run(budget, first.status, metrics=metrics(5, 600), now=NOW + budget.latency.window_seconds + 1)
    error = later.status.prediction_error
    assert error is not None and error.latency is not None
    assert abs(error.latency - (600 - predicted.latency_ms) / predicted.latency_ms) < 1e-9
    assert error.cost == 0.0


def test_history_records_a_repeated_decision_once() -> None:
    entry = report.record("Swap", "CheaperVariant", "to fp8", "fp8", 2, 500.0, None, NOW)
    retried = report.record("Swap", "CheaperVariant", "to fp8", "fp8", 2, 500.0, None, NOW + 15)
    assert report.with_history([entry], retried) == [entry]
    other = report.record("ScaleUp", "LatencyOverBudget", "2 -> 3", "fp8", 3, 500.0, None, NOW + 30)
    assert report.with_history([entry], other) == [entry, other]


def test_an_overload_shows_in_the_queue_when_completions_stay_within_capacity() -> None:
    # 2 replicas carrying 10 req/s each complete 12 req/s while 1,200 requests wait: 12 + 1,200 / 60 s window
    overloaded = BudgetMetrics(latency_ms=30_000, requests_per_second=12, queue=1200, newest_sample_time=NOW - 5,
                               pods_reporting=2)
    result = run(spec(), metrics=overloaded)
    assert result.decision is not None and result.decision.action == "ScaleUp"
    assert result.decision.replicas >= 3
    assert result.figures is not None and result.figures.requests_per_second == 32


def test_while_over_budget_the_load_is_the_completions_plus_the_queue_drained_over_the_window() -> None:
    latency = spec().latency  # 1 s threshold, 60 s window
    assert arriving(BudgetMetrics(requests_per_second=5, queue=30, latency_ms=4000), latency) == 5.5
    assert arriving(BudgetMetrics(requests_per_second=5, queue=30, latency_ms=800), latency) == 5  # a burst absorbed
    assert arriving(BudgetMetrics(requests_per_second=5, latency_ms=4000), latency) == 5  # no queue signal
    assert arriving(BudgetMetrics(queue=30, latency_ms=4000), latency) is None  # no rate: unknown, not the queue


def test_the_size_of_the_requests_reaches_the_engine() -> None:
    sized = BudgetMetrics(latency_ms=400, requests_per_second=15, tokens_per_request=1000,
                          newest_sample_time=NOW - 5, pods_reporting=2)
    first = run(spec(), metrics=sized)  # 15 req/s at 10 a replica: the 2 replicas there are
    assert first.decision is not None and first.decision.action == "None"
    doubled = BudgetMetrics(latency_ms=400, requests_per_second=15, tokens_per_request=2000,
                            newest_sample_time=NOW + 10, pods_reporting=2)
    second = run(spec(), first.status, metrics=doubled, now=NOW + 15)
    assert second.decision is not None and second.decision.action == "ScaleUp" and second.decision.replicas == 3
    assert second.figures is not None and second.figures.requests_per_second == 15  # the status says what arrived
