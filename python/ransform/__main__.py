"""`python -m ransform ...`: the `ransform` command, for when its script is not on PATH."""
import sys

from ransform.cli import main

if __name__ == "__main__":
    sys.exit(main())
