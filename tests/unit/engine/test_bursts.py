"""Burst headroom (engine.bursts) and the truthful hold messages when the measured latency is over the threshold.

The budget is `builders.one_variant`: big carries 4 req/s per replica (3.92 on the way down), starts in 60 s,
p95 <= 1000 ms; cycles are 15 s, so a start-up horizon is 75 s.
"""

from decimal import Decimal

from inferbudget.engine import EngineState, decide
from inferbudget.engine.bursts import (
    MIN_BURST_SAMPLES,
    PEAK_MEMORY_HALF_LIVES,
    base_load,
    excess,
    headroom,
    peak_half_life,
    recalled_load,
    remember_bases,
    remember_peak,
)
from inferbudget.engine.learning import Performance
from inferbudget.engine.pacing import _scale_down
from inferbudget.engine.planning import Option, Sizing

from .builders import Fleet, budget, one_variant, seen

HALF_LIFE = peak_half_life(300.0)  # the builders' scale-down window


def test_a_rise_that_breached_the_latency_is_measured_from_the_level_before_it() -> None:
    rates = ((0.0, 4.0), (15.0, 4.0), (30.0, 4.0), (45.0, 16.0), (60.0, 4.0))
    bases = ((0.0, 4.0), (30.0, 4.0), (45.0, 4.0), (60.0, 4.0))
    assert excess(bases, rates, 60.0, 45.0, breached=True) == 12.0  # peak 16 over (15, 60], base 4 at 15 s


def test_a_rise_the_fleet_absorbed_counts_as_no_excess() -> None:
    rates = ((0.0, 4.0), (15.0, 4.0), (30.0, 16.0))
    bases = ((0.0, 4.0), (15.0, 4.0), (30.0, 4.0))
    assert excess(bases, rates, 30.0, 15.0, breached=False) == 0.0


def test_no_excess_before_a_whole_horizon_has_been_observed() -> None:
    assert excess(((10.0, 4.0),), ((10.0, 4.0),), 20.0, 75.0, breached=True) is None


def test_the_base_is_the_level_between_bursts() -> None:
    rates = ((0.0, 4.0), (15.0, 3.0), (30.0, 30.0), (45.0, 5.0))
    assert base_load(rates, 45.0) == 4.5  # the median: one burst hardly moves it


def test_the_bases_kept_reach_back_exactly_one_horizon() -> None:
    bases: tuple[tuple[float, float], ...] = ()
    for now in range(0, 300, 15):
        bases = remember_bases(bases, float(now), 1.0, 75.0)
    assert bases[0][0] == 285.0 - 75.0 and len(bases) == 6


def test_headroom_is_a_high_quantile_of_recent_excesses_once_enough_are_seen() -> None:
    assert headroom((12.0,) * (MIN_BURST_SAMPLES - 1)) == 0.0
    rare = (0.0,) * 18 + (12.0,) * 2  # bursts breached the latency on 10% of cycles: not more than a tenth
    assert headroom(rare) == 0.0
    frequent = (0.0,) * 17 + (12.0,) * 3
    assert headroom(frequent) == 12.0


def _quiet(excesses: tuple[float, ...]) -> EngineState:
    """A state after five quiet minutes at 4 req/s, with these burst excesses learned."""
    state = EngineState(burst_excesses=excesses)
    spec = one_variant()
    for now in range(0, 300, 15):
        _, state = decide(spec, seen(4.0, replicas=1, at=float(now)), state, float(now))
    return state.model_copy(update={"burst_excesses": excesses})


def test_learned_bursts_keep_replicas_for_the_level_plus_their_rise() -> None:
    state = _quiet((0.0,) * 17 + (12.0,) * 3)
    decision, _ = decide(one_variant(), seen(4.0, replicas=1, at=300.0), state, 300.0)
    assert (decision.action, decision.reason, decision.replicas) == ("ScaleUp", "BurstHeadroom", 4)
    assert decision.message == ("4.0 req/s, but bursts within 75s (a replica's start-up) have breached the "
                                "latency lately: keeping replicas for 16.0 req/s: 1 -> 4 replicas of big")


