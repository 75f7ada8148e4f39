"""What a swap writes: the baseline container with the variant's overrides, and a way back."""

import json
from typing import Any

from inferbudget.actuate.variant import BASELINE_KEY, baseline_of, container_for, swap_patch
from inferbudget.api.spec import Variant

BASELINE: dict[str, Any] = {"image": "vllm/vllm-openai:v0.10.1", "args": ["--model", "llama-bf16"],
            "env": [{"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}],
            "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"cpu": "4"}}}


def variant(**container: Any) -> Variant:
    spec: dict[str, Any] = {"name": "int4", "quality": 0.93, "costPerReplicaHour": "4.10", "memory": "18Gi"}
    if container:
        spec["container"] = container
    return Variant.model_validate(spec)


def deployment(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "llama", "annotations": annotations or {}},
            "spec": {"template": {"spec": {"containers": [{"name": "server", "ports": [{"containerPort": 8000}],
                                                           **BASELINE}]}}}}


def test_overrides_apply_on_the_baseline() -> None:
    fields = container_for(BASELINE, variant(args=["--model", "llama-w4a16"], env=[{"name": "Q", "value": "4"}],
                                             resources={"limits": {"memory": "32Gi"}}))
    assert fields["image"] == BASELINE["image"], "an image the variant does not name stays"
    assert fields["args"] == ["--model", "llama-w4a16"]
    assert [e["name"] for e in fields["env"]] == ["HF_TOKEN", "Q"], "env merges by name"
    assert fields["resources"]["limits"] == {"nvidia.com/gpu": "1", "memory": "32Gi"}
    assert BASELINE["resources"]["limits"] == {"nvidia.com/gpu": "1"}, "the baseline itself is not changed"


def test_the_first_swap_records_the_baseline_and_later_swaps_start_from_it() -> None:
    first = swap_patch(deployment(), variant(resources={"limits": {"nvidia.com/gpu": "16"}}), "server", 1)
    recorded = first["metadata"]["annotations"][BASELINE_KEY]
    assert json.loads(recorded) == BASELINE
    assert baseline_of(deployment({BASELINE_KEY: recorded}), "server") == BASELINE


def test_swapping_back_to_a_variant_without_overrides_restores_the_original_container() -> None:
    """After a variant that asked for 16 GPUs, the way back must write the baseline's 1 GPU again."""
    bad = deployment()
    bad_patch = swap_patch(bad, variant(resources={"limits": {"nvidia.com/gpu": "16"}}), "server", 1)
    after_bad = deployment(bad_patch["metadata"]["annotations"])
    back = swap_patch(after_bad, variant(), "server", 1)["spec"]["template"]["spec"]["containers"][0]
    assert back["resources"] == {**BASELINE["resources"], "$patch": "replace"}
    assert back["args"] == BASELINE["args"] and back["image"] == BASELINE["image"]
    assert back["env"] == [*BASELINE["env"], {"$patch": "replace"}]


def test_the_template_is_labelled_with_the_variant() -> None:
    patch = swap_patch(deployment(), variant(), "server", 1)
    assert patch["spec"]["template"]["metadata"]["labels"] == {"inferbudget.io/variant": "int4"}
    assert patch["metadata"]["annotations"]["inferbudget.io/managed-by"] == "inferbudget"


def test_the_swap_sets_its_replica_count_in_the_same_patch() -> None:
    """One write: a swap is never left half-applied (new template, old replica count)."""
    assert swap_patch(deployment(), variant(), "server", 3)["spec"]["replicas"] == 3


def test_args_absent_everywhere_are_cleared() -> None:
    no_args = {key: value for key, value in BASELINE.items() if key != "args"}
    entry = swap_patch({"metadata": {"annotations": {BASELINE_KEY: json.dumps(no_args)}}}, variant(), "server", 1)
    assert entry["spec"]["template"]["spec"]["containers"][0]["args"] is None
