"""Serving-fleet model: what a fleet of replicas of one model variant does with a given load.

One replica is a vLLM server with continuous batching and chunked prefill. Its step (iteration) time follows
the usual linear model of a batched decoder:

    t_step = a + b * c(ctx) + p * d(I)

- `a`: reading the weights once per step (memory-bound: weight bytes / achieved HBM bandwidth) plus a fixed
  CPU/launch overhead;
- `c(ctx)`: per running sequence: its GEMM compute and reading its KV cache (ctx tokens);
- `d(I)`: per prefill token: GEMM plus attention compute.

At arrival rate lambda per replica with mean input I and output O tokens, Little's law gives b = lambda*O*t and
p = lambda*I*t prefill tokens per step, so t_step = a / (1 - rho) with rho = lambda*(O*c + I*d): latency rises
smoothly with load and diverges at saturation. A replica also runs at most `max_num_seqs` sequences and as many
as its KV cache holds; beyond the resulting capacity, requests wait in a queue that is carried from bin to bin,
so under-provisioning shows up as a backlog and growing latency.

Per request, with the bin's step time t and waiting time W:
    TTFT = W + t * (0.5 + ceil(I / chunk)) + d(I) * I       (join the next step, then one step per prefill chunk)
    ITL  = t
    E2E  = TTFT + (O - 1) * t
Percentiles come from a weighted sample of request lengths (`LengthSample`) scaled to each bin's mean lengths.
Everything is vectorised over bins (and over leading axes, which the oracle uses for whole-trace searches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from inferbudget.sim.traces import FloatArray, Trace

GIB = float(2**30)
DEFAULT_PROFILE = "llama-3.1-8b.yaml"
SIGNALS = ("e2e", "ttft", "itl", "queue")
# Seconds of waiting reported for requests that no replica can serve (none ready): far beyond any budget.
UNSERVED_WAIT_S = 3600.0


class ProfileError(ValueError):
    """A profile file that does not describe a usable fleet."""


@dataclass(frozen=True, slots=True)
class VariantModel:
    """Per-replica performance of one variant (a precision on a GPU type), derived from the profile."""

    name: str
    precision: str
    gpu: str
    quality: float
    price_per_hour: float
    weight_bytes: float  # resident weights
    memory_gib: float  # declared footprint: weights + runtime overhead + KV cache
    startup_s: float  # pod created -> Ready
    base_step_s: float  # a: weight read + fixed overhead
    decode_compute_s: float  # GEMM time per running sequence per step
    kv_read_s_per_token: float  # KV read time per context token per step
    prefill_s_per_token: float  # GEMM time per prefill token
    attention_s_per_token_sq: float  # prefill attention time per token per prompt token (quadratic term)
    kv_bytes_per_token: float
    kv_capacity_tokens: float
    max_num_seqs: float
    chunk_tokens: float
    resident_gib: float  # weights + runtime overhead, without the KV cache

    def step_cost(self, mean_in: FloatArray, mean_out: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Per-sequence decode cost c and per-prefill-token cost d for the given mean lengths."""
        context = mean_in + 0.5 * mean_out
        per_sequence = self.decode_compute_s + context * self.kv_read_s_per_token
        per_prefill_token = self.prefill_s_per_token + self.attention_s_per_token_sq * mean_in
        return per_sequence, per_prefill_token

    def batch_limit(self, mean_in: FloatArray, mean_out: FloatArray) -> FloatArray:
        """Most sequences one replica runs at once: max_num_seqs or what its KV cache holds."""
        context = np.maximum(mean_in + 0.5 * mean_out, 1.0)
        return np.minimum(self.max_num_seqs, self.kv_capacity_tokens / context)

    def capacity_rps(self, mean_in: FloatArray | float, mean_out: FloatArray | float) -> FloatArray:
        """Requests per second one replica sustains at saturation for the given mean lengths."""
        mean_in_arr = np.asarray(mean_in, dtype=np.float64)
        mean_out_arr = np.maximum(np.asarray(mean_out, dtype=np.float64), 1.0)
        per_sequence, per_prefill_token = self.step_cost(mean_in_arr, mean_out_arr)
        limit = self.batch_limit(mean_in_arr, mean_out_arr)
        work = mean_out_arr * per_sequence + mean_in_arr * per_prefill_token
        result: FloatArray = limit / (mean_out_arr * self.base_step_s + limit * work)
        return result


@dataclass(frozen=True, slots=True)
class FleetProfile:
    """The variants a fleet can run, keyed by name, in the profile's order."""

    name: str
    variants: dict[str, VariantModel]
    source: str

    def variant(self, name: str) -> VariantModel:
        try:
            return self.variants[name]
        except KeyError:
            known = ", ".join(self.variants)
            raise ProfileError(f"unknown variant {name!r}; the profile has: {known}") from None


