"""`python -m inferbudget` / `inferbudget run`: the operator process, configured by flags or environment."""

import argparse
import asyncio
import logging
import os
import random
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import kopf
from kubernetes import client, config

from inferbudget import handlers
from inferbudget.metrics.client import PrometheusClient
from inferbudget.observer import FleetObserver
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
    parser.add_argument("--peering", default=_env("PEERING", ""),
                        help="kopf peering name: replicas sharing it elect one active operator; empty runs "
                             "standalone [$INFERBUDGET_PEERING]")
    parser.add_argument("--priority", type=int, default=int(_env("PRIORITY", "0")),
                        help="peering priority (the highest active replica acts); 0 picks a random one "
                             "[$INFERBUDGET_PRIORITY]")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def _prometheus(args: argparse.Namespace) -> PrometheusClient:
    token = Path(args.prometheus_token_file).read_text().strip() if args.prometheus_token_file else None
    ca = Path(args.prometheus_ca_file).read_text() if args.prometheus_ca_file else None
    return PrometheusClient(args.prometheus_url, bearer_token=token, ca_bundle=ca)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prometheus query is noise
    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    default = _prometheus(args)
    clients: dict[str, PrometheusClient] = {}

    def client_for(url: str | None) -> PrometheusClient:
        if url is None or url == default.base_url:
            return default
        return clients.setdefault(url, PrometheusClient(url))

    metrics = OperatorMetrics()
    serve_metrics(metrics.registry, "0.0.0.0", args.metrics_port)
    configuration = client.Configuration.get_default_copy()
    configuration.connection_pool_maxsize = API_THREADS  # one connection per thread, kept alive
    runtime = handlers.Runtime(client.ApiClient(configuration), FleetObserver(client_for, args.interval), metrics,
                               args.interval)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, args.interval)

    async def configure(settings: kopf.OperatorSettings, **_: object) -> None:  # async: runs in kopf's loop
        # Watching listed namespaces needs no namespace scanning (nor the cluster-wide RBAC it would take).
        settings.scanning.disabled = bool(args.namespaces)
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
