"""The container image: built from the Dockerfile with buildah on a Debian base bootstrapped here (no registry,
no Docker engine), it runs as a non-root user without build tools, and the operator in it reconciles a budget
on the local cluster (host network).

The build takes minutes the first time (debootstrap, then pip), about a minute after; hack/image/image.py
caches the base image.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support import prometheus
from tests.support.budgets import Scenario, budget, deployment
from tests.support.processes import Process
from tests.support.scripts import load_script

import inferbudget

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
TAG = "localhost/inferbudget:e2e"


images = load_script("inferbudget_image", ROOT / "hack/image/image.py")


def buildah(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*images.BUILDAH, *args], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"buildah {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def image() -> str:
    started = time.monotonic()
    tag: str = images.build(TAG)
    print(f"built {tag} in {time.monotonic() - started:.0f}s: {images.size(tag)}")
    return tag


@pytest.fixture
def container(image: str) -> Iterator[str]:
    """A working container of the image (buildah's: it runs commands, not the image's entrypoint)."""
    name = buildah("from", "--pull-never", image).stdout.strip()
    yield name
    subprocess.run([*images.BUILDAH, "rm", name], capture_output=True)


def image_config(image: str) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(buildah("inspect", "--type", "image", image).stdout)["OCIv1"]["config"]
    return config


def run_in(container: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*images.BUILDAH, "run", "--isolation", "chroot", container, "--", *command],
                          capture_output=True, text=True, timeout=120)


def test_inferbudget_version_in_the_image(container: str) -> None:
    result = run_in(container, "inferbudget", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"inferbudget {inferbudget.__version__}"


def test_the_image_runs_the_operator_as_a_non_root_user(image: str, container: str) -> None:
    config = image_config(image)
    assert config["Entrypoint"] == ["inferbudget", "run"]
    assert config["User"] == "65532:65532"
    assert run_in(container, "id", "-u").stdout.strip() == "65532"


def test_the_final_stage_has_no_build_tools(container: str) -> None:
    for tool in ("/opt/inferbudget/bin/pip", "/usr/bin/gcc", "/usr/bin/cc", "/usr/bin/make"):
        assert run_in(container, "test", "-e", tool).returncode != 0, f"{tool} is in the image"
    assert run_in(container, "test", "-d", "/src").returncode != 0, "the source copy stays in the build stage"


def test_the_operator_from_the_image_reconciles_a_budget(
        cluster: Any, namespace: str, image: str, container: str, tmp_path: Path) -> None:
    # The image's user (65532) must be able to read the kubeconfig it is given.
    kubeconfig = tmp_path / "kubeconfig"
    shutil.copyfile(cluster.kubeconfig, kubeconfig)
    kubeconfig.chmod(0o644)
    scenario = Scenario(cluster, namespace)
    # Below replicas.min: the operator scales up even without metrics (no Prometheus is needed here).
    scenario.create(deployment("llama", "bf16", 1, rate=1),
                    budget("llama", "llama", ["bf16"], replicas={"min": 2, "max": 4}))
    entrypoint = image_config(image)["Entrypoint"]
    operator = Process(
        [*images.BUILDAH, "run", "--isolation", "chroot", "--network", "host",
         "--volume", f"{kubeconfig}:/etc/inferbudget/kubeconfig:ro",
         "--env", "KUBECONFIG=/etc/inferbudget/kubeconfig", container, "--", *entrypoint,
         "--namespace", namespace, "--interval", "2", "--prometheus-url", "http://127.0.0.1:1",
         "--metrics-port", str(prometheus.free_port()), "--health-port", str(prometheus.free_port())],
        tmp_path / "operator.log").start()
    try:
        scale_up = scenario.wait("a ScaleUp by the operator in the image", lambda: scenario.actions("ScaleUp"),
                                 timeout=180)[0]
        assert (scale_up["reason"], scale_up["replicas"]) == ("ReplicaBounds", 2)
        scenario.wait("the Deployment at 2 replicas", lambda: scenario.deployment().spec.replicas == 2)
    finally:
        stop_group(operator)
        print(f"operator log: {operator.log}\n{operator.tail()}")


def stop_group(process: Process) -> None:
    """SIGTERM to buildah and the operator it started (one process group: Process starts a new session)."""
    if process.process is None or process.process.poll() is not None:
        return
    os.killpg(process.process.pid, signal.SIGTERM)
    try:
        process.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.process.pid, signal.SIGKILL)
        process.process.wait()
