"""The Helm chart against the real local cluster: it lints, installs in both modes with every object accepted,
upgrades and uninstalls cleanly; its RBAC is enough for the operator and no more; its dashboard shows data.

The RBAC check runs the operator as its own process with a token of the chart's ServiceAccount (TokenRequest)
and the environment of the chart's Deployment, against the real fleet of the e2e conftest (twin + Prometheus):
it must scale (scale subresource), swap (Deployment patch), write status and post Events, and be refused
Secrets and other namespaces' Deployments. It runs namespace-scoped: a cluster-wide operator would also act
on budgets of other sessions sharing the cluster; the ClusterRole is checked with `kubectl auth can-i`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from tests.support import prometheus
from tests.support.processes import Process, inferbudget
from tests.support.scenario import CYCLE, Fleet, Scenario, budget, deployment
from tests.support.scripts import wait_until

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/inferbudget"
RULES = CHART / "files/rules.yaml"
DASHBOARD = json.loads((CHART / "files/dashboard.json").read_text())
# Kinds the chart creates, by scope, to find what an uninstall left behind.
NAMESPACED_KINDS = ("deployments", "replicasets", "pods", "services", "serviceaccounts", "configmaps", "roles",
                    "rolebindings", "kopfpeerings.kopf.dev")
CLUSTER_KINDS = ("clusterroles", "clusterrolebindings", "clusterkopfpeerings.kopf.dev")
CRDS = {"inferencebudgets.inferbudget.io", "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"}


def release_name() -> str:
    return f"ib-{uuid.uuid4().hex[:6]}"


def create_namespaces(cluster: Any, *names: str) -> None:
    for name in names:
        cluster.core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))


def delete_namespaces(cluster: Any, *names: str) -> None:
    for name in names:
        cluster.core.delete_namespace(name)


def install(cluster: Any, release: str, namespace: str, *values: str) -> None:
    sets = [argument for value in values for argument in ("--set", value)]
    cluster.helm("install", release, str(CHART), "--namespace", namespace, *sets)


def objects_of(cluster: Any, release: str, kinds: tuple[str, ...], *scope: str) -> list[str]:
    """Names of objects labelled as this release's, of these kinds, in the scope given (-n NS or -A)."""
    found: str = cluster.kubectl("get", ",".join(kinds), *scope, "-l", f"app.kubernetes.io/instance={release}",
                                 "-o", "name").stdout
    return found.split()


def crds_present(cluster: Any) -> set[str]:
    return set(cluster.kubectl("get", "crd", "-o", "name").stdout.replace("customresourcedefinition."
                                                                           "apiextensions.k8s.io/", "").split())


# --- lint and render ------------------------------------------------------------------------------------------

def test_chart_lints_strictly_in_every_mode(cluster: Any) -> None:
    cluster.helm("lint", "--strict", str(CHART))
    cluster.helm("lint", "--strict", str(CHART), "--set", "watchNamespaces={team-a,team-b}",
                 "--set", "replicaCount=2", "--set", "peering.enabled=true")


def test_a_misspelt_value_fails_the_install(cluster: Any) -> None:
    result = cluster.helm("template", "x", str(CHART), "--set", "prometheus.urll=http://x:9090", check=False)
    assert result.returncode != 0
    assert "urll" in result.stderr and "not allowed" in result.stderr


def test_two_replicas_without_peering_are_refused(cluster: Any) -> None:
    result = cluster.helm("template", "x", str(CHART), "--set", "replicaCount=2", check=False)
    assert result.returncode != 0 and "peering.enabled" in result.stderr


def kinds_rendered(cluster: Any, *args: str) -> list[str]:
    rendered = cluster.helm("template", "x", str(CHART), *args).stdout
    return [doc["kind"] for doc in yaml.safe_load_all(rendered) if doc]


