"""The load forecast: where the request rate will be once replicas started now are Ready.

A linear trend over the last TREND_WINDOW_SECONDS, extrapolated over the horizon (the variant's start-up time
plus one cycle, the earliest the next correction can be ready). Never below the current load, so a falling
trend never removes capacity (scale-down has its own, slower path), and at most MAX_GROWTH above it, so a noisy
slope cannot ask for an absurd fleet.
"""

from inferbudget.engine.state import RateSample

TREND_WINDOW_SECONDS = 180.0
MAX_RATE_SAMPLES = 32
MIN_TREND_SAMPLES = 3
MAX_GROWTH = 1.0  # the forecast adds at most 100% of the current load


def remember_rate(rates: tuple[RateSample, ...], now: float, rps: float) -> tuple[RateSample, ...]:
    recent = tuple(sample for sample in rates if sample[0] > now - TREND_WINDOW_SECONDS and sample[0] < now)
    return (*recent, (now, rps))[-MAX_RATE_SAMPLES:]


def trend(rates: tuple[RateSample, ...]) -> float:
    """Least-squares slope of the load in requests/s per second (0 with too few samples to tell)."""
    if len(rates) < MIN_TREND_SAMPLES:
        return 0.0
    count = len(rates)
    mean_t = sum(t for t, _ in rates) / count
    mean_r = sum(r for _, r in rates) / count
    spread = sum((t - mean_t) ** 2 for t, _ in rates)
    if spread <= 0:
        return 0.0
    return sum((t - mean_t) * (r - mean_r) for t, r in rates) / spread


def forecast(rps: float, slope: float, horizon_seconds: float) -> float:
    """The load expected `horizon_seconds` from now."""
    return max(rps, min(rps + slope * horizon_seconds, rps * (1.0 + MAX_GROWTH)))
