"""Every public function, class and method of the public packages carries annotations (issue 20).

The walk starts from the ``__all__`` of each public package and follows what
it lists: functions; classes, with their ``__init__``, ``__call__`` and public
methods, class and static methods and properties (those the project defines,
inherited ones included, not those of a third-party base such as ``Exception``
or scikit-learn's ``BaseEstimator``); and modules listed there (``bar_sdk.audit``).
Each parameter but ``self``/``cls`` needs an annotation (``*args``/``**kwargs``
too), and so does the return.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
from typing import Any, Callable

import pytest

PACKAGES = (
    "bar_sdk",
    "bar_sdk.errors",
    "bar_sdk.attacks",
    "bar_sdk.transfer",
    "bar_sdk.zo",
    "bar_sdk.plan",
    "bar_sdk.reporting",
    "bar_sdk.reporting.files",
    "bar_sdk.reporting.plots",
    "bar_sdk.reporting.audit",
    "bar_sdk.distributed",
    "bar_sdk.audit",
    "bar_sdk.adapters",
    "bar_sdk.adapters.nets",
    "bar_sdk.adapters.remote",
    "bar_sdk.adapters.remote.presets",
    "bar_sdk.adapters.ray",
    "bar_sdk.adapters.zoo",
    "bar_sdk.adapters.server",
)
"""The public packages and modules (those docs/conf.py renders as API pages): their ``__all__`` is the API
users import."""

_OWN_DUNDERS = ("__init__", "__call__")


def _ours(obj: Any) -> bool:
    return (getattr(obj, "__module__", None) or "").startswith("bar_sdk")


def _unannotated(fn: Callable[..., Any], *, bound: bool) -> list[str]:
    """What of ``fn``'s signature lacks an annotation (``bound``: its first parameter is self or cls)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # no signature to read (a builtin): nothing of ours to annotate
        return []
    missing = []
    params = list(sig.parameters.values())
    if bound and params and params[0].name in ("self", "cls", "mcs"):
        params = params[1:]
    for p in params:
        if p.annotation is inspect.Parameter.empty:
            missing.append(("*" if p.kind is p.VAR_POSITIONAL else "**" if p.kind is p.VAR_KEYWORD else "") + p.name)
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _class_members(cls: type) -> dict[str, tuple[Callable[..., Any], bool]]:
    """The public callables of ``cls`` the project defines: ``name -> (function, bound)``."""
    members: dict[str, tuple[Callable[..., Any], bool]] = {}
    for klass in reversed(cls.__mro__):  # a subclass's own definition wins
        if not _ours(klass):
            continue
        for name, raw in vars(klass).items():
            if name.startswith("_") and name not in _OWN_DUNDERS:
                continue
            if isinstance(raw, staticmethod):
                members[name] = (raw.__func__, False)
            elif isinstance(raw, classmethod):
                members[name] = (raw.__func__, True)
            elif isinstance(raw, property):
                for part, fn in (("", raw.fget), (".setter", raw.fset)):
                    if fn is not None:
                        members[name + part] = (fn, True)
            elif inspect.isfunction(raw) and _ours(raw):  # not typing.Protocol's own __init__
                members[name] = (raw, True)
    return members


@functools.lru_cache(maxsize=1)
def _walk() -> tuple[list[str], list[str], list[str]]:
    """``(checked, offenders, skipped packages)`` over :data:`PACKAGES`."""
    checked: list[str] = []
    offenders: list[str] = []
    skipped: list[str] = []
    seen: set[int] = set()

    def visit(qualname: str, fn: Callable[..., Any], bound: bool) -> None:
        if id(fn) in seen:
            return
        seen.add(id(fn))
        checked.append(qualname)
        missing = _unannotated(fn, bound=bound)
        if missing:
            offenders.append(f"{qualname}: {', '.join(missing)}")

    def walk_module(module: types.ModuleType) -> None:
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if isinstance(obj, types.ModuleType):
                if obj.__name__.startswith("bar_sdk"):
                    walk_module(obj)
            elif inspect.isclass(obj):
                if not _ours(obj) or id(obj) in seen:
                    continue
                seen.add(id(obj))
                for member, (fn, bound) in sorted(_class_members(obj).items()):
                    visit(f"{obj.__module__}.{obj.__qualname__}.{member}", fn, bound)
            elif inspect.isfunction(obj) and _ours(obj):
                visit(f"{obj.__module__}.{obj.__qualname__}", obj, False)

    for package in PACKAGES:
        try:
            module = importlib.import_module(package)
        except ImportError as exc:  # an optional extra (ray, torch) that is not installed here
            if (getattr(exc, "name", None) or "").startswith("bar_sdk"):
                raise
            skipped.append(f"{package} ({exc})")
            continue
        walk_module(module)
    return checked, offenders, skipped


def test_public_functions_and_methods_are_annotated() -> None:
    checked, offenders, skipped = _walk()
    print(f"\n{len(checked)} public functions and methods checked, {len(checked) - len(offenders)} fully annotated")
    assert not offenders, f"{len(offenders)} of {len(checked)} public callables lack annotations:\n" + "\n".join(
        offenders
    )
    if skipped:
        pytest.skip(f"{len(checked)} checked and annotated; not importable here: {'; '.join(skipped)}")


def test_the_walk_reaches_the_api() -> None:
    """The walk is not vacuous: it reaches the entry points of every layer, methods and properties included."""
    checked, _, _ = _walk()
    for name in (
        "bar_sdk.reprogram.BARClassifier.__init__",
        "bar_sdk.reprogram.BARClassifier.fit",
        "bar_sdk.audit.audit",
        "bar_sdk.adapters.remote.model.RemoteModel.__init__",
        "bar_sdk.adapters.remote.model.RemoteModel.from_preset",
        "bar_sdk.adapters.remote.model.RemoteModel.apredict_proba",
        "bar_sdk.adapters.remote.ledger.RemoteLedger.cost",
        "bar_sdk.adapters.server.run.serve",
    ):
        assert name in checked, name
    assert len(checked) >= 300, len(checked)


_SAMPLE = """
class Sample:
    def __init__(self, x: int):
        self.x = x

    def method(self, y: int) -> int:
        return y

    @classmethod
    def build(cls) -> "Sample":
        return cls(1)

    @staticmethod
    def helper(z) -> int:
        return z

    @property
    def value(self):
        return self.x

    def _private(self, w):
        return w


def untyped(a, b: int = 1, *rest, **options) -> None:
    pass
"""


def _sample(module: str) -> dict[str, Any]:
    """The names of :data:`_SAMPLE`, defined as if in the module ``module``."""
    namespace: dict[str, Any] = {"__name__": module}
    exec(_SAMPLE, namespace)
    return namespace


def test_the_checker_finds_what_is_missing() -> None:
    ours = _sample("bar_sdk.sample")
    assert _unannotated(ours["untyped"], bound=False) == ["a", "*rest", "**options"]
    found = {name: _unannotated(fn, bound=bound) for name, (fn, bound) in _class_members(ours["Sample"]).items()}
    assert found == {"__init__": ["return"], "method": [], "build": [], "helper": ["z"], "value": ["return"]}
    # A subclass checks what it inherits from the project's classes, not from a third-party base.
    assert set(_class_members(type("Sub", (ours["Sample"],), {"__module__": "bar_sdk.sample"}))) == set(found)
    assert _class_members(type("Sub", (_sample("elsewhere")["Sample"],), {"__module__": "bar_sdk.sample"})) == {}