@dataclass(frozen=True, slots=True)
class LengthSample:
    """Representative requests: lengths, probability weights and arrival positions within a bin."""

    inputs: FloatArray
    outputs: FloatArray
    weights: FloatArray  # sums to 1
    positions: FloatArray  # in [0, 1): where in the bin the request arrives (for queueing delay)

    @property
    def mean_input(self) -> float:
        return float(np.dot(self.weights, self.inputs))

    @property
    def mean_output(self) -> float:
        return float(np.dot(self.weights, self.outputs))


@dataclass(frozen=True, slots=True)
class GroupLoad:
    """What one group of same-variant replicas is asked to do over a run of bins (arrays share a shape)."""

    ready: FloatArray  # Ready replicas serving in each bin
    arrivals: FloatArray  # requests routed to this group in each bin
    mean_in: FloatArray  # mean prompt tokens of those requests
    mean_out: FloatArray  # mean generated tokens
    backlog: FloatArray | float  # requests waiting at the start of the run (per leading index)
    bin_seconds: float


@dataclass(frozen=True, slots=True)
class GroupOutcome:
    """Per-bin results for one group. Latency arrays have one more axis: the LengthSample requests."""

    served: FloatArray
    backlog: FloatArray  # waiting at the end of each bin
    step_s: FloatArray  # = inter-token latency
    batch: FloatArray  # running sequences per replica
    running: FloatArray  # in-flight requests in the whole group (prefill + decode)
    memory_gib: FloatArray  # GPU memory in use per replica (weights + overhead + KV in use)
    kv_usage: FloatArray  # fraction of the KV cache in use
    wait_s: FloatArray  # (..., bins, K) queueing delay
    ttft_s: FloatArray  # (..., bins, K)
    e2e_s: FloatArray  # (..., bins, K)

    def latency(self, signal: str) -> FloatArray:
        """Per-request latency in seconds of one budget signal, shape (..., bins, K)."""
        if signal == "e2e":
            return self.e2e_s
        if signal == "ttft":
            return self.ttft_s
        if signal == "queue":
            return self.wait_s
        if signal == "itl":
            return np.broadcast_to(self.step_s[..., None], self.e2e_s.shape)
        raise ValueError(f"unknown latency signal {signal!r}; expected one of {', '.join(SIGNALS)}")


# --- the model --------------------------------------------------------------------------------------------


def evaluate_group(model: VariantModel, load: GroupLoad, sample: LengthSample) -> GroupOutcome:
    """Queueing and batching of one group over consecutive bins (the last axis); see the module docstring."""
    ready = np.maximum(load.ready, 0.0)
    mean_out = np.maximum(load.mean_out, 1.0)
    mean_in = np.maximum(load.mean_in, 0.0)
    per_sequence, per_prefill_token = model.step_cost(mean_in, mean_out)
    work = mean_out * per_sequence + mean_in * per_prefill_token  # step-seconds one request costs per step
    capacity_per_replica = model.capacity_rps(mean_in, mean_out)
    capacity = capacity_per_replica * ready * load.bin_seconds
    backlog, served = _queue(load.arrivals, capacity, load.backlog)
    replicas = np.maximum(ready, 1e-9)
    rate = np.where(ready > 0, served / (load.bin_seconds * replicas), 0.0)
    utilisation = np.minimum(rate * work, 0.999)
    step = model.base_step_s / (1.0 - utilisation)
    batch = np.minimum(rate * mean_out * step, model.batch_limit(mean_in, mean_out))
    previous = np.concatenate(
        [np.broadcast_to(np.asarray(load.backlog)[..., None], backlog[..., :1].shape), backlog[..., :-1]], axis=-1
    )
    wait = _waiting(previous, backlog, capacity_per_replica * ready, sample)
    ttft, e2e = _request_latency(model, step, wait, sample)
    kv_tokens = batch * (mean_in + 0.5 * mean_out)
    return GroupOutcome(
        served=served,
        backlog=backlog,
        step_s=step,
        batch=batch,
        running=rate * ready * (np.einsum("...k,k->...", ttft - wait, sample.weights) + mean_out * step),
        memory_gib=model.resident_gib + kv_tokens * model.kv_bytes_per_token / GIB,
        kv_usage=np.minimum(kv_tokens / model.kv_capacity_tokens, 1.0),
        wait_s=wait,
        ttft_s=ttft,
        e2e_s=e2e,
    )


