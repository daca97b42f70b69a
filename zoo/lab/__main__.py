"""`python -m zoo.lab NAME|all|report [--scale smoke|full] [--out DIR] [--check]` (see `zoo.lab`)."""

import sys

from zoo.lab.command import main

if __name__ == "__main__":
    sys.exit(main())
