"""The CRD is generated from the models: the committed file must match, and must be a structural schema."""

from pathlib import Path
from typing import Any

import yaml

from inferbudget.api.crd import crd_yaml, render_crd

ROOT = Path(__file__).resolve().parents[3]
CRD_FILE = ROOT / "crds" / "inferbudget.io_inferencebudgets.yaml"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = render_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_committed_crd_is_generated_from_the_models() -> None:
    assert CRD_FILE.read_text() == crd_yaml(), "the CRD drifted from the models: run `make crd`"


def _nodes(schema: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, schema)]
    for key, child in schema.get("properties", {}).items():
        found += _nodes(child, f"{path}.{key}")
    if isinstance(schema.get("items"), dict):
        found += _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        found += _nodes(schema["additionalProperties"], f"{path}{{}}")
    return found


def test_schema_is_structural() -> None:
    """Every node has a type; every object declares properties or is an explicit map or opaque object."""
    for path, node in _nodes(_schema()):
        assert "type" in node, f"{path} has no type"
        if node["type"] == "object" and path != ".metadata":
            explicit = ("properties", "additionalProperties", "x-kubernetes-preserve-unknown-fields")
            assert any(key in node for key in explicit), f"{path} is an object of unknown shape"


def test_spec_preserves_no_unknown_fields() -> None:
    spec_nodes = [(path, node) for path, node in _nodes(_schema()) if path.startswith(".spec")]
    assert spec_nodes and not [p for p, n in spec_nodes if n.get("x-kubernetes-preserve-unknown-fields")]


def test_every_spec_field_is_described_for_kubectl_explain() -> None:
    undescribed = [path for path, node in _nodes(_schema())
                   if path.startswith((".spec.", ".status.")) and not path.endswith(("[]", "{}"))
                   and "description" not in node]
    assert undescribed == []


def test_every_cel_rule_says_what_to_fix() -> None:
    rules = [rule for _, node in _nodes(_schema()) for rule in node.get("x-kubernetes-validations", [])]
    assert len(rules) >= 10
    for rule in rules:
        assert len(rule["message"]) > 15 and rule["message"] != rule["rule"]


def test_crd_names_and_printer_columns() -> None:
    crd = render_crd()
    assert crd["metadata"]["name"] == "inferencebudgets.inferbudget.io"
    assert crd["spec"]["scope"] == "Namespaced"
    assert crd["spec"]["names"]["shortNames"] == ["ib", "ibudget"]
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = {column["name"]: column for column in version["additionalPrinterColumns"]}
    assert list(columns)[:7] == ["Variant", "Replicas", "Latency", "Memory", "Cost/h", "Ready", "Age"]
    assert columns["Reason"]["priority"] == 1, "-o wide adds the last decision's reason"


def test_crd_file_is_one_yaml_document() -> None:
    assert len(list(yaml.safe_load_all(CRD_FILE.read_text()))) == 1


def test_docs_reference_is_generated_from_the_crd() -> None:
    from inferbudget.api.reference import render_reference

    reference = ROOT / "docs" / "reference.md"
    assert reference.read_text() == render_reference(), "docs/reference.md is out of date: run `make docs`"


def test_concepts_doc_explains_every_reason_code() -> None:
    from inferbudget.engine.decision import REASONS

    concepts = (ROOT / "docs" / "concepts.md").read_text()
    assert [reason for reason in REASONS if f"| `{reason}` |" not in concepts] == []
