"""When each budget is reconciled: once per interval, on a grid of its own that does not drift.

kopf's timers count each interval from the moment the previous run really started, so every delay in waking
(an event loop busy with the many reconciles due at the same moment) is added to all the cycles after it: with
1,000 budgets at a 30 s interval, each budget was decided every 33 s (bench/scale.py, lastDecision times). And
the budgets keep the phases the operator's start gave them, all bunched together, so the work comes in bursts,
which make the delays.

Here a budget's reconciles fall on phase + k * interval in Unix time, its phase drawn from a hash of its uid:
the budgets' work is spread evenly over the interval, a late wake-up delays one reconcile and not the ones
after it, and a restarted operator keeps the same grid. The first reconcile (at the operator's start, or when
the budget appears) is at once, so that a new budget's status shows promptly; after a reconcile the next is at
the first grid point half an interval away or more, never two within half an interval.
"""

import hashlib
import math


def phase(uid: str, interval: float) -> float:
    """Where in each interval the budget's reconciles fall, in [0, interval): even over many budgets."""
    fraction = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:8], "big") / 2**64
    return fraction * interval


def next_run(last_started: float, now: float, interval: float, offset: float) -> float:
    """The first point of the grid (offset + k * interval) at least half an interval after the last reconcile
    started, and not in the past: a reconcile that overran its interval is followed by the next grid point,
    not by a burst of catching up."""
    earliest = max(now, last_started + interval / 2)
    return offset + math.ceil((earliest - offset) / interval) * interval
