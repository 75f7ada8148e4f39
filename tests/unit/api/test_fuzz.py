"""Fuzzing `inferbudget validate` and the engine with generated InferenceBudgets (hypothesis).

Valid manifests are accepted; each broken one is rejected naming the field that was broken; nothing, however
odd, makes validation raise; and every spec validation accepts parses into the model and goes through the
engine with extreme observations, keeping replicas within bounds. INFERBUDGET_FUZZ_EXAMPLES=5000 searches
further (the default keeps the unit tier fast; the examples are derandomized, so CI is deterministic).
"""

import contextlib
import io
import json
import math
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import assume, given
from hypothesis import strategies as st
from tests.support.strategies import (
    FOUND,
    Cycle,
    Found,
    Manifest,
    Mutant,
    any_manifests,
    edge_manifests,
    extreme_cycles,
    fuzz_settings,
    invalid_manifests,
    manifest_of,
    observed,
    valid_manifests,
)

from inferbudget.api.spec import InferenceBudgetSpec
from inferbudget.api.validation import Problem, apply_defaults, root_schema, validate_manifest
from inferbudget.cli import main
from inferbudget.engine import EngineState, decide

FUZZ = fuzz_settings(100)
FEWER = fuzz_settings(50)  # examples that each run the CLI or a dozen engine cycles


def accepted_spec(manifest: Manifest) -> InferenceBudgetSpec:
    """The spec as the operator reads it from the API server: defaulted, then parsed into the model."""
    return InferenceBudgetSpec.model_validate(apply_defaults(manifest, root_schema())["spec"])


def related(reported: str, broken: str) -> bool:
    """The reported path is the broken field, a field inside it, or the object holding it (a map entry may be
    written limits.cpu or limits[cpu])."""
    def inside(inner: str, outer: str) -> bool:
        return inner == outer or inner.startswith((f"{outer}.", f"{outer}["))
    reported, broken = (re.sub(r"\[([^\]0-9][^\]]*)\]", r".\1", path) for path in (reported, broken))
    return inside(reported, broken) or inside(broken, reported)


def names_a_field(problem: Problem, manifest: Manifest) -> bool:
    """A problem names a field: a path into the manifest (or a field of the schema that is missing), or the
    API server's `<nil>` note that further rules were not checked."""
    if problem.path == "<nil>":
        return True
    top = problem.path.split(".")[0].split("[")[0]
    return top in root_schema()["properties"] or (isinstance(manifest, dict) and top in manifest)


@FUZZ
@given(valid_manifests())
def test_valid_manifests_are_accepted_and_parse_into_the_model(manifest: Manifest) -> None:
    assert validate_manifest(manifest) == []
    spec = accepted_spec(manifest)
    wire: dict[str, Any] = spec.to_wire()
    assert wire["variants"][0]["name"] == manifest["spec"]["variants"][0]["name"]


@FUZZ
@given(invalid_manifests())
def test_each_broken_manifest_is_rejected_naming_the_broken_field(mutant: Mutant) -> None:
    problems = validate_manifest(mutant.manifest)

    assert problems, f"accepted after {mutant.mutation}"
    assert any(related(problem.path, mutant.path) for problem in problems), (mutant.mutation, problems)
    assert all(names_a_field(problem, mutant.manifest) for problem in problems), problems


@pytest.mark.parametrize("case", FOUND, ids=[case.what for case in FOUND])
def test_what_the_fuzzing_found_stays_fixed(case: Found) -> None:
    """Each case once made validate disagree with the API server (tests/e2e/test_fuzz.py checks it there)."""
    problems = validate_manifest(case.manifest)

    assert {problem.path for problem in problems} - {"<nil>"} == case.fields
    if not case.fields:
        accepted_spec(case.manifest)


JSON: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=12)


@FUZZ
@given(st.one_of(any_manifests(), JSON.map(manifest_of),
                 st.dictionaries(st.sampled_from(["apiVersion", "kind", "metadata", "spec"]), JSON)))
