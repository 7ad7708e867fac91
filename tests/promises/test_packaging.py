"""Packaging promises: the core imports without torch; the public names exist."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK_TORCH = """
import builtins, sys
real = builtins.__import__
def guard(name, *a, **k):
    if name == 'torch' or name.startswith('torch.'):
        raise ImportError('torch is blocked in this test')
    return real(name, *a, **k)
builtins.__import__ = guard
sys.path.insert(0, {root!r})
import bar_sdk, bar_sdk.adapters
from bar_sdk import BARClassifier, QueryBudgetExceeded
from bar_sdk.adapters import SklearnModel, CallableModel, TopK, Rounded, LabelOnly
print('ok')
"""


def test_core_imports_without_torch():
    out = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH.format(root=str(ROOT))], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


def test_exception_tree_inherits_builtins():
    import bar_sdk

    assert issubclass(bar_sdk.InvalidInputError, ValueError)
    assert issubclass(bar_sdk.ModelOutputError, ValueError)
    assert issubclass(bar_sdk.QueryBudgetExceeded, RuntimeError)
    assert issubclass(bar_sdk.CheckpointError, ValueError)
    assert issubclass(bar_sdk.NonFiniteProgramError, FloatingPointError)
    for name in bar_sdk.__all__:
        assert hasattr(bar_sdk, name), name


def test_version_follows_the_changelog():
    """pyproject's version, ``bar_sdk.__version__`` and the newest CHANGELOG.md entry agree."""
    import re

    import bar_sdk

    project = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M).group(1)
    newest = re.search(r"^## \[(\d[^\]]*)\]", (ROOT / "CHANGELOG.md").read_text(), re.M).group(1)
    assert project == bar_sdk.__version__ == newest


def test_built_wheel_installs_one_top_level_package(tmp_path):
    """The wheel's only import package is ``bar_sdk``: ``adapters/`` installs as ``bar_sdk.adapters``.

    A top-level ``adapters`` would overwrite (or be overwritten by) the unrelated PyPI package of that
    name, which users of transfer-learning pipelines often have installed.
    """
    import zipfile

    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("bar_sdk-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith((".dist-info", ".data"))}
    assert top == {"bar_sdk"}, top
    for module in (
        "bar_sdk/adapters/__init__.py",
        "bar_sdk/adapters/remote/model.py",
        "bar_sdk/adapters/server/app.py",
        "bar_sdk/adapters/remote/presets/clarifai.py",
    ):
        assert module in names, module
    assert not any(name.startswith("adapters/") for name in names)
