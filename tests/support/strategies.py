"""Hypothesis strategies for InferenceBudget manifests and for what the engine sees, shared by the fuzz tests.

`valid_manifests()` draws manifests the API server must accept, across every field of the spec.
`invalid_manifests()` breaks one of them in one way (a wrong type, a number out of range, a bad quantity or
decimal, a cross-field rule broken, an unknown field, a required field removed) and says which field the
rejection must name. `edge_manifests()` changes one in ways whose verdict depends on the API server's finer
rules (nulls, integral floats, quantity spellings): only the real API server says what is right for them.
`cycles` and `extreme_cycles` are what the engine is told, cycle after cycle, about a fleet that follows it.

The numbers of examples come from INFERBUDGET_FUZZ_EXAMPLES (default: few enough for the unit tier) and the
examples are derandomized, so that CI is deterministic; a larger number locally searches further.
"""

from __future__ import annotations

import copy
import os
import string
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from inferbudget.api.quantity import parse_quantity
from inferbudget.engine import FailedRollout, Observation

Manifest = dict[str, Any]
FieldPath = tuple[str | int, ...]


def fuzz_settings(default_examples: int) -> settings:
    """Deterministic settings with the number of examples INFERBUDGET_FUZZ_EXAMPLES asks for, if it does."""
    examples = int(os.environ.get("INFERBUDGET_FUZZ_EXAMPLES", default_examples))
    return settings(max_examples=examples, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- values ------------------------------------------------------------------------------------------------

CHARACTERS = st.characters(codec="utf-8")  # what a manifest can hold: no lone surrogates

@cache
def text_up_to(limit: int) -> st.SearchStrategy[str]:
    """Any text within `limit` characters, often short, sometimes right at the limit."""
    at_limit = st.builds(lambda char, length: char * length, CHARACTERS, st.integers(limit - 2, limit))
    return st.one_of(st.text(max_size=min(limit, 24)), at_limit)


@cache
def text_over(limit: int) -> st.SearchStrategy[str]:
    return st.builds(lambda char, extra: char * (limit + extra), CHARACTERS, st.integers(1, 3))


@cache
def floats_between(low: float, high: float, *, open_low: bool = False, open_high: bool = False,
                   ) -> st.SearchStrategy[float | int]:
    """Numbers of a `number` field: floats (subnormals included) and plain integers within the bounds."""
    floats = st.floats(low, high, exclude_min=open_low, exclude_max=open_high, allow_nan=False)
    integers = st.integers(int(low) + (1 if open_low else 0), int(high) - (1 if open_high else 0))
    return st.one_of(floats, integers)


@cache
def integers_between(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from((low, high)), st.integers(low, high))


BINARY_SUFFIXES = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
DECIMAL_SUFFIXES = ("n", "u", "m", "", "k", "M", "G", "T", "P", "E")


@cache
@st.composite
def quantities(draw: st.DrawFn) -> str:
    """Kubernetes quantities in every spelling the grammar allows: 24Gi, +1.5G, .5, 7., 2e9, 1E-3, 0.1n."""
    sign = draw(st.sampled_from(("", "", "", "+")))
    whole = draw(st.text(string.digits, min_size=0, max_size=12))
    fraction = draw(st.one_of(st.none(), st.text(string.digits, max_size=9)))
    if not whole and not fraction:
        whole = draw(st.text(string.digits, min_size=1, max_size=4))
    exponent = st.builds(lambda e, n: f"{e}{n}", st.sampled_from(("e", "E", "e+", "e-", "E-")),
                         st.integers(0, 40))
    suffix = draw(st.one_of(st.sampled_from(BINARY_SUFFIXES + DECIMAL_SUFFIXES), exponent))
    number = whole if fraction is None else f"{whole}.{fraction}"
    return f"{sign}{number}{suffix}"[:64]


@cache
def memory_quantities() -> st.SearchStrategy[str]:
    """Sizes a user would write, as well as every other spelling of the grammar that is above zero (a memory
    size of zero is refused)."""
    usual = st.builds(lambda n, unit: f"{n}{unit}", st.integers(1, 4096), st.sampled_from(("Mi", "Gi", "G")))
    return st.one_of(usual, quantities().filter(lambda text: parse_quantity(text) > 0))


@cache
def resource_quantities() -> st.SearchStrategy[str]:
    """Resource amounts: zero is allowed (a request of nothing), so every spelling of the grammar."""
    return st.one_of(memory_quantities(), quantities())


@cache
@st.composite
def money(draw: st.DrawFn) -> str:
    """Non-negative decimals in quotes: "4", "4.10", "0.000001", up to the 32 characters allowed."""
    whole = draw(st.text(string.digits, min_size=1, max_size=16))
    if draw(st.booleans()):
        return whole
    fraction = draw(st.text(string.digits, min_size=1, max_size=31 - len(whole)))
    return f"{whole}.{fraction}"


@cache
@st.composite
def label_values(draw: st.DrawFn) -> str:
    ends = string.ascii_letters + string.digits
    middle = draw(st.text(ends + "-_.", max_size=61))
    first = draw(st.sampled_from(ends))
    return first if not middle and draw(st.booleans()) else first + middle + draw(st.sampled_from(ends))


# --- valid specs -------------------------------------------------------------------------------------------

def _maybe(draw: st.DrawFn, into: dict[str, Any], key: str, values: st.SearchStrategy[Any]) -> None:
    """Set an optional field about half the time (left out, it takes its default)."""
    if draw(st.booleans()):
        into[key] = draw(values)


@cache
@st.composite
def target_refs(draw: st.DrawFn) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": draw(text_up_to(253))}
    _maybe(draw, ref, "apiVersion", st.sampled_from(("apps/v1", "leaderworkerset.x-k8s.io/v1")) | text_up_to(253))
    _maybe(draw, ref, "kind", st.sampled_from(("Deployment", "StatefulSet")) | text_up_to(63))
    _maybe(draw, ref, "container", text_up_to(63))
    return ref


@cache
@st.composite
def custom_queries(draw: st.DrawFn) -> dict[str, Any]:
    promql = st.sampled_from(('sum by (namespace, pod) (rate(requests_total{pod=~"$pods"}[$window]))',
                              "histogram_quantile($quantile, latency_bucket)")) | text_up_to(4096)
    queries = {"latency": draw(promql), "requestRate": draw(promql)}
    _maybe(draw, queries, "memory", promql)
    _maybe(draw, queries, "queue", promql)
    return queries


@cache
@st.composite
def latency_budgets(draw: st.DrawFn) -> dict[str, Any]:
    latency: dict[str, Any] = {"thresholdMs": draw(integers_between(1, 3_600_000))}
    _maybe(draw, latency, "percentile", floats_between(0, 100, open_low=True, open_high=True))
    _maybe(draw, latency, "signal", st.sampled_from(("e2e", "ttft", "itl", "queue")))
    _maybe(draw, latency, "windowSeconds", integers_between(15, 3600))
    return latency


@cache
@st.composite
def memory_budgets(draw: st.DrawFn) -> dict[str, Any]:
    kinds = draw(st.sampled_from((("maxPerReplica",), ("maxTotal",), ("maxPerReplica", "maxTotal"))))
    memory: dict[str, Any] = {}
    if kinds == ("maxPerReplica", "maxTotal"):  # per replica no larger than the total
        gib = draw(st.integers(1, 1024))
        memory = {"maxPerReplica": f"{gib}Gi", "maxTotal": f"{gib * draw(st.integers(1, 64))}Gi"}
    else:
        memory = {kinds[0]: draw(memory_quantities())}
    _maybe(draw, memory, "signal", st.sampled_from(("gpu", "container", "declared")))
    return memory


@cache
@st.composite
def cost_budgets(draw: st.DrawFn) -> dict[str, Any]:
    cost = {"maxPerHour": draw(money())}
    _maybe(draw, cost, "currency", st.sampled_from(("USD", "EUR", "JPY")) | st.text(string.ascii_uppercase,
                                                                                     min_size=3, max_size=3))
    return cost


@cache
@st.composite
def container_overrides(draw: st.DrawFn) -> dict[str, Any]:
    container: dict[str, Any] = {}
    _maybe(draw, container, "image", text_up_to(512))
    _maybe(draw, container, "args", st.lists(text_up_to(1024), max_size=4))
    env = st.fixed_dictionaries({"name": text_up_to(256)}, optional={"value": text_up_to(4096)})
    _maybe(draw, container, "env", st.lists(env, max_size=3))
    resource_names = st.sampled_from(("cpu", "memory", "nvidia.com/gpu")) | text_up_to(128)
    resources = st.dictionaries(resource_names, resource_quantities(), max_size=4)
    _maybe(draw, container, "resources", st.fixed_dictionaries({}, optional={"limits": resources,
                                                                              "requests": resources}))
    return container


@st.composite
def variant_specs(draw: st.DrawFn, name: str) -> dict[str, Any]:
    variant: dict[str, Any] = {"name": name, "quality": draw(floats_between(0, 1, open_low=True)),
                               "costPerReplicaHour": draw(money()), "memory": draw(memory_quantities())}
    capacity = floats_between(0, 1_000_000, open_low=True) | st.sampled_from((5e-324, 1e-300, 1_000_000))
    _maybe(draw, variant, "capacityHint", st.fixed_dictionaries({"requestsPerSecond": capacity}))
    _maybe(draw, variant, "startupSeconds", integers_between(0, 3600))
    _maybe(draw, variant, "container", container_overrides())
    return variant


@st.composite
def policies(draw: st.DrawFn, best_quality: float, replicas: tuple[int, int]) -> dict[str, Any]:
    """A policy whose quality floor some variant meets and whose fallback lies within the replica bounds."""
    policy: dict[str, Any] = {}
    _maybe(draw, policy, "objective", st.sampled_from(("MinimizeCost", "MaximizeQuality")))
    _maybe(draw, policy, "minQuality", floats_between(0, best_quality))
    _maybe(draw, policy, "scaleUp", st.fixed_dictionaries({}, optional={
        "stabilizationSeconds": integers_between(0, 3600), "maxStepPercent": integers_between(1, 1000),
        "maxStepReplicas": integers_between(1, 1000)}))
    _maybe(draw, policy, "scaleDown", st.fixed_dictionaries({}, optional={
        "stabilizationSeconds": integers_between(0, 86400), "maxStepPercent": integers_between(1, 100)}))
    _maybe(draw, policy, "swap", st.fixed_dictionaries({}, optional={
        "cooldownSeconds": integers_between(0, 86400), "sustainSeconds": integers_between(0, 3600),
        "failureBackoffSeconds": integers_between(0, 604800)}))
    missing: dict[str, Any] = {}
    _maybe(draw, missing, "action", st.sampled_from(("Hold", "Fallback")))
    if missing.get("action") == "Fallback" or draw(st.booleans()):
        missing["fallbackReplicas"] = draw(integers_between(*replicas))
    _maybe(draw, missing, "afterSeconds", integers_between(0, 86400))
    _maybe(draw, missing, "staleAfterSeconds", integers_between(15, 3600))
    _maybe(draw, policy, "whenMetricsMissing", st.just(missing))
    return policy


@cache
@st.composite
def prometheus_sources(draw: st.DrawFn) -> dict[str, Any]:
    source: dict[str, Any] = {}
    host = st.text(string.ascii_lowercase + string.digits + ".-:", min_size=1, max_size=40)
    url = st.builds(lambda scheme, h, rest: f"{scheme}://{h}{rest}", st.sampled_from(("http", "https")), host,
                    st.sampled_from(("", "/", "/prometheus", "?x=1")))
    _maybe(draw, source, "url", url)
    secret = st.fixed_dictionaries({"name": text_up_to(253), "key": text_up_to(253)})
    _maybe(draw, source, "bearerTokenSecretRef", secret)
    _maybe(draw, source, "caSecretRef", secret)
    _maybe(draw, source, "timeoutSeconds", floats_between(0, 120, open_low=True))
    return source


@cache
@st.composite
def valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A spec the API server accepts, as a manifest spells it (camelCase; optional fields left out or set)."""
    names = draw(st.lists(label_values(), min_size=1, max_size=4, unique=True))
    variants = [draw(variant_specs(name)) for name in names]
    spec: dict[str, Any] = {"targetRef": draw(target_refs()), "latency": draw(latency_budgets()),
                            "variants": variants}
    server = draw(st.sampled_from(("vllm", "tgi", "triton", "custom", None)))
    if server is not None:
        spec["server"] = server
    if server == "custom":
        spec["queries"] = draw(custom_queries())
    low = draw(integers_between(1, 1000))
    replicas = (low, draw(integers_between(low, 1000)))
    if draw(st.booleans()):
        spec["replicas"] = {"min": replicas[0], "max": replicas[1]}
    else:
        replicas = (1, 10)
    _maybe(draw, spec, "memory", memory_budgets())
    _maybe(draw, spec, "cost", cost_budgets())
    _maybe(draw, spec, "policy", policies(max(v["quality"] for v in variants), replicas))
    _maybe(draw, spec, "mode", st.sampled_from(("Enforce", "Advise")))
    _maybe(draw, spec, "paused", st.booleans())
    _maybe(draw, spec, "prometheus", prometheus_sources())
    return spec


def manifest_of(spec: dict[str, Any], name: str = "fuzzed") -> Manifest:
    return {"apiVersion": "inferbudget.io/v1alpha1", "kind": "InferenceBudget", "metadata": {"name": name},
            "spec": spec}


@cache
def valid_manifests() -> st.SearchStrategy[Manifest]:
    return valid_specs().map(manifest_of)


# --- paths in a manifest -----------------------------------------------------------------------------------

def path_text(path: FieldPath) -> str:
    """("spec", "variants", 0, "name") -> "spec.variants[0].name", as the API server writes field paths."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def nodes(value: Any, path: FieldPath = ()) -> list[tuple[FieldPath, Any]]:
    """Every (path, value) under value, value itself included."""
    found = [(path, value)]
    if isinstance(value, dict):
        for key, item in value.items():
            found += nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += nodes(item, (*path, index))
    return found


def at(value: Any, path: FieldPath) -> Any:
    for part in path:
        value = value[part]
    return value


def with_value(manifest: Manifest, path: FieldPath, value: Any) -> Manifest:
    changed = copy.deepcopy(manifest)
    parent = at(changed, path[:-1])
    parent[path[-1]] = value
    return changed


def without(manifest: Manifest, path: FieldPath) -> Manifest:
    changed = copy.deepcopy(manifest)
    del at(changed, path[:-1])[path[-1]]
    return changed


def _in_maps(path: FieldPath) -> bool:
    """Keys of resources.limits/requests are names the user chooses, not fields."""
    return any(part in ("limits", "requests") for part in path[:-1])


# --- invalid manifests -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Mutant:
    """A valid manifest broken in one way; the rejection must name `path` (or a field inside or above it)."""

    manifest: Manifest
    mutation: str
    path: str


Mutation = Callable[[st.DrawFn, Manifest], Mutant]


NUMBER_FIELDS = ("percentile", "quality", "requestsPerSecond", "minQuality", "timeoutSeconds")


def _other_type_values(path: FieldPath, value: Any) -> st.SearchStrategy[Any]:
    """JSON values of another type than the field's: no integer for an integer or number field, and no
    fraction for a number field (`number` fields take both)."""
    kinds: dict[str, st.SearchStrategy[Any]] = {
        "string": st.text(max_size=5), "boolean": st.booleans(), "array": st.lists(st.integers(0, 3), max_size=2),
        "object": st.dictionaries(st.sampled_from(("a", "b")), st.integers(0, 3), max_size=1),
        "integer": st.integers(-3, 3), "fraction": st.sampled_from((0.5, -1.25, 1e-3))}
    taken = {str: {"string"}, bool: {"boolean"}, list: {"array"}, dict: {"object"}}.get(type(value), {"integer"})
    if isinstance(value, float) or path[-1] in NUMBER_FIELDS:
        taken = {"integer", "fraction"}
    return st.one_of([strategy for kind, strategy in kinds.items() if kind not in taken])


def wrong_type(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    spec_nodes = [(path, value) for path, value in nodes(manifest["spec"], ("spec",)) if len(path) > 1]
    path, value = draw(st.sampled_from(spec_nodes))
    replacement = draw(_other_type_values(path, value))
    return Mutant(with_value(manifest, path, replacement), f"{path_text(path)}: {value!r} -> {replacement!r}",
                  path_text(path))


def unknown_field(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    objects = [path for path, value in nodes(manifest) if isinstance(value, dict)
               and path[:1] != ("metadata",) and not _in_maps((*path, "x"))]
    path = draw(st.sampled_from(objects))
    existing = at(manifest, path)
    key = draw(st.one_of(st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=12),
                         st.sampled_from([key.lower() for key in existing] + [key.upper() for key in existing]
                                         or ["Name"])).filter(lambda k: k not in existing and k != "status"))
    named = path_text((*path, key))
    if not path and key.lower() in ("apiversion", "kind"):  # read case-insensitively as those, and not a string
        named = {"apiversion": "apiVersion", "kind": "kind"}[key.lower()]
    return Mutant(with_value(manifest, (*path, key), 1), f"unknown field {key!r} in {path_text(path)}", named)


REQUIRED = ("targetRef", "latency", "variants", "name", "thresholdMs", "quality", "costPerReplicaHour", "memory",
            "requestsPerSecond", "maxPerHour", "key", "requestRate")


def required_field_removed(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    """Remove a field the schema requires (a variant's memory, not spec.memory, which is optional)."""
    def required(path: FieldPath) -> bool:
        if not path or path[-1] not in REQUIRED or _in_maps(path) or path[0] != "spec":
            return False
        if path[-1] == "memory":
            return len(path) == 4 and path[1] == "variants"
        if path[-1] == "latency":
            return path == ("spec", "latency") or path[-2] == "queries"
        if path[-1] == "name":
            return "env" in path or path[-2] in ("targetRef", "bearerTokenSecretRef", "caSecretRef") or (
                len(path) == 4 and path[1] == "variants")
        return True
    candidates = [path for path, _ in nodes(manifest) if required(path)]
    path = draw(st.sampled_from(candidates))
    return Mutant(without(manifest, path), f"{path_text(path)} removed", path_text(path))


# Fields with bounds, and values just outside them: (path in the spec, the values, what they break).
OUT_OF_RANGE: tuple[tuple[FieldPath, tuple[Any, ...]], ...] = (
    (("latency", "thresholdMs"), (0, -1, 3_600_001, 10**12, 2**63, -(2**63) - 1, 1e16, 3.5)),
    (("latency", "percentile"), (0, 100, -0.5, 100.0001, 1e300)),
    (("latency", "windowSeconds"), (14, 3601)),
    (("replicas", "min"), (0, -1, 1001)),
    (("replicas", "max"), (0, 1001)),
    (("variants", 0, "quality"), (0, -0.1, 1.0000001, 2)),
    (("variants", 0, "startupSeconds"), (-1, 3601)),
    (("variants", 0, "capacityHint", "requestsPerSecond"), (0, -1.5, 1_000_000.5)),
    (("policy", "minQuality"), (-0.01, 1.5)),
    (("policy", "scaleUp", "stabilizationSeconds"), (-1, 3601)),
    (("policy", "scaleUp", "maxStepPercent"), (0, 1001)),
    (("policy", "scaleUp", "maxStepReplicas"), (0, 1001)),
    (("policy", "scaleDown", "stabilizationSeconds"), (-1, 86401)),
    (("policy", "scaleDown", "maxStepPercent"), (0, 101)),
    (("policy", "swap", "cooldownSeconds"), (-1, 86401)),
    (("policy", "swap", "sustainSeconds"), (-1, 3601)),
    (("policy", "swap", "failureBackoffSeconds"), (-1, 604801)),
    (("policy", "whenMetricsMissing", "afterSeconds"), (-1, 86401)),
    (("policy", "whenMetricsMissing", "staleAfterSeconds"), (14, 3601)),
    (("prometheus", "timeoutSeconds"), (0, -1, 120.5)),
)
ENUMS: tuple[FieldPath, ...] = (("server",), ("mode",), ("latency", "signal"), ("memory", "signal"),
                           ("policy", "objective"), ("policy", "whenMetricsMissing", "action"))
NOT_QUANTITIES = ("", "24 Gi", "24GB", "1.5.5", "abc", "1e", "0x10", "1Ki2", "--1", "1e1.5", "\u0661Gi", ".e-20", " 1")
NOT_MONEY = ("", "-1", "1.", ".5", "1e3", "1,50", " 1", "1.5 ", "$4", "1.2.3", "0x1", "\u0661", "4.10\n")
TOO_LONG: tuple[tuple[FieldPath, int], ...] = (
    (("targetRef", "name"), 253), (("targetRef", "kind"), 63), (("targetRef", "container"), 63),
    (("variants", 0, "name"), 63), (("variants", 0, "memory"), 64), (("variants", 0, "costPerReplicaHour"), 32),
    (("variants", 0, "container", "image"), 512), (("cost", "currency"), 3), (("prometheus", "url"), 2048),
    (("queries", "latency"), 4096))


def _spec_path(path: FieldPath) -> FieldPath:
    return ("spec", *path)


def _ensure(manifest: Manifest, path: FieldPath, filler: Any) -> Manifest:
    """The manifest with every object on the way to path present (missing ones added as {}), and path set to
    filler if it is absent, so that a mutation of an optional field has something to change."""
    changed = copy.deepcopy(manifest)
    node: Any = changed  # a mapping or, at a list index, a list
    for part in path[:-1]:
        if isinstance(part, str) and part not in node:
            node[part] = {}
        node = node[part]
    node.setdefault(path[-1], filler)
    return changed


def out_of_range(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    path, values = draw(st.sampled_from(OUT_OF_RANGE))
    value = draw(st.sampled_from(values))
    full = _spec_path(path)
    broken = with_value(_ensure(manifest, full, 1), full, value)
    return _mutant(broken, f"{path_text(full)}: {value!r} is out of range", full)


def _mutant(manifest: Manifest, mutation: str, path: FieldPath) -> Mutant:
    return Mutant(_consistent(manifest), mutation, path_text(path))


def _consistent(manifest: Manifest) -> Manifest:
    """Keep the cross-field rules a mutation did not aim at: custom server with queries, and a fallback within
    the bounds (only when those bounds are themselves valid)."""
    spec = manifest["spec"]
    if "queries" in spec:
        spec["server"] = "custom"
    replicas = spec.get("replicas", {})
    low, high = replicas.get("min", 1), replicas.get("max", 10)
    missing = spec.get("policy", {}).get("whenMetricsMissing", {})
    fits = all(isinstance(n, int) and 1 <= n <= 1000 for n in (low, high)) and low <= high
    if fits and "fallbackReplicas" in missing:
        missing["fallbackReplicas"] = low
    return manifest


def not_in_enum(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    path = _spec_path(draw(st.sampled_from(ENUMS)))
    value = draw(st.sampled_from(("", "enforce", "VLLM", "other", " Hold")))
    return _mutant(with_value(_ensure(manifest, path, ""), path, value), f"{path_text(path)}: {value!r}", path)


def bad_quantity(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    where = draw(st.sampled_from((("variants", 0, "memory"), ("memory", "maxPerReplica"), ("memory", "maxTotal"),
                                  ("variants", 0, "container", "resources", "limits", "nvidia.com/gpu"))))
    below = ("-1", "-24Gi", "-0.5") if where[-1] == "nvidia.com/gpu" else ("0", "0Gi", "-24Gi", "-1", "+0.0")
    value = draw(st.sampled_from(NOT_QUANTITIES + below))
    path = _spec_path(where)
    return _mutant(with_value(_ensure(manifest, path, "1"), path, value), f"{path_text(path)}: {value!r}", path)


def bad_money(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    path = _spec_path(draw(st.sampled_from((("variants", 0, "costPerReplicaHour"), ("cost", "maxPerHour")))))
    value = draw(st.sampled_from(NOT_MONEY) | text_over(32).map(lambda t: "1" * len(t)))
    return _mutant(with_value(_ensure(manifest, path, "1"), path, value), f"{path_text(path)}: {value!r}", path)


def too_long(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    where, limit = draw(st.sampled_from(TOO_LONG))
    path = _spec_path(where)
    value = {"url": "http://" + "x" * limit, "currency": "X" * (limit + 1), "memory": "1" * (limit + 1),
             "costPerReplicaHour": "1" * (limit + 1)}.get(str(where[-1]), "a" * (limit + 1))
    return _mutant(with_value(_ensure(manifest, path, ""), path, value), f"{path_text(path)} too long", path)


def bad_resources(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    """A resource name longer than the model takes, or more resources than the schema allows."""
    kind = draw(st.sampled_from(("limits", "requests")))
    long_name = draw(text_over(128))
    entries = draw(st.sampled_from(({long_name: "1"}, {f"r{index}": "1" for index in range(17)})))
    path = ("spec", "variants", 0, "container", "resources", kind)
    return _mutant(with_value(_ensure(manifest, path, {}), path, entries), f"{kind}: {len(entries)} entries", path)


def bad_metadata(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    """A name that is not a DNS subdomain, or a misspelt metadata field."""
    if draw(st.booleans()):
        return Mutant({**manifest, "metadata": {"name": "fuzzed", "lables": {}}}, "metadata.lables", "metadata.lables")
    name = draw(st.sampled_from(("", "Upper", "a_b", "-a", "a-", "a..b", "a" * 254, "a b", "\u00e4")))
    return Mutant({**manifest, "metadata": {"name": name}}, f"metadata.name {name!r}", "metadata.name")


def too_many_variants(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    first = manifest["spec"]["variants"][0]
    variants = [{**first, "name": f"v{index}"} for index in range(17)]
    return _mutant(with_value(manifest, ("spec", "variants"), variants), "17 variants", ("spec", "variants"))


def no_variants(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    return _mutant(with_value(manifest, ("spec", "variants"), []), "no variants", ("spec", "variants"))


def bad_variant_name(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    value = draw(st.sampled_from(("", "-a", "a-", "a b", "a/b", "ä", "a\n", ".", "_x")))
    path = ("spec", "variants", 0, "name")
    return _mutant(with_value(manifest, path, value), f"variant name {value!r}", path)


def _cross_field(draw: st.DrawFn, manifest: Manifest) -> tuple[Manifest, str, FieldPath]:
    """Break one rule that relates several fields; the path is where the API server reports it."""
    spec = copy.deepcopy(manifest)["spec"]
    rule = draw(st.sampled_from(("memory-empty", "memory-order", "currency", "replicas", "fallback-missing",
                                 "fallback-range", "url", "duplicate-names", "min-quality", "custom-no-queries",
                                 "queries-not-custom")))
    if rule == "memory-empty":
        spec["memory"] = dict(draw(st.sampled_from(({}, {"signal": "gpu"}))))
        where: FieldPath = ("memory",)
    elif rule == "memory-order":
        small = draw(st.integers(1, 100))
        spec["memory"] = {"maxPerReplica": f"{small + 1}Gi", "maxTotal": f"{small}Gi"}
        where = ("memory", "maxPerReplica")
    elif rule == "currency":
        spec["cost"] = {"maxPerHour": "1", "currency": draw(st.sampled_from(("usd", "US", "U$D", "12")))}
        where = ("cost", "currency")
    elif rule == "replicas":
        low = draw(st.integers(2, 1000))
        spec["replicas"] = {"min": low, "max": draw(st.integers(1, low - 1))}
        spec.get("policy", {}).get("whenMetricsMissing", {}).pop("fallbackReplicas", None)
        where = ("replicas",)
    elif rule == "fallback-missing":
        spec.setdefault("policy", {})["whenMetricsMissing"] = {"action": "Fallback"}
        where = ("policy", "whenMetricsMissing", "fallbackReplicas")
    elif rule == "fallback-range":
        spec["replicas"] = {"min": 2, "max": 5}
        spec.setdefault("policy", {})["whenMetricsMissing"] = {"fallbackReplicas": draw(st.sampled_from((1, 6)))}
        where = ("policy", "whenMetricsMissing", "fallbackReplicas")
    elif rule == "url":
        spec["prometheus"] = {"url": draw(st.sampled_from(("prometheus:9090", "ftp://x", "http://", "https:///x",
                                                           "HTTP://x", " http://x")))}
        where = ("prometheus", "url")
    elif rule == "duplicate-names":
        spec["variants"] = [*spec["variants"], {**spec["variants"][0]}]
        where = ("variants",)
    elif rule == "min-quality":
        best = max(v["quality"] for v in spec["variants"])
        if best >= 1:
            spec["variants"] = [{**v, "quality": 0.5} for v in spec["variants"]]
            best = 0.5
        spec.setdefault("policy", {})["minQuality"] = draw(st.floats(best, 1, exclude_min=True))
        where = ("policy", "minQuality")
    elif rule == "custom-no-queries":
        spec["server"] = "custom"
        spec.pop("queries", None)
        where = ("queries",)
    else:
        spec["server"] = draw(st.sampled_from(("vllm", "tgi", "triton")))
        spec["queries"] = {"latency": "up", "requestRate": "up"}
        where = ("queries",)
    return {**manifest, "spec": spec}, rule, where


def cross_field(draw: st.DrawFn, manifest: Manifest) -> Mutant:
    broken, rule, where = _cross_field(draw, manifest)
    return Mutant(broken, f"cross-field rule {rule}", path_text(_spec_path(where)))


MUTATIONS: tuple[Mutation, ...] = (wrong_type, unknown_field, required_field_removed, out_of_range, not_in_enum,
                                   bad_quantity, bad_money, too_long, bad_resources, too_many_variants, no_variants,
                                   bad_variant_name, cross_field, bad_metadata)


@cache
@st.composite
def invalid_manifests(draw: st.DrawFn) -> Mutant:
    """A valid manifest broken in one way, with the field the rejection must name."""
    mutation = draw(st.sampled_from(MUTATIONS))
    return mutation(draw, draw(valid_manifests()))


# --- manifests whose verdict only the API server knows -----------------------------------------------------

@cache
@st.composite
def edge_manifests(draw: st.DrawFn) -> Manifest:
    """A valid manifest with one change the API server has finer rules for: a field set to null (pruned, then
    defaulted or missing), an integer written as 1.0, a key removed, a quantity spelled oddly, a string with a
    trailing newline."""
    manifest = draw(valid_manifests())
    spec_nodes = [(path, value) for path, value in nodes(manifest["spec"], ("spec",)) if len(path) > 1]
    path, value = draw(st.sampled_from(spec_nodes))
    change = draw(st.sampled_from(("null", "integral-float", "remove", "quantity", "newline", "status")))
    if change == "status":  # dropped on create, but decoded first: unknown fields in it count
        return {**manifest, "status": draw(st.sampled_from(({"observedGeneration": "x"}, {"foo": 1}, 5, None, [],
                                                            {"learned": {"a": {"samples": -1}}})))}
    if change == "null":
        return with_value(manifest, path, None)
    if change == "integral-float" and isinstance(value, int) and not isinstance(value, bool):
        return with_value(manifest, path, float(value))
    if change == "remove" and isinstance(path[-1], str):
        return without(manifest, path)
    if change == "quantity":
        odd = draw(st.sampled_from(("+", "-", ".", "+.", "-.5", "1.", "0.5n", "0.9n", "9Ei", "100Ei", "1e400",
                                    "1e4294967296", "1e-20", "1E", "1K", "1ki", "1e+3", "0e0", "00001"))
                   | quantities())
        spec = manifest["spec"]
        target = draw(st.sampled_from(("variant", "per-replica", "total", "both")))
        if target == "variant":
            spec["variants"][0]["memory"] = odd
        elif target == "both":
            spec["memory"] = {"maxPerReplica": odd, "maxTotal": draw(st.sampled_from(("9.3e18", "1n", "1", "0.5n"))
                                                                        | quantities())}
        else:
            spec["memory"] = {"maxPerReplica" if target == "per-replica" else "maxTotal": odd}
        return manifest
    if change == "newline" and isinstance(value, str):
        return with_value(manifest, path, value + "\n")
    return manifest


@cache
def any_manifests() -> st.SearchStrategy[Manifest]:
    return st.one_of(valid_manifests(), invalid_manifests().map(lambda mutant: mutant.manifest), edge_manifests())


# --- what the engine sees ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cycle:
    """One cycle of a history: the time since the previous one and what the metrics say. The fleet itself (its
    variant and replicas) follows the engine's decisions: see observed()."""

    seconds: float
    rps: float | None  # None: metrics missing
    latency_ms: float | None
    rollout: bool
    sample_age: float = 0.0  # of the newest sample: beyond whenMetricsMissing.staleAfterSeconds it is stale
    memory_bytes: int | None = None
    not_ready: int = 0  # replicas not Ready (yet)
    failed_rollout: bool = False  # the running variant's rollout failed this cycle
    backend_down: bool = False  # Prometheus could not be queried at all
    tokens: float | None = None  # prompt + generated tokens per request (None: no token rate)


def observed(cycle: Cycle, variant: str | None, replicas: int, now: float) -> Observation:
    """What the engine is told in this cycle about a fleet running `replicas` of `variant`."""
    failed = FailedRollout(variant=variant, failed_at=now) if cycle.failed_rollout and variant else None
    return Observation(sampled_at=now - cycle.sample_age if cycle.rps is not None else None,
                       requests_per_second=cycle.rps, latency_ms=cycle.latency_ms,
                       memory_per_replica_bytes=cycle.memory_bytes, variant=variant, desired_replicas=replicas,
                       ready_replicas=max(replicas - cycle.not_ready, 0), rollout_in_progress=cycle.rollout,
                       failed_rollout=failed, metrics_available=cycle.rps is not None and not cycle.backend_down,
                       tokens_per_request=cycle.tokens)


cycles = st.builds(  # a plausible fleet: the engine's property tests
    Cycle,
    seconds=st.sampled_from((15.0, 30.0)),
    rps=st.one_of(st.none(), st.floats(0, 80, allow_nan=False)),
    latency_ms=st.one_of(st.none(), st.floats(50, 5000, allow_nan=False)),
    rollout=st.sampled_from((False, False, False, True)),
    sample_age=st.sampled_from((0.0,) * 6 + (200.0, 4000.0)),  # stale beyond staleAfterSeconds (default 180 s)
    tokens=st.one_of(st.none(), st.floats(50, 20_000)),
)
EXTREMES = st.sampled_from((0.0, 5e-324, 1e-300, 1e300, sys.float_info.max))
extreme_cycles = st.builds(  # any figures a broken exporter or a huge fleet could give, NaN and inf aside
    Cycle,
    seconds=st.sampled_from((0.0, 0.001, 15.0, 15.0, 30.0, 3600.0, 1e6)),
    rps=st.one_of(st.none(), st.floats(0, 100), st.floats(0, 1e12), EXTREMES),
    latency_ms=st.one_of(st.none(), st.floats(10, 5000), st.floats(0, 1e9), EXTREMES),
    rollout=st.sampled_from((False, False, False, True)),
    sample_age=st.sampled_from((0.0, 0.0, 0.0, 5.0, 200.0, 1e6, -60.0)),  # -60: a clock ahead of ours
    memory_bytes=st.one_of(st.none(), st.integers(0, 2**63 - 1)),
    not_ready=st.sampled_from((0, 0, 0, 1, 1000)),
    failed_rollout=st.sampled_from((False,) * 9 + (True,)),
    backend_down=st.sampled_from((False,) * 9 + (True,)),
    tokens=st.one_of(st.none(), st.floats(0, 1e12), EXTREMES),
)


# --- cases the fuzzing found -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Found:
    """A manifest on which `inferbudget validate` once disagreed with the API server (or raised), and the
    fields the API server names in rejecting it (none: it accepts it)."""

    what: str
    manifest: Manifest
    fields: frozenset[str] = frozenset()


def _variant(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "a", "quality": 0.5, "costPerReplicaHour": "1", "memory": "1Gi", **fields}]


def _minimal(**spec: Any) -> Manifest:
    return manifest_of({"targetRef": {"name": "llm"}, "latency": {"thresholdMs": 800}, "variants": _variant(),
                        **spec})


FOUND: tuple[Found, ...] = (
    Found("a null field is dropped, then defaulted", _minimal(replicas=None)),
    Found("a null required field is missing", _minimal(latency={"thresholdMs": None}),
          frozenset({"spec.latency.thresholdMs"})),
    Found("a null map entry is dropped",
          _minimal(variants=_variant(container={"resources": {"limits": {"cpu": None}}}))),
    Found("a unit without digits is zero", _minimal(variants=_variant(container={"resources": {"limits": {
        "cpu": "Gi"}}}))),
    Found("a sign and a point are zero", _minimal(variants=_variant(container={"resources": {"requests": {
        "cpu": "+."}}}))),
    Found("a memory size of zero is refused", _minimal(variants=_variant(memory="Gi")),
          frozenset({"spec.variants[0].memory"})),
    Found("a memory budget of zero is refused", _minimal(memory={"maxPerReplica": "+."}),
          frozenset({"spec.memory.maxPerReplica"})),
    Found("a negative resource is refused", _minimal(variants=_variant(container={"resources": {"limits": {
        "nvidia.com/gpu": "-1"}}})), frozenset({"spec.variants[0].container.resources.limits[nvidia.com/gpu]"})),
    Found("finer than a nano needs a digit", _minimal(memory={"maxPerReplica": ".e-20"}),
          frozenset({"spec.memory.maxPerReplica"})),
    Found("below a nano rounds up to 1n", _minimal(memory={"maxPerReplica": "0.9n", "maxTotal": "0.5n"})),
    Found("binary units stop at 2**63-1", _minimal(memory={"maxPerReplica": "9Ei", "maxTotal": "9.3e18"})),
    Found("an exponent wraps at 32 bits (validate raised decimal.Overflow)",
          _minimal(memory={"maxPerReplica": "1e4294967296", "maxTotal": "2"})),
    Found("an exponent wraps at 32 bits, 2**32+1 is 1",
          _minimal(memory={"maxPerReplica": "1e4294967297", "maxTotal": "2"}),
          frozenset({"spec.memory.maxPerReplica"})),
    Found("an integer written 800.0 is an integer", _minimal(latency={"thresholdMs": 800.0})),
    Found("a rule cannot read an integer written 2.0", _minimal(replicas={"min": 2.0, "max": 5}),
          frozenset({"spec.replicas"})),
    Found("too few items does not stop the rules (and no variants is not a quality floor too high)",
          _minimal(variants=[], replicas={"min": 3, "max": 2}), frozenset({"spec.variants", "spec.replicas"})),
    Found("out of range does not stop the rules",
          _minimal(latency={"thresholdMs": 0}, replicas={"min": 3, "max": 2}),
          frozenset({"spec.latency.thresholdMs", "spec.replicas"})),
    Found("the schema check names a map entry with a dot",
          _minimal(variants=_variant(container={"resources": {"limits": {"a": 1}}})),
          frozenset({"spec.variants[0].container.resources.limits.a"})),
    Found("quantity() of a non-quantity fails where the rule is",
          _minimal(memory={"maxPerReplica": "abc", "maxTotal": "1Gi"}),
          frozenset({"spec.memory", "spec.memory.maxPerReplica"})),
    Found("a resource name the model refuses (the operator could not read the budget)",
          _minimal(variants=_variant(container={"resources": {"limits": {"x" * 129: "1"}}})),
          frozenset({"spec.variants[0].container.resources.limits"})),
    Found("a status sent with the object is dropped", {**_minimal(), "status": {"observedGeneration": "x"}}),
    Found("but its unknown fields are refused first", {**_minimal(), "status": {"foo": 1}},
          frozenset({"status.foo"})),
    Found("metadata is decoded strictly too", {**_minimal(), "metadata": {"name": "x", "lables": {"a": "b"}}},
          frozenset({"metadata.lables"})),
    Found("label keys and values may hold '-', '_' and '.' and a DNS prefix",
          {**_minimal(), "metadata": {"name": "x", "labels": {"example.com/Team_a.b-c": "A.b_c-1", "empty": ""},
                                      "annotations": {"inferbudget.io/note": "any text at all: !?"}}}),
    Found("a label key with a space", {**_minimal(), "metadata": {"name": "x", "labels": {"team a": "x"}}},
          frozenset({"metadata.labels"})),
    Found("a label value ending in '-'", {**_minimal(), "metadata": {"name": "x", "labels": {"team": "a-"}}},
          frozenset({"metadata.labels"})),
    Found("a label value over 63 characters", {**_minimal(), "metadata": {"name": "x", "labels": {"t": "a" * 64}}},
          frozenset({"metadata.labels"})),
    Found("an annotation key is checked in lower case",
          {**_minimal(), "metadata": {"name": "x", "annotations": {"Example.com/Note": "x"}}}),
    Found("an annotation key with a space", {**_minimal(), "metadata": {"name": "x", "annotations": {"a b": "x"}}},
          frozenset({"metadata.annotations"})),
    Found("a label key with an upper-case prefix",
          {**_minimal(), "metadata": {"name": "x", "labels": {"Example.com/team": "x"}}},
          frozenset({"metadata.labels"})),
    Found("a key with two slashes", {**_minimal(), "metadata": {"name": "x", "labels": {"a/b/c": "x"}}},
          frozenset({"metadata.labels"})),
    Found("apiVersion is read case-insensitively first", {**_minimal(), "apiversion": 1}, frozenset({"apiVersion"})),
)
