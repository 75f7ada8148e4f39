"""The operator on a real cluster: real API server + kwok, a real Prometheus scraping the twin, and the
operator as its own process. Each scenario asserts on status, Events, the Deployment and the metrics."""

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from tests.support import prometheus
from tests.support.faulty_proxy import FaultyProxy
from tests.support.processes import Process
from tests.support.scenario import (
    CYCLE,
    H100_BF16_CAPACITY,
    VARIANTS,
    Fleet,
    Scenario,
    budget,
    deployment,
    field_managers,
    operator_metric,
    rolled_out,
)

pytestmark = pytest.mark.e2e


def test_rising_load_scales_up_then_latency_returns_within_budget(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    scenario.create(deployment("llama", "bf16", 1, rate=0.3 * H100_BF16_CAPACITY),
                    budget("llama", "llama", ["bf16"]))
    scenario.wait("a first reconcile within budget", lambda: scenario.condition("WithinBudget") == "True")
    scenario.set_load(2.5 * H100_BF16_CAPACITY)  # one replica can carry 40% of it: p95 runs away

    scale_up = scenario.wait("a ScaleUp", lambda: scenario.actions("ScaleUp"))[0]
    assert scale_up["reason"] in ("LatencyOverBudget", "CapacityForecast")
    assert scale_up["replicas"] >= 2
    # every action posts an Event with its reason (after the status records the decision, so poll for it)
    scenario.wait("the ScaleUp's Event", lambda: scenario.events(scale_up["reason"]))
    # 2.5x one replica's capacity needs at least 3 (the 15 s rate window may show the rise in steps)
    scenario.wait("the Deployment scaled to 3 or more", lambda: scenario.deployment().spec.replicas >= 3)
    scenario.wait("p95 back within budget", lambda: scenario.condition("WithinBudget") == "True", timeout=180)
    observed = scenario.status()["observed"]
    assert observed["latencyMs"] <= 2000 and observed["replicas"] >= 3
    labels = {"namespace": namespace, "budget": "llama"}
    replicas = scenario.wait("the replicas metric", lambda: operator_metric(operator, "inferbudget_replicas", **labels))
    assert replicas >= 3
    assert (operator_metric(operator, "inferbudget_decisions_total", action="ScaleUp", **labels) or 0) >= 1
    assert operator_metric(operator, "inferbudget_budget_breached", dimension="latency", **labels) == 0
    # the requests' size, read through Prometheus: every request of the twin's trace is 1000 + 100 tokens (a check
    # of the path; which vLLM series it is read from is tests/integration/test_observe.py's)
    engine = scenario.status()["engineState"]
    assert engine["requestTokens"] == pytest.approx(1100, rel=0.01)
    assert engine["recentRequestTokens"] == pytest.approx(1100, rel=0.01)


def test_memory_over_budget_swaps_to_a_variant_that_fits(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    scenario.create(deployment("llama", "bf16", 1, rate=5),
                    budget("llama", "llama", ["bf16", "fp8"], memory={"maxPerReplica": "16Gi"}))  # bf16 uses ~18Gi

    swap = scenario.wait("a Swap", lambda: scenario.actions("Swap"))[0]
    assert (swap["reason"], swap["variant"]) == ("MemoryOverBudget", "fp8")
    scenario.wait("the fp8 rollout to complete", lambda: rolled_out(scenario.deployment(), "fp8"))
    scenario.wait("status to show fp8", lambda: scenario.status().get("observed", {}).get("variant") == "fp8")
    memory = scenario.wait("fp8's memory in the metrics", lambda: _memory_below(scenario, 16 * 2**30))
    assert memory < 16 * 2**30


def _memory_below(scenario: Scenario, limit: int) -> int | None:
    memory = scenario.status().get("observed", {}).get("memoryPerReplicaBytes")
    return memory if memory is not None and memory < limit else None


def test_falling_load_scales_down_after_the_window_then_swaps_back_to_quality(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    # At 80 req/s bf16 (22.5 req/s a replica) would need 4+ replicas (16.40/h), over the 13.00 ceiling: fp8
    # (33.5 req/s) carries it with 3. At 8 req/s one bf16 replica does.
    scenario.create(deployment("llama", "fp8", 3, rate=80),
                    budget("llama", "llama", ["bf16", "fp8"], cost={"maxPerHour": "13.00"},
                           policy={"objective": "MaximizeQuality"}))
    scenario.wait("fp8 within budget", lambda: scenario.condition("WithinBudget") == "True", timeout=180)
    dropped = scenario.status()["observed"]["time"]
    scenario.set_load(8)

    # Which comes first after the window is a race between two right answers: fp8 scaling down, or the swap to
    # bf16 (sized for the window's peak). Either must wait for the stabilization window.
    first = scenario.wait("a ScaleDown or a swap", lambda: [entry for entry in scenario.history()
                                                            if entry["action"] in ("ScaleDown", "Swap")
                                                            and entry["time"] >= dropped], timeout=180)[0]
    waited = _seconds_between(dropped, first["time"])
    assert waited >= 20 - CYCLE, f"{first['action']} {waited}s after the drop, inside the 20 s window: {first}"
    if first["action"] == "ScaleDown":
        assert first["reason"] == "LoadFell", first
    swap = scenario.wait("a swap back to bf16", lambda: [s for s in scenario.actions("Swap")
                                                          if s["variant"] == "bf16"], timeout=180)[0]
    # the better-quality variant now fits the ceiling; it may also be the cheaper fleet (1 bf16 vs 2 fp8 left)
    assert swap["reason"] in ("BetterQualityFits", "CheaperVariant")
    scenario.wait("the bf16 rollout", lambda: rolled_out(scenario.deployment(), "bf16"))
    scenario.wait("fewer replicas than at the peak", lambda: scenario.deployment().spec.replicas < 3, timeout=180)
    assert float(scenario.status()["lastDecision"]["predicted"]["costPerHour"]) <= 13.00


def _seconds_between(earlier: str, later: str) -> float:
    return (datetime.fromisoformat(later.replace("Z", "+00:00"))
            - datetime.fromisoformat(earlier.replace("Z", "+00:00"))).total_seconds()


def test_prometheus_outage_holds_still_then_recovers(
        cluster: Any, namespace: str, fleet: Fleet, start_operator: Any, tmp_path: Path) -> None:
    own = prometheus.start(tmp_path / "prometheus")
    try:
        own.scrape(*fleet.prometheus.targets())
        start_operator(own.url)
        scenario = Scenario(cluster, namespace)
        scenario.create(deployment("llama", "bf16", 3, rate=5), budget("llama", "llama", ["bf16"]))
        scenario.wait("metrics read", lambda: scenario.condition("MetricsAvailable") == "True")
        port = own.port
        own.stop()

        scenario.wait("MetricsAvailable=False", lambda: scenario.condition("MetricsAvailable") == "False")
        hold = scenario.wait("a Hold", lambda: scenario.status()["lastDecision"]["action"] == "Hold"
                             and scenario.status()["lastDecision"])
        assert hold["reason"] in ("MetricsMissing", "MetricsStale")
        scenario.wait("the outage's Warning Event", lambda: scenario.events("MetricsMissing"))
        # 5 req/s needs one replica, not three: blind, the operator must not scale down.
        scenario.wait("several blind cycles", lambda: len(scenario.events("MetricsMissing")) >= 1
                      and _blind_cycles(scenario) >= 5)
        assert scenario.deployment().spec.replicas == 3
        assert not [a for a in scenario.history() if a["action"] in ("ScaleDown", "Swap")]

        own = prometheus.start(tmp_path / "prometheus", port=port)
        own.scrape(*fleet.prometheus.targets())
        scenario.wait("recovery", lambda: scenario.condition("MetricsAvailable") == "True", timeout=180)
    finally:
        own.stop()


def _blind_cycles(scenario: Scenario) -> int:
    counts = scenario.status().get("engineState", {})
    since = counts.get("blindSince")
    last = counts.get("lastCycleAt")
    return int((last - since) / CYCLE) if since is not None and last is not None else 0


def test_operator_killed_during_a_swap_resumes_without_a_second_swap(
        cluster: Any, namespace: str, start_operator: Any) -> None:
    scenario = Scenario(cluster, namespace)
    first = start_operator()
    scenario.create(deployment("llama", "bf16", 2, rate=5),
                    budget("llama", "llama", ["bf16", "fp8"], memory={"maxPerReplica": "16Gi"}))
    scenario.wait("the swap to start", lambda: scenario.deployment().spec.template.metadata.labels.get(
        "inferbudget.io/variant") == "fp8", timeout=120)
    first.kill()  # SIGKILL mid-rollout: no chance to write anything more
    start_operator()

    scenario.wait("the fp8 rollout to complete", lambda: rolled_out(scenario.deployment(), "fp8"))
    scenario.wait("the restarted operator to reconcile", lambda: scenario.status()["lastDecision"]["action"]
                  in ("None", "Hold") and scenario.status()["observed"]["variant"] == "fp8")
    swaps = scenario.actions("Swap")
    assert [(s["variant"], s["reason"]) for s in swaps] == [("fp8", "MemoryOverBudget")], swaps
    # The decision is in the status before it is carried out; its Event is posted after (kopf queues it), so the
    # kill may take it along. Never two: the restarted operator does not announce the swap again.
    assert len(scenario.events("MemoryOverBudget")) <= 1
    revision = scenario.deployment().metadata.annotations["deployment.kubernetes.io/revision"]
    assert revision == "2", "exactly one pod template change after the first: the swap"


def test_an_hpa_on_the_same_target_is_a_conflict_and_nothing_is_touched(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    hpa = k8s.V2HorizontalPodAutoscaler.model_validate({  # as the client validates a dict it is given
        "metadata": {"name": "llama"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "llama"},
                 "minReplicas": 1, "maxReplicas": 4,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                     "type": "Utilization", "averageUtilization": 80}}}]}})
    k8s.AutoscalingV2Api(cluster.api_client).create_namespaced_horizontal_pod_autoscaler(namespace, hpa)
    scenario.create(deployment("llama", "bf16", 1, rate=3 * H100_BF16_CAPACITY), budget("llama", "llama", ["bf16"]))

    scenario.wait("Conflict=True", lambda: scenario.condition("Conflict") == "True")
    assert scenario.condition("Ready") == "False"
    conflict = scenario.wait("the Conflict Event", lambda: scenario.events("Conflict"))
    assert conflict[0].message.startswith("HorizontalPodAutoscaler llama")
    scenario.wait("a decision that would scale up", lambda: scenario.actions("ScaleUp"), timeout=120)
    assert "inferbudget" not in field_managers(scenario.deployment()), "the operator never wrote to it"


