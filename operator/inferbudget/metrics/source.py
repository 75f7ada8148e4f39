"""Where a budget's metrics are read: the operator's own Prometheus, or the one its spec.prometheus names, with
a bearer token and a CA bundle from Secrets in the budget's namespace.

The operator reads those Secrets only when the install lets it (the chart's rbac.readBudgetSecrets): a
Secret it may not read, or that is missing, makes the budget's metrics unavailable with a message that says
what to fix, never a crash and never a query sent without the token the budget asked for.
"""

from collections.abc import Callable
from dataclasses import dataclass

from inferbudget.api.spec import PrometheusSource, SecretKeyRef


@dataclass(frozen=True, slots=True)
class Source:
    """A Prometheus and how to reach it. The default Source is the operator's own (its flags)."""

    url: str | None = None  # None: the operator's default URL
    bearer_token: str | None = None
    ca_bundle: str | None = None  # PEM
    timeout_seconds: float | None = None  # None: the operator's default

    @property
    def is_default(self) -> bool:
        return self == DEFAULT


DEFAULT = Source()


class SecretUnreadable(Exception):
    """A Secret a budget refers to that cannot be read; the message says what to fix."""


# (namespace, name, key) -> the key's value; raises SecretUnreadable
SecretReader = Callable[[str, str, str], str]


def source_of(namespace: str, spec: PrometheusSource | None, read_secret: SecretReader) -> Source:
    """The Source a budget's spec.prometheus describes. Raises SecretUnreadable."""
    if spec is None:
        return DEFAULT
    token = _read(namespace, spec.bearer_token_secret_ref, "bearerTokenSecretRef", read_secret)
    ca = _read(namespace, spec.ca_secret_ref, "caSecretRef", read_secret)
    return Source(url=spec.url, bearer_token=token.strip() if token is not None else None, ca_bundle=ca,
                  timeout_seconds=spec.timeout_seconds)


def _read(namespace: str, ref: SecretKeyRef | None, field: str, read_secret: SecretReader) -> str | None:
    if ref is None:
        return None
    try:
        return read_secret(namespace, ref.name, ref.key)
    except SecretUnreadable as error:
        raise SecretUnreadable(f"spec.prometheus.{field}: {error}") from None
