"""Figures the reliability tests measure, for docs/RELIABILITY.md.

Not a test module. Tests call :func:`record` with what they injected and
survived; nothing is written unless ``BAR_RELIABILITY_FIGURES`` names a file
(``benchmarks/reliability_figures.py`` sets it and adds the lines up).
``BAR_RELIABILITY_SCALE`` (default 1) multiplies the hypothesis examples and
the crash points, so the same tests give larger figures when asked.
"""

from __future__ import annotations

import json
import os


def scale() -> int:
    return max(1, int(os.environ.get("BAR_RELIABILITY_SCALE", "1")))


def examples(n: int) -> int:
    """Hypothesis examples for a test that runs ``n`` by default."""
    return n * scale()


def record(section: str, **counts: int) -> None:
    """Append one JSON line ``{"section": ..., counts...}`` when figures are being collected."""
    path = os.environ.get("BAR_RELIABILITY_FIGURES")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({"section": section, **{k: int(v) for k, v in counts.items()}}) + "\n")
