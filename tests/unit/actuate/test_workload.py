"""Reading rollout state from a Deployment."""

from typing import Any

from inferbudget.actuate.workload import parse_workload, selects


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {"name": "llama", "namespace": "serving", "generation": 4, "uid": "u1"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "llama"}},
                 "template": {"metadata": {"labels": {"app": "llama", "inferbudget.io/variant": "bf16"}},
                              "spec": {"containers": [{"name": "server"}, {"name": "sidecar"}]}}},
        "status": status,
    }


def test_a_finished_rollout_is_complete() -> None:
    workload = parse_workload(deployment(observedGeneration=4, replicas=3, updatedReplicas=3, readyReplicas=3,
                                         availableReplicas=3))
    assert workload.rollout_complete and not workload.rollout_in_progress
    assert (workload.variant, workload.desired_replicas, workload.ready_replicas) == ("bf16", 3, 3)
    assert workload.container_name(None) == "server" and workload.container_name("sidecar") == "sidecar"
    assert workload.container_name("missing") is None


def test_unobserved_generation_or_old_replicas_mean_in_progress() -> None:
    assert parse_workload(deployment(observedGeneration=3, updatedReplicas=3, readyReplicas=3,
                                     availableReplicas=3)).rollout_in_progress
    assert parse_workload(deployment(observedGeneration=4, updatedReplicas=1, readyReplicas=3,
                                     availableReplicas=3)).rollout_in_progress


def test_progress_deadline_exceeded_is_a_failure_not_progress() -> None:
    workload = parse_workload(deployment(observedGeneration=4, updatedReplicas=1, readyReplicas=2, conditions=[
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
         "lastTransitionTime": "2026-11-27T20:00:00Z"}]))
    assert workload.deadline_exceeded and not workload.rollout_in_progress and not workload.rollout_complete
    assert workload.deadline_exceeded_at == 1795809600.0


def test_new_pods_of_a_scale_up_are_not_a_rollout() -> None:
    workload = parse_workload(deployment(observedGeneration=4, replicas=3, updatedReplicas=3, readyReplicas=1,
                                         availableReplicas=1))
    assert not workload.rollout_in_progress and not workload.rollout_complete


def test_old_pods_still_running_mean_the_rollout_is_not_done() -> None:
    workload = parse_workload(deployment(observedGeneration=4, replicas=4, updatedReplicas=3, readyReplicas=4,
                                         availableReplicas=4))
    assert workload.rollout_in_progress


def test_a_new_deployment_without_status_is_in_progress() -> None:
    workload = parse_workload(deployment())
    assert workload.rollout_in_progress and workload.ready_replicas == 0


def test_selector_matches_only_pods_with_every_label() -> None:
    assert selects({"app": "llama"}, {"app": "llama", "pod-template-hash": "x"})
    assert not selects({"app": "llama"}, {"app": "mistral"})
    assert not selects({}, {"app": "llama"}), "an empty selector would select every pod"
