"""The oracle is the cost floor: never more expensive than a baseline that meets the same SLO."""

from __future__ import annotations

import pytest

from inferbudget.sim.budget import SimBudget
from inferbudget.sim.fleet import FleetProfile
from inferbudget.sim.suite import BASELINES, POLICY_RUNNERS, RunContext, TuningLog, run_oracle, tune_baseline

from .conftest import stepped_trace


@pytest.fixture(scope="module")
def context() -> RunContext:
    from inferbudget.sim.fleet import load_profile

    # Load that rises in steps and falls again: every baseline can follow it with enough headroom.
    trace = stepped_trace([(300, 10.0), (300, 20.0), (300, 35.0), (300, 50.0), (300, 35.0), (300, 15.0)])
    budget = SimBudget(latency_threshold_ms=10_000, replicas_max=12, variants=("fp8-h100", "bf16-a100"))
    return RunContext(trace, load_profile(), budget)


def test_oracle_is_never_more_expensive_than_a_baseline_meeting_the_slo(context: RunContext) -> None:
    oracle = run_oracle(context)
    assert oracle.meets(context.budget.attainment_target)
    met = []
    for name, baseline in BASELINES.items():
        log = TuningLog()
        tuned = tune_baseline(baseline, context, log)
        assert log.runs, name
        if tuned.meets(context.budget.attainment_target):
            met.append(name)
            assert oracle.cost <= tuned.cost, name
    assert met  # the comparison is not vacuous


def test_oracle_uses_only_allowed_variants_and_plans_ahead(profile: FleetProfile) -> None:
    trace = stepped_trace([(600, 2.0), (900, 150.0), (600, 2.0)])
    budget = SimBudget(latency_threshold_ms=10_000, replicas_max=40, variants=("fp8-h100", "bf16-a100"))
    result = run_oracle(RunContext(trace, profile, budget))
    assert set(result.variants_used) <= {"fp8-h100", "bf16-a100"}
    assert result.series is not None
    startup = profile.variant(result.variants_used[0]).startup_s
    # Capacity for the surge is billed before the surge starts (started one start-up time ahead).
    assert result.series.pods[600 - int(startup) + 30] > result.series.pods[300]
    assert result.slo_attainment_requests >= 0.99


def test_the_registry_lists_every_policy() -> None:
    assert {"hpa", "keda", "kpa", "oracle"} <= set(POLICY_RUNNERS)
