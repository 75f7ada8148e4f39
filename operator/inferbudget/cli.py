"""The `inferbudget` command line: validate manifests now; run, simulate, explain and twin as they land."""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from inferbudget import __version__
from inferbudget import run as operator
from inferbudget.api.crd import KIND
from inferbudget.api.validation import validate_manifest

EXIT_OK, EXIT_PROBLEMS, EXIT_UNREADABLE = 0, 1, 2


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
