"""The typed models: defaults, parsing of quantities and money, and agreement with the CRD's defaults."""

from decimal import Decimal

import pytest

from inferbudget.api.quantity import QuantityError, format_bytes, parse_bytes, parse_quantity
from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import InferenceBudgetStatus
from inferbudget.api.validation import apply_defaults, root_schema

MINIMAL = {
    "targetRef": {"name": "llama"},
    "latency": {"thresholdMs": 800},
    "variants": [{"name": "bf16", "quality": 1, "costPerReplicaHour": "4.10", "memory": "18Gi"}],
}


def test_minimal_spec_gets_the_documented_defaults() -> None:
    spec = InferenceBudgetSpec.model_validate(MINIMAL)
    assert spec.target_ref.kind == "Deployment" and spec.target_ref.api_version == "apps/v1"
    assert spec.server == "vllm" and spec.mode == "Enforce" and spec.paused is False
    assert (spec.latency.percentile, spec.latency.signal, spec.latency.window_seconds) == (95, "e2e", 60)
    assert (spec.replicas.min, spec.replicas.max) == (1, 10)
    assert spec.policy.objective == "MinimizeCost" and spec.policy.min_quality == 0
    assert spec.policy.scale_up.stabilization_seconds == 0
    assert spec.policy.scale_down.stabilization_seconds == 300
    assert spec.policy.swap.cooldown_seconds == 900
    assert spec.policy.when_metrics_missing.action == "Hold"


def test_models_default_exactly_like_the_api_server() -> None:
    """Defaulting through the CRD schema and parsing with the models give the same object."""
    defaulted_by_crd = apply_defaults({"spec": MINIMAL}, root_schema())["spec"]
    assert InferenceBudgetSpec.model_validate(MINIMAL).to_wire() == InferenceBudgetSpec.model_validate(
        defaulted_by_crd).to_wire()
    assert defaulted_by_crd["policy"]["scaleDown"]["stabilizationSeconds"] == 300


def test_spec_values_parse_to_numbers() -> None:
    spec = InferenceBudgetSpec.model_validate(
        {**MINIMAL, "memory": {"maxPerReplica": "24Gi"}, "cost": {"maxPerHour": "20.00"}})
    assert spec.variants[0].memory_bytes == 18 * 2**30
    assert spec.variants[0].cost_per_replica_hour_decimal == Decimal("4.10")
    assert spec.memory is not None and spec.memory.max_per_replica_bytes == 24 * 2**30
    assert spec.memory.max_total_bytes is None
    assert spec.cost is not None and spec.cost.max_per_hour_decimal == Decimal("20.00")
    assert spec.variant("bf16") is spec.variants[0] and spec.variant("int4") is None


@pytest.mark.parametrize(("text", "value"), [
    ("1Ki", 1024), ("24Gi", 24 * 2**30), ("1.5G", 1_500_000_000), ("2e3", 2000), ("500m", Decimal("0.5")),
    ("80", 80), (".5Mi", 2**19),
    # Quirks of apimachinery's parser, checked against the API server by the fuzz tests: no digits is zero,
    # finer than a nano rounds up to 1n, binary values stop at 2**63-1, exponents wrap at 32 bits.
    ("Gi", 0), (".", 0), ("-", 0), ("0.5n", Decimal("1e-9")), ("9Ei", 2**63 - 1), ("1e4294967297", 10),
])
def test_quantities_parse_like_kubernetes(text: str, value: Decimal | int) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["24GB", "1.2.3", "", "ten", " 1", ".e-20", "1e9223372036854775808", "1K"])
def test_malformed_quantities_are_refused_with_examples(text: str) -> None:
    with pytest.raises(QuantityError, match="examples"):
        parse_quantity(text)


def test_memory_is_rounded_up_to_whole_bytes_and_formatted_for_people() -> None:
    assert parse_bytes("1500m") == 2
    assert parse_bytes("1e999999999") == 2**63 - 1  # the API server accepts it; int64 bounds it, as there
    assert format_bytes(18 * 2**30) == "18Gi"
    assert format_bytes(1.5 * 2**30) == "1.5Gi"
    assert format_bytes(512) == "512"


def test_status_round_trips_through_its_wire_form() -> None:
    wire = {
        "observedGeneration": 3,
        "conditions": [{"type": "Ready", "status": "True", "reason": "WithinBudget",
                        "lastTransitionTime": "2026-11-27T20:00:00Z"}],
        "lastDecision": {"time": "2026-11-27T20:00:00Z", "action": "ScaleUp", "reason": "LatencyOverBudget",
                         "message": "p95 1.2s > 800ms: 2 -> 3 replicas", "variant": "bf16", "replicas": 3,
                         "predicted": {"latencyMs": 610.0, "costPerHour": "12.30"}},
        "learned": {"bf16": {"requestsPerSecondPerReplica": 2.1, "samples": 40}},
        "engineState": {"recommendations": [[1.0, 3]], "anything": {"nested": True}},
    }
    status = InferenceBudgetStatus.model_validate(wire)
    assert status.last_decision is not None and status.last_decision.action == "ScaleUp"
    assert status.learned["bf16"].requests_per_second_per_replica == 2.1
    assert InferenceBudgetStatus.model_validate(status.to_wire()) == status
