"""Recent load, bucketed in time, for the stabilization windows.

Like the HPA, the engine scales down only to what the highest load of the scale-down window needs, and (when
scaleUp.stabilizationSeconds > 0) up only to what the lowest load of the scale-up window needs. Loads are kept
rather than replica recommendations, so the windows stay valid across a swap (another variant needs another
count for the same load) and after the capacity estimate changes.

The window is stored in the resource's status, so its size is bounded whatever the cycle and window lengths:
time is cut into WINDOW_BUCKETS buckets per longest window, each keeping the lowest and highest load seen in it.
"""

import math

from inferbudget.engine.state import WindowBucket

WINDOW_BUCKETS = 60


def bucket_width(span_seconds: float) -> float:
    return span_seconds / WINDOW_BUCKETS


def remember(window: tuple[WindowBucket, ...], now: float, load: float,
             span_seconds: float) -> tuple[WindowBucket, ...]:
    """The window with this load added and buckets older than the span dropped."""
    if span_seconds <= 0:
        return ()
    width = bucket_width(span_seconds)
    kept = tuple(bucket for bucket in window if bucket[0] + width > now - span_seconds)
    start = math.floor(now / width) * width
    if kept and kept[-1][0] == start:
        _, low, high = kept[-1]
        return (*kept[:-1], (start, min(low, load), max(high, load)))
    return (*kept, (start, load, load))


def highest(window: tuple[WindowBucket, ...], now: float, seconds: float, span_seconds: float) -> float | None:
    """The highest load seen in the last `seconds` (None for an empty or zero-length window)."""
    loads = [high for start, _, high in _within(window, now, seconds, span_seconds)]
    return max(loads) if loads else None


def lowest(window: tuple[WindowBucket, ...], now: float, seconds: float, span_seconds: float) -> float | None:
    """The lowest load seen in the last `seconds` (None for an empty or zero-length window)."""
    loads = [low for start, low, _ in _within(window, now, seconds, span_seconds)]
    return min(loads) if loads else None


def _within(window: tuple[WindowBucket, ...], now: float, seconds: float,
            span_seconds: float) -> list[WindowBucket]:
    if seconds <= 0 or span_seconds <= 0:
        return []
    width = bucket_width(span_seconds)
    return [bucket for bucket in window if bucket[0] + width > now - seconds]
