"""Kubernetes side effects on the target: scale and swap. Every write names its field manager.

These functions take an ApiClient, do one thing each, and raise the client's ApiException on failure; the
reconcile loop decides what a failure means (a 409 is retried next cycle, a 403 becomes a condition).
"""

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from inferbudget.actuate.variant import swap_patch
from inferbudget.actuate.workload import FIELD_MANAGER, Workload, parse_workload
from inferbudget.api.spec import TargetRef, Variant

_SCALABLE = {"Deployment": "deployment", "StatefulSet": "stateful_set"}


class UnsupportedTarget(Exception):
    """The target's kind cannot be scaled or swapped by inferbudget."""


def _method(apps: client.AppsV1Api, verb: str, kind: str, suffix: str = "") -> Any:
    if kind not in _SCALABLE:
        raise UnsupportedTarget(f"kind {kind} is not supported: use a Deployment or a StatefulSet")
    return getattr(apps, f"{verb}_namespaced_{_SCALABLE[kind]}{suffix}")


def read_workload(api: client.ApiClient, namespace: str, ref: TargetRef) -> Workload | None:
    """The target as it is now, or None when it does not exist."""
    apps = client.AppsV1Api(api)
    try:
        obj = _method(apps, "read", ref.kind)(ref.name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    body: dict[str, Any] = api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
    body.setdefault("kind", ref.kind)
    return parse_workload(body)


def pod_names(api: client.ApiClient, workload: Workload) -> frozenset[str]:
    """The workload's pods, listed by its selector (matchLabels) when a reconcile needs them.

    Not a kopf index of every pod: kopf readies an index one object at a time and wakes every waiting worker
    at each, so a start-up with 3,000 pods spent minutes in kopf before the first reconcile (bench/scale.py)."""
    if not workload.selector:
        return frozenset()  # an empty selector would list every pod of the namespace; it selects none
    selector = ",".join(f"{key}={value}" for key, value in sorted(workload.selector.items()))
    pods = client.CoreV1Api(api).list_namespaced_pod(workload.namespace, label_selector=selector)
    return frozenset(pod.metadata.name for pod in pods.items if pod.metadata and pod.metadata.name)


def scale(api: client.ApiClient, workload: Workload, replicas: int) -> None:
    """Sets the replica count through the scale subresource, as the HPA does."""
    apps = client.AppsV1Api(api)
    _method(apps, "patch", workload.kind, "_scale")(
        workload.name, workload.namespace, {"spec": {"replicas": replicas}}, field_manager=FIELD_MANAGER)


def apply_variant(api: client.ApiClient, workload: Workload, variant: Variant, container: str) -> None:
    """Rewrites the container as the variant runs it (read fresh: the swap needs the container as it is)."""
    apps = client.AppsV1Api(api)
    current = api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
        _method(apps, "read", workload.kind)(workload.name, workload.namespace))
    _method(apps, "patch", workload.kind)(
        workload.name, workload.namespace, swap_patch(current, variant, container), field_manager=FIELD_MANAGER)
