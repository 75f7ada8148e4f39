"""Each baseline's characteristic behaviour: HPA tolerance and stabilization, KEDA polling and cooldown, KPA panic."""

from __future__ import annotations

import numpy as np

from inferbudget.sim.policies import (
    FleetObservation,
    HorizontalPodAutoscaler,
    HpaSettings,
    KedaPrometheusScaler,
    KedaSettings,
    KnativePodAutoscaler,
    KpaSettings,
)


def observe(
    *,
    desired: int,
    ready: int | None = None,
    running: float = 0.0,
    rate: float = 0.0,
    window: float = 15.0,
    concurrency: list[float] | None = None,
) -> FleetObservation:
    ready = desired if ready is None else ready
    series = np.asarray(concurrency if concurrency is not None else [running] * int(window), dtype=np.float64)
    return FleetObservation(
        time_s=0.0,
        window_s=window,
        request_rate=rate,
        mean_input_tokens=1000.0,
        mean_output_tokens=100.0,
        memory_per_replica_gib=30.0,
        kv_cache_usage=0.1,
        variant="fp8-h100",
        desired_replicas=desired,
        ready_replicas=ready,
        ready_by_variant={"fp8-h100": ready},
        running_requests=running,
        waiting_requests=0.0,
        rollout_in_progress=False,
        concurrency_series=series,
    )


def hpa(target: float = 10.0) -> HorizontalPodAutoscaler:
    return HorizontalPodAutoscaler("fp8-h100", HpaSettings(target_per_replica=target), replicas_min=1, replicas_max=50)


def test_hpa_ignores_changes_within_the_tolerance() -> None:
    policy = hpa()
    assert policy.decide(15, observe(desired=4, running=43)).replicas == 4  # ratio 1.075: within 10%
    assert policy.decide(30, observe(desired=4, running=37)).replicas == 4  # ratio 0.925
    assert policy.decide(45, observe(desired=4, running=60)).replicas == 6  # ratio 1.5: ceil(4 * 1.5)


def test_hpa_scales_down_only_after_the_stabilization_window() -> None:
    policy = hpa()
    assert policy.decide(0, observe(desired=8, running=80)).replicas == 8
    replicas = 8
    decisions = []
    for step in range(1, 25):  # load drops to a quarter at t=15 s
        replicas = policy.decide(15 * step, observe(desired=replicas, running=20)).replicas
        decisions.append((15 * step, replicas))
    assert all(r == 8 for t, r in decisions if t < 300)  # the window still remembers 8
    assert any(r == 2 for t, r in decisions if t >= 300)


def test_hpa_scale_up_is_rate_limited_and_ignores_unready_pods() -> None:
    policy = hpa()
    assert policy.decide(15, observe(desired=2, running=400)).replicas == 6  # max(2 x 200%, 2 + 4 pods)
    # Four of six pods are still starting: the HPA counts them at zero load, 60 / (6 * 10) = 1.0 -> hold.
    assert policy.decide(30, observe(desired=6, ready=2, running=60)).replicas == 6


def test_keda_polls_a_one_minute_rate_every_thirty_seconds() -> None:
    policy = KedaPrometheusScaler(
        "fp8-h100", KedaSettings(threshold_rps_per_replica=5.0), replicas_min=1, replicas_max=50
    )
    assert policy.decide(15, observe(desired=2, rate=10.0)).replicas == 2  # polled: 10 req/s on 2 pods
    # The rate jumps, but the next poll is due only at t=45: the HPA still sees the old value at t=30.
    assert policy.decide(30, observe(desired=2, rate=100.0)).replicas == 2
    assert policy.decide(45, observe(desired=2, rate=100.0)).replicas > 2


def test_keda_keeps_one_replica_during_the_cooldown_before_zero() -> None:
    policy = KedaPrometheusScaler(
        "fp8-h100", KedaSettings(threshold_rps_per_replica=5.0), replicas_min=0, replicas_max=50
    )
    policy.decide(30, observe(desired=1, rate=2.0))
    replicas = 1
    seen = []
    for step in range(3, 40):
        replicas = policy.decide(15 * step, observe(desired=replicas, rate=0.0)).replicas
        seen.append((15 * step, replicas))
    assert all(r >= 1 for t, r in seen if t < 330)  # activity ended near t=30: 300 s cooldown
    assert seen[-1][1] == 0


def kpa() -> KnativePodAutoscaler:
    return KnativePodAutoscaler("fp8-h100", KpaSettings(target_concurrency=10.0), replicas_min=1, replicas_max=100)


def test_kpa_panics_on_a_sudden_burst_and_does_not_scale_down_in_panic() -> None:
    policy = kpa()
    for step in range(30):  # a minute of steady load: 14 in flight on 2 pods (7 per pod = target)
        policy.decide(2 * step, observe(desired=2, window=2, concurrency=[14, 14]))
    first = policy.decide(62, observe(desired=2, window=2, concurrency=[140, 140]))
    # Two seconds into the burst the 6 s panic window averages 56 in flight: 8 pods, 400% of 2 Ready: panic.
    assert first.replicas == 8 and "panic" in first.reason
    policy.decide(64, observe(desired=8, ready=2, window=2, concurrency=[140, 140]))
    burst = policy.decide(66, observe(desired=8, ready=2, window=2, concurrency=[140, 140]))
    assert burst.replicas == 20  # the whole panic window at 140: ceil(140 / 7); the stable window lags far behind
    calm = policy.decide(68, observe(desired=burst.replicas, ready=2, window=2, concurrency=[14, 14]))
    assert calm.replicas >= burst.replicas  # in panic the KPA never scales down


def test_kpa_follows_the_stable_window_without_panic() -> None:
    policy = kpa()
    replicas = 2
    for step in range(40):
        target = policy.decide(2 * step, observe(desired=replicas, window=2, concurrency=[20, 20]))
        replicas = target.replicas
    assert replicas == 3 and "stable" in target.reason  # ceil(20 / 7)
