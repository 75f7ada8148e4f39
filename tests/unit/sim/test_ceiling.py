"""The ceiling without foresight: the most a policy that cannot see the future reaches from the replay's start."""

from __future__ import annotations

from inferbudget.sim.budget import SimBudget
from inferbudget.sim.ceiling import run_ceiling
from inferbudget.sim.fleet import FleetProfile
from inferbudget.sim.suite import POLICY_RUNNERS, RunContext

from .conftest import stepped_trace

BUDGET = SimBudget(latency_threshold_ms=10_000, replicas_max=20, variants=("fp8-h100",))


def _capacity(profile: FleetProfile) -> float:
    return float(profile.variant("fp8-h100").capacity_rps(1000.0, 100.0))


def test_load_from_the_first_second_is_lost_cold_whatever_the_policy(profile: FleetProfile) -> None:
    trace = stepped_trace([(900, _capacity(profile) * 4.0)])  # four replicas' worth from t=0; one is running
    cold = run_ceiling(RunContext(trace, profile, BUDGET))
    warm = run_ceiling(RunContext(trace, profile, BUDGET, start="warm"))
    assert cold.slo_attainment_requests < BUDGET.attainment_target <= warm.slo_attainment_requests
    for policy in ("inferbudget", "hpa", "keda", "kpa"):
        reached = POLICY_RUNNERS[policy](RunContext(trace, profile, BUDGET)).slo_attainment_requests
        assert reached <= cold.slo_attainment_requests, policy


def test_the_ceiling_runs_all_the_budget_allows_once_load_shows(profile: FleetProfile) -> None:
    price = profile.variant("fp8-h100").price_per_hour
    capped = SimBudget(latency_threshold_ms=10_000, replicas_max=20, variants=("fp8-h100",),
                       max_cost_per_hour=price * 6)
    trace = stepped_trace([(120, 0.0), (600, _capacity(profile) * 2.0)])
    result = run_ceiling(RunContext(trace, profile, capped))
    assert result.series is not None
    ready = result.series.ready_replicas
    assert ready[0] == 1 and ready[100] == 1  # nothing to size for before the load comes
    assert max(ready) == 6  # the cost ceiling's count, not replicas.max
