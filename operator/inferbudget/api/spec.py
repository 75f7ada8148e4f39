"""The desired state of an InferenceBudget: what to serve, within which budgets, and how to act.

These models are the one source of truth of the API: the CRD's OpenAPI schema, its defaults, bounds and
CEL rules are generated from them (``inferbudget.api.crd``), and ``make crd`` writes the CRD file.
Descriptions here are what ``kubectl explain inferencebudget.spec...`` shows, so they speak to users.
"""

from decimal import Decimal
from typing import Annotated, Literal

from annotated_types import MaxLen
from pydantic import Field

from inferbudget.api.base import ApiModel
from inferbudget.api.markers import Cel
from inferbudget.api.quantity import parse_bytes

Quantity = Annotated[
    str,
    MaxLen(64),
    Cel("isQuantity(self) && !quantity(self).isLessThan(quantity('0'))",
        "must be a non-negative Kubernetes quantity such as 1, 500m or 24Gi"),
]
MemorySize = Annotated[
    str,
    MaxLen(64),
    Cel("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))",
        "must be a positive Kubernetes quantity such as 24Gi, 512Mi or 80G"),
]
Money = Annotated[
    str,
    MaxLen(32),
    Cel("self.matches('^[0-9]+([.][0-9]+)?$')", 'must be a non-negative decimal in quotes, such as "4.10"'),
]
LabelValue = Annotated[
    str,
    MaxLen(63),
    Cel(
        "self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",
        "must be a valid label value: letters, digits, '-', '_' or '.', starting and ending with a letter "
        "or digit (it is written to the inferbudget.io/variant label)",
    ),
]
PromQL = Annotated[str, MaxLen(4096)]


class TargetRef(ApiModel):
    api_version: Annotated[str, MaxLen(253)] = Field(
        "apps/v1", description="API version of the target workload.")
    kind: Annotated[str, MaxLen(63)] = Field(
        "Deployment",
        description="Kind of the target workload. Any kind with a scale subresource can be scaled; "
        "variant swaps need a pod template (Deployment or StatefulSet).")
    name: Annotated[str, MaxLen(253)] = Field(
        description="Name of the target workload, in the InferenceBudget's namespace.")
    container: Annotated[str, MaxLen(63)] | None = Field(
        None, description="Name of the model-server container in the pod template that variant swaps "
        "change. Defaults to the first container.")


class CustomQueries(ApiModel):
    """Placeholders replaced before each query: $namespace (the budget's namespace), $pods (a regex matching
    exactly the target's pods), $quantile (the latency percentile as a fraction, e.g. 0.95) and $window (the
    latency window, e.g. 60s). Each query must return one series per pod with `namespace` and `pod` labels."""

    latency: PromQL = Field(description="Latency at $quantile over $window, in seconds, per pod.")
    request_rate: PromQL = Field(description="Requests per second arriving at each pod.")
    memory: PromQL | None = Field(None, description="Memory in use per pod, in bytes (optional).")
    queue: PromQL | None = Field(None, description="Requests waiting per pod (optional).")
    token_rate: PromQL | None = Field(
        None, description="Prompt plus generated tokens per second at each pod over $window (optional): with "
        "it, a request counts as its size, so longer requests count as more load.")


class LatencyBudget(ApiModel):
    percentile: float = Field(
        95, gt=0, lt=100, description="Latency percentile held within the threshold, e.g. 95 for p95.")
    threshold_ms: int = Field(
        ge=1, le=3_600_000, description="The latency budget in milliseconds at that percentile.")
    signal: Literal["e2e", "ttft", "itl", "queue"] = Field(
        "e2e", description="Which latency: e2e (whole request), ttft (time to first token), itl "
        "(inter-token latency) or queue (time waiting before being served).")
    window_seconds: int = Field(
        60, ge=15, le=3600, description="Window over which the percentile is computed.")


