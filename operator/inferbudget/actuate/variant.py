"""The patch that swaps a variant in: the pod template label and the container as that variant runs it.

A variant's container is the workload's *baseline* container (as it was before inferbudget first swapped
it) with the variant's overrides on top: image and args replaced, env merged by name, resources merged by
key. The baseline is kept in the Deployment's annotation inferbudget.io/baseline, written with the first
swap, so that swapping back to a variant without overrides really restores the original container (and a
rollback undoes a bad variant completely), across operator restarts. To change the baseline (a new image),
edit that annotation or remove it while the workload runs its first variant.
"""

import json
from typing import Any

from inferbudget.actuate.workload import MANAGED_BY_KEY, VARIANT_KEY
from inferbudget.api.spec import Variant

BASELINE_KEY = "inferbudget.io/baseline"
SWAPPED_FIELDS = ("image", "args", "env", "resources")


def baseline_of(deployment: dict[str, Any], container: str) -> dict[str, Any]:
    """The container fields a variant's overrides apply to: from the annotation, else as they are now."""
    recorded = (deployment.get("metadata", {}).get("annotations") or {}).get(BASELINE_KEY)
    if recorded:
        baseline: dict[str, Any] = json.loads(recorded)
        return baseline
    current = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == container)
    return {field: current[field] for field in SWAPPED_FIELDS if current.get(field) is not None}


def container_for(baseline: dict[str, Any], variant: Variant) -> dict[str, Any]:
    """The swapped fields as the variant runs them."""
    fields = {key: value for key, value in baseline.items() if key in SWAPPED_FIELDS}
    override = variant.container
    if override is None:
        return fields
    if override.image is not None:
        fields["image"] = override.image
    if override.args is not None:
        fields["args"] = list(override.args)
    if override.env is not None:
        env = {entry["name"]: entry for entry in fields.get("env", [])}
        env.update({entry.name: {"name": entry.name, "value": entry.value} for entry in override.env})
        fields["env"] = list(env.values())
    if override.resources is not None:
        resources: dict[str, dict[str, Any]] = {
            key: dict(value) for key, value in fields.get("resources", {}).items()}
        wanted: dict[str, dict[str, Any]] = override.resources.model_dump(by_alias=True, exclude_none=True)
        for kind, quantities in wanted.items():
            resources.setdefault(kind, {}).update(quantities)
        fields["resources"] = resources
    return fields


def swap_patch(deployment: dict[str, Any], variant: Variant, container: str, replicas: int) -> dict[str, Any]:
    """A strategic merge patch that makes `container` run `variant` on `replicas` replicas, replacing (not
    merging into) env and resources, and clearing args the variant's container does not have.

    One patch, so a swap is applied whole or not at all: an operator that dies, or a budget deleted, half-way
    through cannot leave the new template with the old replica count (or the baseline unrecorded)."""
    baseline = baseline_of(deployment, container)
    fields = container_for(baseline, variant)
    entry: dict[str, Any] = {"name": container, "args": fields.get("args")}
    if "image" in fields:
        entry["image"] = fields["image"]
    entry["env"] = [*fields.get("env", []), {"$patch": "replace"}]
    entry["resources"] = {**fields.get("resources", {}), "$patch": "replace"}
    return {
        "metadata": {"annotations": {MANAGED_BY_KEY: "inferbudget", BASELINE_KEY: json.dumps(baseline)}},
        "spec": {"replicas": replicas, "template": {
            "metadata": {"labels": {VARIANT_KEY: variant.name}, "annotations": {VARIANT_KEY: variant.name}},
            "spec": {"containers": [entry]},
        }},
    }
