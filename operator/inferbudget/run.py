"""`python -m inferbudget` / `inferbudget run`: the operator process, configured by flags or environment."""

import argparse
import asyncio
import ctypes
import logging
import os
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import kopf
from kubernetes import client, config

from inferbudget import handlers
from inferbudget.actuate import kube
from inferbudget.metrics.client import PrometheusClient
from inferbudget.metrics.source import Source
from inferbudget.observer import FleetObserver
from inferbudget.pods import NamespacePods
from inferbudget.secrets import SecretCache
from inferbudget.telemetry import OperatorMetrics, serve_metrics

# Threads for the blocking Kubernetes calls of the reconciles (asyncio.to_thread): a reconcile spends most of
# its time waiting for the API server (its pods' LIST, the status patch), and asyncio's default pool (cores + 4)
# capped 1,000 budgets at about 11 reconciles a second on a 2-core machine (bench/scale.py).
API_THREADS = 32


def _env(name: str, default: str) -> str:
    return os.environ.get(f"INFERBUDGET_{name}", default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prometheus-url", default=_env("PROMETHEUS_URL", "http://localhost:9090"),
                        help="Prometheus base URL, unless a budget sets spec.prometheus.url "
                             "[$INFERBUDGET_PROMETHEUS_URL; default %(default)s]")
    parser.add_argument("--prometheus-token-file", default=_env("PROMETHEUS_TOKEN_FILE", ""),
                        help="file holding a bearer token for Prometheus [$INFERBUDGET_PROMETHEUS_TOKEN_FILE]")
    parser.add_argument("--prometheus-ca-file", default=_env("PROMETHEUS_CA_FILE", ""),
                        help="PEM CA bundle for an https Prometheus [$INFERBUDGET_PROMETHEUS_CA_FILE]")
    parser.add_argument("--namespace", action="append", dest="namespaces",
                        default=[n for n in _env("NAMESPACES", "").split(",") if n],
                        help="watch only this namespace (repeat for several); all namespaces when absent "
                             "[$INFERBUDGET_NAMESPACES, comma-separated]")
    parser.add_argument("--interval", type=float, default=float(_env("INTERVAL_SECONDS", "15")),
                        help="seconds between two reconciles of a budget [$INFERBUDGET_INTERVAL_SECONDS; "
                             "default %(default)s]")
    parser.add_argument("--metrics-port", type=int, default=int(_env("METRICS_PORT", "8080")),
                        help="port of the operator's own /metrics [$INFERBUDGET_METRICS_PORT; default %(default)s]")
    parser.add_argument("--health-port", type=int, default=int(_env("HEALTH_PORT", "8081")),
                        help="port of the liveness endpoint /healthz [$INFERBUDGET_HEALTH_PORT; "
                             "default %(default)s]")
    parser.add_argument("--api-timeout", type=float, default=float(_env("API_TIMEOUT_SECONDS", "30")),
                        help="seconds before a Kubernetes API request (not a watch) is given up; a budget's cycle "
                             "that times out is tried again on the next one [$INFERBUDGET_API_TIMEOUT_SECONDS; "
                             "default %(default)s]")
    parser.add_argument("--peering", default=_env("PEERING", ""),
                        help="kopf peering name: replicas sharing it elect one active operator; empty runs "
                             "standalone [$INFERBUDGET_PEERING]")
    parser.add_argument("--priority", type=int, default=int(_env("PRIORITY", "0")),
                        help="peering priority (the highest active replica acts); 0 picks a random one "
                             "[$INFERBUDGET_PRIORITY]")
    parser.add_argument("--peering-lifetime", type=int, default=int(_env("PEERING_LIFETIME_SECONDS", "60")),
                        help="seconds a replica's peering keep-alive stays valid: a standby takes over from an "
                             "active replica that died without a clean exit within this time plus one interval "
                             "[$INFERBUDGET_PEERING_LIFETIME_SECONDS; default %(default)s]")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def _prometheus(args: argparse.Namespace) -> PrometheusClient:
    token = Path(args.prometheus_token_file).read_text().strip() if args.prometheus_token_file else None
    ca = Path(args.prometheus_ca_file).read_text() if args.prometheus_ca_file else None
    return PrometheusClient(args.prometheus_url, bearer_token=token, ca_bundle=ca)


