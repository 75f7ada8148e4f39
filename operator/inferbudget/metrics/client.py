"""A small client for Prometheus's HTTP API (instant queries), careful about what "no data" means.

- An empty vector is "no data", never zero; NaN and infinite samples are dropped as no data too.
- 5xx, 429, timeouts and connection errors are retried a bounded number of times with jittered backoff;
  400 and 422 (a bad query) are not retried: retrying cannot fix them.
- Anything else unexpected (malformed JSON, a non-vector result) raises PrometheusUnavailable, so the caller
  holds still instead of acting on garbage.
"""

import asyncio
import json
import math
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
BAD_QUERY_STATUS = frozenset({400, 422})


class PrometheusError(Exception):
    """Base of the errors below; the message says what happened, for status and Events."""


class PrometheusUnavailable(PrometheusError):
    """Prometheus could not be reached or answered nonsense, even after retries."""


class BadQuery(PrometheusError):
    """Prometheus refused the query itself (HTTP 400/422): a bug or a wrong custom query."""


@dataclass(frozen=True, slots=True)
class Sample:
    pairs: tuple[tuple[str, str], ...]  # the labels, (name, value); a tuple, not a dict: a third of the memory
    value: float
    timestamp: float

    def label(self, name: str) -> str | None:
        for key, value in self.pairs:
            if key == name:
                return value
        return None


class _SampleDecoder:
    """Turns each result item into a Sample as json.loads meets it (an object_hook), so that a large answer is
    never held as parsed JSON and as Samples at once: for 3,000 pods' latency buckets (66,000 series, 7 MB)
    that was about 85 MB for a moment, the operator's peak memory. Labels repeat (a pod's name in each of its
    buckets, the bucket bounds in every pod), and so does the time of an instant query: each distinct label
    pair and time is kept once."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], tuple[str, str]] = {}
        self._times: dict[float, float] = {}

    def __call__(self, item: dict[str, Any]) -> Any:
        metric, value = item.get("metric"), item.get("value")
        if len(item) != 2 or not isinstance(metric, dict) or not isinstance(value, list) or len(value) != 2:
            return item  # not a result item: left as it is (and _vector says so if it stands where one should)
        if not all(isinstance(label, str) for label in metric.values()):
            return item
        try:
            number, timestamp = float(value[1]), float(value[0])
        except (TypeError, ValueError):
            return item
        pairs = self._pairs
        return Sample(tuple(pairs.setdefault(pair, pair) for pair in metric.items()), number,
                      self._times.setdefault(timestamp, timestamp))


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 3
    base_delay: float = 0.2
    max_delay: float = 2.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2^attempt)], so retries of many clients spread out."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))


@dataclass
class PrometheusClient:
    base_url: str
    timeout: float = 10.0
    bearer_token: str | None = None
    ca_bundle: str | None = None  # PEM text of the CA that Prometheus's certificate chains to
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)
    queries_sent: int = 0  # for the operator's own metrics and the scale benchmark
    _http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            headers = {"Authorization": f"Bearer {self.bearer_token}"} if self.bearer_token else {}
            verify: ssl.SSLContext | bool = True
            if self.ca_bundle:
                verify = ssl.create_default_context(cadata=self.ca_bundle)
            self._http = httpx.AsyncClient(base_url=self.base_url.rstrip("/"), headers=headers,
                                           timeout=self.timeout, verify=verify)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def query(self, promql: str, at: float | None = None) -> list[Sample]:
        """The instant vector of promql (at a Unix time, or now), without NaN or infinite samples."""
        params = {"query": promql} | ({"time": f"{at:.3f}"} if at is not None else {})
        return _vector(await self._get_with_retries("/api/v1/query", params), promql)

    async def _get_with_retries(self, path: str, params: dict[str, str]) -> Any:
        last_problem = ""
        for attempt in range(self.retry.attempts):
            if attempt:
                await self.sleep(self.retry.delay(attempt, self.rng))
            self.queries_sent += 1
            try:
                response = await self._client().get(path, params=params)
            except httpx.TimeoutException:
                last_problem = f"timed out after {self.timeout:g}s"
                continue
            except httpx.TransportError as error:
                last_problem = f"cannot connect: {error}"
                continue
            if response.status_code in BAD_QUERY_STATUS:
                raise BadQuery(f"Prometheus refused the query ({response.status_code}): "
                               f"{_error_text(response)}; query: {params['query']}")
            if response.status_code in RETRYABLE_STATUS:
                last_problem = f"HTTP {response.status_code}: {_error_text(response)}"
                continue
            if response.status_code != 200:
                raise PrometheusUnavailable(f"{self.base_url}: HTTP {response.status_code}")
            try:
                text = response.content.decode()
                del response  # and its bytes with it, before the parse: 8 MB less at its peak for 3,000 pods' buckets
                return json.loads(text, object_hook=_SampleDecoder())
            except ValueError as error:  # UnicodeDecodeError is one too
                raise PrometheusUnavailable(f"{self.base_url}: answer is not JSON") from error
        raise PrometheusUnavailable(f"{self.base_url}: {last_problem} ({self.retry.attempts} attempts)")


def _error_text(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text[:200]))
    except ValueError:
        return response.text[:200]


def _vector(body: Any, promql: str) -> list[Sample]:
    try:
        if body["status"] != "success":
            raise PrometheusUnavailable(f"query failed: {body.get('error', 'unknown error')}")
        data = body["data"]
        if data["resultType"] != "vector":
            raise PrometheusUnavailable(f"expected an instant vector, got {data['resultType']}: {promql}")
        samples = data["result"]
        strays = [item for item in samples if not isinstance(item, Sample)]
    except (KeyError, TypeError) as error:
        raise PrometheusUnavailable(f"malformed answer to {promql!r}: {error!r}") from error
    if strays:
        raise PrometheusUnavailable(f"malformed answer to {promql!r}: {str(strays[0])[:200]} is not a sample")
    return [sample for sample in samples if math.isfinite(sample.value)]