def _queue(arrivals: FloatArray, capacity: FloatArray, initial: FloatArray | float) -> tuple[FloatArray, FloatArray]:
    """Lindley's recursion q_t = max(0, q_{t-1} + A_t - C_t), vectorised with running minima."""
    start = np.asarray(initial, dtype=np.float64)[..., None]
    net = np.cumsum(arrivals - capacity, axis=-1)
    floor = np.minimum(np.minimum.accumulate(net, axis=-1), 0.0)
    backlog = np.maximum(net - np.minimum(floor, -start), 0.0)
    previous = np.concatenate([np.broadcast_to(start, backlog[..., :1].shape), backlog[..., :-1]], axis=-1)
    served = np.maximum(previous + arrivals - backlog, 0.0)
    return backlog, served


def _waiting(previous: FloatArray, backlog: FloatArray, drain_rps: FloatArray, sample: LengthSample) -> FloatArray:
    """FIFO waiting time of a request arriving at each sample position within the bin."""
    queued = previous[..., None] * (1.0 - sample.positions) + backlog[..., None] * sample.positions
    rate = drain_rps[..., None]
    return np.where(rate > 0, queued / np.maximum(rate, 1e-12), np.where(queued > 0, UNSERVED_WAIT_S, 0.0))


def _request_latency(
    model: VariantModel, step: FloatArray, wait: FloatArray, sample: LengthSample
) -> tuple[FloatArray, FloatArray]:
    """TTFT and end-to-end latency of each sample request under the bin's load.

    The bin's mean lengths set the load (step time, capacity); the requests themselves are drawn from the
    trace-wide length distribution, unscaled: scaling them to each bin's mean would count the spread of
    lengths twice in sparse bins (where the mean of a few requests already varies as much as one request).
    """
    inputs = np.broadcast_to(sample.inputs, step.shape + sample.inputs.shape)
    outputs = np.maximum(sample.outputs, 1.0)
    step_k = step[..., None]
    prefill = (model.prefill_s_per_token + model.attention_s_per_token_sq * inputs) * inputs
    chunks = np.ceil(np.maximum(inputs, 1.0) / model.chunk_tokens)
    ttft = wait + step_k * (0.5 + chunks) + prefill
    return ttft, ttft + (outputs - 1.0) * step_k


# --- length samples ---------------------------------------------------------------------------------------

# Strata of the length distribution, in probability: coarse in the body, fine in the tail where budgets bind.
_EDGES = np.unique(
    np.concatenate([np.linspace(0.0, 0.9, 19), np.linspace(0.9, 0.99, 10), np.linspace(0.99, 0.999, 6), [1.0]])
)


def length_sample(trace: Trace, signal: str = "e2e") -> LengthSample:
    """Stratified sample of the trace's requests, ordered by what drives the signal's latency.

    TTFT and queueing are driven by prompt length; end-to-end latency mostly by output length (ranked here by
    a light-load H100 estimate: 30 us per prompt token, 15 ms per output token).
    """
    inputs, outputs = trace.sample_input, trace.sample_output
    key = inputs if signal in ("ttft", "queue") else inputs * 3e-5 + outputs * 0.015
    order = np.argsort(key, kind="stable")
    n = len(order)
    mids = (_EDGES[:-1] + _EDGES[1:]) / 2
    picks = order[np.minimum((mids * n).astype(np.int64), n - 1)]
    weights = np.diff(_EDGES)
    # Arrival positions spread evenly but decorrelated from length, so long requests are not all late arrivals.
    positions = (np.random.default_rng(7).permutation(len(mids)) + 0.5) / len(mids)
    return LengthSample(inputs[picks].astype(np.float64), outputs[picks].astype(np.float64), weights, positions)


# --- profile loading --------------------------------------------------------------------------------------


def default_profile_path() -> Path:
    return Path(str(resources.files("inferbudget").joinpath("data", "profiles", DEFAULT_PROFILE)))


def load_profile(path: str | Path | None = None) -> FleetProfile:
    """Read a fleet profile YAML (default: the shipped Llama-3.1-8B profile) and derive each variant's model."""
    source = Path(path) if path is not None else default_profile_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise ProfileError(f"{source}: cannot read profile: {error}") from None
    if not isinstance(raw, dict):
        raise ProfileError(f"{source}: a profile is a YAML mapping")
    try:
        variants = {entry["name"]: _derive_variant(raw, entry) for entry in raw["variants"]}
    except (KeyError, TypeError, ValueError) as error:
        raise ProfileError(f"{source}: incomplete or invalid profile: {error!r}") from None
    return FleetProfile(name=str(raw["model"]["name"]), variants=variants, source=str(source))


