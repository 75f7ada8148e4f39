"""Replay accounting: cost, start-up delays, rolling swaps, SLO attainment by requests and by windows."""

from __future__ import annotations

import numpy as np
import pytest

from inferbudget.sim.budget import SimBudget
from inferbudget.sim.fleet import FleetProfile
from inferbudget.sim.policies import FleetObservation, FleetTarget
from inferbudget.sim.replay import ReplayOptions, replay
from inferbudget.sim.traces import Trace

from .conftest import steady_trace, stepped_trace


class Scripted:
    """Returns the target of the last scripted time at or before now."""

    def __init__(self, script: dict[float, FleetTarget], interval_s: float = 15.0) -> None:
        self.name = "scripted"
        self.interval_s = interval_s
        self.script = sorted(script.items())
        self.seen: list[FleetObservation] = []

    def decide(self, now: float, obs: FleetObservation) -> FleetTarget:
        self.seen.append(obs)
        return [target for time, target in self.script if time <= now][-1]


BUDGET = SimBudget(latency_threshold_ms=10_000, replicas_max=20)


def test_cost_is_replica_hours_times_price(profile: FleetProfile) -> None:
    trace = steady_trace(2, 3600)
    policy = Scripted({0: FleetTarget("fp8-h100", 3), 1800: FleetTarget("fp8-h100", 5)})
    result = replay(trace, profile, BUDGET, policy)
    replica_hours = 3 * 0.5 + 5 * 0.5
    assert result.gpu_hours == pytest.approx(replica_hours)
    assert result.cost == pytest.approx(replica_hours * profile.variant("fp8-h100").price_per_hour)
    assert result.scale_events == 1 and result.swaps == 0
    assert result.summary()["cost"] == pytest.approx(result.cost, abs=1e-4)


def test_new_replicas_serve_only_after_their_start_up(profile: FleetProfile) -> None:
    model = profile.variant("bf16-a100")
    trace = steady_trace(1, 900)
    result = replay(trace, profile, BUDGET, Scripted({0: FleetTarget(model.name, 1), 300: FleetTarget(model.name, 3)}))
    assert result.series is not None
    ready, billed = result.series.ready_replicas, result.series.pods
    assert ready[299] == 1 and billed[300] == 3  # billed from creation
    assert ready[300 + int(model.startup_s) - 1] == 1
    assert ready[300 + int(np.ceil(model.startup_s))] == 3


def test_under_provisioning_grows_latency_and_misses_the_slo(profile: FleetProfile) -> None:
    capacity = float(profile.variant("bf16-a100").capacity_rps(1000.0, 100.0))
    trace = stepped_trace([(300, capacity * 0.5), (300, capacity * 2.0)])
    result = replay(trace, profile, BUDGET, Scripted({0: FleetTarget("bf16-a100", 1)}))
    assert result.series is not None
    latency = result.series.latency_s
    assert np.nanmax(latency[:300]) < BUDGET.threshold_s
    assert np.all(np.diff(latency[320:600]) >= 0)  # the backlog only grows
    assert result.slo_attainment_requests < 0.6
    assert result.breach_seconds > 200


def test_generous_capacity_meets_the_slo_everywhere(profile: FleetProfile) -> None:
    result = replay(stepped_trace([(600, 5.0)]), profile, BUDGET, Scripted({0: FleetTarget("fp8-h100", 4)}))
    assert result.slo_attainment_requests > 0.99
    assert result.slo_attainment_windows == 1.0
    assert result.breach_seconds == 0
    assert result.mean_quality == pytest.approx(1.0)


def test_window_attainment_counts_windows_whose_percentile_is_within_budget(profile: FleetProfile) -> None:
    capacity = float(profile.variant("bf16-a100").capacity_rps(1000.0, 100.0))
    # Ten quiet minutes, then two minutes of heavy overload, then quiet again once the queue has drained.
    trace = stepped_trace([(600, capacity * 0.3), (120, capacity * 3.0), (1200, 0.0)])
    result = replay(trace, profile, BUDGET, Scripted({0: FleetTarget("bf16-a100", 1)}))
    windows = 1920 / 60
    assert 0 < result.slo_attainment_windows < 1
    assert result.slo_attainment_windows * windows == pytest.approx(round(result.slo_attainment_windows * windows))


