"""Each budget's reconciles: on a grid of its own that a late wake-up does not shift, spread over the interval."""

import statistics

from hypothesis import given
from hypothesis import strategies as st

from inferbudget.cadence import next_run, phase

INTERVAL = 30.0


def test_a_late_start_delays_one_reconcile_not_the_ones_after_it() -> None:
    offset = 7.0
    runs, started = [], offset + 33_334 * INTERVAL  # on the grid
    for lateness in (0.0, 3.0, 0.0, 2.5, 0.0):
        started += lateness  # the event loop woke this reconcile late
        runs.append(started)
        started = next_run(started, started + 1.0, INTERVAL, offset)  # the reconcile took a second
    assert [round((run - offset) % INTERVAL, 6) for run in runs] == [0.0, 3.0, 0.0, 2.5, 0.0]
    assert round(runs[-1] - runs[0], 6) == 4 * INTERVAL, "no delay was carried into the next cycle"


def test_the_first_reconcile_then_the_grid_never_two_within_half_an_interval() -> None:
    offset = 20.0
    first = 1_000_015.0  # at the operator's start: the grid's next point is 5 s away
    second = next_run(first, first + 0.5, INTERVAL, offset)
    assert second - first >= INTERVAL / 2 and (second - offset) % INTERVAL == 0


def test_an_overrun_is_followed_by_the_next_grid_point_not_by_catching_up() -> None:
    offset, started = 0.0, 1_000_020.0
    after = next_run(started, started + 95.0, INTERVAL, offset)  # the API server kept the reconcile 95 s
    assert after >= started + 95.0 and after - (started + 95.0) < INTERVAL and after % INTERVAL == 0


@given(st.floats(0, 2e9), st.floats(0, 1e4), st.floats(1, 600), st.floats(0, 0.999999))
def test_the_next_run_is_on_the_grid_not_past_and_not_too_soon(
        started: float, took: float, interval: float, fraction: float) -> None:
    offset = fraction * interval
    now = started + took
    after = next_run(started, now, interval, offset)
    assert after >= now - 1e-6 and after - started >= interval / 2 - 1e-6
    assert after - max(now, started + interval / 2) <= interval + 1e-6
    steps = (after - offset) / interval
    assert abs(steps - round(steps)) * interval < 1e-3


def test_phases_are_stable_and_spread_evenly_over_the_interval() -> None:
    assert phase("3f1c-uid", INTERVAL) == phase("3f1c-uid", INTERVAL)
    phases = [phase(f"budget-{i}", INTERVAL) for i in range(1000)]
    assert all(0 <= p < INTERVAL for p in phases)
    per_tenth = [sum(1 for p in phases if k * 3 <= p < (k + 1) * 3) for k in range(10)]
    assert min(per_tenth) > 60 and max(per_tenth) < 140, per_tenth  # 100 each if perfectly even
    assert abs(statistics.mean(phases) - INTERVAL / 2) < 1.5
