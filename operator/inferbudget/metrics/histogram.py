"""histogram_quantile in Python, with Prometheus's interpolation, over buckets summed across pods.

Prometheus computes a quantile per series; summing the bucket rates of a budget's pods first and taking
the quantile after gives the percentile of the budget's requests as a whole, which is what the budget
promises.
"""

import math
from collections.abc import Iterable


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile (0 < q < 1) of a histogram given as (upper bound `le`, cumulative count) pairs.

    None when the histogram has no observations (no requests in the window: latency is unknown, not 0).
    """
    ordered = sorted(_merge(buckets))
    if not ordered or ordered[-1][0] != math.inf:
        return None
    total = ordered[-1][1]
    if total <= 0:
        return None
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in ordered:
        if count >= rank:
            if upper_bound == math.inf:
                return lower_bound  # beyond the last finite bucket: its bound is all we know
            if upper_bound <= 0:
                return upper_bound
            in_bucket = count - lower_count
            fraction = (rank - lower_count) / in_bucket if in_bucket > 0 else 1.0
            return lower_bound + (upper_bound - lower_bound) * fraction
        lower_bound, lower_count = upper_bound, count
    return None


def _merge(buckets: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
    """Sums counts of equal bounds and makes the counts monotone (rates of counters can jitter)."""
    summed: dict[float, float] = {}
    for upper_bound, count in buckets:
        summed[upper_bound] = summed.get(upper_bound, 0.0) + count
    merged, running_max = [], 0.0
    for upper_bound in sorted(summed):
        running_max = max(running_max, summed[upper_bound])
        merged.append((upper_bound, running_max))
    return merged
