"""Trace loaders: public inference traces turned into per-bin load for the fleet model.

Every format becomes the same `Trace`: per time bin, the number of requests that arrived and their summed input
and output tokens, plus a bounded sample of per-request (input, output) lengths that gives the shape of the length
distribution (the fleet model needs it for latency percentiles, the bins only carry sums).

Formats, detected from the content rather than the file name:

- Azure LLM inference trace CSV (header ``TIMESTAMP,ContextTokens,GeneratedTokens``, wall-clock timestamps);
- Mooncake JSONL (one object a line: ``timestamp`` in ms, ``input_length``, ``output_length``);
- plain CSV with header ``timestamp_s,input_tokens,output_tokens``;
- ServeGen per-client arrival windows: a directory of ``chunk-<client>-trace.csv`` files, or one such file
  (no header: ``timestamp_s, rate, cv, pattern, shape, scale``). These hold arrival-process parameters per 600 s
  window, not requests, so arrivals are synthesised per bin (see `_synthesise_servegen_bins`).

Files are UTF-8 (a byte-order mark is fine). Anything unreadable is a `TraceError` naming the file and line.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# A bounded sample keeps the length distribution of big traces without holding every request.
LENGTH_SAMPLE_SIZE = 20_000

# ServeGen's language traces carry arrival processes only. Token lengths follow this documented assumption:
# log-normal input and output lengths with medians from the Azure *conversation* trace characterised in
# Splitwise (Patel et al., ISCA 2024, Sec. III: median prompt ~1020 tokens, median output ~129 tokens), and
# spreads (sigma of the log) chosen to give a long tail (p99 about 10x the median for inputs, 8x for outputs).
SERVEGEN_INPUT_MEDIAN = 1020.0
SERVEGEN_INPUT_LOG_SIGMA = 1.0
SERVEGEN_OUTPUT_MEDIAN = 129.0
SERVEGEN_OUTPUT_LOG_SIGMA = 0.9

AZURE_HEADER = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
PLAIN_HEADER = ("timestamp_s", "input_tokens", "output_tokens")
SERVEGEN_PATTERNS = ("Gamma", "Weibull", "")
# Shapes below this make Gamma(1 + 1/k) overflow; such processes are all-burst anyway.
MIN_SHAPE = 0.01
# ServeGen windows are 600 s; starts closer than a second are a corrupt file and would make millions of windows.
MIN_SERVEGEN_WINDOW_S = 1.0

DAY_S = 86_400.0
# The longest public traces cover weeks (ServeGen: 14 days), so 400 days leaves room for a year of load. A longer
# span is a corrupt timestamp or a wrong unit (ms read as s), and would allocate a bin per second of it.
MAX_SPAN_S = 400 * DAY_S


class TraceError(ValueError):
    """A trace file the loader cannot read; the message names the file and, where known, the line."""

    def __init__(self, path: Path | str, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


@dataclass(frozen=True, slots=True)
class Trace:
    """Load binned in time. Bin i covers [start_s + i*bin_seconds, start_s + (i+1)*bin_seconds)."""

    name: str
    bin_seconds: float
    start_s: float
    requests: FloatArray  # requests arriving in each bin
    input_tokens: FloatArray  # summed prompt tokens of those requests
    output_tokens: FloatArray  # summed generated tokens of those requests
    sample_input: FloatArray  # per-request prompt lengths of a bounded sample (shape of the distribution)
    sample_output: FloatArray  # generated lengths of the same sample, paired with sample_input

    @property
    def n_bins(self) -> int:
        return int(self.requests.shape[0])

    @property
    def duration_s(self) -> float:
        return self.n_bins * self.bin_seconds

    @property
    def total_requests(self) -> float:
        return float(self.requests.sum())

    @property
    def mean_input_tokens(self) -> float:
        return float(self.input_tokens.sum() / max(self.requests.sum(), 1.0))

    @property
    def mean_output_tokens(self) -> float:
        return float(self.output_tokens.sum() / max(self.requests.sum(), 1.0))

    def mean_rate(self) -> float:
        return self.total_requests / max(self.duration_s, 1e-9)

    def bin_mean_lengths(self) -> tuple[FloatArray, FloatArray]:
        """Mean prompt and generated tokens per request of each bin (the trace's means in empty bins)."""
        safe = np.maximum(self.requests, 1.0)
        mean_in = np.where(self.requests > 0, self.input_tokens / safe, self.mean_input_tokens)
        mean_out = np.where(self.requests > 0, self.output_tokens / safe, self.mean_output_tokens)
        return mean_in, mean_out

    def head(self, seconds: float) -> Trace:
        """The first `seconds` of the trace (for quick runs and tests)."""
        n = max(1, min(self.n_bins, math.ceil(seconds / self.bin_seconds)))
        return Trace(
            name=self.name,
            bin_seconds=self.bin_seconds,
            start_s=self.start_s,
            requests=self.requests[:n].copy(),
            input_tokens=self.input_tokens[:n].copy(),
            output_tokens=self.output_tokens[:n].copy(),
            sample_input=self.sample_input,
            sample_output=self.sample_output,
        )


def load_trace(path: str | Path, *, time_scale: float = 1.0, seed: int = 0, bin_seconds: float = 1.0) -> Trace:
    """Read a trace file or ServeGen directory into bins of `bin_seconds`.

    `time_scale` multiplies every timestamp: 0.5 replays the trace in half the time (twice the rate), 2.0
    stretches it. `seed` fixes the random synthesis of ServeGen arrivals and of sampling, so a run repeats.
    """
    source = Path(path)
    if time_scale <= 0 or bin_seconds <= 0:
        raise ValueError("time_scale and bin_seconds must be positive")
    if not source.exists():
        raise TraceError(source, "no such file or directory")
    if source.is_dir():
        return _load_servegen_dir(source, time_scale, seed, bin_seconds)
    kind = _detect_format(source)
    if kind == "servegen":
        return _load_servegen_files(source, [source], time_scale, seed, bin_seconds)
    timestamps, inputs, outputs = _read_requests(source, kind, time_scale)
    return _bin_requests(source.stem, timestamps, inputs, outputs, bin_seconds, seed)


# --- format detection ------------------------------------------------------------------------------------


def _detect_format(path: Path) -> str:
    first = _first_nonblank_line(path)
    if first is None:
        raise TraceError(path, "empty trace", line=1)
    text = first.strip()
    if text.startswith("{"):
        return "mooncake"
    fields = tuple(field.strip() for field in text.split(","))
    if fields == AZURE_HEADER:
        return "azure"
    if fields == PLAIN_HEADER:
        return "plain"
    if len(fields) == 6 and _is_number(fields[0]):
        return "servegen"
    raise TraceError(
        path,
        "unknown trace format: expected an Azure CSV header "
        f"{','.join(AZURE_HEADER)!r}, a plain CSV header {','.join(PLAIN_HEADER)!r}, Mooncake JSON lines "
        "or ServeGen window rows (timestamp,rate,cv,pattern,shape,scale)",
        line=1,
    )


def _first_nonblank_line(path: Path) -> str | None:
    for line in _text_lines(path):
        if line.strip():
            return line
    return None


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines as read by every format: UTF-8, a leading byte-order mark dropped."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        try:
            yield from handle
        except UnicodeDecodeError:
            raise _not_utf8(path) from None


def _not_utf8(path: Path) -> TraceError:
    """The error for a file that is not UTF-8, naming the first line holding a byte that does not decode."""
    # The decoder reads ahead, so its error does not say which line failed. Read again with each bad byte kept as a
    # lone surrogate (valid UTF-8 never decodes to one), which strict encoding then refuses.
    with path.open(encoding="utf-8-sig", errors="surrogateescape", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.encode("utf-8")
            except UnicodeEncodeError as error:
                byte = ord(line[error.start]) - 0xDC00
                return TraceError(path, f"byte 0x{byte:02x} is not UTF-8: save the trace as UTF-8 text", number)
    return TraceError(path, "not UTF-8: save the trace as UTF-8 text")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- request-level formats -------------------------------------------------------------------------------


def _read_requests(path: Path, kind: str, time_scale: float) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Timestamps (scaled seconds from the first request), input and output lengths of every request."""
    rows = _mooncake_rows(path) if kind == "mooncake" else _csv_rows(path, kind)
    extent = _Extent()
    timestamps: list[float] = []
    inputs: list[float] = []
    outputs: list[float] = []
    for line, timestamp, prompt, generated in rows:
        extent.add(timestamp, path, line)
        timestamps.append(timestamp)
        inputs.append(prompt)
        outputs.append(generated)
    if not timestamps:
        raise TraceError(path, "the trace holds no requests")
    extent.check(time_scale)
    times = np.asarray(timestamps, dtype=np.float64)
    # Traces are nominally sorted; sorting keeps binning correct if a few lines are out of order.
    order = np.argsort(times, kind="stable")
    times = (times[order] - times.min()) * time_scale
    return times, np.asarray(inputs, np.float64)[order], np.asarray(outputs, np.float64)[order]


class _Extent:
    """The earliest and latest timestamps read so far and where they were read, to bound the trace's span."""

    def __init__(self) -> None:
        self.earliest = (math.inf, Path(), 0)
        self.latest = (-math.inf, Path(), 0)

    def add(self, seconds: float, path: Path, line: int) -> None:
        if seconds < self.earliest[0]:
            self.earliest = (seconds, path, line)
        if seconds > self.latest[0]:
            self.latest = (seconds, path, line)

    def check(self, time_scale: float) -> None:
        span = (self.latest[0] - self.earliest[0]) * time_scale
        if span > MAX_SPAN_S:
            _, path, line = self.latest
            _, first_path, first_line = self.earliest
            raise TraceError(
                path,
                f"this timestamp is {span / DAY_S:,.0f} days after the earliest ({first_path}:{first_line}), "
                f"time scale included; a trace may span at most {MAX_SPAN_S / DAY_S:.0f} days: "
                "check the timestamps and their unit",
                line,
            )


def _csv_lines(path: Path) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of a CSV file and their line numbers."""
    reader = csv.reader(_text_lines(path))
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                yield reader.line_num, row
    except csv.Error as error:
        raise TraceError(path, f"malformed CSV: {error}", reader.line_num) from None


def _csv_rows(path: Path, kind: str) -> Iterator[tuple[int, float, float, float]]:
    rows = _csv_lines(path)
    next(rows)  # the header, already checked by _detect_format
    for line, row in rows:
        if len(row) != 3:
            raise TraceError(path, f"expected 3 fields, found {len(row)}", line)
        if kind == "azure":
            stamp = _azure_timestamp(path, row[0], line)  # wall clock: any date, the span check catches nonsense
        else:
            stamp = _non_negative(path, row[0], line, "timestamp")
        prompt, generated = (_non_negative(path, row[i], line, "token count") for i in (1, 2))
        yield line, stamp, prompt, generated


def _mooncake_rows(path: Path) -> Iterator[tuple[int, float, float, float]]:
    for number, line in enumerate(_text_lines(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise TraceError(path, f"invalid JSON: {error.msg}", number) from None
        except ValueError:  # Python refuses integers of more than 4300 digits
            raise TraceError(path, "invalid JSON: a number too long to read", number) from None
        if not isinstance(record, dict):
            raise TraceError(path, "expected a JSON object", number)
        yield (
            number,
            _json_non_negative(path, record, "timestamp", number) / 1000.0,  # Mooncake timestamps are ms
            _json_non_negative(path, record, "input_length", number),
            _json_non_negative(path, record, "output_length", number),
        )


def _azure_timestamp(path: Path, text: str, line: int) -> float:
    # Azure writes 7 fractional digits; Python's parser takes at most 6.
    stamp = text.strip()
    if "." in stamp:
        head, fraction = stamp.split(".", 1)
        stamp = f"{head}.{fraction[:6]}"
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        raise TraceError(path, f"bad TIMESTAMP {text!r}", line) from None


def _number(path: Path, text: str, line: int) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(path, f"not a number: {text!r}", line) from None
    if not math.isfinite(value):
        raise TraceError(path, f"not a finite number: {text!r}", line)
    return value


def _non_negative(path: Path, text: str, line: int, what: str) -> float:
    value = _number(path, text, line)
    if value < 0:
        raise TraceError(path, f"{what} must not be negative: {text!r}", line)
    return value


def _json_number(path: Path, record: dict[str, Any], key: str, line: int) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TraceError(path, f"field {key!r} missing or not a number", line)
    try:
        number = float(value)
    except OverflowError:  # an integer beyond float range
        number = math.inf
    if not math.isfinite(number):  # Python's JSON reads NaN, Infinity and 1e400
        raise TraceError(path, f"field {key!r} must be a finite number", line)
    return number


def _json_non_negative(path: Path, record: dict[str, Any], key: str, line: int) -> float:
    value = _json_number(path, record, key, line)
    if value < 0:
        raise TraceError(path, f"field {key!r} must not be negative", line)
    return value


def _bin_requests(
    name: str, times: FloatArray, inputs: FloatArray, outputs: FloatArray, bin_seconds: float, seed: int
) -> Trace:
    n_bins = int(times[-1] // bin_seconds) + 1
    index = (times // bin_seconds).astype(np.int64)
    sample = _sample_indices(len(times), seed)
    return Trace(
        name=name,
        bin_seconds=bin_seconds,
        start_s=0.0,
        requests=np.bincount(index, minlength=n_bins).astype(np.float64),
        input_tokens=np.bincount(index, weights=inputs, minlength=n_bins).astype(np.float64),
        output_tokens=np.bincount(index, weights=outputs, minlength=n_bins).astype(np.float64),
        sample_input=inputs[sample],
        sample_output=outputs[sample],
    )


def _sample_indices(n: int, seed: int) -> npt.NDArray[np.int64]:
    if n <= LENGTH_SAMPLE_SIZE:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=LENGTH_SAMPLE_SIZE, replace=False)).astype(np.int64)


# --- ServeGen ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Windows:
    """ServeGen rows of all clients: window start, rate (req/s), arrival pattern and its shape parameter."""

    start_s: FloatArray
    rate: FloatArray
    weibull: npt.NDArray[np.bool_]  # True: Weibull inter-arrivals, False: Gamma
    shape: FloatArray


def _load_servegen_dir(directory: Path, time_scale: float, seed: int, bin_seconds: float) -> Trace:
    files = sorted(directory.glob("chunk-*-trace.csv"))
    if not files:
        files = sorted(directory.rglob("chunk-*-trace.csv"))
    if not files:
        raise TraceError(directory, "no ServeGen chunk-<client>-trace.csv files in this directory")
    return _load_servegen_files(directory, files, time_scale, seed, bin_seconds)


def _load_servegen_files(
    source: Path, files: Iterable[Path], time_scale: float, seed: int, bin_seconds: float
) -> Trace:
    """The trace of ServeGen `files`, read from `source` (their directory, or the one file)."""
    extent = _Extent()
    windows = _concat_windows([_read_servegen_file(path, extent) for path in files])
    extent.check(time_scale)
    window = _window_length(source, windows.start_s)
    counts = _synthesise_servegen_bins(windows, window, time_scale, bin_seconds, np.random.default_rng(seed))
    inputs, outputs = _servegen_token_sums(counts, np.random.default_rng(seed + 1))
    sample_input, sample_output = _servegen_length_sample(np.random.default_rng(seed + 2))
    return Trace(
        name=source.name if source.is_dir() else source.stem,
        bin_seconds=bin_seconds,
        start_s=0.0,
        requests=counts,
        input_tokens=inputs,
        output_tokens=outputs,
        sample_input=sample_input,
        sample_output=sample_output,
    )


def _read_servegen_file(path: Path, extent: _Extent) -> _Windows:
    starts: list[float] = []
    rates: list[float] = []
    weibull: list[bool] = []
    shapes: list[float] = []
    for line, row in _csv_lines(path):
        if len(row) != 6:
            raise TraceError(path, f"expected 6 fields (timestamp,rate,cv,pattern,shape,scale), found {len(row)}", line)
        pattern = row[3].strip()
        if pattern not in SERVEGEN_PATTERNS:
            raise TraceError(path, f"unknown arrival pattern {pattern!r} (Gamma, Weibull or empty)", line)
        start = _non_negative(path, row[0], line, "timestamp")
        rate = _non_negative(path, row[1], line, "rate")
        shape = _number(path, row[4], line)
        if pattern and rate > 0 and shape <= 0:
            raise TraceError(path, f"{pattern} shape must be positive", line)
        extent.add(start, path, line)
        starts.append(start)
        rates.append(rate if pattern else 0.0)  # an empty pattern marks an idle window
        weibull.append(pattern == "Weibull")
        shapes.append(shape)
    if not starts:
        raise TraceError(path, "the file holds no windows")
    return _Windows(np.asarray(starts), np.asarray(rates), np.asarray(weibull), np.asarray(shapes))


def _concat_windows(parts: list[_Windows]) -> _Windows:
    return _Windows(
        start_s=np.concatenate([part.start_s for part in parts]),
        rate=np.concatenate([part.rate for part in parts]),
        weibull=np.concatenate([part.weibull for part in parts]),
        shape=np.concatenate([part.shape for part in parts]),
    )


def _window_length(source: Path, starts: FloatArray) -> float:
    distinct = np.unique(starts)
    if len(distinct) < 2:
        return 600.0  # ServeGen's documented window when a file holds a single row
    gaps = np.diff(distinct)
    shortest = int(np.argmin(gaps))
    if gaps[shortest] < MIN_SERVEGEN_WINDOW_S:
        raise TraceError(
            source,
            f"windows start at {distinct[shortest]:g} s and {distinct[shortest + 1]:g} s: ServeGen rows must be "
            f"at least {MIN_SERVEGEN_WINDOW_S:g} s apart (600 s windows in the public traces)",
        )
    return float(gaps[shortest])


def _synthesise_servegen_bins(
    windows: _Windows, window: float, time_scale: float, bin_seconds: float, rng: np.random.Generator
) -> FloatArray:
    """Arrivals per bin: each client's window replayed as a renewal process, one window at a time.

    Inter-arrival times are drawn from the row's distribution (Gamma or Weibull with the row's shape), scaled so
    their mean is 1/rate. The row's fitted `scale` is not used: in many rows it disagrees with `rate`, and the
    rate is what the trace's totals are built from. Only one window's arrival times exist at a time (about
    120k on average), so the 14-day trace never holds its ~240M requests in memory.
    """
    origin = float(windows.start_s.min())
    slot = np.rint((windows.start_s - origin) / window).astype(np.int64)
    n_windows = int(slot.max()) + 1
    n_bins = math.ceil(n_windows * window * time_scale / bin_seconds)
    counts = np.zeros(n_bins, dtype=np.float64)
    active = windows.rate > 0
    order = np.argsort(slot, kind="stable")
    bounds = np.searchsorted(slot[order], np.arange(n_windows + 1))
    for w in range(n_windows):
        rows = order[bounds[w] : bounds[w + 1]]
        rows = rows[active[rows]]
        if rows.size == 0:
            continue
        times = _renewal_arrivals(windows.rate[rows], windows.weibull[rows], windows.shape[rows], window, rng)
        index = ((w * window + times) * time_scale / bin_seconds).astype(np.int64)
        if index.size:
            _add_counts(counts, np.minimum(index, n_bins - 1))
    return counts


def _add_counts(counts: FloatArray, index: npt.NDArray[np.int64]) -> None:
    low = int(index.min())
    counts[low : int(index.max()) + 1] += np.bincount(index - low)


def _renewal_arrivals(
    rate: FloatArray, weibull: npt.NDArray[np.bool_], shape: FloatArray, window: float, rng: np.random.Generator
) -> FloatArray:
    """Arrival times in [0, window) of independent renewal processes, one per client, drawn in rounds."""
    clock = np.zeros(rate.shape)
    pending = np.arange(rate.shape[0])
    found: list[FloatArray] = []
    first_round = True
    while pending.size:
        expected = (window - clock[pending]) * rate[pending]
        draws = np.ceil(expected * 1.25 + 16).astype(np.int64)
        owner = np.repeat(np.arange(pending.size), draws)
        gaps = _draw_gaps(rate[pending], weibull[pending], shape[pending], owner, rng)
        first = np.cumsum(draws) - draws
        if first_round:
            # A process already running when the window opens: the first arrival comes after a fraction of a gap.
            gaps[first] *= rng.random(first.shape)
        since_start = np.cumsum(gaps)
        since_start -= np.repeat(since_start[first] - gaps[first], draws)
        times = clock[pending][owner] + since_start
        found.append(times[times < window])
        reached = times[first + draws - 1]
        short = reached < window
        clock[pending[short]] = reached[short]
        pending = pending[short]
        first_round = False
    return np.concatenate(found)


def _draw_gaps(
    rate: FloatArray,
    weibull: npt.NDArray[np.bool_],
    shape: FloatArray,
    owner: npt.NDArray[np.int64],
    rng: np.random.Generator,
) -> FloatArray:
    """Inter-arrival times with mean 1/rate for each draw's owner."""
    shape = np.maximum(shape, MIN_SHAPE)
    gaps = np.empty(owner.shape)
    is_weibull = weibull[owner]
    k = shape[owner]
    # Weibull(k) has mean Gamma(1 + 1/k); Gamma(k, theta) has mean k*theta.
    weibull_mean = np.array([math.gamma(1.0 + 1.0 / value) for value in shape])
    wk = k[is_weibull]
    gaps[is_weibull] = rng.weibull(wk) / (weibull_mean[owner[is_weibull]] * rate[owner[is_weibull]])
    gk = k[~is_weibull]
    gaps[~is_weibull] = rng.gamma(gk, 1.0 / (gk * rate[owner[~is_weibull]]))
    return gaps


def _servegen_token_sums(counts: FloatArray, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Summed tokens per bin: by the central limit theorem a sum of n log-normal lengths is close to normal."""
    return (
        _lognormal_sums(counts, SERVEGEN_INPUT_MEDIAN, SERVEGEN_INPUT_LOG_SIGMA, rng),
        _lognormal_sums(counts, SERVEGEN_OUTPUT_MEDIAN, SERVEGEN_OUTPUT_LOG_SIGMA, rng),
    )


def _lognormal_sums(counts: FloatArray, median: float, sigma: float, rng: np.random.Generator) -> FloatArray:
    mean = median * math.exp(sigma**2 / 2)
    std = mean * math.sqrt(math.exp(sigma**2) - 1)
    sums = counts * mean + np.sqrt(counts) * std * rng.standard_normal(counts.shape)
    return np.maximum(sums, counts)  # every request has at least one token


def _servegen_length_sample(rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    inputs = np.rint(rng.lognormal(math.log(SERVEGEN_INPUT_MEDIAN), SERVEGEN_INPUT_LOG_SIGMA, LENGTH_SAMPLE_SIZE))
    outputs = np.rint(rng.lognormal(math.log(SERVEGEN_OUTPUT_MEDIAN), SERVEGEN_OUTPUT_LOG_SIGMA, LENGTH_SAMPLE_SIZE))
    return np.maximum(inputs, 1.0), np.maximum(outputs, 1.0)
