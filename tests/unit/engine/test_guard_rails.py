"""Each guard rail of the engine, by example: what it does and what it refuses to do.

The budgets come from `builders`: big carries 4 req/s per replica, small 6 (both 10.00/h), so 20 req/s needs 5
big replicas or 4 small ones; scale-down and swaps count 5% less capacity (the dead band).
"""

from typing import Any, get_args

import pytest

from inferbudget.engine import REASONS, EngineState, FailedRollout, Reason, decide
from inferbudget.engine.learning import startup_seconds

from .builders import Fleet, budget, one_variant, seen


def test_scale_up_is_immediate_but_capped_per_step() -> None:
    fleet = Fleet(one_variant(), replicas=1)
    first = fleet.step(0.0, 30.0)
    assert (first.action, first.replicas) == ("ScaleUp", 5)  # 1 + max(100% of 1, 4 replicas)
    assert first.message == "30.0 req/s needs more replicas: 1 -> 5 replicas of big (step cap; 8 needed)"
    assert fleet.step(15.0, 30.0).replicas == 8


def test_the_scale_up_step_follows_the_policy() -> None:
    spec = one_variant(policy={"scaleUp": {"maxStepPercent": 50, "maxStepReplicas": 1}})
    fleet = Fleet(spec, replicas=4)
    assert fleet.step(0.0, 30.0).replicas == 6  # 4 + max(50% of 4, 1)


def test_latency_over_budget_is_said_with_the_numbers() -> None:
    spec = one_variant()
    decision, _ = decide(spec, seen(33.0, replicas=8, latency_ms=1500.0), EngineState(), 0.0)
    assert decision.reason == "LatencyOverBudget"
    assert decision.message == "p95 1.5s > 1.0s at 33.0 req/s: 8 -> 9 replicas of big"


def test_scale_down_waits_for_the_stabilization_window() -> None:
    fleet = Fleet(one_variant(), replicas=8)
    fleet.run(0.0, 300.0, rps=30.0)
    held = [fleet.step(now, 3.0) for now in range(300, 600, 15)]
    assert all(d.action == "Hold" and d.reason == "Stabilizing" for d in held)
    down = [fleet.step(now, 3.0) for now in range(600, 675, 15)]
    assert all((d.action, d.reason) == ("ScaleDown", "LoadFell") for d in down)
    # The plan follows the load's mean over the last minute, so the window lets go of it over that minute.
    assert [d.replicas for d in down] == [7, 5, 4, 3, 1]


def test_no_scale_down_before_a_whole_window_has_been_observed() -> None:
    fleet = Fleet(one_variant(), replicas=9)
    early = [fleet.step(now, 3.0) for now in range(0, 300, 15)]
    assert all(d.reason == "Stabilizing" for d in early)
    assert fleet.step(300.0, 3.0).action == "ScaleDown"


def test_no_swap_shrinks_the_fleet_before_a_whole_window_has_been_observed() -> None:
    fleet = Fleet(budget(), replicas=6)  # 6 big carry 24 req/s; a first look at the load sees 2
    swap = next(d for d in (fleet.step(now, 2.0) for now in range(0, 300, 15)) if d.action == "Swap")
    assert (swap.variant, swap.replicas) == ("small", 4), swap  # 4 small carry what 6 big did
    assert fleet.run(300.0, 600.0, 2.0).replicas == 1


def test_without_a_scale_down_window_the_message_names_the_load_not_a_peak() -> None:
    fleet = Fleet(one_variant(policy={"scaleDown": {"stabilizationSeconds": 0}}), replicas=9)
    down = fleet.step(0.0, 3.0)
    assert down.action == "ScaleDown" and down.message.startswith("3.0 req/s needs 1: 9 -> "), down.message


def test_scale_down_is_capped_per_step() -> None:
    fleet = Fleet(one_variant(policy={"scaleDown": {"maxStepPercent": 50}}), replicas=9)
    fleet.run(0.0, 300.0, rps=3.0)
    steps = [fleet.step(now, 3.0).replicas for now in range(300, 375, 15)]
    assert steps == [5, 3, 2, 1, 1]


def test_rising_load_is_forecast_over_the_start_up_time() -> None:
    fleet = Fleet(one_variant(), replicas=1)
    decisions = [fleet.step(step * 15.0, 2.0 + step) for step in range(7)]  # +1 req/s every 15 s
    rising = decisions[-1]
    assert (rising.action, rising.reason, rising.replicas) == ("ScaleUp", "CapacityForecast", 4)
    # start-up 60 s + one cycle: 8 req/s now (2 replicas' worth), 13 by the time new replicas serve
    assert rising.message == "8.0 req/s rising to 13.0 req/s within 75s: 3 -> 4 replicas of big"


