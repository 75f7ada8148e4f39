"""Which variant the engine runs when price and quality do not decide, and how soon it gets there.

The budget is the Azure code bench's in small: bf16 and fp8 at the same price and quality, fp8 carrying 2.7 times
as much a replica, and an int8 build that carries what fp8 does at a hair less quality.
"""

from typing import Any

from inferbudget.api.status import LearnedVariant
from inferbudget.engine import EngineState, decide
from inferbudget.engine.planning import Loads, Plan, plan

from .builders import Fleet, budget, seen

H100 = {"costPerReplicaHour": "3.24", "startupSeconds": 100}
BF16 = {"name": "bf16", "quality": 1.0, "memory": "42Gi", "capacityHint": {"requestsPerSecond": 4.8}, **H100}
FP8 = {"name": "fp8", "quality": 1.0, "memory": "35Gi", "capacityHint": {"requestsPerSecond": 12.9}, **H100}
INT8 = {"name": "int8", "quality": 0.997, "memory": "35Gi", "capacityHint": {"requestsPerSecond": 12.9}, **H100}


def h100(*variants: dict[str, Any], **overrides: Any) -> Any:
    return budget(variants=list(variants), latency={"percentile": 99, "thresholdMs": 2000}, **overrides)


def test_a_variant_better_at_any_load_is_swapped_to_at_once() -> None:
    fleet = Fleet(h100(BF16, FP8), variant="bf16", replicas=1)
    swap = fleet.step(0.0, 1.0)
    assert (swap.action, swap.reason, swap.variant, swap.replicas) == ("Swap", "FasterVariant", "fp8", 1)
    assert swap.message == ("fp8 carries more a replica than bf16 (12.9 req/s instead of 4.8 req/s) for no more and "
                            "at no lower quality: better at any load: 1 replica of bf16 -> 1 replica of fp8 "
                            "(3.24/h)")


def test_a_variant_better_at_any_load_still_waits_for_the_cooldown() -> None:
    # At 1 req/s one replica of either carries the load for the same price: fp8 is chosen for its headroom.
    spec = h100(BF16, FP8)
    decision, _ = decide(spec, seen(1.0, variant="bf16", replicas=1, at=100.0), EngineState(last_swap_at=0.0), 100.0)
    assert (decision.action, decision.reason) == ("Hold", "SwapCooldown")
    assert "fp8 would be better (12.9 req/s instead of 4.8 req/s); last swap 100s ago" in decision.message


def test_a_variant_better_at_any_load_is_not_swapped_to_blind() -> None:
    decision, _ = decide(h100(BF16, FP8), seen(None, variant="bf16", replicas=1, metrics_available=False),
                         EngineState(), 0.0)
    assert (decision.action, decision.variant) == ("Hold", "bf16")


def test_less_than_the_swap_margin_more_a_replica_still_needs_sustained_evidence() -> None:
    close = dict(FP8, capacityHint={"requestsPerSecond": 5.2})  # 8% more than bf16
    fleet = Fleet(h100(BF16, close), variant="bf16", replicas=1)
    assert fleet.step(0.0, 1.0).action == "None"  # fp8 credited 5.2 / 1.1 < 4.8: bf16 stays the choice


def test_what_the_running_variant_taught_applies_to_the_others_from_the_first_lesson() -> None:
    # One breach teaches fp8 a lower capacity. int8 (same hint) must be judged as slow: otherwise it looks cheaper
    # (fewer replicas for the load) and the engine swaps to a build it has no reason to think any better.
    fleet = Fleet(h100(FP8, INT8), variant="fp8", replicas=2)
    fleet.run(0.0, 60.0, rps=20.0)
    fleet.step(60.0, 20.0, latency_ms=5000.0)
    assert fleet.state.learned["fp8"].samples == 1
    later = fleet.run(75.0, 600.0, rps=20.0)
    assert all(d.variant == "fp8" for d in fleet.decisions), [d.message for d in fleet.decisions if d.variant != "fp8"]
    assert "int8" not in later.message


# A cheaper, slower build: int8 on an A100, 0.6 times the price for 0.29 times the requests a replica.
A100_INT8 = {"name": "int8-a100", "quality": 0.997, "memory": "35Gi", "capacityHint": {"requestsPerSecond": 3.7},
             "costPerReplicaHour": "1.99", "startupSeconds": 100}


def test_an_untried_cheaper_variant_is_tried_at_its_hint_when_the_fleet_answers_far_within_the_threshold() -> None:
    # One fp8 replica at 2 req/s answers in 100 ms; int8-a100 carries 3.5 times less a replica, and 3.5 times
    # 100 ms is still under a quarter of the 2 s threshold. Before, int8-a100 could be planned for at most its hint
    # in the proportion fp8 had proven (2 of 12.9 req/s, times 1.25): 4 replicas for 2 req/s, dearer than the one
    # fp8 replica, so it was never run, where one replica of it carries the load.
    fleet = Fleet(h100(FP8, A100_INT8), variant="fp8", replicas=1)
    fleet.run(0.0, 1800.0, rps=2.0, latency_ms=100.0)
    swaps = [d for d in fleet.decisions if d.action == "Swap"]
    assert [(d.reason, d.variant, d.replicas) for d in swaps] == [("CheaperVariant", "int8-a100", 1)]
    assert "1.99/h instead of 3.24/h; untried: planned from its capacityHint at 3.7 req/s a replica" in (
        swaps[0].message)


