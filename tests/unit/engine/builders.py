"""Small builders for engine tests: a two-variant budget and observations of a fleet."""

from typing import Any

from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.engine import Decision, EngineState, Observation, decide


def budget(**overrides: Any) -> InferenceBudgetSpec:
    """A budget with a high-quality variant (big) and a cheaper, faster, lower-quality one (small).

    big: 4 req/s per replica, 10.00/h, 30Gi; small: 6 req/s per replica, 10.00/h, 20Gi; p95 <= 1000 ms.
    `overrides` are merged into the spec (camelCase, as in a manifest; nested mappings merge, lists replace).
    """
    spec: dict[str, Any] = {
        "targetRef": {"name": "llm"},
        "latency": {"percentile": 95, "thresholdMs": 1000},
        "replicas": {"min": 1, "max": 10},
        "variants": [
            {"name": "big", "quality": 1.0, "costPerReplicaHour": "10.00", "memory": "30Gi",
             "capacityHint": {"requestsPerSecond": 4}, "startupSeconds": 60},
            {"name": "small", "quality": 0.97, "costPerReplicaHour": "10.00", "memory": "20Gi",
             "capacityHint": {"requestsPerSecond": 6}, "startupSeconds": 60},
        ],
        "policy": {"scaleDown": {"stabilizationSeconds": 300}, "swap": {"cooldownSeconds": 900,
                                                                         "sustainSeconds": 120}},
    }
    return InferenceBudgetSpec.model_validate(merged(spec, overrides))


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overrides.items():
        both_mappings = isinstance(value, dict) and isinstance(result.get(key), dict)
        result[key] = merged(result[key], value) if both_mappings else value
    return result


def seen(rps: float | None, *, variant: str | None = "big", replicas: int = 2, ready: int | None = None,
         latency_ms: float | None = 500.0, at: float = 0.0, **fields: Any) -> Observation:
    """An observation sampled at `at` (fresh), of a fleet that is fully ready unless `ready` says otherwise."""
    return Observation(sampled_at=at, requests_per_second=rps, latency_ms=latency_ms, variant=variant,
                       desired_replicas=replicas, ready_replicas=replicas if ready is None else ready, **fields)


class Fleet:
    """Runs the engine against a fleet that does what it decides at once (replicas Ready immediately).

    Latency is not reported unless a step passes it, so capacity stays at the hints (nothing to learn from).
    """

    def __init__(self, spec: InferenceBudgetSpec, *, variant: str = "big", replicas: int = 1) -> None:
        self.spec, self.variant, self.replicas = spec, variant, replicas
        self.state = EngineState()
        self.decisions: list[Decision] = []

    def step(self, now: float, rps: float | None, latency_ms: float | None = None, **fields: Any) -> Decision:
        observation = seen(rps, variant=self.variant, replicas=self.replicas, latency_ms=latency_ms, at=now,
                           **fields)
        decision, self.state = decide(self.spec, observation, self.state, now)
        if decision.variant is not None:
            self.variant = decision.variant
        self.replicas = decision.replicas
        self.decisions.append(decision)
        return decision

    def run(self, start: float, seconds: float, rps: float | None, every: float = 15.0, **fields: Any) -> Decision:
        """Steps at a constant load; the last decision."""
        now, decision = start, None
        while now < start + seconds:
            decision = self.step(now, rps, **fields)
            now += every
        assert decision is not None
        return decision

    @property
    def changes(self) -> list[Decision]:
        return [d for d in self.decisions if d.changes_workload]


def one_variant(**overrides: Any) -> InferenceBudgetSpec:
    """The budget with only the big variant, for tests of scaling alone."""
    wire: dict[str, Any] = budget().to_wire()
    return budget(**{"variants": wire["variants"][:1], **overrides})
