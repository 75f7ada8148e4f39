"""The local cluster runs GPU workloads the way the operator will meet them: scheduled on fake GPU nodes, scaled
through the scale subresource, rolled out to a new ReplicaSet, and stuck when pods never become Ready."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s

pytestmark = pytest.mark.e2e

GPU = "nvidia.com/gpu"


def gpu_deployment(name: str, replicas: int, labels: dict[str, str] | None = None) -> k8s.V1Deployment:
    selector = {"app": name}
    return k8s.V1Deployment(
        metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas,
            selector=k8s.V1LabelSelector(match_labels=selector),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels={**selector, **(labels or {})}),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(
                    name="server",
                    image="vllm/vllm-openai:v0.6.3",
                    resources=k8s.V1ResourceRequirements(limits={GPU: "1"}),
                )]),
            ),
        ),
    )


def pod_is_ready(pod: Any) -> bool:
    return bool(pod.status.phase == "Running" and any(
        condition.type == "Ready" and condition.status == "True" for condition in pod.status.conditions or []))


def ready_pods(cluster: Any, namespace: str, app: str) -> list[Any]:
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [pod for pod in pods if pod.metadata.deletion_timestamp is None and pod_is_ready(pod)]


def wait_for_ready_pods(cluster: Any, namespace: str, app: str, count: int) -> list[Any]:
    def exactly_count_ready() -> list[Any] | None:
        pods = ready_pods(cluster, namespace, app)
        return pods if len(pods) == count else None

    pods: list[Any] = cluster.wait_until(f"{count} Ready pods of {app}", exactly_count_ready)
    return pods


def rollout_complete(deployment: Any) -> bool:
    """What `kubectl rollout status` checks: the newest spec is observed and every replica is updated and
    available, with no old pod left over."""
    status, replicas = deployment.status, deployment.spec.replicas
    return bool(status.observed_generation is not None
                and status.observed_generation >= deployment.metadata.generation
                and status.updated_replicas == replicas
                and status.replicas == replicas
                and status.available_replicas == replicas)


def kwok_gpu_nodes(cluster: Any) -> set[str]:
    return {node.metadata.name for node in cluster.core.list_node().items
            if (node.metadata.annotations or {}).get("kwok.x-k8s.io/node") == "fake"
            and int(node.status.allocatable.get(GPU, "0")) > 0}


def test_gpu_deployment_gets_ready_pods_on_kwok_gpu_nodes(cluster: Any, namespace: str) -> None:
    cluster.apps.create_namespaced_deployment(namespace, gpu_deployment("llama", replicas=3))

    pods = wait_for_ready_pods(cluster, namespace, "llama", 3)

    assert {pod.spec.node_name for pod in pods} <= kwok_gpu_nodes(cluster)
    assert all(pod.spec.containers[0].resources.requests[GPU] == "1" for pod in pods)
    deployment = cluster.wait_until("3 available replicas", lambda: (
        d := cluster.apps.read_namespaced_deployment("llama", namespace)).status.available_replicas == 3 and d)
    assert deployment.status.ready_replicas == 3


def test_scaling_through_the_scale_subresource_gives_ready_pods(cluster: Any, namespace: str) -> None:
    cluster.apps.create_namespaced_deployment(namespace, gpu_deployment("llama", replicas=3))
    wait_for_ready_pods(cluster, namespace, "llama", 3)

    scale = cluster.apps.patch_namespaced_deployment_scale("llama", namespace, {"spec": {"replicas": 5}})

    assert scale.spec.replicas == 5
    wait_for_ready_pods(cluster, namespace, "llama", 5)
    assert cluster.apps.read_namespaced_deployment_scale("llama", namespace).status.replicas == 5


def test_pod_template_change_rolls_out_a_new_replicaset(cluster: Any, namespace: str) -> None:
    cluster.apps.create_namespaced_deployment(namespace, gpu_deployment("llama", replicas=5))
    cluster.wait_until("the first rollout", lambda: rollout_complete(
        cluster.apps.read_namespaced_deployment("llama", namespace)))
    first_replicasets = {rs.metadata.name for rs in cluster.apps.list_namespaced_replica_set(namespace).items}

    patched = cluster.apps.patch_namespaced_deployment("llama", namespace, {"spec": {"template": {"metadata": {
        "labels": {"inferbudget.io/variant": "int4-awq"}}}}})

    deployment = cluster.wait_until("the rollout of the new template", lambda: (
        d := cluster.apps.read_namespaced_deployment("llama", namespace)) and rollout_complete(d) and d)
    assert deployment.status.observed_generation >= patched.metadata.generation > 1
    assert deployment.status.updated_replicas == deployment.status.available_replicas == 5
    replicasets = cluster.apps.list_namespaced_replica_set(namespace).items
    new = [rs for rs in replicasets if rs.metadata.name not in first_replicasets]
    assert len(new) == 1 and new[0].status.ready_replicas == 5
    assert all(rs.spec.replicas == 0 for rs in replicasets if rs.metadata.name in first_replicasets)
    pods = wait_for_ready_pods(cluster, namespace, "llama", 5)
    assert {pod.metadata.labels["inferbudget.io/variant"] for pod in pods} == {"int4-awq"}


def test_pods_labelled_never_ready_run_but_stall_the_rollout(cluster: Any, namespace: str) -> None:
    """kwok/stages.yaml: a pod labelled inferbudget.io/test-never-ready=true runs but never becomes Ready, so a
    rollout that introduces such pods cannot finish and the old pods keep serving."""
    cluster.apps.create_namespaced_deployment(namespace, gpu_deployment("llama", replicas=2))
    cluster.wait_until("the first rollout", lambda: rollout_complete(
        cluster.apps.read_namespaced_deployment("llama", namespace)))

    cluster.apps.patch_namespaced_deployment("llama", namespace, {"spec": {"template": {"metadata": {
        "labels": {"inferbudget.io/test-never-ready": "true"}}}}})

    def running_unready_new_pod() -> list[Any]:
        pods = cluster.core.list_namespaced_pod(
            namespace, label_selector="app=llama,inferbudget.io/test-never-ready=true").items
        return [pod for pod in pods if pod.status.phase == "Running" and not pod_is_ready(pod)]

    assert cluster.wait_until("a new pod Running but not Ready", running_unready_new_pod)
    deployment = cluster.wait_until("the new template to be observed, with an updated replica", lambda: (
        d := cluster.apps.read_namespaced_deployment("llama", namespace)).status.observed_generation
        == d.metadata.generation and (d.status.updated_replicas or 0) >= 1 and d)
    assert deployment.status.available_replicas == 2  # only the old pods count
    assert not rollout_complete(deployment)
    assert len(ready_pods(cluster, namespace, "llama")) == 2


def test_server_reports_the_pinned_release_and_helm_installs_against_it(
        cluster: Any, namespace: str, tmp_path: Path) -> None:
    """Helm checks a chart's kubeVersion against /version, which the build stamps."""
    versions = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["gitVersion"] == cluster.kubernetes_version
    assert versions["clientVersion"]["gitVersion"] == cluster.kubernetes_version
    chart = tmp_path / "probe"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        "apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: '>= 1.34.0-0'\n")
    (chart / "templates/configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  release: {{ .Release.Name }}\n")

    cluster.helm("install", "probe", str(chart), "--namespace", namespace, "--wait", "--timeout", "60s")

    assert cluster.core.read_namespaced_config_map("probe", namespace).data == {"release": "probe"}
    cluster.helm("uninstall", "probe", "--namespace", namespace)
