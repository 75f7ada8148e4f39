"""`inferbudget simulate`: its JSON and table, policies run in worker processes, progress, plots and user errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from inferbudget.cli import main
from inferbudget.sim.budget import default_budget_path
from inferbudget.sim.suite import POLICY_RUNNERS, PolicyProgress

FIGURES = {"policy", "cost", "gpu_hours", "slo_attainment_requests", "slo_attainment_windows", "mean_quality",
           "scale_events", "swaps", "breach_seconds"}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    """Five minutes in three steps (5, 60, 10 requests/s): enough load for the policies to scale."""
    rows = ["timestamp_s,input_tokens,output_tokens"]
    start = 0
    for seconds, rate in ((60, 5), (180, 60), (60, 10)):
        rows += [f"{start + second + k / rate:.3f},1000,100" for second in range(seconds) for k in range(rate)]
        start += seconds
    path = tmp_path / "stepped.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def simulate_json(capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    assert main(["simulate", *args, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert list(document) == ["policies"]
    policies: list[dict[str, Any]] = document["policies"]
    return policies


def test_json_has_every_policys_figures_with_the_default_profile_and_budget(
        trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies = simulate_json(capsys, "--trace", str(trace), "--policy", "all", "--jobs", "1")
    assert [policy["policy"] for policy in policies] == list(POLICY_RUNNERS)
    for policy in policies:
        assert set(policy) == FIGURES
        assert 0.0 <= policy["slo_attainment_requests"] <= 1.0
        assert 0.0 <= policy["slo_attainment_windows"] <= 1.0
        assert policy["cost"] > 0 and policy["gpu_hours"] > 0


def test_workers_give_the_sequential_figures_and_report_progress_on_a_terminal(
        trace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    sequential = simulate_json(capsys, "--trace", str(trace), "--jobs", "1")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert simulate_json(capsys, "--trace", str(trace), "--jobs", "2") == sequential
    progress = terminal.getvalue()
    assert "5/5 policies done" in progress  # shown with --json too: it goes to stderr
    assert progress.endswith("\n")  # the bar's line ends before anything else prints


def test_progress_covers_the_tuning_runs_and_names_the_policy(
        trace: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    simulate_json(capsys, "--trace", str(trace), "--policy", "keda", "--jobs", "1")
    assert "0/1 policies done, keda tuning fp8-h100 at " in terminal.getvalue()
    assert "keda final run (" in terminal.getvalue()


def test_no_progress_when_stderr_is_not_a_terminal(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    simulate_json(capsys, "--trace", str(trace), "--policy", "oracle")
    assert capsys.readouterr().err == ""


def test_a_report_arriving_after_its_policy_finished_is_dropped() -> None:
    shown: list[tuple[float, str]] = []
    progress = PolicyProgress(2, lambda fraction, message: shown.append((fraction, message)))
    progress.update("kpa", 0.4, "kpa tuning fp8-h100 at 5")
    progress.finish("kpa")
    progress.update("kpa", 1.0, "kpa final run")  # a worker's last report, read after its result
    assert shown == [(0.0, "0/2 policies done, kpa tuning fp8-h100 at 5 40%"), (0.5, "1/2 policies done")]


def test_the_table_names_every_policy(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--trace", str(trace)]) == 0
    table = capsys.readouterr().out
    assert "trace: stepped" in table
    first_cells = [line.split()[0] for line in table.strip().splitlines()[1:]]
    assert first_cells == ["policy", *POLICY_RUNNERS]


def test_plot_writes_a_png(trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    out = tmp_path / "run.png"
    assert main(["simulate", "--trace", str(trace), "--policy", "hpa,oracle", "--plot", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_a_plot_that_cannot_be_written_is_an_error_after_the_figures(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    unwritable = tmp_path / "missing-directory" / "run.png"
    assert main(["simulate", "--trace", str(trace), "--policy", "oracle", "--plot", str(unwritable)]) == 2
    captured = capsys.readouterr()
    assert "oracle" in captured.out
    assert captured.err.startswith("error: cannot write the plot")


def test_a_budget_variant_the_profile_lacks_is_a_clear_error(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budget = tmp_path / "budget.yaml"
    budget.write_text(default_budget_path().read_text().replace("name: fp8-h100,", "name: fp9-h100,"))
    for jobs in ("1", "2"):
        assert main(["simulate", "--trace", str(trace), "--budget", str(budget), "--jobs", jobs]) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("error: the budget names variant 'fp9-h100', which the profile")
        assert "Traceback" not in captured.err


def test_a_budget_allowing_no_variant_is_a_clear_error(
        trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    budget = tmp_path / "budget.yaml"
    budget.write_text(default_budget_path().read_text().replace("maxPerReplica: 48Gi", "maxPerReplica: 8Gi"))
    assert main(["simulate", "--trace", str(trace), "--budget", str(budget)]) == 2
    assert capsys.readouterr().err.startswith("error: the budget allows no variant of the profile")


@pytest.mark.parametrize("content", [None, "when,what\n1,2\n"], ids=["missing", "unknown-format"])
def test_an_unreadable_trace_is_a_clear_error(
        content: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "trace.csv"
    if content is not None:
        path.write_text(content)
    assert main(["simulate", "--trace", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}")
    assert "Traceback" not in captured.err


def test_the_baselines_are_tuned_to_the_attainment_asked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = ["timestamp_s,input_tokens,output_tokens"]  # 5, 60, then 5 requests/s: a surge no policy fully meets
    for start, seconds, rate in ((0, 120, 5), (120, 240, 60), (360, 120, 5)):
        rows += [f"{start + second + k / rate:.3f},1000,100" for second in range(seconds) for k in range(rate)]
    surge = tmp_path / "surge.csv"
    surge.write_text("\n".join(rows) + "\n")
    strict = simulate_json(capsys, "--trace", str(surge), "--policy", "keda", "--jobs", "1")[0]
    lenient = simulate_json(capsys, "--trace", str(surge), "--policy", "keda", "--jobs", "1", "--attainment", "0.9")[0]
    assert strict["slo_attainment_requests"] < 0.99  # none of its settings meets 99%: its best attainment is shown
    assert lenient["slo_attainment_requests"] >= 0.9 and lenient["cost"] < strict["cost"]


@pytest.mark.parametrize("option", [["--jobs", "0"], ["--time-scale", "0"], ["--attainment", "1"],
                                    ["--attainment", "99"]], ids=["jobs", "time-scale", "attainment", "percent"])
def test_a_value_out_of_range_is_a_usage_error(
        option: list[str], trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["simulate", "--trace", str(trace), *option])
    assert exit_.value.code == 2
    assert f"argument {option[0]}:" in capsys.readouterr().err


def test_the_twin_reports_a_bad_trace_or_variant_mapping_before_it_touches_a_cluster(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp_s,input_tokens,output_tokens\n0,10,nan\n")
    assert main(["twin", "--trace", str(bad)]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and f"{bad}:2" in error and "Traceback" not in error
    assert main(["twin", "--trace", str(bad), "--variant", "bf16"]) == 2
    assert "expected BUDGET=PROFILE" in capsys.readouterr().err


def _children(pid: int) -> set[int]:
    try:
        return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}
    except FileNotFoundError:  # the process has exited
        return set()


def test_ctrl_c_stops_every_worker_and_says_so_without_a_traceback(tmp_path: Path) -> None:
    long_trace = tmp_path / "six-hours.csv"  # all policies on it take far longer than the test waits
    long_trace.write_text("timestamp_s,input_tokens,output_tokens\n" + "".join(
        f"{second / 5:.1f},1000,100\n" for second in range(6 * 3600 * 5)))
    run = subprocess.Popen(
        [sys.executable, "-m", "inferbudget.cli", "simulate", "--trace", str(long_trace), "--policy", "all",
         "--jobs", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's foreground job has it
    try:
        deadline = time.monotonic() + 120
        while len(workers := _children(run.pid)) < 2 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)  # polling for the workers to exist, not waiting for anything to happen in time
        assert len(workers) == 2, "the policies' worker processes never started"
        # Ctrl-C reaches the terminal's whole process group, here as the pool is still starting: before it was
        # held back then, a worker could take it before it ignored it, and this process inside Pool(), left
        # hanging at exit
        os.killpg(run.pid, signal.SIGINT)
        out, err = run.communicate(timeout=60)
    finally:  # a failed run must not leave the simulation, or its workers, running after the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(run.pid, signal.SIGKILL)
        run.communicate()
    assert run.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    assert out == ""
    for worker in workers:
        assert not Path(f"/proc/{worker}").exists() or "zombie" in Path(f"/proc/{worker}/status").read_text()


@pytest.fixture
def long_prompts(tmp_path: Path) -> Path:
    """Ten minutes at 2 req/s of 15k-token prompts: far longer than the example budget's hints were measured at."""
    path = tmp_path / "long.csv"
    path.write_text("timestamp_s,input_tokens,output_tokens\n" + "".join(
        f"{second / 2:.1f},15000,200\n" for second in range(1200)))
    return path


def _simulated(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[list[str], list[str]]:
    """The policies named in the JSON, and the notes on stderr."""
    assert main(["simulate", *args, "--json"]) == 0
    captured = capsys.readouterr()
    policies = [policy["policy"] for policy in json.loads(captured.out)["policies"]]
    return policies, [line for line in captured.err.splitlines() if line.startswith("note: ")]


def test_a_capacity_hint_far_from_the_traces_benchmark_gets_a_note(
        long_prompts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policies, notes = _simulated(capsys, "--trace", str(long_prompts), "--policy", "inferbudget")
    assert policies == ["inferbudget"]  # the figures are printed all the same
    fp8 = next(line for line in notes if line.startswith("note: fp8-h100's capacityHint is 12.8 req/s, "))
    assert "x what one replica serves within the budget at this trace's lengths" in fp8


def test_no_note_for_a_baseline_or_for_hints_that_fit_the_trace(
        trace: Path, long_prompts: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, notes = _simulated(capsys, "--trace", str(long_prompts), "--policy", "hpa")  # the hints are the engine's
    assert notes == []
    _, notes = _simulated(capsys, "--trace", str(trace), "--policy", "inferbudget")  # chat lengths, as measured
    assert not any("fp8-h100's capacityHint" in line for line in notes)