def test_a_burst_is_met_at_once() -> None:
    fleet = Fleet(one_variant(), replicas=3)
    fleet.run(0.0, 120.0, rps=10.0)
    burst = fleet.step(120.0, 20.0)
    assert (burst.action, burst.replicas) == ("ScaleUp", 5)


def test_a_small_rise_is_planned_from_the_minute_s_mean() -> None:
    fleet = Fleet(one_variant(), replicas=3)
    fleet.run(0.0, 120.0, rps=10.0)
    assert fleet.step(120.0, 12.1).action != "ScaleUp"  # within 25% of the mean: 10.4 req/s, 3 replicas
    steps = [fleet.step(now, 12.1) for now in range(135, 195, 15)]
    assert fleet.replicas == 4 and any(d.action == "ScaleUp" for d in steps)


def test_a_noisy_flat_load_forecasts_no_rise() -> None:
    fleet = Fleet(one_variant(), replicas=3)
    noisy = [10.0, 9.0, 10.5, 9.4, 11.0, 9.8, 11.2]  # a least-squares rise of 1 req/s per 75 s, all noise
    decisions = [fleet.step(step * 15.0, rps) for step, rps in enumerate(noisy)]
    assert all(d.action != "ScaleUp" for d in decisions)  # 11.2 req/s needs 3 replicas; no rise is invented


def test_a_swap_needs_sustained_evidence() -> None:
    fleet = Fleet(budget(), replicas=6)
    waiting = [fleet.step(now, 20.0) for now in range(0, 120, 15)]
    assert all(d.action == "Hold" and d.reason == "Stabilizing" for d in waiting)
    assert "small would be better (40.00/h instead of 60.00/h); sustained 0s of 120s" in waiting[0].message
    swap = fleet.step(120.0, 20.0)
    assert (swap.action, swap.reason, swap.variant, swap.replicas) == ("Swap", "CheaperVariant", "small", 4)


def test_a_blind_cycle_interrupts_the_evidence() -> None:
    fleet = Fleet(budget(), replicas=6)
    fleet.run(0.0, 60.0, rps=20.0)
    fleet.step(60.0, None, metrics_available=False)
    before = [fleet.step(now, 20.0) for now in range(75, 195, 15)]
    assert all(d.action != "Swap" for d in before)
    assert fleet.step(195.0, 20.0).action == "Swap"


def test_swaps_are_a_cooldown_apart() -> None:
    spec = budget(policy={"swap": {"sustainSeconds": 0, "cooldownSeconds": 900}})
    fleet = Fleet(spec, replicas=6)
    assert fleet.step(0.0, 20.0).action == "Swap"
    later = [fleet.step(now, 2.0) for now in range(15, 915, 15)]
    assert all(d.action != "Swap" for d in later)
    assert any(d.reason == "SwapCooldown" for d in later)
    back = fleet.step(915.0, 2.0)
    assert (back.action, back.reason, back.variant) == ("Swap", "BetterQualityFits", "big")


def test_a_rollout_in_progress_holds_everything_but_added_capacity() -> None:
    spec = budget()
    state = EngineState()
    for now in range(0, 400, 15):
        decision, state = decide(spec, seen(0.5, replicas=6, rollout_in_progress=True, at=now), state, now)
        assert (decision.action, decision.reason) == ("Hold", "RolloutInProgress")
    decision, state = decide(spec, seen(40.0, replicas=6, rollout_in_progress=True, at=400.0), state, 400.0)
    assert decision.action == "ScaleUp" and decision.variant == "big"


def test_a_failed_variant_is_avoided_for_its_back_off() -> None:
    spec = budget(policy={"swap": {"failureBackoffSeconds": 600}})
    fleet = Fleet(spec, replicas=6)
    failure = FailedRollout(variant="small", failed_at=0.0)
    during = [fleet.step(now, 20.0, failed_rollout=failure) for now in range(0, 600, 15)]
    assert all(d.action != "Swap" for d in during)
    after = [fleet.step(now, 20.0, failed_rollout=failure) for now in range(600, 750, 15)]
    assert [d.variant for d in after if d.action == "Swap"] == ["small"]


