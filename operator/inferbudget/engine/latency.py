"""The latency model: a replica's latency percentile as a function of the requests per second it carries.

    1 / L(x) = a - b * x        equivalently   L(x) = L0 / (1 - x / x_sat),  L0 = 1 / a,  x_sat = a / b

This is the latency of a server whose time per step grows as 1 / (1 - utilisation), which is how a
continuously batching model server behaves: base latency L0 at no load, a smooth rise, and divergence at the
saturation rate x_sat. A replica's *capacity* is the load at which the percentile reaches the threshold T,
where the line crosses 1/T: c = (a - 1/T) / b.

Because 1/L is linear in x, the model is learned per variant by least squares over observations (x, 1/L),
weighted to forget old ones (the request mix drifts). Two pseudo-observations anchor the fit: the declared
capacity (capacityHint, 1/T) and a base latency of BASE_LATENCY_FRACTION x T at no load. They keep the fit
well-posed while the fleet sits at one operating point (then the line goes through the observations with the
prior's slope, a cautious extrapolation) and are outweighed as soon as observations spread over loads.
"""

from dataclasses import dataclass

from inferbudget.engine.state import LatencyFit

# Assumed base latency (no load) as a fraction of the threshold, until observations say otherwise. A low value
# gives a steep prior line, which under-estimates capacity (the safe direction) when extrapolating.
BASE_LATENCY_FRACTION = 0.25
PRIOR_WEIGHT = 0.2
# Each new observation multiplies older weights by this: about 1 / (1 - 0.95) = 20 observations of memory.
FORGETTING = 0.95
# Below this slope (in 1/s per request/s) latency does not measurably grow with load: no line to trust.
MIN_SLOPE = 1e-9


@dataclass(frozen=True, slots=True)
class Line:
    """1/L = intercept - slope * x, with x in requests/s per replica and L in seconds."""

    intercept: float
    slope: float

    def capacity(self, threshold_s: float) -> float:
        """Requests/s per replica at which the latency reaches the threshold (0 when even no load misses it)."""
        return max((self.intercept - 1.0 / threshold_s) / self.slope, 0.0)

    def latency_s(self, per_replica_rate: float) -> float | None:
        """Predicted latency at that load; None when the load is at or beyond saturation."""
        inverse = self.intercept - self.slope * per_replica_rate
        return 1.0 / inverse if inverse > 0 else None

    @classmethod
    def through_capacity(cls, capacity: float, slope: float, threshold_s: float) -> "Line":
        """The line with this slope that reaches the threshold exactly at `capacity`."""
        return cls(intercept=1.0 / threshold_s + slope * capacity, slope=slope)


def observe(fit: LatencyFit, per_replica_rate: float, latency_s: float) -> LatencyFit:
    """The sums with one more observation; older observations fade by FORGETTING."""
    x, y = per_replica_rate, 1.0 / latency_s
    return LatencyFit(
        weight=fit.weight * FORGETTING + 1.0,
        sum_x=fit.sum_x * FORGETTING + x,
        sum_y=fit.sum_y * FORGETTING + y,
        sum_xx=fit.sum_xx * FORGETTING + x * x,
        sum_xy=fit.sum_xy * FORGETTING + x * y,
        breached=fit.breached * FORGETTING,  # counted by the caller (engine.learning), faded alike here
    )


def fitted_line(fit: LatencyFit, hint_rps: float | None, threshold_s: float) -> Line | None:
    """Least-squares line over the observations and the prior; None when it cannot be drawn (no observations
    and no hint) or latency does not grow with load in it."""
    points = _prior_points(hint_rps, threshold_s)
    weight = fit.weight + sum(w for _, _, w in points)
    sum_x = fit.sum_x + sum(w * x for x, _, w in points)
    sum_y = fit.sum_y + sum(w * y for _, y, w in points)
    sum_xx = fit.sum_xx + sum(w * x * x for x, _, w in points)
    sum_xy = fit.sum_xy + sum(w * x * y for x, y, w in points)
    spread_x = sum_xx - sum_x * sum_x / weight
    if spread_x <= 0:
        return None
    slope = -(sum_xy - sum_x * sum_y / weight) / spread_x
    if slope < MIN_SLOPE:
        return None
    return Line(intercept=(sum_y + slope * sum_x) / weight, slope=slope)


def _prior_points(hint_rps: float | None, threshold_s: float) -> list[tuple[float, float, float]]:
    """(x, 1/L, weight) pseudo-observations: no load at the assumed base latency, and the declared capacity."""
    points = [(0.0, 1.0 / (BASE_LATENCY_FRACTION * threshold_s), PRIOR_WEIGHT)]
    if hint_rps is not None:
        points.append((hint_rps, 1.0 / threshold_s, PRIOR_WEIGHT))
    return points
