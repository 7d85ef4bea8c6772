"""``python -m feedax``: the ``feedax`` command line."""

import sys

from feedax.cli import main

if __name__ == "__main__":
    sys.exit(main())
