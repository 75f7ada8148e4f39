"""Faults in the objects the operator works with: the target Deployment deleted and created again, the budget
deleted in the middle of a swap. Each test asserts that nothing is lost and that no wrong action is taken."""

import json
import time
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from tests.support.processes import Process
from tests.support.scenario import CYCLE, VARIANTS, Scenario, budget, deployment, operator_metric, rolled_out

from inferbudget.actuate import kube
from inferbudget.api.spec import TargetRef, Variant

pytestmark = pytest.mark.e2e
KOPF_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
HANDLER_FAILED = "failed with an exception"  # kopf's log line when a handler raises


def test_target_deleted_and_created_again_is_reported_left_alone_then_resumed_as_a_new_object(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    # fp8 is cheaper: one swap after swap.sustainSeconds; the long cooldown forbids a second swap of the same
    # object for ten minutes. The Deployment created again is another object, with no swap behind it.
    cheaper = dict(VARIANTS["fp8"], costPerReplicaHour="3.00")
    spec = budget("llama", "llama", ["bf16"], policy={"swap": {"cooldownSeconds": 600, "sustainSeconds": 4}})
    spec["spec"]["variants"].append(cheaper)
    original = deployment("llama", "bf16", 1, rate=5)
    scenario.create(original, spec)
    scenario.wait("the swap to fp8", lambda: scenario.actions("Swap"))
    scenario.wait("the fp8 rollout", lambda: rolled_out(scenario.deployment(), "fp8"))
    scenario.wait("the engine to have seen the swap", lambda: scenario.status()["engineState"]["lastSwapAt"])
    old_uid = scenario.deployment().metadata.uid

    cluster.apps.delete_namespaced_deployment("llama", namespace)
    deleted_at = time.time()
    scenario.wait("Ready=False TargetNotFound", lambda: _ready_reason(scenario) == "TargetNotFound")
    warning = scenario.wait("the TargetNotFound Event", lambda: scenario.events("TargetNotFound"))[0]
    assert warning.type == "Warning" and "Deployment llama not found" in warning.message
    history = scenario.history()
    labels = {"namespace": namespace, "budget": "llama"}
    scenario.wait("three cycles without the target", lambda: (operator_metric(
        operator, "inferbudget_last_reconcile_timestamp_seconds", **labels) or 0) > deleted_at + 3 * CYCLE)
    assert scenario.history() == history, "no decision is made about a target that does not exist"
    assert not [d for d in cluster.apps.list_namespaced_deployment(namespace).items], "nothing was created"

    upgraded = deployment("llama", "bf16", 1, rate=5)  # the same name, a new release of the server
    upgraded["spec"]["template"]["spec"]["containers"][0]["image"] = "vllm/vllm-openai:v0.10.2"
    cluster.apps.create_namespaced_deployment(namespace, upgraded)
    replaced = scenario.wait("the TargetReplaced Event", lambda: scenario.events("TargetReplaced"))[0]
    new_uid = scenario.deployment().metadata.uid
    assert f"{old_uid} -> {new_uid}" in replaced.message
    scenario.wait("Ready=True again", lambda: scenario.condition("Ready") == "True")
    # The old object's swap is not the new one's: no inherited cooldown, so the cheaper variant is swapped in.
    swaps = scenario.wait("a swap of the new object", lambda: len(scenario.actions("Swap")) == 2
                          and scenario.actions("Swap"), timeout=120)
    assert [(s["variant"], s["reason"]) for s in swaps] == [("fp8", "CheaperVariant")] * 2
    scenario.wait("the new object's fp8 rollout", lambda: rolled_out(scenario.deployment(), "fp8"))
    live = scenario.deployment()
    assert live.metadata.uid == new_uid
    baseline = json.loads(live.metadata.annotations["inferbudget.io/baseline"])
    assert baseline["image"] == "vllm/vllm-openai:v0.10.2", "the baseline is the new object's own container"
    assert scenario.status()["engineState"]["target"] == new_uid
    assert operator.running and HANDLER_FAILED not in operator.log.read_text()


def test_budget_deleted_during_a_swap_leaves_the_swap_whole_and_the_baseline_for_the_next_budget(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    # bf16 needs more memory than the budget allows: a swap at once, to an fp8 build with its own image.
    fp8 = dict(VARIANTS["fp8"], container={"image": "vllm/vllm-openai:v0.10.1-fp8"})
    spec = budget("llama", "llama", ["bf16"], memory={"maxPerReplica": "16Gi"})
    spec["spec"]["variants"].append(fp8)
    target = deployment("llama", "bf16", 3, rate=5)
    # kwok readies pods at once, so a rollout can finish before the test reads it; a new pod counts as available
    # only after 10 s Ready, so the swap's rollout takes ~30 s and the budget is deleted while it is under way.
    target["spec"]["minReadySeconds"] = 10
    scenario.create(target, spec)
    original = scenario.deployment().spec.template.spec.containers[0]
    scenario.wait("kopf's finalizer on the budget", lambda: KOPF_FINALIZER in (_budget(scenario) or {}).get(
        "metadata", {}).get("finalizers", []))

    # The decision is in the status before it is carried out: delete the budget the moment it is recorded.
    swap = scenario.wait("the swap decision", lambda: scenario.actions("Swap"), timeout=120)[0]
    scenario.custom.delete_namespaced_custom_object("inferbudget.io", "v1alpha1", namespace, "inferencebudgets",
                                                    "llama")
    in_progress = scenario.deployment()
    scenario.wait("the budget to be gone", lambda: _budget(scenario) is None)
    scenario.wait("the operator to forget the budget", lambda: operator_metric(
        operator, "inferbudget_last_reconcile_timestamp_seconds", namespace=namespace, budget="llama") is None)

    # The recorded swap was carried out whole (template, replicas, baseline), and its rollout completes.
    assert not rolled_out(in_progress, "fp8"), "the budget was deleted while the swap was under way"
    scenario.wait("the fp8 rollout to complete without the budget", lambda: rolled_out(scenario.deployment(), "fp8"))
    swapped = scenario.deployment()
    assert swapped.spec.replicas == swap["replicas"]
    assert swapped.spec.template.metadata.annotations["inferbudget.io/variant"] == "fp8"
    assert swapped.spec.template.spec.containers[0].image == "vllm/vllm-openai:v0.10.1-fp8"
    baseline = json.loads(swapped.metadata.annotations["inferbudget.io/baseline"])
    assert baseline == {"image": original.image, "resources": {"limits": {"nvidia.com/gpu": "1"}}}
    assert swapped.metadata.annotations["deployment.kubernetes.io/revision"] == "2", "one template change"

    # A new budget without fp8 swaps back, and the kept baseline restores the original container exactly.
    again = budget("llama", "llama", ["bf16"])
    scenario.custom.create_namespaced_custom_object("inferbudget.io", "v1alpha1", namespace, "inferencebudgets",
                                                    again)
    back = scenario.wait("the swap back to bf16", lambda: scenario.actions("Swap"))[0]
    assert (back["variant"], back["reason"]) == ("bf16", "UnknownVariant")
    scenario.wait("the bf16 rollout", lambda: rolled_out(scenario.deployment(), "bf16"))
    restored = scenario.deployment().spec.template.spec.containers[0]
    assert (restored.image, restored.resources.limits) == (original.image, original.resources.limits)
    assert operator.running and HANDLER_FAILED not in operator.log.read_text()


def test_a_change_decided_for_a_deleted_object_is_refused_on_the_one_created_again(
        cluster: Any, namespace: str) -> None:
    """A view a moment old (the watch has not delivered the deletion yet) must not act on the new object."""
    cluster.apps.create_namespaced_deployment(namespace, deployment("llama", "bf16", 1, rate=5))
    stale = kube.read_workload(cluster.api_client, namespace, TargetRef(name="llama"))
    assert stale is not None
    cluster.apps.delete_namespaced_deployment("llama", namespace)
    cluster.wait_until("the Deployment to be gone", lambda: not cluster.apps.list_namespaced_deployment(
        namespace).items)
    cluster.apps.create_namespaced_deployment(namespace, deployment("llama", "bf16", 1, rate=5))
    fp8 = Variant.model_validate(dict(VARIANTS["fp8"], container={"image": "vllm/vllm-openai:v0.10.1-fp8"}))

    with pytest.raises(ApiException) as scale:
        kube.scale(cluster.api_client, stale, 4)
    with pytest.raises(ApiException) as swap:
        kube.apply_variant(cluster.api_client, stale, fp8, "server", 4)
    assert (scale.value.status, swap.value.status) == (409, 422), (scale.value.reason, swap.value.reason)
    live = cluster.apps.read_namespaced_deployment("llama", namespace)
    assert (live.spec.replicas, live.metadata.generation) == (1, 1), "the new object is untouched"
    assert not (live.metadata.annotations or {}).get("inferbudget.io/baseline")


def _ready_reason(scenario: Scenario) -> str | None:
    return next((c["reason"] for c in scenario.status().get("conditions", []) if c["type"] == "Ready"), None)


def _budget(scenario: Scenario) -> dict[str, Any] | None:
    try:
        body = scenario.custom.get_namespaced_custom_object(
            "inferbudget.io", "v1alpha1", scenario.namespace, "inferencebudgets", scenario.name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    assert isinstance(body, dict)  # a custom object comes back as the JSON it is
    return body