def test_running_a_failed_variant_swaps_away_at_once() -> None:
    decision, _ = decide(budget(), seen(20.0, variant="small", replicas=4,
                                        failed_rollout=FailedRollout(variant="small", failed_at=0.0)),
                         EngineState(), 10.0)
    assert (decision.action, decision.reason, decision.variant) == ("Swap", "VariantRolledBack", "big")


def test_missing_metrics_hold() -> None:
    decision, _ = decide(budget(), seen(None, replicas=3, metrics_available=False), EngineState(), 0.0)
    assert (decision.action, decision.reason, decision.replicas) == ("Hold", "MetricsMissing", 3)


def test_stale_metrics_hold() -> None:
    decision, _ = decide(budget(), seen(1.0, replicas=3, at=0.0), EngineState(), 200.0)
    assert (decision.action, decision.reason) == ("Hold", "MetricsStale")
    assert decision.feasible is None


def test_fallback_replicas_after_metrics_have_been_missing_long_enough() -> None:
    spec = budget(policy={"whenMetricsMissing": {"action": "Fallback", "fallbackReplicas": 5, "afterSeconds": 60}})
    fleet = Fleet(spec, replicas=2)
    early = [fleet.step(now, None, metrics_available=False) for now in range(0, 60, 15)]
    assert all(d.reason == "MetricsMissing" for d in early)
    fallback = fleet.step(60.0, None, metrics_available=False)
    assert (fallback.action, fallback.reason, fallback.replicas) == ("ScaleUp", "FallbackReplicas", 5)


def test_the_fallback_never_scales_down() -> None:
    spec = budget(policy={"whenMetricsMissing": {"action": "Fallback", "fallbackReplicas": 2, "afterSeconds": 0}})
    decision, _ = decide(spec, seen(None, replicas=6, metrics_available=False), EngineState(), 0.0)
    assert (decision.action, decision.replicas) == ("Hold", 6)


def test_after_blindness_a_whole_window_is_observed_before_scaling_down() -> None:
    fleet = Fleet(one_variant(), replicas=9)
    fleet.run(0.0, 600.0, rps=30.0)
    fleet.run(600.0, 600.0, rps=None, metrics_available=False)
    back = [fleet.step(now, 3.0) for now in range(1200, 1500, 15)]
    assert all(d.action != "ScaleDown" for d in back)
    assert fleet.step(1500.0, 3.0).action == "ScaleDown"


def test_an_infeasible_budget_gets_the_least_bad_option() -> None:
    spec = budget(cost={"maxPerHour": "30.00"})
    fleet = Fleet(spec, replicas=3)
    decisions = [fleet.step(now, 30.0) for now in range(0, 300, 15)]
    assert all(d.feasible is False for d in decisions)
    assert all(d.predicted_cost_per_hour is not None and d.predicted_cost_per_hour <= 30 for d in decisions)
    swap = next(d for d in decisions if d.action == "Swap")
    # small carries 3 x 6 req/s within the ceiling, big only 3 x 4: latency gives way, the ceiling holds
    assert (swap.reason, swap.variant, swap.replicas) == ("Infeasible", "small", 3)
    assert swap.message.startswith("no option meets every budget; least bad: 3 replicas of small")


def test_memory_over_budget_swaps_at_once() -> None:
    spec = budget(memory={"maxPerReplica": "32Gi"})
    decision, _ = decide(spec, seen(5.0, replicas=2, memory_per_replica_bytes=34 * 2**30), EngineState(), 0.0)
    assert (decision.action, decision.reason, decision.variant) == ("Swap", "MemoryOverBudget", "small")


def test_a_variant_declared_too_big_for_the_memory_budget_is_not_run() -> None:
    decision, _ = decide(budget(memory={"maxPerReplica": "25Gi"}), seen(5.0), EngineState(), 0.0)
    assert (decision.action, decision.reason, decision.variant) == ("Swap", "MemoryOverBudget", "small")


def test_replicas_over_the_cost_ceiling_are_cut_at_once() -> None:
    decision, _ = decide(one_variant(cost={"maxPerHour": "40.00"}), seen(3.0, replicas=6), EngineState(), 0.0)
    assert (decision.action, decision.reason, decision.replicas) == ("ScaleDown", "CostCeiling", 4)


def test_a_variant_below_the_quality_floor_is_swapped_at_once() -> None:
    spec = budget(policy={"minQuality": 0.99})
    decision, _ = decide(spec, seen(5.0, variant="small"), EngineState(), 0.0)
    assert (decision.action, decision.reason, decision.variant) == ("Swap", "QualityFloor", "big")


