"""The engine's memory between cycles, kept in the resource's status (status.engineState) as JSON.

Everything the engine remembers is here and nowhere else, so a restarted operator resumes exactly: deciding
with a state read back from JSON gives the same decision as with the state kept in memory.
"""

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from inferbudget.api.base import ApiModel
from inferbudget.api.status import LearnedVariant

# (time, requests per second): recent load for the trend of the forecast.
RateSample = tuple[float, float]
# (time, median rate of the minutes before): the base loads the burst excesses are measured from (engine.bursts).
BaseSample = tuple[float, float]
# (end, highest load): the peaks of recent bursts, which scale-down keeps replicas for (engine.bursts).
PeakSample = tuple[float, float]
# (bucket start, lowest, highest planned load in the bucket): the stabilization windows.
WindowBucket = tuple[float, float, float]


class LatencyFit(ApiModel):
    """Exponentially weighted sums of observations x = requests/s per replica, y = 1 / latency in seconds.

    The latency model (engine.latency) fits a line y = a - b * x to them; see there for why a line.
    """

    weight: float = 0.0
    sum_x: float = 0.0
    sum_y: float = 0.0
    sum_xx: float = 0.0
    sum_xy: float = 0.0
    breached: float = 0.0  # the observations over the threshold, weighted alike: breached / weight is their share


class Fleet(ApiModel):
    """The workload as last seen, and since when it has looked like that (for learning from steady fleets)."""

    variant: str | None
    desired: int
    ready: int
    since: float
    ready_since: float | None = None  # the same variant has had `ready` Ready replicas since then (None: `since`)

    def ready_unchanged_since(self) -> float:
        """Since when the variant has had this many Ready replicas (a state saved before ready_since: `since`)."""
        return self.since if self.ready_since is None else self.ready_since


class Preference(ApiModel):
    """Another variant has been the better choice since `since` (the sustained evidence a swap needs)."""

    variant: str
    since: float


class PredictionRecord(ApiModel):
    """What the last decision predicted, to compare with what is observed later."""

    at: float
    variant: str | None
    replicas: int
    latency_ms: float | None
    cost_per_hour: float | None


class EngineState(ApiModel):
    version: Literal[1] = 1
    target: str | None = None  # uid of the workload the bookkeeping below is about (None: not recorded yet)
    observing_since: float | None = None  # first cycle with trustworthy metrics (windows are complete after it)
    last_cycle_at: float | None = None
    cycle_seconds: float | None = None  # time between the last two cycles
    rates: tuple[RateSample, ...] = ()
    window: tuple[WindowBucket, ...] = ()
    planned: tuple[RateSample, ...] = ()  # loads planned for over the last start-up horizon (engine.forecast)
    bases: tuple[BaseSample, ...] = ()  # over the last start-up horizon (engine.bursts)
    burst_excesses: tuple[float, ...] = ()  # rises over the base that breached the latency, newest last
    burst_peaks: tuple[PeakSample, ...] = ()  # recent bursts, newest last
    fleet: Fleet | None = None
    starting_since: float | None = None  # replicas have been starting (ready < desired) since then
    last_swap_at: float | None = None  # when the workload's variant was last seen to change
    preferred: Preference | None = None
    failures: dict[str, float] = Field(default_factory=dict)  # variant -> when its rollout failed
    learned: dict[str, LearnedVariant] = Field(default_factory=dict)
    fits: dict[str, LatencyFit] = Field(default_factory=dict)
    request_tokens: float | None = None  # the request size loads and capacities count in (engine.work)
    recent_request_tokens: float | None = None  # the latest size measured, which the load is counted at
    blind_since: float | None = None  # metrics missing or stale since then
    last_prediction: PredictionRecord | None = None

    def for_target(self, uid: str) -> "EngineState":
        """The state to decide about the workload with this uid.

        A workload deleted and created again under the same name is a new object: its fleet, rollouts, swaps,
        windows and trend say nothing about the old one's, so that bookkeeping starts afresh (cautiously: a
        whole window is observed again before any scale-down, and no swap cooldown is inherited). What was
        learned about the variants (capacity, the latency fits, failed rollouts within their back-off) is
        about the model and the hardware, not the object, and is kept, with the request size it is counted in."""
        if self.target in (None, uid):
            return self.model_copy(update={"target": uid})
        return EngineState(target=uid, learned=self.learned, fits=self.fits, failures=self.failures,
                           cycle_seconds=self.cycle_seconds, request_tokens=self.request_tokens,
                           recent_request_tokens=self.recent_request_tokens)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data for status.engineState."""
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> "EngineState":
        """The state saved by to_json; a fresh state for None. Raises ValueError on data it cannot read, and
        the caller may then start afresh: a fresh state is cautious (no scale-down before a full window)."""
        if data is None:
            return cls()
        return cls.model_validate(data)
