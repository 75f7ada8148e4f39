"""One observation cycle for many budgets at once.

The number of Prometheus queries per cycle depends on the distinct (server, signal, window) groups, not on
the number of budgets: each query covers every namespace involved, grouped by (namespace, pod), and the
result is split by each target's own pods (listed from the API server), so relabelling differences between
clusters don't matter and a budget never sees another workload's pods. Only `server: custom` budgets cost a
query set each, since their PromQL is theirs.
"""

import asyncio
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from inferbudget.metrics import histogram
from inferbudget.metrics.client import PrometheusClient, PrometheusError, Sample
from inferbudget.metrics.presets import PRESETS, LatencyQuery, LatencySignal, UnsupportedSignal, memory_query
from inferbudget.metrics.promql import quote, regex_any_of

PodKey = tuple[str, str]  # (namespace, pod)


@dataclass(frozen=True)
class CustomPromQL:
    latency: str
    request_rate: str
    memory: str | None = None
    queue: str | None = None
    token_rate: str | None = None


@dataclass(frozen=True)
class Target:
    """What the observer needs to know of one budget."""

    key: str  # namespace/name of the budget
    namespace: str
    pods: frozenset[str]  # the target workload's pods, by name
    server: str
    signal: LatencySignal
    quantile: float  # 0.95 for p95
    window_seconds: int
    memory_signal: Literal["gpu", "container", "declared"] | None = None
    container: str | None = None
    custom: CustomPromQL | None = None
    # The pods running the workload's current variant, whose memory is the variant's (None: all of `pods`).
    # After a swap, the replaced variant's pods linger for a while: their memory is not the new variant's.
    variant_pods: frozenset[str] | None = None


@dataclass(frozen=True)
class BudgetMetrics:
    """What Prometheus says about one budget's pods. None means unknown, never zero."""

    latency_ms: float | None = None
    requests_per_second: float | None = None
    tokens_per_request: float | None = None  # prompt + generated, mean over the window (None: no token rate)
    queue: float | None = None
    memory_per_replica_bytes: int | None = None
    newest_sample_time: float | None = None
    pods_reporting: int = 0
    problems: tuple[str, ...] = field(default=())  # why something is missing, for status and Events

    @property
    def available(self) -> bool:
        return not self.problems and self.requests_per_second is not None


@dataclass
class _Results:
    """Query results by pod, or the problem that kept each query from answering.

    Each result is indexed by (namespace, pod) once, so that a budget picks its pods' samples by lookup: a
    scan of the whole result per budget would cost budgets x pods per cycle."""

    by_query: dict[str, dict[PodKey, list[Sample]]] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def own(self, promql: str | None, target: Target, pods: frozenset[str] | None = None) -> list[Sample]:
        """The samples of the target's pods (or of these of them) in this query's result (none when it did not
        answer)."""
        by_pod = self.by_query.get(promql, {}) if promql else {}
        return [sample for pod in (target.pods if pods is None else pods)
                for sample in by_pod.get((target.namespace, pod), ())]


def _by_pod(samples: list[Sample]) -> dict[PodKey, list[Sample]]:
    index: dict[PodKey, list[Sample]] = {}
    for sample in samples:
        index.setdefault((sample.label("namespace") or "", sample.label("pod") or ""), []).append(sample)
    return index


async def _run_all(client: PrometheusClient, queries: Iterable[str]) -> _Results:
    unique = sorted(set(queries))

    async def one(promql: str) -> list[Sample] | PrometheusError:
        try:
            return await client.query(promql)
        except PrometheusError as error:
            return error

    answers: list[list[Sample] | PrometheusError] = await asyncio.gather(*(one(q) for q in unique))
    results = _Results()
    for promql, answer in zip(unique, answers, strict=True):
        if isinstance(answer, PrometheusError):
            results.problems[promql] = str(answer)
        else:
            results.by_query[promql] = _by_pod(answer)
    return results


@dataclass(frozen=True)
class _Plan:
    """The queries one target reads, by role."""

    latency: LatencyQuery
    request_rate: str
    token_rate: str | None
    queue: str | None
    memory: str | None
    freshness: str | None


def _plan(target: Target, namespaces: list[str]) -> _Plan:
    window = f"{target.window_seconds}s"
    memory = None
    if target.memory_signal in ("gpu", "container"):
        memory = memory_query(target.memory_signal, namespaces, target.container)
    if target.custom is not None:
        return _custom_plan(target, window)
    preset = PRESETS[target.server]
    return _Plan(preset.latency(target.signal, namespaces, window), preset.request_rate(namespaces, window),
                 preset.token_rate(namespaces, window), preset.queue(namespaces), memory, preset.freshness(namespaces))


