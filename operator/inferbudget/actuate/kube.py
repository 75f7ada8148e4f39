"""Kubernetes side effects on the target: scale and swap. Every write names its field manager.

These functions take an ApiClient, do one thing each, and raise the client's ApiException on failure; the
reconcile loop decides what a failure means (a 409 is retried next cycle, a 403 becomes a condition).
"""

import json
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


# The pods' metadata only (names, labels): a fraction of the full objects, which the reconciles do not need.
METADATA_ONLY = {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}


def namespace_pods(api: client.ApiClient, namespace: str) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every pod in the namespace, from the API server's watch cache (resourceVersion 0: no
    read from etcd); see inferbudget.pods for why a namespace at a time."""
    response: Any = client.CoreV1Api(api).list_namespaced_pod(  # unparsed (not a V1PodList): the JSON is read here
        namespace, resource_version="0", _headers=METADATA_ONLY, _preload_content=False)
    items = json.loads(response.data).get("items") or []
    return [(item["metadata"]["name"], item["metadata"].get("labels") or {}) for item in items]


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
