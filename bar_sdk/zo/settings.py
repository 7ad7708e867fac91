"""What estimators and optimizers share: settings checked when built and before every use."""

from __future__ import annotations

from typing import TypeVar

_S = TypeVar("_S", bound="Settings")


class Settings:
    """Mixin: ``validate()`` raises :class:`~bar_sdk.errors.InvalidInputError` naming a setting that cannot work.

    It is called at construction and by every consumer before its first
    query (an attribute may be changed after construction); subclasses with
    settings of their own extend it (call super) and return ``self``.
    """

    def _name(self, param: str) -> str:
        """``Class.param``, as error messages name a setting of an instance."""
        return f"{type(self).__name__}.{param}"

    def validate(self: _S) -> _S:
        return self