def test_bursts_that_never_breached_the_latency_keep_no_replicas() -> None:
    state = _quiet((0.0,) * 20)
    decision, _ = decide(one_variant(), seen(4.0, replicas=1, at=300.0), state, 300.0)
    assert (decision.action, decision.reason, decision.replicas) == ("None", "WithinBudget", 1)


def test_a_fleet_whose_bursts_keep_breaching_learns_headroom() -> None:
    fleet = Fleet(one_variant(), replicas=1)
    for cycle in range(80):  # a 16 req/s burst for 30 s of every 150 s, breaching the latency
        burst = cycle % 10 in (8, 9)
        fleet.step(cycle * 15.0, 16.0 if burst else 4.0, latency_ms=3000.0 if burst else 400.0)
    assert headroom(fleet.state.burst_excesses) > 0


def test_replicas_still_starting_are_said_to_be_starting_not_within_budget() -> None:
    decision, _ = decide(one_variant(), seen(9.0, replicas=3, ready=2, latency_ms=1500.0), EngineState(), 0.0)
    assert (decision.action, decision.reason) == ("None", "ReplicasStarting")
    assert decision.message == ("p95 1.5s > 1.0s at 9.0 req/s with 2 of 3 replicas Ready; 3 replicas of big "
                                "(30.00/h) carry the planned 9.0 req/s once Ready: holding")


def test_latency_over_the_threshold_on_a_fleet_the_plan_deems_enough_is_not_within_budget() -> None:
    decision, _ = decide(one_variant(), seen(9.0, replicas=3, latency_ms=1500.0), EngineState(), 0.0)
    assert (decision.action, decision.reason) == ("None", "LatencyOverPlan")
    assert decision.message.startswith("p95 1.5s > 1.0s at 9.0 req/s, yet 3 replicas of big (30.00/h) carry the "
                                       "planned 9.0 req/s: holding")


def test_within_budget_is_said_only_when_the_latency_is() -> None:
    decision, _ = decide(one_variant(), seen(9.0, replicas=3, latency_ms=800.0), EngineState(), 0.0)
    assert decision.reason == "WithinBudget"
    assert decision.message == "p95 800ms <= 1.0s at 9.0 req/s: 3 replicas of big (30.00/h)"


def test_latency_over_the_threshold_at_the_cap_is_not_said_to_be_carried() -> None:
    spec = one_variant(cost={"maxPerHour": "30.00"})  # 3 replicas of big at most: 12 req/s of the 30
    decision, _ = decide(spec, seen(30.0, replicas=3, latency_ms=1500.0), EngineState(), 0.0)
    assert (decision.action, decision.reason, decision.feasible) == ("None", "Infeasible", False)
    assert decision.message.endswith("p95 1.5s > 1.0s at 30.0 req/s: holding 3 replicas of big (30.00/h), the most "
                                     "the caps allow")


def test_noise_on_a_steady_load_is_no_burst_even_when_the_latency_is_over() -> None:
    rates = ((0.0, 30.0), (15.0, 30.0), (30.0, 30.6))  # 2% above the level: noise, not a burst
    bases = ((0.0, 30.0), (15.0, 30.0), (30.0, 30.0))
    assert excess(bases, rates, 30.0, 15.0, breached=True) == 0.0


def test_a_burst_is_remembered_once_at_its_highest_and_forgotten_after_the_memory() -> None:
    peaks: tuple[tuple[float, float], ...] = ()
    for now, load in ((0.0, 2.0), (15.0, 12.0), (30.0, 16.0), (45.0, 9.0), (60.0, 2.0)):
        peaks = remember_peak(peaks, now, load, base=2.0, half_life=HALF_LIFE)
    assert peaks == ((45.0, 16.0),)  # one burst: its end and its highest load; the level is no burst
    assert remember_peak(peaks, 45.0 + PEAK_MEMORY_HALF_LIVES * HALF_LIFE, 2.0, base=2.0, half_life=HALF_LIFE) == ()


def test_recurring_bursts_recall_their_peak_halved_every_half_life() -> None:
    one = ((0.0, 16.0),)
    assert recalled_load(one, 0.0, HALF_LIFE) == 0.0  # a single spike is no pattern
    two = ((0.0, 12.0), (600.0, 16.0))
    assert recalled_load(two, 600.0 + HALF_LIFE, HALF_LIFE) == 8.0
    assert recalled_load(two, 600.0, half_life=0.0) == 0.0  # no scale-down window: nothing is held


