"""The patch that swaps a variant in: the pod template label and the container fields the variant sets.

A strategic merge patch, so fields the variant leaves out stay as they are in the workload, env entries
merge by name and resources merge by key, and nothing else in the pod template is touched.
"""

from typing import Any

from inferbudget.actuate.workload import MANAGED_BY_KEY, VARIANT_KEY
from inferbudget.api.spec import Variant


def swap_patch(variant: Variant, container: str) -> dict[str, Any]:
    override: dict[str, Any] = {"name": container}
    if variant.container is not None:
        settings = variant.container
        if settings.image is not None:
            override["image"] = settings.image
        if settings.args is not None:
            override["args"] = list(settings.args)
        if settings.env is not None:
            override["env"] = [{"name": e.name, "value": e.value} for e in settings.env]
        if settings.resources is not None:
            override["resources"] = settings.resources.to_wire()
    return {
        "metadata": {"annotations": {MANAGED_BY_KEY: "inferbudget"}},
        "spec": {"template": {
            "metadata": {"labels": {VARIANT_KEY: variant.name}, "annotations": {VARIANT_KEY: variant.name}},
            "spec": {"containers": [override]},
        }},
    }
