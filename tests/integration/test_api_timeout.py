"""The operator's Kubernetes client against an API server that accepts connections and never answers (as one
waiting on a paused etcd does): every request gives up after the configured timeout instead of hanging."""

import socket
import threading
from collections.abc import Iterator

import pytest
import urllib3
from kubernetes import client

from inferbudget.actuate.kube import TimedApiClient

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback listener that accepts connections, reads nothing and answers nothing."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return
    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    done.set()
    listener.close()
    for connection in held:
        connection.close()


def test_a_request_to_a_silent_api_server_times_out(silent_server: str) -> None:
    configuration = client.Configuration(host=silent_server)
    configuration.retries = False  # one attempt, so that the outcome is this request's own
    api = TimedApiClient(0.5, configuration)
    outcome: list[BaseException] = []

    def patch_status() -> None:
        try:
            client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
                "inferbudget.io", "v1alpha1", "ns", "inferencebudgets", "b", [],
                _content_type="application/json-patch+json")
        except BaseException as error:
            outcome.append(error)
    request = threading.Thread(target=patch_status, daemon=True)
    request.start()
    request.join(timeout=60)  # a deadline for the test, far above the client's timeout; without it: for ever

    assert not request.is_alive(), "the request is still waiting for an answer"
    assert len(outcome) == 1 and isinstance(outcome[0], urllib3.exceptions.ReadTimeoutError), outcome
