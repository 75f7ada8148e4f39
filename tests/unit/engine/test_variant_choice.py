"""Which variant the engine runs when price and quality do not decide, and how soon it gets there.

The budget is the Azure code bench's in small: bf16 and fp8 at the same price and quality, fp8 carrying 2.7 times
as much a replica, and an int8 build that carries what fp8 does at a hair less quality.
"""

from typing import Any

from inferbudget.engine import EngineState, decide

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
