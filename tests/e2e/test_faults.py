"""Faults of the control plane under a running operator: the API server restarted, etcd hung, another writer
racing it. Each runs on a cluster of this module's own (these faults would disturb the tests sharing the
session's cluster) and asserts that the operator stays up, says what happened, takes no wrong or double action,
loses none of its recorded state, and resumes by itself, carrying out afterwards a change needed during the
fault. The time it took to resume is printed (run with -s to see it)."""

import itertools
import json
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from tests.support.processes import Process
from tests.support.scenario import H100_BF16_CAPACITY, Scenario, budget, deployment, rolled_out

pytestmark = pytest.mark.e2e
API_TIMEOUT = 3  # the operator's --api-timeout in the etcd test: the pause outlasts several of these


@pytest.fixture(scope="module")
def cluster(dedicated_control_plane: Any) -> Any:
    return dedicated_control_plane.kube


@pytest.fixture
def control_plane(dedicated_control_plane: Any) -> Any:
    return dedicated_control_plane.local


class ReplicaRecorder:
    """The Deployment's spec.replicas each time it changes, read every 0.1 s in a thread (a read the API server
    does not answer, while it is down, is skipped). A change undone within 0.1 s may be missed; no count is
    ever made up. (The Deployment controller's ScalingReplicaSet Events, used before, are aggregated and ordered
    by whole seconds: a poor record of the order.)"""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario, self.counts, self.stop = scenario, list[int](), threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)
        self.thread.start()

    def _poll(self) -> None:
        while not self.stop.wait(0.1):
            try:
                replicas = self.scenario.deployment().spec.replicas
            except Exception:
                continue
            if not self.counts or self.counts[-1] != replicas:
                self.counts.append(replicas)


def _start_rising(scenario: Scenario) -> tuple[dict[str, Any], ReplicaRecorder]:
    """One bf16 replica within budget, then a load three of them are needed for: the scale-up the operator
    must carry out once the fault is over. Returns the status before the fault, and the Deployment's record."""
    scenario.create(deployment("llama", "bf16", 1, rate=0.3 * H100_BF16_CAPACITY), budget("llama", "llama", ["bf16"]))
    recorder = ReplicaRecorder(scenario)
    scenario.wait("a first reconcile within budget", lambda: scenario.condition("WithinBudget") == "True")
    before = scenario.status()
    scenario.set_load(2.5 * H100_BF16_CAPACITY)
    return before, recorder


def _assert_nothing_lost_and_scaled_once(scenario: Scenario, before: dict[str, Any], recorder: ReplicaRecorder,
                                         operator: Process) -> None:
    """The history of before the fault is still there, the engine's clock went on, only scale-ups were decided,
    each carried out at most once and in order (the Deployment went through the decided counts, never back),
    the last one is in force, and the operator process never died."""
    after = scenario.status()
    assert after["history"][:len(before["history"])] == before["history"], "recorded decisions were lost"
    assert after["engineState"]["lastCycleAt"] > before["engineState"]["lastCycleAt"]
    actions = [entry for entry in after["history"] if entry["action"] not in ("None", "Hold")]
    assert {entry["action"] for entry in actions} == {"ScaleUp"}, actions
    scenario.wait("the last decided count in force", lambda: recorder.counts[-1:] == _decided(scenario)[-1:],
                  timeout=30)
    recorder.stop.set()
    recorder.thread.join(timeout=5)
    decided, went = _decided(scenario), recorder.counts
    assert _in_order(went, decided), f"the Deployment went through {went}; decided: {decided}"
    assert scenario.deployment().spec.replicas == decided[-1] >= 3
    assert operator.running, f"the operator exited:\n{operator.tail()}"


def _decided(scenario: Scenario) -> list[int]:
    """The replica counts the Deployment should have gone through: 1 as created, then each decided change."""
    counts = [0, 1] + [entry["replicas"] for entry in scenario.actions("ScaleUp")]
    return [later for earlier, later in itertools.pairwise(counts) if earlier != later]


def _in_order(went: list[int], decided: list[int]) -> bool:
    """Every count the Deployment went through was decided, in the order decided, each once."""
    remaining = iter(decided)
    return all(any(count == candidate for candidate in remaining) for count in went)


def _fresh_decision(scenario: Scenario, since: float) -> Callable[[], bool]:
    """A decision recorded after `since`: status times have whole seconds, so in the next second or later."""
    def probe() -> bool:
        observed: str = scenario.status().get("observed", {}).get("time", "")
        return observed >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(math.ceil(since)))
    return probe


def _log_mentions(operator: Process, text: str, times: int = 1) -> Callable[[], bool]:
    return lambda: operator.log.read_text(errors="replace").count(text) >= times


