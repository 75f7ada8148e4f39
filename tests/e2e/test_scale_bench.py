"""bench/scale.py at a tiny scale: it runs end to end and reports every figure (how fast is not asserted:
speed is for the benchmark to print, see bench/results/scale.md)."""

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_scale_benchmark_reports_each_figure(cluster: Any, tmp_path: Path) -> None:
    prefix = f"e2e-scale-{uuid.uuid4().hex[:5]}"  # its own namespaces, watched alone: other tests' stay apart
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench/scale.py"), "--cluster", cluster.name, "--prefix", prefix, "--namespaced",
         "--budgets", "5", "--pods-per-budget", "2", "--interval", "3", "--duration", "6", "--scrape-interval", "1",
         "--twin-tick", "0.5", "--label", "tiny", "--work", str(tmp_path / "work"), "--results", str(tmp_path)],
        capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"

    run = json.loads((tmp_path / "scale.json").read_text())["tiny"]
    assert (run["budgets"], run["pods"], run["namespaces"]) == (5, 10, 1)
    assert run["first_cycle_seconds"] > 0
    assert run["steady_cycle_span_seconds"], "no round of every budget inside the steady window"
    assert run["reconciles_per_second"] > 0 and run["mean_seconds_between_reconciles"] > 0
    assert run["prometheus_queries_per_cycle"] > 0 and run["prometheus_queries_first_cycle"] > 0
    assert run["api_requests_per_cycle"]["PATCH inferencebudgets/status"] > 0
    assert run["operator_api_requests_per_cycle"] > 0
    assert run["operator_cpu_cores"] > 0 and run["operator_peak_rss_mib"] >= run["operator_rss_mib"] > 0
    assert run["load_jump_to_scale_seconds"] > 0
    assert run["load_jump_to_breach_seconds"] is not None and run["breach_to_scale_seconds"] is not None
    assert {"before", "after"} <= set(run["load_average"])
    for why in (run["decisions_per_cycle"], run["events_per_cycle"]):  # often empty in so short a window
        assert all(isinstance(key, str) and value > 0 for key, value in why.items())
    table = (tmp_path / "scale.md").read_text()
    assert "| | tiny |" in table and "breach in Prometheus to scale patch" in table
    assert "- tiny: decisions " in table
