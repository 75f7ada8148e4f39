"""What the engine is told each cycle: plain data the operator reads from Prometheus and the API server.

The engine never reads a clock or a metric itself; everything below arrives here, already measured, so the same
engine runs in the operator, in the simulator and in property tests.
"""

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class FailedRollout:
    """The last rollout of `variant` failed at `failed_at` (it did not become Ready within its deadline).

    The time identifies the failure: reporting the same failure on every cycle does not extend its back-off.
    """

    variant: str
    failed_at: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Observation:
    """One cycle's view of the served model.

    Metric fields are None when Prometheus returned nothing for them. `requests_per_second` is what arrives at
    the model (all replicas together); `latency_ms` is the budget's percentile and signal over its window.
    """

    sampled_at: float | None  # time of the newest metric sample; None: no samples at all
    requests_per_second: float | None
    latency_ms: float | None  # None also when there was no traffic to measure
    memory_per_replica_bytes: int | None = None  # the largest replica's memory in use
    variant: str | None  # the variant in the workload's pod template (None: not labelled yet)
    desired_replicas: int  # spec.replicas of the workload
    ready_replicas: int
    rollout_in_progress: bool = False  # pod template change not yet complete
    failed_rollout: FailedRollout | None = None
    metrics_available: bool = True  # False when the metrics backend could not be queried

    def per_replica_rate(self) -> float | None:
        """Requests per second each Ready replica carries, when both are known."""
        if self.requests_per_second is None or self.ready_replicas <= 0:
            return None
        return self.requests_per_second / self.ready_replicas
