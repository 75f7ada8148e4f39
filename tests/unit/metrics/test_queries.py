"""PromQL building: escaping, presets, and histogram quantiles over summed buckets."""

import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferbudget.metrics.client import Sample
from inferbudget.metrics.histogram import quantile
from inferbudget.metrics.observe import _tokens_per_request
from inferbudget.metrics.presets import PRESETS, UnsupportedSignal, memory_query
from inferbudget.metrics.promql import quote, regex_any_of


def unquote(literal: str) -> str:
    assert literal[0] == literal[-1] == '"'
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), literal[1:-1])


@given(st.text())
def test_quoted_strings_hold_exactly_the_value(value: str) -> None:
    literal = quote(value)
    assert unquote(literal) == value
    assert '"' not in literal[1:-1].replace('\\"', "")


@given(st.lists(st.text(min_size=1), min_size=1, max_size=5), st.text())
def test_pod_regex_matches_exactly_the_listed_names(names: list[str], other: str) -> None:
    pattern = re.compile(unquote(regex_any_of(names)), re.DOTALL)
    assert all(pattern.fullmatch(name) for name in names)
    assert bool(pattern.fullmatch(other)) == (other in names)


def test_injection_through_a_namespace_stays_inside_the_string() -> None:
    hostile = 'x"} or vector(1) or up{a="'
    query = PRESETS["vllm"].request_rate([hostile], "60s")
    literal = re.search(r'namespace=~("(?:[^"\\]|\\.)*")', query)
    assert literal is not None and query.endswith(literal.group(1) + "}[60s]))")
    assert re.fullmatch(unquote(literal.group(1)), hostile)


def test_vllm_preset_reads_its_histograms() -> None:
    vllm = PRESETS["vllm"]
    assert "vllm:time_to_first_token_seconds_bucket" in vllm.latency("ttft", ["s"], "60s").promql
    assert "vllm:inter_token_latency_seconds_bucket" in vllm.latency("itl", ["s"], "60s").promql
    assert "by (namespace, pod, le)" in vllm.latency("e2e", ["s"], "60s").promql


def test_each_preset_refuses_a_signal_it_cannot_measure_and_names_what_it_can() -> None:
    with pytest.raises(UnsupportedSignal, match="tgi exports no ttft latency; use one of e2e, itl, queue"):
        PRESETS["tgi"].latency("ttft", ["s"], "60s")
    with pytest.raises(UnsupportedSignal, match="use one of e2e, queue"):
        PRESETS["triton"].latency("itl", ["s"], "60s")


def test_triton_latency_is_a_mean_from_counters_in_microseconds() -> None:
    query = PRESETS["triton"].latency("e2e", ["s"], "60s")
    assert query.kind == "value" and query.unit_seconds == 1e-6
    assert "nv_inference_request_duration_us" in query.promql and "nv_inference_request_success" in query.promql


def test_memory_queries_for_gpu_and_container() -> None:
    gpu = memory_query("gpu", ["s"], None)
    assert "DCGM_FI_DEV_FB_USED" in gpu and "* 1048576" in gpu
    assert 'container=~"server"' in memory_query("container", ["s"], "server")
    assert 'container!="POD"' in memory_query("container", ["s"], None)


def test_quantile_interpolates_like_prometheus() -> None:
    buckets = [(0.1, 10.0), (0.5, 60.0), (1.0, 90.0), (math.inf, 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * (50 - 10) / 50)
    assert quantile(0.95, buckets) == 1.0  # in the +Inf bucket: the last finite bound
    assert quantile(0.05, buckets) == pytest.approx(0.05)


def test_quantile_of_buckets_summed_across_pods() -> None:
    pod_a = [(0.5, 10.0), (1.0, 10.0), (math.inf, 10.0)]
    pod_b = [(0.5, 0.0), (1.0, 10.0), (math.inf, 10.0)]
    assert quantile(0.75, pod_a + pod_b) == pytest.approx(0.5 + 0.5 * (15 - 10) / 10)


def test_no_observations_means_unknown_not_zero() -> None:
    assert quantile(0.95, [(0.5, 0.0), (math.inf, 0.0)]) is None
    assert quantile(0.95, []) is None
    assert quantile(0.95, [(0.5, 3.0)]) is None  # no +Inf bucket: not a complete histogram


def test_token_rates_add_prompt_and_generated_tokens_per_pod_where_the_server_counts_them() -> None:
    vllm = PRESETS["vllm"].token_rate(["s"], "60s")
    # vLLM: the sums of the length histograms recorded as requests finish, as the request rate counts them
    assert vllm is not None and "vllm:request_prompt_tokens_sum" in vllm
    assert "vllm:request_generation_tokens_sum" in vllm and "_tokens_total" not in vllm
    assert vllm.count("by (namespace, pod)") == 2 and " + " in vllm
    tgi = PRESETS["tgi"].token_rate(["s"], "60s")
    assert tgi is not None and "tgi_request_input_length_sum" in tgi and "tgi_request_generated_tokens_sum" in tgi
    assert PRESETS["triton"].token_rate(["s"], "60s") is None  # no token counters: requests count one each


def _per_pod(**values: float) -> list[Sample]:
    return [Sample((("namespace", "s"), ("pod", pod)), value, 0.0) for pod, value in values.items()]


def test_the_size_of_the_requests_is_tokens_over_the_requests_of_the_pods_that_count_tokens() -> None:
    requests = _per_pod(a=2.0, b=2.0, c=6.0)  # c counts no tokens: its requests would make the size look smaller
    assert _tokens_per_request(_per_pod(a=2000.0, b=2800.0), requests) == 1200.0
    assert _tokens_per_request([], requests) is None  # no token rate at all
    assert _tokens_per_request(_per_pod(a=0.0), _per_pod(a=0.0)) is None  # nothing served in the window