def test_api_server_restarted_mid_cycle(cluster: Any, control_plane: Any, namespace: str,
                                        start_operator: Any) -> None:
    operator = start_operator()
    scenario = Scenario(cluster, namespace)
    before, recorder = _start_rising(scenario)

    control_plane.restart("kube-apiserver")  # returns once the new one is ready, on the same port
    back = time.monotonic()

    scenario.wait("a decision after the restart", _fresh_decision(scenario, time.time()))
    resumed = time.monotonic() - back
    scenario.wait("the scale-up needed meanwhile", lambda: scenario.deployment().spec.replicas >= 3, timeout=180)
    scaled = time.monotonic() - back
    print(f"\nAPI server restart: first decision recorded {resumed:.1f}s after it was ready again, "
          f"Deployment scaled to {scenario.deployment().spec.replicas} after {scaled:.1f}s")
    assert "the API server is unavailable" in operator.log.read_text(), "the outage went unreported"
    _assert_nothing_lost_and_scaled_once(scenario, before, recorder, operator)


def test_api_server_restarted_during_a_swap_swaps_once(cluster: Any, control_plane: Any, namespace: str,
                                                       start_operator: Any) -> None:
    operator = start_operator()
    scenario = Scenario(cluster, namespace)
    scenario.create(deployment("llama", "bf16", 2, rate=5),
                    budget("llama", "llama", ["bf16", "fp8"], memory={"maxPerReplica": "16Gi"}))  # bf16 uses ~18Gi
    scenario.wait("the swap to start", lambda: scenario.deployment().spec.template.metadata.labels.get(
        "inferbudget.io/variant") == "fp8")

    control_plane.restart("kube-apiserver")  # mid-rollout
    back = time.monotonic()

    scenario.wait("the fp8 rollout to complete", lambda: rolled_out(scenario.deployment(), "fp8"), timeout=180)
    scenario.wait("a decision on the rolled-out fp8", lambda: scenario.status()["observed"]["variant"] == "fp8"
                  and scenario.status()["lastDecision"]["action"] in ("None", "Hold"))
    print(f"\nAPI server restart mid-rollout: fp8 rolled out and decided on {time.monotonic() - back:.1f}s after "
          "it was ready again")
    swaps = scenario.actions("Swap")
    assert [(s["variant"], s["reason"]) for s in swaps] == [("fp8", "MemoryOverBudget")], swaps
    assert scenario.deployment().metadata.annotations["deployment.kubernetes.io/revision"] == "2", \
        "exactly one pod template change after the first: the swap"
    # 5 req/s needs one fp8 replica: once the rolled-out fleet has been seen for a whole window, a ScaleDown for
    # the load is right (a slow restart leaves time for it); none may come from the fault or the old variant.
    downs = scenario.actions("ScaleDown")
    assert all(d["reason"] == "LoadFell" and d["variant"] == "fp8" and d["time"] >= swaps[0]["time"]
               for d in downs), "\n".join(json.dumps(entry) for entry in scenario.history())
    assert operator.running, f"the operator exited:\n{operator.tail()}"


def test_etcd_paused_longer_than_the_request_timeouts(cluster: Any, control_plane: Any, namespace: str,
                                                      start_operator: Any) -> None:
    operator = start_operator(None, "--api-timeout", str(API_TIMEOUT))
    scenario = Scenario(cluster, namespace)
    before, recorder = _start_rising(scenario)

    with control_plane.paused("etcd"):
        paused = time.monotonic()
        # held until the operator has given up on the API server twice (each after API_TIMEOUT seconds)
        scenario.wait("two timed-out cycles", _log_mentions(operator, "the API server is unavailable", 2),
                      timeout=60)
        held = time.monotonic() - paused
    back = time.monotonic()

    scenario.wait("a decision after etcd resumed", _fresh_decision(scenario, time.time()), timeout=120)
    resumed = time.monotonic() - back
    scenario.wait("the scale-up needed meanwhile", lambda: scenario.deployment().spec.replicas >= 3, timeout=180)
    scaled = time.monotonic() - back
    print(f"\netcd paused {held:.1f}s (operator API timeout {API_TIMEOUT}s): first decision recorded "
          f"{resumed:.1f}s after it resumed, Deployment scaled to {scenario.deployment().spec.replicas} "
          f"after {scaled:.1f}s")
    assert "timed out" in operator.log.read_text(), "the requests should have timed out, not failed otherwise"
    _assert_nothing_lost_and_scaled_once(scenario, before, recorder, operator)


@dataclass
class Writer:
    """Another controller writing the same object in a loop: read it, let it age a little (so that the
    resourceVersion is often stale by the time it writes), change one field of its own, update (PUT) it with
    that resourceVersion under its own field manager. It checks, on each read, that its last successful
    write is still there."""

    read: Callable[[], Any]
    mine: Callable[[Any], Any]  # its field's value in an object read
    write: Callable[[Any, int], None]  # sets its field to the number given and PUTs the object
    age: float  # seconds between its read and its write
    writes: int = 0
    conflicts: int = 0
    lost: list[str] = field(default_factory=list)
    failure: Exception | None = None
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        try:
            self._loop()
        except Exception as error:  # the test reports it: a thread's exception would otherwise go unseen
            self.failure = error

    def _loop(self) -> None:
        for number in itertools.count(1):
            current = self.read()
            if self.writes and self.mine(current) != self.writes:
                self.lost.append(f"write {self.writes} gone, found {self.mine(current)!r}")
            if self.stop.wait(self.age):
                return
            try:
                self.write(current, number)
                self.writes = number
            except ApiException as error:
                if error.status != 409:
                    raise
                self.conflicts += 1


