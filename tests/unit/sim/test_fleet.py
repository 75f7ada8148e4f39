"""The fleet model: latency rises with load, memory by variant, backlog under overload, sourced profile."""

from __future__ import annotations

import re

import numpy as np
import pytest

from inferbudget.sim.fleet import FleetProfile, GroupLoad, default_profile_path, evaluate_group, length_sample

from .conftest import steady_trace


def load(arrivals: list[float], ready: float = 1.0, backlog: float = 0.0) -> GroupLoad:
    n = len(arrivals)
    return GroupLoad(
        ready=np.full(n, ready),
        arrivals=np.asarray(arrivals, dtype=np.float64),
        mean_in=np.full(n, 1000.0),
        mean_out=np.full(n, 100.0),
        backlog=backlog,
        bin_seconds=1.0,
    )


def test_latency_rises_monotonically_with_load(profile: FleetProfile) -> None:
    model = profile.variant("fp8-h100")
    sample = length_sample(steady_trace(1, 10))
    capacity = float(model.capacity_rps(1000.0, 100.0))
    rates = list(np.linspace(0.0, 0.99 * capacity, 12))
    outcome = evaluate_group(model, load(rates), sample)
    assert np.all(np.diff(outcome.step_s) > 0)
    p95 = np.percentile(outcome.e2e_s, 95, axis=-1)
    assert np.all(np.diff(p95) > 0)
    assert np.all(np.diff(outcome.ttft_s.mean(axis=-1)) > 0)
    assert outcome.backlog.max() == 0.0  # below capacity nothing queues


def test_light_load_matches_the_published_single_stream_speed(profile: FleetProfile) -> None:
    # 6.48 ms/token on H100 BF16 and 13.3 ms on A100-40GB (here 80GB: more bandwidth) are the calibration points.
    assert profile.variant("bf16-h100").base_step_s == pytest.approx(0.00648, rel=0.01)
    assert profile.variant("bf16-a100").base_step_s < 0.0133
    assert profile.variant("int4-w4a16-h100").base_step_s < profile.variant("fp8-h100").base_step_s


def test_memory_follows_the_weight_width(profile: FleetProfile) -> None:
    bf16, fp8 = profile.variant("bf16-h100"), profile.variant("fp8-h100")
    int8, int4 = profile.variant("int8-w8a8-h100"), profile.variant("int4-w4a16-h100")
    assert bf16.memory_gib > int8.memory_gib > int4.memory_gib
    assert fp8.weight_bytes == int8.weight_bytes == pytest.approx(9.08e9, rel=0.01)  # the FP8 checkpoint's size
    assert bf16.weight_bytes == pytest.approx(16.06e9, rel=0.001)
    assert profile.variant("bf16-a100").memory_gib == bf16.memory_gib  # memory depends on precision, not GPU


def test_memory_in_use_grows_with_the_batch(profile: FleetProfile) -> None:
    model = profile.variant("int8-w8a8-h100")
    outcome = evaluate_group(model, load([1.0, 10.0, 20.0]), length_sample(steady_trace(1, 10)))
    assert np.all(np.diff(outcome.memory_gib) > 0)
    assert outcome.memory_gib[0] >= model.resident_gib
    assert outcome.memory_gib.max() <= model.memory_gib


def test_overload_builds_a_backlog_that_is_carried_and_drains(profile: FleetProfile) -> None:
    model = profile.variant("bf16-a100")
    sample = length_sample(steady_trace(1, 10))
    capacity = float(model.capacity_rps(1000.0, 100.0))
    overloaded = evaluate_group(model, load([3 * capacity] * 5), sample)
    assert np.all(np.diff(overloaded.backlog) > 0)  # under-provisioning: the queue grows every second
    assert np.all(np.diff(overloaded.wait_s.mean(axis=-1)) > 0)  # and so does the waiting time
    carried = overloaded.backlog[-1]
    after = evaluate_group(model, load([0.0] * 30, backlog=carried), sample)
    assert after.wait_s[0].mean() > 0
    assert after.backlog[-1] == 0.0  # a quiet spell drains it
    more_replicas = evaluate_group(model, load([0.0] * 30, ready=4.0, backlog=carried), sample)
    assert np.argmax(more_replicas.backlog == 0) < np.argmax(after.backlog == 0)


def test_no_ready_replica_means_requests_wait(profile: FleetProfile) -> None:
    outcome = evaluate_group(
        profile.variant("fp8-h100"), load([5.0, 5.0], ready=0.0), length_sample(steady_trace(1, 5))
    )
    assert outcome.backlog.tolist() == [5.0, 10.0]
    assert outcome.served.sum() == 0
    assert outcome.e2e_s.min() > 60


def test_every_number_in_the_profile_has_its_source_beside_it() -> None:
    """Each line that sets a number either cites a source, says it is an assumption, or belongs to a list of
    variants (names only)."""
    lines = default_profile_path().read_text().splitlines()
    numeric = [
        line for line in lines if not line.lstrip().startswith("#") and re.search(r":\s*-?[0-9.]+(e[0-9]+)?\b", line)
    ]
    assert numeric
    unsourced = [line for line in numeric if "#" not in line]
    assert unsourced == []
