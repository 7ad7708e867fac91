"""Modules that can be called like the function they are named after.

``bar_sdk.audit`` is the module :mod:`bar_sdk.audit` *and* runs
``bar_sdk.audit.audit(...)`` when called, so ``import bar_sdk.audit`` gives the
module (no package attribute shadows it) while ``bar_sdk.audit(model, x, y)``
and ``from bar_sdk import audit; audit(model, x, y)`` keep working.
``bar_sdk.transfer.compare`` is the same.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["make_callable"]


class CallableModule(types.ModuleType):
    """A module whose call runs its function of the same name (looked up at call time)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def make_callable(name: str) -> None:
    """Make the module ``name`` (already in ``sys.modules``) callable as its namesake function."""
    sys.modules[name].__class__ = CallableModule
