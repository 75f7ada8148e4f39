"""Two operator replicas with kopf peering: exactly one acts; when it dies, the other takes over.

The replicas share a KopfPeering object in the watched namespace (as the chart creates it with
peering.enabled and watchNamespaces). The one of higher priority acts; the other pauses its watches and the
budgets' reconcile daemons. A replica killed without a clean exit cannot withdraw its keep-alive, so the standby
resumes when that keep-alive expires: within --peering-lifetime seconds, plus its first reconcile.
"""

import calendar
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from tests.support.processes import Process
from tests.support.scenario import Scenario, budget, deployment, operator_metric

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
PEERING = "inferbudget-e2e"
LIFETIME = 10  # seconds: short, so the takeover after a crash is quick to watch
PAUSED = "Pausing operations in favour of"  # kopf's log lines when peering pauses or resumes a replica
RESUMED = "Resuming operations after the pause"


@pytest.fixture(scope="module")
def peering_crds(cluster: Any) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "charts/inferbudget/crds/kopf.dev_peerings.yaml"))
    cluster.wait_until("the KopfPeering CRD to be Established", lambda: "True" in cluster.kubectl(
        "get", "crd/kopfpeerings.kopf.dev", "-o",
        "jsonpath={.status.conditions[?(@.type=='Established')].status}", check=False).stdout)


def test_one_replica_acts_and_another_takes_over_when_it_is_killed_or_exits(
        cluster: Any, namespace: str, peering_crds: None, start_operator: Any) -> None:
    k8s.CustomObjectsApi(cluster.api_client).create_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings",
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}})
    peering = ("--peering", PEERING, "--peering-lifetime", str(LIFETIME))
    active = start_operator(None, *peering, "--priority", "200")
    standby = start_operator(None, *peering, "--priority", "100")
    cluster.wait_until("both replicas in the peering, the standby paused", lambda: _registered(
        cluster, namespace, 200, 100) and _standing_by(standby))

    scenario = Scenario(cluster, namespace)
    scenario.create(deployment("llama", "bf16", 1, rate=5), budget("llama", "llama", ["bf16"]))
    labels = {"namespace": namespace, "budget": "llama"}
    scenario.wait("three reconciles by the active replica", lambda: (_reconciles(active, labels) or 0) >= 3)
    assert _serving(standby), "the standby serves its /metrics"
    assert _reconciles(standby, labels) is None, "the standby never reconciled"

    active.kill()  # SIGKILL: its keep-alive stays in the KopfPeering until it expires
    killed_at, killed_wall = time.monotonic(), time.time()
    scenario.wait("the standby's first reconcile", lambda: _reconciles(standby, labels), timeout=LIFETIME + 120)
    takeover = time.monotonic() - killed_at
    decided = scenario.wait("a decision recorded by the new active replica", lambda: _decided_after(
        scenario, killed_wall))
    print(f"\ntakeover after SIGKILL: {takeover:.1f} s (peering lifetime {LIFETIME} s, interval 2 s); "
          f"first decision after the kill: {decided}")
    assert RESUMED in standby.log.read_text()

    # A clean exit withdraws the keep-alive: a third replica takes over without waiting for it to expire.
    third = start_operator(None, *peering, "--priority", "50")
    cluster.wait_until("the third replica in the peering, paused", lambda: _registered(
        cluster, namespace, 100, 50) and _standing_by(third))
    stopped_at = time.monotonic()
    standby.stop()  # SIGTERM, and wait for the exit
    scenario.wait("the third replica's first reconcile", lambda: _reconciles(third, labels), timeout=LIFETIME + 120)
    print(f"takeover after a clean exit (SIGTERM): {time.monotonic() - stopped_at:.1f} s")


def _registered(cluster: Any, namespace: str, *priorities: int) -> bool:
    """Replicas of these priorities keep their keep-alives in the peering object."""
    body = k8s.CustomObjectsApi(cluster.api_client).get_namespaced_custom_object(
        "kopf.dev", "v1", namespace, "kopfpeerings", PEERING)
    assert isinstance(body, dict)  # a custom object comes back as the JSON it is
    return set(priorities) <= {peer.get("priority") for peer in (body.get("status") or {}).values()}


def _standing_by(operator: Process) -> bool:
    """Paused by peering: a replica starts paused and logs only when that changes (its last word is a pause)."""
    said = [line for line in operator.log.read_text().splitlines() if PAUSED in line or RESUMED in line]
    return not said or PAUSED in said[-1]


def _reconciles(operator: Process, labels: dict[str, str]) -> float | None:
    return operator_metric(operator, "inferbudget_reconcile_seconds_count", **labels)


def _serving(operator: Process) -> bool:
    return operator_metric(operator, "inferbudget_prometheus_errors_total") is not None


def _decided_after(scenario: Scenario, wall: float) -> str | None:
    """The time of the last decision, once it is later than `wall` (the status has whole seconds)."""
    last = scenario.status().get("lastDecision", {}).get("time")
    if last is None:
        return None
    return last if calendar.timegm(time.strptime(last, "%Y-%m-%dT%H:%M:%SZ")) > wall else None
