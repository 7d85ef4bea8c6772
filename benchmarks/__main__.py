"""``python -m benchmarks``: same as ``python -m benchmarks``."""

import sys

from benchmarks._cli import main

if __name__ == "__main__":
    sys.exit(main())