def test_an_unknown_variant_is_replaced() -> None:
    decision, _ = decide(budget(), seen(2.0, variant="medium"), EngineState(), 0.0)
    assert (decision.action, decision.reason, decision.variant) == ("Swap", "UnknownVariant", "big")


def test_replicas_outside_the_bounds_are_brought_inside() -> None:
    above, _ = decide(budget(), seen(5.0, replicas=12), EngineState(), 0.0)
    assert (above.action, above.reason, above.replicas) == ("ScaleDown", "ReplicaBounds", 10)
    below, _ = decide(budget(replicas={"min": 2}), seen(5.0, replicas=1), EngineState(), 0.0)
    assert (below.action, below.reason, below.replicas) == ("ScaleUp", "ReplicaBounds", 2)


def test_paused_decides_nothing_and_remembers_nothing() -> None:
    state = EngineState()
    decision, after = decide(budget(paused=True), seen(50.0, replicas=1), state, 0.0)
    assert (decision.action, decision.reason, decision.replicas) == ("Hold", "Paused", 1)
    assert after == state


def test_maximize_quality_prefers_quality_within_the_budgets() -> None:
    quality = {"policy": {"objective": "MaximizeQuality", "swap": {"sustainSeconds": 0}}}
    decision, _ = decide(budget(**quality), seen(20.0, variant="small", replicas=4), EngineState(), 0.0)
    assert (decision.action, decision.variant) == ("Swap", "big")
    capped, _ = decide(budget(**quality, cost={"maxPerHour": "50.00"}), seen(20.0, variant="small", replicas=4),
                       EngineState(), 0.0)
    assert capped.variant == "small"  # big would need 6 replicas (with the swap margin), 60.00/h


def test_latency_over_budget_teaches_a_lower_capacity() -> None:
    fleet = Fleet(one_variant(), replicas=3)
    decisions = [fleet.step(now, 9.0, latency_ms=1500.0) for now in range(0, 300, 15)]
    assert any(d.action == "ScaleUp" and d.reason == "LatencyOverBudget" for d in decisions)
    learned = fleet.state.learned["big"].requests_per_second_per_replica
    assert learned is not None and learned < 3.0


def test_one_good_sample_moves_capacity_by_a_bounded_step() -> None:
    fleet = Fleet(one_variant(), replicas=4)
    fleet.run(0.0, 60.0, rps=14.3)
    fleet.step(60.0, 14.3, latency_ms=400.0)
    assert fleet.state.learned["big"].requests_per_second_per_replica == 4.0 * 1.1


def test_a_fleet_idling_within_budget_does_not_claim_more_capacity() -> None:
    fleet = Fleet(one_variant(), replicas=4)
    fleet.run(0.0, 60.0, rps=4.0)
    fleet.step(60.0, 4.0, latency_ms=100.0)  # 1 req/s per replica: says nothing about 4.4 req/s
    assert fleet.state.learned["big"].requests_per_second_per_replica == 4.0


def test_every_reason_is_documented() -> None:
    assert set(REASONS) == set(get_args(Reason))


def _breaching_every(third: int | None, cycles: int) -> Fleet:
    """3 replicas at 9 req/s (3 per replica, within the 4 req/s hint), p95 500 ms but for a 3 s breach on every
    `third` cycle: the line through 1 / latency still puts the threshold above 3 req/s a replica."""
    fleet = Fleet(one_variant(), replicas=3)
    for cycle in range(cycles):
        breach = third is not None and cycle % third == third - 1
        fleet.step(cycle * 15.0, 9.0, latency_ms=3000.0 if breach else 500.0)
    return fleet


def test_a_sustained_breach_at_a_load_the_plan_allows_adds_replicas() -> None:
    fleet = _breaching_every(3, 40)
    learned = fleet.state.learned["big"].requests_per_second_per_replica
    assert learned is not None and learned < 3.0  # below the load it kept breaching at
    assert fleet.replicas >= 4
    assert any(d.action == "ScaleUp" for d in fleet.decisions)


def test_a_rare_breach_leaves_the_capacity_alone() -> None:
    fleet = _breaching_every(30, 40)  # one cycle in thirty, as any percentile has now and then
    assert fleet.state.learned["big"].requests_per_second_per_replica == 4.0
    assert fleet.replicas == 3


