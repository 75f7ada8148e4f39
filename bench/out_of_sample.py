"""Baselines tuned without hindsight: tuned on the first week of ServeGen m-large, scored on the second.

`make bench` tunes each baseline on the very trace it scores it on, a hindsight no autoscaler has in production.
Here HPA and KEDA are tuned on days 1-7 (their cheapest setting meeting the 99% target there) and that setting runs
on days 8-14; the engine, which is not tuned, runs on days 8-14 too; and, for reference, each baseline tuned on days
8-14 themselves. Every run starts warm. About 3 to 4 minutes on 2 cores.

Usage: python bench/out_of_sample.py [--traces DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from inferbudget.sim.budget import load_budget
from inferbudget.sim.engine_policy import run_engine
from inferbudget.sim.fleet import load_profile
from inferbudget.sim.replay import ReplayOptions, replay
from inferbudget.sim.suite import BASELINES, RunContext, tune_baseline
from inferbudget.sim.traces import Trace, load_trace

BENCH = Path(__file__).resolve().parent
WEEK_S = 7 * 86400


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("INFERBUDGET_TRACES", str(BENCH.parent.parent / "shared" / "traces"))
    parser.add_argument("--traces", default=default)
    args = parser.parse_args(argv)
    trace = load_trace(Path(args.traces) / "servegen" / "language" / "m-large")
    first, second = trace.head(WEEK_S), _after(trace, WEEK_S)
    budget, profile = load_budget(BENCH / "budgets" / "servegen-m-large.yaml"), load_profile()
    past = RunContext(first, profile, budget, start="warm")
    scored = RunContext(second, profile, budget, start="warm")
    engine = run_engine(scored)
    print(f"inferbudget, untuned, days 8-14: {engine.slo_attainment_requests:.4f} for ${engine.cost:,.2f}")
    for name in ("hpa", "keda"):
        baseline = BASELINES[name]
        tuned = tune_baseline(baseline, past)
        model = profile.variant(str(tuned.settings["variant"]))
        setting = float(str(tuned.settings["target"]))
        options = ReplayOptions(keep_series=False, initial=scored.initial_fleet(model.name))
        later = replay(second, profile, budget, baseline.build(model, setting, budget), options)
        hindsight = tune_baseline(baseline, scored)
        print(
            f"{name}: tuned on days 1-7 ({model.name}, {setting:g} {baseline.unit}): "
            f"{tuned.slo_attainment_requests:.4f} for ${tuned.cost:,.2f} there; on days 8-14 "
            f"{later.slo_attainment_requests:.4f} for ${later.cost:,.2f}; tuned on days 8-14 themselves "
            f"{hindsight.slo_attainment_requests:.4f} for ${hindsight.cost:,.2f}"
        )
    return 0


def _after(trace: Trace, seconds: float) -> Trace:
    """The trace from `seconds` on."""
    n = int(seconds / trace.bin_seconds)
    return replace(
        trace,
        requests=trace.requests[n:].copy(),
        input_tokens=trace.input_tokens[n:].copy(),
        output_tokens=trace.output_tokens[n:].copy(),
    )


if __name__ == "__main__":
    sys.exit(main())
