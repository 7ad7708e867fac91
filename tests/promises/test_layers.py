"""The layers hold: the core (bar_sdk outside cli/) imports neither torch nor the adapters; no name is shadowed."""

import ast
import importlib
import pkgutil
import sys
from pathlib import Path

import pytest

import bar_sdk

CORE = Path(bar_sdk.__file__).parent
#: modules the core must never import (at any depth of the statement: lazy imports inside functions count)
FORBIDDEN = ("torch", "bar_sdk.adapters", "adapters", "bar_sdk.cli")


def _core_files():
    return sorted(p for p in CORE.rglob("*.py") if "cli" not in p.relative_to(CORE).parts)


def _imported(tree: ast.AST, module: str):
    """Every module name the file imports: import statements, relative ones resolved, and import_module("...")."""
    package = module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value)


def _violations(source: str, module: str):
    return sorted(
        {
            name
            for name in _imported(ast.parse(source), module)
            if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)
        }
    )


def test_the_check_sees_every_way_of_importing():
    source = (
        "import torch.nn\nfrom bar_sdk import adapters\nfrom ..adapters.nets import SmallCNN\n"
        "def f():\n    import importlib\n    importlib.import_module('bar_sdk.adapters.remote')\n"
    )
    assert _violations(source, "bar_sdk.transfer.local") == [
        "bar_sdk.adapters",
        "bar_sdk.adapters.nets",
        "bar_sdk.adapters.nets.SmallCNN",
        "bar_sdk.adapters.remote",
        "torch.nn",
    ]
    assert _violations("import numpy\nfrom bar_sdk.contract import check_int\n", "bar_sdk.audit") == []


@pytest.mark.parametrize("path", _core_files(), ids=lambda p: str(p.relative_to(CORE)))
def test_no_core_module_imports_torch_the_adapters_or_the_cli(path):
    module = "bar_sdk." + ".".join(path.relative_to(CORE).with_suffix("").parts).removesuffix(".__init__")
    assert _violations(path.read_text(), module) == []


def _submodules():
    names = []
    for root in ("bar_sdk", "bar_sdk.adapters"):
        names += [
            m.name
            for m in pkgutil.walk_packages(importlib.import_module(root).__path__, root + ".")
            if not m.name.endswith("__main__")
        ]
    return names


@pytest.mark.parametrize("name", _submodules())
def test_no_package_attribute_shadows_a_submodule(name):
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra not installed here
        pytest.skip(f"{name}: {exc}")
    parent, _, leaf = name.rpartition(".")
    assert getattr(sys.modules[parent], leaf) is module


def test_audit_and_compare_are_modules_that_run_their_function(monkeypatch):
    import bar_sdk.audit
    import bar_sdk.transfer.compare

    assert type(bar_sdk.audit).__name__ == "CallableModule" and bar_sdk.audit.__name__ == "bar_sdk.audit"
    monkeypatch.setattr(bar_sdk.audit, "audit", lambda *a, **k: ("audit", a, k))
    assert bar_sdk.audit(1, y=2) == ("audit", (1,), {"y": 2})
    monkeypatch.setattr(bar_sdk.transfer.compare, "compare", lambda *a: ("compare", a))
    from bar_sdk.transfer import compare

    assert compare(3) == ("compare", (3,))