def test_validation_only_returns_verdicts(manifest: Any) -> None:
    problems = validate_manifest(manifest)

    assert all(isinstance(problem, Problem) and problem.message for problem in problems)
    assert all(names_a_field(problem, manifest) for problem in problems), problems


@pytest.fixture(scope="module")
def manifest_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "budget.yaml"


@FEWER
@given(manifest=any_manifests())
def test_the_validate_command_prints_the_same_verdict(manifest: Manifest, manifest_file: Path) -> None:
    manifest_file.write_text(yaml.safe_dump(manifest, allow_unicode=True))
    printed = io.StringIO()

    with contextlib.redirect_stdout(printed):
        code = main(["validate", "--output", "json", str(manifest_file)])

    expected = validate_manifest(manifest)
    assert code == (1 if expected else 0)
    assert [(p["path"], p["message"]) for p in json.loads(printed.getvalue())] == [
        (p.path, p.message) for p in expected]


def run_engine(spec: InferenceBudgetSpec, history: list[Cycle], *, variant: str | None, replicas: int,
               now: float = 0.0) -> Counter[str]:
    """Every cycle of the history through decide(), the fleet following each decision, with the checks that
    hold for any input; how often each reason was given."""
    state, reasons = EngineState(), Counter[str]()
    for cycle in history:
        now += cycle.seconds
        decision, state = decide(spec, observed(cycle, variant, replicas, now), state, now)

        if not spec.paused:
            assert spec.replicas.min <= decision.replicas <= spec.replicas.max, decision
        for figure in (decision.predicted_latency_ms, decision.predicted_cost_per_hour):
            assert figure is None or math.isfinite(figure), decision
        # The state goes to status.engineState as JSON and comes back from it on the next cycle.
        state = EngineState.from_json(json.loads(json.dumps(state.to_json(), allow_nan=False)))
        reasons[decision.reason] += 1
        variant, replicas = decision.variant or variant, decision.replicas
    return reasons


@FEWER
@given(st.one_of(valid_manifests(), edge_manifests()), st.lists(extreme_cycles, min_size=1, max_size=12),
       st.integers(0, 2000), st.booleans(), st.sampled_from([0.0, 1.7e9]))
def test_every_accepted_spec_goes_through_the_engine(manifest: Manifest, history: list[Cycle], replicas: int,
                                                     labelled: bool, start: float) -> None:
    assume(validate_manifest(manifest) == [])
    spec = accepted_spec(manifest)
    run_engine(spec, history, variant=spec.variants[0].name if labelled else None, replicas=replicas, now=start)


@pytest.mark.parametrize(("capacity", "rate", "latency_ms"), [
    (5e-324, 1e300, 1e300),  # OverflowError: ceil(inf) replicas
    (1.0, sys.float_info.max, 100.0),  # OverflowError squaring rates for the trend
    (None, 1e300, 1e-300),  # inf in the latency fit: the state could not be written as JSON
    (5e-324, 1e9, 1000.0),  # the largest plausible rate at the smallest capacity
])
def test_extreme_figures_the_fuzzing_found_stay_harmless(capacity: float | None, rate: float,
                                                          latency_ms: float) -> None:
    hint = {} if capacity is None else {"capacityHint": {"requestsPerSecond": capacity}}
    variant = {"name": "a", "quality": 1, "costPerReplicaHour": "1", "memory": "1Gi", **hint}
    spec = accepted_spec(manifest_of({"targetRef": {"name": "llm"}, "latency": {"thresholdMs": 800},
                                      "variants": [variant], "replicas": {"min": 1, "max": 1000}}))
    history = [Cycle(seconds=15.0, rps=rate / (1 + step % 2), latency_ms=latency_ms, rollout=False)
               for step in range(12)]
    assert run_engine(spec, history, variant="a", replicas=3)
