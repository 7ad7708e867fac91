"""Run a snippet in a fresh interpreter where some top-level packages cannot be imported."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_PRELUDE = """
import builtins, sys
_real = builtins.__import__
_blocked = {blocked!r}
def _guard(name, *a, **k):
    if name.split('.')[0] in _blocked:
        raise ImportError(name + ' is blocked in this test')
    return _real(name, *a, **k)
builtins.__import__ = _guard
sys.path.insert(0, {root!r})
"""


def run_without(blocked, code: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -c PRELUDE + code`` with ``blocked`` (package names) unimportable; stdout/stderr as text."""
    prelude = _PRELUDE.format(blocked=tuple(blocked), root=str(ROOT))
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=timeout)
