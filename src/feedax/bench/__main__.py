"""``python -m feedax.bench``: same as ``feedax bench``."""

import sys

from feedax.bench._cli import main

if __name__ == "__main__":
    sys.exit(main())
