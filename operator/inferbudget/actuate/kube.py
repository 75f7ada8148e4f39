"""Kubernetes side effects: scale, swap, conflict detection and Events. Every write names its field manager.

These functions take an ApiClient, do one thing each, and raise the client's ApiException on failure; the
reconcile loop decides what a failure means (a 409 is retried next cycle, a 403 becomes a condition).
"""

from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from inferbudget.actuate.variant import swap_patch
from inferbudget.actuate.workload import FIELD_MANAGER, Workload, parse_workload
from inferbudget.api.spec import TargetRef, Variant

REPORTING_CONTROLLER = "inferbudget.io/operator"
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


def scale(api: client.ApiClient, workload: Workload, replicas: int) -> None:
    """Sets the replica count through the scale subresource, as the HPA does."""
    apps = client.AppsV1Api(api)
    _method(apps, "patch", workload.kind, "_scale")(
        workload.name, workload.namespace, {"spec": {"replicas": replicas}}, field_manager=FIELD_MANAGER)


def apply_variant(api: client.ApiClient, workload: Workload, variant: Variant, container: str) -> None:
    apps = client.AppsV1Api(api)
    _method(apps, "patch", workload.kind)(
        workload.name, workload.namespace, swap_patch(variant, container), field_manager=FIELD_MANAGER)


def find_conflicts(api: client.ApiClient, namespace: str, ref: TargetRef) -> list[str]:
    """Other autoscalers that drive the same target: HPAs, and KEDA ScaledObjects where KEDA is installed."""
    conflicts = []
    for hpa in client.AutoscalingV2Api(api).list_namespaced_horizontal_pod_autoscaler(namespace).items:
        target = hpa.spec.scale_target_ref
        if target.name == ref.name and target.kind == ref.kind and hpa.metadata is not None:
            conflicts.append(f"HorizontalPodAutoscaler {hpa.metadata.name}")
    for item in _scaled_objects(api, namespace):
        target = item.get("spec", {}).get("scaleTargetRef", {})
        if target.get("name") == ref.name and target.get("kind", "Deployment") == ref.kind:
            conflicts.append(f"KEDA ScaledObject {item['metadata']['name']}")
    return conflicts


def _scaled_objects(api: client.ApiClient, namespace: str) -> list[dict[str, Any]]:
    try:
        answer: Any = client.CustomObjectsApi(api).list_namespaced_custom_object(
            "keda.sh", "v1alpha1", namespace, "scaledobjects")
    except ApiException as error:
        if error.status == 404:  # KEDA is not installed in this cluster
            return []
        raise
    items: list[dict[str, Any]] = answer.get("items", [])
    return items


def post_event(api: client.ApiClient, budget: dict[str, Any], reason: str, message: str,
               warning: bool = False) -> None:
    """A core/v1 Event on the InferenceBudget, as `kubectl describe ib` and `kubectl events` show."""
    metadata = budget["metadata"]
    now = datetime.now(UTC)
    event = client.CoreV1Event(
        metadata=client.V1ObjectMeta(generate_name=f"{metadata['name']}.", namespace=metadata["namespace"]),
        involved_object=client.V1ObjectReference(
            api_version=budget.get("apiVersion", "inferbudget.io/v1alpha1"), kind="InferenceBudget",
            name=metadata["name"], namespace=metadata["namespace"], uid=metadata.get("uid")),
        reason=reason, message=message[:1024], type="Warning" if warning else "Normal",
        first_timestamp=now, last_timestamp=now, count=1,
        source=client.V1EventSource(component=REPORTING_CONTROLLER), reporting_component=REPORTING_CONTROLLER,
        reporting_instance="inferbudget")
    client.CoreV1Api(api).create_namespaced_event(metadata["namespace"], event)
