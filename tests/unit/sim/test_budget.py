"""SimBudget: read from a manifest, from the API's pydantic model, and the variants a budget allows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from inferbudget.sim.budget import BudgetError, SimBudget, allowed_variants, default_budget_path, load_budget
from inferbudget.sim.fleet import FleetProfile

SPEC = {
    "latency": {"percentile": 99, "thresholdMs": 800, "signal": "ttft"},
    "memory": {"maxPerReplica": "36Gi"},
    "cost": {"maxPerHour": "20.00"},
    "replicas": {"min": 2, "max": 6},
    "variants": [{"name": "bf16-h100"}, {"name": "int8-w8a8-h100"}, {"name": "int4-w4a16-a100"}],
    "policy": {"minQuality": 0.99, "objective": "MinimizeCost"},
}


def test_from_spec_reads_the_manifest_shape() -> None:
    budget = SimBudget.from_spec(SPEC)
    assert (budget.latency_percentile, budget.latency_threshold_ms, budget.latency_signal) == (99, 800, "ttft")
    assert (budget.replicas_min, budget.replicas_max) == (2, 6)
    assert budget.max_cost_per_hour == 20.0
    assert budget.max_memory_per_replica_gib == 36.0
    assert budget.variants == ("bf16-h100", "int8-w8a8-h100", "int4-w4a16-a100")
    assert budget.threshold_s == 0.8 and budget.quantile == 0.99


def test_allowed_variants_apply_quality_floor_and_memory(profile: FleetProfile) -> None:
    names = [model.name for model in allowed_variants(SimBudget.from_spec(SPEC), profile)]
    assert names == ["int8-w8a8-h100"]  # bf16 is over 36Gi, int4 under the 0.99 quality floor


def test_a_budget_no_policy_can_run_says_why(profile: FleetProfile) -> None:
    with pytest.raises(BudgetError, match="names variant 'fp9-h100', which the profile"):
        allowed_variants(SimBudget(variants=("fp8-h100", "fp9-h100")), profile)
    with pytest.raises(BudgetError, match="allows no variant"):
        allowed_variants(SimBudget(min_quality=0.99, max_memory_per_replica_gib=8.0), profile)


def test_the_shipped_example_budget_loads_and_validates_against_the_api() -> None:
    budget = load_budget()
    assert budget.latency_signal == "e2e" and budget.variants
    spec_model = pytest.importorskip("inferbudget.api.spec").InferenceBudgetSpec
    document = yaml.safe_load(default_budget_path().read_text())
    from_model = SimBudget.from_spec(spec_model.model_validate(document["spec"]))
    assert replace(from_model, extra={}) == replace(budget, extra={})  # the API fills defaults into the rest


def test_bad_budgets_say_which_field(tmp_path: Path) -> None:
    with pytest.raises(BudgetError, match="thresholdMs"):
        SimBudget.from_spec({"latency": {"percentile": 95}})
    with pytest.raises(BudgetError, match="signal"):
        SimBudget.from_spec({"latency": {"thresholdMs": 5, "signal": "p95"}})
    with pytest.raises(BudgetError, match="maxPerReplica"):
        SimBudget.from_spec({"latency": {"thresholdMs": 5}, "memory": {"maxPerReplica": "lots"}})
    path = tmp_path / "b.yaml"
    path.write_text("- not a mapping\n")
    with pytest.raises(BudgetError, match=str(path)):
        load_budget(path)
