"""The target workload as the operator sees it, read from a Deployment or StatefulSet object.

Parsing takes the plain dict the API server returns (or kopf hands over), so the same code serves watched
objects and fresh reads. Rollout state follows `kubectl rollout status`: the controller has seen the newest
generation, every replica runs the newest template and is available; ProgressDeadlineExceeded is a failure.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

VARIANT_KEY = "inferbudget.io/variant"
MANAGED_BY_KEY = "inferbudget.io/managed-by"
FIELD_MANAGER = "inferbudget"


@dataclass(frozen=True)
class Workload:
    kind: str
    namespace: str
    name: str
    generation: int
    observed_generation: int
    desired_replicas: int
    total_replicas: int  # pods of every ReplicaSet, old and new
    ready_replicas: int
    updated_replicas: int
    available_replicas: int
    variant: str | None  # the inferbudget.io/variant label of the pod template
    selector: dict[str, str]  # spec.selector.matchLabels
    containers: tuple[str, ...]  # container names of the pod template, in order
    deadline_exceeded_at: float | None  # when Progressing turned False with ProgressDeadlineExceeded
    uid: str = ""

    @property
    def deadline_exceeded(self) -> bool:
        return self.deadline_exceeded_at is not None

    @property
    def rollout_complete(self) -> bool:
        return (self.observed_generation >= self.generation
                and self.updated_replicas >= self.desired_replicas
                and self.available_replicas >= self.desired_replicas
                and self.ready_replicas >= self.desired_replicas)

    @property
    def rollout_in_progress(self) -> bool:
        """A pod template change under way (new pods of a plain scale-up that are not Ready yet are not)."""
        template_changing = (self.observed_generation < self.generation
                             or self.updated_replicas < self.desired_replicas
                             or self.total_replicas > self.updated_replicas)
        return template_changing and not self.deadline_exceeded

    def container_name(self, wanted: str | None) -> str | None:
        """The container swaps change: the one named in the budget, or the first."""
        if wanted is not None:
            return wanted if wanted in self.containers else None
        return self.containers[0] if self.containers else None


def parse_workload(obj: dict[str, Any]) -> Workload:
    metadata, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    template = spec.get("template", {})
    conditions = status.get("conditions") or []
    stalled = next((c for c in conditions
                    if c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"), None)
    return Workload(
        kind=obj.get("kind", "Deployment"),
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        generation=int(metadata.get("generation", 0)),
        observed_generation=int(status.get("observedGeneration", 0)),
        desired_replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        ready_replicas=int(status.get("readyReplicas", 0)),
        total_replicas=int(status.get("replicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        available_replicas=int(status.get("availableReplicas", 0)),
        variant=(template.get("metadata", {}).get("labels") or {}).get(VARIANT_KEY),
        selector=dict((spec.get("selector") or {}).get("matchLabels") or {}),
        containers=tuple(c.get("name", "") for c in template.get("spec", {}).get("containers", [])),
        deadline_exceeded_at=_time(stalled.get("lastTransitionTime")) if stalled else None,
    )


def _time(value: Any) -> float:
    """A Kubernetes timestamp (RFC 3339 text, or a datetime from the Python client) as Unix time."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


def selects(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    """Whether a pod with these labels belongs to a workload with this matchLabels selector."""
    labels = labels or {}
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())
