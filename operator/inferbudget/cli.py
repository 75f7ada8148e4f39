"""The `inferbudget` command line: validate, run, simulate and twin."""

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbudget import __version__
from inferbudget import run as operator
from inferbudget.api.crd import KIND

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C


@dataclass(frozen=True)
class FileProblem:
    file: str
    name: str
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.name}: {self.path}: {self.message}"


class UnreadableInput(Exception):
    """A file that cannot be read or is not YAML; the message names the file and the line."""


def _load_documents(file: str) -> list[Any]:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except OSError as error:
        raise UnreadableInput(f"{file}: cannot read: {error.strerror or error}") from error
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise UnreadableInput(f"{file}: not valid YAML at {where}: {error.problem or error}") from error
    except yaml.YAMLError as error:
        raise UnreadableInput(f"{file}: not valid YAML: {error}") from error


def _budgets(documents: list[Any]) -> Iterator[dict[str, Any]]:
    for document in documents:
        if isinstance(document, dict) and document.get("kind") == f"{KIND}List":
            yield from (item for item in document.get("items", []) if isinstance(item, dict))
        elif isinstance(document, dict) and document.get("kind") == KIND:
            yield document


def _name_of(manifest: dict[str, Any]) -> str:
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    namespace = metadata.get("namespace")
    name = metadata.get("name") or metadata.get("generateName") or "<unnamed>"
    return f"{namespace}/{name}" if namespace else str(name)


def validate_files(files: Sequence[str]) -> tuple[list[FileProblem], int]:
    """Every problem in the InferenceBudgets of these files, and how many budgets were checked."""
    from inferbudget.api.validation import validate_manifest  # here: the operator needs no CEL interpreter (9 MiB)

    problems: list[FileProblem] = []
    checked = 0
    for file in files:
        for manifest in _budgets(_load_documents(file)):
            checked += 1
            name = _name_of(manifest)
            problems += [FileProblem(file, name, p.path, p.message) for p in validate_manifest(manifest)]
    return problems, checked


def _cmd_validate(args: argparse.Namespace) -> int:
    try:
        problems, checked = validate_files(args.files)
    except UnreadableInput as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    if args.output == "json":
        print(json.dumps([asdict(problem) for problem in problems], indent=2))
    else:
        for problem in problems:
            print(problem)
        verdict = f"{len(problems)} problem(s)" if problems else "valid"
        print(f"{checked} InferenceBudget(s) checked: {verdict}", file=sys.stderr)
    if checked == 0:
        print("warning: no InferenceBudget found in the given files", file=sys.stderr)
    return EXIT_PROBLEMS if problems else EXIT_OK