def _derive_variant(raw: dict[str, Any], entry: dict[str, Any]) -> VariantModel:
    model, serving, startup = raw["model"], raw["serving"], raw["startup"]
    gpu = raw["gpus"][entry["gpu"]]
    precision = raw["precisions"][entry["precision"]]
    peak = _linear_peak(gpu, precision, entry["name"])
    embedding = float(model["embedding_parameters"])
    linear = float(model["parameters"]) - embedding  # every matrix a token passes through, lm_head included
    weight_bytes = _weight_bytes(float(model["parameters"]), embedding, precision)
    bandwidth = float(gpu["hbm_bytes_per_s"]) * float(gpu["decode_bandwidth_efficiency"])
    kv_bytes = 2.0 * model["layers"] * model["kv_heads"] * model["head_dim"] * model["kv_cache_bytes_per_element"]
    read_per_step = (weight_bytes - 2.0 * embedding) / float(precision["weight_kernel_efficiency"])
    attention_flops = 2.0 * model["layers"] * model["hidden_size"]  # x prompt length, per prompt token
    resident = weight_bytes / GIB + float(serving["runtime_overhead_gib"])
    return VariantModel(
        name=str(entry["name"]),
        precision=str(entry["precision"]),
        gpu=str(entry["gpu"]),
        quality=float(precision["quality"]),
        price_per_hour=float(gpu["price_per_hour"]),
        weight_bytes=weight_bytes,
        memory_gib=resident + float(serving["kv_cache_gib"]),
        startup_s=_startup_seconds(startup, weight_bytes),
        base_step_s=read_per_step / bandwidth + serving["iteration_overhead_ms"] / 1000.0,
        decode_compute_s=2.0 * linear / (peak * float(serving["mfu_decode"])),
        kv_read_s_per_token=kv_bytes / bandwidth,
        prefill_s_per_token=2.0 * linear / (peak * float(serving["mfu_prefill"])),
        attention_s_per_token_sq=attention_flops / (float(gpu["bf16_flops"]) * float(serving["mfu_prefill"])),
        kv_bytes_per_token=kv_bytes,
        kv_capacity_tokens=float(serving["kv_cache_gib"]) * GIB / kv_bytes,
        max_num_seqs=float(serving["max_num_seqs"]),
        chunk_tokens=float(serving["max_num_batched_tokens"]),
        resident_gib=resident,
    )


def _weight_bytes(parameters: float, embedding: float, precision: dict[str, Any]) -> float:
    """Embeddings and lm_head stay BF16; the transformer blocks' linear layers take the precision's width."""
    blocks = parameters - 2.0 * embedding
    bits = float(precision["weight_bits"])
    scales = blocks / float(precision["group_size"]) * 2.0 if "group_size" in precision else 0.0
    return 2.0 * 2.0 * embedding + blocks * bits / 8.0 + scales


def _linear_peak(gpu: dict[str, Any], precision: dict[str, Any], name: str) -> float:
    kind = precision["compute"]
    peak = {"bf16": gpu["bf16_flops"], "int8": gpu["int8_ops"], "fp8": gpu["fp8_flops"]}[kind]
    if peak is None:
        raise ValueError(f"variant {name}: this GPU has no {kind} tensor cores")
    return float(peak) * float(precision["compute_kernel_efficiency"])


def _startup_seconds(startup: dict[str, Any], weight_bytes: float) -> float:
    gigabytes = weight_bytes / 1e9
    return float(
        startup["image_pull_s"]
        + gigabytes / startup["weight_download_gb_per_s"]
        + gigabytes / startup["weight_load_gb_per_s"]
        + startup["engine_init_s"]
    )


def describe_profile(profile: FleetProfile, mean_in: float = 1020.0, mean_out: float = 129.0) -> str:
    """One line per variant with the derived figures, for people checking the profile against measurements."""
    lines = [f"{profile.name}: derived per-replica figures at mean input {mean_in:.0f} / output {mean_out:.0f}"]
    for model in profile.variants.values():
        capacity = float(model.capacity_rps(mean_in, mean_out))
        lines.append(
            f"  {model.name:<17} step@b=1 {model.base_step_s * 1e3:5.2f} ms  capacity {capacity:6.2f} req/s  "
            f"memory {model.memory_gib:5.1f} GiB  start-up {model.startup_s:5.0f} s  "
            f"${model.price_per_hour:.2f}/h  quality {model.quality:.3f}"
        )
    return "\n".join(lines)


def replicas_needed(model: VariantModel, rate_rps: float, mean_in: float, mean_out: float, headroom: float) -> int:
    """Replicas whose saturation capacity, derated by `headroom` (0..1), covers the rate."""
    capacity = float(model.capacity_rps(mean_in, mean_out)) * headroom
    return max(1, math.ceil(rate_rps / max(capacity, 1e-9)))
