"""Numbers for people, in the one-line decision messages."""

from decimal import Decimal

from inferbudget.api.spec import InferenceBudgetSpec


def latency(ms: float | None) -> str:
    """800 -> '800ms', 1234 -> '1.2s'; None -> 'unknown'."""
    if ms is None:
        return "unknown"
    return f"{ms / 1000:.1f}s" if ms >= 1000 else f"{ms:.0f}ms"


LOAD_UNIT = "req/s"


def rate(rps: float) -> str:
    return f"{rps:.1f} {LOAD_UNIT}" if rps >= 1 else f"{rps:.2f} {LOAD_UNIT}"


def money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01'))}/h"


def percentile(spec: InferenceBudgetSpec) -> str:
    """'p95', 'p99.9'."""
    return f"p{spec.latency.percentile:g}"


def seconds(value: float) -> str:
    return f"{value:.0f}s"


def fleet(replicas: int, variant: str | None) -> str:
    noun = "replica" if replicas == 1 else "replicas"
    return f"{replicas} {noun} of {variant or 'an unknown variant'}"