def client_of(source: Source, default: PrometheusClient) -> PrometheusClient:
    """A client for a budget's own Prometheus settings. The operator's token and CA go only to its own URL: a
    budget naming another Prometheus gets exactly the credentials it names."""
    same_place = source.url is None or source.url.rstrip("/") == default.base_url.rstrip("/")
    return PrometheusClient(
        source.url or default.base_url,
        timeout=source.timeout_seconds or default.timeout,
        bearer_token=source.bearer_token or (default.bearer_token if same_place else None),
        ca_bundle=source.ca_bundle or (default.ca_bundle if same_place else None))


class PrometheusClients:
    """The client for each Source in use: the default one, and one per budget-named Prometheus, kept for its
    connections. At most `kept` of the latter, the least recently used dropped first: a rotated token is a new
    Source, and the old one's client would otherwise be kept for ever. A dropped client is not closed (a query
    may still be using it); its connections close when it is collected."""

    def __init__(self, default: PrometheusClient, kept: int = 256) -> None:
        self.default, self.kept = default, kept
        self._clients: OrderedDict[Source, PrometheusClient] = OrderedDict()

    def __call__(self, source: Source) -> PrometheusClient:
        if source.is_default:
            return self.default
        if source in self._clients:
            self._clients.move_to_end(source)
        else:
            self._clients[source] = client_of(source, self.default)
            if len(self._clients) > self.kept:
                self._clients.popitem(last=False)
        return self._clients[source]


M_ARENA_MAX = -8  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MALLOC_ARENAS = 2
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value, kept from rising
TRIM_SECONDS = 5.0


def _glibc_memory() -> None:
    """Hands memory that Python has freed back to the system. A cycle of 1,000 budgets allocates and frees
    hundreds of MiB (every status patch and its answer, every watch event, the Prometheus answers: 7 MB of JSON
    for 3,000 pods); glibc keeps what it freed for later use, so the operator's RSS settled near 600 MiB, of which
    malloc_trim handed back 300 MiB (bench/scale.py, with gdb). So: a trim every TRIM_SECONDS, from a thread of
    its own (ctypes drops the GIL for the call), and two malloc arenas instead of one per thread that allocates
    at once (up to 8 per core) for the API_THREADS threads' answers. And blocks of MMAP_THRESHOLD_BYTES or more
    (a Prometheus answer's bytes, a TLS read buffer) always get pages of their own, handed back when freed:
    glibc raises that threshold after the first such block is freed (up to 32 MiB), after which they come from
    the heap and stay there until a trim. Done before any thread starts; MALLOC_ARENA_MAX and
    MALLOC_MMAP_THRESHOLD_ in the environment, if set, have the last word; not glibc (musl, macOS): nothing."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    if "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)

    def trim() -> None:
        while True:
            time.sleep(TRIM_SECONDS)
            libc.malloc_trim(0)

    threading.Thread(target=trim, name="malloc-trim", daemon=True).start()


def run(args: argparse.Namespace) -> int:
    _glibc_memory()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prometheus query is noise
    # and one per retried connection while the API server is away: the reconcile says so once per cycle
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    metrics = OperatorMetrics()
    serve_metrics(metrics.registry, "0.0.0.0", args.metrics_port)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_THREADS  # one connection per thread, kept alive
    api = kube.TimedApiClient(args.api_timeout, configuration)
    observer = FleetObserver(PrometheusClients(_prometheus(args)), args.interval)
    pods = NamespacePods(partial(kube.namespace_pods, api), args.interval)
    runtime = handlers.Runtime(api, observer, metrics, args.interval, SecretCache(api).read, pods)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, args.namespaces)

    async def configure(settings: kopf.OperatorSettings, **_: object) -> None:  # async: runs in kopf's loop
        # Watching listed namespaces needs no namespace scanning (nor the cluster-wide RBAC it would take).
        settings.scanning.disabled = bool(args.namespaces)
        # A standby replica resumes when the active one's keep-alive expires (a clean exit withdraws it at
        # once): the lifetime bounds the takeover after a crash.
        settings.peering.lifetime = args.peering_lifetime
        # kopf's own requests (its patches, Events, the initial lists) give up as the operator's do.
        settings.networking.request_timeout = args.api_timeout
        settings.networking.connect_timeout = args.api_timeout
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(API_THREADS, thread_name_prefix="kubernetes"))

    kopf.on.startup(registry=registry)(configure)
    kopf.run(
        registry=registry, memo=kopf.Memo(runtime=runtime),
        clusterwide=not args.namespaces, namespaces=args.namespaces,
        standalone=not args.peering, peering_name=args.peering or None,
        priority=args.priority or random.randint(1, 1_000_000),
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inferbudget", description="Runs the inferbudget operator.")
    add_arguments(parser)
    return run(parser.parse_args(argv))
