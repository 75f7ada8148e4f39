"""The Secrets budgets refer to (spec.prometheus), read through the API and kept for a while.

A value is kept for `ttl` seconds, so a rotated token is picked up within that time and a thousand budgets
sharing one Secret cost one read per ttl, not one per cycle. A failed read is kept for a shorter time (the
user fixing RBAC or creating the Secret should not wait long). This is a cache: a restart rebuilds it.
"""

import base64
import binascii
import time
from collections.abc import Callable

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from inferbudget.metrics.source import SecretUnreadable

FORBIDDEN_HINT = ("the operator may not read Secrets: install it with the chart value rbac.readBudgetSecrets=true, "
                  "or remove the reference")


class SecretCache:
    def __init__(self, api: client.ApiClient, ttl: float = 300.0, failure_ttl: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._core = client.CoreV1Api(api)
        self._ttl, self._failure_ttl, self._clock = ttl, failure_ttl, clock
        self._kept: dict[tuple[str, str], tuple[float, dict[str, str] | str]] = {}  # data, or why not

    def read(self, namespace: str, name: str, key: str) -> str:
        """The value of one key (decoded). Raises SecretUnreadable, whose message says what to fix."""
        data = self._secret(namespace, name)
        if isinstance(data, str):
            raise SecretUnreadable(data)
        if key not in data:
            raise SecretUnreadable(f"Secret {namespace}/{name} has no key {key!r} (it has: "
                                   f"{', '.join(sorted(data)) or 'none'})")
        try:
            return base64.b64decode(data[key]).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise SecretUnreadable(f"Secret {namespace}/{name} key {key!r} is not UTF-8 text") from None

    def _secret(self, namespace: str, name: str) -> dict[str, str] | str:
        now = self._clock()
        kept = self._kept.get((namespace, name))
        if kept is not None and kept[0] > now:
            return kept[1]
        try:
            data = self._core.read_namespaced_secret(name, namespace).data or {}
            value: dict[str, str] | str = {k: v if isinstance(v, str) else v.decode() for k, v in data.items()}
            expires = now + self._ttl
        except ApiException as error:
            value, expires = _why(namespace, name, error), now + self._failure_ttl
        self._kept[(namespace, name)] = (expires, value)
        return value


def _why(namespace: str, name: str, error: ApiException) -> str:
    if error.status == 403:
        return f"cannot read Secret {namespace}/{name}: {FORBIDDEN_HINT}"
    if error.status == 404:
        return f"Secret {namespace}/{name} not found: create it or fix the name"
    return f"cannot read Secret {namespace}/{name}: {error.status} {error.reason}"