def test_a_variant_change_rolls_out_without_losing_capacity(profile: FleetProfile) -> None:
    trace = steady_trace(5, 1200)
    policy = Scripted({0: FleetTarget("bf16-h100", 4), 300: FleetTarget("int8-w8a8-a100", 4)})
    result = replay(trace, profile, BUDGET, policy, ReplayOptions(max_surge_fraction=0.25))
    assert result.swaps == 1
    assert result.variants_used == ("bf16-h100", "int8-w8a8-a100")
    assert result.series is not None
    assert result.series.ready_replicas[300:].min() >= 4  # maxUnavailable 0
    assert result.series.pods[300:].max() <= 5  # maxSurge 25% of 4 = 1 extra pod
    assert result.series.pods[-1] == 4
    assert any(obs.rollout_in_progress for obs in policy.seen)
    assert not policy.seen[-1].rollout_in_progress
    assert policy.seen[-1].ready_by_variant == {"int8-w8a8-a100": 4}
    assert 0.997 < result.mean_quality < 1.0  # requests served by both variants


def test_observations_report_the_fleet(profile: FleetProfile) -> None:
    policy = Scripted({0: FleetTarget("fp8-h100", 2)})
    replay(steady_trace(10, 120), profile, BUDGET, policy)
    obs = policy.seen[-1]
    assert obs.request_rate == pytest.approx(10.0)
    assert obs.ready_replicas == 2 and obs.desired_replicas == 2
    assert obs.running_requests > 0
    assert 0 < obs.e2e_ms.p50 <= obs.e2e_ms.p95 <= obs.e2e_ms.p99
    assert obs.itl_ms.p50 > 0 and obs.ttft_ms.p50 < obs.e2e_ms.p50
    assert obs.memory_per_replica_gib > profile.variant("fp8-h100").resident_gib
    assert len(obs.concurrency_series) == 15
    assert policy.seen[0].metrics_available is False  # the probe before the trace starts


def test_runs_stop_early_once_they_cannot_win(profile: FleetProfile) -> None:
    trace = steady_trace(50, 3600)
    options = ReplayOptions(abort_above_violations=100.0)
    result = replay(trace, profile, BUDGET, Scripted({0: FleetTarget("bf16-a100", 1)}), options)
    assert result.aborted and not result.meets(0.99)
    capped = replay(
        trace, profile, BUDGET, Scripted({0: FleetTarget("fp8-h100", 10)}), ReplayOptions(abort_above_cost=1.0)
    )
    assert capped.aborted and capped.cost < 2.0


def test_a_policy_with_an_observation_window_reads_rate_and_latency_over_it(profile: FleetProfile) -> None:
    # As the operator's PromQL does (rate(...[60s]) and a histogram quantile over 60 s), not the last cycle's.
    policy = Scripted({0: FleetTarget("fp8-h100", 2)})
    policy.observation_window_s = 60.0  # type: ignore[attr-defined]
    replay(stepped_trace([(60, 10.0), (30, 20.0), (45, 2.0)]), profile, BUDGET, policy)
    by_time = {obs.time_s: obs for obs in policy.seen}
    rate, latency = by_time[90.0].over_window("e2e")
    assert by_time[90.0].request_rate == pytest.approx(20.0)  # the last cycle alone
    assert rate == pytest.approx(15.0)  # 30 s at 10 req/s and 30 s at 20 req/s
    at_20, _ = by_time[120.0].over_window("e2e")
    assert at_20 == pytest.approx(11.0)  # the 20 req/s half a minute, then 2 req/s
    lone = by_time[120.0].latency_ms("e2e")  # the last cycle's 2 req/s, served without a queue
    assert latency.p99 > 0 and by_time[120.0].over_window("e2e")[1].p99 > lone.p99


def test_without_an_observation_window_the_window_is_the_last_cycle(profile: FleetProfile) -> None:
    policy = Scripted({0: FleetTarget("fp8-h100", 2)})
    replay(stepped_trace([(60, 10.0), (30, 20.0)]), profile, BUDGET, policy)
    last = policy.seen[-1]
    assert last.over_window("e2e") == (last.request_rate, last.latency_ms("e2e"))


