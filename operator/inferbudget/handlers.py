"""kopf wiring only: indexes of the objects a reconcile reads, and the per-budget timer that runs it.

The target's pods are listed by its selector at each reconcile rather than indexed: see kube.pod_names.

Each timer tick is observe -> decide -> act -> report (reconcile.py); the status, the engine's state
included, is written back with one JSON patch so that nothing lives only in this process.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from inferbudget import reconcile, report
from inferbudget.actuate import kube
from inferbudget.actuate.workload import Workload, parse_workload
from inferbudget.api.crd import GROUP, PLURAL, VERSION
from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import InferenceBudgetStatus
from inferbudget.metrics.observe import CustomPromQL, Target
from inferbudget.observer import FleetObserver
from inferbudget.telemetry import OperatorMetrics


@dataclass
class Runtime:
    """What every handler shares, created once at start-up (kopf's memo)."""

    api: client.ApiClient
    observer: FleetObserver
    metrics: OperatorMetrics
    cycle_seconds: float


def index_workloads(namespace: str, name: str, body: kopf.Body, **_: Any) -> dict[tuple[str, str], Workload]:
    return {(namespace, name): parse_workload({"kind": "Deployment", **dict(body)})}


def index_autoscalers(namespace: str, name: str, spec: kopf.Spec, body: kopf.Body,
                      **_: Any) -> dict[str, tuple[str, str, str]]:
    """(kind of autoscaler and its name, target kind, target name) per namespace."""
    target = spec.get("scaleTargetRef", {})
    label = f"{body.get('kind', 'HorizontalPodAutoscaler')} {name}"
    if body.get("kind") == "ScaledObject":
        label = f"KEDA ScaledObject {name}"
    return {namespace: (label, target.get("kind", "Deployment"), target.get("name", ""))}


def _target(key: str, namespace: str, spec: InferenceBudgetSpec, pods: frozenset[str]) -> Target:
    custom = None
    if spec.queries is not None:
        custom = CustomPromQL(spec.queries.latency, spec.queries.request_rate, spec.queries.memory,
                              spec.queries.queue)
    return Target(key=key, namespace=namespace, pods=pods, server=spec.server, signal=spec.latency.signal,
                  quantile=spec.latency.percentile / 100, window_seconds=spec.latency.window_seconds,
                  memory_signal=spec.memory.signal if spec.memory else None,
                  container=spec.target_ref.container, custom=custom)


def _write_status(api: client.ApiClient, namespace: str, name: str, status: InferenceBudgetStatus) -> None:
    """Replaces the whole status (a JSON patch `add /status`): a merge patch would keep map keys that the
    engine's state dropped."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name, [{"op": "add", "path": "/status", "value": status.to_wire()}],
        _content_type="application/json-patch+json")


async def reconcile_budget(namespace: str, name: str, body: kopf.Body, meta: kopf.Meta, memo: kopf.Memo,
                           logger: logging.Logger | kopf.ObjectLogger, workloads: kopf.Index[Any, Workload],
                           hpas: kopf.Index[str, tuple[str, str, str]],
                           scaledobjects: kopf.Index[str, tuple[str, str, str]], **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    started, key = time.monotonic(), f"{namespace}/{name}"
    spec = InferenceBudgetSpec.model_validate(dict(body["spec"]))
    status = InferenceBudgetStatus.model_validate(dict(body.get("status") or {}))
    ref = spec.target_ref
    workload = next(iter(workloads.get((namespace, ref.name), [])), None) if ref.kind == "Deployment" else \
        await asyncio.to_thread(kube.read_workload, runtime.api, namespace, ref)
    others = [*hpas.get(namespace, []), *scaledobjects.get(namespace, [])]
    conflicts = [label for label, kind, target in others if kind == ref.kind and target == ref.name]
    metrics = None
    if workload is not None and not spec.paused:
        own_pods = await asyncio.to_thread(kube.pod_names, runtime.api, workload)
        url = spec.prometheus.url if spec.prometheus else None
        metrics = await runtime.observer.metrics_for(_target(key, namespace, spec, own_pods), url)
    plan = reconcile.plan(spec, status, meta.get("generation"), workload, metrics, conflicts, time.time())
    # The decision is recorded before it is carried out: if the operator dies in between, the restarted one
    # finds it in the status and carries it out once (a repeated decision is not recorded twice).
    await asyncio.to_thread(_write_status, runtime.api, namespace, name, plan.status)
    if plan.act and plan.decision is not None and workload is not None:
        try:
            await asyncio.to_thread(reconcile.execute, runtime.api, spec, workload, plan.decision)
        except (ApiException, kube.UnsupportedTarget) as error:
            problem = getattr(error, "reason", None) or str(error)
            plan.events = [reconcile.Event("ActionFailed", f"{plan.decision.action} failed: {problem}", True)]
            logger.warning(f"{plan.decision.action} failed: {problem}")
    for event in plan.events:
        (kopf.warn if event.warning else kopf.info)(body, reason=event.reason, message=event.message)
    _export(runtime.metrics, namespace, name, spec, plan)
    runtime.metrics.reconcile_seconds.labels(namespace, name).observe(time.monotonic() - started)


def _export(metrics: OperatorMetrics, namespace: str, name: str, spec: InferenceBudgetSpec,
            plan: reconcile.Plan) -> None:
    labels = (namespace, name)
    metrics.budget_latency.labels(*labels).set(spec.latency.threshold_ms / 1000)
    metrics.budget_max_replicas.labels(*labels).set(spec.replicas.max)
    metrics.last_reconcile.labels(*labels).set(time.time())
    if spec.memory and spec.memory.max_per_replica_bytes:
        metrics.budget_memory.labels(*labels).set(spec.memory.max_per_replica_bytes)
    if spec.cost:
        metrics.budget_cost.labels(*labels).set(float(spec.cost.max_per_hour_decimal))
    for condition in plan.status.conditions:
        for value in ("True", "False", "Unknown"):
            metrics.condition.labels(*labels, condition.type, value).set(1 if condition.status == value else 0)
    figures, decision = plan.figures, plan.decision
    if figures is None or decision is None:
        return
    metrics.decisions.labels(*labels, decision.action, decision.reason).inc()
    metrics.replicas.labels(*labels).set(figures.replicas)
    for variant in spec.variants:
        metrics.active_variant.labels(*labels, variant.name).set(1 if variant.name == figures.variant else 0)
    if figures.latency_ms is not None:
        metrics.observed_latency.labels(*labels).set(figures.latency_ms / 1000)
    if figures.memory_per_replica_bytes is not None:
        metrics.memory_per_replica.labels(*labels).set(figures.memory_per_replica_bytes)
    cost = report.cost_per_hour(spec, figures.variant, figures.replicas)
    if cost is not None:
        metrics.cost_per_hour.labels(*labels).set(float(cost))
    for dimension, over in report.breaches(spec, figures).items():
        metrics.breached.labels(*labels, dimension).set(1 if over else 0)
    error = plan.status.prediction_error
    for dimension, ratio in (("latency", error.latency if error else None), ("cost", error.cost if error else None)):
        if ratio is not None:
            metrics.prediction_error.labels(*labels, dimension).set(ratio)


def forget_budget(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    runtime.observer.forget(f"{namespace}/{name}")
    runtime.metrics.forget(namespace, name)


def register(registry: kopf.OperatorRegistry, cycle_seconds: float) -> None:
    """Registers the handlers; done at start-up because the cycle comes from the command line.

    (The type: ignore comments: kopf's handler protocols spell out every keyword kopf may pass, while a
    handler takes only those it needs plus **_.)"""
    kopf.on.login(registry=registry)(kopf.login_via_client)
    kopf.index("apps", "v1", "deployments", id="workloads", registry=registry)(index_workloads)  # type: ignore[arg-type]
    kopf.index("autoscaling", "v2", "horizontalpodautoscalers", id="hpas", registry=registry)(
        index_autoscalers)  # type: ignore[arg-type]
    kopf.index("keda.sh", "v1alpha1", "scaledobjects", id="scaledobjects", registry=registry)(index_autoscalers)  # type: ignore[arg-type]
    kopf.timer(GROUP, VERSION, PLURAL, interval=cycle_seconds, sharp=True, backoff=cycle_seconds,
               registry=registry)(reconcile_budget)  # type: ignore[arg-type]
    kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)(forget_budget)  # type: ignore[arg-type]
