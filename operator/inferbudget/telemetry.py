"""Serving Prometheus metrics over HTTP.

Metrics are always served in the classic text format (0.0.4). prometheus-client would otherwise answer a
Prometheus that prefers OpenMetrics with names escaped for older scrapers (`vllm:num_requests_running`
becomes `vllm_num_requests_running`), and vLLM's metric names must arrive exactly as vLLM writes them.
"""

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# The _created series of every counter double the series count for nothing a dashboard uses.
disable_created_metrics()  # type: ignore[no-untyped-call]


def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> ThreadingHTTPServer:
    """Serves registry on http://host:port/metrics from a daemon thread; `.shutdown()` stops it."""
    return serve_text(lambda: generate_latest(registry), host, port)


def serve_text(render: Callable[[], bytes], host: str, port: int) -> ThreadingHTTPServer:
    """Serves what render() writes (the text format) on http://host:port/metrics, as serve_metrics does."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] not in ("/metrics", "/"):
                self.send_error(404)
                return
            body = render()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # scrapes are not news
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"metrics:{port}", daemon=True).start()
    return server


class OperatorMetrics:
    """The operator's own metrics, each labelled with the budget's namespace and name."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        budget = ["namespace", "budget"]

        def gauge(name: str, documentation: str, extra: tuple[str, ...] = ()) -> Gauge:
            return Gauge(f"inferbudget_{name}", documentation, [*budget, *extra], registry=self.registry)

        self.observed_latency = gauge("observed_latency_seconds", "Observed latency at the budget's percentile.")
        self.budget_latency = gauge("budget_latency_seconds", "The latency budget.")
        self.memory_per_replica = gauge("memory_per_replica_bytes",
                                        "Observed memory of the largest replica of the running variant.")
        self.budget_memory = gauge("budget_memory_bytes", "The memory budget per replica.")
        self.replicas = gauge("replicas", "Desired replicas of the target.")
        self.budget_max_replicas = gauge("budget_max_replicas", "The budget's replicas.max.")
        self.active_variant = gauge("active_variant", "1 for the variant the target runs.", ("variant",))
        self.cost_per_hour = gauge("cost_per_hour", "Cost per hour of the current replicas.")
        self.budget_cost = gauge("budget_cost_per_hour", "The cost ceiling per hour.")
        self.breached = gauge("budget_breached", "1 when a budget is broken.", ("dimension",))
        self.prediction_error = gauge("prediction_error_ratio", "(observed - predicted) / predicted.",
                                      ("dimension",))
        self.condition = gauge("condition", "1 when the condition has this status.", ("type", "status"))
        self.decisions = Counter("inferbudget_decisions_total", "Decisions by action and reason.",
                                 [*budget, "action", "reason"], registry=self.registry)
        self.prometheus_errors = Counter("inferbudget_prometheus_errors_total",
                                         "Prometheus queries that failed after retries.", registry=self.registry)
        self.reconcile_seconds = Histogram("inferbudget_reconcile_seconds", "Time of one budget's reconcile.",
                                           budget, registry=self.registry)
        self.last_reconcile = gauge("last_reconcile_timestamp_seconds", "When the budget was last reconciled.")

    def observations(self) -> tuple[Gauge, ...]:
        """The series that say what was observed in the target, as opposed to what the budget says."""
        return (self.observed_latency, self.memory_per_replica, self.replicas, self.active_variant,
                self.cost_per_hour, self.breached, self.prediction_error)

    def forget(self, namespace: str, budget: str, metrics: tuple[Gauge | Counter | Histogram, ...] = ()) -> None:
        """Drops the budget's series of metrics (all of them by default: a deleted budget), so that dashboards
        and alerts don't show ghosts or old figures as current ones."""
        for metric in metrics or (*self.observations(), self.budget_latency, self.budget_memory,
                                  self.budget_max_replicas, self.budget_cost, self.condition, self.decisions,
                                  self.reconcile_seconds, self.last_reconcile):
            for labels in list(metric._metrics):
                if labels[:2] == (namespace, budget):
                    metric.remove(*labels)

    @staticmethod
    def set_or_remove(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
        """Sets the series, or removes it when the value is unknown this cycle (not the last one seen)."""
        if value is not None:
            gauge.labels(*labels).set(value)
        elif labels in gauge._metrics:
            gauge.remove(*labels)
