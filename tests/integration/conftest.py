from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support import prometheus


@pytest.fixture(scope="session")
def real_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[prometheus.Prometheus]:
    server = prometheus.start(tmp_path_factory.mktemp("prometheus"))
    yield server
    server.stop()


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path
