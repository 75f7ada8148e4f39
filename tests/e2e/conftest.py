"""The e2e tier: tests against a real API server, the local control plane of hack/cluster.

The `cluster` fixture brings the cluster up once per session (building its binaries the first time, with the
progress shown live) and stops it when the session ends, unless it was running before any test session began
(a developer's `make cluster-up`), another pytest session still uses it, or INFERBUDGET_KEEP_CLUSTER=1 asks to
keep it for a look afterwards. INFERBUDGET_CLUSTER picks the cluster by name, as for hack/cluster/cluster.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from tests.support import prometheus
from tests.support.processes import Process, inferbudget
from tests.support.scenario import CYCLE, Fleet
from tests.support.scripts import load_script, wait_until

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds/inferbudget.io_inferencebudgets.yaml"
T = TypeVar("T")


local_cluster = load_script("inferbudget_local_cluster", ROOT / "hack/cluster/cluster.py")


@dataclass
class Kube:
    """A running cluster as the tests see it: its kubeconfig, kubectl, helm and API clients."""

    name: str
    kubernetes_version: str  # the release the binaries were built from (hack/cluster/k8s/go.mod)
    kubeconfig: Path
    kubectl_path: Path
    helm_path: Path
    api_client: k8s.ApiClient

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self._run(self.kubectl_path, args, check, input)

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(self.helm_path, args, check, None)

    def _run(self, binary: Path, args: tuple[str, ...], check: bool,
             input: str | None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(binary), "--kubeconfig", str(self.kubeconfig), *args],
                                capture_output=True, text=True, input=input, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"{binary.name} {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}{result.stderr}")
        return result

    wait_until = staticmethod(wait_until)

    @property
    def core(self) -> k8s.CoreV1Api:
        return k8s.CoreV1Api(self.api_client)

    @property
    def apps(self) -> k8s.AppsV1Api:
        return k8s.AppsV1Api(self.api_client)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Kube]:
    local = local_cluster.Cluster(session_cluster_name())
    with uncaptured(request), shared_by_sessions(local):  # a cold build takes a while: show its progress
        yield from kube_of(local)


@dataclass
class ControlPlane:
    """A cluster of one test module's own: its processes (to restart, pause, resume) and the tests' view."""

    local: Any  # hack/cluster/cluster.py's Cluster
    kube: Kube


@pytest.fixture(scope="module")
def dedicated_control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    """A cluster for the requesting module alone, named <session cluster>-<module> (test_faults.py on the session
    cluster "ci": "ci-faults"), up for the module and stopped after it (unless INFERBUDGET_KEEP_CLUSTER=1).
    For tests that disturb the control plane (restart the API server, pause etcd): the tests sharing the
    session's cluster must never see that. A module uses it by overriding `cluster`, so that every fixture
    built on `cluster` (namespace, crd, fleet, start_operator) runs on it:

        @pytest.fixture(scope="module")
        def cluster(dedicated_control_plane): return dedicated_control_plane.kube
    """
    suffix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")
    local = local_cluster.Cluster(f"{session_cluster_name()}-{suffix}")
    with uncaptured(request):
        try:
            local.up()
        except local_cluster.ClusterError as error:
            pytest.fail(f"the module's own cluster did not come up: {error}", pytrace=False)
    try:
        for kube in kube_of(local):
            yield ControlPlane(local, kube)
    finally:
        if os.environ.get("INFERBUDGET_KEEP_CLUSTER") != "1":
            local.down()


def session_cluster_name() -> str:
    default: str = local_cluster.DEFAULT_CLUSTER
    return os.environ.get("INFERBUDGET_CLUSTER", default)


def uncaptured(request: pytest.FixtureRequest) -> contextlib.AbstractContextManager[None]:
    """Output shown live while this block runs (a cluster's build and start), even under pytest's capture."""
    capture = request.config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()


def kube_of(local: Any) -> Iterator[Kube]:
    """The tests' view of a running local cluster, its API client closed at the end."""
    # kubernetes.config is unannotated
    api_client = k8s_config.new_client_from_config(config_file=str(local.kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield Kube(local.name, local_cluster.KUBERNETES_VERSION, local.kubeconfig,
                   local_cluster.tool("kubectl"), local_cluster.tool("helm"), api_client)
    finally:
        api_client.close()


@contextlib.contextmanager
def shared_by_sessions(local: Any) -> Iterator[None]:
    """Bring the cluster up for this pytest session; at the end, stop it if a test session started it and no
    other session still uses it (several developers' `make test` may share one machine and one cluster).
    A cluster that was up before any session (`make cluster-up`) is left running, as is any with
    INFERBUDGET_KEEP_CLUSTER=1."""
    sessions = local.dir.parent / f".{local.name}.sessions"
    lock = local.dir.parent / f".{local.name}.sessions.lock"  # not the cluster's own lock, which up() takes
    started_by_tests, mine = sessions / "started-by-tests", sessions / str(os.getpid())
    with local_cluster.file_lock(lock):
        was_running = local.is_running()
        try:
            local.up()
        except local_cluster.ClusterError as error:
            pytest.fail(f"the local cluster did not come up: {error}", pytrace=False)
        sessions.mkdir(exist_ok=True)
        if not was_running:
            started_by_tests.touch()
        mine.touch()
    try:
        yield
    finally:
        with local_cluster.file_lock(lock):
            mine.unlink()
            others = [path for path in sessions.iterdir() if path.name.isdigit() and pid_exists(int(path.name))]
            if not others and started_by_tests.exists() and os.environ.get("INFERBUDGET_KEEP_CLUSTER") != "1":
                local.down()
                shutil.rmtree(sessions)


def pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture(scope="session")
def cluster_lib() -> ModuleType:
    """hack/cluster/cluster.py, for tests of the cluster tooling itself."""
    return local_cluster


@pytest.fixture
def namespace(cluster: Kube, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting: nothing depends on it being gone)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:5]}"
    cluster.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    # Pods are admitted only once the namespace's ServiceAccount exists; wait for it here, once.
    wait_until(f"ServiceAccount default in {name}",
               lambda: any(sa.metadata is not None and sa.metadata.name == "default"
                           for sa in cluster.core.list_namespaced_service_account(name).items))
    yield name
    cluster.core.delete_namespace(name)


# --- the operator against the cluster: the CRD, the twin and Prometheus, operator processes ---------------


@pytest.fixture(scope="module")
def crd(cluster: Kube) -> dict[str, Any]:
    """The CRD from crds/, installed (or updated to this tree's) and Established. It stays: other modules and
    a developer's operator need it too, and deleting it would delete their InferenceBudgets."""
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager", "inferbudget-e2e",
                    "-f", str(CRD_FILE))
    installed = dict(yaml.safe_load(CRD_FILE.read_text()))
    # Polled here: `kubectl wait` fails at once if it reads the CRD before its status has any condition.
    cluster.wait_until("the CRD to be Established", lambda: established(cluster, installed["metadata"]["name"]))
    return installed