def _bursts_every_ten_minutes(count: int, scale_down_seconds: int = 300) -> Fleet:
    """1 req/s, with a 16 req/s burst for 45 s every 600 s that the fleet absorbs (no breach, so no headroom)."""
    fleet = Fleet(one_variant(policy={"scaleDown": {"stabilizationSeconds": scale_down_seconds}}), replicas=1)
    for cycle in range(40 * count):
        fleet.step(cycle * 15.0, 16.0 if cycle % 40 in (36, 37, 38) else 1.0, latency_ms=400.0)
    return fleet


def test_recurring_bursts_keep_replicas_through_idle_minutes_longer_than_the_window() -> None:
    fleet = _bursts_every_ten_minutes(3)
    fleet.run(1800.0, 450.0, 1.0, latency_ms=400.0)  # the window forgot the last burst 300 s after it ended
    assert fleet.replicas == 3  # 16 req/s halved every 600 s for 480 s: 9.2 req/s
    assert any("recurring bursts" in change.message for change in fleet.changes)


def test_the_burst_memory_is_as_long_as_the_scale_down_window_makes_it() -> None:
    # A 30 s window asks for a fleet that follows the load closely: the peaks halve every minute, not every 10.
    fleet = _bursts_every_ten_minutes(3, scale_down_seconds=30)
    fleet.run(1800.0, 450.0, 1.0, latency_ms=400.0)
    assert fleet.replicas == 1


def test_a_single_burst_is_not_held_after_the_window() -> None:
    fleet = _bursts_every_ten_minutes(1)
    fleet.run(600.0, 450.0, 1.0, latency_ms=400.0)
    assert fleet.replicas == 1


def _shrinking(window_load: float, burst_load: float, recalled_load: float) -> Option:
    """The running big fleet's option, sized 2 replicas for these loads (the message is what is tested)."""
    spec = one_variant()
    sizing = Sizing(up=2, down=2, settled=2, switch=3, planned_load=4.0, window_load=window_load, horizon_seconds=75.0,
                    burst_load=burst_load, recalled_load=recalled_load)
    return Option(variant=spec.variants[0], replicas=2, sizing=sizing,
                  performance=Performance(capacity=4.0, slope=0.1, startup_seconds=60.0), cost_per_hour=Decimal("20"),
                  latency_ms=500.0, carries_load=True, within_cost=True, within_memory=True,
                  memory_per_replica_fits=True, running=True)


def test_a_scale_down_names_the_one_burst_figure_that_limits_it() -> None:
    observation = seen(4.0, replicas=5, latency_ms=500.0)
    headroom_only = _scale_down(one_variant(), observation, _shrinking(6.0, 7.0, 0.0)).message
    recalled_too = _scale_down(one_variant(), observation, _shrinking(6.0, 7.0, 7.5)).message
    assert headroom_only == ("peak 6.0 req/s over the last 300s (with the burst headroom, 7.0 req/s) needs 2: "
                             "5 -> 2 replicas of big")
    assert recalled_too.count("(") == 1 and "recurring bursts" in recalled_too and "7.5 req/s" in recalled_too


def test_a_swap_is_no_way_round_the_recalled_peak() -> None:
    # big carries 4 req/s a replica, small 6, at the same price: between bursts the recalled peak holds 2 replicas
    # of small, and big, sized without it, would carry the idle load with 1 (swapping back at the next burst).
    fleet = Fleet(budget(), replicas=1)
    for cycle in range(40 * 3):
        fleet.step(cycle * 15.0, 16.0 if cycle % 40 in (36, 37, 38) else 1.0, latency_ms=400.0)
    fleet.run(1800.0, 900.0, 1.0, latency_ms=400.0)
    swaps = [d for d in fleet.changes if d.action == "Swap"]
    assert [(d.variant, d.reason) for d in swaps] == [("small", "CheaperVariant")]  # at the first burst
    assert fleet.variant == "small"
