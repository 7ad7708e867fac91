"""``python -m adapters.server --model demo --port 8000`` (see :mod:`adapters.server.cli`)."""

import sys

from adapters.server.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
