"""The target workload as the operator sees it, read from a Deployment or StatefulSet object.

Parsing takes the plain dict the API server returns (or kopf hands over), so the same code serves watched
objects and fresh reads. Rollout state follows `kubectl rollout status`: the controller has seen the newest
generation, every replica runs the newest template and is available; ProgressDeadlineExceeded is a failure.
"""

from dataclasses import dataclass
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
    ready_replicas: int
    updated_replicas: int
    available_replicas: int
    variant: str | None  # the inferbudget.io/variant label of the pod template
    selector: dict[str, str]  # spec.selector.matchLabels
    containers: tuple[str, ...]  # container names of the pod template, in order
    deadline_exceeded: bool  # Progressing=False with reason ProgressDeadlineExceeded
    uid: str = ""

    @property
    def rollout_complete(self) -> bool:
        return (self.observed_generation >= self.generation
                and self.updated_replicas >= self.desired_replicas
                and self.available_replicas >= self.desired_replicas
                and self.ready_replicas >= self.desired_replicas)

    @property
    def rollout_in_progress(self) -> bool:
        return not self.rollout_complete and not self.deadline_exceeded

    def container_name(self, wanted: str | None) -> str | None:
        """The container swaps change: the one named in the budget, or the first."""
        if wanted is not None:
            return wanted if wanted in self.containers else None
        return self.containers[0] if self.containers else None


def parse_workload(obj: dict[str, Any]) -> Workload:
    metadata, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status") or {}
    template = spec.get("template", {})
    conditions = status.get("conditions") or []
    deadline_exceeded = any(c.get("type") == "Progressing" and c.get("reason") == "ProgressDeadlineExceeded"
                            for c in conditions)
    return Workload(
        kind=obj.get("kind", "Deployment"),
        namespace=metadata.get("namespace", ""),
        name=metadata.get("name", ""),
        uid=metadata.get("uid", ""),
        generation=int(metadata.get("generation", 0)),
        observed_generation=int(status.get("observedGeneration", 0)),
        desired_replicas=int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1),
        ready_replicas=int(status.get("readyReplicas", 0)),
        updated_replicas=int(status.get("updatedReplicas", 0)),
        available_replicas=int(status.get("availableReplicas", 0)),
        variant=(template.get("metadata", {}).get("labels") or {}).get(VARIANT_KEY),
        selector=dict((spec.get("selector") or {}).get("matchLabels") or {}),
        containers=tuple(c.get("name", "") for c in template.get("spec", {}).get("containers", [])),
        deadline_exceeded=deadline_exceeded,
    )


def selects(selector: dict[str, str], labels: dict[str, str] | None) -> bool:
    """Whether a pod with these labels belongs to a workload with this matchLabels selector."""
    labels = labels or {}
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())