def _uneven_trace(seconds: int) -> Trace:
    """Fractional arrivals and token counts whose sums depend on the order they are added in."""
    rng = np.random.default_rng(7)
    requests = rng.gamma(2.0, 3.0, seconds)
    lengths = rng.lognormal(np.log(800.0), 0.7, 300)
    return Trace("uneven", 1.0, 0.0, requests, requests * rng.uniform(500, 1500, seconds), requests * 97.3, lengths,
                 lengths / 8.0)


def test_each_cycle_observes_the_trace_summed_over_exactly_its_own_bins(profile: FleetProfile) -> None:
    # The sums are taken once for the whole trace; each must equal the one of that cycle's bins alone, to the bit,
    # so a replay decides exactly as it would summing per cycle (a 15-bin cycle is where addition orders differ).
    trace = _uneven_trace(15 * 40 + 7)  # 40 whole cycles, then 7 bins that no decision follows
    policy = Scripted({0: FleetTarget("fp8-h100", 4)})
    replay(trace, profile, BUDGET, policy)
    observed = policy.seen[1:]  # the first is the probe before the trace starts
    assert len(observed) == 40
    for obs in observed:
        stop = round(obs.time_s)
        start = stop - round(obs.window_s)
        requests = trace.requests[start:stop].sum()
        assert obs.request_rate == requests / obs.window_s
        assert obs.mean_input_tokens == trace.input_tokens[start:stop].sum() / requests
        assert np.array_equal(obs.requests_per_second_series, trace.requests[start:stop])


def test_the_size_of_the_requests_is_read_over_the_observation_window(profile: FleetProfile) -> None:
    # The operator's tokens per request: rate(prompt + generated tokens[60s]) / rate(requests[60s]).
    trace = _uneven_trace(15 * 12)
    policy = Scripted({0: FleetTarget("fp8-h100", 4)})
    policy.observation_window_s = 60.0  # type: ignore[attr-defined]
    replay(trace, profile, BUDGET, policy)
    for obs in policy.seen[4:]:  # once a whole window has been observed
        stop = round(obs.time_s)
        window = slice(stop - 60, stop)
        tokens = trace.input_tokens[window].sum() + trace.output_tokens[window].sum()
        assert obs.window_tokens_per_request == pytest.approx(tokens / trace.requests[window].sum(), rel=1e-12)


def test_a_run_without_its_series_scores_exactly_as_one_with_them(profile: FleetProfile) -> None:
    # Tuning runs keep no series; what they report must not depend on it.
    trace = _uneven_trace(1800)
    script: dict[float, FleetTarget] = {
        0: FleetTarget("fp8-h100", 1), 300: FleetTarget("fp8-h100", 3), 900: FleetTarget("int4-w4a16-a100", 2)}
    kept = replay(trace, profile, BUDGET, Scripted(script))
    bare = replay(trace, profile, BUDGET, Scripted(script), ReplayOptions(keep_series=False))
    assert kept.series is not None and bare.series is None
    assert kept.summary() == bare.summary()
    assert (kept.cost, kept.slo_attainment_requests) == (bare.cost, bare.slo_attainment_requests)


def test_a_policy_asking_for_fewer_than_no_replicas_or_a_numpy_count_gets_a_whole_count(
    profile: FleetProfile,
) -> None:
    script: dict[float, FleetTarget] = {
        0: FleetTarget("fp8-h100", np.int64(2)), 60: FleetTarget("fp8-h100", -3)}  # type: ignore[arg-type]
    policy = Scripted(script)
    result = replay(steady_trace(1, 120), profile, BUDGET, policy)
    assert result.series is not None
    assert set(result.series.desired_replicas[15:60]) == {2.0} and set(result.series.desired_replicas[60:]) == {0.0}
    assert [type(obs.desired_replicas) for obs in policy.seen[1:]] == [int] * len(policy.seen[1:])
    assert all(obs.desired_replicas >= 0 for obs in policy.seen)