def test_no_untried_variant_is_planned_at_its_hint_on_a_fleet_nearer_its_threshold() -> None:
    # The same fleet at 800 ms, 40% of the threshold: low latency is no evidence of room there (a continuously
    # batching server's latency stays low until near saturation), so int8-a100 keeps fp8's proportion.
    fleet = Fleet(h100(FP8, A100_INT8), variant="fp8", replicas=1)
    fleet.run(0.0, 1800.0, rps=2.0, latency_ms=800.0)
    assert fleet.changes == []


def test_no_variant_slower_than_the_room_allows_is_tried() -> None:
    # At 200 ms fp8 has room, but int8-a100 carries 3.5 times less a replica: 3.5 times 200 ms is past a quarter of
    # the threshold, and a build that much slower may miss it at any load (10,000-token prompts on the example
    # budget's A100 builds: tried, they served 8% of the requests).
    fleet = Fleet(h100(FP8, A100_INT8), variant="fp8", replicas=1)
    fleet.run(0.0, 1800.0, rps=2.0, latency_ms=200.0)
    assert fleet.changes == []


def test_a_trial_runs_no_fewer_replicas_than_the_fleet_it_replaces() -> None:
    # 3 fp8 replicas carry 3 req/s in 300 ms; an A100 build whose hint is 12 req/s a replica would carry it in one.
    # A trial of a hint is no way round the scale-down's one step per proof (engine.planning.proven_capacity):
    # it runs as many replicas as now, and proves any fewer as the running variant would.
    spec = h100(FP8, dict(A100_INT8, capacityHint={"requestsPerSecond": 12}))
    learned = {"fp8": LearnedVariant(requestsPerSecondPerReplica=12.9, samples=10, provenAt=1.0)}
    tried = _plan(spec, learned, 3.0, variant="fp8", replicas=3, room_ms=300.0)
    assert [(o.replicas, o.trial) for o in tried.options if o.variant.name == "int8-a100"] == [(3, True)]


def test_a_trial_that_breaches_goes_back_and_is_not_repeated() -> None:
    # int8-a100 at one replica misses the threshold (5 s) at 2 req/s, and answers in 400 ms at two: it scales up at
    # once, learns its capacity, and once the cooldown allows, one fp8 replica is cheaper than those two again.
    fleet = Fleet(h100(FP8, A100_INT8), variant="fp8", replicas=1)
    for cycle in range(480):  # 2 hours
        on_one_a100 = fleet.variant == "int8-a100" and fleet.replicas == 1
        latency_ms = 5000.0 if on_one_a100 else 400.0 if fleet.variant == "int8-a100" else 100.0
        fleet.step(cycle * 15.0, 2.0, latency_ms=latency_ms)
    swaps = [(d.variant, d.replicas) for d in fleet.decisions if d.action == "Swap"]
    assert swaps == [("int8-a100", 1), ("fp8", 1)]
    learned = fleet.state.learned["int8-a100"].requests_per_second_per_replica
    assert learned is not None and learned < 3.7


def test_a_variant_that_ran_at_low_load_is_planned_for_at_least_what_the_running_one_has_proven() -> None:
    # fp8 ran at night, proven at 1.5 req/s a replica; int8-a100 now runs and has proven 5 of its 3.7 declared.
    # In the same proportion fp8 has proven 17 req/s a replica, more than its learned 12.9, and one replica
    # carries 7 req/s. Planned for 1.25 times its own night-time 1.5 req/s, it needed 5 replicas: a breaching
    # int8-a100 fleet then swapped to whichever H100 build had never run, sized in proportion, rather than back to
    # fp8 (a replay of a daily cycle went to bf16, which breached in turn).
    learned = {"fp8": LearnedVariant(requestsPerSecondPerReplica=12.9, samples=100, provenAt=1.5),
               "int8-a100": LearnedVariant(requestsPerSecondPerReplica=5.0, samples=100, provenAt=5.0)}
    options = _plan(h100(FP8, A100_INT8), learned, 7.0, variant="int8-a100", replicas=2)
    assert [o.replicas for o in options.options if o.variant.name == "fp8"] == [1]


def test_a_proven_load_shown_before_the_capacity_fell_lifts_no_cap() -> None:
    # fp8 has proven 10 req/s a replica, but its capacity has since fallen to 0.5 (longer requests, counted as one
    # each by a server that reports no tokens); int8-a100 has run, at 0.1. In fp8's proportion int8-a100 would be
    # planned for 2.9 of its own 3.7 req/s: 2 replicas for 4.5 req/s where 10 fp8 replicas run. The proportion
    # counts no higher than the hint is believed (0.5 of 12.9 now), so the fleet stays.
    learned = {"fp8": LearnedVariant(requestsPerSecondPerReplica=0.5, samples=100, provenAt=10.0),
               "int8-a100": LearnedVariant(requestsPerSecondPerReplica=2.9, samples=100, provenAt=0.1)}
    options = _plan(h100(FP8, A100_INT8, replicas={"max": 20}), learned, 4.5, variant="fp8", replicas=10)
    assert options.best.variant.name == "fp8"


def _plan(spec: Any, learned: dict[str, LearnedVariant], rps: float, *, variant: str, replicas: int,
          room_ms: float | None = None) -> Plan:
    """The plan for a steady load, a whole scale-down window observed, with what the variants have taught."""
    loads = Loads(current=rps, slope=0.0, peak=rps, low=rps, cycle_seconds=15.0)
    running = seen(rps, variant=variant, replicas=replicas, latency_ms=room_ms or 1500.0)
    planned = plan(spec, running, EngineState(learned=learned), loads, True, room_ms=room_ms)
    assert planned is not None
    return planned
