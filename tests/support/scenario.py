"""The operator's e2e scenarios: a Deployment the twin serves metrics for, a budget on it, and reading back what
the operator did (status, Events, the Deployment, its own /metrics). Shared by the e2e test modules."""

import urllib.request
from dataclasses import dataclass
from typing import Any

from kubernetes import client as k8s
from prometheus_client.parser import text_string_to_metric_families
from tests.support import prometheus
from tests.support.processes import Process

CYCLE = 2  # seconds between reconciles in these tests
H100_BF16_CAPACITY = 22.5  # req/s one bf16 replica of the shipped profile serves at 1000 in / 100 out tokens


@dataclass
class Fleet:
    """The twin serving every pod's metrics, and the Prometheus scraping it."""

    prometheus: prometheus.Prometheus
    twin: Process


def deployment(name: str, variant: str, replicas: int, rate: float, progress_deadline: int = 600) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "annotations": {"twin.inferbudget.io/requests-per-second": str(rate)}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "progressDeadlineSeconds": progress_deadline,
                 "template": {"metadata": {"labels": {**labels, "inferbudget.io/variant": variant}},
                              "spec": {"containers": [{"name": "server", "image": "vllm/vllm-openai:v0.10.1",
                                                       "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}},
    }


VARIANTS = {
    "bf16": {"name": "bf16", "quality": 1.0, "costPerReplicaHour": "4.10", "memory": "24Gi",
             "capacityHint": {"requestsPerSecond": 15}},
    "fp8": {"name": "fp8", "quality": 0.99, "costPerReplicaHour": "4.10", "memory": "16Gi",
            "capacityHint": {"requestsPerSecond": 22}},
}


def budget(name: str, target: str, variants: list[str], **spec: Any) -> dict[str, Any]:
    fast_policy = {"scaleDown": {"stabilizationSeconds": 20}, "swap": {"cooldownSeconds": 10, "sustainSeconds": 4},
                   "whenMetricsMissing": {"staleAfterSeconds": 30}}
    return {
        "apiVersion": "inferbudget.io/v1alpha1", "kind": "InferenceBudget", "metadata": {"name": name},
        "spec": {"targetRef": {"name": target, "container": "server"},
                 "latency": {"percentile": 95, "thresholdMs": 2000, "windowSeconds": 15},
                 "replicas": {"min": 1, "max": 8},
                 "variants": [VARIANTS[v] for v in variants],
                 "policy": fast_policy | spec.pop("policy", {}), **spec},
    }


class Scenario:
    """One namespace's Deployment and budget, read through the API."""

    def __init__(self, cluster: Any, namespace: str, name: str = "llama") -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.custom = k8s.CustomObjectsApi(cluster.api_client)

    def create(self, workload: dict[str, Any], spec: dict[str, Any]) -> None:
        self.cluster.apps.create_namespaced_deployment(self.namespace, workload)
        self.custom.create_namespaced_custom_object("inferbudget.io", "v1alpha1", self.namespace,
                                                    "inferencebudgets", spec)

    def status(self) -> dict[str, Any]:
        body = self.custom.get_namespaced_custom_object("inferbudget.io", "v1alpha1", self.namespace,
                                                        "inferencebudgets", self.name)
        assert isinstance(body, dict)  # a custom object comes back as the JSON it is
        return body.get("status") or {}

    def condition(self, type_: str) -> str | None:
        return next((c["status"] for c in self.status().get("conditions", []) if c["type"] == type_), None)

    def deployment(self) -> Any:
        return self.cluster.apps.read_namespaced_deployment(self.name, self.namespace)

    def set_load(self, rate: float) -> None:
        self.cluster.apps.patch_namespaced_deployment(self.name, self.namespace, {"metadata": {"annotations": {
            "twin.inferbudget.io/requests-per-second": str(rate)}}})

    def history(self) -> list[dict[str, Any]]:
        return list(self.status().get("history", []))

    def actions(self, action: str) -> list[dict[str, Any]]:
        return [entry for entry in self.history() if entry["action"] == action]

    def events(self, reason: str | None = None) -> list[Any]:
        events = self.cluster.core.list_namespaced_event(self.namespace).items
        return [e for e in events if e.involved_object.kind == "InferenceBudget"
                and (reason is None or e.reason == reason)]

    def wait(self, what: str, probe: Any, timeout: float = 120) -> Any:
        try:
            return self.cluster.wait_until(what, probe, timeout=timeout)
        except AssertionError as failure:
            status = self.status()
            seen = {k: status.get(k) for k in ("observed", "lastDecision", "conditions")}
            raise AssertionError(f"{failure}\nbudget status: {seen}") from None


def rolled_out(deployment: Any, variant: str) -> bool:
    status, spec = deployment.status, deployment.spec
    return bool(spec.template.metadata.labels.get("inferbudget.io/variant") == variant
                and (status.observed_generation or 0) >= deployment.metadata.generation
                and (status.updated_replicas or 0) == spec.replicas == (status.available_replicas or 0)
                and (status.replicas or 0) == spec.replicas)


def operator_metric(operator: Process, name: str, **labels: str) -> float | None:
    """A sample of the operator's own /metrics (None when absent or not served yet)."""
    try:
        with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def field_managers(deployment: Any) -> set[str]:
    return {entry.manager for entry in deployment.metadata.managed_fields or []}
