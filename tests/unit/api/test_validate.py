"""`inferbudget validate`: the corpus of broken manifests, the examples, exit codes and error wording."""

import json
from pathlib import Path

import pytest

from inferbudget.cli import main

ROOT = Path(__file__).resolve().parents[3]
CORPUS = sorted((ROOT / "tests" / "corpus" / "invalid").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "deploy" / "examples").glob("*.yaml"))


def expectation(path: Path) -> tuple[str, str]:
    header = dict(line[2:].split(": ", 1) for line in path.read_text().splitlines()
                  if line.startswith("# expect-"))
    return header["expect-path"], header["expect-message"]


def run_json(capsys: pytest.CaptureFixture[str], *files: Path) -> tuple[int, list[dict[str, str]]]:
    code = main(["validate", "--output", "json", *map(str, files)])
    return code, json.loads(capsys.readouterr().out)


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 20
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("manifest", CORPUS, ids=lambda p: p.stem)
def test_each_broken_manifest_fails_with_its_field_path_and_message(
        manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, message = expectation(manifest)
    code, problems = run_json(capsys, manifest)
    assert code == 1
    assert any(p["path"] == path and message in p["message"] for p in problems), problems
    real = [p for p in problems if p["path"] != "<nil>"]
    assert len(real) == 1, f"wrong in more than one way: {real}"


@pytest.mark.parametrize("manifest", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_is_valid(manifest: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_json(capsys, manifest) == (0, [])


def test_text_output_names_file_budget_path_and_message(capsys: pytest.CaptureFixture[str]) -> None:
    manifest = ROOT / "tests" / "corpus" / "invalid" / "replicas-min-above-max.yaml"
    assert main(["validate", str(manifest)]) == 1
    out = capsys.readouterr().out
    assert f"{manifest}: replicas-min-above-max: spec.replicas: replicas.min must not be greater" in out


def test_bad_yaml_exits_2_and_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: inferbudget.io/v1alpha1\nkind: InferenceBudget\nspec: [\n  a: b\n")
    assert main(["validate", str(broken)]) == 2
    assert f"{broken}: not valid YAML at line 5" in capsys.readouterr().err


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_every_problem_of_a_manifest_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "two.yaml"
    manifest.write_text("""
apiVersion: inferbudget.io/v1alpha1
kind: InferenceBudget
metadata: {name: two}
spec:
  targetRef: {name: x}
  latency: {thresholdMs: 800}
  replicas: {min: 4, max: 2}
  variants:
  - {name: a, quality: 0.5, costPerReplicaHour: "1", memory: 1Gi}
  - {name: a, quality: 0.5, costPerReplicaHour: "1", memory: 1Gi}
""")
    code, problems = run_json(capsys, manifest)
    assert code == 1
    assert {p["path"] for p in problems} == {"spec.replicas", "spec.variants"}


def test_other_kinds_in_a_file_are_skipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    assert main(["validate", str(manifest)]) == 0
    assert "no InferenceBudget found" in capsys.readouterr().err
