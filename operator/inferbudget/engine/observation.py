"""What the engine is told each cycle: plain data the operator reads from Prometheus and the API server.

The engine never reads a clock or a metric itself; everything below arrives here, already measured, so the same
engine runs in the operator, in the simulator and in property tests.
"""

from dataclasses import dataclass, replace

# Figures no model server produces: an exporter's garbage, not a measurement. The engine treats them as missing
# (holding, as when blind) rather than planning with arithmetic that overflows to inf, which the status could not
# even be written with (JSON has no inf).
MAX_REQUESTS_PER_SECOND = 1e9
MAX_TOKENS_PER_REQUEST = 1e9
LATENCY_MS_RANGE = (1e-6, 1e9)  # a nanosecond to eleven days; 0 is kept (nothing measured)


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
    tokens_per_request: float | None = None  # mean prompt + generated tokens over the window (engine.work)
    variant: str | None  # the variant in the workload's pod template (None: not labelled yet)
    desired_replicas: int  # spec.replicas of the workload
    ready_replicas: int
    rollout_in_progress: bool = False  # pod template change not yet complete
    failed_rollout: FailedRollout | None = None
    metrics_available: bool = True  # False when the metrics backend could not be queried

    def plausible(self) -> "Observation":
        """This observation with implausible figures (see MAX_REQUESTS_PER_SECOND) as missing."""
        rate, latency, tokens = self.requests_per_second, self.latency_ms, self.tokens_per_request
        low, high = LATENCY_MS_RANGE
        return replace(
            self,
            requests_per_second=rate if rate is None or 0 <= rate <= MAX_REQUESTS_PER_SECOND else None,
            latency_ms=latency if latency is None or latency == 0 or low <= latency <= high else None,
            tokens_per_request=tokens if tokens is None or 0 < tokens <= MAX_TOKENS_PER_REQUEST else None)

    def per_replica_rate(self) -> float | None:
        """Requests per second each Ready replica carries, when both are known."""
        if self.requests_per_second is None or self.ready_replicas <= 0:
            return None
        return self.requests_per_second / self.ready_replicas
