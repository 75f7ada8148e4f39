"""Shared fixtures: the shipped profile, small traces written on the fly, and the public traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inferbudget.sim.fleet import FleetProfile, load_profile
from inferbudget.sim.traces import Trace

# The public traces live beside the repository (../shared/traces), in CI as in development.
SHARED_TRACES = Path(__file__).resolve().parents[4] / "shared" / "traces"


@pytest.fixture(scope="session")
def profile() -> FleetProfile:
    return load_profile()


@pytest.fixture(scope="session")
def shared_traces() -> Path:
    assert SHARED_TRACES.is_dir(), f"public traces expected at {SHARED_TRACES}"
    return SHARED_TRACES


def steady_trace(rate: float, seconds: int, *, mean_in: float = 1000.0, mean_out: float = 100.0) -> Trace:
    """A trace with exactly `rate` requests in every one-second bin."""
    requests = np.full(seconds, float(rate))
    lengths_in = np.full(200, mean_in)
    lengths_out = np.full(200, mean_out)
    return Trace("steady", 1.0, 0.0, requests, requests * mean_in, requests * mean_out, lengths_in, lengths_out)


def stepped_trace(rates: list[tuple[int, float]], *, mean_in: float = 1000.0, mean_out: float = 100.0) -> Trace:
    """Consecutive phases of (seconds, requests per second)."""
    requests = np.concatenate([np.full(seconds, float(rate)) for seconds, rate in rates])
    rng = np.random.default_rng(0)
    lengths_in = rng.lognormal(np.log(mean_in), 0.5, 500)
    lengths_out = rng.lognormal(np.log(mean_out), 0.5, 500)
    lengths_in *= mean_in / lengths_in.mean()
    lengths_out *= mean_out / lengths_out.mean()
    return Trace("stepped", 1.0, 0.0, requests, requests * mean_in, requests * mean_out, lengths_in, lengths_out)