def _cmd_twin(args: argparse.Namespace) -> int:
    import threading

    from kubernetes import config

    from inferbudget.actuate.kube import TimedApiClient
    from inferbudget.sim.fleet import ProfileError, length_sample, load_profile
    from inferbudget.sim.traces import TraceError, load_trace
    from inferbudget.sim.twin import Twin, run_forever
    from inferbudget.telemetry import serve_text

    malformed = [item for item in args.variant if "=" not in item]
    if malformed:
        print(f"error: --variant {malformed[0]!r}: expected BUDGET=PROFILE, e.g. bf16=bf16-h100", file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        trace = load_trace(args.trace, time_scale=args.time_scale)
        profile = load_profile(args.profile)
    except (TraceError, ProfileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s twin: %(message)s")
    config.load_kube_config()  # type: ignore[no-untyped-call]
    variant_map = dict(item.split("=", 1) for item in args.variant)
    # a listing that hangs (a stalled API server) must not stop the pods' clock: give up and serve as last seen
    twin = Twin(TimedApiClient(timeout=5), profile, trace, length_sample(trace), variant_map, args.gpu,
                args.namespace or None)
    server = serve_text(twin.collector.render, args.host, args.port)
    print(f"twin: serving vLLM metrics on http://{args.host}:{args.port}/metrics, replaying {trace.name} "
          f"(time scale {args.time_scale:g})", flush=True)
    stop = threading.Event()
    try:
        run_forever(twin, args.tick, stop)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
    return EXIT_OK


def _cmd_simulate(args: argparse.Namespace) -> int:
    from inferbudget.sim.budget import BudgetError, load_budget
    from inferbudget.sim.engine_policy import misleading_hints
    from inferbudget.sim.fleet import ProfileError, load_profile
    from inferbudget.sim.suite import POLICY_RUNNERS, RunContext, run_policies
    from inferbudget.sim.traces import TraceError, load_trace

    names = list(POLICY_RUNNERS) if args.policy == "all" else args.policy.split(",")
    unknown = [name for name in names if name not in POLICY_RUNNERS]
    if unknown:
        print(f"error: unknown policy {unknown[0]!r}; choose from {', '.join(POLICY_RUNNERS)} or all",
              file=sys.stderr)
        return EXIT_UNREADABLE
    try:
        with _progress_bar() as progress:
            if progress is not None:
                progress(0.0, f"loading {args.trace}")
            trace = load_trace(args.trace, time_scale=args.time_scale, seed=args.seed)
            budget = load_budget(args.budget, attainment_target=args.attainment)
            context = RunContext(trace, load_profile(args.profile), budget, progress, start=args.start)
            if "inferbudget" in names:
                for line in misleading_hints(context.budget, context.profile, trace):
                    print(("\r\033[K" if progress is not None else "") + f"note: {line}", file=sys.stderr)
            results = run_policies(names, context, jobs=args.jobs or os.cpu_count() or 1)
    except (TraceError, ProfileError, BudgetError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNREADABLE
    except KeyboardInterrupt:
        print("interrupted: no figures (the policies' runs were stopped)", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps({"policies": [result.summary() for result in results]}, indent=2))
    else:
        print(_simulation_table(trace.name, results))
    return _plot(results, args.plot, trace.name) if args.plot else EXIT_OK


def _plot(results: list[Any], path: str, title: str) -> int:
    """Drawn after the figures are printed, so that a plot that fails loses no run."""
    from inferbudget.sim.plot import plot_results

    try:
        plot_results(results, path, title=title)
    except ImportError:
        print("error: --plot needs matplotlib (pip install 'inferbudget[plot]')", file=sys.stderr)
        return EXIT_UNREADABLE
    except OSError as error:
        print(f"error: cannot write the plot {path}: {error.strerror or error}", file=sys.stderr)
        return EXIT_UNREADABLE
    return EXIT_OK


@contextmanager
def _progress_bar() -> Iterator[Callable[[float, str], None] | None]:
    """A progress bar on stderr when it is a terminal (None otherwise), redrawn in place on one line; the line
    ends with the run, so that the results or an error print below it."""
    if not sys.stderr.isatty():
        yield None
        return
    drawn = False

    def show(fraction: float, message: str) -> None:
        nonlocal drawn
        filled = int(fraction * 20)
        try:
            columns = os.get_terminal_size(sys.stderr.fileno()).columns or 80  # 0: a terminal that does not say
        except (OSError, ValueError):
            columns = 80
        width = max(columns - 24, 10)  # what the bar leaves of the line
        print(f"\r[{'#' * filled}{'.' * (20 - filled)}] {message[:width]:<{width}}", end="", file=sys.stderr,
              flush=True)
        drawn = True

    try:
        yield show
    finally:
        if drawn:
            print(file=sys.stderr, flush=True)


def _simulation_table(trace: str, results: list[Any]) -> str:
    header = ("policy", "cost", "GPU-h", "SLO req", "SLO 1-min", "quality", "scales", "swaps", "breach s")
    rows = [header] + [(r.policy, f"{r.cost:.2f}", f"{r.gpu_hours:.1f}", f"{r.slo_attainment_requests:.2%}",
                        f"{r.slo_attainment_windows:.2%}", f"{r.mean_quality:.3f}", str(r.scale_events),
                        str(r.swaps), f"{r.breach_seconds:.0f}") for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in rows]
    return f"\ntrace: {trace}\n" + "\n".join(lines)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1 (0.99 for 99%), got {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferbudget", description="Keeps model serving within latency, memory and cost budgets.")
    parser.add_argument("--version", action="version", version=f"inferbudget {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    validate = commands.add_parser(
        "validate", help="check InferenceBudget manifests offline with the API server's rules",
        description="Check InferenceBudget manifests offline with the API server's schema and CEL rules. "
        "Exit 0: all valid; 1: problems found (each printed with its field path); 2: unreadable input.")
    validate.add_argument("files", nargs="+", metavar="FILE", help="YAML files ('-' reads standard input)")
    validate.add_argument("--output", "-o", choices=("text", "json"), default="text")
    validate.set_defaults(handler=_cmd_validate)

    run = commands.add_parser("run", help="run the operator (like python -m inferbudget)",
                              description="Runs the operator against the current kubeconfig or in-cluster.")
    operator.add_arguments(run)
    run.set_defaults(handler=operator.run)

    simulate = commands.add_parser(
        "simulate", help="replay a trace through the engine and the HPA, KEDA, Knative baselines and an oracle",
        description="Replays a trace through the serving-fleet model under each policy and prints cost, "
        "GPU-hours, SLO attainment (share of requests within the latency threshold and share of 1-minute "
        "windows within budget), request-weighted mean quality, scale events, swaps and seconds in breach.")
    simulate.add_argument("--trace", required=True, help="Azure CSV, Mooncake JSONL, ServeGen directory or file, "
                          "or a CSV with header timestamp_s,input_tokens,output_tokens")
    simulate.add_argument("--profile", default=None, help="fleet profile (default: the shipped Llama-3.1-8B)")
    simulate.add_argument("--budget", default=None, help="InferenceBudget manifest (default: a chat budget)")
    simulate.add_argument("--policy", default="all", help="inferbudget, hpa, keda, kpa, oracle, a comma list, or all")
    simulate.add_argument("--time-scale", type=_positive_float, default=1.0,
                          help="multiplies the trace's timestamps")
    simulate.add_argument("--seed", type=int, default=0, help="seed of synthesised arrivals (ServeGen)")
    simulate.add_argument("--start", choices=("cold", "warm"), default="cold",
                          help="fleet at t=0: cold (about replicas.min) or warm (sized for the first 5 minutes)")
    simulate.add_argument("--attainment", type=_fraction, default=0.99, metavar="FRACTION",
                          help="share of requests within the latency threshold that meets the SLO: the baselines "
                          "are tuned to their cheapest run reaching it, the oracle plans for it and a warm start "
                          "sizes every policy's fleet for it (default %(default)s; 0.95 to compare at a p95 "
                          "budget's own percentile)")
    simulate.add_argument("--jobs", type=_positive_int, default=None, metavar="N",
                          help="policies run in N worker processes at once (default: one per core)")
    simulate.add_argument("--json", action="store_true", help="print JSON for other tools")
    simulate.add_argument("--plot", metavar="OUT.png", help="draw load, replicas, variant and latency over time")
    simulate.set_defaults(handler=_cmd_simulate)

    twin = commands.add_parser(
        "twin", help="a simulated vLLM fleet for the budgets' targets, serving metrics for Prometheus",
        description="Watches the InferenceBudgets' target Deployments and their Ready pods, replays a trace "
        "across them with the fleet model and serves vLLM-format metrics per pod. Set the annotation "
        "twin.inferbudget.io/requests-per-second on a Deployment to give it a fixed load instead.")
    twin.add_argument("--trace", required=True, help="trace file or ServeGen directory (see `simulate`)")
    twin.add_argument("--time-scale", type=_positive_float, default=1.0,
                      help="multiplies the trace's timestamps: 0.1 replays it 10x faster (10x the rate)")
    twin.add_argument("--profile", default=None, help="fleet profile YAML (default: the shipped Llama-3.1-8B)")
    twin.add_argument("--gpu", default="h100-80gb", help="GPU of the profile variants (default %(default)s)")
    twin.add_argument("--variant", action="append", default=[], metavar="BUDGET=PROFILE",
                      help="map a budget's variant name to a profile variant (default: by precision name)")
    twin.add_argument("--namespace", action="append", default=[], help="serve only these namespaces")
    twin.add_argument("--host", default="127.0.0.1")
    twin.add_argument("--port", type=int, default=9400)
    twin.add_argument("--tick", type=float, default=1.0, help="seconds between two simulation steps")
    twin.set_defaults(handler=_cmd_twin)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
