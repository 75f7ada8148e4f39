"""kopf's HTTP client gets a bounded connection pool that still leaves room beside every watch stream."""

import asyncio

import kopf
import pytest

from inferbudget.handlers import KOPF_SPARE_CONNECTIONS, kopf_connection_limit, login_with_a_bounded_pool


@pytest.mark.parametrize(("namespaces", "namespace_count"), [
    (None, 1), ([], 1), (["serving"], 1), ([f"team-{i}" for i in range(100)], 100)])
def test_the_limit_leaves_spare_connections_beside_the_most_watches_kopf_can_hold(
        namespaces: list[str] | None, namespace_count: int) -> None:
    # Per namespace (or once, cluster-wide): budgets, Deployments, HPAs, ScaledObjects, the peering object;
    # once: CRDs (kopf's resource discovery), namespaces (scanning), the cluster-wide peering object.
    most_watches = 5 * namespace_count + 3
    limit = kopf_connection_limit(namespaces)
    assert limit >= most_watches + KOPF_SPARE_CONNECTIONS
    assert limit <= 2 * most_watches + KOPF_SPARE_CONNECTIONS, "bounded by what the watches need"


@pytest.mark.parametrize("pattern", ["team-*", "ns-?", "ns-[ab]", "!kube-system"])
def test_namespace_patterns_keep_kopf_unlimited(pattern: str) -> None:
    assert kopf_connection_limit(["serving", pattern]) == 0


def test_the_login_builds_a_session_on_a_pool_of_that_size(monkeypatch: pytest.MonkeyPatch) -> None:
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="t0ken", default_namespace="serving",
                               insecure=True)
    monkeypatch.setattr(kopf, "login_via_client", lambda **_: info)

    async def login() -> tuple[int, str, str | None, str | None]:
        context = await login_with_a_bounded_pool(40)()
        assert context is not None
        session = context.aiohttp_session
        try:
            return (session.connector.limit if session.connector else -1, context.server,
                    context.default_namespace, session.headers.get("Authorization"))
        finally:
            await session.close()

    assert asyncio.run(login()) == (40, "https://127.0.0.1:6443", "serving", "Bearer t0ken")
