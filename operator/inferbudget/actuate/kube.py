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


class TimedApiClient(client.ApiClient):
    """An ApiClient whose requests give up after `timeout` seconds unless a call sets its own. The client waits
    for ever by default: a hung API server, or one waiting on a paused etcd, would hold a budget's cycle (and a
    worker thread) until it answered; a timeout makes that a failed cycle, tried again on the next one."""

    def __init__(self, timeout: float, configuration: client.Configuration | None = None) -> None:
        super().__init__(configuration)
        self.timeout = timeout

    def call_api(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["_request_timeout"] = kwargs.get("_request_timeout") or self.timeout
        return super().call_api(*args, **kwargs)


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


def _same_object(workload: Workload) -> dict[str, Any]:
    """Patch metadata that makes the API server refuse the write when the object by that name is no longer the
    one the decision was about (deleted and created again: a new uid), so a stale view never acts on it."""
    return {"uid": workload.uid} if workload.uid else {}


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
        workload.name, workload.namespace, {"metadata": _same_object(workload), "spec": {"replicas": replicas}},
        field_manager=FIELD_MANAGER)


def apply_variant(api: client.ApiClient, workload: Workload, variant: Variant, container: str,
                  replicas: int) -> None:
    """Rewrites the container as the variant runs it, and the replica count, in one patch (read fresh: the swap
    needs the container as it is)."""
    apps = client.AppsV1Api(api)
    current = api.sanitize_for_serialization(  # type: ignore[no-untyped-call]
        _method(apps, "read", workload.kind)(workload.name, workload.namespace))
    patch = swap_patch(current, variant, container, replicas)
    patch["metadata"].update(_same_object(workload))
    _method(apps, "patch", workload.kind)(workload.name, workload.namespace, patch, field_manager=FIELD_MANAGER)