def test_servicemonitor_and_prometheusrule_follow_the_api_or_the_force_flag(cluster: Any) -> None:
    assert not {"ServiceMonitor", "PrometheusRule"} & set(kinds_rendered(cluster))
    served = kinds_rendered(cluster, "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor",
                            "--api-versions", "monitoring.coreos.com/v1/PrometheusRule")
    assert {"ServiceMonitor", "PrometheusRule"} <= set(served)
    forced = kinds_rendered(cluster, "--set", "metrics.serviceMonitor.force=true",
                            "--set", "prometheusRule.force=true")
    assert {"ServiceMonitor", "PrometheusRule"} <= set(forced)


def test_the_prometheusrule_carries_the_rule_file_unchanged(cluster: Any) -> None:
    rendered = cluster.helm("template", "x", str(CHART), "--set", "prometheusRule.force=true").stdout
    rule = next(doc for doc in yaml.safe_load_all(rendered) if doc and doc["kind"] == "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text())


def test_deploy_manifests_are_up_to_date(cluster: Any) -> None:
    result = subprocess.run(["python3", str(ROOT / "charts/manifests.py"), "--check"], capture_output=True,
                            text=True, env={**os.environ, "HELM": str(cluster.helm_path)})
    assert result.returncode == 0, result.stderr


# --- install, upgrade, uninstall ------------------------------------------------------------------------------

def test_install_with_defaults_upgrade_and_uninstall_leave_only_the_crds(cluster: Any, namespace: str) -> None:
    release = release_name()
    install(cluster, release, namespace)
    manifest = cluster.helm("get", "manifest", release, "--namespace", namespace).stdout
    accepted = cluster.kubectl("get", "-f", "-", "-o", "name", input=manifest).stdout.split()
    assert len(accepted) == len([doc for doc in yaml.safe_load_all(manifest) if doc]), "every object exists"
    assert {"clusterrole", "clusterrolebinding"} <= {name.split(".")[0].split("/")[0] for name in accepted}

    operator = cluster.apps.read_namespaced_deployment(f"{release}-inferbudget", namespace)
    pod, container = operator.spec.template.spec, operator.spec.template.spec.containers[0]
    assert pod.security_context.run_as_non_root and pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert container.security_context.read_only_root_filesystem
    assert not container.security_context.allow_privilege_escalation
    assert container.security_context.capabilities.drop == ["ALL"]
    assert container.liveness_probe.http_get.path == "/healthz"
    assert container.resources.requests and container.resources.limits

    cluster.helm("upgrade", release, str(CHART), "--namespace", namespace, "--reuse-values",
                 "--set", "intervalSeconds=30", "--set", "prometheus.url=http://prometheus.example:9090")
    upgraded = cluster.apps.read_namespaced_deployment(f"{release}-inferbudget", namespace)
    env = {item.name: item.value for item in upgraded.spec.template.spec.containers[0].env}
    assert env["INFERBUDGET_INTERVAL_SECONDS"] == "30"
    assert env["INFERBUDGET_PROMETHEUS_URL"] == "http://prometheus.example:9090"

    cluster.helm("uninstall", release, "--namespace", namespace, "--wait")
    cluster.wait_until("nothing of the release left", lambda: not (
        objects_of(cluster, release, NAMESPACED_KINDS, "-n", namespace)
        + objects_of(cluster, release, CLUSTER_KINDS)), timeout=120)
    assert crds_present(cluster) >= CRDS, "Helm leaves the CRDs (and so every budget) in place"


def test_namespace_scoped_install_has_roles_only_and_a_peering_object_per_namespace(
        cluster: Any, namespace: str) -> None:
    release, suffix = release_name(), uuid.uuid4().hex[:5]
    watched = [f"e2e-team-a-{suffix}", f"e2e-team-b-{suffix}"]
    create_namespaces(cluster, *watched)
    try:
        install(cluster, release, namespace, f"watchNamespaces={{{','.join(watched)}}}", "replicaCount=2",
                "peering.enabled=true")
        assert objects_of(cluster, release, CLUSTER_KINDS) == [], "no cluster-wide object at all"
        for each in watched:
            names = objects_of(cluster, release, ("roles", "rolebindings", "kopfpeerings.kopf.dev"), "-n", each)
            kinds = sorted(name.split("/")[0] for name in names)
            assert kinds == ["kopfpeering.kopf.dev", "role.rbac.authorization.k8s.io",
                             "rolebinding.rbac.authorization.k8s.io"], names
        operator = cluster.apps.read_namespaced_deployment(f"{release}-inferbudget", namespace)
        env = {item.name: item.value for item in operator.spec.template.spec.containers[0].env}
        assert env["INFERBUDGET_NAMESPACES"] == ",".join(watched) and env["INFERBUDGET_PEERING"] == "inferbudget"
        cluster.wait_until("both replicas ready", lambda: cluster.apps.read_namespaced_deployment(
            f"{release}-inferbudget", namespace).status.ready_replicas == 2, timeout=120)

        cluster.helm("uninstall", release, "--namespace", namespace, "--wait")
        cluster.wait_until("nothing of the release left", lambda: not any(
            objects_of(cluster, release, NAMESPACED_KINDS, "-n", each) for each in [namespace, *watched]),
            timeout=120)
    finally:
        delete_namespaces(cluster, *watched)


# --- the operator with the chart's ServiceAccount -------------------------------------------------------------

def token_kubeconfig(cluster: Any, service_account: str, namespace: str, path: Path) -> Path:
    """A kubeconfig that authenticates as the ServiceAccount, with a token from the TokenRequest API."""
    token = cluster.kubectl("create", "token", service_account, "--namespace", namespace,
                            "--duration", "1h").stdout.strip()
    admin = yaml.safe_load(cluster.kubeconfig.read_text())
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "sa",
              "clusters": [{"name": "local", "cluster": admin["clusters"][0]["cluster"]}],
              "users": [{"name": "sa", "user": {"token": token}}],
              "contexts": [{"name": "sa", "context": {"cluster": "local", "user": "sa"}}]}
    path.write_text(yaml.safe_dump(config))
    return path