class MemoryBudget(ApiModel):
    cel_rules = (
        Cel("has(self.maxPerReplica) || has(self.maxTotal)",
            "set maxPerReplica, maxTotal or both (or remove spec.memory)"),
        Cel("!has(self.maxPerReplica) || !has(self.maxTotal) || "
            "!quantity(self.maxPerReplica).isGreaterThan(quantity(self.maxTotal))",
            "maxPerReplica must not be larger than maxTotal", field_path=".maxPerReplica"),
    )

    max_per_replica: MemorySize | None = Field(
        None, description="Most memory one replica may use, e.g. 24Gi; variants that need more are "
        "not chosen.")
    max_total: MemorySize | None = Field(
        None, description="Most memory all replicas together may use, e.g. 160Gi.")
    signal: Literal["gpu", "container", "declared"] = Field(
        "gpu", description="Where memory is read: gpu (DCGM framebuffer used), container (cAdvisor "
        "working set) or declared (each variant's declared memory, no measurement).")

    @property
    def max_per_replica_bytes(self) -> int | None:
        return parse_bytes(self.max_per_replica) if self.max_per_replica else None

    @property
    def max_total_bytes(self) -> int | None:
        return parse_bytes(self.max_total) if self.max_total else None


class CostBudget(ApiModel):
    max_per_hour: Money = Field(description='Cost ceiling for all replicas together, per hour, e.g. "20.00".')
    currency: Annotated[str, MaxLen(3)] = Field(
        "USD", description="ISO 4217 currency of every cost in this budget (display only).")

    cel_rules = (Cel("self.currency.matches('^[A-Z]{3}$')",
                     "currency must be a three-letter ISO 4217 code such as USD or EUR", ".currency"),)

    @property
    def max_per_hour_decimal(self) -> Decimal:
        return Decimal(self.max_per_hour)


class ReplicaBounds(ApiModel):
    cel_rules = (Cel("self.min <= self.max", "replicas.min must not be greater than replicas.max"),)

    min: int = Field(1, ge=1, le=1000, description="Fewest replicas, whatever the load.")
    max: int = Field(10, ge=1, le=1000, description="Most replicas, whatever the load.")


class CapacityHint(ApiModel):
    requests_per_second: float = Field(
        gt=0, le=1_000_000,
        description="Requests per second one replica of this variant serves within the latency budget. "
        "The starting point: the operator learns the real figure from the pods.")


class EnvVar(ApiModel):
    name: Annotated[str, MaxLen(256)] = Field(description="Environment variable name.")
    value: Annotated[str, MaxLen(4096)] = Field("", description="Environment variable value.")


class Resources(ApiModel):
    limits: Annotated[dict[Annotated[str, MaxLen(128)], Quantity], MaxLen(16)] | None = Field(
        None, description="Resource limits of the container for this variant, e.g. nvidia.com/gpu: 1.")
    requests: Annotated[dict[Annotated[str, MaxLen(128)], Quantity], MaxLen(16)] | None = Field(
        None, description="Resource requests of the container for this variant.")


class ContainerOverride(ApiModel):
    """Fields left out are kept as they are in the workload; env entries are merged by name."""

    image: Annotated[str, MaxLen(512)] | None = Field(None, description="Container image of this variant.")
    args: Annotated[list[Annotated[str, MaxLen(1024)]], MaxLen(64)] | None = Field(
        None, description="Container args of this variant (replace the container's args).")
    env: Annotated[list[EnvVar], MaxLen(64)] | None = Field(
        None, description="Environment variables set for this variant, merged by name.")
    resources: Resources | None = Field(None, description="Resources of this variant.")