def test_a_scale_up_the_forecast_asked_for_is_held_for_its_horizon() -> None:
    # A step from 1 to 3.8 req/s, which one replica of 4 req/s carries: the trend through the step forecasts more
    # for a few cycles, fading unevenly. Without the hold the second replica went and came back 15 s apart.
    fleet = Fleet(one_variant(), replicas=1)
    for cycle in range(60):
        fleet.step(cycle * 15.0, 1.0 if cycle < 20 else 3.8)
    changes = [(15.0 * index, decision) for index, decision in enumerate(fleet.decisions) if decision.changes_workload]
    assert [(d.action, d.replicas, d.reason) for _, d in changes] == [
        ("ScaleUp", 2, "CapacityForecast"), ("ScaleDown", 1, "LoadFell")]
    (up_at, _), (down_at, _) = changes
    assert down_at - up_at >= 75.0  # the big variant's start-up plus a cycle



def test_an_undeclared_start_up_time_is_learned_from_replicas_becoming_ready() -> None:
    wire: dict[str, Any] = budget().to_wire()
    big = {key: value for key, value in wire["variants"][0].items() if key != "startupSeconds"}
    spec = one_variant(variants=[big])
    state = EngineState()
    for now in range(0, 195, 15):  # 3 replicas asked for at t=0, all Ready at t=180
        _, state = decide(spec, seen(2.0, replicas=3, ready=3 if now >= 180 else 1, at=now), state, float(now))
    assert startup_seconds(spec, state, "big") == 180.0  # nothing declared: learned, not the 60 s default
    for now in range(600, 705, 15):  # another start, of 90 s, moves it half way
        _, state = decide(spec, seen(2.0, replicas=3, ready=3 if now >= 690 else 2, at=now), state, float(now))
    assert startup_seconds(spec, state, "big") == 135.0
    for step in range(7):  # the forecast looks ahead over the learned start-up plus a cycle
        at = 2000.0 + 15 * step
        rising, state = decide(spec, seen(2.0 + step, replicas=1, at=at), state, at)
    assert rising.reason == "CapacityForecast" and "within 150s" in rising.message


def test_a_scale_down_plans_no_replica_for_far_more_than_one_has_served() -> None:
    # 8 replicas at 0.5 req/s each, well within the budget: the hint's 4 req/s a replica is a claim nothing here
    # has shown. The scale-down may plan 1.25 x 0.5 req/s a replica (7 replicas), not the hint's 4 (1 replica).
    fleet = Fleet(one_variant(), replicas=8)
    fleet.run(0.0, 420.0, rps=4.0, latency_ms=500.0)
    down = next(d for d in fleet.decisions if d.action == "ScaleDown")
    assert down.replicas == 7
    assert "at most 0.62 req/s" in down.message


def test_each_step_down_proves_the_next() -> None:
    fleet = Fleet(one_variant(), replicas=8)
    fleet.run(0.0, 3600.0, rps=4.0, latency_ms=500.0)  # within the budget at every count
    counts = [d.replicas for d in fleet.decisions if d.action == "ScaleDown"]
    assert counts == sorted(counts, reverse=True) and len(counts) >= 3
    assert fleet.replicas < 8


def test_a_swap_is_no_way_round_the_proven_load() -> None:
    # small: 6 req/s a replica by its hint, at big's price; big has shown 0.5 req/s a replica of its 4 claimed.
    # small may be planned for 6 x 0.5 / 4 x 1.25 = 0.94 req/s a replica: 4 req/s needs 5 of them, not 1. (The
    # swap waits for a whole scale-down window, when a swap may shrink the fleet.)
    spec = budget(policy={"minQuality": 0.9, "swap": {"sustainSeconds": 330, "cooldownSeconds": 0}})
    fleet = Fleet(spec, variant="big", replicas=8)
    fleet.run(0.0, 420.0, rps=4.0, latency_ms=500.0)
    swaps = [d for d in fleet.decisions if d.action == "Swap"]
    assert swaps and all(d.replicas >= 5 for d in swaps)


def test_a_small_fleet_may_try_one_replica_fewer_than_it_has_proven() -> None:
    # 2 replicas proven at 0.75 req/s each: 1.25 times that is no replica less, but one replica fewer carries
    # 1.5 req/s. Without this the fleet stayed at 2 for ever (a swap back to bf16 kept 3 replicas in the e2e test).
    fleet = Fleet(one_variant(), replicas=2)
    fleet.run(0.0, 420.0, rps=1.5, latency_ms=500.0)
    assert [(d.action, d.replicas) for d in fleet.changes] == [("ScaleDown", 1)]


