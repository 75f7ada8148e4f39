"""Cold and warm starts: every policy of a comparison meets the trace with a fleet chosen by one rule."""

from __future__ import annotations

import pytest

from inferbudget.cli import build_parser
from inferbudget.sim.budget import SimBudget
from inferbudget.sim.fleet import FleetProfile
from inferbudget.sim.policies import FleetTarget
from inferbudget.sim.replay import ReplayOptions, replay
from inferbudget.sim.start import WARM_WINDOW_S, warm_replicas
from inferbudget.sim.suite import POLICY_RUNNERS, RunContext

from .conftest import steady_trace, stepped_trace
from .test_replay import Scripted

BUDGET = SimBudget(latency_threshold_ms=10_000, replicas_max=20, variants=("fp8-h100",))


def _attainment_held(profile: FleetProfile, trace_seconds: int, rate: float, replicas: int) -> float:
    """SLO attainment of `replicas` fp8 replicas Ready from t=0 and held, on a steady trace."""
    target = FleetTarget("fp8-h100", replicas)
    options = ReplayOptions(initial=target)
    result = replay(steady_trace(rate, trace_seconds), profile, BUDGET, Scripted({0: target}), options)
    return result.slo_attainment_requests


def test_the_warm_fleet_is_the_fewest_replicas_meeting_the_slo_over_the_first_minutes(profile: FleetProfile) -> None:
    rate = float(profile.variant("fp8-h100").capacity_rps(1000.0, 100.0)) * 2.5
    replicas = warm_replicas(steady_trace(rate, 600), profile, BUDGET, "fp8-h100")
    assert replicas == 3  # 2 replicas fall behind 2.5 replicas' worth of load; 3 keep up
    seconds = int(WARM_WINDOW_S)
    assert _attainment_held(profile, seconds, rate, replicas) >= BUDGET.attainment_target
    assert _attainment_held(profile, seconds, rate, replicas - 1) < BUDGET.attainment_target


def test_the_warm_fleet_is_sized_for_the_first_minutes_only(profile: FleetProfile) -> None:
    capacity = float(profile.variant("fp8-h100").capacity_rps(1000.0, 100.0))
    quiet_then_busy = stepped_trace([(int(WARM_WINDOW_S), capacity * 0.5), (600, capacity * 6.0)])
    assert warm_replicas(quiet_then_busy, profile, BUDGET, "fp8-h100") == 1


def test_the_warm_fleet_stays_within_the_budget_replicas(profile: FleetProfile) -> None:
    capacity = float(profile.variant("fp8-h100").capacity_rps(1000.0, 100.0))
    bounded = SimBudget(latency_threshold_ms=10_000, replicas_min=2, replicas_max=5)
    assert warm_replicas(steady_trace(0.1, 600), profile, bounded, "fp8-h100") == 2
    assert warm_replicas(steady_trace(capacity * 40, 600), profile, bounded, "fp8-h100") == 5


def test_a_slower_variant_starts_with_more_replicas(profile: FleetProfile) -> None:
    trace = steady_trace(20.0, 600)
    assert warm_replicas(trace, profile, BUDGET, "bf16-a100") > warm_replicas(trace, profile, BUDGET, "fp8-h100")


@pytest.mark.parametrize("policy", ["inferbudget", "hpa", "keda", "kpa", "oracle"])
def test_with_a_warm_start_every_policy_meets_the_trace_with_the_warm_fleet_ready(
    profile: FleetProfile, policy: str
) -> None:
    capacity = float(profile.variant("fp8-h100").capacity_rps(1000.0, 100.0))
    trace = stepped_trace([(600, capacity * 3.0), (300, capacity * 1.5)])
    warm_fleet = warm_replicas(trace, profile, BUDGET, "fp8-h100")
    assert warm_fleet > 1
    cold = POLICY_RUNNERS[policy](RunContext(trace, profile, BUDGET))
    warm = POLICY_RUNNERS[policy](RunContext(trace, profile, BUDGET, start="warm"))
    assert cold.series is not None and warm.series is not None
    assert warm.series.ready_replicas[0] == warm_fleet
    if policy != "oracle":  # the oracle's cold start is its own plan, already Ready at t=0
        assert cold.series.ready_replicas[0] < warm_fleet
        assert warm.slo_attainment_requests > cold.slo_attainment_requests


def test_an_unknown_start_is_refused(profile: FleetProfile) -> None:
    with pytest.raises(ValueError, match="lukewarm"):
        RunContext(steady_trace(1.0, 60), profile, BUDGET, start="lukewarm")


def test_simulate_takes_the_start_and_defaults_to_cold() -> None:
    parser = build_parser()
    assert parser.parse_args(["simulate", "--trace", "t.csv"]).start == "cold"
    assert parser.parse_args(["simulate", "--trace", "t.csv", "--start", "warm"]).start == "warm"