@pytest.fixture
def writers() -> Iterator[list[tuple[Writer, threading.Thread]]]:
    """Started writers, stopped (and their threads joined) at the end, however the test ends."""
    started: list[tuple[Writer, threading.Thread]] = []
    yield started
    for writer, thread in started:
        writer.stop.set()
        thread.join(timeout=30)


def _start(writers: list[tuple[Writer, threading.Thread]], writer: Writer) -> Writer:
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    writers.append((writer, thread))
    return writer


def _status_writer(scenario: Scenario, history: list[list[Any]]) -> Writer:
    """Owns a condition of its own, ExternalCheck, on the budget's status (as a policy controller would);
    records the operator's history it sees on each read, to check that it only ever grows."""
    group = ("inferbudget.io", "v1alpha1", scenario.namespace, "inferencebudgets", scenario.name)

    def read() -> Any:
        body = scenario.custom.get_namespaced_custom_object(*group)
        assert isinstance(body, dict)  # a custom object comes back as the JSON it is
        history.append(body.get("status", {}).get("history", []))
        return body

    def mine(body: Any) -> int | None:
        condition = next((c for c in body.get("status", {}).get("conditions", []) if c["type"] == "ExternalCheck"),
                         None)
        return int(condition["message"]) if condition else None

    def write(body: Any, number: int) -> None:
        status = body.setdefault("status", {})
        status["conditions"] = [c for c in status.get("conditions", []) if c["type"] != "ExternalCheck"] + [
            {"type": "ExternalCheck", "status": "True", "reason": "Checked", "message": str(number),
             "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        scenario.custom.replace_namespaced_custom_object_status(*group, body, field_manager="e2e-external-check")

    return Writer(read, mine, write, age=0.01)  # often: the operator's cycle should meet it many times


def _deployment_writer(scenario: Scenario) -> Writer:
    """Owns an annotation of its own on the Deployment (as a CD tool stamping a revision would)."""
    apps = scenario.cluster.apps

    def read() -> Any:  # as JSON, so that what is written back is the object as read, byte for byte
        response = apps.read_namespaced_deployment(scenario.name, scenario.namespace, _preload_content=False)
        return json.loads(response.data)

    def mine(workload: Any) -> int | None:
        value = workload["metadata"].get("annotations", {}).get("example.com/audited")
        return int(value) if value else None

    def write(workload: Any, number: int) -> None:
        workload["metadata"].setdefault("annotations", {})["example.com/audited"] = str(number)
        apps.replace_namespaced_deployment(scenario.name, scenario.namespace, workload, field_manager="e2e-auditor")

    return Writer(read, mine, write, age=0.05)


def test_conflicting_writers_on_the_status_and_the_deployment(
        cluster: Any, namespace: str, start_operator: Any, writers: list[tuple[Writer, threading.Thread]]) -> None:
    operator = start_operator()
    scenario = Scenario(cluster, namespace)
    before, recorder = _start_rising(scenario)
    histories: list[list[Any]] = []
    on_status = _start(writers, _status_writer(scenario, histories))
    on_deployment = _start(writers, _deployment_writer(scenario))

    started = time.monotonic()
    scenario.wait("the operator to meet a conflict on the status and decide again",
                  _log_mentions(operator, "409 Conflict"), timeout=120)
    first_conflict = time.monotonic() - started
    scenario.wait("the scale-up, with both writers running", lambda: scenario.deployment().spec.replicas >= 3,
                  timeout=180)
    scenario.wait("the writers to meet conflicts too", lambda: on_status.conflicts and on_deployment.conflicts)
    for writer, thread in writers:
        writer.stop.set()
        thread.join(timeout=30)
    stopped = time.time()
    scenario.wait("a decision after the writers stopped", _fresh_decision(scenario, stopped))
    print(f"\nconflicts: the operator met its first 409 after {first_conflict:.1f}s and logged "
          f"{operator.log.read_text().count('409 Conflict')}; status writer {on_status.writes} writes, "
          f"{on_status.conflicts} conflicts; Deployment writer {on_deployment.writes} writes, "
          f"{on_deployment.conflicts} conflicts")

    assert on_status.failure is None and on_deployment.failure is None, (on_status.failure, on_deployment.failure)
    assert on_status.lost == [] and on_deployment.lost == [], "the operator overwrote another writer's field"
    for earlier, later in itertools.pairwise(histories):
        assert later[:len(earlier)] == earlier, f"the operator's history was rolled back: {earlier} -> {later}"
    assert on_status.mine(scenario.custom.get_namespaced_custom_object(
        "inferbudget.io", "v1alpha1", namespace, "inferencebudgets", "llama")) == on_status.writes
    assert on_deployment.mine(on_deployment.read()) == on_deployment.writes
    _assert_nothing_lost_and_scaled_once(scenario, before, recorder, operator)
