"""``python -m deepobs.run PROBLEM --optimizer NAME ...``: the same as ``deepobs-run``."""

import sys

from deepobs.runners.cli import main

if __name__ == "__main__":
    sys.exit(main())