def established(cluster: Kube, name: str) -> bool:
    crd = json.loads(cluster.kubectl("get", "crd", name, "-o", "json").stdout)
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in crd.get("status", {}).get("conditions") or [])


@pytest.fixture(scope="module")
def fleet(cluster: Any, crd: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("fleet")
    trace = work / "constant.csv"  # every request 1000 tokens in, 100 out: loads are set per Deployment
    trace.write_text("timestamp_s,input_tokens,output_tokens\n" +
                     "".join(f"{i / 10},1000,100\n" for i in range(600)))
    port = prometheus.free_port()
    twin = Process(inferbudget("twin", "--trace", str(trace), "--port", str(port), "--tick", "0.5"),
                   work / "twin.log", {"KUBECONFIG": str(cluster.kubeconfig)}).start()
    server = prometheus.start(work / "prometheus")
    server.scrape(f"127.0.0.1:{port}")
    yield Fleet(server, twin)
    twin.stop()
    server.stop()


@pytest.fixture
def start_operator(cluster: Any, fleet: Fleet, namespace: str, tmp_path: Path) -> Iterator[Any]:
    """Starts the operator as its own process for this test's namespace (stopped at the end)."""
    started: list[Process] = []

    def start(prometheus_url: str | None = None, *extra: str) -> Process:
        """`extra`: more flags of `inferbudget run` (peering, say). Each process logs to its own file."""
        metrics_port = prometheus.free_port()
        process = Process(
            [*inferbudget("run"), "--namespace", namespace, "--interval", str(CYCLE),
             "--prometheus-url", prometheus_url or fleet.prometheus.url,
             "--metrics-port", str(metrics_port), "--health-port", str(prometheus.free_port()), *extra],
            tmp_path / f"operator-{len(started)}.log", {"KUBECONFIG": str(cluster.kubeconfig)}).start()
        process.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()
        print(f"operator log: {process.log}\n{process.tail()}")


@pytest.fixture
def operator(start_operator: Any) -> Process:
    process: Process = start_operator()
    return process
