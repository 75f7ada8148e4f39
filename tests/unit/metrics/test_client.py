"""The Prometheus client's contract, against scripted HTTP answers (the real server is in tests/integration)."""

import asyncio
import json
import random
from collections.abc import Callable

import httpx
import pytest

from inferbudget.metrics.client import BadQuery, PrometheusClient, PrometheusUnavailable, RetryPolicy


def vector(*samples: tuple[dict[str, str], str]) -> dict[str, object]:
    return {"status": "success", "data": {"resultType": "vector",
                                          "result": [{"metric": m, "value": [1700000000.5, v]} for m, v in samples]}}


def client_answering(answers: list[Callable[[httpx.Request], httpx.Response]],
                     **options: object) -> tuple[PrometheusClient, list[httpx.Request], list[float]]:
    requests: list[httpx.Request] = []
    delays: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return answers[min(len(requests), len(answers)) - 1](request)

    async def record_sleep(seconds: float) -> None:
        delays.append(seconds)

    client = PrometheusClient("http://prometheus.test:9090", sleep=record_sleep, rng=random.Random(1),
                              **options)  # type: ignore[arg-type]
    client._http = httpx.AsyncClient(base_url=client.base_url, transport=httpx.MockTransport(handler))
    return client, requests, delays


def ok(body: object) -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(200, json=body)


def status(code: int, error: str = "boom") -> Callable[[httpx.Request], httpx.Response]:
    return lambda request: httpx.Response(code, json={"status": "error", "error": error})


def test_a_vector_becomes_samples_with_labels_value_and_time() -> None:
    client, requests, _ = client_answering([ok(vector(({"pod": "a"}, "1.5"), ({"pod": "b"}, "2")))])
    samples = asyncio.run(client.query('up{job="x"}'))
    assert [(s.label("pod"), s.value, s.timestamp) for s in samples] == [("a", 1.5, 1700000000.5),
                                                                            ("b", 2.0, 1700000000.5)]
    assert requests[0].url.params["query"] == 'up{job="x"}'


def test_empty_vector_is_no_data_and_nan_or_inf_samples_are_dropped() -> None:
    client, _, _ = client_answering([ok(vector(({"pod": "a"}, "NaN"), ({"pod": "b"}, "+Inf"),
                                               ({"pod": "c"}, "-Inf"), ({"pod": "d"}, "0")))])
    assert [s.label("pod") for s in asyncio.run(client.query("x"))] == ["d"]
    client, _, _ = client_answering([ok(vector())])
    assert asyncio.run(client.query("x")) == []


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504])
def test_transient_errors_are_retried_with_jittered_backoff(code: int) -> None:
    client, requests, delays = client_answering([status(code), status(code), ok(vector(({}, "3"),))])
    assert [s.value for s in asyncio.run(client.query("x"))] == [3.0]
    assert len(requests) == 3 and client.queries_sent == 3
    assert len(delays) == 2 and all(0 <= d <= RetryPolicy().max_delay for d in delays)


def test_retries_are_bounded_and_the_error_says_what_happened() -> None:
    client, requests, _ = client_answering([status(503, "overloaded")])
    with pytest.raises(PrometheusUnavailable, match=r"HTTP 503: overloaded.*3 attempts"):
        asyncio.run(client.query("x"))
    assert len(requests) == 3


@pytest.mark.parametrize("code", [400, 422])
def test_a_bad_query_is_not_retried(code: int) -> None:
    client, requests, _ = client_answering([status(code, "parse error at char 3")])
    with pytest.raises(BadQuery, match="parse error at char 3"):
        asyncio.run(client.query("sum(("))
    assert len(requests) == 1


def test_connection_errors_and_timeouts_are_retried_then_reported() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow")

    client, requests, _ = client_answering([refuse, slow, refuse])
    with pytest.raises(PrometheusUnavailable, match="cannot connect: connection refused"):
        asyncio.run(client.query("x"))
    assert len(requests) == 3


@pytest.mark.parametrize("body", [
    "not json at all", json.dumps({"status": "success"}), json.dumps(vector(({}, "abc"))),
    json.dumps({"status": "success", "data": {"resultType": "matrix", "result": []}}),
])
def test_malformed_answers_are_unavailability_never_data(body: str) -> None:
    client, _, _ = client_answering([lambda request: httpx.Response(200, text=body)])
    with pytest.raises(PrometheusUnavailable):
        asyncio.run(client.query("x"))


def test_an_answer_that_is_not_utf8_is_unavailability() -> None:
    client, _, _ = client_answering([lambda request: httpx.Response(200, content=b'{"status": "\xff"}')])
    with pytest.raises(PrometheusUnavailable, match="not JSON"):
        asyncio.run(client.query("x"))


def test_bearer_token_is_sent() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json=vector())

    client = PrometheusClient("http://p:9090", bearer_token="s3cret")
    real = client._client()
    client._http = httpx.AsyncClient(base_url=client.base_url, headers=real.headers,
                                     transport=httpx.MockTransport(handler))
    asyncio.run(client.query("x"))
    assert seen == ["Bearer s3cret"]


def test_a_large_answer_keeps_each_repeated_label_value_once() -> None:
    buckets = [({"namespace": "ns", "pod": "llama-0", "le": le}, "1") for le in ("0.5", "1", "+Inf")]
    client, _, _ = client_answering([ok(vector(*buckets, ({"namespace": "ns", "pod": "llama-1", "le": "1"}, "2")))])
    samples = asyncio.run(client.query("x"))
    assert [(s.label("pod"), s.label("le"), s.value) for s in samples] == [
        ("llama-0", "0.5", 1.0), ("llama-0", "1", 1.0), ("llama-0", "+Inf", 1.0), ("llama-1", "1", 2.0)]
    assert len({id(s.pairs[1]) for s in samples[:3]}) == 1, "one (pod, name) pair for all its buckets"
    assert len({id(s.pairs[0]) for s in samples}) == 1
    assert len({id(s.pairs[2]) for s in (samples[1], samples[3])}) == 1, "one (le, 1) pair for both pods"
    assert len({id(s.timestamp) for s in samples}) == 1, "one time for the whole instant vector"
    assert samples[0].label("le") == "0.5" and samples[0].label("container") is None


@pytest.mark.parametrize("item", [
    {"metric": {"pod": "a"}, "value": [1.0]}, {"metric": {"pod": 3}, "value": [1.0, "1"]},
    {"metric": {"pod": "a"}, "value": [1.0, "1"], "extra": True}, {"value": [1.0, "1"]},
])
def test_a_result_item_that_is_not_a_sample_is_unavailability(item: dict[str, object]) -> None:
    body = {"status": "success", "data": {"resultType": "vector", "result": [item]}}
    client, _, _ = client_answering([ok(body)])
    with pytest.raises(PrometheusUnavailable, match="is not a sample"):
        asyncio.run(client.query("x"))
