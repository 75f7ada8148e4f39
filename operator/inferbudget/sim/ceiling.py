"""The most any policy without foresight can reach on a trace: the ceiling the bench shows beside the goal.

A policy that cannot see the future starts the way the replay starts it (inferbudget.sim.start): cold, with
the fleet it chooses before any load, or warm. The most generous it can be is to run, from the first second
that shows it load, the most replicas the budget allows (replicas.max within the cost and memory ceilings) of
the variant with the most capacity per replica, whatever that costs. Requests that arrive before those
replicas are Ready are lost to every such policy, the engine and the baselines alike; only the oracle, which
starts its pods a start-up time before the load comes, avoids them. (Not a proof: another variant's latency
may suit a trace's lengths better; on the bench's traces it is the variant the engine runs.)

So where the ceiling is under the attainment target, no policy without foresight meets the target on that
trace: on the Mooncake trace started cold, one replica meets about 3.5 req/s of long prompts for the 100 s
its next replicas take to start, and the ceiling is 96.0% (`make bench`, 2026-11-28).
"""

from __future__ import annotations

from inferbudget.engine.learning import capacity_hint
from inferbudget.sim.engine_policy import engine_spec
from inferbudget.sim.policies import FleetObservation, FleetTarget
from inferbudget.sim.replay import ReplayOptions, ReplayResult, replay
from inferbudget.sim.suite import RunContext


class AllIn:
    """Replicas.min until the first load, then `replicas` for good; it looks every `interval_s`."""

    def __init__(self, variant: str, replicas: int, idle_replicas: int, interval_s: float) -> None:
        self.name = "ceiling"
        self.interval_s = interval_s
        self.variant, self.replicas, self.idle_replicas = variant, replicas, idle_replicas
        self.seen_load = False

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget:
        self.seen_load = self.seen_load or obs.request_rate > 0
        count = self.replicas if self.seen_load else self.idle_replicas
        return FleetTarget(self.variant, count, "all the budget allows" if self.seen_load else "no load yet")


def run_ceiling(context: RunContext) -> ReplayResult:
    """The replay of the most generous policy without foresight (see the module's docstring)."""
    spec = engine_spec(context.budget, context.profile, context.trace)
    largest = max(spec.variants, key=lambda variant: capacity_hint(variant) or 0.0)  # the first of equals
    model = context.profile.variant(largest.name)
    cap, idle = context.budget.replica_cap(model), max(context.budget.replicas_min, 1)
    policy = AllIn(largest.name, cap, idle, interval_s=context.trace.bin_seconds)  # sees load in its first second
    options = ReplayOptions(progress=context.progress, initial=context.initial_fleet(largest.name))
    return replay(context.trace, context.profile, context.budget, policy, options)
