"""Tests of an optional extra skip, saying which one to install, when that extra is absent.

``pip install bar-sdk`` alone must work (numpy, scipy, scikit-learn, tqdm); the extras in
pyproject.toml add torch, the remote client, the local server and the report's plots. A test
that needs an extra is marked ``@requires("server")`` (or ``pytestmark = requires("torch")``
for a whole file; ``pytest.importorskip("torch", reason=reason("torch"))`` where the module
itself is needed), so without it the test is reported as skipped with the reason, instead of
failing with a ModuleNotFoundError halfway through (``-ra`` lists every reason at the end).
"""

from __future__ import annotations

import importlib.util

import pytest

# extra in pyproject.toml -> the import names a test of it needs
EXTRAS = {
    "torch": ("torch",),
    "remote": ("httpx", "requests", "tenacity", "PIL", "botocore"),
    "server": ("starlette", "uvicorn"),
    "report": ("matplotlib",),
}


def absent(*modules: str) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def reason(extra: str, modules=None) -> str:
    """Why a test of ``extra`` is skipped; also ``pytest.importorskip(name, reason=reason("torch"))``."""
    return (
        f"needs {', '.join(modules or EXTRAS[extra])} from the optional '{extra}' extra "
        f'(pip install -c constraints.txt -e ".[{extra}]")'
    )


def requires(extra: str, *modules: str):
    """A skip mark for tests that need ``modules`` (default: all of ``extra``'s) installed."""
    missing = absent(*(modules or EXTRAS[extra]))
    return pytest.mark.skipif(bool(missing), reason=reason(extra, missing))


def preset_params(names):
    """Preset names as parameters; AWS Rekognition's skips without botocore (its SigV4 signer)."""
    return [
        pytest.param(name, marks=requires("remote", "botocore")) if name == "aws_rekognition" else name
        for name in names
    ]
