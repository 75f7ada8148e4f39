"""SimBudget: read from a manifest, from the API's pydantic model, and the variants a budget allows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from inferbudget.sim.budget import (
    BudgetError,
    SimBudget,
    allowed_variants,
    as_declared,
    default_budget_path,
    load_budget,
)
from inferbudget.sim.engine_policy import benchmark_capacity, engine_spec, run_engine
from inferbudget.sim.fleet import FleetProfile
from inferbudget.sim.suite import BASELINES, RunContext

from .conftest import stepped_trace

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


DECLARING = {
    "latency": {"percentile": 95, "thresholdMs": 4000},
    "replicas": {"min": 1, "max": 12},
    "memory": {"maxTotal": "80Gi"},
    "cost": {"maxPerHour": "30.00"},
    "variants": [
        {"name": "fp8-h100", "quality": 0.99, "costPerReplicaHour": "6.48", "capacityHint": {"requestsPerSecond": 2.5},
         "startupSeconds": 240},
        {"name": "bf16-h100"},
    ],
}


def test_a_budget_s_declared_figures_are_what_the_engine_is_told_and_what_the_replay_bills(
        profile: FleetProfile) -> None:
    budget = SimBudget.from_spec(DECLARING)
    trace = stepped_trace([(600, 5.0)])
    spec = {variant.name: variant for variant in engine_spec(budget, profile, trace).variants}
    fp8, bf16 = spec["fp8-h100"], spec["bf16-h100"]
    assert fp8.capacity_hint is not None
    assert (fp8.quality, str(fp8.cost_per_replica_hour), fp8.capacity_hint.requests_per_second, fp8.startup_seconds) \
        == (0.99, "6.48", 2.5, 240)
    profile_bf16 = profile.variant("bf16-h100")  # declares nothing: the profile's figures and a benchmark
    assert (bf16.quality, float(bf16.cost_per_replica_hour), bf16.startup_seconds) == (
        profile_bf16.quality, profile_bf16.price_per_hour, round(profile_bf16.startup_s))
    assert bf16.capacity_hint is not None
    assert bf16.capacity_hint.requests_per_second == round(benchmark_capacity(profile_bf16, trace, budget), 3)
    billed = RunContext(trace, profile, budget).profile
    assert (billed.variant("fp8-h100").price_per_hour, billed.variant("fp8-h100").quality) == (6.48, 0.99)
    assert billed.variant("bf16-h100") == profile_bf16


def test_a_declared_price_is_what_the_replay_bills(profile: FleetProfile) -> None:
    trace = stepped_trace([(600, 5.0), (600, 20.0)])
    def cost(price: str) -> float:
        spec = {"latency": {"percentile": 95, "thresholdMs": 4000}, "replicas": {"min": 1, "max": 12},
                "variants": [{"name": "fp8-h100", "costPerReplicaHour": price}]}
        return run_engine(RunContext(trace, profile, SimBudget.from_spec(spec))).cost
    assert cost("6.48") == pytest.approx(2 * cost("3.24"))


def test_the_cost_ceiling_and_total_memory_cap_every_policy_s_replicas(profile: FleetProfile) -> None:
    budget = SimBudget.from_spec(DECLARING)
    fp8, bf16 = profile.variant("fp8-h100"), profile.variant("bf16-h100")
    assert budget.replica_cap(as_declared(fp8, budget)) == 2  # 30.00/h at the declared 6.48/h (80Gi allows 2 too)
    assert budget.replica_cap(bf16) == min(int(80 // bf16.memory_gib), int(30 // bf16.price_per_hour))
    assert SimBudget.from_spec({**DECLARING, "cost": {}, "memory": {}}).replica_cap(bf16) == 12
    for baseline in BASELINES.values():
        assert baseline.build(bf16, 1.0, budget).replicas_max == budget.replica_cap(bf16)  # type: ignore[attr-defined]
    memory = engine_spec(budget, profile, stepped_trace([(60, 1.0)])).memory
    assert memory is not None and memory.max_total_bytes == 80 * 2**30
