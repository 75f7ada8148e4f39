"""Generated InferenceBudgets, valid, broken and odd, sent to the real API server (server-side dry-run create):
`inferbudget validate` must give the same verdict, and for a rejection name the same fields.

INFERBUDGET_FUZZ_EXAMPLES=2000 sends more (the default keeps this test short); the sample is derandomized.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import Phase, given, settings
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from tests.support.strategies import FOUND, Manifest, any_manifests, fuzz_settings

from inferbudget.api.crd import GROUP, PLURAL, VERSION
from inferbudget.api.validation import validate_manifest

pytestmark = pytest.mark.e2e

SAMPLE = settings(fuzz_settings(150), phases=[Phase.generate])
NOT_CHECKED = "<nil>"  # the API server's note that rules were skipped after a schema error: not a field


def sample() -> list[Manifest]:
    """The cases found before, then the derandomized sample of manifests, each with its own name."""
    drawn: list[Manifest] = []

    @SAMPLE
    @given(any_manifests())
    def collect(manifest: Manifest) -> None:
        named = manifest["metadata"]["name"] == "fuzzed"  # else a broken name is what is being tested
        metadata = {**manifest["metadata"], "name": f"fuzzed-{len(drawn)}"} if named else manifest["metadata"]
        drawn.append({**manifest, "metadata": metadata})

    collect()
    return [case.manifest for case in FOUND] + drawn


def server_fields(api: k8s.CustomObjectsApi, namespace: str, manifest: Manifest) -> set[str] | None:
    """The fields the API server names in rejecting a dry-run create of the manifest (None: accepted)."""
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest, dry_run="All",
                                            field_validation="Strict")
    except ApiException as error:
        assert error.body is not None  # a rejection has a Status body
        status = json.loads(error.body)
        message = status.get("message", "")
        unknown = re.findall(r'unknown field "((?:[^"\\]|\\.)*)"|Go struct field \.(\w+)', message)
        causes = {cause.get("field", "") for cause in (status.get("details") or {}).get("causes") or []}
        return ({"".join(found) for found in unknown} or causes or {f"<{message}>"}) - {NOT_CHECKED}
    return None


def validate_fields(manifest: Manifest) -> set[str] | None:
    problems = validate_manifest(manifest)
    return {problem.path for problem in problems} - {NOT_CHECKED} if problems else None


def test_validate_and_the_api_server_agree_on_generated_manifests(
        cluster: Any, crd: dict[str, Any], namespace: str) -> None:
    manifests = sample()
    api = k8s.CustomObjectsApi(cluster.api_client)
    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(lambda manifest: server_fields(api, namespace, manifest), manifests))

    disagreements = [(manifest, server, offline) for manifest, server in zip(manifests, verdicts, strict=True)
                     if server != (offline := validate_fields(manifest))]
    assert [verdict or frozenset() for verdict in verdicts[:len(FOUND)]] == [case.fields for case in FOUND]
    accepted = sum(verdict is None for verdict in verdicts)
    assert 0 < accepted < len(manifests), f"{accepted} of {len(manifests)} accepted: the sample is one-sided"
    assert not disagreements, f"{len(disagreements)} of {len(manifests)} disagree:\n" + "\n".join(
        f"API server {server}, validate {offline}: {json.dumps(manifest['spec'])[:1500]}"
        for manifest, server, offline in disagreements[:15])
