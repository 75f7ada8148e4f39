"""The latency model: 1/latency falls linearly with the load per replica, and capacity is where it meets 1/T."""

import pytest

from inferbudget.engine.latency import Line, fitted_line, observe
from inferbudget.engine.state import LatencyFit

THRESHOLD_S = 1.0


def test_capacity_is_where_the_line_reaches_the_threshold() -> None:
    line = Line(intercept=5.0, slope=2.0)  # 200 ms at no load, saturation at 2.5 req/s
    assert line.capacity(THRESHOLD_S) == pytest.approx(2.0)
    assert line.latency_s(2.0) == pytest.approx(1.0)
    assert line.latency_s(2.5) is None  # saturated: the queue grows without bound


def test_without_observations_the_line_is_the_prior_through_the_hint() -> None:
    line = fitted_line(LatencyFit(), 4.0, THRESHOLD_S)
    assert line is not None
    assert line.capacity(THRESHOLD_S) == pytest.approx(4.0)
    assert 1.0 / line.intercept == pytest.approx(0.25)  # base latency assumed at a quarter of the threshold


def test_observations_spread_over_loads_teach_the_real_line() -> None:
    truth = Line(intercept=3.0, slope=1.0)  # capacity 2 req/s, where the hint claims 4
    fit = LatencyFit()
    for _ in range(10):
        for load in (0.5, 1.0, 1.5, 1.8):
            latency = truth.latency_s(load)
            assert latency is not None
            fit = observe(fit, load, latency)
    line = fitted_line(fit, 4.0, THRESHOLD_S)
    assert line is not None
    assert line.capacity(THRESHOLD_S) == pytest.approx(2.0, rel=0.1)


def test_old_observations_fade() -> None:
    fit = LatencyFit()
    for _ in range(200):
        fit = observe(fit, 1.0, 0.5)
    assert fit.weight == pytest.approx(1.0 / (1.0 - 0.95), rel=1e-3)


def test_latency_that_falls_with_load_draws_no_line() -> None:
    fit = LatencyFit()
    for load, latency in ((1.0, 0.9), (2.0, 0.3), (3.0, 0.1)) * 5:
        fit = observe(fit, load, latency)
    assert fitted_line(fit, None, THRESHOLD_S) is None