class Variant(ApiModel):
    name: LabelValue = Field(description="Name of the variant, e.g. bf16 or int4-awq; unique in the budget.")
    quality: float = Field(
        gt=0, le=1, description="Quality relative to the best build, in (0, 1]: 1.0 for the reference, "
        "e.g. 0.99 for a quantized build that recovers 99% of its accuracy.")
    cost_per_replica_hour: Money = Field(description='Cost of one replica for one hour, e.g. "4.10".')
    memory: MemorySize = Field(
        description="Memory one replica of this variant uses (GPU memory for weights and KV cache), "
        "e.g. 18Gi. Used before it is measured, and always with memory.signal: declared.")
    capacity_hint: CapacityHint | None = Field(
        None, description="Declared capacity of one replica; learned online when absent.")
    startup_seconds: int | None = Field(
        None, ge=0, le=3600, description="Seconds from a new pod to Ready (image pull, weight loading); "
        "learned from rollouts when absent.")
    container: ContainerOverride | None = Field(
        None, description="What to write into the target container to run this variant.")

    @property
    def cost_per_replica_hour_decimal(self) -> Decimal:
        return Decimal(self.cost_per_replica_hour)

    @property
    def memory_bytes(self) -> int:
        return parse_bytes(self.memory)


class ScaleUpPolicy(ApiModel):
    stabilization_seconds: int = Field(
        0, ge=0, le=3600, description="Scale up only to the lowest recommendation of this window "
        "(0: at once).")
    max_step_percent: int = Field(
        100, ge=1, le=1000, description="Most replicas added in one step, as a percentage of the current "
        "count (the larger of this and maxStepReplicas applies).")
    max_step_replicas: int = Field(
        4, ge=1, le=1000, description="Most replicas added in one step, as a count.")


class ScaleDownPolicy(ApiModel):
    stabilization_seconds: int = Field(
        300, ge=0, le=86400, description="Scale down only to the highest recommendation of this window, "
        "so that a dip in load does not remove capacity still needed.")
    max_step_percent: int = Field(
        100, ge=1, le=100, description="Most replicas removed in one step, as a percentage of the "
        "current count.")


class SwapPolicy(ApiModel):
    cooldown_seconds: int = Field(
        900, ge=0, le=86400, description="Least time between two variant swaps.")
    sustain_seconds: int = Field(
        120, ge=0, le=3600, description="How long another variant must stay the better choice before "
        "the swap.")
    failure_backoff_seconds: int = Field(
        3600, ge=0, le=604800, description="How long a variant whose rollout failed is not chosen again.")


class MetricsMissingPolicy(ApiModel):
    cel_rules = (Cel("self.action != 'Fallback' || has(self.fallbackReplicas)",
                     "action: Fallback needs fallbackReplicas", ".fallbackReplicas"),)

    action: Literal["Hold", "Fallback"] = Field(
        "Hold", description="What to do when metrics are missing or stale: Hold keeps the workload as it "
        "is; Fallback also scales to fallbackReplicas once they have been missing for afterSeconds. "
        "Never scales down or swaps while blind.")
    fallback_replicas: int | None = Field(
        None, ge=1, le=1000, description="Replicas to run when metrics have been missing for afterSeconds "
        "(only upwards: a larger current count is kept).")
    after_seconds: int = Field(
        300, ge=0, le=86400, description="How long metrics must be missing before the fallback applies.")
    stale_after_seconds: int = Field(
        120, ge=15, le=3600, description="Samples older than this count as missing.")


class Policy(ApiModel):
    objective: Literal["MinimizeCost", "MaximizeQuality"] = Field(
        "MinimizeCost", description="MinimizeCost: the cheapest variant and replica count within the "
        "budgets. MaximizeQuality: the best-quality variant that fits the budgets, then the fewest "
        "replicas.")
    min_quality: float = Field(
        0, ge=0, le=1, description="Variants of lower quality than this are never chosen.")
    scale_up: ScaleUpPolicy = Field(
        default_factory=ScaleUpPolicy, description="How fast capacity is added.")
    scale_down: ScaleDownPolicy = Field(
        default_factory=ScaleDownPolicy, description="How cautiously capacity is removed.")
    swap: SwapPolicy = Field(default_factory=SwapPolicy, description="When variants may be swapped.")
    when_metrics_missing: MetricsMissingPolicy = Field(
        default_factory=MetricsMissingPolicy, description="What to do without trustworthy metrics.")


