"""The chart's files, checked without a cluster or helm: the CRD and deploy/ copies do not drift, the values
schema rejects typos everywhere, and the dashboard has what a platform team looks for.

What needs helm or an API server (lint, rendering, installs, RBAC) is in tests/e2e/test_chart.py.
"""

import json
import re
from pathlib import Path
from typing import Any

import yaml

import inferbudget

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts/inferbudget"
DASHBOARD = json.loads((CHART / "files/dashboard.json").read_text())


def test_the_chart_ships_the_crd_byte_for_byte() -> None:
    source = ROOT / "crds/inferbudget.io_inferencebudgets.yaml"
    assert (CHART / "crds" / source.name).read_bytes() == source.read_bytes(), "copy crds/ into the chart's crds/"


def test_deploy_holds_the_charts_rule_file_and_dashboard() -> None:
    assert (ROOT / "deploy/prometheus/rules.yaml").read_bytes() == (CHART / "files/rules.yaml").read_bytes()
    assert (ROOT / "deploy/grafana/dashboard.json").read_bytes() == (CHART / "files/dashboard.json").read_bytes()


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["appVersion"] == inferbudget.__version__, "appVersion is the operator's version (the image tag)"
    assert chart["kubeVersion"].startswith(">=1.")


def test_kopf_peering_crds_are_the_kinds_kopf_watches() -> None:
    crds = list(yaml.safe_load_all((CHART / "crds/kopf.dev_peerings.yaml").read_text()))
    kinds = {(crd["spec"]["group"], crd["spec"]["names"]["plural"], crd["spec"]["scope"]) for crd in crds}
    assert kinds == {("kopf.dev", "clusterkopfpeerings", "Cluster"), ("kopf.dev", "kopfpeerings", "Namespaced")}
    for crd in crds:
        status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True, "kopf writes free-form peer maps there"


# --- values.schema.json ---------------------------------------------------------------------------------------

SCHEMA = json.loads((CHART / "values.schema.json").read_text())
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
# Kubernetes structures passed through as they are (the API server validates them).
PASS_THROUGH = {"podSecurityContext", "securityContext", "affinity", "resources.requests", "resources.limits"}


def _schema_objects(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if schema.get("type") == "object" and "properties" in schema:
        found.append((path, schema))
        for key, sub in schema["properties"].items():
            found += _schema_objects(sub, f"{path}.{key}".lstrip("."))
    return found


def test_every_schema_object_with_named_keys_is_closed() -> None:
    for path, schema in _schema_objects(SCHEMA):
        assert schema.get("additionalProperties") is False, f"{path or 'values'}: a typo there would pass"


def _value_paths(values: Any, path: str = "") -> list[str]:
    if not isinstance(values, dict) or path in PASS_THROUGH:
        return [path] if path else []
    paths = [path] if path else []
    for key, value in values.items():
        paths += _value_paths(value, f"{path}.{key}".lstrip("."))
    return paths


def _schema_at(path: str) -> dict[str, Any] | None:
    schema: dict[str, Any] | None = SCHEMA
    for key in path.split("."):
        properties = (schema or {}).get("properties")
        if properties is None:  # a free-form map: its keys are the user's
            return schema
        schema = properties.get(key)
    return schema


def test_every_value_is_described_by_the_schema() -> None:
    for path in _value_paths(VALUES):
        assert _schema_at(path) is not None, f"values.yaml has {path}, values.schema.json does not"


def test_every_schema_property_has_a_default_in_values_yaml() -> None:
    for path, schema in _schema_objects(SCHEMA):
        for key in schema["properties"]:
            node: Any = VALUES
            for part in f"{path}.{key}".lstrip(".").split("."):
                assert isinstance(node, dict) and part in node, f"values.yaml lacks {path}.{key}".lstrip(".")
                node = node[part]


def test_values_yaml_explains_its_settings() -> None:
    text = (CHART / "values.yaml").read_text()
    assert text.count("# --") >= 20, "values.yaml documents its values with comments"


def test_default_security_context_is_locked_down() -> None:
    container, pod = VALUES["securityContext"], VALUES["podSecurityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0
    assert pod["seccompProfile"]["type"] == container["seccompProfile"]["type"] == "RuntimeDefault"
    assert VALUES["resources"]["requests"] and VALUES["resources"]["limits"]["memory"]


# --- dashboard.json -------------------------------------------------------------------------------------------

def _panels() -> list[dict[str, Any]]:
    return [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]


def test_dashboard_is_grafana_10_schema_with_a_prometheus_datasource_variable() -> None:
    assert DASHBOARD["schemaVersion"] >= 38, "Grafana 10 writes schemaVersion 38 and later"
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "budget"):
        assert variables[name]["type"] == "query" and variables[name]["multi"] and variables[name]["includeAll"]
        assert variables[name]["datasource"]["uid"] == "${datasource}"
    assert "$namespace" in variables["budget"]["definition"], "the budget list follows the namespace chosen"


def test_every_panel_queries_the_chosen_datasource() -> None:
    for panel in _panels():
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_budget_panels_follow_the_namespace_and_budget_variables() -> None:
    for panel in _panels():
        for target in panel["targets"]:
            if "inferbudget_" in target["expr"] and "prometheus_errors" not in target["expr"]:
                assert '$namespace' in target["expr"] and '$budget' in target["expr"], panel["title"]


def test_dashboard_has_the_panels_a_platform_team_needs() -> None:
    titles = " | ".join(panel["title"] for panel in _panels()).lower()
    for needed in ("latency vs budget", "memory per replica vs budget", "replicas", "variant",
                   "cost per hour vs ceiling", "alerts", "operators up", "reconcile"):
        assert needed in titles, f"no panel on {needed!r}"
    exprs = " ".join(target["expr"] for panel in _panels() for target in panel["targets"])
    assert re.search(r'ALERTS\{alertname=~"InferBudget', exprs), "the firing alerts panel reads ALERTS"


def test_decisions_are_annotations() -> None:
    decisions = [a for a in DASHBOARD["annotations"]["list"] if a["name"] == "Decisions"]
    assert decisions and "inferbudget_decisions_total" in decisions[0]["expr"]
    assert decisions[0]["datasource"]["uid"] == "${datasource}"
    assert "{{reason}}" in decisions[0]["textFormat"]


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    ids = [panel["id"] for panel in DASHBOARD["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in DASHBOARD["panels"]:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(box["x"], box["x"] + box["w"]) for y in range(box["y"], box["y"] + box["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
