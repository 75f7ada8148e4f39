"""Helpers shared by the tests and the demo: loading hack/ scripts as modules, and polling with a deadline."""

import importlib.util
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TypeVar

T = TypeVar("T")


def load_script(name: str, path: Path) -> ModuleType:
    """A script that is not in a package (hack/cluster/cluster.py, hack/image/image.py), as module `name`."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def wait_until(what: str, probe: Callable[[], T | None], timeout: float = 60.0, interval: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy, and return that; fail with the last value seen.

    The only way tests synchronise with processes and clusters: a deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last seen: {value!r}")
        time.sleep(interval)