class SecretKeyRef(ApiModel):
    name: Annotated[str, MaxLen(253)] = Field(description="Name of a Secret in the budget's namespace.")
    key: Annotated[str, MaxLen(253)] = Field(description="Key in that Secret.")


class PrometheusSource(ApiModel):
    url: Annotated[str, MaxLen(2048)] | None = Field(
        None, description="Prometheus base URL for this budget, overriding the operator's default.")
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding a bearer token sent to Prometheus. The operator must be allowed "
        "to read Secrets (chart value rbac.readBudgetSecrets).")
    ca_secret_ref: SecretKeyRef | None = Field(
        None, description="Secret key holding a PEM CA bundle that Prometheus's certificate chains to. The "
        "operator must be allowed to read Secrets (chart value rbac.readBudgetSecrets).")
    timeout_seconds: float = Field(10, gt=0, le=120, description="Timeout of one Prometheus query.")

    cel_rules = (Cel("!has(self.url) || self.url.matches('^https?://[^/?#]+')",
                     "url must be an http:// or https:// URL such as http://prometheus.monitoring:9090",
                     ".url"),)


VARIANT_NAMES_UNIQUE = Cel("self.all(v, self.exists_one(w, w.name == v.name))",
                           "variant names must be unique")


class InferenceBudgetSpec(ApiModel):
    """Latency, memory and cost budgets for one served model, and the variants it may run as."""

    cel_rules = (
        # An empty list is reported as such (minItems), not as a quality floor above every variant too.
        Cel("size(self.variants) == 0 || self.variants.exists(v, v.quality >= self.policy.minQuality)",
            "policy.minQuality is above the quality of every variant: lower it or add a variant at least "
            "that good", ".policy.minQuality"),
        Cel("self.server != 'custom' || has(self.queries)",
            "server: custom needs spec.queries (at least latency and requestRate PromQL)", ".queries"),
        Cel("self.server == 'custom' || !has(self.queries)",
            "spec.queries is only read with server: custom; remove it or set server: custom", ".queries"),
        Cel("!has(self.policy.whenMetricsMissing.fallbackReplicas) || "
            "(self.policy.whenMetricsMissing.fallbackReplicas >= self.replicas.min && "
            "self.policy.whenMetricsMissing.fallbackReplicas <= self.replicas.max)",
            "policy.whenMetricsMissing.fallbackReplicas must be within replicas.min and replicas.max",
            ".policy.whenMetricsMissing.fallbackReplicas"),
    )

    target_ref: TargetRef = Field(description="The workload serving the model.")
    server: Literal["vllm", "tgi", "triton", "custom"] = Field(
        "vllm", description="Model server, which selects the metric queries: vllm, tgi, triton, or custom "
        "(your own PromQL in spec.queries).")
    queries: CustomQueries | None = Field(None, description="PromQL used with server: custom.")
    latency: LatencyBudget = Field(description="The latency budget.")
    memory: MemoryBudget | None = Field(None, description="The memory budget (optional).")
    cost: CostBudget | None = Field(None, description="The cost ceiling (optional).")
    replicas: ReplicaBounds = Field(default_factory=ReplicaBounds, description="Bounds on the replica count.")
    variants: Annotated[list[Variant], MaxLen(16), VARIANT_NAMES_UNIQUE] = Field(
        min_length=1, description="Builds of the model the operator may run (bf16, fp8, int8, int4, pruned, "
        "distilled...), with their quality, cost and memory. At least one.")
    policy: Policy = Field(default_factory=Policy, description="How decisions are made and paced.")
    mode: Literal["Enforce", "Advise"] = Field(
        "Enforce", description="Enforce acts on the workload; Advise decides and reports (status, Events, "
        "metrics) but never changes the workload. Start with Advise.")
    paused: bool = Field(False, description="When true, nothing is observed, decided or changed.")
    prometheus: PrometheusSource | None = Field(
        None, description="Where this budget's metrics are read, if not from the operator's default.")

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)
