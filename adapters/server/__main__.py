"""``python -m bar_sdk.adapters.server --model demo --port 8000`` (see :mod:`bar_sdk.adapters.server.cli`)."""

import sys

from bar_sdk.adapters.server.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
