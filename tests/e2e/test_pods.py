"""The pods of a budget's target as the operator finds them: its namespace listed once (metadata only, from the
API server's cache), each target picking its own by its selector."""

import asyncio
from typing import Any

import pytest
from tests.support.scenario import deployment
from tests.support.scripts import wait_until

from inferbudget.actuate import kube
from inferbudget.pods import NamespacePods

pytestmark = pytest.mark.e2e


def test_each_target_gets_its_own_pods_from_one_list_of_the_namespace(cluster: Any, namespace: str) -> None:
    # app=llama must not pick llama-large's pods
    for name, variant, replicas in (("llama", "bf16", 2), ("llama-large", "fp8", 1)):
        cluster.apps.create_namespaced_deployment(namespace, deployment(name, variant, replicas, rate=1))
    def three_pods() -> dict[str, str] | None:
        apps = _apps(cluster, namespace)
        return apps if len(apps) == 3 else None

    apps = wait_until("the Deployments' 3 pods", three_pods)
    lists: list[str] = []

    def list_pods(listed: str) -> list[tuple[str, dict[str, str]]]:
        lists.append(listed)
        return kube.namespace_pods(cluster.api_client, listed)

    async def one_cycle() -> tuple[dict[str, str | None], dict[str, str | None]] | None:
        lists.clear()
        pods = NamespacePods(list_pods, cycle_seconds=30)
        llama, large = await asyncio.gather(pods.selected(namespace, {"app": "llama"}),
                                            pods.selected(namespace, {"app": "llama-large"}))
        return (llama, large) if len(llama | large) == 3 else None  # the cache may lag the pods' creation

    llama, large = wait_until("both targets' pods from the API server's cache", lambda: asyncio.run(one_cycle()))
    assert llama == {pod: "bf16" for pod, app in apps.items() if app == "llama"}  # with their variant labels
    assert large == {pod: "fp8" for pod, app in apps.items() if app == "llama-large"}
    assert lists == [namespace]  # one LIST for both targets


def _apps(cluster: Any, namespace: str) -> dict[str, str]:
    """Every pod of the namespace and its app label, read from etcd."""
    return {pod.metadata.name: pod.metadata.labels["app"] for pod in cluster.core.list_namespaced_pod(namespace).items}
