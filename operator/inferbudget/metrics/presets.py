"""Query presets per model server, one small adapter each behind one interface (like KEDA's scalers).

A preset turns a signal (e2e, ttft, itl, queue latency; request rate; token rate; queue; freshness)
into PromQL over a set of namespaces, grouped by (namespace, pod), so that ONE query per signal serves
every budget of that server: the observer splits the result by each target's pods. Latency comes back as
histogram bucket rates (`le` label) so that the percentile over a budget's pods is computed exactly from
the summed buckets; servers without histograms return a per-pod latency value instead.

Adding a model server = one class here (or its own module) and its tests.
"""

from dataclasses import dataclass
from typing import ClassVar, Literal

from inferbudget.metrics.promql import matchers

LatencySignal = Literal["e2e", "ttft", "itl", "queue"]


@dataclass(frozen=True)
class LatencyQuery:
    promql: str
    kind: Literal["histogram", "value"]  # histogram: bucket rates by le; value: seconds per pod
    unit_seconds: float = 1.0  # multiply the series by this to get seconds (Triton reports microseconds)


class UnsupportedSignal(Exception):
    """The model server does not export this latency signal; the message says which ones it does."""


class Preset:
    """The interface. Each query covers the pods in `namespaces` and keeps `namespace` and `pod` labels."""

    server: ClassVar[str]
    histograms: ClassVar[dict[str, str]] = {}  # latency signal -> histogram metric name (without _bucket)
    freshness_metric: ClassVar[str]  # a gauge every serving pod always exports; its age tells staleness

    def latency(self, signal: LatencySignal, namespaces: list[str], window: str) -> LatencyQuery:
        metric = self.histograms.get(signal)
        if metric is None:
            raise UnsupportedSignal(f"server {self.server} exports no {signal} latency; use one of "
                                    f"{', '.join(sorted(self.histograms))}")
        select = matchers(namespace=namespaces)
        return LatencyQuery(f"sum by (namespace, pod, le) (rate({metric}_bucket{{{select}}}[{window}]))",
                            "histogram")

    def request_rate(self, namespaces: list[str], window: str) -> str:
        raise NotImplementedError

    def token_rate(self, namespaces: list[str], window: str) -> str | None:
        """Prompt and generated tokens per second, per pod: how big the requests are (engine.work). None: the
        server exports no token counters, and every request counts as one."""
        return None

    def queue(self, namespaces: list[str]) -> str | None:
        return None

    def freshness(self, namespaces: list[str]) -> str:
        """Unix time of each pod's newest sample: old means the pod's metrics are stale."""
        select = matchers(namespace=namespaces)
        return f"max by (namespace, pod) (timestamp({self.freshness_metric}{{{select}}}))"


class VLLM(Preset):
    server = "vllm"
    histograms: ClassVar[dict[str, str]] = {
        "e2e": "vllm:e2e_request_latency_seconds",
        "ttft": "vllm:time_to_first_token_seconds",
        "itl": "vllm:inter_token_latency_seconds",
        "queue": "vllm:request_queue_time_seconds",
    }
    freshness_metric = "vllm:num_requests_running"

    def request_rate(self, namespaces: list[str], window: str) -> str:
        select = matchers(namespace=namespaces)
        return f"sum by (namespace, pod) (rate(vllm:e2e_request_latency_seconds_count{{{select}}}[{window}]))"

    def token_rate(self, namespaces: list[str], window: str) -> str:
        """The sums of the finished requests' length histograms: they count a request's tokens when it
        finishes, as the e2e histogram's count (the request rate) counts it. vLLM's prompt/generation token
        counters count tokens as they are computed, in-flight requests' too, and an overloaded window would
        read large requests."""
        return _rates_added(("vllm:request_prompt_tokens_sum", "vllm:request_generation_tokens_sum"), namespaces,
                            window)

    def queue(self, namespaces: list[str]) -> str:
        return f"sum by (namespace, pod) (vllm:num_requests_waiting{{{matchers(namespace=namespaces)}}})"


class TGI(Preset):
    server = "tgi"
    histograms: ClassVar[dict[str, str]] = {
        "e2e": "tgi_request_duration",
        "itl": "tgi_request_mean_time_per_token_duration",
        "queue": "tgi_request_queue_duration",
    }
    freshness_metric = "tgi_queue_size"

    def request_rate(self, namespaces: list[str], window: str) -> str:
        select = matchers(namespace=namespaces)
        return f"sum by (namespace, pod) (rate(tgi_request_count{{{select}}}[{window}]))"

    def token_rate(self, namespaces: list[str], window: str) -> str:
        return _rates_added(("tgi_request_input_length_sum", "tgi_request_generated_tokens_sum"), namespaces, window)

    def queue(self, namespaces: list[str]) -> str:
        return f"sum by (namespace, pod) (tgi_queue_size{{{matchers(namespace=namespaces)}}})"


class Triton(Preset):
    """Triton exports cumulative duration counters, not histograms: the latency is the mean over the
    window (per request), which understates a high percentile; enable Triton's histogram latencies and use
    server: custom for percentiles."""

    server = "triton"
    freshness_metric = "nv_inference_pending_request_count"
    _durations: ClassVar[dict[str, str]] = {
        "e2e": "nv_inference_request_duration_us",
        "queue": "nv_inference_queue_duration_us",
    }

    def latency(self, signal: LatencySignal, namespaces: list[str], window: str) -> LatencyQuery:
        counter = self._durations.get(signal)
        if counter is None:
            raise UnsupportedSignal(f"server triton exports no {signal} latency; use one of e2e, queue")
        select = matchers(namespace=namespaces)
        mean = (f"sum by (namespace, pod) (rate({counter}{{{select}}}[{window}])) / "
                f"sum by (namespace, pod) (rate(nv_inference_request_success{{{select}}}[{window}]))")
        return LatencyQuery(mean, "value", unit_seconds=1e-6)

    def request_rate(self, namespaces: list[str], window: str) -> str:
        select = matchers(namespace=namespaces)
        return f"sum by (namespace, pod) (rate(nv_inference_request_success{{{select}}}[{window}]))"

    def queue(self, namespaces: list[str]) -> str:
        select = matchers(namespace=namespaces)
        return f"sum by (namespace, pod) (nv_inference_pending_request_count{{{select}}})"


def _rates_added(counters: tuple[str, str], namespaces: list[str], window: str) -> str:
    """The two counters' rates added, per pod (a pod missing either has no result)."""
    select = matchers(namespace=namespaces)
    first, second = (f"sum by (namespace, pod) (rate({counter}{{{select}}}[{window}]))" for counter in counters)
    return f"{first} + {second}"


PRESETS: dict[str, Preset] = {preset.server: preset for preset in (VLLM(), TGI(), Triton())}


def memory_query(signal: Literal["gpu", "container"], namespaces: list[str], container: str | None) -> str:
    """Memory in use per pod, in bytes: GPU framebuffer from DCGM (MiB) or the container's working set."""
    select = matchers(namespace=namespaces)
    if signal == "gpu":
        return f"sum by (namespace, pod) (DCGM_FI_DEV_FB_USED{{{select}}}) * 1048576"
    # cAdvisor also reports the pod's sandbox ("POD") and the pod total (container=""): leave them out
    container_select = ',container!="",container!="POD"'
    if container:
        container_select = f",{matchers(container=[container])}"
    return f"max by (namespace, pod) (container_memory_working_set_bytes{{{select}{container_select}}})"
