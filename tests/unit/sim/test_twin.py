"""The twin's exposition: what Prometheus parses from it, per pod."""

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from inferbudget.sim.fleet import length_sample, load_profile
from inferbudget.sim.twin import E2E_BOUNDS, FleetCollector, PodSeries, Twin, Workload

from .conftest import stepped_trace


def parsed(collector: FleetCollector) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    families = text_string_to_metric_families(collector.render().decode())
    return {family.name: [(s.name, s.labels, s.value) for s in family.samples] for family in families}


def test_each_pod_exports_cumulative_histograms_gauges_counters_and_gpu_memory() -> None:
    collector = FleetCollector()
    series = PodSeries(model="llama-bf16", running=3.0, waiting=1.5, kv_usage=0.25, memory_mib=18432.0)
    series.observe("vllm:e2e_request_latency_seconds", np.array([0.4, 0.9, 100.0]), np.array([2.0, 1.0, 0.5]))
    series.observe("vllm:request_prompt_tokens", np.array([300.0, 3000.0]), np.array([2.0, 0.5]))
    series.prompt_tokens, series.generation_tokens = 1000.0, 100.0
    collector.pods[("serving", "llama-0")] = series
    collector.pods[("other", "x-0")] = PodSeries(model='odd "model"\\name')

    families = parsed(collector)

    pod = {"namespace": "serving", "pod": "llama-0", "model_name": "llama-bf16"}
    e2e = [(name, labels, value) for name, labels, value in families["vllm:e2e_request_latency_seconds"]
           if labels.get("pod") == "llama-0"]
    buckets = {labels["le"]: value for name, labels, value in e2e if name.endswith("_bucket")}
    assert len(buckets) == len(E2E_BOUNDS) + 1
    assert (buckets["0.3"], buckets["0.5"], buckets["1.0"], buckets["60.0"], buckets["120.0"]) == (0, 2, 3, 3, 3.5)
    assert buckets["+Inf"] == 3.5
    assert ("vllm:e2e_request_latency_seconds_count", pod, 3.5) in e2e
    assert ("vllm:e2e_request_latency_seconds_sum", pod, 0.8 + 0.9 + 50.0) in e2e
    assert ("vllm:num_requests_running", pod, 3.0) in families["vllm:num_requests_running"]
    assert ("vllm:num_requests_waiting", pod, 1.5) in families["vllm:num_requests_waiting"]
    assert ("vllm:kv_cache_usage_perc", pod, 0.25) in families["vllm:kv_cache_usage_perc"]
    prompts = {(name, labels.get("le")): value for name, labels, value in families["vllm:request_prompt_tokens"]
               if labels["pod"] == "llama-0"}
    assert (prompts[("vllm:request_prompt_tokens_bucket", "200.0")], prompts[("vllm:request_prompt_tokens_bucket",
            "500.0")], prompts[("vllm:request_prompt_tokens_bucket", "5000.0")]) == (0, 2, 2.5)
    assert prompts[("vllm:request_prompt_tokens_sum", None)] == 2 * 300.0 + 0.5 * 3000.0
    assert prompts[("vllm:request_prompt_tokens_count", None)] == 2.5
    assert {labels["pod"] for _, labels, _ in families["vllm:request_generation_tokens"]} == {"llama-0", "x-0"}
    assert ("vllm:prompt_tokens_total", pod, 1000.0) in families["vllm:prompt_tokens"]
    assert ("vllm:generation_tokens_total", pod, 100.0) in families["vllm:generation_tokens"]
    assert ("DCGM_FI_DEV_FB_USED", {"namespace": "serving", "pod": "llama-0", "gpu": "0"}, 18432.0) in \
        families["DCGM_FI_DEV_FB_USED"]
    # label values are escaped: a quote or backslash in a name stays inside its label
    odd = {labels["model_name"] for _, labels, _ in families["vllm:num_requests_running"] if labels["pod"] == "x-0"}
    assert odd == {'odd "model"\\name'}
    for name in ("vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds",
                 "vllm:request_queue_time_seconds"):
        assert {labels["pod"] for _, labels, _ in families[name]} == {"llama-0", "x-0"}


def test_a_fleet_without_pods_exports_no_samples() -> None:
    assert all(samples == [] for samples in parsed(FleetCollector()).values())


def test_the_length_histograms_sum_the_tokens_served_at_this_moments_request_sizes() -> None:
    # The sample of the trace has requests of 1000 tokens in and 100 out; this moment's requests are three times
    # longer in and half as long out: the histograms follow the moment, and count what the e2e histogram counts.
    trace = stepped_trace([(60, 2.0)], mean_in=1000.0, mean_out=100.0)
    twin = Twin(None, load_profile(), trace, length_sample(trace), {}, "h100-80gb")  # type: ignore[arg-type]
    served_in, served_out = 3000.0, 50.0
    twin._serve(Workload("serving", "llama", {"fp8": ["llama-0"]}, None), "fp8", ["llama-0"], 4.0, served_in,
                served_out, 2.0)
    series = twin.collector.pods[("serving", "llama-0")]
    served = series.buckets["vllm:e2e_request_latency_seconds"].sum()
    assert served > 0
    assert series.buckets["vllm:request_prompt_tokens"].sum() == pytest.approx(served)
    assert series.sums["vllm:request_prompt_tokens"] == pytest.approx(served * served_in)
    assert series.sums["vllm:request_generation_tokens"] == pytest.approx(served * served_out)
    assert series.prompt_tokens == pytest.approx(served * served_in)  # the counter agrees
