"""The alert rules: valid for Prometheus, unit-tested firing and not firing, and each documented.

promtool (Debian package `prometheus`, which `make system-deps` installs) checks the file and runs
tests/promtool/rules_test.yaml; the Python side checks what promtool cannot: that every alert has its tests, its
annotations and a runbook section that exists.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "charts/inferbudget/files/rules.yaml"
TESTS = ROOT / "tests/promtool/rules_test.yaml"
RUNBOOK = ROOT / "docs/runbook.md"
RUNBOOK_URL = "https://github.com/inferbudget/inferbudget/blob/main/docs/runbook.md#"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is missing: `make system-deps` installs the Debian package prometheus")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, re.MULTILINE)
    return {re.sub(r"[^a-z0-9 _-]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_promtool_accepts_the_rule_file() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in alerts():
        name = alert["alert"]
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name}: no test where it fires"
        assert any(not case["exp_alerts"] for case in mine), f"{name}: no test where it stays quiet"


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook_section() -> None:
    anchors = heading_anchors(RUNBOOK.read_text())
    for alert in alerts():
        name, annotations = alert["alert"], alert["annotations"]
        assert alert["labels"]["severity"] in ("critical", "warning", "info"), name
        assert annotations["summary"] and annotations["description"], name
        url = annotations["runbook_url"]
        assert url == RUNBOOK_URL + name.lower(), f"{name}: runbook_url {url}"
        assert name.lower() in anchors, f"{name}: docs/runbook.md has no section `## {name}`"


def test_the_runbook_has_no_section_for_an_alert_that_does_not_exist() -> None:
    names = {alert["alert"] for alert in alerts()}
    sections = set(re.findall(r"^## (InferBudget\w+)", RUNBOOK.read_text(), re.MULTILINE))
    assert sections == names


def test_alerts_on_a_budget_keep_its_namespace_and_name() -> None:
    """Routing and silences need to know which budget; only OperatorDown is about no budget in particular."""
    for alert in alerts():
        if alert["alert"] == "InferBudgetOperatorDown":
            continue
        assert "by (namespace, budget)" in alert["expr"], alert["alert"]
