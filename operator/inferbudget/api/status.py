"""The observed state of an InferenceBudget. Everything the operator needs to resume after a restart is
here (engineState, learned, lastDecision), never only in its memory."""

from typing import Annotated, Any, Literal

from annotated_types import MaxLen
from pydantic import Field

from inferbudget.api.base import ApiModel
from inferbudget.api.markers import OpenAPI

ACTIONS = ("None", "ScaleUp", "ScaleDown", "Swap", "Hold")
Action = Literal["None", "ScaleUp", "ScaleDown", "Swap", "Hold"]
CONDITION_TYPES = ("Ready", "WithinBudget", "MetricsAvailable", "Actuating", "BudgetFeasible", "Conflict")
Timestamp = Annotated[str, OpenAPI(format="date-time")]


class Condition(ApiModel):
    type: Annotated[str, MaxLen(64)] = Field(
        description="Ready, WithinBudget, MetricsAvailable, Actuating, BudgetFeasible or Conflict.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: Annotated[str, MaxLen(128)] = Field(description="One word in CamelCase saying why.")
    message: Annotated[str, MaxLen(4096)] = Field("", description="What happened, for people.")
    last_transition_time: Timestamp = Field(description="When the status last changed.")
    observed_generation: int | None = Field(None, ge=0, description="The spec generation it was set for.")


class Observed(ApiModel):
    time: Timestamp | None = Field(None, description="When these figures were read.")
    latency_ms: float | None = Field(None, description="Observed latency at the budget's percentile.")
    memory_per_replica_bytes: int | None = Field(
        None, description="Observed memory of the largest replica of the running variant.")
    requests_per_second: float | None = Field(None, description="Observed load over all replicas: the completed "
                                              "request rate, plus the queue spread over the latency window while "
                                              "the latency is over budget.")
    replicas: int | None = Field(None, description="Desired replicas of the target.")
    ready_replicas: int | None = Field(None, description="Ready replicas of the target.")
    variant: str | None = Field(None, description="Variant the target runs now.")
    cost_per_hour: str | None = Field(None, description="Cost per hour of the current replicas.")
    latency: str | None = Field(None, description='Latency against its budget, for display: "612ms/800ms".')
    memory: str | None = Field(None, description='Memory per replica against its budget: "17Gi/24Gi".')
    cost: str | None = Field(None, description='Cost per hour against the ceiling: "8.20/20.00 USD".')


class Prediction(ApiModel):
    latency_ms: float | None = Field(None, description="Predicted latency after the decision.")
    cost_per_hour: str | None = Field(None, description="Predicted cost per hour after the decision.")


class DecisionRecord(ApiModel):
    time: Timestamp = Field(description="When the decision was made.")
    action: Action = Field(description="None, ScaleUp, ScaleDown, Swap or Hold.")
    reason: Annotated[str, MaxLen(64)] = Field(description="Reason code (see docs/concepts.md).")
    message: Annotated[str, MaxLen(1024)] = Field("", description="The decision in one line, for people.")
    variant: str | None = Field(None, description="Variant after the decision.")
    replicas: int | None = Field(None, description="Replicas after the decision.")
    predicted: Prediction | None = Field(None, description="What the decision is expected to give.")


class LearnedVariant(ApiModel):
    requests_per_second_per_replica: float | None = Field(
        None, description="Learned requests per second one replica serves within the latency budget, in requests "
        "of engineState.requestTokens tokens where the server counts tokens.")
    startup_seconds: float | None = Field(None, description="Learned seconds from a new pod to Ready.")
    samples: int = Field(0, ge=0, description="How many observations the estimates rest on.")
    breached_at: float | None = Field(
        None, ge=0, description="The lowest requests per second per replica at which the latency was seen over "
        "the threshold, until the latency is seen within it near that load: the learned capacity does not rise "
        "above it.")
    proven_at: float | None = Field(
        None, ge=0, description="The highest requests per second per replica seen served within the latency "
        "threshold: a scale-down plans no replica for much more than this.")


class PredictionError(ApiModel):
    latency: float | None = Field(None, description="(observed - predicted) / predicted latency.")
    cost: float | None = Field(None, description="(observed - predicted) / predicted cost per hour.")


class InferenceBudgetStatus(ApiModel):
    observed_generation: int | None = Field(None, description="The spec generation last acted on.")
    conditions: Annotated[list[Condition], MaxLen(16)] = Field(
        default_factory=list, description="Ready, WithinBudget, MetricsAvailable, Actuating, BudgetFeasible "
        "and Conflict.")
    observed: Observed | None = Field(None, description="What the operator last observed.")
    last_decision: DecisionRecord | None = Field(None, description="The last decision and why.")
    history: Annotated[list[DecisionRecord], MaxLen(50)] = Field(
        default_factory=list, description="Recent decisions that changed something, newest last.")
    learned: Annotated[dict[Annotated[str, MaxLen(63)], LearnedVariant], MaxLen(16)] = Field(
        default_factory=dict, description="What has been learned per variant.")
    prediction_error: PredictionError | None = Field(
        None, description="How far the last checked prediction was from what happened.")
    engine_state: dict[str, Any] | None = Field(
        None, description="The decision engine's memory (windows, cooldowns, failed variants), kept here "
        "so that a restart resumes exactly. Not for editing.")
