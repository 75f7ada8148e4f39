"""The goal table under `make bench`'s results: inferbudget against the oracle and the baselines re-tuned to its
attainment (bench/run_bench.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

BENCH_SCRIPT = Path(__file__).resolve().parents[3] / "bench" / "run_bench.py"


def _run_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_bench", BENCH_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row(policy: str, attainment: float, cost: float, **extra: Any) -> dict[str, Any]:
    return {"trace": "t", "policy": policy, "slo_attainment_requests": attainment, "cost": cost,
            "settings": {"target": 1.0}, **extra}


def test_the_cheapest_baseline_reaching_the_engines_attainment_is_the_comparison() -> None:
    retuned = [
        {"policy": "hpa", "cost": 120.0, "slo_attainment_requests": 0.9931, "reaches": True, "settings": {"target": 3}},
        {"policy": "keda", "cost": 90.0, "slo_attainment_requests": 0.9920, "reaches": False, "settings": {}},
    ]
    rows = [
        _row("inferbudget", 0.993, 75.0, baselines_at_same_attainment=retuned, ceiling_without_foresight=0.9962),
        _row("keda", 0.9935, 100.0),  # the main table's run reaches it too, and is cheaper than the re-tuned HPA
        _row("oracle", 0.990, 60.0),
    ]
    line = _run_bench()._goal(rows)[-1]
    assert line == "| t | 0.9930 | 0.9962 | 75.00 | 1.250 | keda (0.9935, setting 1.0) | 100.00 | 25.0% |"


def test_no_baseline_reaching_the_engines_attainment_is_said_so() -> None:
    rows = [
        _row("inferbudget", 0.98, 9.0, baselines_at_same_attainment=[
            {"policy": "keda", "cost": 10.0, "slo_attainment_requests": 0.97, "reaches": False, "settings": {}}]),
        _row("keda", 0.97, 10.0),
        _row("oracle", 0.99, 6.0),
    ]
    no_ceiling_run = "| t | 0.9800 | - | 9.00 | 1.500 | none reaches it | - | - |"
    assert _run_bench()._goal(rows)[-1] == no_ceiling_run
