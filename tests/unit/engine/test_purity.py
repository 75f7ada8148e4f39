"""The engine is pure: no I/O, no clock, no Kubernetes or HTTP client; time and metrics come in as arguments."""

import ast
import subprocess
import sys
from pathlib import Path

import inferbudget.engine

ENGINE = Path(inferbudget.engine.__file__).parent
# What engine modules may import: arithmetic and data classes, the API's types, and each other.
ALLOWED = {"__future__", "math", "dataclasses", "decimal", "typing", "collections", "itertools", "functools", "enum",
           "bisect", "statistics", "pydantic", "inferbudget.api", "inferbudget.engine"}
# Nothing that reaches a cluster or a network may even be loaded with the engine.
CLIENTS = {"kopf", "kubernetes", "kubernetes_asyncio", "aiohttp", "requests", "httpx", "urllib3",
           "prometheus_api_client"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(module: str) -> bool:
    return any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWED)


def test_engine_modules_import_only_pure_code() -> None:
    found = {f"{path.name}: {module}" for path in sorted(ENGINE.glob("*.py")) for module in _imports(path)
             if not _allowed(module)}
    assert not found, f"the engine imports I/O or a clock: {sorted(found)}"


def test_importing_the_engine_loads_no_cluster_or_http_client() -> None:
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, inferbudget.engine; print(' '.join(sys.modules))"],
        capture_output=True, text=True, check=True).stdout.split()
    assert not {module.split(".")[0] for module in loaded} & CLIENTS
