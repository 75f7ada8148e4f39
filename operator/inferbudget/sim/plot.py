"""Plot a replay: load, replicas, variant and latency against the budget over time, to a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from inferbudget.sim.replay import ReplayResult
from inferbudget.sim.traces import FloatArray

MAX_POINTS = 4000  # long traces are reduced to this many points per line (means; peaks for latency)


def plot_results(results: list[ReplayResult], path: str | Path, title: str = "") -> Path:
    """Draw every result that kept its series into one figure with four stacked panels."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    drawn = [result for result in results if result.series is not None]
    if not drawn:
        raise ValueError("no result kept its time series (ReplayOptions.keep_series)")
    figure, (load_ax, replica_ax, variant_ax, latency_ax) = plt.subplots(
        4, 1, figsize=(12, 10), sharex=True, gridspec_kw={"height_ratios": [2, 2, 1, 2]}
    )
    first = drawn[0].series
    assert first is not None
    hours = _reduce(first.time_s, np.mean) / 3600.0
    load_ax.plot(hours, _reduce(first.request_rate, np.mean), color="black", linewidth=0.8)
    load_ax.set_ylabel("requests/s")
    for result in drawn:
        series = result.series
        assert series is not None
        label = f"{result.policy} (${result.cost:,.0f}, {result.slo_attainment_requests:.2%})"
        line = replica_ax.plot(hours, _reduce(series.pods, np.mean), linewidth=0.9, label=label)[0]
        replica_ax.plot(
            hours, _reduce(series.ready_replicas, np.mean), linewidth=0.6, linestyle=":", color=line.get_color()
        )
        variant_ax.step(
            hours, _reduce(series.variant_index, _mode), where="post", linewidth=0.9, color=line.get_color()
        )
        latency_ax.plot(hours, _reduce(series.latency_s, _peak), linewidth=0.7, color=line.get_color())
    replica_ax.set_ylabel("replicas\n(billed; dotted: Ready)")
    replica_ax.legend(loc="upper left", fontsize=8)
    variant_ax.set_yticks(range(len(first.variant_names)), first.variant_names, fontsize=7)
    variant_ax.set_ylabel("variant")
    latency_ax.axhline(first.threshold_s, color="red", linestyle="--", linewidth=0.8, label="budget")
    latency_ax.set_yscale("log")
    latency_ax.set_ylabel(f"p{first.percentile:g} {first.signal} (s)")
    latency_ax.set_xlabel("hours")
    latency_ax.legend(loc="upper left", fontsize=8)
    figure.suptitle(title or f"{drawn[0].trace}: replay against the budget")
    figure.tight_layout()
    target = Path(path)
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return target


def _reduce(values: FloatArray, how: object) -> FloatArray:
    """Blocks of consecutive bins reduced to one point each, so a 14-day trace stays drawable."""
    block = max(1, int(np.ceil(len(values) / MAX_POINTS)))
    usable = len(values) // block * block
    if usable == 0:
        return values
    blocks = values[:usable].reshape(-1, block)
    reduced: FloatArray = how(blocks, axis=1)  # type: ignore[operator]
    return reduced


def _peak(blocks: FloatArray, axis: int) -> FloatArray:
    with np.errstate(all="ignore"):
        finite = np.where(np.isfinite(blocks), blocks, -np.inf)
        peaks: FloatArray = finite.max(axis=axis)
    return np.where(np.isfinite(peaks), peaks, np.nan)


def _mode(blocks: FloatArray, axis: int) -> FloatArray:
    """The last value of each block: a variant index must not be averaged."""
    last: FloatArray = np.take(blocks, -1, axis=axis)
    return last
