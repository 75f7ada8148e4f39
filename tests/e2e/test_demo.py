"""`make demo`, run unattended as a new user would run it: every kind of decision happens, each with its reason."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from inferbudget.engine.decision import REASONS

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_the_unattended_demo_scales_up_down_and_swaps_with_reasons(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    env = {**os.environ, "DEMO_SECONDS": "300", "DEMO_SUMMARY": str(summary),
           "INFERBUDGET_DEMO_CLUSTER": "demo-e2e"}
    result = subprocess.run([sys.executable, str(ROOT / "hack/demo.py")], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Decisions taken:" in result.stdout and "tearing down" in result.stdout
    decisions = json.loads(summary.read_text())["decisions"]
    by_action = {action: [d for d in decisions if d["action"] == action] for action in ("ScaleUp", "ScaleDown", "Swap")}
    for action, taken in by_action.items():
        assert taken, f"no {action} in the demo: {decisions}"
        assert all(d["reason"] in REASONS and d["message"] for d in taken), taken
