"""Trace loaders: every format, errors that name the line, time scaling, and the public traces."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from inferbudget.sim.traces import TraceError, load_trace

REQUEST = '{"timestamp": 0, "input_length": 1, "output_length": 1}'


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_plain_csv_bins_requests_and_tokens(tmp_path: Path) -> None:
    trace = load_trace(
        write(tmp_path / "t.csv", "timestamp_s,input_tokens,output_tokens\n0.1,100,10\n0.9,50,5\n2.5,10,1\n")
    )
    assert trace.requests.tolist() == [2.0, 0.0, 1.0]
    assert trace.input_tokens.tolist() == [150.0, 0.0, 10.0]
    assert trace.output_tokens.tolist() == [15.0, 0.0, 1.0]
    assert sorted(trace.sample_input.tolist()) == [10.0, 50.0, 100.0]


def test_azure_csv_uses_wall_clock_from_the_first_request(tmp_path: Path) -> None:
    text = (
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,4808,10\n"
        "2023-11-16 18:17:05.0319600,3180,8\n"
    )
    trace = load_trace(write(tmp_path / "azure.csv", text))
    assert trace.n_bins == 2
    assert trace.requests.tolist() == [1.0, 1.0]
    assert trace.total_requests == 2


def test_mooncake_jsonl_timestamps_are_milliseconds(tmp_path: Path) -> None:
    lines = [
        {"timestamp": 0, "input_length": 100, "output_length": 5, "hash_ids": [1]},
        {"timestamp": 2500, "input_length": 300, "output_length": 7, "hash_ids": [2]},
    ]
    trace = load_trace(write(tmp_path / "m.jsonl", "\n".join(json.dumps(line) for line in lines) + "\n"))
    assert trace.requests.tolist() == [1.0, 0.0, 1.0]
    assert trace.mean_input_tokens == 200.0


def test_time_scale_compresses_the_trace(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "timestamp_s,input_tokens,output_tokens\n0,1,1\n10,1,1\n19.5,1,1\n")
    normal = load_trace(path)
    fast = load_trace(path, time_scale=0.5)
    assert normal.n_bins == 20 and fast.n_bins == 10
    assert fast.total_requests == normal.total_requests
    assert fast.mean_rate() == pytest.approx(2 * normal.mean_rate())


def test_bin_width_is_configurable(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", "timestamp_s,input_tokens,output_tokens\n0,1,1\n4,1,1\n9,1,1\n")
    assert load_trace(path, bin_seconds=5.0).requests.tolist() == [2.0, 1.0]


@pytest.mark.parametrize(
    ("name", "text", "line", "words"),
    [
        ("bad.csv", "timestamp_s,input_tokens,output_tokens\n0,1,1\n1,x,1\n", 3, "not a number"),
        ("short.csv", "timestamp_s,input_tokens,output_tokens\n0,1\n", 2, "expected 3 fields"),
        ("neg.csv", "timestamp_s,input_tokens,output_tokens\n0,-1,1\n", 2, "negative"),
        ("bad.jsonl", '{"timestamp": 0, "input_length": 1, "output_length": 1}\n{oops\n', 2, "invalid JSON"),
        ("miss.jsonl", '{"timestamp": 0, "input_length": 1}\n', 1, "output_length"),
        ("azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\nyesterday,1,1\n", 2, "bad TIMESTAMP"),
        ("what.csv", "a,b,c\n1,2,3\n", 1, "unknown trace format"),
        ("chunk-1-trace.csv", "0,1.0,1.0,Gamma,1.0,1.0\n600,1.0,1.0,Poisson,1,1\n", 2, "unknown arrival pattern"),
        ("nan.jsonl", f"{REQUEST}\n{REQUEST.replace('0', 'NaN', 1)}\n", 2, "'timestamp' must be a finite number"),
        ("inf.jsonl", REQUEST.replace('"input_length": 1', '"input_length": Infinity'), 1, "finite number"),
        ("wide.jsonl", REQUEST.replace("0", "1" + "0" * 400, 1), 1, "finite number"),
        ("long.jsonl", REQUEST.replace("0", "1" + "0" * 5000, 1), 1, "a number too long"),
        ("late.jsonl", f"{REQUEST}\n{REQUEST.replace('0', '1e15', 1)}\n", 2, "at most 400 days"),
        (
            "late.csv",
            "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03,1,1\n3023-11-16 18:17:03,1,1\n",
            3,
            "check the timestamps",
        ),
        ("early.csv", "timestamp_s,input_tokens,output_tokens\n0,1,1\n-5,1,1\n", 3, "timestamp must not be negative"),
        ("early.jsonl", REQUEST.replace("0", "-1", 1), 1, "'timestamp' must not be negative"),
        ("chunk-2-trace.csv", "0,1.0,1.0,Gamma,1.0,1.0\n-600,1.0,1.0,Gamma,1,1\n", 2, "timestamp must not be negative"),
        ("quote.csv", 'timestamp_s,input_tokens,output_tokens\n0,1,1\n"' + "x" * 200_000 + "\n", 3, "malformed CSV"),
    ],
)
def test_unreadable_traces_name_the_file_and_line(tmp_path: Path, name: str, text: str, line: int, words: str) -> None:
    path = write(tmp_path / name, text)
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert f"{path}:{line}" in str(caught.value)
    assert words in str(caught.value)
    assert caught.value.line == line


@pytest.mark.parametrize(
    ("name", "good", "line"),
    [
        ("t.csv", "timestamp_s,input_tokens,output_tokens\n0,1,1\n", 3),
        ("m.jsonl", REQUEST + "\n", 2),
        ("chunk-0-trace.csv", "0,1.0,1.0,Gamma,1.0,1.0\n", 2),
        # far past the decoder's first read-ahead, so the line must be found again
        ("far.csv", "timestamp_s,input_tokens,output_tokens\n" + "0,1,1\r\n" * 5000, 5002),
    ],
)
def test_bytes_that_are_not_utf8_name_their_line(tmp_path: Path, name: str, good: str, line: int) -> None:
    path = tmp_path / name
    path.write_bytes(good.encode() + "1,caf\xe9,1\n".encode("latin-1"))
    with pytest.raises(TraceError) as caught:
        load_trace(path)
    assert str(caught.value) == f"{path}:{line}: byte 0xe9 is not UTF-8: save the trace as UTF-8 text"


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("t.csv", "timestamp_s,input_tokens,output_tokens\n0,1,1\n"),
        ("azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,1,1\n"),
        ("m.jsonl", REQUEST + "\n"),
        ("chunk-0-trace.csv", "0,1.0,1.0,Gamma,1.0,1.0\n"),
    ],
)
def test_a_utf8_byte_order_mark_is_accepted(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8-sig")
    assert load_trace(path, bin_seconds=60.0).total_requests > 0


def test_the_span_limit_counts_the_time_scale(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", f"timestamp_s,input_tokens,output_tokens\n0,1,1\n{200 * 86_400},1,1\n")
    assert load_trace(path, bin_seconds=3600.0).total_requests == 2
    with pytest.raises(TraceError, match=r"t.csv:3: this timestamp is 600 days after the earliest \(.*t.csv:2\)"):
        load_trace(path, time_scale=3.0, bin_seconds=3600.0)


def test_the_servegen_span_names_both_clients_files(tmp_path: Path) -> None:
    directory = tmp_path / "m-large"
    directory.mkdir()
    write(directory / "chunk-0-trace.csv", servegen_rows(1.0, 2))
    late = write(directory / "chunk-1-trace.csv", "0,1.0,1.0,Gamma,1.0,1.0\n1e9,1.0,1.0,Gamma,1.0,1.0\n")
    with pytest.raises(TraceError) as caught:
        load_trace(directory, bin_seconds=3600.0)
    assert str(caught.value).startswith(f"{late}:2: this timestamp is 11,574 days after the earliest (")
    assert "a trace may span at most 400 days" in str(caught.value)


def test_servegen_rows_less_than_a_second_apart_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "chunk-0-trace.csv", "0,1.0,1.0,Gamma,1.0,1.0\n0.5,1.0,1.0,Gamma,1.0,1.0\n")
    with pytest.raises(TraceError, match=r"windows start at 0 s and 0\.5 s: ServeGen rows must be at least 1 s apart"):
        load_trace(path)


def test_missing_and_empty_traces_are_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="no such file"):
        load_trace(tmp_path / "nope.csv")
    with pytest.raises(TraceError, match="empty trace"):
        load_trace(write(tmp_path / "empty.csv", "\n"))


def servegen_rows(rate: float, windows: int, pattern: str = "Gamma", shape: float = 1.0) -> str:
    return "".join(f"{600 * w},{rate},1.0,{pattern},{shape},1.0\n" for w in range(windows))


def test_servegen_window_rates_give_the_expected_count(tmp_path: Path) -> None:
    directory = tmp_path / "m-large"
    directory.mkdir()
    write(directory / "chunk-0-trace.csv", servegen_rows(5.0, 4))
    write(directory / "chunk-1-trace.csv", servegen_rows(2.0, 4, "Weibull", 0.5))
    write(directory / "chunk-2-trace.csv", "0,0,0,,0,0\n600,0,0,,0,0\n1200,0,0,,0,0\n1800,0,0,,0,0\n")
    trace = load_trace(directory, seed=3)
    assert trace.n_bins == 2400
    assert trace.total_requests == pytest.approx(7.0 * 2400, rel=0.05)
    assert trace.mean_input_tokens > 1000  # the documented chat-like length assumption


def test_servegen_synthesis_is_seeded_and_burstiness_follows_the_shape(tmp_path: Path) -> None:
    smooth = write(tmp_path / "chunk-0-trace.csv", servegen_rows(20.0, 6, "Gamma", 4.0))
    bursty = write(tmp_path / "chunk-1-trace.csv", servegen_rows(20.0, 6, "Weibull", 0.3))
    assert np.array_equal(load_trace(smooth, seed=1).requests, load_trace(smooth, seed=1).requests)
    assert not np.array_equal(load_trace(smooth, seed=1).requests, load_trace(smooth, seed=2).requests)
    smooth_counts, bursty_counts = load_trace(smooth).requests, load_trace(bursty).requests
    # Gamma with shape 4 has cv 0.5, Weibull with shape 0.3 a cv far above 1: far more variable per second.
    assert bursty_counts.var() / bursty_counts.mean() > 5 * smooth_counts.var() / smooth_counts.mean()


def test_servegen_time_scale_shortens_windows(tmp_path: Path) -> None:
    path = write(tmp_path / "chunk-0-trace.csv", servegen_rows(4.0, 2))
    trace = load_trace(path, time_scale=0.25)
    assert trace.n_bins == 300
    assert trace.total_requests == pytest.approx(4.0 * 1200, rel=0.1)


def test_public_azure_and_mooncake_traces(shared_traces: Path) -> None:
    azure = load_trace(shared_traces / "AzureLLMInferenceTrace_code.csv")
    assert azure.total_requests == 8819
    assert azure.mean_rate() == pytest.approx(2.57, abs=0.05)
    mooncake = load_trace(shared_traces / "synthetic_trace.jsonl")
    assert mooncake.total_requests == 3993
    assert mooncake.mean_input_tokens > 10_000


def test_public_servegen_files(shared_traces: Path, tmp_path: Path) -> None:
    """Three real client files, cut to their first six hours so the unit tier stays fast."""
    source = shared_traces / "servegen" / "language" / "m-large"
    target = tmp_path / "m-large"
    target.mkdir()
    for client in ("0", "1", "10"):
        lines = (source / f"chunk-{client}-trace.csv").read_text().splitlines()[:36]
        write(target / f"chunk-{client}-trace.csv", "\n".join(lines) + "\n")
    trace = load_trace(target)
    assert trace.duration_s == 36 * 600
    assert trace.total_requests > 0
    shutil.rmtree(target)
