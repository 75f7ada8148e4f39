"""The operator's own metrics after a reconcile: what was observed this cycle, never a figure of the past."""

from tests.unit.test_reconcile import NOW, metrics, run, spec

from inferbudget.handlers import _export
from inferbudget.metrics.observe import BudgetMetrics
from inferbudget.telemetry import OperatorMetrics

LABELS = {"namespace": "serving", "budget": "llama"}


def value(exported: OperatorMetrics, name: str, **labels: str) -> float | None:
    return exported.registry.get_sample_value(f"inferbudget_{name}", {**LABELS, **labels})


def test_latency_unknown_this_cycle_removes_the_last_value() -> None:
    exported, budget = OperatorMetrics(), spec()
    _export(exported, "serving", "llama", budget, run(budget, metrics=metrics(5, 1400)))
    assert value(exported, "observed_latency_seconds") == 1.4
    assert value(exported, "budget_breached", dimension="latency") == 1

    missing = BudgetMetrics(latency_ms=None, requests_per_second=None, newest_sample_time=None, pods_reporting=0)
    _export(exported, "serving", "llama", budget, run(budget, metrics=missing, now=NOW + 15))

    assert value(exported, "observed_latency_seconds") is None
    assert value(exported, "budget_breached", dimension="latency") == 0
    assert value(exported, "budget_latency_seconds") == 1.0, "what the budget says stays"


def test_a_missing_target_removes_what_was_observed_of_it() -> None:
    exported, budget = OperatorMetrics(), spec()
    _export(exported, "serving", "llama", budget, run(budget))
    assert value(exported, "replicas") == 2 and value(exported, "cost_per_hour") == 8.2

    _export(exported, "serving", "llama", budget, run(budget, workload=None, now=NOW + 15))

    assert value(exported, "replicas") is None and value(exported, "cost_per_hour") is None
    assert value(exported, "active_variant", variant="bf16") is None
    assert value(exported, "condition", type="Ready", status="False") == 1
    assert value(exported, "budget_max_replicas") == 8
