"""kopf wiring only: indexes of the objects a reconcile reads, and the per-budget daemon that runs it once per
cycle (on a grid that does not drift: inferbudget.cadence).

The target's pods are picked by its selector from its namespace's pods, listed once per cycle rather than indexed:
see inferbudget.pods.

Each reconcile is observe -> decide -> act -> report (reconcile.py); the status, the engine's state
included, is written back with one JSON patch so that nothing lives only in this process. That write is
conditional on the budget's resourceVersion: a decision is only ever made from, and recorded over, the status
as it is (see _decide_and_record), and nothing is acted on unless its decision is recorded.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf
import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from inferbudget import cadence, reconcile, report
from inferbudget.actuate import kube
from inferbudget.actuate.workload import Workload, parse_workload
from inferbudget.api.crd import GROUP, PLURAL, VERSION
from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.status import InferenceBudgetStatus
from inferbudget.metrics.observe import BudgetMetrics, CustomPromQL, Target
from inferbudget.metrics.source import DEFAULT, SecretReader, SecretUnreadable, source_of
from inferbudget.observer import FleetObserver
from inferbudget.pods import NamespacePods
from inferbudget.telemetry import OperatorMetrics


@dataclass
class Runtime:
    """What every handler shares, created once at start-up (kopf's memo)."""

    api: client.ApiClient
    observer: FleetObserver
    metrics: OperatorMetrics
    cycle_seconds: float
    secrets: SecretReader  # for spec.prometheus's Secret references
    pods: NamespacePods


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


def _target(key: str, namespace: str, spec: InferenceBudgetSpec, pods: dict[str, str | None],
            variant: str | None) -> Target:
    """`pods`: the workload's, by name, with their variant labels; `variant`: its pod template's. Only the pods
    labelled with it tell the variant's memory (unlabelled ones predate the first swap); with no variant label
    on the template, every pod's memory counts."""
    custom = None
    if spec.queries is not None:
        custom = CustomPromQL(spec.queries.latency, spec.queries.request_rate, spec.queries.memory,
                              spec.queries.queue, spec.queries.token_rate)
    of_variant = None if variant is None else frozenset(
        name for name, label in pods.items() if label == variant)
    return Target(key=key, namespace=namespace, pods=frozenset(pods), server=spec.server, signal=spec.latency.signal,
                  quantile=spec.latency.percentile / 100, window_seconds=spec.latency.window_seconds,
                  memory_signal=spec.memory.signal if spec.memory else None,
                  container=spec.target_ref.container, custom=custom, variant_pods=of_variant)


async def _metrics(runtime: Runtime, namespace: str, spec: InferenceBudgetSpec, target: Target) -> BudgetMetrics:
    try:  # a thread only for a budget with its own Prometheus settings (they may name Secrets to read)
        source = DEFAULT if spec.prometheus is None else await asyncio.to_thread(
            source_of, namespace, spec.prometheus, runtime.secrets)
    except SecretUnreadable as error:
        return BudgetMetrics(problems=(str(error),))
    return await runtime.observer.metrics_for(target, source)


# The API server did not answer: refused or reset connections (it restarts), timeouts (it or etcd hangs).
# Its 5xx answers (503 while starting, 504 when etcd does not answer it) are treated alike.
UNREACHABLE = (urllib3.exceptions.HTTPError,)
CONFLICT_ATTEMPTS = 3  # plans per cycle when another writer keeps changing the budget; then the next cycle


def _brief(error: Exception) -> str:
    """The API server's answer, or what stopped the request (urllib3 wraps it: refused, reset, timed out)."""
    if isinstance(error, ApiException):
        return f"{error.status} {error.reason}"
    cause = getattr(error, "reason", None)  # MaxRetryError says why in .reason
    return f"{type(error).__name__}: {cause or error}"[:300]


def _write_status(api: client.ApiClient, namespace: str, name: str, status: InferenceBudgetStatus,
                  resource_version: str) -> None:
    """Replaces the whole status (a JSON patch `add /status`: a merge patch would keep map keys that the
    engine's state dropped), only if the budget is still at `resource_version`: else 409 Conflict."""
    client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, PLURAL, name,
        [{"op": "replace", "path": "/metadata/resourceVersion", "value": resource_version},
         {"op": "add", "path": "/status", "value": status.to_wire()}],
        _content_type="application/json-patch+json")


