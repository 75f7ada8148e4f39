"""Fixtures of the integration tier: a real Prometheus, and pods exporting vLLM-format metrics for it to scrape."""

import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from tests.support import prometheus
from tests.support.prometheus import Prometheus, free_port

from inferbudget.metrics.observe import Target
from inferbudget.telemetry import serve_metrics


@pytest.fixture(scope="session")
def real_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prometheus.Prometheus]:
    server = prometheus.start(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
REQUEST_TOKENS = (1000, 200)  # prompt, generated
LENGTH_BUCKETS = (100, 1000, 10000)
IN_FLIGHT = 2  # vLLM's token counters also count the tokens of requests still running: here, twice as many


class VllmPods:
    """Pods exporting vLLM's metric names with namespace and pod labels, as a scraped fleet would; and one pod,
    serving/tgi-0, exporting TGI's (histograms of prompt and generated lengths, a request counter without the
    _total suffix, as TGI's Rust exporter writes it)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["namespace", "pod"]
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "e2e", labels, buckets=BUCKETS,
                             registry=self.registry)
        self.running = Gauge("vllm:num_requests_running", "running", labels, registry=self.registry)
        self.waiting = Gauge("vllm:num_requests_waiting", "waiting", labels, registry=self.registry)
        self.request_prompt = Histogram("vllm:request_prompt_tokens", "finished requests' prompts", labels,
                                        buckets=LENGTH_BUCKETS, registry=self.registry)
        self.request_generation = Histogram("vllm:request_generation_tokens", "finished requests' generations", labels,
                                            buckets=LENGTH_BUCKETS, registry=self.registry)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "prompt tokens", labels, registry=self.registry)
        self.generation_tokens = Counter("vllm:generation_tokens", "generated tokens", labels, registry=self.registry)
        self.fb_used = Gauge("DCGM_FI_DEV_FB_USED", "MiB", labels, registry=self.registry)
        self.ticks = Counter("ticks", "exporter ticks", registry=self.registry)
        self.tgi_duration = Histogram("tgi_request_duration", "e2e", labels, buckets=BUCKETS, registry=self.registry)
        self.tgi_count = Gauge("tgi_request_count", "requests", labels, registry=self.registry)
        self.tgi_input = Histogram("tgi_request_input_length", "prompt tokens", labels, registry=self.registry)
        self.tgi_generated = Histogram("tgi_request_generated_tokens", "generated", labels, registry=self.registry)
        self.tgi_queue = Gauge("tgi_queue_size", "waiting", labels, registry=self.registry)
        self.port = free_port()
        self.server = serve_metrics(self.registry, "127.0.0.1", self.port)
        self.stopping = threading.Event()
        self.load = threading.Thread(target=self._serve_requests, daemon=True)
        self.load.start()

    def _serve_requests(self) -> None:
        """Keeps counters rising so rates exist: every pod finishes a request each tick, at its latency, of
        REQUEST_TOKENS (prompt, generated) for the budget's pods and ten times as many for the others; its token
        counters rise by IN_FLIGHT times more, the tokens computed for requests not finished yet."""
        latency = {("serving", "llama-0"): 0.8, ("serving", "llama-1"): 0.8, ("serving", "other-0"): 7.0,
                   ("elsewhere", "llama-0"): 7.0}
        while not self.stopping.wait(0.05):
            for (namespace, pod), seconds in latency.items():
                scale = 1 if seconds < 1 else 10
                self.e2e.labels(namespace, pod).observe(seconds)
                self.request_prompt.labels(namespace, pod).observe(REQUEST_TOKENS[0] * scale)
                self.request_generation.labels(namespace, pod).observe(REQUEST_TOKENS[1] * scale)
                self.prompt_tokens.labels(namespace, pod).inc(REQUEST_TOKENS[0] * scale * (1 + IN_FLIGHT))
                self.generation_tokens.labels(namespace, pod).inc(REQUEST_TOKENS[1] * scale * (1 + IN_FLIGHT))
                self.running.labels(namespace, pod).set(4)
            self.tgi_duration.labels("serving", "tgi-0").observe(0.8)
            self.tgi_count.labels("serving", "tgi-0").inc()
            self.tgi_input.labels("serving", "tgi-0").observe(REQUEST_TOKENS[0])
            self.tgi_generated.labels("serving", "tgi-0").observe(REQUEST_TOKENS[1])
            self.tgi_queue.labels("serving", "tgi-0").set(1)
            self.ticks.inc()

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()


@pytest.fixture
def pods(real_prometheus: Prometheus) -> Iterator[VllmPods]:
    exporter = VllmPods()
    exporter.waiting.labels("serving", "llama-0").set(3)
    exporter.waiting.labels("serving", "llama-1").set(2)
    exporter.fb_used.labels("serving", "llama-0").set(18432)
    exporter.fb_used.labels("serving", "llama-1").set(16384)
    real_prometheus.scrape(f"127.0.0.1:{exporter.port}")
    yield exporter
    exporter.stop()


def target(**overrides: object) -> Target:
    fields: dict[str, object] = dict(key="serving/llama", namespace="serving", pods=frozenset({"llama-0", "llama-1"}),
                                     server="vllm", signal="e2e", quantile=0.95, window_seconds=5, memory_signal="gpu")
    return Target(**(fields | overrides))  # type: ignore[arg-type]
