"""Headroom for bursts shorter than a replica's start-up, learned from the bursts that hurt.

Replicas started when a burst is seen are Ready only after it (a model server takes a minute or two to start),
so a bursty load is served by the replicas that were already running. The engine therefore learns how far the
load rises above its level within that time, and keeps replicas for it.

Every cycle it measures the excess: the highest rate sampled over the horizon ending now (the running variant's
start-up plus one cycle) less the base load at the horizon's start (the median rate of the BASE_SECONDS before:
the level the load returns to between bursts, which a burst hardly moves). An excess counts only when it is a
burst, more than JUMP above the base as the forecast defines one (noise on a steady load is not: holding
replicas for it would make them come and go with the noise), and the latency measured this cycle is over the
threshold; a rise the fleet absorbed needs no headroom and counts as 0, so a load whose bursts the sizing
already covers gets none. The burst floor is the base load now plus the
BURST_QUANTILE of the last MAX_BURST_SAMPLES excesses: headroom appears once bursts have breached the latency on
more than 1 - BURST_QUANTILE of recent cycles, and fades as they stop doing so.

Bursts that recur after idle minutes longer than the scale-down window need a memory longer than it, or each
burst meets the fleet the idle minutes left (the window forgets the last burst, and one the fleet absorbed teaches
no headroom). So the peak of each burst (a load more than JUMP above the base) is remembered, and once
MIN_RECURRING bursts are, scale-down keeps replicas for the highest remembered peak halved every
PEAK_HALF_LIFE_WINDOWS scale-down windows since its burst ended: through a gap of a few windows the fleet stays near
what the last burst needed, and six windows after the bursts stop it holds an eighth of their peak (half an hour
with the default 300 s window). With the default window, on the Azure code trace, whose bursts come back after 4 to
8 idle minutes, a half-life of one window let the fleet shrink to one replica between two bursts (98.26% of
requests within the threshold, $8.87, in a warm replay), two windows kept two (98.78%, $8.76), six kept more for
little gain (98.81%, $9.03); on the 14-day ServeGen trace two windows changed the cost by $5 in $32,858. Without
a scale-down window nothing is remembered: scale-down follows the load at once. A load that really fell (a daily
cycle) has no bursts above its own median and is not held. Nor is a burst already under way at the first
observation: it has no level before it to stand above, and the next burst finds the fleet the quiet load needed.
"""

import math

from inferbudget.engine.forecast import JUMP
from inferbudget.engine.state import BaseSample, PeakSample, RateSample

BURST_QUANTILE = 0.9
MAX_BURST_SAMPLES = 120  # half an hour of 15 s cycles
MIN_BURST_SAMPLES = 8  # excesses seen before the floor applies
BASE_SECONDS = 300.0
PEAK_HALF_LIFE_WINDOWS = 2.0  # the recalled peak halves every this many scale-down windows
PEAK_MEMORY_HALF_LIVES = 4.0  # a peak older than this many half-lives holds under 1/16 of its load
PEAK_GAP_SECONDS = 60.0  # burst samples closer than this are one burst
MIN_RECURRING = 2  # bursts remembered before their peaks hold replicas: one spike is no pattern


def base_load(rates: tuple[RateSample, ...], now: float) -> float:
    """Median of the rates sampled in the last BASE_SECONDS (0 without samples)."""
    recent = sorted(rps for t, rps in rates if t > now - BASE_SECONDS)
    if not recent:
        return 0.0
    middle = len(recent) // 2
    return recent[middle] if len(recent) % 2 else (recent[middle - 1] + recent[middle]) / 2


def remember_bases(bases: tuple[BaseSample, ...], now: float, base: float,
                   horizon_seconds: float) -> tuple[BaseSample, ...]:
    """The bases of the last horizon and the newest one before it (the start of the horizon ending now)."""
    kept = tuple(sample for sample in bases if sample[0] < now)
    older = [sample for sample in kept if sample[0] <= now - horizon_seconds]
    recent = tuple(sample for sample in kept if sample[0] > now - horizon_seconds)
    return (*older[-1:], *recent, (now, round(base, 4)))


def excess(bases: tuple[BaseSample, ...], rates: tuple[RateSample, ...], now: float, horizon_seconds: float,
           *, breached: bool) -> float | None:
    """How far the load rose above its base within the horizon ending now, when that was a burst and breached
    the latency (0 otherwise); None before a whole horizon has been observed."""
    start = [sample for sample in bases if sample[0] <= now - horizon_seconds]
    if not start:
        return None
    began, base = start[-1]
    peak = max((rps for t, rps in rates if began < t <= now), default=None)
    if peak is None:
        return None
    return peak - base if breached and peak > base * (1 + JUMP) else 0.0


def remember_excess(excesses: tuple[float, ...], sample: float | None) -> tuple[float, ...]:
    if sample is None:
        return excesses
    return (*excesses, round(sample, 3))[-MAX_BURST_SAMPLES:]


def headroom(excesses: tuple[float, ...]) -> float:
    """The BURST_QUANTILE of the excesses, in requests/s; 0 until MIN_BURST_SAMPLES have been seen."""
    if len(excesses) < MIN_BURST_SAMPLES:
        return 0.0
    ordered = sorted(excesses)
    return ordered[max(math.ceil(BURST_QUANTILE * len(ordered)) - 1, 0)]


def peak_half_life(scale_down_seconds: float) -> float:
    """Seconds over which a remembered burst peak halves, for this scale-down window (0: none is remembered)."""
    return PEAK_HALF_LIFE_WINDOWS * scale_down_seconds


def remember_peak(peaks: tuple[PeakSample, ...], now: float, load: float, base: float,
                  half_life: float) -> tuple[PeakSample, ...]:
    """The bursts' peaks of the last PEAK_MEMORY_HALF_LIVES half-lives, one (end, highest load) per burst."""
    if half_life <= 0:
        return ()
    kept = tuple(sample for sample in peaks if now - PEAK_MEMORY_HALF_LIVES * half_life < sample[0] < now)
    if not load > base * (1 + JUMP):
        return kept
    if kept and now - kept[-1][0] <= PEAK_GAP_SECONDS:
        return (*kept[:-1], (now, round(max(load, kept[-1][1]), 4)))
    return (*kept, (now, round(load, 4)))


def recalled_load(peaks: tuple[PeakSample, ...], now: float, half_life: float) -> float:
    """The highest remembered burst peak, halved every `half_life` seconds since it ended (0 unless bursts
    recur)."""
    if len(peaks) < MIN_RECURRING or half_life <= 0:
        return 0.0
    return max((load * 0.5 ** (max(now - t, 0.0) / half_life) for t, load in peaks), default=0.0)