@dataclass
class ChartOperator:
    """The chart installed namespace-scoped, and the operator running as its ServiceAccount."""

    release: str
    watched: str  # the namespace it reconciles
    other: str  # a namespace it must not touch
    kubeconfig: Path  # the ServiceAccount's
    process: Process
    metrics_port: int
    scenario: Scenario
    prometheus_url: str  # the fleet's, scraping the operator too and evaluating the chart's alerts
    started: float

    def kubectl_as_operator(self, cluster: Any, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(cluster.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def chart_operator(cluster: Any, fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChartOperator]:
    work = tmp_path_factory.mktemp("chart-operator")
    suffix = uuid.uuid4().hex[:5]
    home, watched, other = f"e2e-chart-home-{suffix}", f"e2e-chart-watched-{suffix}", f"e2e-chart-other-{suffix}"
    release = release_name()
    create_namespaces(cluster, home, watched, other)
    process = None
    try:
        install(cluster, release, home, f"watchNamespaces={{{watched}}}")
        kubeconfig = token_kubeconfig(cluster, f"{release}-inferbudget", home, work / "operator.kubeconfig")
        chart_env = {item.name: item.value for item in cluster.apps.read_namespaced_deployment(
            f"{release}-inferbudget", home).spec.template.spec.containers[0].env}
        metrics_port = prometheus.free_port()
        process = Process(inferbudget("run"), work / "operator.log", {
            **chart_env, "KUBECONFIG": str(kubeconfig), "INFERBUDGET_PROMETHEUS_URL": fleet.prometheus.url,
            "INFERBUDGET_INTERVAL_SECONDS": str(CYCLE), "INFERBUDGET_METRICS_PORT": str(metrics_port),
            "INFERBUDGET_HEALTH_PORT": str(prometheus.free_port())}).start()
        monitor_the_operator(fleet.prometheus, metrics_port)

        scenario = Scenario(cluster, watched)
        # Below replicas.min (a scale through the scale subresource) and over the memory budget with bf16
        # (a swap: a patch of the Deployment); a cost ceiling, so that every dashboard panel has a figure.
        scenario.create(deployment("llama", "bf16", 1, rate=5),
                        budget("llama", "llama", ["bf16", "fp8"], replicas={"min": 2, "max": 4}, mode="Enforce",
                               memory={"maxPerReplica": "16Gi"}, cost={"maxPerHour": "20.00"}))
        # A budget whose Prometheus does not answer: MetricsAvailable=False, so an alert is pending.
        blind = Scenario(cluster, watched, "blind")
        blind.create(deployment("blind", "bf16", 1, rate=1),
                     budget("blind", "blind", ["bf16"], prometheus={"url": "http://127.0.0.1:1"}))
        yield ChartOperator(release, watched, other, kubeconfig, process, metrics_port, scenario,
                            fleet.prometheus.url, time.time())
    finally:
        if process is not None:
            process.stop()
            print(f"operator log: {process.log}\n{process.tail()}")
        cluster.helm("uninstall", release, "--namespace", home, check=False)
        delete_namespaces(cluster, home, watched, other)


def monitor_the_operator(server: prometheus.Prometheus, metrics_port: int) -> None:
    """The fleet's Prometheus also scrapes the operator (job "inferbudget", as the ServiceMonitor names it) and
    evaluates the chart's alert rules."""
    directory = server.targets_file.parent
    operator_targets = directory / "operator-targets.json"
    operator_targets.write_text(json.dumps([{"targets": [f"127.0.0.1:{metrics_port}"]}]))
    config = yaml.safe_load((directory / "prometheus.yml").read_text())
    config["rule_files"] = [str(RULES)]
    config["scrape_configs"].append({"job_name": "inferbudget", "honor_labels": True, "file_sd_configs": [
        {"files": [str(operator_targets)], "refresh_interval": "1s"}]})
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
    urllib.request.urlopen(urllib.request.Request(f"{server.url}/-/reload", method="POST"), timeout=10).close()
    wait_until("the alert rules to load", lambda: len(api(server.url, "rules")["groups"]) == 2, 30)


def api(url: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}/api/v1/{path}{query}", timeout=30) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def test_the_operator_with_the_chart_service_account_scales_swaps_and_reports(
        cluster: Any, chart_operator: ChartOperator) -> None:
    scenario = chart_operator.scenario
    scale = scenario.wait("a ScaleUp to replicas.min", lambda: scenario.actions("ScaleUp"), timeout=180)[0]
    assert (scale["reason"], scale["replicas"]) == ("ReplicaBounds", 2)
    swap = scenario.wait("a Swap off the memory breach", lambda: scenario.actions("Swap"), timeout=180)[0]
    assert (swap["reason"], swap["variant"]) == ("MemoryOverBudget", "fp8")
    # The decision is recorded before it is carried out: the Deployment follows.
    target = scenario.wait("the Deployment patched to fp8", lambda: (
        deployment := scenario.deployment()).spec.template.metadata.labels["inferbudget.io/variant"] == "fp8"
        and deployment)
    assert target.spec.replicas >= 2
    scenario.wait("the swap posted as an Event", lambda: scenario.events("MemoryOverBudget"))
    assert scenario.condition("Ready") == "True"


def forbidden_lines(log: str) -> list[str]:
    """Log lines of requests the API server refused. The time is left out of the search: its milliseconds can
    read 403 ("07:28:16,403 INFO ...")."""
    return [line for line in log.splitlines()
            if "403" in _message(line) or "Forbidden" in _message(line)]


def _message(line: str) -> str:
    """A log line without its leading date and time ("2026-11-28 07:28:16,403 INFO kopf.objects: ...")."""
    parts = line.split(" ", 2)
    return parts[2] if len(parts) == 3 and parts[0][:1].isdigit() else line


def test_the_operator_is_never_refused_what_it_does(cluster: Any, chart_operator: ChartOperator) -> None:
    scenario = chart_operator.scenario
    scenario.wait("a Swap", lambda: scenario.actions("Swap"), timeout=300)
    assert forbidden_lines(chart_operator.process.log.read_text()) == []


@pytest.mark.parametrize("refused", [
    ("get", "secrets"),
    ("get", "secrets", "--all-namespaces"),
    ("get", "deployments", "--namespace", "{other}"),
    ("patch", "deployment", "anything", "--namespace", "{other}", "-p", "{{}}"),
    ("delete", "deployment", "llama", "--namespace", "{watched}"),
    ("create", "deployment", "x", "--image", "x", "--namespace", "{watched}"),
    ("get", "nodes"),
])
def test_the_chart_service_account_is_refused_the_rest(
        cluster: Any, chart_operator: ChartOperator, refused: tuple[str, ...]) -> None:
    args = [arg.format(other=chart_operator.other, watched=chart_operator.watched) for arg in refused]
    if "secrets" in args and "--all-namespaces" not in args:
        args += ["--namespace", chart_operator.watched]
    result = chart_operator.kubectl_as_operator(cluster, *args)
    assert result.returncode != 0 and "forbidden" in result.stderr.lower(), result.stdout + result.stderr


def allowed(api_client: k8s.ApiClient, verb: str, resource: str, group: str = "", subresource: str = "") -> bool:
    """Whether the client's identity may do this in every namespace (a SelfSubjectAccessReview)."""
    review = k8s.AuthorizationV1Api(api_client).create_self_subject_access_review(k8s.V1SelfSubjectAccessReview(
        spec=k8s.V1SelfSubjectAccessReviewSpec(resource_attributes=k8s.V1ResourceAttributes(
            verb=verb, group=group, resource=resource, subresource=subresource))))
    assert review.status is not None  # the API server answers a review with its status
    return bool(review.status.allowed)


@contextmanager
def installed_identity(cluster: Any, namespace: str, tmp_path: Path, *values: str) -> Iterator[k8s.ApiClient]:
    """An API client authenticated as the ServiceAccount of a cluster-wide release installed with `values`."""
    release = release_name()
    install(cluster, release, namespace, *values)
    kubeconfig = token_kubeconfig(cluster, f"{release}-inferbudget", namespace, tmp_path / "sa.kubeconfig")
    # kubernetes.config is unannotated
    api_client = k8s_config.new_client_from_config(config_file=str(kubeconfig))  # type: ignore[no-untyped-call]
    try:
        yield api_client
    finally:
        api_client.close()
        cluster.helm("uninstall", release, "--namespace", namespace, "--wait")


def test_the_cluster_role_grants_exactly_the_operators_verbs_everywhere(cluster: Any, namespace: str,
                                                                        tmp_path: Path) -> None:
    with installed_identity(cluster, namespace, tmp_path, "peering.enabled=true",
                            f"peering.name=peers-{namespace}") as api_client:
        for verb, resource, group, subresource in [
                ("watch", "inferencebudgets", "inferbudget.io", ""), ("get", "inferencebudgets", "inferbudget.io", ""),
                ("patch", "inferencebudgets", "inferbudget.io", "status"),
                ("get", "deployments", "apps", ""), ("patch", "deployments", "apps", ""),
                ("patch", "deployments", "apps", "scale"),
                ("patch", "statefulsets", "apps", "scale"), ("list", "pods", "", ""),
                ("watch", "horizontalpodautoscalers", "autoscaling", ""), ("watch", "scaledobjects", "keda.sh", ""),
                ("create", "events", "", ""), ("watch", "customresourcedefinitions", "apiextensions.k8s.io", ""),
                ("patch", "clusterkopfpeerings", "kopf.dev", "")]:
            assert allowed(api_client, verb, resource, group, subresource), f"{verb} {group}/{resource}/{subresource}"
        for verb, resource, group in [("get", "secrets", ""), ("list", "secrets", ""), ("create", "pods", ""),
                                      ("watch", "pods", ""),
                                      ("delete", "deployments", "apps"), ("update", "deployments", "apps"),
                                      ("delete", "inferencebudgets", "inferbudget.io"), ("get", "configmaps", ""),
                                      ("create", "clusterkopfpeerings", "kopf.dev")]:
            assert not allowed(api_client, verb, resource, group), f"{verb} {group}/{resource} should be refused"


def test_read_budget_secrets_grants_get_on_secrets_and_nothing_more(cluster: Any, namespace: str,
                                                                    tmp_path: Path) -> None:
    with installed_identity(cluster, namespace, tmp_path, "rbac.readBudgetSecrets=true") as api_client:
        assert allowed(api_client, "get", "secrets")
        for verb in ("list", "watch", "create", "update", "patch", "delete"):
            assert not allowed(api_client, verb, "secrets"), f"{verb} secrets should be refused"


# --- the dashboard --------------------------------------------------------------------------------------------

def substitute(expr: str, namespace: str) -> str:
    """The dashboard's variables as Grafana would fill them for one namespace and every budget."""
    return expr.replace("$namespace", namespace).replace("$budget", ".*").replace("$__rate_interval", "30s")


def dashboard_queries() -> list[tuple[str, str]]:
    panels = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
    queries = [(f"panel {panel['title']!r} {target['refId']}", target["expr"])
               for panel in panels for target in panel["targets"]]
    queries += [(f"annotation {a['name']!r}", a["expr"]) for a in DASHBOARD["annotations"]["list"] if "expr" in a]
    return queries


def test_every_dashboard_query_returns_data(cluster: Any, chart_operator: ChartOperator) -> None:
    scenario = chart_operator.scenario
    scenario.wait("a Swap", lambda: scenario.actions("Swap"), timeout=300)
    url = chart_operator.prometheus_url
    wait_until("the blind budget's alert to be pending", lambda: api(
        url, "query", query='ALERTS{alertname="InferBudgetMetricsUnavailable"}')["result"], 120)

    def empty() -> list[str]:
        window = {"start": str(chart_operator.started), "end": str(time.time()), "step": "2"}
        return [what for what, expr in dashboard_queries()
                if not api(url, "query_range", query=substitute(expr, chart_operator.watched), **window)["result"]]

    missing: list[str] = []

    def complete() -> bool:  # scrapes and rule evaluations run every second: a panel may need one more round
        missing[:] = empty()
        return not missing

    try:
        cluster.wait_until("every dashboard query to return data", complete, timeout=60)
    except AssertionError as failure:
        raise AssertionError(f"{failure}; no data for: {missing}") from None


def test_the_dashboard_variables_list_the_budgets(chart_operator: ChartOperator) -> None:
    scenario = chart_operator.scenario
    scenario.wait("a first reconcile", lambda: scenario.history(), timeout=180)
    url = chart_operator.prometheus_url
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    metric = re.fullmatch(r"label_values\((\w+), namespace\)", variables["namespace"]["definition"])
    assert metric, variables["namespace"]["definition"]
    wait_until("the namespace in the namespace variable", lambda: chart_operator.watched in api(
        url, "label/namespace/values", **{"match[]": metric.group(1)}), 60)
    budget_selector = re.fullmatch(r"label_values\((.+), budget\)", variables["budget"]["definition"])
    assert budget_selector
    selector = substitute(budget_selector.group(1), chart_operator.watched)
    budgets = api(url, "label/budget/values", **{"match[]": selector})
    assert {"llama", "blind"} <= set(budgets)
