"""The budget a simulation runs against: plain data, read from an InferenceBudget manifest or its spec."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from inferbudget.api.quantity import QuantityError, parse_bytes
from inferbudget.sim.fleet import FleetProfile, VariantModel

DEFAULT_BUDGET = "llama-3.1-8b-chat.yaml"


class BudgetError(ValueError):
    """A budget the simulator cannot use; the message names the field."""


@dataclass(frozen=True, slots=True)
class DeclaredVariant:
    """What the budget declares about one of its variants; None where it declares nothing.

    The replay bills the declared price and counts the declared quality, as the operator does (a negotiated price,
    a team's own evaluation); the engine starts from the declared capacity hint and start-up time, as it does in
    a cluster, and learns what the simulated fleet really shows. The profile supplies whatever is not declared.
    """

    quality: float | None = None
    price_per_hour: float | None = None
    capacity_rps: float | None = None
    startup_s: float | None = None


@dataclass(frozen=True, slots=True)
class SimBudget:
    """What an InferenceBudget asks for, as the simulator needs it.

    `attainment_target` is not part of the resource: it is the share of requests that must meet the latency
    threshold for a run to count as meeting the SLO (baseline tuning and the oracle use it).
    """

    latency_percentile: float = 95.0
    latency_threshold_ms: float = 2000.0
    latency_signal: str = "e2e"  # e2e | ttft | itl | queue
    latency_window_s: int = 60  # latency.windowSeconds: the range the engine reads rate and percentile over
    replicas_min: int = 1
    replicas_max: int = 8
    min_quality: float = 0.0
    max_cost_per_hour: float | None = None
    max_memory_per_replica_gib: float | None = None
    max_memory_total_gib: float | None = None
    variants: tuple[str, ...] = ()  # allowed variant names, best quality first; empty = every profile variant
    declared: Mapping[str, DeclaredVariant] = field(default_factory=dict)  # by variant name
    objective: str = "MinimizeCost"
    attainment_target: float = 0.99
    extra: Mapping[str, Any] = field(default_factory=dict)  # the spec's other fields, for the engine adapter

    def __post_init__(self) -> None:
        if not 0 < self.latency_percentile < 100:
            raise BudgetError("latency.percentile must be between 0 and 100")
        if self.latency_threshold_ms <= 0:
            raise BudgetError("latency.thresholdMs must be positive")
        if self.latency_signal not in ("e2e", "ttft", "itl", "queue"):
            raise BudgetError(f"latency.signal {self.latency_signal!r} is not one of e2e, ttft, itl, queue")
        if self.replicas_min < 0 or self.replicas_max < max(self.replicas_min, 1):
            raise BudgetError("replicas: need 0 <= min <= max and max >= 1")

    def replica_cap(self, model: VariantModel) -> int:
        """Most replicas of the variant within replicas.max, the cost ceiling and memory.maxTotal."""
        cap = self.replicas_max
        if self.max_cost_per_hour is not None and model.price_per_hour > 0:
            cap = min(cap, math.floor(self.max_cost_per_hour / model.price_per_hour + 1e-9))
        if self.max_memory_total_gib is not None and model.memory_gib > 0:
            cap = min(cap, math.floor(self.max_memory_total_gib / model.memory_gib + 1e-9))
        return max(cap, 0)

    @property
    def threshold_s(self) -> float:
        return self.latency_threshold_ms / 1000.0

    @property
    def quantile(self) -> float:
        return self.latency_percentile / 100.0

    @classmethod
    def from_spec(cls, spec: Any, *, attainment_target: float = 0.99) -> SimBudget:
        """From an InferenceBudget spec: a mapping in the manifest's camelCase shape, or a model with model_dump."""
        data = _as_mapping(spec)
        latency = _section(data, "latency")
        replicas = _section(data, "replicas")
        policy = _section(data, "policy")
        cost = _section(data, "cost")
        memory = _section(data, "memory")
        try:
            return cls(
                latency_percentile=float(latency.get("percentile", 95)),
                latency_threshold_ms=float(latency["thresholdMs"]),
                latency_signal=str(latency.get("signal", "e2e")),
                latency_window_s=int(latency.get("windowSeconds", 60)),
                replicas_min=int(replicas.get("min", 1)),
                replicas_max=int(replicas.get("max", 8)),
                min_quality=float(policy.get("minQuality", 0.0)),
                max_cost_per_hour=_money(cost.get("maxPerHour")),
                max_memory_per_replica_gib=_gib(memory.get("maxPerReplica"), "memory.maxPerReplica"),
                max_memory_total_gib=_gib(memory.get("maxTotal"), "memory.maxTotal"),
                variants=tuple(str(_as_mapping(item)["name"]) for item in data.get("variants", [])),
                declared={str(_as_mapping(item)["name"]): _declared(_as_mapping(item))
                          for item in data.get("variants", [])},
                objective=str(policy.get("objective", "MinimizeCost")),
                attainment_target=attainment_target,
                extra={key: value for key, value in data.items() if key not in _READ_FIELDS},
            )
        except KeyError as missing:
            raise BudgetError(f"budget spec is missing {missing.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            if isinstance(error, BudgetError):
                raise
            raise BudgetError(f"budget spec has a malformed value: {error}") from None


_READ_FIELDS = ("latency", "replicas", "cost", "memory", "variants")


def load_budget(path: str | Path | None = None, *, attainment_target: float = 0.99) -> SimBudget:
    """An InferenceBudget manifest (or a bare spec) from YAML; default: the shipped example budget."""
    source = Path(path) if path is not None else default_budget_path()
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise BudgetError(f"{source}: cannot read budget: {error}") from None
    if not isinstance(document, dict):
        raise BudgetError(f"{source}: expected an InferenceBudget manifest or its spec")
    spec = document.get("spec", document)
    try:
        return SimBudget.from_spec(spec, attainment_target=attainment_target)
    except BudgetError as error:
        raise BudgetError(f"{source}: {error}") from None


def default_budget_path() -> Path:
    return Path(str(resources.files("inferbudget").joinpath("data", "budgets", DEFAULT_BUDGET)))


def _as_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        dumped = dump(by_alias=True, exclude_none=True)
        if isinstance(dumped, Mapping):
            return dumped
    raise BudgetError(f"expected a mapping or a pydantic model, got {type(value).__name__}")


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key) or {}
    return _as_mapping(value)


def _money(value: Any, field_name: str = "cost.maxPerHour") -> float | None:
    if value is None:
        return None
    try:
        return float(Decimal(str(value)))
    except InvalidOperation:
        raise BudgetError(f"{field_name} {value!r} is not a number") from None


def _gib(value: Any, field_name: str) -> float | None:
    """A Kubernetes quantity (24Gi, 25769803776, 30G) in GiB, by the API server's grammar."""
    if value is None:
        return None
    if isinstance(value, float):
        return value / 2**30
    try:
        return parse_bytes(value if isinstance(value, int) else str(value)) / 2**30
    except QuantityError:
        raise BudgetError(f"{field_name} {value!r} is not a quantity such as 24Gi") from None


def _declared(variant: Mapping[str, Any]) -> DeclaredVariant:
    hint = _as_mapping(variant.get("capacityHint") or {})
    price, quality, rate, startup = (variant.get("costPerReplicaHour"), variant.get("quality"),
                                     hint.get("requestsPerSecond"), variant.get("startupSeconds"))
    return DeclaredVariant(
        quality=float(quality) if quality is not None else None,
        price_per_hour=_money(price, f"variants[{variant['name']}].costPerReplicaHour"),
        capacity_rps=float(rate) if rate is not None else None,
        startup_s=float(startup) if startup is not None else None,
    )


def with_declared_figures(profile: FleetProfile, budget: SimBudget) -> FleetProfile:
    """The profile with the budget's declared prices and qualities in place of its own (see DeclaredVariant)."""
    return replace(profile, variants={name: as_declared(model, budget) for name, model in profile.variants.items()})


def as_declared(model: VariantModel, budget: SimBudget) -> VariantModel:
    """The variant with the price and quality the budget declares for it, where it does."""
    declared = budget.declared.get(model.name, DeclaredVariant())
    return replace(
        model,
        quality=declared.quality if declared.quality is not None else model.quality,
        price_per_hour=declared.price_per_hour if declared.price_per_hour is not None else model.price_per_hour)


def allowed_variants(budget: SimBudget, profile: FleetProfile) -> list[VariantModel]:
    """Variants of the profile the budget lets a policy run: named by it, above the quality floor, fitting memory.

    A variant the profile lacks, or none allowed (no policy could run), is a BudgetError.
    """
    names = budget.variants or tuple(profile.variants)
    missing = [name for name in names if name not in profile.variants]
    if missing:
        raise BudgetError(f"the budget names variant {missing[0]!r}, which the profile {profile.source} lacks "
                          f"(it has {', '.join(profile.variants)})")
    limit = budget.max_memory_per_replica_gib
    models = [
        model
        for model in (profile.variants[name] for name in names)
        if model.quality >= budget.min_quality and (limit is None or model.memory_gib <= limit)
    ]
    if not models:
        raise BudgetError("the budget allows no variant of the profile (quality floor or memory limit)")
    return models
