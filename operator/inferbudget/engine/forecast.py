"""The load forecast: where the request rate will be once replicas started now are Ready.

A linear trend over the last TREND_WINDOW_SECONDS, extrapolated over the horizon (the variant's start-up time
plus one cycle, the earliest the next correction can be ready). Only the part of the slope beyond
TREND_CONFIDENCE standard errors counts: noise in a flat load then forecasts nothing (rather than a rise every
other cycle, which would buy replicas for nothing), while a real ramp is clear after a few samples. Never below
the current load, so a falling trend never removes capacity (scale-down has its own, slower path), and at most
MAX_GROWTH above it, so a burst cannot ask for an absurd fleet.
"""

import math

from inferbudget.engine.state import RateSample

TREND_WINDOW_SECONDS = 300.0
MAX_RATE_SAMPLES = 32
MIN_TREND_SAMPLES = 3
MAX_GROWTH = 1.0  # the forecast adds at most 100% of the current load
TREND_CONFIDENCE = 2.0


def remember_rate(rates: tuple[RateSample, ...], now: float, rps: float) -> tuple[RateSample, ...]:
    recent = tuple(sample for sample in rates if sample[0] > now - TREND_WINDOW_SECONDS and sample[0] < now)
    return (*recent, (now, rps))[-MAX_RATE_SAMPLES:]


def trend(rates: tuple[RateSample, ...]) -> float:
    """Rise of the load in requests/s per second that the samples establish: the least-squares slope less
    TREND_CONFIDENCE standard errors, and 0 when that is not positive or the samples are too few."""
    count = len(rates)
    if count < MIN_TREND_SAMPLES:
        return 0.0
    mean_t = sum(t for t, _ in rates) / count
    mean_r = sum(r for _, r in rates) / count
    spread = sum((t - mean_t) ** 2 for t, _ in rates)
    if spread <= 0:
        return 0.0
    slope = sum((t - mean_t) * (r - mean_r) for t, r in rates) / spread
    residuals = sum((r - mean_r - slope * (t - mean_t)) ** 2 for t, r in rates)
    standard_error = math.sqrt(residuals / (count - 2) / spread)
    return max(slope - TREND_CONFIDENCE * standard_error, 0.0)


def forecast(rps: float, slope: float, horizon_seconds: float) -> float:
    """The load expected `horizon_seconds` from now."""
    return max(rps, min(rps + slope * horizon_seconds, rps * (1.0 + MAX_GROWTH)))