def _read_budget(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    budget = client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    assert isinstance(budget, dict)  # a custom object comes back as the JSON it is
    return budget


async def _decide_and_record(api: client.ApiClient, spec: InferenceBudgetSpec, body: dict[str, Any],
                             workload: Workload | None, metrics: BudgetMetrics | None, conflicts: list[str],
                             logger: logging.Logger | kopf.ObjectLogger) -> reconcile.Plan | None:
    """Plans from the budget as last seen and records the plan in its status, on condition that nobody wrote
    the budget since: a write from an older copy would drop another writer's fields (its own conditions) or
    roll back this operator's last decision. On 409 Conflict it reads the budget again and plans again from
    what is there now; None (nothing recorded, so nothing to act on) when the spec changed meanwhile or the
    budget kept changing."""
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    generation = body["metadata"].get("generation")
    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        status = InferenceBudgetStatus.model_validate(dict(body.get("status") or {}))
        plan = reconcile.plan(spec, status, generation, workload, metrics, conflicts, time.time())
        try:
            await asyncio.to_thread(_write_status, api, namespace, name, plan.status,
                                    body["metadata"]["resourceVersion"])
            return plan
        except ApiException as error:
            if error.status != 409:
                raise
        body = await asyncio.to_thread(_read_budget, api, namespace, name)
        if body["metadata"].get("generation") != generation:
            logger.info("the spec changed while deciding (409 Conflict): deciding on the new spec next cycle")
            return None
        logger.info(f"the budget's status changed since it was read (409 Conflict, attempt {attempt}): "
                    "deciding again from the status as it is now")
    logger.warning(f"the budget's status kept changing ({CONFLICT_ATTEMPTS} conflicts): nothing recorded or "
                   "done this cycle")
    return None


async def reconcile_budget(namespace: str, name: str, body: kopf.Body, memo: kopf.Memo,
                           logger: logging.Logger | kopf.ObjectLogger, workloads: kopf.Index[Any, Workload],
                           hpas: kopf.Index[str, tuple[str, str, str]],
                           scaledobjects: kopf.Index[str, tuple[str, str, str]], **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    started, key = time.monotonic(), f"{namespace}/{name}"
    # One snapshot of the budget: `body` is a live view, which watch events update while this reconcile awaits.
    read = dict(body)
    spec = InferenceBudgetSpec.model_validate(dict(read["spec"]))
    ref = spec.target_ref
    try:
        workload = next(iter(workloads.get((namespace, ref.name), [])), None) if ref.kind == "Deployment" else \
            await asyncio.to_thread(kube.read_workload, runtime.api, namespace, ref)
        others = [*hpas.get(namespace, []), *scaledobjects.get(namespace, [])]
        conflicts = [label for label, kind, target in others if kind == ref.kind and target == ref.name]
        metrics = None
        if workload is not None and not spec.paused:
            own_pods = await runtime.pods.selected(namespace, workload.selector)
            target = _target(key, namespace, spec, own_pods, workload.variant)
            metrics = await _metrics(runtime, namespace, spec, target)
        # The decision is recorded before it is carried out: if the operator dies in between, the restarted one
        # finds it in the status and carries it out once (a repeated decision is not recorded twice).
        plan = await _decide_and_record(runtime.api, spec, read, workload, metrics, conflicts, logger)
    except (ApiException, *UNREACHABLE) as error:
        if isinstance(error, ApiException) and error.status < 500:
            raise
        logger.warning(f"the API server is unavailable ({_brief(error)}): nothing recorded or done this cycle; "
                       "trying again next cycle")
        return
    if plan is None:
        return
    if plan.act and plan.decision is not None and workload is not None:
        try:
            await asyncio.to_thread(reconcile.execute, runtime.api, spec, workload, plan.decision)
        except (ApiException, kube.UnsupportedTarget, *UNREACHABLE) as error:
            problem = _brief(error) if isinstance(error, (ApiException, *UNREACHABLE)) else str(error)
            plan.events = [reconcile.Event("ActionFailed", f"{plan.decision.action} failed: {problem}", True)]
            logger.warning(f"{plan.decision.action} failed: {problem}")
    for event in plan.events:
        (kopf.warn if event.warning else kopf.info)(body, reason=event.reason, message=event.message)
    _export(runtime.metrics, namespace, name, spec, plan)
    runtime.metrics.reconcile_seconds.labels(namespace, name).observe(time.monotonic() - started)


async def reconcile_every_cycle(stopped: kopf.DaemonStopped, uid: str, memo: kopf.Memo,
                                logger: logging.Logger | kopf.ObjectLogger, **kwargs: Any) -> None:
    """The budget's reconciles, one per cycle on its own grid (see inferbudget.cadence), until kopf stops it:
    the budget is deleted, the operator exits, or peering pauses it. A reconcile under way is finished first,
    never cut short: what it recorded it also carries out."""
    runtime: Runtime = memo["runtime"]
    offset = cadence.phase(uid, runtime.cycle_seconds)
    while not stopped:
        started = time.time()
        try:
            await reconcile_budget(memo=memo, logger=logger, **kwargs)
        except Exception:  # the API server refused a request (4xx) or a bug: logged, and tried again next cycle
            logger.exception("the reconcile failed: trying again next cycle")
        await stopped.wait(cadence.next_run(started, time.time(), runtime.cycle_seconds, offset) - time.time())


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
    if figures is None or decision is None:  # paused, or no target: nothing was observed this cycle
        metrics.forget(namespace, name, metrics.observations())
        return
    metrics.decisions.labels(*labels, decision.action, decision.reason).inc()
    metrics.replicas.labels(*labels).set(figures.replicas)
    for variant in spec.variants:
        metrics.active_variant.labels(*labels, variant.name).set(1 if variant.name == figures.variant else 0)
    latency = figures.latency_ms / 1000 if figures.latency_ms is not None else None
    metrics.set_or_remove(metrics.observed_latency, labels, latency)
    metrics.set_or_remove(metrics.memory_per_replica, labels, figures.memory_per_replica_bytes)
    cost = report.cost_per_hour(spec, figures.variant, figures.replicas)
    metrics.set_or_remove(metrics.cost_per_hour, labels, float(cost) if cost is not None else None)
    for dimension, over in report.breaches(spec, figures).items():
        metrics.breached.labels(*labels, dimension).set(1 if over else 0)
    error = plan.status.prediction_error
    for dimension, ratio in (("latency", error.latency if error else None), ("cost", error.cost if error else None)):
        metrics.set_or_remove(metrics.prediction_error, (*labels, dimension), ratio)


def forget_budget(namespace: str, name: str, memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime = memo["runtime"]
    runtime.observer.forget(f"{namespace}/{name}")
    runtime.metrics.forget(namespace, name)


# kopf's requests beyond its watch streams that may be in flight at once (its patches and Events): the rest wait.
KOPF_SPARE_CONNECTIONS = 32
WATCHES_PER_NAMESPACE = 6  # budgets, Deployments, HPAs, ScaledObjects, the peering object, and one to spare
WATCHES_CLUSTER_WIDE = 4  # CRDs (kopf's discovery), namespaces (scanning), the cluster peering, one to spare


def kopf_connection_limit(namespaces: list[str] | None) -> int:
    """How many connections kopf's HTTP client may hold: each watch stream holds one for as long as it runs, so
    the limit counts them all, with KOPF_SPARE_CONNECTIONS for the requests in between. 0 (no limit, kopf's
    own default) when a namespace is a pattern: its watches cannot be counted in advance."""
    if any(char in namespace for namespace in namespaces or [] for char in "*?[!"):
        return 0
    return WATCHES_PER_NAMESPACE * max(1, len(namespaces or [])) + WATCHES_CLUSTER_WIDE + KOPF_SPARE_CONNECTIONS


def login_with_a_bounded_pool(limit: int) -> Any:
    """A login handler: the credentials kopf reads from the kubeconfig or the service account, on a session
    whose connection pool holds at most `limit` connections (0: no limit).

    kopf's own session has no limit: when a thousand budgets needed kopf's patch at once (its finalizer on new
    budgets) or an Event each (a wave of scale-ups), it opened a connection for each request, every one with
    asyncio's 256 KiB TLS read buffer: 251 MiB of the operator's 495 MiB peak (memray, bench/scale.py)."""

    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        info = kopf.login_via_client(**kwargs)
        if info is None:
            return None
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
            headers=info.as_http_headers(), proxy=info.proxy_url, trust_env=info.trust_env)
        return kopf.AiohttpSession(aiohttp_session=session, server=info.server, priority=info.priority,
                                   default_namespace=info.default_namespace, expiration=info.expiration)

    return login


def register(registry: kopf.OperatorRegistry, namespaces: list[str] | None) -> None:
    """Registers the handlers on the operator's own registry (see run.py), for the watched namespaces (None:
    the whole cluster). The cycle comes from the command line, through the memo's Runtime.

    (The type: ignore comments: kopf's handler protocols spell out every keyword kopf may pass, while a
    handler takes only those it needs plus **_.)"""
    kopf.on.login(registry=registry)(login_with_a_bounded_pool(kopf_connection_limit(namespaces)))
    kopf.index("apps", "v1", "deployments", id="workloads", registry=registry)(index_workloads)  # type: ignore[arg-type]
    kopf.index("autoscaling", "v2", "horizontalpodautoscalers", id="hpas", registry=registry)(
        index_autoscalers)  # type: ignore[arg-type]
    kopf.index("keda.sh", "v1alpha1", "scaledobjects", id="scaledobjects", registry=registry)(index_autoscalers)  # type: ignore[arg-type]
    kopf.daemon(GROUP, VERSION, PLURAL, registry=registry)(reconcile_every_cycle)  # type: ignore[arg-type]
    kopf.on.delete(GROUP, VERSION, PLURAL, optional=True, registry=registry)(forget_budget)  # type: ignore[arg-type]