def _custom_plan(target: Target, window: str) -> _Plan:
    assert target.custom is not None
    values = {"$namespace": quote(target.namespace)[1:-1], "$pods": regex_any_of(target.pods)[1:-1],
              "$quantile": f"{target.quantile:g}", "$window": window}

    def fill(promql: str | None) -> str | None:
        if promql is None:
            return None
        for placeholder, value in values.items():
            promql = promql.replace(placeholder, value)
        return promql

    request_rate = fill(target.custom.request_rate)
    assert request_rate is not None
    return _Plan(LatencyQuery(fill(target.custom.latency) or "", "value"), request_rate,
                 fill(target.custom.token_rate), fill(target.custom.queue), fill(target.custom.memory), None)


def _summarise(target: Target, plan: _Plan, results: _Results) -> BudgetMetrics:
    essential = (plan.latency.promql, plan.request_rate)
    problems = [results.problems[promql] for promql in essential if promql in results.problems]
    if problems:
        return BudgetMetrics(problems=tuple(problems))
    rate_samples = results.own(plan.request_rate, target)
    if not rate_samples:
        missing = f"no request-rate series for the {len(target.pods)} pod(s) of the target"
        return BudgetMetrics(problems=(missing,))
    latency_samples = results.own(plan.latency.promql, target)
    return BudgetMetrics(
        latency_ms=_latency_ms(plan.latency, latency_samples, target.quantile),
        requests_per_second=sum(s.value for s in rate_samples),
        tokens_per_request=_tokens_per_request(results.own(plan.token_rate, target), rate_samples),
        queue=_total(plan.queue, results, target),
        memory_per_replica_bytes=_largest(plan.memory, results, target),
        newest_sample_time=_newest(plan.freshness, results, target, rate_samples),
        pods_reporting=len({s.label("pod") for s in rate_samples}),
    )


def _latency_ms(query: LatencyQuery, samples: list[Sample], q: float) -> float | None:
    if query.kind == "value":
        values = [s.value for s in samples]
        return max(values) * query.unit_seconds * 1000 if values else None  # the slowest pod, to be safe
    buckets = [(float(le), s.value) for s in samples if (le := s.label("le")) is not None]
    seconds = histogram.quantile(q, buckets)
    return seconds * 1000 if seconds is not None and math.isfinite(seconds) else None


def _total(promql: str | None, results: _Results, target: Target) -> float | None:
    samples = results.own(promql, target)
    return sum(s.value for s in samples) if samples else None


def _tokens_per_request(token_samples: list[Sample], rate_samples: list[Sample]) -> float | None:
    """Tokens over requests of the pods that report both (a pod without token counters would make the requests
    look smaller); None when no pod does or none served a request."""
    with_tokens = {(s.label("namespace"), s.label("pod")) for s in token_samples}
    served = sum(s.value for s in rate_samples if (s.label("namespace"), s.label("pod")) in with_tokens)
    return sum(s.value for s in token_samples) / served if served > 0 else None


def _largest(promql: str | None, results: _Results, target: Target) -> int | None:
    samples = results.own(promql, target, target.variant_pods)
    return int(max(s.value for s in samples)) if samples else None


def _newest(promql: str | None, results: _Results, target: Target, fallback: list[Sample]) -> float:
    """The time of the OLDEST pod's newest sample: one stale pod makes the budget's view stale."""
    samples = results.own(promql, target)
    return min(s.value for s in samples) if samples else min(s.timestamp for s in fallback)


async def observe(client: PrometheusClient, targets: list[Target]) -> dict[str, BudgetMetrics]:
    """BudgetMetrics for every target, from one batch of queries."""
    namespaces = sorted({t.namespace for t in targets})
    plans: dict[str, _Plan] = {}
    unsupported: dict[str, str] = {}
    shared: dict[object, _Plan] = {}  # budgets alike share their queries: built once, not per budget
    for target in targets:
        alike = target.key if target.custom is not None else (  # custom queries name the budget's own pods
            target.server, target.signal, target.window_seconds, target.memory_signal, target.container)
        try:
            if alike not in shared:
                shared[alike] = _plan(target, namespaces)
        except UnsupportedSignal as error:
            unsupported[target.key] = str(error)
            continue
        plans[target.key] = shared[alike]
    wanted = {promql for plan in plans.values()
              for promql in (plan.latency.promql, plan.request_rate, plan.token_rate, plan.queue, plan.memory,
                             plan.freshness)
              if promql}
    results = await _run_all(client, wanted)
    observed = {key: _summarise(t, plans[key], results) for t in targets if (key := t.key) in plans}
    observed.update({key: BudgetMetrics(problems=(problem,)) for key, problem in unsupported.items()})
    return observed

