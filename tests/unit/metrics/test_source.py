"""A budget's own Prometheus: which URL, token, CA and timeout its queries use."""

import pytest

from inferbudget.api.spec import PrometheusSource
from inferbudget.metrics.client import PrometheusClient
from inferbudget.metrics.source import DEFAULT, SecretUnreadable, Source, source_of
from inferbudget.run import PrometheusClients, client_of

SECRETS = {("team-a", "prom", "token"): "abc\n", ("team-a", "prom", "ca.crt"): "-----BEGIN CERTIFICATE-----"}


def read(namespace: str, name: str, key: str) -> str:
    if (namespace, name, key) not in SECRETS:
        raise SecretUnreadable(f"Secret {namespace}/{name} not found: create it or fix the name")
    return SECRETS[(namespace, name, key)]


def spec(**fields: object) -> PrometheusSource:
    return PrometheusSource.model_validate(fields)


def test_no_prometheus_section_is_the_operators_own() -> None:
    assert source_of("team-a", None, read).is_default


def test_the_token_and_ca_come_from_the_budgets_namespace() -> None:
    source = source_of("team-a", spec(url="https://prom.team-a:9090", timeoutSeconds=3,
                                      bearerTokenSecretRef={"name": "prom", "key": "token"},
                                      caSecretRef={"name": "prom", "key": "ca.crt"}), read)
    assert source == Source("https://prom.team-a:9090", "abc", "-----BEGIN CERTIFICATE-----", 3.0)


def test_an_unreadable_secret_names_the_field_and_the_secret() -> None:
    with pytest.raises(SecretUnreadable, match=r"spec.prometheus.bearerTokenSecretRef: Secret team-b/prom not"):
        source_of("team-b", spec(bearerTokenSecretRef={"name": "prom", "key": "token"}), read)


def test_the_operators_token_never_goes_to_another_prometheus() -> None:
    default = PrometheusClient("http://prometheus:9090", bearer_token="operator", ca_bundle="operator-ca")
    elsewhere = client_of(Source(url="http://other:9090"), default)
    assert (elsewhere.base_url, elsewhere.bearer_token, elsewhere.ca_bundle) == ("http://other:9090", None, None)
    same = client_of(Source(url="http://prometheus:9090/", timeout_seconds=2.0), default)
    assert (same.bearer_token, same.ca_bundle, same.timeout) == ("operator", "operator-ca", 2.0)
    own_token = client_of(Source(bearer_token="budget"), default)
    assert (own_token.base_url, own_token.bearer_token) == ("http://prometheus:9090", "budget")


def test_the_default_source_is_the_empty_one() -> None:
    assert Source() == DEFAULT and not Source(timeout_seconds=10.0).is_default


def test_clients_are_kept_per_source_and_the_least_recently_used_dropped() -> None:
    default = PrometheusClient("http://prometheus:9090")
    clients = PrometheusClients(default, kept=2)
    first, second = clients(Source(bearer_token="one")), clients(Source(bearer_token="two"))
    assert clients(DEFAULT) is default and clients(Source(bearer_token="one")) is first

    clients(Source(bearer_token="rotated"))  # a third Source: the least recently used one ("two") goes

    assert clients(Source(bearer_token="one")) is first
    assert clients(Source(bearer_token="two")) is not second
