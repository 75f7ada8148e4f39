"""`python -m inferbudget` runs the operator."""

import sys


def run_operator() -> int:
    print("not yet: the operator lands with issue 5 (observe, decide, act); use `inferbudget validate` now",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(run_operator())
