"""hack/cluster itself: a second cluster runs beside the first, `up` is idempotent, a crashed component is
reported with its log, a component restarts on its port and pauses, and `down` stops exactly what `up` started."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def test_a_second_cluster_runs_beside_the_first_and_reports_a_crash(
        cluster: Any, cluster_lib: Any, capsys: pytest.CaptureFixture[str]) -> None:
    second = cluster_lib.Cluster("e2e-second")
    second.down()  # what an interrupted earlier run may have left
    try:
        second.up(nodes=1)
        started = {component.name: component.pid for component in second.components()}
        ports = set(json.loads(second.state_file.read_text())["ports"].values())
        first_ports = set(json.loads(cluster_lib.Cluster(cluster.name).state_file.read_text())["ports"].values())
        assert not ports & first_ports

        second.up(nodes=1)
        assert {component.name: component.pid for component in second.components()} == started
        capsys.readouterr()
        assert second.status()
        assert capsys.readouterr().out.count(" healthy") == 5

        scheduler = next(c for c in second.components() if c.name == "kube-scheduler")
        os.kill(scheduler.pid, signal.SIGKILL)
        cluster.wait_until("the killed kube-scheduler to be gone", lambda: not scheduler.is_running())

        assert not second.status()
        report = capsys.readouterr().out
        assert f"kube-scheduler           EXITED   (was pid {scheduler.pid})" in report
        assert "Starting Kubernetes Scheduler" in report  # the tail of its log
        second.up(nodes=1)
        assert second.is_running()

        apiserver = next(c for c in second.components() if c.name == "kube-apiserver")
        ports = json.loads(second.state_file.read_text())["ports"]
        second.restart("kube-apiserver")  # returns once it is ready again
        assert next(c for c in second.components() if c.name == "kube-apiserver").pid != apiserver.pid
        assert json.loads(second.state_file.read_text())["ports"] == ports
        assert second.is_running()
        with second.paused("etcd"):
            capsys.readouterr()
            assert not second.status()
            assert "NOT HEALTHY" in next(line for line in capsys.readouterr().out.splitlines() if "etcd" in line)
        cluster.wait_until("etcd and the API server healthy again", second.is_running)
    finally:
        components = second.components()
        second.down()
    assert components and not any(component.is_running() for component in components)
    assert not second.state_file.exists()
    assert (second.logs / "kube-apiserver.log").exists()
