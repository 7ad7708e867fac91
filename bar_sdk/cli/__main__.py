"""``python -m bar_sdk.cli``: the ``bar`` command."""

import sys

from bar_sdk.cli import main

sys.exit(main())
