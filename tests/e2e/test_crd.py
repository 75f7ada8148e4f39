"""The InferenceBudget CRD on a real API server: it installs, explains itself, accepts every shipped example and
rejects every broken manifest of the corpus with the message the corpus promises, just as `inferbudget validate`
does offline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "deploy/examples").glob("*.yaml"))
INVALID = sorted((ROOT / "tests/corpus/invalid").glob("*.yaml"))


def test_crd_installs_and_becomes_established(cluster: Any, crd: dict[str, Any]) -> None:
    installed = json.loads(cluster.kubectl("get", "crd", crd["metadata"]["name"], "-o", "json").stdout)

    conditions = {c["type"]: c["status"] for c in installed["status"]["conditions"]}
    assert conditions["Established"] == "True"
    assert conditions["NamesAccepted"] == "True"
    assert installed["status"]["acceptedNames"]["shortNames"] == ["ib", "ibudget"]
    assert cluster.kubectl("get", "ib", "--all-namespaces").returncode == 0


def test_kubectl_explain_shows_the_latency_field_descriptions(cluster: Any, crd: dict[str, Any]) -> None:
    latency = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["latency"]

    # The CRD reaches the published OpenAPI a moment after it is Established.
    explained = cluster.wait_until("kubectl explain to know the CRD", lambda: (
        r := cluster.kubectl("explain", "inferencebudget.spec.latency", check=False)).returncode == 0 and r.stdout)

    text = " ".join(explained.split())  # explain wraps long descriptions
    assert " ".join(latency["description"].split()) in text
    for field, schema in latency["properties"].items():
        assert re.search(rf"\b{field}\b", text), field
        assert " ".join(schema["description"].split()) in text, field


def test_there_are_examples_and_corpus_files_to_check() -> None:
    """The parametrized tests below would pass vacuously on an empty directory."""
    assert EXAMPLES, "deploy/examples/ has no *.yaml"
    assert INVALID, "tests/corpus/invalid/ has no *.yaml"


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_applies_with_dry_run_then_for_real(
        cluster: Any, crd: dict[str, Any], namespace: str, example: Path) -> None:
    apply = ["apply", "--server-side", "--validate=strict", "--field-manager", "inferbudget-e2e",
             "--namespace", namespace, "-f", str(example)]

    cluster.kubectl(*apply, "--dry-run=server")
    assert cluster.kubectl("get", "ib", "--namespace", namespace, "-o", "name").stdout == ""
    cluster.kubectl(*apply)

    budgets = json.loads(cluster.kubectl("get", "-f", str(example), "--namespace", namespace,
                                         "-o", "json").stdout)
    kinds = [item["kind"] for item in budgets.get("items", [budgets])]
    assert "InferenceBudget" in kinds
    assert validate_offline(example) == (0, [])


@pytest.mark.parametrize("manifest", INVALID, ids=[path.name for path in INVALID])
def test_broken_manifest_is_rejected_by_the_api_server_and_by_validate(
        cluster: Any, crd: dict[str, Any], namespace: str, manifest: Path) -> None:
    expected = expectations(manifest)
    name = yaml.safe_load(manifest.read_text())["metadata"]["name"]

    created = cluster.kubectl("create", "--validate=strict", "--namespace", namespace, "-f", str(manifest),
                              check=False)

    assert created.returncode != 0, f"the API server accepted {manifest.name}:\n{created.stdout}"
    assert expected["message"] in created.stderr
    assert expected["path"] in created.stderr
    stored = cluster.kubectl("get", "ib", name, "--namespace", namespace, check=False)
    assert stored.returncode != 0 and "NotFound" in stored.stderr

    exit_code, problems = validate_offline(manifest)
    assert exit_code == 1, f"inferbudget validate accepted {manifest.name}"
    assert any(problem["path"] == expected["path"] and expected["message"] in problem["message"]
               for problem in problems), problems


def expectations(manifest: Path) -> dict[str, str]:
    """The `# expect-path:` and `# expect-message:` header comments of a corpus file."""
    found = dict(re.findall(r"^#\s*expect-(path|message):\s*(.+?)\s*$", manifest.read_text(), re.MULTILINE))
    assert set(found) == {"path", "message"}, f"{manifest.name} lacks an expect-path or expect-message header"
    return found


def validate_offline(manifest: Path) -> tuple[int, list[dict[str, str]]]:
    """`inferbudget validate --output json FILE`: (exit code, the problems it printed)."""
    command = Path(sys.executable).parent / "inferbudget"
    if not command.exists():
        found = shutil.which("inferbudget")
        assert found, "the inferbudget command is not installed (pip install -e .)"
        command = Path(found)
    result = subprocess.run([str(command), "validate", "--output", "json", str(manifest)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode in (0, 1), f"inferbudget validate failed:\n{result.stdout}{result.stderr}"
    problems = json.loads(result.stdout)
    assert all(set(problem) == {"file", "name", "path", "message"} for problem in problems), problems
    return result.returncode, problems