def test_a_fleet_far_below_its_threshold_learns_past_a_hint_too_low() -> None:
    # 3 replicas at 3 req/s each (the hint, 4 a replica, asks for 3 at 9 req/s) answer in 150 ms, under the
    # latency model's base latency (a quarter of the 1 s threshold): latency has not grown with load, so no line
    # can be drawn, and a replica's capacity may be believed as far as one replica fewer carries the load. Before,
    # nothing was learned from such a fleet, and it stayed at 3 for ever.
    fleet = Fleet(one_variant(), replicas=3)
    fleet.run(0.0, 3600.0, rps=9.0, latency_ms=150.0)
    assert [(d.action, d.replicas) for d in fleet.changes] == [("ScaleDown", 2), ("ScaleDown", 1)]


def test_a_fleet_whose_latency_grows_with_load_is_not_believed_to_carry_a_whole_replica_more() -> None:
    # The same fleet, its latency growing with its load (150 ms at 2 req/s a replica, 190 ms at 3): a line can be
    # drawn, and low latency is no evidence of room for a whole replica's load more (a batching server's latency
    # stays low until near saturation). Only 1.25 times the load carried may be believed: under the hint.
    fleet = Fleet(one_variant(), replicas=3)
    for cycle in range(240):
        rps, latency_ms = (6.0, 150.0) if cycle % 40 < 20 else (9.0, 190.0)
        fleet.step(cycle * 15.0, rps, latency_ms=latency_ms)
    assert fleet.changes == []  # with the one-fewer rule here too: down to 2, then 1


def test_a_fleet_nearer_its_threshold_is_not_believed_to_carry_a_whole_replica_more() -> None:
    # The same fleet at 400 ms, 40% of the threshold, at one load: the line through the observations and the prior
    # allows 11 req/s a replica, but only 1.25 times the load carried may be believed, which is still under the
    # hint. (At 1.3 s of 2 s on the Azure trace, a fleet of 5 cut to 4 missed its next burst and went to 7.)
    fleet = Fleet(one_variant(), replicas=3)
    fleet.run(0.0, 3600.0, rps=9.0, latency_ms=400.0)
    assert fleet.changes == []


def _starting(phases: list[tuple[float, int]], *, ready: int, latency_ms: float = 4000.0) -> Fleet:
    """`ready` replicas Ready while the engine adds more (their start-up outlasts the run), at 4 times the 1 s
    threshold throughout; the load in phases of (requests/s, cycles)."""
    fleet = Fleet(one_variant(), replicas=ready)
    rates = [rps for rps, cycles in phases for _ in range(cycles)]
    for cycle, rps in enumerate(rates):
        fleet.step(cycle * 15.0, rps, latency_ms=latency_ms, ready=ready)
    return fleet


def _capacity(fleet: Fleet) -> float:
    capacity = fleet.state.learned["big"].requests_per_second_per_replica
    assert capacity is not None
    return capacity


def test_a_steady_breach_keeps_teaching_while_replicas_start() -> None:
    # The Ready replica breaches at a level 3 req/s for 5 minutes, but most of it after the first scale-up (at
    # 90 s). Learning that waited for the new replicas kept the capacity it had when it scaled up.
    at_scale_up = _starting([(3.0, 6)], ready=1)
    assert at_scale_up.decisions[-1].action == "ScaleUp"
    later = _starting([(3.0, 20)], ready=1)
    assert _capacity(later) < _capacity(at_scale_up)


def test_a_breach_while_replicas_start_lowers_capacity_in_proportion_at_most() -> None:
    # Latency as high at 1.5 req/s a replica as at 3: the line through them has no capacity left at all (it would
    # plan the budget's every replica), but what the replicas show is only that they carry at most
    # 1.5 req/s x threshold / latency.
    fleet = _starting([(6.0, 8), (3.0, 20)], ready=2)
    assert _capacity(fleet) == pytest.approx(1.5 * 1000.0 / 4000.0)
    assert fleet.replicas == 8


def test_a_rising_load_while_replicas_start_teaches_no_more() -> None:
    # After the scale-up, the load climbs by half a cycle: the latency of a ramp is the queue it leaves, not the
    # replicas' capacity.
    level = [(3.0, 8)]
    rising = _starting(level + [(3.0 * 1.5 ** step, 1) for step in range(1, 6)], ready=1)
    assert rising.state.learned["big"] == _starting(level, ready=1).state.learned["big"]
