"""Building PromQL safely: every value that comes from a spec or the cluster is escaped, so no spec can
inject PromQL into a query (a pod or namespace name is data, never syntax)."""

import re
from collections.abc import Iterable

_RE2_SPECIAL = re.compile(r"([\\.+*?()|\[\]{}^$])")


def quote(value: str) -> str:
    """A PromQL double-quoted string literal holding exactly value."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def regex_any_of(values: Iterable[str]) -> str:
    """A quoted RE2 regex (for =~) that matches exactly one of values, and nothing else."""
    alternatives = sorted({_RE2_SPECIAL.sub(r"\\\1", value) for value in values})
    return quote("|".join(alternatives) if alternatives else "$^")  # "$^" matches nothing


def matchers(**labels: Iterable[str]) -> str:
    """Label matchers restricting each label to a set of values: namespace=~"a|b",pod=~"x"."""
    return ",".join(f"{label}=~{regex_any_of(values)}" for label, values in labels.items())
