"""`python -m inferbudget` runs the operator (the same as `inferbudget run`)."""

import sys

from inferbudget.run import main

if __name__ == "__main__":
    sys.exit(main())