def test_a_rollout_that_cannot_progress_is_rolled_back_and_the_variant_marked_failed(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    # fp8 is cheaper, so the engine swaps to it; but it asks for 16 GPUs and no node has them: its pods stay
    # Pending and the Deployment reports ProgressDeadlineExceeded after 10 s.
    unschedulable = dict(VARIANTS["fp8"], costPerReplicaHour="3.00",
                         container={"resources": {"limits": {"nvidia.com/gpu": "16"}}})
    spec = budget("llama", "llama", ["bf16", "fp8"])
    spec["spec"]["variants"][1] = unschedulable
    scenario.create(deployment("llama", "bf16", 1, rate=5, progress_deadline=10), spec)

    to_fp8 = scenario.wait("the swap to fp8", lambda: [s for s in scenario.actions("Swap") if s["variant"] == "fp8"])
    assert to_fp8[0]["reason"] == "CheaperVariant"
    back = scenario.wait("the rollback", lambda: [s for s in scenario.actions("Swap")
                                                  if s["reason"] == "VariantRolledBack"], timeout=180)[0]
    assert back["variant"] == "bf16"
    scenario.wait("bf16 rolled out again", lambda: rolled_out(scenario.deployment(), "bf16"), timeout=180)
    assert "fp8" in scenario.status()["engineState"]["failures"], "fp8 is avoided for its back-off"
    scenario.wait("the rollback's Event", lambda: scenario.events("VariantRolledBack"))


def test_advise_mode_decides_and_reports_but_never_touches_the_workload(
        cluster: Any, namespace: str, operator: Process) -> None:
    scenario = Scenario(cluster, namespace)
    scenario.create(deployment("llama", "bf16", 1, rate=3 * H100_BF16_CAPACITY),
                    budget("llama", "llama", ["bf16"], mode="Advise"))

    advice = scenario.wait("advice to scale up", lambda: scenario.actions("ScaleUp"))[0]
    assert advice["replicas"] >= 2
    events = scenario.wait("the advice as an Event", lambda: [e for e in scenario.events()
                                                              if e.message.startswith("Advise (not applied)")])
    assert "ScaleUp" in events[0].message
    assert scenario.deployment().spec.replicas == 1
    assert "inferbudget" not in field_managers(scenario.deployment())
    breached = scenario.wait("the latency breach in the metrics", lambda: operator_metric(
        operator, "inferbudget_budget_breached", namespace=namespace, budget="llama", dimension="latency"))
    assert breached == 1


def test_a_budget_reads_its_own_prometheus_with_the_token_its_secret_holds(
        cluster: Any, namespace: str, fleet: Fleet, operator: Process) -> None:
    proxy = FaultyProxy(fleet.prometheus.url, prometheus.free_port(), bearer="s3cret-token")
    try:
        scenario = Scenario(cluster, namespace)
        source = {"url": proxy.url, "bearerTokenSecretRef": {"name": "prometheus-token", "key": "token"}}
        scenario.create(deployment("llama", "bf16", 1, rate=5), budget("llama", "llama", ["bf16"], prometheus=source))
        message = scenario.wait("MetricsAvailable=False naming the Secret", lambda: next(
            (c["message"] for c in scenario.status().get("conditions", [])
             if c["type"] == "MetricsAvailable" and c["status"] == "False"), None))
        assert f"Secret {namespace}/prometheus-token not found" in message, message
        assert proxy.requests == 0  # never asked without the token the budget names
        assert scenario.status()["lastDecision"]["action"] == "Hold"

        cluster.core.create_namespaced_secret(namespace, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="prometheus-token"), string_data={"token": "s3cret-token\n"}))
        scenario.wait("metrics read through the proxy", lambda: scenario.condition("MetricsAvailable") == "True",
                      timeout=180)
        assert proxy.requests > 0 and proxy.unauthorized == 0
    finally:
        proxy.stop()
