"""Offline simulator: replay public inference traces through a serving-fleet model under scaling policies.

Entry points: `load_trace`, `load_profile`, `load_budget` / `SimBudget`, `replay` (one policy) and
`suite.run_policies` (the registry of policies compared by `inferbudget simulate` and `make bench`).
"""

from inferbudget.sim.budget import SimBudget, load_budget
from inferbudget.sim.fleet import FleetProfile, load_profile
from inferbudget.sim.policies import FleetObservation, FleetTarget, LatencyPercentiles, Policy
from inferbudget.sim.replay import ReplayOptions, ReplayResult, replay
from inferbudget.sim.traces import Trace, TraceError, load_trace

__all__ = [
    "FleetObservation",
    "FleetProfile",
    "FleetTarget",
    "LatencyPercentiles",
    "Policy",
    "ReplayOptions",
    "ReplayResult",
    "SimBudget",
    "Trace",
    "TraceError",
    "load_budget",
    "load_profile",
    "load_trace",
    "replay",
]
