"""How the fleet stands at t=0 of a replay: a cold start, or a warm (steady-state) one.

Cold: the fleet is the policy's first decision on an observation without load, about `replicas.min` replicas,
while the trace carries production load from its first second. With start-up times near 100 s, the requests
of those first 100 s are then lost to any policy without foresight, whatever it does afterwards:
inferbudget.sim.ceiling measures how many (on the Mooncake trace, enough that none can reach 99%).

Warm: the service is already running, as an autoscaler meets it. Every policy starts with Ready replicas of
the variant it would run, sized by one rule for all: the fewest replicas that, held fixed, keep the requests
of the trace's first `WARM_WINDOW_S` within the budget's threshold for the attainment target's share (bounded
by the budget's replicas.min and max; if no count reaches it, the fewest with the best attainment). The fleet
model decides this, the one every run is scored by, so the start is neither under-sized (a fleet at its
saturation capacity for the peak minute already queues within the minute's bursts) nor padded by an
arbitrary headroom factor.
"""

from __future__ import annotations

import numpy as np

from inferbudget.sim.budget import SimBudget
from inferbudget.sim.fleet import FleetProfile, GroupLoad, evaluate_group, length_sample
from inferbudget.sim.policies import FleetTarget
from inferbudget.sim.traces import Trace

START_MODES = ("cold", "warm")
WARM_WINDOW_S = 300.0  # the trace's first minutes the warm fleet is sized for


def warm_replicas(
    trace: Trace, profile: FleetProfile, budget: SimBudget, variant: str, window_s: float = WARM_WINDOW_S
) -> int:
    """Replicas of `variant` a running service has for the load of the trace's first `window_s` seconds."""
    model = profile.variant(variant)
    bins = max(1, min(trace.n_bins, round(window_s / trace.bin_seconds)))
    counts = np.arange(max(budget.replicas_min, 1), max(budget.replica_cap(model), 1) + 1, dtype=np.float64)
    arrivals = trace.requests[:bins]
    mean_in, mean_out = trace.bin_mean_lengths()
    sample = length_sample(trace, budget.latency_signal)
    load = GroupLoad(  # one row per candidate count, held over the window
        ready=np.broadcast_to(counts[:, None], (len(counts), bins)),
        arrivals=np.broadcast_to(arrivals, (len(counts), bins)),
        mean_in=mean_in[:bins],
        mean_out=mean_out[:bins],
        backlog=np.zeros(len(counts)),
        bin_seconds=trace.bin_seconds,
    )
    within = (evaluate_group(model, load, sample).latency(budget.latency_signal) <= budget.threshold_s) @ sample.weights
    total = float(arrivals.sum())
    attainment = (within * arrivals).sum(axis=1) / total if total > 0 else np.ones(len(counts))
    enough = attainment >= min(budget.attainment_target, float(attainment.max())) - 1e-12
    return int(counts[int(np.argmax(enough))])


def warm_target(trace: Trace, profile: FleetProfile, budget: SimBudget, variant: str) -> FleetTarget:
    """The warm start's fleet for a policy that runs `variant`."""
    return FleetTarget(variant, warm_replicas(trace, profile, budget, variant), "warm start")
